/* Unit tests of the OpenAPI v3 documents: the /openapi/v3 index, every
 * per-group-version document (valid JSON, references resolvable, GVK and
 * patch extensions, fieldValidation on writes), hashes, and property names
 * against Kubernetes' own document when it is present. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/api/discovery.h"
#include "src/api/openapi.h"

/* ---------------------------------------------------------------- Fixture */

struct gv_doc {
	struct api_group_version gv;
	json_t *doc;
};

static struct gv_doc docs[8];
static size_t n_docs;

static int setup(void **state)
{
	(void)state;
	struct api_group_version gvs[8];
	n_docs = api_discovery_group_versions(gvs, 8);
	if (n_docs > 8) {
		return -1;
	}
	for (size_t i = 0; i < n_docs; i++) {
		docs[i].gv = gvs[i];
		docs[i].doc = api_openapi_v3_document(gvs[i].group, gvs[i].version);
		if (!docs[i].doc) {
			return -1;
		}
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_docs; i++) {
		json_decref(docs[i].doc);
	}
	return 0;
}

static json_t *doc_of(const char *group)
{
	for (size_t i = 0; i < n_docs; i++) {
		if (strcmp(docs[i].gv.group, group) == 0) {
			return docs[i].doc;
		}
	}
	fail_msg("no document for group %s", group);
	return NULL;
}

/* ---------------------------------------------------------------- Helpers */

static const char *str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static json_t *schema(const json_t *doc, const char *name)
{
	return json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"), name);
}

static json_t *prop(const json_t *doc, const char *type, const char *field)
{
	json_t *s = schema(doc, type);
	if (!s) {
		fail_msg("schema %s missing", type);
	}
	json_t *p = json_object_get(json_object_get(s, "properties"), field);
	if (!p) {
		fail_msg("%s.%s missing", type, field);
	}
	return p;
}

/* The schema name a property refers to through allOf:[{$ref}] (or $ref). */
static const char *ref_name(const json_t *p)
{
	const char *r = str(p, "$ref");
	if (!r) {
		r = str(json_array_get(json_object_get(p, "allOf"), 0), "$ref");
	}
	if (!r) {
		return NULL;
	}
	assert_int_equal(strncmp(r, API_OPENAPI_REF_PREFIX, strlen(API_OPENAPI_REF_PREFIX)), 0);
	return r + strlen(API_OPENAPI_REF_PREFIX);
}

/* Counts the $refs under @v, failing on any that does not resolve. */
static size_t check_refs(const json_t *doc, const json_t *v)
{
	size_t n = 0;
	if (json_is_object(v)) {
		const char *key;
		json_t *child;
		json_object_foreach((json_t *)v, key, child) {
			if (strcmp(key, "$ref") == 0) {
				const char *r = json_string_value(child);
				assert_non_null(r);
				assert_int_equal(strncmp(r, API_OPENAPI_REF_PREFIX,
							 strlen(API_OPENAPI_REF_PREFIX)),
						 0);
				if (!schema(doc, r + strlen(API_OPENAPI_REF_PREFIX))) {
					fail_msg("unresolved $ref %s", r);
				}
				n++;
			} else {
				n += check_refs(doc, child);
			}
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *child;
		json_array_foreach(v, i, child) {
			n += check_refs(doc, child);
		}
	}
	return n;
}

static bool has_param(const json_t *op, const char *name, const char *in)
{
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(op, "parameters"), i, p) {
		if (strcmp(str(p, "name"), name) == 0 && strcmp(str(p, "in"), in) == 0) {
			return true;
		}
	}
	return false;
}

static bool gvk_is(const json_t *g, const char *group, const char *version, const char *kind)
{
	return g && strcmp(str(g, "group"), group) == 0 && strcmp(str(g, "version"), version) == 0 &&
	       strcmp(str(g, "kind"), kind) == 0;
}

static bool schema_has_gvk(const json_t *s, const char *group, const char *version, const char *kind)
{
	size_t i;
	json_t *g;
	json_array_foreach(json_object_get(s, "x-kubernetes-group-version-kind"), i, g) {
		if (gvk_is(g, group, version, kind)) {
			return true;
		}
	}
	return false;
}

/* ---------------------------------------------------------------- Tests */

