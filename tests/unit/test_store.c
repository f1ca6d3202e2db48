/* Unit tests of raft/store: CAS, revisions, ranges, watches, snapshots,
 * command codec, determinism and allocation failures. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fault injection: the store's allocations go through fault_malloc(),
 * which fails the fault_at-th call (0-based) once fault_at >= 0. */
static long fault_at = -1;
static long fault_calls;

static void *fault_malloc(size_t n)
{
	if (fault_at >= 0 && fault_calls++ == fault_at)
		return NULL;
	return malloc(n);
}

#define STORE_MALLOC(n) fault_malloc(n)
#define STORE_REALLOC(p, n) realloc(p, n)
#define STORE_FREE(p) free(p)
#include "raft/store.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

/* ------------------------------------------------------------ Helpers */

static void fault_arm(long at)
{
	fault_at = at;
	fault_calls = 0;
}

static void fault_disarm(void)
{
	fault_at = -1;
}

static struct store *new_store(uint64_t min_events, uint64_t min_age_ms)
{
	struct store_config c;
	struct store *s = NULL;
	store_config_init(&c);
	c.history_min_events = min_events;
	c.history_min_age_ms = min_age_ms;
	assert_int_equal(store_new(&c, &s), 0);
	return s;
}

static int do_put(struct store *s, const char *key, const char *val,
		  enum store_cond cond, uint64_t mod_rev, uint64_t time_ms,
		  struct store_result *res)
{
	struct store_cmd cmd = {.type = STORE_CMD_PUT,
				.cond = cond,
				.mod_rev = mod_rev,
				.time_ms = time_ms,
				.key = key,
				.key_len = strlen(key),
				.val = val,
				.val_len = strlen(val)};
	return store_apply(s, &cmd, res);
}

static struct store_result put_ok(struct store *s, const char *key,
				  const char *val, uint64_t time_ms)
{
	struct store_result res;
	assert_int_equal(do_put(s, key, val, STORE_COND_NONE, 0, time_ms, &res),
			 0);
	assert_int_equal(res.status, 0);
	return res;
}

static int do_delete(struct store *s, const char *key, enum store_cond cond,
		     uint64_t mod_rev, struct store_result *res)
{
	struct store_cmd cmd = {.type = STORE_CMD_DELETE,
				.cond = cond,
				.mod_rev = mod_rev,
				.key = key,
				.key_len = strlen(key)};
	return store_apply(s, &cmd, res);
}

static void compact(struct store *s, uint64_t rev)
{
	struct store_cmd cmd = {.type = STORE_CMD_COMPACT, .mod_rev = rev};
	struct store_result res;
	assert_int_equal(store_apply(s, &cmd, &res), 0);
	assert_int_equal(res.status, 0);
}

static void assert_value(const struct store *s, const char *key,
			 const char *val, uint64_t create_rev, uint64_t mod_rev)
{
	struct store_kv kv;
	assert_int_equal(store_get(s, key, strlen(key), &kv), 0);
	assert_int_equal(kv.key_len, strlen(key));
	assert_memory_equal(kv.key, key, kv.key_len);
	assert_int_equal(kv.val_len, strlen(val));
	if (kv.val_len > 0)
		assert_memory_equal(kv.val, val, kv.val_len);
	assert_int_equal(kv.create_rev, create_rev);
	assert_int_equal(kv.mod_rev, mod_rev);
}

/* A snapshot plus what the snapshot leaves out, to compare whole states. */
struct state {
	void *buf;
	size_t len;
	uint64_t rev;
	uint64_t compacted;
	size_t count;
};

static struct state state_of(const struct store *s)
{
	struct state st = {.rev = store_revision(s),
			   .compacted = store_compacted(s),
			   .count = store_count(s)};
	assert_int_equal(store_snapshot(s, &st.buf, &st.len), 0);
	return st;
}

static void assert_state(const struct store *s, struct state *st)
{
	struct state now = state_of(s);
	assert_int_equal(now.rev, st->rev);
	assert_int_equal(now.compacted, st->compacted);
	assert_int_equal(now.count, st->count);
	assert_int_equal(now.len, st->len);
	assert_memory_equal(now.buf, st->buf, st->len);
	free(now.buf);
}

/* Deterministic pseudo-random numbers (xorshift64*). */
static uint64_t rng_next(uint64_t *x)
{
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 2685821657736338717ull;
}

/* Watch recorder. */
struct recorder {
	int calls;
	bool free_self;
	struct store_watch *free_other;
};

static void record_cb(struct store_watch *w, void *data)
{
	struct recorder *r = data;
	r->calls++;
	if (r->free_other != NULL) {
		store_watch_free(r->free_other);
		r->free_other = NULL;
	}
	if (r->free_self)
		store_watch_free(w);
}

static void expect_event(struct store_watch *w, enum store_event_type type,
			 uint64_t rev, const char *key, const char *val,
			 uint64_t create_rev, bool created)
{
	struct store_event ev;
	assert_int_equal(store_watch_next(w, &ev), 0);
	assert_int_equal(ev.type, type);
	assert_int_equal(ev.rev, rev);
	assert_int_equal(ev.kv.key_len, strlen(key));
	assert_memory_equal(ev.kv.key, key, ev.kv.key_len);
	assert_int_equal(ev.kv.val_len, strlen(val));
	if (ev.kv.val_len > 0)
		assert_memory_equal(ev.kv.val, val, ev.kv.val_len);
	assert_int_equal(ev.kv.create_rev, create_rev);
	assert_int_equal(ev.kv.mod_rev, rev);
	assert_int_equal(ev.created, created);
}

static void expect_again(struct store_watch *w)
{
	struct store_event ev;
	assert_int_equal(store_watch_next(w, &ev), -EAGAIN);
}

/* ------------------------------------------------------------ Revisions */

static void put_revisions(void **state)
{
	struct store *s = new_store(100, 0);
	struct store_result res;
	struct store_kv kv;
	(void)state;

	assert_int_equal(store_revision(s), 0);
	assert_int_equal(store_compacted(s), 0);
	res = put_ok(s, "/a", "1", 10);
	assert_int_equal(res.rev, 1);
	assert_int_equal(res.mod_rev, 1);
	assert_int_equal(res.create_rev, 1);
	res = put_ok(s, "/b", "2", 11);
	assert_int_equal(res.rev, 2);
	res = put_ok(s, "/a", "3", 12);
	assert_int_equal(res.rev, 3);
	assert_int_equal(res.mod_rev, 3);
	assert_int_equal(res.create_rev, 1);
	assert_value(s, "/a", "3", 1, 3);
	assert_value(s, "/b", "2", 2, 2);
	assert_int_equal(store_count(s), 2);
	assert_int_equal(store_get(s, "/c", 2, &kv), STORE_ENOENT);
	assert_int_equal(store_get(s, "/", 1, &kv), STORE_ENOENT);
	/* An empty value is a value. */
	res = put_ok(s, "/e", "", 13);
	assert_value(s, "/e", "", 4, 4);
	/* A key that was deleted and put again gets a new create_rev. */
	assert_int_equal(do_delete(s, "/b", STORE_COND_NONE, 0, &res), 0);
	assert_int_equal(res.status, 0);
	res = put_ok(s, "/b", "again", 14);
	assert_int_equal(res.create_rev, 6);
	assert_value(s, "/b", "again", 6, 6);
	store_free(s);
}

