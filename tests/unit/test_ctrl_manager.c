/* The controller manager and the shared write helpers, through the
 * simulation and a toy controller: a "mirror" that keeps one ConfigMap
 * "<name>-copy" per ConfigMap carrying label copy=yes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "src/api/validate.h"
#include "tests/unit/ctrl_sim.h"

struct mirror {
	unsigned events, syncs, started, stopped;
	unsigned syncs_during_flight;
	bool slow; /* requeue after 5 s instead of writing */
};

static struct mirror g;
static const struct api_kind *cm_kind(void)
{
	return api_kind_by_resource("", "v1", "configmaps");
}

static int mirror_start(struct ctrl *c)
{
	ctrl_set_priv(c, &g);
	g.started++;
	return 0;
}

static void mirror_stop(struct ctrl *c)
{
	(void)c;
	g.stopped++;
}

static void mirror_event(struct ctrl *c, const struct ctrl_event *ev)
{
	char key[300];

	g.events++;
	if (ev->kind != cm_kind())
		return;
	if (strstr(ev->name, "-copy") != NULL)
		return;
	snprintf(key, sizeof(key), "%s/%s", ev->ns, ev->name);
	ctrl_enqueue(c, key);
}

static void mirror_sync(struct ctrl *c, const char *key)
{
	char ns[128], name[128], copy[200];
	json_t *src, *dst, *obj;

	g.syncs++;
	if (sscanf(key, "%127[^/]/%127s", ns, name) != 2)
		return;
	if (g.slow) {
		ctrl_enqueue_after(c, key, 5000);
		g.slow = false;
		return;
	}
	snprintf(copy, sizeof(copy), "%s-copy", name);
	src = ctrl_get(c, cm_kind(), ns, name, NULL);
	dst = ctrl_get(c, cm_kind(), ns, copy, NULL);
	if (src == NULL) {
		if (dst != NULL)
			ctrl_delete(c, cm_kind(), ns, copy, 0, NULL, NULL, -1, key);
	} else if (dst == NULL) {
		obj = json_pack("{s:s, s:s, s:{s:s, s:s}, s:O?}", "apiVersion", "v1", "kind",
				"ConfigMap", "metadata", "name", copy, "namespace", ns, "data",
				json_object_get(src, "data"));
		assert_int_equal(ctrl_create(c, cm_kind(), obj, key), 0);
		json_decref(obj);
	} else if (!json_equal(json_object_get(src, "data"), json_object_get(dst, "data"))) {
		json_object_set(dst, "data", json_object_get(src, "data"));
		assert_int_equal(ctrl_update(c, cm_kind(), dst, key), 0);
	}
	json_decref(src);
	json_decref(dst);
}

static const struct ctrl_ops mirror_ops = {
	.name = "mirror",
	.start = mirror_start,
	.stop = mirror_stop,
	.on_event = mirror_event,
	.sync = mirror_sync,
};
static const struct ctrl_ops *const mirror_list[] = {&mirror_ops, NULL};

static const char cm_yaml[] = "apiVersion: v1\n"
			      "kind: ConfigMap\n"
			      "metadata: {name: a, namespace: default}\n"
			      "data: {k: v1}\n";

static struct ctrl_sim *sim(void)
{
	struct ctrl_sim *s;

	memset(&g, 0, sizeof(g));
	s = ctrl_sim_new(mirror_list);
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: Namespace\n"
						"metadata: {name: default}\n"),
			 0);
	return s;
}

static void test_replay_and_create(void **state)
{
	struct ctrl_sim *s = sim();
	json_t *copy;

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, cm_yaml), 0);
	ctrl_sim_run(s, 10);
	/* Not leading: nothing happens. */
	assert_null(ctrl_sim_get(s, "configmaps", "default", "a-copy"));
	ctrl_sim_start(s);
	ctrl_sim_run(s, 10);
	assert_int_equal(g.started, 1);
	copy = ctrl_sim_get(s, "configmaps", "default", "a-copy");
	assert_non_null(copy);
	/* Server-owned fields, as the API sets them. */
	assert_non_null(ctrl_str(copy, "metadata.uid"));
	assert_int_equal(strlen(ctrl_str(copy, "metadata.uid")), 36);
	assert_string_equal(ctrl_str(copy, "metadata.creationTimestamp"), "2026-01-01T00:00:00Z");
	assert_string_equal(ctrl_str(copy, "data.k"), "v1");
	json_decref(copy);
	ctrl_sim_free(s);
}

