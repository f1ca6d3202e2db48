/* Codecs of API objects: JSON/YAML text, jansson trees and stored msgpack.
 *
 * The msgpack side is read by the small strict reader below rather than
 * msgpack_unpack(): the unpacker builds an object tree in a zone, which is
 * exactly what streaming msgpack -> JSON avoids, and every length it reads
 * is checked against the input here. Writing msgpack goes through
 * msgpack-c's packer (smallest encodings), except container headers of the
 * streaming JSON parser, which does not know a container's size when it
 * opens it: it writes a 5-byte map32/array32 header, patches the count at
 * the close, and shrinks every such header to its smallest form in one
 * final forward pass.
 *
 * All recursion is bounded by CODEC_MAX_DEPTH; skipping a msgpack value
 * needs no recursion at all (a counter of values still to read).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <openssl/evp.h>
#include <yaml.h>

#include "src/lib/codec.h"

/* ------------------------------------------------------------ buffer */

/* Unchecked-result appends for the hot writers: a failed growth sets
 * *oom, which the caller checks once at the end. */
static inline void put(struct buf *b, bool *oom, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->cap - b->len < n && buf_reserve(b, n) != 0) {
		*oom = true;
		return;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static inline void put_c(struct buf *b, bool *oom, char c)
{
	if (b->cap == b->len && buf_reserve(b, 1) != 0) {
		*oom = true;
		return;
	}
	b->data[b->len++] = c;
}

/* msgpack_packer write callback into a struct buf. */
static int buf_write_cb(void *data, const char *p, size_t n)
{
	return buf_append(data, p, n) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ errors */

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static int fail(struct codec_err *err, int code, unsigned long line, unsigned long column,
		const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->line = line;
	err->column = column;
	return code;
}

/* ------------------------------------------------------------ UTF-8 */

/* Length (2..4) of the valid multi-byte UTF-8 sequence at @s, or 0 when
 * it is invalid: overlong forms, surrogates and code points beyond
 * U+10FFFF are invalid, as in RFC 3629. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
	uint8_t c = s[0];

	if (c < 0xc2 || c > 0xf4)
		return 0;
	if (c < 0xe0)
		return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c < 0xf0) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f))
			return 0;
		return 3;
	}
	if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
		return 0;
	if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
		return 0;
	return 4;
}

static void utf8_put(struct buf *b, bool *oom, uint32_t cp)
{
	char u[4];

	if (cp < 0x80) {
		put_c(b, oom, (char)cp);
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		put(b, oom, u, 2);
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		put(b, oom, u, 3);
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		put(b, oom, u, 4);
	}
}

/* @s with every byte of an invalid sequence replaced by U+FFFD, into
 * @scratch; returns @s itself when it is valid already. NULL on OOM. */
static const char *utf8_clean(const char *s, size_t n, struct buf *scratch, size_t *ret_n)
{
	const uint8_t *u = (const uint8_t *)s;
	size_t i = 0, k;
	bool oom = false;

	while (i < n) {
		uint64_t v;

		/* ASCII, 8 bytes at a time (most strings are). */
		if (n - i >= 8 && (memcpy(&v, u + i, 8), (v & 0x8080808080808080ull) == 0)) {
			i += 8;
		} else if (u[i] < 0x80) {
			i++;
		} else if ((k = utf8_seq(u + i, n - i)) != 0) {
			i += k;
		} else {
			break;
		}
	}
	*ret_n = n;
	if (i == n)
		return s;
	scratch->len = 0;
	put(scratch, &oom, s, i);
	while (i < n) {
		if (u[i] < 0x80) {
			put_c(scratch, &oom, s[i]);
			i++;
		} else if ((k = utf8_seq(u + i, n - i)) != 0) {
			put(scratch, &oom, s + i, k);
			i += k;
		} else {
			put(scratch, &oom, "\xef\xbf\xbd", 3);
			i++;
		}
	}
	if (oom)
		return NULL;
	*ret_n = scratch->len;
	return scratch->len == 0 ? "" : scratch->data;
}

/* ------------------------------------------------------------ numbers */

static size_t fmt_u64(char *dst, uint64_t v)
{
	char tmp[20];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		dst[i] = tmp[n - 1 - i];
	return n;
}

static size_t fmt_i64(char *dst, int64_t v)
{
	if (v >= 0)
		return fmt_u64(dst, (uint64_t)v);
	dst[0] = '-';
	return 1 + fmt_u64(dst + 1, (uint64_t)0 - (uint64_t)v);
}

/* The shortest "%.Ng" form of @d that reads back to the same value (as a
 * float when @f32), with ".0" added when it would read back as an
 * integer. @dst has 40 bytes. Returns the length, 0 for NaN/Inf. */
static size_t fmt_double(char *dst, double d, bool f32)
{
	int prec;
	size_t n;

	if (!isfinite(d))
		return 0;
	for (prec = f32 ? 6 : 15; prec <= (f32 ? 9 : 17); prec++) {
		snprintf(dst, 40, "%.*g", prec, d);
		if (f32) {
			float want = (float)d, got = strtof(dst, NULL);
			if (memcmp(&want, &got, sizeof(got)) == 0)
				break;
		} else {
			double got = strtod(dst, NULL);
			if (memcmp(&d, &got, sizeof(got)) == 0)
				break;
		}
	}
	n = strlen(dst);
	if (strpbrk(dst, ".e") == NULL) {
		memcpy(dst + n, ".0", 3);
		n += 2;
	}
	return n;
}

/* ------------------------------------------------------------ msgpack reader */

enum mp_type { MP_NIL, MP_BOOL, MP_UINT, MP_INT, MP_F32, MP_F64, MP_STR, MP_BIN, MP_ARRAY, MP_MAP, MP_EXT };

struct mp_item {
	enum mp_type type;
	bool b;
	uint64_t u;
	int64_t i;
	double d;
	const uint8_t *p; /* body of str, bin, ext */
	uint32_t n;       /* length of str/bin/ext, count of array/map */
};

static inline uint16_t be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* Reads the value header at *pp (and the body of str, bin and ext) and
 * moves *pp past it; a container's elements follow. Errors: -EBADMSG. */
static int mp_read(const uint8_t **pp, const uint8_t *end, struct mp_item *it)
{
	const uint8_t *p = *pp;
	size_t hdr = 0; /* length bytes after the type byte */
	bool body = false;
	uint8_t c;

	if (p >= end)
		return -EBADMSG;
	c = *p++;
	if (c <= 0x7f) {
		it->type = MP_UINT;
		it->u = c;
	} else if (c <= 0x8f) {
		it->type = MP_MAP;
		it->n = c & 0x0fu;
	} else if (c <= 0x9f) {
		it->type = MP_ARRAY;
		it->n = c & 0x0fu;
	} else if (c <= 0xbf) {
		it->type = MP_STR;
		it->n = c & 0x1fu;
		body = true;
	} else if (c >= 0xe0) {
		it->type = MP_INT;
		it->i = (int8_t)c;
	} else {
		static const uint8_t fixed[] = {
			[0xca - 0xc0] = 4, [0xcb - 0xc0] = 8, [0xcc - 0xc0] = 1, [0xcd - 0xc0] = 2,
			[0xce - 0xc0] = 4, [0xcf - 0xc0] = 8, [0xd0 - 0xc0] = 1, [0xd1 - 0xc0] = 2,
			[0xd2 - 0xc0] = 4, [0xd3 - 0xc0] = 8,
		};
		size_t k;

		switch (c) {
		case 0xc0:
			it->type = MP_NIL;
			break;
		case 0xc2:
		case 0xc3:
			it->type = MP_BOOL;
			it->b = c == 0xc3;
			break;
		case 0xc4: case 0xc5: case 0xc6:
			it->type = MP_BIN;
			hdr = (size_t)1 << (c - 0xc4);
			body = true;
			break;
		case 0xd9: case 0xda: case 0xdb:
			it->type = MP_STR;
			hdr = (size_t)1 << (c - 0xd9);
			body = true;
			break;
		case 0xc7: case 0xc8: case 0xc9:
			it->type = MP_EXT;
			hdr = (size_t)1 << (c - 0xc7);
			body = true;
			break;
		case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
			/* fixext: one type byte, then 1..16 bytes. */
			it->type = MP_EXT;
			it->n = 1u << (c - 0xd4);
			if ((size_t)(end - p) < 1 + (size_t)it->n)
				return -EBADMSG;
			it->p = p + 1;
			*pp = p + 1 + it->n;
			return 0;
		case 0xdc: case 0xdd:
			it->type = MP_ARRAY;
			hdr = c == 0xdc ? 2 : 4;
			break;
		case 0xde: case 0xdf:
			it->type = MP_MAP;
			hdr = c == 0xde ? 2 : 4;
			break;
		case 0xca: case 0xcb: case 0xcc: case 0xcd: case 0xce: case 0xcf:
		case 0xd0: case 0xd1: case 0xd2: case 0xd3:
			k = fixed[c - 0xc0];
			if ((size_t)(end - p) < k)
				return -EBADMSG;
			if (c == 0xca) {
				uint32_t w = be32(p);
				float f;
				memcpy(&f, &w, sizeof(f));
				it->type = MP_F32;
				it->d = f;
			} else if (c == 0xcb) {
				uint64_t w = be64(p);
				memcpy(&it->d, &w, sizeof(it->d));
				it->type = MP_F64;
			} else if (c <= 0xcf) {
				it->type = MP_UINT;
				it->u = k == 1 ? p[0] : k == 2 ? be16(p) : k == 4 ? be32(p) : be64(p);
			} else {
				it->type = MP_INT;
				it->i = k == 1 ? (int8_t)p[0] : k == 2 ? (int16_t)be16(p)
				      : k == 4 ? (int32_t)be32(p) : (int64_t)be64(p);
			}
			*pp = p + k;
			return 0;
		default: /* 0xc1 is never used */
			return -EBADMSG;
		}
		if (hdr != 0) {
			if ((size_t)(end - p) < hdr + (it->type == MP_EXT))
				return -EBADMSG;
			it->n = hdr == 1 ? p[0] : hdr == 2 ? be16(p) : be32(p);
			p += hdr + (it->type == MP_EXT);
		}
	}
	if (body) {
		if ((size_t)(end - p) < it->n)
			return -EBADMSG;
		it->p = p;
		p += it->n;
	}
	*pp = p;
	return 0;
}

/* Moves *pp past one whole value. Iterative: a hostile nesting depth
 * costs nothing here. Errors: -EBADMSG. */
static int mp_skip(const uint8_t **pp, const uint8_t *end)
{
	uint64_t left = 1;
	struct mp_item it;

	while (left > 0) {
		if (mp_read(pp, end, &it) != 0)
			return -EBADMSG;
		left--;
		if (it.type == MP_ARRAY)
			left += it.n;
		else if (it.type == MP_MAP)
			left += 2 * (uint64_t)it.n;
	}
	return 0;
}

int codec_msgpack_value_len(const void *mp, size_t len, size_t *ret_len)
{
	const uint8_t *p = mp;

	if (mp_skip(&p, p + len) != 0)
		return -EBADMSG;
	*ret_len = (size_t)(p - (const uint8_t *)mp);
	return 0;
}

int codec_msgpack_map_header(const void *mp, size_t len, uint32_t *ret_n, size_t *ret_hdr)
{
	const uint8_t *p = mp;
	struct mp_item it;

	if (len == 0)
		return -EBADMSG;
	if ((p[0] & 0xf0) != 0x80 && p[0] != 0xde && p[0] != 0xdf)
		return -EINVAL;
	if (mp_read(&p, p + len, &it) != 0)
		return -EBADMSG;
	*ret_n = (uint32_t)it.n;
	*ret_hdr = (size_t)(p - (const uint8_t *)mp);
	return 0;
}

/* ------------------------------------------------------------ msgpack writers */

static int mp_put(struct buf *out, const uint8_t *p, size_t n)
{
	return buf_append(out, p, n);
}

static void be_put(uint8_t *dst, uint64_t v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		dst[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

/* A header of @fix (fixmap/fixarray/fixstr base, @fix_max its largest
 * count) or of the 8/16/32-bit forms @c8 (0: none), @c16, @c32. */
static int mp_header(struct buf *out, uint64_t n, uint8_t fix, uint64_t fix_max, uint8_t c8,
		     uint8_t c16, uint8_t c32)
{
	uint8_t h[5];

	if (n <= fix_max) {
		h[0] = (uint8_t)(fix | n);
		return mp_put(out, h, 1);
	}
	if (c8 != 0 && n <= 0xff) {
		h[0] = c8;
		h[1] = (uint8_t)n;
		return mp_put(out, h, 2);
	}
	if (n <= 0xffff) {
		h[0] = c16;
		be_put(h + 1, n, 2);
		return mp_put(out, h, 3);
	}
	h[0] = c32;
	be_put(h + 1, n, 4);
	return mp_put(out, h, 5);
}

int codec_mp_map(struct buf *out, uint32_t n)
{
	return mp_header(out, n, 0x80, 15, 0, 0xde, 0xdf);
}

int codec_mp_array(struct buf *out, uint32_t n)
{
	return mp_header(out, n, 0x90, 15, 0, 0xdc, 0xdd);
}

int codec_mp_str(struct buf *out, const char *s, size_t n)
{
	int rv;

	if (n > UINT32_MAX)
		return -ERANGE;
	if ((rv = buf_reserve(out, n + 5)) != 0 ||
	    (rv = mp_header(out, n, 0xa0, 31, 0xd9, 0xda, 0xdb)) != 0)
		return rv;
	return mp_put(out, (const uint8_t *)s, n);
}

int codec_mp_cstr(struct buf *out, const char *s)
{
	return codec_mp_str(out, s, strlen(s));
}

int codec_mp_uint(struct buf *out, uint64_t v)
{
	uint8_t h[9];

	if (v <= 0x7f) {
		h[0] = (uint8_t)v;
		return mp_put(out, h, 1);
	}
	if (v <= 0xff) {
		h[0] = 0xcc;
		h[1] = (uint8_t)v;
		return mp_put(out, h, 2);
	}
	if (v <= 0xffff) {
		h[0] = 0xcd;
		be_put(h + 1, v, 2);
		return mp_put(out, h, 3);
	}
	if (v <= 0xffffffffu) {
		h[0] = 0xce;
		be_put(h + 1, v, 4);
		return mp_put(out, h, 5);
	}
	h[0] = 0xcf;
	be_put(h + 1, v, 8);
	return mp_put(out, h, 9);
}

int codec_mp_int(struct buf *out, int64_t v)
{
	uint8_t h[9];

	if (v >= 0)
		return codec_mp_uint(out, (uint64_t)v);
	if (v >= -32) {
		h[0] = (uint8_t)(int8_t)v;
		return mp_put(out, h, 1);
	}
	if (v >= INT8_MIN) {
		h[0] = 0xd0;
		h[1] = (uint8_t)(int8_t)v;
		return mp_put(out, h, 2);
	}
	if (v >= INT16_MIN) {
		h[0] = 0xd1;
		be_put(h + 1, (uint64_t)v, 2);
		return mp_put(out, h, 3);
	}
	if (v >= INT32_MIN) {
		h[0] = 0xd2;
		be_put(h + 1, (uint64_t)v, 4);
		return mp_put(out, h, 5);
	}
	h[0] = 0xd3;
	be_put(h + 1, (uint64_t)v, 8);
	return mp_put(out, h, 9);
}

int codec_mp_nil(struct buf *out)
{
	static const uint8_t nil = 0xc0;

	return mp_put(out, &nil, 1);
}

static int mp_container32_open(struct buf *out, uint8_t c, size_t *ret_at)
{
	uint8_t h[5] = {c, 0, 0, 0, 0};
	size_t at = out->len;
	int rv = mp_put(out, h, sizeof(h));

	if (rv == 0)
		*ret_at = at;
	return rv;
}

int codec_mp_array32_open(struct buf *out, size_t *ret_at)
{
	return mp_container32_open(out, 0xdd, ret_at);
}

int codec_mp_map32_open(struct buf *out, size_t *ret_at)
{
	return mp_container32_open(out, 0xdf, ret_at);
}

void codec_mp_container32_close(struct buf *out, size_t at, uint32_t n)
{
	be_put((uint8_t *)out->data + at + 1, n, 4);
}

/* ------------------------------------------------------------ msgpack -> JSON */

/* 0: copy as is; 1: escape; 2: start of a multi-byte sequence to check. */
static const uint8_t json_class[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* '"' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* '\\' */
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* Whether the 8 bytes at @s need nothing done in a JSON string: none is a
 * control character, '"', '\\' or part of a multi-byte sequence. The
 * classic "has a byte less than" word tests: exact as a yes/no answer. */
static inline bool plain8(const uint8_t *s)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t v, q, bs;

	memcpy(&v, s, sizeof(v));
	q = v ^ (ones * '"');
	bs = v ^ (ones * '\\');
	return ((v | ((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & highs) ==
	       0;
}

/* Appends @s as a JSON string. Invalid UTF-8 bytes become \ufffd, as in
 * Go's encoding/json. */
static void json_put_str(struct buf *b, bool *oom, const uint8_t *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, run = 0, k;
	char e[6];

	if (buf_reserve(b, n + 2) != 0) {
		*oom = true;
		return;
	}
	b->data[b->len++] = '"';
	while (i < n) {
		uint8_t c, cls;

		while (n - i >= 8 && plain8(s + i))
			i += 8;
		if (i == n)
			break;
		c = s[i];
		cls = json_class[c];

		if (cls == 0) {
			i++;
			continue;
		}
		if (cls == 2 && (k = utf8_seq(s + i, n - i)) != 0) {
			i += k;
			continue;
		}
		put(b, oom, s + run, i - run);
		if (cls == 2) {
			put(b, oom, "\\ufffd", 6);
		} else {
			e[0] = '\\';
			switch (c) {
			case '"': e[1] = '"'; break;
			case '\\': e[1] = '\\'; break;
			case '\b': e[1] = 'b'; break;
			case '\f': e[1] = 'f'; break;
			case '\n': e[1] = 'n'; break;
			case '\r': e[1] = 'r'; break;
			case '\t': e[1] = 't'; break;
			default:
				e[1] = 'u';
				e[2] = '0';
				e[3] = '0';
				e[4] = hex[c >> 4];
				e[5] = hex[c & 15];
				put(b, oom, e, 6);
				goto next;
			}
			put(b, oom, e, 2);
		}
next:
		i++;
		run = i;
	}
	put(b, oom, s + run, i - run);
	put_c(b, oom, '"');
}

static void put_base64(struct buf *b, bool *oom, const uint8_t *s, size_t n)
{
	/* EVP_EncodeBlock takes an int: feed it chunks of a multiple of 3. */
	const size_t chunk = 3 * 16384;
	size_t done = 0;

	put_c(b, oom, '"');
	while (done < n && !*oom) {
		size_t k = n - done < chunk ? n - done : chunk;
		size_t enc = 4 * ((k + 2) / 3);

		if (buf_reserve(b, enc + 1) != 0) {
			*oom = true;
			return;
		}
		EVP_EncodeBlock((unsigned char *)b->data + b->len, s + done, (int)k);
		b->len += enc;
		done += k;
	}
	put_c(b, oom, '"');
}

struct jw {
	struct buf *out;
	const uint8_t *start, *end;
	struct codec_err *err;
	bool pretty;
	bool oom;
};

static void jw_newline(struct jw *w, unsigned level)
{
	static const char spaces[] = "                                ";
	size_t n = 2 * (size_t)level;

	put_c(w->out, &w->oom, '\n');
	while (n > 0) {
		size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;
		put(w->out, &w->oom, spaces, k);
		n -= k;
	}
}

static int jw_bad(struct jw *w, const uint8_t *p, const char *what)
{
	return fail(w->err, -EBADMSG, 0, 0, "msgpack: %s at byte %zu", what,
		    (size_t)(p - w->start));
}

static int jw_value(struct jw *w, const uint8_t **pp, unsigned depth)
{
	const uint8_t *at = *pp;
	struct mp_item it;
	char num[40];
	size_t n;
	uint32_t i;
	int r;

	if (mp_read(pp, w->end, &it) != 0)
		return jw_bad(w, at, "truncated or invalid value");
	switch (it.type) {
	case MP_NIL:
		put(w->out, &w->oom, "null", 4);
		return 0;
	case MP_BOOL:
		if (it.b)
			put(w->out, &w->oom, "true", 4);
		else
			put(w->out, &w->oom, "false", 5);
		return 0;
	case MP_UINT:
		put(w->out, &w->oom, num, fmt_u64(num, it.u));
		return 0;
	case MP_INT:
		put(w->out, &w->oom, num, fmt_i64(num, it.i));
		return 0;
	case MP_F32:
	case MP_F64:
		n = fmt_double(num, it.d, it.type == MP_F32);
		if (n == 0)
			return jw_bad(w, at, "NaN or infinity (not JSON)");
		put(w->out, &w->oom, num, n);
		return 0;
	case MP_STR:
		json_put_str(w->out, &w->oom, it.p, it.n);
		return 0;
	case MP_BIN:
		put_base64(w->out, &w->oom, it.p, it.n);
		return 0;
	case MP_EXT:
		return jw_bad(w, at, "unsupported ext type");
	case MP_ARRAY:
		if (depth >= CODEC_MAX_DEPTH)
			return fail(w->err, -ELOOP, 0, 0, "msgpack: nesting deeper than %d",
				    CODEC_MAX_DEPTH);
		put_c(w->out, &w->oom, '[');
		for (i = 0; i < it.n; i++) {
			if (i > 0)
				put_c(w->out, &w->oom, ',');
			if (w->pretty)
				jw_newline(w, depth + 1);
			if ((r = jw_value(w, pp, depth + 1)) != 0)
				return r;
		}
		if (w->pretty && it.n > 0)
			jw_newline(w, depth);
		put_c(w->out, &w->oom, ']');
		return 0;
	case MP_MAP:
		if (depth >= CODEC_MAX_DEPTH)
			return fail(w->err, -ELOOP, 0, 0, "msgpack: nesting deeper than %d",
				    CODEC_MAX_DEPTH);
		put_c(w->out, &w->oom, '{');
		for (i = 0; i < it.n; i++) {
			struct mp_item key;

			if (i > 0)
				put_c(w->out, &w->oom, ',');
			if (w->pretty)
				jw_newline(w, depth + 1);
			at = *pp;
			if (mp_read(pp, w->end, &key) != 0)
				return jw_bad(w, at, "truncated or invalid key");
			if (key.type != MP_STR)
				return jw_bad(w, at, "map key is not a string");
			json_put_str(w->out, &w->oom, key.p, key.n);
			if (w->pretty)
				put(w->out, &w->oom, ": ", 2);
			else
				put_c(w->out, &w->oom, ':');
			if ((r = jw_value(w, pp, depth + 1)) != 0)
				return r;
		}
		if (w->pretty && it.n > 0)
			jw_newline(w, depth);
		put_c(w->out, &w->oom, '}');
		return 0;
	}
	return jw_bad(w, at, "unknown type");
}

int codec_msgpack_to_json(const void *mp, size_t len, unsigned flags, struct buf *out,
			  struct codec_err *err)
{
	struct jw w = {
		.out = out,
		.start = mp,
		.end = (const uint8_t *)mp + len,
		.err = err,
		.pretty = (flags & CODEC_PRETTY) != 0,
	};
	const uint8_t *p = mp;
	size_t saved = out->len;
	int r;

	/* JSON is rarely more than ~1.5x its msgpack: one growth at most. */
	if (buf_reserve(out, len + len / 2 + 16) != 0)
		return fail(err, -ENOMEM, 0, 0, "out of memory");
	r = jw_value(&w, &p, 0);
	if (r == 0 && p != w.end)
		r = jw_bad(&w, p, "trailing bytes after the value");
	if (r == 0 && w.oom)
		r = fail(err, -ENOMEM, 0, 0, "out of memory");
	if (r != 0)
		out->len = saved;
	return r;
}

/* A map's pairs after its header: @drop left out, @extra (JSON text of
 * pairs) added at the end; for codec_msgpack_to_json_with(). */
static int jw_map_with(struct jw *w, const uint8_t **pp, uint32_t n, const char *drop,
		       const char *extra, bool *first)
{
	size_t drop_len = drop != NULL ? strlen(drop) : 0;
	uint32_t i;
	int r;

	for (i = 0; i < n; i++) {
		const uint8_t *at = *pp;
		struct mp_item key;

		if (mp_read(pp, w->end, &key) != 0)
			return jw_bad(w, at, "truncated or invalid key");
		if (key.type != MP_STR)
			return jw_bad(w, at, "map key is not a string");
		if (drop != NULL && key.n == drop_len && memcmp(key.p, drop, drop_len) == 0) {
			if (mp_skip(pp, w->end) != 0)
				return jw_bad(w, *pp, "truncated or invalid value");
			continue;
		}
		if (!*first)
			put_c(w->out, &w->oom, ',');
		*first = false;
		json_put_str(w->out, &w->oom, key.p, key.n);
		put_c(w->out, &w->oom, ':');
		if ((r = jw_value(w, pp, 1)) != 0)
			return r;
	}
	if (extra != NULL && extra[0] != '\0') {
		if (!*first)
			put_c(w->out, &w->oom, ',');
		*first = false;
		put(w->out, &w->oom, extra, strlen(extra));
	}
	return 0;
}

int codec_msgpack_to_json_with(const void *mp, size_t len, const char *in, const char *drop,
			       const char *extra, struct buf *out)
{
	struct jw w = {
		.out = out,
		.start = mp,
		.end = (const uint8_t *)mp + len,
	};
	const uint8_t *p = mp;
	size_t saved = out->len, in_len = strlen(in);
	struct mp_item top;
	bool first = true, has_in = false;
	uint32_t i;
	int r = 0;

	if (len == 0 || !((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf))
		return codec_msgpack_to_json(mp, len, 0, out, NULL);
	if (buf_reserve(out, len + len / 2 + 64) != 0)
		return -ENOMEM;
	if (mp_read(&p, w.end, &top) != 0) {
		r = -EBADMSG;
		goto out;
	}
	put_c(out, &w.oom, '{');
	for (i = 0; i < top.n && r == 0; i++) {
		const uint8_t *at = p;
		struct mp_item key, sub;

		if (mp_read(&p, w.end, &key) != 0 || key.type != MP_STR) {
			r = jw_bad(&w, at, "invalid key");
			break;
		}
		if (!first)
			put_c(out, &w.oom, ',');
		first = false;
		json_put_str(out, &w.oom, key.p, key.n);
		put_c(out, &w.oom, ':');
		at = p;
		if (key.n == in_len && memcmp(key.p, in, in_len) == 0 && p < w.end &&
		    ((*p >= 0x80 && *p <= 0x8f) || *p == 0xde || *p == 0xdf)) {
			bool sub_first = true;

			has_in = true;
			if (mp_read(&p, w.end, &sub) != 0) {
				r = jw_bad(&w, at, "truncated map");
				break;
			}
			put_c(out, &w.oom, '{');
			r = jw_map_with(&w, &p, sub.n, drop, extra, &sub_first);
			put_c(out, &w.oom, '}');
		} else {
			has_in = has_in || (key.n == in_len && memcmp(key.p, in, in_len) == 0);
			r = jw_value(&w, &p, 1);
		}
	}
	if (r == 0 && !has_in && extra != NULL && extra[0] != '\0') {
		if (!first)
			put_c(out, &w.oom, ',');
		json_put_str(out, &w.oom, (const uint8_t *)in, in_len);
		put_c(out, &w.oom, ':');
		put_c(out, &w.oom, '{');
		put(out, &w.oom, extra, strlen(extra));
		put_c(out, &w.oom, '}');
	}
	put_c(out, &w.oom, '}');
	if (r == 0 && p != w.end)
		r = -EBADMSG;
	if (r == 0 && w.oom)
		r = -ENOMEM;
out:
	if (r != 0)
		out->len = saved;
	return r;
}

/* ------------------------------------------------------------ JSON text -> msgpack */

struct jp {
	const char *start, *p, *end;
	struct buf *out;
	msgpack_packer pk;
	unsigned flags;
	struct codec_err *err;
	struct buf str;  /* unescaped string scratch */
	size_t *fix;           /* offsets of 5-byte container headers */
	size_t nfix, capfix;
	size_t *keys;          /* offsets of the keys of the open maps */
	size_t nkeys, capkeys;
	bool dup;              /* a duplicate key was seen (not strict) */
	bool oom;
};

static int jp_fail(struct jp *j, int code, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

static int jp_fail(struct jp *j, int code, const char *fmt, ...)
{
	unsigned long line = 1, col = 1;
	const char *q;
	char what[200];
	va_list ap;

	for (q = j->start; q < j->p && q < j->end; q++) {
		if (*q == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return fail(j->err, code, line, col, "json: line %lu, column %lu: %s", line, col, what);
}

static int jp_push(size_t **v, size_t *n, size_t *cap, size_t x)
{
	if (*n == *cap) {
		size_t c = *cap == 0 ? 64 : *cap * 2;
		size_t *nv = realloc(*v, c * sizeof(*nv));

		if (nv == NULL)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = x;
	return 0;
}

static inline void jp_ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
		j->p++;
}

static int jp_hex4(const char *p, const char *end, uint32_t *ret)
{
	uint32_t v = 0;
	int i;

	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		char c = p[i];
		uint32_t d;

		if (c >= '0' && c <= '9')
			d = (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (uint32_t)(c - 'A' + 10);
		else
			return -1;
		v = v << 4 | d;
	}
	*ret = v;
	return 0;
}

static int jp_pack_str(struct jp *j, const char *s, size_t n)
{
	if (n > UINT32_MAX)
		return jp_fail(j, -EBADMSG, "string too long");
	if (msgpack_pack_str(&j->pk, n) != 0 || msgpack_pack_str_body(&j->pk, s, n) != 0)
		return jp_fail(j, -ENOMEM, "out of memory");
	return 0;
}

/* A string at j->p (on the quote), packed as a msgpack str. */
static int jp_string(struct jp *j)
{
	const char *s = j->p + 1, *q = s, *end = j->end;
	struct buf *b = &j->str;
	bool oom = false;

	while (q < end) {
		uint8_t c;

		/* Plain bytes, 8 at a time. */
		while (end - q >= 8 && plain8((const uint8_t *)q))
			q += 8;
		if (q == end)
			break;
		c = (uint8_t)*q;
		if (c == '"') {
			j->p = q + 1;
			return jp_pack_str(j, s, (size_t)(q - s));
		}
		if (c == '\\' || c < 0x20 || c >= 0x80)
			break;
		q++;
	}
	/* Slow path: escapes, control characters or non-ASCII to check. */
	b->len = 0;
	put(b, &oom, s, (size_t)(q - s));
	while (q < end) {
		uint8_t c = (uint8_t)*q;
		const char *run;
		uint32_t cp, lo;
		size_t k;

		if (c == '"') {
			if (oom)
				return jp_fail(j, -ENOMEM, "out of memory");
			j->p = q + 1;
			return jp_pack_str(j, b->len ? b->data : "", b->len);
		}
		if (c < 0x20) {
			j->p = q;
			return jp_fail(j, -EBADMSG, "control character in string");
		}
		if (c >= 0x80) {
			k = utf8_seq((const uint8_t *)q, (size_t)(end - q));
			if (k == 0) {
				put(b, &oom, "\xef\xbf\xbd", 3);
				q++;
			} else {
				put(b, &oom, q, k);
				q += k;
			}
			continue;
		}
		if (c != '\\') {
			run = q;
			while (q < end && (uint8_t)*q >= 0x20 && *q != '"' && *q != '\\' &&
			       (uint8_t)*q < 0x80)
				q++;
			put(b, &oom, run, (size_t)(q - run));
			continue;
		}
		if (++q == end)
			break;
		switch (*q) {
		case '"': case '\\': case '/':
			put_c(b, &oom, *q);
			q++;
			continue;
		case 'b': put_c(b, &oom, '\b'); q++; continue;
		case 'f': put_c(b, &oom, '\f'); q++; continue;
		case 'n': put_c(b, &oom, '\n'); q++; continue;
		case 'r': put_c(b, &oom, '\r'); q++; continue;
		case 't': put_c(b, &oom, '\t'); q++; continue;
		case 'u':
			if (jp_hex4(q + 1, end, &cp) != 0) {
				j->p = q;
				return jp_fail(j, -EBADMSG, "invalid \\u escape");
			}
			q += 5;
			if (cp >= 0xd800 && cp <= 0xdbff && end - q >= 6 && q[0] == '\\' &&
			    q[1] == 'u' && jp_hex4(q + 2, end, &lo) == 0 && lo >= 0xdc00 &&
			    lo <= 0xdfff) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				q += 6;
			} else if (cp >= 0xd800 && cp <= 0xdfff) {
				cp = 0xfffd; /* lone surrogate, as Go decodes it */
			}
			utf8_put(b, &oom, cp);
			continue;
		default:
			j->p = q;
			return jp_fail(j, -EBADMSG, "invalid escape character");
		}
	}
	j->p = end;
	return jp_fail(j, -EBADMSG, "unterminated string");
}

static inline bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int jp_number(struct jp *j)
{
	const char *s = j->p, *p = s, *end = j->end;
	bool neg = false, is_int = true;
	char small[64];
	char *tok;
	size_t n;
	double d;
	int r;

	if (*p == '-') {
		neg = true;
		p++;
	}
	if (p == end || !is_digit(*p))
		goto bad;
	if (*p == '0')
		p++;
	else
		while (p < end && is_digit(*p))
			p++;
	if (p < end && *p == '.') {
		is_int = false;
		p++;
		if (p == end || !is_digit(*p))
			goto bad;
		while (p < end && is_digit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		is_int = false;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p == end || !is_digit(*p))
			goto bad;
		while (p < end && is_digit(*p))
			p++;
	}
	j->p = p;
	if (is_int) {
		uint64_t v = 0;
		const char *q;

		for (q = s + neg; q < p; q++) {
			unsigned dig = (unsigned)(*q - '0');

			if (v > (UINT64_MAX - dig) / 10)
				goto as_float;
			v = v * 10 + dig;
		}
		if (!neg)
			r = msgpack_pack_uint64(&j->pk, v);
		else if (v <= (uint64_t)INT64_MAX)
			r = msgpack_pack_int64(&j->pk, -(int64_t)v);
		else if (v == (uint64_t)INT64_MAX + 1)
			r = msgpack_pack_int64(&j->pk, INT64_MIN);
		else
			goto as_float;
		return r == 0 ? 0 : jp_fail(j, -ENOMEM, "out of memory");
	}
as_float:
	/* Beyond 64 bits an integer becomes a float64, as in Go. */
	n = (size_t)(p - s);
	if (n < sizeof(small)) {
		tok = small;
	} else {
		j->str.len = 0;
		if (buf_reserve(&j->str, n + 1) != 0)
			return jp_fail(j, -ENOMEM, "out of memory");
		tok = j->str.data;
	}
	memcpy(tok, s, n);
	tok[n] = '\0';
	d = strtod(tok, NULL);
	if (!isfinite(d)) {
		j->p = s;
		return jp_fail(j, -ERANGE, "number out of range");
	}
	if (msgpack_pack_double(&j->pk, d) != 0)
		return jp_fail(j, -ENOMEM, "out of memory");
	return 0;
bad:
	j->p = p;
	return jp_fail(j, -EBADMSG, "invalid number");
}

static int jp_literal(struct jp *j, const char *word, size_t n, uint8_t code)
{
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return jp_fail(j, -EBADMSG, "invalid literal");
	j->p += n;
	if (buf_append(j->out, &code, 1) != 0)
		return jp_fail(j, -ENOMEM, "out of memory");
	return 0;
}

/* The str at offset @off of the output. */
static void jp_key_at(const struct jp *j, size_t off, const char **ret_s, size_t *ret_n)
{
	const uint8_t *p = (const uint8_t *)j->out->data + off;
	struct mp_item it;

	/* Written by us just before: always a complete str. */
	mp_read(&p, (const uint8_t *)j->out->data + j->out->len, &it);
	*ret_s = (const char *)it.p;
	*ret_n = it.n;
}

struct keyref {
	const char *s;
	size_t n;
};

static int keyref_cmp(const void *a, const void *b)
{
	const struct keyref *x = a, *y = b;
	size_t n = x->n < y->n ? x->n : y->n;
	int c = memcmp(x->s, y->s, n);

	if (c != 0)
		return c;
	return x->n < y->n ? -1 : x->n > y->n;
}

/* Looks for equal keys among the map's keys[base..nkeys). */
static int jp_check_dups(struct jp *j, size_t base)
{
	size_t n = j->nkeys - base, a, b;
	struct keyref *v;
	const char *dup = NULL;
	size_t dup_n = 0;

	if (n < 2)
		return 0;
	v = malloc(n * sizeof(*v));
	if (v == NULL)
		return jp_fail(j, -ENOMEM, "out of memory");
	for (a = 0; a < n; a++)
		jp_key_at(j, j->keys[base + a], &v[a].s, &v[a].n);
	if (n <= 12) {
		for (a = 0; a < n && dup == NULL; a++)
			for (b = a + 1; b < n; b++)
				if (keyref_cmp(&v[a], &v[b]) == 0) {
					dup = v[a].s;
					dup_n = v[a].n;
					break;
				}
	} else {
		qsort(v, n, sizeof(*v), keyref_cmp);
		for (a = 1; a < n; a++)
			if (keyref_cmp(&v[a - 1], &v[a]) == 0) {
				dup = v[a].s;
				dup_n = v[a].n;
				break;
			}
	}
	if (dup != NULL && (j->flags & CODEC_STRICT)) {
		char name[64];
		size_t k = dup_n < sizeof(name) - 1 ? dup_n : sizeof(name) - 1;

		memcpy(name, dup, k);
		name[k] = '\0';
		free(v);
		return jp_fail(j, -EEXIST, "duplicate key \"%s\"", name);
	}
	free(v);
	if (dup != NULL)
		j->dup = true;
	return 0;
}

static int jp_value(struct jp *j, unsigned depth);

/* A map or array at j->p; @depth counts it. */
static int jp_container(struct jp *j, unsigned depth, bool is_map)
{
	static const uint8_t hdr_map[5] = {0xdf, 0, 0, 0, 0};
	static const uint8_t hdr_arr[5] = {0xdd, 0, 0, 0, 0};
	char close = is_map ? '}' : ']';
	size_t hdr = j->out->len, keys_base = j->nkeys;
	uint64_t n = 0;
	uint8_t *h;
	int r;

	if (depth > CODEC_MAX_DEPTH)
		return jp_fail(j, -ELOOP, "nesting deeper than %d", CODEC_MAX_DEPTH);
	if (jp_push(&j->fix, &j->nfix, &j->capfix, hdr) != 0 ||
	    buf_append(j->out, is_map ? hdr_map : hdr_arr, 5) != 0)
		return jp_fail(j, -ENOMEM, "out of memory");
	j->p++;
	jp_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	for (;;) {
		jp_ws(j);
		if (is_map) {
			if (j->p == j->end || *j->p != '"')
				return jp_fail(j, -EBADMSG, "expected a string key");
			if (jp_push(&j->keys, &j->nkeys, &j->capkeys, j->out->len) != 0)
				return jp_fail(j, -ENOMEM, "out of memory");
			if ((r = jp_string(j)) != 0)
				return r;
			jp_ws(j);
			if (j->p == j->end || *j->p != ':')
				return jp_fail(j, -EBADMSG, "expected ':'");
			j->p++;
		}
		if ((r = jp_value(j, depth)) != 0)
			return r;
		n++;
		jp_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			break;
		}
		return jp_fail(j, -EBADMSG, is_map ? "expected ',' or '}'" : "expected ',' or ']'");
	}
	if (n > UINT32_MAX)
		return jp_fail(j, -EBADMSG, "too many elements");
	h = (uint8_t *)j->out->data + hdr;
	h[1] = (uint8_t)(n >> 24);
	h[2] = (uint8_t)(n >> 16);
	h[3] = (uint8_t)(n >> 8);
	h[4] = (uint8_t)n;
	if (is_map) {
		r = jp_check_dups(j, keys_base);
		j->nkeys = keys_base;
		return r;
	}
	return 0;
}

static int jp_value(struct jp *j, unsigned depth)
{
	jp_ws(j);
	if (j->p == j->end)
		return jp_fail(j, -EBADMSG, "unexpected end of input");
	switch (*j->p) {
	case '{':
		return jp_container(j, depth + 1, true);
	case '[':
		return jp_container(j, depth + 1, false);
	case '"':
		return jp_string(j);
	case 't':
		return jp_literal(j, "true", 4, 0xc3);
	case 'f':
		return jp_literal(j, "false", 5, 0xc2);
	case 'n':
		return jp_literal(j, "null", 4, 0xc0);
	default:
		if (*j->p == '-' || is_digit(*j->p))
			return jp_number(j);
		return jp_fail(j, -EBADMSG, "invalid character '%c'",
			       (uint8_t)*j->p >= 0x20 && (uint8_t)*j->p < 0x7f ? *j->p : '?');
	}
}

/* Shrinks the 5-byte headers recorded in j->fix (ascending offsets) to
 * their smallest forms, moving the bytes between them forward. */
static void jp_compact(struct jp *j)
{
	uint8_t *d = (uint8_t *)j->out->data;
	size_t r, w, i;

	if (j->nfix == 0)
		return;
	r = w = j->fix[0];
	for (i = 0; i < j->nfix; i++) {
		size_t f = j->fix[i];
		bool is_map = d[f] == 0xdf;
		uint32_t n = be32(d + f + 1);

		memmove(d + w, d + r, f - r);
		w += f - r;
		if (n <= 15) {
			d[w++] = (uint8_t)((is_map ? 0x80 : 0x90) | n);
		} else if (n <= 0xffff) {
			d[w++] = is_map ? 0xde : 0xdc;
			d[w++] = (uint8_t)(n >> 8);
			d[w++] = (uint8_t)n;
		} else {
			d[w++] = is_map ? 0xdf : 0xdd;
			d[w++] = (uint8_t)(n >> 24);
			d[w++] = (uint8_t)(n >> 16);
			d[w++] = (uint8_t)(n >> 8);
			d[w++] = (uint8_t)n;
		}
		r = f + 5;
	}
	memmove(d + w, d + r, j->out->len - r);
	j->out->len = w + (j->out->len - r);
}

int codec_json_to_msgpack(const char *text, size_t len, unsigned flags, struct buf *out,
			  struct codec_err *err)
{
	struct jp j = {
		.start = text,
		.p = text,
		.end = text + len,
		.out = out,
		.flags = flags,
		.err = err,
	};
	size_t saved = out->len;
	int r;

	msgpack_packer_init(&j.pk, out, buf_write_cb);
	r = jp_value(&j, 0);
	if (r == 0) {
		jp_ws(&j);
		if (j.p != j.end)
			r = jp_fail(&j, -EBADMSG, "unexpected data after the value");
	}
	if (r == 0)
		jp_compact(&j);
	if (r == 0 && j.dup) {
		/* Rare: a duplicate key, where the last one must win. jansson
		 * does that while loading (it keeps the first position);
		 * integers beyond int64 fail there, which is acceptable in
		 * such input. */
		json_error_t jerr;
		json_t *t;

		out->len = saved;
		t = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		if (t == NULL)
			r = fail(err, -EBADMSG, (unsigned long)jerr.line, (unsigned long)jerr.column,
				 "json: line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
		else
			r = codec_tree_to_msgpack(t, out, err);
		json_decref(t);
	}
	if (r != 0)
		out->len = saved;
	free(j.fix);
	free(j.keys);
	buf_free(&j.str);
	return r;
}

/* ------------------------------------------------------------ tree <-> msgpack */

static int tree_pack(msgpack_packer *pk, const json_t *v, unsigned depth, struct codec_err *err)
{
	const char *key;
	size_t key_len, i;
	json_t *val;
	int r;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (depth >= CODEC_MAX_DEPTH)
			return fail(err, -ELOOP, 0, 0, "tree: nesting deeper than %d", CODEC_MAX_DEPTH);
		if (json_object_size(v) > UINT32_MAX)
			return fail(err, -EBADMSG, 0, 0, "tree: object too large");
		if (msgpack_pack_map(pk, json_object_size(v)) != 0)
			goto oom;
		json_object_keylen_foreach((json_t *)v, key, key_len, val) {
			if (msgpack_pack_str_with_body(pk, key, key_len) != 0)
				goto oom;
			if ((r = tree_pack(pk, val, depth + 1, err)) != 0)
				return r;
		}
		return 0;
	case JSON_ARRAY:
		if (depth >= CODEC_MAX_DEPTH)
			return fail(err, -ELOOP, 0, 0, "tree: nesting deeper than %d", CODEC_MAX_DEPTH);
		if (json_array_size(v) > UINT32_MAX)
			return fail(err, -EBADMSG, 0, 0, "tree: array too large");
		if (msgpack_pack_array(pk, json_array_size(v)) != 0)
			goto oom;
		for (i = 0; i < json_array_size(v); i++)
			if ((r = tree_pack(pk, json_array_get(v, i), depth + 1, err)) != 0)
				return r;
		return 0;
	case JSON_STRING:
		if (json_string_length(v) > UINT32_MAX)
			return fail(err, -EBADMSG, 0, 0, "tree: string too long");
		if (msgpack_pack_str_with_body(pk, json_string_value(v), json_string_length(v)) != 0)
			goto oom;
		return 0;
	case JSON_INTEGER:
		if (msgpack_pack_int64(pk, json_integer_value(v)) != 0)
			goto oom;
		return 0;
	case JSON_REAL:
		if (!isfinite(json_real_value(v)))
			return fail(err, -EBADMSG, 0, 0, "tree: NaN or infinity");
		if (msgpack_pack_double(pk, json_real_value(v)) != 0)
			goto oom;
		return 0;
	case JSON_TRUE:
		r = msgpack_pack_true(pk);
		break;
	case JSON_FALSE:
		r = msgpack_pack_false(pk);
		break;
	case JSON_NULL:
	default:
		r = msgpack_pack_nil(pk);
		break;
	}
	if (r == 0)
		return 0;
oom:
	return fail(err, -ENOMEM, 0, 0, "out of memory");
}

int codec_tree_to_msgpack(const json_t *v, struct buf *out, struct codec_err *err)
{
	msgpack_packer pk;
	size_t saved = out->len;
	int r;

	msgpack_packer_init(&pk, out, buf_write_cb);
	r = tree_pack(&pk, v, 0, err);
	if (r != 0)
		out->len = saved;
	return r;
}

struct mt {
	const uint8_t *start, *end;
	struct codec_err *err;
	struct buf scratch;
};

static int mt_bad(struct mt *m, const uint8_t *p, const char *what)
{
	return fail(m->err, -EBADMSG, 0, 0, "msgpack: %s at byte %zu", what, (size_t)(p - m->start));
}

static json_t *mt_string(struct mt *m, const uint8_t *s, size_t n)
{
	const char *c = utf8_clean((const char *)s, n, &m->scratch, &n);

	return c == NULL ? NULL : json_stringn_nocheck(c, n);
}

static int mt_value(struct mt *m, const uint8_t **pp, unsigned depth, json_t **ret)
{
	const uint8_t *at = *pp;
	struct mp_item it;
	json_t *v = NULL, *child;
	struct buf b64 = {0};
	bool oom = false;
	uint32_t i;
	int r;

	if (mp_read(pp, m->end, &it) != 0)
		return mt_bad(m, at, "truncated or invalid value");
	switch (it.type) {
	case MP_NIL:
		v = json_null();
		break;
	case MP_BOOL:
		v = json_boolean(it.b);
		break;
	case MP_UINT:
		if (it.u > (uint64_t)INT64_MAX)
			return fail(m->err, -ERANGE, 0, 0, "msgpack: integer beyond int64 at byte %zu",
				    (size_t)(at - m->start));
		v = json_integer((json_int_t)it.u);
		break;
	case MP_INT:
		v = json_integer((json_int_t)it.i);
		break;
	case MP_F32:
	case MP_F64:
		if (!isfinite(it.d))
			return mt_bad(m, at, "NaN or infinity");
		v = json_real(it.d);
		break;
	case MP_STR:
		v = mt_string(m, it.p, it.n);
		break;
	case MP_BIN:
		put_base64(&b64, &oom, it.p, it.n);
		/* Drop the quotes put_base64 writes for JSON. */
		if (!oom)
			v = json_stringn_nocheck(b64.data + 1, b64.len - 2);
		buf_free(&b64);
		break;
	case MP_EXT:
		return mt_bad(m, at, "unsupported ext type");
	case MP_ARRAY:
	case MP_MAP:
		if (depth >= CODEC_MAX_DEPTH)
			return fail(m->err, -ELOOP, 0, 0, "msgpack: nesting deeper than %d",
				    CODEC_MAX_DEPTH);
		v = it.type == MP_ARRAY ? json_array() : json_object();
		if (v == NULL)
			break;
		for (i = 0; i < it.n; i++) {
			struct mp_item key;
			const char *k = NULL;
			char *owned = NULL;
			size_t kn = 0;

			if (it.type == MP_MAP) {
				at = *pp;
				if (mp_read(pp, m->end, &key) != 0) {
					r = mt_bad(m, at, "truncated or invalid key");
					goto fail_child;
				}
				if (key.type != MP_STR) {
					r = mt_bad(m, at, "map key is not a string");
					goto fail_child;
				}
				k = utf8_clean((const char *)key.p, key.n, &m->scratch, &kn);
				if (k == NULL)
					goto oom_child;
				/* The scratch is reused by the value: keep a copy. */
				if (k != (const char *)key.p) {
					owned = malloc(kn + 1);
					if (owned == NULL)
						goto oom_child;
					memcpy(owned, k, kn);
					k = owned;
				}
			}
			r = mt_value(m, pp, depth + 1, &child);
			if (r == 0) {
				if (it.type == MP_ARRAY)
					r = json_array_append_new(v, child);
				else
					r = json_object_setn_new_nocheck(v, k, kn, child);
				if (r != 0)
					r = fail(m->err, -ENOMEM, 0, 0, "out of memory");
			}
			free(owned);
			if (r != 0)
				goto fail_child;
		}
		break;
	}
	if (v == NULL)
		return fail(m->err, -ENOMEM, 0, 0, "out of memory");
	*ret = v;
	return 0;
oom_child:
	r = fail(m->err, -ENOMEM, 0, 0, "out of memory");
fail_child:
	json_decref(v);
	return r;
}

int codec_msgpack_to_tree(const void *mp, size_t len, json_t **ret_tree, struct codec_err *err)
{
	struct mt m = {.start = mp, .end = (const uint8_t *)mp + len, .err = err};
	const uint8_t *p = mp;
	json_t *v = NULL;
	int r;

	r = mt_value(&m, &p, 0, &v);
	if (r == 0 && p != m.end) {
		r = mt_bad(&m, p, "trailing bytes after the value");
		json_decref(v);
	}
	buf_free(&m.scratch);
	if (r == 0)
		*ret_tree = v;
	return r;
}

int codec_msgpack_to_yaml(const void *mp, size_t len, struct buf *out, struct codec_err *err)
{
	json_t *t;
	int r;

	if ((r = codec_msgpack_to_tree(mp, len, &t, err)) != 0)
		return r;
	r = codec_tree_to_yaml(t, out, err);
	json_decref(t);
	return r;
}

/* ------------------------------------------------------------ YAML scalars */

/* Resolution of an untagged plain scalar the way go-yaml v2 does it (its
 * resolve.go), which sigs.k8s.io/yaml uses for Kubernetes. */
enum ykind { Y_STR, Y_NULL, Y_BOOL, Y_INT, Y_UINT, Y_FLOAT, Y_NANINF };

struct yval {
	enum ykind kind;
	bool b;
	int64_t i;
	uint64_t u;
	double d;
};

static const struct {
	const char *s;
	enum ykind kind;
	bool b;
} yaml_words[] = {
	{"y", Y_BOOL, true}, {"Y", Y_BOOL, true}, {"yes", Y_BOOL, true}, {"Yes", Y_BOOL, true},
	{"YES", Y_BOOL, true}, {"true", Y_BOOL, true}, {"True", Y_BOOL, true},
	{"TRUE", Y_BOOL, true}, {"on", Y_BOOL, true}, {"On", Y_BOOL, true}, {"ON", Y_BOOL, true},
	{"n", Y_BOOL, false}, {"N", Y_BOOL, false}, {"no", Y_BOOL, false}, {"No", Y_BOOL, false},
	{"NO", Y_BOOL, false}, {"false", Y_BOOL, false}, {"False", Y_BOOL, false},
	{"FALSE", Y_BOOL, false}, {"off", Y_BOOL, false}, {"Off", Y_BOOL, false},
	{"OFF", Y_BOOL, false}, {"", Y_NULL, false}, {"~", Y_NULL, false},
	{"null", Y_NULL, false}, {"Null", Y_NULL, false}, {"NULL", Y_NULL, false},
	{".nan", Y_NANINF, false}, {".NaN", Y_NANINF, false}, {".NAN", Y_NANINF, false},
	{".inf", Y_NANINF, false}, {".Inf", Y_NANINF, false}, {".INF", Y_NANINF, false},
	{"+.inf", Y_NANINF, false}, {"+.Inf", Y_NANINF, false}, {"+.INF", Y_NANINF, false},
	{"-.inf", Y_NANINF, false}, {"-.Inf", Y_NANINF, false}, {"-.INF", Y_NANINF, false},
};

/* Go's strconv.ParseInt/ParseUint with base 0 (no '_' left): an optional
 * sign when @sign, then 0x/0o/0b or a leading 0 for octal. */
static bool go_parse_uint(const char *s, size_t n, bool sign, bool *ret_neg, uint64_t *ret_mag)
{
	size_t i = 0;
	unsigned base = 10;
	uint64_t v = 0;

	*ret_neg = false;
	if (sign && i < n && (s[i] == '+' || s[i] == '-')) {
		*ret_neg = s[i] == '-';
		i++;
	}
	if (i < n && s[i] == '0' && i + 1 < n) {
		char c = s[i + 1];

		if (c == 'x' || c == 'X') {
			base = 16;
			i += 2;
		} else if (c == 'o' || c == 'O') {
			base = 8;
			i += 2;
		} else if (c == 'b' || c == 'B') {
			base = 2;
			i += 2;
		} else {
			base = 8;
			i += 1;
		}
	}
	if (i == n)
		return false;
	for (; i < n; i++) {
		char c = s[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'z')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'Z')
			d = (unsigned)(c - 'A' + 10);
		else
			return false;
		if (d >= base || v > (UINT64_MAX - d) / base)
			return false;
		v = v * base + d;
	}
	*ret_mag = v;
	return true;
}

/* go-yaml v2's float pattern: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool yaml_float_syntax(const char *s, size_t n)
{
	size_t i = 0, k;

	if (i < n && (s[i] == '+' || s[i] == '-'))
		i++;
	if (i < n && s[i] == '.') {
		for (k = ++i; i < n && is_digit(s[i]); i++)
			;
		if (i == k)
			return false;
	} else {
		for (k = i; i < n && is_digit(s[i]); i++)
			;
		if (i == k)
			return false;
		if (i < n && s[i] == '.')
			for (i++; i < n && is_digit(s[i]); i++)
				;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		for (k = i; i < n && is_digit(s[i]); i++)
			;
		if (i == k)
			return false;
	}
	return i == n;
}

static void yaml_resolve(const char *s, size_t n, struct yval *v)
{
	char small[128], *plain = small;
	size_t i, pn = 0;
	bool neg;
	uint64_t mag;
	char c0 = n > 0 ? s[0] : 'n';

	v->kind = Y_STR;
	/* go-yaml looks further only at these first characters. */
	if (c0 == '\0' ||
	    !(is_digit(c0) || c0 == '+' || c0 == '-' || c0 == '.' || strchr("yYnNtTfFoO~", c0)))
		return;
	for (i = 0; i < sizeof(yaml_words) / sizeof(yaml_words[0]); i++) {
		if (strlen(yaml_words[i].s) == n && memcmp(yaml_words[i].s, s, n) == 0) {
			v->kind = yaml_words[i].kind;
			v->b = yaml_words[i].b;
			return;
		}
	}
	if (!(is_digit(c0) || c0 == '+' || c0 == '-' || c0 == '.'))
		return;
	if (c0 == '.') {
		/* ParseFloat on the text itself (no '_' removal). */
		if (!yaml_float_syntax(s, n) || n >= sizeof(small))
			return;
		memcpy(small, s, n);
		small[n] = '\0';
		v->d = strtod(small, NULL);
		if (isfinite(v->d))
			v->kind = Y_FLOAT;
		return;
	}
	if (n >= sizeof(small) && (plain = malloc(n + 1)) == NULL)
		return; /* out of memory: a string, the safe reading */
	for (i = 0; i < n; i++)
		if (s[i] != '_')
			plain[pn++] = s[i];
	plain[pn] = '\0';
	if (go_parse_uint(plain, pn, true, &neg, &mag)) {
		if (!neg && mag <= (uint64_t)INT64_MAX) {
			v->kind = Y_INT;
			v->i = (int64_t)mag;
			goto out;
		}
		if (neg && mag <= (uint64_t)INT64_MAX + 1) {
			v->kind = Y_INT;
			v->i = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
			goto out;
		}
	}
	if (go_parse_uint(plain, pn, false, &neg, &mag)) {
		v->kind = Y_UINT;
		v->u = mag;
		goto out;
	}
	if (yaml_float_syntax(plain, pn)) {
		v->d = strtod(plain, NULL);
		if (isfinite(v->d))
			v->kind = Y_FLOAT; /* out of range: go-yaml keeps a string */
	}
out:
	if (plain != small)
		free(plain);
}

static json_t *yval_json(const struct yval *v, const char *s, size_t n)
{
	switch (v->kind) {
	case Y_NULL:
		return json_null();
	case Y_BOOL:
		return json_boolean(v->b);
	case Y_INT:
		return json_integer((json_int_t)v->i);
	case Y_UINT:
		/* jansson integers are int64: the nearest double. */
		return json_real((double)v->u);
	case Y_FLOAT:
		/* Go's JSON encoder writes integral floats without a fraction,
		 * so Kubernetes reads them as integers. */
		if (!islessgreater(v->d, trunc(v->d)) && v->d >= -9223372036854775808.0 &&
		    v->d < 9223372036854775808.0)
			return json_integer((json_int_t)v->d);
		return json_real(v->d);
	case Y_STR:
	case Y_NANINF:
	default:
		return json_stringn(s, n);
	}
}

/* ------------------------------------------------------------ YAML -> tree */

struct yanchor {
	char *name;
	json_t *v;
	size_t values; /* expanded size */
	unsigned depth;
};

struct yframe {
	json_t *node;
	char *anchor;
	char *key;        /* pending key of a map (malloc'ed) */
	size_t key_len;
	bool is_map;
	bool merge;       /* the pending key is "<<" */
	json_t *merges;   /* maps to merge at the end (array) */
	yaml_mark_t key_mark;
};

struct yb {
	struct yframe f[CODEC_MAX_DEPTH];
	unsigned depth;
	struct yanchor *anchors;
	size_t nanchors, capanchors;
	size_t alias_values;
	json_t *root;
	unsigned flags;
	struct codec_err *err;
};

static int yfail(struct yb *b, int code, yaml_mark_t mark, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 4, 5)))
#endif
	;

static int yfail(struct yb *b, int code, yaml_mark_t mark, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return fail(b->err, code, (unsigned long)mark.line + 1, (unsigned long)mark.column + 1,
		    "yaml: line %lu, column %lu: %s", (unsigned long)mark.line + 1,
		    (unsigned long)mark.column + 1, what);
}

static void yb_clear_anchors(struct yb *b)
{
	size_t i;

	for (i = 0; i < b->nanchors; i++) {
		free(b->anchors[i].name);
		json_decref(b->anchors[i].v);
	}
	/* alias_values is not reset: the cap holds for the whole stream, or
	 * many small bombs in many documents would add up. */
	b->nanchors = 0;
}

static void yb_clear_frames(struct yb *b)
{
	while (b->depth > 0) {
		struct yframe *f = &b->f[--b->depth];

		json_decref(f->node);
		json_decref(f->merges);
		free(f->anchor);
		free(f->key);
	}
	json_decref(b->root);
	b->root = NULL;
}

/* Values and nesting depth of @v (at most CODEC_MAX_DEPTH deep, since
 * every tree here was built under that limit). */
static size_t tree_measure(const json_t *v, unsigned *ret_depth)
{
	size_t n = 1, i;
	unsigned d, maxd = 0;
	const char *k;
	json_t *c;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, c) {
			n += tree_measure(c, &d);
			if (d > maxd)
				maxd = d;
		}
		*ret_depth = maxd + 1;
	} else if (json_is_array(v)) {
		for (i = 0; i < json_array_size(v); i++) {
			n += tree_measure(json_array_get(v, i), &d);
			if (d > maxd)
				maxd = d;
		}
		*ret_depth = maxd + 1;
	} else {
		*ret_depth = 0;
	}
	return n;
}

static int yb_anchor(struct yb *b, const char *name, json_t *v, yaml_mark_t mark)
{
	struct yanchor *a;

	if (b->nanchors == b->capanchors) {
		size_t cap = b->capanchors == 0 ? 8 : 2 * b->capanchors;
		struct yanchor *na = realloc(b->anchors, cap * sizeof(*na));

		if (na == NULL)
			return yfail(b, -ENOMEM, mark, "out of memory");
		b->anchors = na;
		b->capanchors = cap;
	}
	a = &b->anchors[b->nanchors];
	a->name = strdup(name);
	if (a->name == NULL)
		return yfail(b, -ENOMEM, mark, "out of memory");
	a->v = json_incref(v);
	a->values = tree_measure(v, &a->depth);
	b->nanchors++;
	return 0;
}

/* The string form of a map key, as sigs.k8s.io/yaml converts go-yaml's
 * keys (int, float, bool) to JSON keys. Malloc'ed in *ret_key. */
static int yb_key(struct yb *b, const json_t *v, yaml_mark_t mark, char **ret_key, size_t *ret_len)
{
	char num[48];
	const char *s = num;
	size_t n;
	char *k;

	switch (json_typeof(v)) {
	case JSON_STRING:
		s = json_string_value(v);
		n = json_string_length(v);
		break;
	case JSON_INTEGER:
		n = fmt_i64(num, json_integer_value(v));
		break;
	case JSON_REAL: {
		/* Go: strconv.FormatFloat(f, 'g', -1, 32). */
		int prec;
		for (prec = 1; prec <= 9; prec++) {
			float want = (float)json_real_value(v);
			snprintf(num, sizeof(num), "%.*g", prec, (double)want);
			float got = strtof(num, NULL);
			if (memcmp(&want, &got, sizeof(got)) == 0)
				break;
		}
		n = strlen(num);
		break;
	}
	case JSON_TRUE:
		s = "true";
		n = 4;
		break;
	case JSON_FALSE:
		s = "false";
		n = 5;
		break;
	case JSON_NULL:
		return yfail(b, -EBADMSG, mark, "null map keys are not supported");
	default:
		return yfail(b, -EBADMSG, mark, "map keys must be scalars");
	}
	k = malloc(n + 1);
	if (k == NULL)
		return yfail(b, -ENOMEM, mark, "out of memory");
	memcpy(k, s, n);
	k[n] = '\0';
	*ret_key = k;
	*ret_len = n;
	return 0;
}

/* Takes @v (a new reference) into the open collection, or as the root. */
static int yb_add(struct yb *b, json_t *v, const char *anchor, bool merge_key, yaml_mark_t mark)
{
	struct yframe *f;
	int r;

	if (anchor != NULL && (r = yb_anchor(b, anchor, v, mark)) != 0)
		goto fail_v;
	if (b->depth == 0) {
		b->root = v;
		return 0;
	}
	f = &b->f[b->depth - 1];
	if (!f->is_map) {
		if (json_array_append_new(f->node, v) != 0)
			return yfail(b, -ENOMEM, mark, "out of memory");
		return 0;
	}
	if (f->key == NULL && !f->merge) {
		if (merge_key) {
			f->merge = true;
			f->key_mark = mark;
			json_decref(v);
			return 0;
		}
		r = yb_key(b, v, mark, &f->key, &f->key_len);
		f->key_mark = mark;
		json_decref(v);
		return r;
	}
	if (f->merge) {
		/* Applied at the end of the map, so that explicit keys win
		 * whatever their position (YAML merge key semantics). */
		size_t i;

		f->merge = false;
		if (json_is_array(v)) {
			for (i = 0; i < json_array_size(v); i++)
				if (!json_is_object(json_array_get(v, i)))
					break;
			if (i < json_array_size(v)) {
				r = yfail(b, -EBADMSG, mark, "map merge requires a map or a sequence of maps");
				goto fail_v;
			}
		} else if (!json_is_object(v)) {
			r = yfail(b, -EBADMSG, mark, "map merge requires a map or a sequence of maps");
			goto fail_v;
		}
		if (f->merges == NULL && (f->merges = json_array()) == NULL) {
			r = yfail(b, -ENOMEM, mark, "out of memory");
			goto fail_v;
		}
		if (json_array_append_new(f->merges, v) != 0)
			return yfail(b, -ENOMEM, mark, "out of memory");
		return 0;
	}
	if ((b->flags & CODEC_STRICT) && json_object_getn(f->node, f->key, f->key_len) != NULL) {
		r = yfail(b, -EEXIST, f->key_mark, "duplicate key \"%s\"", f->key);
		goto fail_v;
	}
	r = json_object_setn_new_nocheck(f->node, f->key, f->key_len, v);
	free(f->key);
	f->key = NULL;
	if (r != 0)
		return yfail(b, -ENOMEM, mark, "out of memory");
	return 0;
fail_v:
	json_decref(v);
	return r;
}

/* Adds the merged maps' keys that the map lacks. Earlier maps in a merge
 * sequence win over later ones. */
static int yb_apply_merges(struct yb *b, struct yframe *f, yaml_mark_t mark)
{
	size_t i, k;
	const char *key;
	size_t key_len;
	json_t *val;

	for (i = 0; i < json_array_size(f->merges); i++) {
		json_t *m = json_array_get(f->merges, i);
		size_t nm = json_is_array(m) ? json_array_size(m) : 1;

		for (k = 0; k < nm; k++) {
			json_t *src = json_is_array(m) ? json_array_get(m, k) : m;

			json_object_keylen_foreach(src, key, key_len, val) {
				if (json_object_getn(f->node, key, key_len) != NULL)
					continue;
				if (json_object_setn_nocheck(f->node, key, key_len, val) != 0)
					return yfail(b, -ENOMEM, mark, "out of memory");
			}
		}
	}
	return 0;
}

static int yb_scalar(struct yb *b, const yaml_event_t *e, json_t **ret, bool *ret_merge)
{
	const char *tag = (const char *)e->data.scalar.tag;
	const char *s = (const char *)e->data.scalar.value;
	size_t n = e->data.scalar.length;
	bool plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	const char *want;
	struct yval v;
	json_t *j;

	*ret_merge = false;
	v.kind = Y_STR;
	if (tag == NULL) {
		if (plain) {
			*ret_merge = n == 2 && memcmp(s, "<<", 2) == 0;
			yaml_resolve(s, n, &v);
			if (v.kind == Y_NANINF)
				return yfail(b, -EBADMSG, e->start_mark,
					     "%.*s is not representable in JSON", (int)n, s);
		}
		goto build;
	}
	if (strncmp(tag, "tag:yaml.org,2002:", 18) != 0)
		goto build; /* "!", local and foreign tags: a string */
	want = tag + 18;
	if (strcmp(want, "str") == 0 || strcmp(want, "timestamp") == 0)
		goto build;
	if (strcmp(want, "merge") == 0) {
		*ret_merge = n == 2 && memcmp(s, "<<", 2) == 0;
		goto build;
	}
	if (strcmp(want, "binary") == 0)
		return yfail(b, -EBADMSG, e->start_mark, "!!binary is not supported");
	if (strcmp(want, "null") != 0 && strcmp(want, "bool") != 0 && strcmp(want, "int") != 0 &&
	    strcmp(want, "float") != 0)
		goto build; /* !!map, !!seq, ... on a scalar: keep the text */
	yaml_resolve(s, n, &v);
	if (strcmp(want, "float") == 0 && v.kind == Y_INT) {
		v.kind = Y_FLOAT;
		v.d = (double)v.i;
	} else if (strcmp(want, "float") == 0 && v.kind == Y_UINT) {
		v.kind = Y_FLOAT;
		v.d = (double)v.u;
	}
	if ((strcmp(want, "null") == 0 && v.kind != Y_NULL) ||
	    (strcmp(want, "bool") == 0 && v.kind != Y_BOOL) ||
	    (strcmp(want, "int") == 0 && v.kind != Y_INT && v.kind != Y_UINT) ||
	    (strcmp(want, "float") == 0 && v.kind != Y_FLOAT && v.kind != Y_NANINF))
		return yfail(b, -EBADMSG, e->start_mark, "cannot decode `%.*s` as a !!%s",
			     (int)(n > 40 ? 40 : n), s, want);
	if (v.kind == Y_NANINF)
		return yfail(b, -EBADMSG, e->start_mark, "%.*s is not representable in JSON",
			     (int)n, s);
build:
	j = yval_json(&v, s, n);
	if (j == NULL)
		return yfail(b, v.kind == Y_STR ? -EBADMSG : -ENOMEM, e->start_mark,
			     v.kind == Y_STR ? "invalid UTF-8" : "out of memory");
	*ret = j;
	return 0;
}

static int yb_event(struct yb *b, const yaml_event_t *e, json_t *docs)
{
	struct yframe *f;
	const char *anchor = NULL;
	bool merge = false;
	json_t *v = NULL;
	size_t i;
	int r;

	switch (e->type) {
	case YAML_DOCUMENT_START_EVENT:
		yb_clear_anchors(b);
		return 0;
	case YAML_DOCUMENT_END_EVENT:
		v = b->root != NULL ? b->root : json_null();
		b->root = NULL;
		yb_clear_anchors(b);
		if (json_array_append_new(docs, v) != 0)
			return yfail(b, -ENOMEM, e->start_mark, "out of memory");
		return 0;
	case YAML_SCALAR_EVENT:
		if ((r = yb_scalar(b, e, &v, &merge)) != 0)
			return r;
		return yb_add(b, v, (const char *)e->data.scalar.anchor, merge, e->start_mark);
	case YAML_ALIAS_EVENT:
		anchor = (const char *)e->data.alias.anchor;
		for (i = b->nanchors; i > 0; i--)
			if (strcmp(b->anchors[i - 1].name, anchor) == 0)
				break;
		if (i == 0)
			return yfail(b, -EBADMSG, e->start_mark, "unknown anchor '%s' referenced",
				     anchor);
		struct yanchor *a = &b->anchors[i - 1];
		b->alias_values += a->values;
		if (b->alias_values > CODEC_YAML_MAX_ALIAS_VALUES)
			return yfail(b, -E2BIG, e->start_mark,
				     "aliases expand to more than %d values",
				     CODEC_YAML_MAX_ALIAS_VALUES);
		if (b->depth + a->depth > CODEC_MAX_DEPTH)
			return yfail(b, -ELOOP, e->start_mark, "nesting deeper than %d",
				     CODEC_MAX_DEPTH);
		v = json_deep_copy(a->v);
		if (v == NULL)
			return yfail(b, -ENOMEM, e->start_mark, "out of memory");
		/* An alias used as a key is never a merge key. */
		return yb_add(b, v, NULL, false, e->start_mark);
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		if (b->depth >= CODEC_MAX_DEPTH)
			return yfail(b, -ELOOP, e->start_mark, "nesting deeper than %d",
				     CODEC_MAX_DEPTH);
		f = &b->f[b->depth];
		memset(f, 0, sizeof(*f));
		f->is_map = e->type == YAML_MAPPING_START_EVENT;
		f->node = f->is_map ? json_object() : json_array();
		anchor = (const char *)(f->is_map ? e->data.mapping_start.anchor
						  : e->data.sequence_start.anchor);
		if (anchor != NULL)
			f->anchor = strdup(anchor);
		if (f->node == NULL || (anchor != NULL && f->anchor == NULL)) {
			json_decref(f->node);
			free(f->anchor);
			return yfail(b, -ENOMEM, e->start_mark, "out of memory");
		}
		b->depth++;
		return 0;
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT: {
		char *name;

		f = &b->f[b->depth - 1];
		if (f->merges != NULL && (r = yb_apply_merges(b, f, e->start_mark)) != 0)
			return r;
		v = f->node;
		name = f->anchor;
		json_decref(f->merges);
		free(f->key);
		b->depth--;
		r = yb_add(b, v, name, false, e->start_mark);
		free(name);
		return r;
	}
	case YAML_STREAM_START_EVENT:
	case YAML_STREAM_END_EVENT:
	case YAML_NO_EVENT:
	default:
		return 0;
	}
}

int codec_yaml_to_tree(const char *text, size_t len, unsigned flags, json_t **ret_docs,
		       struct codec_err *err)
{
	yaml_parser_t parser;
	yaml_event_t event;
	struct yb *b;
	json_t *docs;
	bool done = false;
	int r = 0;

	b = calloc(1, sizeof(*b));
	docs = json_array();
	if (b == NULL || docs == NULL) {
		free(b);
		json_decref(docs);
		return fail(err, -ENOMEM, 0, 0, "out of memory");
	}
	b->flags = flags;
	b->err = err;
	if (!yaml_parser_initialize(&parser)) {
		r = fail(err, -ENOMEM, 0, 0, "out of memory");
		goto out_b;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (!done && r == 0) {
		if (!yaml_parser_parse(&parser, &event)) {
			yaml_mark_t m = parser.problem_mark;

			if (parser.error == YAML_MEMORY_ERROR)
				r = fail(err, -ENOMEM, 0, 0, "out of memory");
			else if (parser.context != NULL)
				r = yfail(b, -EBADMSG, m, "%s (%s at line %lu)",
					  parser.problem ? parser.problem : "syntax error",
					  parser.context, (unsigned long)parser.context_mark.line + 1);
			else
				r = yfail(b, -EBADMSG, m, "%s",
					  parser.problem ? parser.problem : "syntax error");
			break;
		}
		done = event.type == YAML_STREAM_END_EVENT;
		r = yb_event(b, &event, docs);
		yaml_event_delete(&event);
	}
	yaml_parser_delete(&parser);
out_b:
	yb_clear_frames(b);
	yb_clear_anchors(b);
	free(b->anchors);
	free(b);
	if (r != 0) {
		json_decref(docs);
		return r;
	}
	*ret_docs = docs;
	return 0;
}

/* ------------------------------------------------------------ tree -> YAML */

static int ye_write_cb(void *data, unsigned char *buffer, size_t size)
{
	return buf_append(data, buffer, size) == 0;
}

/* Whether plain @s would read back as something else than this string
 * (here or in a YAML 1.1 reader: timestamps, sexagesimal numbers). */
static bool yaml_needs_quotes(const char *s, size_t n)
{
	struct yval v;

	if (n == 0 || (n == 2 && memcmp(s, "<<", 2) == 0))
		return true;
	yaml_resolve(s, n, &v);
	if (v.kind != Y_STR)
		return true;
	if (is_digit(s[0]) && (memchr(s, ':', n) != NULL || memchr(s, '-', n) != NULL))
		return true;
	return false;
}

static int ye_scalar(yaml_emitter_t *em, const char *s, size_t n, bool is_str,
		     struct codec_err *err)
{
	yaml_scalar_style_t style = YAML_ANY_SCALAR_STYLE;
	yaml_event_t ev;

	if (n > INT_MAX)
		return fail(err, -EBADMSG, 0, 0, "yaml: string too long");
	if (is_str) {
		if (yaml_needs_quotes(s, n))
			style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
		else if (memchr(s, '\n', n) != NULL)
			style = YAML_LITERAL_SCALAR_STYLE;
	}
	if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (const yaml_char_t *)s, (int)n, 1, 1,
					  style) ||
	    !yaml_emitter_emit(em, &ev))
		return fail(err, -ENOMEM, 0, 0, "yaml: %s",
			    em->problem != NULL ? em->problem : "out of memory");
	return 0;
}

static int ye_node(yaml_emitter_t *em, const json_t *v, unsigned depth, struct codec_err *err)
{
	yaml_event_t ev;
	const char *key;
	size_t key_len, i;
	json_t *val;
	char num[48];
	int r, ok;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
	case JSON_ARRAY:
		if (depth >= CODEC_MAX_DEPTH)
			return fail(err, -ELOOP, 0, 0, "tree: nesting deeper than %d", CODEC_MAX_DEPTH);
		if (json_is_object(v))
			ok = yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
								 YAML_BLOCK_MAPPING_STYLE);
		else
			ok = yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
								  YAML_BLOCK_SEQUENCE_STYLE);
		if (!ok || !yaml_emitter_emit(em, &ev))
			goto emit_err;
		if (json_is_object(v)) {
			json_object_keylen_foreach((json_t *)v, key, key_len, val) {
				if ((r = ye_scalar(em, key, key_len, true, err)) != 0 ||
				    (r = ye_node(em, val, depth + 1, err)) != 0)
					return r;
			}
			ok = yaml_mapping_end_event_initialize(&ev);
		} else {
			for (i = 0; i < json_array_size(v); i++)
				if ((r = ye_node(em, json_array_get(v, i), depth + 1, err)) != 0)
					return r;
			ok = yaml_sequence_end_event_initialize(&ev);
		}
		if (!ok || !yaml_emitter_emit(em, &ev))
			goto emit_err;
		return 0;
	case JSON_STRING:
		return ye_scalar(em, json_string_value(v), json_string_length(v), true, err);
	case JSON_INTEGER:
		return ye_scalar(em, num, fmt_i64(num, json_integer_value(v)), false, err);
	case JSON_REAL: {
		size_t n = fmt_double(num, json_real_value(v), false);
		if (n == 0)
			return fail(err, -EBADMSG, 0, 0, "tree: NaN or infinity");
		return ye_scalar(em, num, n, false, err);
	}
	case JSON_TRUE:
		return ye_scalar(em, "true", 4, false, err);
	case JSON_FALSE:
		return ye_scalar(em, "false", 5, false, err);
	case JSON_NULL:
	default:
		return ye_scalar(em, "null", 4, false, err);
	}
