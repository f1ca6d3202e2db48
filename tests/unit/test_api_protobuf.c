/* Unit tests of the protobuf body decoder (src/api/protobuf.c). */
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

#include "src/api/protobuf.h"

/* ------------------------------------------------------------ Fixtures */

/* Bodies captured from kubectl v1.32.4 (`kubectl create ...` against a
 * recording HTTP server on loopback):
 *   create namespace x
 *   create configmap cm1 -n x --from-literal=a=b --from-literal=key2=value2
 *       --from-file=bin=FILE   (FILE holds 00 ff fe " binary" 01)
 *   create secret generic s1 -n x --from-literal=user=admin
 *       --from-literal=pass='p@ss w0rd'
 *   create service clusterip svc1 -n x --tcp=5678:8080 --tcp=443:https
 *   create deployment web -n x --image=nginx:1.27 --replicas=3 --port=80
 *   create deployment d0 -n x --image=busybox --replicas=0 -- sleep 3600 */
/* api/v1/namespaces */
static const uint8_t kubectl_ns[] = {
	0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0f, 0x0a, 0x02, 0x76, 0x31, 0x12, 0x09,
	0x4e, 0x61, 0x6d, 0x65, 0x73, 0x70, 0x61, 0x63, 0x65, 0x12, 0x19, 0x0a,
	0x11, 0x0a, 0x01, 0x78, 0x12, 0x00, 0x1a, 0x00, 0x22, 0x00, 0x2a, 0x00,
	0x32, 0x00, 0x38, 0x00, 0x42, 0x00, 0x12, 0x00, 0x1a, 0x02, 0x0a, 0x00,
	0x1a, 0x00, 0x22, 0x00,
};

/* api/v1/namespaces/x/configmaps */
static const uint8_t kubectl_cm[] = {
	0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0f, 0x0a, 0x02, 0x76, 0x31, 0x12, 0x09,
	0x43, 0x6f, 0x6e, 0x66, 0x69, 0x67, 0x4d, 0x61, 0x70, 0x12, 0x42, 0x0a,
	0x14, 0x0a, 0x03, 0x63, 0x6d, 0x31, 0x12, 0x00, 0x1a, 0x01, 0x78, 0x22,
	0x00, 0x2a, 0x00, 0x32, 0x00, 0x38, 0x00, 0x42, 0x00, 0x12, 0x06, 0x0a,
	0x01, 0x61, 0x12, 0x01, 0x62, 0x12, 0x0e, 0x0a, 0x04, 0x6b, 0x65, 0x79,
	0x32, 0x12, 0x06, 0x76, 0x61, 0x6c, 0x75, 0x65, 0x32, 0x1a, 0x12, 0x0a,
	0x03, 0x62, 0x69, 0x6e, 0x12, 0x0b, 0x00, 0xff, 0xfe, 0x20, 0x62, 0x69,
	0x6e, 0x61, 0x72, 0x79, 0x01, 0x1a, 0x00, 0x22, 0x00,
};

/* api/v1/namespaces/x/secrets */
static const uint8_t kubectl_secret[] = {
	0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0c, 0x0a, 0x02, 0x76, 0x31, 0x12, 0x06,
	0x53, 0x65, 0x63, 0x72, 0x65, 0x74, 0x12, 0x39, 0x0a, 0x13, 0x0a, 0x02,
	0x73, 0x31, 0x12, 0x00, 0x1a, 0x01, 0x78, 0x22, 0x00, 0x2a, 0x00, 0x32,
	0x00, 0x38, 0x00, 0x42, 0x00, 0x12, 0x11, 0x0a, 0x04, 0x70, 0x61, 0x73,
	0x73, 0x12, 0x09, 0x70, 0x40, 0x73, 0x73, 0x20, 0x77, 0x30, 0x72, 0x64,
	0x12, 0x0d, 0x0a, 0x04, 0x75, 0x73, 0x65, 0x72, 0x12, 0x05, 0x61, 0x64,
	0x6d, 0x69, 0x6e, 0x1a, 0x00, 0x1a, 0x00, 0x22, 0x00,
};

/* api/v1/namespaces/x/services */
static const uint8_t kubectl_svc[] = {
	0x6b, 0x38, 0x73, 0x00, 0x0a, 0x0d, 0x0a, 0x02, 0x76, 0x31, 0x12, 0x07,
	0x53, 0x65, 0x72, 0x76, 0x69, 0x63, 0x65, 0x12, 0x94, 0x01, 0x0a, 0x22,
	0x0a, 0x04, 0x73, 0x76, 0x63, 0x31, 0x12, 0x00, 0x1a, 0x01, 0x78, 0x22,
	0x00, 0x2a, 0x00, 0x32, 0x00, 0x38, 0x00, 0x42, 0x00, 0x5a, 0x0b, 0x0a,
	0x03, 0x61, 0x70, 0x70, 0x12, 0x04, 0x73, 0x76, 0x63, 0x31, 0x12, 0x6a,
	0x0a, 0x1e, 0x0a, 0x09, 0x35, 0x36, 0x37, 0x38, 0x2d, 0x38, 0x30, 0x38,
	0x30, 0x12, 0x03, 0x54, 0x43, 0x50, 0x18, 0xae, 0x2c, 0x22, 0x07, 0x08,
	0x00, 0x10, 0x90, 0x3f, 0x1a, 0x00, 0x28, 0x00, 0x0a, 0x22, 0x0a, 0x09,
	0x34, 0x34, 0x33, 0x2d, 0x68, 0x74, 0x74, 0x70, 0x73, 0x12, 0x03, 0x54,
	0x43, 0x50, 0x18, 0xbb, 0x03, 0x22, 0x0b, 0x08, 0x01, 0x10, 0x00, 0x1a,
	0x05, 0x68, 0x74, 0x74, 0x70, 0x73, 0x28, 0x00, 0x12, 0x0b, 0x0a, 0x03,
	0x61, 0x70, 0x70, 0x12, 0x04, 0x73, 0x76, 0x63, 0x31, 0x1a, 0x00, 0x22,
	0x09, 0x43, 0x6c, 0x75, 0x73, 0x74, 0x65, 0x72, 0x49, 0x50, 0x3a, 0x00,
	0x42, 0x00, 0x52, 0x00, 0x5a, 0x00, 0x60, 0x00, 0x68, 0x00, 0x1a, 0x02,
	0x0a, 0x00, 0x1a, 0x00, 0x22, 0x00,
};

