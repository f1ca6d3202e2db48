/* The API server: listeners, TLS, connections, authentication, routing,
 * limits and graceful close.
 *
 * A request goes: h2o -> on_req() -> authenticate (client certificate
 * checked during the TLS handshake, or a bearer token) -> route ->
 * authorize (s->authorize, the built-in group policy for now) -> handler.
 * Handlers that wait for raft or for the leader allocate a struct http_op
 * (heap) linked to the request through a guard in the request's pool: when
 * the client leaves first, the guard's dispose callback unlinks it and the
 * late callback only frees the op.
 *
 * HTTP/2 rapid reset (CVE-2023-44487): h2o 2.2.5 caps open streams at 100
 * (its SETTINGS are fixed) but keeps working for requests whose streams
 * were reset. We bound that work: requests in flight per connection (reset
 * ones included) and in the whole server are capped (429 beyond), and a
 * connection that abandons operations faster than a token bucket allows is
 * shut down.
 *
 * Close: stop listening, end watch streams, ask h2o to shut down (GOAWAY,
 * HTTP/1.1 connections close after their request), shut idle connections
 * at once and busy ones after HTTP_CLOSE_GRACE_MS, cancel client requests;
 * once every connection handle is closed, dispose of the h2o context and,
 * one loop iteration later (its timers close without callback), call the
 * owner back.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <h2o.h>
#include <h2o/http1.h>
#include <h2o/http2.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "http/internal.h"
#include "http/kapi.h"
#include "http/metrics.h"
#include "http/serviceaccount.h"
#include "raft/store.h"
#include "src/lib/log.h"

struct root_handler {
	h2o_handler_t super;
	struct http_server *server;
};

struct http_op_guard {
	struct http_op *op;
};

static void maybe_finish_close(struct http_server *s);

void http__maybe_finish_close(struct http_server *s)
{
	maybe_finish_close(s);
}

/* ------------------------------------------------------------ addresses */

static int parse_hostport(const char *spec, struct sockaddr_storage *ret, bool *ret_loopback)
{
	char host[256];
	const char *colon, *h = spec, *port_s;
	size_t hlen;
	uint64_t port;

	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');
		if (end == NULL || end[1] != ':')
			return -EINVAL;
		h = spec + 1;
		hlen = (size_t)(end - h);
		port_s = end + 2;
	} else {
		colon = strrchr(spec, ':');
		if (colon == NULL)
			return -EINVAL;
		hlen = (size_t)(colon - spec);
		port_s = colon + 1;
	}
	if (hlen >= sizeof(host) || http_parse_u64(port_s, strlen(port_s), &port) != 0 ||
	    port > 65535)
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (strcmp(host, "localhost") == 0 || hlen == 0)
		strcpy(host, hlen == 0 ? "0.0.0.0" : "127.0.0.1");
	memset(ret, 0, sizeof(*ret));
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ret) == 0) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ret;
		*ret_loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
		return 0;
	}
	if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ret) == 0) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ret;
		*ret_loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
		return 0;
	}
	return -EINVAL;
}

/* A bound, listening socket (plain syscalls, so that a bind error leaves no
 * uv handle to close). */
static int listen_fd(const struct sockaddr_storage *ss, int *ret_fd)
{
	socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						   : sizeof(struct sockaddr_in);
	int fd, one = 1, rv;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, 511) != 0) {
		rv = -errno;
		close(fd);
		return rv;
	}
	*ret_fd = fd;
	return 0;
}

/* ------------------------------------------------------------ TLS */

static int verify_cb(int preverify_ok, X509_STORE_CTX *x)
{
	SSL *ssl;
	BIO *bio;
	h2o_socket_t *sock;
	struct http_conn *conn;
	struct http_user *u = NULL;

	if (!preverify_ok)
		return 0; /* a certificate was sent: it must verify */
	if (X509_STORE_CTX_get_error_depth(x) != 0)
		return 1;
	/* h2o's BIO carries the h2o socket, whose on_close data is our
	 * connection (set at accept). */
	ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	bio = ssl != NULL ? SSL_get_rbio(ssl) : NULL;
	sock = bio != NULL ? BIO_get_data(bio) : NULL;
	conn = sock != NULL ? sock->on_close.data : NULL;
	if (conn == NULL)
		return 0;
	if (http_user_from_cert(X509_STORE_CTX_get_current_cert(x), &u) != 0)
		return 0;
	http_user_free(conn->cert_user);
	conn->cert_user = u;
	return 1;
}

