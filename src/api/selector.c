/* Label and field selectors (see selector.h).  The label syntax follows
 * Kubernetes' labels.Parse (its lexer, its error texts where they help a
 * user); field selectors follow fields.ParseSelector plus the per-kind
 * field label conversion of kube-apiserver. */
#include "src/api/selector.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/lib/buf.h"
#include "src/lib/codec.h"
#include "src/api/types.h"
#include "src/api/validate.h"

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t size, const char *fmt, ...)
{
	if (err && size > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, size, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static char *strndup_checked(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* Go's strconv.ParseInt(s, 10, 64). */
static bool parse_int64(const char *s, size_t len, long long *ret)
{
	size_t i = 0;
	bool neg = false;
	if (len > 0 && (s[0] == '+' || s[0] == '-')) {
		neg = s[0] == '-';
		i = 1;
	}
	if (i == len) {
		return false;
	}
	unsigned long long v = 0;
	unsigned long long limit = neg ? (unsigned long long)LLONG_MAX + 1u : (unsigned long long)LLONG_MAX;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return false;
		}
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (limit - d) / 10u) {
			return false;
		}
		v = v * 10u + d;
	}
	if (neg) {
		*ret = v == (unsigned long long)LLONG_MAX + 1u ? LLONG_MIN : -(long long)v;
	} else {
		*ret = (long long)v;
	}
	return true;
}

/* ================================================================ labels */

void api_selector_free(struct api_selector *sel)
{
	if (!sel) {
		return;
	}
	for (size_t i = 0; i < sel->n; i++) {
		struct api_selector_req *r = &sel->reqs[i];
		free(r->key);
		for (size_t j = 0; j < r->n_values; j++) {
			free(r->values[j]);
		}
		free(r->values);
	}
	free(sel->reqs);
	free(sel);
}

/* Values being collected for one requirement (owned until handed over). */
struct vals {
	char **v;
	size_t n, cap;
};

static void vals_free(struct vals *vs)
{
	for (size_t i = 0; i < vs->n; i++) {
		free(vs->v[i]);
	}
	free(vs->v);
	vs->v = NULL;
	vs->n = vs->cap = 0;
}

