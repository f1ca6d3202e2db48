"""Every program answers --help and --version and rejects bad usage."""
import os
import re

from capstantest import test, program, main

PROGRAMS = ["capstand", "capstan-node", "capstan"]


@test(timeout=30)
def help_and_version(ctx):
    for name in PROGRAMS:
        r = ctx.run([program(name), "--help"])
        assert r.stdout.startswith("Usage: " + name), r.stdout
        assert "--version" in r.stdout
        r = ctx.run([program(name), "--version"])
        first = r.stdout.splitlines()[0]
        assert re.match(r"^%s \d+\.\d+\.\d+( \(git [0-9a-f]+(-dirty)?\))?$" % re.escape(name), first), first
        assert "libraft" in r.stdout


@test(timeout=30)
def version_has_git_revision_in_a_checkout(ctx):
    src = os.environ.get("CAPSTAN_SRCDIR", ".")
    if ctx.run(["git", "-C", src, "rev-parse", "--verify", "-q", "HEAD"], check=False).returncode != 0:
        ctx.note("not a git checkout with commits; skipped the revision check")
        return
    r = ctx.run([program("capstan"), "--version"])
    assert "(git " in r.stdout, r.stdout


@test(timeout=30)
def bad_usage_exits_2_with_one_line(ctx):
    for name in PROGRAMS:
        r = ctx.run([program(name), "--no-such-flag"], check=False)
        assert r.returncode == 2, (name, r.returncode)
        assert r.stderr.strip(), name
    r = ctx.run([program("capstan"), "no-such-command"], check=False)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "no-such-command" in r.stderr


if __name__ == "__main__":
    main()
