/* One replica of the replicated store: libraft (uv io + uv TCP transport)
 * on the daemon's loop, with the store as its state machine.
 *
 * The only module besides raft/fsm glue that sees libraft; callers see
 * negative errno values and the REPLICA_E* codes below.
 */
#ifndef CAPSTAN_REPLICA_H
#define CAPSTAN_REPLICA_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "raft/store.h"

struct replica;

/* Errors beyond negative errno. */
#define REPLICA_ENOTLEADER (-66) /* -EREMOTE: this replica is not the leader */
#define REPLICA_EUNKNOWN (-110)  /* -ETIMEDOUT: leadership lost during the
				    write: it may or may not have committed */
#define REPLICA_ESHUTDOWN (-108) /* -ESHUTDOWN: replica closing */
#define REPLICA_EBUSY (-16)      /* -EBUSY: a membership change is running */

struct replica_config {
	uint64_t id;              /* raft id, > 0 */
	const char *raft_address; /* "127.0.0.1:7001" (copied) */
	const char *api_url;      /* "https://127.0.0.1:6443" (copied) */
	const char *data_dir;     /* raft's directory, must exist (copied) */
	unsigned election_timeout_ms;  /* default 400 */
	unsigned heartbeat_timeout_ms; /* default 50 */
	unsigned snapshot_threshold;   /* default 16384 entries */
	unsigned snapshot_trailing;    /* default 4096 entries */
	struct store_config store;
};

/* Fills defaults (id, addresses and data_dir left NULL/0). */
void replica_config_init(struct replica_config *c);

/* Creates a replica on @loop; nothing runs until replica_start().
 * Errors: -ENOMEM, -EINVAL (bad config), -EIO (data dir unusable). */
int replica_new(uv_loop_t *loop, const struct replica_config *config,
		struct replica **ret_replica);

/* Writes the initial configuration of a new one-member cluster holding
 * this replica as voter. Errors: -EEXIST when the data dir already holds
 * state (not an error for a restart: just start), -EIO. */
int replica_bootstrap(struct replica *r);

/* Loads snapshot and log from disk and starts Raft. A corrupt or truncated
 * snapshot or segment fails here with -EBADMSG or -EIO and a message in
 * replica_errmsg(). */
int replica_start(struct replica *r);

/* Message of the last failure (never NULL). */
const char *replica_errmsg(const struct replica *r);

/* Stops Raft and frees the replica once closed; @cb (may be NULL) then
 * runs. Pending requests complete with REPLICA_ESHUTDOWN first. */
void replica_close(struct replica *r, void (*cb)(void *data), void *data);

/* The store (borrowed). Read it only on the loop thread. */
struct store *replica_store(struct replica *r);

/* A fatal Raft I/O failure has happened (e.g. the disk failed): the owner
 * must exit non-zero rather than serve stale data. Set before the fatal
 * callback below runs. */
bool replica_failed(const struct replica *r);

/* Writes: the caller owns @req until its callback, which always runs when
 * replica_apply() returned 0 (never inside that call), with status 0 and
 * the store result (borrowed: valid during the callback only), or
 * REPLICA_EUNKNOWN (leadership lost or disk write failed after the entry
 * was appended: it may still commit) or REPLICA_ESHUTDOWN (replica
 * closing; the entry may likewise still have committed), or, rarely,
 * REPLICA_ENOTLEADER, -EIO or -ENOMEM when leadership, the disk or memory
 * was lost before the entry was appended (certainly not written). Writes
 * accepted during one loop iteration reach the log together, in call
 * order, before the loop blocks again (one raft_apply per batch).
 * @cmd is encoded at once (borrowed); a time_ms of 0 is
 * replaced by the leader's wall clock. Synchronous errors:
 * REPLICA_ENOTLEADER (follower), REPLICA_ESHUTDOWN, -EIO (failed replica),
 * -EINVAL (malformed command), -ENOMEM. */
struct replica_apply;
typedef void (*replica_apply_cb)(struct replica_apply *req, int status,
				 const struct store_result *result);
struct replica_apply {
	void *data;
	replica_apply_cb cb;
	void *internal[16]; /* private: queue links and the entry */
};
int replica_apply(struct replica *r, struct replica_apply *req,
		  const struct store_cmd *cmd, replica_apply_cb cb);

/* Linearizable reads on the leader: completes once the replica has applied
 * everything committed before the call. One raft_barrier is in flight at a
 * time; calls arriving meanwhile share the next one. @index in the
 * callback: the applied index reached (the barrier entry's index - 1), the
 * read index a follower waits for with replica_wait_applied().
 * Errors: REPLICA_ENOTLEADER (sync, or through the callback when
 * leadership is lost meanwhile), REPLICA_ESHUTDOWN, -EIO, -ENOMEM. */
struct replica_barrier;
typedef void (*replica_barrier_cb)(struct replica_barrier *req, int status,
				   uint64_t index);
