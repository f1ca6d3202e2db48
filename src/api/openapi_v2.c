/* The OpenAPI v2 document, derived from the v3 documents, and its gnostic
 * protobuf encoding.
 *
 * What kubectl 1.27/1.28 read from it (k8s.io/kube-openapi pkg/util/proto
 * and k8s.io/kubectl pkg/util/openapi, read for facts):
 * - every definition is parsed up front and one that does not parse fails
 *   the whole command: a $ref must point into "#/definitions/" at an
 *   existing name and carry no type or properties; an array needs exactly
 *   one items schema; a primitive's type must be string, integer, number
 *   or boolean; "type: object" without properties is a map (arbitrary
 *   when it has no additionalProperties);
 * - a definition's kinds come from x-kubernetes-group-version-kind, a YAML
 *   list of {group, version, kind} maps (group "" must stay a string);
 * - apply builds strategic merge patches from x-kubernetes-patch-strategy
 *   and x-kubernetes-patch-merge-key on the array property;
 * - explain walks properties from the kind's definition.
 * Vendor extensions travel as NamedAny{name, Any{yaml}}: the value is YAML
 * text that kube-openapi unmarshals, as gnostic writes it from the JSON.
 *
 * The conversion from v3 keeps the types and extensions and turns
 * allOf:[{$ref}] into $ref, oneOf scalars (Quantity, IntOrString) into
 * Kubernetes' v2 string forms, requestBody into a "body" parameter and
 * content types into consumes/produces. */
#include "src/api/openapi_v2.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "src/api/discovery.h"
#include "src/api/openapi.h"

#define GVK_EXT "x-kubernetes-group-version-kind"

/* ---------------------------------------------------------------- Helpers */

/* Sets @key of @obj to @value (stolen, may be NULL); -1 on any failure so
 * that a conversion can OR its results together. */
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

static bool is_extension(const char *key)
{
	return strncmp(key, "x-", 2) == 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of @obj in byte order (jansson's own order is a hash order):
 * a malloc'ed array of borrowed strings, *n_out of them, or NULL (ENOMEM). */
static const char **sorted_keys(const json_t *obj, size_t *n_out)
{
	size_t n = json_object_size(obj);
	const char **keys = malloc((n + 1) * sizeof(*keys));
	if (!keys) {
		return NULL;
	}
	size_t i = 0;
	const char *key;
	json_t *value;
	json_object_foreach((json_t *)obj, key, value) {
		(void)value;
		keys[i++] = key;
	}
	qsort(keys, i, sizeof(*keys), cmp_str);
	*n_out = i;
	return keys;
}

/* ---------------------------------------------------------------- v3 -> v2 */

static json_t *conv_ref(const json_t *ref)
{
	const char *s = json_string_value(ref);
	size_t plen = strlen(API_OPENAPI_REF_PREFIX);
	if (!s || strncmp(s, API_OPENAPI_REF_PREFIX, plen) != 0) {
		return NULL;
	}
	size_t n = strlen(API_OPENAPI_V2_REF_PREFIX) + strlen(s + plen) + 1;
	char *buf = malloc(n);
	if (!buf) {
		return NULL;
	}
	snprintf(buf, n, API_OPENAPI_V2_REF_PREFIX "%s", s + plen);
	json_t *out = json_string(buf);
	free(buf);
	return out;
}

/* A v2 schema from a v3 one (new reference, or NULL).  Keys v2 has no
 * place for (descriptions, nullable) are dropped. */
static json_t *conv_schema(const json_t *in)
{
	json_t *out = json_object();
	int err = json_is_object(in) ? 0 : -1;
	bool one_of = json_object_get(in, "oneOf") != NULL;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)in, key, v) {
		if (strcmp(key, "allOf") == 0) {
			/* The v3 builder wraps every named reference in a one-element allOf. */
			err |= json_array_size(v) == 1 ? 0 : -1;
			err |= set(out, "$ref", conv_ref(json_object_get(json_array_get(v, 0), "$ref")));
		} else if (strcmp(key, "$ref") == 0) {
			err |= set(out, "$ref", conv_ref(v));
		} else if (strcmp(key, "type") == 0 || strcmp(key, "format") == 0 ||
			   strcmp(key, "required") == 0 || strcmp(key, "uniqueItems") == 0) {
			err |= set(out, key, json_deep_copy(v));
		} else if (strcmp(key, "items") == 0) {
			err |= set(out, key, conv_schema(v));
		} else if (strcmp(key, "additionalProperties") == 0) {
			err |= set(out, key, json_is_object(v) ? conv_schema(v) : json_deep_copy(v));
		} else if (strcmp(key, "properties") == 0) {
			json_t *props = json_object();
			const char *name;
			json_t *p;
			json_object_foreach(v, name, p) {
				err |= set(props, name, conv_schema(p));
			}
			err |= set(out, key, props);
		} else if (is_extension(key)) {
			/* Kubernetes' v2 IntOrString is a plain string with a format. */
			if (!(one_of && strcmp(key, "x-kubernetes-int-or-string") == 0)) {
				err |= set(out, key, json_deep_copy(v));
			}
		}
	}
	/* Quantity and IntOrString are oneOf alternatives in v3 and strings in v2. */
	if (one_of && !json_object_get(in, "type")) {
		err |= set(out, "type", json_string("string"));
	}
	return finish(out, err);
}

