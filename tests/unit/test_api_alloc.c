/* Unit tests of Service address allocation: CIDR and port range parsing,
 * the ClusterIP and NodePort bitmaps (exhaustion, reserved addresses,
 * requests), the Service fill-in on create and update, and determinism
 * under a seeded random source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "src/api/alloc.h"

/* ---------------------------------------------------------------- Fixture */

struct fixture {
	struct api_alloc a;
	uint64_t seed;
	struct api_alloc_rand rnd;
	struct api_errors e;
};

static int setup_with(void **state, const char *cidr, const char *ports)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_int_equal(api_alloc_init(&f->a, cidr, ports, NULL), 0);
	f->seed = 42;
	f->rnd.next = api_alloc_splitmix64;
	f->rnd.data = &f->seed;
	api_errors_init(&f->e);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, NULL, NULL);
}

/* A tiny cluster: 6 addresses, 4 node ports. */
static int setup_small(void **state)
{
	return setup_with(state, "10.0.0.0/29", "30000-30003");
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	api_alloc_close(&f->a);
	api_errors_close(&f->e);
	free(f);
	return 0;
}

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

static const char *spec_str(const json_t *svc, const char *key)
{
	return json_string_value(json_object_get(json_object_get(svc, "spec"), key));
}

static json_int_t node_port(const json_t *svc, size_t i)
{
	json_t *ports = json_object_get(json_object_get(svc, "spec"), "ports");
	return json_integer_value(json_object_get(json_array_get(ports, i), "nodePort"));
}

static void dump(const struct api_errors *e)
{
	for (size_t i = 0; i < e->n; i++) {
		print_message("# cause %s %s: %s\n", api_cause_reason_name(e->causes[i].reason),
			      e->causes[i].field, e->causes[i].message);
	}
}

/* Creates @text; returns the filled Service (caller decrefs). */
static json_t *create(struct fixture *f, const char *text, int want_rv)
{
	json_t *svc = load(text);
	int rv = api_alloc_service_create(&f->a, &f->rnd, svc, &f->e);
	dump(&f->e);
	assert_int_equal(rv, want_rv);
	return svc;
}

static json_t *update(struct fixture *f, const json_t *old, const char *text, int want_rv)
{
	json_t *svc = load(text);
	int rv = api_alloc_service_update(&f->a, &f->rnd, old, svc, &f->e);
	dump(&f->e);
	assert_int_equal(rv, want_rv);
	return svc;
}

/* ---------------------------------------------------------------- Assertions */

#define ASSERT_NO_CAUSES(f) assert_int_equal((f)->e.n, 0)

/* Exactly one cause, on this field, whose message contains @part. */
#define ASSERT_ONE_CAUSE(f, field_, part)                                                                    \
	do {                                                                                                 \
		assert_int_equal((f)->e.n, 1);                                                               \
		assert_string_equal((f)->e.causes[0].field, field_);                                         \
		assert_non_null(strstr((f)->e.causes[0].message, part));                                     \
	} while (0)

/* ---------------------------------------------------------------- CIDR parsing */

static void test_cidr_parse(void **state)
{
	(void)state;
	struct api_ip_range r;
	char buf[API_ALLOC_IP_LEN];
	const char *detail = NULL;

	assert_int_equal(api_ip_range_parse("10.96.0.0/12", &r, &detail), 0);
	assert_int_equal(r.family, AF_INET);
	assert_int_equal(r.prefix, 12);
	assert_int_equal(r.size, (1U << 20) - 2);
	assert_string_equal(r.text, "10.96.0.0/12");
	assert_string_equal(api_ip_range_family_name(&r), "IPv4");
	api_ip_range_first(&r, buf);
	assert_string_equal(buf, "10.96.0.1");

	/* Host bits are cleared. */
	assert_int_equal(api_ip_range_parse("10.96.3.7/16", &r, NULL), 0);
	assert_string_equal(r.text, "10.96.0.0/16");
	assert_int_equal(r.size, 65534);

	/* The smallest IPv4 range: /30 has .1 and .2. */
	assert_int_equal(api_ip_range_parse("192.168.1.0/30", &r, NULL), 0);
	assert_int_equal(r.size, 2);

	/* IPv6: only the network address is reserved. */
	assert_int_equal(api_ip_range_parse("fd00:10:96::/112", &r, NULL), 0);
	assert_int_equal(r.family, AF_INET6);
	assert_int_equal(r.size, 65535);
	assert_string_equal(r.text, "fd00:10:96::/112");
	assert_string_equal(api_ip_range_family_name(&r), "IPv6");
	api_ip_range_first(&r, buf);
	assert_string_equal(buf, "fd00:10:96::1");
	assert_int_equal(api_ip_range_parse("fd00::/108", &r, NULL), 0);

	/* Syntax errors. */
	static const char *const bad[] = {
		"",	      "10.96.0.0",    "10.96.0.0/",	"10.96.0.0/33",
		"10.96.0/12", "10.96.0.0/1x", "10.96.0.0/-1",	"x/12",
		"/12",	      "fd00::/129",   "10.96.0.0/12/1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		detail = NULL;
		assert_int_equal(api_ip_range_parse(bad[i], &r, &detail), -EINVAL);
		assert_non_null(detail);
	}
	assert_int_equal(api_ip_range_parse(NULL, &r, NULL), -EINVAL);

	/* Too large and too small. */
	assert_int_equal(api_ip_range_parse("10.0.0.0/11", &r, &detail), -ERANGE);
	assert_non_null(strstr(detail, "too large"));
	assert_int_equal(api_ip_range_parse("fd00::/107", &r, &detail), -ERANGE);
	assert_int_equal(api_ip_range_parse("10.0.0.0/31", &r, &detail), -ERANGE);
	assert_non_null(strstr(detail, "too small"));
	assert_int_equal(api_ip_range_parse("10.0.0.0/32", &r, NULL), -ERANGE);
	assert_int_equal(api_ip_range_parse("fd00::/127", &r, NULL), -ERANGE);
}

