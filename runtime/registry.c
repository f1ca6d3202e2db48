/* Pulling images from OCI registries over libcurl (rt_image_pull).
 *
 * Happy path: normalise the reference, find the configured registry of its
 * domain, GET /v2/<repo>/manifests/<tag|digest> (an index or manifest list
 * then picks linux/<arch> and its manifest is fetched by digest), GET the
 * config blob, then GET each layer blob whose diff id is not unpacked yet.
 * Everything is written as an OCI image layout in images/tmp/pull-XXXXXX,
 * each blob hashed while it streams and checked against its digest and
 * size; rt_image_import then unpacks the layers and names the image, as
 * for a local layout (a layer it already has is skipped by diff id, which
 * is why a missing layer blob in the layout is fine).
 *
 * Auth: a 401 names its scheme in WWW-Authenticate. Basic: retry with the
 * configured credentials. Bearer realm=,service=,scope=: GET a token from
 * the realm (with the credentials, if any) and send "Authorization: Bearer"
 * on this and every later request of the pull; a later 401 fetches a new
 * token once (it may have expired). libcurl does not forward credentials
 * to another host on a redirect (blob storage often redirects).
 *
 * Failure modes, each a distinct error (see runtime.h): no registry for
 * the domain or a 404 (-ENOENT), 401/403 after authenticating (-EACCES),
 * transport errors (-EHOSTUNREACH), digest/size mismatches and malformed
 * JSON (-EBADMSG), nothing for this platform (-ENOTSUP), cancel
 * (-ECANCELED), 5xx and disk (-EIO). The temporary layout is always
 * removed.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "runtime/internal.h"

#define MANIFEST_MAX (4u * 1024 * 1024) /* containerd's limit too */
#define CONFIG_MAX (16u * 1024 * 1024)
#define TOKEN_MAX (1u * 1024 * 1024)
#define ERR_BODY_MAX (16u * 1024)
#define INDEX_DEPTH_MAX 3

#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"

static const char manifest_accept[] = "Accept: " MT_OCI_INDEX ", " MT_DOCKER_LIST
				      ", " MT_OCI_MANIFEST ", " MT_DOCKER_MANIFEST;

/* ------------------------------------------------------------ references */

void rt_image_ref_clear(struct rt_image_ref *r)
{
	if (r == NULL)
		return;
	free(r->name);
	free(r->domain);
	free(r->repository);
	free(r->tag);
	free(r->digest);
	memset(r, 0, sizeof(*r));
}

int rt_image_ref_parse(const char *ref, struct rt_image_ref *ret)
{
	struct rt_image_ref r = {0};
	const char *slash, *at, *end, *colon;
	int rv;

	rv = rt_image_normalize(ref, &r.name);
	if (rv != 0)
		return rv;
	/* Normalised names always start with a domain and a slash. */
	slash = strchr(r.name, '/');
	at = strchr(r.name, '@');
	end = at != NULL ? at : r.name + strlen(r.name);
	colon = NULL;
	for (const char *p = end; p > slash; p--)
		if (p[-1] == '/')
			break;
		else if (p[-1] == ':') {
			colon = p - 1;
			break;
		}
	if (slash == NULL || slash > end) {
		rv = -EINVAL;
		goto err;
	}
	r.domain = strndup(r.name, (size_t)(slash - r.name));
	r.repository = strndup(slash + 1, (size_t)((colon != NULL ? colon : end) - slash - 1));
	if (colon != NULL)
		r.tag = strndup(colon + 1, (size_t)(end - colon - 1));
	if (at != NULL)
		r.digest = strdup(at + 1);
	if (r.domain == NULL || r.repository == NULL || (colon != NULL && r.tag == NULL) ||
	    (at != NULL && r.digest == NULL)) {
		rv = -ENOMEM;
		goto err;
	}
	*ret = r;
	return 0;
err:
	rt_image_ref_clear(&r);
	return rv;
}

/* The registry serving @domain; NULL if none is configured. */
static const struct rt_registry *find_registry(const struct rt_pull_opts *o, const char *domain)
{
	for (size_t i = 0; o != NULL && i < o->n_registries; i++)
		if (o->registries[i].host != NULL && strcmp(o->registries[i].host, domain) == 0)
			return &o->registries[i];
	return NULL;
}

/* Base URL of @r without a trailing slash. */
static char *registry_base(const struct rt_registry *r)
{
	const char *u = r->url;
	size_t n;

	if (u == NULL || *u == '\0')
		return strcmp(r->host, "docker.io") == 0 ? strdup("https://registry-1.docker.io")
							 : rt__printf("https://%s", r->host);
	n = strlen(u);
	while (n > 0 && u[n - 1] == '/')
		n--;
	return strndup(u, n);
}

/* ------------------------------------------------------------- manifests */

enum mtype { MTYPE_UNKNOWN, MTYPE_INDEX, MTYPE_MANIFEST, MTYPE_SCHEMA1 };

/* What a fetched manifest is: its own mediaType field first, then the
 * Content-Type, then its shape (OCI makes mediaType optional). */
