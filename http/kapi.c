/* Routing of the Kubernetes REST API and the helpers its verbs share:
 * paths to kinds and store keys, Status errors with details, encoding of
 * stored objects with their resourceVersion, content negotiation,
 * selectors, the Scale view of a stored object, and the leadership hook
 * that creates the default namespaces and the `kubernetes` Service and
 * keeps the Service allocators of the term.
 *
 * Paths (Kubernetes' REST layout):
 *   /api/v1/PLURAL[/NAME[/SUB]]                         cluster-scoped, or
 *                                                       all namespaces (lists)
 *   /api/v1/namespaces/NS/PLURAL[/NAME[/SUB]]           namespaced
 *   /apis/GROUP/VERSION/...                             the same for groups
 * /api/v1/namespaces/NAME[/status|/finalize] is the Namespace itself.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/random.h>

#include "http/kapi.h"
#include "src/api/selector.h"
#include "src/api/validate.h"
#include "src/lib/log.h"

/* ------------------------------------------------------------ errors */

const char *kapi__resource_name(const struct api_kind *k, char *buf, size_t size)
{
	if (k->group[0] == '\0')
		snprintf(buf, size, "%s", k->plural);
	else
		snprintf(buf, size, "%s.%s", k->plural, k->group);
	return buf;
}

void kapi__send_error(h2o_req_t *req, int code, const char *reason, const struct api_kind *k,
		      const char *name, json_t *causes, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	json_t *o, *details = NULL, *m;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	m = json_string(msg);
	if (m == NULL)
		m = json_string("(message not shown: not UTF-8)");
	o = json_pack("{s:s, s:s, s:{}, s:s, s:o, s:s}", "kind", "Status", "apiVersion", "v1",
		      "metadata", "status", "Failure", "message", m, "reason",
		      reason != NULL ? reason : http_status_reason(code));
	if (o == NULL) {
		json_decref(causes);
		http_send_status(req, 500, NULL, "out of memory");
		return;
	}
	if (k != NULL || name != NULL || causes != NULL) {
		details = json_object();
		if (details != NULL) {
			if (name != NULL)
				json_object_set_new(details, "name", json_string(name));
			if (k != NULL && k->group[0] != '\0')
				json_object_set_new(details, "group", json_string(k->group));
			if (k != NULL)
				json_object_set_new(details, "kind",
						    json_string(code == 422 ? k->kind : k->plural));
			if (causes != NULL)
				json_object_set(details, "causes", causes);
			json_object_set_new(o, "details", details);
		}
	}
	json_decref(causes);
	json_object_set_new(o, "code", json_integer(code));
	http_send_json(req, code, o);
}

void kapi__send_not_found(h2o_req_t *req, const struct api_kind *k, const char *name)
{
	char res[128];

	kapi__send_error(req, 404, "NotFound", k, name, NULL, "%s \"%s\" not found",
			 kapi__resource_name(k, res, sizeof(res)), name);
}

/* ------------------------------------------------------------ encoding */

/* The number of pairs of the msgpack map at @p and its header length;
 * false if @p is not a map. */
static bool map_header(const unsigned char *p, size_t len, uint32_t *ret_n, size_t *ret_hdr)
{
	if (len < 1)
		return false;
	if ((p[0] & 0xf0) == 0x80) {
		*ret_n = p[0] & 0x0f;
		*ret_hdr = 1;
		return true;
	}
	if (p[0] == 0xde && len >= 3) {
		*ret_n = (uint32_t)p[1] << 8 | p[2];
		*ret_hdr = 3;
		return true;
	}
	if (p[0] == 0xdf && len >= 5) {
		*ret_n = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
		*ret_hdr = 5;
		return true;
	}
	return false;
}

static bool key_is(const void *k, size_t klen, const char *s)
{
	const char *str;
	size_t n;

	return codec_msgpack_str(k, klen, &str, &n) == 0 && n == strlen(s) &&
	       memcmp(str, s, n) == 0;
}

static int put_rv(struct buf *out, uint64_t rv, bool comma)
{
	char b[48];
	int n = snprintf(b, sizeof(b), "%s\"resourceVersion\":\"%llu\"", comma ? "," : "",
			 (unsigned long long)rv);

	return buf_append(out, b, (size_t)n);
}

