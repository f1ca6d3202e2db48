/* Resource quantities. Exact integer arithmetic on up to 18 significant
 * digits (a wider mantissa would only matter beyond INT64_MAX milli-units
 * anyway); a 128-bit intermediate holds mantissa x 2^60 without loss. */
#include "src/ctrl/quantity.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

__extension__ typedef unsigned __int128 u128;

#define MAX_DIGITS 18

struct parsed {
	bool neg;
	uint64_t mant;  /* significant digits kept */
	bool sticky;    /* non-zero digits dropped after the kept ones */
	int exp10;      /* value = mant x 10^exp10 x 2^exp2 (+ sticky) */
	int exp2;
};

static int parse_suffix(const char *s, struct parsed *p)
{
	static const struct {
		const char *name;
		int exp10, exp2;
	} suffixes[] = {
		{"Ki", 0, 10}, {"Mi", 0, 20}, {"Gi", 0, 30}, {"Ti", 0, 40}, {"Pi", 0, 50},
		{"Ei", 0, 60}, {"n", -9, 0},  {"u", -6, 0},  {"m", -3, 0},  {"k", 3, 0},
		{"M", 6, 0},   {"G", 9, 0},   {"T", 12, 0},  {"P", 15, 0},  {"E", 18, 0},
		{"", 0, 0},
	};
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (strcmp(s, suffixes[i].name) == 0) {
			p->exp10 += suffixes[i].exp10;
			p->exp2 += suffixes[i].exp2;
			return 0;
		}
	}
	/* A decimal exponent: e or E, then a signed integer ("1E" alone is
	 * exa, handled above). */
	if (s[0] != 'e' && s[0] != 'E') {
		return -EINVAL;
	}
	s++;
	bool neg = false;
	if (*s == '+' || *s == '-') {
		neg = *s == '-';
		s++;
	}
	if (*s < '0' || *s > '9') {
		return -EINVAL;
	}
	int e = 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (e < 100000) {
			e = e * 10 + (*s - '0');
		}
	}
	if (*s != '\0') {
		return -EINVAL;
	}
	p->exp10 += neg ? -e : e;
	return 0;
}

static int parse(const char *s, struct parsed *ret)
{
	struct parsed p = {0};
	if (*s == '+' || *s == '-') {
		p.neg = *s == '-';
		s++;
	}
	unsigned kept = 0, seen = 0;
	bool frac = false;
	for (;; s++) {
		if (*s == '.' && !frac) {
			frac = true;
			continue;
		}
		if (*s < '0' || *s > '9') {
			break;
		}
		seen++;
		unsigned d = (unsigned)(*s - '0');
		if (kept == 0 && d == 0) {
			if (frac) {
				p.exp10--; /* leading zeros of a fraction */
			}
			continue;
		}
		if (kept < MAX_DIGITS) {
			p.mant = p.mant * 10 + d;
			kept++;
			if (frac) {
				p.exp10--;
			}
		} else if (frac) {
			p.sticky |= d != 0;
		} else {
			p.exp10++; /* an integer digit beyond precision */
			p.sticky |= d != 0;
		}
	}
	if (seen == 0) {
		return -EINVAL;
	}
	int rv = parse_suffix(s, &p);
	if (rv != 0) {
		return rv;
	}
	*ret = p;
	return 0;
}

/* ceil(|value| x 10^-scale), saturated at INT64_MAX. */
static int64_t scale_up(const struct parsed *p, int scale)
{
	if (p->mant == 0) {
		return p->sticky ? 1 : 0;
	}
	u128 v = (u128)p->mant << p->exp2;
	long e = (long)p->exp10 - scale;
	if (e >= 0) {
		for (long i = 0; i < e; i++) {
			v *= 10;
			if (v > (u128)INT64_MAX) {
				return INT64_MAX;
			}
		}
		return v > (u128)INT64_MAX ? INT64_MAX : (int64_t)v;
	}
	if (e < -38) {
		return 1; /* a positive value below one unit rounds up to it */
	}
	u128 div = 1;
	for (long i = 0; i < -e; i++) {
		div *= 10;
	}
	u128 q = v / div;
	if (v % div != 0 || p->sticky) {
		q++;
	}
	return q > (u128)INT64_MAX ? INT64_MAX : (int64_t)q;
}

int ctrl_quantity_parse(const char *s, int scale, int64_t *ret_value)
{
	struct parsed p;
	if (s == NULL) {
		return -EINVAL;
	}
	int rv = parse(s, &p);
	if (rv != 0) {
		return rv;
	}
	int64_t v = scale_up(&p, scale);
	*ret_value = p.neg ? -v : v;
	return 0;
}

int ctrl_quantity_json(const json_t *v, int scale, int64_t *ret_value)
{
	char buf[64];
	if (json_is_string(v)) {
		return ctrl_quantity_parse(json_string_value(v), scale, ret_value);
	}
	if (json_is_integer(v)) {
		snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	} else if (json_is_real(v)) {
		snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
	} else {
		return -EINVAL;
	}
	return ctrl_quantity_parse(buf, scale, ret_value);
}
