/* The patch engine: JSON merge patch, JSON patch, strategic merge patch and
 * server-side apply, as pure functions on jansson trees.
 *
 * Ownership, common to every function: *target (or *live) is the caller's
 * reference.  On success it is released and replaced by a new reference to
 * the patched tree; the old tree itself is never modified, so other
 * references to it stay valid.  On error *target is left untouched.  The
 * patch is borrowed and never modified; nothing in the result shares
 * memory with it.
 *
 * Errors (all functions):
 *   -EINVAL  the patch is malformed or cannot be applied; a one-line
 *            message is written to @err (@errlen bytes, may be 0).  The
 *            HTTP layer answers 422 Invalid (or 400 for undecodable
 *            bodies, which never reach this module).
 *   -ENOMEM  out of memory. */
#ifndef CAPSTAN_API_PATCH_H
#define CAPSTAN_API_PATCH_H

#include <stddef.h>

#include <jansson.h>

#include "src/api/types.h"

/* RFC 7386 JSON merge patch (application/merge-patch+json): an object
 * patch merges recursively and null deletes a member; any other patch
 * value replaces the target as a whole (so the result may not be an
 * object: the caller validates it).  Fails only for -ENOMEM, or -EINVAL
 * for a patch nested deeper than 512 levels (as do the others). */
int api_patch_merge(json_t **target, const json_t *patch, char *err, size_t errlen);

/* RFC 6902 JSON patch (application/json-patch+json): @ops is an array of
 * operations (add, remove, replace, move, copy, test) with RFC 6901
 * pointers ("~0" = "~", "~1" = "/", "-" appends to an array in add, move
 * and copy targets).  All or nothing: a failing operation (a missing path,
 * a bad index, a failed test, an unknown op) leaves *target untouched. */
int api_patch_json(json_t **target, const json_t *ops, char *err, size_t errlen);

/* Kubernetes strategic merge patch (application/strategic-merge-patch+json)
 * of an object of schema @type (the kind's root type; NULL = no schema).
 * The schema gives each field its strategy: lists with patch strategy
 * "merge" merge by their patch merge key (lists of scalars as ordered
 * sets), other lists replace, maps merge, null deletes.  Directives:
 *   $patch: replace | delete                in a map or a list element
 *   $patch: merge                           in a map: the default, a no-op
 *                                           (apimachinery refuses it; in a
 *                                           list element we refuse it too)
 *   $setElementOrder/<list>: [...]          order of a merged list
 *   $retainKeys: [...]                      keys the map keeps
 *   $deleteFromPrimitiveList/<list>: [...]  values removed from a list
 * Fields the schema does not know merge like a JSON merge patch.  Any
 * other key starting with "$" is an error, and so is a patch value whose
 * JSON type contradicts the schema (an array for an object field...).
 * The patch must be an object. */
int api_patch_strategic(const struct api_type *type, json_t **target, const json_t *patch,
			char *err, size_t errlen);

/* Server-side apply (application/apply-patch+yaml) without field
 * management.  @applied is the applied configuration, already parsed.
 * When *live is NULL the object does not exist: *live becomes a copy of
 * @applied (nulls dropped).  Otherwise @applied is merged onto *live:
 * fields present in @applied win, maps merge (unless the schema marks them
 * atomic), lists of x-kubernetes-list-type map merge by their list-map
 * keys, sets merge as sets, other lists are replaced; live-only list items
 * keep their place and new ones are appended, as structured-merge-diff
 * does.  Differences from real SSA: there are no managedFields, so a field
 * removed from the applied configuration is NOT removed from the live
 * object, and there are no conflicts (the applier always wins, as with
 * force=true); a null in @applied deletes the field.  Keys starting with
 * "$" are rejected (apply has no directives). */
int api_patch_apply(const struct api_type *type, json_t **live, const json_t *applied,
		    char *err, size_t errlen);

/* The three-way strategic merge patch that client-side apply sends
 * (kubectl's CreateThreeWayMergePatch): from the last applied
 * configuration @orig (NULL when none), the new configuration @mod and the
 * live object @cur, all borrowed. Fields of @mod that differ from @cur are
 * set (maps merge recursively; lists with a patch merge key send changed
 * and new items by key, lists of scalars with the merge strategy send new
 * values, both with $setElementOrder; other lists are sent whole); fields
 * and keyed items of @orig missing from @mod are deleted (null, "$patch:
 * delete", $deleteFromPrimitiveList); maps with the retainKeys strategy
 * get $retainKeys. @type: the kind's root type index (-1: no schema, which
 * gives a JSON merge patch). *@ret_patch: a new object, empty when nothing
 * changes. Errors: -EINVAL (@mod or @cur not an object), -ENOMEM. */
int api_patch_strategic_diff(int type, const json_t *orig, const json_t *mod, const json_t *cur,
			     json_t **ret_patch);

#endif
