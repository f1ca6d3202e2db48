/* Unit tests of the scheduler's pure parts: resource quantities, pod and
 * node parsing, each filter, each score and the FitError message. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/ctrl/quantity.h"
#include "src/sched/sched.h"

/* ---------------------------------------------------------------- Helpers */

static json_t *load(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);
	if (j == NULL)
		fail_msg("bad JSON in test: %s: %s", err.text, text);
	return j;
}

/* Parses a pod given as JSON text (with constraints). */
static void pod(const char *text, struct sched_pod_spec *p)
{
	json_t *j = load(text);
	assert_int_equal(sched__pod_parse(j, true, p), 0);
	json_decref(j);
}

/* Parses a node given as JSON text into a zeroed sched_node. */
static void node(const char *text, struct sched_node *n)
{
	json_t *j = load(text);
	memset(n, 0, sizeof(*n));
	assert_int_equal(sched__node_parse(j, &n->spec), 0);
	n->exists = true;
	json_decref(j);
}

static void node_free(struct sched_node *n)
{
	sched__node_clear(&n->spec);
	free(n->ports);
}

#define READY "\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]," \
	      "\"allocatable\":{\"cpu\":\"4\",\"memory\":\"8Gi\",\"pods\":\"110\"}}"

static int64_t q(const char *s, int scale)
{
	int64_t v = -12345;
	assert_int_equal(ctrl_quantity_parse(s, scale, &v), 0);
	return v;
}

/* ---------------------------------------------------------------- Quantities */

static void test_quantity_cpu(void **state)
{
	(void)state;
	assert_int_equal(q("100m", -3), 100);
	assert_int_equal(q("1", -3), 1000);
	assert_int_equal(q("1.5", -3), 1500);
	assert_int_equal(q("0.1", -3), 100);
	assert_int_equal(q(".5", -3), 500);
	assert_int_equal(q("2k", -3), 2000000);
	assert_int_equal(q("1e3", -3), 1000000);
	assert_int_equal(q("1E-3", -3), 1);
	assert_int_equal(q("+250m", -3), 250);
	assert_int_equal(q("0", -3), 0);
	/* Rounded up, as MilliValue(). */
	assert_int_equal(q("500u", -3), 1);
	assert_int_equal(q("1001u", -3), 2);
	assert_int_equal(q("0.0001", -3), 1);
	assert_int_equal(q("1n", 0), 1);
	assert_int_equal(q("-1", -3), -1000);
}

static void test_quantity_bytes(void **state)
{
	(void)state;
	assert_int_equal(q("128Mi", 0), 128LL * 1024 * 1024);
	assert_int_equal(q("1Gi", 0), 1024LL * 1024 * 1024);
	assert_int_equal(q("1.5Gi", 0), 1536LL * 1024 * 1024);
	assert_int_equal(q("1Ki", 0), 1024);
	assert_int_equal(q("1Ei", 0), 1LL << 60);
	assert_int_equal(q("1M", 0), 1000000);
	assert_int_equal(q("1G", 0), 1000000000);
	assert_int_equal(q("1E", 0), 1000000000000000000LL);
	assert_int_equal(q("12e6", 0), 12000000);
	assert_int_equal(q("1e+3", 0), 1000);
	assert_int_equal(q("129e-1", 0), 13);
	assert_int_equal(q("123456789012345678901234", 0), INT64_MAX);
	assert_int_equal(q("16Ei", 0), INT64_MAX);
	assert_int_equal(q("1Pi", -3), 1000LL << 50);
}

static void test_quantity_invalid(void **state)
{
	static const char *const bad[] = {"", "abc", "1x", "1.2.3", "1e", "Mi", "1 Mi",
					  "1ki", "--1", "1e3.5", "m", NULL};
	int64_t v;
	(void)state;
	for (const char *const *s = bad; *s != NULL; s++) {
		if (ctrl_quantity_parse(*s, 0, &v) != -EINVAL)
			fail_msg("accepted \"%s\"", *s);
	}
	assert_int_equal(ctrl_quantity_json(NULL, 0, &v), -EINVAL);
	json_t *t = json_true();
	assert_int_equal(ctrl_quantity_json(t, 0, &v), -EINVAL);
}

static void test_quantity_json(void **state)
{
	int64_t v;
	(void)state;
	json_t *j = json_integer(2);
	assert_int_equal(ctrl_quantity_milli(j, &v), 0);
	assert_int_equal(v, 2000);
	json_decref(j);
	j = json_real(0.25);
	assert_int_equal(ctrl_quantity_milli(j, &v), 0);
	assert_int_equal(v, 250);
	json_decref(j);
	j = json_string("64Mi");
	assert_int_equal(ctrl_quantity_value(j, &v), 0);
	assert_int_equal(v, 64LL << 20);
	json_decref(j);
}