static int vals_add(struct vals *vs, const char *s, size_t len)
{
	if (vs->n == vs->cap) {
		size_t cap = vs->cap ? vs->cap * 2 : 4;
		char **v = realloc(vs->v, cap * sizeof(*v));
		if (!v) {
			return -ENOMEM;
		}
		vs->v = v;
		vs->cap = cap;
	}
	char *d = strndup_checked(s, len);
	if (!d) {
		return -ENOMEM;
	}
	vs->v[vs->n++] = d;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts and removes duplicates (Kubernetes keeps a string set). */
static void vals_sort_unique(struct vals *vs)
{
	if (vs->n < 2) {
		return;
	}
	qsort(vs->v, vs->n, sizeof(*vs->v), cmp_str);
	size_t out = 1;
	for (size_t i = 1; i < vs->n; i++) {
		if (strcmp(vs->v[i], vs->v[out - 1]) == 0) {
			free(vs->v[i]);
		} else {
			vs->v[out++] = vs->v[i];
		}
	}
	vs->n = out;
}

static struct api_selector *selector_new(void)
{
	return calloc(1, sizeof(struct api_selector));
}

/* Checks a requirement as Kubernetes' NewRequirement does and appends it
 * to @sel, taking @key and the values of @vs (both freed on error). */
static int add_req(struct api_selector *sel, char *key, enum api_selector_op op, struct vals *vs,
		   char *err, size_t err_size)
{
	int rv;
	long long number = 0;
	const char *detail = api_check_qualified_name(key);
	if (detail) {
		rv = fail(err, err_size, "invalid label key \"%s\": %s", key, detail);
		goto err_free;
	}
	switch (op) {
	case API_SELECTOR_IN:
	case API_SELECTOR_NOT_IN:
		if (vs->n == 0) {
			rv = fail(err, err_size,
				  "for 'in', 'notin' operators, values set can't be empty");
			goto err_free;
		}
		break;
	case API_SELECTOR_EQUALS:
	case API_SELECTOR_NOT_EQUALS:
		if (vs->n != 1) {
			rv = fail(err, err_size, "exact-match compatibility requires one single value");
			goto err_free;
		}
		break;
	case API_SELECTOR_EXISTS:
	case API_SELECTOR_NOT_EXISTS:
		if (vs->n != 0) {
			rv = fail(err, err_size,
				  "values set must be empty for exists and does not exist");
			goto err_free;
		}
		break;
	case API_SELECTOR_GT:
	case API_SELECTOR_LT:
		if (vs->n != 1) {
			rv = fail(err, err_size,
				  "for 'Gt', 'Lt' operators, exactly one value is required");
			goto err_free;
		}
		if (!parse_int64(vs->v[0], strlen(vs->v[0]), &number)) {
			rv = fail(err, err_size,
				  "for 'Gt', 'Lt' operators, the value must be an integer");
			goto err_free;
		}
		break;
	}
	for (size_t i = 0; i < vs->n; i++) {
		if ((detail = api_check_label_value(vs->v[i]))) {
			rv = fail(err, err_size, "invalid label value: \"%s\": at key: \"%s\": %s",
				  vs->v[i], key, detail);
			goto err_free;
		}
	}
	vals_sort_unique(vs);

	struct api_selector_req *reqs = realloc(sel->reqs, (sel->n + 1) * sizeof(*reqs));
	if (!reqs) {
		rv = -ENOMEM;
		goto err_free;
	}
	sel->reqs = reqs;
	reqs[sel->n++] = (struct api_selector_req){
		.key = key,
		.op = op,
		.values = vs->v,
		.n_values = vs->n,
		.number = number,
	};
	vs->v = NULL;
	vs->n = vs->cap = 0;
	return 0;

err_free:
	free(key);
	vals_free(vs);
	return rv;
}

/* Stable sort by key, so that the text form is canonical. */
static void sort_reqs(struct api_selector *sel)
{
	for (size_t i = 1; i < sel->n; i++) {
		struct api_selector_req r = sel->reqs[i];
		size_t j = i;
		while (j > 0 && strcmp(sel->reqs[j - 1].key, r.key) > 0) {
			sel->reqs[j] = sel->reqs[j - 1];
			j--;
		}
		sel->reqs[j] = r;
	}
}

/* ---------------------------------------------------------------- lexer */

enum tok {
	T_END = 0,
	T_IDENT,
	T_NOT,   /* ! */
	T_EQ,    /* = */
	T_DEQ,   /* == */
	T_NEQ,   /* != */
	T_GT,    /* > */
	T_LT,    /* < */
	T_OPEN,  /* ( */
	T_CLOSE, /* ) */
	T_COMMA, /* , */
	T_IN,    /* in */
	T_NOTIN, /* notin */
};

struct token {
	enum tok t;
	const char *s; /* the literal, for values and messages */
	int len;
};

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_special(char c)
{
	return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
}

/* The next token at *pos; advances *pos past it when @consume. In the
 * value context (@values) the keywords are plain identifiers. */
static struct token lex(const char **pos, bool consume, bool values)
{
	const char *p = *pos;
	while (is_space(*p)) {
		p++;
	}
	struct token tk = { T_END, p, 0 };
	if (*p == '\0') {
		/* nothing */
	} else if (is_special(*p)) {
		tk.len = 1;
		switch (*p) {
		case '=':
			tk.t = T_EQ;
			if (p[1] == '=') {
				tk.t = T_DEQ;
				tk.len = 2;
			}
			break;
		case '!':
			tk.t = T_NOT;
			if (p[1] == '=') {
				tk.t = T_NEQ;
				tk.len = 2;
			}
			break;
		case '>':
			tk.t = T_GT;
			break;
		case '<':
			tk.t = T_LT;
			break;
		case '(':
			tk.t = T_OPEN;
			break;
		case ')':
			tk.t = T_CLOSE;
			break;
		default:
			tk.t = T_COMMA;
			break;
		}
	} else {
		const char *q = p;
		while (*q && !is_space(*q) && !is_special(*q)) {
			q++;
		}
		size_t n = (size_t)(q - p);
		tk.len = n > INT_MAX ? INT_MAX : (int)n;
		tk.t = T_IDENT;
		if (!values && n == 2 && memcmp(p, "in", 2) == 0) {
			tk.t = T_IN;
		} else if (!values && n == 5 && memcmp(p, "notin", 5) == 0) {
			tk.t = T_NOTIN;
		}
	}
	if (consume) {
		*pos = tk.s + tk.len;
	}
	return tk;
}

/* `( v1, v2 )`: parseValues of Kubernetes, including its handling of
 * empty members ("(,a)" and "()" hold ""). */
static int parse_set(const char **pos, struct vals *vs, char *err, size_t err_size)
{
	struct token tk = lex(pos, true, true);
	if (tk.t != T_OPEN) {
		return fail(err, err_size, "found '%.*s' expected: '('", tk.len, tk.s);
	}
	tk = lex(pos, false, true);
	if (tk.t == T_CLOSE) {
		lex(pos, true, true);
		return vals_add(vs, "", 0);
	}
	if (tk.t != T_IDENT && tk.t != T_COMMA) {
		return fail(err, err_size, "found '%.*s', expected: ',', ')' or identifier", tk.len,
			    tk.s);
	}
	for (;;) {
		int rv;
		tk = lex(pos, true, true);
		if (tk.t == T_IDENT) {
			if ((rv = vals_add(vs, tk.s, (size_t)tk.len)) != 0) {
				return rv;
			}
			struct token next = lex(pos, false, true);
			if (next.t == T_COMMA) {
				continue;
			}
			if (next.t == T_CLOSE) {
				break;
			}
			return fail(err, err_size, "found '%.*s', expected: ',' or ')'", next.len,
				    next.s);
		} else if (tk.t == T_COMMA) {
			if (vs->n == 0 && (rv = vals_add(vs, "", 0)) != 0) {
				return rv; /* "(," */
			}
			struct token next = lex(pos, false, true);
			if (next.t == T_CLOSE) {
				if ((rv = vals_add(vs, "", 0)) != 0) {
					return rv; /* ",)" */
				}
				break;
			}
			if (next.t == T_COMMA) {
				lex(pos, true, true);
				if ((rv = vals_add(vs, "", 0)) != 0) {
					return rv; /* ",," */
				}
			}
		} else {
			return fail(err, err_size, "found '%.*s', expected: ',', or identifier",
				    tk.len, tk.s);
		}
	}
	tk = lex(pos, true, true);
	if (tk.t != T_CLOSE) {
		return fail(err, err_size, "found '%.*s', expected: ')'", tk.len, tk.s);
	}
	return 0;
}

/* One requirement; on success it is appended to @sel. */
static int parse_req(const char **pos, struct api_selector *sel, char *err, size_t err_size)
{
	struct vals vs = { 0 };
	int rv;
	bool not_exists = false;
	struct token tk = lex(pos, true, true);
	if (tk.t == T_NOT) {
		not_exists = true;
		tk = lex(pos, true, true);
	}
	if (tk.t != T_IDENT) {
		return fail(err, err_size, "found '%.*s', expected: identifier", tk.len, tk.s);
	}
	char *key = strndup_checked(tk.s, (size_t)tk.len);
	if (!key) {
		return -ENOMEM;
	}
	struct token next = lex(pos, false, true);
	if (not_exists) {
		return add_req(sel, key, API_SELECTOR_NOT_EXISTS, &vs, err, err_size);
	}
	if (next.t == T_END || next.t == T_COMMA) {
		return add_req(sel, key, API_SELECTOR_EXISTS, &vs, err, err_size);
	}

	enum api_selector_op op;
	tk = lex(pos, true, false);
	switch (tk.t) {
	case T_IN:
		op = API_SELECTOR_IN;
		break;
	case T_NOTIN:
		op = API_SELECTOR_NOT_IN;
		break;
	case T_EQ:
	case T_DEQ:
		op = API_SELECTOR_EQUALS;
		break;
	case T_NEQ:
		op = API_SELECTOR_NOT_EQUALS;
		break;
	case T_GT:
		op = API_SELECTOR_GT;
		break;
	case T_LT:
		op = API_SELECTOR_LT;
		break;
	default:
		rv = fail(err, err_size, "found '%.*s', expected: in, notin, =, ==, !=, gt, lt",
			  tk.len, tk.s);
		goto err_key;
	}

	if (op == API_SELECTOR_IN || op == API_SELECTOR_NOT_IN) {
		if ((rv = parse_set(pos, &vs, err, err_size)) != 0) {
			goto err_vals;
		}
	} else {
		/* One value; none before ',' or the end means "". */
		tk = lex(pos, false, true);
		if (tk.t == T_END || tk.t == T_COMMA) {
			rv = vals_add(&vs, "", 0);
		} else {
			lex(pos, true, true);
			if (tk.t != T_IDENT) {
				rv = fail(err, err_size, "found '%.*s', expected: identifier", tk.len,
					  tk.s);
				goto err_vals;
			}
			rv = vals_add(&vs, tk.s, (size_t)tk.len);
		}
		if (rv != 0) {
			goto err_vals;
		}
	}
	return add_req(sel, key, op, &vs, err, err_size);

err_vals:
	vals_free(&vs);
err_key:
	free(key);
	return rv;
}

int api_selector_parse(const char *text, struct api_selector **ret_sel, char *err,
		       size_t err_size)
{
	int rv;
	struct api_selector *sel = selector_new();
	if (!sel) {
		return -ENOMEM;
	}
	const char *pos = text ? text : "";
	for (;;) {
		struct token tk = lex(&pos, false, true);
		if (tk.t == T_END) {
			break;
		}
		if (tk.t != T_IDENT && tk.t != T_NOT) {
			rv = fail(err, err_size,
				  "found '%.*s', expected: !, identifier, or 'end of string'", tk.len,
				  tk.s);
			goto err_sel;
		}
		char detail[512];
		detail[0] = '\0';
		if ((rv = parse_req(&pos, sel, detail, sizeof(detail))) != 0) {
			if (rv == -EINVAL) {
				fail(err, err_size, "unable to parse requirement: %s", detail);
			}
			goto err_sel;
		}
		tk = lex(&pos, true, true);
		if (tk.t == T_END) {
			break;
		}
		if (tk.t != T_COMMA) {
			rv = fail(err, err_size, "found '%.*s', expected: ',' or 'end of string'",
				  tk.len, tk.s);
			goto err_sel;
		}
		tk = lex(&pos, false, true);
		if (tk.t != T_IDENT && tk.t != T_NOT) {
			rv = fail(err, err_size, "found '%.*s', expected: identifier after ','",
				  tk.len, tk.s);
			goto err_sel;
		}
	}
	sort_reqs(sel);
	*ret_sel = sel;
	return 0;

err_sel:
	api_selector_free(sel);
	return rv;
}

/* ---------------------------------------------------------------- LabelSelector */

static int op_from_name(const char *name, enum api_selector_op *ret_op)
{
	static const struct {
		const char *name;
		enum api_selector_op op;
	} ops[] = {
		{ "In", API_SELECTOR_IN },
		{ "NotIn", API_SELECTOR_NOT_IN },
		{ "Exists", API_SELECTOR_EXISTS },
		{ "DoesNotExist", API_SELECTOR_NOT_EXISTS },
	};
	for (size_t i = 0; name && i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (strcmp(name, ops[i].name) == 0) {
			*ret_op = ops[i].op;
			return 0;
		}
	}
	return -EINVAL;
}

int api_selector_from_json(const json_t *ls, struct api_selector **ret_sel, char *err,
			   size_t err_size)
{
	int rv;
	struct vals vs = { 0 };
	struct api_selector *sel = selector_new();
	if (!sel) {
		return -ENOMEM;
	}
	if (!ls || json_is_null(ls)) {
		sel->nothing = true;
		goto done;
	}
	if (!json_is_object(ls)) {
		rv = fail(err, err_size, "a label selector must be an object");
		goto err_sel;
	}

	const json_t *ml = json_object_get(ls, "matchLabels");
	if (ml && !json_is_null(ml)) {
		if (!json_is_object(ml)) {
			rv = fail(err, err_size, "matchLabels must be an object");
			goto err_sel;
		}
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)ml, k, v)
		{
			if (!json_is_string(v)) {
				rv = fail(err, err_size, "matchLabels[%s] must be a string", k);
				goto err_sel;
			}
			char *key = strdup(k);
			if (!key || (rv = vals_add(&vs, json_string_value(v), json_string_length(v))) != 0) {
				free(key);
				rv = -ENOMEM;
				goto err_vals;
			}
			if ((rv = add_req(sel, key, API_SELECTOR_EQUALS, &vs, err, err_size)) != 0) {
				goto err_sel;
			}
		}
	}

	const json_t *me = json_object_get(ls, "matchExpressions");
	if (me && !json_is_null(me)) {
		if (!json_is_array(me)) {
			rv = fail(err, err_size, "matchExpressions must be an array");
			goto err_sel;
		}
		size_t i;
		json_t *expr;
		json_array_foreach(me, i, expr)
		{
			const json_t *jk = json_object_get(expr, "key");
			const json_t *jop = json_object_get(expr, "operator");
			const json_t *jv = json_object_get(expr, "values");
			enum api_selector_op op;
			if (!json_is_object(expr) || !json_is_string(jk) || !json_is_string(jop)) {
				rv = fail(err, err_size,
					  "matchExpressions[%zu] needs a key and an operator", i);
				goto err_sel;
			}
			if (op_from_name(json_string_value(jop), &op) != 0) {
				rv = fail(err, err_size, "\"%s\" is not a valid label selector operator",
					  json_string_value(jop));
				goto err_sel;
			}
			if (jv && !json_is_null(jv)) {
				size_t j;
				json_t *val;
				if (!json_is_array(jv)) {
					rv = fail(err, err_size,
						  "matchExpressions[%zu].values must be an array", i);
					goto err_sel;
				}
				json_array_foreach(jv, j, val)
				{
					if (!json_is_string(val)) {
						rv = fail(err, err_size,
							  "matchExpressions[%zu].values[%zu] must be a string",
							  i, j);
						goto err_vals;
					}
					rv = vals_add(&vs, json_string_value(val), json_string_length(val));
					if (rv != 0) {
						goto err_vals;
					}
				}
			}
			char *key = strdup(json_string_value(jk));
			if (!key) {
				rv = -ENOMEM;
				goto err_vals;
			}
			if ((rv = add_req(sel, key, op, &vs, err, err_size)) != 0) {
				goto err_sel;
			}
		}
	}
	sort_reqs(sel);
