/* Encoding of stored objects for API clients (http/kapi.c): the msgpack
 * writers of src/lib/codec, objects as msgpack with their resourceVersion,
 * content negotiation from Accept, and Table rows written straight from
 * the stored bytes (JSON and msgpack) with the computed-cells cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "http/kapi.h"

/* ------------------------------------------------------------ fixture */

struct fx {
	h2o_req_t req;
	struct http_request hr;
	struct http_server server;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	h2o_mem_init_pool(&f->req.pool);
	f->hr.req = &f->req;
	f->hr.server = &f->server;
	f->hr.query = h2o_iovec_init("", 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	h2o_mem_clear_pool(&f->req.pool);
	free(f);
	return 0;
}

/* ------------------------------------------------------------ helpers */

/* The stored form of the JSON @text. */
static void stored(const char *text, struct buf *out)
{
	out->len = 0;
	assert_int_equal(codec_json_to_msgpack(text, strlen(text), 0, out, NULL), 0);
}

static json_t *json_of_mp(const void *mp, size_t len)
{
	json_t *t = NULL;

	assert_int_equal(codec_msgpack_to_tree(mp, len, &t, NULL), 0);
	return t;
}

static json_t *json_of_text(const char *s, size_t len)
{
	json_error_t e;
	json_t *t = json_loadb(s, len, 0, &e);

	if (t == NULL)
		fail_msg("bad JSON (%s): %.*s", e.text, (int)len, s);
	return t;
}

static json_t *json_of_cstr(const char *s)
{
	return json_of_text(s, strlen(s));
}

static void assert_json_equal(const json_t *a, const json_t *b)
{
	if (!json_equal(a, b)) {
		char *x = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY);
		char *y = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
		fail_msg("%s\n!=\n%s", x, y);
	}
}

static const char pod_json[] =
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web-1\","
	"\"namespace\":\"default\",\"uid\":\"u-1\",\"creationTimestamp\":"
	"\"2024-05-01T12:00:00Z\",\"labels\":{\"app\":\"web\"}},\"spec\":{\"nodeName\":\"n1\","
	"\"containers\":[{\"name\":\"a\",\"image\":\"nginx\"},{\"name\":\"b\",\"image\":\"x\"}]},"
	"\"status\":{\"phase\":\"Running\",\"podIP\":\"10.0.0.5\",\"containerStatuses\":["
	"{\"name\":\"a\",\"ready\":true,\"restartCount\":2},{\"name\":\"b\",\"ready\":false,"
	"\"restartCount\":0}]}}";

/* ------------------------------------------------------------ writers */

static void expect_bytes(struct buf *b, const char *want, size_t n)
{
	assert_int_equal(b->len, n);
	assert_memory_equal(b->data, want, n);
	b->len = 0;
}

