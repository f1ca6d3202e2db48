"""Bootstrap tokens: `capstan token create|list|revoke` keeps them as
Secrets bootstrap-token-<id> in kube-system, and the API server takes
<id>.<secret> as a bearer token (join tokens reach the join CA endpoint,
node tokens do not; expired, revoked and malformed tokens get 401). A
second master joins with a token made by `capstan token create --usage
join`, and a node token cannot join."""

import json
import os
import re
import time

from capstantest import test, main, program
from cluster import Cluster, Master

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")


def capstan(ctx, master, *args, check=True):
    argv = [program("capstan"), "--kubeconfig", os.path.join(master.data, "admin.kubeconfig")]
    return ctx.run(argv + list(args), check=check, timeout=60, env={"HOME": ctx.dir})


def create(ctx, master, *args):
    r = capstan(ctx, master, "token", "create", *args)
    tok = r.stdout.strip()
    assert TOKEN_RE.match(tok), r.stdout
    return tok


def bearer(master, path, token):
    return master.https_request("GET", path, headers={"Authorization": "Bearer " + token},
                                cert=False)


def listing(ctx, master):
    r = capstan(ctx, master, "token", "list", "-o", "json")
    return {t["id"]: t for t in json.loads(r.stdout)["items"]}


@test(timeout=120)
def create_list_use_revoke(ctx):
    c = Cluster(ctx).start(1)
    m = c.seed
    join = create(ctx, m, "--usage", "join", "--description", "for the second master")
    node = create(ctx, m, "--ttl", "1h")
    forever = create(ctx, m, "--ttl", "0", "--usage", "node")
    jid, jsecret = TOKEN_RE.match(join).groups()
    nid, nsecret = TOKEN_RE.match(node).groups()
    fid = forever.split(".")[0]

    # The Secret is the Kubernetes bootstrap token Secret.
    r = m.https_request("GET", "/api/v1/namespaces/kube-system/secrets/bootstrap-token-" + jid)
    assert r.status == 200, r
    s = r.json()
    assert s["type"] == "bootstrap.kubernetes.io/token", s
    assert sorted(s["data"]) == ["auth-extra-groups", "description", "expiration",
                                 "token-id", "token-secret",
                                 "usage-bootstrap-authentication"], s

    # list: every token, never a secret.
    table = capstan(ctx, m, "token", "list").stdout
    js = capstan(ctx, m, "token", "list", "-o", "json").stdout
    for out in (table, js):
        for sec in (jsecret, nsecret, forever.split(".")[1]):
            assert sec not in out, out
    lines = table.splitlines()
    assert lines[0].split()[:5] == ["TOKEN-ID", "TTL", "EXPIRES", "USAGES", "GROUPS"], table
    assert any(l.startswith(jid) and "for the second master" in l and
               "system:capstan:join" in l for l in lines), table
    toks = listing(ctx, m)
    assert set(toks) == {jid, nid, fid}, toks
    assert toks[jid]["usages"] == ["authentication"], toks
    assert toks[jid]["groups"] == ["system:bootstrappers",
                                   "system:bootstrappers:capstan:master",
                                   "system:capstan:join"], toks
    assert 23 * 3600 < toks[jid]["ttlSeconds"] <= 24 * 3600, toks
    assert 3500 < toks[nid]["ttlSeconds"] <= 3600, toks
    assert toks[nid]["groups"] == ["system:bootstrappers",
                                   "system:bootstrappers:capstan:node"], toks
    assert toks[fid]["expiration"] is None and toks[fid]["ttlSeconds"] is None, toks

    # A join token reaches the join CA endpoint, and nothing else.
    r = bearer(m, "/capstan/v1/cluster/ca", join)
    assert r.status == 200, r
    assert "BEGIN CERTIFICATE" in r.json()["caCert"]
    assert bearer(m, "/capstan/v1/cluster", join).status == 403
    assert bearer(m, "/api/v1/namespaces/kube-system/secrets", join).status == 403
    assert bearer(m, "/healthz", join).status == 200
    # A node token is authenticated but may not fetch the CA key.
    for t in (node, forever):
        r = bearer(m, "/capstan/v1/cluster/ca", t)
        assert r.status == 403, r
        assert "system:bootstrap:" in r.json()["message"], r
    # Malformed and unknown tokens, and a wrong secret: 401.
    for bad in ("abc", jid, jid + "." + jsecret[:-1], jid.upper() + "." + jsecret,
                "zzzzzz.0000000000000000", jid + "." + nsecret, nid + "." + jsecret):
        r = bearer(m, "/capstan/v1/cluster/ca", bad)
        assert r.status == 401, (bad, r)
    # The static tokens still work.
    r = bearer(m, "/capstan/v1/cluster/ca", m.read("join.token"))
    assert r.status == 200, r

    # Revoked: 401; revoking again or an unknown id: exit 4; a bad id: 2.
    r = capstan(ctx, m, "token", "revoke", nid)
    assert nid in r.stdout, r.stdout
    assert bearer(m, "/capstan/v1/cluster/ca", node).status == 401
    assert bearer(m, "/healthz", node).status == 401
    assert capstan(ctx, m, "token", "revoke", nid, check=False).returncode == 4
    r = capstan(ctx, m, "token", "revoke", "q0q0q0", check=False)
    assert r.returncode == 4 and len(r.stderr.strip().splitlines()) == 1, r
    assert capstan(ctx, m, "token", "revoke", "NOPE", check=False).returncode == 2
    assert capstan(ctx, m, "token", "revoke", fid + ".x", check=False).returncode == 0
    assert bearer(m, "/capstan/v1/cluster/ca", forever).status == 401
    assert set(listing(ctx, m)) == {jid}

    # Usage errors.
    assert capstan(ctx, m, "token", "create", "--usage", "admin", check=False).returncode == 2
    assert capstan(ctx, m, "token", "create", "--ttl", "soon", check=False).returncode == 2
    assert capstan(ctx, m, "token", "list", "--ttl", "1h", check=False).returncode == 2
    assert capstan(ctx, m, "token", "frobnicate", check=False).returncode == 2


