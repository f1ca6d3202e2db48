"""Three capstand replicas on loopback: the replicated store under load,
leader loss, whole-cluster restarts, catch-up by snapshot, membership
changes. Writes go through the store's diagnostic view."""

import glob
import os
import signal
import threading
import time

from capstantest import test, main
from cluster import Cluster, value_of

# Small snapshot settings so that 20,000 writes take several snapshots and
# truncate the log behind them.
FAST_SNAPSHOTS = ["--snapshot-threshold", "1024", "--snapshot-trailing", "256"]


class Load:
    """Writers putting unique keys round-robin through the given masters,
    recording each outcome: 'ok' (acknowledged), 'unknown' (504 or the
    connection failed after sending) or 'failed' (any other answer)."""

    def __init__(self, masters, prefix, threads=8, total=None):
        self.masters = masters
        self.prefix = prefix
        self.threads = threads
        self.total = total
        self.outcomes = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.count = 0
        self.workers = []

    def _next(self):
        with self.lock:
            if self.total is not None and self.count >= self.total:
                return None
            self.count += 1
            return self.count

    def _run(self, t):
        while not self.stop.is_set():
            n = self._next()
            if n is None:
                return
            key = "%s/%06d" % (self.prefix, n)
            m = self.masters[n % len(self.masters)]
            if not m.alive():
                m = [x for x in self.masters if x.alive()][0]
            try:
                r = m.put(key, b"v%d" % n)
                if r.status == 200:
                    out = "ok"
                elif r.status == 504:
                    out = "unknown"
                else:
                    out = "failed:%d" % r.status
            except Exception:
                out = "unknown"
            with self.lock:
                self.outcomes[key] = out
            if out != "ok":
                time.sleep(0.05)

    def start(self):
        for t in range(self.threads):
            w = threading.Thread(target=self._run, args=(t,), daemon=True)
            w.start()
            self.workers.append(w)
        return self

    def join(self, timeout=600):
        for w in self.workers:
            w.join(timeout)

    def finish(self):
        self.stop.set()
        self.join()

    def acked(self):
        return sorted(k for k, v in self.outcomes.items() if v == "ok")

    def failed(self):
        return sorted(k for k, v in self.outcomes.items() if v.startswith("failed"))


def assert_present_everywhere(cluster, prefix, keys):
    want = set(keys)
    for m in cluster.alive():
        have = {i["key"]: value_of(i) for i in m.list(prefix, local=False, limit=5000)}
        missing = want - set(have)
        assert not missing, "%s lacks %d acknowledged keys, e.g. %s" % (
            m.name, len(missing), sorted(missing)[:5])
        for k in keys:
            assert have[k] == b"v%d" % int(k.rsplit("/", 1)[1]), (m.name, k, have[k])


def assert_converged(cluster, prefix):
    """Every live replica holds the same entries (local reads)."""
    def same():
        lists = [[(i["key"], i["modRevision"]) for i in m.list(prefix, local=True, limit=5000)]
                 for m in cluster.alive()]
        return all(x == lists[0] for x in lists[1:])
    cluster.ctx.wait_for("replicas converged", same, timeout=30, interval=0.3)


@test(timeout=300)
def writes_through_all_three(ctx):
    c = Cluster(ctx).start(3)
    load = Load(c.masters, "/t/a", threads=16, total=10000).start()
    load.join()
    acked = load.acked()
    assert len(acked) == 10000, "not acknowledged: %s" % (
        sorted(set(load.outcomes.items()) - {(k, "ok") for k in acked})[:5])
    assert_present_everywhere(c, "/t/a/", acked)
    assert_converged(c, "/t/a/")
    # Every write raised the revision once, the same on every replica.
    revs = {m.name: m.status()["revision"] for m in c.masters}
    ctx.note("revisions after 10,000 writes: %s" % revs)


@test(timeout=300)
def sigkill_leader_under_load(ctx):
    c = Cluster(ctx).start(3)
    load = Load(c.masters, "/t/k", threads=16).start()
    ctx.wait_for("load running", lambda: len(load.acked()) > 2000, timeout=120)
    leader = c.leader()
    leader.kill(signal.SIGKILL)
    t0 = time.monotonic()
    ctx.wait_for("writes after the kill",
                 lambda: len(load.acked()) > 0 and c.leader(timeout=1) is not None,
                 timeout=30)
    before = len(load.acked())
    ctx.wait_for("progress under the new leader", lambda: len(load.acked()) > before + 1000, timeout=60)
    load.finish()
    ctx.note("new leader writing after %.2fs" % (time.monotonic() - t0))
    acked = load.acked()
    failed = load.failed()
    unknown = sorted(k for k, v in load.outcomes.items() if v == "unknown")
    ctx.note("%d acknowledged, %d unknown, %d failed" % (len(acked), len(unknown), len(failed)))
    assert_present_everywhere(c, "/t/k/", acked)
    # An explicit failure must mean "not done".
    m = c.alive()[0]
    for k in failed:
        r = m.get(k)
        assert r.status == 404, "write %s answered failed (%s) but is present" % (k, load.outcomes[k])
    # The killed replica comes back and catches up.
    c.restart(leader)
    assert_converged(c, "/t/k/")
    assert_present_everywhere(c, "/t/k/", acked)


