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
#include <sys/tree.h>

#include "http/kapi.h"
#include "src/api/cells_mp.h"
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
	kapi__send_tree(req, code, o);
	json_decref(o);
}

void kapi__send_not_found(h2o_req_t *req, const struct api_kind *k, const char *name)
{
	char res[128];

	kapi__send_error(req, 404, "NotFound", k, name, NULL, "%s \"%s\" not found",
			 kapi__resource_name(k, res, sizeof(res)), name);
}

/* ------------------------------------------------------------ encoding */

static bool map_header(const unsigned char *p, size_t len, uint32_t *ret_n, size_t *ret_hdr)
{
	return codec_msgpack_map_header(p, len, ret_n, ret_hdr) == 0;
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
	static const char head[] = "\"resourceVersion\":\"";
	char extra[64], digits[24];
	size_t n = 0, d = sizeof(digits);

	/* One pass over the bytes (encode_map's per-value calls cost twice
	 * as much on small objects, such as every create's answer). */
	extra[0] = '\0';
	if (rv != 0) {
		for (uint64_t v = rv; v != 0; v /= 10)
			digits[--d] = (char)('0' + v % 10);
		memcpy(extra, head, sizeof(head) - 1);
		n = sizeof(head) - 1;
		memcpy(extra + n, digits + d, sizeof(digits) - d);
		n += sizeof(digits) - d;
		extra[n++] = '"';
		extra[n] = '\0';
	}
	return codec_msgpack_to_json_with(mp, len, "metadata", "resourceVersion", extra, out);
}

/* metadata (the map at @p) with the resourceVersion put in, as msgpack. */
static int mp_encode_meta(const unsigned char *p, size_t len, uint64_t rv, struct buf *out)
{
	uint32_t n, i, drop = 0;
	size_t hdr, off, klen, vlen;
	char b[24];
	int rc;

	if (!map_header(p, len, &n, &hdr))
		return -EBADMSG;
	off = hdr;
	for (i = 0; i < n; i++) {
		if (codec_msgpack_value_len(p + off, len - off, &klen) != 0 ||
		    codec_msgpack_value_len(p + off + klen, len - off - klen, &vlen) != 0)
			return -EBADMSG;
		drop += key_is(p + off, klen, "resourceVersion");
		off += klen + vlen;
	}
	if ((rc = codec_mp_map(out, n - drop + (rv != 0))) != 0)
		return rc;
	if (drop == 0) {
		rc = buf_append(out, p + hdr, off - hdr);
	} else {
		size_t o = hdr;
		for (i = 0; i < n && rc == 0; i++) {
			codec_msgpack_value_len(p + o, len - o, &klen);
			codec_msgpack_value_len(p + o + klen, len - o - klen, &vlen);
			if (!key_is(p + o, klen, "resourceVersion"))
				rc = buf_append(out, p + o, klen + vlen);
			o += klen + vlen;
		}
	}
	if (rc == 0 && rv != 0) {
		snprintf(b, sizeof(b), "%llu", (unsigned long long)rv);
		if ((rc = codec_mp_cstr(out, "resourceVersion")) == 0)
			rc = codec_mp_cstr(out, b);
	}
	return rc;
}

/* The stored map is copied as it is but for metadata, which is found by
 * skipping the pairs before it; everything after it is copied without
 * being looked at. */
static int mp_encode_obj(const unsigned char *p, size_t len, uint64_t rv, struct buf *out)
{
	uint32_t n, i, mn;
	size_t hdr, off, klen, vlen, mhdr;
	char b[24];
	int rc;

	if (!map_header(p, len, &n, &hdr))
		return -EBADMSG;
	off = hdr;
	for (i = 0; i < n; i++) {
		if (codec_msgpack_value_len(p + off, len - off, &klen) != 0 ||
		    codec_msgpack_value_len(p + off + klen, len - off - klen, &vlen) != 0)
			return -EBADMSG;
		if (key_is(p + off, klen, "metadata") && !map_header(p + off + klen, vlen, &mn, &mhdr))
			return buf_append(out, p, len); /* as the JSON encoder: left alone */
		if (key_is(p + off, klen, "metadata")) {
			if ((rc = buf_append(out, p, off + klen)) != 0 ||
			    (rc = mp_encode_meta(p + off + klen, vlen, rv, out)) != 0)
				return rc;
			off += klen + vlen;
			return buf_append(out, p + off, len - off);
		}
		off += klen + vlen;
	}
	/* No metadata map. */
	if (rv == 0)
		return buf_append(out, p, len);
	snprintf(b, sizeof(b), "%llu", (unsigned long long)rv);
	if ((rc = codec_mp_map(out, n + 1)) != 0 || (rc = buf_append(out, p + hdr, len - hdr)) != 0 ||
	    (rc = codec_mp_cstr(out, "metadata")) != 0 || (rc = codec_mp_map(out, 1)) != 0 ||
	    (rc = codec_mp_cstr(out, "resourceVersion")) != 0)
		return rc;
	return codec_mp_cstr(out, b);
}

