/* The Deployment controller (with the ReplicaSet controller) in the
 * simulation: ReplicaSets named by pod-template-hash, status and
 * conditions as `kubectl rollout status` reads them, RollingUpdate within
 * maxSurge/maxUnavailable checked at every step, Recreate, rollback by
 * template, revisionHistoryLimit, pause, scaling, the progress deadline
 * and stale writes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/ctrl_sim.h"

static const struct ctrl_ops *const ops[] = {&ctrl_deployment_ops, &ctrl_replicaset_ops, NULL};

/* ------------------------------------------------------------ helpers */

static struct ctrl_sim *sim_new(void)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");

	ctrl_sim_kubelet(s, true);
	return s;
}

/* Deployment "web" (app=web) of @replicas pods running @image, bound to
 * node-1 so that the sim kubelet makes them Ready; @spec: extra spec
 * lines (indented 2), may be NULL. */
static void apply_dep(struct ctrl_sim *s, int replicas, const char *image, const char *spec)
{
	assert_int_equal(ctrl_sim_apply_yamlf(s,
		 "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
		 "  namespace: default\nspec:\n  replicas: %d\n%s"
		 "  selector:\n    matchLabels:\n      app: web\n"
		 "  template:\n    metadata:\n      labels:\n        app: web\n"
		 "    spec:\n      nodeName: node-1\n      containers:\n"
		 "      - name: c\n        image: %s\n",
		 replicas, spec != NULL ? spec : "", image),
			 0);
}

static json_t *get_dep(struct ctrl_sim *s)
{
	json_t *d = ctrl_sim_get(s, "deployments", "default", "web");

	assert_non_null(d);
	return d;
}

static int64_t dep_int(struct ctrl_sim *s, const char *path)
{
	json_t *d = get_dep(s);
	int64_t v = ctrl_int(d, path, 0);

	json_decref(d);
	return v;
}

static const char *annotation(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(api_json_path(obj, "metadata.annotations"), key));
}

static const char *cond(const json_t *obj, const char *type, const char *field)
{
	json_t *conds = api_json_path(obj, "status.conditions"), *c;
	size_t i;

	json_array_foreach(conds, i, c)
	{
		if (strcmp(json_string_value(json_object_get(c, "type")), type) == 0)
			return json_string_value(json_object_get(c, field));
	}
	return NULL;
}

static const char *pod_image(const json_t *pod)
{
	return json_string_value(
		json_object_get(json_array_get(api_json_path(pod, "spec.containers"), 0), "image"));
}

struct counts {
	size_t all, active, ready, with_image, active_with_image;
};

/* Pods of app=web: all, not being deleted, ready and not being deleted,
 * and of those with @image. */
static void count_pods(struct ctrl_sim *s, const char *image, struct counts *c)
{
	json_t *pods = ctrl_sim_list(s, "pods", "default", "app=web"), *p;
	size_t i;

	memset(c, 0, sizeof(*c));
	json_array_foreach(pods, i, p)
	{
		bool active = ctrl_pod_active(p);
		bool img = image != NULL && strcmp(pod_image(p), image) == 0;
		c->all++;
		c->active += active;
		c->ready += active && ctrl_pod_ready(p);
		c->with_image += img;
		c->active_with_image += active && img;
	}
	json_decref(pods);
}

/* What `kubectl rollout status` waits for. */
static bool rollout_complete(struct ctrl_sim *s)
{
	json_t *d = get_dep(s);
	int64_t spec = ctrl_int(d, "spec.replicas", 1);
	int64_t updated = ctrl_int(d, "status.updatedReplicas", 0);
	bool done = ctrl_int(d, "status.observedGeneration", 0) >=
			    ctrl_int(d, "metadata.generation", 0) &&
		    updated >= spec && ctrl_int(d, "status.replicas", 0) == updated &&
		    ctrl_int(d, "status.availableReplicas", 0) == updated;

	json_decref(d);
	return done;
}

struct rollout {
	const char *image;
	size_t replicas, max_surge, max_unavailable;
	size_t min_ready, max_active; /* seen */
	bool mixed;                   /* Recreate: old and new pods at once */
	bool recreate;
};

