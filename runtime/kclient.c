/* A Kubernetes API client: libcurl multi on a uv loop (src/lib/curl_uv.h).
 *
 * No user callback ever runs inside a curl callback: watch bytes are
 * buffered by the write callback and parsed once curl has returned
 * (watches_io_cb()), then finished transfers are handled
 * (transfer_done_cb()), so a callback may start requests, stop watches or
 * close the client.
 *
 * Requests: HTTP/2 over TLS (ALPN), so thousands of concurrent requests
 * share one connection per master; on http:// URLs h2c with prior
 * knowledge where libcurl can reuse such connections (8.0 and later),
 * else HTTP/1.1 with a connection per concurrent request. At most
 * max_streams run at once; the rest wait in a FIFO.
 *
 * Failover: a request goes to the current URL. When that master does not
 * answer (nothing could be sent, or a 503 "no leader / shutting down"
 * answer, or a GET that broke or timed out), the current URL moves on to
 * the next one and the request is tried there. Once every URL has been
 * tried in a round, the next round waits a little (backoff) and goes on
 * until the request's time budget (timeout_ms) is spent; then the last
 * answer or error is delivered. A write that may have reached a master
 * (sent, then the connection broke or timed out) is never sent again:
 * its outcome is unknown and the caller gets -EIO or -ETIMEDOUT.
 *
 * Watches: one streaming GET each, newline-delimited JSON events. The
 * watch remembers the resourceVersion of the last event (bookmarks
 * included) and reconnects from it when the stream ends (at once) or
 * fails (to the next URL, with backoff). 410 Gone, as a status or as an
 * ERROR event, calls relist_cb and waits for kclient_watch_resume().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <curl/curl.h>

#include "runtime/kclient.h"
#include "src/lib/buf.h"
#include "src/lib/curl_uv.h"

#define RESPONSE_MAX (64u * 1024 * 1024)
#define RESPONSE_KEEP (64u * 1024) /* response buffer kept by an idle request */
#define IDLE_MAX 512u              /* idle requests (with easy handles) kept */
#define WATCH_LINE_MAX (64u * 1024 * 1024)
#define BACKOFF_FIRST_MS 100u
#define BACKOFF_MAX_MS 2000u
#define WATCH_BACKOFF_MAX_MS 5000u
#define CONNECT_TIMEOUT_MS 3000L
#define WATCH_LOW_SPEED_S 30L /* bookmarks come every few seconds */
#define DEFAULT_TIMEOUT_MS 10000u
#define DEFAULT_MAX_STREAMS 256u
#define KCLIENT_MAX_URLS 32u

enum xfer_kind { XFER_REQ, XFER_WATCH };

enum req_state { REQ_IDLE, REQ_QUEUED, REQ_ACTIVE, REQ_DELAYED };

struct kreq {
	enum xfer_kind kind; /* first: CURLOPT_PRIVATE points here */
	struct kclient *client;
	CURL *easy;
	struct curl_slist *headers;
	enum req_state state;
	char method[16];
	char *path;
	char *body; /* serialised JSON, or NULL */
	size_t body_len;
	char *content_type; /* "Content-Type: ..." header */
	kclient_cb cb;
	void *data;
	uint64_t deadline; /* loop ms */
	uint64_t due;      /* REQ_DELAYED: loop ms */
	unsigned url_idx;  /* URL of the current attempt */
	unsigned tried;    /* URLs tried in this round */
	unsigned rounds;
	struct curl_uv_once once; /* for this attempt */
	bool opener; /* the first request to a cold h2c URL */
	struct curl_uv_body resp;
	TAILQ_ENTRY(kreq) link;
};

enum watch_state { W_WAIT, W_ACTIVE, W_RELIST };

struct kclient_watch {
	enum xfer_kind kind; /* first */
	struct kclient *client;
	CURL *easy;
	struct curl_slist *headers;
	enum watch_state state;
	char *path;
	char *rv; /* last resourceVersion seen, or NULL */
	kclient_event_cb event_cb;
	kclient_relist_cb relist_cb;
	void *data;
	unsigned url_idx;
	unsigned failures;
	uint64_t due;
	long status; /* of the current stream, 0 until known */
	struct buf in; /* bytes received and not parsed yet */
	size_t in_off;
	unsigned events;  /* delivered on the current stream */
	bool in_multi;    /* the easy handle is in the multi handle */
	bool pending;     /* in the client's pending list */
	bool stopped;     /* kclient_watch_stop() ran during dispatch */
	unsigned busy;    /* dispatching: freeing waits */
	LIST_ENTRY(kclient_watch) link;
	TAILQ_ENTRY(kclient_watch) pending_link;
};

TAILQ_HEAD(kreq_list, kreq);

