/* Unit tests of the patch engine: RFC 7386 merge patch (the RFC's
 * appendix examples), RFC 6902 JSON patch (the RFC's appendix examples,
 * errors, atomicity), strategic merge patch on real Deployment and Pod
 * objects, and server-side apply. */
#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/api/patch.h"
#include "src/api/registry.h"

/* ---------------------------------------------------------------- Helpers */

static json_t *J(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &e);
	if (!v) {
		fail_msg("bad test JSON (%s): %s", e.text, text);
	}
	return v;
}

/* Asserts that @v equals the JSON @expected (array order matters). */
static void assert_json(const json_t *v, const char *expected)
{
	json_t *e = J(expected);
	if (!json_equal((json_t *)v, e)) {
		char *got = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		char *want = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		print_error("got:  %s\nwant: %s\n", got, want);
		free(got);
		free(want);
		json_decref(e);
		fail();
	}
	json_decref(e);
}

static const struct api_type *kind_type(const char *kind)
{
	const struct api_kind *k = api_kind_by_kind(kind);
	assert_non_null(k);
	const struct api_type *t = api_type_get(k->type);
	assert_non_null(t);
	return t;
}

#define DEPLOY() kind_type("Deployment")
#define POD() kind_type("Pod")

/* The JSON value at dotted @path of @obj with [i] for list items. */
static json_t *at(json_t *obj, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	json_t *cur = obj;
	for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, ".")) {
		char *br = strchr(tok, '[');
		if (br) {
			*br = '\0';
			cur = json_object_get(cur, tok);
			cur = json_array_get(cur, (size_t)atoi(br + 1));
		} else {
			cur = json_object_get(cur, tok);
		}
	}
	return cur;
}

/* Names of the list items at @path, comma-joined, into @buf. */
static const char *names(json_t *obj, const char *path, const char *key, char *buf, size_t size)
{
	json_t *list = at(obj, path);
	buf[0] = '\0';
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *item = json_array_get(list, i);
		const char *n = key ? json_string_value(json_object_get(item, key))
				    : json_string_value(item);
		size_t len = strlen(buf);
		snprintf(buf + len, size - len, "%s%s", i ? "," : "", n ? n : "?");
	}
	return buf;
}

#define assert_names(obj, path, key, want)                                                 \
	do {                                                                               \
		char nb_[512];                                                             \
		assert_string_equal(names(obj, path, key, nb_, sizeof(nb_)), want);        \
	} while (0)

static const char *DEPLOYMENT =
	"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\","
	"\"metadata\":{\"name\":\"web\",\"namespace\":\"default\","
	"  \"labels\":{\"app\":\"web\",\"tier\":\"front\"},"
	"  \"finalizers\":[\"a.example.com/x\",\"b.example.com/y\"]},"
	"\"spec\":{\"replicas\":2,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
	"  \"strategy\":{\"type\":\"RollingUpdate\","
	"    \"rollingUpdate\":{\"maxSurge\":1,\"maxUnavailable\":0}},"
	"  \"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},"
	"    \"spec\":{\"containers\":["
	"      {\"name\":\"app\",\"image\":\"nginx:1\",\"args\":[\"-a\",\"-b\"],"
	"       \"env\":[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"B\",\"value\":\"2\"}],"
	"       \"ports\":[{\"containerPort\":80,\"protocol\":\"TCP\"}]},"
	"      {\"name\":\"sidecar\",\"image\":\"busybox:1\"}],"
	"     \"volumes\":[{\"name\":\"data\",\"emptyDir\":{}}]}}}}";

static const char *POD_JSON =
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\","
	"\"metadata\":{\"name\":\"p\",\"namespace\":\"default\",\"labels\":{\"app\":\"p\"}},"
	"\"spec\":{\"nodeSelector\":{\"disk\":\"ssd\"},"
	"  \"containers\":[{\"name\":\"c\",\"image\":\"busybox\","
	"    \"volumeMounts\":[{\"name\":\"v\",\"mountPath\":\"/v\"}]}],"
	"  \"tolerations\":[{\"key\":\"k\",\"operator\":\"Exists\"}],"
	"  \"volumes\":[{\"name\":\"v\",\"hostPath\":{\"path\":\"/tmp\",\"type\":\"Directory\"}}]}}";

/* Runs a strategic patch that must succeed; returns the new tree. */
static json_t *smp(const struct api_type *t, const char *target, const char *patch)
{
	json_t *obj = J(target);
	json_t *p = J(patch);
	json_t *before = obj;
	json_t *orig = json_deep_copy(obj);
	json_incref(before); /* a second holder must keep seeing the old tree */
	char err[256] = "";
	int rc = api_patch_strategic(t, &obj, p, err, sizeof(err));
	if (rc != 0) {
		fail_msg("strategic patch failed (%d): %s", rc, err);
	}
	assert_true(json_equal(before, orig)); /* the old tree is never modified */
	json_decref(before);
	json_decref(orig);
	json_decref(p);
	return obj;
}

/* The patch must fail with -EINVAL and a message, target untouched. */
typedef int (*patch_fn)(const struct api_type *t, json_t **target, const json_t *patch,
			char *err, size_t errlen);

static void expect_invalid(patch_fn fn, const struct api_type *t, const char *target,
			   const char *patch, const char *msg_part)
{
	json_t *obj = target ? J(target) : NULL;
	json_t *copy = obj ? json_deep_copy(obj) : NULL;
	json_t *before = obj;
	json_t *p = J(patch);
	char err[256] = "";
	int rc = fn(t, &obj, p, err, sizeof(err));
	if (rc != -EINVAL) {
		fail_msg("expected -EINVAL for %s, got %d", patch, rc);
	}
	assert_true(err[0] != '\0');
	if (msg_part && !strstr(err, msg_part)) {
		fail_msg("message \"%s\" lacks \"%s\"", err, msg_part);
	}
	assert_ptr_equal(obj, before);
	if (copy) {
		assert_true(json_equal(obj, copy));
	}
	json_decref(copy);
	json_decref(obj);
	json_decref(p);
}

static int strategic_fn(const struct api_type *t, json_t **target, const json_t *patch, char *err,
			size_t errlen)
{
	return api_patch_strategic(t, target, patch, err, errlen);
}

static int json_fn(const struct api_type *t, json_t **target, const json_t *patch, char *err,
		   size_t errlen)
{
	(void)t;
	return api_patch_json(target, patch, err, errlen);
}

static int apply_fn(const struct api_type *t, json_t **target, const json_t *patch, char *err,
		    size_t errlen)
{
	return api_patch_apply(t, target, patch, err, errlen);
}

