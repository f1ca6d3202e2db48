/* Unit tests of service-account tokens (src/lib/satoken): signing and
 * verification, tampering, other keys and algorithms, expiry, and the
 * check against the stored objects a token names. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "src/lib/buf.h"
#include "src/lib/codec.h"
#include "src/lib/satoken.h"

#define NOW 1700000000
#define SA_UID "0d8a7e64-1c4e-4b58-9a53-8b1f9d6fbc01"

/* ------------------------------------------------------------ fixture */

/* Two keys generated once for the whole group (RSA generation is slow). */
static char *pem_a, *pem_b;
static size_t pem_a_len, pem_b_len;

static int group_setup(void **state)
{
	(void)state;
	if (satoken_key_generate(&pem_a, &pem_a_len) != 0 ||
	    satoken_key_generate(&pem_b, &pem_b_len) != 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	free(pem_a);
	free(pem_b);
	return 0;
}

static struct satoken_key *key_a(void)
{
	struct satoken_key *k = NULL;

	assert_int_equal(satoken_key_load(pem_a, pem_a_len, &k), 0);
	return k;
}

static struct satoken_key *key_b(void)
{
	struct satoken_key *k = NULL;

	assert_int_equal(satoken_key_load(pem_b, pem_b_len, &k), 0);
	return k;
}

/* A tiny "store": key -> msgpack of a JSON text. */
struct obj {
	const char *key;
	struct buf mp;
};
struct objs {
	struct obj v[8];
	size_t n;
};

static void objs_put(struct objs *o, const char *key, const char *json)
{
	json_error_t err;
	json_t *t = json_loads(json, 0, &err);

	if (t == NULL)
		fail_msg("bad JSON: %s", err.text);
	o->v[o->n].key = key;
	buf_init(&o->v[o->n].mp);
	assert_int_equal(codec_tree_to_msgpack(t, &o->v[o->n].mp, NULL), 0);
	o->n++;
	json_decref(t);
}

static void objs_free(struct objs *o)
{
	for (size_t i = 0; i < o->n; i++)
		buf_free(&o->v[i].mp);
}

static int objs_get(void *data, const char *key, const void **ret_val, size_t *ret_len)
{
	struct objs *o = data;

	for (size_t i = 0; i < o->n; i++)
		if (strcmp(o->v[i].key, key) == 0) {
			*ret_val = o->v[i].mp.data;
			*ret_len = o->v[i].mp.len;
			return 0;
		}
	return -ENOENT;
}

static char *sign(const struct satoken_key *k, json_t *claims)
{
	char *tok = NULL;

	assert_non_null(claims);
	assert_int_equal(satoken_sign(k, claims, &tok), 0);
	json_decref(claims);
	return tok;
}

static json_t *bound(int64_t iat, int64_t expiry)
{
	return satoken_bound_claims("default", "builder", SA_UID, iat, expiry, NULL, "jti-1",
				    NULL);
}

/* ------------------------------------------------------------ tests */

static void roundtrip(void **state)
{
	struct satoken_key *k = key_a();
	struct satoken_info in;
	json_t *claims = NULL;
	char *tok;

	(void)state;
	tok = sign(k, bound(NOW, 3600));
	assert_true(satoken_looks_like_jwt(tok, strlen(tok)));
	assert_int_equal(satoken_verify(k, tok, strlen(tok), &claims), 0);
	assert_int_equal(satoken_claims_parse(claims, NOW + 10, &in), 0);
	assert_false(in.legacy);
	assert_string_equal(in.ns, "default");
	assert_string_equal(in.sa_name, "builder");
	assert_string_equal(in.sa_uid, SA_UID);
	assert_int_equal(in.exp, NOW + 3600);
	assert_string_equal(json_string_value(json_object_get(claims, "sub")),
			    "system:serviceaccount:default:builder");
	assert_string_equal(json_string_value(json_object_get(claims, "iss")), SATOKEN_ISSUER);
	json_decref(claims);
	free(tok);
	satoken_key_free(k);
}

static void key_id_is_stable_and_distinct(void **state)
{
	struct satoken_key *a = key_a(), *a2 = key_a(), *b = key_b();

	(void)state;
	assert_int_equal(strlen(satoken_key_id(a)), 43);
	assert_string_equal(satoken_key_id(a), satoken_key_id(a2));
	assert_string_not_equal(satoken_key_id(a), satoken_key_id(b));
	satoken_key_free(a);
	satoken_key_free(a2);
	satoken_key_free(b);
}

static void tampered_payload_is_refused(void **state)
{
	struct satoken_key *k = key_a();
	json_t *claims = NULL, *evil;
	char *tok, *evil_tok, *d1, *d2, *p;

	(void)state;
	tok = sign(k, bound(NOW, 3600));
	/* Flipping one character of the payload breaks the signature. */
	d1 = strchr(tok, '.');
	d1[5] = d1[5] == 'A' ? 'B' : 'A';
	assert_int_equal(satoken_verify(k, tok, strlen(tok), &claims), -EACCES);
	free(tok);

	/* A payload re-signed with another key, spliced on the original
	 * signature, is refused too. */
	tok = sign(k, bound(NOW, 3600));
	evil = satoken_bound_claims("kube-system", "admin", SA_UID, NOW, 3600, NULL, "x", NULL);
	{
		struct satoken_key *b = key_b();
		evil_tok = sign(b, evil);
		satoken_key_free(b);
	}
	d1 = strchr(evil_tok, '.');
	d2 = strchr(d1 + 1, '.');
	p = strrchr(tok, '.');
	{
		size_t n = (size_t)(d2 - evil_tok);
		char *mix = malloc(n + strlen(p) + 1);
		memcpy(mix, evil_tok, n);
		strcpy(mix + n, p);
		assert_int_equal(satoken_verify(k, mix, strlen(mix), &claims), -EACCES);
		free(mix);
	}
	free(evil_tok);
	free(tok);
	satoken_key_free(k);
}

static void tampered_signature_is_refused(void **state)
{
	struct satoken_key *k = key_a();
	json_t *claims = NULL;
	char *tok, *last;

	(void)state;
	tok = sign(k, bound(NOW, 3600));
	last = tok + strlen(tok) - 10;
	*last = *last == 'A' ? 'B' : 'A';
	assert_int_equal(satoken_verify(k, tok, strlen(tok), &claims), -EACCES);
	/* Truncated. */
	tok[strlen(tok) - 4] = '\0';
	assert_int_equal(satoken_verify(k, tok, strlen(tok), &claims), -EACCES);
	free(tok);
	satoken_key_free(k);
}

static void other_key_is_refused(void **state)
{
	struct satoken_key *a = key_a(), *b = key_b();
	json_t *claims = NULL;
	char *tok;

	(void)state;
	tok = sign(b, bound(NOW, 3600));
	assert_int_equal(satoken_verify(a, tok, strlen(tok), &claims), -EACCES);
	assert_int_equal(satoken_verify(b, tok, strlen(tok), &claims), 0);
	json_decref(claims);
	free(tok);
	satoken_key_free(a);
	satoken_key_free(b);
}

static void alg_none_is_refused(void **state)
{
	struct satoken_key *k = key_a();
	json_t *claims = NULL;
	char *tok, tok2[4096];
	const char *p;

	(void)state;
	tok = sign(k, bound(NOW, 3600));
	p = strchr(tok, '.');
	/* {"alg":"none"} */
	snprintf(tok2, sizeof(tok2), "eyJhbGciOiJub25lIn0%.*s.", (int)(strrchr(tok, '.') - p), p);
	assert_int_equal(satoken_verify(k, tok2, strlen(tok2), &claims), -EACCES);
	/* {"alg":"HS256"} with the original signature. */
	snprintf(tok2, sizeof(tok2), "eyJhbGciOiJIUzI1NiJ9%s", p);
	assert_int_equal(satoken_verify(k, tok2, strlen(tok2), &claims), -EACCES);
	assert_false(satoken_looks_like_jwt("abc123.0123456789abcdef", 23));
	assert_false(satoken_looks_like_jwt("eyJ.a.b.c", 9));
	free(tok);
	satoken_key_free(k);
}

static void expiry_and_not_before(void **state)
{
	struct satoken_key *k = key_a();
	struct satoken_info in;
	json_t *claims = NULL;
	char *tok;

	(void)state;
	tok = sign(k, bound(NOW, 600));
	assert_int_equal(satoken_verify(k, tok, strlen(tok), &claims), 0);
	assert_int_equal(satoken_claims_parse(claims, NOW + 599, &in), 0);
	assert_int_equal(satoken_claims_parse(claims, NOW + 600, &in), -EACCES);
	assert_int_equal(satoken_claims_parse(claims, NOW + 100000, &in), -EACCES);
	/* Issued in the future beyond the allowed skew. */
	assert_int_equal(satoken_claims_parse(claims, NOW - 30, &in), 0);
	assert_int_equal(satoken_claims_parse(claims, NOW - 61, &in), -EACCES);
	/* A bound token without exp is refused. */
	json_object_del(claims, "exp");
	assert_int_equal(satoken_claims_parse(claims, NOW, &in), -EACCES);
	json_decref(claims);
	free(tok);

	/* Another audience. */
	{
		const char *aud[] = {"https://vault.example", NULL};
		claims = satoken_bound_claims("default", "builder", SA_UID, NOW, 3600, aud, "j",
					      NULL);
		assert_int_equal(satoken_claims_parse(claims, NOW, &in), -EACCES);
		json_decref(claims);
	}
	/* The subject must match the namespace and name claims. */
	claims = bound(NOW, 3600);
	json_object_set_new(claims, "sub", json_string("system:serviceaccount:kube-system:builder"));
	assert_int_equal(satoken_claims_parse(claims, NOW, &in), -EACCES);
	json_decref(claims);
	satoken_key_free(k);
}

#define SA_JSON(uid, extra)                                                                   \
	"{\"apiVersion\":\"v1\",\"kind\":\"ServiceAccount\",\"metadata\":{\"name\":\"builder\"," \
	"\"namespace\":\"default\",\"uid\":\"" uid "\"" extra "}}"

static void legacy_token_needs_its_secret(void **state)
{
	struct satoken_key *k = key_a();
	struct satoken_info in;
	struct objs o = {0};
	json_t *claims = NULL;
	char *tok, *b64, secret[8192];

	(void)state;
	tok = sign(k, satoken_legacy_claims("default", "builder", SA_UID, "builder-token"));
	assert_int_equal(satoken_verify(k, tok, strlen(tok), &claims), 0);
	b64 = satoken_base64(tok, strlen(tok));
	snprintf(secret, sizeof(secret),
		 "{\"kind\":\"Secret\",\"type\":\"" SATOKEN_SECRET_TYPE "\",\"metadata\":{"
		 "\"name\":\"builder-token\",\"namespace\":\"default\",\"annotations\":{\"" SATOKEN_ANN_SA_NAME
		 "\":\"builder\"}},\"data\":{\"token\":\"%s\"}}",
		 b64);

	/* No ServiceAccount yet. */
	objs_put(&o, "/registry/secrets/default/builder-token", secret);
	assert_int_equal(satoken_check(claims, tok, strlen(tok), NOW, objs_get, &o, &in), -EACCES);
	objs_put(&o, "/registry/serviceaccounts/default/builder", SA_JSON(SA_UID, ""));
	assert_int_equal(satoken_check(claims, tok, strlen(tok), NOW, objs_get, &o, &in), 0);
	assert_true(in.legacy);
	assert_string_equal(in.secret_name, "builder-token");
	/* Legacy tokens do not expire. */
	assert_int_equal(satoken_check(claims, tok, strlen(tok), NOW + 10 * 365 * 86400,
				       objs_get, &o, &in),
			 0);
	objs_free(&o);

	/* The Secret holds another token: this one was revoked. */
	memset(&o, 0, sizeof(o));
	objs_put(&o, "/registry/serviceaccounts/default/builder", SA_JSON(SA_UID, ""));
	{
		char other[8192], *b = satoken_base64("something else", 14);
		snprintf(other, sizeof(other),
			 "{\"type\":\"" SATOKEN_SECRET_TYPE "\",\"metadata\":{\"name\":\"builder-token\","
			 "\"annotations\":{\"" SATOKEN_ANN_SA_NAME "\":\"builder\"}},\"data\":{\"token\":\"%s\"}}",
			 b);
		free(b);
		objs_put(&o, "/registry/secrets/default/builder-token", other);
	}
	assert_int_equal(satoken_check(claims, tok, strlen(tok), NOW, objs_get, &o, &in), -EACCES);
	objs_free(&o);

	/* The ServiceAccount was recreated (another uid). */
	memset(&o, 0, sizeof(o));
	objs_put(&o, "/registry/secrets/default/builder-token", secret);
	objs_put(&o, "/registry/serviceaccounts/default/builder",
		 SA_JSON("11111111-1c4e-4b58-9a53-8b1f9d6fbc01", ""));
	assert_int_equal(satoken_check(claims, tok, strlen(tok), NOW, objs_get, &o, &in), -EACCES);
	objs_free(&o);

	/* The ServiceAccount is being deleted. */
	memset(&o, 0, sizeof(o));
	objs_put(&o, "/registry/secrets/default/builder-token", secret);
	objs_put(&o, "/registry/serviceaccounts/default/builder",
		 SA_JSON(SA_UID, ",\"deletionTimestamp\":\"2023-11-14T22:13:20Z\""));
	assert_int_equal(satoken_check(claims, tok, strlen(tok), NOW, objs_get, &o, &in), -EACCES);
	objs_free(&o);

	free(b64);
	json_decref(claims);
	free(tok);
	satoken_key_free(k);
}

static void bound_token_checks_its_pod(void **state)
{
	struct satoken_key *k = key_a();
	struct satoken_binding bind = {"Pod", "web-0", "pod-uid-1"};
	struct satoken_info in;
	struct objs o = {0};
	json_t *claims = NULL;
	char *tok;

	(void)state;
	tok = sign(k, satoken_bound_claims("default", "builder", SA_UID, NOW, 3600, NULL, "j",
					   &bind));
	assert_int_equal(satoken_verify(k, tok, strlen(tok), &claims), 0);
	objs_put(&o, "/registry/serviceaccounts/default/builder", SA_JSON(SA_UID, ""));
	assert_int_equal(satoken_check(claims, tok, strlen(tok), NOW, objs_get, &o, &in), -EACCES);
	objs_put(&o, "/registry/pods/default/web-0",
		 "{\"metadata\":{\"name\":\"web-0\",\"uid\":\"pod-uid-1\"}}");
	assert_int_equal(satoken_check(claims, tok, strlen(tok), NOW, objs_get, &o, &in), 0);
	assert_string_equal(in.pod_name, "web-0");
	assert_int_equal(satoken_check(claims, tok, strlen(tok), NOW + 3600, objs_get, &o, &in),
			 -EACCES);
	objs_free(&o);

	memset(&o, 0, sizeof(o));
	objs_put(&o, "/registry/serviceaccounts/default/builder", SA_JSON(SA_UID, ""));
	objs_put(&o, "/registry/pods/default/web-0",
		 "{\"metadata\":{\"name\":\"web-0\",\"uid\":\"pod-uid-2\"}}");
	assert_int_equal(satoken_check(claims, tok, strlen(tok), NOW, objs_get, &o, &in), -EACCES);
	objs_free(&o);
	json_decref(claims);
	free(tok);
	satoken_key_free(k);
}

static void bad_keys_are_refused(void **state)
{
	struct satoken_key *k = NULL;
	static const char junk[] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";

	(void)state;
	assert_int_equal(satoken_key_load(junk, sizeof(junk) - 1, &k), -EINVAL);
	assert_int_equal(satoken_key_load("", 0, &k), -EINVAL);
}

static void base64_matches_openssl(void **state)
{
	char *s;

	(void)state;
	s = satoken_base64("ab", 2);
	assert_string_equal(s, "YWI=");
	free(s);
	s = satoken_base64("abc", 3);
	assert_string_equal(s, "YWJj");
	free(s);
	s = satoken_base64("a", 1);
	assert_string_equal(s, "YQ==");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(roundtrip),
		cmocka_unit_test(key_id_is_stable_and_distinct),
		cmocka_unit_test(tampered_payload_is_refused),
		cmocka_unit_test(tampered_signature_is_refused),
		cmocka_unit_test(other_key_is_refused),
		cmocka_unit_test(alg_none_is_refused),
		cmocka_unit_test(expiry_and_not_before),
		cmocka_unit_test(legacy_token_needs_its_secret),
		cmocka_unit_test(bound_token_checks_its_pod),
		cmocka_unit_test(bad_keys_are_refused),
		cmocka_unit_test(base64_matches_openssl),
	};

	return cmocka_run_group_tests_name("satoken", tests, group_setup, group_teardown);
}
