/* create, update, patch, delete and deletecollection of API objects.
 *
 * Writes run on the leader (a follower forwards the request as it came,
 * before decoding anything: http__write_here), except creates, which a
 * follower prepares itself and sends as a store command in the leader's
 * next batch of writes (forward_create() below). The leader decodes the body
 * (JSON, YAML or protobuf), defaults and validates it, sets what the
 * server owns (uid, creationTimestamp, generation, deletionTimestamp) and
 * proposes one compare-and-swap on the object's key: create-only for
 * create, "mod_rev unchanged since read" for update, patch and delete. So
 * optimistic concurrency (409 Conflict) comes from the state machine, and
 * two concurrent writers on the leader cannot both win.
 *
 * A write whose outcome is unknown after it was proposed answers 504
 * (never "not done"), as the store view does.
 *
 * Finalizers (Kubernetes' API conventions): deleting an object with
 * metadata.finalizers only sets deletionTimestamp; the update that removes
 * the last finalizer of such an object deletes it. A Namespace with
 * spec.finalizers becomes Terminating (the namespace controller, later,
 * empties and finalizes it). A pod bound to a node is deleted gracefully
 * (deletionTimestamp + grace period) for its node agent to confirm with
 * gracePeriodSeconds=0. propagationPolicy Orphan and Foreground add the
 * "orphan" / "foregroundDeletion" finalizer (so deletion is marked), for
 * the garbage collector to finish; Background deletes at once.
 *
 * Services: the leader claims ClusterIPs and NodePorts from the term's
 * allocators (kapi__alloc) before proposing, so concurrent creates never
 * share an address; claims are undone when the write is certainly not
 * done and freed when a delete commits (an unknown outcome keeps them
 * until the next term rebuilds the allocators from the store).
 *
 * .../scale (Deployment, ReplicaSet, StatefulSet) reads and writes
 * spec.replicas of the parent through an autoscaling/v1 Scale.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/kapi.h"
#include "src/api/defaults.h"
#include "src/api/object.h"
#include "src/api/patch.h"
#include "src/api/protobuf.h"
#include "src/api/validate.h"
#include "src/lib/log.h"
#include "src/lib/pki.h"

enum write_kind {
	W_CREATE,
	W_UPDATE,
	W_DELETE,     /* the key goes away */
	W_DELETE_MARK /* deletion started: deletionTimestamp set */
};

struct write_op {
	struct http_op op; /* first */
	struct replica_apply apply;
	struct kapi_target *t; /* in the request's pool */
	enum write_kind wk;
	int code;              /* HTTP status on success */
	bool answer_status;    /* a Status Success instead of the object */
	char *name;            /* heap: the object's name */
	void *mp;              /* heap: the object to answer with */
	size_t mp_len;
	uint64_t old_rev;      /* W_DELETE: the object's last revision */
	unsigned retries;      /* a delete without preconditions: tries left
				  after a conflict with a concurrent write */
	char uid[40];
	/* A Service write: its allocations (kapi__alloc), held here so that
	 * they are released when the write is certainly not done (claims of
	 * a create or update) or when a delete commits. */
	struct http_server *server;
	json_t *svc_new; /* the Service written (or deleted) */
	json_t *svc_old; /* update: the stored one, whose claims come back */
	uint64_t alloc_gen;
	bool claimed;
};

/* The Service claims of one write (propose). */
struct svc_claims {
	json_t *svc_new, *svc_old; /* borrowed */
	uint64_t gen;
	bool claimed; /* this write claimed (create, update) */
};

/* ------------------------------------------------------------ helpers */

static bool is_service(const struct api_kind *k)
{
	return k->group[0] == '\0' && strcmp(k->kind, "Service") == 0;
}

/* Undoes the claims of a Service write that was certainly not done. */
static void svc_unclaim(struct http_server *s, const struct svc_claims *c)
{
	struct api_alloc *a;

	if (c == NULL || !c->claimed || c->svc_new == NULL ||
	    (a = kapi__alloc_at(s, c->gen)) == NULL)
		return;
	api_alloc_release_service(a, c->svc_new);
	if (c->svc_old != NULL)
		api_alloc_mark_service(a, c->svc_old);
}

static void write_op_free(struct write_op *w)
{
	json_decref(w->svc_new);
	json_decref(w->svc_old);
	free(w->name);
	free(w->mp);
	http__op_free(&w->op);
}

static void send_conflict(h2o_req_t *req, const struct api_kind *k, const char *name)
{
	char res[128];

	kapi__send_error(req, 409, "Conflict", k, name, NULL,
			 "Operation cannot be fulfilled on %s \"%s\": the object has been "
			 "modified; please apply your changes to the latest version and try again",
			 kapi__resource_name(k, res, sizeof(res)), name);
}

static void send_exists(h2o_req_t *req, const struct api_kind *k, const char *name)
{
	char res[128];

	kapi__send_error(req, 409, "AlreadyExists", k, name, NULL, "%s \"%s\" already exists",
			 kapi__resource_name(k, res, sizeof(res)), name);
}

static void send_success_status(h2o_req_t *req, const struct api_kind *k, const char *name,
				const char *uid)
{
	json_t *o = json_pack("{s:s, s:s, s:{}, s:s, s:{s:s, s:s, s:s}}", "kind", "Status",
			      "apiVersion", "v1", "metadata", "status", "Success", "details",
			      "name", name, "kind", k->plural, "uid", uid);

	if (o != NULL && k->group[0] != '\0')
		json_object_set_new(json_object_get(o, "details"), "group", json_string(k->group));
	http_send_json(req, 200, o);
}

