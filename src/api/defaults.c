/* Defaults per type, applied by a schema walk (like Kubernetes' generated
 * SetObjectDefaults_* functions: a type's defaulter runs first, then its
 * fields are walked, so values a defaulter adds are defaulted in turn). */
#include "src/api/defaults.h"

#include <errno.h>
#include <string.h>

/* Sets @key to @v (stolen) unless present and non-null. */
static int set_default(json_t *obj, const char *key, json_t *v)
{
	json_t *cur = json_object_get(obj, key);
	if (cur && !json_is_null(cur)) {
		json_decref(v);
		return 0;
	}
	if (!v) {
		return -ENOMEM;
	}
	return json_object_set_new(obj, key, v) == 0 ? 0 : -ENOMEM;
}

/* Like set_default, but also replaces an empty string (Go's zero value). */
static int set_default_str(json_t *obj, const char *key, const char *s)
{
	json_t *cur = json_object_get(obj, key);
	if (json_is_string(cur) && json_string_length(cur) > 0) {
		return 0;
	}
	return json_object_set_new(obj, key, json_string(s)) == 0 ? 0 : -ENOMEM;
}

/* Like set_default, but also replaces 0 (Go's zero value of a non-pointer int). */
static int set_default_int(json_t *obj, const char *key, json_int_t n)
{
	json_t *cur = json_object_get(obj, key);
	if (json_is_integer(cur) && json_integer_value(cur) != 0) {
		return 0;
	}
	return json_object_set_new(obj, key, json_integer(n)) == 0 ? 0 : -ENOMEM;
}

/* The object at @key, created empty when absent (a Go struct field that
 * is not a pointer always exists). */
static json_t *child(json_t *obj, const char *key)
{
	json_t *c = json_object_get(obj, key);
	if (json_is_object(c)) {
		return c;
	}
	c = json_object();
	if (!c || json_object_set_new(obj, key, c) != 0) {
		return NULL;
	}
	return c;
}

const char *api_default_pull_policy(const char *image)
{
	/* The tag follows the last ':' after the last '/' (a registry's port
	 * comes before a '/'); a digest ("@sha256:...") without tag is not latest. */
	const char *at = strchr(image, '@');
	const char *slash = strrchr(image, '/');
	const char *start = slash ? slash + 1 : image;
	const char *end = at ? at : image + strlen(image);
	const char *colon = NULL;
	for (const char *p = start; p < end; p++) {
		if (*p == ':') {
			colon = p;
		}
	}
	if (!colon) {
		return at ? "IfNotPresent" : "Always";
	}
	size_t tl = (size_t)(end - colon - 1);
	return tl == 6 && strncmp(colon + 1, "latest", 6) == 0 ? "Always" : "IfNotPresent";
}

/* ---------------------------------------------------------------- core/v1 */

static int d_container(json_t *o)
{
	const char *image = json_string_value(json_object_get(o, "image"));
	int rv = set_default_str(o, "imagePullPolicy", api_default_pull_policy(image ? image : ""));
	if (rv == 0) {
		rv = set_default_str(o, "terminationMessagePath", "/dev/termination-log");
	}
	if (rv == 0) {
		rv = set_default_str(o, "terminationMessagePolicy", "File");
	}
	return rv;
}

static int d_protocol_tcp(json_t *o)
{
	return set_default_str(o, "protocol", "TCP");
}

static int d_probe(json_t *o)
{
	int rv = set_default_int(o, "timeoutSeconds", 1);
	if (rv == 0) {
		rv = set_default_int(o, "periodSeconds", 10);
	}
	if (rv == 0) {
		rv = set_default_int(o, "successThreshold", 1);
	}
	if (rv == 0) {
		rv = set_default_int(o, "failureThreshold", 3);
	}
	return rv;
}

static int d_http_get(json_t *o)
{
	int rv = set_default_str(o, "path", "/");
	return rv ? rv : set_default_str(o, "scheme", "HTTP");
}

static int d_mode_420(json_t *o)
{
	return set_default(o, "defaultMode", json_integer(0644));
}

static int d_sa_token_projection(json_t *o)
{
	return set_default(o, "expirationSeconds", json_integer(3600));
}

static int d_host_path(json_t *o)
{
	return set_default(o, "type", json_string(""));
}

static int d_field_selector(json_t *o)
{
	return set_default_str(o, "apiVersion", "v1");
}

