"""kubectl compatibility checks against a capstan cluster (issue 4,
"Must show"): a library of checks, each one kubectl command (or a short
sequence) with its expected output, run with a given kubectl binary
against a given master.

A check is a function check_NAME(k) taking a Kubectl bound to a binary, a
master and a private namespace; it raises AssertionError (with kubectl's
own output) on failure. CHECKS lists them in the order they must run
(later checks use objects the earlier ones created).

Run as a program (with CAPSTAN_BUILDDIR set and tests/lib on PYTHONPATH)
it starts a 3-master cluster and prints the pass/fail matrix of every
check for every kubectl version, through the leader and a follower.
"""

import json
import os
import re
import signal
import subprocess
import time

KUBECTL_DIR = "/usr/lib/google-cloud-sdk/bin"
# The 1.32 entry is the dispatcher on every machine; it runs the bundled
# kubectl matching the server's minor version.
KUBECTLS = [
    ("1.32", "/usr/bin/kubectl"),
    ("1.27", os.path.join(KUBECTL_DIR, "kubectl.1.27")),
    ("1.33", os.path.join(KUBECTL_DIR, "kubectl.1.33")),
]

NAMESPACED = ["configmaps", "secrets", "services", "deployments", "replicasets",
              "daemonsets", "statefulsets", "persistentvolumeclaims",
              "serviceaccounts", "ingresses", "networkpolicies", "leases",
              "endpointslices", "endpoints", "events", "pods"]
CLUSTER = ["namespaces", "persistentvolumes", "nodes"]

MANIFEST = """apiVersion: v1
kind: Namespace
metadata:
  name: %(ns)s
  labels:
    compat: "yes"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm1
  namespace: %(ns)s
  labels:
    app: web
data:
  a: "%(value)s"
---
apiVersion: v1
kind: Secret
metadata:
  name: s1
  namespace: %(ns)s
  labels:
    app: web
type: Opaque
stringData:
  password: hunter2
---
apiVersion: v1
kind: Service
metadata:
  name: svc1
  namespace: %(ns)s
  labels:
    app: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: %(ns)s
  labels:
    app: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: busybox:1.36
        command: ["sleep", "3600"]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: rs1
  namespace: %(ns)s
  # Not app=web: the Deployment "web" would adopt it (as in Kubernetes).
  labels:
    app: rs
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
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: ds1
  namespace: %(ns)s
  labels:
    app: web
spec:
  selector:
    matchLabels:
      app: ds
  template:
    metadata:
      labels:
        app: ds
    spec:
      containers:
      - name: c
        image: busybox:1.36
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: sts1
  namespace: %(ns)s
  labels:
    app: web
spec:
  serviceName: svc1
  replicas: 1
  selector:
    matchLabels:
      app: sts
  template:
    metadata:
      labels:
        app: sts
    spec:
      containers:
      - name: c
        image: busybox:1.36
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: pv-%(ns)s
  labels:
    app: web
spec:
  capacity:
    storage: 1Gi
  accessModes: ["ReadWriteOnce"]
  hostPath:
    path: /tmp/pv-%(ns)s
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: pvc1
  namespace: %(ns)s
  labels:
    app: web
spec:
  accessModes: ["ReadWriteOnce"]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: sa1
  namespace: %(ns)s
  labels:
    app: web
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: ing1
  namespace: %(ns)s
  labels:
    app: web
spec:
  rules:
  - host: web.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: svc1
            port:
              number: 80
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: np1
  namespace: %(ns)s
  labels:
    app: web
spec:
  podSelector: {}
  policyTypes: ["Ingress"]
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata:
  name: lease1
  namespace: %(ns)s
  labels:
    app: web
spec:
  holderIdentity: me
  leaseDurationSeconds: 15
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: es1
  namespace: %(ns)s
  labels:
    app: web
    kubernetes.io/service-name: svc1
addressType: IPv4
endpoints:
- addresses: ["10.1.0.1"]
ports:
- name: http
  port: 8080
  protocol: TCP
---
apiVersion: v1
kind: Endpoints
metadata:
  name: ep1
  namespace: %(ns)s
  labels:
    app: web
subsets:
- addresses:
  - ip: 10.1.0.1
  ports:
  - name: http
    port: 8080
    protocol: TCP
---
apiVersion: v1
kind: Event
metadata:
  name: ev1
  namespace: %(ns)s
  labels:
    app: web
involvedObject:
  kind: Pod
  name: p1
  namespace: %(ns)s
reason: Testing
message: compat check
type: Normal
---
apiVersion: v1
kind: Pod
metadata:
  name: p1
  namespace: %(ns)s
  labels:
    app: web
spec:
  containers:
  - name: c
    image: busybox:1.36
---
apiVersion: v1
kind: Node
metadata:
  name: node-%(ns)s
  labels:
    app: web
"""

