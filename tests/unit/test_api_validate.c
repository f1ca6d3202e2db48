/* Unit tests of validation: good objects, each kind of cause with its
 * path, DNS names, labels, annotations and immutable fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/api/validate.h"

/* ---------------------------------------------------------------- Helpers */

static json_t *load(const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);
	if (!j) {
		fail_msg("bad JSON in test: %s", err.text);
	}
	return j;
}

/* Validates @text as @resource and returns the errors (caller closes). */
static void check(const char *resource, const char *text, unsigned flags, struct api_errors *e)
{
	const struct api_kind *k = api_kind_by_name(resource);
	assert_non_null(k);
	json_t *obj = load(text);
	api_errors_init(e);
	assert_int_equal(api_validate(k, obj, flags, e), 0);
	json_decref(obj);
}

static void dump(const struct api_errors *e)
{
	for (size_t i = 0; i < e->n; i++) {
		print_message("# cause %s %s: %s\n", api_cause_reason_name(e->causes[i].reason),
			      e->causes[i].field, e->causes[i].message);
	}
}

/* ---------------------------------------------------------------- Assertions */

#define ASSERT_VALID(resource, text)                 \
	do {                                         \
		struct api_errors e_;                \
		check(resource, text, API_VALIDATE_UNKNOWN, &e_); \
		dump(&e_);                           \
		assert_int_equal(e_.n, 0);           \
		assert_int_equal(e_.n_unknown, 0);   \
		api_errors_close(&e_);               \
	} while (0)

/* Exactly one cause, with this reason and field. */
#define ASSERT_CAUSE(resource, text, reason_, field_)          \
	do {                                                   \
		struct api_errors e_;                          \
		check(resource, text, 0, &e_);                 \
		dump(&e_);                                     \
		assert_int_equal(e_.n, 1);                     \
		assert_int_equal(e_.causes[0].reason, reason_); \
		assert_string_equal(e_.causes[0].field, field_); \
		api_errors_close(&e_);                         \
	} while (0)

#define POD(meta, spec) \
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{" meta "},\"spec\":{" spec "}}"
#define NS_META "\"name\":\"web\",\"namespace\":\"default\""
#define ONE_CONTAINER "\"containers\":[{\"name\":\"c\",\"image\":\"nginx\"}]"

/* ---------------------------------------------------------------- Tests */

static void good_objects(void **state)
{
	(void)state;
	ASSERT_VALID("pods", POD(NS_META ",\"labels\":{\"app\":\"web\",\"example.com/tier\":\"\"},"
				 "\"annotations\":{\"Example.com/Note\":\"x\"},\"creationTimestamp\":\"2024-01-02T03:04:05Z\"",
				 "\"containers\":[{\"name\":\"c\",\"image\":\"nginx:1.25\",\"ports\":[{\"containerPort\":80}],"
				 "\"resources\":{\"limits\":{\"cpu\":\"500m\",\"memory\":\"128Mi\"},\"requests\":{\"cpu\":0.5}},"
				 "\"livenessProbe\":{\"httpGet\":{\"port\":\"http\"}}}],\"terminationGracePeriodSeconds\":null"));
	ASSERT_VALID("deployments", "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{" NS_META "},"
				    "\"spec\":{\"replicas\":2,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
				    "\"strategy\":{\"rollingUpdate\":{\"maxSurge\":1,\"maxUnavailable\":\"25%\"}},"
				    "\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{" ONE_CONTAINER "}}}}");
	ASSERT_VALID("svc", "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{" NS_META "},"
			    "\"spec\":{\"ports\":[{\"port\":80,\"targetPort\":8080}],\"selector\":{\"app\":\"web\"}}}");
	ASSERT_VALID("ns", "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"team-a\"}}");
	ASSERT_VALID("no", "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"node-1.example.com\"},"
			   "\"status\":{\"capacity\":{\"cpu\":\"4\",\"memory\":\"8Gi\",\"pods\":\"110\"}}}");
	ASSERT_VALID("cm", "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{" NS_META "},"
			   "\"data\":{\"k\":\"v\"},\"binaryData\":{\"b\":\"AAEC\"}}");
	ASSERT_VALID("secret", "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{" NS_META "},"
			       "\"type\":\"Opaque\",\"data\":{\"p\":\"cGFzcw==\"}}");
	ASSERT_VALID("leases", "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":{" NS_META "},"
			       "\"spec\":{\"holderIdentity\":\"a\",\"renewTime\":\"2024-01-02T03:04:05.123456Z\"}}");
	ASSERT_VALID("endpointslices", "{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\","
				       "\"metadata\":{" NS_META "},\"addressType\":\"IPv4\","
				       "\"endpoints\":[{\"addresses\":[\"10.0.0.1\"]}],\"ports\":[{\"port\":80}]}");
	ASSERT_VALID("ing", "{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"Ingress\",\"metadata\":{" NS_META "},"
			    "\"spec\":{\"rules\":[{\"host\":\"a.example.com\",\"http\":{\"paths\":[{\"path\":\"/\","
			    "\"pathType\":\"Prefix\",\"backend\":{\"service\":{\"name\":\"s\",\"port\":{\"number\":80}}}}]}}]}}");
	ASSERT_VALID("pv", "{\"apiVersion\":\"v1\",\"kind\":\"PersistentVolume\",\"metadata\":{\"name\":\"pv1\"},"
			   "\"spec\":{\"capacity\":{\"storage\":\"1Gi\"},\"accessModes\":[\"ReadWriteOnce\"],"
			   "\"hostPath\":{\"path\":\"/data\"}}}");
	/* generateName stands for the name. */
	ASSERT_VALID("pods", POD("\"generateName\":\"web-\",\"namespace\":\"default\"", ONE_CONTAINER));
}

