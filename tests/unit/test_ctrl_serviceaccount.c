/* The ServiceAccount controller in the deterministic simulation: the
 * default account of every active namespace, the kube-root-ca.crt
 * ConfigMaps, and the tokens of service-account-token Secrets (signed with
 * the key in the store, verifiable, re-signed when the key changes,
 * deleted with their account). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "src/lib/satoken.h"
#include "tests/unit/ctrl_sim.h"

static const struct ctrl_ops *const ops[] = {&ctrl_serviceaccount_ops, NULL};

static const char ca_pem[] = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

/* ------------------------------------------------------------ fixture */

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

/* Writes a raw store key, as the API server does for the key and CA. */
static void put_raw(struct ctrl_sim *s, const char *key, const void *val, size_t len)
{
	struct store_cmd cmd = {0};
	struct store_result res;

	cmd.type = STORE_CMD_PUT;
	cmd.key = key;
	cmd.key_len = strlen(key);
	cmd.val = val;
	cmd.val_len = len;
	cmd.time_ms = ctrl_sim_now(s);
	assert_int_equal(store_apply(ctrl_sim_store(s), &cmd, &res), 0);
	assert_int_equal(res.status, 0);
}

static struct ctrl_sim *sim_new(bool with_key)
{
	struct ctrl_sim *s = ctrl_sim_new_ns(ops, "default");

	if (with_key) {
		put_raw(s, SATOKEN_STORE_KEY, pem_a, pem_a_len);
		put_raw(s, SATOKEN_CA_STORE_KEY, ca_pem, strlen(ca_pem));
	}
	return s;
}

/* data.@field of Secret @name, decoded (a new string) or NULL. */
static char *secret_data(struct ctrl_sim *s, const char *name, const char *field)
{
	json_t *sec = ctrl_sim_get(s, "secrets", "default", name);
	const char *b64 = json_string_value(json_object_get(json_object_get(sec, "data"), field));
	char *out = NULL;
	size_t len;

	if (b64 != NULL)
		assert_int_equal(satoken_unbase64(b64, strlen(b64), &out, &len), 0);
	json_decref(sec);
	return out;
}

static const char token_secret[] =
	"apiVersion: v1\nkind: Secret\ntype: kubernetes.io/service-account-token\n"
	"metadata:\n  name: builder-token\n  namespace: default\n"
	"  annotations: {kubernetes.io/service-account.name: builder}\n";
static const char builder_sa[] =
	"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder, namespace: default}\n";

/* Verifies @token with @pem and checks it names builder/builder-token. */
static void assert_token(const char *token, const char *pem, size_t pem_len, const char *uid)
{
	struct satoken_key *k = NULL;
	struct satoken_info in;
	json_t *claims = NULL;

	assert_non_null(token);
	assert_int_equal(satoken_key_load(pem, pem_len, &k), 0);
	assert_int_equal(satoken_verify(k, token, strlen(token), &claims), 0);
	assert_int_equal(satoken_claims_parse(claims, 0, &in), 0);
	assert_true(in.legacy);
	assert_string_equal(in.ns, "default");
	assert_string_equal(in.sa_name, "builder");
	assert_string_equal(in.sa_uid, uid);
	assert_string_equal(in.secret_name, "builder-token");
	assert_string_equal(json_string_value(json_object_get(claims, "sub")),
			    "system:serviceaccount:default:builder");
	json_decref(claims);
	satoken_key_free(k);
}

/* ------------------------------------------------------------ tests */

static void default_account_everywhere(void **state)
{
	struct ctrl_sim *s = sim_new(true);
	json_t *cm;

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: Namespace\n"
						"metadata: {name: team-a}\n"),
			 0);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_true(ctrl_sim_exists(s, "serviceaccounts", "default", "default"));
	assert_true(ctrl_sim_exists(s, "serviceaccounts", "team-a", "default"));
	cm = ctrl_sim_get(s, "configmaps", "team-a", "kube-root-ca.crt");
	assert_non_null(cm);
	assert_string_equal(json_string_value(json_object_get(json_object_get(cm, "data"),
							      "ca.crt")),
			    ca_pem);
	json_decref(cm);

	/* A namespace created later gets its own. */
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: Namespace\n"
						"metadata: {name: team-b}\n"),
			 0);
	ctrl_sim_run(s, 1000);
	assert_true(ctrl_sim_exists(s, "serviceaccounts", "team-b", "default"));
	assert_true(ctrl_sim_exists(s, "configmaps", "team-b", "kube-root-ca.crt"));

	/* Deleted: made again; the ConfigMap too. */
	assert_int_equal(ctrl_sim_delete(s, "serviceaccounts", "team-a", "default", -1), 0);
	assert_int_equal(ctrl_sim_delete(s, "configmaps", "team-a", "kube-root-ca.crt", -1), 0);
	ctrl_sim_run(s, 1000);
	assert_true(ctrl_sim_exists(s, "serviceaccounts", "team-a", "default"));
	assert_true(ctrl_sim_exists(s, "configmaps", "team-a", "kube-root-ca.crt"));

	/* Not in a namespace being deleted. */
	assert_int_equal(ctrl_sim_delete(s, "namespaces", NULL, "team-b", -1), 0);
	assert_int_equal(ctrl_sim_delete(s, "serviceaccounts", "team-b", "default", -1), 0);
	ctrl_sim_run(s, 1000);
	assert_false(ctrl_sim_exists(s, "serviceaccounts", "team-b", "default"));
	ctrl_sim_free(s);
}

