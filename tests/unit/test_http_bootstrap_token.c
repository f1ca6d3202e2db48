/* Unit tests of bootstrap tokens in http/auth: the token's form, the check
 * against a stored Secret, and what the built-in policy lets them reach. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "http/auth.h"
#include "src/lib/codec.h"

#define TOKEN "abc123.0123456789abcdef"
#define NOW 1700000000 /* 2023-11-14T22:13:20Z */

/* ------------------------------------------------------------ helpers */

static char *b64(const char *s)
{
	size_t len = strlen(s);
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	assert_non_null(out);
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)len);
	return out;
}

/* A Secret as stored (msgpack from JSON). @type and each data value may be
 * NULL (left out); data values are given in clear and base64-encoded here. */
struct secret_spec {
	const char *type;
	const char *id;
	const char *secret;
	const char *usage;
	const char *expiration;
	const char *groups;
	bool deleting;
};

static void add_field(char *json, size_t size, const char *key, const char *val, bool *first)
{
	char *v;

	if (val == NULL)
		return;
	v = b64(val);
	snprintf(json + strlen(json), size - strlen(json), "%s\"%s\":\"%s\"", *first ? "" : ",",
		 key, v);
	*first = false;
	free(v);
}

static struct codec_buf secret_msgpack(const struct secret_spec *s)
{
	struct codec_buf out = {0};
	char json[4096];
	bool first = true;

	snprintf(json, sizeof json,
		 "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":"
		 "\"bootstrap-token-abc123\",\"namespace\":\"kube-system\"%s}",
		 s->deleting ? ",\"deletionTimestamp\":\"2023-11-14T00:00:00Z\"" : "");
	if (s->type != NULL)
		snprintf(json + strlen(json), sizeof json - strlen(json), ",\"type\":\"%s\"",
			 s->type);
	strcat(json, ",\"data\":{");
	add_field(json, sizeof json, "token-id", s->id, &first);
	add_field(json, sizeof json, "token-secret", s->secret, &first);
	add_field(json, sizeof json, "usage-bootstrap-authentication", s->usage, &first);
	add_field(json, sizeof json, "expiration", s->expiration, &first);
	add_field(json, sizeof json, "auth-extra-groups", s->groups, &first);
	strcat(json, "}}");
	assert_int_equal(codec_json_to_msgpack(json, strlen(json), 0, &out, NULL), 0);
	return out;
}

static struct secret_spec good(void)
{
	return (struct secret_spec){
		.type = "bootstrap.kubernetes.io/token",
		.id = "abc123",
		.secret = "0123456789abcdef",
		.usage = "true",
		.expiration = "2023-11-15T22:13:20Z",
		.groups = "system:bootstrappers:capstan:master,system:capstan:join",
	};
}

static int check(const struct secret_spec *s, const char *token, int64_t now,
		 struct http_user **ret_user)
{
	struct codec_buf mp = secret_msgpack(s);
	int rv;

	*ret_user = NULL;
	rv = http_bootstrap_token_check(mp.data, mp.len, token, strlen(token), now, ret_user);
	codec_buf_free(&mp);
	return rv;
}

static void assert_refused(const struct secret_spec *s, const char *token, int64_t now)
{
	struct http_user *u;

	assert_int_equal(check(s, token, now, &u), -EACCES);
	assert_null(u);
}

/* ------------------------------------------------------------ tests */

static void parse_forms(void **state)
{
	char id[HTTP_BOOTSTRAP_ID_LEN + 1];

	(void)state;
	assert_true(http_bootstrap_token_parse(TOKEN, strlen(TOKEN), id));
	assert_string_equal(id, "abc123");
	assert_false(http_bootstrap_token_parse("ABC123.0123456789abcdef", 23, id));
	assert_false(http_bootstrap_token_parse("abc123.0123456789abcdeF", 23, id));
	assert_false(http_bootstrap_token_parse("abc123-0123456789abcdef", 23, id));
	assert_false(http_bootstrap_token_parse("abc123.0123456789abcde", 22, id));
	assert_false(http_bootstrap_token_parse("abc1234.0123456789abcdef", 24, id));
	assert_false(http_bootstrap_token_parse("abc123.0123456789abcdefg", 24, id));
	assert_false(http_bootstrap_token_parse("abc12.30123456789abcdef", 23, id));
	assert_false(http_bootstrap_token_parse("", 0, id));
}

