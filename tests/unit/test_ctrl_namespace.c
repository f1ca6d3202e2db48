/* The namespace controller in the simulation: a terminating namespace is
 * emptied (every namespaced kind), waits for graceful pods and finalizers,
 * reports Kubernetes' conditions, then disappears. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/ctrl_sim.h"

static const struct ctrl_ops *const ops[] = {&ctrl_namespace_ops, NULL};

static const char objects_yaml[] =
	"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: app\n---\n"
	"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: keep\n---\n"
	"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: app\n"
	"data:\n  a: b\n---\n"
	"apiVersion: v1\nkind: Secret\nmetadata:\n  name: sec\n  namespace: app\n---\n"
	"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: default\n  namespace: app\n---\n"
	"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: app\n"
	"spec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n"
	"      labels:\n        app: web\n    spec:\n      containers:\n      - name: c\n"
	"        image: busybox\n---\n"
	"apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: l\n"
	"  namespace: app\nspec:\n  holderIdentity: x\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata:\n  name: unbound\n  namespace: app\n"
	"spec:\n  containers:\n  - name: c\n    image: busybox\n---\n"
	"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: keep\n---\n"
	"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  namespace: keep\n"
	"spec:\n  nodeName: n1\n  containers:\n  - name: c\n    image: busybox\n";

static void add_bound_pod(struct ctrl_sim *s, const char *ns, const char *name, const char *node)
{
	assert_int_equal(ctrl_sim_apply_yamlf(s,
		 "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: %s\n"
		 "spec:\n  nodeName: %s\n  containers:\n  - name: c\n    image: busybox\n",
		 name, ns, node),
			 0);
}

static bool ns_gone(struct ctrl_sim *s, void *data)
{
	return !ctrl_sim_exists(s, "namespaces", NULL, data);
}

/* Status of condition @type of namespace @ns; message to @msg. */
static const char *ns_condition(struct ctrl_sim *s, const char *ns, const char *type,
				char *msg, size_t msg_size)
{
	static char st[16];
	json_t *o = ctrl_sim_get(s, "namespaces", NULL, ns), *c;
	size_t i;

	st[0] = '\0';
	if (msg != NULL)
		msg[0] = '\0';
	json_array_foreach(json_object_get(json_object_get(o, "status"), "conditions"), i, c)
	{
		if (strcmp(json_string_value(json_object_get(c, "type")), type) != 0)
			continue;
		snprintf(st, sizeof(st), "%s", json_string_value(json_object_get(c, "status")));
		if (msg != NULL)
			snprintf(msg, msg_size, "%s", json_string_value(json_object_get(c, "message")));
	}
	json_decref(o);
	return st;
}

static size_t count_all_in(struct ctrl_sim *s, const char *ns)
{
	size_t i, n = 0;

	for (i = 0; i < api_kind_count(); i++) {
		const struct api_kind *k = api_kind_at(i);
		if (k->namespaced)
			n += ctrl_sim_count(s, k->plural, ns, NULL);
	}
	return n;
}

/* Deleting a namespace deletes every kind in it and then the namespace;
 * a graceful pod on a live node is waited for; other namespaces are left
 * alone. */
static void test_namespace_emptied_then_deleted(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	char msg[512];
	json_t *ns;

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, objects_yaml), 0);
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: Node\n"
						"metadata:\n  name: n1\n"),
			 0);
	add_bound_pod(s, "app", "running", "n1");
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_true(ctrl_sim_exists(s, "configmaps", "app", "cfg")); /* nothing before the delete */
	assert_int_equal(count_all_in(s, "app"), 7);

	assert_int_equal(ctrl_sim_delete(s, "namespaces", NULL, "app", -1), 0);
	ns = ctrl_sim_get(s, "namespaces", NULL, "app");
	assert_string_equal(ctrl_str(ns, "status.phase"), "Terminating");
	json_decref(ns);
	ctrl_sim_run(s, 2000);
	/* Everything but the graceful pod, which its node must confirm. */
	assert_int_equal(count_all_in(s, "app"), 1);
	json_t *p = ctrl_sim_get(s, "pods", "app", "running");
	assert_non_null(p);
	assert_non_null(ctrl_str(p, "metadata.deletionTimestamp"));
	json_decref(p);
	assert_true(ctrl_sim_exists(s, "namespaces", NULL, "app"));
	assert_string_equal(ns_condition(s, "app", "NamespaceContentRemaining", msg, sizeof(msg)),
			    "True");
	assert_string_equal(msg, "Some resources are remaining: pods has 1 resource instances");
	assert_string_equal(ns_condition(s, "app", "NamespaceDeletionContentFailure", NULL, 0),
			    "False");

	/* The node's agent confirms: the namespace goes. */
	ctrl_sim_kubelet(s, true);
	assert_true(ctrl_sim_run_until(s, 5000, ns_gone, "app"));
	assert_int_equal(count_all_in(s, "app"), 0);
	/* The other namespace is intact. */
	assert_true(ctrl_sim_exists(s, "namespaces", NULL, "keep"));
	assert_true(ctrl_sim_exists(s, "configmaps", "keep", "cfg"));
	assert_true(ctrl_sim_exists(s, "pods", "keep", "p"));
	ctrl_sim_free(s);
}

