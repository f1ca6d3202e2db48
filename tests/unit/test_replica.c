/* Unit tests of raft/replica on a real uv loop: libraft's uv io in a
 * temporary directory and its TCP transport on 127.0.0.1 free ports. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/aio_abi.h>
#include <linux/fiemap.h>
#include <linux/fs.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <jansson.h>
#include <uv.h>

#include "raft/replica.h"
#include "raft/store.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

/* ------------------------------------------------------------ Fixture */

/* Hang guard only: no assertion depends on how fast anything is. */
#define GUARD_MS 60000

struct node {
	struct replica *r;
	uint64_t id;
	char dir[256];
	char addr[64];
	char url[128];
	bool leading;
	unsigned n_lead_events;
	bool lead_events[16];
	bool removed;
	bool closed;
};

struct fixture {
	uv_loop_t loop;
	char tmp[128];
	struct node nodes[2];
};

/* Timeouts of the replicas node_new() creates (setup resets them). */
static unsigned test_election_ms = 400, test_heartbeat_ms = 40;

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	snprintf(f->tmp, sizeof f->tmp, "/tmp/capstan-test-replica-XXXXXX");
	assert_non_null(mkdtemp(f->tmp));
	test_election_ms = 400;
	test_heartbeat_ms = 40;
	*state = f;
	return 0;
}

static void rm_rf(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char sub[512];

	if (d == NULL) {
		unlink(path);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
		rm_rf(sub);
	}
	closedir(d);
	rmdir(path);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	uint64_t end = uv_now(&f->loop) + 10000;

	/* Bounded: after a failed test a replica may still hold live handles,
	 * and an unbounded run would hang the suite instead of failing. */
	while (uv_run(&f->loop, UV_RUN_NOWAIT) != 0 && uv_now(&f->loop) < end) {
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
		uv_update_time(&f->loop);
	}
	/* Every handle of every replica must be closed by now. */
	assert_int_equal(uv_loop_close(&f->loop), 0);
	rm_rf(f->tmp);
	free(f);
	return 0;
}

/* ------------------------------------------------------------ Helpers */

static unsigned free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void guard_cb(uv_timer_t *t)
{
	*(bool *)t->data = true;
}

/* Runs the loop until @cond holds (or the hang guard fires). */
static bool run_until_(struct fixture *f, bool (*cond)(void *), void *arg)
{
	uv_timer_t guard;
	bool expired = false;
	bool ok;

	uv_timer_init(&f->loop, &guard);
	guard.data = &expired;
	uv_timer_start(&guard, guard_cb, GUARD_MS, 0);
	while (!(ok = cond(arg)) && !expired)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&guard, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
	return ok;
}

#define run_until(f, cond, arg) assert_true(run_until_(f, cond, arg))

static bool flag_set(void *arg)
{
	return *(bool *)arg;
}

static bool is_leading(void *arg)
{
	return ((struct node *)arg)->leading;
}

static void leader_cb(void *data, bool leading)
{
	struct node *n = data;

	n->leading = leading;
	if (n->n_lead_events < 16)
		n->lead_events[n->n_lead_events++] = leading;
}

static void removed_cb(void *data)
{
	((struct node *)data)->removed = true;
}

static void node_init(struct fixture *f, struct node *n, uint64_t id)
{
	memset(n, 0, sizeof *n);
	n->id = id;
	snprintf(n->dir, sizeof n->dir, "%s/n%llu", f->tmp,
		 (unsigned long long)id);
	mkdir(n->dir, 0700);
	snprintf(n->addr, sizeof n->addr, "127.0.0.1:%u", free_port());
	snprintf(n->url, sizeof n->url, "https://127.0.0.1:%u", 6000 + (unsigned)id);
}

/* Creates the replica of @n (not started). */
static int node_new(struct fixture *f, struct node *n, unsigned threshold)
{
	struct replica_config c;
	int rv;

	replica_config_init(&c);
	c.id = n->id;
	c.raft_address = n->addr;
	c.api_url = n->url;
	c.data_dir = n->dir;
	c.election_timeout_ms = test_election_ms;
	c.heartbeat_timeout_ms = test_heartbeat_ms;
	if (threshold != 0) {
		c.snapshot_threshold = threshold;
		c.snapshot_trailing = 2;
	}
	n->leading = false;
	n->n_lead_events = 0;
	n->removed = false;
	n->closed = false;
	rv = replica_new(&f->loop, &c, &n->r);
	if (rv != 0)
		return rv;
	assert_int_equal(replica_on_leadership(n->r, leader_cb, n), 0);
	replica_on_removed(n->r, removed_cb, n);
	return 0;
}

static void close_cb(void *data)
{
	((struct node *)data)->closed = true;
}

static void node_close(struct fixture *f, struct node *n)
{
	replica_close(n->r, close_cb, n);
	run_until(f, flag_set, &n->closed);
	n->r = NULL;
}

struct apply_req {
	struct replica_apply req;
	bool done;
	int status;
	struct store_result result;
};

static void apply_cb(struct replica_apply *req, int status,
		     const struct store_result *result)
{
	struct apply_req *a = req->data;

	a->done = true;
	a->status = status;
	if (result != NULL)
		a->result = *result;
}

static int submit(struct node *n, struct apply_req *a, enum store_cmd_type type,
		  enum store_cond cond, uint64_t mod_rev, const char *key,
		  const char *val)
{
	struct store_cmd cmd = {.type = type,
				.cond = cond,
				.mod_rev = mod_rev,
				.key = key,
				.key_len = strlen(key),
				.val = val,
				.val_len = val != NULL ? strlen(val) : 0};

	memset(a, 0, sizeof *a);
	a->req.data = a;
	return replica_apply(n->r, &a->req, &cmd, apply_cb);
}

/* A PUT run to completion; returns the store result. */
static struct store_result put_sync(struct fixture *f, struct node *n,
				    enum store_cond cond, uint64_t mod_rev,
				    const char *key, const char *val)
{
	struct apply_req a;

	assert_int_equal(submit(n, &a, STORE_CMD_PUT, cond, mod_rev, key, val), 0);
	run_until(f, flag_set, &a.done);
	assert_int_equal(a.status, 0);
	return a.result;
}

static void assert_value(struct node *n, const char *key, const char *val)
{
	struct store_kv kv;

	assert_int_equal(store_get(replica_store(n->r), key, strlen(key), &kv), 0);
	assert_int_equal(kv.val_len, strlen(val));
	assert_memory_equal(kv.val, val, kv.val_len);
}

struct member_check {
	struct node *holder;
	struct node *member;
};

