/* The DaemonSet controller: one pod per eligible node, with Kubernetes'
 * semantics (kube-controller-manager's daemon controller).
 *
 * Happy path: a DaemonSet event queues its key; sync() walks the nodes
 * (cached here with only what eligibility needs) beside the set's pods
 * (indexed here by owner uid), creates a pod bound to every eligible node
 * that has none, deletes pods on nodes that are gone or no longer
 * eligible, replaces pods of an old template (RollingUpdate) within
 * maxUnavailable (or maxSurge), then writes the status.
 *
 * Eligibility (nodeShouldRunDaemonPod): the template's nodeName,
 * nodeSelector and required node affinity must match the node, and every
 * NoSchedule/NoExecute taint must be tolerated by the template's
 * tolerations plus the ones Kubernetes adds to every daemon pod. Node
 * readiness plays no part. An untolerated NoSchedule taint stops new pods
 * but keeps a running one; an untolerated NoExecute taint removes it.
 *
 * Pods are created already bound (spec.nodeName), with the required node
 * affinity "metadata.name In [node]" Kubernetes sets, the labels
 * controller-revision-hash (a hash of the template) and
 * pod-template-generation, and a controller ownerReference.
 *
 * Failure modes: a synchronous write error retries the set after a
 * delay; a failed (CAS) write requeues it through the manager.
 * Not done: ControllerRevision objects (no such kind is served), adoption
 * of orphan pods, and the failed-pod back-off.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/tree.h>

#include "src/ctrl/ctrl.h"
#include "src/ctrl/podtemplate.h"
#include "src/lib/codec.h"
#include "src/lib/log.h"

#define DS_HASH_LABEL "controller-revision-hash"
#define DS_GEN_LABEL "pod-template-generation"
#define DS_RETRY_MS 5000

/* ------------------------------------------------------------ caches */

/* What eligibility needs of a node. */
struct node_ent {
	RB_ENTRY(node_ent) link;
	char *name;
	json_t *labels; /* owned; may be NULL */
	json_t *taints; /* owned; may be NULL */
};

/* A pod controlled by a DaemonSet. */
struct pod_ent {
	RB_ENTRY(pod_ent) by_key;
	RB_ENTRY(pod_ent) by_owner;
	char *key;
	char *name;
	char *uid;
	char *owner_uid;
	char *owner_key; /* the DaemonSet's store key */
	char *node;      /* "" when unbound */
	char *hash;      /* controller-revision-hash, "" when absent */
	uint64_t created_ms;
	uint64_t ready_ms; /* Ready's lastTransitionTime */
	bool ready, deleting, failed, terminal;
};

/* A DaemonSet key (node changes queue every set). */
struct ds_ent {
	RB_ENTRY(ds_ent) link;
	char *key;
};

static int node_cmp(const struct node_ent *a, const struct node_ent *b)
{
	return strcmp(a->name, b->name);
}

static int pod_key_cmp(const struct pod_ent *a, const struct pod_ent *b)
{
	return strcmp(a->key, b->key);
}

static int pod_owner_cmp(const struct pod_ent *a, const struct pod_ent *b)
{
	int r = strcmp(a->owner_uid, b->owner_uid);
	return r ? r : strcmp(a->key, b->key);
}

static int ds_cmp(const struct ds_ent *a, const struct ds_ent *b)
{
	return strcmp(a->key, b->key);
}

RB_HEAD(node_tree, node_ent);
RB_HEAD(pod_key_tree, pod_ent);
RB_HEAD(pod_owner_tree, pod_ent);
RB_HEAD(ds_tree, ds_ent);
/* RB_GENERATE_STATIC needs BSD's __unused, which libbsd leaves undefined. */
RB_GENERATE_INTERNAL(node_tree, node_ent, link, node_cmp, static __attribute__((unused)))
RB_GENERATE_INTERNAL(pod_key_tree, pod_ent, by_key, pod_key_cmp, static __attribute__((unused)))
RB_GENERATE_INTERNAL(pod_owner_tree, pod_ent, by_owner, pod_owner_cmp,
		     static __attribute__((unused)))
RB_GENERATE_INTERNAL(ds_tree, ds_ent, link, ds_cmp, static __attribute__((unused)))

struct ds_priv {
	const struct api_kind *ds_kind, *pod_kind, *node_kind;
	struct node_tree nodes;
	struct pod_key_tree pods;
	struct pod_owner_tree pods_by_owner;
	struct ds_tree sets;
	size_t n_nodes;
};

static void node_ent_free(struct node_ent *n)
{
	if (n) {
		free(n->name);
		json_decref(n->labels);
		json_decref(n->taints);
		free(n);
	}
}

static void pod_ent_free(struct pod_ent *p)
{
	if (p) {
		free(p->key);
		free(p->name);
		free(p->uid);
		free(p->owner_uid);
		free(p->owner_key);
		free(p->node);
		free(p->hash);
		free(p);
	}
}

/* ------------------------------------------------------------ helpers */

