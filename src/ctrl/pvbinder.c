/* The PersistentVolume binder: binds claims to volumes with Kubernetes'
 * semantics (the persistent volume controller's syncClaim/syncVolume),
 * without provisioning.
 *
 * Binding of an unbound claim:
 * 1. Choose a volume: one pre-bound to the claim (its claimRef names it),
 *    else the smallest Available volume whose capacity covers the
 *    request and that has every requested access mode, the same
 *    storageClassName ("" matches only ""), the same volumeMode, and the
 *    labels the claim's selector asks for. A claim with spec.volumeName
 *    takes that volume only.
 * 2. Write the volume: spec.claimRef (with the claim's uid), phase Bound.
 * 3. Once that write is seen (it requeues the claim), write the claim:
 *    spec.volumeName, the bind-completed annotation, phase Bound,
 *    status.capacity and accessModes from the volume.
 * Each step is one CAS write, so a step lost to a crash or a conflict is
 * redone from what the store holds: step 3 starts from any volume whose
 * claimRef.uid is the claim's.
 *
 * Volumes: an unbound one is Available; one whose claim is gone (or was
 * replaced by a claim with another uid) is Released (Retain, and Recycle,
 * which is deprecated) or deleted (Delete). A bound claim whose volume is
 * gone is Lost.
 *
 * Not done: dynamic provisioning, volume node affinity, storage classes
 * with WaitForFirstConsumer (StorageClass is not served), expansion.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/tree.h>

#include "src/api/selector.h"
#include "src/ctrl/ctrl.h"
#include "src/ctrl/podtemplate.h"
#include "src/ctrl/quantity.h"
#include "src/lib/log.h"

#define ANN_BIND_COMPLETED "pv.kubernetes.io/bind-completed"
#define ANN_BOUND_BY_CONTROLLER "pv.kubernetes.io/bound-by-controller"
#define ANN_BETA_CLASS "volume.beta.kubernetes.io/storage-class"
#define PV_PREFIX "/registry/persistentvolumes/"
#define PVC_PREFIX "/registry/persistentvolumeclaims/"
#define PV_RETRY_MS 5000

/* A volume as last seen (the whole decoded object: volumes are few). */
struct pv_ent {
	RB_ENTRY(pv_ent) link;
	char *name;
	json_t *pv; /* resourceVersion set */
};

/* A claim waiting for a volume. */
struct claim_ent {
	RB_ENTRY(claim_ent) link;
	char *key;
	bool reported; /* FailedBinding already recorded */
};

static int pv_cmp(const struct pv_ent *a, const struct pv_ent *b)
{
	return strcmp(a->name, b->name);
}

static int claim_cmp(const struct claim_ent *a, const struct claim_ent *b)
{
	return strcmp(a->key, b->key);
}

RB_HEAD(pv_tree, pv_ent);
RB_HEAD(claim_tree, claim_ent);
/* RB_GENERATE_STATIC needs BSD's __unused, which libbsd leaves undefined. */
RB_GENERATE_INTERNAL(pv_tree, pv_ent, link, pv_cmp, static __attribute__((unused)))
RB_GENERATE_INTERNAL(claim_tree, claim_ent, link, claim_cmp, static __attribute__((unused)))

struct pvb_priv {
	const struct api_kind *pv_kind, *pvc_kind;
	struct pv_tree volumes;
	struct claim_tree pending;
};

/* ------------------------------------------------------------ helpers */

static bool str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

static int set_annotation(json_t *obj, const char *key, const char *value)
{
	json_t *meta = ctrl__child_object(obj, "metadata");
	json_t *ann = meta ? ctrl__child_object(meta, "annotations") : NULL;
	if (!ann || json_object_set_new(ann, key, json_string(value)) != 0) {
		return -ENOMEM;
	}
	return 0;
}

/* GetPersistentVolume(Claim)Class: the beta annotation wins. */
static const char *class_of(const json_t *obj)
{
	const char *beta = ctrl__annotation(obj, ANN_BETA_CLASS);
	return beta ? beta : or_empty(ctrl_str(obj, "spec.storageClassName"));
}

