/* Unit tests of the discovery documents: legacy APIVersions, APIGroupList,
 * APIResourceList, and the aggregated apidiscovery.k8s.io/v2 form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/api/discovery.h"

/* ---------------------------------------------------------------- Parameters */

/* What kubectl must see for every served kind (facts of Kubernetes 1.32). */
struct expect {
	const char *group, *plural, *singular, *kind, *short_name;
	bool namespaced, in_all;
};

static const struct expect expected[] = {
	{ "", "namespaces", "namespace", "Namespace", "ns", false, false },
	{ "", "pods", "pod", "Pod", "po", true, true },
	{ "", "services", "service", "Service", "svc", true, true },
	{ "", "endpoints", "endpoints", "Endpoints", "ep", true, false },
	{ "", "configmaps", "configmap", "ConfigMap", "cm", true, false },
	{ "", "secrets", "secret", "Secret", NULL, true, false },
	{ "", "persistentvolumes", "persistentvolume", "PersistentVolume", "pv", false, false },
	{ "", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", "pvc", true, false },
	{ "", "nodes", "node", "Node", "no", false, false },
	{ "", "serviceaccounts", "serviceaccount", "ServiceAccount", "sa", true, false },
	{ "", "events", "event", "Event", "ev", true, false },
	{ "apps", "deployments", "deployment", "Deployment", "deploy", true, true },
	{ "apps", "replicasets", "replicaset", "ReplicaSet", "rs", true, true },
	{ "apps", "daemonsets", "daemonset", "DaemonSet", "ds", true, true },
	{ "apps", "statefulsets", "statefulset", "StatefulSet", "sts", true, true },
	{ "networking.k8s.io", "ingresses", "ingress", "Ingress", "ing", true, false },
	{ "networking.k8s.io", "networkpolicies", "networkpolicy", "NetworkPolicy", "netpol", true, false },
	{ "coordination.k8s.io", "leases", "lease", "Lease", NULL, true, false },
	{ "discovery.k8s.io", "endpointslices", "endpointslice", "EndpointSlice", NULL, true, false },
};
#define N_EXPECTED (sizeof(expected) / sizeof(expected[0]))

static const char *const all_verbs[] = { "create", "delete", "deletecollection", "get",
					 "list", "patch", "update", "watch", NULL };
static const char *const all_but_collection[] = { "create", "delete", "get", "list",
						  "patch", "update", "watch", NULL };
static const char *const get_patch_update[] = { "get", "patch", "update", NULL };

/* Kubernetes serves no deletecollection for namespaces. */
static const char *const *verbs_of(const char *plural)
{
	return strcmp(plural, "namespaces") == 0 ? all_but_collection : all_verbs;
}

/* json_equal() is false when both are NULL: absent on both sides is equal. */
static bool same(const json_t *a, const json_t *b)
{
	return (!a && !b) || json_equal((json_t *)a, (json_t *)b);
}

/* ---------------------------------------------------------------- Helpers */

static const char *str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static bool array_has(const json_t *arr, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0) {
			return true;
		}
	}
	return false;
}

/* The element of @arr whose @key is @value. */
static json_t *find_by(const json_t *arr, const char *key, const char *value)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		const char *s = str(v, key);
		if (s && strcmp(s, value) == 0) {
			return v;
		}
	}
	return NULL;
}

static void assert_strings(const json_t *arr, const char *const *want)
{
	size_t n = 0;
	assert_true(json_is_array(arr));
	for (; want[n]; n++) {
		assert_non_null(json_array_get(arr, n));
		assert_string_equal(json_string_value(json_array_get(arr, n)), want[n]);
	}
	assert_int_equal(json_array_size(arr), n);
}

/* Every key of @obj is one of @allowed. */
static void assert_keys_within(const json_t *obj, const char *const *allowed)
{
	const char *key;
	json_t *v;
	assert_true(json_is_object(obj));
	json_object_foreach((json_t *)obj, key, v) {
		bool ok = false;
		for (const char *const *a = allowed; *a && !ok; a++) {
			ok = strcmp(*a, key) == 0;
		}
		if (!ok) {
			fail_msg("unexpected field %s", key);
		}
	}
}