/* ------------------------------------------------------------ scheduling predicates */

static bool values_contain(const json_t *values, const char *v)
{
	size_t i;
	json_t *it;
	json_array_foreach(values, i, it)
	{
		if (json_is_string(it) && strcmp(json_string_value(it), v) == 0) {
			return true;
		}
	}
	return false;
}

/* One NodeSelectorRequirement against a value (label or field; NULL when
 * absent). */
static bool requirement_matches(const json_t *req, const char *value)
{
	const char *op = ctrl_str(req, "operator");
	const json_t *values = json_object_get(req, "values");
	if (!op) {
		return false;
	}
	if (strcmp(op, "In") == 0) {
		return value && values_contain(values, value);
	}
	if (strcmp(op, "NotIn") == 0) {
		return !value || !values_contain(values, value);
	}
	if (strcmp(op, "Exists") == 0) {
		return value != NULL;
	}
	if (strcmp(op, "DoesNotExist") == 0) {
		return value == NULL;
	}
	if (strcmp(op, "Gt") == 0 || strcmp(op, "Lt") == 0) {
		const char *bound = json_string_value(json_array_get(values, 0));
		char *end1, *end2;
		if (!value || !bound || json_array_size(values) != 1) {
			return false;
		}
		long long have = strtoll(value, &end1, 10);
		long long want = strtoll(bound, &end2, 10);
		if (*value == '\0' || *end1 || *bound == '\0' || *end2) {
			return false;
		}
		return op[0] == 'G' ? have > want : have < want;
	}
	return false;
}

/* A NodeSelectorTerm: the AND of its requirements; an empty term matches
 * nothing, as in Kubernetes. */
static bool term_matches(const json_t *term, const struct node_ent *n)
{
	const json_t *exprs = json_object_get(term, "matchExpressions");
	const json_t *fields = json_object_get(term, "matchFields");
	if (json_array_size(exprs) == 0 && json_array_size(fields) == 0) {
		return false;
	}
	size_t i;
	json_t *req;
	json_array_foreach(exprs, i, req)
	{
		const char *key = ctrl_str(req, "key");
		const char *v = key ? json_string_value(json_object_get(n->labels, key)) : NULL;
		if (!requirement_matches(req, v)) {
			return false;
		}
	}
	json_array_foreach(fields, i, req)
	{
		const char *key = ctrl_str(req, "key");
		if (!key || strcmp(key, "metadata.name") != 0 || !requirement_matches(req, n->name)) {
			return false;
		}
	}
	return true;
}

static bool node_affinity_matches(const json_t *spec, const struct node_ent *n)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)json_object_get(spec, "nodeSelector"), key, v)
	{
		const char *have = json_string_value(json_object_get(n->labels, key));
		if (!have || !json_is_string(v) || strcmp(have, json_string_value(v)) != 0) {
			return false;
		}
	}
	const json_t *req =
		api_json_path(spec, "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution");
	if (!req || json_is_null(req)) {
		return true;
	}
	size_t i;
	json_t *term;
	json_array_foreach(json_object_get(req, "nodeSelectorTerms"), i, term)
	{
		if (term_matches(term, n)) {
			return true;
		}
	}
	return false;
}

/* Kubernetes' ToleratesTaint. */
static bool toleration_matches(const json_t *tol, const json_t *taint)
{
	const char *teff = ctrl_str(tol, "effect");
	const char *eff = ctrl_str(taint, "effect");
	if (teff && *teff && (!eff || strcmp(teff, eff) != 0)) {
		return false;
	}
	const char *tkey = ctrl_str(tol, "key");
	const char *key = ctrl_str(taint, "key");
	const char *op = ctrl_str(tol, "operator");
	bool exists = op && strcmp(op, "Exists") == 0;
	if (!(tkey && *tkey) ? !exists : (!key || strcmp(tkey, key) != 0)) {
		return false;
	}
	if (exists) {
		return true;
	}
	if (op && *op && strcmp(op, "Equal") != 0) {
		return false;
	}
	const char *tval = ctrl_str(tol, "value");
	const char *val = ctrl_str(taint, "value");
	return strcmp(tval ? tval : "", val ? val : "") == 0;
}

static bool tolerated(const json_t *tolerations, const json_t *taint)
{
	size_t i;
	json_t *tol;
	json_array_foreach(tolerations, i, tol)
	{
		if (toleration_matches(tol, taint)) {
			return true;
		}
	}
	return false;
}

/* The tolerations Kubernetes adds to every daemon pod
 * (AddOrUpdateDaemonPodTolerations). */
static const struct {
	const char *key, *effect;
} default_tolerations[] = {
	{ "node.kubernetes.io/not-ready", "NoExecute" },
	{ "node.kubernetes.io/unreachable", "NoExecute" },
	{ "node.kubernetes.io/disk-pressure", "NoSchedule" },
	{ "node.kubernetes.io/memory-pressure", "NoSchedule" },
	{ "node.kubernetes.io/pid-pressure", "NoSchedule" },
	{ "node.kubernetes.io/unschedulable", "NoSchedule" },
	{ "node.kubernetes.io/network-unavailable", "NoSchedule" }, /* hostNetwork only */
};
#define N_DEFAULT_TOLERATIONS (sizeof(default_tolerations) / sizeof(default_tolerations[0]))

