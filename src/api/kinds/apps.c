/* apps/v1 kinds: Deployment, ReplicaSet, DaemonSet, StatefulSet. */
#include <errno.h>
#include <stdio.h>

#include "src/api/kinds/kinds.h"

#define SUB_END { NULL, NULL, NULL, NULL, 0, 0 }
#define TEMPLATE "spec.template.spec"

static json_t *ready_of_replicas(const json_t *obj, int64_t now)
{
	(void)now;
	char buf[48];
	snprintf(buf, sizeof(buf), "%lld/%lld", (long long)api__int_at(obj, "status.readyReplicas", 0),
		 (long long)api__int_at(obj, "spec.replicas", 0));
	return json_string(buf);
}

#define INT_CELL(fn, path)                                   \
	static json_t *fn(const json_t *obj, int64_t now)    \
	{                                                    \
		(void)now;                                   \
		return json_integer(api__int_at(obj, path, 0)); \
	}

INT_CELL(updated_replicas, "status.updatedReplicas")
INT_CELL(available_replicas, "status.availableReplicas")
INT_CELL(desired_replicas, "spec.replicas")
INT_CELL(current_replicas, "status.replicas")
INT_CELL(ready_replicas, "status.readyReplicas")
INT_CELL(ds_desired, "status.desiredNumberScheduled")
INT_CELL(ds_current, "status.currentNumberScheduled")
INT_CELL(ds_ready, "status.numberReady")
INT_CELL(ds_updated, "status.updatedNumberScheduled")
INT_CELL(ds_available, "status.numberAvailable")

static json_t *containers(const json_t *obj, int64_t now)
{
	(void)now;
	return api__cell_containers(obj, TEMPLATE);
}

static json_t *images(const json_t *obj, int64_t now)
{
	(void)now;
	return api__cell_images(obj, TEMPLATE);
}

static json_t *selector(const json_t *obj, int64_t now)
{
	(void)now;
	return api__cell_selector(obj, "spec.selector");
}

static json_t *node_selector(const json_t *obj, int64_t now)
{
	(void)now;
	return api__cell_string_map(obj, TEMPLATE ".nodeSelector");
}

#define COL_CONTAINERS { "Containers", "string", "", 1, "Names of the containers.", NULL, containers }
#define COL_IMAGES { "Images", "string", "", 1, "Images of the containers.", NULL, images }
#define COL_SELECTOR { "Selector", "string", "", 1, "The label selector.", NULL, selector }

static const struct api_immutable selector_immutable[] = {
	{ "spec.selector", 0 },
	{ NULL, 0 },
};

/* ---------------------------------------------------------------- Deployment */

static const char *const deploy_short[] = { "deploy", NULL };
static const struct api_subresource scalable_sub_deploy[] = {
	{ "status", "apps", "v1", NULL, API_TYPE_apps_v1_Deployment, API_VERBS_GET_UPDATE },
	{ "scale", "autoscaling", "v1", "Scale", API_TYPE_autoscaling_v1_Scale, API_VERBS_GET_UPDATE },
	SUB_END,
};
static const struct api_column deploy_columns[] = {
	API__COL_NAME,
	{ "Ready", "string", "", 0, "Ready replicas out of desired.", NULL, ready_of_replicas },
	{ "Up-to-date", "integer", "", 0, "Replicas at the current template.", NULL, updated_replicas },
	{ "Available", "integer", "", 0, "Available replicas.", NULL, available_replicas },
	API__COL_AGE,
	COL_CONTAINERS,
	COL_IMAGES,
	COL_SELECTOR,
	API__COL_END,
};

const struct api_kind api__kind_deployment = {
	.group = "apps", .version = "v1", .kind = "Deployment", .plural = "deployments",
	.singular = "deployment", .short_names = deploy_short, .categories = api__categories_all,
	.namespaced = true, .verbs = API_VERBS_ALL, .subresources = scalable_sub_deploy,
	.type = API_TYPE_apps_v1_Deployment, .status_type = API_TYPE_apps_v1_DeploymentStatus,
	.name_rule = API_NAME_DNS_SUBDOMAIN, .immutable = selector_immutable,
	.columns = deploy_columns,
};

/* ---------------------------------------------------------------- ReplicaSet */

static const char *const rs_short[] = { "rs", NULL };
static const char *const rs_selectable[] = { "status.replicas", NULL };
static const struct api_subresource rs_sub[] = {
	{ "status", "apps", "v1", NULL, API_TYPE_apps_v1_ReplicaSet, API_VERBS_GET_UPDATE },
	{ "scale", "autoscaling", "v1", "Scale", API_TYPE_autoscaling_v1_Scale, API_VERBS_GET_UPDATE },
	SUB_END,
};
static const struct api_column rs_columns[] = {
	API__COL_NAME,
	{ "Desired", "integer", "", 0, "Desired replicas.", NULL, desired_replicas },
	{ "Current", "integer", "", 0, "Current replicas.", NULL, current_replicas },
	{ "Ready", "integer", "", 0, "Ready replicas.", NULL, ready_replicas },
	API__COL_AGE,
	COL_CONTAINERS,
	COL_IMAGES,
	COL_SELECTOR,
	API__COL_END,
};