static void test_update_and_delete_follow(void **state)
{
	struct ctrl_sim *s = sim();
	json_t *copy;
	struct ctrl_stats st;

	(void)state;
	ctrl_sim_start(s);
	assert_int_equal(ctrl_sim_apply_yaml(s, cm_yaml), 0);
	ctrl_sim_run(s, 10);
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: ConfigMap\n"
						"metadata: {name: a, namespace: default}\n"
						"data: {k: v2}\n"),
			 0);
	ctrl_sim_run(s, 10);
	copy = ctrl_sim_get(s, "configmaps", "default", "a-copy");
	assert_string_equal(ctrl_str(copy, "data.k"), "v2");
	json_decref(copy);
	assert_int_equal(ctrl_sim_delete(s, "configmaps", "default", "a", -1), 0);
	ctrl_sim_run(s, 10);
	assert_null(ctrl_sim_get(s, "configmaps", "default", "a-copy"));
	ctrl_manager_stats(ctrl_sim_manager(s), &st);
	assert_int_equal(st.writes, 3);
	assert_int_equal(st.conflicts, 0);
	ctrl_sim_free(s);
}

/* A key whose write is in flight is not synced again until it lands:
 * without that the mirror would create its copy twice. */
static void test_sync_waits_for_writes(void **state)
{
	struct ctrl_sim *s = sim();
	struct ctrl_stats st;

	(void)state;
	ctrl_sim_start(s);
	assert_int_equal(ctrl_sim_apply_yaml(s, cm_yaml), 0);
	/* Events for "a" keep coming while the create is in flight. */
	ctrl_manager_run(ctrl_sim_manager(s), 0);
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: ConfigMap\n"
						"metadata: {name: a, namespace: default}\n"
						"data: {k: v1}\nbinaryData: {}\n"),
			 0);
	ctrl_manager_run(ctrl_sim_manager(s), 0);
	ctrl_sim_run(s, 10);
	ctrl_manager_stats(ctrl_sim_manager(s), &st);
	assert_int_equal(st.writes, 1);
	assert_int_equal(st.conflicts, 0);
	assert_int_equal(ctrl_sim_count(s, "configmaps", "default", NULL), 2);
	ctrl_sim_free(s);
}

static void test_timers_virtual_time(void **state)
{
	struct ctrl_sim *s = sim();

	(void)state;
	ctrl_sim_start(s);
	g.slow = true;
	assert_int_equal(ctrl_sim_apply_yaml(s, cm_yaml), 0);
	ctrl_sim_run(s, 4999);
	assert_null(ctrl_sim_get(s, "configmaps", "default", "a-copy"));
	ctrl_sim_run(s, 2);
	json_t *copy = ctrl_sim_get(s, "configmaps", "default", "a-copy");
	assert_non_null(copy);
	json_decref(copy);
	ctrl_sim_free(s);
}

/* Leadership lost: nothing more is written; regained: state rebuilt. */
static void test_stop_start(void **state)
{
	struct ctrl_sim *s = sim();

	(void)state;
	ctrl_sim_start(s);
	ctrl_sim_stop(s);
	assert_int_equal(g.stopped, 1);
	assert_int_equal(ctrl_sim_apply_yaml(s, cm_yaml), 0);
	ctrl_sim_run(s, 100);
	assert_null(ctrl_sim_get(s, "configmaps", "default", "a-copy"));
	ctrl_sim_start(s);
	ctrl_sim_run(s, 10);
	json_t *copy = ctrl_sim_get(s, "configmaps", "default", "a-copy");
	assert_non_null(copy);
	json_decref(copy);
	assert_int_equal(g.started, 2);
	ctrl_sim_free(s);
}

