/* The scheduler, run as a leader-only controller.
 *
 * Happy path: a pod without spec.nodeName for the default scheduler
 * arrives (on_event) and is queued under its store key; sync() filters
 * every node of the cache, scores the feasible ones, and writes the pod
 * with spec.nodeName and PodScheduled=True (CAS on the resourceVersion
 * read). The pod is "assumed" on the node at once, so the next pod sees
 * the space taken; the write's own event then confirms it (BOUND).
 *
 * Failure modes:
 * - the bind write fails (CAS conflict, or an error): the manager
 *   requeues the key when the write completes; sync finds the pod still
 *   ASSUMED with no nodeName in the store, forgets the assumption and
 *   schedules again (at once after a conflict, after a back-off
 *   otherwise);
 * - no node fits: PodScheduled=False reason Unschedulable with
 *   kube-scheduler's message, a FailedScheduling event when the message
 *   differs from the last one, and a retry after a back-off (1 s doubling
 *   to 10 s) or as soon as a node is added or changes, or a pod bound to
 *   a node goes away (one "retry" key coalesces those).
 *
 * The cache (nodes with what their pods request, pods by key, pods per
 * controller owner per node) is rebuilt from the store's replay on every
 * start, so a new leader never double-books.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/tree.h>

#include "src/ctrl/ctrl.h"
#include "src/lib/codec.h"
#include "src/lib/log.h"
#include "src/sched/sched.h"

#define RETRY_KEY "scheduler:retry"
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 10000
#define SCHEDULER_NAME "default-scheduler"
#define SAMPLE_MIN_NODES 100
/* A new verdict that names the same reasons as the written one, with
 * other counts, is written at most this often (a cluster that changes
 * keeps changing the counts). */
#define MSG_REFRESH_MS 30000
/* Rewrites of an Unschedulable condition (a pod that has one already)
 * share a token bucket, as kube-scheduler's status updates share its
 * client's rate limit: when many nodes change at once, thousands of
 * pending pods would otherwise be rewritten on every change, taking the
 * Raft log from the binds. A pod's first verdict is always written. */
#define REWRITE_RATE 200 /* per second */
#define REWRITE_BURST 200

enum pod_state {
	POD_PENDING = 1, /* ours to schedule */
	POD_ASSUMED,     /* bind written (or in flight), not seen yet */
	POD_BOUND,       /* bound: counted on its node */
};

struct owner {
	RB_ENTRY(owner) rb;
	uint32_t *counts; /* pods per node slot */
	size_t n_counts;
	size_t pods;
	const char *uid; /* inside buf[] */
	char buf[];
};

struct node_entry {
	RB_ENTRY(node_entry) rb;
	struct sched_node n;
	/* The NodeAffinity verdict for the pods of sched.aff_epoch. */
	uint64_t aff_epoch;
	bool aff_ok;
};

struct pod {
	RB_ENTRY(pod) rb;
	enum pod_state state;
	struct sched_pod_spec spec;
	struct node_entry *node; /* counted here (ASSUMED, BOUND) */
	struct owner *owner;     /* counted with the node */
	uint64_t bind_rev;       /* the mod_rev the bind was written against */
	unsigned attempts;
	bool unsched;
	TAILQ_ENTRY(pod) unsched_link;
	char *last_msg; /* last FailedScheduling message */
	uint64_t msg_ms; /* when last_msg was written */
	const char *key;       /* the store key, inside buf[] */
	const char *ns, *name; /* inside buf[] */
	char buf[];
};

RB_HEAD(pod_tree, pod);
RB_HEAD(node_tree, node_entry);
RB_HEAD(owner_tree, owner);
TAILQ_HEAD(pod_list, pod);

struct sched {
	struct ctrl *c;
	const struct api_kind *pod_kind;
	const struct api_kind *node_kind;
	struct pod_tree pods;
	struct node_tree nodes;
	struct owner_tree owners;
	struct node_entry **slots; /* by sched_node.idx */
	size_t n_slots, cap_slots;
	size_t n_existing; /* nodes with a Node object */
	struct pod_list unsched;
	bool retry_pending;
	size_t next_start; /* slot where the next pod's search starts */
	struct node_entry **feasible; /* scratch, cap_slots long */
	/* Raised whenever a pod may fit where it did not: a node added or
	 * changed, a pod's requests leaving a node. Binding only takes room
	 * away, so a verdict "fits nowhere" holds while gen stays. */
	uint64_t gen;
	/* The last pod found to fit nowhere, at gen neg_gen, and why: a pod
	 * with the same constraints gets the same verdict without a scan
	 * (10,000 pods of one template retried after every node change). */
	const struct pod *neg_pod;
	uint64_t neg_gen;
	char *neg_msg;
	/* Pods with the constraints of aff_pod share aff_epoch, under which
	 * each node keeps its NodeAffinity verdict: the label lookups of a
	 * nodeSelector were the largest cost of a search (hundreds of nodes
	 * per pod, pods of one template in a row). */
	const struct pod *aff_pod;
	uint64_t aff_epoch;
	/* The rewrite bucket: tokens at bucket_ms. */
	uint64_t tokens, bucket_ms;
};