const struct api_kind api__kind_replicaset = {
	.group = "apps", .version = "v1", .kind = "ReplicaSet", .plural = "replicasets",
	.singular = "replicaset", .short_names = rs_short, .categories = api__categories_all,
	.namespaced = true, .verbs = API_VERBS_ALL, .subresources = rs_sub,
	.type = API_TYPE_apps_v1_ReplicaSet, .status_type = API_TYPE_apps_v1_ReplicaSetStatus,
	.name_rule = API_NAME_DNS_SUBDOMAIN, .immutable = selector_immutable,
	.columns = rs_columns, .selectable_fields = rs_selectable,
};

/* ---------------------------------------------------------------- DaemonSet */

static const char *const ds_short[] = { "ds", NULL };
static const struct api_subresource ds_sub[] = {
	{ "status", "apps", "v1", NULL, API_TYPE_apps_v1_DaemonSet, API_VERBS_GET_UPDATE },
	SUB_END,
};
static const struct api_column ds_columns[] = {
	API__COL_NAME,
	{ "Desired", "integer", "", 0, "Nodes that should run the pod.", NULL, ds_desired },
	{ "Current", "integer", "", 0, "Nodes running the pod.", NULL, ds_current },
	{ "Ready", "integer", "", 0, "Nodes with the pod ready.", NULL, ds_ready },
	{ "Up-to-date", "integer", "", 0, "Nodes running the current template.", NULL, ds_updated },
	{ "Available", "integer", "", 0, "Nodes with the pod available.", NULL, ds_available },
	{ "Node Selector", "string", "", 0, "The pod template's node selector.", NULL, node_selector },
	API__COL_AGE,
	COL_CONTAINERS,
	COL_IMAGES,
	COL_SELECTOR,
	API__COL_END,
};

const struct api_kind api__kind_daemonset = {
	.group = "apps", .version = "v1", .kind = "DaemonSet", .plural = "daemonsets",
	.singular = "daemonset", .short_names = ds_short, .categories = api__categories_all,
	.namespaced = true, .verbs = API_VERBS_ALL, .subresources = ds_sub,
	.type = API_TYPE_apps_v1_DaemonSet, .status_type = API_TYPE_apps_v1_DaemonSetStatus,
	.name_rule = API_NAME_DNS_SUBDOMAIN, .immutable = selector_immutable,
	.columns = ds_columns,
};

/* ---------------------------------------------------------------- StatefulSet */

/* Only these spec fields may change on update. */
static int sts_validate_update(const json_t *old_obj, const json_t *new_obj, struct api_errors *errs)
{
	static const char *const mutable_fields[] = {
		"replicas", "ordinals", "template", "updateStrategy",
		"persistentVolumeClaimRetentionPolicy", "minReadySeconds", NULL,
	};
	json_t *a = json_deep_copy(json_object_get(old_obj, "spec"));
	json_t *b = json_deep_copy(json_object_get(new_obj, "spec"));
	int rv = 0;
	if (!a || !b) {
		rv = a || b ? -ENOMEM : 0;
		goto out;
	}
	for (const char *const *f = mutable_fields; *f; f++) {
		json_object_del(a, *f);
		json_object_del(b, *f);
	}
	if (!json_equal(a, b)) {
		rv = api_errors_add(errs, API_CAUSE_FORBIDDEN, "spec", NULL,
				    "updates to statefulset spec for fields other than 'replicas', "
				    "'ordinals', 'template', 'updateStrategy', "
				    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' "
				    "are forbidden");
	}
out:
	json_decref(a);
	json_decref(b);
	return rv;
}

static const char *const sts_short[] = { "sts", NULL };
static const struct api_subresource sts_sub[] = {
	{ "status", "apps", "v1", NULL, API_TYPE_apps_v1_StatefulSet, API_VERBS_GET_UPDATE },
	{ "scale", "autoscaling", "v1", "Scale", API_TYPE_autoscaling_v1_Scale, API_VERBS_GET_UPDATE },
	SUB_END,
};
static const struct api_column sts_columns[] = {
	API__COL_NAME,
	{ "Ready", "string", "", 0, "Ready replicas out of desired.", NULL, ready_of_replicas },
	API__COL_AGE,
	COL_CONTAINERS,
	COL_IMAGES,
	API__COL_END,
};

const struct api_kind api__kind_statefulset = {
	.group = "apps", .version = "v1", .kind = "StatefulSet", .plural = "statefulsets",
	.singular = "statefulset", .short_names = sts_short, .categories = api__categories_all,
	.namespaced = true, .verbs = API_VERBS_ALL, .subresources = sts_sub,
	.type = API_TYPE_apps_v1_StatefulSet, .status_type = API_TYPE_apps_v1_StatefulSetStatus,
	.name_rule = API_NAME_DNS_LABEL, .validate_update = sts_validate_update,
	.columns = sts_columns,
};
