#include "src/lib/args.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

/* Reads the leading decimal digits; sets *end past them. */
static int parse_digits(const char *s, const char **end, uint64_t *ret_n)
{
	uint64_t n = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (n > (UINT64_MAX - d) / 10)
			return -ERANGE;
		n = n * 10 + d;
	}
	*end = p;
	*ret_n = n;
	return 0;
}

static int mul_checked(uint64_t a, uint64_t b, uint64_t *ret)
{
	if (b != 0 && a > UINT64_MAX / b)
		return -ERANGE;
	*ret = a * b;
	return 0;
}

int args_parse_uint(const char *s, uint64_t max, uint64_t *ret_n)
{
	const char *end;
	uint64_t n;
	int rv;

	rv = parse_digits(s, &end, &n);
	if (rv != 0)
		return rv;
	if (*end != '\0')
		return -EINVAL;
	if (n > max)
		return -ERANGE;
	*ret_n = n;
	return 0;
}

int args_parse_duration_ms(const char *s, uint64_t *ret_ms)
{
	static const struct { const char *unit; uint64_t ms; } units[] = {
		{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
	};
	const char *end;
	uint64_t n;
	int rv;

	rv = parse_digits(s, &end, &n);
	if (rv != 0)
		return rv;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(end, units[i].unit) == 0)
			return mul_checked(n, units[i].ms, ret_ms);
	}
	return -EINVAL;
}

int args_parse_size(const char *s, uint64_t *ret_bytes)
{
	static const struct { const char *unit; uint64_t mul; } units[] = {
		{"", 1}, {"B", 1},
		{"K", 1000}, {"M", 1000000}, {"G", 1000000000},
		{"Ki", 1024}, {"Mi", 1024 * 1024}, {"Gi", 1024 * 1024 * 1024},
		{"KiB", 1024}, {"MiB", 1024 * 1024}, {"GiB", 1024 * 1024 * 1024},
	};
	const char *end;
	uint64_t n;
	int rv;

	rv = parse_digits(s, &end, &n);
	if (rv != 0)
		return rv;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(end, units[i].unit) == 0)
			return mul_checked(n, units[i].mul, ret_bytes);
	}
	return -EINVAL;
}

int args_parse_bool(const char *s, bool *ret_b)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*ret_b = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*ret_b = false;
			return 0;
		}
	}
	return -EINVAL;
}
