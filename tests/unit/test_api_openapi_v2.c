/* Unit tests of the OpenAPI v2 document: its JSON form (definitions from
 * the v3 documents, Kubernetes' v2 shapes, GVK and patch extensions,
 * paths for every kind, resolvable references) and its gnostic protobuf
 * form, read back with a small protobuf reader written here from the
 * field numbers of gnostic-models openapiv2/OpenAPIv2.proto: golden bytes
 * for the field numbers, a full decode that must equal the JSON form, YAML
 * extension values that go-yaml v2 rules read back unchanged, and
 * deterministic bytes and ETag. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/lib/codec.h"
#include "src/api/discovery.h"
#include "src/api/openapi.h"
#include "src/api/openapi_v2.h"
#include "src/api/registry.h"

/* ---------------------------------------------------------------- Fixture */

static void *pb_buf;
static size_t pb_len;
static json_t *v2_json;

static int setup(void **state)
{
	(void)state;
	if (api_openapi_v2_protobuf(&pb_buf, &pb_len) != 0) {
		return -1;
	}
	v2_json = api_openapi_v2_json();
	return v2_json ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	free(pb_buf);
	json_decref(v2_json);
	return 0;
}

/* ---------------------------------------------------------------- Protobuf reader */

struct reader {
	const uint8_t *p, *end;
};

struct field {
	uint32_t num;
	unsigned wire;
	uint64_t value;      /* varint */
	const uint8_t *data; /* length-delimited */
	size_t len;
};

static uint64_t read_varint(struct reader *r)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		assert_true(r->p < r->end);
		uint8_t byte = *r->p++;
		v |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80)) {
			return v;
		}
	}
	fail_msg("varint too long");
	return 0;
}

/* The next field of the message, or false at its end.  Only the two wire
 * types the document uses may appear. */
static bool next_field(struct reader *r, struct field *f)
{
	if (r->p == r->end) {
		return false;
	}
	uint64_t key = read_varint(r);
	f->num = (uint32_t)(key >> 3);
	f->wire = (unsigned)(key & 7);
	assert_true(f->num > 0);
	if (f->wire == 0) {
		f->value = read_varint(r);
	} else if (f->wire == 2) {
		uint64_t n = read_varint(r);
		assert_true(n <= (uint64_t)(r->end - r->p));
		f->data = r->p;
		f->len = (size_t)n;
		r->p += n;
	} else {
		fail_msg("unexpected wire type %u of field %u", f->wire, f->num);
	}
	return true;
}

static struct reader sub(const struct field *f)
{
	assert_int_equal(f->wire, 2);
	struct reader r = { f->data, f->data + f->len };
	return r;
}

static json_t *str_of(const struct field *f)
{
	assert_int_equal(f->wire, 2);
	json_t *s = json_stringn((const char *)f->data, f->len);
	assert_non_null(s);
	return s;
}

static json_t *bool_of(const struct field *f)
{
	assert_int_equal(f->wire, 0);
	assert_true(f->value <= 1);
	return json_boolean(f->value);
}

static void push(json_t *obj, const char *key, json_t *value)
{
	json_t *arr = json_object_get(obj, key);
	if (!arr) {
		arr = json_array();
		json_object_set_new(obj, key, arr);
	}
	json_array_append_new(arr, value);
}

/* NamedAny{1: name, 2: Any{2: yaml}}: the YAML read with go-yaml v2 rules. */
static void read_extension(json_t *obj, const struct field *f)
{
	struct reader r = sub(f), ra;
	struct field g, h;
	char name[128] = "";
	json_t *value = NULL;
	while (next_field(&r, &g)) {
		if (g.num == 1) {
			assert_true(g.len < sizeof(name));
			memcpy(name, g.data, g.len);
			name[g.len] = '\0';
		} else if (g.num == 2) {
			ra = sub(&g);
			while (next_field(&ra, &h)) {
				assert_int_equal(h.num, 2); /* only the yaml text */
				json_t *docs = NULL;
				struct codec_err err;
				assert_int_equal(codec_yaml_to_tree((const char *)h.data, h.len, 0, &docs, &err), 0);
				assert_int_equal(json_array_size(docs), 1);
				value = json_incref(json_array_get(docs, 0));
				json_decref(docs);
			}
		} else {
			fail_msg("NamedAny field %u", g.num);
		}
	}
	assert_true(strncmp(name, "x-", 2) == 0);
	assert_non_null(value);
	json_object_set_new(obj, name, value);
}