/* ---------------------------------------------------------------- Parsing */

static void test_pod_requests(void **state)
{
	struct sched_pod_spec p;
	(void)state;
	pod("{\"spec\":{\"containers\":["
	    "{\"resources\":{\"requests\":{\"cpu\":\"100m\",\"memory\":\"64Mi\"}}},"
	    "{\"resources\":{\"requests\":{\"cpu\":\"200m\"}}}],"
	    "\"initContainers\":[{\"resources\":{\"requests\":{\"cpu\":\"1\",\"memory\":\"32Mi\"}}}]}}",
	    &p);
	/* cpu: max(100m + 200m, 1) ; memory: max(64Mi, 32Mi) */
	assert_int_equal(p.req.cpu, 1000);
	assert_int_equal(p.req.mem, 64LL << 20);
	assert_int_equal(p.req.pods, 1);
	/* Scoring: the second container's absent memory counts 200Mi. */
	assert_int_equal(p.req_nz.cpu, 1000);
	assert_int_equal(p.req_nz.mem, (64LL << 20) + SCHED_DEFAULT_MEM);
	sched__pod_clear(&p);

	/* No requests: zero for filters, defaults for scores, one pod. */
	pod("{\"spec\":{\"containers\":[{\"name\":\"a\"}]}}", &p);
	assert_int_equal(p.req.cpu, 0);
	assert_int_equal(p.req.mem, 0);
	assert_int_equal(p.req.pods, 1);
	assert_int_equal(p.req_nz.cpu, SCHED_DEFAULT_CPU);
	assert_int_equal(p.req_nz.mem, SCHED_DEFAULT_MEM);
	assert_null(p.owner_uid);
	assert_int_equal(p.n_ports, 0);
	sched__pod_clear(&p);

	/* Sidecars add up; overhead is added. */
	pod("{\"spec\":{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"1\"}}}],"
	    "\"initContainers\":[{\"restartPolicy\":\"Always\",\"resources\":{\"requests\":{\"cpu\":\"500m\"}}}],"
	    "\"overhead\":{\"cpu\":\"10m\"}}}",
	    &p);
	assert_int_equal(p.req.cpu, 1510);
	sched__pod_clear(&p);
}

static void test_pod_ports_owner_constraints(void **state)
{
	struct sched_pod_spec p;
	(void)state;
	pod("{\"metadata\":{\"ownerReferences\":[{\"uid\":\"u1\"},{\"uid\":\"u2\",\"controller\":true}]},"
	    "\"spec\":{\"containers\":[{\"ports\":[{\"containerPort\":80,\"hostPort\":8080},"
	    "{\"containerPort\":53,\"hostPort\":53,\"protocol\":\"UDP\",\"hostIP\":\"127.0.0.1\"},"
	    "{\"containerPort\":9}]}],"
	    "\"nodeSelector\":{\"disk\":\"ssd\"},"
	    "\"tolerations\":[{\"key\":\"k\",\"operator\":\"Equal\",\"value\":\"v\",\"effect\":\"NoSchedule\"},"
	    "{\"operator\":\"Exists\"}],"
	    "\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":"
	    "{\"nodeSelectorTerms\":[{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\",\"values\":[\"x\",\"y\"]}],"
	    "\"matchFields\":[{\"key\":\"metadata.name\",\"operator\":\"In\",\"values\":[\"n1\"]}]}]}}}}}",
	    &p);
	assert_string_equal(p.owner_uid, "u2");
	assert_int_equal(p.n_ports, 2);
	assert_int_equal(p.ports[0].port, 8080);
	assert_int_equal(p.ports[0].proto, SCHED_TCP);
	assert_string_equal(p.ports[0].ip, "");
	assert_int_equal(p.ports[1].port, 53);
	assert_int_equal(p.ports[1].proto, SCHED_UDP);
	assert_string_equal(p.ports[1].ip, "127.0.0.1");
	assert_int_equal(p.n_selector, 1);
	assert_string_equal(p.selector[0], "disk");
	assert_string_equal(p.selector[1], "ssd");
	assert_int_equal(p.n_tols, 2);
	assert_false(p.tols[0].exists);
	assert_int_equal(p.tols[0].effect, SCHED_NO_SCHEDULE);
	assert_true(p.tols[1].exists);
	assert_string_equal(p.tols[1].key, "");
	assert_true(p.has_affinity);
	assert_int_equal(p.n_terms, 1);
	assert_int_equal(p.terms[0].n, 2);
	assert_int_equal(p.terms[0].reqs[0].op, SCHED_OP_IN);
	assert_int_equal(p.terms[0].reqs[0].n_values, 2);
	assert_true(p.terms[0].reqs[1].field);
	sched__pod_clear_constraints(&p);
	assert_int_equal(p.n_tols, 0);
	assert_false(p.has_affinity);
	assert_int_equal(p.n_ports, 2); /* kept */
	sched__pod_clear(&p);
}