/* A failed write requeues the key; the next attempt succeeds. */
static void test_failed_write_retries(void **state)
{
	struct ctrl_sim *s = sim();
	struct ctrl_stats st;

	(void)state;
	ctrl_sim_start(s);
	ctrl_sim_fail_writes(s, true);
	assert_int_equal(ctrl_sim_apply_yaml(s, cm_yaml), 0);
	ctrl_manager_run(ctrl_sim_manager(s), 0);
	ctrl_sim_fail_writes(s, false);
	ctrl_sim_run(s, 10);
	ctrl_manager_stats(ctrl_sim_manager(s), &st);
	assert_int_equal(st.write_errors, 1);
	json_t *copy = ctrl_sim_get(s, "configmaps", "default", "a-copy");
	assert_non_null(copy);
	json_decref(copy);
	ctrl_sim_free(s);
}

/* A stale update (someone wrote in between) is not written: CAS. */
static void test_stale_update_refused(void **state)
{
	struct ctrl_sim *s = sim();
	json_t *copy;

	(void)state;
	ctrl_sim_start(s);
	assert_int_equal(ctrl_sim_apply_yaml(s, cm_yaml), 0);
	ctrl_sim_run(s, 10);
	copy = ctrl_sim_get(s, "configmaps", "default", "a-copy");
	/* A user edits the copy: the mirror's next update must be based on it. */
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: ConfigMap\n"
						"metadata: {name: a-copy, namespace: default}\n"
						"data: {k: user}\n"),
			 0);
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: ConfigMap\n"
						"metadata: {name: a, namespace: default}\n"
						"data: {k: v3}\n"),
			 0);
	ctrl_sim_run(s, 10);
	json_decref(copy);
	copy = ctrl_sim_get(s, "configmaps", "default", "a-copy");
	assert_string_equal(ctrl_str(copy, "data.k"), "v3");
	json_decref(copy);
	ctrl_sim_free(s);
}

/* Object semantics of the helpers: generation, graceful pod deletion,
 * finalizers. */
static struct ctrl *g_ctrl;
static int grab_start(struct ctrl *c)
{
	g_ctrl = c;
	return 0;
}
static void noop_event(struct ctrl *c, const struct ctrl_event *ev)
{
	(void)c;
	(void)ev;
}
static void noop_sync(struct ctrl *c, const char *key)
{
	(void)c;
	(void)key;
}
static const struct ctrl_ops grab_ops = {"grab", grab_start, NULL, noop_event, noop_sync};
static const struct ctrl_ops *const grab_list[] = {&grab_ops, NULL};

