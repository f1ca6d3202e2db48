#!/usr/bin/env python3
"""The capstan resource commands (get, apply, delete, describe, wait,
rollout status) against a 1-master cluster, through the admin kubeconfig,
and their error paths with the documented exit codes:
  unknown type -> 6 (invalid request), not found -> 4, invalid manifest -> 6,
  no server -> 3, bad usage -> 2, timeout -> 1."""

import json
import os
import time

from capstantest import test, main, program, free_port
from cluster import Cluster

MANIFEST = """apiVersion: v1
kind: ConfigMap
metadata:
  name: cm1
  labels:
    app: demo
data:
  a: "1"
  b: "2"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: c
        image: busybox:1.36
---
{"apiVersion": "v1", "kind": "Pod",
 "metadata": {"name": "p1", "labels": {"app": "demo"}},
 "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
"""


class Cli:
    def __init__(self, ctx, master):
        self.ctx = ctx
        self.master = master
        self.env = {"KUBECONFIG": os.path.join(master.data, "admin.kubeconfig"),
                    "HOME": ctx.dir}

    def run(self, *args, rc=0, input=None):
        r = self.ctx.run([program("capstan")] + list(args), check=False, input=input,
                         timeout=60, env=self.env)
        if rc is not None and r.returncode != rc:
            raise AssertionError("capstan %s exited %d (want %d)\nstdout: %s\nstderr: %s" % (
                " ".join(args), r.returncode, rc, r.stdout, r.stderr))
        if r.returncode != 0:
            # Errors are one line on stderr.
            assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        return r

    def spawn(self, name, *args):
        return self.ctx.spawn(name, [program("capstan")] + list(args), env=self.env)


def table(out):
    return [line.split() for line in out.strip().splitlines()]


def write(ctx, name, text):
    path = ctx.path(name)
    with open(path, "w") as f:
        f.write(text)
    return path


def start(ctx, flags=None):
    c = Cluster(ctx, flags).start(1)
    cli = Cli(ctx, c.seed)
    ctx.wait_for("default namespace",
                 lambda: cli.run("get", "ns", "default", rc=None).returncode == 0, timeout=30)
    return c, cli


