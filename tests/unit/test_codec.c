/* Unit tests of src/lib/codec: JSON <-> msgpack round trips, escaping,
 * numbers, limits, hostile input, YAML typing and errors, YAML output and
 * the msgpack path accessor. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "src/lib/codec.h"

/* ------------------------------------------------------------ Fixtures */

/* Canonical compact JSON as the API returns it (non-ASCII raw, the
 * escapes our writer uses). */
static const char pod_json[] =
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web-0\","
	"\"namespace\":\"default\",\"uid\":\"6f1c2a3e-8b4d-4e2a-9c1f-0a1b2c3d4e5f\","
	"\"resourceVersion\":\"123456\",\"creationTimestamp\":\"2024-05-01T12:00:00Z\","
	"\"labels\":{\"app\":\"web\",\"app.kubernetes.io/name\":\"web\","
	"\"pod-template-hash\":\"5d8f7c9b6\"},\"annotations\":{"
	"\"kubectl.kubernetes.io/last-applied-configuration\":"
	"\"{\\\"apiVersion\\\":\\\"v1\\\",\\\"kind\\\":\\\"Pod\\\"}\\n\"},"
	"\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\","
	"\"name\":\"web-5d8f7c9b6\",\"uid\":\"11111111-2222-3333-4444-555555555555\","
	"\"controller\":true,\"blockOwnerDeletion\":true}]},"
	"\"spec\":{\"containers\":[{\"name\":\"nginx\",\"image\":\"nginx:1.25\","
	"\"ports\":[{\"containerPort\":80,\"protocol\":\"TCP\"}],"
	"\"resources\":{\"limits\":{\"cpu\":\"500m\",\"memory\":\"128Mi\"},"
	"\"requests\":{\"cpu\":\"250m\",\"memory\":\"64Mi\"}},"
	"\"env\":[{\"name\":\"GREETING\",\"value\":\"h\xc3\xa9llo \\\"world\\\" \\\\ \\t\\u001f \xe2\x82\xac\"}],"
	"\"terminationMessagePath\":\"/dev/termination-log\",\"imagePullPolicy\":\"IfNotPresent\","
	"\"securityContext\":{\"runAsUser\":1000,\"runAsNonRoot\":true,"
	"\"readOnlyRootFilesystem\":false}}],\"restartPolicy\":\"Always\","
	"\"terminationGracePeriodSeconds\":30,\"dnsPolicy\":\"ClusterFirst\","
	"\"nodeName\":\"node-1\",\"securityContext\":{},\"schedulerName\":\"default-scheduler\","
	"\"tolerations\":[{\"key\":\"node.kubernetes.io/not-ready\",\"operator\":\"Exists\","
	"\"effect\":\"NoExecute\",\"tolerationSeconds\":300}],\"priority\":0,"
	"\"enableServiceLinks\":true,\"volumes\":[]},"
	"\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\","
	"\"lastProbeTime\":null,\"lastTransitionTime\":\"2024-05-01T12:00:05Z\"}],"
	"\"hostIP\":\"10.0.0.1\",\"podIP\":\"10.244.1.7\",\"startTime\":\"2024-05-01T12:00:00Z\","
	"\"containerStatuses\":[{\"name\":\"nginx\",\"ready\":true,\"restartCount\":0,"
	"\"image\":\"nginx:1.25\",\"imageID\":\"sha256:abc\",\"started\":true}],"
	"\"qosClass\":\"Burstable\"}}";

static const char deploy_json[] =
	"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\","
	"\"namespace\":\"default\",\"uid\":\"0a0b0c0d-1111-2222-3333-444455556666\","
	"\"resourceVersion\":\"98765\",\"generation\":4,\"creationTimestamp\":\"2024-05-01T11:00:00Z\","
	"\"labels\":{\"app\":\"web\"},\"annotations\":{\"deployment.kubernetes.io/revision\":\"3\"}},"
	"\"spec\":{\"replicas\":3,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
	"\"template\":{\"metadata\":{\"creationTimestamp\":null,\"labels\":{\"app\":\"web\"}},"
	"\"spec\":{\"containers\":[{\"name\":\"nginx\",\"image\":\"nginx:1.25\","
	"\"args\":[\"--port=8080\",\"--ratio\",\"-1\"],\"resources\":{},"
	"\"livenessProbe\":{\"httpGet\":{\"path\":\"/healthz\",\"port\":8080,\"scheme\":\"HTTP\"},"
	"\"initialDelaySeconds\":5,\"periodSeconds\":10,\"failureThreshold\":3}}],"
	"\"restartPolicy\":\"Always\",\"terminationGracePeriodSeconds\":30}},"
	"\"strategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{\"maxUnavailable\":\"25%\","
	"\"maxSurge\":\"25%\"}},\"revisionHistoryLimit\":10,\"progressDeadlineSeconds\":600},"
	"\"status\":{\"observedGeneration\":4,\"replicas\":3,\"updatedReplicas\":3,"
	"\"readyReplicas\":3,\"availableReplicas\":3,\"conditions\":[{\"type\":\"Available\","
	"\"status\":\"True\",\"lastUpdateTime\":\"2024-05-01T11:00:10Z\","
	"\"reason\":\"MinimumReplicasAvailable\",\"message\":\"Deployment has minimum availability.\"}]}}";

/* ------------------------------------------------------------ Helpers */

static void to_msgpack(const char *json, struct buf *mp)
{
	struct codec_err err;
	int r;

	buf_init(mp);
	r = codec_json_to_msgpack(json, strlen(json), 0, mp, &err);
	if (r != 0)
		fail_msg("codec_json_to_msgpack(%s): %d %s", json, r, err.msg);
}

/* msgpack -> compact JSON, NUL-terminated, malloc'ed. */
static char *to_json(const void *mp, size_t len, unsigned flags)
{
	struct buf out = {0};
	struct codec_err err;
	int r = codec_msgpack_to_json(mp, len, flags, &out, &err);

	if (r != 0)
		fail_msg("codec_msgpack_to_json: %d %s", r, err.msg);
	return buf_steal(&out, NULL);
}

static char *json_via_msgpack(const char *json)
{
	struct buf mp;
	char *s;

	to_msgpack(json, &mp);
	s = to_json(mp.data, mp.len, 0);
	buf_free(&mp);
	return s;
}

static json_t *yaml_doc(const char *yaml, size_t i)
{
	struct codec_err err;
	json_t *docs, *d;
	int r = codec_yaml_to_tree(yaml, strlen(yaml), 0, &docs, &err);

	if (r != 0)
		fail_msg("yaml %s: %d %s", yaml, r, err.msg);
	d = json_incref(json_array_get(docs, i));
	json_decref(docs);
	return d;
}

