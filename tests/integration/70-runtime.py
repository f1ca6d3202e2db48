"""The container runtime (runtime/) with real runc, through tests/runtime/rtctl:
image import (OCI layout dir and tar, docker-archive), lookup and removal;
a container that echoes hello (log, whiteouts, exit code); a pod sandbox
with a CNI IP reachable from the node's netns, exec (hostname, a missing
command), SIGTERM with a trap, SIGKILL; cleanup leaves no mounts, no
namespace files, no runc containers.

Everything network-related runs in a network namespace of its own (made
here with unshare), so the bridge and IP forwarding never touch the host;
the only packets sent are pings to the pod IP on that bridge.

Skipped (not failed) without root, runc, busybox-static or CNI plugins."""

import os
import shutil
import subprocess

import capstantest
from capstantest import test, main, program, Skip

SRCDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE_SCRIPT = os.path.join(SRCDIR, "tests", "image", "build-busybox-image.sh")
POD_UID = "7a1c5e2f-0000-4000-8000-0000000000%02d"


def requirements(cni=False):
    if os.geteuid() != 0:
        raise Skip("needs root")
    if shutil.which("runc") is None:
        raise Skip("runc is not installed")
    capstantest.require_containers()
    if not os.path.exists("/bin/busybox"):
        raise Skip("busybox-static is not installed")
    if cni and not os.path.exists("/usr/lib/cni/bridge"):
        raise Skip("CNI plugins are not installed")


class Runtime:
    def __init__(self, ctx, netns=None):
        self.ctx = ctx
        self.netns = netns
        self.state = ctx.path("state")
        self.run_dir = ctx.path("run")
        self.image = ctx.path("image")

    def argv(self, *args):
        a = [program("tests/runtime/rtctl"), "--state", self.state, "--run", self.run_dir,
             "--subnet", "10.231.7.0/24", "--bridge", "cpt70"]
        a += list(args)
        if self.netns:
            a = ["nsenter", "--net=" + self.netns] + a
        return a

    def __call__(self, *args, check=True):
        return self.ctx.run(self.argv(*args), check=check, timeout=60)

    def build_image(self):
        self.ctx.run(["sh", IMAGE_SCRIPT, self.image], timeout=60)

    def mounts(self):
        with open("/proc/self/mounts") as f:
            return [l for l in f if self.ctx.dir in l]


def make_netns(ctx):
    """A persistent network namespace for the test, as `ip netns add`."""
    path = ctx.path("testns")
    open(path, "w").close()
    ctx.run(["unshare", "--net=" + path, "ip", "link", "set", "lo", "up"])
    return path


def drop_netns(ctx, path):
    subprocess.run(["umount", path], capture_output=True)


@test(timeout=120)
def images(ctx):
    requirements()
    rt = Runtime(ctx)
    rt.build_image()
    oci_id = rt("image-import", rt.image + "/oci").stdout.strip()
    assert oci_id.startswith("sha256:"), oci_id
    # The same image from a docker-archive and an OCI tar: same id, names added.
    assert rt("image-import", rt.image + "/docker.tar").stdout.strip() == oci_id
    assert rt("image-import", rt.image + "/oci.tar", "example/other:v1").stdout.strip() == oci_id
    listing = rt("image-list").stdout
    assert "localhost/busybox:latest" in listing, listing
    assert "docker.io/example/other:v1" in listing, listing
    assert len(listing.strip().splitlines()) == 1, listing
    got = rt("image-get", "localhost/busybox").stdout
    assert got.startswith(oci_id) and "cmd=sh" in got, got
    # A missing image is "not found", distinct from other errors.
    r = rt("image-get", "busybox", check=False)
    assert r.returncode == 4 and "not found" in r.stdout, (r.returncode, r.stdout)
    r = rt("image-get", "Bad Name", check=False)
    assert r.returncode == 1, r
    r = rt("image-import", ctx.path("nothing-here"), check=False)
    assert r.returncode == 1, r
    rt("image-rm", "example/other:v1")
    assert "other" not in rt("image-list").stdout
    rt("image-rm", "localhost/busybox:latest")
    assert rt("image-list").stdout.strip() == ""
    layers = os.path.join(rt.state, "images", "layers", "sha256")
    assert os.listdir(layers) == [], os.listdir(layers)


