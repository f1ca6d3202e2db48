/* The Deployment controller (Kubernetes' pkg/controller/deployment
 * semantics): ReplicaSets named "<deployment>-<pod-template-hash>",
 * RollingUpdate (maxSurge rounds up, maxUnavailable down) and Recreate,
 * revision annotations, rollback by template (kubectl rollout undo patches
 * the template back: the equal old ReplicaSet is reused and its revision
 * bumped), revisionHistoryLimit, pause, proportional scaling,
 * progressDeadlineSeconds, the Available and Progressing conditions and
 * the status `kubectl rollout status` reads.
 *
 * A sync does one step of Kubernetes' syncDeployment on the local store:
 * it works on copies of the Deployment and its ReplicaSets, then writes
 * what changed (CAS on resourceVersion, every write requeueing the
 * Deployment). Creating the new ReplicaSet ends the step: the next sync
 * sees it. Indexes kept from the events: ReplicaSets by namespace (with
 * owner and labels) and by uid, Deployments by key (selectors, to route
 * orphan ReplicaSets), and the count of non-terminal pods per ReplicaSet
 * uid (Recreate waits for the old pods to be gone). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/tree.h>

#include "src/api/selector.h"
#include "src/ctrl/ctrl.h"
#include "src/ctrl/podtemplate.h"
#include "src/lib/codec.h"
#include "src/lib/log.h"

#define ANN_REVISION "deployment.kubernetes.io/revision"
#define ANN_REVISION_HISTORY "deployment.kubernetes.io/revision-history"
#define ANN_DESIRED "deployment.kubernetes.io/desired-replicas"
#define ANN_MAX "deployment.kubernetes.io/max-replicas"
#define RETRY_MS 5000
/* Kubernetes' "no deadline" value of progressDeadlineSeconds. */
#define NO_DEADLINE 2147483647

/* ------------------------------------------------------------ index */

struct drs {
	RB_ENTRY(drs) by_key;
	RB_ENTRY(drs) by_uid;
	char *key, *ns, *uid;
	char *owner_uid;  /* controller uid, "" for an orphan */
	char *owner_name; /* the controlling Deployment's name, or NULL */
	json_t *labels;
	bool deleting;
};

struct ddep {
	RB_ENTRY(ddep) by_key;
	struct api_selector *sel;
	char key[];
};

struct dpod {
	RB_ENTRY(dpod) by_key;
	char *owner_uid;
	bool counted; /* not Succeeded/Failed */
	char key[];
};

struct dcount {
	RB_ENTRY(dcount) by_uid;
	size_t n;
	char uid[];
};

static int drs_key_cmp(const struct drs *a, const struct drs *b)
{
	return strcmp(a->key, b->key);
}

static int drs_uid_cmp(const struct drs *a, const struct drs *b)
{
	return strcmp(a->uid, b->uid);
}

static int ddep_cmp(const struct ddep *a, const struct ddep *b)
{
	return strcmp(a->key, b->key);
}

static int dpod_cmp(const struct dpod *a, const struct dpod *b)
{
	return strcmp(a->key, b->key);
}

static int dcount_cmp(const struct dcount *a, const struct dcount *b)
{
	return strcmp(a->uid, b->uid);
}

RB_HEAD(drs_keys, drs);
RB_HEAD(drs_uids, drs);
RB_HEAD(ddep_tree, ddep);
RB_HEAD(dpod_tree, dpod);
RB_HEAD(dcount_tree, dcount);
/* RB_GENERATE_STATIC needs BSD's __unused, which libbsd leaves undefined. */
RB_GENERATE_INTERNAL(drs_keys, drs, by_key, drs_key_cmp, static __attribute__((unused)))
RB_GENERATE_INTERNAL(drs_uids, drs, by_uid, drs_uid_cmp, static __attribute__((unused)))
RB_GENERATE_INTERNAL(ddep_tree, ddep, by_key, ddep_cmp, static __attribute__((unused)))
RB_GENERATE_INTERNAL(dpod_tree, dpod, by_key, dpod_cmp, static __attribute__((unused)))
RB_GENERATE_INTERNAL(dcount_tree, dcount, by_uid, dcount_cmp, static __attribute__((unused)))

struct priv {
	struct drs_keys rs_keys;
	struct drs_uids rs_uids;
	struct ddep_tree deps;
	struct dpod_tree pods;
	struct dcount_tree counts;
	const struct api_kind *dep_kind, *rs_kind, *pod_kind;
};

static struct drs *drs_by_key(struct priv *p, const char *key)
{
	struct drs k;

	k.key = (char *)key;
	return RB_FIND(drs_keys, &p->rs_keys, &k);
}

static struct drs *drs_by_uid(struct priv *p, const char *uid)
{
	struct drs k;

	k.uid = (char *)uid;
	return RB_FIND(drs_uids, &p->rs_uids, &k);
}

static void drs_free(struct drs *r)
{
	if (r == NULL)
		return;
	free(r->key);
	free(r->ns);
	free(r->uid);
	free(r->owner_uid);
	free(r->owner_name);
	json_decref(r->labels);
	free(r);
}

static void drs_remove(struct priv *p, struct drs *r)
{
	RB_REMOVE(drs_keys, &p->rs_keys, r);
	if (r->uid != NULL && RB_FIND(drs_uids, &p->rs_uids, r) == r)
		RB_REMOVE(drs_uids, &p->rs_uids, r);
	drs_free(r);
}

/* A heap lookup key for the trees whose string is a flexible member. */
#define FLEX_FIND(type, tree, head, field, str, ret)                                           \
	do {                                                                                   \
		size_t len_ = strlen(str);                                                     \
		struct type *k_ = malloc(sizeof(*k_) + len_ + 1);                              \
		(ret) = NULL;                                                                  \
		if (k_ != NULL) {                                                              \
			memcpy(k_->field, (str), len_ + 1);                                    \
			(ret) = RB_FIND(tree, (head), k_);                                     \
			free(k_);                                                              \
		}                                                                              \
	} while (0)

static void count_add(struct priv *p, const char *uid, int delta)
{
	struct dcount *cnt;
	size_t len = strlen(uid);

	FLEX_FIND(dcount, dcount_tree, &p->counts, uid, uid, cnt);
	if (cnt == NULL) {
		if (delta < 0)
			return;
		cnt = calloc(1, sizeof(*cnt) + len + 1);
		if (cnt == NULL)
			return;
		memcpy(cnt->uid, uid, len + 1);
		RB_INSERT(dcount_tree, &p->counts, cnt);
	}
	if (delta < 0 && cnt->n > 0)
		cnt->n--;
	else if (delta > 0)
		cnt->n++;
	if (cnt->n == 0) {
		RB_REMOVE(dcount_tree, &p->counts, cnt);
		free(cnt);
	}
}

static size_t count_of(struct priv *p, const char *uid)
{
	struct dcount *cnt;

	FLEX_FIND(dcount, dcount_tree, &p->counts, uid, uid, cnt);
	return cnt != NULL ? cnt->n : 0;
}