static void index_paths(void **state)
{
	(void)state;
	json_t *idx = api_openapi_v3_paths();
	assert_non_null(idx);
	json_t *paths = json_object_get(idx, "paths");
	static const char *const keys[] = { "api/v1", "apis/apps/v1", "apis/networking.k8s.io/v1",
					    "apis/coordination.k8s.io/v1", "apis/discovery.k8s.io/v1" };
	assert_int_equal(json_object_size(paths), 5);
	for (size_t i = 0; i < 5; i++) {
		json_t *e = json_object_get(paths, keys[i]);
		assert_non_null(e);
		const char *url = str(e, "serverRelativeURL");
		char want[256];
		snprintf(want, sizeof(want), "/openapi/v3/%s?hash=", keys[i]);
		assert_int_equal(strncmp(url, want, strlen(want)), 0);
		const char *hash = url + strlen(want);
		assert_int_equal(strlen(hash), API_OPENAPI_HASH_SIZE - 1);
		assert_int_equal(strspn(hash, "0123456789ABCDEF"), API_OPENAPI_HASH_SIZE - 1);
	}
	/* The hash in the URL is the document's. */
	char h[API_OPENAPI_HASH_SIZE];
	assert_int_equal(api_openapi_v3_document_hash("apps", "v1", h), 0);
	assert_non_null(strstr(str(json_object_get(paths, "apis/apps/v1"), "serverRelativeURL"), h));
	json_decref(idx);
}

static void valid_json_and_refs_resolve(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_docs; i++) {
		json_t *doc = docs[i].doc;
		assert_string_equal(str(doc, "openapi"), "3.0.0");
		size_t len;
		char *text = api_openapi_dump(doc, &len);
		assert_non_null(text);
		json_error_t err;
		json_t *back = json_loadb(text, len, 0, &err);
		assert_non_null(back);
		assert_true(json_equal(back, doc));
		json_decref(back);
		free(text);
		assert_true(check_refs(doc, doc) > 10);
	}
}

static void kinds_have_gvk_and_paths(void **state)
{
	(void)state;
	for (size_t i = 0; i < api_kind_count(); i++) {
		const struct api_kind *k = api_kind_at(i);
		json_t *doc = doc_of(k->group);
		const char *name = api_type_name(api_type_get(k->type));
		json_t *s = schema(doc, name);
		assert_non_null(s);
		assert_string_equal(str(s, "type"), "object");
		assert_true(schema_has_gvk(s, k->group, k->version, k->kind));
		char list_name[256], list_kind[128];
		snprintf(list_name, sizeof(list_name), "%sList", name);
		snprintf(list_kind, sizeof(list_kind), "%sList", k->kind);
		json_t *ls = schema(doc, list_name);
		assert_non_null(ls);
		assert_true(schema_has_gvk(ls, k->group, k->version, list_kind));
		assert_string_equal(ref_name(json_object_get(prop(doc, list_name, "items"), "items")),
				    name);

		char prefix[128], coll[256], named[300];
		if (k->group[0]) {
			snprintf(prefix, sizeof(prefix), "/apis/%s/%s", k->group, k->version);
		} else {
			snprintf(prefix, sizeof(prefix), "/api/%s", k->version);
		}
		snprintf(coll, sizeof(coll), "%s%s/%s", prefix,
			 k->namespaced ? "/namespaces/{namespace}" : "", k->plural);
		snprintf(named, sizeof(named), "%s/{name}", coll);
		json_t *paths = json_object_get(doc, "paths");
		json_t *pc = json_object_get(paths, coll);
		json_t *pn = json_object_get(paths, named);
		assert_non_null(pc);
		assert_non_null(pn);
		assert_string_equal(str(json_object_get(pc, "get"), "x-kubernetes-action"), "list");
		assert_string_equal(str(json_object_get(pc, "post"), "x-kubernetes-action"), "post");
		if (k->verbs & API_VERB_DELETECOLLECTION) {
			assert_string_equal(str(json_object_get(pc, "delete"), "x-kubernetes-action"),
					    "deletecollection");
		} else {
			assert_null(json_object_get(pc, "delete"));
		}
		assert_string_equal(str(json_object_get(pn, "get"), "x-kubernetes-action"), "get");
		assert_string_equal(str(json_object_get(pn, "put"), "x-kubernetes-action"), "put");
		assert_string_equal(str(json_object_get(pn, "delete"), "x-kubernetes-action"), "delete");
		json_t *patch = json_object_get(pn, "patch");
		assert_non_null(patch);
		assert_true(gvk_is(json_object_get(patch, "x-kubernetes-group-version-kind"), k->group,
				   k->version, k->kind));
		json_t *content = json_object_get(json_object_get(patch, "requestBody"), "content");
		assert_non_null(json_object_get(content, "application/strategic-merge-patch+json"));
		assert_non_null(json_object_get(content, "application/merge-patch+json"));
		assert_non_null(json_object_get(content, "application/json-patch+json"));
		assert_non_null(json_object_get(content, "application/apply-patch+yaml"));
		assert_true(has_param(pn, "name", "path"));
		assert_int_equal(has_param(pn, "namespace", "path"), k->namespaced);
		if (k->namespaced) {
			char all[256];
			snprintf(all, sizeof(all), "%s/%s", prefix, k->plural);
			assert_non_null(json_object_get(json_object_get(paths, all), "get"));
		}
	}
}

