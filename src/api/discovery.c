/* Discovery documents from the kind registry.
 *
 * The shapes follow meta.k8s.io/v1 (APIVersions, APIGroupList,
 * APIResourceList) and apidiscovery.k8s.io/v2 (APIGroupDiscoveryList).
 * client-go rejects an aggregated resource or subresource without
 * responseKind, so every entry carries one. */
#include "src/api/discovery.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- Helpers */

/* Sets @key of @obj to @value (stolen, may be NULL); -1 on any failure so
 * callers can OR the results of a whole build together. */
static int set(json_t *obj, const char *key, json_t *value)
{
	if (!obj || !value) {
		json_decref(value);
		return -1;
	}
	return json_object_set_new(obj, key, value) ? -1 : 0;
}

static int append(json_t *arr, json_t *value)
{
	if (!arr || !value) {
		json_decref(value);
		return -1;
	}
	return json_array_append_new(arr, value) ? -1 : 0;
}

/* Verbs in Kubernetes' discovery order (alphabetical). */
static const struct {
	unsigned bit;
	const char *name;
} verb_names[] = {
	{ API_VERB_CREATE, "create" },
	{ API_VERB_DELETE, "delete" },
	{ API_VERB_DELETECOLLECTION, "deletecollection" },
	{ API_VERB_GET, "get" },
	{ API_VERB_LIST, "list" },
	{ API_VERB_PATCH, "patch" },
	{ API_VERB_UPDATE, "update" },
	{ API_VERB_WATCH, "watch" },
};

static json_t *verbs_array(unsigned verbs)
{
	json_t *arr = json_array();
	int err = 0;
	for (size_t i = 0; i < sizeof(verb_names) / sizeof(verb_names[0]); i++) {
		if (verbs & verb_names[i].bit) {
			err |= append(arr, json_string(verb_names[i].name));
		}
	}
	if (err) {
		json_decref(arr);
		return NULL;
	}
	return arr;
}

/* A JSON array of a NULL-terminated list, or NULL (no error) when empty. */
static int set_names(json_t *obj, const char *key, const char *const *names)
{
	if (!names || !names[0]) {
		return 0;
	}
	json_t *arr = json_array();
	int err = 0;
	for (; *names; names++) {
		err |= append(arr, json_string(*names));
	}
	if (err) {
		json_decref(arr);
		return -1;
	}
	return set(obj, key, arr);
}

static const char *group_version_string(const char *group, const char *version, char *buf,
					size_t size)
{
	if (group[0] == '\0') {
		return version;
	}
	size_t gl = strlen(group);
	size_t vl = strlen(version);
	if (gl + 1 + vl + 1 > size) {
		return NULL;
	}
	memcpy(buf, group, gl);
	buf[gl] = '/';
	memcpy(buf + gl + 1, version, vl + 1);
	return buf;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

/* The kind a subresource answers with, and its group/version. */
static void sub_gvk(const struct api_kind *k, const struct api_subresource *s,
		    const char **ret_group, const char **ret_version, const char **ret_kind)
{
	*ret_group = s->group ? s->group : k->group;
	*ret_version = s->version ? s->version : k->version;
	*ret_kind = s->kind ? s->kind : k->kind;
}

/* ---------------------------------------------------------------- Group-versions */

size_t api_discovery_group_versions(struct api_group_version *ret, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < api_kind_count(); i++) {
		const struct api_kind *k = api_kind_at(i);
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++) {
			const struct api_kind *o = api_kind_at(j);
			seen = strcmp(o->group, k->group) == 0 && strcmp(o->version, k->version) == 0;
		}
		if (seen) {
			continue;
		}
		if (n < max) {
			ret[n].group = k->group;
			ret[n].version = k->version;
		}
		n++;
	}
	return n;
}