static enum mtype classify(const json_t *m, const char *content_type)
{
	const char *mt = json_string_value(json_object_get(m, "mediaType"));
	char ct[128] = "";

	if (content_type != NULL) {
		size_t n = strcspn(content_type, "; ");

		if (n < sizeof(ct)) {
			memcpy(ct, content_type, n);
			ct[n] = '\0';
		}
	}
	if (mt == NULL || *mt == '\0')
		mt = ct;
	if (strcmp(mt, MT_OCI_INDEX) == 0 || strcmp(mt, MT_DOCKER_LIST) == 0)
		return MTYPE_INDEX;
	if (strcmp(mt, MT_OCI_MANIFEST) == 0 || strcmp(mt, MT_DOCKER_MANIFEST) == 0)
		return MTYPE_MANIFEST;
	if (strncmp(mt, "application/vnd.docker.distribution.manifest.v1", 47) == 0 ||
	    json_integer_value(json_object_get(m, "schemaVersion")) == 1)
		return MTYPE_SCHEMA1;
	if (json_is_array(json_object_get(m, "manifests")))
		return MTYPE_INDEX;
	if (json_is_object(json_object_get(m, "config")) &&
	    json_is_array(json_object_get(m, "layers")))
		return MTYPE_MANIFEST;
	return MTYPE_UNKNOWN;
}

static const char *host_arch(void)
{
#if defined(__x86_64__)
	return "amd64";
#elif defined(__aarch64__)
	return "arm64";
#elif defined(__i386__)
	return "386";
#elif defined(__arm__)
	return "arm";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return "ppc64le";
#elif defined(__s390x__)
	return "s390x";
#elif defined(__riscv) && __riscv_xlen == 64
	return "riscv64";
#else
	return "";
#endif
}

static bool str_eq(const json_t *j, const char *s)
{
	return json_is_string(j) && strcmp(json_string_value(j), s) == 0;
}

/* The descriptor of @index for @os/@arch. A matching variant (@variant
 * may be NULL) beats an entry without one, which beats another variant;
 * attestations and unknown platforms never match. NULL if none. */
static const json_t *pick_manifest(const json_t *index, const char *os, const char *arch,
				   const char *variant)
{
	const json_t *best = NULL, *v;
	int best_score = 0;
	size_t i;

	json_array_foreach (json_object_get(index, "manifests"), i, v) {
		const json_t *plat = json_object_get(v, "platform");
		const json_t *var = json_object_get(plat, "variant");
		int score;

		if (!str_eq(json_object_get(plat, "os"), os) ||
		    !str_eq(json_object_get(plat, "architecture"), arch) ||
		    !json_is_string(json_object_get(v, "digest")))
			continue;
		if (variant != NULL && str_eq(var, variant))
			score = 3;
		else if (var == NULL || json_string_length(var) == 0)
			score = 2;
		else
			score = 1;
		if (score > best_score) {
			best = v;
			best_score = score;
		}
	}
	return best;
}

/* A layer media type we can unpack (tar, any compression rt__unpack
 * knows); encrypted or unknown artifacts are refused. */
static bool layer_type_ok(const char *mt)
{
	if (mt == NULL)
		return true;
	if (strstr(mt, "encrypted") != NULL)
		return false;
	return strstr(mt, ".tar") != NULL || strstr(mt, "rootfs.diff") != NULL ||
	       strstr(mt, "rootfs.foreign.diff") != NULL;
}

/* ------------------------------------------------------------------ sinks */

/* Where a response body goes: a buffer (manifests, tokens) or a file
 * (blobs), hashed on the way. Bodies of non-2xx answers go to err_body. */
struct sink {
	int fd;              /* -1: memory */
	char *buf;           /* memory: the body, NUL-terminated */
	size_t len, cap;
	uint64_t max;        /* refuse bodies larger than this */
	uint64_t written;
	EVP_MD_CTX *md;
	int err;             /* why the write callback stopped the transfer */
	char err_body[ERR_BODY_MAX + 1];
	size_t err_len;
};

static int sink_init(struct sink *s, int fd, uint64_t max)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->max = max;
	s->md = EVP_MD_CTX_new();
	if (s->md == NULL || EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(s->md);
		s->md = NULL;
		return -ENOMEM;
	}
	return 0;
}

static void sink_close(struct sink *s)
{
	EVP_MD_CTX_free(s->md);
	s->md = NULL;
	free(s->buf);
	s->buf = NULL;
}

/* Forgets what was received, for a retry. */
static int sink_reset(struct sink *s)
{
	s->len = 0;
	s->written = 0;
	s->err = 0;
	s->err_len = 0;
	if (s->fd >= 0 && (ftruncate(s->fd, 0) != 0 || lseek(s->fd, 0, SEEK_SET) != 0))
		return -errno;
	return EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) == 1 ? 0 : -ENOMEM;
}