# (kind/name as kubectl prints it, cluster-scoped?)
OBJECTS = [
    ("namespace/%(ns)s", True), ("configmap/cm1", False), ("secret/s1", False),
    ("service/svc1", False), ("deployment.apps/web", False),
    ("replicaset.apps/rs1", False), ("daemonset.apps/ds1", False),
    ("statefulset.apps/sts1", False), ("persistentvolume/pv-%(ns)s", True),
    ("persistentvolumeclaim/pvc1", False), ("serviceaccount/sa1", False),
    ("ingress.networking.k8s.io/ing1", False),
    ("networkpolicy.networking.k8s.io/np1", False),
    ("lease.coordination.k8s.io/lease1", False),
    ("endpointslice.discovery.k8s.io/es1", False), ("endpoints/ep1", False),
    ("event/ev1", False), ("pod/p1", False), ("node/node-%(ns)s", True),
]

EDITOR = """#!/bin/sh
sed -i 's/^  a: .*/  a: "edited"/' "$1"
"""


def kubeconfig_for(src_text, url):
    """The admin kubeconfig with its server URL replaced by url."""
    out, n = re.subn(r"(server:\s*)\S+", lambda m: m.group(1) + url, src_text)
    assert n == 1, "kubeconfig has %d server lines" % n
    return out


class Kubectl:
    """One kubectl binary against one master, in one private namespace."""

    def __init__(self, ctx, version, binary, kubeconfig, ns, tag, workdir=None):
        self.ctx = ctx  # the test's Ctx: runs, waits, deadlines
        self.version = version
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.ns = ns
        self.tag = tag
        self.dir = os.path.join(workdir or ctx.dir, "k-" + tag)
        os.makedirs(self.dir, exist_ok=True)
        self.cache = os.path.join(self.dir, "cache")

    def argv(self, *args, kubeconfig=None):
        return [self.binary, "--kubeconfig", kubeconfig or self.kubeconfig,
                "--cache-dir", self.cache, "--request-timeout", "30s"] + list(args)

    def env(self, extra=None):
        e = {"HOME": self.dir, "KUBECTL_EXTERNAL_DIFF": ""}
        if extra:
            e.update(extra)
        return e

    def run(self, *args, check=True, input=None, env=None, kubeconfig=None, timeout=60):
        r = self.ctx.run(self.argv(*args, kubeconfig=kubeconfig), check=False,
                         input=input, timeout=timeout, env=self.env(env))
        if check and r.returncode != 0:
            raise AssertionError("kubectl %s: %s exited %d\nstdout: %s\nstderr: %s" % (
                self.version, " ".join(args), r.returncode, r.stdout[-2000:],
                r.stderr[-2000:]))
        return r

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def manifest(self, value="1"):
        return self.write("all.yaml", MANIFEST % {"ns": self.ns, "value": value})

    def objects(self):
        return [o % {"ns": self.ns} for o, _ in OBJECTS]


def expect(cond, what, r=None):
    if not cond:
        if r is not None:
            what += "\nstdout: %s\nstderr: %s" % (r.stdout[-3000:], r.stderr[-3000:])
        raise AssertionError(what)


def rows(out):
    return [line.split() for line in out.strip().splitlines() if line.strip()]


# ---------------------------------------------------------------- checks

def check_version(k):
    r = k.run("version", "-o", "json")
    v = json.loads(r.stdout)
    expect(v["serverVersion"]["major"] == "1" and v["serverVersion"]["minor"],
           "serverVersion", r)
    r = k.run("version")
    expect("Server Version:" in r.stdout, "plain version", r)


def check_api_resources(k):
    r = k.run("api-resources")
    names = {row[0]: row for row in rows(r.stdout)[1:]}
    for res in NAMESPACED + CLUSTER:
        expect(res in names, "api-resources lacks " + res, r)
    for short in ("cm", "svc", "deploy", "rs", "ds", "sts", "pv", "pvc", "sa", "ing",
                  "netpol", "ep", "ev", "po", "no", "ns"):
        expect(" " + short + " " in r.stdout or " " + short + "," in r.stdout
               or "," + short + " " in r.stdout, "api-resources lacks short name " + short, r)
    r = k.run("api-resources", "--namespaced=false", "-o", "name")
    expect("nodes" in r.stdout.split() and "configmaps" not in r.stdout.split(),
           "api-resources --namespaced=false", r)


