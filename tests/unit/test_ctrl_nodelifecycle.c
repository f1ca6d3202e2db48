/* The node lifecycle controller in the simulation: heartbeats from Leases
 * and the Ready condition, Unknown after the grace period, taints, the
 * taint manager's evictions, and recovery. Virtual time starts at
 * 2026-01-01T00:00:00Z. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/ctrl_sim.h"

static const struct ctrl_ops *const ops[] = {&ctrl_nodelifecycle_ops, NULL};

/* A write proposed at t is in the store at t + 1 ms (ctrl_sim.h): a
 * decision due at t is visible then. */
#define WRITE_MS 1

/* ------------------------------------------------------------ helpers */

static void now_str(struct ctrl_sim *s, char *buf, size_t size, bool micro)
{
	char t[32];

	ctrl_rfc3339(ctrl_sim_now(s), t, sizeof(t));
	if (!micro) {
		snprintf(buf, size, "%s", t);
		return;
	}
	/* "...:05Z" -> "...:05.123000Z", as a kubelet writes Lease times. */
	t[strlen(t) - 1] = '\0';
	snprintf(buf, size, "%s.%03u000Z", t, (unsigned)(ctrl_sim_now(s) % 1000));
}

static void add_node(struct ctrl_sim *s, const char *name, const char *ready)
{
	char yaml[1024], now[40];

	now_str(s, now, sizeof(now), false);
	snprintf(yaml, sizeof(yaml),
		 "apiVersion: v1\nkind: Node\nmetadata:\n  name: %s\n"
		 "status:\n  conditions:\n"
		 "  - type: Ready\n    status: \"%s\"\n    reason: KubeletReady\n"
		 "    lastHeartbeatTime: \"%s\"\n    lastTransitionTime: \"%s\"\n"
		 "  - type: MemoryPressure\n    status: \"False\"\n"
		 "    lastHeartbeatTime: \"%s\"\n    lastTransitionTime: \"%s\"\n",
		 name, ready, now, now, now, now);
	assert_int_equal(ctrl_sim_apply_yaml(s, yaml), 0);
}

static void renew_lease(struct ctrl_sim *s, const char *name)
{
	char yaml[512], now[40];

	now_str(s, now, sizeof(now), true);
	snprintf(yaml, sizeof(yaml),
		 "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n  name: %s\n"
		 "  namespace: kube-node-lease\nspec:\n  holderIdentity: %s\n"
		 "  leaseDurationSeconds: 40\n  renewTime: \"%s\"\n",
		 name, name, now);
	assert_int_equal(ctrl_sim_apply_yaml(s, yaml), 0);
}

/* The kubelet posts Ready=@status with a fresh heartbeat, keeping the rest
 * of the node (taints included) as stored. */
static void post_ready(struct ctrl_sim *s, const char *name, const char *status)
{
	json_t *node = ctrl_sim_get(s, "nodes", NULL, name);
	json_t *conds = json_pack("[{s:s, s:s, s:s, s:s, s:s}]", "type", "Ready", "status", status,
				  "reason", "KubeletReady", "lastHeartbeatTime", "", "lastTransitionTime",
				  "");
	char now[40];

	assert_non_null(node);
	now_str(s, now, sizeof(now), false);
	json_object_set_new(json_array_get(conds, 0), "lastHeartbeatTime", json_string(now));
	json_object_set_new(json_array_get(conds, 0), "lastTransitionTime", json_string(now));
	json_object_set_new(json_object_get(node, "status"), "conditions", conds);
	assert_int_equal(ctrl_sim_apply(s, node), 0);
	json_decref(node);
}

static void add_pod(struct ctrl_sim *s, const char *name, const char *node, const char *extra)
{
	assert_int_equal(ctrl_sim_apply_yamlf(s,
		 "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: default\n"
		 "spec:\n  nodeName: %s\n  containers:\n  - name: c\n    image: busybox\n%s",
		 name, node, extra != NULL ? extra : ""),
			 0);
}

