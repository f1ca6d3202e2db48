/* Garbage collector: ownerReferences cascade (Kubernetes' garbage
 * collector: background, foreground with blockOwnerDeletion, orphan).
 *
 * The graph: a node per uid that is an observed object with
 * ownerReferences, or that such a reference names (a "virtual" owner until
 * it is seen in the store). Edges run dependent -> owner (with the
 * reference's blockOwnerDeletion), and each owner keeps its dependents.
 * Events keep it current; objects without references and not referenced
 * cost nothing.
 *
 * One sync per object (queue key = its store key) plays both roles:
 * - as a dependent ("attemptToDelete"): each owner is solid (stored with
 *   that uid), dangling (absent, or another uid) or waiting (being deleted
 *   in the foreground). With no dangling and no waiting owner nothing
 *   happens. With a solid owner, the references to dangling and waiting
 *   owners are removed. Otherwise the object is deleted: Foreground when
 *   a waiting owner exists and it has dependents itself, else Background;
 * - as an owner being deleted: finalizer "orphan" removes the references
 *   to it from every dependent, then the finalizer; "foregroundDeletion"
 *   queues every dependent (which then deletes itself, above) and removes
 *   the finalizer once no dependent with blockOwnerDeletion is left.
 * Removing the last finalizer of an object being deleted deletes it
 * (src/api/object.h).
 *
 * Owners resolve across kinds through their apiVersion/kind, in the
 * dependent's namespace, or cluster-wide for cluster-scoped kinds. An
 * owner of an unknown kind counts as solid: never delete on a guess.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/tree.h>

#include "src/ctrl/ctrl.h"
#include "src/lib/codec.h"
#include "src/lib/log.h"

#define FIN_ORPHAN "orphan"
#define FIN_FOREGROUND "foregroundDeletion"
/* Owner references read per object; more are ignored (never seen). */
#define GC_MAX_OWNERS 32

struct gc_node;

/* A reference of @dep to @owner. */
struct gc_edge {
	RB_ENTRY(gc_edge) rb; /* in owner->deps, by dependent */
	struct gc_node *owner, *dep;
	bool block;
};

static int gc_edge_cmp(const struct gc_edge *a, const struct gc_edge *b)
{
	return a->dep < b->dep ? -1 : a->dep > b->dep;
}

RB_HEAD(gc_deps, gc_edge);
RB_GENERATE_INTERNAL(gc_deps, gc_edge, rb, gc_edge_cmp, static __attribute__((unused)))

struct gc_node {
	RB_ENTRY(gc_node) rb;
	struct gc_deps deps; /* edges whose owner is this node */
	size_t n_deps;
	struct gc_edge **owners; /* edges whose dependent is this node */
	size_t n_owners;
	/* Observed in the store: */
	bool observed;
	bool deleting;   /* deletionTimestamp set */
	bool foreground; /* deleting with finalizer foregroundDeletion */
	bool orphan;     /* deleting with finalizer orphan */
	const struct api_kind *kind;
	char *key; /* store key, NULL while virtual */
	char uid[];
};

static int gc_node_cmp(const struct gc_node *a, const struct gc_node *b)
{
	return strcmp(a->uid, b->uid);
}

RB_HEAD(gc_nodes, gc_node);
RB_GENERATE_INTERNAL(gc_nodes, gc_node, rb, gc_node_cmp, static __attribute__((unused)))

struct gc {
	struct gc_nodes nodes;
};

/* ------------------------------------------------------------ graph */

static struct gc_node *node_find(struct gc *g, const char *uid, size_t len)
{
	char buf[128];
	struct gc_node *k = (struct gc_node *)buf;

	if (sizeof(*k) + len + 1 > sizeof(buf))
		return NULL;
	memset(k, 0, sizeof(*k));
	memcpy(k->uid, uid, len);
	k->uid[len] = '\0';
	return RB_FIND(gc_nodes, &g->nodes, k);
}

static struct gc_node *node_get(struct gc *g, const char *uid, size_t len)
{
	struct gc_node *n = node_find(g, uid, len);

