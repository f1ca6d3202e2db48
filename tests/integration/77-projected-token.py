"""capstan-node with real runc: projected service-account token volumes.

A pod mounts, at /var/run/secrets/kubernetes.io/serviceaccount, a
projected volume of a serviceAccountToken (bound to the pod), the
kube-root-ca.crt ConfigMap's ca.crt and the downward API namespace, as the
ServiceAccount admission would add it:
- the container reads a token that the API server takes as
  system:serviceaccount:default:default (SelfSubjectReview), bound to this
  pod (its claims name the pod and its uid), the cluster CA and "default";
- the volume is written the kubelet's way (..data link to a versioned
  directory, the names links into ..data);
- the agent refreshes the token (the test shortens the refresh with
  CAPSTAN_NODE_TOKEN_REFRESH_MS): the container sees a new token through
  the swapped ..data link, and the new token is valid too;
- deleting the pod makes its tokens invalid (401);
- a pod whose ServiceAccount does not exist waits (FailedMount event from
  the node) and starts once the account is created.

Pods send only on loopback and their bridge. Skipped without root, runc or
the CNI plugins."""

import base64
import importlib.util
import json
import os
import urllib.error
import urllib.request

import capstantest
from capstantest import test, main

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


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
api, get, pod, create_pod = node75.api, node75.get, node75.pod, node75.create_pod
pod_manifest, running_ready, condition = node75.pod_manifest, node75.running_ready, \
    node75.condition


def whoami(m, token):
    """(HTTP status, username) of a SelfSubjectReview made with @token."""
    body = json.dumps({"apiVersion": "authentication.k8s.io/v1",
                       "kind": "SelfSubjectReview"}).encode()
    req = urllib.request.Request(
        "http://127.0.0.1:%d/apis/authentication.k8s.io/v1/selfsubjectreviews" % m.plain_port,
        data=body, method="POST",
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())["status"]["userInfo"]["username"]
    except urllib.error.HTTPError as e:
        return e.code, None


def claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def sa_pod(name, node, sa=None):
    m = pod_manifest(name, node, [
        "sh", "-c",
        "D=%s; echo NS=$(cat $D/namespace); cat $D/ca.crt; "
        "while true; do echo T=$(cat $D/token); sleep 1; done" % SA_DIR], grace=2)
    m["spec"]["volumes"] = [{"name": "kube-api-access", "projected": {
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
            {"configMap": {"name": "kube-root-ca.crt",
                           "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}]
    m["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "kube-api-access", "mountPath": SA_DIR, "readOnly": True}]
    if sa:
        m["spec"]["serviceAccountName"] = sa
    return m


def log_of(m, name):
    r = m.request("GET", "/api/v1/namespaces/default/pods/%s/log" % name)
    return r.body.decode() if r.status == 200 else ""


def tokens_in(text):
    seen = []
    for line in text.splitlines():
        if line.startswith("T=") and len(line) > 2 and line[2:] not in seen:
            seen.append(line[2:])
    return seen


@test(timeout=300)
def projected_token(ctx):
    nodes = []
    try:
        c, n = node75.setup(ctx, nodes)
        m = c.seed
        # Each token is refreshed 4 s after it arrived (instead of 80% of
        # its hour), to see a refresh within the test.
        n.proc = ctx.spawn("node-n1", n.argv(), env={"CAPSTAN_NODE_TOKEN_REFRESH_MS": "4000"})
        ctx.wait_for("node Ready", lambda: condition(
            get(m, "/api/v1/nodes/n1") or {}, "Ready") == "True", timeout=60)
        ctx.wait_for("ServiceAccount default", lambda: get(
            m, "/api/v1/namespaces/default/serviceaccounts/default"), timeout=30)
        cm = ctx.wait_for("kube-root-ca.crt", lambda: get(
            m, "/api/v1/namespaces/default/configmaps/kube-root-ca.crt"), timeout=30)
        with open(os.path.join(m.data, "pki", "ca.crt")) as f:
            ca = f.read()
        assert cm["data"]["ca.crt"] == ca, cm

        create_pod(m, sa_pod("sa", "n1"))
        p = ctx.wait_for("pod sa Ready", lambda: running_ready(m, "sa"), timeout=90)
        uid = p["metadata"]["uid"]
        out = ctx.wait_for("the token in the log", lambda: tokens_in(log_of(m, "sa")) and
                           log_of(m, "sa"), timeout=20)
        assert out.startswith("NS=default\n" + ca), out
        first = tokens_in(out)[0]
        st, user = whoami(m, first)
        assert (st, user) == (201, "system:serviceaccount:default:default"), (st, user)
        cl = claims(first)
        k8s = cl["kubernetes.io"]
        assert k8s["pod"] == {"name": "sa", "uid": uid}, cl
        assert k8s["namespace"] == "default" and k8s["serviceaccount"]["name"] == "default", cl
        assert 3000 <= cl["exp"] - cl["iat"] <= 3600, cl

        # The kubelet's layout on the node.
        vol = os.path.join(n.state, "pods", uid, "volumes", "kube-api-access")
        data1 = os.readlink(os.path.join(vol, "..data"))
        assert data1.startswith("..") and os.path.isdir(os.path.join(vol, data1)), data1
        for name in ("token", "ca.crt", "namespace"):
            assert os.readlink(os.path.join(vol, name)) == "..data/" + name, name
        with open(os.path.join(vol, "token")) as f:
            assert f.read() == first
        assert oct(os.stat(os.path.join(vol, "token")).st_mode & 0o777) == "0o644"

        # Refreshed: the container sees another token, valid as well.
        toks = ctx.wait_for("a refreshed token in the container",
                            lambda: len(tokens_in(log_of(m, "sa"))) >= 2 and
                            tokens_in(log_of(m, "sa")), timeout=30)
        second = toks[-1]
        assert second != first
        assert whoami(m, second) == (201, "system:serviceaccount:default:default")
        assert claims(second)["kubernetes.io"]["pod"]["uid"] == uid
        assert os.readlink(os.path.join(vol, "..data")) != data1
        assert not os.path.exists(os.path.join(vol, data1)), os.listdir(vol)
        # The container never read a partial token: every line is a whole
        # JWT that the server accepted, or the first one.
        for t in tokens_in(log_of(m, "sa")):
            assert t.count(".") == 2 and claims(t)["kubernetes.io"]["pod"]["uid"] == uid, t
        # Still the same container: a refresh does not restart the pod.
        q = pod(m, "sa")
        assert q["status"]["containerStatuses"][0]["restartCount"] == 0, q["status"]

        # Bound to the pod: once it is gone, its tokens are refused.
        r = api(m, "DELETE", "/api/v1/namespaces/default/pods/sa")
        assert r.status == 200, r
        ctx.wait_for("pod sa gone", lambda: api(
            m, "GET", "/api/v1/namespaces/default/pods/sa").status == 404, timeout=60)
        assert whoami(m, first)[0] == 401
        assert whoami(m, second)[0] == 401
        ctx.wait_for("the pod's volume removed", lambda: not os.path.exists(vol), timeout=20)

        # An account that does not exist yet: no token, a FailedMount
        # event, the pod waits; it starts once the account is there.
        create_pod(m, sa_pod("late", "n1", sa="builder"))

        def failed_mount():
            evs = get(m, "/api/v1/namespaces/default/events") or {}
            return [e for e in evs.get("items", [])
                    if e["involvedObject"].get("name") == "late" and
                    e["reason"] == "FailedMount"]
        evs = ctx.wait_for("FailedMount event", failed_mount, timeout=30)
        assert evs[0]["type"] == "Warning" and "token" in evs[0]["message"], evs
        q = pod(m, "late")
        assert q["status"].get("phase", "Pending") == "Pending", q["status"]
        r = api(m, "POST", "/api/v1/namespaces/default/serviceaccounts", {
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder"}})
        assert r.status in (200, 201), r
        ctx.wait_for("pod late Ready", lambda: running_ready(m, "late"), timeout=60)
        tok = ctx.wait_for("late's token", lambda: tokens_in(log_of(m, "late")), timeout=20)[0]
        assert whoami(m, tok) == (201, "system:serviceaccount:default:builder")
    finally:
        for x in nodes:
            x.cleanup()


if __name__ == "__main__":
    main()