static void cas_create_only(void **state)
{
	struct store *s = new_store(100, 0);
	struct store_result res;
	(void)state;

	assert_int_equal(do_put(s, "/k", "v1", STORE_COND_ABSENT, 0, 1, &res),
			 0);
	assert_int_equal(res.status, 0);
	assert_int_equal(res.rev, 1);
	put_ok(s, "/other", "x", 2);
	assert_int_equal(do_put(s, "/k", "v2", STORE_COND_ABSENT, 0, 3, &res),
			 0);
	assert_int_equal(res.status, STORE_EEXIST);
	assert_int_equal(res.rev, 2);
	assert_int_equal(res.mod_rev, 1);
	assert_int_equal(res.create_rev, 1);
	assert_int_equal(store_revision(s), 2);
	assert_value(s, "/k", "v1", 1, 1);
	store_free(s);
}

static void cas_update_if(void **state)
{
	struct store *s = new_store(100, 0);
	struct store_result res;
	(void)state;

	put_ok(s, "/k", "v1", 1);
	put_ok(s, "/k", "v2", 2);
	/* Mismatch. */
	assert_int_equal(do_put(s, "/k", "v3", STORE_COND_MOD_REV, 1, 3, &res),
			 0);
	assert_int_equal(res.status, STORE_ESTALE);
	assert_int_equal(res.rev, 2);
	assert_int_equal(res.mod_rev, 2);
	assert_int_equal(store_revision(s), 2);
	assert_value(s, "/k", "v2", 1, 2);
	/* Match. */
	assert_int_equal(do_put(s, "/k", "v3", STORE_COND_MOD_REV, 2, 4, &res),
			 0);
	assert_int_equal(res.status, 0);
	assert_int_equal(res.rev, 3);
	assert_int_equal(res.mod_rev, 3);
	assert_int_equal(res.create_rev, 1);
	assert_value(s, "/k", "v3", 1, 3);
	/* Absent. */
	assert_int_equal(
	    do_put(s, "/nope", "v", STORE_COND_MOD_REV, 3, 5, &res), 0);
	assert_int_equal(res.status, STORE_ENOENT);
	assert_int_equal(res.rev, 3);
	assert_int_equal(res.mod_rev, 0);
	assert_int_equal(store_revision(s), 3);
	assert_int_equal(store_count(s), 1);
	store_free(s);
}

static void cas_delete(void **state)
{
	struct store *s = new_store(100, 0);
	struct store_result res;
	struct store_kv kv;
	(void)state;

	put_ok(s, "/a", "1", 1);
	put_ok(s, "/b", "2", 2);
	put_ok(s, "/c", "3", 3);
	/* Unconditional. */
	assert_int_equal(do_delete(s, "/a", STORE_COND_NONE, 0, &res), 0);
	assert_int_equal(res.status, 0);
	assert_int_equal(res.rev, 4);
	assert_int_equal(res.mod_rev, 4);
	assert_int_equal(res.create_rev, 1);
	assert_int_equal(store_get(s, "/a", 2, &kv), STORE_ENOENT);
	/* Absent, both ways. */
	assert_int_equal(do_delete(s, "/a", STORE_COND_NONE, 0, &res), 0);
	assert_int_equal(res.status, STORE_ENOENT);
	assert_int_equal(res.rev, 4);
	assert_int_equal(do_delete(s, "/a", STORE_COND_MOD_REV, 1, &res), 0);
	assert_int_equal(res.status, STORE_ENOENT);
	assert_int_equal(res.rev, 4);
	/* If match / mismatch. */
	assert_int_equal(do_delete(s, "/b", STORE_COND_MOD_REV, 3, &res), 0);
	assert_int_equal(res.status, STORE_ESTALE);
	assert_int_equal(res.rev, 4);
	assert_int_equal(res.mod_rev, 2);
	assert_value(s, "/b", "2", 2, 2);
	assert_int_equal(do_delete(s, "/b", STORE_COND_MOD_REV, 2, &res), 0);
	assert_int_equal(res.status, 0);
	assert_int_equal(res.rev, 5);
	assert_int_equal(res.mod_rev, 5);
	assert_int_equal(store_count(s), 1);
	assert_int_equal(store_revision(s), 5);
	store_free(s);
}

static void malformed_commands(void **state)
{
	struct store *s = new_store(100, 0);
	struct store_result res = {.status = 99};
	struct store_cmd cmd = {.type = STORE_CMD_PUT, .key = "", .key_len = 0};
	(void)state;

	put_ok(s, "/a", "1", 1);
	assert_int_equal(store_apply(s, &cmd, &res), -EINVAL);
	cmd.key = "/a";
	cmd.key_len = 2;
	cmd.type = (enum store_cmd_type)9;
	assert_int_equal(store_apply(s, &cmd, &res), -EINVAL);
	cmd.type = STORE_CMD_PUT;
	cmd.cond = (enum store_cond)7;
	assert_int_equal(store_apply(s, &cmd, &res), -EINVAL);
	cmd.type = STORE_CMD_DELETE;
	cmd.cond = STORE_COND_ABSENT;
	assert_int_equal(store_apply(s, &cmd, &res), -EINVAL);
	cmd.type = STORE_CMD_COMPACT;
	cmd.cond = STORE_COND_NONE;
	assert_int_equal(store_apply(s, &cmd, &res), -EINVAL);
	cmd.type = STORE_CMD_PUT;
	cmd.val = NULL;
	cmd.val_len = 3;
	assert_int_equal(store_apply(s, &cmd, &res), -EINVAL);
	assert_int_equal(res.status, 99);
	assert_int_equal(store_revision(s), 1);
	assert_value(s, "/a", "1", 1, 1);
	store_free(s);
}

/* ------------------------------------------------------------ Ranges */

struct collect {
	char keys[512][32];
	size_t n;
	int stop_at; /* return 7 at this index, -1 never */
};

static int collect_cb(const struct store_kv *kv, void *data)
{
	struct collect *c = data;
	assert_true(kv->key_len < sizeof(c->keys[0]));
	if (c->stop_at >= 0 && (size_t)c->stop_at == c->n)
		return 7;
	memcpy(c->keys[c->n], kv->key, kv->key_len);
	c->keys[c->n][kv->key_len] = '\0';
	c->n++;
	return 0;
}

static struct store *range_fixture(void)
{
	struct store *s = new_store(100, 0);
	char key[32];
	int i;
	/* Insert out of order so the tree does the sorting. */
	for (i = 99; i >= 0; i--) {
		snprintf(key, sizeof(key), "/r/pods/ns-%d/p-%02d", i % 3, i);
		put_ok(s, key, "v", (uint64_t)i);
	}
	put_ok(s, "/r/pods/ns-1", "the prefix itself", 1);
	put_ok(s, "/r/pods/ns-10/x", "sibling prefix", 1);
	put_ok(s, "/r/pods/ns-0", "before", 1);
	put_ok(s, "/r/svc/a", "after", 1);
	return s;
}

