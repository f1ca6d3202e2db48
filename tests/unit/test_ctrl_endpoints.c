/* The Endpoints and EndpointSlice controllers in the deterministic
 * simulation: addresses of ready and not-ready pods, ports resolved by
 * name, terminating pods, selector and label changes, Services without a
 * selector, deletion, and no write when nothing changed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/ctrl_sim.h"

static const struct ctrl_ops *const ops[] = {&ctrl_endpoints_ops, &ctrl_endpointslice_ops,
					     NULL};

/* ------------------------------------------------------------ fixture */

/* A pod on node n1 with labels app=@app, a container port "http" 8080
 * and "metrics" 9090; with @ip its status has that IP and Ready @ready. */
static void pod(struct ctrl_sim *s, const char *name, const char *app, const char *ip, bool ready)
{
	char y[2048];

	snprintf(y, sizeof(y),
		 "apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: default, labels: {app: "
		 "%s}}\nspec:\n  nodeName: n1\n  containers:\n  - name: c\n    image: busybox\n"
		 "    ports:\n    - {name: http, containerPort: 8080}\n"
		 "    - {name: metrics, containerPort: 9090}\n",
		 name, app);
	assert_int_equal(ctrl_sim_apply_yaml(s, y), 0);
	if (ip == NULL)
		return;
	snprintf(y + strlen(y), sizeof(y) - strlen(y),
		 "status:\n  phase: Running\n  podIP: %s\n  conditions:\n"
		 "  - {type: Ready, status: \"%s\", lastTransitionTime: \"2026-01-01T00:00:00Z\"}\n",
		 ip, ready ? "True" : "False");
	assert_int_equal(ctrl_sim_apply_yaml(s, y), 0);
}

static const char svc_web[] = "apiVersion: v1\nkind: Service\n"
			      "metadata: {name: web, namespace: default, labels: {tier: front}}\n"
			      "spec:\n  selector: {app: web}\n  ports:\n"
			      "  - {name: http, port: 80, targetPort: http}\n"
			      "  - {name: admin, port: 81, targetPort: 7000}\n";

static json_t *endpoints(struct ctrl_sim *s, const char *name)
{
	return ctrl_sim_get(s, "endpoints", "default", name);
}

static const char *rv_of(const json_t *o)
{
	return ctrl_str(o, "metadata.resourceVersion");
}

/* The only slice of Service @svc (a new reference); fails when not one. */
static json_t *the_slice(struct ctrl_sim *s, const char *svc)
{
	char sel[128];
	json_t *l, *one;

	snprintf(sel, sizeof(sel), "kubernetes.io/service-name=%s", svc);
	l = ctrl_sim_list(s, "endpointslices", "default", sel);
	assert_int_equal(json_array_size(l), 1);
	one = json_incref(json_array_get(l, 0));
	json_decref(l);
	return one;
}

/* ------------------------------------------------------------ Endpoints */

