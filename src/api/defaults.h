/* Defaulting of API objects: the defaults Kubernetes applies on decode
 * (pkg/apis/<group>/<version>/defaults.go and the +default markers),
 * applied by walking the object with the schema tables so that nested
 * types (a PodSpec inside a Deployment template) get theirs too. */
#ifndef CAPSTAN_API_DEFAULTS_H
#define CAPSTAN_API_DEFAULTS_H

#include <jansson.h>

#include "src/api/registry.h"

/* Applies the defaults of @k's root type and every nested type to @obj,
 * in place.  @obj is borrowed.  Returns 0, -EINVAL if @obj is not an
 * object, or -ENOMEM. */
int api_default(const struct api_kind *k, json_t *obj);

/* The same for a value of type index @type (e.g. a PodSpec alone). */
int api_default_type(int type, json_t *value);

/* The pull policy Kubernetes defaults for @image: "Always" when the tag
 * is latest or absent (and there is no digest), else "IfNotPresent". */
const char *api_default_pull_policy(const char *image);

#endif
