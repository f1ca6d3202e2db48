/* Unit tests of runtime/kclient: requests (JSON in and out, bearer token,
 * content types), failover across URLs (refused connection, 503, a write
 * never sent twice), the stream limit, cancelling on close, and watches
 * (events, reconnect from the last resourceVersion, relist on 410, errors,
 * stop from a callback). Small HTTP/1.1 servers on the same uv loop answer
 * as each test scripts them; the client runs with http1 set (capstand's
 * h2c and TLS paths are covered by the hollow-node integration tests). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <uv.h>

#include "runtime/kclient.h"

/* ------------------------------------------------------------ fixture */

enum action {
	A_JSON,  /* 200 with srv->reply (or an echo of the request) */
	A_503,   /* 503 Status */
	A_403,   /* 403 Status */
	A_DROP,  /* close the connection without an answer */
	A_HOLD,  /* never answer */
	A_DELAY, /* 200 after a short timer */
	A_WATCH, /* 200, the scripted watch lines, then close */
	A_WATCH_HOLD, /* 200, the scripted watch lines, keep open */
};

#define MAX_REQ 64

struct server;

struct peer {
	uv_tcp_t tcp;
	struct server *server;
	char buf[65536];
	size_t len;
	bool closing;
	bool close_after_write;
	LIST_ENTRY(peer) link;
};

struct delayed {
	uv_timer_t timer;
	struct peer *peer;
};

struct server {
	uv_tcp_t listener;
	int port;
	char url[64];
	enum action actions[MAX_REQ];
	enum action dflt;
	unsigned n_req;
	char *paths[MAX_REQ];
	char methods[MAX_REQ][8];
	char auth[256];
	char ctype[128];
	char body[4096];
	const char *reply;
	const char *watch_lines[4]; /* per watch request index */
	unsigned n_watch;
	unsigned outstanding, max_outstanding;
	LIST_HEAD(, peer) peers;
};

struct fixture {
	uv_loop_t loop;
	struct server srv[2];
	uv_tcp_t dead; /* bound, never listening: connections are refused */
	char dead_url[64];
	struct kclient *client;
	unsigned n_done;
	int err;
	long status;
	char raw[4096];
	json_t *body;
	bool closed;
	/* watches */
	struct kclient_watch *watch;
	char events[16][128];
	unsigned n_events;
	unsigned n_relist;
	unsigned stop_after; /* stop the watch from the Nth event callback */
};

static struct fixture *F;

static void peer_closed_cb(uv_handle_t *h)
{
	free(h->data);
}

static void peer_close(struct peer *p)
{
	if (p->closing)
		return;
	p->closing = true;
	LIST_REMOVE(p, link);
	uv_close((uv_handle_t *)&p->tcp, peer_closed_cb);
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
	struct peer *p = h->data;

	(void)size;
	buf->base = p->buf + p->len;
	buf->len = sizeof(p->buf) - p->len - 1;
}

struct wreq {
	uv_write_t w;
	struct peer *p;
	bool close;
	char data[];
};

static void write_cb(uv_write_t *w, int status)
{
	struct wreq *r = (struct wreq *)w;

	(void)status;
	if (r->close)
		peer_close(r->p);
	free(r);
}

static void send_text(struct peer *p, const char *text, bool close)
{
	size_t n = strlen(text);
	struct wreq *r = malloc(sizeof(*r) + n + 1);
	uv_buf_t b;

	assert_non_null(r);
	memcpy(r->data, text, n + 1);
	r->p = p;
	r->close = close;
	b = uv_buf_init(r->data, (unsigned)n);
	assert_int_equal(uv_write(&r->w, (uv_stream_t *)&p->tcp, &b, 1, write_cb), 0);
}

static void send_response(struct peer *p, int status, const char *body)
{
	char head[256];
	char *text;
	size_t n = strlen(body);

	snprintf(head, sizeof head,
		 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
		 status, n);
	text = malloc(strlen(head) + n + 1);
	assert_non_null(text);
	strcpy(text, head);
	strcat(text, body);
	send_text(p, text, false);
	free(text);
	p->server->outstanding--;
}

static void delayed_closed_cb(uv_handle_t *h)
{
	free(h->data);
}

