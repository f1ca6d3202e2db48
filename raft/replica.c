/* One replica: libraft with the uv io and TCP transport on the caller's
 * loop, the store as its state machine (raft/fsm.c), and the bookkeeping
 * libraft 0.15 leaves to its user.
 *
 * Happy path: replica_new() checks the config; replica_bootstrap() or
 * replica_start() first initialise the transport, the uv io and raft
 * (lazily, so that a data-dir problem is reported with a message);
 * replica_start() loads snapshot and log and starts Raft. A prepare and a
 * check handle run evaluate() around every poll of the loop: it notices
 * leadership changes, fatal I/O (raft_state() == RAFT_UNAVAILABLE once
 * started), removal from the cluster, wakes waiters and drives the
 * membership state machine one step at a time. User callbacks that are
 * not answers to raft requests (leadership, removal, failure, change
 * completion) always run from evaluate(), never from inside libraft.
 *
 * Failure modes worth knowing:
 * - libraft fails every leader request with RAFT_LEADERSHIPLOST while the
 *   state still reads RAFT_LEADER (convertClearLeader runs first), so no
 *   request is re-issued from a failure callback.
 * - raft_close() fails the pending requests synchronously; that is how
 *   they complete with REPLICA_ESHUTDOWN. It crashes a leader with two or
 *   more appends waiting for the disk, so close first lets them drain.
 * - Writes are batched: replica_apply() queues, flush_applies() (run
 *   before the loop blocks) hands each batch to one raft_apply(), the
 *   next one only once the previous one has been applied, and
 *   the fsm hook delivers each entry's result by log index, since
 *   libraft calls a batch's callback for its first entry only. replica_close() defers
 *   raft_close() to a timer callback so that a user may close from inside
 *   any callback, including ones libraft runs in its apply loop.
 * - Membership: libraft stops replicating to a server the moment the
 *   configuration without it is appended, so a removed server never sees
 *   that configuration nor anything after it. Removing another member
 *   therefore deletes its members entry first (it applies that and stops
 *   itself), then calls raft_remove(). A leader removing itself calls
 *   raft_remove() and notices its absence from the committed
 *   configuration; its entry is cleaned up by the next leader.
 */
#include "raft/replica.h"

#include <assert.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>

#include <jansson.h>
#include <raft.h>
#include <raft/uv.h>

#include "raft/fsm.h"
#include "src/lib/thread.h"

#define MEMBER_KEY_MAX (sizeof REPLICA_MEMBERS_PREFIX + 24)
#define RECONCILE_MAX_WRITES 64

/* Steps of a membership change. Add: ADD (spare) -> STANDBY -> FOLLOW ->
 * ASSIGN (voter) -> PUT -> DONE. libraft 0.15 never gives up promoting a
 * spare that does not catch up (max_catch_up_rounds is not enforced), and
 * while it tries no other change is possible; so the new member first
 * follows the log as a stand-by, and if its match index stops advancing
 * for ten election timeouts it is removed again (ABORT) and the add fails
 * with -ETIMEDOUT. An existing spare starts at STANDBY, a stand-by at
 * FOLLOW, a voter at PUT. Remove of another member: DELETE -> SYNC -> CATCHUP -> REMOVE ->
 * DONE: after its entry is deleted, a barrier appended after that commit
 * is waited for on the member (its match index), which proves it applied
 * the deletion, since libraft will not send it anything once the
 * configuration without it is appended. A dead member is waited for at
 * most two election timeouts. Remove of self: REMOVE -> DONE. */
enum change_step {
	STEP_NONE = 0,
	STEP_ADD,
	STEP_STANDBY,
	STEP_FOLLOW,
	STEP_ASSIGN,
	STEP_ABORT,
	STEP_PUT,
	STEP_DELETE,
	STEP_SYNC,
	STEP_CATCHUP,
	STEP_REMOVE,
	STEP_DONE,
};

struct leader_sub {
	replica_leader_cb cb;
	void *data;
};

/* What replica_apply keeps in req->internal. */
struct apply_internal {
	struct replica *r;
	struct replica_apply *next; /* in r->queued or r->inflight */
	void *base;                 /* the encoded entry while queued */
	size_t len;
	uint64_t index;             /* its log index once submitted */
};

/* One raft_apply() carrying up to APPLY_BATCH_MAX entries. libraft calls
 * its callback once, for the first entry (or on failure): the results of
 * all entries, the first included, come from the fsm hook instead. */
struct apply_batch {
	struct raft_apply raft_req;
	struct replica *r;
};

#define CLOSE_DRAIN_MS 2000u
#define APPLY_BATCH_MAX 256
#define KICK_PEERS_MAX 16
#define APPLY_BATCH_BYTES (4u << 20)
/* Batches submitted and not yet applied. While one is, new writes queue:
 * under load a batch then holds what arrived during a whole commit round
 * instead of one loop iteration's worth, so every member sends, reads and
 * writes fewer, larger messages (c=64: 12.2K -> 15.1K writes/s). An idle
 * leader submits at once, so a lone write waits for nothing. */
#define APPLY_INFLIGHT_MAX 1u
#define SNAPSHOT_STORE_RATIO 2u /* see snapshot_schedule() */
_Static_assert(sizeof(struct apply_internal) <=
		       sizeof(((struct replica_apply *)0)->internal),
	       "struct replica_apply internal space too small");

struct replica {
	uv_loop_t *loop;
	uint64_t id;
	char raft_address[64];
	char api_url[256];
	char *data_dir;
	unsigned election_timeout_ms;
	unsigned heartbeat_timeout_ms;
	unsigned snapshot_threshold;
	unsigned snapshot_trailing;
	char member_key[MEMBER_KEY_MAX];
	size_t member_key_len;

	struct store *store;
	struct fsm fsm;
	struct raft_uv_transport transport;
	struct raft_io io;
	struct raft raft;

	bool raft_inited;   /* raft_init() succeeded: raft_close() needed */
	bool start_called;  /* replica_start() was tried (once only) */
	bool started;       /* raft_start() succeeded */
	bool closing;
	bool raft_closing;  /* raft_close() called */
	bool failed;
	bool failed_fired;
	bool removed;       /* removal noticed */
	bool removed_fired;
	bool was_member;    /* seen itself in a committed configuration */
	bool in_evaluate;

	uv_prepare_t prepare;
	uv_check_t check;
	uv_timer_t wait_timer;
	uv_timer_t defer_timer;
	unsigned open_handles;

	char errmsg[512];
	char leader_url[256];

	/* Leadership. */
	struct leader_sub *subs;
	unsigned n_subs;
	bool ready;              /* leading=true fired and not yet false */
	uint64_t ready_term;
	bool lead_seen;          /* leader in lead_term, barrier issued */
	uint64_t lead_term;
	bool lead_barrier_busy;
	bool lead_barrier_ok;    /* barrier of lead_term completed */
	struct raft_barrier lead_barrier;

	/* Coalesced barriers: one raft_barrier in flight; requests arriving
	 * meanwhile wait for the next one. */
	struct raft_barrier barrier;
	bool barrier_busy;
	struct replica_barrier *bar_running;
	struct replica_barrier *bar_next_head;
	struct replica_barrier *bar_next_tail;

	/* Waiters sorted by index. */
	struct replica_wait *waits;

	/* The membership change in progress (one at a time). */
	struct {
		struct replica_change *req;
		enum change_step step;
		bool pending;   /* step to start (or DONE to report) */
		bool inflight;  /* a raft request or apply is outstanding */
		int status;     /* for STEP_DONE */
		uint64_t id;
		char raft_address[64];
		char api_url[256];
		struct raft_change raft_req;
		struct raft_barrier barrier;
		uint64_t sync_index;   /* CATCHUP: the barrier's index;
					  FOLLOW: the index to reach */
		uint64_t deadline;     /* CATCHUP, FOLLOW: uv_now() limit */
		uint64_t last_match;   /* FOLLOW: progress seen so far */
		struct replica_apply apply;
	} change;

	/* Members map upkeep by the ready leader. */
	bool reconcile_needed;
	bool reconcile_busy;
	unsigned reconcile_writes;
	struct replica_apply reconcile_apply;

	/* Writes: queued by replica_apply(), handed to libraft in batches
	 * by flush_applies() before the loop blocks again (one log append,
	 * one AppendEntries per follower and one disk write per batch
	 * instead of per write), then in flight in log order until the fsm
	 * hook delivers each result. */
	struct replica_apply *queued_head, *queued_tail;
	struct replica_apply *inflight_head, *inflight_tail;
	uint64_t inflight_term; /* leader term of everything in flight */
	unsigned n_applies;     /* requests not answered yet */
	unsigned n_batches;     /* batches libraft has not called back */
	uint64_t write_batches; /* raft_apply() calls for writes, ever */
	uint64_t snap_interval;    /* see snapshot_schedule() */
	uint64_t snap_interval_at; /* the snapshot index it was set at */
	uint64_t batched_writes;

	void (*removed_cb)(void *data);
	void *removed_data;
	void (*failed_cb)(void *data);
	void *failed_data;
	void (*close_cb)(void *data);
	void *close_data;
	uint64_t close_deadline; /* uv_now() limit of the drain at close */

	/* Telling followers the commit index at once (see commit_kick()). */
	int (*io_start)(struct raft_io *io, unsigned msecs,
			raft_io_tick_cb tick, raft_io_recv_cb recv);
	int (*io_send)(struct raft_io *io, struct raft_io_send *req,
		       const struct raft_message *message, raft_io_send_cb cb);
	raft_io_tick_cb tick_cb;
	struct {
		raft_id id;
		raft_index commit; /* leader_commit of the latest AppendEntries */
	} sent[KICK_PEERS_MAX];
	uint64_t n_kicks;
};

static void evaluate(struct replica *r);
static void snapshot_schedule(struct replica *r);
static void defer_cb(uv_timer_t *t);
static void wait_timer_cb(uv_timer_t *t);

/* ------------------------------------------------------------ helpers */

static void set_errmsg(struct replica *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_errmsg(struct replica *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->errmsg, sizeof r->errmsg, fmt, ap);
	va_end(ap);
}

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void schedule_defer(struct replica *r)
{
	if (r->open_handles == 0 || uv_is_closing((uv_handle_t *)&r->defer_timer))
		return;
	uv_timer_start(&r->defer_timer, defer_cb, 0, 0);
}