/* {"in","name","required","schema":{"type",...}} -> the flat v2 form. */
static json_t *conv_param(const json_t *in)
{
	json_t *out = json_object();
	int err = 0;
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)in, key, v) {
		if (strcmp(key, "schema") == 0) {
			const char *k2;
			json_t *v2;
			json_object_foreach(v, k2, v2) {
				if (strcmp(k2, "type") == 0 || strcmp(k2, "format") == 0 ||
				    strcmp(k2, "uniqueItems") == 0) {
					err |= set(out, k2, json_deep_copy(v2));
				}
			}
		} else if (strcmp(key, "in") == 0 || strcmp(key, "name") == 0 ||
			   strcmp(key, "required") == 0 || is_extension(key)) {
			err |= set(out, key, json_deep_copy(v));
		}
	}
	return finish(out, err);
}

static int conv_params(json_t *out, const json_t *in)
{
	int err = 0;
	size_t i;
	json_t *p;
	json_array_foreach(in, i, p) {
		err |= append(out, conv_param(p));
	}
	return err;
}

/* Adds the media types of a v3 content map to @list (once each, sorted),
 * and returns the schema of its first type (borrowed) or NULL. */
static const json_t *media_types(json_t *list, const json_t *content, int *err)
{
	size_t n;
	const char **keys = sorted_keys(content, &n);
	if (!keys) {
		*err = -1;
		return NULL;
	}
	const json_t *schema = NULL;
	for (size_t i = 0; i < n; i++) {
		bool seen = false;
		size_t j;
		json_t *t;
		json_array_foreach(list, j, t) {
			seen |= strcmp(json_string_value(t), keys[i]) == 0;
		}
		if (!seen) {
			*err |= append(list, json_string(keys[i]));
		}
		if (!schema) {
			schema = json_object_get(json_object_get(content, keys[i]), "schema");
		}
	}
	free(keys);
	return schema;
}

static json_t *conv_operation(const json_t *in)
{
	json_t *out = json_object();
	json_t *params = json_array();
	json_t *consumes = json_array();
	json_t *produces = json_array();
	json_t *responses = json_object();
	json_t *schemes = json_array();
	int err = (params && consumes && produces && responses && schemes) ? 0 : -1;

	const json_t *body = json_object_get(in, "requestBody");
	if (body) {
		const json_t *schema = media_types(consumes, json_object_get(body, "content"), &err);
		json_t *p = json_object();
		err |= set(p, "in", json_string("body"));
		err |= set(p, "name", json_string("body"));
		if (json_is_true(json_object_get(body, "required"))) {
			err |= set(p, "required", json_true());
		}
		err |= set(p, "schema", schema ? conv_schema(schema) : NULL);
		err |= append(params, p);
	}
	err |= conv_params(params, json_object_get(in, "parameters"));

	const char *code;
	json_t *r;
	json_object_foreach(json_object_get(in, "responses"), code, r) {
		json_t *o = json_object();
		const json_t *content = json_object_get(r, "content");
		err |= set(o, "description", json_deep_copy(json_object_get(r, "description")));
		if (content) {
			const json_t *schema = media_types(produces, content, &err);
			if (schema) {
				err |= set(o, "schema", conv_schema(schema));
			}
		}
		err |= set(responses, code, o);
	}
	/* Apply the same sort to produces that media_types gave consumes. */
	size_t n = json_array_size(produces);
	if (n > 1) {
		const char **names = malloc(n * sizeof(*names));
		if (names) {
			for (size_t i = 0; i < n; i++) {
				names[i] = json_string_value(json_array_get(produces, i));
			}
			qsort(names, n, sizeof(*names), cmp_str);
			json_t *sorted = json_array();
			for (size_t i = 0; i < n; i++) {
				err |= append(sorted, json_string(names[i]));
			}
			free(names);
			json_decref(produces);
			produces = sorted;
		} else {
			err = -1;
		}
	}

	const char *key;
	json_t *v;
	json_object_foreach((json_t *)in, key, v) {
		if (strcmp(key, "operationId") == 0 || strcmp(key, "tags") == 0 || is_extension(key)) {
			err |= set(out, key, json_deep_copy(v));
		}
	}
	/* Empty lists are left out, as Kubernetes' document does. */
	if (json_array_size(consumes) > 0) {
		err |= set(out, "consumes", consumes);
	} else {
		json_decref(consumes);
	}
	if (json_array_size(params) > 0) {
		err |= set(out, "parameters", params);
	} else {
		json_decref(params);
	}
	err |= set(out, "produces", produces);
	err |= set(out, "responses", responses);
	err |= append(schemes, json_string("https"));
	err |= set(out, "schemes", schemes);
	return finish(out, err);
}