static void test_port_range_parse(void **state)
{
	(void)state;
	struct api_port_range r;
	const char *detail = NULL;

	assert_int_equal(api_port_range_parse("30000-32767", &r, NULL), 0);
	assert_int_equal(r.base, 30000);
	assert_int_equal(r.size, 2768);
	assert_string_equal(r.text, "30000-32767");
	assert_int_equal(api_port_range_parse("30000+2767", &r, NULL), 0);
	assert_int_equal(r.size, 2768);
	assert_string_equal(r.text, "30000-32767");
	assert_int_equal(api_port_range_parse("8080", &r, NULL), 0);
	assert_int_equal(r.size, 1);

	static const char *const bad[] = {
		"",	      "-",   "30000-",	 "-32767", "0-10", "32767-30000", "30000-65536",
		"65000+1000", "a-b", "30000-3x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		detail = NULL;
		assert_int_equal(api_port_range_parse(bad[i], &r, &detail), -EINVAL);
		assert_non_null(detail);
	}

	/* api_alloc_init reports the bad range. */
	struct api_alloc a;
	assert_int_equal(api_alloc_init(&a, "10.0.0.0/8", NULL, &detail), -ERANGE);
	api_alloc_close(&a);
	assert_int_equal(api_alloc_init(&a, NULL, "1-0", &detail), -EINVAL);
	api_alloc_close(&a);
}

/* ---------------------------------------------------------------- IP allocator */

/* Every address of a /29 is handed out once, never the network nor the
 * broadcast address, then the range is full. */
static void test_ip_exhaustion(void **state)
{
	struct fixture *f = *state;
	char ip[API_ALLOC_IP_LEN];
	bool seen[8] = { false };

	assert_int_equal(api_ip_alloc_free(&f->a.ip), 6);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(api_ip_alloc_next(&f->a.ip, &f->rnd, ip), 0);
		assert_memory_equal(ip, "10.0.0.", 7);
		int last = atoi(ip + 7);
		assert_true(last >= 1 && last <= 6);
		assert_false(seen[last]);
		seen[last] = true;
		assert_true(api_ip_alloc_used(&f->a.ip, ip));
	}
	assert_int_equal(api_ip_alloc_free(&f->a.ip), 0);
	assert_int_equal(api_ip_alloc_next(&f->a.ip, &f->rnd, ip), -ENOSPC);

	/* A released address is the only one handed out again. */
	assert_int_equal(api_ip_alloc_release(&f->a.ip, "10.0.0.4"), 0);
	assert_int_equal(api_ip_alloc_release(&f->a.ip, "10.0.0.4"), -ENOENT);
	assert_int_equal(api_ip_alloc_next(&f->a.ip, &f->rnd, ip), 0);
	assert_string_equal(ip, "10.0.0.4");
}

/* In a large range the reserved addresses are never allocated, and
 * neither is anything outside the CIDR. */
static void test_ip_reserved(void **state)
{
	struct fixture *f = *state;
	struct api_ip_range r;
	struct api_ip_alloc a;
	char ip[API_ALLOC_IP_LEN];

	assert_int_equal(api_ip_range_parse("10.1.0.0/22", &r, NULL), 0);
	assert_int_equal(api_ip_alloc_init(&a, &r), 0);
	for (uint32_t i = 0; i < r.size; i++) {
		assert_int_equal(api_ip_alloc_next(&a, &f->rnd, ip), 0);
		assert_string_not_equal(ip, "10.1.0.0");
		assert_string_not_equal(ip, "10.1.3.255");
		assert_memory_equal(ip, "10.1.", 5);
	}
	assert_int_equal(api_ip_alloc_next(&a, &f->rnd, ip), -ENOSPC);
	api_ip_alloc_close(&a);

	/* Network, broadcast and foreign addresses cannot be claimed. */
	assert_int_equal(api_ip_alloc_mark(&f->a.ip, "10.0.0.0"), -ERANGE);
	assert_int_equal(api_ip_alloc_mark(&f->a.ip, "10.0.0.7"), -ERANGE);
	assert_int_equal(api_ip_alloc_mark(&f->a.ip, "10.0.0.8"), -ERANGE);
	assert_int_equal(api_ip_alloc_mark(&f->a.ip, "11.0.0.1"), -ERANGE);
	assert_int_equal(api_ip_alloc_mark(&f->a.ip, "fd00::1"), -ERANGE);
	assert_int_equal(api_ip_alloc_mark(&f->a.ip, "10.0.0.x"), -EINVAL);
	assert_int_equal(api_ip_alloc_mark(&f->a.ip, ""), -EINVAL);
	assert_false(api_ip_alloc_used(&f->a.ip, "10.0.0.7"));

	/* Requested addresses: first and last usable, then in use. */
	assert_int_equal(api_ip_alloc_mark(&f->a.ip, "10.0.0.1"), 0);
	assert_int_equal(api_ip_alloc_mark(&f->a.ip, "10.0.0.6"), 0);
	assert_int_equal(api_ip_alloc_mark(&f->a.ip, "10.0.0.6"), -EEXIST);
	assert_int_equal(api_ip_alloc_free(&f->a.ip), 4);
}