static void assert_gvk(const json_t *o, const char *group, const char *version, const char *kind)
{
	static const char *const keys[] = { "group", "version", "kind", NULL };
	assert_keys_within(o, keys);
	assert_string_equal(str(o, "group"), group);
	assert_string_equal(str(o, "version"), version);
	assert_string_equal(str(o, "kind"), kind);
}

/* ---------------------------------------------------------------- Legacy tests */

static void api_versions(void **state)
{
	(void)state;
	json_t *doc = api_discovery_api_versions("10.1.2.3:6443");
	assert_non_null(doc);
	assert_string_equal(str(doc, "kind"), "APIVersions");
	static const char *const v1[] = { "v1", NULL };
	assert_strings(json_object_get(doc, "versions"), v1);
	json_t *cidr = json_array_get(json_object_get(doc, "serverAddressByClientCIDRs"), 0);
	assert_string_equal(str(cidr, "clientCIDR"), "0.0.0.0/0");
	assert_string_equal(str(cidr, "serverAddress"), "10.1.2.3:6443");
	json_decref(doc);
}

static void group_list(void **state)
{
	(void)state;
	json_t *doc = api_discovery_group_list();
	assert_non_null(doc);
	assert_string_equal(str(doc, "kind"), "APIGroupList");
	assert_string_equal(str(doc, "apiVersion"), "v1");
	json_t *groups = json_object_get(doc, "groups");
	static const char *const names[] = { "apps", "networking.k8s.io", "coordination.k8s.io",
					     "discovery.k8s.io" };
	assert_int_equal(json_array_size(groups), 4);
	for (size_t i = 0; i < 4; i++) {
		json_t *g = find_by(groups, "name", names[i]);
		assert_non_null(g);
		char gv[128];
		snprintf(gv, sizeof(gv), "%s/v1", names[i]);
		json_t *pref = json_object_get(g, "preferredVersion");
		assert_string_equal(str(pref, "groupVersion"), gv);
		assert_string_equal(str(pref, "version"), "v1");
		json_t *versions = json_object_get(g, "versions");
		assert_int_equal(json_array_size(versions), 1);
		assert_true(json_equal(json_array_get(versions, 0), pref));
	}
	json_decref(doc);
}

static void group_versions(void **state)
{
	(void)state;
	struct api_group_version gvs[8];
	size_t n = api_discovery_group_versions(gvs, 8);
	assert_int_equal(n, 5);
	assert_string_equal(gvs[0].group, "");
	assert_string_equal(gvs[0].version, "v1");
	assert_int_equal(api_discovery_group_versions(NULL, 0), 5);
	assert_true(api_discovery_served("", "v1"));
	assert_true(api_discovery_served("apps", "v1"));
	assert_false(api_discovery_served("apps", "v1beta1"));
	assert_false(api_discovery_served("batch", "v1"));
}

static void every_kind_listed(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_EXPECTED; i++) {
		const struct expect *e = &expected[i];
		json_t *doc = api_discovery_resource_list(e->group, "v1");
		assert_non_null(doc);
		assert_string_equal(str(doc, "kind"), "APIResourceList");
		char gv[128];
		snprintf(gv, sizeof(gv), "%s%sv1", e->group, e->group[0] ? "/" : "");
		assert_string_equal(str(doc, "groupVersion"), gv);
		json_t *r = find_by(json_object_get(doc, "resources"), "name", e->plural);
		if (!r) {
			fail_msg("%s missing from %s", e->plural, gv);
		}
		assert_string_equal(str(r, "singularName"), e->singular);
		assert_string_equal(str(r, "kind"), e->kind);
		assert_int_equal(json_is_true(json_object_get(r, "namespaced")), e->namespaced);
		assert_strings(json_object_get(r, "verbs"), verbs_of(e->plural));
		json_t *shorts = json_object_get(r, "shortNames");
		if (e->short_name) {
			assert_true(array_has(shorts, e->short_name));
		} else {
			assert_null(shorts);
		}
		assert_int_equal(array_has(json_object_get(r, "categories"), "all"), e->in_all);
		assert_non_null(str(r, "storageVersionHash"));
		assert_null(json_object_get(r, "group"));
		json_decref(doc);
	}
}

