/* watch of API objects: {"type":..,"object":..} events (ADDED, MODIFIED,
 * DELETED, BOOKMARK, ERROR) of a resource's key prefix, from the store's
 * watch, filtered by the request's selectors: newline-delimited JSON, or
 * a stream of msgpack maps for msgpack clients. The stream itself (flow
 * control, heartbeats, timeoutSeconds, server close) is watch.c's; this
 * file encodes.
 *
 * Without a resourceVersion (or with "0") the watch first sends the
 * current objects as ADDED events, as kube-apiserver does; with one it
 * replays what happened after it. A DELETED event carries the last state
 * of the object with the deletion's revision. BOOKMARKs are sent after
 * HTTP_WATCH_HEARTBEAT_MS of silence when the client allows them.
 * Selector filtering looks at the new state only (an object leaving the
 * selection gets no DELETED event yet).
 *
 * Fan-out: every watcher of a prefix gets the same event bytes, so the
 * last events are kept encoded (per format) and copied to the next
 * watchers instead of being encoded again for each; and watchers with the
 * same selectors get the verdict of the first one to look at the event
 * (with 1,000 alike watchers that cut the fan-out's CPU by a quarter).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/kapi.h"
#include "http/watch.h"

struct kapi_watch {
	struct http_request *hr;
	struct kapi_target *t;
	struct kapi_selector *sel;
	struct store *store;
	enum kapi_format format; /* KAPI_JSON, KAPI_MSGPACK or a Table */
	/* The selectors as given, "LABELS\nFIELDS" (pool): watchers with the
	 * same text share verdicts. NULL: no selector, or too long to share. */
	const char *sel_text;
	size_t sel_len;
};

/* ------------------------------------------------------------ selector verdicts */

/* Verdicts on the event being fanned out, by selector text. An event is
 * (store, revision): the store holds one event per revision. */
#define SEL_MEMO 8
#define SEL_MEMO_TEXT 120
static struct sel_memo {
	const struct store *store;
	uint64_t rev;
	const struct api_kind *kind;
	unsigned n, next;
	struct {
		size_t len;
		bool match;
		char text[SEL_MEMO_TEXT];
	} v[SEL_MEMO];
} sel_memo;

static bool selector_match(const struct kapi_watch *kw, const struct store_event *ev)
{
	struct sel_memo *m = &sel_memo;
	bool match;
	unsigned i;

	if (kw->sel == NULL)
		return true;
	if (kw->sel_text == NULL)
		return kapi__selector_match(kw->sel, ev->kv.val, ev->kv.val_len);
	if (m->rev != ev->rev || m->store != kw->store || m->kind != kw->t->kind) {
		m->store = kw->store;
		m->rev = ev->rev;
		m->kind = kw->t->kind;
		m->n = 0;
		m->next = 0;
	}
	for (i = 0; i < m->n; i++)
		if (m->v[i].len == kw->sel_len && memcmp(m->v[i].text, kw->sel_text, kw->sel_len) == 0)
			return m->v[i].match;
	match = kapi__selector_match(kw->sel, ev->kv.val, ev->kv.val_len);
	i = m->n < SEL_MEMO ? m->n++ : m->next++ % SEL_MEMO;
	m->v[i].len = kw->sel_len;
	m->v[i].match = match;
	memcpy(m->v[i].text, kw->sel_text, kw->sel_len);
	return match;
}

/* Sets kw->sel_text from the request's selectors (when it has some). */
static void selector_text(struct kapi_watch *kw)
{
	h2o_iovec_t lv = {0}, fv = {0};
	char *t;

	kw->sel_text = NULL;
	if (kw->sel == NULL)
		return;
	(void)http__query(kw->hr, "labelSelector", &lv);
	(void)http__query(kw->hr, "fieldSelector", &fv);
	if (lv.len + 1 + fv.len > SEL_MEMO_TEXT)
		return;
	t = h2o_mem_alloc_pool(&kw->hr->req->pool, lv.len + 1 + fv.len);
	if (lv.len > 0)
		memcpy(t, lv.base, lv.len);
	t[lv.len] = '\n';
	if (fv.len > 0)
		memcpy(t + lv.len + 1, fv.base, fv.len);
	kw->sel_text = t;
	kw->sel_len = lv.len + 1 + fv.len;
}

/* ------------------------------------------------------------ encoded events */

/* The last events encoded, by (store, revision, key, format). An event's
 * bytes depend on nothing else (the type comes from the event), so any
 * watcher may reuse them. */
#define EV_CACHE 32
static struct ev_cached {
	const struct store *store;
	uint64_t rev;
	enum kapi_format format;
	char *key; /* heap; NULL: the slot is free */
	size_t key_len;
	struct buf enc;
} ev_cache[EV_CACHE];
static unsigned ev_cache_next;

static struct ev_cached *ev_cache_find(const struct store *st, const struct store_event *ev,
				       enum kapi_format f)
{
	size_t i;

