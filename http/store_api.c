/* The store's diagnostic view: /capstan/v1/store/<key>.
 *
 * The key is the rest of the path (from its "/"), percent-decoded; values
 * are raw bytes (base64 in JSON). GET reads one key, ?list=true a prefix
 * (with limit and an opaque continue token), ?watch=true streams events.
 * Reads are linearizable unless ?consistency=local. PUT and DELETE go
 * through Raft on the leader; a follower forwards them to the leader in
 * batches (POST /capstan/v1/store from another master, see "batched
 * forwarding" below). The same batches carry the API creates that
 * followers prepare (http__forward_cmd(), kapi_write.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/internal.h"

#define STORE_PREFIX_LEN (sizeof("/capstan/v1/store") - 1)

struct read_op {
	struct http_read_wait w; /* first */
	bool list;
	char *key;
	size_t key_len;
	char *start_after;
	size_t start_after_len;
	uint64_t limit;
};

struct write_op {
	struct http_op op; /* first */
	struct replica_apply apply;
	size_t key_len;
	char key[]; /* NUL-terminated */
};

/* Room for the JSON answer of a successful write with a short key. */
#define STORE_ANSWER_MAX 512

static json_t *jkey(const char *key, size_t len)
{
	json_t *j = json_stringn(key, len);

	return j != NULL ? j : json_string("");
}

static json_t *jb64(const void *val, size_t len)
{
	char *s = http_base64_encode(val, len);
	json_t *j = s != NULL ? json_string(s) : NULL;

	free(s);
	return j;
}

static json_t *kv_json(const struct store_kv *kv, bool with_value)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "key", jkey(kv->key, kv->key_len));
	if (with_value)
		json_object_set_new(o, "value", jb64(kv->val, kv->val_len));
	json_object_set_new(o, "createRevision", json_integer((json_int_t)kv->create_rev));
	json_object_set_new(o, "modRevision", json_integer((json_int_t)kv->mod_rev));
	return o;
}

/* ------------------------------------------------------------ reads */

static void answer_get(h2o_req_t *req, struct store *st, const char *key, size_t key_len)
{
	struct store_kv kv;
	json_t *o;

	if (store_get(st, key, key_len, &kv) != 0) {
		http_send_status(req, 404, NULL, "key \"%.*s\" not found", (int)key_len, key);
		return;
	}
	o = kv_json(&kv, true);
	if (o != NULL)
		json_object_set_new(o, "revision", json_integer((json_int_t)store_revision(st)));
	http_send_json(req, 200, o);
}

struct list_ctx {
	json_t *items;
	char *last;
	size_t last_len;
	int err;
};

static int list_item_cb(const struct store_kv *kv, void *data)
{
	struct list_ctx *c = data;
	json_t *o = kv_json(kv, true);
	char *last;

	if (o == NULL || json_array_append_new(c->items, o) != 0)
		return -ENOMEM;
	last = realloc(c->last, kv->key_len + 1);
	if (last == NULL)
		return -ENOMEM;
	memcpy(last, kv->key, kv->key_len);
	c->last = last;
	c->last_len = kv->key_len;
	return 0;
}

static void answer_list(h2o_req_t *req, struct store *st, const char *prefix, size_t prefix_len,
			const char *start_after, size_t start_after_len, uint64_t limit)
{
	struct list_ctx c = {0};
	json_t *o;
	bool more = false;
	int rv;

	c.items = json_array();
	o = json_object();
	if (c.items == NULL || o == NULL) {
		json_decref(c.items);
		json_decref(o);
		http_send_status(req, 500, NULL, "out of memory");
		return;
	}
	rv = store_range(st, prefix, prefix_len, start_after, start_after_len, (size_t)limit,
			 list_item_cb, &c, &more);
	if (rv != 0) {
		json_decref(c.items);
		json_decref(o);
		free(c.last);
		http_send_status(req, 500, NULL, "cannot list: %s", strerror(-rv));
		return;
	}
	json_object_set_new(o, "revision", json_integer((json_int_t)store_revision(st)));
	json_object_set_new(o, "items", c.items);
	if (more && c.last != NULL) {
		char *tok = http_continue_encode(c.last, c.last_len);
		if (tok != NULL)
			json_object_set_new(o, "continue", json_string(tok));
		free(tok);
	}
	free(c.last);
	http_send_json(req, 200, o);
}

