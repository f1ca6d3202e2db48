/* Unit tests of raft/fsm on libraft's deterministic fixture (virtual time):
 * replication, partitions, a killed leader, InstallSnapshot, and the
 * snapshot header checks. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <raft.h>
#include <raft/fixture.h>

#include "raft/fsm.h"
#include "raft/store.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

/* ------------------------------------------------------------ Fixture */

#define N_SERVERS 3
#define MAX_REQS 256

struct req {
	struct raft_apply raft;
	bool done;
	int status;
	struct store_result result;
};

struct cluster {
	struct raft_fixture f;
	struct store *stores[N_SERVERS];
	struct fsm fsms[N_SERVERS];
	struct req reqs[MAX_REQS];
	unsigned n_reqs;
	uint64_t time_ms;
};

static int setup(void **state)
{
	struct cluster *c = calloc(1, sizeof *c);
	struct raft_configuration conf;

	assert_non_null(c);
	assert_int_equal(raft_fixture_initialize(&c->f), 0);
	for (unsigned i = 0; i < N_SERVERS; i++) {
		assert_int_equal(store_new(NULL, &c->stores[i]), 0);
		fsm_init(&c->fsms[i], c->stores[i]);
		/* The fixture's io has async_work but says version 0, which
		 * raft_init() refuses for off-loop snapshots: start without
		 * them, then say version 2 and turn them on (libraft checks
		 * only at init). */
		fsm_set_fork_snapshots(&c->fsms[i], false);
		assert_int_equal(raft_fixture_grow(&c->f, &c->fsms[i].raft_fsm), 0);
		raft_fixture_get(&c->f, i)->io->version = 2;
		fsm_set_fork_snapshots(&c->fsms[i], true);
		raft_set_pre_vote(raft_fixture_get(&c->f, i), true);
	}
	assert_int_equal(raft_fixture_configuration(&c->f, N_SERVERS, &conf), 0);
	assert_int_equal(raft_fixture_bootstrap(&c->f, &conf), 0);
	raft_configuration_close(&conf);
	assert_int_equal(raft_fixture_start(&c->f), 0);
	c->time_ms = 1700000000000u;
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct cluster *c = *state;

	raft_fixture_close(&c->f);
	for (unsigned i = 0; i < N_SERVERS; i++) {
		fsm_close(&c->fsms[i]);
		store_free(c->stores[i]);
	}
	free(c);
	return 0;
}

/* ------------------------------------------------------------ Helpers */

static void apply_cb(struct raft_apply *raft_req, int status, void *result)
{
	struct req *r = raft_req->data;

	r->done = true;
	r->status = status;
	/* The result pointer is valid only during the callback: copy it. */
	if (status == 0)
		r->result = *(const struct store_result *)result;
}

/* Submits a raw entry on server @i; returns the request. */
static struct req *submit_raw(struct cluster *c, unsigned i, void *base,
			      size_t len)
{
	struct req *r = &c->reqs[c->n_reqs++];
	struct raft_buffer buf = {.base = base, .len = len};

	assert_true(c->n_reqs <= MAX_REQS);
	memset(r, 0, sizeof *r);
	r->raft.data = r;
	assert_int_equal(raft_apply(raft_fixture_get(&c->f, i), &r->raft, &buf,
				    1, apply_cb),
			 0);
	return r;
}

static struct req *submit(struct cluster *c, unsigned i, enum store_cmd_type type,
			  enum store_cond cond, uint64_t mod_rev,
			  const char *key, const char *val)
{
	struct store_cmd cmd = {.type = type,
				.cond = cond,
				.mod_rev = mod_rev,
				.time_ms = c->time_ms++,
				.key = key,
				.key_len = strlen(key),
				.val = val,
				.val_len = val != NULL ? strlen(val) : 0};
	void *base;
	size_t len;

	assert_int_equal(store_cmd_encode(&cmd, raft_malloc, &base, &len), 0);
	assert_int_equal(len % 8, 0);
	return submit_raw(c, i, base, len);
}

static struct req *put(struct cluster *c, unsigned i, const char *key,
		       const char *val)
{
	return submit(c, i, STORE_CMD_PUT, STORE_COND_NONE, 0, key, val);
}