static void enqueue_dep(struct ctrl *c, struct priv *p, const char *ns, const char *name)
{
	char key[512];

	if (ctrl_key(p->dep_kind, ns, name, key, sizeof(key)) > 0)
		ctrl_enqueue(c, key);
}

/* Queues the Deployments of @ns whose selector matches @labels. */
static void enqueue_matching(struct ctrl *c, struct priv *p, const char *ns,
			     const json_t *labels)
{
	char prefix[300];
	struct ddep *d, *k;
	size_t len;
	int n = ctrl_key(p->dep_kind, ns, "", prefix, sizeof(prefix));

	if (n <= 0)
		return;
	len = (size_t)n;
	k = malloc(sizeof(*k) + len + 1);
	if (k == NULL)
		return;
	memcpy(k->key, prefix, len + 1);
	for (d = RB_NFIND(ddep_tree, &p->deps, k); d != NULL; d = RB_NEXT(ddep_tree, &p->deps, d)) {
		if (strncmp(d->key, prefix, len) != 0)
			break;
		if (d->sel != NULL && !d->sel->nothing && d->sel->n > 0 &&
		    api_selector_match_json(d->sel, labels))
			ctrl_enqueue(c, d->key);
	}
	free(k);
}

static void on_dep(struct ctrl *c, struct priv *p, const struct ctrl_event *ev)
{
	size_t len = strlen(ev->key);
	struct ddep *d;
	json_t *obj;

	FLEX_FIND(ddep, ddep_tree, &p->deps, key, ev->key, d);
	if (d != NULL) {
		RB_REMOVE(ddep_tree, &p->deps, d);
		api_selector_free(d->sel);
		free(d);
	}
	ctrl_enqueue(c, ev->key);
	if (ev->type == CTRL_DELETED)
		return;
	d = calloc(1, sizeof(*d) + len + 1);
	if (d == NULL)
		return;
	memcpy(d->key, ev->key, len + 1);
	obj = ctrl_decode(ev->val, ev->val_len, 0);
	if (obj != NULL &&
	    api_selector_from_json(api_json_path(obj, "spec.selector"), &d->sel, NULL, 0) != 0)
		d->sel = NULL;
	json_decref(obj);
	RB_INSERT(ddep_tree, &p->deps, d);
}

static void on_rs(struct ctrl *c, struct priv *p, const struct ctrl_event *ev)
{
	struct drs *r = drs_by_key(p, ev->key);
	char *old_owner = NULL;
	const json_t *ref;
	json_t *obj;

	if (r != NULL) {
		old_owner = r->owner_name;
		r->owner_name = NULL;
		drs_remove(p, r);
	}
	if (ev->type == CTRL_DELETED) {
		if (old_owner != NULL)
			enqueue_dep(c, p, ev->ns, old_owner);
		free(old_owner);
		return;
	}
	obj = ctrl_decode(ev->val, ev->val_len, 0);
	r = calloc(1, sizeof(*r));
	if (obj == NULL || r == NULL)
		goto out;
	ref = ctrl_controller_ref(obj);
	r->key = strdup(ev->key);
	r->ns = strdup(ev->ns);
	r->uid = strdup(ctrl_str(obj, "metadata.uid") != NULL ? ctrl_str(obj, "metadata.uid") : "");
	r->owner_uid = strdup(ref != NULL && json_string_value(json_object_get(ref, "uid"))
				      ? json_string_value(json_object_get(ref, "uid"))
				      : "");
	if (ref != NULL && json_string_value(json_object_get(ref, "name")) != NULL &&
	    json_string_value(json_object_get(ref, "kind")) != NULL &&
	    strcmp(json_string_value(json_object_get(ref, "kind")), "Deployment") == 0)
		r->owner_name = strdup(json_string_value(json_object_get(ref, "name")));
	r->labels = json_incref(api_json_path(obj, "metadata.labels"));
	r->deleting = api_json_path(obj, "metadata.deletionTimestamp") != NULL;
	if (r->key == NULL || r->ns == NULL || r->uid == NULL || r->owner_uid == NULL)
		goto out;
	RB_INSERT(drs_keys, &p->rs_keys, r);
	if (r->uid[0] != '\0' && RB_INSERT(drs_uids, &p->rs_uids, r) != NULL)
		ctrl_log(c, LOG_LEVEL_WARN, "two ReplicaSets with uid %s", r->uid);
	if (old_owner != NULL && (r->owner_name == NULL || strcmp(old_owner, r->owner_name) != 0))
		enqueue_dep(c, p, ev->ns, old_owner);
	if (r->owner_name != NULL)
		enqueue_dep(c, p, ev->ns, r->owner_name);
	else if (r->owner_uid[0] == '\0' && !r->deleting)
		enqueue_matching(c, p, ev->ns, r->labels);
	r = NULL; /* indexed */
out:
	drs_free(r);
	free(old_owner);
	json_decref(obj);
}

/* The uid of the controller of a stored pod (a new string), or NULL:
 * read straight from the msgpack, since every pod change passes here. */
static char *controller_uid(const void *val, size_t len)
{
	char path[64];
	const void *v;
	const char *u;
	size_t vlen, ulen, i;

	for (i = 0; i < 32; i++) {
		snprintf(path, sizeof(path), "metadata.ownerReferences.%zu", i);
		if (codec_msgpack_get(val, len, path, &v, &vlen) != 0)
			return NULL;
		/* msgpack true is the single byte 0xc3. */
		if (codec_msgpack_get(v, vlen, "controller", &v, &vlen) != 0 || vlen != 1 ||
		    *(const unsigned char *)v != 0xc3)
			continue;
		snprintf(path, sizeof(path), "metadata.ownerReferences.%zu.uid", i);
		if (codec_msgpack_get_str(val, len, path, &u, &ulen) != 0)
			return NULL;
		return strndup(u, ulen);
	}
	return NULL;
}

/* Pods only matter to Recreate (no new pods while old ones run): count
 * the non-terminal ones per ReplicaSet and wake the Deployment when one
 * goes away. */