static void read_op_free(struct read_op *r)
{
	free(r->key);
	free(r->start_after);
	http__op_free(&r->w.op);
}

static void read_ready_cb(struct http_read_wait *w, int status)
{
	struct read_op *r = (struct read_op *)w;
	struct store *st = replica_store(w->op.server->replica);
	struct http_request *hr = w->op.hr;
	h2o_req_t *req = http__op_detach(&w->op);

	if (req == NULL) {
		read_op_free(r);
		return;
	}
	if (status != 0) {
		/* Reads are idempotent: wait for a leader and try again. */
		read_op_free(r);
		if (status == 503)
			http__wait_leader(hr, 503, "cannot serve a consistent read: no leader "
						   "reachable (try ?consistency=local)");
		else
			http__wait_leader(hr, 504, "timed out waiting for a consistent read");
		return;
	}
	if (r->list)
		answer_list(req, st, r->key, r->key_len, r->start_after, r->start_after_len,
			    r->limit);
	else
		answer_get(req, st, r->key, r->key_len);
	read_op_free(r);
}

static bool query_flag(struct http_request *hr, const char *name, bool *ret)
{
	h2o_iovec_t v;

	*ret = false;
	if (!http__query(hr, name, &v))
		return true;
	if (v.len == 0) { /* "?watch" alone */
		*ret = true;
		return true;
	}
	if (http_parse_bool(v.base, v.len, ret) != 0) {
		http_send_status(hr->req, 400, NULL, "%s must be true or false", name);
		return false;
	}
	return true;
}

static bool query_u64(struct http_request *hr, const char *name, bool *ret_present,
		      uint64_t *ret)
{
	h2o_iovec_t v;

	*ret_present = false;
	*ret = 0;
	if (!http__query(hr, name, &v))
		return true;
	if (http_parse_u64(v.base, v.len, ret) != 0) {
		http_send_status(hr->req, 400, NULL, "%s must be a non-negative integer", name);
		return false;
	}
	*ret_present = true;
	return true;
}

static void do_read(struct http_request *hr, const char *key, size_t key_len, bool list)
{
	struct store *st = replica_store(hr->server->replica);
	struct read_op *r;
	char *start_after = NULL;
	size_t start_after_len = 0;
	uint64_t limit = 0;
	bool present;
	h2o_iovec_t v;

	if (list) {
		if (!query_u64(hr, "limit", &present, &limit))
			return;
		if (http__query(hr, "continue", &v) && v.len > 0) {
			int rv = http_continue_decode(v.base, v.len, &start_after, &start_after_len);
			if (rv != 0) {
				http_send_status(hr->req, rv == -ENOMEM ? 500 : 400, NULL,
						 "invalid continue token");
				return;
			}
			if (start_after_len < key_len || memcmp(start_after, key, key_len) != 0) {
				free(start_after);
				http_send_status(hr->req, 400, NULL,
						 "the continue token belongs to another prefix");
				return;
			}
		}
	}
	if (http__query(hr, "consistency", &v)) {
		if (strcmp(v.base, "local") == 0) {
			if (list)
				answer_list(hr->req, st, key, key_len, start_after, start_after_len,
					    limit);
			else
				answer_get(hr->req, st, key, key_len);
			free(start_after);
			return;
		}
		if (strcmp(v.base, "linearizable") != 0 && v.len != 0) {
			free(start_after);
			http_send_status(hr->req, 400, NULL,
					 "consistency must be local or linearizable");
			return;
		}
	}
	r = http__op_new(hr, sizeof(*r));
	if (r == NULL) {
		free(start_after);
		return;
	}
	r->list = list;
	r->limit = limit;
	r->start_after = start_after;
	r->start_after_len = start_after_len;
	r->key = malloc(key_len + 1);
	if (r->key == NULL) {
		h2o_req_t *req = http__op_detach(&r->w.op);
		read_op_free(r);
		http_send_status(req, 500, NULL, "out of memory");
		return;
	}
	memcpy(r->key, key, key_len);
	r->key[key_len] = '\0';
	r->key_len = key_len;
	http__read_start(hr->server, &r->w, read_ready_cb);
}

/* ------------------------------------------------------------ writes */

