/* Oracle test: the generated schema tables and the kind registry agree
 * with Kubernetes' own OpenAPI document (../shared/k8s-openapi/swagger.json,
 * or $CAPSTAN_SWAGGER).  Skipped when the document is absent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/api/registry.h"

/* ---------------------------------------------------------------- Fixture */

static json_t *defs; /* borrowed from doc */
static json_t *doc;

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
	doc = json_load_file(path, 0, &err);
	defs = doc ? json_object_get(doc, "definitions") : NULL;
}

static int free_swagger(void **state)
{
	(void)state;
	json_decref(doc);
	return 0;
}

/* cmocka's skip() prints "not ok # SKIP", which automake's TAP driver
 * counts as a failure: without the document the whole file is one SKIP. */
#define NEED_SWAGGER() assert_non_null(defs)

/* ---------------------------------------------------------------- Helpers */

static const char *ref_of(const json_t *s)
{
	const char *r = json_string_value(json_object_get(s, "$ref"));
	const char *slash = r ? strrchr(r, '/') : NULL;
	return slash ? slash + 1 : r;
}

/* The value kind the document gives a schema, and its referenced
 * definition (for objects). */
static enum api_vkind kind_of(const json_t *s, const char **ret_ref)
{
	const char *ref = ref_of(s);
	*ret_ref = NULL;
	if (ref) {
		if (strcmp(ref, "io.k8s.apimachinery.pkg.util.intstr.IntOrString") == 0) {
			return API_V_INT_OR_STRING;
		}
		if (strcmp(ref, "io.k8s.apimachinery.pkg.api.resource.Quantity") == 0) {
			return API_V_QUANTITY;
		}
		if (strcmp(ref, "io.k8s.apimachinery.pkg.apis.meta.v1.Time") == 0) {
			return API_V_TIME;
		}
		if (strcmp(ref, "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime") == 0) {
			return API_V_MICROTIME;
		}
		json_t *d = json_object_get(defs, ref);
		if (!json_object_get(d, "properties") &&
		    strcmp(json_string_value(json_object_get(d, "type")), "object") == 0) {
			return API_V_ANY; /* FieldsV1, RawExtension */
		}
		*ret_ref = ref;
		return API_V_OBJECT;
	}
	const char *type = json_string_value(json_object_get(s, "type"));
	const char *fmt = json_string_value(json_object_get(s, "format"));
	assert_non_null(type);
	if (strcmp(type, "array") == 0) {
		return API_V_ARRAY;
	}
	if (strcmp(type, "object") == 0) {
		return json_object_get(s, "additionalProperties") ? API_V_MAP : API_V_ANY;
	}
	if (strcmp(type, "string") == 0) {
		if (fmt && strcmp(fmt, "byte") == 0) {
			return API_V_BYTES;
		}
		if (fmt && strcmp(fmt, "date-time") == 0) {
			return API_V_TIME;
		}
		return API_V_STRING;
	}
	if (strcmp(type, "integer") == 0) {
		return fmt && strcmp(fmt, "int32") == 0 ? API_V_INT32 : API_V_INT64;
	}
	if (strcmp(type, "number") == 0) {
		return API_V_NUMBER;
	}
	if (strcmp(type, "boolean") == 0) {
		return API_V_BOOL;
	}
	fail_msg("unknown schema type %s", type);
	return API_V_NONE;
}

/* Checks one schema (property, item or map value) against (kind, ref). */
static void check_schema(const char *where, const json_t *s, uint8_t kind, uint16_t ref)
{
	const char *dref;
	enum api_vkind want = kind_of(s, &dref);
	if (kind != want) {
		fail_msg("%s: kind %d, document says %d", where, kind, want);
	}
	if (want == API_V_OBJECT) {
		const struct api_type *t = api_type_get(ref);
		assert_non_null(t);
		if (strcmp(api_type_name(t), dref) != 0) {
			fail_msg("%s: refers to %s, document says %s", where, api_type_name(t), dref);
		}
	} else if (want == API_V_ARRAY || want == API_V_MAP) {
		const struct api_elem *el = api_elem_get(ref);
		assert_non_null(el);
		json_t *inner = json_object_get(s, want == API_V_ARRAY ? "items" : "additionalProperties");
		char w[512];
		snprintf(w, sizeof(w), "%s[]", where);
		check_schema(w, inner, el->kind, el->ref);
	}
}

static bool in_list(const json_t *arr, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v)
	{
		if (strcmp(json_string_value(v), s) == 0) {
			return true;
		}
	}
	return false;
}

/* ---------------------------------------------------------------- Tests */

