/* Authentication: static token file and client certificates; built-in
 * authorization by group. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "http/auth.h"
#include "src/api/registry.h"
#include "src/lib/codec.h"
#include "src/lib/satoken.h"

struct http_tokens {
	struct token {
		char *token;
		size_t len;
		struct http_user user;
	} *v;
	size_t n;
};

static void user_clear(struct http_user *u)
{
	size_t i;

	free(u->name);
	free(u->uid);
	for (i = 0; i < u->n_groups; i++)
		free(u->groups[i]);
	free(u->groups);
	memset(u, 0, sizeof(*u));
}

void http_user_free(struct http_user *u)
{
	if (u == NULL)
		return;
	user_clear(u);
	free(u);
}

bool http_user_in_group(const struct http_user *u, const char *group)
{
	size_t i;

	if (u == NULL)
		return false;
	for (i = 0; i < u->n_groups; i++)
		if (strcmp(u->groups[i], group) == 0)
			return true;
	return false;
}

static int user_add_group(struct http_user *u, const char *g, size_t len)
{
	char **v;
	char *copy;

	copy = strndup(g, len);
	if (copy == NULL)
		return -ENOMEM;
	v = realloc(u->groups, (u->n_groups + 1) * sizeof(*v));
	if (v == NULL) {
		free(copy);
		return -ENOMEM;
	}
	u->groups = v;
	u->groups[u->n_groups++] = copy;
	return 0;
}

/* The UTF-8 text of entry @i of @name, malloc'ed. */
static char *name_entry_text(X509_NAME *name, int i)
{
	X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
	unsigned char *utf8 = NULL;
	char *copy;
	int n;

	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
	if (n < 0)
		return NULL;
	/* A NUL inside the name would let "admin\0x" pass as "admin". */
	if (memchr(utf8, 0, (size_t)n) != NULL) {
		OPENSSL_free(utf8);
		return NULL;
	}
	copy = strndup((const char *)utf8, (size_t)n);
	OPENSSL_free(utf8);
	return copy;
}

int http_user_from_cert(X509 *cert, struct http_user **ret_user)
{
	X509_NAME *name = X509_get_subject_name(cert);
	struct http_user *u;
	int i, rv;

	if (name == NULL)
		return -EINVAL;
	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return -ENOMEM;
	i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (i < 0 || (u->name = name_entry_text(name, i)) == NULL || u->name[0] == '\0') {
		rv = -EINVAL;
		goto err_after_alloc;
	}
	u->uid = strdup("");
	if (u->uid == NULL) {
		rv = -ENOMEM;
		goto err_after_alloc;
	}
	for (i = -1; (i = X509_NAME_get_index_by_NID(name, NID_organizationName, i)) >= 0;) {
		char *g = name_entry_text(name, i);
		if (g == NULL) {
			rv = -EINVAL;
			goto err_after_alloc;
		}
		rv = user_add_group(u, g, strlen(g));
		free(g);
		if (rv != 0)
			goto err_after_alloc;
	}
	*ret_user = u;
	return 0;

err_after_alloc:
	http_user_free(u);
	return rv;
}

/* CSV fields of one line (RFC 4180 quoting). Returns the number of fields
 * or -EINVAL; fields are malloc'ed into @f (at most @max). */
static int csv_split(const char *line, size_t len, char **f, int max)
{
	size_t i = 0;
	int n = 0;

	for (;;) {
		char *buf;
		size_t blen = 0;

		if (n == max)
			goto err;
		buf = malloc(len + 1);
		if (buf == NULL)
			goto err;
		f[n++] = buf;
		if (i < len && line[i] == '"') {
			i++;
			for (;;) {
				if (i >= len)
					goto err; /* unterminated quote */
				if (line[i] == '"') {
					if (i + 1 < len && line[i + 1] == '"') {
						buf[blen++] = '"';
						i += 2;
						continue;
					}
					i++;
					break;
				}
				buf[blen++] = line[i++];
			}
			if (i < len && line[i] != ',')
				goto err; /* text after the closing quote */
		} else {
			while (i < len && line[i] != ',') {
				if (line[i] == '"')
					goto err;
				buf[blen++] = line[i++];
			}
		}
		buf[blen] = '\0';
		if (i >= len)
			return n;
		i++; /* the comma */
	}
err:
	while (n > 0)
		free(f[--n]);
	return -EINVAL;
}

