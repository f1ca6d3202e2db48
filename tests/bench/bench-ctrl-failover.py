#!/usr/bin/env python3
"""Control-plane failover: leader SIGKILL -> controllers acting on the new
leader, p50 over 10 trials.

`capstan local up --masters 3 --hollow-nodes 10`; a Deployment "probe" of 0
replicas. Each trial SIGKILLs the leader, then PATCHes the Deployment's
scale to 1 through a surviving master, retrying every 20 ms until a master
accepts it (writes fail while there is no leader). A watch on that
survivor notes when the pod appears (Deployment then ReplicaSet
controller), is bound (scheduler) and runs (hollow node). Times are from
the kill. The killed master is restarted (`capstan local up` again) and
the Deployment scaled back to 0 before the next trial.
Goal: p50 under 2 s from the kill to a new pod (kube-controller-manager's
default leader lease takes about 15 s). Prints figures; asserts nothing.

Options: --trials N (10).  BENCH_KEEP=1 keeps the temporary directory.
"""

import argparse
import http.client
import json
import sys
import time

import benchlib as bl
import hollow

GOAL = "goal: p50 < 2 s from leader SIGKILL to a pod created by the new leader's controllers"

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "probe", "namespace": "default"},
    "spec": {"replicas": 0,
             "selector": {"matchLabels": {"app": "probe"}},
             "template": {"metadata": {"labels": {"app": "probe"}},
                          "spec": {"containers": [{"name": "c",
                                                   "image": "registry.local/pause:3.9"}]}}}}


def request(member, method, path, obj=None, ctype="application/json", timeout=5):
    host, port = member["plain_url"][len("http://"):].rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=timeout)
    h = {"Authorization": "Bearer " + member["token"]}
    body = None
    if obj is not None:
        body = json.dumps(obj)
        h["Content-Type"] = ctype
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
    finally:
        c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data


def scale(member, n):
    return request(member, "PATCH", "/apis/apps/v1/namespaces/default/deployments/probe/scale",
                   {"spec": {"replicas": n}}, "application/merge-patch+json")


def live_pods(member):
    st, body = request(member, "GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dprobe")
    if st != 200:
        return None
    return [p for p in body["items"] if not p["metadata"].get("deletionTimestamp")]


def trial(cl, k):
    leader = cl.leader()
    survivor = cl.members[(leader + 1) % 3]
    w = hollow.PodTimes(survivor["plain_url"], survivor["token"],
                        "/api/v1/namespaces/default/pods?watch=true&labelSelector=app%3Dprobe",
                        rb'"name":"(probe-[0-9a-z]+-[0-9a-z]+)"')
    before = set(w.seen)
    t_kill = time.monotonic()
    cl.kill(leader)
    t_write = None
    while time.monotonic() - t_kill < 30:
        try:
            st, _ = scale(survivor, 1)
        except OSError:
            st = 0
        if st == 200:
            t_write = time.monotonic()
            break
        time.sleep(0.02)
    res = {"write": None, "created": None, "bound": None, "running": None}
    if t_write is not None:
        res["write"] = t_write - t_kill
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            new = [n for n in w.running if n not in before]
            if new:
                break
            time.sleep(0.01)
        for key, m in (("created", w.seen), ("bound", w.bound), ("running", w.running)):
            ts = [t for n, t in m.items() if n not in before]
            if ts:
                res[key] = min(ts) - t_kill
    w.close()
    bl.log("bench: trial %d: killed member %d; write accepted %s, pod created %s, bound %s, "
           "running %s (s after the kill)" % (
               k, leader, *["%.3f" % res[x] if res[x] is not None else "-"
                            for x in ("write", "created", "bound", "running")]))
    cl.restart(timeout=120)
    # Back to 0 replicas, and no pod left, for the next trial.
    m = cl.members[cl.leader()]
    bl.wait_for("scale to 0", lambda: scale(m, 0)[0] == 200, timeout=30, interval=0.1)
    bl.wait_for("no probe pod", lambda: live_pods(m) == [], timeout=60, interval=0.1)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10)
    args = ap.parse_args()
    if not bl.capstand_available():
        print("bench-ctrl-failover: capstand cannot run here; skipped")
        return 0
    bl.log("bench: %s" % bl.machine())
    wd = bl.Workdir("ctrl-failover")
    cl = bl.CapstanCluster(wd.sub("c"), n=3, extra_up=("--hollow-nodes", "10"))
    results = []
    failed = False
    try:
        cl.up(timeout=300)
        m = cl.members[cl.leader()]
        st, body = request(m, "POST", "/apis/apps/v1/namespaces/default/deployments",
                           DEPLOYMENT)
        if st not in (200, 201):
            raise RuntimeError("cannot create the Deployment: %d %r" % (st, body))
        for k in range(args.trials):
            results.append(trial(cl, k + 1))
    except Exception as ex:
        failed = True
        bl.log("bench: failed: %r" % ex)
    finally:
        cl.down()
        wd.close(keep=failed)
    print("Control-plane failover: leader SIGKILL -> new leader's controllers "
          "(3 masters, 10 hollow nodes), %d trials" % len(results))
    print("%-34s %-8s %-8s %-8s %s" % ("seconds after the kill", "p50", "max", "min", "trials"))
    for key, what in (("write", "scale write accepted (election)"),
                      ("created", "pod created (Deployment, RS)"),
                      ("bound", "pod bound (scheduler)"),
                      ("running", "pod Running (hollow node)")):
        v = [r[key] for r in results if r[key] is not None]
        if v:
            print("%-34s %-8.3f %-8.3f %-8.3f %d/%d" % (what, hollow.percentile(v, 50), max(v),
                                                         min(v), len(v), len(results)))
        else:
            print("%-34s %-8s %-8s %-8s 0/%d" % (what, "-", "-", "-", len(results)))
    print(GOAL)
    bl.log("bench: %s" % bl.machine())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
