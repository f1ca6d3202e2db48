/* Unit tests of src/lib/args: flag and config value parsing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "src/lib/args.h"

static void duration_units(void **state)
{
	uint64_t ms = 0;
	(void)state;
	assert_int_equal(args_parse_duration_ms("1500ms", &ms), 0);
	assert_int_equal(ms, 1500);
	assert_int_equal(args_parse_duration_ms("5m", &ms), 0);
	assert_int_equal(ms, 300000);
	assert_int_equal(args_parse_duration_ms("2h", &ms), 0);
	assert_int_equal(ms, 7200000);
	assert_int_equal(args_parse_duration_ms("40", &ms), 0);
	assert_int_equal(ms, 40000);
}

static void duration_bad(void **state)
{
	uint64_t ms = 7;
	(void)state;
	assert_int_equal(args_parse_duration_ms("", &ms), -EINVAL);
	assert_int_equal(args_parse_duration_ms("-1s", &ms), -EINVAL);
	assert_int_equal(args_parse_duration_ms("10x", &ms), -EINVAL);
	assert_int_equal(args_parse_duration_ms("99999999999999999999", &ms), -ERANGE);
	assert_int_equal(args_parse_duration_ms("999999999999999999h", &ms), -ERANGE);
	assert_int_equal(ms, 7); /* untouched on error */
}

static void size_units(void **state)
{
	uint64_t b = 0;
	(void)state;
	assert_int_equal(args_parse_size("256", &b), 0);
	assert_int_equal(b, 256);
	assert_int_equal(args_parse_size("4Ki", &b), 0);
	assert_int_equal(b, 4096);
	assert_int_equal(args_parse_size("25MiB", &b), 0);
	assert_int_equal(b, 25u * 1024 * 1024);
	assert_int_equal(args_parse_size("3G", &b), 0);
	assert_int_equal(b, 3000000000u);
	assert_int_equal(args_parse_size("3g", &b), -EINVAL);
	assert_int_equal(args_parse_size("Mi", &b), -EINVAL);
}

static void uint_bounds(void **state)
{
	uint64_t n = 0;
	(void)state;
	assert_int_equal(args_parse_uint("65535", 65535, &n), 0);
	assert_int_equal(n, 65535);
	assert_int_equal(args_parse_uint("65536", 65535, &n), -ERANGE);
	assert_int_equal(args_parse_uint("12a", 100, &n), -EINVAL);
	assert_int_equal(args_parse_uint("", 100, &n), -EINVAL);
}

static void bools(void **state)
{
	bool b = false;
	(void)state;
	assert_int_equal(args_parse_bool("Yes", &b), 0);
	assert_true(b);
	assert_int_equal(args_parse_bool("off", &b), 0);
	assert_false(b);
	assert_int_equal(args_parse_bool("maybe", &b), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(duration_units), cmocka_unit_test(duration_bad),
		cmocka_unit_test(size_units),     cmocka_unit_test(uint_bounds),
		cmocka_unit_test(bools),
	};
	return cmocka_run_group_tests_name("args", tests, NULL, NULL);
}
