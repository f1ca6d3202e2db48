/* The MVCC key-value store of every API object: plain C, no libraft.
 *
 * Keys are byte strings kept in order (prefix scans by resource and
 * namespace). Values are opaque blobs (msgpack maps of API objects). The
 * store has one revision counter: every successful mutation raises it by
 * exactly one, and the changed key's mod_rev becomes that revision, so the
 * history holds exactly one event per revision. Time enters only through
 * the commands (time_ms, assigned by the leader), so every replica fed the
 * same commands ends byte-identical.
 *
 * Single-threaded: all calls on the loop thread that owns the store.
 */
#ifndef CAPSTAN_STORE_H
#define CAPSTAN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct store_watch;

/* Conditions of a command (compare-and-swap on the modification revision). */
enum store_cond {
	STORE_COND_NONE = 0,    /* unconditional put / delete */
	STORE_COND_ABSENT = 1,  /* create-only: the key must not exist */
	STORE_COND_MOD_REV = 2, /* update-if / delete-if: mod_rev must match */
};

enum store_cmd_type {
	STORE_CMD_PUT = 1,
	STORE_CMD_DELETE = 2,
	STORE_CMD_COMPACT = 3, /* drop history at or below rev */
};

/* WARNING: encoded into the Raft log by store_cmd_encode(); field changes
 * need a new STORE_CMD_FORMAT. */
struct store_cmd {
	enum store_cmd_type type;
	enum store_cond cond;
	uint64_t mod_rev; /* STORE_COND_MOD_REV: expected; COMPACT: revision */
	uint64_t time_ms; /* wall clock of the leader, ms since the epoch */
	const char *key;  /* borrowed */
	size_t key_len;
	const void *val; /* borrowed; PUT only */
	size_t val_len;
};

/* An entry as stored. Pointers are borrowed from the store and stay valid
 * until the next mutating call (apply, restore, free). */
struct store_kv {
	const char *key;
	size_t key_len;
	const void *val;
	size_t val_len;
	uint64_t create_rev;
	uint64_t mod_rev;
};

/* Outcome of store_apply(). */
struct store_result {
	int status;        /* 0, or an error below */
	uint64_t rev;      /* store revision after the command */
	uint64_t mod_rev;  /* the key's new mod_rev (PUT), deletion rev (DELETE);
			      on -ESTALE the key's current mod_rev */
	uint64_t create_rev;
};

/* Status values of store_result.status and of the calls below. */
#define STORE_EEXIST (-17)   /* -EEXIST: create-only and the key exists */
#define STORE_ENOENT (-2)    /* -ENOENT: no such key */
#define STORE_ESTALE (-116)  /* -ESTALE: mod_rev mismatch (409 Conflict) */
#define STORE_EGONE (-43)    /* -EIDRM: revision compacted (410 Gone) */

struct store_config {
	/* History is kept while it holds fewer than history_min_events events
	 * OR its oldest event is younger than history_min_age_ms (by command
	 * time): whichever keeps more. Defaults: 100000 and 300000 (5 min).
	 * Precisely: after each PUT/DELETE the oldest event is dropped while
	 * more than history_min_events remain AND it is at least
	 * history_min_age_ms older than the largest time_ms applied so far. */
	uint64_t history_min_events;
	uint64_t history_min_age_ms;
};

/* Fills the defaults. */
void store_config_init(struct store_config *c);

/* Creates an empty store at revision 0. @config copied; may be NULL.
 * Errors: -ENOMEM. */
int store_new(const struct store_config *config, struct store **ret_store);

/* Frees the store; outstanding watches must have been freed. NULL ok. */
void store_free(struct store *s);

/* Current revision (0 when empty and new). */
uint64_t store_revision(const struct store *s);

/* The history holds the events of revisions store_compacted() + 1 ..
 * store_revision(); a watch may start after any revision >=
 * store_compacted(). 0 for a new store; the revision after a restore. */
uint64_t store_compacted(const struct store *s);

/* Number of keys. */
size_t store_count(const struct store *s);

/* Bytes of the live keys and values (what a snapshot mostly writes). */
uint64_t store_bytes(const struct store *s);

/* Applies a command. Failed conditions change nothing (the revision stays)
 * and are reported in ret_result->status, with the key's current mod_rev
 * and create_rev (0 when absent). Returns 0, or -ENOMEM / -EINVAL
 * (malformed command) with nothing changed.
 * PUT: COND_ABSENT -> STORE_EEXIST if present; COND_MOD_REV ->
 * STORE_ENOENT if absent, STORE_ESTALE on mismatch.
 * DELETE: STORE_ENOENT if absent; COND_MOD_REV -> STORE_ESTALE on
 * mismatch; COND_ABSENT is malformed.
 * COMPACT (cond NONE, empty key): never fails; a revision past the current
 * one compacts everything; ret_result->mod_rev is the new compacted point.
 * Keys must be non-empty and at most UINT32_MAX bytes, values too. */
