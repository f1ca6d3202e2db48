#!/usr/bin/env python3
"""The Kubernetes API path of a 3-replica capstan, against etcd 3.4's bare put.

One run, on this machine:
1. etcd 3.4 (3 members): 256-byte gRPC puts of new keys at concurrency 64
   (tests/bench/loadgen --target etcd), the figure the API path is held to.
2. capstan (`capstan local up --masters 3`), everything over TLS with the
   admin client certificate on the HTTPS listeners (HTTP/2 by ALPN):
   - RSS of each replica when idle;
   - 10,000 pods created (a realistic spec: labels, annotations, two
     containers with ports, env, resources, probes, volume mounts, a
     configMap volume), then RSS of each replica (goal < 150 MiB);
   - full lists of the 10,000 pods as JSON and as Table
     (Accept: application/json;as=Table;v=v1;g=meta.k8s.io), one at a
     time, on the leader and on a follower: p50/p99 (goal p99 < 200 ms);
     the same in msgpack (application/vnd.msgpack), for comparison;
   - 1,000 watchers on one follower (one loadgen process, HTTP/2 streams),
     then single ConfigMap creates on the leader one after another: the
     delay from each create's acknowledgement to each watcher seeing its
     ADDED event (goal p99 < 100 ms); then the same with the watchers on
     the leader;
   - ConfigMap creates (POST /api/v1/namespaces/default/configmaps, JSON,
     a new metadata.name each, 256 bytes of data) at concurrency 64 spread
     over the three replicas: creates/s, p50, p99 (goal >= 1.5x etcd's
     puts/s).
Prints figures; asserts nothing.

Options: --duration S (10), --warmup S (2), --pods N (10000), --lists N
(20), --watchers N (1000), --watch-writes N (20), --only etcd|capstan,
--no-msgpack, --creates-only (no pods, lists or watchers: the creates
against etcd alone).
BENCH_KEEP=1 keeps the temporary directory.
"""

import argparse
import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
import time

import benchlib as bl

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
MSGPACK = "application/vnd.msgpack"
TABLE_MSGPACK = MSGPACK + ";as=Table;v=v1;g=meta.k8s.io"

POD = """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"bench-pod-@N@",
"namespace":"default","labels":{"app":"web","tier":"frontend",
"pod-template-hash":"7d9f8c6b5d","app.kubernetes.io/name":"web",
"app.kubernetes.io/instance":"web-@N@"},
"annotations":{"prometheus.io/scrape":"true","prometheus.io/port":"9102",
"kubectl.kubernetes.io/default-container":"web"}},
"spec":{"restartPolicy":"Always","terminationGracePeriodSeconds":30,
"dnsPolicy":"ClusterFirst","serviceAccountName":"default",
"securityContext":{"runAsNonRoot":true,"runAsUser":1000,"fsGroup":2000},
"containers":[{"name":"web","image":"registry.example.com/team/web:1.24.3",
"imagePullPolicy":"IfNotPresent","args":["--port=8080","--metrics-port=9102"],
"ports":[{"name":"http","containerPort":8080,"protocol":"TCP"},
{"name":"metrics","containerPort":9102,"protocol":"TCP"}],
"env":[{"name":"POD_INDEX","value":"@N@"},{"name":"LOG_LEVEL","value":"info"},
{"name":"CACHE_SIZE","value":"256Mi"}],
"resources":{"requests":{"cpu":"100m","memory":"128Mi"},
"limits":{"cpu":"500m","memory":"256Mi"}},
"livenessProbe":{"httpGet":{"path":"/healthz","port":8080},
"initialDelaySeconds":10,"periodSeconds":10},
"readinessProbe":{"httpGet":{"path":"/ready","port":8080},"periodSeconds":5},
"volumeMounts":[{"name":"config","mountPath":"/etc/web","readOnly":true}]},
{"name":"log-shipper","image":"registry.example.com/infra/fluent-bit:2.2.0",
"resources":{"requests":{"cpu":"10m","memory":"32Mi"}},
"volumeMounts":[{"name":"config","mountPath":"/fluent-bit/etc","readOnly":true}]}],
"volumes":[{"name":"config","configMap":{"name":"web-config"}}]}}
"""