/* The members entry of @member as @holder's store has it. */
static bool has_member_entry(void *arg)
{
	struct member_check *m = arg;
	char key[64];
	struct store_kv kv;
	json_t *o;
	bool ok;

	snprintf(key, sizeof key, REPLICA_MEMBERS_PREFIX "%llu",
		 (unsigned long long)m->member->id);
	if (store_get(replica_store(m->holder->r), key, strlen(key), &kv) != 0)
		return false;
	o = json_loadb(kv.val, kv.val_len, 0, NULL);
	ok = o != NULL &&
	     json_integer_value(json_object_get(o, "id")) ==
		     (json_int_t)m->member->id &&
	     strcmp(json_string_value(json_object_get(o, "raftAddress")),
		    m->member->addr) == 0 &&
	     strcmp(json_string_value(json_object_get(o, "apiURL")),
		    m->member->url) == 0;
	json_decref(o);
	return ok;
}

static bool no_member_entry(void *arg)
{
	return !has_member_entry(arg);
}

/* Bootstraps (if asked), starts and waits for leadership. */
static void node_start_leader(struct fixture *f, struct node *n, bool bootstrap)
{
	struct member_check self = {n, n};

	if (bootstrap)
		assert_int_equal(replica_bootstrap(n->r), 0);
	assert_int_equal(replica_start(n->r), 0);
	run_until(f, is_leading, n);
	assert_true(replica_is_ready_leader(n->r));
	/* The ready leader records itself in the members map. */
	run_until(f, has_member_entry, &self);
}

struct barrier_req {
	struct replica_barrier req;
	bool done;
	int status;
	uint64_t index;
};

static void barrier_cb(struct replica_barrier *req, int status, uint64_t index)
{
	struct barrier_req *b = req->data;

	b->done = true;
	b->status = status;
	b->index = index;
}

struct wait_req {
	struct replica_wait req;
	bool done;
	int status;
};

static void wait_cb(struct replica_wait *req, int status)
{
	struct wait_req *w = req->data;

	w->done = true;
	w->status = status;
}

struct change_req {
	struct replica_change req;
	bool done;
	int status;
};

static void change_cb(struct replica_change *req, int status)
{
	struct change_req *c = req->data;

	c->done = true;
	c->status = status;
}

static bool all3(void *arg)
{
	struct barrier_req *b = arg;
	return b[0].done && b[1].done && b[2].done;
}

/* Writes a few entries then closes; the data dir keeps them. */
static bool snapshot_written(void *arg);

static void populate(struct fixture *f, struct node *n, unsigned threshold,
		     int count)
{
	char key[32];

	assert_int_equal(node_new(f, n, threshold), 0);
	node_start_leader(f, n, true);
	for (int i = 0; i < count; i++) {
		snprintf(key, sizeof key, "/data/%03d", i);
		put_sync(f, n, STORE_COND_NONE, 0, key, "payload");
	}
	/* Snapshots are written by a child process in the background: a
	 * close before one finishes abandons it. */
	if (threshold > 0 && count > (int)threshold)
		run_until(f, snapshot_written, n);
	node_close(f, n);
}

/* Applies @fn to every file of @dir whose name passes @match. */
static unsigned for_files(const char *dir, bool (*match)(const char *),
			  void (*fn)(const char *path))
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];
	unsigned n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (!match(e->d_name))
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		fn(path);
		n++;
	}
	closedir(d);
	return n;
}

static bool is_closed_segment(const char *name)
{
	unsigned long long a, b;
	char tail;
	return sscanf(name, "%llu-%llu%c", &a, &b, &tail) == 2;
}

static bool is_snapshot_data(const char *name)
{
	size_t len = strlen(name);
	return strncmp(name, "snapshot-", 9) == 0 &&
	       !(len > 5 && strcmp(name + len - 5, ".meta") == 0);
}

static void noop_file(const char *path)
{
	(void)path;
}

static bool snapshot_written(void *arg)
{
	const struct node *n = arg;
	return for_files(n->dir, is_snapshot_data, noop_file) >= 1;
}

static void flip_middle(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	struct stat st;
	unsigned char b;
	off_t off;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	off = st.st_size / 2;
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= 0x5a;
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

static void truncate_half(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size / 2), 0);
}

/* A start on a damaged dir fails with a message, leaves the store empty
 * and the replica closes cleanly. */
static void assert_start_fails(struct fixture *f, struct node *n)
{
	int rv;

	assert_int_equal(node_new(f, n, 0), 0);
	rv = replica_start(n->r);
	assert_true(rv == -EBADMSG || rv == -EIO);
	assert_true(strlen(replica_errmsg(n->r)) > 10);
	if (getenv("CAPSTAN_TEST_VERBOSE") != NULL)
		fprintf(stderr, "# start failed (%d): %s\n", rv,
			replica_errmsg(n->r));
	assert_int_equal(store_revision(replica_store(n->r)), 0);
	assert_int_equal(store_count(replica_store(n->r)), 0);
	/* Neither a second start nor writes. */
	assert_int_equal(replica_start(n->r), -EINVAL);
	node_close(f, n);
}

/* ------------------------------------------------------------ Tests */

/* Bootstrap, leadership, writes with conflicts, coalesced barriers, waits,
 * close with requests pending, restart from the same directory. */
