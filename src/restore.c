/* capstand --restore: see restore.h.
 *
 * Happy path: restore_new() decodes the file into a scratch store; the
 * replica becomes the ready leader; a pass walks the scratch store in key
 * order keeping RESTORE_INFLIGHT puts in flight; the last commit writes
 * DATA/restored. Failure modes: leadership lost or a put with an unknown
 * outcome stops the pass, and the next leadership event starts a new one
 * from the first key (puts are idempotent); a full pass is what counts.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/lib/log.h"
#include "src/lib/snapfile.h"
#include "src/restore.h"

struct put_req {
	struct replica_apply apply;
	struct restore *rs;
	unsigned slot;
};

struct restore {
	struct store *scratch;
	uint64_t revision; /* of the backup */
	uint64_t keys;     /* to write */
	struct replica *replica;
	char *marker;
	void (*done_cb)(void *data, int status);
	void *data;
	struct store_iter it;
	bool running;  /* a pass issues puts */
	bool at_end;   /* the pass has issued its last put */
	bool failed;   /* a put of this pass did not surely commit */
	bool again;    /* leadership came back while puts were in flight */
	bool done;
	unsigned inflight;
	uint64_t written;
	unsigned free_top;
	unsigned free_slots[RESTORE_INFLIGHT];
	struct put_req reqs[RESTORE_INFLIGHT];
};

static bool is_members_key(const struct store_kv *kv)
{
	size_t n = sizeof(REPLICA_MEMBERS_PREFIX) - 1;

	return kv->key_len >= n && memcmp(kv->key, REPLICA_MEMBERS_PREFIX, n) == 0;
}

static int count_cb(const struct store_kv *kv, void *data)
{
	uint64_t *n = data;

	if (!is_members_key(kv))
		(*n)++;
	return 0;
}

int restore_new(const char *path, struct restore **ret_restore, char *errmsg,
		size_t errmsg_len)
{
	struct snapfile_header h;
	struct restore *rs;
	const void *payload;
	void *buf = NULL;
	size_t len = 0;
	bool more;
	int rv;

	rv = snapfile_load(path, &buf, &len, &h, &payload, errmsg, errmsg_len);
	if (rv != 0)
		return rv;
	rs = calloc(1, sizeof(*rs));
	if (rs == NULL) {
		rv = -ENOMEM;
		snprintf(errmsg, errmsg_len, "out of memory");
		goto err_after_load;
	}
	rv = store_new(NULL, &rs->scratch);
	if (rv != 0) {
		snprintf(errmsg, errmsg_len, "out of memory");
		goto err_after_alloc;
	}
	rv = store_restore(rs->scratch, payload, (size_t)h.payload_len);
	if (rv != 0) {
		snprintf(errmsg, errmsg_len, "%s: the store content does not decode (%s)", path,
			 rv == -EBADMSG ? "corrupt or unknown store format" : strerror(-rv));
		goto err_after_store;
	}
	if (store_count(rs->scratch) != h.key_count) {
		rv = -EBADMSG;
		snprintf(errmsg, errmsg_len, "%s: the header announces %" PRIu64
			 " keys, the content holds %zu", path, h.key_count,
			 store_count(rs->scratch));
		goto err_after_store;
	}
	rs->revision = h.revision;
	store_range(rs->scratch, "", 0, NULL, 0, 0, count_cb, &rs->keys, &more);
	for (unsigned i = 0; i < RESTORE_INFLIGHT; i++) {
		rs->reqs[i].rs = rs;
		rs->reqs[i].slot = i;
		rs->free_slots[i] = i;
	}
	rs->free_top = RESTORE_INFLIGHT;
	free(buf);
	*ret_restore = rs;
	return 0;

err_after_store:
	store_free(rs->scratch);
err_after_alloc:
	free(rs);
err_after_load:
	free(buf);
	return rv;
}

uint64_t restore_key_count(const struct restore *rs)
{
	return rs->keys;
}

