/* Percent-decoding, query strings, numbers, continue tokens; h2o context teardown. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <h2o.h>
#include <h2o/http2.h>
#include <openssl/x509v3.h>

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

int http_tls_server_ctx(const char *cert_file, const char *key_file, const char *ca_file,
			uint64_t options, int verify_mode, SSL_verify_cb verify_cb,
			SSL_CTX **ret_ctx, const char **ret_failed_file)
{
	STACK_OF(X509_NAME) *cas;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	const char *failed;

	if (ctx == NULL)
		return -ENOMEM;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
					 options);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	failed = cert_file;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1)
		goto err;
	failed = key_file;
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto err;
	failed = ca_file;
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1)
		goto err;
	cas = SSL_load_client_CA_file(ca_file);
	if (cas == NULL)
		goto err;
	SSL_CTX_set_client_CA_list(ctx, cas);
	SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	SSL_CTX_set_verify(ctx, verify_mode, verify_cb);
	SSL_CTX_set_verify_depth(ctx, 4);
	h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
	*ret_ctx = ctx;
	return 0;
err:
	if (ret_failed_file != NULL)
		*ret_failed_file = failed;
	SSL_CTX_free(ctx);
	return -EIO;
}

/* Every h2o_timeout_t of a context, as h2o_context_dispose() lists them. */
#define CONTEXT_TIMEOUTS(ctx)                                                                  \
	{                                                                                      \
		&(ctx)->zero_timeout, &(ctx)->one_sec_timeout, &(ctx)->hundred_ms_timeout,     \
		    &(ctx)->handshake_timeout, &(ctx)->http1.req_timeout,                      \
		    &(ctx)->http2.idle_timeout, &(ctx)->http2.graceful_shutdown_timeout,       \
		    &(ctx)->proxy.io_timeout,                                                  \
	}

bool http_h2o_context_idle(h2o_context_t *ctx)
{
	h2o_timeout_t *timeouts[] = CONTEXT_TIMEOUTS(ctx);

	for (size_t i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++)
		if (!h2o_linklist_is_empty(&timeouts[i]->_entries))
			return false;
	return true;
}

void http_h2o_context_dispose(h2o_context_t *ctx)
{
	h2o_globalconf_t *config = ctx->globalconf;
	h2o_timeout_t *timeouts[] = CONTEXT_TIMEOUTS(ctx);
	size_t i, j;

	if (h2o_timeout_is_linked(&ctx->http2._graceful_shutdown_timeout))
		h2o_timeout_unlink(&ctx->http2._graceful_shutdown_timeout);
	for (i = 0; config->hosts[i] != NULL; ++i) {
		h2o_hostconf_t *hostconf = config->hosts[i];
		for (j = 0; j != hostconf->paths.size; ++j)
			h2o_context_dispose_pathconf_context(ctx, hostconf->paths.entries + j);
		h2o_context_dispose_pathconf_context(ctx, &hostconf->fallback_path);
	}
	free(ctx->_pathconfs_inited.entries);
	free(ctx->_module_configs);
	for (i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++)
		h2o_timeout_dispose(ctx->loop, timeouts[i]);
	h2o_filecache_destroy(ctx->filecache);
	ctx->filecache = NULL;
	for (i = 0; i != ctx->storage.size; ++i)
		if (ctx->storage.entries[i].dispose != NULL)
			ctx->storage.entries[i].dispose(ctx->storage.entries[i].data);
	free(ctx->storage.entries);
	h2o_multithread_unregister_receiver(ctx->queue, &ctx->receivers.hostinfo_getaddr);
	h2o_multithread_destroy_queue(ctx->queue);
	if (ctx->_timestamp_cache.value != NULL)
		h2o_mem_release_shared(ctx->_timestamp_cache.value);
}
