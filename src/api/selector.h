/* Label and field selectors: parsing (query strings, structured
 * LabelSelector objects) and matching straight on stored msgpack objects
 * or on jansson trees.
 *
 * Ownership: every parse/convert function returns a new heap object in
 * *ret_* that the caller frees with api_selector_free / api_fieldsel_free
 * (both accept NULL).  Inputs are borrowed.  Parsed selectors are
 * read-only afterwards, so one may be shared by many matches.
 *
 * Errors: 0, -EINVAL (bad selector: a message fit for a 400 Status
 * goes to @err when it is not NULL; truncated to @err_size) or -ENOMEM.
 *
 * Matching never fails: malformed msgpack behaves as if the labels (or the
 * field) were absent. */
#ifndef CAPSTAN_API_SELECTOR_H
#define CAPSTAN_API_SELECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "src/api/registry.h"

struct api_errors;

/* ---------------------------------------------------------------- labels */

enum api_selector_op {
	API_SELECTOR_EQUALS = 0, /* key=v, key==v (one value) */
	API_SELECTOR_NOT_EQUALS, /* key!=v: also true when key is absent */
	API_SELECTOR_IN,         /* key in (v1,v2) */
	API_SELECTOR_NOT_IN,     /* key notin (v1,v2): also true when absent */
	API_SELECTOR_EXISTS,     /* key */
	API_SELECTOR_NOT_EXISTS, /* !key */
	API_SELECTOR_GT,         /* key>N: the label is an integer above N */
	API_SELECTOR_LT,         /* key<N */
};

struct api_selector_req {
	char *key;
	enum api_selector_op op;
	char **values; /* sorted, unique; none for (NOT_)EXISTS */
	size_t n_values;
	long long number; /* the value of GT/LT */
};

/* A conjunction of requirements, sorted by key (stable).  n == 0 matches
 * every object, unless @nothing is set (the null LabelSelector). */
struct api_selector {
	bool nothing;
	struct api_selector_req *reqs;
	size_t n;
};

/* Parses the labelSelector query syntax: `a=b`, `a==b`, `a!=b`,
 * `a in (x,y)`, `a notin (x,y)`, `a`, `!a`, `a>1`, `a<1`, joined by `,`
 * (AND), whitespace between tokens ignored.  Keys must be qualified names
 * and values valid label values (<= 63 characters), as Kubernetes checks.
 * "" (or NULL) gives a selector that matches everything. */
int api_selector_parse(const char *text, struct api_selector **ret_sel, char *err,
		       size_t err_size);

/* Converts a structured metav1.LabelSelector ({matchLabels,
 * matchExpressions: [{key, operator, values}]}) as Deployment, ReplicaSet,
 * DaemonSet, StatefulSet and NetworkPolicy specs carry it, like
 * Kubernetes' LabelSelectorAsSelector:
 * - @ls NULL or JSON null: a selector that matches NOTHING;
 * - {} (no matchLabels, no matchExpressions): matches EVERYTHING;
 * - otherwise the AND of matchLabels (k=v) and matchExpressions (In,
 *   NotIn, Exists, DoesNotExist; In/NotIn need values, Exists and
 *   DoesNotExist must have none).
 * Anything else (unknown operator, bad key or value, wrong JSON types) is
 * -EINVAL with a message. */
int api_selector_from_json(const json_t *ls, struct api_selector **ret_sel, char *err,
			   size_t err_size);

/* Validates a structured LabelSelector found at field path @path
 * ("spec.selector") the way Kubernetes' ValidateLabelSelector does,
 * adding 422 causes to @e: matchLabels keys and values,
 * matchExpressions[i].key, .operator ("not a valid selector operator"),
 * .values (Required for In/NotIn, Forbidden for Exists/DoesNotExist, each
 * a valid label value).  A NULL or JSON null @ls adds nothing.
 * Returns 0 (look at e->n) or -ENOMEM. */
int api_selector_validate_json(const json_t *ls, const char *path, struct api_errors *e);

void api_selector_free(struct api_selector *sel);

/* Whether the msgpack object @obj (its metadata.labels) matches.  A NULL
 * @sel means "no selector given" and matches everything. */
bool api_selector_match_msgpack(const struct api_selector *sel, const void *obj, size_t len);

/* The same on a msgpack labels map itself (e.g. a template's labels);
 * @labels may be NULL (no labels). */
bool api_selector_match_labels_msgpack(const struct api_selector *sel, const void *labels,
				       size_t len);

/* Whether the jansson labels object @labels (borrowed; NULL or not an
 * object = no labels) matches.  NULL @sel matches everything. */
bool api_selector_match_json(const struct api_selector *sel, const json_t *labels);

/* The canonical text of @sel as Kubernetes prints it (requirements sorted
 * by key, "a=b,c in (x,y),!d"); "" for an empty selector.  For a
 * "nothing" selector also "" (Kubernetes has no text for it).  Returns a
 * malloc'd string, NULL on OOM. */
char *api_selector_string(const struct api_selector *sel);

/* ---------------------------------------------------------------- fields */

struct api_fieldsel_term {
	char *field; /* as written: "spec.nodeName" */
	char *value; /* unescaped */
	bool not_equal;
	/* Where to read it: @path, or when that is empty @alt_path (Event
	 * "source" = source.component, else reportingComponent). */
	const char *path;
	const char *alt_path;
	/* What an absent or null field compares as: "" for strings, "false"
	 * for booleans, "0" for integers (the Go zero value). */
	const char *zero;
};

/* A conjunction of field terms; n == 0 matches everything. */
struct api_fieldsel {
	struct api_fieldsel_term *terms;
	size_t n;
};

/* Parses the fieldSelector query syntax for objects of kind @k: `f=v`,
 * `f==v`, `f!=v` joined by `,`; in values `\,` `\=` `\\` escape those
 * characters (an unescaped `=` or `,`, or another escape, is an error).
 * No whitespace is trimmed, as in Kubernetes.  Allowed fields are
 * metadata.name, metadata.namespace and api_kind_field_selectable(@k);
 * anything else is -EINVAL "field label not supported: <f>".  @k NULL
 * allows only metadata.name and metadata.namespace.  "" (or NULL) matches
 * everything. */
int api_fieldsel_parse(const struct api_kind *k, const char *text, struct api_fieldsel **ret_sel,
		       char *err, size_t err_size);

void api_fieldsel_free(struct api_fieldsel *sel);

/* Whether the msgpack object @obj matches.  Strings compare as bytes,
 * booleans as "true"/"false", integers in decimal; a missing field or null
 * compares as its zero value ("" for spec.nodeName: unscheduled pods).
 * NULL @sel matches everything. */
bool api_fieldsel_match_msgpack(const struct api_fieldsel *sel, const void *obj, size_t len);

/* The same on a jansson object. */
bool api_fieldsel_match_json(const struct api_fieldsel *sel, const json_t *obj);

/* The value an object must have in @field for @sel to match (a `f=v`
 * term), or NULL: lets a list narrow its scan (metadata.name,
 * metadata.namespace, spec.nodeName).  Borrowed from @sel. */
const char *api_fieldsel_exact(const struct api_fieldsel *sel, const char *field);

#endif
