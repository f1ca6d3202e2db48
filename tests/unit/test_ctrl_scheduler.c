/* The scheduler in the simulation: spreading, resources, node selectors
 * and affinity, taints and tolerations, host ports, unschedulable pods
 * (condition, one event, retry when a node appears or a pod goes), a
 * restart that rebuilds the cache, CAS conflicts and failed writes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/ctrl_sim.h"

static const struct ctrl_ops *const ops[] = {&ctrl_scheduler_ops, NULL};

/* ------------------------------------------------------------ helpers */

/* A Ready node with @cpu, 8Gi of memory, @pods pods; @extra is YAML
 * appended under metadata (labels) or as spec (after "spec:"). */
static void add_node_full(struct ctrl_sim *s, const char *name, const char *cpu, int pods,
			  const char *labels, const char *spec, const char *ready)
{
	assert_int_equal(ctrl_sim_apply_yamlf(s,
		 "apiVersion: v1\nkind: Node\nmetadata:\n  name: %s\n  labels: {%s}\n"
		 "spec: {%s}\n"
		 "status:\n  allocatable: {cpu: \"%s\", memory: 8Gi, pods: \"%d\"}\n"
		 "  capacity: {cpu: \"%s\", memory: 8Gi, pods: \"%d\"}\n"
		 "  conditions:\n  - type: Ready\n    status: \"%s\"\n",
		 name, labels != NULL ? labels : "", spec != NULL ? spec : "", cpu, pods, cpu, pods,
		 ready != NULL ? ready : "True"),
			 0);
}

static void add_node(struct ctrl_sim *s, const char *name, const char *cpu, int pods)
{
	add_node_full(s, name, cpu, pods, NULL, NULL, NULL);
}

/* A pod requesting @cpu (NULL: no requests); @spec_extra is YAML inserted
 * at the spec level (two-space indent); @meta_extra under metadata. */
static void add_pod_full(struct ctrl_sim *s, const char *name, const char *cpu,
			 const char *spec_extra, const char *meta_extra, const char *ports)
{
	char yaml[4096], res[128] = "";

	if (cpu != NULL)
		snprintf(res, sizeof(res), "    resources:\n      requests:\n        cpu: \"%s\"\n",
			 cpu);
	snprintf(yaml, sizeof(yaml),
		 "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: default\n%s"
		 "spec:\n  containers:\n  - name: c\n    image: busybox\n%s%s%s",
		 name, meta_extra != NULL ? meta_extra : "", res, ports != NULL ? ports : "",
		 spec_extra != NULL ? spec_extra : "");
	assert_int_equal(ctrl_sim_apply_yaml(s, yaml), 0);
}

static void add_pod(struct ctrl_sim *s, const char *name, const char *cpu)
{
	add_pod_full(s, name, cpu, NULL, NULL, NULL);
}

/* The node a pod is bound to ("" when unbound); static buffer. */
static const char *node_of(struct ctrl_sim *s, const char *pod)
{
	static char buf[256];
	json_t *p = ctrl_sim_get(s, "pods", "default", pod);
	const char *n;

	assert_non_null(p);
	n = ctrl_str(p, "spec.nodeName");
	snprintf(buf, sizeof(buf), "%s", n != NULL ? n : "");
	json_decref(p);
	return buf;
}

/* Pods bound to @node. */
static size_t pods_on(struct ctrl_sim *s, const char *node)
{
	json_t *pods = ctrl_sim_list(s, "pods", "default", NULL), *p;
	size_t i, n = 0;

	json_array_foreach(pods, i, p)
	{
		const char *nn = ctrl_str(p, "spec.nodeName");
		if (nn != NULL && strcmp(nn, node) == 0)
			n++;
	}
	json_decref(pods);
	return n;
}