/* apis/apps/v1/namespaces/x/deployments */
static const uint8_t kubectl_deploy[] = {
	0x6b, 0x38, 0x73, 0x00, 0x0a, 0x15, 0x0a, 0x07, 0x61, 0x70, 0x70, 0x73,
	0x2f, 0x76, 0x31, 0x12, 0x0a, 0x44, 0x65, 0x70, 0x6c, 0x6f, 0x79, 0x6d,
	0x65, 0x6e, 0x74, 0x12, 0xbe, 0x01, 0x0a, 0x20, 0x0a, 0x03, 0x77, 0x65,
	0x62, 0x12, 0x00, 0x1a, 0x01, 0x78, 0x22, 0x00, 0x2a, 0x00, 0x32, 0x00,
	0x38, 0x00, 0x42, 0x00, 0x5a, 0x0a, 0x0a, 0x03, 0x61, 0x70, 0x70, 0x12,
	0x03, 0x77, 0x65, 0x62, 0x12, 0x8b, 0x01, 0x08, 0x03, 0x12, 0x0c, 0x0a,
	0x0a, 0x0a, 0x03, 0x61, 0x70, 0x70, 0x12, 0x03, 0x77, 0x65, 0x62, 0x1a,
	0x71, 0x0a, 0x1c, 0x0a, 0x00, 0x12, 0x00, 0x1a, 0x00, 0x22, 0x00, 0x2a,
	0x00, 0x32, 0x00, 0x38, 0x00, 0x42, 0x00, 0x5a, 0x0a, 0x0a, 0x03, 0x61,
	0x70, 0x70, 0x12, 0x03, 0x77, 0x65, 0x62, 0x12, 0x51, 0x12, 0x33, 0x0a,
	0x05, 0x6e, 0x67, 0x69, 0x6e, 0x78, 0x12, 0x0a, 0x6e, 0x67, 0x69, 0x6e,
	0x78, 0x3a, 0x31, 0x2e, 0x32, 0x37, 0x2a, 0x00, 0x32, 0x0a, 0x0a, 0x00,
	0x10, 0x00, 0x18, 0x50, 0x22, 0x00, 0x2a, 0x00, 0x42, 0x00, 0x6a, 0x00,
	0x72, 0x00, 0x80, 0x01, 0x00, 0x88, 0x01, 0x00, 0x90, 0x01, 0x00, 0xa2,
	0x01, 0x00, 0x1a, 0x00, 0x32, 0x00, 0x42, 0x00, 0x4a, 0x00, 0x52, 0x00,
	0x58, 0x00, 0x60, 0x00, 0x68, 0x00, 0x82, 0x01, 0x00, 0x8a, 0x01, 0x00,
	0x9a, 0x01, 0x00, 0xc2, 0x01, 0x00, 0x22, 0x02, 0x0a, 0x00, 0x28, 0x00,
	0x38, 0x00, 0x1a, 0x0c, 0x08, 0x00, 0x10, 0x00, 0x18, 0x00, 0x20, 0x00,
	0x28, 0x00, 0x38, 0x00, 0x1a, 0x00, 0x22, 0x00,
};

/* apis/apps/v1/namespaces/x/deployments */
static const uint8_t kubectl_deploy0[] = {
	0x6b, 0x38, 0x73, 0x00, 0x0a, 0x15, 0x0a, 0x07, 0x61, 0x70, 0x70, 0x73,
	0x2f, 0x76, 0x31, 0x12, 0x0a, 0x44, 0x65, 0x70, 0x6c, 0x6f, 0x79, 0x6d,
	0x65, 0x6e, 0x74, 0x12, 0xba, 0x01, 0x0a, 0x1e, 0x0a, 0x02, 0x64, 0x30,
	0x12, 0x00, 0x1a, 0x01, 0x78, 0x22, 0x00, 0x2a, 0x00, 0x32, 0x00, 0x38,
	0x00, 0x42, 0x00, 0x5a, 0x09, 0x0a, 0x03, 0x61, 0x70, 0x70, 0x12, 0x02,
	0x64, 0x30, 0x12, 0x89, 0x01, 0x08, 0x00, 0x12, 0x0b, 0x0a, 0x09, 0x0a,
	0x03, 0x61, 0x70, 0x70, 0x12, 0x02, 0x64, 0x30, 0x1a, 0x70, 0x0a, 0x1b,
	0x0a, 0x00, 0x12, 0x00, 0x1a, 0x00, 0x22, 0x00, 0x2a, 0x00, 0x32, 0x00,
	0x38, 0x00, 0x42, 0x00, 0x5a, 0x09, 0x0a, 0x03, 0x61, 0x70, 0x70, 0x12,
	0x02, 0x64, 0x30, 0x12, 0x51, 0x12, 0x33, 0x0a, 0x07, 0x62, 0x75, 0x73,
	0x79, 0x62, 0x6f, 0x78, 0x12, 0x07, 0x62, 0x75, 0x73, 0x79, 0x62, 0x6f,
	0x78, 0x1a, 0x05, 0x73, 0x6c, 0x65, 0x65, 0x70, 0x1a, 0x04, 0x33, 0x36,
	0x30, 0x30, 0x2a, 0x00, 0x42, 0x00, 0x6a, 0x00, 0x72, 0x00, 0x80, 0x01,
	0x00, 0x88, 0x01, 0x00, 0x90, 0x01, 0x00, 0xa2, 0x01, 0x00, 0x1a, 0x00,
	0x32, 0x00, 0x42, 0x00, 0x4a, 0x00, 0x52, 0x00, 0x58, 0x00, 0x60, 0x00,
	0x68, 0x00, 0x82, 0x01, 0x00, 0x8a, 0x01, 0x00, 0x9a, 0x01, 0x00, 0xc2,
	0x01, 0x00, 0x22, 0x02, 0x0a, 0x00, 0x28, 0x00, 0x38, 0x00, 0x1a, 0x0c,
	0x08, 0x00, 0x10, 0x00, 0x18, 0x00, 0x20, 0x00, 0x28, 0x00, 0x38, 0x00,
	0x1a, 0x00, 0x22, 0x00,
};


/* ------------------------------------------------------- Helper macros */

/* A growing protobuf writer for hand-built messages. */
struct pb {
	uint8_t *d;
	size_t n, cap;
};