/* ---------------------------------------------------------------- RFC 7386 */

static void merge_case(const char *target, const char *patch, const char *want)
{
	json_t *t = J(target);
	json_t *p = J(patch);
	char err[128];
	assert_int_equal(api_patch_merge(&t, p, err, sizeof(err)), 0);
	assert_json(t, want);
	json_decref(t);
	json_decref(p);
}

/* RFC 7386 Appendix A, every example. */
static void test_merge_rfc7386_appendix(void **state)
{
	(void)state;
	merge_case("{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
	merge_case("{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}");
	merge_case("{\"a\":\"b\"}", "{\"a\":null}", "{}");
	merge_case("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}");
	merge_case("{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
	merge_case("{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}");
	merge_case("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}",
		   "{\"a\":{\"b\":\"d\"}}");
	merge_case("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}");
	merge_case("[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]");
	merge_case("{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]");
	merge_case("{\"a\":\"foo\"}", "null", "null");
	merge_case("{\"a\":\"foo\"}", "\"bar\"", "\"bar\"");
	merge_case("{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}");
	merge_case("[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}");
	merge_case("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}");
}

/* RFC 7386 section 3's example document. */
static void test_merge_rfc7386_example(void **state)
{
	(void)state;
	merge_case("{\"title\":\"Goodbye!\",\"author\":{\"givenName\":\"John\","
		   "\"familyName\":\"Doe\"},\"tags\":[\"example\",\"sample\"],"
		   "\"content\":\"This will be unchanged\"}",
		   "{\"title\":\"Hello!\",\"phoneNumber\":\"+01-123-456-7890\","
		   "\"author\":{\"familyName\":null},\"tags\":[\"example\"]}",
		   "{\"title\":\"Hello!\",\"author\":{\"givenName\":\"John\"},"
		   "\"tags\":[\"example\"],\"content\":\"This will be unchanged\","
		   "\"phoneNumber\":\"+01-123-456-7890\"}");
}

/* The caller's old tree is never modified; NULL target works. */
static void test_merge_copy_semantics(void **state)
{
	(void)state;
	json_t *t = J("{\"a\":{\"b\":1}}");
	json_t *keep = json_incref(t);
	json_t *p = J("{\"a\":{\"b\":2}}");
	assert_int_equal(api_patch_merge(&t, p, NULL, 0), 0);
	assert_json(keep, "{\"a\":{\"b\":1}}");
	assert_json(t, "{\"a\":{\"b\":2}}");
	json_decref(keep);
	json_decref(t);
	t = NULL;
	assert_int_equal(api_patch_merge(&t, p, NULL, 0), 0);
	assert_json(t, "{\"a\":{\"b\":2}}");
	json_decref(t);
	json_decref(p);
}

/* A patch nested deeper than the engine recurses is refused cleanly. */
static void test_too_deep(void **state)
{
	(void)state;
	char *deep = malloc(8 * 700 + 16);
	assert_non_null(deep);
	char *q = deep;
	for (int i = 0; i < 700; i++) {
		q += sprintf(q, "{\"a\":");
	}
	q += sprintf(q, "1");
	for (int i = 0; i < 700; i++) {
		*q++ = '}';
	}
	*q = '\0';
	json_t *t = J("{\"a\":1}");
	json_t *p = J(deep);
	char err[128] = "";
	assert_int_equal(api_patch_merge(&t, p, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "deep"));
	assert_int_equal(api_patch_strategic(NULL, &t, p, err, sizeof(err)), -EINVAL);
	assert_int_equal(api_patch_apply(NULL, &t, p, err, sizeof(err)), -EINVAL);
	assert_json(t, "{\"a\":1}");
	json_decref(t);
	json_decref(p);
	free(deep);
}

/* ---------------------------------------------------------------- RFC 6902 */

static void jp_case(const char *target, const char *ops, const char *want)
{
	json_t *t = J(target);
	json_t *p = J(ops);
	char err[256] = "";
	int rc = api_patch_json(&t, p, err, sizeof(err));
	if (rc != 0) {
		fail_msg("json patch failed: %s", err);
	}
	assert_json(t, want);
	json_decref(t);
	json_decref(p);
}

/* RFC 6902 Appendix A, the successful examples. */
static void test_json_patch_rfc6902_appendix(void **state)
{
	(void)state;
	/* A.1 */
	jp_case("{\"foo\":\"bar\"}", "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\"}]",
		"{\"baz\":\"qux\",\"foo\":\"bar\"}");
	/* A.2 */
	jp_case("{\"foo\":[\"bar\",\"baz\"]}",
		"[{\"op\":\"add\",\"path\":\"/foo/1\",\"value\":\"qux\"}]",
		"{\"foo\":[\"bar\",\"qux\",\"baz\"]}");
	/* A.3 */
	jp_case("{\"baz\":\"qux\",\"foo\":\"bar\"}", "[{\"op\":\"remove\",\"path\":\"/baz\"}]",
		"{\"foo\":\"bar\"}");
	/* A.4 */
	jp_case("{\"foo\":[\"bar\",\"qux\",\"baz\"]}", "[{\"op\":\"remove\",\"path\":\"/foo/1\"}]",
		"{\"foo\":[\"bar\",\"baz\"]}");
	/* A.5 */
	jp_case("{\"baz\":\"qux\",\"foo\":\"bar\"}",
		"[{\"op\":\"replace\",\"path\":\"/baz\",\"value\":\"boo\"}]",
		"{\"baz\":\"boo\",\"foo\":\"bar\"}");
	/* A.6 */
	jp_case("{\"foo\":{\"bar\":\"baz\",\"waldo\":\"fred\"},\"qux\":{\"corge\":\"grault\"}}",
		"[{\"op\":\"move\",\"from\":\"/foo/waldo\",\"path\":\"/qux/thud\"}]",
		"{\"foo\":{\"bar\":\"baz\"},\"qux\":{\"corge\":\"grault\",\"thud\":\"fred\"}}");
	/* A.7 */
	jp_case("{\"foo\":[\"all\",\"grass\",\"cows\",\"eat\"]}",
		"[{\"op\":\"move\",\"from\":\"/foo/1\",\"path\":\"/foo/3\"}]",
		"{\"foo\":[\"all\",\"cows\",\"eat\",\"grass\"]}");
	/* A.8 */
	jp_case("{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}",
		"[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"qux\"},"
		"{\"op\":\"test\",\"path\":\"/foo/1\",\"value\":2}]",
		"{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}");
	/* A.10 */
	jp_case("{\"foo\":\"bar\"}",
		"[{\"op\":\"add\",\"path\":\"/child\",\"value\":{\"grandchild\":{}}}]",
		"{\"foo\":\"bar\",\"child\":{\"grandchild\":{}}}");
	/* A.11: unrecognised members are ignored */
	jp_case("{\"foo\":\"bar\"}",
		"[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\",\"xyz\":123}]",
		"{\"foo\":\"bar\",\"baz\":\"qux\"}");
	/* A.14: ~1 is /, ~0 is ~ */
	jp_case("{\"/\":9,\"~1\":10}", "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":10}]",
		"{\"/\":9,\"~1\":10}");
	jp_case("{\"/\":9,\"~1\":10}", "[{\"op\":\"test\",\"path\":\"/~1\",\"value\":9}]",
		"{\"/\":9,\"~1\":10}");
	/* A.16 */
	jp_case("{\"foo\":[\"bar\"]}",
		"[{\"op\":\"add\",\"path\":\"/foo/-\",\"value\":[\"abc\",\"def\"]}]",
		"{\"foo\":[\"bar\",[\"abc\",\"def\"]]}");
}

