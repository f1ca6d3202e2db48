/* OpenAPI v3 documents from the type tables and the kind registry.
 *
 * The shape follows what kubectl reads:
 * - `explain` finds a kind's schema by x-kubernetes-group-version-kind and
 *   follows properties through allOf:[{$ref}];
 * - `apply` builds strategic merge patches from the patch extensions of
 *   the kind's schema when the kind's patch operation accepts
 *   application/strategic-merge-patch+json;
 * - apply/create/replace send fieldValidation=Strict (leaving validation to
 *   the server) only when the kind's patch operation declares that query
 *   parameter.  kubectl takes the first patch operation whose
 *   x-kubernetes-group-version-kind matches, in map order, so every patch,
 *   put and post operation declares it. */
#include "src/api/openapi.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/api/discovery.h"
#include "src/api/registry.h"
#include "src/api/types.h"

#define META "io.k8s.apimachinery.pkg.apis.meta.v1."
#define NAME_TIME META "Time"
#define NAME_MICROTIME META "MicroTime"
#define NAME_PATCH META "Patch"
#define NAME_STATUS META "Status"
#define NAME_DELETE_OPTIONS META "DeleteOptions"
#define NAME_LIST_META META "ListMeta"
#define NAME_QUANTITY "io.k8s.apimachinery.pkg.api.resource.Quantity"
#define NAME_INT_OR_STRING "io.k8s.apimachinery.pkg.util.intstr.IntOrString"

/* ---------------------------------------------------------------- Helpers */

/* Sets @key of @obj to @value (stolen, may be NULL); -1 on any failure so
 * a whole build can OR its results together. */
static int set(json_t *obj, const char *key, json_t *value)
{
	if (!obj || !value) {
		json_decref(value);
		return -1;
	}
	return json_object_set_new(obj, key, value) ? -1 : 0;
}

static int append(json_t *arr, json_t *value)
{
	if (!arr || !value) {
		json_decref(value);
		return -1;
	}
	return json_array_append_new(arr, value) ? -1 : 0;
}

static json_t *finish(json_t *obj, int err)
{
	if (err) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

static json_t *typed(const char *type, const char *format)
{
	json_t *o = json_object();
	int err = set(o, "type", json_string(type));
	if (format) {
		err |= set(o, "format", json_string(format));
	}
	return finish(o, err);
}

/* {"$ref":"#/components/schemas/NAME"} */
static json_t *ref_to(const char *name)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), API_OPENAPI_REF_PREFIX "%s", name);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		return NULL;
	}
	json_t *o = json_object();
	return finish(o, set(o, "$ref", json_string(buf)));
}

/* {"allOf":[{"$ref":...}]}: how Kubernetes' v3 documents reference a named
 * schema from a property, so that siblings (extensions) stay meaningful. */