static void delayed_cb(uv_timer_t *t)
{
	struct delayed *d = t->data;
	struct peer *p;

	/* The peer may be gone: look for it. */
	LIST_FOREACH(p, &F->srv[0].peers, link) {
		if (p == d->peer)
			send_response(p, 200, "{\"kind\":\"Delayed\"}");
	}
	uv_close((uv_handle_t *)t, delayed_closed_cb);
}

static void handle(struct peer *p, const char *method, const char *path, const char *body)
{
	struct server *srv = p->server;
	unsigned i = srv->n_req++;
	enum action a = i < MAX_REQ ? srv->actions[i] : srv->dflt;
	char echo[8192];

	if (i < MAX_REQ) {
		srv->paths[i] = strdup(path);
		snprintf(srv->methods[i], sizeof srv->methods[i], "%s", method);
	}
	snprintf(srv->body, sizeof srv->body, "%s", body);
	srv->outstanding++;
	if (srv->outstanding > srv->max_outstanding)
		srv->max_outstanding = srv->outstanding;
	switch (a) {
	case A_JSON:
		if (srv->reply != NULL) {
			send_response(p, 200, srv->reply);
		} else {
			snprintf(echo, sizeof echo, "{\"method\":\"%s\",\"body\":%s}", method,
				 body[0] != '\0' ? body : "null");
			send_response(p, 200, echo);
		}
		break;
	case A_503:
		send_response(p, 503,
			      "{\"kind\":\"Status\",\"code\":503,\"reason\":\"ServiceUnavailable\"}");
		break;
	case A_403:
		send_response(p, 403, "{\"kind\":\"Status\",\"code\":403,\"reason\":\"Forbidden\"}");
		break;
	case A_DROP:
		srv->outstanding--;
		peer_close(p);
		break;
	case A_HOLD:
		break;
	case A_DELAY: {
		struct delayed *d = calloc(1, sizeof(*d));
		assert_non_null(d);
		d->peer = p;
		uv_timer_init(p->tcp.loop, &d->timer);
		d->timer.data = d;
		uv_timer_start(&d->timer, delayed_cb, 5, 0);
		break;
	}
	case A_WATCH:
	case A_WATCH_HOLD: {
		const char *lines = srv->n_watch < 4 ? srv->watch_lines[srv->n_watch] : NULL;
		char *text;

		srv->n_watch++;
		srv->outstanding--;
		text = malloc(256 + (lines != NULL ? strlen(lines) : 0));
		assert_non_null(text);
		sprintf(text, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			      "Connection: close\r\n\r\n%s",
			lines != NULL ? lines : "");
		send_text(p, text, a == A_WATCH);
		free(text);
		break;
	}
	}
}

static const char *header(const char *head, const char *name, char *out, size_t len)
{
	const char *h = strcasestr(head, name);
	size_t n;

	out[0] = '\0';
	if (h == NULL)
		return out;
	h += strlen(name);
	while (*h == ' ')
		h++;
	n = strcspn(h, "\r");
	snprintf(out, len, "%.*s", (int)n, h);
	return out;
}

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
		char method[16], path[2048], cl[32], body[4096];
		size_t head_len = (size_t)(end + 4 - p->buf), body_len, used;

		*end = '\0';
		header(p->buf, "\r\nContent-Length:", cl, sizeof cl);
		body_len = cl[0] != '\0' ? strtoul(cl, NULL, 10) : 0;
		if (p->len < head_len + body_len) {
			*end = '\r';
			return;
		}
		assert_true(body_len < sizeof body);
		memcpy(body, p->buf + head_len, body_len);
		body[body_len] = '\0';
		assert_int_equal(sscanf(p->buf, "%15s %2047s", method, path), 2);
		header(p->buf, "\r\nAuthorization:", srv->auth, sizeof srv->auth);
		header(p->buf, "\r\nContent-Type:", srv->ctype, sizeof srv->ctype);
		used = head_len + body_len;
		memmove(p->buf, p->buf + used, p->len - used + 1);
		p->len -= used;
		handle(p, method, path, body);
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
	LIST_INSERT_HEAD(&srv->peers, p, link);
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
	struct sockaddr_in addr;

	assert_non_null(f);
	F = f;
	assert_int_equal(uv_loop_init(&f->loop), 0);
	uv_ip4_addr("127.0.0.1", 0, &addr);
	for (int i = 0; i < 2; i++) {
		struct server *srv = &f->srv[i];
		LIST_INIT(&srv->peers);
		uv_tcp_init(&f->loop, &srv->listener);
		srv->listener.data = srv;
		assert_int_equal(uv_tcp_bind(&srv->listener, (struct sockaddr *)&addr, 0), 0);
		assert_int_equal(uv_listen((uv_stream_t *)&srv->listener, 64, connection_cb), 0);
		srv->port = bound_port(&srv->listener);
		snprintf(srv->url, sizeof srv->url, "http://127.0.0.1:%d", srv->port);
	}
	/* A bound socket that does not listen: connecting is refused. */
	uv_tcp_init(&f->loop, &f->dead);
	assert_int_equal(uv_tcp_bind(&f->dead, (struct sockaddr *)&addr, 0), 0);
	snprintf(f->dead_url, sizeof f->dead_url, "http://127.0.0.1:%d", bound_port(&f->dead));
	*state = f;
	return 0;
}

