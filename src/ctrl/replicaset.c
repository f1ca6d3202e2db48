/* The ReplicaSet controller: keeps spec.replicas active pods that match
 * the selector, adopting orphans and releasing pods that stopped matching,
 * and reports replicas / fullyLabeledReplicas / readyReplicas /
 * availableReplicas / observedGeneration (Kubernetes'
 * pkg/controller/replicaset semantics).
 *
 * State: a summary of every pod (labels, owner, readiness, placement)
 * kept from the events and indexed by controller uid, so a sync touches
 * only its own pods and the orphans of its namespace, never the store at
 * large. A sync does one step: claims (adopt/release) first, and only when
 * none was needed, creates or deletes; its writes requeue the key, and the
 * manager runs it again once they completed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/tree.h>
#include <sys/queue.h>

#include "src/api/selector.h"
#include "src/ctrl/ctrl.h"
#include "src/ctrl/podtemplate.h"
#include "src/lib/log.h"

/* Kubernetes' burstReplicas: at most this many creates or deletes per
 * sync. */
#define BURST 500
/* Retry delay after a write that could not even be proposed. */
#define RETRY_MS 5000

struct owner;

/* What the controller needs of a pod, from its last event. */
struct pod {
	RB_ENTRY(pod) by_key;
	TAILQ_ENTRY(pod) in_owner;
	struct owner *owner;
	char *key;
	char *ns;
	const char *name; /* points into key */
	char *uid;
	char *ref_name; /* controller ReplicaSet name, or NULL */
	json_t *labels; /* reference, may be NULL */
	uint64_t mod_rev;
	uint64_t created_ms, ready_ms;
	int64_t restarts;
	int phase_rank; /* Pending 0, Unknown 1, Running 2 */
	bool scheduled, ready, active, deleting;
};

TAILQ_HEAD(pod_list, pod);

/* The pods of one controller uid, or the orphans of a namespace
 * ("orphan/<ns>"). */
struct owner {
	RB_ENTRY(owner) by_id;
	struct pod_list pods;
	size_t n;
	char id[];
};

/* What the controller needs of a ReplicaSet to route orphan pod events. */
struct rset {
	RB_ENTRY(rset) by_key;
	struct api_selector *sel;
	bool deleting;
	char key[];
};

static int pod_cmp(const struct pod *a, const struct pod *b)
{
	return strcmp(a->key, b->key);
}

static int owner_cmp(const struct owner *a, const struct owner *b)
{
	return strcmp(a->id, b->id);
}

static int rset_cmp(const struct rset *a, const struct rset *b)
{
	return strcmp(a->key, b->key);
}

RB_HEAD(pod_tree, pod);
RB_HEAD(owner_tree, owner);
RB_HEAD(rset_tree, rset);
/* RB_GENERATE_STATIC needs BSD's __unused, which libbsd leaves undefined. */
RB_GENERATE_INTERNAL(pod_tree, pod, by_key, pod_cmp, static __attribute__((unused)))
RB_GENERATE_INTERNAL(owner_tree, owner, by_id, owner_cmp, static __attribute__((unused)))
RB_GENERATE_INTERNAL(rset_tree, rset, by_key, rset_cmp, static __attribute__((unused)))

struct priv {
	struct pod_tree pods;
	struct owner_tree owners;
	struct rset_tree sets;
	const struct api_kind *pod_kind, *rs_kind;
};

/* ------------------------------------------------------------ index */

static struct owner *owner_find(struct priv *p, const char *id)
{
	size_t len = strlen(id);
	struct owner *key = malloc(sizeof(*key) + len + 1), *o;

	/* A lookup key on the heap: the id is a flexible member. */
	if (key == NULL)
		return NULL;
	memcpy(key->id, id, len + 1);
	o = RB_FIND(owner_tree, &p->owners, key);
	free(key);
	return o;
}

static struct owner *owner_get(struct priv *p, const char *id)
{
	struct owner *o = owner_find(p, id);
	size_t len = strlen(id);

