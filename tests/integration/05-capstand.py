"""capstand as a program: settings (flags, config file, --help), first
start with --init, HTTPS health endpoints, graceful stop, restart from the
data directory, join, and clear failures (bad config, corrupt log, port or
data directory in use)."""

import glob
import http.client
import json
import os
import re
import signal
import socket
import ssl
import stat
import time
import urllib.parse

from capstantest import test, program, free_port, main, SRCDIR

CAPSTAND = program("capstand")


class Daemon:
    """One capstand with its own free ports and data directory."""

    def __init__(self, ctx, name="m1", data=None):
        self.ctx = ctx
        self.name = name
        self.data = data or ctx.path(name)
        self.port = free_port()
        self.raft_port = free_port()
        self.proc = None
        self.runs = 0

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.port

    def argv(self, *extra):
        return [CAPSTAND, "--config", "", "--data-dir", self.data,
                "--listen", "127.0.0.1:%d" % self.port,
                "--raft-address", "127.0.0.1:%d" % self.raft_port] + list(extra)

    def start(self, *extra):
        self.runs += 1
        self.proc = self.ctx.spawn("%s-%d" % (self.name, self.runs), self.argv(*extra))
        return self.proc

    def stop(self, sig=signal.SIGTERM, timeout=20):
        self.proc.signal(sig)
        return self.proc.wait(timeout=timeout)

    def pki(self, name):
        return os.path.join(self.data, "pki", name)

    def context(self, cert=True):
        c = ssl.create_default_context(cafile=self.pki("ca.crt"))
        if cert:
            c.load_cert_chain(self.pki("admin.crt"), self.pki("admin.key"))
        return c

    def request(self, method, path, body=None, cert=True, timeout=10):
        c = http.client.HTTPSConnection("127.0.0.1", self.port,
                                        context=self.context(cert), timeout=timeout)
        try:
            c.request(method, path, body=body)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def wait_status(self, path, want=200, timeout=30, cert=False):
        def ok():
            assert self.proc.alive(), "capstand exited: %s" % self.proc.log()[-2000:]
            return self.request("GET", path, cert=cert)[0] == want
        self.ctx.wait_for("%s %s -> %d" % (self.name, path, want), ok, timeout=timeout,
                          interval=0.1)

    def wait_ready(self, timeout=30):
        self.wait_status("/healthz", timeout=timeout)
        self.wait_status("/readyz", timeout=timeout)


def read(path):
    with open(path) as f:
        return f.read()


def config_keys():
    """The keys documented in packaging/capstand.yaml ("# key: value")."""
    keys = []
    for line in read(os.path.join(SRCDIR, "packaging", "capstand.yaml")).splitlines():
        m = re.match(r"^#?\s?([a-z][a-z-]+):(\s|$)", line)
        if m:
            keys.append(m.group(1))
    return keys


def help_flags(text):
    return set(re.findall(r"^\s+(?:-\w, )?--([a-z-]+)", text, re.M))


def one_line(text):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    assert len(lines) == 1, "expected one line, got: %r" % text
    return lines[0]


@test(timeout=30)
def help_lists_every_config_key(ctx):
    r = ctx.run([CAPSTAND, "--help"])
    flags = help_flags(r.stdout)
    keys = config_keys()
    # The brief's flags, each also a key of the file.
    expected = ["data-dir", "raft-address", "listen", "advertise-url", "plain-listen",
                "san", "init", "join", "token", "join-ca", "election-timeout",
                "heartbeat-timeout", "snapshot-threshold", "snapshot-trailing",
                "history-events", "history-age", "log-level"]
    for k in expected:
        assert k in flags, "--%s missing from --help" % k
        assert k in keys, "%s missing from packaging/capstand.yaml" % k
    assert set(keys) == flags - {"config", "help", "version"}, (sorted(keys), sorted(flags))
    for k in ("config", "help", "version"):
        assert k in flags
    for default in ("/var/lib/capstan", "127.0.0.1:6444", "0.0.0.0:6443", "400ms", "50ms",
                    "16384", "4096", "100000", "5m", "info"):
        assert "(default: %s)" % default in r.stdout.replace("\n" + " " * 30, " "), default
    # Every key is documented in both man pages.
    for page in ("capstand.8", "capstan.conf.5"):
        text = read(os.path.join(SRCDIR, "man", page)).replace("\\-", "-")
        for k in keys:
            assert k in text, "%s not documented in man/%s" % (k, page)
    # The packaged file, uncommented, is a valid config with the defaults.
    cfg = ctx.path("all.yaml")
    with open(cfg, "w") as f:
        for line in read(os.path.join(SRCDIR, "packaging", "capstand.yaml")).splitlines():
            m = re.match(r"^#\s?([a-z][a-z-]+:(\s.*)?)$", line)
            if m:
                f.write(m.group(1) + "\n")
    r = ctx.run([CAPSTAND, "--config", cfg, "--data-dir", ctx.path("empty")], check=False)
    # Valid settings, then the empty data directory refuses to start.
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "--init" in r.stderr and ".yaml" not in r.stderr, r.stderr