	if (n != NULL)
		return n;
	if (len > 100)
		return NULL;
	n = calloc(1, sizeof(*n) + len + 1);
	if (n == NULL)
		return NULL;
	memcpy(n->uid, uid, len);
	n->uid[len] = '\0';
	RB_INIT(&n->deps);
	RB_INSERT(gc_nodes, &g->nodes, n);
	return n;
}

static void node_maybe_free(struct gc *g, struct gc_node *n)
{
	if (n->observed || n->n_deps > 0 || n->n_owners > 0)
		return;
	RB_REMOVE(gc_nodes, &g->nodes, n);
	free(n->owners);
	free(n->key);
	free(n);
}

/* Drops every owner edge of @n (not @n itself). */
static void node_unlink_owners(struct gc *g, struct gc_node *n)
{
	size_t i;

	for (i = 0; i < n->n_owners; i++) {
		struct gc_edge *e = n->owners[i];
		RB_REMOVE(gc_deps, &e->owner->deps, e);
		e->owner->n_deps--;
		node_maybe_free(g, e->owner);
		free(e);
	}
	n->n_owners = 0;
}

static void gc_free(struct gc *g)
{
	struct gc_node *n, *nn;

	if (g == NULL)
		return;
	RB_FOREACH(n, gc_nodes, &g->nodes)
	{
		size_t i;
		for (i = 0; i < n->n_owners; i++)
			free(n->owners[i]);
	}
	RB_FOREACH_SAFE(n, gc_nodes, &g->nodes, nn)
	{
		RB_REMOVE(gc_nodes, &g->nodes, n);
		free(n->owners);
		free(n->key);
		free(n);
	}
	free(g);
}

/* ------------------------------------------------------------ msgpack reads */

/* The owner references of a stored object, as read from its msgpack. */
struct refs {
	struct {
		const char *uid;
		size_t len;
		bool block;
	} r[GC_MAX_OWNERS];
	size_t n;
};

static void read_refs(const void *val, size_t len, struct refs *ret)
{
	char path[96];
	const void *v;
	size_t i, vl;

	ret->n = 0;
	for (i = 0; i < GC_MAX_OWNERS; i++) {
		snprintf(path, sizeof(path), "metadata.ownerReferences.%zu.uid", i);
		if (codec_msgpack_get_str(val, len, path, &ret->r[ret->n].uid, &ret->r[ret->n].len) !=
		    0) {
			snprintf(path, sizeof(path), "metadata.ownerReferences.%zu", i);
			if (codec_msgpack_get(val, len, path, &v, &vl) == 0)
				continue; /* a reference without uid: skip it */
			break;
		}
		snprintf(path, sizeof(path), "metadata.ownerReferences.%zu.blockOwnerDeletion", i);
		/* msgpack true is the single byte 0xc3. */
		ret->r[ret->n].block = codec_msgpack_get(val, len, path, &v, &vl) == 0 && vl == 1 &&
				       *(const unsigned char *)v == 0xc3;
		ret->n++;
	}
}

/* Deletion state of a stored object. */
struct dstate {
	bool deleting, foreground, orphan;
};

static void read_dstate(const void *val, size_t len, struct dstate *ret)
{
	char path[64];
	const void *v;
	const char *s;
	size_t i, vl;

	memset(ret, 0, sizeof(*ret));
	ret->deleting =
		codec_msgpack_get(val, len, "metadata.deletionTimestamp", &v, &vl) == 0;
	for (i = 0; i < 64; i++) {
		snprintf(path, sizeof(path), "metadata.finalizers.%zu", i);
		if (codec_msgpack_get(val, len, path, &v, &vl) != 0)
			break;
		if (codec_msgpack_str(v, vl, &s, &vl) != 0)
			continue;
		if (vl == strlen(FIN_ORPHAN) && memcmp(s, FIN_ORPHAN, vl) == 0)
			ret->orphan = true;
		else if (vl == strlen(FIN_FOREGROUND) && memcmp(s, FIN_FOREGROUND, vl) == 0)
			ret->foreground = true;
	}
	if (!ret->deleting)
		ret->foreground = ret->orphan = false;
}

