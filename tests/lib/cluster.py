"""A capstand cluster for integration tests, started process by process.

The harness owns every process (ctx.spawn), so each one is ended by PID at
teardown. Masters are reached over HTTPS with the admin client certificate
or over the plain loopback listener with the admin token.
"""

import base64
import http.client
import json
import os
import signal
import ssl
import threading
import time
import urllib.parse

from capstantest import program, free_port


class Response:
    def __init__(self, status, body, headers):
        self.status = status
        self.body = body
        self.headers = headers

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:200])


class Master:
    def __init__(self, cluster, idx, extra=None):
        self.cluster = cluster
        self.ctx = cluster.ctx
        self.idx = idx
        self.name = "m%d" % idx
        self.data = self.ctx.path(self.name)
        self.https_port = free_port()
        self.plain_port = free_port()
        self.raft_port = free_port()
        self.extra = list(extra or [])
        self.proc = None
        self._local = threading.local()

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.https_port

    def argv(self, first=None):
        a = [program("capstand"), "--data-dir", self.data,
             "--listen", "127.0.0.1:%d" % self.https_port,
             "--plain-listen", "127.0.0.1:%d" % self.plain_port,
             "--raft-address", "127.0.0.1:%d" % self.raft_port,
             "--log-level", "info"] + self.cluster.flags + self.extra
        if first == "init":
            a.append("--init")
        elif first is not None:
            seed = first
            a += ["--join", seed.url, "--token", seed.read("join.token"),
                  "--join-ca", os.path.join(seed.data, "pki", "ca.crt")]
        return a

    def start(self, first=None):
        os.makedirs(self.data, exist_ok=True)
        self.proc = self.ctx.spawn(self.name, self.argv(first))
        return self.proc

    def kill(self, sig=signal.SIGKILL):
        self.proc.signal(sig)
        self.proc.wait(timeout=20)
        self._local = threading.local()

    def alive(self):
        return self.proc is not None and self.proc.alive()

    def read(self, name):
        with open(os.path.join(self.data, name)) as f:
            return f.read().strip()

    def token(self):
        return self.read("admin.token")

    # HTTP over the plain listener with the admin token; one connection per
    # thread so that load generators can share a Master.
    def _conn(self):
        c = getattr(self._local, "conn", None)
        if c is None:
            c = http.client.HTTPConnection("127.0.0.1", self.plain_port, timeout=30)
            self._local.conn = c
        return c

    def request(self, method, path, body=None, headers=None, timeout=30):
        h = {"Authorization": "Bearer " + self.cluster.admin_token()}
        if headers:
            h.update(headers)
        for attempt in (0, 1):
            c = self._conn()
            c.timeout = timeout
            try:
                c.request(method, path, body=body, headers=h)
                r = c.getresponse()
                data = r.read()
                return Response(r.status, data, dict(r.getheaders()))
            except (ConnectionError, http.client.HTTPException, OSError):
                c.close()
                self._local.conn = None
                # A request that may have been sent is not retried.
                if attempt == 1 or method not in ("GET",):
                    raise

    def https_context(self):
        pki = os.path.join(self.cluster.seed.data, "pki")
        ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        ctx.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
        return ctx

    def https_request(self, method, path, body=None, headers=None, cert=True):
        pki = os.path.join(self.cluster.seed.data, "pki")
        if cert:
            ctx = self.https_context()
        else:
            ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        c = http.client.HTTPSConnection("127.0.0.1", self.https_port, context=ctx, timeout=30)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return Response(r.status, r.read(), dict(r.getheaders()))
        finally:
            c.close()

    # The store's diagnostic view.
    def put(self, key, value, create=False, mod_rev=None):
        q = {}
        if create:
            q["create"] = "true"
        if mod_rev is not None:
            q["modRevision"] = str(mod_rev)
        path = "/capstan/v1/store" + urllib.parse.quote(key)
        if q:
            path += "?" + urllib.parse.urlencode(q)
        return self.request("PUT", path, body=value)

    def get(self, key, local=False):
        path = "/capstan/v1/store" + urllib.parse.quote(key)
        if local:
            path += "?consistency=local"
        return self.request("GET", path)

    def delete(self, key, mod_rev=None):
        path = "/capstan/v1/store" + urllib.parse.quote(key)
        if mod_rev is not None:
            path += "?modRevision=%d" % mod_rev
        return self.request("DELETE", path)

    def list(self, prefix, local=False, limit=None):
        """All entries under prefix, following continue tokens."""
        items = []
        cont = None
        while True:
            q = {"list": "true"}
            if local:
                q["consistency"] = "local"
            if limit:
                q["limit"] = str(limit)
            if cont:
                q["continue"] = cont
            r = self.request("GET", "/capstan/v1/store" + urllib.parse.quote(prefix)
                             + "?" + urllib.parse.urlencode(q))
            assert r.status == 200, r
            j = r.json()
            items += j["items"]
            cont = j.get("continue")
            if not cont:
                return items

    def status(self):
        r = self.request("GET", "/capstan/v1/cluster")
        assert r.status == 200, r
        return r.json()

    def ready(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.plain_port, timeout=2)
            c.request("GET", "/readyz")
            r = c.getresponse()
            r.read()
            c.close()
            return r.status == 200
        except OSError:
            return False


def value_of(item):
    return base64.b64decode(item["value"])


class Cluster:
    def __init__(self, ctx, flags=None):
        self.ctx = ctx
        self.flags = list(flags or [])
        self.masters = []
        self._token = None

    @property
    def seed(self):
        return self.masters[0]

    def admin_token(self):
        if self._token is None:
            self._token = self.seed.token()
        return self._token

    def add(self, extra=None):
        m = Master(self, len(self.masters) + 1, extra)
        self.masters.append(m)
        return m

    def start(self, n=3, timeout=60):
        """Starts n masters: the first with --init, the others joining it."""
        for _ in range(n):
            self.add()
        self.seed.start("init")
        self.ctx.wait_for("m1 ready", self.seed.ready, timeout=timeout)
        for m in self.masters[1:]:
            self.join(m, timeout=timeout)
        self.wait_voters(n, timeout=timeout)
        return self

    def join(self, m, timeout=60):
        m.start(self.seed)
        self.ctx.wait_for("%s joined" % m.name,
                          lambda: os.path.exists(os.path.join(m.data, "joined")) and m.ready(),
                          timeout=timeout)

    def alive(self):
        return [m for m in self.masters if m.alive()]

    def voters(self, via=None):
        via = via or self.alive()[0]
        st = via.status()
        return [x for x in st["members"] if x["role"] == "voter"]

    def wait_voters(self, n, timeout=60):
        def ok():
            for m in self.alive():
                if len(self.voters(m)) != n or not m.status().get("leaderID"):
                    return False
            return True
        self.ctx.wait_for("%d voters" % n, ok, timeout=timeout)

    def leader(self, timeout=30):
        def find():
            for m in self.alive():
                try:
                    st = m.status()
                except Exception:
                    continue
                if st["state"] == "leader":
                    return m
            return None
        return self.ctx.wait_for("a leader", find, timeout=timeout)

    def restart(self, m, timeout=60):
        m.start(None)
        self.ctx.wait_for("%s ready" % m.name, m.ready, timeout=timeout)
