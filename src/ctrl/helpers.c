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

void ctrl_event(struct ctrl *c, const json_t *obj, const char *type, const char *reason,
		const char *fmt, ...)
{
	const struct api_kind *ek = api_kind_by_resource("", "v1", "events");
	const char *ns = meta_str(obj, "namespace"), *name = meta_str(obj, "name");
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	const char *api_version = json_string_value(json_object_get(obj, "apiVersion"));
	char msg[1024], ename[300], now[32];
	json_t *ev;
	va_list ap;
	int rv;

	if (ek == NULL || name == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ns == NULL || ns[0] == '\0')
		ns = "default";
	/* Kubernetes names events <object>.<hex>. */
	snprintf(ename, sizeof(ename), "%.200s.%016" PRIx64, name, ctrl_random(c));
	ctrl_rfc3339(ctrl_now_ms(c), now, sizeof(now));
	ev = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s?, s:s, s:s, s:s?, s:s?, s:s?},"
		       " s:s, s:s, s:s, s:{s:s}, s:s, s:s, s:i, s:s}",
		       "apiVersion", "v1", "kind", "Event", "metadata", "name", ename,
		       "namespace", ns, "involvedObject", "kind", kind, "namespace",
		       meta_str(obj, "namespace") != NULL ? meta_str(obj, "namespace") : "",
		       "name", name, "uid", meta_str(obj, "uid"), "apiVersion", api_version,
		       "resourceVersion", meta_str(obj, "resourceVersion"), "reason", reason,
		       "message", msg, "type", type, "source", "component", ctrl__name(c),
		       "firstTimestamp", now, "lastTimestamp", now, "count", 1,
		       "reportingComponent", ctrl__name(c));
	if (ev == NULL)
		return;
	rv = ctrl_create(c, ek, ev, NULL);
	if (rv != 0 && rv != -ENOENT)
		ctrl_log(c, LOG_LEVEL_DEBUG, "event %s about %s: %s", reason, name, strerror(-rv));
	json_decref(ev);
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
