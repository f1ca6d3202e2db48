/* What controllers share: reads, writes with the API's semantics, events,
 * time and small tree helpers. See ctrl.h. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/api/object.h"
#include "src/api/validate.h"
#include "src/ctrl/ctrl.h"
#include "src/ctrl/podtemplate.h"
#include "src/ctrl/internal.h"
#include "src/lib/buf.h"
#include "src/lib/codec.h"
#include "src/lib/log.h"

/* ------------------------------------------------------------ time */

void ctrl_rfc3339(uint64_t ms, char *buf, size_t size)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int ctrl_parse_time(const char *s, uint64_t *ret_ms)
{
	int64_t sec;
	const char *dot;
	uint64_t frac = 0, scale = 1000;

	if (s == NULL || api_parse_time(s, &sec) != 0 || sec < 0)
		return -EINVAL;
	/* Milliseconds from a fraction ("...:05.123456Z"), when present. */
	dot = strchr(s, '.');
	if (dot != NULL) {
		for (dot++; *dot >= '0' && *dot <= '9' && scale > 1; dot++) {
			scale /= 10;
			frac += (uint64_t)(*dot - '0') * scale;
		}
	}
	*ret_ms = (uint64_t)sec * 1000 + frac;
	return 0;
}

void ctrl_log(const struct ctrl *c, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_printf((enum log_level)level, "controller %s: %s", ctrl__name(c), msg);
}

/* ------------------------------------------------------------ reads */

int ctrl_key(const struct api_kind *k, const char *ns, const char *name, char *buf, size_t size)
{
	int n;

	if (k->namespaced && ns != NULL)
		n = name != NULL ? snprintf(buf, size, "/registry/%s/%s/%s", k->plural, ns, name)
				 : snprintf(buf, size, "/registry/%s/%s/", k->plural, ns);
	else
		n = name != NULL ? snprintf(buf, size, "/registry/%s/%s", k->plural, name)
				 : snprintf(buf, size, "/registry/%s/", k->plural);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return n;
}

json_t *ctrl_decode(const void *val, size_t len, uint64_t mod_rev)
{
	json_t *tree = NULL, *meta;
	char rv[24];

	if (codec_msgpack_to_tree(val, len, &tree, NULL) != 0)
		return NULL;
	if (!json_is_object(tree)) {
		json_decref(tree);
		return NULL;
	}
	if (mod_rev != 0) {
		meta = json_object_get(tree, "metadata");
		if (!json_is_object(meta)) {
			meta = json_object();
			json_object_set_new(tree, "metadata", meta);
		}
		snprintf(rv, sizeof(rv), "%" PRIu64, mod_rev);
		json_object_set_new(meta, "resourceVersion", json_string(rv));
	}
	return tree;
}

json_t *ctrl_get(struct ctrl *c, const struct api_kind *k, const char *ns, const char *name,
		 uint64_t *ret_mod_rev)
{
	struct store_kv kv;
	char key[512];
	int n = ctrl_key(k, ns, name, key, sizeof(key));

	if (n < 0 || store_get(ctrl_store(c), key, (size_t)n, &kv) != 0)
		return NULL;
	if (ret_mod_rev != NULL)
		*ret_mod_rev = kv.mod_rev;
	return ctrl_decode(kv.val, kv.val_len, kv.mod_rev);
}

int ctrl_list(struct ctrl *c, const struct api_kind *k, const char *ns,
	      int (*cb)(const struct store_kv *kv, void *data), void *data)
{
	char prefix[512];
	int n = ctrl_key(k, ns, NULL, prefix, sizeof(prefix));

	if (n < 0)
		return n;
	return store_range(ctrl_store(c), prefix, (size_t)n, NULL, 0, 0, cb, data, NULL);
}

/* ------------------------------------------------------------ writes */

static const char *meta_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

/* Encodes @obj without metadata.resourceVersion into @out. */
static int encode(json_t *obj, struct buf *out)
{
	json_t *meta = json_object_get(obj, "metadata");

	if (json_is_object(meta))
		json_object_del(meta, "resourceVersion");
	return codec_tree_to_msgpack(obj, out, NULL) != 0 ? -ENOMEM : 0;
}

