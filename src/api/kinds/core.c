/* core/v1 kinds other than Pod: Namespace, Service, Endpoints, ConfigMap,
 * Secret, PersistentVolume(Claim), Node, ServiceAccount, Event. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "src/api/kinds/kinds.h"

#define SUB_END { NULL, NULL, NULL, NULL, 0, 0 }

/* ---------------------------------------------------------------- Namespace */

static const char *const ns_short[] = { "ns", NULL };
static const char *const ns_selectable[] = { "status.phase", NULL };
static const struct api_subresource ns_sub[] = {
	{ "status", "", "v1", NULL, API_TYPE_core_v1_Namespace, API_VERBS_GET_UPDATE },
	{ "finalize", "", "v1", NULL, API_TYPE_core_v1_Namespace, API_VERB_UPDATE },
	SUB_END,
};
static const struct api_column ns_columns[] = {
	API__COL_NAME,
	{ "Status", "string", "", 0, "The lifecycle phase of the namespace.", "status.phase", NULL },
	API__COL_AGE,
	API__COL_END,
};

const struct api_kind api__kind_namespace = {
	.group = "", .version = "v1", .kind = "Namespace", .plural = "namespaces",
	.singular = "namespace", .short_names = ns_short, .namespaced = false,
	.verbs = API_VERBS_ALL & ~(unsigned)API_VERB_DELETECOLLECTION, .subresources = ns_sub,
	.type = API_TYPE_core_v1_Namespace, .status_type = API_TYPE_core_v1_NamespaceStatus,
	.name_rule = API_NAME_DNS_LABEL, .columns = ns_columns, .selectable_fields = ns_selectable,
};

/* ---------------------------------------------------------------- Service */

static json_t *svc_external_ip(const json_t *obj, int64_t now)
{
	(void)now;
	const char *type = api__str_at(obj, "spec.type");
	if (type && strcmp(type, "ExternalName") == 0) {
		return api__cell_string(api__str_at(obj, "spec.externalName"));
	}
	char buf[512] = "";
	size_t len = 0;
	size_t i;
	json_t *v;
	json_array_foreach(api_json_path(obj, "status.loadBalancer.ingress"), i, v)
	{
		const char *ip = json_string_value(json_object_get(v, "ip"));
		if (!ip) {
			ip = json_string_value(json_object_get(v, "hostname"));
		}
		if (ip && len < sizeof(buf)) {
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "", ip);
		}
	}
	json_array_foreach(api_json_path(obj, "spec.externalIPs"), i, v)
	{
		const char *ip = json_string_value(v);
		if (ip && len < sizeof(buf)) {
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "", ip);
		}
	}
	if (len > 0) {
		return json_string(buf);
	}
	if (type && strcmp(type, "LoadBalancer") == 0) {
		return json_string("<pending>");
	}
	return json_string("<none>");
}

static json_t *svc_ports(const json_t *obj, int64_t now)
{
	(void)now;
	char buf[1024] = "";
	size_t len = 0;
	size_t i;
	json_t *p;
	json_array_foreach(api_json_path(obj, "spec.ports"), i, p)
	{
		json_int_t port = json_integer_value(json_object_get(p, "port"));
		json_int_t node = json_integer_value(json_object_get(p, "nodePort"));
		const char *proto = json_string_value(json_object_get(p, "protocol"));
		if (len >= sizeof(buf)) {
			break;
		}
		if (node > 0) {
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%lld:%lld/%s",
						len ? "," : "", (long long)port, (long long)node,
						proto ? proto : "TCP");
		} else {
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%lld/%s",
						len ? "," : "", (long long)port, proto ? proto : "TCP");
		}
	}
	return json_string(len ? buf : "<none>");
}

static json_t *svc_selector(const json_t *obj, int64_t now)
{
	(void)now;
	return api__cell_string_map(obj, "spec.selector");
}

static const char *const svc_short[] = { "svc", NULL };
static const struct api_subresource svc_sub[] = {
	{ "status", "", "v1", NULL, API_TYPE_core_v1_Service, API_VERBS_GET_UPDATE },
	SUB_END,
};
static const struct api_column svc_columns[] = {
	API__COL_NAME,
	{ "Type", "string", "", 0, "The type of the service.", "spec.type", NULL },
	{ "Cluster-IP", "string", "", 0, "The cluster IP address of the service.", "spec.clusterIP", NULL },
	{ "External-IP", "string", "", 0, "External IP addresses of the service.", NULL, svc_external_ip },
	{ "Port(s)", "string", "", 0, "The ports the service exposes.", NULL, svc_ports },
	API__COL_AGE,
	{ "Selector", "string", "", 1, "The pods the service routes to.", NULL, svc_selector },
	API__COL_END,
};
static const struct api_immutable svc_immutable[] = {
	{ "spec.clusterIP", API_IMM_ONCE_SET },
	{ NULL, 0 },
};