/* At every step: the bounds of the strategy; done when the rollout is
 * complete and every pod runs the new image. */
static bool rollout_step(struct ctrl_sim *s, void *data)
{
	struct rollout *r = data;
	struct counts c;

	count_pods(s, r->image, &c);
	if (c.ready < r->min_ready)
		r->min_ready = c.ready;
	if (c.active > r->max_active)
		r->max_active = c.active;
	if (r->recreate && c.with_image > 0 && c.with_image < c.all)
		r->mixed = true;
	return rollout_complete(s) && c.all == r->replicas && c.with_image == r->replicas;
}

static bool complete_pred(struct ctrl_sim *s, void *data)
{
	(void)data;
	return rollout_complete(s);
}

static void run_rollout(struct ctrl_sim *s, struct rollout *r)
{
	r->min_ready = (size_t)-1;
	r->max_active = 0;
	assert_true(ctrl_sim_run_until(s, 120000, rollout_step, r));
}

static json_t *list_rs(struct ctrl_sim *s)
{
	return ctrl_sim_list(s, "replicasets", "default", NULL);
}

/* The ReplicaSet whose template runs @image (new reference), or NULL. */
static json_t *rs_of_image(struct ctrl_sim *s, const char *image)
{
	json_t *all = list_rs(s), *rs, *found = NULL;
	size_t i;

	json_array_foreach(all, i, rs)
	{
		json_t *c = json_array_get(api_json_path(rs, "spec.template.spec.containers"), 0);
		if (strcmp(json_string_value(json_object_get(c, "image")), image) == 0)
			found = json_incref(rs);
	}
	json_decref(all);
	return found;
}

static size_t events(struct ctrl_sim *s, const char *reason)
{
	return ctrl_sim_events(s, "default", NULL, reason, NULL, 0);
}

/* ------------------------------------------------------------ tests */

static void creates_replicaset_and_status(void **state)
{
	struct ctrl_sim *s = sim_new();
	json_t *d, *rs, *rss, *pods, *p;
	const char *hash;
	char name[64];
	size_t i;

	(void)state;
	apply_dep(s, 3, "nginx:1", NULL);
	ctrl_sim_start(s);
	assert_true(ctrl_sim_run_until(s, 10000, complete_pred, NULL));
	ctrl_sim_run(s, 1000);

	rss = list_rs(s);
	assert_int_equal(json_array_size(rss), 1);
	rs = json_array_get(rss, 0);
	hash = ctrl_str(rs, "metadata.labels.pod-template-hash");
	assert_non_null(hash);
	snprintf(name, sizeof(name), "web-%s", hash);
	assert_string_equal(ctrl_str(rs, "metadata.name"), name);
	assert_string_equal(ctrl_str(rs, "spec.selector.matchLabels.pod-template-hash"), hash);
	assert_string_equal(ctrl_str(rs, "spec.template.metadata.labels.pod-template-hash"), hash);
	assert_string_equal(ctrl_str(rs, "spec.selector.matchLabels.app"), "web");
	assert_string_equal(annotation(rs, "deployment.kubernetes.io/revision"), "1");
	assert_string_equal(annotation(rs, "deployment.kubernetes.io/desired-replicas"), "3");
	/* maxSurge 25% of 3 rounds up to 1. */
	assert_string_equal(annotation(rs, "deployment.kubernetes.io/max-replicas"), "4");
	assert_string_equal(ctrl_str(ctrl_controller_ref(rs), "kind"), "Deployment");
	assert_string_equal(ctrl_str(ctrl_controller_ref(rs), "name"), "web");

	pods = ctrl_sim_list(s, "pods", "default", "app=web");
	assert_int_equal(json_array_size(pods), 3);
	json_array_foreach(pods, i, p)
	{
		assert_string_equal(ctrl_str(p, "metadata.labels.pod-template-hash"), hash);
		assert_string_equal(ctrl_str(ctrl_controller_ref(p), "name"), name);
	}
	json_decref(pods);

	d = get_dep(s);
	assert_string_equal(annotation(d, "deployment.kubernetes.io/revision"), "1");
	assert_int_equal(ctrl_int(d, "status.replicas", -1), 3);
	assert_int_equal(ctrl_int(d, "status.updatedReplicas", -1), 3);
	assert_int_equal(ctrl_int(d, "status.readyReplicas", -1), 3);
	assert_int_equal(ctrl_int(d, "status.availableReplicas", -1), 3);
	assert_int_equal(ctrl_int(d, "status.unavailableReplicas", 0), 0);
	assert_int_equal(ctrl_int(d, "status.observedGeneration", -1), 1);
	assert_string_equal(cond(d, "Available", "status"), "True");
	assert_string_equal(cond(d, "Available", "reason"), "MinimumReplicasAvailable");
	assert_string_equal(cond(d, "Progressing", "status"), "True");
	assert_string_equal(cond(d, "Progressing", "reason"), "NewReplicaSetAvailable");
	assert_non_null(cond(d, "Progressing", "lastUpdateTime"));
	json_decref(d);
	assert_true(events(s, "ScalingReplicaSet") >= 1);

	/* The hash is stable: applying the same template again changes
	 * nothing. */
	apply_dep(s, 3, "nginx:1", NULL);
	ctrl_sim_run(s, 5000);
	assert_int_equal(ctrl_sim_count(s, "replicasets", "default", NULL), 1);
	assert_int_equal(ctrl_sim_count(s, "pods", "default", NULL), 3);
	json_decref(rss);
	ctrl_sim_free(s);
}