	if (o != NULL)
		return o;
	o = calloc(1, sizeof(*o) + len + 1);
	if (o == NULL)
		return NULL;
	memcpy(o->id, id, len + 1);
	TAILQ_INIT(&o->pods);
	RB_INSERT(owner_tree, &p->owners, o);
	return o;
}

static void pod_unlink(struct priv *p, struct pod *pod)
{
	struct owner *o = pod->owner;

	if (o == NULL)
		return;
	TAILQ_REMOVE(&o->pods, pod, in_owner);
	pod->owner = NULL;
	if (--o->n == 0) {
		RB_REMOVE(owner_tree, &p->owners, o);
		free(o);
	}
}

static void pod_free(struct pod *pod)
{
	if (pod == NULL)
		return;
	free(pod->key);
	free(pod->ns);
	free(pod->uid);
	free(pod->ref_name);
	json_decref(pod->labels);
	free(pod);
}

static struct pod *pod_find(struct priv *p, const char *key)
{
	struct pod k;

	k.key = (char *)key;
	return RB_FIND(pod_tree, &p->pods, &k);
}

static int64_t restart_count(const json_t *pod)
{
	json_t *cs = json_object_get(json_object_get(pod, "status"), "containerStatuses"), *s;
	int64_t n = 0;
	size_t i;

	json_array_foreach(cs, i, s)
	{
		n += json_integer_value(json_object_get(s, "restartCount"));
	}
	return n;
}

/* Refreshes @pod's summary from @obj and files it under its owner.
 * Returns 0 or -ENOMEM. */
static int pod_fill(struct priv *p, struct pod *pod, const json_t *obj, uint64_t mod_rev)
{
	const json_t *ref = ctrl_controller_ref(obj);
	const char *phase = ctrl_str(obj, "status.phase");
	const char *uid = ctrl_str(obj, "metadata.uid");
	const char *node = ctrl_str(obj, "spec.nodeName");
	char id[300];
	struct owner *o;

	free(pod->uid);
	free(pod->ref_name);
	json_decref(pod->labels);
	pod->uid = strdup(uid != NULL ? uid : "");
	pod->ref_name = NULL;
	pod->labels = json_incref(json_object_get(json_object_get(obj, "metadata"), "labels"));
	pod->mod_rev = mod_rev;
	pod->created_ms = ctrl__time_at(obj, "metadata.creationTimestamp");
	pod->ready = ctrl_pod_ready(obj);
	pod->ready_ms = pod->ready ? ctrl__condition_time(obj, "Ready", "lastTransitionTime") : 0;
	pod->restarts = restart_count(obj);
	pod->phase_rank = phase == NULL || strcmp(phase, "Pending") == 0 ? 0
			  : strcmp(phase, "Running") == 0		  ? 2
									  : 1;
	pod->scheduled = node != NULL && node[0] != '\0';
	pod->active = ctrl_pod_active(obj);
	pod->deleting = json_object_get(json_object_get(obj, "metadata"), "deletionTimestamp") !=
			NULL;
	if (ref != NULL) {
		const char *rk = json_string_value(json_object_get(ref, "kind"));
		const char *ruid = json_string_value(json_object_get(ref, "uid"));
		const char *rname = json_string_value(json_object_get(ref, "name"));
		if (rk != NULL && strcmp(rk, "ReplicaSet") == 0 && rname != NULL)
			pod->ref_name = strdup(rname);
		snprintf(id, sizeof(id), "%s", ruid != NULL ? ruid : "?");
	} else {
		snprintf(id, sizeof(id), "orphan/%s", pod->ns);
	}
	if (pod->uid == NULL)
		return -ENOMEM;
	pod_unlink(p, pod);
	o = owner_get(p, id);
	if (o == NULL)
		return -ENOMEM;
	TAILQ_INSERT_TAIL(&o->pods, pod, in_owner);
	o->n++;
	pod->owner = o;
	return 0;
}

static void enqueue_rs(struct ctrl *c, struct priv *p, const char *ns, const char *name)
{
	char key[512];

	if (ctrl_key(p->rs_kind, ns, name, key, sizeof(key)) > 0)
		ctrl_enqueue(c, key);
}

