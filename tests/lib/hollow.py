"""Hollow nodes (capstan-hollow) for integration tests and benchmarks.

argv() builds the command line of one capstan-hollow process against
masters of tests/lib/cluster.py (HTTPS with the admin client certificate,
every master's URL for failover). The helpers read objects through a
master's plain listener with the admin token (Master.request).
"""

import json
import os


def argv(program, masters, nodes, prefix="hollow", first=0, control_dir=None,
         lease_interval="2s", extra=None):
    """capstan-hollow's argv for `nodes` nodes against `masters`."""
    seed = masters[0].cluster.seed
    pki = os.path.join(seed.data, "pki")
    a = [program]
    for m in masters:
        a += ["--server", m.url]
    a += ["--ca", os.path.join(pki, "ca.crt"),
          "--cert", os.path.join(pki, "admin.crt"),
          "--key", os.path.join(pki, "admin.key"),
          "--nodes", str(nodes), "--prefix", prefix, "--first-index", str(first),
          "--lease-interval", lease_interval]
    if control_dir:
        a += ["--control-dir", control_dir]
    return a + list(extra or [])


def get_json(master, path):
    r = master.request("GET", path)
    assert r.status == 200, (path, r)
    return r.json()


def node_ready(node):
    for c in node.get("status", {}).get("conditions", []):
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def ready_nodes(master, prefix="hollow"):
    """Names of the Ready nodes whose name starts with prefix-."""
    items = get_json(master, "/api/v1/nodes")["items"]
    return sorted(n["metadata"]["name"] for n in items
                  if n["metadata"]["name"].startswith(prefix + "-") and node_ready(n))


def pod_running(pod):
    st = pod.get("status", {})
    if st.get("phase") != "Running" or not st.get("podIP"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in st.get("conditions", []))


def create(master, path, obj):
    r = master.request("POST", path, body=json.dumps(obj),
                       headers={"Content-Type": "application/json"})
    assert r.status in (200, 201), (path, r)
    return r.json()


class PodTimes:
    """Follows a pod watch stream (through a master's plain listener with
    its bearer token, in a thread) and notes when each pod whose name
    matches `name_re` (bytes regex with one group) was first seen, first
    seen bound to a node and first seen Running. Cheap enough for tens of
    thousands of events: lines are searched, not decoded."""

    def __init__(self, plain_url, token, path, name_re):
        import re
        import threading
        self.hostport = plain_url[len("http://"):]
        self.token = token
        self.path = path
        self.name_re = re.compile(name_re)
        self.seen, self.bound, self.running, self.deleted = {}, {}, {}, {}
        self.node_of = {}
        self.lines = 0
        self.stop = False
        self.error = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError("watch did not start: %r" % self.error)

    def _run(self):
        import http.client
        import re
        import time
        node_re = re.compile(rb'"nodeName":"([^"]+)"')
        try:
            host, port = self.hostport.rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=3600)
            conn.request("GET", self.path, headers={"Authorization": "Bearer " + self.token})
            r = conn.getresponse()
            if r.status != 200:
                raise RuntimeError("watch answered %d" % r.status)
            self.ready.set()
            buf = b""
            while not self.stop:
                chunk = r.read1(1 << 20)
                if not chunk:
                    break
                now = time.monotonic()
                buf += chunk
                lines = buf.split(b"\n")
                buf = lines.pop()
                for line in lines:
                    self.lines += 1
                    m = self.name_re.search(line)
                    if not m:
                        continue
                    name = m.group(1).decode()
                    self.seen.setdefault(name, now)
                    if line.startswith(b'{"type":"DELETED"'):
                        self.deleted.setdefault(name, now)
                        continue
                    if name not in self.bound:
                        n = node_re.search(line)
                        if n:
                            self.bound[name] = now
                            self.node_of[name] = n.group(1).decode()
                    if name not in self.running and b'"phase":"Running"' in line:
                        self.running[name] = now
        except Exception as ex:  # reported through .error
            self.error = ex
            self.ready.set()

    def close(self):
        self.stop = True


def percentile(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]
