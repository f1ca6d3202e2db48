/* OpenAPI v3 documents of the API server (GET /openapi/v3 and its
 * per-group-version documents), built from the type and kind registries.
 *
 * The documents depend only on the static tables, so they and their
 * hashes never change within a build: callers may compute each once and
 * cache it.  Each json_t * returned is a new reference owned by the
 * caller; NULL means out of memory (or, where stated, an unknown
 * group-version).  No text from Kubernetes' own documents is included;
 * schemas carry no descriptions. */
#ifndef CAPSTAN_API_OPENAPI_H
#define CAPSTAN_API_OPENAPI_H

#include <stddef.h>

#include <jansson.h>

/* The hash of a document: 16 upper-case hex digits and a NUL. */
#define API_OPENAPI_HASH_SIZE 17

/* The prefix of every schema reference inside a document. */
#define API_OPENAPI_REF_PREFIX "#/components/schemas/"

/* GET /openapi/v3: {"paths":{"api/v1":{"serverRelativeURL":
 * "/openapi/v3/api/v1?hash=H"},"apis/apps/v1":{...},...}} for every
 * served group-version.  Builds every document to hash it: cache it. */
json_t *api_openapi_v3_paths(void);

/* GET /openapi/v3/api/v1 (@group "") or /openapi/v3/apis/@group/@version:
 * an OpenAPI 3.0 document with components.schemas for every type
 * reachable from the group-version's kinds and subresources, the meta
 * types, a <Kind>List per kind, and paths for every resource with their
 * operations (every post/put/patch declares the fieldValidation query
 * parameter).  NULL also when nothing is served at @group/@version. */
json_t *api_openapi_v3_document(const char *group, const char *version);

/* The canonical text of @doc (compact, sorted keys: what the hash
 * covers), as a new malloc'ed NUL-terminated string, or NULL (ENOMEM).
 * @ret_len, when not NULL, receives its length. */
char *api_openapi_dump(const json_t *doc, size_t *ret_len);

/* The hash of the canonical text of @doc (64-bit FNV-1a, hex) into @buf. */
void api_openapi_text_hash(const char *text, size_t len, char buf[API_OPENAPI_HASH_SIZE]);

/* The hash of api_openapi_v3_document(@group, @version) into @ret_hash.
 * Returns 0, -ENOENT when nothing is served there, or -ENOMEM. */
int api_openapi_v3_document_hash(const char *group, const char *version,
				 char ret_hash[API_OPENAPI_HASH_SIZE]);

#endif
