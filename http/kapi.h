/* The Kubernetes REST API of a master: /api/v1/... and /apis/G/V/...
 * (get, list, watch, create, update, delete, deletecollection), with
 * discovery under /api and /apis. Private to http/: server.c routes
 * those paths here; the kapi_*.c files share the helpers below.
 *
 * Objects live in the store under /registry/<plural>/[<ns>/]<name> as
 * msgpack without metadata.resourceVersion: the entry's mod_rev is the
 * resourceVersion, injected whenever an object is encoded for a client.
 *
 * Authorization: server.c lets any authenticated user in for now; RBAC
 * will sit in s->authorize (the verb and path are already passed).
 */
#ifndef CAPSTAN_HTTP_KAPI_H
#define CAPSTAN_HTTP_KAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/lib/codec.h"
#include "http/internal.h"
#include "src/api/alloc.h"
#include "src/api/registry.h"

/* ------------------------------------------------------------ entry points */

/* Handles a request under /api, /apis or /openapi (authenticated). */
void http__kapi(struct http_request *hr);

/* Server start: subscribes to leadership, so that a new leader creates
 * the default namespaces (create-only: idempotent). Errors: -ENOMEM. */
int http__kapi_start(struct http_server *s);

/* Server close: ends the API watches and forgets the server in the
 * leadership subscription (the replica outlives the server). */
void http__kapi_close(struct http_server *s);

/* Nothing since the API watches joined the server's watch streams
 * (watch.c; http__watch_tick runs them): kept for server.c. */
void http__kapi_tick(struct http_server *s, uint64_t now_ms);

/* ------------------------------------------------------------ shared */

/* What a request addresses. Strings are NUL-terminated, in the request's
 * pool. */
struct kapi_target {
	const struct api_kind *kind;
	const struct api_subresource *sub; /* NULL: the resource itself */
	const char *ns;                    /* NULL: none in the path */
	const char *name;                  /* NULL: the collection */
	char *key;      /* the object's key, or the collection's key prefix */
	size_t key_len;
};

/* The qualified resource of @k as Kubernetes names it in messages:
 * "pods", "deployments.apps". Static buffer per call site not needed:
 * written to @buf. */
const char *kapi__resource_name(const struct api_kind *k, char *buf, size_t size);

/* Answers a Status with optional details (name, group, kind, causes;
 * @causes taken). @name may be NULL. */