/* IPv6: the network address is reserved, the last one is not. */
static void test_ip_v6(void **state)
{
	struct fixture *f = *state;
	struct api_ip_range r;
	struct api_ip_alloc a;
	char ip[API_ALLOC_IP_LEN];
	int hits = 0;

	assert_int_equal(api_ip_range_parse("fd00::/126", &r, NULL), 0);
	assert_int_equal(r.size, 3);
	assert_int_equal(api_ip_alloc_init(&a, &r), 0);
	assert_int_equal(api_ip_alloc_mark(&a, "fd00::"), -ERANGE);
	assert_int_equal(api_ip_alloc_mark(&a, "10.0.0.1"), -ERANGE);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(api_ip_alloc_next(&a, &f->rnd, ip), 0);
		hits += strcmp(ip, "fd00::3") == 0;
	}
	assert_int_equal(hits, 1);
	assert_int_equal(api_ip_alloc_next(&a, &f->rnd, ip), -ENOSPC);
	api_ip_alloc_close(&a);
}

/* Random allocation prefers the upper block: in a /24 the first 16
 * addresses stay free while others are. */
static void test_ip_static_block(void **state)
{
	struct fixture *f = *state;
	struct api_ip_range r;
	struct api_ip_alloc a;
	char ip[API_ALLOC_IP_LEN];

	assert_int_equal(api_ip_range_parse("10.2.0.0/24", &r, NULL), 0);
	assert_int_equal(api_ip_alloc_init(&a, &r), 0);
	for (int i = 0; i < 254 - 16; i++) {
		assert_int_equal(api_ip_alloc_next(&a, &f->rnd, ip), 0);
		assert_true(atoi(ip + 7) > 16);
	}
	assert_int_equal(api_ip_alloc_next(&a, &f->rnd, ip), 0);
	assert_true(atoi(ip + 7) <= 16);
	api_ip_alloc_close(&a);
}

/* Same seed, same state: same answers. */
static void test_deterministic(void **state)
{
	(void)state;
	char first[20][API_ALLOC_IP_LEN];
	int ports[20];
	for (int round = 0; round < 2; round++) {
		struct api_alloc a;
		uint64_t seed = 7;
		struct api_alloc_rand rnd = { api_alloc_splitmix64, &seed };
		assert_int_equal(api_alloc_init(&a, NULL, NULL, NULL), 0);
		assert_int_equal(api_ip_alloc_mark(&a.ip, "10.96.0.10"), 0);
		for (int i = 0; i < 20; i++) {
			char ip[API_ALLOC_IP_LEN];
			int port;
			assert_int_equal(api_ip_alloc_next(&a.ip, &rnd, ip), 0);
			assert_int_equal(api_port_alloc_next(&a.node_ports, &rnd, &port), 0);
			if (round == 0) {
				strcpy(first[i], ip);
				ports[i] = port;
			} else {
				assert_string_equal(first[i], ip);
				assert_int_equal(ports[i], port);
			}
		}
		api_alloc_close(&a);
	}
	/* A different seed gives a different sequence. */
	struct api_alloc a;
	uint64_t seed = 8;
	struct api_alloc_rand rnd = { api_alloc_splitmix64, &seed };
	char ip[API_ALLOC_IP_LEN];
	bool differs = false;
	assert_int_equal(api_alloc_init(&a, NULL, NULL, NULL), 0);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(api_ip_alloc_next(&a.ip, &rnd, ip), 0);
		differs = differs || strcmp(ip, first[i]) != 0;
	}
	assert_true(differs);
	api_alloc_close(&a);

	/* Whole Services too. */
	char *text[2];
	for (int round = 0; round < 2; round++) {
		uint64_t s = 99;
		struct api_alloc_rand r2 = { api_alloc_splitmix64, &s };
		struct api_errors e;
		api_errors_init(&e);
		assert_int_equal(api_alloc_init(&a, NULL, NULL, NULL), 0);
		json_t *svc =
			load("{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"port\":80},{\"port\":443}]}}");
		assert_int_equal(api_alloc_service_create(&a, &r2, svc, &e), 0);
		text[round] = json_dumps(svc, JSON_SORT_KEYS);
		json_decref(svc);
		api_alloc_close(&a);
		api_errors_close(&e);
	}
	assert_string_equal(text[0], text[1]);
	free(text[0]);
	free(text[1]);
}

/* ---------------------------------------------------------------- Port allocator */

static void test_port_exhaustion(void **state)
{
	struct fixture *f = *state;
	bool seen[4] = { false };
	int port;

	for (int i = 0; i < 4; i++) {
		assert_int_equal(api_port_alloc_next(&f->a.node_ports, &f->rnd, &port), 0);
		assert_true(port >= 30000 && port <= 30003);
		assert_false(seen[port - 30000]);
		seen[port - 30000] = true;
	}
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), 0);
	assert_int_equal(api_port_alloc_next(&f->a.node_ports, &f->rnd, &port), -ENOSPC);
	assert_int_equal(api_port_alloc_release(&f->a.node_ports, 30002), 0);
	assert_int_equal(api_port_alloc_next(&f->a.node_ports, &f->rnd, &port), 0);
	assert_int_equal(port, 30002);
}