static json_t *read_schema(const struct field *f);

/* {1: repeated NamedX{1: name, 2: X}} into an object, X read by @read. */
static json_t *read_named(const struct field *f, uint32_t entry, json_t *(*read)(const struct field *))
{
	json_t *obj = json_object();
	struct reader r = sub(f);
	struct field g;
	while (next_field(&r, &g)) {
		assert_int_equal(g.num, entry);
		struct reader rn = sub(&g);
		struct field h;
		json_t *name = NULL, *value = NULL;
		while (next_field(&rn, &h)) {
			if (h.num == 1) {
				name = str_of(&h);
			} else {
				assert_int_equal(h.num, 2);
				value = read(&h);
			}
		}
		assert_non_null(name);
		assert_non_null(value);
		assert_null(json_object_get(obj, json_string_value(name))); /* once each */
		json_object_set_new(obj, json_string_value(name), value);
		json_decref(name);
	}
	return obj;
}

static json_t *read_schema(const struct field *f)
{
	json_t *s = json_object();
	struct reader r = sub(f), rs;
	struct field g, h;
	json_t *types = json_array();
	while (next_field(&r, &g)) {
		switch (g.num) {
		case 1:
			json_object_set_new(s, "$ref", str_of(&g));
			break;
		case 2:
			json_object_set_new(s, "format", str_of(&g));
			break;
		case 16:
			json_object_set_new(s, "uniqueItems", bool_of(&g));
			break;
		case 19:
			push(s, "required", str_of(&g));
			break;
		case 21: /* AdditionalPropertiesItem{1: Schema | 2: bool} */
			rs = sub(&g);
			assert_true(next_field(&rs, &h));
			json_object_set_new(s, "additionalProperties",
					    h.num == 1 ? read_schema(&h) : bool_of(&h));
			assert_false(next_field(&rs, &h));
			break;
		case 22: /* TypeItem{1: repeated string} */
			rs = sub(&g);
			while (next_field(&rs, &h)) {
				assert_int_equal(h.num, 1);
				json_array_append_new(types, str_of(&h));
			}
			break;
		case 23: /* ItemsItem{1: repeated Schema}: the document has one each */
			rs = sub(&g);
			assert_true(next_field(&rs, &h));
			assert_int_equal(h.num, 1);
			json_object_set_new(s, "items", read_schema(&h));
			assert_false(next_field(&rs, &h));
			break;
		case 25:
			json_object_set_new(s, "properties", read_named(&g, 1, read_schema));
			break;
		case 31:
			read_extension(s, &g);
			break;
		default:
			fail_msg("Schema field %u", g.num);
		}
	}
	if (json_array_size(types) == 1) {
		json_object_set(s, "type", json_array_get(types, 0));
	} else {
		assert_int_equal(json_array_size(types), 0);
	}
	json_decref(types);
	return s;
}

/* ParametersItem{1: Parameter{1: Body | 2: NonBody{3: Query | 4: Path}}}. */
static json_t *read_parameter(const struct field *f)
{
	json_t *p = json_object();
	struct reader r = sub(f), rp, rn, rs;
	struct field g, h, k, m;
	assert_true(next_field(&r, &g));
	assert_int_equal(g.num, 1);
	rp = sub(&g);
	assert_true(next_field(&rp, &h));
	if (h.num == 1) {
		rs = sub(&h);
		while (next_field(&rs, &m)) {
			switch (m.num) {
			case 2: json_object_set_new(p, "name", str_of(&m)); break;
			case 3: json_object_set_new(p, "in", str_of(&m)); break;
			case 4: json_object_set_new(p, "required", bool_of(&m)); break;
			case 5: json_object_set_new(p, "schema", read_schema(&m)); break;
			default: fail_msg("BodyParameter field %u", m.num);
			}
		}
	} else {
		assert_int_equal(h.num, 2);
		rn = sub(&h);
		assert_true(next_field(&rn, &k));
		bool query = k.num == 3;
		assert_true(k.num == 3 || k.num == 4);
		rs = sub(&k);
		while (next_field(&rs, &m)) {
			if (m.num == 1) {
				json_object_set_new(p, "required", bool_of(&m));
			} else if (m.num == 2) {
				json_object_set_new(p, "in", str_of(&m));
			} else if (m.num == 4) {
				json_object_set_new(p, "name", str_of(&m));
			} else if (m.num == (query ? 6u : 5u)) {
				json_object_set_new(p, "type", str_of(&m));
			} else if (m.num == (query ? 7u : 6u)) {
				json_object_set_new(p, "format", str_of(&m));
			} else if (m.num == (query ? 20u : 19u)) {
				json_object_set_new(p, "uniqueItems", bool_of(&m));
			} else {
				fail_msg("%s parameter field %u", query ? "query" : "path", m.num);
			}
		}
		assert_false(next_field(&rn, &k));
	}
	assert_false(next_field(&rp, &h));
	assert_false(next_field(&r, &g));
	return p;
}