struct kclient {
	uv_loop_t *loop;
	struct curl_uv cu;
	uv_timer_t retry_timer; /* delayed requests and watch reconnects */
	char **urls;
	unsigned n_urls;
	unsigned cur;
	/* h2c URLs: a connection known to be up (warm), and a request out
	 * that opens one (opening); bit i is URL i. */
	uint32_t warm, opening;
	char *ca_file, *cert_file, *key_file;
	char *ca_pem, *cert_pem, *key_pem;
	bool http1;
	bool verbose; /* $CAPSTAN_KCLIENT_TRACE: curl's trace on stderr */
	char *auth_header;
	unsigned timeout_ms;
	unsigned max_streams;
	struct kreq_list active, queued, delayed, idle;
	unsigned n_active, n_queued, n_delayed, n_idle;
	LIST_HEAD(, kclient_watch) watches;
	TAILQ_HEAD(, kclient_watch) pending;
	unsigned n_handles; /* retry_timer and cu, until closed */
	bool closing;
	void (*close_cb)(void *data);
	void *close_data;
};

static void req_try(struct kreq *r);
static int req_start(struct kreq *r);
static void watch_connect(struct kclient_watch *w);
static void schedule_retry(struct kclient *c);

static uint64_t now_ms(const struct kclient *c)
{
	return uv_now(c->loop);
}

/* ------------------------------------------------------------ closing */

static void maybe_free(struct kclient *c)
{
	void (*cb)(void *) = c->close_cb;
	void *data = c->close_data;

	if (!c->closing || c->n_handles > 0)
		return;
	for (unsigned i = 0; i < c->n_urls; i++)
		free(c->urls[i]);
	free(c->urls);
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->ca_pem);
	free(c->cert_pem);
	free(c->key_pem);
	free(c->auth_header);
	free(c);
	if (cb != NULL)
		cb(data);
}

static void handle_close_cb(uv_handle_t *h)
{
	struct kclient *c = h->data;

	c->n_handles--;
	maybe_free(c);
}

static void cu_close_cb(struct curl_uv *cu)
{
	struct kclient *c = cu->data;

	c->n_handles--;
	maybe_free(c);
}

/* Options every transfer shares; the URL's scheme picks the protocol. */
static void easy_common(struct kclient *c, CURL *e, void *priv)
{
	curl_easy_setopt(e, CURLOPT_PRIVATE, priv);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (c->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	if (c->cert_file != NULL)
		curl_easy_setopt(e, CURLOPT_SSLCERT, c->cert_file);
	if (c->key_file != NULL)
		curl_easy_setopt(e, CURLOPT_SSLKEY, c->key_file);
	if (c->ca_pem != NULL) {
		struct curl_blob b = {c->ca_pem, strlen(c->ca_pem), CURL_BLOB_COPY};
		curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &b);
	}
	if (c->cert_pem != NULL) {
		struct curl_blob b = {c->cert_pem, strlen(c->cert_pem), CURL_BLOB_COPY};
		curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &b);
		curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
	}
	if (c->key_pem != NULL) {
		struct curl_blob b = {c->key_pem, strlen(c->key_pem), CURL_BLOB_COPY};
		curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &b);
		curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
	}
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	/* Masters are reached directly, never through a proxy named by the
	 * environment. */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	if (c->verbose)
		curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
}

static void easy_set_url(struct kclient *c, CURL *e, unsigned idx, const char *path)
{
	const char *base = c->urls[idx];
	size_t bl = strlen(base), pl = strlen(path);
	char *url = malloc(bl + pl + 2);

	/* curl copies the URL; an allocation failure leaves the old one,
	 * and the transfer then fails and is retried like any other. */
	if (url == NULL)
		return;
	while (bl > 0 && base[bl - 1] == '/')
		bl--;
	memcpy(url, base, bl);
	if (path[0] != '/')
		url[bl++] = '/';
	memcpy(url + bl, path, pl + 1);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
			 strncmp(url, "https:", 6) == 0 ? (long)CURL_HTTP_VERSION_2TLS
			 : c->http1			? (long)CURL_HTTP_VERSION_1_1
							: (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
	/* Over TLS, wait for the first connection's ALPN and multiplex on it.
	 * Not on h2c: curl 7.88 fails the transfers that waited so with
	 * "Error in the HTTP2 framing layer"; the warm-up gate (req_gated)
	 * keeps a burst from opening a connection per request instead. */
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, strncmp(url, "https:", 6) == 0 ? 1L : 0L);
	free(url);
}

/* The current URL moves on past @idx (unless it already has). */
static void url_failed(struct kclient *c, unsigned idx)
{
	if (idx < KCLIENT_MAX_URLS)
		c->warm &= ~(1u << idx);
	if (c->n_urls > 1 && c->cur == idx)
		c->cur = (c->cur + 1) % c->n_urls;
}

static unsigned backoff_ms(unsigned n, unsigned max)
{
	unsigned ms = BACKOFF_FIRST_MS;

	while (n-- > 1 && ms < max)
		ms *= 2;
	return ms < max ? ms : max;
}