static void required_and_types(void **state)
{
	(void)state;
	ASSERT_CAUSE("pods", POD(NS_META, ""), API_CAUSE_REQUIRED, "spec.containers");
	ASSERT_CAUSE("pods", POD(NS_META, "\"containers\":[{\"image\":\"nginx\"}]"), API_CAUSE_REQUIRED,
		     "spec.containers[0].name");
	ASSERT_CAUSE("pods", POD(NS_META, "\"containers\":[{\"name\":\"c\",\"image\":5}]"),
		     API_CAUSE_TYPE_INVALID, "spec.containers[0].image");
	ASSERT_CAUSE("pods", POD(NS_META, "\"containers\":[{\"name\":\"c\",\"ports\":[{\"containerPort\":\"80\"}]}]"),
		     API_CAUSE_TYPE_INVALID, "spec.containers[0].ports[0].containerPort");
	ASSERT_CAUSE("pods", POD(NS_META, "\"containers\":[{\"name\":\"c\",\"ports\":[{\"containerPort\":4294967296}]}]"),
		     API_CAUSE_INVALID, "spec.containers[0].ports[0].containerPort");
	ASSERT_CAUSE("pods", POD(NS_META, ONE_CONTAINER ",\"hostNetwork\":\"yes\""), API_CAUSE_TYPE_INVALID,
		     "spec.hostNetwork");
	ASSERT_CAUSE("pods", POD(NS_META, "\"containers\":{}"), API_CAUSE_TYPE_INVALID, "spec.containers");
	ASSERT_CAUSE("pods", POD(NS_META, "\"containers\":[{\"name\":\"c\",\"resources\":{\"limits\":{\"memory\":\"lots\"}}}]"),
		     API_CAUSE_INVALID, "spec.containers[0].resources.limits[memory]");
	ASSERT_CAUSE("pods", POD(NS_META ",\"labels\":{\"a\":1}", ONE_CONTAINER), API_CAUSE_TYPE_INVALID,
		     "metadata.labels[a]");
	ASSERT_CAUSE("pods", POD(NS_META ",\"creationTimestamp\":\"yesterday\"", ONE_CONTAINER),
		     API_CAUSE_INVALID, "metadata.creationTimestamp");
	ASSERT_CAUSE("secret", "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{" NS_META "},"
			       "\"data\":{\"p\":\"not base64!\"}}", API_CAUSE_INVALID, "data[p]");
	ASSERT_CAUSE("deploy", "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{" NS_META "},"
			       "\"spec\":{\"replicas\":\"3\",\"selector\":{},\"template\":{}}}",
		     API_CAUSE_TYPE_INVALID, "spec.replicas");
	ASSERT_CAUSE("deploy", "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{" NS_META "},"
			       "\"spec\":{\"template\":{}}}", API_CAUSE_REQUIRED, "spec.selector");
	ASSERT_CAUSE("svc", "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{" NS_META "},"
			    "\"spec\":{\"ports\":[{\"port\":80,\"targetPort\":true}]}}",
		     API_CAUSE_TYPE_INVALID, "spec.ports[0].targetPort");
	ASSERT_CAUSE("pods", "[]", API_CAUSE_TYPE_INVALID, "");
}

