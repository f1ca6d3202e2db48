/* Internals of the API server shared by the files of http/: the server and
 * connection structs, the per-request context, async operations that may
 * outlive their request, and the handlers' entry points.
 *
 * Everything here runs on the loop thread. h2o allocates from request
 * pools and aborts on OOM (its contract); our own heap objects are checked.
 */
#ifndef CAPSTAN_HTTP_INTERNAL_H
#define CAPSTAN_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/queue.h>

#include <h2o.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "http/auth.h"
#include "http/client.h"
#include "http/server.h"
#include "http/status.h"
#include "http/util.h"
#include "raft/replica.h"

/* Limits. Kubernetes caps request bodies at 3 MiB; h2o itself refuses
 * bodies beyond HTTP_H2O_BODY_MAX (plain 413 over HTTP/1.1, a stream reset
 * over HTTP/2) so that it never buffers more than that. */
#define HTTP_BODY_MAX (3u * 1024 * 1024)
#define HTTP_H2O_BODY_MAX (4u * 1024 * 1024)
#define HTTP_MAX_PENDING 8192u      /* async operations in the whole server */
#define HTTP_ORPHAN_BURST 256.0     /* requests abandoned while working ... */
#define HTTP_ORPHAN_RATE 32.0       /* ... tolerated per connection (per s) */
#define HTTP_WATCH_HEARTBEAT_MS 4000 /* bookmark after this much silence */
#define HTTP_WATCH_BATCH 65536       /* bytes of events per send */
#define HTTP_FORWARD_TIMEOUT_MS 30000
#define HTTP_READINDEX_TIMEOUT_MS 5000
#define HTTP_READ_WAIT_MS 10000
/* A request that finds no usable leader (none known, not reachable before
 * anything was sent, or refusing a forwarded request) waits for one this
 * long after its arrival, checking again every HTTP_LEADER_POLL_MS, before
 * it gets 503. */
#define HTTP_LEADER_WAIT_MS 10000
#define HTTP_LEADER_POLL_MS 50
/* How long the leader's API URL is reused before asking the replica again
 * (it parses the members map's JSON); failures refresh it at once. */
#define HTTP_LEADER_CACHE_MS 50
#define HTTP_CLOSE_GRACE_MS 2000
#define HTTP_FORWARDED_HEADER "x-capstan-forwarded"
/* The answer of a master to a forwarded request that it did not handle
 * (it is not the leader, or it is closing): "misdirected", nothing done,
 * so the forwarding master may try again elsewhere. Never relayed. */
#define HTTP_STATUS_NOT_HANDLED 421

struct http_conn;
struct http_watch;
struct http_read_wait;
struct http_leader_wait;

/* One accepted TCP connection. Freed once its uv handle is closed and no
 * operation references it any more. */
struct http_conn {
	uv_tcp_t tcp; /* first: the uv close callback finds us from it */
	struct http_server *server;
	h2o_socket_t *sock;       /* NULL once h2o closed the socket */
	struct http_user *cert_user; /* verified client certificate, or NULL */
	unsigned refs;            /* 1 for the handle + one per operation */
	unsigned active;          /* requests not yet disposed */
	unsigned pending;         /* operations in flight (orphans included) */
	double orphan_tokens;     /* token bucket of abandoned operations */
	uint64_t orphan_at;       /* ms of the last refill */
	bool shut;                /* shutdown(2) already called */
	LIST_ENTRY(http_conn) link;
};

/* Follower reads: one readindex request to the leader at a time; reads
 * arriving meanwhile wait for the next one. */
struct http_reader {
	struct http_read_wait *inflight; /* answered by the running request */
	struct http_read_wait *next;     /* wait for the following request */
	bool running;
};