static void test_port_requested(void **state)
{
	struct fixture *f = *state;
	struct api_port_alloc *p = &f->a.node_ports;

	assert_int_equal(api_port_alloc_mark(p, 30000), 0);
	assert_int_equal(api_port_alloc_mark(p, 32767), 0);
	assert_int_equal(api_port_alloc_mark(p, 32767), -EEXIST);
	assert_int_equal(api_port_alloc_mark(p, 29999), -ERANGE);
	assert_int_equal(api_port_alloc_mark(p, 32768), -ERANGE);
	assert_int_equal(api_port_alloc_mark(p, -1), -ERANGE);
	assert_int_equal(api_port_alloc_release(p, 80), -ERANGE);
	assert_int_equal(api_port_alloc_release(p, 30001), -ENOENT);
	assert_true(api_port_alloc_used(p, 30000));
	assert_false(api_port_alloc_used(p, 30001));
	assert_int_equal(api_port_alloc_free(p), 2766);
}

/* ---------------------------------------------------------------- Services: create */

static void test_svc_cluster_ip(void **state)
{
	struct fixture *f = *state;
	json_t *svc = create(
		f,
		"{\"metadata\":{\"name\":\"a\"},\"spec\":{\"type\":\"ClusterIP\",\"ports\":[{\"port\":80}]}}",
		0);
	ASSERT_NO_CAUSES(f);
	const char *ip = spec_str(svc, "clusterIP");
	assert_non_null(ip);
	assert_true(api_ip_alloc_used(&f->a.ip, ip));
	json_t *ips = json_object_get(json_object_get(svc, "spec"), "clusterIPs");
	assert_int_equal(json_array_size(ips), 1);
	assert_string_equal(json_string_value(json_array_get(ips, 0)), ip);
	assert_string_equal(spec_str(svc, "ipFamilyPolicy"), "SingleStack");
	json_t *fams = json_object_get(json_object_get(svc, "spec"), "ipFamilies");
	assert_int_equal(json_array_size(fams), 1);
	assert_string_equal(json_string_value(json_array_get(fams, 0)), "IPv4");
	assert_int_equal(node_port(svc, 0), 0);
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), 2768);
	json_decref(svc);

	/* The kubernetes Service asks for the first address. */
	char first[API_ALLOC_IP_LEN];
	api_ip_range_first(&f->a.ip.range, first);
	svc = create(f, "{\"spec\":{\"clusterIP\":\"10.96.0.1\",\"ports\":[{\"port\":443}]}}", 0);
	ASSERT_NO_CAUSES(f);
	assert_string_equal(spec_str(svc, "clusterIP"), first);
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(json_object_get(svc, "spec"), "clusterIPs"), 0)),
			    "10.96.0.1");
	json_decref(svc);

	/* clusterIPs alone is enough. */
	svc = create(f, "{\"spec\":{\"clusterIPs\":[\"10.96.0.2\"]}}", 0);
	ASSERT_NO_CAUSES(f);
	assert_string_equal(spec_str(svc, "clusterIP"), "10.96.0.2");
	json_decref(svc);
	assert_int_equal(api_ip_alloc_free(&f->a.ip), (1U << 20) - 2 - 3);
}

static void test_svc_ip_out_of_range(void **state)
{
	struct fixture *f = *state;
	uint32_t before = api_ip_alloc_free(&f->a.ip);
	json_t *svc = create(f, "{\"spec\":{\"clusterIP\":\"10.0.0.1\"}}", 0);
	ASSERT_ONE_CAUSE(
		f, "spec.clusterIPs",
		"Invalid value: [\"10.0.0.1\"]: failed to allocate IP 10.0.0.1: the provided IP (10.0.0.1) "
		"is not in the valid range. The range of valid IPs is 10.96.0.0/12");
	assert_int_equal(api_ip_alloc_free(&f->a.ip), before);
	json_decref(svc);
}

static void test_svc_ip_in_use(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(api_ip_alloc_mark(&f->a.ip, "10.96.0.10"), 0);
	json_t *svc = create(
		f,
		"{\"spec\":{\"clusterIP\":\"10.96.0.10\",\"type\":\"NodePort\",\"ports\":[{\"port\":53}]}}",
		0);
	ASSERT_ONE_CAUSE(f, "spec.clusterIPs",
			 "failed to allocate IP 10.96.0.10: provided IP is already allocated");
	/* Nothing was claimed: no node port either. */
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), 2768);
	json_decref(svc);
}