@test(timeout=30)
def bad_config_exits_2_with_one_line(ctx):
    cases = [
        ("data-dir: /tmp/x\nelection-timeout: soon\n", r":2: key 'election-timeout': invalid duration 'soon'"),
        ("listen: 127.0.0.1:1\nno-such-key: 1\n", r":2: unknown key 'no-such-key'"),
        ("san: {a: b}\n", r":1: key 'san': expected a list of strings, got a mapping"),
        ("snapshot-threshold: many\n", r":1: key 'snapshot-threshold': invalid number 'many'"),
        ("log-level: loud\n", r":1: key 'log-level': invalid log level 'loud'"),
        ("listen: [a\n", r"YAML syntax error"),
    ]
    for i, (text, want) in enumerate(cases):
        path = ctx.path("bad%d.yaml" % i)
        with open(path, "w") as f:
            f.write(text)
        r = ctx.run([CAPSTAND, "--config", path, "--data-dir", ctx.path("d")], check=False)
        assert r.returncode == 2, (text, r.returncode, r.stderr)
        line = one_line(r.stderr)
        assert path in line and re.search(want, line), (want, line)
    r = ctx.run([CAPSTAND, "--config", ctx.path("absent.yaml")], check=False)
    assert r.returncode == 2
    assert "absent.yaml does not exist" in one_line(r.stderr)
    r = ctx.run([CAPSTAND, "--election-timeout", "1 s"], check=False)
    assert r.returncode == 2
    assert "--election-timeout: invalid duration" in one_line(r.stderr)
    for argv, want in (
            (["--init", "--join", "https://127.0.0.1:1"], "exclude each other"),
            (["--join", "https://127.0.0.1:1"], "--token"),
            (["--join", "https://127.0.0.1:1", "--token", "t"], "--join-ca"),
            (["--plain-listen", "0.0.0.0:8080"], "loopback"),
            (["--heartbeat-timeout", "2s"], "--election-timeout"),
            (["--san", "not a name"], "--san")):
        r = ctx.run([CAPSTAND, "--config", "", "--data-dir", ctx.path("d")] + argv, check=False)
        assert r.returncode == 2, (argv, r.returncode, r.stderr)
        assert want in one_line(r.stderr), (argv, r.stderr)
    # Nothing was created for a usage error.
    assert not os.path.exists(ctx.path("d"))


@test(timeout=30)
def empty_data_dir_needs_init_or_join(ctx):
    d = Daemon(ctx)
    r = ctx.run(d.argv(), check=False)
    assert r.returncode == 2, r
    assert "--init" in one_line(r.stderr)
    assert not os.path.exists(os.path.join(d.data, "id"))