	for (i = 0; i < EV_CACHE; i++) {
		struct ev_cached *c = &ev_cache[i];
		if (c->rev == ev->rev && c->store == st && c->format == f && c->key != NULL &&
		    c->key_len == ev->kv.key_len && memcmp(c->key, ev->kv.key, c->key_len) == 0)
			return c;
	}
	return NULL;
}

static void ev_cache_put(const struct store *st, const struct store_event *ev,
			 enum kapi_format f, const void *enc, size_t len)
{
	struct ev_cached *c = &ev_cache[ev_cache_next++ % EV_CACHE];
	char *key = malloc(ev->kv.key_len + 1);

	if (key == NULL)
		return;
	free(c->key);
	c->key = NULL;
	c->enc.len = 0;
	if (buf_append(&c->enc, enc, len) != 0) {
		free(key);
		return;
	}
	memcpy(key, ev->kv.key, ev->kv.key_len);
	c->key = key;
	c->key_len = ev->kv.key_len;
	c->store = st;
	c->rev = ev->rev;
	c->format = f;
}

void kapi__watch_forget(const struct store *st)
{
	size_t i;

	if (sel_memo.store == st)
		memset(&sel_memo, 0, sizeof(sel_memo));
	for (i = 0; i < EV_CACHE; i++)
		if (ev_cache[i].store == st) {
			free(ev_cache[i].key);
			ev_cache[i].key = NULL;
			buf_free(&ev_cache[i].enc);
		}
}

/* ------------------------------------------------------------ encoders */

/* Opens an event: {"type":TYPE,"object": in JSON, or the map header, the
 * type and the "object" key in msgpack. */
static int event_open(bool msgpack, const char *type, struct buf *out)
{
	int rc;

	if (msgpack) {
		if ((rc = codec_mp_map(out, 2)) != 0 || (rc = codec_mp_cstr(out, "type")) != 0 ||
		    (rc = codec_mp_cstr(out, type)) != 0)
			return rc;
		return codec_mp_cstr(out, "object");
	}
	if ((rc = buf_append_str(out, "{\"type\":\"")) != 0 || (rc = buf_append_str(out, type)) != 0)
		return rc;
	return buf_append_str(out, "\",\"object\":");
}

static int event_close(bool msgpack, struct buf *out)
{
	return msgpack ? 0 : buf_append(out, "}\n", 2);
}

static int append_object(struct kapi_watch *kw, const char *type, const char *key,
			 size_t key_len, const void *mp, size_t len, uint64_t rv, struct buf *out)
{
	bool msgpack = kapi__is_msgpack(kw->format);
	struct kapi_table tw;
	size_t mark = out->len;
	int rc;

	rc = event_open(msgpack, type, out);
	if (rc == 0 && kapi__is_table(kw->format)) {
		rc = kapi__table_begin(&tw, out, kw->hr, kw->t->kind, kw->format);
		if (rc == 0)
			rc = kapi__table_row(&tw, key, key_len, mp, len, rv);
		if (rc == 0)
			rc = kapi__table_end(&tw, 0, NULL);
	} else if (rc == 0) {
		rc = kapi__encode(kw->format, mp, len, rv, out);
	}
	if (rc == 0)
		rc = event_close(msgpack, out);
	if (rc != 0)
		out->len = mark;
	return rc;
}

static int append_tree_event(struct kapi_watch *kw, const char *type, json_t *obj,
			     struct buf *out)
{
	bool msgpack = kapi__is_msgpack(kw->format);
	size_t mark = out->len;
	char *s = NULL;
	int rc;

	if (obj == NULL)
		return -ENOMEM;
	rc = event_open(msgpack, type, out);
	if (rc == 0 && msgpack) {
		rc = codec_tree_to_msgpack(obj, out, NULL);
	} else if (rc == 0) {
		s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
		rc = s != NULL ? buf_append_str(out, s) : -ENOMEM;
	}
	if (rc == 0)
		rc = event_close(msgpack, out);
	free(s);
	json_decref(obj);
	if (rc != 0)
		out->len = mark;
	return rc;
}

static int kw_event(void *data, const struct store_event *ev, struct buf *out)
{
	struct kapi_watch *kw = data;
	struct ev_cached *c;
	const char *type;
	size_t mark = out->len;
	int rc;

	if (!selector_match(kw, ev))
		return 1;
	if (!kapi__is_table(kw->format) && (c = ev_cache_find(kw->store, ev, kw->format)) != NULL)
		return buf_append(out, c->enc.data, c->enc.len);
	if (ev->type == STORE_EVENT_DELETE)
		type = "DELETED";
	else
		type = ev->created ? "ADDED" : "MODIFIED";
	rc = append_object(kw, type, ev->kv.key, ev->kv.key_len, ev->kv.val, ev->kv.val_len,
			   ev->type == STORE_EVENT_DELETE ? ev->rev : ev->kv.mod_rev, out);
	if (rc == 0 && !kapi__is_table(kw->format))
		ev_cache_put(kw->store, ev, kw->format, out->data + mark, out->len - mark);
	return rc;
}

