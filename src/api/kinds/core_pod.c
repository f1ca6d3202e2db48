/* core/v1 Pod: resource facts, Table columns (as kubectl prints them) and
 * the update rule that leaves only a few spec fields mutable. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "src/api/kinds/kinds.h"

static json_t *pod_ready(const json_t *obj, int64_t now)
{
	(void)now;
	size_t total = json_array_size(api_json_path(obj, "spec.containers"));
	size_t ready = 0;
	size_t i;
	json_t *cs;
	json_array_foreach(api_json_path(obj, "status.containerStatuses"), i, cs)
	{
		if (json_is_true(json_object_get(cs, "ready"))) {
			ready++;
		}
	}
	char buf[48];
	snprintf(buf, sizeof(buf), "%zu/%zu", ready, total);
	return json_string(buf);
}

/* The reason a terminated container state shows: its reason, else the
 * signal or the exit code. */
static void terminated_reason(const json_t *term, const char *prefix, char *buf, size_t size)
{
	const char *r = json_string_value(json_object_get(term, "reason"));
	json_int_t sig = json_integer_value(json_object_get(term, "signal"));
	json_int_t code = json_integer_value(json_object_get(term, "exitCode"));
	if (r && *r) {
		snprintf(buf, size, "%s%s", prefix, r);
	} else if (sig != 0) {
		snprintf(buf, size, "%sSignal:%lld", prefix, (long long)sig);
	} else {
		snprintf(buf, size, "%sExitCode:%lld", prefix, (long long)code);
	}
}

static json_t *pod_status(const json_t *obj, int64_t now)
{
	(void)now;
	char reason[256];
	const char *phase = api__str_at(obj, "status.phase");
	const char *sreason = api__str_at(obj, "status.reason");
	snprintf(reason, sizeof(reason), "%s", sreason && *sreason ? sreason : phase ? phase : "Pending");

	bool initializing = false;
	size_t n_init = json_array_size(api_json_path(obj, "spec.initContainers"));
	size_t i;
	json_t *cs;
	json_array_foreach(api_json_path(obj, "status.initContainerStatuses"), i, cs)
	{
		json_t *state = json_object_get(cs, "state");
		json_t *term = json_object_get(state, "terminated");
		json_t *wait = json_object_get(state, "waiting");
		if (term && json_integer_value(json_object_get(term, "exitCode")) == 0) {
			continue;
		}
		if (term) {
			terminated_reason(term, "Init:", reason, sizeof(reason));
		} else {
			const char *wr = json_string_value(json_object_get(wait, "reason"));
			if (wr && *wr && strcmp(wr, "PodInitializing") != 0) {
				snprintf(reason, sizeof(reason), "Init:%s", wr);
			} else {
				snprintf(reason, sizeof(reason), "Init:%zu/%zu", i, n_init);
			}
		}
		initializing = true;
		break;
	}
	if (!initializing) {
		bool running = false;
		json_t *st = api_json_path(obj, "status.containerStatuses");
		for (size_t j = json_array_size(st); j-- > 0;) {
			cs = json_array_get(st, j);
			json_t *state = json_object_get(cs, "state");
			json_t *term = json_object_get(state, "terminated");
			const char *wr = json_string_value(json_object_get(json_object_get(state, "waiting"), "reason"));
			if (wr && *wr) {
				snprintf(reason, sizeof(reason), "%s", wr);
			} else if (term) {
				terminated_reason(term, "", reason, sizeof(reason));
			} else if (json_object_get(state, "running") && json_is_true(json_object_get(cs, "ready"))) {
				running = true;
			}
		}
		if (strcmp(reason, "Completed") == 0 && running) {
			snprintf(reason, sizeof(reason), "Running");
		}
	}
	if (api_json_path(obj, "metadata.deletionTimestamp")) {
		snprintf(reason, sizeof(reason), "%s",
			 sreason && strcmp(sreason, "NodeLost") == 0 ? "Unknown" : "Terminating");
	}
	return json_string(reason);
}

static json_t *pod_restarts(const json_t *obj, int64_t now)
{
	(void)now;
	json_int_t n = 0;
	size_t i;
	json_t *cs;
	json_array_foreach(api_json_path(obj, "status.initContainerStatuses"), i, cs)
	{
		n += json_integer_value(json_object_get(cs, "restartCount"));
	}
	json_array_foreach(api_json_path(obj, "status.containerStatuses"), i, cs)
	{
		n += json_integer_value(json_object_get(cs, "restartCount"));
	}
	char buf[32];
	snprintf(buf, sizeof(buf), "%lld", (long long)n);
	return json_string(buf);
}