static void on_pod(struct ctrl *c, struct priv *p, const struct ctrl_event *ev)
{
	struct dpod *pod;
	char *owner = NULL;
	bool counted = false, was_counted = false;
	struct drs *r;
	size_t len = strlen(ev->key);

	FLEX_FIND(dpod, dpod_tree, &p->pods, key, ev->key, pod);
	if (ev->type != CTRL_DELETED) {
		const char *phase;
		size_t plen;
		owner = controller_uid(ev->val, ev->val_len);
		counted = codec_msgpack_get_str(ev->val, ev->val_len, "status.phase", &phase,
						&plen) != 0 ||
			  !((plen == 9 && memcmp(phase, "Succeeded", 9) == 0) ||
			    (plen == 6 && memcmp(phase, "Failed", 6) == 0));
	}
	if (pod != NULL) {
		was_counted = pod->counted;
		if (pod->counted)
			count_add(p, pod->owner_uid, -1);
		if (owner == NULL || strcmp(owner, pod->owner_uid) != 0 || counted != pod->counted) {
			r = drs_by_uid(p, pod->owner_uid);
			if (r != NULL && r->owner_name != NULL && was_counted)
				enqueue_dep(c, p, r->ns, r->owner_name);
		}
		RB_REMOVE(dpod_tree, &p->pods, pod);
		free(pod->owner_uid);
		free(pod);
	}
	if (owner == NULL)
		return;
	pod = calloc(1, sizeof(*pod) + len + 1);
	if (pod == NULL) {
		free(owner);
		return;
	}
	memcpy(pod->key, ev->key, len + 1);
	pod->owner_uid = owner;
	pod->counted = counted;
	if (counted)
		count_add(p, owner, 1);
	RB_INSERT(dpod_tree, &p->pods, pod);
}

static int dep_start(struct ctrl *c)
{
	struct priv *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return -ENOMEM;
	RB_INIT(&p->rs_keys);
	RB_INIT(&p->rs_uids);
	RB_INIT(&p->deps);
	RB_INIT(&p->pods);
	RB_INIT(&p->counts);
	p->dep_kind = api_kind_by_resource("apps", "v1", "deployments");
	p->rs_kind = api_kind_by_resource("apps", "v1", "replicasets");
	p->pod_kind = api_kind_by_resource("", "v1", "pods");
	if (p->dep_kind == NULL || p->rs_kind == NULL || p->pod_kind == NULL) {
		free(p);
		return -ENOENT;
	}
	ctrl_set_priv(c, p);
	return 0;
}

static void dep_stop(struct ctrl *c)
{
	struct priv *p = ctrl_priv(c);
	struct drs *r, *rn;
	struct ddep *d, *dn;
	struct dpod *pod, *pn;
	struct dcount *cnt, *cn;

	if (p == NULL)
		return;
	RB_FOREACH_SAFE(r, drs_keys, &p->rs_keys, rn)
	{
		drs_remove(p, r);
	}
	RB_FOREACH_SAFE(d, ddep_tree, &p->deps, dn)
	{
		RB_REMOVE(ddep_tree, &p->deps, d);
		api_selector_free(d->sel);
		free(d);
	}
	RB_FOREACH_SAFE(pod, dpod_tree, &p->pods, pn)
	{
		RB_REMOVE(dpod_tree, &p->pods, pod);
		free(pod->owner_uid);
		free(pod);
	}
	RB_FOREACH_SAFE(cnt, dcount_tree, &p->counts, cn)
	{
		RB_REMOVE(dcount_tree, &p->counts, cnt);
		free(cnt);
	}
	free(p);
	ctrl_set_priv(c, NULL);
}

static void dep_on_event(struct ctrl *c, const struct ctrl_event *ev)
{
	struct priv *p = ctrl_priv(c);

	if (p == NULL || ev->ns == NULL)
		return;
	if (ev->kind == p->dep_kind)
		on_dep(c, p, ev);
	else if (ev->kind == p->rs_kind)
		on_rs(c, p, ev);
	else if (ev->kind == p->pod_kind)
		on_pod(c, p, ev);
}

/* ------------------------------------------------------------ one sync */

/* A ReplicaSet of the Deployment during a sync. */
struct rsv {
	json_t *obj; /* as read; modified in place for its write */
	const char *name, *uid;
	int64_t spec; /* spec.replicas, as this sync wants it */
	int64_t replicas, ready, avail; /* status as read */
	int64_t revision;
	uint64_t created_ms;
	bool dirty, deleting;
};

struct dsync {
	struct ctrl *c;
	struct priv *p;
	const char *key;
	const json_t *d; /* as read */
	json_t *out;     /* what to write back: annotations and status */
	const char *ns, *name, *uid;
	int64_t replicas;
	bool rolling;
	int64_t surge, unavail; /* resolved; 0 for Recreate */
	struct rsv *rs;
	size_t n;
	struct rsv *new_rs;
	char now[32];
};

static int64_t parse_i64(const char *s, int64_t dflt)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return dflt;
	errno = 0;
	v = strtoll(s, &end, 10);
	return errno != 0 || *end != '\0' ? dflt : v;
}

static int64_t avail_eff(const struct rsv *r)
{
	/* A status written before a scale down can count pods that are on
	 * their way out: never trust more than spec. */
	return r->avail < r->spec ? r->avail : r->spec;
}

static bool has_deadline(const struct dsync *x)
{
	json_t *v = api_json_path(x->d, "spec.progressDeadlineSeconds");

	return json_is_integer(v) && json_integer_value(v) != NO_DEADLINE;
}

/* Kubernetes' SetDeploymentCondition: nothing when status and reason are
 * unchanged; lastTransitionTime kept while the status stays. @force
 * replaces a condition with the same reason too (a refreshed
 * lastUpdateTime: Progressing's "progress was made"). */
static void set_cond(struct dsync *x, const char *type, const char *status, const char *reason,
		     const char *msg, bool force)
{
	json_t *st = json_object_get(x->out, "status"), *conds, *cur, *cond;
	const char *cs, *cr, *ltt = NULL;
	size_t i;

	if (!json_is_object(st)) {
		st = json_object();
		json_object_set_new(x->out, "status", st);
	}
	conds = json_object_get(st, "conditions");
	if (!json_is_array(conds)) {
		conds = json_array();
		json_object_set_new(st, "conditions", conds);
	}
	cur = ctrl__condition(x->out, type);
	cs = json_string_value(json_object_get(cur, "status"));
	cr = json_string_value(json_object_get(cur, "reason"));
	if (cur != NULL && !force && cs != NULL && strcmp(cs, status) == 0 && cr != NULL &&
	    strcmp(cr, reason) == 0)
		return;
	if (cur != NULL && cs != NULL && strcmp(cs, status) == 0)
		ltt = json_string_value(json_object_get(cur, "lastTransitionTime"));
	cond = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", type, "status", status,
			 "lastUpdateTime", x->now, "lastTransitionTime", ltt ? ltt : x->now,
			 "reason", reason, "message", msg);
	if (cond == NULL)
		return;
	json_array_foreach(conds, i, cur)
	{
		const char *t = json_string_value(json_object_get(cur, "type"));
		if (t != NULL && strcmp(t, type) == 0) {
			json_array_remove(conds, i);
			break;
		}
	}
	json_array_append_new(conds, cond);
}

static void remove_cond(struct dsync *x, const char *type)
{
	json_t *conds = api_json_path(x->out, "status.conditions"), *cur;
	size_t i;

	json_array_foreach(conds, i, cur)
	{
		const char *t = json_string_value(json_object_get(cur, "type"));
		if (t != NULL && strcmp(t, type) == 0) {
			json_array_remove(conds, i);
			break;
		}
	}
}

