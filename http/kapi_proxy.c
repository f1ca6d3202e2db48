/* GET /api/v1/namespaces/<ns>/pods/<name>/log: `kubectl logs`, proxied to
 * the node agent that runs the pod.
 *
 * The pod and its Node are read from this master's store (a log request
 * needs no linearizable read); the agent's endpoint is the Node's
 * InternalIP and status.daemonEndpoints.kubeletEndpoint.Port, reached over
 * HTTPS with this master's client certificate (system:masters), verified
 * by the cluster CA. The answer comes back whole, except with follow=true:
 * then a thread of its own runs the (long) transfer with libcurl and hands
 * the bytes to the loop through a uv_async, where they are streamed to the
 * client; the client leaving (h2o's stop) cancels the transfer.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <h2o.h>
#include <h2o/http1.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "http/internal.h"
#include "src/lib/buf.h"
#include "http/kapi.h"
#include "raft/store.h"

#define LOG_PROXY_TIMEOUT_MS 30000

struct log_op {
	struct http_op op; /* first */
	char url[1024];
};

static void log_cb(void *data, int err, const struct http_client_response *res)
{
	struct log_op *l = data;
	h2o_req_t *req = http__op_detach(&l->op);

	if (req != NULL) {
		if (err != 0) {
			http_send_status(req, 503, "ServiceUnavailable",
					 "cannot reach the node agent: %s", strerror(-err));
		} else if (res->status == 200) {
			http_send_raw(req, 200, "text/plain", res->body, res->body_len);
		} else if (res->status == 404) {
			http_send_status(req, 404, "NotFound", "the node has no such log: %.*s",
					 (int)(res->body_len > 200 ? 200 : res->body_len), res->body);
		} else {
			http_send_status(req, 502, NULL, "the node agent answered %ld: %.*s",
					 res->status, (int)(res->body_len > 200 ? 200 : res->body_len),
					 res->body);
		}
	}
	http__op_free(&l->op);
}

/* ------------------------------------------------------------ follow */

struct follow {
	h2o_generator_t gen; /* first */
	struct http_server *s;
	h2o_req_t *req; /* NULL once answered or gone */
	uv_async_t async;
	uv_thread_t thread;
	uv_mutex_t mu;
	struct buf incoming; /* thread -> loop, under mu */
	bool thread_done;    /* under mu */
	long status;         /* under mu */
	char error[CURL_ERROR_SIZE];
	struct buf pending, inflight; /* loop side */
	bool started, sending, finished, closing;
	atomic_bool cancel;
	char url[1024], ca[512], crt[512], key[512];
};

static size_t follow_write_cb(char *p, size_t size, size_t n, void *data)
{
	struct follow *f = data;
	size_t len = size * n;
	int rv;

	uv_mutex_lock(&f->mu);
	if (f->status == 0)
		f->status = -1; /* filled in by the thread after this */
	rv = f->incoming.len > 8u * 1024 * 1024 ? -EFBIG : buf_append(&f->incoming, p, len);
	uv_mutex_unlock(&f->mu);
	uv_async_send(&f->async);
	return rv == 0 ? len : 0;
}

static int follow_progress_cb(void *data, curl_off_t a, curl_off_t b, curl_off_t c,
			      curl_off_t d)
{
	struct follow *f = data;

	(void)a;
	(void)b;
	(void)c;
	(void)d;
	return atomic_load(&f->cancel) ? 1 : 0;
}

static void follow_thread(void *data)
{
	struct follow *f = data;
	CURL *h = curl_easy_init();
	long status = 0;

	f->error[0] = '\0';
	if (h != NULL) {
		curl_easy_setopt(h, CURLOPT_URL, f->url);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_CAINFO, f->ca);
		curl_easy_setopt(h, CURLOPT_SSLCERT, f->crt);
		curl_easy_setopt(h, CURLOPT_SSLKEY, f->key);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, follow_write_cb);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, follow_progress_cb);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, f);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, f->error);
		curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(h);
	}
	uv_mutex_lock(&f->mu);
	f->status = status;
	f->thread_done = true;
	uv_mutex_unlock(&f->mu);
	uv_async_send(&f->async);
}

static void follow_closed_cb(uv_handle_t *h)
{
	struct follow *f = h->data;
	struct http_server *s = f->s;

	uv_mutex_destroy(&f->mu);
	buf_free(&f->incoming);
	buf_free(&f->pending);
	buf_free(&f->inflight);
	free(f);
	s->n_handles--;
	http__maybe_finish_close(s);
}