static int propose(struct ctrl *c, enum store_cmd_type type, enum store_cond cond,
		   uint64_t mod_rev, const char *key, size_t key_len, const struct buf *val,
		   const char *requeue)
{
	struct store_cmd cmd = {0};

	cmd.type = type;
	cmd.cond = cond;
	cmd.mod_rev = mod_rev;
	cmd.time_ms = ctrl_now_ms(c);
	cmd.key = key;
	cmd.key_len = key_len;
	if (val != NULL) {
		cmd.val = val->data;
		cmd.val_len = val->len;
	}
	return ctrl__propose(c, &cmd, requeue);
}

/* Controllers' writes must be well-formed objects. The update rules
 * (immutable fields) are not applied: the scheduler binds by setting
 * spec.nodeName, which only pods/binding may do for users. */
static int check_valid(struct ctrl *c, const struct api_kind *k, const json_t *obj)
{
	struct api_errors e;
	int rv;

	api_errors_init(&e);
	rv = api_validate(k, obj, 0, &e);
	if (rv == -ENOMEM) {
		api_errors_close(&e);
		return rv;
	}
	if (rv != 0 || e.n > 0) {
		char *msg = api_errors_message(&e, k->kind, meta_str(obj, "name"));
		ctrl_log(c, LOG_LEVEL_WARN, "refusing to write an invalid object: %s",
			 msg != NULL ? msg : "(no message)");
		free(msg);
		rv = -EINVAL;
	}
	api_errors_close(&e);
	return rv;
}

/* An absent or terminating namespace takes no new objects. */
static bool namespace_open(struct ctrl *c, const char *ns)
{
	const struct api_kind *nk = api_kind_by_resource("", "v1", "namespaces");
	struct store_kv kv;
	char key[300];
	const void *v;
	size_t vlen;
	int n = ctrl_key(nk, NULL, ns, key, sizeof(key));

	if (n < 0 || store_get(ctrl_store(c), key, (size_t)n, &kv) != 0)
		return false;
	return codec_msgpack_get(kv.val, kv.val_len, "metadata.deletionTimestamp", &v, &vlen) !=
	       0;
}

int ctrl_create(struct ctrl *c, const struct api_kind *k, const json_t *src,
		const char *requeue)
{
	json_t *obj = json_deep_copy(src), *meta;
	struct buf val = {0};
	char now[32], key[512];
	const char *ns, *name;
	int n, rv;

	if (obj == NULL)
		return -ENOMEM;
	meta = json_object_get(obj, "metadata");
	ns = json_string_value(json_object_get(meta, "namespace"));
	if (k->namespaced && (ns == NULL || ns[0] == '\0')) {
		rv = -EINVAL;
		goto out;
	}
	if (k->namespaced && !namespace_open(c, ns)) {
		rv = -ENOENT;
		goto out;
	}
	ctrl_rfc3339(ctrl_now_ms(c), now, sizeof(now));
	rv = api_object_prepare_create(k, obj, now, ctrl_random(c), ctrl_random(c),
				       ctrl_random(c));
	if (rv != 0)
		goto out;
	rv = check_valid(c, k, obj);
	if (rv != 0)
		goto out;
	name = meta_str(obj, "name");
	n = ctrl_key(k, ns, name, key, sizeof(key));
	if (n < 0) {
		rv = n;
		goto out;
	}
	rv = encode(obj, &val);
	if (rv == 0)
		rv = propose(c, STORE_CMD_PUT, STORE_COND_ABSENT, 0, key, (size_t)n, &val,
			     requeue);
out:
	buf_free(&val);
	json_decref(obj);
	return rv;
}