static const char *cond_field(const json_t *obj, const char *type, const char *field)
{
	return json_string_value(json_object_get(ctrl__condition(obj, type), field));
}

/* Sets a status count, omitted when zero as Go's omitempty does. */
static void set_count(json_t *st, const char *name, int64_t v)
{
	if (v == 0)
		json_object_del(st, name);
	else
		json_object_set_new(st, name, json_integer(v));
}

struct dstat {
	int64_t replicas, updated, ready, available, unavailable, observed;
};

static void read_stat(const json_t *d, struct dstat *s)
{
	s->replicas = ctrl_int(d, "status.replicas", 0);
	s->updated = ctrl_int(d, "status.updatedReplicas", 0);
	s->ready = ctrl_int(d, "status.readyReplicas", 0);
	s->available = ctrl_int(d, "status.availableReplicas", 0);
	s->unavailable = ctrl_int(d, "status.unavailableReplicas", 0);
	s->observed = ctrl_int(d, "status.observedGeneration", 0);
}

static bool complete(const struct dsync *x, const struct dstat *s)
{
	return s->updated == x->replicas && s->replicas == x->replicas &&
	       s->available == x->replicas &&
	       s->observed >= ctrl_int(x->d, "metadata.generation", 0);
}

/* Kubernetes' calculateStatus, into x->out. */
static void calc_status(struct dsync *x, struct dstat *ret)
{
	json_t *st = json_object_get(x->out, "status");
	int64_t spec_total = 0;
	size_t i;

	memset(ret, 0, sizeof(*ret));
	for (i = 0; i < x->n; i++) {
		spec_total += x->rs[i].spec;
		ret->replicas += x->rs[i].replicas;
		ret->ready += x->rs[i].ready;
		ret->available += x->rs[i].avail;
	}
	if (x->new_rs != NULL)
		ret->updated = x->new_rs->replicas;
	ret->unavailable = spec_total - ret->available;
	if (ret->unavailable < 0)
		ret->unavailable = 0;
	ret->observed = ctrl_int(x->d, "metadata.generation", 0);
	if (!json_is_object(st)) {
		st = json_object();
		json_object_set_new(x->out, "status", st);
	}
	set_count(st, "observedGeneration", ret->observed);
	set_count(st, "replicas", ret->replicas);
	set_count(st, "updatedReplicas", ret->updated);
	set_count(st, "readyReplicas", ret->ready);
	set_count(st, "availableReplicas", ret->available);
	set_count(st, "unavailableReplicas", ret->unavailable);
	if (ret->available >= x->replicas - x->unavail)
		set_cond(x, "Available", "True", "MinimumReplicasAvailable",
			 "Deployment has minimum availability.", false);
	else
		set_cond(x, "Available", "False", "MinimumReplicasUnavailable",
			 "Deployment does not have minimum availability.", false);
}

/* syncDeploymentStatus: the counts, no progress estimate. */
static void sync_status(struct dsync *x)
{
	struct dstat s;

	calc_status(x, &s);
}

/* syncRolloutStatus: the counts and the Progressing condition, and a
 * timer for the progress deadline. */
static void rollout_status(struct dsync *x)
{
	struct dstat old, s;
	const char *reason = cond_field(x->d, "Progressing", "reason");
	const char *nm = x->new_rs != NULL ? x->new_rs->name : x->name;
	const char *what = x->new_rs != NULL ? "ReplicaSet" : "Deployment";
	char msg[400];
	bool completed;

	read_stat(x->d, &old);
	calc_status(x, &s);
	if (!has_deadline(x)) {
		remove_cond(x, "Progressing");
		return;
	}
	completed = s.replicas == s.updated && reason != NULL &&
		    strcmp(reason, "NewReplicaSetAvailable") == 0;
	if (!completed) {
		if (complete(x, &s)) {
			snprintf(msg, sizeof(msg), "%s \"%s\" has successfully progressed.", what, nm);
			set_cond(x, "Progressing", "True", "NewReplicaSetAvailable", msg, false);
		} else if (s.updated > old.updated ||
			   s.replicas - s.updated < old.replicas - old.updated ||
			   s.ready > old.ready || s.available > old.available) {
			snprintf(msg, sizeof(msg), "ReplicaSet \"%s\" is progressing.", nm);
			set_cond(x, "Progressing", "True", "ReplicaSetUpdated", msg, true);
		} else {
			const char *r = cond_field(x->out, "Progressing", "reason");
			const char *lut = cond_field(x->out, "Progressing", "lastUpdateTime");
			int64_t deadline = ctrl_int(x->d, "spec.progressDeadlineSeconds", 600);
			uint64_t from, now = ctrl_now_ms(x->c);
			if (r != NULL && strcmp(r, "NewReplicaSetAvailable") != 0 &&
			    strcmp(r, "ProgressDeadlineExceeded") != 0 && lut != NULL &&
			    ctrl_parse_time(lut, &from) == 0) {
				uint64_t end = from + (uint64_t)deadline * 1000;
				if (end < now) {
					snprintf(msg, sizeof(msg),
						 "%s \"%s\" has timed out progressing.", what, nm);
					set_cond(x, "Progressing", "False",
						 "ProgressDeadlineExceeded", msg, false);
				} else {
					/* requeueStuckDeployment: look again just
					 * after the deadline. */
					ctrl_enqueue_after(x->c, x->key, end - now + 1000);
				}
			}
		}
	}
}

static void scale_annotations(struct dsync *x, struct rsv *r, bool *changed)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRId64, x->replicas);
	*changed |= ctrl__set_annotation(r->obj, ANN_DESIRED, buf);
	snprintf(buf, sizeof(buf), "%" PRId64, x->replicas + x->surge);
	*changed |= ctrl__set_annotation(r->obj, ANN_MAX, buf);
}

/* scaleReplicaSet: the new size and the replicas annotations; an event
 * when the size changes. Returns whether the size changed. */
static bool scale(struct dsync *x, struct rsv *r, int64_t to)
{
	bool ann = false;
	int64_t from = r->spec;

	scale_annotations(x, r, &ann);
	if (from == to && !ann)
		return false;
	r->spec = to;
	json_object_set_new(json_object_get(r->obj, "spec"), "replicas", json_integer(to));
	r->dirty = true;
	if (from == to)
		return false;
	ctrl_event(x->c, x->d, "Normal", "ScalingReplicaSet",
		   "Scaled %s replica set %s from %" PRId64 " to %" PRId64,
		   to > from ? "up" : "down", r->name, from, to);
	return true;
}

/* scaleReplicaSetAndRecordEvent: nothing when the size is right. */
static bool scale_if(struct dsync *x, struct rsv *r, int64_t to)
{
	return r->spec != to && scale(x, r, to);
}

static int by_created(const void *va, const void *vb)
{
	const struct rsv *a = *(const struct rsv *const *)va, *b = *(const struct rsv *const *)vb;

	if (a->created_ms != b->created_ms)
		return a->created_ms < b->created_ms ? -1 : 1;
	return strcmp(a->name, b->name);
}

