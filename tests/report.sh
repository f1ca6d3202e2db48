#!/bin/sh
# Reads the .trs files that automake's test harness left under BUILDDIR and
# prints what failed, then one closing line "N passed, N failed".
# Exits non-zero when anything failed or when no result was found.
set -u
builddir=${1:-.}
passed=0 failed=0 skipped=0
tmp=$(mktemp)
find "$builddir" -name '*.trs' -newer "$builddir/config.status" > "$tmp" 2>/dev/null
while IFS= read -r trs; do
	while IFS= read -r line; do
		case "$line" in
		":test-result: PASS"*|":test-result: XFAIL"*) passed=$((passed + 1)) ;;
		":test-result: SKIP"*) skipped=$((skipped + 1)) ;;
		":test-result: "*)
			failed=$((failed + 1))
			echo "FAILED: ${trs%.trs}: ${line#:test-result: }"
			;;
		esac
	done < "$trs"
done < "$tmp"
rm -f "$tmp"
[ "$skipped" -gt 0 ] && echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
