#!/usr/bin/env python3
"""msgpack as a wire format of the Kubernetes API (issue 4): with
`Accept: application/vnd.msgpack` (or application/msgpack,
application/x-msgpack) objects, lists, Tables, watch events and Status
errors come back in msgpack, and request bodies in msgpack are decoded for
create, update and patch (a JSON merge patch in msgpack). Every answer is
checked against the JSON answer of the same request, on the leader and
through a follower (writes forwarded), over the plain listener.

The test carries its own minimal msgpack codec (stdlib only)."""

import http.client
import json
import struct
import time

from capstantest import test, main
from cluster import Cluster

MP = "application/vnd.msgpack"
TABLE_MP = MP + ";as=Table;v=v1;g=meta.k8s.io"
TABLE_JSON = "application/json;as=Table;v=v1;g=meta.k8s.io"


# ---------------------------------------------------------------- msgpack

class Reader:
    """Reads exactly n bytes from bytes or from a stream (.read(n))."""

    def __init__(self, src):
        self.src = src
        self.pos = 0

    def take(self, n):
        if isinstance(self.src, (bytes, bytearray)):
            if self.pos + n > len(self.src):
                raise EOFError("truncated msgpack")
            b = self.src[self.pos:self.pos + n]
            self.pos += n
            return b
        out = b""
        while len(out) < n:
            chunk = self.src.read(n - len(out))
            if not chunk:
                raise EOFError("stream ended")
            out += chunk
        return out


def mp_read(r):
    c = r.take(1)[0]
    if c <= 0x7f:
        return c
    if c >= 0xe0:
        return c - 0x100
    if 0x80 <= c <= 0x8f:
        return mp_map(r, c & 0x0f)
    if 0x90 <= c <= 0x9f:
        return [mp_read(r) for _ in range(c & 0x0f)]
    if 0xa0 <= c <= 0xbf:
        return r.take(c & 0x1f).decode()
    if c == 0xc0:
        return None
    if c in (0xc2, 0xc3):
        return c == 0xc3
    fmt = {0xcc: ">B", 0xcd: ">H", 0xce: ">I", 0xcf: ">Q", 0xd0: ">b", 0xd1: ">h",
           0xd2: ">i", 0xd3: ">q", 0xca: ">f", 0xcb: ">d"}
    if c in fmt:
        return struct.unpack(fmt[c], r.take(struct.calcsize(fmt[c])))[0]
    if c in (0xd9, 0xda, 0xdb):
        n = struct.unpack({0xd9: ">B", 0xda: ">H", 0xdb: ">I"}[c],
                          r.take({0xd9: 1, 0xda: 2, 0xdb: 4}[c]))[0]
        return r.take(n).decode()
    if c in (0xdc, 0xdd):
        n = struct.unpack(">H" if c == 0xdc else ">I", r.take(2 if c == 0xdc else 4))[0]
        return [mp_read(r) for _ in range(n)]
    if c in (0xde, 0xdf):
        n = struct.unpack(">H" if c == 0xde else ">I", r.take(2 if c == 0xde else 4))[0]
        return mp_map(r, n)
    raise ValueError("msgpack type 0x%02x not expected" % c)


def mp_map(r, n):
    d = {}
    for _ in range(n):
        k = mp_read(r)
        assert isinstance(k, str), k
        d[k] = mp_read(r)
    return d


def unpack(data):
    r = Reader(data)
    v = mp_read(r)
    assert r.pos == len(data), "trailing bytes after the msgpack value"
    return v


def pack(v):
    if v is None:
        return b"\xc0"
    if v is True or v is False:
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        if 0 <= v <= 0x7f:
            return bytes([v])
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xdb" + struct.pack(">I", len(b))) + b
    if isinstance(v, list):
        return b"\xdd" + struct.pack(">I", len(v)) + b"".join(pack(x) for x in v)
    if isinstance(v, dict):
        return (b"\xdf" + struct.pack(">I", len(v)) +
                b"".join(pack(k) + pack(x) for k, x in v.items()))
    raise TypeError(type(v))


# ---------------------------------------------------------------- helpers

def ctype(r):
    return {k.lower(): v for k, v in r.headers.items()}.get("content-type", "")


def get_mp(m, path, accept=MP, status=200):
    r = m.request("GET", path, headers={"Accept": accept})
    assert r.status == status, (path, r)
    assert ctype(r) == MP, (path, r.headers)
    return unpack(r.body)


def get_json(m, path, accept="application/json"):
    r = m.request("GET", path, headers={"Accept": accept})
    assert r.status == 200, (path, r)
    return r.json()


