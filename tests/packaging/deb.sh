#!/bin/sh
# End-to-end test of the Debian packages: builds them (`make deb`), installs
# them with apt-get, runs the installed capstand --init as the capstan user
# with the packaged config on free loopback ports, checks the cluster
# through the installed CLI, then purges the packages and checks that
# nothing is left. Prints TAP.
#
# Usage (root, on a Debian machine; it installs and purges system packages,
# so it is not part of `make check`):
#   tests/packaging/deb.sh [BUILDDIR]
# BUILDDIR is a configured build directory (default: $CAPSTAN_BUILDDIR, else
# build-pkg beside this tree). CAPSTAN_DEB_SKIP_BUILD=1 reuses the .debs
# already in BUILDDIR.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
builddir=${1:-${CAPSTAN_BUILDDIR:-$top/build-pkg}}
builddir=$(cd "$builddir" && pwd) || exit 1
pkgs="capstand capstan-node capstan"
data=/var/lib/capstan

echo "1..11"

n=0
failed=0
pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
diag() { sed 's/^/# /'; }
check() { # check DESCRIPTION COMMAND...: runs COMMAND, logs its output
	desc=$1
	shift
	if "$@" >"$work/out" 2>&1; then
		pass "$desc"
		return 0
	fi
	fail "$desc"
	tail -n 60 "$work/out" | diag
	return 1
}

if [ "$(id -u)" -ne 0 ]; then
	echo "Bail out! must run as root (installs packages)"
	exit 1
fi
for p in $pkgs; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed; then
		echo "Bail out! $p is already installed here; refusing to purge it"
		exit 1
	fi
done

work=$(mktemp -d)
pid=
installed=
runc_before=no
user_before=no
dpkg-query -W -f='${Status}' runc 2>/dev/null | grep -q "install ok installed" && runc_before=yes
getent passwd capstan >/dev/null && user_before=yes
data_before=no
[ -e "$data" ] && data_before=yes

cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
			sleep 0.1
			i=$((i + 1))
		done
		kill -KILL "$pid" 2>/dev/null
	fi
	if [ -n "$installed" ]; then
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $pkgs >/dev/null 2>&1
	fi
	if [ "$runc_before" = no ] &&
		dpkg-query -W -f='${Status}' runc 2>/dev/null | grep -q "install ok installed"; then
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -q runc >/dev/null 2>&1
	fi
	# Debian keeps system users on purge; this test leaves the machine as
	# it found it.
	if [ "$user_before" = no ] && getent passwd capstan >/dev/null; then
		deluser --quiet --system capstan >/dev/null 2>&1
		delgroup --quiet --system capstan >/dev/null 2>&1
	fi
	[ "$data_before" = no ] && rm -rf "$data"
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# 1: build
debs=
built=no
if [ "${CAPSTAN_DEB_SKIP_BUILD:-0}" = 1 ]; then
	skip "make deb builds the packages" "CAPSTAN_DEB_SKIP_BUILD=1"
	built=yes
elif check "make deb builds the packages" \
	env DEB_BUILD_OPTIONS=nocheck make -C "$builddir" deb; then
	built=yes
fi
if [ "$built" = yes ]; then
	for p in $pkgs; do
		for f in "$builddir"/"${p}"_*.deb; do
			[ -f "$f" ] && debs="$debs $f"
		done
	done
fi

# 2: lintian
if [ -z "$debs" ]; then
	skip "lintian finds no errors" "no packages"
elif ! command -v lintian >/dev/null; then
	skip "lintian finds no errors" "lintian is not installed"
else
	# shellcheck disable=SC2086
	if lintian --fail-on error $debs >"$work/lintian" 2>&1; then
		pass "lintian finds no errors"
		diag <"$work/lintian"
	else
		fail "lintian finds no errors"
		diag <"$work/lintian"
	fi
fi

# 3: install
if [ -z "$debs" ]; then
	skip "apt-get installs the three packages" "no packages"
else
	installed=yes
	# shellcheck disable=SC2086
	check "apt-get installs the three packages" \
		env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $debs ||
		installed=
fi

if [ -z "$installed" ]; then
	for d in "system user and private data directory" "config is a conffile" \
		"systemd units verify" "capstand --init answers /readyz" \
		"the installed CLI sees the cluster" "capstand exits 0 on SIGTERM" \
		"capstand wrote its state as capstan" "purge leaves nothing"; do
		skip "$d" "not installed"
	done
	[ "$failed" -eq 0 ]
	exit $?