/* Adds the default tolerations to a pod spec's list (those not already
 * there). Returns 0 or -ENOMEM. */
static int add_default_tolerations(json_t *spec)
{
	json_t *tols = json_object_get(spec, "tolerations");
	if (!json_is_array(tols)) {
		tols = json_array();
		if (!tols || json_object_set_new(spec, "tolerations", tols) != 0) {
			return -ENOMEM;
		}
	}
	bool host_net = json_is_true(json_object_get(spec, "hostNetwork"));
	for (size_t i = 0; i < N_DEFAULT_TOLERATIONS; i++) {
		if (i == N_DEFAULT_TOLERATIONS - 1 && !host_net) {
			continue;
		}
		size_t j;
		json_t *t;
		bool have = false;
		json_array_foreach(tols, j, t)
		{
			const char *k = ctrl_str(t, "key"), *e = ctrl_str(t, "effect"),
				   *o = ctrl_str(t, "operator");
			if (k && e && o && strcmp(k, default_tolerations[i].key) == 0 &&
			    strcmp(e, default_tolerations[i].effect) == 0 && strcmp(o, "Exists") == 0) {
				have = true;
			}
		}
		if (!have && json_array_append_new(tols, json_pack("{s:s, s:s, s:s}", "key",
								   default_tolerations[i].key, "operator",
								   "Exists", "effect",
								   default_tolerations[i].effect)) != 0) {
			return -ENOMEM;
		}
	}
	return 0;
}

/* nodeShouldRunDaemonPod: @tol_spec is the template's spec with the
 * default tolerations added. */
static void node_should_run(const json_t *tol_spec, const struct node_ent *n, bool *ret_run,
			    bool *ret_continue)
{
	*ret_run = *ret_continue = false;
	const char *want = ctrl_str(tol_spec, "nodeName");
	if (want && *want && strcmp(want, n->name) != 0) {
		return;
	}
	if (!node_affinity_matches(tol_spec, n)) {
		return;
	}
	const json_t *tols = json_object_get(tol_spec, "tolerations");
	bool run = true, cont = true;
	size_t i;
	json_t *taint;
	json_array_foreach(n->taints, i, taint)
	{
		const char *eff = ctrl_str(taint, "effect");
		if (!eff || (strcmp(eff, "NoSchedule") != 0 && strcmp(eff, "NoExecute") != 0)) {
			continue;
		}
		if (tolerated(tols, taint)) {
			continue;
		}
		run = false;
		if (strcmp(eff, "NoExecute") == 0) {
			cont = false;
		}
	}
	*ret_run = run;
	*ret_continue = cont;
}

/* ------------------------------------------------------------ events */

static void enqueue_all_sets(struct ctrl *c, struct ds_priv *p)
{
	struct ds_ent *d;
	RB_FOREACH(d, ds_tree, &p->sets)
	{
		ctrl_enqueue(c, d->key);
	}
}

static bool same_json(const json_t *a, const json_t *b)
{
	return (!a && !b) || (a && b && json_equal(a, b));
}

static void on_node(struct ctrl *c, struct ds_priv *p, const struct ctrl_event *ev)
{
	struct node_ent probe = { .name = (char *)ev->name };
	struct node_ent *n = RB_FIND(node_tree, &p->nodes, &probe);
	if (ev->type == CTRL_DELETED) {
		if (n) {
			RB_REMOVE(node_tree, &p->nodes, n);
			node_ent_free(n);
			p->n_nodes--;
			enqueue_all_sets(c, p);
		}
		return;
	}
	json_t *node = ctrl_decode(ev->val, ev->val_len, 0);
	if (!node) {
		return;
	}
	json_t *labels = api_json_path(node, "metadata.labels");
	json_t *taints = api_json_path(node, "spec.taints");
	/* Heartbeats and status changes: nothing eligibility looks at. */
	if (n && same_json(n->labels, labels) && same_json(n->taints, taints)) {
		json_decref(node);
		return;
	}
	if (!n) {
		n = calloc(1, sizeof(*n));
		if (!n || !(n->name = strdup(ev->name))) {
			free(n);
			json_decref(node);
			ctrl_log(c, LOG_LEVEL_ERROR, "out of memory caching node %s", ev->name);
			return;
		}
		RB_INSERT(node_tree, &p->nodes, n);
		p->n_nodes++;
	}
	json_decref(n->labels);
	json_decref(n->taints);
	n->labels = json_incref(labels);
	n->taints = json_incref(taints);
	json_decref(node);
	enqueue_all_sets(c, p);
}