int ctrl_update(struct ctrl *c, const struct api_kind *k, const json_t *src,
		const char *requeue)
{
	json_t *obj = NULL, *old = NULL;
	struct store_kv kv;
	struct buf val = {0};
	const char *rvs = meta_str(src, "resourceVersion"), *ns = meta_str(src, "namespace");
	char key[512];
	uint64_t mod_rev;
	int n, rv;

	if (rvs == NULL || sscanf(rvs, "%" SCNu64, &mod_rev) != 1)
		return -EINVAL;
	n = ctrl_key(k, ns, meta_str(src, "name"), key, sizeof(key));
	if (n < 0)
		return n;
	if (store_get(ctrl_store(c), key, (size_t)n, &kv) != 0)
		return -ENOENT;
	if (kv.mod_rev != mod_rev) {
		/* Stale read: the newer state is on its way as an event. */
		if (requeue != NULL)
			ctrl_enqueue(c, requeue);
		return 0;
	}
	old = ctrl_decode(kv.val, kv.val_len, 0);
	obj = json_deep_copy(src);
	if (old == NULL || obj == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	json_object_del(json_object_get(obj, "metadata"), "resourceVersion");
	if (api_object_prepare_update(k, old, obj)) {
		rv = propose(c, STORE_CMD_DELETE, STORE_COND_MOD_REV, mod_rev, key, (size_t)n,
			     NULL, requeue);
		goto out;
	}
	rv = check_valid(c, k, obj);
	if (rv != 0)
		goto out;
	rv = encode(obj, &val);
	if (rv != 0)
		goto out;
	if (val.len == kv.val_len && memcmp(val.data, kv.val, val.len) == 0)
		goto out; /* nothing changed */
	rv = propose(c, STORE_CMD_PUT, STORE_COND_MOD_REV, mod_rev, key, (size_t)n, &val,
		     requeue);
out:
	buf_free(&val);
	json_decref(old);
	json_decref(obj);
	return rv;
}

int ctrl_delete(struct ctrl *c, const struct api_kind *k, const char *ns, const char *name,
		uint64_t mod_rev, const char *uid, const char *policy, int64_t grace_s,
		const char *requeue)
{
	json_t *obj = NULL;
	struct store_kv kv;
	struct buf val = {0};
	char key[512], now[32];
	const char *cur_uid;
	int n, rv, action;

	n = ctrl_key(k, ns, name, key, sizeof(key));
	if (n < 0)
		return n;
	if (store_get(ctrl_store(c), key, (size_t)n, &kv) != 0)
		return -ENOENT;
	if (mod_rev != 0 && kv.mod_rev != mod_rev) {
		if (requeue != NULL)
			ctrl_enqueue(c, requeue);
		return 0;
	}
	obj = ctrl_decode(kv.val, kv.val_len, 0);
	if (obj == NULL)
		return -ENOMEM;
	cur_uid = meta_str(obj, "uid");
	if (uid != NULL && (cur_uid == NULL || strcmp(uid, cur_uid) != 0)) {
		rv = -ENOENT; /* another object of that name now */
		goto out;
	}
	if (policy != NULL && strcmp(policy, "Background") == 0)
		policy = NULL;
	ctrl_rfc3339(ctrl_now_ms(c), now, sizeof(now));
	action = api_object_prepare_delete(k, obj, policy, grace_s >= 0, grace_s, now);
	if (action < 0) {
		rv = action;
	} else if (action == API_DELETE_ALREADY) {
		rv = 0;
	} else if (action == API_DELETE_MARK) {
		rv = encode(obj, &val);
		if (rv == 0)
			rv = propose(c, STORE_CMD_PUT, STORE_COND_MOD_REV, kv.mod_rev, key,
				     (size_t)n, &val, requeue);
	} else {
		rv = propose(c, STORE_CMD_DELETE, STORE_COND_MOD_REV, kv.mod_rev, key, (size_t)n,
			     NULL, requeue);
	}
out:
	buf_free(&val);
	json_decref(obj);
	return rv;
}

/* Kubernetes' UUID v4 text of two random words (as api_object_prepare_create
 * makes them) into @uid (37 bytes). */
static void format_uid(uint64_t hi, uint64_t lo, char *uid)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	size_t i, o = 0;

	for (i = 0; i < 8; i++) {
		b[i] = (unsigned char)(hi >> (8 * i));
		b[8 + i] = (unsigned char)(lo >> (8 * i));
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			uid[o++] = '-';
		uid[o++] = hex[b[i] >> 4];
		uid[o++] = hex[b[i] & 0xf];
	}
	uid[o] = '\0';
}

static bool ascii(const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		if ((unsigned char)*s >= 0x80)
			return false;
	}
	return true;
}

/* What an Event says, before it is built. */
struct event_fields {
	const char *api_version, *kind, *ns, *obj_ns, *name, *uid, *rv;
	const char *type, *reason, *msg, *ename, *now;
};

static int mp_pair(struct buf *b, const char *k, const char *v)
{
	return codec_mp_cstr(b, k) != 0 || codec_mp_cstr(b, v) != 0 ? -ENOMEM : 0;
}