static const char *volume_mode(const json_t *obj)
{
	const char *m = ctrl_str(obj, "spec.volumeMode");
	return m ? m : "Filesystem";
}

static void pv_key(const char *name, char *buf, size_t size)
{
	snprintf(buf, size, PV_PREFIX "%s", name);
}

static void claim_key(const char *ns, const char *name, char *buf, size_t size)
{
	snprintf(buf, size, PVC_PREFIX "%s/%s", ns, name);
}

/* The claim a volume's claimRef names, as a store key; false if none. */
static bool claim_ref_key(const json_t *pv, char *buf, size_t size)
{
	const char *ns = ctrl_str(pv, "spec.claimRef.namespace");
	const char *name = ctrl_str(pv, "spec.claimRef.name");
	if (!ns || !name) {
		return false;
	}
	claim_key(ns, name, buf, size);
	return true;
}

static int64_t storage_of(const json_t *v)
{
	int64_t n = 0;
	if (!v || ctrl_quantity_value(v, &n) != 0) {
		return 0;
	}
	return n;
}

/* Whether the volume has every access mode the claim asks for. */
static bool modes_satisfied(const json_t *claim, const json_t *pv)
{
	const json_t *have = api_json_path(pv, "spec.accessModes");
	size_t i, j;
	json_t *want, *h;
	json_array_foreach(api_json_path(claim, "spec.accessModes"), i, want)
	{
		bool found = false;
		json_array_foreach(have, j, h)
		{
			if (json_equal(h, want)) {
				found = true;
				break;
			}
		}
		if (!found) {
			return false;
		}
	}
	return true;
}

/* Whether the volume's claimRef names this claim (and its uid, when the
 * reference has one): isVolumeBoundToClaim. */
static bool volume_bound_to(const json_t *pv, const json_t *claim)
{
	const json_t *ref = api_json_path(pv, "spec.claimRef");
	if (!json_is_object(ref)) {
		return false;
	}
	if (!str_eq(ctrl_str(ref, "name"), ctrl_str(claim, "metadata.name")) ||
	    !str_eq(ctrl_str(ref, "namespace"), ctrl_str(claim, "metadata.namespace"))) {
		return false;
	}
	const char *uid = ctrl_str(ref, "uid");
	return !uid || !*uid || str_eq(uid, ctrl_str(claim, "metadata.uid"));
}

/* What checkVolumeSatisfyClaim checks for a claim naming its volume. */
static const char *volume_mismatch(const json_t *claim, const json_t *pv)
{
	int64_t want = storage_of(api_json_path(claim, "spec.resources.requests.storage"));
	int64_t have = storage_of(api_json_path(pv, "spec.capacity.storage"));
	if (have < want) {
		return "requested PV is too small";
	}
	if (strcmp(class_of(claim), class_of(pv)) != 0) {
		return "storageClassName does not match";
	}
	if (strcmp(volume_mode(claim), volume_mode(pv)) != 0) {
		return "incompatible volumeMode";
	}
	if (!modes_satisfied(claim, pv)) {
		return "incompatible accessMode";
	}
	return NULL;
}

/* findBestMatchForClaim: a volume pre-bound to @claim, else the smallest
 * matching available one (ties: the first by name). Borrowed. */
static struct pv_ent *best_match(struct pvb_priv *p, const json_t *claim,
				 const struct api_selector *sel)
{
	int64_t want = storage_of(api_json_path(claim, "spec.resources.requests.storage"));
	const char *cls = class_of(claim);
	const char *mode = volume_mode(claim);
	struct pv_ent *best = NULL;
	int64_t best_size = 0;
	struct pv_ent *e;
	RB_FOREACH(e, pv_tree, &p->volumes)
	{
		const json_t *pv = e->pv;
		int64_t size = storage_of(api_json_path(pv, "spec.capacity.storage"));
		if (ctrl_str(pv, "metadata.deletionTimestamp") || size < want ||
		    strcmp(mode, volume_mode(pv)) != 0 || !modes_satisfied(claim, pv)) {
			continue;
		}
		if (volume_bound_to(pv, claim)) {
			return e;
		}
		if (json_is_object(api_json_path(pv, "spec.claimRef"))) {
			continue; /* someone else's */
		}
		const char *phase = ctrl_str(pv, "status.phase");
		if (phase && *phase && !str_eq(phase, "Available") && !str_eq(phase, "Pending")) {
			continue;
		}
		if (strcmp(cls, class_of(pv)) != 0) {
			continue;
		}
		if (sel && !api_selector_match_json(sel, api_json_path(pv, "metadata.labels"))) {
			continue;
		}
		if (!best || size < best_size) {
			best = e;
			best_size = size;
		}
	}
	return best;
}