static const char *const methods[] = { "get", "put", "post", "delete", "options", "head", "patch" };

static json_t *conv_path_item(const json_t *in)
{
	json_t *out = json_object();
	int err = 0;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		const json_t *op = json_object_get(in, methods[i]);
		if (op) {
			err |= set(out, methods[i], conv_operation(op));
		}
	}
	const json_t *params = json_object_get(in, "parameters");
	if (params) {
		json_t *arr = json_array();
		err |= conv_params(arr, params);
		err |= set(out, "parameters", arr);
	}
	return finish(out, err);
}

/* Adds @schema (stolen) as definition @name; a name already there (the
 * meta types every group carries) gains the GVKs it lacks, which is how
 * DeleteOptions ends up listing every group, as in Kubernetes. */
static int add_definition(json_t *defs, const char *name, json_t *schema)
{
	if (!schema) {
		return -1;
	}
	json_t *old = json_object_get(defs, name);
	if (!old) {
		return set(defs, name, schema);
	}
	json_t *have = json_object_get(old, GVK_EXT);
	json_t *add = json_object_get(schema, GVK_EXT);
	int err = 0;
	size_t i;
	json_t *g;
	json_array_foreach(add, i, g) {
		bool seen = false;
		size_t j;
		json_t *h;
		json_array_foreach(have, j, h) {
			seen |= json_equal(g, h);
		}
		if (!seen) {
			err |= json_is_array(have) ? append(have, json_incref(g)) : -1;
		}
	}
	json_decref(schema);
	return err;
}

/* Merges the v3 document @v3 into the v2 @defs and @paths. */
static int merge_v3(json_t *defs, json_t *paths, const json_t *v3)
{
	int err = 0;
	const char *key;
	json_t *v;
	json_object_foreach(json_object_get(json_object_get(v3, "components"), "schemas"), key, v) {
		err |= add_definition(defs, key, conv_schema(v));
	}
	json_object_foreach(json_object_get(v3, "paths"), key, v) {
		/* Paths are per group-version, so no two documents share one. */
		if (!json_object_get(paths, key)) {
			err |= set(paths, key, conv_path_item(v));
		}
	}
	return err;
}

json_t *api_openapi_v2_json(void)
{
	size_t n = api_discovery_group_versions(NULL, 0);
	struct api_group_version *gvs = calloc(n + 1, sizeof(*gvs));
	if (!gvs) {
		return NULL;
	}
	api_discovery_group_versions(gvs, n);
	json_t *doc = json_object();
	json_t *info = json_object();
	json_t *defs = json_object();
	json_t *paths = json_object();
	int err = 0;
	for (size_t i = 0; i < n && !err; i++) {
		json_t *v3 = api_openapi_v3_document(gvs[i].group, gvs[i].version);
		err |= v3 ? merge_v3(defs, paths, v3) : -1;
		json_decref(v3);
	}
	free(gvs);
	err |= set(info, "title", json_string("Kubernetes"));
	err |= set(info, "version", json_string("unversioned"));
	err |= set(doc, "swagger", json_string("2.0"));
	err |= set(doc, "info", info);
	err |= set(doc, "paths", paths);
	err |= set(doc, "definitions", defs);
	return finish(doc, err);
}

/* ---------------------------------------------------------------- Protobuf writer */

struct pb {
	uint8_t *data;
	size_t len, cap;
	int err;
};

