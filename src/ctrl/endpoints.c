/* The Endpoints controller (Kubernetes' pkg/controller/endpoint): for each
 * Service with a selector, an Endpoints object of the same name whose
 * subsets list the selected pods that have an IP: ready ones under
 * addresses, the others under notReadyAddresses (all under addresses with
 * spec.publishNotReadyAddresses), grouped by the ports they resolve
 * (targetPort by number, or by the name of a container port).
 *
 * Pods being deleted are left out (unless publishNotReadyAddresses), and
 * so are finished ones (Succeeded, Failed). The Endpoints carries the
 * Service's labels, service.kubernetes.io/headless for a headless Service,
 * and endpoints.kubernetes.io/managed-by (the label Kubernetes 1.33 adds):
 * that label is how this controller knows which Endpoints are its own when
 * a Service loses its selector. The Endpoints goes with its Service; a
 * Service without a selector keeps whatever Endpoints a user wrote.
 * Nothing is written when nothing changed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/ctrl/ctrl.h"
#include "src/ctrl/podtemplate.h"
#include "src/ctrl/svcpods.h"
#include "src/lib/log.h"

#define MANAGED_BY "endpoints.kubernetes.io/managed-by"
#define MANAGER "endpoint-controller"
#define TRIGGER_TIME "endpoints.kubernetes.io/last-change-trigger-time"
#define OVER_CAPACITY "endpoints.kubernetes.io/over-capacity"
/* Kubernetes truncates an Endpoints beyond this many addresses. */
#define MAX_ADDRESSES 1000
#define RETRY_MS 5000

struct priv {
	struct ctrl_svcpods *idx;
	const struct api_kind *svc_kind, *ep_kind;
};

static int start(struct ctrl *c)
{
	struct priv *p = calloc(1, sizeof(*p));

	if (p == NULL || ctrl__svcpods_new(&p->idx) != 0) {
		free(p);
		return -ENOMEM;
	}
	p->svc_kind = api_kind_by_resource("", "v1", "services");
	p->ep_kind = api_kind_by_resource("", "v1", "endpoints");
	ctrl_set_priv(c, p);
	return 0;
}

static void stop(struct ctrl *c)
{
	struct priv *p = ctrl_priv(c);

	if (p == NULL)
		return;
	ctrl__svcpods_free(p->idx);
	free(p);
	ctrl_set_priv(c, NULL);
}

static bool managed(const json_t *obj)
{
	const char *v =
		json_string_value(json_object_get(api_json_path(obj, "metadata.labels"), MANAGED_BY));

	return v != NULL && strcmp(v, MANAGER) == 0;
}

static void on_event(struct ctrl *c, const struct ctrl_event *ev)
{
	struct priv *p = ctrl_priv(c);
	char key[320];

	if (ev->kind == p->ep_kind) {
		json_t *obj;
		/* Someone changed or deleted an Endpoints of ours (or a left
		 * over one from another term): look at its Service again. */
		if (!ctrl__svcpods_key(ev->ns, ev->name, key, sizeof(key)))
			return;
		if (ctrl__svcpods_has(p->idx, key)) {
			ctrl_enqueue(c, key);
			return;
		}
		obj = ctrl_decode(ev->val, ev->val_len, 0);
		if (obj != NULL && ev->type != CTRL_DELETED && managed(obj))
			ctrl_enqueue(c, key);
		json_decref(obj);
		return;
	}
	ctrl__svcpods_event(p->idx, c, ev);
}

/* ------------------------------------------------------------ desired state */

struct entry {
	json_t *addr;
	const char *group; /* canonical ports, points into ports_text */
	char *ports_text;
	json_t *ports;
	bool ready;
};

struct build {
	const json_t *svc;
	const char *svc_name;
	bool tolerate, headless_noports;
	struct entry *v;
	size_t n, cap;
	uint64_t trigger_ms;
	bool oom;
};

