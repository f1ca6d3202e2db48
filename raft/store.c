/* The MVCC key-value store: ordered index, history ring, watches, snapshot
 * and command codecs.
 *
 * Layout. Keys live in a red-black tree (<sys/tree.h>) whose nodes carry
 * the key bytes inline. Values are refcounted immutable blobs: the current
 * entry and the history event that wrote the value share one blob, so the
 * history costs little more than its ring slots and key copies.
 *
 * History. There is exactly one event per revision, so the events live in
 * a ring indexed by (rev - first_rev). The invariant is that the ring holds
 * the events of revisions compacted + 1 .. rev, no more, no less; its
 * length is therefore rev - compacted and needs no counter of its own.
 *
 * Atomicity. store_apply() makes every allocation (ring slot, value blob,
 * event key, tree node) before it changes anything, so -ENOMEM leaves the
 * store as it was. store_restore() builds the new tree aside and swaps.
 *
 * Decoding. Encoding goes through msgpack-c's packer. Decoding uses the
 * small strict reader below instead of msgpack_unpack(): that unpacker
 * allocates room for an array's declared length before reading it (a
 * 5-byte input declaring 2^32 elements asks for 96 GiB) and builds a whole
 * object tree, while the data here comes from the Raft log and from
 * snapshots on disk and has a fixed schema we can check element by element.
 */
#include "raft/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/tree.h>

#include <msgpack.h>

/* Unit tests define these before including this file to inject faults. */
#ifndef STORE_MALLOC
#define STORE_MALLOC(n) malloc(n)
#define STORE_REALLOC(p, n) realloc(p, n)
#define STORE_FREE(p) free(p)
#endif

#define STORE_CMD_FORMAT 1
#define STORE_SNAPSHOT_FORMAT 1

/* Lengths go into msgpack bin32 headers. */
#define LEN_MAX UINT32_MAX

/* An immutable refcounted byte string. */
struct blob {
	uint32_t refs;
	uint32_t len;
	unsigned char data[];
};

struct entry {
	RB_ENTRY(entry) link;
	struct blob *val;
	uint64_t create_rev;
	uint64_t mod_rev;
	/* Points at data[] in stored entries, at the caller's key in lookup
	 * keys built on the stack. */
	const char *key;
	size_t key_len;
	char data[];
};

RB_HEAD(entry_tree, entry);

struct event {
	struct blob *key;
	struct blob *val; /* PUT: the new value; DELETE: the last value */
	uint64_t create_rev;
	uint64_t time_ms;
	uint8_t type;
	bool created;
};

struct store_watch {
	struct store *store; /* NULL once the store is gone */
	LIST_ENTRY(store_watch) link;
	store_watch_cb cb;
	void *data;
	uint64_t next_rev; /* the next revision to look at */
	bool armed;        /* next() returned -EAGAIN since the last callback */
	bool gone;
	size_t prefix_len;
	char prefix[];
};

struct store {
	struct store_config config;
	struct entry_tree tree;
	size_t count;
	uint64_t bytes; /* keys and values of the live entries */
	uint64_t rev;
	uint64_t compacted;
	uint64_t time_ms; /* the largest command time seen */
	/* Ring of rev - compacted events; cap is 0 or a power of two. */
	struct event *ring;
	size_t ring_cap;
	size_t ring_head;
	LIST_HEAD(, store_watch) watches;
	/* The watch the callback loop visits next, kept valid across
	 * store_watch_free() from inside a callback. */
	struct store_watch *fire_next;
};

/* ------------------------------------------------------------ helpers */

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n > 0 ? memcmp(a, b, n) : 0;
	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int entry_cmp(const struct entry *a, const struct entry *b)
{
	return key_cmp(a->key, a->key_len, b->key, b->key_len);
}

/* RB_GENERATE_STATIC needs BSD's __unused, which libbsd leaves undefined
 * (it clashes with Linux headers), so spell the attribute out. */
RB_GENERATE_INTERNAL(entry_tree, entry, link, entry_cmp,
		     static __attribute__((unused)))

static bool has_prefix(const char *key, size_t key_len, const char *prefix,
		       size_t prefix_len)
{
	return key_len >= prefix_len &&
	       (prefix_len == 0 || memcmp(key, prefix, prefix_len) == 0);
}

static struct blob *blob_new(const void *data, size_t len)
{
	struct blob *b = STORE_MALLOC(sizeof(*b) + len);
	if (b == NULL)
		return NULL;
	b->refs = 1;
	b->len = (uint32_t)len;
	if (len > 0)
		memcpy(b->data, data, len);
	return b;
}

static struct blob *blob_ref(struct blob *b)
{
	b->refs++;
	return b;
}

static void blob_unref(struct blob *b)
{
	if (b != NULL && --b->refs == 0)
		STORE_FREE(b);
}

