/* Pod Table cells from the stored msgpack (src/api/cells_mp.c and the
 * msgpack printers of src/api/kinds/core_pod.c) against the tree printers
 * that kubectl's columns were written from (api_table_cells): the same
 * text for every computed column on hand-written pods (waiting and
 * terminated reasons, init containers, Terminating, readiness gates,
 * Completed...) and on thousands of generated ones; -EAGAIN where only the
 * tree can decide (non-ASCII text, bin, integers beyond int64); the
 * path columns' values and creationTimestamp found on the same walk; the
 * sscanf-free parser of canonical times against api_parse_time(). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/api/cells_mp.h"
#include "src/api/registry.h"
#include "src/lib/codec.h"

#define NOW ((int64_t)1767225600) /* 2026-01-01 */

/* ------------------------------------------------------------ helpers */

static const struct api_kind *pods(void)
{
	const struct api_kind *k = api_kind_by_resource("", "v1", "pods");

	assert_non_null(k);
	return k;
}

static bool computed(const struct api_column *c)
{
	return c->print != NULL && c->print != api_cell_age;
}

/* The msgpack value @v (p NULL: absent) equals the tree value @want
 * (NULL: absent; "<none>" too for a path cell, @cell). */
static void same_value(struct api__mpv v, const json_t *want, bool cell)
{
	json_t *got = NULL;

	if (v.p == NULL) {
		if (cell)
			assert_string_equal(json_string_value(want), "<none>");
		else
			assert_null(want);
		return;
	}
	assert_non_null(want);
	assert_int_equal(codec_msgpack_to_tree(v.p, v.len, &got, NULL), 0);
	assert_true(json_equal(got, want));
	json_decref(got);
}

/* Compares the msgpack cells of @mp with the tree's; returns the STATUS
 * cell (static) for the caller's own checks. */
static const char *same_cells_mp(const void *mp, size_t len)
{
	static char status[512];
	const struct api_kind *k = pods();
	struct api_cells_mp c;
	json_t *tree = NULL, *want;
	size_t i;

	assert_int_equal(codec_msgpack_to_tree(mp, len, &tree, NULL), 0);
	want = api_table_cells(k, tree, NOW);
	assert_non_null(want);
	assert_int_equal(api_table_cells_mp(k, mp, len, NOW, &c), 0);
	status[0] = '\0';
	for (i = 0; k->columns[i].name != NULL; i++) {
		const struct api_column *col = &k->columns[i];
		const char *w = json_string_value(json_array_get(want, i));

		if (!computed(col)) {
			assert_null(c.cell[i]);
			if (c.resolved[i])
				same_value(c.value[i], json_array_get(want, i), true);
			continue;
		}
		assert_non_null(w);
		assert_non_null(c.cell[i]);
		if (strcmp(c.cell[i], w) != 0) {
			char *text = json_dumps(tree, JSON_COMPACT);
			print_error("column %s: msgpack \"%s\", tree \"%s\" for %s\n", col->name,
				    c.cell[i], w, text);
			free(text);
			fail();
		}
		if (strcmp(col->name, "Status") == 0)
			snprintf(status, sizeof(status), "%s", w);
	}
	/* AGE's input: the tree's metadata.creationTimestamp. */
	assert_true(c.created_known);
	same_value(c.created, api_json_path(tree, "metadata.creationTimestamp"), false);
	json_decref(want);
	json_decref(tree);
	return status;
}

static const char *same_cells(const char *json)
{
	struct buf mp = {0};
	const char *s;

	assert_int_equal(codec_json_to_msgpack(json, strlen(json), 0, &mp, NULL), 0);
	s = same_cells_mp(mp.data, mp.len);
	buf_free(&mp);
	return s;
}