emit_err:
	return fail(err, -ENOMEM, 0, 0, "yaml: %s",
		    em->problem != NULL ? em->problem : "out of memory");
}

int codec_tree_to_yaml(const json_t *v, struct buf *out, struct codec_err *err)
{
	yaml_emitter_t em;
	yaml_event_t ev;
	size_t saved = out->len;
	int r = 0;

	if (!yaml_emitter_initialize(&em))
		return fail(err, -ENOMEM, 0, 0, "out of memory");
	yaml_emitter_set_output(&em, ye_write_cb, out);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_indent(&em, 2);
	yaml_emitter_set_width(&em, -1);
	if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) ||
	    !yaml_emitter_emit(&em, &ev) ||
	    !yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) ||
	    !yaml_emitter_emit(&em, &ev)) {
		r = fail(err, -ENOMEM, 0, 0, "yaml: out of memory");
		goto out;
	}
	if ((r = ye_node(&em, v, 0, err)) != 0)
		goto out;
	if (!yaml_document_end_event_initialize(&ev, 1) || !yaml_emitter_emit(&em, &ev) ||
	    !yaml_stream_end_event_initialize(&ev) || !yaml_emitter_emit(&em, &ev) ||
	    !yaml_emitter_flush(&em))
		r = fail(err, -ENOMEM, 0, 0, "yaml: out of memory");