static void test_node_parse(void **state)
{
	struct sched_node n, m;
	(void)state;
	node("{\"metadata\":{\"name\":\"n1\",\"labels\":{\"zone\":\"a\"}},"
	     "\"spec\":{\"unschedulable\":true,\"taints\":[{\"key\":\"k\",\"value\":\"v\",\"effect\":\"NoExecute\"}]},"
	     READY "}",
	     &n);
	assert_string_equal(n.spec.name, "n1");
	assert_true(n.spec.unschedulable);
	assert_int_equal(n.spec.ready, SCHED_READY_TRUE);
	assert_int_equal(n.spec.alloc.cpu, 4000);
	assert_int_equal(n.spec.alloc.mem, 8LL << 30);
	assert_int_equal(n.spec.alloc.pods, 110);
	assert_int_equal(n.spec.n_taints, 1);
	assert_int_equal(n.spec.taints[0].effect, SCHED_NO_EXECUTE);
	assert_string_equal(json_string_value(json_object_get(n.spec.labels, "zone")), "a");

	/* Capacity when allocatable is absent; no Ready condition: unknown. */
	node("{\"metadata\":{\"name\":\"n1\"},\"status\":{\"capacity\":{\"cpu\":2,\"pods\":\"10\"},"
	     "\"conditions\":[{\"type\":\"Ready\",\"status\":\"False\"}]}}",
	     &m);
	assert_int_equal(m.spec.alloc.cpu, 2000);
	assert_int_equal(m.spec.alloc.pods, 10);
	assert_int_equal(m.spec.ready, SCHED_READY_FALSE);
	assert_false(m.spec.unschedulable);
	assert_false(sched__node_equal(&n.spec, &m.spec));
	node_free(&m);

	/* A heartbeat changes nothing the scheduler reads. */
	node("{\"metadata\":{\"name\":\"n1\",\"labels\":{\"zone\":\"a\"}},"
	     "\"spec\":{\"unschedulable\":true,\"taints\":[{\"key\":\"k\",\"value\":\"v\",\"effect\":\"NoExecute\"}]},"
	     "\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"lastHeartbeatTime\":\"x\"}],"
	     "\"allocatable\":{\"cpu\":\"4\",\"memory\":\"8Gi\",\"pods\":\"110\"}}}",
	     &m);
	assert_true(sched__node_equal(&n.spec, &m.spec));
	json_object_set_new(m.spec.labels, "zone", json_string("b"));
	assert_false(sched__node_equal(&n.spec, &m.spec));
	node_free(&m);
	node_free(&n);
}

/* ---------------------------------------------------------------- Filters */

static void test_tolerations(void **state)
{
	struct sched_taint t = {(char *)"k", (char *)"v", SCHED_NO_SCHEDULE};
	struct sched_toleration eq = {(char *)"k", (char *)"v", false, false, SCHED_NO_SCHEDULE};
	(void)state;
	assert_true(sched__tolerates(&eq, &t));
	eq.value = (char *)"w";
	assert_false(sched__tolerates(&eq, &t));
	eq.value = (char *)"v";
	eq.effect = SCHED_NO_EXECUTE;
	assert_false(sched__tolerates(&eq, &t));
	eq.effect = SCHED_EFFECT_ANY;
	assert_true(sched__tolerates(&eq, &t));
	eq.key = (char *)"other";
	assert_false(sched__tolerates(&eq, &t));

	struct sched_toleration ex = {(char *)"k", (char *)"", true, false, SCHED_EFFECT_ANY};
	assert_true(sched__tolerates(&ex, &t));
	/* An empty key with Exists tolerates everything. */
	struct sched_toleration all = {(char *)"", (char *)"", true, false, SCHED_EFFECT_ANY};
	struct sched_taint t2 = {(char *)"x", (char *)"y", SCHED_NO_EXECUTE};
	assert_true(sched__tolerates(&all, &t2));
	all.effect = SCHED_NO_SCHEDULE;
	assert_false(sched__tolerates(&all, &t2));
	/* Unknown operator. */
	struct sched_toleration bad = {(char *)"k", (char *)"v", false, true, SCHED_EFFECT_ANY};
	assert_false(sched__tolerates(&bad, &t));
	struct sched_toleration list[] = {bad, ex};
	assert_true(sched__tolerated(list, 2, &t));
	assert_false(sched__tolerated(list, 1, &t));
}

