/* The node agent's HTTPS endpoint (see logsrv.h): h2o on the agent's loop,
 * TLS with the node's certificate, clients verified against the cluster
 * CA and required to be in system:masters (the masters' own client
 * certificates, or the admin's).
 *
 *   GET /containerLogs/<ns>/<pod>/<container>?tailLines=N&sinceSeconds=S&
 *       timestamps=true&previous=true&limitBytes=N&follow=true
 *
 * The log files are read on the thread pool (rt_log_read); with follow the
 * response then streams new lines (rt_log_follow) until the client leaves.
 * A request whose client leaves while its read runs is detached through a
 * guard in its pool. Close: the listener, then every connection is shut;
 * once h2o has closed them and no read runs, the context is disposed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <h2o.h>
#include <h2o/http1.h>
#include <h2o/http2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "http/auth.h"
#include "http/util.h"
#include "runtime/runtime.h"
#include "src/lib/buf.h"
#include "src/node/logsrv.h"
#include "src/node/pods.h"

#define READ_MAX (16u * 1024 * 1024) /* bytes of a non-follow answer */
#define STREAM_PENDING_MAX (4u * 1024 * 1024)

struct lconn {
	uv_tcp_t tcp; /* first */
	struct node_logsrv *s;
	h2o_socket_t *sock;
	struct http_user *user;
	LIST_ENTRY(lconn) link;
};

struct node_logsrv {
	struct node_agent *a;
	uv_loop_t *loop;
	h2o_globalconf_t gc;
	h2o_context_t ctx;
	h2o_accept_ctx_t accept;
	SSL_CTX *ssl;
	uv_tcp_t listener;
	uv_timer_t tick;
	LIST_HEAD(, lconn) conns;
	unsigned n_handles; /* listener + work requests */
	bool closing, disposed;
	void (*close_cb)(void *);
	void *close_data;
};

struct root_handler {
	h2o_handler_t super;
	struct node_logsrv *s;
};

static void maybe_finish_close(struct node_logsrv *s);

/* ------------------------------------------------------------ TLS */

static int verify_cb(int preverify_ok, X509_STORE_CTX *x)
{
	SSL *ssl;
	BIO *bio;
	h2o_socket_t *sock;
	struct lconn *c;
	struct http_user *u = NULL;

	if (!preverify_ok)
		return 0;
	if (X509_STORE_CTX_get_error_depth(x) != 0)
		return 1;
	ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	bio = ssl != NULL ? SSL_get_rbio(ssl) : NULL;
	sock = bio != NULL ? BIO_get_data(bio) : NULL;
	c = sock != NULL ? sock->on_close.data : NULL;
	if (c == NULL || http_user_from_cert(X509_STORE_CTX_get_current_cert(x), &u) != 0)
		return 0;
	http_user_free(c->user);
	c->user = u;
	return 1;
}

static int setup_tls(struct node_logsrv *s)
{
	const struct node_agent *a = s->a;
	int rv;

	rv = http_tls_server_ctx(a->cert_file, a->key_file, a->ca_file, 0,
				 SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb, &s->ssl,
				 NULL);
	if (rv == -EIO) {
		log_error("logs endpoint: cannot load the node certificate: %s",
			  ERR_reason_error_string(ERR_peek_last_error()));
		ERR_clear_error();
	}
	return rv;
}

/* ------------------------------------------------------------ connections */

static void conn_closed_cb(uv_handle_t *h)
{
	struct lconn *c = (struct lconn *)h;
	struct node_logsrv *s = c->s;

	LIST_REMOVE(c, link);
	http_user_free(c->user);
	free(c);
	maybe_finish_close(s);
}

static void sock_closed_cb(void *data)
{
	struct lconn *c = data;

	c->sock = NULL;
}

static void shut(struct lconn *c)
{
	int fd;

	if (c->sock == NULL)
		return;
	fd = h2o_socket_get_fd(c->sock);
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

static void on_accept(uv_stream_t *listener, int status)
{
	struct node_logsrv *s = listener->data;
	struct lconn *c;

	if (status != 0 || s->closing)
		return;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->s = s;
	uv_tcp_init(s->loop, &c->tcp);
	LIST_INSERT_HEAD(&s->conns, c, link);
	if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
		uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
		return;
	}
	c->sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, conn_closed_cb);
	c->sock->on_close.cb = sock_closed_cb;
	c->sock->on_close.data = c;
	h2o_accept(&s->accept, c->sock);
}