static void follow_flush(struct follow *f, bool done)
{
	h2o_iovec_t iov;

	if (f->req == NULL || f->sending)
		return;
	if (f->pending.len == 0 && !done)
		return;
	buf_free(&f->inflight);
	f->inflight = f->pending;
	buf_init(&f->pending);
	iov = h2o_iovec_init(f->inflight.data != NULL ? f->inflight.data : "", f->inflight.len);
	f->sending = true;
	if (done) {
		h2o_send(f->req, &iov, 1, H2O_SEND_STATE_FINAL);
		f->req = NULL;
	} else {
		h2o_send(f->req, &iov, 1, H2O_SEND_STATE_IN_PROGRESS);
	}
}

static void follow_maybe_close(struct follow *f, bool thread_done)
{
	if (f->closing || !thread_done || f->req != NULL)
		return;
	f->closing = true;
	uv_thread_join(&f->thread);
	uv_close((uv_handle_t *)&f->async, follow_closed_cb);
}

static void follow_async_cb(uv_async_t *a)
{
	struct follow *f = a->data;
	struct buf in;
	bool done;
	long status;

	uv_mutex_lock(&f->mu);
	in = f->incoming;
	buf_init(&f->incoming);
	done = f->thread_done;
	status = f->status;
	uv_mutex_unlock(&f->mu);
	if (f->req != NULL && !f->started && (status != 0 || done)) {
		if (done && (status < 200 || status >= 300)) {
			/* Nothing streamed: answer with a Status. */
			if (status == 0)
				http_send_status(f->req, 503, "ServiceUnavailable",
						 "cannot reach the node agent: %s", f->error);
			else
				http_send_status(f->req, status == 404 ? 404 : 502, NULL,
						 "the node agent answered %ld: %.*s", status,
						 (int)(in.len > 200 ? 200 : in.len),
						 in.data != NULL ? in.data : "");
			f->req = NULL;
		} else {
			f->req->res.status = 200;
			f->req->res.reason = "OK";
			h2o_add_header(&f->req->pool, &f->req->res.headers, H2O_TOKEN_CONTENT_TYPE,
				       NULL, H2O_STRLIT("text/plain"));
			h2o_start_response(f->req, &f->gen);
			f->started = true;
		}
	}
	if (f->req != NULL && f->started) {
		if (in.len > 0)
			buf_append(&f->pending, in.data, in.len);
		if (!f->sending && f->pending.len == 0 && !done && in.len == 0 && status != 0) {
			/* Headers leave with the first send. */
			h2o_iovec_t iov = h2o_iovec_init("", 0);
			f->sending = true;
			h2o_send(f->req, &iov, 1, H2O_SEND_STATE_IN_PROGRESS);
		}
		follow_flush(f, done);
	}
	buf_free(&in);
	follow_maybe_close(f, done);
}

static void follow_proceed(h2o_generator_t *g, h2o_req_t *req)
{
	struct follow *f = (struct follow *)g;
	bool done;

	(void)req;
	f->sending = false;
	uv_mutex_lock(&f->mu);
	done = f->thread_done && f->incoming.len == 0;
	uv_mutex_unlock(&f->mu);
	follow_flush(f, done);
	follow_maybe_close(f, done);
}

static void follow_stop(h2o_generator_t *g, h2o_req_t *req)
{
	struct follow *f = (struct follow *)g;

	(void)req;
	f->req = NULL;
	atomic_store(&f->cancel, true);
}

static int follow_start(struct http_request *hr, const char *url)
{
	struct http_server *s = hr->server;
	struct follow *f = calloc(1, sizeof(*f));
	int rv;

	if (f == NULL)
		return -ENOMEM;
	f->gen.proceed = follow_proceed;
	f->gen.stop = follow_stop;
	f->s = s;
	f->req = hr->req;
	atomic_init(&f->cancel, false);
	snprintf(f->url, sizeof(f->url), "%s", url);
	snprintf(f->ca, sizeof(f->ca), "%s/ca.crt", s->pki_dir);
	snprintf(f->crt, sizeof(f->crt), "%s/master.crt", s->pki_dir);
	snprintf(f->key, sizeof(f->key), "%s/master.key", s->pki_dir);
	if (uv_mutex_init(&f->mu) != 0) {
		free(f);
		return -ENOMEM;
	}
	rv = uv_async_init(s->loop, &f->async, follow_async_cb);
	if (rv != 0) {
		uv_mutex_destroy(&f->mu);
		free(f);
		return rv;
	}
	f->async.data = f;
	s->n_handles++;
	rv = uv_thread_create(&f->thread, follow_thread, f);
	if (rv != 0) {
		f->req = NULL;
		f->closing = true;
		uv_close((uv_handle_t *)&f->async, follow_closed_cb);
		return rv;
	}
	return 0;
}

