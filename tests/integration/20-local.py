"""capstan local up/down and the first CLI commands on a real 3-master
cluster: membership, status, the store through different masters, a
killed member restarted from its data, and exit codes."""
import json
import os
import re
import signal
import subprocess
import time

from capstantest import test, program, main

CAPSTAN = program("capstan")


class LocalProc:
    """A capstand started by `capstan local up` (not our child), shaped
    like the harness's Proc so that teardown ends it by PID and checks
    its log for sanitizer reports."""

    def __init__(self, name, pid, data_dir):
        self.name = name
        self.pid = pid
        self.data_dir = data_dir
        self.log_path = os.path.join(data_dir, "capstand.log")
        self.popen = self  # teardown calls popen.wait()

    def alive(self):
        try:
            with open("/proc/%d/stat" % self.pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            with open("/proc/%d/cmdline" % self.pid, "rb") as f:
                args = f.read().split(b"\0")
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X") and self.data_dir.encode() in args

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout=10):
        end = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > end:
                raise subprocess.TimeoutExpired("capstand", timeout)
            time.sleep(0.05)
        return 0

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


def register(ctx, d):
    """Hands every capstand named by DIR/m*/capstand.pid to the harness."""
    pids = {}
    for name in sorted(os.listdir(d)):
        pidfile = os.path.join(d, name, "capstand.pid")
        if not re.fullmatch(r"m\d+", name) or not os.path.exists(pidfile):
            continue
        with open(pidfile) as f:
            pid = int(f.read().strip())
        pids[name] = pid
        if not any(p.pid == pid for p in ctx.procs):
            ctx.procs.append(LocalProc("%s-%d" % (name, pid), pid, os.path.join(d, name)))
    return pids


def capstan(ctx, *args, check=True, timeout=None):
    return ctx.run([CAPSTAN] + list(args), check=check, timeout=timeout)


def one_line_error(r):
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def layout_ports(d):
    """{name: https port} from DIR/local.yaml."""
    ports, name = {}, None
    with open(os.path.join(d, "local.yaml")) as f:
        for line in f:
            m = re.match(r"\s*- name: (m\d+)", line)
            if m:
                name = m.group(1)
            m = re.match(r"\s*listen: 127\.0\.0\.1:(\d+)", line)
            if m and name:
                ports[name] = int(m.group(1))
    return ports


def local_up(ctx, d, *extra):
    try:
        r = capstan(ctx, "local", "up", "--dir", d, "--timeout", "90s", *extra,
                    check=False, timeout=300)
    finally:
        register(ctx, d)
    assert r.returncode == 0, "local up exited %d\nstdout: %s\nstderr: %s" % (
        r.returncode, r.stdout, r.stderr)
    return r