static json_t *all_of(const char *name)
{
	json_t *o = json_object();
	json_t *arr = json_array();
	int err = append(arr, ref_to(name));
	err |= set(o, "allOf", arr);
	return finish(o, err);
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* "Core" for "", "Networking" for "networking.k8s.io". */
static void camel_group(const char *group, char *buf, size_t size)
{
	if (group[0] == '\0') {
		snprintf(buf, size, "Core");
		return;
	}
	size_t n = strcspn(group, ".");
	snprintf(buf, size, "%.*s", (int)n, group);
	if (buf[0] >= 'a' && buf[0] <= 'z') {
		buf[0] = (char)(buf[0] - 'a' + 'A');
	}
}

static void capitalize(const char *s, char *buf, size_t size)
{
	snprintf(buf, size, "%s", s);
	if (buf[0] >= 'a' && buf[0] <= 'z') {
		buf[0] = (char)(buf[0] - 'a' + 'A');
	}
}

/* ---------------------------------------------------------------- Schemas */

struct doc {
	const char *group, *version;
	bool want[API_GEN_N_TYPES];
	json_t *schemas;
	json_t *paths;
	int err;
};

static void mark_type(struct doc *d, int type);

static void mark_value(struct doc *d, unsigned kind, uint16_t ref)
{
	if (kind == API_V_OBJECT) {
		mark_type(d, ref);
	} else if (kind == API_V_ARRAY || kind == API_V_MAP) {
		const struct api_elem *e = api_elem_get(ref);
		if (e) {
			mark_value(d, e->kind, e->ref);
		}
	}
}

static void mark_type(struct doc *d, int type)
{
	const struct api_type *t = api_type_get(type);
	if (!t || d->want[type]) {
		return;
	}
	d->want[type] = true;
	for (uint16_t i = 0; i < t->n_fields; i++) {
		const struct api_field *f = &api_gen_fields[t->first_field + i];
		mark_value(d, f->kind, f->ref);
	}
}

/* The schema of a value of @kind (with @ref as the tables define it). */
static json_t *value_schema(unsigned kind, uint16_t ref)
{
	switch ((enum api_vkind)kind) {
	case API_V_STRING:
		return typed("string", NULL);
	case API_V_INT32:
		return typed("integer", "int32");
	case API_V_INT64:
		return typed("integer", "int64");
	case API_V_NUMBER:
		return typed("number", "double");
	case API_V_BOOL:
		return typed("boolean", NULL);
	case API_V_OBJECT: {
		const struct api_type *t = api_type_get(ref);
		return t ? all_of(api_type_name(t)) : NULL;
	}
	case API_V_ARRAY:
	case API_V_MAP: {
		const struct api_elem *e = api_elem_get(ref);
		json_t *o = typed(kind == API_V_ARRAY ? "array" : "object", NULL);
		if (!e) {
			return finish(o, -1);
		}
		return finish(o, set(o, kind == API_V_ARRAY ? "items" : "additionalProperties",
				     value_schema(e->kind, e->ref)));
	}
	case API_V_INT_OR_STRING:
		return all_of(NAME_INT_OR_STRING);
	case API_V_QUANTITY:
		return all_of(NAME_QUANTITY);
	case API_V_TIME:
		return all_of(NAME_TIME);
	case API_V_MICROTIME:
		return all_of(NAME_MICROTIME);
	case API_V_BYTES:
		return typed("string", "byte");
	case API_V_ANY:
		/* FieldsV1 and RawExtension: free-form objects. */
		return typed("object", NULL);
	case API_V_NONE:
		break;
	}
	return NULL;
}

static const char *patch_strategy(unsigned flags)
{
	bool merge = flags & API_F_PATCH_MERGE;
	bool retain = flags & API_F_PATCH_RETAIN_KEYS;
	if (merge && retain) {
		return "merge,retainKeys";
	}
	if (merge) {
		return "merge";
	}
	if (retain) {
		return "retainKeys";
	}
	if (flags & API_F_PATCH_REPLACE) {
		return "replace";
	}
	return NULL;
}

static json_t *field_schema(const struct api_field *f)
{
	json_t *o = value_schema(f->kind, f->ref);
	int err = o ? 0 : -1;
	const char *strategy = patch_strategy(f->flags);
	if (strategy) {
		err |= set(o, "x-kubernetes-patch-strategy", json_string(strategy));
	}
	const char *merge_key = api_field_merge_key(f);
	if (merge_key) {
		err |= set(o, "x-kubernetes-patch-merge-key", json_string(merge_key));
	}
	const char *list_type = (f->flags & API_F_LIST_MAP)      ? "map"
				: (f->flags & API_F_LIST_SET)    ? "set"
				: (f->flags & API_F_LIST_ATOMIC) ? "atomic"
								 : NULL;
	if (list_type) {
		err |= set(o, "x-kubernetes-list-type", json_string(list_type));
	}
	size_t n_keys = api_field_n_map_keys(f);
	if (n_keys > 0) {
		json_t *keys = json_array();
		for (size_t i = 0; i < n_keys; i++) {
			err |= append(keys, json_string(api_field_map_key(f, i)));
		}
		err |= set(o, "x-kubernetes-list-map-keys", keys);
	}
	const char *map_type = (f->flags & API_F_MAP_ATOMIC)      ? "atomic"
			       : (f->flags & API_F_MAP_GRANULAR) ? "granular"
								 : NULL;
	if (map_type) {
		err |= set(o, "x-kubernetes-map-type", json_string(map_type));
	}
	return finish(o, err);
}

static json_t *gvk_object(const char *group, const char *version, const char *kind)
{
	json_t *o = json_object();
	int err = 0;
	err |= set(o, "group", json_string(group));
	err |= set(o, "kind", json_string(kind));
	err |= set(o, "version", json_string(version));
	return finish(o, err);
}

static json_t *type_schema(const struct doc *d, int type)
{
	const struct api_type *t = api_type_get(type);
	json_t *o = typed("object", NULL);
	json_t *props = json_object();
	json_t *required = json_array();
	int err = 0;
	for (uint16_t i = 0; i < t->n_fields; i++) {
		const struct api_field *f = &api_gen_fields[t->first_field + i];
		err |= set(props, api_field_name(f), field_schema(f));
		if (f->flags & API_F_REQUIRED) {
			err |= append(required, json_string(api_field_name(f)));
		}
	}
	if (t->n_fields > 0) {
		err |= set(o, "properties", props);
	} else {
		json_decref(props);
	}
	if (json_array_size(required) > 0) {
		err |= set(o, "required", required);
	} else {
		err |= required ? 0 : -1;
		json_decref(required);
	}
	if (t->gvk) {
		const struct api_gvk *g = &api_gen_gvks[t->gvk];
		json_t *gvks = json_array();
		err |= append(gvks, gvk_object(api_gen_strings[g->group], api_gen_strings[g->version],
					       api_gen_strings[g->kind]));
		/* Kubernetes registers DeleteOptions in every group. */
		if (type == API_TYPE_meta_v1_DeleteOptions && d->group[0] != '\0') {
			err |= append(gvks, gvk_object(d->group, d->version, "DeleteOptions"));
		}
		err |= set(o, "x-kubernetes-group-version-kind", gvks);
	}
	if (t->flags & API_TF_MAP_ATOMIC) {
		err |= set(o, "x-kubernetes-map-type", json_string("atomic"));
	}
	return finish(o, err);
}

/* <Kind>List, which the tables do not hold: apiVersion, items, kind, metadata. */
static json_t *list_schema(const struct api_kind *k)
{
	const struct api_type *t = api_type_get(k->type);
	char kind[128];
	snprintf(kind, sizeof(kind), "%sList", k->kind);
	json_t *o = typed("object", NULL);
	json_t *props = json_object();
	json_t *items = typed("array", NULL);
	json_t *required = json_array();
	json_t *gvks = json_array();
	int err = 0;
	err |= set(items, "items", t ? all_of(api_type_name(t)) : NULL);
	err |= set(props, "apiVersion", typed("string", NULL));
	err |= set(props, "items", items);
	err |= set(props, "kind", typed("string", NULL));
	err |= set(props, "metadata", all_of(NAME_LIST_META));
	err |= append(required, json_string("items"));
	err |= append(gvks, gvk_object(k->group, k->version, kind));
	err |= set(o, "properties", props);
	err |= set(o, "required", required);
	err |= set(o, "x-kubernetes-group-version-kind", gvks);
	return finish(o, err);
}

/* The named scalar schemas that properties reference. */
static void add_scalars(struct doc *d)
{
	json_t *q = json_object();
	json_t *q_one = json_array();
	d->err |= append(q_one, typed("string", NULL));
	d->err |= append(q_one, typed("number", NULL));
	d->err |= set(q, "oneOf", q_one);
	d->err |= set(d->schemas, NAME_QUANTITY, q);

	json_t *ios = json_object();
	json_t *ios_one = json_array();
	d->err |= append(ios_one, typed("integer", NULL));
	d->err |= append(ios_one, typed("string", NULL));
	d->err |= set(ios, "format", json_string("int-or-string"));
	d->err |= set(ios, "oneOf", ios_one);
	d->err |= set(ios, "x-kubernetes-int-or-string", json_true());
	d->err |= set(d->schemas, NAME_INT_OR_STRING, ios);

	d->err |= set(d->schemas, NAME_TIME, typed("string", "date-time"));
	d->err |= set(d->schemas, NAME_MICROTIME, typed("string", "date-time"));
	d->err |= set(d->schemas, NAME_PATCH, typed("object", NULL));
}

/* ---------------------------------------------------------------- Paths */

enum ptype { P_STR, P_INT, P_BOOL };
struct param {
	const char *name;
	enum ptype type;
};
#define P_END { NULL, P_STR }

static const struct param list_params[] = {
	{ "allowWatchBookmarks", P_BOOL }, { "continue", P_STR },     { "fieldSelector", P_STR },
	{ "labelSelector", P_STR },        { "limit", P_INT },        { "resourceVersion", P_STR },
	{ "resourceVersionMatch", P_STR }, { "sendInitialEvents", P_BOOL },
	{ "timeoutSeconds", P_INT },       { "watch", P_BOOL },       P_END,
};
static const struct param write_params[] = {
	{ "dryRun", P_STR }, { "fieldManager", P_STR }, { "fieldValidation", P_STR }, P_END,
};
static const struct param patch_params[] = {
	{ "dryRun", P_STR },          { "fieldManager", P_STR }, { "fieldValidation", P_STR },
	{ "force", P_BOOL },          P_END,
};
static const struct param delete_params[] = {
	{ "dryRun", P_STR },           { "gracePeriodSeconds", P_INT },
	{ "orphanDependents", P_BOOL }, { "propagationPolicy", P_STR }, P_END,
};
static const struct param deletecollection_params[] = {
	{ "continue", P_STR },          { "dryRun", P_STR },
	{ "fieldSelector", P_STR },     { "gracePeriodSeconds", P_INT },
	{ "labelSelector", P_STR },     { "limit", P_INT },
	{ "orphanDependents", P_BOOL }, { "propagationPolicy", P_STR },
	{ "resourceVersion", P_STR },   { "resourceVersionMatch", P_STR },
	{ "sendInitialEvents", P_BOOL }, { "timeoutSeconds", P_INT },
	P_END,
};
static const struct param log_params[] = {
	{ "container", P_STR },   { "follow", P_BOOL },      { "insecureSkipTLSVerifyBackend", P_BOOL },
	{ "limitBytes", P_INT },  { "previous", P_BOOL },    { "sinceSeconds", P_INT },
	{ "stream", P_STR },      { "tailLines", P_INT },    { "timestamps", P_BOOL },
	P_END,
};
static const struct param no_params[] = { P_END };

static json_t *param_object(const char *name, const char *in, enum ptype type, bool required)
{
	json_t *o = json_object();
	json_t *schema = typed(type == P_INT ? "integer" : type == P_BOOL ? "boolean" : "string", NULL);
	int err = 0;
	err |= set(o, "in", json_string(in));
	err |= set(o, "name", json_string(name));
	if (required) {
		err |= set(o, "required", json_true());
	}
	err |= set(schema, "uniqueItems", json_true());
	err |= set(o, "schema", schema);
	return finish(o, err);
}

static json_t *params_array(const struct param *p)
{
	json_t *arr = json_array();
	int err = 0;
	for (; p->name; p++) {
		err |= append(arr, param_object(p->name, "query", p->type, false));
	}
	return finish(arr, err);
}

/* {"application/json":{"schema":S},"application/yaml":{"schema":S}} with S
 * a $ref to @schema_name, or a plain string for text/plain (@schema_name NULL). */
static json_t *content(const char *schema_name, bool watch)
{
	json_t *c = json_object();
	int err = 0;
	if (!schema_name) {
		json_t *m = json_object();
		err |= set(m, "schema", typed("string", NULL));
		err |= set(c, "text/plain", m);
		return finish(c, err);
	}
	static const char *const types[] = { "application/json", "application/yaml",
					     "application/json;stream=watch" };
	for (size_t i = 0; i < (watch ? 3u : 2u); i++) {
		json_t *m = json_object();
		err |= set(m, "schema", ref_to(schema_name));
		err |= set(c, types[i], m);
	}
	return finish(c, err);
}

static json_t *response(const char *description, const char *schema_name, bool watch)
{
	json_t *r = json_object();
	int err = 0;
	err |= set(r, "description", json_string(description));
	err |= set(r, "content", content(schema_name, watch));
	return finish(r, err);
}

enum op_kind {
	OP_LIST,
	OP_CREATE,
	OP_DELETECOLLECTION,
	OP_READ,
	OP_REPLACE,
	OP_PATCH,
	OP_DELETE,
};

struct op_spec {
	const char *method;   /* "get", "post", ... */
	const char *verb;     /* operationId prefix */
	const char *action;   /* x-kubernetes-action */
	const struct param *params;
};

static const struct op_spec op_specs[] = {
	[OP_LIST] = { "get", "list", "list", list_params },
	[OP_CREATE] = { "post", "create", "post", write_params },
	[OP_DELETECOLLECTION] = { "delete", "deleteCollection", "deletecollection",
				  deletecollection_params },
	[OP_READ] = { "get", "read", "get", no_params },
	[OP_REPLACE] = { "put", "replace", "put", write_params },
	[OP_PATCH] = { "patch", "patch", "patch", patch_params },
	[OP_DELETE] = { "delete", "delete", "delete", delete_params },
};

/* What one operation is about. */
struct op_target {
	const char *group, *version, *kind; /* of the body (GVK extension) */
	const char *schema;                 /* its schema name; NULL = text/plain */
	const char *id_suffix;              /* operationId after "verbGroupV1" */
};

static json_t *operation(const struct doc *d, enum op_kind kind, const struct op_target *t)
{
	const struct op_spec *spec = &op_specs[kind];
	char group[64], version[32], id[256], tag[128];
	camel_group(d->group, group, sizeof(group));
	capitalize(d->version, version, sizeof(version));
	snprintf(id, sizeof(id), "%s%s%s%s", spec->verb, group, version, t->id_suffix);
	snprintf(tag, sizeof(tag), "%s_%s", group, d->version);
	tag[0] = (char)(tag[0] - 'A' + 'a');

	json_t *op = json_object();
	json_t *responses = json_object();
	json_t *tags = json_array();
	int err = 0;
	err |= set(op, "operationId", json_string(id));
	err |= set(op, "parameters", params_array(spec->params));

	if (kind == OP_CREATE || kind == OP_REPLACE || kind == OP_PATCH || kind == OP_DELETE ||
	    kind == OP_DELETECOLLECTION) {
		json_t *body = json_object();
		json_t *c = json_object();
		if (kind == OP_PATCH) {
			static const char *const patch_types[] = {
				"application/apply-patch+yaml", "application/json-patch+json",
				"application/merge-patch+json", "application/strategic-merge-patch+json",
			};
			for (size_t i = 0; i < sizeof(patch_types) / sizeof(patch_types[0]); i++) {
				json_t *m = json_object();
				err |= set(m, "schema", ref_to(NAME_PATCH));
				err |= set(c, patch_types[i], m);
			}
		} else {
			json_t *m = json_object();
			bool del = kind == OP_DELETE || kind == OP_DELETECOLLECTION;
			err |= set(m, "schema", ref_to(del ? NAME_DELETE_OPTIONS : t->schema));
			err |= set(c, "*/*", m);
		}
		err |= set(body, "content", c);
		if (kind != OP_DELETE && kind != OP_DELETECOLLECTION) {
			err |= set(body, "required", json_true());
		}
		err |= set(op, "requestBody", body);
	}

	char list_name[256];
	const char *answer = t->schema;
	if (kind == OP_LIST) {
		snprintf(list_name, sizeof(list_name), "%sList", t->schema);
		answer = list_name;
	} else if (kind == OP_DELETE || kind == OP_DELETECOLLECTION) {
		answer = NAME_STATUS;
	}
	err |= set(responses, "200", response("OK", answer, kind == OP_LIST));
	if (kind == OP_CREATE || kind == OP_REPLACE || kind == OP_PATCH) {
		err |= set(responses, "201", response("Created", answer, false));
	}
	if (kind == OP_CREATE || kind == OP_DELETE) {
		err |= set(responses, "202", response("Accepted", answer, false));
	}
	json_t *unauthorized = json_object();
	err |= set(unauthorized, "description", json_string("Unauthorized"));
	err |= set(responses, "401", unauthorized);
	err |= set(op, "responses", responses);

	err |= append(tags, json_string(tag));
	err |= set(op, "tags", tags);
	err |= set(op, "x-kubernetes-action", json_string(spec->action));
	err |= set(op, "x-kubernetes-group-version-kind", gvk_object(t->group, t->version, t->kind));
	return finish(op, err);
}

/* The path item at @path, created with its path parameters when new. */
static json_t *path_item(struct doc *d, const char *path, bool namespaced, bool named)
{
	json_t *item = json_object_get(d->paths, path);
	if (item) {
		return item;
	}
	item = json_object();
	json_t *params = json_array();
	int err = 0;
	if (named) {
		err |= append(params, param_object("name", "path", P_STR, true));
	}
	if (namespaced) {
		err |= append(params, param_object("namespace", "path", P_STR, true));
	}
	err |= append(params, param_object("pretty", "query", P_STR, false));
	err |= set(item, "parameters", params);
	if (err) {
		json_decref(item);
		d->err = -1;
		return NULL;
	}
	if (set(d->paths, path, item)) {
		d->err = -1;
		return NULL;
	}
	return item; /* borrowed from d->paths */
}

static void add_op(struct doc *d, const char *path, bool namespaced, bool named, enum op_kind kind,
		   const struct op_target *t)
{
	json_t *item = path_item(d, path, namespaced, named);
	d->err |= set(item, op_specs[kind].method, item ? operation(d, kind, t) : NULL);
}

static void add_kind_paths(struct doc *d, const struct api_kind *k)
{
	char prefix[160], coll[320], named[400], all[320], sub_path[480];
	if (k->group[0] == '\0') {
		snprintf(prefix, sizeof(prefix), "/api/%s", k->version);
	} else {
		snprintf(prefix, sizeof(prefix), "/apis/%s/%s", k->group, k->version);
	}
	if (k->namespaced) {
		snprintf(coll, sizeof(coll), "%s/namespaces/{namespace}/%s", prefix, k->plural);
	} else {
		snprintf(coll, sizeof(coll), "%s/%s", prefix, k->plural);
	}
	snprintf(named, sizeof(named), "%s/{name}", coll);
	snprintf(all, sizeof(all), "%s/%s", prefix, k->plural);

	const char *schema = api_type_name(api_type_get(k->type));
	const char *ns = k->namespaced ? "Namespaced" : "";
	char suffix[160], all_suffix[160];
	snprintf(suffix, sizeof(suffix), "%s%s", ns, k->kind);
	snprintf(all_suffix, sizeof(all_suffix), "%sForAllNamespaces", k->kind);
	struct op_target t = { k->group, k->version, k->kind, schema, suffix };
	struct op_target tc = t;

	if (k->verbs & API_VERB_LIST) {
		add_op(d, coll, k->namespaced, false, OP_LIST, &tc);
		if (k->namespaced) {
			struct op_target ta = t;
			ta.id_suffix = all_suffix;
			add_op(d, all, false, false, OP_LIST, &ta);
		}
	}
	if (k->verbs & API_VERB_CREATE) {
		add_op(d, coll, k->namespaced, false, OP_CREATE, &tc);
	}
	if (k->verbs & API_VERB_DELETECOLLECTION) {
		add_op(d, coll, k->namespaced, false, OP_DELETECOLLECTION, &tc);
	}
	if (k->verbs & API_VERB_GET) {
		add_op(d, named, k->namespaced, true, OP_READ, &t);
	}
	if (k->verbs & API_VERB_UPDATE) {
		add_op(d, named, k->namespaced, true, OP_REPLACE, &t);
	}
	if (k->verbs & API_VERB_PATCH) {
		add_op(d, named, k->namespaced, true, OP_PATCH, &t);
	}
	if (k->verbs & API_VERB_DELETE) {
		add_op(d, named, k->namespaced, true, OP_DELETE, &t);
	}

	for (const struct api_subresource *s = k->subresources; s && s->name; s++) {
		char sub_suffix[200], cap[64];
		capitalize(s->name, cap, sizeof(cap));
		snprintf(sub_suffix, sizeof(sub_suffix), "%s%s%s", ns, k->kind, cap);
		snprintf(sub_path, sizeof(sub_path), "%s/%s", named, s->name);
		const struct api_type *st = api_type_get(s->type);
		struct op_target ts = {
			s->group ? s->group : k->group,
			s->version ? s->version : k->version,
			s->kind ? s->kind : k->kind,
			st ? api_type_name(st) : NULL,
			sub_suffix,
		};
		if (s->verbs & API_VERB_GET) {
			add_op(d, sub_path, k->namespaced, true, OP_READ, &ts);
		}
		/* Only bodies with a schema can be written. */
		if (!ts.schema) {
			continue;
		}
		if (s->verbs & API_VERB_CREATE) {
			add_op(d, sub_path, k->namespaced, true, OP_CREATE, &ts);
		}
		if (s->verbs & API_VERB_UPDATE) {
			add_op(d, sub_path, k->namespaced, true, OP_REPLACE, &ts);
		}
		if (s->verbs & API_VERB_PATCH) {
			add_op(d, sub_path, k->namespaced, true, OP_PATCH, &ts);
		}
	}
	/* pods/log answers text: give it its own parameters. */
	for (const struct api_subresource *s = k->subresources; s && s->name; s++) {
		if (s->type < 0 && (s->verbs & API_VERB_GET)) {
			snprintf(sub_path, sizeof(sub_path), "%s/%s", named, s->name);
			json_t *log = json_object_get(json_object_get(d->paths, sub_path), "get");
			d->err |= log ? set(log, "parameters", params_array(log_params)) : 0;
		}
	}
}

/* ---------------------------------------------------------------- Documents */

json_t *api_openapi_v3_document(const char *group, const char *version)
{
	if (!api_discovery_served(group, version)) {
		return NULL;
	}
	struct doc *d = calloc(1, sizeof(*d));
	if (!d) {
		return NULL;
	}
	d->group = group;
	d->version = version;
	d->schemas = json_object();
	d->paths = json_object();
	json_t *doc = json_object();
	json_t *info = json_object();
	json_t *components = json_object();
	d->err |= (d->schemas && d->paths) ? 0 : -1;

	/* Roots: the kinds and subresource bodies of the group-version, and
	 * the meta types every API uses. */
	for (size_t i = 0; i < api_kind_count(); i++) {
		const struct api_kind *k = api_kind_at(i);
		if (strcmp(k->group, group) != 0 || strcmp(k->version, version) != 0) {
			continue;
		}
		mark_type(d, k->type);
		for (const struct api_subresource *s = k->subresources; s && s->name; s++) {
			if (s->type >= 0) {
				mark_type(d, s->type);
			}
		}
	}
	for (int i = 0; i < API_GEN_N_TYPES; i++) {
		if (strncmp(api_type_name(api_type_get(i)), META, strlen(META)) == 0) {
			mark_type(d, i);
		}
	}
	for (int i = 0; i < API_GEN_N_TYPES && !d->err; i++) {
		if (d->want[i]) {
			d->err |= set(d->schemas, api_type_name(api_type_get(i)), type_schema(d, i));
		}
	}
	add_scalars(d);
	for (size_t i = 0; i < api_kind_count() && !d->err; i++) {
		const struct api_kind *k = api_kind_at(i);
		if (strcmp(k->group, group) != 0 || strcmp(k->version, version) != 0) {
			continue;
		}
		char name[256];
		snprintf(name, sizeof(name), "%sList", api_type_name(api_type_get(k->type)));
		d->err |= set(d->schemas, name, list_schema(k));
		add_kind_paths(d, k);
	}

	int err = d->err;
	err |= set(info, "title", json_string("Kubernetes"));
	err |= set(info, "version", json_string("unversioned"));
	err |= set(doc, "openapi", json_string("3.0.0"));
	err |= set(doc, "info", info);
	err |= set(doc, "paths", d->paths);
	err |= set(components, "schemas", d->schemas);
	err |= set(doc, "components", components);
	free(d);
	return finish(doc, err);
}

char *api_openapi_dump(const json_t *doc, size_t *ret_len)
{
	char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	if (text && ret_len) {
		*ret_len = strlen(text);
	}
	return text;
}

void api_openapi_text_hash(const char *text, size_t len, char buf[API_OPENAPI_HASH_SIZE])
{
	uint64_t h = fnv1a(0xcbf29ce484222325ull, text, len);
	snprintf(buf, API_OPENAPI_HASH_SIZE, "%016llX", (unsigned long long)h);
}

int api_openapi_v3_document_hash(const char *group, const char *version,
				 char ret_hash[API_OPENAPI_HASH_SIZE])
{
	if (!api_discovery_served(group, version)) {
		return -ENOENT;
	}
	json_t *doc = api_openapi_v3_document(group, version);
	if (!doc) {
		return -ENOMEM;
	}
	size_t len;
	char *text = api_openapi_dump(doc, &len);
	json_decref(doc);
	if (!text) {
		return -ENOMEM;
	}
	api_openapi_text_hash(text, len, ret_hash);
	free(text);
	return 0;
}

json_t *api_openapi_v3_paths(void)
{
	struct api_group_version gvs[16];
	size_t n = api_discovery_group_versions(gvs, 16);
	json_t *doc = json_object();
	json_t *paths = json_object();
	int err = 0;
	for (size_t i = 0; i < n && i < 16 && !err; i++) {
		char key[256], url[320], hash[API_OPENAPI_HASH_SIZE];
		int rc = api_openapi_v3_document_hash(gvs[i].group, gvs[i].version, hash);
		if (rc) {
			err = -1;
			break;
		}
		if (gvs[i].group[0] == '\0') {
			snprintf(key, sizeof(key), "api/%s", gvs[i].version);
		} else {
			snprintf(key, sizeof(key), "apis/%s/%s", gvs[i].group, gvs[i].version);
		}
		snprintf(url, sizeof(url), "/openapi/v3/%s?hash=%s", key, hash);
		json_t *entry = json_object();
		err |= set(entry, "serverRelativeURL", json_string(url));
		err |= set(paths, key, entry);
	}
	err |= set(doc, "paths", paths);
	return finish(doc, err);
}
