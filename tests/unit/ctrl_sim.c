/* The deterministic controller simulation (see ctrl_sim.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/api/defaults.h"
#include "src/api/object.h"
#include "src/api/selector.h"
#include "src/api/validate.h"
#include "src/lib/buf.h"
#include "src/lib/codec.h"
#include "tests/unit/ctrl_sim.h"

#define SIM_EPOCH_MS 1767225600000ULL /* 2026-01-01T00:00:00Z */

struct sim_write {
	struct sim_write *next;
	uint64_t due;
	struct store_cmd cmd;
	char *key;
	void *val;
	ctrl_write_cb cb;
	void *arg;
	bool fail;
};

struct ctrl_sim {
	struct store *store;
	struct ctrl_manager *m;
	uint64_t now;
	uint64_t rng;
	struct sim_write *head, *tail; /* in proposal order, due ascending */
	bool kubelet;
	bool fail_writes;
	unsigned pod_ip;
};

static void *xmalloc(size_t n)
{
	void *p = malloc(n > 0 ? n : 1);
	if (p == NULL)
		abort();
	return p;
}

static uint64_t env_now(void *data)
{
	return ((struct ctrl_sim *)data)->now;
}

/* splitmix64: deterministic and good enough for names. */
static uint64_t env_random(void *data)
{
	struct ctrl_sim *s = data;
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int env_apply(void *data, const struct store_cmd *cmd, ctrl_write_cb cb, void *arg)
{
	struct ctrl_sim *s = data;
	struct sim_write *w = calloc(1, sizeof(*w));

	if (w == NULL)
		abort();
	w->cmd = *cmd;
	w->key = xmalloc(cmd->key_len);
	memcpy(w->key, cmd->key, cmd->key_len);
	w->cmd.key = w->key;
	if (cmd->val != NULL) {
		w->val = xmalloc(cmd->val_len);
		memcpy(w->val, cmd->val, cmd->val_len);
		w->cmd.val = w->val;
	}
	w->due = s->now + 1;
	w->cb = cb;
	w->arg = arg;
	w->fail = s->fail_writes;
	if (s->tail != NULL)
		s->tail->next = w;
	else
		s->head = w;
	s->tail = w;
	return 0;
}

struct ctrl_sim *ctrl_sim_new_config(const struct ctrl_ops *const *ops,
				     const struct ctrl_config *config)
{
	struct ctrl_sim *s = calloc(1, sizeof(*s));
	struct store_config sc;
	struct ctrl_env env = {0};

	if (s == NULL)
		abort();
	store_config_init(&sc);
	if (store_new(&sc, &s->store) != 0)
		abort();
	s->now = SIM_EPOCH_MS;
	s->rng = 42;
	env.data = s;
	env.now_ms = env_now;
	env.random = env_random;
	env.apply = env_apply;
	if (ctrl_manager_new(&env, config, s->store, ops, &s->m) != 0)
		abort();
	return s;
}

struct ctrl_sim *ctrl_sim_new(const struct ctrl_ops *const *ops)
{
	return ctrl_sim_new_config(ops, NULL);
}

static void write_free(struct sim_write *w)
{
	free(w->key);
	free(w->val);
	free(w);
}

void ctrl_sim_free(struct ctrl_sim *s)
{
	struct sim_write *w, *next;

	if (s == NULL)
		return;
	ctrl_manager_stop(s->m);
	/* Outstanding writes complete (into nothing) before the manager goes. */
	for (w = s->head; w != NULL; w = next) {
		next = w->next;
		w->cb(w->arg, -ESHUTDOWN, NULL);
		write_free(w);
	}
	ctrl_manager_free(s->m);
	store_free(s->store);
	free(s);
}

struct store *ctrl_sim_store(struct ctrl_sim *s)
{
	return s->store;
}

struct ctrl_manager *ctrl_sim_manager(struct ctrl_sim *s)
{
	return s->m;
}

uint64_t ctrl_sim_now(struct ctrl_sim *s)
{
	return s->now;
}

void ctrl_sim_start(struct ctrl_sim *s)
{
	if (ctrl_manager_start(s->m) != 0)
		abort();
}

void ctrl_sim_stop(struct ctrl_sim *s)
{
	ctrl_manager_stop(s->m);
}

void ctrl_sim_kubelet(struct ctrl_sim *s, bool on)
{
	s->kubelet = on;
}

void ctrl_sim_fail_writes(struct ctrl_sim *s, bool on)
{
	s->fail_writes = on;
}

/* ------------------------------------------------------------ the "API" */

static const struct api_kind *kind_of(const json_t *obj)
{
	const char *av = json_string_value(json_object_get(obj, "apiVersion"));
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	char group[128];
	const char *slash;

	if (av == NULL || kind == NULL)
		return NULL;
	slash = strchr(av, '/');
	if (slash == NULL)
		return api_kind_by_gvk("", av, kind);
	snprintf(group, sizeof(group), "%.*s", (int)(slash - av), av);
	return api_kind_by_gvk(group, slash + 1, kind);
}

static const char *meta_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

static int put(struct ctrl_sim *s, const char *key, json_t *obj, enum store_cond cond,
	       uint64_t mod_rev)
{
	struct buf b = {0};
	struct store_cmd cmd = {0};
	struct store_result res;
	int rv;

	json_object_del(json_object_get(obj, "metadata"), "resourceVersion");
	if (codec_tree_to_msgpack(obj, &b, NULL) != 0)
		abort();
	cmd.type = STORE_CMD_PUT;
	cmd.cond = cond;
	cmd.mod_rev = mod_rev;
	cmd.time_ms = s->now;
	cmd.key = key;
	cmd.key_len = strlen(key);
	cmd.val = b.data;
	cmd.val_len = b.len;
	rv = store_apply(s->store, &cmd, &res);
	buf_free(&b);
	return rv != 0 ? rv : res.status;
}

static int del(struct ctrl_sim *s, const char *key, uint64_t mod_rev)
{
	struct store_cmd cmd = {0};
	struct store_result res;
	int rv;

	cmd.type = STORE_CMD_DELETE;
	cmd.cond = STORE_COND_MOD_REV;
	cmd.mod_rev = mod_rev;
	cmd.time_ms = s->now;
	cmd.key = key;
	cmd.key_len = strlen(key);
	rv = store_apply(s->store, &cmd, &res);
	return rv != 0 ? rv : res.status;
}

int ctrl_sim_apply(struct ctrl_sim *s, const json_t *src)
{
	const struct api_kind *k = kind_of(src);
	json_t *obj, *old = NULL, *meta, *ometa, *v;
	struct store_kv kv;
	struct api_errors e;
	char key[512], now[32];
	const char *ns, *name;
	int rv, n;
	static const char *const server_meta[] = {"uid", "creationTimestamp", "deletionTimestamp",
						  "deletionGracePeriodSeconds", "generation", NULL};

	if (k == NULL)
		return -EINVAL;
	obj = json_deep_copy(src);
	meta = json_object_get(obj, "metadata");
	if (!json_is_object(meta)) {
		json_decref(obj);
		return -EINVAL;
	}
	if (k->namespaced && meta_str(obj, "namespace") == NULL)
		json_object_set_new(meta, "namespace", json_string("default"));
	ns = meta_str(obj, "namespace");
	name = meta_str(obj, "name");
	ctrl_rfc3339(s->now, now, sizeof(now));
	n = name != NULL ? ctrl_key(k, ns, name, key, sizeof(key)) : -1;
	if (n > 0 && store_get(s->store, key, (size_t)n, &kv) == 0) {
		old = ctrl_decode(kv.val, kv.val_len, 0);
		ometa = json_object_get(old, "metadata");
		for (size_t i = 0; server_meta[i] != NULL; i++) {
			v = json_object_get(ometa, server_meta[i]);
			if (v != NULL)
				json_object_set(meta, server_meta[i], v);
			else
				json_object_del(meta, server_meta[i]);
		}
		if (json_object_get(obj, "status") == NULL && json_object_get(old, "status") != NULL)
			json_object_set(obj, "status", json_object_get(old, "status"));
		api_default(k, obj);
		if (api_object_prepare_update(k, old, obj))
			rv = del(s, key, kv.mod_rev);
		else
			rv = put(s, key, obj, STORE_COND_MOD_REV, kv.mod_rev);
		json_decref(old);
		json_decref(obj);
		return rv;
	}
	if (api_object_prepare_create(k, obj, now, env_random(s), env_random(s), env_random(s)) !=
	    0) {
		json_decref(obj);
		return -ENOMEM;
	}
	api_errors_init(&e);
	rv = api_validate(k, obj, 0, &e);
	if (rv != 0) {
		char *msg = api_errors_message(&e, k->kind, meta_str(obj, "name"));
		fprintf(stderr, "# ctrl_sim_apply: %s\n", msg != NULL ? msg : "invalid");
		free(msg);
		api_errors_close(&e);
		json_decref(obj);
		return -EINVAL;
	}
	api_errors_close(&e);
	n = ctrl_key(k, meta_str(obj, "namespace"), meta_str(obj, "name"), key, sizeof(key));
	rv = n < 0 ? n : put(s, key, obj, STORE_COND_ABSENT, 0);
	json_decref(obj);
	return rv;
}

int ctrl_sim_apply_yaml(struct ctrl_sim *s, const char *yaml)
{
	json_t *docs = NULL, *doc;
	size_t i;
	int rv = 0;

	if (codec_yaml_to_tree(yaml, strlen(yaml), 0, &docs, NULL) != 0)
		return -EINVAL;
	json_array_foreach(docs, i, doc)
	{
		if (json_is_null(doc))
			continue;
		rv = ctrl_sim_apply(s, doc);
		if (rv != 0)
			break;
	}
	json_decref(docs);
	return rv;
}

int ctrl_sim_delete(struct ctrl_sim *s, const char *plural, const char *ns, const char *name,
		    int64_t grace_s)
{
	const struct api_kind *k = NULL;
	struct store_kv kv;
	json_t *obj;
	char key[512], now[32];
	int n, action, rv;

	for (size_t i = 0; i < api_kind_count(); i++) {
		if (strcmp(api_kind_at(i)->plural, plural) == 0)
			k = api_kind_at(i);
	}
	if (k == NULL)
		return -EINVAL;
	n = ctrl_key(k, ns, name, key, sizeof(key));
	if (n < 0 || store_get(s->store, key, (size_t)n, &kv) != 0)
		return -ENOENT;
	obj = ctrl_decode(kv.val, kv.val_len, 0);
	ctrl_rfc3339(s->now, now, sizeof(now));
	action = api_object_prepare_delete(k, obj, NULL, grace_s >= 0, grace_s, now);
	if (action == API_DELETE_NOW)
		rv = del(s, key, kv.mod_rev);
	else if (action == API_DELETE_MARK)
		rv = put(s, key, obj, STORE_COND_MOD_REV, kv.mod_rev);
	else
		rv = action < 0 ? action : 0;
	json_decref(obj);
	return rv;
}

/* ------------------------------------------------------------ reads */

static const struct api_kind *kind_of_plural(const char *plural)
{
	for (size_t i = 0; i < api_kind_count(); i++) {
		if (strcmp(api_kind_at(i)->plural, plural) == 0)
			return api_kind_at(i);
	}
	return NULL;
}

json_t *ctrl_sim_get(struct ctrl_sim *s, const char *plural, const char *ns, const char *name)
{
	const struct api_kind *k = kind_of_plural(plural);
	struct store_kv kv;
	char key[512];
	int n;

	if (k == NULL)
		return NULL;
	n = ctrl_key(k, ns, name, key, sizeof(key));
	if (n < 0 || store_get(s->store, key, (size_t)n, &kv) != 0)
		return NULL;
	return ctrl_decode(kv.val, kv.val_len, kv.mod_rev);
}

struct list_ctx {
	json_t *arr;
	struct api_selector *sel;
};

static int list_cb(const struct store_kv *kv, void *data)
{
	struct list_ctx *l = data;
	json_t *obj = ctrl_decode(kv->val, kv->val_len, kv->mod_rev);

	if (obj == NULL)
		return 0;
	if (l->sel == NULL ||
	    api_selector_match_json(l->sel, api_json_path(obj, "metadata.labels")))
		json_array_append(l->arr, obj);
	json_decref(obj);
	return 0;
}

json_t *ctrl_sim_list(struct ctrl_sim *s, const char *plural, const char *ns,
		      const char *selector)
{
	const struct api_kind *k = kind_of_plural(plural);
	struct list_ctx l = {json_array(), NULL};
	char prefix[512];
	int n;

	if (k == NULL)
		return l.arr;
	if (selector != NULL && selector[0] != '\0' &&
	    api_selector_parse(selector, &l.sel, NULL, 0) != 0)
		abort();
	n = ctrl_key(k, ns, NULL, prefix, sizeof(prefix));
	if (n > 0)
		store_range(s->store, prefix, (size_t)n, NULL, 0, 0, list_cb, &l, NULL);
	api_selector_free(l.sel);
	return l.arr;
}

size_t ctrl_sim_count(struct ctrl_sim *s, const char *plural, const char *ns,
		      const char *selector)
{
	json_t *arr = ctrl_sim_list(s, plural, ns, selector);
	size_t n = json_array_size(arr);

	json_decref(arr);
	return n;
}

/* ------------------------------------------------------------ time */

/* The hollow kubelet: one pass over the bound pods. */
static bool kubelet_step(struct ctrl_sim *s)
{
	json_t *pods = ctrl_sim_list(s, "pods", NULL, NULL), *pod, *st;
	bool changed = false;
	size_t i;
	char now[32], ip[32], key[512];
	const struct api_kind *pk = kind_of_plural("pods");

	ctrl_rfc3339(s->now, now, sizeof(now));
	json_array_foreach(pods, i, pod)
	{
		const char *node = ctrl_str(pod, "spec.nodeName");
		uint64_t rv = 0;
		if (node == NULL || node[0] == '\0')
			continue;
		sscanf(meta_str(pod, "resourceVersion"), "%" SCNu64, &rv);
		ctrl_key(pk, meta_str(pod, "namespace"), meta_str(pod, "name"), key, sizeof(key));
		if (meta_str(pod, "deletionTimestamp") != NULL) {
			if (del(s, key, rv) == 0)
				changed = true;
			continue;
		}
		const char *phase = ctrl_str(pod, "status.phase");
		if (phase != NULL && strcmp(phase, "Running") == 0 && ctrl_pod_ready(pod))
			continue;
		st = json_object_get(pod, "status");
		if (!json_is_object(st)) {
			st = json_object();
			json_object_set_new(pod, "status", st);
		}
		snprintf(ip, sizeof(ip), "10.244.%u.%u", (s->pod_ip / 250) % 250,
			 s->pod_ip % 250 + 1);
		s->pod_ip++;
		json_object_set_new(st, "phase", json_string("Running"));
		json_object_set_new(st, "podIP", json_string(ip));
		json_object_set_new(st, "hostIP", json_string("192.0.2.1"));
		json_object_set_new(st, "startTime", json_string(now));
		json_object_set_new(
			st, "conditions",
			json_pack("[{s:s,s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s}]",
				  "type", "Initialized", "status", "True", "lastTransitionTime",
				  now, "type", "Ready", "status", "True", "lastTransitionTime",
				  now, "type", "ContainersReady", "status", "True",
				  "lastTransitionTime", now, "type", "PodScheduled", "status",
				  "True", "lastTransitionTime", now));
		if (put(s, key, pod, STORE_COND_MOD_REV, rv) == 0)
			changed = true;
	}
	json_decref(pods);
	return changed;
}

/* Completes the writes due by now; true when any did. */
static bool complete_writes(struct ctrl_sim *s)
{
	bool any = false;

	while (s->head != NULL && s->head->due <= s->now) {
		struct sim_write *w = s->head;
		struct store_result res;
		s->head = w->next;
		if (s->head == NULL)
			s->tail = NULL;
		if (w->fail) {
			w->cb(w->arg, -EIO, NULL);
		} else {
			if (store_apply(s->store, &w->cmd, &res) != 0)
				abort();
			w->cb(w->arg, 0, &res);
		}
		write_free(w);
		any = true;
	}
	return any;
}

static void settle(struct ctrl_sim *s)
{
	bool progress = true;
	unsigned rounds = 0;

	while (progress && rounds++ < 100000) {
		progress = false;
		while (ctrl_manager_run(s->m, 0))
			;
		if (s->kubelet && kubelet_step(s))
			progress = true;
		if (complete_writes(s))
			progress = true;
		/* Events of the kubelet's and the writes' changes. */
		if (progress)
			ctrl_manager_run(s->m, 0);
	}
}

void ctrl_sim_run(struct ctrl_sim *s, uint64_t ms)
{
	uint64_t end = s->now + ms, next;

	for (;;) {
		settle(s);
		next = ctrl_manager_next(s->m);
		if (s->head != NULL && s->head->due < next)
			next = s->head->due;
		if (next > end)
			break;
		s->now = next > s->now ? next : s->now + 1;
	}
	s->now = end;
	settle(s);
}

bool ctrl_sim_run_until(struct ctrl_sim *s, uint64_t max_ms,
			bool (*pred)(struct ctrl_sim *s, void *data), void *data)
{
	uint64_t end = s->now + max_ms, next;

	for (;;) {
		settle(s);
		if (pred(s, data))
			return true;
		next = ctrl_manager_next(s->m);
		if (s->head != NULL && s->head->due < next)
			next = s->head->due;
		if (next > end) {
			s->now = end;
			settle(s);
			return pred(s, data);
		}
		if (next > s->now)
			s->now = next;
		else
			s->now++; /* never stall on a past timer */
	}
}

/* ------------------------------------------------------------ test helpers */

struct ctrl_sim *ctrl_sim_new_ns(const struct ctrl_ops *const *ops, const char *ns)
{
	struct ctrl_sim *s = ctrl_sim_new(ops);

	if (ctrl_sim_apply_yamlf(s, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n",
				 ns) != 0)
		abort();
	return s;
}

int ctrl_sim_apply_yamlf(struct ctrl_sim *s, const char *fmt, ...)
{
	char yaml[8192];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(yaml, sizeof(yaml), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(yaml))
		abort(); /* a test's YAML too long */
	return ctrl_sim_apply_yaml(s, yaml);
}

bool ctrl_sim_exists(struct ctrl_sim *s, const char *plural, const char *ns, const char *name)
{
	json_t *o = ctrl_sim_get(s, plural, ns, name);

	json_decref(o);
	return o != NULL;
}

bool ctrl_sim_deleting(struct ctrl_sim *s, const char *plural, const char *ns,
		       const char *name)
{
	json_t *o = ctrl_sim_get(s, plural, ns, name);
	bool r = o != NULL && ctrl_str(o, "metadata.deletionTimestamp") != NULL;

	json_decref(o);
	return r;
}

int64_t ctrl_sim_int(struct ctrl_sim *s, const char *plural, const char *ns, const char *name,
		     const char *path, int64_t dflt)
{
	json_t *o = ctrl_sim_get(s, plural, ns, name);
	int64_t v = ctrl_int(o, path, dflt);

	json_decref(o);
	return v;
}

size_t ctrl_sim_events(struct ctrl_sim *s, const char *ns, const char *involved,
		       const char *reason, char *msg, size_t size)
{
	json_t *evs = ctrl_sim_list(s, "events", ns, NULL), *e;
	size_t i, n = 0;

	json_array_foreach(evs, i, e)
	{
		const char *r = ctrl_str(e, "reason");
		const char *o = ctrl_str(e, "involvedObject.name");
		const char *m = ctrl_str(e, "message");
		if (r == NULL || strcmp(r, reason) != 0 ||
		    (involved != NULL && (o == NULL || strcmp(o, involved) != 0)))
			continue;
		n++;
		if (msg != NULL)
			snprintf(msg, size, "%s", m != NULL ? m : "");
	}
	json_decref(evs);
	return n;
}

json_t *ctrl_sim_path(const json_t *obj, const char *path)
{
	char buf[256], *save = NULL;
	json_t *cur = (json_t *)obj;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *seg = strtok_r(buf, ".", &save); seg && cur; seg = strtok_r(NULL, ".", &save)) {
		if (json_is_array(cur))
			cur = json_array_get(cur, strtoul(seg, NULL, 10));
		else
			cur = json_object_get(cur, seg);
	}
	return cur;
}

const char *ctrl_sim_path_str(const json_t *obj, const char *path)
{
	return json_string_value(ctrl_sim_path(obj, path));
}