struct replica_barrier {
	void *data;
	replica_barrier_cb cb;
	struct replica_barrier *next; /* private */
};
int replica_barrier(struct replica *r, struct replica_barrier *req,
		    replica_barrier_cb cb);

/* Completes once this replica has applied up to @index (from the loop,
 * never inside this call, when it already has). Used by followers after
 * asking the leader for its index.
 * Status: 0, REPLICA_ESHUTDOWN, -ETIMEDOUT after @timeout_ms. */
struct replica_wait;
typedef void (*replica_wait_cb)(struct replica_wait *req, int status);
struct replica_wait {
	void *data;
	replica_wait_cb cb;
	uint64_t index;                /* private */
	uint64_t deadline;             /* private */
	struct replica_wait *next;     /* private */
};
int replica_wait_applied(struct replica *r, struct replica_wait *req,
			 uint64_t index, unsigned timeout_ms,
			 replica_wait_cb cb);

/* Leadership events. @cb(data, true) fires once this replica leads AND has
 * applied everything committed before its term (after a barrier);
 * @cb(data, false) fires the moment it stops leading (checked on every
 * loop iteration). Several subscribers may register. Errors: -ENOMEM. */
typedef void (*replica_leader_cb)(void *data, bool leading);
int replica_on_leadership(struct replica *r, replica_leader_cb cb, void *data);

/* True between the leading=true and leading=false events. */
bool replica_is_ready_leader(const struct replica *r);

/* Membership. The id -> API URL map lives in the store under
 * REPLICA_MEMBERS_PREFIX "<id>" (a JSON object {"id","raftAddress",
 * "apiURL"} as the value), written through the log so every replica
 * knows where to forward. */
#define REPLICA_MEMBERS_PREFIX "/capstan/members/"

struct replica_member {
	uint64_t id;
	char raft_address[64];
	char api_url[256];
	int role; /* 0 spare, 1 voter, 2 standby (NOT libraft's numbering) */
};

struct replica_status {
	uint64_t id;
	char raft_address[64];
	char api_url[256];
	const char *state; /* "follower", "candidate", "leader", "unavailable" */
	uint64_t term;
	uint64_t commit_index;
	uint64_t applied_index;
	uint64_t last_index;
	uint64_t leader_id; /* 0 when unknown */
	char leader_api_url[256]; /* "" when unknown */
	uint64_t store_revision;
	/* Leader's raft_apply() calls for writes since start, and the writes
	 * they carried: their ratio is the batching under load. */
	uint64_t write_batches;
	uint64_t batched_writes;
	unsigned n_members;
	struct replica_member members[16];
};
void replica_get_status(struct replica *r, struct replica_status *ret);

/* API URL of the current leader as this replica knows it; "" if unknown. */
const char *replica_leader_url(struct replica *r);

/* Leader only. Adds a replica as spare, makes it a stand-by so that it
 * follows the log, waits for it to catch up, makes it a voter, and records
 * its API URL in the store. Adding an existing voter with the same address
 * only (re)writes its entry: idempotent. Sync errors: REPLICA_ENOTLEADER,
 * REPLICA_EBUSY, REPLICA_ESHUTDOWN, -EEXIST (the id has another address,
 * or the address another id), -EINVAL. The callback gets 0, -ETIMEDOUT
 * (the new member made no progress for ten election timeouts; it was
 * removed again), REPLICA_EUNKNOWN (leadership lost: the configuration
 * change may have committed; retrying is safe), REPLICA_ENOTLEADER,
 * REPLICA_ESHUTDOWN or another negative errno. */
struct replica_change;
typedef void (*replica_change_cb)(struct replica_change *req, int status);
struct replica_change {
	void *data;
	replica_change_cb cb;
	void *internal[32]; /* private */
};
int replica_add_member(struct replica *r, struct replica_change *req,
		       uint64_t id, const char *raft_address,
		       const char *api_url, replica_change_cb cb);

/* Leader only. Removes a member: deletes its URL entry first, waits (at
 * most two election timeouts) until the member has applied the deletion,
 * then removes it from the configuration; libraft sends nothing to a
 * server once the configuration without it is appended, so this order is
 * what lets the removed replica notice (replica_on_removed). Removing the
 * leader itself is allowed: it steps down once the change commits and
 * notices its absence from the configuration; the next leader deletes its
 * entry. Sync errors as for replica_add_member, and -ENOENT when the id is
 * neither in the configuration nor in the members map. */
int replica_remove_member(struct replica *r, struct replica_change *req,
			  uint64_t id, replica_change_cb cb);

/* Called once (from the loop) when this replica sees itself removed from
 * the cluster: its members entry deleted while it is a voter, or itself
 * absent from the committed configuration after having been in it. */
void replica_on_removed(struct replica *r, void (*cb)(void *data), void *data);

/* Called once when a fatal Raft I/O failure makes the replica unusable. */
void replica_on_failed(struct replica *r, void (*cb)(void *data), void *data);

#endif
