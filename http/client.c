/* libcurl multi on the uv loop through src/lib/curl_uv.h: finished
 * transfers reach transfer_done_cb() and the callers' callbacks run from
 * there, never from inside a curl callback.
 *
 * One multi handle keeps connections open and multiplexes HTTP/2 streams,
 * so forwarded writes and readindex requests to the leader share a
 * connection. Easy handles are kept for reuse (creating one per request
 * showed in profiles of forwarding followers).
 *
 * Sent or not: the pre-request callback marks the moment curl issues a
 * request on a connection. A failure before it means nothing was sent; a
 * failure after it may follow a delivery (the leader may have applied a
 * write whose answer was lost), and curl's own silent resend of such a
 * request is refused unless the caller says it is idempotent.
 *
 * Batches (http_client_batch()): items for the same URL collect until a
 * 0 ms timer fires, after the current round of I/O callbacks, and leave
 * as one POST. A follower forwarding many small writes thus pays for one
 * request to the leader per loop iteration instead of one per write.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <curl/curl.h>

#include "http/client.h"
#include "src/lib/buf.h"
#include "src/lib/curl_uv.h"

#define RESPONSE_MAX (16u * 1024 * 1024)
#define RESPONSE_KEEP (64u * 1024) /* response buffer kept by an idle handle */
#define IDLE_MAX 256u              /* idle easy handles kept for reuse */
#define HEADERS_MAX 8u
#define HEADERS_BUF 2048u
#define BATCH_FRAME 4u /* length prefix of an item and of a result */
/* Batches of one URL in flight at a time. While they are, new items
 * collect: under load the batches grow with the round trip to the leader
 * (commit included) instead of leaving one or two writes at a time. */
#define BATCH_INFLIGHT_MAX 2u

/* A request and its easy handle. Both are reused: options common to every
 * request are set once, when the handle is created, and the handle goes
 * back to the client's idle list when its request completes. */
struct creq {
	struct http_client *client;
	CURL *easy;
	http_client_cb cb;
	void *data;
	unsigned flags;
	struct curl_uv_once once;
	struct curl_uv_body body;
	struct curl_slist headers[HEADERS_MAX + 1];
	char header_buf[HEADERS_BUF];
	LIST_ENTRY(creq) link; /* in reqs while active, in idle otherwise */
};

/* An item of a batch: whom to tell. */
struct batch_item {
	http_client_cb cb;
	void *data;
};

/* A batch being collected (in the client's list) or sent (owned by its
 * request's callback). */
struct batch {
	struct http_client *client;
	char *url;
	unsigned timeout_ms;
	const char *headers[HEADERS_MAX + 1];
	char header_buf[HEADERS_BUF];
	struct buf body;
	struct batch_item *items;
	unsigned n, cap;
	bool full;
	TAILQ_ENTRY(batch) link;
};

struct http_client {
	uv_loop_t *loop;
	struct curl_uv cu;
	uv_timer_t batch_timer;
	TAILQ_HEAD(batch_list, batch) batches; /* collecting, oldest first */
	struct batch_list sent;                /* posted, not answered yet */
	char *ca_file, *cert_file, *key_file;
	LIST_HEAD(, creq) reqs;
	LIST_HEAD(, creq) idle;
	unsigned n_reqs;
	unsigned n_idle;
	unsigned n_handles; /* batch_timer and cu, until closed */
	bool closing;
	void (*close_cb)(void *data);
	void *close_data;
};

static void maybe_free(struct http_client *c)
{
	void (*cb)(void *) = c->close_cb;
	void *data = c->close_data;

	if (!c->closing || c->n_handles > 0)
		return;
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c);
	if (cb != NULL)
		cb(data);
}

static void creq_free(struct creq *r)
{
	if (r->easy != NULL)
		curl_easy_cleanup(r->easy);
	buf_free(&r->body.buf);
	free(r);
}

/* A new request with its easy handle and the options every request
 * shares; NULL on OOM. */
static struct creq *creq_new(struct http_client *c)
{
	struct creq *r = calloc(1, sizeof(*r));
	CURL *e;

	if (r == NULL)
		return NULL;
	r->client = c;
	r->easy = e = curl_easy_init();
	if (e == NULL) {
		free(r);
		return NULL;
	}
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (c->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	if (c->cert_file != NULL)
		curl_easy_setopt(e, CURLOPT_SSLCERT, c->cert_file);
	if (c->key_file != NULL)
		curl_easy_setopt(e, CURLOPT_SSLKEY, c->key_file);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
	/* Masters talk to each other directly: no proxy from the environment
	 * (which curl would also look up with getenv() on every request). */
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	/* The path goes as given: a forwarded store key "/a/../b" must not
	 * become "/b" on the leader. */
	curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	r->body.max = RESPONSE_MAX;
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, curl_uv_collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &r->body);
	/* Sent twice only when the caller says the request is idempotent. */
	curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, curl_uv_prereq);
	curl_easy_setopt(e, CURLOPT_PREREQDATA, &r->once);
	return r;
}