@test(timeout=300)
def sigkill_all_and_restart(ctx):
    c = Cluster(ctx).start(3)
    load = Load(c.masters, "/t/r", threads=16).start()
    ctx.wait_for("load running", lambda: len(load.acked()) > 3000, timeout=120)
    for m in c.masters:
        m.proc.signal(signal.SIGKILL)
    for m in c.masters:
        m.proc.wait(timeout=20)
    load.finish()
    acked = load.acked()
    for m in c.masters:
        m.start(None)
    for m in c.masters:
        ctx.wait_for("%s ready" % m.name, m.ready, timeout=60)
    c.wait_voters(3)
    assert_present_everywhere(c, "/t/r/", acked)
    ctx.note("%d acknowledged writes survived SIGKILL of all three" % len(acked))


@test(timeout=400)
def down_replica_catches_up_by_snapshot(ctx):
    c = Cluster(ctx, flags=FAST_SNAPSHOTS).start(3)
    down = c.masters[2]
    if down is c.leader():
        down = c.masters[1]
    down.kill(signal.SIGTERM)
    up = [m for m in c.masters if m is not down]
    load = Load(up, "/t/s", threads=16, total=20000).start()
    load.join()
    acked = load.acked()
    assert len(acked) == 20000, "%d of 20000 acknowledged" % len(acked)
    before = set(glob.glob(os.path.join(down.data, "raft", "snapshot-*")))
    c.restart(down)
    assert_converged(c, "/t/s/")
    assert_present_everywhere(c, "/t/s/", acked)
    after = set(glob.glob(os.path.join(down.data, "raft", "snapshot-*")))
    assert after - before, "the returning replica installed no snapshot"


@test(timeout=400)
def join_fourth_and_remove_one_under_load(ctx):
    c = Cluster(ctx).start(3)
    load = Load(c.masters[:3], "/t/m", threads=8).start()
    ctx.wait_for("load running", lambda: len(load.acked()) > 500, timeout=60)
    m4 = c.add()
    c.join(m4, timeout=120)
    c.wait_voters(4, timeout=60)
    # Remove a follower that is not the seed, under load.
    leader = c.leader()
    victim = [m for m in c.masters[1:3] if m is not leader][0]
    vid = int(victim.read("id"))
    load.masters = [m for m in c.masters if m is not victim]
    r = leader.request("DELETE", "/capstan/v1/cluster/members/%d" % vid)
    assert r.status == 200, r
    victim.proc.wait(timeout=30)  # it stops itself
    assert victim.proc.popen.returncode == 0, victim.proc.popen.returncode
    c.wait_voters(3, timeout=60)
    before = len(load.acked())
    ctx.wait_for("writes after removal", lambda: len(load.acked()) > before + 300, timeout=60)
    load.finish()
    # Writes that reached the removed member as it stopped may be refused
    # ("not done"); such an answer must then be true.
    m = c.alive()[0]
    for k in load.failed():
        assert m.get(k).status == 404, "write %s answered %s but is present" % (k, load.outcomes[k])
    assert len(load.failed()) < 50, load.failed()[:5]
    assert_present_everywhere(c, "/t/m/", load.acked())
    assert vid not in [x["id"] for x in c.voters()]


@test(timeout=120)
def corrupt_segment_or_snapshot_refuses_to_start(ctx):
    c = Cluster(ctx, flags=FAST_SNAPSHOTS).start(1)
    m = c.seed
    for i in range(3000):
        assert m.put("/t/c/%05d" % i, b"x" * 100).status == 200
    m.kill(signal.SIGTERM)
    raft = os.path.join(m.data, "raft")
    files = sorted(os.listdir(raft))
    snaps = [f for f in files if f.startswith("snapshot-") and not f.endswith(".meta")]
    segs = [f for f in files if "-" in f and f[0].isdigit()]
    assert snaps and segs, files
    # A truncated snapshot.
    victim = os.path.join(raft, snaps[-1])
    good = open(victim, "rb").read()
    with open(victim, "wb") as f:
        f.write(good[: len(good) // 2])
    r = ctx.run(m.argv(), check=False, timeout=30)
    assert r.returncode == 1, r.returncode
    assert "snapshot" in r.stderr, r.stderr
    with open(victim, "wb") as f:
        f.write(good)
    # A corrupted closed segment.
    seg = os.path.join(raft, segs[0])
    data = bytearray(open(seg, "rb").read())
    for off in range(len(data) // 2, len(data) // 2 + 64):
        data[off] ^= 0xFF
    with open(seg, "wb") as f:
        f.write(data)
    # libraft 0.15 leaks a buffer inside itself when a closed segment fails
    # to load: not ours to report, and suppressed for this run only.
    supp = ctx.path("lsan.supp")
    with open(supp, "w") as f:
        f.write("leak:libraft.so\n")
    lsan = os.environ.get("LSAN_OPTIONS", "")
    r = ctx.run(m.argv(), check=False, timeout=30, env={
        "LSAN_OPTIONS": (lsan + ":" if lsan else "") + "suppressions=" + supp})
    assert r.returncode == 1, r.returncode
    assert "corrupt" in r.stderr, r.stderr


if __name__ == "__main__":
    main()