static void collect(const struct ctrl_svcpod *pod, void *data)
{
	struct build *b = data;
	struct entry *e;
	json_t *ports, *addr;
	char *text;

	if (b->oom || pod->ip[0] == '\0' || pod->terminal || (pod->deleting && !b->tolerate))
		return;
	ports = ctrl__svcpods_ports(b->svc, pod);
	if (ports == NULL) {
		b->oom = true;
		return;
	}
	/* With ports, a pod that resolves none is no endpoint; a headless
	 * Service without ports lists its pods without ports. */
	if (json_array_size(ports) == 0 && !b->headless_noports) {
		json_decref(ports);
		return;
	}
	addr = json_pack("{s:s}", "ip", pod->ip);
	text = json_dumps(ports, JSON_COMPACT | JSON_SORT_KEYS);
	if (addr == NULL || text == NULL || ctrl__reserve(&b->v, b->n, &b->cap, sizeof(*b->v)) != 0) {
		json_decref(addr);
		free(text);
		json_decref(ports);
		b->oom = true;
		return;
	}
	ctrl__svcpods_decorate(addr, pod, ctrl_str(b->svc, "metadata.namespace"), b->svc_name);
	e = &b->v[b->n++];
	e->addr = addr;
	e->ports_text = text;
	e->group = text;
	e->ports = ports;
	e->ready = b->tolerate || pod->ready;
	if (pod->changed_ms > b->trigger_ms)
		b->trigger_ms = pod->changed_ms;
}

static int ip_cmp(const json_t *a, const json_t *b)
{
	int r = strcmp(json_string_value(json_object_get(a, "ip")),
		       json_string_value(json_object_get(b, "ip")));

	if (r != 0)
		return r;
	return strcmp(ctrl_str(a, "targetRef.uid"), ctrl_str(b, "targetRef.uid"));
}

/* Groups (by ports), then readiness, then IP: one subset after another. */
static int entry_cmp(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;
	int r = strcmp(a->group, b->group);

	if (r != 0)
		return r;
	if (a->ready != b->ready)
		return a->ready ? -1 : 1;
	return ip_cmp(a->addr, b->addr);
}

static void build_free(struct build *b)
{
	for (size_t i = 0; i < b->n; i++) {
		json_decref(b->v[i].addr);
		json_decref(b->v[i].ports);
		free(b->v[i].ports_text);
	}
	free(b->v);
}

/* The subsets of the sorted entries; at most MAX_ADDRESSES addresses, the
 * ready ones first (*@ret_truncated then set). */
static json_t *subsets_of(struct build *b, bool *ret_truncated)
{
	json_t *subsets = json_array(), *cur = NULL;
	size_t i, n_ready = 0, budget_ready, budget_not;
	const char *group = NULL;

	if (subsets == NULL)
		return NULL;
	for (i = 0; i < b->n; i++)
		n_ready += b->v[i].ready;
	budget_ready = n_ready < MAX_ADDRESSES ? n_ready : MAX_ADDRESSES;
	budget_not = MAX_ADDRESSES - budget_ready;
	*ret_truncated = b->n > MAX_ADDRESSES;
	for (i = 0; i < b->n; i++) {
		struct entry *e = &b->v[i];
		const char *field = e->ready ? "addresses" : "notReadyAddresses";
		json_t *list;

		if (e->ready ? budget_ready == 0 : budget_not == 0)
			continue;
		if (e->ready)
			budget_ready--;
		else
			budget_not--;
		if (group == NULL || strcmp(group, e->group) != 0) {
			cur = json_object();
			if (cur == NULL || json_array_append_new(subsets, cur) != 0)
				goto oom;
			if (json_array_size(e->ports) > 0)
				json_object_set(cur, "ports", e->ports);
			group = e->group;
		}
		list = json_object_get(cur, field);
		if (list == NULL) {
			list = json_array();
			if (list == NULL || json_object_set_new(cur, field, list) != 0)
				goto oom;
		}
		json_array_append(list, e->addr);
	}
	/* "ports" last, as Kubernetes prints a subset. */
	json_array_foreach(subsets, i, cur)
	{
		json_t *ports = json_incref(json_object_get(cur, "ports"));
		if (ports != NULL) {
			json_object_del(cur, "ports");
			json_object_set_new(cur, "ports", ports);
		}
	}
	return subsets;
oom:
	json_decref(subsets);
	return NULL;
}

/* ------------------------------------------------------------ sync */

static void retry(struct ctrl *c, const char *key, int rv, const char *what)
{
	ctrl__retry(c, key, rv, RETRY_MS, "cannot %s the endpoints of", what);
}

