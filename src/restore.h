/* capstand --init --restore FILE: a new one-member cluster whose store
 * starts from a backup file (src/lib/snapfile.h).
 *
 * The file is checked (header, checksums, and the payload decoded into a
 * scratch store) before anything is created. Once the replica leads, every
 * key of the backup except the old cluster's members map is written
 * through the Raft log as an unconditional put, RESTORE_INFLIGHT at a
 * time, so that every replica that joins later receives the content with
 * the log or a Raft snapshot. The new store's revisions therefore differ
 * from the backup's: each restored object gets a new modRevision
 * (resourceVersion). When every put has committed, DATA/restored is
 * written; a restart before that does the whole restore again (puts are
 * idempotent), a restart after it never again.
 *
 * Runs on the daemon's loop; logs through src/lib/log.
 */
#ifndef CAPSTAN_RESTORE_H
#define CAPSTAN_RESTORE_H

#include <stddef.h>
#include <stdint.h>

#include "raft/replica.h"

#define RESTORE_INFLIGHT 256

struct restore;

/* Loads and checks @path (borrowed). On success the returned object holds
 * the decoded content. Errors: -EBADMSG (corrupt or not a snapshot), a
 * negative errno of reading, -ENOMEM; @errmsg then says why in one line. */
int restore_new(const char *path, struct restore **ret_restore, char *errmsg,
		size_t errmsg_len);

/* Starts writing into @replica (borrowed; must outlive the restore) each
 * time it becomes the ready leader, until every key committed; then
 * creates @marker_path (copied) and calls @done_cb(data, 0), or
 * @done_cb(data, negative errno) if the marker cannot be written.
 * Errors: -ENOMEM. */
int restore_start(struct restore *rs, struct replica *replica, const char *marker_path,
		  void (*done_cb)(void *data, int status), void *data);

/* Keys the restore writes (the backup's, without its members map). */
uint64_t restore_key_count(const struct restore *rs);

/* Frees the restore; puts still in flight are abandoned safely (their
 * callbacks find the object gone). NULL ok. Call after the replica closed
 * or from done_cb's aftermath. */
void restore_free(struct restore *rs);

#endif