static int d_volume(json_t *o)
{
	/* No source at all means an emptyDir. */
	bool has_source = false;
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v)
	{
		if (strcmp(key, "name") != 0 && !json_is_null(v)) {
			has_source = true;
		}
	}
	if (!has_source) {
		return set_default(o, "emptyDir", json_object());
	}
	json_t *img = json_object_get(o, "image");
	if (json_is_object(img)) {
		const char *ref = json_string_value(json_object_get(img, "reference"));
		/* Image volumes: Always only for an explicit or implied latest tag. */
		return set_default_str(img, "pullPolicy", api_default_pull_policy(ref ? ref : ""));
	}
	return 0;
}

static int d_podspec(json_t *o)
{
	int rv = set_default_str(o, "dnsPolicy", "ClusterFirst");
	if (rv == 0) {
		rv = set_default_str(o, "restartPolicy", "Always");
	}
	if (rv == 0) {
		rv = set_default(o, "securityContext", json_object());
	}
	if (rv == 0) {
		rv = set_default(o, "terminationGracePeriodSeconds", json_integer(30));
	}
	if (rv == 0) {
		rv = set_default_str(o, "schedulerName", "default-scheduler");
	}
	return rv;
}

/* Requests default to limits, container by container (Pods only, not
 * templates). */
static int requests_from_limits(json_t *containers)
{
	size_t i;
	json_t *c;
	json_array_foreach(containers, i, c)
	{
		json_t *res = json_object_get(c, "resources");
		json_t *limits = json_object_get(res, "limits");
		if (!json_is_object(limits) || json_object_size(limits) == 0) {
			continue;
		}
		json_t *req = child(res, "requests");
		if (!req) {
			return -ENOMEM;
		}
		const char *key;
		json_t *v;
		json_object_foreach(limits, key, v)
		{
			if (!json_object_get(req, key) && json_object_set(req, key, v) != 0) {
				return -ENOMEM;
			}
		}
	}
	return 0;
}

static int host_network_ports(json_t *containers)
{
	size_t i, j;
	json_t *c, *p;
	json_array_foreach(containers, i, c)
	{
		json_array_foreach(json_object_get(c, "ports"), j, p)
		{
			json_t *cp = json_object_get(p, "containerPort");
			if (json_is_integer(cp) && set_default_int(p, "hostPort", json_integer_value(cp)) != 0) {
				return -ENOMEM;
			}
		}
	}
	return 0;
}

static int d_pod(json_t *o)
{
	json_t *spec = child(o, "spec");
	if (!spec) {
		return -ENOMEM;
	}
	int rv = requests_from_limits(json_object_get(spec, "containers"));
	if (rv == 0) {
		rv = requests_from_limits(json_object_get(spec, "initContainers"));
	}
	if (rv == 0) {
		rv = set_default(spec, "enableServiceLinks", json_true());
	}
	if (rv == 0 && json_is_true(json_object_get(spec, "hostNetwork"))) {
		rv = host_network_ports(json_object_get(spec, "containers"));
		if (rv == 0) {
			rv = host_network_ports(json_object_get(spec, "initContainers"));
		}
	}
	return rv;
}

static bool str_is(const json_t *v, const char *s)
{
	return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

static int d_service(json_t *o)
{
	json_t *spec = child(o, "spec");
	if (!spec) {
		return -ENOMEM;
	}
	int rv = set_default_str(spec, "sessionAffinity", "None");
	if (rv != 0) {
		return rv;
	}
	if (str_is(json_object_get(spec, "sessionAffinity"), "None")) {
		json_object_del(spec, "sessionAffinityConfig");
	} else if (str_is(json_object_get(spec, "sessionAffinity"), "ClientIP")) {
		json_t *t = api_json_path(spec, "sessionAffinityConfig.clientIP.timeoutSeconds");
		if (!json_is_integer(t)) {
			json_t *cfg = json_pack("{s:{s:i}}", "clientIP", "timeoutSeconds", 10800);
			if (!cfg || json_object_set_new(spec, "sessionAffinityConfig", cfg) != 0) {
				return -ENOMEM;
			}
		}
	}
	if ((rv = set_default_str(spec, "type", "ClusterIP")) != 0) {
		return rv;
	}
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(spec, "ports"), i, p)
	{
		if ((rv = set_default_str(p, "protocol", "TCP")) != 0) {
			return rv;
		}
		json_t *tp = json_object_get(p, "targetPort");
		bool zero = !tp || json_is_null(tp) || (json_is_integer(tp) && json_integer_value(tp) == 0) ||
			    (json_is_string(tp) && json_string_length(tp) == 0);
		json_t *port = json_object_get(p, "port");
		if (zero && json_is_integer(port) && json_object_set(p, "targetPort", port) != 0) {
			return -ENOMEM;
		}
	}
	json_t *type = json_object_get(spec, "type");
	bool lb = str_is(type, "LoadBalancer");
	bool external = lb || str_is(type, "NodePort") ||
			(str_is(type, "ClusterIP") && json_array_size(json_object_get(spec, "externalIPs")) > 0);
	if (external && (rv = set_default_str(spec, "externalTrafficPolicy", "Cluster")) != 0) {
		return rv;
	}
	if ((lb || str_is(type, "NodePort") || str_is(type, "ClusterIP")) &&
	    (rv = set_default(spec, "internalTrafficPolicy", json_string("Cluster"))) != 0) {
		return rv;
	}
	if (lb) {
		if ((rv = set_default(spec, "allocateLoadBalancerNodePorts", json_true())) != 0) {
			return rv;
		}
		json_t *ing;
		json_array_foreach(api_json_path(o, "status.loadBalancer.ingress"), i, ing)
		{
			if (json_is_string(json_object_get(ing, "ip")) &&
			    (rv = set_default(ing, "ipMode", json_string("VIP"))) != 0) {
				return rv;
			}
		}
	}
	return 0;
}