/* Queues every ReplicaSet of @ns whose selector matches @labels: the
 * candidates to adopt an orphan. */
static void enqueue_matching(struct ctrl *c, struct priv *p, const char *ns,
			     const json_t *labels)
{
	char prefix[300];
	size_t len;
	struct rset *r, *k;
	int n = ctrl_key(p->rs_kind, ns, "", prefix, sizeof(prefix));

	if (n <= 0)
		return;
	len = (size_t)n;
	k = malloc(sizeof(*k) + len + 1);
	if (k == NULL)
		return;
	memcpy(k->key, prefix, len + 1);
	for (r = RB_NFIND(rset_tree, &p->sets, k); r != NULL; r = RB_NEXT(rset_tree, &p->sets, r)) {
		if (strncmp(r->key, prefix, len) != 0)
			break;
		if (!r->deleting && r->sel != NULL && api_selector_match_json(r->sel, labels))
			ctrl_enqueue(c, r->key);
	}
	free(k);
}

static void on_pod(struct ctrl *c, struct priv *p, const struct ctrl_event *ev)
{
	struct pod *pod = pod_find(p, ev->key);
	char *old_ref = NULL;
	json_t *obj;

	if (ev->type == CTRL_DELETED) {
		if (pod == NULL)
			return;
		if (pod->ref_name != NULL)
			enqueue_rs(c, p, pod->ns, pod->ref_name);
		RB_REMOVE(pod_tree, &p->pods, pod);
		pod_unlink(p, pod);
		pod_free(pod);
		return;
	}
	obj = ctrl_decode(ev->val, ev->val_len, ev->mod_rev);
	if (obj == NULL)
		return;
	if (pod == NULL) {
		size_t nslen = strlen(ev->ns);
		pod = calloc(1, sizeof(*pod));
		if (pod == NULL || (pod->key = strdup(ev->key)) == NULL) {
			free(pod);
			goto out;
		}
		/* The name points into the key: ".../<ns>/<name>". */
		pod->name = pod->key + strlen(pod->key) - strlen(ev->name);
		pod->ns = strndup(pod->name - 1 - nslen, nslen);
		RB_INSERT(pod_tree, &p->pods, pod);
	} else {
		old_ref = pod->ref_name;
		pod->ref_name = NULL;
	}
	if (pod->ns == NULL || pod_fill(p, pod, obj, ev->mod_rev) != 0) {
		ctrl_log(c, LOG_LEVEL_ERROR, "out of memory indexing %s", ev->key);
		goto out;
	}
	if (old_ref != NULL && (pod->ref_name == NULL || strcmp(old_ref, pod->ref_name) != 0))
		enqueue_rs(c, p, pod->ns, old_ref);
	if (pod->ref_name != NULL)
		enqueue_rs(c, p, pod->ns, pod->ref_name);
	else if (ctrl_controller_ref(obj) == NULL && !pod->deleting)
		enqueue_matching(c, p, pod->ns, pod->labels);
out:
	free(old_ref);
	json_decref(obj);
}

static void on_rs(struct ctrl *c, struct priv *p, const struct ctrl_event *ev)
{
	size_t len = strlen(ev->key);
	struct rset *k = malloc(sizeof(*k) + len + 1), *r;
	json_t *obj;

	if (k == NULL)
		return;
	memcpy(k->key, ev->key, len + 1);
	r = RB_FIND(rset_tree, &p->sets, k);
	if (r != NULL) {
		RB_REMOVE(rset_tree, &p->sets, r);
		api_selector_free(r->sel);
		free(r);
	}
	ctrl_enqueue(c, ev->key);
	if (ev->type == CTRL_DELETED) {
		free(k);
		return;
	}
	k->sel = NULL;
	k->deleting = false;
	obj = ctrl_decode(ev->val, ev->val_len, 0);
	if (obj != NULL) {
		json_t *spec_sel = api_json_path(obj, "spec.selector");
		if (spec_sel != NULL && api_selector_from_json(spec_sel, &k->sel, NULL, 0) != 0)
			k->sel = NULL;
		k->deleting = api_json_path(obj, "metadata.deletionTimestamp") != NULL;
		json_decref(obj);
	}
	RB_INSERT(rset_tree, &p->sets, k);
}

