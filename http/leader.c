/* Where a request goes: the leader's API URL (cached), the role of this
 * replica for the write and read paths, and requests waiting for a leader.
 *
 * The leader's URL comes from the members map in the store, a JSON value
 * that replica_leader_url() parses on every call; on the hot path of a
 * follower (every forwarded write) that cost showed, so the URL is kept for
 * HTTP_LEADER_CACHE_MS and forgotten at once when it fails: nothing could
 * be sent to it, it answered "not handled", or this replica refused a write
 * as not leader. A stale URL is harmless: the old leader refuses a
 * forwarded request without doing anything (HTTP_STATUS_NOT_HANDLED).
 *
 * During an election (no leader known, the leader unreachable before
 * anything was sent, or refusing), a request waits instead of failing: it
 * is queued, and every HTTP_LEADER_POLL_MS its handler runs again from
 * scratch, until it gets through or its deadline (HTTP_LEADER_WAIT_MS after
 * its arrival) passes, when it is answered 503. Only requests of which
 * nothing has been done wait; a request that may have reached a leader is
 * never sent again (its outcome is unknown: 504).
 */
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

struct http_leader_wait {
	struct http_op op; /* first */
	LIST_ENTRY(http_leader_wait) link;
};

/* ------------------------------------------------------------ leader */

const char *http__leader_url(struct http_server *s)
{
	uint64_t now = http__now(s);
	const char *url;
	size_t n;

	if (s->leader.valid && now - s->leader.at < HTTP_LEADER_CACHE_MS)
		return s->leader.url;
	url = replica_leader_url(s->replica);
	if (url == NULL)
		url = "";
	n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	if (n >= sizeof(s->leader.url))
		n = 0; /* cannot be a URL we wrote */
	memcpy(s->leader.url, url, n);
	s->leader.url[n] = '\0';
	s->leader.is_self = n > 0 && s->self_url != NULL && strncmp(url, s->self_url, n) == 0 &&
			    (s->self_url[n] == '\0' || strcmp(s->self_url + n, "/") == 0);
	s->leader.valid = true;
	s->leader.at = now;
	return s->leader.url;
}

void http__leader_invalidate(struct http_server *s)
{
	s->leader.valid = false;
}

enum http_role http__role(struct http_server *s)
{
	const char *url;

	if (replica_is_ready_leader(s->replica))
		return HTTP_ROLE_LEADER;
	url = http__leader_url(s);
	if (url[0] == '\0')
		return HTTP_ROLE_NONE;
	/* Elected but not caught up yet: replica_apply() decides. */
	if (s->leader.is_self)
		return HTTP_ROLE_LEADER;
	return HTTP_ROLE_FOLLOWER;
}

/* ------------------------------------------------------------ waits */

static void wait_free(struct http_leader_wait *w)
{
	LIST_REMOVE(w, link);
	http__op_free(&w->op);
}

static void leader_timer_cb(uv_timer_t *t)
{
	struct http_server *s = t->data;
	LIST_HEAD(, http_leader_wait) list;
	struct http_leader_wait *w;

	/* Take the whole list first: a request that still finds no leader
	 * queues itself again, for the next poll. */
	LIST_INIT(&list);
	while ((w = LIST_FIRST(&s->leader_waits)) != NULL) {
		LIST_REMOVE(w, link);
		LIST_INSERT_HEAD(&list, w, link);
	}
	http__leader_invalidate(s);
	while ((w = LIST_FIRST(&list)) != NULL) {
		struct http_request *hr = w->op.req != NULL ? w->op.hr : NULL;
		wait_free(w);
		if (hr != NULL) /* else the client left: nothing was done */
			http__dispatch(hr);
	}
	if (LIST_EMPTY(&s->leader_waits))
		uv_timer_stop(&s->leader_timer);
}

void http__send_not_handled(h2o_req_t *req, const char *msg)
{
	http_send_status(req, HTTP_STATUS_NOT_HANDLED, "ServiceUnavailable", "%s", msg);
}

void http__wait_leader(struct http_request *hr, int code, const char *msg)
{
	struct http_server *s = hr->server;
	struct http_leader_wait *w;

	if (!http__server_running(s)) {
		if (hr->forwarded)
			http__send_not_handled(hr->req, "the server is shutting down");
		else
			http_send_status(hr->req, 503, NULL, "the server is shutting down");
		return;
	}
	if (hr->forwarded) {
		/* The master that forwarded it waits, not us. */
		http__send_not_handled(hr->req, "this master is not the leader "
						"(the request was forwarded here)");
		return;
	}
	if (http__now(s) >= hr->deadline) {
		http_send_status(hr->req, code, NULL, "%s", msg);
		return;
	}
	w = http__op_new(hr, sizeof(*w));
	if (w == NULL)
		return;
	if (LIST_EMPTY(&s->leader_waits))
		uv_timer_start(&s->leader_timer, leader_timer_cb, HTTP_LEADER_POLL_MS,
			       HTTP_LEADER_POLL_MS);
	LIST_INSERT_HEAD(&s->leader_waits, w, link);
}

bool http__write_here(struct http_request *hr)
{
	switch (http__role(hr->server)) {
	case HTTP_ROLE_LEADER:
		return true;
	case HTTP_ROLE_FOLLOWER:
		if (hr->forwarded)
			http__send_not_handled(hr->req, "this master is not the leader "
							"(the request was forwarded here)");
		else
			http__forward(hr);
		return false;
	case HTTP_ROLE_NONE:
		break;
	}
	http__wait_leader(hr, 503, "no leader is known, try again");
	return false;
}

void http__write_not_leader(struct http_request *hr)
{
	/* Nothing was appended. Look again after a poll rather than at once:
	 * this replica's view of the leader may still name itself. */
	http__leader_invalidate(hr->server);
	http__wait_leader(hr, 503, "no leader is ready, try again");
}

void http__leader_init(struct http_server *s)
{
	LIST_INIT(&s->leader_waits);
	uv_timer_init(s->loop, &s->leader_timer);
	s->leader_timer.data = s;
	s->n_handles++; /* until leader_timer_closed_cb */
}

static void leader_timer_closed_cb(uv_handle_t *h)
{
	struct http_server *s = h->data;

	s->n_handles--;
	http__maybe_finish_close(s);
}

void http__leader_close(struct http_server *s)
{
	struct http_leader_wait *w;

	while ((w = LIST_FIRST(&s->leader_waits)) != NULL) {
		h2o_req_t *req = http__op_detach(&w->op);
		bool forwarded = req != NULL && w->op.hr->forwarded;
		wait_free(w);
		if (req != NULL && forwarded)
			http__send_not_handled(req, "the server is shutting down");
		else if (req != NULL)
			http_send_status(req, 503, NULL, "the server is shutting down");
	}
	uv_timer_stop(&s->leader_timer);
	uv_close((uv_handle_t *)&s->leader_timer, leader_timer_closed_cb);
}