static int by_revision(const void *va, const void *vb)
{
	const struct rsv *a = *(const struct rsv *const *)va, *b = *(const struct rsv *const *)vb;

	if (a->revision != b->revision)
		return a->revision < b->revision ? -1 : 1;
	return by_created(va, vb);
}

/* The old ReplicaSets (all but the new one), sorted by @cmp; the caller
 * frees the array. */
static struct rsv **olds(struct dsync *x, int (*cmp)(const void *, const void *),
			 size_t *ret_n)
{
	struct rsv **v = calloc(x->n + 1, sizeof(*v));
	size_t i, n = 0;

	if (v == NULL) {
		*ret_n = 0;
		return NULL;
	}
	for (i = 0; i < x->n; i++) {
		if (&x->rs[i] != x->new_rs)
			v[n++] = &x->rs[i];
	}
	qsort(v, n, sizeof(*v), cmp);
	*ret_n = n;
	return v;
}

static const char *const skip_annotations[] = {
	"kubectl.kubernetes.io/last-applied-configuration",
	ANN_REVISION,
	ANN_REVISION_HISTORY,
	ANN_DESIRED,
	ANN_MAX,
	"deprecated.deployment.rollback.to",
	NULL,
};

static bool skipped_annotation(const char *k)
{
	size_t i;

	for (i = 0; skip_annotations[i] != NULL; i++) {
		if (strcmp(k, skip_annotations[i]) == 0)
			return true;
	}
	return false;
}

/* copyDeploymentAnnotationsToReplicaSet. */
static bool copy_annotations(const json_t *d, json_t *rs)
{
	json_t *ann = api_json_path(d, "metadata.annotations"), *v;
	const char *k;
	bool changed = false;

	json_object_foreach(ann, k, v)
	{
		if (!skipped_annotation(k) && json_is_string(v))
			changed |= ctrl__set_annotation(rs, k, json_string_value(v));
	}
	return changed;
}

static int64_t max_old_revision(struct dsync *x)
{
	int64_t m = 0;
	size_t i;

	for (i = 0; i < x->n; i++) {
		if (&x->rs[i] != x->new_rs && x->rs[i].revision > m)
			m = x->rs[i].revision;
	}
	return m;
}

/* getNewReplicaSet for an existing one: revision (a reused old template
 * gets the next revision, its old one kept in revision-history),
 * annotations, minReadySeconds; the Deployment's revision follows. */
static void sync_revision(struct dsync *x)
{
	struct rsv *r = x->new_rs;
	int64_t next = max_old_revision(x) + 1;
	const char *old = ctrl__annotation(r->obj, ANN_REVISION);
	char buf[32], msg[400];
	json_t *mrs = api_json_path(x->d, "spec.minReadySeconds");
	json_t *rspec = json_object_get(r->obj, "spec");

	if (copy_annotations(x->d, r->obj))
		r->dirty = true;
	if (r->revision < next) {
		snprintf(buf, sizeof(buf), "%" PRId64, next);
		ctrl__set_annotation(r->obj, ANN_REVISION, buf);
		if (old != NULL) {
			const char *hist = ctrl__annotation(r->obj, ANN_REVISION_HISTORY);
			char h[2048];
			if (hist == NULL || hist[0] == '\0')
				snprintf(h, sizeof(h), "%" PRId64, r->revision);
			else
				snprintf(h, sizeof(h), "%s,%" PRId64, hist, r->revision);
			ctrl__set_annotation(r->obj, ANN_REVISION_HISTORY, h);
		}
		r->revision = next;
		r->dirty = true;
	}
	if (ctrl_int(r->obj, "spec.minReadySeconds", 0) != json_integer_value(mrs)) {
		json_object_set_new(rspec, "minReadySeconds", json_integer(json_integer_value(mrs)));
		r->dirty = true;
	}
	snprintf(buf, sizeof(buf), "%" PRId64, r->revision);
	ctrl__set_annotation(x->out, ANN_REVISION, buf);
	if (has_deadline(x) && ctrl__condition(x->out, "Progressing") == NULL) {
		snprintf(msg, sizeof(msg), "Found new replica set \"%s\"", r->name);
		set_cond(x, "Progressing", "True", "FoundNewReplicaSet", msg, false);
	}
}

/* NewRSNewReplicas. */
static int64_t new_rs_replicas(struct dsync *x)
{
	int64_t current = 0, cur_new = x->new_rs ? x->new_rs->spec : 0, max_total, up;
	size_t i;

	if (!x->rolling)
		return x->replicas;
	for (i = 0; i < x->n; i++)
		current += x->rs[i].spec;
	max_total = x->replicas + x->surge;
	if (current >= max_total)
		return cur_new;
	up = max_total - current;
	if (up > x->replicas - cur_new)
		up = x->replicas - cur_new;
	return cur_new + up;
}

