/* Unit tests of http/client: what a failed request reports ("nothing was
 * sent" or "outcome unknown"), and that a request that may have reached
 * the server is never sent a second time by libcurl on its own. A small
 * HTTP/1.1 server on the same uv loop answers or drops each request as a
 * test says. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <uv.h>

#include "http/client.h"

/* ------------------------------------------------------------ fixture */

enum action {
	ANSWER, /* 200 "ok", connection kept */
	DROP,   /* close the connection without an answer */
	ANSWER_BATCH, /* 200 with two framed results "A" and "BC" */
};

#define MAX_REQUESTS 8

struct peer {
	uv_tcp_t tcp;
	struct server *server;
	char buf[8192];
	size_t len;
	bool closing;
};

struct server {
	uv_tcp_t listener;
	int port;
	enum action actions[MAX_REQUESTS];
	unsigned n_requests; /* complete requests received */
	char last_line[256];  /* request line of the last one */
	char last_body[256];
	size_t last_body_len;
};

struct fixture {
	uv_loop_t loop;
	struct server server;
	struct http_client *client;
	bool done;
	bool closed;
	int err;
	long status;
	char body[64];
};

static void peer_closed_cb(uv_handle_t *h)
{
	free(h->data);
}

static void peer_close(struct peer *p)
{
	if (p->closing)
		return;
	p->closing = true;
	uv_close((uv_handle_t *)&p->tcp, peer_closed_cb);
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	struct peer *p = h->data;

	(void)size;
	buf->base = p->buf + p->len;
	buf->len = sizeof(p->buf) - p->len - 1;
}

static void write_cb(uv_write_t *w, int status)
{
	(void)status;
	free(w);
}

static void answer(struct peer *p, enum action a)
{
	static char text[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			     "Content-Length: 2\r\n\r\nok";
	static char batch[] = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
			      "Content-Length: 11\r\n\r\n\0\0\0\1A\0\0\0\2BC";
	uv_write_t *w = malloc(sizeof(*w));
	uv_buf_t b = a == ANSWER_BATCH ? uv_buf_init(batch, sizeof(batch) - 1)
				       : uv_buf_init(text, sizeof(text) - 1);

	assert_non_null(w);
	assert_int_equal(uv_write(w, (uv_stream_t *)&p->tcp, &b, 1, write_cb), 0);
}

/* A request ends with an empty line, then Content-Length bytes of body
 * (kept in last_body, up to its size). */
static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct peer *p = s->data;
	char *end;

	(void)buf;
	if (n < 0) {
		peer_close(p);
		return;
	}
	p->len += (size_t)n;
	p->buf[p->len] = '\0';
	while (!p->closing && (end = strstr(p->buf, "\r\n\r\n")) != NULL) {
		struct server *srv = p->server;
		enum action a = srv->n_requests < MAX_REQUESTS ? srv->actions[srv->n_requests]
							       : ANSWER;
		size_t used = (size_t)(end + 4 - p->buf);
		const char *cl = strstr(p->buf, "Content-Length: ");
		size_t body = cl != NULL && cl < end ? strtoul(cl + 16, NULL, 10) : 0;

		if (p->len < used + body)
			break; /* the rest of the body is still to come */
		srv->last_body_len = body < sizeof(srv->last_body) ? body : sizeof(srv->last_body);
		memcpy(srv->last_body, p->buf + used, srv->last_body_len);
		used += body;

		srv->n_requests++;
		snprintf(srv->last_line, sizeof(srv->last_line), "%.*s",
			 (int)strcspn(p->buf, "\r"), p->buf);
		memmove(p->buf, p->buf + used, p->len - used + 1);
		p->len -= used;
		if (a != DROP)
			answer(p, a);
		else
			peer_close(p);
	}
}

static void connection_cb(uv_stream_t *l, int status)
{
	struct server *srv = l->data;
	struct peer *p;

	assert_int_equal(status, 0);
	p = calloc(1, sizeof(*p));
	assert_non_null(p);
	p->server = srv;
	uv_tcp_init(l->loop, &p->tcp);
	p->tcp.data = p;
	assert_int_equal(uv_accept(l, (uv_stream_t *)&p->tcp), 0);
	uv_read_start((uv_stream_t *)&p->tcp, alloc_cb, read_cb);
}