static void write_op_free(struct write_op *w)
{
	http__op_free(&w->op);
}

/* The answer {"key","createRevision","modRevision","revision"} of a write
 * written straight into @buf (as jansson would, without its cost: this is
 * the answer of every write); 0 when the key needs escaping or does not
 * fit (the caller then uses jansson). */
static int write_answer_json(char *buf, size_t size, const char *key, size_t key_len,
			     const struct store_result *res)
{
	int n;

	if (key_len > size / 2)
		return 0;
	for (size_t i = 0; i < key_len; i++) {
		unsigned char c = (unsigned char)key[i];
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			return 0;
	}
	n = snprintf(buf, size,
		     "{\"key\":\"%.*s\",\"createRevision\":%llu,\"modRevision\":%llu,"
		     "\"revision\":%llu}",
		     (int)key_len, key, (unsigned long long)res->create_rev,
		     (unsigned long long)res->mod_rev, (unsigned long long)res->rev);
	return n > 0 && (size_t)n < size ? n : 0;
}

/* Answers a write from the replica's answer (@status, @res), on the leader
 * or on the follower that forwarded it in a batch. Once replica_apply()
 * has taken the entry, any failure may still see it commit: such a write
 * is answered 504 (outcome unknown), never "not done". */
static void answer_write(h2o_req_t *req, const char *key, size_t key_len, int status,
			 const struct store_result *res)
{
	char body[STORE_ANSWER_MAX];
	int n;

	if (status == REPLICA_EUNKNOWN) {
		http_send_status(req, 504, "Timeout",
				 "leadership was lost during the write: its outcome is unknown");
	} else if (status == REPLICA_ESHUTDOWN) {
		http_send_status(req, 504, "Timeout",
				 "the server is shutting down: the outcome of the write is unknown");
	} else if (status != 0) {
		http_send_status(req, 504, "Timeout",
				 "the write failed after it was proposed (%s): its outcome is "
				 "unknown",
				 strerror(-status));
	} else if (res->status == STORE_EEXIST) {
		http_send_status(req, 409, "AlreadyExists", "key \"%.*s\" already exists",
				 (int)key_len, key);
	} else if (res->status == STORE_ESTALE) {
		http_send_status(req, 409, "Conflict",
				 "key \"%.*s\" has been modified: its modRevision is %llu",
				 (int)key_len, key, (unsigned long long)res->mod_rev);
	} else if (res->status == STORE_ENOENT) {
		http_send_status(req, 404, NULL, "key \"%.*s\" not found", (int)key_len, key);
	} else if (res->status != 0) {
		http_send_status(req, 500, NULL, "the store refused the write: %s",
				 strerror(-res->status));
	} else if ((n = write_answer_json(body, sizeof(body), key, key_len, res)) > 0) {
		http_send_raw(req, 200, "application/json", body, (size_t)n);
	} else {
		json_t *o = json_object();
		if (o != NULL) {
			json_object_set_new(o, "key", jkey(key, key_len));
			json_object_set_new(o, "createRevision",
					    json_integer((json_int_t)res->create_rev));
			json_object_set_new(o, "modRevision", json_integer((json_int_t)res->mod_rev));
			json_object_set_new(o, "revision", json_integer((json_int_t)res->rev));
		}
		http_send_json(req, 200, o);
	}
}