static const char *ready_status(struct ctrl_sim *s, const char *node, const char **ret_reason)
{
	static char buf[32], reason[64];
	json_t *n = ctrl_sim_get(s, "nodes", NULL, node), *c;
	size_t i;

	buf[0] = reason[0] = '\0';
	json_array_foreach(json_object_get(json_object_get(n, "status"), "conditions"), i, c)
	{
		if (strcmp(json_string_value(json_object_get(c, "type")), "Ready") == 0) {
			snprintf(buf, sizeof(buf), "%s",
				 json_string_value(json_object_get(c, "status")));
			if (json_string_value(json_object_get(c, "reason")) != NULL)
				snprintf(reason, sizeof(reason), "%s",
					 json_string_value(json_object_get(c, "reason")));
		}
	}
	json_decref(n);
	if (ret_reason != NULL)
		*ret_reason = reason;
	return buf;
}

/* The taint @key:@effect of the node, or NULL (a new reference). */
static json_t *taint(struct ctrl_sim *s, const char *node, const char *key, const char *effect)
{
	json_t *n = ctrl_sim_get(s, "nodes", NULL, node), *t, *r = NULL;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(n, "spec"), "taints"), i, t)
	{
		if (strcmp(json_string_value(json_object_get(t, "key")), key) == 0 &&
		    strcmp(json_string_value(json_object_get(t, "effect")), effect) == 0)
			r = json_incref(t);
	}
	json_decref(n);
	return r;
}

static bool has_taint(struct ctrl_sim *s, const char *node, const char *key, const char *effect)
{
	json_t *t = taint(s, node, key, effect);

	json_decref(t);
	return t != NULL;
}

static size_t taint_count(struct ctrl_sim *s, const char *node)
{
	json_t *n = ctrl_sim_get(s, "nodes", NULL, node);
	size_t r = json_array_size(json_object_get(json_object_get(n, "spec"), "taints"));

	json_decref(n);
	return r;
}

static bool pod_exists(struct ctrl_sim *s, const char *name)
{
	return ctrl_sim_exists(s, "pods", "default", name);
}

static bool pod_deleting(struct ctrl_sim *s, const char *name)
{
	return ctrl_sim_deleting(s, "pods", "default", name);
}

static size_t events_with_reason(struct ctrl_sim *s, const char *reason)
{
	return ctrl_sim_events(s, NULL, NULL, reason, NULL, 0);
}

static void setup_ns(struct ctrl_sim *s)
{
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: Namespace\n"
						"metadata:\n  name: default\n---\n"
						"apiVersion: v1\nkind: Namespace\n"
						"metadata:\n  name: kube-node-lease\n"),
			 0);
}

/* ------------------------------------------------------------ tests */

/* No heartbeat for the grace period: every condition Unknown, the
 * unreachable taints, a NodeNotReady event; not one ms earlier. */
static void test_lease_expiry_unknown_and_taints(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	const char *reason;
	json_t *t;
	char at40[32];

	(void)state;
	setup_ns(s);
	add_node(s, "n1", "True");
	renew_lease(s, "n1");
	ctrl_sim_start(s);
	ctrl_sim_run(s, 39999);
	assert_string_equal(ready_status(s, "n1", NULL), "True");
	assert_int_equal(taint_count(s, "n1"), 0);

	ctrl_sim_run(s, 1 + WRITE_MS);
	assert_string_equal(ready_status(s, "n1", &reason), "Unknown");
	assert_string_equal(reason, "NodeStatusUnknown");
	t = taint(s, "n1", "node.kubernetes.io/unreachable", "NoExecute");
	assert_non_null(t);
	ctrl_rfc3339(ctrl_sim_now(s), at40, sizeof(at40));
	assert_string_equal(json_string_value(json_object_get(t, "timeAdded")), at40);
	json_decref(t);
	assert_true(has_taint(s, "n1", "node.kubernetes.io/unreachable", "NoSchedule"));
	assert_false(has_taint(s, "n1", "node.kubernetes.io/not-ready", "NoExecute"));

	/* Every condition, not only Ready. */
	json_t *n = ctrl_sim_get(s, "nodes", NULL, "n1"), *c;
	size_t i;
	json_array_foreach(json_object_get(json_object_get(n, "status"), "conditions"), i, c)
	{
		assert_string_equal(json_string_value(json_object_get(c, "status")), "Unknown");
		assert_string_equal(json_string_value(json_object_get(c, "message")),
				    "Kubelet stopped posting node status.");
	}
	json_decref(n);
	assert_int_equal(events_with_reason(s, "NodeNotReady"), 1);

	/* Stable: no more writes or events while nothing changes. */
	ctrl_sim_run(s, 60000);
	assert_int_equal(events_with_reason(s, "NodeNotReady"), 1);
	assert_int_equal(taint_count(s, "n1"), 2);
	ctrl_sim_free(s);
}

