/* The StatefulSet controller, with Kubernetes' semantics (the stateful
 * set control of kube-controller-manager).
 *
 * Happy path: pods <set>-<ordinal> for ordinals start..start+replicas-1,
 * each created after the PersistentVolumeClaims of its volume claim
 * templates (<claim>-<set>-<ordinal>, never deleted here, so a recreated
 * pod finds its data again). OrderedReady creates ordinal i only once
 * 0..i-1 are Running and Ready, and removes surplus pods from the highest
 * ordinal, one at a time, waiting for each to go; Parallel creates and
 * removes them all at once. RollingUpdate replaces pods whose revision
 * differs, from the highest ordinal down to the partition, one at a time,
 * each waiting for the previous one to be Ready again; OnDelete only
 * gives recreated pods the new template.
 *
 * Revisions are "<set>-<hash of the template>" in the pods'
 * controller-revision-hash label and in status.currentRevision /
 * updateRevision. There are no ControllerRevision objects (the kind is
 * not served): a pod recreated below the partition takes the old
 * template from a surviving pod of the old revision (or the new template
 * when none is left).
 *
 * Failure modes: a synchronous write error retries the set after a
 * delay; failed writes requeue it through the manager. A failed pod is
 * deleted and recreated (RecreatingFailedPod).
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

#define STS_POD_NAME_LABEL "statefulset.kubernetes.io/pod-name"
#define STS_POD_INDEX_LABEL "apps.kubernetes.io/pod-index"
#define STS_REVISION_LABEL "controller-revision-hash"
#define STS_RETRY_MS 5000

/* A pod controlled by a StatefulSet. */
struct pod_ent {
	RB_ENTRY(pod_ent) by_key;
	RB_ENTRY(pod_ent) by_owner;
	char *key;
	char *name;
	char *uid;
	char *owner_uid;
	char *owner_key;
	char *revision; /* "" when absent */
	uint64_t ready_ms;
	bool running, ready, deleting, failed, succeeded;
};

static int pod_key_cmp(const struct pod_ent *a, const struct pod_ent *b)
{
	return strcmp(a->key, b->key);
}

static int pod_owner_cmp(const struct pod_ent *a, const struct pod_ent *b)
{
	int r = strcmp(a->owner_uid, b->owner_uid);
	return r ? r : strcmp(a->key, b->key);
}

RB_HEAD(pod_key_tree, pod_ent);
RB_HEAD(pod_owner_tree, pod_ent);
/* RB_GENERATE_STATIC needs BSD's __unused, which libbsd leaves undefined. */
RB_GENERATE_INTERNAL(pod_key_tree, pod_ent, by_key, pod_key_cmp, static __attribute__((unused)))
RB_GENERATE_INTERNAL(pod_owner_tree, pod_ent, by_owner, pod_owner_cmp,
		     static __attribute__((unused)))

struct sts_priv {
	const struct api_kind *sts_kind, *pod_kind, *pvc_kind;
	struct pod_key_tree pods;
	struct pod_owner_tree pods_by_owner;
};

static void pod_ent_free(struct pod_ent *p)
{
	if (p) {
		free(p->key);
		free(p->name);
		free(p->uid);
		free(p->owner_uid);
		free(p->owner_key);
		free(p->revision);
		free(p);
	}
}

static void pod_forget(struct sts_priv *p, struct pod_ent *e)
{
	RB_REMOVE(pod_key_tree, &p->pods, e);
	RB_REMOVE(pod_owner_tree, &p->pods_by_owner, e);
	pod_ent_free(e);
}

/* ------------------------------------------------------------ helpers */

static bool str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* The ordinal of pod @name in set @set, or -1 ("<set>-<digits>"). */
static int64_t pod_ordinal(const char *set, const char *name)
{
	size_t n = strlen(set);
	if (strncmp(name, set, n) != 0 || name[n] != '-' || name[n + 1] == '\0') {
		return -1;
	}
	int64_t v = 0;
	for (const char *p = name + n + 1; *p; p++) {
		if (*p < '0' || *p > '9' || v > 100000000) {
			return -1;
		}
		v = v * 10 + (*p - '0');
	}
	/* "web-01" is not ordinal 1. */
	if (name[n + 1] == '0' && name[n + 2] != '\0') {
		return -1;
	}
	return v;
}

