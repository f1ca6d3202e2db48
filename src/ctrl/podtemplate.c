/* Helpers shared by the controllers (podtemplate.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/ctrl/ctrl.h"
#include "src/ctrl/podtemplate.h"
#include "src/lib/log.h"

/* Drops the null members of every object in @v: Go clients send
 * "creationTimestamp": null in templates (kubectl rollout undo does), and
 * Kubernetes compares templates as Go structs, where null is the zero
 * value, the same as absent. */
static void drop_nulls(json_t *v)
{
	const char *key;
	json_t *m, *e;
	void *tmp;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach_safe(v, tmp, key, m)
		{
			if (json_is_null(m))
				json_object_del(v, key);
			else
				drop_nulls(m);
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, e)
			drop_nulls(e);
	}
}

/* A copy of @tmpl without the pod-template-hash label and without nulls;
 * NULL on OOM. */
static json_t *strip_hash(const json_t *tmpl)
{
	json_t *copy = json_deep_copy(tmpl);
	json_t *labels;

	if (copy == NULL)
		return NULL;
	drop_nulls(copy);
	labels = json_object_get(json_object_get(copy, "metadata"), "labels");
	if (json_is_object(labels)) {
		json_object_del(labels, CTRL_POD_TEMPLATE_HASH);
		if (json_object_size(labels) == 0)
			json_object_del(json_object_get(copy, "metadata"), "labels");
	}
	if (json_object_size(json_object_get(copy, "metadata")) == 0)
		json_object_del(copy, "metadata");
	return copy;
}

int ctrl__pod_template_hash(const json_t *tmpl, int64_t collision_count, char *buf,
			    size_t size)
{
	static const char alphabet[] = CTRL_SAFE_ALPHABET;
	json_t *copy;
	char *text, digits[16];
	uint32_t h = 2166136261u;
	size_t i, n;

	if (size < 11)
		return -ENOSPC;
	copy = strip_hash(tmpl);
	if (copy == NULL)
		return -ENOMEM;
	text = json_dumps(copy, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(copy);
	if (text == NULL)
		return -ENOMEM;
	for (i = 0; text[i] != '\0'; i++) {
		h ^= (uint8_t)text[i];
		h *= 16777619u;
	}
	free(text);
	if (collision_count >= 0) {
		uint32_t cc = (uint32_t)collision_count;
		for (i = 0; i < 4; i++) {
			h ^= (uint8_t)(cc >> (8 * i));
			h *= 16777619u;
		}
	}
	/* As Kubernetes' SafeEncodeString(fmt.Sprint(hash)): each decimal
	 * digit's byte picks a letter, so the result is a valid label and
	 * never looks like a word or a number. */
	n = (size_t)snprintf(digits, sizeof(digits), "%" PRIu32, h);
	for (i = 0; i < n; i++)
		buf[i] = alphabet[(unsigned char)digits[i] % (sizeof(alphabet) - 1)];
	buf[n] = '\0';
	return 0;
}

bool ctrl__template_equal(const json_t *a, const json_t *b)
{
	json_t *ca = strip_hash(a), *cb = strip_hash(b);
	bool eq = ca != NULL && cb != NULL && json_equal(ca, cb);

	json_decref(ca);
	json_decref(cb);
	return eq;
}

uint64_t ctrl__time_at(const json_t *obj, const char *path)
{
	const char *s = ctrl_str(obj, path);
	uint64_t ms;

	if (s == NULL || ctrl_parse_time(s, &ms) != 0)
		return 0;
	return ms;
}

json_t *ctrl__condition(const json_t *obj, const char *type)
{
	json_t *conds = json_object_get(json_object_get(obj, "status"), "conditions");
	json_t *c;
	size_t i;

	json_array_foreach(conds, i, c)
	{
		const char *t = json_string_value(json_object_get(c, "type"));
		if (t != NULL && strcmp(t, type) == 0)
			return c;
	}
	return NULL;
}

uint64_t ctrl__condition_time(const json_t *obj, const char *type, const char *field)
{
	json_t *c = ctrl__condition(obj, type);
	const char *s = json_string_value(json_object_get(c, field));
	uint64_t ms;

	if (s == NULL || ctrl_parse_time(s, &ms) != 0)
		return 0;
	return ms;
}

const char *ctrl__annotation(const json_t *obj, const char *key)
{
	json_t *ann = json_object_get(json_object_get(obj, "metadata"), "annotations");

	return json_string_value(json_object_get(ann, key));
}

bool ctrl__set_annotation(json_t *obj, const char *key, const char *value)
{
	json_t *meta = json_object_get(obj, "metadata");
	json_t *ann;
	const char *old;

	if (!json_is_object(meta))
		return false;
	ann = json_object_get(meta, "annotations");
	if (!json_is_object(ann)) {
		ann = json_object();
		if (ann == NULL || json_object_set_new(meta, "annotations", ann) != 0)
			return false;
	}
	old = json_string_value(json_object_get(ann, key));
	if (old != NULL && strcmp(old, value) == 0)
		return false;
	return json_object_set_new(ann, key, json_string(value)) == 0;
}

int ctrl__split_key(const char *key, char *ns, char *name, size_t size)
{
	const char *p, *slash;
	size_t n;

	/* "/registry/<plural>/<ns>/<name>" */
	if (strncmp(key, "/registry/", 10) != 0)
		return -EINVAL;
	p = strchr(key + 10, '/');
	if (p == NULL)
		return -EINVAL;
	p++;
	slash = strchr(p, '/');
	if (slash == NULL || strchr(slash + 1, '/') != NULL)
		return -EINVAL;
	n = (size_t)(slash - p);
	if (n == 0 || n >= size || strlen(slash + 1) >= size || slash[1] == '\0')
		return -EINVAL;
	memcpy(ns, p, n);
	ns[n] = '\0';
	strcpy(name, slash + 1);
	return 0;
}

bool ctrl__labels_contain(const json_t *have, const json_t *want)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)want, k, v)
	{
		json_t *h = json_object_get(have, k);
		if (h == NULL || !json_equal(h, v))
			return false;
	}
	return true;
}