/* ------------------------------------------------------------ log */

static json_t *load(struct http_server *s, const char *key)
{
	struct store_kv kv;

	if (store_get(replica_store(s->replica), key, strlen(key), &kv) != 0)
		return NULL;
	return kapi__tree(kv.val, kv.val_len, kv.mod_rev);
}

/* Appends &name=value of the query parameters the agent understands. */
static void pass_query(struct http_request *hr, char *url, size_t len)
{
	static const char *const names[] = {"tailLines", "sinceSeconds", "timestamps",
					    "previous",  "limitBytes",	 NULL};
	size_t i, off = strlen(url);
	char sep = '?';
	h2o_iovec_t v;

	for (i = 0; names[i] != NULL; i++) {
		size_t k;
		bool ok = true;
		if (!http__query(hr, names[i], &v) || v.len == 0 || v.len > 32)
			continue;
		for (k = 0; k < v.len; k++)
			if (!((v.base[k] >= '0' && v.base[k] <= '9') ||
			      (v.base[k] >= 'a' && v.base[k] <= 'z') || v.base[k] == '-'))
				ok = false;
		if (!ok)
			continue;
		off += (size_t)snprintf(url + off, len - off, "%c%s=%.*s", sep, names[i],
					(int)v.len, v.base);
		sep = '&';
		if (off >= len)
			return;
	}
}

/* The pod's node agent endpoint and its container: fills @base
 * ("https://IP:PORT") and @cname, or answers the request and returns
 * false. */
static bool resolve(struct http_request *hr, struct kapi_target *t, char *base, size_t base_len,
		    char *cname, size_t cname_len)
{
	struct http_server *s = hr->server;
	h2o_req_t *req = hr->req;
	json_t *pod, *node = NULL, *c, *a;
	const char *node_name, *ip = NULL;
	char key[512];
	json_int_t port;
	h2o_iovec_t v;
	size_t i;
	bool ok = false;

	pod = load(s, t->key);
	if (pod == NULL) {
		kapi__send_not_found(req, t->kind, t->name);
		return false;
	}
	if (http__query(hr, "container", &v) && v.len > 0) {
		for (i = 0; i < v.len; i++)
			if (!((v.base[i] >= 'a' && v.base[i] <= 'z') ||
			      (v.base[i] >= '0' && v.base[i] <= '9') || v.base[i] == '-'))
				break;
		if (i < v.len || v.len >= 64 || v.len >= cname_len) {
			http_send_status(req, 400, "BadRequest", "invalid container name");
			goto out;
		}
		memcpy(cname, v.base, v.len);
		cname[v.len] = '\0';
	} else {
		json_t *cs = json_object_get(json_object_get(pod, "spec"), "containers");
		const char *n0 = json_string_value(json_object_get(json_array_get(cs, 0), "name"));
		if (json_array_size(cs) != 1 || n0 == NULL) {
			http_send_status(req, 400, "BadRequest",
					 "a container name must be specified for pod %s", t->name);
			goto out;
		}
		snprintf(cname, cname_len, "%s", n0);
	}
	node_name = json_string_value(json_object_get(json_object_get(pod, "spec"), "nodeName"));
	if (node_name == NULL || node_name[0] == '\0') {
		http_send_status(req, 400, "BadRequest", "pod %s is not scheduled to a node yet",
				 t->name);
		goto out;
	}
	snprintf(key, sizeof(key), "/registry/nodes/%s", node_name);
	node = load(s, key);
	json_array_foreach (json_object_get(json_object_get(node, "status"), "addresses"), i, a) {
		const char *type = json_string_value(json_object_get(a, "type"));
		if (ip == NULL && type != NULL && strcmp(type, "InternalIP") == 0)
			ip = json_string_value(json_object_get(a, "address"));
	}
	c = json_object_get(json_object_get(json_object_get(node, "status"), "daemonEndpoints"),
			    "kubeletEndpoint");
	port = json_integer_value(json_object_get(c, "Port"));
	if (ip == NULL || port <= 0 || port > 65535) {
		http_send_status(req, 503, "ServiceUnavailable",
				 "node %s has no reachable agent endpoint", node_name);
		goto out;
	}
	snprintf(base, base_len, strchr(ip, ':') ? "https://[%s]:%d" : "https://%s:%d", ip,
		 (int)port);
	ok = true;
out:
	json_decref(node);
	json_decref(pod);
	return ok;
}