static struct entry *entry_new(const char *key, size_t key_len)
{
	struct entry *e = STORE_MALLOC(sizeof(*e) + key_len);
	if (e == NULL)
		return NULL;
	memset(e, 0, sizeof(*e));
	memcpy(e->data, key, key_len);
	e->key = e->data;
	e->key_len = key_len;
	return e;
}

static void entry_free(struct entry *e)
{
	blob_unref(e->val);
	STORE_FREE(e);
}

static void tree_clear(struct entry_tree *t)
{
	struct entry *e, *next;
	for (e = RB_MIN(entry_tree, t); e != NULL; e = next) {
		next = RB_NEXT(entry_tree, t, e);
		RB_REMOVE(entry_tree, t, e);
		entry_free(e);
	}
}

static struct entry *tree_find(const struct store *s, const char *key,
			       size_t key_len)
{
	struct entry probe = {.key = key, .key_len = key_len};
	return RB_FIND(entry_tree, (struct entry_tree *)&s->tree, &probe);
}

static void entry_to_kv(const struct entry *e, struct store_kv *kv)
{
	kv->key = e->key;
	kv->key_len = e->key_len;
	kv->val = e->val->data;
	kv->val_len = e->val->len;
	kv->create_rev = e->create_rev;
	kv->mod_rev = e->mod_rev;
}

/* ------------------------------------------------------------ history */

static size_t history_len(const struct store *s)
{
	return (size_t)(s->rev - s->compacted);
}

static struct event *history_at(const struct store *s, uint64_t rev)
{
	size_t i = (size_t)(rev - s->compacted - 1);
	return &s->ring[(s->ring_head + i) & (s->ring_cap - 1)];
}

/* Makes room for one more event without changing what the ring holds. */
static int history_reserve(struct store *s)
{
	size_t len = history_len(s);
	size_t cap, i;
	struct event *ring;

	if (len < s->ring_cap)
		return 0;
	cap = s->ring_cap > 0 ? s->ring_cap * 2 : 64;
	if (cap <= s->ring_cap || cap > SIZE_MAX / sizeof(*ring))
		return -ENOMEM;
	ring = STORE_MALLOC(cap * sizeof(*ring));
	if (ring == NULL)
		return -ENOMEM;
	for (i = 0; i < len; i++)
		ring[i] = s->ring[(s->ring_head + i) & (s->ring_cap - 1)];
	STORE_FREE(s->ring);
	s->ring = ring;
	s->ring_cap = cap;
	s->ring_head = 0;
	return 0;
}

/* Gives back memory after a large compaction; failure is harmless. */
static void history_shrink(struct store *s)
{
	size_t len = history_len(s);
	size_t cap = s->ring_cap, i;
	struct event *ring;

	if (cap <= 64 || len > cap / 4)
		return;
	while (cap > 64 && len <= cap / 4)
		cap /= 2;
	ring = STORE_MALLOC(cap * sizeof(*ring));
	if (ring == NULL)
		return;
	for (i = 0; i < len; i++)
		ring[i] = s->ring[(s->ring_head + i) & (s->ring_cap - 1)];
	STORE_FREE(s->ring);
	s->ring = ring;
	s->ring_cap = cap;
	s->ring_head = 0;
}

static void history_drop_oldest(struct store *s)
{
	struct event *ev = &s->ring[s->ring_head];
	blob_unref(ev->key);
	blob_unref(ev->val);
	s->ring_head = (s->ring_head + 1) & (s->ring_cap - 1);
	s->compacted++;
}

static void history_clear(struct store *s)
{
	while (history_len(s) > 0)
		history_drop_oldest(s);
	STORE_FREE(s->ring);
	s->ring = NULL;
	s->ring_cap = 0;
	s->ring_head = 0;
}

/* Retention: the oldest event goes only when both rules let it go. */
static void history_trim(struct store *s)
{
	while (history_len(s) > s->config.history_min_events) {
		const struct event *oldest = &s->ring[s->ring_head];
		if (s->time_ms - oldest->time_ms < s->config.history_min_age_ms)
			break;
		history_drop_oldest(s);
	}
	history_shrink(s);
}

static void event_to_store_event(const struct event *ev, uint64_t rev,
				 struct store_event *out)
{
	out->type = (enum store_event_type)ev->type;
	out->rev = rev;
	out->kv.key = (const char *)ev->key->data;
	out->kv.key_len = ev->key->len;
	out->kv.val = ev->val->data;
	out->kv.val_len = ev->val->len;
	out->kv.create_rev = ev->create_rev;
	out->kv.mod_rev = rev;
	out->created = ev->created;
}

/* Runs the callbacks of drained watches. @ev NULL (restore) wakes every
 * drained watch; otherwise only those whose prefix matches the event. */
