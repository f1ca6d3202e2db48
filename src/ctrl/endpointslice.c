/* The EndpointSlice controller (Kubernetes' pkg/controller/endpointslice):
 * for each Service with a selector, EndpointSlices (addressType IPv4)
 * named "<service>-<random>" listing the selected pods that have an IPv4
 * address, with conditions ready / serving / terminating, nodeName,
 * targetRef and hostname, grouped by the ports they resolve: one slice per
 * group (usually exactly one per Service), split beyond 1000 endpoints
 * (the API's limit). A Service that selects nothing keeps one empty
 * placeholder slice, as Kubernetes.
 *
 * Unlike the Endpoints, slices keep terminating pods (terminating true,
 * ready false, serving as the pod's readiness). Each slice has the labels
 * kubernetes.io/service-name and endpointslice.kubernetes.io/managed-by
 * (which mark it as ours), the Service's labels, and an ownerReference to
 * the Service; when the Service goes or stops selecting, its slices are
 * deleted (the garbage collector would too). Nothing is written when
 * nothing changed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/queue.h>
#include <sys/tree.h>

#include "src/ctrl/ctrl.h"
#include "src/ctrl/podtemplate.h"
#include "src/ctrl/svcpods.h"
#include "src/lib/log.h"

#define SERVICE_NAME "kubernetes.io/service-name"
#define MANAGED_BY "endpointslice.kubernetes.io/managed-by"
#define MANAGER "endpointslice-controller.k8s.io"
#define TRIGGER_TIME "endpoints.kubernetes.io/last-change-trigger-time"
#define MAX_PER_SLICE 1000
#define RETRY_MS 5000
#define KEY_MAX 600

/* Our slices by "<ns>/<service>/<slice>", so those of one Service are a
 * contiguous range. Entries may be stale (relabelled slices): a sync
 * checks each against the store. */
struct slice {
	RB_ENTRY(slice) link;
	char key[];
};

static int slice_cmp(const struct slice *a, const struct slice *b)
{
	return strcmp(a->key, b->key);
}

RB_HEAD(slice_tree, slice);
RB_GENERATE_INTERNAL(slice_tree, slice, link, slice_cmp, static __attribute__((unused)))

struct priv {
	struct ctrl_svcpods *idx;
	struct slice_tree slices;
	const struct api_kind *svc_kind, *slice_kind;
};

static int start(struct ctrl *c)
{
	struct priv *p = calloc(1, sizeof(*p));

	if (p == NULL || ctrl__svcpods_new(&p->idx) != 0) {
		free(p);
		return -ENOMEM;
	}
	RB_INIT(&p->slices);
	p->svc_kind = api_kind_by_resource("", "v1", "services");
	p->slice_kind = api_kind_by_resource("discovery.k8s.io", "v1", "endpointslices");
	ctrl_set_priv(c, p);
	return 0;
}

static void stop(struct ctrl *c)
{
	struct priv *p = ctrl_priv(c);
	struct slice *s, *next;

	if (p == NULL)
		return;
	RB_FOREACH_SAFE(s, slice_tree, &p->slices, next)
	{
		RB_REMOVE(slice_tree, &p->slices, s);
		free(s);
	}
	ctrl__svcpods_free(p->idx);
	free(p);
	ctrl_set_priv(c, NULL);
}

static struct slice *slice_find(struct priv *p, const char *key)
{
	union {
		struct slice s;
		char buf[sizeof(struct slice) + KEY_MAX];
	} k;

	if (strlen(key) >= KEY_MAX)
		return NULL;
	strcpy(k.s.key, key);
	return RB_FIND(slice_tree, &p->slices, &k.s);
}

static void slice_forget(struct priv *p, const char *key)
{
	struct slice *s = slice_find(p, key);

	if (s != NULL) {
		RB_REMOVE(slice_tree, &p->slices, s);
		free(s);
	}
}

/* The service a stored slice belongs to, when it is ours (borrowed). */
static const char *owner_service(const json_t *slice)
{
	const json_t *labels = api_json_path(slice, "metadata.labels");
	const char *m = json_string_value(json_object_get(labels, MANAGED_BY));

	if (m == NULL || strcmp(m, MANAGER) != 0)
		return NULL;
	return json_string_value(json_object_get(labels, SERVICE_NAME));
}