/* The remaining operations and their corners. */
static void test_json_patch_operations(void **state)
{
	(void)state;
	/* copy (deep: changing the copy leaves the source) */
	jp_case("{\"a\":{\"b\":1}}",
		"[{\"op\":\"copy\",\"from\":\"/a\",\"path\":\"/c\"},"
		"{\"op\":\"replace\",\"path\":\"/c/b\",\"value\":2}]",
		"{\"a\":{\"b\":1},\"c\":{\"b\":2}}");
	/* add replaces an existing member; add at index == size appends */
	jp_case("{\"a\":1,\"l\":[1]}",
		"[{\"op\":\"add\",\"path\":\"/a\",\"value\":2},"
		"{\"op\":\"add\",\"path\":\"/l/1\",\"value\":3}]",
		"{\"a\":2,\"l\":[1,3]}");
	/* the whole document */
	jp_case("{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":{\"b\":2}}]",
		"{\"b\":2}");
	jp_case("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"\",\"value\":[1]}]", "[1]");
	/* move to the same place is a no-op; numbers compare by value */
	jp_case("{\"a\":1}",
		"[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a\"},"
		"{\"op\":\"test\",\"path\":\"/a\",\"value\":1.0}]",
		"{\"a\":1}");
	/* a null value is a value */
	jp_case("{}", "[{\"op\":\"add\",\"path\":\"/n\",\"value\":null}]", "{\"n\":null}");
	/* deep test of objects ignores member order */
	jp_case("{\"o\":{\"x\":1,\"y\":[1,2]}}",
		"[{\"op\":\"test\",\"path\":\"/o\",\"value\":{\"y\":[1,2],\"x\":1}}]",
		"{\"o\":{\"x\":1,\"y\":[1,2]}}");
	/* a Kubernetes-style label edit with an escaped key */
	jp_case("{\"metadata\":{\"labels\":{\"app.kubernetes.io/name\":\"x\"}}}",
		"[{\"op\":\"replace\",\"path\":\"/metadata/labels/app.kubernetes.io~1name\","
		"\"value\":\"y\"}]",
		"{\"metadata\":{\"labels\":{\"app.kubernetes.io/name\":\"y\"}}}");
}

static void test_json_patch_errors(void **state)
{
	(void)state;
	const char *doc = "{\"foo\":\"bar\",\"baz\":\"qux\",\"l\":[1,2],\"q\":{\"foo\":\"bar\"}}";
	/* A.9: a failed test */
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"bar\"}]",
		       "differs");
	/* A.12: adding to a nonexistent target */
	expect_invalid(json_fn, NULL, doc,
		       "[{\"op\":\"add\",\"path\":\"/baz/bat\",\"value\":\"qux\"}]", NULL);
	expect_invalid(json_fn, NULL, doc,
		       "[{\"op\":\"add\",\"path\":\"/nope/bat\",\"value\":\"qux\"}]", NULL);
	/* A.15: a string is not a number */
	expect_invalid(json_fn, NULL, "{\"/\":9,\"~1\":10}",
		       "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":\"10\"}]", NULL);
	/* bad pointers */
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"remove\",\"path\":\"foo\"}]", "pointer");
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"remove\",\"path\":\"/f~2o\"}]", "escape");
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"remove\",\"path\":\"/l/01\"}]", "index");
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"remove\",\"path\":\"/l/2\"}]", "index");
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"remove\",\"path\":\"/l/-\"}]", "index");
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"add\",\"path\":\"/l/3\",\"value\":0}]",
		       "index");
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"add\",\"path\":\"/l/x\",\"value\":0}]",
		       "index");
	/* missing targets of remove and replace */
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"remove\",\"path\":\"/nope\"}]", NULL);
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"replace\",\"path\":\"/nope\",\"value\":1}]",
		       NULL);
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"remove\",\"path\":\"\"}]", NULL);
	/* malformed operations */
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"frob\",\"path\":\"/foo\"}]", "unknown op");
	expect_invalid(json_fn, NULL, doc, "[{\"path\":\"/foo\"}]", "missing op");
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"add\",\"value\":1}]", "missing path");
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"add\",\"path\":\"/x\"}]", "missing value");
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"move\",\"path\":\"/x\"}]", "missing from");
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"copy\",\"from\":\"/zz\",\"path\":\"/x\"}]",
		       "does not exist");
	expect_invalid(json_fn, NULL, doc, "[{\"op\":\"move\",\"from\":\"/q\",\"path\":\"/q/x\"}]",
		       "own child");
	expect_invalid(json_fn, NULL, doc, "[17]", "not an object");
	expect_invalid(json_fn, NULL, doc, "{\"op\":\"add\"}", "array");
}

/* All or nothing: earlier operations are undone when a later one fails. */
static void test_json_patch_atomic(void **state)
{
	(void)state;
	const char *doc = "{\"a\":1,\"l\":[1,2,3]}";
	expect_invalid(json_fn, NULL, doc,
		       "[{\"op\":\"add\",\"path\":\"/b\",\"value\":2},"
		       "{\"op\":\"remove\",\"path\":\"/l/0\"},"
		       "{\"op\":\"replace\",\"path\":\"/a\",\"value\":9},"
		       "{\"op\":\"test\",\"path\":\"/a\",\"value\":1}]",
		       "operation 3 (test)");
	expect_invalid(json_fn, NULL, doc,
		       "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/l/-\"},"
		       "{\"op\":\"remove\",\"path\":\"/a\"}]",
		       "operation 1 (remove)");
}

