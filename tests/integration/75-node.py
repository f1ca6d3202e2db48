"""capstan-node with real runc on a one-master cluster: the node joins with
a bootstrap token, registers and becomes Ready, renews its Lease; a pod
runs and becomes Ready and its log holds its output; a crashing
container backs off with a growing restartCount; deleting a pod stops it
within its grace period; after SIGKILL of the agent, a restarted agent
adopts the same containers without duplicates.

Skipped without root, runc, or the test image script. Pods are bound by
spec.nodeName (no scheduler needed)."""

import gzip
import hashlib
import http.client
import io
import json
import os
import random
import shutil
import signal
import ssl
import subprocess
import tarfile
import time

import capstantest
from capstantest import test, main, program, free_port, Skip, have_kubectl, KUBECTL
from cluster import Cluster

IMAGE = "localhost/busybox:latest"
SRCDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE_SCRIPT = os.path.join(SRCDIR, "tests", "image", "build-busybox-image.sh")


def requirements():
    if os.geteuid() != 0:
        raise Skip("needs root")
    if shutil.which("runc") is None:
        raise Skip("runc is not installed")
    capstantest.require_containers()
    if not os.path.exists(IMAGE_SCRIPT) and not os.path.exists("/bin/busybox"):
        raise Skip("no test image script and no /bin/busybox")
    if not os.path.exists("/usr/lib/cni/bridge"):
        raise Skip("CNI plugins are not installed")


