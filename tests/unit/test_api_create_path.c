/* Pieces of the create path made cheaper for issue 4's benchmark: the
 * one-pass answer encoding (codec_msgpack_to_json_with), JSON bodies read
 * through msgpack into trees, validation field paths written without
 * snprintf, the canonical timestamp check, and uids written by hand. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/api/object.h"
#include "src/api/registry.h"
#include "src/api/validate.h"
#include "src/lib/codec.h"

/* ------------------------------------------------------------ helpers */

/* @json as msgpack, in @b. */
static void to_mp(const char *json, struct buf *b)
{
	b->len = 0;
	assert_int_equal(codec_json_to_msgpack(json, strlen(json), 0, b, NULL), 0);
}

/* codec_msgpack_to_json_with() of @json, compared with @want. */
static void check_with(const char *json, const char *drop, const char *extra, const char *want)
{
	struct buf mp = {0}, out = {0};

	to_mp(json, &mp);
	assert_int_equal(codec_msgpack_to_json_with(mp.data, mp.len, "metadata", drop, extra, &out),
			 0);
	assert_int_equal(out.len, strlen(want));
	assert_memory_equal(out.data, want, out.len);
	buf_free(&mp);
	buf_free(&out);
}

static json_t *parse(const char *json)
{
	struct buf mp = {0};
	json_t *t = NULL;

	to_mp(json, &mp);
	assert_int_equal(codec_msgpack_to_tree(mp.data, mp.len, &t, NULL), 0);
	buf_free(&mp);
	return t;
}

/* ------------------------------------------------------------ encoding */

static void with_injects_and_drops(void **state)
{
	(void)state;
	check_with("{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"9\","
		   "\"uid\":\"u\"},\"data\":{\"k\":\"v\\n\"}}",
		   "resourceVersion", "\"resourceVersion\":\"42\"",
		   "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\",\"uid\":\"u\","
		   "\"resourceVersion\":\"42\"},\"data\":{\"k\":\"v\\n\"}}");
	/* Only metadata's own key goes: data.resourceVersion stays. */
	check_with("{\"data\":{\"resourceVersion\":\"x\"},\"metadata\":{\"resourceVersion\":\"1\"}}",
		   "resourceVersion", "\"resourceVersion\":\"2\"",
		   "{\"data\":{\"resourceVersion\":\"x\"},\"metadata\":{\"resourceVersion\":\"2\"}}");
	/* Nothing to add: the key is still dropped. */
	check_with("{\"metadata\":{\"resourceVersion\":\"1\"}}", "resourceVersion", "",
		   "{\"metadata\":{}}");
	check_with("{\"metadata\":{\"resourceVersion\":\"1\"}}", "resourceVersion", NULL,
		   "{\"metadata\":{}}");
}

static void with_absent_or_odd_metadata(void **state)
{
	(void)state;
	check_with("{\"a\":1}", "resourceVersion", "\"resourceVersion\":\"7\"",
		   "{\"a\":1,\"metadata\":{\"resourceVersion\":\"7\"}}");
	check_with("{}", "resourceVersion", "\"resourceVersion\":\"7\"",
		   "{\"metadata\":{\"resourceVersion\":\"7\"}}");
	check_with("{}", "resourceVersion", "", "{}");
	/* metadata that is not a map goes as it is, nothing added. */
	check_with("{\"metadata\":[1,2]}", "resourceVersion", "\"resourceVersion\":\"7\"",
		   "{\"metadata\":[1,2]}");
	/* A value that is not a map: plain JSON. */
	check_with("[1,\"x\"]", "resourceVersion", "\"resourceVersion\":\"7\"", "[1,\"x\"]");
}

static void with_matches_plain_encoding(void **state)
{
	static const char doc[] = "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":"
				  "\"p\",\"labels\":{\"a\":\"b\"}},\"spec\":{\"containers\":[{"
				  "\"name\":\"c\",\"image\":\"i\",\"ports\":[{\"containerPort\":"
				  "80}]}],\"x\":[true,false,null,-3,1.5,\"\\u00e9\"]}}";
	struct buf mp = {0}, a = {0}, b = {0};

	(void)state;
	to_mp(doc, &mp);
	assert_int_equal(codec_msgpack_to_json(mp.data, mp.len, 0, &a, NULL), 0);
	assert_int_equal(codec_msgpack_to_json_with(mp.data, mp.len, "metadata", "resourceVersion",
						    NULL, &b),
			 0);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len);
	buf_free(&mp);
	buf_free(&a);
	buf_free(&b);
}

