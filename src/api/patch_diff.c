/* The three-way strategic merge patch of client-side apply (see patch.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "src/api/patch.h"

/* What the schema says about a value. */
struct sf {
	uint8_t kind;
	uint16_t ref;
	uint16_t flags;
	const char *merge_key;
};

static const struct sf NONE = {API_V_NONE, 0, 0, NULL};

static struct sf child(struct sf node, const char *key)
{
	if (node.kind == API_V_OBJECT) {
		const struct api_type *t = api_type_get(node.ref);
		const struct api_field *f = t != NULL ? api_type_field(t, key) : NULL;
		if (f == NULL)
			return NONE;
		return (struct sf){f->kind, f->ref, f->flags, api_field_merge_key(f)};
	}
	if (node.kind == API_V_MAP) {
		const struct api_elem *e = api_elem_get(node.ref);
		return e != NULL ? (struct sf){e->kind, e->ref, 0, NULL} : NONE;
	}
	return NONE;
}

static struct sf element(struct sf list)
{
	const struct api_elem *e = list.kind == API_V_ARRAY ? api_elem_get(list.ref) : NULL;

	return e != NULL ? (struct sf){e->kind, e->ref, 0, NULL} : NONE;
}

static json_t *diff_value(struct sf s, const json_t *orig, const json_t *mod, const json_t *cur,
			  bool *ret_changed);

/* The element of @list whose merge key @mk equals that of @item. */
static const json_t *find_keyed(const json_t *list, const char *mk, const json_t *item)
{
	const json_t *want = json_object_get(item, mk), *v;
	size_t i;

	if (want == NULL || !json_is_array(list))
		return NULL;
	json_array_foreach(list, i, v)
	{
		if (json_equal(json_object_get(v, mk), want))
			return v;
	}
	return NULL;
}

static bool contains(const json_t *list, const json_t *v)
{
	const json_t *e;
	size_t i;

	json_array_foreach(list, i, e)
	{
		if (json_equal(e, v))
			return true;
	}
	return false;
}

/* A list merged by key: changed and new items, "$patch: delete" for items
 * the user removed since the last apply. Sets *@ret_order when anything
 * is sent (the caller adds $setElementOrder). */
static json_t *diff_keyed_list(struct sf s, const json_t *orig, const json_t *mod,
			       const json_t *cur, bool *ret_any)
{
	const char *mk = s.merge_key;
	struct sf es = element(s);
	json_t *out = json_array(), *m, *o;
	size_t i;

	*ret_any = false;
	if (out == NULL)
		return NULL;
	json_array_foreach(mod, i, m)
	{
		const json_t *c = find_keyed(cur, mk, m), *ov = find_keyed(orig, mk, m);
		if (c == NULL) {
			json_array_append(out, m);
			*ret_any = true;
			continue;
		}
		bool changed = false;
		json_t *d = diff_value(es, ov, m, c, &changed);
		if (d == NULL) {
			json_decref(out);
			return NULL;
		}
		if (changed && json_is_object(d)) {
			json_object_set(d, mk, json_object_get(m, mk));
			json_array_append(out, d);
			*ret_any = true;
		}
		json_decref(d);
	}
	json_array_foreach(orig, i, o)
	{
		if (json_is_object(o) && find_keyed(mod, mk, o) == NULL &&
		    find_keyed(cur, mk, o) != NULL) {
			json_array_append_new(out, json_pack("{s:s, s:O}", "$patch", "delete", mk,
							     json_object_get(o, mk)));
			*ret_any = true;
		}
	}
	return out;
}

/* Adds the directives of a merged list @key: its element order, and for
 * scalars the values to delete. */
static int list_directives(json_t *patch, const char *key, struct sf s, const json_t *orig,
			   const json_t *mod, const json_t *cur)
{
	char name[512];
	json_t *order = json_array(), *del = NULL, *m, *o;
	size_t i;

	if (order == NULL)
		return -ENOMEM;
	json_array_foreach(mod, i, m)
	{
		if (s.merge_key != NULL)
			json_array_append_new(order, json_pack("{s:O}", s.merge_key,
							       json_object_get(m, s.merge_key)));
		else
			json_array_append(order, m);
	}
	snprintf(name, sizeof(name), "$setElementOrder/%s", key);
	json_object_set_new(patch, name, order);
	if (s.merge_key != NULL)
		return 0;
	json_array_foreach(orig, i, o)
	{
		if (!contains(mod, o) && contains(cur, o)) {
			if (del == NULL)
				del = json_array();
			json_array_append(del, o);
		}
	}
	if (del != NULL) {
		snprintf(name, sizeof(name), "$deleteFromPrimitiveList/%s", key);
		json_object_set_new(patch, name, del);
	}
	return 0;
}