/* The Event as msgpack, with the fields and key order the tree path
 * (json_pack, then api_object_prepare_create) gives it. */
static int event_encode(const struct ctrl *c, const struct event_fields *f, const char *uid,
			struct buf *out)
{
	const char *comp = ctrl__name(c);
	uint32_t n_inv = 2u + (f->kind != NULL) + (f->uid != NULL) +
			 (f->api_version != NULL) + (f->rv != NULL);

	/* One allocation: the Event is about 500 bytes and the message. */
	if (buf_reserve(out, 640 + strlen(f->msg)) != 0)
		return -ENOMEM;
	if (codec_mp_map(out, 12) != 0 || mp_pair(out, "apiVersion", "v1") != 0 ||
	    mp_pair(out, "kind", "Event") != 0 || codec_mp_cstr(out, "metadata") != 0 ||
	    codec_mp_map(out, 4) != 0 || mp_pair(out, "name", f->ename) != 0 ||
	    mp_pair(out, "namespace", f->ns) != 0 || mp_pair(out, "uid", uid) != 0 ||
	    mp_pair(out, "creationTimestamp", f->now) != 0 ||
	    codec_mp_cstr(out, "involvedObject") != 0 || codec_mp_map(out, n_inv) != 0)
		return -ENOMEM;
	if ((f->kind != NULL && mp_pair(out, "kind", f->kind) != 0) ||
	    mp_pair(out, "namespace", f->obj_ns != NULL ? f->obj_ns : "") != 0 ||
	    mp_pair(out, "name", f->name) != 0 ||
	    (f->uid != NULL && mp_pair(out, "uid", f->uid) != 0) ||
	    (f->api_version != NULL && mp_pair(out, "apiVersion", f->api_version) != 0) ||
	    (f->rv != NULL && mp_pair(out, "resourceVersion", f->rv) != 0))
		return -ENOMEM;
	if (mp_pair(out, "reason", f->reason) != 0 || mp_pair(out, "message", f->msg) != 0 ||
	    mp_pair(out, "type", f->type) != 0 || codec_mp_cstr(out, "source") != 0 ||
	    codec_mp_map(out, 1) != 0 || mp_pair(out, "component", comp) != 0 ||
	    mp_pair(out, "firstTimestamp", f->now) != 0 ||
	    mp_pair(out, "lastTimestamp", f->now) != 0 || codec_mp_cstr(out, "count") != 0 ||
	    codec_mp_int(out, 1) != 0 || mp_pair(out, "reportingComponent", comp) != 0)
		return -ENOMEM;
	return 0;
}

/* The Event built as msgpack and proposed without a tree. It cannot be
 * invalid: every field is a string (or count 1) where the schema wants
 * one, the namespace is an object's, the times are RFC 3339, and the one
 * rule beyond types, the name (a DNS subdomain), is checked here.
 * Non-ASCII text takes the tree path, which checks its UTF-8. Returns
 * -EINVAL for such input (nothing proposed), else as ctrl_create(). */
static int event_fast(struct ctrl *c, const struct event_fields *f)
{
	const struct api_kind *ek = api_kind_by_resource("", "v1", "events");
	struct buf val = BUF_INIT;
	char key[512], uid[40];
	int n, rv;

	if (ek == NULL || api_check_dns1123_subdomain(f->ename) != NULL || !ascii(f->msg) ||
	    !ascii(f->kind) || !ascii(f->api_version) || !ascii(f->uid) || !ascii(f->obj_ns) ||
	    !ascii(f->reason) || !ascii(f->type) || !ascii(f->name))
		return -EINVAL;
	if (!namespace_open(c, f->ns))
		return -ENOENT;
	n = ctrl_key(ek, f->ns, f->ename, key, sizeof(key));
	if (n < 0)
		return n;
	format_uid(ctrl_random(c), ctrl_random(c), uid);
	rv = event_encode(c, f, uid, &val);
	if (rv == 0)
		rv = propose(c, STORE_CMD_PUT, STORE_COND_ABSENT, 0, key, (size_t)n, &val, NULL);
	buf_free(&val);
	return rv;
}