def check_apply_create(k):
    r = k.run("apply", "-f", k.manifest())
    for obj in k.objects():
        expect("%s created" % obj in r.stdout, "apply: %s not created" % obj, r)


def check_get_table(k):
    r = k.run("get", ",".join(NAMESPACED), "-n", k.ns)
    for obj in k.objects():
        if obj.startswith(("namespace/", "persistentvolume/", "node/", "event/")):
            continue
        expect(obj in r.stdout, "get table lacks " + obj, r)
    # kubectl prints events without a NAME column.
    expect("LAST SEEN" in r.stdout and "Testing" in r.stdout, "get table lacks the event", r)
    r = k.run("get", "deploy", "web", "-n", k.ns)
    expect(rows(r.stdout)[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
           "deployment columns", r)
    r = k.run("get", "svc", "svc1", "-n", k.ns)
    expect(rows(r.stdout)[0][:4] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP"],
           "service columns", r)
    r = k.run("get", "ns,pv,nodes")
    for obj in ("namespace/" + k.ns, "persistentvolume/pv-" + k.ns, "node/node-" + k.ns):
        expect(obj in r.stdout, "get table lacks " + obj, r)


def check_get_all_namespaces(k):
    r = k.run("get", ",".join(NAMESPACED), "-A")
    expect(r.stdout.startswith("NAMESPACE") and k.ns in r.stdout, "get -A", r)
    for obj in ("configmap/cm1", "deployment.apps/web", "pod/p1", "lease.coordination.k8s.io/lease1"):
        expect(obj in r.stdout, "get -A lacks " + obj, r)


def check_get_wide(k):
    r = k.run("get", ",".join(NAMESPACED), "-n", k.ns, "-o", "wide")
    expect("deployment.apps/web" in r.stdout and "SELECTOR" in r.stdout, "get -o wide", r)
    r = k.run("get", "pods", "-n", k.ns, "-o", "wide")
    expect(rows(r.stdout)[0][:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"],
           "pods -o wide columns", r)


def check_get_yaml(k):
    r = k.run("get", ",".join(NAMESPACED), "-n", k.ns, "-o", "yaml")
    expect(r.stdout.startswith("apiVersion: v1\nitems:") and "kind: List" in r.stdout,
           "get -o yaml", r)
    for kind in ("ConfigMap", "Secret", "Service", "Deployment", "ReplicaSet", "DaemonSet",
                 "StatefulSet", "PersistentVolumeClaim", "ServiceAccount", "Ingress",
                 "NetworkPolicy", "Lease", "EndpointSlice", "Endpoints", "Event", "Pod"):
        expect("\n  kind: %s\n" % kind in r.stdout, "get -o yaml lacks kind " + kind, r)
    r = k.run("get", "cm", "cm1", "-n", k.ns, "-o", "yaml")
    expect("kind: ConfigMap" in r.stdout and "resourceVersion:" in r.stdout, "cm -o yaml", r)


def check_get_json(k):
    r = k.run("get", ",".join(NAMESPACED + CLUSTER), "-n", k.ns, "-o", "json")
    j = json.loads(r.stdout)
    got = {(i["kind"], i["metadata"]["name"]) for i in j["items"]}
    for want in (("Deployment", "web"), ("Pod", "p1"), ("Node", "node-" + k.ns),
                 ("PersistentVolume", "pv-" + k.ns), ("EndpointSlice", "es1"),
                 ("Event", "ev1"), ("Lease", "lease1")):
        expect(want in got, "get -o json lacks %r" % (want,), r)
    for i in j["items"]:
        expect(i["metadata"].get("uid") and i["metadata"].get("resourceVersion"),
               "object without uid/resourceVersion: %r" % (i["metadata"],))


def check_get_jsonpath(k):
    r = k.run("get", "deploy", "-n", k.ns, "-o", "jsonpath={.items[*].metadata.name}")
    expect(r.stdout.strip() == "web", "jsonpath items", r)
    r = k.run("get", "deploy", "web", "-n", k.ns, "-o",
              "jsonpath={.spec.template.spec.containers[0].image}")
    expect(r.stdout.strip() == "busybox:1.36", "jsonpath image", r)
    # Only the manifest's own pod: the controllers create others.
    r = k.run("get", "pods", "-n", k.ns, "--field-selector", "metadata.name=p1", "-o",
              "jsonpath={range .items[*]}{.metadata.name}:{.status.phase}{\"\\n\"}{end}")
    expect(r.stdout.strip() == "p1:Pending", "jsonpath range", r)


def check_cluster_ip(k):
    r = k.run("get", "svc", "svc1", "-n", k.ns, "-o", "jsonpath={.spec.clusterIP}")
    expect(re.match(r"^\d+\.\d+\.\d+\.\d+$", r.stdout.strip()), "no clusterIP allocated", r)


def check_get_name(k):
    r = k.run("get", ",".join(NAMESPACED), "-n", k.ns, "-o", "name")
    lines = set(r.stdout.split())
    for obj in k.objects():
        if obj.startswith(("namespace/", "persistentvolume/", "node/")):
            continue
        expect(obj in lines, "-o name lacks " + obj, r)


def check_get_show_labels(k):
    r = k.run("get", "cm,deploy,pods", "-n", k.ns, "--show-labels")
    expect("LABELS" in r.stdout and "app=web" in r.stdout, "--show-labels", r)


def check_get_selector(k):
    r = k.run("get", ",".join(NAMESPACED), "-n", k.ns, "-l", "app=web", "-o", "name")
    lines = set(r.stdout.split())
    expect("configmap/cm1" in lines and "pod/p1" in lines, "-l app=web", r)
    # The pods of rs1, ds1 and sts1 (app=rs|ds|sts) come from controllers.
    r = k.run("get", "pods", "-n", k.ns, "-l", "app!=web,app notin (rs,ds,sts)", "-o", "name")
    expect(r.stdout.strip() == "", "-l app!=web", r)
    r = k.run("get", "ns", "-l", "compat=yes", "-o", "name")
    expect("namespace/" + k.ns in r.stdout.split(), "ns -l", r)
    r = k.run("get", "pods", "-n", k.ns, "--field-selector", "metadata.name=p1", "-o", "name")
    expect(r.stdout.split() == ["pod/p1"], "--field-selector", r)


def check_reapply(k):
    # A field outside the manifest (an annotation set by another client)
    # survives the strategic merge of apply.
    k.run("annotate", "deploy", "web", "-n", k.ns, "keep=me")
    r = k.run("apply", "-f", k.manifest(value="2"))
    expect("configmap/cm1 configured" in r.stdout, "re-apply: cm1 not configured", r)
    for obj in k.objects():
        if obj != "configmap/cm1":
            expect("%s unchanged" % obj in r.stdout, "re-apply: %s not unchanged" % obj, r)
    cm = json.loads(k.run("get", "cm", "cm1", "-n", k.ns, "-o", "json").stdout)
    expect(cm["data"] == {"a": "2"}, "cm1 data after re-apply: %r" % cm["data"])
    d = json.loads(k.run("get", "deploy", "web", "-n", k.ns, "-o", "json").stdout)
    expect(d["metadata"]["annotations"].get("keep") == "me",
           "annotation lost by apply: %r" % d["metadata"]["annotations"])


def check_apply_server_side(k):
    r = k.run("apply", "--server-side", "--force-conflicts", "-f", k.manifest(value="3"))
    for obj in k.objects():
        expect("%s serverside-applied" % obj in r.stdout, "SSA: " + obj, r)
    cm = json.loads(k.run("get", "cm", "cm1", "-n", k.ns, "-o", "json").stdout)
    expect(cm["data"] == {"a": "3"}, "cm1 after SSA: %r" % cm["data"])
    # Creating through apply-patch.
    path = k.write("ssa.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa1\n"
                   "  namespace: %s\ndata:\n  x: z\n" % k.ns)
    r = k.run("apply", "--server-side", "-f", path)
    expect("configmap/ssa1 serverside-applied" in r.stdout, "SSA create", r)


def check_create_namespace(k):
    r = k.run("create", "namespace", k.ns + "-x")
    expect("namespace/%s-x created" % k.ns in r.stdout, "create namespace", r)


def check_create_configmap(k):
    r = k.run("create", "configmap", "cm2", "-n", k.ns, "--from-literal=k=v")
    expect("configmap/cm2 created" in r.stdout, "create configmap", r)
    cm = json.loads(k.run("get", "cm", "cm2", "-n", k.ns, "-o", "json").stdout)
    expect(cm["data"] == {"k": "v"}, "cm2 data %r" % cm)


def check_create_secret(k):
    r = k.run("create", "secret", "generic", "s2", "-n", k.ns, "--from-literal=k=v")
    expect("secret/s2 created" in r.stdout, "create secret generic", r)
    s = json.loads(k.run("get", "secret", "s2", "-n", k.ns, "-o", "json").stdout)
    expect(s["data"] == {"k": "dg=="} and s["type"] == "Opaque", "s2 %r" % s)


def check_create_service(k):
    r = k.run("create", "service", "clusterip", "svc2", "-n", k.ns, "--tcp=80:8080")
    expect("service/svc2 created" in r.stdout, "create service clusterip", r)
    s = json.loads(k.run("get", "svc", "svc2", "-n", k.ns, "-o", "json").stdout)
    expect(s["spec"]["ports"][0]["port"] == 80 and s["spec"]["type"] == "ClusterIP",
           "svc2 %r" % s)


def check_create_deployment(k):
    r = k.run("create", "deployment", "d2", "-n", k.ns, "--image=busybox:1.36",
              "--replicas=2")
    expect("deployment.apps/d2 created" in r.stdout, "create deployment", r)
    d = json.loads(k.run("get", "deploy", "d2", "-n", k.ns, "-o", "json").stdout)
    expect(d["spec"]["replicas"] == 2 and d["metadata"]["generation"] == 1, "d2 %r" % d)


def check_describe(k):
    for what, needle in (("deployment/web", "Replicas:"), ("pod/p1", "Containers:"),
                         ("service/svc1", "Port:"), ("configmap/cm1", "Data"),
                         ("node/node-" + k.ns, "Name:"), ("namespace/" + k.ns, "Status:")):
        r = k.run("describe", what, "-n", k.ns)
        expect(needle in r.stdout, "describe %s lacks %r" % (what, needle), r)


def check_label(k):
    r = k.run("label", "cm", "cm1", "-n", k.ns, "tier=front")
    expect("configmap/cm1 labeled" in r.stdout, "label", r)
    r = k.run("get", "cm", "-n", k.ns, "-l", "tier=front", "-o", "name")
    expect(r.stdout.split() == ["configmap/cm1"], "label selector after label", r)
    r = k.run("label", "cm", "cm1", "-n", k.ns, "tier-")
    expect("configmap/cm1 unlabeled" in r.stdout, "unlabel", r)


def check_annotate(k):
    r = k.run("annotate", "pod", "p1", "-n", k.ns, "note=hello")
    # kubectl 1.27 itself prints the verb "annotate" (its PrintFlags said
    # "annotate"; kubernetes/kubernetes#119846, fixed in 1.28 by #118045),
    # whatever the server answers.
    verb = "annotate" if k.version == "1.27" else "annotated"
    expect(("pod/p1 %s\n" % verb) in r.stdout, "annotate", r)
    r = k.run("get", "pod", "p1", "-n", k.ns, "-o", "jsonpath={.metadata.annotations.note}")
    expect(r.stdout.strip() == "hello", "annotation value", r)


def check_patch_merge(k):
    r = k.run("patch", "cm", "cm1", "-n", k.ns, "--type=merge", "-p", '{"data":{"m":"1"}}')
    expect("configmap/cm1 patched" in r.stdout, "patch merge", r)
    cm = json.loads(k.run("get", "cm", "cm1", "-n", k.ns, "-o", "json").stdout)
    expect(cm["data"].get("m") == "1", "merge result %r" % cm["data"])


def check_patch_json(k):
    r = k.run("patch", "deploy", "web", "-n", k.ns, "--type=json", "-p",
              '[{"op":"replace","path":"/spec/replicas","value":2}]')
    expect("deployment.apps/web patched" in r.stdout, "patch json", r)
    d = json.loads(k.run("get", "deploy", "web", "-n", k.ns, "-o", "json").stdout)
    expect(d["spec"]["replicas"] == 2, "json patch result")


def check_patch_strategic(k):
    r = k.run("patch", "deploy", "web", "-n", k.ns, "--type=strategic", "-p",
              '{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"busybox:1.37"}]}}}}')
    expect("deployment.apps/web patched" in r.stdout, "patch strategic", r)
    d = json.loads(k.run("get", "deploy", "web", "-n", k.ns, "-o", "json").stdout)
    names = [c["name"] for c in d["spec"]["template"]["spec"]["containers"]]
    expect(sorted(names) == ["side", "web"], "strategic merge by name: %r" % names)
    expect(d["metadata"]["generation"] >= 2, "generation not bumped: %r" % d["metadata"])


def check_edit(k):
    editor = k.write("editor.sh", EDITOR)
    os.chmod(editor, 0o755)
    r = k.run("edit", "cm", "cm1", "-n", k.ns, env={"KUBE_EDITOR": editor, "EDITOR": editor})
    expect("configmap/cm1 edited" in r.stdout, "edit", r)
    cm = json.loads(k.run("get", "cm", "cm1", "-n", k.ns, "-o", "json").stdout)
    expect(cm["data"]["a"] == "edited", "edit result %r" % cm["data"])


def check_scale(k):
    r = k.run("scale", "deploy", "web", "-n", k.ns, "--replicas=3")
    expect("deployment.apps/web scaled" in r.stdout, "scale deployment", r)
    r = k.run("get", "deploy", "web", "-n", k.ns, "-o", "jsonpath={.spec.replicas}")
    expect(r.stdout.strip() == "3", "replicas after scale", r)
    r = k.run("scale", "statefulset", "sts1", "-n", k.ns, "--replicas=2")
    expect("statefulset.apps/sts1 scaled" in r.stdout, "scale statefulset", r)


def check_watch(k):
    out = os.path.join(k.dir, "watch.out")
    k.run("create", "configmap", "w1", "-n", k.ns)
    with open(out, "w") as f:
        p = subprocess.Popen(k.argv("get", "cm", "w1", "-n", k.ns, "-w",
                                    "--output-watch-events"),
                             stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=dict(os.environ, **k.env()))
    try:
        def count(ev):
            with open(out) as fh:
                return sum(1 for line in fh if line.split()[:2] == [ev, "w1"])
        # The initial list prints ADDED; the watch follows it.
        k.ctx.wait_for("ADDED", lambda: count("ADDED") == 1, timeout=20)
        k.run("label", "cm", "w1", "-n", k.ns, "watched=yes")
        k.ctx.wait_for("MODIFIED", lambda: count("MODIFIED") == 1, timeout=20)
        k.run("delete", "cm", "w1", "-n", k.ns)
        k.ctx.wait_for("DELETED", lambda: count("DELETED") == 1, timeout=20)
    except AssertionError as ex:
        with open(out) as fh:
            raise AssertionError("%s\nwatch output: %s" % (ex, fh.read()[-2000:]))
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
        p.wait(timeout=10)


def check_explain(k):
    r = k.run("explain", "deployment.spec")
    expect("DeploymentSpec" in r.stdout and "replicas" in r.stdout and
           "template" in r.stdout, "explain deployment.spec", r)


def check_auth_whoami(k):
    r = k.run("auth", "whoami", "-o", "json")
    j = json.loads(r.stdout)
    expect(j["status"]["userInfo"]["username"] == "admin", "whoami", r)


def _bad_kubeconfig(k, name, ca_file, token):
    path = os.path.join(k.dir, name)
    url = None
    with open(k.kubeconfig) as f:
        url = re.search(r"server:\s*(\S+)", f.read()).group(1)
    for args in (["set-cluster", "c", "--server", url, "--certificate-authority", ca_file,
                  "--embed-certs=true"],
                 ["set-credentials", "u", "--token", token],
                 ["set-context", "x", "--cluster", "c", "--user", "u"],
                 ["use-context", "x"]):
        k.run("config", *args, kubeconfig=path)
    return path


def check_wrong_token(k):
    ca = os.path.join(os.path.dirname(k.kubeconfig), "ca.crt")
    cfg = _bad_kubeconfig(k, "wrong-token.kubeconfig", ca, "not-a-token")
    r = k.run("get", "ns", check=False, kubeconfig=cfg)
    expect(r.returncode != 0 and ("Unauthorized" in r.stderr or
                                  "must be logged in" in r.stderr), "wrong token accepted", r)


def check_unknown_ca(k):
    key = os.path.join(k.dir, "other.key")
    crt = os.path.join(k.dir, "other.crt")
    k.ctx.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
               "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt,
               "-days", "1", "-subj", "/CN=other-ca"])
    token = open(os.path.join(os.path.dirname(k.kubeconfig), "admin.token")).read().strip()
    cfg = _bad_kubeconfig(k, "other-ca.kubeconfig", crt, token)
    r = k.run("get", "ns", check=False, kubeconfig=cfg)
    expect(r.returncode != 0 and "certificate signed by unknown authority" in r.stderr,
           "unknown CA accepted", r)