static void endpoints_ready_and_not_ready(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	json_t *ep, *sub, *a;

	(void)state;
	pod(s, "web-1", "web", "10.0.0.1", true);
	pod(s, "web-2", "web", "10.0.0.2", false);
	pod(s, "web-3", "web", NULL, false); /* no IP yet: not listed */
	pod(s, "db-1", "db", "10.0.0.9", true);
	assert_int_equal(ctrl_sim_apply_yaml(s, svc_web), 0);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);

	ep = endpoints(s, "web");
	assert_non_null(ep);
	assert_string_equal(ctrl_str(ep, "metadata.labels.tier"), "front");
	assert_string_equal(
		json_string_value(json_object_get(api_json_path(ep, "metadata.labels"),
						  "endpoints.kubernetes.io/managed-by")),
		"endpoint-controller");
	assert_int_equal(json_array_size(json_object_get(ep, "subsets")), 1);
	sub = json_array_get(json_object_get(ep, "subsets"), 0);
	assert_int_equal(json_array_size(json_object_get(sub, "addresses")), 1);
	a = json_array_get(json_object_get(sub, "addresses"), 0);
	assert_string_equal(ctrl_str(a, "ip"), "10.0.0.1");
	assert_string_equal(ctrl_str(a, "nodeName"), "n1");
	assert_string_equal(ctrl_str(a, "targetRef.kind"), "Pod");
	assert_string_equal(ctrl_str(a, "targetRef.name"), "web-1");
	assert_string_equal(ctrl_str(a, "targetRef.namespace"), "default");
	assert_non_null(ctrl_str(a, "targetRef.uid"));
	assert_int_equal(json_array_size(json_object_get(sub, "notReadyAddresses")), 1);
	a = json_array_get(json_object_get(sub, "notReadyAddresses"), 0);
	assert_string_equal(ctrl_str(a, "ip"), "10.0.0.2");
	/* Ports: the named targetPort resolved to the container's 8080. */
	assert_int_equal(json_array_size(json_object_get(sub, "ports")), 2);
	a = json_array_get(json_object_get(sub, "ports"), 0);
	assert_string_equal(ctrl_str(a, "name"), "http");
	assert_int_equal(ctrl_int(a, "port", 0), 8080);
	assert_string_equal(ctrl_str(a, "protocol"), "TCP");
	a = json_array_get(json_object_get(sub, "ports"), 1);
	assert_string_equal(ctrl_str(a, "name"), "admin");
	assert_int_equal(ctrl_int(a, "port", 0), 7000);
	json_decref(ep);
	ctrl_sim_free(s);
}

static void endpoints_follow_pods_without_idle_writes(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	json_t *ep, *sub;
	char rv[32];

	(void)state;
	pod(s, "web-1", "web", "10.0.0.1", true);
	pod(s, "web-2", "web", "10.0.0.2", false);
	assert_int_equal(ctrl_sim_apply_yaml(s, svc_web), 0);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	ep = endpoints(s, "web");
	snprintf(rv, sizeof(rv), "%s", rv_of(ep));
	json_decref(ep);

	/* Changes that do not matter write nothing. */
	pod(s, "db-1", "db", "10.0.0.9", true);
	pod(s, "web-1", "web", "10.0.0.1", true);
	ctrl_sim_run(s, 1000);
	ep = endpoints(s, "web");
	assert_string_equal(rv_of(ep), rv);
	json_decref(ep);

	/* web-2 becomes ready: both addresses ready, sorted by IP. */
	pod(s, "web-2", "web", "10.0.0.2", true);
	ctrl_sim_run(s, 1000);
	ep = endpoints(s, "web");
	assert_string_not_equal(rv_of(ep), rv);
	sub = json_array_get(json_object_get(ep, "subsets"), 0);
	assert_int_equal(json_array_size(json_object_get(sub, "addresses")), 2);
	assert_null(json_object_get(sub, "notReadyAddresses"));
	assert_string_equal(ctrl_str(json_array_get(json_object_get(sub, "addresses"), 0), "ip"),
			    "10.0.0.1");
	json_decref(ep);

	/* web-1 relabelled away: gone from the Endpoints. */
	pod(s, "web-1", "other", "10.0.0.1", true);
	ctrl_sim_run(s, 1000);
	ep = endpoints(s, "web");
	sub = json_array_get(json_object_get(ep, "subsets"), 0);
	assert_int_equal(json_array_size(json_object_get(sub, "addresses")), 1);
	assert_string_equal(ctrl_str(json_array_get(json_object_get(sub, "addresses"), 0), "ip"),
			    "10.0.0.2");
	json_decref(ep);

	/* A pod being deleted (graceful: it is bound) leaves the Endpoints;
	 * with none left, no subsets. */
	assert_int_equal(ctrl_sim_delete(s, "pods", "default", "web-2", 30), 0);
	ctrl_sim_run(s, 1000);
	ep = endpoints(s, "web");
	assert_non_null(ep);
	assert_int_equal(json_array_size(json_object_get(ep, "subsets")), 0);
	json_decref(ep);
	ctrl_sim_free(s);
}