static char *dumps(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* ------------------------------------------------------------ Round trips */

/* jansson writes \u001F where we (and Go) write \u001f. */
static void hex_lower(char *s)
{
	for (; (s = strstr(s, "\\u")) != NULL; s += 2) {
		int k;

		for (k = 2; k < 6 && s[k]; k++)
			if (s[k] >= 'A' && s[k] <= 'F')
				s[k] = (char)(s[k] - 'A' + 'a');
	}
}

static void roundtrip(const char *json)
{
	struct buf mp, mp2 = {0};
	struct codec_err err;
	json_t *tree, *ref;
	char *out, *jdump;

	to_msgpack(json, &mp);

	/* Byte-identical JSON straight from the msgpack. */
	out = to_json(mp.data, mp.len, 0);
	assert_string_equal(out, json);
	free(out);

	/* The tree has the same content and order: jansson's own compact
	 * dump of it is the same text, and packing it gives the same bytes. */
	assert_int_equal(codec_msgpack_to_tree(mp.data, mp.len, &tree, &err), 0);
	ref = json_loads(json, 0, NULL);
	assert_non_null(ref);
	assert_true(json_equal(tree, ref));
	jdump = json_dumps(tree, JSON_COMPACT);
	hex_lower(jdump);
	assert_string_equal(jdump, json);
	free(jdump);
	assert_int_equal(codec_tree_to_msgpack(tree, &mp2, &err), 0);
	assert_int_equal(mp2.len, mp.len);
	assert_memory_equal(mp2.data, mp.data, mp.len);

	/* Pretty output matches jansson's two-space indentation (same
	 * layout as Go's json.MarshalIndent). */
	out = to_json(mp.data, mp.len, CODEC_PRETTY);
	jdump = json_dumps(tree, JSON_INDENT(2));
	hex_lower(jdump);
	assert_string_equal(out, jdump);
	free(out);
	free(jdump);

	json_decref(ref);
	json_decref(tree);
	buf_free(&mp);
	buf_free(&mp2);
}

static void roundtrip_pod(void **state)
{
	(void)state;
	roundtrip(pod_json);
}

static void roundtrip_deployment(void **state)
{
	(void)state;
	roundtrip(deploy_json);
}

static void key_order_kept(void **state)
{
	static const char j[] = "{\"z\":1,\"a\":{\"y\":2,\"b\":3},\"m\":[{\"q\":1,\"c\":2}]}";
	char *s;

	(void)state;
	roundtrip(j);
	s = json_via_msgpack(" \n{ \"z\" : 1 , \"a\":{\"y\":2,\"b\":3},\"m\":[ {\"q\":1,\"c\":2} ] }\t\r\n");
	assert_string_equal(s, j);
	free(s);
}

/* Smallest msgpack encodings, whatever the JSON parser had to guess. */
static void msgpack_encoding(void **state)
{
	static const uint8_t want[] = {0x83, 0xa1, 'a', 0x01, 0xa1, 'b', 0x94, 0xc3, 0xc0,
				       0xff, 0xa1, 'x', 0xa1, 'c', 0x80};
	struct buf mp;
	char big[2 + 65536 * 2 + 8];
	char str[310];
	size_t i, n;

	(void)state;
	to_msgpack("{\"a\":1,\"b\":[true,null,-1,\"x\"],\"c\":{}}", &mp);
	assert_int_equal(mp.len, sizeof(want));
	assert_memory_equal(mp.data, want, sizeof(want));
	buf_free(&mp);

	/* 16 elements: array16. */
	to_msgpack("[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]", &mp);
	assert_int_equal(mp.len, 3 + 16);
	assert_int_equal((uint8_t)mp.data[0], 0xdc);
	assert_int_equal((uint8_t)mp.data[2], 16);
	buf_free(&mp);

	/* 65536 elements: array32. */
	n = 0;
	big[n++] = '[';
	for (i = 0; i < 65536; i++) {
		big[n++] = i ? ',' : '1';
		if (i)
			big[n++] = '1';
	}
	big[n++] = ']';
	big[n] = '\0';
	to_msgpack(big, &mp);
	assert_int_equal(mp.len, 5 + 65536);
	assert_int_equal((uint8_t)mp.data[0], 0xdd);
	assert_int_equal((uint8_t)mp.data[2], 1);
	buf_free(&mp);

	/* 300-byte string: str16; 40 bytes: str8. */
	str[0] = '"';
	memset(str + 1, 'a', 300);
	str[301] = '"';
	str[302] = '\0';
	to_msgpack(str, &mp);
	assert_int_equal(mp.len, 3 + 300);
	assert_int_equal((uint8_t)mp.data[0], 0xda);
	buf_free(&mp);
	str[41] = '"';
	str[42] = '\0';
	to_msgpack(str, &mp);
	assert_int_equal(mp.len, 2 + 40);
	assert_int_equal((uint8_t)mp.data[0], 0xd9);
	buf_free(&mp);
}

/* ------------------------------------------------------------ Numbers */

static void integers(void **state)
{
	static const struct {
		const char *in;
		uint8_t first;
		size_t len;
		const char *out;
	} cases[] = {
		{"0", 0x00, 1, "0"},
		{"127", 0x7f, 1, "127"},
		{"128", 0xcc, 2, "128"},
		{"-1", 0xff, 1, "-1"},
		{"-32", 0xe0, 1, "-32"},
		{"-33", 0xd0, 2, "-33"},
		{"65536", 0xce, 5, "65536"},
		{"-2147483649", 0xd3, 9, "-2147483649"},
		{"9223372036854775807", 0xcf, 9, "9223372036854775807"},
		{"-9223372036854775808", 0xd3, 9, "-9223372036854775808"},
		{"18446744073709551615", 0xcf, 9, "18446744073709551615"},
		{"18446744073709551616", 0xcb, 9, "1.8446744073709552e+19"},
		{"-9223372036854775809", 0xcb, 9, "-9.223372036854776e+18"},
		{"-0", 0x00, 1, "0"},
	};
	struct buf mp;
	struct codec_err err;
	json_t *t;
	size_t i;
	char *s;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		to_msgpack(cases[i].in, &mp);
		assert_int_equal(mp.len, cases[i].len);
		assert_int_equal((uint8_t)mp.data[0], cases[i].first);
		s = to_json(mp.data, mp.len, 0);
		assert_string_equal(s, cases[i].out);
		free(s);
		buf_free(&mp);
	}

	/* Trees are int64: uint64 beyond it does not fit. */
	to_msgpack("18446744073709551615", &mp);
	assert_int_equal(codec_msgpack_to_tree(mp.data, mp.len, &t, &err), -ERANGE);
	buf_free(&mp);
	to_msgpack("-9223372036854775808", &mp);
	assert_int_equal(codec_msgpack_to_tree(mp.data, mp.len, &t, &err), 0);
	assert_true(json_integer_value(t) == INT64_MIN);
	json_decref(t);
	buf_free(&mp);
}

static void floats(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"1.5", "1.5"},       {"1.0", "1.0"},     {"0.1", "0.1"},
		{"1e300", "1e+300"},  {"-0.0", "-0.0"},   {"2.5E-3", "0.0025"},
		{"1E2", "100.0"},     {"123456789.125", "123456789.125"},
		{"3.141592653589793", "3.141592653589793"},
		{"5e-324", "4.94065645841247e-324"},
	};
	static const uint8_t f32[] = {0xca, 0x3f, 0xc0, 0x00, 0x00};
	static const uint8_t f32_tenth[] = {0xca, 0x3d, 0xcc, 0xcc, 0xcd};
	static const uint8_t nan64[] = {0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
	static const uint8_t inf32[] = {0xca, 0x7f, 0x80, 0x00, 0x00};
	struct buf out = {0}, mp;
	struct codec_err err;
	size_t i;
	char *s, *s2;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s = json_via_msgpack(cases[i].in);
		assert_string_equal(s, cases[i].out);
		/* Stable: the output reads back to itself. */
		s2 = json_via_msgpack(s);
		assert_string_equal(s2, s);
		free(s);
		free(s2);
	}
	s = to_json(f32, sizeof(f32), 0);
	assert_string_equal(s, "1.5");
	free(s);
	s = to_json(f32_tenth, sizeof(f32_tenth), 0);
	assert_string_equal(s, "0.1");
	free(s);
	assert_int_equal(codec_msgpack_to_json(nan64, sizeof(nan64), 0, &out, &err), -EBADMSG);
	assert_int_equal(codec_msgpack_to_json(inf32, sizeof(inf32), 0, &out, &err), -EBADMSG);
	assert_int_equal(out.len, 0);
	buf_init(&mp);
	assert_int_equal(codec_json_to_msgpack("1e400", 5, 0, &mp, &err), -ERANGE);
	assert_int_equal(mp.len, 0);
	buf_free(&out);
}