/* 10 replicas, maxSurge 25% -> 3 (rounded up), maxUnavailable 25% -> 2
 * (rounded down): never fewer than 8 ready pods nor more than 13. */
static void rolling_update_within_bounds(void **state)
{
	struct ctrl_sim *s = sim_new();
	struct rollout r = {"nginx:2", 10, 3, 2, 0, 0, false, false};
	json_t *old, *nw, *d;

	(void)state;
	apply_dep(s, 10, "nginx:1", NULL);
	ctrl_sim_start(s);
	assert_true(ctrl_sim_run_until(s, 10000, complete_pred, NULL));
	ctrl_sim_run(s, 1000);
	apply_dep(s, 10, "nginx:2", NULL);
	run_rollout(s, &r);
	assert_true(r.min_ready >= 8);
	assert_true(r.max_active <= 13);
	/* It did use the room it had. */
	assert_true(r.max_active > 10);

	ctrl_sim_run(s, 2000);
	assert_int_equal(ctrl_sim_count(s, "replicasets", "default", NULL), 2);
	old = rs_of_image(s, "nginx:1");
	nw = rs_of_image(s, "nginx:2");
	assert_int_equal(ctrl_int(old, "spec.replicas", -1), 0);
	assert_int_equal(ctrl_int(nw, "spec.replicas", -1), 10);
	assert_string_equal(annotation(old, "deployment.kubernetes.io/revision"), "1");
	assert_string_equal(annotation(nw, "deployment.kubernetes.io/revision"), "2");
	d = get_dep(s);
	assert_string_equal(annotation(d, "deployment.kubernetes.io/revision"), "2");
	assert_string_equal(cond(d, "Progressing", "reason"), "NewReplicaSetAvailable");
	assert_int_equal(ctrl_int(d, "status.observedGeneration", 0), 2);
	json_decref(d);
	json_decref(old);
	json_decref(nw);
	ctrl_sim_free(s);
}

/* Integer bounds: maxSurge 0, maxUnavailable 1. */
static void rolling_update_no_surge(void **state)
{
	struct ctrl_sim *s = sim_new();
	struct rollout r = {"nginx:2", 4, 0, 1, 0, 0, false, false};
	const char *strategy = "  strategy:\n    type: RollingUpdate\n    rollingUpdate:\n"
			       "      maxSurge: 0\n      maxUnavailable: 1\n";

	(void)state;
	apply_dep(s, 4, "nginx:1", strategy);
	ctrl_sim_start(s);
	assert_true(ctrl_sim_run_until(s, 10000, complete_pred, NULL));
	ctrl_sim_run(s, 1000);
	apply_dep(s, 4, "nginx:2", strategy);
	run_rollout(s, &r);
	assert_true(r.min_ready >= 3);
	assert_true(r.max_active <= 4);
	ctrl_sim_free(s);
}

