/* Codecs of API objects: JSON and YAML text, jansson trees, and the stored
 * msgpack form, plus a path accessor over msgpack bytes.
 *
 * Stored form: one msgpack value (a map for API objects) with str keys,
 * ints as int64/uint64 in their smallest encoding, floats as float64.
 * JSON text goes to msgpack in one streaming pass and msgpack goes to JSON
 * text straight from the bytes (no tree), so lists and watch events need
 * no per-object allocations.
 *
 * Conventions shared by every function here:
 * - Inputs are borrowed. Outputs are appended to a struct buf owned
 *   by the caller, or returned as new jansson references (caller decrefs).
 * - Errors return a negative errno and, when @err is not NULL, a message in
 *   err->msg (with err->line/err->column, 1-based, for text inputs):
 *   -EBADMSG  malformed input (syntax, truncated msgpack, bad UTF-8 in
 *             YAML, NaN/Inf, unsupported msgpack type, ...);
 *   -ELOOP    nesting deeper than CODEC_MAX_DEPTH;
 *   -E2BIG    YAML aliases expand beyond CODEC_YAML_MAX_ALIAS_VALUES;
 *   -EEXIST   duplicate key under CODEC_STRICT;
 *   -ERANGE   a number the target cannot hold;
 *   -ENOMEM.
 *   On error, bytes already appended to an output buffer are removed
 *   (out->len is restored).
 * - Invalid UTF-8 in strings is replaced, byte by byte, with U+FFFD (as
 *   Go's encoding/json does) when reading JSON text and when writing JSON
 *   or trees from msgpack. libyaml rejects invalid UTF-8 in YAML input.
 * - Nothing recurses deeper than CODEC_MAX_DEPTH, so hostile input cannot
 *   exhaust the stack; no decoder trusts a length it has not checked
 *   against the input. Callers bound the input size (HTTP_BODY_MAX): a
 *   tree costs tens of bytes per value, so a 1-byte msgpack array costs
 *   about as much as a 3-byte "[]," in JSON text.
 */
#ifndef CAPSTAN_HTTP_CODEC_H
#define CAPSTAN_HTTP_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "src/lib/buf.h"

/* Maximum nesting of maps and arrays. Kubernetes objects stay far below;
 * CRD schemas (properties inside properties) are the deepest real input,
 * hence more than a round 100. */
#define CODEC_MAX_DEPTH 200

/* Values that YAML alias expansion may add to one stream ("billion
 * laughs" guard); input without aliases is bounded by its size. */
#define CODEC_YAML_MAX_ALIAS_VALUES 100000

/* Output buffers are struct buf (src/lib/buf.h). The old names stay as
 * aliases for callers written against them. */
#define codec_buf buf
#define codec_buf_init buf_init
#define codec_buf_free buf_free
#define codec_buf_reserve buf_reserve
#define codec_buf_append buf_append
#define codec_buf_steal buf_steal

struct codec_err {
	char msg[256];
	unsigned long line;   /* 1-based; 0 when not a text position */
	unsigned long column; /* 1-based; 0 when not a text position */
};

/* Flags. */
#define CODEC_STRICT 0x1u /* duplicate map keys are errors (-EEXIST), as
			     with Kubernetes' fieldValidation=Strict;
			     otherwise the last one wins, as in Go */
#define CODEC_PRETTY 0x2u /* JSON output indented by two spaces per level,
			     as kube-apiserver's ?pretty=true (Go's
			     json.MarshalIndent(v, "", "  ")) */

/* ------------------------------------------------------------ JSON text */

/* Parses one JSON value (RFC 8259; surrounding whitespace only) from @text
 * and appends its msgpack encoding to @out. Key order is kept. Integers
 * become int64 (negative) or uint64; integers beyond 64 bits and numbers
 * with a fraction or exponent become float64. Flags: CODEC_STRICT. */
int codec_json_to_msgpack(const char *text, size_t len, unsigned flags, struct buf *out,
			  struct codec_err *err);

/* Appends the msgpack encoding of the tree @v (borrowed; object order
 * kept). Errors: -ELOOP, -EBADMSG (NaN/Inf real), -ENOMEM. */
int codec_tree_to_msgpack(const json_t *v, struct buf *out, struct codec_err *err);

