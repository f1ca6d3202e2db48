/* A Kubernetes API client on a libuv loop (libcurl multi, HTTP/2 over TLS
 * or h2c/HTTP/1.1 on a plain loopback listener), for the node agent and
 * the hollow nodes: JSON requests, streamed watches, and failover across
 * every master's URL.
 *
 * One client holds a list of master URLs; requests go to the current one
 * and move to the next when it stops answering (connect error, 5xx of the
 * "no leader"/"shutting down" kind, timeout). Credentials: a client
 * certificate, or a bearer token.
 *
 * Errors are negative errno values; HTTP errors come back as a response
 * with their status and the Status object's body.
 */
#ifndef CAPSTAN_KCLIENT_H
#define CAPSTAN_KCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

struct kclient;

struct kclient_config {
	const char *const *urls; /* NULL-terminated master URLs (copied) */
	const char *ca_file;     /* NULL: system default (https only) */
	const char *cert_file;   /* client certificate, or NULL */
	const char *key_file;
	const char *token;       /* bearer token, or NULL */
	unsigned timeout_ms;     /* per request (not watches); default 10000 */
	unsigned max_streams;    /* concurrent requests; default 256 */
	/* PEM data instead of the files above (copied; each wins over its
	 * file), e.g. from a kubeconfig's *-data fields. */
	const char *ca_pem;
	const char *cert_pem;
	const char *key_pem;
	bool http1; /* plain http:// URLs speak HTTP/1.1 (default: h2c with
		       prior knowledge, which capstand's plain listener takes;
		       always HTTP/1.1 with libcurl < 8.0, whose h2c cannot
		       reuse a connection) */
};

/* Errors: -ENOMEM, -EINVAL (no URL, or more than 32), -EIO (curl could
 * not start). */
int kclient_new(uv_loop_t *loop, const struct kclient_config *config, struct kclient **ret);
/* Cancels everything (callbacks run with -ECANCELED; watches still
 * running are freed without a callback and their handles become
 * invalid), then frees and calls @cb (may be NULL) once the handles are
 * closed. May be called from any callback of the client. */
void kclient_close(struct kclient *c, void (*cb)(void *data), void *data);
/* Replaces the master list (e.g. learned from the cluster; copied);
 * requests in flight finish where they are. Errors: as kclient_new(). */
int kclient_set_urls(struct kclient *c, const char *const *urls);
/* The URL requests go to now (borrowed). */
const char *kclient_current_url(const struct kclient *c);

struct kclient_response {
	long status;         /* HTTP status (0 never: transport errors are err) */
	json_t *body;        /* parsed JSON body (borrowed), NULL if not JSON */
	const char *raw;     /* the body, NUL-terminated (borrowed) */
	size_t raw_len;
};
/* @err 0 with @res, or -ECONNREFUSED/-ETIMEDOUT/-EIO once no master
 * answered within timeout_ms (every master is tried in turn, rounds
 * separated by a short backoff; a 503 answer counts as no answer while
 * time is left), or -ECANCELED. A write that may have reached a master
 * (sent, then the connection broke) is never sent twice: -EIO or
 * -ETIMEDOUT, outcome unknown. */
typedef void (*kclient_cb)(void *data, int err, const struct kclient_response *res);

/* @method "GET"/"POST"/"PUT"/"PATCH"/"DELETE"; @path "/api/v1/..." with
 * query; @body (borrowed, may be NULL; serialised at once);
 * @content_type NULL means application/json (PATCH: give
 * "application/merge-patch+json" or "application/strategic-merge-patch+json").
 * @cb runs once, never inside this call, when this returns 0. */
int kclient_request(struct kclient *c, const char *method, const char *path, const json_t *body,
		    const char *content_type, kclient_cb cb, void *data);

/* Watches: GET @path with watch=true&allowWatchBookmarks=true&
 * resourceVersion=... added; each event calls @event_cb(data, type, obj)
 * with type "ADDED"/"MODIFIED"/"DELETED"/"BOOKMARK"/"ERROR" and the object
 * (borrowed). The watch keeps the last resourceVersion seen and
 * reconnects (to the next master when needed) from it; on 410 Gone (or an
 * ERROR event with code 410) it calls @relist_cb, after which the caller
 * lists and calls kclient_watch_resume(w, rv). Stop with
 * kclient_watch_stop (no callback after it returns). */
struct kclient_watch;
typedef void (*kclient_event_cb)(void *data, const char *type, json_t *obj);
typedef void (*kclient_relist_cb)(void *data);
int kclient_watch(struct kclient *c, const char *path, const char *resource_version,
		  kclient_event_cb event_cb, kclient_relist_cb relist_cb, void *data,
		  struct kclient_watch **ret);
int kclient_watch_resume(struct kclient_watch *w, const char *resource_version);
void kclient_watch_stop(struct kclient_watch *w);

/* Requests in flight (watches excluded). */
unsigned kclient_pending(const struct kclient *c);

#endif