static void subresources_listed(void **state)
{
	(void)state;
	json_t *core = api_discovery_resource_list("", "v1");
	json_t *apps = api_discovery_resource_list("apps", "v1");
	assert_non_null(core);
	assert_non_null(apps);
	json_t *cr = json_object_get(core, "resources");
	json_t *ar = json_object_get(apps, "resources");

	json_t *r = find_by(cr, "name", "pods/status");
	assert_non_null(r);
	assert_string_equal(str(r, "kind"), "Pod");
	assert_string_equal(str(r, "singularName"), "");
	assert_true(json_is_true(json_object_get(r, "namespaced")));
	assert_strings(json_object_get(r, "verbs"), get_patch_update);
	assert_null(json_object_get(r, "group"));
	assert_null(json_object_get(r, "storageVersionHash"));

	r = find_by(cr, "name", "pods/binding");
	assert_non_null(r);
	assert_string_equal(str(r, "kind"), "Binding");
	static const char *const create[] = { "create", NULL };
	assert_strings(json_object_get(r, "verbs"), create);

	r = find_by(cr, "name", "pods/log");
	assert_non_null(r);
	assert_string_equal(str(r, "kind"), "Pod");
	static const char *const get[] = { "get", NULL };
	assert_strings(json_object_get(r, "verbs"), get);

	r = find_by(cr, "name", "pods/eviction");
	assert_non_null(r);
	assert_string_equal(str(r, "group"), "policy");
	assert_string_equal(str(r, "version"), "v1");
	assert_string_equal(str(r, "kind"), "Eviction");

	r = find_by(cr, "name", "nodes/status");
	assert_non_null(r);
	assert_false(json_is_true(json_object_get(r, "namespaced")));

	r = find_by(ar, "name", "deployments/scale");
	assert_non_null(r);
	assert_string_equal(str(r, "group"), "autoscaling");
	assert_string_equal(str(r, "version"), "v1");
	assert_string_equal(str(r, "kind"), "Scale");
	assert_strings(json_object_get(r, "verbs"), get_patch_update);
	r = find_by(ar, "name", "deployments/status");
	assert_non_null(r);
	assert_string_equal(str(r, "kind"), "Deployment");
	assert_null(json_object_get(r, "group"));
	assert_non_null(find_by(ar, "name", "statefulsets/scale"));
	assert_non_null(find_by(ar, "name", "replicasets/scale"));

	/* Sorted by name, as Kubernetes lists them. */
	for (size_t i = 1; i < json_array_size(cr); i++) {
		assert_true(strcmp(str(json_array_get(cr, i - 1), "name"),
				   str(json_array_get(cr, i), "name")) < 0);
	}
	json_decref(core);
	json_decref(apps);
}

static void unknown_group_version(void **state)
{
	(void)state;
	assert_null(api_discovery_resource_list("", "v2"));
	assert_null(api_discovery_resource_list("apps", "v1beta1"));
	assert_null(api_discovery_resource_list("batch", "v1"));
}

static void storage_version_hash(void **state)
{
	(void)state;
	char a[API_DISCOVERY_HASH_SIZE], b[API_DISCOVERY_HASH_SIZE];
	const struct api_kind *pod = api_kind_by_gvk("", "v1", "Pod");
	const struct api_kind *deploy = api_kind_by_gvk("apps", "v1", "Deployment");
	api_discovery_storage_version_hash(pod, a);
	api_discovery_storage_version_hash(pod, b);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), 12);
	assert_int_equal(a[11], '=');
	api_discovery_storage_version_hash(deploy, b);
	assert_string_not_equal(a, b);
}

/* ---------------------------------------------------------------- Aggregated tests */

static const char *const list_keys[] = { "kind", "apiVersion", "metadata", "items", NULL };
static const char *const group_keys[] = { "metadata", "versions", NULL };
static const char *const version_keys[] = { "version", "resources", "freshness", NULL };
static const char *const resource_keys[] = { "resource",   "responseKind", "scope",
					     "singularResource", "verbs", "shortNames",
					     "categories", "subresources", NULL };
