#!/usr/bin/env python3
"""Watches with label and field selectors, many at once on one replica:
each must get exactly the events whose new state its selectors match.
Watchers with the same selector text share one verdict per event
(kapi_watch.c), so the set mixes equal texts, texts that differ only in
the field selector, and more distinct texts than the verdicts kept per
event, and an update changes labels (a new revision of the same key)."""

import http.client
import json
import urllib.parse

from capstantest import test, main
from cluster import Cluster

NS = "sel"
CMS = "/api/v1/namespaces/%s/configmaps" % NS

# name -> labels at creation
OBJECTS = [
    ("obj-1", {"tier": "web", "env": "prod"}),
    ("obj-2", {"tier": "db", "env": "prod"}),
    ("obj-3", {"tier": "web", "env": "dev"}),
    ("obj-4", {"tier": "cache"}),
]
# After the creates, obj-3 becomes tier=db (a MODIFIED event).

# (labelSelector, fieldSelector) -> expected [(type, name)] in order
WATCHES = [
    (("tier=web", ""), [("ADDED", "obj-1"), ("ADDED", "obj-3")]),
    (("tier=web", ""), [("ADDED", "obj-1"), ("ADDED", "obj-3")]),
    (("tier=db", ""), [("ADDED", "obj-2"), ("MODIFIED", "obj-3")]),
    (("tier!=web", ""), [("ADDED", "obj-2"), ("ADDED", "obj-4"), ("MODIFIED", "obj-3")]),
    (("env=prod", ""), [("ADDED", "obj-1"), ("ADDED", "obj-2")]),
    (("env", ""), [("ADDED", "obj-1"), ("ADDED", "obj-2"), ("ADDED", "obj-3"),
                   ("MODIFIED", "obj-3")]),
    (("!env", ""), [("ADDED", "obj-4")]),
    (("tier in (web,db)", ""), [("ADDED", "obj-1"), ("ADDED", "obj-2"), ("ADDED", "obj-3"),
                                ("MODIFIED", "obj-3")]),
    (("tier notin (web)", ""), [("ADDED", "obj-2"), ("ADDED", "obj-4"), ("MODIFIED", "obj-3")]),
    (("tier=web,env=dev", ""), [("ADDED", "obj-3")]),
    (("", "metadata.name=obj-2"), [("ADDED", "obj-2")]),
    (("tier=web", "metadata.name=obj-1"), [("ADDED", "obj-1")]),
    (("tier=web", "metadata.name!=obj-1"), [("ADDED", "obj-3")]),
    (("tier=web", "metadata.name!=obj-1"), [("ADDED", "obj-3")]),
]


def open_watch(m, token, rv, labels, fields):
    q = {"watch": "true", "resourceVersion": rv, "timeoutSeconds": "8"}
    if labels:
        q["labelSelector"] = labels
    if fields:
        q["fieldSelector"] = fields
    conn = http.client.HTTPConnection("127.0.0.1", m.plain_port, timeout=60)
    conn.request("GET", CMS + "?" + urllib.parse.urlencode(q),
                 headers={"Authorization": "Bearer " + token})
    r = conn.getresponse()
    assert r.status == 200, (labels, fields, r.status, r.read()[:300])
    return conn, r


@test(timeout=180)
def selectors_of_many_watchers(ctx):
    c = Cluster(ctx).start(1)
    m = c.masters[0]
    ctx.wait_for("default namespace", lambda: m.request(
        "GET", "/api/v1/namespaces/default").status == 200, timeout=30)
    r = m.request("POST", "/api/v1/namespaces", body=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}).encode(),
        headers={"Content-Type": "application/json"})
    assert r.status == 201, (r.status, r.body)
    r = m.request("GET", CMS)
    assert r.status == 200, (r.status, r.body)
    rv = r.json()["metadata"]["resourceVersion"]
    watches = [open_watch(m, c.admin_token(), rv, lab, fld) for (lab, fld), _ in WATCHES]
    for name, labels in OBJECTS:
        r = m.request("POST", CMS, body=json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}).encode(),
            headers={"Content-Type": "application/json"})
        assert r.status == 201, (name, r.status, r.body)
    r = m.request("PATCH", CMS + "/obj-3", body=json.dumps(
        {"metadata": {"labels": {"tier": "db"}}}).encode(),
        headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 200, (r.status, r.body)
    # Each stream ends at its timeoutSeconds; everything it sent is read.
    for ((lab, fld), want), (conn, resp) in zip(WATCHES, watches):
        got = []
        for line in resp.read().decode().splitlines():
            if not line.strip():
                continue  # keep-alive
            ev = json.loads(line)
            if ev["type"] in ("ADDED", "MODIFIED", "DELETED"):
                got.append((ev["type"], ev["object"]["metadata"]["name"]))
        conn.close()
        assert got == want, (lab, fld, got, want)


if __name__ == "__main__":
    main()