/* ------------------------------------------------------------ lifecycle */

static int rs_start(struct ctrl *c)
{
	struct priv *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return -ENOMEM;
	RB_INIT(&p->pods);
	RB_INIT(&p->owners);
	RB_INIT(&p->sets);
	p->pod_kind = api_kind_by_resource("", "v1", "pods");
	p->rs_kind = api_kind_by_resource("apps", "v1", "replicasets");
	if (p->pod_kind == NULL || p->rs_kind == NULL) {
		free(p);
		return -ENOENT;
	}
	ctrl_set_priv(c, p);
	return 0;
}

static void rs_stop(struct ctrl *c)
{
	struct priv *p = ctrl_priv(c);
	struct pod *pod, *pn;
	struct rset *r, *rn;

	if (p == NULL)
		return;
	RB_FOREACH_SAFE(pod, pod_tree, &p->pods, pn)
	{
		RB_REMOVE(pod_tree, &p->pods, pod);
		pod_unlink(p, pod);
		pod_free(pod);
	}
	RB_FOREACH_SAFE(r, rset_tree, &p->sets, rn)
	{
		RB_REMOVE(rset_tree, &p->sets, r);
		api_selector_free(r->sel);
		free(r);
	}
	free(p);
	ctrl_set_priv(c, NULL);
}

static void rs_on_event(struct ctrl *c, const struct ctrl_event *ev)
{
	struct priv *p = ctrl_priv(c);

	if (p == NULL || ev->ns == NULL)
		return;
	if (ev->kind == p->pod_kind)
		on_pod(c, p, ev);
	else if (ev->kind == p->rs_kind)
		on_rs(c, p, ev);
}

/* ------------------------------------------------------------ sync */

/* Adopts (@rs becomes the controller) or releases (its reference
 * removed) the pod @pod. Returns 0 when a write was proposed. */
static int claim(struct ctrl *c, struct priv *p, const json_t *rs, const struct pod *pod,
		 bool adopt, const char *key)
{
	json_t *obj = ctrl_get(c, p->pod_kind, pod->ns, pod->name, NULL);
	int rv;

	if (obj == NULL)
		return -ENOENT;
	rv = ctrl__claim_ref(obj, adopt, adopt ? ctrl_owner_ref(p->rs_kind, rs) : NULL,
			     ctrl_str(rs, "metadata.uid"));
	if (rv > 0)
		rv = ctrl_update(c, p->pod_kind, obj, key);
	else if (rv == 0)
		rv = -ENOENT;
	json_decref(obj);
	return rv;
}

/* Kubernetes' ActivePods order: the pods to delete first come first. */
static int delete_order(const void *va, const void *vb)
{
	const struct pod *a = *(const struct pod *const *)va;
	const struct pod *b = *(const struct pod *const *)vb;

	if (a->scheduled != b->scheduled)
		return a->scheduled ? 1 : -1;
	if (a->phase_rank != b->phase_rank)
		return a->phase_rank < b->phase_rank ? -1 : 1;
	if (a->ready != b->ready)
		return a->ready ? 1 : -1;
	if (a->ready && a->ready_ms != b->ready_ms)
		return a->ready_ms > b->ready_ms ? -1 : 1; /* ready for less time first */
	if (a->restarts != b->restarts)
		return a->restarts > b->restarts ? -1 : 1;
	if (a->created_ms != b->created_ms)
		return a->created_ms > b->created_ms ? -1 : 1; /* newer first */
	return strcmp(a->name, b->name);
}

