/* The ReplicaSet controller in the simulation: scale up and down, owner
 * references, adoption and release, replacement of deleted pods, the
 * deletion order, status counts with minReadySeconds, a ReplicaSet being
 * deleted, failed and stale (CAS) writes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/ctrl_sim.h"

static const struct ctrl_ops *const ops[] = {&ctrl_replicaset_ops, NULL};

/* ------------------------------------------------------------ helpers */

static struct ctrl_sim *sim_new(void)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");

	ctrl_sim_kubelet(s, true);
	return s;
}

/* ReplicaSet "web" (app=web) with @replicas pods bound to node-1 (so the
 * sim kubelet makes them Ready), minReadySeconds @mrs and extra metadata
 * lines @meta (indented 2). */
static void apply_rs(struct ctrl_sim *s, int replicas, int mrs, const char *meta)
{
	assert_int_equal(ctrl_sim_apply_yamlf(s,
		 "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web\n"
		 "  namespace: default\n%s"
		 "spec:\n  replicas: %d\n  minReadySeconds: %d\n"
		 "  selector:\n    matchLabels:\n      app: web\n"
		 "  template:\n    metadata:\n      labels:\n        app: web\n        tier: fe\n"
		 "    spec:\n      nodeName: node-1\n      containers:\n"
		 "      - name: c\n        image: nginx:1\n",
		 meta != NULL ? meta : "", replicas, mrs),
			 0);
}

/* A bare pod with labels @labels (flow map), on node-1 when @bound. */
static void apply_pod(struct ctrl_sim *s, const char *name, const char *labels, bool bound)
{
	assert_int_equal(ctrl_sim_apply_yamlf(s,
		 "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: default\n"
		 "  labels: %s\nspec:\n%s  containers:\n  - name: c\n    image: nginx:1\n",
		 name, labels, bound ? "  nodeName: node-1\n" : ""),
			 0);
}

static int64_t rs_int(struct ctrl_sim *s, const char *path)
{
	return ctrl_sim_int(s, "replicasets", "default", "web", path, 0);
}

/* Pods of app=web not being deleted. */
static size_t active_pods(struct ctrl_sim *s)
{
	json_t *pods = ctrl_sim_list(s, "pods", "default", "app=web"), *p;
	size_t i, n = 0;

	json_array_foreach(pods, i, p)
	{
		if (ctrl_pod_active(p))
			n++;
	}
	json_decref(pods);
	return n;
}

static size_t events(struct ctrl_sim *s, const char *reason)
{
	return ctrl_sim_events(s, "default", NULL, reason, NULL, 0);
}

/* ------------------------------------------------------------ tests */