/* The PodScheduled condition of a pod: status and message into buffers. */
static void scheduled_cond(struct ctrl_sim *s, const char *pod, char *status, char *reason,
			   char *msg, size_t size)
{
	json_t *p = ctrl_sim_get(s, "pods", "default", pod), *c;
	size_t i;

	status[0] = reason[0] = msg[0] = '\0';
	json_array_foreach(json_object_get(json_object_get(p, "status"), "conditions"), i, c)
	{
		const char *type = ctrl_str(c, "type");
		if (type == NULL || strcmp(type, "PodScheduled") != 0)
			continue;
		snprintf(status, size, "%s", ctrl_str(c, "status") ? ctrl_str(c, "status") : "");
		snprintf(reason, size, "%s", ctrl_str(c, "reason") ? ctrl_str(c, "reason") : "");
		snprintf(msg, size, "%s", ctrl_str(c, "message") ? ctrl_str(c, "message") : "");
	}
	json_decref(p);
}

/* Events about @pod with @reason; the last message into @msg. */
static size_t events(struct ctrl_sim *s, const char *pod, const char *reason, char *msg,
		     size_t size)
{
	return ctrl_sim_events(s, "default", pod, reason, msg, size);
}

static void assert_unschedulable(struct ctrl_sim *s, const char *pod, const char *want)
{
	char status[512], reason[512], msg[512];

	assert_string_equal(node_of(s, pod), "");
	scheduled_cond(s, pod, status, reason, msg, sizeof(msg));
	assert_string_equal(status, "False");
	assert_string_equal(reason, "Unschedulable");
	assert_string_equal(msg, want);
}

#define OWNER                                                                                  \
	"  ownerReferences:\n  - apiVersion: apps/v1\n    kind: ReplicaSet\n    name: web\n" \
	"    uid: 0b5b7d3e-0000-4000-8000-000000000001\n    controller: true\n"

/* ------------------------------------------------------------ tests */

static void test_binds_with_condition_and_event(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	char status[512], reason[512], msg[512];
	(void)state;

	add_node(s, "n1", "4", 110);
	add_pod(s, "p", "100m");
	ctrl_sim_start(s);
	ctrl_sim_run(s, 100);
	assert_string_equal(node_of(s, "p"), "n1");
	scheduled_cond(s, "p", status, reason, msg, sizeof(msg));
	assert_string_equal(status, "True");
	assert_int_equal(events(s, "p", "Scheduled", msg, sizeof(msg)), 1);
	assert_string_equal(msg, "Successfully assigned default/p to n1");
	ctrl_sim_free(s);
}

static void test_spreads_owned_pods(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	char name[32];
	(void)state;

	add_node(s, "n1", "8", 110);
	add_node(s, "n2", "8", 110);
	add_node(s, "n3", "8", 110);
	ctrl_sim_start(s);
	for (int i = 0; i < 9; i++) {
		snprintf(name, sizeof(name), "web-%d", i);
		add_pod_full(s, name, "100m", NULL, OWNER, NULL);
	}
	ctrl_sim_run(s, 1000);
	assert_int_equal(pods_on(s, "n1"), 3);
	assert_int_equal(pods_on(s, "n2"), 3);
	assert_int_equal(pods_on(s, "n3"), 3);
	ctrl_sim_free(s);
}

/* A much bigger node wins on least-allocated alone; spreading the owner's
 * pods still puts the same number on each node. */
static void test_spread_outweighs_least_allocated(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	char name[32];
	(void)state;

	add_node(s, "big", "64", 110);
	add_node(s, "small1", "4", 110);
	add_node(s, "small2", "4", 110);
	ctrl_sim_start(s);
	for (int i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "web-%d", i);
		add_pod_full(s, name, "200m", NULL, OWNER, NULL);
	}
	ctrl_sim_run(s, 1000);
	assert_int_equal(pods_on(s, "big"), 2);
	assert_int_equal(pods_on(s, "small1"), 2);
	assert_int_equal(pods_on(s, "small2"), 2);
	/* Pods without an owner go by least-allocated: the big node. */
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "bare-%d", i);
		add_pod(s, name, "200m");
	}
	ctrl_sim_run(s, 1000);
	assert_int_equal(pods_on(s, "big"), 5);
	ctrl_sim_free(s);
}