static void test_filter_unschedulable_and_taints(void **state)
{
	struct sched_pod_spec plain, tol;
	struct sched_node n;
	(void)state;
	pod("{\"spec\":{}}", &plain);
	pod("{\"spec\":{\"tolerations\":[{\"key\":\"node.kubernetes.io/unschedulable\","
	    "\"operator\":\"Exists\",\"effect\":\"NoSchedule\"},"
	    "{\"key\":\"dedicated\",\"operator\":\"Equal\",\"value\":\"gpu\"},"
	    "{\"key\":\"node.kubernetes.io/not-ready\",\"operator\":\"Exists\"}]}}",
	    &tol);

	node("{\"metadata\":{\"name\":\"n\"},\"spec\":{\"unschedulable\":true}," READY "}", &n);
	assert_false(sched__fit_unschedulable(&plain, &n.spec));
	assert_true(sched__fit_unschedulable(&tol, &n.spec));
	assert_int_equal(sched__filter(&plain, &n, NULL), SCHED_FIT_UNSCHEDULABLE);
	node_free(&n);

	node("{\"metadata\":{\"name\":\"n\"},\"spec\":{\"taints\":["
	     "{\"key\":\"soft\",\"effect\":\"PreferNoSchedule\"},"
	     "{\"key\":\"dedicated\",\"value\":\"gpu\",\"effect\":\"NoSchedule\"}]}," READY "}",
	     &n);
	const struct sched_taint *t = sched__fit_taints(&plain, &n.spec);
	assert_non_null(t);
	assert_string_equal(t->key, "dedicated");
	assert_null(sched__fit_taints(&tol, &n.spec));
	t = NULL;
	assert_int_equal(sched__filter(&plain, &n, &t), SCHED_FIT_TAINT);
	assert_string_equal(t->key, "dedicated");
	node_free(&n);

	node("{\"metadata\":{\"name\":\"n\"},\"spec\":{\"taints\":["
	     "{\"key\":\"evict\",\"value\":\"x\",\"effect\":\"NoExecute\"}]}," READY "}",
	     &n);
	assert_non_null(sched__fit_taints(&plain, &n.spec));
	assert_non_null(sched__fit_taints(&tol, &n.spec));
	node_free(&n);

	/* Not Ready: an implied not-ready (False) or unreachable taint. */
	node("{\"metadata\":{\"name\":\"n\"},\"status\":{\"conditions\":[{\"type\":\"Ready\","
	     "\"status\":\"False\"}],\"allocatable\":{\"cpu\":\"1\",\"pods\":\"5\"}}}",
	     &n);
	t = sched__fit_taints(&plain, &n.spec);
	assert_non_null(t);
	assert_string_equal(t->key, "node.kubernetes.io/not-ready");
	assert_null(sched__fit_taints(&tol, &n.spec));
	node_free(&n);
	node("{\"metadata\":{\"name\":\"n\"},\"status\":{}}", &n);
	t = sched__fit_taints(&tol, &n.spec);
	assert_non_null(t);
	assert_string_equal(t->key, "node.kubernetes.io/unreachable");
	node_free(&n);

	sched__pod_clear(&plain);
	sched__pod_clear(&tol);
}

static bool affinity(const char *pod_json, const char *node_json)
{
	struct sched_pod_spec p;
	struct sched_node n;
	pod(pod_json, &p);
	node(node_json, &n);
	bool ok = sched__fit_affinity(&p, &n.spec);
	sched__pod_clear(&p);
	node_free(&n);
	return ok;
}

#define AFF(terms) \
	"{\"spec\":{\"affinity\":{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution\":" \
	"{\"nodeSelectorTerms\":" terms "}}}}}"
#define EXPR(k, op, vals) "{\"key\":\"" k "\",\"operator\":\"" op "\",\"values\":" vals "}"
#define NODE_L "{\"metadata\":{\"name\":\"n1\",\"labels\":{\"zone\":\"a\",\"cores\":\"8\",\"disk\":\"ssd\"}}}"