/* A new pod from @rs's template, named "<rs>-xxxxx". */
static json_t *new_pod(struct ctrl *c, struct priv *p, const json_t *rs, char *name,
		       size_t size)
{
	static const char alphabet[] = CTRL_SAFE_ALPHABET;
	const char *rs_name = ctrl_str(rs, "metadata.name");
	json_t *tmpl = api_json_path(rs, "spec.template");
	json_t *tmeta = json_object_get(tmpl, "metadata");
	json_t *pod, *meta, *spec, *v;
	char prefix[64];
	uint64_t r = ctrl_random(c);
	size_t i, n;

	/* Kubernetes keeps generated names within 63 characters. */
	snprintf(prefix, sizeof(prefix), "%.57s-", rs_name);
	n = strlen(prefix);
	if (size < n + 6)
		return NULL;
	memcpy(name, prefix, n);
	for (i = 0; i < 5; i++) {
		name[n + i] = alphabet[r % (sizeof(alphabet) - 1)];
		r /= sizeof(alphabet) - 1;
	}
	name[n + 5] = '\0';
	spec = json_deep_copy(json_object_get(tmpl, "spec"));
	pod = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:[o]}, s:o}", "apiVersion", "v1", "kind",
			"Pod", "metadata", "name", name, "generateName", prefix, "namespace",
			ctrl_str(rs, "metadata.namespace"), "ownerReferences",
			ctrl_owner_ref(p->rs_kind, rs), "spec", spec != NULL ? spec : json_object());
	if (pod == NULL)
		return NULL;
	meta = json_object_get(pod, "metadata");
	if ((v = json_object_get(tmeta, "labels")) != NULL)
		json_object_set_new(meta, "labels", json_deep_copy(v));
	if ((v = json_object_get(tmeta, "annotations")) != NULL)
		json_object_set_new(meta, "annotations", json_deep_copy(v));
	if ((v = json_object_get(tmeta, "finalizers")) != NULL)
		json_object_set_new(meta, "finalizers", json_deep_copy(v));
	return pod;
}

/* Sets status field @name to @v on @st, omitted when zero (omitempty),
 * and tells whether it changed. */
static bool set_count(json_t *st, const char *name, int64_t v, bool omit_zero)
{
	json_t *old = json_object_get(st, name);

	if (omit_zero && v == 0) {
		if (old == NULL)
			return false;
		json_object_del(st, name);
		return true;
	}
	if (json_is_integer(old) && json_integer_value(old) == v)
		return false;
	json_object_set_new(st, name, json_integer(v));
	return true;
}