static struct pv_ent *volume_bound_by_uid(struct pvb_priv *p, const char *uid)
{
	struct pv_ent *e;
	RB_FOREACH(e, pv_tree, &p->volumes)
	{
		if (str_eq(ctrl_str(e->pv, "spec.claimRef.uid"), uid)) {
			return e;
		}
	}
	return NULL;
}

static struct pv_ent *volume_named(struct pvb_priv *p, const char *name)
{
	struct pv_ent probe = { .name = (char *)name };
	return RB_FIND(pv_tree, &p->volumes, &probe);
}

static struct claim_ent *pending_find(struct pvb_priv *p, const char *key)
{
	struct claim_ent probe = { .key = (char *)key };
	return RB_FIND(claim_tree, &p->pending, &probe);
}

static void pending_remove(struct pvb_priv *p, const char *key)
{
	struct claim_ent *e = pending_find(p, key);
	if (e) {
		RB_REMOVE(claim_tree, &p->pending, e);
		free(e->key);
		free(e);
	}
}

static void pending_add(struct ctrl *c, struct pvb_priv *p, const char *key)
{
	if (pending_find(p, key)) {
		return;
	}
	struct claim_ent *e = calloc(1, sizeof(*e));
	if (!e || !(e->key = strdup(key))) {
		free(e);
		ctrl_log(c, LOG_LEVEL_ERROR, "out of memory tracking claim %s", key);
		return;
	}
	RB_INSERT(claim_tree, &p->pending, e);
}

/* ------------------------------------------------------------ events */

static void enqueue_pending(struct ctrl *c, struct pvb_priv *p)
{
	struct claim_ent *e;
	RB_FOREACH(e, claim_tree, &p->pending)
	{
		ctrl_enqueue(c, e->key);
	}
}

static void on_volume(struct ctrl *c, struct pvb_priv *p, const struct ctrl_event *ev)
{
	struct pv_ent *e = volume_named(p, ev->name);
	char key[512];
	if (ev->type == CTRL_DELETED) {
		if (e) {
			if (claim_ref_key(e->pv, key, sizeof(key))) {
				ctrl_enqueue(c, key); /* its claim is Lost */
			}
			RB_REMOVE(pv_tree, &p->volumes, e);
			free(e->name);
			json_decref(e->pv);
			free(e);
		}
		return;
	}
	json_t *pv = ctrl_decode(ev->val, ev->val_len, ev->mod_rev);
	if (!pv) {
		return;
	}
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e || !(e->name = strdup(ev->name))) {
			free(e);
			json_decref(pv);
			ctrl_log(c, LOG_LEVEL_ERROR, "out of memory caching volume %s", ev->name);
			return;
		}
		RB_INSERT(pv_tree, &p->volumes, e);
	}
	json_decref(e->pv);
	e->pv = pv;
	ctrl_enqueue(c, ev->key);
	if (claim_ref_key(pv, key, sizeof(key))) {
		ctrl_enqueue(c, key);
	}
	if (!json_is_object(api_json_path(pv, "spec.claimRef")) ||
	    !ctrl_str(pv, "spec.claimRef.uid")) {
		/* Available (or pre-bound): a waiting claim may fit now. */
		enqueue_pending(c, p);
	}
}