static void pb_raw(struct pb *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 16;
		b->d = realloc(b->d, b->cap);
		assert_non_null(b->d);
	}
	if (n > 0)
		memcpy(b->d + b->n, p, n);
	b->n += n;
}

static void pb_varint(struct pb *b, uint64_t v)
{
	uint8_t c;

	do {
		c = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v != 0)
			c |= 0x80;
		pb_raw(b, &c, 1);
	} while (v != 0);
}

static void pb_key(struct pb *b, uint32_t num, unsigned wt)
{
	pb_varint(b, ((uint64_t)num << 3) | wt);
}

static void pb_int(struct pb *b, uint32_t num, int64_t v)
{
	pb_key(b, num, 0);
	pb_varint(b, (uint64_t)v);
}

static void pb_bytes(struct pb *b, uint32_t num, const void *p, size_t n)
{
	pb_key(b, num, 2);
	pb_varint(b, n);
	pb_raw(b, p, n);
}

static void pb_str(struct pb *b, uint32_t num, const char *s)
{
	pb_bytes(b, num, s, strlen(s));
}

/* Appends @sub as message field @num and frees it. */
static void pb_msg(struct pb *b, uint32_t num, struct pb *sub)
{
	pb_bytes(b, num, sub->d, sub->n);
	free(sub->d);
	memset(sub, 0, sizeof(*sub));
}

static void pb_map(struct pb *b, uint32_t num, const char *k, const char *v)
{
	struct pb e = {0};
	pb_str(&e, 1, k);
	pb_str(&e, 2, v);
	pb_msg(b, num, &e);
}

/* An IntOrString message: type 0 with @i, or type 1 with @s. */
static void pb_intstr(struct pb *b, uint32_t num, const char *s, int32_t i)
{
	struct pb m = {0};
	pb_int(&m, 1, s != NULL ? 1 : 0);
	pb_int(&m, 2, s != NULL ? 0 : i);
	pb_str(&m, 3, s != NULL ? s : "");
	pb_msg(b, num, &m);
}

static void pb_quantity_map(struct pb *b, uint32_t num, const char *k, const char *q)
{
	struct pb e = {0}, v = {0};
	pb_str(&e, 1, k);
	pb_str(&v, 1, q);
	pb_msg(&e, 2, &v);
	pb_msg(b, num, &e);
}

/* The body: magic, then Unknown{typeMeta, raw, "", ""} as kubectl writes. */
static struct pb pb_envelope(const char *api_version, const char *kind, struct pb *raw)
{
	struct pb b = {0}, tm = {0};

	pb_raw(&b, "k8s\0", 4);
	pb_str(&tm, 1, api_version);
	pb_str(&tm, 2, kind);
	pb_msg(&b, 1, &tm);
	pb_msg(&b, 2, raw);
	pb_str(&b, 3, "");
	pb_str(&b, 4, "");
	return b;
}

static int decode(const void *p, size_t n, json_t **ret, char *err)
{
	return api_protobuf_decode(p, n, ret, err, 256);
}

/* ---------------------------------------------------------- Assertions */

#define assert_decodes_to(p, n, want_json)                                             \
	do {                                                                           \
		char err_[256] = "";                                                   \
		json_t *got_ = NULL;                                                   \
		json_error_t jerr_;                                                    \
		json_t *want_ = json_loads(want_json, 0, &jerr_);                      \
		assert_non_null(want_);                                                \
		int rc_ = decode(p, n, &got_, err_);                                   \
		if (rc_ != 0)                                                          \
			print_error("decode: %d %s\n", rc_, err_);                     \
		assert_int_equal(rc_, 0);                                              \
		if (!json_equal(got_, want_)) {                                        \
			char *g_ = json_dumps(got_, JSON_SORT_KEYS);                   \
			char *w_ = json_dumps(want_, JSON_SORT_KEYS);                  \
			print_error("got  %s\nwant %s\n", g_, w_);                     \
			free(g_);                                                      \
			free(w_);                                                      \
			fail();                                                        \
		}                                                                      \
		json_decref(got_);                                                     \
		json_decref(want_);                                                    \
	} while (0)

#define assert_decode_fails(p, n, want_rc)                                             \
	do {                                                                           \
		char err_[256] = "";                                                   \
		json_t *got_ = NULL;                                                   \
		assert_int_equal(decode(p, n, &got_, err_), want_rc);                  \
		assert_null(got_);                                                     \
		assert_true(strncmp(err_, "protobuf: ", 10) == 0);                     \
	} while (0)

/* --------------------------------------------------- Tests: kubectl bodies */

static void test_kubectl_namespace(void **state)
{
	(void)state;
	/* kubectl's own JSON of this object (--dry-run=client -o json) has
	 * "creationTimestamp": null, which is Go's zero Time and left out. */
	assert_decodes_to(kubectl_ns, sizeof(kubectl_ns),
			  "{\"kind\":\"Namespace\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"x\"},"
			  "\"spec\":{},\"status\":{}}");
}

static void test_kubectl_configmap(void **state)
{
	(void)state;
	assert_decodes_to(kubectl_cm, sizeof(kubectl_cm),
			  "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"cm1\","
			  "\"namespace\":\"x\"},\"data\":{\"a\":\"b\",\"key2\":\"value2\"},"
			  "\"binaryData\":{\"bin\":\"AP/+IGJpbmFyeQE=\"}}");
}

static void test_kubectl_secret(void **state)
{
	(void)state;
	assert_decodes_to(kubectl_secret, sizeof(kubectl_secret),
			  "{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"s1\","
			  "\"namespace\":\"x\"},\"data\":{\"pass\":\"cEBzcyB3MHJk\","
			  "\"user\":\"YWRtaW4=\"}}");
}

static void test_kubectl_service(void **state)
{
	(void)state;
	assert_decodes_to(
		kubectl_svc, sizeof(kubectl_svc),
		"{\"kind\":\"Service\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"svc1\","
		"\"namespace\":\"x\",\"labels\":{\"app\":\"svc1\"}},\"spec\":{\"ports\":[{\"name\":"
		"\"5678-8080\",\"protocol\":\"TCP\",\"port\":5678,\"targetPort\":8080},{\"name\":"
		"\"443-https\",\"protocol\":\"TCP\",\"port\":443,\"targetPort\":\"https\"}],"
		"\"selector\":{\"app\":\"svc1\"},\"type\":\"ClusterIP\"},\"status\":{"
		"\"loadBalancer\":{}}}");
}

