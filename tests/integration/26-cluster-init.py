"""capstan cluster init and join: the config file written, a master started
in the background, a second one joining through it, and the refusals."""
import os
import signal
import subprocess
import time

from capstantest import test, program, main, free_port

CAPSTAN = program("capstan")
CAPSTAND = program("capstand")


def pid_of(data_dir):
    with open(os.path.join(data_dir, "capstand.pid")) as f:
        return int(f.read())


def stop(pid):
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + 15
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # Our grandchild after capstan exits: reaped by init, or by us.
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)


def master_args(d, name):
    port, raft = free_port(), free_port()
    url = "https://127.0.0.1:%d" % port
    return url, ["--config", os.path.join(d, name + ".yaml"),
                 "--data-dir", os.path.join(d, name),
                 "--listen", "127.0.0.1:%d" % port,
                 "--raft-address", "127.0.0.1:%d" % raft,
                 "--start", "background", "--capstand", CAPSTAND, "--wait", "60s"]


@test(timeout=180)
def init_then_join(ctx):
    d = ctx.dir
    pids = []
    try:
        url1, args1 = master_args(d, "m1")
        r = ctx.run([CAPSTAN, "cluster", "init"] + args1, check=False, timeout=90)
        m1 = os.path.join(d, "m1")
        if os.path.exists(os.path.join(m1, "capstand.pid")):
            pids.append(pid_of(m1))
        assert r.returncode == 0, r.stderr
        assert "cluster initialised" in r.stdout, r.stdout
        with open(os.path.join(d, "m1.yaml")) as f:
            cfg = f.read()
        assert "init: true" in cfg and m1 in cfg, cfg
        assert oct(os.stat(os.path.join(d, "m1.yaml")).st_mode & 0o777) == "0o600"
        kc = os.path.join(m1, "admin.kubeconfig")
        r = ctx.run([CAPSTAN, "--kubeconfig", kc, "cluster", "status"], check=False,
                    timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr

        with open(os.path.join(m1, "join.token")) as f:
            token = f.read().strip()
        url2, args2 = master_args(d, "m2")
        r = ctx.run([CAPSTAN, "cluster", "join", url1, "--token", token, "--ca-file",
                     os.path.join(m1, "pki", "ca.crt")] + args2, check=False, timeout=90)
        m2 = os.path.join(d, "m2")
        if os.path.exists(os.path.join(m2, "capstand.pid")):
            pids.append(pid_of(m2))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "joined the cluster" in r.stdout, r.stdout
        with open(os.path.join(d, "m2.yaml")) as f:
            cfg = f.read()
        assert "join: \"%s\"" % url1 in cfg and "init:" not in cfg, cfg
        r = ctx.run([CAPSTAN, "--kubeconfig", kc, "cluster", "members", "-o", "json"],
                    timeout=30)
        assert url2 in r.stdout and url1 in r.stdout, r.stdout

        # Refusals: a data dir that holds a member, a config with settings.
        r = ctx.run([CAPSTAN, "cluster", "init"] + args1, check=False, timeout=30)
        assert r.returncode == 5 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "already holds a member" in r.stderr, r.stderr
        url3, args3 = master_args(d, "m1")  # m1.yaml exists with settings
        args3[3] = os.path.join(d, "m3")
        r = ctx.run([CAPSTAN, "cluster", "init"] + args3, check=False, timeout=30)
        assert r.returncode == 5 and "already has settings" in r.stderr, r.stderr
    finally:
        for pid in pids:
            stop(pid)


@test(timeout=60)
def init_join_usage_errors(ctx):
    d = ctx.dir
    cases = [
        (["cluster", "join"], "exactly one URL"),
        (["cluster", "join", "https://127.0.0.1:1"], "--token"),
        (["cluster", "join", "https://127.0.0.1:1", "--token", "x"], "--ca-file"),
        (["cluster", "join", "http://127.0.0.1:1", "--token", "x"], "https://"),
        (["cluster", "init", "extra"], "no arguments"),
        (["cluster", "init", "--start", "sometimes"], "--start"),
        (["cluster", "init", "--wait", "soon"], "duration"),
    ]
    for argv, text in cases:
        r = ctx.run([CAPSTAN] + argv + ["--config", os.path.join(d, "c.yaml"),
                                        "--data-dir", os.path.join(d, "data")],
                    check=False, timeout=30)
        assert r.returncode == 2, (argv, r.returncode, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and text in r.stderr, (argv, r.stderr)
    # Nothing was written by a refused command.
    assert not os.path.exists(os.path.join(d, "c.yaml"))
    # --start none writes the config and says how to start capstand.
    r = ctx.run([CAPSTAN, "cluster", "init", "--start", "none", "--config",
                 os.path.join(d, "n.yaml"), "--data-dir", os.path.join(d, "n")], timeout=30)
    assert "capstand --config %s" % os.path.join(d, "n.yaml") in r.stdout, r.stdout
    assert os.path.exists(os.path.join(d, "n.yaml"))


if __name__ == "__main__":
    main()
