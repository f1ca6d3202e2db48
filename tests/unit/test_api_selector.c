/* Unit tests of label and field selectors: the query syntax of every
 * operator, errors, structured LabelSelectors and their validation, and
 * matching on msgpack objects built from JSON text. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/lib/codec.h"
#include "src/api/selector.h"
#include "src/api/validate.h"

/* ---------------------------------------------------------------- Helpers */

static json_t *load(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &err);
	if (!j) {
		fail_msg("bad JSON in test: %s", err.text);
	}
	return j;
}

/* The msgpack form of JSON @text (caller frees b->data). */
static void mp(const char *text, struct buf *b)
{
	buf_init(b);
	struct codec_err err;
	if (codec_json_to_msgpack(text, strlen(text), 0, b, &err) != 0) {
		fail_msg("bad JSON in test: %s", err.msg);
	}
}

static struct api_selector *parse_ok(const char *text)
{
	struct api_selector *sel = NULL;
	char err[512] = "";
	int rv = api_selector_parse(text, &sel, err, sizeof(err));
	if (rv != 0) {
		fail_msg("parse of '%s' failed: %d %s", text, rv, err);
	}
	return sel;
}

/* Parses @text and checks its canonical form. */
static void assert_canonical(const char *text, const char *want)
{
	struct api_selector *sel = parse_ok(text);
	char *s = api_selector_string(sel);
	assert_non_null(s);
	assert_string_equal(s, want);
	free(s);
	api_selector_free(sel);
}

/* Parsing @text fails with -EINVAL and a message holding @want. */
static void assert_parse_error(const char *text, const char *want)
{
	struct api_selector *sel = (struct api_selector *)0x1;
	char err[512] = "";
	assert_int_equal(api_selector_parse(text, &sel, err, sizeof(err)), -EINVAL);
	assert_ptr_equal(sel, (struct api_selector *)0x1); /* untouched */
	if (!strstr(err, want)) {
		fail_msg("'%s': message '%s' lacks '%s'", text, err, want);
	}
}

/* Whether the selector @text matches the msgpack form of @obj. */
static bool label_match(const char *text, const char *obj)
{
	struct buf b;
	mp(obj, &b);
	struct api_selector *sel = parse_ok(text);
	bool m = api_selector_match_msgpack(sel, b.data, b.len);
	/* The jansson path must agree. */
	json_t *j = load(obj);
	json_t *labels = json_object_get(json_object_get(j, "metadata"), "labels");
	assert_int_equal(api_selector_match_json(sel, labels), m);
	json_decref(j);
	api_selector_free(sel);
	buf_free(&b);
	return m;
}

static const char *const pod_web =
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web-1\","
	"\"namespace\":\"default\",\"labels\":{\"app\":\"web\",\"tier\":\"frontend\","
	"\"app.kubernetes.io/name\":\"nginx\",\"weight\":\"10\"}},"
	"\"spec\":{\"nodeName\":\"node-a\",\"hostNetwork\":true,"
	"\"containers\":[{\"name\":\"c\",\"image\":\"nginx\"}]},"
	"\"status\":{\"phase\":\"Running\"}}";
static const char *const pod_db =
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"db-0\","
	"\"namespace\":\"prod\",\"labels\":{\"app\":\"db\",\"tier\":\"backend\"}},"
	"\"spec\":{\"nodeName\":\"node-b\",\"containers\":[]},"
	"\"status\":{\"phase\":\"Pending\"}}";
/* No labels, not scheduled, no status. */
static const char *const pod_bare =
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"bare\","
	"\"namespace\":\"default\"},\"spec\":{\"containers\":[]}}";
/* Scheduled to "" explicitly, labels null. */
static const char *const pod_null =
	"{\"kind\":\"Pod\",\"metadata\":{\"name\":\"n\",\"labels\":null},"
	"\"spec\":{\"nodeName\":null}}";

/* ---------------------------------------------------------------- Label parsing */