static void test_svc_ip_malformed(void **state)
{
	struct fixture *f = *state;
	json_t *svc = create(f, "{\"spec\":{\"clusterIP\":\"10.96.0.300\"}}", 0);
	ASSERT_ONE_CAUSE(f, "spec.clusterIPs[0]", "must be a valid IP address");
	json_decref(svc);
	api_errors_close(&f->e);
	api_errors_init(&f->e);
	svc = create(f, "{\"spec\":{\"clusterIP\":\"10.96.0.5\",\"clusterIPs\":[\"10.96.0.6\"]}}", 0);
	ASSERT_ONE_CAUSE(f, "spec.clusterIPs", "must match");
	json_decref(svc);
	api_errors_close(&f->e);
	api_errors_init(&f->e);
	svc = create(f, "{\"spec\":{\"ipFamilyPolicy\":\"RequireDualStack\"}}", 0);
	ASSERT_ONE_CAUSE(f, "spec.ipFamilyPolicy", "not configured for dual-stack");
	json_decref(svc);
	api_errors_close(&f->e);
	api_errors_init(&f->e);
	svc = create(f, "{\"spec\":{\"ipFamilies\":[\"IPv6\"]}}", 0);
	ASSERT_ONE_CAUSE(f, "spec.ipFamilies", "IPv6 is not configured");
	json_decref(svc);
	api_errors_close(&f->e);
	api_errors_init(&f->e);
	svc = create(f, "{\"spec\":{\"type\":\"Bogus\"}}", 0);
	ASSERT_ONE_CAUSE(f, "spec.type", "Unsupported value: \"Bogus\"");
	json_decref(svc);
	assert_int_equal(api_ip_alloc_free(&f->a.ip), (1U << 20) - 2);

	/* PreferDualStack is single stack here, and kept. */
	api_errors_close(&f->e);
	api_errors_init(&f->e);
	svc = create(f, "{\"spec\":{\"ipFamilyPolicy\":\"PreferDualStack\",\"ipFamilies\":[\"IPv4\"]}}", 0);
	ASSERT_NO_CAUSES(f);
	assert_string_equal(spec_str(svc, "ipFamilyPolicy"), "PreferDualStack");
	assert_non_null(spec_str(svc, "clusterIP"));
	json_decref(svc);
}

static void test_svc_headless(void **state)
{
	struct fixture *f = *state;
	json_t *svc = create(f,
			     "{\"spec\":{\"clusterIP\":\"None\",\"selector\":{\"app\":\"db\"},\"ports\":[{"
			     "\"port\":5432}]}}",
			     0);
	ASSERT_NO_CAUSES(f);
	assert_string_equal(spec_str(svc, "clusterIP"), "None");
	assert_string_equal(json_string_value(json_array_get(
				    json_object_get(json_object_get(svc, "spec"), "clusterIPs"), 0)),
			    "None");
	assert_string_equal(spec_str(svc, "ipFamilyPolicy"), "SingleStack");
	assert_int_equal(api_ip_alloc_free(&f->a.ip), (1U << 20) - 2);
	json_decref(svc);

	/* Without a selector it defaults to both families. */
	svc = create(f, "{\"spec\":{\"clusterIPs\":[\"None\"]}}", 0);
	ASSERT_NO_CAUSES(f);
	assert_string_equal(spec_str(svc, "clusterIP"), "None");
	assert_string_equal(spec_str(svc, "ipFamilyPolicy"), "RequireDualStack");
	assert_int_equal(json_array_size(json_object_get(json_object_get(svc, "spec"), "ipFamilies")), 2);
	json_decref(svc);

	/* Headless NodePort makes no sense. */
	svc = create(f, "{\"spec\":{\"clusterIP\":\"None\",\"type\":\"NodePort\",\"ports\":[{\"port\":1}]}}",
		     0);
	ASSERT_ONE_CAUSE(f, "spec.clusterIPs[0]", "may not be set to 'None' for NodePort services");
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), 2768);
	json_decref(svc);
}

static void test_svc_external_name(void **state)
{
	struct fixture *f = *state;
	json_t *svc = create(f,
			     "{\"spec\":{\"type\":\"ExternalName\",\"externalName\":\"db.example.com\","
			     "\"ipFamilyPolicy\":\"SingleStack\"}}",
			     0);
	ASSERT_NO_CAUSES(f);
	json_t *spec = json_object_get(svc, "spec");
	assert_null(json_object_get(spec, "clusterIP"));
	assert_null(json_object_get(spec, "clusterIPs"));
	assert_null(json_object_get(spec, "ipFamilies"));
	assert_null(json_object_get(spec, "ipFamilyPolicy"));
	assert_int_equal(api_ip_alloc_free(&f->a.ip), (1U << 20) - 2);
	json_decref(svc);

	svc = create(f, "{\"spec\":{\"type\":\"ExternalName\",\"clusterIP\":\"10.96.0.9\"}}", 0);
	ASSERT_ONE_CAUSE(f, "spec.clusterIP", "may not be set for ExternalName services");
	json_decref(svc);
}

static void test_svc_node_port(void **state)
{
	struct fixture *f = *state;
	json_t *svc = create(f,
			     "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"name\":\"http\",\"port\":80},"
			     "{\"name\":\"https\",\"port\":443,\"nodePort\":30443},"
			     "{\"name\":\"dns\",\"port\":53,\"protocol\":\"UDP\"},"
			     "{\"name\":\"dns-tcp\",\"port\":53,\"protocol\":\"TCP\"}]}}",
			     0);
	ASSERT_NO_CAUSES(f);
	assert_non_null(spec_str(svc, "clusterIP"));
	json_int_t http = node_port(svc, 0);
	assert_true(http >= 30000 && http <= 32767 && http != 30443);
	assert_int_equal(node_port(svc, 1), 30443);
	/* One port number over two protocols shares its nodePort. */
	assert_int_equal(node_port(svc, 2), node_port(svc, 3));
	assert_true(node_port(svc, 2) != http && node_port(svc, 2) != 30443);
	assert_true(api_port_alloc_used(&f->a.node_ports, 30443));
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), 2768 - 3);
	json_decref(svc);

	/* LoadBalancer with Local traffic gets a health check port. */
	svc = create(f,
		     "{\"spec\":{\"type\":\"LoadBalancer\",\"externalTrafficPolicy\":\"Local\","
		     "\"ports\":[{\"port\":80}]}}",
		     0);
	ASSERT_NO_CAUSES(f);
	json_int_t hc =
		json_integer_value(json_object_get(json_object_get(svc, "spec"), "healthCheckNodePort"));
	assert_true(hc >= 30000 && hc != node_port(svc, 0));
	assert_true(api_port_alloc_used(&f->a.node_ports, hc));
	json_decref(svc);

	/* allocateLoadBalancerNodePorts false: only what is asked for. */
	svc = create(f,
		     "{\"spec\":{\"type\":\"LoadBalancer\",\"allocateLoadBalancerNodePorts\":false,"
		     "\"ports\":[{\"port\":80},{\"port\":81,\"nodePort\":31081}]}}",
		     0);
	ASSERT_NO_CAUSES(f);
	assert_int_equal(node_port(svc, 0), 0);
	assert_int_equal(node_port(svc, 1), 31081);
	json_decref(svc);
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), 2768 - 6);
}