static int pod_cmp(const struct pod *a, const struct pod *b)
{
	return strcmp(a->key, b->key);
}

static int node_cmp(const struct node_entry *a, const struct node_entry *b)
{
	return strcmp(a->n.spec.name, b->n.spec.name);
}

static int owner_cmp(const struct owner *a, const struct owner *b)
{
	return strcmp(a->uid, b->uid);
}

/* libbsd leaves BSD's __unused undefined: spell the attribute out. */
RB_GENERATE_INTERNAL(pod_tree, pod, rb, pod_cmp, static __attribute__((unused)))
RB_GENERATE_INTERNAL(node_tree, node_entry, rb, node_cmp, static __attribute__((unused)))
RB_GENERATE_INTERNAL(owner_tree, owner, rb, owner_cmp, static __attribute__((unused)))

/* ------------------------------------------------------------ lookups */

static struct pod *pod_find(struct sched *s, const char *key)
{
	struct pod probe;

	probe.key = key;
	return RB_FIND(pod_tree, &s->pods, &probe);
}

static struct node_entry *node_find(struct sched *s, const char *name)
{
	struct node_entry probe;

	probe.n.spec.name = (char *)name;
	return RB_FIND(node_tree, &s->nodes, &probe);
}

/* The entry of node @name, created (without a Node object) if needed. */
static struct node_entry *node_get(struct sched *s, const char *name)
{
	struct node_entry *ne = node_find(s, name);

	if (ne != NULL)
		return ne;
	if (s->n_slots == s->cap_slots) {
		size_t cap = s->cap_slots > 0 ? 2 * s->cap_slots : 64;
		struct node_entry **slots = realloc(s->slots, cap * sizeof(*slots));
		if (slots == NULL)
			return NULL;
		s->slots = slots;
		struct node_entry **feasible = realloc(s->feasible, cap * sizeof(*feasible));
		if (feasible == NULL)
			return NULL;
		s->feasible = feasible;
		s->cap_slots = cap;
	}
	ne = calloc(1, sizeof(*ne));
	if (ne == NULL)
		return NULL;
	ne->n.spec.name = strdup(name);
	ne->n.spec.labels = json_object();
	if (ne->n.spec.name == NULL || ne->n.spec.labels == NULL) {
		sched__node_clear(&ne->n.spec);
		free(ne);
		return NULL;
	}
	ne->n.idx = (uint32_t)s->n_slots;
	s->slots[s->n_slots++] = ne;
	RB_INSERT(node_tree, &s->nodes, ne);
	return ne;
}

static struct owner *owner_find(struct sched *s, const char *uid)
{
	struct owner probe;

	probe.uid = uid;
	return RB_FIND(owner_tree, &s->owners, &probe);
}

static struct owner *owner_get(struct sched *s, const char *uid)
{
	struct owner *o = owner_find(s, uid);
	size_t len = strlen(uid);

	if (o != NULL)
		return o;
	o = calloc(1, sizeof(*o) + len + 1);
	if (o == NULL)
		return NULL;
	memcpy(o->buf, uid, len + 1);
	o->uid = o->buf;
	RB_INSERT(owner_tree, &s->owners, o);
	return o;
}

static uint32_t owner_count(const struct owner *o, uint32_t idx)
{
	return o != NULL && idx < o->n_counts ? o->counts[idx] : 0;
}

/* ------------------------------------------------------------ accounting */

/* Room may have appeared: forget cached verdicts, retry the pods that
 * did not fit (one queued key for any number of changes). */
static void retry_soon(struct sched *s)
{
	s->gen++;
	if (s->retry_pending || TAILQ_EMPTY(&s->unsched))
		return;
	if (ctrl_enqueue(s->c, RETRY_KEY) == 0)
		s->retry_pending = true;
}

static void unsched_remove(struct sched *s, struct pod *p)
{
	if (!p->unsched)
		return;
	TAILQ_REMOVE(&s->unsched, p, unsched_link);
	p->unsched = false;
}