/* Takes @n bytes of a 2xx body; sets s->err and returns it on failure. */
static int sink_feed(struct sink *s, const char *data, size_t n)
{
	if (s->written + n > s->max)
		return s->err = -EFBIG;
	if (EVP_DigestUpdate(s->md, data, n) != 1)
		return s->err = -ENOMEM;
	if (s->fd >= 0) {
		for (size_t off = 0; off < n;) {
			ssize_t w = write(s->fd, data + off, n - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return s->err = -errno;
			off += (size_t)w;
		}
	} else {
		if (s->len + n + 1 > s->cap) {
			size_t cap = s->cap != 0 ? s->cap : 4096;
			char *nb;

			while (cap < s->len + n + 1)
				cap *= 2;
			nb = realloc(s->buf, cap);
			if (nb == NULL)
				return s->err = -ENOMEM;
			s->buf = nb;
			s->cap = cap;
		}
		memcpy(s->buf + s->len, data, n);
		s->len += n;
		s->buf[s->len] = '\0';
	}
	s->written += n;
	return 0;
}

/* "sha256:<hex>" of what was fed. */
static void sink_digest(struct sink *s, char out[72])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	static const char hex[] = "0123456789abcdef";

	EVP_DigestFinal_ex(s->md, md, &n);
	memcpy(out, "sha256:", 7);
	for (unsigned i = 0; i < n && i < 32; i++) {
		out[7 + 2 * i] = hex[md[i] >> 4];
		out[7 + 2 * i + 1] = hex[md[i] & 15];
	}
	out[71] = '\0';
}

/* Checks what was fed against @digest and (if >= 0) @size.
 * Errors: -EBADMSG (mismatch), -ENOTSUP (not a sha256 digest). */
static int sink_check(struct sink *s, const char *digest, int64_t size)
{
	char got[72];

	if (rt__digest_hex(digest) == NULL)
		return -ENOTSUP;
	if (size >= 0 && s->written != (uint64_t)size)
		return -EBADMSG;
	sink_digest(s, got);
	return strcmp(got, digest) == 0 ? 0 : -EBADMSG;
}

/* ------------------------------------------------------------------- HTTP */

struct pull {
	struct rt *rt;
	const struct rt_pull_opts *opts;
	const struct rt_registry *reg;
	struct rt_image_ref ref;
	CURL *curl;
	char *base;     /* registry base URL */
	char *bearer;   /* "Authorization: Bearer <token>" once known */
	bool basic;     /* send the basic credentials to the registry */
	char *dir;      /* the temporary layout */
	char *msg;      /* the detail of the first error */
	/* The last response (headers reset at each status line). */
	long status;
	char *challenge;      /* WWW-Authenticate: Bearer preferred */
	char *content_digest; /* Docker-Content-Digest */
	char *content_type;
	struct sink *sink;
	char errbuf[CURL_ERROR_SIZE];
};

__attribute__((format(printf, 2, 3))) static void set_msg(struct pull *p, const char *fmt, ...)
{
	va_list ap;

	if (p->msg != NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&p->msg, fmt, ap) < 0)
		p->msg = NULL;
	va_end(ap);
}

static char *trimmed_dup(const char *s, size_t n)
{
	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return strndup(s, n);
}

static void replace(char **dst, char *v)
{
	free(*dst);
	*dst = v;
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *user)
{
	struct pull *p = user;
	size_t n = size * nmemb;
	const char *colon;

	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* A new response (after a redirect or 100): forget the last. */
		const char *sp = memchr(data, ' ', n);

		p->status = sp != NULL ? strtol(sp + 1, NULL, 10) : 0;
		replace(&p->challenge, NULL);
		replace(&p->content_digest, NULL);
		replace(&p->content_type, NULL);
		return n;
	}
	colon = memchr(data, ':', n);
	if (colon == NULL)
		return n;
	{
		size_t klen = (size_t)(colon - data);
		const char *v = colon + 1;
		size_t vlen = n - klen - 1;

		if (klen == 16 && strncasecmp(data, "WWW-Authenticate", 16) == 0) {
			char *c = trimmed_dup(v, vlen);

			/* Prefer a Bearer challenge over any other. */
			if (c != NULL && (p->challenge == NULL ||
					  strncasecmp(p->challenge, "Bearer", 6) != 0))
				replace(&p->challenge, c);
			else
				free(c);
		} else if (klen == 21 && strncasecmp(data, "Docker-Content-Digest", 21) == 0) {
			replace(&p->content_digest, trimmed_dup(v, vlen));
		} else if (klen == 12 && strncasecmp(data, "Content-Type", 12) == 0) {
			replace(&p->content_type, trimmed_dup(v, vlen));
		}
	}
	return n;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *user)
{
	struct pull *p = user;
	struct sink *s = p->sink;
	size_t n = size * nmemb;

	if (p->status < 200 || p->status >= 300) {
		size_t k = n < ERR_BODY_MAX - s->err_len ? n : ERR_BODY_MAX - s->err_len;

		memcpy(s->err_body + s->err_len, data, k);
		s->err_len += k;
		s->err_body[s->err_len] = '\0';
		return n;
	}
	return sink_feed(s, data, n) == 0 ? n : 0;
}

static int progress_cb(void *user, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct pull *p = user;

	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	return p->opts->cancel != NULL && __atomic_load_n(p->opts->cancel, __ATOMIC_RELAXED) != 0;
}

/* The registry's own words from an error body
 * ({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}),
 * or "". */
