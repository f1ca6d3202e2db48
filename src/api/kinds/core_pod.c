/* core/v1 Pod: resource facts, Table columns (as kubectl prints them) and
 * the update rule that leaves only a few spec fields mutable. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "src/api/cells_mp.h"
#include "src/api/kinds/kinds.h"
#include "src/lib/codec.h"

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

/* ------------------------------------------------------------ from msgpack */

/* The same cells as pod_ready, pod_status, pod_restarts and pod_gates, and
 * the values of the path columns and of AGE, read from the stored bytes in
 * one walk (each list once), without a tree: a Table list of many pods.
 * Keep the two in step: tests/unit/test_cells_mp.c compares them on many
 * pod shapes. */

struct pod_mp {
	struct api__mpv name, created, deletion;                          /* metadata */
	struct api__mpv containers, init_containers, gates, node;         /* spec */
	struct api__mpv phase, reason, statuses, init_statuses, conditions, ip, nominated; /* status */
};

/* The path columns this walk resolves. */
static const struct {
	const char *path;
	size_t off;
} pod_mp_paths[] = {
	{ "metadata.name", offsetof(struct pod_mp, name) },
	{ "spec.nodeName", offsetof(struct pod_mp, node) },
	{ "status.podIP", offsetof(struct pod_mp, ip) },
	{ "status.nominatedNodeName", offsetof(struct pod_mp, nominated) },
};