static int setup_tls(struct http_server *s)
{
	char crt[4096], key[4096], ca[4096];
	const char *failed = NULL;
	int rv;

	snprintf(crt, sizeof(crt), "%s/server.crt", s->pki_dir);
	snprintf(key, sizeof(key), "%s/server.key", s->pki_dir);
	snprintf(ca, sizeof(ca), "%s/ca.crt", s->pki_dir);
	/* Optional but checked: anonymous clients pass (and reach only the
	 * health endpoints); a certificate that does not verify fails. */
	rv = http_tls_server_ctx(crt, key, ca, SSL_OP_CIPHER_SERVER_PREFERENCE, SSL_VERIFY_PEER,
				 verify_cb, &s->ssl_ctx, &failed);
	if (rv == -EIO) {
		log_error("http: cannot load %s: %s", failed,
			  ERR_reason_error_string(ERR_peek_last_error()));
		ERR_clear_error();
	}
	return rv;
}

/* ------------------------------------------------------------ connections */

static void conn_unref(struct http_conn *conn)
{
	if (--conn->refs > 0)
		return;
	http_user_free(conn->cert_user);
	free(conn);
}

/* Ends a connection from below: h2o then sees EOF/errors and closes it
 * through its own paths. */
static void conn_shut(struct http_conn *conn)
{
	int fd;

	if (conn->shut || conn->sock == NULL)
		return;
	conn->shut = true;
	fd = h2o_socket_get_fd(conn->sock);
	if (fd >= 0)
		shutdown(fd, SHUT_RDWR);
}

static void conn_sock_closed_cb(void *data)
{
	struct http_conn *conn = data;

	conn->sock = NULL;
}

static void conn_handle_closed_cb(uv_handle_t *h)
{
	struct http_conn *conn = (struct http_conn *)h;
	struct http_server *s = conn->server;

	LIST_REMOVE(conn, link);
	s->n_handles--;
	conn_unref(conn);
	maybe_finish_close(s);
}

/* libuv reports a read that found the socket empty (EAGAIN) as nread 0;
 * it makes one after any read that filled the buffer it was given. The
 * TLS read callback of libh2o 2.2.5 takes every nread that is not
 * positive for an I/O error and closes the connection without a word, so
 * an HTTP/2 client whose TLS records happened to add up to 8,192 bytes
 * lost its connection and every request on it (five 1,634-byte pod POSTs
 * in one burst did it; 47-tls-reads). h2o's callback is a static
 * function: it is learnt from the uv_read_start() that h2o_accept() makes
 * on a TLS connection's stream, and from then on this program's
 * uv_read_start() hands libuv a filter in its place. */
typedef int (*uv_read_start_fn)(uv_stream_t *stream, uv_alloc_cb alloc_cb, uv_read_cb read_cb);

static uv_read_cb h2o_tls_read_cb;
static const uv_stream_t *tls_accepting; /* inside h2o_accept() of TLS */

static void tls_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	if (nread == 0)
		return; /* nothing read, nothing wrong */
	h2o_tls_read_cb(stream, nread, buf);
}

int uv_read_start(uv_stream_t *stream, uv_alloc_cb alloc_cb, uv_read_cb read_cb)
{
	static uv_read_start_fn fn;
	uv_read_start_fn f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);

	if (f == NULL) {
		void *p = dlsym(RTLD_NEXT, "uv_read_start");
		memcpy(&f, &p, sizeof(f)); /* POSIX: object to function pointer */
		__atomic_store_n(&fn, f, __ATOMIC_RELEASE);
	}
	if (f == NULL)
		return UV_ENOSYS;
	if (stream == tls_accepting && h2o_tls_read_cb == NULL && read_cb != tls_read_cb)
		h2o_tls_read_cb = read_cb;
	if (read_cb != NULL && read_cb == h2o_tls_read_cb)
		read_cb = tls_read_cb;
	return f(stream, alloc_cb, read_cb);
}

static void on_accept(uv_stream_t *listener, int status)
{
	struct http_server *s = listener->data;
	bool tls = listener == (uv_stream_t *)&s->listen_tls;
	struct http_conn *conn;
	h2o_socket_t *sock;

	if (status != 0 || s->closing)
		return;
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL)
		return;
	conn->server = s;
	conn->refs = 1;
	conn->orphan_tokens = HTTP_ORPHAN_BURST;
	conn->orphan_at = http__now(s);
	uv_tcp_init(s->loop, &conn->tcp);
	LIST_INSERT_HEAD(&s->conns, conn, link);
	s->n_handles++;
	if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
		uv_close((uv_handle_t *)&conn->tcp, conn_handle_closed_cb);
		return;
	}
	uv_tcp_nodelay(&conn->tcp, 1);
	sock = h2o_uv_socket_create((uv_stream_t *)&conn->tcp, conn_handle_closed_cb);
	sock->on_close.cb = conn_sock_closed_cb;
	sock->on_close.data = conn;
	conn->sock = sock;
	if (tls)
		tls_accepting = (uv_stream_t *)&conn->tcp;
	h2o_accept(tls ? &s->accept_tls : &s->accept_plain, sock);
	tls_accepting = NULL;
}