/* The msgpack cell of column @name for @json. */
static void cell_is(const char *json, const char *name, const char *want)
{
	const struct api_kind *k = pods();
	struct api_cells_mp c;
	struct buf mp = {0};
	size_t i;

	assert_int_equal(codec_json_to_msgpack(json, strlen(json), 0, &mp, NULL), 0);
	assert_int_equal(api_table_cells_mp(k, mp.data, mp.len, NOW, &c), 0);
	for (i = 0; k->columns[i].name != NULL; i++)
		if (strcmp(k->columns[i].name, name) == 0)
			break;
	assert_non_null(k->columns[i].name);
	assert_string_equal(c.cell[i], want);
	buf_free(&mp);
}

static int cells_rc(const char *json)
{
	struct api_cells_mp c;
	struct buf mp = {0};
	int rc;

	assert_int_equal(codec_json_to_msgpack(json, strlen(json), 0, &mp, NULL), 0);
	rc = api_table_cells_mp(pods(), mp.data, mp.len, NOW, &c);
	buf_free(&mp);
	return rc;
}

#define POD(meta, spec, status)                                                         \
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\","           \
	"\"namespace\":\"default\",\"creationTimestamp\":\"2025-12-31T00:00:00Z\"" meta "}," \
	"\"spec\":" spec ",\"status\":" status "}"
#define TWO "{\"containers\":[{\"name\":\"a\"},{\"name\":\"b\"}]}"

/* ------------------------------------------------------------ hand-written */

static void statuses(void **state)
{
	(void)state;
	/* Running, one of two ready. */
	assert_string_equal(
		same_cells(POD("", TWO,
			       "{\"phase\":\"Running\",\"containerStatuses\":["
			       "{\"name\":\"a\",\"ready\":true,\"restartCount\":2,\"state\":{\"running\":{}}},"
			       "{\"name\":\"b\",\"ready\":false,\"restartCount\":1,\"state\":{\"running\":{}}}]}")),
		"Running");
	cell_is(POD("", TWO,
		    "{\"phase\":\"Running\",\"containerStatuses\":["
		    "{\"name\":\"a\",\"ready\":true,\"restartCount\":2,\"state\":{\"running\":{}}},"
		    "{\"name\":\"b\",\"ready\":false,\"restartCount\":1,\"state\":{\"running\":{}}}]}"),
		"Ready", "1/2");
	cell_is(POD("", TWO,
		    "{\"phase\":\"Running\",\"initContainerStatuses\":[{\"restartCount\":4}],"
		    "\"containerStatuses\":[{\"restartCount\":2},{\"restartCount\":1}]}"),
		"Restarts", "7");
	/* No status at all: Pending, 0/2, no gates. */
	assert_string_equal(same_cells(POD("", TWO, "{}")), "Pending");
	cell_is(POD("", TWO, "{}"), "Readiness Gates", "<none>");
	/* Waiting reasons: the first container with one wins. */
	assert_string_equal(
		same_cells(POD("", TWO,
			       "{\"phase\":\"Pending\",\"containerStatuses\":["
			       "{\"state\":{\"waiting\":{\"reason\":\"ErrImagePull\"}}},"
			       "{\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\"}}}]}")),
		"ErrImagePull");
	assert_string_equal(
		same_cells(POD("", TWO,
			       "{\"phase\":\"Running\",\"containerStatuses\":["
			       "{\"ready\":true,\"state\":{\"running\":{}}},"
			       "{\"restartCount\":5,\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\"}}}]}")),
		"CrashLoopBackOff");
	/* Terminated: reason, else signal, else exit code. */
	assert_string_equal(
		same_cells(POD("", TWO,
			       "{\"phase\":\"Failed\",\"containerStatuses\":["
			       "{\"state\":{\"terminated\":{\"exitCode\":137,\"reason\":\"OOMKilled\"}}}]}")),
		"OOMKilled");
	assert_string_equal(
		same_cells(POD("", TWO,
			       "{\"phase\":\"Failed\",\"containerStatuses\":["
			       "{\"state\":{\"terminated\":{\"exitCode\":137,\"signal\":9}}}]}")),
		"Signal:9");
	assert_string_equal(
		same_cells(POD("", TWO,
			       "{\"phase\":\"Failed\",\"containerStatuses\":["
			       "{\"state\":{\"terminated\":{\"exitCode\":3,\"reason\":\"\"}}}]}")),
		"ExitCode:3");
	/* Completed, and Completed beside a ready running container. */
	assert_string_equal(
		same_cells(POD("", TWO,
			       "{\"phase\":\"Succeeded\",\"containerStatuses\":["
			       "{\"state\":{\"terminated\":{\"exitCode\":0,\"reason\":\"Completed\"}}},"
			       "{\"state\":{\"terminated\":{\"exitCode\":0,\"reason\":\"Completed\"}}}]}")),
		"Completed");
	assert_string_equal(
		same_cells(POD("", TWO,
			       "{\"phase\":\"Running\",\"containerStatuses\":["
			       "{\"state\":{\"terminated\":{\"exitCode\":0,\"reason\":\"Completed\"}}},"
			       "{\"ready\":true,\"state\":{\"running\":{}}}]}")),
		"Running");
	/* NotReady: running but not ready stays the phase. */
	assert_string_equal(
		same_cells(POD("", TWO,
			       "{\"phase\":\"Running\",\"reason\":\"\",\"containerStatuses\":["
			       "{\"ready\":false,\"state\":{\"running\":{}}}]}")),
		"Running");
	/* The pod's reason wins over the phase. */
	assert_string_equal(same_cells(POD("", TWO, "{\"phase\":\"Failed\",\"reason\":\"Evicted\"}")),
			    "Evicted");
}

