/* Computed Table cells from stored msgpack: the dispatch by kind and a
 * small cursor over the bytes (src/lib/codec.h does the decoding). */
#include <errno.h>
#include <string.h>

#include "src/api/cells_mp.h"
#include "src/api/kinds/kinds.h"
#include "src/lib/codec.h"

/* ext values: the tree decoder refuses them. */
static bool is_ext(uint8_t b)
{
	return (b >= 0xc7 && b <= 0xc9) || (b >= 0xd4 && b <= 0xd8);
}

/* bin values: the tree decoder turns them into base64 strings. */
static bool is_bin(uint8_t b)
{
	return b >= 0xc4 && b <= 0xc6;
}

/* Moves past one whole msgpack value at @p: NULL when it is truncated or
 * invalid. codec_msgpack_value_len() without the item decoding, as these
 * walks skip most of every object (the pod spec, the container statuses'
 * other fields). Iterative, every length checked against @end. */
static const uint8_t *mp_skip_fast(const uint8_t *p, const uint8_t *end)
{
	uint64_t left = 1;
	size_t n;

	while (left > 0) {
		uint8_t c;

		if (p >= end)
			return NULL;
		c = *p++;
		left--;
		if (c <= 0x7f || c >= 0xe0)
			continue; /* fixint */
		if (c >= 0xa0 && c <= 0xbf) {
			n = c & 0x1fu;
			if ((size_t)(end - p) < n)
				return NULL;
			p += n;
			continue;
		}
		if (c <= 0x8f) {
			left += 2u * (c & 0x0fu);
			continue;
		}
		if (c <= 0x9f) {
			left += c & 0x0fu;
			continue;
		}
		switch (c) {
		case 0xc0: case 0xc2: case 0xc3:
			continue;
		case 0xcc: case 0xd0:
			n = 1;
			break;
		case 0xcd: case 0xd1:
			n = 2;
			break;
		case 0xca: case 0xce: case 0xd2:
			n = 4;
			break;
		case 0xcb: case 0xcf: case 0xd3:
			n = 8;
			break;
		case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
			n = 1 + ((size_t)1 << (c - 0xd4)); /* fixext: type byte + data */
			break;
		case 0xc4: case 0xc7: case 0xd9:
			if (end - p < 1)
				return NULL;
			n = 1 + (size_t)p[0] + (c == 0xc7);
			break;
		case 0xc5: case 0xc8: case 0xda:
			if (end - p < 2)
				return NULL;
			n = 2 + ((size_t)p[0] << 8 | p[1]) + (c == 0xc8);
			break;
		case 0xc6: case 0xc9: case 0xdb:
			if (end - p < 4)
				return NULL;
			n = 4 + ((size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3]) +
			    (c == 0xc9);
			break;
		case 0xdc: case 0xdd:
		case 0xde: case 0xdf: {
			size_t h = c == 0xdc || c == 0xde ? 2 : 4;
			uint64_t k;

			if ((size_t)(end - p) < h)
				return NULL;
			k = h == 2 ? ((uint64_t)p[0] << 8 | p[1])
				   : ((uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3]);
			left += c >= 0xde ? 2 * k : k;
			p += h;
			continue;
		}
		default: /* 0xc1 */
			return NULL;
		}
		if ((size_t)(end - p) < n)
			return NULL;
		p += n;
	}
	return p;
}

int api__mp_value_len(const void *mp, size_t len, size_t *ret_len)
{
	const uint8_t *p = mp, *e = mp_skip_fast(p, p + len);

	if (e == NULL)
		return -EBADMSG;
	*ret_len = (size_t)(e - p);
	return 0;
}

/* A map key: a fixstr at once, anything else through the codec. */
static int mp_key(const uint8_t *p, const uint8_t *end, const char **ret_k, size_t *ret_n)
{
	if (p < end && (*p & 0xe0) == 0xa0) {
		size_t n = *p & 0x1fu;

		if ((size_t)(end - p - 1) < n)
			return -EBADMSG;
		*ret_k = (const char *)p + 1;
		*ret_n = n;
		return 0;
	}
	return codec_msgpack_str(p, (size_t)(end - p), ret_k, ret_n) != 0 ? -EBADMSG : 0;
}