done:
	*ret_sel = sel;
	return 0;

err_vals:
	vals_free(&vs);
err_sel:
	api_selector_free(sel);
	return rv;
}

/* A field path "<base>.<child>" or "<base>.<child>[<i>]" (malloc'd). */
static char *sub_path(const char *base, const char *child, long index)
{
	char *s = NULL;
	int n = index >= 0 ? asprintf(&s, "%s.%s[%ld]", base, child, index)
			   : asprintf(&s, "%s.%s", base, child);
	return n < 0 ? NULL : s;
}

static int add_cause(struct api_errors *e, enum api_cause_reason reason, const char *base,
		     const char *child, long index, const json_t *value, const char *detail)
{
	char *path = sub_path(base, child, index);
	if (!path) {
		return -ENOMEM;
	}
	int rv = api_errors_add(e, reason, path, value, detail);
	free(path);
	return rv;
}

static int validate_expr(const json_t *expr, const char *path, struct api_errors *e)
{
	int rv = 0;
	const json_t *jk = json_object_get(expr, "key");
	const json_t *jop = json_object_get(expr, "operator");
	const json_t *jv = json_object_get(expr, "values");
	size_t n_values = json_is_array(jv) ? json_array_size(jv) : 0;
	enum api_selector_op op;

	if (op_from_name(json_string_value(jop), &op) != 0) {
		json_t *empty = jop ? NULL : json_string("");
		rv = add_cause(e, API_CAUSE_INVALID, path, "operator", -1, jop ? jop : empty,
			       "not a valid selector operator");
		json_decref(empty);
	} else if ((op == API_SELECTOR_IN || op == API_SELECTOR_NOT_IN) && n_values == 0) {
		rv = add_cause(e, API_CAUSE_REQUIRED, path, "values", -1, NULL,
			       "must be specified when `operator` is 'In' or 'NotIn'");
	} else if ((op == API_SELECTOR_EXISTS || op == API_SELECTOR_NOT_EXISTS) && n_values > 0) {
		rv = add_cause(e, API_CAUSE_FORBIDDEN, path, "values", -1, NULL,
			       "may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
	}
	if (rv != 0) {
		return rv;
	}

	const char *key = json_is_string(jk) ? json_string_value(jk) : "";
	const char *detail = api_check_qualified_name(key);
	if (detail) {
		json_t *kv = json_string(key);
		rv = kv ? add_cause(e, API_CAUSE_INVALID, path, "key", -1, kv, detail) : -ENOMEM;
		json_decref(kv);
		if (rv != 0) {
			return rv;
		}
	}
	for (size_t j = 0; j < n_values; j++) {
		const json_t *v = json_array_get(jv, j);
		if (json_is_string(v) && (detail = api_check_label_value(json_string_value(v)))) {
			rv = add_cause(e, API_CAUSE_INVALID, path, "values", (long)j, v, detail);
			if (rv != 0) {
				return rv;
			}
		}
	}
	return 0;
}

int api_selector_validate_json(const json_t *ls, const char *path, struct api_errors *e)
{
	int rv;
	if (!json_is_object(ls)) {
		return 0; /* null is allowed here; wrong types are the schema's job */
	}
	const json_t *ml = json_object_get(ls, "matchLabels");
	if (json_is_object(ml)) {
		char *mpath = sub_path(path, "matchLabels", -1);
		if (!mpath) {
			return -ENOMEM;
		}
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)ml, k, v)
		{
			const char *detail = api_check_qualified_name(k);
			rv = 0;
			if (detail) {
				json_t *kv = json_string(k);
				rv = kv ? api_errors_add(e, API_CAUSE_INVALID, mpath, kv, detail) : -ENOMEM;
				json_decref(kv);
			}
			if (rv == 0 && json_is_string(v) &&
			    (detail = api_check_label_value(json_string_value(v)))) {
				rv = api_errors_add(e, API_CAUSE_INVALID, mpath, v, detail);
			}
			if (rv != 0) {
				free(mpath);
				return rv;
			}
		}
		free(mpath);
	}
	const json_t *me = json_object_get(ls, "matchExpressions");
	if (json_is_array(me)) {
		size_t i;
		json_t *expr;
		json_array_foreach(me, i, expr)
		{
			if (!json_is_object(expr)) {
				continue;
			}
			char *epath = sub_path(path, "matchExpressions", (long)i);
			if (!epath) {
				return -ENOMEM;
			}
			rv = validate_expr(expr, epath, e);
			free(epath);
			if (rv != 0) {
				return rv;
			}
		}
	}
	return 0;
}

