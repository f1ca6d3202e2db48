/* The StatefulSet controller in the simulation: ordered creation, claims
 * from volume claim templates kept across pod deletion, scale down in
 * reverse order, Parallel, rolling update in reverse order with a
 * partition, and status. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/ctrl_sim.h"

static const struct ctrl_ops *const ops[] = {&ctrl_statefulset_ops, NULL};

/* ------------------------------------------------------------ helpers */

/* StatefulSet "web": @replicas, @image, @policy (OrderedReady/Parallel),
 * @extra lines of the set spec (indented 2). */
static void apply_sts(struct ctrl_sim *s, int replicas, const char *image, const char *policy,
		      const char *extra)
{
	assert_int_equal(ctrl_sim_apply_yamlf(s,
		 "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: web\n"
		 "  namespace: default\nspec:\n  replicas: %d\n  serviceName: nginx\n"
		 "  podManagementPolicy: %s\n"
		 "  selector:\n    matchLabels:\n      app: web\n%s"
		 "  template:\n    metadata:\n      labels:\n        app: web\n"
		 /* Bound already: no scheduler here, and the hollow kubelet
		 * runs bound pods only. */
		 "    spec:\n      nodeName: n1\n      containers:\n      - name: c\n"
		 "        image: %s\n"
		 "        volumeMounts:\n        - {name: data, mountPath: /data}\n"
		 "  volumeClaimTemplates:\n  - metadata:\n      name: data\n"
		 "      labels: {tier: db}\n"
		 "    spec:\n      accessModes: [ReadWriteOnce]\n"
		 "      resources:\n        requests:\n          storage: 1Gi\n",
		 replicas, policy, extra ? extra : "", image),
			 0);
}

static json_t *get_pod(struct ctrl_sim *s, const char *name)
{
	return ctrl_sim_get(s, "pods", "default", name);
}

static bool pod_exists(struct ctrl_sim *s, const char *name)
{
	return ctrl_sim_exists(s, "pods", "default", name);
}

static bool pod_live_ready(struct ctrl_sim *s, const char *name)
{
	json_t *p = get_pod(s, name);
	bool ok = p && ctrl_pod_ready(p) && !ctrl_str(p, "metadata.deletionTimestamp");
	json_decref(p);
	return ok;
}

/* Plays the kubelet for one pod: Running and Ready. */
static void make_ready(struct ctrl_sim *s, const char *name)
{
	json_t *pod = get_pod(s, name);
	char now[32];

	assert_non_null(pod);
	ctrl_rfc3339(ctrl_sim_now(s), now, sizeof(now));
	json_object_set_new(pod, "status",
			    json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "phase", "Running", "conditions",
				      "type", "Ready", "status", "True", "lastTransitionTime", now));
	assert_int_equal(ctrl_sim_apply(s, pod), 0);
	json_decref(pod);
}

static const char *image_of(const json_t *pod)
{
	return ctrl_sim_path_str(pod, "spec.containers.0.image");
}

static int64_t sts_status(struct ctrl_sim *s, const char *field)
{
	char path[128];

	snprintf(path, sizeof(path), "status.%s", field);
	return ctrl_sim_int(s, "statefulsets", "default", "web", path, 0); /* omitempty counts */
}

static char *sts_status_str(struct ctrl_sim *s, const char *field)
{
	json_t *o = ctrl_sim_get(s, "statefulsets", "default", "web");
	char path[128];

	assert_non_null(o);
	snprintf(path, sizeof(path), "status.%s", field);
	const char *v = ctrl_str(o, path);
	char *out = strdup(v ? v : "");
	json_decref(o);
	return out;
}

/* ------------------------------------------------------------ tests */

/* OrderedReady: web-1 waits for web-0 to be Running and Ready, web-2 for
 * web-1; each pod carries its identity. */
