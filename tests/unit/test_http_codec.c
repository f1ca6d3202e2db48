/* Unit tests of http/status and http/util: Status JSON, percent-decoding,
 * query strings, numbers and the list continue token. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "http/status.h"
#include "http/util.h"

static void status_json(void **state)
{
	size_t len = 0;
	char *s;
	json_t *j;

	(void)state;
	s = http_status_json(404, NULL, "key \"a\" not found", &len);
	assert_non_null(s);
	assert_int_equal(len, strlen(s));
	j = json_loads(s, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "kind")), "Status");
	assert_string_equal(json_string_value(json_object_get(j, "apiVersion")), "v1");
	assert_string_equal(json_string_value(json_object_get(j, "status")), "Failure");
	assert_string_equal(json_string_value(json_object_get(j, "reason")), "NotFound");
	assert_string_equal(json_string_value(json_object_get(j, "message")), "key \"a\" not found");
	assert_int_equal(json_integer_value(json_object_get(j, "code")), 404);
	assert_true(json_is_object(json_object_get(j, "metadata")));
	json_decref(j);
	free(s);

	/* An explicit reason wins; a message that is not UTF-8 is replaced. */
	s = http_status_json(409, "AlreadyExists", "\xff\xfe", NULL);
	j = json_loads(s, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(j, "reason")), "AlreadyExists");
	assert_true(json_is_string(json_object_get(j, "message")));
	json_decref(j);
	free(s);
}

static void status_reasons(void **state)
{
	static const struct {
		int code;
		const char *reason;
	} want[] = {
		{400, "BadRequest"},	  {401, "Unauthorized"},
		{403, "Forbidden"},	  {404, "NotFound"},
		{405, "MethodNotAllowed"}, {409, "Conflict"},
		{413, "RequestEntityTooLarge"}, {415, "UnsupportedMediaType"},
		{422, "Invalid"},	  {500, "InternalError"},
		{503, "ServiceUnavailable"}, {504, "Timeout"},
		{410, "Expired"},	  {599, "InternalError"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_string_equal(http_status_reason(want[i].code), want[i].reason);
	assert_string_equal(http_status_phrase(404), "Not Found");
}

static void percent_decoding(void **state)
{
	char out[64];
	size_t n = 0;

	(void)state;
	assert_int_equal(http_percent_decode("/a%2Fb%20c", 10, false, out, &n), 0);
	assert_int_equal(n, 6);
	assert_memory_equal(out, "/a/b c", 6);
	assert_int_equal(http_percent_decode("a+b", 3, false, out, &n), 0);
	assert_memory_equal(out, "a+b", 3);
	assert_int_equal(http_percent_decode("a+b%2b", 6, true, out, &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "a b+", 4);
	assert_int_equal(http_percent_decode("%00x", 4, false, out, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[0], 0);
	assert_int_equal(http_percent_decode("bad%", 4, false, out, &n), -EINVAL);
	assert_int_equal(http_percent_decode("bad%4", 5, false, out, &n), -EINVAL);
	assert_int_equal(http_percent_decode("bad%zz", 6, false, out, &n), -EINVAL);
}

static void query_strings(void **state)
{
	const char *q = "list=true&limit=10&continue=&watch&limitx=3";
	const char *v;
	size_t n;

	(void)state;
	assert_true(http_query_find(q, strlen(q), "limit", &v, &n));
	assert_int_equal(n, 2);
	assert_memory_equal(v, "10", 2);
	assert_true(http_query_find(q, strlen(q), "continue", &v, &n));
	assert_int_equal(n, 0);
	assert_true(http_query_find(q, strlen(q), "watch", &v, &n));
	assert_int_equal(n, 0);
	assert_true(http_query_find(q, strlen(q), "limitx", &v, &n));
	assert_memory_equal(v, "3", 1);
	assert_false(http_query_find(q, strlen(q), "lim", &v, &n));
	assert_false(http_query_find("", 0, "a", &v, &n));
}

static void numbers(void **state)
{
	uint64_t v = 0;
	bool b = false;

	(void)state;
	assert_int_equal(http_parse_u64("0", 1, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(http_parse_u64("18446744073709551615", 20, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(http_parse_u64("18446744073709551616", 20, &v), -ERANGE);
	assert_int_equal(http_parse_u64("", 0, &v), -EINVAL);
	assert_int_equal(http_parse_u64("-1", 2, &v), -EINVAL);
	assert_int_equal(http_parse_u64("12a", 3, &v), -EINVAL);
	assert_int_equal(http_parse_bool("true", 4, &b), 0);
	assert_true(b);
	assert_int_equal(http_parse_bool("0", 1, &b), 0);
	assert_false(b);
	assert_int_equal(http_parse_bool("yes", 3, &b), -EINVAL);
}

static void continue_round_trip(void **state)
{
	static const char *const keys[] = {"/", "/a", "/ab", "/abc", "/registry/pods/default/x",
					   "\x01\xff\xfe/bin"};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char *tok = http_continue_encode(keys[i], strlen(keys[i]));
		char *key = NULL;
		size_t n = 0;
		assert_non_null(tok);
		/* URL-safe: no characters that need escaping in a query. */
		assert_null(strpbrk(tok, "+/=%&"));
		assert_int_equal(http_continue_decode(tok, strlen(tok), &key, &n), 0);
		assert_int_equal(n, strlen(keys[i]));
		assert_memory_equal(key, keys[i], n);
		free(key);
		free(tok);
	}
}

static void continue_invalid(void **state)
{
	char *key = NULL;
	size_t n;

	(void)state;
	assert_int_equal(http_continue_decode("", 0, &key, &n), -EINVAL);
	assert_int_equal(http_continue_decode("L2F", 3, &key, &n), -EINVAL); /* bits left */
	assert_int_equal(http_continue_decode("L2E=", 4, &key, &n), -EINVAL);
	assert_int_equal(http_continue_decode("L", 1, &key, &n), -EINVAL);
	assert_int_equal(http_continue_decode("L2+h", 4, &key, &n), -EINVAL);
	assert_null(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(status_json),	    cmocka_unit_test(status_reasons),
		cmocka_unit_test(percent_decoding), cmocka_unit_test(query_strings),
		cmocka_unit_test(numbers),	    cmocka_unit_test(continue_round_trip),
		cmocka_unit_test(continue_invalid),
	};
	return cmocka_run_group_tests_name("http_codec", tests, NULL, NULL);
}
