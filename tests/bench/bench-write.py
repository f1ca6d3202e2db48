#!/usr/bin/env python3
"""Write throughput and latency: capstan (3 replicas) against etcd 3.4
(3 members) on this machine, in one run.

Each system gets 256-byte writes of new keys from tests/bench/loadgen
(HTTP/2, requests spread round-robin over all three members) at
concurrency 1, 16 and 64: a short warm-up, then a measured window.
Prints writes/s, p50 and p99 for both and the ratio capstan/etcd, plus
one more row at the top level with every request sent to the leader
(which shows what forwarding from followers costs).
Goal: capstan >= 3x etcd's writes/s at concurrency 64, with a lower p99.
Before each level the disk is settled (sync, written back), so that no
level pays for the writes of the one before. Prints figures; asserts nothing.

Options: --duration S (default 10), --warmup S (2), --concurrency 1,16,64,
--only etcd|capstan, --no-leader-row. BENCH_KEEP=1 keeps the temporary directory.
"""

import argparse
import sys

import benchlib as bl

GOAL = "goal: capstan >= 3x etcd writes/s at c=64, with a lower p99"


def run_series(name, urls, extra, pids, conc, duration, warmup, leader_url=None):
    """Runs each concurrency level over all URLs, then (if leader_url) the
    highest level once more against the leader alone, keyed "Lc"."""
    results = {}
    levels = [(c, c, urls) for c in conc]
    if leader_url:
        levels.append(("L%d" % conc[-1], conc[-1], [leader_url]))
    for label, c, targets in levels:
        bl.settle_disk()
        cpu0 = sum(bl.cpu_seconds(p) for p in pids)
        busy0 = bl.system_busy_seconds()
        r = bl.loadgen(name, targets, concurrency=c, duration=duration, warmup=warmup,
                       prefix="bench/c%s" % label, extra=extra,
                       timeout=max(10.0, duration))
        cpu1 = sum(bl.cpu_seconds(p) for p in pids)
        busy1 = bl.system_busy_seconds()
        # CPU over warm-up plus window, per second, in % of one core. "other"
        # is what the rest of the machine used: a noisy neighbour shows here.
        span = r["seconds"] + warmup
        r["server_cpu_pct"] = 100.0 * (cpu1 - cpu0) / span
        r["other_cpu_pct"] = max(0.0, 100.0 * (busy1 - busy0 - (cpu1 - cpu0)) / span
                                 - r["cpu_pct"])
        results[label] = r
        bl.log("bench: %-7s c=%-4s %8.0f writes/s  p50 %7.2f ms  p99 %7.2f ms  "
               "errors %d  cpu%%: loadgen %.0f servers %.0f other %.0f  conns %d" % (
                   name, label, r["rate"], r["p50_ms"], r["p99_ms"], r["errors"],
                   r["cpu_pct"], r["server_cpu_pct"], r["other_cpu_pct"],
                   r["connections"]))
        for line in r["stderr"][:5]:
            bl.log("bench:   " + line)
    return results


def bench_etcd(args, conc):
    wd = bl.Workdir("etcd")
    etcd = bl.EtcdCluster(wd.path, 3)
    ok = False
    try:
        etcd.start()
        bl.log("bench: etcd %s up, leader etcd%d" % (
            bl.etcdctl(etcd.urls[:1], "version").split("\n")[0].split()[-1], etcd.leader()))
        res = run_series("etcd", etcd.urls, [], etcd.pids(), conc,
                         args.duration, args.warmup,
                         etcd.urls[etcd.leader()] if args.leader_row else None)
        # The keys really landed: read one back through another member.
        c = conc[-1]
        out = bl.etcdctl(etcd.urls[1:2], "get", "bench/c%d/%d" % (c, 0),
                         "--print-value-only")
        if len(out.rstrip("\n")) != 256:
            bl.log("bench: etcd: key bench/c%d/0 has %d bytes, want 256" % (
                c, len(out.rstrip("\n"))))
        ok = True
        return res
    finally:
        etcd.stop()
        wd.close(keep=not ok)