/* kubectl sends fieldValidation=Strict only when the kind's patch operation
 * declares it; every write operation does here. */
static void writes_declare_field_validation(void **state)
{
	(void)state;
	size_t n_patch = 0;
	for (size_t i = 0; i < n_docs; i++) {
		const char *path;
		json_t *item;
		json_object_foreach(json_object_get(docs[i].doc, "paths"), path, item) {
			static const char *const methods[] = { "patch", "put", "post" };
			for (size_t m = 0; m < 3; m++) {
				json_t *op = json_object_get(item, methods[m]);
				if (!op) {
					continue;
				}
				if (!has_param(op, "fieldValidation", "query")) {
					fail_msg("%s %s lacks fieldValidation", methods[m], path);
				}
				assert_non_null(json_object_get(op, "x-kubernetes-group-version-kind"));
				n_patch += m == 0;
			}
			json_t *op;
			const char *method;
			json_object_foreach(item, method, op) {
				if (strcmp(method, "parameters") != 0) {
					assert_non_null(str(op, "operationId"));
					assert_non_null(json_object_get(op, "responses"));
				}
			}
		}
	}
	assert_true(n_patch >= api_kind_count());
}

static void subresource_paths(void **state)
{
	(void)state;
	json_t *apps = doc_of("apps");
	json_t *paths = json_object_get(apps, "paths");
	json_t *scale = json_object_get(paths, "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale");
	assert_non_null(scale);
	assert_true(gvk_is(json_object_get(json_object_get(scale, "patch"), "x-kubernetes-group-version-kind"),
			   "autoscaling", "v1", "Scale"));
	assert_true(schema_has_gvk(schema(apps, "io.k8s.api.autoscaling.v1.Scale"), "autoscaling", "v1",
				   "Scale"));
	json_t *status = json_object_get(paths, "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status");
	assert_true(gvk_is(json_object_get(json_object_get(status, "patch"), "x-kubernetes-group-version-kind"),
			   "apps", "v1", "Deployment"));

	json_t *core = doc_of("");
	paths = json_object_get(core, "paths");
	json_t *log = json_object_get(json_object_get(paths, "/api/v1/namespaces/{namespace}/pods/{name}/log"), "get");
	assert_non_null(log);
	assert_true(has_param(log, "follow", "query"));
	assert_true(has_param(log, "container", "query"));
	json_t *text = json_object_get(json_object_get(json_object_get(json_object_get(log, "responses"), "200"),
						       "content"),
				       "text/plain");
	assert_non_null(text);
	json_t *binding = json_object_get(paths, "/api/v1/namespaces/{namespace}/pods/{name}/binding");
	assert_non_null(json_object_get(binding, "post"));
	assert_null(json_object_get(binding, "get"));
	json_t *eviction = json_object_get(paths, "/api/v1/namespaces/{namespace}/pods/{name}/eviction");
	assert_true(gvk_is(json_object_get(json_object_get(eviction, "post"), "x-kubernetes-group-version-kind"),
			   "policy", "v1", "Eviction"));
	assert_non_null(schema(core, "io.k8s.api.policy.v1.Eviction"));
	assert_non_null(json_object_get(json_object_get(paths, "/api/v1/namespaces/{name}/finalize"), "put"));
	/* A cluster-scoped kind has no namespace segment. */
	assert_non_null(json_object_get(paths, "/api/v1/nodes/{name}/status"));
	assert_null(json_object_get(paths, "/api/v1/namespaces/{namespace}/nodes"));
}