static void on_claim(struct ctrl *c, struct pvb_priv *p, const struct ctrl_event *ev)
{
	if (ev->type == CTRL_DELETED) {
		pending_remove(p, ev->key);
		/* Its volume is released. */
		struct pv_ent *e;
		RB_FOREACH(e, pv_tree, &p->volumes)
		{
			if (str_eq(ctrl_str(e->pv, "spec.claimRef.name"), ev->name) &&
			    str_eq(ctrl_str(e->pv, "spec.claimRef.namespace"), ev->ns)) {
				char key[512];
				pv_key(e->name, key, sizeof(key));
				ctrl_enqueue(c, key);
			}
		}
		return;
	}
	json_t *claim = ctrl_decode(ev->val, ev->val_len, 0);
	if (!claim) {
		return;
	}
	const char *phase = ctrl_str(claim, "status.phase");
	if (!ctrl__annotation(claim, ANN_BIND_COMPLETED) && (!phase || str_eq(phase, "Pending"))) {
		pending_add(c, p, ev->key);
	} else {
		pending_remove(p, ev->key);
	}
	json_decref(claim);
	ctrl_enqueue(c, ev->key);
}

static void pvb_on_event(struct ctrl *c, const struct ctrl_event *ev)
{
	struct pvb_priv *p = ctrl_priv(c);
	if (ev->kind == p->pv_kind) {
		on_volume(c, p, ev);
	} else if (ev->kind == p->pvc_kind) {
		on_claim(c, p, ev);
	}
}

/* ------------------------------------------------------------ writes */

static void write_failed(struct ctrl *c, const char *key, int rv, const char *what)
{
	if (rv == -ESHUTDOWN) {
		return;
	}
	ctrl_log(c, LOG_LEVEL_WARN, "%s for %s: %s", what, key, strerror(-rv));
	ctrl_enqueue_after(c, key, PV_RETRY_MS);
}

/* Step 2: the volume's claimRef and phase. */
static void bind_volume(struct ctrl *c, struct pvb_priv *p, const struct pv_ent *e,
			const json_t *claim, const char *key)
{
	json_t *pv = json_deep_copy(e->pv);
	json_t *spec = pv ? ctrl__child_object(pv, "spec") : NULL;
	json_t *status = pv ? ctrl__child_object(pv, "status") : NULL;
	bool by_controller = !json_is_object(json_object_get(spec, "claimRef"));
	json_t *ref = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kind", "PersistentVolumeClaim",
				"namespace", or_empty(ctrl_str(claim, "metadata.namespace")), "name",
				or_empty(ctrl_str(claim, "metadata.name")), "uid",
				or_empty(ctrl_str(claim, "metadata.uid")), "apiVersion", "v1",
				"resourceVersion",
				or_empty(ctrl_str(claim, "metadata.resourceVersion")));
	int rv = -ENOMEM;
	if (!spec || !status || !ref || json_object_set_new(spec, "claimRef", ref) != 0) {
		if (!spec || !status) {
			json_decref(ref);
		}
		goto out;
	}
	if (json_object_set_new(status, "phase", json_string("Bound")) != 0 ||
	    (by_controller && set_annotation(pv, ANN_BOUND_BY_CONTROLLER, "yes") != 0)) {
		goto out;
	}
	rv = ctrl_update(c, p->pv_kind, pv, key);
out:
	if (rv != 0) {
		write_failed(c, key, rv, "bind volume");
	}
	json_decref(pv);
}