/* ------------------------------------------------------------ requests */

static void req_free(struct kreq *r)
{
	if (r == NULL)
		return;
	if (r->easy != NULL)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	free(r->path);
	free(r->body);
	free(r->content_type);
	buf_free(&r->resp.buf);
	free(r);
}

static struct kreq *req_new(struct kclient *c)
{
	struct kreq *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->kind = XFER_REQ;
	r->client = c;
	r->easy = curl_easy_init();
	if (r->easy == NULL) {
		free(r);
		return NULL;
	}
	easy_common(c, r->easy, r);
	r->resp.max = RESPONSE_MAX;
	curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, curl_uv_collect);
	curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, &r->resp);
	/* Only a GET may go twice: a write may have reached the server. */
	curl_easy_setopt(r->easy, CURLOPT_PREREQFUNCTION, curl_uv_prereq);
	curl_easy_setopt(r->easy, CURLOPT_PREREQDATA, &r->once);
	return r;
}

/* Back to the idle list, or freed. @r is on no list. */
static void req_release(struct kclient *c, struct kreq *r)
{
	curl_slist_free_all(r->headers);
	r->headers = NULL;
	free(r->path);
	free(r->body);
	free(r->content_type);
	r->path = r->body = r->content_type = NULL;
	if (c->closing || c->n_idle >= IDLE_MAX) {
		req_free(r);
		return;
	}
	if (r->resp.buf.cap > RESPONSE_KEEP)
		buf_free(&r->resp.buf);
	r->resp.buf.len = 0;
	r->cb = NULL;
	r->data = NULL;
	r->state = REQ_IDLE;
	TAILQ_INSERT_HEAD(&c->idle, r, link);
	c->n_idle++;
}

static void req_unlink(struct kclient *c, struct kreq *r)
{
	switch (r->state) {
	case REQ_ACTIVE:
		curl_multi_remove_handle(c->cu.multi, r->easy);
		TAILQ_REMOVE(&c->active, r, link);
		c->n_active--;
		break;
	case REQ_QUEUED:
		TAILQ_REMOVE(&c->queued, r, link);
		c->n_queued--;
		break;
	case REQ_DELAYED:
		TAILQ_REMOVE(&c->delayed, r, link);
		c->n_delayed--;
		break;
	case REQ_IDLE:
		break;
	}
	r->state = REQ_IDLE;
}

/* Delivers the outcome (@r on no list) and recycles @r. */
static void req_finish(struct kclient *c, struct kreq *r, int err, long status)
{
	struct kclient_response res = {0};
	json_t *body = NULL;

	if (err == 0) {
		const char *p = r->resp.buf.data != NULL ? r->resp.buf.data : "";
		size_t i = 0;

		while (i < r->resp.buf.len && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t'))
			i++;
		if (i < r->resp.buf.len && (p[i] == '{' || p[i] == '['))
			body = json_loadb(p, r->resp.buf.len, 0, NULL);
		res.status = status;
		res.body = body;
		res.raw = p;
		res.raw_len = r->resp.buf.len;
	}
	r->cb(r->data, err, err == 0 ? &res : NULL);
	json_decref(body);
	req_release(c, r);
}

static bool is_h2c(const struct kclient *c, unsigned idx)
{
	return !c->http1 && strncmp(c->urls[idx], "http:", 5) == 0;
}

/* Whether a request to the current URL must wait: it is h2c, no
 * connection is known to be up, and another request is opening one. */
static bool req_gated(const struct kclient *c)
{
	uint32_t bit = 1u << c->cur;

	return is_h2c(c, c->cur) && !(c->warm & bit) && (c->opening & bit);
}

/* Starts the queued requests that fit under max_streams. */
static void start_queued(struct kclient *c)
{
	struct kreq *r;

	while (!c->closing && c->n_active < c->max_streams && !req_gated(c) &&
	       (r = TAILQ_FIRST(&c->queued)) != NULL) {
		TAILQ_REMOVE(&c->queued, r, link);
		c->n_queued--;
		r->state = REQ_IDLE;
		req_try(r);
	}
}

/* One attempt on the current URL, or queued. Errors: -ENOMEM (curl
 * refused the handle; nothing delivered). */
static int req_start(struct kreq *r)
{
	struct kclient *c = r->client;
	uint64_t now = now_ms(c);
	long left;

	if (c->n_active >= c->max_streams || req_gated(c)) {
		r->state = REQ_QUEUED;
		TAILQ_INSERT_TAIL(&c->queued, r, link);
		c->n_queued++;
		return 0;
	}
	left = r->deadline > now ? (long)(r->deadline - now) : 1L;
	r->url_idx = c->cur;
	r->opener = is_h2c(c, c->cur) && !(c->warm & (1u << c->cur));
	if (r->opener)
		c->opening |= 1u << c->cur;
	r->once.sent = false;
	r->once.repeatable = strcmp(r->method, "GET") == 0;
	r->resp.too_big = false;
	r->resp.buf.len = 0;
	easy_set_url(c, r->easy, r->url_idx, r->path);
	curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, left);
	if (curl_multi_add_handle(c->cu.multi, r->easy) != CURLM_OK) {
		if (r->opener)
			c->opening &= ~(1u << r->url_idx);
		r->opener = false;
		return -ENOMEM;
	}
	r->state = REQ_ACTIVE;
	TAILQ_INSERT_TAIL(&c->active, r, link);
	c->n_active++;
	return 0;
}