/* ------------------------------------------------------------ events */

static void on_pod(struct ctrl *c, struct sts_priv *p, const struct ctrl_event *ev)
{
	struct pod_ent probe = { .key = (char *)ev->key };
	struct pod_ent *e = RB_FIND(pod_key_tree, &p->pods, &probe);
	if (!e && ev->type != CTRL_DELETED) {
		/* Most pods belong to something else: look before decoding. */
		const void *refs;
		size_t len;
		if (codec_msgpack_get(ev->val, ev->val_len, "metadata.ownerReferences", &refs, &len) !=
			    0 ||
		    !memmem(refs, len, "StatefulSet", 11)) {
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
	const json_t *ref = pod ? ctrl__controller_ref_to(pod, "apps", "StatefulSet") : NULL;
	char owner_key[512];
	if (e) {
		pod_forget(p, e);
	}
	if (!ref || ctrl_key(p->sts_kind, ev->ns, ctrl_str(ref, "name"), owner_key,
			     sizeof(owner_key)) < 0) {
		json_decref(pod);
		return;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		goto oom;
	}
	const char *phase = ctrl_str(pod, "status.phase");
	const json_t *labels = api_json_path(pod, "metadata.labels");
	e->key = strdup(ev->key);
	e->name = strdup(ev->name);
	e->uid = ctrl__strdup0(ctrl_str(pod, "metadata.uid"));
	e->owner_uid = ctrl__strdup0(ctrl_str(ref, "uid"));
	e->owner_key = strdup(owner_key);
	e->revision = ctrl__strdup0(json_string_value(json_object_get(labels, STS_REVISION_LABEL)));
	if (!e->key || !e->name || !e->uid || !e->owner_uid || !e->owner_key || !e->revision) {
		pod_ent_free(e);
		goto oom;
	}
	e->running = str_eq(phase, "Running");
	e->failed = str_eq(phase, "Failed");
	e->succeeded = str_eq(phase, "Succeeded");
	e->ready = ctrl_pod_ready(pod);
	e->ready_ms = e->ready ? ctrl__condition_time(pod, "Ready", "lastTransitionTime") : 0;
	e->deleting = ctrl_str(pod, "metadata.deletionTimestamp") != NULL;
	RB_INSERT(pod_key_tree, &p->pods, e);
	RB_INSERT(pod_owner_tree, &p->pods_by_owner, e);
	ctrl_enqueue(c, owner_key);
	json_decref(pod);
	return;
oom:
	ctrl_log(c, LOG_LEVEL_ERROR, "out of memory caching pod %s", ev->key);
	json_decref(pod);
}

static void sts_on_event(struct ctrl *c, const struct ctrl_event *ev)
{
	struct sts_priv *p = ctrl_priv(c);
	if (ev->kind == p->pod_kind) {
		on_pod(c, p, ev);
	} else if (ev->kind == p->sts_kind && ev->type != CTRL_DELETED) {
		ctrl_enqueue(c, ev->key);
	}
}

/* ------------------------------------------------------------ sync */

struct sync_state {
	struct ctrl *c;
	struct sts_priv *p;
	json_t *set;
	const char *key, *ns, *name;
	char update_rev[300], current_rev[300];
	uint64_t now;
	int64_t min_ready_ms;
	uint64_t recheck_ms;
	unsigned writes;
	bool retry;
};

static void write_failed(struct sync_state *st, int rv, const char *what)
{
	if (rv != -ESHUTDOWN) {
		ctrl_log(st->c, LOG_LEVEL_WARN, "%s for %s: %s", what, st->key, strerror(-rv));
		st->retry = true;
	}
}

static bool running_and_ready(const struct pod_ent *e)
{
	return e->running && e->ready;
}

static bool pod_available(struct sync_state *st, const struct pod_ent *e)
{
	return running_and_ready(e) && !e->deleting &&
	       ctrl__available_at(e->ready_ms, st->min_ready_ms, st->now, &st->recheck_ms);
}

static bool pod_healthy(struct sync_state *st, const struct pod_ent *e)
{
	return !e->deleting && pod_available(st, e);
}

static void delete_pod(struct sync_state *st, const struct pod_ent *e, const char *reason)
{
	int rv = ctrl_delete(st->c, st->p->pod_kind, st->ns, e->name, 0, e->uid, NULL, -1, st->key);
	if (rv != 0) {
		write_failed(st, rv, "delete pod");
		return;
	}
	st->writes++;
	ctrl_event(st->c, st->set, "Normal", reason, "delete Pod %s in StatefulSet %s successful",
		   e->name, st->name);
}

static int set_str(json_t *obj, const char *key, const char *value)
{
	return json_object_set_new(obj, key, json_string(value)) == 0 ? 0 : -ENOMEM;
}


/* The template of revision @rev: the set's own for the update revision;
 * for an older one, rebuilt from a pod that still has it (the per-pod
 * identity removed). New reference, NULL on OOM. */
static json_t *revision_template(struct sync_state *st, const char *rev, const char *uid)
{
	const json_t *tmpl = api_json_path(st->set, "spec.template");
	if (strcmp(rev, st->update_rev) == 0) {
		return json_deep_copy(tmpl);
	}
	struct sts_priv *p = st->p;
	struct pod_ent probe = { .owner_uid = (char *)uid, .key = "" };
	for (struct pod_ent *e = RB_NFIND(pod_owner_tree, &p->pods_by_owner, &probe);
	     e && strcmp(e->owner_uid, uid) == 0; e = RB_NEXT(pod_owner_tree, &p->pods_by_owner, e)) {
		if (strcmp(e->revision, rev) != 0) {
			continue;
		}
		json_t *pod = ctrl_get(st->c, p->pod_kind, st->ns, e->name, NULL);
		if (!pod) {
			continue;
		}
		json_t *out = json_pack("{s:{}, s:O}", "metadata", "spec", json_object_get(pod, "spec"));
		json_t *labels = json_deep_copy(api_json_path(pod, "metadata.labels"));
		json_t *annotations = api_json_path(pod, "metadata.annotations");
		json_decref(pod);
		if (!out) {
			json_decref(labels);
			return NULL;
		}
		json_t *spec = json_deep_copy(json_object_get(out, "spec"));
		json_object_set_new(out, "spec", spec);
		if (labels) {
			json_object_del(labels, STS_POD_NAME_LABEL);
			json_object_del(labels, STS_POD_INDEX_LABEL);
			json_object_del(labels, STS_REVISION_LABEL);
			json_object_set_new(json_object_get(out, "metadata"), "labels", labels);
		}
		if (annotations) {
			json_object_set(json_object_get(out, "metadata"), "annotations", annotations);
		}
		if (spec) {
			json_object_del(spec, "nodeName");
			json_object_del(spec, "hostname");
			json_object_del(spec, "subdomain");
		}
		return out;
	}
	return json_deep_copy(tmpl);
}

static void claim_name(const json_t *claim_tmpl, const char *set, int64_t ordinal, char *buf,
		       size_t size)
{
	const char *cn = ctrl_str(claim_tmpl, "metadata.name");
	snprintf(buf, size, "%s-%s-%lld", cn ? cn : "", set, (long long)ordinal);
}

/* Creates the missing claims of @ordinal. */
static void ensure_claims(struct sync_state *st, int64_t ordinal, const char *pod_name)
{
	size_t i;
	json_t *ct;
	const char *when_deleted =
		ctrl_str(st->set, "spec.persistentVolumeClaimRetentionPolicy.whenDeleted");
	json_array_foreach(api_json_path(st->set, "spec.volumeClaimTemplates"), i, ct)
	{
		char name[512];
		claim_name(ct, st->name, ordinal, name, sizeof(name));
		char key[1024];
		struct store_kv kv;
		int klen = ctrl_key(st->p->pvc_kind, st->ns, name, key, sizeof(key));
		if (klen < 0 || store_get(ctrl_store(st->c), key, (size_t)klen, &kv) == 0) {
			continue;
		}
		json_t *claim = json_pack("{s:s, s:s, s:{s:s, s:s}, s:O}", "apiVersion", "v1", "kind",
					  "PersistentVolumeClaim", "metadata", "name", name,
					  "namespace", st->ns, "spec",
					  json_object_get(ct, "spec") ? json_object_get(ct, "spec")
								      : json_object());
		json_t *meta = claim ? json_object_get(claim, "metadata") : NULL;
		json_t *labels = meta ? json_deep_copy(api_json_path(ct, "metadata.labels")) : NULL;
		if (meta && !labels) {
			labels = json_object();
		}
		if (!claim || !labels || json_object_set_new(meta, "labels", labels) != 0) {
			json_decref(claim);
			write_failed(st, -ENOMEM, "create claim");
			continue;
		}
		/* Kubernetes labels claims with the set's matchLabels. */
		json_object_update(labels, api_json_path(st->set, "spec.selector.matchLabels"));
		const json_t *ann = api_json_path(ct, "metadata.annotations");
		if (json_is_object(ann)) {
			json_object_set(meta, "annotations", (json_t *)ann);
		}
		if (str_eq(when_deleted, "Delete")) {
			json_t *ref = ctrl_owner_ref(st->p->sts_kind, st->set);
			json_t *refs = ref ? json_array() : NULL;
			if (refs && json_array_append_new(refs, ref) == 0) {
				json_object_set_new(meta, "ownerReferences", refs);
			} else {
				json_decref(ref);
				json_decref(refs);
			}
		}
		int rv = ctrl_create(st->c, st->p->pvc_kind, claim, st->key);
		if (rv != 0) {
			write_failed(st, rv, "create claim");
			if (rv == -EINVAL) {
				ctrl_event(st->c, st->set, "Warning", "FailedCreate",
					   "create Claim %s for Pod %s in StatefulSet %s failed",
					   name, pod_name, st->name);
			}
		} else {
			st->writes++;
			ctrl_event(st->c, st->set, "Normal", "SuccessfulCreate",
				   "create Claim %s Pod %s in StatefulSet %s success", name, pod_name,
				   st->name);
		}
		json_decref(claim);
	}
}

/* The pod of @ordinal at revision @rev. */
static json_t *new_pod(struct sync_state *st, int64_t ordinal, const char *rev, const char *uid)
{
	char name[300], index[32];
	snprintf(name, sizeof(name), "%s-%lld", st->name, (long long)ordinal);
	snprintf(index, sizeof(index), "%lld", (long long)ordinal);
	json_t *tmpl = revision_template(st, rev, uid);
	json_t *pod = json_object();
	json_t *ref = ctrl_owner_ref(st->p->sts_kind, st->set);
	json_t *refs = json_array();
	if (!tmpl || !pod || !ref || !refs || json_array_append_new(refs, ref) != 0) {
		if (!refs || json_array_size(refs) == 0) {
			json_decref(ref);
		}
		goto oom;
	}
	json_t *meta = ctrl__child_object(tmpl, "metadata");
	json_t *spec = ctrl__child_object(tmpl, "spec");
	json_t *labels = meta ? ctrl__child_object(meta, "labels") : NULL;
	if (!meta || !spec || !labels) {
		goto oom;
	}
	json_object_del(meta, "generateName");
	json_object_del(meta, "creationTimestamp");
	if (set_str(meta, "name", name) || set_str(meta, "namespace", st->ns) ||
	    set_str(labels, STS_POD_NAME_LABEL, name) || set_str(labels, STS_POD_INDEX_LABEL, index) ||
	    set_str(labels, STS_REVISION_LABEL, rev) ||
	    json_object_set(meta, "ownerReferences", refs) != 0 || set_str(spec, "hostname", name)) {
		goto oom;
	}
	const char *svc = ctrl_str(st->set, "spec.serviceName");
	if (svc && *svc && set_str(spec, "subdomain", svc)) {
		goto oom;
	}
	/* Each claim template becomes a volume of the same name, replacing
	 * one the template may have. */
	const json_t *cts = api_json_path(st->set, "spec.volumeClaimTemplates");
	if (json_array_size(cts) > 0) {
		json_t *vols = json_object_get(spec, "volumes");
		if (!json_is_array(vols)) {
			vols = json_array();
			if (!vols || json_object_set_new(spec, "volumes", vols) != 0) {
				goto oom;
			}
		}
		size_t i;
		json_t *ct;
		json_array_foreach(cts, i, ct)
		{
			char cname[512];
			const char *vname = ctrl_str(ct, "metadata.name");
			if (!vname) {
				continue;
			}
			claim_name(ct, st->name, ordinal, cname, sizeof(cname));
			json_t *vol = json_pack("{s:s, s:{s:s}}", "name", vname, "persistentVolumeClaim",
						"claimName", cname);
			if (!vol) {
				goto oom;
			}
			size_t j;
			json_t *v;
			bool replaced = false;
			json_array_foreach(vols, j, v)
			{
				if (str_eq(ctrl_str(v, "name"), vname)) {
					json_array_set(vols, j, vol);
					replaced = true;
					break;
				}
			}
			if (!replaced && json_array_append(vols, vol) != 0) {
				json_decref(vol);
				goto oom;
			}
			json_decref(vol);
		}
	}
	if (set_str(pod, "apiVersion", "v1") || set_str(pod, "kind", "Pod") ||
	    json_object_set(pod, "metadata", meta) != 0 || json_object_set(pod, "spec", spec) != 0) {
		goto oom;
	}
	json_decref(refs);
	json_decref(tmpl);
	return pod;
oom:
	json_decref(refs);
	json_decref(tmpl);
	json_decref(pod);
	return NULL;
}

static void create_pod(struct sync_state *st, int64_t ordinal, const char *rev, const char *uid)
{
	char name[300];
	snprintf(name, sizeof(name), "%s-%lld", st->name, (long long)ordinal);
	ensure_claims(st, ordinal, name);
	json_t *pod = new_pod(st, ordinal, rev, uid);
	if (!pod) {
		write_failed(st, -ENOMEM, "create pod");
		return;
	}
	int rv = ctrl_create(st->c, st->p->pod_kind, pod, st->key);
	if (rv != 0) {
		write_failed(st, rv, "create pod");
		if (rv == -EINVAL) {
			ctrl_event(st->c, st->set, "Warning", "FailedCreate",
				   "create Pod %s in StatefulSet %s failed: invalid pod", name, st->name);
		}
	} else {
		st->writes++;
		ctrl_event(st->c, st->set, "Normal", "SuccessfulCreate",
			   "create Pod %s in StatefulSet %s successful", name, st->name);
	}
	json_decref(pod);
}

/* Kubernetes' newVersionedStatefulSetPod: below the partition a pod keeps
 * the current revision. */
static const char *revision_for(struct sync_state *st, int64_t ordinal)
{
	const char *type = ctrl_str(st->set, "spec.updateStrategy.type");
	if (!type || strcmp(type, "RollingUpdate") == 0) {
		int64_t partition = ctrl_int(st->set, "spec.updateStrategy.rollingUpdate.partition", 0);
		if (ordinal < ctrl_int(st->set, "spec.ordinals.start", 0) + partition) {
			return st->current_rev;
		}
	}
	return st->update_rev;
}

static int set_status_int(json_t *status, const char *field, int64_t v, bool omit_zero)
{
	json_t *have = json_object_get(status, field);
	if (json_is_integer(have) && json_integer_value(have) == v) {
		return 0;
	}
	if (!have && omit_zero && v == 0) {
		return 0;
	}
	json_object_set_new(status, field, json_integer(v));
	return 1;
}

static int set_status_str(json_t *status, const char *field, const char *v)
{
	if (str_eq(json_string_value(json_object_get(status, field)), v)) {
		return 0;
	}
	json_object_set_new(status, field, json_string(v));
	return 1;
}

struct member {
	struct pod_ent *pod;
	int64_t ordinal;
};

static int member_cmp(const void *a, const void *b)
{
	const struct member *x = a, *y = b;
	return x->ordinal < y->ordinal ? -1 : x->ordinal > y->ordinal;
}

static void sts_sync_set(struct sync_state *st)
{
	struct sts_priv *p = st->p;
	const char *uid = ctrl_str(st->set, "metadata.uid");
	const json_t *tmpl = api_json_path(st->set, "spec.template");
	if (!uid || !json_is_object(tmpl)) {
		return;
	}
	char hash[16];
	if (ctrl__pod_template_hash(tmpl, -1, hash, sizeof(hash)) != 0) {
		write_failed(st, -ENOMEM, "sync");
		return;
	}
	snprintf(st->update_rev, sizeof(st->update_rev), "%s-%s", st->name, hash);
	const char *cur = ctrl_str(st->set, "status.currentRevision");
	snprintf(st->current_rev, sizeof(st->current_rev), "%s",
		 cur && *cur ? cur : st->update_rev);

	int64_t replicas = ctrl_int(st->set, "spec.replicas", 1);
	int64_t start = ctrl_int(st->set, "spec.ordinals.start", 0);
	if (replicas < 0) {
		replicas = 0;
	}
	const char *policy = ctrl_str(st->set, "spec.podManagementPolicy");
	bool monotonic = !str_eq(policy, "Parallel");
	const char *strategy = ctrl_str(st->set, "spec.updateStrategy.type");
	bool rolling = !strategy || strcmp(strategy, "RollingUpdate") == 0;

	/* The set's pods by ordinal: members (in range) and condemned. */
	size_t n = 0, cap = 0;
	struct member *all = NULL;
	struct pod_ent probe = { .owner_uid = (char *)uid, .key = "" };
	for (struct pod_ent *e = RB_NFIND(pod_owner_tree, &p->pods_by_owner, &probe);
	     e && strcmp(e->owner_uid, uid) == 0; e = RB_NEXT(pod_owner_tree, &p->pods_by_owner, e)) {
		int64_t ord = pod_ordinal(st->name, e->name);
		if (ord < 0) {
			continue;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			struct member *m = realloc(all, cap * sizeof(*m));
			if (!m) {
				free(all);
				write_failed(st, -ENOMEM, "sync");
				return;
			}
			all = m;
		}
		all[n].pod = e;
		all[n].ordinal = ord;
		n++;
	}
	if (n > 1) {
		qsort(all, n, sizeof(*all), member_cmp);
	}

	/* Status from what exists now. */
	int64_t s_replicas = 0, s_ready = 0, s_avail = 0, s_current = 0, s_updated = 0;
	for (size_t i = 0; i < n; i++) {
		struct pod_ent *e = all[i].pod;
		s_replicas++;
		if (running_and_ready(e)) {
			s_ready++;
			if (pod_available(st, e)) {
				s_avail++;
			}
		}
		if (!e->deleting) {
			if (strcmp(e->revision, st->current_rev) == 0) {
				s_current++;
			}
			if (strcmp(e->revision, st->update_rev) == 0) {
				s_updated++;
			}
		}
	}

	/* Members: create the missing ones, replace failed ones. */
	size_t i = 0;
	bool blocked = false;
	for (int64_t ord = start; ord < start + replicas && !blocked; ord++) {
		while (i < n && all[i].ordinal < ord) {
			i++;
		}
		struct pod_ent *e = i < n && all[i].ordinal == ord ? all[i].pod : NULL;
		if (!e) {
			create_pod(st, ord, revision_for(st, ord), uid);
			blocked = monotonic;
			continue;
		}
		if ((e->failed || e->succeeded) && !e->deleting) {
			ctrl_event(st->c, st->set, "Warning", "RecreatingFailedPod",
				   "StatefulSet %s/%s is recreating failed Pod %s", st->ns, st->name,
				   e->name);
			delete_pod(st, e, "SuccessfulDelete");
			blocked = monotonic;
			continue;
		}
		if (e->deleting) {
			/* Waits for it to go before recreating it. */
			blocked = monotonic;
			continue;
		}
		if (monotonic && !pod_available(st, e)) {
			blocked = true;
			continue;
		}
		ensure_claims(st, ord, e->name);
	}

	/* Condemned: from the highest ordinal down. */
	if (!blocked) {
		bool unhealthy_member = false;
		for (size_t k = 0; k < n; k++) {
			if (all[k].ordinal >= start && all[k].ordinal < start + replicas &&
			    !pod_healthy(st, all[k].pod)) {
				unhealthy_member = true;
			}
		}
		for (size_t k = n; k-- > 0 && !blocked;) {
			struct pod_ent *e = all[k].pod;
			if (all[k].ordinal >= start && all[k].ordinal < start + replicas) {
				continue;
			}
			if (e->deleting) {
				blocked = monotonic;
				continue;
			}
			/* OrderedReady: scale down only from a healthy set (or
			 * the unhealthy pod is the one to go). */
			if (monotonic && unhealthy_member) {
				blocked = true;
				continue;
			}
			delete_pod(st, e, "SuccessfulDelete");
			blocked = monotonic;
		}
	}

	/* RollingUpdate: from the highest ordinal down to the partition. */
	if (!blocked && rolling && st->writes == 0) {
		int64_t partition = ctrl_int(st->set, "spec.updateStrategy.rollingUpdate.partition", 0);
		for (size_t k = n; k-- > 0;) {
			struct pod_ent *e = all[k].pod;
			int64_t ord = all[k].ordinal;
			if (ord >= start + replicas) {
				continue;
			}
			if (ord < start + partition) {
				break;
			}
			if (strcmp(e->revision, st->update_rev) != 0 && !e->deleting) {
				delete_pod(st, e, "SuccessfulDelete");
				break;
			}
			if (!pod_healthy(st, e)) {
				break;
			}
		}
	}

	/* Status, once what this sync changed is seen. */
	if (st->writes == 0) {
		json_t *status = ctrl__child_object(st->set, "status");
		if (!status) {
			write_failed(st, -ENOMEM, "status");
			free(all);
			return;
		}
		const char *current = st->current_rev;
		int64_t current_replicas = s_current;
		if (rolling && s_updated == s_replicas && s_ready == s_replicas &&
		    s_replicas == replicas) {
			/* The rollout is complete: the update revision becomes
			 * the current one. */
			current = st->update_rev;
			current_replicas = s_updated;
		}
		int changed = 0;
		changed |= set_status_int(status, "observedGeneration",
					  ctrl_int(st->set, "metadata.generation", 0), true);
		changed |= set_status_int(status, "replicas", s_replicas, false);
		changed |= set_status_int(status, "readyReplicas", s_ready, true);
		changed |= set_status_int(status, "currentReplicas", current_replicas, true);
		changed |= set_status_int(status, "updatedReplicas", s_updated, true);
		changed |= set_status_int(status, "availableReplicas", s_avail, false);
		changed |= set_status_int(status, "collisionCount", 0, false);
		changed |= set_status_str(status, "currentRevision", current);
		changed |= set_status_str(status, "updateRevision", st->update_rev);
		if (changed) {
			int rv = ctrl_update(st->c, p->sts_kind, st->set, st->key);
			if (rv != 0) {
				write_failed(st, rv, "update status");
			}
		}
	}
	free(all);
}

static void sts_sync(struct ctrl *c, const char *key)
{
	struct sts_priv *p = ctrl_priv(c);
	char ns[256], name[256];
	json_t *set = ctrl__get_live(c, p->sts_kind, key, ns, name, sizeof(ns));
	if (!set) {
		return;
	}
	struct sync_state st = {
		.c = c,
		.p = p,
		.set = set,
		.key = key,
		.ns = ns,
		.name = name,
		.now = ctrl_now_ms(c),
		.min_ready_ms = ctrl_int(set, "spec.minReadySeconds", 0) * 1000,
	};
	sts_sync_set(&st);
	ctrl__requeue(c, key, st.retry, STS_RETRY_MS, st.recheck_ms);
	json_decref(set);
}

/* ------------------------------------------------------------ lifecycle */

static int sts_start(struct ctrl *c)
{
	struct sts_priv *p = calloc(1, sizeof(*p));
	if (!p) {
		return -ENOMEM;
	}
	p->sts_kind = api_kind_by_resource("apps", "v1", "statefulsets");
	p->pod_kind = api_kind_by_resource("", "v1", "pods");
	p->pvc_kind = api_kind_by_resource("", "v1", "persistentvolumeclaims");
	if (!p->sts_kind || !p->pod_kind || !p->pvc_kind) {
		free(p);
		return -ENOENT;
	}
	RB_INIT(&p->pods);
	RB_INIT(&p->pods_by_owner);
	ctrl_set_priv(c, p);
	return 0;
}

static void sts_stop(struct ctrl *c)
{
	struct sts_priv *p = ctrl_priv(c);
	if (!p) {
		return;
	}
	struct pod_ent *e, *en;
	RB_FOREACH_SAFE(e, pod_key_tree, &p->pods, en)
	{
		pod_forget(p, e);
	}
	free(p);
	ctrl_set_priv(c, NULL);
}

const struct ctrl_ops ctrl_statefulset_ops = {
	.name = "statefulset",
	.start = sts_start,
	.stop = sts_stop,
	.on_event = sts_on_event,
	.sync = sts_sync,
};