out:
	yaml_emitter_delete(&em);
	if (r != 0)
		out->len = saved;
	return r;
}

/* ------------------------------------------------------------ accessors */

/* Moves *pp from a map or array value to its element @seg. */
static int mp_step(const uint8_t **pp, const uint8_t *end, const char *seg, size_t n)
{
	struct mp_item it, key;
	uint64_t idx = 0;
	uint32_t i;
	size_t k;

	if (mp_read(pp, end, &it) != 0)
		return -EBADMSG;
	if (it.type == MP_MAP) {
		for (i = 0; i < it.n; i++) {
			if (mp_read(pp, end, &key) != 0)
				return -EBADMSG;
			if (key.type == MP_STR && key.n == n && memcmp(key.p, seg, n) == 0)
				return 0;
			/* Not a str key: skip its body too if it is a container. */
			if ((key.type == MP_ARRAY || key.type == MP_MAP) && key.n > 0) {
				uint64_t left = key.type == MP_MAP ? 2 * (uint64_t)key.n : key.n;
				while (left-- > 0)
					if (mp_skip(pp, end) != 0)
						return -EBADMSG;
			}
			if (mp_skip(pp, end) != 0)
				return -EBADMSG;
		}
		return -ENOENT;
	}
	if (it.type != MP_ARRAY)
		return -ENOTDIR;
	if (n == 0 || n > 10)
		return n == 0 ? -ENOTDIR : -ENOENT;
	for (k = 0; k < n; k++) {
		if (!is_digit(seg[k]))
			return -ENOTDIR;
		idx = idx * 10 + (uint64_t)(seg[k] - '0');
	}
	if (idx >= it.n)
		return -ENOENT;
	for (; idx > 0; idx--)
		if (mp_skip(pp, end) != 0)
			return -EBADMSG;
	return 0;
}

