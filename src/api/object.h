/* What the API server does to an object on create, update and delete,
 * as pure functions over jansson trees: shared by the REST handlers
 * (http/kapi_write.c) and the leader's controllers (src/ctrl), so that a
 * controller's write means the same as a user's.
 *
 * Time and randomness come in as arguments (deterministic in tests).
 */
#ifndef CAPSTAN_API_OBJECT_H
#define CAPSTAN_API_OBJECT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "src/api/registry.h"

/* Server-owned metadata of a new object: a name from generateName
 * (5 characters from @rand_bits) when name is empty, uid (a v4 UUID made
 * from @uid_hi/@uid_lo), creationTimestamp @now (RFC 3339), generation 1
 * when the object has a spec; resourceVersion, selfLink and deletion
 * fields dropped; the Namespace and Pod creation rules (namespace label,
 * "kubernetes" finalizer, phase Active / Pending); then the defaults.
 * Errors: -ENOMEM, -EINVAL (metadata not an object). */
int api_object_prepare_create(const struct api_kind *k, json_t *obj, const char *now,
			      uint64_t uid_hi, uint64_t uid_lo, uint64_t rand_bits);

/* After an update's body has been merged with the stored @old: bumps
 * metadata.generation when spec changed. Returns true when @obj, an
 * object being deleted (deletionTimestamp) whose grace period is 0, has
 * no finalizer left and must now be deleted instead of written. */
bool api_object_prepare_update(const struct api_kind *k, const json_t *old, json_t *obj);

enum api_delete_action {
	API_DELETE_NOW = 0,   /* delete the key */
	API_DELETE_MARK = 1,  /* write @obj: deletionTimestamp set (graceful) */
	API_DELETE_ALREADY = 2, /* already being deleted: nothing to write */
};

/* Decides a delete of stored @obj (modified for API_DELETE_MARK):
 * @policy NULL/"Background"/"Foreground"/"Orphan" (the latter two add
 * their finalizer); pods on a node get a grace period (@grace_s, or when
 * @has_grace is false the pod's terminationGracePeriodSeconds, default
 * 30; 0 deletes at once); objects with finalizers and namespaces with
 * spec.finalizers are marked; a second delete with a shorter grace
 * period shortens it (API_DELETE_MARK). @now is RFC 3339.
 * Errors: -ENOMEM (returned as a negative value). */
int api_object_prepare_delete(const struct api_kind *k, json_t *obj, const char *policy,
			      bool has_grace, int64_t grace_s, const char *now);

#endif