/* ---------------------------------------------------------------- Strategic */

/* Containers merge by name: the patched one keeps its other fields, the
 * others stay, and a new one goes first (strategicpatch puts patch items
 * not known to the server before the server-only ones). */
static void test_smp_containers_by_name(void **state)
{
	(void)state;
	json_t *o = smp(DEPLOY(), DEPLOYMENT,
			"{\"spec\":{\"template\":{\"spec\":{\"containers\":["
			"{\"name\":\"app\",\"image\":\"nginx:2\"}]}}}}");
	json_t *c0 = at(o, "spec.template.spec.containers[0]");
	assert_names(o, "spec.template.spec.containers", "name", "app,sidecar");
	assert_string_equal(json_string_value(json_object_get(c0, "image")), "nginx:2");
	assert_json(json_object_get(c0, "args"), "[\"-a\",\"-b\"]");
	assert_names(o, "spec.template.spec.containers[0].env", "name", "A,B");
	assert_string_equal(json_string_value(at(o, "spec.template.spec.containers[1].image")),
			    "busybox:1");
	json_decref(o);

	o = smp(DEPLOY(), DEPLOYMENT,
		"{\"spec\":{\"template\":{\"spec\":{\"containers\":["
		"{\"name\":\"new\",\"image\":\"redis\"}]}}}}");
	assert_names(o, "spec.template.spec.containers", "name", "new,app,sidecar");
	json_decref(o);

	/* Without a schema the same list is replaced (merge-patch rules). */
	o = smp(NULL, DEPLOYMENT,
		"{\"spec\":{\"template\":{\"spec\":{\"containers\":["
		"{\"name\":\"app\",\"image\":\"nginx:2\"}]}}}}");
	assert_json(at(o, "spec.template.spec.containers"),
		    "[{\"name\":\"app\",\"image\":\"nginx:2\"}]");
	json_decref(o);
}

static void test_smp_delete_directive(void **state)
{
	(void)state;
	json_t *o = smp(DEPLOY(), DEPLOYMENT,
			"{\"spec\":{\"template\":{\"spec\":{\"containers\":["
			"{\"name\":\"sidecar\",\"$patch\":\"delete\"}]}}}}");
	assert_names(o, "spec.template.spec.containers", "name", "app");
	json_decref(o);

	/* $patch: delete on a map empties it. */
	o = smp(DEPLOY(), DEPLOYMENT, "{\"metadata\":{\"labels\":{\"$patch\":\"delete\"}}}");
	assert_json(at(o, "metadata.labels"), "{}");
	json_decref(o);
}

static void test_smp_replace_directive(void **state)
{
	(void)state;
	/* On a map: the map becomes the patch's other keys. */
	json_t *o = smp(DEPLOY(), DEPLOYMENT,
			"{\"metadata\":{\"labels\":{\"$patch\":\"replace\",\"x\":\"y\"}}}");
	assert_json(at(o, "metadata.labels"), "{\"x\":\"y\"}");
	json_decref(o);
	/* On a merging list: the list becomes the patch's other elements. */
	o = smp(DEPLOY(), DEPLOYMENT,
		"{\"spec\":{\"template\":{\"spec\":{\"containers\":["
		"{\"$patch\":\"replace\"},{\"name\":\"only\",\"image\":\"x\"}]}}}}");
	assert_json(at(o, "spec.template.spec.containers"), "[{\"name\":\"only\",\"image\":\"x\"}]");
	json_decref(o);
	/* merge on a map is the default behaviour. */
	o = smp(DEPLOY(), DEPLOYMENT, "{\"metadata\":{\"labels\":{\"$patch\":\"merge\",\"x\":\"y\"}}}");
	assert_json(at(o, "metadata.labels"), "{\"app\":\"web\",\"tier\":\"front\",\"x\":\"y\"}");
	json_decref(o);
}

static void test_smp_set_element_order(void **state)
{
	(void)state;
	json_t *o = smp(DEPLOY(), DEPLOYMENT,
			"{\"spec\":{\"template\":{\"spec\":{"
			"\"$setElementOrder/containers\":[{\"name\":\"sidecar\"},{\"name\":\"app\"}],"
			"\"containers\":[{\"name\":\"app\",\"image\":\"nginx:3\"}]}}}}");
	assert_names(o, "spec.template.spec.containers", "name", "sidecar,app");
	assert_string_equal(json_string_value(at(o, "spec.template.spec.containers[1].image")),
			    "nginx:3");
	assert_json(at(o, "spec.template.spec.containers[1].args"), "[\"-a\",\"-b\"]");
	json_decref(o);

	/* What kubectl apply sends when a container is added in the middle. */
	o = smp(DEPLOY(), DEPLOYMENT,
		"{\"spec\":{\"template\":{\"spec\":{"
		"\"$setElementOrder/containers\":[{\"name\":\"app\"},{\"name\":\"mid\"},"
		"{\"name\":\"sidecar\"}],"
		"\"containers\":[{\"name\":\"mid\",\"image\":\"m\"}]}}}}");
	assert_names(o, "spec.template.spec.containers", "name", "app,mid,sidecar");
	json_decref(o);

	/* Nested: env order inside a container, server-only items kept. */
	o = smp(DEPLOY(), DEPLOYMENT,
		"{\"spec\":{\"template\":{\"spec\":{"
		"\"$setElementOrder/containers\":[{\"name\":\"app\"},{\"name\":\"sidecar\"}],"
		"\"containers\":[{\"name\":\"app\","
		"\"$setElementOrder/env\":[{\"name\":\"C\"},{\"name\":\"A\"}],"
		"\"env\":[{\"name\":\"C\",\"value\":\"3\"}]}]}}}}");
	assert_names(o, "spec.template.spec.containers[0].env", "name", "C,A,B");
	json_decref(o);

	/* A patch list out of the directive's order is refused. */
	expect_invalid(strategic_fn, DEPLOY(), DEPLOYMENT,
		       "{\"spec\":{\"template\":{\"spec\":{"
		       "\"$setElementOrder/containers\":[{\"name\":\"sidecar\"},{\"name\":\"app\"}],"
		       "\"containers\":[{\"name\":\"app\",\"image\":\"a\"},"
		       "{\"name\":\"sidecar\",\"image\":\"b\"}]}}}}",
		       "order");
}