static struct lconn *conn_of(h2o_req_t *req)
{
	h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL
				     ? req->conn->callbacks->get_socket(req->conn)
				     : NULL;
	return sock != NULL ? sock->on_close.data : NULL;
}

/* ------------------------------------------------------------ requests */

static void send_text(h2o_req_t *req, int status, const char *reason, const char *text)
{
	req->res.status = status;
	req->res.reason = reason;
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
		       H2O_STRLIT("text/plain; charset=utf-8"));
	h2o_send_inline(req, text, strlen(text));
}

/* A log read: the request it answers (NULL once the client left). */
struct logread {
	uv_work_t work;
	struct node_logsrv *s;
	h2o_req_t *req;
	struct logread **guard;
	char *path;
	struct rt_log_opts opts;
	bool follow;
	struct buf out;
	uint64_t offset;
	int err;
};

/* The streaming state of a follow request, in the request's pool. */
struct stream {
	h2o_generator_t gen; /* first */
	h2o_req_t *req;
	struct rt_log_follow *f;
	struct buf pending, inflight;
	bool sending, done;
};

static void guard_dispose(void *p)
{
	struct logread **g = p;

	if (*g != NULL)
		(*g)->req = NULL;
}

static int collect_cb(void *data, const char *line, size_t len)
{
	struct logread *r = data;

	return buf_append_max(&r->out, line, len, READ_MAX) == 0 ? 0 : 1;
}

static void read_work_cb(uv_work_t *w)
{
	struct logread *r = w->data;

	r->err = rt_log_read(r->path, &r->opts, collect_cb, r, &r->offset);
}

static void stream_flush(struct stream *st)
{
	h2o_iovec_t iov;

	if (st->sending || st->done || st->pending.len == 0)
		return;
	buf_free(&st->inflight);
	st->inflight = st->pending;
	buf_init(&st->pending);
	iov = h2o_iovec_init(st->inflight.data, st->inflight.len);
	st->sending = true;
	h2o_send(st->req, &iov, 1, H2O_SEND_STATE_IN_PROGRESS);
}

static void stream_proceed(h2o_generator_t *g, h2o_req_t *req)
{
	struct stream *st = (struct stream *)g;

	(void)req;
	st->sending = false;
	stream_flush(st);
}

static void stream_stop(h2o_generator_t *g, h2o_req_t *req)
{
	struct stream *st = (struct stream *)g;

	(void)req;
	st->done = true;
	if (st->f != NULL)
		rt_log_follow_stop(st->f);
	st->f = NULL;
	buf_free(&st->pending);
	buf_free(&st->inflight);
}

static int follow_cb(void *data, const char *line, size_t len)
{
	struct stream *st = data;

	if (st->done)
		return 1;
	/* A reader too slow for the writer loses lines rather than memory. */
	if (buf_append_max(&st->pending, line, len, STREAM_PENDING_MAX) != 0)
		return 0;
	stream_flush(st);
	return 0;
}

static void read_after_cb(uv_work_t *w, int status)
{
	struct logread *r = w->data;
	struct node_logsrv *s = r->s;
	h2o_req_t *req = r->req;

	if (r->guard != NULL && req != NULL)
		*r->guard = NULL;
	if (req != NULL) {
		if (status != 0 || (r->err != 0 && r->err != -ENOENT)) {
			send_text(req, 500, "Internal Server Error", "cannot read the log\n");
		} else if (!r->follow || s->closing) {
			req->res.status = 200;
			req->res.reason = "OK";
			h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
				       H2O_STRLIT("text/plain; charset=utf-8"));
			h2o_send_inline(req, r->out.data != NULL ? r->out.data : "", r->out.len);
		} else {
			struct stream *st = h2o_mem_alloc_shared(&req->pool, sizeof(*st), NULL);
			memset(st, 0, sizeof(*st));
			st->gen.proceed = stream_proceed;
			st->gen.stop = stream_stop;
			st->req = req;
			st->pending = r->out;
			buf_init(&r->out);
			req->res.status = 200;
			req->res.reason = "OK";
			h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
				       H2O_STRLIT("text/plain; charset=utf-8"));
			h2o_start_response(req, &st->gen);
			r->opts.tail = -1;
			r->opts.since = 0;
			if (rt_log_follow_start(s->loop, r->path, r->offset, &r->opts, follow_cb, st,
						&st->f) != 0)
				st->f = NULL;
			if (st->pending.len == 0) {
				/* Headers leave with the first send. */
				h2o_iovec_t iov = h2o_iovec_init("", 0);
				st->sending = true;
				h2o_send(req, &iov, 1, H2O_SEND_STATE_IN_PROGRESS);
			} else {
				stream_flush(st);
			}
		}
	}
	buf_free(&r->out);
	free(r->path);
	free(r);
	s->n_handles--;
	maybe_finish_close(s);
}