static void test_parse_operators(void **state)
{
	(void)state;
	struct api_selector *sel = parse_ok("a=b");
	assert_int_equal(sel->n, 1);
	assert_false(sel->nothing);
	assert_string_equal(sel->reqs[0].key, "a");
	assert_int_equal(sel->reqs[0].op, API_SELECTOR_EQUALS);
	assert_int_equal(sel->reqs[0].n_values, 1);
	assert_string_equal(sel->reqs[0].values[0], "b");
	api_selector_free(sel);

	sel = parse_ok("a==b");
	assert_int_equal(sel->reqs[0].op, API_SELECTOR_EQUALS);
	api_selector_free(sel);

	sel = parse_ok("a!=b");
	assert_int_equal(sel->reqs[0].op, API_SELECTOR_NOT_EQUALS);
	api_selector_free(sel);

	sel = parse_ok("env in (prod,dev,prod)");
	assert_int_equal(sel->reqs[0].op, API_SELECTOR_IN);
	assert_int_equal(sel->reqs[0].n_values, 2); /* a set: sorted, unique */
	assert_string_equal(sel->reqs[0].values[0], "dev");
	assert_string_equal(sel->reqs[0].values[1], "prod");
	api_selector_free(sel);

	sel = parse_ok("env notin (x)");
	assert_int_equal(sel->reqs[0].op, API_SELECTOR_NOT_IN);
	api_selector_free(sel);

	sel = parse_ok("a");
	assert_int_equal(sel->reqs[0].op, API_SELECTOR_EXISTS);
	assert_int_equal(sel->reqs[0].n_values, 0);
	api_selector_free(sel);

	sel = parse_ok("!a");
	assert_int_equal(sel->reqs[0].op, API_SELECTOR_NOT_EXISTS);
	api_selector_free(sel);

	sel = parse_ok("a>5");
	assert_int_equal(sel->reqs[0].op, API_SELECTOR_GT);
	assert_int_equal(sel->reqs[0].number, 5);
	api_selector_free(sel);

	sel = parse_ok("a<3");
	assert_int_equal(sel->reqs[0].op, API_SELECTOR_LT);
	assert_int_equal(sel->reqs[0].number, 3);
	api_selector_free(sel);

	/* Empty means everything. */
	sel = parse_ok("");
	assert_int_equal(sel->n, 0);
	assert_false(sel->nothing);
	api_selector_free(sel);
	sel = parse_ok("   ");
	assert_int_equal(sel->n, 0);
	api_selector_free(sel);
	sel = parse_ok(NULL);
	assert_int_equal(sel->n, 0);
	api_selector_free(sel);

	/* An empty value for = and in. */
	assert_canonical("a=", "a=");
	assert_canonical("a in ()", "a in ()");
	assert_canonical("a in (,x)", "a in (,x)");
	assert_canonical("a in (x,)", "a in (,x)");
	/* Keywords are fine as keys and values. */
	assert_canonical("in=notin", "in=notin");
	assert_canonical("x in (in,notin)", "x in (in,notin)");
}

static void test_parse_combinations(void **state)
{
	(void)state;
	/* Sorted by key, as Kubernetes prints them; == prints as =. */
	assert_canonical("tier in (frontend, backend),app==web,!legacy,release",
			 "app=web,!legacy,release,tier in (backend,frontend)");
	assert_canonical("  app = web ,  tier  notin  ( a , b )  ,  ! x , y  ",
			 "app=web,tier notin (a,b),!x,y");
	assert_canonical("app.kubernetes.io/name=nginx,a!=b", "a!=b,app.kubernetes.io/name=nginx");
	assert_canonical("a\t=\tb\n,c", "a=b,c");
	assert_canonical("a>1,a<10", "a>1,a<10");
	/* Several requirements on one key stay, in order. */
	struct api_selector *sel = parse_ok("k!=a,k!=b,j");
	assert_int_equal(sel->n, 3);
	assert_string_equal(sel->reqs[0].key, "j");
	assert_string_equal(sel->reqs[1].values[0], "a");
	assert_string_equal(sel->reqs[2].values[0], "b");
	api_selector_free(sel);
}

