/* Projected volumes: service-account tokens, volume payloads and the
 * atomic writer (see projected.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "src/node/agent.h"
#include "src/node/projected.h"

#define DATA_LINK "..data"
#define DATA_TMP "..data_tmp"

static const char *jstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static void wipe_free(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* ------------------------------------------------------------ tokens */

void projected_tokens_clear(struct projected_tokens *t)
{
	size_t i;

	for (i = 0; t->v != NULL && i < t->n; i++) {
		free(t->v[i].volume);
		free(t->v[i].audience);
		wipe_free(t->v[i].token);
	}
	free(t->v);
	free(t->service_account);
	memset(t, 0, sizeof(*t));
}

int projected_tokens_init(struct projected_tokens *t, const json_t *pod)
{
	const json_t *spec = json_object_get(pod, "spec"), *vol, *src;
	const char *sa = jstr(spec, "serviceAccountName"), *env;
	size_t i, j, n = 0;

	memset(t, 0, sizeof(*t));
	json_array_foreach (json_object_get(spec, "volumes"), i, vol)
		json_array_foreach (json_object_get(json_object_get(vol, "projected"), "sources"),
				    j, src)
			if (json_is_object(json_object_get(src, "serviceAccountToken")))
				n++;
	/* The ServiceAccount admission sets the name; a pod that skipped it
	 * runs as "default", as the kubelet assumes. */
	t->service_account = strdup(sa != NULL && sa[0] != '\0' ? sa : "default");
	t->v = calloc(n + 1, sizeof(*t->v));
	if (t->service_account == NULL || t->v == NULL)
		goto oom;
	json_array_foreach (json_object_get(spec, "volumes"), i, vol) {
		const char *name = jstr(vol, "name");
		json_array_foreach (json_object_get(json_object_get(vol, "projected"), "sources"),
				    j, src) {
			const json_t *s = json_object_get(src, "serviceAccountToken");
			struct projected_token *tk = &t->v[t->n];
			const char *aud = jstr(s, "audience");
			json_int_t exp = json_integer_value(json_object_get(s, "expirationSeconds"));
			if (!json_is_object(s) || name == NULL)
				continue;
			tk->volume = strdup(name);
			tk->source = j;
			tk->expiration_s = exp > 0 ? (int64_t)exp : PROJECTED_DEFAULT_EXPIRY_S;
			t->n++;
			if (tk->volume == NULL)
				goto oom;
			if (aud != NULL && aud[0] != '\0' && (tk->audience = strdup(aud)) == NULL)
				goto oom;
		}
	}
	env = getenv(PROJECTED_REFRESH_ENV);
	if (env != NULL && env[0] != '\0')
		t->refresh_override_ms = strtoull(env, NULL, 10);
	return 0;
oom:
	projected_tokens_clear(t);
	return -ENOMEM;
}

bool projected_tokens_ready(const struct projected_tokens *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (t->v[i].token == NULL)
			return false;
	return true;
}

json_t *projected_tokens_json(const struct projected_tokens *t)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; o != NULL && i < t->n; i++) {
		const struct projected_token *tk = &t->v[i];
		json_t *vol;
		char idx[24];
		if (tk->token == NULL)
			continue;
		vol = json_object_get(o, tk->volume);
		if (vol == NULL) {
			vol = json_object();
			if (json_object_set_new(o, tk->volume, vol) != 0)
				goto oom;
		}
		snprintf(idx, sizeof(idx), "%zu", tk->source);
		if (json_object_set_new(vol, idx, json_string(tk->token)) != 0)
			goto oom;
	}
	return o;
oom:
	json_decref(o);
	return NULL;
}

