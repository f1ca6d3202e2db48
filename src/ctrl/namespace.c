/* Namespace controller: empties a namespace being deleted, then finalizes
 * it (Kubernetes' namespace controller and its NamespacedResourcesDeleter).
 *
 * A Namespace with deletionTimestamp (phase Terminating, set by the API's
 * delete) gets every namespaced object in it deleted, kind by kind over the
 * whole registry, with Background propagation. Pods on a live node are
 * deleted gracefully and waited for (their agent confirms); a pod whose
 * node is gone (or that was never bound) goes at once (grace 0), since
 * nobody would ever confirm. Objects with finalizers are waited for. The
 * status conditions are Kubernetes' own (NamespaceDeletionDiscoveryFailure,
 * ...GroupVersionParsingFailure, ...ContentFailure, NamespaceContentRemaining,
 * NamespaceFinalizersRemaining). Once nothing is left, "kubernetes" leaves
 * spec.finalizers: with no other finalizer, that update deletes the
 * Namespace (src/api/object.h).
 *
 * Work: the queue key is the Namespace's store key. Changes inside a
 * terminating namespace requeue it after a short delay, so a namespace of
 * thousands of pods is re-listed a few times a second at most, not once per
 * deleted pod.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/tree.h>

#include "src/ctrl/ctrl.h"
#include "src/lib/codec.h"
#include "src/lib/log.h"

/* Coalesces the syncs caused by a stream of deletions. */
#define NS_BATCH_MS 200
#define NS_FINALIZER "kubernetes"
#define NS_MAX_FINALIZER_NAMES 8

/* A terminating namespace, by name. */
struct ns_term {
	RB_ENTRY(ns_term) rb;
	char name[];
};

static int ns_term_cmp(const struct ns_term *a, const struct ns_term *b)
{
	return strcmp(a->name, b->name);
}

RB_HEAD(ns_term_tree, ns_term);
RB_GENERATE_INTERNAL(ns_term_tree, ns_term, rb, ns_term_cmp, static __attribute__((unused)))

struct nsc {
	struct ns_term_tree terminating;
	const struct api_kind *k_ns, *k_pod, *k_node;
};

/* ------------------------------------------------------------ the set */

static struct ns_term *term_find(struct nsc *n, const char *name)
{
	size_t len = strlen(name);
	struct ns_term *k = malloc(sizeof(*k) + len + 1), *t;

	if (k == NULL)
		return NULL;
	memcpy(k->name, name, len + 1);
	t = RB_FIND(ns_term_tree, &n->terminating, k);
	free(k);
	return t;
}

static void term_add(struct nsc *n, const char *name)
{
	size_t len = strlen(name);
	struct ns_term *t = malloc(sizeof(*t) + len + 1);

	if (t == NULL)
		return;
	memcpy(t->name, name, len + 1);
	if (RB_INSERT(ns_term_tree, &n->terminating, t) != NULL)
		free(t);
}

static void term_del(struct nsc *n, const char *name)
{
	struct ns_term *t = term_find(n, name);

	if (t != NULL) {
		RB_REMOVE(ns_term_tree, &n->terminating, t);
		free(t);
	}
}

/* ------------------------------------------------------------ lifecycle */

static int ns_start(struct ctrl *c)
{
	struct nsc *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return -ENOMEM;
	RB_INIT(&n->terminating);
	n->k_ns = api_kind_by_resource("", "v1", "namespaces");
	n->k_pod = api_kind_by_resource("", "v1", "pods");
	n->k_node = api_kind_by_resource("", "v1", "nodes");
	if (n->k_ns == NULL || n->k_pod == NULL || n->k_node == NULL) {
		free(n);
		return -ENOENT;
	}
	ctrl_set_priv(c, n);
	return 0;
}

static void ns_stop(struct ctrl *c)
{
	struct nsc *n = ctrl_priv(c);
	struct ns_term *t, *tn;

	if (n == NULL)
		return;
	RB_FOREACH_SAFE(t, ns_term_tree, &n->terminating, tn)
	{
		RB_REMOVE(ns_term_tree, &n->terminating, t);
		free(t);
	}
	free(n);
	ctrl_set_priv(c, NULL);
}