static void endpoints_go_with_service_or_selector(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	json_t *ep;

	(void)state;
	pod(s, "web-1", "web", "10.0.0.1", true);
	assert_int_equal(ctrl_sim_apply_yaml(s, svc_web), 0);
	/* A Service without selector and the Endpoints a user wrote. */
	assert_int_equal(ctrl_sim_apply_yaml(
				 s, "apiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: "
				    "default}\nspec:\n  ports: [{port: 5432}]\n---\n"
				    "apiVersion: v1\nkind: Endpoints\nmetadata: {name: ext, "
				    "namespace: default}\nsubsets:\n- addresses: [{ip: "
				    "192.0.2.10}]\n  ports: [{port: 5432}]\n"),
			 0);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	ep = endpoints(s, "ext");
	assert_non_null(ep);
	assert_string_equal(
		ctrl_str(json_array_get(json_object_get(json_array_get(json_object_get(ep, "subsets"),
									0),
							  "addresses"),
					0),
			 "ip"),
		"192.0.2.10");
	assert_null(api_json_path(ep, "metadata.labels"));
	json_decref(ep);
	ep = endpoints(s, "web");
	assert_non_null(ep);
	json_decref(ep);

	/* The Service loses its selector: our Endpoints goes. */
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: Service\n"
						"metadata: {name: web, namespace: default}\n"
						"spec:\n  ports: [{name: http, port: 80}]\n"),
			 0);
	ctrl_sim_run(s, 1000);
	assert_null(endpoints(s, "web"));

	/* It gets one back, and loses it with the Service. */
	assert_int_equal(ctrl_sim_apply_yaml(s, svc_web), 0);
	ctrl_sim_run(s, 1000);
	ep = endpoints(s, "web");
	assert_non_null(ep);
	json_decref(ep);
	/* Deleted by someone: made again. */
	assert_int_equal(ctrl_sim_delete(s, "endpoints", "default", "web", -1), 0);
	ctrl_sim_run(s, 1000);
	ep = endpoints(s, "web");
	assert_non_null(ep);
	json_decref(ep);
	assert_int_equal(ctrl_sim_delete(s, "services", "default", "web", -1), 0);
	ctrl_sim_run(s, 1000);
	assert_null(endpoints(s, "web"));
	/* The user's Endpoints of the selector-less Service stayed. */
	ep = endpoints(s, "ext");
	assert_non_null(ep);
	json_decref(ep);
	ctrl_sim_free(s);
}

static void endpoints_publish_not_ready_and_headless(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	json_t *ep, *sub;

	(void)state;
	pod(s, "web-1", "web", "10.0.0.1", false);
	assert_int_equal(ctrl_sim_apply_yaml(
				 s, "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: "
				    "default}\nspec:\n  clusterIP: None\n  publishNotReadyAddresses: "
				    "true\n  selector: {app: web}\n  ports: [{name: m, port: 90, "
				    "targetPort: metrics}, {name: x, port: 91, targetPort: nope}]\n"),
			 0);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	ep = endpoints(s, "web");
	assert_non_null(ep);
	assert_non_null(json_object_get(api_json_path(ep, "metadata.labels"),
					"service.kubernetes.io/headless"));
	sub = json_array_get(json_object_get(ep, "subsets"), 0);
	assert_int_equal(json_array_size(json_object_get(sub, "addresses")), 1);
	/* The port whose name no container has is left out. */
	assert_int_equal(json_array_size(json_object_get(sub, "ports")), 1);
	assert_int_equal(ctrl_int(json_array_get(json_object_get(sub, "ports"), 0), "port", 0),
			 9090);
	json_decref(ep);
	ctrl_sim_free(s);
}