static void valid_token(void **state)
{
	struct secret_spec s = good();
	struct http_user *u;

	(void)state;
	assert_int_equal(check(&s, TOKEN, NOW, &u), 0);
	assert_non_null(u);
	assert_string_equal(u->name, "system:bootstrap:abc123");
	assert_string_equal(u->uid, "");
	assert_int_equal(u->n_groups, 3);
	assert_string_equal(u->groups[0], "system:bootstrappers");
	assert_string_equal(u->groups[1], "system:bootstrappers:capstan:master");
	assert_string_equal(u->groups[2], "system:capstan:join");
	assert_true(http_user_in_group(u, HTTP_GROUP_JOIN));
	assert_false(http_user_in_group(u, HTTP_GROUP_MASTERS));
	http_user_free(u);
}

static void no_expiration_no_groups(void **state)
{
	struct secret_spec s = good();
	struct http_user *u;

	(void)state;
	s.expiration = NULL;
	s.groups = NULL;
	assert_int_equal(check(&s, TOKEN, NOW + 100LL * 365 * 86400, &u), 0);
	assert_int_equal(u->n_groups, 1);
	assert_string_equal(u->groups[0], "system:bootstrappers");
	http_user_free(u);

	/* Spaces around groups and empty entries are tolerated. */
	s.groups = " system:bootstrappers:capstan:node , ,";
	assert_int_equal(check(&s, TOKEN, NOW, &u), 0);
	assert_int_equal(u->n_groups, 2);
	assert_string_equal(u->groups[1], "system:bootstrappers:capstan:node");
	http_user_free(u);
}

static void wrong_secret_or_id(void **state)
{
	struct secret_spec s = good();

	(void)state;
	assert_refused(&s, "abc123.0123456789abcdee", NOW);
	assert_refused(&s, "abc124.0123456789abcdef", NOW);
	assert_refused(&s, "abc123.0123456789ABCDEF", NOW);
	assert_refused(&s, "abc123.0123456789abcde", NOW);
	s.secret = "0123456789abcdef0"; /* a longer stored secret */
	assert_refused(&s, TOKEN, NOW);
	s = good();
	s.secret = NULL;
	assert_refused(&s, TOKEN, NOW);
	s = good();
	s.id = NULL;
	assert_refused(&s, TOKEN, NOW);
}

static void expiration(void **state)
{
	struct secret_spec s = good();
	struct http_user *u;

	(void)state;
	/* Expires at NOW + 1 day: valid one second before, not at it. */
	assert_int_equal(check(&s, TOKEN, NOW + 86399, &u), 0);
	http_user_free(u);
	assert_refused(&s, TOKEN, NOW + 86400);
	assert_refused(&s, TOKEN, NOW + 86401);
	s.expiration = "2023-11-15T23:13:20+01:00"; /* the same instant */
	assert_refused(&s, TOKEN, NOW + 86400);
	assert_int_equal(check(&s, TOKEN, NOW, &u), 0);
	http_user_free(u);
	s.expiration = "tomorrow";
	assert_refused(&s, TOKEN, NOW);
	s.expiration = "";
	assert_refused(&s, TOKEN, NOW);
}

static void usage_and_type(void **state)
{
	struct secret_spec s = good();

	(void)state;
	s.usage = NULL;
	assert_refused(&s, TOKEN, NOW);
	s.usage = "false";
	assert_refused(&s, TOKEN, NOW);
	s.usage = "True";
	assert_refused(&s, TOKEN, NOW);
	s = good();
	s.type = "Opaque";
	assert_refused(&s, TOKEN, NOW);
	s.type = NULL;
	assert_refused(&s, TOKEN, NOW);
	s = good();
	s.deleting = true;
	assert_refused(&s, TOKEN, NOW);
}

