/* The DaemonSet controller in the simulation: one bound pod per eligible
 * node, nodes joining and leaving, nodeSelector, node affinity, taints and
 * the default tolerations, rolling update within maxUnavailable, OnDelete
 * and status. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/ctrl_sim.h"

static const struct ctrl_ops *const ops[] = {&ctrl_daemonset_ops, NULL};

/* ------------------------------------------------------------ helpers */

/* A node with labels (YAML flow map, "{}" for none) and taints (YAML flow
 * list, "[]" for none). */
static void add_node(struct ctrl_sim *s, const char *name, const char *labels,
		     const char *taints)
{
	assert_int_equal(ctrl_sim_apply_yamlf(s,
		 "apiVersion: v1\nkind: Node\nmetadata:\n  name: %s\n  labels: %s\n"
		 "spec:\n  taints: %s\n",
		 name, labels, taints),
			 0);
}

static const char *const node_names[] = {"n1", "n2", "n3", "n4", "n5"};

/* A simulation with the hollow kubelet and the @n (<= 5) first plain
 * nodes of node_names. */
static struct ctrl_sim *sim_nodes(int n)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");

	ctrl_sim_kubelet(s, true);
	for (int i = 0; i < n; i++)
		add_node(s, node_names[i], "{}", "[]");
	return s;
}

/* The DaemonSet "agent" with @extra spec lines for the pod spec (indented
 * 6) and @strategy lines for the set spec (indented 2). */
static void apply_ds(struct ctrl_sim *s, const char *image, const char *pod_extra,
		     const char *strategy)
{
	assert_int_equal(ctrl_sim_apply_yamlf(s,
		 "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\n"
		 "  namespace: default\nspec:\n  selector:\n    matchLabels:\n      app: agent\n"
		 "%s"
		 "  template:\n    metadata:\n      labels:\n        app: agent\n"
		 "    spec:\n%s      containers:\n      - name: c\n        image: %s\n",
		 strategy ? strategy : "", pod_extra ? pod_extra : "", image),
			 0);
}

/* The pod of the set on @node (new reference), NULL when none; fails on
 * more than one live pod. */
static json_t *pod_on(struct ctrl_sim *s, const char *node)
{
	json_t *pods = ctrl_sim_list(s, "pods", "default", "app=agent"), *pod, *found = NULL;
	size_t i;

	json_array_foreach(pods, i, pod)
	{
		const char *n = ctrl_str(pod, "spec.nodeName");
		if (n && strcmp(n, node) == 0 && !ctrl_str(pod, "metadata.deletionTimestamp")) {
			assert_null(found);
			found = json_incref(pod);
		}
	}
	json_decref(pods);
	return found;
}

static bool has_pod_on(struct ctrl_sim *s, const char *node)
{
	json_t *p = pod_on(s, node);
	json_decref(p);
	return p != NULL;
}

static int64_t ds_status(struct ctrl_sim *s, const char *field)
{
	char path[128];

	snprintf(path, sizeof(path), "status.%s", field);
	return ctrl_sim_int(s, "daemonsets", "default", "agent", path, -1);
}

static const char *image_of(const json_t *pod)
{
	return ctrl_sim_path_str(pod, "spec.containers.0.image");
}

/* ------------------------------------------------------------ tests */