static void test_smp_retain_keys(void **state)
{
	(void)state;
	/* Switching the strategy drops rollingUpdate. */
	json_t *o = smp(DEPLOY(), DEPLOYMENT,
			"{\"spec\":{\"strategy\":{\"$retainKeys\":[\"type\"],\"type\":\"Recreate\"}}}");
	assert_json(at(o, "spec.strategy"), "{\"type\":\"Recreate\"}");
	json_decref(o);

	/* A volume changing its source (retainKeys on volume items). */
	o = smp(DEPLOY(), DEPLOYMENT,
		"{\"spec\":{\"template\":{\"spec\":{\"volumes\":[{\"name\":\"data\","
		"\"$retainKeys\":[\"configMap\",\"name\"],\"configMap\":{\"name\":\"cm\"}}]}}}}");
	assert_json(at(o, "spec.template.spec.volumes"),
		    "[{\"name\":\"data\",\"configMap\":{\"name\":\"cm\"}}]");
	json_decref(o);

	expect_invalid(strategic_fn, DEPLOY(), DEPLOYMENT,
		       "{\"spec\":{\"strategy\":{\"$retainKeys\":[\"type\"],"
		       "\"rollingUpdate\":{\"maxSurge\":2}}}}",
		       "$retainKeys");
	expect_invalid(strategic_fn, DEPLOY(), DEPLOYMENT,
		       "{\"spec\":{\"strategy\":{\"$retainKeys\":\"type\"}}}", "$retainKeys");
}

static void test_smp_primitive_lists(void **state)
{
	(void)state;
	json_t *o = smp(DEPLOY(), DEPLOYMENT,
			"{\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":"
			"[\"a.example.com/x\"]}}");
	assert_names(o, "metadata.finalizers", NULL, "b.example.com/y");
	json_decref(o);

	/* Merge as a set: no duplicates, order kept by $setElementOrder. */
	o = smp(DEPLOY(), DEPLOYMENT,
		"{\"metadata\":{\"$setElementOrder/finalizers\":[\"a.example.com/x\","
		"\"b.example.com/y\",\"c.example.com/z\"],"
		"\"finalizers\":[\"a.example.com/x\",\"c.example.com/z\"]}}");
	assert_names(o, "metadata.finalizers", NULL, "a.example.com/x,b.example.com/y,c.example.com/z");
	json_decref(o);

	/* Without the directive: patch items in patch order, a new one before
	 * the server-only items (strategicpatch's mergeSortedSlice). */
	o = smp(DEPLOY(), DEPLOYMENT,
		"{\"metadata\":{\"finalizers\":[\"c.example.com/z\",\"a.example.com/x\"]}}");
	assert_names(o, "metadata.finalizers", NULL, "c.example.com/z,a.example.com/x,b.example.com/y");
	json_decref(o);
	o = smp(DEPLOY(), DEPLOYMENT,
		"{\"metadata\":{\"finalizers\":[\"b.example.com/y\",\"c.example.com/z\"]}}");
	assert_names(o, "metadata.finalizers", NULL, "a.example.com/x,b.example.com/y,c.example.com/z");
	json_decref(o);

	/* Delete and add in one patch, as kubectl computes it. */
	o = smp(DEPLOY(), DEPLOYMENT,
		"{\"metadata\":{\"$setElementOrder/finalizers\":[\"b.example.com/y\","
		"\"c.example.com/z\"],\"$deleteFromPrimitiveList/finalizers\":"
		"[\"a.example.com/x\"],\"finalizers\":[\"c.example.com/z\"]}}");
	assert_names(o, "metadata.finalizers", NULL, "b.example.com/y,c.example.com/z");
	json_decref(o);

	/* args has no merge strategy: replaced. */
	o = smp(DEPLOY(), DEPLOYMENT,
		"{\"spec\":{\"template\":{\"spec\":{\"containers\":["
		"{\"name\":\"app\",\"args\":[\"-c\"]}]}}}}");
	assert_json(at(o, "spec.template.spec.containers[0].args"), "[\"-c\"]");
	json_decref(o);
}

static void test_smp_env_and_ports(void **state)
{
	(void)state;
	json_t *o = smp(DEPLOY(), DEPLOYMENT,
			"{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"app\","
			"\"env\":[{\"name\":\"B\",\"value\":\"20\"},{\"name\":\"C\",\"value\":\"3\"}],"
			"\"ports\":[{\"containerPort\":443,\"protocol\":\"TCP\"}]}]}}}}");
	assert_json(at(o, "spec.template.spec.containers[0].env"),
		    "[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"B\",\"value\":\"20\"},"
		    "{\"name\":\"C\",\"value\":\"3\"}]");
	assert_json(at(o, "spec.template.spec.containers[0].ports"),
		    "[{\"containerPort\":443,\"protocol\":\"TCP\"},"
		    "{\"containerPort\":80,\"protocol\":\"TCP\"}]");
	json_decref(o);

	/* A null inside a merged item deletes that field of the item. */
	o = smp(DEPLOY(), DEPLOYMENT,
		"{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"app\","
		"\"env\":[{\"name\":\"A\",\"value\":null,\"valueFrom\":{\"fieldRef\":"
		"{\"fieldPath\":\"metadata.name\"}}}]}]}}}}");
	assert_json(at(o, "spec.template.spec.containers[0].env[0]"),
		    "{\"name\":\"A\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"metadata.name\"}}}");
	json_decref(o);
}

static void test_smp_maps_and_nulls(void **state)
{
	(void)state;
	json_t *o = smp(DEPLOY(), DEPLOYMENT,
			"{\"metadata\":{\"labels\":{\"tier\":null,\"env\":\"prod\"},"
			"\"annotations\":{\"note\":\"hi\",\"gone\":null}},\"spec\":{\"replicas\":5}}");
	assert_json(at(o, "metadata.labels"), "{\"app\":\"web\",\"env\":\"prod\"}");
	assert_json(at(o, "metadata.annotations"), "{\"note\":\"hi\"}");
	assert_int_equal(json_integer_value(at(o, "spec.replicas")), 5);
	assert_string_equal(json_string_value(at(o, "spec.strategy.type")), "RollingUpdate");
	json_decref(o);

	/* Fields the schema does not know: maps merge, lists replace. */
	o = smp(DEPLOY(), "{\"spec\":{\"x\":{\"a\":1,\"l\":[1,2]}}}",
		"{\"spec\":{\"x\":{\"b\":2,\"l\":[3]}}}");
	assert_json(at(o, "spec.x"), "{\"a\":1,\"b\":2,\"l\":[3]}");
	json_decref(o);

	/* Pod: tolerations (no strategy) replace; volumeMounts merge by mountPath. */
	o = smp(POD(), POD_JSON,
		"{\"spec\":{\"tolerations\":[{\"key\":\"j\",\"operator\":\"Exists\"}],"
		"\"containers\":[{\"name\":\"c\",\"volumeMounts\":[{\"name\":\"w\","
		"\"mountPath\":\"/w\"}]}]}}");
	assert_json(at(o, "spec.tolerations"), "[{\"key\":\"j\",\"operator\":\"Exists\"}]");
	assert_names(o, "spec.containers[0].volumeMounts", "name", "w,v");
	json_decref(o);
}