/* ------------------------------------------------------------ Strings */

static void escaping_out(void **state)
{
	static const struct {
		const char *in;
		size_t n;
		const char *out;
	} cases[] = {
		{"a\"b\\c", 5, "\"a\\\"b\\\\c\""},
		{"\x01\x1f\n\r\t\b\f", 7, "\"\\u0001\\u001f\\n\\r\\t\\b\\f\""},
		{"/\x7f", 2, "\"/\x7f\""},
		{"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""},
		{"a\xff" "b\xc3", 4, "\"a\\ufffdb\\ufffd\""},
		{"\xc0\xaf", 2, "\"\\ufffd\\ufffd\""},         /* overlong */
		{"\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""}, /* surrogate */
		{"\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* > U+10FFFF */
		{"\0x", 2, "\"\\u0000x\""},
		{"", 0, "\"\""},
	};
	uint8_t mp[64];
	struct codec_err err;
	size_t i;
	char *s;
	json_t *t;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mp[0] = (uint8_t)(0xa0 | cases[i].n);
		memcpy(mp + 1, cases[i].in, cases[i].n);
		s = to_json(mp, 1 + cases[i].n, 0);
		assert_string_equal(s, cases[i].out);
		free(s);
		/* Trees get the same replacement (jansson needs valid UTF-8). */
		assert_int_equal(codec_msgpack_to_tree(mp, 1 + cases[i].n, &t, &err), 0);
		assert_true(json_is_string(t));
		json_decref(t);
	}
	/* Invalid UTF-8 in a key, through the tree. */
	{
		static const uint8_t m[] = {0x81, 0xa2, 'k', 0xff, 0x01};
		assert_int_equal(codec_msgpack_to_tree(m, sizeof(m), &t, &err), 0);
		assert_non_null(json_object_get(t, "k\xef\xbf\xbd"));
		json_decref(t);
	}
}

static void escaping_in(void **state)
{
	static const struct {
		const char *in;
		const char *str;
		size_t n;
	} cases[] = {
		{"\"\\u00e9\\ud83d\\ude00\\/\\\"\\\\\\b\\f\\n\\r\\t\"",
		 "\xc3\xa9\xf0\x9f\x98\x80/\"\\\b\f\n\r\t", 14},
		{"\"\\ud800x\"", "\xef\xbf\xbdx", 4},     /* lone high surrogate */
		{"\"\\udc00\"", "\xef\xbf\xbd", 3},       /* lone low surrogate */
		{"\"a\xff" "b\"", "a\xef\xbf\xbd" "b", 5}, /* raw invalid UTF-8 */
		{"\"\\u0000\"", "\0", 1},
		{"\"\xe2\x82\xac\"", "\xe2\x82\xac", 3},
		{"\"\\u20AC\"", "\xe2\x82\xac", 3},
	};
	struct buf mp;
	const char *s;
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		to_msgpack(cases[i].in, &mp);
		assert_int_equal(codec_msgpack_str(mp.data, mp.len, &s, &n), 0);
		assert_int_equal(n, cases[i].n);
		assert_memory_equal(s, cases[i].str, n);
		buf_free(&mp);
	}
}

/* ------------------------------------------------------------ JSON errors */

static void json_errors(void **state)
{
	static const struct {
		const char *in;
		int code;
		unsigned long line, column;
	} cases[] = {
		{"", -EBADMSG, 1, 1},
		{"   ", -EBADMSG, 1, 4},
		{"{", -EBADMSG, 1, 2},
		{"{\"a\":}", -EBADMSG, 1, 6},
		{"{\"a\" 1}", -EBADMSG, 1, 6},
		{"{a:1}", -EBADMSG, 1, 2},
		{"[1,]", -EBADMSG, 1, 4},
		{"[1 2]", -EBADMSG, 1, 4},
		{"01", -EBADMSG, 1, 2},
		{"1.", -EBADMSG, 1, 3},
		{"-", -EBADMSG, 1, 2},
		{"1e", -EBADMSG, 1, 3},
		{"+1", -EBADMSG, 1, 1},
		{"tru", -EBADMSG, 1, 1},
		{"nul", -EBADMSG, 1, 1},
		{"[1] x", -EBADMSG, 1, 5},
		{"\"abc", -EBADMSG, 1, 5},
		{"\"a\x01\"", -EBADMSG, 1, 3},
		{"\"\\x\"", -EBADMSG, 1, 3},
		{"\"\\u12\"", -EBADMSG, 1, 3},
		{"{\"a\"\n:\n1,\n}", -EBADMSG, 4, 1},
		{"[NaN]", -EBADMSG, 1, 2},
		{"{\"a\":1,\"b\":2,\"a\":3}", -EEXIST, 1, 20},
	};
	struct buf out = {0};
	struct codec_err err;
	size_t i;
	int r;

	(void)state;
	buf_append(&out, "keep", 4);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&err, 0, sizeof(err));
		r = codec_json_to_msgpack(cases[i].in, strlen(cases[i].in), CODEC_STRICT, &out, &err);
		if (r != cases[i].code || err.line != cases[i].line || err.column != cases[i].column)
			fail_msg("%s: got %d at %lu:%lu (%s)", cases[i].in, r, err.line, err.column,
				 err.msg);
		assert_true(strncmp(err.msg, "json: line ", 11) == 0);
		assert_int_equal(out.len, 4);
	}
	buf_free(&out);
}

static void duplicate_keys(void **state)
{
	struct buf mp = {0};
	struct codec_err err;
	char big[512];
	size_t n = 0;
	int i;
	char *s;

	(void)state;
	/* Last one wins, as in Go (jansson keeps the first position). */
	s = json_via_msgpack("{\"a\":1,\"b\":{\"x\":1,\"x\":[2]},\"a\":3}");
	assert_string_equal(s, "{\"a\":3,\"b\":{\"x\":[2]}}");
	free(s);
	assert_int_equal(codec_json_to_msgpack("{\"b\":{\"x\":1,\"x\":2}}", 19, CODEC_STRICT, &mp,
					       &err),
			 -EEXIST);
	assert_non_null(strstr(err.msg, "duplicate key \"x\""));

	/* Many keys (the sorted check): one duplicate among 30. */
	n += (size_t)sprintf(big + n, "{");
	for (i = 0; i < 30; i++)
		n += (size_t)sprintf(big + n, "%s\"k%d\":%d", i ? "," : "", i == 29 ? 7 : i, i);
	n += (size_t)sprintf(big + n, "}");
	assert_int_equal(codec_json_to_msgpack(big, n, CODEC_STRICT, &mp, &err), -EEXIST);
	assert_int_equal(mp.len, 0);
	assert_int_equal(codec_json_to_msgpack(big, n, 0, &mp, &err), 0);
	s = to_json(mp.data, mp.len, 0);
	assert_non_null(strstr(s, "\"k7\":29"));
	free(s);
	buf_free(&mp);
	/* Equal keys of different maps are fine. */
	s = json_via_msgpack("[{\"a\":1},{\"a\":2}]");
	assert_string_equal(s, "[{\"a\":1},{\"a\":2}]");
	free(s);
}

/* ------------------------------------------------------------ Limits */