static bool query(h2o_req_t *req, const char *name, char *buf, size_t len)
{
	const char *v;
	size_t n, out;

	if (req->query_at == SIZE_MAX)
		return false;
	if (!http_query_find(req->path.base + req->query_at + 1,
			     req->path.len - req->query_at - 1, name, &v, &n) ||
	    n >= len)
		return false;
	if (http_percent_decode(v, n, true, buf, &out) != 0)
		return false;
	buf[out] = '\0';
	return true;
}

static bool query_true(h2o_req_t *req, const char *name)
{
	char v[16];

	return query(req, name, v, sizeof(v)) && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0);
}

/* ------------------------------------------------------------ exec */

#define EXEC_TIMEOUT_MS 60000
#define EXEC_MAX_ARGS 64

/* A command run for GET /exec/...: answered as JSON {"exitCode", "signal",
 * "timedOut", "stdout", "stderr" (base64), "error"}. */
struct exec_req {
	struct node_logsrv *s;
	h2o_req_t *req;
	struct exec_req **guard;
};

static void exec_guard_dispose(void *p)
{
	struct exec_req **g = p;

	if (*g != NULL)
		(*g)->req = NULL;
}

static void exec_done_cb(void *data, int err, const struct rt_result *res)
{
	struct exec_req *e = data;
	struct node_logsrv *s = e->s;
	h2o_req_t *req = e->req;

	if (req != NULL) {
		json_t *o;
		char *text = NULL;
		*e->guard = NULL;
		if (err != 0) {
			o = json_pack("{s:i, s:s}", "exitCode", -1, "error", strerror(-err));
		} else {
			char *out = http_base64_encode(res->out != NULL ? res->out : "", res->out_len);
			char *errb = http_base64_encode(res->err != NULL ? res->err : "", res->err_len);
			o = json_pack("{s:I, s:i, s:b, s:s, s:s}", "exitCode",
				      (json_int_t)res->exit_status, "signal", res->term_signal,
				      "timedOut", res->timed_out, "stdout", out != NULL ? out : "",
				      "stderr", errb != NULL ? errb : "");
			free(out);
			free(errb);
		}
		text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (text == NULL) {
			send_text(req, 500, "Internal Server Error", "out of memory\n");
		} else {
			req->res.status = 200;
			req->res.reason = "OK";
			h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
				       H2O_STRLIT("application/json"));
			h2o_send_inline(req, text, strlen(text));
			free(text);
		}
	}
	free(e);
	s->n_handles--;
	maybe_finish_close(s);
}

