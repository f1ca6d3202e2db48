/* Unit tests of runtime/registry.c: reference parsing, registry lookup,
 * manifest classification and platform selection, digest and size checks
 * of streamed blobs, WWW-Authenticate parsing, token URLs, and whole pulls
 * against a tiny fake registry on loopback (token flow, digest mismatch
 * on the wire, not found, unauthorized, unreachable).
 *
 * The module's statics are reached by including its source (the archive's
 * copy is then never linked: every symbol is already defined here). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "runtime/registry.c"

/* ------------------------------------------------------------ Fixture */

static const char *const H64 =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/* ---------------------------------------------------------- references */

static void ref_parse_forms(void **state)
{
	struct rt_image_ref r;
	char buf[256];

	(void)state;
	assert_int_equal(rt_image_ref_parse("localhost:5000/busybox:latest", &r), 0);
	assert_string_equal(r.name, "localhost:5000/busybox:latest");
	assert_string_equal(r.domain, "localhost:5000");
	assert_string_equal(r.repository, "busybox");
	assert_string_equal(r.tag, "latest");
	assert_null(r.digest);
	rt_image_ref_clear(&r);

	assert_int_equal(rt_image_ref_parse("busybox", &r), 0);
	assert_string_equal(r.domain, "docker.io");
	assert_string_equal(r.repository, "library/busybox");
	assert_string_equal(r.tag, "latest");
	rt_image_ref_clear(&r);

	assert_int_equal(rt_image_ref_parse("127.0.0.1:5000/team/app/web", &r), 0);
	assert_string_equal(r.domain, "127.0.0.1:5000");
	assert_string_equal(r.repository, "team/app/web");
	assert_string_equal(r.tag, "latest");
	rt_image_ref_clear(&r);

	snprintf(buf, sizeof(buf), "localhost:5000/busybox@sha256:%s", H64);
	assert_int_equal(rt_image_ref_parse(buf, &r), 0);
	assert_string_equal(r.repository, "busybox");
	assert_null(r.tag);
	assert_string_equal(r.digest + 7, H64);
	assert_memory_equal(r.digest, "sha256:", 7);
	rt_image_ref_clear(&r);

	snprintf(buf, sizeof(buf), "reg.example/x/y:v1.2@sha256:%s", H64);
	assert_int_equal(rt_image_ref_parse(buf, &r), 0);
	assert_string_equal(r.domain, "reg.example");
	assert_string_equal(r.repository, "x/y");
	assert_string_equal(r.tag, "v1.2");
	assert_non_null(r.digest);
	rt_image_ref_clear(&r);

	assert_int_equal(rt_image_ref_parse("Bad Name", &r), -EINVAL);
	assert_int_equal(rt_image_ref_parse("localhost:5000/Busybox", &r), -EINVAL);
	assert_int_equal(rt_image_ref_parse("x@sha256:1234", &r), -EINVAL);
	assert_int_equal(rt_image_ref_parse("", &r), -EINVAL);
	rt_image_ref_clear(NULL);
}

static void registry_lookup(void **state)
{
	struct rt_registry regs[] = {
	    {.host = "localhost:5000", .url = "http://127.0.0.1:5000/"},
	    {.host = "docker.io"},
	    {.host = "reg.example"},
	    {.host = "localhost:5000", .url = "http://second"},
	};
	struct rt_pull_opts o = {.registries = regs, .n_registries = 4};
	const struct rt_registry *r;
	char *base;

	(void)state;
	r = find_registry(&o, "localhost:5000");
	assert_ptr_equal(r, &regs[0]); /* first wins */
	base = registry_base(r);
	assert_string_equal(base, "http://127.0.0.1:5000");
	free(base);
	base = registry_base(find_registry(&o, "docker.io"));
	assert_string_equal(base, "https://registry-1.docker.io");
	free(base);
	base = registry_base(find_registry(&o, "reg.example"));
	assert_string_equal(base, "https://reg.example");
	free(base);
	assert_null(find_registry(&o, "localhost"));
	assert_null(find_registry(&o, "localhost:500"));
	assert_null(find_registry(NULL, "docker.io"));
}

