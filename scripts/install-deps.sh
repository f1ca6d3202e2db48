#!/bin/sh
# Installs every build, test and runtime dependency of capstan from Debian's
# packages. Idempotent: running it again installs nothing new.
set -eu

PACKAGES="
build-essential autoconf automake libtool pkg-config autoconf-archive git
libraft-dev libuv1-dev libmsgpack-dev libyaml-dev libh2o-dev libjansson-dev
libssl-dev libcurl4-openssl-dev libnghttp2-dev libcmocka-dev libbsd-dev
openssl curl nghttp2-client procps iproute2 python3
etcd-server etcd-client man-db debhelper dpkg-dev fakeroot lintian rpm
libarchive-dev runc containernetworking-plugins busybox-static iputils-ping
docker-registry
"

if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
else
	SUDO=
fi

missing=
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	echo "install-deps: all packages present"
	exit 0
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing

# docker-registry's package starts a system-wide registry on :5000; the tests
# run their own on loopback, so a freshly installed one is stopped again.
case " $missing " in
*" docker-registry "*)
	if [ -d /run/systemd/system ]; then
		$SUDO systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
	fi
	;;
esac