/* ------------------------------------------------------------ msgpack */

/* Appends the JSON text of the single msgpack value in @mp (trailing bytes
 * are an error) to @out, compact unless CODEC_PRETTY. Strings are escaped
 * (quote, backslash, control characters); UTF-8 passes through. bin
 * becomes a base64 string, floats their shortest round-tripping form with
 * ".0" when integral (so they stay floats). Map keys must be str; ext
 * types, NaN and Inf are -EBADMSG. */
int codec_msgpack_to_json(const void *mp, size_t len, unsigned flags, struct buf *out,
			  struct codec_err *err);

/* As codec_msgpack_to_json() (compact) for a map @mp, but in its map at
 * key @in the pair @drop (may be NULL) is left out and the JSON text
 * @extra (pairs, may be NULL or "") ends it; without such a map, @in is
 * added with @extra alone. One pass, for answers that put the store's
 * revision into metadata.resourceVersion. A value that is not a map goes
 * as codec_msgpack_to_json() writes it. */
int codec_msgpack_to_json_with(const void *mp, size_t len, const char *in, const char *drop,
			       const char *extra, struct buf *out);

/* A new tree of the single msgpack value in @mp, in *ret_tree. uint64
 * beyond INT64_MAX is -ERANGE (jansson integers are int64). */
int codec_msgpack_to_tree(const void *mp, size_t len, json_t **ret_tree, struct codec_err *err);

/* Appends the YAML text of the msgpack value (through a tree). */
int codec_msgpack_to_yaml(const void *mp, size_t len, struct buf *out, struct codec_err *err);

/* Length in bytes of the first msgpack value of @mp, in *ret_len.
 * Errors: -EBADMSG (truncated or invalid). */
int codec_msgpack_value_len(const void *mp, size_t len, size_t *ret_len);

/* The pair count of the msgpack map at @mp in *ret_n and the length of its
 * header in *ret_hdr (its first key follows). Errors: -EINVAL (not a
 * map), -EBADMSG (truncated). */
int codec_msgpack_map_header(const void *mp, size_t len, uint32_t *ret_n, size_t *ret_hdr);

/* ------------------------------------------------------------ msgpack writers */

/* Append one msgpack item in its smallest encoding (a container header is
 * followed by its elements, written by the caller). Errors: -ENOMEM. */
int codec_mp_map(struct buf *out, uint32_t n);
int codec_mp_array(struct buf *out, uint32_t n);
int codec_mp_str(struct buf *out, const char *s, size_t n);
int codec_mp_cstr(struct buf *out, const char *s);
int codec_mp_uint(struct buf *out, uint64_t v);
int codec_mp_int(struct buf *out, int64_t v);
int codec_mp_nil(struct buf *out);

/* A container whose size is known only at the end: *_open appends a
 * 5-byte array32/map32 header and returns its offset in *ret_at; *_close
 * writes @n there (valid msgpack, one of the allowed longer forms).
 * Errors: -ENOMEM. */
int codec_mp_array32_open(struct buf *out, size_t *ret_at);
int codec_mp_map32_open(struct buf *out, size_t *ret_at);
void codec_mp_container32_close(struct buf *out, size_t at, uint32_t n);

/* ------------------------------------------------------------ YAML text */

/* Parses a YAML stream into a new JSON array in *ret_docs, one element per
 * document (an empty document gives null; an empty stream an empty array).
 * Typing follows sigs.k8s.io/yaml, which Kubernetes uses to turn YAML into
 * JSON (go-yaml v2, YAML 1.1 resolution) for untagged plain scalars:
 * - true/false, and also y/Y/yes/Yes/YES/on/On/ON, n/N/no/No/NO/off/Off/OFF
 *   in every case form go-yaml v2 lists, are booleans;
 * - "", ~, null, Null, NULL are null;
 * - integers per Go's strconv.ParseInt(s, 0, 64) after removing '_'
 *   (0x/0o/0b prefixes, a leading 0 means octal), then uint64;
 * - floats matching [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
 *   (integral floats below 2^63 become integers, as Go's JSON encoder
 *   writes them without a fraction); .inf/.nan are -EBADMSG (not JSON);
 * - anything else, and every quoted or block scalar, is a string.
 * Tags: !!str, !!int, !!float, !!bool, !!null are honoured (a value that
 * does not fit its tag is -EBADMSG); !!binary is -EBADMSG; other tags
 * give strings. Map keys become strings the way sigs.k8s.io/yaml does it
 * (plain `yes:` is the key "true", `0x10:` is "16"); null and collection
 * keys are -EBADMSG. Anchors and aliases are resolved (copies), merge keys
 * (<<) merge without overriding explicit keys. Errors carry the line and
 * column. Flags: CODEC_STRICT. */