CONFIGMAP = ('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"%s-@N@",'
             '"namespace":"default"},"data":{"value":"%s"}}\n')


def pct(values, p):
    return bl.percentile(values, p)


class Api:
    """A keep-alive HTTPS (HTTP/1.1) client of one replica, admin cert."""

    def __init__(self, member):
        pki = os.path.join(member["data"], "pki")
        ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        ctx.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
        hostport = member["url"][len("https://"):].split("/", 1)[0]
        host, port = hostport.rsplit(":", 1)
        self.conn = http.client.HTTPSConnection(host, int(port), timeout=30, context=ctx)

    def req(self, method, path, body=None):
        headers = {"Accept": "application/json"}
        if body is not None:
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        try:
            data = json.loads(data)
        except ValueError:
            pass
        return r.status, data

    def close(self):
        self.conn.close()


def tls_opts(cl):
    pki = os.path.join(cl.members[0]["data"], "pki")
    return ["--cacert", os.path.join(pki, "ca.crt"),
            "--cert", os.path.join(pki, "admin.crt"),
            "--key", os.path.join(pki, "admin.key")]


def loadgen_api(target, urls, extra, **kw):
    return bl.loadgen(target, urls, extra=extra, **kw)


def bench_etcd(args):
    wd = bl.Workdir("etcd-api")
    etcd = bl.EtcdCluster(wd.path, 3)
    ok = False
    try:
        etcd.start()
        r = bl.loadgen("etcd", etcd.urls, concurrency=64, duration=args.duration,
                       warmup=args.warmup, prefix="bench/api",
                       timeout=max(10.0, args.duration))
        bl.log("bench: etcd put c=64: %.0f/s p50 %.2f ms p99 %.2f ms errors %d" % (
            r["rate"], r["p50_ms"], r["p99_ms"], r["errors"]))
        ok = True
        return r
    finally:
        etcd.stop()
        wd.close(keep=not ok)


def rss_all(cl):
    return [bl.rss_kib(p) / 1024.0 if bl.rss_kib(p) else None for p in cl.pids()]


def create_pods(cl, args, extra, wd):
    path = wd.sub("pod.json")
    with open(path, "w") as f:
        f.write(POD.replace("\n", ""))
    urls = [m["url"] for m in cl.members]
    t0 = time.monotonic()
    r = bl.loadgen("post", urls, concurrency=64, requests=args.pods,
                   timeout=30, extra=extra + ["--path", "/api/v1/namespaces/default/pods",
                                              "--body", path])
    secs = time.monotonic() - t0
    bl.log("bench: created %d pods in %.1f s (%.0f/s, p50 %.1f ms p99 %.1f ms, %d errors)" % (
        r["requests"] - r["errors"], secs, r["rate"], r["p50_ms"], r["p99_ms"], r["errors"]))
    for line in r["stderr"][:5]:
        bl.log("bench:   " + line)
    return r


def bench_lists(cl, args, extra, leader, follower):
    res = {}
    for who, i in (("leader", leader), ("follower", follower)):
        formats = [("JSON", "application/json"), ("Table", TABLE)]
        if not args.no_msgpack:
            formats += [("msgpack", MSGPACK), ("Table msgpack", TABLE_MSGPACK)]
        for fmt, accept in formats:
            r = bl.loadgen("get", [cl.members[i]["url"]], concurrency=1,
                           requests=args.lists, warmup=0, timeout=60,
                           extra=extra + ["--path", "/api/v1/namespaces/default/pods",
                                          "--accept", accept])
            res[(who, fmt)] = r
            bl.log("bench: list %d pods %s on the %s: p50 %.1f ms p99 %.1f ms max %.1f ms, "
                   "%.1f MiB per list, %d errors" % (
                       args.pods, fmt, who, r["p50_ms"], r["p99_ms"], r["max_ms"],
                       r["rx_bytes"] / max(1, r["requests"] - r["errors"]) / 1048576.0,
                       r["errors"]))
            for line in r["stderr"][:3]:
                bl.log("bench:   " + line)
    return res