static void single_lifecycle(void **state)
{
	struct fixture *f = *state;
	struct node *n = &f->nodes[0];
	struct store_result res;
	struct apply_req a;
	struct barrier_req b[3];
	struct wait_req w_future, w_now, w_timeout, w_close;
	struct replica_status st, st2;
	uint64_t rev;

	node_init(f, n, 1);
	assert_int_equal(node_new(f, n, 0), 0);
	assert_false(replica_is_ready_leader(n->r));
	node_start_leader(f, n, true);
	assert_int_equal(n->n_lead_events, 1);
	assert_true(n->lead_events[0]);

	/* Writes: create-only, update-if with a stale and a good revision. */
	res = put_sync(f, n, STORE_COND_ABSENT, 0, "/a", "1");
	assert_int_equal(res.status, 0);
	rev = res.mod_rev;
	res = put_sync(f, n, STORE_COND_ABSENT, 0, "/a", "again");
	assert_int_equal(res.status, STORE_EEXIST);
	res = put_sync(f, n, STORE_COND_MOD_REV, rev + 100, "/a", "stale");
	assert_int_equal(res.status, STORE_ESTALE);
	assert_int_equal(res.mod_rev, rev);
	res = put_sync(f, n, STORE_COND_MOD_REV, rev, "/a", "2");
	assert_int_equal(res.status, 0);
	res = put_sync(f, n, STORE_COND_NONE, 0, "/b", "3");
	assert_int_equal(res.status, 0);
	assert_value(n, "/a", "2");
	assert_int_equal(store_revision(replica_store(n->r)), res.rev);

	/* Three barriers: the first is issued at once, the two others join
	 * the next one, so the log grows by exactly two barrier entries. */
	replica_get_status(n->r, &st);
	assert_int_equal(st.last_index, st.applied_index);
	for (int i = 0; i < 3; i++) {
		memset(&b[i], 0, sizeof b[i]);
		b[i].req.data = &b[i];
		assert_int_equal(replica_barrier(n->r, &b[i].req, barrier_cb), 0);
	}
	assert_false(b[0].done);
	run_until(f, all3, b);
	replica_get_status(n->r, &st2);
	assert_int_equal(st2.last_index, st.last_index + 2);
	for (int i = 0; i < 3; i++)
		assert_int_equal(b[i].status, 0);
	assert_int_equal(b[0].index, st.last_index);
	assert_int_equal(b[1].index, st.last_index + 1);
	assert_int_equal(b[2].index, b[1].index);

	/* Waits: an applied index completes from the loop, not inside the
	 * call; a future one when it is applied; an unreachable one times
	 * out. */
	replica_get_status(n->r, &st);
	memset(&w_now, 0, sizeof w_now);
	w_now.req.data = &w_now;
	assert_int_equal(replica_wait_applied(n->r, &w_now.req, st.applied_index,
					      GUARD_MS, wait_cb),
			 0);
	assert_false(w_now.done);
	memset(&w_future, 0, sizeof w_future);
	w_future.req.data = &w_future;
	assert_int_equal(replica_wait_applied(n->r, &w_future.req,
					      st.applied_index + 1, GUARD_MS,
					      wait_cb),
			 0);
	memset(&w_timeout, 0, sizeof w_timeout);
	w_timeout.req.data = &w_timeout;
	assert_int_equal(replica_wait_applied(n->r, &w_timeout.req,
					      st.applied_index + 1000, 20,
					      wait_cb),
			 0);
	run_until(f, flag_set, &w_now.done);
	assert_int_equal(w_now.status, 0);
	run_until(f, flag_set, &w_timeout.done);
	assert_int_equal(w_timeout.status, -ETIMEDOUT);
	assert_false(w_future.done);
	put_sync(f, n, STORE_COND_NONE, 0, "/c", "4");
	run_until(f, flag_set, &w_future.done);
	assert_int_equal(w_future.status, 0);

	/* Status. */
	replica_get_status(n->r, &st);
	assert_string_equal(st.state, "leader");
	assert_true(st.term >= 1);
	assert_int_equal(st.leader_id, 1);
	assert_string_equal(st.leader_api_url, n->url);
	assert_string_equal(replica_leader_url(n->r), n->url);
	assert_int_equal(st.commit_index, st.last_index);
	assert_int_equal(st.n_members, 1);
	assert_int_equal(st.members[0].id, 1);
	assert_int_equal(st.members[0].role, 1);
	assert_string_equal(st.members[0].raft_address, n->addr);
	assert_string_equal(st.members[0].api_url, n->url);
	rev = store_revision(replica_store(n->r));
	assert_int_equal(st.store_revision, rev);

	/* Close with a wait and a write pending: both complete. */
	memset(&w_close, 0, sizeof w_close);
	w_close.req.data = &w_close;
	assert_int_equal(replica_wait_applied(n->r, &w_close.req,
					      st.applied_index + 1000, GUARD_MS,
					      wait_cb),
			 0);
	assert_int_equal(submit(n, &a, STORE_CMD_PUT, STORE_COND_NONE, 0, "/d",
				"5"),
			 0);
	node_close(f, n);
	assert_true(w_close.done);
	assert_int_equal(w_close.status, REPLICA_ESHUTDOWN);
	assert_true(a.done);
	assert_true(a.status == 0 || a.status == REPLICA_ESHUTDOWN);
	assert_int_equal(n->n_lead_events, 2);
	assert_false(n->lead_events[1]);

	/* Restart from the same directory: no bootstrap, same data. */
	assert_int_equal(node_new(f, n, 0), 0);
	assert_int_equal(replica_bootstrap(n->r), -EEXIST);
	node_start_leader(f, n, false);
	assert_value(n, "/a", "2");
	assert_value(n, "/b", "3");
	assert_value(n, "/c", "4");
	assert_true(store_revision(replica_store(n->r)) >= rev);
	node_close(f, n);
}

static void noop_path(const char *path)
{
	(void)path;
}

/* Snapshots are taken at the threshold and a restart restores them. */
static void restart_from_snapshot(void **state)
{
	struct fixture *f = *state;
	struct node *n = &f->nodes[0];
	char key[32];

	node_init(f, n, 1);
	populate(f, n, 8, 40);
	assert_true(for_files(n->dir, is_snapshot_data, noop_path) >= 1);
	assert_int_equal(node_new(f, n, 8), 0);
	node_start_leader(f, n, false);
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof key, "/data/%03d", i);
		assert_value(n, key, "payload");
	}
	node_close(f, n);
}

static void corrupt_segment(void **state)
{
	struct fixture *f = *state;
	struct node *n = &f->nodes[0];

	node_init(f, n, 1);
	populate(f, n, 0, 10);
	assert_true(for_files(n->dir, is_closed_segment, flip_middle) >= 1);
	assert_start_fails(f, n);
}

static void truncated_segment(void **state)
{
	struct fixture *f = *state;
	struct node *n = &f->nodes[0];

	node_init(f, n, 1);
	populate(f, n, 0, 10);
	assert_true(for_files(n->dir, is_closed_segment, truncate_half) >= 1);
	assert_start_fails(f, n);
}

static void corrupt_snapshot(void **state)
{
	struct fixture *f = *state;
	struct node *n = &f->nodes[0];

	node_init(f, n, 1);
	populate(f, n, 8, 40);
	assert_true(for_files(n->dir, is_snapshot_data, noop_path) >= 1);
	for_files(n->dir, is_snapshot_data, flip_middle);
	assert_start_fails(f, n);
}

static void truncated_snapshot(void **state)
{
	struct fixture *f = *state;
	struct node *n = &f->nodes[0];

	node_init(f, n, 1);
	populate(f, n, 8, 40);
	assert_true(for_files(n->dir, is_snapshot_data, truncate_half) >= 1);
	assert_start_fails(f, n);
}

struct converged {
	struct node *a, *b;
};

static bool stores_converged(void *arg)
{
	struct converged *c = arg;
	struct replica_status sa, sb;

	replica_get_status(c->a->r, &sa);
	replica_get_status(c->b->r, &sb);
	return sa.applied_index == sb.applied_index &&
	       sa.store_revision == sb.store_revision &&
	       sa.applied_index == sa.last_index;
}

static bool is_voter_in(struct node *n, uint64_t id)
{
	struct replica_status st;

	replica_get_status(n->r, &st);
	for (unsigned i = 0; i < st.n_members; i++)
		if (st.members[i].id == id)
			return st.members[i].role == 1;
	return false;
}