static void test_spreads_pods_without_requests(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	char name[32];
	(void)state;

	add_node(s, "n1", "8", 110);
	add_node(s, "n2", "8", 110);
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "bare-%d", i);
		add_pod(s, name, NULL);
	}
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_int_equal(pods_on(s, "n1"), 5);
	assert_int_equal(pods_on(s, "n2"), 5);
	ctrl_sim_free(s);
}

static void test_resources_respected(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	char name[32], msg[512];
	(void)state;

	add_node(s, "n1", "2", 110);
	add_node(s, "n2", "2", 110);
	/* Already bound by someone else: counts. */
	add_pod_full(s, "pre", "1", "  nodeName: n1\n", NULL, NULL);
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		add_pod(s, name, "1");
	}
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_int_equal(pods_on(s, "n1"), 2);
	assert_int_equal(pods_on(s, "n2"), 2);
	assert_string_equal(node_of(s, "p3"), "");
	assert_unschedulable(s, "p3", "0/2 nodes are available: 2 Insufficient cpu.");
	assert_int_equal(events(s, "p3", "FailedScheduling", msg, sizeof(msg)), 1);
	assert_string_equal(msg, "0/2 nodes are available: 2 Insufficient cpu.");

	/* Pod count: a node with room for one pod; p3 goes there. */
	add_node(s, "n3", "64", 1);
	ctrl_sim_run(s, 100);
	assert_string_equal(node_of(s, "p3"), "n3");
	add_pod(s, "q1", "1");
	ctrl_sim_run(s, 1000);
	assert_unschedulable(s, "q1", "0/3 nodes are available: 1 Too many pods, 2 Insufficient cpu.");
	ctrl_sim_free(s);
}