def bench_watch(cl, args, extra, leader, follower, prefix):
    """The watchers count as established once each has seen one of the
    warm-up creates (an event proves the stream is live end to end); the
    measured creates follow."""
    api = Api(cl.members[leader])
    p = None
    try:
        st, body = api.req("GET", "/api/v1/namespaces/default/configmaps?limit=1")
        if st != 200:
            raise RuntimeError("list configmaps: %s %s" % (st, body))
        rv = body["metadata"]["resourceVersion"]
        path = ("/api/v1/namespaces/default/configmaps?watch=true&labelSelector=bench%%3Dwatch"
                "&resourceVersion=%s" % rv)
        hold = 90 + args.watch_writes * args.watch_gap
        argv = [bl.program("tests/bench/loadgen"), "--target", "watch",
                "--concurrency", str(args.watchers), "--duration", str(hold),
                "--url", cl.members[follower]["url"], "--path", path] + extra
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen = {}  # name -> list of monotonic times
        warm = set()  # watchers that saw a warm-up create
        cond = threading.Condition()

        def reader():
            for line in p.stdout:
                f = line.split()
                with cond:
                    if line.startswith("w ") and len(f) == 4:
                        if f[3].startswith("watch-warm-"):
                            warm.add(int(f[1]))
                        else:
                            seen.setdefault(f[3], []).append(float(f[2]))
                    cond.notify_all()
        th = threading.Thread(target=reader, daemon=True)
        th.start()

        def create(name):
            return api.req("POST", "/api/v1/namespaces/default/configmaps", {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {"bench": "watch"}},
                "data": {"k": "v"}})
        t_open = time.monotonic()
        k = 0
        while time.monotonic() - t_open < 60 and p.poll() is None:
            time.sleep(1.0)
            st, body = create("watch-warm-%s-%d" % (prefix, k))
            k += 1
            with cond:
                cond.wait_for(lambda: len(warm) >= args.watchers, 1.0)
                if len(warm) >= args.watchers:
                    break
        ready = len(warm)
        bl.log("bench: %d of %d watchers on member %d established after %.1f s "
               "(%d warm-up creates)" % (ready, args.watchers, follower,
                                         time.monotonic() - t_open, k))
        time.sleep(1.0)
        cpu_before = bl.cpu_seconds(cl.members[follower]["pid"])
        writes = []  # (name, sent, acked)
        for k in range(args.watch_writes):
            name = "watch-probe-%s-%d" % (prefix, k)
            t_send = time.monotonic()
            st, body = create(name)
            t_ack = time.monotonic()
            if st != 201 and st != 200:
                bl.log("bench: watch probe %s: %s %s" % (name, st, body))
                continue
            writes.append((name, t_send, t_ack))
            time.sleep(args.watch_gap)
        # Let the last events arrive.
        with cond:
            cond.wait_for(lambda: all(len(seen.get(w[0], [])) >= ready
                                      for w in writes), 10)
        cpu_used = bl.cpu_seconds(cl.members[follower]["pid"]) - cpu_before
        p.kill()
        p.wait()
        th.join(5)
        err = p.stderr.read().strip().splitlines()
        for line in err[:5]:
            bl.log("bench:   " + line)
        from_ack, from_send, missing = [], [], 0
        with cond:
            for name, t_send, t_ack in writes:
                times = seen.get(name, [])
                missing += max(0, args.watchers - len(times))
                for t in times:
                    from_ack.append((t - t_ack) * 1000.0)
                    from_send.append((t - t_send) * 1000.0)
        return {"ready": ready, "writes": len(writes), "events": len(from_ack),
                "missing": missing, "from_ack": from_ack, "from_send": from_send,
                "follower_cpu_s": cpu_used}
    finally:
        if p and p.poll() is None:
            p.kill()
            p.wait()
        api.close()


