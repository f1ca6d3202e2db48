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
		cmocka_unit_test(test_select),
	};

	return cmocka_run_group_tests_name("ctrl_manager", tests, NULL, NULL);
}