/* ------------------------------------------------------------ exec */

/* kubectl exec: a WebSocket (v5/v4.channel.k8s.io) whose messages start
 * with a channel byte (1 stdout, 2 stderr, 3 the final Status). The
 * command runs on the node without stdin or tty (the agent's /exec
 * answers once it has ended); its output and Status are then written as
 * frames and the socket closed. */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct exec_op {
	struct http_op op; /* first */
	char proto[32];
	char accept[64];
	char url[4096];
};

struct ws_out {
	struct buf frames;
	h2o_socket_t *sock;
	uv_timer_t timer; /* lingering close: waits for the client to close */
	bool closing;
};

static int ws_frame(struct buf *b, unsigned char opcode, int channel, const void *data,
		    size_t len)
{
	unsigned char hdr[11];
	size_t n = 0, total = len + (channel >= 0 ? 1 : 0);
	int rv;

	hdr[n++] = (unsigned char)(0x80 | opcode);
	if (total < 126) {
		hdr[n++] = (unsigned char)total;
	} else if (total < 65536) {
		hdr[n++] = 126;
		hdr[n++] = (unsigned char)(total >> 8);
		hdr[n++] = (unsigned char)total;
	} else {
		int i;
		hdr[n++] = 127;
		for (i = 7; i >= 0; i--)
			hdr[n++] = (unsigned char)((uint64_t)total >> (8 * i));
	}
	if (channel >= 0)
		hdr[n++] = (unsigned char)channel;
	rv = buf_append(b, hdr, n);
	if (rv == 0 && len > 0)
		rv = buf_append(b, data, len);
	return rv;
}

static void ws_timer_closed_cb(uv_handle_t *h)
{
	struct ws_out *w = h->data;

	buf_free(&w->frames);
	free(w);
}

static void ws_finish(struct ws_out *w)
{
	if (w->closing)
		return;
	w->closing = true;
	if (w->sock != NULL)
		h2o_socket_close(w->sock);
	w->sock = NULL;
	uv_close((uv_handle_t *)&w->timer, ws_timer_closed_cb);
}

/* Closing at once with the client's frames unread would make the kernel
 * reset the connection, and the client could lose the output it has not
 * read yet: read (and drop) until the client closes, 5 s at most. */
static void ws_drain_cb(h2o_socket_t *sock, const char *err)
{
	struct ws_out *w = sock->data;

	if (err != NULL) {
		ws_finish(w);
		return;
	}
	h2o_buffer_consume(&sock->input, sock->input->size);
}

static void ws_timeout_cb(uv_timer_t *t)
{
	ws_finish(t->data);
}

static void ws_written_cb(h2o_socket_t *sock, const char *err)
{
	struct ws_out *w = sock->data;

	if (err != NULL) {
		ws_finish(w);
		return;
	}
	h2o_socket_read_start(sock, ws_drain_cb);
	uv_timer_start(&w->timer, ws_timeout_cb, 5000, 0);
}

static void ws_upgraded_cb(void *data, h2o_socket_t *sock, size_t reqsize)
{
	struct ws_out *w = data;
	h2o_iovec_t iov;

	(void)reqsize;
	if (sock == NULL) {
		ws_finish(w);
		return;
	}
	w->sock = sock;
	sock->data = w;
	iov = h2o_iovec_init(w->frames.data, w->frames.len);
	h2o_socket_write(sock, &iov, 1, ws_written_cb);
}

static int b64_decode(const char *in, struct buf *out)
{
	size_t n = strlen(in), pad = 0;
	int len;

	if (buf_reserve(out, n / 4 * 3 + 3) != 0)
		return -ENOMEM;
	len = EVP_DecodeBlock((unsigned char *)out->data + out->len, (const unsigned char *)in,
			      (int)n);
	if (len < 0)
		return -EINVAL;
	while (n > 0 && in[n - 1] == '=') {
		pad++;
		n--;
	}
	out->len += (size_t)len - pad;
	return 0;
}

