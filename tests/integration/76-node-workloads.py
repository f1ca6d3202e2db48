"""capstan-node with real runc: workloads across the control plane.

- registry pulls: an image missing from the node's store is pulled from
  Debian's docker-registry on loopback (--registry); a missing repository
  gives ErrImagePull then ImagePullBackOff with the runtime's message;
  imagePullPolicy Never with a missing image gives ErrImageNeverPull; a
  pod in back-off is deleted at once.
- a readiness probe gates the pod's Ready condition AND the Service's
  Endpoints (notReadyAddresses -> addresses -> notReadyAddresses), written
  by the Endpoints controller on the leader.
- SIGKILL of capstan-node while 10 pods run: a restarted agent adopts the
  same 10 containers, starts no duplicate, and the pods stay Ready.
- `capstan local up --nodes 2` starts two real agents with the test image
  imported; a pod runs on each; `capstan local down` stops them and
  removes their containers, sandboxes, mounts and bridges.
- a preStop exec hook runs before SIGTERM.
- a Deployment of 5 replicas on two real nodes (two capstan-node
  processes, separate state dirs) on a three-master cluster: the scheduler
  binds them, they run, and a deleted pod is replaced (back to 5 Running).

Pods send only on loopback and their bridge (the CNI network has no
default route). Skipped without root, runc or the CNI plugins."""

import importlib.util
import json
import os
import signal
import time

import capstantest
from capstantest import test, main, Skip