static void creates_pods_with_owner(void **state)
{
	struct ctrl_sim *s = sim_new();
	json_t *rs, *pods, *p, *ref;
	size_t i;

	(void)state;
	apply_rs(s, 3, 0, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	rs = ctrl_sim_get(s, "replicasets", "default", "web");
	pods = ctrl_sim_list(s, "pods", "default", "app=web");
	assert_int_equal(json_array_size(pods), 3);
	json_array_foreach(pods, i, p)
	{
		assert_string_equal(ctrl_str(p, "metadata.generateName"), "web-");
		assert_int_equal(strncmp(ctrl_str(p, "metadata.name"), "web-", 4), 0);
		assert_int_equal(strlen(ctrl_str(p, "metadata.name")), 9);
		assert_string_equal(ctrl_str(p, "metadata.labels.tier"), "fe");
		assert_string_equal(json_string_value(json_object_get(
					    json_array_get(api_json_path(p, "spec.containers"), 0),
					    "image")),
				    "nginx:1");
		ref = json_array_get(api_json_path(p, "metadata.ownerReferences"), 0);
		assert_non_null(ref);
		assert_string_equal(json_string_value(json_object_get(ref, "kind")), "ReplicaSet");
		assert_string_equal(json_string_value(json_object_get(ref, "name")), "web");
		assert_string_equal(json_string_value(json_object_get(ref, "uid")),
				    ctrl_str(rs, "metadata.uid"));
		assert_true(json_is_true(json_object_get(ref, "controller")));
		assert_true(json_is_true(json_object_get(ref, "blockOwnerDeletion")));
	}
	assert_int_equal(ctrl_int(rs, "status.replicas", -1), 3);
	assert_int_equal(ctrl_int(rs, "status.fullyLabeledReplicas", -1), 3);
	assert_int_equal(ctrl_int(rs, "status.readyReplicas", -1), 3);
	assert_int_equal(ctrl_int(rs, "status.availableReplicas", -1), 3);
	assert_int_equal(ctrl_int(rs, "status.observedGeneration", -1), 1);
	assert_int_equal(events(s, "SuccessfulCreate"), 3);
	json_decref(pods);
	json_decref(rs);
	ctrl_sim_free(s);
}

static void scales_up_and_down(void **state)
{
	struct ctrl_sim *s = sim_new();

	(void)state;
	apply_rs(s, 2, 0, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_int_equal(active_pods(s), 2);
	apply_rs(s, 7, 0, NULL);
	ctrl_sim_run(s, 1000);
	assert_int_equal(active_pods(s), 7);
	assert_int_equal(rs_int(s, "status.replicas"), 7);
	assert_int_equal(rs_int(s, "status.observedGeneration"), 2);
	apply_rs(s, 1, 0, NULL);
	ctrl_sim_run(s, 1000);
	assert_int_equal(active_pods(s), 1);
	/* The kubelet finished the graceful deletions. */
	assert_int_equal(ctrl_sim_count(s, "pods", "default", "app=web"), 1);
	assert_int_equal(rs_int(s, "status.replicas"), 1);
	assert_int_equal(rs_int(s, "status.readyReplicas"), 1);
	assert_int_equal(events(s, "SuccessfulDelete"), 6);
	apply_rs(s, 0, 0, NULL);
	ctrl_sim_run(s, 1000);
	assert_int_equal(ctrl_sim_count(s, "pods", "default", "app=web"), 0);
	assert_int_equal(rs_int(s, "status.replicas"), 0);
	ctrl_sim_free(s);
}

/* Orphans matching the selector are adopted; the surplus goes, the
 * unscheduled (not ready) pods first. */
static void adopts_and_deletes_unscheduled_first(void **state)
{
	struct ctrl_sim *s = sim_new();
	json_t *pods, *p;
	size_t i;

	(void)state;
	apply_pod(s, "stray-a", "{app: web}", false);
	apply_pod(s, "stray-b", "{app: web}", false);
	apply_pod(s, "other", "{app: db}", false);
	apply_rs(s, 3, 0, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_int_equal(active_pods(s), 3);
	/* Adopted first, so only one pod was created. */
	assert_int_equal(events(s, "SuccessfulCreate"), 1);
	pods = ctrl_sim_list(s, "pods", "default", "app=web");
	json_array_foreach(pods, i, p)
	{
		assert_non_null(ctrl_controller_ref(p));
	}
	json_decref(pods);
	p = ctrl_sim_get(s, "pods", "default", "other");
	assert_null(ctrl_controller_ref(p));
	json_decref(p);
	/* Scaling to one deletes the two unscheduled pods first. */
	apply_rs(s, 1, 0, NULL);
	ctrl_sim_run(s, 1000);
	assert_int_equal(active_pods(s), 1);
	assert_null(ctrl_sim_get(s, "pods", "default", "stray-a"));
	assert_null(ctrl_sim_get(s, "pods", "default", "stray-b"));
	pods = ctrl_sim_list(s, "pods", "default", "app=web");
	assert_int_equal(json_array_size(pods), 1);
	assert_string_equal(ctrl_str(json_array_get(pods, 0), "spec.nodeName"), "node-1");
	json_decref(pods);
	ctrl_sim_free(s);
}

/* A pod whose labels stop matching is released and replaced. */
static void releases_pod_that_stops_matching(void **state)
{
	struct ctrl_sim *s = sim_new();
	json_t *pods, *p;
	char name[64];

	(void)state;
	apply_rs(s, 2, 0, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	pods = ctrl_sim_list(s, "pods", "default", "app=web");
	p = json_deep_copy(json_array_get(pods, 0));
	snprintf(name, sizeof(name), "%s", ctrl_str(p, "metadata.name"));
	json_object_set_new(api_json_path(p, "metadata.labels"), "app", json_string("debug"));
	assert_int_equal(ctrl_sim_apply(s, p), 0);
	json_decref(p);
	json_decref(pods);
	ctrl_sim_run(s, 1000);
	assert_int_equal(active_pods(s), 2);
	p = ctrl_sim_get(s, "pods", "default", name);
	assert_non_null(p);
	assert_null(api_json_path(p, "metadata.ownerReferences"));
	json_decref(p);
	assert_int_equal(events(s, "SuccessfulCreate"), 3);
	ctrl_sim_free(s);
}

static void replaces_deleted_pod(void **state)
{
	struct ctrl_sim *s = sim_new();
	json_t *pods;
	char name[64];

	(void)state;
	apply_rs(s, 3, 0, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	pods = ctrl_sim_list(s, "pods", "default", "app=web");
	snprintf(name, sizeof(name), "%s", ctrl_str(json_array_get(pods, 1), "metadata.name"));
	json_decref(pods);
	assert_int_equal(ctrl_sim_delete(s, "pods", "default", name, -1), 0);
	ctrl_sim_run(s, 1000);
	assert_null(ctrl_sim_get(s, "pods", "default", name));
	assert_int_equal(active_pods(s), 3);
	assert_int_equal(events(s, "SuccessfulCreate"), 4);
	/* A failed pod is not counted either: it is replaced, not deleted. */
	pods = ctrl_sim_list(s, "pods", "default", "app=web");
	{
		json_t *p = json_deep_copy(json_array_get(pods, 0));
		snprintf(name, sizeof(name), "%s", ctrl_str(p, "metadata.name"));
		/* Unbound, or the sim kubelet would run it again. */
		json_object_del(json_object_get(p, "spec"), "nodeName");
		json_object_set_new(json_object_get(p, "status"), "phase", json_string("Failed"));
		assert_int_equal(ctrl_sim_apply(s, p), 0);
		json_decref(p);
	}
	json_decref(pods);
	ctrl_sim_run(s, 1000);
	assert_int_equal(active_pods(s), 3);
	{
		json_t *failed = ctrl_sim_get(s, "pods", "default", name);
		assert_non_null(failed);
		json_decref(failed);
	}
	assert_int_equal(ctrl_sim_count(s, "pods", "default", "app=web"), 4);
	ctrl_sim_free(s);
}

static bool ready3(struct ctrl_sim *s, void *data)
{
	(void)data;
	return rs_int(s, "status.readyReplicas") == 3;
}

static void min_ready_seconds(void **state)
{
	struct ctrl_sim *s = sim_new();

	(void)state;
	apply_rs(s, 3, 10, NULL);
	ctrl_sim_start(s);
	assert_true(ctrl_sim_run_until(s, 2000, ready3, NULL));
	assert_int_equal(rs_int(s, "status.availableReplicas"), 0);
	ctrl_sim_run(s, 5000);
	assert_int_equal(rs_int(s, "status.readyReplicas"), 3);
	assert_int_equal(rs_int(s, "status.availableReplicas"), 0);
	/* The controller looks again when minReadySeconds have passed. */
	ctrl_sim_run(s, 6000);
	assert_int_equal(rs_int(s, "status.availableReplicas"), 3);
	ctrl_sim_free(s);
}

/* A ReplicaSet being deleted (a finalizer holds it) is left alone. */
static void ignores_deleting_replicaset(void **state)
{
	struct ctrl_sim *s = sim_new();

	(void)state;
	apply_rs(s, 3, 0, "  finalizers: [example.com/hold]\n");
	assert_int_equal(ctrl_sim_delete(s, "replicasets", "default", "web", -1), 0);
	{
		json_t *rs = ctrl_sim_get(s, "replicasets", "default", "web");
		assert_non_null(api_json_path(rs, "metadata.deletionTimestamp"));
		json_decref(rs);
	}
	ctrl_sim_start(s);
	ctrl_sim_run(s, 2000);
	assert_int_equal(ctrl_sim_count(s, "pods", "default", NULL), 0);
	ctrl_sim_free(s);
}

/* Writes that fail, and a status write made stale by a user's update,
 * are retried until the state is right. */
static void failed_and_stale_writes_retry(void **state)
{
	struct ctrl_sim *s = sim_new();
	struct ctrl_stats st;

	(void)state;
	apply_rs(s, 3, 0, NULL);
	ctrl_sim_fail_writes(s, true);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 300);
	assert_int_equal(ctrl_sim_count(s, "pods", "default", NULL), 0);
	ctrl_sim_fail_writes(s, false);
	ctrl_sim_run(s, 10000);
	assert_int_equal(active_pods(s), 3);

	/* The sync proposes a status write (due in 1 ms); the user's update
	 * lands first, so the write's CAS fails and the sync runs again. */
	apply_rs(s, 3, 1, NULL);
	ctrl_sim_run(s, 0);
	apply_rs(s, 3, 1, "  labels: {x: b}\n");
	ctrl_sim_run(s, 1000);
	ctrl_manager_stats(ctrl_sim_manager(s), &st);
	assert_true(st.conflicts >= 1);
	assert_int_equal(active_pods(s), 3);
	assert_int_equal(rs_int(s, "status.replicas"), 3);
	assert_int_equal(rs_int(s, "status.observedGeneration"), 2);
	ctrl_sim_free(s);
}

/* Leadership changes rebuild the index from the store. */
static void restart_keeps_count(void **state)
{
	struct ctrl_sim *s = sim_new();

	(void)state;
	apply_rs(s, 4, 0, NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	ctrl_sim_stop(s);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_int_equal(ctrl_sim_count(s, "pods", "default", "app=web"), 4);
	assert_int_equal(events(s, "SuccessfulCreate"), 4);
	ctrl_sim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(creates_pods_with_owner),
		cmocka_unit_test(scales_up_and_down),
		cmocka_unit_test(adopts_and_deletes_unscheduled_first),
		cmocka_unit_test(releases_pod_that_stops_matching),
		cmocka_unit_test(replaces_deleted_pod),
		cmocka_unit_test(min_ready_seconds),
		cmocka_unit_test(ignores_deleting_replicaset),
		cmocka_unit_test(failed_and_stale_writes_retry),
		cmocka_unit_test(restart_keeps_count),
	};

	return cmocka_run_group_tests_name("ctrl_replicaset", tests, NULL, NULL);
}