static int bound_port(uv_tcp_t *t)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	assert_int_equal(uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len), 0);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct http_client_config cc = {0};
	struct sockaddr_in addr;

	assert_non_null(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	uv_ip4_addr("127.0.0.1", 0, &addr);
	uv_tcp_init(&f->loop, &f->server.listener);
	f->server.listener.data = &f->server;
	assert_int_equal(uv_tcp_bind(&f->server.listener, (struct sockaddr *)&addr, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&f->server.listener, 16, connection_cb), 0);
	f->server.port = bound_port(&f->server.listener);
	assert_int_equal(http_client_new(&f->loop, &cc, &f->client), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	/* The client closes its connections; the peers see EOF and close. */
	http_client_close(f->client, NULL, NULL);
	uv_close((uv_handle_t *)&f->server.listener, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

/* ------------------------------------------------------------ helpers */

static void done_cb(void *data, int err, const struct http_client_response *res)
{
	struct fixture *f = data;

	f->done = true;
	f->err = err;
	f->status = res != NULL ? res->status : 0;
	snprintf(f->body, sizeof(f->body), "%s", res != NULL ? res->body : "");
}

static void closed_cb(void *data)
{
	struct fixture *f = data;

	f->closed = true;
}

/* Sends one request to @path and runs the loop until its callback. */
static void call_path(struct fixture *f, const char *method, int port, const char *path,
		      unsigned flags)
{
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	f->done = false;
	assert_int_equal(http_client_request(f->client, method, url, NULL, NULL, 0, flags, 5000,
					     done_cb, f),
			 0);
	while (!f->done)
		uv_run(&f->loop, UV_RUN_ONCE);
}

static void call(struct fixture *f, const char *method, int port, unsigned flags)
{
	call_path(f, method, port, "/x", flags);
}

/* ------------------------------------------------------------ tests */

static void answered(void **state)
{
	struct fixture *f = *state;

	call(f, "GET", f->server.port, 0);
	assert_int_equal(f->err, 0);
	assert_int_equal(f->status, 200);
	assert_string_equal(f->body, "ok");
	/* The easy handle is reused for the next request. */
	call(f, "DELETE", f->server.port, 0);
	assert_int_equal(f->err, 0);
	assert_string_equal(f->body, "ok");
	assert_int_equal(f->server.n_requests, 2);
}

/* Store keys are paths: "/a/../b" is a key of its own. */
static void path_sent_as_is(void **state)
{
	struct fixture *f = *state;

	call_path(f, "PUT", f->server.port, "/capstan/v1/store/a/../b?create=true", 0);
	assert_int_equal(f->err, 0);
	assert_string_equal(f->server.last_line,
			    "PUT /capstan/v1/store/a/../b?create=true HTTP/1.1");
}

static void refused_is_not_sent(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in addr;
	uv_tcp_t t;
	int port;

	/* A port nobody listens on: bound, never listening. */
	uv_ip4_addr("127.0.0.1", 0, &addr);
	uv_tcp_init(&f->loop, &t);
	assert_int_equal(uv_tcp_bind(&t, (struct sockaddr *)&addr, 0), 0);
	port = bound_port(&t);
	call(f, "DELETE", port, 0);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT); /* t is on the stack */
	assert_int_equal(f->err, -ENOTCONN);
}

static void dropped_after_sending_is_unknown(void **state)
{
	struct fixture *f = *state;

	f->server.actions[0] = DROP;
	call(f, "DELETE", f->server.port, 0);
	assert_int_equal(f->err, -EIO);
	assert_int_equal(f->server.n_requests, 1);
}

/* On a reused connection that breaks before any answer, libcurl sends
 * the request again on a new one by itself: a write could apply twice. */
static void never_sent_twice(void **state)
{
	struct fixture *f = *state;

	f->server.actions[0] = ANSWER;
	f->server.actions[1] = DROP;
	call(f, "GET", f->server.port, 0);
	assert_int_equal(f->err, 0);
	call(f, "DELETE", f->server.port, 0);
	assert_int_equal(f->err, -EIO);
	assert_int_equal(f->server.n_requests, 2);
}

static void idempotent_may_be_resent(void **state)
{
	struct fixture *f = *state;

	f->server.actions[0] = ANSWER;
	f->server.actions[1] = DROP;
	f->server.actions[2] = ANSWER;
	call(f, "GET", f->server.port, HTTP_CLIENT_IDEMPOTENT);
	assert_int_equal(f->err, 0);
	call(f, "GET", f->server.port, HTTP_CLIENT_IDEMPOTENT);
	assert_int_equal(f->err, 0);
	assert_int_equal(f->status, 200);
	assert_int_equal(f->server.n_requests, 3);
}

static void close_cancels_unsent(void **state)
{
	struct fixture *f = *state;
	char url[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", f->server.port);
	f->done = false;
	assert_int_equal(http_client_request(f->client, "DELETE", url, NULL, NULL, 0, 0, 5000,
					     done_cb, f),
			 0);
	/* Nothing ran yet: curl starts from the loop. */
	http_client_close(f->client, closed_cb, f);
	assert_true(f->done);
	assert_int_equal(f->err, -ECANCELED);
	assert_int_equal(http_client_request(f->client, "GET", url, NULL, NULL, 0, 0, 5000,
					     done_cb, f),
			 -ECANCELED);
	while (!f->closed)
		uv_run(&f->loop, UV_RUN_ONCE);
	assert_int_equal(http_client_new(&f->loop, &(struct http_client_config){0}, &f->client),
			 0);
}

/* ------------------------------------------------------------ batches */

struct item {
	bool done;
	int err;
	long status;
	char body[16];
};

static void item_cb(void *data, int err, const struct http_client_response *res)
{
	struct item *it = data;

	it->done = true;
	it->err = err;
	it->status = res != NULL ? res->status : 0;
	snprintf(it->body, sizeof(it->body), "%s", res != NULL ? res->body : "");
}

static void batch_two(struct fixture *f, struct item *a, struct item *b)
{
	char url[64];
	struct http_client_iov one[] = {{"x", 1}};
	struct http_client_iov two[] = {{"yy", 2}, {"z", 1}};

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/b", f->server.port);
	assert_int_equal(http_client_batch(f->client, url, NULL, one, 1, 5000, item_cb, a), 0);
	assert_int_equal(http_client_batch(f->client, url, NULL, two, 2, 5000, item_cb, b), 0);
	/* Never from within the call. */
	assert_false(a->done);
	assert_false(b->done);
}

/* Items of one loop iteration leave as one POST; each gets its result. */
static void batch_is_one_request(void **state)
{
	struct fixture *f = *state;
	struct item a = {0}, b = {0};

	f->server.actions[0] = ANSWER_BATCH;
	batch_two(f, &a, &b);
	while (!a.done || !b.done)
		uv_run(&f->loop, UV_RUN_ONCE);
	assert_int_equal(f->server.n_requests, 1);
	assert_string_equal(f->server.last_line, "POST /b HTTP/1.1");
	assert_int_equal(f->server.last_body_len, 12);
	assert_memory_equal(f->server.last_body, "\0\0\0\1x\0\0\0\3yyz", 12);
	assert_int_equal(a.err, 0);
	assert_int_equal(a.status, 200);
	assert_string_equal(a.body, "A");
	assert_int_equal(b.err, 0);
	assert_string_equal(b.body, "BC");
}

/* A 200 answer without a result for an item: outcome unknown. */
static void batch_short_answer_is_unknown(void **state)
{
	struct fixture *f = *state;
	struct item a = {0}, b = {0};

	f->server.actions[0] = ANSWER; /* "ok": no framed result at all */
	batch_two(f, &a, &b);
	while (!a.done || !b.done)
		uv_run(&f->loop, UV_RUN_ONCE);
	assert_int_equal(a.err, -EIO);
	assert_int_equal(b.err, -EIO);
}

static void batch_dropped_is_unknown(void **state)
{
	struct fixture *f = *state;
	struct item a = {0}, b = {0};

	f->server.actions[0] = DROP;
	batch_two(f, &a, &b);
	while (!a.done || !b.done)
		uv_run(&f->loop, UV_RUN_ONCE);
	assert_int_equal(a.err, -EIO);
	assert_int_equal(b.err, -EIO);
	assert_int_equal(f->server.n_requests, 1);
}

static void batch_close_cancels_unsent(void **state)
{
	struct fixture *f = *state;
	struct item a = {0}, b = {0};

	batch_two(f, &a, &b);
	http_client_close(f->client, closed_cb, f);
	assert_true(a.done && b.done);
	assert_int_equal(a.err, -ECANCELED);
	assert_int_equal(b.err, -ECANCELED);
	while (!f->closed)
		uv_run(&f->loop, UV_RUN_ONCE);
	assert_int_equal(f->server.n_requests, 0);
	assert_int_equal(http_client_new(&f->loop, &(struct http_client_config){0}, &f->client),
			 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(answered, setup, teardown),
		cmocka_unit_test_setup_teardown(path_sent_as_is, setup, teardown),
		cmocka_unit_test_setup_teardown(refused_is_not_sent, setup, teardown),
		cmocka_unit_test_setup_teardown(dropped_after_sending_is_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(never_sent_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(idempotent_may_be_resent, setup, teardown),
		cmocka_unit_test_setup_teardown(close_cancels_unsent, setup, teardown),
		cmocka_unit_test_setup_teardown(batch_is_one_request, setup, teardown),
		cmocka_unit_test_setup_teardown(batch_short_answer_is_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(batch_dropped_is_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(batch_close_cancels_unsent, setup, teardown),
	};

	return cmocka_run_group_tests_name("http_client", tests, NULL, NULL);
}