static void pod_forget(struct ds_priv *p, struct pod_ent *e)
{
	RB_REMOVE(pod_key_tree, &p->pods, e);
	RB_REMOVE(pod_owner_tree, &p->pods_by_owner, e);
	pod_ent_free(e);
}

static void on_pod(struct ctrl *c, struct ds_priv *p, const struct ctrl_event *ev)
{
	struct pod_ent probe = { .key = (char *)ev->key };
	struct pod_ent *e = RB_FIND(pod_key_tree, &p->pods, &probe);
	if (!e && ev->type != CTRL_DELETED) {
		/* Most pods belong to something else: look before decoding. */
		const void *refs;
		size_t len;
		if (codec_msgpack_get(ev->val, ev->val_len, "metadata.ownerReferences", &refs, &len) !=
			    0 ||
		    !memmem(refs, len, "DaemonSet", 9)) {
			return;
		}
	}
	if (e) {
		ctrl_enqueue(c, e->owner_key);
	}
	if (ev->type == CTRL_DELETED) {
		if (e) {
			pod_forget(p, e);
		}
		return;
	}
	json_t *pod = ctrl_decode(ev->val, ev->val_len, ev->mod_rev);
	const json_t *ref = pod ? ctrl__controller_ref_to(pod, "apps", "DaemonSet") : NULL;
	char owner_key[512];
	if (!ref || ctrl_key(p->ds_kind, ev->ns, ctrl_str(ref, "name"), owner_key,
			     sizeof(owner_key)) < 0) {
		if (e) {
			pod_forget(p, e);
		}
		json_decref(pod);
		return;
	}
	if (e) {
		pod_forget(p, e);
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		goto oom;
	}
	const char *phase = ctrl_str(pod, "status.phase");
	e->key = strdup(ev->key);
	e->name = strdup(ev->name);
	e->uid = ctrl__strdup0(ctrl_str(pod, "metadata.uid"));
	e->owner_uid = ctrl__strdup0(ctrl_str(ref, "uid"));
	e->owner_key = strdup(owner_key);
	e->node = ctrl__strdup0(ctrl_str(pod, "spec.nodeName"));
	e->hash = ctrl__strdup0(ctrl_str(pod, "metadata.labels." DS_HASH_LABEL));
	if (!e->key || !e->name || !e->uid || !e->owner_uid || !e->owner_key || !e->node ||
	    !e->hash) {
		pod_ent_free(e);
		goto oom;
	}
	e->created_ms = ctrl__time_at(pod, "metadata.creationTimestamp");
	e->ready = ctrl_pod_ready(pod);
	e->ready_ms = e->ready ? ctrl__condition_time(pod, "Ready", "lastTransitionTime") : 0;
	e->deleting = ctrl_str(pod, "metadata.deletionTimestamp") != NULL;
	e->failed = phase && strcmp(phase, "Failed") == 0;
	e->terminal = e->failed || (phase && strcmp(phase, "Succeeded") == 0);
	RB_INSERT(pod_key_tree, &p->pods, e);
	RB_INSERT(pod_owner_tree, &p->pods_by_owner, e);
	ctrl_enqueue(c, owner_key);
	json_decref(pod);
	return;
oom:
	ctrl_log(c, LOG_LEVEL_ERROR, "out of memory caching pod %s", ev->key);
	json_decref(pod);
}

static void on_set(struct ctrl *c, struct ds_priv *p, const struct ctrl_event *ev)
{
	struct ds_ent probe = { .key = (char *)ev->key };
	struct ds_ent *d = RB_FIND(ds_tree, &p->sets, &probe);
	if (ev->type == CTRL_DELETED) {
		if (d) {
			RB_REMOVE(ds_tree, &p->sets, d);
			free(d->key);
			free(d);
		}
		return;
	}
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d || !(d->key = strdup(ev->key))) {
			free(d);
			ctrl_log(c, LOG_LEVEL_ERROR, "out of memory caching %s", ev->key);
			return;
		}
		RB_INSERT(ds_tree, &p->sets, d);
	}
	ctrl_enqueue(c, ev->key);
}

static void ds_on_event(struct ctrl *c, const struct ctrl_event *ev)
{
	struct ds_priv *p = ctrl_priv(c);
	if (ev->kind == p->pod_kind) {
		on_pod(c, p, ev);
	} else if (ev->kind == p->node_kind) {
		on_node(c, p, ev);
	} else if (ev->kind == p->ds_kind) {
		on_set(c, p, ev);
	}
}

/* ------------------------------------------------------------ sync */

struct sync_state {
	struct ctrl *c;
	struct ds_priv *p;
	json_t *ds;
	const char *key, *ns, *name;
	const char *hash;
	json_t *tol_spec; /* template spec + default tolerations */
	uint64_t now;
	int64_t min_ready_ms;
	uint64_t recheck_ms; /* earliest pending availability, 0: none */
	unsigned writes;
	bool retry;
};