bool api_discovery_served(const char *group, const char *version)
{
	for (size_t i = 0; i < api_kind_count(); i++) {
		const struct api_kind *k = api_kind_at(i);
		if (strcmp(k->group, group) == 0 && strcmp(k->version, version) == 0) {
			return true;
		}
	}
	return false;
}

void api_discovery_storage_version_hash(const struct api_kind *k, char buf[API_DISCOVERY_HASH_SIZE])
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint64_t h = 0xcbf29ce484222325ull;
	h = fnv1a(h, k->group);
	h = fnv1a(h, "/");
	h = fnv1a(h, k->version);
	h = fnv1a(h, "/");
	h = fnv1a(h, k->kind);
	unsigned char bytes[9] = { 0 };
	for (int i = 0; i < 8; i++) {
		bytes[i] = (unsigned char)(h >> (56 - 8 * i));
	}
	/* Base64 of 8 bytes: three full groups, then 2 bytes -> 3 chars + '='. */
	char *o = buf;
	for (int i = 0; i < 9; i += 3) {
		unsigned v = (unsigned)bytes[i] << 16 | (unsigned)bytes[i + 1] << 8 | bytes[i + 2];
		*o++ = b64[(v >> 18) & 63];
		*o++ = b64[(v >> 12) & 63];
		*o++ = b64[(v >> 6) & 63];
		*o++ = b64[v & 63];
	}
	buf[11] = '=';
	buf[12] = '\0';
}

/* ---------------------------------------------------------------- Legacy forms */