static int pod_mp_read(const void *mp, size_t len, struct pod_mp *ret)
{
	static const char *const meta[] = { "name", "creationTimestamp", "deletionTimestamp" };
	static const char *const spec[] = { "containers", "initContainers", "readinessGates", "nodeName" };
	static const char *const status[] = { "phase", "reason", "containerStatuses", "initContainerStatuses",
					      "conditions", "podIP", "nominatedNodeName" };
	const uint8_t *p = mp, *end = p + len;
	struct api__mpv v[7];
	const char *k;
	size_t hdr, kn, vl;
	uint32_t n, i;
	int rc;

	memset(ret, 0, sizeof(*ret));
	rc = codec_msgpack_map_header(mp, len, &n, &hdr);
	if (rc == -EINVAL) {
		return 0;
	}
	if (rc != 0) {
		return -EBADMSG;
	}
	p += hdr;
	/* A later duplicate key replaces the whole value, as in a tree. */
	for (i = 0; i < n; i++) {
		struct api__mpv val;

		if (codec_msgpack_str(p, (size_t)(end - p), &k, &kn) != 0) {
			return -EBADMSG;
		}
		p = (const uint8_t *)k + kn;
		val.p = p;
		val.len = (size_t)(end - p);
		if (api__mp_eq(k, kn, "metadata")) {
			rc = api__mp_pick_end(val, meta, 3, v, &p);
			ret->name = v[0];
			ret->created = v[1];
			ret->deletion = v[2];
		} else if (api__mp_eq(k, kn, "spec")) {
			rc = api__mp_pick_end(val, spec, 4, v, &p);
			ret->containers = v[0];
			ret->init_containers = v[1];
			ret->gates = v[2];
			ret->node = v[3];
		} else if (api__mp_eq(k, kn, "status")) {
			rc = api__mp_pick_end(val, status, 7, v, &p);
			ret->phase = v[0];
			ret->reason = v[1];
			ret->statuses = v[2];
			ret->init_statuses = v[3];
			ret->conditions = v[4];
			ret->ip = v[5];
			ret->nominated = v[6];
		} else {
			rc = codec_msgpack_value_len(p, (size_t)(end - p), &vl) != 0 ? -EBADMSG : 0;
			p += rc == 0 ? vl : 0;
		}
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

/* What one container status says: its restarts, readiness, state. */
struct mp_cs {
	int64_t restarts;
	bool ready;
	struct api__mpv term, running;
	const char *wr; /* state.waiting.reason, NULL when none */
	size_t wn;
};

static int mp_cs_read(struct api__mpv cs, struct mp_cs *ret)
{
	static const char *const cs_keys[] = { "state", "ready", "restartCount" };
	static const char *const st_keys[] = { "terminated", "waiting", "running" };
	static const char *const reason_key[] = { "reason" };
	struct api__mpv c[3], s[3], wr;
	int rc;

	if ((rc = api__mp_pick(cs, cs_keys, 3, c)) != 0 || (rc = api__mp_int(c[2], &ret->restarts)) != 0 ||
	    (rc = api__mp_pick(c[0], st_keys, 3, s)) != 0 || (rc = api__mp_pick(s[1], reason_key, 1, &wr)) != 0 ||
	    (rc = api__mp_str(wr, &ret->wr, &ret->wn)) != 0) {
		return rc;
	}
	ret->ready = api__mp_is_true(c[1]);
	ret->term = s[0];
	ret->running = s[2];
	return 0;
}

/* The STATUS text: a slice of the stored bytes, a constant, or formatted in
 * buf; at most 255 bytes, as pod_status() cuts it in its buffer. */
struct mp_reason {
	char buf[256];
	const char *s;
	size_t n;
};

static void reason_set(struct mp_reason *r, const char *s, size_t n)
{
	r->s = s;
	r->n = n < sizeof(r->buf) - 1 ? n : sizeof(r->buf) - 1;
}

static void reason_printf(struct mp_reason *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reason_printf(struct mp_reason *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(r->buf, sizeof(r->buf), fmt, ap);
	va_end(ap);
	reason_set(r, r->buf, n < 0 ? 0 : (size_t)n);
}

/* As terminated_reason(). */
static int mp_terminated_reason(struct api__mpv term, const char *prefix, struct mp_reason *out)
{
	static const char *const keys[] = { "reason", "signal", "exitCode" };
	struct api__mpv v[3];
	const char *r;
	size_t rn;
	int64_t sig, code;
	int rc;

	if ((rc = api__mp_pick(term, keys, 3, v)) != 0 || (rc = api__mp_str(v[0], &r, &rn)) != 0 ||
	    (rc = api__mp_int(v[1], &sig)) != 0 || (rc = api__mp_int(v[2], &code)) != 0) {
		return rc;
	}
	if (rn > 0 && *prefix == '\0') {
		reason_set(out, r, rn);
	} else if (rn > 0) {
		reason_printf(out, "%s%.*s", prefix, (int)rn, r);
	} else if (sig != 0) {
		reason_printf(out, "%sSignal:%lld", prefix, (long long)sig);
	} else {
		reason_printf(out, "%sExitCode:%lld", prefix, (long long)code);
	}
	return 0;
}

/* READY, STATUS and RESTARTS: as pod_ready(), pod_status() and
 * pod_restarts(), with one walk over each list of container statuses. */
static int mp_containers(const struct pod_mp *pod, struct mp_reason *reason, size_t *ret_ready,
			 int64_t *ret_restarts)
{
	static const char *const exit_key[] = { "exitCode" };
	struct api__mp_iter it;
	struct api__mpv cs, code;
	struct mp_cs c;
	const char *phase, *sreason;
	size_t pn, sn, ready = 0;
	uint64_t restarts = 0;
	int64_t exit_code;
	bool initializing = false, running = false, set = false;
	int rc;

	if ((rc = api__mp_str(pod->phase, &phase, &pn)) != 0 || (rc = api__mp_str(pod->reason, &sreason, &sn)) != 0) {
		return rc;
	}
	if (sn > 0) {
		reason_set(reason, sreason, sn);
	} else if (phase != NULL) {
		reason_set(reason, phase, pn);
	} else {
		reason_set(reason, "Pending", 7);
	}

	if ((rc = api__mp_iter_init(pod->init_statuses, &it)) != 0) {
		return rc;
	}
	while ((rc = api__mp_next(&it, &cs)) == 1) {
		if ((rc = mp_cs_read(cs, &c)) != 0) {
			return rc;
		}
		restarts += (uint64_t)c.restarts;
		if (initializing) {
			continue;
		}
		if (c.term.p != NULL) {
			if ((rc = api__mp_pick(c.term, exit_key, 1, &code)) != 0 ||
			    (rc = api__mp_int(code, &exit_code)) != 0) {
				return rc;
			}
			if (exit_code == 0) {
				continue;
			}
			if ((rc = mp_terminated_reason(c.term, "Init:", reason)) != 0) {
				return rc;
			}
		} else if (c.wn > 0 && !api__mp_eq(c.wr, c.wn, "PodInitializing")) {
			reason_printf(reason, "Init:%.*s", (int)c.wn, c.wr);
		} else {
			reason_printf(reason, "Init:%zu/%zu", (size_t)it.index,
				      (size_t)api__mp_array_size(pod->init_containers));
		}
		initializing = true;
	}
	if (rc < 0 || (rc = api__mp_iter_init(pod->statuses, &it)) != 0) {
		return rc;
	}
	/* pod_status() walks the containers from the last one and each one
	 * with a waiting reason or a termination overwrites the reason: the
	 * first such container wins. */
	while ((rc = api__mp_next(&it, &cs)) == 1) {
		if ((rc = mp_cs_read(cs, &c)) != 0) {
			return rc;
		}
		restarts += (uint64_t)c.restarts;
		ready += c.ready;
		if (initializing) {
			continue;
		}
		if (c.wn > 0 || c.term.p != NULL) {
			if (!set && c.wn > 0) {
				reason_set(reason, c.wr, c.wn);
			} else if (!set && (rc = mp_terminated_reason(c.term, "", reason)) != 0) {
				return rc;
			}
			set = true;
		} else if (c.running.p != NULL && c.ready) {
			running = true;
		}
	}
	if (rc < 0) {
		return rc;
	}
	if (!initializing && running && api__mp_eq(reason->s, reason->n, "Completed")) {
		reason_set(reason, "Running", 7);
	}
	if (pod->deletion.p != NULL) {
		if (api__mp_eq(sreason, sn, "NodeLost")) {
			reason_set(reason, "Unknown", 7);
		} else {
			reason_set(reason, "Terminating", 11);
		}
	}
	*ret_ready = ready;
	*ret_restarts = (int64_t)restarts;
	return 0;
}

/* As pod_gates(): the true conditions named by a gate (every match counts),
 * and the gates. */
static int mp_gates(const struct pod_mp *pod, size_t *ret_ok, size_t *ret_total)
{
	static const char *const c_keys[] = { "type", "status" };
	static const char *const type_key[] = { "conditionType" };
	struct api__mp_iter gi, ci;
	struct api__mpv g, c, type_v, cv[2];
	const char *type, *ct, *cst;
	size_t tn, ctn, cstn, ok = 0;
	int rc;

	*ret_ok = 0;
	*ret_total = api__mp_array_size(pod->gates);
	if (*ret_total == 0) {
		return 0;
	}
	if ((rc = api__mp_iter_init(pod->gates, &gi)) != 0) {
		return rc;
	}
	while ((rc = api__mp_next(&gi, &g)) == 1) {
		if ((rc = api__mp_pick(g, type_key, 1, &type_v)) != 0 ||
		    (rc = api__mp_str(type_v, &type, &tn)) != 0 || (rc = api__mp_iter_init(pod->conditions, &ci)) != 0) {
			return rc;
		}
		while ((rc = api__mp_next(&ci, &c)) == 1) {
			if ((rc = api__mp_pick(c, c_keys, 2, cv)) != 0 || (rc = api__mp_str(cv[0], &ct, &ctn)) != 0 ||
			    (rc = api__mp_str(cv[1], &cst, &cstn)) != 0) {
				return rc;
			}
			if (type != NULL && ct != NULL && cst != NULL && tn == ctn && memcmp(type, ct, tn) == 0 &&
			    api__mp_eq(cst, cstn, "True")) {
				ok++;
			}
		}
		if (rc < 0) {
			return rc;
		}
	}
	if (rc < 0) {
		return rc;
	}
	*ret_ok = ok;
	return 0;
}

int api__pod_cells_mp(const void *mp, size_t len, int64_t now, struct api_cells_mp *ret)
{
	struct pod_mp pod;
	const struct api_column *c;
	struct mp_reason reason;
	size_t i, j, ready = 0, ok, total;
	int64_t restarts = 0;
	bool done = false;
	int rc;

	(void)now;
	if ((rc = pod_mp_read(mp, len, &pod)) != 0) {
		return rc;
	}
	ret->created = pod.created;
	ret->created_known = true;
	for (c = pod_columns, i = 0; c->name != NULL && rc == 0; c++, i++) {
		if (i >= API_CELLS_MP_COLS) {
			return -EAGAIN;
		}
		if ((c->print == pod_ready || c->print == pod_status || c->print == pod_restarts) && !done) {
			if ((rc = mp_containers(&pod, &reason, &ready, &restarts)) != 0) {
				return rc;
			}
			done = true;
		}
		if (c->print == pod_ready) {
			rc = api__cells_mp_ratio(ret, i, ready, api__mp_array_size(pod.containers));
		} else if (c->print == pod_status) {
			rc = api__cells_mp_put(ret, i, reason.s, reason.n);
		} else if (c->print == pod_restarts) {
			rc = api__cells_mp_int(ret, i, restarts);
		} else if (c->print == pod_gates) {
			if ((rc = mp_gates(&pod, &ok, &total)) == 0) {
				rc = total == 0 ? api__cells_mp_put(ret, i, "<none>", 6)
						: api__cells_mp_ratio(ret, i, ok, total);
			}
		} else if (c->print != NULL && c->print != api_cell_age) {
			/* A printer without a msgpack twin: the tree decides. */
			rc = -EAGAIN;
		} else if (c->print == NULL && c->path != NULL) {
			for (j = 0; j < sizeof(pod_mp_paths) / sizeof(pod_mp_paths[0]); j++) {
				if (strcmp(c->path, pod_mp_paths[j].path) == 0) {
					ret->value[i] = *(const struct api__mpv *)((const char *)&pod + pod_mp_paths[j].off);
					ret->resolved[i] = true;
				}
			}
		}
	}
	return rc;
}

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