/* The general path: a tree, ctrl_create's semantics and validation. */
static int event_tree(struct ctrl *c, const struct event_fields *f)
{
	const struct api_kind *ek = api_kind_by_resource("", "v1", "events");
	json_t *ev;
	int rv;

	if (ek == NULL)
		return -ENOENT;
	ev = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s?, s:s, s:s, s:s?, s:s?, s:s?},"
		       " s:s, s:s, s:s, s:{s:s}, s:s, s:s, s:i, s:s}",
		       "apiVersion", "v1", "kind", "Event", "metadata", "name", f->ename,
		       "namespace", f->ns, "involvedObject", "kind", f->kind, "namespace",
		       f->obj_ns != NULL ? f->obj_ns : "", "name", f->name, "uid", f->uid,
		       "apiVersion", f->api_version, "resourceVersion", f->rv, "reason",
		       f->reason, "message", f->msg, "type", f->type, "source", "component",
		       ctrl__name(c), "firstTimestamp", f->now, "lastTimestamp", f->now, "count",
		       1, "reportingComponent", ctrl__name(c));
	if (ev == NULL)
		return -ENOMEM;
	rv = ctrl_create(c, ek, ev, NULL);
	json_decref(ev);
	return rv;
}

static void event_record(struct ctrl *c, struct event_fields *f, const char *fmt, va_list ap)
{
	char msg[1024], ename[300], now[32];
	int rv;

	if (f->name == NULL)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	f->msg = msg;
	f->ns = f->obj_ns != NULL && f->obj_ns[0] != '\0' ? f->obj_ns : "default";
	/* Kubernetes names events <object>.<hex>. */
	snprintf(ename, sizeof(ename), "%.200s.%016" PRIx64, f->name, ctrl_random(c));
	f->ename = ename;
	ctrl_rfc3339(ctrl_now_ms(c), now, sizeof(now));
	f->now = now;
	rv = event_fast(c, f);
	if (rv == -EINVAL)
		rv = event_tree(c, f);
	if (rv != 0 && rv != -ENOENT)
		ctrl_log(c, LOG_LEVEL_DEBUG, "event %s about %s: %s", f->reason, f->name,
			 strerror(-rv));
}

void ctrl_event(struct ctrl *c, const json_t *obj, const char *type, const char *reason,
		const char *fmt, ...)
{
	struct event_fields f = {0};
	va_list ap;

	f.api_version = json_string_value(json_object_get(obj, "apiVersion"));
	f.kind = json_string_value(json_object_get(obj, "kind"));
	f.obj_ns = meta_str(obj, "namespace");
	f.name = meta_str(obj, "name");
	f.uid = meta_str(obj, "uid");
	f.rv = meta_str(obj, "resourceVersion");
	f.type = type;
	f.reason = reason;
	va_start(ap, fmt);
	event_record(c, &f, fmt, ap);
	va_end(ap);
}

void ctrl_event_about(struct ctrl *c, const char *api_version, const char *kind,
		      const char *ns, const char *name, const char *uid,
		      const char *resource_version, const char *type, const char *reason,
		      const char *fmt, ...)
{
	struct event_fields f = {0};
	va_list ap;

	f.api_version = api_version;
	f.kind = kind;
	f.obj_ns = ns;
	f.name = name;
	f.uid = uid;
	f.rv = resource_version;
	f.type = type;
	f.reason = reason;
	va_start(ap, fmt);
	event_record(c, &f, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------ bind */

int ctrl_update_msgpack(struct ctrl *c, const char *key, size_t key_len, uint64_t mod_rev,
			const void *val, size_t val_len, const char *requeue)
{
	struct store_cmd cmd = {0};

	cmd.type = STORE_CMD_PUT;
	cmd.cond = STORE_COND_MOD_REV;
	cmd.mod_rev = mod_rev;
	cmd.time_ms = ctrl_now_ms(c);
	cmd.key = key;
	cmd.key_len = key_len;
	cmd.val = val;
	cmd.val_len = val_len;
	return ctrl__propose(c, &cmd, requeue);
}

/* A condition that became True drops the reason and message of its
 * False days, as the binding subresource writes a fresh condition. */
static void clear_reason(json_t *pod, const char *type)
{
	json_t *cond;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(pod, "status"), "conditions"), i, cond)
	{
		const char *t = json_string_value(json_object_get(cond, "type"));
		if (t != NULL && strcmp(t, type) == 0) {
			json_object_del(cond, "reason");
			json_object_del(cond, "message");
		}
	}
}

