/* Node lifecycle controller and its taint manager (kube-controller-manager's
 * node-lifecycle-controller, with Kubernetes' condition, taint and event
 * names).
 *
 * Health: a node's heartbeat is the newer of its Lease's spec.renewTime
 * (namespace kube-node-lease, same name) and its Ready condition's
 * lastHeartbeatTime. This term's start (and the node's creation) count as
 * a heartbeat too, as Kubernetes' probeTimestamp does: a new leader gives
 * every node a full grace period instead of condemning them all at once
 * after a long election. When no heartbeat came for node_grace_ms, every
 * condition becomes Unknown (NodeStatusUnknown); only the node agent
 * posting Ready=True again makes it Ready.
 *
 * Taints follow the Ready condition (TaintNodesByCondition and
 * TaintBasedEvictions): False -> node.kubernetes.io/not-ready, Unknown ->
 * node.kubernetes.io/unreachable, each NoSchedule and NoExecute (the latter
 * with timeAdded); spec.unschedulable -> node.kubernetes.io/unschedulable.
 *
 * Eviction: a pod on a node with NoExecute taints is deleted when it does
 * not tolerate one of them, else when the first toleration that matches a
 * taint runs out (timeAdded + tolerationSeconds, the smallest over the
 * taints). A pod without its own toleration of not-ready/unreachable gets
 * the DefaultTolerationSeconds admission's (eviction_toleration_s). A pod on
 * an unreachable node is deleted with grace 0: its agent will never
 * confirm.
 *
 * Orphaned pods (PodGC's gcOrphaned): pods bound to a node that does not
 * exist are deleted with grace 0 once the node has been missing for the
 * grace period (a quarantine against a node registering late).
 *
 * Work: the queue key is the node's store key. Nothing polls: each sync
 * arms one timer for the next deadline (heartbeat expiry or an eviction).
 * The controller keeps pods by node and each node's lease time, updated
 * from events; pods are only read when their node has a NoExecute taint.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <sys/queue.h>
#include <sys/tree.h>

#include "src/ctrl/ctrl.h"
#include "src/ctrl/podtemplate.h"
#include "src/lib/codec.h"
#include "src/lib/log.h"

#define NL_LEASE_NS "kube-node-lease"
#define TAINT_NOT_READY "node.kubernetes.io/not-ready"
#define TAINT_UNREACHABLE "node.kubernetes.io/unreachable"
#define TAINT_UNSCHEDULABLE "node.kubernetes.io/unschedulable"

struct nl_node;

/* A pod bound to a node, by "ns/name". */
struct nl_pod {
	RB_ENTRY(nl_pod) rb;
	TAILQ_ENTRY(nl_pod) link;
	struct nl_node *node;
	char key[];
};

/* What the controller remembers of a node; kept while the node exists or
 * pods still name it. */
struct nl_node {
	RB_ENTRY(nl_node) rb;
	TAILQ_HEAD(nl_pods_of_node, nl_pod) pods;
	uint64_t lease_ms; /* Lease renewTime, 0: none seen */
	uint64_t absent_since; /* when the Node was last seen missing */
	bool exists;       /* the Node object is stored */
	bool noexec;       /* it has a NoExecute taint */
	char name[];
};

static int nl_pod_cmp(const struct nl_pod *a, const struct nl_pod *b)
{
	return strcmp(a->key, b->key);
}

static int nl_node_cmp(const struct nl_node *a, const struct nl_node *b)
{
	return strcmp(a->name, b->name);
}

RB_HEAD(nl_pod_tree, nl_pod);
RB_HEAD(nl_node_tree, nl_node);
RB_GENERATE_INTERNAL(nl_pod_tree, nl_pod, rb, nl_pod_cmp, static __attribute__((unused)))
RB_GENERATE_INTERNAL(nl_node_tree, nl_node, rb, nl_node_cmp, static __attribute__((unused)))

struct nl {
	struct nl_node_tree nodes;
	struct nl_pod_tree pods;
	uint64_t start_ms;
	const struct api_kind *k_node, *k_pod, *k_lease;
};

/* ------------------------------------------------------------ index */

