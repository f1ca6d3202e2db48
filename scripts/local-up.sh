#!/bin/sh
# From a fresh Debian 12 machine: installs the dependencies, builds capstan
# (optimised) and starts a local cluster on loopback in DIR (default
# ./local-cluster). Stop it with: build/capstan local down --dir DIR
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$top/local-cluster}
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh" "$top/build"
"$top/build/capstan" --version