/* req_start() from the loop: a failure is delivered. */
static void req_try(struct kreq *r)
{
	if (req_start(r) != 0)
		req_finish(r->client, r, -ENOMEM, 0);
}

/* The attempt on r->url_idx failed in a way that says "try another
 * master" (@err the error to deliver if no other master answers). */
static void req_failover(struct kclient *c, struct kreq *r, int err)
{
	uint64_t now = now_ms(c);

	url_failed(c, r->url_idx);
	r->tried++;
	if (now >= r->deadline) {
		req_finish(c, r, err, 0);
		return;
	}
	if (r->tried < c->n_urls) {
		req_try(r);
		return;
	}
	/* Every master failed in this round: wait before the next one. */
	r->tried = 0;
	r->rounds++;
	r->due = now + backoff_ms(r->rounds, BACKOFF_MAX_MS);
	if (r->due > r->deadline)
		r->due = r->deadline;
	r->state = REQ_DELAYED;
	TAILQ_INSERT_TAIL(&c->delayed, r, link);
	c->n_delayed++;
	schedule_retry(c);
}

static int curl_error(CURLcode code, bool sent)
{
	if (code == CURLE_OUT_OF_MEMORY)
		return -ENOMEM;
	if (code == CURLE_OPERATION_TIMEDOUT)
		return -ETIMEDOUT;
	if (!sent && (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST))
		return -ECONNREFUSED;
	return -EIO;
}

/* A request's transfer ended (@r already off the active list). */
static void req_done(struct kclient *c, struct kreq *r, CURLcode result)
{
	bool is_get = strcmp(r->method, "GET") == 0;
	long status = 0;

	if (r->opener) {
		r->opener = false;
		c->opening &= ~(1u << r->url_idx);
		if (result == CURLE_OK)
			c->warm |= 1u << r->url_idx;
	}

	if (result != CURLE_OK) {
		int err = r->resp.too_big ? -EIO : curl_error(result, r->once.sent);

		if (c->verbose)
			fprintf(stderr, "kclient: %s %s: %s (%s)\n", r->method, r->path,
				curl_easy_strerror(result), r->once.sent ? "sent" : "not sent");

		if (err == -ENOMEM || r->resp.too_big) {
			req_finish(c, r, err, 0);
			return;
		}
		if (!r->once.sent || is_get) {
			req_failover(c, r, err);
			return;
		}
		/* A write that may have arrived: never again. The master
		 * is suspect all the same. */
		url_failed(c, r->url_idx);
		req_finish(c, r, err, 0);
		return;
	}
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	/* 503: no leader known or shutting down; nothing was done. */
	if (status == 503 && now_ms(c) + BACKOFF_FIRST_MS < r->deadline) {
		req_failover(c, r, -ECONNREFUSED);
		return;
	}
	req_finish(c, r, 0, status);
}

/* ------------------------------------------------------------ watches */

static size_t watch_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct kclient_watch *w = userdata;
	struct kclient *c = w->client;
	size_t n = size * nmemb;

	if (w->status == 0)
		curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &w->status);
	if (buf_append_max(&w->in, ptr, n, WATCH_LINE_MAX) != 0)
		return 0;
	if (!w->pending) {
		w->pending = true;
		TAILQ_INSERT_TAIL(&c->pending, w, pending_link);
	}
	return n;
}

static void watch_free(struct kclient_watch *w)
{
	if (w->easy != NULL)
		curl_easy_cleanup(w->easy);
	curl_slist_free_all(w->headers);
	free(w->path);
	free(w->rv);
	buf_free(&w->in);
	free(w);
}

/* Ends the current stream, if any (not from inside a curl callback). */
static void watch_detach(struct kclient_watch *w)
{
	struct kclient *c = w->client;

	if (w->in_multi && c->cu.multi != NULL)
		curl_multi_remove_handle(c->cu.multi, w->easy);
	w->in_multi = false;
	if (w->pending) {
		TAILQ_REMOVE(&c->pending, w, pending_link);
		w->pending = false;
	}
	w->in.len = 0;
	w->in_off = 0;
}

static void watch_set_rv(struct kclient_watch *w, const char *rv)
{
	char *copy;

	if (rv == NULL || rv[0] == '\0')
		return;
	if (w->rv != NULL && strcmp(w->rv, rv) == 0)
		return;
	copy = strdup(rv);
	if (copy == NULL)
		return; /* keeps the older one: a replay, never a gap */
	free(w->rv);
	w->rv = copy;
}

