/* The leader's control loops: a manager that runs the scheduler and the
 * controllers on the local store while this replica leads.
 *
 * No libuv and no clock in here: time, randomness and writes come through
 * struct ctrl_env, so the same code runs in capstand (src/ctrl/uv.c) and
 * in a deterministic simulation with virtual time (tests/unit/ctrl_sim.h).
 *
 * The model is Kubernetes' informer + work queue, with the local store as
 * the informer cache:
 * - every controller sees every change under /registry/ as a ctrl_event
 *   (on start, every existing object arrives first as CTRL_ADDED);
 * - on_event() enqueues keys (strings the controller chooses, usually
 *   the store key of the owner to reconcile); a key queued twice runs
 *   once;
 * - sync(key) reads the current state from the store and writes what
 *   differs through ctrl_create/ctrl_update/ctrl_delete. Each write names
 *   a key to requeue: while writes for a key are in flight, its sync
 *   waits, and when the last completes (success or failure) the key is
 *   queued again. That is the "expectations" of Kubernetes' controllers:
 *   a sync never sees a state its own writes are about to change.
 * - writes are compare-and-swap on the stored mod_rev (resourceVersion),
 *   so a stale loop never overwrites newer state: a failed CAS just
 *   requeues the key.
 *
 * Everything runs on the store's (loop) thread; nothing here blocks.
 */
#ifndef CAPSTAN_CTRL_H
#define CAPSTAN_CTRL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "raft/store.h"
#include "src/api/registry.h"

struct ctrl;
struct ctrl_manager;

/* ------------------------------------------------------------ environment */

/* Completion of an env write: status as replica_apply's callback (0 with
 * the store result, or a negative errno / REPLICA_E* code). */
typedef void (*ctrl_write_cb)(void *arg, int status, const struct store_result *res);

struct ctrl_env {
	void *data;
	/* Wall clock, ms since the epoch. */
	uint64_t (*now_ms)(void *data);
	/* 64 random bits (names, uids). */
	uint64_t (*random)(void *data);
	/* Proposes @cmd (borrowed; encode it at once). Returns 0 and later
	 * (never inside this call) runs @cb(@arg, ...) exactly once, or
	 * returns a negative errno and never runs @cb. */
	int (*apply)(void *data, const struct store_cmd *cmd, ctrl_write_cb cb, void *arg);
	/* Tells the driver that ctrl_manager_run() has work (queued keys or
	 * a new earliest timer); the driver calls it soon, not from inside
	 * this call. May be NULL when the driver polls ctrl_manager_next(). */
	void (*wakeup)(void *data);
};

/* ------------------------------------------------------------ controllers */

enum ctrl_event_type { CTRL_ADDED = 1, CTRL_MODIFIED = 2, CTRL_DELETED = 3 };

/* A change of one API object. Strings and the value are borrowed: valid
 * during the on_event call only. */
struct ctrl_event {
	enum ctrl_event_type type;
	const struct api_kind *kind;
	const char *key; /* "/registry/<plural>/[<ns>/]<name>", NUL-terminated */
	const char *ns;  /* NULL for cluster-scoped kinds */
	const char *name;
	const void *val; /* msgpack; DELETED: the last value */
	size_t val_len;
	uint64_t mod_rev; /* DELETED: the deletion revision */
};

struct ctrl_ops {
	const char *name; /* "replicaset", "scheduler", ... (logs, metrics) */
	/* Leadership gained: allocate private state (ctrl_set_priv). The
	 * existing objects arrive next as CTRL_ADDED events. May be NULL.
	 * Errors (-ENOMEM) stop the controller for this term. */
	int (*start)(struct ctrl *c);
	/* Leadership lost or manager freed: free private state. May be NULL. */
	void (*stop)(struct ctrl *c);
	/* Every change under /registry/. Must be cheap: enqueue keys. */
	void (*on_event)(struct ctrl *c, const struct ctrl_event *ev);
	/* Reconciles @key (NUL-terminated, borrowed). */
	void (*sync)(struct ctrl *c, const char *key);
};

/* Every controller, defined in its own file (src/ctrl/<name>.c,
 * src/sched/scheduler.c) and listed in src/ctrl/all.c. */
extern const struct ctrl_ops ctrl_scheduler_ops;
extern const struct ctrl_ops ctrl_replicaset_ops;
extern const struct ctrl_ops ctrl_deployment_ops;
extern const struct ctrl_ops ctrl_daemonset_ops;
extern const struct ctrl_ops ctrl_statefulset_ops;
extern const struct ctrl_ops ctrl_nodelifecycle_ops;
extern const struct ctrl_ops ctrl_endpoints_ops;
extern const struct ctrl_ops ctrl_endpointslice_ops;
extern const struct ctrl_ops ctrl_serviceaccount_ops;
extern const struct ctrl_ops ctrl_namespace_ops;
extern const struct ctrl_ops ctrl_gc_ops;
extern const struct ctrl_ops ctrl_pvbinder_ops;

/* NULL-terminated list of every controller capstand runs (all.c). */
extern const struct ctrl_ops *const ctrl_all[];