def _load(name):
    """Another test file as a module, without registering its tests."""
    saved = list(capstantest._tests)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    spec = importlib.util.spec_from_file_location(name.replace("-", "_"), path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    capstantest._tests[:] = saved
    return mod


node75 = _load("75-node")
reg72 = _load("72-registry")
Cluster = node75.Cluster
Node = node75.Node
api, get, pod, create_pod = node75.api, node75.get, node75.pod, node75.create_pod
pod_manifest, running_ready, condition = node75.pod_manifest, node75.running_ready, \
    node75.condition


def image_dir(ctx):
    img = ctx.path("busybox-image")
    if os.path.exists(node75.IMAGE_SCRIPT):
        if not os.path.exists(os.path.join(img, "oci")):
            ctx.run(["sh", node75.IMAGE_SCRIPT, img], timeout=120)
        return os.path.join(img, "oci")
    if not os.path.exists(img):
        node75.build_image(img)
    return img


def start_node(ctx, c, nodes, name, extra=None, image=True):
    n = Node(ctx, c, name)
    nodes.append(n)
    if image:
        n.image_import(image_dir(ctx))
    if extra:
        argv = n.argv() + extra
        n.argv = lambda: argv
    n.start()
    ctx.wait_for("%s Ready" % name, lambda: condition(
        get(c.seed, "/api/v1/nodes/" + name) or {}, "Ready") == "True", timeout=60)
    return n


def waiting(m, name):
    s = ((pod(m, name) or {}).get("status", {}).get("containerStatuses") or [{}])[0]
    return s.get("state", {}).get("waiting", {})


@test(timeout=240)
def registry_pulls(ctx):
    node75.requirements()
    reg72.requirements()
    nodes = []
    try:
        reg = reg72.Registry(ctx, "registry")
        img = reg72.Image(ctx)
        img.push(reg, "busybox")
        c = Cluster(ctx).start(1)
        m = c.seed
        host = "localhost:%d" % reg.port
        pw = ctx.path("registry.password")
        with open(pw, "w") as f:
            f.write("unused\n")
        # The node's store starts empty: every image comes from the registry.
        start_node(ctx, c, nodes, "n1", image=False, extra=[
            "--registry", "%s=%s" % (host, reg.url),
            "--registry", "other.example=https://127.0.0.1:1,username=u,password-file=" + pw])

        # Pulled (default policy Always for :latest), then runs.
        mp = pod_manifest("pulled", "n1", ["sh", "-c", "cat /etc/layer2; sleep 3600"])
        mp["spec"]["containers"][0]["image"] = host + "/busybox:latest"
        create_pod(m, mp)
        ctx.wait_for("pulled Ready", lambda: running_ready(m, "pulled"), timeout=90)
        ctx.wait_for("pulled image's log", lambda: m.request(
            "GET", "/api/v1/namespaces/default/pods/pulled/log").body == b"from layer 2\n",
            timeout=20)
        # IfNotPresent with the image now present: no pull needed.
        mi = pod_manifest("present", "n1", ["sh", "-c", "sleep 3600"])
        mi["spec"]["containers"][0]["image"] = host + "/busybox:docker"
        mi["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
        create_pod(m, mi)
        ctx.wait_for("present Ready", lambda: running_ready(m, "present"), timeout=60)

        # A repository the registry does not have.
        mm = pod_manifest("missing", "n1", ["sh"], grace=30)
        mm["spec"]["containers"][0]["image"] = host + "/nope:latest"
        create_pod(m, mm)
        reasons = {}

        def seen_both():
            w = waiting(m, "missing")
            if w.get("reason"):
                reasons[w["reason"]] = w.get("message", "")
            return "ErrImagePull" in reasons and "ImagePullBackOff" in reasons
        ctx.wait_for("ErrImagePull then ImagePullBackOff", seen_both, timeout=60)
        assert "not found" in reasons["ErrImagePull"], reasons
        assert "nope" in reasons["ImagePullBackOff"], reasons
        ctx.note("ErrImagePull: " + reasons["ErrImagePull"])
        q = pod(m, "missing")
        assert q["status"]["phase"] == "Pending", q["status"]
        assert q["status"]["containerStatuses"][0]["restartCount"] == 0, q["status"]

        # Never + missing.
        mn = pod_manifest("never", "n1", ["sh"])
        mn["spec"]["containers"][0]["image"] = host + "/busybox:absent"
        mn["spec"]["containers"][0]["imagePullPolicy"] = "Never"
        create_pod(m, mn)
        w = ctx.wait_for("ErrImageNeverPull", lambda: (lambda w: w.get(
            "reason") == "ErrImageNeverPull" and w)(waiting(m, "never")), timeout=30)
        assert "pull policy of Never" in w.get("message", ""), w

        # A pod in back-off goes at once (no container to stop).
        t0 = time.monotonic()
        assert api(m, "DELETE", "/api/v1/namespaces/default/pods/missing").status == 200
        ctx.wait_for("missing gone", lambda: api(
            m, "GET", "/api/v1/namespaces/default/pods/missing").status == 404, timeout=20)
        ctx.note("deleting a pod in ImagePullBackOff took %.1fs" % (time.monotonic() - t0))
        assert running_ready(m, "pulled")
    finally:
        for x in nodes:
            x.cleanup()


@test(timeout=240)
def readiness_gates_endpoints(ctx):
    node75.requirements()
    nodes = []
    try:
        c = Cluster(ctx).start(1)
        m = c.seed
        start_node(ctx, c, nodes, "n1")
        r = api(m, "POST", "/api/v1/namespaces/default/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
        assert r.status in (200, 201), r
        # Not ready for 4 s, ready for 8 s, then not ready again.
        mw = pod_manifest("web", "n1", ["sh", "-c", "sleep 4; touch /tmp/ready; sleep 8; "
                                       "rm /tmp/ready; sleep 3600"])
        mw["metadata"]["labels"] = {"app": "web"}
        mw["spec"]["containers"][0]["readinessProbe"] = {
            "exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1}
        create_pod(m, mw)

        def subsets():
            e = get(m, "/api/v1/namespaces/default/endpoints/web") or {}
            ready, not_ready = [], []
            for s in e.get("subsets") or []:
                ready += [a["ip"] for a in s.get("addresses") or []]
                not_ready += [a["ip"] for a in s.get("notReadyAddresses") or []]
            return ready, not_ready

        q = ctx.wait_for("web Running, not Ready", lambda: (lambda q: q and q["status"].get(
            "phase") == "Running" and q["status"].get("podIP") and q)(pod(m, "web")),
            timeout=60)
        ip = q["status"]["podIP"]
        assert condition(q, "Ready") == "False", q["status"]
        ctx.wait_for("endpoint not ready", lambda: subsets() == ([], [ip]), timeout=20)
        ctx.wait_for("web Ready", lambda: running_ready(m, "web"), timeout=30)
        ctx.wait_for("endpoint ready", lambda: subsets() == ([ip], []), timeout=20)
        ctx.wait_for("web not Ready again", lambda: condition(pod(m, "web"), "Ready") == "False",
                     timeout=30)
        ctx.wait_for("endpoint not ready again", lambda: subsets() == ([], [ip]), timeout=20)
        # Not ready is not a restart.
        q = pod(m, "web")
        assert q["status"]["containerStatuses"][0]["restartCount"] == 0, q["status"]
        assert q["status"]["phase"] == "Running", q["status"]
    finally:
        for x in nodes:
            x.cleanup()


@test(timeout=300)
def sigkill_adopts_ten_pods(ctx):
    node75.requirements()
    nodes = []
    try:
        c = Cluster(ctx).start(1)
        m = c.seed
        n = start_node(ctx, c, nodes, "n1")
        names = ["p%d" % i for i in range(10)]
        for name in names:
            create_pod(m, pod_manifest(name, "n1", ["sh", "-c", "sleep 3600"]))
        for name in names:
            ctx.wait_for(name + " Ready", lambda: running_ready(m, name), timeout=90)
        uids = {name: pod(m, name)["metadata"]["uid"] for name in names}
        before = sorted(x["id"] for x in n.containers())
        assert len(before) == 10 and all(x["status"] == "running" for x in n.containers()), \
            n.containers()
        pids = sorted(x["pid"] for x in n.containers())

        n.proc.signal(signal.SIGKILL)
        n.proc.wait(timeout=10)
        # The containers do not depend on the agent.
        assert sorted(x["id"] for x in n.containers()) == before
        n.start()
        # Give the new agent time to adopt and sync every pod.
        ctx.wait_for("adopted 10", lambda: n.proc.log().count("adopted container") >= 10,
                     timeout=60)
        time.sleep(5)
        for name in names:
            q = ctx.wait_for(name + " still Ready", lambda: running_ready(m, name), timeout=30)
            st = q["status"]["containerStatuses"][0]
            assert st["restartCount"] == 0, st
            assert st["containerID"].endswith(uids[name] + "-c-0"), st
        after = n.containers()
        assert sorted(x["id"] for x in after) == before, (before, after)
        assert sorted(x["pid"] for x in after) == pids, "containers were restarted"
        assert all(x["status"] == "running" for x in after), after
        # One shim per container, no more.
        shims = [p for p in os.listdir("/proc") if p.isdigit() and _is_shim(p, n.run)]
        assert len(shims) == 10, shims
    finally:
        for x in nodes:
            x.cleanup()


def _is_shim(pid, run_dir):
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            cmd = f.read().split(b"\0")
    except OSError:
        return False
    return bool(cmd) and cmd[0].endswith(b"capstan-shim") and \
        any(run_dir.encode() in a for a in cmd)


@test(timeout=360)
def deployment_on_two_nodes(ctx):
    node75.requirements()
    nodes = []
    try:
        c = Cluster(ctx).start(3)
        m = c.seed
        for name in ("n1", "n2"):
            start_node(ctx, c, nodes, name)
        r = api(m, "POST", "/apis/apps/v1/namespaces/default/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"terminationGracePeriodSeconds": 2,
                                           "containers": [{
                                               "name": "c", "image": node75.IMAGE,
                                               "command": ["sh", "-c", "sleep 3600"]}]}}}})
        assert r.status in (200, 201), r

        def running():
            lst = get(m, "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb") or {}
            items = [p for p in lst.get("items", [])
                     if not p["metadata"].get("deletionTimestamp")]
            ok = [p for p in items if p["status"].get("phase") == "Running" and
                  condition(p, "Ready") == "True"]
            return items, ok

        ctx.wait_for("5 replicas Running", lambda: len(running()[1]) == 5 and
                     len(running()[0]) == 5, timeout=120)
        items = running()[1]
        on = {p["spec"]["nodeName"] for p in items}
        assert on <= {"n1", "n2"}, on
        ctx.note("replicas per node: %s" % {x: sum(p["spec"]["nodeName"] == x for p in items)
                                            for x in sorted(on)})
        # Each container runs on the node its pod is bound to.
        for n in nodes:
            mine = [p["metadata"]["uid"] for p in items if p["spec"]["nodeName"] == n.name]
            ids = [x["id"] for x in n.containers() if x["status"] == "running"]
            assert sorted(u for u in mine if any(u in i for i in ids)) == sorted(mine), \
                (n.name, mine, ids)
        d = ctx.wait_for("deployment available", lambda: (lambda d: d.get("status", {}).get(
            "availableReplicas") == 5 and d)(get(
                m, "/apis/apps/v1/namespaces/default/deployments/web") or {}), timeout=60)
        assert d["status"]["readyReplicas"] == 5, d["status"]

        victim = items[0]
        vname, vuid, vnode = victim["metadata"]["name"], victim["metadata"]["uid"], \
            victim["spec"]["nodeName"]
        assert api(m, "DELETE", "/api/v1/namespaces/default/pods/" + vname).status == 200
        ctx.wait_for("victim gone", lambda: api(
            m, "GET", "/api/v1/namespaces/default/pods/" + vname).status == 404, timeout=30)
        ctx.wait_for("back to 5 Running", lambda: len(running()[1]) == 5 and
                     len(running()[0]) == 5, timeout=90)
        names = {p["metadata"]["name"] for p in running()[1]}
        assert vname not in names, names
        vn = [n for n in nodes if n.name == vnode][0]
        ctx.wait_for("victim's container removed", lambda: not [
            x for x in vn.containers() if vuid in x["id"]], timeout=30)
        total = sum(len(n.containers()) for n in nodes)
        assert total == 5, [n.containers() for n in nodes]
    finally:
        for x in nodes:
            x.cleanup()