/* ----------------------------------------------------------- manifests */

static json_t *parse(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);

	assert_non_null(j);
	return j;
}

static void classify_media_types(void **state)
{
	static const struct {
		const char *json;
		const char *ctype;
		enum mtype want;
	} cases[] = {
	    {"{\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":[]}", NULL, MTYPE_INDEX},
	    {"{\"mediaType\":\"" MT_DOCKER_LIST "\",\"manifests\":[]}", NULL, MTYPE_INDEX},
	    {"{\"mediaType\":\"" MT_OCI_MANIFEST "\"}", NULL, MTYPE_MANIFEST},
	    {"{\"mediaType\":\"" MT_DOCKER_MANIFEST "\"}", NULL, MTYPE_MANIFEST},
	    /* OCI makes mediaType optional: the header, then the shape. */
	    {"{\"schemaVersion\":2}", MT_OCI_INDEX "; charset=utf-8", MTYPE_INDEX},
	    {"{\"schemaVersion\":2}", MT_DOCKER_MANIFEST, MTYPE_MANIFEST},
	    {"{\"schemaVersion\":2,\"manifests\":[]}", "application/json", MTYPE_INDEX},
	    {"{\"schemaVersion\":2,\"config\":{},\"layers\":[]}", NULL, MTYPE_MANIFEST},
	    {"{\"schemaVersion\":1,\"fsLayers\":[]}", NULL, MTYPE_SCHEMA1},
	    {"{\"schemaVersion\":2}",
	     "application/vnd.docker.distribution.manifest.v1+prettyjws", MTYPE_SCHEMA1},
	    {"{\"mediaType\":\"application/vnd.example+json\"}", NULL, MTYPE_UNKNOWN},
	    {"{}", NULL, MTYPE_UNKNOWN},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = parse(cases[i].json);

		assert_int_equal(classify(j, cases[i].ctype), cases[i].want);
		json_decref(j);
	}
}

static const char INDEX[] =
    "{\"mediaType\":\"" MT_OCI_INDEX "\",\"manifests\":["
    "{\"digest\":\"sha256:aaaa\",\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\","
    "\"variant\":\"v8\"}},"
    "{\"digest\":\"sha256:bbbb\",\"platform\":{\"os\":\"windows\",\"architecture\":\"amd64\"}},"
    "{\"digest\":\"sha256:cccc\",\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\","
    "\"variant\":\"v3\"}},"
    "{\"digest\":\"sha256:dddd\",\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
    "{\"digest\":\"sha256:eeee\",\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"},"
    "\"annotations\":{\"vnd.docker.reference.type\":\"attestation-manifest\"}},"
    "{\"digest\":\"sha256:ffff\",\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\","
    "\"variant\":\"v7\"}},"
    "{\"digest\":\"sha256:1111\",\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\","
    "\"variant\":\"v6\"}}]}";

static const char *picked(const json_t *index, const char *os, const char *arch,
			  const char *variant)
{
	const json_t *d = pick_manifest(index, os, arch, variant);

	return d != NULL ? json_string_value(json_object_get(d, "digest")) : NULL;
}

static void pick_platform(void **state)
{
	json_t *idx = parse(INDEX);
	json_t *only_other = parse("{\"manifests\":[{\"digest\":\"sha256:aaaa\",\"platform\":"
				   "{\"os\":\"linux\",\"architecture\":\"s390x\"}},"
				   "{\"digest\":\"sha256:bbbb\"}]}");

	(void)state;
	/* No variant asked: the entry without one beats amd64/v3. */
	assert_string_equal(picked(idx, "linux", "amd64", NULL), "sha256:dddd");
	assert_string_equal(picked(idx, "linux", "amd64", "v3"), "sha256:cccc");
	assert_string_equal(picked(idx, "linux", "arm64", NULL), "sha256:aaaa");
	assert_string_equal(picked(idx, "linux", "arm", "v6"), "sha256:1111");
	/* Another variant is still better than nothing. */
	assert_string_equal(picked(idx, "linux", "arm", NULL), "sha256:ffff");
	assert_string_equal(picked(idx, "windows", "amd64", NULL), "sha256:bbbb");
	assert_null(picked(idx, "linux", "riscv64", NULL));
	assert_null(picked(only_other, "linux", "amd64", NULL));
	/* The machine's own architecture is one of the names indexes use. */
	assert_true(strlen(host_arch()) > 0);
	json_decref(only_other);
	json_decref(idx);
}