static void test_filter_affinity(void **state)
{
	(void)state;
	/* nodeSelector */
	assert_true(affinity("{\"spec\":{\"nodeSelector\":{\"disk\":\"ssd\",\"zone\":\"a\"}}}", NODE_L));
	assert_false(affinity("{\"spec\":{\"nodeSelector\":{\"disk\":\"hdd\"}}}", NODE_L));
	assert_false(affinity("{\"spec\":{\"nodeSelector\":{\"gpu\":\"yes\"}}}", NODE_L));
	/* operators */
	assert_true(affinity(AFF("[{\"matchExpressions\":[" EXPR("zone", "In", "[\"b\",\"a\"]") "]}]"), NODE_L));
	assert_false(affinity(AFF("[{\"matchExpressions\":[" EXPR("zone", "In", "[\"b\"]") "]}]"), NODE_L));
	assert_true(affinity(AFF("[{\"matchExpressions\":[" EXPR("zone", "NotIn", "[\"b\"]") "]}]"), NODE_L));
	assert_false(affinity(AFF("[{\"matchExpressions\":[" EXPR("zone", "NotIn", "[\"a\"]") "]}]"), NODE_L));
	assert_true(affinity(AFF("[{\"matchExpressions\":[" EXPR("gpu", "NotIn", "[\"a\"]") "]}]"), NODE_L));
	assert_true(affinity(AFF("[{\"matchExpressions\":[" EXPR("disk", "Exists", "[]") "]}]"), NODE_L));
	assert_false(affinity(AFF("[{\"matchExpressions\":[" EXPR("gpu", "Exists", "[]") "]}]"), NODE_L));
	assert_true(affinity(AFF("[{\"matchExpressions\":[" EXPR("gpu", "DoesNotExist", "[]") "]}]"), NODE_L));
	assert_false(affinity(AFF("[{\"matchExpressions\":[" EXPR("disk", "DoesNotExist", "[]") "]}]"), NODE_L));
	assert_true(affinity(AFF("[{\"matchExpressions\":[" EXPR("cores", "Gt", "[\"4\"]") "]}]"), NODE_L));
	assert_false(affinity(AFF("[{\"matchExpressions\":[" EXPR("cores", "Gt", "[\"8\"]") "]}]"), NODE_L));
	assert_true(affinity(AFF("[{\"matchExpressions\":[" EXPR("cores", "Lt", "[\"9\"]") "]}]"), NODE_L));
	assert_false(affinity(AFF("[{\"matchExpressions\":[" EXPR("zone", "Lt", "[\"9\"]") "]}]"), NODE_L));
	assert_false(affinity(AFF("[{\"matchExpressions\":[" EXPR("zone", "Bogus", "[\"a\"]") "]}]"), NODE_L));
	/* expressions ANDed, terms ORed */
	assert_false(affinity(AFF("[{\"matchExpressions\":[" EXPR("zone", "In", "[\"a\"]") ","
				  EXPR("disk", "In", "[\"hdd\"]") "]}]"), NODE_L));
	assert_true(affinity(AFF("[{\"matchExpressions\":[" EXPR("disk", "In", "[\"hdd\"]") "]},"
				 "{\"matchExpressions\":[" EXPR("zone", "In", "[\"a\"]") "]}]"), NODE_L));
	/* matchFields on metadata.name */
	assert_true(affinity(AFF("[{\"matchFields\":[" EXPR("metadata.name", "In", "[\"n1\"]") "]}]"), NODE_L));
	assert_false(affinity(AFF("[{\"matchFields\":[" EXPR("metadata.name", "In", "[\"n2\"]") "]}]"), NODE_L));
	assert_true(affinity(AFF("[{\"matchFields\":[" EXPR("metadata.name", "NotIn", "[\"n2\"]") "]}]"), NODE_L));
	assert_false(affinity(AFF("[{\"matchFields\":[" EXPR("metadata.labels", "In", "[\"n1\"]") "]}]"), NODE_L));
	/* an empty term, and no terms, match nothing */
	assert_false(affinity(AFF("[{}]"), NODE_L));
	assert_false(affinity(AFF("[]"), NODE_L));
	/* selector AND affinity */
	assert_false(affinity("{\"spec\":{\"nodeSelector\":{\"disk\":\"hdd\"},\"affinity\":{\"nodeAffinity\":"
			      "{\"requiredDuringSchedulingIgnoredDuringExecution\":{\"nodeSelectorTerms\":"
			      "[{\"matchExpressions\":[" EXPR("zone", "In", "[\"a\"]") "]}]}}}}}",
			      NODE_L));
	/* only preferred affinity: no constraint */
	assert_true(affinity("{\"spec\":{\"affinity\":{\"nodeAffinity\":{\"preferredDuringSchedulingIgnoredDuringExecution\":[]}}}}",
			     NODE_L));
}