const struct api_kind api__kind_service = {
	.group = "", .version = "v1", .kind = "Service", .plural = "services",
	.singular = "service", .short_names = svc_short, .categories = api__categories_all,
	.namespaced = true, .verbs = API_VERBS_ALL, .subresources = svc_sub,
	.type = API_TYPE_core_v1_Service, .status_type = API_TYPE_core_v1_ServiceStatus,
	.name_rule = API_NAME_DNS1035_LABEL, .immutable = svc_immutable, .columns = svc_columns,
};

/* ---------------------------------------------------------------- Endpoints */

static json_t *ep_endpoints(const json_t *obj, int64_t now)
{
	(void)now;
	char buf[512] = "";
	size_t len = 0;
	size_t shown = 0, total = 0;
	size_t i, j, k;
	json_t *ss, *a, *p;
	json_array_foreach(api_json_path(obj, "subsets"), i, ss)
	{
		json_t *ports = json_object_get(ss, "ports");
		json_array_foreach(json_object_get(ss, "addresses"), j, a)
		{
			const char *ip = json_string_value(json_object_get(a, "ip"));
			if (!ip) {
				continue;
			}
			if (json_array_size(ports) == 0) {
				total++;
				if (shown < 3 && len < sizeof(buf)) {
					len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "", ip);
					shown++;
				}
			}
			json_array_foreach(ports, k, p)
			{
				total++;
				if (shown < 3 && len < sizeof(buf)) {
					len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s:%lld",
								len ? "," : "", ip,
								(long long)json_integer_value(json_object_get(p, "port")));
					shown++;
				}
			}
		}
	}
	if (total == 0) {
		return json_string("<none>");
	}
	if (total > shown && len < sizeof(buf)) {
		snprintf(buf + len, sizeof(buf) - len, " + %zu more...", total - shown);
	}
	return json_string(buf);
}

static const char *const ep_short[] = { "ep", NULL };
static const struct api_column ep_columns[] = {
	API__COL_NAME,
	{ "Endpoints", "string", "", 0, "Endpoint addresses and ports.", NULL, ep_endpoints },
	API__COL_AGE,
	API__COL_END,
};

const struct api_kind api__kind_endpoints = {
	.group = "", .version = "v1", .kind = "Endpoints", .plural = "endpoints",
	.singular = "endpoints", .short_names = ep_short, .namespaced = true,
	.verbs = API_VERBS_ALL, .type = API_TYPE_core_v1_Endpoints, .status_type = -1,
	.name_rule = API_NAME_DNS_SUBDOMAIN, .columns = ep_columns,
};

/* ---------------------------------------------------------------- ConfigMap, Secret */

static json_t *data_count(const json_t *obj, int64_t now)
{
	(void)now;
	return json_integer((json_int_t)(api__count_keys(obj, "data") +
					 api__count_keys(obj, "binaryData")));
}

/* With `immutable: true` the data can no longer change, nor the flag. */
static int immutable_data(const json_t *old_obj, const json_t *new_obj, struct api_errors *errs,
			  const char *const *data_fields)
{
	if (!json_is_true(json_object_get(old_obj, "immutable"))) {
		return 0;
	}
	int rv = 0;
	if (!json_is_true(json_object_get(new_obj, "immutable"))) {
		rv = api_errors_add(errs, API_CAUSE_FORBIDDEN, "immutable", NULL,
				    "field is immutable when `immutable` is set");
	}
	for (const char *const *f = data_fields; rv == 0 && *f; f++) {
		json_t *a = json_object_get(old_obj, *f);
		json_t *b = json_object_get(new_obj, *f);
		size_t na = json_is_object(a) ? json_object_size(a) : 0;
		size_t nb = json_is_object(b) ? json_object_size(b) : 0;
		if ((na || nb) && !json_equal(a, b)) {
			rv = api_errors_add(errs, API_CAUSE_FORBIDDEN, *f, NULL,
					    "field is immutable when `immutable` is set");
		}
	}
	return rv;
}

