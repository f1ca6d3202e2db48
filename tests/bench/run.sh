#!/bin/sh
# Runs each benchmark given on the command line and prints its figures.
# Usage: tests/bench/run.sh BUILDDIR [BENCH]...
set -u
builddir=$1
shift
if [ $# -eq 0 ]; then
	echo "bench: no benchmarks yet"
	exit 0
fi
status=0
for b in "$@"; do
	echo "== $b"
	case "$b" in
	*.py) CAPSTAN_BUILDDIR=$builddir PYTHONPATH=$(dirname "$0")/../lib python3 "$(dirname "$0")/$(basename "$b")" || status=1 ;;
	*) "$builddir/$b" || status=1 ;;
	esac
done
exit $status