static void test_parse_invalid(void **state)
{
	(void)state;
	assert_parse_error("=b", "found '=', expected: !, identifier, or 'end of string'");
	assert_parse_error("a=b,", "found '', expected: identifier after ','");
	assert_parse_error(",a", "found ',', expected: !, identifier");
	assert_parse_error("a=b c", "found 'c', expected: ',' or 'end of string'");
	assert_parse_error("a b", "unable to parse requirement: found 'b', expected: in, notin");
	assert_parse_error("a in x", "found 'x' expected: '('");
	assert_parse_error("a in (x", "found '', expected: ',' or ')'");
	assert_parse_error("a in (x y)", "found 'y', expected: ',' or ')'");
	assert_parse_error("a in (=)", "found '=', expected: ',', ')' or identifier");
	assert_parse_error("a = (x)", "found '(', expected: identifier");
	assert_parse_error("!", "found '', expected: identifier");
	assert_parse_error("!a=b", "found '=', expected: ',' or 'end of string'");
	assert_parse_error("a=!", "found '!', expected: identifier");
	/* Key and value syntax. */
	assert_parse_error("-a=b", "invalid label key \"-a\": name part must consist of");
	assert_parse_error("a/b/c", "invalid label key \"a/b/c\"");
	assert_parse_error("Example.COM/x=y", "prefix part");
	assert_parse_error("a=-x", "invalid label value: \"-x\": at key: \"a\"");
	assert_parse_error("a in (ok,b@d)", "invalid label value: \"b@d\"");
	assert_parse_error("a=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
			   "must be no more than 63 characters");
	assert_parse_error("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
			   "name part must be no more than 63 characters");
	assert_parse_error("a>b", "for 'Gt', 'Lt' operators, the value must be an integer");
	assert_parse_error("a>99999999999999999999", "must be an integer");
	assert_parse_error("a<-3", "invalid label value: \"-3\""); /* as Kubernetes */

	/* A 63-character value is fine. */
	struct api_selector *sel =
		parse_ok("a=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	api_selector_free(sel);

	/* NULL @err is allowed. */
	sel = NULL;
	assert_int_equal(api_selector_parse("a in", &sel, NULL, 0), -EINVAL);
	assert_null(sel);
}

/* ---------------------------------------------------------------- Label matching */

static void test_match_msgpack(void **state)
{
	(void)state;
	assert_true(label_match("", pod_web));
	assert_true(label_match("", pod_bare));
	assert_true(label_match("app=web", pod_web));
	assert_false(label_match("app=web", pod_db));
	assert_false(label_match("app=web", pod_bare));
	assert_true(label_match("app==db", pod_db));
	assert_true(label_match("app!=web", pod_db));
	assert_false(label_match("app!=web", pod_web));
	assert_true(label_match("app!=web", pod_bare)); /* absent counts as different */
	assert_true(label_match("app in (web,db)", pod_web));
	assert_true(label_match("app in (web,db)", pod_db));
	assert_false(label_match("app in (web,db)", pod_bare));
	assert_true(label_match("app notin (web)", pod_db));
	assert_true(label_match("app notin (web)", pod_bare));
	assert_false(label_match("app notin (web)", pod_web));
	assert_true(label_match("tier", pod_web));
	assert_false(label_match("tier", pod_bare));
	assert_true(label_match("!tier", pod_bare));
	assert_false(label_match("!tier", pod_db));
	assert_true(label_match("!tier", pod_null));
	assert_false(label_match("tier", pod_null));
	assert_true(label_match("app!=x", pod_null));
	/* Prefixed keys hold dots and a slash: looked up as one key. */
	assert_true(label_match("app.kubernetes.io/name=nginx", pod_web));
	assert_true(label_match("app.kubernetes.io/name", pod_web));
	assert_false(label_match("app.kubernetes.io/name", pod_db));
	assert_false(label_match("app.kubernetes.io=nginx", pod_web));
	/* AND. */
	assert_true(label_match("app=web,tier=frontend,app.kubernetes.io/name in (nginx)", pod_web));
	assert_false(label_match("app=web,tier=backend", pod_web));
	/* Numbers. */
	assert_true(label_match("weight>9", pod_web));
	assert_false(label_match("weight>10", pod_web));
	assert_true(label_match("weight<11", pod_web));
	assert_false(label_match("weight<11", pod_db)); /* absent: false */
	assert_false(label_match("app>1", pod_web));    /* not a number */
	/* Values compare whole: no prefix matches. */
	assert_false(label_match("app=we", pod_web));
	assert_false(label_match("app=webx", pod_web));
	assert_false(label_match("app=", pod_web));
	assert_true(label_match("tier=", "{\"metadata\":{\"labels\":{\"tier\":\"\"}}}"));
	assert_true(label_match("a=b", "{\"metadata\":{\"labels\":{\"a\":\"b\"}}}"));
	/* Objects without metadata, and non-string label values. */
	assert_false(label_match("a", "{\"kind\":\"Pod\"}"));
	assert_true(label_match("!a", "{\"kind\":\"Pod\"}"));
	assert_false(label_match("a", "{\"metadata\":{\"labels\":{\"a\":1}}}"));

	/* NULL selector and NULL / garbage objects. */
	assert_true(api_selector_match_msgpack(NULL, NULL, 0));
	struct api_selector *sel = parse_ok("a");
	assert_false(api_selector_match_msgpack(sel, NULL, 0));
	assert_false(api_selector_match_msgpack(sel, "\xc1", 1));
	assert_false(api_selector_match_labels_msgpack(sel, NULL, 0));
	api_selector_free(sel);
	sel = parse_ok("!a");
	assert_true(api_selector_match_msgpack(sel, "\x81\xa8metadata", 10)); /* truncated */
	api_selector_free(sel);
}

static void test_match_labels_map(void **state)
{
	(void)state;
	/* A template's labels map, in both forms. */
	const char *labels = "{\"app\":\"web\",\"app.kubernetes.io/part-of\":\"shop\"}";
	struct buf b;
	mp(labels, &b);
	json_t *j = load(labels);
	struct api_selector *sel = parse_ok("app=web,app.kubernetes.io/part-of=shop");
	assert_true(api_selector_match_labels_msgpack(sel, b.data, b.len));
	assert_true(api_selector_match_json(sel, j));
	assert_false(api_selector_match_json(sel, NULL));
	api_selector_free(sel);
	sel = parse_ok("app=web,x");
	assert_false(api_selector_match_labels_msgpack(sel, b.data, b.len));
	assert_false(api_selector_match_json(sel, j));
	api_selector_free(sel);
	assert_true(api_selector_match_json(NULL, j));
	json_decref(j);
	buf_free(&b);
}

/* ---------------------------------------------------------------- LabelSelector objects */

static struct api_selector *from_json_ok(const char *text)
{
	json_t *j = load(text);
	struct api_selector *sel = NULL;
	char err[512] = "";
	int rv = api_selector_from_json(j, &sel, err, sizeof(err));
	json_decref(j);
	if (rv != 0) {
		fail_msg("from_json %s: %d %s", text, rv, err);
	}
	return sel;
}

static void assert_from_json_error(const char *text, const char *want)
{
	json_t *j = load(text);
	struct api_selector *sel = NULL;
	char err[512] = "";
	assert_int_equal(api_selector_from_json(j, &sel, err, sizeof(err)), -EINVAL);
	assert_null(sel);
	json_decref(j);
	if (!strstr(err, want)) {
		fail_msg("%s: message '%s' lacks '%s'", text, err, want);
	}
}

static void test_from_json(void **state)
{
	(void)state;
	struct buf web, db, bare;
	mp(pod_web, &web);
	mp(pod_db, &db);
	mp(pod_bare, &bare);

	struct api_selector *sel = from_json_ok(
		"{\"matchLabels\":{\"tier\":\"frontend\",\"app\":\"web\"},"
		"\"matchExpressions\":[{\"key\":\"app.kubernetes.io/name\",\"operator\":\"In\","
		"\"values\":[\"nginx\",\"apache\"]},{\"key\":\"legacy\",\"operator\":\"DoesNotExist\"},"
		"{\"key\":\"tier\",\"operator\":\"Exists\",\"values\":[]},"
		"{\"key\":\"app\",\"operator\":\"NotIn\",\"values\":[\"db\"]}]}");
	char *s = api_selector_string(sel);
	assert_string_equal(s,
			    "app=web,app notin (db),app.kubernetes.io/name in (apache,nginx),"
			    "!legacy,tier=frontend,tier");
	free(s);
	assert_true(api_selector_match_msgpack(sel, web.data, web.len));
	assert_false(api_selector_match_msgpack(sel, db.data, db.len));
	assert_false(api_selector_match_msgpack(sel, bare.data, bare.len));
	api_selector_free(sel);

	/* Only matchLabels (a Service-like selector). */
	sel = from_json_ok("{\"matchLabels\":{\"app\":\"db\"}}");
	assert_true(api_selector_match_msgpack(sel, db.data, db.len));
	assert_false(api_selector_match_msgpack(sel, web.data, web.len));
	api_selector_free(sel);

	/* Empty selector: everything. */
	const char *empties[] = { "{}", "{\"matchLabels\":{}}", "{\"matchExpressions\":[]}",
				  "{\"matchLabels\":null,\"matchExpressions\":null}" };
	for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
		sel = from_json_ok(empties[i]);
		assert_false(sel->nothing);
		assert_int_equal(sel->n, 0);
		assert_true(api_selector_match_msgpack(sel, web.data, web.len));
		assert_true(api_selector_match_msgpack(sel, bare.data, bare.len));
		assert_true(api_selector_match_json(sel, NULL));
		api_selector_free(sel);
	}

	/* Null selector: nothing. */
	sel = from_json_ok("null");
	assert_true(sel->nothing);
	assert_false(api_selector_match_msgpack(sel, web.data, web.len));
	assert_false(api_selector_match_msgpack(sel, bare.data, bare.len));
	assert_false(api_selector_match_json(sel, NULL));
	s = api_selector_string(sel);
	assert_string_equal(s, "");
	free(s);
	api_selector_free(sel);
	sel = NULL;
	assert_int_equal(api_selector_from_json(NULL, &sel, NULL, 0), 0);
	assert_true(sel->nothing);
	assert_false(api_selector_match_msgpack(sel, web.data, web.len));
	api_selector_free(sel);

	/* Errors, as LabelSelectorAsSelector reports them. */
	assert_from_json_error("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\"}]}",
			       "for 'in', 'notin' operators, values set can't be empty");
	assert_from_json_error(
		"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"NotIn\",\"values\":[]}]}",
		"values set can't be empty");
	assert_from_json_error(
		"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\",\"values\":[\"x\"]}]}",
		"values set must be empty for exists and does not exist");
	assert_from_json_error("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"DoesNotExist\","
			       "\"values\":[\"x\"]}]}",
			       "values set must be empty");
	assert_from_json_error(
		"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Equals\",\"values\":[\"x\"]}]}",
		"\"Equals\" is not a valid label selector operator");
	assert_from_json_error("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"in\","
			       "\"values\":[\"x\"]}]}",
			       "\"in\" is not a valid label selector operator");
	assert_from_json_error("{\"matchLabels\":{\"bad key\":\"x\"}}", "invalid label key \"bad key\"");
	assert_from_json_error("{\"matchLabels\":{\"a\":\"-x-\"}}", "invalid label value: \"-x-\"");
	assert_from_json_error("{\"matchLabels\":{\"a\":1}}", "must be a string");
	assert_from_json_error("{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\","
			       "\"values\":[\"ok\",3]}]}",
			       "values[1] must be a string");
	assert_from_json_error("{\"matchExpressions\":[{\"operator\":\"Exists\"}]}",
			       "needs a key and an operator");
	assert_from_json_error("[]", "must be an object");

	buf_free(&web);
	buf_free(&db);
	buf_free(&bare);
}