static void ca_arrives_later(void **state)
{
	struct ctrl_sim *s = sim_new(false);

	(void)state;
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	assert_true(ctrl_sim_exists(s, "serviceaccounts", "default", "default"));
	assert_false(ctrl_sim_exists(s, "configmaps", "default", "kube-root-ca.crt"));
	put_raw(s, SATOKEN_CA_STORE_KEY, ca_pem, strlen(ca_pem));
	ctrl_sim_run(s, 5000);
	assert_true(ctrl_sim_exists(s, "configmaps", "default", "kube-root-ca.crt"));
	ctrl_sim_free(s);
}

static void token_secret_is_filled(void **state)
{
	struct ctrl_sim *s = sim_new(true);
	json_t *sa, *sec;
	char *tok, *ns, *ca, rv[32];

	(void)state;
	assert_int_equal(ctrl_sim_apply_yaml(s, builder_sa), 0);
	assert_int_equal(ctrl_sim_apply_yaml(s, token_secret), 0);
	ctrl_sim_start(s);
	ctrl_sim_run(s, 1000);
	sa = ctrl_sim_get(s, "serviceaccounts", "default", "builder");
	tok = secret_data(s, "builder-token", "token");
	assert_token(tok, pem_a, pem_a_len, ctrl_str(sa, "metadata.uid"));
	ns = secret_data(s, "builder-token", "namespace");
	assert_string_equal(ns, "default");
	ca = secret_data(s, "builder-token", "ca.crt");
	assert_string_equal(ca, ca_pem);
	sec = ctrl_sim_get(s, "secrets", "default", "builder-token");
	assert_string_equal(json_string_value(json_object_get(
				    api_json_path(sec, "metadata.annotations"),
				    "kubernetes.io/service-account.uid")),
			    ctrl_str(sa, "metadata.uid"));
	snprintf(rv, sizeof(rv), "%s", ctrl_str(sec, "metadata.resourceVersion"));
	json_decref(sec);
	free(ns);
	free(ca);

	/* Stable: nothing written again. */
	ctrl_sim_run(s, 5000);
	sec = ctrl_sim_get(s, "secrets", "default", "builder-token");
	assert_string_equal(ctrl_str(sec, "metadata.resourceVersion"), rv);
	json_decref(sec);
	free(tok);

	/* The key changes: the token is signed again with the new one. */
	put_raw(s, SATOKEN_STORE_KEY, pem_b, pem_b_len);
	/* Any event that leads to the Secret (here a label on the account;
	 * the Secret keeps its old token meanwhile). */
	assert_int_equal(ctrl_sim_apply_yaml(s, "apiVersion: v1\nkind: ServiceAccount\n"
						"metadata: {name: builder, namespace: default, "
						"labels: {x: y}}\n"),
			 0);
	ctrl_sim_run(s, 1000);
	tok = secret_data(s, "builder-token", "token");
	assert_token(tok, pem_b, pem_b_len, ctrl_str(sa, "metadata.uid"));
	free(tok);

	/* The account goes: so does its token Secret. */
	assert_int_equal(ctrl_sim_delete(s, "serviceaccounts", "default", "builder", -1), 0);
	ctrl_sim_run(s, 1000);
	assert_false(ctrl_sim_exists(s, "secrets", "default", "builder-token"));
	json_decref(sa);
	ctrl_sim_free(s);
}

static void secret_waits_for_account_and_key(void **state)
{
	struct ctrl_sim *s = sim_new(false);
	json_t *sa;
	char *tok;

	(void)state;
	put_raw(s, SATOKEN_CA_STORE_KEY, ca_pem, strlen(ca_pem));
	assert_int_equal(ctrl_sim_apply_yaml(s, token_secret), 0);
	ctrl_sim_start(s);
	/* Within the grace period the Secret waits for its account. */
	ctrl_sim_run(s, 3000);
	assert_true(ctrl_sim_exists(s, "secrets", "default", "builder-token"));
	assert_int_equal(ctrl_sim_apply_yaml(s, builder_sa), 0);
	ctrl_sim_run(s, 3000);
	/* No key yet: no token. */
	tok = secret_data(s, "builder-token", "token");
	assert_null(tok);
	put_raw(s, SATOKEN_STORE_KEY, pem_a, pem_a_len);
	ctrl_sim_run(s, 3000);
	tok = secret_data(s, "builder-token", "token");
	sa = ctrl_sim_get(s, "serviceaccounts", "default", "builder");
	assert_token(tok, pem_a, pem_a_len, ctrl_str(sa, "metadata.uid"));
	free(tok);
	json_decref(sa);

	/* A Secret for an account that never comes is deleted after the
	 * grace period. */
	assert_int_equal(ctrl_sim_apply_yaml(
				 s, "apiVersion: v1\nkind: Secret\ntype: "
				    "kubernetes.io/service-account-token\nmetadata:\n  name: lost\n"
				    "  annotations: {kubernetes.io/service-account.name: nobody}\n"),
			 0);
	ctrl_sim_run(s, 5000);
	assert_true(ctrl_sim_exists(s, "secrets", "default", "lost"));
	ctrl_sim_run(s, 10000);
	assert_false(ctrl_sim_exists(s, "secrets", "default", "lost"));
	ctrl_sim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(default_account_everywhere),
		cmocka_unit_test(ca_arrives_later),
		cmocka_unit_test(token_secret_is_filled),
		cmocka_unit_test(secret_waits_for_account_and_key),
	};

	return cmocka_run_group_tests_name("ctrl_serviceaccount", tests, group_setup,
					   group_teardown);
}