/* Creates the new ReplicaSet (ends the step). */
static void create_new(struct dsync *x)
{
	struct ctrl *c = x->c;
	json_t *tmpl = api_json_path(x->d, "spec.template");
	json_t *rs = NULL, *existing = NULL, *labels, *sel, *ml, *meta;
	int64_t cc = ctrl_int(x->d, "status.collisionCount", -1);
	int64_t replicas = new_rs_replicas(x), rev = max_old_revision(x) + 1;
	char hash[16], name[300], buf[32], msg[400];
	int rv;

	if (ctrl__pod_template_hash(tmpl, cc, hash, sizeof(hash)) != 0)
		return;
	snprintf(name, sizeof(name), "%s-%s", x->name, hash);
	existing = ctrl_get(c, x->p->rs_kind, x->ns, name, NULL);
	if (existing != NULL) {
		const json_t *ref = ctrl_controller_ref(existing);
		const char *ruid = json_string_value(json_object_get(ref, "uid"));
		if (ruid != NULL && strcmp(ruid, x->uid) == 0 &&
		    ctrl__template_equal(api_json_path(existing, "spec.template"), tmpl)) {
			/* Ours already: the index is about to show it. */
			ctrl_enqueue_after(c, x->key, 1000);
		} else {
			/* A hash collision: Kubernetes bumps collisionCount,
			 * which changes the hash. */
			json_object_set_new(json_object_get(x->out, "status"), "collisionCount",
					    json_integer(cc < 0 ? 1 : cc + 1));
		}
		goto out;
	}
	rs = json_pack("{s:s, s:s, s:{s:s, s:s, s:{}, s:[o]}, s:{s:I, s:I, s:o, s:o}}",
		       "apiVersion", "apps/v1", "kind", "ReplicaSet", "metadata", "name", name,
		       "namespace", x->ns, "annotations", "ownerReferences",
		       ctrl_owner_ref(x->p->dep_kind, x->d), "spec", "replicas",
		       (json_int_t)replicas, "minReadySeconds",
		       (json_int_t)ctrl_int(x->d, "spec.minReadySeconds", 0), "selector",
		       json_deep_copy(api_json_path(x->d, "spec.selector")), "template",
		       json_deep_copy(tmpl));
	if (rs == NULL)
		goto out;
	/* The hash goes into the template's labels, the selector and the
	 * ReplicaSet's own labels, so old and new pods never mix. */
	tmpl = api_json_path(rs, "spec.template");
	meta = json_object_get(tmpl, "metadata");
	if (!json_is_object(meta)) {
		meta = json_object();
		json_object_set_new(tmpl, "metadata", meta);
	}
	labels = json_object_get(meta, "labels");
	if (!json_is_object(labels)) {
		labels = json_object();
		json_object_set_new(meta, "labels", labels);
	}
	json_object_set_new(labels, CTRL_POD_TEMPLATE_HASH, json_string(hash));
	json_object_set_new(json_object_get(rs, "metadata"), "labels", json_deep_copy(labels));
	sel = api_json_path(rs, "spec.selector");
	ml = json_object_get(sel, "matchLabels");
	if (!json_is_object(ml)) {
		ml = json_object();
		json_object_set_new(sel, "matchLabels", ml);
	}
	json_object_set_new(ml, CTRL_POD_TEMPLATE_HASH, json_string(hash));
	copy_annotations(x->d, rs);
	snprintf(buf, sizeof(buf), "%" PRId64, rev);
	ctrl__set_annotation(rs, ANN_REVISION, buf);
	snprintf(buf, sizeof(buf), "%" PRId64, x->replicas);
	ctrl__set_annotation(rs, ANN_DESIRED, buf);
	snprintf(buf, sizeof(buf), "%" PRId64, x->replicas + x->surge);
	ctrl__set_annotation(rs, ANN_MAX, buf);
	rv = ctrl_create(c, x->p->rs_kind, rs, x->key);
	if (rv != 0) {
		ctrl_log(c, LOG_LEVEL_WARN, "%s: creating ReplicaSet %s: %s", x->key, name,
			 strerror(-rv));
		ctrl_enqueue_after(c, x->key, RETRY_MS);
		goto out;
	}
	if (replicas > 0)
		ctrl_event(c, x->d, "Normal", "ScalingReplicaSet",
			   "Scaled up replica set %s from 0 to %" PRId64, name, replicas);
	snprintf(buf, sizeof(buf), "%" PRId64, rev);
	ctrl__set_annotation(x->out, ANN_REVISION, buf);
	if (has_deadline(x)) {
		snprintf(msg, sizeof(msg), "Created new replica set \"%s\"", name);
		set_cond(x, "Progressing", "True", "NewReplicaSetCreated", msg, false);
	}
out:
	json_decref(existing);
	json_decref(rs);
}

/* cleanupDeployment: deletes the oldest revisions beyond
 * revisionHistoryLimit among old, empty, settled ReplicaSets. */
static void cleanup(struct dsync *x)
{
	json_t *lim = api_json_path(x->d, "spec.revisionHistoryLimit");
	struct rsv **v;
	size_t n, i, k = 0;
	int64_t diff;

	if (!json_is_integer(lim))
		return;
	v = olds(x, by_revision, &n);
	if (v == NULL)
		return;
	for (i = 0; i < n; i++) {
		struct rsv *r = v[i];
		if (r->spec == 0 && r->replicas == 0 && !r->deleting && !r->dirty &&
		    ctrl_int(r->obj, "metadata.generation", 0) <=
			    ctrl_int(r->obj, "status.observedGeneration", 0))
			v[k++] = r;
	}
	diff = (int64_t)k - json_integer_value(lim);
	for (i = 0; diff > 0 && i < (size_t)diff; i++) {
		int rv = ctrl_delete(x->c, x->p->rs_kind, x->ns, v[i]->name, 0, v[i]->uid, NULL, -1,
				     x->key);
		if (rv != 0 && rv != -ENOENT)
			ctrl_log(x->c, LOG_LEVEL_WARN, "%s: deleting old ReplicaSet %s: %s", x->key,
				 v[i]->name, strerror(-rv));
	}
	free(v);
}

/* ------------------------------------------------------------ strategies */

static bool reconcile_new(struct dsync *x)
{
	struct rsv *r = x->new_rs;

	if (r->spec == x->replicas)
		return false;
	if (r->spec > x->replicas)
		return scale_if(x, r, x->replicas);
	return scale_if(x, r, new_rs_replicas(x));
}

static bool reconcile_old(struct dsync *x)
{
	int64_t old_count = 0, all = 0, min_avail, new_unavail, max_down, cleaned = 0, down = 0;
	int64_t avail = 0, total_down;
	struct rsv **v;
	size_t n, i;

	for (i = 0; i < x->n; i++) {
		all += x->rs[i].spec;
		if (&x->rs[i] != x->new_rs)
			old_count += x->rs[i].spec;
	}
	if (old_count == 0)
		return false;
	min_avail = x->replicas - x->unavail;
	new_unavail = x->new_rs->spec - avail_eff(x->new_rs);
	max_down = all - min_avail - new_unavail;
	if (max_down <= 0)
		return false;
	v = olds(x, by_created, &n);
	if (v == NULL)
		return false;
	/* cleanupUnhealthyReplicas: unavailable old pods go first, they
	 * would block the rollout. */
	for (i = 0; i < n && cleaned < max_down; i++) {
		int64_t unhealthy = v[i]->spec - avail_eff(v[i]), k;
		if (v[i]->spec == 0 || unhealthy <= 0)
			continue;
		k = max_down - cleaned < unhealthy ? max_down - cleaned : unhealthy;
		scale_if(x, v[i], v[i]->spec - k);
		cleaned += k;
	}
	/* scaleDownOldReplicaSetsForRollingUpdate: only as far as the
	 * available pods stay at or above replicas - maxUnavailable. */
	for (i = 0; i < x->n; i++)
		avail += avail_eff(&x->rs[i]);
	if (avail > min_avail) {
		total_down = avail - min_avail;
		for (i = 0; i < n && down < total_down; i++) {
			int64_t k;
			if (v[i]->spec == 0)
				continue;
			k = v[i]->spec < total_down - down ? v[i]->spec : total_down - down;
			scale_if(x, v[i], v[i]->spec - k);
			down += k;
		}
	}
	free(v);
	return cleaned + down > 0;
}

static void rollout_rolling(struct dsync *x)
{
	struct dstat s;

	if (x->new_rs == NULL) {
		create_new(x);
		return;
	}
	if (reconcile_new(x) || reconcile_old(x)) {
		rollout_status(x);
		return;
	}
	read_stat(x->d, &s);
	if (complete(x, &s))
		cleanup(x);
	rollout_status(x);
}