static void range_prefix_pages(void **state)
{
	struct store *s = range_fixture();
	const char *prefix = "/r/pods/ns-1/";
	struct collect all = {.stop_at = -1};
	struct collect page;
	char last[32] = "";
	size_t total = 0, pages = 0, i;
	bool more = false;
	(void)state;

	assert_int_equal(store_range(s, prefix, strlen(prefix), NULL, 0, 0,
				     collect_cb, &all, &more),
			 0);
	assert_false(more);
	assert_int_equal(all.n, 33); /* i % 3 == 1 for i < 100 */
	for (i = 0; i < all.n; i++) {
		assert_int_equal(strncmp(all.keys[i], prefix, strlen(prefix)),
				 0);
		if (i > 0)
			assert_true(strcmp(all.keys[i - 1], all.keys[i]) < 0);
	}
	/* Pages of 7, continued after the last key of each page. */
	do {
		memset(&page, 0, sizeof(page));
		page.stop_at = -1;
		assert_int_equal(store_range(s, prefix, strlen(prefix),
					     last[0] ? last : NULL, strlen(last),
					     7, collect_cb, &page, &more),
				 0);
		for (i = 0; i < page.n; i++)
			assert_string_equal(page.keys[i], all.keys[total + i]);
		total += page.n;
		pages++;
		if (page.n > 0)
			strcpy(last, page.keys[page.n - 1]);
		assert_int_equal(more, total < all.n);
	} while (more);
	assert_int_equal(total, 33);
	assert_int_equal(pages, 5);
	/* A limit that ends exactly at the last key says no more. */
	memset(&page, 0, sizeof(page));
	page.stop_at = -1;
	assert_int_equal(store_range(s, prefix, strlen(prefix), NULL, 0, 33,
				     collect_cb, &page, &more),
			 0);
	assert_int_equal(page.n, 33);
	assert_false(more);
	/* start_after before the prefix starts at the prefix; after it, nothing. */
	memset(&page, 0, sizeof(page));
	page.stop_at = -1;
	assert_int_equal(store_range(s, prefix, strlen(prefix), "/a", 2, 0,
				     collect_cb, &page, &more),
			 0);
	assert_int_equal(page.n, 33);
	memset(&page, 0, sizeof(page));
	page.stop_at = -1;
	assert_int_equal(store_range(s, prefix, strlen(prefix), "/z", 2, 0,
				     collect_cb, &page, &more),
			 0);
	assert_int_equal(page.n, 0);
	assert_false(more);
	/* start_after that is not a key continues from the next one. */
	memset(&page, 0, sizeof(page));
	page.stop_at = -1;
	assert_int_equal(store_range(s, prefix, strlen(prefix),
				     "/r/pods/ns-1/p-50", 17, 2, collect_cb,
				     &page, &more),
			 0);
	assert_int_equal(page.n, 2);
	assert_string_equal(page.keys[0], "/r/pods/ns-1/p-52");
	assert_string_equal(page.keys[1], "/r/pods/ns-1/p-55");
	assert_true(more);
	/* The callback's error stops the scan and comes back. */
	memset(&page, 0, sizeof(page));
	page.stop_at = 4;
	assert_int_equal(store_range(s, prefix, strlen(prefix), NULL, 0, 0,
				     collect_cb, &page, &more),
			 7);
	assert_int_equal(page.n, 4);
	/* The empty prefix lists everything. */
	memset(&page, 0, sizeof(page));
	page.stop_at = -1;
	assert_int_equal(store_range(s, "", 0, NULL, 0, 0, collect_cb, &page,
				     &more),
			 0);
	assert_int_equal(page.n, store_count(s));
	assert_string_equal(page.keys[0], "/r/pods/ns-0");
	assert_string_equal(page.keys[page.n - 1], "/r/svc/a");
	store_free(s);
}

static void iter_seek(void **state)
{
	struct store *s = new_store(100, 0);
	struct store_iter it;
	struct store_kv kv;
	const char *keys[] = {"/a", "/b", "/b/c", "/ba", "/c"};
	size_t i;
	(void)state;

	for (i = 0; i < 5; i++)
		put_ok(s, keys[4 - i], "v", 1);
	/* All keys, in byte order (shorter first on a common prefix). */
	store_iter_seek(s, &it, NULL, 0);
	for (i = 0; i < 5; i++) {
		assert_true(store_iter_next(&it, &kv));
		assert_int_equal(kv.key_len, strlen(keys[i]));
		assert_memory_equal(kv.key, keys[i], kv.key_len);
	}
	assert_false(store_iter_next(&it, &kv));
	/* On a key, between keys, past the end. */
	store_iter_seek(s, &it, "/b", 2);
	assert_true(store_iter_next(&it, &kv));
	assert_memory_equal(kv.key, "/b", 2);
	assert_int_equal(kv.key_len, 2);
	store_iter_seek(s, &it, "/b/", 3);
	assert_true(store_iter_next(&it, &kv));
	assert_int_equal(kv.key_len, 4);
	assert_memory_equal(kv.key, "/b/c", 4);
	store_iter_seek(s, &it, "/bb", 3);
	assert_true(store_iter_next(&it, &kv));
	assert_memory_equal(kv.key, "/c", 2);
	assert_false(store_iter_next(&it, &kv));
	store_iter_seek(s, &it, "/d", 2);
	assert_false(store_iter_next(&it, &kv));
	store_free(s);
}

/* ------------------------------------------------------------ Watches */

static void watch_replay_then_live(void **state)
{
	struct store *s = new_store(100, 0);
	struct store_watch *w = NULL;
	struct recorder rec = {0};
	struct store_result res;
	(void)state;

	put_ok(s, "/p/a", "1", 1);        /* rev 1 */
	put_ok(s, "/q/a", "x", 2);        /* rev 2 */
	put_ok(s, "/p/b", "2", 3);        /* rev 3 */
	put_ok(s, "/p/a", "3", 4);        /* rev 4 */
	assert_int_equal(store_watch_new(s, "/p/", 3, 1, record_cb, &rec, &w),
			 0);
	assert_int_equal(store_watch_revision(w), 1);
	/* Replay after rev 1, skipping /q/. */
	expect_event(w, STORE_EVENT_PUT, 3, "/p/b", "2", 3, true);
	expect_event(w, STORE_EVENT_PUT, 4, "/p/a", "3", 1, false);
	expect_again(w);
	assert_int_equal(store_watch_revision(w), 4);
	assert_int_equal(rec.calls, 0);
	/* A non-matching event does not wake the watch but moves it on. */
	put_ok(s, "/q/b", "y", 5); /* rev 5 */
	assert_int_equal(rec.calls, 0);
	/* A matching one does, once. */
	assert_int_equal(do_delete(s, "/p/b", STORE_COND_NONE, 0, &res), 0);
	assert_int_equal(rec.calls, 1);
	put_ok(s, "/p/c", "4", 7); /* rev 7, not drained: no call */
	assert_int_equal(rec.calls, 1);
	expect_event(w, STORE_EVENT_DELETE, 6, "/p/b", "2", 3, false);
	expect_event(w, STORE_EVENT_PUT, 7, "/p/c", "4", 7, true);
	expect_again(w);
	assert_int_equal(store_watch_revision(w), 7);
	put_ok(s, "/p/d", "5", 8);
	assert_int_equal(rec.calls, 2);
	store_watch_free(w);
	/* No call after free. */
	put_ok(s, "/p/e", "6", 9);
	assert_int_equal(rec.calls, 2);
	store_free(s);
}

static void watch_from_now(void **state)
{
	struct store *s = new_store(100, 0);
	struct store_watch *w = NULL, *all = NULL;
	struct recorder rec = {0}, rec_all = {0};
	(void)state;

	put_ok(s, "/p/a", "1", 1);
	put_ok(s, "/p/b", "1", 1);
	assert_int_equal(store_watch_new(s, "/p/", 3, 0, record_cb, &rec, &w),
			 0);
	assert_int_equal(store_watch_new(s, NULL, 0, 0, record_cb, &rec_all,
					 &all),
			 0);
	assert_int_equal(store_watch_revision(w), 2);
	/* Not drained yet: the callback needs a -EAGAIN first. */
	put_ok(s, "/p/c", "1", 1);
	assert_int_equal(rec.calls, 0);
	expect_event(w, STORE_EVENT_PUT, 3, "/p/c", "1", 3, true);
	expect_again(w);
	expect_event(all, STORE_EVENT_PUT, 3, "/p/c", "1", 3, true);
	expect_again(all);
	put_ok(s, "/z", "1", 1);
	assert_int_equal(rec.calls, 0);
	assert_int_equal(rec_all.calls, 1);
	store_watch_free(w);
	store_watch_free(all);
	store_free(s);
}