static int cm_validate_update(const json_t *old_obj, const json_t *new_obj, struct api_errors *errs)
{
	static const char *const fields[] = { "data", "binaryData", NULL };
	return immutable_data(old_obj, new_obj, errs, fields);
}

static int secret_validate_update(const json_t *old_obj, const json_t *new_obj, struct api_errors *errs)
{
	static const char *const fields[] = { "data", NULL };
	int rv = api__immutable(old_obj, new_obj, "type", errs);
	return rv ? rv : immutable_data(old_obj, new_obj, errs, fields);
}

static const char *const cm_short[] = { "cm", NULL };
static const struct api_column cm_columns[] = {
	API__COL_NAME,
	{ "Data", "integer", "", 0, "Number of data entries.", NULL, data_count },
	API__COL_AGE,
	API__COL_END,
};

const struct api_kind api__kind_configmap = {
	.group = "", .version = "v1", .kind = "ConfigMap", .plural = "configmaps",
	.singular = "configmap", .short_names = cm_short, .namespaced = true,
	.verbs = API_VERBS_ALL, .type = API_TYPE_core_v1_ConfigMap, .status_type = -1,
	.name_rule = API_NAME_DNS_SUBDOMAIN, .validate_update = cm_validate_update,
	.columns = cm_columns,
};

static const char *const secret_selectable[] = { "type", NULL };
static const struct api_column secret_columns[] = {
	API__COL_NAME,
	{ "Type", "string", "", 0, "The type of the secret.", "type", NULL },
	{ "Data", "integer", "", 0, "Number of data entries.", NULL, data_count },
	API__COL_AGE,
	API__COL_END,
};

const struct api_kind api__kind_secret = {
	.group = "", .version = "v1", .kind = "Secret", .plural = "secrets", .singular = "secret",
	.namespaced = true, .verbs = API_VERBS_ALL, .type = API_TYPE_core_v1_Secret,
	.status_type = -1, .name_rule = API_NAME_DNS_SUBDOMAIN,
	.validate_update = secret_validate_update, .columns = secret_columns,
	.selectable_fields = secret_selectable,
};

/* ---------------------------------------------------------------- PV, PVC */

static json_t *access_modes(const json_t *modes)
{
	char buf[64] = "";
	size_t len = 0;
	static const char *const abbr[][2] = {
		{ "ReadWriteOnce", "RWO" }, { "ReadOnlyMany", "ROX" },
		{ "ReadWriteMany", "RWX" }, { "ReadWriteOncePod", "RWOP" },
	};
	for (size_t a = 0; a < 4; a++) {
		size_t i;
		json_t *m;
		json_array_foreach(modes, i, m)
		{
			const char *s = json_string_value(m);
			if (s && strcmp(s, abbr[a][0]) == 0 && len < sizeof(buf)) {
				len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s",
							len ? "," : "", abbr[a][1]);
				break;
			}
		}
	}
	return json_string(buf);
}

static json_t *pv_modes(const json_t *obj, int64_t now)
{
	(void)now;
	return access_modes(api_json_path(obj, "spec.accessModes"));
}

static json_t *pvc_modes(const json_t *obj, int64_t now)
{
	(void)now;
	return access_modes(api_json_path(obj, "status.accessModes"));
}

static json_t *pv_claim(const json_t *obj, int64_t now)
{
	(void)now;
	const char *ns = api__str_at(obj, "spec.claimRef.namespace");
	const char *name = api__str_at(obj, "spec.claimRef.name");
	if (!name) {
		return json_string("");
	}
	char buf[512];
	snprintf(buf, sizeof(buf), "%s/%s", ns ? ns : "", name);
	return json_string(buf);
}

static const char *const pv_short[] = { "pv", NULL };
static const struct api_subresource pv_sub[] = {
	{ "status", "", "v1", NULL, API_TYPE_core_v1_PersistentVolume, API_VERBS_GET_UPDATE },
	SUB_END,
};
static const struct api_column pv_columns[] = {
	API__COL_NAME,
	{ "Capacity", "string", "", 0, "Storage capacity.", "spec.capacity.storage", NULL },
	{ "Access Modes", "string", "", 0, "Access modes.", NULL, pv_modes },
	{ "Reclaim Policy", "string", "", 0, "What happens on release.", "spec.persistentVolumeReclaimPolicy", NULL },
	{ "Status", "string", "", 0, "The phase of the volume.", "status.phase", NULL },
	{ "Claim", "string", "", 0, "The claim bound to the volume.", NULL, pv_claim },
	{ "StorageClass", "string", "", 0, "The storage class.", "spec.storageClassName", NULL },
	{ "VolumeAttributesClass", "string", "", 0, "The volume attributes class.", "spec.volumeAttributesClassName", NULL },
	{ "Reason", "string", "", 0, "Why the volume is in this phase.", "status.reason", NULL },
	API__COL_AGE,
	{ "VolumeMode", "string", "", 1, "Filesystem or Block.", "spec.volumeMode", NULL },
	API__COL_END,
};