static const char *const sub_keys[] = { "subresource", "responseKind", "verbs", NULL };

/* Checks the v2 structure of every item and returns the resource named
 * @plural of @group (or NULL). */
static json_t *check_aggregated(const json_t *doc, const char *group, const char *plural)
{
	json_t *found = NULL;
	assert_keys_within(doc, list_keys);
	assert_string_equal(str(doc, "kind"), "APIGroupDiscoveryList");
	assert_string_equal(str(doc, "apiVersion"), "apidiscovery.k8s.io/v2");
	assert_true(json_is_array(json_object_get(doc, "items")));
	size_t i;
	json_t *item;
	json_array_foreach(json_object_get(doc, "items"), i, item) {
		assert_keys_within(item, group_keys);
		const char *name = str(json_object_get(item, "metadata"), "name");
		size_t j;
		json_t *v;
		assert_true(json_array_size(json_object_get(item, "versions")) > 0);
		json_array_foreach(json_object_get(item, "versions"), j, v) {
			assert_keys_within(v, version_keys);
			assert_string_equal(str(v, "version"), "v1");
			assert_string_equal(str(v, "freshness"), "Current");
			size_t k;
			json_t *r;
			json_array_foreach(json_object_get(v, "resources"), k, r) {
				assert_keys_within(r, resource_keys);
				assert_non_null(str(r, "resource"));
				assert_non_null(str(r, "singularResource"));
				const char *scope = str(r, "scope");
				assert_true(strcmp(scope, "Namespaced") == 0 ||
					    strcmp(scope, "Cluster") == 0);
				json_t *rk = json_object_get(r, "responseKind");
				assert_string_equal(str(rk, "group"), name ? name : "");
				assert_string_equal(str(rk, "version"), "v1");
				assert_non_null(str(rk, "kind"));
				assert_true(json_array_size(json_object_get(r, "verbs")) > 0);
				size_t l;
				json_t *s;
				json_array_foreach(json_object_get(r, "subresources"), l, s) {
					assert_keys_within(s, sub_keys);
					assert_non_null(str(s, "subresource"));
					assert_non_null(json_object_get(s, "responseKind"));
					assert_true(json_array_size(json_object_get(s, "verbs")) > 0);
				}
				if (strcmp(name ? name : "", group) == 0 &&
				    strcmp(str(r, "resource"), plural) == 0) {
					found = r;
				}
			}
		}
	}
	return found;
}

static void aggregated_legacy(void **state)
{
	(void)state;
	json_t *doc = api_discovery_aggregated(true);
	assert_non_null(doc);
	assert_int_equal(json_array_size(json_object_get(doc, "items")), 1);
	json_t *item = json_array_get(json_object_get(doc, "items"), 0);
	assert_null(str(json_object_get(item, "metadata"), "name"));

	json_t *pods = check_aggregated(doc, "", "pods");
	assert_non_null(pods);
	assert_gvk(json_object_get(pods, "responseKind"), "", "v1", "Pod");
	assert_string_equal(str(pods, "scope"), "Namespaced");
	assert_string_equal(str(pods, "singularResource"), "pod");
	assert_strings(json_object_get(pods, "verbs"), all_verbs);
	assert_true(array_has(json_object_get(pods, "shortNames"), "po"));
	assert_true(array_has(json_object_get(pods, "categories"), "all"));
	json_t *subs = json_object_get(pods, "subresources");
	json_t *status = find_by(subs, "subresource", "status");
	assert_non_null(status);
	assert_gvk(json_object_get(status, "responseKind"), "", "v1", "Pod");
	assert_strings(json_object_get(status, "verbs"), get_patch_update);
	json_t *log = find_by(subs, "subresource", "log");
	assert_non_null(log);
	assert_gvk(json_object_get(log, "responseKind"), "", "v1", "Pod");
	json_t *eviction = find_by(subs, "subresource", "eviction");
	assert_gvk(json_object_get(eviction, "responseKind"), "policy", "v1", "Eviction");

	json_t *nodes = check_aggregated(doc, "", "nodes");
	assert_non_null(nodes);
	assert_string_equal(str(nodes, "scope"), "Cluster");
	json_t *secrets = check_aggregated(doc, "", "secrets");
	assert_non_null(secrets);
	assert_null(json_object_get(secrets, "shortNames"));
	assert_null(json_object_get(secrets, "subresources"));
	/* No named group in the legacy document. */
	assert_null(check_aggregated(doc, "apps", "deployments"));
	json_decref(doc);
}