static void init_containers(void **state)
{
	(void)state;
	static const char spec[] = "{\"initContainers\":[{\"name\":\"i1\"},{\"name\":\"i2\"}],"
				   "\"containers\":[{\"name\":\"a\"}]}";
	char json[2048];

	/* The first init container done, the second one running. */
	snprintf(json, sizeof(json),
		 POD("", "%s", "{\"phase\":\"Pending\",\"initContainerStatuses\":["
			       "{\"state\":{\"terminated\":{\"exitCode\":0}}},"
			       "{\"state\":{\"running\":{}}}]}"),
		 spec);
	assert_string_equal(same_cells(json), "Init:1/2");
	snprintf(json, sizeof(json),
		 POD("", "%s", "{\"phase\":\"Pending\",\"initContainerStatuses\":["
			       "{\"state\":{\"waiting\":{\"reason\":\"PodInitializing\"}}}]}"),
		 spec);
	assert_string_equal(same_cells(json), "Init:0/2");
	snprintf(json, sizeof(json),
		 POD("", "%s", "{\"phase\":\"Pending\",\"initContainerStatuses\":["
			       "{\"state\":{\"waiting\":{\"reason\":\"ImagePullBackOff\"}}}]}"),
		 spec);
	assert_string_equal(same_cells(json), "Init:ImagePullBackOff");
	snprintf(json, sizeof(json),
		 POD("", "%s", "{\"phase\":\"Pending\",\"initContainerStatuses\":["
			       "{\"state\":{\"terminated\":{\"exitCode\":1,\"reason\":\"Error\"}}}]}"),
		 spec);
	assert_string_equal(same_cells(json), "Init:Error");
	snprintf(json, sizeof(json),
		 POD("", "%s", "{\"phase\":\"Pending\",\"initContainerStatuses\":["
			       "{\"state\":{\"terminated\":{\"exitCode\":2,\"signal\":15}}}]}"),
		 spec);
	assert_string_equal(same_cells(json), "Init:Signal:15");
	/* Every init container done: the containers decide. */
	snprintf(json, sizeof(json),
		 POD("", "%s", "{\"phase\":\"Running\",\"initContainerStatuses\":["
			       "{\"state\":{\"terminated\":{\"exitCode\":0}}}],"
			       "\"containerStatuses\":[{\"ready\":true,\"state\":{\"running\":{}}}]}"),
		 spec);
	assert_string_equal(same_cells(json), "Running");
}