/* Encodes a map, or the metadata map with the resourceVersion put in
 * (@depth 1). */
static int encode_map(const unsigned char *p, size_t len, uint64_t rv, int depth,
		      struct buf *out)
{
	uint32_t n, i;
	size_t hdr, off, klen, vlen;
	bool first = true, has_meta = false;
	int rv_err;

	if (!map_header(p, len, &n, &hdr))
		return codec_msgpack_to_json(p, len, 0, out, NULL);
	if ((rv_err = buf_append(out, "{", 1)) != 0)
		return rv_err;
	off = hdr;
	for (i = 0; i < n; i++) {
		if (codec_msgpack_value_len(p + off, len - off, &klen) != 0 ||
		    codec_msgpack_value_len(p + off + klen, len - off - klen, &vlen) != 0)
			return -EBADMSG;
		if (depth == 1 && key_is(p + off, klen, "resourceVersion")) {
			off += klen + vlen;
			continue;
		}
		if (!first && (rv_err = buf_append(out, ",", 1)) != 0)
			return rv_err;
		first = false;
		if ((rv_err = codec_msgpack_to_json(p + off, klen, 0, out, NULL)) != 0 ||
		    (rv_err = buf_append(out, ":", 1)) != 0)
			return rv_err;
		if (depth == 0 && key_is(p + off, klen, "metadata")) {
			has_meta = true;
			rv_err = encode_map(p + off + klen, vlen, rv, 1, out);
		} else {
			rv_err = codec_msgpack_to_json(p + off + klen, vlen, 0, out, NULL);
		}
		if (rv_err != 0)
			return rv_err;
		off += klen + vlen;
	}
	if (depth == 1 && rv != 0 && (rv_err = put_rv(out, rv, !first)) != 0)
		return rv_err;
	if (depth == 0 && !has_meta && rv != 0) {
		if ((rv_err = buf_append(out, first ? "\"metadata\":{" : ",\"metadata\":{",
					       first ? 12 : 13)) != 0 ||
		    (rv_err = put_rv(out, rv, false)) != 0 ||
		    (rv_err = buf_append(out, "}", 1)) != 0)
			return rv_err;
	}
	return buf_append(out, "}", 1);
}

int kapi__encode_json(const void *mp, size_t len, uint64_t rv, struct buf *out)
{
	size_t mark = out->len;
	int rc = encode_map(mp, len, rv, 0, out);

	if (rc != 0)
		out->len = mark;
	return rc;
}

json_t *kapi__tree(const void *mp, size_t len, uint64_t rv)
{
	json_t *t = NULL, *meta;
	char b[24];

	if (codec_msgpack_to_tree(mp, len, &t, NULL) != 0)
		return NULL;
	if (!json_is_object(t)) {
		json_decref(t);
		return NULL;
	}
	meta = json_object_get(t, "metadata");
	if (!json_is_object(meta)) {
		meta = json_object();
		json_object_set_new(t, "metadata", meta);
	}
	if (rv != 0) {
		snprintf(b, sizeof(b), "%llu", (unsigned long long)rv);
		json_object_set_new(meta, "resourceVersion", json_string(b));
	} else {
		json_object_del(meta, "resourceVersion");
	}
	return t;
}