static char *nested_json(unsigned depth)
{
	char *s = malloc(2 * (size_t)depth + 1);
	unsigned i;

	for (i = 0; i < depth; i++) {
		s[i] = '[';
		s[depth + i] = ']';
	}
	s[2 * depth] = '\0';
	return s;
}

static uint8_t *nested_msgpack(unsigned depth, size_t *ret_len)
{
	uint8_t *m = malloc(depth + 1);

	memset(m, 0x91, depth);
	m[depth] = 0xc0;
	*ret_len = depth + 1;
	return m;
}

static void depth_limit(void **state)
{
	struct buf out = {0};
	struct codec_err err;
	json_t *t, *docs, *leaf;
	uint8_t *m;
	size_t n;
	char *s;
	unsigned i;

	(void)state;
	/* JSON text. */
	s = nested_json(CODEC_MAX_DEPTH);
	assert_int_equal(codec_json_to_msgpack(s, strlen(s), 0, &out, &err), 0);
	free(s);
	out.len = 0;
	s = nested_json(CODEC_MAX_DEPTH + 1);
	assert_int_equal(codec_json_to_msgpack(s, strlen(s), 0, &out, &err), -ELOOP);
	free(s);
	s = nested_json(100000);
	assert_int_equal(codec_json_to_msgpack(s, strlen(s), 0, &out, &err), -ELOOP);
	assert_int_equal(out.len, 0);

	/* YAML (flow style, same text). */
	assert_int_equal(codec_yaml_to_tree(s, strlen(s), 0, &docs, &err), -ELOOP);
	free(s);
	s = nested_json(CODEC_MAX_DEPTH);
	assert_int_equal(codec_yaml_to_tree(s, strlen(s), 0, &docs, &err), 0);
	json_decref(docs);
	free(s);

	/* msgpack. */
	m = nested_msgpack(CODEC_MAX_DEPTH, &n);
	assert_int_equal(codec_msgpack_to_json(m, n, 0, &out, &err), 0);
	assert_int_equal(codec_msgpack_to_tree(m, n, &t, &err), 0);
	json_decref(t);
	free(m);
	out.len = 0;
	m = nested_msgpack(CODEC_MAX_DEPTH + 1, &n);
	assert_int_equal(codec_msgpack_to_json(m, n, 0, &out, &err), -ELOOP);
	assert_int_equal(codec_msgpack_to_tree(m, n, &t, &err), -ELOOP);
	free(m);
	m = nested_msgpack(1000000, &n);
	assert_int_equal(codec_msgpack_to_json(m, n, 0, &out, &err), -ELOOP);
	assert_int_equal(codec_msgpack_value_len(m, n, &n), 0); /* iterative: no limit needed */
	free(m);

	/* Trees. */
	t = json_null();
	for (i = 0; i < CODEC_MAX_DEPTH + 1; i++) {
		leaf = json_array();
		json_array_append_new(leaf, t);
		t = leaf;
	}
	assert_int_equal(codec_tree_to_msgpack(t, &out, &err), -ELOOP);
	assert_int_equal(codec_tree_to_yaml(t, &out, &err), -ELOOP);
	leaf = json_array_get(t, 0);
	assert_int_equal(codec_tree_to_msgpack(leaf, &out, &err), 0);
	json_decref(t);
	assert_int_equal(out.len, CODEC_MAX_DEPTH + 1);
	buf_free(&out);
}

static void truncated_msgpack(void **state)
{
	struct buf mp, out = {0};
	struct codec_err err;
	const void *v;
	json_t *t;
	size_t len, n, vl;

	(void)state;
	to_msgpack(pod_json, &mp);
	buf_append(&out, "[", 1);
	for (len = 0; len < mp.len; len++) {
		assert_int_equal(codec_msgpack_to_json(mp.data, len, 0, &out, &err), -EBADMSG);
		assert_int_equal(out.len, 1);
		assert_int_equal(codec_msgpack_to_tree(mp.data, len, &t, &err), -EBADMSG);
		assert_int_equal(codec_msgpack_value_len(mp.data, len, &n), -EBADMSG);
		/* The accessor either finds a complete value or fails. */
		if (codec_msgpack_get(mp.data, len, "status.phase", &v, &vl) == 0)
			assert_true((const char *)v + vl <= mp.data + len);
	}
	assert_int_equal(codec_msgpack_get(mp.data, mp.len / 2, "status.phase", &v, &vl),
			 -EBADMSG);
	assert_int_equal(codec_msgpack_value_len(mp.data, mp.len, &n), 0);
	assert_int_equal(n, mp.len);

	/* Trailing bytes. */
	buf_append(&mp, "\xc0", 1);
	assert_int_equal(codec_msgpack_to_json(mp.data, mp.len, 0, &out, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "trailing"));
	assert_int_equal(codec_msgpack_to_tree(mp.data, mp.len, &t, &err), -EBADMSG);
	buf_free(&mp);
	buf_free(&out);
}

static void check_decoders(const void *data, size_t len)
{
	struct buf out = {0}, mp = {0};
	struct codec_err err;
	const void *v;
	const char *s;
	json_t *t;
	size_t n;
	int r;

	r = codec_msgpack_to_json(data, len, 0, &out, &err);
	assert_true(r == 0 || r == -EBADMSG || r == -ELOOP);
	if (r == 0) {
		/* What we write is valid JSON that reads back. */
		r = codec_json_to_msgpack(out.data, out.len, 0, &mp, &err);
		if (r != 0)
			fail_msg("reread %.*s: %s", (int)out.len, out.data, err.msg);
	}
	r = codec_msgpack_to_tree(data, len, &t, &err);
	assert_true(r == 0 || r == -EBADMSG || r == -ELOOP || r == -ERANGE);
	if (r == 0)
		json_decref(t);
	codec_msgpack_value_len(data, len, &n);
	codec_msgpack_get(data, len, "metadata.name", &v, &n);
	codec_msgpack_get_str(data, len, "spec.containers.0.image", &s, &n);
	codec_msgpack_map_get(data, len, "a", 1, &v, &n);
	out.len = 0;
	r = codec_json_to_msgpack(data, len, 0, &out, &err);
	if (r == 0) {
		/* Valid JSON gives valid msgpack. */
		mp.len = 0;
		assert_int_equal(codec_msgpack_to_json(out.data, out.len, 0, &mp, &err), 0);
	}
	r = codec_yaml_to_tree(data, len, 0, &t, &err);
	if (r == 0)
		json_decref(t);
	buf_free(&out);
	buf_free(&mp);
}

static void garbage(void **state)
{
	struct buf mp;
	uint8_t buf[300];
	char *txt;
	size_t i, k, len, tl = strlen(pod_json);

	(void)state;
	for (i = 0; i < 4000; i++) {
		len = rng() % sizeof(buf);
		for (k = 0; k < len; k++)
			buf[k] = (uint8_t)rng();
		check_decoders(buf, len);
	}
	/* Mutations of a valid object hit deeper paths. */
	to_msgpack(pod_json, &mp);
	for (i = 0; i < 1500; i++) {
		uint8_t *m = malloc(mp.len);

		memcpy(m, mp.data, mp.len);
		for (k = 0; k < 1 + rng() % 4; k++)
			m[rng() % mp.len] = (uint8_t)rng();
		check_decoders(m, rng() % 8 == 0 ? rng() % mp.len : mp.len);
		free(m);
	}
	buf_free(&mp);
	txt = malloc(tl);
	for (i = 0; i < 1500; i++) {
		static const char alphabet[] = "{}[]\":,\\ \n-01e.tfnu\xff\xc3";

		memcpy(txt, pod_json, tl);
		for (k = 0; k < 1 + rng() % 3; k++)
			txt[rng() % tl] = alphabet[rng() % (sizeof(alphabet) - 1)];
		check_decoders(txt, rng() % 8 == 0 ? rng() % tl : tl);
	}
	free(txt);
}