static void test_write_semantics(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(grab_list);
	const struct api_kind *dk = api_kind_by_resource("apps", "v1", "deployments");
	const struct api_kind *pk = api_kind_by_resource("", "v1", "pods");
	json_t *d, *p;

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: Namespace\n"
						"metadata: {name: default}\n"),
			 0);
	ctrl_sim_start(s);
	assert_int_equal(
		ctrl_sim_apply_yaml(
			s, "apiVersion: apps/v1\nkind: Deployment\n"
			   "metadata: {name: d, namespace: default}\n"
			   "spec:\n  selector: {matchLabels: {a: b}}\n"
			   "  template:\n    metadata: {labels: {a: b}}\n"
			   "    spec: {containers: [{name: c, image: busybox}]}\n"),
		0);
	d = ctrl_get(g_ctrl, dk, "default", "d", NULL);
	assert_int_equal(ctrl_int(d, "metadata.generation", 0), 1);
	/* Status only: generation stays. */
	json_object_set_new(d, "status", json_pack("{s:i}", "replicas", 1));
	assert_int_equal(ctrl_update(g_ctrl, dk, d, NULL), 0);
	ctrl_sim_run(s, 5);
	json_decref(d);
	d = ctrl_get(g_ctrl, dk, "default", "d", NULL);
	assert_int_equal(ctrl_int(d, "metadata.generation", 0), 1);
	assert_int_equal(ctrl_int(d, "status.replicas", 0), 1);
	json_object_set_new(json_object_get(d, "spec"), "replicas", json_integer(5));
	assert_int_equal(ctrl_update(g_ctrl, dk, d, NULL), 0);
	ctrl_sim_run(s, 5);
	json_decref(d);
	d = ctrl_get(g_ctrl, dk, "default", "d", NULL);
	assert_int_equal(ctrl_int(d, "metadata.generation", 0), 2);
	json_decref(d);

	/* generateName; a pod on a node is deleted gracefully. */
	p = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:[{s:s, s:s}]}}", "apiVersion", "v1",
		      "kind", "Pod", "metadata", "generateName", "web-", "namespace", "default",
		      "spec", "nodeName", "n1", "containers", "name", "c", "image", "busybox");
	assert_int_equal(ctrl_create(g_ctrl, pk, p, NULL), 0);
	json_decref(p);
	ctrl_sim_run(s, 5);
	json_t *pods = ctrl_sim_list(s, "pods", "default", NULL);
	assert_int_equal(json_array_size(pods), 1);
	const char *name = ctrl_str(json_array_get(pods, 0), "metadata.name");
	assert_int_equal(strncmp(name, "web-", 4), 0);
	assert_int_equal(strlen(name), 9);
	assert_string_equal(ctrl_str(json_array_get(pods, 0), "status.phase"), "Pending");
	assert_int_equal(ctrl_delete(g_ctrl, pk, "default", name, 0, NULL, NULL, -1, NULL), 0);
	ctrl_sim_run(s, 5);
	p = ctrl_sim_get(s, "pods", "default", name);
	assert_non_null(p);
	assert_non_null(ctrl_str(p, "metadata.deletionTimestamp"));
	assert_int_equal(ctrl_int(p, "metadata.deletionGracePeriodSeconds", 0), 30);
	json_decref(p);
	/* Grace 0: gone. */
	assert_int_equal(ctrl_delete(g_ctrl, pk, "default", name, 0, NULL, NULL, 0, NULL), 0);
	ctrl_sim_run(s, 5);
	assert_null(ctrl_sim_get(s, "pods", "default", name));
	json_decref(pods);

	/* A pod with a finalizer on a node: removing the finalizer while
	 * its grace period runs does not delete it; the agent's grace-0
	 * delete does. */
	p = json_pack("{s:s, s:s, s:{s:s, s:s, s:[s]}, s:{s:s, s:[{s:s, s:s}]}}", "apiVersion",
		      "v1", "kind", "Pod", "metadata", "name", "fin", "namespace", "default",
		      "finalizers", "example.com/x", "spec", "nodeName", "n1", "containers", "name",
		      "c", "image", "busybox");
	assert_int_equal(ctrl_create(g_ctrl, pk, p, NULL), 0);
	json_decref(p);
	ctrl_sim_run(s, 5);
	assert_int_equal(ctrl_delete(g_ctrl, pk, "default", "fin", 0, NULL, NULL, -1, NULL), 0);
	ctrl_sim_run(s, 5);
	p = ctrl_get(g_ctrl, pk, "default", "fin", NULL);
	json_object_del(json_object_get(p, "metadata"), "finalizers");
	assert_int_equal(ctrl_update(g_ctrl, pk, p, NULL), 0);
	json_decref(p);
	ctrl_sim_run(s, 5);
	p = ctrl_sim_get(s, "pods", "default", "fin");
	assert_non_null(p);
	assert_int_equal(ctrl_int(p, "metadata.deletionGracePeriodSeconds", -1), 30);
	json_decref(p);
	assert_int_equal(ctrl_delete(g_ctrl, pk, "default", "fin", 0, NULL, NULL, 0, NULL), 0);
	ctrl_sim_run(s, 5);
	assert_null(ctrl_sim_get(s, "pods", "default", "fin"));

	/* No new objects in a terminating namespace. */
	assert_int_equal(ctrl_sim_delete(s, "namespaces", NULL, "default", -1), 0);
	p = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind", "ConfigMap",
		      "metadata", "name", "x", "namespace", "default");
	assert_int_equal(ctrl_create(g_ctrl, api_kind_by_resource("", "v1", "configmaps"), p,
				     NULL),
			 -ENOENT);
	json_decref(p);
	ctrl_sim_free(s);
}