/* ------------------------------------------------------------ slices */

static void slice_lists_pods(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	json_t *sl, *svc, *e, *ref;
	char rv[32];

	(void)state;
	pod(s, "web-1", "web", "10.0.0.1", true);
	pod(s, "web-2", "web", "10.0.0.2", false);
	assert_int_equal(ctrl_sim_apply_yaml(s, svc_web), 0);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);

	sl = the_slice(s, "web");
	svc = ctrl_sim_get(s, "services", "default", "web");
	assert_true(strncmp(ctrl_str(sl, "metadata.name"), "web-", 4) == 0);
	assert_string_equal(ctrl_str(sl, "addressType"), "IPv4");
	assert_string_equal(
		json_string_value(json_object_get(api_json_path(sl, "metadata.labels"),
						  "endpointslice.kubernetes.io/managed-by")),
		"endpointslice-controller.k8s.io");
	assert_string_equal(ctrl_str(sl, "metadata.labels.tier"), "front");
	ref = json_array_get(api_json_path(sl, "metadata.ownerReferences"), 0);
	assert_string_equal(ctrl_str(ref, "kind"), "Service");
	assert_string_equal(ctrl_str(ref, "uid"), ctrl_str(svc, "metadata.uid"));
	assert_true(json_is_true(json_object_get(ref, "controller")));
	assert_int_equal(json_array_size(json_object_get(sl, "endpoints")), 2);
	e = json_array_get(json_object_get(sl, "endpoints"), 0);
	assert_string_equal(json_string_value(json_array_get(json_object_get(e, "addresses"), 0)),
			    "10.0.0.1");
	assert_true(json_is_true(api_json_path(e, "conditions.ready")));
	assert_true(json_is_true(api_json_path(e, "conditions.serving")));
	assert_true(json_is_false(api_json_path(e, "conditions.terminating")));
	assert_string_equal(ctrl_str(e, "nodeName"), "n1");
	assert_string_equal(ctrl_str(e, "targetRef.name"), "web-1");
	e = json_array_get(json_object_get(sl, "endpoints"), 1);
	assert_true(json_is_false(api_json_path(e, "conditions.ready")));
	assert_int_equal(ctrl_int(json_array_get(json_object_get(sl, "ports"), 0), "port", 0), 8080);
	snprintf(rv, sizeof(rv), "%s", rv_of(sl));
	json_decref(sl);

	/* Nothing changed: no write. */
	pod(s, "web-1", "web", "10.0.0.1", true);
	ctrl_sim_run(s, 1000);
	sl = the_slice(s, "web");
	assert_string_equal(rv_of(sl), rv);
	json_decref(sl);

	/* A terminating pod stays, not ready, terminating. */
	assert_int_equal(ctrl_sim_delete(s, "pods", "default", "web-1", 30), 0);
	ctrl_sim_run(s, 1000);
	sl = the_slice(s, "web");
	e = json_array_get(json_object_get(sl, "endpoints"), 0);
	assert_string_equal(ctrl_str(e, "targetRef.name"), "web-1");
	assert_true(json_is_false(api_json_path(e, "conditions.ready")));
	assert_true(json_is_true(api_json_path(e, "conditions.serving")));
	assert_true(json_is_true(api_json_path(e, "conditions.terminating")));
	json_decref(sl);
	json_decref(svc);
	ctrl_sim_free(s);
}