static void enqueue_ns(struct ctrl *c, const struct nsc *n, const char *name, uint64_t delay)
{
	char key[512];

	if (ctrl_key(n->k_ns, NULL, name, key, sizeof(key)) >= 0)
		ctrl_enqueue_after(c, key, delay);
}

static void ns_on_event(struct ctrl *c, const struct ctrl_event *ev)
{
	struct nsc *n = ctrl_priv(c);
	const void *v;
	size_t len;

	if (n == NULL)
		return;
	if (ev->kind == n->k_ns) {
		if (ev->type != CTRL_DELETED &&
		    codec_msgpack_get(ev->val, ev->val_len, "metadata.deletionTimestamp", &v, &len) ==
			    0) {
			term_add(n, ev->name);
			enqueue_ns(c, n, ev->name, 0);
		} else {
			term_del(n, ev->name);
		}
		return;
	}
	if (ev->kind == n->k_node && ev->type == CTRL_DELETED) {
		/* Pods waiting on this node can now go at once. */
		struct ns_term *t;
		RB_FOREACH(t, ns_term_tree, &n->terminating)
			enqueue_ns(c, n, t->name, 0);
		return;
	}
	if (ev->ns != NULL && !RB_EMPTY(&n->terminating) && term_find(n, ev->ns) != NULL)
		enqueue_ns(c, n, ev->ns, NS_BATCH_MS);
}

/* ------------------------------------------------------------ sync */

/* One object found in the namespace. */
struct ns_obj {
	char *name;
	char *uid;
	bool deleting;
	bool orphan_pod; /* a pod with no (live) node: grace 0 */
};

struct ns_scan {
	struct ctrl *c;
	struct nsc *n;
	size_t prefix_len;
	bool is_pod;
	struct ns_obj *objs;
	size_t n_objs, cap;
	int err;
	/* Finalizers seen on objects being deleted, with counts. */
	struct {
		char name[128];
		size_t count;
	} fin[NS_MAX_FINALIZER_NAMES];
	size_t n_fin, fin_total;
};

static char *dup_mp_str(const void *mp, size_t len, const char *path)
{
	const char *s;
	size_t l;
	char *r;

	if (codec_msgpack_get_str(mp, len, path, &s, &l) != 0)
		return NULL;
	r = malloc(l + 1);
	if (r != NULL) {
		memcpy(r, s, l);
		r[l] = '\0';
	}
	return r;
}

static bool node_exists(struct ns_scan *s, const char *node, size_t len)
{
	char key[512];
	struct store_kv kv;
	int n;

	if (len == 0 || len > 300)
		return false;
	n = snprintf(key, sizeof(key), "/registry/%s/%.*s", s->n->k_node->plural, (int)len, node);
	return n > 0 && (size_t)n < sizeof(key) &&
	       store_get(ctrl_store(s->c), key, (size_t)n, &kv) == 0;
}

static void note_finalizers(struct ns_scan *s, const struct store_kv *kv)
{
	char path[64];
	size_t i, j;

	for (i = 0; i < 64; i++) {
		const char *f;
		size_t fl;
		snprintf(path, sizeof(path), "metadata.finalizers.%zu", i);
		if (codec_msgpack_get_str(kv->val, kv->val_len, path, &f, &fl) != 0)
			break;
		s->fin_total++;
		for (j = 0; j < s->n_fin; j++) {
			if (strlen(s->fin[j].name) == fl && memcmp(s->fin[j].name, f, fl) == 0)
				break;
		}
		if (j == s->n_fin) {
			if (s->n_fin == NS_MAX_FINALIZER_NAMES || fl >= sizeof(s->fin[0].name))
				continue;
			memcpy(s->fin[j].name, f, fl);
			s->fin[j].name[fl] = '\0';
			s->fin[j].count = 0;
			s->n_fin++;
		}
		s->fin[j].count++;
	}
}