int codec_msgpack_get(const void *mp, size_t len, const char *path, const void **ret_val,
		      size_t *ret_len)
{
	const uint8_t *p = mp, *end = p + len, *v;
	const char *seg = path;
	int r;

	while (*path != '\0') {
		const char *dot = strchr(seg, '.');
		size_t n = dot != NULL ? (size_t)(dot - seg) : strlen(seg);

		if ((r = mp_step(&p, end, seg, n)) != 0)
			return r;
		if (dot == NULL)
			break;
		seg = dot + 1;
	}
	v = p;
	if (mp_skip(&p, end) != 0)
		return -EBADMSG;
	*ret_val = v;
	*ret_len = (size_t)(p - v);
	return 0;
}

int codec_msgpack_map_get(const void *mp, size_t len, const char *key, size_t key_len,
			  const void **ret_val, size_t *ret_len)
{
	const uint8_t *p = mp, *end = p + len, *v;
	struct mp_item it;
	int r;

	if (mp_read(&p, end, &it) != 0)
		return -EBADMSG;
	if (it.type != MP_MAP)
		return -ENOTDIR;
	p = mp;
	if ((r = mp_step(&p, end, key, key_len)) != 0)
		return r;
	v = p;
	if (mp_skip(&p, end) != 0)
		return -EBADMSG;
	*ret_val = v;
	*ret_len = (size_t)(p - v);
	return 0;
}