static struct http_conn *conn_of(h2o_req_t *req)
{
	h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL
				     ? req->conn->callbacks->get_socket(req->conn)
				     : NULL;
	return sock != NULL ? sock->on_close.data : NULL;
}

/* ------------------------------------------------------------ operations */

static void server_unref(struct http_server *s)
{
	if (--s->refs > 0)
		return;
	free(s->self_url);
	free(s->pki_dir);
	free(s->token_file);
	free(s);
}

static void orphaned(struct http_conn *conn)
{
	struct http_server *s = conn->server;
	uint64_t now = http__now(s);

	conn->orphan_tokens += (double)(now - conn->orphan_at) * HTTP_ORPHAN_RATE / 1000.0;
	if (conn->orphan_tokens > HTTP_ORPHAN_BURST)
		conn->orphan_tokens = HTTP_ORPHAN_BURST;
	conn->orphan_at = now;
	conn->orphan_tokens -= 1.0;
	if (conn->orphan_tokens < 0 && !conn->shut) {
		log_warn("http: closing a connection that abandons too many requests "
			 "(HTTP/2 rapid reset?)");
		conn_shut(conn);
	}
}

static void guard_dispose(void *p)
{
	struct http_op_guard *g = p;
	struct http_op *op = g->op;

	if (op == NULL)
		return;
	op->req = NULL;
	op->guard = NULL;
	if (op->conn != NULL)
		orphaned(op->conn);
}

void *http__op_new(struct http_request *hr, size_t size)
{
	struct http_server *s = hr->server;
	struct http_conn *conn = hr->conn;
	h2o_req_t *req = hr->req;
	unsigned conn_max = (unsigned)s->globalconf.http2.max_concurrent_requests_per_connection * 2;
	struct http_op_guard *g;
	struct http_op *op;

	if (s->n_pending >= HTTP_MAX_PENDING || (conn != NULL && conn->pending >= conn_max)) {
		http_send_status(req, 429, NULL, "too many requests in flight");
		return NULL;
	}
	op = calloc(1, size);
	if (op == NULL) {
		http_send_status(req, 500, NULL, "out of memory");
		return NULL;
	}
	g = h2o_mem_alloc_shared(&req->pool, sizeof(*g), guard_dispose);
	g->op = op;
	op->guard = g;
	op->req = req;
	op->hr = hr;
	op->server = s;
	op->conn = conn;
	if (conn != NULL) {
		conn->refs++;
		conn->pending++;
	}
	s->refs++;
	s->n_pending++;
	return op;
}

h2o_req_t *http__op_detach(struct http_op *op)
{
	h2o_req_t *req = op->req;

	if (op->guard != NULL) {
		op->guard->op = NULL;
		op->guard = NULL;
	}
	op->req = NULL;
	return req;
}

void http__op_free(struct http_op *op)
{
	struct http_server *s = op->server;

	http__op_detach(op);
	if (op->conn != NULL) {
		op->conn->pending--;
		conn_unref(op->conn);
	}
	s->n_pending--;
	free(op);
	server_unref(s);
}

bool http__server_running(const struct http_server *s)
{
	return !s->closing;
}

bool http__method_is_write(const h2o_req_t *req)
{
	return http__method_is(req, "PUT") || http__method_is(req, "POST") ||
	       http__method_is(req, "DELETE") || http__method_is(req, "PATCH");
}

bool http__query(struct http_request *hr, const char *name, h2o_iovec_t *ret_value)
{
	const char *v;
	size_t len, out;
	char *buf;

	if (!http_query_find(hr->query.base, hr->query.len, name, &v, &len))
		return false;
	buf = h2o_mem_alloc_pool(&hr->req->pool, len + 1);
	if (http_percent_decode(v, len, true, buf, &out) != 0)
		out = 0; /* a malformed value reads as empty: callers reject it */
	buf[out] = '\0';
	*ret_value = h2o_iovec_init(buf, out);
	return true;
}

/* ------------------------------------------------------------ requests */

static void request_dispose(void *p)
{
	struct http_request *hr = p;
	struct http_conn *conn = hr->conn;

	if (conn == NULL)
		return;
	conn->active--;
	if (conn->server->closing && conn->active == 0)
		conn_shut(conn);
	conn_unref(conn);
}

