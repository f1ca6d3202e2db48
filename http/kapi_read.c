/* get and list of API objects from the local store.
 *
 * Reads are linearizable by default, through the same read path as the
 * store's view (read.c): a barrier on the leader, a read index from the
 * leader on a follower. resourceVersion=0 ("any") answers from local
 * memory at once, and so does a resourceVersion this replica has already
 * applied. Objects go from msgpack to JSON or msgpack without a tree, and
 * Table rows straight from the stored bytes (kapi__table_row); only YAML
 * answers build trees.
 *
 * limit/continue: the continue token is the opaque form of the last key
 * returned; a continued list reads the store as it is then (not a snapshot
 * at the first page's revision, unlike etcd).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/kapi.h"

struct read_op {
	struct http_read_wait w; /* first */
	struct kapi_target *t;   /* in the request's pool */
	struct kapi_selector *sel;
	bool list;
	char *start_after; /* heap */
	size_t start_after_len;
	uint64_t limit;
};

static void answer_get(struct http_request *hr, struct kapi_target *t)
{
	struct store *st = replica_store(hr->server->replica);
	struct store_kv kv;

	if (store_get(st, t->key, t->key_len, &kv) != 0) {
		kapi__send_not_found(hr->req, t->kind, t->name);
		return;
	}
	kapi__send_stored(hr, t, 200, kv.val, kv.val_len, kv.mod_rev);
}

static bool has_prefix(const struct store_kv *kv, const char *p, size_t n)
{
	return kv->key_len >= n && memcmp(kv->key, p, n) == 0;
}

/* Opens a list answer (JSON or msgpack): everything before the items. The
 * list's metadata goes after them (the continue token is known only
 * then); clients read keys in any order. */
static int list_open(const struct api_kind *k, bool msgpack, struct buf *out, size_t *ret_at)
{
	char kind[128];
	int rc;

	snprintf(kind, sizeof(kind), "%sList", k->kind);
	if (msgpack) {
		if ((rc = codec_mp_map(out, 4)) != 0 || (rc = codec_mp_cstr(out, "kind")) != 0 ||
		    (rc = codec_mp_cstr(out, kind)) != 0 ||
		    (rc = codec_mp_cstr(out, "apiVersion")) != 0 ||
		    (rc = codec_mp_cstr(out, api_kind_api_version(k))) != 0 ||
		    (rc = codec_mp_cstr(out, "items")) != 0)
			return rc;
		return codec_mp_array32_open(out, ret_at);
	}
	if ((rc = buf_append_str(out, "{\"kind\":\"")) != 0 || (rc = buf_append_str(out, kind)) != 0 ||
	    (rc = buf_append_str(out, "\",\"apiVersion\":\"")) != 0 ||
	    (rc = buf_append_str(out, api_kind_api_version(k))) != 0)
		return rc;
	return buf_append_str(out, "\",\"items\":[");
}

static int list_close(bool msgpack, struct buf *out, size_t at, uint32_t n, uint64_t rev,
		      const char *tok)
{
	char b[24];
	int rc;

	snprintf(b, sizeof(b), "%llu", (unsigned long long)rev);
	if (msgpack) {
		codec_mp_container32_close(out, at, n);
		if ((rc = codec_mp_cstr(out, "metadata")) != 0 ||
		    (rc = codec_mp_map(out, tok != NULL ? 2 : 1)) != 0 ||
		    (rc = codec_mp_cstr(out, "resourceVersion")) != 0 ||
		    (rc = codec_mp_cstr(out, b)) != 0)
			return rc;
		if (tok != NULL && ((rc = codec_mp_cstr(out, "continue")) != 0 ||
				    (rc = codec_mp_cstr(out, tok)) != 0))
			return rc;
		return 0;
	}
	/* The token is base64url: nothing to escape. */
	if ((rc = buf_append_str(out, "],\"metadata\":{\"resourceVersion\":\"")) != 0 ||
	    (rc = buf_append_str(out, b)) != 0)
		return rc;
	if (tok != NULL && ((rc = buf_append_str(out, "\",\"continue\":\"")) != 0 ||
			    (rc = buf_append_str(out, tok)) != 0))
		return rc;
	return buf_append_str(out, "\"}}");
}

/* YAML lists go through a tree of the whole list. */
static void answer_yaml(h2o_req_t *req, const struct api_kind *k, json_t *trees, uint64_t rev,
			const char *tok)
{
	json_t *meta = json_object(), *o;
	char b[128];

	snprintf(b, sizeof(b), "%llu", (unsigned long long)rev);
	json_object_set_new(meta, "resourceVersion", json_string(b));
	if (tok != NULL)
		json_object_set_new(meta, "continue", json_string(tok));
	snprintf(b, sizeof(b), "%sList", k->kind);
	o = json_pack("{s:s, s:s, s:o, s:O}", "kind", b, "apiVersion", api_kind_api_version(k),
		      "metadata", meta, "items", trees);
	if (o == NULL) {
		http_send_status(req, 500, NULL, "out of memory");
		return;
	}
	kapi__send_tree(req, 200, o);
	json_decref(o);
}