INVALID = [
    ("bad-name", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n"
     "  namespace: %(ns)s\ndata:\n  a: b\n", "configmaps", "Bad_Name"),
    ("missing-field", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: nosel\n"
     "  namespace: %(ns)s\nspec:\n  template:\n    metadata:\n      labels:\n        a: b\n"
     "    spec:\n      containers:\n      - name: c\n        image: busybox\n",
     "deployments", "nosel"),
    ("wrong-type", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: badtype\n"
     "  namespace: %(ns)s\nspec:\n  replicas: many\n  selector:\n    matchLabels:\n      a: b\n"
     "  template:\n    metadata:\n      labels:\n        a: b\n    spec:\n      containers:\n"
     "      - name: c\n        image: busybox\n", "deployments", "badtype"),
]


def check_invalid_manifest(k):
    for name, text, res, obj in INVALID:
        path = k.write(name + ".yaml", text % {"ns": k.ns})
        r = k.run("apply", "-f", path, check=False)
        expect(r.returncode != 0 and "is invalid" in r.stderr,
               "%s: no 'is invalid'" % name, r)
        r = k.run("get", res, "-n", k.ns, "-o", "name")
        expect(obj.lower() not in r.stdout.lower(), "%s: object written" % name, r)


def check_delete_foreground(k):
    k.run("create", "configmap", "fin1", "-n", k.ns)
    k.run("patch", "cm", "fin1", "-n", k.ns, "--type=merge", "-p",
          '{"metadata":{"finalizers":["example.com/hold"]}}')
    r = k.run("delete", "cm", "fin1", "-n", k.ns, "--cascade=foreground", "--wait=false")
    expect('configmap "fin1" deleted' in r.stdout, "delete --cascade=foreground", r)
    cm = json.loads(k.run("get", "cm", "fin1", "-n", k.ns, "-o", "json").stdout)
    expect(cm["metadata"].get("deletionTimestamp"), "no deletionTimestamp: %r" % cm["metadata"])
    k.run("patch", "cm", "fin1", "-n", k.ns, "--type=json", "-p",
          '[{"op":"replace","path":"/metadata/finalizers","value":[]}]')
    k.ctx.wait_for("fin1 gone", lambda: k.run("get", "cm", "fin1", "-n", k.ns, check=False)
                   .returncode != 0, timeout=20)


