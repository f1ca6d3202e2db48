/* Discovery documents of the API server (GET /api, /apis, /api/v1,
 * /apis/G/V, legacy and aggregated v2), built from the kind registry.
 *
 * Every function is pure: the documents depend only on the static kind
 * tables, so callers may cache them.  Each json_t * returned is a new
 * reference owned by the caller; NULL means out of memory (or, where
 * stated, an unknown group-version). */
#ifndef CAPSTAN_API_DISCOVERY_H
#define CAPSTAN_API_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "src/api/registry.h"

/* The Content-Type of an aggregated discovery answer; serve it only when
 * the request's Accept names it (kubectl then reads the v2 form). */
#define API_DISCOVERY_AGGREGATED_CONTENT_TYPE \
	"application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

/* One served group-version; both strings are static ("" group = core). */
struct api_group_version {
	const char *group;
	const char *version;
};

/* The served group-versions in registry order (core first, each once).
 * Fills up to @max entries of @ret (may be NULL when @max is 0) and
 * returns the total count. */
size_t api_discovery_group_versions(struct api_group_version *ret, size_t max);

/* Whether some kind is served at @group/@version. */
bool api_discovery_served(const char *group, const char *version);

/* GET /api: {"kind":"APIVersions","versions":["v1"],
 * "serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":...}]}.
 * @server_address ("10.0.0.1:6443") is copied. */
json_t *api_discovery_api_versions(const char *server_address);

/* GET /apis: the APIGroupList of every served named group. */
json_t *api_discovery_group_list(void);

/* GET /api/v1 or /apis/@group/@version: the APIResourceList with every
 * resource and subresource ("pods/status").  NULL also when nothing is
 * served at @group/@version (check api_discovery_served() first to tell
 * that from out-of-memory). */
json_t *api_discovery_resource_list(const char *group, const char *version);

/* The aggregated discovery document (kind APIGroupDiscoveryList,
 * apidiscovery.k8s.io/v2) of /api when @legacy, else of /apis. */
json_t *api_discovery_aggregated(bool legacy);

/* The storageVersionHash of @k: a stable opaque string (base64 of a
 * 64-bit hash of group/version/kind), written with its NUL to @buf. */
#define API_DISCOVERY_HASH_SIZE 13
void api_discovery_storage_version_hash(const struct api_kind *k,
					char buf[API_DISCOVERY_HASH_SIZE]);

#endif