/* The shape of kubectl apply's patch on a re-apply. */
static void test_smp_kubectl_apply_patch(void **state)
{
	(void)state;
	json_t *o = smp(DEPLOY(), DEPLOYMENT,
			"{\"metadata\":{\"annotations\":{\"kubectl.kubernetes.io/"
			"last-applied-configuration\":\"{}\"}},"
			"\"spec\":{\"replicas\":3,\"template\":{\"spec\":{"
			"\"$setElementOrder/containers\":[{\"name\":\"app\"},{\"name\":\"sidecar\"}],"
			"\"containers\":[{\"$setElementOrder/env\":[{\"name\":\"A\"},{\"name\":\"B\"}],"
			"\"env\":[{\"name\":\"B\",\"value\":\"22\"}],\"image\":\"nginx:4\","
			"\"name\":\"app\"}]}}}}");
	assert_int_equal(json_integer_value(at(o, "spec.replicas")), 3);
	assert_names(o, "spec.template.spec.containers", "name", "app,sidecar");
	assert_json(at(o, "spec.template.spec.containers[0].env"),
		    "[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"B\",\"value\":\"22\"}]");
	assert_non_null(at(o, "spec.template.spec.volumes"));
	json_decref(o);
}

static void test_smp_errors(void **state)
{
	(void)state;
	const struct api_type *t = DEPLOY();
	expect_invalid(strategic_fn, t, DEPLOYMENT, "{\"metadata\":{\"$frob\":1}}", "$frob");
	expect_invalid(strategic_fn, t, DEPLOYMENT, "{\"metadata\":{\"$patch\":\"bogus\"}}",
		       "bogus");
	expect_invalid(strategic_fn, t, DEPLOYMENT,
		       "{\"spec\":{\"template\":{\"spec\":{\"containers\":["
		       "{\"image\":\"noname\"}]}}}}",
		       "merge key");
	expect_invalid(strategic_fn, t, DEPLOYMENT,
		       "{\"spec\":{\"template\":{\"spec\":{\"containers\":["
		       "{\"name\":\"sidecar\",\"$patch\":\"frob\"}]}}}}",
		       NULL);
	expect_invalid(strategic_fn, t, DEPLOYMENT,
		       "{\"spec\":{\"template\":{\"spec\":{\"containers\":\"x\"}}}}", "containers");
	expect_invalid(strategic_fn, t, DEPLOYMENT, "{\"spec\":{\"replicas\":{\"a\":1}}}",
		       "replicas");
	expect_invalid(strategic_fn, t, DEPLOYMENT, "{\"metadata\":{\"labels\":[1]}}", "labels");
	expect_invalid(strategic_fn, t, DEPLOYMENT,
		       "{\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":\"x\"}}", NULL);
	expect_invalid(strategic_fn, t, DEPLOYMENT,
		       "{\"metadata\":{\"$setElementOrder/finalizers\":{}}}", NULL);
	expect_invalid(strategic_fn, t, DEPLOYMENT, "{\"metadata\":{\"$setElementOrder\":[]}}",
		       NULL);
	expect_invalid(strategic_fn, t, DEPLOYMENT,
		       "{\"metadata\":{\"finalizers\":[\"x\",{\"a\":1}]}}", "identical");
	expect_invalid(strategic_fn, t, DEPLOYMENT, "[1]", "object");
	/* An error deep inside, after earlier keys were merged: nothing sticks. */
	expect_invalid(strategic_fn, t, DEPLOYMENT,
		       "{\"metadata\":{\"labels\":{\"x\":\"y\"}},\"spec\":{\"replicas\":9,"
		       "\"template\":{\"spec\":{\"containers\":[{\"name\":\"app\","
		       "\"env\":[{\"value\":\"no name\"}]}]}}}}",
		       NULL);
}

/* ---------------------------------------------------------------- Apply */

static void test_apply_create(void **state)
{
	(void)state;
	json_t *live = NULL;
	json_t *applied = J("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
			    "\"metadata\":{\"name\":\"c\",\"labels\":null},\"data\":{\"k\":\"v\"}}");
	char err[128];
	assert_int_equal(api_patch_apply(kind_type("ConfigMap"), &live, applied, err, sizeof(err)),
			 0);
	assert_json(live, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
			  "\"metadata\":{\"name\":\"c\"},\"data\":{\"k\":\"v\"}}");
	assert_ptr_not_equal(live, applied);
	json_decref(live);
	json_decref(applied);
}

static void test_apply_update(void **state)
{
	(void)state;
	json_t *live = J(DEPLOYMENT);
	json_t *applied = J("{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\","
			    "\"metadata\":{\"name\":\"web\",\"labels\":{\"env\":\"prod\"},"
			    "\"finalizers\":[\"b.example.com/y\",\"c.example.com/z\"]},"
			    "\"spec\":{\"replicas\":4,\"template\":{\"spec\":{\"containers\":["
			    "{\"name\":\"app\",\"image\":\"nginx:9\",\"args\":[\"-z\"],"
			    "\"ports\":[{\"containerPort\":8080}],"
			    "\"env\":[{\"name\":\"B\",\"value\":\"b\"}]},"
			    "{\"name\":\"extra\",\"image\":\"e\"}]}}}}");
	char err[128] = "";
	int rc = api_patch_apply(DEPLOY(), &live, applied, err, sizeof(err));
	if (rc != 0) {
		fail_msg("apply: %s", err);
	}
	assert_int_equal(json_integer_value(at(live, "spec.replicas")), 4);
	/* maps merge */
	assert_json(at(live, "metadata.labels"),
		    "{\"app\":\"web\",\"tier\":\"front\",\"env\":\"prod\"}");
	/* sets merge */
	assert_names(live, "metadata.finalizers", NULL,
		     "a.example.com/x,b.example.com/y,c.example.com/z");
	/* list-map by name: live order kept, new items appended */
	assert_names(live, "spec.template.spec.containers", "name", "app,sidecar,extra");
	assert_string_equal(json_string_value(at(live, "spec.template.spec.containers[0].image")),
			    "nginx:9");
	/* atomic list replaced */
	assert_json(at(live, "spec.template.spec.containers[0].args"), "[\"-z\"]");
	assert_json(at(live, "spec.template.spec.containers[0].env"),
		    "[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"B\",\"value\":\"b\"}]");
	/* ports (keys containerPort+protocol): 8080 is new */
	assert_json(at(live, "spec.template.spec.containers[0].ports"),
		    "[{\"containerPort\":80,\"protocol\":\"TCP\"},{\"containerPort\":8080}]");
	/* fields not in the configuration stay (no field ownership) */
	assert_string_equal(json_string_value(at(live, "spec.strategy.type")), "RollingUpdate");
	json_decref(live);
	json_decref(applied);

	/* An atomic map (Pod nodeSelector) is replaced, granular maps merge. */
	live = J(POD_JSON);
	applied = J("{\"metadata\":{\"labels\":{\"b\":\"2\"}},"
		    "\"spec\":{\"nodeSelector\":{\"zone\":\"a\"}}}");
	assert_int_equal(api_patch_apply(POD(), &live, applied, err, sizeof(err)), 0);
	assert_json(at(live, "spec.nodeSelector"), "{\"zone\":\"a\"}");
	assert_json(at(live, "metadata.labels"), "{\"app\":\"p\",\"b\":\"2\"}");
	json_decref(live);
	json_decref(applied);
}