static void on_slice(struct ctrl *c, struct priv *p, const struct ctrl_event *ev)
{
	json_t *obj = ctrl_decode(ev->val, ev->val_len, 0);
	const char *svc;
	char key[KEY_MAX];
	size_t len;
	int n;

	if (obj == NULL)
		return;
	svc = owner_service(obj);
	if (svc == NULL)
		goto out;
	n = snprintf(key, sizeof(key), "%s/%s/%s", ev->ns, svc, ev->name);
	if (n < 0 || (size_t)n >= sizeof(key))
		goto out;
	if (ev->type == CTRL_DELETED) {
		slice_forget(p, key);
	} else if (slice_find(p, key) == NULL) {
		struct slice *s;
		len = (size_t)n;
		s = malloc(sizeof(*s) + len + 1);
		if (s == NULL) {
			ctrl_log(c, LOG_LEVEL_ERROR, "out of memory indexing %s", ev->key);
			goto out;
		}
		memcpy(s->key, key, len + 1);
		RB_INSERT(slice_tree, &p->slices, s);
	}
	/* Someone else's change to our slice, or our own: look again. */
	n = snprintf(key, sizeof(key), "%s/%s", ev->ns, svc);
	if (n > 0 && (size_t)n < sizeof(key))
		ctrl_enqueue(c, key);
out:
	json_decref(obj);
}

static void on_event(struct ctrl *c, const struct ctrl_event *ev)
{
	struct priv *p = ctrl_priv(c);

	if (ev->kind == p->slice_kind)
		on_slice(c, p, ev);
	else
		ctrl__svcpods_event(p->idx, c, ev);
}

/* ------------------------------------------------------------ desired state */

struct entry {
	json_t *ep;
	json_t *ports;
	char *group; /* canonical ports */
	const char *ip;
};

struct build {
	const json_t *svc;
	const char *ns, *name;
	bool tolerate;
	struct entry *v;
	size_t n, cap;
	uint64_t trigger_ms;
	bool oom;
};

static bool is_ipv4(const char *ip)
{
	return ip[0] != '\0' && strchr(ip, ':') == NULL && strchr(ip, '.') != NULL;
}