static void meta_types_present(void **state)
{
	(void)state;
	static const char *const names[] = {
		"io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
		"io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta",
		"io.k8s.apimachinery.pkg.apis.meta.v1.Status",
		"io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
		"io.k8s.apimachinery.pkg.apis.meta.v1.Patch",
		"io.k8s.apimachinery.pkg.apis.meta.v1.Time",
		"io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
		"io.k8s.apimachinery.pkg.util.intstr.IntOrString",
		"io.k8s.apimachinery.pkg.api.resource.Quantity",
	};
	for (size_t i = 0; i < n_docs; i++) {
		for (size_t j = 0; j < sizeof(names) / sizeof(names[0]); j++) {
			if (!schema(docs[i].doc, names[j])) {
				fail_msg("%s missing from %s/%s", names[j], docs[i].gv.group,
					 docs[i].gv.version);
			}
		}
	}
	json_t *core = doc_of("");
	assert_true(schema_has_gvk(schema(core, "io.k8s.apimachinery.pkg.apis.meta.v1.Status"), "", "v1",
				   "Status"));
	json_t *apps = doc_of("apps");
	json_t *del = schema(apps, "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions");
	assert_true(schema_has_gvk(del, "", "v1", "DeleteOptions"));
	assert_true(schema_has_gvk(del, "apps", "v1", "DeleteOptions"));
	/* Types of another group-version stay out. */
	assert_null(schema(core, "io.k8s.api.apps.v1.Deployment"));
	assert_null(schema(apps, "io.k8s.api.core.v1.Service"));
	assert_non_null(schema(apps, "io.k8s.api.core.v1.PodSpec"));
}