static void user_dispose(void *p)
{
	http_user_free(*(struct http_user **)p);
}

/* The user of a bootstrap token, from the local store (tokens are created
 * ahead of their use), owned by the request's pool; NULL if not valid. */
static const struct http_user *bootstrap_user(struct http_server *s, h2o_req_t *req,
					      const char *token, size_t len)
{
	char id[HTTP_BOOTSTRAP_ID_LEN + 1];
	char key[sizeof(HTTP_BOOTSTRAP_KEY_PREFIX) + HTTP_BOOTSTRAP_ID_LEN];
	struct http_user *u, **ref;
	struct store_kv kv;

	if (s->replica == NULL || !http_bootstrap_token_parse(token, len, id))
		return NULL;
	snprintf(key, sizeof(key), "%s%s", HTTP_BOOTSTRAP_KEY_PREFIX, id);
	if (store_get(replica_store(s->replica), key, strlen(key), &kv) != 0 ||
	    http_bootstrap_token_check(kv.val, kv.val_len, token, len, (int64_t)time(NULL), &u) !=
		    0)
		return NULL;
	ref = h2o_mem_alloc_shared(&req->pool, sizeof(*ref), user_dispose);
	*ref = u;
	return u;
}

/* The user, NULL for anonymous; *ret_bad set when credentials were given
 * but are not valid. */
static const struct http_user *authenticate(struct http_server *s, struct http_conn *conn,
					    h2o_req_t *req, bool *ret_bad)
{
	ssize_t i;
	h2o_iovec_t v;

	*ret_bad = false;
	if (conn != NULL && conn->cert_user != NULL)
		return conn->cert_user;
	i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
	if (i < 0)
		return NULL;
	v = req->headers.entries[i].value;
	if (v.len > 7 && h2o_lcstris(v.base, 7, H2O_STRLIT("bearer "))) {
		const struct http_user *u;
		size_t off = 7;
		while (off < v.len && v.base[off] == ' ')
			off++;
		u = http_tokens_lookup(s->tokens, v.base + off, v.len - off);
		if (u == NULL)
			u = bootstrap_user(s, req, v.base + off, v.len - off);
		if (u == NULL)
			u = http__sa_user(s, req, v.base + off, v.len - off);
		if (u != NULL)
			return u;
	}
	*ret_bad = true;
	return NULL;
}

static const char *verb_of(struct http_request *hr)
{
	h2o_req_t *req = hr->req;
	h2o_iovec_t v;

	if (http__method_is(req, "GET") || http__method_is(req, "HEAD")) {
		if (http__query(hr, "watch", &v) && v.len > 0 && strcmp(v.base, "false") != 0 &&
		    strcmp(v.base, "0") != 0)
			return "watch";
		if (http__query(hr, "list", &v) && v.len > 0 && strcmp(v.base, "false") != 0 &&
		    strcmp(v.base, "0") != 0)
			return "list";
		return "get";
	}
	if (http__method_is(req, "POST"))
		return "create";
	if (http__method_is(req, "PUT"))
		return "update";
	if (http__method_is(req, "PATCH"))
		return "patch";
	if (http__method_is(req, "DELETE"))
		return "delete";
	return "unknown";
}

static bool path_is(const struct http_request *hr, const char *p)
{
	return h2o_memis(hr->path.base, hr->path.len, p, strlen(p));
}

static bool path_has_prefix(const struct http_request *hr, const char *p, size_t *ret_rest)
{
	size_t n = strlen(p);

	if (hr->path.len < n || memcmp(hr->path.base, p, n) != 0)
		return false;
	*ret_rest = n;
	return true;
}

static const char *const groups_masters[] = {HTTP_GROUP_MASTERS, NULL};
static const char *const groups_join[] = {HTTP_GROUP_JOIN, HTTP_GROUP_MASTERS, NULL};
static const char *const groups_nodes[] = {HTTP_GROUP_BOOTSTRAPPERS, "system:nodes",
					   HTTP_GROUP_MASTERS, NULL};

enum route {
	ROUTE_NONE,
	ROUTE_HEALTHZ,
	ROUTE_LIVEZ,
	ROUTE_READYZ,
	ROUTE_VERSION,
	ROUTE_CLUSTER,
	ROUTE_READINDEX,
	ROUTE_CA,
	ROUTE_MEMBERS,
	ROUTE_STORE,
	ROUTE_SNAPSHOT, /* GET /capstan/v1/snapshot (snapshot_api.c) */
	ROUTE_KAPI, /* the Kubernetes API: /api, /apis, /openapi (kapi.c) */
	ROUTE_METRICS, /* GET /metrics (metrics.c) */
	ROUTE_NODES, /* /capstan/v1/nodes/ (node_api.c) */
};