static void test_node_selector_and_affinity(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	(void)state;

	add_node_full(s, "n1", "4", 110, "zone: a, disk: hdd", NULL, NULL);
	add_node_full(s, "n2", "4", 110, "zone: b, disk: ssd", NULL, NULL);
	add_node_full(s, "n3", "4", 110, "zone: c, disk: hdd, cores: \"16\"", NULL, NULL);
	for (int i = 0; i < 3; i++) {
		char name[32];
		snprintf(name, sizeof(name), "ssd-%d", i);
		add_pod_full(s, name, NULL, "  nodeSelector:\n    disk: ssd\n", NULL, NULL);
	}
	add_pod_full(s, "notin", NULL,
		     "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n"
		     "        nodeSelectorTerms:\n        - matchExpressions:\n"
		     "          - {key: zone, operator: NotIn, values: [a, b]}\n",
		     NULL, NULL);
	add_pod_full(s, "gt", NULL,
		     "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n"
		     "        nodeSelectorTerms:\n        - matchExpressions:\n"
		     "          - {key: cores, operator: Gt, values: [\"8\"]}\n",
		     NULL, NULL);
	add_pod_full(s, "field", NULL,
		     "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n"
		     "        nodeSelectorTerms:\n        - matchExpressions:\n"
		     "          - {key: zone, operator: In, values: [z]}\n"
		     "        - matchFields:\n          - {key: metadata.name, operator: In, values: [n1]}\n",
		     NULL, NULL);
	add_pod_full(s, "nowhere", NULL, "  nodeSelector:\n    disk: nvme\n", NULL, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	for (int i = 0; i < 3; i++) {
		char name[32];
		snprintf(name, sizeof(name), "ssd-%d", i);
		assert_string_equal(node_of(s, name), "n2");
	}
	assert_string_equal(node_of(s, "notin"), "n3");
	assert_string_equal(node_of(s, "gt"), "n3");
	assert_string_equal(node_of(s, "field"), "n1");
	assert_unschedulable(s, "nowhere",
			     "0/3 nodes are available: 3 node(s) didn't match Pod's node "
			     "affinity/selector.");
	ctrl_sim_free(s);
}

/* Pods with one nodeSelector share each node's remembered verdict; a
 * node's label change must still count for the next pod of the kind. */
static void test_selector_verdicts_follow_labels(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	(void)state;

	add_node_full(s, "n1", "4", 110, "disk: ssd", NULL, NULL);
	add_node_full(s, "n2", "4", 110, "disk: hdd", NULL, NULL);
	ctrl_sim_start(s);
	add_pod_full(s, "a", NULL, "  nodeSelector:\n    disk: ssd\n", NULL, NULL);
	ctrl_sim_run(s, 100);
	assert_string_equal(node_of(s, "a"), "n1");
	/* The labels swap: the same selector now fits n2 only. */
	add_node_full(s, "n1", "4", 110, "disk: hdd", NULL, NULL);
	add_node_full(s, "n2", "4", 110, "disk: ssd", NULL, NULL);
	ctrl_sim_run(s, 100);
	add_pod_full(s, "b", NULL, "  nodeSelector:\n    disk: ssd\n", NULL, NULL);
	ctrl_sim_run(s, 100);
	assert_string_equal(node_of(s, "b"), "n2");
	/* Another selector in between, then the first one again. */
	add_pod_full(s, "c", NULL, "  nodeSelector:\n    disk: hdd\n", NULL, NULL);
	ctrl_sim_run(s, 100);
	assert_string_equal(node_of(s, "c"), "n1");
	add_pod_full(s, "d", NULL, "  nodeSelector:\n    disk: ssd\n", NULL, NULL);
	ctrl_sim_run(s, 100);
	assert_string_equal(node_of(s, "d"), "n2");
	/* The label goes: the next pod of the kind fits nowhere. */
	add_node_full(s, "n2", "4", 110, "", NULL, NULL);
	ctrl_sim_run(s, 100);
	add_pod_full(s, "e", NULL, "  nodeSelector:\n    disk: ssd\n", NULL, NULL);
	ctrl_sim_run(s, 100);
	assert_unschedulable(s, "e",
			     "0/2 nodes are available: 2 node(s) didn't match Pod's node "
			     "affinity/selector.");
	ctrl_sim_free(s);
}

static void test_taints_and_tolerations(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	(void)state;

	add_node_full(s, "gpu", "4", 110, "kind: gpu", "taints: [{key: dedicated, value: gpu, effect: NoSchedule}]",
		      NULL);
	add_node_full(s, "cordoned", "4", 110, NULL, "unschedulable: true", NULL);
	add_node_full(s, "plain", "4", 110, NULL, NULL, NULL);
	add_node_full(s, "sick", "4", 110, NULL, NULL, "False");
	for (int i = 0; i < 4; i++) {
		char name[32];
		snprintf(name, sizeof(name), "p%d", i);
		add_pod(s, name, NULL);
	}
	add_pod_full(s, "tolerant", NULL,
		     "  nodeSelector: {kind: gpu}\n"
		     "  tolerations:\n  - {key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}\n",
		     NULL, NULL);
	add_pod_full(s, "everything", NULL,
		     "  nodeSelector: {kubernetes.io/hostname: x}\n"
		     "  tolerations:\n  - {operator: Exists}\n",
		     NULL, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	for (int i = 0; i < 4; i++) {
		char name[32];
		snprintf(name, sizeof(name), "p%d", i);
		assert_string_equal(node_of(s, name), "plain");
	}
	assert_string_equal(node_of(s, "tolerant"), "gpu");

	/* Everything busy but "plain": the message names each reason. */
	add_pod_full(s, "big", "8", NULL, NULL, NULL);
	ctrl_sim_run(s, 100);
	assert_unschedulable(s, "big",
			     "0/4 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated "
			     "taint {dedicated: gpu}, 1 node(s) had untolerated taint "
			     "{node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable.");

	/* A pod tolerating everything may use a cordoned, tainted, not-ready
	 * node: give "sick" the label it selects. */
	add_node_full(s, "sick", "4", 110, "kubernetes.io/hostname: x",
		      "unschedulable: true, taints: [{key: k, effect: NoExecute}]", "False");
	ctrl_sim_run(s, 100);
	assert_string_equal(node_of(s, "everything"), "sick");
	ctrl_sim_free(s);
}

#define PORT(n) "    ports:\n    - {containerPort: 80, hostPort: " n "}\n"

static void test_host_ports(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	(void)state;

	add_node(s, "n1", "4", 110);
	add_node(s, "n2", "4", 110);
	add_pod_full(s, "a", NULL, NULL, NULL, PORT("8080"));
	add_pod_full(s, "b", NULL, NULL, NULL, PORT("8080"));
	add_pod_full(s, "c", NULL, NULL, NULL, PORT("8080"));
	add_pod_full(s, "d", NULL, NULL, NULL, PORT("8081"));
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_string_not_equal(node_of(s, "a"), "");
	assert_string_not_equal(node_of(s, "b"), "");
	char a[64];
	snprintf(a, sizeof(a), "%s", node_of(s, "a"));
	assert_string_not_equal(node_of(s, "b"), a);
	assert_unschedulable(s, "c",
			     "0/2 nodes are available: 2 node(s) didn't have free ports for the "
			     "requested pod ports.");
	assert_string_not_equal(node_of(s, "d"), "");

	/* Deleting "a" frees its port: "c" takes it at once. */
	assert_int_equal(ctrl_sim_delete(s, "pods", "default", "a", 0), 0);
	ctrl_sim_run(s, 50);
	assert_string_equal(node_of(s, "c"), a);
	ctrl_sim_free(s);
}

static bool bound(struct ctrl_sim *s, void *data)
{
	return node_of(s, data)[0] != '\0';
}

static void test_unschedulable_until_node_appears(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	char msg[512];
	(void)state;

	ctrl_sim_start(s);
	add_pod(s, "p", "1");
	ctrl_sim_run(s, 100);
	assert_unschedulable(s, "p", "no nodes available to schedule pods");
	assert_int_equal(events(s, "p", "FailedScheduling", msg, sizeof(msg)), 1);

	/* A node too small: a new message, a new event. */
	add_node(s, "small", "500m", 110);
	ctrl_sim_run(s, 100);
	assert_unschedulable(s, "p", "0/1 nodes are available: 1 Insufficient cpu.");
	assert_int_equal(events(s, "p", "FailedScheduling", msg, sizeof(msg)), 2);

	/* Retries with back-off repeat neither the event nor the write. */
	ctrl_sim_run(s, 60000);
	assert_int_equal(events(s, "p", "FailedScheduling", NULL, 0), 2);
	assert_unschedulable(s, "p", "0/1 nodes are available: 1 Insufficient cpu.");

	/* The node grows: retried at once, not after the back-off. */
	add_node(s, "small", "2", 110);
	assert_true(ctrl_sim_run_until(s, 50, bound, "p"));
	assert_string_equal(node_of(s, "p"), "small");
	char status[512], reason[512];
	ctrl_sim_run(s, 10);
	scheduled_cond(s, "p", status, reason, msg, sizeof(msg));
	assert_string_equal(status, "True");
	assert_string_equal(reason, "");
	ctrl_sim_free(s);
}

static void test_unschedulable_until_pod_deleted(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	(void)state;

	add_node(s, "n1", "1", 110);
	add_pod(s, "a", "1");
	ctrl_sim_start(s);
	ctrl_sim_run(s, 100);
	assert_string_equal(node_of(s, "a"), "n1");
	add_pod(s, "b", "1");
	ctrl_sim_run(s, 30000); /* a long back-off */
	assert_unschedulable(s, "b", "0/1 nodes are available: 1 Insufficient cpu.");
	assert_int_equal(ctrl_sim_delete(s, "pods", "default", "a", 0), 0);
	assert_true(ctrl_sim_run_until(s, 50, bound, "b"));
	assert_string_equal(node_of(s, "b"), "n1");
	ctrl_sim_free(s);
}

static void test_terminated_and_foreign_pods(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	(void)state;

	add_node(s, "n1", "1", 110);
	/* Another scheduler's pod is left alone. */
	add_pod_full(s, "other", NULL, "  schedulerName: my-scheduler\n", NULL, NULL);
	/* A finished pod on the node does not count. */
	add_pod_full(s, "done", "1", "  nodeName: n1\n", NULL, NULL);
	json_t *done = ctrl_sim_get(s, "pods", "default", "done");
	json_object_set_new(json_object_get(done, "status"), "phase", json_string("Succeeded"));
	assert_int_equal(ctrl_sim_apply(s, done), 0);
	json_decref(done);
	add_pod(s, "p", "1");
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_string_equal(node_of(s, "other"), "");
	assert_string_equal(node_of(s, "p"), "n1");

	/* A running pod that finishes frees its requests. */
	add_pod(s, "q", "1");
	ctrl_sim_run(s, 100);
	assert_string_equal(node_of(s, "q"), "");
	json_t *p = ctrl_sim_get(s, "pods", "default", "p");
	json_object_set_new(json_object_get(p, "status"), "phase", json_string("Failed"));
	assert_int_equal(ctrl_sim_apply(s, p), 0);
	json_decref(p);
	assert_true(ctrl_sim_run_until(s, 50, bound, "q"));
	ctrl_sim_free(s);
}

static void test_restart_rebuilds_state(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	(void)state;

	add_node(s, "n1", "2", 110);
	add_pod(s, "a", "1");
	add_pod(s, "b", "1");
	add_pod(s, "c", "1");
	ctrl_sim_start(s);
	/* One round: binds proposed for two pods, the third unschedulable;
	 * leadership is lost before any write completes. */
	ctrl_manager_run(ctrl_sim_manager(s), 0);
	ctrl_sim_stop(s);
	ctrl_sim_run(s, 100); /* the writes land anyway */
	assert_int_equal(pods_on(s, "n1"), 2);

	add_pod(s, "d", "1");
	ctrl_sim_start(s);
	ctrl_sim_run(s, 15000);
	/* The new term counted the two bound pods: nothing more fits. */
	assert_int_equal(pods_on(s, "n1"), 2);

	/* And again with everything settled: the verdicts are the same, so
	 * no new FailedScheduling event either. */
	assert_int_equal(events(s, "d", "FailedScheduling", NULL, 0), 1);
	size_t before = events(s, "c", "FailedScheduling", NULL, 0);
	ctrl_sim_stop(s);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 15000);
	assert_int_equal(pods_on(s, "n1"), 2);
	assert_int_equal(events(s, "d", "FailedScheduling", NULL, 0), 1);
	assert_int_equal(events(s, "c", "FailedScheduling", NULL, 0), before);
	add_node(s, "n2", "2", 110);
	ctrl_sim_run(s, 100);
	assert_int_equal(pods_on(s, "n1"), 2);
	assert_int_equal(pods_on(s, "n2"), 2);
	ctrl_sim_free(s);
}

static void test_cas_conflict_retries(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	struct ctrl_stats st;
	(void)state;

	/* Room for one pod: a stale assumption would leave no room. */
	add_node(s, "n1", "4", 1);
	add_pod(s, "p", NULL);
	ctrl_sim_start(s);
	ctrl_manager_run(ctrl_sim_manager(s), 0); /* the bind is in flight */
	/* Someone else updates the pod meanwhile: the bind's CAS fails. */
	add_pod_full(s, "p", NULL, NULL, "  labels: {touched: \"yes\"}\n", NULL);
	ctrl_sim_run(s, 100);
	ctrl_manager_stats(ctrl_sim_manager(s), &st);
	assert_true(st.conflicts >= 1);
	assert_string_equal(node_of(s, "p"), "n1");
	json_t *p = ctrl_sim_get(s, "pods", "default", "p");
	assert_string_equal(ctrl_str(p, "metadata.labels.touched"), "yes");
	json_decref(p);
	/* One Scheduled event: recorded once the bind landed. */
	assert_int_equal(events(s, "p", "Scheduled", NULL, 0), 1);
	ctrl_sim_free(s);
}

static void test_failed_writes_back_off(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	(void)state;

	add_node(s, "n1", "4", 1);
	add_pod(s, "p", NULL);
	ctrl_sim_fail_writes(s, true);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 3000);
	assert_string_equal(node_of(s, "p"), "");
	ctrl_sim_fail_writes(s, false);
	assert_true(ctrl_sim_run_until(s, 15000, bound, "p"));
	assert_string_equal(node_of(s, "p"), "n1");
	/* Nothing left assumed: a second pod finds the node full, not more. */
	add_pod(s, "q", NULL);
	ctrl_sim_run(s, 100);
	assert_unschedulable(s, "q", "0/1 nodes are available: 1 Too many pods.");
	ctrl_sim_free(s);
}