static int d_secret(json_t *o)
{
	return set_default_str(o, "type", "Opaque");
}

static int d_pv(json_t *o)
{
	json_t *status = child(o, "status");
	json_t *spec = child(o, "spec");
	if (!status || !spec) {
		return -ENOMEM;
	}
	int rv = set_default_str(status, "phase", "Pending");
	if (rv == 0) {
		rv = set_default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
	}
	if (rv == 0) {
		rv = set_default(spec, "volumeMode", json_string("Filesystem"));
	}
	return rv;
}

static int d_pvc(json_t *o)
{
	json_t *status = child(o, "status");
	/* The spec is a struct: its defaults apply even when it is absent. */
	if (!status || !child(o, "spec")) {
		return -ENOMEM;
	}
	return set_default_str(status, "phase", "Pending");
}

static int d_pvc_spec(json_t *o)
{
	return set_default(o, "volumeMode", json_string("Filesystem"));
}

static int d_namespace(json_t *o)
{
	/* Nameless (generateName) namespaces get the label once named. */
	const char *name = json_string_value(api_json_path(o, "metadata.name"));
	if (!child(o, "status")) {
		return -ENOMEM;
	}
	if (!name || !*name) {
		return 0;
	}
	json_t *labels = child(child(o, "metadata"), "labels");
	if (!labels) {
		return -ENOMEM;
	}
	return json_object_set_new(labels, "kubernetes.io/metadata.name", json_string(name)) == 0
		       ? 0
		       : -ENOMEM;
}

static int d_namespace_status(json_t *o)
{
	return set_default_str(o, "phase", "Active");
}