static void apply_cb(struct replica_apply *a, int status, const struct store_result *res)
{
	struct write_op *w = a->data;
	struct http_request *hr = w->op.hr;
	h2o_req_t *req = http__op_detach(&w->op);

	if (req == NULL) {
		write_op_free(w);
		return;
	}
	if (status == REPLICA_ENOTLEADER) {
		/* Not in the contract of the callback; if it ever comes, the
		 * entry was not appended. */
		write_op_free(w);
		http__write_not_leader(hr);
		return;
	}
	answer_write(req, w->key, w->key_len, status, res);
	write_op_free(w);
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void http__answer_refused(struct http_request *hr, int rv)
{
	if (rv == REPLICA_ENOTLEADER)
		http__write_not_leader(hr);
	else if (rv == REPLICA_ESHUTDOWN && hr->forwarded)
		http__send_not_handled(hr->req, "the server is shutting down");
	else if (rv == REPLICA_ESHUTDOWN)
		http_send_status(hr->req, 503, NULL, "the server is shutting down");
	else
		http_send_status(hr->req, 500, NULL, "the write failed: %s", strerror(-rv));
}

/* ------------------------------------------------- batched forwarding
 *
 * A follower forwards store writes to the leader in batches (one POST per
 * loop iteration, http_client_batch()) instead of one HTTP request each;
 * the leader applies every item of a batch through replica_apply() (they
 * reach the log together) and answers once with each item's outcome, from
 * which the follower builds the answer itself.
 *
 * Item: type (1 byte: PUT 1, DELETE 2), condition (1), 0 (2), key length
 * (4, big endian), modRevision (8), the key, then the value.
 * Result: kind (1 byte: FWD_APPLIED, the replica's callback answered with
 * code; FWD_REFUSED, replica_apply() refused with code and nothing was
 * appended), 0 (3), code (4, signed), the store's status (4, signed), 0
 * (4), createRevision, modRevision, revision (8 each).
 * The outcome rules of forward.c hold per item: refused by a replica that
 * is not the leader (or closing), a batch answered HTTP_STATUS_NOT_HANDLED,
 * or nothing sent: wait for a leader and dispatch again; sent and then
 * lost: 504, outcome unknown, never sent again. Values too big for a
 * batch, and leaders that do not know batches (405), take forward.c. */
#define FWD_ITEM_HEAD 16u
#define FWD_RESULT 40u
#define FWD_APPLIED 0
#define FWD_REFUSED 1
#define FWD_BATCH_ITEM_MAX (64u * 1024)
#define FWD_CONTENT_TYPE "application/vnd.capstan.store-batch"

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void put_be64(unsigned char *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static uint32_t get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const unsigned char *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* Follower: one forwarded write. With @cb (http__forward_cmd), the
 * caller answers an applied write and owns @data; without, it is a store
 * write answered here. */
struct fwd_write {
	struct http_op op; /* first */
	http_fwd_cb cb;
	void *data;
	size_t key_len;
	char key[]; /* NUL-terminated */
};

/* Tells the caller of http__forward_cmd() that the request was dealt with
 * (or is gone), then frees the op. */
static void fwd_write_free(struct fwd_write *f)
{
	if (f->cb != NULL)
		f->cb(f->data, NULL, 0, NULL);
	http__op_free(&f->op);
}

/* Nothing was done: wait for a (new) leader, then dispatch again. */
static void fwd_write_again(struct fwd_write *f)
{
	struct http_server *s = f->op.server;
	struct http_request *hr = f->op.req != NULL ? f->op.hr : NULL;

	fwd_write_free(f);
	http__leader_invalidate(s);
	if (hr != NULL) /* else the client left: nothing to do */
		http__wait_leader(hr, 503, "the leader is unreachable, try again");
}

static void fwd_write_fail(struct fwd_write *f, int code, const char *reason, const char *msg)
{
	h2o_req_t *req = http__op_detach(&f->op);

	if (req != NULL)
		http_send_status(req, code, reason, "%s", msg);
	fwd_write_free(f);
}

static void fwd_write_result(struct fwd_write *f, const struct http_client_response *res)
{
	const unsigned char *p = (const unsigned char *)res->body;
	struct store_result sr;
	struct http_request *hr;
	h2o_req_t *req;
	int code;

	if (res->body_len != FWD_RESULT || (p[0] != FWD_APPLIED && p[0] != FWD_REFUSED)) {
		fwd_write_fail(f, 504, "Timeout",
			       "the leader gave an invalid answer: the outcome of the request is "
			       "unknown");
		return;
	}
	code = (int)(int32_t)get_be32(p + 4);
	if (p[0] == FWD_REFUSED && (code == REPLICA_ENOTLEADER || code == REPLICA_ESHUTDOWN)) {
		fwd_write_again(f);
		return;
	}
	hr = f->op.req != NULL ? f->op.hr : NULL;
	req = http__op_detach(&f->op);
	if (req == NULL) {
		fwd_write_free(f);
		return;
	}
	if (p[0] == FWD_REFUSED) {
		http_send_status(req, 500, NULL, "the write failed: %s", strerror(-code));
		fwd_write_free(f);
		return;
	}
	sr.status = (int)(int32_t)get_be32(p + 8);
	sr.create_rev = get_be64(p + 16);
	sr.mod_rev = get_be64(p + 24);
	sr.rev = get_be64(p + 32);
	if (code == REPLICA_ENOTLEADER) /* see apply_cb(): not appended */
		code = REPLICA_EUNKNOWN;
	if (f->cb != NULL) {
		f->cb(f->data, hr, code, &sr);
		f->cb = NULL;
	} else {
		answer_write(req, f->key, f->key_len, code, &sr);
	}
	http__op_free(&f->op);
}

static void fwd_write_cb(void *data, int err, const struct http_client_response *res)
{
	struct fwd_write *f = data;
	struct http_request *hr;

	if (http__fwd_retry(err, res)) {
		fwd_write_again(f);
		return;
	}
	if (err == 0 && res->status == 200) {
		fwd_write_result(f, res);
		return;
	}
	if (err == 0 && res->status == 405) {
		/* A leader that does not take batches did nothing: forward
		 * this one the classic way. */
		hr = f->op.req != NULL ? f->op.hr : NULL;
		fwd_write_free(f);
		if (hr != NULL)
			http__forward(hr);
		return;
	}
	http__fwd_answer(f->op.server, http__op_detach(&f->op), err, res);
	fwd_write_free(f);
}

/* Follower: forwards @cmd in the leader's next batch (or the classic way
 * when it is too big for one); see http__forward_cmd() for @cb. */
static void forward_write(struct http_request *hr, const struct store_cmd *cmd, http_fwd_cb cb,
			  void *data)
{
	static const char *const headers[] = {
		"Content-Type: " FWD_CONTENT_TYPE,
		HTTP_FORWARDED_HEADER ": batch",
		NULL,
	};
	struct http_server *s = hr->server;
	const char *leader = http__leader_url(s);
	unsigned char head[FWD_ITEM_HEAD];
	struct http_client_iov iov[3];
	struct fwd_write *f;
	char url[sizeof(s->leader.url) + sizeof("/capstan/v1/store")];
	int rv;

	if (leader[0] == '\0' || s->leader.is_self) {
		if (cb != NULL)
			cb(data, NULL, 0, NULL);
		http__wait_leader(hr, 503, "no leader is known, try again");
		return;
	}
	if (cmd->key_len + cmd->val_len > FWD_BATCH_ITEM_MAX ||
	    (size_t)snprintf(url, sizeof(url), "%s/capstan/v1/store", leader) >= sizeof(url)) {
		if (cb != NULL)
			cb(data, NULL, 0, NULL);
		http__forward(hr);
		return;
	}
	f = http__op_new(hr, sizeof(*f) + cmd->key_len + 1);
	if (f == NULL) {
		if (cb != NULL)
			cb(data, NULL, 0, NULL);
		return;
	}
	f->cb = cb;
	f->data = data;
	memcpy(f->key, cmd->key, cmd->key_len);
	f->key[cmd->key_len] = '\0';
	f->key_len = cmd->key_len;
	memset(head, 0, sizeof(head));
	head[0] = (unsigned char)cmd->type;
	head[1] = (unsigned char)cmd->cond;
	put_be32(head + 4, (uint32_t)cmd->key_len);
	put_be64(head + 8, cmd->mod_rev);
	iov[0].base = head;
	iov[0].len = sizeof(head);
	iov[1].base = cmd->key;
	iov[1].len = cmd->key_len;
	iov[2].base = cmd->val;
	iov[2].len = cmd->val_len;
	rv = http_client_batch(s->client, url, headers, iov, 3, HTTP_FORWARD_TIMEOUT_MS,
			       fwd_write_cb, f);
	if (rv == -ECANCELED)
		fwd_write_fail(f, 503, NULL, "the server is shutting down");
	else if (rv != 0)
		fwd_write_fail(f, 500, NULL, "cannot forward the request to the leader");
}

void http__forward_cmd(struct http_request *hr, const struct store_cmd *cmd, http_fwd_cb cb,
		       void *data)
{
	forward_write(hr, cmd, cb, data);
}

/* Leader: one batch of forwarded writes, answered when all are. */
struct batch_entry {
	struct replica_apply apply;
	struct batch_op *batch;
	int kind;
	int code;
	struct store_result res;
};

struct batch_op {
	struct http_op op; /* first */
	unsigned n;
	unsigned left; /* entries not answered yet */
	struct batch_entry e[];
};

static void batch_finish(struct batch_op *b)
{
	h2o_req_t *req = http__op_detach(&b->op);
	unsigned char *body, *p;
	size_t len = (size_t)b->n * (4 + FWD_RESULT);

	if (req == NULL) {
		http__op_free(&b->op);
		return;
	}
	body = h2o_mem_alloc_pool(&req->pool, len);
	for (unsigned i = 0; i < b->n; i++) {
		struct batch_entry *e = &b->e[i];
		p = body + (size_t)i * (4 + FWD_RESULT);
		memset(p, 0, 4 + FWD_RESULT);
		put_be32(p, FWD_RESULT);
		p += 4;
		p[0] = (unsigned char)e->kind;
		put_be32(p + 4, (uint32_t)(int32_t)e->code);
		put_be32(p + 8, (uint32_t)(int32_t)e->res.status);
		put_be64(p + 16, e->res.create_rev);
		put_be64(p + 24, e->res.mod_rev);
		put_be64(p + 32, e->res.rev);
	}
	http__op_free(&b->op);
	http_send_raw(req, 200, FWD_CONTENT_TYPE, body, len);
}

static void batch_apply_cb(struct replica_apply *a, int status, const struct store_result *res)
{
	struct batch_entry *e = a->data;
	struct batch_op *b = e->batch;

	e->kind = FWD_APPLIED;
	e->code = status;
	if (status == 0 && res != NULL)
		e->res = *res;
	if (--b->left == 0)
		batch_finish(b);
}

/* Leader: POST /capstan/v1/store from another master (see above). */
static void do_batch(struct http_request *hr)
{
	h2o_req_t *req = hr->req;
	const unsigned char *p = (const unsigned char *)req->entity.base;
	size_t len = req->entity.len, off = 0;
	unsigned n = 0;
	struct batch_op *b;
	uint64_t now;

	if (!hr->forwarded) {
		http_send_status(req, 405, NULL, "method POST is not allowed on the store");
		return;
	}
	/* Validate the whole batch first: all or nothing. */
	while (off < len) {
		uint32_t item, key_len;
		if (len - off < 4 || (item = get_be32(p + off)) > len - off - 4 ||
		    item < FWD_ITEM_HEAD || (key_len = get_be32(p + off + 8)) > item - FWD_ITEM_HEAD ||
		    (p[off + 4] != STORE_CMD_PUT && p[off + 4] != STORE_CMD_DELETE) ||
		    p[off + 5] > STORE_COND_MOD_REV || n >= HTTP_CLIENT_BATCH_ITEMS) {
			http_send_status(req, 400, NULL, "malformed batch of writes");
			return;
		}
		off += 4 + item;
		n++;
	}
	if (n == 0) {
		http_send_status(req, 400, NULL, "empty batch of writes");
		return;
	}
	if (!http__write_here(hr))
		return;
	b = http__op_new(hr, sizeof(*b) + n * sizeof(b->e[0]));
	if (b == NULL)
		return;
	b->n = n;
	b->left = n + 1; /* +1 until every entry was submitted */
	now = wall_ms();
	off = 0;
	for (unsigned i = 0; i < n; i++) {
		struct batch_entry *e = &b->e[i];
		uint32_t item = get_be32(p + off);
		const unsigned char *q = p + off + 4;
		struct store_cmd cmd = {0};
		int rv;

		cmd.type = (enum store_cmd_type)q[0];
		cmd.cond = (enum store_cond)q[1];
		cmd.key_len = get_be32(q + 4);
		cmd.mod_rev = get_be64(q + 8);
		cmd.key = (const char *)q + FWD_ITEM_HEAD;
		if (cmd.type == STORE_CMD_PUT) {
			cmd.val = q + FWD_ITEM_HEAD + cmd.key_len;
			cmd.val_len = item - FWD_ITEM_HEAD - cmd.key_len;
		}
		cmd.time_ms = now;
		off += 4 + item;
		e->batch = b;
		e->apply.data = e;
		rv = replica_apply(hr->server->replica, &e->apply, &cmd, batch_apply_cb);
		if (rv != 0) {
			e->kind = FWD_REFUSED;
			e->code = rv;
			b->left--;
		}
	}
	if (--b->left == 0)
		batch_finish(b);
}

/* ------------------------------------------------------------ PUT, DELETE */

static void do_write(struct http_request *hr, const char *key, size_t key_len, bool is_delete)
{
	struct http_server *s = hr->server;
	struct store_cmd cmd = {0};
	struct write_op *w;
	uint64_t mod_rev = 0;
	bool create = false, has_mod_rev = false;
	int rv;

	if (!query_flag(hr, "create", &create) ||
	    !query_u64(hr, "modRevision", &has_mod_rev, &mod_rev))
		return;
	if (is_delete && create) {
		http_send_status(hr->req, 400, NULL, "create applies to PUT only");
		return;
	}
	if (create && has_mod_rev) {
		http_send_status(hr->req, 400, NULL, "use either create or modRevision");
		return;
	}
	cmd.type = is_delete ? STORE_CMD_DELETE : STORE_CMD_PUT;
	cmd.cond = create ? STORE_COND_ABSENT : has_mod_rev ? STORE_COND_MOD_REV : STORE_COND_NONE;
	cmd.mod_rev = mod_rev;
	cmd.key = key;
	cmd.key_len = key_len;
	if (!is_delete) {
		cmd.val = hr->req->entity.base != NULL ? hr->req->entity.base : "";
		cmd.val_len = hr->req->entity.len;
	}
	if (!hr->forwarded && http__role(s) == HTTP_ROLE_FOLLOWER) {
		forward_write(hr, &cmd, NULL, NULL);
		return;
	}
	if (!http__write_here(hr))
		return;
	w = http__op_new(hr, sizeof(*w) + key_len + 1);
	if (w == NULL)
		return;
	memcpy(w->key, key, key_len);
	w->key[key_len] = '\0';
	w->key_len = key_len;
	cmd.key = w->key;
	cmd.time_ms = wall_ms();
	w->apply.data = w;
	rv = replica_apply(s->replica, &w->apply, &cmd, apply_cb);
	if (rv == 0)
		return;
	/* Not appended: nothing was done. */
	http__op_detach(&w->op);
	write_op_free(w);
	http__answer_refused(hr, rv);
}

/* ------------------------------------------------------------ entry */

void http__store(struct http_request *hr)
{
	h2o_req_t *req = hr->req;
	const char *raw = hr->path.base + STORE_PREFIX_LEN;
	size_t raw_len = hr->path.len - STORE_PREFIX_LEN;
	char *key;
	size_t key_len;
	bool watch = false, list = false, present;
	uint64_t from_rev = 0;
	json_t *check;

	key = h2o_mem_alloc_pool(&req->pool, raw_len + 2);
	if (raw_len == 0) {
		key[0] = '/';
		key_len = 1;
	} else if (http_percent_decode(raw, raw_len, false, key, &key_len) != 0) {
		http_send_status(req, 400, NULL, "malformed percent-encoding in the key");
		return;
	}
	key[key_len] = '\0';
	/* Keys travel in JSON: they must be UTF-8 without NUL. */
	check = memchr(key, 0, key_len) == NULL ? json_stringn(key, key_len) : NULL;
	if (check == NULL) {
		http_send_status(req, 400, NULL, "the key must be UTF-8 text");
		return;
	}
	json_decref(check);

	if (http__method_is(req, "GET") || http__method_is(req, "HEAD")) {
		if (!query_flag(hr, "watch", &watch) || !query_flag(hr, "list", &list))
			return;
		if (watch) {
			if (!query_u64(hr, "fromRevision", &present, &from_rev))
				return;
			http__watch_start(hr, key, key_len, from_rev);
			return;
		}
		do_read(hr, key, key_len, list);
		return;
	}
	if (http__method_is(req, "PUT")) {
		do_write(hr, key, key_len, false);
		return;
	}
	if (http__method_is(req, "DELETE")) {
		do_write(hr, key, key_len, true);
		return;
	}
	if (http__method_is(req, "POST") && raw_len == 0) {
		do_batch(hr);
		return;
	}
	http_send_status(req, 405, NULL, "method %.*s is not allowed on the store",
			 (int)req->method.len, req->method.base);
}