static void closed_cb(void *data)
{
	struct fixture *f = data;

	f->closed = true;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	struct peer *p;

	if (f->client != NULL)
		kclient_close(f->client, closed_cb, f);
	for (int i = 0; i < 2; i++) {
		while ((p = LIST_FIRST(&f->srv[i].peers)) != NULL)
			peer_close(p);
		uv_close((uv_handle_t *)&f->srv[i].listener, NULL);
		for (unsigned j = 0; j < MAX_REQ; j++)
			free(f->srv[i].paths[j]);
	}
	uv_close((uv_handle_t *)&f->dead, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_true(f->client == NULL || f->closed);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	json_decref(f->body);
	free(f);
	return 0;
}

/* ------------------------------------------------------------ helpers */

static void new_client(struct fixture *f, const char *const *urls, unsigned timeout_ms,
		       unsigned max_streams)
{
	struct kclient_config cfg = {
		.urls = urls,
		.token = "tok123",
		.timeout_ms = timeout_ms,
		.max_streams = max_streams,
		.http1 = true,
	};

	assert_int_equal(kclient_new(&f->loop, &cfg, &f->client), 0);
}

static void done_cb(void *data, int err, const struct kclient_response *res)
{
	struct fixture *f = data;

	f->n_done++;
	f->err = err;
	f->status = res != NULL ? res->status : 0;
	snprintf(f->raw, sizeof f->raw, "%s", res != NULL ? res->raw : "");
	json_decref(f->body);
	f->body = res != NULL ? json_incref(res->body) : NULL;
}

static void run_until(struct fixture *f, const unsigned *counter, unsigned n)
{
	while (*counter < n)
		assert_int_not_equal(uv_run(&f->loop, UV_RUN_ONCE), 0);
}

static void event_cb(void *data, const char *type, json_t *obj)
{
	struct fixture *f = data;
	const char *rv = json_string_value(
		json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
	const char *name = json_string_value(
		json_object_get(json_object_get(obj, "metadata"), "name"));

	assert_true(f->n_events < 16);
	if (strcmp(type, "ERROR") == 0)
		snprintf(f->events[f->n_events], 128, "ERROR %lld",
			 (long long)json_integer_value(json_object_get(obj, "code")));
	else
		snprintf(f->events[f->n_events], 128, "%s %s %s", type, name != NULL ? name : "-",
			 rv != NULL ? rv : "-");
	f->n_events++;
	if (f->stop_after != 0 && f->n_events == f->stop_after) {
		kclient_watch_stop(f->watch);
		f->watch = NULL;
	}
}

static void relist_cb(void *data)
{
	struct fixture *f = data;

	f->n_relist++;
}

/* ------------------------------------------------------------ requests */

static void test_get_json(void **state)
{
	struct fixture *f = *state;
	const char *urls[] = {f->srv[0].url, NULL};

	f->srv[0].reply = "{\"kind\":\"Namespace\",\"metadata\":{\"name\":\"default\"}}";
	new_client(f, urls, 0, 0);
	assert_int_equal(kclient_request(f->client, "GET", "/api/v1/namespaces/default", NULL, NULL,
					 done_cb, f),
			 0);
	assert_int_equal(f->n_done, 0); /* never from within the call */
	assert_int_equal(kclient_pending(f->client), 1);
	run_until(f, &f->n_done, 1);
	assert_int_equal(f->err, 0);
	assert_int_equal(f->status, 200);
	assert_non_null(f->body);
	assert_string_equal(json_string_value(json_object_get(json_object_get(f->body, "metadata"),
							      "name")),
			    "default");
	assert_string_equal(f->srv[0].paths[0], "/api/v1/namespaces/default");
	assert_string_equal(f->srv[0].methods[0], "GET");
	assert_string_equal(f->srv[0].auth, "Bearer tok123");
	assert_int_equal(kclient_pending(f->client), 0);
	assert_string_equal(kclient_current_url(f->client), f->srv[0].url);
}

static void test_bodies_and_content_types(void **state)
{
	struct fixture *f = *state;
	const char *urls[] = {f->srv[0].url, NULL};
	json_t *obj = json_pack("{s:s,s:{s:s}}", "kind", "Pod", "metadata", "name", "p1");

	new_client(f, urls, 0, 0);
	assert_int_equal(kclient_request(f->client, "POST", "/api/v1/namespaces/d/pods", obj, NULL,
					 done_cb, f),
			 0);
	run_until(f, &f->n_done, 1);
	assert_int_equal(f->status, 200);
	assert_string_equal(f->srv[0].ctype, "application/json");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(json_object_get(f->body, "body"),
								  "metadata"),
						  "name")),
		"p1");
	assert_string_equal(json_string_value(json_object_get(f->body, "method")), "POST");

	assert_int_equal(kclient_request(f->client, "PATCH", "/api/v1/namespaces/d/pods/p1/status",
					 obj, "application/merge-patch+json", done_cb, f),
			 0);
	run_until(f, &f->n_done, 2);
	assert_string_equal(f->srv[0].ctype, "application/merge-patch+json");
	assert_string_equal(json_string_value(json_object_get(f->body, "method")), "PATCH");

	/* A reused handle forgets the earlier body. */
	assert_int_equal(kclient_request(f->client, "DELETE", "/api/v1/namespaces/d/pods/p1", NULL,
					 NULL, done_cb, f),
			 0);
	run_until(f, &f->n_done, 3);
	assert_string_equal(f->srv[0].methods[2], "DELETE");
	assert_string_equal(f->srv[0].body, "");
	assert_true(json_is_null(json_object_get(f->body, "body")));

	/* Not JSON: raw only. */
	f->srv[0].reply = "ok";
	assert_int_equal(kclient_request(f->client, "GET", "/healthz", NULL, NULL, done_cb, f), 0);
	run_until(f, &f->n_done, 4);
	assert_null(f->body);
	assert_string_equal(f->raw, "ok");
	json_decref(obj);
}

