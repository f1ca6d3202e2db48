#!/usr/bin/env python3
"""Memory: resident set size of an idle replica, then with 100,000 keys.

Starts a 3-replica capstan (`capstan local up`) and a 3-member etcd 3.4,
reads each member's VmRSS from /proc/<pid>/status when idle (after a few
seconds of rest), then writes 100,000 new keys of 256 bytes through all
members (tests/bench/loadgen, concurrency 64), rests again and reads
VmRSS once more. Prints the leader's and the largest member's figures.
Goals: capstan idle < 20 MiB, with 100k keys < 80 MiB (etcd 3.4 reference:
28 MiB / 183 MiB). Prints figures; asserts nothing.

Options: --keys N (default 100000), --rest S (default 3), --only etcd|capstan.
"""

import argparse
import sys
import time

import benchlib as bl

GOAL_IDLE = 20
GOAL_FULL = 80
ETCD_REF = (28, 183)


def mib(kib):
    return None if kib is None else kib / 1024.0


def measure(name, urls, extra, pids, leader_of, keys, rest):
    time.sleep(rest)
    idle = [mib(bl.rss_kib(p)) for p in pids]
    leader = leader_of()
    bl.log("bench: %s idle RSS MiB: %s (leader member %d)" % (
        name, " ".join("%.1f" % v for v in idle), leader))
    t0 = time.monotonic()
    r = bl.loadgen(name, urls, concurrency=64, requests=keys, prefix="rss",
                   extra=extra, timeout=30)
    bl.log("bench: %s wrote %d keys in %.1f s (%.0f/s, %d errors)" % (
        name, r["requests"] - r["errors"], time.monotonic() - t0, r["rate"], r["errors"]))
    for line in r["stderr"][:5]:
        bl.log("bench:   " + line)
    peak_during = [mib(bl.rss_kib(p)) for p in pids]
    time.sleep(rest)
    full = [mib(bl.rss_kib(p)) for p in pids]
    leader2 = leader_of()
    bl.log("bench: %s RSS MiB with keys: %s (leader member %d; right after the "
           "writes: %s)" % (name, " ".join("%.1f" % v for v in full), leader2,
                            " ".join("%.1f" % v for v in peak_during)))
    return {"idle": idle, "full": full, "leader_idle": idle[leader],
            "leader_full": full[leader2], "errors": r["errors"],
            "written": r["requests"] - r["errors"]}


def bench_etcd(args):
    wd = bl.Workdir("etcd-rss")
    etcd = bl.EtcdCluster(wd.path, 3)
    ok = False
    try:
        etcd.start()
        res = measure("etcd", etcd.urls, [], etcd.pids(), etcd.leader, args.keys, args.rest)
        ok = True
        return res
    finally:
        etcd.stop()
        wd.close(keep=not ok)


def bench_capstan(args):
    if not bl.capstand_available():
        bl.log("bench: capstand in %s has no --init yet: capstan skipped" % bl.BUILDDIR)
        return None
    wd = bl.Workdir("capstan-rss")
    cl = bl.CapstanCluster(wd.path, 3)
    ok = False
    try:
        cl.up()
        urls, extra = cl.write_urls()
        res = measure("capstan", urls, extra, cl.pids(), cl.leader, args.keys, args.rest)
        for i, m in enumerate(cl.members):
            if not bl.pid_alive(m["pid"]):
                bl.log("bench: capstan member %d (pid %d) died during the run" % (i, m["pid"]))
        ok = True
        return res
    finally:
        cl.down()
        wd.close(keep=not ok)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=100000)
    ap.add_argument("--rest", type=float, default=3.0)
    ap.add_argument("--only", choices=("etcd", "capstan"))
    args = ap.parse_args()

    print("machine: %s" % bl.machine())
    print("RSS (VmRSS) of one member: idle, and after writing %d keys of 256 bytes"
          % args.keys)
    etcd = bench_etcd(args) if args.only != "capstan" else None
    capstan = bench_capstan(args) if args.only != "etcd" else None
    rows = []
    for name, r in (("etcd 3.4", etcd), ("capstan", capstan)):
        if r is None:
            continue
        rows.append([name, "%.1f" % r["leader_idle"], "%.1f" % max(r["idle"]),
                     "%.1f" % r["leader_full"], "%.1f" % max(r["full"]),
                     "%d" % r["written"]])
    print(bl.table(rows, ["system", "idle leader MiB", "idle max MiB",
                          "keys leader MiB", "keys max MiB", "keys written"]))
    print("reference: etcd 3.4 %d MiB idle / %d MiB with 100k keys" % ETCD_REF)
    if capstan:
        idle, full = max(capstan["idle"]), max(capstan["full"])
        print("goal: capstan idle < %d MiB: %.1f -> %s" % (
            GOAL_IDLE, idle, "met" if idle < GOAL_IDLE else "not met"))
        print("goal: capstan with 100k keys < %d MiB: %.1f -> %s" % (
            GOAL_FULL, full, "met" if full < GOAL_FULL and capstan["errors"] == 0
            else "not met"))
    else:
        print("goals: capstan idle < %d MiB, with 100k keys < %d MiB (not measured)" % (
            GOAL_IDLE, GOAL_FULL))
    print("machine load after the run: %s" % bl.machine().split("load average ")[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