static int map_raft_sync(int rv)
{
	switch (rv) {
	case 0:
		return 0;
	case RAFT_NOTLEADER:
		return REPLICA_ENOTLEADER;
	case RAFT_NOMEM:
		return -ENOMEM;
	case RAFT_CANTCHANGE:
		return REPLICA_EBUSY;
	case RAFT_DUPLICATEID:
	case RAFT_DUPLICATEADDRESS:
		return -EEXIST;
	case RAFT_BADID:
	case RAFT_NOTFOUND:
		return -ENOENT;
	case RAFT_BADROLE:
	case RAFT_INVALID:
		return -EINVAL;
	case RAFT_SHUTDOWN:
		return REPLICA_ESHUTDOWN;
	default:
		return -EIO;
	}
}

static bool is_io_error(int status)
{
	return status == RAFT_IOERR || status == RAFT_NOSPACE ||
	       status == RAFT_CORRUPT;
}

static void mark_failed(struct replica *r, const char *why)
{
	if (r->failed)
		return;
	r->failed = true;
	set_errmsg(r, "%s", why);
	schedule_defer(r);
}

static const struct raft_server *config_get(const struct raft_configuration *c,
					    uint64_t id)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->servers[i].id == id)
			return &c->servers[i];
	return NULL;
}

static const struct raft_server *
config_get_address(const struct raft_configuration *c, const char *address)
{
	for (unsigned i = 0; i < c->n; i++)
		if (strcmp(c->servers[i].address, address) == 0)
			return &c->servers[i];
	return NULL;
}

static size_t member_key(uint64_t id, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s%" PRIu64, REPLICA_MEMBERS_PREFIX, id);
	return (size_t)n;
}

/* Parses a members entry. Returns 0 or -EBADMSG. */
static int member_parse(const void *val, size_t len, uint64_t *ret_id,
			char *raft_address, size_t raft_address_size,
			char *api_url, size_t api_url_size)
{
	json_error_t jerr;
	json_t *root, *jid, *jaddr, *jurl;
	int rv = -EBADMSG;

	root = json_loadb(val, len, 0, &jerr);
	if (root == NULL)
		return -EBADMSG;
	jid = json_object_get(root, "id");
	jaddr = json_object_get(root, "raftAddress");
	jurl = json_object_get(root, "apiURL");
	if (!json_is_integer(jid) || json_integer_value(jid) <= 0 ||
	    !json_is_string(jaddr) || !json_is_string(jurl))
		goto out;
	if (ret_id != NULL)
		*ret_id = (uint64_t)json_integer_value(jid);
	if (raft_address != NULL)
		snprintf(raft_address, raft_address_size, "%s",
			 json_string_value(jaddr));
	if (api_url != NULL)
		snprintf(api_url, api_url_size, "%s", json_string_value(jurl));
	rv = 0;
out:
	json_decref(root);
	return rv;
}