/* ------------------------------------------------------------ YAML input */

static void yaml_multidoc(void **state)
{
	static const char y[] = "# a stream\n"
				"a: 1\n"
				"---\n"
				"b: [x, z]\n"
				"...\n"
				"---\n"
				"c: {d: e}\n"
				"---\n";
	struct codec_err err;
	json_t *docs;
	char *s;

	(void)state;
	assert_int_equal(codec_yaml_to_tree(y, strlen(y), 0, &docs, &err), 0);
	s = dumps(docs);
	assert_string_equal(s, "[{\"a\":1},{\"b\":[\"x\",\"z\"]},{\"c\":{\"d\":\"e\"}},null]");
	free(s);
	json_decref(docs);

	assert_int_equal(codec_yaml_to_tree("", 0, 0, &docs, &err), 0);
	assert_int_equal(json_array_size(docs), 0);
	json_decref(docs);
	assert_int_equal(codec_yaml_to_tree("# nothing\n", 10, 0, &docs, &err), 0);
	assert_int_equal(json_array_size(docs), 0);
	json_decref(docs);

	/* A JSON document is YAML too. */
	assert_int_equal(codec_yaml_to_tree(pod_json, strlen(pod_json), 0, &docs, &err), 0);
	{
		json_t *ref = json_loads(pod_json, 0, NULL);
		assert_true(json_equal(json_array_get(docs, 0), ref));
		json_decref(ref);
	}
	json_decref(docs);
}

static void yaml_typing(void **state)
{
	/* Value text after "v: " -> compact JSON of the result. */
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"true", "true"},
		{"True", "true"},
		{"TRUE", "true"},
		{"false", "false"},
		{"yes", "true"},
		{"Yes", "true"},
		{"YES", "true"},
		{"no", "false"},
		{"on", "true"},
		{"On", "true"},
		{"off", "false"},
		{"OFF", "false"},
		{"y", "true"},
		{"n", "false"},
		{"yEs", "\"yEs\""},
		{"~", "null"},
		{"null", "null"},
		{"Null", "null"},
		{"", "null"},
		{"nULL", "\"nULL\""},
		{"'true'", "\"true\""},
		{"\"yes\"", "\"yes\""},
		{"'123'", "\"123\""},
		{"123", "123"},
		{"-17", "-17"},
		{"+5", "5"},
		{"0", "0"},
		{"0x1F", "31"},
		{"0o17", "15"},
		{"017", "15"},
		{"0b101", "5"},
		{"-0b11", "-3"},
		{"1_000", "1000"},
		{"08", "8"},
		{"9223372036854775807", "9223372036854775807"},
		{"-9223372036854775808", "-9223372036854775808"},
		{"18446744073709551615", "1.8446744073709552e19"},
		{"1.5", "1.5"},
		{"1.0", "1"},
		{"1.", "1"},
		{"1e3", "1000"},
		{".5", "0.5"},
		{"-.5", "-0.5"},
		{"1.5e-3", "0.0015"},
		{"1e400", "\"1e400\""},
		{"0x", "\"0x\""},
		{"1.2.3", "\"1.2.3\""},
		{"2024-05-01", "\"2024-05-01\""},
		{"12:30", "\"12:30\""},
		{"-x", "\"-x\""},
		{"hello world", "\"hello world\""},
		{"500m", "\"500m\""},
		{"64Mi", "\"64Mi\""},
		{"!!str 123", "\"123\""},
		{"!!str true", "\"true\""},
		{"!!int \"42\"", "42"},
		{"!!float 1.5", "1.5"},
		{"!!float 2", "2"},
		{"!!bool yes", "true"},
		{"!!null ~", "null"},
		{"! 123", "\"123\""},
		{"!foo bar", "\"bar\""},
		{"\"a\\tb\\u00e9\"", "\"a\\tb\xc3\xa9\""},
		{"|\n  line1\n  line2\n", "\"line1\\nline2\\n\""},
		{">-\n  folded\n  text\n", "\"folded text\""},
		{"<<", "\"<<\""},
		{"[1, two, 3.5, null, yes]", "[1,\"two\",3.5,null,true]"},
		{"{a: 1, 'b': '2'}", "{\"a\":1,\"b\":\"2\"}"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char y[128];
		json_t *d;
		char *s;

		snprintf(y, sizeof(y), "v: %s\n", cases[i].in);
		d = yaml_doc(y, 0);
		s = dumps(json_object_get(d, "v"));
		if (s == NULL || strcmp(s, cases[i].out) != 0)
			fail_msg("v: %s -> %s, want %s", cases[i].in, s ? s : "(none)", cases[i].out);
		free(s);
		json_decref(d);
	}
}

static void yaml_keys(void **state)
{
	struct codec_err err;
	json_t *d, *docs;
	char *s;

	(void)state;
	/* Keys become strings as sigs.k8s.io/yaml converts them. */
	d = yaml_doc("yes: 1\n0x10: 2\n1.5: 3\n'on': 4\n12: 5\nfalse: 6\n", 0);
	s = dumps(d);
	assert_string_equal(s, "{\"true\":1,\"16\":2,\"1.5\":3,\"on\":4,\"12\":5,\"false\":6}");
	free(s);
	json_decref(d);
	assert_int_equal(codec_yaml_to_tree("~: 1\n", 5, 0, &docs, &err), -EBADMSG);
	assert_int_equal(err.line, 1);
	assert_int_equal(codec_yaml_to_tree("a: 1\n? [x]\n: 2\n", 15, 0, &docs, &err), -EBADMSG);
	assert_int_equal(err.line, 2);
	/* Duplicates: last wins, or an error when strict. */
	d = yaml_doc("a: 1\nb: 2\na: 3\n", 0);
	s = dumps(d);
	assert_string_equal(s, "{\"a\":3,\"b\":2}");
	free(s);
	json_decref(d);
	assert_int_equal(codec_yaml_to_tree("a: 1\nb: 2\na: 3\n", 15, CODEC_STRICT, &docs, &err),
			 -EEXIST);
	assert_int_equal(err.line, 3);
	assert_int_equal(err.column, 1);
}