/* Reconnects after @delay_ms (0: on the next loop turn). */
static void watch_retry(struct kclient_watch *w, unsigned delay_ms)
{
	watch_detach(w);
	w->state = W_WAIT;
	w->due = now_ms(w->client) + delay_ms;
	schedule_retry(w->client);
}

static void watch_relist(struct kclient_watch *w)
{
	watch_detach(w);
	free(w->rv);
	w->rv = NULL;
	if (w->relist_cb == NULL) {
		watch_retry(w, 0);
		return;
	}
	w->state = W_RELIST;
	w->relist_cb(w->data);
}

/* Parses and delivers the complete lines buffered for @w. Returns false
 * when @w must not be touched any more (stopped, or the client closed). */
static bool watch_dispatch(struct kclient_watch *w)
{
	struct kclient *c = w->client;

	if (w->status != 200)
		return true; /* an error body: looked at when the stream ends */
	w->busy++;
	while (!w->stopped && !c->closing && w->state == W_ACTIVE) {
		char *start = w->in.data + w->in_off;
		char *nl = memchr(start, '\n', w->in.len - w->in_off);
		json_t *ev, *obj;
		const char *type;
		size_t len;

		if (nl == NULL)
			break;
		len = (size_t)(nl - start);
		w->in_off += len + 1;
		if (len == 0)
			continue;
		ev = json_loadb(start, len, 0, NULL);
		if (ev == NULL)
			continue;
		type = json_string_value(json_object_get(ev, "type"));
		obj = json_object_get(ev, "object");
		if (type == NULL) {
			json_decref(ev);
			continue;
		}
		if (strcmp(type, "ERROR") == 0 &&
		    json_integer_value(json_object_get(obj, "code")) == 410) {
			json_decref(ev);
			watch_relist(w);
			break;
		}
		if (strcmp(type, "ERROR") != 0) {
			json_t *rv = json_object_get(json_object_get(obj, "metadata"),
						     "resourceVersion");
			watch_set_rv(w, json_string_value(rv));
		}
		w->failures = 0;
		w->events++;
		w->event_cb(w->data, type, obj);
		json_decref(ev);
	}
	if (!w->stopped && !c->closing && w->in_off > 0) {
		/* Keep the partial line only. */
		size_t rest = w->in.len - w->in_off;
		memmove(w->in.data, w->in.data + w->in_off, rest);
		w->in.len = rest;
		w->in.data[rest] = '\0';
		w->in_off = 0;
	}
	w->busy--;
	if (w->stopped && w->busy == 0) {
		watch_free(w);
		return false;
	}
	return !c->closing;
}

/* A watch's stream ended (@w already out of the multi handle). */
static void watch_done(struct kclient *c, struct kclient_watch *w, CURLcode result)
{
	long status = w->status;

	if (result == CURLE_OK && status == 0)
		curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status == 200) {
		/* Complete events are good however the stream ended. */
		if (w->pending) {
			TAILQ_REMOVE(&c->pending, w, pending_link);
			w->pending = false;
		}
		if (!watch_dispatch(w) || w->state != W_ACTIVE)
			return; /* stopped, closed, or relisting */
		if (result == CURLE_OK && w->events > 0) {
			/* The server ended the stream (its timeout). */
			watch_retry(w, 0);
			return;
		}
		if (result != CURLE_OK)
			url_failed(c, w->url_idx);
		w->failures++;
		watch_retry(w, backoff_ms(w->failures, WATCH_BACKOFF_MAX_MS));
		return;
	}
	if (result == CURLE_OK && status == 410) {
		watch_relist(w);
		return;
	}
	if (result != CURLE_OK || status >= 500 || status == 0) {
		url_failed(c, w->url_idx);
	} else if (w->in.len > 0) {
		/* 4xx: tell the caller, then try again slowly. */
		json_t *st = json_loadb(w->in.data, w->in.len, 0, NULL);
		if (st != NULL) {
			w->busy++;
			w->event_cb(w->data, "ERROR", st);
			w->busy--;
			json_decref(st);
			if (w->stopped) {
				watch_free(w);
				return;
			}
			if (c->closing)
				return;
		}
	}
	w->failures++;
	watch_retry(w, backoff_ms(w->failures, WATCH_BACKOFF_MAX_MS));
}

