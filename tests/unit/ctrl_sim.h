/* A deterministic simulation for the controllers and the scheduler: one
 * store, a virtual clock, seeded randomness, and writes that complete
 * after a virtual delay, in order. No libuv, no wall clock, no threads.
 *
 * Typical test:
 *   struct ctrl_sim *s = ctrl_sim_new(ops);      // the controllers to run
 *   ctrl_sim_apply_yaml(s, "kind: Node\n...");   // the "API" writes objects
 *   ctrl_sim_start(s);                           // leadership gained
 *   ctrl_sim_run(s, 5000);                       // 5 s of virtual time
 *   assert_int_equal(ctrl_sim_count(s, "pods", "default", "app=web"), 3);
 *
 * Objects written with ctrl_sim_apply_* get the API server's create or
 * update semantics (src/api/object.h), as if a user had sent them.
 */
#ifndef CAPSTAN_TESTS_CTRL_SIM_H
#define CAPSTAN_TESTS_CTRL_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "src/ctrl/ctrl.h"

struct ctrl_sim;

/* Virtual time starts at 2026-01-01T00:00:00Z; each write completes 1 ms
 * (virtual) after it was proposed. @ops NULL-terminated (borrowed).
 * Aborts on OOM (tests only). */
struct ctrl_sim *ctrl_sim_new(const struct ctrl_ops *const *ops);
struct ctrl_sim *ctrl_sim_new_config(const struct ctrl_ops *const *ops,
				     const struct ctrl_config *config);
void ctrl_sim_free(struct ctrl_sim *s);

struct store *ctrl_sim_store(struct ctrl_sim *s);
struct ctrl_manager *ctrl_sim_manager(struct ctrl_sim *s);
uint64_t ctrl_sim_now(struct ctrl_sim *s);

/* Leadership gained / lost (ctrl_manager_start / stop). */
void ctrl_sim_start(struct ctrl_sim *s);
void ctrl_sim_stop(struct ctrl_sim *s);

/* Advances virtual time by @ms, completing writes, firing timers and
 * running the manager at every step until it is idle. */
void ctrl_sim_run(struct ctrl_sim *s, uint64_t ms);
/* Runs until @pred(s, data) is true or @max_ms of virtual time passed;
 * returns whether it became true. */
bool ctrl_sim_run_until(struct ctrl_sim *s, uint64_t max_ms,
			bool (*pred)(struct ctrl_sim *s, void *data), void *data);

/* The "API": create or update (by name; resourceVersion ignored, last
 * writer wins) an object given as YAML or a tree (borrowed). Returns 0 or
 * a negative errno (-EINVAL for an invalid object). */
int ctrl_sim_apply_yaml(struct ctrl_sim *s, const char *yaml);
int ctrl_sim_apply(struct ctrl_sim *s, const json_t *obj);
/* Deletes as the API would (graceful for pods on nodes, finalizers);
 * @grace_s < 0: the object's default. -ENOENT when absent. */
int ctrl_sim_delete(struct ctrl_sim *s, const char *plural, const char *ns, const char *name,
		    int64_t grace_s);

/* Reads. ctrl_sim_get returns a new tree (resourceVersion set) or NULL. */
json_t *ctrl_sim_get(struct ctrl_sim *s, const char *plural, const char *ns, const char *name);
/* New array of every object of @plural in @ns (NULL: all) matching the
 * label selector @selector (query syntax; NULL or "": all). */
json_t *ctrl_sim_list(struct ctrl_sim *s, const char *plural, const char *ns,
		      const char *selector);
size_t ctrl_sim_count(struct ctrl_sim *s, const char *plural, const char *ns,
		      const char *selector);

/* ------------------------------------------------------------ test helpers
 * Shared by the controller tests. Like the rest of the simulation they
 * abort on OOM and on what can only be a broken test (tests only). */

/* ctrl_sim_new() with namespace @ns already created. */
struct ctrl_sim *ctrl_sim_new_ns(const struct ctrl_ops *const *ops, const char *ns);

/* ctrl_sim_apply_yaml() of the YAML printf-formatted from @fmt (at most
 * 8 KiB). */
int ctrl_sim_apply_yamlf(struct ctrl_sim *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Whether the object exists; whether it exists with a deletionTimestamp. */
bool ctrl_sim_exists(struct ctrl_sim *s, const char *plural, const char *ns, const char *name);
bool ctrl_sim_deleting(struct ctrl_sim *s, const char *plural, const char *ns,
		       const char *name);

/* The integer at dotted @path of the object, @dflt when it or the object
 * is absent. */
int64_t ctrl_sim_int(struct ctrl_sim *s, const char *plural, const char *ns, const char *name,
		     const char *path, int64_t dflt);

/* Events in @ns (NULL: all) with @reason, about the object named
 * @involved (NULL: any); the message of the last one into @msg (may be
 * NULL) of @size bytes. */
size_t ctrl_sim_events(struct ctrl_sim *s, const char *ns, const char *involved,
		       const char *reason, char *msg, size_t size);

/* The value at a dotted @path of @obj where digit segments index arrays
 * ("spec.containers.0.image"); borrowed, NULL when absent. */
json_t *ctrl_sim_path(const json_t *obj, const char *path);
const char *ctrl_sim_path_str(const json_t *obj, const char *path);

/* A minimal hollow kubelet for tests: marks every pod bound to a node
 * Running and Ready (with the Ready and ContainersReady conditions, a
 * podIP) and finishes graceful deletions of bound pods, on each step.
 * Off by default. */
void ctrl_sim_kubelet(struct ctrl_sim *s, bool on);

/* Makes env writes fail (status -EIO) while @on: for error paths. */
void ctrl_sim_fail_writes(struct ctrl_sim *s, bool on);

#endif