def send_mp(m, method, path, obj, status, ctype_in=MP, raw=None):
    r = m.request(method, path, body=raw if raw is not None else pack(obj),
                  headers={"Accept": MP, "Content-Type": ctype_in})
    assert r.status == status, (method, path, r.status, r.body[:300])
    assert ctype(r) == MP, (method, path, r.headers, r.body[:200])
    return unpack(r.body)


def cm(name, **labels):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "data": {"k": "v", "n": "1"}}


CMS = "/api/v1/namespaces/default/configmaps"


def up(ctx):
    c = Cluster(ctx).start(2)
    leader = c.leader()
    follower = next(m for m in c.masters if m is not leader)
    ctx.wait_for("default namespace", lambda: leader.request(
        "GET", "/api/v1/namespaces/default").status == 200, timeout=30)
    return c, leader, follower


def check_status(s, code, reason):
    assert s["kind"] == "Status" and s["apiVersion"] == "v1", s
    assert s["status"] == "Failure" and s["code"] == code and s["reason"] == reason, s
    assert isinstance(s["message"], str) and s["message"], s


# ---------------------------------------------------------------- tests

@test(timeout=180)
def objects_lists_and_errors(ctx):
    c, leader, follower = up(ctx)
    for i, m in enumerate((leader, follower)):
        name = "mp-%d" % i
        # Create with a msgpack body, answered in msgpack (forwarded by
        # the follower).
        o = send_mp(m, "POST", CMS, cm(name, app="mp"), 201)
        assert o["metadata"]["name"] == name and o["data"] == {"k": "v", "n": "1"}, o
        assert o["metadata"]["uid"] and o["metadata"]["resourceVersion"], o
        # GET: the same object as the JSON answer, under every alias.
        want = get_json(leader, CMS + "/" + name + "?resourceVersion=0")
        for acc in (MP, "application/msgpack", "application/x-msgpack",
                    "application/vnd.kubernetes.protobuf, application/vnd.msgpack;q=0.9"):
            got = get_mp(m, CMS + "/" + name, accept=acc)
            assert got == want, (acc, got, want)
        # Update with a msgpack body.
        o["data"]["k"] = "v2"
        o2 = send_mp(m, "PUT", CMS + "/" + name, o, 200)
        assert o2["data"]["k"] == "v2", o2
        assert int(o2["metadata"]["resourceVersion"]) > int(o["metadata"]["resourceVersion"])
        # A stale update: 409 Conflict as a msgpack Status.
        s = send_mp(m, "PUT", CMS + "/" + name, o, 409)
        check_status(s, 409, "Conflict")
        # A JSON merge patch in msgpack (both content types).
        for ct, val in ((MP, "patched"), ("application/merge-patch+msgpack", "again")):
            p = send_mp(m, "PATCH", CMS + "/" + name,
                        {"data": {"k": val, "n": None}, "metadata": {"labels": {"p": "1"}}},
                        200, ctype_in=ct)
            assert p["data"] == {"k": val}, p
            assert p["metadata"]["labels"] == {"app": "mp", "p": "1"}, p
        assert get_json(leader, CMS + "/" + name)["data"] == {"k": "again"}
        # Errors: every one a msgpack Status.
        check_status(get_mp(m, CMS + "/absent", status=404), 404, "NotFound")
        check_status(send_mp(m, "POST", CMS, cm(name), 409), 409, "AlreadyExists")
        bad = cm("Bad_Name")
        s = send_mp(m, "POST", CMS, bad, 422)
        check_status(s, 422, "Invalid")
        assert s["details"]["causes"], s
        check_status(send_mp(m, "POST", CMS, None, 400, raw=b"\x85\xa4kind"), 400, "BadRequest")
        check_status(send_mp(m, "PUT", CMS, cm("x"), 405), 405, "MethodNotAllowed")
        # Nothing invalid was written.
        assert leader.request("GET", CMS + "/Bad_Name").status == 404

    # Lists: items, resourceVersion and continue as in JSON.
    for i in range(5):
        assert leader.request("POST", CMS, body=json.dumps(cm("page-%d" % i, page="yes")),
                              headers={"Content-Type": "application/json"}).status == 201
    for m in (leader, follower):
        want = get_json(leader, CMS + "?labelSelector=page%3Dyes")
        got = get_mp(m, CMS + "?labelSelector=page%3Dyes")
        assert got["kind"] == "ConfigMapList" and got["apiVersion"] == "v1", got
        assert [x["metadata"]["name"] for x in got["items"]] == \
            ["page-%d" % i for i in range(5)], got
        assert int(got["metadata"]["resourceVersion"]) >= int(want["metadata"]["resourceVersion"])
        assert got["items"] == want["items"]
        names, cont, pages = [], None, 0
        while True:
            q = CMS + "?labelSelector=page%3Dyes&limit=2" + ("&continue=" + cont if cont else "")
            page = get_mp(m, q)
            pages += 1
            assert int(page["metadata"]["resourceVersion"]) > 0, page
            names += [x["metadata"]["name"] for x in page["items"]]
            cont = page["metadata"].get("continue")
            if not cont:
                break
        assert names == ["page-%d" % i for i in range(5)] and pages == 3, (names, pages)
        # The Table in msgpack has the JSON Table's columns and cells.
        tj = get_json(leader, CMS + "?labelSelector=page%3Dyes", accept=TABLE_JSON)
        tm = get_mp(m, CMS + "?labelSelector=page%3Dyes", accept=TABLE_MP)
        assert tm["kind"] == "Table" and tm["columnDefinitions"] == tj["columnDefinitions"], tm
        assert [r["cells"] for r in tm["rows"]] == [r["cells"] for r in tj["rows"]], (tm, tj)
        assert [r["object"]["metadata"] for r in tm["rows"]] == \
            [x["metadata"] for x in want["items"]]
        one = get_mp(m, CMS + "/page-0", accept=TABLE_MP)
        assert len(one["rows"]) == 1 and one["rows"][0]["cells"][0] == "page-0", one
        # Discovery and other JSON answers follow the Accept header too.
        d = get_mp(m, "/api/v1")
        assert d["kind"] == "APIResourceList", d