static unsigned leader_of(struct cluster *c)
{
	for (unsigned i = 0; i < N_SERVERS; i++)
		if (raft_fixture_alive(&c->f, i) &&
		    raft_state(raft_fixture_get(&c->f, i)) == RAFT_LEADER)
			return i;
	return N_SERVERS;
}

struct not_server {
	unsigned excluded;
};

/* Stop function: a leader other than the excluded server. */
static bool other_leader(struct raft_fixture *f, void *arg)
{
	struct not_server *ns = arg;
	for (unsigned i = 0; i < N_SERVERS; i++)
		if (i != ns->excluded && raft_fixture_alive(f, i) &&
		    raft_state(raft_fixture_get(f, i)) == RAFT_LEADER)
			return true;
	return false;
}

static void wait_applied(struct cluster *c, unsigned i, raft_index index)
{
	assert_true(raft_fixture_step_until_applied(&c->f, i, index, 60000));
}

static void assert_same_store(struct cluster *c, unsigned a, unsigned b)
{
	void *ba, *bb;
	size_t la, lb;

	assert_int_equal(store_snapshot(c->stores[a], &ba, &la), 0);
	assert_int_equal(store_snapshot(c->stores[b], &bb, &lb), 0);
	assert_int_equal(la, lb);
	assert_memory_equal(ba, bb, la);
	free(ba);
	free(bb);
}

/* Same keys, values, revisions and store revision. A store restored from
 * a snapshot has no history before it (its compaction point is its
 * revision), so byte-compare the snapshots of two stores restored from
 * each side's snapshot. */
static void assert_same_content(struct cluster *c, unsigned a, unsigned b)
{
	void *bufs[2], *again[2];
	size_t lens[2], again_lens[2];
	unsigned ids[2] = {a, b};

	for (int i = 0; i < 2; i++) {
		struct store *fresh;
		assert_int_equal(store_snapshot(c->stores[ids[i]], &bufs[i],
						&lens[i]),
				 0);
		assert_int_equal(store_new(NULL, &fresh), 0);
		assert_int_equal(store_restore(fresh, bufs[i], lens[i]), 0);
		assert_int_equal(store_snapshot(fresh, &again[i], &again_lens[i]),
				 0);
		store_free(fresh);
		free(bufs[i]);
	}
	assert_int_equal(again_lens[0], again_lens[1]);
	assert_memory_equal(again[0], again[1], again_lens[0]);
	free(again[0]);
	free(again[1]);
}

static void assert_value(struct cluster *c, unsigned i, const char *key,
			 const char *val)
{
	struct store_kv kv;
	assert_int_equal(store_get(c->stores[i], key, strlen(key), &kv), 0);
	assert_int_equal(kv.val_len, strlen(val));
	assert_memory_equal(kv.val, val, kv.val_len);
}

/* ------------------------------------------------------------ Tests */

/* Commands applied on the leader reach every store, byte for byte, and the
 * leader's callback sees each command's store result. */
static void replicate_identical(void **state)
{
	struct cluster *c = *state;
	struct req *a, *b, *conflict, *cas, *del, *last;
	char key[32], val[32];
	unsigned l;

	assert_true(raft_fixture_step_until_has_leader(&c->f, 10000));
	l = leader_of(c);
	assert_true(l < N_SERVERS);

	a = put(c, l, "/registry/pods/default/a", "one");
	b = put(c, l, "/registry/pods/default/b", "two");
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof key, "/registry/k/%02d", i);
		snprintf(val, sizeof val, "value-%d", i * 7);
		put(c, l, key, val);
	}
	/* CAS on a (created at revision 1): a stale revision conflicts... */
	conflict = submit(c, l, STORE_CMD_PUT, STORE_COND_MOD_REV, 99,
			  "/registry/pods/default/a", "lost");
	/* ...the right one wins. */
	cas = submit(c, l, STORE_CMD_PUT, STORE_COND_MOD_REV, 1,
		     "/registry/pods/default/a", "won");
	del = submit(c, l, STORE_CMD_DELETE, STORE_COND_NONE, 0,
		     "/registry/pods/default/b", NULL);
	last = put(c, l, "/registry/last", "x");
	wait_applied(c, N_SERVERS, last->raft.index);

	assert_true(a->done && a->status == 0);
	assert_int_equal(a->result.status, 0);
	assert_int_equal(a->result.rev, 1);
	assert_int_equal(b->result.rev, 2);
	assert_int_equal(conflict->result.status, STORE_ESTALE);
	assert_int_equal(conflict->result.rev, 22);
	assert_int_equal(cas->result.status, 0);
	assert_int_equal(cas->result.mod_rev, 23);
	assert_int_equal(del->result.status, 0);
	assert_int_equal(last->result.rev, 25);

	for (unsigned i = 0; i < N_SERVERS; i++) {
		assert_int_equal(store_revision(c->stores[i]), 25);
		assert_value(c, i, "/registry/pods/default/a", "won");
	}
	assert_same_store(c, 0, 1);
	assert_same_store(c, 0, 2);
}

