/* Computed Table cells read straight from an object's stored msgpack, for
 * kinds whose cells would otherwise need a jansson tree of the whole
 * object (Pod: READY, STATUS, RESTARTS, READINESS GATES).
 *
 * The cells equal what the kind's api_cell_fn printers give for the tree of
 * the same bytes (tests/unit/test_cells_mp.c holds them to that). Where the
 * tree could differ (text that is not plain ASCII, which the tree decoder
 * would clean of invalid UTF-8; bin values, which become base64 strings in
 * a tree; integers beyond int64), the functions answer -EAGAIN and the
 * caller takes the tree path. Nothing here allocates. */
#ifndef CAPSTAN_API_CELLS_MP_H
#define CAPSTAN_API_CELLS_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/api/registry.h"

/* Columns and text one row can hold. */
#define API_CELLS_MP_COLS 16
#define API_CELLS_MP_TEXT 1024

/* One whole msgpack value inside an object (borrowed): p == NULL when
 * absent. */
struct api__mpv {
	const uint8_t *p;
	size_t len;
};

/* The cells of one row. cell[i] is the NUL-terminated text of computed
 * column i (a string cell, pointing into text), or NULL. For a path column
 * the printers found on their walk, resolved[i] is true and value[i] is
 * its value (p NULL: absent, "<none>" or null as the column's type says).
 * created_known: created is metadata.creationTimestamp (for AGE). The
 * caller writes every other cell from the bytes itself. */
struct api_cells_mp {
	const char *cell[API_CELLS_MP_COLS];
	struct api__mpv value[API_CELLS_MP_COLS];
	bool resolved[API_CELLS_MP_COLS];
	struct api__mpv created;
	bool created_known;
	char text[API_CELLS_MP_TEXT];
	size_t used;
};

/* Whether @k's computed cells can come from api_table_cells_mp(). */
bool api_table_cells_mp_supported(const struct api_kind *k);

/* Fills @ret with the computed cells (print != NULL, AGE excepted) of the
 * stored object @mp (@len bytes, borrowed) of kind @k at Unix time @now,
 * and with what the same walk found for path columns and AGE (pointing
 * into @mp).
 * Errors: -ENOTSUP (@k has no msgpack printers), -EAGAIN (the object holds
 * something the tree path must decide: use api_table_cells()), -EBADMSG
 * (malformed msgpack). */
int api_table_cells_mp(const struct api_kind *k, const void *mp, size_t len, int64_t now,
		       struct api_cells_mp *ret);

/* ------------------------------------------------------------ for printers */

/* Iterates over an array value's elements. */
struct api__mp_iter {
	const uint8_t *p, *end;
	uint32_t left;
	uint32_t index; /* of the element api__mp_next() gave last */
};

/* The values of @n ASCII @keys in the map @map, in @ret_vals (absent:
 * p NULL). As in a tree, a later duplicate key wins and a value that is
 * not a map has no keys. Errors: -EBADMSG (also for a key that is not a
 * str: the tree path fails on it too); -EINVAL (more than 16 @keys). */
int api__mp_pick(struct api__mpv map, const char *const *keys, size_t n, struct api__mpv *ret_vals);

/* As api__mp_pick() for a map at the start of @map (whose len may run to
 * the end of the enclosing buffer), and the end of that value (map or
 * not) in *ret_end. Errors: -EBADMSG. */
int api__mp_pick_end(struct api__mpv map, const char *const *keys, size_t n,
		     struct api__mpv *ret_vals, const uint8_t **ret_end);

/* Starts iterating over @v; a value that is not an array has no elements.
 * Errors: -EBADMSG. */
int api__mp_iter_init(struct api__mpv v, struct api__mp_iter *it);

/* The next element in *ret_v: returns 1, or 0 at the end; -EBADMSG. */
int api__mp_next(struct api__mp_iter *it, struct api__mpv *ret_v);

/* Element count of an array value, 0 for anything else. */
uint32_t api__mp_array_size(struct api__mpv v);

/* The text of a str value as C code sees a tree's string (up to its first
 * NUL) in *ret_s / *ret_n, or NULL for an absent value or another type.
 * Errors: -EAGAIN (not plain ASCII, or bin), -EBADMSG. */
int api__mp_str(struct api__mpv v, const char **ret_s, size_t *ret_n);

/* The integer of an int value as json_integer_value() has it (0 for any
 * other type). Errors: -EAGAIN (uint64 beyond int64: the tree path fails
 * on it), -EBADMSG. */
int api__mp_int(struct api__mpv v, int64_t *ret_value);

/* Whether @v is the boolean true. */
bool api__mp_is_true(struct api__mpv v);

/* Whether @s (@n bytes, no NUL) equals the C string @lit. */
bool api__mp_eq(const char *s, size_t n, const char *lit);

/* codec_msgpack_value_len() for the walks: a faster skip of the value.
 * Errors: -EBADMSG. */
int api__mp_value_len(const void *mp, size_t len, size_t *ret_len);

/* Sets the cell of column @col to the @n bytes @s, to the decimal @v, or
 * to "@a/@b". Errors: -ENOSPC (the row's text is full). */
int api__cells_mp_put(struct api_cells_mp *c, size_t col, const char *s, size_t n);
int api__cells_mp_int(struct api_cells_mp *c, size_t col, int64_t v);
int api__cells_mp_ratio(struct api_cells_mp *c, size_t col, uint64_t a, uint64_t b);

/* The Unix time of an RFC 3339 time in the canonical form the API writes
 * ("2024-01-02T03:04:05Z", @n bytes, no NUL needed), as api_parse_time()
 * has it but without sscanf(). Errors: -EAGAIN (another form or a value
 * out of range: ask api_parse_time()). */
int api_parse_time_canonical(const char *s, size_t n, int64_t *ret_seconds);

/* The Pod printers (src/api/kinds/core_pod.c). */
int api__pod_cells_mp(const void *mp, size_t len, int64_t now, struct api_cells_mp *ret);

#endif