bool api_table_cells_mp_supported(const struct api_kind *k)
{
	return k == &api__kind_pod;
}

int api_table_cells_mp(const struct api_kind *k, const void *mp, size_t len, int64_t now,
		       struct api_cells_mp *ret)
{
	memset(ret->cell, 0, sizeof(ret->cell));
	memset(ret->resolved, 0, sizeof(ret->resolved));
	ret->created_known = false;
	ret->used = 0;
	if (k == &api__kind_pod)
		return api__pod_cells_mp(mp, len, now, ret);
	return -ENOTSUP;
}

int api__mp_pick_end(struct api__mpv map, const char *const *keys, size_t n,
		     struct api__mpv *ret_vals, const uint8_t **ret_end)
{
	const uint8_t *p, *end;
	size_t klen[16], hdr, vl, kn, j;
	const char *k;
	uint32_t count, i;
	int rc;

	if (n > 16)
		return -EINVAL;
	for (j = 0; j < n; j++) {
		ret_vals[j].p = NULL;
		ret_vals[j].len = 0;
		klen[j] = strlen(keys[j]);
	}
	if (map.p == NULL) {
		if (ret_end != NULL)
			*ret_end = NULL;
		return 0;
	}
	rc = codec_msgpack_map_header(map.p, map.len, &count, &hdr);
	if (rc == -EINVAL) {
		/* Not a map: no keys, but the caller may need its end. */
		if (ret_end != NULL) {
			if (api__mp_value_len(map.p, map.len, &vl) != 0)
				return -EBADMSG;
			*ret_end = map.p + vl;
		}
		return 0;
	}
	if (rc != 0)
		return -EBADMSG;
	p = map.p + hdr;
	end = map.p + map.len;
	for (i = 0; i < count; i++) {
		if (mp_key(p, end, &k, &kn) != 0)
			return -EBADMSG;
		p = (const uint8_t *)k + kn;
		if (api__mp_value_len(p, (size_t)(end - p), &vl) != 0)
			return -EBADMSG;
		for (j = 0; j < n; j++)
			if (kn == klen[j] && memcmp(k, keys[j], kn) == 0) {
				ret_vals[j].p = p;
				ret_vals[j].len = vl;
			}
		p += vl;
	}
	if (ret_end != NULL)
		*ret_end = p;
	return 0;
}

int api__mp_pick(struct api__mpv map, const char *const *keys, size_t n, struct api__mpv *ret_vals)
{
	return api__mp_pick_end(map, keys, n, ret_vals, NULL);
}

int api__mp_iter_init(struct api__mpv v, struct api__mp_iter *it)
{
	size_t hdr;
	uint32_t n;
	int rc;

	memset(it, 0, sizeof(*it));
	if (v.p == NULL)
		return 0;
	rc = codec_msgpack_array_header(v.p, v.len, &n, &hdr);
	if (rc == -EINVAL)
		return 0;
	if (rc != 0)
		return -EBADMSG;
	it->p = v.p + hdr;
	it->end = v.p + v.len;
	it->left = n;
	it->index = UINT32_MAX;
	return 0;
}

int api__mp_next(struct api__mp_iter *it, struct api__mpv *ret_v)
{
	size_t vl;

	if (it->left == 0)
		return 0;
	if (api__mp_value_len(it->p, (size_t)(it->end - it->p), &vl) != 0)
		return -EBADMSG;
	ret_v->p = it->p;
	ret_v->len = vl;
	it->p += vl;
	it->left--;
	it->index++;
	return 1;
}

uint32_t api__mp_array_size(struct api__mpv v)
{
	size_t hdr;
	uint32_t n;

	if (v.p == NULL || codec_msgpack_array_header(v.p, v.len, &n, &hdr) != 0)
		return 0;
	return n;
}