int codec_yaml_to_tree(const char *text, size_t len, unsigned flags, json_t **ret_docs,
		       struct codec_err *err);

/* Appends @v (borrowed) as one YAML document in block style with a
 * two-space indent (like kubectl -o yaml). Strings that would read back as
 * another type are quoted; multi-line strings use literal style.
 * Errors: -ELOOP, -EBADMSG (NaN/Inf), -ENOMEM. */
int codec_tree_to_yaml(const json_t *v, struct buf *out, struct codec_err *err);

/* ------------------------------------------------------------ accessors */

/* Finds the value at dotted @path (e.g. "metadata.name", "spec.nodeName",
 * "spec.containers.0.image": a segment made of digits indexes an array)
 * inside the msgpack value @mp, without decoding the rest. On success
 * *ret_val points into @mp at the value's msgpack bytes, *ret_len is
 * their length. An empty @path is the whole value.
 * Errors: -ENOENT (a key or index is absent), -ENOTDIR (a scalar, or an
 * array with a non-numeric segment, on the way), -EBADMSG. */
int codec_msgpack_get(const void *mp, size_t len, const char *path, const void **ret_val,
		      size_t *ret_len);

/* Like codec_msgpack_get() for one key of a map, which may contain dots
 * (label keys such as "app.kubernetes.io/name"). Errors: -ENOENT,
 * -ENOTDIR (@mp is not a map), -EBADMSG. */
int codec_msgpack_map_get(const void *mp, size_t len, const char *key, size_t key_len,
			  const void **ret_val, size_t *ret_len);

/* The string of a msgpack str value (not NUL-terminated, points into @mp).
 * Errors: -EINVAL (another type), -EBADMSG. */
int codec_msgpack_str(const void *mp, size_t len, const char **ret_str, size_t *ret_len);

/* The integer of a msgpack int value. Errors: -EINVAL (another type),
 * -ERANGE (uint64 beyond INT64_MAX), -EBADMSG. */
int codec_msgpack_int(const void *mp, size_t len, int64_t *ret_value);

/* Shorthand: codec_msgpack_str(codec_msgpack_get(path)). */
int codec_msgpack_get_str(const void *mp, size_t len, const char *path, const char **ret_str,
			  size_t *ret_len);

/* ------------------------------------------------------------ msgpack edits */

/* One change for codec_msgpack_map_edit(): the pair with key @key
 * (@key_len bytes, may contain dots) takes the msgpack value @val
 * (@val_len bytes: one whole value, trusted), or goes when @val is NULL. */
struct codec_mp_edit {
	const char *key;
	size_t key_len;
	const void *val;
	size_t val_len;
};

/* Appends to @out the msgpack map @mp (borrowed; trailing bytes are an
 * error) with @edits (at most 64) applied, without decoding it: a pair
 * whose key an edit names takes the edit's value in place, or is left out
 * for a NULL value; an edit whose key is absent adds its pair at the end,
 * in the order of @edits (a NULL value adds nothing). Every other byte is
 * copied as it is; the pair count is written in its smallest form. For
 * writes that change a few fields of a stored object (the scheduler's
 * bind). Errors: -EINVAL (@mp is not a map, or too many edits), -EBADMSG
 * (malformed), -ENOMEM; on error out->len is restored. */
int codec_msgpack_map_edit(const void *mp, size_t len, const struct codec_mp_edit *edits,
			   size_t n_edits, struct buf *out);

/* The element count of the msgpack array at @mp in *ret_n and the length
 * of its header in *ret_hdr (its first element follows). Errors: -EINVAL
 * (not an array), -EBADMSG (truncated). */
int codec_msgpack_array_header(const void *mp, size_t len, uint32_t *ret_n, size_t *ret_hdr);

#endif
