#!/bin/sh
# Configures and builds capstan out of tree in BUILDDIR with extra configure
# arguments: scripts/build.sh BUILDDIR [CONFIGURE-ARG]...
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
builddir=$1
shift
if [ ! -x "$top/configure" ] || [ "$top/configure.ac" -nt "$top/configure" ] || [ "$top/Makefile.am" -nt "$top/Makefile.in" ]; then
	(cd "$top" && autoreconf -fi)
fi
mkdir -p "$builddir"
cd "$builddir"
if [ ! -f Makefile ] || [ "$top/configure" -nt config.status ]; then
	"$top/configure" "$@"
fi
make -j"$(nproc)"