json_t *api_discovery_api_versions(const char *server_address)
{
	json_t *doc = json_object();
	json_t *cidr = json_object();
	json_t *cidrs = json_array();
	json_t *versions = json_array();
	int err = 0;
	err |= set(cidr, "clientCIDR", json_string("0.0.0.0/0"));
	err |= set(cidr, "serverAddress", json_string(server_address ? server_address : ""));
	err |= append(cidrs, cidr);
	struct api_group_version gvs[16];
	size_t n = api_discovery_group_versions(gvs, 16);
	for (size_t i = 0; i < n && i < 16; i++) {
		if (gvs[i].group[0] == '\0') {
			err |= append(versions, json_string(gvs[i].version));
		}
	}
	err |= set(doc, "kind", json_string("APIVersions"));
	err |= set(doc, "versions", versions);
	err |= set(doc, "serverAddressByClientCIDRs", cidrs);
	if (err) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

static json_t *group_version_for_discovery(const char *group, const char *version)
{
	char buf[256];
	const char *gv = group_version_string(group, version, buf, sizeof(buf));
	json_t *o = json_object();
	int err = 0;
	err |= set(o, "groupVersion", gv ? json_string(gv) : NULL);
	err |= set(o, "version", json_string(version));
	if (err) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *api_discovery_group_list(void)
{
	struct api_group_version gvs[16];
	size_t n = api_discovery_group_versions(gvs, 16);
	json_t *doc = json_object();
	json_t *groups = json_array();
	int err = 0;
	err |= set(doc, "kind", json_string("APIGroupList"));
	err |= set(doc, "apiVersion", json_string("v1"));
	for (size_t i = 0; i < n && i < 16 && !err; i++) {
		const char *group = gvs[i].group;
		bool seen = false;
		for (size_t j = 0; j < i; j++) {
			seen = seen || strcmp(gvs[j].group, group) == 0;
		}
		if (group[0] == '\0' || seen) {
			continue;
		}
		json_t *g = json_object();
		json_t *versions = json_array();
		/* Registry order is preference order: the first version wins. */
		for (size_t j = i; j < n && j < 16; j++) {
			if (strcmp(gvs[j].group, group) == 0) {
				err |= append(versions,
					      group_version_for_discovery(group, gvs[j].version));
			}
		}
		err |= set(g, "name", json_string(group));
		err |= set(g, "versions", versions);
		err |= set(g, "preferredVersion", group_version_for_discovery(group, gvs[i].version));
		err |= append(groups, g);
	}
	err |= set(doc, "groups", groups);
	if (err) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

/* One APIResource of a resource (@s NULL) or of its subresource @s. */
static json_t *api_resource(const struct api_kind *k, const struct api_subresource *s)
{
	json_t *r = json_object();
	int err = 0;
	if (!s) {
		char hash[API_DISCOVERY_HASH_SIZE];
		api_discovery_storage_version_hash(k, hash);
		err |= set(r, "name", json_string(k->plural));
		err |= set(r, "singularName", json_string(k->singular));
		err |= set(r, "namespaced", json_boolean(k->namespaced));
		err |= set(r, "kind", json_string(k->kind));
		err |= set(r, "verbs", verbs_array(k->verbs));
		err |= set_names(r, "shortNames", k->short_names);
		err |= set_names(r, "categories", k->categories);
		err |= set(r, "storageVersionHash", json_string(hash));
	} else {
		const char *group, *version, *kind;
		sub_gvk(k, s, &group, &version, &kind);
		size_t len = strlen(k->plural) + 1 + strlen(s->name) + 1;
		char *name = malloc(len);
		if (name) {
			strcpy(name, k->plural);
			strcat(name, "/");
			strcat(name, s->name);
		}
		err |= set(r, "name", name ? json_string(name) : NULL);
		free(name);
		err |= set(r, "singularName", json_string(""));
		err |= set(r, "namespaced", json_boolean(k->namespaced));
		if (strcmp(group, k->group) != 0 || strcmp(version, k->version) != 0) {
			err |= set(r, "group", json_string(group));
			err |= set(r, "version", json_string(version));
		}
		err |= set(r, "kind", json_string(kind));
		err |= set(r, "verbs", verbs_array(s->verbs));
	}
	if (err) {
		json_decref(r);
		return NULL;
	}
	return r;
}

struct entry {
	const struct api_kind *k;
	const struct api_subresource *s;
};

static int entry_name_cmp(const struct entry *a, const struct entry *b)
{
	int c = strcmp(a->k->plural, b->k->plural);
	if (c != 0) {
		return c;
	}
	if (!a->s || !b->s) {
		return a->s ? 1 : (b->s ? -1 : 0);
	}
	return strcmp(a->s->name, b->s->name);
}

static int entry_cmp(const void *a, const void *b)
{
	return entry_name_cmp(a, b);
}

json_t *api_discovery_resource_list(const char *group, const char *version)
{
	if (!api_discovery_served(group, version)) {
		return NULL;
	}
	size_t n = 0;
	for (size_t i = 0; i < api_kind_count(); i++) {
		const struct api_kind *k = api_kind_at(i);
		n++;
		for (const struct api_subresource *s = k->subresources; s && s->name; s++) {
			n++;
		}
	}
	struct entry *entries = calloc(n, sizeof(*entries));
	if (!entries) {
		return NULL;
	}
	size_t m = 0;
	for (size_t i = 0; i < api_kind_count(); i++) {
		const struct api_kind *k = api_kind_at(i);
		if (strcmp(k->group, group) != 0 || strcmp(k->version, version) != 0) {
			continue;
		}
		entries[m++] = (struct entry){ k, NULL };
		for (const struct api_subresource *s = k->subresources; s && s->name; s++) {
			entries[m++] = (struct entry){ k, s };
		}
	}
	/* Kubernetes lists resources sorted by name ("pods", "pods/binding"...). */
	qsort(entries, m, sizeof(*entries), entry_cmp);

	char buf[256];
	const char *gv = group_version_string(group, version, buf, sizeof(buf));
	json_t *doc = json_object();
	json_t *resources = json_array();
	int err = 0;
	err |= set(doc, "kind", json_string("APIResourceList"));
	err |= set(doc, "apiVersion", json_string("v1"));
	err |= set(doc, "groupVersion", gv ? json_string(gv) : NULL);
	for (size_t i = 0; i < m && !err; i++) {
		err |= append(resources, api_resource(entries[i].k, entries[i].s));
	}
	err |= set(doc, "resources", resources);
	free(entries);
	if (err) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

/* ---------------------------------------------------------------- Aggregated v2 */

static json_t *gvk_object(const char *group, const char *version, const char *kind)
{
	json_t *o = json_object();
	int err = 0;
	err |= set(o, "group", json_string(group));
	err |= set(o, "version", json_string(version));
	err |= set(o, "kind", json_string(kind));
	if (err) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* An APIResourceDiscovery. */
static json_t *resource_discovery(const struct api_kind *k)
{
	json_t *r = json_object();
	int err = 0;
	err |= set(r, "resource", json_string(k->plural));
	err |= set(r, "responseKind", gvk_object(k->group, k->version, k->kind));
	err |= set(r, "scope", json_string(k->namespaced ? "Namespaced" : "Cluster"));
	err |= set(r, "singularResource", json_string(k->singular));
	err |= set(r, "verbs", verbs_array(k->verbs));
	err |= set_names(r, "shortNames", k->short_names);
	err |= set_names(r, "categories", k->categories);
	if (k->subresources && k->subresources[0].name) {
		json_t *subs = json_array();
		for (const struct api_subresource *s = k->subresources; s->name; s++) {
			const char *group, *version, *kind;
			sub_gvk(k, s, &group, &version, &kind);
			json_t *sub = json_object();
			err |= set(sub, "subresource", json_string(s->name));
			err |= set(sub, "responseKind", gvk_object(group, version, kind));
			err |= set(sub, "verbs", verbs_array(s->verbs));
			err |= append(subs, sub);
		}
		err |= set(r, "subresources", subs);
	}
	if (err) {
		json_decref(r);
		return NULL;
	}
	return r;
}

/* An APIVersionDiscovery of @group/@version. */
static json_t *version_discovery(const char *group, const char *version)
{
	json_t *v = json_object();
	json_t *resources = json_array();
	int err = 0;
	err |= set(v, "version", json_string(version));
	for (size_t i = 0; i < api_kind_count() && !err; i++) {
		const struct api_kind *k = api_kind_at(i);
		if (strcmp(k->group, group) == 0 && strcmp(k->version, version) == 0) {
			err |= append(resources, resource_discovery(k));
		}
	}
	err |= set(v, "resources", resources);
	err |= set(v, "freshness", json_string("Current"));
	if (err) {
		json_decref(v);
		return NULL;
	}
	return v;
}

json_t *api_discovery_aggregated(bool legacy)
{
	struct api_group_version gvs[16];
	size_t n = api_discovery_group_versions(gvs, 16);
	json_t *doc = json_object();
	json_t *items = json_array();
	int err = 0;
	err |= set(doc, "kind", json_string("APIGroupDiscoveryList"));
	err |= set(doc, "apiVersion", json_string("apidiscovery.k8s.io/v2"));
	err |= set(doc, "metadata", json_object());
	for (size_t i = 0; i < n && i < 16 && !err; i++) {
		const char *group = gvs[i].group;
		bool seen = false;
		for (size_t j = 0; j < i; j++) {
			seen = seen || strcmp(gvs[j].group, group) == 0;
		}
		if (seen || (group[0] == '\0') != legacy) {
			continue;
		}
		json_t *item = json_object();
		json_t *meta = json_object();
		json_t *versions = json_array();
		/* The legacy group has no name: "" is left out, as Kubernetes does. */
		if (group[0] != '\0') {
			err |= set(meta, "name", json_string(group));
		}
		for (size_t j = i; j < n && j < 16; j++) {
			if (strcmp(gvs[j].group, group) == 0) {
				err |= append(versions, version_discovery(group, gvs[j].version));
			}
		}
		err |= set(item, "metadata", meta);
		err |= set(item, "versions", versions);
		err |= append(items, item);
	}
	err |= set(doc, "items", items);
	if (err) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}