/* ResponseValue{1: Response{1: description, 2: SchemaItem{1: Schema}}}. */
static json_t *read_response(const struct field *f)
{
	json_t *o = json_object();
	struct reader r = sub(f), rr, rs;
	struct field g, h, k;
	assert_true(next_field(&r, &g));
	assert_int_equal(g.num, 1);
	rr = sub(&g);
	while (next_field(&rr, &h)) {
		if (h.num == 1) {
			json_object_set_new(o, "description", str_of(&h));
		} else {
			assert_int_equal(h.num, 2);
			rs = sub(&h);
			assert_true(next_field(&rs, &k));
			assert_int_equal(k.num, 1);
			json_object_set_new(o, "schema", read_schema(&k));
		}
	}
	return o;
}

static json_t *read_operation(const struct field *f)
{
	json_t *op = json_object();
	struct reader r = sub(f);
	struct field g;
	while (next_field(&r, &g)) {
		switch (g.num) {
		case 1: push(op, "tags", str_of(&g)); break;
		case 5: json_object_set_new(op, "operationId", str_of(&g)); break;
		case 6: push(op, "produces", str_of(&g)); break;
		case 7: push(op, "consumes", str_of(&g)); break;
		case 8: push(op, "parameters", read_parameter(&g)); break;
		case 9: /* Responses{1: repeated NamedResponseValue} */
			json_object_set_new(op, "responses", read_named(&g, 1, read_response));
			break;
		case 10: push(op, "schemes", str_of(&g)); break;
		case 13: read_extension(op, &g); break;
		default: fail_msg("Operation field %u", g.num);
		}
	}
	return op;
}

static json_t *read_path_item(const struct field *f)
{
	static const char *const methods[] = { NULL, NULL, "get", "put", "post", "delete",
					       "options", "head", "patch" };
	json_t *item = json_object();
	struct reader r = sub(f);
	struct field g;
	while (next_field(&r, &g)) {
		if (g.num >= 2 && g.num <= 8) {
			json_object_set_new(item, methods[g.num], read_operation(&g));
		} else if (g.num == 9) {
			push(item, "parameters", read_parameter(&g));
		} else {
			fail_msg("PathItem field %u", g.num);
		}
	}
	return item;
}

static json_t *read_info(const struct field *f)
{
	json_t *info = json_object();
	struct reader r = sub(f);
	struct field g;
	while (next_field(&r, &g)) {
		assert_true(g.num == 1 || g.num == 2);
		json_object_set_new(info, g.num == 1 ? "title" : "version", str_of(&g));
	}
	return info;
}

/* The whole Document as the JSON it encodes. */
static json_t *read_document(const void *buf, size_t len)
{
	json_t *doc = json_object();
	struct reader r = { buf, (const uint8_t *)buf + len };
	struct field g;
	while (next_field(&r, &g)) {
		switch (g.num) {
		case 1: json_object_set_new(doc, "swagger", str_of(&g)); break;
		case 2: json_object_set_new(doc, "info", read_info(&g)); break;
		case 8: json_object_set_new(doc, "paths", read_named(&g, 2, read_path_item)); break;
		case 9: json_object_set_new(doc, "definitions", read_named(&g, 1, read_schema)); break;
		default: fail_msg("Document field %u", g.num);
		}
	}
	return doc;
}

/* ---------------------------------------------------------------- Helpers */

static json_t *def(const char *name)
{
	return json_object_get(json_object_get(v2_json, "definitions"), name);
}

static json_t *prop(const char *type, const char *field)
{
	return json_object_get(json_object_get(def(type), "properties"), field);
}