/* The JSON value of a members entry (malloc'ed), NULL on OOM. */
static char *member_json(uint64_t id, const char *raft_address,
			 const char *api_url)
{
	json_t *o;
	char *s;

	o = json_pack("{s:I,s:s,s:s}", "id", (json_int_t)id, "raftAddress",
		      raft_address, "apiURL", api_url);
	if (o == NULL)
		return NULL;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* True when the store holds exactly this member's entry. */
static bool member_matches(struct replica *r, uint64_t id,
			   const char *raft_address, const char *api_url)
{
	char key[MEMBER_KEY_MAX];
	struct store_kv kv;
	char addr[64], url[256];
	uint64_t got_id;
	size_t key_len = member_key(id, key, sizeof key);

	if (store_get(r->store, key, key_len, &kv) != 0)
		return false;
	if (member_parse(kv.val, kv.val_len, &got_id, addr, sizeof addr, url,
			 sizeof url) != 0)
		return false;
	return got_id == id && strcmp(addr, raft_address) == 0 &&
	       strcmp(url, api_url) == 0;
}

/* Looks up the API URL of @id in the members map; "" when unknown. */
static void member_url(struct replica *r, uint64_t id, char *url, size_t size)
{
	char key[MEMBER_KEY_MAX];
	struct store_kv kv;
	size_t key_len = member_key(id, key, sizeof key);

	url[0] = '\0';
	if (store_get(r->store, key, key_len, &kv) != 0)
		return;
	if (member_parse(kv.val, kv.val_len, NULL, NULL, 0, url, size) != 0)
		url[0] = '\0';
}

/* ------------------------------------------------------------ apply */

static struct apply_internal *apply_in(struct replica_apply *req)
{
	return (struct apply_internal *)(void *)req->internal;
}

/* Answers a request taken off its list. */
static void apply_finish(struct replica *r, struct replica_apply *req,
			 int status, const struct store_result *result)
{
	r->n_applies--;
	req->cb(req, status, result);
}

/* Fails every write not yet handed to libraft (nothing was appended). */
static void fail_queued(struct replica *r, int status)
{
	struct replica_apply *list = r->queued_head;

	r->queued_head = r->queued_tail = NULL;
	while (list != NULL) {
		struct replica_apply *req = list;
		struct apply_internal *in = apply_in(req);
		list = in->next;
		in->next = NULL;
		raft_free(in->base);
		in->base = NULL;
		apply_finish(r, req, status, NULL);
	}
}

/* Fails every write in flight: each was appended and may still commit. */
static void fail_inflight(struct replica *r)
{
	struct replica_apply *list = r->inflight_head;
	int status = r->closing ? REPLICA_ESHUTDOWN : REPLICA_EUNKNOWN;

	r->inflight_head = r->inflight_tail = NULL;
	while (list != NULL) {
		struct replica_apply *req = list;
		struct apply_internal *in = apply_in(req);
		list = in->next;
		in->next = NULL;
		apply_finish(r, req, status, NULL);
	}
}

static void batch_raft_cb(struct raft_apply *raft_req, int status,
			  void *result)
{
	struct apply_batch *b = raft_req->data;
	struct replica *r = b->r;

	(void)result; /* delivered by apply_hook() already */
	free(b);
	r->n_batches--;
	if (status == 0)
		return;
	if (is_io_error(status)) {
		char why[RAFT_ERRMSG_BUF_SIZE + 64];
		snprintf(why, sizeof why, "raft disk write failed: %s",
			 raft_errmsg(&r->raft));
		mark_failed(r, why);
	}
	/* libraft fails its requests only when leadership ends (or at
	 * close): every write in flight is then in the same situation. */
	fail_inflight(r);
}

/* Delivers the result of the entry at @index, applied on the leader. */
static void deliver_result(struct replica *r, raft_index index,
			   const struct store_result *result)
{
	while (r->inflight_head != NULL) {
		struct replica_apply *req = r->inflight_head;
		struct apply_internal *in = apply_in(req);
		if (in->index > index)
			return;
		r->inflight_head = in->next;
		if (r->inflight_head == NULL)
			r->inflight_tail = NULL;
		in->next = NULL;
		if (in->index == index)
			apply_finish(r, req, 0, result);
		else /* cannot happen: entries apply in order */
			apply_finish(r, req, REPLICA_EUNKNOWN, NULL);
	}
}

/* Hands the queued writes to libraft, APPLY_BATCH_MAX at a time. Unless
 * @force (a barrier or a change must follow the writes queued before it),
 * at most APPLY_INFLIGHT_MAX batches are outstanding. */
static void flush_applies_(struct replica *r, bool force)
{
	struct raft_buffer bufs[APPLY_BATCH_MAX];

	while (r->queued_head != NULL) {
		struct replica_apply *first = r->queued_head, *last = NULL;
		struct replica_apply *req;
		struct apply_batch *b;
		unsigned n = 0;
		size_t bytes = 0;
		uint64_t index;
		int rv;

		if (r->closing || r->failed || !r->started ||
		    raft_state(&r->raft) != RAFT_LEADER) {
			fail_queued(r, r->closing ? REPLICA_ESHUTDOWN
				       : r->failed ? -EIO
						   : REPLICA_ENOTLEADER);
			return;
		}
		if (r->inflight_head != NULL &&
		    r->inflight_term != r->raft.current_term)
			fail_inflight(r); /* a new term: see evaluate() */
		if (!force && r->n_batches >= APPLY_INFLIGHT_MAX)
			return;
		for (req = first; req != NULL && n < APPLY_BATCH_MAX &&
				  (n == 0 || bytes + apply_in(req)->len <=
						     APPLY_BATCH_BYTES);
		     req = apply_in(req)->next) {
			bufs[n].base = apply_in(req)->base;
			bufs[n].len = apply_in(req)->len;
			bytes += bufs[n].len;
			n++;
			last = req;
		}
		b = malloc(sizeof *b);
		if (b == NULL) {
			fail_queued(r, -ENOMEM);
			return;
		}
		memset(b, 0, sizeof *b);
		b->r = r;
		b->raft_req.data = b;
		index = raft_last_index(&r->raft) + 1;
		rv = raft_apply(&r->raft, &b->raft_req, bufs, n, batch_raft_cb);
		if (rv != 0) {
			free(b);
			fail_queued(r, rv == RAFT_NOTLEADER ? REPLICA_ENOTLEADER
							  : map_raft_sync(rv));
			return;
		}
		r->n_batches++;
		r->write_batches++;
		r->batched_writes += n;
		/* Move first..last to the in-flight list, with their indexes. */
		r->queued_head = apply_in(last)->next;
		if (r->queued_head == NULL)
			r->queued_tail = NULL;
		apply_in(last)->next = NULL;
		for (req = first; req != NULL; req = apply_in(req)->next) {
			apply_in(req)->base = NULL; /* libraft's now */
			apply_in(req)->index = index++;
		}
		if (r->inflight_tail != NULL)
			apply_in(r->inflight_tail)->next = first;
		else
			r->inflight_head = first;
		r->inflight_tail = last;
		r->inflight_term = r->raft.current_term;
	}
}

static void flush_applies(struct replica *r)
{
	flush_applies_(r, true);
}

int replica_apply(struct replica *r, struct replica_apply *req,
		  const struct store_cmd *cmd, replica_apply_cb cb)
{
	struct apply_internal *in = apply_in(req);
	struct store_cmd c = *cmd;
	void *base;
	size_t len;
	int rv;

	if (r->closing)
		return REPLICA_ESHUTDOWN;
	if (r->failed)
		return -EIO;
	if (!r->started || raft_state(&r->raft) != RAFT_LEADER)
		return REPLICA_ENOTLEADER;
	if (c.time_ms == 0)
		c.time_ms = wall_ms();
	rv = store_cmd_encode(&c, raft_malloc, &base, &len);
	if (rv != 0)
		return rv;
	memset(in, 0, sizeof *in);
	in->r = r;
	in->base = base;
	in->len = len;
	req->cb = cb;
	if (r->queued_tail != NULL)
		apply_in(r->queued_tail)->next = req;
	else
		r->queued_head = req;
	r->queued_tail = req;
	r->n_applies++;
	return 0;
}

/* ------------------------------------------------------------ barriers */

static int barrier_status(struct replica *r, int status)
{
	if (r->closing)
		return REPLICA_ESHUTDOWN;
	if (status == RAFT_LEADERSHIPLOST || status == RAFT_NOTLEADER)
		return REPLICA_ENOTLEADER;
	return map_raft_sync(status);
}

static void barrier_complete_list(struct replica_barrier *list, int status,
				  uint64_t index)
{
	while (list != NULL) {
		struct replica_barrier *b = list;
		list = b->next;
		b->next = NULL;
		b->cb(b, status, index);
	}
}

static void barrier_raft_cb(struct raft_barrier *rb, int status);

/* Issues one raft barrier for the queued requests. */
static int barrier_issue(struct replica *r)
{
	int rv;

	flush_applies(r); /* earlier writes first in the log */
	rv = raft_barrier(&r->raft, &r->barrier, barrier_raft_cb);
	if (rv != 0)
		return rv;
	r->barrier.data = r;
	r->barrier_busy = true;
	r->bar_running = r->bar_next_head;
	r->bar_next_head = r->bar_next_tail = NULL;
	return 0;
}

static void barrier_raft_cb(struct raft_barrier *rb, int status)
{
	struct replica *r = rb->data;
	struct replica_barrier *done = r->bar_running;
	struct replica_barrier *next = NULL;
	uint64_t index = 0;
	int st;

	r->bar_running = NULL;
	r->barrier_busy = false;
	if (status == 0) {
		/* libraft calls this before bumping last_applied to the
		 * barrier's index: everything before it is applied. */
		index = raft_last_applied(&r->raft);
		if (r->bar_next_head != NULL && !r->closing) {
			int rv = barrier_issue(r);
			if (rv != 0) {
				next = r->bar_next_head;
				r->bar_next_head = r->bar_next_tail = NULL;
				barrier_complete_list(done, 0, index);
				barrier_complete_list(next,
						      barrier_status(r, rv), 0);
				return;
			}
		}
		barrier_complete_list(done, 0, index);
		return;
	}
	/* Failure: libraft is stepping down (or closing); the queued ones
	 * would fail the same way, and must not be issued from here. */
	st = barrier_status(r, status);
	next = r->bar_next_head;
	r->bar_next_head = r->bar_next_tail = NULL;
	barrier_complete_list(done, st, 0);
	barrier_complete_list(next, st, 0);
}

int replica_barrier(struct replica *r, struct replica_barrier *req,
		    replica_barrier_cb cb)
{
	int rv;

	if (r->closing)
		return REPLICA_ESHUTDOWN;
	if (r->failed)
		return -EIO;
	if (!r->started || raft_state(&r->raft) != RAFT_LEADER)
		return REPLICA_ENOTLEADER;
	req->cb = cb;
	req->next = NULL;
	if (r->bar_next_tail != NULL)
		r->bar_next_tail->next = req;
	else
		r->bar_next_head = req;
	r->bar_next_tail = req;
	if (r->barrier_busy)
		return 0; /* joins the next barrier */
	rv = barrier_issue(r);
	if (rv != 0) {
		/* Only this request was queued (nothing in flight). */
		r->bar_next_head = r->bar_next_tail = NULL;
		return map_raft_sync(rv);
	}
	return 0;
}

/* ------------------------------------------------------------ waits */

static void wait_timer_arm(struct replica *r)
{
	uint64_t min = UINT64_MAX;
	uint64_t now = uv_now(r->loop);

	for (struct replica_wait *w = r->waits; w != NULL; w = w->next)
		if (w->deadline < min)
			min = w->deadline;
	if (min == UINT64_MAX) {
		uv_timer_stop(&r->wait_timer);
		return;
	}
	uv_timer_start(&r->wait_timer, wait_timer_cb, min > now ? min - now : 0,
		       0);
}

static void wake_waits(struct replica *r, uint64_t applied)
{
	bool woke = false;

	while (r->waits != NULL && r->waits->index <= applied) {
		struct replica_wait *w = r->waits;
		r->waits = w->next;
		w->next = NULL;
		woke = true;
		w->cb(w, 0);
	}
	if (woke && !r->closing)
		wait_timer_arm(r);
}

static void wait_timer_cb(uv_timer_t *t)
{
	struct replica *r = t->data;
	uint64_t now = uv_now(r->loop);
	struct replica_wait **pp = &r->waits;
	struct replica_wait *expired = NULL, **tail = &expired;

	while (*pp != NULL) {
		struct replica_wait *w = *pp;
		if (w->deadline <= now) {
			*pp = w->next;
			w->next = NULL;
			*tail = w;
			tail = &w->next;
		} else {
			pp = &w->next;
		}
	}
	while (expired != NULL) {
		struct replica_wait *w = expired;
		expired = w->next;
		w->next = NULL;
		w->cb(w, -ETIMEDOUT);
	}
	if (!r->closing)
		wait_timer_arm(r);
}

int replica_wait_applied(struct replica *r, struct replica_wait *req,
			 uint64_t index, unsigned timeout_ms,
			 replica_wait_cb cb)
{
	struct replica_wait **pp;

	if (r->closing)
		return REPLICA_ESHUTDOWN;
	req->cb = cb;
	req->index = index;
	req->deadline = uv_now(r->loop) + timeout_ms;
	for (pp = &r->waits; *pp != NULL && (*pp)->index <= index;
	     pp = &(*pp)->next)
		;
	req->next = *pp;
	*pp = req;
	wait_timer_arm(r);
	if (r->raft_inited && raft_last_applied(&r->raft) >= index)
		schedule_defer(r); /* completes from the loop, not from here */
	return 0;
}

/* ------------------------------------------------------------ members */

/* PUT (or DELETE when @raft_address is NULL) of a members entry. */
static int member_write(struct replica *r, struct replica_apply *req,
			uint64_t id, const char *raft_address,
			const char *api_url, uint64_t mod_rev, replica_apply_cb cb)
{
	char key[MEMBER_KEY_MAX];
	struct store_cmd cmd;
	char *json = NULL;
	int rv;

	memset(&cmd, 0, sizeof cmd);
	cmd.key = key;
	cmd.key_len = member_key(id, key, sizeof key);
	if (raft_address != NULL) {
		json = member_json(id, raft_address, api_url);
		if (json == NULL)
			return -ENOMEM;
		cmd.type = STORE_CMD_PUT;
		cmd.val = json;
		cmd.val_len = strlen(json);
	} else {
		cmd.type = STORE_CMD_DELETE;
	}
	if (mod_rev != 0) {
		cmd.cond = STORE_COND_MOD_REV;
		cmd.mod_rev = mod_rev;
	}
	req->data = r;
	rv = replica_apply(r, req, &cmd, cb);
	free(json);
	return rv;
}

struct stale_search {
	const struct raft_configuration *conf;
	uint64_t id;
	uint64_t mod_rev;
};

static int stale_cb(const struct store_kv *kv, void *data)
{
	struct stale_search *s = data;
	uint64_t id = 0;

	/* The key names the member; trust it over the value. */
	for (size_t i = sizeof REPLICA_MEMBERS_PREFIX - 1; i < kv->key_len; i++) {
		char c = kv->key[i];
		if (c < '0' || c > '9' || id > (UINT64_MAX - 9) / 10) {
			id = 0;
			break;
		}
		id = id * 10 + (uint64_t)(c - '0');
	}
	if (id == 0 || config_get(s->conf, id) == NULL) {
		s->id = id;
		s->mod_rev = kv->mod_rev;
		return 1;
	}
	return 0;
}

static void reconcile_cb(struct replica_apply *req, int status,
			 const struct store_result *result)
{
	struct replica *r = req->data;

	r->reconcile_busy = false;
	if (status != 0 || (result->status != 0 &&
			    result->status != STORE_ESTALE &&
			    result->status != STORE_ENOENT))
		r->reconcile_needed = false; /* try again next term */
	schedule_defer(r);
}

/* One write at a time: own entry first, then entries of ids no longer in
 * the committed configuration. */
static void reconcile_step(struct replica *r)
{
	struct stale_search s;
	bool more;
	int rv;

	if (!r->reconcile_needed || r->reconcile_busy || !r->ready ||
	    r->change.req != NULL || r->closing || r->failed)
		return;
	if (r->reconcile_writes >= RECONCILE_MAX_WRITES) {
		r->reconcile_needed = false;
		return;
	}
	if (config_get(&r->raft.configuration, r->id) != NULL &&
	    !member_matches(r, r->id, r->raft_address, r->api_url)) {
		rv = member_write(r, &r->reconcile_apply, r->id, r->raft_address,
				  r->api_url, 0, reconcile_cb);
		goto issued;
	}
	if (r->raft.configuration_uncommitted_index != 0)
		return; /* wait for the change to commit */
	memset(&s, 0, sizeof s);
	s.conf = &r->raft.configuration;
	rv = store_range(r->store, REPLICA_MEMBERS_PREFIX,
			 sizeof REPLICA_MEMBERS_PREFIX - 1, NULL, 0, 0, stale_cb,
			 &s, &more);
	if (rv == 0) {
		r->reconcile_needed = false;
		return;
	}
	if (s.id == 0) {
		r->reconcile_needed = false; /* a malformed key: leave it */
		return;
	}
	rv = member_write(r, &r->reconcile_apply, s.id, NULL, NULL, s.mod_rev,
			  reconcile_cb);
issued:
	if (rv != 0) {
		r->reconcile_needed = false;
		return;
	}
	r->reconcile_busy = true;
	r->reconcile_writes++;
}

/* ------------------------------------------------------------ changes */

static int change_status(struct replica *r, int status)
{
	if (r->closing)
		return REPLICA_ESHUTDOWN;
	/* The configuration entry may have been appended: it may commit. */
	if (status == RAFT_LEADERSHIPLOST)
		return REPLICA_EUNKNOWN;
	return map_raft_sync(status);
}

static void change_done(struct replica *r, int status)
{
	r->change.step = STEP_DONE;
	r->change.status = status;
	r->change.pending = true;
	schedule_defer(r);
}

static unsigned server_index(const struct raft_configuration *c, uint64_t id)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->servers[i].id == id)
			return i;
	return c->n;
}