static void sync(struct ctrl *c, const char *key)
{
	struct priv *p = ctrl_priv(c);
	char ns[256], name[256], when[40];
	json_t *svc = NULL, *ep = NULL, *subsets = NULL, *labels = NULL, *obj = NULL;
	struct build b = {0};
	uint64_t ep_rev = 0, t;
	bool truncated = false;
	const char *cip;
	int rv = 0;

	if (ctrl__split_ns_key(key, ns, name, sizeof(ns)) != 0)
		return;
	svc = ctrl_get(c, p->svc_kind, ns, name, NULL);
	ep = ctrl_get(c, p->ep_kind, ns, name, &ep_rev);
	if (svc == NULL || !ctrl__svcpods_selects(svc)) {
		/* The Service went: so does its Endpoints. A Service without
		 * a selector keeps any Endpoints but ours. */
		if (ep != NULL && (svc == NULL || managed(ep))) {
			rv = ctrl_delete(c, p->ep_kind, ns, name, ep_rev, NULL, NULL, -1, key);
			retry(c, key, rv, "delete");
		}
		goto out;
	}
	if (!ctrl__svcpods_has(p->idx, key))
		goto out; /* the index did not take it (logged): nothing to trust */
	cip = ctrl_str(svc, "spec.clusterIP");
	b.svc = svc;
	b.svc_name = name;
	b.tolerate = json_is_true(api_json_path(svc, "spec.publishNotReadyAddresses"));
	b.headless_noports = cip != NULL && strcmp(cip, "None") == 0 &&
			     json_array_size(api_json_path(svc, "spec.ports")) == 0;
	b.trigger_ms = ctrl__time_at(svc, "metadata.creationTimestamp");
	ctrl__svcpods_each(p->idx, key, collect, &b);
	if (b.oom)
		goto oom;
	if (b.n > 1)
		qsort(b.v, b.n, sizeof(*b.v), entry_cmp);
	subsets = subsets_of(&b, &truncated);
	labels = ctrl__svcpods_labels(svc);
	if (subsets == NULL || labels == NULL)
		goto oom;
	json_object_set_new(labels, MANAGED_BY, json_string(MANAGER));

	if (ep != NULL) {
		json_t *cur_subsets = json_object_get(ep, "subsets");
		json_t *cur_labels = api_json_path(ep, "metadata.labels");
		bool cur_trunc = ctrl__annotation(ep, OVER_CAPACITY) != NULL;
		bool same_subsets = json_array_size(subsets) == 0
					    ? json_array_size(cur_subsets) == 0
					    : json_equal(cur_subsets, subsets);
		bool same_labels = json_is_object(cur_labels) ? json_equal(cur_labels, labels)
							      : json_object_size(labels) == 0;
		if (same_subsets && same_labels && cur_trunc == truncated)
			goto out; /* nothing changed: no write */
		obj = json_deep_copy(ep);
	} else {
		obj = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind", "Endpoints",
				"metadata", "name", name, "namespace", ns);
	}
	if (obj == NULL)
		goto oom;
	json_object_set(json_object_get(obj, "metadata"), "labels", labels);
	if (json_array_size(subsets) > 0)
		json_object_set(obj, "subsets", subsets);
	else
		json_object_del(obj, "subsets");
	t = b.trigger_ms;
	if (t != 0) {
		ctrl_rfc3339(t, when, sizeof(when));
		ctrl__set_annotation(obj, TRIGGER_TIME, when);
	}
	if (truncated) {
		ctrl__set_annotation(obj, OVER_CAPACITY, "truncated");
	} else {
		json_t *ann = api_json_path(obj, "metadata.annotations");
		if (json_is_object(ann))
			json_object_del(ann, OVER_CAPACITY);
	}
	if (ep == NULL) {
		rv = ctrl_create(c, p->ep_kind, obj, key);
		retry(c, key, rv, "create");
	} else {
		rv = ctrl_update(c, p->ep_kind, obj, key);
		retry(c, key, rv, "update");
	}
	goto out;
oom:
	ctrl_log(c, LOG_LEVEL_ERROR, "out of memory syncing %s", key);
	ctrl_enqueue_after(c, key, RETRY_MS);
out:
	build_free(&b);
	json_decref(obj);
	json_decref(labels);
	json_decref(subsets);
	json_decref(ep);
	json_decref(svc);
}

const struct ctrl_ops ctrl_endpoints_ops = {
	.name = "endpoints",
	.start = start,
	.stop = stop,
	.on_event = on_event,
	.sync = sync,
};