static void terminating_and_gates(void **state)
{
	(void)state;
	assert_string_equal(same_cells(POD(",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"", TWO,
					   "{\"phase\":\"Running\"}")),
			    "Terminating");
	assert_string_equal(same_cells(POD(",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"", TWO,
					   "{\"phase\":\"Running\",\"reason\":\"NodeLost\"}")),
			    "Unknown");
	/* A deletionTimestamp of null is still there for the tree. */
	assert_string_equal(same_cells(POD(",\"deletionTimestamp\":null", TWO, "{\"phase\":\"Running\"}")),
			    "Terminating");
	static const char gates[] =
		POD("", "{\"containers\":[{\"name\":\"a\"}],\"readinessGates\":["
			"{\"conditionType\":\"www.example.com/a\"},{\"conditionType\":\"B\"}]}",
		    "{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"},"
		    "{\"type\":\"www.example.com/a\",\"status\":\"True\"},{\"type\":\"B\",\"status\":\"False\"}]}");
	same_cells(gates);
	cell_is(gates, "Readiness Gates", "1/2");
	/* Odd shapes: status not a map, lists not arrays. */
	same_cells(POD("", "{\"containers\":{}}", "\"x\""));
	same_cells(POD("", "[]", "{\"containerStatuses\":{\"a\":1},\"phase\":7}"));
	same_cells("{\"kind\":\"Pod\"}");
	same_cells("[1,2]");
	/* Floats and strings where integers belong count as 0. */
	cell_is(POD("", TWO, "{\"containerStatuses\":[{\"restartCount\":1.5},{\"restartCount\":\"3\"},"
			     "{\"restartCount\":-2}]}"),
		"Restarts", "-2");
	same_cells(POD("", TWO, "{\"containerStatuses\":[{\"restartCount\":1.5},{\"restartCount\":\"3\"},"
				"{\"restartCount\":-2}]}"));
}

/* Hand-made msgpack the JSON path would never store. */
static void raw_msgpack(void **state)
{
	(void)state;
	struct api_cells_mp c;
	/* {"status":{"phase":"A","phase":"B"}}: the later key wins. */
	static const uint8_t dup[] = {0x81, 0xa6, 's', 't', 'a', 't', 'u', 's', 0x82, 0xa5, 'p', 'h',
				      'a', 's', 'e', 0xa1, 'A', 0xa5, 'p', 'h', 'a', 's', 'e', 0xa1, 'B'};
	/* {"status":{"phase":bin "Running"}}: a tree has it as base64. */
	static const uint8_t bin[] = {0x81, 0xa6, 's', 't', 'a', 't', 'u', 's', 0x81, 0xa5, 'p', 'h',
				      'a', 's', 'e', 0xc4, 0x07, 'R', 'u', 'n', 'n', 'i', 'n', 'g'};
	/* {"status":{"phase":"Run\0x"}}: C code stops at the NUL. */
	static const uint8_t nul[] = {0x81, 0xa6, 's', 't', 'a', 't', 'u', 's', 0x81, 0xa5, 'p', 'h',
				      'a', 's', 'e', 0xa5, 'R', 'u', 'n', 0x00, 'x'};
	/* A map key that is not a str: the tree path fails on it too. */
	static const uint8_t intkey[] = {0x81, 0x01, 0x02};

	assert_string_equal(same_cells_mp(dup, sizeof(dup)), "B");
	assert_string_equal(same_cells_mp(nul, sizeof(nul)), "Run");
	assert_int_equal(api_table_cells_mp(pods(), bin, sizeof(bin), NOW, &c), -EAGAIN);
	assert_int_equal(api_table_cells_mp(pods(), intkey, sizeof(intkey), NOW, &c), -EBADMSG);
	assert_int_equal(api_table_cells_mp(pods(), bin, sizeof(bin) - 3, NOW, &c), -EBADMSG);
}