static bool is_merged_list(struct sf s, const json_t *mod)
{
	if (s.kind != API_V_ARRAY || !(s.flags & API_F_PATCH_MERGE))
		return false;
	if (s.merge_key != NULL)
		return true;
	/* Merged lists of scalars: an ordered set. */
	return element(s).kind != API_V_OBJECT && json_is_array(mod);
}

static json_t *diff_map(struct sf s, const json_t *orig, const json_t *mod, const json_t *cur,
			bool *ret_changed)
{
	json_t *patch = json_object(), *mv, *ov;
	const char *key;

	*ret_changed = false;
	if (patch == NULL)
		return NULL;
	json_object_foreach((json_t *)mod, key, mv)
	{
		struct sf cs = child(s, key);
		const json_t *cv = json_object_get(cur, key);
		ov = json_object_get(orig, key);
		if (cv == NULL) {
			json_object_set(patch, key, mv);
			*ret_changed = true;
			continue;
		}
		if (is_merged_list(cs, mv) && json_is_array(cv)) {
			bool any = false;
			json_t *l;
			if (cs.merge_key != NULL) {
				l = diff_keyed_list(cs, json_is_array(ov) ? ov : NULL, mv, cv, &any);
			} else {
				json_t *e;
				size_t i;
				l = json_array();
				json_array_foreach(mv, i, e)
				{
					if (!contains(cv, e)) {
						json_array_append(l, e);
						any = true;
					}
				}
				json_array_foreach(ov, i, e)
				{
					if (!contains(mv, e) && contains(cv, e))
						any = true;
				}
			}
			if (l == NULL)
				goto oom;
			if (any) {
				if (json_array_size(l) > 0)
					json_object_set(patch, key, l);
				if (list_directives(patch, key, cs, json_is_array(ov) ? ov : NULL, mv,
						    cv) != 0) {
					json_decref(l);
					goto oom;
				}
				*ret_changed = true;
			}
			json_decref(l);
			continue;
		}
		bool changed = false;
		json_t *d = diff_value(cs, ov, mv, cv, &changed);
		if (d == NULL)
			goto oom;
		if (changed) {
			json_object_set(patch, key, d);
			*ret_changed = true;
		}
		json_decref(d);
	}
	/* Fields the user removed since the last apply. */
	json_object_foreach((json_t *)orig, key, ov)
	{
		if (json_object_get(mod, key) == NULL && json_object_get(cur, key) != NULL) {
			json_object_set_new(patch, key, json_null());
			*ret_changed = true;
		}
	}
	if (*ret_changed && (s.flags & API_F_PATCH_RETAIN_KEYS)) {
		json_t *keep = json_array();
		json_object_foreach((json_t *)mod, key, mv)
			json_array_append_new(keep, json_string(key));
		json_object_set_new(patch, "$retainKeys", keep);
	}
	return patch;
oom:
	json_decref(patch);
	return NULL;
}

/* The patch for one value: a map patch for objects that merge, else the
 * modified value itself when it differs from the current one. */
static json_t *diff_value(struct sf s, const json_t *orig, const json_t *mod, const json_t *cur,
			  bool *ret_changed)
{
	bool atomic = false;

	if (s.kind == API_V_OBJECT) {
		const struct api_type *t = api_type_get(s.ref);
		atomic = (t != NULL && (t->flags & API_TF_MAP_ATOMIC)) ||
			 (s.flags & API_F_MAP_ATOMIC);
	}
	if (json_is_object(mod) && json_is_object(cur) && !atomic &&
	    !(s.flags & API_F_PATCH_REPLACE))
		return diff_map(s, json_is_object(orig) ? orig : NULL, mod, cur, ret_changed);
	/* A list sent whole is compared with what was applied last, when
	 * known: the server may default fields inside its items, and a list
	 * the user did not change must not make every apply a change. */
	if (json_is_array(mod) && orig != NULL)
		*ret_changed = !json_equal(mod, orig);
	else
		*ret_changed = cur == NULL || !json_equal(mod, cur);
	return json_incref((json_t *)mod);
}

int api_patch_strategic_diff(int type, const json_t *orig, const json_t *mod, const json_t *cur,
			     json_t **ret_patch)
{
	struct sf root = NONE;
	bool changed;
	json_t *p;

	if (type >= 0 && api_type_get(type) != NULL)
		root = (struct sf){API_V_OBJECT, (uint16_t)type, 0, NULL};
	if (!json_is_object(mod) || !json_is_object(cur))
		return -EINVAL;
	p = diff_map(root, json_is_object(orig) ? orig : NULL, mod, cur, &changed);
	if (p == NULL)
		return -ENOMEM;
	*ret_patch = p;
	return 0;
}