static void yaml_anchors(void **state)
{
	static const char y[] = "base: &b {cpu: 1, mem: 2}\n"
				"list: &l [a, b]\n"
				"x:\n"
				"  <<: *b\n"
				"  cpu: 3\n"
				"w: *l\n"
				"z:\n"
				"  mem: 5\n"
				"  <<: [*b, {disk: 9, cpu: 8}]\n"
				"s: &s text\n"
				"t: *s\n";
	struct codec_err err;
	json_t *d, *docs;
	char *s;
	char bomb[1024];
	size_t n = 0;
	int i;

	(void)state;
	d = yaml_doc(y, 0);
	s = dumps(d);
	assert_string_equal(s, "{\"base\":{\"cpu\":1,\"mem\":2},\"list\":[\"a\",\"b\"],"
			       "\"x\":{\"cpu\":3,\"mem\":2},\"w\":[\"a\",\"b\"],"
			       "\"z\":{\"mem\":5,\"cpu\":1,\"disk\":9},\"s\":\"text\",\"t\":\"text\"}");
	free(s);
	/* Copies, not shared nodes: changing one leaves the other. */
	json_object_set_new(json_object_get(d, "x"), "cpu", json_integer(7));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(d, "base"), "cpu")), 1);
	json_decref(d);

	/* An unknown alias, and an anchor used inside itself. */
	assert_int_equal(codec_yaml_to_tree("a: 1\nb: *nope\n", 14, 0, &docs, &err), -EBADMSG);
	assert_int_equal(err.line, 2);
	assert_int_equal(err.column, 4);
	assert_int_equal(codec_yaml_to_tree("a: &x [1, *x]\n", 14, 0, &docs, &err), -EBADMSG);
	/* Anchors do not cross documents. */
	assert_int_equal(codec_yaml_to_tree("a: &x 1\n---\nb: *x\n", 18, 0, &docs, &err), -EBADMSG);
	assert_int_equal(codec_yaml_to_tree("a: 1\n<<: 2\n", 11, 0, &docs, &err), -EBADMSG);

	/* Billion laughs. */
	n += (size_t)sprintf(bomb + n, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (i = 1; i < 9; i++)
		n += (size_t)sprintf(bomb + n,
				     "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n",
				     i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
				     i - 1);
	assert_int_equal(codec_yaml_to_tree(bomb, n, 0, &docs, &err), -E2BIG);
	assert_non_null(strstr(err.msg, "aliases"));

	/* Small bombs in many documents add up (about 12300 values each). */
	{
		static const char doc[] =
			"a: &a [x, x, x, x, x, x, x, x, x, x]\n"
			"b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
			"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
			"d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
			"---\n";
		char *many = malloc(10 * sizeof(doc));

		many[0] = '\0';
		for (i = 0; i < 5; i++)
			strcat(many, doc);
		assert_int_equal(codec_yaml_to_tree(many, strlen(many), 0, &docs, &err), 0);
		assert_int_equal(json_array_size(docs), 6);
		json_decref(docs);
		for (i = 0; i < 5; i++)
			strcat(many, doc);
		assert_int_equal(codec_yaml_to_tree(many, strlen(many), 0, &docs, &err), -E2BIG);
		free(many);
	}
}

static void yaml_errors(void **state)
{
	static const struct {
		const char *in;
		int code;
		unsigned long line, column;
	} cases[] = {
		{"a: 1\nb: [1, 2\nc: 3\n", -EBADMSG, 3, 2},
		{"a: 1\n b: 2\n", -EBADMSG, 2, 3},
		{"a:\n  - x\n  y: 1\n", -EBADMSG, 3, 3},
		{"key: value\n\tbad: tab\n", -EBADMSG, 2, 1},
		{"a: \"unterminated\n", -EBADMSG, 2, 1},
		{"a: !!int abc\n", -EBADMSG, 1, 4},
		{"a: !!bool 3\n", -EBADMSG, 1, 4},
		{"a:\n  b: !!float x\n", -EBADMSG, 2, 6},
		{"a: .inf\n", -EBADMSG, 1, 4},
		{"a: !!binary aGVsbG8=\n", -EBADMSG, 1, 4},
		{"a: 1\n---\n- [\n", -EBADMSG, 4, 1},
	};
	struct codec_err err;
	json_t *docs;
	size_t i;
	int r;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&err, 0, sizeof(err));
		r = codec_yaml_to_tree(cases[i].in, strlen(cases[i].in), 0, &docs, &err);
		if (r != cases[i].code || err.line != cases[i].line || err.column != cases[i].column)
			fail_msg("%s: got %d at %lu:%lu (%s)", cases[i].in, r, err.line, err.column,
				 err.msg);
		assert_true(strncmp(err.msg, "yaml: line ", 11) == 0);
	}
	/* Invalid UTF-8 is refused by libyaml. */
	assert_int_equal(codec_yaml_to_tree("a: \xff\n", 6, 0, &docs, &err), -EBADMSG);
}

/* ------------------------------------------------------------ YAML output */

static void yaml_output(void **state)
{
	static const char j[] =
		"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"x\","
		"\"labels\":{\"a\":\"true\",\"b\":\"007\"}},\"spec\":{\"containers\":[{\"name\":\"c\","
		"\"args\":[\"a\",\"b\"]}],\"x\":[],\"y\":{},\"n\":1.5,\"i\":-3,\"t\":true,\"z\":null,"
		"\"s\":\"one\\ntwo\\n\"}}";
	static const char want[] = "apiVersion: v1\n"
				   "kind: Pod\n"
				   "metadata:\n"
				   "  name: x\n"
				   "  labels:\n"
				   "    a: \"true\"\n"
				   "    b: \"007\"\n"
				   "spec:\n"
				   "  containers:\n"
				   "  - name: c\n"
				   "    args:\n"
				   "    - a\n"
				   "    - b\n"
				   "  x: []\n"
				   "  \"y\": {}\n"
				   "  \"n\": 1.5\n"
				   "  i: -3\n"
				   "  t: true\n"
				   "  z: null\n"
				   "  s: |\n"
				   "    one\n"
				   "    two\n";
	struct buf out = {0}, mp;
	struct codec_err err;
	json_t *t;

	(void)state;
	t = json_loads(j, 0, NULL);
	assert_int_equal(codec_tree_to_yaml(t, &out, &err), 0);
	buf_append(&out, "", 1);
	assert_string_equal(out.data, want);
	json_decref(t);

	/* Straight from msgpack. */
	out.len = 0;
	to_msgpack(j, &mp);
	assert_int_equal(codec_msgpack_to_yaml(mp.data, mp.len, &out, &err), 0);
	assert_int_equal(out.len, strlen(want));
	assert_memory_equal(out.data, want, out.len);
	buf_free(&mp);
	buf_free(&out);
}

static void yaml_roundtrip(void **state)
{
	static const char tricky[] =
		"{\"a\":\"true\",\"b\":\"123\",\"c\":\"\",\"d\":\"multi\\nline\\n\",\"e\":\"yes\","
		"\"f\":\"null\",\"g\":\"0x1F\",\"h\":\" lead\",\"i\":\"a: b\",\"j\":\"- x\","
		"\"k\":\"#c\",\"l\":\"2024-05-01\",\"m\":\"12:30\",\"n\":\"<<\",\"o\":\"tab\\there\","
		"\"p\":\"\xc3\xa9\xf0\x9f\x98\x80\",\"q\":\"trailing \",\"r\":\"1.5\",\"s\":\"~\","
		"\"t\":\"on\",\"u\":[],\"v\":{},\"w\":[1,-2,true,false,null,1.5,\"x\",[[]],{\"k\":{}}],"
		"\"x\":\"line1\\n  indented\\nline3\",\"y\":\"\\u0000nul\",\"z\":\"\\u001b[0m\","
		"\"0\":\"* star\",\"1\":\"&amp\",\"2\":\"! bang\",\"3\":\"%pct\",\"4\":\"@at\","
		"\"5\":\"`tick\",\"6\":\"{x}\",\"7\":\"'q'\",\"8\":\"\\\"dq\\\"\",\"9\":\"..\","
		"\"10\":\"---\",\"11\":\"\\n\",\"12\":\"  \\n  x\",\"13\":\"-1\",\"14\":\".5\","
		"\"15\":\"1_0\",\"16\":\"y\",\"17\":\"~x\",\"18\":\"a #b\",\"19\":\"x\\r\\ny\","
		"\"yes\":1,\"null\":2,\"\":3}";
	const char *docs[] = {pod_json, deploy_json, tricky};
	struct buf out = {0};
	struct codec_err err;
	json_t *t, *back;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		t = json_loads(docs[i], JSON_ALLOW_NUL, NULL);
		assert_non_null(t);
		out.len = 0;
		assert_int_equal(codec_tree_to_yaml(t, &out, &err), 0);
		buf_append(&out, "", 1);
		back = yaml_doc(out.data, 0);
		if (!json_equal(t, back)) {
			char *s = dumps(back);
			fail_msg("YAML:\n%s\nread back as %s", out.data, s);
		}
		json_decref(back);
		json_decref(t);
	}
	buf_free(&out);
}