/* Records what the store says of @n. */
static void node_observe(struct gc_node *n, const struct api_kind *k, const char *key,
			 const struct dstate *d)
{
	n->observed = true;
	n->kind = k;
	n->deleting = d->deleting;
	n->foreground = d->foreground;
	n->orphan = d->orphan;
	if (n->key == NULL || strcmp(n->key, key) != 0) {
		char *dup = strdup(key);
		if (dup != NULL) {
			free(n->key);
			n->key = dup;
		}
	}
}

static bool node_waiting(const struct gc_node *n)
{
	return n->observed && (n->foreground || n->orphan);
}

/* ------------------------------------------------------------ lifecycle */

static int gc_start(struct ctrl *c)
{
	struct gc *g = calloc(1, sizeof(*g));

	if (g == NULL)
		return -ENOMEM;
	RB_INIT(&g->nodes);
	ctrl_set_priv(c, g);
	return 0;
}

static void gc_stop(struct ctrl *c)
{
	gc_free(ctrl_priv(c));
	ctrl_set_priv(c, NULL);
}

/* Whether @n's owner edges are exactly @r. */
static bool same_owners(const struct gc_node *n, const struct refs *r)
{
	size_t i;

	if (n->n_owners != r->n)
		return false;
	for (i = 0; i < r->n; i++) {
		const struct gc_edge *e = n->owners[i];
		if (e->block != r->r[i].block || strlen(e->owner->uid) != r->r[i].len ||
		    memcmp(e->owner->uid, r->r[i].uid, r->r[i].len) != 0)
			return false;
	}
	return true;
}

/* Replaces @n's owner edges with @r; owners that lost @n as a dependent
 * while deleting (foreground or orphan) are queued. Returns false on OOM. */
static bool set_owners(struct ctrl *c, struct gc *g, struct gc_node *n, const struct refs *r)
{
	struct gc_edge **owners = NULL;
	size_t i;

	for (i = 0; i < n->n_owners; i++) {
		struct gc_node *o = n->owners[i]->owner;
		if (node_waiting(o) && o->key != NULL)
			ctrl_enqueue(c, o->key);
	}
	node_unlink_owners(g, n);
	if (r->n > 0) {
		owners = realloc(n->owners, r->n * sizeof(*owners));
		if (owners == NULL)
			return false;
		n->owners = owners;
	}
	for (i = 0; i < r->n; i++) {
		struct gc_node *o = node_get(g, r->r[i].uid, r->r[i].len);
		struct gc_edge *e;
		if (o == NULL || o == n)
			continue;
		e = calloc(1, sizeof(*e));
		if (e == NULL) {
			node_maybe_free(g, o);
			return false;
		}
		e->owner = o;
		e->dep = n;
		e->block = r->r[i].block;
		if (RB_INSERT(gc_deps, &o->deps, e) != NULL) {
			free(e); /* the same owner twice */
			continue;
		}
		o->n_deps++;
		n->owners[n->n_owners++] = e;
	}
	return true;
}

