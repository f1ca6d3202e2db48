/* The OpenAPI v2 (Swagger 2.0) document of the API server (GET /openapi/v2),
 * as JSON and as the gnostic openapi_v2.Document protobuf that kubectl
 * 1.27 and 1.28 fetch for create, apply and explain.
 *
 * The document is derived from the OpenAPI v3 documents (src/api/openapi.h),
 * so both describe the same definitions and paths: definitions are the
 * union of every group-version's components.schemas (DeleteOptions carries
 * the GVKs of every group), and paths the union of their paths.  Like the
 * v3 documents it depends only on the static tables: the output is the
 * same bytes on every call of a build, so callers compute it once and
 * cache it.
 *
 * Serving (what Kubernetes' handler does and kubectl expects):
 *   Accept naming API_OPENAPI_V2_PROTOBUF_ACCEPT or
 *   API_OPENAPI_V2_PROTOBUF_TYPE -> 200, Content-Type
 *   API_OPENAPI_V2_PROTOBUF_TYPE, body from api_openapi_v2_protobuf();
 *   application/json, a wildcard or no Accept -> 200, Content-Type
 *   application/json, body api_openapi_dump(api_openapi_v2_json());
 *   anything else -> 406.  Both carry the same ETag (quoted) and
 *   "Vary: Accept"; gzip is optional (clients send Accept-Encoding: gzip). */
#ifndef CAPSTAN_API_OPENAPI_V2_H
#define CAPSTAN_API_OPENAPI_V2_H

#include <stddef.h>

#include <jansson.h>

/* The Accept kubectl sends (note the '@'), and the Content-Type to answer
 * with for either spelling. */
#define API_OPENAPI_V2_PROTOBUF_ACCEPT "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
#define API_OPENAPI_V2_PROTOBUF_TYPE "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"

/* The prefix of every schema reference inside the document. */
#define API_OPENAPI_V2_REF_PREFIX "#/definitions/"

/* An ETag value: '"', 16 upper-case hex digits, '"' and a NUL. */
#define API_OPENAPI_V2_ETAG_SIZE 19

/* The Swagger 2.0 document as JSON: swagger, info, paths (every resource
 * and subresource with get/put/post/delete/patch operations, their
 * parameters, consumes/produces and GVK extension) and definitions
 * (properties, types, formats, required, $ref "#/definitions/NAME", the
 * x-kubernetes-* extensions).  No description texts.  A new reference
 * owned by the caller, or NULL (out of memory). */
json_t *api_openapi_v2_json(void);

/* The protobuf encoding (gnostic openapi_v2.Document, the format of
 * kube-openapi's ToProtoBinary) of api_openapi_v2_json(): vendor
 * extensions are NamedAny values holding YAML text, object keys are
 * written in sorted order.  On success *ret_buf (malloc'ed, the caller
 * frees it) and *ret_len receive the bytes.
 * Errors: -ENOMEM; -EINVAL if the JSON document holds something the
 * encoder does not know (a bug). */
int api_openapi_v2_protobuf(void **ret_buf, size_t *ret_len);

/* Encodes @doc, a Swagger 2.0 document in the shape api_openapi_v2_json()
 * returns (borrowed), like api_openapi_v2_protobuf().  Same errors. */
int api_openapi_v2_encode(const json_t *doc, void **ret_buf, size_t *ret_len);

/* The ETag of the document: the hash of @buf (its protobuf bytes, which
 * change exactly when the JSON form does) as a quoted string, written
 * with its NUL to @ret_etag.  Serve the same ETag for both forms. */
void api_openapi_v2_etag(const void *buf, size_t len, char ret_etag[API_OPENAPI_V2_ETAG_SIZE]);

#endif