int api__mp_str(struct api__mpv v, const char **ret_s, size_t *ret_n)
{
	const char *s, *nul;
	size_t n, i;
	int rc;

	*ret_s = NULL;
	*ret_n = 0;
	if (v.p == NULL)
		return 0;
	if (is_bin(v.p[0]) || is_ext(v.p[0]))
		return -EAGAIN;
	rc = codec_msgpack_str(v.p, v.len, &s, &n);
	if (rc == -EINVAL)
		return 0;
	if (rc != 0)
		return -EBADMSG;
	/* C code stops at the first NUL of a tree's string. */
	if ((nul = memchr(s, '\0', n)) != NULL)
		n = (size_t)(nul - s);
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return -EAGAIN;
	*ret_s = s;
	*ret_n = n;
	return 0;
}

int api__mp_int(struct api__mpv v, int64_t *ret_value)
{
	int rc;

	*ret_value = 0;
	if (v.p == NULL)
		return 0;
	if (is_ext(v.p[0]))
		return -EAGAIN;
	rc = codec_msgpack_int(v.p, v.len, ret_value);
	if (rc == -EINVAL) {
		*ret_value = 0;
		return 0;
	}
	if (rc == -ERANGE)
		return -EAGAIN;
	return rc != 0 ? -EBADMSG : 0;
}

bool api__mp_is_true(struct api__mpv v)
{
	return v.p != NULL && v.p[0] == 0xc3;
}

bool api__mp_eq(const char *s, size_t n, const char *lit)
{
	return s != NULL && strlen(lit) == n && memcmp(s, lit, n) == 0;
}

int api__cells_mp_put(struct api_cells_mp *c, size_t col, const char *s, size_t n)
{
	if (col >= API_CELLS_MP_COLS || n >= sizeof(c->text) - c->used)
		return -ENOSPC;
	memcpy(c->text + c->used, s, n);
	c->text[c->used + n] = '\0';
	c->cell[col] = c->text + c->used;
	c->used += n + 1;
	return 0;
}

/* Decimal digits of @v at the end of @b (24 bytes), returns the start. */
static char *fmt_u64(char *b, uint64_t v)
{
	char *p = b + 24;

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	return p;
}

int api__cells_mp_int(struct api_cells_mp *c, size_t col, int64_t v)
{
	char b[24], *p = fmt_u64(b, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);

	if (v < 0)
		*--p = '-';
	return api__cells_mp_put(c, col, p, (size_t)(b + sizeof(b) - p));
}

int api__cells_mp_ratio(struct api_cells_mp *c, size_t col, uint64_t a, uint64_t b)
{
	char ta[24], tb[24], out[48];
	const char *pa = fmt_u64(ta, a), *pb = fmt_u64(tb, b);
	size_t na = (size_t)(ta + sizeof(ta) - pa), nb = (size_t)(tb + sizeof(tb) - pb);

	memcpy(out, pa, na);
	out[na] = '/';
	memcpy(out + na + 1, pb, nb);
	return api__cells_mp_put(c, col, out, na + 1 + nb);
}


static int digits(const char *s, size_t n, int *ret)
{
	int v = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EAGAIN;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return 0;
}

int api_parse_time_canonical(const char *s, size_t n, int64_t *ret_seconds)
{
	int y, mo, d, h, mi, se;
	int64_t yy, era, yoe, doy, doe, days;

	if (n != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':' || (s[19] != 'Z' && s[19] != 'z'))
		return -EAGAIN;
	if (digits(s, 4, &y) != 0 || digits(s + 5, 2, &mo) != 0 || digits(s + 8, 2, &d) != 0 ||
	    digits(s + 11, 2, &h) != 0 || digits(s + 14, 2, &mi) != 0 ||
	    digits(s + 17, 2, &se) != 0)
		return -EAGAIN;
	/* api_parse_time()'s ranges; timegm() carries a day past the month's
	 * end over, as this sum does. */
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -EAGAIN;
	/* Days from 1970-01-01 of the civil date (H. Hinnant's algorithm). */
	yy = mo <= 2 ? y - 1 : y;
	era = (yy >= 0 ? yy : yy - 399) / 400;
	yoe = yy - era * 400;
	doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	days = era * 146097 + doe - 719468;
	*ret_seconds = days * 86400 + h * 3600 + mi * 60 + se;
	/* timegm()'s error value: let api_parse_time() decide. */
	if (*ret_seconds == -1)
		return -EAGAIN;
	return 0;
}