static void assert_same_store(struct node *a, struct node *b)
{
	void *ba, *bb;
	size_t la, lb;

	assert_int_equal(store_snapshot(replica_store(a->r), &ba, &la), 0);
	assert_int_equal(store_snapshot(replica_store(b->r), &bb, &lb), 0);
	assert_int_equal(la, lb);
	assert_memory_equal(ba, bb, la);
	free(ba);
	free(bb);
}

static bool is_removed(void *arg)
{
	return ((struct node *)arg)->removed;
}

/* A second replica joins through replica_add_member, becomes a voter with
 * the same store and a members entry, then is removed and notices. */
static void add_and_remove_member(void **state)
{
	struct fixture *f = *state;
	struct node *n1 = &f->nodes[0], *n2 = &f->nodes[1];
	struct member_check m2_on_1 = {n1, n2}, m2_on_2 = {n2, n2};
	struct member_check m1_on_2 = {n2, n1};
	struct converged conv = {n1, n2};
	struct change_req add, again, busy, bad, rm;
	struct apply_req a;
	struct barrier_req b;
	struct replica_status st;

	node_init(f, n1, 1);
	node_init(f, n2, 2);
	assert_int_equal(node_new(f, n1, 0), 0);
	node_start_leader(f, n1, true);
	put_sync(f, n1, STORE_COND_NONE, 0, "/before-join", "x");

	assert_int_equal(node_new(f, n2, 0), 0);
	assert_int_equal(replica_start(n2->r), 0);
	assert_int_equal(submit(n2, &a, STORE_CMD_PUT, STORE_COND_NONE, 0, "/k",
				"v"),
			 REPLICA_ENOTLEADER);

	memset(&add, 0, sizeof add);
	add.req.data = &add;
	assert_int_equal(replica_add_member(n1->r, &add.req, n2->id, n2->addr,
					    n2->url, change_cb),
			 0);
	memset(&busy, 0, sizeof busy);
	busy.req.data = &busy;
	assert_int_equal(replica_add_member(n1->r, &busy.req, 3, "127.0.0.1:1",
					    "https://127.0.0.1:1", change_cb),
			 REPLICA_EBUSY);
	run_until(f, flag_set, &add.done);
	assert_int_equal(add.status, 0);
	assert_true(is_voter_in(n1, n2->id));
	assert_true(has_member_entry(&m2_on_1));

	/* The new member converges, knows itself and the leader's URL. */
	put_sync(f, n1, STORE_COND_NONE, 0, "/after-join", "y");
	run_until(f, stores_converged, &conv);
	run_until(f, has_member_entry, &m2_on_2);
	assert_true(has_member_entry(&m1_on_2));
	assert_same_store(n1, n2);
	assert_true(is_voter_in(n2, n2->id));
	assert_string_equal(replica_leader_url(n2->r), n1->url);
	replica_get_status(n2->r, &st);
	assert_string_equal(st.state, "follower");
	assert_int_equal(st.leader_id, n1->id);
	assert_int_equal(st.n_members, 2);
	memset(&b, 0, sizeof b);
	b.req.data = &b;
	assert_int_equal(replica_barrier(n2->r, &b.req, barrier_cb),
			 REPLICA_ENOTLEADER);
	assert_false(n2->leading);

	/* Adding it again is a no-op; another address for its id is not. */
	memset(&again, 0, sizeof again);
	again.req.data = &again;
	assert_int_equal(replica_add_member(n1->r, &again.req, n2->id, n2->addr,
					    n2->url, change_cb),
			 0);
	run_until(f, flag_set, &again.done);
	assert_int_equal(again.status, 0);
	memset(&bad, 0, sizeof bad);
	bad.req.data = &bad;
	assert_int_equal(replica_add_member(n1->r, &bad.req, n2->id,
					    "127.0.0.1:2", n2->url, change_cb),
			 -EEXIST);

	/* Removal: the removed replica notices; the map forgets it. */
	memset(&rm, 0, sizeof rm);
	rm.req.data = &rm;
	assert_int_equal(replica_remove_member(n1->r, &rm.req, n2->id, change_cb),
			 0);
	run_until(f, flag_set, &rm.done);
	assert_int_equal(rm.status, 0);
	run_until(f, is_removed, n2);
	assert_false(is_voter_in(n1, n2->id));
	assert_true(no_member_entry(&m2_on_1));
	replica_get_status(n1->r, &st);
	assert_int_equal(st.n_members, 1);
	assert_false(n1->removed);
	/* The cluster of one goes on. */
	put_sync(f, n1, STORE_COND_NONE, 0, "/after-remove", "z");
	assert_int_equal(replica_remove_member(n1->r, &rm.req, n2->id, change_cb),
			 -ENOENT);

	node_close(f, n2);
	node_close(f, n1);
}

/* Starts @n and adds it to @leader's cluster as a voter. */
static void join_voter(struct fixture *f, struct node *leader, struct node *n)
{
	struct change_req add;

	assert_int_equal(node_new(f, n, 0), 0);
	assert_int_equal(replica_start(n->r), 0);
	memset(&add, 0, sizeof add);
	add.req.data = &add;
	assert_int_equal(replica_add_member(leader->r, &add.req, n->id, n->addr,
					    n->url, change_cb),
			 0);
	run_until(f, flag_set, &add.done);
	assert_int_equal(add.status, 0);
}

/* nodes[0] leads, nodes[1] joins it as a voter; returns once both stores
 * are equal. */
static void start_pair(struct fixture *f)
{
	struct node *n1 = &f->nodes[0], *n2 = &f->nodes[1];
	struct converged conv = {n1, n2};

	node_init(f, n1, 1);
	node_init(f, n2, 2);
	assert_int_equal(node_new(f, n1, 0), 0);
	node_start_leader(f, n1, true);
	join_voter(f, n1, n2);
	run_until(f, stores_converged, &conv);
}

/* A leader removing itself steps down, notices its removal, and the other
 * member takes over and drops the old leader's members entry. */
static void remove_leader_itself(void **state)
{
	struct fixture *f = *state;
	struct node *n1 = &f->nodes[0], *n2 = &f->nodes[1];
	struct member_check m1_on_2 = {n2, n1};
	struct change_req rm;

	node_init(f, n1, 1);
	node_init(f, n2, 2);
	assert_int_equal(node_new(f, n1, 0), 0);
	node_start_leader(f, n1, true);
	join_voter(f, n1, n2);

	memset(&rm, 0, sizeof rm);
	rm.req.data = &rm;
	assert_int_equal(replica_remove_member(n1->r, &rm.req, n1->id, change_cb),
			 0);
	run_until(f, flag_set, &rm.done);
	assert_int_equal(rm.status, 0);
	run_until(f, is_removed, n1);
	assert_false(n1->leading);
	assert_int_equal(n1->n_lead_events, 2);
	run_until(f, is_leading, n2);
	run_until(f, no_member_entry, &m1_on_2);
	assert_false(n2->removed);
	put_sync(f, n2, STORE_COND_NONE, 0, "/new-leader", "ok");

	node_close(f, n1);
	node_close(f, n2);
}