struct http_server {
	uv_loop_t *loop;
	struct replica *replica;
	h2o_globalconf_t globalconf;
	h2o_context_t ctx;
	h2o_accept_ctx_t accept_tls;
	h2o_accept_ctx_t accept_plain;
	SSL_CTX *ssl_ctx;
	uv_tcp_t listen_tls;
	uv_tcp_t listen_plain;
	bool has_tls, has_plain;
	struct http_tokens *tokens;
	char *pki_dir;
	char *token_file; /* NULL: none */
	char *self_url;
	struct http_client *client;
	/* The authorizer between authentication and the handlers (RBAC
	 * later); http_authorize_builtin by default. */
	int (*authorize)(const struct http_authz_attrs *attrs, void *data);
	void *authorize_data;
	struct http_reader reader;
	/* The leader's API URL as last read from the replica (see
	 * HTTP_LEADER_CACHE_MS). */
	struct {
		char url[256];  /* "" when none is known; no trailing '/' */
		bool is_self;
		bool valid;
		uint64_t at;    /* loop ms of the read */
	} leader;
	LIST_HEAD(, http_leader_wait) leader_waits; /* requests waiting */
	uv_timer_t leader_timer;                    /* polls for a leader */
	uv_timer_t tick;             /* watch heartbeats, close grace */
	LIST_HEAD(, http_conn) conns;
	LIST_HEAD(, http_watch) watches;
	unsigned n_pending;  /* async operations alive */
	unsigned n_handles;  /* uv handles and work requests still open */
	unsigned refs;       /* 1 until closed + one per operation */
	bool closing;
	bool closed_cb_done;
	uint64_t close_started;
	uv_timer_t final_timer;
	void (*close_cb)(void *data);
	void *close_data;
};

/* The context of one request, in its pool (disposed with it). */
struct http_request {
	struct http_server *server;
	struct http_conn *conn;
	h2o_req_t *req;
	const struct http_user *user; /* NULL: anonymous */
	h2o_iovec_t path;             /* without the query */
	h2o_iovec_t query;            /* after '?', may be empty */
	int route;                    /* what http__dispatch() runs */
	size_t route_rest;            /* path offset after the route's prefix */
	uint64_t deadline;            /* loop ms: stop waiting for a leader */
	bool forwarded;               /* came from another master */
};

/* An asynchronous operation: heap memory that outlives the request if the
 * client leaves before a callback (raft, curl, timers) comes back. Embed it
 * first in the operation's struct. */
struct http_op_guard;
struct http_op {
	struct http_server *server;
	struct http_conn *conn;
	h2o_req_t *req; /* NULL once the request is gone */
	struct http_request *hr; /* in req's pool: valid while req is */
	struct http_op_guard *guard;
};

/* Allocates @size bytes (zeroed, >= sizeof(struct http_op)) and links the
 * op to the request. NULL on OOM or when the server is at its limit of
 * pending operations (then a Status has been sent). */
void *http__op_new(struct http_request *hr, size_t size);

/* Unlinks the op from its request and returns the request, or NULL when
 * the client has gone. Call before answering from a callback. */
h2o_req_t *http__op_detach(struct http_op *op);

/* Frees the op (detaching it first if needed). */
void http__op_free(struct http_op *op);

/* Completes a pending close once nothing is open any more (after a handle
 * or work request counted in n_handles went away). */
void http__maybe_finish_close(struct http_server *s);

/* True while the server is running (not closing). */
bool http__server_running(const struct http_server *s);

/* Runs the handler of the request's route again (after a wait). */
void http__dispatch(struct http_request *hr);

/* Leadership as the request paths see it (leader.c). */
enum http_role {
	HTTP_ROLE_LEADER,   /* handle locally (possibly elected but not yet
			       caught up: replica_apply() then decides) */
	HTTP_ROLE_FOLLOWER, /* forward to the leader */
	HTTP_ROLE_NONE,     /* no leader known: wait for one */
};
enum http_role http__role(struct http_server *s);

/* The leader's API URL (cached, see HTTP_LEADER_CACHE_MS), "" if unknown.
 * Borrowed until the next call. */
const char *http__leader_url(struct http_server *s);

/* Forgets the cached leader URL: the next look-up asks the replica. */
void http__leader_invalidate(struct http_server *s);

/* Waits for a usable leader: the request is dispatched again (handler run
 * from scratch) on the next poll, unless its deadline has passed; then it
 * is answered @code with @msg (a forwarded request is answered
 * HTTP_STATUS_NOT_HANDLED at once: its sender waits). Only for a request
 * of which nothing has been done. */
void http__wait_leader(struct http_request *hr, int code, const char *msg);

/* For write handlers: true when the request is to be handled here (this
 * replica leads); otherwise it has been forwarded, queued to wait for a
 * leader, or answered. */
bool http__write_here(struct http_request *hr);

/* For write handlers, when the local replica refused before appending
 * anything (REPLICA_ENOTLEADER): forgets the cached leader and waits for
 * one (a forwarded request: HTTP_STATUS_NOT_HANDLED). */