def bench_capstan(args):
    if not bl.capstand_available():
        bl.log("bench: capstand in %s has no --init yet: capstan skipped" % bl.BUILDDIR)
        return None
    wd = bl.Workdir("capstan-api")
    cl = bl.CapstanCluster(wd.path, 3)
    ok = [False]
    res = {}
    try:
        cl.up()
        extra = tls_opts(cl)
        leader = cl.leader()
        follower = next(i for i in range(len(cl.members)) if i != leader)
        bl.log("bench: capstan up: %s (leader member %d)" % (
            " ".join(m["url"] for m in cl.members), leader))
        time.sleep(args.rest)
        res["rss_idle"] = rss_all(cl)
        bl.log("bench: idle RSS MiB: %s" % " ".join("%.1f" % v for v in res["rss_idle"]))

        if args.creates_only:
            bench_configmaps(cl, args, extra, wd, res, leader, follower)
            ok[0] = True
            return res
        res["pods"] = create_pods(cl, args, extra, wd)
        time.sleep(args.rest)
        res["rss_pods"] = rss_all(cl)
        bl.log("bench: RSS MiB with %d pods: %s" % (
            args.pods, " ".join("%.1f" % v for v in res["rss_pods"])))

        res["lists"] = bench_lists(cl, args, extra, leader, follower)
        res["watch"] = {}
        for where in ("follower", "leader"):
            w = bench_watch(cl, args, extra, leader,
                            follower if where == "follower" else leader, where)
            res["watch"][where] = w
            bl.log("bench: watch on the %s: %d watchers, %d writes, %d events, %d missing, "
                   "p50 %.1f ms p99 %.1f ms after the ack" % (
                       where, w["ready"], w["writes"], w["events"], w["missing"],
                       pct(w["from_ack"], 0.5) or 0, pct(w["from_ack"], 0.99) or 0))

        bench_configmaps(cl, args, extra, wd, res, leader, follower)
        ok[0] = True
        return res
    finally:
        cl.down()
        wd.close(keep=not ok[0])


def bench_configmaps(cl, args, extra, wd, res, leader, follower):
    """ConfigMap creates at c=64 over the three replicas (into @res)."""
    body = wd.sub("configmap.json")
    with open(body, "w") as f:
        f.write(CONFIGMAP % ("bench-cm", "x" * 256))
    cpu0s = [bl.cpu_seconds(p) for p in cl.pids()]
    cpu0 = sum(cpu0s)
    r = bl.loadgen("post", [m["url"] for m in cl.members], concurrency=64,
                   duration=args.duration, warmup=args.warmup,
                   timeout=max(10.0, args.duration),
                   extra=extra + ["--path", "/api/v1/namespaces/default/configmaps",
                                  "--body", body])
    r["server_cpu_pct"] = 100.0 * (sum(bl.cpu_seconds(p) for p in cl.pids()) - cpu0) / (
        r["seconds"] + args.warmup)
    secs = r["seconds"] + args.warmup
    r["replica_cpu_pct"] = [100.0 * (bl.cpu_seconds(p) - c0) / secs
                            for p, c0 in zip(cl.pids(), cpu0s)]
    r["cpu_ms_per_create"] = 1000.0 * (sum(bl.cpu_seconds(p) for p in cl.pids()) - cpu0) / max(
        1.0, r["rate"] * secs)
    res["configmaps"] = r
    bl.log("bench: configmap creates c=64: %.0f/s p50 %.2f ms p99 %.2f ms errors %d "
           "(servers %.0f%% cpu, loadgen %.0f%%)" % (
               r["rate"], r["p50_ms"], r["p99_ms"], r["errors"],
               r["server_cpu_pct"], r["cpu_pct"]))
    bl.log("bench:   replica CPU %% (leader is member %d): %s; about %.2f ms of server CPU "
           "per create" % (leader, " ".join("%.0f" % c for c in r["replica_cpu_pct"]),
                           r["cpu_ms_per_create"]))
    for line in r["stderr"][:5]:
        bl.log("bench:   " + line)
    for i, m in enumerate(cl.members):
        if not bl.pid_alive(m["pid"]):
            bl.log("bench: capstan member %d (pid %d) died during the run" % (i, m["pid"]))
    res["leader"] = leader
    res["follower"] = follower
    return res