static void exec_route(struct node_logsrv *s, h2o_req_t *req, char **parts)
{
	const char *args[EXEC_MAX_ARGS + 1];
	char *q, *save = NULL, *item;
	size_t n = 0;
	struct exec_req *e;
	int rv;

	if (req->query_at == SIZE_MAX) {
		send_text(req, 400, "Bad Request", "no command\n");
		return;
	}
	/* Every command=... in order (repeated parameter). */
	q = h2o_mem_alloc_pool(&req->pool, req->path.len - req->query_at);
	memcpy(q, req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
	q[req->path.len - req->query_at - 1] = '\0';
	for (item = strtok_r(q, "&", &save); item != NULL; item = strtok_r(NULL, "&", &save)) {
		size_t len = strlen(item), out;
		char *v;
		if (len < 8 || strncmp(item, "command=", 8) != 0)
			continue;
		if (n == EXEC_MAX_ARGS) {
			send_text(req, 400, "Bad Request", "too many arguments\n");
			return;
		}
		v = h2o_mem_alloc_pool(&req->pool, len);
		if (http_percent_decode(item + 8, len - 8, true, v, &out) != 0) {
			send_text(req, 400, "Bad Request", "bad command\n");
			return;
		}
		v[out] = '\0';
		args[n++] = v;
	}
	args[n] = NULL;
	if (n == 0) {
		send_text(req, 400, "Bad Request", "no command\n");
		return;
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL) {
		send_text(req, 503, "Service Unavailable", "out of memory\n");
		return;
	}
	e->s = s;
	e->req = req;
	rv = s->a->pods == NULL ? -ENOENT
				: node_pods_exec(s->a->pods, parts[0], parts[1], parts[2], args,
						 EXEC_TIMEOUT_MS, exec_done_cb, e);
	if (rv != 0) {
		free(e);
		send_text(req, rv == -ENOENT ? 404 : 400, rv == -ENOENT ? "Not Found" : "Bad Request",
			  rv == -ENOENT ? "no such running container on this node\n"
					: "cannot run the command\n");
		return;
	}
	e->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*e->guard), exec_guard_dispose);
	*e->guard = e;
	s->n_handles++;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
	struct node_logsrv *s = ((struct root_handler *)self)->s;
	struct lconn *c = conn_of(req);
	size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
	char path[1024], *parts[4] = {0}, *save = NULL, v[32];
	struct logread *r;
	int n = 0, rv;

	if (c == NULL || c->user == NULL || !http_user_in_group(c->user, HTTP_GROUP_MASTERS)) {
		send_text(req, 403, "Forbidden", "forbidden: masters only\n");
		return 0;
	}
	if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
		send_text(req, 405, "Method Not Allowed", "GET only\n");
		return 0;
	}
	if (plen < sizeof(path) && plen > 6 && memcmp(req->path.base, "/exec/", 6) == 0) {
		memcpy(path, req->path.base + 6, plen - 6);
		path[plen - 6] = '\0';
		for (char *t = strtok_r(path, "/", &save); t != NULL && n < 4;
		     t = strtok_r(NULL, "/", &save))
			parts[n++] = t;
		if (n != 3)
			send_text(req, 404, "Not Found", "want /exec/NAMESPACE/POD/CONTAINER\n");
		else
			exec_route(s, req, parts);
		return 0;
	}
	if (plen >= sizeof(path) || plen < 15 || memcmp(req->path.base, "/containerLogs/", 15) != 0) {
		send_text(req, 404, "Not Found", "not found\n");
		return 0;
	}
	memcpy(path, req->path.base + 15, plen - 15);
	path[plen - 15] = '\0';
	for (char *t = strtok_r(path, "/", &save); t != NULL && n < 4; t = strtok_r(NULL, "/", &save))
		parts[n++] = t;
	if (n != 3) {
		send_text(req, 404, "Not Found", "want /containerLogs/NAMESPACE/POD/CONTAINER\n");
		return 0;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		send_text(req, 503, "Service Unavailable", "out of memory\n");
		return 0;
	}
	rv = s->a->pods == NULL ? -ENOENT
				: node_pods_log_path(s->a->pods, parts[0], parts[1], parts[2],
						     query_true(req, "previous"), &r->path);
	if (rv != 0) {
		free(r);
		send_text(req, 404, "Not Found",
			  rv == -EINVAL ? "a container name is needed\n"
					: "no such pod or container on this node\n");
		return 0;
	}
	r->work.data = r;
	r->s = s;
	r->req = req;
	r->follow = query_true(req, "follow");
	r->opts.tail = -1;
	if (query(req, "tailLines", v, sizeof(v)))
		r->opts.tail = strtoll(v, NULL, 10);
	if (query(req, "sinceSeconds", v, sizeof(v))) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		r->opts.since = ((int64_t)ts.tv_sec - strtoll(v, NULL, 10)) * 1000000000;
	}
	if (query(req, "limitBytes", v, sizeof(v)))
		r->opts.limit_bytes = strtoll(v, NULL, 10);
	r->opts.timestamps = query_true(req, "timestamps");
	r->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*r->guard), guard_dispose);
	*r->guard = r;
	rv = uv_queue_work(s->loop, &r->work, read_work_cb, read_after_cb);
	if (rv != 0) {
		*r->guard = NULL;
		free(r->path);
		free(r);
		send_text(req, 503, "Service Unavailable", "busy\n");
		return 0;
	}
	s->n_handles++;
	return 0;
}

/* ------------------------------------------------------------ lifecycle */

static int listen_on(const char *addr, int *ret_fd)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	struct sockaddr_storage ss;
	int fd, one = 1, rv;
	unsigned port;

	if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
		return -EINVAL;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	port = (unsigned)atoi(colon + 1);
	if (host[0] == '\0')
		snprintf(host, sizeof(host), "0.0.0.0");
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss) != 0 &&
	    uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)&ss) != 0)
		return -EINVAL;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss,
		 ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
					  : sizeof(struct sockaddr_in)) != 0 ||
	    listen(fd, 128) != 0) {
		rv = -errno;
		close(fd);
		return rv;
	}
	*ret_fd = fd;
	return 0;
}