static void ordered_creation(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	apply_sts(s, 3, "nginx:1", "OrderedReady", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 2000);
	assert_true(pod_exists(s, "web-0"));
	assert_false(pod_exists(s, "web-1"));
	assert_false(pod_exists(s, "web-2"));

	make_ready(s, "web-0");
	ctrl_sim_run(s, 2000);
	assert_true(pod_exists(s, "web-1"));
	assert_false(pod_exists(s, "web-2"));
	make_ready(s, "web-1");
	ctrl_sim_run(s, 2000);
	assert_true(pod_exists(s, "web-2"));
	make_ready(s, "web-2");
	ctrl_sim_run(s, 2000);

	json_t *set = ctrl_sim_get(s, "statefulsets", "default", "web");
	json_t *pod = get_pod(s, "web-1");
	assert_non_null(pod);
	json_t *labels = ctrl_sim_path(pod, "metadata.labels");
	assert_string_equal(json_string_value(json_object_get(labels, "statefulset.kubernetes.io/pod-name")),
			    "web-1");
	assert_string_equal(json_string_value(json_object_get(labels, "apps.kubernetes.io/pod-index")),
			    "1");
	assert_string_equal(json_string_value(json_object_get(labels, "controller-revision-hash")),
			    ctrl_sim_path_str(set, "status.updateRevision"));
	assert_string_equal(ctrl_sim_path_str(pod, "spec.hostname"), "web-1");
	assert_string_equal(ctrl_sim_path_str(pod, "spec.subdomain"), "nginx");
	assert_string_equal(ctrl_sim_path_str(pod, "metadata.ownerReferences.0.kind"),
			    "StatefulSet");
	assert_string_equal(ctrl_sim_path_str(pod, "metadata.ownerReferences.0.uid"),
			    ctrl_sim_path_str(set, "metadata.uid"));
	json_decref(pod);

	assert_int_equal(sts_status(s, "replicas"), 3);
	assert_int_equal(sts_status(s, "readyReplicas"), 3);
	assert_int_equal(sts_status(s, "availableReplicas"), 3);
	assert_int_equal(sts_status(s, "currentReplicas"), 3);
	assert_int_equal(sts_status(s, "updatedReplicas"), 3);
	assert_int_equal(sts_status(s, "observedGeneration"), 1);
	assert_string_equal(ctrl_sim_path_str(set, "status.currentRevision"),
			    ctrl_sim_path_str(set, "status.updateRevision"));
	assert_int_equal(strncmp(ctrl_sim_path_str(set, "status.updateRevision"), "web-", 4), 0);
	json_decref(set);
	ctrl_sim_free(s);
}

/* At every step: a pod never exists without its claim. */
static bool claims_first_watch(struct ctrl_sim *s, void *data)
{
	bool *violated = data;
	int ready = 0;

	for (int i = 0; i < 3; i++) {
		char pod[16], claim[32];
		snprintf(pod, sizeof(pod), "web-%d", i);
		snprintf(claim, sizeof(claim), "data-web-%d", i);
		json_t *c = ctrl_sim_get(s, "persistentvolumeclaims", "default", claim);
		if (pod_exists(s, pod) && !c)
			*violated = true;
		json_decref(c);
		ready += pod_live_ready(s, pod);
	}
	return ready == 3;
}

/* Claims <template>-<set>-<ordinal> exist before their pods, are
 * referenced by the pods' volumes and survive pod deletion; a deleted
 * pod comes back with the same name and the same claim. */
static void claims_kept(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	ctrl_sim_kubelet(s, true);
	apply_sts(s, 3, "nginx:1", "OrderedReady", NULL);
	ctrl_sim_start(s);
	bool violated = false;
	assert_true(ctrl_sim_run_until(s, 10000, claims_first_watch, &violated));
	assert_false(violated);
	assert_int_equal(ctrl_sim_count(s, "persistentvolumeclaims", "default", NULL), 3);
	assert_int_equal(ctrl_sim_count(s, "persistentvolumeclaims", "default", "tier=db,app=web"),
			 3);
	json_t *claim = ctrl_sim_get(s, "persistentvolumeclaims", "default", "data-web-1");
	assert_non_null(claim);
	assert_string_equal(ctrl_sim_path_str(claim, "spec.resources.requests.storage"), "1Gi");
	char claim_uid[64], pod_uid[64];
	snprintf(claim_uid, sizeof(claim_uid), "%s", ctrl_sim_path_str(claim, "metadata.uid"));
	json_decref(claim);

	json_t *pod = get_pod(s, "web-1");
	json_t *vols = ctrl_sim_path(pod, "spec.volumes");
	size_t i;
	json_t *v;
	bool found = false;
	json_array_foreach(vols, i, v)
	{
		if (strcmp(ctrl_sim_path_str(v, "name"), "data") == 0) {
			assert_string_equal(ctrl_sim_path_str(v, "persistentVolumeClaim.claimName"),
					    "data-web-1");
			found = true;
		}
	}
	assert_true(found);
	snprintf(pod_uid, sizeof(pod_uid), "%s", ctrl_sim_path_str(pod, "metadata.uid"));
	json_decref(pod);

	assert_int_equal(ctrl_sim_delete(s, "pods", "default", "web-1", 0), 0);
	ctrl_sim_run(s, 3000);
	pod = get_pod(s, "web-1");
	assert_non_null(pod);
	assert_string_not_equal(ctrl_sim_path_str(pod, "metadata.uid"), pod_uid);
	assert_true(ctrl_pod_ready(pod));
	json_decref(pod);
	claim = ctrl_sim_get(s, "persistentvolumeclaims", "default", "data-web-1");
	assert_non_null(claim);
	assert_string_equal(ctrl_sim_path_str(claim, "metadata.uid"), claim_uid);
	json_decref(claim);
	assert_int_equal(ctrl_sim_count(s, "persistentvolumeclaims", "default", NULL), 3);
	ctrl_sim_free(s);
}