static void test_failover_refused(void **state)
{
	struct fixture *f = *state;
	const char *urls[] = {f->dead_url, f->srv[0].url, NULL};

	new_client(f, urls, 0, 0);
	assert_string_equal(kclient_current_url(f->client), f->dead_url);
	assert_int_equal(kclient_request(f->client, "POST", "/x", NULL, NULL, done_cb, f), 0);
	run_until(f, &f->n_done, 1);
	assert_int_equal(f->err, 0);
	assert_int_equal(f->status, 200);
	assert_string_equal(kclient_current_url(f->client), f->srv[0].url);
	assert_int_equal(f->srv[0].n_req, 1);
}

static void test_failover_503(void **state)
{
	struct fixture *f = *state;
	const char *urls[] = {f->srv[0].url, f->srv[1].url, NULL};

	f->srv[0].actions[0] = A_503;
	new_client(f, urls, 0, 0);
	assert_int_equal(kclient_request(f->client, "PUT", "/y", NULL, NULL, done_cb, f), 0);
	run_until(f, &f->n_done, 1);
	assert_int_equal(f->status, 200);
	assert_int_equal(f->srv[0].n_req, 1);
	assert_int_equal(f->srv[1].n_req, 1);
	assert_string_equal(kclient_current_url(f->client), f->srv[1].url);
}

static void test_all_down(void **state)
{
	struct fixture *f = *state;
	const char *urls[] = {f->dead_url, NULL};

	new_client(f, urls, 300, 0);
	assert_int_equal(kclient_request(f->client, "GET", "/z", NULL, NULL, done_cb, f), 0);
	run_until(f, &f->n_done, 1);
	assert_int_equal(f->err, -ECONNREFUSED);
}