static void test_events_recorded(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new(grab_list);
	json_t *ns, *evs;

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: Namespace\n"
						"metadata: {name: default}\n"),
			 0);
	ctrl_sim_start(s);
	ns = ctrl_sim_get(s, "namespaces", NULL, "default");
	ctrl_event(g_ctrl, ns, "Normal", "Testing", "hello %d", 42);
	ctrl_sim_run(s, 5);
	evs = ctrl_sim_list(s, "events", "default", NULL);
	assert_int_equal(json_array_size(evs), 1);
	assert_string_equal(ctrl_str(json_array_get(evs, 0), "message"), "hello 42");
	assert_string_equal(ctrl_str(json_array_get(evs, 0), "involvedObject.kind"), "Namespace");
	assert_string_equal(ctrl_str(json_array_get(evs, 0), "source.component"), "grab");
	json_decref(evs);
	json_decref(ns);
	ctrl_sim_free(s);
}

/* ------------------------------------------------------------ bind */

static const char *const bind_variants[] = {
	/* As created: status.phase only. */
	"",
	/* Unschedulable before, among other conditions. */
	"status:\n  phase: Pending\n  conditions:\n"
	"  - {type: Initialized, status: \"True\", lastTransitionTime: \"2025-01-01T00:00:00Z\"}\n"
	"  - {type: PodScheduled, status: \"False\", reason: Unschedulable,"
	" message: \"0/1 nodes are available\", lastProbeTime: null,"
	" lastTransitionTime: \"2025-01-01T00:00:00Z\"}\n"
	"  - {type: Ready, status: \"False\"}\n",
	/* PodScheduled True already: its time stays. */
	"status:\n  phase: Pending\n  conditions:\n"
	"  - {type: PodScheduled, status: \"True\", lastTransitionTime: \"2025-01-01T00:00:00Z\"}\n",
	/* Conditions without PodScheduled; an empty nodeName. */
	"status:\n  phase: Pending\n  conditions:\n  - {type: Ready, status: \"False\"}\n",
	/* Many keys (map16 headers), labels with dots. */
	"  labels: {l1: v, l2: v, l3: v, l4: v, l5: v, l6: v, l7: v, l8: v, l9: v, l10: v,"
	" l11: v, l12: v, l13: v, app.kubernetes.io/name: web, l14: v, l15: v, l16: v}\n",
};

static void add_bind_pod(struct ctrl_sim *s, const char *name, const char *variant)
{
	bool meta = strncmp(variant, "  ", 2) == 0;

	assert_int_equal(ctrl_sim_apply_yamlf(s,
		"apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: default\n%s"
		"spec:\n  nodeName: \"\"\n  containers: [{name: c, image: busybox}]\n%s",
		name, meta ? variant : "", meta ? "" : variant), 0);
}

/* The stored pod without what differs between two pods of a test. */
static json_t *comparable(struct ctrl_sim *s, const char *name)
{
	json_t *p = ctrl_sim_get(s, "pods", "default", name), *meta;

	assert_non_null(p);
	meta = json_object_get(p, "metadata");
	json_object_del(meta, "name");
	json_object_del(meta, "uid");
	json_object_del(meta, "resourceVersion");
	return p;
}

static void assert_valid(const char *plural, json_t *obj)
{
	struct api_errors e;

	api_errors_init(&e);
	json_object_del(json_object_get(obj, "metadata"), "resourceVersion");
	assert_int_equal(api_validate(api_kind_by_resource("", "v1", plural), obj, 0, &e), 0);
	assert_int_equal(e.n, 0);
	api_errors_close(&e);
}

/* What ctrl_bind must equal: the bind through a tree and ctrl_update. */
static void bind_by_tree(const char *name, const char *node)
{
	const struct api_kind *pk = api_kind_by_resource("", "v1", "pods");
	json_t *p = ctrl_get(g_ctrl, pk, "default", name, NULL), *c;
	size_t i;

	json_object_set_new(json_object_get(p, "spec"), "nodeName", json_string(node));
	ctrl_set_condition(g_ctrl, p, "PodScheduled", "True", NULL, NULL);
	json_array_foreach(json_object_get(json_object_get(p, "status"), "conditions"), i, c)
	{
		if (strcmp(ctrl_str(c, "type"), "PodScheduled") == 0) {
			json_object_del(c, "reason");
			json_object_del(c, "message");
		}
	}
	assert_int_equal(ctrl_update(g_ctrl, pk, p, NULL), 0);
	json_decref(p);
}