/* ---------------------------------------------------------------- matching */

/* Looks up label @key; on success ret_val and ret_len hold its value. */
typedef bool (*label_get_fn)(const void *ctx, const char *key, const char **ret_val,
			     size_t *ret_len);

struct mp_ctx {
	const void *labels;
	size_t len;
};

static bool mp_label_get(const void *ctx, const char *key, const char **ret_val, size_t *ret_len)
{
	const struct mp_ctx *c = ctx;
	const void *v;
	size_t vl;
	if (!c->labels || codec_msgpack_map_get(c->labels, c->len, key, strlen(key), &v, &vl) != 0) {
		return false;
	}
	return codec_msgpack_str(v, vl, ret_val, ret_len) == 0;
}

static bool json_label_get(const void *ctx, const char *key, const char **ret_val,
			   size_t *ret_len)
{
	const json_t *v = json_object_get(ctx, key);
	if (!json_is_string(v)) {
		return false;
	}
	*ret_val = json_string_value(v);
	*ret_len = json_string_length(v);
	return true;
}

static bool in_values(const struct api_selector_req *r, const char *v, size_t vl)
{
	for (size_t i = 0; i < r->n_values; i++) {
		if (strlen(r->values[i]) == vl && memcmp(r->values[i], v, vl) == 0) {
			return true;
		}
	}
	return false;
}