void kapi__send_error(h2o_req_t *req, int code, const char *reason, const struct api_kind *k,
		      const char *name, json_t *causes, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

/* 404 `pods "x" not found`. */
void kapi__send_not_found(h2o_req_t *req, const struct api_kind *k, const char *name);

/* Output formats of an answer, from the Accept header (kapi__format). */
enum kapi_format {
	KAPI_JSON,
	KAPI_YAML,
	KAPI_TABLE,         /* meta.k8s.io/v1 Table as JSON */
	KAPI_MSGPACK,       /* KAPI_MSGPACK_MEDIA_TYPE */
	KAPI_TABLE_MSGPACK, /* the Table as msgpack */
};

/* msgpack as a wire format (objects, lists, tables, watch events, Status
 * errors, and request bodies: create/update objects, merge patches). The
 * answer's Content-Type is always this one; Accept and Content-Type may
 * also say application/msgpack or application/x-msgpack. */
#define KAPI_MSGPACK_MEDIA_TYPE "application/vnd.msgpack"

static inline bool kapi__is_msgpack(enum kapi_format f)
{
	return f == KAPI_MSGPACK || f == KAPI_TABLE_MSGPACK;
}

static inline bool kapi__is_table(enum kapi_format f)
{
	return f == KAPI_TABLE || f == KAPI_TABLE_MSGPACK;
}

/* Whether the media type [p, p+n) (no parameters) names msgpack. */
bool kapi__media_is_msgpack(const char *p, size_t n);

/* The first media range of Accept that can be served decides: JSON
 * (also for *, and when nothing matches), YAML, msgpack, each with
 * as=Table;g=meta.k8s.io for the Table (JSON or msgpack). */
enum kapi_format kapi__format(h2o_req_t *req);

/* The Content-Type of answers in @f. */
const char *kapi__content_type(enum kapi_format f);

/* Appends the JSON of the stored object @mp with metadata.resourceVersion
 * set to @rv (0: left out). Errors of the codec; on error @out is as it
 * was. */
int kapi__encode_json(const void *mp, size_t len, uint64_t rv, struct buf *out);

/* The same in msgpack: the stored bytes are copied, only metadata is
 * rewritten (no tree, no JSON). */
int kapi__encode_msgpack(const void *mp, size_t len, uint64_t rv, struct buf *out);

/* kapi__encode_json or kapi__encode_msgpack per @f (Table and YAML: JSON). */
int kapi__encode(enum kapi_format f, const void *mp, size_t len, uint64_t rv, struct buf *out);

/* Appends only the metadata of the stored object (resourceVersion put in)
 * as JSON or msgpack per @f. */
int kapi__encode_meta(enum kapi_format f, const void *mp, size_t len, uint64_t rv,
		      struct buf *out);

/* A new tree of the stored object with metadata.resourceVersion = @rv
 * (0: none). NULL on malformed input or OOM. */
json_t *kapi__tree(const void *mp, size_t len, uint64_t rv);

/* Answers one object (tree borrowed) as JSON, YAML or msgpack per Accept. */
void kapi__send_tree(h2o_req_t *req, int code, const json_t *obj);

/* Answers with the bytes of @b, taken (freed with the request; no copy);
 * @content_type static. */
void kapi__send_buf(h2o_req_t *req, int code, const char *content_type, struct buf *b);

/* Answers the stored object @mp with resourceVersion @rv, per Accept
 * (Table included). */
void kapi__send_stored(struct http_request *hr, const struct kapi_target *t, int code,
		       const void *mp, size_t len, uint64_t rv);

/* A meta.k8s.io/v1 Table written row by row straight from stored objects,
 * as JSON or msgpack: begin, a row per object, end. Only the computed
 * cells of a row need a tree; they are cached per server by key and
 * mod_rev when they do not depend on the time. Errors: -ENOMEM, codec
 * errors (a failed row leaves @out as it was). */
struct kapi_cells;
struct kapi_table {
	struct buf *out;
	const struct api_kind *k;
	struct kapi_cells *cache; /* NULL: none */
	size_t ncols;
	size_t rows_at; /* msgpack: offset of the rows' array32 header */
	uint32_t rows;
	int include; /* includeObject: 0 None, 1 Metadata, 2 Object */
	int64_t now;
	bool msgpack;
	bool need_tree;
};
int kapi__table_begin(struct kapi_table *tw, struct buf *out, struct http_request *hr,
		      const struct api_kind *k, enum kapi_format f);
/* @key (may be NULL: no caching) and @rv (the mod_rev) name the object. */
int kapi__table_row(struct kapi_table *tw, const char *key, size_t key_len, const void *mp,
		    size_t len, uint64_t rv);
/* Closes the rows; metadata gets resourceVersion @rev (0: none) and
 * continue @cont (NULL: none). */
int kapi__table_end(struct kapi_table *tw, uint64_t rev, const char *cont);

/* A cache of computed cells of its own (each server has one, used by
 * kapi__table_begin; tests set tw->cache): NULL on OOM. */
struct kapi_cells *kapi__cells_new(void);
void kapi__cells_free(struct kapi_cells *c); /* accepts NULL */
size_t kapi__cells_count(const struct kapi_cells *c);

/* Query helpers: false when answered (400). */
bool kapi__query_flag(struct http_request *hr, const char *name, bool *ret);
bool kapi__query_u64(struct http_request *hr, const char *name, bool *ret_present,
		     uint64_t *ret);

/* Label and field selectors of a request: parsed once, matched against
 * stored objects. */
struct kapi_selector;
/* Parses ?labelSelector and ?fieldSelector; *ret NULL when neither is
 * given. false when answered (400). Freed with the request. */
bool kapi__selector(struct http_request *hr, const struct api_kind *k,
		    struct kapi_selector **ret);
bool kapi__selector_match(const struct kapi_selector *sel, const void *mp, size_t len);

/* RFC 3339 UTC "now" into @buf (>= 21 bytes). */
void kapi__now_rfc3339(char *buf, size_t size);

/* Forgets the watch events kept encoded for @st (kapi_watch.c): its
 * server closes, and a later store may reuse the address and revisions. */
void kapi__watch_forget(const struct store *st);

/* Verbs (kapi_read.c, kapi_write.c, kapi_watch.c). */
void kapi__get(struct http_request *hr, struct kapi_target *t);
void kapi__list(struct http_request *hr, struct kapi_target *t);
void kapi__watch(struct http_request *hr, struct kapi_target *t);
void kapi__create(struct http_request *hr, struct kapi_target *t);
void kapi__update(struct http_request *hr, struct kapi_target *t);
void kapi__delete(struct http_request *hr, struct kapi_target *t);
void kapi__delete_collection(struct http_request *hr, struct kapi_target *t);
void kapi__patch(struct http_request *hr, struct kapi_target *t);

/* Discovery (kapi_discovery.c): /api (@legacy, @group NULL), /api/v1
 * (@legacy, "", "v1"), /apis (@group NULL), /apis/G (@version NULL),
 * /apis/G/V. */
void kapi__discovery(struct http_request *hr, bool legacy, const char *group,
		     const char *version);

/* OpenAPI v3 (kapi_discovery.c): /openapi/v3 (@version NULL),
 * /openapi/v3/api/v1 ("", "v1"), /openapi/v3/apis/G/V. */
void kapi__openapi(struct http_request *hr, const char *group, const char *version);

/* GET /openapi/v2: gnostic protobuf when Accept names it (kubectl 1.27 and
 * 1.28), JSON otherwise. Built once and kept. */
void kapi__openapi_v2(struct http_request *hr);

/* Creates the default namespaces (leader; kapi_write.c). */
void kapi__bootstrap_namespaces(struct replica *r);

/* Creates the `kubernetes` Service of namespace default (create-only)
 * with the first address of @a's range, port 443 "https" -> @port; marks
 * the address in @a (borrowed). Leader; kapi_write.c. */
void kapi__bootstrap_kubernetes_service(struct replica *r, struct api_alloc *a,
					const struct api_alloc_rand *rnd, int port);

/* The Service allocators of this server's current leader term (kapi.c):
 * one long-lived set per term, built from the stored Services when
 * leadership starts. NULL when the replica does not lead (yet). *@ret_gen
 * names the term for kapi__alloc_at; *@ret_rnd is the term's random
 * source. Borrowed: valid until the loop runs again. */
struct api_alloc *kapi__alloc(struct http_server *s, const struct api_alloc_rand **ret_rnd,
			      uint64_t *ret_gen);
/* The allocators if term @gen still runs, else NULL (claims of an ended
 * term ended with it): for releases after a write completes. */
struct api_alloc *kapi__alloc_at(struct http_server *s, uint64_t gen);

/* The scale subresource: the autoscaling/v1 Scale of the stored object
 * @mp at resourceVersion @rv (kapi.c; NULL on malformed input or OOM).
 * kapi__send_stored answers it for a target whose sub is "scale". */
json_t *kapi__scale_tree(const struct kapi_target *t, const void *mp, size_t len, uint64_t rv);
/* PUT/PATCH of .../scale: sets spec.replicas of the parent (kapi_write.c). */
void kapi__write_scale(struct http_request *hr, struct kapi_target *t);

/* GET pods/<name>/log, proxied to the node agent (kapi_proxy.c). */
void kapi__pod_log(struct http_request *hr, struct kapi_target *t);
/* pods/<name>/exec over a WebSocket, run by the node agent (kapi_proxy.c). */
void kapi__pod_exec(struct http_request *hr, struct kapi_target *t);

#endif