/* The bind through a tree and ctrl_update(): the reference semantics. */
static int bind_tree(struct ctrl *c, const struct api_kind *pk, const struct store_kv *kv,
		     const char *node, const char *requeue)
{
	json_t *pod = ctrl_decode(kv->val, kv->val_len, kv->mod_rev);
	json_t *spec = json_object_get(pod, "spec");
	int rv;

	if (!json_is_object(spec)) {
		json_decref(pod);
		return -EINVAL;
	}
	if (json_object_set_new(spec, "nodeName", json_string(node)) != 0) {
		json_decref(pod);
		return -ENOMEM;
	}
	ctrl_set_condition(c, pod, "PodScheduled", "True", NULL, NULL);
	clear_reason(pod, "PodScheduled");
	rv = ctrl_update(c, pk, pod, requeue);
	json_decref(pod);
	return rv;
}

static bool mp_str_is(const void *mp, size_t len, const char *key, const char *want)
{
	const char *s;
	size_t n;

	return codec_msgpack_get_str(mp, len, key, &s, &n) == 0 && n == strlen(want) &&
	       memcmp(s, want, n) == 0;
}

/* @cond (a PodScheduled condition) turned True, into @out. */
static int bind_condition(const void *cond, size_t len, const struct buf *now_mp,
			  struct buf *out)
{
	static const uint8_t true_mp[] = {0xa4, 'T', 'r', 'u', 'e'};
	struct codec_mp_edit e[4] = {
		{"status", 6, true_mp, sizeof(true_mp)},
		{"reason", 6, NULL, 0},
		{"message", 7, NULL, 0},
		{"lastTransitionTime", 18, now_mp->data, now_mp->len},
	};
	const void *v;
	size_t vlen;
	/* lastTransitionTime moves only when the status changes. */
	bool keep = mp_str_is(cond, len, "status", "True") &&
		    codec_msgpack_map_get(cond, len, "lastTransitionTime", 18, &v, &vlen) == 0;

	return codec_msgpack_map_edit(cond, len, e, keep ? 3 : 4, out);
}

/* status.conditions with PodScheduled True, into @out. */
static int bind_conditions(const void *conds, size_t len, const struct buf *now_mp,
			   struct buf *out)
{
	const uint8_t *p = conds;
	uint32_t n = 0, i;
	size_t hdr = 0, elen, off;
	bool found = false;
	int rv;

	if (conds != NULL && (rv = codec_msgpack_array_header(conds, len, &n, &hdr)) != 0)
		return -EINVAL;
	for (i = 0, off = hdr; i < n; i++, off += elen) {
		if (codec_msgpack_value_len(p + off, len - off, &elen) != 0)
			return -EINVAL;
		if (mp_str_is(p + off, elen, "type", "PodScheduled"))
			found = true;
	}
	if (codec_mp_array(out, n + !found) != 0)
		return -ENOMEM;
	for (i = 0, off = hdr; i < n; i++, off += elen) {
		codec_msgpack_value_len(p + off, len - off, &elen);
		if (mp_str_is(p + off, elen, "type", "PodScheduled"))
			rv = bind_condition(p + off, elen, now_mp, out);
		else
			rv = buf_append(out, p + off, elen);
		if (rv != 0)
			return rv == -ENOMEM ? rv : -EINVAL;
	}
	if (!found && (codec_mp_map(out, 3) != 0 || mp_pair(out, "type", "PodScheduled") != 0 ||
		       mp_pair(out, "status", "True") != 0 ||
		       codec_mp_cstr(out, "lastTransitionTime") != 0 ||
		       buf_append(out, now_mp->data, now_mp->len) != 0))
		return -ENOMEM;
	return 0;
}

/* The bound pod as msgpack: the stored bytes with three fields changed.
 * -EINVAL when the pod is not of the shape this expects (the caller
 * takes the tree path). */
static int bind_edit(struct ctrl *c, const void *pod, size_t len, const char *node,
		     struct buf *out)
{
	struct buf meta = BUF_INIT, spec = BUF_INIT, status = BUF_INIT, conds = BUF_INIT;
	struct buf gen_mp = BUF_INIT, node_mp = BUF_INIT, now_mp = BUF_INIT;
	const void *m, *sp, *st = NULL, *cs = NULL, *g;
	size_t m_len, sp_len, st_len = 0, cs_len = 0, g_len;
	int64_t gen = 0;
	char now[32];
	int rv;