static int tokens_add_line(struct http_tokens *t, const char *line, size_t len)
{
	char *f[5] = {0};
	struct token tok = {0};
	struct token *v;
	int n, i, rv = -EINVAL;

	n = csv_split(line, len, f, 5);
	if (n < 0)
		return n;
	if (n < 3 || n > 4 || f[0][0] == '\0' || f[1][0] == '\0' || f[2][0] == '\0')
		goto out;
	for (i = 0; f[0][i] != '\0'; i++)
		if ((unsigned char)f[0][i] <= ' ')
			goto out; /* a token travels in a header */
	if (n == 4) {
		const char *g = f[3];
		while (*g != '\0') {
			const char *end = strchr(g, ',');
			size_t glen = end != NULL ? (size_t)(end - g) : strlen(g);
			if (glen == 0)
				goto out;
			if ((rv = user_add_group(&tok.user, g, glen)) != 0)
				goto out;
			rv = -EINVAL;
			g += glen;
			if (*g == ',') {
				g++;
				if (*g == '\0')
					goto out;
			}
		}
	}
	v = realloc(t->v, (t->n + 1) * sizeof(*v));
	if (v == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	t->v = v;
	tok.token = f[0];
	tok.len = strlen(f[0]);
	tok.user.name = f[1];
	tok.user.uid = f[2];
	f[0] = f[1] = f[2] = NULL;
	t->v[t->n++] = tok;
	memset(&tok, 0, sizeof(tok));
	rv = 0;
out:
	user_clear(&tok.user);
	for (i = 0; i < n; i++)
		free(f[i]);
	return rv;
}

int http_tokens_parse(const char *text, size_t len, struct http_tokens **ret_tokens,
		      unsigned *ret_bad_line)
{
	struct http_tokens *t;
	unsigned lineno = 0;
	size_t i = 0;
	int rv;

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	while (i < len) {
		const char *line = text + i;
		const char *nl = memchr(line, '\n', len - i);
		size_t llen = nl != NULL ? (size_t)(nl - line) : len - i;

		i += llen + (nl != NULL ? 1 : 0);
		lineno++;
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		if (llen == 0 || line[0] == '#')
			continue;
		if (memchr(line, '\0', llen) != NULL) {
			rv = -EINVAL;
			goto err;
		}
		rv = tokens_add_line(t, line, llen);
		if (rv != 0)
			goto err;
	}
	*ret_tokens = t;
	return 0;
err:
	if (ret_bad_line != NULL)
		*ret_bad_line = lineno;
	http_tokens_free(t);
	return rv;
}

int http_tokens_load(const char *path, struct http_tokens **ret_tokens, unsigned *ret_bad_line)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, rv;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;
		if (cap - len < 4096) {
			char *nb;
			if (cap > (1u << 24)) {
				rv = -EFBIG;
				goto out;
			}
			nb = realloc(buf, cap + 65536);
			if (nb == NULL) {
				rv = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap += 65536;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rv = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	rv = http_tokens_parse(buf != NULL ? buf : "", len, ret_tokens, ret_bad_line);
out:
	if (buf != NULL)
		OPENSSL_cleanse(buf, cap);
	free(buf);
	close(fd);
	return rv;
}

void http_tokens_free(struct http_tokens *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++) {
		OPENSSL_cleanse(t->v[i].token, t->v[i].len);
		free(t->v[i].token);
		user_clear(&t->v[i].user);
	}
	free(t->v);
	free(t);
}

size_t http_tokens_count(const struct http_tokens *t)
{
	return t != NULL ? t->n : 0;
}

const struct http_user *http_tokens_lookup(const struct http_tokens *t, const char *token,
					   size_t len)
{
	const struct http_user *found = NULL;
	size_t i;

	if (t == NULL || len == 0)
		return NULL;
	/* Every entry of the right length is compared in full, so the time
	 * does not tell how much of a guess was right. */
	for (i = 0; i < t->n; i++)
		if (t->v[i].len == len && CRYPTO_memcmp(t->v[i].token, token, len) == 0 &&
		    found == NULL)
			found = &t->v[i].user;
	return found;
}

/* ------------------------------------------------------------ bootstrap tokens */

/* Longest data value read from a bootstrap token Secret (decoded). */
#define BOOTSTRAP_VALUE_MAX 4096

static bool is_token_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

bool http_bootstrap_token_parse(const char *token, size_t len,
				char ret_id[HTTP_BOOTSTRAP_ID_LEN + 1])
{
	size_t i;

	if (len != HTTP_BOOTSTRAP_ID_LEN + 1 + HTTP_BOOTSTRAP_SECRET_LEN ||
	    token[HTTP_BOOTSTRAP_ID_LEN] != '.')
		return false;
	for (i = 0; i < len; i++)
		if (i != HTTP_BOOTSTRAP_ID_LEN && !is_token_char(token[i]))
			return false;
	memcpy(ret_id, token, HTTP_BOOTSTRAP_ID_LEN);
	ret_id[HTTP_BOOTSTRAP_ID_LEN] = '\0';
	return true;
}

/* The decoded value of data.<key> of the Secret into @buf (NUL-terminated,
 * at most BOOTSTRAP_VALUE_MAX bytes). The stored form keeps JSON's base64
 * strings; a bin value is taken as is. Errors: -ENOENT, -EACCES. */
static int secret_data(const void *secret, size_t secret_len, const char *key, char *buf,
		       size_t *ret_len)
{
	const void *data, *v;
	size_t data_len, vlen;
	const char *str;
	size_t slen;
	int rv;

	rv = codec_msgpack_get(secret, secret_len, "data", &data, &data_len);
	if (rv == -ENOENT)
		return -ENOENT;
	if (rv != 0)
		return -EACCES;
	rv = codec_msgpack_map_get(data, data_len, key, strlen(key), &v, &vlen);
	if (rv == -ENOENT)
		return -ENOENT;
	if (rv != 0 || vlen == 0)
		return -EACCES;
	if ((unsigned char)*(const char *)v == 0xc4 || (unsigned char)*(const char *)v == 0xc5) {
		/* bin 8 / bin 16: raw bytes after a 1- or 2-byte length. */
		size_t hdr = (unsigned char)*(const char *)v == 0xc4 ? 2 : 3;
		if (vlen < hdr || vlen - hdr > BOOTSTRAP_VALUE_MAX)
			return -EACCES;
		memcpy(buf, (const char *)v + hdr, vlen - hdr);
		buf[vlen - hdr] = '\0';
		*ret_len = vlen - hdr;
	} else {
		EVP_ENCODE_CTX *ctx;
		int n = 0, m = 0;

		if (codec_msgpack_str(v, vlen, &str, &slen) != 0 ||
		    slen > BOOTSTRAP_VALUE_MAX / 3 * 4)
			return -EACCES;
		ctx = EVP_ENCODE_CTX_new();
		if (ctx == NULL)
			return -EACCES;
		/* EVP_DecodeUpdate handles the padding, unlike EVP_DecodeBlock
		 * which keeps its zero bytes. */
		EVP_DecodeInit(ctx);
		rv = EVP_DecodeUpdate(ctx, (unsigned char *)buf, &n, (const unsigned char *)str,
				      (int)slen) < 0 ||
				     EVP_DecodeFinal(ctx, (unsigned char *)buf + n, &m) < 0
			     ? -EACCES
			     : 0;
		EVP_ENCODE_CTX_free(ctx);
		if (rv != 0)
			return rv;
		*ret_len = (size_t)n + (size_t)m;
		buf[*ret_len] = '\0';
	}
	if (memchr(buf, '\0', *ret_len) != NULL)
		return -EACCES;
	return 0;
}

/* Kubernetes allows extra groups matching
 * ^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$; capstan adds its join
 * group, so that a bootstrap token can join a master. */
static bool extra_group_ok(const char *g, size_t len)
{
	static const char prefix[] = HTTP_GROUP_BOOTSTRAPPERS ":";
	size_t i, plen = sizeof(prefix) - 1;

	if (len == strlen(HTTP_GROUP_JOIN) && memcmp(g, HTTP_GROUP_JOIN, len) == 0)
		return true;
	if (len <= plen || len - plen > 256 || memcmp(g, prefix, plen) != 0)
		return false;
	for (i = plen; i < len; i++)
		if (!is_token_char(g[i]) && g[i] != ':' && g[i] != '-')
			return false;
	return is_token_char(g[len - 1]);
}

static int bootstrap_groups(struct http_user *u, const char *list)
{
	int rv;

	rv = user_add_group(u, HTTP_GROUP_BOOTSTRAPPERS, strlen(HTTP_GROUP_BOOTSTRAPPERS));
	while (rv == 0 && *list != '\0') {
		const char *end = strchr(list, ',');
		size_t glen = end != NULL ? (size_t)(end - list) : strlen(list);
		const char *g = list;

		list += glen + (end != NULL ? 1 : 0);
		while (glen > 0 && *g == ' ') {
			g++;
			glen--;
		}
		while (glen > 0 && g[glen - 1] == ' ')
			glen--;
		if (glen == 0)
			continue;
		if (!extra_group_ok(g, glen))
			return -EACCES;
		rv = user_add_group(u, g, glen);
	}
	return rv;
}

int http_bootstrap_token_check(const void *secret, size_t secret_len, const char *token,
			       size_t len, int64_t now, struct http_user **ret_user)
{
	char id[HTTP_BOOTSTRAP_ID_LEN + 1];
	char *buf;
	const void *dt;
	const char *type;
	size_t type_len, n, dt_len;
	struct http_user *u = NULL;
	int rv = -EACCES;

	if (!http_bootstrap_token_parse(token, len, id))
		return -EACCES;
	buf = malloc(BOOTSTRAP_VALUE_MAX + 1);
	if (buf == NULL)
		return -ENOMEM;
	if (codec_msgpack_get_str(secret, secret_len, "type", &type, &type_len) != 0 ||
	    type_len != strlen(HTTP_BOOTSTRAP_SECRET_TYPE) ||
	    memcmp(type, HTTP_BOOTSTRAP_SECRET_TYPE, type_len) != 0)
		goto out;
	/* Kubernetes ignores a token whose Secret is being deleted. */
	if (codec_msgpack_get(secret, secret_len, "metadata.deletionTimestamp", &dt, &dt_len) !=
	    -ENOENT)
		goto out;
	if (secret_data(secret, secret_len, "token-id", buf, &n) != 0 ||
	    n != HTTP_BOOTSTRAP_ID_LEN || memcmp(buf, id, n) != 0)
		goto out;
	if (secret_data(secret, secret_len, "usage-bootstrap-authentication", buf, &n) != 0 ||
	    strcmp(buf, "true") != 0)
		goto out;
	rv = secret_data(secret, secret_len, "expiration", buf, &n);
	if (rv == 0) {
		int64_t exp;
		if (api_parse_time(buf, &exp) != 0 || now >= exp) {
			rv = -EACCES;
			goto out;
		}
	} else if (rv != -ENOENT) {
		goto out;
	}
	rv = -EACCES;
	if (secret_data(secret, secret_len, "token-secret", buf, &n) != 0 ||
	    n != HTTP_BOOTSTRAP_SECRET_LEN ||
	    CRYPTO_memcmp(buf, token + HTTP_BOOTSTRAP_ID_LEN + 1, n) != 0)
		goto out;
	rv = secret_data(secret, secret_len, "auth-extra-groups", buf, &n);
	if (rv == -ENOENT)
		buf[0] = '\0';
	else if (rv != 0)
		goto out;
	u = calloc(1, sizeof(*u));
	if (u == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	u->name = malloc(sizeof(HTTP_BOOTSTRAP_USER_PREFIX) + HTTP_BOOTSTRAP_ID_LEN);
	u->uid = strdup("");
	if (u->name == NULL || u->uid == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	snprintf(u->name, sizeof(HTTP_BOOTSTRAP_USER_PREFIX) + HTTP_BOOTSTRAP_ID_LEN, "%s%s",
		 HTTP_BOOTSTRAP_USER_PREFIX, id);
	rv = bootstrap_groups(u, buf);
	if (rv != 0)
		goto out;
	*ret_user = u;
	u = NULL;
out:
	http_user_free(u);
	OPENSSL_cleanse(buf, BOOTSTRAP_VALUE_MAX + 1);
	free(buf);
	return rv;
}

/* ------------------------------------------------------------ service accounts */

int http_sa_user_new(const struct satoken_info *info, struct http_user **ret_user)
{
	struct http_user *u = calloc(1, sizeof(*u));
	size_t nlen;
	int rv = -ENOMEM;

	if (u == NULL)
		return -ENOMEM;
	nlen = strlen(SATOKEN_USER_PREFIX) + strlen(info->ns) + 1 + strlen(info->sa_name) + 1;
	u->name = malloc(nlen);
	u->uid = strdup(info->sa_uid);
	if (u->name == NULL || u->uid == NULL)
		goto err;
	snprintf(u->name, nlen, "%s%s:%s", SATOKEN_USER_PREFIX, info->ns, info->sa_name);
	if (user_add_group(u, SATOKEN_GROUP_ALL, strlen(SATOKEN_GROUP_ALL)) != 0)
		goto err;
	{
		size_t glen = strlen(SATOKEN_GROUP_NS_PREFIX) + strlen(info->ns) + 1;
		char *g = malloc(glen);
		if (g == NULL)
			goto err;
		snprintf(g, glen, "%s%s", SATOKEN_GROUP_NS_PREFIX, info->ns);
		rv = user_add_group(u, g, strlen(g));
		free(g);
		if (rv != 0)
			goto err;
	}
	rv = user_add_group(u, SATOKEN_GROUP_AUTHENTICATED, strlen(SATOKEN_GROUP_AUTHENTICATED));
	if (rv != 0)
		goto err;
	*ret_user = u;
	return 0;
err:
	http_user_free(u);
	return -ENOMEM;
}

/* Paths open to anonymous users; see on_req() in server.c. */
static bool anonymous_path(const char *path)
{
	return strcmp(path, "/healthz") == 0 || strcmp(path, "/livez") == 0 ||
	       strcmp(path, "/readyz") == 0 || strcmp(path, "/version") == 0 ||
	       strcmp(path, "/version/") == 0;
}

int http_authorize_builtin(const struct http_authz_attrs *attrs, void *data)
{
	size_t i;

	(void)data;
	if (attrs->groups == NULL) {
		if (http_user_in_group(attrs->user, HTTP_GROUP_BOOTSTRAPPERS) &&
		    !anonymous_path(attrs->path))
			return -EACCES;
		return 0;
	}
	for (i = 0; attrs->groups[i] != NULL; i++)
		if (http_user_in_group(attrs->user, attrs->groups[i]))
			return 0;
	return -EACCES;
}