static bool pod_available(struct sync_state *st, const struct pod_ent *e)
{
	return e->ready && !e->deleting &&
	       ctrl__available_at(e->ready_ms, st->min_ready_ms, st->now, &st->recheck_ms);
}

static void write_failed(struct sync_state *st, int rv, const char *what)
{
	if (rv != -ESHUTDOWN) {
		ctrl_log(st->c, LOG_LEVEL_WARN, "%s for %s: %s", what, st->key, strerror(-rv));
		st->retry = true;
	}
}

static void delete_pod(struct sync_state *st, const struct pod_ent *e)
{
	int rv = ctrl_delete(st->c, st->p->pod_kind, st->ns, e->name, 0, e->uid, NULL, -1, st->key);
	if (rv != 0) {
		write_failed(st, rv, "delete pod");
		return;
	}
	st->writes++;
	ctrl_event(st->c, st->ds, "Normal", "SuccessfulDelete", "Deleted pod: %s", e->name);
}

/* A pod for @node: the template, bound, with the node-name affinity
 * Kubernetes' ReplaceDaemonSetPodNodeNameNodeAffinity gives it. */
static json_t *new_pod(struct sync_state *st, const char *node)
{
	static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
	const json_t *tmpl = api_json_path(st->ds, "spec.template");
	json_t *pod = json_object();
	json_t *meta = json_deep_copy(json_object_get(tmpl, "metadata"));
	json_t *spec = json_deep_copy(st->tol_spec);
	json_t *ref = ctrl_owner_ref(st->p->ds_kind, st->ds);
	if (!meta) {
		meta = json_object();
	}
	if (!pod || !meta || !spec || !ref) {
		goto oom;
	}
	char name[300];
	uint64_t r = ctrl_random(st->c);
	size_t base = strlen(st->name);
	if (base > 57) {
		base = 57; /* Kubernetes' generateName trims to keep 63 */
	}
	snprintf(name, sizeof(name), "%.*s-", (int)base, st->name);
	size_t len = strlen(name);
	for (int i = 0; i < 5; i++) {
		name[len++] = alphabet[r % (sizeof(alphabet) - 1)];
		r /= sizeof(alphabet) - 1;
	}
	name[len] = '\0';

	json_t *labels = json_object_get(meta, "labels");
	if (!json_is_object(labels)) {
		labels = json_object();
		if (!labels || json_object_set_new(meta, "labels", labels) != 0) {
			goto oom;
		}
	}
	char gen[32];
	snprintf(gen, sizeof(gen), "%lld", (long long)ctrl_int(st->ds, "metadata.generation", 1));
	json_t *refs = json_array();
	json_t *req = json_pack("{s:[{s:[{s:s, s:s, s:[s]}]}]}", "nodeSelectorTerms", "matchFields",
				"key", "metadata.name", "operator", "In", "values", node);
	if (!refs || json_array_append_new(refs, ref) != 0) {
		ref = NULL;
		json_decref(refs);
		json_decref(req);
		goto oom;
	}
	ref = NULL;
	if (!req || json_object_set_new(meta, "ownerReferences", refs) != 0 ||
	    json_object_set_new(meta, "name", json_string(name)) != 0 ||
	    json_object_set_new(meta, "namespace", json_string(st->ns)) != 0 ||
	    json_object_set_new(labels, DS_HASH_LABEL, json_string(st->hash)) != 0 ||
	    json_object_set_new(labels, DS_GEN_LABEL, json_string(gen)) != 0 ||
	    json_object_set_new(spec, "nodeName", json_string(node)) != 0) {
		json_decref(req);
		goto oom;
	}
	json_object_del(meta, "generateName");
	json_t *affinity = json_object_get(spec, "affinity");
	if (!json_is_object(affinity)) {
		affinity = json_object();
		if (!affinity || json_object_set_new(spec, "affinity", affinity) != 0) {
			json_decref(req);
			goto oom;
		}
	}
	json_t *na = json_object_get(affinity, "nodeAffinity");
	if (!json_is_object(na)) {
		na = json_object();
		if (!na || json_object_set_new(affinity, "nodeAffinity", na) != 0) {
			json_decref(req);
			goto oom;
		}
	}
	/* Replaces the whole required selector, as Kubernetes does: the set's
	 * own terms were already checked against this node. */
	if (json_object_set_new(na, "requiredDuringSchedulingIgnoredDuringExecution", req) != 0 ||
	    json_object_set_new(pod, "apiVersion", json_string("v1")) != 0 ||
	    json_object_set_new(pod, "kind", json_string("Pod")) != 0 ||
	    json_object_set_new(pod, "metadata", meta) != 0) {
		meta = NULL;
		goto oom;
	}
	meta = NULL;
	if (json_object_set_new(pod, "spec", spec) != 0) {
		spec = NULL;
		goto oom;
	}
	return pod;
oom:
	json_decref(pod);
	json_decref(meta);
	json_decref(spec);
	json_decref(ref);
	return NULL;
}