/* Selects controllers as kube-controller-manager's --controllers does:
 * comma-separated names, "*" for all, "-name" to leave one out, applied in
 * order ("*,-deployment"); "" selects none and NULL means "*". Writes the NULL-terminated list to @ret (@size entries, at
 * least the number of controllers + 1). Returns how many were selected,
 * or -EINVAL with a message in @err for an unknown name. */
int ctrl_select(const char *spec, const struct ctrl_ops **ret, size_t size, char *err,
		size_t err_size);

/* Tunables (capstand flags; defaults in parentheses). */
struct ctrl_config {
	uint64_t node_grace_ms;         /* Lease not renewed -> Unknown (40000) */
	uint64_t eviction_toleration_s; /* default toleration of the
					   unreachable/not-ready taints (300) */
};
void ctrl_config_init(struct ctrl_config *c);

/* ------------------------------------------------------------ manager */

/* A manager for @ops (NULL-terminated, borrowed) on @store (borrowed).
 * @env and @config are copied. Nothing runs until ctrl_manager_start().
 * Errors: -ENOMEM. */
int ctrl_manager_new(const struct ctrl_env *env, const struct ctrl_config *config,
		     struct store *store, const struct ctrl_ops *const *ops,
		     struct ctrl_manager **ret);
/* Stops if running, then frees. Writes still in flight complete into
 * nothing. */
void ctrl_manager_free(struct ctrl_manager *m);
/* Leadership gained: starts every controller and replays the store.
 * Idempotent. Errors: -ENOMEM. */
int ctrl_manager_start(struct ctrl_manager *m);
/* Leadership lost: stops every controller at once; the queue, timers and
 * in-flight bookkeeping are dropped. Idempotent. */
void ctrl_manager_stop(struct ctrl_manager *m);
bool ctrl_manager_running(const struct ctrl_manager *m);
/* Delivers pending store events (a bounded number per call), fires due
 * timers (by env->now_ms) and syncs queued keys, at most @budget syncs (0:
 * no limit); returns true when work remains (call again soon). */
bool ctrl_manager_run(struct ctrl_manager *m, unsigned budget);
/* When the earliest timer is due (ms since the epoch); UINT64_MAX: none. */
uint64_t ctrl_manager_next(const struct ctrl_manager *m);
/* Counters for /metrics and tests. */
struct ctrl_stats {
	uint64_t syncs, writes, write_errors, conflicts, events;
};
void ctrl_manager_stats(const struct ctrl_manager *m, struct ctrl_stats *ret);

/* ------------------------------------------------------------ for controllers */