/* A pod bound to a node that no longer exists is deleted at once (grace 0):
 * nobody would confirm it. Deleting the node later frees a waiting pod. */
static void test_pods_of_gone_nodes(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: Namespace\n"
						"metadata:\n  name: app\n---\n"
						"apiVersion: v1\nkind: Node\n"
						"metadata:\n  name: alive\n"),
			 0);
	add_bound_pod(s, "app", "on-ghost", "ghost");
	add_bound_pod(s, "app", "on-alive", "alive");
	ctrl_sim_start(s);
	assert_int_equal(ctrl_sim_delete(s, "namespaces", NULL, "app", -1), 0);
	ctrl_sim_run(s, 1000);
	assert_false(ctrl_sim_exists(s, "pods", "app", "on-ghost"));
	assert_true(ctrl_sim_exists(s, "pods", "app", "on-alive"));
	assert_true(ctrl_sim_exists(s, "namespaces", NULL, "app"));

	/* The node goes away: its terminating pod can go too. */
	assert_int_equal(ctrl_sim_delete(s, "nodes", NULL, "alive", -1), 0);
	assert_true(ctrl_sim_run_until(s, 5000, ns_gone, "app"));
	ctrl_sim_free(s);
}

/* Objects with finalizers hold the namespace (NamespaceFinalizersRemaining)
 * until the finalizer is removed; a namespace with its own metadata
 * finalizer stays, finalized (spec.finalizers empty), until that goes. */
static void test_finalizers_hold_namespace(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	char msg[512];
	json_t *ns;

	(void)state;
	assert_int_equal(
		ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: app\n"
				       "  finalizers:\n  - example.com/ns-hold\n---\n"
				       "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n"
				       "  namespace: app\n  finalizers:\n  - example.com/hold\n"),
		0);
	ctrl_sim_start(s);
	assert_int_equal(ctrl_sim_delete(s, "namespaces", NULL, "app", -1), 0);
	ctrl_sim_run(s, 3000);
	assert_true(ctrl_sim_exists(s, "configmaps", "app", "held"));
	assert_string_equal(ns_condition(s, "app", "NamespaceFinalizersRemaining", msg, sizeof(msg)),
			    "True");
	assert_string_equal(msg, "Some content in the namespace has finalizers remaining: "
				 "example.com/hold in 1 resource instances");

	/* The finalizer's owner finishes: the update deletes the object. */
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: ConfigMap\n"
						"metadata:\n  name: held\n  namespace: app\n"),
			 0);
	assert_false(ctrl_sim_exists(s, "configmaps", "app", "held"));
	ctrl_sim_run(s, 3000);
	ns = ctrl_sim_get(s, "namespaces", NULL, "app");
	assert_non_null(ns); /* its own metadata finalizer holds it */
	assert_int_equal(json_array_size(api_json_path(ns, "spec.finalizers")), 0);
	json_decref(ns);
	assert_string_equal(ns_condition(s, "app", "NamespaceContentRemaining", NULL, 0), "False");
	assert_string_equal(ns_condition(s, "app", "NamespaceFinalizersRemaining", NULL, 0),
			    "False");

	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: Namespace\n"
						"metadata:\n  name: app\n"),
			 0);
	ctrl_sim_run(s, 1000);
	assert_false(ctrl_sim_exists(s, "namespaces", NULL, "app"));
	ctrl_sim_free(s);
}

/* A namespace already terminating when the controller starts (failover)
 * is finished by the new leader; an active namespace is never touched. */
static void test_resumes_after_restart(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	int i;

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, objects_yaml), 0);
	for (i = 0; i < 50; i++) {
		char name[32];
		snprintf(name, sizeof(name), "p%d", i);
		add_bound_pod(s, "app", name, "gone");
	}
	assert_int_equal(ctrl_sim_delete(s, "namespaces", NULL, "app", -1), 0);
	ctrl_sim_run(s, 1000);
	assert_true(ctrl_sim_exists(s, "configmaps", "app", "cfg")); /* not started yet */
	ctrl_sim_start(s);
	assert_true(ctrl_sim_run_until(s, 10000, ns_gone, "app"));
	assert_int_equal(count_all_in(s, "app"), 0);
	assert_int_equal(count_all_in(s, "keep"), 2);
	ctrl_sim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_namespace_emptied_then_deleted),
		cmocka_unit_test(test_pods_of_gone_nodes),
		cmocka_unit_test(test_finalizers_hold_namespace),
		cmocka_unit_test(test_resumes_after_restart),
	};

	return cmocka_run_group_tests_name("ctrl_namespace", tests, NULL, NULL);
}
