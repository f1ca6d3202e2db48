/* watch of API objects: newline-delimited {"type":..,"object":..} events
 * (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR) of a resource's key prefix,
 * from the store's watch, filtered by the request's selectors.
 *
 * Flow control as in watch.c: one send outstanding at a time, events
 * pulled from the store watch only when h2o asks for more, so the only
 * queue is the store's history; a reader too slow for it gets a 410 ERROR
 * event when its position is compacted away.
 *
 * Without a resourceVersion (or with "0") the watch first sends the
 * current objects as ADDED events, as kube-apiserver does; with one it
 * replays what happened after it. A DELETED event carries the last state
 * of the object with the deletion's revision. BOOKMARKs are sent after
 * HTTP_WATCH_HEARTBEAT_MS of silence when the client allows them.
 * Selector filtering looks at the new state only (an object leaving the
 * selection gets no DELETED event yet).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/kapi.h"

struct kapi_watch {
	h2o_generator_t gen; /* first */
	struct http_server *server;
	struct http_request *hr;
	h2o_req_t *req;
	struct kapi_target *t;
	struct kapi_selector *sel;
	struct store_watch *sw;
	enum kapi_format format;
	struct buf buf;
	h2o_iovec_t iov;
	uint64_t last_send;
	uint64_t deadline; /* loop ms; 0 = none */
	bool bookmarks;
	bool linked, sending, ending, done;
	LIST_ENTRY(kapi_watch) link;
};

static LIST_HEAD(, kapi_watch) watches = LIST_HEAD_INITIALIZER(watches);

static void watch_detach(struct kapi_watch *w)
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
	struct kapi_watch *w = p;

	watch_detach(w);
	buf_free(&w->buf);
}

static bool append_str(struct kapi_watch *w, const char *s)
{
	return buf_append(&w->buf, s, strlen(s)) == 0;
}

static bool append_tree_event(struct kapi_watch *w, const char *type, json_t *obj)
{
	char *s;
	bool ok;

	if (obj == NULL)
		return false;
	s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(obj);
	if (s == NULL)
		return false;
	ok = append_str(w, "{\"type\":\"") && append_str(w, type) &&
	     append_str(w, "\",\"object\":") && append_str(w, s) && append_str(w, "}\n");
	free(s);
	return ok;
}

static bool append_object(struct kapi_watch *w, const char *type, const void *mp, size_t len,
			  uint64_t rv)
{
	json_t *obj, *arr, *tab;
	size_t mark = w->buf.len;

	if (w->format == KAPI_TABLE) {
		obj = kapi__tree(mp, len, rv);
		if (obj == NULL)
			return false;
		arr = json_array();
		json_array_append_new(arr, obj);
		tab = kapi__table(w->hr, w->t->kind, arr, json_object());
		json_decref(arr);
		return append_tree_event(w, type, tab);
	}
	if (!append_str(w, "{\"type\":\"") || !append_str(w, type) ||
	    !append_str(w, "\",\"object\":") || kapi__encode_json(mp, len, rv, &w->buf) != 0 ||
	    !append_str(w, "}\n")) {
		w->buf.len = mark;
		return false;
	}
	return true;
}

static bool append_bookmark(struct kapi_watch *w)
{
	uint64_t rev = w->sw != NULL ? store_watch_revision(w->sw)
				     : store_revision(replica_store(w->server->replica));
	char rvs[24];

	snprintf(rvs, sizeof(rvs), "%llu", (unsigned long long)rev);
	return append_tree_event(w, "BOOKMARK",
				 json_pack("{s:s, s:s, s:{s:s}}", "kind", w->t->kind->kind,
					   "apiVersion", api_kind_api_version(w->t->kind),
					   "metadata", "resourceVersion", rvs));
}

static bool append_error(struct kapi_watch *w, int code, const char *reason, const char *msg)
{
	return append_tree_event(w, "ERROR",
				 json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}", "kind", "Status",
					   "apiVersion", "v1", "metadata", "status", "Failure",
					   "message", msg, "reason", reason, "code", code));
}

static void send_buf(struct kapi_watch *w, bool final)
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

static void pump(struct kapi_watch *w, bool heartbeat)
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
			append_error(w, 410, "Expired", "too old resource version");
			send_buf(w, true);
			return;
		}
		if (rv != 0) {
			w->buf.len = 0;
			append_error(w, 500, "InternalError", "the watch failed");
			send_buf(w, true);
			return;
		}
		if (!kapi__selector_match(w->sel, ev.kv.val, ev.kv.val_len))
			continue;
		if (ev.type == STORE_EVENT_DELETE)
			rv = append_object(w, "DELETED", ev.kv.val, ev.kv.val_len, ev.rev);
		else
			rv = append_object(w, ev.created ? "ADDED" : "MODIFIED", ev.kv.val,
					   ev.kv.val_len, ev.kv.mod_rev);
		if (!rv) {
			w->buf.len = 0;
			append_error(w, 500, "InternalError", "cannot encode an event");
			send_buf(w, true);
			return;
		}
	}
	if (w->buf.len == 0) {
		if (!heartbeat || !w->bookmarks)
			return;
		if (!append_bookmark(w)) {
			send_buf(w, true);
			return;
		}
	}
	send_buf(w, false);
}