static void test_filter_ports(void **state)
{
	struct sched_port any80 = {80, SCHED_TCP, ""};
	struct sched_port lo80 = {80, SCHED_TCP, "127.0.0.1"};
	struct sched_port other80 = {80, SCHED_TCP, "127.0.0.2"};
	struct sched_port udp80 = {80, SCHED_UDP, ""};
	struct sched_port any81 = {81, SCHED_TCP, ""};
	struct sched_pod_spec p;
	struct sched_node n;
	(void)state;
	assert_true(sched__ports_conflict(&any80, &lo80));
	assert_true(sched__ports_conflict(&lo80, &any80));
	assert_true(sched__ports_conflict(&lo80, &lo80));
	assert_false(sched__ports_conflict(&lo80, &other80));
	assert_false(sched__ports_conflict(&any80, &udp80));
	assert_false(sched__ports_conflict(&any80, &any81));

	pod("{\"spec\":{\"containers\":[{\"ports\":[{\"containerPort\":80,\"hostPort\":80}]}]}}", &p);
	node("{\"metadata\":{\"name\":\"n\"}," READY "}", &n);
	assert_true(sched__fit_ports(&p, &n));
	n.ports = calloc(2, sizeof(*n.ports));
	n.ports[0] = udp80;
	n.n_ports = 1;
	assert_true(sched__fit_ports(&p, &n));
	n.ports[1] = lo80;
	n.n_ports = 2;
	assert_false(sched__fit_ports(&p, &n));
	assert_int_equal(sched__filter(&p, &n, NULL), SCHED_FIT_PORTS);
	sched__pod_clear(&p);
	node_free(&n);
}

static void test_filter_resources(void **state)
{
	struct sched_pod_spec p, zero;
	struct sched_node n;
	(void)state;
	pod("{\"spec\":{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"1\",\"memory\":\"1Gi\"}}}]}}", &p);
	pod("{\"spec\":{\"containers\":[{}]}}", &zero);
	node("{\"metadata\":{\"name\":\"n\"}," READY "}", &n);
	assert_int_equal(sched__fit_resources(&p, &n), 0);
	n.used.cpu = 3001;
	assert_int_equal(sched__fit_resources(&p, &n), SCHED_FIT_CPU);
	n.used.cpu = 3000; /* exactly what is left */
	assert_int_equal(sched__fit_resources(&p, &n), 0);
	n.used.mem = 7LL << 30 | 1;
	assert_int_equal(sched__fit_resources(&p, &n), SCHED_FIT_MEMORY);
	n.used.cpu = 4000;
	assert_int_equal(sched__fit_resources(&p, &n), SCHED_FIT_CPU | SCHED_FIT_MEMORY);
	/* a pod without requests still needs a pod slot */
	assert_int_equal(sched__fit_resources(&zero, &n), 0);
	n.used.pods = 110;
	assert_int_equal(sched__fit_resources(&zero, &n), SCHED_FIT_TOO_MANY_PODS);
	assert_int_equal(sched__filter(&p, &n, NULL),
			 SCHED_FIT_TOO_MANY_PODS | SCHED_FIT_CPU | SCHED_FIT_MEMORY);
	sched__pod_clear(&p);
	sched__pod_clear(&zero);
	node_free(&n);
}

static void test_filter_order(void **state)
{
	struct sched_pod_spec p;
	struct sched_node n;
	(void)state;
	/* Unschedulable and tainted and mismatched and full: the first
	 * failing filter (NodeUnschedulable) is the one reported. */
	pod("{\"spec\":{\"nodeSelector\":{\"x\":\"y\"},\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"64\"}}}]}}",
	    &p);
	node("{\"metadata\":{\"name\":\"n\"},\"spec\":{\"unschedulable\":true,\"taints\":[{\"key\":\"a\","
	     "\"effect\":\"NoSchedule\"}]}," READY "}",
	     &n);
	assert_int_equal(sched__filter(&p, &n, NULL), SCHED_FIT_UNSCHEDULABLE);
	n.spec.unschedulable = false;
	assert_int_equal(sched__filter(&p, &n, NULL), SCHED_FIT_TAINT);
	n.spec.n_taints = 0;
	assert_int_equal(sched__filter(&p, &n, NULL), SCHED_FIT_AFFINITY);
	/* A NodeAffinity verdict given by the caller stands in for the
	 * lookup, in the same place of the order. */
	assert_int_equal(sched__filter_with(&p, &n, -1, NULL), SCHED_FIT_AFFINITY);
	assert_int_equal(sched__filter_with(&p, &n, 0, NULL), SCHED_FIT_AFFINITY);
	assert_int_equal(sched__filter_with(&p, &n, 1, NULL), SCHED_FIT_CPU);
	n.spec.unschedulable = true;
	assert_int_equal(sched__filter_with(&p, &n, 0, NULL), SCHED_FIT_UNSCHEDULABLE);
	n.spec.unschedulable = false;
	n.spec.n_taints = 1; /* restored so that clear frees it */
	sched__pod_clear_constraints(&p);
	n.spec.taints[0].effect = SCHED_PREFER_NO_SCHEDULE;
	assert_int_equal(sched__filter(&p, &n, NULL), SCHED_FIT_CPU);
	sched__pod_clear(&p);
	node_free(&n);
}