int64_t ctrl__int_or_percent(const json_t *v, int64_t total, bool round_up, int64_t dflt)
{
	const char *s;
	char *end;
	long long n;

	if (json_is_integer(v))
		return json_integer_value(v);
	s = json_string_value(v);
	if (s == NULL)
		return dflt;
	errno = 0;
	n = strtoll(s, &end, 10);
	if (errno != 0 || end == s)
		return dflt;
	if (*end == '\0')
		return n;
	if (strcmp(end, "%") != 0 || n < 0)
		return dflt;
	if (round_up)
		return (n * total + 99) / 100;
	return n * total / 100;
}

int ctrl__split_ns_key(const char *key, char *ns, char *name, size_t size)
{
	const char *slash = strchr(key, '/');
	size_t n;

	if (slash == NULL)
		return -EINVAL;
	n = (size_t)(slash - key);
	if (n >= size || strlen(slash + 1) >= size)
		return -EINVAL;
	memcpy(ns, key, n);
	ns[n] = '\0';
	strcpy(name, slash + 1);
	return 0;
}

char *ctrl__strdup0(const char *s)
{
	return strdup(s != NULL ? s : "");
}

const json_t *ctrl__controller_ref_to(const json_t *obj, const char *group, const char *kind)
{
	const json_t *ref = ctrl_controller_ref(obj);
	const char *k = ctrl_str(ref, "kind"), *av = ctrl_str(ref, "apiVersion");
	size_t glen = strlen(group);

	if (ref == NULL || k == NULL || strcmp(k, kind) != 0 || av == NULL ||
	    ctrl_str(ref, "uid") == NULL || ctrl_str(ref, "name") == NULL)
		return NULL;
	if (glen == 0)
		return strchr(av, '/') == NULL ? ref : NULL;
	return strncmp(av, group, glen) == 0 && av[glen] == '/' ? ref : NULL;
}

bool ctrl__available_at(uint64_t ready_ms, int64_t min_ready_ms, uint64_t now,
			uint64_t *recheck_ms)
{
	uint64_t at;

	if (min_ready_ms <= 0)
		return true;
	at = ready_ms + (uint64_t)min_ready_ms;
	if (now >= at)
		return true;
	if (*recheck_ms == 0 || at - now < *recheck_ms)
		*recheck_ms = at - now;
	return false;
}

json_t *ctrl__child_object(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_object(v)) {
		v = json_object();
		if (v == NULL || json_object_set_new(obj, key, v) != 0)
			return NULL;
	}
	return v;
}

int ctrl__reserve(void *vp, size_t n, size_t *cap, size_t elem)
{
	void *v, *nv;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap != 0 ? *cap * 2 : 16;
	if (ncap < *cap || ncap > SIZE_MAX / elem)
		return -ENOMEM;
	memcpy(&v, vp, sizeof(v));
	nv = realloc(v, ncap * elem);
	if (nv == NULL)
		return -ENOMEM;
	memcpy(vp, &nv, sizeof(nv));
	*cap = ncap;
	return 0;
}

int ctrl__claim_ref(json_t *obj, bool adopt, json_t *ref, const char *owner_uid)
{
	json_t *meta = json_object_get(obj, "metadata");
	json_t *refs = json_object_get(meta, "ownerReferences");
	bool found = false;
	size_t i;

	if (adopt) {
		if (ctrl_controller_ref(obj) != NULL ||
		    json_object_get(meta, "deletionTimestamp") != NULL) {
			json_decref(ref);
			return 0;
		}
		if (!json_is_array(refs)) {
			refs = json_array();
			if (json_object_set_new(meta, "ownerReferences", refs) != 0) {
				json_decref(ref);
				return -ENOMEM;
			}
		}
		return json_array_append_new(refs, ref) == 0 ? 1 : -ENOMEM;
	}
	json_decref(ref);
	for (i = json_array_size(refs); owner_uid != NULL && i-- > 0;) {
		const char *u = json_string_value(json_object_get(json_array_get(refs, i), "uid"));
		if (u != NULL && strcmp(u, owner_uid) == 0) {
			json_array_remove(refs, i);
			found = true;
		}
	}
	if (found && json_array_size(refs) == 0)
		json_object_del(meta, "ownerReferences");
	return found ? 1 : 0;
}

json_t *ctrl__get_live(struct ctrl *c, const struct api_kind *k, const char *key, char *ns,
		       char *name, size_t size)
{
	json_t *obj;

	if (ctrl__split_key(key, ns, name, size) != 0)
		return NULL;
	obj = ctrl_get(c, k, ns, name, NULL);
	if (obj != NULL && ctrl_str(obj, "metadata.deletionTimestamp") != NULL) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

void ctrl__requeue(struct ctrl *c, const char *key, bool retry, uint64_t retry_ms,
		   uint64_t recheck_ms)
{
	if (retry)
		ctrl_enqueue_after(c, key, retry_ms);
	else if (recheck_ms != 0)
		ctrl_enqueue_after(c, key, recheck_ms);
}

void ctrl__retry(struct ctrl *c, const char *key, int rv, uint64_t delay_ms, const char *fmt,
		 ...)
{
	char what[256];
	va_list ap;

	if (rv == 0 || rv == -ENOENT)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	ctrl_log(c, LOG_LEVEL_WARN, "%s %s: %s", what, key, strerror(-rv));
	ctrl_enqueue_after(c, key, delay_ms);
}