json_t *kapi__scale_tree(const struct kapi_target *t, const void *mp, size_t len, uint64_t rv)
{
	static const char *const keep[] = {"name", "namespace", "uid", "resourceVersion",
					   "creationTimestamp", NULL};
	json_t *obj = kapi__tree(mp, len, rv), *meta, *m, *sc, *v;
	struct api_selector *sel = NULL;
	char *sel_s = NULL;
	size_t i;

	(void)t;
	if (obj == NULL)
		return NULL;
	meta = json_object_get(obj, "metadata");
	m = json_object();
	for (i = 0; keep[i] != NULL; i++)
		if ((v = json_object_get(meta, keep[i])) != NULL)
			json_object_set(m, keep[i], v);
	sc = json_pack("{s:s, s:s, s:o, s:{s:I}, s:{s:I}}", "kind", "Scale", "apiVersion",
		       "autoscaling/v1", "metadata", m, "spec", "replicas",
		       (json_int_t)json_integer_value(api_json_path(obj, "spec.replicas")), "status",
		       "replicas",
		       (json_int_t)json_integer_value(api_json_path(obj, "status.replicas")));
	/* status.selector: the label selector as a query string (for HPA). */
	if (sc != NULL && api_selector_from_json(api_json_path(obj, "spec.selector"), &sel, NULL,
						 0) == 0) {
		sel_s = api_selector_string(sel);
		if (sel_s != NULL && sel_s[0] != '\0')
			json_object_set_new(json_object_get(sc, "status"), "selector",
					    json_string(sel_s));
	}
	free(sel_s);
	api_selector_free(sel);
	json_decref(obj);
	return sc;
}

/* ------------------------------------------------------------ negotiation */

static h2o_iovec_t accept_of(h2o_req_t *req)
{
	ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);

	return i < 0 ? h2o_iovec_init("", 0) : req->headers.entries[i].value;
}

static bool contains(h2o_iovec_t v, const char *s)
{
	size_t n = strlen(s), i;

	for (i = 0; i + n <= v.len; i++)
		if (strncasecmp(v.base + i, s, n) == 0)
			return true;
	return false;
}

enum kapi_format kapi__format(h2o_req_t *req)
{
	h2o_iovec_t a = accept_of(req);

	/* kubectl get: "application/json;as=Table;v=v1;g=meta.k8s.io,...". */
	if (contains(a, "as=Table") && contains(a, "g=meta.k8s.io"))
		return KAPI_TABLE;
	if (a.len >= 16 && h2o_lcstris(a.base, 16, "application/yaml", 16))
		return KAPI_YAML;
	return KAPI_JSON;
}

void kapi__send_tree(h2o_req_t *req, int code, const json_t *obj)
{
	struct buf b = {0};

	if (kapi__format(req) == KAPI_YAML) {
		if (codec_tree_to_yaml(obj, &b, NULL) == 0) {
			http_send_raw(req, code, "application/yaml", b.data, b.len);
			buf_free(&b);
			return;
		}
		buf_free(&b);
	}
	http_send_json(req, code, json_incref((json_t *)obj));
}

void kapi__send_stored(struct http_request *hr, const struct kapi_target *t, int code,
		       const void *mp, size_t len, uint64_t rv)
{
	h2o_req_t *req = hr->req;
	enum kapi_format f = kapi__format(req);
	struct buf b = {0};
	json_t *obj, *arr, *tab;
	char rvs[24];

	if (t->sub != NULL && strcmp(t->sub->name, "scale") == 0) {
		obj = kapi__scale_tree(t, mp, len, rv);
		if (obj == NULL) {
			http_send_status(req, 500, NULL, "cannot decode the stored object");
			return;
		}
		kapi__send_tree(req, code, obj);
		json_decref(obj);
		return;
	}
	if (f == KAPI_JSON) {
		if (kapi__encode_json(mp, len, rv, &b) != 0) {
			buf_free(&b);
			http_send_status(req, 500, NULL, "cannot encode the stored object");
			return;
		}
		http_send_raw(req, code, "application/json", b.data, b.len);
		buf_free(&b);
		return;
	}
	obj = kapi__tree(mp, len, rv);
	if (obj == NULL) {
		http_send_status(req, 500, NULL, "cannot decode the stored object");
		return;
	}
	if (f == KAPI_YAML) {
		kapi__send_tree(req, code, obj);
		json_decref(obj);
		return;
	}
	arr = json_array();
	json_array_append_new(arr, obj);
	snprintf(rvs, sizeof(rvs), "%llu", (unsigned long long)rv);
	tab = kapi__table(hr, t->kind, arr, json_pack("{s:s}", "resourceVersion", rvs));
	json_decref(arr);
	http_send_json(req, code, tab);
}