static void watch_connect(struct kclient_watch *w)
{
	struct kclient *c = w->client;
	struct buf path = BUF_INIT;
	bool q = strchr(w->path, '?') != NULL;
	int rv;

	rv = buf_append_str(&path, w->path);
	if (rv == 0)
		rv = buf_append_str(&path, q ? "&watch=true&allowWatchBookmarks=true"
					     : "?watch=true&allowWatchBookmarks=true");
	if (rv == 0 && w->rv != NULL) {
		rv = buf_append_str(&path, "&resourceVersion=");
		if (rv == 0)
			rv = buf_append_str(&path, w->rv);
	}
	if (rv != 0) {
		buf_free(&path);
		w->failures++;
		watch_retry(w, backoff_ms(w->failures, WATCH_BACKOFF_MAX_MS));
		return;
	}
	w->url_idx = c->cur;
	w->status = 0;
	w->events = 0;
	w->in.len = 0;
	w->in_off = 0;
	easy_set_url(c, w->easy, w->url_idx, path.data);
	buf_free(&path);
	if (curl_multi_add_handle(c->cu.multi, w->easy) != CURLM_OK) {
		w->failures++;
		watch_retry(w, backoff_ms(w->failures, WATCH_BACKOFF_MAX_MS));
		return;
	}
	w->in_multi = true;
	w->state = W_ACTIVE;
}

/* ------------------------------------------------------------ loop glue */

static void retry_cb(uv_timer_t *t)
{
	struct kclient *c = t->data;
	uint64_t now = now_ms(c);
	struct kreq *r, *next;
	struct kclient_watch *w;

	for (r = TAILQ_FIRST(&c->delayed); r != NULL && !c->closing; r = next) {
		next = TAILQ_NEXT(r, link);
		if (r->due > now)
			continue;
		TAILQ_REMOVE(&c->delayed, r, link);
		c->n_delayed--;
		r->state = REQ_IDLE;
		req_try(r);
	}
	LIST_FOREACH(w, &c->watches, link) {
		if (c->closing)
			break;
		if (w->state == W_WAIT && w->due <= now)
			watch_connect(w);
	}
	if (!c->closing)
		schedule_retry(c);
}

static void schedule_retry(struct kclient *c)
{
	uint64_t now = now_ms(c), due = UINT64_MAX;
	struct kreq *r;
	struct kclient_watch *w;

	if (c->closing)
		return;
	TAILQ_FOREACH(r, &c->delayed, link) {
		if (r->due < due)
			due = r->due;
	}
	LIST_FOREACH(w, &c->watches, link) {
		if (w->state == W_WAIT && w->due < due)
			due = w->due;
	}
	if (due == UINT64_MAX) {
		uv_timer_stop(&c->retry_timer);
		return;
	}
	uv_timer_start(&c->retry_timer, retry_cb, due > now ? due - now : 0, 0);
}

/* After curl ran, before finished transfers: deliver watch events. */
static void watches_io_cb(struct curl_uv *cu)
{
	struct kclient *c = cu->data;
	struct kclient_watch *w;

	while (!c->closing && (w = TAILQ_FIRST(&c->pending)) != NULL) {
		TAILQ_REMOVE(&c->pending, w, pending_link);
		w->pending = false;
		watch_dispatch(w);
	}
}

/* A transfer ended (@easy already out of the multi handle). */
static void transfer_done_cb(struct curl_uv *cu, CURL *easy, CURLcode result)
{
	struct kclient *c = cu->data;
	void *priv = NULL;
	enum xfer_kind *kind;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&priv);
	kind = priv;
	if (*kind == XFER_REQ) {
		struct kreq *r = priv;

		TAILQ_REMOVE(&c->active, r, link);
		c->n_active--;
		r->state = REQ_IDLE;
		req_done(c, r, result);
	} else {
		struct kclient_watch *wd = priv;

		wd->in_multi = false;
		watch_done(c, wd, result);
	}
	start_queued(c);
}

/* ------------------------------------------------------------ API */

static int copy_urls(const char *const *urls, char ***ret_urls, unsigned *ret_n)
{
	unsigned n = 0;
	char **v;

	while (urls != NULL && urls[n] != NULL)
		n++;
	if (n == 0 || n > KCLIENT_MAX_URLS)
		return -EINVAL;
	v = calloc(n, sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		v[i] = strdup(urls[i]);
		if (v[i] == NULL) {
			while (i-- > 0)
				free(v[i]);
			free(v);
			return -ENOMEM;
		}
	}
	*ret_urls = v;
	*ret_n = n;
	return 0;
}

