#!/usr/bin/env python3
"""Node agent: pod startup latency and the agent's memory, with real runc.

`capstan local up --masters 1 --nodes 1` (one real capstan-node, the test
image localhost/busybox:latest imported), then:
- RSS of capstan-node idle (no pods, after a rest);
- startup latency, create -> Running, of pods bound to the node by
  spec.nodeName (`sleep 3600`, imagePullPolicy IfNotPresent): first 10
  pods one at a time (each waits for the previous one), then --pods (100)
  created at a steady --rate (10 pods/s, as the Kubernetes pod startup
  SLO is measured: pods created at a given throughput), then a burst of
  --pods created back to back (a stress figure). Latency = time from sending the POST
  to the first watch event showing phase Running (seen on a watch opened
  before the creates);
- RSS of capstan-node with the burst's pods running (after a rest), and,
  counted apart, the capstan-shim processes (one per container; the
  kubelet's equivalent is containerd-shim) and their total.
Goals: p99 under 1 s at the steady rate (the Kubernetes SLO is 5 s), agent RSS
under 30 MiB with 100 pods (the kubelet uses well over 100 MiB). Prints
figures; asserts nothing. Needs root, runc and the CNI plugins; run on an
optimised build (ASan multiplies RSS).

Options: --pods N (100), --serial N (10), --rate R (10), --rest S (3).
BENCH_KEEP=1 keeps the temporary directory.
"""

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import benchlib as bl


def mib(kib):
    return None if kib is None else kib / 1024.0


class Api:
    def __init__(self, plain, token):
        host, port = plain.rsplit(":", 1)
        self.host, self.port, self.token = host, int(port), token

    def request(self, method, path, obj=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        h = {"Authorization": "Bearer " + self.token}
        body = None
        if obj is not None:
            body = json.dumps(obj)
            h["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        try:
            return r.status, json.loads(data)
        except ValueError:
            return r.status, data


class Watcher(threading.Thread):
    """Notes the monotonic time each pod is first seen Running."""

    def __init__(self, api, rv):
        super().__init__(daemon=True)
        self.api, self.rv = api, rv
        self.running = {}
        self.cond = threading.Condition()
        self.stop = False

    def run(self):
        c = http.client.HTTPConnection(self.api.host, self.api.port, timeout=600)
        c.request("GET", "/api/v1/namespaces/default/pods?watch=true&resourceVersion=%s" %
                  self.rv, headers={"Authorization": "Bearer " + self.api.token})
        r = c.getresponse()
        while not self.stop:
            line = r.readline()
            if not line:
                break
            now = time.monotonic()
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            obj = ev.get("object") or {}
            name = (obj.get("metadata") or {}).get("name")
            if name and (obj.get("status") or {}).get("phase") == "Running":
                with self.cond:
                    if name not in self.running:
                        self.running[name] = now
                        self.cond.notify_all()

    def wait(self, names, timeout):
        end = time.monotonic() + timeout
        with self.cond:
            while not all(n in self.running for n in names):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True


def manifest(name):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "localhost/busybox:latest",
                                     "imagePullPolicy": "IfNotPresent",
                                     "command": ["sleep", "3600"]}]}}


