#!/bin/sh
# Builds capstan optimised (no sanitizers, no debug) in build-bench and runs
# the benchmarks under tests/bench, which print their figures.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh" "$top/build-bench"
make -C "$top/build-bench" bench