static void watch_gone_by_count(void **state)
{
	struct store *s = new_store(3, 0);
	struct store_watch *w = NULL, *w2 = NULL;
	struct store_event ev;
	int i;
	(void)state;

	assert_int_equal(store_watch_new(s, "/", 1, 0, NULL, NULL, &w), 0);
	for (i = 0; i < 10; i++)
		put_ok(s, "/k", "v", 1);
	/* Three events stay: revisions 8, 9, 10. */
	assert_int_equal(store_revision(s), 10);
	assert_int_equal(store_compacted(s), 7);
	assert_int_equal(store_watch_next(w, &ev), STORE_EGONE);
	assert_int_equal(store_watch_next(w, &ev), STORE_EGONE);
	assert_int_equal(store_watch_new(s, "/", 1, 6, NULL, NULL, &w2),
			 STORE_EGONE);
	assert_int_equal(store_watch_new(s, "/", 1, 7, NULL, NULL, &w2), 0);
	expect_event(w2, STORE_EVENT_PUT, 8, "/k", "v", 1, false);
	store_watch_free(w2);
	store_watch_free(w);
	store_free(s);
}

static void watch_gone_by_age(void **state)
{
	struct store *s = new_store(0, 1000);
	struct store_watch *w = NULL, *w2 = NULL;
	struct store_event ev;
	(void)state;

	put_ok(s, "/a", "1", 10000); /* rev 1 */
	put_ok(s, "/a", "2", 10500); /* rev 2 */
	assert_int_equal(store_watch_new(s, "/", 1, 1, NULL, NULL, &w), 0);
	put_ok(s, "/a", "3", 10999); /* rev 3: rev 1 is 999 ms old, stays */
	assert_int_equal(store_compacted(s), 0);
	put_ok(s, "/a", "4", 11000); /* rev 1 is 1000 ms old: gone */
	assert_int_equal(store_compacted(s), 1);
	/* The watch had not read rev 2 yet, which is still there. */
	expect_event(w, STORE_EVENT_PUT, 2, "/a", "2", 1, false);
	/* Time going back on a new leader does not bring anything back. */
	put_ok(s, "/a", "5", 5000); /* rev 5 */
	assert_int_equal(store_compacted(s), 1);
	/* Rev 5 was stamped 11000: command time never goes back. So revs
	 * 2..5 are all at least 1000 ms older than 12000. */
	put_ok(s, "/a", "6", 12000);
	assert_int_equal(store_compacted(s), 5);
	assert_int_equal(store_watch_next(w, &ev), STORE_EGONE);
	assert_int_equal(store_watch_new(s, "/", 1, 3, NULL, NULL, &w2),
			 STORE_EGONE);
	store_watch_free(w);
	store_free(s);
}

static void watch_gone_by_compact(void **state)
{
	struct store *s = new_store(1000, 1000000);
	struct store_watch *w = NULL, *w2 = NULL;
	struct store_event ev;
	struct store_cmd cmd = {.type = STORE_CMD_COMPACT, .mod_rev = 100};
	struct store_result res;
	int i;
	(void)state;

	for (i = 0; i < 6; i++)
		put_ok(s, "/k", "v", 1);
	assert_int_equal(store_watch_new(s, "/", 1, 2, NULL, NULL, &w), 0);
	expect_event(w, STORE_EVENT_PUT, 3, "/k", "v", 1, false);
	compact(s, 4);
	/* Compaction does not raise the revision. */
	assert_int_equal(store_revision(s), 6);
	assert_int_equal(store_compacted(s), 4);
	assert_int_equal(store_watch_next(w, &ev), STORE_EGONE);
	assert_int_equal(store_watch_new(s, "/", 1, 3, NULL, NULL, &w2),
			 STORE_EGONE);
	assert_int_equal(store_watch_new(s, "/", 1, 4, NULL, NULL, &w2), 0);
	expect_event(w2, STORE_EVENT_PUT, 5, "/k", "v", 1, false);
	/* Compacting backwards is a no-op; past the revision compacts all. */
	compact(s, 2);
	assert_int_equal(store_compacted(s), 4);
	assert_int_equal(store_apply(s, &cmd, &res), 0);
	assert_int_equal(res.rev, 6);
	assert_int_equal(res.mod_rev, 6);
	assert_int_equal(store_compacted(s), 6);
	assert_int_equal(store_watch_next(w2, &ev), STORE_EGONE);
	store_watch_free(w2);
	/* A drained watch is never overtaken; it still gets what comes. */
	assert_int_equal(store_watch_new(s, "/", 1, 6, NULL, NULL, &w2), 0);
	expect_again(w2);
	put_ok(s, "/k", "w", 1);
	expect_event(w2, STORE_EVENT_PUT, 7, "/k", "w", 1, false);
	store_watch_free(w2);
	store_watch_free(w);
	store_free(s);
}

static void watch_free_in_callback(void **state)
{
	struct store *s = new_store(100, 0);
	struct store_watch *a = NULL, *b = NULL, *c = NULL, *d = NULL;
	struct recorder ra = {0}, rb = {0}, rc = {0}, rd = {0};
	(void)state;

	/* List order is d, c, b, a: d frees c (next in line) from its
	 * callback, b frees itself, a stays. */
	assert_int_equal(store_watch_new(s, "/", 1, 0, record_cb, &ra, &a), 0);
	assert_int_equal(store_watch_new(s, "/", 1, 0, record_cb, &rb, &b), 0);
	assert_int_equal(store_watch_new(s, "/", 1, 0, record_cb, &rc, &c), 0);
	assert_int_equal(store_watch_new(s, "/", 1, 0, record_cb, &rd, &d), 0);
	expect_again(a);
	expect_again(b);
	expect_again(c);
	expect_again(d);
	rb.free_self = true;
	rd.free_other = c;
	put_ok(s, "/k", "v", 1);
	assert_int_equal(rd.calls, 1);
	assert_int_equal(rc.calls, 0);
	assert_int_equal(rb.calls, 1);
	assert_int_equal(ra.calls, 1);
	expect_event(a, STORE_EVENT_PUT, 1, "/k", "v", 1, true);
	expect_again(a);
	expect_event(d, STORE_EVENT_PUT, 1, "/k", "v", 1, true);
	expect_again(d);
	/* d frees itself now; a remains. */
	rd.free_self = true;
	put_ok(s, "/k", "w", 1);
	assert_int_equal(rd.calls, 2);
	assert_int_equal(ra.calls, 2);
	store_watch_free(a);
	store_free(s);
}

static void watch_restore_gone(void **state)
{
	struct store *s = new_store(100, 0);
	struct store_watch *w = NULL, *w2 = NULL;
	struct recorder rec = {0}, rec2 = {0};
	struct store_event ev;
	struct state snap;
	(void)state;

	put_ok(s, "/a", "1", 1);
	put_ok(s, "/b", "2", 1);
	snap = state_of(s);
	put_ok(s, "/c", "3", 1);
	assert_int_equal(store_watch_new(s, "/", 1, 0, record_cb, &rec, &w), 0);
	assert_int_equal(store_watch_new(s, "/", 1, 1, record_cb, &rec2, &w2),
			 0);
	expect_again(w);
	assert_int_equal(store_restore(s, snap.buf, snap.len), 0);
	/* The drained watch is told; both are gone. */
	assert_int_equal(rec.calls, 1);
	assert_int_equal(rec2.calls, 0);
	assert_int_equal(store_watch_next(w, &ev), STORE_EGONE);
	assert_int_equal(store_watch_next(w2, &ev), STORE_EGONE);
	/* History restarts at the snapshot's revision. */
	assert_int_equal(store_revision(s), 2);
	assert_int_equal(store_compacted(s), 2);
	assert_int_equal(store_watch_new(s, "/", 1, 1, NULL, NULL, &w2),
			 STORE_EGONE);
	store_watch_free(w2);
	assert_int_equal(store_watch_new(s, "/", 1, 2, NULL, NULL, &w2), 0);
	put_ok(s, "/d", "4", 1);
	expect_event(w2, STORE_EVENT_PUT, 3, "/d", "4", 3, true);
	store_watch_free(w2);
	store_watch_free(w);
	free(snap.buf);
	store_free(s);
}

