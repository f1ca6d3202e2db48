"""Requests that find no leader wait for one (up to 10 s) instead of
failing at once, and a write answered 503 after that wait was not done.
Three capstand replicas on loopback; two are killed so that the third has
no leader, then one comes back."""

import signal
import threading
import time

from capstantest import test, main
from cluster import Cluster, value_of


class Call:
    """One request in a thread of its own, timed."""

    def __init__(self, fn):
        self.result = None
        self.error = None
        self.took = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn):
        t0 = time.monotonic()
        try:
            self.result = fn()
        except Exception as ex:  # reported by the test
            self.error = ex
        self.took = time.monotonic() - t0

    def done(self):
        return not self.thread.is_alive()

    def wait(self, timeout):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "no answer after %ss" % timeout
        assert self.error is None, self.error
        return self.result


def lose_quorum(ctx, c):
    """Kills the leader and one follower; returns (survivor, killed)."""
    leader = c.leader()
    followers = [m for m in c.masters if m is not leader]
    survivor, other = followers
    leader.kill(signal.SIGKILL)
    other.kill(signal.SIGKILL)
    ctx.wait_for("the survivor to lose its leader",
                 lambda: survivor.status()["leaderID"] == 0, timeout=20)
    return survivor, [leader, other]


@test(timeout=180)
def requests_wait_for_a_new_leader(ctx):
    c = Cluster(ctx).start(3)
    assert c.masters[0].put("/t/w/old", b"old").status == 200
    survivor, killed = lose_quorum(ctx, c)
    put = Call(lambda: survivor.put("/t/w/new", b"new"))
    get = Call(lambda: survivor.get("/t/w/old"))
    time.sleep(1.5)
    assert not put.done(), "the write was answered at once: %r" % (put.result,)
    assert not get.done(), "the read was answered at once: %r" % (get.result,)
    killed[1].start(None)
    r = put.wait(30)
    assert r.status == 200, r
    r = get.wait(30)
    assert r.status == 200, r
    assert value_of(r.json()) == b"old"
    ctx.note("write answered after %.1fs, read after %.1fs without a leader at first"
             % (put.took, get.took))
    r = survivor.get("/t/w/new")
    assert r.status == 200 and value_of(r.json()) == b"new", r


@test(timeout=180)
def write_without_leader_gets_503_and_is_not_done(ctx):
    c = Cluster(ctx).start(3)
    survivor, killed = lose_quorum(ctx, c)
    call = Call(lambda: survivor.put("/t/n/1", b"x"))
    r = call.wait(40)
    assert r.status == 503, r
    assert r.json()["reason"] == "ServiceUnavailable", r.json()
    # It waited for a leader first (10 s on the server).
    assert call.took >= 5, "answered 503 after %.1fs" % call.took
    for m in killed:
        m.start(None)
    for m in c.masters:
        ctx.wait_for("%s ready" % m.name, m.ready, timeout=60)
    r = survivor.get("/t/n/1")
    assert r.status == 404, "a write answered 503 was done: %r" % (r,)


if __name__ == "__main__":
    main()