static uint64_t rev_of(struct ctrl_sim *s, const char *name)
{
	json_t *p = ctrl_sim_get(s, "pods", "default", name);
	uint64_t rv;

	assert_non_null(p);
	rv = strtoull(ctrl_str(p, "metadata.resourceVersion"), NULL, 10);
	json_decref(p);
	return rv;
}

static void test_bind_matches_tree_path(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(grab_list, "default");
	char fast[32], tree[32];
	(void)state;

	ctrl_sim_start(s);
	for (size_t v = 0; v < sizeof(bind_variants) / sizeof(*bind_variants); v++) {
		snprintf(fast, sizeof(fast), "fast-%zu", v);
		snprintf(tree, sizeof(tree), "tree-%zu", v);
		add_bind_pod(s, fast, bind_variants[v]);
		add_bind_pod(s, tree, bind_variants[v]);
		ctrl_sim_run(s, 1500); /* the bind's time differs from the create's */
		assert_int_equal(ctrl_bind(g_ctrl, "default", fast, rev_of(s, fast), "node-1.example",
					   NULL),
				 0);
		bind_by_tree(tree, "node-1.example");
		ctrl_sim_run(s, 5);
		json_t *a = comparable(s, fast), *b = comparable(s, tree);
		if (!json_equal(a, b)) {
			char *sa = json_dumps(a, JSON_SORT_KEYS), *sb = json_dumps(b, JSON_SORT_KEYS);
			fail_msg("variant %zu:\n fast %s\n tree %s", v, sa, sb);
		}
		assert_string_equal(ctrl_str(a, "spec.nodeName"), "node-1.example");
		assert_int_equal(ctrl_int(a, "metadata.generation", 0), 2);
		json_decref(a);
		a = ctrl_sim_get(s, "pods", "default", fast);
		assert_valid("pods", a);
		json_decref(a);
		json_decref(b);
	}
	ctrl_sim_free(s);
}

static void test_bind_refusals(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(grab_list, "default");
	struct ctrl_stats st0, st1;
	json_t *a, *b;
	uint64_t rv;
	(void)state;

	ctrl_sim_start(s);
	add_bind_pod(s, "p", "");
	rv = rev_of(s, "p");
	assert_int_equal(ctrl_bind(g_ctrl, "default", "nope", rv, "n1", NULL), -ENOENT);
	/* Stale: nothing written, the key requeued. */
	ctrl_manager_stats(ctrl_sim_manager(s), &st0);
	assert_int_equal(ctrl_bind(g_ctrl, "default", "p", rv - 1, "n1", NULL), 0);
	ctrl_manager_stats(ctrl_sim_manager(s), &st1);
	assert_int_equal(st1.writes, st0.writes);
	/* A CAS that loses: the write fails in the store. */
	assert_int_equal(ctrl_bind(g_ctrl, "default", "p", rv, "n1", NULL), 0);
	ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n"
			       "  namespace: default\n  labels: {x: y}\n"
			       "spec:\n  nodeName: \"\"\n  containers: [{name: c, image: busybox}]\n");
	ctrl_sim_run(s, 5);
	a = ctrl_sim_get(s, "pods", "default", "p");
	assert_string_equal(ctrl_str(a, "spec.nodeName"), "");
	json_decref(a);
	/* Bound: -EALREADY. */
	assert_int_equal(ctrl_bind(g_ctrl, "default", "p", rev_of(s, "p"), "n1", NULL), 0);
	ctrl_sim_run(s, 5);
	assert_int_equal(ctrl_bind(g_ctrl, "default", "p", rev_of(s, "p"), "n2", NULL),
			 -EALREADY);
	/* A node name that breaks the name rules takes the tree path (which
	 * has the last word, as for any update). */
	add_bind_pod(s, "q", "");
	assert_int_equal(ctrl_bind(g_ctrl, "default", "q", rev_of(s, "q"), "Bad_Name", NULL), 0);
	ctrl_sim_run(s, 5);
	a = ctrl_sim_get(s, "pods", "default", "q");
	assert_string_equal(ctrl_str(a, "spec.nodeName"), "Bad_Name");
	json_decref(a);
	/* Being deleted (a finalizer holds it): the tree path, same result. */
	add_bind_pod(s, "d1", "  finalizers: [example.com/x]\n");
	add_bind_pod(s, "d2", "  finalizers: [example.com/x]\n");
	assert_int_equal(ctrl_sim_delete(s, "pods", "default", "d1", -1), 0);
	assert_int_equal(ctrl_sim_delete(s, "pods", "default", "d2", -1), 0);
	ctrl_sim_run(s, 5);
	assert_int_equal(ctrl_bind(g_ctrl, "default", "d1", rev_of(s, "d1"), "n1", NULL), 0);
	bind_by_tree("d2", "n1");
	ctrl_sim_run(s, 5);
	a = comparable(s, "d1");
	b = comparable(s, "d2");
	json_object_del(json_object_get(a, "metadata"), "deletionTimestamp");
	json_object_del(json_object_get(b, "metadata"), "deletionTimestamp");
	assert_true(json_equal(a, b));
	assert_string_equal(ctrl_str(a, "spec.nodeName"), "n1");
	json_decref(a);
	json_decref(b);
	ctrl_sim_free(s);
}