static void watches_fire(struct store *s, const struct event *ev, uint64_t rev)
{
	struct store_watch *w;

	for (w = LIST_FIRST(&s->watches); w != NULL; w = s->fire_next) {
		s->fire_next = LIST_NEXT(w, link);
		if (!w->armed)
			continue;
		if (ev != NULL &&
		    (rev < w->next_rev ||
		     !has_prefix((const char *)ev->key->data, ev->key->len,
				 w->prefix, w->prefix_len)))
			continue;
		w->armed = false;
		if (w->cb != NULL)
			w->cb(w, w->data);
	}
	s->fire_next = NULL;
}

/* ------------------------------------------------------------ store */

void store_config_init(struct store_config *c)
{
	c->history_min_events = 100000;
	c->history_min_age_ms = 300000;
}

int store_new(const struct store_config *config, struct store **ret_store)
{
	struct store *s = STORE_MALLOC(sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	if (config != NULL)
		s->config = *config;
	else
		store_config_init(&s->config);
	RB_INIT(&s->tree);
	LIST_INIT(&s->watches);
	*ret_store = s;
	return 0;
}

void store_free(struct store *s)
{
	struct store_watch *w;

	if (s == NULL)
		return;
	/* Leftover watches are a caller bug; orphan them rather than leave
	 * them pointing at freed memory. */
	while ((w = LIST_FIRST(&s->watches)) != NULL) {
		LIST_REMOVE(w, link);
		w->store = NULL;
		w->gone = true;
	}
	history_clear(s);
	tree_clear(&s->tree);
	STORE_FREE(s);
}

uint64_t store_revision(const struct store *s)
{
	return s->rev;
}

uint64_t store_compacted(const struct store *s)
{
	return s->compacted;
}

size_t store_count(const struct store *s)
{
	return s->count;
}

uint64_t store_bytes(const struct store *s)
{
	return s->bytes;
}

static bool cmd_valid(const struct store_cmd *cmd)
{
	switch (cmd->type) {
	case STORE_CMD_PUT:
		if (cmd->cond != STORE_COND_NONE &&
		    cmd->cond != STORE_COND_ABSENT &&
		    cmd->cond != STORE_COND_MOD_REV)
			return false;
		if (cmd->val == NULL && cmd->val_len > 0)
			return false;
		if (cmd->val_len > LEN_MAX)
			return false;
		break;
	case STORE_CMD_DELETE:
		if (cmd->cond != STORE_COND_NONE &&
		    cmd->cond != STORE_COND_MOD_REV)
			return false;
		break;
	case STORE_CMD_COMPACT:
		return cmd->cond == STORE_COND_NONE && cmd->key_len == 0;
	default:
		return false;
	}
	return cmd->key != NULL && cmd->key_len > 0 && cmd->key_len <= LEN_MAX;
}

/* Appends the event of revision s->rev + 1 into a slot history_reserve()
 * made, then applies retention. */
static void history_append(struct store *s, struct blob *key, struct blob *val,
			   enum store_event_type type, uint64_t create_rev,
			   bool created)
{
	struct event *ev;

	s->rev++;
	ev = history_at(s, s->rev);
	ev->key = key;
	ev->val = val;
	ev->create_rev = create_rev;
	ev->time_ms = s->time_ms;
	ev->type = (uint8_t)type;
	ev->created = created;
}

static void after_append(struct store *s)
{
	struct event ev;
	uint64_t rev = s->rev;
	struct blob *key;

	/* The event may be trimmed right away under a tiny retention; keep
	 * it alive for the callback matching. */
	ev = *history_at(s, rev);
	key = blob_ref(ev.key);
	history_trim(s);
	watches_fire(s, &ev, rev);
	blob_unref(key);
}

static int apply_put(struct store *s, const struct store_cmd *cmd,
		     struct store_result *res)
{
	struct entry *e = tree_find(s, cmd->key, cmd->key_len);
	struct entry *fresh = NULL;
	struct blob *val = NULL, *key = NULL;
	int rv;

	if (cmd->cond == STORE_COND_ABSENT && e != NULL) {
		res->status = STORE_EEXIST;
		goto failed_cond;
	}
	if (cmd->cond == STORE_COND_MOD_REV) {
		if (e == NULL) {
			res->status = STORE_ENOENT;
			goto failed_cond;
		}
		if (e->mod_rev != cmd->mod_rev) {
			res->status = STORE_ESTALE;
			goto failed_cond;
		}
	}

	rv = history_reserve(s);
	if (rv != 0)
		goto err;
	rv = -ENOMEM;
	val = blob_new(cmd->val, cmd->val_len);
	if (val == NULL)
		goto err;
	key = blob_new(cmd->key, cmd->key_len);
	if (key == NULL)
		goto err_after_val;
	if (e == NULL) {
		fresh = entry_new(cmd->key, cmd->key_len);
		if (fresh == NULL)
			goto err_after_key;
	}

	/* Nothing fails from here on. */
	if (cmd->time_ms > s->time_ms)
		s->time_ms = cmd->time_ms;
	if (fresh != NULL) {
		e = fresh;
		e->create_rev = s->rev + 1;
		RB_INSERT(entry_tree, &s->tree, e);
		s->count++;
		s->bytes += cmd->key_len;
	} else {
		s->bytes -= e->val->len;
		blob_unref(e->val);
	}
	s->bytes += cmd->val_len;
	e->val = val;
	e->mod_rev = s->rev + 1;
	history_append(s, key, blob_ref(val), STORE_EVENT_PUT, e->create_rev,
		       fresh != NULL);
	res->status = 0;
	res->rev = s->rev;
	res->mod_rev = e->mod_rev;
	res->create_rev = e->create_rev;
	after_append(s);
	return 0;

failed_cond:
	res->rev = s->rev;
	res->mod_rev = e != NULL ? e->mod_rev : 0;
	res->create_rev = e != NULL ? e->create_rev : 0;
	return 0;

err_after_key:
	blob_unref(key);
err_after_val:
	blob_unref(val);
err:
	return rv;
}

static int apply_delete(struct store *s, const struct store_cmd *cmd,
			struct store_result *res)
{
	struct entry *e = tree_find(s, cmd->key, cmd->key_len);
	struct blob *key;
	uint64_t create_rev;
	int rv;

	if (e == NULL) {
		res->status = STORE_ENOENT;
		goto failed_cond;
	}
	if (cmd->cond == STORE_COND_MOD_REV && e->mod_rev != cmd->mod_rev) {
		res->status = STORE_ESTALE;
		goto failed_cond;
	}

	rv = history_reserve(s);
	if (rv != 0)
		return rv;
	key = blob_new(cmd->key, cmd->key_len);
	if (key == NULL)
		return -ENOMEM;

	if (cmd->time_ms > s->time_ms)
		s->time_ms = cmd->time_ms;
	create_rev = e->create_rev;
	RB_REMOVE(entry_tree, &s->tree, e);
	s->count--;
	s->bytes -= e->key_len + e->val->len;
	/* The event takes over the entry's reference to the last value. */
	history_append(s, key, e->val, STORE_EVENT_DELETE, create_rev, false);
	e->val = NULL;
	entry_free(e);
	res->status = 0;
	res->rev = s->rev;
	res->mod_rev = s->rev;
	res->create_rev = create_rev;
	after_append(s);
	return 0;

failed_cond:
	res->rev = s->rev;
	res->mod_rev = e != NULL ? e->mod_rev : 0;
	res->create_rev = e != NULL ? e->create_rev : 0;
	return 0;
}

static int apply_compact(struct store *s, const struct store_cmd *cmd,
			 struct store_result *res)
{
	/* Compacting past the current revision compacts everything: the
	 * command stays deterministic and never fails. */
	uint64_t upto = cmd->mod_rev < s->rev ? cmd->mod_rev : s->rev;

	while (s->compacted < upto)
		history_drop_oldest(s);
	history_shrink(s);
	res->status = 0;
	res->rev = s->rev;
	res->mod_rev = s->compacted;
	res->create_rev = 0;
	return 0;
}

int store_apply(struct store *s, const struct store_cmd *cmd,
		struct store_result *ret_result)
{
	struct store_result res = {0};
	int rv;

	if (!cmd_valid(cmd))
		return -EINVAL;
	switch (cmd->type) {
	case STORE_CMD_PUT:
		rv = apply_put(s, cmd, &res);
		break;
	case STORE_CMD_DELETE:
		rv = apply_delete(s, cmd, &res);
		break;
	default:
		rv = apply_compact(s, cmd, &res);
		break;
	}
	if (rv == 0 && ret_result != NULL)
		*ret_result = res;
	return rv;
}

int store_get(const struct store *s, const char *key, size_t key_len,
	      struct store_kv *ret_kv)
{
	const struct entry *e = tree_find(s, key, key_len);
	if (e == NULL)
		return STORE_ENOENT;
	entry_to_kv(e, ret_kv);
	return 0;
}

/* ------------------------------------------------------------ iteration */

static struct entry *lower_bound(const struct store *s, const char *key,
				 size_t key_len)
{
	struct entry probe = {.key = key, .key_len = key_len};
	struct entry_tree *t = (struct entry_tree *)&s->tree;
	if (key_len == 0)
		return RB_MIN(entry_tree, t);
	return RB_NFIND(entry_tree, t, &probe);
}

void store_iter_seek(const struct store *s, struct store_iter *it,
		     const char *key, size_t key_len)
{
	it->store = s;
	it->node = lower_bound(s, key, key_len);
}

bool store_iter_next(struct store_iter *it, struct store_kv *ret_kv)
{
	struct entry *e = (struct entry *)it->node;
	if (e == NULL)
		return false;
	entry_to_kv(e, ret_kv);
	it->node = RB_NEXT(entry_tree, &it->store->tree, e);
	return true;
}

int store_range(const struct store *s, const char *prefix, size_t prefix_len,
		const char *start_after, size_t start_after_len, size_t limit,
		store_range_cb cb, void *data, bool *ret_more)
{
	struct entry *e;
	size_t n = 0;
	int rv;

	e = lower_bound(s, prefix, prefix_len);
	if (start_after != NULL && start_after_len > 0 &&
	    key_cmp(start_after, start_after_len, prefix, prefix_len) >= 0) {
		e = lower_bound(s, start_after, start_after_len);
		if (e != NULL && key_cmp(e->key, e->key_len, start_after,
					 start_after_len) == 0)
			e = RB_NEXT(entry_tree, &s->tree, e);
	}
	for (; e != NULL; e = RB_NEXT(entry_tree, &s->tree, e)) {
		struct store_kv kv;
		if (!has_prefix(e->key, e->key_len, prefix, prefix_len))
			break;
		if (limit > 0 && n == limit)
			break;
		entry_to_kv(e, &kv);
		rv = cb(&kv, data);
		if (rv != 0)
			return rv;
		n++;
	}
	if (ret_more != NULL)
		*ret_more = e != NULL &&
			    has_prefix(e->key, e->key_len, prefix, prefix_len);
	return 0;
}

/* ------------------------------------------------------------ watches */

int store_watch_new(struct store *s, const char *prefix, size_t prefix_len,
		    uint64_t after_rev, store_watch_cb cb, void *data,
		    struct store_watch **ret_watch)
{
	struct store_watch *w;

	if (after_rev != 0 && after_rev < s->compacted)
		return STORE_EGONE;
	w = STORE_MALLOC(sizeof(*w) + prefix_len);
	if (w == NULL)
		return -ENOMEM;
	memset(w, 0, sizeof(*w));
	w->store = s;
	w->cb = cb;
	w->data = data;
	w->next_rev = (after_rev != 0 ? after_rev : s->rev) + 1;
	w->prefix_len = prefix_len;
	if (prefix_len > 0)
		memcpy(w->prefix, prefix, prefix_len);
	/* At the head, so a watch made inside a callback is not visited by
	 * the loop that is running. */
	LIST_INSERT_HEAD(&s->watches, w, link);
	*ret_watch = w;
	return 0;
}

int store_watch_next(struct store_watch *w, struct store_event *ret_event)
{
	struct store *s = w->store;

	if (w->gone || s == NULL)
		return STORE_EGONE;
	while (w->next_rev <= s->rev) {
		const struct event *ev;
		uint64_t rev = w->next_rev;
		if (rev <= s->compacted) {
			w->gone = true;
			w->armed = false;
			return STORE_EGONE;
		}
		ev = history_at(s, rev);
		w->next_rev++;
		if (has_prefix((const char *)ev->key->data, ev->key->len,
			       w->prefix, w->prefix_len)) {
			event_to_store_event(ev, rev, ret_event);
			return 0;
		}
	}
	w->armed = true;
	return -EAGAIN;
}

uint64_t store_watch_revision(const struct store_watch *w)
{
	return w->next_rev - 1;
}

void store_watch_free(struct store_watch *w)
{
	struct store *s;

	if (w == NULL)
		return;
	s = w->store;
	if (s != NULL) {
		if (s->fire_next == w)
			s->fire_next = LIST_NEXT(w, link);
		LIST_REMOVE(w, link);
	}
	STORE_FREE(w);
}

/* ------------------------------------------------------------ msgpack */

/* A bounded output buffer for msgpack_packer. */
struct wbuf {
	char *data;
	size_t len;
	size_t cap;
};

static int wbuf_write(void *data, const char *buf, size_t len)
{
	struct wbuf *w = data;
	if (len == 0)
		return 0;
	if (len > w->cap - w->len)
		return -1;
	memcpy(w->data + w->len, buf, len);
	w->len += len;
	return 0;
}

/* Upper bounds of encoded sizes, to allocate once. */
#define MP_UINT_MAX 9u
#define MP_BIN_HDR_MAX 5u
#define MP_ARRAY_HDR_MAX 5u

/* The strict reader: every call checks the bounds and the type byte. */
struct rbuf {
	const unsigned char *p;
	const unsigned char *end;
};

static bool rd_need(const struct rbuf *r, size_t n)
{
	return (size_t)(r->end - r->p) >= n;
}

static uint64_t rd_be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	size_t i;
	for (i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

static int rd_uint(struct rbuf *r, uint64_t *v)
{
	size_t n;
	unsigned char t;

	if (!rd_need(r, 1))
		return -EBADMSG;
	t = *r->p;
	if (t <= 0x7f) {
		*v = t;
		r->p++;
		return 0;
	}
	switch (t) {
	case 0xcc:
		n = 1;
		break;
	case 0xcd:
		n = 2;
		break;
	case 0xce:
		n = 4;
		break;
	case 0xcf:
		n = 8;
		break;
	default:
		return -EBADMSG;
	}
	if (!rd_need(r, 1 + n))
		return -EBADMSG;
	*v = rd_be(r->p + 1, n);
	r->p += 1 + n;
	return 0;
}

static int rd_array(struct rbuf *r, uint64_t *count)
{
	size_t n;
	unsigned char t;

	if (!rd_need(r, 1))
		return -EBADMSG;
	t = *r->p;
	if ((t & 0xf0) == 0x90) {
		*count = t & 0x0fu;
		r->p++;
		return 0;
	}
	if (t == 0xdc)
		n = 2;
	else if (t == 0xdd)
		n = 4;
	else
		return -EBADMSG;
	if (!rd_need(r, 1 + n))
		return -EBADMSG;
	*count = rd_be(r->p + 1, n);
	r->p += 1 + n;
	return 0;
}

static int rd_bin(struct rbuf *r, const void **ptr, size_t *len)
{
	size_t n;
	uint64_t l;

	if (!rd_need(r, 1))
		return -EBADMSG;
	switch (*r->p) {
	case 0xc4:
		n = 1;
		break;
	case 0xc5:
		n = 2;
		break;
	case 0xc6:
		n = 4;
		break;
	default:
		return -EBADMSG;
	}
	if (!rd_need(r, 1 + n))
		return -EBADMSG;
	l = rd_be(r->p + 1, n);
	if (!rd_need(r, 1 + n + (size_t)l))
		return -EBADMSG;
	*ptr = r->p + 1 + n;
	*len = (size_t)l;
	r->p += 1 + n + (size_t)l;
	return 0;
}

static int rd_nil(struct rbuf *r)
{
	if (!rd_need(r, 1) || *r->p != 0xc0)
		return -EBADMSG;
	r->p++;
	return 0;
}

/* ------------------------------------------------------------ snapshots */

/* WARNING: this layout is on disk and on the wire (raft snapshots):
 *   [ format = 1, revision, compacted,
 *     [ [key: bin, value: bin, create_rev, mod_rev], ... in key order ] ]
 */
/* Packs that layout into @pk; -1 as soon as its writer fails. */
static int pack_snapshot(const struct store *s, msgpack_packer *pk)
{
	struct entry *e;

	if (msgpack_pack_array(pk, 4) != 0 ||
	    msgpack_pack_uint64(pk, STORE_SNAPSHOT_FORMAT) != 0 ||
	    msgpack_pack_uint64(pk, s->rev) != 0 ||
	    msgpack_pack_uint64(pk, s->compacted) != 0 ||
	    msgpack_pack_array(pk, s->count) != 0)
		return -1;
	RB_FOREACH(e, entry_tree, (struct entry_tree *)&s->tree)
	{
		if (msgpack_pack_array(pk, 4) != 0 ||
		    msgpack_pack_bin_with_body(pk, e->key, e->key_len) != 0 ||
		    msgpack_pack_bin_with_body(pk, e->val->data, e->val->len) != 0 ||
		    msgpack_pack_uint64(pk, e->create_rev) != 0 ||
		    msgpack_pack_uint64(pk, e->mod_rev) != 0)
			return -1;
	}
	return 0;
}

int store_snapshot(const struct store *s, void **ret_buf, size_t *ret_len)
{
	struct wbuf w = {0};
	msgpack_packer pk;
	struct entry *e;
	size_t cap = 1 + 3 * MP_UINT_MAX + MP_ARRAY_HDR_MAX;
	void *shrunk;

	RB_FOREACH(e, entry_tree, (struct entry_tree *)&s->tree)
	{
		cap += 1 + 2 * MP_BIN_HDR_MAX + 2 * MP_UINT_MAX + e->key_len +
		       e->val->len;
	}
	w.data = STORE_MALLOC(cap);
	if (w.data == NULL)
		return -ENOMEM;
	w.cap = cap;
	msgpack_packer_init(&pk, &w, wbuf_write);
	if (pack_snapshot(s, &pk) != 0)
		goto err_overflow;
	/* The bound above is loose by a few bytes per entry; hand back only
	 * what was written when realloc can do it. */
	shrunk = w.len > 0 ? STORE_REALLOC(w.data, w.len) : NULL;
	if (shrunk != NULL)
		w.data = shrunk;
	*ret_buf = w.data;
	*ret_len = w.len;
	return 0;

err_overflow:
	/* The size bound is computed above; getting here is a bug. */
	STORE_FREE(w.data);
	return -EINVAL;
}

/* Buffers packer output and hands it on in chunks. */
struct chunkbuf {
	char *data;
	size_t len, cap;
	store_write_fn write;
	void *wdata;
	int err;
};

static int chunkbuf_flush(struct chunkbuf *b)
{
	if (b->err == 0 && b->len > 0)
		b->err = b->write(b->wdata, b->data, b->len);
	b->len = 0;
	return b->err;
}

static int chunkbuf_write(void *data, const char *buf, size_t len)
{
	struct chunkbuf *b = data;

	while (len > 0) {
		size_t n = b->cap - b->len;
		if (n == 0) {
			if (chunkbuf_flush(b) != 0)
				return -1;
			continue;
		}
		if (n > len)
			n = len;
		memcpy(b->data + b->len, buf, n);
		b->len += n;
		buf += n;
		len -= n;
	}
	return b->err != 0 ? -1 : 0;
}

int store_snapshot_stream(const struct store *s, size_t chunk,
			  store_write_fn write, void *data)
{
	struct chunkbuf b = {0};
	msgpack_packer pk;
	int rv;

	if (chunk < 64)
		return -EINVAL;
	b.data = STORE_MALLOC(chunk);
	if (b.data == NULL)
		return -ENOMEM;
	b.cap = chunk;
	b.write = write;
	b.wdata = data;
	msgpack_packer_init(&pk, &b, chunkbuf_write);
	if (pack_snapshot(s, &pk) == 0)
		chunkbuf_flush(&b);
	rv = b.err;
	STORE_FREE(b.data);
	return rv;
}

/* Decodes the entries into @t (empty). Fails with -EBADMSG or -ENOMEM,
 * leaving whatever was inserted for the caller to clear. */
static int restore_entries(struct rbuf *r, uint64_t count, uint64_t rev,
			   struct entry_tree *t, uint64_t *ret_bytes)
{
	const struct entry *prev = NULL;
	uint64_t i;

	*ret_bytes = 0;
	for (i = 0; i < count; i++) {
		uint64_t n, create_rev, mod_rev;
		const void *key, *val;
		size_t key_len, val_len;
		struct entry *e;

		if (rd_array(r, &n) != 0 || n != 4 ||
		    rd_bin(r, &key, &key_len) != 0 ||
		    rd_bin(r, &val, &val_len) != 0 ||
		    rd_uint(r, &create_rev) != 0 || rd_uint(r, &mod_rev) != 0)
			return -EBADMSG;
		if (key_len == 0 || create_rev == 0 || create_rev > mod_rev ||
		    mod_rev > rev)
			return -EBADMSG;
		/* Strictly increasing keys: ordered and without duplicates. */
		if (prev != NULL &&
		    key_cmp(prev->key, prev->key_len, key, key_len) >= 0)
			return -EBADMSG;
		e = entry_new(key, key_len);
		if (e == NULL)
			return -ENOMEM;
		e->val = blob_new(val, val_len);
		if (e->val == NULL) {
			entry_free(e);
			return -ENOMEM;
		}
		e->create_rev = create_rev;
		e->mod_rev = mod_rev;
		/* Keys arrive sorted, so the insert always goes rightmost. */
		RB_INSERT(entry_tree, t, e);
		*ret_bytes += key_len + val_len;
		prev = e;
	}
	return 0;
}

int store_restore(struct store *s, const void *buf, size_t len)
{
	struct rbuf r = {buf, (const unsigned char *)buf + len};
	struct entry_tree fresh = RB_INITIALIZER(&fresh);
	uint64_t n, format, rev, compacted, count, bytes;
	struct store_watch *w;
	int rv;

	if (buf == NULL)
		return -EBADMSG;
	if (rd_array(&r, &n) != 0 || n < 1 || rd_uint(&r, &format) != 0 ||
	    format != STORE_SNAPSHOT_FORMAT || n != 4 ||
	    rd_uint(&r, &rev) != 0 || rd_uint(&r, &compacted) != 0 ||
	    compacted > rev || rd_array(&r, &count) != 0)
		return -EBADMSG;
	/* Each entry takes at least 5 bytes: reject absurd counts early. */
	if (count > (uint64_t)(r.end - r.p) / 5)
		return -EBADMSG;
	rv = restore_entries(&r, count, rev, &fresh, &bytes);
	if (rv != 0)
		goto err_after_tree;
	if (r.p != r.end) {
		rv = -EBADMSG;
		goto err_after_tree;
	}

	history_clear(s);
	tree_clear(&s->tree);
	s->tree = fresh;
	s->count = (size_t)count;
	s->bytes = bytes;
	s->rev = rev;
	/* The history is not in the snapshot: it restarts at the revision. */
	s->compacted = rev;
	s->time_ms = 0;
	LIST_FOREACH(w, &s->watches, link)
	{
		w->gone = true;
	}
	watches_fire(s, NULL, 0);
	return 0;

err_after_tree:
	tree_clear(&fresh);
	return rv;
}

/* ------------------------------------------------------------ commands */

/* WARNING: this layout is in the Raft log:
 *   [ format = 1, type, cond, mod_rev, time_ms, key: bin,
 *     value: bin (PUT) | nil ]
 * followed by zeros up to a multiple of 8 bytes.
 */
#define CMD_FIELDS 7

int store_cmd_encode(const struct store_cmd *cmd, void *(*alloc)(size_t),
		     void **ret_buf, size_t *ret_len)
{
	struct wbuf w = {0};
	msgpack_packer pk;
	size_t cap, padded;
	size_t val_len = cmd->type == STORE_CMD_PUT ? cmd->val_len : 0;
	int rv = 0;

	if (!cmd_valid(cmd))
		return -EINVAL;
	cap = 1 + 3 + 2 * MP_UINT_MAX + 2 * MP_BIN_HDR_MAX + cmd->key_len +
	      val_len;
	cap = (cap + 7) & ~(size_t)7;
	w.data = alloc != NULL ? alloc(cap) : STORE_MALLOC(cap);
	if (w.data == NULL)
		return -ENOMEM;
	w.cap = cap;
	msgpack_packer_init(&pk, &w, wbuf_write);
	rv |= msgpack_pack_array(&pk, CMD_FIELDS);
	rv |= msgpack_pack_uint64(&pk, STORE_CMD_FORMAT);
	rv |= msgpack_pack_uint64(&pk, (uint64_t)cmd->type);
	rv |= msgpack_pack_uint64(&pk, (uint64_t)cmd->cond);
	rv |= msgpack_pack_uint64(&pk, cmd->mod_rev);
	rv |= msgpack_pack_uint64(&pk, cmd->time_ms);
	rv |= msgpack_pack_bin_with_body(&pk, cmd->key, cmd->key_len);
	if (cmd->type == STORE_CMD_PUT)
		rv |= msgpack_pack_bin_with_body(&pk, cmd->val, val_len);
	else
		rv |= msgpack_pack_nil(&pk);
	/* The bound covers every field, so the packer cannot fail. */
	(void)rv;
	padded = (w.len + 7) & ~(size_t)7;
	memset(w.data + w.len, 0, padded - w.len);
	*ret_buf = w.data;
	*ret_len = padded;
	return 0;
}

int store_cmd_decode(const void *buf, size_t len, struct store_cmd *ret_cmd)
{
	struct rbuf r = {buf, (const unsigned char *)buf + len};
	struct store_cmd cmd = {0};
	uint64_t n, format, type, cond;
	const void *key, *val = NULL;
	size_t key_len, val_len = 0;

	if (buf == NULL || len == 0 || len % 8 != 0)
		return -EBADMSG;
	if (rd_array(&r, &n) != 0 || n < 1 || rd_uint(&r, &format) != 0 ||
	    format != STORE_CMD_FORMAT || n != CMD_FIELDS ||
	    rd_uint(&r, &type) != 0 || rd_uint(&r, &cond) != 0 ||
	    rd_uint(&r, &cmd.mod_rev) != 0 || rd_uint(&r, &cmd.time_ms) != 0 ||
	    rd_bin(&r, &key, &key_len) != 0)
		return -EBADMSG;
	if (type == STORE_CMD_PUT) {
		if (rd_bin(&r, &val, &val_len) != 0)
			return -EBADMSG;
	} else if (rd_nil(&r) != 0) {
		return -EBADMSG;
	}
	/* Only the padding may follow: fewer than 8 zero bytes. */
	if ((size_t)(r.end - r.p) >= 8)
		return -EBADMSG;
	for (; r.p < r.end; r.p++)
		if (*r.p != 0)
			return -EBADMSG;
	if (type > STORE_CMD_COMPACT || cond > STORE_COND_MOD_REV)
		return -EBADMSG;
	cmd.type = (enum store_cmd_type)type;
	cmd.cond = (enum store_cond)cond;
	/* An empty key still needs a non-NULL pointer for cmd_valid(). */
	cmd.key = key_len > 0 ? key : NULL;
	cmd.key_len = key_len;
	cmd.val = val;
	cmd.val_len = val_len;
	if (!cmd_valid(&cmd))
		return -EBADMSG;
	*ret_cmd = cmd;
	return 0;
}