/* The leader is cut off; the others elect a new leader and go on; the old
 * leader's write fails with RAFT_LEADERSHIPLOST and, after healing, every
 * store converges on the new history. */
static void partition_and_heal(void **state)
{
	struct cluster *c = *state;
	struct not_server ns;
	struct req *first, *orphan, *last = NULL;
	unsigned l, l2;
	char key[32];

	assert_true(raft_fixture_step_until_has_leader(&c->f, 10000));
	l = leader_of(c);
	first = put(c, l, "/before", "1");
	wait_applied(c, N_SERVERS, first->raft.index);

	for (unsigned i = 0; i < N_SERVERS; i++) {
		if (i == l)
			continue;
		raft_fixture_disconnect(&c->f, l, i);
		raft_fixture_disconnect(&c->f, i, l);
	}
	orphan = put(c, l, "/orphan", "never");
	ns.excluded = l;
	assert_true(raft_fixture_step_until(&c->f, other_leader, &ns, 60000));
	l2 = leader_of(c);
	if (l2 == l) { /* the old one may not have noticed yet */
		for (l2 = 0; l2 < N_SERVERS; l2++)
			if (l2 != l && raft_state(raft_fixture_get(&c->f, l2)) ==
					       RAFT_LEADER)
				break;
	}
	assert_true(l2 < N_SERVERS && l2 != l);
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof key, "/after/%d", i);
		last = put(c, l2, key, "2");
	}
	for (unsigned i = 0; i < N_SERVERS; i++)
		if (i != l)
			wait_applied(c, i, last->raft.index);

	for (unsigned i = 0; i < N_SERVERS; i++) {
		if (i == l)
			continue;
		raft_fixture_reconnect(&c->f, l, i);
		raft_fixture_reconnect(&c->f, i, l);
	}
	wait_applied(c, N_SERVERS, last->raft.index);

	assert_true(orphan->done);
	assert_int_equal(orphan->status, RAFT_LEADERSHIPLOST);
	for (unsigned i = 0; i < N_SERVERS; i++) {
		struct store_kv kv;
		assert_int_equal(store_get(c->stores[i], "/orphan", 7, &kv),
				 STORE_ENOENT);
		assert_int_equal(store_revision(c->stores[i]), 11);
	}
	assert_same_store(c, 0, 1);
	assert_same_store(c, 0, 2);
}

/* A dead leader: the two others elect one and keep applying; once revived
 * the old leader catches up. */
static void kill_leader(void **state)
{
	struct cluster *c = *state;
	struct not_server ns;
	struct req *r, *last = NULL;
	unsigned l, l2, a = N_SERVERS, b = N_SERVERS;

	assert_true(raft_fixture_step_until_has_leader(&c->f, 10000));
	l = leader_of(c);
	r = put(c, l, "/k", "1");
	wait_applied(c, N_SERVERS, r->raft.index);

	raft_fixture_kill(&c->f, l);
	ns.excluded = l;
	assert_true(raft_fixture_step_until(&c->f, other_leader, &ns, 60000));
	l2 = leader_of(c);
	assert_true(l2 < N_SERVERS && l2 != l);
	for (int i = 0; i < 5; i++)
		last = submit(c, l2, STORE_CMD_PUT, STORE_COND_NONE, 0, "/k", "2");
	for (unsigned i = 0; i < N_SERVERS; i++) {
		if (i == l)
			continue;
		if (a == N_SERVERS)
			a = i;
		else
			b = i;
		wait_applied(c, i, last->raft.index);
	}
	assert_int_equal(last->status, 0);
	assert_int_equal(last->result.rev, 6);
	assert_same_store(c, a, b);
	assert_int_equal(store_revision(c->stores[l]), 1);

	raft_fixture_revive(&c->f, l);
	wait_applied(c, l, last->raft.index);
	assert_same_store(c, l, a);
}