static struct nl_node *node_find(struct nl *nl, const char *name)
{
	size_t len = strlen(name);
	struct nl_node *key = malloc(sizeof(*key) + len + 1), *n;

	if (key == NULL)
		return NULL;
	memcpy(key->name, name, len + 1);
	n = RB_FIND(nl_node_tree, &nl->nodes, key);
	free(key);
	return n;
}

static struct nl_node *node_get(struct nl *nl, const char *name, size_t len)
{
	struct nl_node *n = malloc(sizeof(*n) + len + 1), *old;

	if (n == NULL)
		return NULL;
	memset(n, 0, sizeof(*n));
	memcpy(n->name, name, len);
	n->name[len] = '\0';
	old = RB_FIND(nl_node_tree, &nl->nodes, n);
	if (old != NULL) {
		free(n);
		return old;
	}
	TAILQ_INIT(&n->pods);
	RB_INSERT(nl_node_tree, &nl->nodes, n);
	return n;
}

static void node_maybe_free(struct nl *nl, struct nl_node *n)
{
	if (n->exists || !TAILQ_EMPTY(&n->pods) || n->lease_ms != 0)
		return;
	RB_REMOVE(nl_node_tree, &nl->nodes, n);
	free(n);
}

static void pod_unlink(struct nl *nl, struct nl_pod *p)
{
	struct nl_node *n = p->node;

	TAILQ_REMOVE(&n->pods, p, link);
	p->node = NULL;
	node_maybe_free(nl, n);
}

static void pod_remove(struct nl *nl, const char *key)
{
	size_t len = strlen(key);
	struct nl_pod *k = malloc(sizeof(*k) + len + 1), *p;

	if (k == NULL)
		return;
	memcpy(k->key, key, len + 1);
	p = RB_FIND(nl_pod_tree, &nl->pods, k);
	free(k);
	if (p == NULL)
		return;
	RB_REMOVE(nl_pod_tree, &nl->pods, p);
	pod_unlink(nl, p);
	free(p);
}

/* Records pod @key on node @node (NULL or "": unbound). Returns the node
 * entry or NULL. */
static struct nl_node *pod_set(struct nl *nl, const char *key, const char *node, size_t node_len)
{
	size_t len = strlen(key);
	struct nl_pod *p = malloc(sizeof(*p) + len + 1), *old;
	struct nl_node *n;

	if (p == NULL)
		return NULL;
	memset(p, 0, sizeof(*p));
	memcpy(p->key, key, len + 1);
	old = RB_FIND(nl_pod_tree, &nl->pods, p);
	if (old != NULL) {
		free(p);
		p = old;
		if (node_len > 0 && strlen(p->node->name) == node_len &&
		    memcmp(p->node->name, node, node_len) == 0)
			return p->node; /* unchanged: the usual case */
		RB_REMOVE(nl_pod_tree, &nl->pods, p);
		pod_unlink(nl, p);
	}
	if (node_len == 0 || (n = node_get(nl, node, node_len)) == NULL) {
		free(p);
		return NULL;
	}
	p->node = n;
	TAILQ_INSERT_TAIL(&n->pods, p, link);
	RB_INSERT(nl_pod_tree, &nl->pods, p);
	return n;
}

static void nl_free(struct nl *nl)
{
	struct nl_pod *p, *pn;
	struct nl_node *n, *nn;

	if (nl == NULL)
		return;
	RB_FOREACH_SAFE(p, nl_pod_tree, &nl->pods, pn)
	{
		RB_REMOVE(nl_pod_tree, &nl->pods, p);
		free(p);
	}
	RB_FOREACH_SAFE(n, nl_node_tree, &nl->nodes, nn)
	{
		RB_REMOVE(nl_node_tree, &nl->nodes, n);
		free(n);
	}
	free(nl);
}

/* ------------------------------------------------------------ tree helpers */

/* The pod of index entry @p ("<ns>/<name>"), read from the store with its
 * namespace and name into @ns and @name (256 bytes each); NULL when gone. */
static json_t *pod_get(struct ctrl *c, struct nl *nl, const struct nl_pod *p, char *ns,
		       char *name)
{
	if (ctrl__split_ns_key(p->key, ns, name, 256) != 0)
		return NULL;
	return ctrl_get(c, nl->k_pod, ns, name, NULL);
}

