/* Unit tests of src/node/registries: the --registry setting's syntax and
 * the imagePullPolicy decision of the node agent. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "runtime/runtime.h"
#include "src/node/agent.h"
#include "src/node/registries.h"

static void test_parse_plain(void **state)
{
	struct node_registry r;
	char err[256];

	(void)state;
	assert_int_equal(node_registry_parse("localhost:5000=http://127.0.0.1:5000", &r, err,
					     sizeof(err)),
			 0);
	assert_string_equal(r.host, "localhost:5000");
	assert_string_equal(r.url, "http://127.0.0.1:5000");
	assert_null(r.ca_file);
	assert_null(r.username);
	assert_null(r.password);
	node_registry_clear(&r);
	/* An empty URL: https://HOST, the runtime's default. */
	assert_int_equal(node_registry_parse("reg.example=", &r, err, sizeof(err)), 0);
	assert_string_equal(r.host, "reg.example");
	assert_null(r.url);
	node_registry_clear(&r);
}

static void test_parse_keys(void **state)
{
	struct node_registry r;
	char err[256], path[] = "/tmp/test_node_registries.XXXXXX";
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "s3cret\nignored\n", 15), 15);
	close(fd);
	{
		char spec[512];
		snprintf(spec, sizeof(spec),
			 "reg:5443=https://127.0.0.1:5443,ca-file=/etc/ca.pem,username=bob,"
			 "password-file=%s",
			 path);
		assert_int_equal(node_registry_parse(spec, &r, err, sizeof(err)), 0);
	}
	assert_string_equal(r.url, "https://127.0.0.1:5443");
	assert_string_equal(r.ca_file, "/etc/ca.pem");
	assert_string_equal(r.username, "bob");
	assert_string_equal(r.password, "s3cret");
	node_registry_clear(&r);
	assert_int_equal(node_registry_parse("h=http://x,username=u,password=p", &r, err,
					     sizeof(err)),
			 0);
	assert_string_equal(r.password, "p");
	node_registry_clear(&r);
	unlink(path);
	assert_int_equal(node_registry_parse("h=http://x,username=u,password-file=/nonexistent",
					     &r, err, sizeof(err)),
			 -ENOENT);
}

static void test_parse_errors(void **state)
{
	struct node_registry r;
	char err[256];

	(void)state;
	assert_int_equal(node_registry_parse("nohost", &r, err, sizeof(err)), -EINVAL);
	assert_int_equal(node_registry_parse("=http://x", &r, err, sizeof(err)), -EINVAL);
	assert_int_equal(node_registry_parse("h=ftp://x", &r, err, sizeof(err)), -EINVAL);
	assert_int_equal(node_registry_parse("a/b=http://x", &r, err, sizeof(err)), -EINVAL);
	assert_int_equal(node_registry_parse("h=http://x,color=red", &r, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "color"));
	assert_int_equal(node_registry_parse("h=http://x,flag", &r, err, sizeof(err)), -EINVAL);
	assert_int_equal(node_registry_parse("h=http://x,username=u", &r, err, sizeof(err)),
			 -EINVAL);
}

static void test_policy(void **state)
{
	(void)state;
	assert_string_equal(node_pull_policy("busybox", NULL), "Always");
	assert_string_equal(node_pull_policy("localhost:5000/busybox", NULL), "Always");
	assert_string_equal(node_pull_policy("localhost:5000/busybox:latest", ""), "Always");
	assert_string_equal(node_pull_policy("localhost:5000/busybox:1.36", NULL), "IfNotPresent");
	assert_string_equal(node_pull_policy("x@sha256:0123", NULL), "IfNotPresent");
	assert_string_equal(node_pull_policy("busybox:1", "Never"), "Never");
	assert_string_equal(node_pull_policy("busybox", "IfNotPresent"), "IfNotPresent");
}

static void test_decide(void **state)
{
	(void)state;
	assert_int_equal(node_pull_decide("Never", true, true), NODE_PULL_NO);
	assert_int_equal(node_pull_decide("Never", false, true), NODE_PULL_NEVER_MISSING);
	assert_int_equal(node_pull_decide("IfNotPresent", true, true), NODE_PULL_NO);
	assert_int_equal(node_pull_decide("IfNotPresent", false, false), NODE_PULL_YES);
	assert_int_equal(node_pull_decide("Always", true, true), NODE_PULL_YES);
	assert_int_equal(node_pull_decide("Always", true, false), NODE_PULL_NO);
	assert_int_equal(node_pull_decide("Always", false, false), NODE_PULL_YES);
}

static void test_serves(void **state)
{
	struct rt_registry regs[2] = {{.host = "localhost:5000"}, {.host = "docker.io"}};

	(void)state;
	assert_true(node_registry_serves(regs, 2, "localhost:5000/busybox"));
	assert_true(node_registry_serves(regs, 2, "busybox"));
	assert_false(node_registry_serves(regs, 2, "localhost/busybox:latest"));
	assert_false(node_registry_serves(regs, 1, "busybox"));
	assert_false(node_registry_serves(NULL, 0, "busybox"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_plain), cmocka_unit_test(test_parse_keys),
		cmocka_unit_test(test_parse_errors), cmocka_unit_test(test_policy),
		cmocka_unit_test(test_decide),	    cmocka_unit_test(test_serves),
	};

	return cmocka_run_group_tests_name("node_registries", tests, NULL, NULL);
}
