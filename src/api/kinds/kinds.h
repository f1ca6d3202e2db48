/* Private to src/api: the kind tables and the cell helpers they share. */
#ifndef CAPSTAN_API_KINDS_H
#define CAPSTAN_API_KINDS_H

#include "src/api/registry.h"
#include "src/api/validate.h"

extern const struct api_kind api__kind_namespace;
extern const struct api_kind api__kind_pod;
extern const struct api_kind api__kind_service;
extern const struct api_kind api__kind_endpoints;
extern const struct api_kind api__kind_configmap;
extern const struct api_kind api__kind_secret;
extern const struct api_kind api__kind_persistentvolume;
extern const struct api_kind api__kind_persistentvolumeclaim;
extern const struct api_kind api__kind_node;
extern const struct api_kind api__kind_serviceaccount;
extern const struct api_kind api__kind_event;
extern const struct api_kind api__kind_deployment;
extern const struct api_kind api__kind_replicaset;
extern const struct api_kind api__kind_daemonset;
extern const struct api_kind api__kind_statefulset;
extern const struct api_kind api__kind_ingress;
extern const struct api_kind api__kind_networkpolicy;
extern const struct api_kind api__kind_lease;
extern const struct api_kind api__kind_endpointslice;

/* Shared column and category lists. */
extern const char *const api__categories_all[];
#define API__COL_NAME \
	{ "Name", "string", "name", 0, "Name must be unique within a namespace.", "metadata.name", NULL }
#define API__COL_AGE \
	{ "Age", "string", "", 0, "Time since the object was created.", NULL, api_cell_age }
#define API__COL_END { NULL, NULL, NULL, 0, NULL, NULL, NULL }

/* Cell helpers: each returns a new reference or NULL. */
json_t *api__cell_string(const char *s);
json_t *api__cell_int(json_int_t v);
/* Number of keys of an object at @path (0 when absent). */
size_t api__count_keys(const json_t *obj, const char *path);
/* Integer at @path, or @dflt. */
json_int_t api__int_at(const json_t *obj, const char *path, json_int_t dflt);
/* String at @path, or NULL. */
const char *api__str_at(const json_t *obj, const char *path);
/* "a,b" of the containers' names / images of a pod template at @path
 * ("spec.template.spec"). */
json_t *api__cell_containers(const json_t *obj, const char *podspec_path);
json_t *api__cell_images(const json_t *obj, const char *podspec_path);
/* "k=v,k2=v2" of a LabelSelector at @path (matchLabels, then expressions). */
json_t *api__cell_selector(const json_t *obj, const char *path);
/* "k=v,..." of a plain string map at @path, "<none>" if empty. */
json_t *api__cell_string_map(const json_t *obj, const char *path);

/* Update rule helper: FieldValueInvalid "field is immutable" at @path
 * when the values at @path in @old_obj and @new_obj differ. */
int api__immutable(const json_t *old_obj, const json_t *new_obj, const char *path,
		   struct api_errors *errs);

#endif