def check_delete_foreground_no_dependents(k):
    # A deployment without dependents goes at once: foregroundDeletion only
    # waits for dependents (the garbage collector removes the finalizer).
    k.run("create", "deployment", "d3", "-n", k.ns, "--image=busybox:1.36")
    r = k.run("delete", "deploy", "d3", "-n", k.ns, "--cascade=foreground", "--timeout=20s",
              check=False)
    if r.returncode != 0:
        left = k.run("get", "deploy", "d3", "-n", k.ns, "-o",
                     "jsonpath={.metadata.deletionTimestamp} {.metadata.finalizers}", check=False)
        raise AssertionError("delete --cascade=foreground of a deployment without dependents "
                             "exited %d\nstdout: %s\nstderr: %s\nleft: %s" % (
                                 r.returncode, r.stdout, r.stderr, left.stdout))
    expect('deployment.apps "d3" deleted' in r.stdout, "delete deploy foreground", r)


def check_delete_f(k):
    # The namespace last: deleted first, the namespace controller would
    # remove the rest before kubectl gets to it (NotFound).
    docs = open(k.manifest()).read().split("\n---\n")
    ns_docs = [d for d in docs if re.search(r"^kind: Namespace$", d, re.M)]
    path = k.write("all-ns-last.yaml",
                   "\n---\n".join([d for d in docs if d not in ns_docs] + ns_docs))
    r = k.run("delete", "-f", path, "--wait=false")
    for obj in k.objects():
        kind, name = obj.split("/", 1)
        expect('%s "%s" deleted' % (kind, name) in r.stdout, "delete -f: " + obj, r)
    r = k.run("get", "pv,nodes", "-o", "name")
    expect("pv-" + k.ns not in r.stdout and "node-" + k.ns not in r.stdout,
           "cluster objects left after delete -f", r)