static void test_event_about(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(grab_list, "default");
	json_t *evs, *ev;
	char want_ts[32];
	(void)state;

	ctrl_sim_start(s);
	ctrl_event_about(g_ctrl, "v1", "Pod", "default", "web-1", "u-1", "42", "Normal",
			 "Scheduled", "Successfully assigned %s/%s to %s", "default", "web-1", "n1");
	/* Non-ASCII text goes through the tree path; so does a name that
	 * makes an invalid event name (refused there). */
	ctrl_event_about(g_ctrl, "v1", "Pod", "default", "web-2", NULL, NULL, "Warning",
			 "Odd", "caf\xc3\xa9");
	ctrl_event_about(g_ctrl, "v1", "Pod", "default", "Web_3", NULL, NULL, "Normal", "X",
			 "x");
	/* No namespace: "default"; a namespace that is absent: nothing. */
	ctrl_event_about(g_ctrl, "v1", "Node", NULL, "n1", NULL, NULL, "Normal", "Ok", "ok");
	ctrl_event_about(g_ctrl, "v1", "Pod", "absent", "p", NULL, NULL, "Normal", "Ok", "ok");
	ctrl_sim_run(s, 5);
	evs = ctrl_sim_list(s, "events", NULL, NULL);
	assert_int_equal(json_array_size(evs), 3);
	ctrl_rfc3339(ctrl_sim_now(s) - 5, want_ts, sizeof(want_ts));
	for (size_t i = 0; i < json_array_size(evs); i++) {
		ev = json_array_get(evs, i);
		const char *in = ctrl_str(ev, "involvedObject.name");
		assert_string_equal(ctrl_str(ev, "metadata.namespace"), "default");
		assert_non_null(ctrl_str(ev, "metadata.uid"));
		assert_int_equal(strlen(ctrl_str(ev, "metadata.uid")), 36);
		assert_string_equal(ctrl_str(ev, "source.component"), "grab");
		assert_string_equal(ctrl_str(ev, "reportingComponent"), "grab");
		assert_int_equal(ctrl_int(ev, "count", 0), 1);
		assert_string_equal(ctrl_str(ev, "firstTimestamp"), want_ts);
		assert_string_equal(ctrl_str(ev, "lastTimestamp"), want_ts);
		assert_string_equal(ctrl_str(ev, "metadata.creationTimestamp"), want_ts);
		assert_int_equal(strncmp(ctrl_str(ev, "metadata.name"), in, strlen(in)), 0);
		if (strcmp(in, "web-1") == 0) {
			assert_string_equal(ctrl_str(ev, "message"),
					    "Successfully assigned default/web-1 to n1");
			assert_string_equal(ctrl_str(ev, "involvedObject.uid"), "u-1");
			assert_string_equal(ctrl_str(ev, "involvedObject.resourceVersion"), "42");
			assert_string_equal(ctrl_str(ev, "involvedObject.namespace"), "default");
			assert_string_equal(ctrl_str(ev, "involvedObject.kind"), "Pod");
			assert_string_equal(ctrl_str(ev, "involvedObject.apiVersion"), "v1");
			assert_string_equal(ctrl_str(ev, "reason"), "Scheduled");
			assert_string_equal(ctrl_str(ev, "type"), "Normal");
		} else if (strcmp(in, "web-2") == 0) {
			assert_string_equal(ctrl_str(ev, "message"), "caf\xc3\xa9");
			assert_null(ctrl_str(ev, "involvedObject.uid"));
		} else {
			assert_string_equal(in, "n1");
			assert_string_equal(ctrl_str(ev, "involvedObject.namespace"), "");
		}
		assert_valid("events", ev);
	}
	json_decref(evs);
	ctrl_sim_free(s);
}