static void patch_extensions(void **state)
{
	(void)state;
	json_t *core = doc_of("");
	json_t *c = prop(core, "io.k8s.api.core.v1.PodSpec", "containers");
	assert_string_equal(str(c, "type"), "array");
	assert_string_equal(ref_name(json_object_get(c, "items")), "io.k8s.api.core.v1.Container");
	assert_string_equal(str(c, "x-kubernetes-patch-merge-key"), "name");
	assert_string_equal(str(c, "x-kubernetes-patch-strategy"), "merge");
	assert_string_equal(str(c, "x-kubernetes-list-type"), "map");
	assert_string_equal(json_string_value(json_array_get(json_object_get(c, "x-kubernetes-list-map-keys"), 0)),
			    "name");

	json_t *v = prop(core, "io.k8s.api.core.v1.PodSpec", "volumes");
	assert_string_equal(str(v, "x-kubernetes-patch-strategy"), "merge,retainKeys");
	json_t *ports = prop(core, "io.k8s.api.core.v1.Container", "ports");
	assert_string_equal(str(ports, "x-kubernetes-patch-merge-key"), "containerPort");
	json_t *keys = json_object_get(ports, "x-kubernetes-list-map-keys");
	assert_int_equal(json_array_size(keys), 2);
	assert_string_equal(json_string_value(json_array_get(keys, 1)), "protocol");
	json_t *owners = prop(core, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences");
	assert_string_equal(str(owners, "x-kubernetes-patch-merge-key"), "uid");
	json_t *fin = prop(core, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers");
	assert_string_equal(str(fin, "x-kubernetes-list-type"), "set");
	assert_string_equal(str(fin, "x-kubernetes-patch-strategy"), "merge");

	json_t *strategy = prop(doc_of("apps"), "io.k8s.api.apps.v1.DeploymentSpec", "strategy");
	assert_string_equal(str(strategy, "x-kubernetes-patch-strategy"), "retainKeys");
	assert_string_equal(ref_name(strategy), "io.k8s.api.apps.v1.DeploymentStrategy");
	assert_string_equal(ref_name(prop(doc_of("apps"), "io.k8s.api.apps.v1.Deployment", "spec")),
			    "io.k8s.api.apps.v1.DeploymentSpec");
}

static void types_and_formats(void **state)
{
	(void)state;
	json_t *core = doc_of("");
	json_t *p = prop(core, "io.k8s.api.core.v1.ContainerPort", "containerPort");
	assert_string_equal(str(p, "type"), "integer");
	assert_string_equal(str(p, "format"), "int32");
	p = prop(core, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "generation");
	assert_string_equal(str(p, "format"), "int64");
	p = prop(core, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "creationTimestamp");
	assert_string_equal(ref_name(p), "io.k8s.apimachinery.pkg.apis.meta.v1.Time");
	assert_string_equal(str(schema(core, "io.k8s.apimachinery.pkg.apis.meta.v1.Time"), "format"),
			    "date-time");
	p = prop(core, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "labels");
	assert_string_equal(str(p, "type"), "object");
	assert_string_equal(str(json_object_get(p, "additionalProperties"), "type"), "string");
	p = prop(core, "io.k8s.api.core.v1.Secret", "data");
	assert_string_equal(str(json_object_get(p, "additionalProperties"), "format"), "byte");
	p = prop(core, "io.k8s.api.core.v1.ServicePort", "targetPort");
	assert_string_equal(ref_name(p), "io.k8s.apimachinery.pkg.util.intstr.IntOrString");
	json_t *ios = schema(core, "io.k8s.apimachinery.pkg.util.intstr.IntOrString");
	assert_true(json_is_true(json_object_get(ios, "x-kubernetes-int-or-string")));
	assert_string_equal(str(ios, "format"), "int-or-string");
	p = prop(core, "io.k8s.api.core.v1.ResourceRequirements", "limits");
	assert_string_equal(ref_name(json_object_get(p, "additionalProperties")),
			    "io.k8s.apimachinery.pkg.api.resource.Quantity");
	p = prop(core, "io.k8s.api.core.v1.PodSpec", "hostNetwork");
	assert_string_equal(str(p, "type"), "boolean");
	p = prop(doc_of("coordination.k8s.io"), "io.k8s.api.coordination.v1.LeaseSpec", "renewTime");
	assert_string_equal(ref_name(p), "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime");

	json_t *req = json_object_get(schema(core, "io.k8s.api.core.v1.Container"), "required");
	assert_int_equal(json_array_size(req), 1);
	assert_string_equal(json_string_value(json_array_get(req, 0)), "name");
}

/* Descriptions are Kubernetes' prose: none may appear in the schemas. */
static void no_descriptions_in_schemas(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_docs; i++) {
		char *text = api_openapi_dump(json_object_get(docs[i].doc, "components"), NULL);
		assert_non_null(text);
		assert_null(strstr(text, "\"description\""));
		free(text);
	}
}

static void hashes_stable(void **state)
{
	(void)state;
	char a[API_OPENAPI_HASH_SIZE], b[API_OPENAPI_HASH_SIZE], c[API_OPENAPI_HASH_SIZE];
	assert_int_equal(api_openapi_v3_document_hash("", "v1", a), 0);
	assert_int_equal(api_openapi_v3_document_hash("", "v1", b), 0);
	assert_string_equal(a, b);
	assert_int_equal(api_openapi_v3_document_hash("apps", "v1", c), 0);
	assert_string_not_equal(a, c);

	/* The hash covers the canonical text of the document. */
	size_t len;
	char *text = api_openapi_dump(doc_of(""), &len);
	api_openapi_text_hash(text, len, b);
	assert_string_equal(a, b);
	text[len / 2] ^= 1;
	api_openapi_text_hash(text, len, b);
	assert_string_not_equal(a, b);
	free(text);

	json_t *i1 = api_openapi_v3_paths();
	json_t *i2 = api_openapi_v3_paths();
	assert_true(json_equal(i1, i2));
	json_decref(i1);
	json_decref(i2);
}

static void unknown_group_version(void **state)
{
	(void)state;
	char h[API_OPENAPI_HASH_SIZE];
	assert_null(api_openapi_v3_document("", "v2"));
	assert_null(api_openapi_v3_document("batch", "v1"));
	assert_int_equal(api_openapi_v3_document_hash("batch", "v1", h), -ENOENT);
}

/* ---------------------------------------------------------------- Oracle */

static json_t *swagger;

static void load_swagger(void)
{
	char path[4096];
	const char *env = getenv("CAPSTAN_SWAGGER");
	const char *src = getenv("CAPSTAN_SRCDIR");
	if (env) {
		snprintf(path, sizeof(path), "%s", env);
	} else {
		snprintf(path, sizeof(path), "%s/../shared/k8s-openapi/swagger.json", src ? src : ".");
	}
	json_error_t err;
	swagger = json_load_file(path, 0, &err);
}

static void same_name_set(const json_t *ours, const json_t *theirs, const char *what)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)theirs, key, v) {
		if (!json_object_get(ours, key)) {
			fail_msg("%s: %s missing", what, key);
		}
	}
	assert_int_equal(json_object_size(ours), json_object_size(theirs));
}