static void extra_groups_limited(void **state)
{
	struct secret_spec s = good();

	(void)state;
	s.groups = "system:masters";
	assert_refused(&s, TOKEN, NOW);
	s.groups = "system:bootstrappers:capstan:node,system:masters";
	assert_refused(&s, TOKEN, NOW);
	s.groups = "system:bootstrappers:";
	assert_refused(&s, TOKEN, NOW);
	s.groups = "system:bootstrappers:Upper";
	assert_refused(&s, TOKEN, NOW);
	s.groups = "system:bootstrappers:x-";
	assert_refused(&s, TOKEN, NOW);
	s.groups = "system:capstan:joinx";
	assert_refused(&s, TOKEN, NOW);
}

static void malformed_secret(void **state)
{
	struct http_user *u = NULL;
	struct codec_buf mp = {0};
	const char *json = "{\"type\":\"bootstrap.kubernetes.io/token\",\"data\":"
			   "{\"token-id\":\"!!!not base64\",\"token-secret\":\"MDEy\"}}";

	(void)state;
	assert_int_equal(codec_json_to_msgpack(json, strlen(json), 0, &mp, NULL), 0);
	assert_int_equal(http_bootstrap_token_check(mp.data, mp.len, TOKEN, strlen(TOKEN), NOW, &u),
			 -EACCES);
	assert_int_equal(http_bootstrap_token_check(mp.data, 3, TOKEN, strlen(TOKEN), NOW, &u),
			 -EACCES);
	assert_int_equal(http_bootstrap_token_check("\xc0", 1, TOKEN, strlen(TOKEN), NOW, &u),
			 -EACCES);
	assert_null(u);
	codec_buf_free(&mp);
}

static void policy(void **state)
{
	static const char *const join[] = {HTTP_GROUP_JOIN, HTTP_GROUP_MASTERS, NULL};
	static const char *const masters[] = {HTTP_GROUP_MASTERS, NULL};
	struct secret_spec s = good();
	struct http_user *u;
	struct http_authz_attrs a = {.verb = "get"};

	(void)state;
	assert_int_equal(check(&s, TOKEN, NOW, &u), 0);
	a.user = u;
	a.path = "/capstan/v1/cluster/ca";
	a.groups = join;
	assert_int_equal(http_authorize_builtin(&a, NULL), 0);
	a.groups = masters;
	a.path = "/capstan/v1/store/x";
	assert_int_equal(http_authorize_builtin(&a, NULL), -EACCES);
	/* The Kubernetes API is open to any other authenticated user for now,
	 * not to bootstrap tokens. */
	a.groups = NULL;
	a.path = "/api/v1/namespaces/kube-system/secrets";
	assert_int_equal(http_authorize_builtin(&a, NULL), -EACCES);
	a.path = "/healthz";
	assert_int_equal(http_authorize_builtin(&a, NULL), 0);
	a.path = "/version";
	assert_int_equal(http_authorize_builtin(&a, NULL), 0);
	http_user_free(u);

	/* A node token is refused where only joiners and masters may go. */
	s.groups = "system:bootstrappers:capstan:node";
	assert_int_equal(check(&s, TOKEN, NOW, &u), 0);
	a.user = u;
	a.path = "/capstan/v1/cluster/ca";
	a.groups = join;
	assert_int_equal(http_authorize_builtin(&a, NULL), -EACCES);
	http_user_free(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_forms),
		cmocka_unit_test(valid_token),
		cmocka_unit_test(no_expiration_no_groups),
		cmocka_unit_test(wrong_secret_or_id),
		cmocka_unit_test(expiration),
		cmocka_unit_test(usage_and_type),
		cmocka_unit_test(extra_groups_limited),
		cmocka_unit_test(malformed_secret),
		cmocka_unit_test(policy),
	};

	return cmocka_run_group_tests_name("http_bootstrap_token", tests, NULL, NULL);
}
