/* Create, update and delete semantics of API objects (see object.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "src/api/defaults.h"
#include "src/api/object.h"

static bool is_core(const struct api_kind *k, const char *kind)
{
	return k->group[0] == '\0' && strcmp(k->kind, kind) == 0;
}

static bool has_items(const json_t *arr)
{
	return json_is_array(arr) && json_array_size(arr) > 0;
}

/* json_equal() says two absent values differ. */
static bool same(const json_t *a, const json_t *b)
{
	return (a == NULL && b == NULL) || json_equal(a, b);
}

static json_t *object_at(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL) {
		v = json_object();
		if (v == NULL || json_object_set_new(obj, key, v) != 0)
			return NULL;
	}
	return json_is_object(v) ? v : NULL;
}

int api_object_prepare_create(const struct api_kind *k, json_t *obj, const char *now,
			      uint64_t uid_hi, uint64_t uid_lo, uint64_t rand_bits)
{
	/* Kubernetes' generateName alphabet: no vowels, no confusable digits. */
	static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
	json_t *meta = object_at(obj, "metadata"), *labels, *status, *spec;
	const char *name, *gen;
	unsigned char b[16];
	char uid[40], full[300];
	size_t i;

	if (meta == NULL)
		return -EINVAL;
	name = json_string_value(json_object_get(meta, "name"));
	gen = json_string_value(json_object_get(meta, "generateName"));
	if ((name == NULL || name[0] == '\0') && gen != NULL && gen[0] != '\0') {
		char suffix[6];
		for (i = 0; i < 5; i++) {
			suffix[i] = alphabet[rand_bits % (sizeof(alphabet) - 1)];
			rand_bits /= sizeof(alphabet) - 1;
		}
		suffix[5] = '\0';
		snprintf(full, sizeof(full), "%s%s", gen, suffix);
		if (json_object_set_new(meta, "name", json_string(full)) != 0)
			return -ENOMEM;
	}
	for (i = 0; i < 8; i++) {
		b[i] = (unsigned char)(uid_hi >> (8 * i));
		b[8 + i] = (unsigned char)(uid_lo >> (8 * i));
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	/* 8-4-4-4-12 hex digits, by hand: snprintf of 16 "%02x" showed in
	 * profiles of creates. */
	{
		static const char hex[] = "0123456789abcdef";
		size_t o = 0;
		for (i = 0; i < 16; i++) {
			if (i == 4 || i == 6 || i == 8 || i == 10)
				uid[o++] = '-';
			uid[o++] = hex[b[i] >> 4];
			uid[o++] = hex[b[i] & 0xf];
		}
		uid[o] = '\0';
	}
	if (json_object_set_new(meta, "uid", json_string(uid)) != 0 ||
	    json_object_set_new(meta, "creationTimestamp", json_string(now)) != 0)
		return -ENOMEM;
	json_object_del(meta, "resourceVersion");
	json_object_del(meta, "selfLink");
	json_object_del(meta, "deletionTimestamp");
	json_object_del(meta, "deletionGracePeriodSeconds");
	if (json_object_get(obj, "spec") != NULL) {
		if (json_object_set_new(meta, "generation", json_integer(1)) != 0)
			return -ENOMEM;
	} else {
		json_object_del(meta, "generation");
	}
	if (is_core(k, "Namespace")) {
		name = json_string_value(json_object_get(meta, "name"));
		labels = object_at(meta, "labels");
		spec = object_at(obj, "spec");
		if (labels == NULL || spec == NULL)
			return -ENOMEM;
		if (name != NULL)
			json_object_set_new(labels, "kubernetes.io/metadata.name", json_string(name));
		json_object_set_new(obj, "status", json_pack("{s:s}", "phase", "Active"));
		/* The namespace strategy's PrepareForCreate: the "kubernetes"
		 * finalizer, which the namespace controller removes. */
		json_object_set_new(spec, "finalizers", json_pack("[s]", "kubernetes"));
	} else if (is_core(k, "Pod")) {
		status = json_object_get(obj, "status");
		if (!json_is_object(status) ||
		    json_string_value(json_object_get(status, "phase")) == NULL)
			json_object_set_new(obj, "status", json_pack("{s:s}", "phase", "Pending"));
	}
	return api_default(k, obj) != 0 ? -ENOMEM : 0;
}

bool api_object_prepare_update(const struct api_kind *k, const json_t *old, json_t *obj)
{
	json_t *meta = json_object_get(obj, "metadata");
	const json_t *ometa = json_object_get(old, "metadata");

	if (!json_is_object(meta))
		return false;
	if (!same(json_object_get(old, "spec"), json_object_get(obj, "spec"))) {
		json_int_t gen = json_integer_value(json_object_get(ometa, "generation"));
		json_object_set_new(meta, "generation", json_integer(gen + 1));
	}
	/* The update that removes the last finalizer of an object being
	 * deleted deletes it, unless its grace period still runs (a pod that
	 * its agent is stopping: the agent deletes it with grace 0). */
	json_t *grace = json_object_get(meta, "deletionGracePeriodSeconds");
	return json_object_get(meta, "deletionTimestamp") != NULL &&
	       (!json_is_integer(grace) || json_integer_value(grace) == 0) &&
	       !has_items(json_object_get(meta, "finalizers")) &&
	       !(is_core(k, "Namespace") &&
		 has_items(json_object_get(json_object_get(obj, "spec"), "finalizers")));
}

/* Adds @name to metadata.finalizers unless there. */
static int add_finalizer(json_t *meta, const char *name)
{
	json_t *f = json_object_get(meta, "finalizers"), *v;
	size_t i;

	if (!json_is_array(f)) {
		f = json_array();
		if (f == NULL || json_object_set_new(meta, "finalizers", f) != 0)
			return -ENOMEM;
	}
	json_array_foreach(f, i, v)
	{
		if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
			return 0;
	}
	return json_array_append_new(f, json_string(name)) == 0 ? 0 : -ENOMEM;
}

int api_object_prepare_delete(const struct api_kind *k, json_t *obj, const char *policy,
			      bool has_grace, int64_t grace_s, const char *now)
{
	json_t *meta = object_at(obj, "metadata"), *st, *spec = json_object_get(obj, "spec");
	const char *node = json_string_value(json_object_get(spec, "nodeName"));
	bool is_ns = is_core(k, "Namespace");
	bool deleting, graceful;
	int64_t grace = has_grace ? grace_s : 0;
	int rv;

	if (meta == NULL)
		return -ENOMEM;
	deleting = json_object_get(meta, "deletionTimestamp") != NULL;
	/* Orphan and Foreground are recorded as Kubernetes does, by a
	 * finalizer that the garbage collector removes once it has orphaned
	 * or deleted the dependents. */
	if (policy != NULL && !deleting) {
		if (strcmp(policy, "Orphan") == 0)
			rv = add_finalizer(meta, "orphan");
		else if (strcmp(policy, "Foreground") == 0)
			rv = add_finalizer(meta, "foregroundDeletion");
		else
			rv = 0;
		if (rv != 0)
			return rv;
	}
	/* Graceful: finalizers, a namespace with spec.finalizers, a pod on
	 * a node (its agent confirms with gracePeriodSeconds=0). */
	graceful = has_items(json_object_get(meta, "finalizers")) ||
		   (is_ns && has_items(json_object_get(spec, "finalizers")));
	if (is_core(k, "Pod") && node != NULL && node[0] != '\0') {
		json_t *tg = json_object_get(spec, "terminationGracePeriodSeconds");
		grace = has_grace ? grace_s : json_is_integer(tg) ? json_integer_value(tg) : 30;
		/* A second delete while the agent stops it changes nothing;
		 * only grace 0 (the agent's confirmation, or --force) deletes. */
		if (grace > 0)
			graceful = true;
	}
	if (!graceful)
		return API_DELETE_NOW;
	if (deleting) {
		/* A shorter grace period shortens the running deletion (the
		 * agent's final delete of a pod that still has finalizers). */
		json_t *cur = json_object_get(meta, "deletionGracePeriodSeconds");
		if (has_grace && json_is_integer(cur) && grace < json_integer_value(cur)) {
			if (json_object_set_new(meta, "deletionGracePeriodSeconds",
						json_integer(grace)) != 0)
				return -ENOMEM;
			json_object_del(meta, "resourceVersion");
			return API_DELETE_MARK;
		}
		return API_DELETE_ALREADY;
	}
	if (json_object_set_new(meta, "deletionTimestamp", json_string(now)) != 0 ||
	    json_object_set_new(meta, "deletionGracePeriodSeconds", json_integer(grace)) != 0)
		return -ENOMEM;
	json_object_del(meta, "resourceVersion");
	if (is_ns) {
		st = object_at(obj, "status");
		if (st == NULL)
			return -ENOMEM;
		json_object_set_new(st, "phase", json_string("Terminating"));
	}
	return API_DELETE_MARK;
}