const struct api_kind api__kind_persistentvolume = {
	.group = "", .version = "v1", .kind = "PersistentVolume", .plural = "persistentvolumes",
	.singular = "persistentvolume", .short_names = pv_short, .namespaced = false,
	.verbs = API_VERBS_ALL, .subresources = pv_sub, .type = API_TYPE_core_v1_PersistentVolume,
	.status_type = API_TYPE_core_v1_PersistentVolumeStatus, .name_rule = API_NAME_DNS_SUBDOMAIN,
	.columns = pv_columns,
};

/* A claim's spec is immutable except resources.requests (expansion) and
 * volumeAttributesClassName; volumeName may be set once (binding). */
static int pvc_validate_update(const json_t *old_obj, const json_t *new_obj, struct api_errors *errs)
{
	json_t *a = json_deep_copy(json_object_get(old_obj, "spec"));
	json_t *b = json_deep_copy(json_object_get(new_obj, "spec"));
	int rv = 0;
	if (!a || !b) {
		rv = a || b ? -ENOMEM : 0;
		goto out;
	}
	json_object_del(json_object_get(a, "resources"), "requests");
	json_object_del(json_object_get(b, "resources"), "requests");
	json_object_del(a, "volumeAttributesClassName");
	json_object_del(b, "volumeAttributesClassName");
	if (!json_object_get(a, "volumeName")) {
		json_object_del(b, "volumeName");
	}
	if (!json_equal(a, b)) {
		rv = api_errors_add(errs, API_CAUSE_FORBIDDEN, "spec", NULL,
				    "spec is immutable after creation except resources.requests "
				    "and volumeAttributesClassName for bound claims");
	}
out:
	json_decref(a);
	json_decref(b);
	return rv;
}

static const char *const pvc_short[] = { "pvc", NULL };
static const struct api_subresource pvc_sub[] = {
	{ "status", "", "v1", NULL, API_TYPE_core_v1_PersistentVolumeClaim, API_VERBS_GET_UPDATE },
	SUB_END,
};
static const struct api_column pvc_columns[] = {
	API__COL_NAME,
	{ "Status", "string", "", 0, "The phase of the claim.", "status.phase", NULL },
	{ "Volume", "string", "", 0, "The bound volume.", "spec.volumeName", NULL },
	{ "Capacity", "string", "", 0, "Storage capacity.", "status.capacity.storage", NULL },
	{ "Access Modes", "string", "", 0, "Access modes.", NULL, pvc_modes },
	{ "StorageClass", "string", "", 0, "The storage class.", "spec.storageClassName", NULL },
	{ "VolumeAttributesClass", "string", "", 0, "The volume attributes class.", "spec.volumeAttributesClassName", NULL },
	API__COL_AGE,
	{ "VolumeMode", "string", "", 1, "Filesystem or Block.", "spec.volumeMode", NULL },
	API__COL_END,
};

const struct api_kind api__kind_persistentvolumeclaim = {
	.group = "", .version = "v1", .kind = "PersistentVolumeClaim",
	.plural = "persistentvolumeclaims", .singular = "persistentvolumeclaim",
	.short_names = pvc_short, .namespaced = true, .verbs = API_VERBS_ALL, .subresources = pvc_sub,
	.type = API_TYPE_core_v1_PersistentVolumeClaim,
	.status_type = API_TYPE_core_v1_PersistentVolumeClaimStatus,
	.name_rule = API_NAME_DNS_SUBDOMAIN, .validate_update = pvc_validate_update,
	.columns = pvc_columns,
};

/* ---------------------------------------------------------------- Node */

