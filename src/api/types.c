/* Accessors of the generated schema tables. */
#include "src/api/types.h"

#include <errno.h>
#include <string.h>

const struct api_type *api_type_get(int type)
{
	if (type < 0 || type >= API_GEN_N_TYPES) {
		return NULL;
	}
	return &api_gen_types[type];
}

int api_type_find(const char *name)
{
	/* The generator sorts the types by definition name. */
	int lo = 0;
	int hi = API_GEN_N_TYPES - 1;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		int c = strcmp(name, api_gen_strings[api_gen_types[mid].name]);
		if (c == 0) {
			return mid;
		}
		if (c < 0) {
			hi = mid - 1;
		} else {
			lo = mid + 1;
		}
	}
	return -ENOENT;
}

const char *api_type_name(const struct api_type *t)
{
	return api_gen_strings[t->name];
}

const struct api_field *api_type_field(const struct api_type *t, const char *name)
{
	const struct api_field *f = &api_gen_fields[t->first_field];
	size_t lo = 0;
	size_t hi = t->n_fields;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, api_gen_strings[f[mid].name]);
		if (c == 0) {
			return &f[mid];
		}
		if (c < 0) {
			hi = mid;
		} else {
			lo = mid + 1;
		}
	}
	return NULL;
}

const char *api_field_name(const struct api_field *f)
{
	return api_gen_strings[f->name];
}

const char *api_field_merge_key(const struct api_field *f)
{
	return f->merge_key ? api_gen_strings[f->merge_key] : NULL;
}

size_t api_field_n_map_keys(const struct api_field *f)
{
	return f->map_keys ? api_gen_keys[f->map_keys] : 0;
}

const char *api_field_map_key(const struct api_field *f, size_t i)
{
	if (i >= api_field_n_map_keys(f)) {
		return NULL;
	}
	return api_gen_strings[api_gen_keys[f->map_keys + 1 + i]];
}

const struct api_elem *api_elem_get(uint16_t ref)
{
	if (ref >= API_GEN_N_ELEMS) {
		return NULL;
	}
	return &api_gen_elems[ref];
}

const char *api_vkind_name(enum api_vkind kind)
{
	switch (kind) {
	case API_V_STRING:
	case API_V_BYTES:
	case API_V_TIME:
	case API_V_MICROTIME:
		return "string";
	case API_V_INT32:
	case API_V_INT64:
		return "integer";
	case API_V_NUMBER:
		return "number";
	case API_V_BOOL:
		return "boolean";
	case API_V_OBJECT:
	case API_V_MAP:
	case API_V_ANY:
		return "object";
	case API_V_ARRAY:
		return "array";
	case API_V_INT_OR_STRING:
		return "integer or string";
	case API_V_QUANTITY:
		return "quantity";
	case API_V_NONE:
		break;
	}
	return "unknown";
}