static void tree_decides(void **state)
{
	(void)state;
	struct api_cells_mp c;
	const struct api_kind *deploy = api_kind_by_resource("apps", "v1", "deployments");

	/* Non-ASCII text: the tree path cleans invalid UTF-8, so it decides. */
	assert_int_equal(cells_rc(POD("", TWO, "{\"phase\":\"Running\",\"reason\":\"Évicted\"}")),
			 -EAGAIN);
	assert_int_equal(cells_rc(POD("", TWO, "{\"containerStatuses\":[{\"state\":{\"waiting\":"
					       "{\"reason\":\"\\u00e9\"}}}]}")),
			 -EAGAIN);
	/* Beyond int64: the tree decoder refuses it. */
	assert_int_equal(cells_rc(POD("", TWO, "{\"containerStatuses\":[{\"restartCount\":"
					       "18446744073709551615}]}")),
			 -EAGAIN);
	/* Kinds without msgpack printers. */
	assert_non_null(deploy);
	assert_false(api_table_cells_mp_supported(deploy));
	assert_true(api_table_cells_mp_supported(pods()));
	assert_int_equal(api_table_cells_mp(deploy, "\x80", 1, NOW, &c), -ENOTSUP);
}

/* ------------------------------------------------------------ generated */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static unsigned pick(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(tmp));
	assert_int_equal(buf_append(b, tmp, (size_t)n), 0);
}

static void gen_state(struct buf *b)
{
	static const char *const wait[] = {NULL, "", "PodInitializing", "CrashLoopBackOff",
					   "ErrImagePull", "ContainerCreating"};
	static const char *const term[] = {NULL, "", "Completed", "Error", "OOMKilled"};
	static const int codes[] = {0, 0, 1, 137, 2};
	static const int sigs[] = {-1, 0, 9, 15};
	const char *sep = "";
	unsigned k = pick(8);

	if (k == 0)
		return;
	put(b, ",\"state\":");
	if (k == 1) {
		put(b, "null");
		return;
	}
	put(b, "{");
	if (k == 2 || k == 7) {
		const char *w = wait[pick(6)];
		put(b, "\"waiting\":{");
		if (w != NULL)
			put(b, "\"reason\":\"%s\"", w);
		put(b, "}");
		sep = ",";
	}
	if (k == 3 || k == 7) {
		put(b, "%s\"running\":{\"startedAt\":\"2025-12-31T00:00:00Z\"}", sep);
		sep = ",";
	}
	if (k == 4 || k == 5 || k == 7) {
		const char *r = term[pick(5)];
		int sig = sigs[pick(4)];
		put(b, "%s\"terminated\":{\"exitCode\":%d", sep, codes[pick(5)]);
		if (r != NULL)
			put(b, ",\"reason\":\"%s\"", r);
		if (sig >= 0)
			put(b, ",\"signal\":%d", sig);
		put(b, "}");
	}
	if (k == 6)
		put(b, "\"terminated\":null");
	put(b, "}");
}

static void gen_statuses(struct buf *b, const char *name, unsigned max)
{
	static const char *const ready[] = {NULL, "true", "false", "\"true\""};
	static const char *const restarts[] = {NULL, "0", "1", "3", "-1", "2.5", "\"4\""};
	unsigned n = pick(max + 1), i;

	if (pick(6) == 0)
		return;
	if (pick(12) == 0) {
		put(b, ",\"%s\":{\"a\":1}", name);
		return;
	}
	put(b, ",\"%s\":[", name);
	for (i = 0; i < n; i++) {
		const char *rd = ready[pick(4)], *rs = restarts[pick(7)];
		put(b, "%s{\"name\":\"c%u\",\"image\":\"x\"", i > 0 ? "," : "", i);
		if (rd != NULL)
			put(b, ",\"ready\":%s", rd);
		if (rs != NULL)
			put(b, ",\"restartCount\":%s", rs);
		gen_state(b);
		put(b, "}");
	}
	put(b, "]");
}

static void gen_list(struct buf *b, const char *name, unsigned max, const char *field,
		     const char *const *vals, unsigned nvals)
{
	unsigned n = pick(max + 1), i;

	if (pick(4) == 0)
		return;
	put(b, ",\"%s\":[", name);
	for (i = 0; i < n; i++) {
		put(b, "%s{\"%s\":\"%s\"}", i > 0 ? "," : "", field, vals[pick(nvals)]);
	}
	put(b, "]");
}