static void layer_types(void **state)
{
	(void)state;
	assert_true(layer_type_ok(NULL));
	assert_true(layer_type_ok("application/vnd.oci.image.layer.v1.tar"));
	assert_true(layer_type_ok("application/vnd.oci.image.layer.v1.tar+gzip"));
	assert_true(layer_type_ok("application/vnd.oci.image.layer.v1.tar+zstd"));
	assert_true(layer_type_ok("application/vnd.docker.image.rootfs.diff.tar.gzip"));
	assert_true(layer_type_ok("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"));
	assert_false(layer_type_ok("application/vnd.oci.image.layer.v1.tar+gzip+encrypted"));
	assert_false(layer_type_ok("application/vnd.cncf.helm.config.v1+json"));
	assert_false(layer_type_ok("application/vnd.example.wasm.v1"));
}

/* -------------------------------------------------------------- digests */

static void sink_checks_digest_and_size(void **state)
{
	static const char data[] = "hello, registry\n";
	char digest[80], hex[65];
	struct sink s;
	size_t n = strlen(data);

	(void)state;
	rt__sha256_hex(data, n, hex);
	snprintf(digest, sizeof(digest), "sha256:%s", hex);

	/* Fed in pieces, the streamed digest matches the whole's. */
	assert_int_equal(sink_init(&s, -1, 1024), 0);
	assert_int_equal(sink_feed(&s, data, 5), 0);
	assert_int_equal(sink_feed(&s, data + 5, n - 5), 0);
	assert_int_equal(s.len, n);
	assert_memory_equal(s.buf, data, n);
	assert_int_equal(sink_check(&s, digest, (int64_t)n), 0);
	sink_close(&s);

	/* One flipped byte. */
	assert_int_equal(sink_init(&s, -1, 1024), 0);
	assert_int_equal(sink_feed(&s, "Hello, registry\n", n), 0);
	assert_int_equal(sink_check(&s, digest, (int64_t)n), -EBADMSG);
	sink_close(&s);

	/* Right bytes, wrong announced size. */
	assert_int_equal(sink_init(&s, -1, 1024), 0);
	assert_int_equal(sink_feed(&s, data, n), 0);
	assert_int_equal(sink_check(&s, digest, (int64_t)n + 1), -EBADMSG);
	sink_close(&s);

	/* More than announced stops the transfer at once. */
	assert_int_equal(sink_init(&s, -1, n - 1), 0);
	assert_int_equal(sink_feed(&s, data, n), -EFBIG);
	assert_int_equal(s.err, -EFBIG);
	sink_close(&s);

	/* Only sha256 is supported; malformed digests are refused. */
	assert_int_equal(sink_init(&s, -1, 1024), 0);
	assert_int_equal(sink_feed(&s, data, n), 0);
	assert_int_equal(sink_check(&s, "sha512:abcd", -1), -ENOTSUP);
	assert_int_equal(sink_check(&s, "sha256:ABCD", -1), -ENOTSUP);
	sink_close(&s);

	/* A reset (retry after a 401) forgets the first attempt. */
	assert_int_equal(sink_init(&s, -1, 1024), 0);
	assert_int_equal(sink_feed(&s, "garbage", 7), 0);
	assert_int_equal(sink_reset(&s), 0);
	assert_int_equal(sink_feed(&s, data, n), 0);
	assert_int_equal(sink_check(&s, digest, (int64_t)n), 0);
	sink_close(&s);
}