static uint64_t time_at(const json_t *obj, const char *path)
{
	uint64_t ms = 0;
	const char *s = ctrl_str(obj, path);

	if (s == NULL || ctrl_parse_time(s, &ms) != 0)
		return 0;
	return ms;
}

static bool has_noexec_taint(const json_t *node)
{
	json_t *taints = json_object_get(json_object_get(node, "spec"), "taints"), *t;
	size_t i;

	json_array_foreach(taints, i, t)
	{
		const char *e = json_string_value(json_object_get(t, "effect"));
		if (e != NULL && strcmp(e, "NoExecute") == 0)
			return true;
	}
	return false;
}

static bool streq(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* ------------------------------------------------------------ lifecycle */

static int nl_start(struct ctrl *c)
{
	struct nl *nl = calloc(1, sizeof(*nl));

	if (nl == NULL)
		return -ENOMEM;
	RB_INIT(&nl->nodes);
	RB_INIT(&nl->pods);
	nl->start_ms = ctrl_now_ms(c);
	nl->k_node = api_kind_by_resource("", "v1", "nodes");
	nl->k_pod = api_kind_by_resource("", "v1", "pods");
	nl->k_lease = api_kind_by_resource("coordination.k8s.io", "v1", "leases");
	if (nl->k_node == NULL || nl->k_pod == NULL) {
		free(nl);
		return -ENOENT;
	}
	ctrl_set_priv(c, nl);
	return 0;
}

static void nl_stop(struct ctrl *c)
{
	nl_free(ctrl_priv(c));
	ctrl_set_priv(c, NULL);
}

static void enqueue_node(struct ctrl *c, const struct nl *nl, const char *name)
{
	char key[512];

	if (ctrl_key(nl->k_node, NULL, name, key, sizeof(key)) >= 0)
		ctrl_enqueue(c, key);
}

/* @n has pods but no Node: collect them after the quarantine. */
static void node_missing(struct ctrl *c, struct nl *nl, struct nl_node *n)
{
	char key[512];

	if (n->absent_since == 0)
		n->absent_since = ctrl_now_ms(c);
	if (ctrl_key(nl->k_node, NULL, n->name, key, sizeof(key)) >= 0)
		ctrl_enqueue_after(c, key, ctrl_config(c)->node_grace_ms);
}

static void nl_on_event(struct ctrl *c, const struct ctrl_event *ev)
{
	struct nl *nl = ctrl_priv(c);
	struct nl_node *n;
	const char *s;
	size_t len;

	if (nl == NULL)
		return;
	if (ev->kind == nl->k_pod) {
		char key[512];
		if (strlen(ev->ns) + strlen(ev->name) + 2 > sizeof(key))
			return;
		strcpy(key, ev->ns);
		strcat(key, "/");
		strcat(key, ev->name);
		if (ev->type == CTRL_DELETED) {
			pod_remove(nl, key);
			return;
		}
		if (codec_msgpack_get_str(ev->val, ev->val_len, "spec.nodeName", &s, &len) != 0)
			len = 0;
		n = pod_set(nl, key, s, len);
		/* A pod arriving on (or changing on) a NoExecute-tainted node
		 * may need evicting; one on a missing node, collecting. */
		if (n != NULL && n->noexec)
			enqueue_node(c, nl, n->name);
		if (n != NULL && !n->exists)
			node_missing(c, nl, n);
		return;
	}
	if (ev->kind == nl->k_lease && ev->ns != NULL && strcmp(ev->ns, NL_LEASE_NS) == 0) {
		uint64_t ms = 0;
		char t[64];
		if (ev->type == CTRL_DELETED) {
			n = node_find(nl, ev->name);
			if (n != NULL) {
				n->lease_ms = 0;
				node_maybe_free(nl, n);
			}
			return;
		}
		/* No enqueue: the timer armed by the last sync reads the lease
		 * then; a renewal alone never changes the node. */
		if (codec_msgpack_get_str(ev->val, ev->val_len, "spec.renewTime", &s, &len) == 0 &&
		    len < sizeof(t)) {
			memcpy(t, s, len);
			t[len] = '\0';
			if (ctrl_parse_time(t, &ms) != 0)
				ms = 0;
		}
		n = node_get(nl, ev->name, strlen(ev->name));
		if (n != NULL && ms != 0)
			n->lease_ms = ms;
		return;
	}
	if (ev->kind == nl->k_node) {
		if (ev->type == CTRL_DELETED) {
			n = node_find(nl, ev->name);
			if (n != NULL) {
				n->exists = false;
				n->noexec = false;
				n->absent_since = 0;
				if (!TAILQ_EMPTY(&n->pods))
					node_missing(c, nl, n);
				node_maybe_free(nl, n);
			}
			return;
		}
		n = node_get(nl, ev->name, strlen(ev->name));
		if (n == NULL)
			return;
		n->exists = true;
		enqueue_node(c, nl, ev->name);
	}
}

/* ------------------------------------------------------------ health */

/* Marks every condition Unknown, as Kubernetes does when the kubelet went
 * silent. Returns true when Ready changed to Unknown. */
static bool mark_unknown(struct ctrl *c, json_t *node)
{
	json_t *st = json_object_get(node, "status"), *conds, *cnd;
	char now[32];
	size_t i;
	bool ready_changed = false;

	ctrl_rfc3339(ctrl_now_ms(c), now, sizeof(now));
	if (!json_is_object(st)) {
		st = json_object();
		json_object_set_new(node, "status", st);
	}
	conds = json_object_get(st, "conditions");
	if (!json_is_array(conds)) {
		conds = json_array();
		json_object_set_new(st, "conditions", conds);
	}
	json_array_foreach(conds, i, cnd)
	{
		const char *type = json_string_value(json_object_get(cnd, "type"));
		if (streq(json_string_value(json_object_get(cnd, "status")), "Unknown"))
			continue;
		json_object_set_new(cnd, "status", json_string("Unknown"));
		json_object_set_new(cnd, "reason", json_string("NodeStatusUnknown"));
		json_object_set_new(cnd, "message", json_string("Kubelet stopped posting node status."));
		json_object_set_new(cnd, "lastTransitionTime", json_string(now));
		if (streq(type, "Ready"))
			ready_changed = true;
	}
	if (ctrl__condition(node, "Ready") == NULL) {
		json_array_append_new(conds,
				      json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "Ready", "status",
						"Unknown", "reason", "NodeStatusNeverUpdated", "message",
						"Kubelet never posted node status.",
						"lastTransitionTime", now));
		ready_changed = true;
	}
	return ready_changed;
}

