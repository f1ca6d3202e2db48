/* Helpers shared by the controllers: pod-template-hash, template
 * equality ignoring that label, store and queue key splitting, and small
 * readers and writers over API object trees.
 *
 * Inputs are borrowed unless said otherwise; nothing here keeps a
 * reference. */
#ifndef CAPSTAN_CTRL_PODTEMPLATE_H
#define CAPSTAN_CTRL_PODTEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "src/ctrl/ctrl.h"

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

/* Splits a queue key "<ns>/<name>" into @ns and @name (NUL-terminated, at
 * most @size bytes each). Returns 0 or -EINVAL (no '/', or too long). */
int ctrl__split_ns_key(const char *key, char *ns, char *name, size_t size);

/* A copy of @s, or of "" when @s is NULL; NULL on OOM. */
char *ctrl__strdup0(const char *s);

/* The controller ownerReference of @obj (borrowed) when it points at a
 * @kind of API group @group ("apps"; "" for the core group) and has a name
 * and a uid; else NULL. */
const json_t *ctrl__controller_ref_to(const json_t *obj, const char *group, const char *kind);

/* Whether a pod Ready since @ready_ms is available at @now, that is Ready
 * for @min_ready_ms already (minReadySeconds). When not yet, lowers
 * *@recheck_ms (0: none yet) to the time left. */
bool ctrl__available_at(uint64_t ready_ms, int64_t min_ready_ms, uint64_t now,
			uint64_t *recheck_ms);

/* The member @key of @obj, replaced by a new empty object when absent or
 * not an object (borrowed); NULL on OOM. */
json_t *ctrl__child_object(json_t *obj, const char *key);

/* Kubernetes' ControllerRefManager on the tree @obj: with @adopt, appends
 * the ownerReference @ref (stolen, NULL on the caller's OOM) unless @obj
 * already has a controller or is being deleted; without, removes every
 * ownerReference whose uid is @owner_uid (may be NULL: none). Returns 1
 * when @obj changed, 0 when not, -ENOMEM. */
int ctrl__claim_ref(json_t *obj, bool adopt, json_t *ref, const char *owner_uid);

/* The object of store key @key (of kind @k) to sync, with its namespace
 * and name split into @ns and @name (at most @size bytes each); NULL when
 * the key is malformed, the object absent or being deleted (its pods are
 * then left to the garbage collector). New reference. */
json_t *ctrl__get_live(struct ctrl *c, const struct api_kind *k, const char *key, char *ns,
		       char *name, size_t size);

/* After a sync of @key: queues it again after @retry_ms when @retry (a
 * write failed), else after @recheck_ms when non-zero (a pending
 * minReadySeconds). */
void ctrl__requeue(struct ctrl *c, const char *key, bool retry, uint64_t retry_ms,
		   uint64_t recheck_ms);

/* After a write for @key that returned @rv: unless 0 or -ENOENT, logs a
 * warning "<@fmt...> <key>: <error>" and queues @key again after
 * @delay_ms. */
void ctrl__retry(struct ctrl *c, const char *key, int rv, uint64_t delay_ms, const char *fmt,
		 ...) __attribute__((format(printf, 5, 6)));

/* Makes room for one more element of @elem bytes in the array *@vp (a
 * pointer to the array pointer) holding @n of *@cap: doubles the capacity
 * (16 at first) when full. Returns 0, or -ENOMEM with the array unchanged. */
int ctrl__reserve(void *vp, size_t n, size_t *cap, size_t elem);

#endif