/* A member that never answers is not promoted forever: the add fails with
 * -ETIMEDOUT, the stand-by is removed again and the next change works. */
static void add_unreachable_times_out(void **state)
{
	struct fixture *f = *state;
	struct node *n1 = &f->nodes[0], *n2 = &f->nodes[1];
	struct change_req ghost;
	struct replica_status st;
	char ghost_addr[64];

	node_init(f, n1, 1);
	node_init(f, n2, 2);
	assert_int_equal(node_new(f, n1, 0), 0);
	node_start_leader(f, n1, true);
	/* Nobody listens there. */
	snprintf(ghost_addr, sizeof ghost_addr, "127.0.0.1:%u", free_port());
	memset(&ghost, 0, sizeof ghost);
	ghost.req.data = &ghost;
	assert_int_equal(replica_add_member(n1->r, &ghost.req, 7, ghost_addr,
					    "https://127.0.0.1:7", change_cb),
			 0);
	run_until(f, flag_set, &ghost.done);
	assert_int_equal(ghost.status, -ETIMEDOUT);
	replica_get_status(n1->r, &st);
	assert_int_equal(st.n_members, 1);

	join_voter(f, n1, n2);
	assert_true(is_voter_in(n1, n2->id));
	node_close(f, n2);
	node_close(f, n1);
}

/* Argument checks that need no loop turn. */
static void bad_config(void **state)
{
	struct fixture *f = *state;
	struct replica_config c;
	struct replica *r = NULL;
	char missing[256];

	replica_config_init(&c);
	assert_int_equal(c.election_timeout_ms, 400);
	assert_int_equal(c.heartbeat_timeout_ms, 50);
	assert_int_equal(c.snapshot_threshold, 16384);
	assert_int_equal(c.snapshot_trailing, 4096);
	c.raft_address = "127.0.0.1:1";
	c.data_dir = f->tmp;
	assert_int_equal(replica_new(&f->loop, &c, &r), -EINVAL); /* id 0 */
	c.id = 1;
	c.heartbeat_timeout_ms = c.election_timeout_ms;
	assert_int_equal(replica_new(&f->loop, &c, &r), -EINVAL);
	c.heartbeat_timeout_ms = 100;
	snprintf(missing, sizeof missing, "%s/missing", f->tmp);
	c.data_dir = missing;
	assert_int_equal(replica_new(&f->loop, &c, &r), -EIO);
	assert_null(r);
}

static void failed_cb(void *data)
{
	(*(unsigned *)data)++;
}

static bool is_failed(void *arg)
{
	return *(unsigned *)arg > 0;
}

/* A disk that refuses writes (RLIMIT_FSIZE makes every write past byte 1
 * fail with EFBIG): the write's outcome is unknown, the replica reports
 * itself failed once, stops leading and refuses further writes. */
static void disk_failure(void **state)
{
	struct fixture *f = *state;
	struct node *n = &f->nodes[0];
	struct rlimit old, tiny;
	struct apply_req a, b;
	unsigned failures = 0;

	node_init(f, n, 1);
	assert_int_equal(node_new(f, n, 0), 0);
	replica_on_failed(n->r, failed_cb, &failures);
	node_start_leader(f, n, true);
	put_sync(f, n, STORE_COND_NONE, 0, "/ok", "1");
	assert_false(replica_failed(n->r));

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_IGN);
	tiny = old;
	tiny.rlim_cur = 1;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &tiny), 0);
	assert_int_equal(submit(n, &a, STORE_CMD_PUT, STORE_COND_NONE, 0,
				"/lost", "2"),
			 0);
	run_until(f, flag_set, &a.done);
	run_until(f, is_failed, &failures);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);

	assert_int_equal(a.status, REPLICA_EUNKNOWN);
	assert_true(replica_failed(n->r));
	assert_true(strlen(replica_errmsg(n->r)) > 10);
	assert_false(n->leading);
	assert_false(replica_is_ready_leader(n->r));
	assert_int_equal(submit(n, &b, STORE_CMD_PUT, STORE_COND_NONE, 0, "/no",
				"3"),
			 -EIO);
	if (getenv("CAPSTAN_TEST_VERBOSE") != NULL)
		fprintf(stderr, "# failed: %s\n", replica_errmsg(n->r));
	node_close(f, n);
	assert_int_equal(failures, 1);
}

#define N_BATCH 600

struct apply_set {
	struct apply_req *a;
	unsigned n;
};

static bool all_applied(void *arg)
{
	struct apply_set *set = arg;
	for (unsigned i = 0; i < set->n; i++)
		if (!set->a[i].done)
			return false;
	return true;
}

/* Many writes submitted in one loop iteration go to libraft in batches
 * (more than one batch here); each still gets its own result, in log
 * order, and conditional failures stay per write. Writes still queued or
 * in flight at close all complete, with REPLICA_ESHUTDOWN or 0. */