/* Brings spec.taints to the ones the Ready condition and spec.unschedulable
 * call for, keeping any other taint and the timeAdded of kept ones.
 * Returns true when anything changed. */
static bool reconcile_taints(struct ctrl *c, json_t *node, const char *ready)
{
	static const struct {
		const char *key, *effect;
	} managed[] = {
		{TAINT_NOT_READY, "NoSchedule"},     {TAINT_NOT_READY, "NoExecute"},
		{TAINT_UNREACHABLE, "NoSchedule"},   {TAINT_UNREACHABLE, "NoExecute"},
		{TAINT_UNSCHEDULABLE, "NoSchedule"},
	};
	bool want[sizeof(managed) / sizeof(managed[0])] = {false};
	bool have[sizeof(managed) / sizeof(managed[0])] = {false};
	json_t *spec = json_object_get(node, "spec"), *taints, *t;
	char now[32];
	bool changed = false;
	size_t i, j;

	if (!json_is_object(spec)) {
		spec = json_object();
		json_object_set_new(node, "spec", spec);
	}
	if (streq(ready, "False"))
		want[0] = want[1] = true;
	else if (streq(ready, "Unknown"))
		want[2] = want[3] = true;
	if (json_is_true(json_object_get(spec, "unschedulable")))
		want[4] = true;
	taints = json_object_get(spec, "taints");
	for (i = 0; json_is_array(taints) && i < json_array_size(taints);) {
		const char *k, *e;
		bool keep = true;
		t = json_array_get(taints, i);
		k = json_string_value(json_object_get(t, "key"));
		e = json_string_value(json_object_get(t, "effect"));
		for (j = 0; j < sizeof(managed) / sizeof(managed[0]); j++) {
			if (streq(k, managed[j].key) && streq(e, managed[j].effect)) {
				keep = want[j] && !have[j];
				have[j] = true;
			}
		}
		if (keep) {
			i++;
		} else {
			json_array_remove(taints, i);
			changed = true;
		}
	}
	ctrl_rfc3339(ctrl_now_ms(c), now, sizeof(now));
	for (j = 0; j < sizeof(managed) / sizeof(managed[0]); j++) {
		if (!want[j] || have[j])
			continue;
		if (!json_is_array(taints)) {
			taints = json_array();
			json_object_set_new(spec, "taints", taints);
		}
		t = json_pack("{s:s, s:s}", "key", managed[j].key, "effect", managed[j].effect);
		if (strcmp(managed[j].effect, "NoExecute") == 0)
			json_object_set_new(t, "timeAdded", json_string(now));
		json_array_append_new(taints, t);
		changed = true;
	}
	if (json_is_array(taints) && json_array_size(taints) == 0) {
		json_object_del(spec, "taints");
		changed = true;
	}
	return changed;
}