static enum route route_of(struct http_request *hr, size_t *ret_rest)
{
	size_t rest = 0;

	*ret_rest = 0;
	if (path_is(hr, "/healthz"))
		return ROUTE_HEALTHZ;
	if (path_is(hr, "/livez"))
		return ROUTE_LIVEZ;
	if (path_is(hr, "/readyz"))
		return ROUTE_READYZ;
	if (path_is(hr, "/version") || path_is(hr, "/version/"))
		return ROUTE_VERSION;
	if (path_is(hr, "/capstan/v1/cluster"))
		return ROUTE_CLUSTER;
	if (path_is(hr, "/capstan/v1/cluster/readindex"))
		return ROUTE_READINDEX;
	if (path_is(hr, "/capstan/v1/cluster/ca"))
		return ROUTE_CA;
	if (path_is(hr, "/capstan/v1/snapshot"))
		return ROUTE_SNAPSHOT;
	if (path_is(hr, "/metrics"))
		return ROUTE_METRICS;
	if (path_has_prefix(hr, "/capstan/v1/cluster/members", &rest) &&
	    (hr->path.len == rest || hr->path.base[rest] == '/')) {
		*ret_rest = rest;
		return ROUTE_MEMBERS;
	}
	if (path_has_prefix(hr, "/capstan/v1/nodes/", &rest)) {
		*ret_rest = rest - 1;
		return ROUTE_NODES;
	}
	if (path_has_prefix(hr, "/capstan/v1/store", &rest) &&
	    (hr->path.len == rest || hr->path.base[rest] == '/')) {
		*ret_rest = rest;
		return ROUTE_STORE;
	}
	if (path_is(hr, "/api") || path_is(hr, "/apis") || path_has_prefix(hr, "/api/", &rest) ||
	    path_has_prefix(hr, "/apis/", &rest) || path_has_prefix(hr, "/openapi/", &rest))
		return ROUTE_KAPI;
	return ROUTE_NONE;
}

static bool allow_methods(struct http_request *hr, const char *m1, const char *m2)
{
	if (http__method_is(hr->req, m1) || (m2 != NULL && http__method_is(hr->req, m2)))
		return true;
	http_send_status(hr->req, 405, NULL, "method %.*s is not allowed on %.*s",
			 (int)hr->req->method.len, hr->req->method.base, (int)hr->path.len,
			 hr->path.base);
	return false;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
	struct http_server *s = ((struct root_handler *)self)->server;
	struct http_authz_attrs attrs;
	struct http_request *hr;
	const char *const *groups = NULL;
	enum route route;
	size_t rest;
	bool bad;
	char *path;

	hr = h2o_mem_alloc_shared(&req->pool, sizeof(*hr), request_dispose);
	memset(hr, 0, sizeof(*hr));
	hr->server = s;
	hr->req = req;
	hr->conn = conn_of(req);
	if (hr->conn != NULL) {
		hr->conn->refs++;
		hr->conn->active++;
	}
	if (req->query_at != SIZE_MAX) {
		hr->path = h2o_iovec_init(req->path.base, req->query_at);
		hr->query = h2o_iovec_init(req->path.base + req->query_at + 1,
					   req->path.len - req->query_at - 1);
	} else {
		hr->path = req->path;
		hr->query = h2o_iovec_init("", 0);
	}
	http__metrics_begin(hr);
	hr->deadline = http__now(s) + HTTP_LEADER_WAIT_MS;
	hr->forwarded =
		h2o_find_header_by_str(&req->headers, H2O_STRLIT(HTTP_FORWARDED_HEADER), -1) >= 0;
	if (s->closing) {
		if (hr->forwarded)
			http__send_not_handled(req, "the server is shutting down");
		else
			http_send_status(req, 503, NULL, "the server is shutting down");
		return 0;
	}

	hr->user = authenticate(s, hr->conn, req, &bad);
	if (bad) {
		http_send_status(req, 401, NULL, "invalid bearer token");
		return 0;
	}
	route = route_of(hr, &rest);
	switch (route) {
	case ROUTE_HEALTHZ:
	case ROUTE_LIVEZ:
	case ROUTE_READYZ:
	case ROUTE_VERSION:
		groups = NULL;
		break;
	case ROUTE_CA:
		groups = groups_join;
		break;
	case ROUTE_NODES:
		groups = groups_nodes;
		break;
	case ROUTE_KAPI:
		/* Any authenticated user for now (http__kapi() refuses
		 * anonymous ones); RBAC comes through s->authorize. */
		groups = NULL;
		break;
	default:
		groups = groups_masters;
		break;
	}
	if (groups != NULL && hr->user == NULL) {
		http_send_status(req, 401, NULL, "authentication required");
		return 0;
	}
	if (route == ROUTE_NONE) {
		http_send_status(req, 404, NULL, "the server could not find the requested resource");
		return 0;
	}
	path = h2o_mem_alloc_pool(&req->pool, hr->path.len + 1);
	memcpy(path, hr->path.base, hr->path.len);
	path[hr->path.len] = '\0';
	attrs.user = hr->user;
	attrs.verb = verb_of(hr);
	attrs.path = path;
	attrs.groups = groups;
	if (s->authorize(&attrs, s->authorize_data) != 0) {
		http_send_status(req, 403, NULL, "user \"%s\" cannot %s %s",
				 hr->user != NULL ? hr->user->name : "system:anonymous", attrs.verb,
				 path);
		return 0;
	}
	if (req->entity.len > HTTP_BODY_MAX) {
		http_send_status(req, 413, NULL, "the request body is larger than %u bytes",
				 HTTP_BODY_MAX);
		return 0;
	}
	hr->route = (int)route;
	hr->route_rest = rest;
	http__dispatch(hr);
	return 0;
}