static void gc_on_event(struct ctrl *c, const struct ctrl_event *ev)
{
	struct gc *g = ctrl_priv(c);
	struct gc_node *n;
	struct gc_edge *e;
	const char *uid;
	size_t uid_len, i;
	struct refs r;
	struct dstate d;
	bool check = false;

	if (g == NULL ||
	    codec_msgpack_get_str(ev->val, ev->val_len, "metadata.uid", &uid, &uid_len) != 0)
		return;
	n = node_find(g, uid, uid_len);
	if (ev->type == CTRL_DELETED) {
		if (n == NULL)
			return;
		/* Its dependents may be orphans now (background). */
		RB_FOREACH(e, gc_deps, &n->deps)
		{
			if (e->dep->key != NULL)
				ctrl_enqueue(c, e->dep->key);
		}
		/* A blocking dependent of a foreground deletion is gone. */
		for (i = 0; i < n->n_owners; i++) {
			struct gc_node *o = n->owners[i]->owner;
			if (node_waiting(o) && o->key != NULL)
				ctrl_enqueue(c, o->key);
		}
		node_unlink_owners(g, n);
		n->observed = false;
		n->deleting = n->foreground = n->orphan = false;
		node_maybe_free(g, n);
		return;
	}
	read_refs(ev->val, ev->val_len, &r);
	read_dstate(ev->val, ev->val_len, &d);
	if (n == NULL && r.n == 0) {
		/* No graph node needed; an owner deleting with no dependent
		 * still needs its finalizer removed. */
		if (d.foreground || d.orphan)
			ctrl_enqueue(c, ev->key);
		return;
	}
	if (n == NULL && (n = node_get(g, uid, uid_len)) == NULL) {
		ctrl_enqueue_after(c, ev->key, 1000); /* OOM: check it later */
		return;
	}
	node_observe(n, ev->kind, ev->key, &d);
	if (d.foreground || d.orphan)
		ctrl_enqueue(c, ev->key);
	if (!same_owners(n, &r) && !set_owners(c, g, n, &r))
		check = true;
	for (i = 0; i < n->n_owners; i++) {
		if (!n->owners[i]->owner->observed)
			check = true;
	}
	if (check)
		ctrl_enqueue(c, ev->key);
	node_maybe_free(g, n);
}

/* ------------------------------------------------------------ sync */

/* Removes the string @s from the array at metadata.finalizers. */
static void drop_finalizer(json_t *obj, const char *s)
{
	json_t *f = json_object_get(json_object_get(obj, "metadata"), "finalizers");
	size_t i;

	for (i = 0; json_is_array(f) && i < json_array_size(f);) {
		const char *v = json_string_value(json_array_get(f, i));
		if (v != NULL && strcmp(v, s) == 0)
			json_array_remove(f, i);
		else
			i++;
	}
}

/* Removes from @obj's ownerReferences those whose uid is in @uids (n).
 * Returns true when anything was removed. */
static bool drop_refs(json_t *obj, const char *const *uids, size_t n)
{
	json_t *meta = json_object_get(obj, "metadata");
	json_t *refs = json_object_get(meta, "ownerReferences");
	size_t i, j;
	bool changed = false;

	for (i = 0; json_is_array(refs) && i < json_array_size(refs);) {
		const char *u = json_string_value(json_object_get(json_array_get(refs, i), "uid"));
		for (j = 0; u != NULL && j < n; j++) {
			if (strcmp(u, uids[j]) == 0)
				break;
		}
		if (u != NULL && j < n) {
			json_array_remove(refs, i);
			changed = true;
		} else {
			i++;
		}
	}
	if (changed && json_array_size(refs) == 0)
		json_object_del(meta, "ownerReferences");
	return changed;
}

/* The kind an ownerReference (or object) names by apiVersion and kind. */
static const struct api_kind *kind_of(const char *api_version, const char *kind)
{
	char group[256];
	const char *slash, *version;

	if (api_version == NULL || kind == NULL)
		return NULL;
	slash = strchr(api_version, '/');
	if (slash == NULL) {
		group[0] = '\0';
		version = api_version;
	} else {
		if ((size_t)(slash - api_version) >= sizeof(group))
			return NULL;
		memcpy(group, api_version, (size_t)(slash - api_version));
		group[slash - api_version] = '\0';
		version = slash + 1;
	}
	const struct api_kind *k = api_kind_by_gvk(group, version, kind);
	if (k == NULL) {
		/* Another version of a served kind: the same stored object. */
		k = api_kind_by_kind(kind);
		if (k != NULL && strcmp(k->group, group) != 0)
			k = NULL;
	}
	return k;
}

/* The stored object at @key as a new tree, or NULL. */
static json_t *get_by_key(struct ctrl *c, const char *key)
{
	struct store_kv kv;

	if (store_get(ctrl_store(c), key, strlen(key), &kv) != 0)
		return NULL;
	return ctrl_decode(kv.val, kv.val_len, kv.mod_rev);
}

enum owner_state { OWNER_SOLID, OWNER_DANGLING, OWNER_WAITING };

/* Looks owner reference @ref of an object in namespace @ns (NULL:
 * cluster-scoped) up in the store. */
