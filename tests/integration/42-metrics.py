#!/usr/bin/env python3
"""/metrics on every master (Prometheus text format 0.0.4, group
system:masters only): request counters and latency histograms by verb and
resource, Raft and store gauges that agree with /capstan/v1/cluster, open
watches; and `capstan kubeconfig`, whose output the real kubectl uses."""

import http.client
import os
import re
import socket
import stat
import time

from capstantest import test, main, program, require_kubectl, KUBECTL
from cluster import Cluster

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
NAMES = {
    "apiserver_request_total": "counter",
    "apiserver_request_duration_seconds": "histogram",
    "capstan_raft_term": "gauge",
    "capstan_raft_commit_index": "gauge",
    "capstan_raft_applied_index": "gauge",
    "capstan_raft_leader": "gauge",
    "capstan_raft_write_batches_total": "counter",
    "capstan_raft_batched_writes_total": "counter",
    "capstan_store_revision": "gauge",
    "capstan_store_keys": "gauge",
    "capstan_watch_streams": "gauge",
    "process_resident_memory_bytes": "gauge",
    "process_start_time_seconds": "gauge",
}


def parse(text):
    """{(name, labels-text): value} and {name: type} of an exposition."""
    samples, types, helps = {}, {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
        elif line.startswith("# HELP "):
            helps.add(line.split(" ")[2])
        elif line:
            m = SAMPLE.match(line)
            assert m, "bad sample line %r" % line
            samples[(m.group(1), m.group(2) or "")] = float(m.group(3))
    assert set(types) == helps, (types, helps)
    return samples, types


def scrape(m):
    r = m.request("GET", "/metrics")
    assert r.status == 200, r
    ctype = {k.lower(): v for k, v in r.headers.items()}.get("content-type", "")
    assert ctype.startswith("text/plain; version=0.0.4"), r.headers
    return parse(r.body.decode())


def total(samples, verb, resource, code):
    return samples.get(("apiserver_request_total",
                        '{verb="%s",resource="%s",code="%d"}' % (verb, resource, code)), 0)


def hist(samples, verb, resource, suffix, le=None):
    labels = '{verb="%s",resource="%s"' % (verb, resource)
    labels += ',le="%s"}' % le if le is not None else "}"
    return samples.get(("apiserver_request_duration_seconds_" + suffix, labels), 0)


@test(timeout=240)
def metrics_on_every_master(ctx):
    c = Cluster(ctx).start(3)
    m = c.seed
    # Anonymous: 401 on both listeners; a non-master user: 403.
    conn = http.client.HTTPConnection("127.0.0.1", m.plain_port, timeout=30)
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    assert r.status == 401, r.status
    conn.close()
    assert m.https_request("GET", "/metrics", cert=False).status == 401
    assert m.https_request("GET", "/metrics").status == 200
    kc = os.path.join(m.data, "admin.kubeconfig")
    node_token = ctx.run([program("capstan"), "--kubeconfig", kc, "token", "create"],
                         env={"HOME": ctx.dir}, timeout=60).stdout.strip()
    r = m.https_request("GET", "/metrics", cert=False,
                        headers={"Authorization": "Bearer " + node_token})
    assert r.status == 403, r

    for x in c.masters:
        samples, types = scrape(x)
        for name, typ in NAMES.items():
            assert types.get(name) == typ, (name, types)
        assert samples[("process_resident_memory_bytes", "")] > 1 << 20, samples
        assert abs(samples[("process_start_time_seconds", "")] - time.time()) < 600, samples

    # Counters and histograms grow with requests.
    before, _ = scrape(m)
    for i in range(3):
        assert m.put("/metrics-test/k%d" % i, b"v").status == 200
    assert m.request("GET", "/api/v1/namespaces").status == 200
    assert m.request("GET", "/api/v1/namespaces/default/pods/nope").status == 404
    assert m.request("GET", "/apis/apps/v1/namespaces/default/deployments").status == 200
    after, _ = scrape(m)
    assert total(after, "PUT", "capstan-store", 200) >= total(before, "PUT", "capstan-store", 200) + 3
    assert total(after, "LIST", "namespaces", 200) >= total(before, "LIST", "namespaces", 200) + 1
    assert total(after, "GET", "pods", 404) >= total(before, "GET", "pods", 404) + 1
    assert total(after, "LIST", "deployments", 200) >= total(before, "LIST", "deployments", 200) + 1
    # The scrape itself counts, under "other".
    assert total(after, "GET", "other", 200) >= 1
    n = hist(after, "PUT", "capstan-store", "count")
    assert n >= hist(before, "PUT", "capstan-store", "count") + 3
    assert hist(after, "PUT", "capstan-store", "bucket", "+Inf") == n
    assert hist(after, "PUT", "capstan-store", "sum") > 0
    buckets = [hist(after, "PUT", "capstan-store", "bucket", le) for le in
               ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf")]
    assert buckets == sorted(buckets), buckets

    # Raft gauges agree with the cluster status on every master.
    for x in c.masters:
        st0 = x.status()
        s, _ = scrape(x)
        st1 = x.status()
        assert st0["term"] == s[("capstan_raft_term", "")] == st1["term"], (st0, s)
        assert s[("capstan_raft_leader", "")] == (1 if st1["state"] == "leader" else 0)
        for key, name in (("commitIndex", "capstan_raft_commit_index"),
                          ("appliedIndex", "capstan_raft_applied_index"),
                          ("revision", "capstan_store_revision")):
            assert st0[key] <= s[(name, "")] <= st1[key], (key, st0, s, st1)
        assert s[("capstan_store_keys", "")] >= 3
        # Writes are appended in batches by the leader (a follower's
        # counters keep what it appended while it led, if it did).
        batches = s[("capstan_raft_write_batches_total", "")]
        batched = s[("capstan_raft_batched_writes_total", "")]
        assert batches <= batched, (batches, batched)
        if st1["state"] == "leader":
            assert batches >= 1, batches
    leaders = sum(scrape(x)[0][("capstan_raft_leader", "")] for x in c.masters)
    assert leaders == 1, leaders

    # Open watches (store view and Kubernetes API) are counted while open.
    def watches():
        return scrape(m)[0][("capstan_watch_streams", "")]
    base = watches()
    conns = []
    for path in ("/capstan/v1/store/metrics-test/?watch=true&fromRevision=0",
                 "/api/v1/namespaces?watch=true"):
        w = http.client.HTTPConnection("127.0.0.1", m.plain_port, timeout=30)
        w.request("GET", path, headers={"Authorization": "Bearer " + c.admin_token()})
        resp = w.getresponse()
        assert resp.status == 200
        conns.append((w, w.sock, resp))
    ctx.wait_for("2 watches", lambda: watches() == base + 2, timeout=10)
    for w, sock, resp in conns:
        # The response holds a file on the socket: shut it down for real.
        sock.shutdown(socket.SHUT_RDWR)
        resp.close()
        w.close()


def kubectl(ctx, kubeconfig, *args):
    return ctx.run([KUBECTL, "--kubeconfig", kubeconfig, "--cache-dir", ctx.path("kube-cache"),
                    "--request-timeout", "30s"] + list(args), check=False, timeout=60,
                   env={"HOME": ctx.dir})


@test(timeout=180)
def kubeconfig_command(ctx):
    require_kubectl()
    c = Cluster(ctx).start(2)
    m1, m2 = c.masters
    capstan = program("capstan")
    r = ctx.run([capstan, "kubeconfig", "--data-dir", m1.data], timeout=30)
    assert r.stdout == open(os.path.join(m1.data, "admin.kubeconfig")).read(), r.stdout
    out = ctx.path("kc1")
    with open(out, "w") as f:
        f.write(r.stdout)
    r = kubectl(ctx, out, "get", "ns")
    assert r.returncode == 0 and "kube-system" in r.stdout, (r.stdout, r.stderr)

    # --server rewrites the URL (here: the second master), -o writes 0600.
    out2 = ctx.path("kc2")
    ctx.run([capstan, "kubeconfig", "--data-dir", m1.data, "--server", m2.url, "-o", out2],
            timeout=30)
    assert stat.S_IMODE(os.stat(out2).st_mode) == 0o600
    r = kubectl(ctx, out2, "config", "view", "-o", "jsonpath={.clusters[0].cluster.server}")
    assert r.stdout.strip() == m2.url, (r.stdout, r.stderr)
    r = kubectl(ctx, out2, "get", "ns", "default", "-o", "name")
    assert r.returncode == 0 and r.stdout.strip() == "namespace/default", (r.stdout, r.stderr)
    s, _ = scrape(m2)
    assert total(s, "GET", "namespaces", 200) >= 1

    # Errors: one line, the documented exit codes.
    r = ctx.run([capstan, "kubeconfig", "--data-dir", ctx.path("nope")], check=False, timeout=30)
    assert r.returncode == 1 and r.stdout == "", r
    assert r.stderr.startswith("capstan: ") and r.stderr.count("\n") == 1, r.stderr
    assert "admin.kubeconfig" in r.stderr, r.stderr
    r = ctx.run([capstan, "kubeconfig", "--data-dir", m1.data, "--server", "ftp://x"],
                check=False, timeout=30)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r
    r = ctx.run([capstan, "kubeconfig", "extra"], check=False, timeout=30)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r


if __name__ == "__main__":
    main()
