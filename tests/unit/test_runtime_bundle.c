/* Unit tests of runtime/bundle.c and the pure parts of runtime/runc.c:
 * the OCI config.json an rt_spec gives, container ids, image references,
 * runc argv builders and runc output parsers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "runtime/internal.h"

/* ------------------------------------------------------------ Helpers */

static const char *const ARGS[] = {"sh", "-c", "echo hi", NULL};

static json_t *bundle(const struct rt_spec *spec)
{
	json_t *cfg = NULL;

	assert_int_equal(rt_bundle_json(spec, "rootfs", &cfg), 0);
	assert_non_null(cfg);
	return cfg;
}

static bool has_string(const json_t *a, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach (a, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return true;
	return false;
}

static const json_t *ns_of(const json_t *cfg, const char *type)
{
	size_t i;
	json_t *v;

	json_array_foreach (json_object_get(json_object_get(cfg, "linux"), "namespaces"), i, v)
		if (strcmp(json_string_value(json_object_get(v, "type")), type) == 0)
			return v;
	return NULL;
}

static const json_t *mount_at(const json_t *cfg, const char *dest)
{
	size_t i;
	json_t *v;
	const json_t *found = NULL;

	/* The last one wins, as in the kernel. */
	json_array_foreach (json_object_get(cfg, "mounts"), i, v)
		if (strcmp(json_string_value(json_object_get(v, "destination")), dest) == 0)
			found = v;
	return found;
}

static const json_t *caps(const json_t *cfg, const char *set)
{
	return json_object_get(json_object_get(json_object_get(cfg, "process"), "capabilities"),
			       set);
}

/* -------------------------------------------------------------- Tests */

static void defaults(void **state)
{
	struct rt_spec spec = {.args = ARGS, .uid = 1000, .gid = 2000};
	json_t *cfg, *p;

	(void)state;
	cfg = bundle(&spec);
	p = json_object_get(cfg, "process");
	assert_string_equal(json_string_value(json_object_get(cfg, "ociVersion")), "1.0.2");
	assert_string_equal(json_string_value(json_array_get(json_object_get(p, "args"), 2)),
			    "echo hi");
	assert_string_equal(json_string_value(json_object_get(p, "cwd")), "/");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "user"), "uid")),
			 1000);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(p, "user"), "gid")),
			 2000);
	assert_true(json_is_true(json_object_get(p, "noNewPrivileges")));
	assert_true(json_is_false(json_object_get(p, "terminal")));
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(cfg, "root"), "path")), "rootfs");
	assert_true(json_is_false(json_object_get(json_object_get(cfg, "root"), "readonly")));
	/* Docker's default set, nothing more. */
	assert_int_equal(json_array_size(caps(cfg, "bounding")), 14);
	assert_true(has_string(caps(cfg, "effective"), "CAP_CHOWN"));
	assert_false(has_string(caps(cfg, "bounding"), "CAP_SYS_ADMIN"));
	assert_false(has_string(caps(cfg, "bounding"), "CAP_NET_ADMIN"));
	/* Private namespaces, none with a path. */
	assert_non_null(ns_of(cfg, "pid"));
	assert_non_null(ns_of(cfg, "mount"));
	assert_non_null(ns_of(cfg, "network"));
	assert_null(json_object_get(ns_of(cfg, "network"), "path"));
	assert_non_null(mount_at(cfg, "/proc"));
	assert_non_null(mount_at(cfg, "/dev/pts"));
	assert_non_null(mount_at(cfg, "/dev/shm"));
	assert_true(has_string(json_object_get(mount_at(cfg, "/sys"), "options"), "ro"));
	assert_true(has_string(json_object_get(json_object_get(cfg, "linux"), "maskedPaths"),
			       "/proc/kcore"));
	assert_null(json_object_get(json_object_get(json_object_get(cfg, "linux"), "resources"),
				    "memory"));
	assert_null(json_object_get(cfg, "hostname"));
	json_decref(cfg);
}

