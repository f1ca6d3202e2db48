/* Small codecs of the API: percent-decoding, query strings, numbers and
 * the opaque continue token of lists. No h2o request needed (unit-tested).
 * Also the TLS context and h2o context teardown shared by the servers
 * built on h2o (the API server, the node agent's logs endpoint). */
#ifndef CAPSTAN_HTTP_UTIL_H
#define CAPSTAN_HTTP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <openssl/ssl.h>

/* Decodes %XX escapes of @src into @dst (room for @len bytes; may equal
 * @src). @plus_is_space: '+' becomes ' ' (query strings). Writes the length
 * to *ret_len. Errors: -EINVAL for a malformed escape. */
int http_percent_decode(const char *src, size_t len, bool plus_is_space, char *dst,
			size_t *ret_len);

/* Finds parameter @name in the query string @q (without '?'); the raw
 * (still encoded) value goes to *ret_val and *ret_len ("" for "name" without
 * '='). Returns false when absent. The first occurrence wins. */
bool http_query_find(const char *q, size_t len, const char *name, const char **ret_val,
		     size_t *ret_len);

/* Parses a decimal uint64 of exactly @len bytes. Errors: -EINVAL, -ERANGE. */
int http_parse_u64(const char *s, size_t len, uint64_t *ret_value);

/* Parses "true"/"1" and "false"/"0". Errors: -EINVAL. */
int http_parse_bool(const char *s, size_t len, bool *ret_value);

/* The continue token of a list: base64url (no padding) of the last key
 * returned. Encode: malloc'ed, NUL-terminated, NULL on OOM. Decode:
 * malloc'ed key (NUL-terminated for convenience). Errors: -EINVAL (not a
 * token), -ENOMEM. */
char *http_continue_encode(const char *key, size_t len);
int http_continue_decode(const char *tok, size_t len, char **ret_key, size_t *ret_len);

/* Standard base64 with padding (values in JSON). Malloc'ed; NULL on OOM. */
char *http_base64_encode(const void *data, size_t len);

/* A TLS server context for h2o: TLS 1.2+, no compression, renegotiation,
 * tickets or session cache (@verify_cb, which records the client's
 * identity on the connection, must see every handshake), @options added,
 * certificate chain @cert_file and key @key_file, client certificates from
 * the CA in @ca_file checked with @verify_mode and @verify_cb, ALPN h2 and
 * http/1.1. The caller owns *ret_ctx (SSL_CTX_free()). Errors: -ENOMEM,
 * -EIO when a file does not load (*ret_failed_file names it; the OpenSSL
 * error stays queued for the caller to report and clear). */
int http_tls_server_ctx(const char *cert_file, const char *key_file, const char *ca_file,
			uint64_t options, int verify_mode, SSL_verify_cb verify_cb,
			SSL_CTX **ret_ctx, const char **ret_failed_file);

/* Whether none of @ctx's h2o timeouts has anything pending: until then
 * http_h2o_context_dispose() must wait (try again on a later tick). */
bool http_h2o_context_idle(h2o_context_t *ctx);

/* h2o_context_dispose() minus its nested uv_run(), which would re-enter
 * the loop from inside one of its callbacks. Unlinks h2o's graceful
 * shutdown timer first. The caller then closes its own handles and frees
 * the globalconf after libuv finished closing h2o's timers. */
void http_h2o_context_dispose(h2o_context_t *ctx);

#endif