def dead(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


@test(timeout=600)
def local_cluster_lifecycle(ctx):
    d = ctx.path("cluster")
    kc = os.path.join(d, "kubeconfig")
    try:
        r = local_up(ctx, d, "--masters", "3")
        assert "kubeconfig: " + kc in r.stdout, r.stdout
        assert "local down --dir " + d in r.stdout, r.stdout
        assert os.path.exists(kc)

        # Three voters and a leader among them.
        r = capstan(ctx, "--kubeconfig", kc, "cluster", "members", "-o", "json")
        st = json.loads(r.stdout)
        members = st["members"]
        assert len(members) == 3, members
        assert all(m["role"] == "voter" for m in members), members
        assert st["leaderID"] in [m["id"] for m in members], st
        ids = {}
        for name in ("m1", "m2", "m3"):
            with open(os.path.join(d, name, "id")) as f:
                ids[name] = int(f.read().strip())
        assert sorted(ids.values()) == sorted(m["id"] for m in members), (ids, members)

        r = capstan(ctx, "cluster", "members", "--kubeconfig", kc)
        assert r.stdout.startswith("ID"), r.stdout
        assert "*" in r.stdout and r.stdout.count("voter") == 3, r.stdout
        r = capstan(ctx, "--kubeconfig", kc, "cluster", "status")
        assert "ready voters: 3 of 3" in r.stdout, r.stdout

        # A write through m1 is read back through m2 and m3 (linearizable
        # reads on followers), and the other way round.
        ports = layout_ports(d)
        via = {n: "https://127.0.0.1:%d" % p for n, p in ports.items()}
        capstan(ctx, "--kubeconfig", kc, "--server", via["m1"], "store", "put", "/cli-test/a", "hello")
        for n in ("m2", "m3"):
            r = capstan(ctx, "--kubeconfig", kc, "--server", via[n], "store", "get", "/cli-test/a")
            assert r.stdout == "hello", (n, r.stdout)
        ctx.run([CAPSTAN, "--kubeconfig", kc, "--server", via["m3"], "store", "put",
                     "/cli-test/b", "-f", "-"], input="from m3")
        r = capstan(ctx, "--kubeconfig", kc, "--server", via["m1"], "store", "get", "/cli-test/b")
        assert r.stdout == "from m3", r.stdout
        r = capstan(ctx, "--kubeconfig", kc, "store", "list", "/cli-test/", "-o", "keys", "--limit", "1")
        assert r.stdout.split() == ["/cli-test/a", "/cli-test/b"], r.stdout
        # The watch replays both writes from history, then exits.
        r = capstan(ctx, "--kubeconfig", kc, "store", "watch", "/cli-test/", "--from-revision", "1",
                    "--max-events", "2", timeout=30)
        lines = r.stdout.splitlines()
        assert [l.split()[0] for l in lines] == ["PUT", "PUT"], r.stdout
        assert lines[0].endswith("/cli-test/a hello") and lines[1].endswith("/cli-test/b from m3"), r.stdout
        # Exit codes of the store: conflict 5, not found 4.
        r = capstan(ctx, "--kubeconfig", kc, "store", "put", "/cli-test/a", "x", "--create", check=False)
        assert r.returncode == 5, (r.returncode, r.stderr)
        one_line_error(r)
        r = capstan(ctx, "--kubeconfig", kc, "store", "get", "/cli-test/none", check=False)
        assert r.returncode == 4, (r.returncode, r.stderr)
        one_line_error(r)
        capstan(ctx, "--kubeconfig", kc, "store", "put", "/cli-test/c", "gone soon")
        capstan(ctx, "--kubeconfig", kc, "store", "delete", "/cli-test/c")
        r = capstan(ctx, "--kubeconfig", kc, "store", "delete", "/cli-test/c", check=False)
        assert r.returncode == 4, (r.returncode, r.stderr)

        # Kill m2 by PID; local up restarts only it, from its data.
        before = register(ctx, d)
        os.kill(before["m2"], signal.SIGKILL)
        ctx.wait_for("m2 to die", lambda: dead(before["m2"]), timeout=10)
        r = local_up(ctx, d)
        assert re.search(r"m1: already running", r.stdout), r.stdout
        assert re.search(r"m3: already running", r.stdout), r.stdout
        assert re.search(r"m2: started capstand \(restart\)", r.stdout), r.stdout
        after = register(ctx, d)
        assert after["m1"] == before["m1"] and after["m3"] == before["m3"], (before, after)
        assert after["m2"] != before["m2"], (before, after)
        assert layout_ports(d) == ports
        with open(os.path.join(d, "m2", "id")) as f:
            assert int(f.read().strip()) == ids["m2"]
        r = capstan(ctx, "--kubeconfig", kc, "--server", via["m2"], "store", "get", "/cli-test/a")
        assert r.stdout == "hello", r.stdout
        r = capstan(ctx, "--kubeconfig", kc, "cluster", "members", "-o", "json")
        assert len(json.loads(r.stdout)["members"]) == 3, r.stdout

        # local up on a running cluster changes nothing.
        r = local_up(ctx, d)
        assert "started" not in r.stdout, r.stdout
        assert register(ctx, d) == after

        # local down ends every capstand.
        r = capstan(ctx, "local", "down", "--dir", d, timeout=60)
        for name, pid in after.items():
            assert dead(pid), (name, pid)
            assert not os.path.exists(os.path.join(d, name, "capstand.pid"))
        # A dead cluster: exit 3, one line.
        r = capstan(ctx, "--kubeconfig", kc, "--request-timeout", "5s", "cluster", "members",
                    check=False)
        assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
        one_line_error(r)
        r = capstan(ctx, "local", "down", "--dir", d)
        assert "nothing was running" in r.stdout, r.stdout
    finally:
        # Whatever happened above, no capstand outlives the test.
        ctx.run([CAPSTAN, "local", "down", "--dir", d], check=False, timeout=60)
        register(ctx, d)


@test(timeout=60)
def bad_usage_exits_2(ctx):
    d = ctx.path("unused")
    cases = [
        ["local", "up", "--masters", "0", "--dir", d],
        ["local", "up", "--masters", "many", "--dir", d],
        ["local", "up"],
        ["local", "sideways", "--dir", d],
        ["local", "down", "--dir", d, "--masters", "3"],
        ["cluster"],
        ["cluster", "remove", "abc"],
        ["cluster", "members", "extra"],
        ["store", "put", "/k"],
        ["store", "get", "no-slash"],
        ["store", "list", "/", "--limit", "-1"],
        ["--request-timeout", "soon", "store", "get", "/k"],
    ]
    for argv in cases:
        r = capstan(ctx, *argv, check=False)
        assert r.returncode == 2, (argv, r.returncode, r.stderr)
        line = one_line_error(r)
        assert line.startswith("capstan: "), (argv, line)
    assert not os.path.exists(d), "bad usage must not create the directory"


@test(timeout=60)
def down_on_an_empty_dir_and_purge(ctx):
    d = ctx.path("empty")
    r = capstan(ctx, "local", "down", "--dir", d)
    assert r.returncode == 0
    os.makedirs(os.path.join(d, "m1"))
    with open(os.path.join(d, "m1", "capstand.pid"), "w") as f:
        f.write("%d\n" % os.getpid())  # a live process that is not capstand
    with open(os.path.join(d, "keep-me"), "w") as f:
        f.write("not ours\n")
    r = capstan(ctx, "local", "down", "--dir", d, "--purge")
    assert "nothing was running" in r.stdout, r.stdout
    assert os.path.exists("/proc/%d" % os.getpid())
    assert sorted(os.listdir(d)) == ["keep-me"], os.listdir(d)


if __name__ == "__main__":
    main()