static void create_pod(struct sync_state *st, const char *node)
{
	json_t *pod = new_pod(st, node);
	if (!pod) {
		write_failed(st, -ENOMEM, "create pod");
		return;
	}
	int rv = ctrl_create(st->c, st->p->pod_kind, pod, st->key);
	if (rv != 0) {
		write_failed(st, rv, "create pod");
		if (rv == -EINVAL) {
			ctrl_event(st->c, st->ds, "Warning", "FailedCreate",
				   "Error creating: invalid pod for node %s", node);
		}
	} else {
		st->writes++;
		ctrl_event(st->c, st->ds, "Normal", "SuccessfulCreate", "Created pod: %s",
			   ctrl_str(pod, "metadata.name"));
	}
	json_decref(pod);
}

/* intstr scaled against @total (percentages round up, as DaemonSets do). */
static int64_t scaled(const json_t *v, int64_t total, int64_t dflt)
{
	if (json_is_integer(v)) {
		return json_integer_value(v);
	}
	const char *s = json_string_value(v);
	if (!s) {
		return dflt;
	}
	char *end;
	long long pct = strtoll(s, &end, 10);
	if (end == s || strcmp(end, "%") != 0) {
		return dflt;
	}
	return (pct * total + 99) / 100;
}

/* Per node: what should run there and the set's pods on it. */
struct node_view {
	const struct node_ent *node; /* NULL: node gone */
	const char *name;
	bool run, cont;
	struct pod_ent **pods; /* live (not deleting, not terminal), oldest first */
	size_t n_pods;
	size_t n_all; /* including deleting ones */
};

static int pod_sort_cmp(const void *a, const void *b)
{
	const struct pod_ent *x = *(const struct pod_ent *const *)a;
	const struct pod_ent *y = *(const struct pod_ent *const *)b;
	int r = strcmp(x->node, y->node);
	if (r) {
		return r;
	}
	if (x->created_ms != y->created_ms) {
		return x->created_ms < y->created_ms ? -1 : 1;
	}
	return strcmp(x->name, y->name);
}

static bool pod_updated(const struct sync_state *st, const struct pod_ent *e)
{
	return strcmp(e->hash, st->hash) == 0;
}

static void write_status(struct sync_state *st, struct node_view *views, size_t n_views)
{
	int64_t desired = 0, current = 0, ready = 0, available = 0, mis = 0, updated = 0;
	for (size_t i = 0; i < n_views; i++) {
		struct node_view *v = &views[i];
		if (v->node && v->run) {
			desired++;
			if (v->n_pods == 0) {
				continue;
			}
			current++;
			struct pod_ent *e = v->pods[0];
			if (e->ready) {
				ready++;
				if (pod_available(st, e)) {
					available++;
				}
			}
			if (pod_updated(st, e)) {
				updated++;
			}
		} else if (v->n_pods > 0) {
			mis++;
		}
	}
	struct {
		const char *field;
		int64_t value;
	} want[] = {
		{ "desiredNumberScheduled", desired },
		{ "currentNumberScheduled", current },
		{ "numberReady", ready },
		{ "numberAvailable", available },
		{ "numberUnavailable", desired - available },
		{ "numberMisscheduled", mis },
		{ "updatedNumberScheduled", updated },
		{ "observedGeneration", ctrl_int(st->ds, "metadata.generation", 0) },
	};
	json_t *status = json_object_get(st->ds, "status");
	if (!json_is_object(status)) {
		status = json_object();
		if (!status || json_object_set_new(st->ds, "status", status) != 0) {
			write_failed(st, -ENOMEM, "status");
			return;
		}
	}
	bool changed = false;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		json_t *have = json_object_get(status, want[i].field);
		/* Kubernetes omits zero counts (omitempty) except the four
		 * required ones; keep what is there when equal. */
		if (json_is_integer(have) && json_integer_value(have) == want[i].value) {
			continue;
		}
		if (!have && want[i].value == 0 && i >= 3 && i != 5) {
			continue;
		}
		json_object_set_new(status, want[i].field, json_integer(want[i].value));
		changed = true;
	}
	if (!changed) {
		return;
	}
	int rv = ctrl_update(st->c, st->p->ds_kind, st->ds, st->key);
	if (rv != 0) {
		write_failed(st, rv, "update status");
	}
}

/* The daemon pods to keep on a node; deletes the others (duplicates,
 * failed ones). In surge mode a node may keep one old and one new pod. */
static void manage_node(struct sync_state *st, struct node_view *v, bool surge)
{
	if (!v->node || !v->cont) {
		for (size_t i = 0; i < v->n_pods; i++) {
			delete_pod(st, v->pods[i]);
		}
		v->n_pods = 0;
		return;
	}
	if (v->n_all == 0) {
		if (v->run) {
			create_pod(st, v->name);
		}
		return;
	}
	size_t keep = 0;
	bool kept_new = false, kept_old = false;
	for (size_t i = 0; i < v->n_pods; i++) {
		struct pod_ent *e = v->pods[i];
		bool upd = pod_updated(st, e);
		bool ok = keep == 0 || (surge && (upd ? !kept_new : !kept_old));
		if (ok) {
			v->pods[keep++] = e;
			if (upd) {
				kept_new = true;
			} else {
				kept_old = true;
			}
		} else {
			delete_pod(st, e);
		}
	}
	v->n_pods = keep;
}