/* Counts @p on @ne. Errors: -ENOMEM (nothing counted). */
static int account(struct sched *s, struct pod *p, struct node_entry *ne)
{
	struct sched_node *n = &ne->n;
	struct owner *o = NULL;

	if (p->spec.owner_uid != NULL) {
		o = owner_get(s, p->spec.owner_uid);
		if (o == NULL)
			return -ENOMEM;
		if (n->idx >= o->n_counts) {
			size_t cap = s->cap_slots > n->idx ? s->cap_slots : n->idx + 1;
			uint32_t *counts = realloc(o->counts, cap * sizeof(*counts));
			if (counts == NULL)
				goto oom;
			memset(counts + o->n_counts, 0, (cap - o->n_counts) * sizeof(*counts));
			o->counts = counts;
			o->n_counts = cap;
		}
	}
	if (p->spec.n_ports > 0) {
		if (n->n_ports + p->spec.n_ports > n->cap_ports) {
			size_t cap = 2 * (n->n_ports + p->spec.n_ports);
			struct sched_port *ports = realloc(n->ports, cap * sizeof(*ports));
			if (ports == NULL)
				goto oom;
			n->ports = ports;
			n->cap_ports = cap;
		}
		memcpy(n->ports + n->n_ports, p->spec.ports, p->spec.n_ports * sizeof(*n->ports));
		n->n_ports += p->spec.n_ports;
	}
	if (o != NULL) {
		o->counts[n->idx]++;
		o->pods++;
	}
	n->used.cpu += p->spec.req.cpu;
	n->used.mem += p->spec.req.mem;
	n->used.pods += p->spec.req.pods;
	n->used_nz.cpu += p->spec.req_nz.cpu;
	n->used_nz.mem += p->spec.req_nz.mem;
	n->used_nz.pods += p->spec.req_nz.pods;
	p->node = ne;
	p->owner = o;
	return 0;
oom:
	if (o != NULL && o->pods == 0) {
		RB_REMOVE(owner_tree, &s->owners, o);
		free(o->counts);
		free(o);
	}
	return -ENOMEM;
}

static void unaccount(struct sched *s, struct pod *p)
{
	struct node_entry *ne = p->node;
	struct sched_node *n;
	struct owner *o = p->owner;

	if (ne == NULL)
		return;
	s->gen++; /* room freed */
	n = &ne->n;
	n->used.cpu -= p->spec.req.cpu;
	n->used.mem -= p->spec.req.mem;
	n->used.pods -= p->spec.req.pods;
	n->used_nz.cpu -= p->spec.req_nz.cpu;
	n->used_nz.mem -= p->spec.req_nz.mem;
	n->used_nz.pods -= p->spec.req_nz.pods;
	for (size_t i = 0; i < p->spec.n_ports; i++) {
		for (size_t j = 0; j < n->n_ports; j++) {
			if (n->ports[j].port == p->spec.ports[i].port &&
			    n->ports[j].proto == p->spec.ports[i].proto &&
			    strcmp(n->ports[j].ip, p->spec.ports[i].ip) == 0) {
				n->ports[j] = n->ports[--n->n_ports];
				break;
			}
		}
	}
	if (o != NULL) {
		if (n->idx < o->n_counts && o->counts[n->idx] > 0)
			o->counts[n->idx]--;
		if (--o->pods == 0) {
			RB_REMOVE(owner_tree, &s->owners, o);
			free(o->counts);
			free(o);
		}
	}
	p->node = NULL;
	p->owner = NULL;
}

static struct pod *pod_new(struct sched *s, const struct ctrl_event *ev)
{
	size_t kl = strlen(ev->key), nl = strlen(ev->ns), ml = strlen(ev->name);
	struct pod *p = calloc(1, sizeof(*p) + kl + nl + ml + 3);

	if (p == NULL)
		return NULL;
	memcpy(p->buf, ev->key, kl + 1);
	memcpy(p->buf + kl + 1, ev->ns, nl + 1);
	memcpy(p->buf + kl + nl + 2, ev->name, ml + 1);
	p->key = p->buf;
	p->ns = p->buf + kl + 1;
	p->name = p->buf + kl + nl + 2;
	RB_INSERT(pod_tree, &s->pods, p);
	return p;
}

/* @p's constraints change or go: its cached verdict cannot stand for
 * others. */
static void neg_forget(struct sched *s, const struct pod *p)
{
	if (s->neg_pod == p)
		s->neg_pod = NULL;
	if (s->aff_pod == p)
		s->aff_pod = NULL;
}

