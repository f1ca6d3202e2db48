/* Percent-decoding, query strings, numbers, continue tokens. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>

#include "http/util.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int http_percent_decode(const char *src, size_t len, bool plus_is_space, char *dst,
			size_t *ret_len)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		char c = src[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= len)
				return -EINVAL;
			hi = hexval(src[i + 1]);
			lo = hexval(src[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			dst[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus_is_space) {
			dst[o++] = ' ';
		} else {
			dst[o++] = c;
		}
	}
	*ret_len = o;
	return 0;
}

bool http_query_find(const char *q, size_t len, const char *name, const char **ret_val,
		     size_t *ret_len)
{
	size_t nlen = strlen(name);
	size_t i = 0;

	while (i < len) {
		const char *p = q + i;
		const char *amp = memchr(p, '&', len - i);
		size_t plen = amp != NULL ? (size_t)(amp - p) : len - i;

		i += plen + 1;
		if (plen >= nlen && memcmp(p, name, nlen) == 0 && (plen == nlen || p[nlen] == '=')) {
			if (plen == nlen) {
				*ret_val = p + plen;
				*ret_len = 0;
			} else {
				*ret_val = p + nlen + 1;
				*ret_len = plen - nlen - 1;
			}
			return true;
		}
	}
	return false;
}

int http_parse_u64(const char *s, size_t len, uint64_t *ret_value)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 20)
		return len == 0 ? -EINVAL : -ERANGE;
	for (i = 0; i < len; i++) {
		unsigned d;
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret_value = v;
	return 0;
}

int http_parse_bool(const char *s, size_t len, bool *ret_value)
{
	if ((len == 4 && memcmp(s, "true", 4) == 0) || (len == 1 && s[0] == '1')) {
		*ret_value = true;
		return 0;
	}
	if ((len == 5 && memcmp(s, "false", 5) == 0) || (len == 1 && s[0] == '0')) {
		*ret_value = false;
		return 0;
	}
	return -EINVAL;
}

char *http_continue_encode(const char *key, size_t len)
{
	char *s = malloc(h2o_base64_encode_capacity(len));

	if (s != NULL)
		h2o_base64_encode(s, key, len, 1);
	return s;
}

static int b64url_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int http_continue_decode(const char *tok, size_t len, char **ret_key, size_t *ret_len)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t i, o = 0;
	char *key;

	/* Canonical base64url without padding: a length of 1 mod 4 is
	 * impossible, and the unused low bits of the last symbol are zero. */
	if (len == 0 || len % 4 == 1)
		return -EINVAL;
	key = malloc(len * 3 / 4 + 1);
	if (key == NULL)
		return -ENOMEM;
	for (i = 0; i < len; i++) {
		int v = b64url_val(tok[i]);
		if (v < 0)
			goto err;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			key[o++] = (char)(acc >> bits & 0xff);
		}
	}
	if ((acc & ((1u << bits) - 1)) != 0)
		goto err;
	key[o] = '\0';
	*ret_key = key;
	*ret_len = o;
	return 0;
err:
	free(key);
	return -EINVAL;
}

char *http_base64_encode(const void *data, size_t len)
{
	char *s = malloc(h2o_base64_encode_capacity(len));

	if (s != NULL)
		h2o_base64_encode(s, data, len, 0);
	return s;
}
