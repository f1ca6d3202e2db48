/* The patch engine: RFC 7386 merge patch, RFC 6902 JSON patch, Kubernetes
 * strategic merge patch and a field-ownership-free server-side apply.
 *
 * Every entry point works on a deep copy of the target and swaps it in
 * only on success, which gives atomicity for free: a failing operation in
 * the middle of a JSON patch, or a bad directive deep inside a strategic
 * patch, leaves the caller's tree as it was.
 *
 * The strategic merge follows the semantics of Kubernetes' apimachinery
 * strategicpatch package (mergeMap/mergeSlice as used by the API server
 * with MergeParallelList and IgnoreUnmatchedNulls), with the field
 * strategies taken from our schema tables instead of Go struct tags.  Where
 * that package copies a patch value raw into a place the original lacks,
 * we merge it onto an empty value instead, so that directives and nulls in
 * it are processed rather than stored. */
#include "src/api/patch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Deeper patches are refused rather than risk the stack; the decoders in
 * http/ already refuse far shallower documents. */
#define MAX_DEPTH 512

#define DIRECTIVE_MARKER "$patch"
#define RETAIN_KEYS "$retainKeys"
#define SET_ORDER_PREFIX "$setElementOrder"
#define DELETE_PRIMITIVE_PREFIX "$deleteFromPrimitiveList"

struct ctx {
	char *err;
	size_t errlen;
	int depth;
};