/* Every node gets one bound pod with Kubernetes' decorations. */
static void covers_all_nodes(void **state)
{
	(void)state;
	struct ctrl_sim *s = sim_nodes(3);
	apply_ds(s, "agent:1", NULL, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 2000);

	assert_int_equal(ctrl_sim_count(s, "pods", "default", "app=agent"), 3);
	json_t *ds = ctrl_sim_get(s, "daemonsets", "default", "agent");
	for (int i = 0; i < 3; i++) {
		json_t *pod = pod_on(s, node_names[i]);
		assert_non_null(pod);
		assert_string_equal(ctrl_sim_path_str(pod, "metadata.ownerReferences.0.kind"),
				    "DaemonSet");
		assert_string_equal(ctrl_sim_path_str(pod, "metadata.ownerReferences.0.uid"),
				    ctrl_str(ds, "metadata.uid"));
		assert_true(
			json_is_true(ctrl_sim_path(pod, "metadata.ownerReferences.0.controller")));
		assert_non_null(ctrl_str(pod, "metadata.labels.controller-revision-hash"));
		assert_string_equal(ctrl_str(pod, "metadata.labels.pod-template-generation"), "1");
		/* Bound, with the node-name affinity. */
		json_t *term = ctrl_sim_path(
			pod, "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
			     "nodeSelectorTerms.0.matchFields.0");
		assert_non_null(term);
		assert_string_equal(ctrl_str(term, "key"), "metadata.name");
		assert_string_equal(ctrl_str(term, "operator"), "In");
		assert_string_equal(ctrl_sim_path_str(term, "values.0"), node_names[i]);
		/* The default daemon tolerations. */
		json_t *tols = api_json_path(pod, "spec.tolerations");
		size_t j;
		json_t *t;
		bool unreachable = false, unschedulable = false;
		json_array_foreach(tols, j, t)
		{
			if (strcmp(ctrl_str(t, "key"), "node.kubernetes.io/unreachable") == 0) {
				assert_string_equal(ctrl_str(t, "effect"), "NoExecute");
				unreachable = true;
			}
			if (strcmp(ctrl_str(t, "key"), "node.kubernetes.io/unschedulable") == 0) {
				assert_string_equal(ctrl_str(t, "effect"), "NoSchedule");
				unschedulable = true;
			}
		}
		assert_true(unreachable && unschedulable);
		assert_string_equal(ctrl_str(pod, "status.phase"), "Running");
		json_decref(pod);
	}
	json_decref(ds);
	assert_int_equal(ds_status(s, "desiredNumberScheduled"), 3);
	assert_int_equal(ds_status(s, "currentNumberScheduled"), 3);
	assert_int_equal(ds_status(s, "numberReady"), 3);
	assert_int_equal(ds_status(s, "numberAvailable"), 3);
	assert_int_equal(ds_status(s, "updatedNumberScheduled"), 3);
	assert_int_equal(ds_status(s, "numberMisscheduled"), 0);
	assert_int_equal(ds_status(s, "observedGeneration"), 1);
	ctrl_sim_free(s);
}