static bool req_match(const struct api_selector_req *r, label_get_fn get, const void *ctx)
{
	const char *v = NULL;
	size_t vl = 0;
	bool found = get(ctx, r->key, &v, &vl);
	long long n;
	switch (r->op) {
	case API_SELECTOR_EQUALS:
	case API_SELECTOR_IN:
		return found && in_values(r, v, vl);
	case API_SELECTOR_NOT_EQUALS:
	case API_SELECTOR_NOT_IN:
		return !found || !in_values(r, v, vl);
	case API_SELECTOR_EXISTS:
		return found;
	case API_SELECTOR_NOT_EXISTS:
		return !found;
	case API_SELECTOR_GT:
		return found && parse_int64(v, vl, &n) && n > r->number;
	case API_SELECTOR_LT:
		return found && parse_int64(v, vl, &n) && n < r->number;
	}
	return false;
}

static bool sel_match(const struct api_selector *sel, label_get_fn get, const void *ctx)
{
	if (!sel) {
		return true;
	}
	if (sel->nothing) {
		return false;
	}
	for (size_t i = 0; i < sel->n; i++) {
		if (!req_match(&sel->reqs[i], get, ctx)) {
			return false;
		}
	}
	return true;
}

bool api_selector_match_labels_msgpack(const struct api_selector *sel, const void *labels,
				       size_t len)
{
	struct mp_ctx c = { labels, labels ? len : 0 };
	return sel_match(sel, mp_label_get, &c);
}