json_t *kapi__table(struct http_request *hr, const struct api_kind *k, const json_t *objs,
		    json_t *list_meta)
{
	json_t *tab, *rows, *o, *row, *meta;
	h2o_iovec_t v;
	const char *include = "Metadata";
	int64_t now = (int64_t)time(NULL);
	size_t i;

	if (http__query(hr, "includeObject", &v) && v.len > 0)
		include = v.base;
	rows = json_array();
	tab = json_pack("{s:s, s:s, s:o, s:o, s:o}", "kind", "Table", "apiVersion",
			"meta.k8s.io/v1", "metadata", list_meta != NULL ? list_meta : json_object(),
			"columnDefinitions", api_table_columns(k), "rows", rows);
	if (tab == NULL)
		return NULL;
	json_array_foreach(objs, i, o)
	{
		row = json_pack("{s:o}", "cells", api_table_cells(k, o, now));
		if (row == NULL)
			continue;
		if (strcmp(include, "Object") == 0) {
			json_object_set(row, "object", o);
		} else if (strcmp(include, "None") != 0) {
			meta = json_object_get(o, "metadata");
			json_object_set_new(row, "object",
					    json_pack("{s:s, s:s, s:O}", "kind",
						      "PartialObjectMetadata", "apiVersion",
						      "meta.k8s.io/v1", "metadata",
						      meta != NULL ? meta : json_object()));
		}
		json_array_append_new(rows, row);
	}
	return tab;
}

/* ------------------------------------------------------------ queries */

bool kapi__query_flag(struct http_request *hr, const char *name, bool *ret)
{
	h2o_iovec_t v;

	*ret = false;
	if (!http__query(hr, name, &v))
		return true;
	if (v.len == 0) {
		*ret = true;
		return true;
	}
	if (http_parse_bool(v.base, v.len, ret) != 0) {
		http_send_status(hr->req, 400, NULL, "%s must be true or false", name);
		return false;
	}
	return true;
}

bool kapi__query_u64(struct http_request *hr, const char *name, bool *ret_present,
		     uint64_t *ret)
{
	h2o_iovec_t v;

	*ret_present = false;
	*ret = 0;
	if (!http__query(hr, name, &v) || v.len == 0)
		return true;
	if (http_parse_u64(v.base, v.len, ret) != 0) {
		http_send_status(hr->req, 400, NULL, "%s must be a non-negative integer", name);
		return false;
	}
	*ret_present = true;
	return true;
}