static void test_many_pods_many_nodes(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	char name[32];
	(void)state;

	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "n%02d", i);
		add_node(s, name, "2", 110);
	}
	ctrl_sim_start(s);
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "p%03d", i);
		add_pod_full(s, name, "100m", NULL, OWNER, NULL);
	}
	ctrl_sim_run(s, 2000);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "n%02d", i);
		assert_int_equal(pods_on(s, name), 10);
	}
	ctrl_sim_free(s);
}

/* Pods whose PodScheduled message is @want. */
static size_t pods_with_message(struct ctrl_sim *s, const char *want)
{
	json_t *pods = ctrl_sim_list(s, "pods", "default", NULL), *p, *c;
	size_t i, j, n = 0;

	json_array_foreach(pods, i, p)
	{
		json_array_foreach(json_object_get(json_object_get(p, "status"), "conditions"), j, c)
		{
			const char *type = ctrl_str(c, "type"), *msg = ctrl_str(c, "message");
			if (type != NULL && strcmp(type, "PodScheduled") == 0 && msg != NULL &&
			    strcmp(msg, want) == 0)
				n++;
		}
	}
	json_decref(pods);
	return n;
}

static void test_same_reasons_not_rewritten_at_once(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	(void)state;

	add_node(s, "small", "500m", 110);
	add_pod(s, "p", "1");
	ctrl_sim_start(s);
	ctrl_sim_run(s, 100);
	assert_unschedulable(s, "p", "0/1 nodes are available: 1 Insufficient cpu.");

	/* Another small node: only the counts change. Retried at once (the
	 * verdict is the same), but the condition is left for a while. */
	add_node(s, "small2", "500m", 110);
	ctrl_sim_run(s, 5000);
	assert_unschedulable(s, "p", "0/1 nodes are available: 1 Insufficient cpu.");
	assert_int_equal(events(s, "p", "FailedScheduling", NULL, 0), 1);

	/* Later retries bring it up to date. */
	ctrl_sim_run(s, 60000);
	assert_unschedulable(s, "p", "0/2 nodes are available: 2 Insufficient cpu.");
	assert_int_equal(events(s, "p", "FailedScheduling", NULL, 0), 2);
	ctrl_sim_free(s);
}