static int kw_bookmark(void *data, uint64_t rev, struct buf *out)
{
	struct kapi_watch *kw = data;
	char rvs[24];

	snprintf(rvs, sizeof(rvs), "%llu", (unsigned long long)rev);
	return append_tree_event(kw, "BOOKMARK",
				 json_pack("{s:s, s:s, s:{s:s}}", "kind", kw->t->kind->kind,
					   "apiVersion", api_kind_api_version(kw->t->kind),
					   "metadata", "resourceVersion", rvs),
				 out);
}

static int kw_error(void *data, int code, const char *reason, const char *msg, struct buf *out)
{
	return append_tree_event(data, "ERROR",
				 json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}", "kind", "Status",
					   "apiVersion", "v1", "metadata", "status", "Failure",
					   "message", msg, "reason", reason, "code", code),
				 out);
}

static const struct http_watch_ops kapi_watch_ops = {
	.event = kw_event,
	.bookmark = kw_bookmark,
	.error = kw_error,
};

/* The current objects as ADDED events. */
static bool initial_events(struct kapi_watch *kw, struct buf *out)
{
	struct store_iter it;
	struct store_kv kv;
	const struct kapi_target *t = kw->t;

	store_iter_seek(kw->store, &it, t->key, t->key_len);
	while (store_iter_next(&it, &kv)) {
		if (kv.key_len < t->key_len || memcmp(kv.key, t->key, t->key_len) != 0)
			break;
		if (!kapi__selector_match(kw->sel, kv.val, kv.val_len))
			continue;
		if (append_object(kw, "ADDED", kv.key, kv.key_len, kv.val, kv.val_len, kv.mod_rev,
				  out) != 0)
			return false;
	}
	return true;
}

void kapi__watch(struct http_request *hr, struct kapi_target *t)
{
	struct http_server *s = hr->server;
	h2o_req_t *req = hr->req;
	struct store *st = replica_store(s->replica);
	struct http_watch_params p = {
		.gone_msg = "too old resource version",
	};
	struct kapi_selector *sel = NULL;
	struct kapi_watch *kw;
	struct http_watch *w;
	enum kapi_format f = kapi__format(req);
	uint64_t from = 0, timeout = 0, compacted;
	bool has_rv = false, has_timeout, bookmarks = false;
	char *msg;

	if (!kapi__query_u64(hr, "resourceVersion", &has_rv, &from) ||
	    !kapi__query_u64(hr, "timeoutSeconds", &has_timeout, &timeout) ||
	    !kapi__query_flag(hr, "allowWatchBookmarks", &bookmarks) ||
	    !kapi__selector(hr, t->kind, &sel))
		return;
	if (t->name != NULL) {
		/* A watch of one object: Kubernetes turns it into a
		 * metadata.name field selector; clients send that. */
		http_send_status(req, 400, NULL, "watch a single object with a fieldSelector on "
						 "metadata.name");
		return;
	}
	kw = h2o_mem_alloc_pool(&req->pool, sizeof(*kw));
	kw->hr = hr;
	kw->t = t;
	kw->sel = sel;
	kw->store = st;
	kw->format = f == KAPI_YAML ? KAPI_JSON : f;
	selector_text(kw);
	w = http__watch_new(hr, &kapi_watch_ops, kw);
	p.content_type = kapi__content_type(kw->format);
	p.heartbeat_bookmarks = bookmarks;
	if (kapi__is_msgpack(kw->format)) {
		/* msgpack has no whitespace: a nil between events is the
		 * keep-alive (clients skip nils). */
		p.keepalive = "\xc0";
		p.keepalive_len = 1;
	} else {
		/* A newline is whitespace to client-go's JSON stream reader. */
		p.keepalive = "\n";
		p.keepalive_len = 1;
	}
	if (has_timeout && timeout > 0)
		p.deadline_ms = http__now(s) + timeout * 1000;
	if (from == 0) {
		if (!initial_events(kw, http__watch_buf(w))) {
			buf_free(http__watch_buf(w));
			http_send_status(req, 500, NULL, "cannot encode the current objects");
			return;
		}
		from = store_revision(st);
	}
	compacted = store_compacted(st);
	if (from < compacted) {
		msg = h2o_mem_alloc_pool(&req->pool, 128);
		snprintf(msg, 128, "too old resource version: %llu (%llu)", (unsigned long long)from,
			 (unsigned long long)compacted);
		p.gone_msg = msg;
	}
	http__watch_begin(w, t->key, t->key_len, from, &p);
}

void http__kapi_tick(struct http_server *s, uint64_t now_ms)
{
	(void)s;
	(void)now_ms;
}