/* A renewed Lease alone keeps the node healthy; the configured grace
 * counts from the newest renewal. */
static void test_lease_renewal_and_configured_grace(void **state)
{
	struct ctrl_config cfg;
	struct ctrl_sim *s;
	int i;

	(void)state;
	ctrl_config_init(&cfg);
	assert_int_equal(cfg.node_grace_ms, 40000);
	assert_int_equal(cfg.eviction_toleration_s, 300);
	cfg.node_grace_ms = 15000;
	s = ctrl_sim_new_config(ops, &cfg);
	setup_ns(s);
	add_node(s, "n1", "True");
	renew_lease(s, "n1");
	ctrl_sim_start(s);
	/* The Ready heartbeat stays at 0 s; the Lease goes on to 60 s. */
	for (i = 0; i < 6; i++) {
		ctrl_sim_run(s, 10000);
		renew_lease(s, "n1");
	}
	assert_string_equal(ready_status(s, "n1", NULL), "True");
	ctrl_sim_run(s, 14999);
	assert_string_equal(ready_status(s, "n1", NULL), "True");
	ctrl_sim_run(s, 1 + WRITE_MS);
	assert_string_equal(ready_status(s, "n1", NULL), "Unknown");
	assert_true(has_taint(s, "n1", "node.kubernetes.io/unreachable", "NoExecute"));
	ctrl_sim_free(s);
}

/* Eviction by the taint manager: a pod that does not tolerate the taint
 * goes at once, others after their tolerationSeconds (default 300 s from
 * DefaultTolerationSeconds), a pod tolerating forever stays. Pods on an
 * unreachable node are deleted with grace 0, and marked not ready. */
static void test_eviction_after_toleration(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	json_t *p;

	(void)state;
	setup_ns(s);
	add_node(s, "n1", "True");
	add_node(s, "n2", "True");
	renew_lease(s, "n1");
	add_pod(s, "default-tol", "n1",
		"status:\n  phase: Running\n  conditions:\n  - type: Ready\n    status: \"True\"\n");
	add_pod(s, "short-tol", "n1",
		"  tolerations:\n  - key: node.kubernetes.io/unreachable\n    operator: Exists\n"
		"    effect: NoExecute\n    tolerationSeconds: 60\n");
	add_pod(s, "forever", "n1", "  tolerations:\n  - operator: Exists\n");
	add_pod(s, "intolerant", "n1",
		"  tolerations:\n  - key: node.kubernetes.io/unreachable\n    operator: Equal\n"
		"    value: other\n    effect: NoExecute\n");
	add_pod(s, "elsewhere", "n2", NULL);
	ctrl_sim_start(s);
	/* n2 keeps posting its Ready heartbeat. */
	for (int i = 0; i < 3; i++) {
		ctrl_sim_run(s, 13000);
		post_ready(s, "n2", "True");
	}
	ctrl_sim_run(s, 1000 + WRITE_MS); /* 40 s: n1 unreachable */
	assert_string_equal(ready_status(s, "n1", NULL), "Unknown");
	assert_false(pod_exists(s, "intolerant"));
	assert_true(pod_exists(s, "short-tol"));
	assert_true(pod_exists(s, "default-tol"));
	assert_true(pod_exists(s, "forever"));
	/* MarkPodsNotReady. */
	p = ctrl_sim_get(s, "pods", "default", "default-tol");
	assert_false(ctrl_pod_ready(p));
	json_decref(p);
	assert_int_equal(events_with_reason(s, "TaintManagerEviction"), 1);

	ctrl_sim_run(s, 59998); /* 99.999 s */
	assert_true(pod_exists(s, "short-tol"));
	ctrl_sim_run(s, 1 + WRITE_MS); /* 100 s = 40 + 60 */
	assert_false(pod_exists(s, "short-tol"));

	ctrl_sim_run(s, 239998); /* 339.999 s */
	assert_true(pod_exists(s, "default-tol"));
	ctrl_sim_run(s, 1 + WRITE_MS); /* 340 s = 40 + 300 */
	assert_false(pod_exists(s, "default-tol"));

	ctrl_sim_run(s, 3600000);
	assert_true(pod_exists(s, "forever"));
	/* n2 stopped posting at 39 s: unreachable since, its pod evicted at
	 * 79 + 300 s. */
	assert_false(pod_exists(s, "elsewhere"));
	assert_int_equal(events_with_reason(s, "TaintManagerEviction"), 4);
	ctrl_sim_free(s);
}