@test(timeout=60)
def init_serves_https_and_stops_on_sigterm(ctx):
    d = Daemon(ctx)
    d.start("--init", "--san", "capstan.example", "--san", "10.9.8.7")
    d.wait_ready()
    # Files and modes of the data directory.
    assert stat.S_IMODE(os.stat(d.data).st_mode) == 0o700
    assert read(os.path.join(d.data, "id")).strip() == "1"
    assert os.path.exists(os.path.join(d.data, "joined"))
    for name in ("ca", "server", "master", "admin"):
        assert stat.S_IMODE(os.stat(d.pki(name + ".key")).st_mode) == 0o600, name
        assert stat.S_IMODE(os.stat(d.pki(name + ".crt")).st_mode) == 0o644, name
    for name in ("tokens.csv", "admin.token", "join.token", "admin.kubeconfig"):
        assert stat.S_IMODE(os.stat(os.path.join(d.data, name)).st_mode) == 0o600, name
    tokens = read(os.path.join(d.data, "tokens.csv")).splitlines()
    admin = read(os.path.join(d.data, "admin.token")).strip()
    join = read(os.path.join(d.data, "join.token")).strip()
    assert '%s,admin,admin,"system:masters"' % admin in tokens, tokens
    assert '%s,capstan-join,capstan-join,"system:capstan:join"' % join in tokens, tokens
    kubeconfig = read(os.path.join(d.data, "admin.kubeconfig"))
    assert "server: %s" % d.url in kubeconfig, kubeconfig
    assert "current-context: capstan" in kubeconfig
    # The serving certificate covers the configured names (checked by TLS
    # name verification against the cluster CA).
    for host in ("127.0.0.1", "localhost", "capstan.example", "10.9.8.7"):
        c = d.context(cert=False)
        with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
            with c.wrap_socket(s, server_hostname=host) as t:
                assert t.version() in ("TLSv1.2", "TLSv1.3")
    with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
        try:
            d.context(cert=False).wrap_socket(s, server_hostname="other.example")
            raise AssertionError("the serving cert should not cover other.example")
        except ssl.SSLCertVerificationError:
            pass
    assert d.request("GET", "/healthz", cert=False) == (200, b"ok")
    assert d.stop() == 0
    assert "shutting down" in d.proc.log()


@test(timeout=90)
def restart_keeps_data(ctx):
    d = Daemon(ctx)
    d.start("--init")
    d.wait_ready()
    status, body = d.request("PUT", "/capstan/v1/store/test/restart", body=b"kept value")
    assert status == 200, (status, body)
    rev = json.loads(body)["modRevision"]
    assert d.stop() == 0
    key_before = read(d.pki("ca.crt"))
    # --init on a data directory that holds state is ignored.
    d.start("--init")
    d.wait_ready()
    assert "--init ignored" in d.proc.log()
    assert read(d.pki("ca.crt")) == key_before
    status, body = d.request("GET", "/capstan/v1/store/test/restart")
    assert status == 200, (status, body)
    obj = json.loads(body)
    import base64
    assert base64.b64decode(obj["value"]) == b"kept value", obj
    assert obj["modRevision"] == rev
    assert d.stop() == 0