static bool pb_reserve(struct pb *b, size_t n)
{
	if (b->err) {
		return false;
	}
	if (b->cap - b->len >= n) {
		return true;
	}
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->len < n) {
		cap *= 2;
	}
	uint8_t *data = realloc(b->data, cap);
	if (!data) {
		b->err = -ENOMEM;
		return false;
	}
	b->data = data;
	b->cap = cap;
	return true;
}

static void pb_raw(struct pb *b, const void *p, size_t n)
{
	if (pb_reserve(b, n)) {
		memcpy(b->data + b->len, p, n);
		b->len += n;
	}
}

static size_t varint_size(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static void put_varint(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p = (uint8_t)v;
}

static void pb_varint(struct pb *b, uint64_t v)
{
	if (pb_reserve(b, 10)) {
		put_varint(b->data + b->len, v);
		b->len += varint_size(v);
	}
}

enum { WT_VARINT = 0, WT_LEN = 2 };

static void pb_key(struct pb *b, uint32_t field, unsigned wire)
{
	pb_varint(b, (uint64_t)field << 3 | wire);
}

static void pb_string(struct pb *b, uint32_t field, const char *s)
{
	size_t n = strlen(s);
	pb_key(b, field, WT_LEN);
	pb_varint(b, n);
	pb_raw(b, s, n);
}

static void pb_bool(struct pb *b, uint32_t field, bool v)
{
	pb_key(b, field, WT_VARINT);
	pb_varint(b, v ? 1 : 0);
}

/* Opens the embedded message @field; pb_close() writes its length once the
 * body is known, moving the body when the length needs more than one byte. */
static size_t pb_open(struct pb *b, uint32_t field)
{
	pb_key(b, field, WT_LEN);
	size_t pos = b->len;
	pb_raw(b, "", 1);
	return pos;
}

static void pb_close(struct pb *b, size_t pos)
{
	if (b->err) {
		return;
	}
	size_t body = b->len - pos - 1;
	size_t n = varint_size(body);
	if (n > 1) {
		if (!pb_reserve(b, n - 1)) {
			return;
		}
		memmove(b->data + pos + n, b->data + pos + 1, body);
		b->len += n - 1;
	}
	put_varint(b->data + pos, body);
}

static void pb_fail(struct pb *b, int err)
{
	if (!b->err) {
		b->err = err;
	}
}

/* ---------------------------------------------------------------- YAML of extensions */

/* gnostic keeps a vendor extension's value as the YAML text of its node;
 * kube-openapi unmarshals that text.  Block style, sorted keys, strings
 * plain when YAML reads them back as the same string, else double-quoted
 * (a JSON string is a valid YAML double-quoted scalar). */

static bool yaml_plain_ok(const char *s)
{
	static const char *const words[] = { "true", "false", "yes", "no", "on", "off",
					     "null", "y", "n" };
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) {
		return false;
	}
	for (const char *p = s; *p; p++) {
		bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '/' || *p == '-';
		if (!ok) {
			return false;
		}
	}
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strcasecmp(s, words[i]) == 0) {
			return false;
		}
	}
	return true;
}

static void yaml_string(struct pb *y, const char *s)
{
	if (yaml_plain_ok(s)) {
		pb_raw(y, s, strlen(s));
		return;
	}
	json_t *j = json_string(s);
	char *q = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
	json_decref(j);
	if (!q) {
		pb_fail(y, -ENOMEM);
		return;
	}
	pb_raw(y, q, strlen(q));
	free(q);
}

/* Writes a scalar or an empty collection in flow form; false otherwise. */
static bool yaml_flow(struct pb *y, const json_t *v)
{
	char buf[32];
	switch (json_typeof(v)) {
	case JSON_STRING:
		yaml_string(y, json_string_value(v));
		return true;
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
		break;
	case JSON_TRUE:
		snprintf(buf, sizeof(buf), "true");
		break;
	case JSON_FALSE:
		snprintf(buf, sizeof(buf), "false");
		break;
	case JSON_NULL:
		snprintf(buf, sizeof(buf), "null");
		break;
	case JSON_OBJECT:
		if (json_object_size(v) > 0) {
			return false;
		}
		snprintf(buf, sizeof(buf), "{}");
		break;
	case JSON_ARRAY:
		if (json_array_size(v) > 0) {
			return false;
		}
		snprintf(buf, sizeof(buf), "[]");
		break;
	}
	pb_raw(y, buf, strlen(buf));
	return true;
}

static void yaml_indent(struct pb *y, size_t indent)
{
	for (size_t i = 0; i < indent; i++) {
		pb_raw(y, " ", 1);
	}
}