static void sink_to_file(void **state)
{
	static const char data[] = "layer bytes";
	char path[] = "/tmp/test-runtime-registry-XXXXXX", digest[80], hex[65], *text;
	size_t len;
	struct sink s;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	rt__sha256_hex(data, strlen(data), hex);
	snprintf(digest, sizeof(digest), "sha256:%s", hex);
	assert_int_equal(sink_init(&s, fd, 100), 0);
	assert_int_equal(sink_feed(&s, "junk junk junk", 14), 0);
	assert_int_equal(sink_reset(&s), 0);
	assert_int_equal(sink_feed(&s, data, strlen(data)), 0);
	assert_int_equal(sink_check(&s, digest, (int64_t)strlen(data)), 0);
	sink_close(&s);
	close(fd);
	assert_int_equal(rt__read_file(path, &text, &len), 0);
	assert_int_equal(len, strlen(data));
	assert_string_equal(text, data);
	free(text);
	unlink(path);
}

/* ----------------------------------------------------------------- auth */

static void challenge_params(void **state)
{
	static const char ch[] =
	    "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
	    "scope=\"repository:library/busybox:pull,push\"";
	char *v;

	(void)state;
	v = challenge_param(ch, "realm");
	assert_string_equal(v, "https://auth.docker.io/token");
	free(v);
	v = challenge_param(ch, "service");
	assert_string_equal(v, "registry.docker.io");
	free(v);
	/* A comma inside quotes stays in the value. */
	v = challenge_param(ch, "scope");
	assert_string_equal(v, "repository:library/busybox:pull,push");
	free(v);
	assert_null(challenge_param(ch, "error"));
	/* Case of the key, spaces, unquoted tokens, escapes. */
	v = challenge_param("Bearer  Realm=\"http://a/t\" , service=reg,x=\"a\\\"b\"", "realm");
	assert_string_equal(v, "http://a/t");
	free(v);
	v = challenge_param("Bearer  Realm=\"http://a/t\" , service=reg,x=\"a\\\"b\"", "service");
	assert_string_equal(v, "reg");
	free(v);
	v = challenge_param("Bearer  Realm=\"http://a/t\" , service=reg,x=\"a\\\"b\"", "x");
	assert_string_equal(v, "a\"b");
	free(v);
	/* The scheme itself is no parameter. */
	assert_null(challenge_param("Basic realm=\"r\"", "Basic"));
	v = challenge_param("Basic realm=\"basic-realm\"", "realm");
	assert_string_equal(v, "basic-realm");
	free(v);
}

static void token_urls(void **state)
{
	CURL *c = curl_easy_init();
	char *u;

	(void)state;
	assert_non_null(c);
	u = token_url(c, "https://auth.example/token", "registry.example",
		      "repository:library/busybox:pull");
	assert_string_equal(u, "https://auth.example/token?service=registry.example&scope="
			       "repository%3Alibrary%2Fbusybox%3Apull");
	free(u);
	u = token_url(c, "http://127.0.0.1:1/t?x=1", NULL, "a b");
	assert_string_equal(u, "http://127.0.0.1:1/t?x=1&scope=a%20b");
	free(u);
	u = token_url(c, "http://h/t", "s", NULL);
	assert_string_equal(u, "http://h/t?service=s");
	free(u);
	u = token_url(c, "http://h/t", NULL, NULL);
	assert_string_equal(u, "http://h/t");
	free(u);
	curl_easy_cleanup(c);
}

/* ---------------------------------------------------------- whole pulls */

struct fx {
	char dir[64];
	uv_loop_t loop;
	struct rt *rt;
};