int projected_token_path(const struct projected_tokens *t, const char *ns, char *buf, size_t len)
{
	int n = snprintf(buf, len, "/api/v1/namespaces/%s/serviceaccounts/%s/token", ns,
			 t->service_account);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

json_t *projected_token_request(const struct projected_token *tk, const char *pod_name,
				const char *pod_uid)
{
	json_t *body = json_pack("{s:s, s:s, s:{s:I, s:{s:s, s:s, s:s, s:s}}}", "kind",
				 "TokenRequest", "apiVersion", "authentication.k8s.io/v1", "spec",
				 "expirationSeconds", (json_int_t)tk->expiration_s,
				 "boundObjectRef", "kind", "Pod", "apiVersion", "v1", "name",
				 pod_name, "uid", pod_uid);

	if (body != NULL && tk->audience != NULL &&
	    json_object_set_new(json_object_get(body, "spec"), "audiences",
				json_pack("[s]", tk->audience)) != 0) {
		json_decref(body);
		return NULL;
	}
	return body;
}

uint64_t projected_refresh_delay_ms(int64_t lifetime_s, int64_t remaining_s)
{
	int64_t elapsed_ms, due_ms;

	if (lifetime_s <= 0)
		lifetime_s = PROJECTED_DEFAULT_EXPIRY_S;
	if (remaining_s > lifetime_s)
		remaining_s = lifetime_s; /* clocks apart: count from now */
	elapsed_ms = (lifetime_s - remaining_s) * 1000;
	due_ms = lifetime_s * 800; /* 80% of the lifetime, in ms */
	if (due_ms > (int64_t)PROJECTED_MAX_REFRESH_MS)
		due_ms = (int64_t)PROJECTED_MAX_REFRESH_MS;
	due_ms -= elapsed_ms;
	return due_ms < 1000 ? 1000 : (uint64_t)due_ms;
}

/* Seconds since the epoch of an RFC 3339 UTC time "2006-01-02T15:04:05Z". */
static int parse_time(const char *s, int64_t *ret)
{
	struct tm tm;
	const char *end;

	if (s == NULL)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL)
		return -EINVAL;
	*ret = (int64_t)timegm(&tm);
	return 0;
}

int projected_token_set(struct projected_token *tk, const json_t *resp, int64_t now_wall_s,
			uint64_t now_ms, uint64_t override_ms)
{
	const json_t *status = json_object_get(resp, "status");
	const char *token = jstr(status, "token");
	json_int_t lifetime = json_integer_value(
		json_object_get(json_object_get(resp, "spec"), "expirationSeconds"));
	int64_t exp, remaining;
	char *copy;

	if (token == NULL || token[0] == '\0')
		return -EINVAL;
	copy = strdup(token);
	if (copy == NULL)
		return -ENOMEM;
	/* The server may shorten the lifetime asked for: its answer wins. */
	if (lifetime <= 0)
		lifetime = tk->expiration_s;
	if (parse_time(jstr(status, "expirationTimestamp"), &exp) == 0)
		remaining = exp - now_wall_s;
	else
		remaining = lifetime;
	wipe_free(tk->token);
	tk->token = copy;
	tk->backoff_ms = 0;
	tk->failures = 0;
	tk->refresh_ms = now_ms + (override_ms > 0 ? override_ms
						   : projected_refresh_delay_ms(lifetime, remaining));
	return 0;
}

void projected_token_failed(struct projected_token *tk, uint64_t now_ms)
{
	if (tk->backoff_ms == 0)
		tk->backoff_ms = PROJECTED_RETRY_BASE_MS;
	else if (tk->backoff_ms * 2 <= PROJECTED_RETRY_MAX_MS)
		tk->backoff_ms *= 2;
	else
		tk->backoff_ms = PROJECTED_RETRY_MAX_MS;
	tk->failures++;
	tk->refresh_ms = now_ms + tk->backoff_ms;
}

uint64_t projected_tokens_next(const struct projected_tokens *t)
{
	uint64_t next = UINT64_MAX;
	size_t i;

	for (i = 0; i < t->n; i++)
		if (!t->v[i].in_flight && t->v[i].refresh_ms < next)
			next = t->v[i].refresh_ms;
	return next;
}