@test(timeout=90)
def expired_token(ctx):
    c = Cluster(ctx).start(1)
    m = c.seed
    short = create(ctx, m, "--ttl", "1s", "--usage", "join")
    long_ = create(ctx, m, "--ttl", "1h", "--usage", "join")
    time.sleep(2.2)
    # Both Secrets are the same but for the expiration.
    assert bearer(m, "/capstan/v1/cluster/ca", long_).status == 200
    r = bearer(m, "/capstan/v1/cluster/ca", short)
    assert r.status == 401, r
    assert bearer(m, "/healthz", short).status == 401
    toks = listing(ctx, m)
    assert toks[short.split(".")[0]]["ttlSeconds"] == 0, toks
    table = capstan(ctx, m, "token", "list").stdout
    assert any(l.startswith(short.split(".")[0]) and " expired " in l
               for l in table.splitlines()), table


@test(timeout=180)
def join_with_bootstrap_token(ctx):
    c = Cluster(ctx).start(1)
    seed = c.seed
    ca = os.path.join(seed.data, "pki", "ca.crt")
    tok = create(ctx, seed, "--usage", "join", "--ttl", "10m")
    node_tok = create(ctx, seed, "--usage", "node")

    # A node token cannot join a master.
    bad = Master(c, 9)
    os.makedirs(bad.data, exist_ok=True)
    bad.proc = ctx.spawn(bad.name, bad.argv(None) + [
        "--join", seed.url, "--token", node_tok, "--join-ca", ca])
    ctx.wait_for("the node token's join to fail", lambda: not bad.alive(), timeout=60)
    assert bad.proc.wait() != 0
    assert "refused" in bad.proc.log(), bad.proc.log()

    m2 = c.add()
    os.makedirs(m2.data, exist_ok=True)
    m2.proc = ctx.spawn(m2.name, m2.argv(None) + [
        "--join", seed.url, "--token", tok, "--join-ca", ca])
    ctx.wait_for("m2 joined", lambda: os.path.exists(os.path.join(m2.data, "joined"))
                 and m2.ready(), timeout=90)
    c.wait_voters(2, timeout=60)

    # Tokens live in the replicated store: the new master knows them too.
    later = create(ctx, seed, "--usage", "join")
    ctx.wait_for("m2 accepting the new token",
                 lambda: bearer(m2, "/capstan/v1/cluster/ca", later).status == 200,
                 timeout=30)
    assert bearer(m2, "/capstan/v1/cluster/ca", node_tok).status == 403


if __name__ == "__main__":
    main()