static void capabilities_add_drop(void **state)
{
	const char *const add[] = {"NET_ADMIN", "cap_sys_time", NULL};
	const char *const drop[] = {"CHOWN", "CAP_KILL", NULL};
	const char *const drop_all[] = {"ALL", NULL};
	const char *const add_one[] = {"NET_BIND_SERVICE", NULL};
	const char *const bad[] = {"NOT_A_CAP", NULL};
	struct rt_spec spec = {.args = ARGS, .cap_add = add, .cap_drop = drop};
	json_t *cfg = NULL;

	(void)state;
	cfg = bundle(&spec);
	assert_true(has_string(caps(cfg, "bounding"), "CAP_NET_ADMIN"));
	assert_true(has_string(caps(cfg, "permitted"), "CAP_SYS_TIME"));
	assert_false(has_string(caps(cfg, "bounding"), "CAP_CHOWN"));
	assert_false(has_string(caps(cfg, "effective"), "CAP_KILL"));
	assert_true(has_string(caps(cfg, "bounding"), "CAP_SETUID"));
	json_decref(cfg);

	/* drop ALL then add one: only that one (Kubernetes' order). */
	spec.cap_drop = drop_all;
	spec.cap_add = add_one;
	cfg = bundle(&spec);
	assert_int_equal(json_array_size(caps(cfg, "bounding")), 1);
	assert_true(has_string(caps(cfg, "bounding"), "CAP_NET_BIND_SERVICE"));
	json_decref(cfg);

	spec.cap_add = bad;
	cfg = NULL;
	assert_int_equal(rt_bundle_json(&spec, "rootfs", &cfg), -EINVAL);
	assert_null(cfg);
}

static void privileged(void **state)
{
	struct rt_spec spec = {.args = ARGS, .privileged = true};
	json_t *cfg;

	(void)state;
	cfg = bundle(&spec);
	assert_true(has_string(caps(cfg, "bounding"), "CAP_SYS_ADMIN"));
	assert_true(json_array_size(caps(cfg, "bounding")) >= 40);
	assert_null(json_object_get(json_object_get(cfg, "linux"), "maskedPaths"));
	assert_false(has_string(json_object_get(mount_at(cfg, "/sys"), "options"), "ro"));
	assert_true(json_is_false(json_object_get(json_object_get(cfg, "process"),
						  "noNewPrivileges")));
	json_decref(cfg);
}

static void namespaces_join_and_host(void **state)
{
	struct rt_spec spec = {
	    .args = ARGS,
	    .hostname = "ignored",
	    .net = {RT_NS_PATH, "/run/capstan/netns/u1"},
	    .uts = {RT_NS_PATH, "/run/capstan/utsns/u1"},
	    .ipc = {RT_NS_HOST, NULL},
	};
	json_t *cfg;

	(void)state;
	cfg = bundle(&spec);
	assert_string_equal(json_string_value(json_object_get(ns_of(cfg, "network"), "path")),
			    "/run/capstan/netns/u1");
	assert_string_equal(json_string_value(json_object_get(ns_of(cfg, "uts"), "path")),
			    "/run/capstan/utsns/u1");
	assert_null(ns_of(cfg, "ipc"));
	/* runc refuses a hostname without a private UTS namespace. */
	assert_null(json_object_get(cfg, "hostname"));
	json_decref(cfg);

	spec.uts.mode = RT_NS_PRIVATE;
	cfg = bundle(&spec);
	assert_string_equal(json_string_value(json_object_get(cfg, "hostname")), "ignored");
	json_decref(cfg);

	spec.net.path = "relative";
	cfg = NULL;
	assert_int_equal(rt_bundle_json(&spec, "rootfs", &cfg), -EINVAL);
}