void kapi__now_rfc3339(char *buf, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ------------------------------------------------------------ routing */

#define MAX_SEGS 8

/* Splits @path (after the API prefix) into percent-decoded segments in the
 * pool. Returns their count, -1 on bad escapes or too many segments. */
static int split(h2o_mem_pool_t *pool, const char *p, size_t len, const char **segs)
{
	int n = 0;
	size_t i = 0, j, out;
	char *s;

	while (i < len) {
		if (p[i] == '/') {
			i++;
			continue;
		}
		j = i;
		while (j < len && p[j] != '/')
			j++;
		if (n == MAX_SEGS)
			return -1;
		s = h2o_mem_alloc_pool(pool, j - i + 1);
		if (http_percent_decode(p + i, j - i, false, s, &out) != 0 ||
		    memchr(s, '\0', out) != NULL)
			return -1;
		s[out] = '\0';
		segs[n++] = s;
		i = j;
	}
	return n;
}

static void not_found(h2o_req_t *req)
{
	http_send_status(req, 404, NULL, "the server could not find the requested resource");
}

static bool verb_allowed(struct http_request *hr, const struct api_kind *k, unsigned verb)
{
	if (k->verbs & verb)
		return true;
	http_send_status(hr->req, 405, NULL, "method %.*s is not supported on %s",
			 (int)hr->req->method.len, hr->req->method.base, k->plural);
	return false;
}

static void make_key(h2o_mem_pool_t *pool, struct kapi_target *t)
{
	const struct api_kind *k = t->kind;
	size_t n = 16 + strlen(k->plural) + (t->ns ? strlen(t->ns) : 0) +
		   (t->name ? strlen(t->name) : 0);
	char *key = h2o_mem_alloc_pool(pool, n);
	int len;

	if (t->name != NULL && k->namespaced)
		len = snprintf(key, n, "/registry/%s/%s/%s", k->plural, t->ns, t->name);
	else if (t->name != NULL)
		len = snprintf(key, n, "/registry/%s/%s", k->plural, t->name);
	else if (k->namespaced && t->ns != NULL)
		len = snprintf(key, n, "/registry/%s/%s/", k->plural, t->ns);
	else
		len = snprintf(key, n, "/registry/%s/", k->plural);
	t->key = key;
	t->key_len = (size_t)len;
}

static bool watch_requested(struct http_request *hr, bool *ret)
{
	return kapi__query_flag(hr, "watch", ret);
}

static void resources(struct http_request *hr, const char *group, const char *version,
		      const char **segs, int n)
{
	h2o_req_t *req = hr->req;
	struct kapi_target *t = h2o_mem_alloc_pool(&req->pool, sizeof(*t));
	const struct api_kind *nsk = api_kind_by_resource("", "v1", "namespaces");
	const char *plural;
	int i = 0;
	bool watch = false;

	memset(t, 0, sizeof(*t));
	if (n >= 2 && strcmp(segs[0], "namespaces") == 0 && group[0] == '\0' &&
	    (n == 2 || (n == 3 && api_kind_subresource(nsk, segs[2]) != NULL))) {
		/* The Namespace itself (or its subresource). */
		t->kind = nsk;
		t->name = segs[1];
		if (n == 3)
			t->sub = api_kind_subresource(nsk, segs[2]);
	} else {
		if (n >= 3 && strcmp(segs[0], "namespaces") == 0) {
			t->ns = segs[1];
			i = 2;
		}
		plural = segs[i++];
		t->kind = api_kind_by_resource(group, version, plural);
		if (t->kind == NULL || (t->ns != NULL && !t->kind->namespaced)) {
			not_found(req);
			return;
		}
		if (i < n)
			t->name = segs[i++];
		if (i < n) {
			t->sub = api_kind_subresource(t->kind, segs[i++]);
			if (t->sub == NULL) {
				not_found(req);
				return;
			}
		}
		if (i < n) {
			not_found(req);
			return;
		}
		/* A namespaced object needs its namespace in the path. */
		if (t->kind->namespaced && t->name != NULL && t->ns == NULL) {
			not_found(req);
			return;
		}
	}
	if (t->name != NULL && t->name[0] == '\0') {
		not_found(req);
		return;
	}
	make_key(&req->pool, t);

	if (http__method_is(req, "GET") || http__method_is(req, "HEAD")) {
		if (!watch_requested(hr, &watch))
			return;
		if (t->sub != NULL && strcmp(t->sub->name, "scale") == 0 && !watch) {
			kapi__get(hr, t); /* kapi__send_stored answers the Scale */
			return;
		}
		if (t->sub != NULL && strcmp(t->sub->name, "status") != 0) {
			http_send_status(req, 405, NULL, "the %s subresource is not served yet",
					 t->sub->name);
			return;
		}
		if (watch) {
			if (verb_allowed(hr, t->kind, API_VERB_WATCH))
				kapi__watch(hr, t);
		} else if (t->name != NULL) {
			if (verb_allowed(hr, t->kind, API_VERB_GET))
				kapi__get(hr, t);
		} else if (verb_allowed(hr, t->kind, API_VERB_LIST)) {
			kapi__list(hr, t);
		}
		return;
	}
	if (t->sub != NULL && strcmp(t->sub->name, "scale") == 0 &&
	    (http__method_is(req, "PUT") || http__method_is(req, "PATCH"))) {
		kapi__write_scale(hr, t);
		return;
	}
	if (t->sub != NULL && strcmp(t->sub->name, "status") != 0) {
		http_send_status(req, 405, NULL, "the %s subresource is not served yet",
				 t->sub->name);
		return;
	}
	if (http__method_is(req, "POST")) {
		if (t->name != NULL || t->sub != NULL) {
			http_send_status(req, 405, NULL, "POST goes to the collection");
			return;
		}
		if (t->kind->namespaced && t->ns == NULL) {
			not_found(req);
			return;
		}
		if (verb_allowed(hr, t->kind, API_VERB_CREATE))
			kapi__create(hr, t);
		return;
	}
	if (http__method_is(req, "PUT")) {
		if (t->name == NULL) {
			http_send_status(req, 405, NULL, "PUT needs an object name");
			return;
		}
		if (verb_allowed(hr, t->kind, API_VERB_UPDATE))
			kapi__update(hr, t);
		return;
	}
	if (http__method_is(req, "PATCH")) {
		if (t->name == NULL) {
			http_send_status(req, 405, NULL, "PATCH needs an object name");
			return;
		}
		if (verb_allowed(hr, t->kind, API_VERB_PATCH))
			kapi__patch(hr, t);
		return;
	}
	if (http__method_is(req, "DELETE")) {
		if (t->sub != NULL) {
			http_send_status(req, 405, NULL, "DELETE is not allowed on a subresource");
			return;
		}
		if (t->name != NULL) {
			if (verb_allowed(hr, t->kind, API_VERB_DELETE))
				kapi__delete(hr, t);
		} else if (verb_allowed(hr, t->kind, API_VERB_DELETECOLLECTION)) {
			kapi__delete_collection(hr, t);
		}
		return;
	}
	http_send_status(req, 405, NULL, "method %.*s is not allowed", (int)req->method.len,
			 req->method.base);
}

void http__kapi(struct http_request *hr)
{
	h2o_req_t *req = hr->req;
	const char *segs[MAX_SEGS];
	int n;

	if (hr->user == NULL) {
		http_send_status(req, 401, NULL, "authentication required");
		return;
	}
	n = split(&req->pool, hr->path.base, hr->path.len, segs);
	if (n < 1) {
		not_found(req);
		return;
	}
	if (strcmp(segs[0], "api") == 0) {
		if (n == 1 || (n == 2 && strcmp(segs[1], "v1") == 0)) {
			kapi__discovery(hr, true, n == 1 ? NULL : "", n == 1 ? NULL : "v1");
			return;
		}
		if (strcmp(segs[1], "v1") != 0) {
			not_found(req);
			return;
		}
		resources(hr, "", "v1", segs + 2, n - 2);
		return;
	}
	if (strcmp(segs[0], "apis") == 0) {
		if (n <= 3) {
			kapi__discovery(hr, false, n >= 2 ? segs[1] : NULL, n == 3 ? segs[2] : NULL);
			return;
		}
		resources(hr, segs[1], segs[2], segs + 3, n - 3);
		return;
	}
	if (strcmp(segs[0], "openapi") == 0 && n == 2 && strcmp(segs[1], "v2") == 0) {
		kapi__openapi_v2(hr);
		return;
	}
	if (strcmp(segs[0], "openapi") == 0 && n >= 2 && strcmp(segs[1], "v3") == 0) {
		if (n == 2)
			kapi__openapi(hr, NULL, NULL);
		else if (n == 4 && strcmp(segs[2], "api") == 0)
			kapi__openapi(hr, "", segs[3]);
		else if (n == 5 && strcmp(segs[2], "apis") == 0)
			kapi__openapi(hr, segs[3], segs[4]);
		else
			not_found(req);
		return;
	}
	not_found(req);
}

/* ------------------------------------------------------------ leadership */

/* The replica has no way to unsubscribe and outlives the server, so the
 * subscription's data is a static slot that the server clears at close.
 * The slot also holds the Service allocators of the current leader term:
 * built from the stored Services when leadership starts, dropped when it
 * ends (nothing of them is persisted; the store is the truth). */
#define KAPI_SLOTS 64
static struct kapi_slot {
	struct http_server *server;
	struct replica *replica;
	struct api_alloc alloc;
	bool alloc_ok;
	uint64_t gen;        /* term of the allocators, 0 = none */
	uint64_t rand_state; /* SplitMix64 */
	struct api_alloc_rand rnd;
} slots[KAPI_SLOTS];
static size_t n_slots;
static uint64_t alloc_gens;

static struct kapi_slot *slot_of(const struct http_server *s)
{
	size_t i;

	for (i = 0; i < n_slots; i++)
		if (slots[i].server == s)
			return &slots[i];
	return NULL;
}

static void alloc_drop(struct kapi_slot *slot)
{
	if (slot->alloc_ok)
		api_alloc_close(&slot->alloc);
	slot->alloc_ok = false;
	slot->gen = 0;
}

/* The port of the server's own API URL (the kubernetes Service's
 * targetPort). */
static int api_port(const struct http_server *s)
{
	const char *u = s->self_url, *c;
	long p;

	if (u == NULL || (c = strrchr(u, ':')) == NULL)
		return 6443;
	p = strtol(c + 1, NULL, 10);
	return p > 0 && p < 65536 ? (int)p : 6443;
}

/* Builds the allocators from the stored Services. */
static void alloc_build(struct kapi_slot *slot)
{
	static const char prefix[] = "/registry/services/";
	struct store *st = replica_store(slot->replica);
	struct store_iter iter;
	struct store_kv kv;
	const char *detail = NULL;
	json_t *svc;
	int rv;

	alloc_drop(slot);
	rv = api_alloc_init(&slot->alloc, NULL, NULL, &detail);
	if (rv != 0) {
		log_warn("http: cannot start the service allocators: %s",
			 detail != NULL ? detail : strerror(-rv));
		return;
	}
	if (getrandom(&slot->rand_state, sizeof(slot->rand_state), 0) !=
	    (ssize_t)sizeof(slot->rand_state))
		slot->rand_state = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)slot;
	slot->rnd.next = api_alloc_splitmix64;
	slot->rnd.data = &slot->rand_state;
	store_iter_seek(st, &iter, prefix, sizeof(prefix) - 1);
	while (store_iter_next(&iter, &kv)) {
		if (kv.key_len < sizeof(prefix) - 1 || memcmp(kv.key, prefix, sizeof(prefix) - 1) != 0)
			break;
		svc = kapi__tree(kv.val, kv.val_len, 0);
		if (svc == NULL)
			continue;
		api_alloc_mark_service(&slot->alloc, svc);
		json_decref(svc);
	}
	slot->alloc_ok = true;
	slot->gen = ++alloc_gens;
}

