#!/usr/bin/env python3
"""capstan-hollow (and through it runtime/kclient) against real masters:
nodes registered Ready with Leases that keep being renewed, a pod bound to
a hollow node reported Running with a pod IP, a graceful deletion finished,
heartbeats stopped and resumed through the control directory, failover
when the master in use is SIGKILLed, a kubeconfig over HTTPS and a token
over the plain listener (HTTP/1.1), and capstan local up --hollow-nodes."""
import json
import os
import re
import signal
import subprocess
import time

from capstantest import test, main, program
from cluster import Cluster
import hollow

HOLLOW = program("capstan-hollow")


def lease_time(m, name):
    r = m.request("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" + name)
    if r.status != 200:
        return None
    return r.json()["spec"].get("renewTime")


def advances(ctx, m, name, timeout=15):
    first = ctx.wait_for("lease of %s" % name, lambda: lease_time(m, name), timeout=timeout)
    ctx.wait_for("lease of %s renewed" % name, lambda: lease_time(m, name) not in (None, first),
                 timeout=timeout)


def pod(name, node, containers=("app",)):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"t": "hollow"}},
            "spec": {"nodeName": node,
                     "containers": [{"name": c, "image": "busybox:%s" % c} for c in containers]}}


def get_pod(m, name):
    r = m.request("GET", "/api/v1/namespaces/default/pods/" + name)
    return r.json() if r.status == 200 else None


@test(timeout=180)
def nodes_leases_pods_and_failover(ctx):
    c = Cluster(ctx).start(3)
    ctl = ctx.path("control")
    os.makedirs(ctl)
    # Only m1's URL first: its death must move the hollow nodes on.
    h = ctx.spawn("hollow", hollow.argv(HOLLOW, c.masters, 5, control_dir=ctl,
                                        lease_interval="1s"))
    m3 = c.masters[2]
    ctx.wait_for("5 Ready hollow nodes", lambda: len(hollow.ready_nodes(m3)) == 5, timeout=30)
    node = hollow.get_json(m3, "/api/v1/nodes/hollow-2")
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "hollow-2", node
    assert node["status"]["capacity"] == {"cpu": "4", "memory": "16Gi", "pods": "110",
                                          "ephemeral-storage": "100Gi"}, node
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"], node
    for i in range(5):
        advances(ctx, m3, "hollow-%d" % i)

    # A pod bound to a hollow node is reported Running and Ready.
    hollow.create(m3, "/api/v1/namespaces/default/pods", pod("p1", "hollow-2", ("a", "b")))
    p = ctx.wait_for("p1 Running", lambda: (lambda x: x if x and hollow.pod_running(x) else None)(
        get_pod(m3, "p1")), timeout=20)
    st = p["status"]
    assert re.fullmatch(r"10\.0\.2\.\d+", st["podIP"]), st
    assert st["podIPs"] == [{"ip": st["podIP"]}], st
    types = {x["type"]: x["status"] for x in st["conditions"]}
    for t in ("Ready", "ContainersReady", "Initialized", "PodScheduled"):
        assert types.get(t) == "True", st
    names = sorted(x["name"] for x in st["containerStatuses"])
    assert names == ["a", "b"], st
    for cs in st["containerStatuses"]:
        assert cs["ready"] and cs["started"] and "running" in cs["state"], cs

    # A second pod on the same node gets another address.
    hollow.create(m3, "/api/v1/namespaces/default/pods", pod("p2", "hollow-2"))
    p2 = ctx.wait_for("p2 Running", lambda: (lambda x: x if x and hollow.pod_running(x) else None)(
        get_pod(m3, "p2")), timeout=20)
    assert p2["status"]["podIP"] != st["podIP"]

    # A graceful deletion is finished by the node.
    r = m3.request("DELETE", "/api/v1/namespaces/default/pods/p1")
    assert r.status in (200, 202), r
    ctx.wait_for("p1 gone", lambda: get_pod(m3, "p1") is None, timeout=20)

    # Heartbeats of one node stop while its stop file exists.
    open(os.path.join(ctl, "stop-hollow-1"), "w").close()
    time.sleep(2.5)  # the last renewal in flight lands
    frozen = lease_time(m3, "hollow-1")
    advances(ctx, m3, "hollow-0")
    advances(ctx, m3, "hollow-3")
    assert lease_time(m3, "hollow-1") == frozen
    os.unlink(os.path.join(ctl, "stop-hollow-1"))
    advances(ctx, m3, "hollow-1")

    # SIGKILL m1 (the URL in use): renewals and reports go on elsewhere.
    c.masters[0].kill()
    for i in range(5):
        advances(ctx, m3, "hollow-%d" % i, timeout=30)
    hollow.create(m3, "/api/v1/namespaces/default/pods", pod("p3", "hollow-4"))
    ctx.wait_for("p3 Running", lambda: hollow.pod_running(get_pod(m3, "p3") or {}), timeout=30)
    assert h.alive()