int codec_msgpack_str(const void *mp, size_t len, const char **ret_str, size_t *ret_len)
{
	const uint8_t *p = mp;
	struct mp_item it;

	if (mp_read(&p, p + len, &it) != 0)
		return -EBADMSG;
	if (it.type != MP_STR)
		return -EINVAL;
	*ret_str = (const char *)it.p;
	*ret_len = it.n;
	return 0;
}

int codec_msgpack_int(const void *mp, size_t len, int64_t *ret_value)
{
	const uint8_t *p = mp;
	struct mp_item it;

	if (mp_read(&p, p + len, &it) != 0)
		return -EBADMSG;
	if (it.type == MP_INT) {
		*ret_value = it.i;
		return 0;
	}
	if (it.type != MP_UINT)
		return -EINVAL;
	if (it.u > (uint64_t)INT64_MAX)
		return -ERANGE;
	*ret_value = (int64_t)it.u;
	return 0;
}

int codec_msgpack_get_str(const void *mp, size_t len, const char *path, const char **ret_str,
			  size_t *ret_len)
{
	const void *v;
	size_t n;
	int r;

	if ((r = codec_msgpack_get(mp, len, path, &v, &n)) != 0)
		return r;
	return codec_msgpack_str(v, n, ret_str, ret_len);
}