static void lead(struct kapi_slot *slot)
{
	kapi__bootstrap_namespaces(slot->replica);
	alloc_build(slot);
	if (slot->alloc_ok)
		kapi__bootstrap_kubernetes_service(slot->replica, &slot->alloc, &slot->rnd,
						   api_port(slot->server));
}

static void leadership_cb(void *data, bool leading)
{
	struct kapi_slot *slot = data;

	if (!leading) {
		alloc_drop(slot);
		return;
	}
	if (slot->server == NULL || !http__server_running(slot->server))
		return;
	lead(slot);
}

struct api_alloc *kapi__alloc(struct http_server *s, const struct api_alloc_rand **ret_rnd,
			      uint64_t *ret_gen)
{
	struct kapi_slot *slot = slot_of(s);

	if (slot == NULL || !slot->alloc_ok)
		return NULL;
	*ret_rnd = &slot->rnd;
	*ret_gen = slot->gen;
	return &slot->alloc;
}

struct api_alloc *kapi__alloc_at(struct http_server *s, uint64_t gen)
{
	struct kapi_slot *slot = slot_of(s);

	if (slot == NULL || !slot->alloc_ok || gen == 0 || slot->gen != gen)
		return NULL;
	return &slot->alloc;
}

int http__kapi_start(struct http_server *s)
{
	struct kapi_slot *slot;
	int rv;

	if (n_slots == KAPI_SLOTS) {
		log_warn("http: too many servers in one process: no namespace bootstrap");
		return 0;
	}
	slot = &slots[n_slots];
	rv = replica_on_leadership(s->replica, leadership_cb, slot);
	if (rv != 0)
		return rv;
	n_slots++;
	slot->server = s;
	slot->replica = s->replica;
	if (replica_is_ready_leader(s->replica))
		lead(slot);
	return 0;
}

void kapi__watch_close_all(struct http_server *s);

void http__kapi_close(struct http_server *s)
{
	size_t i;

	for (i = 0; i < n_slots; i++)
		if (slots[i].server == s) {
			alloc_drop(&slots[i]);
			slots[i].server = NULL;
		}
	kapi__watch_close_all(s);
}