static void change_follow_begin(struct replica *r)
{
	r->change.step = STEP_FOLLOW;
	r->change.sync_index = raft_last_index(&r->raft);
	r->change.last_match = 0;
	r->change.deadline = uv_now(r->loop) + 10u * r->election_timeout_ms;
}

/* FOLLOW: decides the next step, or false to keep waiting. */
static bool change_follow_done(struct replica *r)
{
	const struct raft_configuration *c = &r->raft.configuration;
	unsigned i = server_index(c, r->change.id);
	uint64_t match;

	if (raft_state(&r->raft) != RAFT_LEADER || i == c->n) {
		r->change.step = STEP_ASSIGN; /* fails and says why */
		return true;
	}
	match = r->raft.leader_state.progress[i].match_index;
	if (match >= r->change.sync_index) {
		/* The last stretch is libraft's catch-up round. */
		r->change.step = STEP_ASSIGN;
		return true;
	}
	if (match > r->change.last_match) {
		r->change.last_match = match;
		r->change.deadline =
			uv_now(r->loop) + 10u * r->election_timeout_ms;
		return false;
	}
	if (uv_now(r->loop) >= r->change.deadline) {
		r->change.step = STEP_ABORT;
		return true;
	}
	return false;
}

static void change_raft_cb(struct raft_change *rc, int status)
{
	struct replica *r = rc->data;

	r->change.inflight = false;
	if (status != 0 && r->change.step == STEP_ABORT) {
		change_done(r, -ETIMEDOUT);
		return;
	}
	if (status != 0) {
		change_done(r, change_status(r, status));
		return;
	}
	switch (r->change.step) {
	case STEP_ADD:
		r->change.step = STEP_STANDBY;
		break;
	case STEP_STANDBY:
		change_follow_begin(r);
		break;
	case STEP_ASSIGN:
		r->change.step = STEP_PUT;
		break;
	case STEP_REMOVE:
		change_done(r, 0);
		return;
	case STEP_ABORT:
		change_done(r, -ETIMEDOUT);
		return;
	default:
		change_done(r, -EIO);
		return;
	}
	r->change.pending = true;
	schedule_defer(r);
}

static void change_apply_cb(struct replica_apply *req, int status,
			    const struct store_result *result)
{
	struct replica *r = req->data;

	r->change.inflight = false;
	if (status != 0) {
		change_done(r, status);
		return;
	}
	if (result->status != 0 && !(r->change.step == STEP_DELETE &&
				     result->status == STORE_ENOENT)) {
		change_done(r, result->status);
		return;
	}
	if (r->change.step == STEP_DELETE &&
	    config_get(&r->raft.configuration, r->change.id) != NULL) {
		r->change.step = STEP_SYNC;
		r->change.pending = true;
		schedule_defer(r);
		return;
	}
	change_done(r, 0);
}

static void change_barrier_cb(struct raft_barrier *rb, int status)
{
	struct replica *r = rb->data;

	r->change.inflight = false;
	if (status != 0) {
		change_done(r, change_status(r, status) == REPLICA_EUNKNOWN
				       ? REPLICA_ENOTLEADER
				       : change_status(r, status));
		return;
	}
	r->change.sync_index = rb->index;
	r->change.deadline = uv_now(r->loop) + 2u * r->election_timeout_ms;
	r->change.step = STEP_CATCHUP;
	r->change.pending = true;
	schedule_defer(r);
}

/* CATCHUP: true once the member stored the barrier (or gave up on it). */
static bool change_caught_up(struct replica *r)
{
	const struct raft_configuration *c = &r->raft.configuration;

	if (raft_state(&r->raft) != RAFT_LEADER)
		return true; /* raft_remove() will say so */
	if (uv_now(r->loop) >= r->change.deadline)
		return true;
	for (unsigned i = 0; i < c->n; i++)
		if (c->servers[i].id == r->change.id)
			return r->raft.leader_state.progress[i].match_index >=
			       r->change.sync_index;
	return true;
}

/* Starts the current step. Returns a sync error (nothing outstanding). */
static int change_run(struct replica *r)
{
	int rv;

	flush_applies(r); /* earlier writes first in the log */
	r->change.raft_req.data = r;
	switch (r->change.step) {
	case STEP_ADD:
		rv = raft_add(&r->raft, &r->change.raft_req, r->change.id,
			      r->change.raft_address, change_raft_cb);
		rv = map_raft_sync(rv);
		break;
	case STEP_STANDBY:
		rv = raft_assign(&r->raft, &r->change.raft_req, r->change.id,
				 RAFT_STANDBY, change_raft_cb);
		rv = map_raft_sync(rv);
		break;
	case STEP_FOLLOW:
		/* Polled by change_pump() on every loop iteration. */
		return 0;
	case STEP_ASSIGN:
		rv = raft_assign(&r->raft, &r->change.raft_req, r->change.id,
				 RAFT_VOTER, change_raft_cb);
		rv = map_raft_sync(rv);
		break;
	case STEP_ABORT:
		rv = raft_remove(&r->raft, &r->change.raft_req, r->change.id,
				 change_raft_cb);
		if (rv != 0) {
			change_done(r, -ETIMEDOUT);
			return 0;
		}
		break;
	case STEP_REMOVE:
		rv = raft_remove(&r->raft, &r->change.raft_req, r->change.id,
				 change_raft_cb);
		rv = map_raft_sync(rv);
		break;
	case STEP_PUT:
		if (member_matches(r, r->change.id, r->change.raft_address,
				   r->change.api_url)) {
			change_done(r, 0);
			return 0;
		}
		rv = member_write(r, &r->change.apply, r->change.id,
				  r->change.raft_address, r->change.api_url, 0,
				  change_apply_cb);
		break;
	case STEP_DELETE:
		rv = member_write(r, &r->change.apply, r->change.id, NULL, NULL,
				  0, change_apply_cb);
		break;
	case STEP_SYNC:
		r->change.barrier.data = r;
		rv = raft_barrier(&r->raft, &r->change.barrier,
				  change_barrier_cb);
		rv = map_raft_sync(rv);
		break;
	case STEP_CATCHUP:
		/* Polled by change_pump() on every loop iteration. */
		return 0;
	case STEP_DONE:
		change_done(r, r->change.status);
		return 0;
	default:
		return -EINVAL;
	}
	if (rv == 0)
		r->change.inflight = true;
	return rv;
}

static void change_finish(struct replica *r, int status)
{
	struct replica_change *req = r->change.req;

	r->change.req = NULL;
	r->change.step = STEP_NONE;
	r->change.pending = false;
	if (r->ready)
		r->reconcile_needed = true;
	req->cb(req, status);
}

/* Runs from evaluate(): reports a finished change or starts its next step. */
static void change_pump(struct replica *r)
{
	int rv;

	if (r->change.req == NULL || !r->change.pending || r->change.inflight)
		return;
	if (r->change.step == STEP_CATCHUP && !r->closing) {
		if (!change_caught_up(r))
			return;
		r->change.step = STEP_REMOVE;
	}
	if (r->change.step == STEP_FOLLOW && !r->closing &&
	    !change_follow_done(r))
		return;
	r->change.pending = false;
	if (r->change.step == STEP_DONE) {
		change_finish(r, r->change.status);
		return;
	}
	if (r->closing) {
		change_finish(r, REPLICA_ESHUTDOWN);
		return;
	}
	rv = change_run(r);
	if (rv != 0)
		change_finish(r, rv);
}

static int change_check_leader(struct replica *r)
{
	if (r->closing)
		return REPLICA_ESHUTDOWN;
	if (r->failed)
		return -EIO;
	if (!r->started || raft_state(&r->raft) != RAFT_LEADER)
		return REPLICA_ENOTLEADER;
	if (r->change.req != NULL)
		return REPLICA_EBUSY;
	return 0;
}

int replica_add_member(struct replica *r, struct replica_change *req,
		       uint64_t id, const char *raft_address,
		       const char *api_url, replica_change_cb cb)
{
	const struct raft_server *srv;
	enum change_step step;
	int rv;

	rv = change_check_leader(r);
	if (rv != 0)
		return rv;
	if (id == 0 || id > INT64_MAX || raft_address == NULL ||
	    raft_address[0] == '\0' ||
	    strlen(raft_address) >= sizeof r->change.raft_address ||
	    (api_url != NULL && strlen(api_url) >= sizeof r->change.api_url))
		return -EINVAL;
	if (api_url == NULL)
		api_url = "";
	srv = config_get(&r->raft.configuration, id);
	if (srv != NULL) {
		if (strcmp(srv->address, raft_address) != 0)
			return -EEXIST;
		step = srv->role == RAFT_VOTER	 ? STEP_PUT
		       : srv->role == RAFT_SPARE ? STEP_STANDBY
						 : STEP_FOLLOW;
	} else {
		if (config_get_address(&r->raft.configuration, raft_address) !=
		    NULL)
			return -EEXIST;
		step = STEP_ADD;
	}

	memset(&r->change, 0, sizeof r->change);
	r->change.req = req;
	r->change.step = step;
	r->change.id = id;
	snprintf(r->change.raft_address, sizeof r->change.raft_address, "%s",
		 raft_address);
	snprintf(r->change.api_url, sizeof r->change.api_url, "%s", api_url);
	req->cb = cb;
	if (step == STEP_FOLLOW) {
		change_follow_begin(r);
		r->change.pending = true;
		schedule_defer(r);
	}
	rv = change_run(r);
	if (rv != 0) {
		r->change.req = NULL;
		r->change.step = STEP_NONE;
		return rv;
	}
	return 0;
}