static int d_node_status(json_t *o)
{
	json_t *cap = json_object_get(o, "capacity");
	if (json_is_object(cap) && !json_object_get(o, "allocatable")) {
		json_t *copy = json_deep_copy(cap);
		if (!copy || json_object_set_new(o, "allocatable", copy) != 0) {
			return -ENOMEM;
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- apps/v1 */

static int d_deployment(json_t *o)
{
	json_t *spec = child(o, "spec");
	if (!spec) {
		return -ENOMEM;
	}
	int rv = set_default(spec, "replicas", json_integer(1));
	json_t *strategy = child(spec, "strategy");
	if (rv != 0 || !strategy || (rv = set_default_str(strategy, "type", "RollingUpdate")) != 0) {
		return rv ? rv : -ENOMEM;
	}
	if (str_is(json_object_get(strategy, "type"), "RollingUpdate")) {
		json_t *ru = child(strategy, "rollingUpdate");
		if (!ru) {
			return -ENOMEM;
		}
		rv = set_default(ru, "maxUnavailable", json_string("25%"));
		if (rv == 0) {
			rv = set_default(ru, "maxSurge", json_string("25%"));
		}
	}
	if (rv == 0) {
		rv = set_default(spec, "revisionHistoryLimit", json_integer(10));
	}
	if (rv == 0) {
		rv = set_default(spec, "progressDeadlineSeconds", json_integer(600));
	}
	return rv;
}

static int d_daemonset(json_t *o)
{
	json_t *spec = child(o, "spec");
	json_t *us = spec ? child(spec, "updateStrategy") : NULL;
	if (!us) {
		return -ENOMEM;
	}
	int rv = set_default_str(us, "type", "RollingUpdate");
	if (rv == 0 && str_is(json_object_get(us, "type"), "RollingUpdate")) {
		json_t *ru = child(us, "rollingUpdate");
		if (!ru) {
			return -ENOMEM;
		}
		rv = set_default(ru, "maxUnavailable", json_integer(1));
		if (rv == 0) {
			rv = set_default(ru, "maxSurge", json_integer(0));
		}
	}
	if (rv == 0) {
		rv = set_default(spec, "revisionHistoryLimit", json_integer(10));
	}
	return rv;
}

static int d_statefulset(json_t *o)
{
	json_t *spec = child(o, "spec");
	json_t *us = spec ? child(spec, "updateStrategy") : NULL;
	if (!us) {
		return -ENOMEM;
	}
	int rv = set_default_str(spec, "podManagementPolicy", "OrderedReady");
	if (rv == 0 && !json_is_string(json_object_get(us, "type"))) {
		rv = set_default_str(us, "type", "RollingUpdate");
		if (rv == 0 && !child(us, "rollingUpdate")) {
			rv = -ENOMEM;
		}
	}
	json_t *ru = json_object_get(us, "rollingUpdate");
	if (rv == 0 && str_is(json_object_get(us, "type"), "RollingUpdate") && json_is_object(ru)) {
		rv = set_default(ru, "partition", json_integer(0));
	}
	if (rv == 0) {
		json_t *pol = child(spec, "persistentVolumeClaimRetentionPolicy");
		rv = pol ? set_default_str(pol, "whenDeleted", "Retain") : -ENOMEM;
		if (rv == 0) {
			rv = set_default_str(pol, "whenScaled", "Retain");
		}
	}
	if (rv == 0) {
		rv = set_default(spec, "replicas", json_integer(1));
	}
	if (rv == 0) {
		rv = set_default(spec, "revisionHistoryLimit", json_integer(10));
	}
	return rv;
}

static int d_replicaset(json_t *o)
{
	json_t *spec = child(o, "spec");
	return spec ? set_default(spec, "replicas", json_integer(1)) : -ENOMEM;
}

/* ---------------------------------------------------------------- others */

static int d_networkpolicy(json_t *o)
{
	json_t *spec = child(o, "spec");
	if (!spec) {
		return -ENOMEM;
	}
	if (json_array_size(json_object_get(spec, "policyTypes")) > 0) {
		return 0;
	}
	json_t *types = json_array();
	if (!types || json_array_append_new(types, json_string("Ingress")) != 0) {
		json_decref(types);
		return -ENOMEM;
	}
	if (json_array_size(json_object_get(spec, "egress")) > 0 &&
	    json_array_append_new(types, json_string("Egress")) != 0) {
		json_decref(types);
		return -ENOMEM;
	}
	return json_object_set_new(spec, "policyTypes", types) == 0 ? 0 : -ENOMEM;
}

static int d_netpol_port(json_t *o)
{
	return set_default(o, "protocol", json_string("TCP"));
}

static int d_slice_port(json_t *o)
{
	int rv = set_default(o, "name", json_string(""));
	return rv ? rv : set_default(o, "protocol", json_string("TCP"));
}

/* ---------------------------------------------------------------- table */

struct defaulter {
	int type;
	int (*fn)(json_t *obj);
};

static const struct defaulter defaulters[] = {
	{ API_TYPE_core_v1_Pod, d_pod },
	{ API_TYPE_core_v1_PodSpec, d_podspec },
	{ API_TYPE_core_v1_Container, d_container },
	{ API_TYPE_core_v1_EphemeralContainer, d_container },
	{ API_TYPE_core_v1_ContainerPort, d_protocol_tcp },
	{ API_TYPE_core_v1_EndpointPort, d_protocol_tcp },
	{ API_TYPE_core_v1_Probe, d_probe },
	{ API_TYPE_core_v1_HTTPGetAction, d_http_get },
	{ API_TYPE_core_v1_Volume, d_volume },
	{ API_TYPE_core_v1_SecretVolumeSource, d_mode_420 },
	{ API_TYPE_core_v1_ConfigMapVolumeSource, d_mode_420 },
	{ API_TYPE_core_v1_DownwardAPIVolumeSource, d_mode_420 },
	{ API_TYPE_core_v1_ProjectedVolumeSource, d_mode_420 },
	{ API_TYPE_core_v1_ServiceAccountTokenProjection, d_sa_token_projection },
	{ API_TYPE_core_v1_HostPathVolumeSource, d_host_path },
	{ API_TYPE_core_v1_ObjectFieldSelector, d_field_selector },
	{ API_TYPE_core_v1_Service, d_service },
	{ API_TYPE_core_v1_Secret, d_secret },
	{ API_TYPE_core_v1_PersistentVolume, d_pv },
	{ API_TYPE_core_v1_PersistentVolumeClaim, d_pvc },
	{ API_TYPE_core_v1_PersistentVolumeClaimSpec, d_pvc_spec },
	{ API_TYPE_core_v1_Namespace, d_namespace },
	{ API_TYPE_core_v1_NamespaceStatus, d_namespace_status },
	{ API_TYPE_core_v1_NodeStatus, d_node_status },
	{ API_TYPE_apps_v1_Deployment, d_deployment },
	{ API_TYPE_apps_v1_DaemonSet, d_daemonset },
	{ API_TYPE_apps_v1_StatefulSet, d_statefulset },
	{ API_TYPE_apps_v1_ReplicaSet, d_replicaset },
	{ API_TYPE_networking_v1_NetworkPolicy, d_networkpolicy },
	{ API_TYPE_networking_v1_NetworkPolicyPort, d_netpol_port },
	{ API_TYPE_discovery_v1_EndpointPort, d_slice_port },
};

#define N_DEFAULTERS (sizeof(defaulters) / sizeof(defaulters[0]))

/* Whether a value of this type can hold a defaulted type somewhere below;
 * computed once so the walk skips the many subtrees that cannot. */
static signed char reach[API_GEN_N_TYPES]; /* 0 unknown, 1 yes, -1 no, 2 visiting */

static bool elem_reaches(uint8_t kind, uint16_t ref);

static bool type_reaches(int type)
{
	if (reach[type] != 0) {
		return reach[type] == 1; /* a cycle being visited counts as no */
	}
	reach[type] = 2;
	bool yes = false;
	for (size_t i = 0; i < N_DEFAULTERS && !yes; i++) {
		yes = defaulters[i].type == type;
	}
	const struct api_type *t = api_type_get(type);
	for (uint16_t i = 0; i < t->n_fields && !yes; i++) {
		const struct api_field *f = &api_gen_fields[t->first_field + i];
		yes = elem_reaches(f->kind, f->ref);
	}
	reach[type] = yes ? 1 : -1;
	return yes;
}

static bool elem_reaches(uint8_t kind, uint16_t ref)
{
	if (kind == API_V_OBJECT) {
		return type_reaches(ref);
	}
	if (kind == API_V_ARRAY || kind == API_V_MAP) {
		const struct api_elem *el = api_elem_get(ref);
		return elem_reaches(el->kind, el->ref);
	}
	return false;
}

static int walk_value(uint8_t kind, uint16_t ref, json_t *v);

static int walk_type(int type, json_t *obj)
{
	if (!json_is_object(obj) || !type_reaches(type)) {
		return 0;
	}
	for (size_t i = 0; i < N_DEFAULTERS; i++) {
		if (defaulters[i].type == type) {
			int rv = defaulters[i].fn(obj);
			if (rv != 0) {
				return rv;
			}
		}
	}
	const struct api_type *t = api_type_get(type);
	const char *key;
	json_t *v;
	json_object_foreach(obj, key, v)
	{
		const struct api_field *f = api_type_field(t, key);
		if (f) {
			int rv = walk_value(f->kind, f->ref, v);
			if (rv != 0) {
				return rv;
			}
		}
	}
	return 0;
}

static int walk_value(uint8_t kind, uint16_t ref, json_t *v)
{
	if (kind == API_V_OBJECT) {
		return walk_type(ref, v);
	}
	if (kind != API_V_ARRAY && kind != API_V_MAP) {
		return 0;
	}
	const struct api_elem *el = api_elem_get(ref);
	if (!elem_reaches(el->kind, el->ref)) {
		return 0;
	}
	if (json_is_array(v)) {
		size_t i;
		json_t *item;
		json_array_foreach(v, i, item)
		{
			int rv = walk_value(el->kind, el->ref, item);
			if (rv != 0) {
				return rv;
			}
		}
	} else if (json_is_object(v) && kind == API_V_MAP) {
		const char *key;
		json_t *item;
		json_object_foreach(v, key, item)
		{
			int rv = walk_value(el->kind, el->ref, item);
			if (rv != 0) {
				return rv;
			}
		}
	}
	return 0;
}

int api_default_type(int type, json_t *value)
{
	if (!json_is_object(value) || !api_type_get(type)) {
		return -EINVAL;
	}
	return walk_type(type, value);
}

int api_default(const struct api_kind *k, json_t *obj)
{
	return api_default_type(k->type, obj);
}
