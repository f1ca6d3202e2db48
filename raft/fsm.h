/* The Raft state machine: libraft's struct raft_fsm over the store.
 *
 * Every replica feeds the committed commands to store_apply() in log order.
 * The result of an apply reaches the leader's raft_apply callback as a
 * pointer to fsm.result: libraft 0.15 calls that callback synchronously
 * right after fsm->apply (src/replication.c, applyCommand), so the callback
 * must copy what it needs and never keep the pointer. Nothing is allocated
 * per apply, so nothing leaks on followers, where no callback runs. A
 * raft_apply() of several entries gets its callback for the first one
 * only: raft/replica.c takes every result from the apply hook instead.
 *
 * Snapshots are the store's own encoding behind a small header:
 *   [8 bytes]  magic "CPSTNSNP"
 *   [4 bytes]  format version, little endian (FSM_SNAPSHOT_FORMAT)
 *   [4 bytes]  reserved, zero
 *   [8 bytes]  length of the store encoding that follows, little endian
 *   [32 bytes] SHA-256 of the store encoding
 * libraft 0.15 checksums only the snapshot's metadata file, not its data,
 * so the digest is what catches a damaged snapshot on disk or on the wire.
 * WARNING: this is on disk and on the wire: a change needs a new format.
 *
 * Snapshots are taken off the loop (libraft's fsm version 3): snapshot()
 * forks, and the child, holding a copy-on-write image of the store as of
 * that entry, streams its encoding (store_snapshot_stream, 256 KiB at a
 * time) into a memfd, digests it on the way, and exits; it runs at nice 19
 * so that the daemons' loops win the CPU. snapshot_async() runs in libuv's
 * thread pool, waits for the child and maps its output (no digest there:
 * a SHA-256 of a 30 MB store in the thread pool at normal priority used
 * to compete with the loops). The loop pays only for fork() (a few ms for
 * a large store) instead of encoding and digesting the whole store (about
 * 1 ms per 1000 keys), which stalled heartbeats long enough to cost
 * leaderships under load. If fork or
 * the child fails, that snapshot is abandoned (libraft retries at the next
 * entry) and after FSM_FORK_FAILURES_MAX failures in a row snapshots are
 * encoded synchronously on the loop, as before.
 */
#ifndef CAPSTAN_FSM_H
#define CAPSTAN_FSM_H

#include <stdbool.h>
#include <sys/types.h>

#include <raft.h>

#include "raft/store.h"

#define FSM_SNAPSHOT_FORMAT 1
#define FSM_SNAPSHOT_HEADER_LEN 56
#define FSM_FORK_FAILURES_MAX 3

/* Called after every applied entry, with the decoded command (NULL when the
 * entry did not decode) and its result. Runs inside libraft's apply loop:
 * it may read the store, not apply commands. */
typedef void (*fsm_apply_hook)(void *data, const struct store_cmd *cmd,
			       const struct store_result *result);

struct fsm {
	struct raft_fsm raft_fsm; /* give &fsm.raft_fsm to raft_init() */
	struct store *store;      /* borrowed */
	struct store_result result; /* outcome of the latest apply */
	fsm_apply_hook hook;
	void *hook_data;
	char errmsg[128]; /* why the latest restore or snapshot failed */
	uint64_t applied_entries; /* entries applied since init, and their */
	uint64_t applied_bytes;   /* encoded bytes: the mean entry size */

	/* Snapshot in a child process (private). The loop thread owns these
	 * except while libraft runs snapshot_async() in the thread pool,
	 * when that thread does; libraft never overlaps the two. */
	bool fork_snapshots;   /* false: encode on the loop */
	unsigned fork_failures; /* in a row */
	pid_t child;            /* > 0 while a child may be running */
	int memfd;              /* the child's output, -1 when none */
	void *map;              /* the mapped output, NULL when none */
	size_t map_len;
	char async_errmsg[128]; /* written by snapshot_async() only */
	struct evp_md_st *sha256; /* EVP_MD fetched at init, for the child */
};

/* Initialises @f over @store (borrowed: it must outlive the fsm). Cannot
 * fail. An entry that fails to decode is applied as a no-op whose result
 * status is -EBADMSG (every replica does the same, so they stay equal);
 * -ENOMEM from the store makes libraft retry the entry later. */
void fsm_init(struct fsm *f, struct store *store);

/* Ends a snapshot child still running (SIGKILL, reaped) and releases its
 * output. Call after raft is closed. */
void fsm_close(struct fsm *f);

/* Chooses between snapshots in a forked child (the default, true) and
 * encoding on the calling thread (false). Both give the same bytes. Call
 * before raft_init(): libraft accepts the forked mode only with an io of
 * version >= 2 that has async_work (libraft 0.15's uv io has async_work
 * but says version 1: the caller raises it). */
void fsm_set_fork_snapshots(struct fsm *f, bool on);

/* Sets (or clears with NULL) the hook called after each apply. */
void fsm_set_hook(struct fsm *f, fsm_apply_hook hook, void *data);

/* Message of the latest failed restore or snapshot ("" if none). */
const char *fsm_errmsg(const struct fsm *f);

/* The snapshot codec used by the raft_fsm callbacks, exposed for tests and
 * tools. fsm_encode_snapshot() writes a malloc'ed buffer (header + store
 * encoding). Errors: -ENOMEM. fsm_restore_buffer() validates the header
 * and digest, then restores the store; the buffer stays the caller's.
 * Errors: -EBADMSG (bad magic, unknown format, length or digest mismatch,
 * corrupt store encoding; store unchanged), -ENOMEM. */
int fsm_encode_snapshot(struct fsm *f, void **ret_buf, size_t *ret_len);
int fsm_restore_buffer(struct fsm *f, const void *buf, size_t len);

#endif