static void test_rewrites_rate_limited(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	const char *none = "no nodes available to schedule pods";
	const char *small = "0/1 nodes are available: 1 Insufficient cpu.";
	struct ctrl_stats st0, st1;
	char name[32];
	(void)state;

	ctrl_sim_start(s);
	for (int i = 0; i < 600; i++) {
		snprintf(name, sizeof(name), "p%03d", i);
		add_pod(s, name, "1");
	}
	/* Every pod's first verdict is written. */
	ctrl_sim_run(s, 100);
	assert_int_equal(pods_with_message(s, none), 600);
	ctrl_manager_stats(ctrl_sim_manager(s), &st0);

	/* A node that fits none: every pod retried at once, but the new
	 * verdicts are written at a bounded rate, and all of them in time. */
	add_node(s, "small", "500m", 110);
	ctrl_sim_run(s, 100);
	size_t early = pods_with_message(s, small);
	assert_true(early > 0);
	assert_true(early <= 250);
	ctrl_sim_run(s, 60000);
	assert_int_equal(pods_with_message(s, small), 600);
	ctrl_manager_stats(ctrl_sim_manager(s), &st1);
	/* One condition and one event per pod, no more. */
	assert_int_equal(st1.writes - st0.writes, 2 * 600);
	ctrl_sim_free(s);
}