static json_t *pod_gates(const json_t *obj, int64_t now)
{
	(void)now;
	json_t *gates = api_json_path(obj, "spec.readinessGates");
	size_t total = json_array_size(gates);
	if (total == 0) {
		return json_string("<none>");
	}
	size_t ok = 0;
	size_t i, j;
	json_t *g, *c;
	json_array_foreach(gates, i, g)
	{
		const char *type = json_string_value(json_object_get(g, "conditionType"));
		json_array_foreach(api_json_path(obj, "status.conditions"), j, c)
		{
			const char *ct = json_string_value(json_object_get(c, "type"));
			const char *cst = json_string_value(json_object_get(c, "status"));
			if (type && ct && cst && strcmp(type, ct) == 0 && strcmp(cst, "True") == 0) {
				ok++;
			}
		}
	}
	char buf[48];
	snprintf(buf, sizeof(buf), "%zu/%zu", ok, total);
	return json_string(buf);
}

static const struct api_column pod_columns[] = {
	API__COL_NAME,
	{ "Ready", "string", "", 0, "Ready containers out of all containers.", NULL, pod_ready },
	{ "Status", "string", "", 0, "The aggregate state of the containers in this pod.", NULL, pod_status },
	{ "Restarts", "string", "", 0, "Restarts of the containers in this pod.", NULL, pod_restarts },
	API__COL_AGE,
	{ "IP", "string", "", 1, "IP address of the pod.", "status.podIP", NULL },
	{ "Node", "string", "", 1, "Node the pod is bound to.", "spec.nodeName", NULL },
	{ "Nominated Node", "string", "", 1, "Node nominated by preemption.", "status.nominatedNodeName", NULL },
	{ "Readiness Gates", "string", "", 1, "Readiness gates that are true out of all.", NULL, pod_gates },
	API__COL_END,
};

static const char *const pod_short[] = { "po", NULL };

static const char *const pod_selectable[] = {
	"spec.nodeName",
	"spec.restartPolicy",
	"spec.schedulerName",
	"spec.serviceAccountName",
	"spec.hostNetwork",
	"status.phase",
	"status.podIP",
	"status.nominatedNodeName",
	NULL,
};

static const struct api_subresource pod_subresources[] = {
	{ "status", "", "v1", NULL, API_TYPE_core_v1_Pod, API_VERBS_GET_UPDATE },
	{ "binding", "", "v1", "Binding", API_TYPE_core_v1_Binding, API_VERB_CREATE },
	{ "log", "", "v1", NULL, -1, API_VERB_GET },
	{ "exec", "", "v1", NULL, -1, API_VERB_GET | API_VERB_CREATE },
	{ "eviction", "policy", "v1", "Eviction", API_TYPE_policy_v1_Eviction, API_VERB_CREATE },
	{ NULL, NULL, NULL, NULL, 0, 0 },
};

/* Pod updates may change only the containers' and init containers' images,
 * activeDeadlineSeconds, tolerations (additions), terminationGracePeriodSeconds
 * and schedulingGates (removals): compare the specs with those masked. */
static int pod_validate_update(const json_t *old_obj, const json_t *new_obj, struct api_errors *errs)
{
	static const char *const mutable_fields[] = {
		"activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds",
		"schedulingGates", NULL,
	};
	json_t *os = json_object_get(old_obj, "spec");
	json_t *ns = json_object_get(new_obj, "spec");
	if (!json_is_object(os) || !json_is_object(ns)) {
		return 0;
	}
	json_t *a = json_deep_copy(os);
	json_t *b = json_deep_copy(ns);
	int rv = -ENOMEM;
	if (!a || !b) {
		goto out;
	}
	for (const char *const *f = mutable_fields; *f; f++) {
		json_object_del(a, *f);
		json_object_del(b, *f);
	}
	static const char *const lists[] = { "containers", "initContainers", NULL };
	for (const char *const *l = lists; *l; l++) {
		json_t *la = json_object_get(a, *l);
		json_t *lb = json_object_get(b, *l);
		if (json_array_size(la) != json_array_size(lb)) {
			continue;
		}
		size_t i;
		json_t *c;
		json_array_foreach(la, i, c)
		{
			json_object_del(c, "image");
			json_object_del(json_array_get(lb, i), "image");
		}
	}
	rv = 0;
	if (!json_equal(a, b)) {
		rv = api_errors_add(errs, API_CAUSE_FORBIDDEN, "spec", NULL,
				    "pod updates may not change fields other than "
				    "`spec.containers[*].image`, `spec.initContainers[*].image`, "
				    "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions "
				    "to existing tolerations), `spec.terminationGracePeriodSeconds` "
				    "(allow it to be set to 1 if it was previously negative)");
	}
out:
	json_decref(a);
	json_decref(b);
	return rv;
}

const struct api_kind api__kind_pod = {
	.group = "",
	.version = "v1",
	.kind = "Pod",
	.plural = "pods",
	.singular = "pod",
	.short_names = pod_short,
	.categories = api__categories_all,
	.namespaced = true,
	.verbs = API_VERBS_ALL,
	.subresources = pod_subresources,
	.type = API_TYPE_core_v1_Pod,
	.status_type = API_TYPE_core_v1_PodStatus,
	.name_rule = API_NAME_DNS_SUBDOMAIN,
	.immutable = NULL,
	.validate_update = pod_validate_update,
	.columns = pod_columns,
	.selectable_fields = pod_selectable,
};
