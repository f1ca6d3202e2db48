/* Forwarding of writes from a follower to the leader.
 *
 * The follower has authenticated and authorized the user; it sends the
 * request as it came (method, path, query, body, content type) to the
 * leader's API URL with this master's client certificate and relays the
 * answer (status, content type, body).
 *
 * A write must never be answered "not done" (503 and the like) when it may
 * have been done. So:
 *  - Nothing was sent (no connection could be made, or the client library
 *    stopped before writing the request): the request waits for a leader
 *    and is dispatched again (leader.c), until its deadline; then 503.
 *  - The leader answered HTTP_STATUS_NOT_HANDLED (it is not the leader any
 *    more, or it is closing; it did nothing): the same.
 *  - Anything else after the request may have been written (connection
 *    lost, timeout, an answer that is not HTTP, the client closing): 504
 *    Timeout, outcome unknown. It is never sent again: a second copy could
 *    apply the write twice. The client library is told so too (no
 *    HTTP_CLIENT_IDEMPOTENT): it must not resend by itself.
 * A request that was forwarded once is never forwarded again (no loops
 * while views of the leader disagree): the receiver answers
 * HTTP_STATUS_NOT_HANDLED and the sender waits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

#define FWD_HEADER_MAX 300

/* One forwarded request, with everything it sends in one allocation: the
 * request may end (client gone) while the leader still reads the body. */
struct fwd_op {
	struct http_op op; /* first */
	char *method;
	char *url;
	char *body;
	size_t body_len;
	const char *headers[4];
	char buf[]; /* method, url, headers, body */
};

static void fwd_fail(struct fwd_op *f, int code, const char *reason, const char *msg)
{
	h2o_req_t *req = http__op_detach(&f->op);

	if (req != NULL)
		http_send_status(req, code, reason, "%s", msg);
	http__op_free(&f->op);
}

/* Nothing was done: wait for a (new) leader, then dispatch again. */
static void fwd_again(struct fwd_op *f)
{
	struct http_server *s = f->op.server;
	struct http_request *hr = f->op.req != NULL ? f->op.hr : NULL;

	http__op_free(&f->op);
	http__leader_invalidate(s);
	if (hr != NULL) /* else the client left: nothing to do */
		http__wait_leader(hr, 503, "the leader is unreachable, try again");
}

bool http__fwd_retry(int err, const struct http_client_response *res)
{
	return err == -ENOTCONN || (err == 0 && res->status == HTTP_STATUS_NOT_HANDLED);
}

void http__fwd_answer(struct http_server *s, h2o_req_t *req, int err,
		      const struct http_client_response *res)
{
	if (err != 0 && err != -ECANCELED && err != -ENOMEM) /* -ETIMEDOUT, -EIO */
		http__leader_invalidate(s);
	if (req == NULL)
		return;
	if (err == 0 && res->status >= 200 && res->status <= 599)
		http_send_raw(req, (int)res->status, res->content_type, res->body, res->body_len);
	else if (err == 0)
		http_send_status(req, 504, "Timeout",
				 "the leader gave an invalid answer: the outcome of the request is "
				 "unknown");
	else if (err == -ECANCELED)
		http_send_status(req, 503, NULL, "the server is shutting down");
	else if (err == -ENOMEM)
		http_send_status(req, 500, NULL, "out of memory");
	else
		http_send_status(req, 504, "Timeout",
				 "the leader did not answer: the outcome of the request is unknown");
}

static void fwd_cb(void *data, int err, const struct http_client_response *res)
{
	struct fwd_op *f = data;

	if (http__fwd_retry(err, res)) {
		fwd_again(f);
		return;
	}
	http__fwd_answer(f->op.server, http__op_detach(&f->op), err, res);
	http__op_free(&f->op);
}

/* Header values are cut to what fits. */
static size_t clamp(size_t len)
{
	return len > FWD_HEADER_MAX - 32 ? FWD_HEADER_MAX - 32 : len;
}