static json_t *node_status(const json_t *obj, int64_t now)
{
	(void)now;
	const char *ready = "Unknown";
	size_t i;
	json_t *c;
	json_array_foreach(api_json_path(obj, "status.conditions"), i, c)
	{
		const char *t = json_string_value(json_object_get(c, "type"));
		const char *s = json_string_value(json_object_get(c, "status"));
		if (t && s && strcmp(t, "Ready") == 0) {
			ready = strcmp(s, "True") == 0 ? "Ready" : strcmp(s, "False") == 0 ? "NotReady" : "Unknown";
		}
	}
	char buf[64];
	snprintf(buf, sizeof(buf), "%s%s", ready,
		 json_is_true(api_json_path(obj, "spec.unschedulable")) ? ",SchedulingDisabled" : "");
	return json_string(buf);
}

static json_t *node_roles(const json_t *obj, int64_t now)
{
	(void)now;
	static const char prefix[] = "node-role.kubernetes.io/";
	char buf[512] = "";
	size_t len = 0;
	const char *key;
	json_t *v;
	json_object_foreach(api_json_path(obj, "metadata.labels"), key, v)
	{
		const char *role = NULL;
		if (strncmp(key, prefix, sizeof(prefix) - 1) == 0) {
			role = key + sizeof(prefix) - 1;
		} else if (strcmp(key, "kubernetes.io/role") == 0) {
			role = json_string_value(v);
		}
		if (role && *role && len < sizeof(buf)) {
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "", role);
		}
	}
	return json_string(len ? buf : "<none>");
}

static json_t *node_address(const json_t *obj, const char *type)
{
	size_t i;
	json_t *a;
	json_array_foreach(api_json_path(obj, "status.addresses"), i, a)
	{
		const char *t = json_string_value(json_object_get(a, "type"));
		if (t && strcmp(t, type) == 0) {
			return api__cell_string(json_string_value(json_object_get(a, "address")));
		}
	}
	return json_string("<none>");
}

static json_t *node_internal_ip(const json_t *obj, int64_t now)
{
	(void)now;
	return node_address(obj, "InternalIP");
}

static json_t *node_external_ip(const json_t *obj, int64_t now)
{
	(void)now;
	return node_address(obj, "ExternalIP");
}

static const char *const node_short[] = { "no", NULL };
static const char *const node_selectable[] = { "spec.unschedulable", NULL };
static const struct api_subresource node_sub[] = {
	{ "status", "", "v1", NULL, API_TYPE_core_v1_Node, API_VERBS_GET_UPDATE },
	SUB_END,
};
static const struct api_column node_columns[] = {
	API__COL_NAME,
	{ "Status", "string", "", 0, "Readiness of the node.", NULL, node_status },
	{ "Roles", "string", "", 0, "The roles of the node.", NULL, node_roles },
	API__COL_AGE,
	{ "Version", "string", "", 0, "Version of the node agent.", "status.nodeInfo.kubeletVersion", NULL },
	{ "Internal-IP", "string", "", 1, "Internal IP of the node.", NULL, node_internal_ip },
	{ "External-IP", "string", "", 1, "External IP of the node.", NULL, node_external_ip },
	{ "OS-Image", "string", "", 1, "OS image of the node.", "status.nodeInfo.osImage", NULL },
	{ "Kernel-Version", "string", "", 1, "Kernel version of the node.", "status.nodeInfo.kernelVersion", NULL },
	{ "Container-Runtime", "string", "", 1, "Container runtime of the node.", "status.nodeInfo.containerRuntimeVersion", NULL },
	API__COL_END,
};
static const struct api_immutable node_immutable[] = {
	{ "spec.podCIDR", API_IMM_ONCE_SET },
	{ "spec.providerID", API_IMM_ONCE_SET },
	{ NULL, 0 },
};

const struct api_kind api__kind_node = {
	.group = "", .version = "v1", .kind = "Node", .plural = "nodes", .singular = "node",
	.short_names = node_short, .namespaced = false, .verbs = API_VERBS_ALL,
	.subresources = node_sub, .type = API_TYPE_core_v1_Node,
	.status_type = API_TYPE_core_v1_NodeStatus, .name_rule = API_NAME_DNS_SUBDOMAIN,
	.immutable = node_immutable, .columns = node_columns, .selectable_fields = node_selectable,
};

/* ---------------------------------------------------------------- ServiceAccount */

static json_t *sa_secrets(const json_t *obj, int64_t now)
{
	(void)now;
	return json_integer((json_int_t)json_array_size(api_json_path(obj, "secrets")));
}

static const char *const sa_short[] = { "sa", NULL };
static const struct api_column sa_columns[] = {
	API__COL_NAME,
	{ "Secrets", "string", "", 0, "Number of secrets.", NULL, sa_secrets },
	API__COL_AGE,
	API__COL_END,
};