static void test_validate_json(void **state)
{
	(void)state;
	struct {
		const char *ls;
		size_t n;
		const char *reason, *field, *msg;
	} cases[] = {
		{ "{\"matchLabels\":{\"app\":\"web\"},\"matchExpressions\":[{\"key\":\"a\","
		  "\"operator\":\"In\",\"values\":[\"x\"]},{\"key\":\"b\",\"operator\":\"Exists\"}]}",
		  0, NULL, NULL, NULL },
		{ "{}", 0, NULL, NULL, NULL },
		{ "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\"}]}", 1,
		  "FieldValueRequired", "spec.selector.matchExpressions[0].values",
		  "Required value: must be specified when `operator` is 'In' or 'NotIn'" },
		{ "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\"},"
		  "{\"key\":\"a\",\"operator\":\"DoesNotExist\",\"values\":[\"v\"]}]}",
		  1, "FieldValueForbidden", "spec.selector.matchExpressions[1].values",
		  "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'" },
		{ "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Equals\",\"values\":[\"v\"]}]}",
		  1, "FieldValueInvalid", "spec.selector.matchExpressions[0].operator",
		  "Invalid value: \"Equals\": not a valid selector operator" },
		{ "{\"matchExpressions\":[{\"key\":\"-a\",\"operator\":\"Exists\"}]}", 1,
		  "FieldValueInvalid", "spec.selector.matchExpressions[0].key", "Invalid value: \"-a\"" },
		{ "{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[\"ok\",\"n o\"]}]}",
		  1, "FieldValueInvalid", "spec.selector.matchExpressions[0].values[1]",
		  "Invalid value: \"n o\"" },
		{ "{\"matchLabels\":{\"a/b/c\":\"x\"}}", 1, "FieldValueInvalid",
		  "spec.selector.matchLabels", "Invalid value: \"a/b/c\"" },
		{ "{\"matchLabels\":{\"a\":\"x_\"}}", 1, "FieldValueInvalid",
		  "spec.selector.matchLabels", "Invalid value: \"x_\": a valid label must be" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = load(cases[i].ls);
		struct api_errors e;
		api_errors_init(&e);
		assert_int_equal(api_selector_validate_json(j, "spec.selector", &e), 0);
		for (size_t c = 0; c < e.n; c++) {
			print_message("# %s %s: %s\n", api_cause_reason_name(e.causes[c].reason),
				      e.causes[c].field, e.causes[c].message);
		}
		assert_int_equal(e.n, cases[i].n);
		if (cases[i].n) {
			assert_string_equal(api_cause_reason_name(e.causes[0].reason), cases[i].reason);
			assert_string_equal(e.causes[0].field, cases[i].field);
			if (!strstr(e.causes[0].message, cases[i].msg)) {
				fail_msg("case %zu: '%s' lacks '%s'", i, e.causes[0].message,
					 cases[i].msg);
			}
		}
		api_errors_close(&e);
		json_decref(j);
	}
	/* Null adds nothing. */
	struct api_errors e;
	api_errors_init(&e);
	assert_int_equal(api_selector_validate_json(NULL, "spec.selector", &e), 0);
	assert_int_equal(api_selector_validate_json(json_null(), "spec.selector", &e), 0);
	assert_int_equal(e.n, 0);
	api_errors_close(&e);
}

/* ---------------------------------------------------------------- Field selectors */

static struct api_fieldsel *fparse_ok(const char *kind, const char *text)
{
	const struct api_kind *k = kind ? api_kind_by_name(kind) : NULL;
	if (kind) {
		assert_non_null(k);
	}
	struct api_fieldsel *sel = NULL;
	char err[512] = "";
	int rv = api_fieldsel_parse(k, text, &sel, err, sizeof(err));
	if (rv != 0) {
		fail_msg("field selector '%s' failed: %d %s", text, rv, err);
	}
	return sel;
}

static void assert_fparse_error(const char *kind, const char *text, const char *want)
{
	const struct api_kind *k = kind ? api_kind_by_name(kind) : NULL;
	struct api_fieldsel *sel = NULL;
	char err[512] = "";
	assert_int_equal(api_fieldsel_parse(k, text, &sel, err, sizeof(err)), -EINVAL);
	assert_null(sel);
	if (strcmp(err, want) != 0) {
		fail_msg("'%s': message '%s', want '%s'", text, err, want);
	}
}

/* Whether field selector @text on @kind matches @obj (msgpack and JSON). */
static bool field_match(const char *kind, const char *text, const char *obj)
{
	struct buf b;
	mp(obj, &b);
	struct api_fieldsel *sel = fparse_ok(kind, text);
	bool m = api_fieldsel_match_msgpack(sel, b.data, b.len);
	json_t *j = load(obj);
	assert_int_equal(api_fieldsel_match_json(sel, j), m);
	json_decref(j);
	api_fieldsel_free(sel);
	buf_free(&b);
	return m;
}

static void test_fieldsel_parse(void **state)
{
	(void)state;
	struct api_fieldsel *sel = fparse_ok("pods", "spec.nodeName=node-a,status.phase!=Failed,"
						      "metadata.name==web-1");
	assert_int_equal(sel->n, 3);
	assert_string_equal(sel->terms[0].field, "spec.nodeName");
	assert_string_equal(sel->terms[0].value, "node-a");
	assert_false(sel->terms[0].not_equal);
	assert_string_equal(sel->terms[1].field, "status.phase");
	assert_true(sel->terms[1].not_equal);
	assert_string_equal(sel->terms[2].value, "web-1");
	assert_false(sel->terms[2].not_equal);
	assert_string_equal(api_fieldsel_exact(sel, "spec.nodeName"), "node-a");
	assert_string_equal(api_fieldsel_exact(sel, "metadata.name"), "web-1");
	assert_null(api_fieldsel_exact(sel, "status.phase")); /* != is not exact */
	assert_null(api_fieldsel_exact(sel, "metadata.namespace"));
	api_fieldsel_free(sel);

	/* Empty, empty terms, empty values. */
	sel = fparse_ok("pods", "");
	assert_int_equal(sel->n, 0);
	api_fieldsel_free(sel);
	sel = fparse_ok("pods", NULL);
	assert_int_equal(sel->n, 0);
	api_fieldsel_free(sel);
	sel = fparse_ok("pods", ",spec.nodeName=,,");
	assert_int_equal(sel->n, 1);
	assert_string_equal(sel->terms[0].value, "");
	api_fieldsel_free(sel);

	/* Escapes. */
	sel = fparse_ok("configmaps", "metadata.name=a\\,b\\=c\\\\d,metadata.namespace=x");
	assert_int_equal(sel->n, 2);
	assert_string_equal(sel->terms[0].value, "a,b=c\\d");
	assert_string_equal(sel->terms[1].value, "x");
	api_fieldsel_free(sel);

	/* metadata.* for every kind, even without a kind. */
	sel = fparse_ok(NULL, "metadata.name=x,metadata.namespace=y");
	api_fieldsel_free(sel);
	sel = fparse_ok("nodes", "metadata.name=n1,metadata.namespace=");
	api_fieldsel_free(sel);
	sel = fparse_ok("events", "involvedObject.name=web-1,involvedObject.kind=Pod,type!=Normal");
	api_fieldsel_free(sel);

	/* Errors. */
	assert_fparse_error("pods", "spec.nodeName", "invalid selector: 'spec.nodeName'; can't "
						     "understand 'spec.nodeName'");
	assert_fparse_error("pods", "a=b,foo", "invalid selector: 'a=b,foo'; can't understand 'foo'");
	assert_fparse_error("pods", "spec.foo=x", "field label not supported: spec.foo");
	assert_fparse_error("pods", "status.phase=Running,spec.image=x",
			    "field label not supported: spec.image");
	assert_fparse_error("pods", " spec.nodeName=x", "field label not supported:  spec.nodeName");
	assert_fparse_error("configmaps", "spec.nodeName=x", "field label not supported: spec.nodeName");
	assert_fparse_error("events", "involvedObject.foo=x",
			    "field label not supported: involvedObject.foo");
	assert_fparse_error(NULL, "spec.nodeName=x", "field label not supported: spec.nodeName");
	assert_fparse_error("pods", "metadata.name=a=b",
			    "invalid field selector: unescaped character in value: =");
	assert_fparse_error("pods", "metadata.name=a\\x",
			    "invalid field selector: invalid escape sequence: \\x");
	assert_fparse_error("pods", "metadata.name=a\\",
			    "invalid field selector: invalid escape sequence: \\");
	assert_fparse_error("pods", "metadata.name===a",
			    "invalid field selector: unescaped character in value: =");

	sel = NULL;
	assert_int_equal(api_fieldsel_parse(NULL, "x=y", &sel, NULL, 0), -EINVAL);
	assert_null(sel);
}

static void test_fieldsel_pods(void **state)
{
	(void)state;
	assert_true(field_match("pods", "", pod_web));
	assert_true(field_match("pods", "spec.nodeName=node-a", pod_web));
	assert_false(field_match("pods", "spec.nodeName=node-a", pod_db));
	assert_false(field_match("pods", "spec.nodeName=node-a", pod_bare));
	assert_true(field_match("pods", "spec.nodeName!=node-a", pod_db));
	assert_false(field_match("pods", "spec.nodeName=node", pod_web)); /* whole value */
	/* Unscheduled pods: a missing (or null) nodeName is "". */
	assert_true(field_match("pods", "spec.nodeName=", pod_bare));
	assert_true(field_match("pods", "spec.nodeName==", pod_null));
	assert_false(field_match("pods", "spec.nodeName=", pod_web));
	assert_true(field_match("pods", "spec.nodeName!=", pod_web));
	assert_false(field_match("pods", "spec.nodeName!=", pod_bare));
	/* status.phase. */
	assert_true(field_match("pods", "status.phase=Running", pod_web));
	assert_true(field_match("pods", "status.phase!=Running", pod_db));
	assert_true(field_match("pods", "status.phase=Pending,spec.nodeName=node-b", pod_db));
	assert_false(field_match("pods", "status.phase=Pending,spec.nodeName=node-a", pod_db));
	assert_true(field_match("pods", "status.phase!=Succeeded,status.phase!=Failed", pod_bare));
	/* metadata. */
	assert_true(field_match("pods", "metadata.name=web-1", pod_web));
	assert_false(field_match("pods", "metadata.name=web-1", pod_db));
	assert_true(field_match("pods", "metadata.namespace=prod", pod_db));
	assert_true(field_match("pods", "metadata.namespace!=prod,metadata.name=bare", pod_bare));
	/* Booleans compare as "true"/"false"; absent is false. */
	assert_true(field_match("pods", "spec.hostNetwork=true", pod_web));
	assert_true(field_match("pods", "spec.hostNetwork=false", pod_db));
	assert_false(field_match("pods", "spec.hostNetwork=", pod_db));

	/* NULL selector and object. */
	assert_true(api_fieldsel_match_msgpack(NULL, NULL, 0));
	struct api_fieldsel *sel = fparse_ok("pods", "spec.nodeName=");
	assert_true(api_fieldsel_match_msgpack(sel, NULL, 0));
	assert_true(api_fieldsel_match_json(sel, NULL));
	api_fieldsel_free(sel);
}

static void test_fieldsel_others(void **state)
{
	(void)state;
	const char *ev =
		"{\"kind\":\"Event\",\"metadata\":{\"name\":\"web-1.17a\",\"namespace\":\"default\"},"
		"\"involvedObject\":{\"kind\":\"Pod\",\"name\":\"web-1\",\"namespace\":\"default\","
		"\"uid\":\"u-1\"},\"reason\":\"Scheduled\",\"type\":\"Normal\","
		"\"source\":{\"component\":\"default-scheduler\"}}";
	const char *ev2 =
		"{\"kind\":\"Event\",\"metadata\":{\"name\":\"db-0.1\",\"namespace\":\"prod\"},"
		"\"involvedObject\":{\"kind\":\"Pod\",\"name\":\"db-0\"},\"reason\":\"BackOff\","
		"\"type\":\"Warning\",\"reportingComponent\":\"kubelet\"}";
	assert_true(field_match("events", "involvedObject.name=web-1", ev));
	assert_false(field_match("events", "involvedObject.name=web-1", ev2));
	assert_true(field_match("events", "involvedObject.kind=Pod,involvedObject.name=db-0", ev2));
	assert_true(field_match("events", "involvedObject.uid=u-1", ev));
	assert_true(field_match("events", "involvedObject.uid=", ev2));
	assert_true(field_match("events", "type=Warning", ev2));
	assert_true(field_match("events", "reason!=Scheduled", ev2));
	/* "source": source.component, else reportingComponent. */
	assert_true(field_match("events", "source=default-scheduler", ev));
	assert_true(field_match("events", "source=kubelet", ev2));
	assert_true(field_match("events", "reportingComponent=kubelet", ev2));
	assert_true(field_match("events", "reportingComponent=", ev));

	/* Node: spec.unschedulable is a boolean, false when absent. */
	const char *node = "{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"},\"spec\":{}}";
	const char *cordoned =
		"{\"kind\":\"Node\",\"metadata\":{\"name\":\"n2\"},\"spec\":{\"unschedulable\":true}}";
	assert_true(field_match("nodes", "spec.unschedulable=false", node));
	assert_false(field_match("nodes", "spec.unschedulable=false", cordoned));
	assert_true(field_match("nodes", "spec.unschedulable!=false", cordoned));
	assert_true(field_match("nodes", "metadata.namespace=", node));

	/* ReplicaSet: status.replicas is an integer, 0 when absent. */
	const char *rs = "{\"kind\":\"ReplicaSet\",\"metadata\":{\"name\":\"r\"},"
			 "\"status\":{\"replicas\":3}}";
	const char *rs0 = "{\"kind\":\"ReplicaSet\",\"metadata\":{\"name\":\"r0\"},\"status\":{}}";
	assert_true(field_match("replicasets", "status.replicas=3", rs));
	assert_true(field_match("replicasets", "status.replicas!=0", rs));
	assert_true(field_match("replicasets", "status.replicas=0", rs0));

	/* Secret type and Namespace phase. */
	assert_true(field_match("secrets", "type=kubernetes.io/tls",
				"{\"kind\":\"Secret\",\"type\":\"kubernetes.io/tls\"}"));
	assert_true(field_match("namespaces", "status.phase=Active",
				"{\"kind\":\"Namespace\",\"status\":{\"phase\":\"Active\"}}"));
	/* Escaped values compare unescaped. */
	assert_true(field_match("configmaps", "metadata.name=a\\,b",
				"{\"metadata\":{\"name\":\"a,b\"}}"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_operators),
		cmocka_unit_test(test_parse_combinations),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_match_msgpack),
		cmocka_unit_test(test_match_labels_map),
		cmocka_unit_test(test_from_json),
		cmocka_unit_test(test_validate_json),
		cmocka_unit_test(test_fieldsel_parse),
		cmocka_unit_test(test_fieldsel_pods),
		cmocka_unit_test(test_fieldsel_others),
	};
	return cmocka_run_group_tests_name("api_selector", tests, NULL, NULL);
}