/* Step 3: the claim's volumeName, annotations and status. */
static void bind_claim(struct ctrl *c, struct pvb_priv *p, json_t *claim, const json_t *pv,
		       const char *key)
{
	json_t *spec = ctrl__child_object(claim, "spec");
	json_t *status = ctrl__child_object(claim, "status");
	const char *vname = ctrl_str(pv, "metadata.name");
	int rv = -ENOMEM;
	bool changed = false;
	if (!spec || !status || !vname) {
		goto out;
	}
	if (!str_eq(ctrl_str(spec, "volumeName"), vname)) {
		if (json_object_set_new(spec, "volumeName", json_string(vname)) != 0 ||
		    set_annotation(claim, ANN_BOUND_BY_CONTROLLER, "yes") != 0) {
			goto out;
		}
		changed = true;
	}
	if (!str_eq(ctrl__annotation(claim, ANN_BIND_COMPLETED), "yes")) {
		if (set_annotation(claim, ANN_BIND_COMPLETED, "yes") != 0) {
			goto out;
		}
		changed = true;
	}
	const json_t *cap = api_json_path(pv, "spec.capacity");
	const json_t *modes = api_json_path(pv, "spec.accessModes");
	if (!str_eq(ctrl_str(status, "phase"), "Bound")) {
		json_object_set_new(status, "phase", json_string("Bound"));
		changed = true;
	}
	if (cap && !json_equal(json_object_get(status, "capacity"), cap)) {
		json_object_set(status, "capacity", (json_t *)cap);
		changed = true;
	}
	if (modes && !json_equal(json_object_get(status, "accessModes"), modes)) {
		json_object_set(status, "accessModes", (json_t *)modes);
		changed = true;
	}
	rv = changed ? ctrl_update(c, p->pvc_kind, claim, key) : 0;
	if (rv == 0 && changed) {
		ctrl_log(c, LOG_LEVEL_DEBUG, "claim %s bound to volume %s", key, vname);
	}
out:
	if (rv != 0) {
		write_failed(c, key, rv, "bind claim");
	}
}

static void set_claim_phase(struct ctrl *c, struct pvb_priv *p, json_t *claim, const char *phase,
			    const char *key)
{
	json_t *status = ctrl__child_object(claim, "status");
	if (!status || str_eq(ctrl_str(status, "phase"), phase)) {
		return;
	}
	json_object_set_new(status, "phase", json_string(phase));
	int rv = ctrl_update(c, p->pvc_kind, claim, key);
	if (rv != 0) {
		write_failed(c, key, rv, "claim phase");
	}
}

static void set_volume_phase(struct ctrl *c, struct pvb_priv *p, const json_t *pv_in,
			     const char *phase, bool unbind, const char *key)
{
	if (str_eq(ctrl_str(pv_in, "status.phase"), phase) && !unbind) {
		return;
	}
	json_t *pv = json_deep_copy(pv_in);
	json_t *status = pv ? ctrl__child_object(pv, "status") : NULL;
	int rv = -ENOMEM;
	if (status && json_object_set_new(status, "phase", json_string(phase)) == 0) {
		if (unbind) {
			json_object_del(json_object_get(pv, "spec"), "claimRef");
			json_object_del(api_json_path(pv, "metadata.annotations"),
					ANN_BOUND_BY_CONTROLLER);
		}
		rv = ctrl_update(c, p->pv_kind, pv, key);
	}
	if (rv != 0) {
		write_failed(c, key, rv, "volume phase");
	}
	json_decref(pv);
}

/* ------------------------------------------------------------ sync */

static void sync_unbound_claim(struct ctrl *c, struct pvb_priv *p, json_t *claim,
			       const char *key)
{
	const char *uid = ctrl_str(claim, "metadata.uid");
	const char *want = ctrl_str(claim, "spec.volumeName");
	struct claim_ent *pend = pending_find(p, key);

	if (want && *want) {
		/* The user chose the volume. */
		struct pv_ent *e = volume_named(p, want);
		if (!e) {
			set_claim_phase(c, p, claim, "Pending", key);
			return;
		}
		if (str_eq(ctrl_str(e->pv, "spec.claimRef.uid"), uid)) {
			bind_claim(c, p, claim, e->pv, key);
			return;
		}
		if (json_is_object(api_json_path(e->pv, "spec.claimRef")) &&
		    !volume_bound_to(e->pv, claim)) {
			if (pend && !pend->reported) {
				pend->reported = true;
				ctrl_event(c, claim, "Warning", "FailedBinding",
					   "volume \"%s\" already bound to a different claim.", want);
			}
			set_claim_phase(c, p, claim, "Pending", key);
			return;
		}
		const char *why = volume_mismatch(claim, e->pv);
		if (why) {
			if (pend && !pend->reported) {
				pend->reported = true;
				ctrl_event(c, claim, "Warning", "VolumeMismatch",
					   "Cannot bind to requested volume \"%s\": %s", want, why);
			}
			set_claim_phase(c, p, claim, "Pending", key);
			return;
		}
		bind_volume(c, p, e, claim, key);
		return;
	}

	/* A volume already points at this claim: finish the binding. */
	struct pv_ent *e = uid ? volume_bound_by_uid(p, uid) : NULL;
	if (e) {
		bind_claim(c, p, claim, e->pv, key);
		return;
	}
	struct api_selector *sel = NULL;
	const json_t *ls = api_json_path(claim, "spec.selector");
	if (ls && !json_is_null(ls) && api_selector_from_json(ls, &sel, NULL, 0) != 0) {
		if (pend && !pend->reported) {
			pend->reported = true;
			ctrl_event(c, claim, "Warning", "FailedBinding", "invalid label selector");
		}
		return;
	}
	e = best_match(p, claim, sel);
	api_selector_free(sel);
	if (!e) {
		if (pend && !pend->reported) {
			pend->reported = true;
			ctrl_event(c, claim, "Normal", "FailedBinding",
				   *class_of(claim) ? "no persistent volumes available for this claim"
						    : "no persistent volumes available for this claim "
						      "and no storage class is set");
		}
		set_claim_phase(c, p, claim, "Pending", key);
		return;
	}
	/* The volume write requeues this claim; the next sync finds the
	 * volume by uid and writes the claim. */
	bind_volume(c, p, e, claim, key);
}