static void rs_sync(struct ctrl *c, const char *key)
{
	struct priv *p = ctrl_priv(c);
	char ns[256], name[256], id[300], pod_name[80];
	json_t *rs = NULL, *copy = NULL, *st, *tmpl_labels;
	struct api_selector *sel = NULL;
	struct pod **active = NULL, *pod;
	struct owner *o;
	const char *uid;
	size_t n_active = 0, i;
	int64_t replicas, min_ready_ms, diff;
	int64_t fully = 0, ready = 0, available = 0;
	uint64_t now = ctrl_now_ms(c), next_check = 0;
	bool claimed = false, changed;
	int rv;

	if (p == NULL || ctrl__split_key(key, ns, name, sizeof(ns)) != 0)
		return;
	rs = ctrl_get(c, p->rs_kind, ns, name, NULL);
	if (rs == NULL)
		return;
	/* Kubernetes leaves a ReplicaSet being deleted to the garbage
	 * collector. */
	if (api_json_path(rs, "metadata.deletionTimestamp") != NULL)
		goto out;
	uid = ctrl_str(rs, "metadata.uid");
	if (uid == NULL)
		goto out;
	if (api_selector_from_json(api_json_path(rs, "spec.selector"), &sel, NULL, 0) != 0) {
		ctrl_log(c, LOG_LEVEL_WARN, "%s: invalid selector", key);
		goto out;
	}
	replicas = ctrl_int(rs, "spec.replicas", 1);
	min_ready_ms = ctrl_int(rs, "spec.minReadySeconds", 0) * 1000;
	tmpl_labels = api_json_path(rs, "spec.template.metadata.labels");

	/* Claims: release owned pods that stopped matching, adopt matching
	 * orphans. Counting waits until they are done. */
	o = owner_find(p, uid);
	if (o != NULL) {
		TAILQ_FOREACH(pod, &o->pods, in_owner)
		{
			if (!pod->deleting && !api_selector_match_json(sel, pod->labels) &&
			    claim(c, p, rs, pod, false, key) == 0)
				claimed = true;
		}
	}
	snprintf(id, sizeof(id), "orphan/%s", ns);
	if (!sel->nothing && (o = owner_find(p, id)) != NULL) {
		TAILQ_FOREACH(pod, &o->pods, in_owner)
		{
			if (!pod->deleting && api_selector_match_json(sel, pod->labels) &&
			    claim(c, p, rs, pod, true, key) == 0)
				claimed = true;
		}
	}
	if (claimed)
		goto out;

	o = owner_find(p, uid);
	if (o != NULL && o->n > 0) {
		active = calloc(o->n, sizeof(*active));
		if (active == NULL)
			goto out;
		TAILQ_FOREACH(pod, &o->pods, in_owner)
		{
			if (!pod->active || !api_selector_match_json(sel, pod->labels))
				continue;
			active[n_active++] = pod;
			if (ctrl__labels_contain(pod->labels, tmpl_labels))
				fully++;
			if (!pod->ready)
				continue;
			ready++;
			if (ctrl__available_at(pod->ready_ms, min_ready_ms, now, &next_check))
				available++;
		}
	}

	diff = (int64_t)n_active - replicas;
	if (diff < 0) {
		int64_t want = -diff < BURST ? -diff : BURST;
		for (i = 0; i < (size_t)want; i++) {
			json_t *np = new_pod(c, p, rs, pod_name, sizeof(pod_name));
			rv = np != NULL ? ctrl_create(c, p->pod_kind, np, key) : -ENOMEM;
			json_decref(np);
			if (rv != 0) {
				ctrl_event(c, rs, "Warning", "FailedCreate", "Error creating: %s",
					   strerror(-rv));
				ctrl_enqueue_after(c, key, RETRY_MS);
				break;
			}
			ctrl_event(c, rs, "Normal", "SuccessfulCreate", "Created pod: %s", pod_name);
		}
	} else if (diff > 0) {
		int64_t want = diff < BURST ? diff : BURST;
		qsort(active, n_active, sizeof(*active), delete_order);
		for (i = 0; i < (size_t)want; i++) {
			pod = active[i];
			rv = ctrl_delete(c, p->pod_kind, pod->ns, pod->name, 0, pod->uid, NULL, -1,
					 key);
			if (rv == 0)
				ctrl_event(c, rs, "Normal", "SuccessfulDelete", "Deleted pod: %s",
					   pod->name);
			else if (rv != -ENOENT)
				ctrl_enqueue_after(c, key, RETRY_MS);
		}
	}

	/* Status, from the pods as they were before this sync's writes, as
	 * Kubernetes does; the requeue after the writes refreshes it. */
	copy = json_deep_copy(rs);
	if (copy == NULL)
		goto out;
	st = json_object_get(copy, "status");
	if (!json_is_object(st)) {
		st = json_object();
		json_object_set_new(copy, "status", st);
	}
	changed = set_count(st, "replicas", (int64_t)n_active, false);
	changed |= set_count(st, "fullyLabeledReplicas", fully, true);
	changed |= set_count(st, "readyReplicas", ready, true);
	changed |= set_count(st, "availableReplicas", available, true);
	changed |= set_count(st, "observedGeneration", ctrl_int(rs, "metadata.generation", 0),
			     true);
	if (changed)
		ctrl_update(c, p->rs_kind, copy, key);
	if (next_check > 0)
		ctrl_enqueue_after(c, key, next_check);
out:
	free(active);
	api_selector_free(sel);
	json_decref(copy);
	json_decref(rs);
}

const struct ctrl_ops ctrl_replicaset_ops = {
	.name = "replicaset",
	.start = rs_start,
	.stop = rs_stop,
	.on_event = rs_on_event,
	.sync = rs_sync,
};
