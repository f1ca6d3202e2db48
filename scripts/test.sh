#!/bin/sh
# The whole test suite, from a fresh Debian 12 machine: installs the
# dependencies, builds with AddressSanitizer and UndefinedBehaviorSanitizer,
# runs every unit and integration test, and ends with "N passed, N failed".
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/install-deps.sh"
builddir=${CAPSTAN_TEST_BUILDDIR:-$top/build-test}
"$top/scripts/build.sh" "$builddir" --enable-debug --enable-sanitize
cd "$builddir"
status=0
make -j"$(nproc)" check || status=$?
# automake's summary is in test-suite.log; show what failed in full.
if [ "$status" -ne 0 ] && [ -f test-suite.log ]; then
	cat test-suite.log
fi
"$top/tests/report.sh" "$builddir" || status=1
exit "$status"