static void test_apply_errors(void **state)
{
	(void)state;
	expect_invalid(apply_fn, DEPLOY(), DEPLOYMENT, "{\"metadata\":{\"$patch\":\"delete\"}}",
		       "directives");
	expect_invalid(apply_fn, DEPLOY(), NULL, "{\"metadata\":{\"$patch\":\"delete\"}}",
		       "directives");
	expect_invalid(apply_fn, DEPLOY(), DEPLOYMENT, "[1]", "object");
	expect_invalid(apply_fn, DEPLOY(), DEPLOYMENT,
		       "{\"spec\":{\"replicas\":7,\"template\":{\"spec\":{\"containers\":["
		       "{\"name\":\"a\",\"image\":\"x\"},{\"name\":\"a\",\"image\":\"y\"}]}}}}",
		       "duplicate");
	expect_invalid(apply_fn, DEPLOY(), DEPLOYMENT,
		       "{\"spec\":{\"template\":{\"spec\":{\"containers\":[\"x\"]}}}}", NULL);
	expect_invalid(apply_fn, DEPLOY(), DEPLOYMENT, "{\"spec\":{\"selector\":[]}}", "selector");
}

/* ---------------------------------------------------------------- OOM */

/* jansson's allocator, failing from the n-th allocation on. */
static long alloc_countdown = -1;

static void *failing_malloc(size_t size)
{
	if (alloc_countdown == 0) {
		return NULL;
	}
	if (alloc_countdown > 0) {
		alloc_countdown--;
	}
	return malloc(size);
}

enum { OOM_MERGE, OOM_JSON, OOM_STRATEGIC, OOM_APPLY };

static int oom_run(int which, json_t **target, const json_t *patch)
{
	switch (which) {
	case OOM_MERGE:
		return api_patch_merge(target, patch, NULL, 0);
	case OOM_JSON:
		return api_patch_json(target, patch, NULL, 0);
	case OOM_STRATEGIC:
		return api_patch_strategic(DEPLOY(), target, patch, NULL, 0);
	default:
		return api_patch_apply(DEPLOY(), target, patch, NULL, 0);
	}
}

/* Every allocation point fails in turn: each run either succeeds with the
 * right result or returns -ENOMEM with the target untouched (and, under
 * ASan, leaks nothing). */
