"""Backups: `capstan snapshot save` from a live 3-master cluster under write
load, `snapshot inspect`, and `snapshot restore` into a new one-master
cluster (new data directory, new ports) that holds every write
acknowledged before the save began, Kubernetes objects included. A
corrupted file fails inspect and restore with one line and exit 1, and
creates no cluster."""

import json
import os
import threading
import time

from capstantest import test, main, program, free_port, have_kubectl, KUBECTL
from cluster import Cluster, Master, value_of

PREFIX = "/snaptest/load"


class Load:
    """Writers putting unique keys; records when each put was acknowledged."""

    def __init__(self, masters, threads=6):
        self.masters = masters
        self.threads = threads
        self.acked = {}  # key -> monotonic time of the 200 answer
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.count = 0
        self.workers = []

    def _run(self):
        while not self.stop.is_set():
            with self.lock:
                self.count += 1
                n = self.count
            key = "%s/%06d" % (PREFIX, n)
            m = self.masters[n % len(self.masters)]
            try:
                r = m.put(key, b"v%d" % n)
            except Exception:
                continue
            if r.status == 200:
                with self.lock:
                    self.acked[key] = time.monotonic()

    def start(self):
        for _ in range(self.threads):
            w = threading.Thread(target=self._run, daemon=True)
            w.start()
            self.workers.append(w)
        return self

    def finish(self):
        self.stop.set()
        for w in self.workers:
            w.join(60)


def configmap(name, value):
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": name, "namespace": "default"},
                       "data": {"k": value}}).encode()


def create_configmap(m, name, value):
    r = m.request("POST", "/api/v1/namespaces/default/configmaps",
                  body=configmap(name, value),
                  headers={"Content-Type": "application/json"})
    assert r.status == 201, r


def capstan(ctx, *args, check=True):
    return ctx.run([program("capstan")] + list(args), check=check, timeout=120)


def one_line_failure(r, what):
    assert r.returncode == 1, "%s: exit %d, stderr %r" % (what, r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].strip(), "%s: %r" % (what, r.stderr)
    return lines[0]


def corrupt_copy(src, dst, offset):
    with open(src, "rb") as f:
        data = bytearray(f.read())
    data[offset] ^= 0x40
    with open(dst, "wb") as f:
        f.write(data)