/* With a low threshold the leader compacts its log; a follower that was
 * away gets InstallSnapshot (through our snapshot and restore) and ends
 * with the same store. */
static void install_snapshot(void **state)
{
	struct cluster *c = *state;
	struct req *r, *last = NULL;
	unsigned l, lag;
	char key[32], val[32];

	for (unsigned i = 0; i < N_SERVERS; i++) {
		raft_set_snapshot_threshold(raft_fixture_get(&c->f, i), 4);
		raft_set_snapshot_trailing(raft_fixture_get(&c->f, i), 1);
	}
	assert_true(raft_fixture_step_until_has_leader(&c->f, 10000));
	l = leader_of(c);
	lag = (l + 1) % N_SERVERS;
	r = put(c, l, "/first", "1");
	wait_applied(c, N_SERVERS, r->raft.index);

	for (unsigned i = 0; i < N_SERVERS; i++) {
		if (i == lag)
			continue;
		raft_fixture_disconnect(&c->f, lag, i);
		raft_fixture_disconnect(&c->f, i, lag);
	}
	for (int i = 0; i < 30; i++) {
		snprintf(key, sizeof key, "/snap/%02d", i % 7);
		snprintf(val, sizeof val, "v%d", i);
		last = put(c, l, key, val);
		/* Let snapshots be taken along the way. */
		raft_fixture_step_until_applied(&c->f, l, last->raft.index, 5000);
	}
	assert_int_equal(raft_fixture_n_recv(&c->f, lag,
					     RAFT_IO_INSTALL_SNAPSHOT),
			 0);
	for (unsigned i = 0; i < N_SERVERS; i++) {
		if (i == lag)
			continue;
		raft_fixture_reconnect(&c->f, lag, i);
		raft_fixture_reconnect(&c->f, i, lag);
	}
	wait_applied(c, lag, last->raft.index);
	assert_true(raft_fixture_n_recv(&c->f, lag, RAFT_IO_INSTALL_SNAPSHOT) >=
		    1);
	assert_int_equal(store_revision(c->stores[lag]), 31);
	assert_same_content(c, lag, l);
	assert_value(c, lag, "/snap/01", "v29");
}

/* An entry that does not decode is a no-op everywhere, reported to the
 * leader's callback, and replication goes on. */
static void undecodable_entry(void **state)
{
	struct cluster *c = *state;
	struct req *bad, *good;
	unsigned l;
	void *junk;

	assert_true(raft_fixture_step_until_has_leader(&c->f, 10000));
	l = leader_of(c);
	junk = raft_malloc(16);
	memset(junk, 0xc1, 16); /* 0xc1 is never used in msgpack */
	bad = submit_raw(c, l, junk, 16);
	good = put(c, l, "/after-junk", "ok");
	wait_applied(c, N_SERVERS, good->raft.index);
	assert_int_equal(bad->status, 0);
	assert_int_equal(bad->result.status, -EBADMSG);
	assert_int_equal(good->result.status, 0);
	assert_int_equal(good->result.rev, 1);
	assert_same_store(c, 0, 1);
	assert_same_store(c, 0, 2);
}

/* Snapshot codec through the raft_fsm callbacks: a round trip works, and
 * every kind of damage is refused with the store left as it was. */