static int set_up(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct rt_config cfg = {0};
	char state_dir[128], run_dir[128];

	strcpy(f->dir, "/tmp/test-runtime-registry-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(state_dir, sizeof(state_dir), "%s/state", f->dir);
	snprintf(run_dir, sizeof(run_dir), "%s/run", f->dir);
	cfg.state_dir = state_dir;
	cfg.run_dir = run_dir;
	cfg.shim = "/nonexistent";
	uv_loop_init(&f->loop);
	assert_int_equal(rt_new(&f->loop, &cfg, &f->rt), 0);
	*state = f;
	return 0;
}

static int tear_down(void **state)
{
	struct fx *f = *state;

	rt_free(f->rt);
	uv_loop_close(&f->loop);
	assert_int_equal(rt__rm_rf(f->dir), 0);
	free(f);
	return 0;
}

static void pull_bad_reference(void **state)
{
	struct fx *f = *state;
	char *id = NULL, *msg = NULL;

	assert_int_equal(rt_image_pull(f->rt, NULL, "Not A Name", &id, &msg), -EINVAL);
	assert_null(id);
	assert_string_equal(msg, "failed to pull image \"Not A Name\": invalid reference format");
	free(msg);
}

static void pull_without_registry_is_not_found(void **state)
{
	struct fx *f = *state;
	struct rt_registry reg = {.host = "localhost:5000", .url = "http://127.0.0.1:1"};
	struct rt_pull_opts o = {.registries = &reg, .n_registries = 1};
	char *msg = NULL;

	/* docker.io is not configured: nothing is contacted. */
	assert_int_equal(rt_image_pull(f->rt, &o, "busybox", NULL, &msg), -ENOENT);
	assert_string_equal(msg, "failed to pull image \"busybox\": docker.io/library/"
				 "busybox:latest: not found (no registry is configured for "
				 "docker.io)");
	free(msg);
	assert_int_equal(rt_image_pull(f->rt, NULL, "localhost:5000/x", NULL, NULL), -ENOENT);
}

static void pull_unreachable(void **state)
{
	struct fx *f = *state;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	char url[64], *msg = NULL, *tmp;
	struct rt_registry reg = {.host = "localhost:5000", .url = url};
	struct rt_pull_opts o = {.registries = &reg, .n_registries = 1};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	/* A bound port nobody listens on: connections are refused. */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", ntohs(sa.sin_port));
	assert_int_equal(rt_image_pull(f->rt, &o, "localhost:5000/busybox", NULL, &msg),
			 -EHOSTUNREACH);
	assert_non_null(strstr(msg, "cannot reach registry http://127.0.0.1:"));
	free(msg);
	close(fd);
	/* The temporary layout is gone. */
	tmp = rt__printf("%s/state/images/tmp", f->dir);
	assert_int_equal(rmdir(tmp), 0);
	free(tmp);
}

static void pull_cancelled(void **state)
{
	struct fx *f = *state;
	int cancel = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	char url[64], *msg = NULL;
	struct rt_registry reg = {.host = "localhost:5000", .url = url};
	struct rt_pull_opts o = {.registries = &reg, .n_registries = 1, .cancel = &cancel};

	/* A listener that never answers: only the cancel flag ends the pull
	 * (the connection completes in the kernel's backlog). */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(sa.sin_port));
	assert_int_equal(rt_image_pull(f->rt, &o, "localhost:5000/busybox", NULL, &msg),
			 -ECANCELED);
	assert_non_null(strstr(msg, "pull cancelled"));
	free(msg);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(ref_parse_forms),
	    cmocka_unit_test(registry_lookup),
	    cmocka_unit_test(classify_media_types),
	    cmocka_unit_test(pick_platform),
	    cmocka_unit_test(layer_types),
	    cmocka_unit_test(sink_checks_digest_and_size),
	    cmocka_unit_test(sink_to_file),
	    cmocka_unit_test(challenge_params),
	    cmocka_unit_test(token_urls),
	    cmocka_unit_test_setup_teardown(pull_bad_reference, set_up, tear_down),
	    cmocka_unit_test_setup_teardown(pull_without_registry_is_not_found, set_up, tear_down),
	    cmocka_unit_test_setup_teardown(pull_unreachable, set_up, tear_down),
	    cmocka_unit_test_setup_teardown(pull_cancelled, set_up, tear_down),
	};

	return cmocka_run_group_tests_name("runtime_registry", tests, NULL, NULL);
}