/* ------------------------------------------------------------ eviction */

/* Whether toleration @tol matches taint @taint (Kubernetes'
 * ToleratesTaint). */
static bool tolerates(const json_t *tol, const json_t *taint)
{
	const char *tk = json_string_value(json_object_get(tol, "key"));
	const char *te = json_string_value(json_object_get(tol, "effect"));
	const char *op = json_string_value(json_object_get(tol, "operator"));
	const char *tv = json_string_value(json_object_get(tol, "value"));
	const char *k = json_string_value(json_object_get(taint, "key"));
	const char *e = json_string_value(json_object_get(taint, "effect"));
	const char *v = json_string_value(json_object_get(taint, "value"));

	if (te != NULL && te[0] != '\0' && !streq(te, e))
		return false;
	if ((tk == NULL || tk[0] == '\0')) /* empty key: only with Exists, matches all */
		return streq(op, "Exists");
	if (!streq(tk, k))
		return false;
	if (streq(op, "Exists"))
		return true;
	return (op == NULL || op[0] == '\0' || streq(op, "Equal")) &&
	       strcmp(tv != NULL ? tv : "", v != NULL ? v : "") == 0;
}

/* Whether the pod has a toleration that DefaultTolerationSeconds counts
 * as tolerating @taint_key (key empty or equal, effect empty or
 * NoExecute). */
static bool has_own_toleration(const json_t *tols, const char *taint_key)
{
	json_t *tol;
	size_t i;

	json_array_foreach(tols, i, tol)
	{
		const char *k = json_string_value(json_object_get(tol, "key"));
		const char *e = json_string_value(json_object_get(tol, "effect"));
		if ((k == NULL || k[0] == '\0' || strcmp(k, taint_key) == 0) &&
		    (e == NULL || e[0] == '\0' || strcmp(e, "NoExecute") == 0))
			return true;
	}
	return false;
}

/* When pod @pod must be evicted from a node with NoExecute taints
 * @taints: 0 now, UINT64_MAX never, else ms since the epoch. */