def shims(run_dir):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"capstan-shim") and any(run_dir.encode() in a for a in cmd):
            out.append(int(p))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=100)
    ap.add_argument("--serial", type=int, default=10)
    ap.add_argument("--rate", type=float, default=10)
    ap.add_argument("--rest", type=float, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0 or shutil.which("runc") is None or \
            not os.path.exists("/usr/lib/cni/bridge"):
        print("bench-node: skipped (needs root, runc and the CNI plugins)")
        return 0
    print("machine: " + bl.machine())
    top = tempfile.mkdtemp(prefix="bench-node-")
    d = os.path.join(top, "local")
    capstan = bl.program("capstan")
    ok = False
    try:
        t0 = time.monotonic()
        subprocess.run([capstan, "local", "up", "--dir", d, "--masters", "1", "--nodes", "1"],
                       check=True, stdout=subprocess.DEVNULL, timeout=300)
        bl.log("bench: local up with 1 node in %.1f s" % (time.monotonic() - t0))
        m = bl.discover_local(d)[0]
        api = Api(m["plain_url"][len("http://"):], m["token"])
        with open(os.path.join(d, "nodes", "n1", "capstan-node.pid")) as f:
            node_pid = int(f.read())
        run_dir = os.path.join(d, "nodes", "n1", "run")
        time.sleep(args.rest)
        idle = mib(bl.rss_kib(node_pid))

        st, lst = api.request("GET", "/api/v1/namespaces/default/pods")
        w = Watcher(api, lst["metadata"]["resourceVersion"])
        w.start()
        time.sleep(0.2)
        serial = []
        for i in range(args.serial):
            name = "s%d" % i
            t = time.monotonic()
            st, _ = api.request("POST", "/api/v1/namespaces/default/pods", manifest(name))
            assert st in (200, 201), st
            if not w.wait([name], 60):
                raise RuntimeError("pod %s not Running after 60 s" % name)
            serial.append(w.running[name] - t)
        # Serial pods away before the burst (their memory would count).
        for i in range(args.serial):
            api.request("DELETE", "/api/v1/namespaces/default/pods/s%d" % i)
        bl.wait_for("serial pods gone", lambda: len(shims(run_dir)) == 0, timeout=60)

        # At a steady rate.
        paced_sent = {}
        t_paced = time.monotonic()
        for i in range(args.pods):
            name = "r%d" % i
            due = t_paced + i / args.rate
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
            paced_sent[name] = time.monotonic()
            st, _ = api.request("POST", "/api/v1/namespaces/default/pods", manifest(name))
            assert st in (200, 201), st
        if not w.wait(list(paced_sent), 300):
            raise RuntimeError("paced pods not Running after 300 s")
        paced = [w.running[n] - paced_sent[n] for n in paced_sent]
        for n in paced_sent:
            api.request("DELETE", "/api/v1/namespaces/default/pods/" + n)
        bl.wait_for("paced pods gone", lambda: len(shims(run_dir)) == 0, timeout=120)

        sent = {}
        t_burst = time.monotonic()
        for i in range(args.pods):
            name = "b%d" % i
            sent[name] = time.monotonic()
            st, _ = api.request("POST", "/api/v1/namespaces/default/pods", manifest(name))
            assert st in (200, 201), st
        t_created = time.monotonic()
        if not w.wait(list(sent), 300):
            raise RuntimeError("only %d of %d pods Running after 300 s" % (
                sum(n in w.running for n in sent), len(sent)))
        burst = [w.running[n] - sent[n] for n in sent]
        t_all = max(w.running[n] for n in sent) - t_burst
        time.sleep(args.rest)
        full = mib(bl.rss_kib(node_pid))
        sp = shims(run_dir)
        shim_rss = [mib(bl.rss_kib(p)) or 0 for p in sp]
        w.stop = True

        def ms(v):
            return "%.0f" % (v * 1000)
        rows = [
            ["serial (one at a time)", str(len(serial)), ms(bl.percentile(serial, 0.5)),
             ms(bl.percentile(serial, 0.99)), ms(max(serial))],
            ["steady %g pods/s" % args.rate, str(len(paced)), ms(bl.percentile(paced, 0.5)),
             ms(bl.percentile(paced, 0.99)), ms(max(paced))],
            ["burst (created back to back)", str(len(burst)), ms(bl.percentile(burst, 0.5)),
             ms(bl.percentile(burst, 0.99)), ms(max(burst))],
        ]
        print("pod startup latency, create -> Running (ms); goal p99 < 1000 at the steady "
              "rate (the burst is a stress figure)")
        print(bl.table(rows, ["pods", "n", "p50", "p99", "max"]))
        print("burst: %d creates sent in %.2f s, all Running %.2f s after the first" % (
            len(burst), t_created - t_burst, t_all))
        print("capstan-node RSS: idle %.1f MiB, with %d pods running %.1f MiB "
              "(goal < 30 MiB)" % (idle, len(burst), full))
        print("capstan-shim (one per container, counted apart): %d processes, %.1f MiB in all, "
              "%.2f MiB each on average" % (len(sp), sum(shim_rss),
                                            sum(shim_rss) / len(sp) if sp else 0))
        ok = True
    finally:
        subprocess.run([capstan, "local", "down", "--dir", d], stdout=subprocess.DEVNULL,
                       timeout=300)
        if ok and not os.environ.get("BENCH_KEEP"):
            subprocess.run([capstan, "local", "down", "--dir", d, "--purge"],
                           stdout=subprocess.DEVNULL, timeout=120)
            shutil.rmtree(top, ignore_errors=True)
        else:
            bl.log("bench: kept %s" % top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