static int scan_cb(const struct store_kv *kv, void *data)
{
	struct ns_scan *s = data;
	struct ns_obj *o;
	const void *v;
	const char *node = NULL;
	size_t len, node_len = 0;

	if (kv->key_len <= s->prefix_len)
		return 0;
	if (s->n_objs == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct ns_obj *objs = realloc(s->objs, cap * sizeof(*objs));
		if (objs == NULL) {
			s->err = -ENOMEM;
			return 1;
		}
		s->objs = objs;
		s->cap = cap;
	}
	o = &s->objs[s->n_objs];
	memset(o, 0, sizeof(*o));
	o->name = malloc(kv->key_len - s->prefix_len + 1);
	if (o->name == NULL) {
		s->err = -ENOMEM;
		return 1;
	}
	memcpy(o->name, kv->key + s->prefix_len, kv->key_len - s->prefix_len);
	o->name[kv->key_len - s->prefix_len] = '\0';
	o->uid = dup_mp_str(kv->val, kv->val_len, "metadata.uid");
	o->deleting =
		codec_msgpack_get(kv->val, kv->val_len, "metadata.deletionTimestamp", &v, &len) == 0;
	if (s->is_pod) {
		if (codec_msgpack_get_str(kv->val, kv->val_len, "spec.nodeName", &node, &node_len) !=
		    0)
			node_len = 0;
		o->orphan_pod = !node_exists(s, node, node_len);
	}
	if (o->deleting)
		note_finalizers(s, kv);
	s->n_objs++;
	return 0;
}

static void scan_reset(struct ns_scan *s)
{
	size_t i;

	for (i = 0; i < s->n_objs; i++) {
		free(s->objs[i].name);
		free(s->objs[i].uid);
	}
	s->n_objs = 0;
}

/* Appends "what" to @buf (", " separated). */
static void append(char *buf, size_t size, const char *what)
{
	size_t len = strlen(buf);

	if (len > 0 && len + 2 < size) {
		memcpy(buf + len, ", ", 3);
		len += 2;
	}
	if (len < size)
		snprintf(buf + len, size - len, "%s", what);
}

/* Removes NS_FINALIZER from spec.finalizers; true when it was there. */
static bool drop_finalizer(json_t *ns)
{
	json_t *f = json_object_get(json_object_get(ns, "spec"), "finalizers");
	size_t i;
	bool found = false;

	for (i = 0; json_is_array(f) && i < json_array_size(f);) {
		const char *s = json_string_value(json_array_get(f, i));
		if (s != NULL && strcmp(s, NS_FINALIZER) == 0) {
			json_array_remove(f, i);
			found = true;
		} else {
			i++;
		}
	}
	return found;
}