static void test_kubectl_deployment(void **state)
{
	(void)state;
	assert_decodes_to(
		kubectl_deploy, sizeof(kubectl_deploy),
		"{\"kind\":\"Deployment\",\"apiVersion\":\"apps/v1\",\"metadata\":{\"name\":\"web\","
		"\"namespace\":\"x\",\"labels\":{\"app\":\"web\"}},\"spec\":{\"replicas\":3,"
		"\"selector\":{\"matchLabels\":{\"app\":\"web\"}},\"template\":{\"metadata\":{"
		"\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"name\":\"nginx\","
		"\"image\":\"nginx:1.27\",\"ports\":[{\"containerPort\":80}],\"resources\":{}}]}},"
		"\"strategy\":{}},\"status\":{}}");
}

/* replicas is a pointer in Go: an explicit 0 must survive. */
static void test_kubectl_deployment_zero_replicas(void **state)
{
	(void)state;
	assert_decodes_to(
		kubectl_deploy0, sizeof(kubectl_deploy0),
		"{\"kind\":\"Deployment\",\"apiVersion\":\"apps/v1\",\"metadata\":{\"name\":\"d0\","
		"\"namespace\":\"x\",\"labels\":{\"app\":\"d0\"}},\"spec\":{\"replicas\":0,"
		"\"selector\":{\"matchLabels\":{\"app\":\"d0\"}},\"template\":{\"metadata\":{"
		"\"labels\":{\"app\":\"d0\"}},\"spec\":{\"containers\":[{\"name\":\"busybox\","
		"\"image\":\"busybox\",\"command\":[\"sleep\",\"3600\"],\"resources\":{}}]}},"
		"\"strategy\":{}},\"status\":{}}");
}

/* ------------------------------------------------- Tests: hand-built bodies */

static void test_namespace_meta(void **state)
{
	struct pb raw = {0}, meta = {0}, ts = {0}, spec = {0};
	(void)state;

	pb_str(&meta, 1, "team-a");
	pb_str(&meta, 2, "");  /* generateName, unset */
	pb_int(&meta, 7, 0);   /* generation, unset */
	pb_int(&ts, 1, 1700000000);
	pb_msg(&meta, 8, &ts); /* creationTimestamp */
	pb_int(&meta, 10, 0);  /* deletionGracePeriodSeconds: pointer, kept */
	pb_map(&meta, 11, "env", "prod");
	pb_map(&meta, 11, "tier", "");
	pb_map(&meta, 12, "note", "h\xc3\xa9llo");
	pb_str(&spec, 1, "kubernetes");
	pb_str(&spec, 1, "example.com/x");
	pb_msg(&raw, 1, &meta);
	pb_msg(&raw, 2, &spec);
	struct pb b = pb_envelope("v1", "Namespace", &raw);
	assert_decodes_to(b.d, b.n,
			  "{\"kind\":\"Namespace\",\"apiVersion\":\"v1\",\"metadata\":{"
			  "\"name\":\"team-a\",\"creationTimestamp\":\"2023-11-14T22:13:20Z\","
			  "\"deletionGracePeriodSeconds\":0,\"labels\":{\"env\":\"prod\",\"tier\":\"\"},"
			  "\"annotations\":{\"note\":\"h\xc3\xa9llo\"}},\"spec\":{\"finalizers\":["
			  "\"kubernetes\",\"example.com/x\"]}}");
	free(b.d);
}

static void test_configmap_data_and_binary(void **state)
{
	struct pb raw = {0}, meta = {0}, e = {0};
	static const uint8_t bin[] = {0x00, 0x01, 0xfe, 0xff, 'z'};
	(void)state;

	pb_str(&meta, 1, "cfg");
	pb_str(&meta, 3, "default");
	pb_msg(&raw, 1, &meta);
	pb_map(&raw, 2, "app.conf", "listen 80\nroot /srv\n");
	pb_map(&raw, 2, "empty", "");
	pb_str(&e, 1, "blob");
	pb_bytes(&e, 2, bin, sizeof(bin));
	pb_msg(&raw, 3, &e);
	pb_str(&e, 1, "none"); /* an entry without a value: "" */
	pb_msg(&raw, 3, &e);
	pb_int(&raw, 4, 0); /* immutable: *bool, an explicit false is kept */
	struct pb b = pb_envelope("v1", "ConfigMap", &raw);
	assert_decodes_to(b.d, b.n,
			  "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"cfg\","
			  "\"namespace\":\"default\"},\"data\":{\"app.conf\":\"listen 80\\nroot /srv\\n\","
			  "\"empty\":\"\"},\"binaryData\":{\"blob\":\"AAH+/3o=\",\"none\":\"\"},"
			  "\"immutable\":false}");
	free(b.d);
}

static void test_secret_data(void **state)
{
	struct pb raw = {0}, meta = {0}, e = {0};
	(void)state;

	pb_str(&meta, 1, "tls");
	pb_msg(&raw, 1, &meta);
	pb_str(&e, 1, "tls.key");
	pb_str(&e, 2, "-----BEGIN KEY-----");
	pb_msg(&raw, 2, &e);
	pb_str(&e, 1, "ab");
	pb_bytes(&e, 2, "ab", 2);
	pb_msg(&raw, 2, &e);
	pb_str(&raw, 3, "kubernetes.io/tls");
	pb_map(&raw, 4, "extra", "plain");
	pb_int(&raw, 5, 1);
	struct pb b = pb_envelope("v1", "Secret", &raw);
	assert_decodes_to(b.d, b.n,
			  "{\"kind\":\"Secret\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"tls\"},"
			  "\"data\":{\"tls.key\":\"LS0tLS1CRUdJTiBLRVktLS0tLQ==\",\"ab\":\"YWI=\"},"
			  "\"type\":\"kubernetes.io/tls\",\"stringData\":{\"extra\":\"plain\"},"
			  "\"immutable\":true}");
	free(b.d);
}