static void with_truncated_fails_clean(void **state)
{
	struct buf mp = {0}, out = {0};

	(void)state;
	to_mp("{\"metadata\":{\"name\":\"abc\"},\"data\":{\"k\":\"v\"}}", &mp);
	buf_append(&out, "keep", 4);
	for (size_t n = 1; n < mp.len; n++) {
		assert_int_not_equal(codec_msgpack_to_json_with(mp.data, n, "metadata",
								"resourceVersion", "\"r\":\"1\"", &out),
				     0);
		assert_int_equal(out.len, 4);
	}
	buf_free(&mp);
	buf_free(&out);
}

/* ------------------------------------------------------------ decoding */

static void json_through_msgpack_keeps_values(void **state)
{
	json_t *t, *want;
	json_error_t e;
	static const char doc[] = "{\"a\":[1,-2,2.5,true,null,\"\\u2603\\n\"],\"b\":{\"c\":{}},"
				  "\"d\":9007199254740993}";

	(void)state;
	t = parse(doc);
	want = json_loads(doc, 0, &e);
	assert_non_null(want);
	assert_true(json_equal(t, want));
	json_decref(t);
	json_decref(want);
}

/* Strings around the 8-byte fast paths: escapes, non-ASCII and the end
 * of the string at every offset from a run of plain bytes. */
static void long_strings(void **state)
{
	static const char *const tails[] = {"\\\"", "\\n", "\u00e9", "\u2603x", "", "\\u0041"};
	char doc[256], val[64];
	json_error_t e;

	(void)state;
	for (size_t run = 0; run < 20; run++) {
		for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
			json_t *got, *want;

			memset(val, 'a', run);
			val[run] = '\0';
			snprintf(doc, sizeof(doc), "{\"%s%s\":\"%s%sz\"}", val, tails[t], val,
				 tails[t]);
			got = parse(doc);
			want = json_loads(doc, 0, &e);
			assert_non_null(want);
			if (!json_equal(got, want))
				fail_msg("differs: %s", doc);
			json_decref(got);
			json_decref(want);
		}
	}
	/* Invalid UTF-8 after a plain run becomes U+FFFD, as in Go. */
	{
		json_t *t = parse("[\"abcdefghij\xff\"]");
		assert_string_equal(json_string_value(json_array_get(t, 0)), "abcdefghij\xef\xbf\xbd");
		json_decref(t);
	}
	/* A string that never ends. */
	{
		struct buf mp = {0};
		static const char bad[] = "[\"abcdefghijklmnopq";
		assert_int_equal(codec_json_to_msgpack(bad, strlen(bad), 0, &mp, NULL), -EBADMSG);
		buf_free(&mp);
	}
}

static void strict_json_refuses_duplicates(void **state)
{
	struct buf mp = {0};
	struct codec_err err = {0};
	static const char dup[] = "{\"a\":1,\"a\":2}";
	json_t *t = NULL;

	(void)state;
	assert_int_equal(codec_json_to_msgpack(dup, strlen(dup), CODEC_STRICT, &mp, &err), -EEXIST);
	mp.len = 0;
	/* Not strict: the last one wins, as with Go's decoder. */
	assert_int_equal(codec_json_to_msgpack(dup, strlen(dup), 0, &mp, NULL), 0);
	assert_int_equal(codec_msgpack_to_tree(mp.data, mp.len, &t, NULL), 0);
	assert_int_equal(json_integer_value(json_object_get(t, "a")), 2);
	json_decref(t);
	buf_free(&mp);
}

/* ------------------------------------------------------------ validation */

static const struct api_cause *cause_at(const struct api_errors *e, const char *field)
{
	for (size_t i = 0; i < e->n; i++)
		if (strcmp(e->causes[i].field, field) == 0)
			return &e->causes[i];
	return NULL;
}