/* Back to the idle list (the handle already left the multi handle). */
static void creq_release(struct http_client *c, struct creq *r)
{
	if (c->closing || c->n_idle >= IDLE_MAX) {
		creq_free(r);
		return;
	}
	if (r->body.buf.cap > RESPONSE_KEEP)
		buf_free(&r->body.buf);
	r->body.buf.len = 0;
	r->cb = NULL;
	r->data = NULL;
	LIST_INSERT_HEAD(&c->idle, r, link);
	c->n_idle++;
}

/* Maps a failed transfer to "nothing sent" or "outcome unknown". Whether
 * anything was sent is known from the pre-request callback, not from the
 * error code: with HTTP/2 a request goes out on a connection that may be
 * reused and already broken, and then fails with a send or receive error
 * although the server may have read it. */
static int transfer_error(const struct creq *r, CURLcode code)
{
	if (!r->once.sent)
		return code == CURLE_OUT_OF_MEMORY ? -ENOMEM : -ENOTCONN;
	return code == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
}

/* A request's transfer ended (@easy already out of the multi handle). */
static void transfer_done_cb(struct curl_uv *cu, CURL *easy, CURLcode result)
{
	struct http_client *c = cu->data;
	struct http_client_response res = {0};
	struct creq *r = NULL;
	char *ct = NULL;
	int err = 0;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
	if (result != CURLE_OK) {
		err = r->body.too_big ? -EIO : transfer_error(r, result);
	} else {
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
		curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ct);
		res.content_type = ct != NULL ? ct : "";
		res.body = r->body.buf.data != NULL ? r->body.buf.data : "";
		res.body_len = r->body.buf.len;
	}
	LIST_REMOVE(r, link);
	c->n_reqs--;
	r->cb(r->data, err, err == 0 ? &res : NULL);
	creq_release(c, r); /* freed if the callback closed the client */
}

int http_client_new(uv_loop_t *loop, const struct http_client_config *config,
		    struct http_client **ret_client)
{
	struct http_client *c;

	if (curl_uv_global_init() != 0)
		return -EIO;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->loop = loop;
	LIST_INIT(&c->reqs);
	LIST_INIT(&c->idle);
	if ((config->ca_file != NULL && (c->ca_file = strdup(config->ca_file)) == NULL) ||
	    (config->cert_file != NULL && (c->cert_file = strdup(config->cert_file)) == NULL) ||
	    (config->key_file != NULL && (c->key_file = strdup(config->key_file)) == NULL))
		goto err_after_alloc;
	if (curl_uv_init(&c->cu, loop, transfer_done_cb, NULL, c) != 0)
		goto err_after_alloc;
	uv_timer_init(loop, &c->batch_timer);
	c->batch_timer.data = c;
	TAILQ_INIT(&c->batches);
	TAILQ_INIT(&c->sent);
	c->n_handles = 2;
	*ret_client = c;
	return 0;

err_after_alloc:
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	free(c);
	return -ENOMEM;
}

/* ------------------------------------------------------------ batches */

static void batch_free(struct batch *b)
{
	free(b->url);
	buf_free(&b->body);
	free(b->items);
	free(b);
}

/* Tells every item @err and frees the batch (already off the list). */
static void batch_fail(struct batch *b, int err)
{
	for (unsigned i = 0; i < b->n; i++)
		b->items[i].cb(b->items[i].data, err, NULL);
	batch_free(b);
}

static uint32_t get_be32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static void batch_timer_cb(uv_timer_t *t);