static void slice_placeholder_recreate_and_delete(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	json_t *sl;
	char name[128];

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, svc_web), 0);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	/* No pods: one empty placeholder. */
	sl = the_slice(s, "web");
	assert_int_equal(json_array_size(json_object_get(sl, "endpoints")), 0);
	snprintf(name, sizeof(name), "%s", ctrl_str(sl, "metadata.name"));
	json_decref(sl);

	/* A pod arrives: the same slice is updated. */
	pod(s, "web-1", "web", "10.0.0.1", true);
	ctrl_sim_run(s, 1000);
	sl = the_slice(s, "web");
	assert_string_equal(ctrl_str(sl, "metadata.name"), name);
	assert_int_equal(json_array_size(json_object_get(sl, "endpoints")), 1);
	json_decref(sl);

	/* Deleted by someone: made again. */
	assert_int_equal(ctrl_sim_delete(s, "endpointslices", "default", name, -1), 0);
	ctrl_sim_run(s, 1000);
	sl = the_slice(s, "web");
	assert_int_equal(json_array_size(json_object_get(sl, "endpoints")), 1);
	json_decref(sl);

	/* The Service goes: so do its slices. */
	assert_int_equal(ctrl_sim_delete(s, "services", "default", "web", -1), 0);
	ctrl_sim_run(s, 1000);
	assert_int_equal(ctrl_sim_count(s, "endpointslices", "default", NULL), 0);
	ctrl_sim_free(s);
}

static void slices_group_by_ports(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	json_t *l;

	(void)state;
	pod(s, "web-1", "web", "10.0.0.1", true);
	/* A pod whose container calls port 8081 "http". */
	{
		static const char y[] =
			"apiVersion: v1\nkind: Pod\nmetadata: {name: web-2, namespace: "
			"default, labels: {app: web}}\nspec:\n  nodeName: n1\n  "
			"containers:\n  - name: c\n    image: busybox\n    ports: [{name: "
			"http, containerPort: 8081}]\n";
		char full[1024];
		assert_int_equal(ctrl_sim_apply_yaml(s, y), 0);
		snprintf(full, sizeof(full),
			 "%sstatus:\n  podIP: 10.0.0.2\n  conditions: [{type: Ready, status: "
			 "\"True\"}]\n",
			 y);
		assert_int_equal(ctrl_sim_apply_yaml(s, full), 0);
	}
	assert_int_equal(ctrl_sim_apply_yaml(
				 s, "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: "
				    "default}\nspec:\n  selector: {app: web}\n  ports: [{name: http, "
				    "port: 80, targetPort: http}]\n"),
			 0);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	l = ctrl_sim_list(s, "endpointslices", "default", "kubernetes.io/service-name=web");
	assert_int_equal(json_array_size(l), 2);
	json_decref(l);
	{
		json_t *ep = endpoints(s, "web");
		assert_int_equal(json_array_size(json_object_get(ep, "subsets")), 2);
		json_decref(ep);
	}
	ctrl_sim_free(s);
}

static void restart_rebuilds_without_writes(void **state)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");
	struct ctrl_stats st0, st1;

	(void)state;
	pod(s, "web-1", "web", "10.0.0.1", true);
	assert_int_equal(ctrl_sim_apply_yaml(s, svc_web), 0);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	ctrl_sim_stop(s);
	ctrl_sim_start(s);
	ctrl_manager_stats(ctrl_sim_manager(s), &st0);
	ctrl_sim_run(s, 1000);
	ctrl_manager_stats(ctrl_sim_manager(s), &st1);
	/* A new term reads everything again and finds nothing to do. */
	assert_int_equal(st1.writes, st0.writes);
	assert_true(st1.syncs > st0.syncs);
	ctrl_sim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(endpoints_ready_and_not_ready),
		cmocka_unit_test(endpoints_follow_pods_without_idle_writes),
		cmocka_unit_test(endpoints_go_with_service_or_selector),
		cmocka_unit_test(endpoints_publish_not_ready_and_headless),
		cmocka_unit_test(slice_lists_pods),
		cmocka_unit_test(slice_placeholder_recreate_and_delete),
		cmocka_unit_test(slices_group_by_ports),
		cmocka_unit_test(restart_rebuilds_without_writes),
	};

	return cmocka_run_group_tests_name("ctrl_endpoints", tests, NULL, NULL);
}