static void mounts_and_etc_files(void **state)
{
	const char *const opts[] = {"nodev", NULL};
	struct rt_mount m[] = {
	    {.source = "/var/lib/x/vol", .destination = "/data", .readonly = true},
	    {.source = "/var/lib/x/cm", .destination = "/etc/config", .options = opts},
	    {.source = "tmpfs", .destination = "/scratch", .type = "tmpfs"},
	};
	struct rt_spec spec = {
	    .args = ARGS,
	    .mounts = m,
	    .n_mounts = 3,
	    .hosts_file = "/p/hosts",
	    .resolv_file = "/p/resolv.conf",
	    .hostname_file = "/p/hostname",
	    .readonly_rootfs = true,
	};
	const json_t *v;
	json_t *cfg;

	(void)state;
	cfg = bundle(&spec);
	v = mount_at(cfg, "/data");
	assert_string_equal(json_string_value(json_object_get(v, "type")), "bind");
	assert_string_equal(json_string_value(json_object_get(v, "source")), "/var/lib/x/vol");
	assert_true(has_string(json_object_get(v, "options"), "rbind"));
	assert_true(has_string(json_object_get(v, "options"), "ro"));
	v = mount_at(cfg, "/etc/config");
	assert_false(has_string(json_object_get(v, "options"), "ro"));
	assert_true(has_string(json_object_get(v, "options"), "nodev"));
	v = mount_at(cfg, "/scratch");
	assert_string_equal(json_string_value(json_object_get(v, "type")), "tmpfs");
	assert_string_equal(json_string_value(json_object_get(mount_at(cfg, "/etc/hosts"),
							      "source")),
			    "/p/hosts");
	assert_non_null(mount_at(cfg, "/etc/resolv.conf"));
	assert_non_null(mount_at(cfg, "/etc/hostname"));
	assert_true(json_is_true(json_object_get(json_object_get(cfg, "root"), "readonly")));
	json_decref(cfg);

	m[0].destination = "data";
	cfg = NULL;
	assert_int_equal(rt_bundle_json(&spec, "rootfs", &cfg), -EINVAL);
}

static void resources(void **state)
{
	struct rt_spec spec = {
	    .args = ARGS,
	    .cgroups_path = "/capstan/u1/c",
	    .cpu_request_milli = 250,
	    .cpu_limit_milli = 500,
	    .memory_limit = 128 << 20,
	    .pids_limit = 100,
	};
	json_t *cfg, *r;

	(void)state;
	cfg = bundle(&spec);
	assert_string_equal(json_string_value(json_object_get(json_object_get(cfg, "linux"),
							      "cgroupsPath")),
			    "/capstan/u1/c");
	r = json_object_get(json_object_get(cfg, "linux"), "resources");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "cpu"), "shares")),
			 256);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "cpu"), "quota")),
			 50000);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "cpu"), "period")),
			 100000);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "memory"),
							    "limit")),
			 128 << 20);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "pids"), "limit")),
			 100);
	json_decref(cfg);

	/* Tiny values hit kubelet's floors: 2 shares, 1 ms quota. */
	spec.cpu_request_milli = 1;
	spec.cpu_limit_milli = 1;
	cfg = bundle(&spec);
	r = json_object_get(json_object_get(cfg, "linux"), "resources");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "cpu"), "shares")),
			 2);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "cpu"), "quota")),
			 1000);
	json_decref(cfg);
}

static void no_args_refused(void **state)
{
	const char *const none[] = {NULL};
	struct rt_spec spec = {.args = none};
	json_t *cfg = NULL;

	(void)state;
	assert_int_equal(rt_bundle_json(&spec, "rootfs", &cfg), -EINVAL);
	spec.args = NULL;
	assert_int_equal(rt_bundle_json(&spec, "rootfs", &cfg), -EINVAL);
}