int replica_remove_member(struct replica *r, struct replica_change *req,
			  uint64_t id, replica_change_cb cb)
{
	char key[MEMBER_KEY_MAX];
	struct store_kv kv;
	bool in_config, has_entry;
	enum change_step step;
	int rv;

	rv = change_check_leader(r);
	if (rv != 0)
		return rv;
	if (id == 0)
		return -EINVAL;
	in_config = config_get(&r->raft.configuration, id) != NULL;
	has_entry = store_get(r->store, key, member_key(id, key, sizeof key),
			      &kv) == 0;
	if (!in_config && !has_entry)
		return -ENOENT;
	if (id == r->id)
		step = STEP_REMOVE; /* the next leader deletes the entry */
	else if (has_entry)
		step = STEP_DELETE;
	else
		step = STEP_REMOVE;

	memset(&r->change, 0, sizeof r->change);
	r->change.req = req;
	r->change.step = step;
	r->change.id = id;
	req->cb = cb;
	rv = change_run(r);
	if (rv != 0) {
		r->change.req = NULL;
		r->change.step = STEP_NONE;
		return rv;
	}
	return 0;
}

/* ------------------------------------------------------------ leadership */

static void fire_leading(struct replica *r, bool leading)
{
	/* Subscribers may register more subscribers: index, not pointer.
	 * One may close the replica, which fires "false" at once: then the
	 * others must not get a stale "true" after it. */
	for (unsigned i = 0; i < r->n_subs && r->ready == leading; i++)
		r->subs[i].cb(r->subs[i].data, leading);
}

static void lead_barrier_cb(struct raft_barrier *rb, int status)
{
	struct replica *r = rb->data;

	r->lead_barrier_busy = false;
	if (r->closing)
		return;
	if (status == 0 && raft_state(&r->raft) == RAFT_LEADER &&
	    r->raft.current_term == r->lead_term)
		r->lead_barrier_ok = true;
	schedule_defer(r);
}

static void update_leadership(struct replica *r, int state)
{
	bool leader = state == RAFT_LEADER;
	uint64_t term = r->raft.current_term;

	if (r->ready && (!leader || term != r->ready_term)) {
		r->ready = false;
		fire_leading(r, false);
	}
	if (!leader) {
		r->lead_seen = false;
		r->lead_barrier_ok = false;
		return;
	}
	if (!r->lead_seen || r->lead_term != term) {
		/* A single voter re-elects itself in the same term after a
		 * restart, so "new leadership" is a transition, not a term. */
		if (r->lead_barrier_busy)
			return; /* the old term's barrier has not failed yet */
		r->lead_barrier.data = r;
		flush_applies(r);
		if (raft_barrier(&r->raft, &r->lead_barrier, lead_barrier_cb) != 0)
			return; /* retried at the next iteration */
		r->lead_barrier_busy = true;
		r->lead_barrier_ok = false;
		r->lead_seen = true;
		r->lead_term = term;
		return;
	}
	if (r->lead_barrier_ok && !r->ready && !r->closing && !r->failed) {
		r->ready = true;
		r->ready_term = term;
		r->reconcile_needed = true;
		r->reconcile_writes = 0;
		fire_leading(r, true);
	}
}

/* ------------------------------------------------------------ removal */

static void apply_hook(void *data, const struct store_cmd *cmd,
		       const struct store_result *result)
{
	struct replica *r = data;
	raft_index index;

	if (!r->raft_inited)
		return;
	/* libraft bumps last_applied after fsm->apply returns. */
	index = raft_last_applied(&r->raft) + 1;

	/* Our own writes: only while leading in the term they were appended
	 * in, when the entry at their index can only be theirs. */
	if (r->inflight_head != NULL && raft_state(&r->raft) == RAFT_LEADER &&
	    r->raft.current_term == r->inflight_term)
		deliver_result(r, index, result);

	if (cmd != NULL && cmd->type == STORE_CMD_DELETE &&
	    result->status == 0 && cmd->key_len == r->member_key_len &&
	    memcmp(cmd->key, r->member_key, cmd->key_len) == 0 && !r->removed) {
		/* Our entry deleted while we are a voter and after the latest
		 * configuration change we know of: we are being removed. A
		 * deletion older than that (replayed history of an earlier
		 * membership) does not count. */
		const struct raft_server *self =
			config_get(&r->raft.configuration, r->id);
		raft_index conf = r->raft.configuration_index;
		if (r->raft.configuration_uncommitted_index > conf)
			conf = r->raft.configuration_uncommitted_index;
		if (self != NULL && self->role == RAFT_VOTER && index > conf) {
			r->removed = true;
			schedule_defer(r);
		}
	}
	if (r->waits != NULL && !r->closing)
		wake_waits(r, index);
}

static void check_removed(struct replica *r)
{
	const struct raft_configuration *c = &r->raft.configuration;

	if (r->removed || r->raft.configuration_index == 0 ||
	    r->raft.configuration_uncommitted_index != 0)
		return;
	if (config_get(c, r->id) != NULL)
		r->was_member = true;
	else if (r->was_member)
		r->removed = true;
}

/* ------------------------------------------------------------ evaluate */

static void evaluate(struct replica *r)
{
	int state;

	if (r->in_evaluate)
		return;
	r->in_evaluate = true;

	if (r->started && !r->raft_closing) {
		state = raft_state(&r->raft);
		if (state == RAFT_UNAVAILABLE && !r->closing && !r->failed) {
			char why[RAFT_ERRMSG_BUF_SIZE + 64];
			snprintf(why, sizeof why,
				 "raft became unavailable (fatal I/O error?): %s",
				 raft_errmsg(&r->raft));
			mark_failed(r, why);
		}
		if (r->inflight_head != NULL &&
		    (state != RAFT_LEADER ||
		     r->raft.current_term != r->inflight_term))
			fail_inflight(r);
		if (!r->closing) {
			if (r->failed) {
				if (r->ready) {
					r->ready = false;
					fire_leading(r, false);
				}
			} else {
				update_leadership(r, state);
				check_removed(r);
			}
			wake_waits(r, raft_last_applied(&r->raft));
		}
	}
	if (r->failed && !r->failed_fired && r->failed_cb != NULL &&
	    !r->closing) {
		r->failed_fired = true;
		r->failed_cb(r->failed_data);
	}
	if (r->removed && !r->removed_fired && r->removed_cb != NULL &&
	    !r->closing) {
		r->removed_fired = true;
		r->removed_cb(r->removed_data);
	}
	change_pump(r);
	if (r->started && !r->closing) {
		reconcile_step(r);
		snapshot_schedule(r);
	}

	r->in_evaluate = false;
}

/* ------------------------------------------------------------ commit kick */

/* libraft 0.15 tells followers the commit index only inside AppendEntries:
 * when the entries a follower acknowledged commit and nothing new follows,
 * it learns of the commit at the next heartbeat (up to two heartbeat
 * intervals later, as ticks and heartbeats are not in phase), and so do
 * its watchers and the reads waiting on it. The leader therefore sends an
 * empty AppendEntries at once to each follower that holds every entry but
 * was last told an older commit index. libraft has no call for that; its
 * tick does it for a follower whose last send is a heartbeat interval old,
 * so the replica wraps the io's start() to learn the tick callback and its
 * send() to see the commit index each AppendEntries carried, clears the
 * last-send time of those followers and runs a tick. An extra tick is
 * harmless: everything it does is decided by comparing times. */
static struct replica *replica_of_io(struct raft_io *io)
{
	return (struct replica *)(void *)((char *)io -
					  offsetof(struct replica, io));
}

static int kick_io_start(struct raft_io *io, unsigned msecs,
			 raft_io_tick_cb tick, raft_io_recv_cb recv)
{
	struct replica *r = replica_of_io(io);

	r->tick_cb = tick;
	return r->io_start(io, msecs, tick, recv);
}

static int kick_io_send(struct raft_io *io, struct raft_io_send *req,
			const struct raft_message *message, raft_io_send_cb cb)
{
	struct replica *r = replica_of_io(io);

	if (message->type == RAFT_IO_APPEND_ENTRIES) {
		/* By position in the configuration, as libraft's progress;
		 * the id tells a stale slot after a change. */
		unsigned i = server_index(&r->raft.configuration,
					  message->server_id);
		if (i < KICK_PEERS_MAX) {
			r->sent[i].id = message->server_id;
			r->sent[i].commit = message->append_entries.leader_commit;
		}
	}
	return r->io_send(io, req, message, cb);
}

/* The commit index the follower at position @i was last sent, 0 when
 * unknown (a follower beyond KICK_PEERS_MAX is never kicked). */
static raft_index kick_sent_commit(const struct replica *r, unsigned i,
				   raft_id id)
{
	return r->sent[i].id == id ? r->sent[i].commit : 0;
}

/* Runs before the loop blocks, on the leader. */
static void commit_kick(struct replica *r)
{
	const struct raft_configuration *c = &r->raft.configuration;
	raft_index last = raft_last_index(&r->raft);
	raft_index commit = r->raft.commit_index;
	bool kick = false;

	if (r->tick_cb == NULL || !r->started || r->closing || r->failed ||
	    raft_state(&r->raft) != RAFT_LEADER ||
	    r->raft.leader_state.progress == NULL)
		return;
	for (unsigned i = 0; i < c->n && i < KICK_PEERS_MAX; i++) {
		struct raft_progress *p = &r->raft.leader_state.progress[i];
		if (c->servers[i].id == r->id || c->servers[i].role == RAFT_SPARE)
			continue;
		/* Only a follower that has every entry and would otherwise
		 * wait for a heartbeat: one missing entries gets them (and the
		 * commit index) without help. */
		if (p->next_index <= last || p->match_index < commit ||
		    kick_sent_commit(r, i, c->servers[i].id) >= commit)
			continue;
		p->last_send = 0;
		kick = true;
	}
	if (kick) {
		r->n_kicks++;
		r->tick_cb(&r->io);
	}
}