void http__dispatch(struct http_request *hr)
{
	enum route route = (enum route)hr->route;
	size_t rest = hr->route_rest;

	switch (route) {
	case ROUTE_HEALTHZ:
	case ROUTE_LIVEZ:
	case ROUTE_READYZ:
		if (allow_methods(hr, "GET", "HEAD"))
			http__health(hr, route == ROUTE_HEALTHZ  ? "healthz"
					 : route == ROUTE_LIVEZ ? "livez"
								: "readyz");
		break;
	case ROUTE_VERSION:
		if (allow_methods(hr, "GET", "HEAD"))
			http__version(hr);
		break;
	case ROUTE_CLUSTER:
		if (allow_methods(hr, "GET", NULL))
			http__cluster_status(hr);
		break;
	case ROUTE_READINDEX:
		if (allow_methods(hr, "GET", NULL))
			http__cluster_readindex(hr);
		break;
	case ROUTE_CA:
		if (allow_methods(hr, "GET", NULL))
			http__cluster_ca(hr);
		break;
	case ROUTE_MEMBERS:
		http__cluster_members(hr, hr->path.base + rest, hr->path.len - rest);
		break;
	case ROUTE_STORE:
		http__store(hr);
		break;
	case ROUTE_SNAPSHOT:
		if (allow_methods(hr, "GET", NULL))
			http__snapshot(hr);
		break;
	case ROUTE_KAPI:
		if (!http__sa_route(hr)) /* TokenRequest, SelfSubjectReview */
			http__kapi(hr);
		break;
	case ROUTE_METRICS:
		if (allow_methods(hr, "GET", NULL))
			http__metrics(hr);
		break;
	case ROUTE_NODES:
		http__nodes(hr, hr->path.base + rest, hr->path.len - rest);
		break;
	case ROUTE_NONE:
		break;
	}
}

/* ------------------------------------------------------------ lifecycle */

static void tick_cb(uv_timer_t *t)
{
	struct http_server *s = t->data;
	uint64_t now = http__now(s);
	struct http_conn *conn;

	http__watch_tick(s, now);
	http__kapi_tick(s, now);
	if (s->closing && now - s->close_started >= HTTP_CLOSE_GRACE_MS)
		LIST_FOREACH(conn, &s->conns, link)
			conn_shut(conn);
	maybe_finish_close(s);
}

static void listener_closed_cb(uv_handle_t *h)
{
	struct http_server *s = h->data;

	s->n_handles--;
	maybe_finish_close(s);
}

static void client_closed_cb(void *data)
{
	struct http_server *s = data;

	s->client = NULL;
	s->n_handles--;
	maybe_finish_close(s);
}

static void final_closed_cb(uv_handle_t *h)
{
	struct http_server *s = h->data;
	void (*cb)(void *) = s->close_cb;
	void *data = s->close_data;

	h2o_config_dispose(&s->globalconf);
	if (s->ssl_ctx != NULL)
		SSL_CTX_free(s->ssl_ctx);
	http_tokens_free(s->tokens);
	s->tokens = NULL;
	server_unref(s);
	if (cb != NULL)
		cb(data);
}

static void final_timer_cb(uv_timer_t *t)
{
	uv_close((uv_handle_t *)t, final_closed_cb);
}