void *ctrl_priv(const struct ctrl *c);
void ctrl_set_priv(struct ctrl *c, void *priv);
struct store *ctrl_store(const struct ctrl *c);
const struct ctrl_config *ctrl_config(const struct ctrl *c);
uint64_t ctrl_now_ms(const struct ctrl *c);
uint64_t ctrl_random(const struct ctrl *c);
/* Logs with the controller's name (src/lib/log.h levels). */
void ctrl_log(const struct ctrl *c, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Queues @key (copied) for sync; immediate when @delay_ms is 0, else not
 * before now + @delay_ms (a sooner pending time wins). Errors: -ENOMEM. */
int ctrl_enqueue(struct ctrl *c, const char *key);
int ctrl_enqueue_after(struct ctrl *c, const char *key, uint64_t delay_ms);

/* Store key of an object: "/registry/<plural>/<ns>/<name>" or
 * "/registry/<plural>/<name>" (@ns ignored for cluster-scoped kinds);
 * with @name NULL the collection prefix (ending in '/'). Returns the
 * length, or -ENAMETOOLONG when it does not fit. */
int ctrl_key(const struct api_kind *k, const char *ns, const char *name, char *buf, size_t size);

/* The stored object as a new tree with metadata.resourceVersion set;
 * NULL when absent (or undecodable). *@ret_mod_rev may be NULL. */
json_t *ctrl_get(struct ctrl *c, const struct api_kind *k, const char *ns, const char *name,
		 uint64_t *ret_mod_rev);
/* Decodes a stored value (an event's, a range's) into a new tree with
 * resourceVersion @mod_rev (0: none). NULL on malformed input. */
json_t *ctrl_decode(const void *val, size_t len, uint64_t mod_rev);
/* Calls @cb for each stored object of @k (in namespace @ns, or all when
 * NULL), in key order; a non-zero return stops and is returned. */
int ctrl_list(struct ctrl *c, const struct api_kind *k, const char *ns,
	      int (*cb)(const struct store_kv *kv, void *data), void *data);

/* Writes, with the API server's object semantics (src/api/object.h):
 * create sets uid, creationTimestamp, generation, a name from
 * metadata.generateName, defaults, and refuses a namespace that is absent
 * or terminating; update bumps generation when spec changed, and deletes
 * an object whose deletionTimestamp is set once no finalizer is left;
 * delete is graceful for pods on a node and for objects with finalizers
 * (sets deletionTimestamp) and adds the Orphan/Foreground finalizer for
 * those policies.
 * Both validate the new object against its schema (a refused write is
 * -EINVAL, logged with the causes); the update rules for users (immutable
 * fields) do not apply, so the scheduler binds by setting spec.nodeName.
 * Trees are borrowed (not modified). @requeue (copied; may be NULL) is the
 * key queued again once the write completes; while it is in flight, its
 * sync waits. Synchronous errors (nothing proposed): -EINVAL (invalid
 * object: logged with the causes), -ENOENT (namespace gone), -ESHUTDOWN
 * (manager stopped), -ENOMEM, or the env's apply error. */
int ctrl_create(struct ctrl *c, const struct api_kind *k, const json_t *obj,
		const char *requeue);
/* @obj carries metadata.resourceVersion (as read): the CAS revision. */
int ctrl_update(struct ctrl *c, const struct api_kind *k, const json_t *obj,
		const char *requeue);
/* @mod_rev 0: whatever is stored. @uid (may be NULL): precondition.
 * @policy NULL, "Background", "Foreground" or "Orphan". @grace_s < 0:
 * the object's own terminationGracePeriodSeconds (pods). */
int ctrl_delete(struct ctrl *c, const struct api_kind *k, const char *ns, const char *name,
		uint64_t mod_rev, const char *uid, const char *policy, int64_t grace_s,
		const char *requeue);
/* Records an Event (core/v1) about @obj (borrowed tree): type "Normal" or
 * "Warning", a CamelCase reason, a message. Best effort: errors are
 * logged, not returned. */
void ctrl_event(struct ctrl *c, const json_t *obj, const char *type, const char *reason,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ctrl_event() about an object given by its fields rather than a tree
 * (strings borrowed; @uid and @resource_version may be NULL), e.g. from
 * an event's msgpack. The Event is built as msgpack directly. */
void ctrl_event_about(struct ctrl *c, const char *api_version, const char *kind,
		      const char *ns, const char *name, const char *uid,
		      const char *resource_version, const char *type, const char *reason,
		      const char *fmt, ...) __attribute__((format(printf, 10, 11)));

/* Binds pod @ns/@name to node @node, as the pods/binding subresource
 * does: spec.nodeName, and the PodScheduled condition True (without the
 * reason and message of an earlier False; lastTransitionTime now when
 * the status changes), and metadata.generation raised as for any spec
 * change; the same result as ctrl_update() of those changes. Written
 * with CAS on @mod_rev, the revision the caller read: a stale one
 * requeues @requeue and returns 0, as ctrl_update() does. The stored
 * msgpack is edited in place of a decode, validation and encode (a pod
 * being deleted, or of an unexpected shape, takes the generic path).
 * Errors: -ENOENT (no such pod), -EALREADY (bound already), and those of
 * ctrl_update(). */
int ctrl_bind(struct ctrl *c, const char *ns, const char *name, uint64_t mod_rev,
	      const char *node, const char *requeue);

/* Proposes @val (the whole object as msgpack, without resourceVersion;
 * borrowed) as the value of store key @key, CAS on @mod_rev. No object
 * semantics and no validation: only for values derived from the stored
 * one by changes that cannot make it invalid (say why at the call).
 * Errors: as ctrl_update(). */
int ctrl_update_msgpack(struct ctrl *c, const char *key, size_t key_len, uint64_t mod_rev,
			const void *val, size_t val_len, const char *requeue);

/* RFC 3339 UTC of @ms ("2026-11-26T20:00:00Z") into @buf (>= 21 bytes). */
void ctrl_rfc3339(uint64_t ms, char *buf, size_t size);
/* Parses RFC 3339 into ms since the epoch; -EINVAL. */
int ctrl_parse_time(const char *s, uint64_t *ret_ms);

/* ------------------------------------------------------------ helpers */

/* An object's owner reference that has controller: true, or NULL
 * (borrowed from @obj). */
const json_t *ctrl_controller_ref(const json_t *obj);
/* A new ownerReference {apiVersion, kind, name, uid, controller: true,
 * blockOwnerDeletion: true} pointing at @owner of kind @k. */
json_t *ctrl_owner_ref(const struct api_kind *k, const json_t *owner);
/* String at a dotted path of a tree, or NULL. */
const char *ctrl_str(const json_t *obj, const char *path);
/* Integer at a dotted path, or @dflt. */
int64_t ctrl_int(const json_t *obj, const char *path, int64_t dflt);
/* Pod helpers: Ready condition True; phase; being deleted. */
bool ctrl_pod_ready(const json_t *pod);
bool ctrl_pod_active(const json_t *pod); /* not Succeeded/Failed, not deleting */
/* Sets (or replaces) condition @type in the array at "status.conditions"
 * of @obj (created when absent): status, reason, message (may be NULL),
 * lastTransitionTime (now) only when the status changes. Returns true
 * when anything changed. */
bool ctrl_set_condition(struct ctrl *c, json_t *obj, const char *type, const char *status,
			const char *reason, const char *message);

#endif