/* ------------------------------------------------------------ Accessor */

static void path_accessor(void **state)
{
	struct buf mp;
	const void *v, *labels;
	const char *s;
	size_t n, ln;
	int64_t i;

	(void)state;
	to_msgpack(pod_json, &mp);
#define STR_AT(path, want)                                                              \
	do {                                                                            \
		assert_int_equal(codec_msgpack_get_str(mp.data, mp.len, path, &s, &n), 0); \
		assert_int_equal(n, strlen(want));                                      \
		assert_memory_equal(s, want, n);                                        \
	} while (0)
	STR_AT("metadata.name", "web-0");
	STR_AT("metadata.namespace", "default");
	STR_AT("spec.nodeName", "node-1");
	STR_AT("status.phase", "Running");
	STR_AT("spec.containers.0.image", "nginx:1.25");
	STR_AT("spec.containers.0.ports.0.protocol", "TCP");
	STR_AT("status.conditions.0.type", "Ready");

	/* Labels: a map, then keys with dots. */
	assert_int_equal(codec_msgpack_get(mp.data, mp.len, "metadata.labels", &labels, &ln), 0);
	assert_int_equal(*(const uint8_t *)labels, 0x83);
	assert_int_equal(codec_msgpack_map_get(labels, ln, "app.kubernetes.io/name", 22, &v, &n), 0);
	assert_int_equal(codec_msgpack_str(v, n, &s, &n), 0);
	assert_memory_equal(s, "web", 3);
	assert_int_equal(codec_msgpack_map_get(labels, ln, "app.kubernetes.io", 17, &v, &n), -ENOENT);
	/* "app" is a label too: a string where the path wants a map. */
	assert_int_equal(codec_msgpack_get(mp.data, mp.len, "metadata.labels.app.kubernetes.io/name",
					   &v, &n),
			 -ENOTDIR);

	/* Absent keys, indexes out of range, scalars and arrays on the way. */
	assert_int_equal(codec_msgpack_get(mp.data, mp.len, "metadata.missing", &v, &n), -ENOENT);
	assert_int_equal(codec_msgpack_get(mp.data, mp.len, "nope.name", &v, &n), -ENOENT);
	assert_int_equal(codec_msgpack_get(mp.data, mp.len, "spec.containers.1.image", &v, &n),
			 -ENOENT);
	assert_int_equal(codec_msgpack_get(mp.data, mp.len, "spec.containers.x", &v, &n), -ENOTDIR);
	assert_int_equal(codec_msgpack_get(mp.data, mp.len, "spec.containers.", &v, &n), -ENOTDIR);
	assert_int_equal(codec_msgpack_get(mp.data, mp.len, "metadata.name.x", &v, &n), -ENOTDIR);
	assert_int_equal(codec_msgpack_get(mp.data, mp.len, "spec.volumes.0", &v, &n), -ENOENT);
	assert_int_equal(codec_msgpack_map_get(mp.data, mp.len, "kind", 4, &v, &n), 0);
	assert_int_equal(codec_msgpack_get(mp.data, mp.len, "kind", &labels, &ln), 0);
	assert_ptr_equal(v, labels);
	assert_int_equal(codec_msgpack_get(mp.data, mp.len, "spec.containers", &v, &n), 0);
	assert_int_equal(codec_msgpack_map_get(v, n, "a", 1, &v, &n), -ENOTDIR);

	/* Values of other types. */
	assert_int_equal(codec_msgpack_get(mp.data, mp.len, "status.conditions.0.lastProbeTime",
					   &v, &n),
			 0);
	assert_int_equal(n, 1);
	assert_int_equal(*(const uint8_t *)v, 0xc0);
	assert_int_equal(codec_msgpack_get_str(mp.data, mp.len, "spec.priority", &s, &n), -EINVAL);
	assert_int_equal(codec_msgpack_get(mp.data, mp.len, "spec.terminationGracePeriodSeconds",
					   &v, &n),
			 0);
	assert_int_equal(codec_msgpack_int(v, n, &i), 0);
	assert_int_equal(i, 30);
	assert_int_equal(codec_msgpack_get(mp.data, mp.len, "metadata.name", &v, &n), 0);
	assert_int_equal(codec_msgpack_int(v, n, &i), -EINVAL);

	/* The empty path is the whole value. */
	assert_int_equal(codec_msgpack_get(mp.data, mp.len, "", &v, &n), 0);
	assert_ptr_equal(v, mp.data);
	assert_int_equal(n, mp.len);
#undef STR_AT
	buf_free(&mp);

	/* Non-string keys are skipped whole, containers included. */
	{
		static const uint8_t m[] = {0x83, 0x91, 0x01, 0x02, 0x81, 0xa1, 'k', 0x03,
					    0xc0, 0xa1, 'k', 0xa1, 'v'};
		assert_int_equal(codec_msgpack_get_str(m, sizeof(m), "k", &s, &n), 0);
		assert_memory_equal(s, "v", 1);
	}
}

static void msgpack_types(void **state)
{
	static const uint8_t bin[] = {0xc4, 0x03, 'a', 'b', 'c'};
	static const uint8_t ext[] = {0xd4, 0x01, 0x00};
	static const uint8_t intkey[] = {0x81, 0x01, 0x02};
	static const uint8_t never[] = {0xc1};
	static const uint8_t fixmap_bin[] = {0x81, 0xa1, 'b', 0xc5, 0x00, 0x00};
	struct buf out = {0};
	struct codec_err err;
	json_t *t;
	char *s;

	(void)state;
	s = to_json(bin, sizeof(bin), 0);
	assert_string_equal(s, "\"YWJj\"");
	free(s);
	s = to_json(fixmap_bin, sizeof(fixmap_bin), 0);
	assert_string_equal(s, "{\"b\":\"\"}");
	free(s);
	assert_int_equal(codec_msgpack_to_tree(bin, sizeof(bin), &t, &err), 0);
	assert_string_equal(json_string_value(t), "YWJj");
	json_decref(t);
	assert_int_equal(codec_msgpack_to_json(ext, sizeof(ext), 0, &out, &err), -EBADMSG);
	assert_int_equal(codec_msgpack_to_tree(ext, sizeof(ext), &t, &err), -EBADMSG);
	assert_int_equal(codec_msgpack_to_json(intkey, sizeof(intkey), 0, &out, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "not a string"));
	assert_int_equal(codec_msgpack_to_tree(intkey, sizeof(intkey), &t, &err), -EBADMSG);
	assert_int_equal(codec_msgpack_to_json(never, sizeof(never), 0, &out, &err), -EBADMSG);
	assert_int_equal(codec_msgpack_to_json(never, 0, 0, &out, &err), -EBADMSG);
	assert_int_equal(out.len, 0);
	buf_free(&out);
}

static void pretty(void **state)
{
	struct buf mp;
	char *s;

	(void)state;
	to_msgpack("{\"a\":1,\"b\":[],\"c\":{},\"d\":[1,{\"e\":null}]}", &mp);
	s = to_json(mp.data, mp.len, CODEC_PRETTY);
	assert_string_equal(s, "{\n  \"a\": 1,\n  \"b\": [],\n  \"c\": {},\n  \"d\": [\n    1,\n"
			       "    {\n      \"e\": null\n    }\n  ]\n}");
	free(s);
	buf_free(&mp);
}

