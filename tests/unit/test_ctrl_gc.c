/* The garbage collector in the simulation: background cascades, foreground
 * deletion with blockOwnerDeletion, orphaning, several owners, a chain of
 * three kinds and cluster-scoped owners. Only the GC runs: the owners'
 * own controllers (ReplicaSet, Deployment) are not there to interfere. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/ctrl_sim.h"

static const struct ctrl_ops *const ops[] = {&ctrl_gc_ops, NULL};

/* ------------------------------------------------------------ helpers */

static const char ns_yaml[] = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: default\n";

static void add_rs(struct ctrl_sim *s, const char *name, const char *owner_ref,
		   const char *finalizer)
{
	char yaml[2048], fin[128] = "";

	if (finalizer != NULL)
		snprintf(fin, sizeof(fin), "  finalizers:\n  - %s\n", finalizer);
	snprintf(yaml, sizeof(yaml),
		 "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: %s\n"
		 "  namespace: default\n%s%s"
		 "spec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: %s\n"
		 "  template:\n    metadata:\n      labels:\n        app: %s\n"
		 "    spec:\n      containers:\n      - name: c\n        image: busybox\n",
		 name, fin, owner_ref != NULL ? owner_ref : "", name, name);
	assert_int_equal(ctrl_sim_apply_yaml(s, yaml), 0);
}

static void add_deploy(struct ctrl_sim *s, const char *name, const char *finalizer)
{
	char yaml[2048], fin[128] = "";

	if (finalizer != NULL)
		snprintf(fin, sizeof(fin), "  finalizers:\n  - %s\n", finalizer);
	snprintf(yaml, sizeof(yaml),
		 "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: %s\n"
		 "  namespace: default\n%s"
		 "spec:\n  selector:\n    matchLabels:\n      app: %s\n"
		 "  template:\n    metadata:\n      labels:\n        app: %s\n"
		 "    spec:\n      containers:\n      - name: c\n        image: busybox\n",
		 name, fin, name, name);
	assert_int_equal(ctrl_sim_apply_yaml(s, yaml), 0);
}

static char *uid_of(struct ctrl_sim *s, const char *plural, const char *ns, const char *name)
{
	json_t *o = ctrl_sim_get(s, plural, ns, name);
	char *uid;

	assert_non_null(o);
	uid = strdup(ctrl_str(o, "metadata.uid"));
	json_decref(o);
	return uid;
}

/* An ownerReferences block (YAML, metadata level) naming one owner. */
static void owner_ref(struct ctrl_sim *s, char *buf, size_t size, const char *api_version,
		      const char *kind, const char *plural, const char *ns, const char *name,
		      bool block)
{
	char *uid = uid_of(s, plural, ns, name);

	snprintf(buf, size,
		 "  ownerReferences:\n  - apiVersion: %s\n    kind: %s\n    name: %s\n"
		 "    uid: %s\n    controller: true\n    blockOwnerDeletion: %s\n",
		 api_version, kind, name, uid, block ? "true" : "false");
	free(uid);
}

static void add_pod(struct ctrl_sim *s, const char *name, const char *refs, const char *node)
{
	char yaml[2048], nn[128] = "";

	if (node != NULL)
		snprintf(nn, sizeof(nn), "  nodeName: %s\n", node);
	snprintf(yaml, sizeof(yaml),
		 "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: default\n%s"
		 "spec:\n%s  containers:\n  - name: c\n    image: busybox\n",
		 name, refs != NULL ? refs : "", nn);
	assert_int_equal(ctrl_sim_apply_yaml(s, yaml), 0);
}

static bool exists(struct ctrl_sim *s, const char *plural, const char *name)
{
	return ctrl_sim_exists(s, plural, strcmp(plural, "nodes") == 0 ? NULL : "default", name);
}

static bool deleting(struct ctrl_sim *s, const char *plural, const char *name)
{
	return ctrl_sim_deleting(s, plural, "default", name);
}

static size_t n_refs(struct ctrl_sim *s, const char *plural, const char *name)
{
	json_t *o = ctrl_sim_get(s, plural, "default", name);
	size_t n;

	assert_non_null(o);
	n = json_array_size(api_json_path(o, "metadata.ownerReferences"));
	json_decref(o);
	return n;
}