int node_logsrv_start(struct node_agent *a, const char *listen, struct node_logsrv **ret)
{
	struct node_logsrv *s;
	struct root_handler *h;
	h2o_hostconf_t *host;
	h2o_pathconf_t *pathconf;
	int fd = -1, rv;

	if (listen == NULL || listen[0] == '\0') {
		*ret = NULL;
		return 0;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->a = a;
	s->loop = a->loop;
	LIST_INIT(&s->conns);
	rv = setup_tls(s);
	if (rv != 0)
		goto err;
	rv = listen_on(listen, &fd);
	if (rv != 0)
		goto err_tls;
	h2o_config_init(&s->gc);
	s->gc.server_name = h2o_iovec_init(H2O_STRLIT("capstan-node"));
	host = h2o_config_register_host(&s->gc, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	pathconf = h2o_config_register_path(host, "/", 0);
	h = (struct root_handler *)h2o_create_handler(pathconf, sizeof(*h));
	h->super.on_req = on_req;
	h->s = s;
	h2o_context_init(&s->ctx, s->loop, &s->gc);
	s->accept.ctx = &s->ctx;
	s->accept.hosts = s->gc.hosts;
	s->accept.ssl_ctx = s->ssl;
	uv_tcp_init(s->loop, &s->listener);
	s->listener.data = s;
	s->n_handles++;
	rv = uv_tcp_open(&s->listener, fd);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&s->listener, 128, on_accept);
	if (rv != 0) {
		/* The handles exist now: close through the normal path. */
		log_error("logs endpoint: cannot listen: %s", uv_strerror(rv));
		node_logsrv_close(s, NULL, NULL);
		return rv;
	}
	*ret = s;
	return 0;
err_tls:
	SSL_CTX_free(s->ssl);
err:
	free(s);
	return rv;
}

static void final_closed_cb(uv_handle_t *h)
{
	struct node_logsrv *s = h->data;
	void (*cb)(void *) = s->close_cb;
	void *data = s->close_data;

	h2o_config_dispose(&s->gc);
	SSL_CTX_free(s->ssl);
	free(s);
	if (cb != NULL)
		cb(data);
}

static void final_timer_cb(uv_timer_t *t)
{
	uv_close((uv_handle_t *)t, final_closed_cb);
}

static void tick_closed_cb(uv_handle_t *h)
{
	struct node_logsrv *s = h->data;

	/* h2o's timers closed in this iteration: free in the next one. */
	uv_timer_init(s->loop, &s->tick);
	s->tick.data = s;
	uv_timer_start(&s->tick, final_timer_cb, 0, 0);
}

static void maybe_finish_close(struct node_logsrv *s)
{
	if (!s->closing || s->disposed || s->n_handles > 0 || !LIST_EMPTY(&s->conns) ||
	    !http_h2o_context_idle(&s->ctx))
		return;
	s->disposed = true;
	http_h2o_context_dispose(&s->ctx);
	uv_timer_stop(&s->tick);
	uv_close((uv_handle_t *)&s->tick, tick_closed_cb);
}

static void tick_cb(uv_timer_t *t)
{
	struct node_logsrv *s = t->data;
	struct lconn *c;

	LIST_FOREACH(c, &s->conns, link)
		shut(c);
	maybe_finish_close(s);
}

static void listener_closed_cb(uv_handle_t *h)
{
	struct node_logsrv *s = h->data;

	s->n_handles--;
	maybe_finish_close(s);
}

void node_logsrv_close(struct node_logsrv *s, void (*cb)(void *data), void *data)
{
	struct lconn *c;

	if (s == NULL) {
		if (cb != NULL)
			cb(data);
		return;
	}
	s->closing = true;
	s->close_cb = cb;
	s->close_data = data;
	uv_close((uv_handle_t *)&s->listener, listener_closed_cb);
	h2o_context_request_shutdown(&s->ctx);
	LIST_FOREACH(c, &s->conns, link)
		shut(c);
	uv_timer_init(s->loop, &s->tick);
	s->tick.data = s;
	uv_timer_start(&s->tick, tick_cb, 50, 50);
}