static void uuid_v4(char *out)
{
	unsigned char b[16];

	if (pki_random(b, sizeof(b)) != 0) {
		/* RAND_bytes does not fail once seeded; be safe anyway. */
		uint64_t t = (uint64_t)time(NULL);
		memset(b, 0, sizeof(b));
		memcpy(b, &t, sizeof(t));
		b[8] = (unsigned char)rand();
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
		 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
}

/* Random bytes for uids and generated names, drawn from OpenSSL's CSPRNG
 * a block at a time: one RAND_bytes() call per create showed in profiles
 * (its locking and parameter look-ups cost more than the bytes). The loop
 * thread is the only user; used bytes are wiped. */
static int random_bytes(void *out, size_t n)
{
	static unsigned char pool[4096];
	static size_t left;
	int rv;

	if (n > sizeof(pool))
		return pki_random(out, n);
	if (left < n) {
		if ((rv = pki_random(pool, sizeof(pool))) != 0)
			return rv;
		left = sizeof(pool);
	}
	memcpy(out, pool + sizeof(pool) - left, n);
	memset(pool + sizeof(pool) - left, 0, n);
	left -= n;
	return 0;
}

static bool query_is(struct http_request *hr, const char *name, const char *value)
{
	h2o_iovec_t v;

	return http__query(hr, name, &v) && strcmp(v.base, value) == 0;
}

static bool dry_run(struct http_request *hr)
{
	return query_is(hr, "dryRun", "All");
}

static bool strict(struct http_request *hr)
{
	return query_is(hr, "fieldValidation", "Strict");
}

static h2o_iovec_t content_type(h2o_req_t *req)
{
	ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
	h2o_iovec_t v;
	size_t n;

	if (i < 0)
		return h2o_iovec_init("", 0);
	v = req->headers.entries[i].value;
	for (n = 0; n < v.len && v.base[n] != ';' && v.base[n] != ' '; n++)
		;
	return h2o_iovec_init(v.base, n);
}

static bool ct_is(h2o_iovec_t ct, const char *s)
{
	return h2o_lcstris(ct.base, ct.len, s, strlen(s));
}

/* Decodes a request body into an object tree; false when answered. */
static bool decode_body(struct http_request *hr, bool is_strict, json_t **ret)
{
	h2o_req_t *req = hr->req;
	h2o_iovec_t ct = content_type(req);
	const char *body = req->entity.base != NULL ? req->entity.base : "";
	size_t len = req->entity.len;
	struct codec_err cerr = {0};
	json_t *docs = NULL, *obj = NULL;
	char err[256] = "";
	int rv;

	if (len == 0) {
		http_send_status(req, 400, NULL, "the request body is empty");
		return false;
	}
	if (ct.len == 0 || ct_is(ct, "application/json")) {
		/* Through msgpack: the codec's parser and tree builder together
		 * cost a third of json_loadb()'s instructions. */
		struct buf mp = {0};
		rv = codec_json_to_msgpack(body, len, is_strict ? CODEC_STRICT : 0, &mp, &cerr);
		if (rv == 0)
			rv = codec_msgpack_to_tree(mp.data, mp.len, &obj, &cerr);
		buf_free(&mp);
		if (rv != 0) {
			http_send_status(req, rv == -ENOMEM ? 500 : 400, NULL, "%s: %s",
					 is_strict && rv == -EEXIST ? "strict decoding error"
								    : "invalid JSON",
					 cerr.msg);
			return false;
		}
	} else if (ct_is(ct, "application/yaml")) {
		rv = codec_yaml_to_tree(body, len, is_strict ? CODEC_STRICT : 0, &docs, &cerr);
		if (rv != 0 || json_array_size(docs) != 1) {
			json_decref(docs);
			http_send_status(req, 400, NULL, "invalid YAML: %s",
					 rv != 0 ? cerr.msg : "expected one document");
			return false;
		}
		obj = json_incref(json_array_get(docs, 0));
		json_decref(docs);
	} else if (kapi__media_is_msgpack(ct.base, ct.len)) {
		rv = codec_msgpack_to_tree(body, len, &obj, &cerr);
		if (rv != 0) {
			http_send_status(req, rv == -ENOMEM ? 500 : 400, NULL,
					 "cannot decode the msgpack body: %s", cerr.msg);
			return false;
		}
	} else if (ct_is(ct, API_PROTOBUF_MEDIA_TYPE)) {
		rv = api_protobuf_decode(body, len, &obj, err, sizeof(err));
		if (rv != 0) {
			http_send_status(req, rv == -ENOTSUP ? 415 : rv == -ENOMEM ? 500 : 400, NULL,
					 "cannot decode the protobuf body: %s", err);
			return false;
		}
	} else {
		http_send_status(req, 415, NULL, "the body of the request was in an unknown format; "
						 "accepted media types include: application/json, "
						 "application/yaml, application/vnd.kubernetes.protobuf, "
						 KAPI_MSGPACK_MEDIA_TYPE);
		return false;
	}
	if (!json_is_object(obj)) {
		json_decref(obj);
		http_send_status(req, 400, NULL, "the request body must be an object");
		return false;
	}
	*ret = obj;
	return true;
}

static json_t *meta_of(json_t *obj)
{
	json_t *m = json_object_get(obj, "metadata");

	if (!json_is_object(m)) {
		m = json_object();
		json_object_set_new(obj, "metadata", m);
	}
	return m;
}

static const char *str_of(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* apiVersion/kind of a body: filled when absent, must match the URL. */
static bool check_gvk(h2o_req_t *req, const struct api_kind *k, const struct api_subresource *sub,
		      json_t *obj)
{
	const char *want_av = api_kind_api_version(k);
	const char *want_kind = sub != NULL && sub->kind != NULL ? sub->kind : k->kind;
	const char *av = str_of(obj, "apiVersion"), *kind = str_of(obj, "kind");

	if (av == NULL || av[0] == '\0')
		json_object_set_new(obj, "apiVersion", json_string(want_av));
	else if (strcmp(av, want_av) != 0) {
		http_send_status(req, 400, NULL,
				 "the API version in the data (%s) does not match the expected API "
				 "version (%s)",
				 av, want_av);
		return false;
	}
	if (kind == NULL || kind[0] == '\0')
		json_object_set_new(obj, "kind", json_string(want_kind));
	else if (strcmp(kind, want_kind) != 0) {
		http_send_status(req, 400, NULL,
				 "the kind in the data (%s) does not match the expected kind (%s)", kind,
				 want_kind);
		return false;
	}
	return true;
}

/* metadata.namespace of a body against the URL's. */
static bool check_namespace(h2o_req_t *req, const struct kapi_target *t, json_t *meta)
{
	const char *ns = str_of(meta, "namespace");

	if (!t->kind->namespaced) {
		json_object_del(meta, "namespace");
		return true;
	}
	if (ns == NULL || ns[0] == '\0') {
		json_object_set_new(meta, "namespace", json_string(t->ns));
		return true;
	}
	if (strcmp(ns, t->ns) != 0) {
		http_send_status(req, 400, NULL,
				 "the namespace of the provided object does not match the namespace "
				 "sent on the request");
		return false;
	}
	return true;
}

/* Runs validation; false when answered (400 strict, 422 invalid). */
static bool check_valid(h2o_req_t *req, const struct api_kind *k, const json_t *old_obj,
			const json_t *obj, unsigned vflags, bool is_strict)
{
	struct api_errors e;
	const char *name = str_of(json_object_get(obj, "metadata"), "name");
	char *msg;
	int rv;

	api_errors_init(&e);
	if (is_strict)
		vflags |= API_VALIDATE_UNKNOWN;
	rv = old_obj != NULL ? api_validate_update(k, old_obj, obj, vflags, &e)
			     : api_validate(k, obj, vflags, &e);
	if (rv != 0) {
		api_errors_close(&e);
		http_send_status(req, 500, NULL, "out of memory");
		return false;
	}
	if (is_strict && e.n_unknown > 0) {
		kapi__send_error(req, 400, "BadRequest", NULL, NULL, NULL,
				 "strict decoding error: unknown field \"%s\"", e.unknown[0]);
		api_errors_close(&e);
		return false;
	}
	if (e.n > 0) {
		msg = api_errors_message(&e, k->kind, name != NULL ? name : "");
		kapi__send_error(req, 422, "Invalid", k, name != NULL ? name : "",
				 api_errors_causes_json(&e), "%s", msg != NULL ? msg : "invalid");
		free(msg);
		api_errors_close(&e);
		return false;
	}
	api_errors_close(&e);
	return true;
}

static bool encode_mp(h2o_req_t *req, const json_t *obj, void **ret, size_t *ret_len)
{
	struct buf b = {0};

	if (codec_tree_to_msgpack(obj, &b, NULL) != 0) {
		buf_free(&b);
		http_send_status(req, 500, NULL, "cannot encode the object");
		return false;
	}
	*ret = buf_steal(&b, ret_len);
	if (*ret == NULL) {
		buf_free(&b);
		http_send_status(req, 500, NULL, "out of memory");
		return false;
	}
	return true;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void apply_cb(struct replica_apply *a, int status, const struct store_result *res);

/* A DELETE without preconditions is retried on a conflict, as Kubernetes'
 * storage does: a controller writing status meanwhile must not make a
 * user's delete fail. Set around propose() by kapi__delete. */
#define DELETE_RETRIES 5
static unsigned delete_budget = DELETE_RETRIES; /* for the next kapi__delete */
static unsigned propose_retries;                /* for the next propose */

/* Proposes the command; takes @mp (heap, the object to answer with) in
 * all cases. */
static void propose(struct http_request *hr, struct kapi_target *t, enum write_kind wk,
		    int code, const char *key, size_t key_len, const char *name, void *mp,
		    size_t mp_len, enum store_cond cond, uint64_t mod_rev, const char *status_uid,
		    const struct svc_claims *c)
{
	struct store_cmd cmd = {0};
	struct write_op *w;
	unsigned retries = propose_retries;
	int rv;

	propose_retries = 0;
	w = http__op_new(hr, sizeof(*w));
	if (w == NULL) {
		svc_unclaim(hr->server, c);
		free(mp);
		return;
	}
	w->server = hr->server;
	if (c != NULL && c->svc_new != NULL) {
		w->svc_new = json_incref(c->svc_new);
		w->svc_old = json_incref(c->svc_old);
		w->alloc_gen = c->gen;
		w->claimed = c->claimed;
	}
	w->t = t;
	w->wk = wk;
	w->code = code;
	w->mp = mp;
	w->mp_len = mp_len;
	w->old_rev = mod_rev;
	w->retries = retries;
	if (status_uid != NULL) {
		w->answer_status = true;
		snprintf(w->uid, sizeof(w->uid), "%s", status_uid);
	}
	w->name = strdup(name);
	if (w->name == NULL) {
		svc_unclaim(hr->server, c);
		http__op_detach(&w->op);
		write_op_free(w);
		http_send_status(hr->req, 500, NULL, "out of memory");
		return;
	}
	cmd.type = wk == W_DELETE ? STORE_CMD_DELETE : STORE_CMD_PUT;
	cmd.cond = cond;
	cmd.mod_rev = mod_rev;
	cmd.time_ms = wall_ms();
	cmd.key = key;
	cmd.key_len = key_len;
	if (wk != W_DELETE) {
		cmd.val = mp;
		cmd.val_len = mp_len;
	}
	w->apply.data = w;
	rv = replica_apply(hr->server->replica, &w->apply, &cmd, apply_cb);
	if (rv == 0)
		return;
	/* Synchronous errors: certainly not written. */
	svc_unclaim(hr->server, c);
	http__op_detach(&w->op);
	write_op_free(w);
	http__answer_refused(hr, rv);
}

static void apply_cb(struct replica_apply *a, int status, const struct store_result *res)
{
	struct write_op *w = a->data;
	struct http_request *hr = w->op.hr;
	h2o_req_t *req = http__op_detach(&w->op);
	const struct api_kind *k;
	struct svc_claims c = {w->svc_new, w->svc_old, w->alloc_gen, w->claimed};

	/* A committed delete frees its addresses through the Service watch
	 * of kapi.c (as deletions by controllers do). */
	if (w->svc_new != NULL &&
	    (status == REPLICA_ENOTLEADER || (status == 0 && res->status != 0)))
		svc_unclaim(w->server, &c);
	/* Unknown outcome: the claims stay (a new term rebuilds them). */
	if (req == NULL) {
		write_op_free(w);
		return;
	}
	k = w->t->kind;
	if (status == REPLICA_ENOTLEADER) {
		write_op_free(w);
		http__write_not_leader(hr);
		return;
	} else if (status == REPLICA_EUNKNOWN) {
		http_send_status(req, 504, "Timeout",
				 "leadership was lost during the write: its outcome is unknown");
	} else if (status != 0) {
		http_send_status(req, 504, "Timeout",
				 "the write failed after it was proposed: its outcome is unknown");
	} else if (res->status == STORE_EEXIST) {
		send_exists(req, k, w->name);
	} else if (res->status == STORE_ESTALE && w->retries > 0) {
		struct kapi_target *t = w->t;
		delete_budget = w->retries - 1;
		write_op_free(w);
		kapi__delete(hr, t);
		delete_budget = DELETE_RETRIES;
		return;
	} else if (res->status == STORE_ESTALE) {
		send_conflict(req, k, w->name);
	} else if (res->status == STORE_ENOENT) {
		kapi__send_not_found(req, k, w->name);
	} else if (res->status != 0) {
		http_send_status(req, 500, NULL, "the store refused the write: %s",
				 strerror(-res->status));
	} else if (w->answer_status) {
		send_success_status(req, k, w->name, w->uid);
	} else {
		kapi__send_stored(hr, w->t, w->code, w->mp, w->mp_len,
				  w->wk == W_DELETE ? w->old_rev : res->mod_rev);
	}
	write_op_free(w);
}

/* Claims the addresses of the Service @obj (to create, or to update
 * from @old): false when answered (422 with causes, 500 when a range is
 * full, 503 before the allocators of a new leader are ready). */
static bool svc_claim(struct http_request *hr, const struct api_kind *k, json_t *old,
		      json_t *obj, struct svc_claims *ret)
{
	h2o_req_t *req = hr->req;
	const struct api_alloc_rand *rnd;
	struct api_alloc *a;
	struct api_errors e;
	const char *name = str_of(json_object_get(obj, "metadata"), "name");
	char *msg;
	uint64_t gen;
	int rv;

	a = kapi__alloc(hr->server, &rnd, &gen);
	if (a == NULL) {
		kapi__send_error(req, 503, "ServiceUnavailable", NULL, NULL, NULL,
				 "the service address allocator is not ready yet: try again");
		return false;
	}
	api_errors_init(&e);
	rv = old == NULL ? api_alloc_service_create(a, rnd, obj, &e)
			 : api_alloc_service_update(a, rnd, old, obj, &e);
	if (rv == -ENOSPC) {
		kapi__send_error(req, 500, "InternalError", NULL, NULL, NULL,
				 "Internal error occurred: %s", a->errmsg);
	} else if (rv != 0) {
		http_send_status(req, 500, NULL, "out of memory");
	} else if (e.n > 0) {
		msg = api_errors_message(&e, k->kind, name != NULL ? name : "");
		kapi__send_error(req, 422, "Invalid", k, name != NULL ? name : "",
				 api_errors_causes_json(&e), "%s", msg != NULL ? msg : "invalid");
		free(msg);
	} else {
		api_errors_close(&e);
		ret->svc_new = obj;
		ret->svc_old = old;
		ret->gen = gen;
		ret->claimed = true;
		return true;
	}
	api_errors_close(&e);
	return false;
}

/* ------------------------------------------------------------ create */

/* A create that a follower prepared itself (decoded, defaulted, validated,
 * encoded) and sends to the leader as a plain store command in the
 * leader's next batch of writes (http__forward_cmd()), so the leader
 * neither parses nor validates it, and one POST carries the creates of a
 * loop iteration. Only creates: the compare-and-swap (absent) is decided
 * by the leader's state machine, so the follower's view being a little
 * behind changes nothing, while updates and deletes read the current
 * object and go to the leader as they came. Services too (the leader's
 * address allocators). */
struct fwd_create {
	struct kapi_target *t; /* in the request's pool */
	void *mp;              /* the object answered */
	size_t mp_len;
	char name[]; /* NUL-terminated */
};

static void fwd_create_cb(void *data, struct http_request *hr, int status,
			  const struct store_result *res)
{
	struct fwd_create *fc = data;
	const struct api_kind *k = fc->t->kind;
	h2o_req_t *req = hr != NULL ? hr->req : NULL;

	if (req == NULL) {
		/* Answered already, forwarded, or waiting for a leader. */
	} else if (status == REPLICA_EUNKNOWN) {
		http_send_status(req, 504, "Timeout",
				 "leadership was lost during the write: its outcome is unknown");
	} else if (status != 0) {
		http_send_status(req, 504, "Timeout",
				 "the write failed after it was proposed: its outcome is unknown");
	} else if (res->status == STORE_EEXIST) {
		send_exists(req, k, fc->name);
	} else if (res->status != 0) {
		http_send_status(req, 500, NULL, "the store refused the write: %s",
				 strerror(-res->status));
	} else {
		kapi__send_stored(hr, fc->t, 201, fc->mp, fc->mp_len, res->mod_rev);
	}
	free(fc->mp);
	free(fc);
}

/* Sends the create of @key to the leader; takes @mp. */
static void forward_create(struct http_request *hr, struct kapi_target *t, const char *key,
			   size_t key_len, const char *name, void *mp, size_t mp_len)
{
	size_t n = strlen(name);
	struct fwd_create *fc = malloc(sizeof(*fc) + n + 1);
	struct store_cmd cmd = {0};

	if (fc == NULL) {
		free(mp);
		http_send_status(hr->req, 500, NULL, "out of memory");
		return;
	}
	fc->t = t;
	fc->mp = mp;
	fc->mp_len = mp_len;
	memcpy(fc->name, name, n + 1);
	cmd.type = STORE_CMD_PUT;
	cmd.cond = STORE_COND_ABSENT;
	cmd.key = key;
	cmd.key_len = key_len;
	cmd.val = mp;
	cmd.val_len = mp_len;
	http__forward_cmd(hr, &cmd, fwd_create_cb, fc);
}

/* Creates @obj (taken) at the collection @t; @remote: on a follower,
 * through forward_create(). */
static void create_obj(struct http_request *hr, struct kapi_target *t, json_t *obj,
		       bool is_strict, bool remote)
{
	h2o_req_t *req = hr->req;
	const struct api_kind *k = t->kind;
	struct store *st = replica_store(hr->server->replica);
	struct store_kv kv;
	json_t *meta;
	const char *name;
	char now[32], *key, nskey[320];
	void *mp;
	size_t mp_len, n;
	int key_len;
	struct svc_claims c = {0};
	bool proposed = false;

	if (!check_gvk(req, k, NULL, obj))
		goto out;
	meta = meta_of(obj);
	if (!check_namespace(req, t, meta))
		goto out;
	/* What the server owns. */
	{
		uint64_t r[3];
		if (random_bytes(r, sizeof(r)) != 0) {
			http_send_status(req, 500, NULL, "no randomness");
			goto out;
		}
		kapi__now_rfc3339(now, sizeof(now));
		if (api_object_prepare_create(k, obj, now, r[0], r[1], r[2]) != 0) {
			http_send_status(req, 500, NULL, "cannot default the object");
			goto out;
		}
	}
	if (!check_valid(req, k, NULL, obj, 0, is_strict))
		goto out;
	name = str_of(meta, "name");
	if (k->namespaced) {
		snprintf(nskey, sizeof(nskey), "/registry/namespaces/%s", t->ns);
		bool ns_found = store_get(st, nskey, strlen(nskey), &kv) == 0;
		if (!ns_found && remote) {
			/* Perhaps only not here yet: the leader decides. */
			http__forward(hr);
			goto out;
		}
		if (!ns_found) {
			kapi__send_error(req, 404, "NotFound", api_kind_by_resource("", "v1", "namespaces"),
					 t->ns, NULL, "namespaces \"%s\" not found", t->ns);
			goto out;
		}
		const void *dt;
		size_t dt_len;
		if (codec_msgpack_get(kv.val, kv.val_len, "metadata.deletionTimestamp", &dt,
				      &dt_len) == 0) {
			kapi__send_error(req, 403, "Forbidden", k, name, NULL,
					 "%s \"%s\" is forbidden: unable to create new content in "
					 "namespace %s because it is being terminated",
					 k->plural, name, t->ns);
			goto out;
		}
	}
	if (is_service(k)) {
		if (!svc_claim(hr, k, NULL, obj, &c))
			goto out;
	}
	if (!encode_mp(req, obj, &mp, &mp_len))
		goto out;
	if (dry_run(hr)) {
		kapi__send_stored(hr, t, 201, mp, mp_len, 0);
		free(mp);
		goto out;
	}
	n = t->key_len + strlen(name) + 1;
	key = h2o_mem_alloc_pool(&req->pool, n);
	key_len = snprintf(key, n, "%.*s%s", (int)t->key_len, t->key, name);
	/* The answer's target is the object now. */
	t->name = h2o_strdup(&req->pool, name, SIZE_MAX).base;
	proposed = true;
	if (remote) {
		forward_create(hr, t, key, (size_t)key_len, name, mp, mp_len);
		goto out;
	}
	propose(hr, t, W_CREATE, 201, key, (size_t)key_len, name, mp, mp_len, STORE_COND_ABSENT, 0,
		NULL, &c);
out:
	if (!proposed)
		svc_unclaim(hr->server, &c);
	json_decref(obj);
}

void kapi__create(struct http_request *hr, struct kapi_target *t)
{
	json_t *obj;
	bool is_strict = strict(hr);
	bool remote = !hr->forwarded && !is_service(t->kind) &&
		      http__role(hr->server) == HTTP_ROLE_FOLLOWER;

	if (!remote && !http__write_here(hr))
		return;
	if (!decode_body(hr, is_strict, &obj))
		return;
	create_obj(hr, t, obj, is_strict, remote);
}

/* ------------------------------------------------------------ update */

static const char *const server_meta[] = {"uid", "creationTimestamp", "deletionTimestamp",
					  "deletionGracePeriodSeconds", "generation", NULL};

/* Updates the object @kv (current) to @body (taken). */
static void update_obj(struct http_request *hr, struct kapi_target *t, json_t *body,
		       const struct store_kv *kv, bool is_strict)
{
	h2o_req_t *req = hr->req;
	const struct api_kind *k = t->kind;
	json_t *old = NULL, *obj = NULL, *meta, *ometa, *v;
	const char *rv_s, *name;
	uint64_t rv;
	void *mp;
	size_t mp_len, i;
	struct svc_claims c = {0};
	bool proposed = false;

	if (!check_gvk(req, k, NULL, body))
		goto out;
	meta = meta_of(body);
	if (!check_namespace(req, t, meta))
		goto out;
	name = str_of(meta, "name");
	if (name == NULL || name[0] == '\0') {
		json_object_set_new(meta, "name", json_string(t->name));
	} else if (strcmp(name, t->name) != 0) {
		http_send_status(req, 400, NULL,
				 "the name of the object (%s) does not match the name on the URL (%s)",
				 name, t->name);
		goto out;
	}
	rv_s = str_of(meta, "resourceVersion");
	if (rv_s != NULL && rv_s[0] != '\0' &&
	    (http_parse_u64(rv_s, strlen(rv_s), &rv) != 0 || rv != kv->mod_rev)) {
		send_conflict(req, k, t->name);
		goto out;
	}
	old = kapi__tree(kv->val, kv->val_len, 0);
	if (old == NULL) {
		http_send_status(req, 500, NULL, "cannot decode the stored object");
		goto out;
	}
	ometa = meta_of(old);
	if (t->sub != NULL) {
		/* .../status: only the status changes. */
		obj = json_deep_copy(old);
		v = json_object_get(body, "status");
		if (v != NULL)
			json_object_set(obj, "status", v);
		else
			json_object_del(obj, "status");
	} else {
		obj = json_incref(body);
		json_object_del(meta, "resourceVersion");
		for (i = 0; server_meta[i] != NULL; i++) {
			v = json_object_get(ometa, server_meta[i]);
			if (v != NULL)
				json_object_set(meta, server_meta[i], v);
			else
				json_object_del(meta, server_meta[i]);
		}
		/* Kinds with a status subresource ignore status in updates of
		 * the main resource. */
		if (api_kind_subresource(k, "status") != NULL) {
			v = json_object_get(old, "status");
			if (v != NULL)
				json_object_set(obj, "status", v);
			else
				json_object_del(obj, "status");
		}
	}
	if (api_default(k, obj) != 0) {
		http_send_status(req, 500, NULL, "cannot default the object");
		goto out;
	}
	/* Before validation: the kept clusterIP passes the immutable rule. */
	if (t->sub == NULL && is_service(k) && !svc_claim(hr, k, old, obj, &c))
		goto out;
	if (!check_valid(req, k, old, obj, 0, is_strict))
		goto out;
	/* A status write never bumps generation: its spec is the old one. */
	if (api_object_prepare_update(k, old, obj)) {
		if (!encode_mp(req, obj, &mp, &mp_len))
			goto out;
		if (dry_run(hr)) {
			kapi__send_stored(hr, t, 200, mp, mp_len, kv->mod_rev);
			free(mp);
			goto out;
		}
		proposed = true;
		propose(hr, t, W_DELETE, 200, t->key, t->key_len, t->name, mp, mp_len,
			STORE_COND_MOD_REV, kv->mod_rev, NULL, &c);
		goto out;
	}
	if (!encode_mp(req, obj, &mp, &mp_len))
		goto out;
	if ((mp_len == kv->val_len && memcmp(mp, kv->val, mp_len) == 0) || dry_run(hr)) {
		/* Nothing changed: no write, the resourceVersion stays. */
		kapi__send_stored(hr, t, 200, mp, mp_len, kv->mod_rev);
		free(mp);
		goto out;
	}
	proposed = true;
	propose(hr, t, W_UPDATE, 200, t->key, t->key_len, t->name, mp, mp_len, STORE_COND_MOD_REV,
		kv->mod_rev, NULL, &c);
out:
	if (!proposed)
		svc_unclaim(hr->server, &c);
	json_decref(old);
	json_decref(obj);
	json_decref(body);
}

void kapi__update(struct http_request *hr, struct kapi_target *t)
{
	struct store_kv kv;
	json_t *body;
	bool is_strict = strict(hr);

	if (!http__write_here(hr))
		return;
	if (!decode_body(hr, is_strict, &body))
		return;
	if (store_get(replica_store(hr->server->replica), t->key, t->key_len, &kv) != 0) {
		json_decref(body);
		kapi__send_not_found(hr->req, t->kind, t->name);
		return;
	}
	update_obj(hr, t, body, &kv, is_strict);
}

/* ------------------------------------------------------------ patch */

void kapi__patch(struct http_request *hr, struct kapi_target *t)
{
	h2o_req_t *req = hr->req;
	const struct api_kind *k = t->kind;
	h2o_iovec_t ct = content_type(req);
	const char *body = req->entity.base != NULL ? req->entity.base : "";
	size_t len = req->entity.len;
	struct codec_err cerr = {0};
	struct store_kv kv;
	json_t *patch = NULL, *docs = NULL, *obj = NULL, *meta;
	json_error_t jerr;
	const char *rv_s;
	char err[512] = "", rvb[24];
	bool is_apply = ct_is(ct, "application/apply-patch+yaml"), found;
	bool is_strict = strict(hr);
	int rv;

	if (!http__write_here(hr))
		return;
	if (is_apply) {
		rv = codec_yaml_to_tree(body, len, CODEC_STRICT, &docs, &cerr);
		if (rv != 0 || json_array_size(docs) != 1) {
			json_decref(docs);
			http_send_status(req, 400, NULL, "invalid apply configuration: %s",
					 rv != 0 ? cerr.msg : "expected one document");
			return;
		}
		patch = json_incref(json_array_get(docs, 0));
		json_decref(docs);
	} else if (ct_is(ct, "application/merge-patch+json") ||
		   ct_is(ct, "application/json-patch+json") ||
		   ct_is(ct, "application/strategic-merge-patch+json")) {
		patch = json_loadb(body, len, 0, &jerr);
		if (patch == NULL) {
			http_send_status(req, 400, NULL, "invalid JSON patch: %s", jerr.text);
			return;
		}
	} else {
		http_send_status(req, 415, NULL, "the patch content type \"%.*s\" is not supported",
				 (int)ct.len, ct.base);
		return;
	}
	found = store_get(replica_store(hr->server->replica), t->key, t->key_len, &kv) == 0;
	if (!found) {
		if (is_apply && t->sub == NULL && json_is_object(patch)) {
			/* Server-side apply creates what is absent. */
			struct kapi_target *ct_t = h2o_mem_alloc_pool(&req->pool, sizeof(*ct_t));
			*ct_t = *t;
			ct_t->key_len = t->key_len - strlen(t->name);
			meta = meta_of(patch);
			if (str_of(meta, "name") == NULL)
				json_object_set_new(meta, "name", json_string(t->name));
			if (strcmp(str_of(meta, "name"), t->name) != 0) {
				json_decref(patch);
				http_send_status(req, 400, NULL,
						 "the name of the object does not match the name on "
						 "the URL");
				return;
			}
			create_obj(hr, ct_t, patch, is_strict, false);
			return;
		}
		json_decref(patch);
		kapi__send_not_found(req, k, t->name);
		return;
	}
	obj = kapi__tree(kv.val, kv.val_len, kv.mod_rev);
	if (obj == NULL) {
		json_decref(patch);
		http_send_status(req, 500, NULL, "cannot decode the stored object");
		return;
	}
	if (is_apply)
		rv = api_patch_apply(api_type_get(k->type), &obj, patch, err, sizeof(err));
	else if (ct_is(ct, "application/merge-patch+json"))
		rv = api_patch_merge(&obj, patch, err, sizeof(err));
	else if (ct_is(ct, "application/json-patch+json"))
		rv = api_patch_json(&obj, patch, err, sizeof(err));
	else
		rv = api_patch_strategic(api_type_get(k->type), &obj, patch, err, sizeof(err));
	json_decref(patch);
	if (rv != 0) {
		json_decref(obj);
		if (rv == -ENOMEM)
			http_send_status(req, 500, NULL, "out of memory");
		else
			kapi__send_error(req, 422, "Invalid", k, t->name, NULL, "%s", err);
		return;
	}
	if (!json_is_object(obj)) {
		json_decref(obj);
		http_send_status(req, 422, NULL, "the patched object is not an object");
		return;
	}
	/* A resourceVersion in the patch is a precondition; the stored one
	 * otherwise. */
	meta = meta_of(obj);
	rv_s = str_of(meta, "resourceVersion");
	snprintf(rvb, sizeof(rvb), "%llu", (unsigned long long)kv.mod_rev);
	if (rv_s != NULL && strcmp(rv_s, rvb) != 0) {
		json_decref(obj);
		send_conflict(req, k, t->name);
		return;
	}
	update_obj(hr, t, obj, &kv, is_strict);
}

/* ------------------------------------------------------------ delete */

struct delete_opts {
	const char *policy; /* "Orphan", "Foreground", or NULL (Background) */
	bool has_grace;
	int64_t grace;
	const char *uid; /* precondition */
	const char *rv;  /* precondition */
	json_t *body;
};

static bool propagation(struct http_request *hr, struct delete_opts *o);

static bool delete_options(struct http_request *hr, struct delete_opts *o)
{
	h2o_req_t *req = hr->req;
	json_error_t jerr;
	json_t *v;
	bool present;
	uint64_t g;

	memset(o, 0, sizeof(*o));
	if (req->entity.len > 0) {
		o->body = json_loadb(req->entity.base, req->entity.len, 0, &jerr);
		if (!json_is_object(o->body)) {
			json_decref(o->body);
			o->body = NULL;
			http_send_status(req, 400, NULL, "invalid DeleteOptions: %s", jerr.text);
			return false;
		}
		v = json_object_get(o->body, "gracePeriodSeconds");
		if (json_is_integer(v)) {
			o->has_grace = true;
			o->grace = json_integer_value(v);
		}
		v = json_object_get(o->body, "preconditions");
		o->uid = str_of(v, "uid");
		o->rv = str_of(v, "resourceVersion");
	}
	if (!kapi__query_u64(hr, "gracePeriodSeconds", &present, &g)) {
		json_decref(o->body);
		return false;
	}
	if (present) {
		o->has_grace = true;
		o->grace = (int64_t)g;
	}
	return propagation(hr, o);
}

/* propagationPolicy (query or body; orphanDependents the older form):
 * Background (the default) deletes now and leaves the dependents to the
 * garbage collector; Orphan and Foreground need a finalizer. */
static bool propagation(struct http_request *hr, struct delete_opts *o)
{
	h2o_iovec_t v;
	const char *p = NULL;
	json_t *od = json_object_get(o->body, "orphanDependents");

	if (http__query(hr, "propagationPolicy", &v) && v.len > 0)
		p = v.base;
	else if (str_of(o->body, "propagationPolicy") != NULL)
		p = str_of(o->body, "propagationPolicy");
	else if (json_is_true(od))
		p = "Orphan";
	if (p == NULL || strcmp(p, "Background") == 0) {
		o->policy = NULL;
	} else if (strcmp(p, "Orphan") == 0) {
		o->policy = "Orphan";
	} else if (strcmp(p, "Foreground") == 0) {
		o->policy = "Foreground";
	} else {
		kapi__send_error(hr->req, 422, "Invalid", NULL, NULL, NULL,
				 "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: "
				 "Unsupported value: \"%s\": supported values: \"Foreground\", "
				 "\"Background\", \"Orphan\"",
				 p);
		json_decref(o->body);
		o->body = NULL;
		return false;
	}
	return true;
}

void kapi__delete(struct http_request *hr, struct kapi_target *t)
{
	h2o_req_t *req = hr->req;
	const struct api_kind *k = t->kind;
	struct store_kv kv;
	struct delete_opts o;
	json_t *obj = NULL, *meta;
	const char *uid;
	char rvb[24], now[32];
	bool is_pod = strcmp(k->plural, "pods") == 0 && k->group[0] == '\0';
	int action;
	void *mp;
	size_t mp_len;
	struct svc_claims dc = {0};
	const struct api_alloc_rand *rnd;

	if (!http__write_here(hr))
		return;
	if (!delete_options(hr, &o))
		return;
	if (store_get(replica_store(hr->server->replica), t->key, t->key_len, &kv) != 0) {
		kapi__send_not_found(req, k, t->name);
		goto out;
	}
	obj = kapi__tree(kv.val, kv.val_len, kv.mod_rev);
	if (obj == NULL) {
		http_send_status(req, 500, NULL, "cannot decode the stored object");
		goto out;
	}
	meta = meta_of(obj);
	uid = str_of(meta, "uid");
	snprintf(rvb, sizeof(rvb), "%llu", (unsigned long long)kv.mod_rev);
	if (o.uid != NULL && (uid == NULL || strcmp(o.uid, uid) != 0)) {
		kapi__send_error(req, 409, "Conflict", k, t->name, NULL,
				 "Operation cannot be fulfilled on %s \"%s\": Precondition failed: "
				 "UID in precondition: %s, UID in object meta: %s",
				 k->plural, t->name, o.uid, uid != NULL ? uid : "");
		goto out;
	}
	if (o.rv != NULL && strcmp(o.rv, rvb) != 0) {
		kapi__send_error(req, 409, "Conflict", k, t->name, NULL,
				 "Operation cannot be fulfilled on %s \"%s\": Precondition failed: "
				 "ResourceVersion in precondition: %s, ResourceVersion in object "
				 "meta: %s",
				 k->plural, t->name, o.rv, rvb);
		goto out;
	}
	kapi__now_rfc3339(now, sizeof(now));
	action = api_object_prepare_delete(k, obj, o.policy, o.has_grace, o.grace, now);
	if (action < 0) {
		http_send_status(req, 500, NULL, "out of memory");
		goto out;
	}
	if (action == API_DELETE_ALREADY) {
		kapi__send_tree(req, 200, obj);
		goto out;
	}
	if (action == API_DELETE_MARK) {
		if (!encode_mp(req, obj, &mp, &mp_len))
			goto out;
		if (dry_run(hr)) {
			kapi__send_stored(hr, t, 200, mp, mp_len, kv.mod_rev);
			free(mp);
			goto out;
		}
		propose_retries = o.uid == NULL && o.rv == NULL ? delete_budget : 0;
		propose(hr, t, W_DELETE_MARK, 200, t->key, t->key_len, t->name, mp, mp_len,
			STORE_COND_MOD_REV, kv.mod_rev, NULL, NULL);
		goto out;
	}
	if (dry_run(hr)) {
		kapi__send_stored(hr, t, 200, kv.val, kv.val_len, kv.mod_rev);
		goto out;
	}
	mp = malloc(kv.val_len > 0 ? kv.val_len : 1);
	if (mp == NULL) {
		http_send_status(req, 500, NULL, "out of memory");
		goto out;
	}
	memcpy(mp, kv.val, kv.val_len);
	/* Pods and services answer the deleted object, other kinds a Status,
	 * as kube-apiserver does. */
	/* A committed Service delete frees its addresses. */
	if (is_service(k) && kapi__alloc(hr->server, &rnd, &dc.gen) != NULL)
		dc.svc_new = obj;
	propose_retries = o.uid == NULL && o.rv == NULL ? delete_budget : 0;
	propose(hr, t, W_DELETE, 200, t->key, t->key_len, t->name, mp, kv.val_len,
		STORE_COND_MOD_REV, kv.mod_rev,
		is_pod || is_service(k) ? NULL : (uid != NULL ? uid : ""), &dc);
out:
	json_decref(obj);
	json_decref(o.body);
}

/* deletecollection: every selected object is deleted (or, with
 * finalizers, marked) by its own compare-and-swap, all proposed at once;
 * the answer (a Status) comes when every one has completed. Objects that
 * changed meanwhile are skipped (their CAS fails), as a later
 * deletecollection would catch them. */
struct dc_op {
	struct http_op op; /* first */
	unsigned pending;
	unsigned failed;
	bool unknown;
};

struct dc_item {
	struct replica_apply apply;
	struct dc_op *dc;
};

static void dc_finish(struct dc_op *dc)
{
	h2o_req_t *req = http__op_detach(&dc->op);

	if (req != NULL) {
		if (dc->unknown)
			http_send_status(req, 504, "Timeout",
					 "leadership was lost during the deletion: its outcome is "
					 "unknown");
		else
			http_send_json(req, 200,
				       json_pack("{s:s, s:s, s:{}, s:s}", "kind", "Status",
						 "apiVersion", "v1", "metadata", "status", "Success"));
	}
	http__op_free(&dc->op);
}

static void dc_cb(struct replica_apply *a, int status, const struct store_result *res)
{
	struct dc_item *it = a->data;
	struct dc_op *dc = it->dc;

	(void)res;
	free(it);
	if (status != 0)
		dc->unknown = true;
	if (--dc->pending == 0)
		dc_finish(dc);
}

void kapi__delete_collection(struct http_request *hr, struct kapi_target *t)
{
	struct store *st = replica_store(hr->server->replica);
	struct kapi_selector *sel = NULL;
	struct store_iter iter;
	struct store_kv kv;
	struct store_cmd cmd = {0};
	struct dc_op *dc;
	struct dc_item *it;
	json_t *obj, *meta;
	struct buf buf = {0};
	char now[32];
	int rv;

	if (!http__write_here(hr))
		return;
	if (!kapi__selector(hr, t->kind, &sel))
		return;
	dc = http__op_new(hr, sizeof(*dc));
	if (dc == NULL)
		return;
	dc->pending = 1; /* until the loop is done */
	kapi__now_rfc3339(now, sizeof(now));
	store_iter_seek(st, &iter, t->key, t->key_len);
	/* Commands are applied later (raft), so iterating while proposing is
	 * safe: nothing mutates the store during this loop. */
	while (store_iter_next(&iter, &kv)) {
		if (kv.key_len < t->key_len || memcmp(kv.key, t->key, t->key_len) != 0)
			break;
		if (!kapi__selector_match(sel, kv.val, kv.val_len))
			continue;
		memset(&cmd, 0, sizeof(cmd));
		cmd.cond = STORE_COND_MOD_REV;
		cmd.mod_rev = kv.mod_rev;
		cmd.time_ms = wall_ms();
		cmd.key = kv.key;
		cmd.key_len = kv.key_len;
		cmd.type = STORE_CMD_DELETE;
		obj = NULL;
		if (codec_msgpack_get(kv.val, kv.val_len, "metadata.finalizers.0", &(const void *){0},
				      &(size_t){0}) == 0) {
			/* Finalizers: mark, unless marked already. */
			if (codec_msgpack_get(kv.val, kv.val_len, "metadata.deletionTimestamp",
					      &(const void *){0}, &(size_t){0}) == 0)
				continue;
			obj = kapi__tree(kv.val, kv.val_len, 0);
			if (obj == NULL)
				continue;
			meta = meta_of(obj);
			json_object_set_new(meta, "deletionTimestamp", json_string(now));
			json_object_set_new(meta, "deletionGracePeriodSeconds", json_integer(0));
			buf.len = 0;
			rv = codec_tree_to_msgpack(obj, &buf, NULL);
			json_decref(obj);
			if (rv != 0) {
				dc->unknown = dc->unknown || dc->pending > 1;
				dc->failed++;
				break;
			}
			cmd.type = STORE_CMD_PUT;
			cmd.val = buf.data;
			cmd.val_len = buf.len;
		}
		it = calloc(1, sizeof(*it));
		if (it == NULL) {
			dc->unknown = true;
			break;
		}
		it->dc = dc;
		it->apply.data = it;
		if (replica_apply(hr->server->replica, &it->apply, &cmd, dc_cb) != 0) {
			free(it);
			dc->unknown = dc->pending > 1;
			dc->failed++;
			break;
		}
		dc->pending++;
	}
	buf_free(&buf);
	if (dc->failed > 0 && dc->pending == 1) {
		/* Nothing was proposed: nothing done. */
		h2o_req_t *req = http__op_detach(&dc->op);
		http__op_free(&dc->op);
		if (req != NULL)
			http_send_status(req, 503, NULL, "cannot delete now, try again");
		return;
	}
	if (--dc->pending == 0)
		dc_finish(dc);
}

/* ------------------------------------------------------------ bootstrap */

struct boot_op {
	struct replica_apply apply;
};

static void boot_cb(struct replica_apply *a, int status, const struct store_result *res)
{
	(void)status;
	(void)res;
	free(a->data);
}

void kapi__bootstrap_namespaces(struct replica *r)
{
	static const char *const names[] = {"default", "kube-system", "kube-public",
					    "kube-node-lease", NULL};
	const struct api_kind *k = api_kind_by_resource("", "v1", "namespaces");
	struct store *st = replica_store(r);
	struct store_cmd cmd = {0};
	struct store_kv kv;
	struct buf b = {0};
	struct boot_op *op;
	char key[128], uid[40], now[32];
	json_t *obj;
	size_t i;

	kapi__now_rfc3339(now, sizeof(now));
	for (i = 0; names[i] != NULL; i++) {
		snprintf(key, sizeof(key), "/registry/namespaces/%s", names[i]);
		if (store_get(st, key, strlen(key), &kv) == 0)
			continue;
		uuid_v4(uid);
		obj = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:{s:s}}, s:{s:[s]}, s:{s:s}}",
				"apiVersion", "v1", "kind", "Namespace", "metadata", "name", names[i],
				"uid", uid, "creationTimestamp", now, "labels",
				"kubernetes.io/metadata.name", names[i], "spec", "finalizers",
				"kubernetes", "status", "phase", "Active");
		if (obj == NULL)
			continue;
		if (k != NULL)
			api_default(k, obj);
		b.len = 0;
		if (codec_tree_to_msgpack(obj, &b, NULL) != 0) {
			json_decref(obj);
			continue;
		}
		json_decref(obj);
		op = calloc(1, sizeof(*op));
		if (op == NULL)
			continue;
		op->apply.data = op;
		cmd.type = STORE_CMD_PUT;
		cmd.cond = STORE_COND_ABSENT;
		cmd.time_ms = wall_ms();
		cmd.key = key;
		cmd.key_len = strlen(key);
		cmd.val = b.data;
		cmd.val_len = b.len;
		if (replica_apply(r, &op->apply, &cmd, boot_cb) != 0) {
			free(op);
			log_warn("http: cannot create namespace %s", names[i]);
		}
	}
	buf_free(&b);
}