/* Whether @p passes every filter on @ne, the NodeAffinity verdict taken
 * from the node's memory when @p's constraints are those it holds. */
static bool fits(struct sched *s, const struct pod *p, struct node_entry *ne)
{
	int aff = -1;

	if (p->spec.n_selector > 0 || p->spec.has_affinity) {
		if (ne->aff_epoch != s->aff_epoch) {
			ne->aff_ok = sched__fit_affinity(&p->spec, &ne->n.spec);
			ne->aff_epoch = s->aff_epoch;
		}
		aff = ne->aff_ok;
	}
	return sched__filter_with(&p->spec, &ne->n, aff, NULL) == 0;
}

static void pod_free(struct sched *s, struct pod *p)
{
	neg_forget(s, p);
	unaccount(s, p);
	unsched_remove(s, p);
	RB_REMOVE(pod_tree, &s->pods, p);
	sched__pod_clear(&p->spec);
	free(p->last_msg);
	free(p);
}

/* ------------------------------------------------------------ events */

static bool terminal_phase(const char *phase, size_t len)
{
	return (len == 9 && memcmp(phase, "Succeeded", 9) == 0) ||
	       (len == 6 && memcmp(phase, "Failed", 6) == 0);
}

static bool str_is(const char *a, size_t len, const char *b)
{
	return strlen(b) == len && memcmp(a, b, len) == 0;
}

/* The message of a PodScheduled=False condition already on the pod, so
 * that a restarted scheduler does not repeat its event. */
static char *unschedulable_message(const json_t *pod)
{
	const json_t *cond;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(pod, "status"), "conditions"), i, cond)
	{
		const char *type = ctrl_str(cond, "type");
		const char *status = ctrl_str(cond, "status");
		const char *msg = ctrl_str(cond, "message");
		if (type != NULL && strcmp(type, "PodScheduled") == 0 && status != NULL &&
		    strcmp(status, "False") == 0 && msg != NULL)
			return strdup(msg);
	}
	return NULL;
}

/* Our bind landed: the Scheduled event, as kube-scheduler records once
 * the binding succeeded. Built from a few fields of the stored pod. */
static void confirmed(struct sched *s, struct pod *p, const struct ctrl_event *ev)
{
	const char *uid = NULL;
	size_t uid_len = 0;
	char rv[24], uid_buf[64];

	p->state = POD_BOUND;
	if (codec_msgpack_get_str(ev->val, ev->val_len, "metadata.uid", &uid, &uid_len) != 0 ||
	    uid_len >= sizeof(uid_buf))
		uid_len = 0;
	memcpy(uid_buf, uid_len > 0 ? uid : "", uid_len);
	uid_buf[uid_len] = '\0';
	snprintf(rv, sizeof(rv), "%" PRIu64, ev->mod_rev);
	ctrl_event_about(s->c, "v1", "Pod", p->ns, p->name, uid_buf, rv, "Normal", "Scheduled",
			 "Successfully assigned %s/%s to %s", p->ns, p->name,
			 p->node->n.spec.name);
}

static void pod_bound(struct sched *s, struct pod *p, const char *node_name,
		      const struct ctrl_event *ev)
{
	struct node_entry *ne = p->node;

	if (ne != NULL && strcmp(ne->n.spec.name, node_name) == 0) {
		if (p->state == POD_ASSUMED)
			confirmed(s, p, ev);
		p->state = POD_BOUND;
		return;
	}
	unaccount(s, p);
	ne = node_get(s, node_name);
	if (ne == NULL || account(s, p, ne) != 0) {
		ctrl_log(s->c, LOG_LEVEL_ERROR, "out of memory: pod %s not counted", p->key);
		pod_free(s, p);
		return;
	}
	p->state = POD_BOUND;
	unsched_remove(s, p);
}