static void test_cached_verdicts_forgotten_on_change(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	char name[32];
	(void)state;

	/* Many pods of one shape fit nowhere: the first one's verdict stands
	 * for the others. */
	add_node_full(s, "n1", "4", 110, "disk: hdd", NULL, NULL);
	add_pod(s, "big", "3");
	ctrl_sim_start(s);
	ctrl_sim_run(s, 100);
	assert_string_equal(node_of(s, "big"), "n1");
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "p%02d", i);
		add_pod_full(s, name, "2", "  nodeSelector: {disk: hdd}\n", NULL, NULL);
	}
	ctrl_sim_run(s, 100);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "p%02d", i);
		assert_unschedulable(s, name, "0/1 nodes are available: 1 Insufficient cpu.");
	}
	/* Room freed on n1: not every pod may keep the old verdict. */
	assert_int_equal(ctrl_sim_delete(s, "pods", "default", "big", 0), 0);
	ctrl_sim_run(s, 100);
	assert_int_equal(pods_on(s, "n1"), 2);
	/* A node that changes to match: the rest go there at once. */
	add_node_full(s, "n2", "40", 110, "disk: ssd", NULL, NULL);
	ctrl_sim_run(s, 100);
	assert_int_equal(pods_on(s, "n2"), 0);
	add_node_full(s, "n2", "40", 110, "disk: hdd", NULL, NULL);
	ctrl_sim_run(s, 100);
	assert_int_equal(pods_on(s, "n1") + pods_on(s, "n2"), 20);
	assert_int_equal(pods_on(s, "n2"), 18);
	ctrl_sim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_binds_with_condition_and_event),
		cmocka_unit_test(test_spreads_owned_pods),
		cmocka_unit_test(test_spread_outweighs_least_allocated),
		cmocka_unit_test(test_spreads_pods_without_requests),
		cmocka_unit_test(test_resources_respected),
		cmocka_unit_test(test_node_selector_and_affinity),
		cmocka_unit_test(test_selector_verdicts_follow_labels),
		cmocka_unit_test(test_taints_and_tolerations),
		cmocka_unit_test(test_host_ports),
		cmocka_unit_test(test_unschedulable_until_node_appears),
		cmocka_unit_test(test_unschedulable_until_pod_deleted),
		cmocka_unit_test(test_terminated_and_foreign_pods),
		cmocka_unit_test(test_restart_rebuilds_state),
		cmocka_unit_test(test_cas_conflict_retries),
		cmocka_unit_test(test_failed_writes_back_off),
		cmocka_unit_test(test_many_pods_many_nodes),
		cmocka_unit_test(test_same_reasons_not_rewritten_at_once),
		cmocka_unit_test(test_rewrites_rate_limited),
		cmocka_unit_test(test_cached_verdicts_forgotten_on_change),
	};
	return cmocka_run_group_tests_name("ctrl_scheduler", tests, NULL, NULL);
}