/* Recreate: every old pod is gone (terminating ones included) before a
 * new one is created. */
static void recreate(void **state)
{
	struct ctrl_sim *s = sim_new();
	struct rollout r = {"nginx:2", 3, 0, 3, 0, 0, false, true};
	const char *strategy = "  strategy:\n    type: Recreate\n";
	struct counts c;

	(void)state;
	apply_dep(s, 3, "nginx:1", strategy);
	ctrl_sim_start(s);
	assert_true(ctrl_sim_run_until(s, 10000, complete_pred, NULL));
	ctrl_sim_run(s, 1000);
	/* Without the kubelet, the old pods stay terminating. */
	ctrl_sim_kubelet(s, false);
	apply_dep(s, 3, "nginx:2", strategy);
	ctrl_sim_run(s, 5000);
	count_pods(s, "nginx:2", &c);
	assert_int_equal(c.all, 3);
	assert_int_equal(c.active, 0);
	assert_int_equal(c.with_image, 0);
	assert_int_equal(ctrl_sim_count(s, "replicasets", "default", NULL), 1);
	ctrl_sim_kubelet(s, true);
	run_rollout(s, &r);
	assert_false(r.mixed);
	ctrl_sim_free(s);
}

/* kubectl rollout undo (1.32) patches the template back: the old
 * ReplicaSet is reused with the next revision. */
static void rollback_reuses_old_replicaset(void **state)
{
	struct ctrl_sim *s = sim_new();
	struct rollout r2 = {"nginx:2", 4, 1, 1, 0, 0, false, false};
	struct rollout r1 = {"nginx:1", 4, 1, 1, 0, 0, false, false};
	json_t *old, *d;
	char old_name[64];

	(void)state;
	apply_dep(s, 4, "nginx:1", NULL);
	ctrl_sim_start(s);
	assert_true(ctrl_sim_run_until(s, 10000, complete_pred, NULL));
	ctrl_sim_run(s, 1000);
	old = rs_of_image(s, "nginx:1");
	snprintf(old_name, sizeof(old_name), "%s", ctrl_str(old, "metadata.name"));
	json_decref(old);
	apply_dep(s, 4, "nginx:2", NULL);
	run_rollout(s, &r2);
	apply_dep(s, 4, "nginx:1", NULL);
	run_rollout(s, &r1);
	assert_true(r1.min_ready >= 3);
	ctrl_sim_run(s, 2000);
	assert_int_equal(ctrl_sim_count(s, "replicasets", "default", NULL), 2);
	old = rs_of_image(s, "nginx:1");
	assert_string_equal(ctrl_str(old, "metadata.name"), old_name);
	assert_int_equal(ctrl_int(old, "spec.replicas", -1), 4);
	assert_string_equal(annotation(old, "deployment.kubernetes.io/revision"), "3");
	assert_string_equal(annotation(old, "deployment.kubernetes.io/revision-history"), "1");
	json_decref(old);
	d = get_dep(s);
	assert_string_equal(annotation(d, "deployment.kubernetes.io/revision"), "3");
	json_decref(d);
	ctrl_sim_free(s);
}