	if (codec_msgpack_map_get(pod, len, "metadata", 8, &m, &m_len) != 0 ||
	    codec_msgpack_map_get(pod, len, "spec", 4, &sp, &sp_len) != 0)
		return -EINVAL;
	rv = codec_msgpack_map_get(m, m_len, "generation", 10, &g, &g_len);
	if ((rv == 0 && (codec_msgpack_int(g, g_len, &gen) != 0 || gen < 0 ||
			 gen == INT64_MAX)) ||
	    (rv != 0 && rv != -ENOENT))
		return -EINVAL;
	rv = codec_msgpack_map_get(pod, len, "status", 6, &st, &st_len);
	if (rv == 0) {
		rv = codec_msgpack_map_get(st, st_len, "conditions", 10, &cs, &cs_len);
		if (rv == -ENOENT)
			cs = NULL;
		else if (rv != 0)
			return -EINVAL;
	} else if (rv == -ENOENT) {
		st = NULL;
	} else {
		return -EINVAL;
	}
	ctrl_rfc3339(ctrl_now_ms(c), now, sizeof(now));
	rv = -ENOMEM;
	if (codec_mp_int(&gen_mp, gen + 1) != 0 || codec_mp_cstr(&node_mp, node) != 0 ||
	    codec_mp_cstr(&now_mp, now) != 0)
		goto out;
	{
		struct codec_mp_edit me = {"generation", 10, gen_mp.data, gen_mp.len};
		struct codec_mp_edit se = {"nodeName", 8, node_mp.data, node_mp.len};

		if ((rv = codec_msgpack_map_edit(m, m_len, &me, 1, &meta)) != 0 ||
		    (rv = codec_msgpack_map_edit(sp, sp_len, &se, 1, &spec)) != 0 ||
		    (rv = bind_conditions(cs, cs_len, &now_mp, &conds)) != 0)
			goto out;
	}
	{
		struct codec_mp_edit ce = {"conditions", 10, conds.data, conds.len};

		if (st != NULL)
			rv = codec_msgpack_map_edit(st, st_len, &ce, 1, &status);
		else
			rv = codec_mp_map(&status, 1) != 0 || codec_mp_cstr(&status, "conditions") != 0 ||
				     buf_append(&status, conds.data, conds.len) != 0
			     ? -ENOMEM
			     : 0;
		if (rv != 0)
			goto out;
	}
	{
		struct codec_mp_edit te[3] = {
			{"metadata", 8, meta.data, meta.len},
			{"spec", 4, spec.data, spec.len},
			{"status", 6, status.data, status.len},
		};
		rv = codec_msgpack_map_edit(pod, len, te, 3, out);
	}
out:
	buf_free(&meta);
	buf_free(&spec);
	buf_free(&status);
	buf_free(&conds);
	buf_free(&gen_mp);
	buf_free(&node_mp);
	buf_free(&now_mp);
	return rv == -EBADMSG ? -EINVAL : rv;
}

int ctrl_bind(struct ctrl *c, const char *ns, const char *name, uint64_t mod_rev,
	      const char *node, const char *requeue)
{
	const struct api_kind *pk = api_kind_by_resource("", "v1", "pods");
	struct store_kv kv;
	struct buf val = BUF_INIT;
	const char *cur;
	const void *v;
	size_t cur_len, vlen;
	char key[512];
	int n, rv;

	if (pk == NULL)
		return -ENOENT;
	n = ctrl_key(pk, ns, name, key, sizeof(key));
	if (n < 0)
		return n;
	if (store_get(ctrl_store(c), key, (size_t)n, &kv) != 0)
		return -ENOENT;
	if (kv.mod_rev != mod_rev) {
		/* Stale read: the newer state is on its way as an event. */
		if (requeue != NULL)
			ctrl_enqueue(c, requeue);
		return 0;
	}
	if (codec_msgpack_get_str(kv.val, kv.val_len, "spec.nodeName", &cur, &cur_len) == 0 &&
	    cur_len > 0)
		return -EALREADY;
	/* An update of a pod being deleted may delete it (no finalizer
	 * left): that is ctrl_update's business. */
	if (codec_msgpack_get(kv.val, kv.val_len, "metadata.deletionTimestamp", &v, &vlen) !=
	    -ENOENT)
		return bind_tree(c, pk, &kv, node, requeue);
	/* Why no validation: the stored pod passed it when written, and the
	 * bind only sets spec.nodeName to a node's name (checked against the
	 * rule for names just above), raises metadata.generation and sets
	 * the PodScheduled condition (strings and an RFC 3339 time, in place
	 * of the entry of that type, so the list keeps one entry per type):
	 * nothing the schema or the pod's rules could refuse. */
	rv = api_check_dns1123_subdomain(node) == NULL
		     ? bind_edit(c, kv.val, kv.val_len, node, &val)
		     : -EINVAL;
	if (rv == -EINVAL)
		rv = bind_tree(c, pk, &kv, node, requeue);
	else if (rv == 0)
		rv = ctrl_update_msgpack(c, key, (size_t)n, kv.mod_rev, val.data, val.len,
					 requeue);
	buf_free(&val);
	return rv;
}