class Node:
    def __init__(self, ctx, cluster, name):
        self.ctx = ctx
        self.cluster = cluster
        self.name = name
        self.state = ctx.path("node-" + name)
        self.run = ctx.path("run-" + name)
        self.port = free_port()
        n = random.randint(1, 250)
        self.bridge = "cpt%d%d" % (n, random.randint(0, 999))
        self.cidr = "10.%d.%d.0/24" % (200 + random.randint(0, 50), n)
        self.proc = None
        m = cluster.seed
        self.token = capstan(ctx, m, "token", "create").stdout.strip()
        os.makedirs(self.state, exist_ok=True)

    def argv(self):
        m = self.cluster.seed
        return [program("capstan-node"), "--server", m.url, "--token", self.token,
                "--ca-file", os.path.join(m.data, "pki", "ca.crt"),
                "--state-dir", self.state, "--run-dir", self.run,
                "--node-name", self.name, "--node-ip", "127.0.0.1",
                "--listen", "127.0.0.1:%d" % self.port,
                "--pod-cidr", self.cidr, "--cni-bridge", self.bridge,
                "--backoff-base", "1s", "--backoff-max", "8s",
                "--status-interval", "2s", "--lease-renew-interval", "1s",
                "--node-labels", "capstan.test/role=worker"]

    def start(self):
        self.proc = self.ctx.spawn("node-" + self.name, self.argv())

    def image_import(self, path):
        self.ctx.run([program("capstan-node"), "--state-dir", self.state, "--run-dir", self.run,
                      "image", "import", path, IMAGE], timeout=120)

    def runc(self, *args):
        return subprocess.run(["runc", "--root", os.path.join(self.run, "runc")] + list(args),
                              capture_output=True, text=True, timeout=30)

    def containers(self):
        r = self.runc("list", "--format", "json")
        if r.returncode != 0 or not r.stdout.strip() or r.stdout.strip() == "null":
            return []
        return json.loads(r.stdout)

    def cleanup(self):
        """Removes what the agent leaves behind on purpose (containers keep
        running when it stops): containers, mounts, the bridge."""
        if self.proc is not None:
            self.proc.signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        # A start in flight may still create a container: repeat.
        for _ in range(3):
            for c in self.containers():
                self.runc("delete", "--force", c["id"])
            time.sleep(0.5)
        # Shims (and what they still hold) of this node's containers.
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    cmd = f.read().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"capstan-shim") and \
                    any(self.run.encode() in a for a in cmd):
                for child in children(int(pid)) + [int(pid)]:
                    try:
                        os.kill(child, signal.SIGKILL)
                    except OSError:
                        pass
        with open("/proc/self/mounts") as f:
            mounts = [l.split()[1] for l in f]
        for mp in sorted(mounts, key=len, reverse=True):
            mp = mp.replace("\\040", " ")
            if mp.startswith(self.ctx.dir):
                subprocess.run(["umount", "-l", mp], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


def children(ppid):
    """PIDs whose parent is @ppid."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == ppid:
            out.append(int(pid))
    return out


def node_get(n, m, path, cert=True):
    if cert:
        c_ = m.https_context()
    else:
        c_ = ssl.create_default_context(cafile=os.path.join(m.data, "pki", "ca.crt"))
    conn = http.client.HTTPSConnection("127.0.0.1", n.port, context=c_, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def capstan(ctx, master, *args, check=True):
    argv = [program("capstan"), "--kubeconfig", os.path.join(master.data, "admin.kubeconfig")]
    return ctx.run(argv + list(args), check=check, timeout=60, env={"HOME": ctx.dir})


def api(m, method, path, body=None):
    r = m.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Content-Type": "application/json"})
    return r


def get(m, path):
    r = api(m, "GET", path)
    return r.json() if r.status == 200 else None


def pod_manifest(name, node, command, restart="Always", grace=5):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "restartPolicy": restart,
                     "terminationGracePeriodSeconds": grace,
                     "containers": [{"name": "c", "image": IMAGE, "command": command}]}}


def create_pod(m, manifest):
    r = api(m, "POST", "/api/v1/namespaces/default/pods", manifest)
    assert r.status in (200, 201), r
    return r.json()


def pod(m, name):
    return get(m, "/api/v1/namespaces/default/pods/" + name)


def condition(obj, type_):
    for c in obj.get("status", {}).get("conditions", []) or []:
        if c["type"] == type_:
            return c["status"]
    return None


def running_ready(m, name):
    p = pod(m, name)
    return p is not None and p["status"].get("phase") == "Running" and \
        condition(p, "Ready") == "True" and p


def build_image(out):
    """A one-layer OCI layout of busybox (when the runtime's script is
    absent)."""
    blobs = os.path.join(out, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def blob(data):
        d = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, d), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + d, "size": len(data)}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for d in ("bin", "etc", "tmp", "proc", "sys", "dev"):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            t.addfile(ti)
        t.add("/bin/busybox", "bin/busybox")
        for n in ("sh", "sleep", "echo", "cat", "ls", "true", "false", "hostname", "touch",
                  "httpd", "mkdir"):
            ti = tarfile.TarInfo("bin/" + n)
            ti.type, ti.linkname = tarfile.SYMTYPE, "busybox"
            t.addfile(ti)
    raw = buf.getvalue()
    layer = blob(gzip.compress(raw))
    layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
    cfg = blob(json.dumps({"architecture": "amd64", "os": "linux",
                           "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
                           "rootfs": {"type": "layers", "diff_ids": [
                               "sha256:" + hashlib.sha256(raw).hexdigest()]}}).encode())
    cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
    man = blob(json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": cfg, "layers": [layer]}).encode())
    man["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [man]}, f)
    with open(os.path.join(out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


def setup(ctx, nodes):
    """A one-master cluster and a node n1 (appended to @nodes at once, so
    that the caller cleans it up whatever happens) with the image."""
    requirements()
    c = Cluster(ctx).start(1)
    img = ctx.path("busybox-image")
    if os.path.exists(IMAGE_SCRIPT):
        ctx.run(["sh", IMAGE_SCRIPT, img], timeout=120)
        img = os.path.join(img, "oci")
    else:
        build_image(img)
    n = Node(ctx, c, "n1")
    nodes.append(n)
    n.image_import(img)
    return c, n


@test(timeout=300)
def node_runs_pods(ctx):
    nodes = []
    try:
        c, n = setup(ctx, nodes)
        m = c.seed
        n.start()

        # Registration, Ready, labels, capacity, lease renewal.
        node = ctx.wait_for("node Ready", lambda: condition(
            get(m, "/api/v1/nodes/n1") or {}, "Ready") == "True" and
            get(m, "/api/v1/nodes/n1"), timeout=60)
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == "n1", labels
        assert labels["kubernetes.io/os"] == "linux", labels
        assert labels["capstan.test/role"] == "worker", labels
        assert int(node["status"]["capacity"]["cpu"]) >= 1, node["status"]
        assert node["status"]["capacity"]["pods"] == "110", node["status"]
        types = {x["type"] for x in node["status"]["conditions"]}
        assert types >= {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}, types
        assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
        lease_path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1"
        l1 = ctx.wait_for("lease", lambda: get(m, lease_path), timeout=30)
        assert l1["spec"]["holderIdentity"] == "n1", l1
        ctx.wait_for("lease renewed", lambda: get(m, lease_path)["spec"]["renewTime"] !=
                     l1["spec"]["renewTime"], timeout=30)
        # The node certificate sits in the state directory; with it the
        # node reads the masters' URLs but gets no certificate for another
        # node; without credentials nothing.
        with open(os.path.join(n.state, "pki", "node.crt")) as f:
            node_crt = f.read()
        nctx = ssl.create_default_context(cafile=os.path.join(m.data, "pki", "ca.crt"))
        nctx.load_cert_chain(os.path.join(n.state, "pki", "node.crt"),
                             os.path.join(n.state, "pki", "node.key"))

        def as_node(method, path, body=None):
            conn = http.client.HTTPSConnection("127.0.0.1", m.https_port, context=nctx,
                                               timeout=10)
            try:
                conn.request(method, path, body=body)
                r = conn.getresponse()
                return r.status, r.read()
            finally:
                conn.close()
        st_, body = as_node("GET", "/capstan/v1/nodes/apiservers")
        assert st_ == 200 and json.loads(body)["urls"] == [m.url], body
        req = json.dumps({"nodeName": "n2", "csr": "x"})
        st_, body = as_node("POST", "/capstan/v1/nodes/certificate", req)
        assert st_ == 403, (st_, body)
        r = m.https_request("POST", "/capstan/v1/nodes/certificate", body=req, cert=False)
        assert r.status == 401, r
        st_, body = as_node("GET", "/capstan/v1/cluster")
        assert st_ == 403, (st_, body)
        ctx.wait_for("masters saved", lambda: open(os.path.join(n.state, "masters")).read()
                     == m.url + "\n", timeout=10)

        # A pod that prints and sleeps.
        create_pod(m, pod_manifest("hello", "n1", ["sh", "-c", "echo hello; sleep 3600"]))
        p = ctx.wait_for("pod hello Running and Ready", lambda: running_ready(m, "hello"),
                         timeout=90)
        st = p["status"]["containerStatuses"][0]
        assert st["ready"] and "running" in st["state"], st
        assert p["status"].get("podIP"), p["status"]
        uid = p["metadata"]["uid"]
        logf = os.path.join(n.state, "logs", "default_hello_" + uid, "c", "0.log")
        ctx.wait_for("hello in the log", lambda: "hello" in open(logf).read(), timeout=20)

        # The node's logs endpoint, for masters only.
        st_, body = node_get(n, m, "/containerLogs/default/hello/c")
        assert st_ == 200 and body == "hello\n", (st_, body)
        st_, body = node_get(n, m, "/containerLogs/default/hello/c?timestamps=true")
        assert st_ == 200 and body.endswith(" hello\n") and body[:4].isdigit(), body
        st_, body = node_get(n, m, "/containerLogs/default/nope/c")
        assert st_ == 404, (st_, body)
        # Through the API server (what kubectl logs asks).
        r = m.request("GET", "/api/v1/namespaces/default/pods/hello/log")
        assert r.status == 200 and r.body == b"hello\n", r
        r = m.request("GET", "/api/v1/namespaces/default/pods/hello/log?container=c&tailLines=1")
        assert r.status == 200 and r.body == b"hello\n", r
        if have_kubectl():
            kc = [KUBECTL, "--kubeconfig", os.path.join(m.data, "admin.kubeconfig")]
            out = ctx.run(kc + ["logs", "hello"], env={"HOME": ctx.dir}, timeout=60).stdout
            assert out == "hello\n", out
            # kubectl exec (WebSocket v5.channel.k8s.io through the API server).
            out = ctx.run(kc + ["exec", "hello", "--", "cat", "/etc/hostname"],
                          env={"HOME": ctx.dir}, timeout=60).stdout
            assert out == "hello\n", out
            r = ctx.run(kc + ["exec", "hello", "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
                        env={"HOME": ctx.dir}, timeout=60, check=False)
            assert r.returncode == 3 and r.stdout == "out\n" and "err" in r.stderr, r
        try:
            node_get(n, m, "/containerLogs/default/hello/c", cert=False)
            raise AssertionError("a client without a certificate was served")
        except (ssl.SSLError, ConnectionError, http.client.HTTPException):
            pass

        # A ConfigMap and a Secret, as files and as environment variables;
        # the pod name, namespace and IP from fieldRefs; /etc/hostname.
        r = api(m, "POST", "/api/v1/namespaces/default/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
            "data": {"greeting": "hi-from-cm"}})
        assert r.status in (200, 201), r
        r = api(m, "POST", "/api/v1/namespaces/default/secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
            "data": {"password": "czNjcjN0"}})  # s3cr3t
        assert r.status in (200, 201), r
        m4 = pod_manifest("env", "n1", ["sh", "-c",
                                       "echo G=$G P=$P N=$N NS=$NS IP=$IP; "
                                       "cat /etc/cfg/greeting; echo; cat /etc/sec/password; "
                                       "echo; cat /etc/hostname; sleep 3600"])
        c4 = m4["spec"]["containers"][0]
        c4["env"] = [
            {"name": "G", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
            {"name": "P", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
            {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
        c4["volumeMounts"] = [{"name": "c", "mountPath": "/etc/cfg"},
                              {"name": "s", "mountPath": "/etc/sec", "readOnly": True}]
        m4["spec"]["volumes"] = [{"name": "c", "configMap": {"name": "cfg"}},
                                 {"name": "s", "secret": {"secretName": "sec"}}]
        create_pod(m, m4)
        q = ctx.wait_for("env pod Ready", lambda: running_ready(m, "env"), timeout=60)
        want = "G=hi-from-cm P=s3cr3t N=env NS=default IP=%s\nhi-from-cm\ns3cr3t\nenv\n" % (
            q["status"]["podIP"])
        ctx.wait_for("env pod output", lambda: m.request(
            "GET", "/api/v1/namespaces/default/pods/env/log").body.decode() == want, timeout=20)

        # A crashing container backs off.
        create_pod(m, pod_manifest("crash", "n1", ["sh", "-c", "echo crash; exit 3"]))
        seen = set()

        def crashed_enough():
            q = pod(m, "crash")
            s = ((q or {}).get("status", {}).get("containerStatuses") or [{}])[0]
            w = s.get("state", {}).get("waiting", {})
            if w.get("reason"):
                seen.add(w["reason"])
            return s.get("restartCount", 0) >= 3 and s
        s = ctx.wait_for("restartCount >= 3", crashed_enough, timeout=90)
        assert s["lastState"]["terminated"]["exitCode"] == 3, s
        assert "CrashLoopBackOff" in seen, seen
        # Only the current and the previous run's logs are kept.
        cuid = pod(m, "crash")["metadata"]["uid"]
        ldir = os.path.join(n.state, "logs", "default_crash_" + cuid, "c")
        assert len(os.listdir(ldir)) <= 2, os.listdir(ldir)
        r = m.request("GET", "/api/v1/namespaces/default/pods/crash/log?previous=true")
        assert r.status == 200 and r.body == b"crash\n", r

        # kubectl logs -f: the API server streams what the node follows.
        create_pod(m, pod_manifest("ticker", "n1", [
            "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"]))
        ctx.wait_for("ticker Ready", lambda: running_ready(m, "ticker"), timeout=60)
        conn = http.client.HTTPConnection("127.0.0.1", m.plain_port, timeout=20)
        conn.request("GET", "/api/v1/namespaces/default/pods/ticker/log?follow=true",
                     headers={"Authorization": "Bearer " + c.admin_token()})
        resp = conn.getresponse()
        assert resp.status == 200, resp.status
        got = b""
        end = time.monotonic() + 20
        while b"tick 4\n" not in got and time.monotonic() < end:
            got += resp.read1(4096)
        conn.close()
        assert b"tick 0\ntick 1\n" in got and b"tick 4\n" in got, got

        # Probes: readiness (exec) gates Ready; a failing liveness probe
        # (tcpSocket on a closed port) restarts the container; httpGet
        # readiness against busybox httpd.
        m1 = pod_manifest("probed", "n1", ["sh", "-c", "sleep 3; touch /tmp/ready; sleep 3600"])
        m1["spec"]["containers"][0]["readinessProbe"] = {
            "exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1}
        create_pod(m, m1)
        m2 = pod_manifest("live", "n1", ["sh", "-c", "sleep 3600"])
        m2["spec"]["containers"][0]["livenessProbe"] = {
            "tcpSocket": {"port": 8081}, "periodSeconds": 1, "failureThreshold": 2}
        create_pod(m, m2)
        m3 = pod_manifest("web", "n1", ["sh", "-c",
                                       "mkdir -p /www; echo ok > /www/index.html; "
                                       "httpd -f -p 8080 -h /www"])
        m3["spec"]["containers"][0]["ports"] = [{"name": "http", "containerPort": 8080}]
        m3["spec"]["containers"][0]["readinessProbe"] = {
            "httpGet": {"path": "/index.html", "port": "http"}, "periodSeconds": 1}
        create_pod(m, m3)
        q = ctx.wait_for("probed Running", lambda: (pod(m, "probed") or {}).get(
            "status", {}).get("phase") == "Running" and pod(m, "probed"), timeout=60)
        assert condition(q, "Ready") == "False", q["status"]
        ctx.wait_for("probed Ready", lambda: running_ready(m, "probed"), timeout=30)
        ctx.wait_for("web Ready (httpGet)", lambda: running_ready(m, "web"), timeout=60)
        ctx.wait_for("live restarted by its liveness probe", lambda: (pod(m, "live")[
            "status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1,
            timeout=60)

        # SIGKILL the agent; a new one adopts the running container.
        ids_before = sorted(x["id"] for x in n.containers() if x["status"] == "running"
                            and uid in x["id"])
        assert len(ids_before) == 1, n.containers()
        n.proc.signal(signal.SIGKILL)
        n.proc.wait(timeout=10)
        # A pod deleted (forced) while the agent is down is cleaned up when
        # it comes back.
        puid = pod(m, "probed")["metadata"]["uid"]
        assert [x for x in n.containers() if puid in x["id"]], n.containers()
        r = api(m, "DELETE", "/api/v1/namespaces/default/pods/probed?gracePeriodSeconds=0")
        assert r.status == 200, r
        assert api(m, "GET", "/api/v1/namespaces/default/pods/probed").status == 404
        time.sleep(1)
        n.start()
        ctx.wait_for("the deleted pod's container removed",
                     lambda: not [x for x in n.containers() if puid in x["id"]], timeout=30)
        ctx.wait_for("its sandbox removed", lambda: not os.path.exists(
            os.path.join(n.run, "netns", puid)), timeout=30)
        time.sleep(5)
        p2 = ctx.wait_for("hello still Ready", lambda: running_ready(m, "hello"), timeout=30)
        with open(os.path.join(n.state, "pki", "node.crt")) as f:
            assert f.read() == node_crt, "the certificate was not reused"
        assert p2["status"]["containerStatuses"][0]["restartCount"] == 0, p2["status"]
        ids_after = sorted(x["id"] for x in n.containers() if uid in x["id"])
        assert ids_after == ids_before, (ids_before, ids_after)

        # Deleting a pod stops it within its grace period (5 s).
        t0 = time.monotonic()
        r = api(m, "DELETE", "/api/v1/namespaces/default/pods/hello")
        assert r.status == 200, r
        ctx.wait_for("hello gone", lambda: api(m, "GET",
                     "/api/v1/namespaces/default/pods/hello").status == 404, timeout=30)
        took = time.monotonic() - t0
        assert took < 5 + 5, took
        ctx.wait_for("container removed",
                     lambda: not [x for x in n.containers() if uid in x["id"]], timeout=20)
        ctx.note("delete of a pod (sh ignores SIGTERM) took %.1fs" % took)

        # SIGTERM: the agent stops at once and cleanly; containers stay.
        # Only pods that do not restart by design are compared: the
        # crash-looping and liveness-failing ones get new containers at any
        # moment, agent or not.
        stable = [pod(m, name)["metadata"]["uid"] for name in ("web",)
                  if pod(m, name)]

        def stable_running():
            return sorted(x["id"] for x in n.containers() if x["status"] == "running"
                          and any(u in x["id"] for u in stable))
        running = ctx.wait_for("web's container running", stable_running, timeout=30)
        n.proc.signal(signal.SIGTERM)
        assert n.proc.wait(timeout=15) == 0
        assert "stopped" in n.proc.log().splitlines()[-1], n.proc.log()[-500:]
        assert running and stable_running() == running, (running, stable_running())
    finally:
        for x in nodes:
            x.cleanup()


@test(timeout=240)
def two_nodes_survive_master_loss(ctx):
    """Two agents side by side (own state dirs, bridges, subnets) on a
    three-master cluster: each learns every master from the one it was
    given; when that master dies, Leases keep renewing through the
    others and new pods still start."""
    requirements()
    nodes = []
    try:
        c = Cluster(ctx).start(3)
        m1, m2 = c.masters[0], c.masters[1]
        img = ctx.path("busybox-image")
        if os.path.exists(IMAGE_SCRIPT):
            ctx.run(["sh", IMAGE_SCRIPT, img], timeout=120)
            img = os.path.join(img, "oci")
        else:
            build_image(img)
        for name in ("n1", "n2"):
            n = Node(ctx, c, name)
            nodes.append(n)
            n.image_import(img)
            n.start()
        for n in nodes:
            ctx.wait_for("%s Ready" % n.name, lambda: condition(
                get(m2, "/api/v1/nodes/" + n.name) or {}, "Ready") == "True", timeout=60)
            ctx.wait_for("%s knows 3 masters" % n.name, lambda: len(open(os.path.join(
                n.state, "masters")).read().split()) == 3, timeout=60)
        for i, n in enumerate(nodes):
            create_pod(m2, pod_manifest("p%d" % i, n.name, ["sh", "-c", "sleep 3600"]))
        for i in range(2):
            ctx.wait_for("p%d Ready" % i, lambda: running_ready(m2, "p%d" % i), timeout=60)
        ips = {pod(m2, "p%d" % i)["status"]["podIP"] for i in range(2)}
        assert len(ips) == 2, ips

        m1.kill()
        lease = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/"
        for n in nodes:
            t0 = get(m2, lease + n.name)["spec"]["renewTime"]
            ctx.wait_for("%s lease renewed without m1" % n.name, lambda: get(
                m2, lease + n.name)["spec"]["renewTime"] != t0, timeout=40)
        create_pod(m2, pod_manifest("late", "n1", ["sh", "-c", "sleep 3600"]))
        ctx.wait_for("a pod started after m1's loss", lambda: running_ready(m2, "late"),
                     timeout=60)
    finally:
        for x in nodes:
            x.cleanup()


if __name__ == "__main__":
    main()