static void gen_pod(struct buf *b)
{
	static const char *const phases[] = {NULL, "", "Pending", "Running", "Succeeded",
					     "Failed", "Unknown"};
	static const char *const reasons[] = {NULL, NULL, "", "NodeLost", "Evicted"};
	static const char *const types[] = {"Ready", "A", "B", "www.example.com/gate"};
	static const char *const cond_status[] = {"True", "True", "False", "Unknown"};
	const char *phase = phases[pick(7)], *reason = reasons[pick(5)];
	unsigned i, n;

	b->len = 0;
	put(b, "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\","
	       "\"namespace\":\"default\"");
	if (pick(6) != 0)
		put(b, ",\"creationTimestamp\":\"2025-12-31T00:00:00Z\"");
	if (pick(3) == 0) {
		/* map16, str8 keys, str16 values, array16: the other headers. */
		put(b, ",\"labels\":{");
		for (i = 0; i < 20; i++)
			put(b, "%s\"%040u\":\"%0300u\"", i > 0 ? "," : "", i, i);
		put(b, "},\"finalizers\":[");
		for (i = 0; i < 20; i++)
			put(b, "%s%d", i > 0 ? "," : "", (int)(i * 1000) - 3000);
		put(b, ",1.5,false,null,-70000,5000000000,-5000000000]");
	}
	n = pick(10);
	if (n == 0)
		put(b, ",\"deletionTimestamp\":\"2026-01-01T00:00:00Z\"");
	else if (n == 1)
		put(b, ",\"deletionTimestamp\":null");
	put(b, "},\"spec\":{\"restartPolicy\":\"Always\"");
	if (pick(2) == 0)
		put(b, ",\"nodeName\":\"node-%u\"", pick(5));
	gen_list(b, "containers", 3, "name", types, 4);
	gen_list(b, "initContainers", 2, "name", types, 4);
	gen_list(b, "readinessGates", 2, "conditionType", types, 4);
	put(b, "},\"status\":{\"hostIP\":\"10.0.0.1\"");
	if (pick(2) == 0)
		put(b, ",\"podIP\":\"10.1.0.%u\"", pick(250));
	if (pick(5) == 0)
		put(b, ",\"nominatedNodeName\":\"node-%u\"", pick(5));
	if (phase != NULL)
		put(b, ",\"phase\":\"%s\"", phase);
	if (reason != NULL)
		put(b, ",\"reason\":\"%s\"", reason);
	if (pick(3) != 0) {
		n = pick(4);
		put(b, ",\"conditions\":[");
		for (i = 0; i < n; i++)
			put(b, "%s{\"type\":\"%s\",\"status\":\"%s\"}", i > 0 ? "," : "",
			    types[pick(4)], cond_status[pick(4)]);
		put(b, "]");
	}
	gen_statuses(b, "initContainerStatuses", 2);
	gen_statuses(b, "containerStatuses", 3);
	put(b, "}}");
}

/* api__mp_value_len() agrees with codec_msgpack_value_len() on @mp and on
 * every truncation and some corruptions of it. */
static void same_skip(const uint8_t *mp, size_t len)
{
	uint8_t tmp[16384];
	size_t a, b, cut, i;
	int ra, rb;

	assert_int_equal(codec_msgpack_value_len(mp, len, &a), 0);
	assert_int_equal(api__mp_value_len(mp, len, &b), 0);
	assert_int_equal(a, b);
	assert_true(len <= sizeof(tmp));
	for (i = 0; i < 8; i++) {
		cut = pick((unsigned)len + 1);
		ra = codec_msgpack_value_len(mp, cut, &a);
		rb = api__mp_value_len(mp, cut, &b);
		assert_int_equal(ra, rb);
		if (ra == 0)
			assert_int_equal(a, b);
		memcpy(tmp, mp, len);
		tmp[pick((unsigned)len)] = (uint8_t)pick(256);
		ra = codec_msgpack_value_len(tmp, len, &a);
		rb = api__mp_value_len(tmp, len, &b);
		assert_int_equal(ra, rb);
		if (ra == 0)
			assert_int_equal(a, b);
	}
}