json_t *projected_event(const json_t *pod, const char *node, const char *reason,
			const char *message, int64_t now_wall_s)
{
	const json_t *meta = json_object_get(pod, "metadata");
	const char *name = jstr(meta, "name"), *ns = jstr(meta, "namespace"),
		   *uid = jstr(meta, "uid");
	static unsigned long long seq; /* the loop thread only */
	char ev_name[320], ts[40];
	time_t t = (time_t)now_wall_s;
	struct tm tm;

	if (name == NULL || ns == NULL || uid == NULL)
		return NULL;
	/* Kubernetes names events <object>.<unique hex>. */
	snprintf(ev_name, sizeof(ev_name), "%.253s.%llx", name,
		 (unsigned long long)now_wall_s * 1000ull + seq++ % 1000);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
	return json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s}, s:s, s:s, "
			 "s:s, s:{s:s, s:s}, s:s, s:s, s:i, s:s, s:s}",
			 "kind", "Event", "apiVersion", "v1", "metadata", "name", ev_name,
			 "namespace", ns, "involvedObject", "kind", "Pod", "apiVersion", "v1",
			 "name", name, "namespace", ns, "uid", uid, "reason", reason, "message",
			 message, "type", "Warning", "source", "component", "kubelet", "host",
			 node, "firstTimestamp", ts, "lastTimestamp", ts, "count", 1,
			 "reportingComponent", "kubelet", "reportingInstance", node);
}

/* ------------------------------------------------------------ payload */

void projected_payload_clear(struct projected_payload *p)
{
	size_t i;

	for (i = 0; p->v != NULL && i < p->n; i++) {
		free(p->v[i].path);
		if (p->v[i].data != NULL)
			OPENSSL_cleanse(p->v[i].data, p->v[i].len);
		free(p->v[i].data);
	}
	free(p->v);
	memset(p, 0, sizeof(*p));
}

/* Kubernetes' rules for payload paths: relative, no ".." element, and
 * not starting with ".." (names of the writer's own entries). */