int kclient_new(uv_loop_t *loop, const struct kclient_config *config, struct kclient **ret)
{
	struct kclient *c;
	int rv;

	if (curl_uv_global_init() != 0)
		return -EIO;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->loop = loop;
	TAILQ_INIT(&c->active);
	TAILQ_INIT(&c->queued);
	TAILQ_INIT(&c->delayed);
	TAILQ_INIT(&c->idle);
	TAILQ_INIT(&c->pending);
	LIST_INIT(&c->watches);
	c->timeout_ms = config->timeout_ms != 0 ? config->timeout_ms : DEFAULT_TIMEOUT_MS;
	c->max_streams = config->max_streams != 0 ? config->max_streams : DEFAULT_MAX_STREAMS;
	rv = copy_urls(config->urls, &c->urls, &c->n_urls);
	if (rv != 0)
		goto err_after_alloc;
	rv = -ENOMEM;
	if ((config->ca_file != NULL && (c->ca_file = strdup(config->ca_file)) == NULL) ||
	    (config->cert_file != NULL && (c->cert_file = strdup(config->cert_file)) == NULL) ||
	    (config->key_file != NULL && (c->key_file = strdup(config->key_file)) == NULL) ||
	    (config->ca_pem != NULL && (c->ca_pem = strdup(config->ca_pem)) == NULL) ||
	    (config->cert_pem != NULL && (c->cert_pem = strdup(config->cert_pem)) == NULL) ||
	    (config->key_pem != NULL && (c->key_pem = strdup(config->key_pem)) == NULL))
		goto err_after_urls;
	/* libcurl before 8.0 cannot reuse an h2c (prior knowledge)
	 * connection: every request after the first fails with "Error in
	 * the HTTP2 framing layer" (curl issue #10634, fixed in 8.0.0).
	 * Debian 12 has 7.88.1: plain URLs speak HTTP/1.1 there. */
	c->http1 = config->http1 || curl_version_info(CURLVERSION_NOW)->version_num < 0x080000;
	c->verbose = getenv("CAPSTAN_KCLIENT_TRACE") != NULL;
	if (config->token != NULL) {
		size_t n = strlen(config->token) + sizeof("Authorization: Bearer ");
		c->auth_header = malloc(n);
		if (c->auth_header == NULL)
			goto err_after_urls;
		snprintf(c->auth_header, n, "Authorization: Bearer %s", config->token);
	}
	if (curl_uv_init(&c->cu, loop, transfer_done_cb, watches_io_cb, c) != 0) {
		rv = -EIO;
		goto err_after_urls;
	}
	/* Room for every stream on one connection per master. */
	curl_multi_setopt(c->cu.multi, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)c->max_streams + 64);
	uv_timer_init(loop, &c->retry_timer);
	c->retry_timer.data = c;
	c->n_handles = 2;
	*ret = c;
	return 0;

err_after_urls:
	for (unsigned i = 0; i < c->n_urls; i++)
		free(c->urls[i]);
	free(c->urls);
err_after_alloc:
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c->ca_pem);
	free(c->cert_pem);
	free(c->key_pem);
	free(c->auth_header);
	free(c);
	return rv;
}

void kclient_close(struct kclient *c, void (*cb)(void *data), void *data)
{
	struct kreq *r;
	struct kclient_watch *w;

	if (c == NULL) {
		if (cb != NULL)
			cb(data);
		return;
	}
	if (c->closing)
		return;
	c->closing = true;
	c->close_cb = cb;
	c->close_data = data;
	/* Every callback with -ECANCELED, each request off every list first
	 * so that a callback may look at the client. */
	for (;;) {
		r = TAILQ_FIRST(&c->active);
		if (r == NULL)
			r = TAILQ_FIRST(&c->queued);
		if (r == NULL)
			r = TAILQ_FIRST(&c->delayed);
		if (r == NULL)
			break;
		req_unlink(c, r);
		r->cb(r->data, -ECANCELED, NULL);
		req_free(r);
	}
	while ((r = TAILQ_FIRST(&c->idle)) != NULL) {
		TAILQ_REMOVE(&c->idle, r, link);
		c->n_idle--;
		req_free(r);
	}
	while ((w = LIST_FIRST(&c->watches)) != NULL) {
		LIST_REMOVE(w, link);
		watch_detach(w);
		if (w->busy > 0)
			w->stopped = true; /* freed by its dispatcher */
		else
			watch_free(w);
	}
	curl_uv_close(&c->cu, cu_close_cb);
	uv_timer_stop(&c->retry_timer);
	uv_close((uv_handle_t *)&c->retry_timer, handle_close_cb);
}

int kclient_set_urls(struct kclient *c, const char *const *urls)
{
	char **v;
	unsigned n;
	int rv;

	rv = copy_urls(urls, &v, &n);
	if (rv != 0)
		return rv;
	for (unsigned i = 0; i < c->n_urls; i++)
		free(c->urls[i]);
	free(c->urls);
	c->urls = v;
	c->n_urls = n;
	c->cur = 0;
	c->warm = c->opening = 0;
	return 0;
}

const char *kclient_current_url(const struct kclient *c)
{
	return c->urls[c->cur];
}

static struct curl_slist *add_header(struct curl_slist *list, const char *h, bool *ok)
{
	struct curl_slist *n;

	if (!*ok)
		return list;
	n = curl_slist_append(list, h);
	if (n == NULL) {
		*ok = false;
		return list;
	}
	return n;
}