@test(timeout=90)
def corrupt_segment_exits_1(ctx):
    d = Daemon(ctx)
    d.start("--init")
    d.wait_ready()
    for i in range(20):
        status, body = d.request("PUT", "/capstan/v1/store/test/k%d" % i, body=b"x" * 100)
        assert status == 200, (status, body)
    assert d.stop() == 0
    # A restart turns the open segment into a closed one.
    d.start()
    d.wait_ready()
    assert d.stop() == 0
    raft = os.path.join(d.data, "raft")
    closed = [p for p in glob.glob(os.path.join(raft, "*"))
              if re.match(r"^\d{16}-\d{16}$", os.path.basename(p))]
    assert closed, os.listdir(raft)
    seg = max(closed, key=os.path.getsize)
    size = os.path.getsize(seg)
    with open(seg, "r+b") as f:
        f.seek(size // 2)
        data = f.read(16)
        f.seek(size // 2)
        f.write(bytes(b ^ 0xFF for b in data))
    # libraft 0.15 leaks a buffer when loading a corrupt segment fails
    # (inside libraft, after raft_close): not ours to report.
    supp = ctx.path("lsan.supp")
    with open(supp, "w") as f:
        f.write("leak:libraft.so\n")
    lsan = os.environ.get("LSAN_OPTIONS", "")
    d.proc = ctx.spawn("%s-corrupt" % d.name, d.argv(), env={
        "LSAN_OPTIONS": (lsan + ":" if lsan else "") + "suppressions=" + supp})
    code = d.proc.wait(timeout=30)
    assert code == 1, code
    log = d.proc.log()
    errors = [l for l in log.splitlines() if " error: " in l]
    assert len(errors) == 1, log
    assert "cannot start the replica" in errors[0], errors


@test(timeout=60)
def port_or_data_dir_in_use_exits_1(ctx):
    d = Daemon(ctx)
    d.start("--init")
    d.wait_ready()
    # The same data directory: refused before touching it.
    r = ctx.run(d.argv(), check=False, timeout=20)
    assert r.returncode == 1, r
    assert "in use by another capstand" in r.stderr
    # Another data directory, the same HTTPS port.
    other = Daemon(ctx, "m2")
    other.port = d.port
    r = ctx.run(other.argv("--init"), check=False, timeout=30)
    assert r.returncode == 1, r
    errors = [l for l in r.stderr.splitlines() if " error: " in l]
    assert any("cannot serve the API on 127.0.0.1:%d: Address already in use" % d.port in l
               for l in errors), r.stderr
    # http/ may log the same failure itself; nothing else may be reported.
    assert all(str(d.port) in l for l in errors), r.stderr
    assert d.stop() == 0


@test(timeout=60)
def sigterm_while_joining_exits_0(ctx):
    # The seed does not answer yet: capstand keeps retrying, and a signal
    # still stops it at once and cleanly.
    ca = ctx.path("ca.crt")
    with open(ca, "w") as f:
        f.write("not used before a connection exists\n")
    d = Daemon(ctx)
    d.start("--join", "https://127.0.0.1:%d" % free_port(), "--token", "t",
            "--join-ca", ca, "--log-level", "debug")
    ctx.wait_for("a retry", lambda: "retrying" in d.proc.log(), timeout=20)
    start = time.monotonic()
    assert d.stop(timeout=10) == 0
    assert time.monotonic() - start < 5
    assert not os.path.exists(os.path.join(d.data, "id"))


@test(timeout=120)
def join_adds_a_member(ctx):
    seed = Daemon(ctx, "m1")
    seed.start("--init")
    seed.wait_ready()
    token = read(os.path.join(seed.data, "join.token")).strip()
    # A wrong token is refused before anything is set up.
    bad = Daemon(ctx, "bad")
    r = ctx.run(bad.argv("--join", seed.url, "--token", "wrong", "--join-ca",
                         seed.pki("ca.crt")), check=False, timeout=60)
    assert r.returncode == 1, r
    assert "join token was refused" in r.stderr, r.stderr
    # The right one: the new replica shares the CA and tokens and becomes
    # a member.
    m2 = Daemon(ctx, "m2")
    m2.start("--join", seed.url, "--token", token, "--join-ca", seed.pki("ca.crt"))
    ctx.wait_for("m2 joined", lambda: os.path.exists(os.path.join(m2.data, "joined")),
                 timeout=60)
    assert read(m2.pki("ca.crt")) == read(seed.pki("ca.crt"))
    assert read(os.path.join(m2.data, "tokens.csv")) == read(os.path.join(seed.data, "tokens.csv"))
    new_id = int(read(os.path.join(m2.data, "id")))
    assert new_id > 1
    status, body = seed.request("GET", "/capstan/v1/cluster")
    assert status == 200, (status, body)
    members = {m["id"]: m for m in json.loads(body)["members"]}
    assert new_id in members, members
    assert members[new_id]["apiURL"] == m2.url
    m2.wait_status("/readyz")
    # The joined replica serves the same data.
    status, _ = seed.request("PUT", "/capstan/v1/store/test/joined", body=b"j")
    assert status == 200
    ctx.wait_for("m2 sees the write", lambda: m2.request(
        "GET", "/capstan/v1/store/test/joined")[0] == 200, timeout=20)
    # A restart before DATA/joined exists repeats the (idempotent) request.
    assert m2.stop() == 0
    os.unlink(os.path.join(m2.data, "joined"))
    m2.start()
    ctx.wait_for("m2 joined again", lambda: os.path.exists(os.path.join(m2.data, "joined")),
                 timeout=60)
    assert "asking %s to add this replica" % seed.url in m2.proc.log()
    assert int(read(os.path.join(m2.data, "id"))) == new_id
    # Removed from the cluster: m2 stops by itself with status 0.
    status, body = seed.request("DELETE", "/capstan/v1/cluster/members/%d" % new_id)
    assert status == 200, (status, body)
    assert m2.proc.wait(timeout=30) == 0
    assert "removed from the cluster" in m2.proc.log()
    assert seed.stop() == 0


if __name__ == "__main__":
    main()