def put_status(m, path, mutate):
    """Reads the object at path, lets mutate change it, PUTs it to /status."""
    r = m.request("GET", path)
    assert r.status == 200, r
    obj = r.json()
    mutate(obj)
    r = m.request("PUT", path + "/status", body=json.dumps(obj),
                  headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    return r.json()


@test(timeout=240)
def get_apply_describe_delete(ctx):
    c, cli = start(ctx)
    m = c.seed
    # get: a table from the server's Table, a short name, the Kind.
    for t in ("namespaces", "ns", "Namespace", "namespace"):
        rows = table(cli.run("get", t).stdout)
        assert rows[0] == ["NAME", "STATUS", "AGE"], rows
        assert "kube-system" in [r[0] for r in rows[1:]], rows
    ns = json.loads(cli.run("get", "ns", "default", "-o", "json").stdout)
    assert ns["kind"] == "Namespace" and ns["metadata"]["name"] == "default", ns
    assert "kind: Namespace" in cli.run("get", "ns/default", "-o", "yaml").stdout
    out = cli.run("get", "ns", "default", "kube-system", "-o", "name").stdout
    assert out.split() == ["namespace/default", "namespace/kube-system"], out

    # apply: a multi-document file (YAML and JSON) creates...
    path = write(ctx, "m.yaml", MANIFEST)
    out = cli.run("apply", "-f", path).stdout
    assert out.splitlines() == ["configmap/cm1 created", "deployment.apps/web created",
                                "pod/p1 created"], out
    cm = json.loads(cli.run("get", "configmap", "cm1", "-o", "json").stdout)
    last = json.loads(cm["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"])
    assert last["data"] == {"a": "1", "b": "2"} and last["kind"] == "ConfigMap", last
    # ... is unchanged when applied again (server defaults do not count) ...
    out = cli.run("apply", "-f", path).stdout
    assert out.splitlines() == ["configmap/cm1 unchanged", "deployment.apps/web unchanged",
                                "pod/p1 unchanged"], out
    # ... and configured after an edit; a removed key is deleted, a key set by
    # someone else (not in last-applied) is kept.
    r = m.request("PATCH", "/api/v1/namespaces/default/configmaps/cm1",
                  body=json.dumps({"data": {"other": "x"}}),
                  headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200, r
    path = write(ctx, "m2.yaml", MANIFEST.replace('b: "2"', 'c: "3"'))
    out = cli.run("apply", "-f", "-", input=open(path).read()).stdout
    assert out.splitlines() == ["configmap/cm1 configured", "deployment.apps/web unchanged",
                                "pod/p1 unchanged"], out
    cm = json.loads(cli.run("get", "cm", "cm1", "-o", "json").stdout)
    assert cm["data"] == {"a": "1", "c": "3", "other": "x"}, cm["data"]
    # Strategic merge, as kubectl: a container someone else added stays when
    # the applied one changes (a JSON merge patch would replace the list).
    r = m.request("PATCH", "/apis/apps/v1/namespaces/default/deployments/web",
                  body=json.dumps({"spec": {"template": {"spec": {"containers": [
                      {"name": "side", "image": "busybox:side"}]}}}}),
                  headers={"Content-Type": "application/strategic-merge-patch+json"})
    assert r.status == 200, r
    path3 = write(ctx, "m3.yaml", MANIFEST.replace('b: "2"', 'c: "3"').replace(
        "        image: busybox:1.36", "        image: busybox:1.37"))
    out = cli.run("apply", "-f", path3).stdout
    assert out.splitlines() == ["configmap/cm1 unchanged", "deployment.apps/web configured",
                                "pod/p1 unchanged"], out
    dep = json.loads(cli.run("get", "deploy", "web", "-o", "json").stdout)
    images = {c["name"]: c["image"] for c in dep["spec"]["template"]["spec"]["containers"]}
    assert images == {"c": "busybox:1.37", "side": "busybox:side"}, images
    # A directory of manifests.
    d = ctx.path("dir")
    os.makedirs(d)
    write(ctx, "dir/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm2\n")
    write(ctx, "dir/b.json", '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm3"}}')
    out = cli.run("apply", "-f", d).stdout
    assert out.splitlines() == ["configmap/cm2 created", "configmap/cm3 created"], out

    # get tables: labels, field selectors, -A, -o wide, JSON lists.
    rows = table(cli.run("get", "pods").stdout)
    assert rows[0][:3] == ["NAME", "READY", "STATUS"] and rows[1][0] == "p1", rows
    rows = table(cli.run("get", "cm", "-l", "app=demo").stdout)
    assert [r[0] for r in rows[1:]] == ["cm1"], rows
    rows = table(cli.run("get", "cm", "--field-selector", "metadata.name=cm2").stdout)
    assert [r[0] for r in rows[1:]] == ["cm2"], rows
    rows = table(cli.run("get", "pods", "-A").stdout)
    assert rows[0][:2] == ["NAMESPACE", "NAME"] and rows[1][:2] == ["default", "p1"], rows
    narrow = table(cli.run("get", "deploy").stdout)[0]
    wide = table(cli.run("get", "deployments.apps", "-o", "wide").stdout)[0]
    assert "IMAGES" in wide and "IMAGES" not in narrow and len(wide) > len(narrow), (narrow, wide)
    lst = json.loads(cli.run("get", "cm", "-l", "app=demo", "-o", "json").stdout)
    assert lst["kind"] == "List" and [i["metadata"]["name"] for i in lst["items"]] == ["cm1"], lst
    assert lst["items"][0]["kind"] == "ConfigMap", lst
    r = cli.run("get", "pods", "-n", "kube-system")
    assert r.stdout == "" and "No resources found in kube-system namespace." in r.stderr, r

    # describe: metadata, labels, spec fields, events of the object.
    ev = {"apiVersion": "v1", "kind": "Event",
          "metadata": {"name": "p1.1", "namespace": "default"},
          "involvedObject": {"kind": "Pod", "name": "p1", "namespace": "default",
                             "uid": json.loads(cli.run("get", "pod", "p1", "-o", "json")
                                               .stdout)["metadata"]["uid"]},
          "reason": "Testing", "message": "hello from the test", "type": "Normal",
          "source": {"component": "tester"}}
    r = m.request("POST", "/api/v1/namespaces/default/events", body=json.dumps(ev),
                  headers={"Content-Type": "application/json"})
    assert r.status == 201, r
    out = cli.run("describe", "pod", "p1").stdout
    for want in ("Name:         p1", "Namespace:    default", "Labels:       app=demo",
                 "Image:", "busybox:1.36", "Events:", "Testing", "hello from the test"):
        assert want in out, (want, out)
    out = cli.run("describe", "cm/cm2").stdout
    assert "Name:         cm2" in out and "Events:       <none>" in out, out

    # delete: by name, TYPE/NAME, and a manifest.
    out = cli.run("delete", "configmap", "cm2", "cm3").stdout
    assert out.splitlines() == ['configmap "cm2" deleted', 'configmap "cm3" deleted'], out
    cli.run("get", "cm", "cm2", rc=4)
    out = cli.run("delete", "-f", path, "--wait").stdout
    assert 'deployment.apps "web" deleted' in out and 'pod "p1" deleted' in out, out
    cli.run("get", "deploy/web", rc=4)
    cli.run("delete", "pod", "p1", rc=4)
    cli.run("delete", "pod", "p1", "--ignore-not-found")


@test(timeout=240)
def wait_and_rollout(ctx):
    # The test plays the Deployment controller (it writes the status that
    # rollout status reads), so the leader runs every controller but that.
    c, cli = start(ctx, ["--controllers", "*,-deployment"])
    m = c.seed
    path = write(ctx, "m.yaml", MANIFEST)
    cli.run("apply", "-f", path)
    pod_path = "/api/v1/namespaces/default/pods/p1"

    # wait --for=condition: times out (exit 1), then succeeds once the
    # condition is written through the status subresource.
    r = cli.run("wait", "pod/p1", "--for=condition=Ready", "--timeout=1s", rc=1)
    assert "timed out" in r.stderr, r.stderr
    w = cli.spawn("wait-ready", "wait", "pod/p1", "--for=condition=Ready", "--timeout=60s")
    time.sleep(0.5)

    def ready(o):
        o["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    put_status(m, pod_path, ready)
    assert w.wait(timeout=60) == 0, w.log()
    assert "pod/p1 condition met" in w.log(), w.log()
    cli.run("wait", "pod/p1", "--for=condition=Ready=False", "--timeout=0s", rc=1)

    # wait --for=delete: returns once the object is gone.
    w = cli.spawn("wait-delete", "wait", "pod/p1", "--for=delete", "--timeout=60s")
    time.sleep(0.5)
    assert w.alive(), w.log()
    r = m.request("DELETE", pod_path)
    assert r.status == 200, r
    assert w.wait(timeout=60) == 0, w.log()
    assert "pod/p1 condition met" in w.log(), w.log()

    # rollout status: plain progress lines (stdout is not a tty) as the
    # status is written, success at the end.
    dep = "/apis/apps/v1/namespaces/default/deployments/web"
    r = cli.run("rollout", "status", "deployment/web", "--timeout=1s", rc=1)
    assert "Waiting for deployment spec update to be observed..." in r.stdout, r.stdout
    ro = cli.spawn("rollout", "rollout", "status", "deployment/web", "--timeout=60s")
    steps = [
        ({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1, "availableReplicas": 0},
         'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...'),
        ({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 1},
         'Waiting for deployment "web" rollout to finish: 1 of 3 updated replicas are available...'),
        ({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3},
         'deployment "web" successfully rolled out'),
    ]
    for st, line in steps:
        def mutate(o, st=st):
            o["status"] = st
        put_status(m, dep, mutate)
        ctx.wait_for(line, lambda line=line: line in ro.log(), timeout=30)
    assert ro.wait(timeout=30) == 0, ro.log()
    lines = ro.log().splitlines()
    assert lines[-1] == 'deployment "web" successfully rolled out', lines
    assert "\r" not in ro.log() and "\033" not in ro.log(), ro.log()
    out = cli.run("rollout", "status", "deploy/web").stdout
    assert out == 'deployment "web" successfully rolled out\n', out


@test(timeout=180)
def error_paths(ctx):
    c, cli = start(ctx)
    # Unknown type: 6 (the server does not serve it: an invalid request).
    r = cli.run("get", "flurbs", rc=6)
    assert 'the server doesn\'t have a resource type "flurbs"' in r.stderr, r.stderr
    # Not found: 4.
    r = cli.run("get", "pod", "nope", rc=4)
    assert 'pods "nope" not found' in r.stderr, r.stderr
    cli.run("describe", "pod", "nope", rc=4)
    cli.run("delete", "pod", "nope", rc=4)
    cli.run("apply", "-f", ctx.path("missing.yaml"), rc=4)
    # Invalid manifests: 6 (syntax, no kind, unknown kind, rejected by the
    # server's validation).
    bad = write(ctx, "bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n")
    cli.run("apply", "-f", bad, rc=6)
    bad = write(ctx, "nokind.yaml", "metadata:\n  name: x\n")
    cli.run("apply", "-f", bad, rc=6)
    bad = write(ctx, "unknown.yaml", "apiVersion: v9\nkind: Gizmo\nmetadata:\n  name: x\n")
    r = cli.run("apply", "-f", bad, rc=6)
    assert 'no matches for kind "Gizmo"' in r.stderr, r.stderr
    bad = write(ctx, "invalid.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n")
    r = cli.run("apply", "-f", bad, rc=6)
    assert "Bad_Name" in r.stderr, r.stderr
    # logs: a missing pod is 4; a pod on no node yet is an invalid request.
    r = cli.run("logs", "nope", rc=4)
    assert 'pods "nope" not found' in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    pod = write(ctx, "pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: lonely\n"
                "spec:\n  containers:\n  - name: c\n    image: busybox\n")
    cli.run("apply", "-f", pod)
    r = cli.run("logs", "pod/lonely", rc=6)
    assert "not scheduled to a node" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    cli.run("logs", rc=2)
    cli.run("logs", "a", "b", rc=2)
    cli.run("logs", "lonely", "--tail", "x", rc=2)
    # Usage: 2.
    cli.run("get", rc=2)
    cli.run("get", "pods", "-o", "xml", rc=2)
    cli.run("apply", rc=2)
    cli.run("wait", "pod/x", rc=2)
    cli.run("wait", "pod/x", "--for=sideways", rc=2)
    cli.run("rollout", "undo", "deployment/x", rc=2)
    cli.run("delete", "pod", rc=2)
    # No server: 3.
    port = free_port()
    for args in (["get", "pods"], ["apply", "-f", write(ctx, "ok.yaml", MANIFEST)],
                 ["delete", "pod", "x"], ["describe", "pod", "x"],
                 ["wait", "pod/x", "--for=delete"], ["rollout", "status", "deploy/x"]):
        r = cli.run("--server", "https://127.0.0.1:%d" % port, *args, rc=3)
        assert "cannot reach" in r.stderr, r.stderr


if __name__ == "__main__":
    main()