int kclient_request(struct kclient *c, const char *method, const char *path, const json_t *body,
		    const char *content_type, kclient_cb cb, void *data)
{
	struct kreq *r;
	bool ok = true, has_body;
	CURL *e;

	if (c->closing)
		return -ECANCELED;
	if (method == NULL || path == NULL || cb == NULL || strlen(method) >= sizeof r->method)
		return -EINVAL;
	r = TAILQ_FIRST(&c->idle);
	if (r != NULL) {
		TAILQ_REMOVE(&c->idle, r, link);
		c->n_idle--;
	} else if ((r = req_new(c)) == NULL) {
		return -ENOMEM;
	}
	e = r->easy;
	snprintf(r->method, sizeof r->method, "%s", method);
	r->cb = cb;
	r->data = data;
	r->tried = 0;
	r->rounds = 0;
	r->deadline = now_ms(c) + c->timeout_ms;
	r->path = strdup(path);
	if (r->path == NULL)
		goto err_nomem;
	has_body = body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
		   strcmp(method, "PATCH") == 0;
	if (body != NULL) {
		r->body = json_dumps(body, JSON_COMPACT);
		if (r->body == NULL)
			goto err_nomem;
		r->body_len = strlen(r->body);
	} else {
		r->body_len = 0;
	}
	if (has_body) {
		const char *ct = content_type != NULL ? content_type : "application/json";
		size_t n = strlen(ct) + sizeof("Content-Type: ");
		r->content_type = malloc(n);
		if (r->content_type == NULL)
			goto err_nomem;
		snprintf(r->content_type, n, "Content-Type: %s", ct);
	}
	r->headers = add_header(NULL, "Accept: application/json", &ok);
	r->headers = add_header(r->headers, "Expect:", &ok);
	if (c->auth_header != NULL)
		r->headers = add_header(r->headers, c->auth_header, &ok);
	if (r->content_type != NULL)
		r->headers = add_header(r->headers, r->content_type, &ok);
	if (!ok)
		goto err_nomem;
	curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	if (has_body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body != NULL ? r->body : "");
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	if (req_start(r) != 0)
		goto err_nomem;
	return 0;

err_nomem:
	req_release(c, r);
	return -ENOMEM;
}

int kclient_watch(struct kclient *c, const char *path, const char *resource_version,
		  kclient_event_cb event_cb, kclient_relist_cb relist_cb, void *data,
		  struct kclient_watch **ret)
{
	struct kclient_watch *w;
	bool ok = true;

	if (c->closing)
		return -ECANCELED;
	if (path == NULL || event_cb == NULL)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	w->kind = XFER_WATCH;
	w->client = c;
	w->event_cb = event_cb;
	w->relist_cb = relist_cb;
	w->data = data;
	w->path = strdup(path);
	if (resource_version != NULL && resource_version[0] != '\0')
		w->rv = strdup(resource_version);
	w->easy = curl_easy_init();
	if (w->path == NULL || w->easy == NULL || (resource_version != NULL &&
						   resource_version[0] != '\0' && w->rv == NULL))
		goto err;
	w->headers = add_header(NULL, "Accept: application/json", &ok);
	if (c->auth_header != NULL)
		w->headers = add_header(w->headers, c->auth_header, &ok);
	if (!ok)
		goto err;
	easy_common(c, w->easy, w);
	curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, w->headers);
	curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, watch_write_cb);
	curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
	/* No overall timeout; a stream silent for longer than a few
	 * bookmark periods is dead. */
	curl_easy_setopt(w->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(w->easy, CURLOPT_LOW_SPEED_TIME, WATCH_LOW_SPEED_S);
	LIST_INSERT_HEAD(&c->watches, w, link);
	/* Connected from the loop, so that no callback runs in here. */
	w->state = W_WAIT;
	w->due = now_ms(c);
	schedule_retry(c);
	*ret = w;
	return 0;

err:
	watch_free(w);
	return -ENOMEM;
}

int kclient_watch_resume(struct kclient_watch *w, const char *resource_version)
{
	if (w->client->closing)
		return -ECANCELED;
	if (w->state != W_RELIST)
		return -EINVAL;
	free(w->rv);
	w->rv = NULL;
	if (resource_version != NULL && resource_version[0] != '\0') {
		w->rv = strdup(resource_version);
		if (w->rv == NULL)
			return -ENOMEM;
	}
	w->failures = 0;
	w->state = W_WAIT;
	w->due = now_ms(w->client);
	schedule_retry(w->client);
	return 0;
}

void kclient_watch_stop(struct kclient_watch *w)
{
	struct kclient *c;

	if (w == NULL)
		return;
	c = w->client;
	if (w->stopped)
		return;
	LIST_REMOVE(w, link);
	watch_detach(w);
	w->state = W_WAIT;
	if (w->busy > 0) {
		w->stopped = true;
		return;
	}
	watch_free(w);
	schedule_retry(c);
}

unsigned kclient_pending(const struct kclient *c)
{
	return c->n_active + c->n_queued + c->n_delayed;
}