static void api_version_and_kind(void **state)
{
	(void)state;
	ASSERT_CAUSE("pods", "{\"apiVersion\":\"apps/v1\",\"kind\":\"Pod\",\"metadata\":{" NS_META "},\"spec\":{" ONE_CONTAINER "}}",
		     API_CAUSE_INVALID, "apiVersion");
	ASSERT_CAUSE("pods", "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{" NS_META "},\"spec\":{" ONE_CONTAINER "}}",
		     API_CAUSE_INVALID, "kind");
	ASSERT_CAUSE("pods", "{\"kind\":\"Pod\",\"metadata\":{" NS_META "},\"spec\":{" ONE_CONTAINER "}}",
		     API_CAUSE_REQUIRED, "apiVersion");
	ASSERT_CAUSE("deploy", "{\"apiVersion\":\"v1\",\"kind\":\"Deployment\",\"metadata\":{" NS_META "},"
			       "\"spec\":{\"selector\":{},\"template\":{}}}", API_CAUSE_INVALID, "apiVersion");
}

static void unknown_fields(void **state)
{
	(void)state;
	struct api_errors e;
	const char *text = POD(NS_META ",\"colour\":\"red\"", "\"containers\":[{\"name\":\"c\",\"imagee\":\"x\"}],\"foo\":1");
	check("pods", text, API_VALIDATE_UNKNOWN, &e);
	assert_int_equal(e.n, 0);
	assert_int_equal(e.n_unknown, 3);
	assert_string_equal(e.unknown[0], "metadata.colour");
	assert_string_equal(e.unknown[1], "spec.containers[0].imagee");
	assert_string_equal(e.unknown[2], "spec.foo");
	api_errors_close(&e);
	check("pods", text, 0, &e);
	assert_int_equal(e.n_unknown, 0);
	api_errors_close(&e);
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void names(void **state)
{
	(void)state;
	/* Subdomain (pods), label (namespaces, statefulsets), DNS-1035 (services). */
	ASSERT_VALID("pods", POD("\"name\":\"a.b-c.1\",\"namespace\":\"default\"", ONE_CONTAINER));
	ASSERT_CAUSE("pods", POD("\"name\":\"Web\",\"namespace\":\"default\"", ONE_CONTAINER),
		     API_CAUSE_INVALID, "metadata.name");
	ASSERT_CAUSE("pods", POD("\"name\":\"web_1\",\"namespace\":\"default\"", ONE_CONTAINER),
		     API_CAUSE_INVALID, "metadata.name");
	ASSERT_CAUSE("pods", POD("\"name\":\"-web\",\"namespace\":\"default\"", ONE_CONTAINER),
		     API_CAUSE_INVALID, "metadata.name");
	ASSERT_CAUSE("pods", POD("\"name\":\"web.\",\"namespace\":\"default\"", ONE_CONTAINER),
		     API_CAUSE_INVALID, "metadata.name");
	ASSERT_CAUSE("pods", POD("\"name\":\"a..b\",\"namespace\":\"default\"", ONE_CONTAINER),
		     API_CAUSE_INVALID, "metadata.name");
	ASSERT_CAUSE("pods", POD("\"name\":\"\",\"namespace\":\"default\"", ONE_CONTAINER),
		     API_CAUSE_REQUIRED, "metadata.name");
	ASSERT_CAUSE("pods", POD("\"generateName\":\"Web-\",\"namespace\":\"default\"", ONE_CONTAINER),
		     API_CAUSE_INVALID, "metadata.generateName");
	ASSERT_CAUSE("ns", "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"a.b\"}}",
		     API_CAUSE_INVALID, "metadata.name");
	ASSERT_CAUSE("svc", "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"1web\",\"namespace\":\"d\"}}",
		     API_CAUSE_INVALID, "metadata.name");
	ASSERT_VALID("pods", POD("\"name\":\"1web\",\"namespace\":\"default\"", ONE_CONTAINER));
	ASSERT_CAUSE("sts", "{\"apiVersion\":\"apps/v1\",\"kind\":\"StatefulSet\",\"metadata\":{\"name\":\"a.b\",\"namespace\":\"d\"},"
			    "\"spec\":{\"selector\":{},\"template\":{},\"serviceName\":\"s\"}}",
		     API_CAUSE_INVALID, "metadata.name");

	/* Lengths: a label is at most 63, a subdomain at most 253. */
	char *l63 = repeat('a', 63), *l64 = repeat('a', 64);
	char buf[2048];
	snprintf(buf, sizeof(buf), "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\"}}", l63);
	ASSERT_VALID("ns", buf);
	snprintf(buf, sizeof(buf), "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"%s\"}}", l64);
	ASSERT_CAUSE("ns", buf, API_CAUSE_INVALID, "metadata.name");
	char sub253[254], sub255[256];
	snprintf(sub253, sizeof(sub253), "%s.%s.%s.%s", l63, l63, l63, l63 + 2); /* 63*3+61+3 = 253 */
	snprintf(sub255, sizeof(sub255), "%s.%s.%s.%s", l63, l63, l63, l63);     /* 255 */
	assert_int_equal(strlen(sub253), 253);
	assert_null(api_check_dns1123_subdomain(sub253));
	assert_non_null(api_check_dns1123_subdomain(sub255));
	snprintf(buf, sizeof(buf), POD("\"name\":\"%s\",\"namespace\":\"default\"", ONE_CONTAINER), sub253);
	ASSERT_VALID("pods", buf);
	snprintf(buf, sizeof(buf), POD("\"name\":\"%s\",\"namespace\":\"default\"", ONE_CONTAINER), l64);
	ASSERT_VALID("pods", buf); /* a subdomain's one label may not exceed 63 in DNS, but Kubernetes allows it */
	free(l63);
	free(l64);

	/* Namespace: required for namespaced kinds, a label, forbidden on cluster kinds. */
	ASSERT_CAUSE("pods", POD("\"name\":\"web\"", ONE_CONTAINER), API_CAUSE_REQUIRED, "metadata.namespace");
	ASSERT_CAUSE("pods", POD("\"name\":\"web\",\"namespace\":\"a.b\"", ONE_CONTAINER), API_CAUSE_INVALID,
		     "metadata.namespace");
	ASSERT_CAUSE("no", "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"n\",\"namespace\":\"default\"}}",
		     API_CAUSE_FORBIDDEN, "metadata.namespace");

	/* API_VALIDATE_NO_NAME: the name comes later. */
	struct api_errors e;
	check("pods", POD("\"namespace\":\"default\"", ONE_CONTAINER), API_VALIDATE_NO_NAME, &e);
	assert_int_equal(e.n, 0);
	api_errors_close(&e);
}

static void labels_and_annotations(void **state)
{
	(void)state;
	static const char *const good_keys[] = { "app", "a.b_c-d", "example.com/app", "A1", "k8s.io/x.y", NULL };
	static const char *const bad_keys[] = { "-app", "app-", "a/b/c", "/app", "example.com/", "Example.com/a",
						"a b", "example_com/a", NULL };
	char buf[1024];
	for (const char *const *k = good_keys; *k; k++) {
		assert_null(api_check_qualified_name(*k));
		snprintf(buf, sizeof(buf), POD(NS_META ",\"labels\":{\"%s\":\"v\"}", ONE_CONTAINER), *k);
		ASSERT_VALID("pods", buf);
	}
	for (const char *const *k = bad_keys; *k; k++) {
		if (!api_check_qualified_name(*k)) {
			fail_msg("key %s accepted", *k);
		}
		snprintf(buf, sizeof(buf), POD(NS_META ",\"labels\":{\"%s\":\"v\"}", ONE_CONTAINER), *k);
		ASSERT_CAUSE("pods", buf, API_CAUSE_INVALID, "metadata.labels");
	}
	char *v64 = repeat('v', 64);
	assert_non_null(api_check_qualified_name(v64)); /* name part > 63 */
	assert_non_null(api_check_label_value(v64));
	v64[63] = '\0';
	assert_null(api_check_label_value(v64));
	free(v64);
	assert_null(api_check_label_value(""));
	assert_null(api_check_label_value("a.B_c-1"));
	assert_non_null(api_check_label_value("a b"));
	assert_non_null(api_check_label_value("-a"));
	ASSERT_CAUSE("pods", POD(NS_META ",\"labels\":{\"app\":\"a/b\"}", ONE_CONTAINER), API_CAUSE_INVALID,
		     "metadata.labels");

	/* Annotation keys are checked in lower case; values are free. */
	ASSERT_VALID("pods", POD(NS_META ",\"annotations\":{\"Example.COM/Key\":\"any value / at all\"}", ONE_CONTAINER));
	ASSERT_CAUSE("pods", POD(NS_META ",\"annotations\":{\"bad key\":\"x\"}", ONE_CONTAINER), API_CAUSE_INVALID,
		     "metadata.annotations");

	/* Total size of annotations: 256 KiB. */
	size_t big = 256 * 1024 - 1;
	char *val = repeat('x', big);
	size_t tl = big + 256;
	char *text = malloc(tl);
	snprintf(text, tl, POD(NS_META ",\"annotations\":{\"k\":\"%s\"}", ONE_CONTAINER), val);
	ASSERT_VALID("pods", text); /* 1 + 262143 bytes */
	snprintf(text, tl, POD(NS_META ",\"annotations\":{\"kk\":\"%s\"}", ONE_CONTAINER), val);
	ASSERT_CAUSE("pods", text, API_CAUSE_TOO_LONG, "metadata.annotations");
	free(text);
	free(val);

	ASSERT_CAUSE("pods", POD(NS_META ",\"finalizers\":[\"example.com/f\",\"bad f\"]", ONE_CONTAINER),
		     API_CAUSE_INVALID, "metadata.finalizers[1]");
}

/* Validates an update and returns the number of causes; the first cause's
 * reason and field go to the out-parameters. */
static size_t update(const char *resource, const char *old_text, const char *new_text,
		     enum api_cause_reason *reason, char *field, size_t size)
{
	const struct api_kind *k = api_kind_by_name(resource);
	json_t *a = load(old_text);
	json_t *b = load(new_text);
	struct api_errors e;
	api_errors_init(&e);
	assert_int_equal(api_validate_update(k, a, b, 0, &e), 0);
	dump(&e);
	size_t n = e.n;
	if (n > 0) {
		*reason = e.causes[0].reason;
		snprintf(field, size, "%s", e.causes[0].field);
	}
	api_errors_close(&e);
	json_decref(a);
	json_decref(b);
	return n;
}

#define DEPLOY(meta, selector, replicas)                                                          \
	"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{" meta "},\"spec\":{" \
	"\"replicas\":" replicas ",\"selector\":{\"matchLabels\":{\"app\":\"" selector "\"}},"    \
	"\"template\":{\"spec\":{" ONE_CONTAINER "}}}}"

static void immutable_fields(void **state)
{
	(void)state;
	enum api_cause_reason r;
	char f[256];
#define m NS_META ",\"uid\":\"u1\",\"creationTimestamp\":\"2024-01-02T03:04:05Z\""

	assert_int_equal(update("deploy", DEPLOY(m, "web", "1"), DEPLOY(m, "web", "5"), &r, f, sizeof(f)), 0);
	assert_int_equal(update("deploy", DEPLOY(m, "web", "1"), DEPLOY(m, "api", "1"), &r, f, sizeof(f)), 1);
	assert_int_equal(r, API_CAUSE_INVALID);
	assert_string_equal(f, "spec.selector");

	/* uid and creationTimestamp may be left out, not changed. */
	assert_int_equal(update("deploy", DEPLOY(m, "web", "1"), DEPLOY(NS_META, "web", "1"), &r, f, sizeof(f)), 0);
	assert_int_equal(update("deploy", DEPLOY(m, "web", "1"),
				DEPLOY(NS_META ",\"uid\":\"u2\"", "web", "1"), &r, f, sizeof(f)), 1);
	assert_string_equal(f, "metadata.uid");
	assert_int_equal(update("deploy", DEPLOY(m, "web", "1"),
				DEPLOY("\"name\":\"other\",\"namespace\":\"default\"", "web", "1"), &r, f, sizeof(f)), 1);
	assert_string_equal(f, "metadata.name");

	/* A pod may change its images, not its node. */
	const char *p1 = POD(NS_META, "\"containers\":[{\"name\":\"c\",\"image\":\"nginx:1\"}],\"nodeName\":\"n1\"");
	const char *p2 = POD(NS_META, "\"containers\":[{\"name\":\"c\",\"image\":\"nginx:2\"}],\"nodeName\":\"n1\"");
	const char *p3 = POD(NS_META, "\"containers\":[{\"name\":\"c\",\"image\":\"nginx:1\"}],\"nodeName\":\"n2\"");
	assert_int_equal(update("pods", p1, p2, &r, f, sizeof(f)), 0);
	assert_int_equal(update("pods", p1, p3, &r, f, sizeof(f)), 1);
	assert_int_equal(r, API_CAUSE_FORBIDDEN);
	assert_string_equal(f, "spec");

	/* Service clusterIP: immutable once set. */
#define SVC(ip) "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{" NS_META "},\"spec\":{" ip "\"ports\":[{\"port\":80}]}}"
	assert_int_equal(update("svc", SVC(""), SVC("\"clusterIP\":\"10.0.0.1\","), &r, f, sizeof(f)), 0);
	assert_int_equal(update("svc", SVC("\"clusterIP\":\"10.0.0.1\","), SVC("\"clusterIP\":\"10.0.0.1\","), &r, f, sizeof(f)), 0);
	assert_int_equal(update("svc", SVC("\"clusterIP\":\"10.0.0.1\","), SVC("\"clusterIP\":\"10.0.0.2\","), &r, f, sizeof(f)), 1);
	assert_string_equal(f, "spec.clusterIP");

	/* An immutable ConfigMap keeps its data. */
#define CM(imm, v) "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{" NS_META "}," imm "\"data\":{\"k\":\"" v "\"}}"
	assert_int_equal(update("cm", CM("", "1"), CM("", "2"), &r, f, sizeof(f)), 0);
	assert_int_equal(update("cm", CM("", "1"), CM("\"immutable\":true,", "1"), &r, f, sizeof(f)), 0);
	assert_int_equal(update("cm", CM("\"immutable\":true,", "1"), CM("\"immutable\":true,", "2"), &r, f, sizeof(f)), 1);
	assert_string_equal(f, "data");
	assert_int_equal(update("cm", CM("\"immutable\":true,", "1"), CM("", "1"), &r, f, sizeof(f)), 1);
	assert_string_equal(f, "immutable");

	/* StatefulSet: serviceName is fixed, replicas are not. */
#define STS(svc, n) "{\"apiVersion\":\"apps/v1\",\"kind\":\"StatefulSet\",\"metadata\":{" NS_META "},\"spec\":{" \
	"\"serviceName\":\"" svc "\",\"replicas\":" n ",\"selector\":{},\"template\":{}}}"
	assert_int_equal(update("sts", STS("a", "1"), STS("a", "3"), &r, f, sizeof(f)), 0);
	assert_int_equal(update("sts", STS("a", "1"), STS("b", "1"), &r, f, sizeof(f)), 1);
	assert_string_equal(f, "spec");

	/* EndpointSlice addressType; Node podCIDR once set; Secret type. */
#define EPS(t) "{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\",\"metadata\":{" NS_META "},\"addressType\":\"" t "\",\"endpoints\":[]}"
	assert_int_equal(update("endpointslices", EPS("IPv4"), EPS("IPv6"), &r, f, sizeof(f)), 1);
	assert_string_equal(f, "addressType");
#define NODE(c) "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"n\"},\"spec\":{" c "}}"
	assert_int_equal(update("no", NODE(""), NODE("\"podCIDR\":\"10.1.0.0/24\""), &r, f, sizeof(f)), 0);
	assert_int_equal(update("no", NODE("\"podCIDR\":\"10.1.0.0/24\""), NODE("\"podCIDR\":\"10.2.0.0/24\""), &r, f, sizeof(f)), 1);
	assert_string_equal(f, "spec.podCIDR");
#define SECRET(t) "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{" NS_META "},\"type\":\"" t "\"}"
	assert_int_equal(update("secret", SECRET("Opaque"), SECRET("kubernetes.io/tls"), &r, f, sizeof(f)), 1);
	assert_string_equal(f, "type");
}

static void messages_and_causes(void **state)
{
	(void)state;
	struct api_errors e;
	check("pods", POD("\"name\":\"Web\",\"namespace\":\"default\"", "\"containers\":[{\"image\":\"x\"}]"), 0, &e);
	assert_int_equal(e.n, 2);
	assert_string_equal(e.causes[0].field, "metadata.name");
	assert_true(strncmp(e.causes[0].message, "Invalid value: \"Web\": a lowercase RFC 1123 subdomain", 52) == 0);
	assert_string_equal(e.causes[1].message, "Required value");
	char *msg = api_errors_message(&e, "Pod", "Web");
	assert_true(strncmp(msg, "Pod \"Web\" is invalid: [metadata.name: Invalid value: \"Web\"", 57) == 0);
	assert_non_null(strstr(msg, ", spec.containers[0].name: Required value]"));
	free(msg);
	json_t *causes = api_errors_causes_json(&e);
	assert_int_equal(json_array_size(causes), 2);
	json_t *c = json_array_get(causes, 1);
	assert_string_equal(json_string_value(json_object_get(c, "reason")), "FieldValueRequired");
	assert_string_equal(json_string_value(json_object_get(c, "field")), "spec.containers[0].name");
	assert_string_equal(json_string_value(json_object_get(c, "message")), "Required value");
	json_decref(causes);
	api_errors_close(&e);

	/* One cause: no brackets.  NotSupported and Forbidden texts. */
	api_errors_init(&e);
	json_t *v = json_string("Sometimes");
	assert_int_equal(api_errors_add(&e, API_CAUSE_NOT_SUPPORTED, "spec.restartPolicy", v,
					"\"Always\", \"OnFailure\", \"Never\""), 0);
	json_decref(v);
	assert_string_equal(e.causes[0].message,
			    "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"");
	assert_string_equal(api_cause_reason_name(e.causes[0].reason), "FieldValueNotSupported");
	msg = api_errors_message(&e, "Pod", "p");
	assert_string_equal(msg, "Pod \"p\" is invalid: spec.restartPolicy: Unsupported value: \"Sometimes\": "
				 "supported values: \"Always\", \"OnFailure\", \"Never\"");
	free(msg);
	api_errors_close(&e);
	api_errors_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_objects),
		cmocka_unit_test(required_and_types),
		cmocka_unit_test(api_version_and_kind),
		cmocka_unit_test(unknown_fields),
		cmocka_unit_test(names),
		cmocka_unit_test(labels_and_annotations),
		cmocka_unit_test(immutable_fields),
		cmocka_unit_test(messages_and_causes),
	};
	return cmocka_run_group_tests_name("api_validate", tests, NULL, NULL);
}