static void error_words(const struct sink *s, char *out, size_t size)
{
	json_t *j = s->err_len > 0 ? json_loadb(s->err_body, s->err_len, 0, NULL) : NULL;
	const char *m = json_string_value(
	    json_object_get(json_array_get(json_object_get(j, "errors"), 0), "message"));

	if (m == NULL)
		m = json_string_value(json_object_get(j, "details"));
	snprintf(out, size, "%s", m != NULL ? m : "");
	json_decref(j);
}

static int curl_error(struct pull *p, CURLcode c, const char *url)
{
	const char *why = p->errbuf[0] != '\0' ? p->errbuf : curl_easy_strerror(c);

	switch (c) {
	case CURLE_ABORTED_BY_CALLBACK:
		set_msg(p, "%s", "pull cancelled");
		return -ECANCELED;
	case CURLE_WRITE_ERROR:
		if (p->sink->err == -EFBIG) {
			set_msg(p, "%s: larger than announced", url);
			return -EBADMSG;
		}
		set_msg(p, "%s: cannot store: %s", url, strerror(-p->sink->err));
		return p->sink->err != 0 ? p->sink->err : -EIO;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		set_msg(p, "bad registry URL %s: %s", url, why);
		return -EINVAL;
	default:
		/* Resolve, connect, TLS, timeouts, resets: the registry could
		 * not be reached or did not answer. */
		set_msg(p, "cannot reach registry %s: %s", p->base, why);
		return -EHOSTUNREACH;
	}
}

/* One GET into @s, no auth handling. */
static int perform(struct pull *p, const char *url, const char *accept, bool to_registry,
		   struct sink *s, long timeout_s)
{
	struct curl_slist *h = NULL, *h2;
	CURLcode c;
	int rv = 0;