/* ------------------------------------------------------------ Snapshots */

static void snapshot_round_trip(void **state)
{
	struct store *s = new_store(100, 0);
	struct store *r = new_store(100, 0);
	struct store_result res;
	struct state st;
	struct store_iter i1, i2;
	struct store_kv a, b;
	unsigned char big[70000];
	struct store_cmd cmd = {.type = STORE_CMD_PUT,
				.key = "/big",
				.key_len = 4,
				.val = big,
				.val_len = sizeof(big)};
	void *buf;
	size_t len;
	(void)state;

	/* An empty store round-trips too. */
	st = state_of(s);
	assert_int_equal(store_restore(r, st.buf, st.len), 0);
	assert_int_equal(store_revision(r), 0);
	assert_int_equal(store_count(r), 0);
	free(st.buf);

	memset(big, 0xab, sizeof(big));
	put_ok(s, "/a", "1", 1);
	put_ok(s, "/b", "2", 1);
	put_ok(s, "/a", "3", 1);
	assert_int_equal(store_apply(s, &cmd, &res), 0);
	put_ok(s, "/c", "", 1);
	assert_int_equal(do_delete(s, "/b", STORE_COND_NONE, 0, &res), 0);
	compact(s, 2);
	st = state_of(s);
	assert_int_equal(store_restore(r, st.buf, st.len), 0);
	assert_int_equal(store_revision(r), store_revision(s));
	assert_int_equal(store_count(r), store_count(s));
	/* /a=3, /big, /c="": keys and values, the replaced and deleted gone. */
	assert_int_equal(store_bytes(s), 2 + 1 + 4 + sizeof(big) + 2);
	assert_int_equal(store_bytes(r), store_bytes(s));
	assert_int_equal(store_compacted(r), store_revision(s));
	store_iter_seek(s, &i1, NULL, 0);
	store_iter_seek(r, &i2, NULL, 0);
	while (store_iter_next(&i1, &a)) {
		assert_true(store_iter_next(&i2, &b));
		assert_int_equal(a.key_len, b.key_len);
		assert_memory_equal(a.key, b.key, a.key_len);
		assert_int_equal(a.val_len, b.val_len);
		if (a.val_len > 0)
			assert_memory_equal(a.val, b.val, a.val_len);
		assert_int_equal(a.create_rev, b.create_rev);
		assert_int_equal(a.mod_rev, b.mod_rev);
	}
	assert_false(store_iter_next(&i2, &b));
	assert_value(r, "/a", "3", 1, 3);
	/* Once the original is compacted to its revision, the bytes match. */
	compact(s, store_revision(s));
	free(st.buf);
	st = state_of(s);
	assert_int_equal(store_snapshot(r, &buf, &len), 0);
	assert_int_equal(len, st.len);
	assert_memory_equal(buf, st.buf, len);
	free(buf);
	/* Writes continue from the restored revisions. */
	assert_int_equal(do_put(r, "/a", "4", STORE_COND_MOD_REV, 3, 1, &res),
			 0);
	assert_int_equal(res.status, 0);
	assert_int_equal(res.rev, 7);
	free(st.buf);
	store_free(r);
	store_free(s);
}

static struct store *small_store(void)
{
	struct store *s = new_store(100, 0);
	struct store_result res;
	put_ok(s, "/a", "1", 1);
	put_ok(s, "/bb", "22", 1);
	put_ok(s, "/ccc", "333", 1);
	put_ok(s, "/a", "4444", 1);
	assert_int_equal(do_delete(s, "/bb", STORE_COND_NONE, 0, &res), 0);
	put_ok(s, "/d", "", 1);
	return s;
}

/* Collects store_snapshot_stream() output; fails the call numbered
 * fail_at (1-based, 0 never) with -EIO. */
struct stream_out {
	unsigned char *buf;
	size_t len;
	size_t max_piece;
	unsigned calls;
	unsigned fail_at;
};

static int stream_out_write(void *data, const void *buf, size_t len)
{
	struct stream_out *c = data;

	c->calls++;
	if (c->calls == c->fail_at)
		return -EIO;
	assert_true(len > 0);
	c->buf = realloc(c->buf, c->len + len);
	assert_non_null(c->buf);
	memcpy(c->buf + c->len, buf, len);
	c->len += len;
	if (len > c->max_piece)
		c->max_piece = len;
	return 0;
}

/* The streamed encoding is store_snapshot()'s, byte for byte, whatever
 * the chunk size (values larger than a chunk included), in pieces no
 * larger than the chunk; a failing write stops it with its error. */
static void snapshot_stream(void **state)
{
	struct store *s = small_store();
	static unsigned char big[5000];
	const size_t chunks[] = {64, 100, 4096, 1u << 20};
	struct store_result res;
	struct store_cmd cmd = {.type = STORE_CMD_PUT,
				.key = "/big",
				.key_len = 4,
				.val = big,
				.val_len = sizeof(big)};
	struct stream_out c;
	void *buf;
	size_t len;
	(void)state;

	memset(big, 0x5a, sizeof(big));
	assert_int_equal(store_apply(s, &cmd, &res), 0);
	assert_int_equal(store_snapshot(s, &buf, &len), 0);
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		memset(&c, 0, sizeof(c));
		assert_int_equal(store_snapshot_stream(s, chunks[i], stream_out_write,
						       &c),
				 0);
		assert_int_equal(c.len, len);
		assert_memory_equal(c.buf, buf, len);
		assert_true(c.max_piece <= chunks[i]);
		free(c.buf);
	}
	memset(&c, 0, sizeof(c));
	c.fail_at = 2;
	assert_int_equal(store_snapshot_stream(s, 64, stream_out_write, &c), -EIO);
	assert_int_equal(c.calls, 2);
	free(c.buf);
	assert_int_equal(store_snapshot_stream(s, 63, stream_out_write, &c),
			 -EINVAL);
	free(buf);
	store_free(s);
}

/* Packs a hand-made snapshot: entries given as key, value, create, mod. */
struct fake_entry {
	const char *key;
	const char *val;
	uint64_t create_rev;
	uint64_t mod_rev;
};

static int sbuf_write(void *data, const char *buf, size_t len)
{
	return msgpack_sbuffer_write(data, buf, len);
}

static void fake_snapshot(msgpack_sbuffer *sb, uint64_t format, uint64_t rev,
			  uint64_t compacted, const struct fake_entry *e,
			  size_t n)
{
	msgpack_packer pk;
	size_t i;
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, sbuf_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint64(&pk, format);
	msgpack_pack_uint64(&pk, rev);
	msgpack_pack_uint64(&pk, compacted);
	msgpack_pack_array(&pk, n);
	for (i = 0; i < n; i++) {
		msgpack_pack_array(&pk, 4);
		msgpack_pack_bin_with_body(&pk, e[i].key, strlen(e[i].key));
		msgpack_pack_bin_with_body(&pk, e[i].val, strlen(e[i].val));
		msgpack_pack_uint64(&pk, e[i].create_rev);
		msgpack_pack_uint64(&pk, e[i].mod_rev);
	}
}