/* revisionHistoryLimit 1: one old ReplicaSet is kept, the latest. */
static void history_limit(void **state)
{
	struct ctrl_sim *s = sim_new();
	static const char *const images[] = {"nginx:2", "nginx:3", "nginx:4"};
	const char *spec = "  revisionHistoryLimit: 1\n";
	json_t *rs;
	size_t i;

	(void)state;
	apply_dep(s, 2, "nginx:1", spec);
	ctrl_sim_start(s);
	assert_true(ctrl_sim_run_until(s, 10000, complete_pred, NULL));
	for (i = 0; i < 3; i++) {
		struct rollout r = {images[i], 2, 1, 0, 0, 0, false, false};
		apply_dep(s, 2, images[i], spec);
		run_rollout(s, &r);
		ctrl_sim_run(s, 2000);
	}
	assert_int_equal(ctrl_sim_count(s, "replicasets", "default", NULL), 2);
	rs = rs_of_image(s, "nginx:3");
	assert_non_null(rs);
	assert_string_equal(annotation(rs, "deployment.kubernetes.io/revision"), "3");
	json_decref(rs);
	assert_null(rs_of_image(s, "nginx:1"));
	assert_null(rs_of_image(s, "nginx:2"));
	ctrl_sim_free(s);
}

/* Paused: no rollout, but scaling and status go on; resuming rolls out. */
static void pause_and_resume(void **state)
{
	struct ctrl_sim *s = sim_new();
	struct rollout r = {"nginx:2", 5, 2, 1, 0, 0, false, false};
	struct counts c;
	json_t *d;

	(void)state;
	apply_dep(s, 3, "nginx:1", NULL);
	ctrl_sim_start(s);
	assert_true(ctrl_sim_run_until(s, 10000, complete_pred, NULL));
	apply_dep(s, 5, "nginx:2", "  paused: true\n");
	ctrl_sim_run(s, 5000);
	assert_int_equal(ctrl_sim_count(s, "replicasets", "default", NULL), 1);
	count_pods(s, "nginx:2", &c);
	assert_int_equal(c.active, 5);
	assert_int_equal(c.with_image, 0);
	d = get_dep(s);
	assert_int_equal(ctrl_int(d, "status.observedGeneration", 0),
			 ctrl_int(d, "metadata.generation", -1));
	assert_int_equal(ctrl_int(d, "status.replicas", 0), 5);
	assert_int_equal(ctrl_int(d, "status.updatedReplicas", 0), 0);
	assert_string_equal(cond(d, "Progressing", "reason"), "DeploymentPaused");
	assert_string_equal(cond(d, "Progressing", "status"), "Unknown");
	json_decref(d);

	apply_dep(s, 5, "nginx:2", NULL);
	run_rollout(s, &r);
	assert_true(r.min_ready >= 4);
	assert_true(r.max_active <= 7);
	ctrl_sim_free(s);
}

static void scales(void **state)
{
	struct ctrl_sim *s = sim_new();
	json_t *rs;

	(void)state;
	apply_dep(s, 2, "nginx:1", NULL);
	ctrl_sim_start(s);
	assert_true(ctrl_sim_run_until(s, 10000, complete_pred, NULL));
	apply_dep(s, 6, "nginx:1", NULL);
	assert_true(ctrl_sim_run_until(s, 10000, complete_pred, NULL));
	ctrl_sim_run(s, 1000);
	assert_int_equal(ctrl_sim_count(s, "pods", "default", NULL), 6);
	rs = rs_of_image(s, "nginx:1");
	assert_string_equal(annotation(rs, "deployment.kubernetes.io/desired-replicas"), "6");
	assert_string_equal(annotation(rs, "deployment.kubernetes.io/max-replicas"), "8");
	json_decref(rs);
	apply_dep(s, 1, "nginx:1", NULL);
	assert_true(ctrl_sim_run_until(s, 10000, complete_pred, NULL));
	ctrl_sim_run(s, 1000);
	assert_int_equal(ctrl_sim_count(s, "pods", "default", NULL), 1);
	assert_int_equal(dep_int(s, "status.replicas"), 1);
	assert_int_equal(ctrl_sim_count(s, "replicasets", "default", NULL), 1);
	ctrl_sim_free(s);
}

/* Pods that never get ready: Progressing turns False after
 * progressDeadlineSeconds; Available is False. */
