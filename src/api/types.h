/* Schema tables of the API types: fields, value kinds, patch facts. */
#ifndef CAPSTAN_API_TYPES_H
#define CAPSTAN_API_TYPES_H

#include <stddef.h>
#include <stdint.h>

/* The kind of a JSON value as the API schema declares it. */
enum api_vkind {
	API_V_NONE = 0,
	API_V_STRING,
	API_V_INT32,
	API_V_INT64,
	API_V_NUMBER,        /* double */
	API_V_BOOL,
	API_V_OBJECT,        /* ref = type index */
	API_V_ARRAY,         /* ref = element index (api_gen_elems) */
	API_V_MAP,           /* string keys; ref = element index */
	API_V_INT_OR_STRING, /* intstr.IntOrString */
	API_V_QUANTITY,      /* resource.Quantity: string (or number) */
	API_V_TIME,          /* metav1.Time, RFC 3339 seconds */
	API_V_MICROTIME,     /* metav1.MicroTime, RFC 3339 microseconds */
	API_V_BYTES,         /* base64 string */
	API_V_ANY,           /* free-form object (FieldsV1, RawExtension) */
};

/* Field flags. */
enum {
	API_F_REQUIRED = 1 << 0,
	API_F_PATCH_MERGE = 1 << 1,       /* x-kubernetes-patch-strategy merge */
	API_F_PATCH_RETAIN_KEYS = 1 << 2, /* ... retainKeys */
	API_F_PATCH_REPLACE = 1 << 3,     /* ... replace */
	API_F_LIST_ATOMIC = 1 << 4,       /* x-kubernetes-list-type */
	API_F_LIST_SET = 1 << 5,
	API_F_LIST_MAP = 1 << 6,
	API_F_MAP_ATOMIC = 1 << 7, /* x-kubernetes-map-type */
	API_F_MAP_GRANULAR = 1 << 8,
};

/* Type flags. */
enum {
	API_TF_MAP_ATOMIC = 1 << 0, /* the struct is replaced as a whole */
};

struct api_elem {
	uint8_t kind; /* enum api_vkind */
	uint16_t ref;
};

struct api_field {
	uint16_t name;      /* string id */
	uint8_t kind;       /* enum api_vkind */
	uint16_t ref;       /* type index (OBJECT) or element index (ARRAY, MAP) */
	uint16_t flags;     /* API_F_* */
	uint16_t merge_key; /* string id of x-kubernetes-patch-merge-key, 0 = none */
	uint16_t map_keys;  /* offset in api_gen_keys (count, ids...), 0 = none */
};

struct api_gvk {
	uint16_t group, version, kind; /* string ids */
};

struct api_type {
	uint16_t name;        /* string id of the OpenAPI definition name */
	uint16_t first_field; /* index in api_gen_fields, sorted by name */
	uint16_t n_fields;
	uint16_t gvk; /* index in api_gen_gvks, 0 = not a top-level kind */
	uint8_t flags; /* API_TF_* */
};

#include "src/api/types_gen.h"

/* The generated tables (src/api/types_gen.c).  String id 0 is "". */
extern const char *const api_gen_strings[API_GEN_N_STRINGS];
extern const struct api_elem api_gen_elems[API_GEN_N_ELEMS];
extern const uint16_t api_gen_keys[];
extern const struct api_gvk api_gen_gvks[API_GEN_N_GVKS + 1];
extern const struct api_field api_gen_fields[API_GEN_N_FIELDS];
extern const struct api_type api_gen_types[API_GEN_N_TYPES];

/* The type with this index; NULL when out of range. */
const struct api_type *api_type_get(int type);

/* The index of the type with this OpenAPI definition name
 * ("io.k8s.api.core.v1.Pod"), or -ENOENT. */
int api_type_find(const char *name);

/* The definition name of a type. */
const char *api_type_name(const struct api_type *t);

/* The field @name of @t (binary search), or NULL. */
const struct api_field *api_type_field(const struct api_type *t, const char *name);

/* The name of a field. */
const char *api_field_name(const struct api_field *f);

/* The patch merge key of a field, or NULL. */
const char *api_field_merge_key(const struct api_field *f);

/* The list-map keys of a field: their count, and the i-th one. */
size_t api_field_n_map_keys(const struct api_field *f);
const char *api_field_map_key(const struct api_field *f, size_t i);

/* The element of an ARRAY or MAP field or element. */
const struct api_elem *api_elem_get(uint16_t ref);

/* A short name of a value kind for messages ("string", "integer", ...). */
const char *api_vkind_name(enum api_vkind kind);

#endif