static void snapshot_corrupt(void **state)
{
	struct store *src = small_store();
	struct store *s = new_store(100, 0);
	struct state before, snap;
	unsigned char *copy;
	size_t len, bit;
	int ok = 0, bad = 0;
	msgpack_sbuffer sb;
	(void)state;

	put_ok(s, "/keep", "me", 1);
	before = state_of(s);
	snap = state_of(src);
	/* Every truncation fails and leaves the store alone. */
	for (len = 0; len < snap.len; len++) {
		copy = malloc(len + 1);
		memcpy(copy, snap.buf, len);
		assert_int_equal(store_restore(s, copy, len), -EBADMSG);
		free(copy);
	}
	assert_state(s, &before);
	/* A trailing byte too. */
	copy = malloc(snap.len + 1);
	memcpy(copy, snap.buf, snap.len);
	copy[snap.len] = 0;
	assert_int_equal(store_restore(s, copy, snap.len + 1), -EBADMSG);
	free(copy);
	assert_state(s, &before);
	/* Single bit flips: either rejected (store unchanged) or a store
	 * that is valid in its own right. */
	for (bit = 0; bit < snap.len * 8; bit++) {
		struct store *t = new_store(100, 0);
		struct state tb;
		int rv;
		put_ok(t, "/keep", "me", 1);
		tb = state_of(t);
		copy = malloc(snap.len);
		memcpy(copy, snap.buf, snap.len);
		copy[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		rv = store_restore(t, copy, snap.len);
		if (rv == 0) {
			ok++;
		} else {
			assert_int_equal(rv, -EBADMSG);
			assert_state(t, &tb);
			bad++;
		}
		free(copy);
		free(tb.buf);
		store_free(t);
	}
	assert_true(bad > 0);
	assert_true(ok > 0); /* flips inside value bytes stay valid */

	/* Hand-made invalid snapshots. */
	{
		struct fake_entry good[] = {{"/a", "1", 1, 2}, {"/b", "2", 3, 3}};
		struct fake_entry unsorted[] = {{"/b", "1", 1, 1},
						{"/a", "2", 2, 2}};
		struct fake_entry dup[] = {{"/a", "1", 1, 1}, {"/a", "2", 2, 2}};
		struct fake_entry future[] = {{"/a", "1", 1, 9}};
		struct fake_entry backwards[] = {{"/a", "1", 3, 2}};
		struct fake_entry zero[] = {{"/a", "1", 0, 2}};
		struct fake_entry empty_key[] = {{"", "1", 1, 1}};

		fake_snapshot(&sb, 1, 3, 1, good, 2);
		{
			struct store *t = new_store(100, 0);
			assert_int_equal(store_restore(t, sb.data, sb.size), 0);
			assert_int_equal(store_revision(t), 3);
			assert_value(t, "/a", "1", 1, 2);
			store_free(t);
		}
		msgpack_sbuffer_destroy(&sb);
		fake_snapshot(&sb, 2, 3, 1, good, 2);
		assert_int_equal(store_restore(s, sb.data, sb.size), -EBADMSG);
		msgpack_sbuffer_destroy(&sb);
		fake_snapshot(&sb, 1, 3, 4, good, 2); /* compacted > rev */
		assert_int_equal(store_restore(s, sb.data, sb.size), -EBADMSG);
		msgpack_sbuffer_destroy(&sb);
		fake_snapshot(&sb, 1, 3, 0, unsorted, 2);
		assert_int_equal(store_restore(s, sb.data, sb.size), -EBADMSG);
		msgpack_sbuffer_destroy(&sb);
		fake_snapshot(&sb, 1, 3, 0, dup, 2);
		assert_int_equal(store_restore(s, sb.data, sb.size), -EBADMSG);
		msgpack_sbuffer_destroy(&sb);
		fake_snapshot(&sb, 1, 3, 0, future, 1);
		assert_int_equal(store_restore(s, sb.data, sb.size), -EBADMSG);
		msgpack_sbuffer_destroy(&sb);
		fake_snapshot(&sb, 1, 3, 0, backwards, 1);
		assert_int_equal(store_restore(s, sb.data, sb.size), -EBADMSG);
		msgpack_sbuffer_destroy(&sb);
		fake_snapshot(&sb, 1, 3, 0, zero, 1);
		assert_int_equal(store_restore(s, sb.data, sb.size), -EBADMSG);
		msgpack_sbuffer_destroy(&sb);
		fake_snapshot(&sb, 1, 3, 0, empty_key, 1);
		assert_int_equal(store_restore(s, sb.data, sb.size), -EBADMSG);
		msgpack_sbuffer_destroy(&sb);
	}
	/* A huge declared count in a tiny buffer. */
	{
		const unsigned char huge[] = {0x94, 0x01, 0x05, 0x00,
					      0xdd, 0xff, 0xff, 0xff, 0xff};
		const unsigned char str_key[] = {0x94, 0x01, 0x01, 0x00, 0x91,
						 0x94, 0xa2, '/', 'a', 0xc4,
						 0x00, 0x01, 0x01};
		assert_int_equal(store_restore(s, huge, sizeof(huge)),
				 -EBADMSG);
		assert_int_equal(store_restore(s, str_key, sizeof(str_key)),
				 -EBADMSG);
		assert_int_equal(store_restore(s, NULL, 0), -EBADMSG);
	}
	/* Random garbage behind a plausible header: rejected or valid,
	 * never a crash (ASan watches the reads). */
	{
		struct store *t = new_store(100, 0);
		uint64_t rng = 7;
		int i, rv;
		for (i = 0; i < 5000; i++) {
			size_t n = 5 + (size_t)(rng_next(&rng) % 60), j;
			unsigned char *g = malloc(n);
			for (j = 0; j < n; j++)
				g[j] = (unsigned char)rng_next(&rng);
			g[0] = 0x94;
			g[1] = 0x01;
			if (i & 1)
				g[4] = (unsigned char)(0x90 | (g[4] & 0x03));
			rv = store_restore(t, g, n);
			assert_true(rv == 0 || rv == -EBADMSG);
			free(g);
		}
		store_free(t);
	}
	assert_state(s, &before);
	free(snap.buf);
	free(before.buf);
	store_free(src);
	store_free(s);
}

/* ------------------------------------------------------------ Determinism */

/* Builds the i-th pseudo-random command; buffers belong to the caller. */
static void random_cmd(uint64_t *rng, struct store *s, char *key,
		       unsigned char *val, uint64_t t, struct store_cmd *cmd)
{
	uint64_t r = rng_next(rng);
	uint64_t kind = r % 100;
	size_t val_len = (size_t)(rng_next(rng) % 64);
	size_t i;
	struct store_kv kv;
	int n = snprintf(key, 48, "/registry/x/ns-%u/o-%u",
			 (unsigned)(rng_next(rng) % 5),
			 (unsigned)(rng_next(rng) % 60));

	memset(cmd, 0, sizeof(*cmd));
	cmd->key = key;
	cmd->key_len = (size_t)n;
	cmd->time_ms = t;
	for (i = 0; i < val_len; i++)
		val[i] = (unsigned char)rng_next(rng);
	if (kind < 55) {
		cmd->type = STORE_CMD_PUT;
		cmd->val = val;
		cmd->val_len = val_len;
		if (kind < 10) {
			cmd->cond = STORE_COND_ABSENT;
		} else if (kind < 25) {
			cmd->cond = STORE_COND_MOD_REV;
			/* Half the time the right revision. */
			if (store_get(s, key, cmd->key_len, &kv) == 0 &&
			    (r & 1))
				cmd->mod_rev = kv.mod_rev;
			else
				cmd->mod_rev = rng_next(rng) % (t + 1);
		}
	} else if (kind < 97) {
		cmd->type = STORE_CMD_DELETE;
		if (kind < 75) {
			cmd->cond = STORE_COND_MOD_REV;
			if (store_get(s, key, cmd->key_len, &kv) == 0 &&
			    (r & 1))
				cmd->mod_rev = kv.mod_rev;
			else
				cmd->mod_rev = rng_next(rng) % (t + 1);
		}
	} else {
		cmd->type = STORE_CMD_COMPACT;
		cmd->key = NULL;
		cmd->key_len = 0;
		cmd->mod_rev = store_revision(s) > 50 ?
				   store_revision(s) - 50 : 0;
	}
}

static void determinism(void **state)
{
	struct store *a = new_store(200, 30);
	struct store *b = new_store(200, 30);
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	char key[48];
	unsigned char val[64];
	struct state sa, sb;
	int i, ok = 0, failed = 0;
	(void)state;

	for (i = 0; i < 5000; i++) {
		struct store_cmd cmd, dec;
		struct store_result ra, rb;
		void *buf;
		size_t len;

		random_cmd(&rng, a, key, val, (uint64_t)i, &cmd);
		assert_int_equal(store_apply(a, &cmd, &ra), 0);
		/* b gets the command through the codec, as from the log. */
		assert_int_equal(store_cmd_encode(&cmd, NULL, &buf, &len), 0);
		assert_int_equal(store_cmd_decode(buf, len, &dec), 0);
		assert_int_equal(store_apply(b, &dec, &rb), 0);
		free(buf);
		assert_int_equal(ra.status, rb.status);
		assert_int_equal(ra.rev, rb.rev);
		assert_int_equal(ra.mod_rev, rb.mod_rev);
		assert_int_equal(ra.create_rev, rb.create_rev);
		if (ra.status == 0)
			ok++;
		else
			failed++;
	}
	assert_true(ok > 1000);
	assert_true(failed > 500);
	assert_true(store_count(a) > 10);
	assert_true(store_compacted(a) > 0);
	assert_int_equal(store_compacted(a), store_compacted(b));
	sa = state_of(a);
	sb = state_of(b);
	assert_int_equal(sa.len, sb.len);
	assert_memory_equal(sa.buf, sb.buf, sa.len);
	free(sa.buf);
	free(sb.buf);
	store_free(a);
	store_free(b);
}

/* ------------------------------------------------------------ Codec */

static size_t counting_alloc_calls;
static void *counting_alloc(size_t n)
{
	counting_alloc_calls++;
	return malloc(n);
}

static void codec_round_trip(void **state)
{
	unsigned char val[300];
	char key[300];
	size_t kl, vl;
	(void)state;

	memset(val, 0x5a, sizeof(val));
	memset(key, 'k', sizeof(key));
	key[0] = '/';
	for (kl = 1; kl < sizeof(key); kl += 13) {
		for (vl = 0; vl < sizeof(val); vl += 7) {
			struct store_cmd cmd = {.type = STORE_CMD_PUT,
						.cond = STORE_COND_MOD_REV,
						.mod_rev = (uint64_t)vl << 40,
						.time_ms = 1700000000000ull + kl,
						.key = key,
						.key_len = kl,
						.val = val,
						.val_len = vl};
			struct store_cmd dec;
			void *buf;
			size_t len;
			assert_int_equal(
			    store_cmd_encode(&cmd, NULL, &buf, &len), 0);
			assert_int_equal(len % 8, 0);
			assert_int_equal(store_cmd_decode(buf, len, &dec), 0);
			assert_int_equal(dec.type, cmd.type);
			assert_int_equal(dec.cond, cmd.cond);
			assert_int_equal(dec.mod_rev, cmd.mod_rev);
			assert_int_equal(dec.time_ms, cmd.time_ms);
			assert_int_equal(dec.key_len, kl);
			assert_memory_equal(dec.key, key, kl);
			assert_int_equal(dec.val_len, vl);
			if (vl > 0)
				assert_memory_equal(dec.val, val, vl);
			/* Pointers into the buffer, not copies. */
			assert_true((const char *)dec.key > (char *)buf &&
				    (const char *)dec.key < (char *)buf + len);
			free(buf);
		}
	}
	/* Delete and compact, with a caller's allocator. */
	{
		struct store_cmd del = {.type = STORE_CMD_DELETE,
					.cond = STORE_COND_MOD_REV,
					.mod_rev = 42,
					.key = "/x",
					.key_len = 2};
		struct store_cmd cmp = {.type = STORE_CMD_COMPACT,
					.mod_rev = UINT64_MAX};
		struct store_cmd bad = {.type = STORE_CMD_DELETE,
					.cond = STORE_COND_ABSENT,
					.key = "/x",
					.key_len = 2};
		struct store_cmd dec;
		void *buf;
		size_t len;

		assert_int_equal(
		    store_cmd_encode(&del, counting_alloc, &buf, &len), 0);
		assert_int_equal(counting_alloc_calls, 1);
		assert_int_equal(len % 8, 0);
		assert_int_equal(store_cmd_decode(buf, len, &dec), 0);
		assert_int_equal(dec.type, STORE_CMD_DELETE);
		assert_int_equal(dec.cond, STORE_COND_MOD_REV);
		assert_int_equal(dec.mod_rev, 42);
		assert_int_equal(dec.key_len, 2);
		assert_int_equal(dec.val_len, 0);
		free(buf);
		assert_int_equal(store_cmd_encode(&cmp, NULL, &buf, &len), 0);
		assert_int_equal(store_cmd_decode(buf, len, &dec), 0);
		assert_int_equal(dec.type, STORE_CMD_COMPACT);
		assert_int_equal(dec.mod_rev, UINT64_MAX);
		assert_int_equal(dec.key_len, 0);
		free(buf);
		assert_int_equal(store_cmd_encode(&bad, NULL, &buf, &len),
				 -EINVAL);
	}
}

static void codec_padding(void **state)
{
	char key[40];
	size_t kl, seen = 0;
	unsigned seen_pad = 0;
	(void)state;

	memset(key, 'a', sizeof(key));
	key[0] = '/';
	/* Key lengths 1..40 walk the msgpack length through every residue
	 * modulo 8, so every padding size 0..7 shows up. */
	for (kl = 1; kl <= sizeof(key); kl++) {
		struct store_cmd cmd = {.type = STORE_CMD_DELETE,
					.key = key,
					.key_len = kl};
		struct store_cmd dec;
		unsigned char *buf;
		size_t len, end, i;
		void *p;
		assert_int_equal(store_cmd_encode(&cmd, NULL, &p, &len), 0);
		buf = p;
		assert_int_equal(len % 8, 0);
		/* fixarray, 1, 2, 0, 0, 0, bin8 header, key, nil */
		end = 6 + 2 + kl + 1;
		assert_int_equal(len, (end + 7) / 8 * 8);
		assert_int_equal(buf[end - 1], 0xc0);
		for (i = end; i < len; i++)
			assert_int_equal(buf[i], 0);
		seen_pad |= 1u << (len - end);
		seen++;
		/* A non-zero padding byte is garbage. */
		if (len > end) {
			buf[len - 1] = 1;
			assert_int_equal(store_cmd_decode(buf, len, &dec),
					 -EBADMSG);
		}
		free(buf);
	}
	assert_int_equal(seen_pad, 0xff);
	assert_int_equal(seen, sizeof(key));
}

static void codec_garbage(void **state)
{
	struct store_cmd cmd = {.type = STORE_CMD_PUT,
				.cond = STORE_COND_ABSENT,
				.mod_rev = 123456789,
				.time_ms = 1700000000000ull,
				.key = "/registry/pods/default/p",
				.key_len = 24,
				.val = "0123456789abcdef",
				.val_len = 16};
	struct store_cmd dec;
	unsigned char *buf, junk[256];
	uint64_t rng = 42;
	size_t len, i, bit;
	void *p;
	int valid = 0;
	(void)state;

	assert_int_equal(store_cmd_encode(&cmd, NULL, &p, &len), 0);
	buf = p;
	/* Every truncation, and every extension by 8 zeros, is rejected. */
	for (i = 0; i < len; i++) {
		unsigned char *t = malloc(i + 1);
		memcpy(t, buf, i);
		assert_int_equal(store_cmd_decode(t, i, &dec), -EBADMSG);
		free(t);
	}
	{
		unsigned char *t = calloc(1, len + 8);
		memcpy(t, buf, len);
		assert_int_equal(store_cmd_decode(t, len + 8, &dec), -EBADMSG);
		free(t);
	}
	assert_int_equal(store_cmd_decode(NULL, 0, &dec), -EBADMSG);
	/* Bit flips: rejected, or a command that passes store_apply()'s
	 * checks. */
	for (bit = 0; bit < len * 8; bit++) {
		buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		if (store_cmd_decode(buf, len, &dec) == 0) {
			struct store *s = new_store(10, 0);
			struct store_result res;
			valid++;
			assert_int_equal(store_apply(s, &dec, &res), 0);
			store_free(s);
		}
		buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
	assert_true(valid > 0);
	free(buf);
	/* Random garbage of every multiple-of-8 length, with and without a
	 * plausible first byte. */
	for (i = 0; i < 20000; i++) {
		size_t n = 8 * (1 + (size_t)(rng_next(&rng) % 32)), j;
		unsigned char *g = malloc(n);
		for (j = 0; j < n; j++)
			g[j] = (unsigned char)rng_next(&rng);
		if (i & 1) {
			g[0] = 0x97;
			g[1] = 0x01;
		}
		(void)store_cmd_decode(g, n, &dec);
		free(g);
	}
	/* Huge declared lengths. */
	memset(junk, 0, sizeof(junk));
	junk[0] = 0xdd;
	memset(junk + 1, 0xff, 4);
	assert_int_equal(store_cmd_decode(junk, 8, &dec), -EBADMSG);
	{
		const unsigned char huge_bin[] = {0x97, 0x01, 0x01, 0x00, 0x00,
						  0x00, 0xc6, 0xff, 0xff, 0xff,
						  0xff, 0x00, 0x00, 0x00, 0x00,
						  0x00};
		assert_int_equal(
		    store_cmd_decode(huge_bin, sizeof(huge_bin), &dec),
		    -EBADMSG);
	}
}

/* ------------------------------------------------------------ Out of memory */

/* Runs @op with the n-th allocation failing, for n = 0, 1, ... until it
 * succeeds, checking that each failure is -ENOMEM and changes nothing. */
static void enomem_sweep(struct store *s,
			 int (*op)(struct store *s, void *arg), void *arg)
{
	long n;
	for (n = 0;; n++) {
		struct state before = state_of(s);
		int rv;
		fault_arm(n);
		rv = op(s, arg);
		fault_disarm();
		if (rv == 0) {
			free(before.buf);
			assert_true(n > 0);
			return;
		}
		assert_int_equal(rv, -ENOMEM);
		assert_state(s, &before);
		free(before.buf);
		assert_true(n < 100);
	}
}

static int op_put(struct store *s, void *arg)
{
	struct store_result res;
	return do_put(s, arg, "value", STORE_COND_NONE, 0, 1, &res);
}

static int op_delete(struct store *s, void *arg)
{
	struct store_result res;
	return do_delete(s, arg, STORE_COND_NONE, 0, &res);
}

static int op_restore(struct store *s, void *arg)
{
	const struct state *st = arg;
	return store_restore(s, st->buf, st->len);
}

static int op_snapshot(struct store *s, void *arg)
{
	void *buf;
	size_t len;
	int rv = store_snapshot(s, &buf, &len);
	(void)arg;
	if (rv == 0)
		free(buf);
	return rv;
}

static int discard_write(void *data, const void *buf, size_t len)
{
	(void)data;
	(void)buf;
	(void)len;
	return 0;
}

static int op_stream(struct store *s, void *arg)
{
	(void)arg;
	return store_snapshot_stream(s, 256, discard_write, NULL);
}

static int op_watch(struct store *s, void *arg)
{
	struct store_watch *w;
	int rv = store_watch_new(s, "/", 1, 1, NULL, NULL, &w);
	(void)arg;
	if (rv == 0)
		store_watch_free(w);
	return rv;
}

static int op_encode(struct store *s, void *arg)
{
	struct store_cmd cmd = {.type = STORE_CMD_PUT, .key = "/k", .key_len = 2};
	void *buf;
	size_t len;
	int rv = store_cmd_encode(&cmd, NULL, &buf, &len);
	(void)s;
	(void)arg;
	if (rv == 0)
		free(buf);
	return rv;
}

static void out_of_memory(void **state)
{
	struct store *s = NULL, *src = small_store();
	struct state st = state_of(src);
	char key[16];
	int i;
	(void)state;

	for (i = 0; i < 2; i++) {
		fault_arm(i);
		assert_int_equal(store_new(NULL, &s), i == 0 ? -ENOMEM : 0);
		fault_disarm();
	}
	/* Enough puts to make the history ring grow under a failure. */
	for (i = 0; i < 70; i++) {
		snprintf(key, sizeof(key), "/k%d", i % 20);
		enomem_sweep(s, op_put, key); /* new keys, then updates */
	}
	enomem_sweep(s, op_delete, "/k3");
	enomem_sweep(s, op_snapshot, NULL);
	enomem_sweep(s, op_stream, NULL);
	enomem_sweep(s, op_watch, NULL);
	enomem_sweep(s, op_encode, NULL);
	enomem_sweep(s, op_restore, &st);
	assert_int_equal(store_revision(s), store_revision(src));
	free(st.buf);
	store_free(src);
	store_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(put_revisions),
	    cmocka_unit_test(cas_create_only),
	    cmocka_unit_test(cas_update_if),
	    cmocka_unit_test(cas_delete),
	    cmocka_unit_test(malformed_commands),
	    cmocka_unit_test(range_prefix_pages),
	    cmocka_unit_test(iter_seek),
	    cmocka_unit_test(watch_replay_then_live),
	    cmocka_unit_test(watch_from_now),
	    cmocka_unit_test(watch_gone_by_count),
	    cmocka_unit_test(watch_gone_by_age),
	    cmocka_unit_test(watch_gone_by_compact),
	    cmocka_unit_test(watch_free_in_callback),
	    cmocka_unit_test(watch_restore_gone),
	    cmocka_unit_test(snapshot_round_trip),
	    cmocka_unit_test(snapshot_corrupt),
	    cmocka_unit_test(snapshot_stream),
	    cmocka_unit_test(determinism),
	    cmocka_unit_test(codec_round_trip),
	    cmocka_unit_test(codec_padding),
	    cmocka_unit_test(codec_garbage),
	    cmocka_unit_test(out_of_memory),
	};
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
