"""Integration test harness: TAP output, real processes on loopback.

A test file defines functions decorated with @test and ends with
`run()`. Each test runs with a timeout in its own temporary directory;
every process it starts through `ctx.spawn` is ended by PID at teardown
(SIGTERM, then SIGKILL), and its log is checked for sanitizer reports.
On failure the directory and logs are kept and their path printed.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

BUILDDIR = os.environ.get("CAPSTAN_BUILDDIR", os.getcwd())
SRCDIR = os.environ.get("CAPSTAN_SRCDIR", BUILDDIR)
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")

_tests = []


def test(timeout=60):
    """Registers a test function taking a Ctx; `timeout` in seconds."""
    def wrap(fn):
        _tests.append((fn, timeout))
        return fn
    if callable(timeout):  # used as @test without arguments
        fn, timeout = timeout, 60
        return wrap(fn)
    return wrap


def program(name):
    """Path of a program built in the build tree."""
    return os.path.join(BUILDDIR, name)


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


class TestTimeout(Exception):
    pass


class Skip(Exception):
    """Raised by a test that cannot run here; reported as a TAP skip."""


# The real kubectl: every machine of this project's kind has it, but a bare
# Debian chroot does not, and it comes from no Debian package.
KUBECTL = "/usr/bin/kubectl"


def have_kubectl():
    return os.access(KUBECTL, os.X_OK)


def require_kubectl():
    """Skips the calling test when the real kubectl is not installed."""
    if not have_kubectl():
        raise Skip("%s is not installed" % KUBECTL)


_containers = None


def require_containers():
    """Skips the calling test where runc cannot run containers at all: not
    in a chroot (runc's rootfs setup and exec fail there) and not without
    new namespaces (an unprivileged container). Call it after the root and
    runc checks."""
    global _containers
    if _containers is None:
        try:
            a, b = os.stat("/"), os.stat("/proc/1/root")
            chrooted = (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino)
        except OSError:
            # Unreadable on some VMs (init's root is off limits): not a sign.
            chrooted = False
        if chrooted or not os.path.ismount("/"):
            _containers = ("in a chroot: runc cannot set up a container's rootfs or "
                           "enter it there")
        else:
            try:
                r = subprocess.run(["unshare", "--mount", "--net", "--uts", "--ipc", "--pid",
                                    "--fork", "true"], capture_output=True, timeout=30)
                _containers = True if r.returncode == 0 else (
                    "cannot create namespaces: %s" % r.stderr.decode(errors="replace").strip())
            except (OSError, subprocess.TimeoutExpired) as e:
                _containers = "cannot create namespaces: %s" % e
    if _containers is not True:
        raise Skip(_containers)


class Proc:
    def __init__(self, name, popen, log_path):
        self.name = name
        self.popen = popen
        self.pid = popen.pid
        self.log_path = log_path

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout=10):
        return self.popen.wait(timeout=timeout)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


class Ctx:
    def __init__(self, name, deadline):
        self.name = name
        self.deadline = deadline
        self.dir = tempfile.mkdtemp(prefix="capstan-test-%s-" % name)
        self.procs = []
        self.notes = []

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def remaining(self):
        return self.deadline - time.monotonic()

    def spawn(self, name, argv, env=None, **kw):
        """Starts argv with stdout and stderr in DIR/NAME.log."""
        log_path = self.path(name + ".log")
        logf = open(log_path, "ab")
        e = dict(os.environ)
        if env:
            e.update(env)
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=e, **kw)
        logf.close()
        proc = Proc(name, p, log_path)
        self.procs.append(proc)
        return proc

    def run(self, argv, check=True, input=None, timeout=None, env=None):
        """Runs a command to completion; returns CompletedProcess."""
        e = dict(os.environ)
        if env:
            e.update(env)
        t = timeout if timeout is not None else max(1.0, self.remaining())
        r = subprocess.run(argv, capture_output=True, text=True, input=input,
                           timeout=t, env=e)
        if check and r.returncode != 0:
            raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s" % (
                " ".join(argv), r.returncode, r.stdout, r.stderr))
        check_sanitizer_text(" ".join(argv), r.stderr)
        return r

    def wait_for(self, what, fn, timeout=10, interval=0.05):
        """Calls fn until it returns a true value; fails after timeout."""
        end = time.monotonic() + min(timeout, max(0.1, self.remaining()))
        last = None
        while time.monotonic() < end:
            try:
                v = fn()
                if v:
                    return v
            except Exception as ex:  # keep trying; report the last one
                last = ex
            time.sleep(interval)
        raise AssertionError("timed out waiting for %s (last error: %r)" % (what, last))

    def note(self, msg):
        self.notes.append(msg)

    def teardown(self):
        """Ends every process by PID; returns sanitizer findings."""
        for p in self.procs:
            p.signal(signal.SIGTERM)
        end = time.monotonic() + 10
        for p in self.procs:
            try:
                p.popen.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.signal(signal.SIGKILL)
                p.popen.wait()
        findings = []
        for p in self.procs:
            try:
                text = p.log()
            except OSError:
                continue
            for mark in SANITIZER_MARKS:
                if mark in text:
                    findings.append("%s: sanitizer report in %s" % (p.name, p.log_path))
                    break
        return findings


def check_sanitizer_text(what, text):
    for mark in SANITIZER_MARKS:
        if text and mark in text:
            raise AssertionError("%s: sanitizer report:\n%s" % (what, text))


def _alarm(signum, frame):
    raise TestTimeout("test timed out")


def run():
    """Runs the registered tests, printing TAP."""
    only = sys.argv[1:]
    tests = [t for t in _tests if not only or t[0].__name__ in only]
    print("1..%d" % len(tests), flush=True)
    failed = 0
    for i, (fn, timeout) in enumerate(tests, 1):
        name = fn.__name__
        ctx = Ctx(name, time.monotonic() + timeout)
        signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(timeout)
        err = None
        skipped = None
        start = time.monotonic()
        try:
            fn(ctx)
        except Skip as ex:
            skipped = str(ex)
        except BaseException as ex:  # includes the timeout
            err = traceback.format_exc()
            if isinstance(ex, KeyboardInterrupt):
                raise
        finally:
            signal.alarm(0)
        try:
            findings = ctx.teardown()
        except BaseException:
            findings = ["teardown failed: " + traceback.format_exc()]
        if findings and err is None:
            err = "\n".join(findings)
        took = time.monotonic() - start
        if err is None and skipped is not None:
            print("ok %d - %s # SKIP %s" % (i, name, skipped), flush=True)
            shutil.rmtree(ctx.dir, ignore_errors=True)
        elif err is None:
            print("ok %d - %s (%.1fs)" % (i, name, took), flush=True)
            for n in ctx.notes:
                print("# %s" % n)
            shutil.rmtree(ctx.dir, ignore_errors=True)
        else:
            failed += 1
            print("not ok %d - %s (%.1fs)" % (i, name, took), flush=True)
            for line in err.rstrip().splitlines():
                print("# " + line)
            print("# logs kept in %s" % ctx.dir)
            for p in ctx.procs:
                try:
                    tail = p.log().splitlines()[-30:]
                except OSError:
                    continue
                print("# --- last lines of %s (pid %d)" % (p.log_path, p.pid))
                for line in tail:
                    print("#   " + line)
            sys.stdout.flush()
    # Failures are in the TAP stream; a non-zero exit would count twice.
    return 0


def main():
    sys.exit(run())


def load_json(text):
    return json.loads(text)