static void test_svc_node_port_requested(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(api_port_alloc_mark(&f->a.node_ports, 30080), 0);
	uint32_t ip_free = api_ip_alloc_free(&f->a.ip);

	json_t *svc =
		create(f, "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"port\":80,\"nodePort\":80}]}}", 0);
	ASSERT_ONE_CAUSE(
		f, "spec.ports[0].nodePort",
		"Invalid value: 80: provided port is not in the valid range. The range of valid ports is "
		"30000-32767");
	json_decref(svc);
	assert_int_equal(api_ip_alloc_free(&f->a.ip), ip_free); /* the IP was given back */

	api_errors_close(&f->e);
	api_errors_init(&f->e);
	svc = create(f,
		     "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"port\":81},{\"port\":80,\"nodePort\":"
		     "30080}]}}",
		     0);
	ASSERT_ONE_CAUSE(f, "spec.ports[1].nodePort",
			 "Invalid value: 30080: provided port is already allocated");
	json_decref(svc);

	api_errors_close(&f->e);
	api_errors_init(&f->e);
	svc = create(f,
		     "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"port\":80,\"nodePort\":30100},"
		     "{\"port\":81,\"nodePort\":30100}]}}",
		     0);
	ASSERT_ONE_CAUSE(f, "spec.ports[1].nodePort", "Duplicate value: 30100");
	json_decref(svc);

	api_errors_close(&f->e);
	api_errors_init(&f->e);
	svc = create(f, "{\"spec\":{\"type\":\"ClusterIP\",\"ports\":[{\"port\":80,\"nodePort\":30100}]}}",
		     0);
	ASSERT_ONE_CAUSE(f, "spec.ports[0].nodePort",
			 "Forbidden: may not be used when `type` is 'ClusterIP'");
	json_decref(svc);

	api_errors_close(&f->e);
	api_errors_init(&f->e);
	svc = create(
		f,
		"{\"spec\":{\"type\":\"NodePort\",\"healthCheckNodePort\":30200,\"ports\":[{\"port\":80}]}}",
		0);
	ASSERT_ONE_CAUSE(f, "spec.healthCheckNodePort", "may only be set when");
	json_decref(svc);

	/* Nothing of the refused Services stayed claimed. */
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), 2767);
	assert_int_equal(api_ip_alloc_free(&f->a.ip), ip_free);
}

/* A full range is -ENOSPC with kube-apiserver's message, nothing kept. */
static void test_svc_exhaustion(void **state)
{
	struct fixture *f = *state;
	json_t *svc;
	for (int i = 0; i < 4; i++) {
		svc = create(f, "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"port\":80}]}}", 0);
		ASSERT_NO_CAUSES(f);
		json_decref(svc);
	}
	assert_int_equal(api_ip_alloc_free(&f->a.ip), 2);
	svc = create(f, "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"port\":80}]}}", -ENOSPC);
	assert_string_equal(f->a.errmsg, "failed to allocate a nodePort: range is full");
	ASSERT_NO_CAUSES(f);
	assert_int_equal(api_ip_alloc_free(&f->a.ip), 2);
	json_decref(svc);

	for (int i = 0; i < 2; i++) {
		svc = create(f, "{\"spec\":{\"ports\":[{\"port\":80}]}}", 0);
		json_decref(svc);
	}
	svc = create(f, "{\"spec\":{\"ports\":[{\"port\":80}]}}", -ENOSPC);
	assert_string_equal(f->a.errmsg, "failed to allocate a serviceIP: range is full");
	json_decref(svc);
	/* Headless and ExternalName Services still fit. */
	svc = create(f, "{\"spec\":{\"clusterIP\":\"None\",\"selector\":{\"a\":\"b\"}}}", 0);
	json_decref(svc);
	svc = create(f, "{\"spec\":{\"type\":\"ExternalName\",\"externalName\":\"x.example\"}}", 0);
	json_decref(svc);
	ASSERT_NO_CAUSES(f);
}

/* ---------------------------------------------------------------- Services: used sets */