static void batched_writes(void **state)
{
	struct fixture *f = *state;
	struct node *n = &f->nodes[0];
	struct apply_req *a = calloc(N_BATCH, sizeof *a);
	struct apply_set set = {a, N_BATCH};
	struct replica_status st, st2;
	char key[32];
	uint64_t rev0;
	unsigned ok = 0, shut = 0;

	assert_non_null(a);
	node_init(f, n, 1);
	assert_int_equal(node_new(f, n, 0), 0);
	node_start_leader(f, n, true);
	assert_int_equal(put_sync(f, n, STORE_COND_NONE, 0, "/taken", "x").status,
			 0);
	rev0 = store_revision(replica_store(n->r));
	replica_get_status(n->r, &st);

	for (unsigned i = 0; i < N_BATCH; i++) {
		/* Every tenth write is a create-only of an existing key. */
		if (i % 10 == 9)
			snprintf(key, sizeof key, "/taken");
		else
			snprintf(key, sizeof key, "/batch/%04u", i);
		assert_int_equal(submit(n, &a[i], STORE_CMD_PUT,
					i % 10 == 9 ? STORE_COND_ABSENT
						    : STORE_COND_NONE,
					0, key, "v"),
				 0);
	}
	for (unsigned i = 0; i < N_BATCH; i++)
		assert_false(a[i].done); /* never inside replica_apply() */
	run_until(f, all_applied, &set);
	for (unsigned i = 0, rev = (unsigned)rev0; i < N_BATCH; i++) {
		assert_int_equal(a[i].status, 0);
		if (i % 10 == 9) {
			assert_int_equal(a[i].result.status, STORE_EEXIST);
			assert_int_equal(a[i].result.rev, rev);
		} else {
			rev++;
			assert_int_equal(a[i].result.status, 0);
			assert_int_equal(a[i].result.rev, rev);
			assert_int_equal(a[i].result.mod_rev, rev);
		}
	}
	replica_get_status(n->r, &st2);
	assert_int_equal(st2.last_index, st.last_index + N_BATCH);
	assert_value(n, "/batch/0000", "v");

	/* Close with writes queued (not yet given to libraft). */
	for (unsigned i = 0; i < N_BATCH; i++) {
		snprintf(key, sizeof key, "/late/%04u", i);
		assert_int_equal(submit(n, &a[i], STORE_CMD_PUT, STORE_COND_NONE,
					0, key, "v"),
				 0);
	}
	node_close(f, n);
	for (unsigned i = 0; i < N_BATCH; i++) {
		assert_true(a[i].done);
		if (a[i].status == 0)
			ok++;
		else if (a[i].status == REPLICA_ESHUTDOWN)
			shut++;
	}
	assert_int_equal(ok + shut, N_BATCH);

	/* Close with writes in flight (given to libraft, not applied). */
	assert_int_equal(node_new(f, n, 0), 0);
	node_start_leader(f, n, false);
	for (unsigned i = 0; i < N_BATCH; i++) {
		snprintf(key, sizeof key, "/later/%04u", i);
		assert_int_equal(submit(n, &a[i], STORE_CMD_PUT, STORE_COND_NONE,
					0, key, "v"),
				 0);
	}
	uv_run(&f->loop, UV_RUN_NOWAIT); /* flushed before it returns */
	ok = shut = 0;
	node_close(f, n);
	for (unsigned i = 0; i < N_BATCH; i++) {
		assert_true(a[i].done);
		if (a[i].status == 0)
			ok++;
		else if (a[i].status == REPLICA_ESHUTDOWN)
			shut++;
	}
	assert_int_equal(ok + shut, N_BATCH);
	free(a);
}

/* A replica closed before (or after a failed) bootstrap frees everything. */
static unsigned count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	unsigned n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* libraft destroys its kernel AIO contexts with syscall(SYS_io_destroy)
 * on the loop thread, which waits for an RCU grace period (tens of ms):
 * the replica's syscall() hands them to a thread of their own instead
 * (the first call starts it) and passes every other call on. Runs first,
 * before any replica has closed a segment. */
static void io_destroy_off_loop(void **state)
{
	aio_context_t ctx = 0;
	struct io_event ev;
	struct timespec zero = {0, 0}, nap = {0, 1000000};
	unsigned threads;
	long rv;
	(void)state;

	assert_int_equal(syscall(SYS_getpid), getpid());
	assert_int_equal(syscall(SYS_io_setup, 4, &ctx), 0);
	assert_int_equal(syscall(SYS_io_getevents, ctx, 0, 1, &ev, &zero), 0);
	threads = count_threads();
	assert_int_equal(syscall(SYS_io_destroy, ctx), 0);
	assert_int_equal(count_threads(), threads + 1);
	/* And the context really goes. */
	for (unsigned i = 0; i < 60000; i++) {
		rv = syscall(SYS_io_getevents, ctx, 0, 1, &ev, &zero);
		if (rv != 0)
			break;
		nanosleep(&nap, NULL);
	}
	assert_int_equal(rv, -1);
	assert_int_equal(errno, EINVAL);
}

static bool has_kick_key(void *arg)
{
	struct node *n = arg;
	struct store_kv kv;

	return store_get(replica_store(n->r), "/kick", 5, &kv) == 0;
}

struct tick_timers {
	uint64_t repeat; /* the heartbeat timeout */
	unsigned n;      /* stopped */
};

/* libraft's uv io drives everything periodic (heartbeats, election
 * timeouts) from one repeating timer per replica whose period is the
 * heartbeat timeout; no other timer of the loop repeats. */
static void stop_tick_cb(uv_handle_t *h, void *arg)
{
	struct tick_timers *t = arg;

	if (h->type != UV_TIMER || !uv_is_active(h) ||
	    uv_timer_get_repeat((uv_timer_t *)h) != t->repeat)
		return;
	uv_timer_stop((uv_timer_t *)h);
	t->n++;
}

/* A follower holding a committed entry learns of the commit at once, not
 * with the leader's next heartbeat. Once the follower has joined (libraft
 * probes a new follower at most once per heartbeat, so a join needs
 * ticks), both replicas' tick timers are stopped: from then on neither
 * heartbeats nor elections happen, and the AppendEntries that carries the
 * new entry leaves before the entry commits (the follower's vote commits
 * it). The only message that can then tell the follower the commit index
 * is the leader's extra empty AppendEntries (commit_kick(), which runs
 * libraft's tick itself). Without it the follower never applies the entry
 * and run_until() fails at the hang guard: nothing here depends on how
 * fast anything runs. */
static void follower_learns_commit_at_once(void **state)
{
	struct fixture *f = *state;
	struct node *n1 = &f->nodes[0], *n2 = &f->nodes[1];
	struct tick_timers ticks = {.repeat = test_heartbeat_ms};

	start_pair(f);

	uv_walk(&f->loop, stop_tick_cb, &ticks);
	assert_int_equal(ticks.n, 2); /* one per replica, or this proves nothing */
	put_sync(f, n1, STORE_COND_NONE, 0, "/kick", "v");
	run_until(f, has_kick_key, n2);
	node_close(f, n2);
	node_close(f, n1);
}

/* Under load a batch carries what arrived while the previous one was in
 * flight. Every loop iteration here queues one write; a commit needs at
 * least two polls (the follower's disk write completing, then the leader
 * reading its answer), so with one batch in flight at a time 30 writes
 * over 30 iterations take at most 16 batches, where a batch per iteration
 * would take 30. Counted, not timed. */
static void one_batch_in_flight(void **state)
{
	struct fixture *f = *state;
	struct node *n1 = &f->nodes[0], *n2 = &f->nodes[1];
	struct converged conv = {n1, n2};
	struct apply_req a[30];
	struct apply_set set = {a, 30};
	struct replica_status st0, st1;
	char key[32];

	start_pair(f);

	replica_get_status(n1->r, &st0);
	memset(a, 0, sizeof a);
	for (unsigned i = 0; i < 30; i++) {
		snprintf(key, sizeof key, "/inflight/%02u", i);
		assert_int_equal(submit(n1, &a[i], STORE_CMD_PUT,
					STORE_COND_NONE, 0, key, "v"),
				 0);
		uv_run(&f->loop, UV_RUN_NOWAIT);
	}
	run_until(f, all_applied, &set);
	replica_get_status(n1->r, &st1);
	for (unsigned i = 0; i < 30; i++)
		assert_int_equal(a[i].status, 0);
	assert_int_equal(st1.batched_writes - st0.batched_writes, 30);
	assert_true(st1.write_batches - st0.write_batches <= 16);
	assert_true(st1.write_batches - st0.write_batches >= 2);
	run_until(f, stores_converged, &conv);
	assert_value(n2, "/inflight/29", "v");
	node_close(f, n2);
	node_close(f, n1);
}