static bool path_ok(const char *path)
{
	const char *s = path;

	if (path[0] == '\0' || path[0] == '/' || strncmp(path, "..", 2) == 0)
		return false;
	while (*s != '\0') {
		size_t n = strcspn(s, "/");
		if (n == 0 || (n == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		s += n;
		if (*s == '/')
			s++;
	}
	return path[strlen(path) - 1] != '/';
}

/* Takes @data (malloc'd, @len bytes); a later file of the same path
 * replaces an earlier one, as sources overlay in Kubernetes. */
static int payload_add(struct projected_payload *p, const char *path, char *data, size_t len,
		       mode_t mode)
{
	struct projected_file *nv;
	size_t i;
	char *copy;

	for (i = 0; i < p->n; i++) {
		if (strcmp(p->v[i].path, path) == 0) {
			OPENSSL_cleanse(p->v[i].data, p->v[i].len);
			free(p->v[i].data);
			p->v[i].data = data;
			p->v[i].len = len;
			p->v[i].mode = mode;
			return 0;
		}
	}
	copy = strdup(path);
	nv = realloc(p->v, (p->n + 1) * sizeof(*nv));
	if (copy == NULL || nv == NULL) {
		free(copy);
		free(data);
		if (nv != NULL)
			p->v = nv;
		return -ENOMEM;
	}
	p->v = nv;
	p->v[p->n++] = (struct projected_file){copy, data, len, mode};
	return 0;
}

static char *b64_decode(const char *in, size_t *ret_len)
{
	size_t n = strlen(in), pad = 0;
	unsigned char *out = malloc(n / 4 * 3 + 4);
	int len;

	if (out == NULL)
		return NULL;
	len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (len < 0) {
		free(out);
		return NULL;
	}
	while (n > 0 && in[n - 1] == '=') {
		pad++;
		n--;
	}
	*ret_len = (size_t)len - pad;
	out[*ret_len] = '\0';
	return (char *)out;
}

static char *dup_len(const char *s, size_t *ret_len)
{
	char *c = strdup(s);

	if (c != NULL)
		*ret_len = strlen(s);
	return c;
}

/* The bytes of key @key of ConfigMap/Secret @obj (malloc'd), or NULL with
 * *@oom telling why. */
static char *obj_value(const json_t *obj, bool secret, const char *key, size_t *ret_len,
		       bool *oom)
{
	const char *v = jstr(json_object_get(obj, "data"), key);
	char *r;

	*oom = false;
	if (v == NULL) {
		v = jstr(json_object_get(obj, "binaryData"), key);
		secret = true; /* base64 too */
	}
	if (v == NULL)
		return NULL;
	r = secret ? b64_decode(v, ret_len) : dup_len(v, ret_len);
	*oom = r == NULL;
	return r;
}

/* A configMap or secret source @src into @p. */
static int add_keys(const struct podspec_ctx *x, const json_t *src, bool secret, mode_t mode,
		    struct projected_payload *p, char *why, size_t why_len)
{
	const char *name = jstr(src, "name");
	const json_t *obj = json_object_get(secret ? x->secrets : x->configmaps,
					    name != NULL ? name : "");
	const json_t *items = json_object_get(src, "items"), *it;
	bool optional = json_is_true(json_object_get(src, "optional")), oom;
	const char *k, *members[2] = {"data", "binaryData"};
	json_t *v;
	size_t i, len;
	int rv, m;

	if (!json_is_object(obj)) {
		if (optional)
			return 0;
		snprintf(why, why_len, "%s \"%s\" not found", secret ? "secret" : "configmap",
			 name != NULL ? name : "");
		return -ENOENT;
	}
	if (json_array_size(items) > 0) {
		json_array_foreach ((json_t *)items, i, it) {
			const char *key = jstr(it, "key"), *path = jstr(it, "path");
			json_int_t im = json_integer_value(json_object_get(it, "mode"));
			char *val = key != NULL ? obj_value(obj, secret, key, &len, &oom) : NULL;
			if (val == NULL) {
				if (oom)
					return -ENOMEM;
				if (optional)
					continue;
				snprintf(why, why_len, "couldn't find key %s in %s %s",
					 key != NULL ? key : "?", secret ? "Secret" : "ConfigMap",
					 name);
				return -ENOENT;
			}
			if (path == NULL || !path_ok(path)) {
				free(val);
				snprintf(why, why_len, "invalid path \"%s\"",
					 path != NULL ? path : "");
				return -EINVAL;
			}
			rv = payload_add(p, path, val, len, im > 0 ? (mode_t)im : mode);
			if (rv != 0)
				return rv;
		}
		return 0;
	}
	for (m = 0; m < 2; m++) {
		json_object_foreach ((json_t *)json_object_get(obj, members[m]), k, v) {
			char *val = obj_value(obj, secret, k, &len, &oom);
			(void)v;
			if (val == NULL) {
				if (oom)
					return -ENOMEM;
				continue;
			}
			if (!path_ok(k)) {
				free(val);
				continue; /* keys are validated by the API server */
			}
			rv = payload_add(p, k, val, len, mode);
			if (rv != 0)
				return rv;
		}
	}
	return 0;
}

/* A Go %q of @s appended to @out (the escapes the kubelet's labels file
 * shows). */
static int quote(const char *s, char **out, size_t *out_len, size_t *cap)
{
	for (;; s++) {
		char esc[8];
		size_t n;
		unsigned char c = (unsigned char)*s;
		if (*cap - *out_len < 8) {
			char *nb = realloc(*out, *cap * 2 + 16);
			if (nb == NULL)
				return -ENOMEM;
			*out = nb;
			*cap = *cap * 2 + 16;
		}
		if (c == '\0')
			break;
		if (c == '"' || c == '\\')
			n = (size_t)snprintf(esc, sizeof(esc), "\\%c", c);
		else if (c == '\n')
			n = (size_t)snprintf(esc, sizeof(esc), "\\n");
		else if (c == '\t')
			n = (size_t)snprintf(esc, sizeof(esc), "\\t");
		else if (c == '\r')
			n = (size_t)snprintf(esc, sizeof(esc), "\\r");
		else if (c < 0x20 || c == 0x7f)
			n = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", c);
		else {
			esc[0] = (char)c;
			n = 1;
		}
		memcpy(*out + *out_len, esc, n);
		*out_len += n;
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A labels/annotations map as the kubelet writes it: sorted lines
 * key="value", no newline after the last. Malloc'd. */
static char *format_map(const json_t *map, size_t *ret_len)
{
	size_t n = json_object_size(map), i = 0, len = 0, cap = 64;
	const char **keys = calloc(n + 1, sizeof(*keys));
	char *out = malloc(cap);
	const char *k;
	json_t *v;

	if (keys == NULL || out == NULL)
		goto oom;
	json_object_foreach ((json_t *)map, k, v)
		keys[i++] = k;
	qsort(keys, i, sizeof(*keys), cmp_str);
	n = i;
	for (i = 0; i < n; i++) {
		size_t kl = strlen(keys[i]);
		const char *val = jstr(map, keys[i]);
		while (cap - len < kl + 4) {
			char *nb = realloc(out, cap * 2);
			if (nb == NULL)
				goto oom;
			out = nb;
			cap *= 2;
		}
		if (i > 0)
			out[len++] = '\n';
		memcpy(out + len, keys[i], kl);
		len += kl;
		out[len++] = '=';
		out[len++] = '"';
		if (quote(val != NULL ? val : "", &out, &len, &cap) != 0)
			goto oom;
		out[len++] = '"';
	}
	out[len] = '\0';
	free(keys);
	*ret_len = len;
	return out;
oom:
	free(keys);
	free(out);
	return NULL;
}

/* The value of downward API field @path of the pod (malloc'd), NULL
 * with -EINVAL in *@err for a field not supported, -ENOMEM on OOM. */
static char *field_value(const json_t *pod, const char *path, size_t *ret_len, int *err)
{
	const json_t *meta = json_object_get(pod, "metadata");
	const char *v = NULL;
	char *r;

	*err = 0;
	if (strcmp(path, "metadata.name") == 0)
		v = jstr(meta, "name");
	else if (strcmp(path, "metadata.namespace") == 0)
		v = jstr(meta, "namespace");
	else if (strcmp(path, "metadata.uid") == 0)
		v = jstr(meta, "uid");
	else if (strcmp(path, "metadata.labels") == 0 || strcmp(path, "metadata.annotations") == 0) {
		r = format_map(json_object_get(meta, path[9] == 'l' ? "labels" : "annotations"),
			       ret_len);
		if (r == NULL)
			*err = -ENOMEM;
		return r;
	} else if (strncmp(path, "metadata.labels['", 17) == 0 ||
		   strncmp(path, "metadata.annotations['", 22) == 0) {
		bool labels = path[9] == 'l';
		const char *k = path + (labels ? 17 : 22);
		size_t n = strcspn(k, "'");
		char *key = strndup(k, n);
		if (key == NULL) {
			*err = -ENOMEM;
			return NULL;
		}
		v = jstr(json_object_get(meta, labels ? "labels" : "annotations"), key);
		free(key);
		if (v == NULL)
			v = ""; /* an absent key gives an empty file */
	} else {
		*err = -EINVAL;
		return NULL;
	}
	r = dup_len(v != NULL ? v : "", ret_len);
	if (r == NULL)
		*err = -ENOMEM;
	return r;
}

static int add_downward(const struct podspec_ctx *x, const json_t *src, mode_t mode,
			struct projected_payload *p, char *why, size_t why_len)
{
	const json_t *it;
	size_t i, len;
	int rv;

	json_array_foreach (json_object_get(src, "items"), i, it) {
		const char *path = jstr(it, "path");
		const char *field = jstr(json_object_get(it, "fieldRef"), "fieldPath");
		json_int_t im = json_integer_value(json_object_get(it, "mode"));
		char *val;
		if (path == NULL || !path_ok(path)) {
			snprintf(why, why_len, "invalid path \"%s\"", path != NULL ? path : "");
			return -EINVAL;
		}
		if (field == NULL) {
			/* resourceFieldRef: not supported yet. */
			snprintf(why, why_len, "downward API item %s: only fieldRef is supported",
				 path);
			return -EINVAL;
		}
		val = field_value(x->pod, field, &len, &rv);
		if (val == NULL) {
			if (rv == -EINVAL)
				snprintf(why, why_len, "downward API field %s is not supported",
					 field);
			return rv;
		}
		rv = payload_add(p, path, val, len, im > 0 ? (mode_t)im : mode);
		if (rv != 0)
			return rv;
	}
	return 0;
}

static int add_token(const struct podspec_ctx *x, const json_t *vol_name, size_t idx,
		     const json_t *src, mode_t mode, struct projected_payload *p, char *why,
		     size_t why_len)
{
	const char *path = jstr(src, "path");
	const json_t *toks = json_object_get(json_object_get(x->pod, PROJECTED_TOKENS_MEMBER),
					     json_string_value(vol_name));
	const char *tok;
	char key[24];
	size_t len;
	char *val;

	if (path == NULL || !path_ok(path)) {
		snprintf(why, why_len, "invalid path \"%s\"", path != NULL ? path : "");
		return -EINVAL;
	}
	snprintf(key, sizeof(key), "%zu", idx);
	tok = jstr(toks, key);
	if (tok == NULL) {
		snprintf(why, why_len, "no service-account token yet for volume %s",
			 json_string_value(vol_name));
		return -ENOENT;
	}
	val = dup_len(tok, &len);
	if (val == NULL)
		return -ENOMEM;
	return payload_add(p, path, val, len, mode);
}

int projected_payload_build(const struct podspec_ctx *x, const json_t *vol,
			    struct projected_payload *ret, char *why, size_t why_len)
{
	struct projected_payload p = {0};
	const json_t *proj = json_object_get(vol, "projected"), *src;
	const json_t *dw = json_object_get(vol, "downwardAPI");
	json_int_t dm;
	mode_t mode;
	size_t i;
	int rv = 0;

	dm = json_integer_value(json_object_get(proj != NULL ? proj : dw, "defaultMode"));
	mode = dm > 0 ? (mode_t)dm : 0644;
	if (proj == NULL && dw != NULL) {
		rv = add_downward(x, dw, mode, &p, why, why_len);
	} else {
		json_array_foreach (json_object_get(proj, "sources"), i, src) {
			if (json_object_get(src, "configMap") != NULL)
				rv = add_keys(x, json_object_get(src, "configMap"), false, mode, &p,
					      why, why_len);
			else if (json_object_get(src, "secret") != NULL)
				rv = add_keys(x, json_object_get(src, "secret"), true, mode, &p, why,
					      why_len);
			else if (json_object_get(src, "downwardAPI") != NULL)
				rv = add_downward(x, json_object_get(src, "downwardAPI"), mode, &p,
						  why, why_len);
			else if (json_object_get(src, "serviceAccountToken") != NULL)
				rv = add_token(x, json_object_get(vol, "name"), i,
					       json_object_get(src, "serviceAccountToken"), mode, &p,
					       why, why_len);
			if (rv != 0)
				break;
		}
	}
	if (rv != 0) {
		if (rv == -ENOMEM)
			snprintf(why, why_len, "out of memory");
		projected_payload_clear(&p);
		return rv;
	}
	*ret = p;
	return 0;
}

/* ------------------------------------------------------------ atomic writer */

static int join(char *buf, size_t len, const char *a, const char *b)
{
	int n = snprintf(buf, len, "%s/%s", a, b);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The first element of @path into @buf. */
static void top_name(const char *path, char *buf, size_t len)
{
	snprintf(buf, len, "%.*s", (int)strcspn(path, "/"), path);
}

static int write_one(const char *path, const char *data, size_t len, mode_t mode)
{
	size_t done = 0;
	int fd, rv = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rv = -errno;
			break;
		}
		done += (size_t)n;
	}
	/* The umask must not narrow the mode asked for. */
	if (rv == 0 && fchmod(fd, mode & 07777) != 0)
		rv = -errno;
	if (close(fd) != 0 && rv == 0)
		rv = -errno;
	return rv;
}

/* mkdir -p of the parents of @rel under @base (0755). */
static int make_parents(const char *base, const char *rel)
{
	char path[PATH_MAX];
	size_t bl = strlen(base), i;
	int rv = join(path, sizeof(path), base, rel);

	if (rv != 0)
		return rv;
	for (i = bl + 1; path[i] != '\0'; i++) {
		if (path[i] != '/')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			return -errno;
		path[i] = '/';
	}
	return 0;
}

/* Regular files under @path, recursively (-1 on error). */
static long count_files(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	long n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL && n >= 0) {
		char sub[PATH_MAX];
		struct stat st;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (join(sub, sizeof(sub), path, e->d_name) != 0 || lstat(sub, &st) != 0) {
			n = -1;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			long m = count_files(sub);
			n = m < 0 ? -1 : n + m;
		} else {
			n++;
		}
	}
	closedir(d);
	return n;
}

static bool link_is(const char *path, const char *target)
{
	char buf[PATH_MAX];
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);

	if (n < 0)
		return false;
	buf[n] = '\0';
	return strcmp(buf, target) == 0;
}

/* Does @dir show exactly @p already (contents, modes, links)? */
static bool unchanged(const char *dir, const struct projected_payload *p)
{
	char data_dir[PATH_MAX], path[PATH_MAX], name[NAME_MAX + 1], target[PATH_MAX];
	size_t i;

	if (join(data_dir, sizeof(data_dir), dir, DATA_LINK) != 0 ||
	    count_files(data_dir) != (long)p->n)
		return false;
	for (i = 0; i < p->n; i++) {
		const struct projected_file *f = &p->v[i];
		char *cur = NULL;
		size_t len = 0;
		struct stat st;
		bool same;
		int fd;
		ssize_t r;
		top_name(f->path, name, sizeof(name));
		snprintf(target, sizeof(target), "%s/%s", DATA_LINK, name);
		if (join(path, sizeof(path), dir, name) != 0 || !link_is(path, target))
			return false;
		if (join(path, sizeof(path), data_dir, f->path) != 0)
			return false;
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			return false;
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
		    (st.st_mode & 07777) != (f->mode & 07777) || (size_t)st.st_size != f->len) {
			close(fd);
			return false;
		}
		cur = malloc(f->len + 1);
		while (cur != NULL && len < f->len &&
		       ((r = read(fd, cur + len, f->len - len)) > 0 || (r < 0 && errno == EINTR)))
			if (r > 0)
				len += (size_t)r;
		close(fd);
		same = cur != NULL && len == f->len && memcmp(cur, f->data, f->len) == 0;
		if (cur != NULL)
			OPENSSL_cleanse(cur, f->len);
		free(cur);
		if (!same)
			return false;
	}
	return true;
}