static void test_mark_service(void **state)
{
	struct fixture *f = *state;
	json_t *svc = load("{\"spec\":{\"type\":\"LoadBalancer\",\"clusterIP\":\"10.96.5.5\","
			   "\"clusterIPs\":[\"10.96.5.5\"],\"healthCheckNodePort\":31000,"
			   "\"ports\":[{\"port\":80,\"nodePort\":30080},{\"port\":81,\"nodePort\":80}]}}");
	api_alloc_mark_service(&f->a, svc);
	assert_true(api_ip_alloc_used(&f->a.ip, "10.96.5.5"));
	assert_true(api_port_alloc_used(&f->a.node_ports, 30080));
	assert_true(api_port_alloc_used(&f->a.node_ports, 31000));
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), 2766); /* 80 is outside: ignored */
	api_alloc_mark_service(&f->a, svc);			       /* twice is harmless */
	api_alloc_release_service(&f->a, svc);
	assert_false(api_ip_alloc_used(&f->a.ip, "10.96.5.5"));
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), 2768);
	json_decref(svc);

	/* Headless and ExternalName hold nothing. */
	svc = load("{\"spec\":{\"clusterIP\":\"None\"}}");
	api_alloc_mark_service(&f->a, svc);
	json_decref(svc);
	svc = load("{\"spec\":{\"type\":\"ExternalName\",\"clusterIP\":\"10.96.0.1\"}}");
	api_alloc_mark_service(&f->a, svc);
	json_decref(svc);
	assert_int_equal(api_ip_alloc_free(&f->a.ip), (1U << 20) - 2);
}

/* ---------------------------------------------------------------- Services: update */

static void test_update_keeps(void **state)
{
	struct fixture *f = *state;
	json_t *old = create(f,
			     "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"name\":\"a\",\"port\":80},"
			     "{\"name\":\"b\",\"port\":81}]}}",
			     0);
	const char *ip = spec_str(old, "clusterIP");
	json_int_t np_a = node_port(old, 0), np_b = node_port(old, 1);
	uint32_t ports_free = api_port_alloc_free(&f->a.node_ports);

	/* The body leaves every allocated field out (a PUT of the manifest);
	 * the ports are reordered, one is new. */
	json_t *svc = update(f, old,
			     "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"name\":\"b\",\"port\":8081},"
			     "{\"name\":\"a\",\"port\":80},{\"name\":\"c\",\"port\":82}]}}",
			     0);
	ASSERT_NO_CAUSES(f);
	assert_string_equal(spec_str(svc, "clusterIP"), ip);
	assert_string_equal(spec_str(svc, "ipFamilyPolicy"), "SingleStack");
	assert_int_equal(node_port(svc, 0), np_b);
	assert_int_equal(node_port(svc, 1), np_a);
	json_int_t np_c = node_port(svc, 2);
	assert_true(np_c != np_a && np_c != np_b && np_c >= 30000);
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), ports_free - 1);
	assert_true(api_ip_alloc_used(&f->a.ip, ip));

	/* The same update again changes nothing (sets built with the old
	 * Service in them, as the caller scans the store). */
	json_t *again = update(f, svc,
			       "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"name\":\"b\",\"port\":8081},"
			       "{\"name\":\"a\",\"port\":80},{\"name\":\"c\",\"port\":82}]}}",
			       0);
	ASSERT_NO_CAUSES(f);
	assert_true(json_equal(again, svc));
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), ports_free - 1);
	json_decref(again);
	json_decref(svc);
	json_decref(old);
}

static void test_update_immutable(void **state)
{
	struct fixture *f = *state;
	json_t *old = create(f, "{\"spec\":{\"clusterIP\":\"10.96.1.1\"}}", 0);
	uint32_t before = api_ip_alloc_free(&f->a.ip);
	json_t *svc = update(f, old, "{\"spec\":{\"clusterIP\":\"10.96.1.2\"}}", 0);
	ASSERT_ONE_CAUSE(f, "spec.clusterIP", "Invalid value: \"10.96.1.2\": field is immutable");
	/* Refused: the old address is still held, the new one is free. */
	assert_true(api_ip_alloc_used(&f->a.ip, "10.96.1.1"));
	assert_false(api_ip_alloc_used(&f->a.ip, "10.96.1.2"));
	assert_int_equal(api_ip_alloc_free(&f->a.ip), before);
	json_decref(svc);
	json_decref(old);

	/* "" -> allocate: an old Service without an address gets one. */
	api_errors_close(&f->e);
	api_errors_init(&f->e);
	old = load("{\"spec\":{\"type\":\"ExternalName\",\"externalName\":\"x.example\"}}");
	svc = update(f, old,
		     "{\"spec\":{\"type\":\"ClusterIP\",\"clusterIP\":\"\",\"ports\":[{\"port\":80}]}}", 0);
	ASSERT_NO_CAUSES(f);
	assert_true(api_ip_alloc_used(&f->a.ip, spec_str(svc, "clusterIP")));
	assert_int_equal(api_ip_alloc_free(&f->a.ip), before - 1);

	/* ... and to ExternalName again frees it. */
	json_t *back = update(f, svc,
			      "{\"spec\":{\"type\":\"ExternalName\",\"externalName\":\"x.example\","
			      "\"clusterIP\":\"\"}}",
			      0);
	ASSERT_NO_CAUSES(f);
	assert_null(json_object_get(json_object_get(back, "spec"), "clusterIP"));
	assert_int_equal(api_ip_alloc_free(&f->a.ip), before);
	json_decref(back);
	json_decref(svc);
	json_decref(old);
}