def bench_capstan(args, conc):
    if not bl.capstand_available():
        bl.log("bench: capstand in %s has no --init yet: capstan skipped" % bl.BUILDDIR)
        return None
    wd = bl.Workdir("capstan")
    cl = bl.CapstanCluster(wd.path, 3)
    ok = False
    try:
        cl.up()
        urls, extra = cl.write_urls()
        bl.log("bench: capstan up: %s (leader member %d)" % (" ".join(urls), cl.leader()))
        res = run_series("capstan", urls, extra, cl.pids(), conc,
                         args.duration, args.warmup,
                         urls[cl.leader()] if args.leader_row else None)
        st, body = cl.get(1, "/capstan/v1/store/bench/c%d/0?consistency=local" % conc[-1])
        if st != 200:
            bl.log("bench: capstan: reading bench/c%d/0 back: %s %s" % (conc[-1], st, body))
        for i, m in enumerate(cl.members):
            if not bl.pid_alive(m["pid"]):
                bl.log("bench: capstan member %d (pid %d) died during the run" % (i, m["pid"]))
        ok = True
        return res
    finally:
        cl.down()
        wd.close(keep=not ok)


def fmt(v, f="%.0f"):
    return "-" if v is None else f % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--only", choices=("etcd", "capstan"))
    ap.add_argument("--no-leader-row", dest="leader_row", action="store_false",
                    help="skip the extra run against the leader alone")
    args = ap.parse_args()
    conc = [int(x) for x in args.concurrency.split(",")]
    labels = list(conc) + (["L%d" % conc[-1]] if args.leader_row else [])

    print("machine: %s" % bl.machine())
    print("writes: 256-byte values, new keys, spread over 3 members; "
          "%.0f s warm-up, %.0f s measured per level" % (args.warmup, args.duration))
    etcd = bench_etcd(args, conc) if args.only != "capstan" else None
    capstan = bench_capstan(args, conc) if args.only != "etcd" else None

    rows = []
    for c in labels:
        e = etcd.get(c) if etcd else None
        k = capstan.get(c) if capstan else None
        ratio = k["rate"] / e["rate"] if e and k and e["rate"] else None
        rows.append([str(c) if isinstance(c, int) else "%s leader" % c[1:],
                     fmt(e and e["rate"]), fmt(e and e["p50_ms"], "%.2f"),
                     fmt(e and e["p99_ms"], "%.2f"), fmt(e and e["errors"], "%d"),
                     fmt(k and k["rate"]), fmt(k and k["p50_ms"], "%.2f"),
                     fmt(k and k["p99_ms"], "%.2f"), fmt(k and k["errors"], "%d"),
                     fmt(ratio, "%.2fx")])
    print(bl.table(rows, ["c", "etcd w/s", "p50 ms", "p99 ms", "err",
                          "capstan w/s", "p50 ms", "p99 ms", "err", "capstan/etcd"]))
    cpu_rows = []
    for c in labels:
        e = etcd.get(c) if etcd else None
        k = capstan.get(c) if capstan else None
        cpu_rows.append([str(c) if isinstance(c, int) else "%s leader" % c[1:], fmt(e and e["server_cpu_pct"]), fmt(e and e["cpu_pct"]),
                         fmt(e and e["other_cpu_pct"]),
                         fmt(k and k["server_cpu_pct"]), fmt(k and k["cpu_pct"]),
                         fmt(k and k["other_cpu_pct"])])
    print("CPU %% of one core (of %d; servers = the three members together, "
          "other = the rest of the machine):" % (bl.os.cpu_count()))
    print(bl.table(cpu_rows, ["c", "etcd servers", "loadgen", "other",
                              "capstan servers", "loadgen", "other"]))
    top = conc[-1]
    if etcd and capstan and top in etcd and top in capstan:
        e, k = etcd[top], capstan[top]
        print("%s: %.2fx writes/s, p99 %.2f ms vs %.2f ms -> %s" % (
            GOAL, k["rate"] / e["rate"] if e["rate"] else 0, k["p99_ms"], e["p99_ms"],
            "met" if e["rate"] and k["rate"] >= 3 * e["rate"] and k["p99_ms"] < e["p99_ms"]
            else "not met"))
    else:
        print(GOAL + " (not measured: %s missing)" % ("capstan" if not capstan else "etcd"))
    print("machine load after the run: %s" % bl.machine().split("load average ")[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
