"""The real kubectl (/usr/bin/kubectl) against capstand's Kubernetes API:
discovery, get with Table columns, create/get/delete of pods, errors as
kubectl prints them (AlreadyExists, Invalid, NotFound), label selectors,
watch, and writes through a follower."""

import json
import os
import signal
import subprocess
import time

from capstantest import test, main, require_kubectl, KUBECTL
from cluster import Cluster


POD = """apiVersion: v1
kind: Pod
metadata:
  name: %(name)s
  labels:
    app: %(app)s
spec:
  containers:
  - name: c
    image: busybox:1.36
"""


class Kubectl:
    def __init__(self, ctx, master):
        self.ctx = ctx
        self.master = master
        self.kubeconfig = os.path.join(master.data, "admin.kubeconfig")
        # A private discovery cache: nothing shared with other runs.
        self.cache = ctx.path("kube-cache-" + master.name)

    def argv(self, *args):
        return [KUBECTL, "--kubeconfig", self.kubeconfig, "--cache-dir", self.cache,
                "--request-timeout", "30s"] + list(args)

    def run(self, *args, check=True, input=None):
        r = self.ctx.run(self.argv(*args), check=False, input=input, timeout=60,
                         env={"HOME": self.ctx.dir})
        if check and r.returncode != 0:
            raise AssertionError("kubectl %s exited %d\nstdout: %s\nstderr: %s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr))
        return r

    def create(self, text, *args, check=True):
        path = self.ctx.path("obj-%d.yaml" % time.monotonic_ns())
        with open(path, "w") as f:
            f.write(text)
        return self.run("create", "-f", path, "--validate=false", *args, check=check)


def start(ctx, n=1):
    c = Cluster(ctx).start(n)
    return c


def table(out):
    """kubectl's table output as a list of rows split on whitespace."""
    return [line.split() for line in out.strip().splitlines()]


@test(timeout=180)
def get_namespaces(ctx):
    require_kubectl()
    c = start(ctx)
    k = Kubectl(ctx, c.seed)
    # The leader creates the default namespaces once it leads.
    ctx.wait_for("default namespaces", lambda: len(table(k.run("get", "ns").stdout)) >= 5,
                 timeout=30)
    rows = table(k.run("get", "ns").stdout)
    assert rows[0] == ["NAME", "STATUS", "AGE"], rows
    names = {r[0]: r[1] for r in rows[1:]}
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert names.get(ns) == "Active", rows
    # Cluster-scoped object and the JSON form.
    ns = json.loads(k.run("get", "ns", "default", "-o", "json").stdout)
    assert ns["kind"] == "Namespace" and ns["metadata"]["name"] == "default", ns
    assert int(ns["metadata"]["resourceVersion"]) > 0, ns
    assert ns["metadata"]["uid"], ns
    # An unknown object: NotFound as kubectl prints it.
    r = k.run("get", "ns", "nope", check=False)
    assert r.returncode != 0 and 'namespaces "nope" not found' in r.stderr, r.stderr


@test(timeout=180)
def pod_create_get_delete(ctx):
    require_kubectl()
    c = start(ctx)
    k = Kubectl(ctx, c.seed)
    ctx.wait_for("default namespace", lambda: k.run("get", "ns", "default", check=False)
                 .returncode == 0, timeout=30)
    r = k.create(POD % {"name": "x", "app": "a"})
    assert 'pod/x created' in r.stdout, r.stdout
    pod = json.loads(k.run("get", "pod", "x", "-o", "json").stdout)
    meta = pod["metadata"]
    assert meta["namespace"] == "default", meta
    assert len(meta["uid"]) == 36 and meta["uid"][14] == "4", meta
    assert int(meta["resourceVersion"]) > 0, meta
    assert meta["creationTimestamp"].endswith("Z"), meta
    # Defaults applied by the server.
    assert pod["spec"]["restartPolicy"] == "Always", pod["spec"]
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent", pod["spec"]
    assert pod["status"]["phase"] == "Pending", pod
    # Table columns of pods.
    rows = table(k.run("get", "pods").stdout)
    assert rows[0][:3] == ["NAME", "READY", "STATUS"], rows
    assert rows[1][0] == "x", rows
    # Duplicate create.
    r = k.create(POD % {"name": "x", "app": "a"}, check=False)
    assert r.returncode != 0 and "AlreadyExists" in r.stderr and \
        'pods "x" already exists' in r.stderr, r.stderr
    # An invalid name: 422 naming the field; nothing written.
    r = k.create(POD % {"name": "Bad_Name", "app": "a"}, check=False)
    assert r.returncode != 0 and "is invalid" in r.stderr and "metadata.name" in r.stderr, \
        r.stderr
    assert "Bad_Name" not in k.run("get", "pods").stdout
    # A namespace that does not exist.
    r = k.create(POD % {"name": "yy", "app": "a"}, "-n", "nowhere", check=False)
    assert r.returncode != 0 and 'namespaces "nowhere" not found' in r.stderr, r.stderr
    # Label selectors.
    k.create(POD % {"name": "z", "app": "b"})
    rows = table(k.run("get", "pods", "-l", "app=a").stdout)
    assert [r[0] for r in rows[1:]] == ["x"], rows
    rows = table(k.run("get", "pods", "-l", "app!=a").stdout)
    assert [r[0] for r in rows[1:]] == ["z"], rows
    # All namespaces.
    rows = table(k.run("get", "pods", "-A").stdout)
    assert rows[0][0] == "NAMESPACE" and {r[1] for r in rows[1:]} == {"x", "z"}, rows
    # Delete.
    r = k.run("delete", "pod", "x")
    assert 'pod "x" deleted' in r.stdout, r.stdout
    r = k.run("get", "pod", "x", check=False)
    assert r.returncode != 0 and 'pods "x" not found' in r.stderr, r.stderr
    r = k.run("delete", "pod", "x", check=False)
    assert r.returncode != 0 and 'pods "x" not found' in r.stderr, r.stderr


@test(timeout=180)
def watch_sees_events(ctx):
    require_kubectl()
    c = start(ctx)
    k = Kubectl(ctx, c.seed)
    ctx.wait_for("default namespace", lambda: k.run("get", "ns", "default", check=False)
                 .returncode == 0, timeout=30)
    out = ctx.path("watch.out")
    with open(out, "w") as f:
        p = subprocess.Popen(k.argv("get", "pods", "--watch", "--output-watch-events"),
                             stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=dict(os.environ, HOME=ctx.dir))
    try:
        time.sleep(1)
        k.create(POD % {"name": "w", "app": "a"})
        ctx.wait_for("ADDED event", lambda: any(
            line.split()[:2] == ["ADDED", "w"] for line in open(out).read().splitlines()),
            timeout=20)
        k.run("delete", "pod", "w")
        ctx.wait_for("DELETED event", lambda: any(
            line.split()[:2] == ["DELETED", "w"] for line in open(out).read().splitlines()),
            timeout=20)
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
        p.wait(timeout=10)


CM = """apiVersion: v1
kind: ConfigMap
metadata:
  name: cm1
data:
  a: "%s"
"""


@test(timeout=180)
def apply_label_replace_finalizers(ctx):
    require_kubectl()
    c = start(ctx)
    k = Kubectl(ctx, c.seed)
    ctx.wait_for("default namespace", lambda: k.run("get", "ns", "default", check=False)
                 .returncode == 0, timeout=30)
    path = ctx.path("cm.yaml")
    with open(path, "w") as f:
        f.write(CM % "1")
    # Client-side apply, with the server's OpenAPI documents (no
    # --validate=false): create, unchanged, configured.
    assert "configmap/cm1 created" in k.run("apply", "-f", path).stdout
    assert "configmap/cm1 unchanged" in k.run("apply", "-f", path).stdout
    with open(path, "w") as f:
        f.write(CM % "2")
    assert "configmap/cm1 configured" in k.run("apply", "-f", path).stdout
    cm = json.loads(k.run("get", "cm", "cm1", "-o", "json").stdout)
    assert cm["data"] == {"a": "2"}, cm
    assert "generation" not in cm["metadata"], cm
    rv = cm["metadata"]["resourceVersion"]
    # Merge patch (label), update (replace), server-side apply.
    assert "configmap/cm1 labeled" in k.run("label", "cm", "cm1", "x=y").stdout
    rows = table(k.run("get", "cm", "-l", "x=y").stdout)
    assert [r[0] for r in rows[1:]] == ["cm1"], rows
    assert "configmap/cm1 replaced" in k.run("replace", "-f", path).stdout
    assert "configmap/cm1 serverside-applied" in \
        k.run("apply", "--server-side", "-f", path).stdout
    cm = json.loads(k.run("get", "cm", "cm1", "-o", "json").stdout)
    assert int(cm["metadata"]["resourceVersion"]) > int(rv), cm
    # Protobuf bodies (kubectl create configmap / namespace).
    assert "configmap/cm2 created" in k.run("create", "configmap", "cm2",
                                            "--from-literal=k=v").stdout
    assert "namespace/foo created" in k.run("create", "namespace", "foo").stdout
    # A stale resourceVersion is a Conflict.
    cm["metadata"]["resourceVersion"] = rv
    stale = ctx.path("stale.json")
    with open(stale, "w") as f:
        json.dump(cm, f)
    r = k.run("replace", "-f", stale, check=False)
    assert r.returncode != 0 and "the object has been modified" in r.stderr, r.stderr
    # Finalizers: delete only marks; removing the last finalizer deletes.
    k.run("patch", "cm", "cm2", "--type=merge", "-p",
          '{"metadata":{"finalizers":["example.com/hold"]}}')
    k.run("delete", "cm", "cm2", "--wait=false")
    cm2 = json.loads(k.run("get", "cm", "cm2", "-o", "json").stdout)
    assert cm2["metadata"].get("deletionTimestamp"), cm2
    k.run("patch", "cm", "cm2", "--type=json", "-p",
          '[{"op":"remove","path":"/metadata/finalizers"}]')
    r = k.run("get", "cm", "cm2", check=False)
    assert r.returncode != 0 and 'configmaps "cm2" not found' in r.stderr, r.stderr
    # deletecollection with a label selector.
    for name in ("cm3", "cm4"):
        k.run("create", "configmap", name)
        k.run("label", "cm", name, "z=1")
    k.run("delete", "--raw", "/api/v1/namespaces/default/configmaps?labelSelector=z%3D1")
    # kube-root-ca.crt: the ServiceAccount controller's, in every namespace.
    names = [r[0] for r in table(k.run("get", "cm").stdout)[1:] if r[0] != "kube-root-ca.crt"]
    assert names == ["cm1"], names
    # Deleting a namespace makes it Terminating; the namespace controller
    # empties it, then it goes.
    k.run("create", "configmap", "in-foo", "-n", "foo")
    k.run("delete", "ns", "foo", "--wait=false")
    r = k.run("get", "ns", "foo", check=False)
    assert r.returncode != 0 or table(r.stdout)[1][:2] == ["foo", "Terminating"], r.stdout
    ctx.wait_for("namespace foo gone",
                 lambda: k.run("get", "ns", "foo", check=False).returncode != 0, timeout=30)


@test(timeout=300)
def writes_through_a_follower(ctx):
    require_kubectl()
    c = start(ctx, 3)
    leader = c.leader()
    follower = [m for m in c.masters if m is not leader][0]
    k = Kubectl(ctx, follower)
    ctx.wait_for("default namespace", lambda: k.run("get", "ns", "default", check=False)
                 .returncode == 0, timeout=30)
    r = k.create(POD % {"name": "f", "app": "a"})
    assert 'pod/f created' in r.stdout, r.stdout
    # Read back through the leader (a consistent read there).
    kl = Kubectl(ctx, leader)
    pod = json.loads(kl.run("get", "pod", "f", "-o", "json").stdout)
    assert pod["metadata"]["name"] == "f", pod
    r = k.create(POD % {"name": "f", "app": "a"}, check=False)
    assert r.returncode != 0 and 'pods "f" already exists' in r.stderr, r.stderr
    r = k.run("delete", "pod", "f")
    assert 'pod "f" deleted' in r.stdout, r.stdout


if __name__ == "__main__":
    main()