static void collect(const struct ctrl_svcpod *pod, void *data)
{
	struct build *b = data;
	struct entry *e;
	json_t *ports, *ep;
	char *text;
	bool ready, serving = pod->ready;

	if (b->oom || !is_ipv4(pod->ip) || pod->terminal)
		return;
	/* Kubernetes: never ready while terminating, unless the Service
	 * publishes addresses that are not ready. */
	ready = b->tolerate || (pod->ready && !pod->deleting);
	ports = ctrl__svcpods_ports(b->svc, pod);
	ep = json_pack("{s:[s], s:{s:b, s:b, s:b}}", "addresses", pod->ip, "conditions", "ready",
		       ready, "serving", serving, "terminating", pod->deleting);
	text = ports != NULL ? json_dumps(ports, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	if (ports == NULL || ep == NULL || text == NULL ||
	    ctrl__reserve(&b->v, b->n, &b->cap, sizeof(*b->v)) != 0) {
		json_decref(ports);
		json_decref(ep);
		free(text);
		b->oom = true;
		return;
	}
	ctrl__svcpods_decorate(ep, pod, b->ns, b->name);
	e = &b->v[b->n++];
	e->ep = ep;
	e->ports = ports;
	e->group = text;
	e->ip = pod->ip;
	if (pod->changed_ms > b->trigger_ms)
		b->trigger_ms = pod->changed_ms;
}

static int entry_cmp(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;
	int r = strcmp(a->group, b->group);

	if (r != 0)
		return r;
	r = strcmp(a->ip, b->ip);
	if (r != 0)
		return r;
	return strcmp(ctrl_str(a->ep, "targetRef.uid"), ctrl_str(b->ep, "targetRef.uid"));
}

static void build_free(struct build *b)
{
	for (size_t i = 0; i < b->n; i++) {
		json_decref(b->v[i].ep);
		json_decref(b->v[i].ports);
		free(b->v[i].group);
	}
	free(b->v);
}

/* The desired slices: [{ports, endpoints}], in group order. */
static json_t *desired_slices(struct build *b)
{
	json_t *out = json_array(), *cur = NULL;
	const char *group = NULL;
	size_t i;

	if (out == NULL)
		return NULL;
	for (i = 0; i < b->n; i++) {
		struct entry *e = &b->v[i];
		if (cur == NULL || strcmp(group, e->group) != 0 ||
		    json_array_size(json_object_get(cur, "endpoints")) == MAX_PER_SLICE) {
			cur = json_pack("{s:O, s:[]}", "ports", e->ports, "endpoints");
			if (cur == NULL || json_array_append_new(out, cur) != 0)
				goto oom;
			group = e->group;
		}
		if (json_array_append(json_object_get(cur, "endpoints"), e->ep) != 0)
			goto oom;
	}
	if (json_array_size(out) == 0) {
		/* The placeholder of a Service without endpoints. */
		cur = json_pack("{s:[], s:[]}", "ports", "endpoints");
		if (cur == NULL || json_array_append_new(out, cur) != 0)
			goto oom;
	}
	return out;
oom:
	json_decref(out);
	return NULL;
}

/* ------------------------------------------------------------ sync */

struct existing {
	json_t *obj;
	uint64_t rev;
	bool used;
};

static void retry(struct ctrl *c, const char *key, int rv, const char *what)
{
	ctrl__retry(c, key, rv, RETRY_MS, "cannot %s an endpoint slice of", what);
}

/* Our slices of Service @ns/@name, read from the store (new references in
 * @ret, at most @max); stale index entries are dropped. */
static size_t existing_slices(struct ctrl *c, struct priv *p, const char *ns, const char *name,
			      struct existing *ret, size_t max)
{
	union {
		struct slice s;
		char buf[sizeof(struct slice) + KEY_MAX];
	} k;
	struct slice *s, *next;
	size_t plen, n = 0;

	snprintf(k.s.key, KEY_MAX, "%s/%s/", ns, name);
	plen = strlen(k.s.key);
	for (s = RB_NFIND(slice_tree, &p->slices, &k.s); s != NULL; s = next) {
		json_t *obj;
		const char *svc;
		uint64_t rev = 0;

		next = RB_NEXT(slice_tree, &p->slices, s);
		if (strncmp(s->key, k.s.key, plen) != 0)
			break;
		obj = ctrl_get(c, p->slice_kind, ns, s->key + plen, &rev);
		svc = obj != NULL ? owner_service(obj) : NULL;
		if (svc == NULL || strcmp(svc, name) != 0 || n == max) {
			json_decref(obj);
			if (n < max) {
				RB_REMOVE(slice_tree, &p->slices, s);
				free(s);
			}
			continue;
		}
		ret[n].obj = obj;
		ret[n].rev = rev;
		ret[n].used = false;
		n++;
	}
	return n;
}

#define MAX_SLICES 256

static void sync(struct ctrl *c, const char *key)
{
	struct priv *p = ctrl_priv(c);
	char ns[256], name[256], when[40], gen[300];
	struct existing *have = NULL;
	json_t *svc = NULL, *want = NULL, *labels = NULL, *ref = NULL, *d;
	struct build b = {0};
	size_t n_have = 0, i, j;
	int rv;

	if (ctrl__split_ns_key(key, ns, name, sizeof(ns)) != 0)
		return;
	have = calloc(MAX_SLICES, sizeof(*have));
	if (have == NULL)
		goto oom;
	n_have = existing_slices(c, p, ns, name, have, MAX_SLICES);
	svc = ctrl_get(c, p->svc_kind, ns, name, NULL);
	if (svc == NULL || !ctrl__svcpods_selects(svc) || !ctrl__svcpods_has(p->idx, key)) {
		for (i = 0; i < n_have; i++) {
			rv = ctrl_delete(c, p->slice_kind, ns, ctrl_str(have[i].obj, "metadata.name"),
					 have[i].rev, NULL, NULL, -1, key);
			retry(c, key, rv, "delete");
		}
		goto out;
	}
	b.svc = svc;
	b.ns = ns;
	b.name = name;
	b.tolerate = json_is_true(api_json_path(svc, "spec.publishNotReadyAddresses"));
	b.trigger_ms = ctrl__time_at(svc, "metadata.creationTimestamp");
	ctrl__svcpods_each(p->idx, key, collect, &b);
	if (b.oom)
		goto oom;
	if (b.n > 1)
		qsort(b.v, b.n, sizeof(*b.v), entry_cmp);
	want = desired_slices(&b);
	labels = ctrl__svcpods_labels(svc);
	ref = ctrl_owner_ref(p->svc_kind, svc);
	if (want == NULL || labels == NULL || ref == NULL)
		goto oom;
	json_object_set_new(labels, SERVICE_NAME, json_string(name));
	json_object_set_new(labels, MANAGED_BY, json_string(MANAGER));
	ctrl_rfc3339(b.trigger_ms, when, sizeof(when));

	json_array_foreach(want, i, d)
	{
		json_t *ports = json_object_get(d, "ports"), *eps = json_object_get(d, "endpoints");
		struct existing *match = NULL;
		json_t *obj;

		/* The first unused slice with the same ports. */
		for (j = 0; j < n_have && match == NULL; j++) {
			json_t *hp = json_object_get(have[j].obj, "ports");
			if (!have[j].used &&
			    (json_array_size(ports) == 0 ? json_array_size(hp) == 0
							 : json_equal(hp, ports)))
				match = &have[j];
		}
		/* Else any unused one (the placeholder, a slice whose ports
		 * changed): an update instead of a create and a delete. */
		for (j = 0; j < n_have && match == NULL; j++) {
			json_t *hp = json_object_get(have[j].obj, "ports");
			bool wanted = false;
			size_t m;
			json_t *o;
			json_array_foreach(want, m, o)
			{
				if (m > i && json_equal(json_object_get(o, "ports"), hp))
					wanted = true;
			}
			if (!have[j].used && !wanted)
				match = &have[j];
		}
		if (match != NULL) {
			json_t *cur_eps = json_object_get(match->obj, "endpoints");
			json_t *refs = api_json_path(match->obj, "metadata.ownerReferences");
			match->used = true;
			if ((json_array_size(eps) == 0 ? json_array_size(cur_eps) == 0
						       : json_equal(cur_eps, eps)) &&
			    json_equal(api_json_path(match->obj, "metadata.labels"), labels) &&
			    json_array_size(refs) == 1 && json_equal(json_array_get(refs, 0), ref) &&
			    ctrl_str(match->obj, "addressType") != NULL &&
			    strcmp(ctrl_str(match->obj, "addressType"), "IPv4") == 0)
				continue; /* nothing changed */
			obj = json_deep_copy(match->obj);
			if (obj == NULL)
				goto oom;
		} else {
			snprintf(gen, sizeof(gen), "%s-", name);
			obj = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "discovery.k8s.io/v1",
					"kind", "EndpointSlice", "metadata", "generateName", gen,
					"namespace", ns);
			if (obj == NULL)
				goto oom;
		}
		json_object_set(json_object_get(obj, "metadata"), "labels", labels);
		json_object_set_new(json_object_get(obj, "metadata"), "ownerReferences",
				    json_pack("[O]", ref));
		if (b.trigger_ms != 0)
			ctrl__set_annotation(obj, TRIGGER_TIME, when);
		json_object_set_new(obj, "addressType", json_string("IPv4"));
		json_object_set(obj, "endpoints", eps);
		json_object_set(obj, "ports", ports);
		if (match != NULL) {
			rv = ctrl_update(c, p->slice_kind, obj, key);
			retry(c, key, rv, "update");
		} else {
			rv = ctrl_create(c, p->slice_kind, obj, key);
			retry(c, key, rv, "create");
		}
		json_decref(obj);
	}
	for (i = 0; i < n_have; i++) {
		if (have[i].used)
			continue;
		rv = ctrl_delete(c, p->slice_kind, ns, ctrl_str(have[i].obj, "metadata.name"),
				 have[i].rev, NULL, NULL, -1, key);
		retry(c, key, rv, "delete");
	}
	goto out;
oom:
	ctrl_log(c, LOG_LEVEL_ERROR, "out of memory syncing %s", key);
	ctrl_enqueue_after(c, key, RETRY_MS);
out:
	for (i = 0; i < n_have; i++)
		json_decref(have[i].obj);
	free(have);
	build_free(&b);
	json_decref(ref);
	json_decref(labels);
	json_decref(want);
	json_decref(svc);
}

const struct ctrl_ops ctrl_endpointslice_ops = {
	.name = "endpointslice",
	.start = start,
	.stop = stop,
	.on_event = on_event,
	.sync = sync,
};