bool api_selector_match_msgpack(const struct api_selector *sel, const void *obj, size_t len)
{
	if (!sel || (!sel->nothing && sel->n == 0)) {
		return true; /* no need to find the labels */
	}
	const void *labels = NULL;
	size_t ll = 0;
	if (!obj || codec_msgpack_get(obj, len, "metadata.labels", &labels, &ll) != 0) {
		labels = NULL;
		ll = 0;
	}
	return api_selector_match_labels_msgpack(sel, labels, ll);
}

bool api_selector_match_json(const struct api_selector *sel, const json_t *labels)
{
	if (!json_is_object(labels)) {
		struct mp_ctx c = { NULL, 0 }; /* no labels at all */
		return sel_match(sel, mp_label_get, &c);
	}
	return sel_match(sel, json_label_get, labels);
}

/* ---------------------------------------------------------------- text */

/* Appends go on after a failed one (sticky oom) and are checked once. */
struct text {
	struct buf b;
	bool oom;
};

static void text_add(struct text *t, const char *s, size_t n)
{
	if (!t->oom && buf_append(&t->b, s, n) != 0) {
		t->oom = true;
	}
}

static void text_str(struct text *t, const char *s)
{
	text_add(t, s, strlen(s));
}

char *api_selector_string(const struct api_selector *sel)
{
	struct text t = { BUF_INIT, false };
	text_add(&t, "", 0);
	for (size_t i = 0; sel && i < sel->n; i++) {
		const struct api_selector_req *r = &sel->reqs[i];
		if (i > 0) {
			text_str(&t, ",");
		}
		if (r->op == API_SELECTOR_NOT_EXISTS) {
			text_str(&t, "!");
		}
		text_str(&t, r->key);
		static const char *const op_text[] = {
			[API_SELECTOR_EQUALS] = "=",     [API_SELECTOR_NOT_EQUALS] = "!=",
			[API_SELECTOR_IN] = " in ",      [API_SELECTOR_NOT_IN] = " notin ",
			[API_SELECTOR_EXISTS] = "",      [API_SELECTOR_NOT_EXISTS] = "",
			[API_SELECTOR_GT] = ">",         [API_SELECTOR_LT] = "<",
		};
		text_str(&t, op_text[r->op]);
		bool set = r->op == API_SELECTOR_IN || r->op == API_SELECTOR_NOT_IN;
		if (set) {
			text_str(&t, "(");
		}
		for (size_t j = 0; j < r->n_values; j++) {
			if (j > 0) {
				text_str(&t, ",");
			}
			text_str(&t, r->values[j]);
		}
		if (set) {
			text_str(&t, ")");
		}
	}
	if (t.oom) {
		buf_free(&t.b);
		return NULL;
	}
	return t.b.data;
}