/* The highest index among the snapshot files of @dir, 0 if none. */
static uint64_t last_snapshot_index(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t best = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		unsigned long long term, index, ts;
		if (is_snapshot_data(e->d_name) &&
		    sscanf(e->d_name, "snapshot-%llu-%llu-%llu", &term, &index,
			   &ts) == 3 &&
		    index > best)
			best = index;
	}
	closedir(d);
	return best;
}

/* With a threshold of 16 entries a store of 1,000-2,000 keys of ~210
 * bytes would be snapshotted every 5-20 entries, 50 times or more over
 * 1,000 writes (a snapshot in progress delays the next, never more); the
 * interval grows with the store's bytes instead (to 400-800 entries
 * here, the next snapshot a quarter interval after the last at least),
 * so about three times, ten at the very most. */
static void snapshot_interval_grows_with_store(void **state)
{
	struct fixture *f = *state;
	struct node *n = &f->nodes[0];
	uint64_t seen[128], last;
	unsigned n_seen = 0, late = 0;
	char key[32], val[201];

	memset(val, 'v', sizeof val - 1);
	val[sizeof val - 1] = '\0';
	node_init(f, n, 1);
	assert_int_equal(node_new(f, n, 16), 0);
	node_start_leader(f, n, true);
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof key, "/grow/%04d", i);
		put_sync(f, n, STORE_COND_NONE, 0, key, val);
		last = last_snapshot_index(n->dir);
		if (last != 0 && (n_seen == 0 || seen[n_seen - 1] != last)) {
			assert_true(n_seen < 128);
			seen[n_seen++] = last;
		}
	}
	if (getenv("CAPSTAN_TEST_VERBOSE") != NULL)
		for (unsigned i = 0; i < n_seen; i++)
			fprintf(stderr, "# snapshot at %llu\n", (unsigned long long)seen[i]);
	assert_true(n_seen >= 3); /* snapshots happen at all */
	for (unsigned i = 0; i < n_seen; i++)
		if (seen[i] > 1000)
			late++;
	assert_true(late >= 1);
	assert_true(late <= 15);
	/* Snapshots are written by a child process in the background: a
	 * close before one finishes abandons it. */
	node_close(f, n);
}

/* libraft's TCP transport connects through libuv; this program's connect()
 * switches Nagle's algorithm off on such sockets (see replica.c). */
struct nodelay_probe {
	bool done;
	int status;
	int nodelay;
};

static void nodelay_connect_cb(uv_connect_t *req, int status)
{
	struct nodelay_probe *p = req->data;
	uv_os_fd_t fd;
	socklen_t len = sizeof(p->nodelay);

	p->status = status;
	if (status == 0 && uv_fileno((uv_handle_t *)req->handle, &fd) == 0)
		getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &p->nodelay, &len);
	p->done = true;
}

static void ignore_connection_cb(uv_stream_t *server, int status)
{
	(void)server;
	(void)status; /* left pending: the client's connect completes anyway */
}

static void tcp_connect_nodelay(void **state)
{
	struct fixture *f = *state;
	uv_tcp_t server, client;
	uv_connect_t req;
	struct sockaddr_in addr;
	struct sockaddr_storage bound;
	int blen = sizeof(bound);
	struct nodelay_probe p = {false, -1, 0};

	assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
	assert_int_equal(uv_tcp_init(&f->loop, &server), 0);
	assert_int_equal(uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&server, 4, ignore_connection_cb), 0);
	assert_int_equal(uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &blen), 0);
	assert_int_equal(uv_tcp_init(&f->loop, &client), 0);
	req.data = &p;
	assert_int_equal(uv_tcp_connect(&req, &client, (const struct sockaddr *)&bound,
					nodelay_connect_cb),
			 0);
	run_until(f, flag_set, &p.done);
	assert_int_equal(p.status, 0);
	assert_int_equal(p.nodelay, 1);
	uv_close((uv_handle_t *)&client, NULL);
	uv_close((uv_handle_t *)&server, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* ------------------------------------------------------------ log files */

/* Extents of @fd (of the first 256) with @flag set, or -1 when the file
 * system cannot tell. */
static int extents_flagged(int fd, uint32_t fm_flags, uint32_t flag)
{
	uint64_t buf[(sizeof(struct fiemap) + 256 * sizeof(struct fiemap_extent)) / 8];
	struct fiemap *fm = (struct fiemap *)buf;
	int n = 0;

	memset(buf, 0, sizeof buf);
	fm->fm_length = FIEMAP_MAX_OFFSET;
	fm->fm_flags = fm_flags;
	fm->fm_extent_count = 256;
	if (ioctl(fd, FS_IOC_FIEMAP, fm) != 0)
		return -1;
	for (unsigned i = 0; i < fm->fm_mapped_extents; i++)
		if (fm->fm_extents[i].fe_flags & flag)
			n++;
	return n;
}

/* Extents of @fd flagged unwritten (allocated, never written), or -1 when
 * the file system cannot tell. */
static int unwritten_extents(int fd)
{
	return extents_flagged(fd, FIEMAP_FLAG_SYNC, FIEMAP_EXTENT_UNWRITTEN);
}

/* Whether posix_fallocate() leaves unwritten extents in @dir when nobody
 * steps in (a file without O_DSYNC, which replica.c leaves alone): ext4
 * and xfs do, tmpfs cannot tell. */
static bool fs_leaves_unwritten(const char *dir)
{
	char path[512];
	int fd, n;

	snprintf(path, sizeof path, "%s/probe-unwritten", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return false;
	n = posix_fallocate(fd, 0, 64 * 1024) == 0 ? unwritten_extents(fd) : -1;
	close(fd);
	unlink(path);
	return n > 0;
}

/* libraft's segments (O_DSYNC, posix_fallocate()) come out zero-filled:
 * its log writes are overwrites of written extents, which RWF_NOWAIT
 * submits from the loop instead of the thread pool. */
static void log_segments_written(void **state)
{
	struct fixture *f = *state;
	struct node *n = &f->nodes[0];
	char path[600];
	char buf[4096];
	struct stat st;
	struct dirent *e;
	DIR *d;
	unsigned segments = 0;
	ssize_t got;
	off_t at;
	int fd;

	/* The call itself: the size asked for, zeros, no unwritten extent. */
	snprintf(path, sizeof path, "%s/dsync", f->tmp);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_DSYNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(posix_fallocate(fd, 0, 1 << 20), 0);
	assert_int_equal(unwritten_extents(fd), 0);
	close(fd);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 1 << 20);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	for (at = 0; (got = pread(fd, buf, sizeof buf, at)) > 0; at += got)
		for (ssize_t i = 0; i < got; i++)
			assert_int_equal(buf[i], 0);
	assert_int_equal(at, 1 << 20);
	close(fd);

	/* libraft's open segments, once it has written to one. */
	node_init(f, n, 1);
	assert_int_equal(node_new(f, n, 0), 0);
	node_start_leader(f, n, true);
	assert_int_equal(put_sync(f, n, STORE_COND_NONE, 0, "/a", "1").status, 0);
	d = opendir(n->dir);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "open-", 5) != 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", n->dir, e->d_name);
		fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		/* The pool thread may still be filling a segment it prepares. */
		for (int i = 0; i < 500 && unwritten_extents(fd) != 0; i++)
			usleep(10 * 1000);
		assert_int_equal(unwritten_extents(fd), 0);
		close(fd);
		segments++;
	}
	closedir(d);
	assert_true(segments > 0);
	node_close(f, n);
}