__attribute__((format(printf, 2, 3))) static int fail(struct ctx *c, const char *fmt, ...)
{
	if (c->err && c->errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* ---------------------------------------------------------------- Values */

/* JSON equality with numbers compared by value (1 == 1.0), as RFC 6902's
 * test operation and Go's decoded float64s both see them. */
static bool val_equal(const json_t *a, const json_t *b)
{
	if (a == b) {
		return true;
	}
	if (!a || !b) {
		return false;
	}
	if (json_is_number(a) && json_is_number(b)) {
		if (json_is_integer(a) && json_is_integer(b)) {
			return json_integer_value(a) == json_integer_value(b);
		}
		double x = json_number_value(a);
		double y = json_number_value(b);
		return !(x < y) && !(x > y);
	}
	if (json_typeof(a) != json_typeof(b)) {
		return false;
	}
	switch (json_typeof(a)) {
	case JSON_OBJECT: {
		if (json_object_size(a) != json_object_size(b)) {
			return false;
		}
		const char *k;
		json_t *v;
		json_object_foreach ((json_t *)a, k, v) {
			if (!val_equal(v, json_object_get(b, k))) {
				return false;
			}
		}
		return true;
	}
	case JSON_ARRAY: {
		size_t n = json_array_size(a);
		if (n != json_array_size(b)) {
			return false;
		}
		for (size_t i = 0; i < n; i++) {
			if (!val_equal(json_array_get(a, i), json_array_get(b, i))) {
				return false;
			}
		}
		return true;
	}
	case JSON_STRING:
		return json_equal(a, b) != 0;
	default:
		return true; /* true, false, null: the type says it all */
	}
}

/* Replaces the owned reference in *slot by @v (owned; NULL = absent). */
static void slot_set(json_t **slot, json_t *v)
{
	json_decref(*slot);
	*slot = v;
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* "$setElementOrder/containers" -> "containers"; NULL when malformed. */
static const char *directive_field(const char *key, const char *prefix)
{
	size_t n = strlen(prefix);
	if (strncmp(key, prefix, n) != 0 || key[n] != '/' || key[n + 1] == '\0') {
		return NULL;
	}
	return key + n + 1;
}

/* A growable array of borrowed pointers. */
struct vec {
	json_t **v;
	size_t n;
	size_t cap;
};

static int vec_push(struct vec *a, json_t *x)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 8;
		json_t **v = realloc(a->v, cap * sizeof(*v));
		if (!v) {
			return -ENOMEM;
		}
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = x;
	return 0;
}

static int vec_from_array(struct vec *a, const json_t *arr)
{
	for (size_t i = 0; i < json_array_size(arr); i++) {
		int rc = vec_push(a, json_array_get(arr, i));
		if (rc != 0) {
			return rc;
		}
	}
	return 0;
}

static void vec_free(struct vec *a)
{
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

/* ---------------------------------------------------------------- RFC 7386 */

static int merge_patch(struct ctx *c, json_t **slot, const json_t *patch)
{
	if (!json_is_object(patch)) {
		json_t *v = json_deep_copy(patch);
		if (!v) {
			return -ENOMEM;
		}
		slot_set(slot, v);
		return 0;
	}
	if (++c->depth > MAX_DEPTH) {
		return fail(c, "patch nested too deeply");
	}
	if (!json_is_object(*slot)) {
		json_t *o = json_object();
		if (!o) {
			return -ENOMEM;
		}
		slot_set(slot, o);
	}
	const char *k;
	json_t *v;
	json_object_foreach ((json_t *)patch, k, v) {
		if (json_is_null(v)) {
			json_object_del(*slot, k);
			continue;
		}
		json_t *child = json_incref(json_object_get(*slot, k));
		int rc = merge_patch(c, &child, v);
		if (rc != 0) {
			json_decref(child);
			return rc;
		}
		if (json_object_set_new(*slot, k, child) != 0) {
			return -ENOMEM;
		}
	}
	c->depth--;
	return 0;
}

int api_patch_merge(json_t **target, const json_t *patch, char *err, size_t errlen)
{
	struct ctx c = {err, errlen, 0};
	json_t *work = NULL;
	if (*target) {
		work = json_deep_copy(*target);
		if (!work) {
			return -ENOMEM;
		}
	}
	int rc = merge_patch(&c, &work, patch);
	if (rc != 0) {
		json_decref(work);
		return rc;
	}
	slot_set(target, work);
	return 0;
}

/* ---------------------------------------------------------------- RFC 6902 */

/* An RFC 6901 pointer, split into unescaped tokens stored one after the
 * other (NUL-terminated) in @buf. */
struct pointer {
	char *buf;
	size_t n;
};

static int pointer_parse(struct ctx *c, const char *s, struct pointer *p)
{
	p->buf = NULL;
	p->n = 0;
	if (s[0] != '\0' && s[0] != '/') {
		return fail(c, "JSON pointer %s does not start with /", s);
	}
	size_t len = strlen(s);
	char *out = malloc(len + 1);
	if (!out) {
		return -ENOMEM;
	}
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (ch == '/') {
			if (i > 0) {
				out[o++] = '\0';
			}
			p->n++;
		} else if (ch == '~') {
			if (s[i + 1] == '0') {
				out[o++] = '~';
			} else if (s[i + 1] == '1') {
				out[o++] = '/';
			} else {
				free(out);
				return fail(c, "JSON pointer %s has an invalid ~ escape", s);
			}
			i++;
		} else {
			out[o++] = ch;
		}
	}
	out[o] = '\0';
	p->buf = out;
	return 0;
}

static const char *token_next(const char *t)
{
	return t + strlen(t) + 1;
}

/* An array index token: digits without leading zeros.  -1 when not one. */
static int parse_index(const char *t, size_t *ret)
{
	if (t[0] == '\0' || (t[0] == '0' && t[1] != '\0')) {
		return -1;
	}
	size_t v = 0;
	for (const char *q = t; *q; q++) {
		if (*q < '0' || *q > '9') {
			return -1;
		}
		if (v > (SIZE_MAX - 9) / 10) {
			return -1;
		}
		v = v * 10 + (size_t)(*q - '0');
	}
	*ret = v;
	return 0;
}

/* The value the first @n tokens of @p designate in @doc (borrowed), or NULL. */
static json_t *pointer_walk(json_t *doc, const struct pointer *p, size_t n, const char **ret_last)
{
	const char *t = p->buf;
	json_t *cur = doc;
	for (size_t i = 0; i < n && cur; i++) {
		if (json_is_object(cur)) {
			cur = json_object_get(cur, t);
		} else if (json_is_array(cur)) {
			size_t idx;
			if (parse_index(t, &idx) != 0 || idx >= json_array_size(cur)) {
				return NULL;
			}
			cur = json_array_get(cur, idx);
		} else {
			return NULL;
		}
		t = token_next(t);
	}
	if (ret_last) {
		*ret_last = t;
	}
	return cur;
}

static json_t *pointer_get(json_t *doc, const struct pointer *p)
{
	return pointer_walk(doc, p, p->n, NULL);
}

/* add: @value (owned) goes to @p in *doc. */
static int jp_add(struct ctx *c, json_t **doc, const struct pointer *p, const char *path,
		  json_t *value)
{
	if (p->n == 0) {
		slot_set(doc, value);
		return 0;
	}
	const char *last;
	json_t *parent = pointer_walk(*doc, p, p->n - 1, &last);
	if (json_is_object(parent)) {
		if (json_object_set_new(parent, last, value) != 0) {
			return -ENOMEM;
		}
		return 0;
	}
	if (json_is_array(parent)) {
		size_t idx;
		size_t size = json_array_size(parent);
		if (strcmp(last, "-") == 0) {
			idx = size;
		} else if (parse_index(last, &idx) != 0 || idx > size) {
			json_decref(value);
			return fail(c, "path %s: invalid array index", path);
		}
		if (json_array_insert_new(parent, idx, value) != 0) {
			return -ENOMEM;
		}
		return 0;
	}
	json_decref(value);
	return fail(c, "path %s: parent does not exist", path);
}

/* remove: takes the value at @p out of *doc; *ret_value gets it (owned)
 * when not NULL. */
static int jp_remove(struct ctx *c, json_t **doc, const struct pointer *p, const char *path,
		     json_t **ret_value)
{
	if (p->n == 0) {
		return fail(c, "path %s: cannot remove the whole document", path);
	}
	const char *last;
	json_t *parent = pointer_walk(*doc, p, p->n - 1, &last);
	json_t *v = NULL;
	if (json_is_object(parent)) {
		v = json_object_get(parent, last);
		if (!v) {
			return fail(c, "path %s: no such member", path);
		}
		json_incref(v);
		json_object_del(parent, last);
	} else if (json_is_array(parent)) {
		size_t idx;
		if (parse_index(last, &idx) != 0 || idx >= json_array_size(parent)) {
			return fail(c, "path %s: invalid array index", path);
		}
		v = json_incref(json_array_get(parent, idx));
		json_array_remove(parent, idx);
	} else {
		return fail(c, "path %s: parent does not exist", path);
	}
	if (ret_value) {
		*ret_value = v;
	} else {
		json_decref(v);
	}
	return 0;
}

static int jp_replace(struct ctx *c, json_t **doc, const struct pointer *p, const char *path,
		      json_t *value)
{
	if (p->n == 0) {
		slot_set(doc, value);
		return 0;
	}
	const char *last;
	json_t *parent = pointer_walk(*doc, p, p->n - 1, &last);
	if (json_is_object(parent) && json_object_get(parent, last)) {
		if (json_object_set_new(parent, last, value) != 0) {
			return -ENOMEM;
		}
		return 0;
	}
	size_t idx;
	if (json_is_array(parent) && parse_index(last, &idx) == 0 &&
	    idx < json_array_size(parent)) {
		if (json_array_set_new(parent, idx, value) != 0) {
			return -ENOMEM;
		}
		return 0;
	}
	json_decref(value);
	return fail(c, "path %s: no such value to replace", path);
}

static const char *op_string(const json_t *op, const char *member)
{
	return json_string_value(json_object_get(op, member));
}

static int jp_op(struct ctx *c, json_t **doc, const json_t *op, size_t i)
{
	if (!json_is_object(op)) {
		return fail(c, "operation %zu is not an object", i);
	}
	const char *name = op_string(op, "op");
	const char *path = op_string(op, "path");
	if (!name) {
		return fail(c, "operation %zu: missing op", i);
	}
	if (!path) {
		return fail(c, "operation %zu (%s): missing path", i, name);
	}
	struct pointer p;
	struct pointer from = {NULL, 0};
	int rc = pointer_parse(c, path, &p);
	if (rc != 0) {
		return rc;
	}
	const json_t *value = json_object_get(op, "value");
	bool needs_value = strcmp(name, "add") == 0 || strcmp(name, "replace") == 0 ||
			   strcmp(name, "test") == 0;
	bool needs_from = strcmp(name, "move") == 0 || strcmp(name, "copy") == 0;
	if (needs_value && !value) {
		rc = fail(c, "operation %zu (%s): missing value", i, name);
		goto out;
	}
	const char *from_path = NULL;
	if (needs_from) {
		from_path = op_string(op, "from");
		if (!from_path) {
			rc = fail(c, "operation %zu (%s): missing from", i, name);
			goto out;
		}
		rc = pointer_parse(c, from_path, &from);
		if (rc != 0) {
			goto out;
		}
	}

	if (strcmp(name, "add") == 0 || strcmp(name, "replace") == 0) {
		json_t *v = json_deep_copy(value);
		if (!v) {
			rc = -ENOMEM;
			goto out;
		}
		rc = name[0] == 'a' ? jp_add(c, doc, &p, path, v) : jp_replace(c, doc, &p, path, v);
	} else if (strcmp(name, "remove") == 0) {
		rc = jp_remove(c, doc, &p, path, NULL);
	} else if (strcmp(name, "test") == 0) {
		json_t *cur = pointer_get(*doc, &p);
		if (!cur) {
			rc = fail(c, "operation %zu (test): path %s does not exist", i, path);
		} else if (!val_equal(cur, value)) {
			rc = fail(c, "operation %zu (test): value at %s differs", i, path);
		}
	} else if (strcmp(name, "move") == 0) {
		/* RFC 6902 4.4: the from location must not be a proper prefix
		 * of the path. */
		size_t fl = strlen(from_path);
		if (strncmp(path, from_path, fl) == 0 && path[fl] == '/') {
			rc = fail(c, "operation %zu (move): cannot move %s into its own child %s", i,
				  from_path, path);
			goto out;
		}
		if (!pointer_get(*doc, &from)) {
			rc = fail(c, "operation %zu (move): from %s does not exist", i, from_path);
			goto out;
		}
		if (strcmp(path, from_path) == 0) {
			goto out;
		}
		json_t *v;
		rc = jp_remove(c, doc, &from, from_path, &v);
		if (rc == 0) {
			rc = jp_add(c, doc, &p, path, v);
		}
	} else if (strcmp(name, "copy") == 0) {
		json_t *src = pointer_get(*doc, &from);
		if (!src) {
			rc = fail(c, "operation %zu (copy): from %s does not exist", i, from_path);
			goto out;
		}
		json_t *v = json_deep_copy(src);
		if (!v) {
			rc = -ENOMEM;
			goto out;
		}
		rc = jp_add(c, doc, &p, path, v);
	} else {
		rc = fail(c, "operation %zu: unknown op %s", i, name);
	}
	if (rc == -EINVAL && c->err && c->errlen > 0 && strncmp(c->err, "operation", 9) != 0) {
		/* Prefix messages of the helpers with the operation. */
		char tmp[256];
		snprintf(tmp, sizeof(tmp), "%s", c->err);
		snprintf(c->err, c->errlen, "operation %zu (%s): %s", i, name, tmp);
	}
out:
	free(from.buf);
	free(p.buf);
	return rc;
}

int api_patch_json(json_t **target, const json_t *ops, char *err, size_t errlen)
{
	struct ctx c = {err, errlen, 0};
	if (!json_is_array(ops)) {
		return fail(&c, "a JSON patch must be an array of operations");
	}
	json_t *work = NULL;
	if (*target) {
		work = json_deep_copy(*target);
		if (!work) {
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < json_array_size(ops); i++) {
		int rc = jp_op(&c, &work, json_array_get(ops, i), i);
		if (rc != 0) {
			json_decref(work);
			return rc;
		}
	}
	slot_set(target, work);
	return 0;
}

/* ---------------------------------------------------------------- Schema */

/* What the schema says about one value: its kind (API_V_NONE when the
 * schema does not know it), the type or element it refers to, and the
 * patch facts of the field holding it. */
struct fld {
	uint8_t kind;
	uint16_t ref;
	uint16_t flags;
	const char *merge_key;
	const struct api_field *f;
};

static const struct fld UNKNOWN = {API_V_NONE, 0, 0, NULL, NULL};

/* The field @key of the object or map described by @node. */
static struct fld field_of(struct fld node, const char *key)
{
	if (node.kind == API_V_OBJECT) {
		const struct api_type *t = api_type_get(node.ref);
		const struct api_field *f = t ? api_type_field(t, key) : NULL;
		if (!f) {
			return UNKNOWN;
		}
		struct fld r = {f->kind, f->ref, f->flags, api_field_merge_key(f), f};
		return r;
	}
	if (node.kind == API_V_MAP) {
		const struct api_elem *e = api_elem_get(node.ref);
		if (!e) {
			return UNKNOWN;
		}
		struct fld r = {e->kind, e->ref, 0, NULL, NULL};
		return r;
	}
	return UNKNOWN;
}

/* The element of the list field @f. */
static struct fld elem_of(struct fld f)
{
	if (f.kind != API_V_ARRAY) {
		return UNKNOWN;
	}
	const struct api_elem *e = api_elem_get(f.ref);
	if (!e) {
		return UNKNOWN;
	}
	struct fld r = {e->kind, e->ref, 0, NULL, NULL};
	return r;
}

static struct fld root_of(const struct api_type *type)
{
	if (!type) {
		return UNKNOWN;
	}
	struct fld r = {API_V_OBJECT, (uint16_t)(type - api_gen_types), 0, NULL, NULL};
	return r;
}

static bool kind_is_container(uint8_t k)
{
	return k == API_V_OBJECT || k == API_V_MAP || k == API_V_ARRAY;
}

/* Refuses a patch value whose JSON type contradicts the schema: an API
 * server decoding the result into typed structs would fail the same way. */
static int check_type(struct ctx *c, struct fld f, const json_t *v, const char *key)
{
	if (f.kind == API_V_NONE || f.kind == API_V_ANY || json_is_null(v)) {
		return 0;
	}
	bool ok;
	if (json_is_object(v)) {
		ok = f.kind == API_V_OBJECT || f.kind == API_V_MAP;
	} else if (json_is_array(v)) {
		ok = f.kind == API_V_ARRAY;
	} else {
		ok = !kind_is_container(f.kind);
	}
	if (!ok) {
		const char *got = json_is_object(v) ? "object" : json_is_array(v) ? "array" : "scalar";
		return fail(c, "%s: expected %s, got %s", key, api_vkind_name(f.kind), got);
	}
	return 0;
}

/* ---------------------------------------------------------------- Lists */

/* The identity of a list item: its merge key value, or itself. */
static const json_t *item_key(const json_t *item, const char *mk)
{
	return mk ? json_object_get(item, mk) : item;
}

static bool same_item(const json_t *a, const json_t *b, const char *mk)
{
	const json_t *ka = item_key(a, mk);
	const json_t *kb = item_key(b, mk);
	return ka && kb && val_equal(ka, kb);
}

static long index_of(const struct vec *list, const json_t *item, const char *mk)
{
	for (size_t i = 0; i < list->n; i++) {
		if (same_item(list->v[i], item, mk)) {
			return (long)i;
		}
	}
	return -1;
}

/* Stable sort of @a by the position of each item in @order (items not in
 * it keep their place after the known ones). */
static int sort_by(struct vec *a, const struct vec *order, const char *mk)
{
	if (a->n < 2) {
		return 0;
	}
	long *pos = malloc(a->n * sizeof(*pos));
	if (!pos) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < a->n; i++) {
		long p = index_of(order, a->v[i], mk);
		pos[i] = p >= 0 ? p : (long)order->n;
	}
	for (size_t i = 1; i < a->n; i++) {
		json_t *x = a->v[i];
		long px = pos[i];
		size_t j = i;
		while (j > 0 && pos[j - 1] > px) {
			a->v[j] = a->v[j - 1];
			pos[j] = pos[j - 1];
			j--;
		}
		a->v[j] = x;
		pos[j] = px;
	}
	free(pos);
	return 0;
}

/* Puts the items of @merged (a list) in the order strategicpatch gives
 * them: the items also present in @patch_order sorted by it, the others
 * (server-only) by @server_order, then the two merged so that an item
 * from the patch goes before the next server-only item unless both are
 * known to the server and the server had them the other way round.  The
 * result is a new array in *ret. */
static int order_items(const json_t *merged, const struct vec *patch_order,
		       const struct vec *server_order, const char *mk, json_t **ret)
{
	struct vec in_patch = {0}, server_only = {0};
	json_t *out = NULL;
	int rc = 0;
	for (size_t i = 0; i < json_array_size(merged); i++) {
		json_t *x = json_array_get(merged, i);
		rc = vec_push(index_of(patch_order, x, mk) >= 0 ? &in_patch : &server_only, x);
		if (rc != 0) {
			goto out;
		}
	}
	if ((rc = sort_by(&in_patch, patch_order, mk)) != 0 ||
	    (rc = sort_by(&server_only, server_order, mk)) != 0) {
		goto out;
	}
	out = json_array();
	if (!out) {
		rc = -ENOMEM;
		goto out;
	}
	size_t i = 0, j = 0;
	while (i < server_only.n || j < in_patch.n) {
		json_t *next;
		if (j >= in_patch.n) {
			next = server_only.v[i++];
		} else if (i >= server_only.n) {
			next = in_patch.v[j++];
		} else {
			long li = index_of(server_order, server_only.v[i], mk);
			long ri = index_of(server_order, in_patch.v[j], mk);
			if (li >= 0 && ri >= 0 && li < ri) {
				next = server_only.v[i++];
			} else {
				next = in_patch.v[j++];
			}
		}
		if (json_array_append(out, next) != 0) {
			rc = -ENOMEM;
			goto out;
		}
	}
	*ret = out;
	out = NULL;
out:
	json_decref(out);
	vec_free(&in_patch);
	vec_free(&server_only);
	return rc;
}

/* The class of a list element for the "all items alike" rule. */
static int elem_class(const json_t *v)
{
	if (json_is_number(v)) {
		return JSON_INTEGER;
	}
	if (json_is_boolean(v)) {
		return JSON_TRUE;
	}
	return (int)json_typeof(v);
}

static int check_elements(struct ctx *c, const json_t *a, const json_t *b, const char *key,
			  bool *ret_maps)
{
	int cls = -1;
	const json_t *lists[2] = {a, b};
	for (int l = 0; l < 2; l++) {
		for (size_t i = 0; i < json_array_size(lists[l]); i++) {
			const json_t *v = json_array_get(lists[l], i);
			if (json_is_array(v)) {
				return fail(c, "%s: lists of lists are not supported", key);
			}
			if (json_is_null(v)) {
				return fail(c, "%s: null list element", key);
			}
			int k = elem_class(v);
			if (cls >= 0 && k != cls) {
				return fail(c, "%s: list element types are not identical", key);
			}
			cls = k;
		}
	}
	*ret_maps = cls == JSON_OBJECT;
	return 0;
}

static int smp_map(struct ctx *c, json_t **slot, const json_t *patch, struct fld node);

/* Merges the list @patch into the list in *slot (mergeSlice). */
static int smp_merge_list(struct ctx *c, json_t **slot, const json_t *patch, struct fld f,
			  const char *key)
{
	const char *mk = f.merge_key;
	struct fld e = elem_of(f);
	struct vec porder = {0}, sorder = {0};
	json_t *work = NULL;
	json_t *snapshot = NULL;
	json_t *result = NULL;
	bool maps;
	int rc;

	if (!json_is_array(*slot)) {
		json_t *a = json_array();
		if (!a) {
			return -ENOMEM;
		}
		slot_set(slot, a);
	}
	if (json_array_size(*slot) == 0 && json_array_size(patch) == 0) {
		return 0;
	}
	rc = check_elements(c, *slot, patch, key, &maps);
	if (rc != 0) {
		return rc;
	}
	work = json_incref(*slot);

	if (!maps) {
		/* A set of scalars: union without duplicates. */
		json_t *u = json_array();
		if (!u) {
			rc = -ENOMEM;
			goto out;
		}
		const json_t *lists[2] = {work, patch};
		for (int l = 0; l < 2; l++) {
			for (size_t i = 0; i < json_array_size(lists[l]); i++) {
				json_t *v = json_array_get(lists[l], i);
				bool dup = false;
				for (size_t j = 0; j < json_array_size(u) && !dup; j++) {
					dup = val_equal(json_array_get(u, j), v);
				}
				if (!dup && json_array_append_new(u, json_deep_copy(v)) != 0) {
					json_decref(u);
					rc = -ENOMEM;
					goto out;
				}
			}
		}
		mk = NULL;
		snapshot = json_incref(work);
		json_decref(work);
		work = u;
		if ((rc = vec_from_array(&porder, patch)) != 0) {
			goto out;
		}
	} else {
		if (!mk) {
			rc = fail(c, "%s: cannot merge a list of objects without a merge key", key);
			goto out;
		}
		bool replace = false;
		for (size_t i = 0; i < json_array_size(patch); i++) {
			json_t *v = json_array_get(patch, i);
			json_t *d = json_object_get(v, DIRECTIVE_MARKER);
			if (!d) {
				if (!json_object_get(v, mk)) {
					rc = fail(c, "%s: element does not contain the merge key %s", key,
						  mk);
					goto out;
				}
				if ((rc = vec_push(&porder, v)) != 0) {
					goto out;
				}
				continue;
			}
			const char *ds = json_string_value(d);
			if (ds && strcmp(ds, "delete") == 0) {
				json_t *kv = json_object_get(v, mk);
				if (!kv) {
					rc = fail(c, "%s: $patch: delete element lacks the merge key %s",
						  key, mk);
					goto out;
				}
				for (size_t j = json_array_size(work); j-- > 0;) {
					const json_t *ov = json_array_get(work, j);
					const json_t *ok = json_object_get(ov, mk);
					if (ok && val_equal(ok, kv)) {
						json_array_remove(work, j);
					}
				}
			} else if (ds && strcmp(ds, "replace") == 0) {
				replace = true;
			} else if (ds && strcmp(ds, "merge") == 0) {
				rc = fail(c, "%s: merging lists cannot yet be specified in the patch",
					  key);
				goto out;
			} else {
				rc = fail(c, "%s: unknown $patch directive in list element", key);
				goto out;
			}
		}
		if (replace) {
			/* The list becomes the patch's other elements. */
			json_t *r = json_array();
			if (!r) {
				rc = -ENOMEM;
				goto out;
			}
			json_decref(work);
			work = r;
			for (size_t i = 0; i < porder.n; i++) {
				json_t *x = NULL;
				rc = smp_map(c, &x, porder.v[i], e);
				if (rc == 0 && json_array_append_new(work, x) != 0) {
					rc = -ENOMEM;
				}
				if (rc != 0) {
					goto out;
				}
			}
			porder.n = 0;
		}
		snapshot = json_copy(work);
		if (!snapshot) {
			rc = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < json_array_size(work); i++) {
			if (!json_is_object(json_array_get(work, i)) ||
			    !json_object_get(json_array_get(work, i), mk)) {
				rc = fail(c, "%s: an existing element lacks the merge key %s", key, mk);
				goto out;
			}
		}
		for (size_t i = 0; i < porder.n; i++) {
			json_t *pv = porder.v[i];
			size_t j;
			for (j = 0; j < json_array_size(work); j++) {
				if (same_item(json_array_get(work, j), pv, mk)) {
					break;
				}
			}
			json_t *child = j < json_array_size(work) ? json_incref(json_array_get(work, j))
								 : NULL;
			rc = smp_map(c, &child, pv, e);
			if (rc != 0) {
				json_decref(child);
				goto out;
			}
			int set = j < json_array_size(work) ? json_array_set_new(work, j, child)
							    : json_array_append_new(work, child);
			if (set != 0) {
				rc = -ENOMEM;
				goto out;
			}
		}
	}
	if ((rc = vec_from_array(&sorder, snapshot)) != 0 ||
	    (rc = order_items(work, &porder, &sorder, mk, &result)) != 0) {
		goto out;
	}
	slot_set(slot, result);
out:
	vec_free(&porder);
	vec_free(&sorder);
	json_decref(snapshot);
	json_decref(work);
	return rc;
}

static int smp_value(struct ctx *c, json_t **slot, const json_t *pv, struct fld f, const char *key)
{
	int rc = check_type(c, f, pv, key);
	if (rc != 0) {
		return rc;
	}
	if (json_is_object(pv)) {
		if ((f.flags & API_F_PATCH_REPLACE) || !json_is_object(*slot)) {
			slot_set(slot, NULL);
		}
		return smp_map(c, slot, pv, f);
	}
	if (json_is_array(pv) && (f.flags & API_F_PATCH_MERGE)) {
		if (++c->depth > MAX_DEPTH) {
			return fail(c, "patch nested too deeply");
		}
		rc = smp_merge_list(c, slot, pv, f, key);
		c->depth--;
		return rc;
	}
	/* Scalars and lists without the merge strategy replace. */
	json_t *v = json_deep_copy(pv);
	if (!v) {
		return -ENOMEM;
	}
	slot_set(slot, v);
	return 0;
}

/* Checks that the items of @patch_list come in the order of @order
 * (validatePatchWithSetOrderList). */
static int check_order(struct ctx *c, const json_t *patch_list, const json_t *order,
		       const char *mk, const char *key)
{
	size_t pn = json_array_size(patch_list);
	size_t on = json_array_size(order);
	size_t pi = 0, oi = 0;
	while (pi < pn && oi < on) {
		const json_t *pv = json_array_get(patch_list, pi);
		if (json_is_object(pv) && json_object_get(pv, DIRECTIVE_MARKER)) {
			pi++;
			continue;
		}
		const json_t *ov = json_array_get(order, oi);
		if (mk && (!json_object_get(pv, mk) || !json_object_get(ov, mk))) {
			return fail(c, "%s: $setElementOrder item lacks the merge key %s", key, mk);
		}
		if (same_item(pv, ov, mk)) {
			pi++;
		}
		oi++;
	}
	for (; pi < pn; pi++) {
		const json_t *pv = json_array_get(patch_list, pi);
		if (!(json_is_object(pv) && json_object_get(pv, DIRECTIVE_MARKER))) {
			return fail(c, "%s: the order of the patch list does not match "
				       "its $setElementOrder list",
				    key);
		}
	}
	return 0;
}

/* Handles "$setElementOrder/<name>": merges patch[name] into obj[name] and
 * puts the result in the order the directive gives (mergePatchIntoOriginal). */
static int smp_ordered(struct ctx *c, json_t *obj, const char *name, const json_t *order,
		       const json_t *patch, struct fld node)
{
	struct fld f = field_of(node, name);
	json_t *ol = json_object_get(obj, name);
	const json_t *pl = json_object_get(patch, name);
	struct vec porder = {0}, sorder = {0};
	json_t *snapshot = NULL;
	json_t *merged = NULL;
	json_t *result = NULL;
	int rc;

	if (ol && !json_is_array(ol)) {
		return fail(c, "%s: $setElementOrder for a field that is not a list", name);
	}
	if (pl && !json_is_array(pl)) {
		return fail(c, "%s: $setElementOrder needs the field to be a list in the patch",
			    name);
	}
	if (!ol && !pl) {
		return 0;
	}
	/* Only lists of objects are ordered by their merge key. */
	bool maps;
	rc = check_elements(c, ol, pl, name, &maps);
	if (rc != 0) {
		return rc;
	}
	const char *mk = maps ? f.merge_key : NULL;
	if (maps && !mk) {
		return fail(c, "%s: $setElementOrder on a list without a merge key", name);
	}
	for (size_t i = 0; mk && i < json_array_size(order); i++) {
		if (!json_object_get(json_array_get(order, i), mk)) {
			return fail(c, "%s: $setElementOrder item lacks the merge key %s", name, mk);
		}
	}
	if (pl && (rc = check_order(c, pl, order, mk, name)) != 0) {
		return rc;
	}
	snapshot = ol ? json_copy(ol) : json_array();
	if (!snapshot) {
		return -ENOMEM;
	}
	merged = json_incref(ol);
	if (pl) {
		rc = smp_value(c, &merged, pl, f, name);
		if (rc != 0) {
			goto out;
		}
	}
	if ((rc = vec_from_array(&porder, order)) != 0 ||
	    (rc = vec_from_array(&sorder, snapshot)) != 0 ||
	    (rc = order_items(merged, &porder, &sorder, mk, &result)) != 0) {
		goto out;
	}
	if (json_object_set_new(obj, name, result) != 0) {
		rc = -ENOMEM;
	}
out:
	vec_free(&porder);
	vec_free(&sorder);
	json_decref(merged);
	json_decref(snapshot);
	return rc;
}

/* Whether @patch carries "$setElementOrder/<key>" (then the list was
 * already merged with its order). */
static bool has_order_directive(const json_t *patch, const char *key)
{
	const char *k;
	json_t *v;
	json_object_foreach ((json_t *)patch, k, v) {
		const char *name = directive_field(k, SET_ORDER_PREFIX);
		if (name && strcmp(name, key) == 0) {
			return true;
		}
	}
	return false;
}

static int smp_retain_keys(struct ctx *c, json_t *obj, const json_t *patch, const json_t *keep)
{
	if (!json_is_array(keep)) {
		return fail(c, "$retainKeys must be a list of field names");
	}
	for (size_t i = 0; i < json_array_size(keep); i++) {
		if (!json_is_string(json_array_get(keep, i))) {
			return fail(c, "$retainKeys must be a list of field names");
		}
	}
	const char *k;
	json_t *v;
	void *tmp;
	json_object_foreach ((json_t *)patch, k, v) {
		if (json_is_null(v) || k[0] == '$') {
			continue;
		}
		bool found = false;
		for (size_t i = 0; i < json_array_size(keep) && !found; i++) {
			found = strcmp(json_string_value(json_array_get(keep, i)), k) == 0;
		}
		if (!found) {
			return fail(c, "field %s is in the patch but not in $retainKeys", k);
		}
	}
	json_object_foreach_safe (obj, tmp, k, v) {
		bool found = false;
		for (size_t i = 0; i < json_array_size(keep) && !found; i++) {
			found = strcmp(json_string_value(json_array_get(keep, i)), k) == 0;
		}
		if (!found) {
			json_object_del(obj, k);
		}
	}
	return 0;
}

static int smp_delete_primitives(struct ctx *c, json_t *obj, const char *name, const json_t *del)
{
	if (!json_is_array(del)) {
		return fail(c, "%s/%s must be a list", DELETE_PRIMITIVE_PREFIX, name);
	}
	for (size_t i = 0; i < json_array_size(del); i++) {
		const json_t *v = json_array_get(del, i);
		if (json_is_object(v) || json_is_array(v)) {
			return fail(c, "%s/%s must list scalars", DELETE_PRIMITIVE_PREFIX, name);
		}
	}
	json_t *list = json_object_get(obj, name);
	if (!list) {
		return 0; /* nothing to delete from */
	}
	if (!json_is_array(list)) {
		return fail(c, "%s/%s: the field is not a list", DELETE_PRIMITIVE_PREFIX, name);
	}
	for (size_t j = json_array_size(list); j-- > 0;) {
		const json_t *x = json_array_get(list, j);
		for (size_t i = 0; i < json_array_size(del); i++) {
			if (val_equal(x, json_array_get(del, i))) {
				json_array_remove(list, j);
				break;
			}
		}
	}
	return 0;
}

/* Merges the object @patch into *slot (mergeMap). */
static int smp_map(struct ctx *c, json_t **slot, const json_t *patch, struct fld node)
{
	if (++c->depth > MAX_DEPTH) {
		return fail(c, "patch nested too deeply");
	}
	int rc;
	const json_t *dir = json_object_get(patch, DIRECTIVE_MARKER);
	if (dir) {
		const char *ds = json_string_value(dir);
		if (ds && strcmp(ds, "delete") == 0) {
			json_t *o = json_object();
			if (!o) {
				return -ENOMEM;
			}
			slot_set(slot, o);
			c->depth--;
			return 0;
		}
		if (ds && strcmp(ds, "replace") == 0) {
			slot_set(slot, NULL);
		} else if (!ds || strcmp(ds, "merge") != 0) {
			return fail(c, "unknown $patch directive %s", ds ? ds : "(not a string)");
		}
	}
	if (!json_is_object(*slot)) {
		json_t *o = json_object();
		if (!o) {
			return -ENOMEM;
		}
		slot_set(slot, o);
	}
	json_t *obj = *slot;

	const json_t *keep = json_object_get(patch, RETAIN_KEYS);
	if (keep && (rc = smp_retain_keys(c, obj, patch, keep)) != 0) {
		return rc;
	}

	const char *k;
	json_t *v;
	json_object_foreach ((json_t *)patch, k, v) {
		if (!has_prefix(k, SET_ORDER_PREFIX)) {
			continue;
		}
		const char *name = directive_field(k, SET_ORDER_PREFIX);
		if (!name) {
			return fail(c, "malformed directive %s", k);
		}
		if (!json_is_array(v)) {
			return fail(c, "%s must be a list", k);
		}
		if ((rc = smp_ordered(c, obj, name, v, patch, node)) != 0) {
			return rc;
		}
	}

	json_object_foreach ((json_t *)patch, k, v) {
		if (k[0] == '$') {
			if (strcmp(k, DIRECTIVE_MARKER) == 0 || strcmp(k, RETAIN_KEYS) == 0 ||
			    has_prefix(k, SET_ORDER_PREFIX)) {
				continue;
			}
			if (has_prefix(k, DELETE_PRIMITIVE_PREFIX)) {
				const char *name = directive_field(k, DELETE_PRIMITIVE_PREFIX);
				if (!name) {
					return fail(c, "malformed directive %s", k);
				}
				if ((rc = smp_delete_primitives(c, obj, name, v)) != 0) {
					return rc;
				}
				continue;
			}
			return fail(c, "unknown patch directive %s", k);
		}
		if (has_order_directive(patch, k)) {
			continue;
		}
		if (json_is_null(v)) {
			json_object_del(obj, k);
			continue;
		}
		json_t *child = json_incref(json_object_get(obj, k));
		rc = smp_value(c, &child, v, field_of(node, k), k);
		if (rc != 0) {
			json_decref(child);
			return rc;
		}
		if (json_object_set_new(obj, k, child) != 0) {
			return -ENOMEM;
		}
	}
	c->depth--;
	return 0;
}

int api_patch_strategic(const struct api_type *type, json_t **target, const json_t *patch,
			char *err, size_t errlen)
{
	struct ctx c = {err, errlen, 0};
	if (!json_is_object(patch)) {
		return fail(&c, "a strategic merge patch must be an object");
	}
	json_t *work = NULL;
	if (*target) {
		work = json_deep_copy(*target);
		if (!work) {
			return -ENOMEM;
		}
	}
	int rc = smp_map(&c, &work, patch, root_of(type));
	if (rc != 0) {
		json_decref(work);
		return rc;
	}
	slot_set(target, work);
	return 0;
}

/* ---------------------------------------------------------------- Apply */

/* A copy of the applied value @v without nulls in objects; "$" keys are
 * refused. */
static int ap_clean(struct ctx *c, const json_t *v, json_t **ret)
{
	if (++c->depth > MAX_DEPTH) {
		return fail(c, "configuration nested too deeply");
	}
	json_t *out = NULL;
	int rc = 0;
	if (json_is_object(v)) {
		out = json_object();
		if (!out) {
			return -ENOMEM;
		}
		const char *k;
		json_t *x;
		json_object_foreach ((json_t *)v, k, x) {
			if (k[0] == '$') {
				rc = fail(c, "%s: apply configurations take no directives", k);
				goto err;
			}
			if (json_is_null(x)) {
				continue;
			}
			json_t *y;
			if ((rc = ap_clean(c, x, &y)) != 0) {
				goto err;
			}
			if (json_object_set_new(out, k, y) != 0) {
				rc = -ENOMEM;
				goto err;
			}
		}
	} else if (json_is_array(v)) {
		out = json_array();
		if (!out) {
			return -ENOMEM;
		}
		for (size_t i = 0; i < json_array_size(v); i++) {
			json_t *y;
			if ((rc = ap_clean(c, json_array_get(v, i), &y)) != 0) {
				goto err;
			}
			if (json_array_append_new(out, y) != 0) {
				rc = -ENOMEM;
				goto err;
			}
		}
	} else {
		out = json_deep_copy(v);
		if (!out) {
			return -ENOMEM;
		}
	}
	c->depth--;
	*ret = out;
	return 0;
err:
	json_decref(out);
	return rc;
}

static int ap_map(struct ctx *c, json_t *obj, const json_t *applied, struct fld node);

/* Whether the live item @x has the identity of the applied item @a: equal
 * values for every list-map key @a sets (a key @a leaves out, usually one
 * with a default such as a port's protocol, is not compared). */
static bool ap_same(const json_t *x, const json_t *a, const char *const *keys, size_t nk)
{
	if (!json_is_object(x)) {
		return false;
	}
	for (size_t i = 0; i < nk; i++) {
		const json_t *av = json_object_get(a, keys[i]);
		if (av && !val_equal(av, json_object_get(x, keys[i]))) {
			return false;
		}
	}
	return true;
}

static int ap_list_map(struct ctx *c, json_t *live, const json_t *applied, struct fld f,
		       const char *key)
{
	const char *keys[8];
	size_t nk = 0;
	if (f.f && api_field_n_map_keys(f.f) > 0) {
		for (size_t i = 0; i < api_field_n_map_keys(f.f) && nk < 8; i++) {
			keys[nk++] = api_field_map_key(f.f, i);
		}
	} else {
		keys[nk++] = f.merge_key;
	}
	size_t n_live = json_array_size(live);
	bool *used = calloc(n_live + 1, sizeof(*used));
	if (!used) {
		return -ENOMEM;
	}
	struct fld e = elem_of(f);
	int rc = 0;
	for (size_t i = 0; i < json_array_size(applied); i++) {
		const json_t *a = json_array_get(applied, i);
		if (!json_is_object(a)) {
			rc = fail(c, "%s: list items must be objects", key);
			goto out;
		}
		bool any = false;
		for (size_t k = 0; k < nk; k++) {
			any = any || json_object_get(a, keys[k]);
		}
		if (!any) {
			rc = fail(c, "%s: list item lacks the key %s", key, keys[0]);
			goto out;
		}
		for (size_t j = 0; j < i; j++) {
			const json_t *b = json_array_get(applied, j);
			if (ap_same(b, a, keys, nk) && ap_same(a, b, keys, nk)) {
				rc = fail(c, "%s: duplicate entries for key %s", key, keys[0]);
				goto out;
			}
		}
		size_t j;
		for (j = 0; j < n_live; j++) {
			if (!used[j] && ap_same(json_array_get(live, j), a, keys, nk)) {
				break;
			}
		}
		if (j < n_live) {
			used[j] = true;
			rc = ap_map(c, json_array_get(live, j), a, e);
		} else {
			json_t *y;
			rc = ap_clean(c, a, &y);
			if (rc == 0 && json_array_append_new(live, y) != 0) {
				rc = -ENOMEM;
			}
		}
		if (rc != 0) {
			goto out;
		}
	}
out:
	free(used);
	return rc;
}

static int ap_set(struct ctx *c, json_t *live, const json_t *applied)
{
	for (size_t i = 0; i < json_array_size(applied); i++) {
		const json_t *a = json_array_get(applied, i);
		bool dup = false;
		for (size_t j = 0; j < json_array_size(live) && !dup; j++) {
			dup = val_equal(json_array_get(live, j), a);
		}
		if (dup) {
			continue;
		}
		json_t *y;
		int rc = ap_clean(c, a, &y);
		if (rc != 0) {
			return rc;
		}
		if (json_array_append_new(live, y) != 0) {
			return -ENOMEM;
		}
	}
	return 0;
}

static int ap_value(struct ctx *c, json_t **slot, const json_t *av, struct fld f, const char *key)
{
	int rc = check_type(c, f, av, key);
	if (rc != 0) {
		return rc;
	}
	bool merge = false;
	if (json_is_object(av) && json_is_object(*slot)) {
		const struct api_type *t = f.kind == API_V_OBJECT ? api_type_get(f.ref) : NULL;
		merge = !(f.flags & API_F_MAP_ATOMIC) && !(t && (t->flags & API_TF_MAP_ATOMIC));
		if (merge) {
			return ap_map(c, *slot, av, f);
		}
	}
	if (json_is_array(av) && json_is_array(*slot) && !(f.flags & API_F_LIST_ATOMIC)) {
		bool objects = json_array_size(av) > 0 && json_is_object(json_array_get(av, 0));
		bool keyed = f.merge_key || (f.f && api_field_n_map_keys(f.f) > 0);
		if (keyed && ((f.flags & API_F_LIST_MAP) || objects)) {
			return ap_list_map(c, *slot, av, f, key);
		}
		if ((f.flags & API_F_LIST_SET) || (!objects && (f.flags & API_F_PATCH_MERGE))) {
			return ap_set(c, *slot, av);
		}
	}
	json_t *y;
	if ((rc = ap_clean(c, av, &y)) != 0) {
		return rc;
	}
	slot_set(slot, y);
	return 0;
}

static int ap_map(struct ctx *c, json_t *obj, const json_t *applied, struct fld node)
{
	if (++c->depth > MAX_DEPTH) {
		return fail(c, "configuration nested too deeply");
	}
	const char *k;
	json_t *v;
	json_object_foreach ((json_t *)applied, k, v) {
		if (k[0] == '$') {
			return fail(c, "%s: apply configurations take no directives", k);
		}
		if (json_is_null(v)) {
			json_object_del(obj, k);
			continue;
		}
		json_t *child = json_incref(json_object_get(obj, k));
		int rc = ap_value(c, &child, v, field_of(node, k), k);
		if (rc != 0) {
			json_decref(child);
			return rc;
		}
		if (json_object_set_new(obj, k, child) != 0) {
			return -ENOMEM;
		}
	}
	c->depth--;
	return 0;
}

int api_patch_apply(const struct api_type *type, json_t **live, const json_t *applied, char *err,
		    size_t errlen)
{
	struct ctx c = {err, errlen, 0};
	if (!json_is_object(applied)) {
		return fail(&c, "an apply configuration must be an object");
	}
	json_t *work;
	int rc;
	if (!*live) {
		rc = ap_clean(&c, applied, &work);
		if (rc != 0) {
			return rc;
		}
		*live = work;
		return 0;
	}
	if (!json_is_object(*live)) {
		return fail(&c, "the live object is not an object");
	}
	work = json_deep_copy(*live);
	if (!work) {
		return -ENOMEM;
	}
	rc = ap_map(&c, work, applied, root_of(type));
	if (rc != 0) {
		json_decref(work);
		return rc;
	}
	slot_set(live, work);
	return 0;
}