static const char *str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static void encode_text(const char *text, void **ret_buf, size_t *ret_len, int want)
{
	json_error_t jerr;
	json_t *doc = json_loads(text, 0, &jerr);
	assert_non_null(doc);
	*ret_buf = NULL;
	assert_int_equal(api_openapi_v2_encode(doc, ret_buf, ret_len), want);
	json_decref(doc);
}

static void assert_bytes(const void *buf, size_t len, const uint8_t *want, size_t want_len)
{
	if (len != want_len || memcmp(buf, want, len) != 0) {
		for (size_t i = 0; i < len; i++) {
			fprintf(stderr, "%02x ", ((const uint8_t *)buf)[i]);
		}
		fprintf(stderr, "\n");
		fail_msg("bytes differ (%zu vs %zu)", len, want_len);
	}
}

static bool has_param(const json_t *params, const char *name, const char *in)
{
	size_t i;
	json_t *p;
	json_array_foreach(params, i, p) {
		if (strcmp(str(p, "name"), name) == 0 && strcmp(str(p, "in"), in) == 0) {
			return true;
		}
	}
	return false;
}

static bool has_string(const json_t *arr, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) {
		if (strcmp(json_string_value(v), s) == 0) {
			return true;
		}
	}
	return false;
}

/* ---------------------------------------------------------------- Tests: encoding */

/* Document.swagger = 1, .info = 2, Info.title = 1, Info.version = 2. */
static void golden_document_fields(void **state)
{
	(void)state;
	void *buf;
	size_t len;
	encode_text("{\"swagger\":\"2.0\",\"info\":{\"version\":\"v\",\"title\":\"T\"}}", &buf, &len, 0);
	static const uint8_t want[] = { 0x0a, 0x03, '2', '.', '0', 0x12, 0x06, 0x0a, 0x01,
					'T',  0x12, 0x01, 'v' };
	assert_bytes(buf, len, want, sizeof(want));
	free(buf);
}

/* Document.definitions = 9 -> Definitions{1: NamedSchema{1, 2}};
 * Schema.type = 22 (TypeItem{1}), Schema.vendor_extension = 31 ->
 * NamedAny{1: name, 2: Any{2: yaml}}. */
static void golden_schema_fields(void **state)
{
	(void)state;
	void *buf;
	size_t len;
	encode_text("{\"definitions\":{\"A\":{\"type\":\"object\",\"x-e\":\"a\"}}}", &buf, &len, 0);
	static const uint8_t want[] = {
		0x4a, 0x20,                                           /* definitions, 32 */
		0x0a, 0x1e,                                           /* NamedSchema, 30 */
		0x0a, 0x01, 'A',                                      /* name */
		0x12, 0x19,                                           /* Schema, 25 */
		0xb2, 0x01, 0x08, 0x0a, 0x06, 'o', 'b', 'j', 'e', 'c', 't', /* type */
		0xfa, 0x01, 0x0b, 0x0a, 0x03, 'x', '-', 'e',          /* NamedAny */
		0x12, 0x04, 0x12, 0x02, 'a', '\n',                    /* Any.yaml */
	};
	assert_bytes(buf, len, want, sizeof(want));
	free(buf);
}

/* Lengths of 128 bytes and more take two varint bytes (the body moves). */
static void long_messages(void **state)
{
	(void)state;
	char name[301];
	memset(name, 'n', 300);
	name[300] = '\0';
	char text[1024];
	snprintf(text, sizeof(text), "{\"definitions\":{\"%s\":{\"format\":\"%s\"}}}", name, name);
	void *buf;
	size_t len;
	encode_text(text, &buf, &len, 0);
	json_t *doc = read_document(buf, len);
	json_t *schema = json_object_get(json_object_get(doc, "definitions"), name);
	assert_string_equal(str(schema, "format"), name);
	json_decref(doc);
	free(buf);
}

/* Exact YAML for the GVK list, and every extension value reads back
 * unchanged under go-yaml v2 rules (which kube-openapi uses). */