static void answer_list(struct http_request *hr, struct kapi_target *t,
			const struct kapi_selector *sel, const char *start_after,
			size_t start_after_len, uint64_t limit)
{
	h2o_req_t *req = hr->req;
	struct store *st = replica_store(hr->server->replica);
	enum kapi_format f = kapi__format(req);
	bool msgpack = kapi__is_msgpack(f);
	struct kapi_table tw;
	struct store_iter it;
	struct store_kv kv;
	struct buf out = {0};
	json_t *trees = NULL, *o;
	const char *last = NULL;
	size_t last_len = 0, at = 0;
	uint64_t count = 0, rev = store_revision(st);
	bool more = false, fail = false;
	char *tok = NULL;

	if (f == KAPI_YAML)
		fail = (trees = json_array()) == NULL;
	else if (kapi__is_table(f))
		fail = kapi__table_begin(&tw, &out, hr, t->kind, f) != 0;
	else
		fail = list_open(t->kind, msgpack, &out, &at) != 0;
	if (start_after != NULL)
		store_iter_seek(st, &it, start_after, start_after_len);
	else
		store_iter_seek(st, &it, t->key, t->key_len);
	while (!fail && store_iter_next(&it, &kv)) {
		if (!has_prefix(&kv, t->key, t->key_len))
			break;
		if (start_after != NULL && kv.key_len == start_after_len &&
		    memcmp(kv.key, start_after, start_after_len) == 0)
			continue;
		if (limit > 0 && count == limit) {
			more = true;
			break;
		}
		if (!kapi__selector_match(sel, kv.val, kv.val_len))
			continue;
		if (trees != NULL) {
			o = kapi__tree(kv.val, kv.val_len, kv.mod_rev);
			fail = o == NULL || json_array_append_new(trees, o) != 0;
		} else if (kapi__is_table(f)) {
			fail = kapi__table_row(&tw, kv.key, kv.key_len, kv.val, kv.val_len,
					       kv.mod_rev) != 0;
		} else {
			fail = (!msgpack && count > 0 && buf_append(&out, ",", 1) != 0) ||
			       kapi__encode(f, kv.val, kv.val_len, kv.mod_rev, &out) != 0;
		}
		count++;
		last = kv.key;
		last_len = kv.key_len;
	}
	if (!fail && more && last != NULL && (tok = http_continue_encode(last, last_len)) == NULL)
		fail = true;
	if (!fail && trees != NULL) {
		answer_yaml(req, t->kind, trees, rev, tok);
		json_decref(trees);
		free(tok);
		return;
	}
	if (!fail)
		fail = (kapi__is_table(f) ? kapi__table_end(&tw, rev, tok)
					  : list_close(msgpack, &out, at, (uint32_t)count, rev, tok)) !=
		       0;
	free(tok);
	json_decref(trees);
	if (fail) {
		buf_free(&out);
		http_send_status(req, 500, NULL, "cannot encode the list");
		return;
	}
	kapi__send_buf(req, 200, kapi__content_type(f), &out);
}

static void read_op_free(struct read_op *r)
{
	free(r->start_after);
	http__op_free(&r->w.op);
}

static void read_ready_cb(struct http_read_wait *w, int status)
{
	struct read_op *r = (struct read_op *)w;
	struct http_request *hr = w->op.hr;
	h2o_req_t *req = http__op_detach(&w->op);

	if (req == NULL) {
		read_op_free(r);
		return;
	}
	if (status != 0) {
		read_op_free(r);
		if (status == 503)
			http__wait_leader(hr, 503, "cannot serve a consistent read: no leader "
						   "reachable (try resourceVersion=0)");
		else
			http__wait_leader(hr, 504, "timed out waiting for a consistent read");
		return;
	}
	if (r->list)
		answer_list(hr, r->t, r->sel, r->start_after, r->start_after_len, r->limit);
	else
		answer_get(hr, r->t);
	read_op_free(r);
}

/* Whether the request may be answered from local memory now. */
static bool read_local(struct http_request *hr)
{
	h2o_iovec_t v;
	uint64_t rv;

	if (!http__query(hr, "resourceVersion", &v) || v.len == 0)
		return false;
	if (http_parse_u64(v.base, v.len, &rv) != 0)
		return false;
	return rv == 0 || rv <= store_revision(replica_store(hr->server->replica));
}

static void do_read(struct http_request *hr, struct kapi_target *t, bool list)
{
	struct read_op *r;
	struct kapi_selector *sel = NULL;
	char *start_after = NULL;
	size_t start_after_len = 0;
	uint64_t limit = 0;
	bool present;
	h2o_iovec_t v;

	if (http__query(hr, "resourceVersion", &v) && v.len > 0 &&
	    http_parse_u64(v.base, v.len, &limit) != 0) {
		kapi__send_error(hr->req, 400, "BadRequest", NULL, NULL, NULL,
				 "invalid resourceVersion \"%s\"", v.base);
		return;
	}
	limit = 0;
	if (list) {
		if (!kapi__query_u64(hr, "limit", &present, &limit) ||
		    !kapi__selector(hr, t->kind, &sel))
			return;
		if (http__query(hr, "continue", &v) && v.len > 0) {
			int rv = http_continue_decode(v.base, v.len, &start_after, &start_after_len);
			if (rv != 0 || start_after_len < t->key_len ||
			    memcmp(start_after, t->key, t->key_len) != 0) {
				free(start_after);
				http_send_status(hr->req, rv == -ENOMEM ? 500 : 400, NULL,
						 "invalid continue token");
				return;
			}
		}
	}
	if (read_local(hr)) {
		if (list)
			answer_list(hr, t, sel, start_after, start_after_len, limit);
		else
			answer_get(hr, t);
		free(start_after);
		return;
	}
	r = http__op_new(hr, sizeof(*r));
	if (r == NULL) {
		free(start_after);
		return;
	}
	r->t = t;
	r->sel = sel;
	r->list = list;
	r->limit = limit;
	r->start_after = start_after;
	r->start_after_len = start_after_len;
	http__read_start(hr->server, &r->w, read_ready_cb);
}

void kapi__get(struct http_request *hr, struct kapi_target *t)
{
	do_read(hr, t, false);
}

void kapi__list(struct http_request *hr, struct kapi_target *t)
{
	do_read(hr, t, true);
}