	p->sink = s;
	p->status = 0;
	p->errbuf[0] = '\0';
	if (accept != NULL) {
		h2 = curl_slist_append(h, accept);
		if (h2 == NULL)
			return -ENOMEM;
		h = h2;
	}
	if (to_registry && p->bearer != NULL) {
		h2 = curl_slist_append(h, p->bearer);
		if (h2 == NULL) {
			curl_slist_free_all(h);
			return -ENOMEM;
		}
		h = h2;
	}
	curl_easy_setopt(p->curl, CURLOPT_URL, url);
	curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(p->curl, CURLOPT_TIMEOUT, timeout_s);
	if ((to_registry && p->basic) || !to_registry) {
		/* Basic credentials: to the registry after its Basic
		 * challenge, and to a token realm whenever configured. */
		curl_easy_setopt(p->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(p->curl, CURLOPT_USERNAME, p->reg->username);
		curl_easy_setopt(p->curl, CURLOPT_PASSWORD, p->reg->password);
	} else {
		curl_easy_setopt(p->curl, CURLOPT_USERNAME, NULL);
		curl_easy_setopt(p->curl, CURLOPT_PASSWORD, NULL);
	}
	c = curl_easy_perform(p->curl);
	curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
	if (c != CURLE_OK)
		rv = curl_error(p, c, url);
	return rv;
}

/* Parses one auth-param of a challenge: key="quoted" or key=token. */
static char *challenge_param(const char *ch, const char *key)
{
	size_t klen = strlen(key);
	const char *s = ch;

	/* Skip the scheme. */
	while (*s && !isspace((unsigned char)*s))
		s++;
	while (*s) {
		while (*s == ',' || isspace((unsigned char)*s))
			s++;
		if (strncasecmp(s, key, klen) == 0 && s[klen] == '=') {
			const char *v = s + klen + 1;
			char *out = malloc(strlen(v) + 1), *o = out;

			if (out == NULL)
				return NULL;
			if (*v == '"') {
				for (v++; *v && *v != '"'; v++) {
					if (*v == '\\' && v[1] != '\0')
						v++;
					*o++ = *v;
				}
			} else {
				while (*v && *v != ',' && !isspace((unsigned char)*v))
					*o++ = *v++;
			}
			*o = '\0';
			return out;
		}
		/* Skip this param (a quoted value may hold commas). */
		while (*s && *s != ',') {
			if (*s == '"') {
				for (s++; *s && *s != '"'; s++)
					if (*s == '\\' && s[1] != '\0')
						s++;
				if (*s)
					s++;
			} else {
				s++;
			}
		}
	}
	return NULL;
}

/* The token URL: realm?service=..&scope=.. (each escaped). */
static char *token_url(CURL *curl, const char *realm, const char *service, const char *scope)
{
	char *es = service != NULL ? curl_easy_escape(curl, service, 0) : NULL;
	char *esc = scope != NULL ? curl_easy_escape(curl, scope, 0) : NULL;
	char sep = strchr(realm, '?') != NULL ? '&' : '?';
	char *url;

	if ((service != NULL && es == NULL) || (scope != NULL && esc == NULL))
		url = NULL;
	else if (es != NULL && esc != NULL)
		url = rt__printf("%s%cservice=%s&scope=%s", realm, sep, es, esc);
	else if (es != NULL)
		url = rt__printf("%s%cservice=%s", realm, sep, es);
	else if (esc != NULL)
		url = rt__printf("%s%cscope=%s", realm, sep, esc);
	else
		url = strdup(realm);
	curl_free(es);
	curl_free(esc);
	return url;
}

static int fetch_token(struct pull *p, const char *challenge)
{
	char *realm = challenge_param(challenge, "realm");
	char *service = challenge_param(challenge, "service");
	char *scope = challenge_param(challenge, "scope");
	char *url = NULL, *def_scope = NULL, words[256];
	struct sink s;
	json_t *j = NULL;
	const char *tok;
	int rv;

	if (realm == NULL || *realm == '\0') {
		set_msg(p, "unauthorized: %s sent a Bearer challenge without a realm", p->base);
		rv = -EACCES;
		goto out;
	}
	if (scope == NULL) {
		def_scope = rt__printf("repository:%s:pull", p->ref.repository);
		if (def_scope == NULL) {
			rv = -ENOMEM;
			goto out;
		}
	}
	url = token_url(p->curl, realm, service, scope != NULL ? scope : def_scope);
	if (url == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	rv = sink_init(&s, -1, TOKEN_MAX);
	if (rv != 0)
		goto out;
	rv = perform(p, url, "Accept: application/json", false, &s, 60);
	if (rv == 0 && p->status != 200) {
		error_words(&s, words, sizeof(words));
		if (p->status == 401 || p->status == 403) {
			set_msg(p, "unauthorized: the token service refused %s%s%s",
				p->reg->username != NULL ? "the credentials" : "anonymous access",
				words[0] ? ": " : "", words);
			rv = -EACCES;
		} else {
			set_msg(p, "token service %s answered %ld", realm, p->status);
			rv = p->status == 404 ? -EACCES : -EIO;
		}
	}
	if (rv == 0) {
		j = json_loadb(s.buf != NULL ? s.buf : "", s.len, 0, NULL);
		tok = json_string_value(json_object_get(j, "token"));
		if (tok == NULL || *tok == '\0')
			tok = json_string_value(json_object_get(j, "access_token"));
		if (tok == NULL || *tok == '\0' || strpbrk(tok, "\r\n") != NULL) {
			set_msg(p, "token service %s sent no token", realm);
			rv = -EACCES;
		} else {
			replace(&p->bearer, rt__printf("Authorization: Bearer %s", tok));
			rv = p->bearer != NULL ? 0 : -ENOMEM;
		}
	}
	sink_close(&s);
out:
	json_decref(j);
	free(url);
	free(def_scope);
	free(scope);
	free(service);
	free(realm);
	return rv;
}

/* After a 401 from the registry: 0 when a retry may succeed. */
static int authenticate(struct pull *p, const struct sink *s)
{
	char *ch = p->challenge != NULL ? strdup(p->challenge) : NULL;
	char words[256];
	int rv;

	error_words(s, words, sizeof(words));
	if (ch != NULL && strncasecmp(ch, "Bearer", 6) == 0) {
		rv = fetch_token(p, ch);
	} else if (ch != NULL && strncasecmp(ch, "Basic", 5) == 0 && p->reg->username != NULL &&
		   !p->basic) {
		p->basic = true;
		rv = 0;
	} else {
		set_msg(p, "unauthorized: %s", p->basic ? "the registry refused the credentials"
				   : words[0] ? words
					      : "authentication required");
		rv = -EACCES;
	}
	free(ch);
	return rv;
}

/* GET @path (below /v2/<repo>/) into @s with authentication; 0 on a 2xx
 * answer, else the error for the status. @what names the object in
 * messages. */
static int registry_get(struct pull *p, const char *path, const char *accept, struct sink *s,
			const char *what, long timeout_s)
{
	char *url = rt__printf("%s/v2/%s/%s", p->base, p->ref.repository, path);
	char words[256];
	int rv;

	if (url == NULL)
		return -ENOMEM;
	for (int attempt = 0;; attempt++) {
		rv = perform(p, url, accept, true, s, timeout_s);
		if (rv != 0)
			goto out;
		if (p->status != 401 || attempt > 0)
			break;
		rv = authenticate(p, s);
		if (rv != 0)
			goto out;
		rv = sink_reset(s);
		if (rv != 0)
			goto out;
	}
	if (p->status >= 200 && p->status < 300) {
		rv = 0;
		goto out;
	}
	error_words(s, words, sizeof(words));
	switch (p->status) {
	case 401:
	case 403:
		set_msg(p, "unauthorized: %s", p->basic && p->status == 401
						   ? "the registry refused the credentials"
					       : words[0] ? words
							  : "access denied");
		rv = -EACCES;
		break;
	case 404:
		set_msg(p, "%s: not found%s%s%s", what, words[0] ? " (" : "", words,
			words[0] ? ")" : "");
		rv = -ENOENT;
		break;
	default:
		set_msg(p, "registry %s answered %ld for %s%s%s", p->base, p->status, what,
			words[0] ? ": " : "", words);
		rv = -EIO;
	}
out:
	free(url);
	return rv;
}

/* ------------------------------------------------------------------ steps */

/* Fetches a manifest or index by tag or digest into @ret (its bytes in
 * @ret_text); checks it against @digest (when known) or else the
 * registry's Docker-Content-Digest. */
static int get_manifest(struct pull *p, const char *reference, const char *digest, json_t **ret,
			char **ret_text, size_t *ret_len, char **ret_ctype)
{
	char *path = rt__printf("manifests/%s", reference);
	const char *want;
	struct sink s;
	json_t *j;
	int rv;

	if (path == NULL)
		return -ENOMEM;
	rv = sink_init(&s, -1, MANIFEST_MAX);
	if (rv != 0)
		goto out_path;
	rv = registry_get(p, path, manifest_accept, &s, p->ref.name, 60);
	if (rv != 0)
		goto out;
	want = digest != NULL ? digest : p->content_digest;
	if (want != NULL && rt__digest_hex(want) != NULL && sink_check(&s, want, -1) != 0) {
		set_msg(p, "manifest of %s does not match digest %s", p->ref.name, want);
		rv = -EBADMSG;
		goto out;
	}
	j = json_loadb(s.buf != NULL ? s.buf : "", s.len, 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		set_msg(p, "manifest of %s is not JSON", p->ref.name);
		rv = -EBADMSG;
		goto out;
	}
	*ret = j;
	*ret_text = s.buf;
	*ret_len = s.len;
	s.buf = NULL;
	*ret_ctype = p->content_type;
	p->content_type = NULL;
out:
	sink_close(&s);
out_path:
	free(path);
	return rv;
}

/* Downloads blob @digest (announced @size) to the layout. */
static int get_blob(struct pull *p, const char *digest, int64_t size, uint64_t max)
{
	const char *hex = rt__digest_hex(digest);
	char *path = NULL, *file = NULL;
	struct sink s;
	int fd, rv;

	if (hex == NULL) {
		set_msg(p, "unsupported digest %s", digest != NULL ? digest : "(none)");
		return digest != NULL && strchr(digest, ':') != NULL ? -ENOTSUP : -EBADMSG;
	}
	if (size < 0 || (uint64_t)size > max) {
		set_msg(p, "blob %s: bad size %lld", digest, (long long)size);
		return -EBADMSG;
	}
	path = rt__printf("blobs/%s", digest);
	file = rt__printf("%s/blobs/sha256/%s", p->dir, hex);
	if (path == NULL || file == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rv = -errno;
		set_msg(p, "cannot create %s: %s", file, strerror(errno));
		goto out;
	}
	rv = sink_init(&s, fd, (uint64_t)size);
	if (rv == 0) {
		rv = registry_get(p, path, NULL, &s, digest, 0);
		if (rv == 0 && sink_check(&s, digest, size) != 0) {
			set_msg(p, "blob %s does not match its digest or size", digest);
			rv = -EBADMSG;
		}
		sink_close(&s);
	}
	if (close(fd) != 0 && rv == 0)
		rv = -errno;
out:
	free(file);
	free(path);
	return rv;
}

static int write_layout(struct pull *p, const char *mdigest, const char *mtype, const char *text,
			size_t len)
{
	char *f = NULL;
	json_t *index = NULL;
	int rv;

	f = rt__printf("%s/blobs/sha256", p->dir);
	if (f == NULL)
		return -ENOMEM;
	rv = rt__mkdir_p(f, 0700);
	free(f);
	if (rv != 0)
		return rv;
	f = rt__printf("%s/blobs/sha256/%s", p->dir, rt__digest_hex(mdigest));
	if (f == NULL)
		return -ENOMEM;
	rv = rt__write_file_atomic(f, text, len, 0644);
	free(f);
	if (rv != 0)
		return rv;
	f = rt__printf("%s/oci-layout", p->dir);
	if (f == NULL)
		return -ENOMEM;
	rv = rt__write_file_atomic(f, "{\"imageLayoutVersion\":\"1.0.0\"}", 30, 0644);
	free(f);
	if (rv != 0)
		return rv;
	index = json_pack("{si s[{ss ss sI}]}", "schemaVersion", 2, "manifests", "mediaType",
			  mtype, "digest", mdigest, "size", (json_int_t)len);
	f = rt__printf("%s/index.json", p->dir);
	rv = index == NULL || f == NULL ? -ENOMEM : rt__write_json_atomic(f, index);
	free(f);
	json_decref(index);
	return rv;
}

/* Is the layer with diff id @diff_id unpacked already? */
static bool have_layer(struct pull *p, const char *diff_id)
{
	const char *hex = rt__digest_hex(diff_id);
	char *d = hex != NULL ? rt__printf("%s/images/layers/sha256/%s", p->rt->state_dir, hex)
			      : NULL;
	struct stat st;
	bool ok = d != NULL && stat(d, &st) == 0 && S_ISDIR(st.st_mode);

	free(d);
	return ok;
}

static int64_t desc_size(const json_t *desc)
{
	const json_t *s = json_object_get(desc, "size");

	return json_is_integer(s) ? (int64_t)json_integer_value(s) : -1;
}

static int pull_run(struct pull *p, char **ret_id)
{
	json_t *m = NULL, *cfg = NULL, *layers, *diffs, *v;
	char *text = NULL, *ctype = NULL, *digest = NULL, *cfg_path = NULL, *imsg = NULL;
	const char *reference = p->ref.digest != NULL ? p->ref.digest : p->ref.tag;
	size_t len = 0, i, skipped = 0;
	enum mtype t;
	int rv;

	rv = get_manifest(p, reference, p->ref.digest, &m, &text, &len, &ctype);
	if (rv != 0)
		goto out;
	for (int depth = 0;; depth++) {
		const json_t *d;

		t = classify(m, ctype);
		if (t != MTYPE_INDEX)
			break;
		d = depth < INDEX_DEPTH_MAX ? pick_manifest(m, "linux", host_arch(), NULL) : NULL;
		if (d == NULL) {
			set_msg(p, "no matching manifest for linux/%s in %s", host_arch(),
				p->ref.name);
			rv = -ENOTSUP;
			goto out;
		}
		if (rt__digest_hex(json_string_value(json_object_get(d, "digest"))) == NULL) {
			set_msg(p, "%s: unsupported digest %s in the index", p->ref.name,
				json_string_value(json_object_get(d, "digest")));
			rv = -ENOTSUP;
			goto out;
		}
		replace(&digest, strdup(json_string_value(json_object_get(d, "digest"))));
		json_decref(m);
		m = NULL;
		free(text);
		text = NULL;
		free(ctype);
		ctype = NULL;
		if (digest == NULL) {
			rv = -ENOMEM;
			goto out;
		}
		rv = get_manifest(p, digest, digest, &m, &text, &len, &ctype);
		if (rv != 0)
			goto out;
	}
	if (t == MTYPE_SCHEMA1) {
		set_msg(p, "%s uses the deprecated schema 1 manifest format", p->ref.name);
		rv = -ENOTSUP;
		goto out;
	}
	if (t != MTYPE_MANIFEST) {
		set_msg(p, "%s: unsupported manifest type %s", p->ref.name,
			ctype != NULL ? ctype : "(none)");
		rv = -ENOTSUP;
		goto out;
	}
	if (digest == NULL) {
		char hex[65];

		rt__sha256_hex(text, len, hex);
		digest = rt__printf("sha256:%s", hex);
		if (digest == NULL) {
			rv = -ENOMEM;
			goto out;
		}
	}
	rv = write_layout(p, digest,
			  json_string_value(json_object_get(m, "mediaType")) != NULL
			      ? json_string_value(json_object_get(m, "mediaType"))
			      : MT_OCI_MANIFEST,
			  text, len);
	if (rv != 0) {
		set_msg(p, "cannot write %s: %s", p->dir, strerror(-rv));
		goto out;
	}
	{
		const json_t *c = json_object_get(m, "config");
		const char *cd = json_string_value(json_object_get(c, "digest"));
		const char *ct = json_string_value(json_object_get(c, "mediaType"));

		/* Artifacts (Helm charts, signatures...) use other config types. */
		if (ct != NULL && strcmp(ct, "application/vnd.oci.image.config.v1+json") != 0 &&
		    strcmp(ct, "application/vnd.docker.container.image.v1+json") != 0) {
			set_msg(p, "%s is not a container image (config type %s)", p->ref.name,
				ct);
			rv = -ENOTSUP;
			goto out;
		}
		rv = get_blob(p, cd, desc_size(c), CONFIG_MAX);
		if (rv != 0)
			goto out;
		cfg_path = rt__printf("%s/blobs/sha256/%s", p->dir, rt__digest_hex(cd));
		cfg = cfg_path != NULL ? json_load_file(cfg_path, 0, NULL) : NULL;
		if (cfg == NULL) {
			set_msg(p, "config of %s is not JSON", p->ref.name);
			rv = cfg_path == NULL ? -ENOMEM : -EBADMSG;
			goto out;
		}
	}
	layers = json_object_get(m, "layers");
	diffs = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
	if (!json_is_array(layers) || json_array_size(layers) != json_array_size(diffs)) {
		set_msg(p, "%s: the manifest's layers do not match the config's diff_ids",
			p->ref.name);
		rv = -EBADMSG;
		goto out;
	}
	json_array_foreach (layers, i, v) {
		const char *mt = json_string_value(json_object_get(v, "mediaType"));

		if (!layer_type_ok(mt)) {
			set_msg(p, "%s: unsupported layer type %s", p->ref.name, mt);
			rv = -ENOTSUP;
			goto out;
		}
		if (have_layer(p, json_string_value(json_array_get(diffs, i)))) {
			skipped++;
			continue;
		}
		rv = get_blob(p, json_string_value(json_object_get(v, "digest")), desc_size(v),
			      UINT64_MAX >> 1);
		if (rv != 0)
			goto out;
	}
	rv = rt_image_import(p->rt, p->dir, p->ref.name, ret_id, &imsg);
	if (rv != 0 && skipped > 0) {
		/* A layer we skipped may have been removed meanwhile (image
		 * removal runs its layer GC under the store's lock): fetch the
		 * skipped ones and import again. */
		free(imsg);
		imsg = NULL;
		json_array_foreach (layers, i, v) {
			const char *ld = json_string_value(json_object_get(v, "digest"));
			char *f = rt__printf("%s/blobs/sha256/%s", p->dir, rt__digest_hex(ld));

			rv = f == NULL ? -ENOMEM
			     : access(f, F_OK) == 0
				 ? 0
				 : get_blob(p, ld, desc_size(v), UINT64_MAX >> 1);
			free(f);
			if (rv != 0)
				goto out;
		}
		rv = rt_image_import(p->rt, p->dir, p->ref.name, ret_id, &imsg);
	}
	if (rv != 0)
		set_msg(p, "%s", imsg != NULL ? imsg : strerror(-rv));
out:
	free(imsg);
	json_decref(cfg);
	free(cfg_path);
	free(digest);
	free(ctype);
	free(text);
	json_decref(m);
	return rv;
}

static int curl_setup(struct pull *p)
{
	long connect_s = p->opts->connect_timeout_s != 0 ? p->opts->connect_timeout_s : 10;
	long stall_s = p->opts->stall_timeout_s != 0 ? p->opts->stall_timeout_s : 60;

	p->curl = curl_easy_init();
	if (p->curl == NULL)
		return -ENOMEM;
#if LIBCURL_VERSION_NUM >= 0x075500
	if (curl_easy_setopt(p->curl, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(p->curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK)
		return -ENOMEM;
#else
	curl_easy_setopt(p->curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	curl_easy_setopt(p->curl, CURLOPT_REDIR_PROTOCOLS,
			 (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(p->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(p->curl, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(p->curl, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(p->curl, CURLOPT_CONNECTTIMEOUT, connect_s);
	curl_easy_setopt(p->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(p->curl, CURLOPT_LOW_SPEED_TIME, stall_s);
	curl_easy_setopt(p->curl, CURLOPT_USERAGENT, "capstan-node");
	curl_easy_setopt(p->curl, CURLOPT_ERRORBUFFER, p->errbuf);
	curl_easy_setopt(p->curl, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(p->curl, CURLOPT_HEADERDATA, p);
	curl_easy_setopt(p->curl, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(p->curl, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(p->curl, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(p->curl, CURLOPT_XFERINFODATA, p);
	curl_easy_setopt(p->curl, CURLOPT_NOPROGRESS, 0L);
	/* Blobs are compressed already; manifests are small. */
	curl_easy_setopt(p->curl, CURLOPT_ACCEPT_ENCODING, NULL);
	if (p->reg->ca_file != NULL)
		curl_easy_setopt(p->curl, CURLOPT_CAINFO, p->reg->ca_file);
	return 0;
}

int rt_image_pull(struct rt *rt, const struct rt_pull_opts *opts, const char *ref,
		  char **ret_id, char **ret_msg)
{
	static const struct rt_pull_opts none = {0};
	struct pull p = {.rt = rt, .opts = opts != NULL ? opts : &none};
	char *tmp = NULL;
	bool global = false;
	int rv;

	rv = rt_image_ref_parse(ref, &p.ref);
	if (rv != 0) {
		if (rv == -EINVAL)
			set_msg(&p, "invalid reference format");
		goto out;
	}
	p.reg = find_registry(p.opts, p.ref.domain);
	if (p.reg == NULL) {
		set_msg(&p, "%s: not found (no registry is configured for %s)", p.ref.name,
			p.ref.domain);
		rv = -ENOENT;
		goto out;
	}
	p.base = registry_base(p.reg);
	tmp = rt__printf("%s/images/tmp", rt->state_dir);
	if (p.base == NULL || tmp == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	rv = rt__mkdir_p(tmp, 0700);
	if (rv != 0) {
		set_msg(&p, "cannot create %s: %s", tmp, strerror(-rv));
		goto out;
	}
	p.dir = rt__printf("%s/pull-XXXXXX", tmp);
	if (p.dir == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	if (mkdtemp(p.dir) == NULL) {
		rv = -errno;
		set_msg(&p, "cannot create %s: %s", p.dir, strerror(errno));
		free(p.dir);
		p.dir = NULL;
		goto out;
	}
	/* Reference counted and thread-safe in the libcurl we require. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		rv = -ENOMEM;
		goto out;
	}
	global = true;
	rv = curl_setup(&p);
	if (rv == 0)
		rv = pull_run(&p, ret_id);
out:
	if (p.curl != NULL)
		curl_easy_cleanup(p.curl);
	if (global)
		curl_global_cleanup();
	if (p.dir != NULL) {
		rt__rm_rf(p.dir);
		free(p.dir);
	}
	if (rv != 0 && ret_msg != NULL) {
		*ret_msg = rt__printf("failed to pull image \"%s\": %s", ref,
				      p.msg != NULL ? p.msg : strerror(-rv));
	}
	free(tmp);
	free(p.msg);
	free(p.base);
	free(p.bearer);
	free(p.challenge);
	free(p.content_digest);
	free(p.content_type);
	rt_image_ref_clear(&p.ref);
	return rv;
}