/* Every master answers 503 until the time is up: the last 503 comes back. */
static void test_503_until_deadline(void **state)
{
	struct fixture *f = *state;
	const char *urls[] = {f->srv[0].url, NULL};

	f->srv[0].dflt = A_503;
	for (unsigned i = 0; i < MAX_REQ; i++)
		f->srv[0].actions[i] = A_503;
	new_client(f, urls, 400, 0);
	assert_int_equal(kclient_request(f->client, "GET", "/z", NULL, NULL, done_cb, f), 0);
	run_until(f, &f->n_done, 1);
	assert_int_equal(f->err, 0);
	assert_int_equal(f->status, 503);
	assert_true(f->srv[0].n_req >= 2);
}

/* A write whose connection broke after it was sent is not sent again; a
 * GET is retried on the next master. */
static void test_write_not_resent(void **state)
{
	struct fixture *f = *state;
	const char *urls[] = {f->srv[0].url, f->srv[1].url, NULL};

	f->srv[0].actions[0] = A_DROP;
	new_client(f, urls, 0, 0);
	assert_int_equal(kclient_request(f->client, "POST", "/w", NULL, NULL, done_cb, f), 0);
	run_until(f, &f->n_done, 1);
	assert_int_equal(f->err, -EIO);
	assert_int_equal(f->srv[0].n_req, 1);
	assert_int_equal(f->srv[1].n_req, 0);
	/* The master is suspect: the next request goes to the other one. */
	assert_string_equal(kclient_current_url(f->client), f->srv[1].url);

	f->srv[1].actions[0] = A_DROP;
	assert_int_equal(kclient_request(f->client, "GET", "/g", NULL, NULL, done_cb, f), 0);
	run_until(f, &f->n_done, 2);
	assert_int_equal(f->err, 0);
	assert_int_equal(f->status, 200);
	assert_int_equal(f->srv[1].n_req, 1);
	assert_int_equal(f->srv[0].n_req, 2);
}

static void test_max_streams(void **state)
{
	struct fixture *f = *state;
	const char *urls[] = {f->srv[0].url, NULL};

	for (unsigned i = 0; i < MAX_REQ; i++)
		f->srv[0].actions[i] = A_DELAY;
	new_client(f, urls, 0, 2);
	for (int i = 0; i < 10; i++)
		assert_int_equal(kclient_request(f->client, "GET", "/s", NULL, NULL, done_cb, f), 0);
	assert_int_equal(kclient_pending(f->client), 10);
	run_until(f, &f->n_done, 10);
	assert_int_equal(f->srv[0].n_req, 10);
	assert_true(f->srv[0].max_outstanding <= 2);
	assert_true(f->srv[0].max_outstanding >= 1);
	assert_int_equal(kclient_pending(f->client), 0);
}

static unsigned cancelled;

static void cancel_cb(void *data, int err, const struct kclient_response *res)
{
	(void)data;
	assert_null(res);
	assert_int_equal(err, -ECANCELED);
	cancelled++;
}

static void test_close_cancels(void **state)
{
	struct fixture *f = *state;
	const char *urls[] = {f->srv[0].url, NULL};

	f->srv[0].actions[0] = A_HOLD;
	f->srv[0].actions[1] = A_HOLD;
	cancelled = 0;
	new_client(f, urls, 0, 1);
	assert_int_equal(kclient_request(f->client, "GET", "/h", NULL, NULL, cancel_cb, f), 0);
	assert_int_equal(kclient_request(f->client, "GET", "/q", NULL, NULL, cancel_cb, f), 0);
	run_until(f, &f->srv[0].n_req, 1);
	kclient_close(f->client, closed_cb, f);
	assert_int_equal(cancelled, 2);
	assert_int_equal(kclient_request(f->client, "GET", "/late", NULL, NULL, cancel_cb, f),
			 -ECANCELED);
	while (!f->closed)
		uv_run(&f->loop, UV_RUN_ONCE);
	f->client = NULL;
}

/* ------------------------------------------------------------ watches */

#define EV(type, name, rv)                                                                      \
	"{\"type\":\"" type "\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"" name       \
	"\",\"resourceVersion\":\"" rv "\"}}}\n"