static void exec_cb(void *data, int err, const struct http_client_response *res)
{
	struct exec_op *e = data;
	h2o_req_t *req = http__op_detach(&e->op);
	json_t *o = NULL, *status;
	struct ws_out *w = NULL;
	struct buf out = BUF_INIT, errb = BUF_INIT;
	json_int_t code;
	char *st = NULL;

	if (req == NULL)
		goto done;
	if (err != 0) {
		http_send_status(req, 503, "ServiceUnavailable", "cannot reach the node agent: %s",
				 strerror(-err));
		goto done;
	}
	if (res->status != 200) {
		http_send_status(req, res->status == 404 ? 404 : 502, NULL,
				 "the node agent answered %ld: %.*s", res->status,
				 (int)(res->body_len > 200 ? 200 : res->body_len), res->body);
		goto done;
	}
	o = json_loadb(res->body, res->body_len, 0, NULL);
	w = calloc(1, sizeof(*w));
	if (o == NULL || w == NULL ||
	    b64_decode(json_string_value(json_object_get(o, "stdout")) != NULL
			       ? json_string_value(json_object_get(o, "stdout"))
			       : "",
		       &out) != 0 ||
	    b64_decode(json_string_value(json_object_get(o, "stderr")) != NULL
			       ? json_string_value(json_object_get(o, "stderr"))
			       : "",
		       &errb) != 0) {
		http_send_status(req, 502, NULL, "the node agent's answer is not understood");
		goto done;
	}
	code = json_integer_value(json_object_get(o, "exitCode"));
	if (json_object_get(o, "error") != NULL || code < 0)
		status = json_pack("{s:{}, s:s, s:s, s:s}", "metadata", "status", "Failure",
				   "message",
				   json_string_value(json_object_get(o, "error")) != NULL
					   ? json_string_value(json_object_get(o, "error"))
					   : "exec failed",
				   "reason", "InternalError");
	else if (code == 0)
		status = json_pack("{s:{}, s:s}", "metadata", "status", "Success");
	else {
		char msg[128], num[24];
		snprintf(msg, sizeof(msg), "command terminated with non-zero exit code: %lld",
			 (long long)code);
		snprintf(num, sizeof(num), "%lld", (long long)code);
		status = json_pack("{s:{}, s:s, s:s, s:s, s:{s:[{s:s, s:s}]}}", "metadata",
				   "status", "Failure", "message", msg, "reason", "NonZeroExitCode",
				   "details", "causes", "reason", "ExitCode", "message", num);
	}
	st = status != NULL ? json_dumps(status, JSON_COMPACT) : NULL;
	json_decref(status);
	if (st == NULL || (out.len > 0 && ws_frame(&w->frames, 0x2, 1, out.data, out.len) != 0) ||
	    (errb.len > 0 && ws_frame(&w->frames, 0x2, 2, errb.data, errb.len) != 0) ||
	    ws_frame(&w->frames, 0x2, 3, st, strlen(st)) != 0 ||
	    ws_frame(&w->frames, 0x8, -1, "\x03\xe8", 2) != 0) {
		http_send_status(req, 500, NULL, "out of memory");
		goto done;
	}
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_UPGRADE, NULL,
		       H2O_STRLIT("websocket"));
	h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-accept"), 0,
			      NULL, e->accept, strlen(e->accept));
	h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-protocol"),
			      0, NULL, e->proto, strlen(e->proto));
	req->res.status = 101;
	req->res.reason = "Switching Protocols";
	uv_timer_init(e->op.server->loop, &w->timer);
	w->timer.data = w;
	h2o_http1_upgrade(req, NULL, 0, ws_upgraded_cb, w);
	w = NULL;
done:
	if (w != NULL) {
		buf_free(&w->frames);
		free(w);
	}
	free(st);
	buf_free(&out);
	buf_free(&errb);
	json_decref(o);
	http__op_free(&e->op);
}

static bool header(h2o_req_t *req, const char *name, h2o_iovec_t *ret)
{
	ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);

	if (i < 0)
		return false;
	*ret = req->headers.entries[i].value;
	return true;
}

