/* Unit tests of http/auth: the static token file, certificate users and
 * the built-in group policy. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/x509.h>

#include "http/auth.h"

#define TOK(s) (s), strlen(s)

static struct http_tokens *parse_ok(const char *text)
{
	struct http_tokens *t = NULL;
	unsigned line = 0;

	assert_int_equal(http_tokens_parse(text, strlen(text), &t, &line), 0);
	assert_non_null(t);
	return t;
}

static void tokens_basic(void **state)
{
	struct http_tokens *t;
	const struct http_user *u;

	(void)state;
	t = parse_ok("abc123,admin,1,\"system:masters,ops\"\n"
		     "joinme,joiner,2,system:capstan:join\n"
		     "# a comment\n"
		     "\n"
		     "plain,bob,3\r\n");
	assert_int_equal(http_tokens_count(t), 3);

	u = http_tokens_lookup(t, TOK("abc123"));
	assert_non_null(u);
	assert_string_equal(u->name, "admin");
	assert_string_equal(u->uid, "1");
	assert_int_equal(u->n_groups, 2);
	assert_string_equal(u->groups[0], "system:masters");
	assert_string_equal(u->groups[1], "ops");
	assert_true(http_user_in_group(u, "system:masters"));
	assert_false(http_user_in_group(u, "system:capstan:join"));

	u = http_tokens_lookup(t, TOK("joinme"));
	assert_non_null(u);
	assert_string_equal(u->name, "joiner");
	assert_true(http_user_in_group(u, "system:capstan:join"));

	u = http_tokens_lookup(t, TOK("plain"));
	assert_non_null(u);
	assert_string_equal(u->name, "bob");
	assert_int_equal(u->n_groups, 0);

	/* Prefixes, extensions and empty tokens do not match. */
	assert_null(http_tokens_lookup(t, TOK("abc12")));
	assert_null(http_tokens_lookup(t, TOK("abc1234")));
	assert_null(http_tokens_lookup(t, "", 0));
	assert_null(http_tokens_lookup(NULL, TOK("abc123")));
	http_tokens_free(t);
}

static void tokens_quoting(void **state)
{
	struct http_tokens *t;
	const struct http_user *u;

	(void)state;
	t = parse_ok("\"tok\",\"us\"\"er\",\"u1\",\"g1\"\n");
	u = http_tokens_lookup(t, TOK("tok"));
	assert_non_null(u);
	assert_string_equal(u->name, "us\"er");
	assert_int_equal(u->n_groups, 1);
	assert_string_equal(u->groups[0], "g1");
	http_tokens_free(t);

	/* No final newline, empty file. */
	t = parse_ok("x,y,z");
	assert_int_equal(http_tokens_count(t), 1);
	http_tokens_free(t);
	t = parse_ok("");
	assert_int_equal(http_tokens_count(t), 0);
	http_tokens_free(t);
}

static void tokens_bad_lines(void **state)
{
	static const struct {
		const char *text;
		unsigned line;
	} bad[] = {
		{"ok,u,1\nonlytwo,fields\n", 2},
		{"tok,user\n", 1},
		{",user,1\n", 1},
		{"tok,,1\n", 1},
		{"tok,user,\n", 1},
		{"tok,user,1,\"g1,g2\",extra\n", 1},
		{"tok,user,1,\"unterminated\n", 1},
		{"tok,user,1,\"g\"trailing\n", 1},
		{"tok,us\"er,1\n", 1},
		{"tok,user,1,\"g1,,g2\"\n", 1},
		{"tok,user,1,\"g1,\"\n", 1},
		{"a,b,c\n\n# c\nto ken,user,1\n", 4},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct http_tokens *t = NULL;
		unsigned line = 0;
		int rv = http_tokens_parse(bad[i].text, strlen(bad[i].text), &t, &line);
		if (rv != -EINVAL || line != bad[i].line)
			fail_msg("case %zu (%s): rv %d line %u", i, bad[i].text, rv, line);
		assert_null(t);
	}
}

static void tokens_load_file(void **state)
{
	char path[] = "/tmp/test_http_auth.XXXXXX";
	struct http_tokens *t = NULL;
	unsigned line = 0;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "t1,admin,1,\"system:masters\"\n", 28), 28);
	close(fd);
	assert_int_equal(http_tokens_load(path, &t, &line), 0);
	assert_non_null(http_tokens_lookup(t, TOK("t1")));
	http_tokens_free(t);
	unlink(path);
	assert_int_equal(http_tokens_load(path, &t, &line), -ENOENT);
}

static X509 *make_cert(const char *cn, const char *const *orgs)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);
	size_t i;

	if (cn != NULL)
		X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
					   0);
	for (i = 0; orgs != NULL && orgs[i] != NULL; i++)
		X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)orgs[i],
					   -1, -1, 0);
	return x;
}

static void cert_user(void **state)
{
	static const char *const orgs[] = {"system:masters", "team-a", NULL};
	struct http_user *u = NULL;
	X509 *x;

	(void)state;
	x = make_cert("capstan-master-2", orgs);
	assert_int_equal(http_user_from_cert(x, &u), 0);
	assert_string_equal(u->name, "capstan-master-2");
	assert_int_equal(u->n_groups, 2);
	assert_true(http_user_in_group(u, "system:masters"));
	assert_true(http_user_in_group(u, "team-a"));
	assert_false(http_user_in_group(u, "team-b"));
	http_user_free(u);
	X509_free(x);

	/* Without CN there is no user. */
	x = make_cert(NULL, orgs);
	u = NULL;
	assert_int_equal(http_user_from_cert(x, &u), -EINVAL);
	assert_null(u);
	X509_free(x);
}

static void authorize_groups(void **state)
{
	static const char *const masters[] = {HTTP_GROUP_MASTERS, NULL};
	static const char *const join[] = {HTTP_GROUP_JOIN, HTTP_GROUP_MASTERS, NULL};
	struct http_tokens *t;
	struct http_authz_attrs a = {0};
	const struct http_user *admin, *joiner, *bob;

	(void)state;
	t = parse_ok("a,admin,1,system:masters\nj,joiner,2,system:capstan:join\nb,bob,3\n");
	admin = http_tokens_lookup(t, TOK("a"));
	joiner = http_tokens_lookup(t, TOK("j"));
	bob = http_tokens_lookup(t, TOK("b"));
	a.verb = "get";
	a.path = "/capstan/v1/store/x";

	a.groups = NULL; /* health endpoints: anyone */
	a.user = NULL;
	assert_int_equal(http_authorize_builtin(&a, NULL), 0);

	a.groups = masters;
	a.user = admin;
	assert_int_equal(http_authorize_builtin(&a, NULL), 0);
	a.user = joiner;
	assert_int_equal(http_authorize_builtin(&a, NULL), -EACCES);
	a.user = bob;
	assert_int_equal(http_authorize_builtin(&a, NULL), -EACCES);
	a.user = NULL;
	assert_int_equal(http_authorize_builtin(&a, NULL), -EACCES);

	a.groups = join;
	a.user = joiner;
	assert_int_equal(http_authorize_builtin(&a, NULL), 0);
	a.user = bob;
	assert_int_equal(http_authorize_builtin(&a, NULL), -EACCES);
	http_tokens_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tokens_basic),	    cmocka_unit_test(tokens_quoting),
		cmocka_unit_test(tokens_bad_lines), cmocka_unit_test(tokens_load_file),
		cmocka_unit_test(cert_user),	    cmocka_unit_test(authorize_groups),
	};
	return cmocka_run_group_tests_name("http_auth", tests, NULL, NULL);
}