static void progress_deadline(void **state)
{
	struct ctrl_sim *s = sim_new();
	const char *spec = "  progressDeadlineSeconds: 30\n  strategy:\n    rollingUpdate:\n"
			   "      maxSurge: 1\n      maxUnavailable: 0\n";
	json_t *d;

	(void)state;
	ctrl_sim_kubelet(s, false);
	apply_dep(s, 2, "nginx:1", spec);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 20000);
	d = get_dep(s);
	assert_string_equal(cond(d, "Progressing", "status"), "True");
	assert_string_equal(cond(d, "Available", "status"), "False");
	assert_string_equal(cond(d, "Available", "reason"), "MinimumReplicasUnavailable");
	assert_int_equal(ctrl_int(d, "status.unavailableReplicas", 0), 2);
	json_decref(d);
	ctrl_sim_run(s, 20000);
	d = get_dep(s);
	assert_string_equal(cond(d, "Progressing", "status"), "False");
	assert_string_equal(cond(d, "Progressing", "reason"), "ProgressDeadlineExceeded");
	json_decref(d);
	/* Pods getting ready end it. */
	ctrl_sim_kubelet(s, true);
	assert_true(ctrl_sim_run_until(s, 10000, complete_pred, NULL));
	ctrl_sim_run(s, 1000);
	d = get_dep(s);
	assert_string_equal(cond(d, "Progressing", "reason"), "NewReplicaSetAvailable");
	assert_string_equal(cond(d, "Available", "status"), "True");
	json_decref(d);
	ctrl_sim_free(s);
}

/* A Deployment write made stale by a user's update is retried. */
static void stale_write_retries(void **state)
{
	struct ctrl_sim *s = sim_new();
	struct ctrl_stats st;

	(void)state;
	apply_dep(s, 3, "nginx:1", NULL);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 0);
	/* The first sync's writes are in flight (1 ms): update under them. */
	apply_dep(s, 3, "nginx:1", "  minReadySeconds: 0\n  revisionHistoryLimit: 5\n");
	assert_true(ctrl_sim_run_until(s, 10000, complete_pred, NULL));
	ctrl_sim_run(s, 1000);
	ctrl_manager_stats(ctrl_sim_manager(s), &st);
	assert_true(st.conflicts >= 1);
	assert_int_equal(ctrl_sim_count(s, "replicasets", "default", NULL), 1);
	assert_int_equal(ctrl_sim_count(s, "pods", "default", NULL), 3);
	assert_int_equal(dep_int(s, "status.observedGeneration"), 2);
	ctrl_sim_free(s);
}

/* An orphan ReplicaSet matching the selector with the same template is
 * adopted and reused. */
static void adopts_orphan_replicaset(void **state)
{
	struct ctrl_sim *s = sim_new();
	json_t *rs;

	(void)state;
	apply_dep(s, 2, "nginx:1", NULL);
	ctrl_sim_start(s);
	assert_true(ctrl_sim_run_until(s, 10000, complete_pred, NULL));
	rs = rs_of_image(s, "nginx:1");
	/* Release it by hand, as `kubectl delete --cascade=orphan` would. */
	json_object_del(json_object_get(rs, "metadata"), "ownerReferences");
	assert_int_equal(ctrl_sim_apply(s, rs), 0);
	json_decref(rs);
	ctrl_sim_run(s, 2000);
	rs = rs_of_image(s, "nginx:1");
	assert_non_null(ctrl_controller_ref(rs));
	json_decref(rs);
	assert_int_equal(ctrl_sim_count(s, "replicasets", "default", NULL), 1);
	assert_int_equal(ctrl_sim_count(s, "pods", "default", NULL), 2);
	ctrl_sim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(creates_replicaset_and_status),
		cmocka_unit_test(rolling_update_within_bounds),
		cmocka_unit_test(rolling_update_no_surge),
		cmocka_unit_test(recreate),
		cmocka_unit_test(rollback_reuses_old_replicaset),
		cmocka_unit_test(history_limit),
		cmocka_unit_test(pause_and_resume),
		cmocka_unit_test(scales),
		cmocka_unit_test(progress_deadline),
		cmocka_unit_test(stale_write_retries),
		cmocka_unit_test(adopts_orphan_replicaset),
	};

	return cmocka_run_group_tests_name("ctrl_deployment", tests, NULL, NULL);
}