/* ---------------------------------------------------------------- Scores */

static void test_score_least_allocated(void **state)
{
	struct sched_pod_spec p, zero;
	struct sched_node n;
	(void)state;
	pod("{\"spec\":{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"1\",\"memory\":\"2Gi\"}}}]}}", &p);
	pod("{\"spec\":{\"containers\":[{}]}}", &zero);
	node("{\"metadata\":{\"name\":\"n\"}," READY "}", &n);
	/* cpu (4-1)/4 = 75, memory (8-2)/8 = 75 */
	assert_int_equal(sched__score_least_allocated(&p, &n), 75);
	n.used_nz.cpu = 2000; /* cpu 25 */
	assert_int_equal(sched__score_least_allocated(&p, &n), 50);
	n.used_nz.cpu = 4000; /* cpu over: 0 */
	assert_int_equal(sched__score_least_allocated(&p, &n), 37);
	/* no requests: the defaults 100m / 200Mi count */
	n.used_nz.cpu = 0;
	assert_int_equal(sched__score_least_allocated(&zero, &n), (97 + 97) / 2);
	/* more used scores lower */
	struct sched_node busy = n;
	busy.used_nz.cpu = 1000;
	busy.used_nz.mem = 1LL << 30;
	assert_true(sched__score_least_allocated(&zero, &busy) <
		    sched__score_least_allocated(&zero, &n));
	/* a node with no allocatable scores 0 */
	busy.spec.alloc.cpu = 0;
	busy.spec.alloc.mem = 0;
	assert_int_equal(sched__score_least_allocated(&zero, &busy), 0);
	sched__pod_clear(&p);
	sched__pod_clear(&zero);
	node_free(&n);
}

static void test_score_spread(void **state)
{
	(void)state;
	assert_int_equal(sched__score_spread(0, 0), 100);
	assert_int_equal(sched__score_spread(0, 4), 100);
	assert_int_equal(sched__score_spread(1, 4), 75);
	assert_int_equal(sched__score_spread(4, 4), 0);
	assert_int_equal(sched__score_spread(3, 3), 0);
	assert_true(sched__score_spread(1, 3) > sched__score_spread(2, 3));
}

/* ---------------------------------------------------------------- Diagnosis */

static void test_diag_message(void **state)
{
	struct sched_diag d;
	char *msg;
	(void)state;
	sched__diag_init(&d);
	d.n_nodes = 3;
	assert_int_equal(sched__diag_add(&d, SCHED_FIT_CPU, NULL), 0);
	assert_int_equal(sched__diag_add(&d, SCHED_FIT_AFFINITY, NULL), 0);
	assert_int_equal(sched__diag_add(&d, SCHED_FIT_AFFINITY, NULL), 0);
	msg = sched__diag_message(&d);
	assert_string_equal(msg, "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't "
				 "match Pod's node affinity/selector.");
	free(msg);
	sched__diag_clear(&d);

	struct sched_taint t1 = {(char *)"dedicated", (char *)"gpu", SCHED_NO_SCHEDULE};
	struct sched_taint t2 = {(char *)"node.kubernetes.io/not-ready", (char *)"", SCHED_NO_SCHEDULE};
	sched__diag_init(&d);
	d.n_nodes = 5;
	sched__diag_add(&d, SCHED_FIT_TAINT, &t1);
	sched__diag_add(&d, SCHED_FIT_TAINT, &t2);
	sched__diag_add(&d, SCHED_FIT_TAINT, &t1);
	sched__diag_add(&d, SCHED_FIT_CPU | SCHED_FIT_MEMORY, NULL);
	sched__diag_add(&d, SCHED_FIT_UNSCHEDULABLE, NULL);
	msg = sched__diag_message(&d);
	assert_string_equal(msg, "0/5 nodes are available: 1 Insufficient cpu, 1 Insufficient "
				 "memory, 1 node(s) had untolerated taint "
				 "{node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable, 2 "
				 "node(s) had untolerated taint {dedicated: gpu}.");
	free(msg);
	sched__diag_clear(&d);

	sched__diag_init(&d);
	msg = sched__diag_message(&d);
	assert_string_equal(msg, "no nodes available to schedule pods");
	free(msg);
	sched__diag_clear(&d);
}