/* A non-empty collection in block form at @indent; with @inline_first the
 * first line continues a "- " already written. */
static void yaml_block(struct pb *y, const json_t *v, size_t indent, bool inline_first, int depth)
{
	if (depth > 32) {
		pb_fail(y, -EINVAL);
		return;
	}
	if (json_is_object(v)) {
		size_t n;
		const char **keys = sorted_keys(v, &n);
		if (!keys) {
			pb_fail(y, -ENOMEM);
			return;
		}
		for (size_t i = 0; i < n; i++) {
			if (i > 0 || !inline_first) {
				yaml_indent(y, indent);
			}
			yaml_string(y, keys[i]);
			pb_raw(y, ":", 1);
			const json_t *child = json_object_get(v, keys[i]);
			pb_raw(y, " ", 1);
			if (!yaml_flow(y, child)) {
				y->len--; /* no trailing space before a block */
				pb_raw(y, "\n", 1);
				yaml_block(y, child, indent + 2, false, depth + 1);
				continue;
			}
			pb_raw(y, "\n", 1);
		}
		free(keys);
		return;
	}
	size_t i;
	json_t *item;
	json_array_foreach(v, i, item) {
		if (i > 0 || !inline_first) {
			yaml_indent(y, indent);
		}
		pb_raw(y, "- ", 2);
		if (yaml_flow(y, item)) {
			pb_raw(y, "\n", 1);
		} else {
			yaml_block(y, item, indent + 2, true, depth + 1);
		}
	}
}

/* NamedAny{1: name, 2: Any{2: yaml}} for one vendor extension. */
static void pb_extension(struct pb *b, uint32_t field, const char *name, const json_t *value)
{
	struct pb y = { 0 };
	if (yaml_flow(&y, value)) {
		pb_raw(&y, "\n", 1);
	} else {
		yaml_block(&y, value, 0, false, 0);
	}
	pb_raw(&y, "", 1);
	if (y.err) {
		pb_fail(b, y.err);
		free(y.data);
		return;
	}
	size_t named = pb_open(b, field);
	pb_string(b, 1, name);
	size_t any = pb_open(b, 2);
	pb_string(b, 2, (const char *)y.data);
	pb_close(b, any);
	pb_close(b, named);
	free(y.data);
}

/* ---------------------------------------------------------------- Message tables */

/* Each message of openapiv2/OpenAPIv2.proto (gnostic-models) that the
 * document uses, as the JSON keys it comes from and their field numbers,
 * in field-number order (the order Go's proto.Marshal writes). */

enum fkind {
	FK_STRING,  /* string */
	FK_BOOL,    /* bool; false is the proto3 default and not written */
	FK_STRINGS, /* repeated string, from a string or an array of strings */
	FK_MESSAGE, /* embedded message described by .msg */
	FK_CUSTOM,  /* written by .write */
};

struct pb_msg;
typedef void (*write_fn)(struct pb *b, uint32_t field, const json_t *v);

struct pb_field {
	const char *key;
	uint32_t number;
	enum fkind kind;
	const struct pb_msg *msg;
	write_fn write;
};

struct pb_msg {
	const struct pb_field *fields; /* key NULL ends */
	uint32_t vendor_extension;     /* field number; 0 = none */
};

static void write_message(struct pb *b, const struct pb_msg *m, const json_t *obj);

static void write_field(struct pb *b, const struct pb_field *f, const json_t *v)
{
	switch (f->kind) {
	case FK_STRING:
		if (!json_is_string(v)) {
			pb_fail(b, -EINVAL);
			return;
		}
		pb_string(b, f->number, json_string_value(v));
		return;
	case FK_BOOL:
		if (!json_is_boolean(v)) {
			pb_fail(b, -EINVAL);
		} else if (json_is_true(v)) {
			pb_bool(b, f->number, true);
		}
		return;
	case FK_STRINGS:
		if (json_is_string(v)) {
			pb_string(b, f->number, json_string_value(v));
			return;
		}
		if (!json_is_array(v)) {
			pb_fail(b, -EINVAL);
			return;
		}
		size_t i;
		json_t *s;
		json_array_foreach(v, i, s) {
			if (!json_is_string(s)) {
				pb_fail(b, -EINVAL);
				return;
			}
			pb_string(b, f->number, json_string_value(s));
		}
		return;
	case FK_MESSAGE: {
		size_t pos = pb_open(b, f->number);
		write_message(b, f->msg, v);
		pb_close(b, pos);
		return;
	}
	case FK_CUSTOM:
		f->write(b, f->number, v);
		return;
	}
}