@test(timeout=180)
def prestop_hook_runs_before_sigterm(ctx):
    """An exec preStop hook runs in the container before SIGTERM: it writes
    into a hostPath volume, and the container's SIGTERM trap appends after
    it; the pod is gone within its grace period."""
    node75.requirements()
    nodes = []
    try:
        c = Cluster(ctx).start(1)
        m = c.seed
        start_node(ctx, c, nodes, "n1")
        out = ctx.path("hook-out")
        os.makedirs(out)
        mp = pod_manifest("hooked", "n1", [
            "sh", "-c", "trap 'echo term >> /out/log; exit 0' TERM; "
            "while true; do sleep 0.2; done"], grace=10)
        c0 = mp["spec"]["containers"][0]
        c0["lifecycle"] = {"preStop": {"exec": {"command": [
            "sh", "-c", "echo prestop >> /out/log; sleep 1; echo prestop-done >> /out/log"]}}}
        c0["volumeMounts"] = [{"name": "out", "mountPath": "/out"}]
        mp["spec"]["volumes"] = [{"name": "out", "hostPath": {"path": out}}]
        create_pod(m, mp)
        ctx.wait_for("hooked Ready", lambda: running_ready(m, "hooked"), timeout=60)
        t0 = time.monotonic()
        assert api(m, "DELETE", "/api/v1/namespaces/default/pods/hooked").status == 200
        ctx.wait_for("hooked gone", lambda: api(
            m, "GET", "/api/v1/namespaces/default/pods/hooked").status == 404, timeout=30)
        took = time.monotonic() - t0
        with open(os.path.join(out, "log")) as f:
            lines = f.read().split()
        assert lines == ["prestop", "prestop-done", "term"], lines
        assert took < 10, took
        ctx.note("delete with a 1 s preStop hook took %.1fs" % took)
    finally:
        for x in nodes:
            x.cleanup()