/* ================================================================ fields */

void api_fieldsel_free(struct api_fieldsel *sel)
{
	if (!sel) {
		return;
	}
	for (size_t i = 0; i < sel->n; i++) {
		free(sel->terms[i].field);
		free(sel->terms[i].value);
	}
	free(sel->terms);
	free(sel);
}

/* Go's zero value of the field at dotted @path of @k's schema, as the
 * field set of Kubernetes prints it. */
static const char *zero_value(const struct api_kind *k, const char *path)
{
	if (!k) {
		return "";
	}
	const struct api_type *t = api_type_get(k->type);
	const char *seg = path;
	while (t) {
		const char *dot = strchr(seg, '.');
		size_t n = dot ? (size_t)(dot - seg) : strlen(seg);
		char name[128];
		if (n >= sizeof(name)) {
			return "";
		}
		memcpy(name, seg, n);
		name[n] = '\0';
		const struct api_field *f = api_type_field(t, name);
		if (!f) {
			return "";
		}
		if (!dot) {
			switch (f->kind) {
			case API_V_BOOL:
				return "false";
			case API_V_INT32:
			case API_V_INT64:
				return "0";
			default:
				return "";
			}
		}
		if (f->kind != API_V_OBJECT) {
			return "";
		}
		t = api_type_get(f->ref);
		seg = dot + 1;
	}
	return "";
}

/* Undoes the escapes of a value (\\ \, \=); bare ',' or '=' are errors. */
static int unescape(const char *s, size_t len, char **ret, char *err, size_t err_size)
{
	char *out = malloc(len + 1);
	if (!out) {
		return -ENOMEM;
	}
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '\\') {
			if (i + 1 == len || (s[i + 1] != '\\' && s[i + 1] != ',' && s[i + 1] != '=')) {
				int n = i + 1 == len ? 1 : 2;
				free(out);
				return fail(err, err_size,
					    "invalid field selector: invalid escape sequence: %.*s", n,
					    s + i);
			}
			out[o++] = s[++i];
		} else if (c == ',' || c == '=') {
			free(out);
			return fail(err, err_size,
				    "invalid field selector: unescaped character in value: %c", c);
		} else {
			out[o++] = c;
		}
	}
	out[o] = '\0';
	*ret = out;
	return 0;
}

static bool field_supported(const struct api_kind *k, const char *field)
{
	if (strcmp(field, "metadata.name") == 0 || strcmp(field, "metadata.namespace") == 0) {
		return true;
	}
	return k && api_kind_field_selectable(k, field);
}

/* Parses the term @s[0..len) into @t. */
static int parse_term(const struct api_kind *k, const char *all, const char *s, size_t len,
		      struct api_fieldsel_term *t, char *err, size_t err_size)
{
	size_t i, op_len = 0;
	bool neg = false;
	for (i = 0; i < len; i++) {
		if (s[i] == '!' && i + 1 < len && s[i + 1] == '=') {
			op_len = 2;
			neg = true;
			break;
		}
		if (s[i] == '=') {
			op_len = (i + 1 < len && s[i + 1] == '=') ? 2 : 1;
			break;
		}
	}
	if (op_len == 0) {
		return fail(err, err_size, "invalid selector: '%s'; can't understand '%.*s'", all,
			    (int)(len > INT_MAX ? INT_MAX : len), s);
	}
	int rv;
	char *value = NULL;
	if ((rv = unescape(s + i + op_len, len - i - op_len, &value, err, err_size)) != 0) {
		return rv;
	}
	char *field = strndup_checked(s, i);
	if (!field) {
		free(value);
		return -ENOMEM;
	}
	*t = (struct api_fieldsel_term){
		.field = field,
		.value = value,
		.not_equal = neg,
		.path = field,
		.alt_path = NULL,
		.zero = zero_value(k, field),
	};
	/* Event's "source" is source.component, else reportingComponent. */
	if (k && strcmp(k->kind, "Event") == 0 && k->group[0] == '\0' && strcmp(field, "source") == 0) {
		t->path = "source.component";
		t->alt_path = "reportingComponent";
		t->zero = "";
	}
	return 0;
}

