#!/bin/sh
# Builds a small test image from Debian's busybox-static, with no network:
#   tests/image/build-busybox-image.sh OUTDIR [NAME]
# OUTDIR/oci/           an OCI image layout (index.json names NAME)
# OUTDIR/oci.tar        the same layout as a tar
# OUTDIR/docker.tar     a docker-archive (`docker save` format) of it
# NAME defaults to localhost/busybox:latest. Two layers: the second one
# deletes a file of the first (a whiteout) and adds /etc/layer2.
set -eu

out=${1:?usage: build-busybox-image.sh OUTDIR [NAME]}
name=${2:-localhost/busybox:latest}
busybox=${BUSYBOX:-/bin/busybox}

if ! "$busybox" --list >/dev/null 2>&1; then
	echo "build-busybox-image: $busybox is not busybox (install busybox-static)" >&2
	exit 1
fi
case $(file -L "$busybox" 2>/dev/null || echo static) in
*dynamically*) echo "build-busybox-image: $busybox is not static" >&2; exit 1 ;;
esac

rm -rf "$out"
mkdir -p "$out/work/l1" "$out/work/l2/etc" "$out/oci/blobs/sha256"
work=$out/work

# Layer 1: busybox, its applets as links, a minimal /etc.
l1=$work/l1
mkdir -p "$l1/bin" "$l1/etc" "$l1/tmp" "$l1/root" "$l1/proc" "$l1/sys" "$l1/dev" \
	"$l1/home/nobody"
cp "$busybox" "$l1/bin/busybox"
for applet in $("$busybox" --list); do
	[ "$applet" = busybox ] || ln -sf busybox "$l1/bin/$applet"
done
chmod 1777 "$l1/tmp"
cat >"$l1/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/home/nobody:/bin/sh
EOF
cat >"$l1/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo "removed by layer 2" >"$l1/etc/removed"

# Layer 2: a whiteout for /etc/removed, and a new file.
l2=$work/l2
: >"$l2/etc/.wh.removed"
echo "from layer 2" >"$l2/etc/layer2"

# Layers are tars with numeric root ownership and fixed times, gzipped.
layer() {
	tar --sort=name --numeric-owner --owner=0 --group=0 --mtime=@1700000000 \
		-C "$1" -cf "$work/$2.tar" .
	gzip -n -c "$work/$2.tar" >"$work/$2.tar.gz"
}
layer "$l1" layer1
layer "$l2" layer2

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

diff1=$(sha "$work/layer1.tar")
diff2=$(sha "$work/layer2.tar")
blob1=$(sha "$work/layer1.tar.gz")
blob2=$(sha "$work/layer2.tar.gz")
cp "$work/layer1.tar.gz" "$out/oci/blobs/sha256/$blob1"
cp "$work/layer2.tar.gz" "$out/oci/blobs/sha256/$blob2"

printf '%s' '{"architecture":"amd64","os":"linux","created":"2023-11-14T22:13:20Z",'\
'"config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],'\
'"Cmd":["sh"],"WorkingDir":"/"},'\
'"rootfs":{"type":"layers","diff_ids":["sha256:'"$diff1"'","sha256:'"$diff2"'"]}}' \
	>"$work/config.json"
config=$(sha "$work/config.json")
cp "$work/config.json" "$out/oci/blobs/sha256/$config"

printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'\
'"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$config"'","size":'"$(size "$work/config.json")"'},'\
'"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'"$blob1"'","size":'"$(size "$work/layer1.tar.gz")"'},'\
'{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'"$blob2"'","size":'"$(size "$work/layer2.tar.gz")"'}]}' \
	>"$work/manifest.json"
manifest=$(sha "$work/manifest.json")
cp "$work/manifest.json" "$out/oci/blobs/sha256/$manifest"

printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$out/oci/oci-layout"
printf '%s' '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",'\
'"digest":"sha256:'"$manifest"'","size":'"$(size "$work/manifest.json")"','\
'"annotations":{"io.containerd.image.name":"'"$name"'","org.opencontainers.image.ref.name":"latest"},'\
'"platform":{"architecture":"amd64","os":"linux"}}]}' >"$out/oci/index.json"
tar -C "$out/oci" -cf "$out/oci.tar" .

# docker-archive: uncompressed layer tars in directories, manifest.json.
d=$work/docker
mkdir -p "$d/$diff1" "$d/$diff2"
cp "$work/layer1.tar" "$d/$diff1/layer.tar"
cp "$work/layer2.tar" "$d/$diff2/layer.tar"
cp "$work/config.json" "$d/$config.json"
printf '%s' '[{"Config":"'"$config"'.json","RepoTags":["'"$name"'"],'\
'"Layers":["'"$diff1"'/layer.tar","'"$diff2"'/layer.tar"]}]' >"$d/manifest.json"
tar -C "$d" -cf "$out/docker.tar" .

rm -rf "$work"
echo "$out"