int kapi__encode_msgpack(const void *mp, size_t len, uint64_t rv, struct buf *out)
{
	size_t mark = out->len;
	int rc = mp_encode_obj(mp, len, rv, out);

	if (rc != 0)
		out->len = mark;
	return rc;
}

int kapi__encode(enum kapi_format f, const void *mp, size_t len, uint64_t rv, struct buf *out)
{
	return kapi__is_msgpack(f) ? kapi__encode_msgpack(mp, len, rv, out)
				   : kapi__encode_json(mp, len, rv, out);
}

int kapi__encode_meta(enum kapi_format f, const void *mp, size_t len, uint64_t rv,
		      struct buf *out)
{
	const void *m;
	size_t mlen, mark = out->len;
	int rc;

	if (codec_msgpack_get(mp, len, "metadata", &m, &mlen) != 0) {
		m = "\x80"; /* {} */
		mlen = 1;
	}
	rc = kapi__is_msgpack(f) ? mp_encode_meta(m, mlen, rv, out)
				 : encode_map(m, mlen, rv, 1, out);
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

/* Case-insensitive equality of [p, p+n) and @s. */
static bool span_is(const char *p, size_t n, const char *s)
{
	return n == strlen(s) && strncasecmp(p, s, n) == 0;
}

bool kapi__media_is_msgpack(const char *p, size_t n)
{
	return span_is(p, n, KAPI_MSGPACK_MEDIA_TYPE) || span_is(p, n, "application/msgpack") ||
	       span_is(p, n, "application/x-msgpack");
}

static const char *trim(const char *p, const char *end, const char **ret_end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*ret_end = end;
	return p;
}

/* Looks at one media range [p, end): its type and whether it asks for the
 * meta.k8s.io Table or is refused (q=0). */
static void media_range(const char *p, const char *end, const char **ret_type,
			size_t *ret_type_len, bool *ret_table, bool *ret_refused)
{
	const char *semi = memchr(p, ';', (size_t)(end - p)), *te, *t;
	bool as_table = false, meta_group = false;

	t = trim(p, semi != NULL ? semi : end, &te);
	*ret_type = t;
	*ret_type_len = (size_t)(te - t);
	*ret_refused = false;
	while (semi != NULL) {
		const char *q = semi + 1, *qe, *pe;
		semi = memchr(q, ';', (size_t)(end - q));
		q = trim(q, semi != NULL ? semi : end, &pe);
		qe = pe;
		if (span_is(q, (size_t)(qe - q), "as=Table"))
			as_table = true;
		else if (span_is(q, (size_t)(qe - q), "g=meta.k8s.io"))
			meta_group = true;
		else if ((size_t)(qe - q) >= 2 && h2o_lcstris(q, 2, "q=", 2)) {
			const char *d = q + 2;
			while (d < qe && (*d == '0' || *d == '.'))
				d++;
			*ret_refused = d == qe;
		}
	}
	*ret_table = as_table && meta_group;
}

/* The first media range of Accept that the server can produce decides
 * (client-go lists its preference first; quality values other than 0 are
 * not weighed). kubectl get asks
 * "application/json;as=Table;v=v1;g=meta.k8s.io,application/json". */
enum kapi_format kapi__format(h2o_req_t *req)
{
	h2o_iovec_t a = accept_of(req);
	const char *p = a.base, *end = a.base + a.len;

	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma != NULL ? comma : end, *type;
		size_t tn;
		bool table, refused;

		media_range(p, stop, &type, &tn, &table, &refused);
		p = stop + 1;
		if (refused)
			continue;
		if (span_is(type, tn, "application/json") || span_is(type, tn, "*/*") ||
		    span_is(type, tn, "application/*"))
			return table ? KAPI_TABLE : KAPI_JSON;
		if (span_is(type, tn, "application/yaml"))
			return KAPI_YAML;
		if (kapi__media_is_msgpack(type, tn))
			return table ? KAPI_TABLE_MSGPACK : KAPI_MSGPACK;
	}
	return KAPI_JSON;
}

static void buf_dispose(void *p)
{
	buf_free(p);
}