static void pod_event_full(struct sched *s, struct pod *p, const struct ctrl_event *ev)
{
	json_t *pod = ctrl_decode(ev->val, ev->val_len, 0);
	const char *node_name, *phase, *sched_name;
	struct sched_pod_spec spec;
	bool ours;

	if (pod == NULL) {
		if (p != NULL)
			pod_free(s, p);
		return;
	}
	node_name = ctrl_str(pod, "spec.nodeName");
	phase = ctrl_str(pod, "status.phase");
	if (phase != NULL && terminal_phase(phase, strlen(phase))) {
		if (p != NULL) {
			if (p->node != NULL)
				retry_soon(s);
			pod_free(s, p);
		}
		goto out;
	}
	if (node_name != NULL && *node_name != '\0') {
		if (p == NULL) {
			p = pod_new(s, ev);
			if (p == NULL || sched__pod_parse(pod, false, &p->spec) != 0) {
				ctrl_log(s->c, LOG_LEVEL_ERROR, "out of memory: pod %s not counted",
					 ev->key);
				if (p != NULL)
					pod_free(s, p);
				goto out;
			}
		} else if (p->state == POD_PENDING) {
			neg_forget(s, p);
			sched__pod_clear_constraints(&p->spec);
		}
		pod_bound(s, p, node_name, ev);
		goto out;
	}
	sched_name = ctrl_str(pod, "spec.schedulerName");
	ours = (sched_name == NULL || *sched_name == '\0' ||
		strcmp(sched_name, SCHEDULER_NAME) == 0) &&
	       ctrl_str(pod, "metadata.deletionTimestamp") == NULL &&
	       json_array_size(json_object_get(json_object_get(pod, "spec"), "schedulingGates")) == 0;
	if (!ours) {
		if (p != NULL)
			pod_free(s, p);
		goto out;
	}
	if (p != NULL && p->state == POD_ASSUMED)
		goto out; /* our bind is in flight: sync sorts it out */
	if (sched__pod_parse(pod, true, &spec) != 0) {
		ctrl_log(s->c, LOG_LEVEL_ERROR, "out of memory: pod %s not scheduled", ev->key);
		goto out;
	}
	if (p == NULL) {
		p = pod_new(s, ev);
		if (p == NULL) {
			sched__pod_clear(&spec);
			goto out;
		}
		p->last_msg = unschedulable_message(pod);
		p->state = POD_PENDING;
		p->spec = spec;
		ctrl_enqueue(s->c, p->key);
		goto out;
	}
	/* Still pending (tolerations may have changed): the next attempt,
	 * already due, uses the new spec. */
	unaccount(s, p);
	if (!sched__same_constraints(&p->spec, &spec))
		neg_forget(s, p);
	sched__pod_clear(&p->spec);
	p->spec = spec;
	if (p->state != POD_PENDING) {
		p->state = POD_PENDING;
		ctrl_enqueue(s->c, p->key);
	}
out:
	json_decref(pod);
}

static void pod_event(struct sched *s, const struct ctrl_event *ev)
{
	struct pod *p = pod_find(s, ev->key);
	const char *node = "", *phase = NULL;
	size_t node_len = 0, phase_len = 0;
	const void *v;
	size_t vlen;

	if (ev->type == CTRL_DELETED) {
		if (p != NULL) {
			if (p->node != NULL)
				retry_soon(s);
			pod_free(s, p);
		}
		return;
	}
	/* Most events are status updates of bound pods, or our own writes:
	 * answer those from a few fields, without decoding the pod. */
	if (p != NULL) {
		if (codec_msgpack_get_str(ev->val, ev->val_len, "spec.nodeName", &node, &node_len) != 0) {
			node = "";
			node_len = 0;
		}
		if (codec_msgpack_get_str(ev->val, ev->val_len, "status.phase", &phase, &phase_len) != 0)
			phase = NULL;
		bool terminal = phase != NULL && terminal_phase(phase, phase_len);
		if (p->node != NULL && p->state != POD_PENDING && node_len > 0 && !terminal &&
		    str_is(node, node_len, p->node->n.spec.name)) {
			if (p->state == POD_ASSUMED)
				confirmed(s, p, ev);
			return;
		}
		if (p->state == POD_PENDING && node_len == 0 && !terminal &&
		    codec_msgpack_get(ev->val, ev->val_len, "metadata.deletionTimestamp", &v,
				      &vlen) == -ENOENT &&
		    codec_msgpack_get(ev->val, ev->val_len, "spec.tolerations", &v, &vlen) != 0)
			return;
	}
	pod_event_full(s, p, ev);
}