static void ns_sync(struct ctrl *c, const char *key)
{
	struct nsc *n = ctrl_priv(c);
	const char *name = strrchr(key, '/');
	struct ns_scan s;
	char remaining[1024] = "", fins[1024] = "", what[320], msg[1200];
	size_t i, j, total = 0, failed = 0;
	json_t *ns;
	bool changed = false;
	int rv;

	if (n == NULL || name == NULL)
		return;
	name++;
	ns = ctrl_get(c, n->k_ns, NULL, name, NULL);
	if (ns == NULL || ctrl_str(ns, "metadata.deletionTimestamp") == NULL) {
		term_del(n, name);
		json_decref(ns);
		return;
	}
	term_add(n, name);
	memset(&s, 0, sizeof(s));
	s.c = c;
	s.n = n;
	for (i = 0; i < api_kind_count(); i++) {
		const struct api_kind *k = api_kind_at(i);
		char prefix[512];
		size_t count;
		int pl;
		if (!k->namespaced)
			continue;
		/* Plurals are unique across stored kinds; skip a second version
		 * of one. */
		for (j = 0; j < i; j++) {
			if (strcmp(api_kind_at(j)->plural, k->plural) == 0)
				break;
		}
		if (j < i)
			continue;
		pl = ctrl_key(k, name, NULL, prefix, sizeof(prefix));
		if (pl < 0)
			continue;
		s.prefix_len = (size_t)pl;
		s.is_pod = k == n->k_pod;
		s.err = 0;
		ctrl_list(c, k, name, scan_cb, &s);
		if (s.err != 0)
			failed++;
		count = s.n_objs;
		for (j = 0; j < s.n_objs; j++) {
			struct ns_obj *o = &s.objs[j];
			int64_t grace = -1;
			if (s.is_pod && o->orphan_pod)
				grace = 0;
			else if (o->deleting)
				continue; /* waiting: its agent or finalizers */
			rv = ctrl_delete(c, k, name, o->name, 0, o->uid, NULL, grace, key);
			if (rv != 0 && rv != -ENOENT) {
				failed++;
				ctrl_log(c, LOG_LEVEL_WARN, "namespace %s: cannot delete %s %s: %s",
					 name, k->plural, o->name, strerror(-rv));
			}
		}
		scan_reset(&s);
		if (count > 0) {
			total += count;
			if (k->group[0] != '\0')
				snprintf(what, sizeof(what), "%s.%s has %zu resource instances",
					 k->plural, k->group, count);
			else
				snprintf(what, sizeof(what), "%s has %zu resource instances",
					 k->plural, count);
			append(remaining, sizeof(remaining), what);
		}
	}
	free(s.objs);
	for (i = 0; i < s.n_fin; i++) {
		snprintf(what, sizeof(what), "%s in %zu resource instances", s.fin[i].name,
			 s.fin[i].count);
		append(fins, sizeof(fins), what);
	}

	/* Kubernetes' conditions of a terminating namespace. */
	changed |= ctrl_set_condition(c, ns, "NamespaceDeletionDiscoveryFailure", "False",
				      "ResourcesDiscovered", "All resources successfully discovered");
	changed |= ctrl_set_condition(c, ns, "NamespaceDeletionGroupVersionParsingFailure", "False",
				      "ParsedGroupVersions",
				      "All legacy kube types successfully parsed");
	if (failed > 0)
		changed |= ctrl_set_condition(c, ns, "NamespaceDeletionContentFailure", "True",
					      "ContentDeletionFailed",
					      "Failed to delete all resource types, will retry");
	else
		changed |= ctrl_set_condition(
			c, ns, "NamespaceDeletionContentFailure", "False", "ContentDeleted",
			"All content successfully deleted, may be waiting on finalization");
	if (total > 0) {
		snprintf(msg, sizeof(msg), "Some resources are remaining: %s", remaining);
		changed |= ctrl_set_condition(c, ns, "NamespaceContentRemaining", "True",
					      "SomeResourcesRemain", msg);
	} else {
		changed |= ctrl_set_condition(c, ns, "NamespaceContentRemaining", "False",
					      "ContentRemoved", "All content successfully removed");
	}
	if (s.fin_total > 0) {
		snprintf(msg, sizeof(msg),
			 "Some content in the namespace has finalizers remaining: %s", fins);
		changed |= ctrl_set_condition(c, ns, "NamespaceFinalizersRemaining", "True",
					      "SomeFinalizersRemain", msg);
	} else {
		changed |= ctrl_set_condition(c, ns, "NamespaceFinalizersRemaining", "False",
					      "ContentHasNoFinalizers",
					      "All content-preserving finalizers finished");
	}
	if (total == 0 && failed == 0 && drop_finalizer(ns)) {
		ctrl_log(c, LOG_LEVEL_INFO, "namespace %s is empty: finalized", name);
		changed = true;
	}
	if (changed) {
		rv = ctrl_update(c, n->k_ns, ns, key);
		if (rv != 0)
			ctrl_log(c, LOG_LEVEL_WARN, "cannot update namespace %s: %s", name,
				 strerror(-rv));
	}
	/* A failure without a write in flight must still come back. */
	if (failed > 0)
		ctrl_enqueue_after(c, key, 1000);
	json_decref(ns);
}

const struct ctrl_ops ctrl_namespace_ops = {
	.name = "namespace",
	.start = ns_start,
	.stop = ns_stop,
	.on_event = ns_on_event,
	.sync = ns_sync,
};