static void sync_bound_claim(struct ctrl *c, struct pvb_priv *p, json_t *claim, const char *key)
{
	const char *vname = ctrl_str(claim, "spec.volumeName");
	struct pv_ent *e = vname && *vname ? volume_named(p, vname) : NULL;
	if (!e) {
		if (!str_eq(ctrl_str(claim, "status.phase"), "Lost")) {
			ctrl_event(c, claim, "Warning", "ClaimLost",
				   "Bound claim has lost its PersistentVolume. Data on the volume is "
				   "lost!");
		}
		set_claim_phase(c, p, claim, "Lost", key);
		return;
	}
	const char *ref_uid = ctrl_str(e->pv, "spec.claimRef.uid");
	if (!json_is_object(api_json_path(e->pv, "spec.claimRef"))) {
		/* The volume lost its claimRef: bind it again. */
		bind_volume(c, p, e, claim, key);
		return;
	}
	if (!str_eq(ref_uid, ctrl_str(claim, "metadata.uid"))) {
		if (!str_eq(ctrl_str(claim, "status.phase"), "Lost")) {
			ctrl_event(c, claim, "Warning", "ClaimMisbound",
				   "Two claims are bound to the same volume, this one is bound "
				   "incorrectly");
		}
		set_claim_phase(c, p, claim, "Lost", key);
		return;
	}
	bind_claim(c, p, claim, e->pv, key);
}

static void sync_claim(struct ctrl *c, struct pvb_priv *p, const char *key)
{
	char ns[256], name[256];
	const char *rest = key + strlen(PVC_PREFIX);
	const char *slash = strchr(rest, '/');
	if (!slash || (size_t)(slash - rest) >= sizeof(ns) || strlen(slash + 1) >= sizeof(name)) {
		return;
	}
	memcpy(ns, rest, (size_t)(slash - rest));
	ns[slash - rest] = '\0';
	strcpy(name, slash + 1);
	json_t *claim = ctrl_get(c, p->pvc_kind, ns, name, NULL);
	if (!claim) {
		return;
	}
	if (!ctrl_str(claim, "metadata.deletionTimestamp")) {
		if (ctrl__annotation(claim, ANN_BIND_COMPLETED)) {
			sync_bound_claim(c, p, claim, key);
		} else {
			sync_unbound_claim(c, p, claim, key);
		}
	}
	json_decref(claim);
}