static void generated(void **state)
{
	(void)state;
	struct buf text = {0};
	struct buf mp = {0};
	unsigned seen_init = 0, seen_term = 0, seen_unknown = 0, seen_completed = 0, seen_exit = 0,
		 seen_signal = 0, seen_running = 0, i;

	for (i = 0; i < 20000; i++) {
		const char *s;

		gen_pod(&text);
		mp.len = 0;
		assert_int_equal(codec_json_to_msgpack(text.data, text.len, 0, &mp, NULL), 0);
		s = same_cells_mp(mp.data, mp.len);
		if (i % 4 == 0)
			same_skip((const uint8_t *)mp.data, mp.len);
		seen_init += strncmp(s, "Init:", 5) == 0;
		seen_term += strcmp(s, "Terminating") == 0;
		seen_unknown += strcmp(s, "Unknown") == 0;
		seen_completed += strcmp(s, "Completed") == 0;
		seen_exit += strstr(s, "ExitCode:") != NULL;
		seen_signal += strstr(s, "Signal:") != NULL;
		seen_running += strcmp(s, "Running") == 0;
	}
	/* The generator reaches every branch of the STATUS column. */
	assert_true(seen_init > 100 && seen_term > 100 && seen_unknown > 10 && seen_completed > 10 &&
		    seen_exit > 100 && seen_signal > 100 && seen_running > 100);
	buf_free(&text);
	buf_free(&mp);
}

static void canonical_time(void **state)
{
	(void)state;
	char b[32];
	int64_t want, got;
	unsigned i;

	assert_int_equal(api_parse_time_canonical("2024-01-02T03:04:05Z", 20, &got), 0);
	assert_int_equal(got, 1704164645);
	assert_int_equal(api_parse_time_canonical("1969-12-31T23:59:58Z", 20, &got), 0);
	assert_int_equal(got, -2);
	/* Other forms and ranges are api_parse_time()'s to decide. */
	assert_int_equal(api_parse_time_canonical("2024-01-02T03:04:05.5Z", 22, &got), -EAGAIN);
	assert_int_equal(api_parse_time_canonical("2024-01-02T03:04:05+01", 22, &got), -EAGAIN);
	assert_int_equal(api_parse_time_canonical("2024-13-02T03:04:05Z", 20, &got), -EAGAIN);
	assert_int_equal(api_parse_time_canonical("2024-01-02 03:04:05Z", 20, &got), -EAGAIN);
	assert_int_equal(api_parse_time_canonical("2024-01-0xT03:04:05Z", 20, &got), -EAGAIN);
	assert_int_equal(api_parse_time_canonical("1969-12-31T23:59:59Z", 20, &got), -EAGAIN);
	/* The same seconds as api_parse_time() (timegm), days past a
	 * month's end and leap seconds included. */
	for (i = 0; i < 200000; i++) {
		snprintf(b, sizeof(b), "%04u-%02u-%02uT%02u:%02u:%02uZ", 1600 + pick(800), 1 + pick(12),
			 1 + pick(31), pick(24), pick(60), pick(61));
		assert_int_equal(api_parse_time(b, &want), 0);
		assert_int_equal(api_parse_time_canonical(b, 20, &got), 0);
		if (got != want) {
			print_error("%s: %lld, api_parse_time %lld\n", b, (long long)got, (long long)want);
			fail();
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(statuses),
		cmocka_unit_test(init_containers),
		cmocka_unit_test(terminating_and_gates),
		cmocka_unit_test(raw_msgpack),
		cmocka_unit_test(tree_decides),
		cmocka_unit_test(generated),
		cmocka_unit_test(canonical_time),
	};

	return cmocka_run_group_tests_name("cells_mp", tests, NULL, NULL);
}