static void validation_paths(void **state)
{
	const struct api_kind *k = api_kind_by_resource("", "v1", "pods");
	struct api_errors e;
	json_t *pod;

	(void)state;
	assert_non_null(k);
	pod = parse("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\","
		    "\"namespace\":\"d\",\"labels\":{\"a\":7}},\"spec\":{\"containers\":["
		    "{\"name\":\"a\",\"image\":\"i\"},{\"name\":\"b\",\"image\":\"i\"},{\"name\":"
		    "\"c\",\"image\":\"i\"},{\"name\":\"d\",\"image\":\"i\"},{\"name\":\"e\","
		    "\"image\":\"i\"},{\"name\":\"f\",\"image\":\"i\"},{\"name\":\"g\",\"image\":"
		    "\"i\"},{\"name\":\"h\",\"image\":\"i\"},{\"name\":\"i\",\"image\":\"i\"},"
		    "{\"name\":\"j\",\"image\":\"i\"},{\"name\":\"k\",\"image\":\"i\","
		    "\"ports\":[{\"containerPort\":\"x\"}]}]}}");
	api_errors_init(&e);
	assert_int_equal(api_validate(k, pod, 0, &e), 0);
	/* Two-digit list index and a map key in brackets. */
	assert_non_null(cause_at(&e, "spec.containers[10].ports[0].containerPort"));
	assert_non_null(cause_at(&e, "metadata.labels[a]"));
	api_errors_close(&e);
	json_decref(pod);
}

static void timestamps(void **state)
{
	const struct api_kind *k = api_kind_by_resource("", "v1", "configmaps");
	static const char *const good[] = {"2024-01-02T03:04:05Z", "2024-12-31T23:59:60Z",
					   "2024-01-02T03:04:05.123Z", "2024-01-02T03:04:05+01:00",
					   NULL};
	static const char *const bad[] = {"2024-13-02T03:04:05Z", "2024-01-00T03:04:05Z",
					  "2024-01-02T24:04:05Z", "2024-01-02T03:60:05Z",
					  "2024-01-02T03:04:05ZZ", "2024-01-02T03:04:05",
					  "2024-01-02 03:04:05Z", "yesterday", "", NULL};
	char doc[256];

	(void)state;
	for (int pass = 0; pass < 2; pass++) {
		const char *const *list = pass == 0 ? good : bad;
		for (size_t i = 0; list[i] != NULL; i++) {
			struct api_errors e;
			json_t *o;

			snprintf(doc, sizeof(doc),
				 "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
				 "\"c\",\"namespace\":\"d\",\"creationTimestamp\":\"%s\"}}",
				 list[i]);
			o = parse(doc);
			api_errors_init(&e);
			assert_int_equal(api_validate(k, o, 0, &e), 0);
			if (pass == 0 && e.n != 0)
				fail_msg("%s refused: %s", list[i], e.causes[0].message);
			if (pass == 1 && cause_at(&e, "metadata.creationTimestamp") == NULL)
				fail_msg("%s accepted", list[i]);
			api_errors_close(&e);
			json_decref(o);
		}
	}
}

/* ------------------------------------------------------------ create */

static void uid_is_v4_text(void **state)
{
	const struct api_kind *k = api_kind_by_resource("", "v1", "configmaps");
	json_t *o = parse("{\"metadata\":{\"name\":\"c\"}}");
	const char *uid;

	(void)state;
	assert_int_equal(api_object_prepare_create(k, o, "2024-01-02T03:04:05Z",
						   0xefcdab8967452301ull, 0x1032547698badcfeull, 0),
			 0);
	uid = json_string_value(json_object_get(json_object_get(o, "metadata"), "uid"));
	assert_non_null(uid);
	/* Bytes little end first; version 4 and the RFC 4122 variant set. */
	assert_string_equal(uid, "01234567-89ab-4def-bedc-ba9876543210");
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(with_injects_and_drops),
		cmocka_unit_test(with_absent_or_odd_metadata),
		cmocka_unit_test(with_matches_plain_encoding),
		cmocka_unit_test(with_truncated_fails_clean),
		cmocka_unit_test(json_through_msgpack_keeps_values),
		cmocka_unit_test(long_strings),
		cmocka_unit_test(strict_json_refuses_duplicates),
		cmocka_unit_test(validation_paths),
		cmocka_unit_test(timestamps),
		cmocka_unit_test(uid_is_v4_text),
	};

	return cmocka_run_group_tests_name("api_create_path", tests, NULL, NULL);
}
