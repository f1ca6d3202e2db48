/* Forwarding of writes from a follower to the leader.
 *
 * The follower has authenticated and authorized the user; it sends the
 * request as it came (method, path, query, body, content type) to the
 * leader's API URL with this master's client certificate and relays the
 * answer (status, content type, body).
 *
 * Failures: no leader known -> 503. Nothing could be sent (no connection)
 * -> wait HTTP_FORWARD_RETRY_MS for a new leader and try once more, then
 * 503. The request may have reached the leader (connection lost or timeout
 * after sending) -> 504 Timeout, outcome unknown: retrying could apply a
 * write twice. A request that was forwarded once is never forwarded again
 * (no loops while views of the leader disagree): 503.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

struct fwd_op {
	struct http_op op; /* first */
	char *method;
	char *path; /* with the query */
	void *body;
	size_t body_len;
	char *content_type;
	char *accept;
	bool retried;
	h2o_timeout_entry_t retry;
};

static void fwd_free(struct fwd_op *f)
{
	if (h2o_timeout_is_linked(&f->retry))
		h2o_timeout_unlink(&f->retry);
	free(f->method);
	free(f->path);
	free(f->body);
	free(f->content_type);
	free(f->accept);
	http__op_free(&f->op);
}

static void fwd_fail(struct fwd_op *f, int code, const char *reason, const char *msg)
{
	h2o_req_t *req = http__op_detach(&f->op);

	if (req != NULL)
		http_send_status(req, code, reason, "%s", msg);
	fwd_free(f);
}

static void fwd_send(struct fwd_op *f);

static void retry_cb(h2o_timeout_entry_t *e)
{
	struct fwd_op *f = H2O_STRUCT_FROM_MEMBER(struct fwd_op, retry, e);

	if (f->op.req == NULL) {
		fwd_free(f); /* the client left; the write was never sent */
		return;
	}
	if (!http__server_running(f->op.server)) {
		fwd_fail(f, 503, NULL, "the server is shutting down");
		return;
	}
	fwd_send(f);
}

static void fwd_cb(void *data, int err, const struct http_client_response *res)
{
	struct fwd_op *f = data;
	h2o_req_t *req;

	if (err == 0) {
		req = http__op_detach(&f->op);
		if (req != NULL) {
			if (res->status >= 200 && res->status <= 599)
				http_send_raw(req, (int)res->status, res->content_type, res->body,
					      res->body_len);
			else
				http_send_status(req, 502, NULL,
						 "the leader gave an invalid answer");
		}
		fwd_free(f);
		return;
	}
	if (err == -ENOTCONN && !f->retried && f->op.req != NULL &&
	    http__server_running(f->op.server)) {
		/* Nothing was sent: a new leader may be elected meanwhile. */
		f->retried = true;
		f->retry.cb = retry_cb;
		h2o_timeout_link(f->op.server->loop, &f->op.server->retry_timeout, &f->retry);
		return;
	}
	if (err == -ENOTCONN)
		fwd_fail(f, 503, NULL, "the leader is unreachable");
	else if (err == -ECANCELED)
		fwd_fail(f, 503, NULL, "the server is shutting down");
	else if (err == -ENOMEM)
		fwd_fail(f, 500, NULL, "out of memory");
	else
		fwd_fail(f, 504, "Timeout",
			 "the leader did not answer: the outcome of the request is unknown");
}

/* Header value without control characters (names come from certificates
 * and the token file). */
static void clean_copy(char *dst, size_t cap, const char *src)
{
	size_t i;

	for (i = 0; src[i] != '\0' && i + 1 < cap; i++)
		dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? '?' : src[i];
	dst[i] = '\0';
}

static void fwd_send(struct fwd_op *f)
{
	struct http_server *s = f->op.server;
	const char *leader = replica_leader_url(s->replica);
	char url[4096 + 512], ct[300], acc[300], fwd[300], user[256];
	const char *headers[4];
	size_t n;
	int rv;

	if (leader == NULL || leader[0] == '\0' ||
	    (s->self_url != NULL && strcmp(leader, s->self_url) == 0)) {
		fwd_fail(f, 503, NULL, "no leader is known");
		return;
	}
	n = strlen(leader);
	while (n > 0 && leader[n - 1] == '/')
		n--;
	if (snprintf(url, sizeof(url), "%.*s%s", (int)n, leader, f->path) >= (int)sizeof(url)) {
		fwd_fail(f, 400, NULL, "the request path is too long");
		return;
	}
	clean_copy(user, sizeof(user), f->op.user_name != NULL ? f->op.user_name : "");
	snprintf(ct, sizeof(ct), "Content-Type:%s%s", f->content_type ? " " : "",
		 f->content_type ? f->content_type : "");
	snprintf(acc, sizeof(acc), "Accept: %s", f->accept ? f->accept : "*/*");
	/* Never empty: curl drops a header without a value. */
	snprintf(fwd, sizeof(fwd), HTTP_FORWARDED_HEADER ": user=%s", user);
	headers[0] = ct;
	headers[1] = acc;
	headers[2] = fwd;
	headers[3] = NULL;
	rv = http_client_request(s->client, f->method, url, headers, f->body, f->body_len,
				 HTTP_FORWARD_TIMEOUT_MS, fwd_cb, f);
	if (rv == -ECANCELED)
		fwd_fail(f, 503, NULL, "the server is shutting down");
	else if (rv != 0)
		fwd_fail(f, 500, NULL, "cannot forward the request to the leader");
}

static char *header_copy(h2o_req_t *req, const h2o_token_t *token)
{
	ssize_t i = h2o_find_header(&req->headers, token, -1);
	h2o_iovec_t v;
	char *s;
	size_t k;

	if (i < 0)
		return NULL;
	v = req->headers.entries[i].value;
	if (v.len > 256)
		v.len = 256;
	s = strndup(v.base, v.len);
	for (k = 0; s != NULL && s[k] != '\0'; k++)
		if ((unsigned char)s[k] < 0x20)
			s[k] = ' ';
	return s;
}

void http__forward(struct http_server *s, struct http_conn *conn, h2o_req_t *req,
		   const char *user_name)
{
	struct fwd_op *f;

	if (h2o_find_header_by_str(&req->headers, H2O_STRLIT(HTTP_FORWARDED_HEADER), -1) >= 0) {
		http_send_status(req, 503, NULL,
				 "this master is not the leader (the request was forwarded here)");
		return;
	}
	f = http__op_new_for(s, conn, req, user_name, sizeof(*f));
	if (f == NULL)
		return;
	f->method = strndup(req->method.base, req->method.len);
	f->path = strndup(req->path.base, req->path.len);
	f->content_type = header_copy(req, H2O_TOKEN_CONTENT_TYPE);
	f->accept = header_copy(req, H2O_TOKEN_ACCEPT);
	if (req->entity.base != NULL) {
		f->body = malloc(req->entity.len + 1);
		if (f->body != NULL)
			memcpy(f->body, req->entity.base, req->entity.len);
		f->body_len = req->entity.len;
	}
	if (f->method == NULL || f->path == NULL || (req->entity.base != NULL && f->body == NULL)) {
		fwd_fail(f, 500, NULL, "out of memory");
		return;
	}
	fwd_send(f);
}