static void test_watch_reconnect_and_relist(void **state)
{
	struct fixture *f = *state;
	const char *urls[] = {f->srv[0].url, NULL};
	struct server *s = &f->srv[0];

	s->actions[0] = A_WATCH;
	s->actions[1] = A_WATCH_HOLD;
	s->actions[2] = A_WATCH_HOLD;
	s->watch_lines[0] = EV("ADDED", "a", "5") EV("BOOKMARK", "", "7");
	s->watch_lines[1] = EV("MODIFIED", "a", "9")
		"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410}}\n" EV("ADDED", "z", "99");
	s->watch_lines[2] = EV("DELETED", "a", "21");
	new_client(f, urls, 0, 0);
	assert_int_equal(kclient_watch(f->client, "/api/v1/pods?labelSelector=x%3Dy", "3", event_cb,
				       relist_cb, f, &f->watch),
			 0);
	assert_int_equal(f->n_events, 0);
	run_until(f, &f->n_relist, 1);
	assert_string_equal(s->paths[0], "/api/v1/pods?labelSelector=x%3Dy&watch=true&"
					 "allowWatchBookmarks=true&resourceVersion=3");
	/* The stream ended: the next one starts from the bookmark's rv. */
	assert_string_equal(s->paths[1], "/api/v1/pods?labelSelector=x%3Dy&watch=true&"
					 "allowWatchBookmarks=true&resourceVersion=7");
	/* Nothing after the 410: relist. */
	assert_int_equal(f->n_events, 3);
	assert_string_equal(f->events[0], "ADDED a 5");
	assert_string_equal(f->events[1], "BOOKMARK  7");
	assert_string_equal(f->events[2], "MODIFIED a 9");
	assert_int_equal(kclient_pending(f->client), 0);
	assert_int_equal(kclient_watch_resume(f->watch, "20"), 0);
	f->stop_after = 4;
	run_until(f, &f->n_events, 4);
	assert_string_equal(s->paths[2], "/api/v1/pods?labelSelector=x%3Dy&watch=true&"
					 "allowWatchBookmarks=true&resourceVersion=20");
	assert_string_equal(f->events[3], "DELETED a 21");
	assert_null(f->watch); /* stopped from the callback */
	assert_int_equal(s->n_req, 3);
}

/* A refused master, then a 403: the error is delivered as an ERROR event
 * and the watch goes on trying (here on the other master). */
static void test_watch_errors_and_failover(void **state)
{
	struct fixture *f = *state;
	const char *urls[] = {f->dead_url, f->srv[0].url, NULL};
	struct server *s = &f->srv[0];

	s->actions[0] = A_403;
	s->actions[1] = A_WATCH_HOLD;
	s->watch_lines[0] = EV("ADDED", "b", "11");
	new_client(f, urls, 0, 0);
	assert_int_equal(kclient_watch(f->client, "/api/v1/nodes", NULL, event_cb, relist_cb, f,
				       &f->watch),
			 0);
	run_until(f, &f->n_events, 2);
	assert_string_equal(f->events[0], "ERROR 403");
	assert_string_equal(f->events[1], "ADDED b 11");
	/* No resourceVersion given: none sent. */
	assert_string_equal(s->paths[0], "/api/v1/nodes?watch=true&allowWatchBookmarks=true");
	assert_string_equal(s->paths[1], "/api/v1/nodes?watch=true&allowWatchBookmarks=true");
	assert_string_equal(kclient_current_url(f->client), f->srv[0].url);
	assert_int_equal(f->n_relist, 0);
	kclient_watch_stop(f->watch);
	f->watch = NULL;
}

/* A watch left running is freed by kclient_close. */
static void test_watch_close(void **state)
{
	struct fixture *f = *state;
	const char *urls[] = {f->srv[0].url, NULL};

	f->srv[0].actions[0] = A_WATCH_HOLD;
	f->srv[0].watch_lines[0] = EV("ADDED", "c", "1");
	new_client(f, urls, 0, 0);
	assert_int_equal(kclient_watch(f->client, "/api/v1/pods", "0", event_cb, NULL, f,
				       &f->watch),
			 0);
	run_until(f, &f->n_events, 1);
	kclient_close(f->client, closed_cb, f);
	while (!f->closed)
		uv_run(&f->loop, UV_RUN_ONCE);
	f->client = NULL;
	assert_int_equal(f->n_events, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bodies_and_content_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failover_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failover_503, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_503_until_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_not_resent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_streams, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_cancels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_reconnect_and_relist, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_errors_and_failover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_close, setup, teardown),
	};

	return cmocka_run_group_tests_name("kclient", tests, NULL, NULL);
}
