/* Watch streams of the API server (watch.c): one implementation of the
 * stream's life (h2o generator, flow control, store watch, heartbeats,
 * deadline, server close) shared by the store view (newline-delimited
 * JSON of raw entries, internal.h's http__watch_start) and the Kubernetes
 * API (kapi_watch.c: JSON or msgpack events), which differ only in how
 * they encode events, bookmarks and errors: the ops below.
 *
 * Everything runs on the loop thread. A stream lives in its request's
 * pool and ends with it.
 */
#ifndef CAPSTAN_HTTP_WATCH_H
#define CAPSTAN_HTTP_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/internal.h"
#include "src/lib/buf.h"

struct http_watch;

/* Encoders of one stream. Each appends to @out (which it must leave as it
 * was on failure) and returns 0 or a negative errno. @data is the
 * stream's (http__watch_new). */
struct http_watch_ops {
	/* A store event; 1 when the event is not for this stream (nothing
	 * appended). */
	int (*event)(void *data, const struct store_event *ev, struct buf *out);
	/* A progress notification at revision @rev. */
	int (*bookmark)(void *data, uint64_t rev, struct buf *out);
	/* The final ERROR event. */
	int (*error)(void *data, int code, const char *reason, const char *msg, struct buf *out);
};

struct http_watch_params {
	const char *content_type;  /* static */
	uint64_t deadline_ms;      /* loop ms at which the stream ends; 0 none */
	bool heartbeat_bookmarks;  /* a bookmark after HTTP_WATCH_HEARTBEAT_MS
				      of silence (else nothing is sent) */
	const char *keepalive;     /* bytes sent at once when the stream has
				      nothing else to send first (NULL none) */
	size_t keepalive_len;
	const char *gone_msg;      /* message of the 410 when history is gone */
};

/* A new stream of the request (in its pool), not started: its buffer
 * (http__watch_buf) may receive what goes first (the current objects).
 * @ops static, @data borrowed for the stream's life. */
struct http_watch *http__watch_new(struct http_request *hr, const struct http_watch_ops *ops,
				   void *data);

/* The stream's output buffer, for what goes before the events. */
struct buf *http__watch_buf(struct http_watch *w);

/* Watches @prefix after revision @from and answers: 200 and the stream,
 * or the 410 ERROR event at once when @from is compacted, or a 500 Status.
 * @p is copied; its strings must live as long as the request. */
void http__watch_begin(struct http_watch *w, const char *prefix, size_t prefix_len,
		       uint64_t from, const struct http_watch_params *p);

#endif