/* The configured default toleration replaces 300 s. */
static void test_eviction_configured_default(void **state)
{
	struct ctrl_config cfg;
	struct ctrl_sim *s;

	(void)state;
	ctrl_config_init(&cfg);
	cfg.eviction_toleration_s = 30;
	s = ctrl_sim_new_config(ops, &cfg);
	setup_ns(s);
	add_node(s, "n1", "True");
	add_pod(s, "p", "n1", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 40000 + 29999);
	assert_true(pod_exists(s, "p"));
	ctrl_sim_run(s, 1 + WRITE_MS);
	assert_false(pod_exists(s, "p"));
	ctrl_sim_free(s);
}

/* The kubelet comes back (Ready=True, fresh heartbeat): taints go, the
 * pending eviction is cancelled. */
static void test_heartbeat_return_clears_taints(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	int i;

	(void)state;
	setup_ns(s);
	add_node(s, "n1", "True");
	renew_lease(s, "n1");
	add_pod(s, "p", "n1", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 60000);
	assert_string_equal(ready_status(s, "n1", NULL), "Unknown");
	assert_int_equal(taint_count(s, "n1"), 2);

	/* A renewed Lease alone does not make it Ready (the kubelet must
	 * post its status), but it is no longer condemned. */
	renew_lease(s, "n1");
	ctrl_sim_run(s, 1000);
	assert_string_equal(ready_status(s, "n1", NULL), "Unknown");

	post_ready(s, "n1", "True");
	ctrl_sim_run(s, 1000);
	assert_string_equal(ready_status(s, "n1", NULL), "True");
	assert_int_equal(taint_count(s, "n1"), 0);
	for (i = 0; i < 60; i++) {
		renew_lease(s, "n1");
		ctrl_sim_run(s, 10000);
	}
	assert_string_equal(ready_status(s, "n1", NULL), "True");
	assert_true(pod_exists(s, "p"));
	assert_false(pod_deleting(s, "p"));
	ctrl_sim_free(s);
}

/* Ready=False from a live kubelet: not-ready taints, a graceful eviction
 * after the default toleration; back to True removes them. */
static void test_not_ready_taints(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	int i;

	(void)state;
	setup_ns(s);
	add_node(s, "n1", "False");
	add_pod(s, "p", "n1", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 10);
	assert_true(has_taint(s, "n1", "node.kubernetes.io/not-ready", "NoExecute"));
	assert_true(has_taint(s, "n1", "node.kubernetes.io/not-ready", "NoSchedule"));
	assert_false(has_taint(s, "n1", "node.kubernetes.io/unreachable", "NoExecute"));
	for (i = 0; i < 30; i++) {
		renew_lease(s, "n1");
		ctrl_sim_run(s, 10000);
	}
	/* 300 s: deleted gracefully (the node's agent confirms). */
	assert_string_equal(ready_status(s, "n1", NULL), "False");
	assert_true(pod_deleting(s, "p"));

	post_ready(s, "n1", "True");
	ctrl_sim_run(s, 100);
	assert_int_equal(taint_count(s, "n1"), 0);
	ctrl_sim_free(s);
}

/* A user's NoExecute taint evicts pods that do not tolerate it, even on a
 * healthy node; spec.unschedulable gets its NoSchedule taint. */