/* ------------------------------------------------------------ snapshots */

/* Every member applies the same log, so with one threshold all of them
 * would snapshot at the same index, at the same moment, and the whole
 * cluster would pay for it at once (measured: the p99 of writes near a
 * snapshot was 3x the rest). Each voter snapshots instead at the indexes
 * congruent to its own phase modulo the interval: the n voters are spread
 * evenly over it, so a quorum without a snapshotting member remains.
 * libraft snapshots once last_applied is threshold entries past the last
 * snapshot: the threshold is set to reach the next such index. */
static void snapshot_schedule(struct replica *r)
{
	const struct raft_configuration *c = &r->raft.configuration;
	uint64_t interval = r->snapshot_threshold;
	uint64_t n = 0, rank = 0, phase, last, target, threshold;

	/* A snapshot writes the whole store: with a fixed interval its cost
	 * per write grows with the store (c=64 writes over 200K keys: 35
	 * instead of 24 us of CPU per write and member). Waiting until the
	 * log holds 1/SNAPSHOT_STORE_RATIO of the store's bytes (at the mean
	 * entry size so far) bounds it to that many bytes written per byte
	 * of log; the log, which libraft also keeps in memory, stays under
	 * that share of the store. Fixed from one snapshot to the next, or
	 * the target below, a multiple of the interval, would move with
	 * every write. */
	if (r->snap_interval == 0 ||
	    r->snap_interval_at != r->raft.log.snapshot.last_index) {
		uint64_t share = 0;
		if (r->fsm.applied_entries > 0 && r->fsm.applied_bytes > 0)
			share = store_bytes(r->store) / SNAPSHOT_STORE_RATIO /
				(r->fsm.applied_bytes / r->fsm.applied_entries + 1);
		r->snap_interval = share > interval ? share : interval;
		r->snap_interval_at = r->raft.log.snapshot.last_index;
	}
	interval = r->snap_interval;

	for (unsigned i = 0; i < c->n; i++) {
		if (c->servers[i].role != RAFT_VOTER)
			continue;
		n++;
		if (c->servers[i].id < r->id)
			rank++;
	}
	if (n == 0)
		n = 1;
	if (rank >= n)
		rank = 0; /* not a voter: any phase will do */
	phase = interval * rank / n;
	last = r->raft.log.snapshot.last_index;
	/* The first index past a quarter interval with the right phase: in
	 * steady state one snapshot per interval. */
	target = last + interval / 4 + 1;
	target += (phase + interval - target % interval) % interval;
	threshold = target - last;
	if (threshold > UINT_MAX)
		threshold = UINT_MAX;
	if (r->raft.snapshot.threshold != (unsigned)threshold)
		raft_set_snapshot_threshold(&r->raft, (unsigned)threshold);
}

/* ------------------------------------------------------------ aio contexts */

/* libraft 0.15's uv io gives every open segment its own kernel AIO
 * context and, when the segment is closed (each time one fills up, and at
 * every snapshot, which closes the open segment), destroys it with
 * io_destroy(2) on the loop thread. io_destroy waits for an RCU grace
 * period: measured 28-40 ms on this machine's kernel, during which the
 * whole replica (Raft, HTTP, watches) stood still; loadgen traces showed
 * those stalls several times a second under load on the three members.
 * libraft calls it through syscall(3) (UvOsIoDestroy, src/uv_os.c) and
 * offers no hook, so this program's syscall() takes io_destroy calls and
 * hands the context to a thread that destroys it; libraft never uses a
 * context again after destroying it, and every other system call goes to
 * the C library's syscall() unchanged. Falls back to destroying at once
 * if the thread cannot start or has 64 contexts queued. */
#define AIOD_QUEUE_MAX 64

static pthread_mutex_t aiod_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t aiod_cond = PTHREAD_COND_INITIALIZER;
static unsigned long aiod_queue[AIOD_QUEUE_MAX];
static unsigned aiod_n;
static int aiod_state; /* 0 not started, 1 running, -1 failed */
static pid_t aiod_pid; /* the process whose thread it is (fork) */

typedef long (*syscall_fn)(long number, ...);

/* The definition of @name that this program's own hides (the C
 * library's), looked up once into @cache; NULL if there is none. */
static void *next_symbol(void **cache, const char *name)
{
	void *p = __atomic_load_n(cache, __ATOMIC_ACQUIRE);

	if (p == NULL) {
		p = dlsym(RTLD_NEXT, name);
		__atomic_store_n(cache, p, __ATOMIC_RELEASE);
	}
	return p;
}

static syscall_fn libc_syscall(void)
{
	static void *sym;
	void *p = next_symbol(&sym, "syscall");
	syscall_fn f;

	memcpy(&f, &p, sizeof f); /* POSIX: object to function pointer */
	return f;
}

static void *aiod_main(void *arg)
{
	syscall_fn sys = libc_syscall();

	(void)arg;
	for (;;) {
		unsigned long ctx;
		pthread_mutex_lock(&aiod_lock);
		while (aiod_n == 0)
			pthread_cond_wait(&aiod_cond, &aiod_lock);
		ctx = aiod_queue[--aiod_n];
		pthread_mutex_unlock(&aiod_lock);
		sys(SYS_io_destroy, ctx);
	}
	return NULL;
}

/* Queues @ctx for the thread. Returns false when the caller must destroy
 * it itself. */
static bool aiod_defer(unsigned long ctx)
{
	bool ok = false;

	pthread_mutex_lock(&aiod_lock);
	if (aiod_state == 1 && aiod_pid != getpid())
		aiod_state = 0; /* a forked child: the thread is not here */
	if (aiod_state == 0) {
		aiod_state = -1;
		if (thread_start_detached(aiod_main, NULL) == 0) {
			aiod_state = 1;
			aiod_pid = getpid();
		}
	}
	if (aiod_state == 1 && aiod_n < AIOD_QUEUE_MAX) {
		aiod_queue[aiod_n++] = ctx;
		pthread_cond_signal(&aiod_cond);
		ok = true;
	}
	pthread_mutex_unlock(&aiod_lock);
	return ok;
}

/* libraft writes a snapshot file (the whole store) from its thread pool
 * with one pwritev() through libuv, then fsync(): tens of MiB reached the
 * disk at once, and every O_DSYNC write of the log, whose cache flush waits
 * for all of it, stood still: measured 20-40 ms stalls of every write in
 * flight on the three members, one per snapshot. Writes of at least
 * PACED_WRITE_MIN go out in PACED_CHUNK pieces, each written back before
 * the next (sync_file_range), so a log write waits for one piece at most;
 * the fsync that follows has only metadata left. libuv makes pwritev a
 * raw syscall(); the result is what pwritev would return. */
#define PACED_WRITE_MIN (4u << 20)
#define PACED_CHUNK (512u * 1024u)

static long paced_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	size_t done = 0;

	for (int i = 0; i < n; i++) {
		size_t at = 0;
		while (at < iov[i].iov_len) {
			size_t len = iov[i].iov_len - at;
			ssize_t w;
			if (len > PACED_CHUNK)
				len = PACED_CHUNK;
			w = pwrite(fd, (const char *)iov[i].iov_base + at, len,
				   off + (off_t)done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return done > 0 ? (long)done : (long)w;
			(void)sync_file_range(fd, off + (off_t)done, w,
					      SYNC_FILE_RANGE_WAIT_BEFORE |
						      SYNC_FILE_RANGE_WRITE |
						      SYNC_FILE_RANGE_WAIT_AFTER);
			at += (size_t)w;
			done += (size_t)w;
			if ((size_t)w < len) /* short: as pwritev would */
				return (long)done;
		}
	}
	return (long)done;
}

static bool paced_write(long number, const long a[6])
{
	const struct iovec *iov = (const struct iovec *)a[1];
	size_t total = 0;

	if (number != SYS_pwritev || sizeof(long) != sizeof(off_t) || iov == NULL ||
	    a[2] <= 0 || a[2] > IOV_MAX || a[3] < 0)
		return false;
	for (long i = 0; i < a[2]; i++)
		total += iov[i].iov_len;
	return total >= PACED_WRITE_MIN;
}