/* ------------------------------------------------------------ msgpack edits */

int codec_msgpack_map_edit(const void *mp, size_t len, const struct codec_mp_edit *edits,
			   size_t n_edits, struct buf *out)
{
	const uint8_t *p = mp, *end = p + len, *k, *v;
	size_t start = out->len, hdr, body, hl;
	uint64_t seen = 0, count = 0;
	uint32_t n, i;
	struct mp_item it;
	uint8_t h[5];
	int rv;

	if (n_edits > 64)
		return -EINVAL;
	rv = codec_msgpack_map_header(mp, len, &n, &hdr);
	if (rv != 0)
		return rv;
	p += hdr;
	/* The pairs go after room for the largest header, which then moves
	 * next to them once the count is known. */
	if (buf_reserve(out, len + 5) != 0)
		return -ENOMEM;
	out->len += 5;
	for (i = 0; i < n; i++) {
		const struct codec_mp_edit *e = NULL;
		size_t j;

		k = p;
		if (mp_read(&p, end, &it) != 0)
			goto bad;
		if (it.type == MP_STR) {
			for (j = 0; j < n_edits; j++) {
				if (edits[j].key_len == it.n &&
				    memcmp(edits[j].key, it.p, it.n) == 0) {
					e = &edits[j];
					seen |= (uint64_t)1 << j;
					break;
				}
			}
		} else if (it.type == MP_ARRAY || it.type == MP_MAP) {
			p = k;
			if (mp_skip(&p, end) != 0)
				goto bad;
		}
		v = p;
		if (mp_skip(&p, end) != 0)
			goto bad;
		if (e != NULL && e->val == NULL)
			continue;
		count++;
		if (buf_append(out, k, (size_t)(v - k)) != 0)
			goto oom;
		if (e != NULL ? buf_append(out, e->val, e->val_len) != 0
			      : buf_append(out, v, (size_t)(p - v)) != 0)
			goto oom;
	}
	if (p != end)
		goto bad;
	for (size_t j = 0; j < n_edits; j++) {
		if ((seen & ((uint64_t)1 << j)) != 0 || edits[j].val == NULL)
			continue;
		count++;
		if (codec_mp_str(out, edits[j].key, edits[j].key_len) != 0 ||
		    buf_append(out, edits[j].val, edits[j].val_len) != 0)
			goto oom;
	}
	if (count > UINT32_MAX)
		goto bad;
	if (count <= 15) {
		h[0] = (uint8_t)(0x80 | count);
		hl = 1;
	} else if (count <= 0xffff) {
		h[0] = 0xde;
		be_put(h + 1, count, 2);
		hl = 3;
	} else {
		h[0] = 0xdf;
		be_put(h + 1, count, 4);
		hl = 5;
	}
	body = out->len - start - 5;
	memcpy(out->data + start, h, hl);
	memmove(out->data + start + hl, out->data + start + 5, body);
	out->len = start + hl + body;
	out->data[out->len] = '\0';
	return 0;
bad:
	rv = -EBADMSG;
	goto fail;
oom:
	rv = -ENOMEM;
fail:
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	return rv;
}

int codec_msgpack_array_header(const void *mp, size_t len, uint32_t *ret_n, size_t *ret_hdr)
{
	const uint8_t *p = mp;
	struct mp_item it;

	if (len == 0)
		return -EBADMSG;
	if ((p[0] & 0xf0) != 0x90 && p[0] != 0xdc && p[0] != 0xdd)
		return -EINVAL;
	if (mp_read(&p, p + len, &it) != 0)
		return -EBADMSG;
	*ret_n = it.n;
	*ret_hdr = (size_t)(p - (const uint8_t *)mp);
	return 0;
}