static void aggregated_groups(void **state)
{
	(void)state;
	json_t *doc = api_discovery_aggregated(false);
	assert_non_null(doc);
	json_t *items = json_object_get(doc, "items");
	assert_int_equal(json_array_size(items), 4);
	assert_string_equal(str(json_object_get(json_array_get(items, 0), "metadata"), "name"), "apps");

	json_t *deploy = check_aggregated(doc, "apps", "deployments");
	assert_non_null(deploy);
	assert_gvk(json_object_get(deploy, "responseKind"), "apps", "v1", "Deployment");
	assert_true(array_has(json_object_get(deploy, "shortNames"), "deploy"));
	json_t *scale = find_by(json_object_get(deploy, "subresources"), "subresource", "scale");
	assert_non_null(scale);
	assert_gvk(json_object_get(scale, "responseKind"), "autoscaling", "v1", "Scale");
	assert_null(check_aggregated(doc, "", "pods"));

	/* Every expected kind of a named group is there, with its facts. */
	for (size_t i = 0; i < N_EXPECTED; i++) {
		const struct expect *e = &expected[i];
		if (e->group[0] == '\0') {
			continue;
		}
		json_t *r = check_aggregated(doc, e->group, e->plural);
		assert_non_null(r);
		assert_gvk(json_object_get(r, "responseKind"), e->group, "v1", e->kind);
		assert_string_equal(str(r, "scope"), e->namespaced ? "Namespaced" : "Cluster");
		assert_string_equal(str(r, "singularResource"), e->singular);
	}
	json_decref(doc);
}

/* The legacy list and the aggregated document agree for every kind. */
static void forms_agree(void **state)
{
	(void)state;
	json_t *legacy = api_discovery_aggregated(true);
	json_t *named = api_discovery_aggregated(false);
	for (size_t i = 0; i < api_kind_count(); i++) {
		const struct api_kind *k = api_kind_at(i);
		json_t *list = api_discovery_resource_list(k->group, k->version);
		json_t *lr = find_by(json_object_get(list, "resources"), "name", k->plural);
		json_t *ar = check_aggregated(k->group[0] ? named : legacy, k->group, k->plural);
		assert_non_null(lr);
		assert_non_null(ar);
		assert_true(same(json_object_get(lr, "verbs"), json_object_get(ar, "verbs")));
		assert_true(same(json_object_get(lr, "shortNames"), json_object_get(ar, "shortNames")));
		assert_true(same(json_object_get(lr, "categories"), json_object_get(ar, "categories")));
		size_t n_subs = 0;
		for (const struct api_subresource *s = k->subresources; s && s->name; s++) {
			char name[128];
			snprintf(name, sizeof(name), "%s/%s", k->plural, s->name);
			assert_non_null(find_by(json_object_get(list, "resources"), "name", name));
			n_subs++;
		}
		assert_int_equal(json_array_size(json_object_get(ar, "subresources")), n_subs);
		json_decref(list);
	}
	json_decref(legacy);
	json_decref(named);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(api_versions),
		cmocka_unit_test(group_list),
		cmocka_unit_test(group_versions),
		cmocka_unit_test(every_kind_listed),
		cmocka_unit_test(subresources_listed),
		cmocka_unit_test(unknown_group_version),
		cmocka_unit_test(storage_version_hash),
		cmocka_unit_test(aggregated_legacy),
		cmocka_unit_test(aggregated_groups),
		cmocka_unit_test(forms_agree),
	};
	return cmocka_run_group_tests_name("api_discovery", tests, NULL, NULL);
}