static uint64_t eviction_time(struct ctrl *c, const json_t *pod, const json_t *taints)
{
	json_t *tols = json_object_get(json_object_get(pod, "spec"), "tolerations");
	json_t *eff = json_array(), *taint, *tol;
	uint64_t dflt_s = ctrl_config(c)->eviction_toleration_s, at = UINT64_MAX;
	static const char *const defaults[] = {TAINT_NOT_READY, TAINT_UNREACHABLE};
	size_t i, j;

	if (eff == NULL)
		return UINT64_MAX; /* OOM: decide later, never wrongly */
	json_array_foreach(tols, i, tol)
		json_array_append(eff, tol);
	for (i = 0; i < 2; i++) {
		if (!has_own_toleration(tols, defaults[i]))
			json_array_append_new(eff, json_pack("{s:s, s:s, s:s, s:I}", "key",
							     defaults[i], "operator", "Exists",
							     "effect", "NoExecute",
							     "tolerationSeconds", (json_int_t)dflt_s));
	}
	json_array_foreach(taints, i, taint)
	{
		const char *e = json_string_value(json_object_get(taint, "effect"));
		const json_t *used = NULL, *secs;
		uint64_t added, deadline;
		int64_t s;
		if (!streq(e, "NoExecute"))
			continue;
		json_array_foreach(eff, j, tol)
		{
			if (tolerates(tol, taint)) {
				used = tol;
				break;
			}
		}
		if (used == NULL) {
			at = 0;
			break;
		}
		secs = json_object_get(used, "tolerationSeconds");
		if (!json_is_integer(secs))
			continue; /* tolerated forever */
		s = json_integer_value(secs);
		added = time_at(taint, "timeAdded");
		if (added == 0)
			added = ctrl_now_ms(c);
		deadline = s <= 0 ? 0 : added + (uint64_t)s * 1000;
		if (deadline < at)
			at = deadline;
	}
	json_decref(eff);
	return at;
}

/* Marks the Ready condition of every pod on @n False, as Kubernetes'
 * MarkPodsNotReady does once the node stops being Ready (so endpoints
 * drop them before they are evicted). */
static void mark_pods_not_ready(struct ctrl *c, struct nl *nl, struct nl_node *n,
				const char *requeue)
{
	struct nl_pod *p;

	TAILQ_FOREACH(p, &n->pods, link)
	{
		char ns[256], name[256];
		json_t *pod = pod_get(c, nl, p, ns, name), *cnd;
		if (pod == NULL)
			continue;
		cnd = ctrl__condition(pod, "Ready");
		if (cnd != NULL && streq(json_string_value(json_object_get(cnd, "status")), "True")) {
			char now[32];
			ctrl_rfc3339(ctrl_now_ms(c), now, sizeof(now));
			json_object_set_new(cnd, "status", json_string("False"));
			json_object_set_new(cnd, "lastTransitionTime", json_string(now));
			if (ctrl_update(c, nl->k_pod, pod, requeue) == 0)
				ctrl_event(c, pod, "Warning", "NodeNotReady", "Node is not ready");
		}
		json_decref(pod);
	}
}

/* Deletes the pods of @n whose time is up; returns the next eviction time
 * (UINT64_MAX: none). */
static uint64_t evict(struct ctrl *c, struct nl *nl, struct nl_node *n, const json_t *node,
		      bool unreachable, const char *requeue)
{
	const json_t *taints = json_object_get(json_object_get(node, "spec"), "taints");
	uint64_t now = ctrl_now_ms(c), next = UINT64_MAX;
	struct nl_pod *p;

	TAILQ_FOREACH(p, &n->pods, link)
	{
		char ns[256], name[256];
		json_t *pod = pod_get(c, nl, p, ns, name);
		uint64_t at;
		bool deleting;
		if (pod == NULL)
			continue;
		deleting = ctrl_str(pod, "metadata.deletionTimestamp") != NULL;
		/* A graceful deletion on a live node finishes by itself; on an
		 * unreachable one it never would. */
		if (deleting && !unreachable) {
			json_decref(pod);
			continue;
		}
		at = eviction_time(c, pod, taints);
		if (at <= now) {
			int rv = ctrl_delete(c, nl->k_pod, ns, name, 0,
					     ctrl_str(pod, "metadata.uid"), NULL,
					     unreachable ? 0 : -1, requeue);
			if (rv == 0 && !deleting)
				ctrl_event(c, pod, "Normal", "TaintManagerEviction",
					   "Marking for deletion Pod %s/%s", ns, name);
			else if (rv != 0 && rv != -ENOENT)
				ctrl_log(c, LOG_LEVEL_WARN, "cannot evict pod %s: %s", p->key,
					 strerror(-rv));
		} else if (at < next) {
			next = at;
		}
		json_decref(pod);
	}
	return next;
}

/* Deletes (grace 0) the pods bound to missing node @name once it has been
 * missing for the quarantine. */