void kapi__pod_exec(struct http_request *hr, struct kapi_target *t)
{
	h2o_req_t *req = hr->req;
	struct exec_op *e;
	h2o_iovec_t up = {NULL, 0}, key, protos;
	unsigned char sha[SHA_DIGEST_LENGTH];
	char base[300], cname[64], buf[128], *save = NULL, *item, *q;
	const char *proto = NULL;
	size_t off;
	int rv;

	/* h2o moves the Upgrade header of an HTTP/1.1 request to req->upgrade. */
	up = req->upgrade;
	if (up.base == NULL)
		header(req, "upgrade", &up);
	if (req->version >= 0x200 || up.base == NULL ||
	    !h2o_lcstris(up.base, up.len, H2O_STRLIT("websocket")) ||
	    !header(req, "sec-websocket-key", &key) || key.len == 0 || key.len > 60 ||
	    !header(req, "sec-websocket-protocol", &protos)) {
		http_send_status(req, 400, "BadRequest",
				 "exec needs an HTTP/1.1 WebSocket upgrade with subprotocol "
				 "v5.channel.k8s.io or v4.channel.k8s.io");
		return;
	}
	if (memmem(protos.base, protos.len, "v5.channel.k8s.io", 17) != NULL)
		proto = "v5.channel.k8s.io";
	else if (memmem(protos.base, protos.len, "v4.channel.k8s.io", 17) != NULL)
		proto = "v4.channel.k8s.io";
	else {
		http_send_status(req, 400, "BadRequest",
				 "no supported WebSocket subprotocol (v5/v4.channel.k8s.io)");
		return;
	}
	if (!resolve(hr, t, base, sizeof(base), cname, sizeof(cname)))
		return;
	e = http__op_new(hr, sizeof(*e));
	if (e == NULL)
		return;
	snprintf(e->proto, sizeof(e->proto), "%s", proto);
	snprintf(buf, sizeof(buf), "%.*s%s", (int)key.len, key.base, WS_GUID);
	SHA1((const unsigned char *)buf, strlen(buf), sha);
	EVP_EncodeBlock((unsigned char *)e->accept, sha, SHA_DIGEST_LENGTH);
	off = (size_t)snprintf(e->url, sizeof(e->url), "%s/exec/%s/%s/%s", base, t->ns, t->name,
			       cname);
	/* Every command=... as it came (already percent-encoded). */
	q = h2o_mem_alloc_pool(&req->pool, hr->query.len + 1);
	memcpy(q, hr->query.base, hr->query.len);
	q[hr->query.len] = '\0';
	for (item = strtok_r(q, "&", &save); item != NULL; item = strtok_r(NULL, "&", &save)) {
		if (strncmp(item, "command=", 8) != 0)
			continue;
		if (off + strlen(item) + 2 >= sizeof(e->url)) {
			http__op_free(&e->op);
			http_send_status(req, 400, "BadRequest", "the command is too long");
			return;
		}
		off += (size_t)snprintf(e->url + off, sizeof(e->url) - off, "%c%s",
					strchr(e->url, '?') ? '&' : '?', item);
	}
	if (strchr(e->url, '?') == NULL) {
		http__op_free(&e->op);
		http_send_status(req, 400, "BadRequest", "you must specify at least 1 command");
		return;
	}
	rv = http_client_request(hr->server->client, "GET", e->url, NULL, NULL, 0, 0, 70000,
				 exec_cb, e);
	if (rv != 0) {
		http__op_free(&e->op);
		http_send_status(req, 503, "ServiceUnavailable", "cannot reach the node agent: %s",
				 strerror(-rv));
	}
}

/* ------------------------------------------------------------ log */

void kapi__pod_log(struct http_request *hr, struct kapi_target *t)
{
	struct http_server *s = hr->server;
	h2o_req_t *req = hr->req;
	char base[300], cname[64], url[1024];
	struct log_op *l;
	bool follow = false;
	int rv;

	if (!kapi__query_flag(hr, "follow", &follow))
		return; /* answered: a bad value */
	if (!resolve(hr, t, base, sizeof(base), cname, sizeof(cname)))
		return;
	snprintf(url, sizeof(url), "%s/containerLogs/%s/%s/%s", base, t->ns, t->name, cname);
	pass_query(hr, url, sizeof(url));
	if (follow) {
		strncat(url, strchr(url, '?') ? "&follow=true" : "?follow=true",
			sizeof(url) - strlen(url) - 1);
		rv = follow_start(hr, url);
		if (rv != 0)
			http_send_status(req, 503, "ServiceUnavailable", "cannot follow the log: %s",
					 strerror(-rv));
		return;
	}
	l = http__op_new(hr, sizeof(*l));
	if (l == NULL)
		return;
	snprintf(l->url, sizeof(l->url), "%s", url);
	rv = http_client_request(s->client, "GET", l->url, NULL, NULL, 0, HTTP_CLIENT_IDEMPOTENT,
				 LOG_PROXY_TIMEOUT_MS, log_cb, l);
	if (rv != 0) {
		http__op_free(&l->op);
		http_send_status(req, 503, "ServiceUnavailable", "cannot reach the node agent: %s",
				 strerror(-rv));
	}
}