static void container_ids(void **state)
{
	const char *uid = "0f8fad5b-d9cb-469f-a165-70867728950e";
	char buf[128], u[37], name[64];
	unsigned restart;

	(void)state;
	assert_int_equal(rt_container_id(buf, sizeof(buf), uid, "web-server", 12), 0);
	assert_string_equal(buf, "capstan-0f8fad5b-d9cb-469f-a165-70867728950e-web-server-12");
	assert_int_equal(rt_container_id_parse(buf, u, name, &restart), 0);
	assert_string_equal(u, uid);
	assert_string_equal(name, "web-server");
	assert_int_equal(restart, 12);
	assert_int_equal(rt_container_id(buf, 20, uid, "web", 0), -ENAMETOOLONG);
	assert_int_equal(rt_container_id(buf, sizeof(buf), uid, "a/b", 0), -EINVAL);
	assert_int_equal(rt_container_id(buf, sizeof(buf), "short", "a", 0), -EINVAL);
	assert_int_equal(rt_container_id_parse("capstan-x", u, name, &restart), -EINVAL);
	assert_int_equal(rt_container_id_parse("other-0f8fad5b-d9cb-469f-a165-70867728950e-a-1", u,
					       name, &restart),
			 -EINVAL);
	assert_int_equal(rt_container_id_parse("capstan-0f8fad5b-d9cb-469f-a165-70867728950e-a-x",
					       u, name, &restart),
			 -EINVAL);
}

static void image_references(void **state)
{
	static const char *const cases[][2] = {
	    {"busybox", "docker.io/library/busybox:latest"},
	    {"busybox:1.36", "docker.io/library/busybox:1.36"},
	    {"foo/bar", "docker.io/foo/bar:latest"},
	    {"localhost/busybox", "localhost/busybox:latest"},
	    {"localhost/busybox:latest", "localhost/busybox:latest"},
	    {"localhost:5000/a/b:v1", "localhost:5000/a/b:v1"},
	    {"registry.example.com/x", "registry.example.com/x:latest"},
	    {"docker.io/library/busybox:latest", "docker.io/library/busybox:latest"},
	};
	char *out;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(rt_image_normalize(cases[i][0], &out), 0);
		assert_string_equal(out, cases[i][1]);
		free(out);
	}
	assert_int_equal(rt_image_normalize("busybox@sha256:"
					    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
					    &out),
			 0);
	assert_string_equal(out, "docker.io/library/busybox@sha256:"
				 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	free(out);
	assert_int_equal(rt_image_normalize("", &out), -EINVAL);
	assert_int_equal(rt_image_normalize("BusyBox", &out), -EINVAL);
	assert_int_equal(rt_image_normalize("busy box", &out), -EINVAL);
	assert_int_equal(rt_image_normalize("busybox:", &out), -EINVAL);
	assert_int_equal(rt_image_normalize("busybox@sha256:12", &out), -EINVAL);
}

static void runc_argv(void **state)
{
	struct rt rt = {.runc = "runc", .runc_root = "/run/capstan/runc"};
	const char *const args[] = {"cat", "/etc/hostname", NULL};
	const char *const env[] = {"A=1", NULL};
	struct rt_exec_opts o = {.args = args, .env = env, .cwd = "/tmp", .set_user = true,
				 .uid = 5, .gid = 6};
	char **v;

	(void)state;
	v = rt_runc_argv_kill(&rt, "c1", 15, false);
	assert_string_equal(v[0], "runc");
	assert_string_equal(v[1], "--root");
	assert_string_equal(v[2], "/run/capstan/runc");
	assert_string_equal(v[3], "kill");
	assert_string_equal(v[4], "c1");
	assert_string_equal(v[5], "15");
	assert_null(v[6]);
	rt_strv_free(v);
	v = rt_runc_argv_kill(&rt, "c1", 9, true);
	assert_string_equal(v[4], "--all");
	assert_string_equal(v[5], "c1");
	assert_string_equal(v[6], "9");
	rt_strv_free(v);
	v = rt_runc_argv_delete(&rt, "c1", true);
	assert_string_equal(v[4], "--force");
	assert_string_equal(v[5], "c1");
	assert_null(v[6]);
	rt_strv_free(v);
	v = rt_runc_argv_exec(&rt, "c1", &o);
	assert_string_equal(v[3], "exec");
	assert_string_equal(v[4], "--user");
	assert_string_equal(v[5], "5:6");
	assert_string_equal(v[6], "--cwd");
	assert_string_equal(v[7], "/tmp");
	assert_string_equal(v[8], "--env");
	assert_string_equal(v[9], "A=1");
	assert_string_equal(v[10], "c1");
	assert_string_equal(v[11], "cat");
	assert_string_equal(v[12], "/etc/hostname");
	assert_null(v[13]);
	rt_strv_free(v);
	o.tty = true;
	assert_null(rt_runc_argv_exec(&rt, "c1", &o));
}