static void extension_yaml(void **state)
{
	(void)state;
	void *buf;
	size_t len;
	encode_text("{\"definitions\":{\"K\":{\"x-kubernetes-group-version-kind\":"
		    "[{\"group\":\"\",\"kind\":\"Pod\",\"version\":\"v1\"}]}}}",
		    &buf, &len, 0);
	static const char yaml[] = "- group: \"\"\n  kind: Pod\n  version: v1\n";
	assert_non_null(memmem(buf, len, yaml, strlen(yaml)));
	free(buf);

	static const char *const values[] = {
		"\"\"", "\"true\"", "\"y\"", "\"No\"", "\"off\"", "\"null\"", "\"~\"", "\"123\"",
		"\"0x10\"", "\"1e3\"", "\".inf\"", "\"a b\"", "\"a: b\"", "\"- a\"", "\"#x\"",
		"\"merge,retainKeys\"", "\"line\\nbreak\"", "\"quote\\\"d\"", "\"name\"",
		"[\"name\",\"protocol\"]", "{\"a\":{\"b\":[1,2.5,true,null]},\"c\":[]}",
		"[[1],[\"x\",[]],{}]", "[{\"a\":[{\"b\":\"c\"}]}]", "true", "-3",
	};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char text[512];
		snprintf(text, sizeof(text), "{\"definitions\":{\"K\":{\"x-v\":%s}}}", values[i]);
		encode_text(text, &buf, &len, 0);
		json_t *doc = read_document(buf, len);
		json_error_t jerr;
		json_t *want = json_loads(values[i], JSON_DECODE_ANY, &jerr);
		json_t *got = json_object_get(json_object_get(json_object_get(doc, "definitions"), "K"), "x-v");
		if (!json_equal(want, got)) {
			fail_msg("extension %s read back differently", values[i]);
		}
		json_decref(want);
		json_decref(doc);
		free(buf);
	}
}

/* What the encoder has no field for is refused, not dropped. */
static void unknown_keys_refused(void **state)
{
	(void)state;
	void *buf;
	size_t len;
	encode_text("{\"swagger\":\"2.0\",\"bogus\":1}", &buf, &len, -EINVAL);
	encode_text("{\"definitions\":{\"A\":{\"description\":\"text\"}}}", &buf, &len, -EINVAL);
	encode_text("{\"definitions\":{\"A\":{\"allOf\":[]}}}", &buf, &len, -EINVAL);
	encode_text("{\"paths\":{\"/a\":{\"get\":{\"parameters\":[{\"in\":\"header\",\"name\":\"h\"}]}}}}",
		    &buf, &len, -EINVAL);
	encode_text("{\"swagger\":2}", &buf, &len, -EINVAL);
}

/* ---------------------------------------------------------------- Tests: the document */

/* The protobuf holds exactly the JSON form. */
static void protobuf_decodes_to_json(void **state)
{
	(void)state;
	json_t *doc = read_document(pb_buf, pb_len);
	if (!json_equal(doc, v2_json)) {
		const char *key;
		json_t *v;
		json_object_foreach(json_object_get(v2_json, "definitions"), key, v) {
			json_t *got = json_object_get(json_object_get(doc, "definitions"), key);
			if (!json_equal(v, got)) {
				char *a = json_dumps(v, JSON_SORT_KEYS), *b = json_dumps(got, JSON_SORT_KEYS);
				fprintf(stderr, "# %s\n# want %s\n# got  %s\n", key, a, b);
				free(a);
				free(b);
				break;
			}
		}
		fail_msg("decoded protobuf differs from the JSON document");
	}
	json_decref(doc);
}

static void header_and_definition_count(void **state)
{
	(void)state;
	assert_string_equal(str(v2_json, "swagger"), "2.0");
	assert_string_equal(str(json_object_get(v2_json, "info"), "title"), "Kubernetes");
	assert_string_equal(str(json_object_get(v2_json, "info"), "version"), "unversioned");

	/* The definitions are exactly the union of the v3 schemas. */
	json_t *names = json_object();
	struct api_group_version gvs[16];
	size_t n = api_discovery_group_versions(gvs, 16);
	assert_true(n > 1 && n <= 16);
	for (size_t i = 0; i < n; i++) {
		json_t *v3 = api_openapi_v3_document(gvs[i].group, gvs[i].version);
		assert_non_null(v3);
		const char *key;
		json_t *v;
		json_object_foreach(json_object_get(json_object_get(v3, "components"), "schemas"), key, v) {
			json_object_set_new(names, key, json_true());
			assert_non_null(def(key));
		}
		json_decref(v3);
	}
	assert_true(json_object_size(names) > 200);
	assert_int_equal(json_object_size(json_object_get(v2_json, "definitions")), json_object_size(names));
	json_decref(names);
}