/* Extents of @fd still waiting for delayed allocation (written to the
 * page cache, not to the disk yet), or -1 when the file system cannot
 * tell. No FIEMAP_FLAG_SYNC: that would write them back. */
static int delalloc_extents(int fd)
{
	return extents_flagged(fd, 0, FIEMAP_EXTENT_DELALLOC);
}

/* Whether a plain write in @dir shows as delayed allocation (ext4 and xfs
 * do, for a while), which big_writes_paced tells written-back data by. */
static bool fs_shows_delalloc(const char *dir)
{
	static char buf[1 << 20];
	char path[512];
	int fd, n = -1;

	snprintf(path, sizeof path, "%s/probe-delalloc", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return false;
	if (pwrite(fd, buf, sizeof buf, 0) == (ssize_t)sizeof buf)
		n = delalloc_extents(fd);
	close(fd);
	unlink(path);
	return n > 0;
}

/* A pwritev() of 4 MiB or more through syscall() (libuv's way, taken by
 * libraft's snapshot files) returns with its data written back, piece by
 * piece, and with what pwritev would return. */
static void big_writes_paced(void **state)
{
	struct fixture *f = *state;
	static char a[3 << 20], b[2 << 20], c[4096], back[sizeof a + sizeof b + 1];
	struct iovec iov[3] = {{a, sizeof a}, {b, sizeof b}, {c, 1}};
	char path[600];
	long rv;
	int fd;

	for (size_t i = 0; i < sizeof a; i++)
		a[i] = (char)(i * 7);
	memset(b, 'b', sizeof b);
	c[0] = 'c';
	snprintf(path, sizeof path, "%s/paced", f->tmp);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	rv = syscall(SYS_pwritev, fd, iov, 3, 8192L, 0L);
	assert_int_equal(rv, sizeof a + sizeof b + 1);
	assert_int_equal(delalloc_extents(fd), 0);
	assert_int_equal(pread(fd, back, sizeof back, 8192), sizeof back);
	assert_memory_equal(back, a, sizeof a);
	assert_memory_equal(back + sizeof a, b, sizeof b);
	assert_int_equal(back[sizeof a + sizeof b], 'c');
	close(fd);

	/* Below the threshold the write is the system call's own. (Whether
	 * its pages are still delayed is up to the kernel's writeback, which
	 * other tests' writes can start: not asserted.) */
	snprintf(path, sizeof path, "%s/small", f->tmp);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	iov[0].iov_len = 1 << 20;
	rv = syscall(SYS_pwritev, fd, iov, 1, 0L, 0L);
	assert_int_equal(rv, 1 << 20);
	assert_int_equal(pread(fd, back, 1 << 20, 0), 1 << 20);
	assert_memory_equal(back, a, 1 << 20);
	close(fd);
}

static void skipped(void **state)
{
	(void)state;
}

static void close_unstarted(void **state)
{
	struct fixture *f = *state;
	struct node *n = &f->nodes[0];

	node_init(f, n, 1);
	assert_int_equal(node_new(f, n, 0), 0);
	node_close(f, n);
	assert_int_equal(node_new(f, n, 0), 0);
	assert_int_equal(replica_bootstrap(n->r), 0);
	node_close(f, n);
}

int main(void)
{
	struct CMUnitTest tests[] = {
		cmocka_unit_test(io_destroy_off_loop),
		cmocka_unit_test_setup_teardown(bad_config, setup, teardown),
		cmocka_unit_test_setup_teardown(single_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(restart_from_snapshot, setup,
						teardown),
		cmocka_unit_test_setup_teardown(corrupt_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(truncated_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(corrupt_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(truncated_snapshot, setup,
						teardown),
		cmocka_unit_test_setup_teardown(add_and_remove_member, setup,
						teardown),
		cmocka_unit_test_setup_teardown(remove_leader_itself, setup,
						teardown),
		cmocka_unit_test_setup_teardown(add_unreachable_times_out, setup,
						teardown),
		cmocka_unit_test_setup_teardown(close_unstarted, setup, teardown),
		cmocka_unit_test_setup_teardown(disk_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(batched_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(follower_learns_commit_at_once,
						setup, teardown),
		cmocka_unit_test_setup_teardown(one_batch_in_flight, setup,
						teardown),
		cmocka_unit_test_setup_teardown(snapshot_interval_grows_with_store,
						setup, teardown),
		cmocka_unit_test_setup_teardown(tcp_connect_nodelay, setup,
						teardown),
		cmocka_unit_test_setup_teardown(big_writes_paced, setup, teardown),
		cmocka_unit_test_setup_teardown(log_segments_written, setup, teardown),
	};
	size_t n_tests = sizeof(tests) / sizeof(tests[0]);

	if (!fs_shows_delalloc("/tmp")) {
		tests[n_tests - 2].name =
			"big_writes_paced # SKIP /tmp shows no delayed allocation";
		tests[n_tests - 2].test_func = skipped;
	}

	/* A "# SKIP" in the name makes automake's TAP driver count a skip. */
	if (!fs_leaves_unwritten("/tmp")) {
		tests[n_tests - 1].name =
			"log_segments_written # SKIP /tmp has no unwritten extents to avoid";
		tests[n_tests - 1].test_func = skipped;
	}
	/* CAPSTAN_TEST_FILTER=name runs one test (cmocka's wildcard syntax). */
	if (getenv("CAPSTAN_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("CAPSTAN_TEST_FILTER"));
	return cmocka_run_group_tests_name("replica", tests, NULL, NULL);
}