@test(timeout=240)
def local_up_nodes(ctx):
    node75.requirements()
    d = ctx.path("local")
    capstan = capstantest.program("capstan")
    kc = [node75.KUBECTL, "--kubeconfig", os.path.join(d, "kubeconfig")]
    env = {"HOME": ctx.dir}
    try:
        out = ctx.run([capstan, "local", "up", "--dir", d, "--masters", "1", "--nodes", "2"],
                      timeout=180).stdout
        assert "n1: Ready" in out and "n2: Ready" in out, out
        assert "imported localhost/busybox:latest" in out, out
        for i in (1, 2):
            nd = os.path.join(d, "nodes", "n%d" % i)
            for f in ("capstan-node.yaml", "capstan-node.pid", "capstan-node.log"):
                assert os.path.exists(os.path.join(nd, f)), (nd, f)
        cfg1 = open(os.path.join(d, "nodes", "n1", "capstan-node.yaml")).read()
        cfg2 = open(os.path.join(d, "nodes", "n2", "capstan-node.yaml")).read()
        line = lambda cfg, k: [x for x in cfg.splitlines() if x.startswith(k + ":")][0]
        for k in ("listen", "cni-bridge", "pod-cidr", "state-dir", "run-dir"):
            assert line(cfg1, k) != line(cfg2, k), k
        if not node75.have_kubectl():
            raise Skip("kubectl missing: the pods part needs it")
        for i in (1, 2):
            ctx.run(kc + ["run", "p%d" % i, "--image=localhost/busybox:latest",
                          "--overrides", json.dumps({"spec": {"nodeName": "n%d" % i}}),
                          "--", "sh", "-c", "echo hi-n%d; sleep 3600" % i], env=env, timeout=60)
        for i in (1, 2):
            ctx.wait_for("p%d logs" % i, lambda: ctx.run(
                kc + ["logs", "p%d" % i], env=env, timeout=60, check=False).stdout ==
                "hi-n%d\n" % i, timeout=60)
        runs = [os.path.join(d, "nodes", "n%d" % i, "run") for i in (1, 2)]
        bridges = [line(c, "cni-bridge").split()[1] for c in (cfg1, cfg2)]
        out = ctx.run([capstan, "local", "down", "--dir", d], timeout=120).stdout
        assert "n1: containers, sandboxes and mounts removed" in out, out
        for run, br in zip(runs, bridges):
            r = ctx.run(["runc", "--root", os.path.join(run, "runc"), "list", "-q"],
                        check=False, timeout=30)
            assert r.stdout.strip() == "", r.stdout
            assert not os.path.exists("/sys/class/net/" + br), br
        with open("/proc/self/mounts") as f:
            left = [x for x in f.read().splitlines() if (" " + d + "/") in x]
        assert left == [], left
        assert not any(_is_shim(p, d) for p in os.listdir("/proc") if p.isdigit())
        ctx.run([capstan, "local", "down", "--dir", d, "--purge"], timeout=60)
        assert not os.path.exists(os.path.join(d, "nodes"))
    finally:
        # Whatever the outcome: nothing of the local cluster keeps running.
        ctx.run([capstan, "local", "down", "--dir", d], timeout=120, check=False)


if __name__ == "__main__":
    main()