static void rollout_recreate(struct dsync *x)
{
	struct dstat s;
	bool scaled = false, running = false;
	size_t i;

	for (i = 0; i < x->n; i++) {
		struct rsv *r = &x->rs[i];
		if (r != x->new_rs && r->spec > 0)
			scaled |= scale_if(x, r, 0);
	}
	if (scaled) {
		rollout_status(x);
		return;
	}
	for (i = 0; i < x->n; i++) {
		struct rsv *r = &x->rs[i];
		if (r != x->new_rs && (r->replicas > 0 || count_of(x->p, r->uid) > 0))
			running = true;
	}
	if (running) {
		rollout_status(x);
		return;
	}
	if (x->new_rs == NULL) {
		create_new(x);
		return;
	}
	scale_if(x, x->new_rs, x->replicas);
	read_stat(x->d, &s);
	if (complete(x, &s))
		cleanup(x);
	rollout_status(x);
}

static bool is_active(const struct rsv *r)
{
	return r != NULL && r->spec > 0;
}

static int by_size_newer(const void *va, const void *vb)
{
	const struct rsv *a = *(const struct rsv *const *)va, *b = *(const struct rsv *const *)vb;

	if (a->spec != b->spec)
		return a->spec > b->spec ? -1 : 1;
	if (a->created_ms != b->created_ms)
		return a->created_ms > b->created_ms ? -1 : 1;
	return strcmp(b->name, a->name);
}

static int by_size_older(const void *va, const void *vb)
{
	const struct rsv *a = *(const struct rsv *const *)va, *b = *(const struct rsv *const *)vb;

	if (a->spec != b->spec)
		return a->spec > b->spec ? -1 : 1;
	return by_created(va, vb);
}

/* getReplicaSetFraction and GetProportion. */
static int64_t proportion(struct dsync *x, const struct rsv *r, int64_t to_add, int64_t added)
{
	int64_t fraction, allowed, max_before;
	double size;

	if (r->spec == 0 || to_add == 0 || to_add == added)
		return 0;
	if (x->replicas == 0) {
		fraction = -r->spec;
	} else {
		max_before = parse_i64(ctrl__annotation(r->obj, ANN_MAX), 0);
		if (max_before == 0)
			max_before = ctrl_int(x->d, "status.replicas", 0);
		if (max_before == 0)
			return 0;
		size = (double)(r->spec * (x->replicas + x->surge)) / (double)max_before;
		fraction = (int64_t)(size + (size >= 0 ? 0.5 : -0.5)) - r->spec;
	}
	allowed = to_add - added;
	if (to_add > 0)
		return fraction < allowed ? fraction : allowed;
	return fraction > allowed ? fraction : allowed;
}

/* dc.scale: proportional scaling of the active ReplicaSets. */
static void do_scale(struct dsync *x)
{
	struct rsv *single = NULL, **v;
	size_t i, n_active = 0, n;
	int64_t total = 0, allowed, to_add, added = 0;

	for (i = 0; i < x->n; i++) {
		if (is_active(&x->rs[i])) {
			n_active++;
			single = &x->rs[i];
		}
	}
	if (n_active == 0 && x->n > 0) {
		/* The newest: the new one, else the latest old one. */
		single = x->new_rs;
		if (single == NULL) {
			for (i = 0; i < x->n; i++) {
				if (single == NULL || x->rs[i].created_ms > single->created_ms)
					single = &x->rs[i];
			}
		}
	}
	if (n_active <= 1 && single != NULL) {
		scale_if(x, single, x->replicas);
		return;
	}
	if (n_active == 0)
		return;
	if (x->new_rs != NULL &&
	    parse_i64(ctrl__annotation(x->new_rs->obj, ANN_DESIRED), -1) == x->replicas &&
	    x->new_rs->spec == x->replicas && x->new_rs->avail == x->replicas) {
		for (i = 0; i < x->n; i++) {
			if (&x->rs[i] != x->new_rs && is_active(&x->rs[i]))
				scale_if(x, &x->rs[i], 0);
		}
		return;
	}
	if (!x->rolling)
		return;
	v = calloc(x->n, sizeof(*v));
	if (v == NULL)
		return;
	n = 0;
	for (i = 0; i < x->n; i++) {
		if (is_active(&x->rs[i])) {
			v[n++] = &x->rs[i];
			total += x->rs[i].spec;
		}
	}
	allowed = x->replicas > 0 ? x->replicas + x->surge : 0;
	to_add = allowed - total;
	if (to_add != 0) {
		int64_t *sizes = calloc(n, sizeof(*sizes));
		if (sizes == NULL) {
			free(v);
			return;
		}
		qsort(v, n, sizeof(*v), to_add > 0 ? by_size_newer : by_size_older);
		for (i = 0; i < n; i++) {
			int64_t pr = proportion(x, v[i], to_add, added);
			sizes[i] = v[i]->spec + pr;
			added += pr;
		}
		/* Leftovers go to the largest. */
		sizes[0] += to_add - added;
		if (sizes[0] < 0)
			sizes[0] = 0;
		for (i = 0; i < n; i++)
			scale(x, v[i], sizes[i]);
		free(sizes);
	} else {
		for (i = 0; i < n; i++)
			scale(x, v[i], v[i]->spec);
	}
	free(v);
}

/* isScalingEvent: an active ReplicaSet was sized for another replicas. */
static bool scaling_event(struct dsync *x)
{
	size_t i;

	for (i = 0; i < x->n; i++) {
		const char *d = ctrl__annotation(x->rs[i].obj, ANN_DESIRED);
		if (!is_active(&x->rs[i]) || d == NULL)
			continue;
		if (parse_i64(d, -1) != x->replicas)
			return true;
	}
	return false;
}

/* checkPausedConditions. */
static void paused_conditions(struct dsync *x)
{
	const char *reason = cond_field(x->out, "Progressing", "reason");
	bool paused = json_is_true(api_json_path(x->d, "spec.paused"));
	bool cond_paused = reason != NULL && strcmp(reason, "DeploymentPaused") == 0;

	if (!has_deadline(x) || (reason != NULL && strcmp(reason, "ProgressDeadlineExceeded") == 0))
		return;
	if (paused && !cond_paused)
		set_cond(x, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused",
			 false);
	else if (!paused && cond_paused)
		set_cond(x, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed",
			 false);
}

/* ------------------------------------------------------------ claims */

/* Adopts an orphan ReplicaSet or releases one that stopped matching.
 * Returns 0 when a write was proposed. */
static int claim(struct dsync *x, const struct drs *r, bool adopt)
{
	char rname[256];
	const char *name = strrchr(r->key, '/') + 1;
	json_t *obj;
	int rv;

	snprintf(rname, sizeof(rname), "%s", name);
	obj = ctrl_get(x->c, x->p->rs_kind, x->ns, rname, NULL);
	if (obj == NULL)
		return -ENOENT;
	rv = ctrl__claim_ref(obj, adopt, adopt ? ctrl_owner_ref(x->p->dep_kind, x->d) : NULL,
			     x->uid);
	if (rv > 0)
		rv = ctrl_update(x->c, x->p->rs_kind, obj, x->key);
	else if (rv == 0)
		rv = -ENOENT;
	json_decref(obj);
	return rv;
}