def read_event(stream):
    """The next msgpack event of a watch stream, keep-alive nils skipped."""
    r = Reader(stream)
    while True:
        v = mp_read(r)
        if v is not None:
            return v


@test(timeout=180)
def watch_events(ctx):
    c, leader, follower = up(ctx)
    for i, m in enumerate((leader, follower)):
        lst = get_json(leader, CMS + "?labelSelector=w%3D" + str(i))
        rv = lst["metadata"]["resourceVersion"]
        conn = http.client.HTTPConnection("127.0.0.1", m.plain_port, timeout=30)
        conn.request("GET", CMS + "?watch=true&labelSelector=w%%3D%d&resourceVersion=%s" % (i, rv),
                     headers={"Accept": MP,
                              "Authorization": "Bearer " + c.admin_token()})
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Content-Type") == MP, r.getheaders()
        name = "watched-%d" % i
        o = send_mp(leader, "POST", CMS, cm(name, w=str(i)), 201)
        ev = read_event(r)
        assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == name, ev
        assert ev["object"] == o, (ev, o)
        send_mp(leader, "PATCH", CMS + "/" + name, {"data": {"k": "w"}}, 200)
        ev = read_event(r)
        assert ev["type"] == "MODIFIED" and ev["object"]["data"]["k"] == "w", ev
        d = leader.request("DELETE", CMS + "/" + name)
        assert d.status == 200, d
        ev = read_event(r)
        assert ev["type"] == "DELETED" and ev["object"]["metadata"]["name"] == name, ev
        assert int(ev["object"]["metadata"]["resourceVersion"]) > \
            int(o["metadata"]["resourceVersion"])
        conn.close()
    # Without a resourceVersion the current objects come first as ADDED;
    # timeoutSeconds ends the stream.
    send_mp(leader, "POST", CMS, cm("present", w="now"), 201)
    conn = http.client.HTTPConnection("127.0.0.1", follower.plain_port, timeout=30)
    conn.request("GET", CMS + "?watch=true&labelSelector=w%3Dnow&timeoutSeconds=1",
                 headers={"Accept": MP, "Authorization": "Bearer " + c.admin_token()})
    r = conn.getresponse()
    t0 = time.monotonic()
    ev = read_event(r)
    assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "present", ev
    rest = r.read()
    assert time.monotonic() - t0 < 15
    assert rest.strip(b"\xc0") == b"", rest
    conn.close()
    # A Table watch in msgpack.
    conn = http.client.HTTPConnection("127.0.0.1", leader.plain_port, timeout=30)
    conn.request("GET", CMS + "?watch=true&labelSelector=w%3Dnow&timeoutSeconds=1",
                 headers={"Accept": TABLE_MP, "Authorization": "Bearer " + c.admin_token()})
    r = conn.getresponse()
    ev = read_event(r)
    assert ev["type"] == "ADDED" and ev["object"]["kind"] == "Table", ev
    assert ev["object"]["rows"][0]["cells"][0] == "present", ev
    conn.close()


if __name__ == "__main__":
    main()