const struct api_kind api__kind_serviceaccount = {
	.group = "", .version = "v1", .kind = "ServiceAccount", .plural = "serviceaccounts",
	.singular = "serviceaccount", .short_names = sa_short, .namespaced = true,
	.verbs = API_VERBS_ALL, .type = API_TYPE_core_v1_ServiceAccount, .status_type = -1,
	.name_rule = API_NAME_DNS_SUBDOMAIN, .columns = sa_columns,
};

/* ---------------------------------------------------------------- Event */

static json_t *since(const json_t *obj, int64_t now, const char *const *paths)
{
	for (const char *const *p = paths; *p; p++) {
		const char *ts = api__str_at(obj, *p);
		int64_t t;
		if (ts && api_parse_time(ts, &t) == 0) {
			char buf[32];
			api_human_duration(now - t, buf, sizeof(buf));
			return json_string(buf);
		}
	}
	return json_string("<unknown>");
}

static json_t *ev_last_seen(const json_t *obj, int64_t now)
{
	static const char *const paths[] = { "series.lastObservedTime", "lastTimestamp", "eventTime",
					     "firstTimestamp", "metadata.creationTimestamp", NULL };
	return since(obj, now, paths);
}

static json_t *ev_first_seen(const json_t *obj, int64_t now)
{
	static const char *const paths[] = { "firstTimestamp", "eventTime",
					     "metadata.creationTimestamp", NULL };
	return since(obj, now, paths);
}

static json_t *ev_object(const json_t *obj, int64_t now)
{
	(void)now;
	const char *kind = api__str_at(obj, "involvedObject.kind");
	const char *name = api__str_at(obj, "involvedObject.name");
	char buf[512];
	snprintf(buf, sizeof(buf), "%s/%s", kind ? kind : "", name ? name : "");
	for (char *p = buf; *p && *p != '/'; p++) {
		if (*p >= 'A' && *p <= 'Z') {
			*p = (char)(*p - 'A' + 'a');
		}
	}
	return json_string(buf);
}

static json_t *ev_source(const json_t *obj, int64_t now)
{
	(void)now;
	const char *comp = api__str_at(obj, "source.component");
	const char *host = api__str_at(obj, "source.host");
	if (!comp || !*comp) {
		comp = api__str_at(obj, "reportingComponent");
	}
	char buf[512];
	if (host && *host) {
		snprintf(buf, sizeof(buf), "%s, %s", comp ? comp : "", host);
	} else {
		snprintf(buf, sizeof(buf), "%s", comp ? comp : "");
	}
	return json_string(buf);
}

static json_t *ev_count(const json_t *obj, int64_t now)
{
	(void)now;
	json_int_t n = api__int_at(obj, "series.count", 0);
	return json_integer(n ? n : api__int_at(obj, "count", 1));
}

static const char *const ev_short[] = { "ev", NULL };
static const char *const ev_selectable[] = {
	"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
	"involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
	"involvedObject.fieldPath", "reason", "reportingComponent", "source", "type", NULL,
};
static const struct api_column ev_columns[] = {
	{ "Last Seen", "string", "", 0, "Time since the event was last seen.", NULL, ev_last_seen },
	{ "Type", "string", "", 0, "Normal or Warning.", "type", NULL },
	{ "Reason", "string", "", 0, "Short reason of the event.", "reason", NULL },
	{ "Object", "string", "", 0, "The object the event is about.", NULL, ev_object },
	{ "Subobject", "string", "", 1, "The field path in the object.", "involvedObject.fieldPath", NULL },
	{ "Source", "string", "", 1, "The component reporting the event.", NULL, ev_source },
	{ "Message", "string", "", 0, "The event message.", "message", NULL },
	{ "First Seen", "string", "", 1, "Time since the event was first seen.", NULL, ev_first_seen },
	{ "Count", "string", "", 1, "Times the event happened.", NULL, ev_count },
	{ "Name", "string", "name", 1, "Name of the event.", "metadata.name", NULL },
	API__COL_END,
};

const struct api_kind api__kind_event = {
	.group = "", .version = "v1", .kind = "Event", .plural = "events", .singular = "event",
	.short_names = ev_short, .namespaced = true, .verbs = API_VERBS_ALL,
	.type = API_TYPE_core_v1_Event, .status_type = -1, .name_rule = API_NAME_DNS_SUBDOMAIN,
	.columns = ev_columns, .selectable_fields = ev_selectable,
};