void http__write_not_leader(struct http_request *hr);

/* Answers a write that replica_apply() refused with @rv (nothing was
 * appended): wait for the leader, HTTP_STATUS_NOT_HANDLED or 503 when
 * closing, else 500. */
void http__answer_refused(struct http_request *hr, int rv);

/* Answers a request forwarded to this master that it will not handle. */
void http__send_not_handled(h2o_req_t *req, const char *msg);

/* Starts and stops the leader waits (server start and close). */
void http__leader_init(struct http_server *s);
void http__leader_close(struct http_server *s);

/* Forwarding (forward.c): sends the request as it came (method, path,
 * query, body, content type) to the leader as this master and relays the
 * answer. The caller has authenticated and authorized the user. */
void http__forward(struct http_request *hr);

/* The outcome rules above, for any forwarded request (forward.c and the
 * store's batches, store_api.c). http__fwd_retry(): nothing was done
 * (nothing sent, or the leader answered HTTP_STATUS_NOT_HANDLED), so wait
 * for a leader and dispatch again. Otherwise http__fwd_answer() relays the
 * leader's answer or the failure to @req (NULL: the client left), and
 * forgets the leader when it did not answer. */
bool http__fwd_retry(int err, const struct http_client_response *res);
void http__fwd_answer(struct http_server *s, h2o_req_t *req, int err,
		      const struct http_client_response *res);

/* Follower (store_api.c): sends the store command @cmd (copied), built
 * here from the request of @hr, to the leader in its next batch of writes
 * (http_client_batch(); at most once). @cb runs exactly once, maybe from
 * within this call: with @hr and the outcome as a replica_apply() callback
 * on the leader would see it (@status, @res) when the leader took the
 * command; with @hr NULL when the request was dealt with otherwise (gone,
 * answered 504 or with the leader's own answer, waiting for a leader to
 * be dispatched again, or forwarded with http__forward() when the
 * command does not fit a batch): then only free @data. */
typedef void (*http_fwd_cb)(void *data, struct http_request *hr, int status,
			    const struct store_result *res);
void http__forward_cmd(struct http_request *hr, const struct store_cmd *cmd, http_fwd_cb cb,
		       void *data);

/* Consistent reads (read.c): @cb runs once a linearizable read may be served
 * from local memory (0), or with the HTTP status of a failure (503 no
 * leader reachable, 504 timeout): reads are idempotent, so the caller
 * normally hands the request to http__wait_leader() to try again. */
typedef void (*http_read_cb)(struct http_read_wait *w, int status);
struct http_read_wait {
	struct http_op op; /* first */
	http_read_cb cb;
	struct replica_barrier barrier;
	struct replica_wait wait;
	struct http_read_wait *next;
};
/* @w comes from http__op_new(). */
void http__read_start(struct http_server *s, struct http_read_wait *w, http_read_cb cb);
/* Fails waiting reads (server closing). */
void http__reader_close(struct http_server *s);

/* Watch streams (watch.c). */
void http__watch_start(struct http_request *hr, const char *prefix, size_t prefix_len,
		       uint64_t from_rev);
void http__watch_tick(struct http_server *s, uint64_t now_ms);
void http__watch_close_all(struct http_server *s);

/* Handlers. Each answers (now or later) the request of @hr. */
void http__health(struct http_request *hr, const char *which);
void http__version(struct http_request *hr);
void http__store(struct http_request *hr);
void http__cluster_status(struct http_request *hr);
void http__cluster_readindex(struct http_request *hr);
void http__cluster_ca(struct http_request *hr);
/* /capstan/v1/nodes/<rest> (node_api.c): node certificates, API URLs. */
void http__nodes(struct http_request *hr, const char *rest, size_t len);
void http__cluster_members(struct http_request *hr, const char *rest, size_t rest_len);
void http__snapshot(struct http_request *hr); /* snapshot_api.c */

/* Method helpers. */
static inline bool http__method_is(const h2o_req_t *req, const char *m)
{
	return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}
bool http__method_is_write(const h2o_req_t *req);

/* Query parameter of the current request, percent-decoded into the pool;
 * false when absent. */
bool http__query(struct http_request *hr, const char *name, h2o_iovec_t *ret_value);

/* Milliseconds of the loop clock. */
static inline uint64_t http__now(const struct http_server *s)
{
	return uv_now(s->loop);
}

#endif