static void test_oom_sweep(void **state)
{
	(void)state;
	static const struct {
		int which;
		const char *patch;
	} cases[] = {
		{OOM_MERGE, "{\"metadata\":{\"labels\":{\"tier\":null,\"x\":\"y\"}},"
			    "\"spec\":{\"replicas\":3}}"},
		{OOM_JSON, "[{\"op\":\"add\",\"path\":\"/metadata/labels/x\",\"value\":\"y\"},"
			   "{\"op\":\"copy\",\"from\":\"/spec/template\",\"path\":\"/t\"},"
			   "{\"op\":\"move\",\"from\":\"/t\",\"path\":\"/u\"}]"},
		{OOM_STRATEGIC,
		 "{\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":[\"a.example.com/x\"]},"
		 "\"spec\":{\"strategy\":{\"$retainKeys\":[\"type\"],\"type\":\"Recreate\"},"
		 "\"template\":{\"spec\":{"
		 "\"$setElementOrder/containers\":[{\"name\":\"sidecar\"},{\"name\":\"app\"},"
		 "{\"name\":\"new\"}],"
		 "\"containers\":[{\"name\":\"app\",\"env\":[{\"name\":\"C\",\"value\":\"3\"}]},"
		 "{\"name\":\"new\",\"image\":\"n\"}]}}}}"},
		{OOM_APPLY, "{\"metadata\":{\"labels\":{\"x\":\"y\"},\"finalizers\":[\"z\"]},"
			    "\"spec\":{\"template\":{\"spec\":{\"containers\":["
			    "{\"name\":\"app\",\"ports\":[{\"containerPort\":1}]},"
			    "{\"name\":\"new\",\"image\":\"n\"}]}}}}"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *patch = J(cases[i].patch);
		json_t *want = J(DEPLOYMENT);
		assert_int_equal(oom_run(cases[i].which, &want, patch), 0);
		bool done = false;
		for (long n = 0; !done; n++) {
			json_t *target = J(DEPLOYMENT);
			json_t *copy = json_deep_copy(target);
			json_t *before = target;
			json_set_alloc_funcs(failing_malloc, free);
			alloc_countdown = n;
			int rc = oom_run(cases[i].which, &target, patch);
			alloc_countdown = -1;
			json_set_alloc_funcs(malloc, free);
			if (rc == 0) {
				assert_true(json_equal(target, want));
				done = true;
			} else {
				assert_int_equal(rc, -ENOMEM);
				assert_ptr_equal(target, before);
				assert_true(json_equal(target, copy));
			}
			json_decref(target);
			json_decref(copy);
			assert_true(n < 100000);
		}
		json_decref(want);
		json_decref(patch);
	}
}


/* ------------------------------------------------------ three-way diff */

/* Diffs, checks the patch, applies it to @cur and checks the result. */
static void diff_case(const char *kind, const char *orig, const char *mod, const char *cur,
		      const char *want_patch, const char *want_result)
{
	const struct api_kind *k = api_kind_by_kind(kind);
	json_t *o = orig != NULL ? J(orig) : NULL, *m = J(mod), *c = J(cur), *p = NULL;
	char err[256] = "";

	assert_non_null(k);
	assert_int_equal(api_patch_strategic_diff(k->type, o, m, c, &p), 0);
	assert_json(p, want_patch);
	assert_int_equal(api_patch_strategic(api_type_get(k->type), &c, p, err, sizeof(err)), 0);
	assert_json(c, want_result);
	json_decref(o);
	json_decref(m);
	json_decref(c);
	json_decref(p);
}

#define DSPEC(c) "{\"spec\":{\"template\":{\"spec\":{\"containers\":" c "}}}}"

static void test_diff_keyed_lists(void **state)
{
	(void)state;
	/* A changed image; the sidecar someone else added stays. */
	diff_case("Deployment", DSPEC("[{\"name\":\"a\",\"image\":\"v1\"}]"),
		  DSPEC("[{\"name\":\"a\",\"image\":\"v2\"}]"),
		  DSPEC("[{\"name\":\"a\",\"image\":\"v1\",\"imagePullPolicy\":\"Always\"},"
			"{\"name\":\"side\",\"image\":\"s\"}]"),
		  "{\"spec\":{\"template\":{\"spec\":{\"$setElementOrder/containers\":"
		  "[{\"name\":\"a\"}],\"containers\":[{\"name\":\"a\",\"image\":\"v2\"}]}}}}",
		  DSPEC("[{\"name\":\"a\",\"image\":\"v2\",\"imagePullPolicy\":\"Always\"},"
			"{\"name\":\"side\",\"image\":\"s\"}]"));
	/* A container removed from the configuration is deleted by key. */
	diff_case("Deployment",
		  DSPEC("[{\"name\":\"a\",\"image\":\"v1\"},{\"name\":\"b\",\"image\":\"v1\"}]"),
		  DSPEC("[{\"name\":\"a\",\"image\":\"v1\"}]"),
		  DSPEC("[{\"name\":\"a\",\"image\":\"v1\"},{\"name\":\"b\",\"image\":\"v1\"}]"),
		  "{\"spec\":{\"template\":{\"spec\":{\"$setElementOrder/containers\":"
		  "[{\"name\":\"a\"}],\"containers\":[{\"$patch\":\"delete\",\"name\":\"b\"}]}}}}",
		  DSPEC("[{\"name\":\"a\",\"image\":\"v1\"}]"));
	/* Server-defaulted fields inside items are no change. */
	diff_case("Deployment", DSPEC("[{\"name\":\"a\",\"image\":\"v1\"}]"),
		  DSPEC("[{\"name\":\"a\",\"image\":\"v1\"}]"),
		  DSPEC("[{\"name\":\"a\",\"image\":\"v1\",\"terminationMessagePath\":\"/x\"}]"),
		  "{}", DSPEC("[{\"name\":\"a\",\"image\":\"v1\",\"terminationMessagePath\":\"/x\"}]"));
}

static void test_diff_maps_and_scalars(void **state)
{
	(void)state;
	/* A label removed since the last apply goes; one added by others stays. */
	diff_case("ConfigMap",
		  "{\"metadata\":{\"labels\":{\"a\":\"1\",\"b\":\"2\"}},\"data\":{\"k\":\"v\"}}",
		  "{\"metadata\":{\"labels\":{\"a\":\"1\"}},\"data\":{\"k\":\"w\"}}",
		  "{\"metadata\":{\"labels\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}},"
		  "\"data\":{\"k\":\"v\"}}",
		  "{\"metadata\":{\"labels\":{\"b\":null}},\"data\":{\"k\":\"w\"}}",
		  "{\"metadata\":{\"labels\":{\"a\":\"1\",\"c\":\"3\"}},\"data\":{\"k\":\"w\"}}");
	/* No last-applied: nothing is deleted. */
	diff_case("ConfigMap", NULL, "{\"data\":{\"k\":\"v\"}}",
		  "{\"data\":{\"k\":\"v\",\"x\":\"y\"}}", "{}",
		  "{\"data\":{\"k\":\"v\",\"x\":\"y\"}}");
}

static void test_diff_primitive_merge_list(void **state)
{
	(void)state;
	/* metadata.finalizers merges as a set. */
	diff_case("ConfigMap", "{\"metadata\":{\"finalizers\":[\"a/x\",\"a/y\"]}}",
		  "{\"metadata\":{\"finalizers\":[\"a/x\",\"a/z\"]}}",
		  "{\"metadata\":{\"finalizers\":[\"a/x\",\"a/y\",\"o/w\"]}}",
		  "{\"metadata\":{\"$setElementOrder/finalizers\":[\"a/x\",\"a/z\"],"
		  "\"$deleteFromPrimitiveList/finalizers\":[\"a/y\"],\"finalizers\":[\"a/z\"]}}",
		  "{\"metadata\":{\"finalizers\":[\"a/x\",\"a/z\",\"o/w\"]}}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge_rfc7386_appendix),
		cmocka_unit_test(test_merge_rfc7386_example),
		cmocka_unit_test(test_merge_copy_semantics),
		cmocka_unit_test(test_too_deep),
		cmocka_unit_test(test_json_patch_rfc6902_appendix),
		cmocka_unit_test(test_json_patch_operations),
		cmocka_unit_test(test_json_patch_errors),
		cmocka_unit_test(test_json_patch_atomic),
		cmocka_unit_test(test_smp_containers_by_name),
		cmocka_unit_test(test_smp_delete_directive),
		cmocka_unit_test(test_smp_replace_directive),
		cmocka_unit_test(test_smp_set_element_order),
		cmocka_unit_test(test_smp_retain_keys),
		cmocka_unit_test(test_smp_primitive_lists),
		cmocka_unit_test(test_smp_env_and_ports),
		cmocka_unit_test(test_smp_maps_and_nulls),
		cmocka_unit_test(test_smp_kubectl_apply_patch),
		cmocka_unit_test(test_smp_errors),
		cmocka_unit_test(test_apply_create),
		cmocka_unit_test(test_apply_update),
		cmocka_unit_test(test_apply_errors),
		cmocka_unit_test(test_oom_sweep),
		cmocka_unit_test(test_diff_keyed_lists),
		cmocka_unit_test(test_diff_maps_and_scalars),
		cmocka_unit_test(test_diff_primitive_merge_list),
	};
	return cmocka_run_group_tests_name("api_patch", tests, NULL, NULL);
}
