/* Pod template helpers shared by the ReplicaSet and Deployment
 * controllers: pod-template-hash, template equality ignoring that label,
 * and small readers over API object trees.
 *
 * Inputs are borrowed; nothing here keeps a reference. */
#ifndef CAPSTAN_CTRL_PODTEMPLATE_H
#define CAPSTAN_CTRL_PODTEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The label a Deployment adds to its ReplicaSets' selector and template. */
#define CTRL_POD_TEMPLATE_HASH "pod-template-hash"

/* Alphabet of generated names and hashes (Kubernetes' rand package: no
 * vowels, no confusable digits). */
#define CTRL_SAFE_ALPHABET "bcdfghjklmnpqrstvwxz2456789"

/* A stable hash of a PodTemplateSpec (with any pod-template-hash label
 * ignored), mixed with @collision_count when it is >= 0, written as a
 * short DNS-label-safe string (at most 10 characters) into @buf.
 * WARNING: names of stored ReplicaSets derive from it: never change the
 * algorithm (canonical JSON with sorted keys, FNV-1a 32, the count as 4
 * little-endian bytes, the decimal digits mapped onto the alphabet).
 * Errors: -ENOMEM, -ENOSPC (@size < 11). */
int ctrl__pod_template_hash(const json_t *tmpl, int64_t collision_count, char *buf,
			    size_t size);

/* Whether two PodTemplateSpecs are equal once the pod-template-hash label
 * is removed from both (Kubernetes' EqualIgnoreHash). */
bool ctrl__template_equal(const json_t *a, const json_t *b);

/* The time at @path ("metadata.creationTimestamp") in ms since the
 * epoch, or 0 when absent or malformed. */
uint64_t ctrl__time_at(const json_t *obj, const char *path);

/* The lastTransitionTime of condition @type (ms), or 0. */
uint64_t ctrl__condition_time(const json_t *obj, const char *type, const char *field);

/* Condition @type of status.conditions (borrowed), or NULL. */
json_t *ctrl__condition(const json_t *obj, const char *type);

/* The annotation @key of @obj (borrowed), or NULL. */
const char *ctrl__annotation(const json_t *obj, const char *key);

/* Sets annotation @key to @value (copied), creating metadata.annotations.
 * Returns true when it changed. */
bool ctrl__set_annotation(json_t *obj, const char *key, const char *value);

/* Splits a store key "/registry/<plural>/<ns>/<name>" into @ns and @name
 * (NUL-terminated, at most @size bytes each). Returns 0 or -EINVAL. */
int ctrl__split_key(const char *key, char *ns, char *name, size_t size);

/* Whether every label of @want (an object, may be NULL) is in @have with
 * the same value. */
bool ctrl__labels_contain(const json_t *have, const json_t *want);

/* Resolves an IntOrString (@v: integer, "N%" or "N") against @total:
 * percentages round up when @round_up, else down. Missing: @dflt. */
int64_t ctrl__int_or_percent(const json_t *v, int64_t total, bool round_up, int64_t dflt);

#endif
