#!/usr/bin/env python3
"""Every long flag that --help prints is documented in the man page of its
program (capstan --help and each capstan COMMAND --help in capstan(1),
capstand --help in capstand(8), capstan-node --help in capstan-node(8)),
and `man --warnings -l` reports nothing for any page of man/."""

import glob
import os
import re
import shutil

from capstantest import test, main, program

SRCDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MANDIR = os.path.join(SRCDIR, "man")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*[a-z0-9]")


def man_text(page):
    """The roff source with escapes reduced to plain text."""
    with open(os.path.join(MANDIR, page)) as f:
        s = f.read()
    s = s.replace("\\-", "-").replace("\\(em", "-").replace("\\(en", "-")
    s = re.sub(r"\\f[BIRP]|\\f\(..|\\f\[[A-Z]*\]|\\&|\\c", "", s)
    return s


def flags_of(ctx, argv):
    r = ctx.run(argv, check=False, timeout=30)
    assert r.returncode == 0, "%s exited %d: %s" % (" ".join(argv), r.returncode, r.stderr)
    return set(FLAG.findall(r.stdout))


def commands(ctx):
    """Command names listed under "Commands:" of capstan --help."""
    out = ctx.run([program("capstan"), "--help"], timeout=30).stdout
    cmds, inside = [], False
    for line in out.splitlines():
        if line.startswith("Commands:"):
            inside = True
            continue
        if inside:
            if not line.strip():
                break
            m = re.match(r"  ([a-z][a-z-]*)", line)
            if m and m.group(1) not in cmds:
                cmds.append(m.group(1))
    return cmds


def missing(flags, text):
    return sorted(f for f in flags
                  if not re.search(re.escape(f) + r"(?![a-z0-9-])", text))


@test(timeout=60)
def help_flags_in_man_pages(ctx):
    capstan = man_text("capstan.1")
    cmds = commands(ctx)
    for must in ("get", "apply", "delete", "describe", "wait", "rollout", "store"):
        assert must in cmds, cmds
    problems = []
    m = missing(flags_of(ctx, [program("capstan"), "--help"]), capstan)
    if m:
        problems.append("capstan --help: %s not in capstan.1" % ", ".join(m))
    for cmd in cmds:
        if cmd == "version":
            continue
        m = missing(flags_of(ctx, [program("capstan"), cmd, "--help"]), capstan)
        if m:
            problems.append("capstan %s --help: %s not in capstan.1" % (cmd, ", ".join(m)))
    for prog, page in (("capstand", "capstand.8"), ("capstan-node", "capstan-node.8")):
        m = missing(flags_of(ctx, [program(prog), "--help"]), man_text(page))
        if m:
            problems.append("%s --help: %s not in %s" % (prog, ", ".join(m), page))
    assert not problems, "\n".join(problems)


@test(timeout=60)
def man_pages_without_warnings(ctx):
    man = shutil.which("man")
    assert man is not None, "man (package man-db) is not installed: scripts/install-deps.sh"
    pages = sorted(glob.glob(os.path.join(MANDIR, "*.[1-8]")))
    assert len(pages) >= 4, pages
    for page in pages:
        r = ctx.run([man, "--warnings", "-l", page], check=False, timeout=30,
                    env={"MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat",
                         "LC_ALL": "C.UTF-8"})
        assert r.returncode == 0, (page, r.returncode, r.stderr)
        assert r.stderr.strip() == "", "%s: %s" % (os.path.basename(page), r.stderr)


if __name__ == "__main__":
    main()