static bool payload_has_top(const struct projected_payload *p, const char *name)
{
	char top[NAME_MAX + 1];
	size_t i;

	for (i = 0; i < p->n; i++) {
		top_name(p->v[i].path, top, sizeof(top));
		if (strcmp(top, name) == 0)
			return true;
	}
	return false;
}

int projected_write_atomic(const char *dir, const struct projected_payload *p,
			   bool *ret_changed)
{
	char ts_dir[PATH_MAX], path[PATH_MAX], tmp_link[PATH_MAX], data_link[PATH_MAX];
	char stamp[64], name[NAME_MAX + 1], target[PATH_MAX];
	const char *ts_name;
	struct tm tm;
	time_t now = time(NULL);
	DIR *d;
	struct dirent *e;
	size_t i;
	int rv;

	for (i = 0; i < p->n; i++)
		if (!path_ok(p->v[i].path))
			return -EINVAL;
	if (unchanged(dir, p)) {
		if (ret_changed != NULL)
			*ret_changed = false;
		return 0;
	}
	/* 1. The new version, in full, in a directory of its own. */
	strftime(stamp, sizeof(stamp), "..%Y_%m_%d_%H_%M_%S.XXXXXX", gmtime_r(&now, &tm));
	if ((rv = join(ts_dir, sizeof(ts_dir), dir, stamp)) != 0 ||
	    (rv = join(tmp_link, sizeof(tmp_link), dir, DATA_TMP)) != 0 ||
	    (rv = join(data_link, sizeof(data_link), dir, DATA_LINK)) != 0)
		return rv;
	if (mkdtemp(ts_dir) == NULL)
		return -errno;
	ts_name = strrchr(ts_dir, '/') + 1;
	if (chmod(ts_dir, 0755) != 0) {
		rv = -errno;
		goto err_after_mkdir;
	}
	for (i = 0; i < p->n; i++) {
		const struct projected_file *f = &p->v[i];
		if ((rv = make_parents(ts_dir, f->path)) != 0 ||
		    (rv = join(path, sizeof(path), ts_dir, f->path)) != 0 ||
		    (rv = write_one(path, f->data, f->len, f->mode)) != 0)
			goto err_after_mkdir;
	}
	/* 2. The switch: ..data_tmp -> new, renamed over ..data. */
	if (unlink(tmp_link) != 0 && errno != ENOENT) {
		rv = -errno;
		goto err_after_mkdir;
	}
	if (symlink(ts_name, tmp_link) != 0) {
		rv = -errno;
		goto err_after_mkdir;
	}
	if (rename(tmp_link, data_link) != 0) {
		rv = -errno;
		unlink(tmp_link);
		goto err_after_mkdir;
	}
	/* 3. The names users see, each a link into ..data. */
	for (i = 0; i < p->n; i++) {
		top_name(p->v[i].path, name, sizeof(name));
		snprintf(target, sizeof(target), "%s/%s", DATA_LINK, name);
		if ((rv = join(path, sizeof(path), dir, name)) != 0)
			return rv;
		if (link_is(path, target))
			continue;
		/* A plain file or directory from an older writer. */
		node__rm_rf(path);
		if (symlink(target, path) != 0)
			return -errno;
	}
	/* 4. Names gone from the payload, and older versions. */
	d = opendir(dir);
	if (d == NULL)
		return -errno;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    strcmp(e->d_name, DATA_LINK) == 0 || strcmp(e->d_name, ts_name) == 0)
			continue;
		if (join(path, sizeof(path), dir, e->d_name) != 0)
			continue;
		if (strncmp(e->d_name, "..", 2) == 0) {
			node__rm_rf(path); /* an old version, or a stale ..data_tmp */
			continue;
		}
		if (!payload_has_top(p, e->d_name))
			node__rm_rf(path);
	}
	closedir(d);
	if (ret_changed != NULL)
		*ret_changed = true;
	return 0;