static void write_message(struct pb *b, const struct pb_msg *m, const json_t *obj)
{
	if (!json_is_object(obj)) {
		pb_fail(b, -EINVAL);
		return;
	}
	for (const struct pb_field *f = m->fields; f->key; f++) {
		const json_t *v = json_object_get(obj, f->key);
		if (v) {
			write_field(b, f, v);
		}
	}
	size_t n;
	const char **keys = sorted_keys(obj, &n);
	if (!keys) {
		pb_fail(b, -ENOMEM);
		return;
	}
	for (size_t i = 0; i < n && !b->err; i++) {
		if (m->vendor_extension && is_extension(keys[i])) {
			pb_extension(b, m->vendor_extension, keys[i], json_object_get(obj, keys[i]));
			continue;
		}
		/* Anything the tables do not know would silently vanish from
		 * the protobuf form: refuse it so tests catch the drift. */
		const struct pb_field *f = m->fields;
		while (f->key && strcmp(f->key, keys[i]) != 0) {
			f++;
		}
		if (!f->key) {
			pb_fail(b, -EINVAL);
		}
	}
	free(keys);
}

static void write_schema(struct pb *b, uint32_t field, const json_t *v);

/* TypeItem{1: repeated string}. */
static void write_type(struct pb *b, uint32_t field, const json_t *v)
{
	static const struct pb_field f = { "", 1, FK_STRINGS, NULL, NULL };
	size_t pos = pb_open(b, field);
	write_field(b, &f, v);
	pb_close(b, pos);
}

/* ItemsItem{1: repeated Schema}. */
static void write_items(struct pb *b, uint32_t field, const json_t *v)
{
	size_t pos = pb_open(b, field);
	if (json_is_array(v)) {
		size_t i;
		json_t *s;
		json_array_foreach(v, i, s) {
			write_schema(b, 1, s);
		}
	} else {
		write_schema(b, 1, v);
	}
	pb_close(b, pos);
}

/* AdditionalPropertiesItem{oneof 1: Schema, 2: bool}. */
static void write_additional(struct pb *b, uint32_t field, const json_t *v)
{
	size_t pos = pb_open(b, field);
	if (json_is_boolean(v)) {
		pb_bool(b, 2, json_is_true(v)); /* a set oneof member is written even when false */
	} else {
		write_schema(b, 1, v);
	}
	pb_close(b, pos);
}

/* Properties/Definitions{1: repeated NamedSchema{1: name, 2: Schema}}. */
static void write_named_schemas(struct pb *b, uint32_t field, const json_t *v)
{
	size_t n;
	const char **keys = json_is_object(v) ? sorted_keys(v, &n) : NULL;
	if (!keys) {
		pb_fail(b, json_is_object(v) ? -ENOMEM : -EINVAL);
		return;
	}
	size_t pos = pb_open(b, field);
	for (size_t i = 0; i < n && !b->err; i++) {
		size_t named = pb_open(b, 1);
		pb_string(b, 1, keys[i]);
		write_schema(b, 2, json_object_get(v, keys[i]));
		pb_close(b, named);
	}
	pb_close(b, pos);
	free(keys);
}

static const struct pb_field schema_fields[] = {
	{ "$ref", 1, FK_STRING, NULL, NULL },
	{ "format", 2, FK_STRING, NULL, NULL },
	{ "uniqueItems", 16, FK_BOOL, NULL, NULL },
	{ "required", 19, FK_STRINGS, NULL, NULL },
	{ "additionalProperties", 21, FK_CUSTOM, NULL, write_additional },
	{ "type", 22, FK_CUSTOM, NULL, write_type },
	{ "items", 23, FK_CUSTOM, NULL, write_items },
	{ "properties", 25, FK_CUSTOM, NULL, write_named_schemas },
	{ NULL, 0, FK_STRING, NULL, NULL },
};
static const struct pb_msg schema_msg = { schema_fields, 31 };

static void write_schema(struct pb *b, uint32_t field, const json_t *v)
{
	size_t pos = pb_open(b, field);
	write_message(b, &schema_msg, v);
	pb_close(b, pos);
}

static const struct pb_field body_param_fields[] = {
	{ "name", 2, FK_STRING, NULL, NULL },
	{ "in", 3, FK_STRING, NULL, NULL },
	{ "required", 4, FK_BOOL, NULL, NULL },
	{ "schema", 5, FK_MESSAGE, &schema_msg, NULL },
	{ NULL, 0, FK_STRING, NULL, NULL },
};
static const struct pb_msg body_param_msg = { body_param_fields, 6 };