long syscall(long number, ...)
{
	syscall_fn sys = libc_syscall();
	long a[6];
	va_list ap;

	/* Like the C library's: the six argument registers, used or not. */
	va_start(ap, number);
	for (unsigned i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (number == SYS_io_destroy && aiod_defer((unsigned long)a[0]))
		return 0;
	if (paced_write(number, a))
		return paced_pwritev((int)a[0], (const struct iovec *)a[1], (int)a[2],
				     (off_t)a[3]);
	if (sys == NULL) {
		errno = ENOSYS;
		return -1;
	}
	return sys(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* libraft 0.15 prepares each open segment with posix_fallocate(), which
 * leaves unwritten extents behind. Every write of the log to them then
 * converts extents: its RWF_NOWAIT io_submit() completes with EAGAIN, and
 * libraft submits it again from its thread pool (two more thread hops per
 * write, measured on every write under load), and each O_DSYNC write
 * commits the file system's journal. So this program's posix_fallocate()
 * writes zeros over what it allocated, once, in the thread pool that
 * prepares segments (as databases do with their write-ahead logs): the
 * log's writes become plain overwrites. Only files opened O_DSYNC (libraft
 * opens its segments so; nothing else here does) and only up to
 * ZERO_FILL_MAX; any failure leaves it to what the C library did. */
#if !defined(_FILE_OFFSET_BITS) /* else glibc renames it posix_fallocate64 */
#define ZERO_FILL_CHUNK (256u * 1024u)
#define ZERO_FILL_MAX ((off_t)1 << 30)

static char zero_chunk[ZERO_FILL_CHUNK]; /* .bss: maps the zero page, no RSS */

typedef int (*posix_fallocate_fn)(int fd, off_t offset, off_t len);

int posix_fallocate(int fd, off_t offset, off_t len)
{
	static void *sym;
	int flags, rv, saved = errno;
	void *p = next_symbol(&sym, "posix_fallocate");
	posix_fallocate_fn f;
	off_t at;

	memcpy(&f, &p, sizeof f); /* POSIX: object to function pointer */
	if (f == NULL)
		return ENOSYS;
	rv = f(fd, offset, len);
	if (rv != 0 || offset < 0 || len <= 0 || len > ZERO_FILL_MAX)
		return rv;
	flags = fcntl(fd, F_GETFL);
	if (flags == -1 || (flags & O_DSYNC) != O_DSYNC || (flags & O_DIRECT) != 0) {
		errno = saved;
		return 0;
	}
	for (at = offset; at < offset + len;) {
		size_t n = (size_t)(offset + len - at) < ZERO_FILL_CHUNK
				   ? (size_t)(offset + len - at)
				   : ZERO_FILL_CHUNK;
		ssize_t w = pwrite(fd, zero_chunk, n, at);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) /* the space is reserved: the file is usable as it is */
			break;
		at += w;
	}
	/* Written through (O_DSYNC): the cached pages are clean; drop them, the
	 * log writes with O_DIRECT. */
	(void)posix_fadvise(fd, offset, len, POSIX_FADV_DONTNEED);
	errno = saved;
	return 0;
}
#endif

/* libraft 0.15's TCP transport leaves Nagle's algorithm on, and its leader
 * pipelines AppendEntries on a connection that carries nothing back (the
 * answers travel on the follower's own connection). A message sent while
 * the previous one is unacknowledged then waits for the follower's delayed
 * ACK: measured under load as 40-48 ms stalls of every write in flight,
 * several times a second. The transport offers no hook; its connections
 * are made with connect(2) through libuv, so this program's connect()
 * switches Nagle off on every TCP socket it connects. The process's other
 * TCP clients (libcurl, h2o) want it off as well. Finding the raft sockets
 * among the loop's handles instead cost a getpeername() per handle a few
 * times a second: a loop stall of 1.2 ms with 900 API connections. */
typedef int (*connect_fn)(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len);

int connect(int fd, __CONST_SOCKADDR_ARG addr, socklen_t len)
{
	static void *sym;
	/* glibc's type is a transparent union of pointers under _GNU_SOURCE,
	 * a plain pointer otherwise: either way the pointer comes first. */
	const struct sockaddr *sa = *(const struct sockaddr *const *)&addr;
	int type = 0, one = 1, saved = errno;
	socklen_t tlen = sizeof(type);
	void *p = next_symbol(&sym, "connect");
	connect_fn f;

	memcpy(&f, &p, sizeof f); /* POSIX: object to function pointer */
	if (f == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (sa != NULL && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) &&
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) == 0 &&
	    type == SOCK_STREAM)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	errno = saved;
	return f(fd, addr, len);
}

/* Both run on every loop iteration, the prepare one just before the loop
 * blocks: whatever was queued meanwhile is flushed before then. */
static void prepare_cb(uv_prepare_t *h)
{
	struct replica *r = h->data;

	flush_applies_(r, false);
	evaluate(r);
	flush_applies_(r, false);
	commit_kick(r);
}

static void check_cb(uv_check_t *h)
{
	struct replica *r = h->data;


	flush_applies_(r, false);
	evaluate(r);
	flush_applies_(r, false);
}

/* ------------------------------------------------------------ lifecycle */

void replica_config_init(struct replica_config *c)
{
	memset(c, 0, sizeof *c);
	/* Failover takes about 1.7 election timeouts (libraft refuses votes
	 * while a follower still hears from a leader, so both survivors'
	 * timers in [ET, 2ET) must expire); the timers are checked once per
	 * heartbeat interval. Off-loop snapshots keep the loop's stalls far
	 * below this even under load (see raft/fsm.h). */
	c->election_timeout_ms = 400;
	c->heartbeat_timeout_ms = 50;
	c->snapshot_threshold = 16384;
	c->snapshot_trailing = 4096;
	store_config_init(&c->store);
}

int replica_new(uv_loop_t *loop, const struct replica_config *config,
		struct replica **ret_replica)
{
	struct replica *r;
	struct stat st;
	int rv;

	if (loop == NULL || config == NULL || config->id == 0 ||
	    config->id > INT64_MAX || config->raft_address == NULL ||
	    config->raft_address[0] == '\0' ||
	    strlen(config->raft_address) >= sizeof r->raft_address ||
	    (config->api_url != NULL &&
	     strlen(config->api_url) >= sizeof r->api_url) ||
	    config->data_dir == NULL || config->heartbeat_timeout_ms == 0 ||
	    config->election_timeout_ms <= config->heartbeat_timeout_ms ||
	    config->snapshot_threshold == 0)
		return -EINVAL;
	if (stat(config->data_dir, &st) != 0 || !S_ISDIR(st.st_mode))
		return -EIO;

	r = calloc(1, sizeof *r);
	if (r == NULL)
		return -ENOMEM;
	r->loop = loop;
	r->id = config->id;
	snprintf(r->raft_address, sizeof r->raft_address, "%s",
		 config->raft_address);
	snprintf(r->api_url, sizeof r->api_url, "%s",
		 config->api_url != NULL ? config->api_url : "");
	r->data_dir = strdup(config->data_dir);
	if (r->data_dir == NULL) {
		rv = -ENOMEM;
		goto err_after_alloc;
	}
	r->election_timeout_ms = config->election_timeout_ms;
	r->heartbeat_timeout_ms = config->heartbeat_timeout_ms;
	r->snapshot_threshold = config->snapshot_threshold;
	r->snapshot_trailing = config->snapshot_trailing;
	r->member_key_len = member_key(r->id, r->member_key, sizeof r->member_key);

	rv = store_new(&config->store, &r->store);
	if (rv != 0)
		goto err_after_dir;
	fsm_init(&r->fsm, r->store);
	fsm_set_hook(&r->fsm, apply_hook, r);

	/* These cannot fail on a valid loop. */
	uv_prepare_init(loop, &r->prepare);
	uv_check_init(loop, &r->check);
	uv_timer_init(loop, &r->wait_timer);
	uv_timer_init(loop, &r->defer_timer);
	r->prepare.data = r->check.data = r;
	r->wait_timer.data = r->defer_timer.data = r;
	r->open_handles = 4;
	uv_prepare_start(&r->prepare, prepare_cb);
	uv_check_start(&r->check, check_cb);
	/* Observers only: they must not keep the loop alive. */
	uv_unref((uv_handle_t *)&r->prepare);
	uv_unref((uv_handle_t *)&r->check);

	snprintf(r->errmsg, sizeof r->errmsg, "no error");
	*ret_replica = r;
	return 0;

err_after_dir:
	free(r->data_dir);
err_after_alloc:
	free(r);
	return rv;
}

/* Transport, uv io and raft_init, done on first need. */
static int ensure_raft(struct replica *r)
{
	int rv;

	if (r->raft_inited)
		return 0;
	rv = raft_uv_tcp_init(&r->transport, r->loop);
	if (rv != 0) {
		set_errmsg(r, "raft transport: %s", r->transport.errmsg);
		return map_raft_sync(rv);
	}
	rv = raft_uv_init(&r->io, r->loop, r->data_dir, &r->transport);
	if (rv != 0) {
		set_errmsg(r, "raft io on %s: %s", r->data_dir, r->io.errmsg);
		raft_uv_tcp_close(&r->transport);
		return rv == RAFT_NOMEM ? -ENOMEM : -EIO;
	}
	/* Auto-recovery moves corrupt segments aside and starts without
	 * them: a voter silently losing acknowledged entries. Fail instead. */
	raft_uv_set_auto_recovery(&r->io, false);
	/* libraft retries a failed connection after 1 s by default: a
	 * follower restarting within a fraction of a second would then not
	 * hear the leader for longer than an election timeout, and in a
	 * two-voter cluster (a join in progress) the leader would step down
	 * for lack of a quorum. Retry once per heartbeat instead; a refused
	 * loopback or LAN connect costs next to nothing. */
	raft_uv_set_connect_retry_delay(&r->io, r->heartbeat_timeout_ms);
	/* libraft 0.15's uv io implements async_work but still says version
	 * 1, and raft_init() wants 2 for the fsm's off-loop snapshots
	 * (raft/fsm.h). */
	if (r->io.async_work != NULL && r->io.version < 2)
		r->io.version = 2;
	else if (r->io.async_work == NULL)
		fsm_set_fork_snapshots(&r->fsm, false);
	/* libraft 0.15 loops forever decompressing a truncated LZ4 snapshot
	 * (src/compress.c, Decompress); our fsm header carries a digest of
	 * the data, which libraft does not check. Store it plain. */
	raft_uv_set_snapshot_compression(&r->io, false);
	r->io_start = r->io.start;
	r->io.start = kick_io_start;
	r->io_send = r->io.send;
	r->io.send = kick_io_send;
	rv = raft_init(&r->raft, &r->io, &r->fsm.raft_fsm, r->id,
		       r->raft_address);
	if (rv != 0) {
		set_errmsg(r, "raft init on %s: %s", r->data_dir,
			   r->io.errmsg[0] != '\0' ? r->io.errmsg
						   : raft_strerror(rv));
		raft_uv_close(&r->io);
		raft_uv_tcp_close(&r->transport);
		return rv == RAFT_NOMEM		 ? -ENOMEM
		       : rv == RAFT_CORRUPT || rv == RAFT_MALFORMED ? -EBADMSG
								 : -EIO;
	}
	r->raft.data = r;
	raft_set_election_timeout(&r->raft, r->election_timeout_ms);
	raft_set_heartbeat_timeout(&r->raft, r->heartbeat_timeout_ms);
	raft_set_snapshot_threshold(&r->raft, r->snapshot_threshold);
	raft_set_snapshot_trailing(&r->raft, r->snapshot_trailing);
	/* A partitioned server rejoining must not depose a healthy leader. */
	raft_set_pre_vote(&r->raft, true);
	r->raft_inited = true;
	return 0;
}