static void restore_checks(void **state)
{
	struct cluster *c = *state;
	struct raft_fsm *src = &c->fsms[0].raft_fsm;
	struct raft_fsm *dst = &c->fsms[1].raft_fsm;
	struct raft_buffer *bufs = NULL, in;
	struct store_result res;
	struct store_cmd cmd = {.type = STORE_CMD_PUT,
				.time_ms = 1,
				.key = "/a",
				.key_len = 2,
				.val = "b",
				.val_len = 1};
	unsigned n = 0;
	size_t total;
	uint8_t *whole, *p;

	assert_int_equal(store_apply(c->stores[0], &cmd, &res), 0);
	assert_int_equal(src->snapshot(src, &bufs, &n), 0);
	assert_int_equal(src->snapshot_async(src, &bufs, &n), 0);
	total = 0;
	for (unsigned i = 0; i < n; i++)
		total += bufs[i].len;
	whole = malloc(total);
	p = whole;
	for (unsigned i = 0; i < n; i++) {
		memcpy(p, bufs[i].base, bufs[i].len);
		p += bufs[i].len;
	}
	assert_int_equal(src->snapshot_finalize(src, &bufs, &n), 0);
	assert_int_equal(total > FSM_SNAPSHOT_HEADER_LEN, 1);
	assert_memory_equal(whole, "CPSTNSNP", 8);

	/* Damaged copies: restore fails and the buffer stays libraft's. */
	struct {
		size_t off;
		uint8_t xor;
		size_t len;
	} damage[] = {
		{0, 0x01, total},                          /* magic */
		{8, 0x02, total},                          /* format version */
		{16, 0x01, total},                         /* length field */
		{0, 0, FSM_SNAPSHOT_HEADER_LEN - 1},       /* truncated header */
		{0, 0, total - 1},                         /* truncated body */
		{24, 0x01, total},                         /* digest */
		{FSM_SNAPSHOT_HEADER_LEN, 0xff, total},    /* store encoding */
		/* The last byte: the store may well accept it, the digest
		 * does not. */
		{0, 0, 0},
	};
	damage[sizeof damage / sizeof damage[0] - 1].off = total - 1;
	damage[sizeof damage / sizeof damage[0] - 1].xor = 0x01;
	damage[sizeof damage / sizeof damage[0] - 1].len = total;
	for (size_t i = 0; i < sizeof damage / sizeof damage[0]; i++) {
		in.len = damage[i].len;
		in.base = raft_malloc(in.len);
		memcpy(in.base, whole, in.len);
		((uint8_t *)in.base)[damage[i].off] ^= damage[i].xor;
		assert_int_not_equal(dst->restore(dst, &in), 0);
		assert_string_not_equal(fsm_errmsg(&c->fsms[1]), "");
		assert_int_equal(store_revision(c->stores[1]), 0);
		raft_free(in.base);
	}

	/* Intact: accepted, the buffer is the fsm's (freed by it). */
	in.len = total;
	in.base = raft_malloc(total);
	memcpy(in.base, whole, total);
	assert_int_equal(dst->restore(dst, &in), 0);
	assert_int_equal(store_revision(c->stores[1]), 1);
	assert_same_content(c, 0, 1);
	free(whole);
}

/* Takes a snapshot through the raft_fsm callbacks as libraft 0.15 does
 * (snapshot on the loop, snapshot_async in the pool, finalize) and returns
 * it as one malloc'ed buffer. Between the first two, @between runs, as
 * entries applied meanwhile would. Returns the status of the first failing
 * call, 0 on success. */
static int take_snapshot(struct fsm *f, void (*between)(struct fsm *f),
			 uint8_t **ret, size_t *ret_len)
{
	struct raft_fsm *rf = &f->raft_fsm;
	struct raft_buffer *bufs = NULL;
	unsigned n = 0;
	size_t total = 0;
	uint8_t *p;
	int rv;

	rv = rf->snapshot(rf, &bufs, &n);
	if (rv != 0)
		return rv;
	if (between != NULL)
		between(f);
	if (rf->snapshot_async != NULL)
		rv = rf->snapshot_async(rf, &bufs, &n);
	if (rv == 0) {
		for (unsigned i = 0; i < n; i++)
			total += bufs[i].len;
		*ret = p = malloc(total);
		assert_non_null(p);
		for (unsigned i = 0; i < n; i++) {
			memcpy(p, bufs[i].base, bufs[i].len);
			p += bufs[i].len;
		}
		*ret_len = total;
	}
	assert_int_equal(rf->snapshot_finalize(rf, &bufs, &n), 0);
	assert_null(bufs);
	return rv;
}

static void fill(struct store *s, unsigned n, const char *val)
{
	char key[64];
	struct store_result res;

	for (unsigned i = 0; i < n; i++) {
		struct store_cmd cmd = {.type = STORE_CMD_PUT, .time_ms = 1};
		snprintf(key, sizeof key, "/registry/things/ns/k%05u", i);
		cmd.key = key;
		cmd.key_len = strlen(key);
		cmd.val = val;
		cmd.val_len = strlen(val);
		assert_int_equal(store_apply(s, &cmd, &res), 0);
	}
}

