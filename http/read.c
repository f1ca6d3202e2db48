/* Linearizable reads. On the leader (also one elected but not yet caught
 * up): replica_barrier() (the replica shares one barrier among concurrent
 * callers). On a follower: ask the leader for its read index (GET
 * /capstan/v1/cluster/readindex, which the leader answers after a
 * barrier), then wait until this replica has applied that far. One
 * readindex request runs at a time; reads that arrive while it runs wait
 * for the next one, since the running one may have been answered before
 * they arrived.
 *
 * A read that fails on the way (no leader known, the leader unreachable,
 * busy electing, a timeout) reports 503 or 504 to its callback, which
 * normally waits for a leader and tries again (reads are idempotent) until
 * the request's deadline.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http/internal.h"

static int status_of(int rv)
{
	if (rv == REPLICA_EUNKNOWN) /* also -ETIMEDOUT */
		return 504;
	return 503;
}

static void follower_read(struct http_server *s, struct http_read_wait *w);

static void barrier_cb(struct replica_barrier *b, int status, uint64_t index)
{
	struct http_read_wait *w = b->data;

	(void)index;
	if (status == REPLICA_ENOTLEADER && w->op.req != NULL &&
	    http__server_running(w->op.server)) {
		http__leader_invalidate(w->op.server);
		follower_read(w->op.server, w);
		return;
	}
	w->cb(w, status == 0 ? 0 : status_of(status));
}

static void wait_cb(struct replica_wait *rw, int status)
{
	struct http_read_wait *w = rw->data;

	w->cb(w, status == 0 ? 0 : status_of(status));
}

static void fail_list(struct http_read_wait *w, int code)
{
	while (w != NULL) {
		struct http_read_wait *next = w->next;
		w->cb(w, code);
		w = next;
	}
}

static void start_readindex(struct http_server *s);

static void readindex_cb(void *data, int err, const struct http_client_response *res)
{
	struct http_server *s = data;
	struct http_read_wait *w = s->reader.inflight;
	json_t *j = NULL;
	json_int_t index = -1;
	int code = 503;

	s->reader.inflight = NULL;
	s->reader.running = false;
	if (err == 0 && res->status == 200) {
		j = json_loadb(res->body, res->body_len, 0, NULL);
		if (j != NULL && json_is_integer(json_object_get(j, "index")))
			index = json_integer_value(json_object_get(j, "index"));
		json_decref(j);
	} else if (err == -ETIMEDOUT || (err == 0 && res->status == 504)) {
		code = 504;
	}
	if (index < 0)
		http__leader_invalidate(s);
	while (w != NULL) {
		struct http_read_wait *next = w->next;
		int rv = -EINVAL;
		if (index >= 0) {
			w->wait.data = w;
			rv = replica_wait_applied(s->replica, &w->wait, (uint64_t)index,
						  HTTP_READ_WAIT_MS, wait_cb);
		}
		if (rv != 0)
			w->cb(w, code);
		w = next;
	}
	if (s->reader.next != NULL) {
		if (http__server_running(s))
			start_readindex(s);
		else {
			w = s->reader.next;
			s->reader.next = NULL;
			fail_list(w, 503);
		}
	}
}

static void start_readindex(struct http_server *s)
{
	static const char *const headers[] = {"Accept: application/json", NULL};
	const char *leader = http__leader_url(s);
	char url[512];
	int rv;

	s->reader.inflight = s->reader.next;
	s->reader.next = NULL;
	if (leader[0] == '\0' || s->leader.is_self) {
		rv = -ENOTCONN;
	} else {
		snprintf(url, sizeof(url), "%s/capstan/v1/cluster/readindex", leader);
		rv = http_client_request(s->client, "GET", url, headers, NULL, 0,
					 HTTP_CLIENT_IDEMPOTENT, HTTP_READINDEX_TIMEOUT_MS,
					 readindex_cb, s);
	}
	if (rv != 0) {
		struct http_read_wait *w = s->reader.inflight;
		s->reader.inflight = NULL;
		fail_list(w, 503);
		return;
	}
	s->reader.running = true;
}

static void follower_read(struct http_server *s, struct http_read_wait *w)
{
	w->next = s->reader.next;
	s->reader.next = w;
	if (!s->reader.running)
		start_readindex(s);
}

void http__read_start(struct http_server *s, struct http_read_wait *w, http_read_cb cb)
{
	int rv;

	w->cb = cb;
	w->next = NULL;
	switch (http__role(s)) {
	case HTTP_ROLE_LEADER:
		w->barrier.data = w;
		rv = replica_barrier(s->replica, &w->barrier, barrier_cb);
		if (rv == 0)
			return;
		if (rv == REPLICA_ENOTLEADER)
			http__leader_invalidate(s);
		cb(w, status_of(rv));
		return;
	case HTTP_ROLE_FOLLOWER:
		follower_read(s, w);
		return;
	case HTTP_ROLE_NONE:
		break;
	}
	cb(w, 503);
}

void http__reader_close(struct http_server *s)
{
	struct http_read_wait *w = s->reader.next;

	s->reader.next = NULL;
	fail_list(w, 503);
}