static void sync_volume(struct ctrl *c, struct pvb_priv *p, const char *key)
{
	const char *name = key + strlen(PV_PREFIX);
	struct pv_ent *e = volume_named(p, name);
	if (!e || ctrl_str(e->pv, "metadata.deletionTimestamp")) {
		return;
	}
	const json_t *pv = e->pv;
	const json_t *ref = api_json_path(pv, "spec.claimRef");
	if (!json_is_object(ref)) {
		set_volume_phase(c, p, pv, "Available", false, key);
		return;
	}
	const char *ref_uid = ctrl_str(ref, "uid");
	if (!ref_uid || !*ref_uid) {
		/* Pre-bound by the user: waits, Available, for its claim. */
		set_volume_phase(c, p, pv, "Available", false, key);
		return;
	}
	const char *ns = ctrl_str(ref, "namespace"), *cname = ctrl_str(ref, "name");
	json_t *claim = ns && cname ? ctrl_get(c, p->pvc_kind, ns, cname, NULL) : NULL;
	if (!claim || !str_eq(ctrl_str(claim, "metadata.uid"), ref_uid)) {
		json_decref(claim);
		/* The claim is gone: reclaim. */
		const char *policy = ctrl_str(pv, "spec.persistentVolumeReclaimPolicy");
		const char *phase = ctrl_str(pv, "status.phase");
		if (str_eq(policy, "Delete")) {
			int rv = ctrl_delete(c, p->pv_kind, NULL, e->name, 0,
					     ctrl_str(pv, "metadata.uid"), NULL, -1, key);
			if (rv != 0) {
				write_failed(c, key, rv, "delete volume");
			}
			return;
		}
		if (!str_eq(phase, "Released") && !str_eq(phase, "Failed")) {
			ctrl_event(c, pv, "Normal", "VolumeReleased",
				   "Volume released: claim %s/%s was deleted", or_empty(ns),
				   or_empty(cname));
			set_volume_phase(c, p, pv, "Released", false, key);
		}
		return;
	}
	const char *vname = ctrl_str(claim, "spec.volumeName");
	if (!vname || !*vname || strcmp(vname, e->name) == 0) {
		/* Bound, or the claim's side is being written. */
		set_volume_phase(c, p, pv, "Bound", false, key);
	} else if (str_eq(ctrl__annotation(pv, ANN_BOUND_BY_CONTROLLER), "yes")) {
		/* The claim went to another volume: this one is free again. */
		set_volume_phase(c, p, pv, "Available", true, key);
	}
	json_decref(claim);
}

static void pvb_sync(struct ctrl *c, const char *key)
{
	struct pvb_priv *p = ctrl_priv(c);
	if (strncmp(key, PVC_PREFIX, strlen(PVC_PREFIX)) == 0) {
		sync_claim(c, p, key);
	} else if (strncmp(key, PV_PREFIX, strlen(PV_PREFIX)) == 0) {
		sync_volume(c, p, key);
	}
}

/* ------------------------------------------------------------ lifecycle */

static int pvb_start(struct ctrl *c)
{
	struct pvb_priv *p = calloc(1, sizeof(*p));
	if (!p) {
		return -ENOMEM;
	}
	p->pv_kind = api_kind_by_resource("", "v1", "persistentvolumes");
	p->pvc_kind = api_kind_by_resource("", "v1", "persistentvolumeclaims");
	if (!p->pv_kind || !p->pvc_kind) {
		free(p);
		return -ENOENT;
	}
	RB_INIT(&p->volumes);
	RB_INIT(&p->pending);
	ctrl_set_priv(c, p);
	return 0;
}

static void pvb_stop(struct ctrl *c)
{
	struct pvb_priv *p = ctrl_priv(c);
	if (!p) {
		return;
	}
	struct pv_ent *e, *en;
	RB_FOREACH_SAFE(e, pv_tree, &p->volumes, en)
	{
		RB_REMOVE(pv_tree, &p->volumes, e);
		free(e->name);
		json_decref(e->pv);
		free(e);
	}
	struct claim_ent *ce, *cn;
	RB_FOREACH_SAFE(ce, claim_tree, &p->pending, cn)
	{
		RB_REMOVE(claim_tree, &p->pending, ce);
		free(ce->key);
		free(ce);
	}
	free(p);
	ctrl_set_priv(c, NULL);
}

const struct ctrl_ops ctrl_pvbinder_ops = {
	.name = "pvbinder",
	.start = pvb_start,
	.stop = pvb_stop,
	.on_event = pvb_on_event,
	.sync = pvb_sync,
};
