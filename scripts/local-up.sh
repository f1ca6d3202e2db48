#!/bin/sh
# From a fresh Debian 12 machine: installs the dependencies, builds capstan
# (optimised) and starts a local cluster of 3 masters on loopback in DIR
# (default ./local-cluster). Running it again restarts stopped masters.
# Stop it with: build/capstan local down --dir DIR
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$top/local-cluster}
"$top/scripts/install-deps.sh"
"$top/scripts/build.sh" "$top/build"
"$top/build/capstan" --version
"$top/build/capstan" local up --masters 3 --dir "$dir"
cat <<MSG

Use it:
  export KUBECONFIG=$dir/kubeconfig
  kubectl get --raw /version
  $top/build/capstan cluster members
  $top/build/capstan store put /demo/hello world
  curl http://127.0.0.1:\$(sed -n 's/.*plain-listen: 127.0.0.1:\([0-9]*\).*/\1/p' "$dir/local.yaml" | head -1)/readyz
Logs: $dir/m1/capstand.log (m2, m3 likewise)
Stop it:          $top/build/capstan local down --dir $dir
Stop and delete:  $top/build/capstan local down --dir $dir --purge
MSG