def met(cond):
    return "met" if cond else "not met"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--lists", type=int, default=20)
    ap.add_argument("--watchers", type=int, default=1000)
    ap.add_argument("--watch-writes", type=int, default=20)
    ap.add_argument("--watch-gap", type=float, default=0.5)
    ap.add_argument("--rest", type=float, default=3.0)
    ap.add_argument("--only", choices=("etcd", "capstan"))
    ap.add_argument("--creates-only", action="store_true",
                    help="measure only the ConfigMap creates (and etcd's puts)")
    ap.add_argument("--no-msgpack", action="store_true",
                    help="skip the msgpack lists (for builds without msgpack)")
    args = ap.parse_args()

    print("machine: %s" % bl.machine())
    etcd = bench_etcd(args) if args.only != "capstan" else None
    cap = bench_capstan(args) if args.only != "etcd" else None

    print("ConfigMap creates over TLS + HTTP/2 + JSON (c=64, 3 replicas) against "
          "etcd 3.4 gRPC put of 256 bytes (c=64, 3 members); %.0f s warm-up, %.0f s measured"
          % (args.warmup, args.duration))
    rows = []
    if etcd:
        rows.append(["etcd 3.4 put", "%.0f" % etcd["rate"], "%.2f" % etcd["p50_ms"],
                     "%.2f" % etcd["p99_ms"], "%d" % etcd["errors"]])
    if cap:
        c = cap["configmaps"]
        rows.append(["capstan ConfigMap create", "%.0f" % c["rate"], "%.2f" % c["p50_ms"],
                     "%.2f" % c["p99_ms"], "%d" % c["errors"]])
    print(bl.table(rows, ["c=64", "per s", "p50 ms", "p99 ms", "errors"]))
    if etcd and cap and etcd["rate"]:
        ratio = cap["configmaps"]["rate"] / etcd["rate"]
        print("goal: API path >= 1.5x etcd bare put: %.2fx -> %s" % (
            ratio, met(ratio >= 1.5 and cap["configmaps"]["errors"] == 0)))
    else:
        print("goal: API path >= 1.5x etcd bare put (not measured)")

    if cap and not args.creates_only:
        p = cap["pods"]
        print("pods created: %d in %.1f s at c=64 (%.0f/s, p99 %.1f ms, %d errors)" % (
            p["requests"] - p["errors"], p["seconds"], p["rate"], p["p99_ms"], p["errors"]))
        rows = []
        worst = 0.0
        for (who, fmt), r in sorted(cap["lists"].items()):
            n = max(1, r["requests"] - r["errors"])
            rows.append([fmt, who, "%d" % n, "%.1f" % r["p50_ms"], "%.1f" % r["p99_ms"],
                         "%.1f" % (r["rx_bytes"] / n / 1048576.0), "%d" % r["errors"]])
            if fmt in ("JSON", "Table"):  # the goal's formats
                worst = max(worst, r["p99_ms"] if not r["errors"] else 1e9)
        print("full list of %d pods, one at a time:" % args.pods)
        print(bl.table(rows, ["format", "replica", "lists", "p50 ms", "p99 ms",
                              "MiB each", "errors"]))
        print("goal: list p99 < 200 ms: worst %.1f ms -> %s" % (worst, met(worst < 200)))

        for where, w in sorted(cap["watch"].items(), reverse=True):
            p99 = pct(w["from_ack"], 0.99)
            print("watch: %d watchers on the %s (one loadgen, HTTP/2 streams), %d creates "
                  "on the leader one at a time, %d events seen, %d missing; watched "
                  "replica CPU %.2f s" % (
                      w["ready"], where, w["writes"], w["events"], w["missing"],
                      w["follower_cpu_s"]))
            if w["from_ack"]:
                print("  delay after the ack: p50 %.1f ms p99 %.1f ms max %.1f ms; after "
                      "the send: p50 %.1f ms p99 %.1f ms" % (
                          pct(w["from_ack"], 0.5), p99, max(w["from_ack"]),
                          pct(w["from_send"], 0.5), pct(w["from_send"], 0.99)))
            print("goal (%s): %d watchers each see a write within p99 100 ms: %s" % (
                where, args.watchers, met(p99 is not None and p99 < 100 and
                                          w["missing"] == 0 and w["ready"] >= args.watchers)))

        print("RSS MiB per replica (leader is member %d): idle %s; with %d pods %s" % (
            cap["leader"], " ".join("%.1f" % v for v in cap["rss_idle"]), args.pods,
            " ".join("%.1f" % v for v in cap["rss_pods"])))
        top = max(cap["rss_pods"])
        print("goal: RSS with %d pods < 150 MiB per replica: %.1f -> %s" % (
            args.pods, top, met(top < 150)))
    print("machine load after the run: %s" % bl.machine().split("load average ")[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
