"""The real kubectl (/usr/bin/kubectl) against capstand, part two:
Service ClusterIP and NodePort allocation (the `kubernetes` Service, no
address given twice, also across a change of leader), the scale
subresource, and delete with propagationPolicy Foreground and Orphan."""

import ipaddress
import json
import os
import time

from capstantest import test, main, require_kubectl, KUBECTL
from cluster import Cluster

CIDR = ipaddress.ip_network("10.96.0.0/12")

REPLICASET = """apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: rs
spec:
  replicas: 1
  selector:
    matchLabels:
      app: rs
  template:
    metadata:
      labels:
        app: rs
    spec:
      containers:
      - name: c
        image: busybox:1.36
"""


class Kubectl:
    def __init__(self, ctx, master):
        self.ctx = ctx
        self.kubeconfig = os.path.join(master.data, "admin.kubeconfig")
        self.cache = ctx.path("kube-cache-" + master.name)

    def run(self, *args, check=True):
        argv = [KUBECTL, "--kubeconfig", self.kubeconfig, "--cache-dir", self.cache,
                "--request-timeout", "30s"] + list(args)
        r = self.ctx.run(argv, check=False, timeout=60, env={"HOME": self.ctx.dir})
        if check and r.returncode != 0:
            raise AssertionError("kubectl %s exited %d\nstdout: %s\nstderr: %s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def json(self, *args):
        return json.loads(self.run(*args, "-o", "json").stdout)

    def create(self, text):
        path = self.ctx.path("obj-%d.yaml" % time.monotonic_ns())
        with open(path, "w") as f:
            f.write(text)
        return self.run("create", "-f", path, "--validate=false")


def ready(ctx, k):
    ctx.wait_for("default namespace", lambda: k.run("get", "ns", "default", check=False)
                 .returncode == 0, timeout=30)


def cluster_ip(k, name):
    ip = k.json("get", "svc", name)["spec"]["clusterIP"]
    assert ipaddress.ip_address(ip) in CIDR, (name, ip)
    return ip


@test(timeout=240)
def service_addresses(ctx):
    require_kubectl()
    c = Cluster(ctx).start(1)
    k = Kubectl(ctx, c.seed)
    ready(ctx, k)
    # The leader creates the kubernetes Service with the first address.
    ctx.wait_for("kubernetes service", lambda: k.run("get", "svc", "kubernetes",
                                                     check=False).returncode == 0, timeout=30)
    svc = k.json("get", "svc", "kubernetes")
    assert svc["spec"]["clusterIP"] == "10.96.0.1", svc
    port = svc["spec"]["ports"][0]
    assert port["name"] == "https" and port["port"] == 443, port
    assert port["targetPort"] == int(c.seed.url.rsplit(":", 1)[1]), (port, c.seed.url)
    rows = k.run("get", "svc", "kubernetes").stdout.split()
    assert "10.96.0.1" in rows and "443/TCP" in rows, rows

    r = k.run("create", "service", "clusterip", "x", "--tcp=80:8080")
    assert "service/x created" in r.stdout, r.stdout
    ips = {"kubernetes": "10.96.0.1", "x": cluster_ip(k, "x")}
    svc = k.json("get", "svc", "x")
    assert svc["spec"]["clusterIPs"] == [ips["x"]], svc["spec"]
    assert svc["spec"]["ipFamilies"] == ["IPv4"], svc["spec"]

    k.run("create", "service", "nodeport", "np", "--tcp=80:8080")
    svc = k.json("get", "svc", "np")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767, svc["spec"]
    ips["np"] = cluster_ip(k, "np")
    for i in range(4):
        k.run("create", "service", "clusterip", "s%d" % i, "--tcp=80:80")
        ips["s%d" % i] = cluster_ip(k, "s%d" % i)
    assert len(set(ips.values())) == len(ips), ips

    # A label change (strategic merge through update) keeps the addresses.
    k.run("label", "svc", "np", "a=b")
    svc = k.json("get", "svc", "np")
    assert svc["spec"]["clusterIP"] == ips["np"], svc["spec"]
    assert svc["spec"]["ports"][0]["nodePort"] == node_port, svc["spec"]
    # The clusterIP is immutable.
    r = k.run("patch", "svc", "np", "--type=merge", "-p",
              '{"spec":{"clusterIP":"10.96.0.77","clusterIPs":["10.96.0.77"]}}', check=False)
    assert r.returncode != 0 and "is invalid" in r.stderr and "immutable" in r.stderr, r.stderr
    # An address taken, or outside the range, is refused; nothing written.
    r = k.run("create", "service", "clusterip", "dup", "--tcp=80:80",
              "--clusterip=" + ips["x"], check=False)
    assert r.returncode != 0 and "is invalid" in r.stderr and \
        "already allocated" in r.stderr, r.stderr
    r = k.run("create", "service", "clusterip", "out", "--tcp=80:80",
              "--clusterip=10.0.0.1", check=False)
    assert r.returncode != 0 and "is invalid" in r.stderr and "10.96.0.0/12" in r.stderr, \
        r.stderr
    names = k.run("get", "svc", "-o", "name").stdout.split()
    assert "service/dup" not in names and "service/out" not in names, names
    # A requested free address is granted; after a delete it is free again.
    k.run("create", "service", "clusterip", "fixed", "--tcp=80:80", "--clusterip=10.96.5.5")
    assert cluster_ip(k, "fixed") == "10.96.5.5"
    r = k.run("create", "service", "clusterip", "fixed2", "--tcp=80:80",
              "--clusterip=10.96.5.5", check=False)
    assert r.returncode != 0 and "already allocated" in r.stderr, r.stderr
    k.run("delete", "svc", "fixed")
    k.run("create", "service", "clusterip", "fixed2", "--tcp=80:80", "--clusterip=10.96.5.5")
    assert cluster_ip(k, "fixed2") == "10.96.5.5"
    # Headless: no address.
    k.run("create", "service", "clusterip", "headless", "--clusterip=None")
    assert k.json("get", "svc", "headless")["spec"]["clusterIP"] == "None"


@test(timeout=300)
def service_addresses_after_failover(ctx):
    require_kubectl()
    c = Cluster(ctx).start(3)
    leader = c.leader()
    k = Kubectl(ctx, leader)
    ready(ctx, k)
    # Fixed addresses in the lower block make collisions likely if the new
    # leader forgot them.
    for i in range(3):
        k.run("create", "service", "clusterip", "a%d" % i, "--tcp=80:80",
              "--clusterip=10.96.0.%d" % (10 + i))
        k.run("create", "service", "nodeport", "n%d" % i, "--tcp=80:80",
              "--node-port=%d" % (30000 + i))
    leader.kill()
    new = c.leader()
    assert new is not leader
    k2 = Kubectl(ctx, new)
    for i in range(3):
        r = k2.run("create", "service", "clusterip", "b%d" % i, "--tcp=80:80",
                   "--clusterip=10.96.0.%d" % (10 + i), check=False)
        assert r.returncode != 0 and "already allocated" in r.stderr, r.stderr
        r = k2.run("create", "service", "nodeport", "m%d" % i, "--tcp=80:80",
                   "--node-port=%d" % (30000 + i), check=False)
        assert r.returncode != 0 and "already allocated" in r.stderr, r.stderr
        k2.run("create", "service", "clusterip", "c%d" % i, "--tcp=80:80")
    svcs = k2.json("get", "svc")["items"]
    ips = [s["spec"]["clusterIP"] for s in svcs]
    assert len(set(ips)) == len(ips) == 10, ips
    assert sorted(s["metadata"]["name"] for s in svcs if s["spec"]["clusterIP"] ==
                  "10.96.0.1") == ["kubernetes"], ips


@test(timeout=240)
def scale(ctx):
    require_kubectl()
    c = Cluster(ctx).start(1)
    k = Kubectl(ctx, c.seed)
    ready(ctx, k)
    k.run("create", "deployment", "d", "--image=busybox:1.36")
    r = k.run("scale", "deployment", "d", "--replicas=3")
    assert "deployment.apps/d scaled" in r.stdout, r.stdout
    d = k.json("get", "deployment", "d")
    assert d["spec"]["replicas"] == 3 and d["metadata"]["generation"] == 2, d
    sc = json.loads(k.run("get", "--raw",
                          "/apis/apps/v1/namespaces/default/deployments/d/scale").stdout)
    assert sc["kind"] == "Scale" and sc["apiVersion"] == "autoscaling/v1", sc
    assert sc["spec"]["replicas"] == 3 and sc["status"]["selector"] == "app=d", sc
    assert sc["metadata"]["resourceVersion"] == d["metadata"]["resourceVersion"], (sc, d)
    # The precondition of --current-replicas.
    r = k.run("scale", "deployment", "d", "--current-replicas=5", "--replicas=1", check=False)
    assert r.returncode != 0, r.stdout
    assert k.json("get", "deployment", "d")["spec"]["replicas"] == 3
    k.run("scale", "deployment", "d", "--current-replicas=3", "--replicas=0")
    assert k.json("get", "deployment", "d")["spec"]["replicas"] == 0
    # ReplicaSets and StatefulSets too; a Service has no scale.
    k.create(REPLICASET)
    k.run("scale", "rs", "rs", "--replicas=2")
    assert k.json("get", "rs", "rs")["spec"]["replicas"] == 2
    k.run("create", "service", "clusterip", "x", "--tcp=80:80")
    r = k.run("get", "--raw", "/api/v1/namespaces/default/services/x/scale", check=False)
    assert r.returncode != 0, r.stdout
    r = k.run("get", "--raw", "/apis/apps/v1/namespaces/default/deployments/none/scale",
              check=False)
    assert r.returncode != 0 and "not found" in r.stderr, r.stderr


@test(timeout=240)
def delete_propagation(ctx):
    """Foreground, orphan and background deletion, finished by the garbage
    collector on the leader."""
    require_kubectl()
    c = Cluster(ctx).start(1)
    k = Kubectl(ctx, c.seed)
    ready(ctx, k)

    def gone(*args):
        return lambda: k.run("get", *args, check=False).returncode != 0

    def rs_of(name):
        return [i for i in k.json("get", "rs")["items"]
                if i["metadata"]["name"].startswith(name + "-")]

    # Foreground: the Deployment waits for its ReplicaSet, then goes.
    k.run("create", "deployment", "fg", "--image=busybox:1.36")
    ctx.wait_for("fg's ReplicaSet", lambda: rs_of("fg"), timeout=30)
    r = k.run("delete", "deployment", "fg", "--cascade=foreground", "--wait=false")
    assert 'deployment.apps "fg" deleted' in r.stdout, r.stdout
    ctx.wait_for("fg gone", gone("deployment", "fg"), timeout=30)
    assert rs_of("fg") == [], rs_of("fg")
    # Orphan: the ReplicaSet stays, without its owner reference.
    k.run("create", "deployment", "od", "--image=busybox:1.36")
    ctx.wait_for("od's ReplicaSet", lambda: rs_of("od"), timeout=30)
    k.run("delete", "deployment", "od", "--cascade=orphan", "--wait=false")
    ctx.wait_for("od gone", gone("deployment", "od"), timeout=30)
    rs = rs_of("od")
    assert len(rs) == 1 and not rs[0]["metadata"].get("ownerReferences"), rs
    # An object with no dependents: the finalizer is removed at once.
    k.run("create", "configmap", "or", "--from-literal=a=b")
    k.run("delete", "configmap", "or", "--cascade=orphan", "--wait=false")
    ctx.wait_for("or gone", gone("configmap", "or"), timeout=30)
    # Background (the default): the ReplicaSet follows its Deployment.
    k.run("create", "deployment", "bg", "--image=busybox:1.36")
    ctx.wait_for("bg's ReplicaSet", lambda: rs_of("bg"), timeout=30)
    k.run("delete", "deployment", "bg", "--cascade=background")
    ctx.wait_for("bg's ReplicaSet gone", lambda: rs_of("bg") == [], timeout=30)
    # A Service deleted in the foreground goes too, and its address is
    # free again (freed by the committed deletion, whoever wrote it: here
    # the garbage collector's removal of the last finalizer).
    k.run("create", "service", "clusterip", "s", "--tcp=80:80", "--clusterip=10.96.9.9")
    k.run("delete", "svc", "s", "--cascade=foreground", "--wait=false")
    ctx.wait_for("s gone", gone("svc", "s"), timeout=30)
    k.run("create", "service", "clusterip", "t", "--tcp=80:80", "--clusterip=10.96.9.9")
    # A namespace's deletion frees its Services' addresses too.
    k.run("create", "namespace", "gone")
    k.run("create", "service", "clusterip", "u", "-n", "gone", "--tcp=80:80",
          "--clusterip=10.96.9.10")
    k.run("delete", "namespace", "gone", "--wait=false")
    ctx.wait_for("namespace gone", gone("namespace", "gone"), timeout=30)
    k.run("create", "service", "clusterip", "v", "--tcp=80:80", "--clusterip=10.96.9.10")


if __name__ == "__main__":
    main()