@test(timeout=120)
def kubeconfig_and_plain_token(ctx):
    c = Cluster(ctx).start(1)
    m = c.seed
    ctx.spawn("hollow-kc", [HOLLOW, "--kubeconfig", os.path.join(m.data, "admin.kubeconfig"),
                            "--nodes", "2", "--prefix", "kc"])
    ctx.spawn("hollow-plain", [HOLLOW, "--server", "http://127.0.0.1:%d" % m.plain_port,
                               "--token", m.token(), "--nodes", "3", "--prefix", "plain",
                               "--first-index", "7", "--label", "zone=z1",
                               "--cpu", "2", "--pods", "20"])
    ctx.wait_for("kc nodes", lambda: hollow.ready_nodes(m, "kc") == ["kc-0", "kc-1"], timeout=30)
    ctx.wait_for("plain nodes",
                 lambda: hollow.ready_nodes(m, "plain") == ["plain-7", "plain-8", "plain-9"],
                 timeout=30)
    n = hollow.get_json(m, "/api/v1/nodes/plain-8")
    assert n["metadata"]["labels"]["zone"] == "z1", n
    assert n["status"]["capacity"]["cpu"] == "2" and n["status"]["capacity"]["pods"] == "20", n
    # Each process reports its own nodes' pods only.
    hollow.create(m, "/api/v1/namespaces/default/pods", pod("q1", "plain-9"))
    hollow.create(m, "/api/v1/namespaces/default/pods", pod("q2", "kc-1"))
    ctx.wait_for("q1 and q2 Running",
                 lambda: all(hollow.pod_running(get_pod(m, q) or {}) for q in ("q1", "q2")),
                 timeout=20)
    assert get_pod(m, "q1")["status"]["podIP"].startswith("10.0.9."), get_pod(m, "q1")


@test(timeout=30)
def usage(ctx):
    r = ctx.run([HOLLOW, "--help"])
    assert r.stdout.startswith("Usage: capstan-hollow"), r.stdout
    for f in ("--server", "--kubeconfig", "--nodes", "--control-dir", "--lease-interval"):
        assert f in r.stdout, f
    r = ctx.run([HOLLOW, "--version"])
    assert r.stdout.startswith("capstan-hollow "), r.stdout
    for bad in ([], ["--nodes", "0", "--server", "http://127.0.0.1:1"], ["--no-such-flag"],
                ["--label", "novalue", "--server", "http://127.0.0.1:1"]):
        r = ctx.run([HOLLOW] + bad, check=False)
        assert r.returncode == 2, (bad, r.returncode, r.stderr)
        assert r.stderr.strip(), bad


class Detached:
    """A process started by `capstan local up`, shaped like the harness's
    Proc so that teardown ends it by PID and reads its log."""

    def __init__(self, name, pid, log_path):
        self.name, self.pid, self.log_path = name, pid, log_path
        self.popen = self

    def alive(self):
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (OSError, IndexError):
            return False

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout=10):
        end = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > end:
                raise subprocess.TimeoutExpired("detached", timeout)
            time.sleep(0.05)
        return 0

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


def adopt(ctx, d):
    found = {}
    for sub, pidname, logname in (("m1", "capstand.pid", "capstand.log"),
                                  ("hollow", "hollow.pid", "hollow.log")):
        pidfile = os.path.join(d, sub, pidname)
        if os.path.exists(pidfile):
            with open(pidfile) as f:
                pid = int(f.read())
            found[sub] = pid
            if not any(p.pid == pid for p in ctx.procs):
                ctx.procs.append(Detached(sub, pid, os.path.join(d, sub, logname)))
    return found


@test(timeout=120)
def local_up_hollow_nodes(ctx):
    d = ctx.path("local")
    try:
        r = ctx.run([program("capstan"), "local", "up", "--dir", d, "--masters", "1",
                     "--hollow-nodes", "4", "--timeout", "60s"], check=False, timeout=100)
    finally:
        pids = adopt(ctx, d)
    assert r.returncode == 0, r.stderr
    assert "hollow nodes: 4 registered" in r.stdout, r.stdout
    assert "hollow" in pids, pids
    env = {"KUBECONFIG": os.path.join(d, "kubeconfig")}
    out = ctx.run([program("capstan"), "get", "nodes", "-o", "json"], env=env).stdout
    names = sorted(n["metadata"]["name"] for n in json.loads(out)["items"])
    assert names == ["hollow-0", "hollow-1", "hollow-2", "hollow-3"], names
    # Up again: the running hollow process is kept.
    r = ctx.run([program("capstan"), "local", "up", "--dir", d, "--hollow-nodes", "4"],
                timeout=60)
    assert "hollow nodes: already running, pid %d" % pids["hollow"] in r.stdout, r.stdout
    r = ctx.run([program("capstan"), "local", "down", "--dir", d, "--purge"], timeout=60)
    assert "hollow nodes: stopped (pid %d)" % pids["hollow"] in r.stdout, r.stdout
    assert not os.path.exists(d)


if __name__ == "__main__":
    main()