/* Collects the Deployment's ReplicaSets into x->rs (claims first: true
 * when a claim write went out and the step must end). */
static bool collect(struct dsync *x, const struct api_selector *sel, bool deleting)
{
	char prefix[300];
	struct drs *r, k;
	size_t len, cap = 0;
	bool claimed = false;
	int n = ctrl_key(x->p->rs_kind, x->ns, "", prefix, sizeof(prefix));

	if (n <= 0)
		return true;
	len = (size_t)n;
	k.key = prefix;
	for (r = RB_NFIND(drs_keys, &x->p->rs_keys, &k); r != NULL;
	     r = RB_NEXT(drs_keys, &x->p->rs_keys, r)) {
		bool matches;
		if (strncmp(r->key, prefix, len) != 0)
			break;
		matches = api_selector_match_json(sel, r->labels);
		if (strcmp(r->owner_uid, x->uid) == 0) {
			if (!matches) {
				if (!deleting && claim(x, r, false) == 0)
					claimed = true;
				continue;
			}
		} else if (r->owner_uid[0] == '\0' && matches && !r->deleting && !deleting) {
			if (claim(x, r, true) == 0)
				claimed = true;
			continue;
		} else {
			continue;
		}
		if (x->n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct rsv *nv = realloc(x->rs, ncap * sizeof(*nv));
			if (nv == NULL)
				return true;
			x->rs = nv;
			cap = ncap;
		}
		{
			struct rsv *v = &x->rs[x->n];
			const char *name = strrchr(r->key, '/') + 1;
			memset(v, 0, sizeof(*v));
			v->obj = ctrl_get(x->c, x->p->rs_kind, x->ns, name, NULL);
			if (v->obj == NULL)
				continue;
			if (json_object_get(v->obj, "spec") == NULL)
				json_object_set_new(v->obj, "spec", json_object());
			v->name = ctrl_str(v->obj, "metadata.name");
			v->uid = ctrl_str(v->obj, "metadata.uid");
			v->spec = ctrl_int(v->obj, "spec.replicas", 1);
			v->replicas = ctrl_int(v->obj, "status.replicas", 0);
			v->ready = ctrl_int(v->obj, "status.readyReplicas", 0);
			v->avail = ctrl_int(v->obj, "status.availableReplicas", 0);
			v->revision = parse_i64(ctrl__annotation(v->obj, ANN_REVISION), 0);
			v->created_ms = ctrl__time_at(v->obj, "metadata.creationTimestamp");
			v->deleting = api_json_path(v->obj, "metadata.deletionTimestamp") != NULL;
			if (v->name == NULL || v->uid == NULL) {
				json_decref(v->obj);
				continue;
			}
			x->n++;
		}
	}
	return claimed;
}

/* FindNewReplicaSet: the oldest with the Deployment's template. */
static void find_new(struct dsync *x)
{
	const json_t *tmpl = api_json_path(x->d, "spec.template");
	size_t i;

	x->new_rs = NULL;
	for (i = 0; i < x->n; i++) {
		struct rsv *r = &x->rs[i];
		if (!ctrl__template_equal(api_json_path(r->obj, "spec.template"), tmpl))
			continue;
		if (x->new_rs == NULL || by_created(&r, &x->new_rs) < 0)
			x->new_rs = r;
	}
}

static void dep_sync(struct ctrl *c, const char *key)
{
	struct priv *p = ctrl_priv(c);
	struct dsync x;
	struct api_selector *sel = NULL;
	json_t *d = NULL, *ru;
	char ns[256], name[256];
	bool deleting, paused;
	size_t i;

	memset(&x, 0, sizeof(x));
	if (p == NULL || ctrl__split_key(key, ns, name, sizeof(ns)) != 0)
		return;
	d = ctrl_get(c, p->dep_kind, ns, name, NULL);
	if (d == NULL)
		return;
	x.c = c;
	x.p = p;
	x.key = key;
	x.d = d;
	x.ns = ns;
	x.name = name;
	x.uid = ctrl_str(d, "metadata.uid");
	x.out = json_deep_copy(d);
	if (x.uid == NULL || x.out == NULL)
		goto out;
	if (!json_is_object(json_object_get(x.out, "status")))
		json_object_set_new(x.out, "status", json_object());
	ctrl_rfc3339(ctrl_now_ms(c), x.now, sizeof(x.now));
	x.replicas = ctrl_int(d, "spec.replicas", 1);
	{
		const char *type = ctrl_str(d, "spec.strategy.type");
		x.rolling = type == NULL || strcmp(type, "Recreate") != 0;
	}
	if (x.rolling) {
		ru = api_json_path(d, "spec.strategy.rollingUpdate");
		x.surge = ctrl__int_or_percent(json_object_get(ru, "maxSurge"), x.replicas, true,
					       (x.replicas * 25 + 99) / 100);
		x.unavail = ctrl__int_or_percent(json_object_get(ru, "maxUnavailable"), x.replicas,
						 false, x.replicas * 25 / 100);
		if (x.surge == 0 && x.unavail == 0)
			x.unavail = 1;
		if (x.unavail > x.replicas)
			x.unavail = x.replicas;
	}
	if (api_selector_from_json(api_json_path(d, "spec.selector"), &sel, NULL, 0) != 0 ||
	    sel->nothing || sel->n == 0) {
		/* Kubernetes refuses to select every pod. */
		ctrl_log(c, LOG_LEVEL_WARN, "%s: empty or invalid selector", key);
		set_count(json_object_get(x.out, "status"), "observedGeneration",
			  ctrl_int(d, "metadata.generation", 0));
		goto write;
	}
	deleting = api_json_path(d, "metadata.deletionTimestamp") != NULL;
	if (collect(&x, sel, deleting))
		goto out;
	find_new(&x);
	if (deleting) {
		sync_status(&x);
		goto write;
	}
	paused_conditions(&x);
	paused = json_is_true(api_json_path(d, "spec.paused"));
	if (x.new_rs != NULL)
		sync_revision(&x);
	if (paused || scaling_event(&x)) {
		do_scale(&x);
		if (paused)
			cleanup(&x);
		sync_status(&x);
	} else if (x.rolling) {
		rollout_rolling(&x);
	} else {
		rollout_recreate(&x);
	}
write:
	for (i = 0; i < x.n; i++) {
		if (x.rs[i].dirty)
			ctrl_update(c, p->rs_kind, x.rs[i].obj, key);
	}
	if (!json_equal(x.out, d))
		ctrl_update(c, p->dep_kind, x.out, key);
out:
	for (i = 0; i < x.n; i++)
		json_decref(x.rs[i].obj);
	free(x.rs);
	api_selector_free(sel);
	json_decref(x.out);
	json_decref(d);
}

const struct ctrl_ops ctrl_deployment_ops = {
	.name = "deployment",
	.start = dep_start,
	.stop = dep_stop,
	.on_event = dep_on_event,
	.sync = dep_sync,
};