/* Writes "prefix value" without control characters (names come from
 * certificates and the token file, values from the client); returns the
 * byte after its NUL. */
static char *put_clean(char *dst, const char *prefix, const char *v, size_t len)
{
	size_t p = strlen(prefix), i;

	memcpy(dst, prefix, p);
	for (i = 0; i < len; i++)
		dst[p + i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? ' ' : v[i];
	dst[p + len] = '\0';
	return dst + p + len + 1;
}

static h2o_iovec_t header_of(h2o_req_t *req, const h2o_token_t *token, const char *dflt)
{
	ssize_t i = h2o_find_header(&req->headers, token, -1);

	if (i < 0)
		return h2o_iovec_init(dflt, strlen(dflt));
	return req->headers.entries[i].value;
}

void http__forward(struct http_request *hr)
{
	struct http_server *s = hr->server;
	h2o_req_t *req = hr->req;
	const char *leader = http__leader_url(s);
	const char *user = hr->user != NULL ? hr->user->name : "";
	h2o_iovec_t ct = header_of(req, H2O_TOKEN_CONTENT_TYPE, "");
	h2o_iovec_t acc = header_of(req, H2O_TOKEN_ACCEPT, "*/*");
	size_t leader_len = strlen(leader), ct_len, acc_len, user_len, size;
	struct fwd_op *f;
	char *p;
	int rv;

	if (hr->forwarded) {
		http__send_not_handled(req, "this master is not the leader "
					    "(the request was forwarded here)");
		return;
	}
	if (leader_len == 0 || s->leader.is_self) {
		http__wait_leader(hr, 503, "no leader is known, try again");
		return;
	}
	if (req->path.len > 8192) {
		http_send_status(req, 400, NULL, "the request path is too long");
		return;
	}
	ct_len = clamp(ct.len);
	acc_len = clamp(acc.len);
	user_len = clamp(strlen(user));
	/* Sized exactly: small requests stay below malloc's large-chunk
	 * threshold, whose allocations consolidate the heap. */
	size = sizeof(*f) + req->method.len + 1 + leader_len + req->path.len + 1 +
	       sizeof("Content-Type: ") + ct_len + sizeof("Accept: ") + acc_len +
	       sizeof(HTTP_FORWARDED_HEADER ": user=") + user_len + req->entity.len;
	f = http__op_new(hr, size);
	if (f == NULL)
		return;
	p = f->buf;
	f->method = p;
	memcpy(p, req->method.base, req->method.len);
	p[req->method.len] = '\0';
	p += req->method.len + 1;
	f->url = p;
	memcpy(p, leader, leader_len);
	memcpy(p + leader_len, req->path.base, req->path.len);
	p[leader_len + req->path.len] = '\0';
	p += leader_len + req->path.len + 1;
	/* "Content-Type:" alone keeps curl from inventing a form type. */
	f->headers[0] = p;
	p = put_clean(p, ct_len > 0 ? "Content-Type: " : "Content-Type:", ct.base, ct_len);
	f->headers[1] = p;
	p = put_clean(p, "Accept: ", acc.base, acc_len);
	/* Never empty: curl drops a header without a value. */
	f->headers[2] = p;
	p = put_clean(p, HTTP_FORWARDED_HEADER ": user=", user, user_len);
	f->headers[3] = NULL;
	if (req->entity.base != NULL) {
		f->body = p;
		f->body_len = req->entity.len;
		memcpy(p, req->entity.base, req->entity.len);
	}
	rv = http_client_request(s->client, f->method, f->url, f->headers, f->body, f->body_len,
				 0, HTTP_FORWARD_TIMEOUT_MS, fwd_cb, f);
	if (rv == -ECANCELED)
		fwd_fail(f, 503, NULL, "the server is shutting down");
	else if (rv != 0)
		fwd_fail(f, 500, NULL, "cannot forward the request to the leader");
}