static void proceed_cb(h2o_generator_t *gen, h2o_req_t *req)
{
	struct kapi_watch *w = (struct kapi_watch *)gen;

	(void)req;
	w->sending = false;
	pump(w, false);
}

static void stop_cb(h2o_generator_t *gen, h2o_req_t *req)
{
	struct kapi_watch *w = (struct kapi_watch *)gen;

	(void)req;
	w->done = true;
	w->sending = false;
	watch_detach(w);
}

static void store_cb(struct store_watch *sw, void *data)
{
	struct kapi_watch *w = data;

	(void)sw;
	pump(w, false);
}

/* The current objects as ADDED events. */
static bool initial_events(struct kapi_watch *w)
{
	struct store *st = replica_store(w->server->replica);
	struct store_iter it;
	struct store_kv kv;

	store_iter_seek(st, &it, w->t->key, w->t->key_len);
	while (store_iter_next(&it, &kv)) {
		if (kv.key_len < w->t->key_len || memcmp(kv.key, w->t->key, w->t->key_len) != 0)
			break;
		if (!kapi__selector_match(w->sel, kv.val, kv.val_len))
			continue;
		if (!append_object(w, "ADDED", kv.val, kv.val_len, kv.mod_rev))
			return false;
	}
	return true;
}

void kapi__watch(struct http_request *hr, struct kapi_target *t)
{
	struct http_server *s = hr->server;
	h2o_req_t *req = hr->req;
	struct store *st = replica_store(s->replica);
	struct kapi_selector *sel = NULL;
	struct kapi_watch *w;
	uint64_t from = 0, timeout = 0;
	bool has_rv = false, has_timeout, bookmarks = false;
	int rv;

	if (!kapi__query_u64(hr, "resourceVersion", &has_rv, &from) ||
	    !kapi__query_u64(hr, "timeoutSeconds", &has_timeout, &timeout) ||
	    !kapi__query_flag(hr, "allowWatchBookmarks", &bookmarks) ||
	    !kapi__selector(hr, t->kind, &sel))
		return;
	if (t->name != NULL) {
		/* A watch of one object: Kubernetes turns it into a
		 * metadata.name field selector; the key prefix does the same
		 * (plus a check that the next character ends the name). */
		http_send_status(req, 400, NULL, "watch a single object with a fieldSelector on "
						 "metadata.name");
		return;
	}
	w = h2o_mem_alloc_shared(&req->pool, sizeof(*w), watch_dispose);
	memset(w, 0, sizeof(*w));
	w->gen.proceed = proceed_cb;
	w->gen.stop = stop_cb;
	w->server = s;
	w->hr = hr;
	w->req = req;
	w->t = t;
	w->sel = sel;
	w->bookmarks = bookmarks;
	w->format = kapi__format(req) == KAPI_TABLE ? KAPI_TABLE : KAPI_JSON;
	if (has_timeout && timeout > 0)
		w->deadline = http__now(s) + timeout * 1000;
	if (from == 0) {
		if (!initial_events(w)) {
			buf_free(&w->buf);
			http_send_status(req, 500, NULL, "cannot encode the current objects");
			return;
		}
		from = store_revision(st);
	}
	rv = store_watch_new(st, t->key, t->key_len, from, store_cb, w, &w->sw);
	if (rv != 0 && rv != STORE_EGONE) {
		http_send_status(req, 500, NULL, "cannot watch: %s", strerror(-rv));
		return;
	}
	req->res.status = 200;
	req->res.reason = "OK";
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
		       H2O_STRLIT("application/json"));
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
		       H2O_STRLIT("no-cache, private"));
	h2o_start_response(req, &w->gen);
	if (rv == STORE_EGONE) {
		char msg[128];
		w->buf.len = 0;
		snprintf(msg, sizeof(msg), "too old resource version: %llu (%llu)",
			 (unsigned long long)from, (unsigned long long)store_compacted(st));
		append_error(w, 410, "Expired", msg);
		send_buf(w, true);
		return;
	}
	LIST_INSERT_HEAD(&watches, w, link);
	w->linked = true;
	if (w->buf.len > 0) {
		send_buf(w, false); /* the initial events; pump() follows on proceed */
		return;
	}
	pump(w, true);
	if (!w->sending && !w->done) {
		/* Headers leave with the first send, so a quiet watch would keep
		 * its client waiting for them; a newline is whitespace to the
		 * JSON stream readers of client-go. */
		w->buf.len = 0;
		if (append_str(w, "\n"))
			send_buf(w, false);
	}
}

void http__kapi_tick(struct http_server *s, uint64_t now_ms)
{
	struct kapi_watch *w = LIST_FIRST(&watches), *next;

	while (w != NULL) {
		next = LIST_NEXT(w, link);
		if (w->server == s && !w->sending) {
			if (w->deadline != 0 && now_ms >= w->deadline) {
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

void kapi__watch_close_all(struct http_server *s);
void kapi__watch_close_all(struct http_server *s)
{
	struct kapi_watch *w = LIST_FIRST(&watches), *next;

	while (w != NULL) {
		next = LIST_NEXT(w, link);
		if (w->server == s) {
			watch_detach(w);
			w->ending = true;
			if (!w->sending)
				pump(w, false);
		}
		w = next;
	}
}
