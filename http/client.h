/* An asynchronous HTTP client on the daemon's uv loop (libcurl multi):
 * HTTP/2 over TLS with this master's client certificate, connections kept
 * and multiplexed. Masters use it to forward writes to the leader and to
 * ask it for its read index.
 */
#ifndef CAPSTAN_HTTP_CLIENT_H
#define CAPSTAN_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

struct http_client;

struct http_client_config {
	const char *ca_file;   /* verifies servers; NULL = system default */
	const char *cert_file; /* client certificate; NULL = none */
	const char *key_file;
};

/* Creates a client on @loop (@config strings copied). Errors: -ENOMEM,
 * -EIO (curl could not start). */
int http_client_new(uv_loop_t *loop, const struct http_client_config *config,
		    struct http_client **ret_client);

/* Cancels every request (their callbacks run with -ECANCELED), closes the
 * handles and frees the client, then calls @cb (may be NULL). */
void http_client_close(struct http_client *c, void (*cb)(void *data), void *data);

struct http_client_response {
	long status;              /* HTTP status */
	const char *content_type; /* "" when absent */
	const char *body;         /* NUL-terminated; borrowed until return */
	size_t body_len;
};

/* Result of a request. @err: 0 with @res, or
 *  -ENOTCONN  nothing was sent (the request never reached the point of
 *             being written to a connection): safe to retry;
 *  -ETIMEDOUT / -EIO  the request may have reached the server (it was
 *             written, or handed to a reused connection that then broke):
 *             outcome unknown;
 *  -ECANCELED the client is closing and nothing was sent (a request that
 *             may have been sent gets -EIO instead);
 *  -ENOMEM    nothing was sent.
 * @res is NULL unless @err is 0. */
typedef void (*http_client_cb)(void *data, int err, const struct http_client_response *res);

/* Flags of http_client_request(). */
#define HTTP_CLIENT_IDEMPOTENT 0x1 /* curl may send it again by itself (on a
				      reused connection that turned out dead);
				      without it a request is written at most
				      once */

/* Starts a request. @headers: NULL-terminated "Name: value" strings
 * (copied; at most 8 of them, 2 KiB in all); @body borrowed (may be NULL):
 * it must stay valid and unchanged until @cb runs. @cb runs exactly once,
 * never from within this call, when this returns 0. Errors: -ENOMEM,
 * -EINVAL (bad URL, too many headers), -ECANCELED (closing). */
int http_client_request(struct http_client *c, const char *method, const char *url,
			const char *const *headers, const void *body, size_t body_len,
			unsigned flags, unsigned timeout_ms, http_client_cb cb, void *data);

/* Batched requests: items given during one loop iteration for the same
 * URL leave together, from the loop (a 0 ms timer), as one POST to @url
 * whose body is the items in call order, each preceded by its length
 * (4 bytes, big endian). The server answers 200 with one result per item,
 * in order, framed the same way. The headers and timeout of a batch are
 * those of its first item. A batch holds at most HTTP_CLIENT_BATCH_ITEMS
 * items and HTTP_CLIENT_BATCH_BYTES bytes (one bigger item goes alone).
 * The item (@n_iov pieces, copied) is never sent twice (no
 * HTTP_CLIENT_IDEMPOTENT).
 * @cb runs once per item, never from within this call, when this returns
 * 0: @err as for http_client_request() (the fate of the whole POST), or 0
 * with @res: a 200 answer gives status 200 and this item's result as the
 * body; any other answer gives every item of the batch that status and
 * the whole body. A 200 answer without a result for this item gives -EIO
 * (outcome unknown). Errors: -ENOMEM, -EINVAL, -ECANCELED (closing). */
#define HTTP_CLIENT_BATCH_ITEMS 512u
#define HTTP_CLIENT_BATCH_BYTES (1024u * 1024u)
struct http_client_iov {
	const void *base;
	size_t len;
};
int http_client_batch(struct http_client *c, const char *url, const char *const *headers,
		      const struct http_client_iov *iov, unsigned n_iov, unsigned timeout_ms,
		      http_client_cb cb, void *data);

/* Number of requests in flight (a batch counts once). */
unsigned http_client_pending(const struct http_client *c);

#endif