struct gone {
	const char *plural, *name;
};

static bool is_gone(struct ctrl_sim *s, void *data)
{
	const struct gone *g = data;

	return !exists(s, g->plural, g->name);
}

/* ------------------------------------------------------------ tests */

/* Background: the owner is gone at once; its dependents follow; objects
 * it does not own stay. */
static void test_background(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	char refs[512];

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, ns_yaml), 0);
	add_rs(s, "rs1", NULL, NULL);
	owner_ref(s, refs, sizeof(refs), "apps/v1", "ReplicaSet", "replicasets", "default", "rs1",
		  true);
	add_pod(s, "a", refs, NULL);
	add_pod(s, "b", refs, NULL);
	add_pod(s, "free", NULL, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_true(exists(s, "pods", "a")); /* a live owner keeps them */
	assert_true(exists(s, "pods", "b"));

	assert_int_equal(ctrl_sim_delete(s, "replicasets", "default", "rs1", -1), 0);
	assert_false(exists(s, "replicasets", "rs1"));
	ctrl_sim_run(s, 100);
	assert_false(exists(s, "pods", "a"));
	assert_false(exists(s, "pods", "b"));
	assert_true(exists(s, "pods", "free"));
	ctrl_sim_free(s);
}

/* Foreground: the owner (finalizer foregroundDeletion) stays until its
 * blocking dependents are gone; non-blocking ones are deleted but not
 * waited for. */
static void test_foreground(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	char block[512], noblock[512];

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, ns_yaml), 0);
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: Node\n"
						"metadata:\n  name: n1\n"),
			 0);
	add_rs(s, "rs1", NULL, "foregroundDeletion");
	owner_ref(s, block, sizeof(block), "apps/v1", "ReplicaSet", "replicasets", "default",
		  "rs1", true);
	owner_ref(s, noblock, sizeof(noblock), "apps/v1", "ReplicaSet", "replicasets", "default",
		  "rs1", false);
	add_pod(s, "blocker", block, "n1");     /* graceful: waits for its node */
	add_pod(s, "nonblocker", noblock, "n1"); /* graceful too, not waited for */
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_true(exists(s, "replicasets", "rs1"));

	assert_int_equal(ctrl_sim_delete(s, "replicasets", "default", "rs1", -1), 0);
	assert_true(deleting(s, "replicasets", "rs1"));
	ctrl_sim_run(s, 5000);
	/* The dependents are being deleted; the owner waits for the blocker. */
	assert_true(deleting(s, "pods", "blocker"));
	assert_true(deleting(s, "pods", "nonblocker"));
	assert_true(exists(s, "replicasets", "rs1"));

	/* Their node confirms: then, and only then, the owner goes. */
	ctrl_sim_kubelet(s, true);
	struct gone g = {"replicasets", "rs1"};
	assert_true(ctrl_sim_run_until(s, 5000, is_gone, &g));
	assert_false(exists(s, "pods", "blocker"));
	ctrl_sim_free(s);
}

/* Foreground with only non-blocking dependents: the owner goes at once,
 * its dependents are deleted anyway. */
static void test_foreground_nonblocking(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	char noblock[512];

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, ns_yaml), 0);
	add_rs(s, "rs1", NULL, "foregroundDeletion");
	owner_ref(s, noblock, sizeof(noblock), "apps/v1", "ReplicaSet", "replicasets", "default",
		  "rs1", false);
	add_pod(s, "p", noblock, NULL);
	add_rs(s, "lonely", NULL, "foregroundDeletion");
	ctrl_sim_start(s);
	assert_int_equal(ctrl_sim_delete(s, "replicasets", "default", "rs1", -1), 0);
	assert_int_equal(ctrl_sim_delete(s, "replicasets", "default", "lonely", -1), 0);
	ctrl_sim_run(s, 1000);
	assert_false(exists(s, "replicasets", "rs1"));
	assert_false(exists(s, "pods", "p"));
	assert_false(exists(s, "replicasets", "lonely"));
	ctrl_sim_free(s);
}

/* Orphan: the dependents lose their reference and stay; then the owner
 * goes. */