static const struct pb_field query_param_fields[] = {
	{ "required", 1, FK_BOOL, NULL, NULL },
	{ "in", 2, FK_STRING, NULL, NULL },
	{ "name", 4, FK_STRING, NULL, NULL },
	{ "type", 6, FK_STRING, NULL, NULL },
	{ "format", 7, FK_STRING, NULL, NULL },
	{ "uniqueItems", 20, FK_BOOL, NULL, NULL },
	{ NULL, 0, FK_STRING, NULL, NULL },
};
static const struct pb_msg query_param_msg = { query_param_fields, 23 };

static const struct pb_field path_param_fields[] = {
	{ "required", 1, FK_BOOL, NULL, NULL },
	{ "in", 2, FK_STRING, NULL, NULL },
	{ "name", 4, FK_STRING, NULL, NULL },
	{ "type", 5, FK_STRING, NULL, NULL },
	{ "format", 6, FK_STRING, NULL, NULL },
	{ "uniqueItems", 19, FK_BOOL, NULL, NULL },
	{ NULL, 0, FK_STRING, NULL, NULL },
};
static const struct pb_msg path_param_msg = { path_param_fields, 22 };

/* repeated ParametersItem{1: Parameter{1: BodyParameter |
 * 2: NonBodyParameter{3: QueryParameterSubSchema | 4: PathParameterSubSchema}}}. */
static void write_parameters(struct pb *b, uint32_t field, const json_t *v)
{
	if (!json_is_array(v)) {
		pb_fail(b, -EINVAL);
		return;
	}
	size_t i;
	json_t *p;
	json_array_foreach(v, i, p) {
		const char *in = json_string_value(json_object_get(p, "in"));
		size_t item = pb_open(b, field);
		size_t param = pb_open(b, 1);
		if (in && strcmp(in, "body") == 0) {
			size_t body = pb_open(b, 1);
			write_message(b, &body_param_msg, p);
			pb_close(b, body);
		} else if (in && (strcmp(in, "query") == 0 || strcmp(in, "path") == 0)) {
			bool query = strcmp(in, "query") == 0;
			size_t non_body = pb_open(b, 2);
			size_t sub = pb_open(b, query ? 3 : 4);
			write_message(b, query ? &query_param_msg : &path_param_msg, p);
			pb_close(b, sub);
			pb_close(b, non_body);
		} else {
			pb_fail(b, -EINVAL);
		}
		pb_close(b, param);
		pb_close(b, item);
	}
}

/* SchemaItem{1: Schema}. */
static void write_schema_item(struct pb *b, uint32_t field, const json_t *v)
{
	size_t pos = pb_open(b, field);
	write_schema(b, 1, v);
	pb_close(b, pos);
}

static const struct pb_field response_fields[] = {
	{ "description", 1, FK_STRING, NULL, NULL },
	{ "schema", 2, FK_CUSTOM, NULL, write_schema_item },
	{ NULL, 0, FK_STRING, NULL, NULL },
};
static const struct pb_msg response_msg = { response_fields, 5 };

/* Responses{1: repeated NamedResponseValue{1: name, 2: ResponseValue{1: Response}}}. */
static void write_responses(struct pb *b, uint32_t field, const json_t *v)
{
	size_t n;
	const char **keys = json_is_object(v) ? sorted_keys(v, &n) : NULL;
	if (!keys) {
		pb_fail(b, json_is_object(v) ? -ENOMEM : -EINVAL);
		return;
	}
	size_t pos = pb_open(b, field);
	for (size_t i = 0; i < n && !b->err; i++) {
		size_t named = pb_open(b, 1);
		pb_string(b, 1, keys[i]);
		size_t value = pb_open(b, 2);
		size_t resp = pb_open(b, 1);
		write_message(b, &response_msg, json_object_get(v, keys[i]));
		pb_close(b, resp);
		pb_close(b, value);
		pb_close(b, named);
	}
	pb_close(b, pos);
	free(keys);
}