int store_apply(struct store *s, const struct store_cmd *cmd,
		struct store_result *ret_result);

/* Looks a key up. Errors: STORE_ENOENT. */
int store_get(const struct store *s, const char *key, size_t key_len,
	      struct store_kv *ret_kv);

/* Ordered iteration: positions @it at the first key >= @key (all keys if
 * key_len is 0). Any mutation invalidates the iterator. */
struct store_iter {
	const struct store *store;
	const void *node; /* internal */
};
void store_iter_seek(const struct store *s, struct store_iter *it,
		     const char *key, size_t key_len);
/* Writes the entry under the iterator and advances; false at the end. */
bool store_iter_next(struct store_iter *it, struct store_kv *ret_kv);

/* Lists keys starting with @prefix, in order, after @start_after (exclusive;
 * NULL/0 for the beginning), at most @limit (0 = no limit) entries, calling
 * @cb for each. *ret_more tells whether entries remain after the last one
 * given. Returns 0, or the first non-zero value @cb returned. */
typedef int (*store_range_cb)(const struct store_kv *kv, void *data);
int store_range(const struct store *s, const char *prefix, size_t prefix_len,
		const char *start_after, size_t start_after_len, size_t limit,
		store_range_cb cb, void *data, bool *ret_more);

/* Watches. */
enum store_event_type { STORE_EVENT_PUT = 1, STORE_EVENT_DELETE = 2 };

struct store_event {
	enum store_event_type type;
	uint64_t rev; /* the revision of this event */
	/* PUT: the new entry. DELETE: the last entry before deletion, with
	 * mod_rev set to the deletion revision. Borrowed, valid until the next
	 * mutating call. */
	struct store_kv kv;
	bool created; /* PUT that created the key */
};

/* Called from store_apply() when an event matching the watch's prefix is
 * appended and the watch had drained its events (store_watch_next returned
 * -EAGAIN since the last call). The callback may call store_watch_next()
 * and store_watch_free(), but must not apply commands. */
typedef void (*store_watch_cb)(struct store_watch *w, void *data);

/* Starts a watch of the keys under @prefix (copied) for events with
 * revision > @after_rev; replayed history comes first through
 * store_watch_next(), then live events. @after_rev 0 means "from now".
 * Errors: STORE_EGONE when @after_rev < store_compacted(); -ENOMEM. */
int store_watch_new(struct store *s, const char *prefix, size_t prefix_len,
		    uint64_t after_rev, store_watch_cb cb, void *data,
		    struct store_watch **ret_watch);

/* Next matching event. Returns 0, -EAGAIN when none is pending yet (the
 * callback fires when one arrives), or STORE_EGONE when history the watch
 * had not read yet was compacted away (the watch is then dead). */
int store_watch_next(struct store_watch *w, struct store_event *ret_event);

/* The revision the watch has read up to (for progress notifications). */
uint64_t store_watch_revision(const struct store_watch *w);

void store_watch_free(struct store_watch *w);

/* Snapshots (msgpack with a format version). The encoding holds the keys,
 * the revision and the compaction point; the history is not included, so a
 * restored store's history starts at its revision.
 * store_snapshot() writes a malloc'ed buffer to *ret_buf.
 * Errors: -ENOMEM. */
int store_snapshot(const struct store *s, void **ret_buf, size_t *ret_len);

/* The same bytes as store_snapshot(), handed to @write in pieces of at
 * most @chunk bytes (from a buffer of that size allocated here, so that
 * a large store is never copied whole; used by a snapshot child process).
 * A non-zero return of @write stops and is returned. Errors: -ENOMEM,
 * -EINVAL (@chunk < 64), or @write's. */
typedef int (*store_write_fn)(void *data, const void *buf, size_t len);
int store_snapshot_stream(const struct store *s, size_t chunk,
			  store_write_fn write, void *data);

/* Replaces the whole content with a snapshot. Live watches become gone;
 * the callbacks of drained ones fire so that their owners notice.
 * Errors: -EBADMSG (corrupt, truncated or unknown format; store unchanged),
 * -ENOMEM. */
int store_restore(struct store *s, const void *buf, size_t len);

/* Command codec: msgpack, padded with zeros to a multiple of 8 bytes
 * (libraft 0.15 corrupts other lengths). @alloc allocates the buffer
 * (e.g. raft_malloc; malloc if NULL). Errors: -ENOMEM, -EINVAL (a command
 * store_apply() would reject as malformed). */
int store_cmd_encode(const struct store_cmd *cmd, void *(*alloc)(size_t),
		     void **ret_buf, size_t *ret_len);

/* Decodes in place: the key and value pointers point into @buf. @len
 * must be the padded length (a multiple of 8). Errors: -EBADMSG. */
int store_cmd_decode(const void *buf, size_t len, struct store_cmd *ret_cmd);

#endif