/* ------------------------------------------------------------ scale */

void kapi__write_scale(struct http_request *hr, struct kapi_target *t)
{
	h2o_req_t *req = hr->req;
	const struct api_kind *k = t->kind;
	h2o_iovec_t ct = content_type(req);
	const char *body = req->entity.base != NULL ? req->entity.base : "";
	struct store_kv kv;
	json_t *scale = NULL, *patch = NULL, *obj = NULL, *spec, *r, *meta;
	json_error_t jerr;
	const char *s_rv, *s_name, *av, *kind;
	char err[512] = "", rvb[24];
	json_int_t n, gen;
	void *mp;
	size_t mp_len;
	int rv;

	if (!http__write_here(hr))
		return;
	if (store_get(replica_store(hr->server->replica), t->key, t->key_len, &kv) != 0) {
		kapi__send_not_found(req, k, t->name);
		return;
	}
	if (http__method_is(req, "PATCH")) {
		if (!ct_is(ct, "application/merge-patch+json") &&
		    !ct_is(ct, "application/json-patch+json") &&
		    !ct_is(ct, "application/strategic-merge-patch+json")) {
			http_send_status(req, 415, NULL,
					 "the patch content type \"%.*s\" is not supported on scale",
					 (int)ct.len, ct.base);
			return;
		}
		patch = json_loadb(body, req->entity.len, 0, &jerr);
		if (patch == NULL) {
			http_send_status(req, 400, NULL, "invalid JSON patch: %s", jerr.text);
			return;
		}
		scale = kapi__scale_tree(t, kv.val, kv.val_len, kv.mod_rev);
		if (scale == NULL) {
			http_send_status(req, 500, NULL, "cannot decode the stored object");
			goto out;
		}
		if (ct_is(ct, "application/merge-patch+json"))
			rv = api_patch_merge(&scale, patch, err, sizeof(err));
		else if (ct_is(ct, "application/json-patch+json"))
			rv = api_patch_json(&scale, patch, err, sizeof(err));
		else
			rv = api_patch_strategic(api_type_get(t->sub->type), &scale, patch, err,
						 sizeof(err));
		if (rv != 0) {
			if (rv == -ENOMEM)
				http_send_status(req, 500, NULL, "out of memory");
			else
				kapi__send_error(req, 422, "Invalid", k, t->name, NULL, "%s", err);
			goto out;
		}
		if (!json_is_object(scale)) {
			http_send_status(req, 422, NULL, "the patched object is not an object");
			goto out;
		}
	} else {
		if (!decode_body(hr, strict(hr), &scale))
			return;
	}
	av = str_of(scale, "apiVersion");
	kind = str_of(scale, "kind");
	if ((av != NULL && av[0] != '\0' && strcmp(av, "autoscaling/v1") != 0) ||
	    (kind != NULL && kind[0] != '\0' && strcmp(kind, "Scale") != 0)) {
		http_send_status(req, 400, NULL, "the body must be an autoscaling/v1 Scale");
		goto out;
	}
	meta = json_object_get(scale, "metadata");
	s_name = str_of(meta, "name");
	if (s_name != NULL && s_name[0] != '\0' && strcmp(s_name, t->name) != 0) {
		http_send_status(req, 400, NULL,
				 "the name of the object (%s) does not match the name on the URL (%s)",
				 s_name, t->name);
		goto out;
	}
	s_rv = str_of(meta, "resourceVersion");
	snprintf(rvb, sizeof(rvb), "%llu", (unsigned long long)kv.mod_rev);
	if (s_rv != NULL && s_rv[0] != '\0' && strcmp(s_rv, rvb) != 0) {
		send_conflict(req, k, t->name);
		goto out;
	}
	/* An absent replicas is Go's zero value. */
	r = api_json_path(scale, "spec.replicas");
	if ((r != NULL && !json_is_integer(r)) || (n = json_integer_value(r)) < 0 ||
	    n > INT32_MAX) {
		json_t *causes = json_pack("[{s:s, s:s, s:s}]", "reason", "FieldValueInvalid",
					   "message", "Invalid value: must be greater than or equal to 0",
					   "field", "spec.replicas");
		kapi__send_error(req, 422, "Invalid", k, t->name, causes,
				 "Scale.autoscaling \"%s\" is invalid: spec.replicas: Invalid value: "
				 "%s: must be greater than or equal to 0",
				 t->name, json_is_integer(r) ? "negative" : "not an integer");
		goto out;
	}
	obj = kapi__tree(kv.val, kv.val_len, 0);
	if (obj == NULL) {
		http_send_status(req, 500, NULL, "cannot decode the stored object");
		goto out;
	}
	spec = json_object_get(obj, "spec");
	if (!json_is_object(spec)) {
		spec = json_object();
		json_object_set_new(obj, "spec", spec);
	}
	r = json_object_get(spec, "replicas");
	if (json_is_integer(r) && json_integer_value(r) == n) {
		/* Nothing changes: no write. */
		kapi__send_stored(hr, t, 200, kv.val, kv.val_len, kv.mod_rev);
		goto out;
	}
	json_object_set_new(spec, "replicas", json_integer(n));
	meta = meta_of(obj);
	gen = json_integer_value(json_object_get(meta, "generation"));
	json_object_set_new(meta, "generation", json_integer(gen + 1));
	if (!encode_mp(req, obj, &mp, &mp_len))
		goto out;
	if (dry_run(hr)) {
		kapi__send_stored(hr, t, 200, mp, mp_len, kv.mod_rev);
		free(mp);
		goto out;
	}
	propose(hr, t, W_UPDATE, 200, t->key, t->key_len, t->name, mp, mp_len, STORE_COND_MOD_REV,
		kv.mod_rev, NULL, NULL);
out:
	json_decref(obj);
	json_decref(patch);
	json_decref(scale);
}