/* h2o's context, once none of its timeouts has anything pending. */
static bool context_dispose(struct http_server *s)
{
	h2o_context_t *ctx = &s->ctx;

	if (h2o_timeout_is_linked(&ctx->http2._graceful_shutdown_timeout))
		h2o_timeout_unlink(&ctx->http2._graceful_shutdown_timeout);
	if (!http_h2o_context_idle(ctx))
		return false; /* try again on the next tick */
	http_h2o_context_dispose(ctx);
	return true;
}

static void tick_closed_cb(uv_handle_t *h)
{
	struct http_server *s = h->data;

	/* The h2o timers were closed in the same iteration; the final timer
	 * fires in the next one, after libuv finished closing them. */
	uv_timer_init(s->loop, &s->final_timer);
	s->final_timer.data = s;
	uv_timer_start(&s->final_timer, final_timer_cb, 0, 0);
}

static void maybe_finish_close(struct http_server *s)
{
	if (!s->closing || s->closed_cb_done || s->n_handles > 0 || !LIST_EMPTY(&s->conns))
		return;
	if (!context_dispose(s))
		return;
	s->closed_cb_done = true;
	uv_timer_stop(&s->tick);
	uv_close((uv_handle_t *)&s->tick, tick_closed_cb);
}

void http_server_close(struct http_server *s, void (*cb)(void *data), void *data)
{
	struct http_conn *conn;

	if (s == NULL) {
		if (cb != NULL)
			cb(data);
		return;
	}
	if (s->closing)
		return;
	s->closing = true;
	s->close_cb = cb;
	s->close_data = data;
	s->close_started = http__now(s);
	if (s->has_tls)
		uv_close((uv_handle_t *)&s->listen_tls, listener_closed_cb);
	if (s->has_plain)
		uv_close((uv_handle_t *)&s->listen_plain, listener_closed_cb);
	http__watch_close_all(s);
	http__kapi_close(s);
	http__sa_close(s);
	http__reader_close(s);
	http__leader_close(s);
	h2o_context_request_shutdown(&s->ctx);
	LIST_FOREACH(conn, &s->conns, link)
		if (conn->active == 0)
			conn_shut(conn);
	http_client_close(s->client, client_closed_cb, s);
	/* Tick faster while closing, to notice the grace period's end. */
	uv_timer_start(&s->tick, tick_cb, 50, 50);
	maybe_finish_close(s);
}

static int start_listener(struct http_server *s, uv_tcp_t *tcp, int fd)
{
	int rv;

	uv_tcp_init(s->loop, tcp);
	tcp->data = s;
	s->n_handles++;
	rv = uv_tcp_open(tcp, fd);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)tcp, 511, on_accept);
	return rv;
}

int http_server_new(uv_loop_t *loop, const struct http_server_config *config,
		    struct replica *replica, struct http_server **ret_server)
{
	struct http_client_config cc = {0};
	struct root_handler *handler;
	struct replica_status *st;
	struct sockaddr_storage tls_addr, plain_addr;
	h2o_hostconf_t *host;
	h2o_pathconf_t *pathconf;
	char ca[4096], crt[4096], key[4096];
	bool has_tls = config->listen != NULL && config->listen[0] != '\0';
	bool has_plain = config->plain_listen != NULL && config->plain_listen[0] != '\0';
	bool loopback;
	int tls_fd = -1, plain_fd = -1, rv;
	unsigned max_streams = config->max_streams > 0 ? config->max_streams : 256;
	struct http_server *s;

