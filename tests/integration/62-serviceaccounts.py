"""Service accounts against a one-master cluster: the signing key appears
in the store; TokenRequest issues a bound token that authenticates as the
account (https, no client certificate) and stops working when the account
goes; tampered, foreign-audience and unknown tokens get 401; SelfSubjectReview
(`kubectl auth whoami`) tells who the caller is; the controllers make the
default account of a new namespace, fill a token Secret whose token works
until the Secret is deleted, and publish Endpoints and EndpointSlices of
a Service."""

import base64
import json
import os
import time

from capstantest import test, main, have_kubectl
from cluster import Cluster

KEY = "/capstan/serviceaccount/signing-key"


def post(m, path, obj):
    return m.request("POST", path, body=json.dumps(obj),
                     headers={"Content-Type": "application/json"})


def get(m, path):
    return m.request("GET", path)


def bearer(m, method, path, token, body=None):
    h = {"Authorization": "Bearer " + token}
    if body is not None:
        h["Content-Type"] = "application/json"
        body = json.dumps(body)
    return m.https_request(method, path, body=body, headers=h, cert=False)


def whoami(m, token):
    r = bearer(m, "POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", token,
               {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    return r


def tamper(token):
    head, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "system:serviceaccount:kube-system:admin"
    evil = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return ".".join([head, evil, sig])


def kubectl(ctx, m, *args, token=None, check=True):
    argv = ["kubectl"]
    if token is None:
        argv += ["--kubeconfig", os.path.join(m.data, "admin.kubeconfig")]
    else:
        argv += ["--server", m.url, "--certificate-authority",
                 os.path.join(m.data, "pki", "ca.crt"), "--token", token]
    return ctx.run(argv + list(args), check=check, timeout=60, env={"HOME": ctx.dir})


def start(ctx):
    c = Cluster(ctx).start(1)
    m = c.seed
    ctx.wait_for("the signing key", lambda: m.get(KEY).status == 200, timeout=30)
    return m


@test(timeout=120)
def token_request_and_whoami(ctx):
    m = start(ctx)
    r = post(m, "/api/v1/namespaces/default/serviceaccounts",
             {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder"}})
    assert r.status == 201, r
    uid = r.json()["metadata"]["uid"]

    r = post(m, "/api/v1/namespaces/default/serviceaccounts/builder/token",
             {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
              "spec": {"expirationSeconds": 3600}})
    assert r.status == 201, r
    tr = r.json()
    assert tr["kind"] == "TokenRequest", tr
    token = tr["status"]["token"]
    assert tr["status"]["expirationTimestamp"], tr

    # The token authenticates on https without a client certificate.
    r = bearer(m, "GET", "/api/v1/namespaces/default/serviceaccounts", token)
    assert r.status == 200, r
    r = whoami(m, token)
    assert r.status == 201, r
    info = r.json()["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:default:builder", info
    assert info["uid"] == uid, info
    for g in ("system:serviceaccounts", "system:serviceaccounts:default",
              "system:authenticated"):
        assert g in info["groups"], info

    # Tampered, foreign-audience and garbage tokens: 401.
    r = bearer(m, "GET", "/api/v1/namespaces", tamper(token))
    assert r.status == 401, r
    r = post(m, "/api/v1/namespaces/default/serviceaccounts/builder/token",
             {"spec": {"audiences": ["https://vault.example"]}})
    assert r.status == 201, r
    r = bearer(m, "GET", "/api/v1/namespaces", r.json()["status"]["token"])
    assert r.status == 401, r
    r = bearer(m, "GET", "/api/v1/namespaces", "eyJhbGciOiJub25lIn0.e30.")
    assert r.status == 401, r
    # Too short a lifetime; an unknown account.
    r = post(m, "/api/v1/namespaces/default/serviceaccounts/builder/token",
             {"spec": {"expirationSeconds": 60}})
    assert r.status == 422, r
    r = post(m, "/api/v1/namespaces/default/serviceaccounts/nobody/token", {})
    assert r.status == 404, r

    # The admin is admin.
    r = m.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body="{}",
                  headers={"Content-Type": "application/json"})
    assert r.status == 201, r
    info = r.json()["status"]["userInfo"]
    assert info["username"] == "admin" and "system:masters" in info["groups"], info

    if have_kubectl():
        out = kubectl(ctx, m, "auth", "whoami", token=token).stdout
        assert "system:serviceaccount:default:builder" in out, out
        out = kubectl(ctx, m, "auth", "whoami", "-o", "json").stdout
        assert json.loads(out)["status"]["userInfo"]["username"] == "admin", out
        tok = kubectl(ctx, m, "create", "token", "builder").stdout.strip()
        out = kubectl(ctx, m, "auth", "whoami", token=tok).stdout
        assert "system:serviceaccount:default:builder" in out, out
        r = kubectl(ctx, m, "get", "pods", token=tamper(tok), check=False)
        assert r.returncode != 0 and ("Unauthorized" in r.stderr or "credentials" in r.stderr), r.stderr
    else:
        ctx.note("kubectl not installed: kubectl checks skipped")

    # The account goes: its tokens stop working.
    r = m.request("DELETE", "/api/v1/namespaces/default/serviceaccounts/builder")
    assert r.status == 200, r
    r = bearer(m, "GET", "/api/v1/namespaces", token)
    assert r.status == 401, r


@test(timeout=120)
def controllers(ctx):
    m = start(ctx)
    r = post(m, "/api/v1/namespaces",
             {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    assert r.status == 201, r
    ctx.wait_for("the default ServiceAccount of team-a", lambda: get(
        m, "/api/v1/namespaces/team-a/serviceaccounts/default").status == 200, timeout=15)
    ctx.wait_for("kube-root-ca.crt in team-a", lambda: get(
        m, "/api/v1/namespaces/team-a/configmaps/kube-root-ca.crt").status == 200, timeout=15)
    cm = get(m, "/api/v1/namespaces/team-a/configmaps/kube-root-ca.crt").json()
    with open(os.path.join(m.data, "pki", "ca.crt")) as f:
        assert cm["data"]["ca.crt"] == f.read(), cm

    # A token Secret gets its token, which authenticates as the account.
    r = post(m, "/api/v1/namespaces/team-a/secrets",
             {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
              "metadata": {"name": "default-token",
                           "annotations": {"kubernetes.io/service-account.name": "default"}}})
    assert r.status == 201, r

    def filled():
        s = get(m, "/api/v1/namespaces/team-a/secrets/default-token").json()
        return "token" in s.get("data", {}) and s
    s = ctx.wait_for("the token of default-token", filled, timeout=15)
    assert base64.b64decode(s["data"]["namespace"]) == b"team-a", s
    assert "ca.crt" in s["data"], s
    token = base64.b64decode(s["data"]["token"]).decode()
    r = whoami(m, token)
    assert r.status == 201, r
    assert r.json()["status"]["userInfo"]["username"] == \
        "system:serviceaccount:team-a:default", r
    r = bearer(m, "GET", "/api/v1/namespaces/team-a/pods", tamper(token))
    assert r.status == 401, r
    if have_kubectl():
        out = kubectl(ctx, m, "auth", "whoami", token=token).stdout
        assert "system:serviceaccount:team-a:default" in out, out

    # Deleting the Secret revokes its token.
    r = m.request("DELETE", "/api/v1/namespaces/team-a/secrets/default-token")
    assert r.status == 200, r
    ctx.wait_for("the legacy token refused", lambda: bearer(
        m, "GET", "/api/v1/namespaces", token).status == 401, timeout=10)

    # Deleting the default account: it comes back.
    r = m.request("DELETE", "/api/v1/namespaces/team-a/serviceaccounts/default")
    assert r.status == 200, r
    ctx.wait_for("the default ServiceAccount again", lambda: get(
        m, "/api/v1/namespaces/team-a/serviceaccounts/default").status == 200, timeout=15)

    # Endpoints and an EndpointSlice of a Service with a selector, from a
    # pod whose status says Ready (no node agent here: status written by hand).
    r = post(m, "/api/v1/namespaces/team-a/services",
             {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
              "spec": {"selector": {"app": "web"},
                       "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    assert r.status == 201, r
    r = post(m, "/api/v1/namespaces/team-a/pods",
             {"apiVersion": "v1", "kind": "Pod",
              "metadata": {"name": "web-1", "labels": {"app": "web"}},
              "spec": {"nodeName": "n1", "containers": [
                  {"name": "c", "image": "busybox",
                   "ports": [{"name": "http", "containerPort": 8080}]}]}})
    assert r.status == 201, r
    pod = r.json()
    pod["status"] = {"phase": "Running", "podIP": "10.244.0.7",
                     "conditions": [{"type": "Ready", "status": "True"}]}
    r = m.request("PUT", "/api/v1/namespaces/team-a/pods/web-1/status", body=json.dumps(pod),
                  headers={"Content-Type": "application/json"})
    assert r.status == 200, r

    def endpoints():
        r = get(m, "/api/v1/namespaces/team-a/endpoints/web")
        if r.status != 200:
            return None
        subsets = r.json().get("subsets") or []
        return subsets and subsets[0].get("addresses") and r.json()
    ep = ctx.wait_for("the Endpoints of web", endpoints, timeout=15)
    sub = ep["subsets"][0]
    assert sub["addresses"][0]["ip"] == "10.244.0.7", ep
    assert sub["addresses"][0]["targetRef"]["name"] == "web-1", ep
    assert sub["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}], ep

    def slices():
        r = get(m, "/apis/discovery.k8s.io/v1/namespaces/team-a/endpointslices"
                   "?labelSelector=kubernetes.io/service-name%3Dweb")
        items = r.json()["items"] if r.status == 200 else []
        return len(items) == 1 and items[0].get("endpoints") and items[0]
    sl = ctx.wait_for("the EndpointSlice of web", slices, timeout=15)
    assert sl["endpoints"][0]["addresses"] == ["10.244.0.7"], sl
    assert sl["endpoints"][0]["conditions"]["ready"] is True, sl
    assert sl["metadata"]["ownerReferences"][0]["kind"] == "Service", sl

    r = m.request("DELETE", "/api/v1/namespaces/team-a/services/web")
    assert r.status == 200, r
    ctx.wait_for("the Endpoints gone", lambda: get(
        m, "/api/v1/namespaces/team-a/endpoints/web").status == 404, timeout=15)


if __name__ == "__main__":
    main()