/* ------------------------------------------------------------ helpers */

const json_t *ctrl_controller_ref(const json_t *obj)
{
	json_t *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences"), *r;
	size_t i;

	json_array_foreach(refs, i, r)
	{
		if (json_is_true(json_object_get(r, "controller")))
			return r;
	}
	return NULL;
}

json_t *ctrl_owner_ref(const struct api_kind *k, const json_t *owner)
{
	return json_pack("{s:s, s:s, s:s?, s:s?, s:b, s:b}", "apiVersion",
			 api_kind_api_version(k), "kind", k->kind, "name",
			 meta_str(owner, "name"), "uid", meta_str(owner, "uid"), "controller", 1,
			 "blockOwnerDeletion", 1);
}

const char *ctrl_str(const json_t *obj, const char *path)
{
	return json_string_value(api_json_path(obj, path));
}

int64_t ctrl_int(const json_t *obj, const char *path, int64_t dflt)
{
	json_t *v = api_json_path(obj, path);

	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

bool ctrl_pod_ready(const json_t *pod)
{
	json_t *c = ctrl__condition(pod, "Ready");
	const char *s = json_string_value(json_object_get(c, "status"));

	return s != NULL && strcmp(s, "True") == 0;
}

bool ctrl_pod_active(const json_t *pod)
{
	const char *phase = ctrl_str(pod, "status.phase");

	if (meta_str(pod, "deletionTimestamp") != NULL)
		return false;
	return phase == NULL || (strcmp(phase, "Succeeded") != 0 && strcmp(phase, "Failed") != 0);
}

bool ctrl_set_condition(struct ctrl *c, json_t *obj, const char *type, const char *status,
			const char *reason, const char *message)
{
	json_t *st = json_object_get(obj, "status"), *conds, *cnd;
	char now[32];
	bool changed = false;

	if (!json_is_object(st)) {
		st = json_object();
		json_object_set_new(obj, "status", st);
	}
	conds = json_object_get(st, "conditions");
	if (!json_is_array(conds)) {
		conds = json_array();
		json_object_set_new(st, "conditions", conds);
	}
	ctrl_rfc3339(ctrl_now_ms(c), now, sizeof(now));
	cnd = ctrl__condition(obj, type);
	if (cnd == NULL) {
		cnd = json_pack("{s:s, s:s}", "type", type, "status", status);
		json_array_append_new(conds, cnd);
		changed = true;
	}
	const char *old_status = json_string_value(json_object_get(cnd, "status"));
	if (old_status == NULL || strcmp(old_status, status) != 0 ||
	    json_object_get(cnd, "lastTransitionTime") == NULL) {
		json_object_set_new(cnd, "status", json_string(status));
		json_object_set_new(cnd, "lastTransitionTime", json_string(now));
		changed = true;
	}
	if (reason != NULL) {
		const char *r = json_string_value(json_object_get(cnd, "reason"));
		if (r == NULL || strcmp(r, reason) != 0) {
			json_object_set_new(cnd, "reason", json_string(reason));
			changed = true;
		}
	}
	if (message != NULL) {
		const char *r = json_string_value(json_object_get(cnd, "message"));
		if (r == NULL || strcmp(r, message) != 0) {
			json_object_set_new(cnd, "message", json_string(message));
			changed = true;
		}
	}
	return changed;
}