static void collect_orphans(struct ctrl *c, struct nl *nl, const char *name, const char *key)
{
	struct nl_node *n = node_find(nl, name);
	uint64_t now = ctrl_now_ms(c), due;
	struct nl_pod *p;

	if (n == NULL || n->exists || TAILQ_EMPTY(&n->pods))
		return;
	if (n->absent_since == 0)
		n->absent_since = now;
	due = n->absent_since + ctrl_config(c)->node_grace_ms;
	if (now < due) {
		ctrl_enqueue_after(c, key, due - now);
		return;
	}
	TAILQ_FOREACH(p, &n->pods, link)
	{
		char ns[256], pname[256];
		json_t *pod = pod_get(c, nl, p, ns, pname);
		int rv;
		if (pod == NULL)
			continue;
		rv = ctrl_delete(c, nl->k_pod, ns, pname, 0, ctrl_str(pod, "metadata.uid"), NULL,
				 0, key);
		if (rv == 0)
			ctrl_log(c, LOG_LEVEL_INFO, "pod %s: node %s does not exist: deleted", p->key,
				 name);
		else if (rv != -ENOENT)
			ctrl_log(c, LOG_LEVEL_WARN, "cannot delete orphaned pod %s: %s", p->key,
				 strerror(-rv));
		json_decref(pod);
	}
}

/* ------------------------------------------------------------ sync */

static void nl_sync(struct ctrl *c, const char *key)
{
	struct nl *nl = ctrl_priv(c);
	const char *name = strrchr(key, '/');
	uint64_t now = ctrl_now_ms(c), grace = ctrl_config(c)->node_grace_ms;
	uint64_t hb, t, next = UINT64_MAX;
	struct nl_node *n;
	json_t *node, *ready;
	const char *ready_status;
	bool changed = false;

	if (nl == NULL || name == NULL)
		return;
	name++;
	node = ctrl_get(c, nl->k_node, NULL, name, NULL);
	if (node == NULL) {
		collect_orphans(c, nl, name, key);
		return;
	}
	n = node_get(nl, name, strlen(name));
	if (n == NULL) {
		json_decref(node);
		ctrl_enqueue_after(c, key, 1000); /* OOM: try again */
		return;
	}
	n->exists = true;
	n->absent_since = 0;

	hb = nl->start_ms;
	if (n->lease_ms > hb)
		hb = n->lease_ms;
	ready = ctrl__condition(node, "Ready");
	if ((t = time_at(ready, "lastHeartbeatTime")) > hb)
		hb = t;
	if ((t = time_at(node, "metadata.creationTimestamp")) > hb)
		hb = t;
	if (now >= hb + grace) {
		if (mark_unknown(c, node)) {
			ctrl_log(c, LOG_LEVEL_INFO, "node %s: no heartbeat for %" PRIu64 " ms: Unknown",
				 name, now - hb);
			ctrl_event(c, node, "Normal", "NodeNotReady",
				   "Node %s status is now: NodeNotReady", name);
			changed = true;
		}
	} else {
		next = hb + grace;
	}
	ready = ctrl__condition(node, "Ready");
	ready_status = json_string_value(json_object_get(ready, "status"));
	if (reconcile_taints(c, node, ready_status))
		changed = true;
	if (changed) {
		int rv = ctrl_update(c, nl->k_node, node, key);
		if (rv != 0)
			ctrl_log(c, LOG_LEVEL_WARN, "cannot update node %s: %s", name, strerror(-rv));
	}
	/* Only for an unreachable node: a live kubelet reports its pods. */
	if (streq(ready_status, "Unknown"))
		mark_pods_not_ready(c, nl, n, key);
	n->noexec = has_noexec_taint(node);
	if (n->noexec) {
		t = evict(c, nl, n, node, streq(ready_status, "Unknown"), key);
		if (t < next)
			next = t;
	}
	if (next != UINT64_MAX)
		ctrl_enqueue_after(c, key, next > now ? next - now : 1);
	json_decref(node);
}

const struct ctrl_ops ctrl_nodelifecycle_ops = {
	.name = "nodelifecycle",
	.start = nl_start,
	.stop = nl_stop,
	.on_event = nl_on_event,
	.sync = nl_sync,
};