static void buffer(void **state)
{
	struct buf b;
	size_t n;
	char *s;

	(void)state;
	buf_init(&b);
	s = buf_steal(&b, &n);
	assert_string_equal(s, "");
	assert_int_equal(n, 0);
	free(s);
	assert_int_equal(buf_append(&b, "ab", 2), 0);
	assert_int_equal(buf_append(&b, "cd", 2), 0);
	s = buf_steal(&b, &n);
	assert_string_equal(s, "abcd");
	assert_int_equal(n, 4);
	assert_null(b.data);
	free(s);
	buf_free(&b);
	buf_free(&b);
}

/* Edits of a msgpack map, checked through its JSON text. */
static char *edited(const char *json, const struct codec_mp_edit *e, size_t n, int want_rv)
{
	struct buf mp, out = {0};
	char *s;
	int r;

	to_msgpack(json, &mp);
	buf_append(&out, "x", 1); /* output is appended after what is there */
	r = codec_msgpack_map_edit(mp.data, mp.len, e, n, &out);
	assert_int_equal(r, want_rv);
	if (r != 0) {
		assert_int_equal(out.len, 1);
		buf_free(&mp);
		buf_free(&out);
		return NULL;
	}
	assert_int_equal(out.data[0], 'x');
	s = to_json(out.data + 1, out.len - 1, 0);
	buf_free(&mp);
	buf_free(&out);
	return s;
}

static void msgpack_map_edit(void **state)
{
	struct buf v1, v2, big = {0};
	char *s;
	(void)state;

	to_msgpack("\"n1\"", &v1);
	to_msgpack("{\"x\":[1,2]}", &v2);
	/* Replace in place, delete, add at the end in order. */
	struct codec_mp_edit e[] = {
		{"b", 1, v1.data, v1.len},
		{"c", 1, NULL, 0},
		{"new.key", 7, v2.data, v2.len},
		{"gone", 4, NULL, 0},
		{"z", 1, v1.data, v1.len},
	};
	s = edited("{\"a\":1,\"b\":{\"deep\":[1,{\"k\":2}]},\"c\":\"x\",\"d\":null}", e, 5, 0);
	assert_string_equal(s, "{\"a\":1,\"b\":\"n1\",\"d\":null,\"new.key\":{\"x\":[1,2]},"
			       "\"z\":\"n1\"}");
	free(s);
	/* No edits: the same map; an empty map takes additions. */
	s = edited("{\"a\":[],\"b\":{}}", NULL, 0, 0);
	assert_string_equal(s, "{\"a\":[],\"b\":{}}");
	free(s);
	s = edited("{}", e, 2, 0);
	assert_string_equal(s, "{\"b\":\"n1\"}");
	free(s);
	/* Everything deleted. */
	s = edited("{\"c\":1}", e + 1, 1, 0);
	assert_string_equal(s, "{}");
	free(s);
	/* The count header grows past 15 pairs and shrinks back. */
	{
		char json[512] = "{";
		for (int i = 0; i < 15; i++)
			snprintf(json + strlen(json), sizeof(json) - strlen(json), "%s\"k%02d\":%d",
				 i > 0 ? "," : "", i, i);
		strcat(json, "}");
		s = edited(json, e, 1, 0);
		assert_non_null(strstr(s, "\"k14\":14,\"b\":\"n1\"}"));
		free(s);
		struct buf mp, out = {0};
		to_msgpack(json, &mp);
		assert_int_equal(codec_msgpack_map_edit(mp.data, mp.len, e, 1, &out), 0);
		assert_int_equal((unsigned char)out.data[0], 0xde); /* map16: 16 pairs */
		struct buf out2 = {0};
		struct codec_mp_edit del = {"b", 1, NULL, 0};
		assert_int_equal(codec_msgpack_map_edit(out.data, out.len, &del, 1, &out2), 0);
		assert_int_equal(out2.len, mp.len);
		assert_memory_equal(out2.data, mp.data, mp.len);
		buf_free(&mp);
		buf_free(&out);
		buf_free(&out2);
	}
	/* Not a map; malformed; trailing bytes; too many edits. */
	assert_null(edited("[1,2]", e, 1, -EINVAL));
	{
		struct buf mp;
		to_msgpack("{\"a\":\"long string value\",\"b\":2}", &mp);
		for (size_t cut = 1; cut < mp.len; cut++) {
			buf_init(&big);
			assert_int_equal(codec_msgpack_map_edit(mp.data, cut, e, 1, &big), -EBADMSG);
			assert_int_equal(big.len, 0);
			buf_free(&big);
		}
		buf_append(&mp, "\xc0", 1);
		assert_int_equal(codec_msgpack_map_edit(mp.data, mp.len, e, 1, &big), -EBADMSG);
		struct codec_mp_edit many[65];
		for (size_t i = 0; i < 65; i++)
			many[i] = e[0];
		assert_int_equal(codec_msgpack_map_edit(mp.data, mp.len - 1, many, 65, &big),
				 -EINVAL);
		buf_free(&mp);
		buf_free(&big);
	}
	buf_free(&v1);
	buf_free(&v2);
}

static void msgpack_array_header(void **state)
{
	struct buf mp;
	uint32_t n;
	size_t hdr;
	(void)state;

	to_msgpack("[1,2,3]", &mp);
	assert_int_equal(codec_msgpack_array_header(mp.data, mp.len, &n, &hdr), 0);
	assert_int_equal(n, 3);
	assert_int_equal(hdr, 1);
	buf_free(&mp);
	to_msgpack("[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]", &mp);
	assert_int_equal(codec_msgpack_array_header(mp.data, mp.len, &n, &hdr), 0);
	assert_int_equal(n, 17);
	assert_int_equal(hdr, 3);
	assert_int_equal(codec_msgpack_array_header(mp.data, 2, &n, &hdr), -EBADMSG);
	assert_int_equal(codec_msgpack_array_header(mp.data, 0, &n, &hdr), -EBADMSG);
	buf_free(&mp);
	to_msgpack("{\"a\":1}", &mp);
	assert_int_equal(codec_msgpack_array_header(mp.data, mp.len, &n, &hdr), -EINVAL);
	buf_free(&mp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(roundtrip_pod),
		cmocka_unit_test(roundtrip_deployment),
		cmocka_unit_test(key_order_kept),
		cmocka_unit_test(msgpack_encoding),
		cmocka_unit_test(integers),
		cmocka_unit_test(floats),
		cmocka_unit_test(escaping_out),
		cmocka_unit_test(escaping_in),
		cmocka_unit_test(json_errors),
		cmocka_unit_test(duplicate_keys),
		cmocka_unit_test(depth_limit),
		cmocka_unit_test(truncated_msgpack),
		cmocka_unit_test(garbage),
		cmocka_unit_test(yaml_multidoc),
		cmocka_unit_test(yaml_typing),
		cmocka_unit_test(yaml_keys),
		cmocka_unit_test(yaml_anchors),
		cmocka_unit_test(yaml_errors),
		cmocka_unit_test(yaml_output),
		cmocka_unit_test(yaml_roundtrip),
		cmocka_unit_test(path_accessor),
		cmocka_unit_test(msgpack_types),
		cmocka_unit_test(pretty),
		cmocka_unit_test(buffer),
		cmocka_unit_test(msgpack_map_edit),
		cmocka_unit_test(msgpack_array_header),
	};

	return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