@test(timeout=300)
def save_under_load_restore_into_new_cluster(ctx):
    c = Cluster(ctx).start(3)
    m1 = c.seed
    cms = {"cm-%d" % i: "value-%d" % i for i in range(5)}
    for name, value in cms.items():
        create_configmap(m1, name, value)

    load = Load(c.masters).start()
    ctx.wait_for("some acknowledged writes", lambda: len(load.acked) >= 300, timeout=60)
    create_configmap(c.masters[1], "cm-late", "late")  # through a follower
    cms["cm-late"] = "late"

    # Save through a follower while the load goes on.
    snap = ctx.path("backup.snap")
    kubeconfig = os.path.join(m1.data, "admin.kubeconfig")
    save_began = time.monotonic()
    r = capstan(ctx, "--kubeconfig", kubeconfig, "--server", c.masters[2].url,
                "snapshot", "save", snap)
    assert "saved a snapshot at revision" in r.stdout, r.stdout
    time.sleep(0.3)
    load.finish()
    before = sorted(k for k, t in load.acked.items() if t < save_began)
    ctx.note("%d keys acknowledged before the save, %d in all" % (len(before), len(load.acked)))
    assert len(before) >= 300
    assert not os.path.exists(snap + ".tmp")

    # inspect: header and per-prefix counts.
    r = capstan(ctx, "snapshot", "inspect", snap, "-o", "json")
    info = json.loads(r.stdout)
    assert info["formatVersion"] == 1 and info["revision"] > 0, info
    assert info["size"] == os.path.getsize(snap), info
    prefixes = {p["prefix"]: p["keys"] for p in info["prefixes"]}
    assert sum(prefixes.values()) == info["keys"], info
    assert prefixes.get(PREFIX, 0) >= len(before), prefixes
    assert prefixes.get("/registry/configmaps", 0) >= len(cms), prefixes
    r = capstan(ctx, "snapshot", "inspect", snap)
    assert "Revision:    %d" % info["revision"] in r.stdout, r.stdout
    assert "/registry/configmaps" in r.stdout and PREFIX in r.stdout, r.stdout

    # A flipped byte in the payload or in the header: inspect and restore
    # fail with one line, and no cluster appears.
    size = os.path.getsize(snap)
    for label, offset in (("payload", 128 + (size - 128) // 2), ("header", 20)):
        bad = ctx.path("bad-%s.snap" % label)
        corrupt_copy(snap, bad, offset)
        line = one_line_failure(capstan(ctx, "snapshot", "inspect", bad, check=False),
                                "inspect " + label)
        assert "corrupt" in line and "checksum" in line, line
        bad_dir = ctx.path("bad-%s-data" % label)
        r = capstan(ctx, "snapshot", "restore", bad, "--data-dir", bad_dir, check=False)
        one_line_failure(r, "restore " + label)
        assert not os.path.exists(os.path.join(bad_dir, "id")), label
        # capstand itself refuses it too, before creating anything.
        r = ctx.run([program("capstand"), "--init", "--restore", bad, "--data-dir", bad_dir,
                     "--listen", "", "--plain-listen", "127.0.0.1:%d" % free_port(),
                     "--raft-address", "127.0.0.1:%d" % free_port()], check=False, timeout=60)
        assert r.returncode == 1, r
        assert "cannot restore from" in r.stderr and "checksum" in r.stderr, r.stderr
        assert not os.path.exists(bad_dir), label
    r = capstan(ctx, "snapshot", "inspect", ctx.path("nonexistent.snap"), check=False)
    one_line_failure(r, "inspect of a missing file")

    # Restore into a new one-master cluster on new ports.
    c2 = Cluster(ctx)
    r1 = Master(c2, 1)
    r1.name = "r1"
    r1.data = ctx.path("r1")
    c2.masters.append(r1)
    extra = r1.argv()[3:]  # everything after "capstand --data-dir DIR"
    r1.proc = ctx.spawn("r1", [program("capstan"), "snapshot", "restore", snap,
                               "--data-dir", r1.data, "--"] + extra)
    ctx.wait_for("restore done", lambda: os.path.exists(os.path.join(r1.data, "restored")),
                 timeout=120)
    ctx.wait_for("r1 ready", r1.ready, timeout=30)
    assert not os.path.exists(os.path.join(r1.data, "restoring"))
    st = r1.status()
    assert [x["id"] for x in st["members"]] == [1], st  # the old members map is not restored

    items = {i["key"]: value_of(i) for i in r1.list(PREFIX + "/")}
    missing = [k for k in before if k not in items]
    assert not missing, "%d keys acknowledged before the save are missing, e.g. %s" % (
        len(missing), missing[:5])
    for k in before:
        assert items[k] == b"v%d" % int(k.rsplit("/", 1)[1]), k
    assert len(items) == prefixes[PREFIX], (len(items), prefixes[PREFIX])

    for name, value in cms.items():
        r = r1.request("GET", "/api/v1/namespaces/default/configmaps/" + name)
        assert r.status == 200, (name, r)
        assert r.json()["data"] == {"k": value}, r.json()
    if have_kubectl():
        r = ctx.run([KUBECTL, "--kubeconfig", os.path.join(r1.data, "admin.kubeconfig"),
                     "--cache-dir", ctx.path("kube-cache"), "--request-timeout", "30s",
                     "get", "configmaps", "-o", "name"], env={"HOME": ctx.dir}, timeout=60)
        got = set(r.stdout.split())
        assert {"configmap/" + n for n in cms} <= got, r.stdout
    else:
        ctx.note("kubectl not installed: listed the configmaps over the API only")

    # A restart does not restore again.
    r1.kill(15)
    assert r1.proc.popen.returncode == 0, r1.proc.log()
    r1.proc = ctx.spawn("r1-again", r1.argv() + ["--restore", snap])
    ctx.wait_for("r1 ready again", r1.ready, timeout=60)
    assert "restoring" not in r1.proc.log(), r1.proc.log()
    ctx.note("restore log: " + " | ".join(
        l.split(" info: ", 1)[-1] for l in open(ctx.path("r1.log")) if "restor" in l))

if __name__ == "__main__":
    main()
