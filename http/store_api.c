/* The store's diagnostic view: /capstan/v1/store/<key>.
 *
 * The key is the rest of the path (from its "/"), percent-decoded; values
 * are raw bytes (base64 in JSON). GET reads one key, ?list=true a prefix
 * (with limit and an opaque continue token), ?watch=true streams events.
 * Reads are linearizable unless ?consistency=local. PUT and DELETE go
 * through Raft on the leader; a follower forwards them.
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
	bool is_delete;
	char *key;
	size_t key_len;
};

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
	free(w->key);
	http__op_free(&w->op);
}

/* Once replica_apply() has taken the entry, any failure may still see it
 * commit: such a write is answered 504 (outcome unknown), never "not done". */
static void apply_cb(struct replica_apply *a, int status, const struct store_result *res)
{
	struct write_op *w = a->data;
	struct http_request *hr = w->op.hr;
	h2o_req_t *req = http__op_detach(&w->op);
	json_t *o;

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
	} else if (status == REPLICA_EUNKNOWN) {
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
				 (int)w->key_len, w->key);
	} else if (res->status == STORE_ESTALE) {
		http_send_status(req, 409, "Conflict",
				 "key \"%.*s\" has been modified: its modRevision is %llu",
				 (int)w->key_len, w->key, (unsigned long long)res->mod_rev);
	} else if (res->status == STORE_ENOENT) {
		http_send_status(req, 404, NULL, "key \"%.*s\" not found", (int)w->key_len, w->key);
	} else if (res->status != 0) {
		http_send_status(req, 500, NULL, "the store refused the write: %s",
				 strerror(-res->status));
	} else {
		o = json_object();
		if (o != NULL) {
			json_object_set_new(o, "key", jkey(w->key, w->key_len));
			json_object_set_new(o, "createRevision",
					    json_integer((json_int_t)res->create_rev));
			json_object_set_new(o, "modRevision", json_integer((json_int_t)res->mod_rev));
			json_object_set_new(o, "revision", json_integer((json_int_t)res->rev));
		}
		http_send_json(req, 200, o);
	}
	write_op_free(w);
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

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
	if (!http__write_here(hr))
		return;
	w = http__op_new(hr, sizeof(*w));
	if (w == NULL)
		return;
	w->is_delete = is_delete;
	w->key = malloc(key_len + 1);
	if (w->key == NULL) {
		http__op_detach(&w->op);
		write_op_free(w);
		http_send_status(hr->req, 500, NULL, "out of memory");
		return;
	}
	memcpy(w->key, key, key_len);
	w->key[key_len] = '\0';
	w->key_len = key_len;
	cmd.type = is_delete ? STORE_CMD_DELETE : STORE_CMD_PUT;
	cmd.cond = create ? STORE_COND_ABSENT : has_mod_rev ? STORE_COND_MOD_REV : STORE_COND_NONE;
	cmd.mod_rev = mod_rev;
	cmd.time_ms = wall_ms();
	cmd.key = w->key;
	cmd.key_len = key_len;
	if (!is_delete) {
		cmd.val = hr->req->entity.base != NULL ? hr->req->entity.base : "";
		cmd.val_len = hr->req->entity.len;
	}
	w->apply.data = w;
	rv = replica_apply(s->replica, &w->apply, &cmd, apply_cb);
	if (rv == 0)
		return;
	/* Not appended: nothing was done. */
	http__op_detach(&w->op);
	write_op_free(w);
	if (rv == REPLICA_ENOTLEADER)
		http__write_not_leader(hr);
	else if (rv == REPLICA_ESHUTDOWN && hr->forwarded)
		http__send_not_handled(hr->req, "the server is shutting down");
	else if (rv == REPLICA_ESHUTDOWN)
		http_send_status(hr->req, 503, NULL, "the server is shutting down");
	else
		http_send_status(hr->req, 500, NULL, "the write failed: %s", strerror(-rv));
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
	http_send_status(req, 405, NULL, "method %.*s is not allowed on the store",
			 (int)req->method.len, req->method.base);
}