static void test_service_ports(void **state)
{
	struct pb raw = {0}, meta = {0}, spec = {0}, port = {0}, status = {0};
	(void)state;

	pb_str(&meta, 1, "web");
	pb_msg(&raw, 1, &meta);
	pb_str(&port, 1, "http");
	pb_str(&port, 2, "TCP");
	pb_int(&port, 3, 80);
	pb_intstr(&port, 4, NULL, 8080);
	pb_int(&port, 5, 0); /* nodePort unset */
	pb_msg(&spec, 1, &port);
	pb_str(&port, 1, "metrics");
	pb_int(&port, 3, 9090);
	pb_intstr(&port, 4, "metrics", 0);
	pb_msg(&spec, 1, &port);
	pb_int(&port, 3, 53);
	pb_str(&port, 2, "UDP");
	pb_intstr(&port, 4, NULL, 0); /* targetPort unset: left out */
	pb_msg(&spec, 1, &port);
	pb_map(&spec, 2, "app", "web");
	pb_str(&spec, 3, "10.96.0.10");
	pb_str(&spec, 4, "NodePort");
	pb_str(&spec, 7, "ClientIP");
	pb_str(&spec, 18, "10.96.0.10");
	pb_str(&spec, 19, "IPv4");
	pb_str(&spec, 17, "SingleStack");
	pb_int(&spec, 20, 0); /* allocateLoadBalancerNodePorts: *bool false */
	pb_msg(&raw, 2, &spec);
	pb_msg(&raw, 3, &status);
	struct pb b = pb_envelope("v1", "Service", &raw);
	assert_decodes_to(
		b.d, b.n,
		"{\"kind\":\"Service\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"web\"},"
		"\"spec\":{\"ports\":[{\"name\":\"http\",\"protocol\":\"TCP\",\"port\":80,"
		"\"targetPort\":8080},{\"name\":\"metrics\",\"port\":9090,\"targetPort\":"
		"\"metrics\"},{\"port\":53,\"protocol\":\"UDP\"}],\"selector\":{\"app\":\"web\"},"
		"\"clusterIP\":\"10.96.0.10\",\"type\":\"NodePort\",\"sessionAffinity\":"
		"\"ClientIP\",\"clusterIPs\":[\"10.96.0.10\"],\"ipFamilies\":[\"IPv4\"],"
		"\"ipFamilyPolicy\":\"SingleStack\",\"allocateLoadBalancerNodePorts\":false},"
		"\"status\":{}}");
	free(b.d);
}

static void test_deployment_full(void **state)
{
	struct pb raw = {0}, meta = {0}, spec = {0}, sel = {0}, tpl = {0}, tmeta = {0};
	struct pb pod = {0}, c = {0}, cp = {0}, env = {0}, src = {0}, ref = {0}, cmk = {0};
	struct pb res = {0}, strat = {0}, ru = {0}, vol = {0}, vs = {0}, ed = {0};
	struct pb probe = {0}, handler = {0}, get = {0}, psc = {0}, vm = {0};
	(void)state;

	pb_str(&meta, 1, "web");
	pb_str(&meta, 3, "prod");
	pb_msg(&raw, 1, &meta);

	pb_int(&spec, 1, 3);
	pb_map(&sel, 1, "app", "web");
	pb_msg(&spec, 2, &sel);

	pb_map(&tmeta, 11, "app", "web");
	pb_msg(&tpl, 1, &tmeta);
	/* A container: name, image, ports, env, resources, probe, mounts. */
	pb_str(&c, 1, "nginx");
	pb_str(&c, 2, "nginx:1.27");
	pb_str(&c, 4, "-g");
	pb_str(&c, 4, "daemon off;");
	pb_str(&cp, 1, "http");
	pb_int(&cp, 3, 80);
	pb_str(&cp, 4, "TCP");
	pb_msg(&c, 6, &cp);
	pb_str(&env, 1, "MODE");
	pb_str(&env, 2, "fast");
	pb_msg(&c, 7, &env);
	pb_str(&env, 1, "LEVEL");
	pb_str(&ref, 1, "settings"); /* LocalObjectReference, inlined */
	pb_msg(&cmk, 1, &ref);
	pb_str(&cmk, 2, "level");
	pb_msg(&src, 3, &cmk);
	pb_msg(&env, 3, &src);
	pb_msg(&c, 7, &env);
	pb_quantity_map(&res, 1, "cpu", "500m");
	pb_quantity_map(&res, 1, "memory", "128Mi");
	pb_quantity_map(&res, 2, "cpu", "250m");
	pb_msg(&c, 8, &res);
	pb_str(&vm, 1, "cache");
	pb_str(&vm, 3, "/cache");
	pb_msg(&c, 9, &vm);
	pb_str(&get, 1, "/healthz");
	pb_intstr(&get, 2, "http", 0);
	pb_msg(&handler, 2, &get);
	pb_msg(&probe, 1, &handler); /* ProbeHandler, inlined */
	pb_int(&probe, 2, 5);
	pb_int(&probe, 6, 0);
	pb_msg(&c, 10, &probe);
	pb_str(&c, 14, "IfNotPresent");
	pb_int(&c, 16, 0);
	pb_msg(&pod, 2, &c);
	/* A volume: VolumeSource is inlined, and an empty emptyDir stays. */
	pb_str(&vol, 1, "cache");
	pb_msg(&vs, 2, &ed);
	pb_msg(&vol, 2, &vs);
	pb_msg(&pod, 1, &vol);
	pb_int(&pod, 4, 30);
	pb_map(&pod, 7, "disk", "ssd");
	/* supplementalGroups: one packed run, then one unpacked element. */
	{
		struct pb packed = {0};
		pb_varint(&packed, 1000);
		pb_varint(&packed, 2000);
		pb_msg(&psc, 4, &packed);
		pb_int(&psc, 4, 3000);
		pb_int(&psc, 3, 1);
	}
	pb_msg(&pod, 14, &psc);
	pb_msg(&tpl, 2, &pod);
	pb_msg(&spec, 3, &tpl);

	pb_str(&strat, 1, "RollingUpdate");
	pb_intstr(&ru, 1, NULL, 0); /* maxUnavailable: pointer, 0 kept */
	pb_intstr(&ru, 2, "25%", 0);
	pb_msg(&strat, 2, &ru);
	pb_msg(&spec, 4, &strat);
	pb_int(&spec, 5, -1); /* minReadySeconds, sign-extended to 10 bytes */
	pb_int(&spec, 6, 10);
	pb_msg(&raw, 2, &spec);

	struct pb b = pb_envelope("apps/v1", "Deployment", &raw);
	assert_decodes_to(
		b.d, b.n,
		"{\"kind\":\"Deployment\",\"apiVersion\":\"apps/v1\","
		"\"metadata\":{\"name\":\"web\",\"namespace\":\"prod\"},"
		"\"spec\":{\"replicas\":3,\"selector\":{\"matchLabels\":{\"app\":\"web\"}},"
		"\"template\":{\"metadata\":{\"labels\":{\"app\":\"web\"}},\"spec\":{"
		"\"containers\":[{\"name\":\"nginx\",\"image\":\"nginx:1.27\","
		"\"args\":[\"-g\",\"daemon off;\"],"
		"\"ports\":[{\"name\":\"http\",\"containerPort\":80,\"protocol\":\"TCP\"}],"
		"\"env\":[{\"name\":\"MODE\",\"value\":\"fast\"},{\"name\":\"LEVEL\","
		"\"valueFrom\":{\"configMapKeyRef\":{\"name\":\"settings\",\"key\":\"level\"}}}],"
		"\"resources\":{\"limits\":{\"cpu\":\"500m\",\"memory\":\"128Mi\"},"
		"\"requests\":{\"cpu\":\"250m\"}},"
		"\"volumeMounts\":[{\"name\":\"cache\",\"mountPath\":\"/cache\"}],"
		"\"livenessProbe\":{\"httpGet\":{\"path\":\"/healthz\",\"port\":\"http\"},"
		"\"initialDelaySeconds\":5},\"imagePullPolicy\":\"IfNotPresent\"}],"
		"\"volumes\":[{\"name\":\"cache\",\"emptyDir\":{}}],"
		"\"terminationGracePeriodSeconds\":30,\"nodeSelector\":{\"disk\":\"ssd\"},"
		"\"securityContext\":{\"supplementalGroups\":[1000,2000,3000],"
		"\"runAsNonRoot\":true}}},"
		"\"strategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{"
		"\"maxUnavailable\":0,\"maxSurge\":\"25%\"}},"
		"\"minReadySeconds\":-1,\"revisionHistoryLimit\":10}}");
	free(b.d);
}