CHECKS = [
    ("version", check_version),
    ("api-resources", check_api_resources),
    ("apply -f (every kind)", check_apply_create),
    ("get (Table)", check_get_table),
    ("get -A", check_get_all_namespaces),
    ("get -o wide", check_get_wide),
    ("get -o yaml", check_get_yaml),
    ("get -o json", check_get_json),
    ("get -o jsonpath", check_get_jsonpath),
    ("get -o name", check_get_name),
    ("service ClusterIP allocated", check_cluster_ip),
    ("get --show-labels", check_get_show_labels),
    ("get -l / --field-selector", check_get_selector),
    ("re-apply (configured/unchanged)", check_reapply),
    ("apply --server-side", check_apply_server_side),
    ("create namespace", check_create_namespace),
    ("create configmap", check_create_configmap),
    ("create secret generic", check_create_secret),
    ("create service clusterip", check_create_service),
    ("create deployment", check_create_deployment),
    ("describe", check_describe),
    ("label", check_label),
    ("annotate", check_annotate),
    ("patch --type=merge", check_patch_merge),
    ("patch --type=json", check_patch_json),
    ("patch --type=strategic", check_patch_strategic),
    ("edit (KUBE_EDITOR)", check_edit),
    ("scale", check_scale),
    ("get -w (ADDED/MODIFIED/DELETED)", check_watch),
    ("explain deployment.spec", check_explain),
    ("auth whoami", check_auth_whoami),
    ("wrong token refused", check_wrong_token),
    ("unknown CA refused", check_unknown_ca),
    ("invalid manifest", check_invalid_manifest),
    ("delete --cascade=foreground (finalizers)", check_delete_foreground),
    ("delete --cascade=foreground (no dependents)", check_delete_foreground_no_dependents),
    ("delete -f", check_delete_f),
]