/* A burst of store changes is delivered over several runs, not one. */
static void test_drain_budget(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(grab_list, "default");
	struct ctrl_manager *m = ctrl_sim_manager(s);
	struct ctrl_stats a, b;
	unsigned runs = 0;
	(void)state;

	ctrl_sim_start(s);
	ctrl_sim_run(s, 5);
	for (int i = 0; i < 2500; i++)
		assert_int_equal(ctrl_sim_apply_yamlf(s, "apiVersion: v1\nkind: ConfigMap\n"
						      "metadata: {name: c%d, namespace: default}\n",
						      i),
				 0);
	ctrl_manager_stats(m, &a);
	assert_true(ctrl_manager_run(m, 0));
	ctrl_manager_stats(m, &b);
	assert_true(b.events - a.events > 0);
	assert_true(b.events - a.events < 2500);
	while (ctrl_manager_run(m, 0))
		runs++;
	ctrl_manager_stats(m, &b);
	assert_int_equal(b.events - a.events, 2500);
	assert_true(runs >= 1);
	ctrl_sim_free(s);
}

/* --controllers */
static void test_select(void **state)
{
	const struct ctrl_ops *ops[64];
	char err[128];
	int n_all = 0, n, i;

	(void)state;
	while (ctrl_all[n_all] != NULL)
		n_all++;
	assert_int_equal(ctrl_select(NULL, ops, 64, err, sizeof(err)), n_all);
	assert_int_equal(ctrl_select("*", ops, 64, err, sizeof(err)), n_all);
	n = ctrl_select("*,-deployment,-scheduler", ops, 64, err, sizeof(err));
	assert_int_equal(n, n_all - 2);
	for (i = 0; i < n; i++) {
		assert_string_not_equal(ops[i]->name, "deployment");
		assert_string_not_equal(ops[i]->name, "scheduler");
	}
	assert_null(ops[n]);
	assert_int_equal(ctrl_select("scheduler", ops, 64, err, sizeof(err)), 1);
	assert_ptr_equal(ops[0], &ctrl_scheduler_ops);
	assert_int_equal(ctrl_select("", ops, 64, err, sizeof(err)), 0);
	assert_int_equal(ctrl_select("*,-nope", ops, 64, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "unknown controller 'nope'");
	assert_int_equal(ctrl_select("*", ops, 3, err, sizeof(err)), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_and_create),
		cmocka_unit_test(test_update_and_delete_follow),
		cmocka_unit_test(test_sync_waits_for_writes),
		cmocka_unit_test(test_timers_virtual_time),
		cmocka_unit_test(test_stop_start),
		cmocka_unit_test(test_failed_write_retries),
		cmocka_unit_test(test_stale_update_refused),
		cmocka_unit_test(test_write_semantics),
		cmocka_unit_test(test_events_recorded),
		cmocka_unit_test(test_bind_matches_tree_path),
		cmocka_unit_test(test_bind_refusals),
		cmocka_unit_test(test_event_about),
		cmocka_unit_test(test_drain_budget),
		cmocka_unit_test(test_select),
	};

	return cmocka_run_group_tests_name("ctrl_manager", tests, NULL, NULL);
}