	if (config->pki_dir == NULL)
		return -EINVAL;
	if (has_tls && parse_hostport(config->listen, &tls_addr, &loopback) != 0) {
		log_error("http: bad listen address '%s'", config->listen);
		return -EINVAL;
	}
	if (has_plain) {
		if (parse_hostport(config->plain_listen, &plain_addr, &loopback) != 0) {
			log_error("http: bad plain listen address '%s'", config->plain_listen);
			return -EINVAL;
		}
		if (!loopback) {
			log_error("http: the plain listener must be on a loopback address, "
				  "not '%s'",
				  config->plain_listen);
			return -EINVAL;
		}
	}
	/* A peer that vanishes must not kill the daemon on write. */
	signal(SIGPIPE, SIG_IGN);

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->loop = loop;
	s->replica = replica;
	s->refs = 1;
	s->authorize = http_authorize_builtin;
	LIST_INIT(&s->conns);
	LIST_INIT(&s->watches);
	s->pki_dir = strdup(config->pki_dir);
	st = malloc(sizeof(*st));
	if (s->pki_dir == NULL || st == NULL) {
		free(st);
		rv = -ENOMEM;
		goto err_after_alloc;
	}
	replica_get_status(replica, st);
	s->self_url = strdup(st->api_url);
	free(st);
	if (s->self_url == NULL) {
		rv = -ENOMEM;
		goto err_after_alloc;
	}
	if (config->token_file != NULL && config->token_file[0] != '\0') {
		unsigned line = 0;
		s->token_file = strdup(config->token_file);
		if (s->token_file == NULL) {
			rv = -ENOMEM;
			goto err_after_alloc;
		}
		rv = http_tokens_load(config->token_file, &s->tokens, &line);
		if (rv != 0) {
			if (rv == -EINVAL)
				log_error("http: %s:%u: not a valid token line", config->token_file,
					  line);
			else
				log_error("http: cannot read %s: %s", config->token_file,
					  strerror(-rv));
			rv = rv == -ENOMEM ? rv : -EIO;
			goto err_after_alloc;
		}
	}
	if (has_tls && (rv = setup_tls(s)) != 0)
		goto err_after_tokens;
	if (has_tls && (rv = listen_fd(&tls_addr, &tls_fd)) != 0) {
		log_error("http: cannot listen on %s: %s", config->listen, strerror(-rv));
		goto err_after_tls;
	}
	if (has_plain && (rv = listen_fd(&plain_addr, &plain_fd)) != 0) {
		log_error("http: cannot listen on %s: %s", config->plain_listen, strerror(-rv));
		goto err_after_fds;
	}
	snprintf(ca, sizeof(ca), "%s/ca.crt", s->pki_dir);
	snprintf(crt, sizeof(crt), "%s/master.crt", s->pki_dir);
	snprintf(key, sizeof(key), "%s/master.key", s->pki_dir);
	cc.ca_file = ca;
	cc.cert_file = access(crt, R_OK) == 0 ? crt : NULL;
	cc.key_file = cc.cert_file != NULL ? key : NULL;
	rv = http_client_new(loop, &cc, &s->client);
	if (rv != 0)
		goto err_after_fds;
	s->n_handles++; /* the client, until its close callback */

	/* From here on nothing fails except uv_listen on an fd that already
	 * listens. */
	h2o_config_init(&s->globalconf);
	s->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("capstan"));
	s->globalconf.max_request_entity_size = HTTP_H2O_BODY_MAX;
	/* h2o 2.2.5 announces and enforces 100 concurrent streams itself. */
	s->globalconf.http2.max_concurrent_requests_per_connection =
		max_streams < 100 ? max_streams : 100;
	host = h2o_config_register_host(&s->globalconf, h2o_iovec_init(H2O_STRLIT("default")),
					65535);
	pathconf = h2o_config_register_path(host, "/", 0);
	handler = (struct root_handler *)h2o_create_handler(pathconf, sizeof(*handler));
	handler->super.on_req = on_req;
	handler->server = s;
	h2o_context_init(&s->ctx, loop, &s->globalconf);
	http__leader_init(s);
	if (http__kapi_start(s) != 0 || http__sa_start(s) != 0)
		log_warn("http: no memory to subscribe to leadership");
	s->accept_tls.ctx = &s->ctx;
	s->accept_tls.hosts = s->globalconf.hosts;
	s->accept_tls.ssl_ctx = s->ssl_ctx;
	s->accept_plain.ctx = &s->ctx;
	s->accept_plain.hosts = s->globalconf.hosts;
	uv_timer_init(loop, &s->tick);
	s->tick.data = s;
	uv_timer_start(&s->tick, tick_cb, 1000, 1000);
	if (has_tls) {
		s->has_tls = true;
		rv = start_listener(s, &s->listen_tls, tls_fd);
		tls_fd = -1;
		if (rv != 0)
			goto err_started;
	}
	if (has_plain) {
		s->has_plain = true;
		rv = start_listener(s, &s->listen_plain, plain_fd);
		plain_fd = -1;
		if (rv != 0)
			goto err_started;
	}
	*ret_server = s;
	return 0;

err_started:
	log_error("http: cannot listen: %s", uv_strerror(rv));
	if (plain_fd >= 0)
		close(plain_fd);
	http_server_close(s, NULL, NULL); /* frees it once the loop runs */
	return rv;
err_after_fds:
	if (tls_fd >= 0)
		close(tls_fd);
	if (plain_fd >= 0)
		close(plain_fd);
err_after_tls:
	if (s->ssl_ctx != NULL)
		SSL_CTX_free(s->ssl_ctx);
err_after_tokens:
	http_tokens_free(s->tokens);
err_after_alloc:
	free(s->token_file);
	free(s->self_url);
	free(s->pki_dir);
	free(s);
	return rv;
}
