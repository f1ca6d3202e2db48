/* Validation of API objects (jansson trees) against the registry: object
 * metadata, names, labels, annotations, schema types, required and unknown
 * fields, immutable fields on update.  Results are Kubernetes' 422
 * details.causes: {reason, field, message}. */
#ifndef CAPSTAN_API_VALIDATE_H
#define CAPSTAN_API_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "src/api/registry.h"

/* metav1.CauseType values. */
enum api_cause_reason {
	API_CAUSE_REQUIRED = 0,  /* FieldValueRequired */
	API_CAUSE_INVALID,       /* FieldValueInvalid */
	API_CAUSE_NOT_SUPPORTED, /* FieldValueNotSupported */
	API_CAUSE_TYPE_INVALID,  /* FieldValueTypeInvalid */
	API_CAUSE_DUPLICATE,     /* FieldValueDuplicate */
	API_CAUSE_FORBIDDEN,     /* FieldValueForbidden */
	API_CAUSE_TOO_LONG,      /* FieldValueTooLong */
	API_CAUSE_TOO_MANY,      /* FieldValueTooMany */
};

struct api_cause {
	enum api_cause_reason reason;
	char *field;   /* "spec.containers[0].image" */
	char *message; /* "Required value", "Invalid value: \"x\": ..." */
};

/* Collected causes, plus the paths of unknown fields (kept apart: with
 * fieldValidation=Strict they make a 400 "strict decoding error", with
 * Warn they become warnings).  Embed it; api_errors_close frees it. */
struct api_errors {
	struct api_cause *causes;
	size_t n;
	size_t cap;
	char **unknown; /* field paths */
	size_t n_unknown;
	size_t cap_unknown;
};

void api_errors_init(struct api_errors *e);
void api_errors_close(struct api_errors *e);

/* Adds a cause; @detail may be NULL.  The message is built as Kubernetes'
 * field errors do: Required -> "Required value[: detail]"; Invalid, TypeInvalid
 * -> "Invalid value: <value as JSON>[: detail]"; NotSupported ->
 * "Unsupported value: <value>[: supported values: detail]"; Forbidden ->
 * "Forbidden: detail"; Duplicate -> "Duplicate value: <value>".  @value
 * is borrowed and may be NULL.  Returns 0 or -ENOMEM. */
int api_errors_add(struct api_errors *e, enum api_cause_reason reason, const char *field,
		   const json_t *value, const char *detail);

/* "FieldValueRequired" etc. */
const char *api_cause_reason_name(enum api_cause_reason reason);

/* The causes as a details.causes JSON array (new reference, NULL on OOM). */
json_t *api_errors_causes_json(const struct api_errors *e);

/* The Status message Kubernetes writes for a 422:
 * `Pod "x" is invalid: spec.containers[0].image: Required value` (several
 * causes in "[a, b]").  Returns a malloc'd string, NULL on OOM. */
char *api_errors_message(const struct api_errors *e, const char *kind, const char *name);

/* Options of api_validate. */
enum {
	API_VALIDATE_UNKNOWN = 1 << 0, /* collect unknown fields into e->unknown */
	API_VALIDATE_NO_NAME = 1 << 1, /* the name is assigned later (generateName) */
};

/* Validates @obj, a @k object to create (or the new state of an update):
 * apiVersion/kind, metadata (name or generateName per the kind's rule,
 * namespace when namespaced, labels, annotations), the schema (types,
 * required fields, unknown fields with API_VALIDATE_UNKNOWN).  Causes go
 * to @e.  Returns 0 when checked (look at e->n), -ENOMEM on OOM. */
int api_validate(const struct api_kind *k, const json_t *obj, unsigned flags, struct api_errors *e);

/* As api_validate, then the update rules: metadata.name, namespace, uid,
 * creationTimestamp and the kind's immutable fields must not change. */
int api_validate_update(const struct api_kind *k, const json_t *old_obj, const json_t *new_obj,
			unsigned flags, struct api_errors *e);

/* Checks a value against the schema of type index @type at field path
 * @path (e.g. "spec" for a PodSpec).  Returns 0 or -ENOMEM. */
int api_validate_type(int type, const json_t *value, const char *path, unsigned flags,
		      struct api_errors *e);

/* Syntax checks; each returns NULL when valid, else a static detail text. */
const char *api_check_dns1123_label(const char *s);
const char *api_check_dns1123_subdomain(const char *s);
const char *api_check_dns1035_label(const char *s);
const char *api_check_qualified_name(const char *s); /* label/annotation key */
const char *api_check_label_value(const char *s);

#endif