static void test_same_reasons(void **state)
{
	(void)state;
	assert_true(sched__same_reasons("0/3 nodes are available: 1 Insufficient cpu.",
					"0/14 nodes are available: 12 Insufficient cpu."));
	assert_false(sched__same_reasons("0/3 nodes are available: 3 Insufficient cpu.",
					 "0/3 nodes are available: 1 Insufficient cpu, 2 Too many "
					 "pods."));
	assert_false(sched__same_reasons("no nodes available to schedule pods",
					 "0/1 nodes are available: 1 Insufficient cpu."));
	assert_false(sched__same_reasons("0/1 nodes are available: 1 Insufficient cpu.",
					 "0/1 nodes are available: 1 Insufficient memory."));
	assert_false(sched__same_reasons("0/1 nodes", "0/1 nodes are"));
	assert_true(sched__same_reasons("", ""));
}

static void test_same_constraints(void **state)
{
	static const char *const same[] = {
		/* Owners and scoring defaults do not matter. */
		"{\"metadata\":{\"ownerReferences\":[{\"uid\":\"a\",\"controller\":true}]},"
		"\"spec\":{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"100m\"}}}],"
		"\"nodeSelector\":{\"disk\":\"ssd\"}}}",
		"{\"metadata\":{\"ownerReferences\":[{\"uid\":\"b\",\"controller\":true}]},"
		"\"spec\":{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"0.1\"}}}],"
		"\"nodeSelector\":{\"disk\":\"ssd\"}}}",
	};
	static const char *const differ[] = {
		"{\"spec\":{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"200m\"}}}],"
		"\"nodeSelector\":{\"disk\":\"ssd\"}}}",
		"{\"spec\":{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"100m\"}}}],"
		"\"nodeSelector\":{\"disk\":\"hdd\"}}}",
		"{\"spec\":{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"100m\"}},"
		"\"ports\":[{\"containerPort\":80,\"hostPort\":80}]}],"
		"\"nodeSelector\":{\"disk\":\"ssd\"}}}",
		"{\"spec\":{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"100m\"}}}],"
		"\"nodeSelector\":{\"disk\":\"ssd\"},"
		"\"tolerations\":[{\"key\":\"k\",\"operator\":\"Exists\"}]}}",
		"{\"spec\":{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"100m\"}}}],"
		"\"nodeSelector\":{\"disk\":\"ssd\"},\"affinity\":{\"nodeAffinity\":"
		"{\"requiredDuringSchedulingIgnoredDuringExecution\":{\"nodeSelectorTerms\":"
		"[{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"In\","
		"\"values\":[\"a\"]}]}]}}}}}",
		"{\"spec\":{\"containers\":[{\"resources\":{\"requests\":{\"cpu\":\"100m\"}}}],"
		"\"nodeSelector\":{\"disk\":\"ssd\"},\"affinity\":{\"nodeAffinity\":"
		"{\"requiredDuringSchedulingIgnoredDuringExecution\":{\"nodeSelectorTerms\":"
		"[{\"matchExpressions\":[{\"key\":\"zone\",\"operator\":\"In\","
		"\"values\":[\"b\"]}]}]}}}}}",
	};
	struct sched_pod_spec a, b, c;
	(void)state;

	pod(same[0], &a);
	pod(same[1], &b);
	assert_true(sched__same_constraints(&a, &b));
	assert_true(sched__same_constraints(&b, &a));
	for (size_t i = 0; i < sizeof(differ) / sizeof(differ[0]); i++) {
		pod(differ[i], &c);
		assert_false(sched__same_constraints(&a, &c));
		assert_false(sched__same_constraints(&c, &a));
		assert_true(sched__same_constraints(&c, &c));
		/* The two affinity variants differ only in a value. */
		if (i == 5) {
			struct sched_pod_spec d;
			pod(differ[4], &d);
			assert_false(sched__same_constraints(&c, &d));
			sched__pod_clear(&d);
		}
		sched__pod_clear(&c);
	}
	sched__pod_clear(&a);
	sched__pod_clear(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_quantity_cpu),
		cmocka_unit_test(test_quantity_bytes),
		cmocka_unit_test(test_quantity_invalid),
		cmocka_unit_test(test_quantity_json),
		cmocka_unit_test(test_pod_requests),
		cmocka_unit_test(test_pod_ports_owner_constraints),
		cmocka_unit_test(test_node_parse),
		cmocka_unit_test(test_tolerations),
		cmocka_unit_test(test_filter_unschedulable_and_taints),
		cmocka_unit_test(test_filter_affinity),
		cmocka_unit_test(test_filter_ports),
		cmocka_unit_test(test_filter_resources),
		cmocka_unit_test(test_filter_order),
		cmocka_unit_test(test_score_least_allocated),
		cmocka_unit_test(test_score_spread),
		cmocka_unit_test(test_diag_message),
		cmocka_unit_test(test_same_reasons),
		cmocka_unit_test(test_same_constraints),
	};
	return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
