/* Resource helpers of the CLI's Kubernetes commands (get, apply, delete,
 * describe, wait, rollout): discovery from the server, type resolution,
 * request paths, manifests and printing.
 *
 * The CLI trusts the SERVER for what it serves: types come from the
 * legacy discovery documents (/api, /api/v1, /apis, /apis/G/V), which
 * every version of capstand and kube-apiserver serves, not from this
 * build's registry. */
#ifndef CAPSTAN_CLI_RESOURCE_H
#define CAPSTAN_CLI_RESOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "src/cli/cli.h"

#define RES_ACCEPT_TABLE "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
#define RES_JSON "application/json"
#define RES_MERGE_PATCH "application/merge-patch+json"
#define RES_STRATEGIC_PATCH "application/strategic-merge-patch+json"

/* One served resource (owned strings). */
struct res_type {
	char *group;    /* "" for the core group */
	char *version;
	char *plural;   /* "deployments" */
	char *singular; /* "deployment" */
	char *kind;     /* "Deployment" */
	json_t *short_names; /* array of strings */
	bool namespaced;
};

struct res_discovery {
	struct res_type *types;
	size_t n;
};

/* Fetches the discovery documents. Returns an exit code (printed on
 * failure); free with res_discovery_close() in every case. */
int res_discover(struct cli_http_client *c, struct res_discovery *ret);
void res_discovery_close(struct res_discovery *d);

/* Resolves @name: a plural, singular, short name or Kind (any case),
 * optionally qualified "plural.group". NULL when unknown (borrowed). */
const struct res_type *res_resolve(const struct res_discovery *d, const char *name);

/* Connects to the server, reads its discovery and resolves @type: how every
 * command on one resource type starts. *ret_client and *d are set as far as
 * they got, for the caller to release in every case (*d zeroed before);
 * *ret_t is borrowed from *d. Returns a CLI exit code. */
int res_open_type(const struct cli_global *g, const char *type,
		  struct cli_http_client **ret_client, struct res_discovery *d,
		  const struct res_type **ret_t);

/* The type of an object by its apiVersion and kind, or NULL. */
const struct res_type *res_for_object(const struct res_discovery *d, const json_t *obj);

/* Writes the path of @t (@ns ignored for cluster-scoped types; NULL = all
 * namespaces), with @name (escaped; NULL = the collection) and
 * @subresource (may be NULL). Returns 0 or -ENAMETOOLONG. */
int res_path(const struct res_type *t, const char *ns, const char *name,
	     const char *subresource, char *buf, size_t len);

/* Appends "?"/"&" + key=escaped value to the path in @buf. */
int res_query(char *buf, size_t len, const char *key, const char *value);

/* The namespace the kubeconfig's context names, else "default"
 * (borrowed from a static). */
const char *res_default_namespace(const struct cli_global *g);

/* Sends a request and parses a JSON answer. A 2xx JSON answer goes to
 * *ret_obj (new reference; NULL when not JSON). A non-2xx answer is
 * printed and its exit code returned, except a 404 when @quiet_404 (then
 * CLI_EXIT_NOT_FOUND is returned silently). */
int res_call(struct cli_http_client *c, const char *method, const char *path,
	     const char *content_type, const char *accept, const json_t *body,
	     bool quiet_404, json_t **ret_obj);

/* Reads manifests from FILE, every .yaml, .yml and .json file of DIR (sorted),
 * or "-" (stdin): multi-document YAML or JSON; "List" objects are
 * flattened. Returns an exit code (CLI_EXIT_INVALID for bad input,
 * printed). *ret_objs is a new array on success. */
int res_load_manifests(const char *path, json_t **ret_objs);

/* Prints @obj as "json" (indented) or "yaml". */
void res_print(const json_t *obj, const char *format);

/* String helpers over trees: the string at a dotted path, or NULL. */
const char *res_str(const json_t *obj, const char *path);

/* Parses a duration ("30s", "2m", "500ms", plain seconds). */
int res_parse_duration(const char *s, uint64_t *ret_ms);

/* Called by res_watch_object() with the object's state: @obj is the
 * object (borrowed) or NULL once it is absent or deleted. Returns -1 to
 * keep waiting, or the exit code to end with. */
typedef int (*res_watch_cb)(const json_t *obj, void *data);

/* Gets the object, then watches it (fieldSelector metadata.name) until
 * @cb returns an exit code or @deadline_ms (res_now_ms() clock; 0 =
 * none) passes, which prints "timed out waiting for the condition" and
 * returns CLI_EXIT_FAILURE. */
int res_watch_object(struct cli_http_client *c, const struct res_type *t, const char *ns,
		     const char *name, uint64_t deadline_ms, res_watch_cb cb, void *data);

/* Monotonic milliseconds. */
uint64_t res_now_ms(void);

#endif
