/* Decoder of Kubernetes protobuf bodies (see protobuf.h).
 *
 * The wire format is proto2 as gogo-protobuf writes it for k8s.io/api: a
 * Go field that is not a pointer is always written, even when it holds the
 * zero value, so a zero on the wire means "unset" unless the table marks
 * the field API_PF_POINTER.  Unknown field numbers are skipped, as a newer
 * client may send fields this table does not know.  A singular field seen
 * twice takes the last value, and a message seen twice is merged, as
 * protobuf requires.
 *
 * Every length is checked against the bytes left before it is used and
 * every varint is bounded to ten bytes, so no input can read out of
 * bounds.  Recursion follows the table, whose messages do not nest
 * recursively today; API_PROTOBUF_MAX_DEPTH still bounds it, so a
 * recursive type added later cannot exhaust the stack. */
#include "src/api/protobuf.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

enum {
	WT_VARINT = 0,
	WT_FIXED64 = 1,
	WT_LEN = 2,
	WT_FIXED32 = 5,
};

/* A bounded reader over one message's bytes. */
struct rd {
	const uint8_t *p;
	size_t n;
	size_t pos;
};

struct ctx {
	char *err;
	size_t errlen;
};

static int fail(struct ctx *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct ctx *c, int rc, const char *fmt, ...)
{
	va_list ap;

	/* Keep the first (innermost) message: it is the precise one. */
	if (c->err != NULL && c->errlen > 0 && c->err[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static int read_varint(struct rd *r, uint64_t *ret)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < 10; i++) {
		if (r->pos >= r->n)
			return -EBADMSG;
		uint8_t b = r->p[r->pos++];
		/* The tenth byte holds only the 64th bit. */
		if (i == 9 && b > 1)
			return -EBADMSG;
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if (b < 0x80) {
			*ret = v;
			return 0;
		}
	}
	return -EBADMSG;
}

static int read_key(struct rd *r, uint32_t *ret_num, unsigned *ret_wt)
{
	uint64_t key;

	if (read_varint(r, &key) < 0)
		return -EBADMSG;
	if ((key >> 3) == 0 || (key >> 3) > 0x1fffffff)
		return -EBADMSG;
	*ret_num = (uint32_t)(key >> 3);
	*ret_wt = (unsigned)(key & 7);
	return 0;
}

static int read_len(struct rd *r, const uint8_t **ret_p, size_t *ret_n)
{
	uint64_t n;

	if (read_varint(r, &n) < 0 || n > r->n - r->pos)
		return -EBADMSG;
	*ret_p = r->p + r->pos;
	*ret_n = (size_t)n;
	r->pos += (size_t)n;
	return 0;
}

static int read_fixed(struct rd *r, size_t size, uint64_t *ret)
{
	uint64_t v = 0;

	if (size > r->n - r->pos)
		return -EBADMSG;
	for (size_t i = 0; i < size; i++)
		v |= (uint64_t)r->p[r->pos + i] << (8 * i);
	r->pos += size;
	*ret = v;
	return 0;
}

static int skip_field(struct rd *r, unsigned wt)
{
	uint64_t v;
	const uint8_t *p;
	size_t n;

	switch (wt) {
	case WT_VARINT:
		return read_varint(r, &v);
	case WT_FIXED64:
		return read_fixed(r, 8, &v);
	case WT_LEN:
		return read_len(r, &p, &n);
	case WT_FIXED32:
		return read_fixed(r, 4, &v);
	default:
		/* Groups (3, 4) never occur in Kubernetes messages. */
		return -EBADMSG;
	}
}

static const struct api_proto_field *find_field(const struct api_proto_msg *m, uint32_t num)
{
	size_t lo = 0, hi = m->n_fields;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct api_proto_field *f = &api_proto_gen_fields[m->first_field + mid];
		if (f->number == num)
			return f;
		if (f->number < num)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static unsigned kind_wire_type(uint8_t kind)
{
	switch (kind) {
	case API_PK_INT32:
	case API_PK_INT64:
	case API_PK_BOOL:
		return WT_VARINT;
	case API_PK_DOUBLE:
		return WT_FIXED64;
	default:
		return WT_LEN;
	}
}

static json_t *new_string(const uint8_t *p, size_t n)
{
	/* NULL for invalid UTF-8 too: the caller reports it. */
	return json_stringn((const char *)p, n);
}

static json_t *new_base64(const uint8_t *p, size_t n)
{
	json_t *s;
	char *buf;

	if (n > (size_t)INT32_MAX / 4 * 3)
		return NULL;
	buf = malloc((n + 2) / 3 * 4 + 1);
	if (buf == NULL)
		return NULL;
	int out = EVP_EncodeBlock((unsigned char *)buf, p, (int)n);
	s = json_stringn_nocheck(buf, (size_t)out);
	free(buf);
	return s;
}

/* Formats seconds since the epoch as RFC 3339 in UTC, with @micros >= 0
 * microseconds appended.  Go refuses years outside 0..9999. */
static int format_time(int64_t secs, long micros, char *buf, size_t size)
{
	struct tm tm;
	time_t t;

	if (secs < -62167219200LL || secs > 253402300799LL)
		return -EBADMSG;
	t = (time_t)secs;
	if ((int64_t)t != secs || gmtime_r(&t, &tm) == NULL)
		return -EBADMSG;
	if (micros < 0)
		snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	else
		snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, micros);
	return 0;
}

/* metav1.Time and MicroTime: {1: int64 seconds, 2: int32 nanos}.  Go
 * decodes an empty message as the zero time (JSON null, left out). */
static int decode_time(struct ctx *c, const struct api_proto_field *f, const uint8_t *p, size_t n,
		       json_t **ret_val)
{
	struct rd r = {p, n, 0};
	int64_t secs = 0;
	int64_t nanos = 0;
	char buf[64];

	if (n == 0) {
		*ret_val = NULL;
		return 0;
	}
	while (r.pos < r.n) {
		uint32_t num;
		unsigned wt;
		uint64_t v;

		if (read_key(&r, &num, &wt) < 0)
			return fail(c, -EBADMSG, "protobuf: malformed time in field %s", f->json);
		if ((num == 1 || num == 2) && wt == WT_VARINT) {
			if (read_varint(&r, &v) < 0)
				return fail(c, -EBADMSG, "protobuf: truncated time in field %s", f->json);
			if (num == 1)
				secs = (int64_t)v;
			else
				nanos = (int32_t)(uint32_t)v;
		} else if (skip_field(&r, wt) < 0) {
			return fail(c, -EBADMSG, "protobuf: malformed time in field %s", f->json);
		}
	}
	if (nanos < 0 || nanos > 999999999)
		return fail(c, -EBADMSG, "protobuf: nanoseconds out of range in field %s", f->json);
	/* metav1.Time keeps whole seconds only; MicroTime truncates to µs. */
	if (format_time(secs, f->kind == API_PK_MICROTIME ? (long)(nanos / 1000) : -1, buf,
			sizeof(buf)) < 0)
		return fail(c, -EBADMSG, "protobuf: time out of range in field %s", f->json);
	*ret_val = json_string(buf);
	return *ret_val != NULL ? 0 : -ENOMEM;
}

/* A message of one length-delimited field 1 (Quantity, FieldsV1,
 * RawExtension): the bytes of its last occurrence, or NULL/0 if none. */
static int decode_single_bytes(struct ctx *c, const struct api_proto_field *f, const uint8_t *p,
			       size_t n, const uint8_t **ret_p, size_t *ret_n)
{
	struct rd r = {p, n, 0};

	*ret_p = NULL;
	*ret_n = 0;
	while (r.pos < r.n) {
		uint32_t num;
		unsigned wt;

		if (read_key(&r, &num, &wt) < 0)
			return fail(c, -EBADMSG, "protobuf: malformed value of field %s", f->json);
		if (num == 1 && wt == WT_LEN) {
			if (read_len(&r, ret_p, ret_n) < 0)
				return fail(c, -EBADMSG, "protobuf: truncated value of field %s", f->json);
		} else if (skip_field(&r, wt) < 0) {
			return fail(c, -EBADMSG, "protobuf: malformed value of field %s", f->json);
		}
	}
	return 0;
}

/* intstr.IntOrString: {1: int64 type (0 int, 1 string), 2: int32 intVal,
 * 3: string strVal}. */
static int decode_intorstring(struct ctx *c, const struct api_proto_field *f, const uint8_t *p,
			      size_t n, json_t **ret_val, bool *ret_zero)
{
	struct rd r = {p, n, 0};
	uint64_t type = 0;
	int32_t ival = 0;
	const uint8_t *s = (const uint8_t *)"";
	size_t slen = 0;

	while (r.pos < r.n) {
		uint32_t num;
		unsigned wt;
		uint64_t v;

		if (read_key(&r, &num, &wt) < 0)
			goto bad;
		if ((num == 1 || num == 2) && wt == WT_VARINT) {
			if (read_varint(&r, &v) < 0)
				goto bad;
			if (num == 1)
				type = v;
			else
				ival = (int32_t)(uint32_t)v;
		} else if (num == 3 && wt == WT_LEN) {
			if (read_len(&r, &s, &slen) < 0)
				goto bad;
		} else if (skip_field(&r, wt) < 0) {
			goto bad;
		}
	}
	if (type == 0) {
		*ret_zero = ival == 0;
		*ret_val = json_integer(ival);
	} else if (type == 1) {
		*ret_zero = slen == 0;
		*ret_val = new_string(s, slen);
		if (*ret_val == NULL)
			return fail(c, -EBADMSG, "protobuf: invalid UTF-8 in field %s", f->json);
	} else {
		return fail(c, -EBADMSG, "protobuf: invalid IntOrString type %" PRIu64 " in field %s",
			    type, f->json);
	}
	return *ret_val != NULL ? 0 : -ENOMEM;
bad:
	return fail(c, -EBADMSG, "protobuf: malformed IntOrString in field %s", f->json);
}

static int decode_message(struct ctx *c, uint16_t msg, const uint8_t *p, size_t n, json_t *obj,
			  unsigned depth);

/* Decodes one value of field @f whose wire type has been checked.
 * *ret_val is a new reference, or NULL for a value Go holds as zero/nil
 * that JSON leaves out; *ret_zero says whether the value is Go's zero. */
static int decode_value(struct ctx *c, const struct api_proto_field *f, struct rd *r,
			json_t **ret_val, bool *ret_zero, unsigned depth)
{
	const uint8_t *p = NULL;
	size_t n = 0;
	uint64_t v;
	json_t *val = NULL;
	int rc;

	*ret_zero = false;
	if (kind_wire_type(f->kind) == WT_LEN) {
		if (read_len(r, &p, &n) < 0)
			return fail(c, -EBADMSG, "protobuf: truncated field %s", f->json);
	} else if (f->kind == API_PK_DOUBLE) {
		if (read_fixed(r, 8, &v) < 0)
			return fail(c, -EBADMSG, "protobuf: truncated field %s", f->json);
	} else if (read_varint(r, &v) < 0) {
		return fail(c, -EBADMSG, "protobuf: truncated or overlong varint in field %s", f->json);
	}

	switch (f->kind) {
	case API_PK_STRING:
		val = new_string(p, n);
		if (val == NULL)
			return fail(c, -EBADMSG, "protobuf: invalid UTF-8 in field %s", f->json);
		*ret_zero = n == 0;
		break;
	case API_PK_BYTES:
		val = new_base64(p, n);
		*ret_zero = n == 0;
		break;
	case API_PK_INT32:
		/* Negative int32 values are sign-extended to ten bytes. */
		val = json_integer((int32_t)(uint32_t)v);
		*ret_zero = (uint32_t)v == 0;
		break;
	case API_PK_INT64:
		val = json_integer((json_int_t)v);
		*ret_zero = v == 0;
		break;
	case API_PK_BOOL:
		val = v != 0 ? json_true() : json_false();
		*ret_zero = v == 0;
		break;
	case API_PK_DOUBLE: {
		double d;
		memcpy(&d, &v, sizeof(d));
		/* JSON has no NaN or infinities; Go's encoder refuses them too. */
		if (!isfinite(d))
			return fail(c, -EBADMSG, "protobuf: non-finite number in field %s", f->json);
		val = json_real(d);
		*ret_zero = v == 0;
		break;
	}
	case API_PK_MESSAGE:
		val = json_object();
		if (val == NULL)
			return -ENOMEM;
		rc = decode_message(c, f->ref, p, n, val, depth + 1);
		if (rc < 0) {
			json_decref(val);
			return rc;
		}
		break;
	case API_PK_TIME:
	case API_PK_MICROTIME:
		rc = decode_time(c, f, p, n, &val);
		if (rc < 0)
			return rc;
		*ret_zero = val == NULL;
		*ret_val = val;
		return 0;
	case API_PK_QUANTITY: {
		const uint8_t *s;
		size_t slen;
		rc = decode_single_bytes(c, f, p, n, &s, &slen);
		if (rc < 0)
			return rc;
		/* The zero Quantity prints as "0". */
		val = s != NULL && slen > 0 ? new_string(s, slen) : json_string("0");
		if (val == NULL)
			return fail(c, -EBADMSG, "protobuf: invalid UTF-8 in field %s", f->json);
		*ret_zero = s == NULL || slen == 0;
		break;
	}
	case API_PK_RAWJSON: {
		const uint8_t *s;
		size_t slen;
		json_error_t jerr;
		rc = decode_single_bytes(c, f, p, n, &s, &slen);
		if (rc < 0)
			return rc;
		if (s == NULL || slen == 0) {
			*ret_zero = true;
			*ret_val = NULL;
			return 0;
		}
		val = json_loadb((const char *)s, slen, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
				 &jerr);
		if (val == NULL)
			return fail(c, -EBADMSG, "protobuf: field %s holds invalid JSON: %s", f->json,
				    jerr.text);
		break;
	}
	case API_PK_INTORSTRING:
		rc = decode_intorstring(c, f, p, n, &val, ret_zero);
		if (rc < 0)
			return rc;
		break;
	default:
		return fail(c, -EBADMSG, "protobuf: field %s has no decoder", f->json);
	}
	if (val == NULL)
		return -ENOMEM;
	*ret_val = val;
	return 0;
}

/* A map entry message {1: string key, 2: value}. */
static int decode_map_entry(struct ctx *c, const struct api_proto_field *f, const uint8_t *p,
			    size_t n, json_t *map, unsigned depth)
{
	struct rd r = {p, n, 0};
	const uint8_t *key = (const uint8_t *)"";
	size_t klen = 0;
	json_t *val = NULL;
	char *kbuf;
	int rc;

	while (r.pos < r.n) {
		uint32_t num;
		unsigned wt;

		if (read_key(&r, &num, &wt) < 0)
			goto bad;
		if (num == 1 && wt == WT_LEN) {
			if (read_len(&r, &key, &klen) < 0)
				goto bad;
		} else if (num == 2 && wt == kind_wire_type(f->kind)) {
			bool zero;
			json_decref(val);
			val = NULL;
			rc = decode_value(c, f, &r, &val, &zero, depth);
			if (rc < 0)
				return rc;
		} else if (skip_field(&r, wt) < 0) {
			goto bad;
		}
	}
	if (val == NULL) {
		/* A missing value is the zero value of its kind. */
		switch (f->kind) {
		case API_PK_STRING:
		case API_PK_BYTES:
			val = json_string("");
			break;
		case API_PK_QUANTITY:
			val = json_string("0");
			break;
		case API_PK_MESSAGE:
			val = json_object();
			break;
		case API_PK_BOOL:
			val = json_false();
			break;
		case API_PK_DOUBLE:
			val = json_real(0);
			break;
		case API_PK_TIME:
		case API_PK_MICROTIME:
		case API_PK_RAWJSON:
			val = json_null();
			break;
		default:
			val = json_integer(0);
			break;
		}
		if (val == NULL)
			return -ENOMEM;
	}
	if (memchr(key, '\0', klen) != NULL) {
		json_decref(val);
		return fail(c, -EBADMSG, "protobuf: NUL in a key of map %s", f->json);
	}
	kbuf = strndup((const char *)key, klen);
	if (kbuf == NULL) {
		json_decref(val);
		return -ENOMEM;
	}
	rc = json_object_set_new(map, kbuf, val);
	free(kbuf);
	if (rc < 0)
		return fail(c, -EBADMSG, "protobuf: invalid UTF-8 in a key of map %s", f->json);
	return 0;
bad:
	json_decref(val);
	return fail(c, -EBADMSG, "protobuf: malformed entry of map %s", f->json);
}

/* The container (array or object) of a repeated or map field. */
static json_t *field_container(json_t *obj, const struct api_proto_field *f)
{
	json_t *cur = json_object_get(obj, f->json);
	bool is_map = (f->flags & API_PF_MAP) != 0;

	if (cur != NULL && (is_map ? json_is_object(cur) : json_is_array(cur)))
		return cur;
	cur = is_map ? json_object() : json_array();
	if (cur == NULL || json_object_set_new(obj, f->json, cur) < 0)
		return NULL;
	return cur;
}

static int decode_field(struct ctx *c, const struct api_proto_field *f, struct rd *r, unsigned wt,
			json_t *obj, unsigned depth)
{
	unsigned want = kind_wire_type(f->kind);
	json_t *val = NULL;
	bool zero;
	int rc;

	if (f->flags & API_PF_MAP) {
		const uint8_t *p;
		size_t n;
		json_t *map;

		if (wt != WT_LEN)
			goto wrong_type;
		if (read_len(r, &p, &n) < 0)
			return fail(c, -EBADMSG, "protobuf: truncated field %s", f->json);
		map = field_container(obj, f);
		if (map == NULL)
			return -ENOMEM;
		return decode_map_entry(c, f, p, n, map, depth);
	}

	if (f->flags & API_PF_REPEATED) {
		json_t *arr;

		/* Scalars may come packed: one length-delimited run. */
		if (wt == WT_LEN && want != WT_LEN) {
			const uint8_t *p;
			size_t n;
			if (read_len(r, &p, &n) < 0)
				return fail(c, -EBADMSG, "protobuf: truncated field %s", f->json);
			struct rd sub = {p, n, 0};
			arr = field_container(obj, f);
			if (arr == NULL)
				return -ENOMEM;
			while (sub.pos < sub.n) {
				rc = decode_value(c, f, &sub, &val, &zero, depth);
				if (rc < 0)
					return rc;
				if (json_array_append_new(arr, val) < 0)
					return -ENOMEM;
			}
			return 0;
		}
		if (wt != want)
			goto wrong_type;
		rc = decode_value(c, f, r, &val, &zero, depth);
		if (rc < 0)
			return rc;
		if (val == NULL)
			val = json_null(); /* a zero Time in a list stays in place */
		arr = field_container(obj, f);
		if (arr == NULL || json_array_append_new(arr, val) < 0) {
			if (arr == NULL)
				json_decref(val);
			return -ENOMEM;
		}
		return 0;
	}

	if (wt != want)
		goto wrong_type;

	if (f->kind == API_PK_MESSAGE) {
		const uint8_t *p;
		size_t n;
		json_t *sub;
		bool fresh = false;

		if (read_len(r, &p, &n) < 0)
			return fail(c, -EBADMSG, "protobuf: truncated field %s", f->json);
		/* An inlined struct's fields are the parent's; a message seen
		 * again merges into the first. */
		if (f->flags & API_PF_INLINE) {
			sub = obj;
		} else {
			sub = json_object_get(obj, f->json);
			if (!json_is_object(sub)) {
				sub = json_object();
				if (sub == NULL)
					return -ENOMEM;
				fresh = true;
			}
		}
		rc = decode_message(c, f->ref, p, n, sub, depth + 1);
		if (rc < 0) {
			if (fresh)
				json_decref(sub);
			return rc;
		}
		if (fresh && json_object_set_new(obj, f->json, sub) < 0)
			return -ENOMEM;
		return 0;
	}

	rc = decode_value(c, f, r, &val, &zero, depth);
	if (rc < 0)
		return rc;
	/* Go's value of a non-pointer field cannot tell zero from unset, and
	 * omitempty leaves it out; the last occurrence wins. */
	if (val == NULL || (zero && !(f->flags & API_PF_POINTER))) {
		json_decref(val);
		json_object_del(obj, f->json);
		return 0;
	}
	if (json_object_set_new(obj, f->json, val) < 0)
		return -ENOMEM;
	return 0;

wrong_type:
	return fail(c, -EBADMSG, "protobuf: field %s has wire type %u, want %u", f->json, wt, want);
}

static int decode_message(struct ctx *c, uint16_t msg, const uint8_t *p, size_t n, json_t *obj,
			  unsigned depth)
{
	const struct api_proto_msg *m = &api_proto_gen_msgs[msg];
	struct rd r = {p, n, 0};
	int rc;

	if (depth > API_PROTOBUF_MAX_DEPTH)
		return fail(c, -EBADMSG, "protobuf: nesting deeper than %d", API_PROTOBUF_MAX_DEPTH);
	while (r.pos < r.n) {
		uint32_t num;
		unsigned wt;
		const struct api_proto_field *f;

		if (read_key(&r, &num, &wt) < 0)
			return fail(c, -EBADMSG, "protobuf: malformed field key in %s", m->name);
		f = find_field(m, num);
		if (f == NULL) {
			if (skip_field(&r, wt) < 0)
				return fail(c, -EBADMSG, "protobuf: malformed field %" PRIu32 " in %s",
					    num, m->name);
			continue;
		}
		rc = decode_field(c, f, &r, wt, obj, depth);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* runtime.Unknown: {1: TypeMeta{1: apiVersion, 2: kind}, 2: raw,
 * 3: contentEncoding, 4: contentType}. */
struct unknown {
	const uint8_t *api_version, *kind, *raw, *encoding, *type;
	size_t api_version_len, kind_len, raw_len, encoding_len, type_len;
};

static int parse_unknown(const uint8_t *p, size_t n, struct unknown *u)
{
	struct rd r = {p, n, 0};

	while (r.pos < r.n) {
		uint32_t num;
		unsigned wt;
		const uint8_t *q;
		size_t qn;

		if (read_key(&r, &num, &wt) < 0)
			return -EBADMSG;
		if (wt != WT_LEN || num < 1 || num > 4) {
			if (skip_field(&r, wt) < 0)
				return -EBADMSG;
			continue;
		}
		if (read_len(&r, &q, &qn) < 0)
			return -EBADMSG;
		switch (num) {
		case 1: {
			struct rd t = {q, qn, 0};
			while (t.pos < t.n) {
				uint32_t tn;
				unsigned twt;
				if (read_key(&t, &tn, &twt) < 0)
					return -EBADMSG;
				if (twt == WT_LEN && tn == 1) {
					if (read_len(&t, &u->api_version, &u->api_version_len) < 0)
						return -EBADMSG;
				} else if (twt == WT_LEN && tn == 2) {
					if (read_len(&t, &u->kind, &u->kind_len) < 0)
						return -EBADMSG;
				} else if (skip_field(&t, twt) < 0) {
					return -EBADMSG;
				}
			}
			break;
		}
		case 2:
			u->raw = q;
			u->raw_len = qn;
			break;
		case 3:
			u->encoding = q;
			u->encoding_len = qn;
			break;
		default:
			u->type = q;
			u->type_len = qn;
			break;
		}
	}
	return 0;
}

static bool span_eq(const uint8_t *p, size_t n, const char *s)
{
	return strlen(s) == n && (n == 0 || memcmp(p, s, n) == 0);
}

static int find_root(const uint8_t *av, size_t av_len, const uint8_t *kind, size_t kind_len)
{
	const uint8_t *slash = av_len > 0 ? memchr(av, '/', av_len) : NULL;
	const uint8_t *g = av, *v = av;
	size_t g_len = 0, v_len = av_len;

	if (slash != NULL) {
		g_len = (size_t)(slash - av);
		v = slash + 1;
		v_len = av_len - g_len - 1;
	}
	for (size_t i = 0; i < API_PROTO_GEN_N_ROOTS; i++) {
		const struct api_proto_root *root = &api_proto_gen_roots[i];
		if (span_eq(g, g_len, root->group) && span_eq(v, v_len, root->version) &&
		    span_eq(kind, kind_len, root->kind))
			return (int)i;
	}
	return -ENOTSUP;
}

bool api_protobuf_supports(const char *group, const char *version, const char *kind)
{
	for (size_t i = 0; i < API_PROTO_GEN_N_ROOTS; i++) {
		const struct api_proto_root *root = &api_proto_gen_roots[i];
		if (strcmp(group, root->group) == 0 && strcmp(version, root->version) == 0 &&
		    strcmp(kind, root->kind) == 0)
			return true;
	}
	return false;
}

int api_protobuf_decode(const void *body, size_t len, json_t **ret_obj, char *err, size_t errlen)
{
	static const uint8_t magic[4] = {'k', '8', 's', 0};
	const uint8_t *b = body;
	struct ctx c = {err, errlen};
	struct unknown u = {0};
	json_t *obj = NULL, *s = NULL;
	int root;
	int rc;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (len < sizeof(magic) || memcmp(b, magic, sizeof(magic)) != 0)
		return fail(&c, -EBADMSG, "protobuf: the body does not start with the k8s magic");
	if (parse_unknown(b + 4, len - 4, &u) < 0)
		return fail(&c, -EBADMSG, "protobuf: truncated or malformed envelope");
	if (u.encoding_len > 0)
		return fail(&c, -ENOTSUP, "protobuf: content encoding %.*s is not supported",
			    (int)(u.encoding_len > 64 ? 64 : u.encoding_len), u.encoding);
	if (u.type_len > 0 && !span_eq(u.type, u.type_len, API_PROTOBUF_MEDIA_TYPE))
		return fail(&c, -ENOTSUP, "protobuf: inner content type %.*s is not supported",
			    (int)(u.type_len > 64 ? 64 : u.type_len), u.type);
	if (u.api_version_len == 0 || u.kind_len == 0)
		return fail(&c, -EBADMSG, "protobuf: Object 'Kind' or 'apiVersion' is missing");
	root = find_root(u.api_version, u.api_version_len, u.kind, u.kind_len);
	if (root < 0)
		return fail(&c, -ENOTSUP,
			    "protobuf: bodies of %.*s %.*s are not supported; send JSON",
			    (int)(u.api_version_len > 64 ? 64 : u.api_version_len), u.api_version,
			    (int)(u.kind_len > 64 ? 64 : u.kind_len), u.kind);

	obj = json_object();
	if (obj == NULL)
		return -ENOMEM;
	/* apiVersion and kind first, as a JSON body has them. */
	s = new_string(u.api_version, u.api_version_len);
	if (s == NULL || json_object_set_new(obj, "apiVersion", s) < 0)
		goto err_nomem;
	s = new_string(u.kind, u.kind_len);
	if (s == NULL || json_object_set_new(obj, "kind", s) < 0)
		goto err_nomem;
	rc = decode_message(&c, api_proto_gen_roots[root].msg, u.raw, u.raw_len, obj, 1);
	if (rc < 0)
		goto err_obj;
	*ret_obj = obj;
	return 0;

err_nomem:
	rc = -ENOMEM;
err_obj:
	json_decref(obj);
	if (rc == -ENOMEM)
		fail(&c, rc, "protobuf: out of memory");
	return rc;
}