/* A node that joins later gets a pod; one that leaves loses it. */
static void nodes_join_and_leave(void **state)
{
	(void)state;
	struct ctrl_sim *s = sim_nodes(1);
	apply_ds(s, "agent:1", NULL, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_int_equal(ctrl_sim_count(s, "pods", "default", "app=agent"), 1);
	assert_false(has_pod_on(s, "n2"));

	add_node(s, "n2", "{}", "[]");
	ctrl_sim_run(s, 1000);
	assert_true(has_pod_on(s, "n2"));
	assert_int_equal(ctrl_sim_count(s, "pods", "default", "app=agent"), 2);
	assert_int_equal(ds_status(s, "desiredNumberScheduled"), 2);
	assert_int_equal(ds_status(s, "numberReady"), 2);

	/* Node gone: its pod goes too. */
	assert_int_equal(ctrl_sim_delete(s, "nodes", NULL, "n1", 0), 0);
	ctrl_sim_run(s, 1000);
	assert_false(has_pod_on(s, "n1"));
	assert_int_equal(ctrl_sim_count(s, "pods", "default", "app=agent"), 1);
	assert_int_equal(ds_status(s, "desiredNumberScheduled"), 1);
	ctrl_sim_free(s);
}

/* A deleted pod is replaced on its node. */
static void replaces_deleted_pod(void **state)
{
	(void)state;
	struct ctrl_sim *s = sim_nodes(1);
	apply_ds(s, "agent:1", NULL, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	json_t *pod = pod_on(s, "n1");
	assert_non_null(pod);
	char name[128];
	snprintf(name, sizeof(name), "%s", ctrl_str(pod, "metadata.name"));
	json_decref(pod);
	assert_int_equal(ctrl_sim_delete(s, "pods", "default", name, 0), 0);
	ctrl_sim_run(s, 1000);
	pod = pod_on(s, "n1");
	assert_non_null(pod);
	assert_string_not_equal(ctrl_str(pod, "metadata.name"), name);
	json_decref(pod);
	ctrl_sim_free(s);
}

/* nodeSelector and required node affinity choose the nodes; a label
 * change moves the set. */
static void node_selection(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	ctrl_sim_kubelet(s, true);
	add_node(s, "n1", "{disk: ssd, zone: a}", "[]");
	add_node(s, "n2", "{disk: hdd, zone: a}", "[]");
	add_node(s, "n3", "{disk: ssd, zone: b}", "[]");
	apply_ds(s, "agent:1",
		 "      nodeSelector:\n        disk: ssd\n"
		 "      affinity:\n        nodeAffinity:\n"
		 "          requiredDuringSchedulingIgnoredDuringExecution:\n"
		 "            nodeSelectorTerms:\n"
		 "            - matchExpressions:\n"
		 "              - {key: zone, operator: In, values: [a]}\n",
		 NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_true(has_pod_on(s, "n1"));
	assert_false(has_pod_on(s, "n2"));
	assert_false(has_pod_on(s, "n3"));
	assert_int_equal(ds_status(s, "desiredNumberScheduled"), 1);

	/* n1 leaves zone a: its pod goes; n2 becomes ssd: it gets one. */
	add_node(s, "n1", "{disk: ssd, zone: c}", "[]");
	add_node(s, "n2", "{disk: ssd, zone: a}", "[]");
	ctrl_sim_run(s, 1000);
	assert_false(has_pod_on(s, "n1"));
	assert_true(has_pod_on(s, "n2"));
	assert_int_equal(ctrl_sim_count(s, "pods", "default", "app=agent"), 1);
	ctrl_sim_free(s);
}

/* Taints: NoSchedule and NoExecute keep new pods off unless tolerated;
 * a NoSchedule taint added later keeps the pod, NoExecute removes it;
 * the default tolerations cover not-ready, unreachable and
 * unschedulable. */
static void taints_and_tolerations(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	ctrl_sim_kubelet(s, true);
	add_node(s, "plain", "{}", "[]");
	add_node(s, "gpu", "{}", "[{key: gpu, value: \"yes\", effect: NoSchedule}]");
	add_node(s, "dedicated", "{}", "[{key: dedicated, value: db, effect: NoExecute}]");
	add_node(s, "soft", "{}", "[{key: soft, effect: PreferNoSchedule}]");
	add_node(s, "down", "{}",
		 "[{key: node.kubernetes.io/unreachable, effect: NoExecute},"
		 " {key: node.kubernetes.io/unschedulable, effect: NoSchedule}]");
	apply_ds(s, "agent:1", "      tolerations:\n      - {key: gpu, operator: Exists}\n", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_true(has_pod_on(s, "plain"));
	assert_true(has_pod_on(s, "gpu"));
	assert_false(has_pod_on(s, "dedicated"));
	assert_true(has_pod_on(s, "soft"));
	assert_true(has_pod_on(s, "down"));
	assert_int_equal(ds_status(s, "desiredNumberScheduled"), 4);

	/* NoSchedule added under a running pod: it stays, but counts as
	 * not desired (misscheduled). */
	add_node(s, "plain", "{}", "[{key: maint, effect: NoSchedule}]");
	ctrl_sim_run(s, 1000);
	assert_true(has_pod_on(s, "plain"));
	assert_int_equal(ds_status(s, "desiredNumberScheduled"), 3);
	assert_int_equal(ds_status(s, "numberMisscheduled"), 1);

	/* NoExecute: evicted. */
	add_node(s, "plain", "{}", "[{key: maint, effect: NoExecute}]");
	ctrl_sim_run(s, 1000);
	assert_false(has_pod_on(s, "plain"));
	assert_int_equal(ds_status(s, "numberMisscheduled"), 0);
	ctrl_sim_free(s);
}

/* Counts, at each virtual millisecond, nodes whose pod is available. */
struct watch_ctx {
	int64_t min_available;
	int64_t max_live;
	size_t nodes;
};

static bool rollout_done(struct ctrl_sim *s, void *data)
{
	struct watch_ctx *w = data;
	json_t *pods = ctrl_sim_list(s, "pods", "default", "app=agent"), *pod;
	json_t *ready_nodes = json_object();
	size_t i, updated = 0, live = 0;

	json_array_foreach(pods, i, pod)
	{
		if (ctrl_str(pod, "metadata.deletionTimestamp"))
			continue;
		live++;
		if (ctrl_pod_ready(pod))
			json_object_set_new(ready_nodes, ctrl_str(pod, "spec.nodeName"), json_true());
		if (strcmp(image_of(pod), "agent:2") == 0 && ctrl_pod_ready(pod))
			updated++;
	}
	json_decref(pods);
	/* Nodes with an available pod. */
	int64_t available = (int64_t)json_object_size(ready_nodes);
	json_decref(ready_nodes);
	if (available < w->min_available)
		w->min_available = available;
	if ((int64_t)live > w->max_live)
		w->max_live = (int64_t)live;
	return updated == w->nodes && live == w->nodes && available == (int64_t)w->nodes;
}

/* RollingUpdate replaces every pod, never more than maxUnavailable down
 * at once. */
static void rolling_update(void **state)
{
	(void)state;
	struct ctrl_sim *s = sim_nodes(5);
	apply_ds(s, "agent:1", NULL, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_int_equal(ds_status(s, "numberAvailable"), 5);
	json_t *old = pod_on(s, "n1");
	char old_hash[64];
	snprintf(old_hash, sizeof(old_hash), "%s",
		 ctrl_str(old, "metadata.labels.controller-revision-hash"));
	json_decref(old);

	apply_ds(s, "agent:2", NULL, NULL);
	struct watch_ctx w = {.min_available = 5, .nodes = 5};
	assert_true(ctrl_sim_run_until(s, 60000, rollout_done, &w));
	assert_int_equal(w.min_available, 4); /* maxUnavailable 1 */
	ctrl_sim_run(s, 100);
	for (int i = 0; i < 5; i++) {
		json_t *pod = pod_on(s, node_names[i]);
		assert_non_null(pod);
		assert_string_equal(image_of(pod), "agent:2");
		assert_string_not_equal(ctrl_str(pod, "metadata.labels.controller-revision-hash"),
					old_hash);
		assert_string_equal(ctrl_str(pod, "metadata.labels.pod-template-generation"), "2");
		json_decref(pod);
	}
	assert_int_equal(ds_status(s, "updatedNumberScheduled"), 5);
	assert_int_equal(ds_status(s, "numberAvailable"), 5);
	assert_int_equal(ds_status(s, "observedGeneration"), 2);
	ctrl_sim_free(s);
}

/* maxUnavailable 2 (as a percentage of 5, rounded up) lets two go. */
static void rolling_update_max_unavailable(void **state)
{
	(void)state;
	struct ctrl_sim *s = sim_nodes(5);
	const char *strategy = "  updateStrategy:\n    type: RollingUpdate\n"
			       "    rollingUpdate:\n      maxUnavailable: 30%\n";
	apply_ds(s, "agent:1", NULL, strategy);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	apply_ds(s, "agent:2", NULL, strategy);
	struct watch_ctx w = {.min_available = 5, .nodes = 5};
	assert_true(ctrl_sim_run_until(s, 60000, rollout_done, &w));
	assert_int_equal(w.min_available, 3);
	ctrl_sim_free(s);
}

/* maxSurge 1, maxUnavailable 0: the new pod starts beside the old one,
 * which goes once the new one is available; no node is ever without an
 * available pod. */
static void rolling_update_surge(void **state)
{
	(void)state;
	struct ctrl_sim *s = sim_nodes(4);
	const char *strategy = "  updateStrategy:\n    type: RollingUpdate\n"
			       "    rollingUpdate:\n      maxUnavailable: 0\n      maxSurge: 1\n";
	apply_ds(s, "agent:1", NULL, strategy);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	apply_ds(s, "agent:2", NULL, strategy);
	struct watch_ctx w = {.min_available = 4, .nodes = 4};
	assert_true(ctrl_sim_run_until(s, 60000, rollout_done, &w));
	assert_int_equal(w.min_available, 4);
	assert_int_equal(w.max_live, 5); /* one surge pod at a time */
	for (int i = 0; i < 4; i++) {
		json_t *pod = pod_on(s, node_names[i]);
		assert_non_null(pod);
		assert_string_equal(image_of(pod), "agent:2");
		json_decref(pod);
	}
	ctrl_sim_free(s);
}

/* minReadySeconds: a Ready pod counts as available only after it. */
static void min_ready_seconds(void **state)
{
	(void)state;
	struct ctrl_sim *s = sim_nodes(1);
	apply_ds(s, "agent:1", NULL, "  minReadySeconds: 10\n");
	ctrl_sim_start(s);
	ctrl_sim_run(s, 2000);
	assert_int_equal(ds_status(s, "numberReady"), 1);
	assert_true(ds_status(s, "numberAvailable") <= 0);
	assert_int_equal(ds_status(s, "numberUnavailable"), 1);
	ctrl_sim_run(s, 10000);
	assert_int_equal(ds_status(s, "numberAvailable"), 1);
	assert_true(ds_status(s, "numberUnavailable") <= 0);
	ctrl_sim_free(s);
}

/* OnDelete: a new template reaches only pods deleted by hand. */
static void on_delete(void **state)
{
	(void)state;
	struct ctrl_sim *s = sim_nodes(2);
	const char *strategy = "  updateStrategy:\n    type: OnDelete\n";
	apply_ds(s, "agent:1", NULL, strategy);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	apply_ds(s, "agent:2", NULL, strategy);
	ctrl_sim_run(s, 5000);
	json_t *p1 = pod_on(s, "n1"), *p2 = pod_on(s, "n2");
	assert_string_equal(image_of(p1), "agent:1");
	assert_string_equal(image_of(p2), "agent:1");
	assert_int_equal(ds_status(s, "updatedNumberScheduled"), 0);
	assert_int_equal(ctrl_sim_delete(s, "pods", "default", ctrl_str(p1, "metadata.name"), 0), 0);
	json_decref(p1);
	json_decref(p2);
	ctrl_sim_run(s, 1000);
	p1 = pod_on(s, "n1");
	p2 = pod_on(s, "n2");
	assert_string_equal(image_of(p1), "agent:2");
	assert_string_equal(image_of(p2), "agent:1");
	assert_int_equal(ds_status(s, "updatedNumberScheduled"), 1);
	json_decref(p1);
	json_decref(p2);
	ctrl_sim_free(s);
}

/* Without a kubelet nothing is ready: status says so. */
static void status_without_kubelet(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	add_node(s, "n1", "{}", "[]");
	add_node(s, "n2", "{}", "[]");
	apply_ds(s, "agent:1", NULL, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_int_equal(ds_status(s, "desiredNumberScheduled"), 2);
	assert_int_equal(ds_status(s, "currentNumberScheduled"), 2);
	assert_int_equal(ds_status(s, "numberReady"), 0);
	assert_int_equal(ds_status(s, "numberUnavailable"), 2);
	/* A restarted leader rebuilds its caches and creates nothing more. */
	ctrl_sim_stop(s);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_int_equal(ctrl_sim_count(s, "pods", "default", "app=agent"), 2);
	ctrl_sim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(covers_all_nodes),
		cmocka_unit_test(nodes_join_and_leave),
		cmocka_unit_test(replaces_deleted_pod),
		cmocka_unit_test(node_selection),
		cmocka_unit_test(taints_and_tolerations),
		cmocka_unit_test(rolling_update),
		cmocka_unit_test(rolling_update_max_unavailable),
		cmocka_unit_test(rolling_update_surge),
		cmocka_unit_test(min_ready_seconds),
		cmocka_unit_test(on_delete),
		cmocka_unit_test(status_without_kubelet),
	};
	return cmocka_run_group_tests_name("ctrl_daemonset", tests, NULL, NULL);
}
