/* Watch streams: the one stream implementation of the API server (see
 * watch.h), and the store view's own encoding of it (newline-delimited
 * JSON events of raw entries, http__watch_start).
 *
 * Flow control comes from h2o: one send is outstanding at a time and its
 * buffer lives until h2o calls proceed. Only then are more events pulled
 * from the store watch (at most HTTP_WATCH_BATCH bytes per send), so the
 * only queue is the store's history; a reader too slow for it gets the
 * 410 ERROR event when its position is compacted away.
 *
 * Something is sent at once (headers leave with the first data), and a
 * heartbeat after HTTP_WATCH_HEARTBEAT_MS of silence (a bookmark where
 * the stream has them), so an HTTP/1.1 client that vanished is noticed by
 * a failing write. The stream ends when the client goes (generator stop),
 * on STORE_EGONE, at its deadline, or when the server closes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/watch.h"

struct http_watch {
	h2o_generator_t gen; /* first */
	struct http_server *server;
	h2o_req_t *req;
	const struct http_watch_ops *ops;
	void *data;
	struct http_watch_params p;
	struct store_watch *sw;
	struct buf buf; /* pending output, sent from its start */
	h2o_iovec_t iov;
	uint64_t last_send;
	bool linked;
	bool sending;
	bool ending; /* send the final chunk at the next chance */
	bool done;   /* final chunk sent or client gone */
	LIST_ENTRY(http_watch) link;
};

static void watch_detach(struct http_watch *w)
{
	if (w->sw != NULL) {
		store_watch_free(w->sw);
		w->sw = NULL;
	}
	if (w->linked) {
		LIST_REMOVE(w, link);
		w->linked = false;
	}
}

static void watch_dispose(void *p)
{
	struct http_watch *w = p;

	watch_detach(w);
	buf_free(&w->buf);
}

static void send_buf(struct http_watch *w, bool final)
{
	w->iov = h2o_iovec_init(w->buf.data, w->buf.len);
	w->last_send = http__now(w->server);
	if (final) {
		w->done = true;
		watch_detach(w);
		h2o_send(w->req, &w->iov, w->buf.len > 0 ? 1 : 0, H2O_SEND_STATE_FINAL);
		return;
	}
	w->sending = true;
	h2o_send(w->req, &w->iov, 1, H2O_SEND_STATE_IN_PROGRESS);
}

/* Replaces what is pending with the ERROR event and ends the stream. */
static void fail(struct http_watch *w, int code, const char *reason, const char *msg)
{
	w->buf.len = 0;
	w->ops->error(w->data, code, reason, msg, &w->buf);
	send_buf(w, true);
}

/* Sends what is pending; with @heartbeat a bookmark when nothing is (and
 * the stream has them). */
static void pump(struct http_watch *w, bool heartbeat)
{
	struct store_event ev;
	int rv;

	if (w->sending || w->done)
		return;
	w->buf.len = 0;
	if (w->ending) {
		send_buf(w, true);
		return;
	}
	while (w->buf.len < HTTP_WATCH_BATCH) {
		rv = store_watch_next(w->sw, &ev);
		if (rv == -EAGAIN)
			break;
		if (rv == STORE_EGONE) {
			fail(w, 410, "Expired", w->p.gone_msg);
			return;
		}
		if (rv != 0 || w->ops->event(w->data, &ev, &w->buf) < 0) {
			fail(w, 500, "InternalError", "the watch failed");
			return;
		}
	}
	if (w->buf.len == 0) {
		if (!heartbeat || !w->p.heartbeat_bookmarks)
			return;
		if (w->ops->bookmark(w->data, store_watch_revision(w->sw), &w->buf) != 0) {
			send_buf(w, true);
			return;
		}
	}
	send_buf(w, false);
}

static void proceed_cb(h2o_generator_t *gen, h2o_req_t *req)
{
	struct http_watch *w = (struct http_watch *)gen;

	(void)req;
	w->sending = false;
	pump(w, false);
}

static void stop_cb(h2o_generator_t *gen, h2o_req_t *req)
{
	struct http_watch *w = (struct http_watch *)gen;

	(void)req;
	w->done = true;
	w->sending = false;
	watch_detach(w);
}

static void store_cb(struct store_watch *sw, void *data)
{
	struct http_watch *w = data;

	(void)sw;
	pump(w, false);
}

struct http_watch *http__watch_new(struct http_request *hr, const struct http_watch_ops *ops,
				   void *data)
{
	h2o_req_t *req = hr->req;
	struct http_watch *w = h2o_mem_alloc_shared(&req->pool, sizeof(*w), watch_dispose);

	memset(w, 0, sizeof(*w));
	w->gen.proceed = proceed_cb;
	w->gen.stop = stop_cb;
	w->server = hr->server;
	w->req = req;
	w->ops = ops;
	w->data = data;
	return w;
}