static void test_update_type_change(void **state)
{
	struct fixture *f = *state;
	json_t *old = create(f,
			     "{\"spec\":{\"type\":\"NodePort\",\"externalTrafficPolicy\":\"Cluster\","
			     "\"ports\":[{\"name\":\"a\",\"port\":80}]}}",
			     0);
	const char *ip = spec_str(old, "clusterIP");
	json_int_t np = node_port(old, 0);
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), 2767);

	/* NodePort -> ClusterIP with the body still carrying the old
	 * nodePort (kubectl edit): it is dropped and freed. */
	char body[256];
	snprintf(body, sizeof(body),
		 "{\"spec\":{\"type\":\"ClusterIP\",\"clusterIP\":\"%s\",\"ports\":[{\"name\":\"a\",\"port\":"
		 "80,"
		 "\"nodePort\":%lld}]}}",
		 ip, (long long)np);
	json_t *svc = update(f, old, body, 0);
	ASSERT_NO_CAUSES(f);
	assert_int_equal(node_port(svc, 0), 0);
	assert_string_equal(spec_str(svc, "clusterIP"), ip);
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), 2768);
	assert_false(api_port_alloc_used(&f->a.node_ports, np));

	/* ClusterIP -> LoadBalancer allocates again. */
	json_t *lb = update(
		f, svc, "{\"spec\":{\"type\":\"LoadBalancer\",\"ports\":[{\"name\":\"a\",\"port\":80}]}}", 0);
	ASSERT_NO_CAUSES(f);
	assert_true(node_port(lb, 0) >= 30000);
	assert_string_equal(spec_str(lb, "clusterIP"), ip);
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), 2767);

	/* LoadBalancer -> Local traffic policy adds a health check port;
	 * back to Cluster drops it. */
	json_t *local = update(f, lb,
			       "{\"spec\":{\"type\":\"LoadBalancer\",\"externalTrafficPolicy\":\"Local\","
			       "\"ports\":[{\"name\":\"a\",\"port\":80}]}}",
			       0);
	ASSERT_NO_CAUSES(f);
	assert_int_equal(node_port(local, 0), node_port(lb, 0));
	json_int_t hc =
		json_integer_value(json_object_get(json_object_get(local, "spec"), "healthCheckNodePort"));
	assert_true(hc >= 30000);
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), 2766);
	snprintf(body, sizeof(body),
		 "{\"spec\":{\"type\":\"LoadBalancer\",\"externalTrafficPolicy\":\"Cluster\","
		 "\"healthCheckNodePort\":%lld,\"ports\":[{\"name\":\"a\",\"port\":80}]}}",
		 (long long)hc);
	json_t *cluster = update(f, local, body, 0);
	ASSERT_NO_CAUSES(f);
	assert_null(json_object_get(json_object_get(cluster, "spec"), "healthCheckNodePort"));
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), 2767);

	json_decref(cluster);
	json_decref(local);
	json_decref(lb);
	json_decref(svc);
	json_decref(old);
}

/* An update may ask for a new nodePort; a refused one restores the old. */
static void test_update_requested_port(void **state)
{
	struct fixture *f = *state;
	json_t *old = create(
		f, "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"port\":80,\"nodePort\":30080}]}}", 0);
	assert_int_equal(api_port_alloc_mark(&f->a.node_ports, 30090), 0);

	json_t *svc = update(
		f, old, "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"port\":80,\"nodePort\":30090}]}}", 0);
	ASSERT_ONE_CAUSE(f, "spec.ports[0].nodePort", "provided port is already allocated");
	assert_true(api_port_alloc_used(&f->a.node_ports, 30080));
	assert_int_equal(api_port_alloc_free(&f->a.node_ports), 2766);
	json_decref(svc);

	api_errors_close(&f->e);
	api_errors_init(&f->e);
	svc = update(f, old,
		     "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"port\":80,\"nodePort\":30091}]}}", 0);
	ASSERT_NO_CAUSES(f);
	assert_false(api_port_alloc_used(&f->a.node_ports, 30080));
	assert_true(api_port_alloc_used(&f->a.node_ports, 30091));
	json_decref(svc);
	json_decref(old);
}

/* A Service stored before the range changed keeps its address. */
static void test_update_after_range_change(void **state)
{
	struct fixture *f = *state;
	json_t *old = load(
		"{\"spec\":{\"type\":\"NodePort\",\"clusterIP\":\"10.0.0.10\",\"clusterIPs\":[\"10.0.0.10\"],"
		"\"ipFamilies\":[\"IPv4\"],\"ipFamilyPolicy\":\"SingleStack\","
		"\"ports\":[{\"port\":80,\"nodePort\":20000}]}}");
	api_alloc_mark_service(&f->a, old);
	json_t *svc = update(f, old, "{\"spec\":{\"type\":\"NodePort\",\"ports\":[{\"port\":80}]}}", 0);
	ASSERT_NO_CAUSES(f);
	assert_string_equal(spec_str(svc, "clusterIP"), "10.0.0.10");
	assert_int_equal(node_port(svc, 0), 20000);
	json_decref(svc);
	json_decref(old);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_port_range_parse),
		cmocka_unit_test_setup_teardown(test_ip_exhaustion, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_ip_reserved, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_ip_v6, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ip_static_block, setup, teardown),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test_setup_teardown(test_port_exhaustion, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_port_requested, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_cluster_ip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_ip_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_ip_in_use, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_ip_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_headless, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_external_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_node_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_node_port_requested, setup, teardown),
		cmocka_unit_test_setup_teardown(test_svc_exhaustion, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_mark_service, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_keeps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_immutable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_type_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_requested_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_after_range_change, setup, teardown),
	};
	return cmocka_run_group_tests_name("api_alloc", tests, NULL, NULL);
}
