#!/usr/bin/env python3
"""Scheduler throughput, end to end: 10,000 pending pods onto 1,000 hollow
nodes, then onto 5,000.

Each run: `capstan local up --masters 3 --hollow-nodes N` (capstan-hollow
registers N Ready nodes, renews their Leases every 10 s and reports bound
pods Running), then tests/bench/loadgen creates 10,000 pods without a
node (POST /api/v1/namespaces/bench/pods, 64 in flight spread over the 3
masters, each pod asking for 10m CPU and 16Mi). A watch on a follower notes
when each pod is first seen, first seen bound (spec.nodeName, the bind
written through Raft) and first seen Running (the hollow node's status
write). Prints:
  - creation rate (pods/s acknowledged by the API);
  - scheduling throughput: pods bound / (last bind - first creation seen);
  - time from a pod's creation to its binding, as the watch saw both:
    p50, p99, max;
  - time until every pod was Running.
When the scheduler keeps up, the creation rate bounds the scheduling
rate: then the latencies say how far behind creation binding stays.
Goal: >= 2,000 pods/s (kube-scheduler's CI floor is 680 pods/s for 10,000
pods on 5,000 nodes without any API cost). Prints figures; asserts nothing.

Options: --pods N (10000), --nodes LIST (1000,5000), --concurrency C (64).
BENCH_KEEP=1 keeps the temporary directory.
"""

import argparse
import json
import os
import sys
import time

import benchlib as bl
import hollow

GOAL = "goal: >= 2000 pods/s scheduled"

POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "bench-@N@", "namespace": "bench", "labels": {"app": "bench"}},
       "spec": {"containers": [{"name": "c", "image": "registry.local/pause:3.9",
                                "resources": {"requests": {"cpu": "10m",
                                                           "memory": "16Mi"}}}]}}


def post_json(member, path, obj):
    import http.client
    host, port = member["plain_url"][len("http://"):].rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    c.request("POST", path, body=json.dumps(obj),
              headers={"Authorization": "Bearer " + member["token"],
                       "Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


def wait_progress(w, pods, what):
    """Until every pod runs, or nothing moved for a minute."""
    last, last_t = -1, time.monotonic()
    while len(w.running) < pods and w.error is None:
        n = len(w.seen) + len(w.bound) + len(w.running)
        if n != last:
            last, last_t = n, time.monotonic()
        elif time.monotonic() - last_t > 60:
            bl.log("bench: %s: no progress for 60 s: %d seen, %d bound, %d running" % (
                what, len(w.seen), len(w.bound), len(w.running)))
            break
        time.sleep(0.2)


def run_one(workdir, nodes, pods, concurrency):
    cl = bl.CapstanCluster(workdir, n=3,
                           extra_up=("--hollow-nodes", str(nodes), "--timeout", "600s"))
    try:
        t0 = time.monotonic()
        cl.up(timeout=900)
        bl.log("bench: cluster with %d hollow nodes up in %.1f s" % (nodes, time.monotonic() - t0))
        leader = cl.leader()
        follower = cl.members[(leader + 1) % 3]
        st = post_json(follower, "/api/v1/namespaces",
                       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
        if st not in (200, 201, 409):
            raise RuntimeError("cannot create namespace bench: %d" % st)
        w = hollow.PodTimes(follower["plain_url"], follower["token"],
                            "/api/v1/namespaces/bench/pods?watch=true",
                            rb'"name":"(bench-\d+)"')
        body = os.path.join(workdir, "pod.json")
        with open(body, "w") as f:
            json.dump(POD, f)
        urls = [m["plain_url"] for m in cl.members]
        t_start = time.monotonic()
        summary = bl.loadgen("post", urls, concurrency=concurrency, requests=pods,
                             timeout=30, extra=["--path", "/api/v1/namespaces/bench/pods",
                                                "--body", body, "--token", cl.admin_token()])
        t_created = time.monotonic()
        ok = summary["requests"] - summary["errors"]
        bl.log("bench: %s pods created in %.1f s: %s" % (
            ok, t_created - t_start, json.dumps({k: v for k, v in summary.items()
                                                 if k != "stderr"})[:300]))
        wait_progress(w, pods, "steady")
        w.close()
        if w.error is not None:
            raise RuntimeError("watch failed: %r" % w.error)
        lat = [w.bound[n] - w.seen[n] for n in w.bound if n in w.seen]
        first = min(w.seen.values()) if w.seen else t_start
        last_bound = max(w.bound.values()) if w.bound else float("nan")
        last_running = max(w.running.values()) if w.running else float("nan")
        spread = {}
        for n in w.node_of.values():
            spread[n] = spread.get(n, 0) + 1
        return {
            "nodes": nodes, "pods": pods, "created": ok,
            "create_rate": ok / (t_created - t_start) if t_created > t_start else 0,
            "bound": len(w.bound), "running": len(w.running),
            "sched_rate": len(w.bound) / (last_bound - first) if w.bound else 0,
            "p50": bl_pct(lat, 50), "p99": bl_pct(lat, 99), "max": max(lat) if lat else 0,
            "all_running_s": last_running - t_start,
            "nodes_used": len(spread),
            "max_per_node": max(spread.values()) if spread else 0,
        }
    finally:
        cl.down()


def bl_pct(values, p):
    return hollow.percentile(values, p) * 1000.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--nodes", default="1000,5000")
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    if not bl.capstand_available():
        print("bench-sched: capstand cannot run here; skipped")
        return 0
    bl.log("bench: %s" % bl.machine())
    wd = bl.Workdir("sched")
    rows = []
    failed = False
    try:
        for n in [int(x) for x in args.nodes.split(",") if x]:
            try:
                rows.append(run_one(wd.sub("n%d" % n), n, args.pods, args.concurrency))
            except Exception as ex:
                failed = True
                bl.log("bench: run with %d nodes failed: %r" % (n, ex))
    finally:
        wd.close(keep=failed)
    print("Scheduler: %d pods created without a node, onto hollow nodes (3 masters)" % args.pods)
    print("%-7s %-9s %-12s %-12s %-9s %-9s %-9s %-10s %s" % (
        "nodes", "bound", "created/s", "scheduled/s", "p50 ms", "p99 ms", "max ms",
        "all Run s", "spread"))
    for r in rows:
        print("%-7d %-9d %-12.0f %-12.0f %-9.0f %-9.0f %-9.0f %-10.1f %d nodes, max %d" % (
            r["nodes"], r["bound"], r["create_rate"], r["sched_rate"], r["p50"], r["p99"],
            r["max"] * 1000, r["all_running_s"], r["nodes_used"], r["max_per_node"]))
    print(GOAL)
    bl.log("bench: %s" % bl.machine())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
