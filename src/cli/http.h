/* The CLI's blocking HTTP client: libcurl easy, HTTP/2 over TLS with the
 * kubeconfig's CA and client certificate (in memory) or bearer token. */
#ifndef CAPSTAN_CLI_HTTP_H
#define CAPSTAN_CLI_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/cli/kubeconfig.h"

struct cli_http_client;

struct cli_http_response {
	long status;  /* HTTP status code */
	char *body;   /* owned, NUL-terminated (not counted in len) */
	size_t len;
};

/* Creates a client for @server (e.g. "https://127.0.0.1:6443"; copied)
 * with the CA, client certificate and token of @kc (copied; may be NULL
 * for anonymous requests). @timeout_ms bounds each request (0 = 30 s).
 * Errors: -EINVAL (no server), -ENOMEM. */
int cli_http_client_new(const char *server, const struct cli_kubeconfig *kc,
			uint64_t timeout_ms, struct cli_http_client **ret_client);

/* Frees the client; accepts NULL. */
void cli_http_client_free(struct cli_http_client *c);

/* Skips server certificate verification (--insecure-skip-tls-verify). */
void cli_http_client_set_insecure(struct cli_http_client *c, bool insecure);

/* Replaces the bearer token (copied; NULL removes it). Returns 0 or -ENOMEM. */
int cli_http_client_set_token(struct cli_http_client *c, const char *token);

/* The server URL (borrowed). */
const char *cli_http_client_server(const struct cli_http_client *c);

/* The message of the last failure (borrowed; one line). */
const char *cli_http_client_errmsg(const struct cli_http_client *c);

/* Sends @method @path (appended to the server URL, or a full "http(s)://"
 * URL used as is) with @body (borrowed, may be NULL) and fills *ret with
 * any HTTP answer, whatever its status; free it with
 * cli_http_response_free(). @timeout_ms overrides the client's timeout
 * when non-zero.
 * Errors (message in cli_http_client_errmsg): -ECONNREFUSED, -ETIMEDOUT,
 * -EHOSTUNREACH and -EPROTO for transport and TLS failures, -ENOMEM. */
int cli_http_request(struct cli_http_client *c, const char *method, const char *path,
		     const void *body, size_t body_len, uint64_t timeout_ms,
		     struct cli_http_response *ret);

/* Like cli_http_request() with a Content-Type for @body (NULL =
 * application/octet-stream) and an Accept header (NULL = none); both
 * borrowed, each under 240 bytes. */
int cli_http_request_typed(struct cli_http_client *c, const char *method, const char *path,
			   const char *content_type, const char *accept, const void *body,
			   size_t body_len, uint64_t timeout_ms, struct cli_http_response *ret);

/* Called with each complete line of a streamed 2xx body (borrowed, without
 * the newline, NUL-terminated). Return 0 to go on, non-zero to stop the
 * stream; that value is returned by cli_http_stream. */
typedef int (*cli_http_line_cb)(const char *line, size_t len, void *data);

/* GETs @path and feeds the body line by line to @cb until the server ends
 * it, @cb stops it, or nothing (not even a bookmark) arrives for
 * @idle_ms. A non-2xx answer is returned in *ret_error (status and body)
 * without calling @cb. Returns 0 when the server ended the stream, @cb's
 * non-zero value, or the errors of cli_http_request. */
int cli_http_stream(struct cli_http_client *c, const char *path, uint64_t idle_ms,
		    cli_http_line_cb cb, void *data, struct cli_http_response *ret_error);

void cli_http_response_free(struct cli_http_response *r);

/* The one-line message of an error answer: the "message" of a Kubernetes
 * Status object, else the first line of the body, else the status text.
 * Writes into @buf. */
void cli_http_error_message(const struct cli_http_response *r, char *buf, size_t len);

/* Appends @s percent-encoded to @buf (keeping '/' and RFC 3986 unreserved
 * characters). Returns 0 or -ENAMETOOLONG. */
int cli_http_escape_path(const char *s, char *buf, size_t len);

#endif
