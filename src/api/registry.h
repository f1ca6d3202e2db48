/* The kind registry: one declarative table per served kind (GVK, resource
 * names, scope, subresources, schema root, immutable fields, Table columns,
 * selectable fields) and lookups over them.
 *
 * Every table is static and read-only; nothing here allocates except the
 * Table helpers, which return new jansson references owned by the caller. */
#ifndef CAPSTAN_API_REGISTRY_H
#define CAPSTAN_API_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "src/api/types.h"

/* Verbs, as discovery lists them. */
enum {
	API_VERB_GET = 1 << 0,
	API_VERB_LIST = 1 << 1,
	API_VERB_WATCH = 1 << 2,
	API_VERB_CREATE = 1 << 3,
	API_VERB_UPDATE = 1 << 4,
	API_VERB_PATCH = 1 << 5,
	API_VERB_DELETE = 1 << 6,
	API_VERB_DELETECOLLECTION = 1 << 7,
};
#define API_VERBS_ALL 0xffu
#define API_VERBS_GET_UPDATE (API_VERB_GET | API_VERB_UPDATE | API_VERB_PATCH)

/* How metadata.name is checked. */
enum api_name_rule {
	API_NAME_DNS_SUBDOMAIN = 0, /* RFC 1123 subdomain, <= 253 */
	API_NAME_DNS_LABEL,         /* RFC 1123 label, <= 63 */
	API_NAME_DNS1035_LABEL,     /* RFC 1035 label (Service), <= 63 */
};

struct api_subresource {
	const char *name;                   /* "status", "scale", "binding", "log" */
	const char *group, *version, *kind; /* of the body; kind NULL = the parent */
	int type;                           /* type index of the body, -1 = none (log) */
	unsigned verbs;                     /* API_VERB_* */
};

/* A Table cell printer: returns a new reference (string, integer...) for
 * @obj at Unix time @now (for AGE), or NULL for an empty cell. */
typedef json_t *(*api_cell_fn)(const json_t *obj, int64_t now);

/* One column of the Table view (meta.k8s.io/v1 TableColumnDefinition). */
struct api_column {
	const char *name;        /* "NAME" */
	const char *type;        /* "string" | "integer" | "number" | "boolean" | "date" */
	const char *format;      /* "name" for the NAME column, else "" */
	int priority;            /* 0 = always, 1 = with -o wide */
	const char *description; /* short, our own words */
	const char *path;        /* dotted path of a plain cell ("spec.type") */
	api_cell_fn print;       /* computed cell; wins over path */
};

/* An immutable field: any change on update is FieldValueInvalid
 * ("field is immutable").  API_IMM_ONCE_SET: only once it was set. */
enum { API_IMM_ONCE_SET = 1 << 0 };
struct api_immutable {
	const char *path; /* dotted path from the object root */
	unsigned flags;
};

struct api_errors;

struct api_kind {
	const char *group; /* "" for the core group */
	const char *version;
	const char *kind;
	const char *plural;   /* the resource: "pods" */
	const char *singular; /* "pod" */
	const char *const *short_names; /* NULL-terminated, may be NULL */
	const char *const *categories;  /* NULL-terminated, may be NULL */
	bool namespaced;
	unsigned verbs;                               /* API_VERB_* */
	const struct api_subresource *subresources;   /* name NULL ends */
	int type;                                     /* root type index */
	int status_type;                              /* -1 when none */
	enum api_name_rule name_rule;
	const struct api_immutable *immutable;        /* path NULL ends; may be NULL */
	/* Kind-specific update rules beyond the immutable list; may be NULL.
	 * Adds causes to @errs; returns 0 or -ENOMEM. */
	int (*validate_update)(const json_t *old_obj, const json_t *new_obj, struct api_errors *errs);
	const struct api_column *columns;             /* name NULL ends */
	const char *const *selectable_fields;         /* NULL-terminated, besides
	                                                 metadata.name/namespace */
};

/* All kinds, in a stable order (core first), and their count. */
size_t api_kind_count(void);
const struct api_kind *api_kind_at(size_t i);

/* Lookups; each returns NULL when nothing matches.  Matching is exact
 * (case-sensitive) like Kubernetes' REST paths. */
const struct api_kind *api_kind_by_resource(const char *group, const char *version,
					    const char *plural);
const struct api_kind *api_kind_by_gvk(const char *group, const char *version, const char *kind);
/* By kind name alone (first match in registry order), e.g. "Deployment". */
const struct api_kind *api_kind_by_kind(const char *kind);
/* By plural, singular or short name, any group ("po", "pod", "pods"),
 * as kubectl resolves a resource argument; case-insensitive. */
const struct api_kind *api_kind_by_name(const char *name);

/* The subresource @name of @k, or NULL. */
const struct api_subresource *api_kind_subresource(const struct api_kind *k, const char *name);

/* "v1" for core, "apps/v1" otherwise: the apiVersion of @k (static). */
const char *api_kind_api_version(const struct api_kind *k);

/* Whether @path ("spec.nodeName") is a selectable field of @k
 * (metadata.name and metadata.namespace always are). */
bool api_kind_field_selectable(const struct api_kind *k, const char *path);

/* The value at dotted @path in @obj (borrowed), or NULL. */
json_t *api_json_path(const json_t *obj, const char *path);

/* The Table columnDefinitions of @k: a new JSON array. */
json_t *api_table_columns(const struct api_kind *k);

/* The cells of one Table row for @obj at Unix time @now: a new JSON array
 * with one value per column (null for an empty cell). */
json_t *api_table_cells(const struct api_kind *k, const json_t *obj, int64_t now);

/* Kubernetes' short human duration ("5s", "3m20s", "2d") of @seconds,
 * written to @buf.  "<unknown>" for negative input. */
void api_human_duration(int64_t seconds, char *buf, size_t size);

/* The AGE cell: the human duration since metadata.creationTimestamp. */
json_t *api_cell_age(const json_t *obj, int64_t now);

/* Parses an RFC 3339 UTC time ("2024-01-02T03:04:05Z", fractions allowed)
 * into Unix seconds.  Returns 0 or -EINVAL. */
int api_parse_time(const char *s, int64_t *ret_seconds);

#endif