fi

# 4: user and data directory
mode=$(stat -c '%a %U:%G' "$data" 2>/dev/null)
home=$(getent passwd capstan | cut -d: -f6)
if [ "$mode" = "700 capstan:capstan" ] && [ "$home" = "$data" ]; then
	pass "system user and private data directory"
else
	fail "system user and private data directory"
	echo "mode/owner '$mode', home '$home'" | diag
fi

# 5: conffile
if grep -qx /etc/capstan/capstand.yaml /var/lib/dpkg/info/capstand.conffiles 2>/dev/null &&
	[ -f /etc/capstan/capstand.yaml ]; then
	pass "config is a conffile"
else
	fail "config is a conffile"
fi

# 6: units (systemd-analyze comes with systemd, which a minimal machine or
# container may not have)
if command -v systemd-analyze >/dev/null; then
	check "systemd units verify" systemd-analyze verify \
		/lib/systemd/system/capstand.service /lib/systemd/system/capstan-node.service
else
	skip "systemd units verify" "systemd-analyze is not installed"
fi

# 7: run the installed daemon as the unit would, minus systemd.
api=$(free_port)
raft=$(free_port)
plain=$(free_port)
ready=no
setpriv --reuid=capstan --regid=capstan --init-groups \
	/usr/sbin/capstand --config /etc/capstan/capstand.yaml --init \
	--listen "127.0.0.1:$api" --raft-address "127.0.0.1:$raft" \
	--plain-listen "127.0.0.1:$plain" >"$work/capstand.log" 2>&1 &
pid=$!
i=0
while [ $i -lt 300 ]; do
	if curl -sfk --max-time 2 "https://127.0.0.1:$api/readyz" >/dev/null 2>&1; then
		ready=yes
		break
	fi
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
	i=$((i + 1))
done
if [ "$ready" = yes ]; then
	pass "capstand --init answers /readyz"
else
	fail "capstand --init answers /readyz"
	diag <"$work/capstand.log"
fi

# 8: the CLI
kubeconfig=$data/admin.kubeconfig
if [ "$ready" != yes ]; then
	skip "the installed CLI sees the cluster" "capstand is not ready"
elif capstan cluster --help >/dev/null 2>&1 || capstan help cluster >/dev/null 2>&1; then
	check "the installed CLI sees the cluster" \
		capstan cluster status --kubeconfig "$kubeconfig"
	diag <"$work/out"
else
	echo "# capstan has no 'cluster' command yet: checking /readyz and the admin kubeconfig with curl"
	check "the installed CLI sees the cluster (curl fallback)" \
		curl -sf --cacert "$data/pki/ca.crt" --cert "$data/pki/admin.crt" \
		--key "$data/pki/admin.key" "https://127.0.0.1:$api/capstan/v1/cluster"
	diag <"$work/out"
	echo | diag
fi

# 9: graceful stop
if kill -0 "$pid" 2>/dev/null; then
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	pid=
	if [ $rc -eq 0 ]; then
		pass "capstand exits 0 on SIGTERM"
	else
		fail "capstand exits 0 on SIGTERM"
		echo "exit status $rc" | diag
		tail -n 20 "$work/capstand.log" | diag
	fi
else
	wait "$pid"
	echo "capstand had already exited with status $?" | diag
	pid=
	fail "capstand exits 0 on SIGTERM"
fi

# 10: data written as the capstan user
if [ -s "$data/id" ] && [ "$(stat -c %U "$data/pki/ca.key" 2>/dev/null)" = capstan ]; then
	pass "capstand wrote its state as capstan"
else
	fail "capstand wrote its state as capstan"
	find "$data" -maxdepth 2 -printf '%M %u %p\n' 2>&1 | head -n 30 | diag
fi

# 11: purge
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $pkgs >"$work/out" 2>&1
installed=
left=
for p in $pkgs; do
	if [ -n "$(dpkg -L "$p" 2>/dev/null)" ]; then
		left="$left dpkg-L:$p"
	fi
done
for f in /etc/capstan "$data" /usr/sbin/capstand /usr/sbin/capstan-node /usr/bin/capstan \
	/lib/systemd/system/capstand.service /lib/systemd/system/capstan-node.service; do
	[ -e "$f" ] && left="$left $f"
done
if [ -z "$left" ]; then
	pass "purge leaves nothing"
else
	fail "purge leaves nothing"
	echo "left:$left" | diag
	diag <"$work/out"
fi

[ "$failed" -eq 0 ]
