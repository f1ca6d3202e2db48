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
# The Debian packages: built from `make dist`, installed, run and purged.
# Root only (it installs system packages); CAPSTAN_SKIP_PACKAGING=1 skips.
if [ "$(id -u)" -eq 0 ] && [ "${CAPSTAN_SKIP_PACKAGING:-0}" != 1 ]; then
	mkdir -p tests/packaging
	"$top/tests/packaging/deb.sh" "$builddir" >tests/packaging/deb.log 2>&1 || status=1
	cat tests/packaging/deb.log
	# Its TAP lines become a .trs file that tests/report.sh counts.
	awk '/^ok .*# SKIP/ { print ":test-result: SKIP " $0; next }
	     /^ok / { print ":test-result: PASS " $0; next }
	     /^not ok / { print ":test-result: FAIL " $0; next }
	     /^Bail out!/ { print ":test-result: ERROR " $0 }' \
		tests/packaging/deb.log >tests/packaging/deb.sh.trs
fi
"$top/tests/report.sh" "$builddir" || status=1
exit "$status"