struct buf *http__watch_buf(struct http_watch *w)
{
	return &w->buf;
}

void http__watch_begin(struct http_watch *w, const char *prefix, size_t prefix_len,
		       uint64_t from, const struct http_watch_params *p)
{
	struct http_server *s = w->server;
	h2o_req_t *req = w->req;
	int rv;

	w->p = *p;
	rv = store_watch_new(replica_store(s->replica), prefix, prefix_len, from, store_cb, w,
			     &w->sw);
	if (rv != 0 && rv != STORE_EGONE) {
		buf_free(&w->buf);
		http_send_status(req, 500, NULL, "cannot watch: %s", strerror(-rv));
		return;
	}
	req->res.status = 200;
	req->res.reason = "OK";
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
		       p->content_type, strlen(p->content_type));
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
		       H2O_STRLIT("no-cache, private"));
	h2o_start_response(req, &w->gen);
	if (rv == STORE_EGONE) {
		fail(w, 410, "Expired", p->gone_msg);
		return;
	}
	LIST_INSERT_HEAD(&s->watches, w, link);
	w->linked = true;
	if (w->buf.len > 0) {
		send_buf(w, false); /* what goes first; pump() follows on proceed */
		return;
	}
	pump(w, true);
	if (!w->sending && !w->done && p->keepalive != NULL) {
		/* Headers leave with the first send: a quiet stream would keep
		 * its client waiting for them. */
		w->buf.len = 0;
		if (buf_append(&w->buf, p->keepalive, p->keepalive_len) == 0)
			send_buf(w, false);
	}
}

void http__watch_tick(struct http_server *s, uint64_t now_ms)
{
	struct http_watch *w = LIST_FIRST(&s->watches), *next;

	while (w != NULL) {
		next = LIST_NEXT(w, link);
		if (!w->sending) {
			if (w->p.deadline_ms != 0 && now_ms >= w->p.deadline_ms) {
				watch_detach(w);
				w->ending = true;
				pump(w, false);
			} else if (now_ms - w->last_send >= HTTP_WATCH_HEARTBEAT_MS) {
				pump(w, true);
			}
		}
		w = next;
	}
}

void http__watch_close_all(struct http_server *s)
{
	struct http_watch *w;

	while ((w = LIST_FIRST(&s->watches)) != NULL) {
		/* No more events; the final chunk leaves now or after the
		 * outstanding send. */
		watch_detach(w);
		w->ending = true;
		if (!w->sending)
			pump(w, false);
	}
}

/* ------------------------------------------------------------ store view */

static int append_json(struct buf *out, json_t *o)
{
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	size_t mark = out->len;
	int rc;

	json_decref(o);
	if (s == NULL)
		return -ENOMEM;
	rc = buf_append(out, s, strlen(s));
	if (rc == 0 && (rc = buf_append(out, "\n", 1)) != 0)
		out->len = mark;
	free(s);
	return rc;
}

static int store_event(void *data, const struct store_event *ev, struct buf *out)
{
	char *val = http_base64_encode(ev->kv.val, ev->kv.val_len);
	json_t *key = json_stringn(ev->kv.key, ev->kv.key_len);
	json_t *o;

	(void)data;
	if (val == NULL) {
		json_decref(key);
		return -ENOMEM;
	}
	o = json_pack("{s:s, s:I, s:o, s:s, s:I, s:I}", "type",
		      ev->type == STORE_EVENT_PUT ? "PUT" : "DELETE", "revision",
		      (json_int_t)ev->rev, "key", key != NULL ? key : json_string(""), "value", val,
		      "createRevision", (json_int_t)ev->kv.create_rev, "modRevision",
		      (json_int_t)ev->kv.mod_rev);
	free(val);
	return append_json(out, o);
}

static int store_bookmark(void *data, uint64_t rev, struct buf *out)
{
	(void)data;
	return append_json(out, json_pack("{s:s, s:I}", "type", "BOOKMARK", "revision",
					  (json_int_t)rev));
}

static int store_error(void *data, int code, const char *reason, const char *msg,
		       struct buf *out)
{
	(void)data;
	return append_json(out, json_pack("{s:s, s:i, s:s, s:s}", "type", "ERROR", "code", code,
					  "reason", reason, "message", msg));
}

static const struct http_watch_ops store_ops = {
	.event = store_event,
	.bookmark = store_bookmark,
	.error = store_error,
};

void http__watch_start(struct http_request *hr, const char *prefix, size_t prefix_len,
		       uint64_t from_rev)
{
	static const struct http_watch_params p = {
		.content_type = "application/json",
		.heartbeat_bookmarks = true,
		.gone_msg = "the requested revision has been compacted; "
			    "list again and watch from its revision",
	};

	http__watch_begin(http__watch_new(hr, &store_ops, NULL), prefix, prefix_len, from_rev, &p);
}