static void test_orphan(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	char refs[512];

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, ns_yaml), 0);
	add_rs(s, "rs1", NULL, "orphan");
	owner_ref(s, refs, sizeof(refs), "apps/v1", "ReplicaSet", "replicasets", "default", "rs1",
		  true);
	add_pod(s, "a", refs, NULL);
	add_pod(s, "b", refs, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_int_equal(ctrl_sim_delete(s, "replicasets", "default", "rs1", -1), 0);
	ctrl_sim_run(s, 1000);
	assert_false(exists(s, "replicasets", "rs1"));
	assert_true(exists(s, "pods", "a"));
	assert_true(exists(s, "pods", "b"));
	assert_int_equal(n_refs(s, "pods", "a"), 0);
	assert_int_equal(n_refs(s, "pods", "b"), 0);
	ctrl_sim_run(s, 10000);
	assert_true(exists(s, "pods", "a"));
	ctrl_sim_free(s);
}

/* Several owners: losing one only drops its reference; losing the last
 * deletes the dependent. */
static void test_multiple_owners(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	char ra[512], rb[512], refs[1024], yaml[2048];

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, ns_yaml), 0);
	add_rs(s, "ra", NULL, NULL);
	add_rs(s, "rb", NULL, NULL);
	owner_ref(s, ra, sizeof(ra), "apps/v1", "ReplicaSet", "replicasets", "default", "ra",
		  false);
	owner_ref(s, rb, sizeof(rb), "apps/v1", "ReplicaSet", "replicasets", "default", "rb",
		  false);
	/* One list with both entries: drop rb's header line. */
	snprintf(refs, sizeof(refs), "%s%s", ra, strchr(rb, '\n') + 1);
	snprintf(yaml, sizeof(yaml),
		 "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared\n"
		 "  namespace: default\n%s",
		 refs);
	assert_int_equal(ctrl_sim_apply_yaml(s, yaml), 0);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_int_equal(n_refs(s, "configmaps", "shared"), 2);

	assert_int_equal(ctrl_sim_delete(s, "replicasets", "default", "ra", -1), 0);
	ctrl_sim_run(s, 1000);
	assert_true(exists(s, "configmaps", "shared"));
	assert_int_equal(n_refs(s, "configmaps", "shared"), 1);

	assert_int_equal(ctrl_sim_delete(s, "replicasets", "default", "rb", -1), 0);
	ctrl_sim_run(s, 1000);
	assert_false(exists(s, "configmaps", "shared"));
	ctrl_sim_free(s);
}

/* Deployment -> ReplicaSet -> Pod, background: the cascade crosses kinds. */
static void test_chain_background(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	char refs[512];

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, ns_yaml), 0);
	add_deploy(s, "web", NULL);
	owner_ref(s, refs, sizeof(refs), "apps/v1", "Deployment", "deployments", "default", "web",
		  true);
	add_rs(s, "web-1", refs, NULL);
	owner_ref(s, refs, sizeof(refs), "apps/v1", "ReplicaSet", "replicasets", "default",
		  "web-1", true);
	add_pod(s, "web-1-a", refs, NULL);
	add_pod(s, "web-1-b", refs, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_int_equal(ctrl_sim_count(s, "pods", "default", NULL), 2);
	assert_int_equal(ctrl_sim_delete(s, "deployments", "default", "web", -1), 0);
	ctrl_sim_run(s, 1000);
	assert_false(exists(s, "replicasets", "web-1"));
	assert_int_equal(ctrl_sim_count(s, "pods", "default", NULL), 0);
	ctrl_sim_free(s);
}

struct chain_seen {
	bool deploy_gone_before_pods;
};

static bool deploy_gone(struct ctrl_sim *s, void *data)
{
	struct chain_seen *c = data;

	if (exists(s, "deployments", "web"))
		return false;
	if (ctrl_sim_count(s, "pods", "default", NULL) > 0 || exists(s, "replicasets", "web-1"))
		c->deploy_gone_before_pods = true;
	return true;
}

/* Deployment -> ReplicaSet -> Pod, foreground: the ReplicaSet is deleted in
 * the foreground too (it has dependents), so the Deployment goes last. */