/* Protobuf semantics: unknown fields of every wire type are skipped, the
 * last value of a singular field wins, a repeated message merges. */
static void test_unknown_fields_and_merging(void **state)
{
	struct pb raw = {0}, meta = {0}, meta2 = {0};
	uint8_t fixed[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	(void)state;

	pb_str(&meta, 1, "first");
	pb_map(&meta, 11, "a", "1");
	pb_int(&meta, 900, 12345);       /* unknown varint */
	pb_key(&meta, 901, 1);           /* unknown fixed64 */
	pb_raw(&meta, fixed, 8);
	pb_key(&meta, 902, 5);           /* unknown fixed32 */
	pb_raw(&meta, fixed, 4);
	pb_str(&meta, 903, "ignored");   /* unknown bytes */
	pb_msg(&raw, 1, &meta);
	pb_str(&meta2, 1, "second");
	pb_map(&meta2, 11, "b", "2");
	pb_msg(&raw, 1, &meta2);
	pb_map(&raw, 2, "k", "old");
	pb_map(&raw, 2, "k", "new");
	pb_int(&raw, 4, 1);
	pb_int(&raw, 4, 0); /* last wins, and false of a *bool stays */
	struct pb b = pb_envelope("v1", "ConfigMap", &raw);
	assert_decodes_to(b.d, b.n,
			  "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{"
			  "\"name\":\"second\",\"labels\":{\"a\":\"1\",\"b\":\"2\"}},"
			  "\"data\":{\"k\":\"new\"},\"immutable\":false}");
	free(b.d);

	/* A non-pointer string set, then zeroed, disappears. */
	struct pb raw2 = {0}, m = {0};
	pb_str(&m, 1, "x");
	pb_str(&m, 3, "ns");
	pb_str(&m, 3, "");
	pb_msg(&raw2, 1, &m);
	b = pb_envelope("v1", "Namespace", &raw2);
	assert_decodes_to(b.d, b.n,
			  "{\"kind\":\"Namespace\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"x\"}}");
	free(b.d);
}

static void test_time_forms(void **state)
{
	struct pb raw = {0}, meta = {0}, ts = {0}, mf = {0}, fv = {0};
	(void)state;

	pb_str(&meta, 1, "t");
	pb_int(&ts, 1, 0);
	pb_msg(&meta, 9, &ts); /* deletionTimestamp at the epoch: a real time */
	pb_msg(&meta, 8, &ts); /* an empty creationTimestamp: zero, left out */
	pb_str(&mf, 1, "kubectl");
	pb_int(&ts, 1, 253402300799LL);
	pb_int(&ts, 2, 999999999); /* Time keeps seconds only */
	pb_msg(&mf, 4, &ts);
	pb_str(&fv, 1, "{\"f:data\":{\".\":{}}}");
	pb_msg(&mf, 7, &fv); /* fieldsV1 is raw JSON */
	pb_msg(&meta, 17, &mf);
	pb_msg(&raw, 1, &meta);
	struct pb b = pb_envelope("v1", "ConfigMap", &raw);
	assert_decodes_to(b.d, b.n,
			  "{\"kind\":\"ConfigMap\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"t\","
			  "\"deletionTimestamp\":\"1970-01-01T00:00:00Z\",\"managedFields\":[{"
			  "\"manager\":\"kubectl\",\"time\":\"9999-12-31T23:59:59Z\","
			  "\"fieldsV1\":{\"f:data\":{\".\":{}}}}]}}");
	free(b.d);

	/* Year 10000 cannot be written as RFC 3339. */
	struct pb raw2 = {0}, meta2 = {0}, ts2 = {0};
	pb_int(&ts2, 1, 253402300800LL);
	pb_msg(&meta2, 8, &ts2);
	pb_msg(&raw2, 1, &meta2);
	b = pb_envelope("v1", "Namespace", &raw2);
	assert_decode_fails(b.d, b.n, -EBADMSG);
	free(b.d);
}

/* ---------------------------------------------------------- Tests: errors */

static void test_envelope_errors(void **state)
{
	char err[256];
	json_t *obj = NULL;
	(void)state;

	assert_decode_fails("", 0, -EBADMSG);
	assert_decode_fails("k8s", 3, -EBADMSG);
	assert_decode_fails("{\"kind\":\"Namespace\"}", 20, -EBADMSG);
	/* Magic alone: no typeMeta. */
	assert_decode_fails("k8s\0", 4, -EBADMSG);

	/* A kind without a table: 415. */
	struct pb raw = {0};
	struct pb b = pb_envelope("v1", "Pod", &raw);
	assert_decode_fails(b.d, b.n, -ENOTSUP);
	free(b.d);
	b = pb_envelope("apps/v2", "Deployment", &raw);
	assert_decode_fails(b.d, b.n, -ENOTSUP);
	free(b.d);
	b = pb_envelope("v1", "Deployment", &raw);
	assert_decode_fails(b.d, b.n, -ENOTSUP);
	free(b.d);
	b = pb_envelope("apps/v1", "", &raw);
	assert_decode_fails(b.d, b.n, -EBADMSG);
	free(b.d);

	/* A gzip'ed raw or a JSON raw inside the envelope. */
	struct pb e = {0}, tm = {0};
	pb_raw(&e, "k8s\0", 4);
	pb_str(&tm, 1, "v1");
	pb_str(&tm, 2, "Namespace");
	pb_msg(&e, 1, &tm);
	pb_str(&e, 3, "gzip");
	assert_decode_fails(e.d, e.n, -ENOTSUP);
	free(e.d);
	memset(&e, 0, sizeof(e));
	pb_raw(&e, "k8s\0", 4);
	pb_str(&tm, 1, "v1");
	pb_str(&tm, 2, "Namespace");
	pb_msg(&e, 1, &tm);
	pb_str(&e, 4, "application/json");
	assert_decode_fails(e.d, e.n, -ENOTSUP);
	free(e.d);

	/* err may be NULL, and the message names the kind. */
	b = pb_envelope("v1", "Pod", &raw);
	assert_int_equal(api_protobuf_decode(b.d, b.n, &obj, NULL, 0), -ENOTSUP);
	assert_int_equal(api_protobuf_decode(b.d, b.n, &obj, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "v1 Pod"));
	free(b.d);
}

static void test_malformed_raw(void **state)
{
	struct pb raw = {0}, b, m = {0};
	(void)state;

	/* Wrong wire type for metadata (varint instead of bytes). */
	pb_int(&raw, 1, 5);
	b = pb_envelope("v1", "Namespace", &raw);
	assert_decode_fails(b.d, b.n, -EBADMSG);
	free(b.d);

	/* A varint of eleven bytes. */
	pb_key(&raw, 4, 0);
	for (int i = 0; i < 10; i++)
		pb_raw(&raw, "\xff", 1);
	pb_raw(&raw, "\x01", 1);
	b = pb_envelope("v1", "ConfigMap", &raw);
	assert_decode_fails(b.d, b.n, -EBADMSG);
	free(b.d);

	/* A tenth varint byte above 1 overflows 64 bits. */
	pb_key(&raw, 4, 0);
	for (int i = 0; i < 9; i++)
		pb_raw(&raw, "\xff", 1);
	pb_raw(&raw, "\x02", 1);
	b = pb_envelope("v1", "ConfigMap", &raw);
	assert_decode_fails(b.d, b.n, -EBADMSG);
	free(b.d);

	/* A length beyond the buffer, and a huge one. */
	pb_key(&raw, 2, 2);
	pb_varint(&raw, 100);
	pb_raw(&raw, "abc", 3);
	b = pb_envelope("v1", "ConfigMap", &raw);
	assert_decode_fails(b.d, b.n, -EBADMSG);
	free(b.d);
	pb_key(&raw, 2, 2);
	pb_varint(&raw, UINT64_MAX);
	b = pb_envelope("v1", "ConfigMap", &raw);
	assert_decode_fails(b.d, b.n, -EBADMSG);
	free(b.d);

	/* Field number 0, and a group wire type. */
	pb_raw(&raw, "\x00\x00", 2);
	b = pb_envelope("v1", "ConfigMap", &raw);
	assert_decode_fails(b.d, b.n, -EBADMSG);
	free(b.d);
	pb_key(&raw, 77, 3);
	b = pb_envelope("v1", "ConfigMap", &raw);
	assert_decode_fails(b.d, b.n, -EBADMSG);
	free(b.d);

	/* Invalid UTF-8 in a string, and in a map key. */
	pb_str(&m, 1, "bad\xff");
	pb_msg(&raw, 1, &m);
	b = pb_envelope("v1", "Namespace", &raw);
	assert_decode_fails(b.d, b.n, -EBADMSG);
	free(b.d);
	pb_map(&raw, 2, "k\xc3", "v");
	b = pb_envelope("v1", "ConfigMap", &raw);
	assert_decode_fails(b.d, b.n, -EBADMSG);
	free(b.d);

	/* An IntOrString of type 2, and fieldsV1 that is not JSON. */
	struct pb spec = {0}, port = {0}, is = {0};
	pb_int(&is, 1, 2);
	pb_msg(&port, 4, &is);
	pb_msg(&spec, 1, &port);
	pb_msg(&raw, 2, &spec);
	b = pb_envelope("v1", "Service", &raw);
	assert_decode_fails(b.d, b.n, -EBADMSG);
	free(b.d);
	struct pb meta = {0}, mf = {0}, fv = {0};
	pb_str(&fv, 1, "{not json");
	pb_msg(&mf, 7, &fv);
	pb_msg(&meta, 17, &mf);
	pb_msg(&raw, 1, &meta);
	b = pb_envelope("v1", "Service", &raw);
	assert_decode_fails(b.d, b.n, -EBADMSG);
	free(b.d);
}

/* Every prefix of each kubectl body: an error (never a crash), except
 * the cuts at field boundaries of the envelope (after typeMeta, after
 * raw, after contentEncoding), which are valid shorter envelopes. */
static void test_truncation_everywhere(void **state)
{
	static const struct {
		const uint8_t *p;
		size_t n;
	} bodies[] = {
		{kubectl_ns, sizeof(kubectl_ns)},         {kubectl_cm, sizeof(kubectl_cm)},
		{kubectl_secret, sizeof(kubectl_secret)}, {kubectl_svc, sizeof(kubectl_svc)},
		{kubectl_deploy, sizeof(kubectl_deploy)}, {kubectl_deploy0, sizeof(kubectl_deploy0)},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		const uint8_t *p = bodies[i].p;
		size_t tm_end = 4 + 2 + p[5];
		/* kubectl writes raw, then empty contentEncoding/contentType. */
		size_t raw_end = bodies[i].n - 4;
		for (size_t n = 0; n < bodies[i].n; n++) {
			/* A copy of exactly n bytes, so ASan sees any overread. */
			uint8_t *cut = malloc(n + 1);
			json_t *obj = NULL;
			char err[256] = "";
			assert_non_null(cut);
			memcpy(cut, p, n);
			int rc = api_protobuf_decode(cut, n, &obj, err, sizeof(err));
			if (n == tm_end || n == raw_end || n == raw_end + 2) {
				assert_int_equal(rc, 0);
				json_decref(obj);
			} else {
				if (rc != -EBADMSG)
					print_error("body %zu cut at %zu: %d\n", i, n, rc);
				assert_int_equal(rc, -EBADMSG);
				assert_null(obj);
				assert_true(err[0] != '\0');
			}
			free(cut);
		}
	}
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void check_no_crash(const uint8_t *p, size_t n)
{
	uint8_t *copy = malloc(n + 1);
	json_t *obj = NULL;
	char err[128];

	assert_non_null(copy);
	memcpy(copy, p, n);
	int rc = api_protobuf_decode(copy, n, &obj, err, sizeof(err));
	assert_true(rc == 0 || rc == -EBADMSG || rc == -ENOTSUP);
	if (rc == 0) {
		assert_true(json_is_object(obj));
		/* Whatever decodes must also print as JSON. */
		char *s = json_dumps(obj, 0);
		assert_non_null(s);
		free(s);
		json_decref(obj);
	} else {
		assert_null(obj);
	}
	free(copy);
}

/* Random raw messages in a valid envelope, and kubectl bodies with random
 * bytes changed: decoded or refused, never a crash or an overread. */
static void test_random_garbage(void **state)
{
	static const char *const kinds[][2] = {
		{"v1", "Namespace"}, {"v1", "ConfigMap"},        {"v1", "Secret"},
		{"v1", "Service"},   {"apps/v1", "Deployment"},
	};
	const uint8_t *bodies[] = {kubectl_ns, kubectl_cm, kubectl_secret, kubectl_svc, kubectl_deploy};
	size_t sizes[] = {sizeof(kubectl_ns), sizeof(kubectl_cm), sizeof(kubectl_secret),
			  sizeof(kubectl_svc), sizeof(kubectl_deploy)};
	uint8_t buf[512];
	(void)state;

	for (int iter = 0; iter < 20000; iter++) {
		struct pb raw = {0};
		size_t n = rng() % 200;
		for (size_t i = 0; i < n; i++) {
			uint8_t c = (uint8_t)rng();
			pb_raw(&raw, &c, 1);
		}
		int k = (int)(rng() % 5);
		struct pb b = pb_envelope(kinds[k][0], kinds[k][1], &raw);
		check_no_crash(b.d, b.n);
		free(b.d);
	}
	for (int iter = 0; iter < 20000; iter++) {
		int k = (int)(rng() % 5);
		memcpy(buf, bodies[k], sizes[k]);
		int flips = 1 + (int)(rng() % 4);
		for (int i = 0; i < flips; i++)
			buf[4 + rng() % (sizes[k] - 4)] = (uint8_t)rng();
		check_no_crash(buf, sizes[k]);
	}
	/* Structured noise: random valid-looking fields for every known
	 * number and wire type, nested a few levels. */
	for (int iter = 0; iter < 5000; iter++) {
		struct pb raw = {0};
		int fields = (int)(rng() % 30);
		for (int i = 0; i < fields; i++) {
			uint32_t num = 1 + (uint32_t)(rng() % 45);
			switch (rng() % 4) {
			case 0:
				pb_int(&raw, num, (int64_t)rng());
				break;
			case 1:
				pb_str(&raw, num, "v");
				break;
			case 2: {
				struct pb sub = {0};
				pb_str(&sub, 1 + (uint32_t)(rng() % 8), "x");
				pb_int(&sub, 1 + (uint32_t)(rng() % 8), (int64_t)(rng() % 3));
				pb_msg(&raw, num, &sub);
				break;
			}
			default: {
				struct pb sub = {0}, subsub = {0};
				pb_str(&subsub, 1, "k");
				pb_int(&subsub, 2, 1);
				pb_msg(&sub, 1 + (uint32_t)(rng() % 4), &subsub);
				pb_msg(&raw, num, &sub);
				break;
			}
			}
		}
		int k = (int)(rng() % 5);
		struct pb b = pb_envelope(kinds[k][0], kinds[k][1], &raw);
		check_no_crash(b.d, b.n);
		free(b.d);
	}
}

/* Every table entry is consistent: numbers ascend, message references are
 * in range, flags fit their kinds. */
static void test_tables(void **state)
{
	(void)state;

	for (size_t i = 0; i < API_PROTO_GEN_N_MSGS; i++) {
		const struct api_proto_msg *m = &api_proto_gen_msgs[i];
		assert_true((size_t)m->first_field + m->n_fields <= API_PROTO_GEN_N_FIELDS);
		for (size_t j = 0; j < m->n_fields; j++) {
			const struct api_proto_field *f = &api_proto_gen_fields[m->first_field + j];
			if (j > 0)
				assert_true(f[-1].number < f->number);
			if (f->kind == API_PK_MESSAGE)
				assert_true(f->ref < API_PROTO_GEN_N_MSGS);
			if (f->flags & API_PF_INLINE)
				assert_int_equal(f->kind, API_PK_MESSAGE);
			else
				assert_true(f->json[0] != '\0');
		}
	}
	assert_true(api_protobuf_supports("", "v1", "Namespace"));
	assert_true(api_protobuf_supports("apps", "v1", "Deployment"));
	assert_false(api_protobuf_supports("", "v1", "Pod"));
	assert_false(api_protobuf_supports("apps", "v1", "Namespace"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kubectl_namespace),
		cmocka_unit_test(test_kubectl_configmap),
		cmocka_unit_test(test_kubectl_secret),
		cmocka_unit_test(test_kubectl_service),
		cmocka_unit_test(test_kubectl_deployment),
		cmocka_unit_test(test_kubectl_deployment_zero_replicas),
		cmocka_unit_test(test_namespace_meta),
		cmocka_unit_test(test_configmap_data_and_binary),
		cmocka_unit_test(test_secret_data),
		cmocka_unit_test(test_service_ports),
		cmocka_unit_test(test_deployment_full),
		cmocka_unit_test(test_unknown_fields_and_merging),
		cmocka_unit_test(test_time_forms),
		cmocka_unit_test(test_envelope_errors),
		cmocka_unit_test(test_malformed_raw),
		cmocka_unit_test(test_truncation_everywhere),
		cmocka_unit_test(test_random_garbage),
		cmocka_unit_test(test_tables),
	};

	return cmocka_run_group_tests_name("api_protobuf", tests, NULL, NULL);
}
