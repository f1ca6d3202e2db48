"""Creates of API objects through a follower: the follower decodes,
defaults and validates the object itself and sends the leader a plain
store command in the leader's next batch of writes. The answers must be
those of a create on the leader (201 with the stored object, 409
AlreadyExists, 404 for a missing namespace, 422 for an invalid object),
and concurrent creates of the same name through every master must have
exactly one winner."""

import json
import threading

from capstantest import test, main
from cluster import Cluster

CM = "/api/v1/namespaces/%s/configmaps"


def cm(name, data=None, ns=None):
    o = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
         "data": data or {"k": "v"}}
    if ns:
        o["metadata"]["namespace"] = ns
    return json.dumps(o).encode()


def post(m, path, body, ctype="application/json"):
    return m.request("POST", path, body=body, headers={"Content-Type": ctype})


def posts_seen(m, resource):
    """POSTs of @resource that master @m served itself (its /metrics)."""
    r = m.request("GET", "/metrics")
    assert r.status == 200, (r.status, r.body)
    n = 0
    for line in r.body.decode().splitlines():
        if line.startswith('apiserver_request_total{verb="POST",resource="%s"' % resource):
            n += int(float(line.split()[-1]))
    return n


def followers(c):
    leader = c.leader()
    return leader, [m for m in c.masters if m is not leader]


@test(timeout=300)
def creates_through_a_follower(ctx):
    c = Cluster(ctx).start(3)
    leader, fs = followers(c)
    f = fs[0]

    r = post(f, CM % "default", cm("via-follower", {"a": "b"}))
    assert r.status == 201, (r.status, r.body)
    o = r.json()
    assert o["metadata"]["name"] == "via-follower", o
    assert o["metadata"]["uid"] and o["metadata"]["creationTimestamp"], o
    rv = o["metadata"]["resourceVersion"]
    assert int(rv) > 0, o
    # The stored object is the answered one, on the leader too.
    g = leader.request("GET", CM % "default" + "/via-follower")
    assert g.status == 200, (g.status, g.body)
    assert g.json()["metadata"]["uid"] == o["metadata"]["uid"], (g.json(), o)
    assert g.json()["metadata"]["resourceVersion"] == rv, (g.json(), o)
    assert g.json()["data"] == {"a": "b"}, g.json()

    # The leader got a batch of store writes, not the API request.
    assert posts_seen(leader, "configmaps") == 0, posts_seen(leader, "configmaps")
    assert posts_seen(leader, "capstan-store") >= 1
    assert posts_seen(f, "configmaps") == 1

    # A second create of the name: 409 AlreadyExists, as on the leader.
    r = post(f, CM % "default", cm("via-follower"))
    assert r.status == 409, (r.status, r.body)
    assert r.json()["reason"] == "AlreadyExists", r.json()

    # Invalid objects are refused by the follower's validation.
    r = post(f, CM % "default", cm("Not_A_Name"))
    assert r.status == 422, (r.status, r.body)
    assert r.json()["reason"] == "Invalid", r.json()
    r = post(f, CM % "default", b'{"apiVersion":"v1","kind":"ConfigMap","metadata":')
    assert r.status == 400, (r.status, r.body)

    # A namespace that does not exist: 404 (the leader decides).
    r = post(f, CM % "nowhere", cm("x"))
    assert r.status == 404, (r.status, r.body)
    assert r.json()["reason"] == "NotFound", r.json()

    # A namespace created on the leader, used at once through the follower.
    r = post(leader, "/api/v1/namespaces",
             json.dumps({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": "fresh"}}).encode())
    assert r.status == 201, (r.status, r.body)
    r = post(f, CM % "fresh", cm("in-fresh"))
    assert r.status == 201, (r.status, r.body)

    # dryRun: answered, not stored.
    r = post(f, CM % "default" + "?dryRun=All", cm("dry"))
    assert r.status == 201, (r.status, r.body)
    g = leader.request("GET", CM % "default" + "/dry")
    assert g.status == 404, (g.status, g.body)

    # generateName through the follower.
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"generateName": "gen-"}}).encode()
    r = post(f, CM % "default", body)
    assert r.status == 201, (r.status, r.body)
    assert r.json()["metadata"]["name"].startswith("gen-"), r.json()

    # YAML bodies take the same path.
    r = post(f, CM % "default", b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yml\n",
             "application/yaml")
    assert r.status == 201, (r.status, r.body)

    # Services still go to the leader (its address allocators).
    svc = json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s1"},
                      "spec": {"ports": [{"port": 80}]}}).encode()
    r = post(f, "/api/v1/namespaces/default/services", svc)
    assert r.status == 201, (r.status, r.body)
    assert r.json()["spec"].get("clusterIP"), r.json()


@test(timeout=300)
def one_winner_per_name(ctx):
    c = Cluster(ctx).start(3)
    c.leader()
    results = {}
    lock = threading.Lock()

    def worker(m, names):
        for n in names:
            r = post(m, CM % "default", cm(n))
            with lock:
                results.setdefault(n, []).append(r.status)

    names = ["race-%03d" % i for i in range(60)]
    threads = [threading.Thread(target=worker, args=(m, names)) for m in c.masters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for n in names:
        st = sorted(results[n])
        assert st == [201, 409, 409], (n, st)
    # Every master sees every object.
    for m in c.masters:
        r = m.request("GET", CM % "default" + "?labelSelector=")
        got = {i["metadata"]["name"] for i in r.json()["items"]}
        assert set(names) <= got, (m.name, sorted(set(names) - got)[:5])


if __name__ == "__main__":
    main()