int api_fieldsel_parse(const struct api_kind *k, const char *text, struct api_fieldsel **ret_sel,
		       char *err, size_t err_size)
{
	int rv;
	struct api_fieldsel *sel = calloc(1, sizeof(*sel));
	if (!sel) {
		return -ENOMEM;
	}
	const char *s = text ? text : "";
	size_t len = strlen(s);
	size_t start = 0;
	bool slash = false;
	for (size_t i = 0; i <= len; i++) {
		if (i < len) {
			if (slash) {
				slash = false;
				continue;
			}
			if (s[i] == '\\') {
				slash = true;
				continue;
			}
			if (s[i] != ',') {
				continue;
			}
		}
		/* A term ends at i (an unescaped ',' or the end). */
		if (i > start) {
			struct api_fieldsel_term *terms =
				realloc(sel->terms, (sel->n + 1) * sizeof(*terms));
			if (!terms) {
				rv = -ENOMEM;
				goto err_sel;
			}
			sel->terms = terms;
			rv = parse_term(k, s, s + start, i - start, &terms[sel->n], err, err_size);
			if (rv != 0) {
				goto err_sel;
			}
			sel->n++;
		}
		start = i + 1;
	}
	/* Syntax first, then the fields, as Kubernetes converts field labels
	 * only once the whole selector parsed. */
	for (size_t i = 0; i < sel->n; i++) {
		if (!field_supported(k, sel->terms[i].field)) {
			rv = fail(err, err_size, "field label not supported: %s", sel->terms[i].field);
			goto err_sel;
		}
	}
	*ret_sel = sel;
	return 0;

err_sel:
	api_fieldsel_free(sel);
	return rv;
}

/* The text of the field at @path of a msgpack object; @num holds numbers
 * and booleans.  False when absent or null (or not a scalar). */
static bool mp_field(const void *obj, size_t len, const char *path, char *num, size_t num_size,
		     const char **ret_val, size_t *ret_len)
{
	const void *v;
	size_t vl;
	int64_t n;
	if (!obj || codec_msgpack_get(obj, len, path, &v, &vl) != 0 || vl == 0) {
		return false;
	}
	unsigned char b = *(const unsigned char *)v;
	if (b == 0xc2 || b == 0xc3) {
		*ret_val = b == 0xc3 ? "true" : "false";
		*ret_len = strlen(*ret_val);
		return true;
	}
	if (codec_msgpack_str(v, vl, ret_val, ret_len) == 0) {
		return true;
	}
	if (codec_msgpack_int(v, vl, &n) == 0) {
		int w = snprintf(num, num_size, "%lld", (long long)n);
		*ret_val = num;
		*ret_len = w > 0 ? (size_t)w : 0;
		return true;
	}
	return false;
}

static bool json_field(const json_t *obj, const char *path, char *num, size_t num_size,
		       const char **ret_val, size_t *ret_len)
{
	const json_t *v = obj ? api_json_path(obj, path) : NULL;
	if (json_is_string(v)) {
		*ret_val = json_string_value(v);
		*ret_len = json_string_length(v);
		return true;
	}
	if (json_is_boolean(v)) {
		*ret_val = json_is_true(v) ? "true" : "false";
		*ret_len = strlen(*ret_val);
		return true;
	}
	if (json_is_integer(v)) {
		int w = snprintf(num, num_size, "%lld", (long long)json_integer_value(v));
		*ret_val = num;
		*ret_len = w > 0 ? (size_t)w : 0;
		return true;
	}
	return false;
}

static bool term_match(const struct api_fieldsel_term *t, const char *v, size_t vl, bool found)
{
	if (!found) {
		v = t->zero;
		vl = strlen(v);
	}
	bool eq = strlen(t->value) == vl && memcmp(t->value, v, vl) == 0;
	return t->not_equal ? !eq : eq;
}

bool api_fieldsel_match_msgpack(const struct api_fieldsel *sel, const void *obj, size_t len)
{
	for (size_t i = 0; sel && i < sel->n; i++) {
		const struct api_fieldsel_term *t = &sel->terms[i];
		char num[32];
		const char *v = NULL;
		size_t vl = 0;
		bool found = mp_field(obj, len, t->path, num, sizeof(num), &v, &vl);
		if (t->alt_path && (!found || vl == 0)) {
			found = mp_field(obj, len, t->alt_path, num, sizeof(num), &v, &vl);
		}
		if (!term_match(t, v, vl, found)) {
			return false;
		}
	}
	return true;
}

bool api_fieldsel_match_json(const struct api_fieldsel *sel, const json_t *obj)
{
	for (size_t i = 0; sel && i < sel->n; i++) {
		const struct api_fieldsel_term *t = &sel->terms[i];
		char num[32];
		const char *v = NULL;
		size_t vl = 0;
		bool found = json_field(obj, t->path, num, sizeof(num), &v, &vl);
		if (t->alt_path && (!found || vl == 0)) {
			found = json_field(obj, t->alt_path, num, sizeof(num), &v, &vl);
		}
		if (!term_match(t, v, vl, found)) {
			return false;
		}
	}
	return true;
}

const char *api_fieldsel_exact(const struct api_fieldsel *sel, const char *field)
{
	for (size_t i = 0; sel && i < sel->n; i++) {
		if (!sel->terms[i].not_equal && strcmp(sel->terms[i].field, field) == 0) {
			return sel->terms[i].value;
		}
	}
	return NULL;
}
