#!/usr/bin/env python3
"""Deployment scale-up, end to end: 0 -> 5,000 replicas on 500 hollow nodes.

`capstan local up --masters 3 --hollow-nodes 500` (capstan-hollow reports
bound pods Running), a Deployment of 0 replicas, then one PATCH of its
scale subresource to 5,000. A watch on a follower notes when each pod is
first seen (created by the ReplicaSet controller), bound (scheduler) and
Running (the hollow node's status write). Prints the time from the scale
request to the last pod created, bound and Running, the rate of each, and
the Deployment's status once it counts every replica available.
Goal: over 1,000 pods/s (kube-controller-manager's default client limit
creates about 20 pods/s). Prints figures; asserts nothing.

Options: --replicas N (5000), --nodes N (500).
BENCH_KEEP=1 keeps the temporary directory.
"""

import argparse
import http.client
import json
import sys
import time

import benchlib as bl
import hollow

GOAL = "goal: > 1000 pods/s from 0 to all Running"

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "scale", "namespace": "default"},
    "spec": {"replicas": 0,
             "selector": {"matchLabels": {"app": "scale"}},
             "template": {"metadata": {"labels": {"app": "scale"}},
                          "spec": {"containers": [{
                              "name": "c", "image": "registry.local/pause:3.9",
                              "resources": {"requests": {"cpu": "10m",
                                                         "memory": "16Mi"}}}]}}}}


def request(member, method, path, obj=None, ctype="application/json"):
    host, port = member["plain_url"][len("http://"):].rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    h = {"Authorization": "Bearer " + member["token"]}
    body = None
    if obj is not None:
        body = json.dumps(obj)
        h["Content-Type"] = ctype
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=5000)
    ap.add_argument("--nodes", type=int, default=500)
    args = ap.parse_args()
    if not bl.capstand_available():
        print("bench-deploy: capstand cannot run here; skipped")
        return 0
    bl.log("bench: %s" % bl.machine())
    wd = bl.Workdir("deploy")
    cl = bl.CapstanCluster(wd.sub("c"), n=3, extra_up=("--hollow-nodes", str(args.nodes),
                                                       "--timeout", "600s"))
    failed = True
    res = None
    try:
        cl.up(timeout=900)
        leader = cl.leader()
        follower = cl.members[(leader + 1) % 3]
        st, _ = request(follower, "POST", "/apis/apps/v1/namespaces/default/deployments",
                        DEPLOYMENT)
        if st not in (200, 201):
            raise RuntimeError("cannot create the Deployment: %d" % st)
        w = hollow.PodTimes(follower["plain_url"], follower["token"],
                            "/api/v1/namespaces/default/pods?watch=true&labelSelector=app%3Dscale",
                            rb'"name":"(scale-[0-9a-z]+-[0-9a-z]+)"')
        t0 = time.monotonic()
        st, body = request(follower, "PATCH",
                           "/apis/apps/v1/namespaces/default/deployments/scale/scale",
                           {"spec": {"replicas": args.replicas}},
                           "application/merge-patch+json")
        if st != 200:
            raise RuntimeError("scale answered %d: %r" % (st, body))
        last, last_t = -1, time.monotonic()
        while len(w.running) < args.replicas and w.error is None:
            n = len(w.seen) + len(w.bound) + len(w.running)
            if n != last:
                last, last_t = n, time.monotonic()
            elif time.monotonic() - last_t > 60:
                bl.log("bench: no progress for 60 s: %d created, %d bound, %d running" % (
                    len(w.seen), len(w.bound), len(w.running)))
                break
            time.sleep(0.2)
        w.close()
        # The Deployment's own view.
        t_avail = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            st, d = request(follower, "GET", "/apis/apps/v1/namespaces/default/deployments/scale")
            if st == 200 and d.get("status", {}).get("availableReplicas") == args.replicas:
                t_avail = time.monotonic()
                break
            time.sleep(0.2)
        res = {"created": len(w.seen), "bound": len(w.bound), "running": len(w.running)}
        for k, m in (("created", w.seen), ("bound", w.bound), ("running", w.running)):
            res[k + "_s"] = (max(m.values()) - t0) if m else float("nan")
        res["available_s"] = (t_avail - t0) if t_avail else float("nan")
        failed = res["running"] < args.replicas
    except Exception as ex:
        bl.log("bench: failed: %r" % ex)
    finally:
        cl.down()
        wd.close(keep=failed)
    print("Deployment 0 -> %d replicas on %d hollow nodes (3 masters)" % (args.replicas,
                                                                          args.nodes))
    if res:
        print("%-10s %-8s %-10s %s" % ("", "pods", "last at s", "pods/s"))
        for k in ("created", "bound", "running"):
            s = res[k + "_s"]
            print("%-10s %-8d %-10.2f %.0f" % (k, res[k], s, res[k] / s if s > 0 else 0))
        print("Deployment status availableReplicas=%d after %.2f s" % (
            args.replicas, res["available_s"]))
    print(GOAL)
    bl.log("bench: %s" % bl.machine())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