/* Property names, required fields and patch extensions of a few kinds
 * agree with Kubernetes' own document. */
static void swagger_property_names(void **state)
{
	(void)state;
	static const struct {
		const char *group, *name;
	} kinds[] = {
		{ "", "io.k8s.api.core.v1.Pod" },
		{ "", "io.k8s.api.core.v1.PodSpec" },
		{ "", "io.k8s.api.core.v1.Container" },
		{ "", "io.k8s.api.core.v1.Service" },
		{ "", "io.k8s.api.core.v1.ServiceSpec" },
		{ "", "io.k8s.api.core.v1.Node" },
		{ "", "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" },
		{ "apps", "io.k8s.api.apps.v1.Deployment" },
		{ "apps", "io.k8s.api.apps.v1.DeploymentSpec" },
		{ "apps", "io.k8s.api.apps.v1.StatefulSetSpec" },
		{ "networking.k8s.io", "io.k8s.api.networking.v1.IngressSpec" },
		{ "coordination.k8s.io", "io.k8s.api.coordination.v1.LeaseSpec" },
		{ "discovery.k8s.io", "io.k8s.api.discovery.v1.EndpointSlice" },
	};
	json_t *defs = json_object_get(swagger, "definitions");
	assert_non_null(defs);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		json_t *theirs = json_object_get(defs, kinds[i].name);
		json_t *ours = schema(doc_of(kinds[i].group), kinds[i].name);
		assert_non_null(theirs);
		assert_non_null(ours);
		json_t *tp = json_object_get(theirs, "properties");
		json_t *op = json_object_get(ours, "properties");
		same_name_set(op, tp, kinds[i].name);
		json_t *treq = json_object_get(theirs, "required");
		json_t *oreq = json_object_get(ours, "required");
		assert_int_equal(json_array_size(oreq), json_array_size(treq));
		const char *key;
		json_t *v;
		json_object_foreach(tp, key, v) {
			static const char *const exts[] = { "x-kubernetes-patch-merge-key",
							    "x-kubernetes-patch-strategy",
							    "x-kubernetes-list-type", "type", "format" };
			json_t *mine = json_object_get(op, key);
			for (size_t e = 0; e < sizeof(exts) / sizeof(exts[0]); e++) {
				const char *t = str(v, exts[e]);
				if (t && !json_object_get(v, "$ref") &&
				    (!str(mine, exts[e]) || strcmp(t, str(mine, exts[e])) != 0)) {
					fail_msg("%s.%s: %s is %s, want %s", kinds[i].name, key,
						 exts[e], str(mine, exts[e]), t);
				}
			}
		}
	}
}

static void skipped(void **state)
{
	(void)state;
}

int main(void)
{
	load_swagger();
	/* cmocka's skip() prints "not ok # SKIP", which automake's TAP driver
	 * counts as a failure; a "# SKIP" in the test's name makes the line
	 * "ok N - name # SKIP reason", a proper TAP skip. */
	struct CMUnitTest oracle = cmocka_unit_test(swagger_property_names);
	if (!swagger) {
		oracle.name = "swagger_property_names # SKIP swagger.json not found";
		oracle.test_func = skipped;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(index_paths),
		cmocka_unit_test(valid_json_and_refs_resolve),
		cmocka_unit_test(kinds_have_gvk_and_paths),
		cmocka_unit_test(writes_declare_field_validation),
		cmocka_unit_test(subresource_paths),
		cmocka_unit_test(meta_types_present),
		cmocka_unit_test(patch_extensions),
		cmocka_unit_test(types_and_formats),
		cmocka_unit_test(no_descriptions_in_schemas),
		cmocka_unit_test(hashes_stable),
		cmocka_unit_test(unknown_group_version),
		oracle,
	};
	int rc = cmocka_run_group_tests_name("api_openapi", tests, setup, teardown);
	json_decref(swagger);
	return rc;
}