/* RollingUpdate: replace pods of an old template. */
static void rolling_update(struct sync_state *st, struct node_view *views, size_t n_views)
{
	const json_t *ru = api_json_path(st->ds, "spec.updateStrategy.rollingUpdate");
	int64_t desired = 0;
	for (size_t i = 0; i < n_views; i++) {
		if (views[i].node && views[i].run) {
			desired++;
		}
	}
	int64_t max_unavail = scaled(json_object_get(ru, "maxUnavailable"), desired, 1);
	int64_t max_surge = scaled(json_object_get(ru, "maxSurge"), desired, 0);
	if (max_unavail <= 0 && max_surge <= 0) {
		max_unavail = 1;
	}
	if (max_surge > 0 && max_unavail <= 0) {
		/* Surge: start the new pod beside the old one, remove the old
		 * one once the new one is available. */
		int64_t surging = 0;
		for (size_t i = 0; i < n_views; i++) {
			struct node_view *v = &views[i];
			if (v->n_pods == 2) {
				surging++;
			}
		}
		for (size_t i = 0; i < n_views; i++) {
			struct node_view *v = &views[i];
			if (!v->node || !v->run || v->n_pods == 0) {
				continue;
			}
			struct pod_ent *old = NULL, *cur = NULL;
			for (size_t j = 0; j < v->n_pods; j++) {
				if (pod_updated(st, v->pods[j])) {
					cur = v->pods[j];
				} else {
					old = v->pods[j];
				}
			}
			if (!old) {
				continue;
			}
			if (cur) {
				if (pod_available(st, cur)) {
					delete_pod(st, old);
				}
			} else if (!pod_available(st, old)) {
				delete_pod(st, old);
			} else if (surging < max_surge && v->n_all == v->n_pods) {
				create_pod(st, v->name);
				surging++;
			}
		}
		return;
	}
	int64_t unavailable = 0;
	for (size_t i = 0; i < n_views; i++) {
		struct node_view *v = &views[i];
		if (!v->node || !v->run) {
			continue;
		}
		if (v->n_pods == 0 || !pod_available(st, v->pods[0])) {
			unavailable++;
		}
	}
	for (size_t i = 0; i < n_views; i++) {
		struct node_view *v = &views[i];
		if (!v->node || !v->run || v->n_pods == 0 || pod_updated(st, v->pods[0])) {
			continue;
		}
		if (!pod_available(st, v->pods[0])) {
			/* Already down: replacing it costs nothing. */
			delete_pod(st, v->pods[0]);
		} else if (unavailable < max_unavail) {
			delete_pod(st, v->pods[0]);
			unavailable++;
		}
	}
}