static void test_chain_foreground(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	struct chain_seen seen = {false};
	char refs[512];

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, ns_yaml), 0);
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: Node\n"
						"metadata:\n  name: n1\n"),
			 0);
	add_deploy(s, "web", "foregroundDeletion");
	owner_ref(s, refs, sizeof(refs), "apps/v1", "Deployment", "deployments", "default", "web",
		  true);
	add_rs(s, "web-1", refs, NULL);
	owner_ref(s, refs, sizeof(refs), "apps/v1", "ReplicaSet", "replicasets", "default",
		  "web-1", true);
	add_pod(s, "web-1-a", refs, "n1");
	add_pod(s, "web-1-b", refs, "n1");
	ctrl_sim_start(s);
	assert_int_equal(ctrl_sim_delete(s, "deployments", "default", "web", -1), 0);
	ctrl_sim_run(s, 3000);
	/* Pods wait for their node: everything above them waits too. */
	assert_true(deleting(s, "deployments", "web"));
	assert_true(deleting(s, "replicasets", "web-1"));
	json_t *rs = ctrl_sim_get(s, "replicasets", "default", "web-1");
	assert_string_equal(
		json_string_value(json_array_get(api_json_path(rs, "metadata.finalizers"), 0)),
		"foregroundDeletion");
	json_decref(rs);
	assert_true(deleting(s, "pods", "web-1-a"));
	assert_true(deleting(s, "pods", "web-1-b"));

	ctrl_sim_kubelet(s, true);
	assert_true(ctrl_sim_run_until(s, 10000, deploy_gone, &seen));
	assert_false(seen.deploy_gone_before_pods);
	ctrl_sim_free(s);
}

/* A cluster-scoped owner (a Node) of namespaced dependents. */
static void test_cluster_scoped_owner(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	char refs[512];

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, ns_yaml), 0);
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: Node\n"
						"metadata:\n  name: n1\n"),
			 0);
	owner_ref(s, refs, sizeof(refs), "v1", "Node", "nodes", NULL, "n1", false);
	add_pod(s, "mirror", refs, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_true(exists(s, "pods", "mirror"));
	assert_int_equal(ctrl_sim_delete(s, "nodes", NULL, "n1", -1), 0);
	ctrl_sim_run(s, 1000);
	assert_false(exists(s, "pods", "mirror"));
	ctrl_sim_free(s);
}

/* Dependents whose owner is already gone when the collector starts (a new
 * leader), or was replaced by another object of the same name (another
 * uid), are deleted. */
static void test_dangling_at_start(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	char refs[512];

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, ns_yaml), 0);
	add_rs(s, "old", NULL, NULL);
	owner_ref(s, refs, sizeof(refs), "apps/v1", "ReplicaSet", "replicasets", "default", "old",
		  true);
	add_pod(s, "of-old", refs, NULL);
	add_rs(s, "renamed", NULL, NULL);
	owner_ref(s, refs, sizeof(refs), "apps/v1", "ReplicaSet", "replicasets", "default",
		  "renamed", true);
	add_pod(s, "of-renamed", refs, NULL);
	add_rs(s, "alive", NULL, NULL);
	owner_ref(s, refs, sizeof(refs), "apps/v1", "ReplicaSet", "replicasets", "default",
		  "alive", true);
	add_pod(s, "of-alive", refs, NULL);
	/* While no collector runs: one owner goes, one is recreated. */
	assert_int_equal(ctrl_sim_delete(s, "replicasets", "default", "old", -1), 0);
	assert_int_equal(ctrl_sim_delete(s, "replicasets", "default", "renamed", -1), 0);
	add_rs(s, "renamed", NULL, NULL);
	ctrl_sim_run(s, 1000);
	assert_true(exists(s, "pods", "of-old"));

	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_false(exists(s, "pods", "of-old"));
	assert_false(exists(s, "pods", "of-renamed"));
	assert_true(exists(s, "pods", "of-alive"));
	assert_true(exists(s, "replicasets", "renamed"));
	ctrl_sim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_background),
		cmocka_unit_test(test_foreground),
		cmocka_unit_test(test_foreground_nonblocking),
		cmocka_unit_test(test_orphan),
		cmocka_unit_test(test_multiple_owners),
		cmocka_unit_test(test_chain_background),
		cmocka_unit_test(test_chain_foreground),
		cmocka_unit_test(test_cluster_scoped_owner),
		cmocka_unit_test(test_dangling_at_start),
	};

	return cmocka_run_group_tests_name("ctrl_gc", tests, NULL, NULL);
}
