#!/usr/bin/env python3
"""Failover time: how long writes stop when the leader dies.

Each trial sends steady writes (tests/bench/loadgen, open loop, 50/s,
256 bytes) through one follower, SIGKILLs the leader and measures the time
from the kill to the first acknowledged write that was sent after it,
through that surviving replica. The killed member is then restarted and
the cluster allowed to settle before the next trial. 10 trials against
capstan (3 replicas, restarted with `capstan local up` on the same
directory) and against etcd 3.4 (3 members, leader found with `etcdctl
endpoint status -w json`). Both use their default election timeouts and
heartbeats (etcd 1 s / 100 ms, capstan 400 ms / 50 ms). Prints p50 and max
per system.
Goal: capstan p50 < 1.0 s. Prints figures; asserts nothing.

Options: --trials N (default 10), --rate R (50), --only etcd|capstan,
--election-timeout MS (give both systems this election timeout instead of
their default 1 s: etcd --election-timeout, capstand election-timeout in
the local cluster's capstand.yaml).
"""

import argparse
import sys
import time

import benchlib as bl

GOAL = "goal: capstan failover p50 < 1.0 s"
# The per-request timeout times the rate must stay under the concurrency
# so that writes keep starting while earlier ones hang (no gap in the
# probe); HTTP/2 servers allow 100 streams per connection by default.
REQUEST_TIMEOUT = 1.5
CONCURRENCY = 99


def trial(name, urls_of, extra, leader_of, kill, rate, n, settle, restart):
    """Runs one trial; returns the failover time in seconds (None if
    writes never came back within 20 s)."""
    leader = leader_of()
    follower = (leader + 1) % n
    urls = urls_of(follower)
    lg = bl.LoadgenProc(name, [urls], rate, concurrency=CONCURRENCY,
                        timeout=REQUEST_TIMEOUT, prefix="failover",
                        start=int(time.time() * 1000) % 10**9, extra=extra)
    try:
        # Writes flow before the kill.
        bl.wait_for("%s writes flowing" % name,
                    lambda: lg.ok_count() >= rate // 2,
                    timeout=15, interval=0.05)
        time.sleep(0.5)
        lg.poll()
        t_kill = time.monotonic()
        kill(leader)
        took = None
        deadline = t_kill + 20
        while time.monotonic() < deadline:
            for ev in lg.poll():
                start, end, ok = ev[0], ev[1], ev[2]
                if ok and start >= t_kill:
                    took = end - t_kill if took is None else min(took, end - t_kill)
            if took is not None:
                break
            time.sleep(0.01)
        failed = sum(1 for e in lg.events if not e[2] and e[0] >= t_kill - 2)
    finally:
        err = lg.stop()
    errs = [line for line in err.splitlines() if line.strip()][:3]
    bl.log("bench: %s trial: killed member %d (leader), writes via member %d: %s"
           "  (%d failed writes)%s" % (
               name, leader, follower, "%.3f s" % took if took is not None else "no write in 20 s",
               failed, ("; " + " | ".join(errs)) if errs else ""))
    restart(leader)
    time.sleep(settle)
    return took


def summary(name, times):
    got = [t for t in times if t is not None]
    if not got:
        return [name, "0/%d" % len(times), "-", "-", "-"]
    return [name, "%d/%d" % (len(got), len(times)),
            "%.3f" % bl.percentile(got, 0.5), "%.3f" % max(got), "%.3f" % min(got)]


def bench_etcd(args):
    wd = bl.Workdir("etcd-failover")
    flags = ["--election-timeout", str(args.election_timeout)] if args.election_timeout else []
    etcd = bl.EtcdCluster(wd.path, 3, flags=flags)
    ok = False
    try:
        etcd.start()

        def restart(i):
            etcd.start_member(i)
            etcd.wait_ready(60)

        times = [trial("etcd", lambda i: etcd.urls[i], [], etcd.leader, etcd.kill,
                       args.rate, 3, args.settle, restart)
                 for _ in range(args.trials)]
        ok = True
        return times
    finally:
        etcd.stop()
        wd.close(keep=not ok)


def bench_capstan(args):
    if not bl.capstand_available():
        bl.log("bench: capstand in %s has no --init yet: capstan skipped" % bl.BUILDDIR)
        return None
    wd = bl.Workdir("capstan-failover")
    config = {"election-timeout": "%dms" % args.election_timeout} if args.election_timeout else None
    cl = bl.CapstanCluster(wd.path, 3, config=config)
    ok = False
    try:
        cl.up()
        urls, extra = cl.write_urls()

        def restart(i):
            cl.restart()

        times = [trial("capstan", lambda i: cl.write_urls()[0][i], extra, cl.leader,
                       cl.kill, args.rate, 3, args.settle, restart)
                 for _ in range(args.trials)]
        ok = True
        return times
    finally:
        cl.down()
        wd.close(keep=not ok)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--rate", type=int, default=50)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--only", choices=("etcd", "capstan"))
    ap.add_argument("--election-timeout", type=int, metavar="MS")
    args = ap.parse_args()

    print("machine: %s" % bl.machine())
    print("failover: %d trials; writes at %d/s through a follower; time from "
          "SIGKILL of the leader to the first acknowledged write sent after it"
          % (args.trials, args.rate))
    print("election timeout: %s" % (
        "%d ms for both" % args.election_timeout if args.election_timeout
        else "defaults (etcd 1 s / 100 ms heartbeat, capstan 400 ms / 50 ms)"))
    etcd = bench_etcd(args) if args.only != "capstan" else None
    capstan = bench_capstan(args) if args.only != "etcd" else None
    rows = []
    if etcd is not None:
        rows.append(summary("etcd 3.4", etcd))
    if capstan is not None:
        rows.append(summary("capstan", capstan))
    print(bl.table(rows, ["system", "trials ok", "p50 s", "max s", "min s"]))
    for name, times in (("etcd", etcd), ("capstan", capstan)):
        if times is not None:
            print("%s trials (s): %s" % (name, " ".join(
                "%.3f" % t if t is not None else "none" for t in times)))
    if capstan:
        got = [t for t in capstan if t is not None]
        p50 = bl.percentile(got, 0.5) if got else None
        print("%s: p50 %s -> %s" % (GOAL, "%.3f s" % p50 if p50 is not None else "none",
                                    "met" if p50 is not None and p50 < 1.0 and
                                    len(got) == len(capstan) else "not met"))
    else:
        print(GOAL + " (not measured)")
    print("machine load after the run: %s" % bl.machine().split("load average ")[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