/* ------------------------------------------------------------ kubernetes */

void kapi__bootstrap_kubernetes_service(struct replica *r, struct api_alloc *a,
					const struct api_alloc_rand *rnd, int port)
{
	static const char key[] = "/registry/services/default/kubernetes";
	const struct api_kind *k = api_kind_by_resource("", "v1", "services");
	struct store *st = replica_store(r);
	struct store_cmd cmd = {0};
	struct store_kv kv;
	struct api_errors e;
	struct buf b = {0};
	struct boot_op *op;
	char uid[40], now[32], ip[API_ALLOC_IP_LEN];
	json_t *obj;
	int rv;

	if (k == NULL || store_get(st, key, sizeof(key) - 1, &kv) == 0)
		return;
	api_ip_range_first(&a->ip.range, ip);
	uuid_v4(uid);
	kapi__now_rfc3339(now, sizeof(now));
	obj = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:{s:s, s:s}},"
			" s:{s:s, s:s, s:[s], s:s, s:[{s:s, s:s, s:i, s:i}]}, s:{s:{}}}",
			"apiVersion", "v1", "kind", "Service", "metadata", "name", "kubernetes",
			"namespace", "default", "uid", uid, "creationTimestamp", now, "labels",
			"component", "apiserver", "provider", "kubernetes", "spec", "type",
			"ClusterIP", "clusterIP", ip, "clusterIPs", ip, "sessionAffinity", "None",
			"ports", "name", "https", "protocol", "TCP", "port", 443, "targetPort", port,
			"status", "loadBalancer");
	if (obj == NULL)
		return;
	api_errors_init(&e);
	if (api_default(k, obj) != 0 || (rv = api_alloc_service_create(a, rnd, obj, &e)) != 0 ||
	    e.n > 0) {
		/* Taken (a stored Service holds it): leave it to the admin. */
		log_warn("http: cannot create the kubernetes service with %s", ip);
		goto out;
	}
	if (codec_tree_to_msgpack(obj, &b, NULL) != 0)
		goto release;
	op = calloc(1, sizeof(*op));
	if (op == NULL)
		goto release;
	op->apply.data = op;
	cmd.type = STORE_CMD_PUT;
	cmd.cond = STORE_COND_ABSENT;
	cmd.time_ms = wall_ms();
	cmd.key = key;
	cmd.key_len = sizeof(key) - 1;
	cmd.val = b.data;
	cmd.val_len = b.len;
	if (replica_apply(r, &op->apply, &cmd, boot_cb) == 0)
		goto out;
	free(op);
	log_warn("http: cannot create the kubernetes service");
release:
	api_alloc_release_service(a, obj);
out:
	api_errors_close(&e);
	buf_free(&b);
	json_decref(obj);
}
