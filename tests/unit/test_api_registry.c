/* Unit tests of the kind registry: lookups, kind facts, Table columns. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/api/registry.h"

/* ---------------------------------------------------------------- Helpers */

static json_t *load(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);
	assert_non_null(j);
	return j;
}

static bool has_name(const char *const *list, const char *name)
{
	for (; list && *list; list++) {
		if (strcmp(*list, name) == 0) {
			return true;
		}
	}
	return false;
}

/* ---------------------------------------------------------------- Tests */

struct expect {
	const char *group, *kind, *plural, *singular, *short_name;
	bool namespaced, in_all;
};

static const struct expect expected[] = {
	{ "", "Namespace", "namespaces", "namespace", "ns", false, false },
	{ "", "Pod", "pods", "pod", "po", true, true },
	{ "", "Service", "services", "service", "svc", true, true },
	{ "", "Endpoints", "endpoints", "endpoints", "ep", true, false },
	{ "", "ConfigMap", "configmaps", "configmap", "cm", true, false },
	{ "", "Secret", "secrets", "secret", NULL, true, false },
	{ "", "PersistentVolume", "persistentvolumes", "persistentvolume", "pv", false, false },
	{ "", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", "pvc", true, false },
	{ "", "Node", "nodes", "node", "no", false, false },
	{ "", "ServiceAccount", "serviceaccounts", "serviceaccount", "sa", true, false },
	{ "", "Event", "events", "event", "ev", true, false },
	{ "apps", "Deployment", "deployments", "deployment", "deploy", true, true },
	{ "apps", "ReplicaSet", "replicasets", "replicaset", "rs", true, true },
	{ "apps", "DaemonSet", "daemonsets", "daemonset", "ds", true, true },
	{ "apps", "StatefulSet", "statefulsets", "statefulset", "sts", true, true },
	{ "networking.k8s.io", "Ingress", "ingresses", "ingress", "ing", true, false },
	{ "networking.k8s.io", "NetworkPolicy", "networkpolicies", "networkpolicy", "netpol", true, false },
	{ "coordination.k8s.io", "Lease", "leases", "lease", NULL, true, false },
	{ "discovery.k8s.io", "EndpointSlice", "endpointslices", "endpointslice", NULL, true, false },
};

static void every_kind_present(void **state)
{
	(void)state;
	size_t n = sizeof(expected) / sizeof(expected[0]);
	assert_int_equal(api_kind_count(), n);
	for (size_t i = 0; i < n; i++) {
		const struct expect *e = &expected[i];
		const struct api_kind *k = api_kind_by_resource(e->group, "v1", e->plural);
		assert_non_null(k);
		assert_string_equal(k->kind, e->kind);
		assert_string_equal(k->singular, e->singular);
		assert_int_equal(k->namespaced, e->namespaced);
		assert_int_equal(has_name(k->categories, "all"), e->in_all);
		assert_ptr_equal(api_kind_by_gvk(e->group, "v1", e->kind), k);
		assert_ptr_equal(api_kind_by_kind(e->kind), k);
		assert_ptr_equal(api_kind_by_name(e->plural), k);
		assert_ptr_equal(api_kind_by_name(e->singular), k);
		if (e->short_name) {
			assert_true(has_name(k->short_names, e->short_name));
			assert_ptr_equal(api_kind_by_name(e->short_name), k);
		}
		/* The root type is the kind's own definition, with its GVK. */
		const struct api_type *t = api_type_get(k->type);
		assert_non_null(t);
		assert_int_not_equal(t->gvk, 0);
		assert_string_equal(api_gen_strings[api_gen_gvks[t->gvk].kind], e->kind);
		assert_string_equal(api_gen_strings[api_gen_gvks[t->gvk].group], e->group);
		/* Every kind has columns, starting with the name (Event: last seen). */
		assert_non_null(k->columns);
		assert_non_null(k->columns[0].name);
		assert_int_equal(k->verbs & API_VERB_GET, API_VERB_GET);
	}
}

static void lookups_miss(void **state)
{
	(void)state;
	assert_null(api_kind_by_resource("", "v1", "deployments"));
	assert_null(api_kind_by_resource("apps", "v2", "deployments"));
	assert_null(api_kind_by_resource("", "v1", "Pods"));
	assert_null(api_kind_by_gvk("apps", "v1", "Pod"));
	assert_null(api_kind_by_name("nosuch"));
	assert_ptr_equal(api_kind_by_name("PO"), api_kind_by_name("pods"));
	assert_null(api_kind_at(api_kind_count()));
}

static void api_versions_and_subresources(void **state)
{
	(void)state;
	const struct api_kind *pod = api_kind_by_name("pods");
	const struct api_kind *deploy = api_kind_by_name("deploy");
	const struct api_kind *ds = api_kind_by_name("ds");
	const struct api_kind *node = api_kind_by_name("nodes");
	assert_string_equal(api_kind_api_version(pod), "v1");
	assert_string_equal(api_kind_api_version(deploy), "apps/v1");
	assert_string_equal(api_kind_api_version(api_kind_by_name("ing")), "networking.k8s.io/v1");

	assert_non_null(api_kind_subresource(pod, "status"));
	assert_non_null(api_kind_subresource(pod, "log"));
	const struct api_subresource *b = api_kind_subresource(pod, "binding");
	assert_non_null(b);
	assert_string_equal(b->kind, "Binding");
	assert_int_equal(b->verbs, API_VERB_CREATE);
	assert_null(api_kind_subresource(pod, "scale"));

	const struct api_subresource *s = api_kind_subresource(deploy, "scale");
	assert_non_null(s);
	assert_string_equal(s->group, "autoscaling");
	assert_string_equal(s->kind, "Scale");
	assert_int_equal(s->type, api_type_find("io.k8s.api.autoscaling.v1.Scale"));
	assert_non_null(api_kind_subresource(api_kind_by_name("rs"), "scale"));
	assert_non_null(api_kind_subresource(api_kind_by_name("sts"), "scale"));
	assert_non_null(api_kind_subresource(ds, "status"));
	assert_null(api_kind_subresource(ds, "scale"));
	assert_non_null(api_kind_subresource(node, "status"));
	assert_int_equal(pod->status_type, api_type_find("io.k8s.api.core.v1.PodStatus"));
}

static void selectable_fields(void **state)
{
	(void)state;
	const struct api_kind *pod = api_kind_by_name("pods");
	assert_true(api_kind_field_selectable(pod, "metadata.name"));
	assert_true(api_kind_field_selectable(pod, "metadata.namespace"));
	assert_true(api_kind_field_selectable(pod, "spec.nodeName"));
	assert_true(api_kind_field_selectable(pod, "status.phase"));
	assert_false(api_kind_field_selectable(pod, "spec.containers"));
	const struct api_kind *node = api_kind_by_name("nodes");
	assert_false(api_kind_field_selectable(node, "metadata.namespace"));
	assert_true(api_kind_field_selectable(node, "spec.unschedulable"));
	assert_true(api_kind_field_selectable(api_kind_by_name("secrets"), "type"));
	assert_true(api_kind_field_selectable(api_kind_by_name("ev"), "involvedObject.name"));
}

static void type_tables(void **state)
{
	(void)state;
	int c = api_type_find("io.k8s.api.core.v1.Container");
	assert_true(c >= 0);
	assert_int_equal(c, API_TYPE_core_v1_Container);
	assert_int_equal(api_type_find("io.k8s.api.core.v1.NoSuch"), -ENOENT);
	const struct api_type *t = api_type_get(c);
	const struct api_field *name = api_type_field(t, "name");
	assert_non_null(name);
	assert_int_equal(name->kind, API_V_STRING);
	assert_true(name->flags & API_F_REQUIRED);
	assert_null(api_type_field(t, "nosuch"));
	const struct api_field *ports = api_type_field(t, "ports");
	assert_int_equal(ports->kind, API_V_ARRAY);
	assert_string_equal(api_field_merge_key(ports), "containerPort");
	assert_true(ports->flags & API_F_PATCH_MERGE);
	assert_true(ports->flags & API_F_LIST_MAP);
	assert_int_equal(api_field_n_map_keys(ports), 2);
	assert_string_equal(api_field_map_key(ports, 0), "containerPort");
	assert_string_equal(api_field_map_key(ports, 1), "protocol");
	assert_null(api_field_map_key(ports, 2));
	const struct api_elem *el = api_elem_get(ports->ref);
	assert_int_equal(el->kind, API_V_OBJECT);
	assert_int_equal(el->ref, API_TYPE_core_v1_ContainerPort);

	const struct api_type *spec = api_type_get(API_TYPE_core_v1_PodSpec);
	const struct api_field *vols = api_type_field(spec, "volumes");
	assert_true(vols->flags & API_F_PATCH_MERGE);
	assert_true(vols->flags & API_F_PATCH_RETAIN_KEYS);
	const struct api_type *rr = api_type_get(API_TYPE_core_v1_ResourceRequirements);
	const struct api_field *limits = api_type_field(rr, "limits");
	assert_int_equal(limits->kind, API_V_MAP);
	assert_int_equal(api_elem_get(limits->ref)->kind, API_V_QUANTITY);
	const struct api_type *meta = api_type_get(API_TYPE_meta_v1_ObjectMeta);
	assert_int_equal(api_type_field(meta, "creationTimestamp")->kind, API_V_TIME);
	assert_int_equal(api_type_field(meta, "managedFields")->kind, API_V_ARRAY);
	const struct api_type *lease = api_type_get(API_TYPE_coordination_v1_LeaseSpec);
	assert_int_equal(api_type_field(lease, "renewTime")->kind, API_V_MICROTIME);
	const struct api_type *port = api_type_get(API_TYPE_core_v1_ServicePort);
	assert_int_equal(api_type_field(port, "targetPort")->kind, API_V_INT_OR_STRING);
	assert_int_equal(api_type_field(port, "port")->kind, API_V_INT32);
}

static void human_durations(void **state)
{
	(void)state;
	static const struct {
		int64_t s;
		const char *want;
	} cases[] = {
		{ -5, "<invalid>" }, { -1, "0s" }, { 0, "0s" }, { 119, "119s" }, { 120, "2m" },
		{ 125, "2m5s" }, { 600, "10m" }, { 179 * 60, "179m" }, { 3 * 3600, "3h" },
		{ 3 * 3600 + 60 * 5, "3h5m" }, { 8 * 3600, "8h" }, { 47 * 3600, "47h" },
		{ 48 * 3600, "2d" }, { 50 * 3600, "2d2h" }, { 8 * 86400, "8d" },
		{ 3 * 365 * 86400, "3y" }, { 3 * 365 * 86400 + 86400, "3y1d" },
		{ 9 * 365 * 86400, "9y" },
	};
	char buf[32];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		api_human_duration(cases[i].s, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
	}
	int64_t t;
	assert_int_equal(api_parse_time("1970-01-01T00:01:00Z", &t), 0);
	assert_int_equal(t, 60);
	assert_int_equal(api_parse_time("2024-01-02T03:04:05.123456Z", &t), 0);
	assert_int_equal(t, 1704164645);
	assert_int_equal(api_parse_time("2024-01-02T04:04:05+01:00", &t), 0);
	assert_int_equal(t, 1704164645);
	assert_int_equal(api_parse_time("2024-01-02 03:04:05", &t), -EINVAL);
	assert_int_equal(api_parse_time("2024-13-02T03:04:05Z", &t), -EINVAL);
}

static void pod_table(void **state)
{
	(void)state;
	const struct api_kind *pod = api_kind_by_name("pods");
	json_t *cols = api_table_columns(pod);
	static const char *const names[] = { "Name", "Ready", "Status", "Restarts", "Age", "IP",
					     "Node", "Nominated Node", "Readiness Gates" };
	assert_int_equal(json_array_size(cols), 9);
	for (size_t i = 0; i < 9; i++) {
		json_t *c = json_array_get(cols, i);
		assert_string_equal(json_string_value(json_object_get(c, "name")), names[i]);
		assert_int_equal(json_integer_value(json_object_get(c, "priority")), i < 5 ? 0 : 1);
	}
	assert_string_equal(json_string_value(json_object_get(json_array_get(cols, 0), "format")), "name");
	json_decref(cols);

	json_t *p = load("{\"metadata\":{\"name\":\"web\",\"creationTimestamp\":\"1970-01-01T00:00:00Z\"},"
			 "\"spec\":{\"nodeName\":\"n1\",\"containers\":[{\"name\":\"a\"},{\"name\":\"b\"}]},"
			 "\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.5\",\"containerStatuses\":["
			 "{\"name\":\"a\",\"ready\":true,\"restartCount\":2,\"state\":{\"running\":{}}},"
			 "{\"name\":\"b\",\"ready\":false,\"restartCount\":1,\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\"}}}]}}");
	json_t *cells = api_table_cells(pod, p, 300);
	assert_string_equal(json_string_value(json_array_get(cells, 0)), "web");
	assert_string_equal(json_string_value(json_array_get(cells, 1)), "1/2");
	assert_string_equal(json_string_value(json_array_get(cells, 2)), "CrashLoopBackOff");
	assert_string_equal(json_string_value(json_array_get(cells, 3)), "3");
	assert_string_equal(json_string_value(json_array_get(cells, 4)), "5m");
	assert_string_equal(json_string_value(json_array_get(cells, 5)), "10.0.0.5");
	assert_string_equal(json_string_value(json_array_get(cells, 6)), "n1");
	assert_string_equal(json_string_value(json_array_get(cells, 7)), "<none>");
	json_decref(cells);

	/* A pod being deleted shows Terminating; init containers show progress. */
	json_object_set_new(json_object_get(p, "metadata"), "deletionTimestamp",
			    json_string("1970-01-01T00:01:00Z"));
	cells = api_table_cells(pod, p, 300);
	assert_string_equal(json_string_value(json_array_get(cells, 2)), "Terminating");
	json_decref(cells);
	json_decref(p);

	p = load("{\"metadata\":{\"name\":\"x\"},\"spec\":{\"initContainers\":[{\"name\":\"i1\"},{\"name\":\"i2\"}],"
		 "\"containers\":[{\"name\":\"a\"}]},\"status\":{\"phase\":\"Pending\",\"initContainerStatuses\":["
		 "{\"name\":\"i1\",\"state\":{\"terminated\":{\"exitCode\":0}}},"
		 "{\"name\":\"i2\",\"state\":{\"running\":{}}}]}}");
	cells = api_table_cells(pod, p, 0);
	assert_string_equal(json_string_value(json_array_get(cells, 2)), "Init:1/2");
	assert_string_equal(json_string_value(json_array_get(cells, 4)), "<unknown>");
	json_decref(cells);
	json_decref(p);
}

static void other_tables(void **state)
{
	(void)state;
	json_t *svc = load("{\"metadata\":{\"name\":\"s\"},\"spec\":{\"type\":\"NodePort\",\"clusterIP\":\"10.96.0.9\","
			   "\"selector\":{\"app\":\"web\"},\"ports\":[{\"port\":80,\"nodePort\":30080,\"protocol\":\"TCP\"},"
			   "{\"port\":53,\"protocol\":\"UDP\"}]}}");
	json_t *cells = api_table_cells(api_kind_by_name("svc"), svc, 0);
	assert_string_equal(json_string_value(json_array_get(cells, 1)), "NodePort");
	assert_string_equal(json_string_value(json_array_get(cells, 2)), "10.96.0.9");
	assert_string_equal(json_string_value(json_array_get(cells, 3)), "<none>");
	assert_string_equal(json_string_value(json_array_get(cells, 4)), "80:30080/TCP,53/UDP");
	assert_string_equal(json_string_value(json_array_get(cells, 6)), "app=web");
	json_decref(cells);
	json_decref(svc);

	json_t *d = load("{\"metadata\":{\"name\":\"d\"},\"spec\":{\"replicas\":3,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
			 "\"template\":{\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"nginx:1\"}]}}},"
			 "\"status\":{\"readyReplicas\":2,\"updatedReplicas\":3,\"availableReplicas\":2}}");
	cells = api_table_cells(api_kind_by_name("deploy"), d, 0);
	assert_string_equal(json_string_value(json_array_get(cells, 1)), "2/3");
	assert_int_equal(json_integer_value(json_array_get(cells, 2)), 3);
	assert_int_equal(json_integer_value(json_array_get(cells, 3)), 2);
	assert_string_equal(json_string_value(json_array_get(cells, 5)), "c");
	assert_string_equal(json_string_value(json_array_get(cells, 6)), "nginx:1");
	assert_string_equal(json_string_value(json_array_get(cells, 7)), "app=web");
	json_decref(cells);
	json_decref(d);

	json_t *cm = load("{\"metadata\":{\"name\":\"c\"},\"data\":{\"a\":\"1\",\"b\":\"2\"},\"binaryData\":{\"c\":\"AA==\"}}");
	cells = api_table_cells(api_kind_by_name("cm"), cm, 0);
	assert_int_equal(json_integer_value(json_array_get(cells, 1)), 3);
	json_decref(cells);
	json_decref(cm);

	json_t *node = load("{\"metadata\":{\"name\":\"n\",\"labels\":{\"node-role.kubernetes.io/control-plane\":\"\"}},"
			    "\"spec\":{\"unschedulable\":true},\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}],"
			    "\"nodeInfo\":{\"kubeletVersion\":\"v1.32.0\"}}}");
	cells = api_table_cells(api_kind_by_name("no"), node, 0);
	assert_string_equal(json_string_value(json_array_get(cells, 1)), "Ready,SchedulingDisabled");
	assert_string_equal(json_string_value(json_array_get(cells, 2)), "control-plane");
	assert_string_equal(json_string_value(json_array_get(cells, 4)), "v1.32.0");
	json_decref(cells);
	json_decref(node);

	json_t *ns = load("{\"metadata\":{\"name\":\"default\"},\"status\":{\"phase\":\"Active\"}}");
	cells = api_table_cells(api_kind_by_name("ns"), ns, 0);
	assert_string_equal(json_string_value(json_array_get(cells, 1)), "Active");
	json_decref(cells);
	json_decref(ns);
}

/* The registry's paths for columns and selectable fields exist in the schema. */
static bool path_exists(int type, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	const struct api_type *t = api_type_get(type);
	for (char *tok = strtok(buf, "."); tok; tok = strtok(NULL, ".")) {
		if (!t) {
			return false;
		}
		const struct api_field *f = api_type_field(t, tok);
		if (!f) {
			return false;
		}
		if (f->kind == API_V_MAP) {
			return true; /* spec.capacity.storage: a map key */
		}
		t = f->kind == API_V_OBJECT ? api_type_get(f->ref) : NULL;
	}
	return true;
}

static void registry_paths_exist(void **state)
{
	(void)state;
	for (size_t i = 0; i < api_kind_count(); i++) {
		const struct api_kind *k = api_kind_at(i);
		for (const struct api_column *c = k->columns; c->name; c++) {
			if (c->path && !path_exists(k->type, c->path)) {
				fail_msg("%s column %s: no field %s", k->kind, c->name, c->path);
			}
		}
		for (const char *const *s = k->selectable_fields; s && *s; s++) {
			if (!path_exists(k->type, *s)) {
				fail_msg("%s selectable field %s does not exist", k->kind, *s);
			}
		}
		for (const struct api_immutable *im = k->immutable; im && im->path; im++) {
			if (!path_exists(k->type, im->path)) {
				fail_msg("%s immutable field %s does not exist", k->kind, im->path);
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_kind_present),
		cmocka_unit_test(lookups_miss),
		cmocka_unit_test(api_versions_and_subresources),
		cmocka_unit_test(selectable_fields),
		cmocka_unit_test(type_tables),
		cmocka_unit_test(human_durations),
		cmocka_unit_test(pod_table),
		cmocka_unit_test(other_tables),
		cmocka_unit_test(registry_paths_exist),
	};
	return cmocka_run_group_tests_name("api_registry", tests, NULL, NULL);
}
