/* Small codecs of the API: percent-decoding, query strings, numbers and
 * the opaque continue token of lists. No h2o request needed (unit-tested). */
#ifndef CAPSTAN_HTTP_UTIL_H
#define CAPSTAN_HTTP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