def setup_kubeconfigs(ctx, cluster):
    """Writes leader.kubeconfig and follower.kubeconfig (with the CA and the
    admin token beside them) built from the seed's admin.kubeconfig;
    returns {"leader": path, "follower": path}."""
    leader = cluster.leader()
    follower = [m for m in cluster.masters if m is not leader][0]
    seed = cluster.seed
    with open(os.path.join(seed.data, "admin.kubeconfig")) as f:
        text = f.read()
    d = ctx.path("kubeconfigs")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(seed.data, "pki", "ca.crt")) as f:
        ca = f.read()
    with open(os.path.join(d, "ca.crt"), "w") as f:
        f.write(ca)
    with open(os.path.join(d, "admin.token"), "w") as f:
        f.write(seed.token() + "\n")
    out = {}
    for role, m in (("leader", leader), ("follower", follower)):
        path = os.path.join(d, role + ".kubeconfig")
        with open(path, "w") as f:
            f.write(kubeconfig_for(text, m.url))
        os.chmod(path, 0o600)
        out[role] = path
    return out


def namespace_for(version, role):
    return "c%s-%s" % (version.replace(".", ""), role)


def run_matrix(ctx, cluster, only=None, versions=None, roles=("leader", "follower")):
    """Runs every check (or those named in only) for every kubectl and
    role; returns {(check, version, role): None or the error text}."""
    cfgs = setup_kubeconfigs(ctx, cluster)
    results = {}
    for version, binary in KUBECTLS:
        if versions and version not in versions:
            continue
        for role in roles:
            ns = namespace_for(version, role)
            k = Kubectl(ctx, version, binary, cfgs[role], ns, ns)
            for name, fn in CHECKS:
                if only is not None and name not in only:
                    continue
                t = time.monotonic()
                try:
                    fn(k)
                    err = None
                except Exception as ex:  # a failed check is a result here
                    err = "%s: %s" % (type(ex).__name__, ex)
                results[(name, version, role)] = err
                print("%-4s %-4s %-8s %-34s %.1fs" % ("ok" if err is None else "FAIL",
                      version, role, name, time.monotonic() - t), flush=True)
    return results