static void ds_sync_set(struct sync_state *st)
{
	struct ds_priv *p = st->p;
	const char *uid = ctrl_str(st->ds, "metadata.uid");
	const json_t *tmpl = api_json_path(st->ds, "spec.template");
	char hash[16];
	struct pod_ent **pods = NULL;
	struct node_view *views = NULL;
	size_t n_pods = 0, cap = 0, n_views = 0;

	if (!uid || !json_is_object(tmpl)) {
		return;
	}
	if (ctrl__pod_template_hash(tmpl, -1, hash, sizeof(hash)) != 0) {
		goto oom;
	}
	st->hash = hash;
	st->tol_spec = json_deep_copy(json_object_get(tmpl, "spec"));
	if (!st->tol_spec || add_default_tolerations(st->tol_spec) != 0) {
		goto oom;
	}

	/* The set's pods, grouped by node (oldest first on each). */
	struct pod_ent probe = { .owner_uid = (char *)uid, .key = "" };
	for (struct pod_ent *e = RB_NFIND(pod_owner_tree, &p->pods_by_owner, &probe);
	     e && strcmp(e->owner_uid, uid) == 0; e = RB_NEXT(pod_owner_tree, &p->pods_by_owner, e)) {
		if (n_pods == cap) {
			cap = cap ? 2 * cap : 64;
			struct pod_ent **np = realloc(pods, cap * sizeof(*np));
			if (!np) {
				goto oom;
			}
			pods = np;
		}
		pods[n_pods++] = e;
	}
	if (n_pods > 1) {
		qsort(pods, n_pods, sizeof(*pods), pod_sort_cmp);
	}

	/* Merge the sorted nodes with the sorted pods. */
	views = calloc(p->n_nodes + n_pods + 1, sizeof(*views));
	if (!views) {
		goto oom;
	}
	struct pod_ent **live = malloc((n_pods + 1) * sizeof(*live));
	if (!live) {
		goto oom;
	}
	size_t pi = 0, n_live = 0;
	struct node_ent *n = RB_MIN(node_tree, &p->nodes);
	while (n || pi < n_pods) {
		struct node_view *v = &views[n_views++];
		int cmp = !n ? 1 : pi == n_pods ? -1 : strcmp(n->name, pods[pi]->node);
		if (cmp <= 0) {
			v->node = n;
			v->name = n->name;
			node_should_run(st->tol_spec, n, &v->run, &v->cont);
			n = RB_NEXT(node_tree, &p->nodes, n);
		} else {
			v->name = pods[pi]->node;
		}
		v->pods = &live[n_live];
		while (pi < n_pods && strcmp(pods[pi]->node, v->name) == 0) {
			struct pod_ent *e = pods[pi++];
			v->n_all++;
			if (e->deleting) {
				continue;
			}
			if (e->terminal) {
				/* A failed daemon pod is deleted and replaced. */
				if (e->failed && v->node && v->cont) {
					ctrl_event(st->c, st->ds, "Warning", "FailedDaemonPod",
						   "Found failed daemon pod %s/%s on node %s, will try to kill it",
						   st->ns, e->name, v->name);
				}
				delete_pod(st, e);
				continue;
			}
			live[n_live++] = e;
			v->n_pods++;
		}
	}

	bool surge = false;
	const char *strategy = ctrl_str(st->ds, "spec.updateStrategy.type");
	bool rolling = !strategy || strcmp(strategy, "RollingUpdate") == 0;
	if (rolling) {
		const json_t *ru = api_json_path(st->ds, "spec.updateStrategy.rollingUpdate");
		surge = scaled(json_object_get(ru, "maxSurge"), 1, 0) > 0 &&
			scaled(json_object_get(ru, "maxUnavailable"), 1, 1) <= 0;
	}
	for (size_t i = 0; i < n_views; i++) {
		manage_node(st, &views[i], surge);
	}
	/* Replacing waits until the creations and deletions above are seen:
	 * their completion requeues this set. */
	if (st->writes == 0 && rolling) {
		rolling_update(st, views, n_views);
	}
	if (st->writes == 0) {
		write_status(st, views, n_views);
	}
	free(live);
	free(views);
	free(pods);
	return;
oom:
	free(views);
	free(pods);
	write_failed(st, -ENOMEM, "sync");
}

static void ds_sync(struct ctrl *c, const char *key)
{
	struct ds_priv *p = ctrl_priv(c);
	char ns[256], name[256];
	json_t *ds = ctrl__get_live(c, p->ds_kind, key, ns, name, sizeof(ns));
	if (!ds) {
		return;
	}
	struct sync_state st = {
		.c = c,
		.p = p,
		.ds = ds,
		.key = key,
		.ns = ns,
		.name = name,
		.now = ctrl_now_ms(c),
		.min_ready_ms = ctrl_int(ds, "spec.minReadySeconds", 0) * 1000,
	};
	ds_sync_set(&st);
	ctrl__requeue(c, key, st.retry, DS_RETRY_MS, st.recheck_ms);
	json_decref(st.tol_spec);
	json_decref(ds);
}

/* ------------------------------------------------------------ lifecycle */

static int ds_start(struct ctrl *c)
{
	struct ds_priv *p = calloc(1, sizeof(*p));
	if (!p) {
		return -ENOMEM;
	}
	p->ds_kind = api_kind_by_resource("apps", "v1", "daemonsets");
	p->pod_kind = api_kind_by_resource("", "v1", "pods");
	p->node_kind = api_kind_by_resource("", "v1", "nodes");
	if (!p->ds_kind || !p->pod_kind || !p->node_kind) {
		free(p);
		return -ENOENT;
	}
	RB_INIT(&p->nodes);
	RB_INIT(&p->pods);
	RB_INIT(&p->pods_by_owner);
	RB_INIT(&p->sets);
	ctrl_set_priv(c, p);
	return 0;
}

static void ds_stop(struct ctrl *c)
{
	struct ds_priv *p = ctrl_priv(c);
	if (!p) {
		return;
	}
	struct node_ent *n, *nn;
	RB_FOREACH_SAFE(n, node_tree, &p->nodes, nn)
	{
		RB_REMOVE(node_tree, &p->nodes, n);
		node_ent_free(n);
	}
	struct pod_ent *e, *en;
	RB_FOREACH_SAFE(e, pod_key_tree, &p->pods, en)
	{
		pod_forget(p, e);
	}
	struct ds_ent *d, *dn;
	RB_FOREACH_SAFE(d, ds_tree, &p->sets, dn)
	{
		RB_REMOVE(ds_tree, &p->sets, d);
		free(d->key);
		free(d);
	}
	free(p);
	ctrl_set_priv(c, NULL);
}

const struct ctrl_ops ctrl_daemonset_ops = {
	.name = "daemonset",
	.start = ds_start,
	.stop = ds_stop,
	.on_event = ds_on_event,
	.sync = ds_sync,
};