static void overwrite_all(struct fsm *f)
{
	fill(f->store, 2000, "changed after the snapshot point");
}

/* Mappings of snapshot children's output in this process. */
static unsigned snapshot_maps(void)
{
	FILE *fp = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned n = 0;

	assert_non_null(fp);
	while (fgets(line, sizeof line, fp) != NULL)
		if (strstr(line, "memfd:capstan-snapshot") != NULL)
			n++;
	fclose(fp);
	return n;
}

/* A forked snapshot holds the store as of snapshot(), not as of
 * snapshot_async(), and is byte-identical to one encoded on the loop. */
static void fork_snapshot_point_in_time(void **state)
{
	struct cluster *c = *state;
	struct fsm *f = &c->fsms[0];
	uint8_t *forked, *direct;
	size_t forked_len, direct_len;

	fill(c->stores[0], 2000, "before");
	fsm_set_fork_snapshots(f, false);
	assert_int_equal(take_snapshot(f, NULL, &direct, &direct_len), 0);
	fsm_set_fork_snapshots(f, true);
	assert_int_equal(take_snapshot(f, overwrite_all, &forked, &forked_len),
			 0);
	assert_int_equal(f->child, 0);
	assert_int_equal(f->memfd, -1);
	assert_null(f->map);
	/* Unmapped off the loop, but unmapped. */
	for (int i = 0; i < 500 && snapshot_maps() > 0; i++)
		usleep(10 * 1000);
	assert_int_equal(snapshot_maps(), 0);
	assert_int_equal(forked_len, direct_len);
	assert_memory_equal(forked, direct, direct_len);

	/* It restores to the earlier content. */
	struct raft_buffer in = {.base = raft_malloc(forked_len),
				 .len = forked_len};
	memcpy(in.base, forked, forked_len);
	assert_int_equal(c->fsms[1].raft_fsm.restore(&c->fsms[1].raft_fsm, &in),
			 0);
	assert_value(c, 1, "/registry/things/ns/k01999", "before");
	assert_int_equal(store_revision(c->stores[1]), 2000);
	free(forked);
	free(direct);
}

/* Someone else reaps the child and its output is lost: the one outcome
 * that is the same whether or not the child had finished. */
static void lose_child_output(struct fsm *f)
{
	int status;

	assert_true(f->child > 0);
	kill(f->child, SIGKILL);
	assert_int_equal(waitpid(f->child, &status, 0), f->child);
	assert_int_equal(ftruncate(f->memfd, 0), 0);
}

/* A snapshot whose child output is missing fails with a message and
 * nothing left behind; after FSM_FORK_FAILURES_MAX failures in a row
 * snapshots are encoded on the loop. */
static void fork_snapshot_child_dies(void **state)
{
	struct cluster *c = *state;
	struct fsm *f = &c->fsms[0];
	uint8_t *buf;
	size_t len;

	fill(c->stores[0], 100, "v");
	for (unsigned i = 0; i < FSM_FORK_FAILURES_MAX; i++) {
		assert_int_not_equal(take_snapshot(f, lose_child_output, &buf, &len),
				     0);
		assert_string_not_equal(fsm_errmsg(f), "");
		assert_int_equal(f->child, 0);
		assert_int_equal(f->memfd, -1);
		assert_null(f->map);
	}
	/* No child any more: nothing to kill, the snapshot is direct. */
	assert_int_equal(take_snapshot(f, NULL, &buf, &len), 0);
	assert_int_equal(f->child, 0);
	assert_true(len > FSM_SNAPSHOT_HEADER_LEN);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(replicate_identical, setup, teardown),
		cmocka_unit_test_setup_teardown(partition_and_heal, setup, teardown),
		cmocka_unit_test_setup_teardown(kill_leader, setup, teardown),
		cmocka_unit_test_setup_teardown(install_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(undecodable_entry, setup, teardown),
		cmocka_unit_test_setup_teardown(restore_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(fork_snapshot_point_in_time,
						setup, teardown),
		cmocka_unit_test_setup_teardown(fork_snapshot_child_dies, setup,
						teardown),
	};
	return cmocka_run_group_tests_name("fsm", tests, NULL, NULL);
}