static void test_user_noexecute_and_unschedulable(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	char yaml[1024], now[40];

	(void)state;
	setup_ns(s);
	now_str(s, now, sizeof(now), false);
	snprintf(yaml, sizeof(yaml),
		 "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n"
		 "spec:\n  unschedulable: true\n  taints:\n"
		 "  - key: dedicated\n    value: db\n    effect: NoExecute\n"
		 "status:\n  conditions:\n"
		 "  - type: Ready\n    status: \"True\"\n    lastHeartbeatTime: \"%s\"\n",
		 now);
	assert_int_equal(ctrl_sim_apply_yaml(s, yaml), 0);
	add_pod(s, "plain", "n1", NULL);
	add_pod(s, "db", "n1",
		"  tolerations:\n  - key: dedicated\n    operator: Equal\n    value: db\n");
	ctrl_sim_start(s);
	ctrl_sim_run(s, 100);
	assert_true(pod_deleting(s, "plain")); /* graceful: the node is alive */
	assert_false(pod_deleting(s, "db"));
	assert_true(has_taint(s, "n1", "node.kubernetes.io/unschedulable", "NoSchedule"));
	assert_true(has_taint(s, "n1", "dedicated", "NoExecute"));
	ctrl_sim_free(s);
}

/* A new leader gives every node a full grace period: an old Lease does
 * not condemn a node the moment the controller starts. */
static void test_start_grants_grace(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);

	(void)state;
	setup_ns(s);
	add_node(s, "n1", "True");
	renew_lease(s, "n1");
	ctrl_sim_run(s, 3600000); /* an hour without a leader */
	ctrl_sim_start(s);
	ctrl_sim_run(s, 39000);
	assert_string_equal(ready_status(s, "n1", NULL), "True");
	ctrl_sim_run(s, 1000 + WRITE_MS);
	assert_string_equal(ready_status(s, "n1", NULL), "Unknown");
	ctrl_sim_free(s);
}

/* A node added without any status: Ready Unknown (never updated) after the
 * grace period from its creation. */
static void test_never_posted(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	const char *reason;

	(void)state;
	setup_ns(s);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 5000);
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: Node\n"
						"metadata:\n  name: bare\n"),
			 0);
	ctrl_sim_run(s, 39999);
	assert_string_equal(ready_status(s, "bare", NULL), "");
	ctrl_sim_run(s, 1 + WRITE_MS);
	assert_string_equal(ready_status(s, "bare", &reason), "Unknown");
	assert_string_equal(reason, "NodeStatusNeverUpdated");
	assert_true(has_taint(s, "bare", "node.kubernetes.io/unreachable", "NoExecute"));
	ctrl_sim_free(s);
}

/* PodGC: pods bound to a node that does not exist (deleted, or never
 * registered) are deleted once it has been missing for the grace period. */
static void test_orphaned_pods_collected(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);
	int i;

	(void)state;
	setup_ns(s);
	add_node(s, "n1", "True");
	add_pod(s, "on-n1", "n1", NULL);
	add_pod(s, "on-ghost", "ghost", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 39999);
	assert_true(pod_exists(s, "on-ghost"));
	ctrl_sim_run(s, 1 + WRITE_MS);
	assert_false(pod_exists(s, "on-ghost"));

	/* n1 keeps reporting; then it is deleted. */
	for (i = 0; i < 3; i++) {
		post_ready(s, "n1", "True");
		ctrl_sim_run(s, 10000);
	}
	assert_int_equal(ctrl_sim_delete(s, "nodes", NULL, "n1", -1), 0);
	ctrl_sim_run(s, 39999);
	assert_true(pod_exists(s, "on-n1"));
	ctrl_sim_run(s, 1 + WRITE_MS);
	assert_false(pod_exists(s, "on-n1"));
	ctrl_sim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lease_expiry_unknown_and_taints),
		cmocka_unit_test(test_lease_renewal_and_configured_grace),
		cmocka_unit_test(test_eviction_after_toleration),
		cmocka_unit_test(test_eviction_configured_default),
		cmocka_unit_test(test_heartbeat_return_clears_taints),
		cmocka_unit_test(test_not_ready_taints),
		cmocka_unit_test(test_user_noexecute_and_unschedulable),
		cmocka_unit_test(test_start_grants_grace),
		cmocka_unit_test(test_never_posted),
		cmocka_unit_test(test_orphaned_pods_collected),
	};

	return cmocka_run_group_tests_name("ctrl_nodelifecycle", tests, NULL, NULL);
}