void kapi__send_buf(h2o_req_t *req, int code, const char *content_type, struct buf *b)
{
	static h2o_generator_t gen = {NULL, NULL};
	struct buf *kept;

	if (http__method_is(req, "HEAD")) {
		/* As before: h2o_send_inline knows what HEAD leaves out. */
		http_send_raw(req, code, content_type, b->data, b->len);
		buf_free(b);
		return;
	}
	kept = h2o_mem_alloc_shared(&req->pool, sizeof(*kept), buf_dispose);
	*kept = *b;
	buf_init(b);
	req->res.status = code;
	req->res.reason = http_status_phrase(code);
	req->res.content_length = kept->len;
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
		       strlen(content_type));
	h2o_start_response(req, &gen);
	/* The bytes stay with the request's pool until h2o is done with it. */
	h2o_send(req, &(h2o_iovec_t){kept->data != NULL ? kept->data : "", kept->len}, 1,
		 H2O_SEND_STATE_FINAL);
}

void kapi__send_tree(h2o_req_t *req, int code, const json_t *obj)
{
	struct buf b = {0};
	enum kapi_format f = kapi__format(req);

	if (f == KAPI_YAML) {
		if (codec_tree_to_yaml(obj, &b, NULL) == 0) {
			kapi__send_buf(req, code, "application/yaml", &b);
			return;
		}
		buf_free(&b);
	} else if (kapi__is_msgpack(f)) {
		if (codec_tree_to_msgpack(obj, &b, NULL) == 0) {
			kapi__send_buf(req, code, KAPI_MSGPACK_MEDIA_TYPE, &b);
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
	struct kapi_table tw;
	struct buf b = {0};
	json_t *obj;
	int rc;

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
	if (f == KAPI_YAML) {
		obj = kapi__tree(mp, len, rv);
		if (obj == NULL) {
			http_send_status(req, 500, NULL, "cannot decode the stored object");
			return;
		}
		kapi__send_tree(req, code, obj);
		json_decref(obj);
		return;
	}
	if (kapi__is_table(f)) {
		rc = kapi__table_begin(&tw, &b, hr, t->kind, f);
		if (rc == 0)
			rc = kapi__table_row(&tw, t->key, t->key_len, mp, len, rv);
		if (rc == 0)
			rc = kapi__table_end(&tw, rv, NULL);
	} else {
		rc = kapi__encode(f, mp, len, rv, &b);
	}
	if (rc != 0) {
		buf_free(&b);
		http_send_status(req, 500, NULL, "cannot encode the stored object");
		return;
	}
	kapi__send_buf(req, code, kapi__content_type(f), &b);
}

const char *kapi__content_type(enum kapi_format f)
{
	switch (f) {
	case KAPI_YAML:
		return "application/yaml";
	case KAPI_MSGPACK:
	case KAPI_TABLE_MSGPACK:
		return KAPI_MSGPACK_MEDIA_TYPE;
	case KAPI_JSON:
	case KAPI_TABLE:
		break;
	}
	return "application/json";
}

/* ------------------------------------------------------------ Table */

/* Table rows are written straight from the stored msgpack: AGE and the
 * row's object (its metadata) from the bytes; for a kind without computed
 * cells (api_cell_fn), the path cells too. Computed cells need a tree:
 * then the row's cells are kept per server, by key and mod_rev, when they
 * do not depend on the time (checked by computing them at two times), so
 * that listing the same objects again builds no tree and walks nothing
 * but metadata. */

struct cells_entry {
	RB_ENTRY(cells_entry) link;
	const struct api_kind *k;
	uint64_t mod_rev;
	json_t *cells; /* the row's cells, AGE left null (computed_cells) */
	size_t key_len;
	char key[];
};

static int cells_cmp(const struct cells_entry *a, const struct cells_entry *b)
{
	int c;

	if (a->k != b->k)
		return (uintptr_t)a->k < (uintptr_t)b->k ? -1 : 1;
	c = memcmp(a->key, b->key, a->key_len < b->key_len ? a->key_len : b->key_len);
	if (c != 0)
		return c;
	return a->key_len < b->key_len ? -1 : a->key_len > b->key_len;
}

RB_HEAD(cells_tree, cells_entry);
/* RB_GENERATE_STATIC needs BSD's __unused, which libbsd leaves undefined. */
RB_GENERATE_INTERNAL(cells_tree, cells_entry, link, cells_cmp, static __attribute__((unused)))

struct kapi_cells {
	struct cells_tree tree;
	size_t n;
};

/* Bounds the cache (the rows of deleted objects are never looked up
 * again): past this many rows it starts afresh. */
#define KAPI_CELLS_MAX 131072

static void cells_entry_free(struct cells_entry *e)
{
	if (e != NULL)
		json_decref(e->cells);
	free(e);
}

static void cells_clear(struct kapi_cells *c)
{
	struct cells_entry *e, *next;

	if (c == NULL)
		return;
	for (e = RB_MIN(cells_tree, &c->tree); e != NULL; e = next) {
		next = RB_NEXT(cells_tree, &c->tree, e);
		RB_REMOVE(cells_tree, &c->tree, e);
		cells_entry_free(e);
	}
	c->n = 0;
}

static struct kapi_cells *cells_of(struct http_server *s);

struct kapi_cells *kapi__cells_new(void)
{
	struct kapi_cells *c = calloc(1, sizeof(*c));

	if (c != NULL)
		RB_INIT(&c->tree);
	return c;
}

void kapi__cells_free(struct kapi_cells *c)
{
	cells_clear(c);
	free(c);
}

size_t kapi__cells_count(const struct kapi_cells *c)
{
	return c != NULL ? c->n : 0;
}

static bool is_age(const struct api_column *c)
{
	return c->print == api_cell_age;
}

static bool has_computed(const struct api_kind *k)
{
	const struct api_column *c;

	for (c = k->columns; c != NULL && c->name != NULL; c++)
		if (c->print != NULL && !is_age(c))
			return true;
	return false;
}

/* The cells of @tree at @now as api_table_cells() has them, but for AGE
 * (null: computed from the bytes each time). */
static json_t *computed_cells(const struct api_kind *k, const json_t *tree, int64_t now)
{
	const struct api_column *c;
	json_t *arr = json_array(), *v;

	if (arr == NULL)
		return NULL;
	for (c = k->columns; c != NULL && c->name != NULL; c++) {
		v = NULL;
		if (is_age(c))
			v = json_null();
		else if (c->print != NULL)
			v = c->print(tree, now);
		else if (c->path != NULL && (v = api_json_path(tree, c->path)) != NULL)
			json_incref(v);
		/* Kubernetes prints "<none>" for empty string columns. */
		if (v == NULL)
			v = strcmp(c->type, "string") == 0 ? json_string("<none>") : json_null();
		if (json_array_append_new(arr, v) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* The computed cells of one stored object (new reference), from the cache
 * when it has them. */
static json_t *cells_get(struct kapi_table *tw, const char *key, size_t key_len,
			 const void *mp, size_t len, uint64_t mod_rev)
{
	struct kapi_cells *c = tw->cache;
	struct cells_entry *e = NULL, *found;
	json_t *tree, *cells, *later;
	bool steady;

	if (c != NULL && key != NULL && mod_rev != 0) {
		e = malloc(sizeof(*e) + key_len);
		if (e != NULL) {
			e->k = tw->k;
			e->key_len = key_len;
			memcpy(e->key, key, key_len);
			found = RB_FIND(cells_tree, &c->tree, e);
			if (found != NULL && found->mod_rev == mod_rev) {
				free(e);
				return json_incref(found->cells);
			}
			if (found != NULL) {
				RB_REMOVE(cells_tree, &c->tree, found);
				cells_entry_free(found);
				c->n--;
			}
		}
	}
	if (codec_msgpack_to_tree(mp, len, &tree, NULL) != 0) {
		free(e);
		return NULL;
	}
	cells = computed_cells(tw->k, tree, tw->now);
	/* Cells that read the clock differ three years later: not kept. */
	later = e != NULL && cells != NULL ? computed_cells(tw->k, tree, tw->now + 100000000) : NULL;
	steady = later != NULL && json_equal(cells, later);
	json_decref(later);
	json_decref(tree);
	if (e != NULL && steady) {
		if (c->n >= KAPI_CELLS_MAX)
			cells_clear(c);
		e->mod_rev = mod_rev;
		e->cells = json_incref(cells);
		RB_INSERT(cells_tree, &c->tree, e);
		c->n++;
	} else {
		free(e);
	}
	return cells;
}

static int put_lit(struct buf *out, const char *s)
{
	return buf_append(out, s, strlen(s));
}

static int dump_cb(const char *p, size_t n, void *data)
{
	return buf_append(data, p, n) == 0 ? 0 : -1;
}

/* One tree value in the table's format. */
static int put_tree(struct kapi_table *tw, const json_t *v)
{
	if (tw->msgpack)
		return codec_tree_to_msgpack(v, tw->out, NULL);
	return json_dump_callback(v, dump_cb, tw->out,
				  JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) == 0
		       ? 0
		       : -ENOMEM;
}

/* One string in the table's format (@s is UTF-8 from our own code). */
static int put_str(struct kapi_table *tw, const char *s)
{
	json_t *v;
	int rc;

	if (tw->msgpack)
		return codec_mp_cstr(tw->out, s);
	v = json_string(s);
	rc = v != NULL ? put_tree(tw, v) : -ENOMEM;
	json_decref(v);
	return rc;
}

static int put_strs(struct buf *out, const char *const *s)
{
	int rc = 0;

	for (; *s != NULL && rc == 0; s++)
		rc = codec_mp_cstr(out, *s);
	return rc;
}

int kapi__table_begin(struct kapi_table *tw, struct buf *out, struct http_request *hr,
		      const struct api_kind *k, enum kapi_format f)
{
	static const char *const head[] = {"kind", "Table", "apiVersion", "meta.k8s.io/v1",
					   "columnDefinitions", NULL};
	h2o_iovec_t v;
	json_t *cols;
	int rc;

	memset(tw, 0, sizeof(*tw));
	tw->out = out;
	tw->k = k;
	tw->msgpack = kapi__is_msgpack(f);
	tw->now = (int64_t)time(NULL);
	tw->include = 1;
	if (http__query(hr, "includeObject", &v) && v.len > 0)
		tw->include = strcmp(v.base, "Object") == 0 ? 2 : strcmp(v.base, "None") == 0 ? 0 : 1;
	tw->need_tree = has_computed(k);
	tw->cache = tw->need_tree ? cells_of(hr->server) : NULL;
	for (tw->ncols = 0; k->columns != NULL && k->columns[tw->ncols].name != NULL; tw->ncols++)
		;
	cols = api_table_columns(k);
	if (cols == NULL)
		return -ENOMEM;
	if (tw->msgpack) {
		if ((rc = codec_mp_map(out, 5)) != 0 || (rc = put_strs(out, head)) != 0 ||
		    (rc = put_tree(tw, cols)) != 0 || (rc = codec_mp_cstr(out, "rows")) != 0)
			goto out;
		rc = codec_mp_array32_open(out, &tw->rows_at);
	} else {
		if ((rc = put_lit(out, "{\"kind\":\"Table\",\"apiVersion\":\"meta.k8s.io/v1\","
				       "\"columnDefinitions\":")) != 0 ||
		    (rc = put_tree(tw, cols)) != 0)
			goto out;
		rc = put_lit(out, ",\"rows\":[");
	}
out:
	json_decref(cols);
	return rc;
}

/* A computed string cell: plain printable ASCII goes out as it is, any
 * other text through jansson, so that the escapes stay the tree path's. */
static int put_text(struct kapi_table *tw, const char *s)
{
	size_t n = strlen(s), i;
	struct buf *out = tw->out;

	if (tw->msgpack)
		return codec_mp_str(out, s, n);
	for (i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
			return put_str(tw, s);
	if (buf_reserve(out, n + 2) != 0)
		return -ENOMEM;
	out->data[out->len++] = '"';
	memcpy(out->data + out->len, s, n);
	out->len += n;
	out->data[out->len++] = '"';
	return 0;
}

/* The AGE cell of the creationTimestamp @s (@n bytes; NULL: absent). */
static int put_age(struct kapi_table *tw, const char *s, size_t n)
{
	char b[64];
	int64_t t;

	if (s == NULL || n >= sizeof(b))
		return put_text(tw, "<unknown>");
	if (api_parse_time_canonical(s, n, &t) != 0) {
		memcpy(b, s, n);
		b[n] = '\0';
		if (api_parse_time(b, &t) != 0)
			return put_text(tw, "<unknown>");
	}
	api_human_duration(tw->now - t, b, sizeof(b));
	return put_text(tw, b);
}

/* The cell of a path column whose value is @v (@vlen bytes; NULL: absent). */
static int put_path_cell(struct kapi_table *tw, const struct api_column *c, const void *v,
			 size_t vlen)
{
	if (v != NULL)
		return tw->msgpack ? buf_append(tw->out, v, vlen)
				   : codec_msgpack_to_json(v, vlen, 0, tw->out, NULL);
	/* Kubernetes prints "<none>" for empty string columns. */
	if (strcmp(c->type, "string") == 0)
		return put_text(tw, "<none>");
	return tw->msgpack ? codec_mp_nil(tw->out) : put_lit(tw->out, "null");
}

/* The cell of a plain (path) column, or of AGE, from the bytes. */
static int put_plain_cell(struct kapi_table *tw, const struct api_column *c, const void *mp,
			  size_t len)
{
	const void *v = NULL;
	const char *s;
	size_t vlen = 0, n = 0;

	if (is_age(c)) {
		if (codec_msgpack_get_str(mp, len, "metadata.creationTimestamp", &s, &n) != 0)
			s = NULL;
		return put_age(tw, s, n);
	}
	if (c->path != NULL && codec_msgpack_get(mp, len, c->path, &v, &vlen) != 0)
		v = NULL;
	return put_path_cell(tw, c, v, vlen);
}

/* The row's cells: computed ones from @mpc (msgpack printers) or @cells
 * (trees), the rest from the bytes. */
static int put_cells(struct kapi_table *tw, const struct api_cells_mp *mpc, const json_t *cells,
		     const void *mp, size_t len)
{
	struct buf *out = tw->out;
	const json_t *cell;
	size_t i;
	int rc = 0;

	for (i = 0; i < tw->ncols && rc == 0; i++) {
		const struct api_column *c = &tw->k->columns[i];

		if (!tw->msgpack && i > 0 && (rc = put_lit(out, ",")) != 0)
			break;
		if (mpc != NULL && i < API_CELLS_MP_COLS) {
			if (mpc->cell[i] != NULL) {
				rc = put_text(tw, mpc->cell[i]);
				continue;
			}
			if (mpc->resolved[i]) {
				rc = put_path_cell(tw, c, mpc->value[i].p, mpc->value[i].len);
				continue;
			}
			if (is_age(c) && mpc->created_known) {
				const char *s = NULL;
				size_t n = 0;

				if (mpc->created.p != NULL &&
				    codec_msgpack_str(mpc->created.p, mpc->created.len, &s, &n) != 0)
					s = NULL;
				rc = put_age(tw, s, n);
				continue;
			}
		}
		cell = !is_age(c) ? json_array_get(cells, i) : NULL;
		if (cell == NULL)
			rc = put_plain_cell(tw, c, mp, len);
		else
			rc = put_tree(tw, cell);
	}
	return rc;
}

static int put_object(struct kapi_table *tw, const void *mp, size_t len, uint64_t rv)
{
	static const char *const partial[] = {"object", "kind", "PartialObjectMetadata",
					      "apiVersion", "meta.k8s.io/v1", "metadata", NULL};
	struct buf *out = tw->out;
	enum kapi_format f = tw->msgpack ? KAPI_MSGPACK : KAPI_JSON;
	int rc;

	if (tw->include == 2) {
		rc = tw->msgpack ? codec_mp_cstr(out, "object") : put_lit(out, ",\"object\":");
		return rc != 0 ? rc : kapi__encode(f, mp, len, rv, out);
	}
	if (tw->msgpack)
		rc = codec_mp_cstr(out, partial[0]) || codec_mp_map(out, 3) || put_strs(out, partial + 1)
			     ? -ENOMEM
			     : 0;
	else
		rc = put_lit(out, ",\"object\":{\"kind\":\"PartialObjectMetadata\","
				  "\"apiVersion\":\"meta.k8s.io/v1\",\"metadata\":");
	if (rc == 0)
		rc = kapi__encode_meta(f, mp, len, rv, out);
	if (rc == 0 && !tw->msgpack)
		rc = put_lit(out, "}");
	return rc;
}

int kapi__table_row(struct kapi_table *tw, const char *key, size_t key_len, const void *mp,
		    size_t len, uint64_t rv)
{
	struct buf *out = tw->out;
	size_t mark = out->len;
	struct api_cells_mp mpc;
	const struct api_cells_mp *from_mp = NULL;
	json_t *cells = NULL;
	int rc;

	/* Kinds with msgpack printers need neither a tree nor the cache;
	 * an object they cannot decide on takes the tree path. */
	if (tw->need_tree && api_table_cells_mp_supported(tw->k) &&
	    api_table_cells_mp(tw->k, mp, len, tw->now, &mpc) == 0)
		from_mp = &mpc;
	if (tw->need_tree && from_mp == NULL &&
	    (cells = cells_get(tw, key, key_len, mp, len, rv)) == NULL)
		return -ENOMEM;
	if (tw->msgpack)
		rc = codec_mp_map(out, tw->include != 0 ? 2 : 1) || codec_mp_cstr(out, "cells") ||
			     codec_mp_array(out, (uint32_t)tw->ncols)
			     ? -ENOMEM
			     : 0;
	else
		rc = put_lit(out, tw->rows > 0 ? ",{\"cells\":[" : "{\"cells\":[");
	if (rc == 0)
		rc = put_cells(tw, from_mp, cells, mp, len);
	if (rc == 0 && !tw->msgpack)
		rc = put_lit(out, "]");
	if (rc == 0 && tw->include != 0)
		rc = put_object(tw, mp, len, rv);
	if (rc == 0 && !tw->msgpack)
		rc = put_lit(out, "}");
	json_decref(cells);
	if (rc != 0) {
		out->len = mark;
		return rc;
	}
	tw->rows++;
	return 0;
}

int kapi__table_end(struct kapi_table *tw, uint64_t rev, const char *cont)
{
	struct buf *out = tw->out;
	char b[24];
	int rc;

	snprintf(b, sizeof(b), "%llu", (unsigned long long)rev);
	if (tw->msgpack) {
		codec_mp_container32_close(out, tw->rows_at, tw->rows);
		if ((rc = codec_mp_cstr(out, "metadata")) != 0 ||
		    (rc = codec_mp_map(out, (uint32_t)(rev != 0) + (cont != NULL))) != 0)
			return rc;
		if (rev != 0 && ((rc = codec_mp_cstr(out, "resourceVersion")) != 0 ||
				 (rc = codec_mp_cstr(out, b)) != 0))
			return rc;
		if (cont != NULL && ((rc = codec_mp_cstr(out, "continue")) != 0 ||
				     (rc = codec_mp_cstr(out, cont)) != 0))
			return rc;
		return 0;
	}
	if ((rc = put_lit(out, "],\"metadata\":{")) != 0)
		return rc;
	if (rev != 0 && ((rc = put_lit(out, "\"resourceVersion\":\"")) != 0 ||
			 (rc = put_lit(out, b)) != 0 || (rc = put_lit(out, "\"")) != 0))
		return rc;
	/* The continue token is base64url: nothing to escape. */
	if (cont != NULL &&
	    ((rc = put_lit(out, rev != 0 ? ",\"continue\":\"" : "\"continue\":\"")) != 0 ||
	     (rc = put_lit(out, cont)) != 0 || (rc = put_lit(out, "\"")) != 0))
		return rc;
	return put_lit(out, "}}");
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

/* ------------------------------------------------------------ msgpack answers */

/* A client that asks for msgpack gets every answer of the API in msgpack:
 * objects, lists, tables and watch events are encoded so by their
 * handlers; any other JSON answer (a Status from http_send_status, a
 * discovery document) is turned into msgpack by this per-request
 * prefilter on its way out. */

struct mp_bufs {
	struct buf in, out;
};

struct mp_ostream {
	h2o_ostream_t super;
	struct mp_bufs *bufs; /* in the pool, freed with it */
};

static void mp_bufs_dispose(void *p)
{
	struct mp_bufs *b = p;

	buf_free(&b->in);
	buf_free(&b->out);
}

static void mp_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *inbufs,
		       size_t inbufcnt, h2o_send_state_t state)
{
	static const char oom[] = "\x85\xa4kind\xa6Status\xaa"
				  "apiVersion\xa2v1\xa6status\xa7"
				  "Failure\xa6reason\xadInternalError\xa4"
				  "code\xcd\x01\xf4";
	struct mp_bufs *b = ((struct mp_ostream *)self)->bufs;
	h2o_iovec_t out;
	size_t i;
	bool fail = false;

	for (i = 0; i < inbufcnt; i++)
		if (buf_append(&b->in, inbufs[i].base, inbufs[i].len) != 0)
			fail = true;
	if (h2o_send_state_is_in_progress(state)) {
		h2o_ostream_send_next(self, req, NULL, 0, state);
		return;
	}
	if (state != H2O_SEND_STATE_FINAL) {
		h2o_ostream_send_next(self, req, NULL, 0, state);
		return;
	}
	if (fail || codec_json_to_msgpack(b->in.data != NULL ? b->in.data : "", b->in.len, 0,
					  &b->out, NULL) != 0)
		out = h2o_iovec_init(oom, sizeof(oom) - 1);
	else
		out = h2o_iovec_init(b->out.data, b->out.len);
	h2o_ostream_send_next(self, req, &out, 1, state);
}

static void mp_setup_ostream(h2o_req_prefilter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
	ssize_t i = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
	struct mp_ostream *os;
	h2o_iovec_t *ct;

	if (i >= 0 && !http__method_is(req, "HEAD")) {
		ct = &req->res.headers.entries[i].value;
		if (span_is(ct->base, ct->len, "application/json")) {
			*ct = h2o_iovec_init(H2O_STRLIT(KAPI_MSGPACK_MEDIA_TYPE));
			/* The size changes: chunked over HTTP/1.1. */
			req->res.content_length = SIZE_MAX;
			os = (struct mp_ostream *)h2o_add_ostream(req, sizeof(*os), slot);
			os->super.do_send = mp_do_send;
			os->super.stop = NULL;
			os->super.start_pull = NULL;
			os->bufs = h2o_mem_alloc_shared(&req->pool, sizeof(*os->bufs), mp_bufs_dispose);
			memset(os->bufs, 0, sizeof(*os->bufs));
			slot = &os->super.next;
		}
	}
	h2o_setup_next_prefilter(self, req, slot);
}

/* Installs the prefilter once per request (a request waiting for a
 * leader comes through here again). */
static void msgpack_answers(h2o_req_t *req)
{
	h2o_req_prefilter_t *p;

	for (p = req->prefilters; p != NULL; p = p->next)
		if (p->on_setup_ostream == mp_setup_ostream)
			return;
	p = h2o_add_prefilter(req, sizeof(*p));
	p->on_setup_ostream = mp_setup_ostream;
}

/* A PATCH with a msgpack body is a JSON merge patch in msgpack: it is
 * turned into the JSON merge patch it stands for before the patch handler
 * (or the forward to the leader) sees it. False when answered (400). */
static bool msgpack_patch(struct http_request *hr)
{
	h2o_req_t *req = hr->req;
	ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
	struct codec_err err = {0};
	struct buf b = {0};
	h2o_iovec_t *ct;
	size_t n;
	char *copy;

	if (i < 0)
		return true;
	ct = &req->headers.entries[i].value;
	for (n = 0; n < ct->len && ct->base[n] != ';' && ct->base[n] != ' '; n++)
		;
	if (!kapi__media_is_msgpack(ct->base, n) &&
	    !span_is(ct->base, n, "application/merge-patch+msgpack"))
		return true;
	if (codec_msgpack_to_json(req->entity.base != NULL ? req->entity.base : "",
				  req->entity.len, 0, &b, &err) != 0) {
		buf_free(&b);
		http_send_status(req, 400, NULL, "invalid msgpack patch: %s", err.msg);
		return false;
	}
	copy = h2o_mem_alloc_pool(&req->pool, b.len + 1);
	memcpy(copy, b.data, b.len + 1);
	req->entity = h2o_iovec_init(copy, b.len);
	*ct = h2o_iovec_init(H2O_STRLIT("application/merge-patch+json"));
	buf_free(&b);
	return true;
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

	if (t->sub != NULL && strcmp(t->sub->name, "exec") == 0) {
		kapi__pod_exec(hr, t); /* kapi_proxy.c */
		return;
	}
	if (http__method_is(req, "GET") || http__method_is(req, "HEAD")) {
		if (!watch_requested(hr, &watch))
			return;
		if (t->sub != NULL && strcmp(t->sub->name, "scale") == 0 && !watch) {
			kapi__get(hr, t); /* kapi__send_stored answers the Scale */
			return;
		}
		if (t->sub != NULL && strcmp(t->sub->name, "log") == 0 && !watch) {
			kapi__pod_log(hr, t); /* kapi_proxy.c */
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
	if (http__method_is(req, "PATCH") && !msgpack_patch(hr))
		return;
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

	if (kapi__is_msgpack(kapi__format(req)))
		msgpack_answers(req);
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
	struct kapi_cells cells; /* Table cells cache (kapi__table_row) */
	/* Every committed Service deletion, whoever wrote it (a user, the
	 * garbage collector, the namespace controller), frees the addresses
	 * of the deleted Service: at apply time, in log order. */
	struct store_watch *svc_watch;
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
	if (slot->svc_watch != NULL)
		store_watch_free(slot->svc_watch);
	slot->svc_watch = NULL;
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

static void svc_watch_cb(struct store_watch *w, void *data)
{
	struct kapi_slot *slot = data;
	struct store_event ev;
	json_t *svc;
	int rv;

	while ((rv = store_watch_next(w, &ev)) == 0) {
		if (ev.type != STORE_EVENT_DELETE || !slot->alloc_ok)
			continue;
		svc = kapi__tree(ev.kv.val, ev.kv.val_len, 0);
		if (svc != NULL)
			api_alloc_release_service(&slot->alloc, svc);
		json_decref(svc);
	}
	if (rv == STORE_EGONE) {
		/* Cannot happen (drained at every event); be safe: the next
		 * term rebuilds from the store. */
		log_warn("http: lost track of Service deletions: no new Service addresses "
			 "until the next leader term");
		store_watch_free(w);
		slot->svc_watch = NULL;
		if (slot->alloc_ok)
			api_alloc_close(&slot->alloc);
		slot->alloc_ok = false;
		slot->gen = 0;
	}
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
	rv = store_watch_new(st, prefix, sizeof(prefix) - 1, store_revision(st), svc_watch_cb,
			     slot, &slot->svc_watch);
	if (rv != 0) {
		log_warn("http: cannot watch the Services: %s", strerror(-rv));
		api_alloc_close(&slot->alloc);
		return;
	}
	slot->alloc_ok = true;
	slot->gen = ++alloc_gens;
	/* The callback fires only once the watch was drained. */
	svc_watch_cb(slot->svc_watch, slot);
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

static struct kapi_cells *cells_of(struct http_server *s)
{
	struct kapi_slot *slot = slot_of(s);

	return slot != NULL ? &slot->cells : NULL;
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
	RB_INIT(&slot->cells.tree);
	slot->cells.n = 0;
	if (replica_is_ready_leader(s->replica))
		lead(slot);
	return 0;
}

void http__kapi_close(struct http_server *s)
{
	size_t i;

	for (i = 0; i < n_slots; i++)
		if (slots[i].server == s) {
			alloc_drop(&slots[i]);
			cells_clear(&slots[i].cells);
			slots[i].server = NULL;
		}
	kapi__watch_forget(replica_store(s->replica));
}
