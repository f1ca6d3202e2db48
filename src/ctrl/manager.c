/* The controller manager: one store watch fanned out to every controller,
 * per-controller work queues with in-flight write tracking, and timers.
 * See ctrl.h for the model. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/tree.h>

#include "src/ctrl/ctrl.h"
#include "src/ctrl/internal.h"
#include "src/lib/log.h"

#define REGISTRY "/registry/"
/* Store events delivered per ctrl_manager_run() call at most: a burst of
 * applied writes (a Raft batch of thousands) is spread over loop turns
 * like the syncs are, instead of one turn dispatching all of it. */
#define DRAIN_BUDGET 1024

/* A key of one controller: queued, waiting for writes, or timed. Freed
 * when it is none of these. */
struct item {
	RB_ENTRY(item) by_key;
	RB_ENTRY(item) by_due;
	struct ctrl *c;
	struct item *qnext;
	uint64_t due; /* 0: no timer */
	uint64_t seq; /* orders equal due times */
	unsigned inflight;
	bool queued;
	bool want; /* sync asked for while writes were in flight */
	char key[];
};

static int item_key_cmp(const struct item *a, const struct item *b)
{
	return strcmp(a->key, b->key);
}

static int item_due_cmp(const struct item *a, const struct item *b)
{
	if (a->due != b->due)
		return a->due < b->due ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

RB_HEAD(item_keys, item);
RB_HEAD(item_dues, item);
/* libbsd leaves BSD's __unused undefined: spell the attribute out. */
RB_GENERATE_INTERNAL(item_keys, item, by_key, item_key_cmp, static __attribute__((unused)))
RB_GENERATE_INTERNAL(item_dues, item, by_due, item_due_cmp, static __attribute__((unused)))

struct ctrl {
	struct ctrl_manager *m;
	const struct ctrl_ops *ops;
	void *priv;
	bool started;
	struct item_keys keys;
	struct item *qhead, *qtail;
};

/* A kind by its plural (plurals are unique across the registry's groups). */
struct plural {
	const char *plural;
	const struct api_kind *kind;
};

struct ctrl_manager {
	struct ctrl_env env;
	struct ctrl_config config;
	struct store *store;
	struct ctrl *ctrls;
	size_t n;
	struct plural *plurals;
	size_t n_plurals;
	bool running;
	bool freed;        /* freed while writes were in flight */
	uint64_t epoch;    /* raised by start and stop: older writes are stale */
	uint64_t outstanding; /* env writes not completed */
	uint64_t seq;
	struct store_watch *watch;
	struct item_dues dues;
	size_t next_ctrl; /* round robin of syncs */
	struct ctrl_stats stats;
};

/* ------------------------------------------------------------ config */

void ctrl_config_init(struct ctrl_config *c)
{
	c->node_grace_ms = 40000;
	c->eviction_toleration_s = 300;
}

/* ------------------------------------------------------------ items */

static struct item *item_find(struct ctrl *c, const char *key)
{
	union {
		struct item it;
		char bytes[sizeof(struct item) + 256];
	} small;
	struct item *probe, *found;
	size_t len = strlen(key);

	if (len < 256) {
		memcpy(small.it.key, key, len + 1);
		return RB_FIND(item_keys, &c->keys, &small.it);
	}
	probe = malloc(sizeof(*probe) + len + 1);
	if (probe == NULL)
		return NULL;
	memcpy(probe->key, key, len + 1);
	found = RB_FIND(item_keys, &c->keys, probe);
	free(probe);
	return found;
}

static struct item *item_get(struct ctrl *c, const char *key)
{
	struct item *it = item_find(c, key);
	size_t len;

	if (it != NULL)
		return it;
	len = strlen(key);
	it = calloc(1, sizeof(*it) + len + 1);
	if (it == NULL)
		return NULL;
	it->c = c;
	memcpy(it->key, key, len + 1);
	RB_INSERT(item_keys, &c->keys, it);
	return it;
}

static void item_maybe_free(struct item *it)
{
	if (it->queued || it->inflight > 0 || it->due != 0)
		return;
	RB_REMOVE(item_keys, &it->c->keys, it);
	free(it);
}

static void item_push(struct item *it)
{
	struct ctrl *c = it->c;

	if (it->queued)
		return;
	if (it->inflight > 0) {
		it->want = true;
		return;
	}
	it->queued = true;
	it->qnext = NULL;
	if (c->qtail != NULL)
		c->qtail->qnext = it;
	else
		c->qhead = it;
	c->qtail = it;
}

static void item_untime(struct item *it)
{
	if (it->due == 0)
		return;
	RB_REMOVE(item_dues, &it->c->m->dues, it);
	it->due = 0;
}

static void ctrl_clear(struct ctrl *c)
{
	struct item *it, *next;

	for (it = RB_MIN(item_keys, &c->keys); it != NULL; it = next) {
		next = RB_NEXT(item_keys, &c->keys, it);
		item_untime(it);
		RB_REMOVE(item_keys, &c->keys, it);
		free(it);
	}
	c->qhead = c->qtail = NULL;
}

static void wakeup(struct ctrl_manager *m)
{
	if (m->env.wakeup != NULL)
		m->env.wakeup(m->env.data);
}

int ctrl_enqueue(struct ctrl *c, const char *key)
{
	struct item *it;

	if (!c->m->running || !c->started)
		return 0;
	it = item_get(c, key);
	if (it == NULL)
		return -ENOMEM;
	item_untime(it);
	bool was_empty = c->qhead == NULL;
	item_push(it);
	if (was_empty && it->queued)
		wakeup(c->m);
	return 0;
}

int ctrl_enqueue_after(struct ctrl *c, const char *key, uint64_t delay_ms)
{
	struct ctrl_manager *m = c->m;
	struct item *it, *first;
	uint64_t due;

	if (delay_ms == 0)
		return ctrl_enqueue(c, key);
	if (!m->running || !c->started)
		return 0;
	it = item_get(c, key);
	if (it == NULL)
		return -ENOMEM;
	if (it->queued)
		return 0;
	due = m->env.now_ms(m->env.data) + delay_ms;
	if (it->due != 0 && it->due <= due)
		return 0;
	item_untime(it);
	it->due = due;
	it->seq = ++m->seq;
	RB_INSERT(item_dues, &m->dues, it);
	first = RB_MIN(item_dues, &m->dues);
	if (first == it)
		wakeup(m);
	return 0;
}

/* ------------------------------------------------------------ manager */

static int plural_cmp(const void *a, const void *b)
{
	return strcmp(((const struct plural *)a)->plural, ((const struct plural *)b)->plural);
}

int ctrl_manager_new(const struct ctrl_env *env, const struct ctrl_config *config,
		     struct store *store, const struct ctrl_ops *const *ops,
		     struct ctrl_manager **ret)
{
	struct ctrl_manager *m;
	size_t i, n = 0;

	while (ops[n] != NULL)
		n++;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->env = *env;
	if (config != NULL)
		m->config = *config;
	else
		ctrl_config_init(&m->config);
	m->store = store;
	m->n = n;
	m->ctrls = calloc(n > 0 ? n : 1, sizeof(*m->ctrls));
	m->n_plurals = api_kind_count();
	m->plurals = calloc(m->n_plurals > 0 ? m->n_plurals : 1, sizeof(*m->plurals));
	if (m->ctrls == NULL || m->plurals == NULL) {
		free(m->ctrls);
		free(m->plurals);
		free(m);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		m->ctrls[i].m = m;
		m->ctrls[i].ops = ops[i];
		RB_INIT(&m->ctrls[i].keys);
	}
	for (i = 0; i < m->n_plurals; i++) {
		m->plurals[i].kind = api_kind_at(i);
		m->plurals[i].plural = m->plurals[i].kind->plural;
	}
	qsort(m->plurals, m->n_plurals, sizeof(*m->plurals), plural_cmp);
	RB_INIT(&m->dues);
	*ret = m;
	return 0;
}

static const struct api_kind *kind_of_plural(const struct ctrl_manager *m, const char *p,
					     size_t len)
{
	size_t lo = 0, hi = m->n_plurals;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strncmp(m->plurals[mid].plural, p, len);
		if (c == 0 && m->plurals[mid].plural[len] != '\0')
			c = 1;
		if (c == 0)
			return m->plurals[mid].kind;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void watch_cb(struct store_watch *w, void *data)
{
	(void)w;
	wakeup(data);
}

/* Splits a store key into an event's kind, namespace and name (written
 * into @buf); false for keys that are not API objects. */
static bool parse_key(const struct ctrl_manager *m, const char *key, size_t key_len,
		      struct ctrl_event *ev, char *buf, size_t size)
{
	const char *p, *slash;
	size_t rest;

	if (key_len >= size || key_len <= sizeof(REGISTRY) - 1 ||
	    memcmp(key, REGISTRY, sizeof(REGISTRY) - 1) != 0)
		return false;
	memcpy(buf, key, key_len);
	buf[key_len] = '\0';
	p = buf + sizeof(REGISTRY) - 1;
	slash = strchr(p, '/');
	if (slash == NULL)
		return false;
	ev->kind = kind_of_plural(m, p, (size_t)(slash - p));
	if (ev->kind == NULL)
		return false;
	p = slash + 1;
	rest = strlen(p);
	if (ev->kind->namespaced) {
		slash = strchr(p, '/');
		if (slash == NULL || rest == 0)
			return false;
		/* The namespace and name go after the key in @buf. */
		size_t ns_len = (size_t)(slash - p);
		if (key_len + 1 + rest + 1 > size)
			return false;
		char *ns = buf + key_len + 1;
		memcpy(ns, p, ns_len);
		ns[ns_len] = '\0';
		ev->ns = ns;
		ev->name = slash + 1;
		if (ev->name[0] == '\0' || strchr(ev->name, '/') != NULL)
			return false;
	} else {
		ev->ns = NULL;
		ev->name = p;
		if (rest == 0 || strchr(p, '/') != NULL)
			return false;
	}
	ev->key = buf;
	return true;
}

static void dispatch(struct ctrl_manager *m, const struct ctrl_event *ev)
{
	size_t i;

	m->stats.events++;
	for (i = 0; i < m->n && m->running; i++) {
		struct ctrl *c = &m->ctrls[i];
		if (c->started && c->ops->on_event != NULL)
			c->ops->on_event(c, ev);
	}
}

struct replay {
	struct ctrl_manager *m;
	char *buf;
	size_t size;
};

static int replay_cb(const struct store_kv *kv, void *data)
{
	struct replay *r = data;
	struct ctrl_event ev = {0};

	if (!parse_key(r->m, kv->key, kv->key_len, &ev, r->buf, r->size))
		return 0;
	ev.type = CTRL_ADDED;
	ev.val = kv->val;
	ev.val_len = kv->val_len;
	ev.mod_rev = kv->mod_rev;
	dispatch(r->m, &ev);
	return r->m->running ? 0 : 1;
}

int ctrl_manager_start(struct ctrl_manager *m)
{
	char buf[1024];
	struct replay r = {m, buf, sizeof(buf)};
	size_t i;
	int rv;

	if (m->running)
		return 0;
	/* From now on: everything applied after the replay below. */
	rv = store_watch_new(m->store, REGISTRY, sizeof(REGISTRY) - 1, store_revision(m->store),
			     watch_cb, m, &m->watch);
	if (rv != 0)
		return rv;
	m->epoch++;
	m->running = true;
	for (i = 0; i < m->n; i++) {
		struct ctrl *c = &m->ctrls[i];
		c->priv = NULL;
		rv = c->ops->start != NULL ? c->ops->start(c) : 0;
		if (rv != 0) {
			log_error("controller %s: cannot start: %s", c->ops->name, strerror(-rv));
			continue;
		}
		c->started = true;
	}
	log_info("controllers started (%zu)", m->n);
	store_range(m->store, REGISTRY, sizeof(REGISTRY) - 1, NULL, 0, 0, replay_cb, &r, NULL);
	wakeup(m);
	return 0;
}

void ctrl_manager_stop(struct ctrl_manager *m)
{
	size_t i;

	if (!m->running)
		return;
	m->running = false;
	m->epoch++;
	store_watch_free(m->watch);
	m->watch = NULL;
	for (i = 0; i < m->n; i++) {
		struct ctrl *c = &m->ctrls[i];
		if (c->started && c->ops->stop != NULL)
			c->ops->stop(c);
		c->started = false;
		c->priv = NULL;
		ctrl_clear(c);
	}
	log_info("controllers stopped");
}

bool ctrl_manager_running(const struct ctrl_manager *m)
{
	return m->running;
}

void ctrl_manager_free(struct ctrl_manager *m)
{
	if (m == NULL)
		return;
	ctrl_manager_stop(m);
	if (m->outstanding > 0) {
		/* Freed by the last write's completion. */
		m->freed = true;
		return;
	}
	free(m->ctrls);
	free(m->plurals);
	free(m);
}

/* Delivers the store's pending events, DRAIN_BUDGET at most (*@ret_more
 * then set). False when the watch died (its history was compacted): the
 * manager restarts from a fresh replay. */
static bool drain_events(struct ctrl_manager *m, bool *ret_more)
{
	struct store_event se;
	struct ctrl_event ev;
	char buf[1024];
	unsigned n = 0;
	int rv = -EAGAIN;

	*ret_more = false;
	while (m->running) {
		if (n == DRAIN_BUDGET) {
			*ret_more = true;
			return true;
		}
		if ((rv = store_watch_next(m->watch, &se)) != 0)
			break;
		n++;
		memset(&ev, 0, sizeof(ev));
		if (!parse_key(m, se.kv.key, se.kv.key_len, &ev, buf, sizeof(buf)))
			continue;
		ev.type = se.type == STORE_EVENT_DELETE ? CTRL_DELETED
			  : se.created			 ? CTRL_ADDED
							 : CTRL_MODIFIED;
		ev.val = se.kv.val;
		ev.val_len = se.kv.val_len;
		ev.mod_rev = se.kv.mod_rev;
		dispatch(m, &ev);
	}
	return !m->running || rv == -EAGAIN;
}

bool ctrl_manager_run(struct ctrl_manager *m, unsigned budget)
{
	uint64_t now;
	struct item *it;
	unsigned done = 0;
	size_t i, idle;
	bool more_events;

	if (!m->running)
		return false;
	if (!drain_events(m, &more_events)) {
		log_warn("controllers: the store's history moved past them: restarting");
		ctrl_manager_stop(m);
		ctrl_manager_start(m);
		return true;
	}
	now = m->env.now_ms(m->env.data);
	while ((it = RB_MIN(item_dues, &m->dues)) != NULL && it->due <= now) {
		item_untime(it);
		item_push(it);
		item_maybe_free(it);
	}
	/* Round robin over the controllers, one key each per turn. */
	idle = 0;
	while (m->running && idle < m->n && (budget == 0 || done < budget)) {
		struct ctrl *c = &m->ctrls[m->next_ctrl];
		m->next_ctrl = (m->next_ctrl + 1) % m->n;
		it = c->qhead;
		if (it == NULL || !c->started) {
			idle++;
			continue;
		}
		idle = 0;
		c->qhead = it->qnext;
		if (c->qhead == NULL)
			c->qtail = NULL;
		it->queued = false;
		it->qnext = NULL;
		/* The item may be freed by the sync (never: it is only freed
		 * here or on stop), so keep the key stable. */
		m->stats.syncs++;
		done++;
		it->inflight++; /* pins the item during the sync */
		c->ops->sync(c, it->key);
		if (!m->running)
			return false;
		it->inflight--;
		if (it->inflight == 0 && it->want) {
			it->want = false;
			item_push(it);
		}
		item_maybe_free(it);
	}
	if (!m->running)
		return false;
	if (more_events)
		return true;
	for (i = 0; i < m->n; i++) {
		if (m->ctrls[i].qhead != NULL)
			return true;
	}
	return false;
}

uint64_t ctrl_manager_next(const struct ctrl_manager *m)
{
	struct item *it = RB_MIN(item_dues, &((struct ctrl_manager *)m)->dues);

	return it != NULL ? it->due : UINT64_MAX;
}

void ctrl_manager_stats(const struct ctrl_manager *m, struct ctrl_stats *ret)
{
	*ret = m->stats;
}

/* ------------------------------------------------------------ writes */

struct write_ctx {
	struct ctrl_manager *m;
	struct ctrl *c;
	uint64_t epoch;
	char key[]; /* "" when nothing is requeued */
};

static void write_done(void *arg, int status, const struct store_result *res)
{
	struct write_ctx *w = arg;
	struct ctrl_manager *m = w->m;
	struct item *it;

	m->outstanding--;
	if (m->freed) {
		if (m->outstanding == 0) {
			free(m->ctrls);
			free(m->plurals);
			free(m);
		}
		free(w);
		return;
	}
	if (status != 0) {
		m->stats.write_errors++;
		log_debug("controller %s: write failed: %s", w->c->ops->name, strerror(-status));
	} else if (res != NULL && res->status != 0) {
		m->stats.conflicts++;
	}
	if (m->running && w->epoch == m->epoch && w->key[0] != '\0') {
		it = item_find(w->c, w->key);
		if (it != NULL && it->inflight > 0) {
			it->inflight--;
			if (it->inflight == 0) {
				bool was_empty = w->c->qhead == NULL;
				it->want = false;
				item_push(it);
				if (was_empty)
					wakeup(m);
			}
		}
	}
	free(w);
}

int ctrl__propose(struct ctrl *c, const struct store_cmd *cmd, const char *requeue)
{
	struct ctrl_manager *m = c->m;
	struct write_ctx *w;
	struct item *it = NULL;
	size_t len = requeue != NULL ? strlen(requeue) : 0;
	int rv;

	if (!m->running || !c->started)
		return -ESHUTDOWN;
	w = malloc(sizeof(*w) + len + 1);
	if (w == NULL)
		return -ENOMEM;
	w->m = m;
	w->c = c;
	w->epoch = m->epoch;
	memcpy(w->key, len > 0 ? requeue : "", len + 1);
	if (len > 0) {
		it = item_get(c, requeue);
		if (it == NULL) {
			free(w);
			return -ENOMEM;
		}
	}
	rv = m->env.apply(m->env.data, cmd, write_done, w);
	if (rv != 0) {
		m->stats.write_errors++;
		if (it != NULL) {
			/* Try again a little later. */
			item_maybe_free(it);
			ctrl_enqueue_after(c, requeue, 1000);
		}
		free(w);
		return rv;
	}
	m->stats.writes++;
	m->outstanding++;
	if (it != NULL)
		it->inflight++;
	return 0;
}

/* ------------------------------------------------------------ accessors */

void *ctrl_priv(const struct ctrl *c)
{
	return c->priv;
}

void ctrl_set_priv(struct ctrl *c, void *priv)
{
	c->priv = priv;
}

struct store *ctrl_store(const struct ctrl *c)
{
	return c->m->store;
}

const struct ctrl_config *ctrl_config(const struct ctrl *c)
{
	return &c->m->config;
}

uint64_t ctrl_now_ms(const struct ctrl *c)
{
	return c->m->env.now_ms(c->m->env.data);
}

uint64_t ctrl_random(const struct ctrl *c)
{
	return c->m->env.random(c->m->env.data);
}

const char *ctrl__name(const struct ctrl *c)
{
	return c->ops->name;
}

const struct api_kind *ctrl__kind_of_plural(const struct ctrl *c, const char *plural)
{
	return kind_of_plural(c->m, plural, strlen(plural));
}