static void batch_done_cb(void *data, int err, const struct http_client_response *res)
{
	struct batch *b = data;
	struct http_client *c = b->client;
	size_t off = 0;

	/* Its successors may go now: from the loop, after this answer. */
	TAILQ_REMOVE(&c->sent, b, link);
	if (!c->closing && !TAILQ_EMPTY(&c->batches) &&
	    !uv_is_active((uv_handle_t *)&c->batch_timer))
		uv_timer_start(&c->batch_timer, batch_timer_cb, 0, 0);

	if (err != 0) {
		batch_fail(b, err);
		return;
	}
	if (res->status != 200) {
		for (unsigned i = 0; i < b->n; i++)
			b->items[i].cb(b->items[i].data, 0, res);
		batch_free(b);
		return;
	}
	for (unsigned i = 0; i < b->n; i++) {
		struct http_client_response one = *res;
		uint32_t len;
		char *end, saved;

		if (res->body_len - off < BATCH_FRAME ||
		    (len = get_be32(res->body + off)) > res->body_len - off - BATCH_FRAME) {
			off = res->body_len;
			b->items[i].cb(b->items[i].data, -EIO, NULL);
			continue;
		}
		one.body = res->body + off + BATCH_FRAME;
		one.body_len = len;
		off += BATCH_FRAME + len;
		/* Results are NUL-terminated like any body: the byte after
		 * this one (the next length prefix, or the buffer's own NUL)
		 * is lent for that. The buffer is the request's own. */
		end = (char *)(uintptr_t)(one.body + len);
		saved = *end;
		*end = '\0';
		b->items[i].cb(b->items[i].data, 0, &one);
		*end = saved;
	}
	batch_free(b);
}

static unsigned batches_sent(const struct http_client *c, const char *url)
{
	const struct batch *b;
	unsigned n = 0;

	TAILQ_FOREACH(b, &c->sent, link)
		n += strcmp(b->url, url) == 0;
	return n;
}

static void batch_timer_cb(uv_timer_t *t)
{
	struct http_client *c = t->data;
	struct batch *b, *next;

	for (b = TAILQ_FIRST(&c->batches); b != NULL && !c->closing; b = next) {
		int rv;

		next = TAILQ_NEXT(b, link);
		if (batches_sent(c, b->url) >= BATCH_INFLIGHT_MAX)
			continue; /* goes when one of those is answered */
		TAILQ_REMOVE(&c->batches, b, link);
		rv = http_client_request(c, "POST", b->url, b->headers, b->body.data, b->body.len,
					 0, b->timeout_ms, batch_done_cb, b);
		if (rv != 0) /* nothing was sent */
			batch_fail(b, rv == -ENOMEM || rv == -ECANCELED ? rv : -ENOTCONN);
		else
			TAILQ_INSERT_TAIL(&c->sent, b, link);
	}
}

/* A new, empty batch for @url at the end of the list; NULL on OOM, -EINVAL
 * (too many or too long headers) in *ret_err. */
static struct batch *batch_new(struct http_client *c, const char *url,
			       const char *const *headers, unsigned timeout_ms, int *ret_err)
{
	struct batch *b = calloc(1, sizeof(*b));
	size_t used = 0, i;

	*ret_err = -ENOMEM;
	if (b == NULL)
		return NULL;
	b->client = c;
	b->timeout_ms = timeout_ms;
	b->url = strdup(url);
	if (b->url == NULL)
		goto err;
	for (i = 0; headers != NULL && headers[i] != NULL; i++) {
		size_t n = strlen(headers[i]) + 1;
		if (i >= HEADERS_MAX || used + n > sizeof(b->header_buf)) {
			*ret_err = -EINVAL;
			goto err;
		}
		memcpy(b->header_buf + used, headers[i], n);
		b->headers[i] = b->header_buf + used;
		used += n;
	}
	b->headers[i] = NULL;
	TAILQ_INSERT_TAIL(&c->batches, b, link);
	return b;

err:
	batch_free(b);
	return NULL;
}

int http_client_batch(struct http_client *c, const char *url, const char *const *headers,
		      const struct http_client_iov *iov, unsigned n_iov, unsigned timeout_ms,
		      http_client_cb cb, void *data)
{
	struct batch *b;
	size_t len = 0;
	unsigned char frame[BATCH_FRAME];
	int rv;

	if (c->closing)
		return -ECANCELED;
	for (unsigned i = 0; i < n_iov; i++)
		len += iov[i].len;
	if (len > UINT32_MAX - BATCH_FRAME)
		return -EINVAL;
	/* The newest batch of this URL, if it still has room. */
	TAILQ_FOREACH_REVERSE(b, &c->batches, batch_list, link) {
		if (strcmp(b->url, url) == 0)
			break;
	}
	if (b != NULL && (b->n >= HTTP_CLIENT_BATCH_ITEMS ||
			  b->body.len + BATCH_FRAME + len > HTTP_CLIENT_BATCH_BYTES))
		b = NULL;
	if (b == NULL && (b = batch_new(c, url, headers, timeout_ms, &rv)) == NULL)
		return rv;
	if (b->n == b->cap) {
		unsigned cap = b->cap != 0 ? b->cap * 2 : 16;
		struct batch_item *items = realloc(b->items, cap * sizeof(*items));
		if (items == NULL)
			goto err_nomem;
		b->items = items;
		b->cap = cap;
	}
	if (buf_reserve(&b->body, BATCH_FRAME + len) != 0)
		goto err_nomem;
	frame[0] = (unsigned char)(len >> 24);
	frame[1] = (unsigned char)(len >> 16);
	frame[2] = (unsigned char)(len >> 8);
	frame[3] = (unsigned char)len;
	buf_append(&b->body, frame, sizeof(frame));
	for (unsigned i = 0; i < n_iov; i++)
		buf_append(&b->body, iov[i].base, iov[i].len);
	b->items[b->n].cb = cb;
	b->items[b->n].data = data;
	b->n++;
	if (!uv_is_active((uv_handle_t *)&c->batch_timer))
		uv_timer_start(&c->batch_timer, batch_timer_cb, 0, 0);
	return 0;

err_nomem:
	if (b->n == 0) {
		TAILQ_REMOVE(&c->batches, b, link);
		batch_free(b);
	}
	return -ENOMEM;
}