@test(timeout=120)
def container_runs_and_exits(ctx):
    requirements()
    rt = Runtime(ctx)
    rt.build_image()
    rt("image-import", rt.image + "/oci")
    log = ctx.path("c1.log")
    try:
        rt("run", "c1", "localhost/busybox:latest", log, "--",
           "sh", "-c", "echo hello; echo oops >&2; cat /etc/removed; cat /etc/layer2; exit 3")
        out = ctx.wait_for("exit file", lambda: (lambda r: r.returncode == 0 and r.stdout)(
            rt("wait", "c1", "5", check=False)), timeout=20)
        assert out.startswith("exit 3 signal 0"), out
        text = open(log).read()
        assert " stdout F hello\n" in text, text
        assert " stderr F oops\n" in text, text
        assert "from layer 2" in text, text         # the upper layer is there
        assert "can't open '/etc/removed'" in text, text  # its whiteout too
        # stdout and stderr are separate pipes: which of the last two lines
        # lands last in the file is not fixed, so --tail 1 is held to the file.
        last = text.splitlines()[-1].split(" ", 3)[3]
        assert rt("logs", log, "--tail", "1").stdout == last + "\n"
        first = text.splitlines()[0].split(" ", 3)[3]
        ts = rt("logs", log, "--timestamps").stdout.splitlines()[0]
        assert ts.endswith("Z " + first), (ts, first)
        assert rt("state", "c1").stdout.split()[1] == "stopped"
        # A command that does not exist: start fails with runc's reason.
        r = rt("run", "c2", "localhost/busybox:latest", ctx.path("c2.log"), "--",
               "/no/such/program", check=False)
        assert r.returncode != 0 and "no/such/program" in r.stderr, r.stderr
        out = rt("wait", "c2", "1").stdout
        assert out.startswith("exit 128") and "no/such/program" in out, out
    finally:
        for c in ("c1", "c2"):
            rt("delete", c, check=False)
    assert rt.mounts() == [], rt.mounts()
    assert rt("list").stdout.strip() == ""
    assert os.listdir(os.path.join(rt.state, "containers")) == []


@test(timeout=180)
def pod_sandbox_exec_signals(ctx):
    requirements(cni=True)
    netns = make_netns(ctx)
    rt = Runtime(ctx, netns)
    uid = POD_UID % 1
    etc = ctx.path("etc")
    os.makedirs(etc)
    with open(os.path.join(etc, "hostname"), "w") as f:
        f.write("mypod\n")
    with open(os.path.join(etc, "hosts"), "w") as f:
        f.write("127.0.0.1 localhost\n")
    try:
        rt.build_image()
        rt("image-import", rt.image + "/docker.tar")
        out = rt("sandbox-create", uid, "mypod").stdout
        ip = [l.split()[1] for l in out.splitlines() if l.startswith("ip ")][0]
        assert ip.startswith("10.231.7."), out
        assert os.path.exists(os.path.join(rt.run_dir, "netns", uid))
        # The pod has no default route: nothing it sends can leave.
        routes = ctx.run(["nsenter", "--net=" + os.path.join(rt.run_dir, "netns", uid),
                          "ip", "route"]).stdout
        assert "default" not in routes, routes
        # The pod IP answers from the node's netns (on the bridge only).
        ctx.run(["nsenter", "--net=" + netns, "ping", "-c", "1", "-W", "5", ip])

        log = ctx.path("web.log")
        rt("run", "web", "localhost/busybox:latest", log, "--pod", uid, "--etc", etc, "--",
           "sh", "-c", "echo up; trap 'echo got TERM; exit 7' TERM; "
           "while true; do sleep 0.1; done")
        assert rt("state", "web").stdout.split()[1] == "running"
        assert rt("exec", "web", "--", "cat", "/etc/hostname").stdout == "mypod\n"
        assert rt("exec", "web", "--", "hostname").stdout == "mypod\n"
        addr = rt("exec", "web", "--", "ip", "-4", "-o", "addr", "show", "eth0").stdout
        assert (" %s/" % ip) in addr, addr
        r = rt("exec", "web", "--", "sh", "-c", "exit 5", check=False)
        assert r.returncode == 5, r
        r = rt("exec", "web", "--", "no-such-command", check=False)
        assert r.returncode == 255 and "no-such-command" in r.stderr, r
        # A second container in the same sandbox shares its namespaces.
        rt("run", "side", "localhost/busybox:latest", ctx.path("side.log"), "--pod", uid, "--",
           "sleep", "600")
        assert rt("exec", "side", "--", "hostname").stdout == "mypod\n"
        listed = rt("list").stdout
        assert "web " in listed and "side " in listed, listed

        rt("kill", "web", "15")
        out = ctx.wait_for("web exits", lambda: (lambda r: r.returncode == 0 and r.stdout)(
            rt("wait", "web", "5", check=False)), timeout=20)
        assert out.startswith("exit 7 signal 0"), out
        text = open(log).read()
        assert "stdout F up\n" in text and "stdout F got TERM\n" in text, text
        rt("kill", "side", "9")
        out = ctx.wait_for("side exits", lambda: (lambda r: r.returncode == 0 and r.stdout)(
            rt("wait", "side", "5", check=False)), timeout=20)
        assert out.startswith("exit 137 signal 9"), out
        r = rt("kill", "side", "9", check=False)
        assert r.returncode != 0
    finally:
        for c in ("web", "side"):
            rt("delete", c, check=False)
        rt("sandbox-rm", uid, check=False)
        leftover = rt.mounts()
        drop_netns(ctx, netns)
        rt.netns = None
    assert [m for m in leftover if "testns" not in m] == [], leftover
    assert rt("sandbox-list").stdout.strip() == ""
    assert rt("list").stdout.strip() == ""
    # The IP went back to host-local.
    nets = os.path.join(rt.state, "cni", "networks", "capstan")
    assert ip not in os.listdir(nets), os.listdir(nets)


if __name__ == "__main__":
    main()