static void runc_output(void **state)
{
	const char *st = "{\"ociVersion\":\"1.0.2-dev\",\"id\":\"c1\",\"pid\":4242,"
			 "\"status\":\"running\",\"bundle\":\"/b/c1\",\"rootfs\":\"/b/c1/rootfs\","
			 "\"created\":\"2024-01-02T03:04:05.5Z\",\"owner\":\"\"}";
	const char *list = "[{\"id\":\"a\",\"pid\":0,\"status\":\"stopped\",\"bundle\":\"/x\"},"
			   "{\"id\":\"b\",\"pid\":7,\"status\":\"created\",\"bundle\":\"/y\"}]";
	struct rt_state s, *sts;
	size_t n;

	(void)state;
	assert_int_equal(rt_runc_parse_state(st, strlen(st), &s), 0);
	assert_string_equal(s.id, "c1");
	assert_int_equal(s.pid, 4242);
	assert_int_equal(s.status, RT_STATUS_RUNNING);
	assert_string_equal(s.bundle, "/b/c1");
	assert_true(s.created == 1704164645500000000LL);
	rt_state_clear(&s);
	assert_int_equal(rt_runc_parse_list(list, strlen(list), &sts, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(sts[0].status, RT_STATUS_STOPPED);
	assert_int_equal(sts[1].status, RT_STATUS_CREATED);
	assert_int_equal(sts[1].pid, 7);
	rt_state_clear(&sts[0]);
	rt_state_clear(&sts[1]);
	free(sts);
	assert_int_equal(rt_runc_parse_list("null", 4, &sts, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(rt_runc_parse_state("nope", 4, &s), -EINVAL);
	assert_int_equal(rt_runc_parse_list("{}", 2, &sts, &n), -EINVAL);
}

static void default_conflist(void **state)
{
	json_t *c, *p;

	(void)state;
	assert_int_equal(rt_cni_default_conflist("capstan0", "10.88.0.0/16", &c), 0);
	p = json_array_get(json_object_get(c, "plugins"), 0);
	assert_string_equal(json_string_value(json_object_get(p, "type")), "bridge");
	assert_string_equal(json_string_value(json_object_get(p, "bridge")), "capstan0");
	/* Nothing may leave the machine: no masquerade, no default route. */
	assert_true(json_is_false(json_object_get(p, "ipMasq")));
	assert_true(json_is_false(json_object_get(p, "isDefaultGateway")));
	assert_true(json_is_true(json_object_get(p, "isGateway")));
	assert_null(json_object_get(json_object_get(p, "ipam"), "routes"));
	assert_string_equal(
	    json_string_value(json_object_get(
		json_array_get(json_array_get(json_object_get(json_object_get(p, "ipam"), "ranges"),
					      0),
			       0),
		"subnet")),
	    "10.88.0.0/16");
	json_decref(c);
	assert_int_equal(rt_cni_default_conflist("capstan0", "10.88.0.0", &c), -EINVAL);
	assert_int_equal(rt_cni_default_conflist("capstan0", "300.1.0.0/16", &c), -EINVAL);
	assert_int_equal(rt_cni_default_conflist("a-very-long-bridge-name", "10.0.0.0/8", &c),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(defaults),
	    cmocka_unit_test(capabilities_add_drop),
	    cmocka_unit_test(privileged),
	    cmocka_unit_test(namespaces_join_and_host),
	    cmocka_unit_test(mounts_and_etc_files),
	    cmocka_unit_test(resources),
	    cmocka_unit_test(no_args_refused),
	    cmocka_unit_test(container_ids),
	    cmocka_unit_test(image_references),
	    cmocka_unit_test(runc_argv),
	    cmocka_unit_test(runc_output),
	    cmocka_unit_test(default_conflist),
	};

	return cmocka_run_group_tests_name("runtime_bundle", tests, NULL, NULL);
}