static void timer_close_cb(uv_handle_t *h)
{
	struct http_client *c = h->data;

	c->n_handles--;
	maybe_free(c);
}

static void cu_close_cb(struct curl_uv *cu)
{
	struct http_client *c = cu->data;

	c->n_handles--;
	maybe_free(c);
}

void http_client_close(struct http_client *c, void (*cb)(void *data), void *data)
{
	struct creq *r;
	struct batch *b;

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
	while ((r = LIST_FIRST(&c->reqs)) != NULL) {
		curl_multi_remove_handle(c->cu.multi, r->easy);
		LIST_REMOVE(r, link);
		c->n_reqs--;
		/* Cancelling does not unsend: a request that may have gone out
		 * has an unknown outcome. */
		r->cb(r->data, r->once.sent ? -EIO : -ECANCELED, NULL);
		creq_free(r);
	}
	while ((r = LIST_FIRST(&c->idle)) != NULL) {
		LIST_REMOVE(r, link);
		c->n_idle--;
		creq_free(r);
	}
	/* Batches not sent yet: nothing of them went out. */
	while ((b = TAILQ_FIRST(&c->batches)) != NULL) {
		TAILQ_REMOVE(&c->batches, b, link);
		batch_fail(b, -ECANCELED);
	}
	curl_uv_close(&c->cu, cu_close_cb);
	uv_timer_stop(&c->batch_timer);
	uv_close((uv_handle_t *)&c->batch_timer, timer_close_cb);
}

int http_client_request(struct http_client *c, const char *method, const char *url,
			const char *const *headers, const void *body, size_t body_len,
			unsigned flags, unsigned timeout_ms, http_client_cb cb, void *data)
{
	static const char expect_off[] = "Expect:";
	struct creq *r;
	CURL *e;
	size_t i, used = 0;

	if (c->closing)
		return -ECANCELED;
	r = LIST_FIRST(&c->idle);
	if (r != NULL) {
		LIST_REMOVE(r, link);
		c->n_idle--;
	} else if ((r = creq_new(c)) == NULL) {
		return -ENOMEM;
	}
	e = r->easy;
	r->cb = cb;
	r->data = data;
	r->flags = flags;
	r->once.sent = false;
	r->once.repeatable = (flags & HTTP_CLIENT_IDEMPOTENT) != 0;
	r->body.too_big = false;
	r->body.buf.len = 0;
	/* The header list lives in the request itself (curl reads it, never
	 * frees it). "Expect:" off: no 100-continue round trip; an empty
	 * Content-Type unless the caller gives one (curl would invent a form
	 * type). */
	r->headers[0].data = (char *)expect_off;
	r->headers[0].next = NULL;
	for (i = 0; headers != NULL && headers[i] != NULL; i++) {
		size_t n = strlen(headers[i]) + 1;
		if (i >= HEADERS_MAX || used + n > sizeof(r->header_buf))
			goto err_inval;
		memcpy(r->header_buf + used, headers[i], n);
		r->headers[i + 1].data = r->header_buf + used;
		r->headers[i + 1].next = NULL;
		r->headers[i].next = &r->headers[i + 1];
		used += n;
	}
	if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK)
		goto err_inval;
	/* Reset what an earlier request of this handle may have set: GET
	 * clears the body and NOBODY; then a body if there is one. */
	curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	if (body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	    strcmp(method, "PATCH") == 0) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body != NULL ? body : "");
	}
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	if (curl_multi_add_handle(c->cu.multi, e) != CURLM_OK) {
		creq_release(c, r);
		return -ENOMEM;
	}
	LIST_INSERT_HEAD(&c->reqs, r, link);
	c->n_reqs++;
	return 0;

err_inval:
	creq_release(c, r);
	return -EINVAL;
}

unsigned http_client_pending(const struct http_client *c)
{
	return c->n_reqs;
}