err_after_mkdir:
	node__rm_rf(ts_dir);
	return rv;
}

int projected_volume_write(const struct podspec_ctx *x, const json_t *vol, const char *dir,
			   char *why, size_t why_len)
{
	struct projected_payload p;
	int rv = projected_payload_build(x, vol, &p, why, why_len);

	if (rv != 0)
		return rv;
	rv = projected_write_atomic(dir, &p, NULL);
	if (rv != 0)
		snprintf(why, why_len, "cannot write volume %s: %s", jstr(vol, "name"),
			 strerror(-rv));
	projected_payload_clear(&p);
	return rv;
}

int projected_token_volumes_write(const struct podspec_ctx *x, char *why, size_t why_len)
{
	const json_t *vol, *src;
	char dir[PATH_MAX];
	size_t i, j;
	int rv;

	json_array_foreach (json_object_get(json_object_get(x->pod, "spec"), "volumes"), i, vol) {
		const char *name = jstr(vol, "name");
		bool has_token = false;
		json_array_foreach (json_object_get(json_object_get(vol, "projected"), "sources"),
				    j, src)
			has_token |= json_object_get(src, "serviceAccountToken") != NULL;
		if (!has_token || name == NULL)
			continue;
		if ((size_t)snprintf(dir, sizeof(dir), "%s/volumes/%s", x->pod_dir, name) >=
		    sizeof(dir))
			return -ENAMETOOLONG;
		rv = projected_volume_write(x, vol, dir, why, why_len);
		if (rv != 0)
			return rv;
	}
	return 0;
}