static enum owner_state owner_state(struct ctrl *c, struct gc *g, const json_t *ref, const char *ns)
{
	const char *uid = json_string_value(json_object_get(ref, "uid"));
	const char *name = json_string_value(json_object_get(ref, "name"));
	const struct api_kind *k =
		kind_of(json_string_value(json_object_get(ref, "apiVersion")),
			json_string_value(json_object_get(ref, "kind")));
	struct store_kv kv;
	struct dstate d;
	struct gc_node *o;
	char key[512];
	const char *su;
	size_t sl;
	int n;

	if (k == NULL || uid == NULL || name == NULL)
		return OWNER_SOLID; /* unknown kind: never delete on a guess */
	if (k->namespaced && ns == NULL)
		return OWNER_DANGLING; /* a cluster-scoped object cannot have one */
	n = ctrl_key(k, ns, name, key, sizeof(key));
	if (n < 0)
		return OWNER_SOLID;
	if (store_get(ctrl_store(c), key, (size_t)n, &kv) != 0)
		return OWNER_DANGLING;
	if (codec_msgpack_get_str(kv.val, kv.val_len, "metadata.uid", &su, &sl) != 0 ||
	    sl != strlen(uid) || memcmp(su, uid, sl) != 0)
		return OWNER_DANGLING;
	read_dstate(kv.val, kv.val_len, &d);
	/* Seen in the store: later dependents need no lookup. */
	o = node_find(g, uid, strlen(uid));
	if (o != NULL && !o->observed)
		node_observe(o, k, key, &d);
	return d.foreground ? OWNER_WAITING : OWNER_SOLID;
}

/* The dependent role; @obj is the stored object. */
static void sync_dependent(struct ctrl *c, struct gc *g, struct gc_node *n, json_t *obj,
			   const struct dstate *d, const char *key)
{
	json_t *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences"), *ref;
	char *drop[GC_MAX_OWNERS];
	const char *ns = ctrl_str(obj, "metadata.namespace");
	const char *name = ctrl_str(obj, "metadata.name");
	const struct api_kind *k;
	size_t i, solid = 0, dangling = 0, waiting = 0, n_drop = 0;
	int rv;

	if (!json_is_array(refs) || json_array_size(refs) == 0 || name == NULL)
		return;
	/* Already going (and not waiting for dependents of its own). */
	if (d->deleting && !d->foreground)
		return;
	/* Every owner known present and not in foreground deletion. */
	if (n != NULL && n->n_owners == json_array_size(refs)) {
		for (i = 0; i < n->n_owners; i++) {
			const struct gc_node *o = n->owners[i]->owner;
			if (!o->observed || o->foreground)
				break;
		}
		if (i == n->n_owners)
			return;
	}
	k = n != NULL && n->kind != NULL ? n->kind
					 : kind_of(ctrl_str(obj, "apiVersion"), ctrl_str(obj, "kind"));
	if (k == NULL)
		return;
	if (!k->namespaced)
		ns = NULL;
	json_array_foreach(refs, i, ref)
	{
		enum owner_state s = owner_state(c, g, ref, ns);
		const char *uid = json_string_value(json_object_get(ref, "uid"));
		if (s == OWNER_SOLID) {
			solid++;
			continue;
		}
		if (s == OWNER_DANGLING)
			dangling++;
		else
			waiting++;
		/* Copied: drop_refs() frees the references it removes. */
		if (uid != NULL && n_drop < GC_MAX_OWNERS && (drop[n_drop] = strdup(uid)) != NULL)
			n_drop++;
	}
	if (dangling == 0 && waiting == 0)
		return;
	if (solid > 0) {
		/* Another owner keeps it: only forget the others. */
		if (drop_refs(obj, (const char *const *)drop, n_drop)) {
			rv = ctrl_update(c, k, obj, key);
			if (rv != 0 && rv != -ENOENT)
				ctrl_log(c, LOG_LEVEL_WARN, "cannot update %s: %s", key,
					 strerror(-rv));
		}
		for (i = 0; i < n_drop; i++)
			free(drop[i]);
		return;
	}
	for (i = 0; i < n_drop; i++)
		free(drop[i]);
	if (d->deleting)
		return; /* in foreground deletion itself: the owner role runs it */
	rv = ctrl_delete(c, k, ns, name, 0, ctrl_str(obj, "metadata.uid"),
			 waiting > 0 && n != NULL && n->n_deps > 0 ? "Foreground" : "Background",
			 -1, key);
	if (rv == 0)
		ctrl_log(c, LOG_LEVEL_DEBUG, "deleting %s: %s", key,
			 waiting > 0 ? "its owner is deleted in the foreground"
				     : "every owner is gone");
	else if (rv != -ENOENT)
		ctrl_log(c, LOG_LEVEL_WARN, "cannot delete %s: %s", key, strerror(-rv));
}

