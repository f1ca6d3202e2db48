"""Shared pieces of the benchmarks in tests/bench: clusters, load, memory.

Starts a 3-member etcd 3.4 cluster and a 3-replica capstan cluster on
loopback in a temporary directory, runs tests/bench/loadgen against
them, and reads the memory and CPU of their processes from /proc.
Every process started here is ended by PID (SIGTERM, then SIGKILL).
Python 3 standard library only.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUILDDIR = os.environ.get("CAPSTAN_BUILDDIR") or os.getcwd()
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def program(name):
    """Path of a program built in the build tree."""
    return os.path.join(BUILDDIR, name)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


_used_ports = set()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _used_ports:
            _used_ports.add(port)
            return port


def wait_for(what, fn, timeout=30, interval=0.05):
    """Calls fn until it returns a true value; raises after timeout."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            v = fn()
            if v:
                return v
        except Exception as ex:  # keep trying; report the last one
            last = ex
        time.sleep(interval)
    raise RuntimeError("timed out waiting for %s (last error: %r)" % (what, last))


# ------------------------------------------------------------ /proc


def rss_kib(pid):
    """VmRSS of a process in KiB (None if it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_seconds(pid):
    """User + system CPU time of a process so far, in seconds."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def system_busy_seconds():
    """CPU seconds all CPUs spent busy (not idle or iowait) since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLK_TCK


def settle_disk(timeout=10.0):
    """Flushes dirty pages and waits (up to timeout) until the kernel has
    written them back, so that a measurement does not pay for the writes
    of the one before it (an earlier system's log and snapshots)."""
    os.sync()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with open("/proc/meminfo") as f:
            kb = {l.split(":")[0]: int(l.split()[1]) for l in f if l.startswith(("Dirty:", "Writeback:"))}
        if kb.get("Dirty", 0) + kb.get("Writeback", 0) < 4096:
            break
        time.sleep(0.1)
    time.sleep(1.0)


def machine():
    """One line describing the machine and its load."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    return "%d CPUs (%s), %d MiB RAM, load average %s" % (
        os.cpu_count(), model, mem, load)


def loadavg1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


# ------------------------------------------------------------ processes


class Proc:
    """A started process with its log file."""

    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        logf = open(log_path, "ab")
        e = dict(os.environ)
        if env:
            e.update(env)
        self.popen = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=e)
        logf.close()
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            os.kill(self.pid, sig)
        if sig == signal.SIGKILL:
            self.popen.wait()

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL after timeout."""
        if not self.alive():
            return self.popen.returncode
        os.kill(self.pid, signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            return self.popen.wait()

    def tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read().splitlines()[-n:]
        except OSError:
            return []


def stop_pid(pid, timeout=10):
    """Ends a process that is not our child (SIGTERM, then SIGKILL)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def pid_alive(pid):
    """True if the process exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError:
        return False
    return text[text.rindex(")") + 2] != "Z"


class Workdir:
    """A temporary directory, removed at the end unless BENCH_KEEP is set."""

    def __init__(self, name):
        self.path = tempfile.mkdtemp(prefix="capstan-bench-%s-" % name)

    def sub(self, *parts):
        return os.path.join(self.path, *parts)

    def close(self, keep=False):
        if keep or os.environ.get("BENCH_KEEP"):
            log("bench: kept %s" % self.path)
        else:
            shutil.rmtree(self.path, ignore_errors=True)


# ------------------------------------------------------------ load


def loadgen(target, urls, concurrency=1, duration=None, requests=None,
            warmup=0.0, size=256, prefix="bench", start=0, rate=None,
            timeout=10.0, trace=False, extra=(), on_line=None):
    """Runs tests/bench/loadgen and returns its JSON summary (a dict) with
    "trace" (list of (start, end, ok, url_index, status)) when trace is
    set. on_line(line) sees each trace line as it arrives."""
    argv = [program("tests/bench/loadgen"), "--target", target,
            "--concurrency", str(concurrency), "--size", str(size),
            "--prefix", prefix, "--start", str(start),
            "--warmup", str(warmup), "--timeout", str(timeout)]
    for u in urls:
        argv += ["--url", u]
    if duration is not None:
        argv += ["--duration", str(duration)]
    if requests is not None:
        argv += ["--requests", str(requests)]
    if rate:
        argv += ["--rate", str(rate)]
    if trace:
        argv.append("--trace")
    argv += list(extra)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    events = []
    summary = None
    for line in p.stdout:
        if line.startswith("ev "):
            f = line.split()
            ev = (float(f[1]), float(f[2]), f[3] == "1", int(f[4]), int(f[5]))
            events.append(ev)
            if on_line:
                on_line(ev)
        elif line.startswith("{"):
            summary = json.loads(line)
    err = p.stderr.read()
    rc = p.wait()
    if rc != 0 or summary is None:
        raise RuntimeError("loadgen exited %d: %s" % (rc, err.strip()))
    summary["stderr"] = err.strip().splitlines()
    if trace:
        summary["trace"] = events
    return summary


class LoadgenProc:
    """loadgen running in the background with --trace; events() reads the
    lines that arrived so far without blocking for long."""

    def __init__(self, target, urls, rate, concurrency=16, duration=3600,
                 timeout=2.0, prefix="failover", start=0, extra=()):
        argv = [program("tests/bench/loadgen"), "--target", target,
                "--concurrency", str(concurrency), "--rate", str(rate),
                "--duration", str(duration), "--timeout", str(timeout),
                "--prefix", prefix, "--start", str(start), "--trace"]
        for u in urls:
            argv += ["--url", u]
        argv += list(extra)
        self.popen = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        self.fd = self.popen.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.buf = b""
        self.events = []

    def poll(self):
        """Reads what arrived; returns the new events."""
        new = []
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            if line.startswith(b"ev "):
                f = line.split()
                new.append((float(f[1]), float(f[2]), f[3] == b"1", int(f[4]), int(f[5])))
        self.events += new
        return new

    def ok_count(self):
        self.poll()
        return sum(1 for e in self.events if e[2])

    def stop(self):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()
        err = self.popen.stderr.read().decode(errors="replace")
        return err


# ------------------------------------------------------------ etcd


def etcdctl(endpoints, *args, timeout=10):
    r = subprocess.run(["etcdctl", "--endpoints", ",".join(endpoints),
                        "--command-timeout", "%ds" % max(1, int(timeout) - 1)]
                       + list(args), capture_output=True, text=True,
                       timeout=timeout, env=dict(os.environ, ETCDCTL_API="3"))
    if r.returncode != 0:
        raise RuntimeError("etcdctl %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


class EtcdCluster:
    """N etcd members on loopback, each with its own data dir, fsync on
    and every other setting at its default."""

    def __init__(self, workdir, n=3, flags=()):
        self.dir = workdir
        self.n = n
        self.flags = list(flags)
        self.names = ["etcd%d" % i for i in range(n)]
        self.client_ports = [free_port() for _ in range(n)]
        self.peer_ports = [free_port() for _ in range(n)]
        self.urls = ["http://127.0.0.1:%d" % p for p in self.client_ports]
        self.procs = [None] * n
        self.token = "bench-%d-%d" % (os.getpid(), int(time.time()))

    def argv(self, i):
        cluster = ",".join("%s=http://127.0.0.1:%d" % (self.names[j], self.peer_ports[j])
                           for j in range(self.n))
        return ["etcd", "--name", self.names[i],
                "--data-dir", os.path.join(self.dir, self.names[i]),
                "--listen-client-urls", self.urls[i],
                "--advertise-client-urls", self.urls[i],
                "--listen-peer-urls", "http://127.0.0.1:%d" % self.peer_ports[i],
                "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % self.peer_ports[i],
                "--initial-cluster", cluster,
                "--initial-cluster-state", "new",
                "--initial-cluster-token", self.token,
                "--logger", "zap", "--log-outputs", "stderr",
                "--log-level", "warn"] + self.flags

    def start_member(self, i):
        self.procs[i] = Proc(self.names[i], self.argv(i),
                             os.path.join(self.dir, self.names[i] + ".log"))

    def start(self, timeout=30):
        for i in range(self.n):
            self.start_member(i)
        self.wait_ready(timeout)

    def wait_ready(self, timeout=30, members=None):
        members = range(self.n) if members is None else members
        eps = [self.urls[i] for i in members]

        def ready():
            for i in members:
                if not self.procs[i].alive():
                    raise RuntimeError("etcd member %d exited: %s" % (
                        i, "\n".join(self.procs[i].tail())))
            st = self.status(eps)
            return len(st) == len(eps) and all(s["leader"] for s in st) and \
                len({s["leader"] for s in st}) == 1
        wait_for("etcd cluster ready", ready, timeout, 0.1)

    def status(self, endpoints=None):
        eps = endpoints or [self.urls[i] for i in range(self.n)
                            if self.procs[i] and self.procs[i].alive()]
        out = etcdctl(eps, "endpoint", "status", "-w", "json", timeout=5)
        res = []
        for e in json.loads(out):
            s = e["Status"]
            res.append({"endpoint": e["Endpoint"], "member": s["header"]["member_id"],
                        "leader": s.get("leader", 0), "term": s.get("raftTerm", 0)})
        return res

    def leader(self):
        """Index of the current leader."""
        for s in self.status():
            if s["member"] == s["leader"]:
                return self.urls.index(s["endpoint"])
        raise RuntimeError("no etcd leader")

    def pids(self):
        return [p.pid for p in self.procs]

    def kill(self, i):
        self.procs[i].kill(signal.SIGKILL)

    def stop(self):
        for p in self.procs:
            if p:
                p.stop()


# ------------------------------------------------------------ capstan


def capstan_ready(text):
    """True once `capstand --help` shows the bootstrap flag."""
    return "--init" in text


def capstand_available():
    try:
        r = subprocess.run([program("capstand"), "--help"], capture_output=True,
                           text=True, timeout=10)
    except OSError:
        return False
    return capstan_ready(r.stdout + r.stderr)


class CapstanCluster:
    """A local capstan cluster started with `capstan local up --masters N
    --dir DIR` and ended with `capstan local down --dir DIR` (and by PID if
    that fails). Members are found in DIR through each data directory."""

    def __init__(self, workdir, n=3, extra_up=(), config=None):
        """config: capstand settings (dict) for DIR/capstand.yaml, which
        `capstan local up` keeps when it exists and gives every master."""
        self.dir = workdir
        self.n = n
        self.extra_up = list(extra_up)
        self.config = config
        self.members = []  # dicts: data, pid, url, plain_url, token, ...

    def capstan(self, *args, timeout=120, check=True):
        r = subprocess.run([program("capstan")] + list(args), capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("capstan %s exited %d: %s %s" % (
                " ".join(args), r.returncode, r.stdout.strip(), r.stderr.strip()))
        return r

    def up(self, timeout=120):
        if self.config:
            with open(os.path.join(self.dir, "capstand.yaml"), "w") as f:
                f.write("log-level: info\n")
                for k, v in self.config.items():
                    f.write("%s: %s\n" % (k, v))
        r = self.capstan("local", "up", "--masters", str(self.n), "--dir", self.dir,
                         *self.extra_up, timeout=timeout)
        self.up_output = r.stdout + r.stderr
        self.discover()
        self.wait_ready(timeout=60)
        return r

    def discover(self):
        """Finds each member's data dir, PID, URLs and credentials."""
        self.members = discover_local(self.dir)
        if len(self.members) < self.n:
            raise RuntimeError("found %d members in %s, want %d" % (
                len(self.members), self.dir, self.n))

    def admin_token(self):
        for m in self.members:
            if m.get("token"):
                return m["token"]
        return None

    def write_urls(self):
        """URLs for loadgen plus its credential options."""
        tok = self.admin_token()
        if all(m.get("plain_url") for m in self.members) and tok:
            return [m["plain_url"] for m in self.members], ["--token", tok]
        m0 = self.members[0]
        pki = os.path.join(m0["data"], "pki")
        return [m["url"] for m in self.members], [
            "--cacert", os.path.join(pki, "ca.crt"),
            "--cert", os.path.join(pki, "admin.crt"),
            "--key", os.path.join(pki, "admin.key")]

    def get(self, i, path, timeout=2):
        """GET on member i; returns (status, parsed JSON or text)."""
        return http_get(self.members[i], path, timeout)

    def cluster_status(self, i, timeout=2):
        st, body = self.get(i, "/capstan/v1/cluster", timeout)
        if st != 200:
            raise RuntimeError("cluster status of member %d: %s %s" % (i, st, body))
        return body

    def wait_ready(self, timeout=60, members=None):
        members = range(len(self.members)) if members is None else members

        def ready():
            for i in members:
                st, _ = self.get(i, "/readyz")
                if st != 200:
                    return False
            return True
        wait_for("capstan cluster ready", ready, timeout, 0.1)

    def leader(self):
        """Index (into members) of the current leader."""
        for i, m in enumerate(self.members):
            if not pid_alive(m["pid"]):
                continue
            try:
                st = self.cluster_status(i)
            except Exception:
                continue
            lid = st.get("leaderID")
            for j, mm in enumerate(self.members):
                if str(mm["id"]) == str(lid):
                    return j
        raise RuntimeError("no capstan leader")

    def pids(self):
        return [m["pid"] for m in self.members]

    def kill(self, i):
        try:
            os.kill(self.members[i]["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_for("member %d gone" % i, lambda: not pid_alive(self.members[i]["pid"]), 10)

    def restart(self, timeout=60):
        """`capstan local up` again on the same directory restarts what is
        not running."""
        self.capstan("local", "up", "--masters", str(self.n), "--dir", self.dir,
                     *self.extra_up, timeout=timeout)
        self.discover()
        self.wait_ready(timeout=timeout)

    def down(self):
        try:
            self.capstan("local", "down", "--dir", self.dir, timeout=60, check=False)
        except Exception as ex:
            log("bench: capstan local down failed: %r" % ex)
        for m in self.members:
            if pid_alive(m["pid"]):
                stop_pid(m["pid"])
        # Replicas started by a later `local up` we have not seen yet.
        for m in discover_local(self.dir):
            if pid_alive(m["pid"]):
                stop_pid(m["pid"])


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _pid_of_data_dir(data):
    """PID of the capstand whose command line names this data dir."""
    want = os.path.realpath(data)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"capstand"):
            continue
        args = [a.decode(errors="replace") for a in argv]
        for k, a in enumerate(args):
            d = None
            if a == "--data-dir" and k + 1 < len(args):
                d = args[k + 1]
            elif a.startswith("--data-dir="):
                d = a.split("=", 1)[1]
            if d and os.path.realpath(d) == want:
                return int(name), args
    return None, None


def _arg(args, flag):
    for k, a in enumerate(args or []):
        if a == flag and k + 1 < len(args):
            return args[k + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def discover_local(top):
    """Members of a `capstan local` directory: every directory under top
    (up to two levels) holding an `id` file is a data dir."""
    found = []
    for root, dirs, files in os.walk(top):
        depth = root[len(top):].count(os.sep)
        if depth > 2:
            dirs[:] = []
            continue
        if "id" in files and os.path.isdir(os.path.join(root, "pki")):
            found.append(root)
            dirs[:] = []
    members = []
    for data in sorted(found):
        pid, args = _pid_of_data_dir(data)
        if pid is None:
            pid = -1
        cfg = {}
        conf = _arg(args, "--config")
        if conf:
            cfg = _parse_flat_yaml(conf)
        listen = _arg(args, "--listen") or cfg.get("listen")
        adv = _arg(args, "--advertise-url") or cfg.get("advertise-url")
        plain = _arg(args, "--plain-listen") or cfg.get("plain-listen")
        if not adv and listen:
            host, port = listen.rsplit(":", 1)
            adv = "https://%s:%s" % ("127.0.0.1" if host in ("0.0.0.0", "") else host, port)
        members.append({
            "data": data,
            "id": _read(os.path.join(data, "id")),
            "pid": pid,
            "url": adv,
            "plain_url": "http://%s" % plain if plain else None,
            "token": _read(os.path.join(data, "admin.token")),
            "raft": _arg(args, "--raft-address") or cfg.get("raft-address"),
        })
    return members


def _parse_flat_yaml(path):
    """key: value lines of a flat YAML file (enough for capstand's config)."""
    out = {}
    text = _read(path) or ""
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_-]+):\s*(.*?)\s*$", line)
        if m and m.group(2) and not m.group(2).startswith("#"):
            out[m.group(1)] = m.group(2).strip("'\"")
    return out


def http_get(member, path, timeout=2):
    """GET through the plain listener with the admin token when there is
    one, else over TLS with the admin client certificate."""
    import http.client
    import ssl
    if member.get("plain_url"):
        hostport = member["plain_url"][len("http://"):]
        host, port = hostport.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        headers = {"Authorization": "Bearer %s" % member["token"]} if member.get("token") else {}
    else:
        u = member["url"][len("https://"):]
        host, port = u.split("/", 1)[0].rsplit(":", 1)
        pki = os.path.join(member["data"], "pki")
        ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        ctx.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
        conn = http.client.HTTPSConnection(host, int(port), timeout=timeout, context=ctx)
        headers = {}
    try:
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        body = r.read().decode(errors="replace")
        try:
            body = json.loads(body)
        except ValueError:
            pass
        return r.status, body
    finally:
        conn.close()


# ------------------------------------------------------------ output


def table(rows, headers):
    """Formats rows (lists of strings) as an aligned text table."""
    widths = [max(len(str(r[i])) for r in [headers] + rows) for i in range(len(headers))]
    lines = ["  ".join(str(h).rjust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))
    return "\n".join(lines)


def percentile(values, p):
    """Nearest-rank percentile of a list (None if empty)."""
    if not values:
        return None
    v = sorted(values)
    k = max(1, min(len(v), int(-(-p * len(v) // 1))))
    return v[k - 1]