static void node_event(struct sched *s, const struct ctrl_event *ev)
{
	struct node_entry *ne = node_find(s, ev->name);
	struct sched_node_spec spec;
	json_t *node;

	if (ev->type == CTRL_DELETED) {
		/* Keep the accounting: pods bound to it still exist and count
		 * again if a node of that name comes back. */
		if (ne != NULL && ne->n.exists) {
			ne->n.exists = false;
			s->n_existing--;
			s->gen++; /* the verdicts count the nodes */
		}
		return;
	}
	node = ctrl_decode(ev->val, ev->val_len, 0);
	if (node == NULL)
		return;
	if (sched__node_parse(node, &spec) != 0) {
		json_decref(node);
		ctrl_log(s->c, LOG_LEVEL_ERROR, "out of memory: node %s ignored", ev->name);
		return;
	}
	json_decref(node);
	/* The store key's name wins over anything in the value. */
	free(spec.name);
	spec.name = strdup(ev->name);
	if (spec.name == NULL || (ne == NULL && (ne = node_get(s, ev->name)) == NULL)) {
		sched__node_clear(&spec);
		ctrl_log(s->c, LOG_LEVEL_ERROR, "out of memory: node %s ignored", ev->name);
		return;
	}
	if (ne->n.exists && sched__node_equal(&ne->n.spec, &spec)) {
		sched__node_clear(&spec); /* a heartbeat: nothing a filter reads */
		return;
	}
	if (!ne->n.exists) {
		ne->n.exists = true;
		s->n_existing++;
	}
	/* Same name: the tree order holds. */
	sched__node_clear(&ne->n.spec);
	ne->n.spec = spec;
	ne->aff_epoch = 0; /* labels may have changed */
	retry_soon(s);
}

static void scheduler_on_event(struct ctrl *c, const struct ctrl_event *ev)
{
	struct sched *s = ctrl_priv(c);

	if (s == NULL)
		return;
	if (ev->kind == s->pod_kind)
		pod_event(s, ev);
	else if (ev->kind == s->node_kind)
		node_event(s, ev);
}

/* ------------------------------------------------------------ scheduling */

static uint64_t backoff_ms(const struct pod *p)
{
	unsigned shift = p->attempts > 1 ? p->attempts - 1 : 0;
	if (shift > 4)
		return BACKOFF_MAX_MS;
	uint64_t ms = (uint64_t)BACKOFF_MIN_MS << shift;
	return ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms;
}

/* A small generator for tie breaks, seeded once per pod from ctrl_random
 * (splitmix64): the environment's randomness may be a system call. */