/* Scale down from the highest ordinal: web-1 is not touched while web-2
 * still exists; claims stay. */
struct order_ctx {
	bool violated;
	const char *higher, *lower;
};

static bool scale_down_watch(struct ctrl_sim *s, void *data)
{
	struct order_ctx *o = data;
	json_t *lower = get_pod(s, o->lower);
	bool lower_going = !lower || ctrl_str(lower, "metadata.deletionTimestamp");
	json_decref(lower);
	if (lower_going && pod_exists(s, o->higher)) {
		o->violated = true;
	}
	return !pod_exists(s, "web-1") && !pod_exists(s, "web-2");
}

static void scale_down_reverse(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	ctrl_sim_kubelet(s, true);
	apply_sts(s, 3, "nginx:1", "OrderedReady", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 3000);
	assert_int_equal(sts_status(s, "readyReplicas"), 3);

	apply_sts(s, 1, "nginx:1", "OrderedReady", NULL);
	struct order_ctx o = {.higher = "web-2", .lower = "web-1"};
	assert_true(ctrl_sim_run_until(s, 10000, scale_down_watch, &o));
	assert_false(o.violated);
	ctrl_sim_run(s, 1000);
	assert_true(pod_exists(s, "web-0"));
	assert_int_equal(sts_status(s, "replicas"), 1);
	assert_int_equal(ctrl_sim_count(s, "persistentvolumeclaims", "default", NULL), 3);
	ctrl_sim_free(s);
}

/* OrderedReady scale down waits for each pod to be gone: with no kubelet
 * to finish the graceful deletion, web-1 is left alone. */
static void scale_down_waits(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	ctrl_sim_kubelet(s, true);
	apply_sts(s, 3, "nginx:1", "OrderedReady", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 3000);
	ctrl_sim_kubelet(s, false);
	apply_sts(s, 1, "nginx:1", "OrderedReady", NULL);
	ctrl_sim_run(s, 3000);
	json_t *p2 = get_pod(s, "web-2"), *p1 = get_pod(s, "web-1");
	assert_non_null(p2);
	assert_non_null(ctrl_str(p2, "metadata.deletionTimestamp"));
	assert_non_null(p1);
	assert_null(ctrl_str(p1, "metadata.deletionTimestamp"));
	json_decref(p1);
	json_decref(p2);
	ctrl_sim_free(s);
}