def print_matrix(results):
    cols = [(v, r) for v, _ in KUBECTLS for r in ("leader", "follower")]
    print("%-34s %s" % ("check", " ".join("%s/%s" % (v, r[0]) for v, r in cols)))
    for name, _ in CHECKS:
        cells = []
        for v, r in cols:
            res = results.get((name, v, r), "-")
            cells.append(("%-6s" % ("-" if res == "-" else "pass" if res is None else "FAIL")))
        print("%-34s %s" % (name, " ".join(cells)))
    for key, err in sorted(results.items()):
        if err:
            print("\n=== %s / kubectl %s / %s\n%s" % (key[0], key[1], key[2], err))


if __name__ == "__main__":
    import sys
    from capstantest import Ctx
    from cluster import Cluster
    ctx = Ctx("compat-matrix", time.monotonic() + 3600)
    try:
        c = Cluster(ctx).start(3)
        leader = c.leader()
        k0 = Kubectl(ctx, "1.32", "/usr/bin/kubectl",
                     os.path.join(c.seed.data, "admin.kubeconfig"), "default", "probe")
        ctx.wait_for("default namespace", lambda: k0.run("get", "ns", "default",
                     check=False).returncode == 0, timeout=30)
        res = run_matrix(ctx, c, versions=sys.argv[1:] or None)
        print_matrix(res)
    finally:
        print("sanitizer findings:", ctx.teardown())
        print("dir:", ctx.dir)