/* Blocking, once, a few bytes: acceptable on the loop. */
static int write_marker(struct restore *rs)
{
	char line[128];
	int fd, n, rv = 0;

	fd = open(rs->marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	n = snprintf(line, sizeof line, "%" PRIu64 " keys from backup revision %" PRIu64 "\n",
		     rs->keys, rs->revision);
	if (write(fd, line, (size_t)n) != n || fsync(fd) != 0)
		rv = errno != 0 ? -errno : -EIO;
	if (close(fd) != 0 && rv == 0)
		rv = -errno;
	return rv;
}

static void start_pass(struct restore *rs);
static void pump(struct restore *rs);

static void finish(struct restore *rs)
{
	int rv;

	rs->done = true;
	rs->running = false;
	store_free(rs->scratch); /* the leadership callback stays: keep rs */
	rs->scratch = NULL;
	rv = write_marker(rs);
	if (rv != 0)
		log_error("cannot write %s: %s", rs->marker, strerror(-rv));
	else
		log_info("restored %" PRIu64 " keys from a backup at revision %" PRIu64
			 "; the store is now at revision %" PRIu64,
			 rs->keys, rs->revision, store_revision(replica_store(rs->replica)));
	rs->done_cb(rs->data, rv);
}

/* After a put completed or a pass stopped: go on, start over, or finish. */
static void settle(struct restore *rs)
{
	if (rs->done || rs->inflight > 0)
		return;
	if (rs->again || (rs->failed && replica_is_ready_leader(rs->replica))) {
		if (replica_is_ready_leader(rs->replica))
			start_pass(rs);
		else
			rs->again = false;
		return;
	}
	if (rs->running && rs->at_end && !rs->failed)
		finish(rs);
}

static void put_cb(struct replica_apply *a, int status, const struct store_result *res)
{
	struct put_req *p = a->data;
	struct restore *rs = p->rs;

	(void)res;
	rs->inflight--;
	rs->free_slots[rs->free_top++] = p->slot;
	if (status != 0) {
		if (!rs->failed)
			log_warn("a restore write did not surely commit (%s): starting over once "
				 "this replica leads", strerror(-status));
		rs->failed = true;
		rs->running = false;
	} else {
		rs->written++;
	}
	if (rs->running && !rs->at_end)
		pump(rs);
	settle(rs);
}

static void pump(struct restore *rs)
{
	struct store_kv kv;

	while (rs->running && !rs->at_end && rs->free_top > 0) {
		struct store_cmd cmd;
		struct put_req *p;
		int rv;

		if (!store_iter_next(&rs->it, &kv)) {
			rs->at_end = true;
			break;
		}
		if (is_members_key(&kv))
			continue;
		p = &rs->reqs[rs->free_slots[rs->free_top - 1]];
		memset(&cmd, 0, sizeof cmd);
		cmd.type = STORE_CMD_PUT;
		cmd.cond = STORE_COND_NONE;
		cmd.key = kv.key;
		cmd.key_len = kv.key_len;
		cmd.val = kv.val;
		cmd.val_len = kv.val_len;
		p->apply.data = p;
		rv = replica_apply(rs->replica, &p->apply, &cmd, put_cb);
		if (rv != 0) {
			/* Nothing appended: try again with the next leadership. */
			if (rv != REPLICA_ENOTLEADER)
				log_warn("cannot propose a restore write: %s", strerror(-rv));
			rs->failed = true;
			rs->running = false;
			break;
		}
		rs->free_top--;
		rs->inflight++;
	}
}

static void start_pass(struct restore *rs)
{
	rs->again = false;
	rs->failed = false;
	rs->at_end = false;
	rs->running = true;
	rs->written = 0;
	log_info("restoring %" PRIu64 " keys from a backup at revision %" PRIu64, rs->keys,
		 rs->revision);
	store_iter_seek(rs->scratch, &rs->it, NULL, 0);
	pump(rs);
	settle(rs);
}

static void leadership_cb(void *data, bool leading)
{
	struct restore *rs = data;

	if (rs->done)
		return;
	if (!leading) {
		rs->running = false;
		return;
	}
	if (rs->inflight > 0)
		rs->again = true;
	else
		start_pass(rs);
}

int restore_start(struct restore *rs, struct replica *replica, const char *marker_path,
		  void (*done_cb)(void *data, int status), void *data)
{
	int rv;

	rs->marker = strdup(marker_path);
	if (rs->marker == NULL)
		return -ENOMEM;
	rs->replica = replica;
	rs->done_cb = done_cb;
	rs->data = data;
	rv = replica_on_leadership(replica, leadership_cb, rs);
	if (rv != 0)
		return rv;
	/* Already leading (a callback registered late gets no past event). */
	if (replica_is_ready_leader(replica))
		start_pass(rs);
	return 0;
}

void restore_free(struct restore *rs)
{
	if (rs == NULL)
		return;
	store_free(rs->scratch);
	free(rs->marker);
	free(rs);
}