static const struct pb_field operation_fields[] = {
	{ "tags", 1, FK_STRINGS, NULL, NULL },
	{ "operationId", 5, FK_STRING, NULL, NULL },
	{ "produces", 6, FK_STRINGS, NULL, NULL },
	{ "consumes", 7, FK_STRINGS, NULL, NULL },
	{ "parameters", 8, FK_CUSTOM, NULL, write_parameters },
	{ "responses", 9, FK_CUSTOM, NULL, write_responses },
	{ "schemes", 10, FK_STRINGS, NULL, NULL },
	{ "deprecated", 11, FK_BOOL, NULL, NULL },
	{ NULL, 0, FK_STRING, NULL, NULL },
};
static const struct pb_msg operation_msg = { operation_fields, 13 };

static const struct pb_field path_item_fields[] = {
	{ "get", 2, FK_MESSAGE, &operation_msg, NULL },
	{ "put", 3, FK_MESSAGE, &operation_msg, NULL },
	{ "post", 4, FK_MESSAGE, &operation_msg, NULL },
	{ "delete", 5, FK_MESSAGE, &operation_msg, NULL },
	{ "options", 6, FK_MESSAGE, &operation_msg, NULL },
	{ "head", 7, FK_MESSAGE, &operation_msg, NULL },
	{ "patch", 8, FK_MESSAGE, &operation_msg, NULL },
	{ "parameters", 9, FK_CUSTOM, NULL, write_parameters },
	{ NULL, 0, FK_STRING, NULL, NULL },
};
static const struct pb_msg path_item_msg = { path_item_fields, 10 };

/* Paths{2: repeated NamedPathItem{1: name, 2: PathItem}}. */
static void write_paths(struct pb *b, uint32_t field, const json_t *v)
{
	size_t n;
	const char **keys = json_is_object(v) ? sorted_keys(v, &n) : NULL;
	if (!keys) {
		pb_fail(b, json_is_object(v) ? -ENOMEM : -EINVAL);
		return;
	}
	size_t pos = pb_open(b, field);
	for (size_t i = 0; i < n && !b->err; i++) {
		if (is_extension(keys[i])) {
			pb_fail(b, -EINVAL); /* none are made; field 1 would hold them */
			break;
		}
		size_t named = pb_open(b, 2);
		pb_string(b, 1, keys[i]);
		size_t item = pb_open(b, 2);
		write_message(b, &path_item_msg, json_object_get(v, keys[i]));
		pb_close(b, item);
		pb_close(b, named);
	}
	pb_close(b, pos);
	free(keys);
}

static const struct pb_field info_fields[] = {
	{ "title", 1, FK_STRING, NULL, NULL },
	{ "version", 2, FK_STRING, NULL, NULL },
	{ NULL, 0, FK_STRING, NULL, NULL },
};
static const struct pb_msg info_msg = { info_fields, 7 };

static const struct pb_field document_fields[] = {
	{ "swagger", 1, FK_STRING, NULL, NULL },
	{ "info", 2, FK_MESSAGE, &info_msg, NULL },
	{ "host", 3, FK_STRING, NULL, NULL },
	{ "basePath", 4, FK_STRING, NULL, NULL },
	{ "schemes", 5, FK_STRINGS, NULL, NULL },
	{ "consumes", 6, FK_STRINGS, NULL, NULL },
	{ "produces", 7, FK_STRINGS, NULL, NULL },
	{ "paths", 8, FK_CUSTOM, NULL, write_paths },
	{ "definitions", 9, FK_CUSTOM, NULL, write_named_schemas },
	{ NULL, 0, FK_STRING, NULL, NULL },
};
static const struct pb_msg document_msg = { document_fields, 16 };

/* ---------------------------------------------------------------- API */

int api_openapi_v2_encode(const json_t *doc, void **ret_buf, size_t *ret_len)
{
	struct pb b = { 0 };
	write_message(&b, &document_msg, doc);
	if (!b.err && !b.data) {
		pb_reserve(&b, 1); /* an empty document still gets a buffer */
	}
	if (b.err) {
		free(b.data);
		return b.err;
	}
	*ret_buf = b.data;
	*ret_len = b.len;
	return 0;
}

int api_openapi_v2_protobuf(void **ret_buf, size_t *ret_len)
{
	json_t *doc = api_openapi_v2_json();
	if (!doc) {
		return -ENOMEM;
	}
	int rc = api_openapi_v2_encode(doc, ret_buf, ret_len);
	json_decref(doc);
	return rc;
}

void api_openapi_v2_etag(const void *buf, size_t len, char ret_etag[API_OPENAPI_V2_ETAG_SIZE])
{
	char hash[API_OPENAPI_HASH_SIZE];
	api_openapi_text_hash(buf, len, hash);
	snprintf(ret_etag, API_OPENAPI_V2_ETAG_SIZE, "\"%s\"", hash);
}
