"""kubectl compatibility (issue 4, "Must show"): kubectl 1.32 (the
/usr/bin/kubectl dispatcher) and the bundled 1.27 and 1.33 against a
3-master cluster, each command through the leader and through a follower.

The checks live in tests/compat/kubectl_compat.py; this file runs those
that pass today, one TAP test per (kubectl, master, check). Checks that
fail are listed with their diagnosis in tests/compat/KNOWN-FAILURES.md;
when one is fixed, take it out of NOT_YET_ALL or NOT_YET_1_27 below.

One cluster serves every test: cluster_up starts it, cluster_down ends
it by PID and checks the logs for sanitizer reports.
"""

import atexit
import os
import re
import sys
import time

from capstantest import Ctx, SRCDIR, Skip, test, main, require_kubectl
from cluster import Cluster

sys.path.insert(0, os.path.join(SRCDIR, "tests", "compat"))
import kubectl_compat as kc  # noqa: E402

# Checks that fail today (see tests/compat/KNOWN-FAILURES.md), by kubectl.
NOT_YET_ALL = set()
# None left for kubectl 1.27 alone (see KNOWN-FAILURES.md).
NOT_YET_1_27 = set()

shared = {}


def _teardown_shared():
    c = shared.pop("ctx", None)
    return c.teardown() if c is not None else []


atexit.register(_teardown_shared)


@test(timeout=150)
def cluster_up(ctx):
    require_kubectl()
    sctx = Ctx("kubectl-compat-cluster", time.monotonic() + 3600)
    shared["ctx"] = sctx
    c = Cluster(sctx).start(3)
    shared["cluster"] = c
    shared["kubeconfigs"] = kc.setup_kubeconfigs(sctx, c)
    probe = kc.Kubectl(ctx, "1.32", "/usr/bin/kubectl", shared["kubeconfigs"]["leader"],
                       "default", "probe", workdir=sctx.dir)
    ctx.wait_for("default namespace", lambda: probe.run("get", "ns", "default", check=False)
                 .returncode == 0, timeout=30)


def _make(version, binary, role, name, fn):
    ns = kc.namespace_for(version, role)

    def one(ctx):
        if not os.access(binary, os.X_OK):
            raise Skip("%s is not installed" % binary)
        assert "cluster" in shared, "no cluster"
        k = kc.Kubectl(ctx, version, binary, shared["kubeconfigs"][role], ns, ns,
                       workdir=shared["ctx"].dir)
        fn(k)
    # The name also names the test's temporary directory: no "/".
    one.__name__ = "kubectl_%s_%s_%s" % (version, role,
                                         re.sub(r"[^A-Za-z0-9.=-]+", "_", name).strip("_"))
    return one


for _version, _binary in kc.KUBECTLS:
    for _role in ("leader", "follower"):
        for _name, _fn in kc.CHECKS:
            if _name in NOT_YET_ALL or (_version == "1.27" and _name in NOT_YET_1_27):
                continue
            test(timeout=90)(_make(_version, _binary, _role, _name, _fn))


@test(timeout=60)
def cluster_down(ctx):
    c = shared.get("cluster")
    if c is None:
        require_kubectl()  # the cluster was not started for want of kubectl
    assert c is not None, "no cluster"
    dead = [m.name for m in c.masters if not m.alive()]
    findings = _teardown_shared()
    assert not dead, "masters exited during the run: %r" % dead
    assert not findings, findings


if __name__ == "__main__":
    main()