static void walk_refs(const json_t *v, const json_t *defs, size_t *n_refs)
{
	const char *key;
	json_t *child;
	size_t i;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, child) {
			/* v3-only keys and descriptions of schemas must not appear. */
			assert_true(strcmp(key, "allOf") != 0 && strcmp(key, "oneOf") != 0 &&
				    strcmp(key, "content") != 0 && strcmp(key, "requestBody") != 0 &&
				    strcmp(key, "components") != 0 && strcmp(key, "nullable") != 0);
			if (strcmp(key, "$ref") == 0) {
				const char *ref = json_string_value(child);
				size_t plen = strlen(API_OPENAPI_V2_REF_PREFIX);
				assert_non_null(ref);
				assert_memory_equal(ref, API_OPENAPI_V2_REF_PREFIX, plen);
				if (!json_object_get(defs, ref + plen)) {
					fail_msg("unresolved $ref %s", ref);
				}
				/* kube-openapi refuses a $ref with a type or properties. */
				assert_null(json_object_get(v, "type"));
				assert_null(json_object_get(v, "properties"));
				(*n_refs)++;
			} else if (strncmp(key, "x-", 2) != 0) {
				walk_refs(child, defs, n_refs);
			}
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, child) {
			walk_refs(child, defs, n_refs);
		}
	}
}

static void refs_resolve(void **state)
{
	(void)state;
	size_t n_refs = 0;
	walk_refs(v2_json, json_object_get(v2_json, "definitions"), &n_refs);
	assert_true(n_refs > 500);
}

/* What kube-openapi's parser insists on for every definition and property. */
static void check_parseable(const json_t *s, const char *where)
{
	if (json_object_get(s, "$ref")) {
		return;
	}
	const char *type = str(s, "type");
	if (!type) {
		return; /* arbitrary, or a kind when it has properties */
	}
	if (strcmp(type, "array") == 0) {
		if (!json_is_object(json_object_get(s, "items"))) {
			fail_msg("%s: array without one items schema", where);
		}
		check_parseable(json_object_get(s, "items"), where);
	} else if (strcmp(type, "object") == 0) {
		const char *key;
		json_t *p;
		json_object_foreach(json_object_get(s, "properties"), key, p) {
			check_parseable(p, key);
		}
		json_t *ap = json_object_get(s, "additionalProperties");
		if (json_is_object(ap)) {
			check_parseable(ap, where);
		}
	} else if (strcmp(type, "string") != 0 && strcmp(type, "integer") != 0 &&
		   strcmp(type, "number") != 0 && strcmp(type, "boolean") != 0) {
		fail_msg("%s: type %s", where, type);
	}
}

static void definitions_parseable(void **state)
{
	(void)state;
	const char *key;
	json_t *s;
	json_object_foreach(json_object_get(v2_json, "definitions"), key, s) {
		assert_null(json_object_get(s, "description"));
		check_parseable(s, key);
	}
}