/* Parallel: every pod at once, and all surplus at once. */
static void parallel(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	apply_sts(s, 3, "nginx:1", "Parallel", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_true(pod_exists(s, "web-0"));
	assert_true(pod_exists(s, "web-1"));
	assert_true(pod_exists(s, "web-2"));
	assert_int_equal(sts_status(s, "replicas"), 3);
	assert_int_equal(sts_status(s, "readyReplicas"), 0);

	apply_sts(s, 0, "nginx:1", "Parallel", NULL);
	ctrl_sim_run(s, 1000);
	for (int i = 0; i < 3; i++) {
		char name[16];
		snprintf(name, sizeof(name), "web-%d", i);
		json_t *p = get_pod(s, name);
		assert_non_null(p); /* no kubelet: graceful deletion pending */
		assert_non_null(ctrl_str(p, "metadata.deletionTimestamp"));
		json_decref(p);
	}
	ctrl_sim_free(s);
}

/* Rolling update: web-2, then web-1, then web-0, one at a time. */
struct roll_ctx {
	char order[3];
	int n;
	int max_down;
	const char *image;
};

static bool roll_watch(struct ctrl_sim *s, void *data)
{
	struct roll_ctx *r = data;
	int down = 0, updated = 0;

	for (int i = 0; i < 3; i++) {
		char name[16];
		snprintf(name, sizeof(name), "web-%d", i);
		json_t *p = get_pod(s, name);
		if (!pod_live_ready(s, name))
			down++;
		if (p && strcmp(image_of(p), r->image) == 0) {
			updated++;
			bool seen = false;
			for (int j = 0; j < r->n; j++)
				seen |= r->order[j] == '0' + i;
			if (!seen)
				r->order[r->n++] = (char)('0' + i);
		}
		json_decref(p);
	}
	if (down > r->max_down)
		r->max_down = down;
	return updated == 3 && down == 0;
}

static void rolling_update_reverse(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	ctrl_sim_kubelet(s, true);
	apply_sts(s, 3, "nginx:1", "OrderedReady", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 3000);
	char *rev1 = sts_status_str(s, "currentRevision");

	apply_sts(s, 3, "nginx:2", "OrderedReady", NULL);
	struct roll_ctx r = {.image = "nginx:2"};
	assert_true(ctrl_sim_run_until(s, 20000, roll_watch, &r));
	assert_int_equal(r.n, 3);
	assert_memory_equal(r.order, "210", 3);
	assert_int_equal(r.max_down, 1);
	ctrl_sim_run(s, 1000);
	char *cur = sts_status_str(s, "currentRevision");
	char *upd = sts_status_str(s, "updateRevision");
	assert_string_not_equal(upd, rev1);
	assert_string_equal(cur, upd);
	assert_int_equal(sts_status(s, "updatedReplicas"), 3);
	assert_int_equal(sts_status(s, "currentReplicas"), 3);
	assert_int_equal(sts_status(s, "observedGeneration"), 2);
	/* Claims were kept through the replacements. */
	assert_int_equal(ctrl_sim_count(s, "persistentvolumeclaims", "default", NULL), 3);
	free(rev1);
	free(cur);
	free(upd);
	ctrl_sim_free(s);
}

/* Partition 2: only web-2 moves; a pod below the partition is recreated
 * at the old revision. */
static void rolling_update_partition(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	ctrl_sim_kubelet(s, true);
	const char *part = "  updateStrategy:\n    type: RollingUpdate\n"
			   "    rollingUpdate:\n      partition: 2\n";
	apply_sts(s, 3, "nginx:1", "OrderedReady", part);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 3000);
	apply_sts(s, 3, "nginx:2", "OrderedReady", part);
	ctrl_sim_run(s, 5000);
	json_t *p;
	p = get_pod(s, "web-2");
	assert_string_equal(image_of(p), "nginx:2");
	json_decref(p);
	p = get_pod(s, "web-1");
	assert_string_equal(image_of(p), "nginx:1");
	json_decref(p);
	assert_int_equal(sts_status(s, "updatedReplicas"), 1);
	assert_int_equal(sts_status(s, "currentReplicas"), 2);
	char *cur = sts_status_str(s, "currentRevision");
	char *upd = sts_status_str(s, "updateRevision");
	assert_string_not_equal(cur, upd);

	assert_int_equal(ctrl_sim_delete(s, "pods", "default", "web-0", 0), 0);
	ctrl_sim_run(s, 3000);
	p = get_pod(s, "web-0");
	assert_non_null(p);
	assert_string_equal(image_of(p), "nginx:1");
	assert_string_equal(json_string_value(json_object_get(ctrl_sim_path(p, "metadata.labels"),
							      "controller-revision-hash")),
			    cur);
	json_decref(p);
	free(cur);
	free(upd);
	ctrl_sim_free(s);
}

/* OnDelete: nothing is replaced until deleted. */
static void on_delete(void **state)
{
	(void)state;
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	ctrl_sim_kubelet(s, true);
	const char *od = "  updateStrategy:\n    type: OnDelete\n";
	apply_sts(s, 2, "nginx:1", "OrderedReady", od);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 3000);
	apply_sts(s, 2, "nginx:2", "OrderedReady", od);
	ctrl_sim_run(s, 3000);
	json_t *p = get_pod(s, "web-1");
	assert_string_equal(image_of(p), "nginx:1");
	json_decref(p);
	assert_int_equal(ctrl_sim_delete(s, "pods", "default", "web-1", 0), 0);
	ctrl_sim_run(s, 3000);
	p = get_pod(s, "web-1");
	assert_string_equal(image_of(p), "nginx:2");
	json_decref(p);
	p = get_pod(s, "web-0");
	assert_string_equal(image_of(p), "nginx:1");
	json_decref(p);
	ctrl_sim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ordered_creation),
		cmocka_unit_test(claims_kept),
		cmocka_unit_test(scale_down_reverse),
		cmocka_unit_test(scale_down_waits),
		cmocka_unit_test(parallel),
		cmocka_unit_test(rolling_update_reverse),
		cmocka_unit_test(rolling_update_partition),
		cmocka_unit_test(on_delete),
	};
	return cmocka_run_group_tests_name("ctrl_statefulset", tests, NULL, NULL);
}