int replica_bootstrap(struct replica *r)
{
	struct raft_configuration conf;
	int rv;

	if (r->closing)
		return REPLICA_ESHUTDOWN;
	if (r->start_called)
		return -EINVAL;
	rv = ensure_raft(r);
	if (rv != 0)
		return rv;
	raft_configuration_init(&conf);
	rv = raft_configuration_add(&conf, r->id, r->raft_address, RAFT_VOTER);
	if (rv != 0) {
		raft_configuration_close(&conf);
		return -ENOMEM;
	}
	rv = raft_bootstrap(&r->raft, &conf);
	raft_configuration_close(&conf);
	if (rv == RAFT_CANTBOOTSTRAP) {
		set_errmsg(r, "data dir %s already holds state", r->data_dir);
		return -EEXIST;
	}
	if (rv != 0) {
		set_errmsg(r, "raft bootstrap in %s: %s", r->data_dir,
			   r->io.errmsg[0] != '\0' ? r->io.errmsg
						   : raft_strerror(rv));
		return rv == RAFT_NOMEM ? -ENOMEM : -EIO;
	}
	return 0;
}

/* Empties the store after a failed start: never serve a partial state. */
static void store_reset(struct replica *r)
{
	struct store *empty;
	void *buf;
	size_t len;

	if (store_revision(r->store) == 0 && store_count(r->store) == 0)
		return;
	if (store_new(NULL, &empty) != 0)
		return;
	if (store_snapshot(empty, &buf, &len) == 0) {
		store_restore(r->store, buf, len);
		free(buf);
	}
	store_free(empty);
}

int replica_start(struct replica *r)
{
	int rv;

	if (r->closing)
		return REPLICA_ESHUTDOWN;
	if (r->start_called)
		return -EINVAL;
	rv = ensure_raft(r);
	if (rv != 0)
		return rv;
	r->start_called = true;
	r->fsm.errmsg[0] = '\0';
	rv = raft_start(&r->raft);
	if (rv != 0) {
		const char *fsm_msg = fsm_errmsg(&r->fsm);
		set_errmsg(r, "raft start in %s: %s%s%s%s", r->data_dir,
			   raft_strerror(rv),
			   r->raft.errmsg[0] != '\0' ? ": " : "",
			   r->raft.errmsg, fsm_msg[0] != '\0' ? " / " : "");
		if (fsm_msg[0] != '\0')
			snprintf(r->errmsg + strlen(r->errmsg),
				 sizeof r->errmsg - strlen(r->errmsg), "%s",
				 fsm_msg);
		store_reset(r);
		return rv == RAFT_CORRUPT || rv == RAFT_MALFORMED ? -EBADMSG
		       : rv == RAFT_NOMEM			  ? -ENOMEM
								  : -EIO;
	}
	r->started = true;
	schedule_defer(r);
	return 0;
}

const char *replica_errmsg(const struct replica *r)
{
	return r->errmsg;
}

struct store *replica_store(struct replica *r)
{
	return r->store;
}

bool replica_failed(const struct replica *r)
{
	return r->failed;
}

bool replica_is_ready_leader(const struct replica *r)
{
	return r->ready;
}

int replica_on_leadership(struct replica *r, replica_leader_cb cb, void *data)
{
	struct leader_sub *subs;

	subs = realloc(r->subs, (r->n_subs + 1) * sizeof *subs);
	if (subs == NULL)
		return -ENOMEM;
	subs[r->n_subs].cb = cb;
	subs[r->n_subs].data = data;
	r->subs = subs;
	r->n_subs++;
	return 0;
}

void replica_on_removed(struct replica *r, void (*cb)(void *data), void *data)
{
	r->removed_cb = cb;
	r->removed_data = data;
	if (r->removed)
		schedule_defer(r);
}

void replica_on_failed(struct replica *r, void (*cb)(void *data), void *data)
{
	r->failed_cb = cb;
	r->failed_data = data;
	if (r->failed)
		schedule_defer(r);
}

static const char *state_name(int state)
{
	switch (state) {
	case RAFT_FOLLOWER:
		return "follower";
	case RAFT_CANDIDATE:
		return "candidate";
	case RAFT_LEADER:
		return "leader";
	default:
		return "unavailable";
	}
}

static int role_of(int raft_role)
{
	switch (raft_role) {
	case RAFT_VOTER:
		return 1;
	case RAFT_STANDBY:
		return 2;
	default:
		return 0;
	}
}

void replica_get_status(struct replica *r, struct replica_status *ret)
{
	memset(ret, 0, sizeof *ret);
	ret->id = r->id;
	snprintf(ret->raft_address, sizeof ret->raft_address, "%s",
		 r->raft_address);
	snprintf(ret->api_url, sizeof ret->api_url, "%s", r->api_url);
	ret->store_revision = store_revision(r->store);
	ret->write_batches = r->write_batches;
	ret->batched_writes = r->batched_writes;
	if (!r->raft_inited) {
		ret->state = "unavailable";
		return;
	}
	ret->state = state_name(raft_state(&r->raft));
	ret->term = r->raft.current_term;
	ret->commit_index = r->raft.commit_index;
	ret->applied_index = raft_last_applied(&r->raft);
	ret->last_index = raft_last_index(&r->raft);
	snprintf(ret->leader_api_url, sizeof ret->leader_api_url, "%s",
		 replica_leader_url(r));
	if (r->started) {
		raft_id lid = 0;
		const char *laddr = NULL;
		raft_leader(&r->raft, &lid, &laddr);
		ret->leader_id = lid;
	}
	for (unsigned i = 0; i < r->raft.configuration.n &&
			     ret->n_members < sizeof ret->members / sizeof ret->members[0];
	     i++) {
		const struct raft_server *s = &r->raft.configuration.servers[i];
		struct replica_member *m = &ret->members[ret->n_members++];
		m->id = s->id;
		snprintf(m->raft_address, sizeof m->raft_address, "%s",
			 s->address);
		m->role = role_of(s->role);
		if (s->id == r->id)
			snprintf(m->api_url, sizeof m->api_url, "%s", r->api_url);
		else
			member_url(r, s->id, m->api_url, sizeof m->api_url);
	}
}

const char *replica_leader_url(struct replica *r)
{
	raft_id lid = 0;
	const char *laddr = NULL;

	r->leader_url[0] = '\0';
	if (!r->started || r->closing)
		return r->leader_url;
	raft_leader(&r->raft, &lid, &laddr);
	if (lid == 0)
		return r->leader_url;
	if (lid == r->id)
		snprintf(r->leader_url, sizeof r->leader_url, "%s", r->api_url);
	else
		member_url(r, lid, r->leader_url, sizeof r->leader_url);
	return r->leader_url;
}

/* ------------------------------------------------------------ close */

static void fail_local_requests(struct replica *r)
{
	struct replica_barrier *next = r->bar_next_head;
	struct replica_wait *waits = r->waits;

	r->bar_next_head = r->bar_next_tail = NULL;
	r->waits = NULL;
	fail_queued(r, REPLICA_ESHUTDOWN);
	barrier_complete_list(next, REPLICA_ESHUTDOWN, 0);
	while (waits != NULL) {
		struct replica_wait *w = waits;
		waits = w->next;
		w->next = NULL;
		w->cb(w, REPLICA_ESHUTDOWN);
	}
}

static void handle_close_cb(uv_handle_t *h)
{
	struct replica *r = h->data;
	void (*cb)(void *data);
	void *data;

	if (--r->open_handles > 0)
		return;
	/* Everything libraft held is gone; nothing can call us any more. */
	assert(r->n_applies == 0 && r->n_batches == 0);
	cb = r->close_cb;
	data = r->close_data;
	fsm_close(&r->fsm);
	store_free(r->store);
	free(r->subs);
	free(r->data_dir);
	free(r);
	if (cb != NULL)
		cb(data);
}

static void close_handles(struct replica *r)
{
	/* Whatever is still queued can only fail now. */
	fail_local_requests(r);
	fail_inflight(r);
	if (r->change.req != NULL)
		change_finish(r, REPLICA_ESHUTDOWN);
	uv_close((uv_handle_t *)&r->prepare, handle_close_cb);
	uv_close((uv_handle_t *)&r->check, handle_close_cb);
	uv_close((uv_handle_t *)&r->wait_timer, handle_close_cb);
	uv_close((uv_handle_t *)&r->defer_timer, handle_close_cb);
}

static void raft_closed_cb(struct raft *raft)
{
	struct replica *r = raft->data;

	raft_uv_close(&r->io);
	raft_uv_tcp_close(&r->transport);
	r->raft_inited = false;
	close_handles(r);
}

static void defer_cb(uv_timer_t *t)
{
	struct replica *r = t->data;

	if (r->closing) {
		if (r->raft_closing)
			return;
		/* libraft 0.15 crashes in raft_close() when a leader has two
		 * or more appends queued behind the disk write in progress:
		 * each cancelled one truncates the log from its index, and
		 * the second truncates past the end (src/replication.c,
		 * appendLeaderCb; src/log.c, removeSuffix). Let the disk
		 * catch up first; it takes milliseconds. */
		if (r->started && !r->failed &&
		    r->raft.last_stored < raft_last_index(&r->raft) &&
		    uv_now(r->loop) < r->close_deadline) {
			uv_timer_start(&r->defer_timer, defer_cb, 2, 0);
			return;
		}
		r->raft_closing = true;
		fail_local_requests(r);
		if (r->change.req != NULL && !r->change.inflight)
			change_finish(r, REPLICA_ESHUTDOWN);
		if (r->raft_inited) {
			/* Fails the raft requests in flight, synchronously;
			 * writes whose batch libraft already called back
			 * fail here. */
			raft_close(&r->raft, raft_closed_cb);
			fail_inflight(r);
		} else {
			close_handles(r);
		}
		return;
	}
	evaluate(r);
}

void replica_close(struct replica *r, void (*cb)(void *data), void *data)
{
	if (r->closing)
		return;
	r->closing = true;
	r->close_cb = cb;
	r->close_data = data;
	r->close_deadline = uv_now(r->loop) + CLOSE_DRAIN_MS;
	if (r->ready) {
		r->ready = false;
		fire_leading(r, false);
	}
	fail_local_requests(r);
	/* raft_close() from a timer callback: never inside libraft. */
	uv_timer_start(&r->defer_timer, defer_cb, 0, 0);
}