static void writers(void **state)
{
	struct buf b = {0}, j = {0};
	char s[70000];
	size_t at;

	(void)state;
	assert_int_equal(codec_mp_uint(&b, 127), 0);
	expect_bytes(&b, "\x7f", 1);
	assert_int_equal(codec_mp_uint(&b, 128), 0);
	expect_bytes(&b, "\xcc\x80", 2);
	assert_int_equal(codec_mp_uint(&b, 256), 0);
	expect_bytes(&b, "\xcd\x01\x00", 3);
	assert_int_equal(codec_mp_uint(&b, 65536), 0);
	expect_bytes(&b, "\xce\x00\x01\x00\x00", 5);
	assert_int_equal(codec_mp_uint(&b, 1ull << 32), 0);
	expect_bytes(&b, "\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 9);
	assert_int_equal(codec_mp_int(&b, -32), 0);
	expect_bytes(&b, "\xe0", 1);
	assert_int_equal(codec_mp_int(&b, -33), 0);
	expect_bytes(&b, "\xd0\xdf", 2);
	assert_int_equal(codec_mp_int(&b, -129), 0);
	expect_bytes(&b, "\xd1\xff\x7f", 3);
	assert_int_equal(codec_mp_int(&b, INT64_MIN), 0);
	expect_bytes(&b, "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9);
	assert_int_equal(codec_mp_cstr(&b, "abc"), 0);
	expect_bytes(&b, "\xa3" "abc", 4);
	memset(s, 'x', sizeof(s));
	assert_int_equal(codec_mp_str(&b, s, 32), 0);
	assert_int_equal((unsigned char)b.data[0], 0xd9);
	assert_int_equal(b.len, 34);
	b.len = 0;
	assert_int_equal(codec_mp_str(&b, s, 256), 0);
	assert_int_equal((unsigned char)b.data[0], 0xda);
	b.len = 0;
	assert_int_equal(codec_mp_str(&b, s, 65536), 0);
	assert_int_equal((unsigned char)b.data[0], 0xdb);
	assert_int_equal(b.len, 65541);
	b.len = 0;
	assert_int_equal(codec_mp_map(&b, 15), 0);
	expect_bytes(&b, "\x8f", 1);
	assert_int_equal(codec_mp_map(&b, 16), 0);
	expect_bytes(&b, "\xde\x00\x10", 3);
	assert_int_equal(codec_mp_array(&b, 70000), 0);
	expect_bytes(&b, "\xdd\x00\x01\x11\x70", 5);

	/* A document built with them reads back as JSON. */
	assert_int_equal(codec_mp_map(&b, 2), 0);
	assert_int_equal(codec_mp_cstr(&b, "a"), 0);
	assert_int_equal(codec_mp_array32_open(&b, &at), 0);
	assert_int_equal(codec_mp_int(&b, -5), 0);
	assert_int_equal(codec_mp_nil(&b), 0);
	codec_mp_container32_close(&b, at, 2);
	assert_int_equal(codec_mp_cstr(&b, "b"), 0);
	assert_int_equal(codec_mp_uint(&b, 300), 0);
	assert_int_equal(codec_msgpack_to_json(b.data, b.len, 0, &j, NULL), 0);
	assert_int_equal(buf_append(&j, "", 1), 0);
	assert_string_equal(j.data, "{\"a\":[-5,null],\"b\":300}");
	buf_free(&b);
	buf_free(&j);
}

/* Strings go to JSON eight bytes at a time when nothing needs escaping:
 * every special byte at every offset still gets its escape. */
static void json_strings(void **state)
{
	static const char *const special[] = {"\"", "\\", "\n", "\x01", "\xc3\xa9", "\x7f", "/"};
	struct buf mp = {0}, out = {0};
	char s[64];
	size_t len, pos, k;

	(void)state;
	for (len = 1; len < 40; len++)
		for (pos = 0; pos < len; pos++)
			for (k = 0; k < sizeof(special) / sizeof(special[0]); k++) {
				json_t *v;
				char *want;
				size_t sl = strlen(special[k]);
				if (pos + sl > len)
					continue;
				memset(s, 'a' + (int)(len % 26), len);
				memcpy(s + pos, special[k], sl);
				mp.len = out.len = 0;
				assert_int_equal(codec_mp_str(&mp, s, len), 0);
				assert_int_equal(codec_msgpack_to_json(mp.data, mp.len, 0, &out, NULL), 0);
				v = json_stringn(s, len);
				want = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
				assert_int_equal(out.len, strlen(want));
				assert_memory_equal(out.data, want, out.len);
				free(want);
				json_decref(v);
			}
	/* An invalid byte in a long run becomes U+FFFD. */
	memset(s, 'x', 32);
	s[17] = (char)0x80;
	mp.len = out.len = 0;
	assert_int_equal(codec_mp_str(&mp, s, 32), 0);
	assert_int_equal(codec_msgpack_to_json(mp.data, mp.len, 0, &out, NULL), 0);
	assert_int_equal(out.len, 2 + 31 + 6);
	assert_memory_equal(out.data + 18, "\\ufffd", 6);
	buf_free(&mp);
	buf_free(&out);
}

/* ------------------------------------------------------------ objects */

static void object_msgpack(void **state)
{
	struct buf mp = {0}, out = {0}, js = {0};
	json_t *a, *b, *meta;

	(void)state;
	stored(pod_json, &mp);
	/* The same object as the JSON encoder gives, resourceVersion in. */
	assert_int_equal(kapi__encode_msgpack(mp.data, mp.len, 42, &out), 0);
	assert_int_equal(kapi__encode_json(mp.data, mp.len, 42, &js), 0);
	a = json_of_mp(out.data, out.len);
	b = json_of_text(js.data, js.len);
	assert_json_equal(a, b);
	assert_string_equal(json_string_value(json_object_get(json_object_get(a, "metadata"),
							       "resourceVersion")),
			    "42");
	json_decref(a);
	json_decref(b);

	/* rv 0: none, and a stored resourceVersion never leaks out. */
	stored("{\"kind\":\"X\",\"metadata\":{\"resourceVersion\":\"7\",\"name\":\"n\"},\"z\":1}",
	       &mp);
	out.len = 0;
	assert_int_equal(kapi__encode_msgpack(mp.data, mp.len, 0, &out), 0);
	a = json_of_mp(out.data, out.len);
	b = json_of_cstr("{\"kind\":\"X\",\"metadata\":{\"name\":\"n\"},\"z\":1}");
	assert_json_equal(a, b);
	json_decref(a);
	json_decref(b);
	out.len = 0;
	assert_int_equal(kapi__encode_msgpack(mp.data, mp.len, 9, &out), 0);
	a = json_of_mp(out.data, out.len);
	meta = json_object_get(a, "metadata");
	assert_int_equal(json_object_size(meta), 2);
	assert_string_equal(json_string_value(json_object_get(meta, "resourceVersion")), "9");
	json_decref(a);

	/* No metadata: one is added for the resourceVersion. */
	stored("{\"kind\":\"X\"}", &mp);
	out.len = 0;
	assert_int_equal(kapi__encode_msgpack(mp.data, mp.len, 3, &out), 0);
	a = json_of_mp(out.data, out.len);
	b = json_of_cstr("{\"kind\":\"X\",\"metadata\":{\"resourceVersion\":\"3\"}}");
	assert_json_equal(a, b);
	json_decref(a);
	json_decref(b);

	/* Only metadata. */
	stored(pod_json, &mp);
	out.len = 0;
	assert_int_equal(kapi__encode_meta(KAPI_MSGPACK, mp.data, mp.len, 5, &out), 0);
	js.len = 0;
	assert_int_equal(kapi__encode_meta(KAPI_JSON, mp.data, mp.len, 5, &js), 0);
	a = json_of_mp(out.data, out.len);
	b = json_of_text(js.data, js.len);
	assert_json_equal(a, b);
	assert_string_equal(json_string_value(json_object_get(a, "name")), "web-1");
	json_decref(a);
	json_decref(b);

	/* Not a map, or truncated: an error, and nothing appended. */
	out.len = 0;
	assert_int_not_equal(kapi__encode_msgpack("\x92\x01", 2, 1, &out), 0);
	assert_int_not_equal(kapi__encode_msgpack(mp.data, 3, 1, &out), 0);
	assert_int_equal(out.len, 0);
	buf_free(&mp);
	buf_free(&out);
	buf_free(&js);
}

/* ------------------------------------------------------------ negotiation */

static enum kapi_format format_of(struct fx *f, const char *accept)
{
	f->req.headers = (h2o_headers_t){NULL, 0, 0};
	if (accept != NULL)
		h2o_add_header(&f->req.pool, &f->req.headers, H2O_TOKEN_ACCEPT, NULL, accept,
			       strlen(accept));
	return kapi__format(&f->req);
}

static void negotiation(void **state)
{
	struct fx *f = *state;

	assert_int_equal(format_of(f, NULL), KAPI_JSON);
	assert_int_equal(format_of(f, "application/json"), KAPI_JSON);
	assert_int_equal(format_of(f, "*/*"), KAPI_JSON);
	assert_int_equal(format_of(f, "application/yaml"), KAPI_YAML);
	assert_int_equal(format_of(f, "application/vnd.msgpack"), KAPI_MSGPACK);
	assert_int_equal(format_of(f, "Application/MsgPack"), KAPI_MSGPACK);
	assert_int_equal(format_of(f, "application/x-msgpack"), KAPI_MSGPACK);
	/* kubectl get. */
	assert_int_equal(format_of(f, "application/json;as=Table;v=v1;g=meta.k8s.io,"
				      "application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
				      "application/json"),
			 KAPI_TABLE);
	assert_int_equal(format_of(f, "application/vnd.msgpack; as=Table; v=v1; g=meta.k8s.io"),
			 KAPI_TABLE_MSGPACK);
	/* as=Table without the meta.k8s.io group is not the Table. */
	assert_int_equal(format_of(f, "application/json;as=Table"), KAPI_JSON);
	/* The first range that can be served wins; q=0 refuses. */
	assert_int_equal(format_of(f, "application/vnd.kubernetes.protobuf,application/json"),
			 KAPI_JSON);
	assert_int_equal(format_of(f, "application/vnd.kubernetes.protobuf, "
				      "application/vnd.msgpack;q=0.9, application/json;q=0.5"),
			 KAPI_MSGPACK);
	assert_int_equal(format_of(f, "application/vnd.msgpack;q=0, application/yaml"), KAPI_YAML);
	assert_int_equal(format_of(f, "text/html"), KAPI_JSON);
	assert_string_equal(kapi__content_type(KAPI_TABLE_MSGPACK), "application/vnd.msgpack");
	assert_string_equal(kapi__content_type(KAPI_TABLE), "application/json");
	assert_true(kapi__media_is_msgpack("application/x-msgpack", 21));
	assert_false(kapi__media_is_msgpack("application/json", 16));
}

/* ------------------------------------------------------------ Table */

/* A Table of the one stored object @json as a tree, written in @fmt. */
static json_t *table_of(struct fx *f, const struct api_kind *k, const char *json,
			enum kapi_format fmt, struct kapi_cells *cache, uint64_t rv)
{
	struct kapi_table tw;
	struct buf mp = {0}, out = {0};
	json_t *t;

	stored(json, &mp);
	assert_int_equal(kapi__table_begin(&tw, &out, &f->hr, k, fmt), 0);
	tw.cache = tw.need_tree ? cache : NULL;
	assert_int_equal(kapi__table_row(&tw, "/registry/x/default/a", 21, mp.data, mp.len, rv),
			 0);
	assert_int_equal(kapi__table_row(&tw, "/registry/x/default/a", 21, mp.data, mp.len, rv),
			 0);
	assert_int_equal(kapi__table_end(&tw, 77, "tok"), 0);
	t = kapi__is_msgpack(fmt) ? json_of_mp(out.data, out.len) : json_of_text(out.data, out.len);
	buf_free(&mp);
	buf_free(&out);
	return t;
}

static void table_rows(void **state)
{
	struct fx *f = *state;
	const struct api_kind *pods = api_kind_by_resource("", "v1", "pods");
	struct kapi_cells *cache = kapi__cells_new();
	json_t *tj, *tm, *tree, *cells, *row, *meta;

	assert_non_null(pods);
	assert_non_null(cache);
	tj = table_of(f, pods, pod_json, KAPI_TABLE, cache, 11);
	tm = table_of(f, pods, pod_json, KAPI_TABLE_MSGPACK, cache, 11);
	/* msgpack and JSON carry the same Table. */
	assert_json_equal(tj, tm);
	assert_string_equal(json_string_value(json_object_get(tj, "kind")), "Table");
	assert_string_equal(json_string_value(api_json_path(tj, "metadata.resourceVersion")), "77");
	assert_string_equal(json_string_value(api_json_path(tj, "metadata.continue")), "tok");
	assert_int_equal(json_array_size(json_object_get(tj, "rows")), 2);
	/* Cells as the registry computes them from a tree. */
	tree = kapi__tree(NULL, 0, 0);
	assert_null(tree);
	{
		struct buf mp = {0};
		stored(pod_json, &mp);
		tree = kapi__tree(mp.data, mp.len, 11);
		buf_free(&mp);
	}
	cells = api_table_cells(pods, tree, (int64_t)time(NULL));
	row = json_array_get(json_object_get(tj, "rows"), 0);
	assert_json_equal(json_object_get(row, "cells"), cells);
	assert_string_equal(json_string_value(json_array_get(cells, 1)), "1/2");
	/* The row's object: PartialObjectMetadata with the resourceVersion. */
	meta = json_object_get(tree, "metadata");
	assert_string_equal(json_string_value(api_json_path(row, "object.kind")),
			    "PartialObjectMetadata");
	assert_json_equal(api_json_path(row, "object.metadata"), meta);
	json_decref(cells);
	json_decref(tj);
	json_decref(tm);

	/* Pod cells come from the bytes (src/api/cells_mp.c): none cached. */
	assert_int_equal(kapi__cells_count(cache), 0);
	{
		char changed[sizeof(pod_json) + 16];
		char *p;
		snprintf(changed, sizeof(changed), "%s", pod_json);
		p = strstr(changed, "\"ready\":false");
		memcpy(p, "\"ready\":true, ", 14);
		tj = table_of(f, pods, changed, KAPI_TABLE, cache, 12);
		row = json_array_get(json_object_get(tj, "rows"), 0);
		assert_string_equal(json_string_value(json_array_get(json_object_get(row, "cells"), 1)),
				    "2/2");
		json_decref(tj);
	}
	/* Deployment cells come from trees and do not read the clock: kept,
	 * one entry per key; a new revision of the object replaces them. */
	{
		const struct api_kind *deploys = api_kind_by_resource("apps", "v1", "deployments");
		static const char d1[] =
			"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{"
			"\"name\":\"d\",\"namespace\":\"default\"},\"spec\":{\"replicas\":3},"
			"\"status\":{\"readyReplicas\":1}}";
		static const char d2[] =
			"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{"
			"\"name\":\"d\",\"namespace\":\"default\"},\"spec\":{\"replicas\":3},"
			"\"status\":{\"readyReplicas\":2}}";

		assert_non_null(deploys);
		tj = table_of(f, deploys, d1, KAPI_TABLE, cache, 12);
		assert_int_equal(kapi__cells_count(cache), 1);
		json_decref(tj);
		tj = table_of(f, deploys, d2, KAPI_TABLE, cache, 13);
		row = json_array_get(json_object_get(tj, "rows"), 0);
		assert_string_equal(json_string_value(json_array_get(json_object_get(row, "cells"), 1)),
				    "2/3");
		assert_int_equal(kapi__cells_count(cache), 1);
		json_decref(tj);
	}
	json_decref(tree);
	kapi__cells_free(cache);
}

static void table_time_and_include(void **state)
{
	struct fx *f = *state;
	const struct api_kind *events = api_kind_by_resource("", "v1", "events");
	const struct api_kind *cms = api_kind_by_resource("", "v1", "configmaps");
	struct kapi_cells *cache = kapi__cells_new();
	json_t *t, *row;
	static const char ev[] =
		"{\"apiVersion\":\"v1\",\"kind\":\"Event\",\"metadata\":{\"name\":\"e\","
		"\"namespace\":\"default\",\"creationTimestamp\":\"2024-05-01T12:00:00Z\"},"
		"\"lastTimestamp\":\"2024-05-01T12:00:00Z\",\"reason\":\"R\",\"type\":\"Normal\","
		"\"involvedObject\":{\"kind\":\"Pod\",\"name\":\"p\"},\"message\":\"m\"}";
	static const char cm[] = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{"
				 "\"name\":\"c\",\"namespace\":\"default\"},\"data\":{\"a\":\"1\","
				 "\"b\":\"2\"}}";

	assert_non_null(events);
	assert_non_null(cms);
	/* Event cells read the clock (LAST SEEN): never cached. */
	t = table_of(f, events, ev, KAPI_TABLE, cache, 5);
	assert_int_equal(kapi__cells_count(cache), 0);
	json_decref(t);
	/* includeObject=Object carries the whole object; None none. */
	f->hr.query = h2o_iovec_init(H2O_STRLIT("includeObject=Object"));
	t = table_of(f, cms, cm, KAPI_TABLE_MSGPACK, cache, 6);
	row = json_array_get(json_object_get(t, "rows"), 0);
	assert_string_equal(json_string_value(api_json_path(row, "object.data.b")), "2");
	assert_string_equal(json_string_value(api_json_path(row, "object.metadata.resourceVersion")),
			    "6");
	/* No creationTimestamp: AGE is <unknown>; DATA counts. */
	assert_string_equal(json_string_value(json_array_get(json_object_get(row, "cells"), 2)),
			    "<unknown>");
	assert_int_equal(json_integer_value(json_array_get(json_object_get(row, "cells"), 1)), 2);
	json_decref(t);
	f->hr.query = h2o_iovec_init(H2O_STRLIT("includeObject=None"));
	t = table_of(f, cms, cm, KAPI_TABLE, cache, 6);
	row = json_array_get(json_object_get(t, "rows"), 0);
	assert_null(json_object_get(row, "object"));
	json_decref(t);
	kapi__cells_free(cache);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(writers),
		cmocka_unit_test(json_strings),
		cmocka_unit_test(object_msgpack),
		cmocka_unit_test_setup_teardown(negotiation, setup, teardown),
		cmocka_unit_test_setup_teardown(table_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(table_time_and_include, setup, teardown),
	};

	return cmocka_run_group_tests_name("kapi_encode", tests, NULL, NULL);
}