static uint64_t next_random(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* One token of the rewrite bucket, if any. */
static bool take_token(struct sched *s, uint64_t now)
{
	if (now > s->bucket_ms) {
		uint64_t add = (now - s->bucket_ms) * REWRITE_RATE / 1000;
		if (add > 0) {
			s->tokens = s->tokens + add > REWRITE_BURST ? REWRITE_BURST : s->tokens + add;
			s->bucket_ms = now;
		}
	}
	if (s->tokens == 0)
		return false;
	s->tokens--;
	return true;
}

/* @msg (owned; NULL on OOM): the pod fits nowhere. */
static void unschedulable(struct sched *s, struct pod *p, char *msg)
{
	uint64_t now = ctrl_now_ms(s->c);
	json_t *pod;

	p->attempts++;
	if (!p->unsched) {
		TAILQ_INSERT_TAIL(&s->unsched, p, unsched_link);
		p->unsched = true;
	}
	ctrl_enqueue_after(s->c, p->key, backoff_ms(p));
	/* The same verdict as last time: the condition says it already and
	 * the event was recorded (spares a decode per retry). The same
	 * reasons with other counts are written again only after a while:
	 * while nodes come and fill, every retry would rewrite every pod. */
	if (msg == NULL || (p->last_msg != NULL && strcmp(p->last_msg, msg) == 0) ||
	    (p->last_msg != NULL && now - p->msg_ms < MSG_REFRESH_MS &&
	     sched__same_reasons(p->last_msg, msg)) ||
	    (p->last_msg != NULL && !take_token(s, now))) {
		free(msg); /* a later retry writes it, once there is a token */
		return;
	}
	pod = ctrl_get(s->c, s->pod_kind, p->ns, p->name, NULL);
	if (pod == NULL) {
		free(msg);
		return;
	}
	ctrl_log(s->c, LOG_LEVEL_DEBUG, "pod %s/%s: %s", p->ns, p->name, msg);
	if (ctrl_set_condition(s->c, pod, "PodScheduled", "False", "Unschedulable", msg))
		ctrl_update(s->c, s->pod_kind, pod, NULL);
	ctrl_event(s->c, pod, "Warning", "FailedScheduling", "%s", msg);
	free(p->last_msg);
	p->last_msg = msg;
	p->msg_ms = now;
	json_decref(pod);
}

static void bind(struct sched *s, struct pod *p, struct node_entry *ne)
{
	struct store_kv kv;
	const char *name = ne->n.spec.name;
	int rv;

	if (store_get(ctrl_store(s->c), p->key, strlen(p->key), &kv) != 0)
		return; /* deleted meanwhile: its event follows */
	rv = ctrl_bind(s->c, p->ns, p->name, kv.mod_rev, name, p->key);
	if (rv == -EALREADY || rv == -ENOENT)
		return; /* bound by someone else, or gone: its event follows */
	if (rv != 0) {
		/* Leadership lost: every pending pod would say so; the manager
		 * stops us soon. */
		ctrl_log(s->c, rv == -EREMOTE || rv == -ESHUTDOWN ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN,
			 "pod %s/%s: cannot bind to %s: %s", p->ns, p->name, name, strerror(-rv));
		p->attempts++;
		ctrl_enqueue_after(s->c, p->key, backoff_ms(p));
		return;
	}
	/* Assume: the next pod must see this one's requests on the node. */
	if (account(s, p, ne) != 0)
		ctrl_log(s->c, LOG_LEVEL_ERROR, "out of memory: pod %s not assumed", p->key);
	p->state = POD_ASSUMED;
	p->bind_rev = kv.mod_rev;
	unsched_remove(s, p);
}

/* How many feasible nodes to find before scoring: kube-scheduler's
 * percentageOfNodesToScore default: every node up to SAMPLE_MIN_NODES;
 * beyond, 50% - 1% per 125 nodes, at least 5%, and never fewer than
 * SAMPLE_MIN_NODES (420 of 1,000 nodes, 500 of 5,000). A pod that fits
 * nowhere still looks at every node. */
static size_t feasible_to_find(size_t n_nodes)
{
	if (n_nodes <= SAMPLE_MIN_NODES)
		return n_nodes;
	size_t pct = n_nodes / 125 < 45 ? 50 - n_nodes / 125 : 5;
	size_t n = n_nodes * pct / 100;
	return n > SAMPLE_MIN_NODES ? n : SAMPLE_MIN_NODES;
}

/* Why @p fits on no node: every node's first failing filter, counted
 * into kube-scheduler's message (malloc'ed; NULL on OOM). Only for a
 * pod that fits nowhere, so the search itself keeps no tally. */
static char *diagnose(struct sched *s, const struct pod *p)
{
	struct sched_diag diag;
	char *msg = NULL;

	sched__diag_init(&diag);
	diag.n_nodes = s->n_existing;
	for (size_t i = 0; i < s->n_slots; i++) {
		const struct sched_taint *taint = NULL;
		unsigned bits;

		if (!s->slots[i]->n.exists)
			continue;
		bits = sched__filter(&p->spec, &s->slots[i]->n, &taint);
		if (bits != 0 && sched__diag_add(&diag, bits, taint) != 0)
			goto out;
	}
	msg = sched__diag_message(&diag);
out:
	sched__diag_clear(&diag);
	return msg;
}

static void schedule(struct sched *s, struct pod *p)
{
	size_t n_feasible = 0, i;
	uint32_t max_count = 0;
	struct owner *o = p->spec.owner_uid != NULL ? owner_find(s, p->spec.owner_uid) : NULL;

	size_t want = feasible_to_find(s->n_existing), start = s->next_start, seen;

	/* Nothing made room since a pod held to the same filters fit
	 * nowhere: neither does this one. */
	if (s->neg_pod != NULL && s->neg_gen == s->gen &&
	    (s->neg_pod == p || sched__same_constraints(&s->neg_pod->spec, &p->spec))) {
		unschedulable(s, p, s->neg_msg != NULL ? strdup(s->neg_msg) : NULL);
		return;
	}
	if (s->aff_pod != p &&
	    (s->aff_pod == NULL || !sched__same_constraints(&s->aff_pod->spec, &p->spec))) {
		s->aff_pod = p;
		s->aff_epoch++;
	}
	/* From a rotating start, as kube-scheduler does, so that sampling
	 * in a large cluster still visits every node in turn. */
	for (seen = 0; seen < s->n_slots && n_feasible < want; seen++) {
		i = start + seen < s->n_slots ? start + seen : start + seen - s->n_slots;
		struct node_entry *ne = s->slots[i];

		if (!ne->n.exists || !fits(s, p, ne))
			continue;
		s->feasible[n_feasible++] = ne;
		uint32_t count = owner_count(o, ne->n.idx);
		if (count > max_count)
			max_count = count;
	}
	s->next_start = s->n_slots > 0 ? (start + seen) % s->n_slots : 0;
	if (n_feasible == 0) {
		char *msg = diagnose(s, p);
		free(s->neg_msg);
		s->neg_msg = msg != NULL ? strdup(msg) : NULL;
		s->neg_pod = s->neg_msg != NULL ? p : NULL;
		s->neg_gen = s->gen;
		unschedulable(s, p, msg);
		return;
	}

	/* Best total score; ties broken uniformly: each tied node draws a
	 * random key and the largest key wins (no division per node). */
	struct node_entry *best = s->feasible[0];
	if (n_feasible > 1) {
		uint64_t rnd = ctrl_random(s->c), best_key = 0;
		int64_t best_score = -1;
		for (i = 0; i < n_feasible; i++) {
			struct node_entry *ne = s->feasible[i];
			int64_t score = SCHED_WEIGHT_LEAST_ALLOCATED *
						sched__score_least_allocated(&p->spec, &ne->n) +
					SCHED_WEIGHT_SPREAD *
						sched__score_spread(owner_count(o, ne->n.idx), max_count);
			if (score < best_score)
				continue;
			uint64_t key = next_random(&rnd);
			if (score > best_score || key > best_key) {
				best_score = score;
				best_key = key;
				best = ne;
			}
		}
	}
	bind(s, p, best);
}

/* The bind write completed (the manager requeued the key) but its event
 * has not confirmed it: find out what happened from the store. */
static bool resolve_assumed(struct sched *s, struct pod *p)
{
	struct store_kv kv;
	const char *node;
	size_t len;

	if (store_get(ctrl_store(s->c), p->key, strlen(p->key), &kv) != 0)
		return false; /* deleted: its event cleans up */
	if (codec_msgpack_get_str(kv.val, kv.val_len, "spec.nodeName", &node, &len) == 0 &&
	    len > 0)
		return false; /* bound: its event is on the way */
	/* The write failed: forget the assumption. */
	unaccount(s, p);
	p->state = POD_PENDING;
	retry_soon(s);
	if (kv.mod_rev != p->bind_rev)
		return true; /* a conflict: try again at once */
	p->attempts++;
	ctrl_enqueue_after(s->c, p->key, backoff_ms(p));
	return false;
}

static void scheduler_sync(struct ctrl *c, const char *key)
{
	struct sched *s = ctrl_priv(c);
	struct pod *p, *next;

	if (s == NULL)
		return;
	if (strcmp(key, RETRY_KEY) == 0) {
		s->retry_pending = false;
		TAILQ_FOREACH_SAFE(p, &s->unsched, unsched_link, next)
		{
			ctrl_enqueue(c, p->key);
		}
		return;
	}
	p = pod_find(s, key);
	if (p == NULL)
		return;
	if (p->state == POD_ASSUMED && !resolve_assumed(s, p))
		return;
	if (p->state != POD_PENDING)
		return;
	schedule(s, p);
}

/* ------------------------------------------------------------ lifecycle */

static void scheduler_stop(struct ctrl *c)
{
	struct sched *s = ctrl_priv(c);
	struct pod *p, *pn;
	struct owner *o, *on;

	if (s == NULL)
		return;
	RB_FOREACH_SAFE(p, pod_tree, &s->pods, pn)
	{
		pod_free(s, p);
	}
	RB_FOREACH_SAFE(o, owner_tree, &s->owners, on)
	{
		RB_REMOVE(owner_tree, &s->owners, o);
		free(o->counts);
		free(o);
	}
	for (size_t i = 0; i < s->n_slots; i++) {
		sched__node_clear(&s->slots[i]->n.spec);
		free(s->slots[i]->n.ports);
		free(s->slots[i]);
	}
	free(s->slots);
	free(s->feasible);
	free(s->neg_msg);
	free(s);
	ctrl_set_priv(c, NULL);
}

static int scheduler_start(struct ctrl *c)
{
	struct sched *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return -ENOMEM;
	s->c = c;
	s->pod_kind = api_kind_by_resource("", "v1", "pods");
	s->node_kind = api_kind_by_resource("", "v1", "nodes");
	RB_INIT(&s->pods);
	RB_INIT(&s->nodes);
	RB_INIT(&s->owners);
	TAILQ_INIT(&s->unsched);
	s->tokens = REWRITE_BURST;
	s->bucket_ms = ctrl_now_ms(c);
	ctrl_set_priv(c, s);
	return 0;
}

const struct ctrl_ops ctrl_scheduler_ops = {
	.name = "scheduler",
	.start = scheduler_start,
	.stop = scheduler_stop,
	.on_event = scheduler_on_event,
	.sync = scheduler_sync,
};