static void every_field_of_every_type(void **state)
{
	(void)state;
	NEED_SWAGGER();
	size_t checked = 0;
	for (int i = 0; i < API_GEN_N_TYPES; i++) {
		const struct api_type *t = api_type_get(i);
		const char *name = api_type_name(t);
		json_t *d = json_object_get(defs, name);
		if (!d) {
			fail_msg("%s is not in the document", name);
		}
		json_t *props = json_object_get(d, "properties");
		json_t *req = json_object_get(d, "required");
		assert_int_equal(json_object_size(props), t->n_fields);
		assert_int_equal((t->flags & API_TF_MAP_ATOMIC) != 0,
				 json_is_string(json_object_get(d, "x-kubernetes-map-type")) &&
					 strcmp(json_string_value(json_object_get(d, "x-kubernetes-map-type")), "atomic") == 0);
		size_t n_required = 0;
		for (uint16_t j = 0; j < t->n_fields; j++) {
			const struct api_field *f = &api_gen_fields[t->first_field + j];
			const char *fname = api_field_name(f);
			char where[512];
			snprintf(where, sizeof(where), "%s.%s", name, fname);
			json_t *p = json_object_get(props, fname);
			if (!p) {
				fail_msg("%s is not in the document", where);
			}
			check_schema(where, p, f->kind, f->ref);

			bool required = in_list(req, fname);
			n_required += required;
			if (required != ((f->flags & API_F_REQUIRED) != 0)) {
				fail_msg("%s: required flag differs", where);
			}

			const char *mk = json_string_value(json_object_get(p, "x-kubernetes-patch-merge-key"));
			const char *ours = api_field_merge_key(f);
			if ((mk == NULL) != (ours == NULL) || (mk && strcmp(mk, ours) != 0)) {
				fail_msg("%s: merge key %s, document says %s", where, ours, mk);
			}

			const char *ps = json_string_value(json_object_get(p, "x-kubernetes-patch-strategy"));
			unsigned want = 0;
			if (ps) {
				want |= strstr(ps, "merge") ? API_F_PATCH_MERGE : 0;
				want |= strstr(ps, "retainKeys") ? API_F_PATCH_RETAIN_KEYS : 0;
				want |= strstr(ps, "replace") ? API_F_PATCH_REPLACE : 0;
			}
			const char *lt = json_string_value(json_object_get(p, "x-kubernetes-list-type"));
			if (lt) {
				want |= strcmp(lt, "atomic") == 0 ? API_F_LIST_ATOMIC
					: strcmp(lt, "set") == 0  ? API_F_LIST_SET
								  : API_F_LIST_MAP;
			}
			const char *mt = json_string_value(json_object_get(p, "x-kubernetes-map-type"));
			if (mt) {
				want |= strcmp(mt, "atomic") == 0 ? API_F_MAP_ATOMIC : API_F_MAP_GRANULAR;
			}
			unsigned mask = API_F_PATCH_MERGE | API_F_PATCH_RETAIN_KEYS | API_F_PATCH_REPLACE |
					API_F_LIST_ATOMIC | API_F_LIST_SET | API_F_LIST_MAP |
					API_F_MAP_ATOMIC | API_F_MAP_GRANULAR;
			if ((f->flags & mask) != want) {
				fail_msg("%s: flags %#x, document says %#x", where, f->flags & mask, want);
			}

			json_t *keys = json_object_get(p, "x-kubernetes-list-map-keys");
			assert_int_equal(api_field_n_map_keys(f), json_array_size(keys));
			for (size_t k = 0; k < json_array_size(keys); k++) {
				assert_string_equal(api_field_map_key(f, k),
						    json_string_value(json_array_get(keys, k)));
			}
			checked++;
		}
		assert_int_equal(n_required, json_array_size(req));
	}
	assert_int_equal(checked, API_GEN_N_FIELDS);
	print_message("# %d types, %zu fields agree with the document\n", API_GEN_N_TYPES, checked);
}

static void gvks(void **state)
{
	(void)state;
	NEED_SWAGGER();
	for (int i = 0; i < API_GEN_N_TYPES; i++) {
		const struct api_type *t = api_type_get(i);
		json_t *list = json_object_get(json_object_get(defs, api_type_name(t)),
					       "x-kubernetes-group-version-kind");
		assert_int_equal(t->gvk != 0, json_array_size(list) > 0);
		if (!t->gvk) {
			continue;
		}
		const struct api_gvk *g = &api_gen_gvks[t->gvk];
		bool found = false;
		size_t j;
		json_t *x;
		json_array_foreach(list, j, x)
		{
			found |= strcmp(json_string_value(json_object_get(x, "group")), api_gen_strings[g->group]) == 0 &&
				 strcmp(json_string_value(json_object_get(x, "version")), api_gen_strings[g->version]) == 0 &&
				 strcmp(json_string_value(json_object_get(x, "kind")), api_gen_strings[g->kind]) == 0;
		}
		assert_true(found);
	}
	/* Each kind of the registry is its root definition's only GVK. */
	for (size_t i = 0; i < api_kind_count(); i++) {
		const struct api_kind *k = api_kind_at(i);
		json_t *list = json_object_get(json_object_get(defs, api_type_name(api_type_get(k->type))),
					       "x-kubernetes-group-version-kind");
		assert_int_equal(json_array_size(list), 1);
		json_t *x = json_array_get(list, 0);
		assert_string_equal(json_string_value(json_object_get(x, "group")), k->group);
		assert_string_equal(json_string_value(json_object_get(x, "version")), k->version);
		assert_string_equal(json_string_value(json_object_get(x, "kind")), k->kind);
		/* The status type is the root's status field. */
		const struct api_field *st = api_type_field(api_type_get(k->type), "status");
		if (k->status_type >= 0) {
			assert_non_null(st);
			assert_int_equal(st->ref, k->status_type);
		}
		for (const struct api_subresource *s = k->subresources; s && s->name; s++) {
			if (s->kind && s->type >= 0) {
				json_t *sl = json_object_get(json_object_get(defs, api_type_name(api_type_get(s->type))),
							     "x-kubernetes-group-version-kind");
				x = json_array_get(sl, 0);
				assert_string_equal(json_string_value(json_object_get(x, "kind")), s->kind);
				assert_string_equal(json_string_value(json_object_get(x, "group")), s->group);
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_field_of_every_type),
		cmocka_unit_test(gvks),
	};
	load_swagger();
	if (!defs) {
		printf("1..1\nok 1 # SKIP swagger.json not found\n");
		json_decref(doc);
		return 0;
	}
	return cmocka_run_group_tests_name("api_swagger", tests, NULL, free_swagger);
}