static void v2_scalar_forms(void **state)
{
	(void)state;
	json_t *ios = def("io.k8s.apimachinery.pkg.util.intstr.IntOrString");
	assert_int_equal(json_object_size(ios), 2);
	assert_string_equal(str(ios, "type"), "string");
	assert_string_equal(str(ios, "format"), "int-or-string");
	json_t *q = def("io.k8s.apimachinery.pkg.api.resource.Quantity");
	assert_int_equal(json_object_size(q), 1);
	assert_string_equal(str(q, "type"), "string");
	json_t *t = def("io.k8s.apimachinery.pkg.apis.meta.v1.Time");
	assert_string_equal(str(t, "type"), "string");
	assert_string_equal(str(t, "format"), "date-time");
	/* A property naming a type is a bare $ref. */
	json_t *meta = prop("io.k8s.api.core.v1.Pod", "metadata");
	assert_string_equal(str(meta, "$ref"),
			    API_OPENAPI_V2_REF_PREFIX "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
	json_t *replicas = prop("io.k8s.api.apps.v1.DeploymentSpec", "replicas");
	assert_string_equal(str(replicas, "type"), "integer");
	assert_string_equal(str(replicas, "format"), "int32");
	json_t *required = json_object_get(def("io.k8s.api.core.v1.Container"), "required");
	assert_true(has_string(required, "name"));
	json_t *labels = prop("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "labels");
	assert_string_equal(str(labels, "type"), "object");
	assert_string_equal(str(json_object_get(labels, "additionalProperties"), "type"), "string");
}

static void patch_extensions(void **state)
{
	(void)state;
	json_t *c = prop("io.k8s.api.core.v1.PodSpec", "containers");
	assert_string_equal(str(c, "type"), "array");
	assert_string_equal(str(json_object_get(c, "items"), "$ref"),
			    API_OPENAPI_V2_REF_PREFIX "io.k8s.api.core.v1.Container");
	assert_string_equal(str(c, "x-kubernetes-patch-merge-key"), "name");
	assert_string_equal(str(c, "x-kubernetes-patch-strategy"), "merge");
	assert_string_equal(str(c, "x-kubernetes-list-type"), "map");
	json_t *keys = json_object_get(c, "x-kubernetes-list-map-keys");
	assert_int_equal(json_array_size(keys), 1);
	assert_string_equal(json_string_value(json_array_get(keys, 0)), "name");

	json_t *vols = prop("io.k8s.api.core.v1.PodSpec", "volumes");
	assert_string_equal(str(vols, "x-kubernetes-patch-strategy"), "merge,retainKeys");
	json_t *ports = prop("io.k8s.api.core.v1.Container", "ports");
	assert_string_equal(str(ports, "x-kubernetes-patch-merge-key"), "containerPort");
	keys = json_object_get(ports, "x-kubernetes-list-map-keys");
	assert_int_equal(json_array_size(keys), 2);
}

/* Every kind: its definition lists its GVK, its paths carry the
 * operations its verbs allow, writes declare fieldValidation, patch
 * accepts the four patch types. */
static void kinds_gvk_and_paths(void **state)
{
	(void)state;
	json_t *paths = json_object_get(v2_json, "paths");
	for (size_t i = 0; i < api_kind_count(); i++) {
		const struct api_kind *k = api_kind_at(i);
		const char *type = api_type_name(api_type_get(k->type));
		json_t *gvks = json_object_get(def(type), "x-kubernetes-group-version-kind");
		bool found = false;
		size_t j;
		json_t *g;
		json_array_foreach(gvks, j, g) {
			found |= strcmp(str(g, "group"), k->group) == 0 &&
				 strcmp(str(g, "version"), k->version) == 0 &&
				 strcmp(str(g, "kind"), k->kind) == 0;
		}
		if (!found) {
			fail_msg("%s lacks its GVK", type);
		}
		char list_name[256];
		snprintf(list_name, sizeof(list_name), "%sList", type);
		assert_non_null(def(list_name));

		char prefix[128], path[512];
		if (k->group[0]) {
			snprintf(prefix, sizeof(prefix), "/apis/%s/%s", k->group, k->version);
		} else {
			snprintf(prefix, sizeof(prefix), "/api/%s", k->version);
		}
		snprintf(path, sizeof(path), "%s/%s%s/{name}", prefix,
			 k->namespaced ? "namespaces/{namespace}/" : "", k->plural);
		json_t *item = json_object_get(paths, path);
		if (!item) {
			fail_msg("no path %s", path);
		}
		assert_true(has_param(json_object_get(item, "parameters"), "name", "path"));
		assert_int_equal(has_param(json_object_get(item, "parameters"), "namespace", "path"),
				 k->namespaced);
		json_t *get = json_object_get(item, "get");
		assert_non_null(get);
		assert_string_equal(str(json_object_get(json_object_get(get, "responses"), "200"), "description"), "OK");
		json_t *op_gvk = json_object_get(get, "x-kubernetes-group-version-kind");
		assert_string_equal(str(op_gvk, "kind"), k->kind);
		assert_string_equal(str(op_gvk, "group"), k->group);
		if (k->verbs & API_VERB_PATCH) {
			json_t *patch = json_object_get(item, "patch");
			assert_non_null(patch);
			json_t *consumes = json_object_get(patch, "consumes");
			assert_true(has_string(consumes, "application/json-patch+json"));
			assert_true(has_string(consumes, "application/merge-patch+json"));
			assert_true(has_string(consumes, "application/strategic-merge-patch+json"));
			assert_true(has_string(consumes, "application/apply-patch+yaml"));
			json_t *params = json_object_get(patch, "parameters");
			assert_true(has_param(params, "body", "body"));
			assert_true(has_param(params, "fieldValidation", "query"));
			assert_string_equal(str(json_object_get(patch, "x-kubernetes-group-version-kind"), "kind"),
					    k->kind);
		}
		if (k->verbs & API_VERB_UPDATE) {
			json_t *put = json_object_get(item, "put");
			assert_non_null(put);
			assert_true(has_param(json_object_get(put, "parameters"), "fieldValidation", "query"));
		}
		if (k->verbs & API_VERB_DELETE) {
			assert_non_null(json_object_get(item, "delete"));
		}
		snprintf(path, sizeof(path), "%s/%s%s", prefix,
			 k->namespaced ? "namespaces/{namespace}/" : "", k->plural);
		item = json_object_get(paths, path);
		assert_non_null(item);
		if (k->verbs & API_VERB_CREATE) {
			json_t *post = json_object_get(item, "post");
			assert_non_null(post);
			json_t *body = json_array_get(json_object_get(post, "parameters"), 0);
			assert_string_equal(str(body, "in"), "body");
			assert_true(json_is_true(json_object_get(body, "required")));
			char ref[300];
			snprintf(ref, sizeof(ref), API_OPENAPI_V2_REF_PREFIX "%s", type);
			assert_string_equal(str(json_object_get(body, "schema"), "$ref"), ref);
		}
		if (k->verbs & API_VERB_LIST) {
			json_t *list = json_object_get(item, "get");
			assert_non_null(list);
			assert_true(has_param(json_object_get(list, "parameters"), "watch", "query"));
		}
	}
}

/* Kubernetes lists DeleteOptions under every group-version. */
static void delete_options_gvks(void **state)
{
	(void)state;
	json_t *gvks = json_object_get(def("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"),
				       "x-kubernetes-group-version-kind");
	struct api_group_version gvs[16];
	size_t n = api_discovery_group_versions(gvs, 16);
	assert_int_equal(json_array_size(gvks), n);
	for (size_t i = 0; i < n; i++) {
		bool found = false;
		size_t j;
		json_t *g;
		json_array_foreach(gvks, j, g) {
			found |= strcmp(str(g, "group"), gvs[i].group) == 0 &&
				 strcmp(str(g, "version"), gvs[i].version) == 0;
		}
		assert_true(found);
	}
}

static void deterministic_bytes_and_etag(void **state)
{
	(void)state;
	void *again;
	size_t again_len;
	assert_int_equal(api_openapi_v2_protobuf(&again, &again_len), 0);
	assert_int_equal(again_len, pb_len);
	assert_memory_equal(again, pb_buf, pb_len);

	char e1[API_OPENAPI_V2_ETAG_SIZE], e2[API_OPENAPI_V2_ETAG_SIZE];
	api_openapi_v2_etag(pb_buf, pb_len, e1);
	api_openapi_v2_etag(again, again_len, e2);
	assert_string_equal(e1, e2);
	assert_int_equal(strlen(e1), API_OPENAPI_V2_ETAG_SIZE - 1);
	assert_int_equal(e1[0], '"');
	assert_int_equal(e1[API_OPENAPI_V2_ETAG_SIZE - 2], '"');
	for (size_t i = 1; i < API_OPENAPI_V2_ETAG_SIZE - 2; i++) {
		assert_non_null(strchr("0123456789ABCDEF", e1[i]));
	}
	((uint8_t *)again)[again_len / 2] ^= 1;
	api_openapi_v2_etag(again, again_len, e2);
	assert_string_not_equal(e1, e2);
	free(again);

	/* The JSON form is stable too. */
	json_t *doc = api_openapi_v2_json();
	assert_true(json_equal(doc, v2_json));
	json_decref(doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(golden_document_fields),
		cmocka_unit_test(golden_schema_fields),
		cmocka_unit_test(long_messages),
		cmocka_unit_test(extension_yaml),
		cmocka_unit_test(unknown_keys_refused),
		cmocka_unit_test(protobuf_decodes_to_json),
		cmocka_unit_test(header_and_definition_count),
		cmocka_unit_test(refs_resolve),
		cmocka_unit_test(definitions_parseable),
		cmocka_unit_test(v2_scalar_forms),
		cmocka_unit_test(patch_extensions),
		cmocka_unit_test(kinds_gvk_and_paths),
		cmocka_unit_test(delete_options_gvks),
		cmocka_unit_test(deterministic_bytes_and_etag),
	};
	return cmocka_run_group_tests_name("api_openapi_v2", tests, setup, teardown);
}