/* The owner role, for an object being deleted with finalizer orphan or
 * foregroundDeletion. */
static void sync_owner(struct ctrl *c, struct gc_node *n, json_t *obj, const struct dstate *d,
		       const char *key)
{
	const struct api_kind *k;
	struct gc_edge *e;
	size_t blocking = 0;
	int rv;

	k = n != NULL && n->kind != NULL ? n->kind
					 : kind_of(ctrl_str(obj, "apiVersion"), ctrl_str(obj, "kind"));
	if (k == NULL)
		return;
	if (d->orphan) {
		const char *uid = ctrl_str(obj, "metadata.uid");
		size_t left = 0;
		if (n != NULL && uid != NULL) {
			RB_FOREACH(e, gc_deps, &n->deps)
			{
				const struct gc_node *dep = e->dep;
				json_t *dobj;
				left++;
				if (dep->key == NULL || dep->kind == NULL ||
				    (dobj = get_by_key(c, dep->key)) == NULL)
					continue;
				if (drop_refs(dobj, &uid, 1)) {
					rv = ctrl_update(c, dep->kind, dobj, key);
					if (rv != 0 && rv != -ENOENT)
						ctrl_log(c, LOG_LEVEL_WARN, "cannot orphan %s: %s",
							 dep->key, strerror(-rv));
				}
				json_decref(dobj);
			}
		}
		if (left > 0)
			return; /* the dependents' changes queue this again */
		drop_finalizer(obj, FIN_ORPHAN);
	} else if (d->foreground) {
		if (n != NULL) {
			RB_FOREACH(e, gc_deps, &n->deps)
			{
				if (e->block)
					blocking++;
				if (!e->dep->deleting && e->dep->key != NULL)
					ctrl_enqueue(c, e->dep->key);
			}
		}
		if (blocking > 0)
			return;
		drop_finalizer(obj, FIN_FOREGROUND);
	} else {
		return;
	}
	rv = ctrl_update(c, k, obj, key);
	if (rv != 0 && rv != -ENOENT)
		ctrl_log(c, LOG_LEVEL_WARN, "cannot finalize %s: %s", key, strerror(-rv));
}

static void gc_sync(struct ctrl *c, const char *key)
{
	struct gc *g = ctrl_priv(c);
	struct store_kv kv;
	struct gc_node *n;
	struct dstate d;
	const char *uid;
	size_t uid_len;
	json_t *obj;

	if (g == NULL || store_get(ctrl_store(c), key, strlen(key), &kv) != 0)
		return;
	if (codec_msgpack_get_str(kv.val, kv.val_len, "metadata.uid", &uid, &uid_len) != 0)
		return;
	n = node_find(g, uid, uid_len);
	read_dstate(kv.val, kv.val_len, &d);
	obj = ctrl_decode(kv.val, kv.val_len, kv.mod_rev);
	if (obj == NULL)
		return;
	if (d.orphan || d.foreground)
		sync_owner(c, n, obj, &d, key);
	else
		sync_dependent(c, g, n, obj, &d, key);
	json_decref(obj);
}

const struct ctrl_ops ctrl_gc_ops = {
	.name = "garbagecollector",
	.start = gc_start,
	.stop = gc_stop,
	.on_event = gc_on_event,
	.sync = gc_sync,
};
