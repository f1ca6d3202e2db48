/* Unit tests of src/cli/kubeconfig: contexts, inline and file credentials,
 * tokens, and the errors of a broken kubeconfig. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "src/cli/kubeconfig.h"

/* base64 of "CA-PEM", "CERT-PEM", "KEY-PEM". */
#define CA_B64 "Q0EtUEVN"
#define CERT_B64 "Q0VSVC1QRU0="
#define KEY_B64 "S0VZLVBFTQ=="

static const char data_form[] =
	"apiVersion: v1\n"
	"kind: Config\n"
	"clusters:\n"
	"- name: other\n"
	"  cluster:\n"
	"    server: https://10.0.0.1:6443\n"
	"- name: local\n"
	"  cluster:\n"
	"    server: https://127.0.0.1:6443\n"
	"    certificate-authority-data: " CA_B64 "\n"
	"users:\n"
	"- name: admin\n"
	"  user:\n"
	"    client-certificate-data: " CERT_B64 "\n"
	"    client-key-data: " KEY_B64 "\n"
	"- name: bot\n"
	"  user:\n"
	"    token: abc.def\n"
	"contexts:\n"
	"- name: admin@local\n"
	"  context:\n"
	"    cluster: local\n"
	"    user: admin\n"
	"    namespace: kube-system\n"
	"- name: bot@other\n"
	"  context: {cluster: other, user: bot}\n"
	"- name: ghost\n"
	"  context: {cluster: local, user: nobody}\n"
	"current-context: admin@local\n";

static void parse_text(const char *text, const char *context, struct cli_kubeconfig *kc,
		       int expect, char *errmsg, size_t errlen)
{
	int rv = cli_kubeconfig_parse(text, strlen(text), "/nonexistent", context, kc, errmsg,
				      errlen);
	assert_int_equal(rv, expect);
}

static void data_fields_are_decoded(void **state)
{
	struct cli_kubeconfig kc = {0};
	char err[256] = "";
	(void)state;

	parse_text(data_form, NULL, &kc, 0, err, sizeof err);
	assert_string_equal(kc.context, "admin@local");
	assert_string_equal(kc.server, "https://127.0.0.1:6443");
	assert_int_equal(kc.ca_len, 6);
	assert_memory_equal(kc.ca, "CA-PEM", 6);
	assert_int_equal(kc.cert_len, 8);
	assert_memory_equal(kc.cert, "CERT-PEM", 8);
	assert_int_equal(kc.key_len, 7);
	assert_memory_equal(kc.key, "KEY-PEM", 7);
	assert_null(kc.token);
	assert_string_equal(kc.namespace, "kube-system");
	assert_false(kc.insecure);
	cli_kubeconfig_close(&kc);
	assert_null(kc.server);
}

static void token_user_of_named_context(void **state)
{
	struct cli_kubeconfig kc = {0};
	char err[256] = "";
	(void)state;

	parse_text(data_form, "bot@other", &kc, 0, err, sizeof err);
	assert_string_equal(kc.server, "https://10.0.0.1:6443");
	assert_string_equal(kc.token, "abc.def");
	assert_null(kc.cert);
	assert_null(kc.key);
	assert_null(kc.ca);
	cli_kubeconfig_close(&kc);
}

static void missing_context_is_an_error(void **state)
{
	struct cli_kubeconfig kc = {0};
	char err[256] = "";
	(void)state;

	parse_text(data_form, "nope", &kc, -ENOENT, err, sizeof err);
	assert_non_null(strstr(err, "\"nope\""));
	assert_null(kc.server); /* untouched */
}

static void missing_user_is_an_error(void **state)
{
	struct cli_kubeconfig kc = {0};
	char err[256] = "";
	(void)state;

	parse_text(data_form, "ghost", &kc, -ENOENT, err, sizeof err);
	assert_non_null(strstr(err, "nobody"));
}

static void no_current_context_is_an_error(void **state)
{
	static const char text[] = "apiVersion: v1\nkind: Config\nclusters: []\n";
	struct cli_kubeconfig kc = {0};
	char err[256] = "";
	(void)state;

	parse_text(text, NULL, &kc, -EINVAL, err, sizeof err);
	assert_non_null(strstr(err, "current-context"));
}

static void current_context_naming_nothing(void **state)
{
	static const char text[] = "contexts: []\ncurrent-context: gone\n";
	struct cli_kubeconfig kc = {0};
	char err[256] = "";
	(void)state;

	parse_text(text, NULL, &kc, -ENOENT, err, sizeof err);
	assert_non_null(strstr(err, "gone"));
}

static void bad_base64_and_bad_yaml(void **state)
{
	static const char bad64[] =
		"clusters:\n- name: c\n  cluster:\n    server: https://x\n"
		"    certificate-authority-data: '*** not base64 ***'\n"
		"contexts:\n- name: x\n  context: {cluster: c}\n"
		"current-context: x\n";
	static const char bad_yaml[] = "clusters: [\n";
	struct cli_kubeconfig kc = {0};
	char err[256] = "";
	(void)state;

	parse_text(bad64, NULL, &kc, -EINVAL, err, sizeof err);
	assert_non_null(strstr(err, "certificate-authority-data"));
	parse_text(bad_yaml, NULL, &kc, -EINVAL, err, sizeof err);
	parse_text("", NULL, &kc, -EINVAL, err, sizeof err);
}

static void write_text(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* File forms: relative names resolve against the kubeconfig's directory,
 * absolute ones as they are; tokenFile loses its trailing newline. */
static void file_fields_are_read(void **state)
{
	char dir[] = "/tmp/capstan-kc-XXXXXX", path[PATH_MAX], text[2048], sub[PATH_MAX];
	struct cli_kubeconfig kc = {0};
	char err[256] = "";
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof sub, "%s/pki", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	write_text(dir, "pki/ca.crt", "CA FROM FILE\n");
	write_text(dir, "pki/admin.crt", "CERT FROM FILE\n");
	write_text(dir, "pki/admin.key", "KEY FROM FILE\n");
	write_text(dir, "token", "file-token\n");
	snprintf(text, sizeof text,
		 "clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n"
		 "    certificate-authority: pki/ca.crt\n"
		 "    insecure-skip-tls-verify: true\n"
		 "users:\n- name: u\n  user:\n    client-certificate: pki/admin.crt\n"
		 "    client-key: %s/pki/admin.key\n"
		 "- name: t\n  user:\n    tokenFile: token\n"
		 "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
		 "- name: y\n  context: {cluster: c, user: t}\n"
		 "current-context: x\n",
		 dir);
	write_text(dir, "config", text);
	snprintf(path, sizeof path, "%s/config", dir);

	assert_int_equal(cli_kubeconfig_load(path, NULL, &kc, err, sizeof err), 0);
	assert_string_equal(kc.ca, "CA FROM FILE\n");
	assert_string_equal(kc.cert, "CERT FROM FILE\n");
	assert_string_equal(kc.key, "KEY FROM FILE\n");
	assert_true(kc.insecure);
	cli_kubeconfig_close(&kc);

	assert_int_equal(cli_kubeconfig_load(path, "y", &kc, err, sizeof err), 0);
	assert_string_equal(kc.token, "file-token");
	cli_kubeconfig_close(&kc);

	/* A named file that is missing fails the load. */
	write_text(dir, "config2",
		   "clusters:\n- name: c\n  cluster:\n    server: https://x\n"
		   "    certificate-authority: missing.crt\n"
		   "contexts:\n- name: x\n  context: {cluster: c}\ncurrent-context: x\n");
	snprintf(path, sizeof path, "%s/config2", dir);
	assert_int_equal(cli_kubeconfig_load(path, NULL, &kc, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "missing.crt"));

	snprintf(path, sizeof path, "%s/no-such-config", dir);
	assert_int_equal(cli_kubeconfig_load(path, NULL, &kc, err, sizeof err), -ENOENT);

	snprintf(text, sizeof text, "rm -rf '%s'", dir);
	assert_int_equal(system(text), 0);
}

static void default_path(void **state)
{
	char buf[PATH_MAX];
	(void)state;

	setenv("KUBECONFIG", "/a/first:/b/second", 1);
	assert_int_equal(cli_kubeconfig_default_path(buf, sizeof buf), 0);
	assert_string_equal(buf, "/a/first");
	unsetenv("KUBECONFIG");
	setenv("HOME", "/home/someone", 1);
	assert_int_equal(cli_kubeconfig_default_path(buf, sizeof buf), 0);
	assert_string_equal(buf, "/home/someone/.kube/config");
	assert_int_equal(cli_kubeconfig_default_path(buf, 8), -ENAMETOOLONG);
}

static void base64_with_whitespace(void **state)
{
	char *out = NULL;
	size_t len = 0;
	(void)state;

	assert_int_equal(cli_base64_decode("S0VZ\nLVBF\nTQ==\n", 15, &out, &len), 0);
	assert_int_equal(len, 7);
	assert_string_equal(out, "KEY-PEM");
	free(out);
	assert_int_equal(cli_base64_decode("!!!!", 4, &out, &len), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(data_fields_are_decoded),
		cmocka_unit_test(token_user_of_named_context),
		cmocka_unit_test(missing_context_is_an_error),
		cmocka_unit_test(missing_user_is_an_error),
		cmocka_unit_test(no_current_context_is_an_error),
		cmocka_unit_test(current_context_naming_nothing),
		cmocka_unit_test(bad_base64_and_bad_yaml),
		cmocka_unit_test(file_fields_are_read),
		cmocka_unit_test(default_path),
		cmocka_unit_test(base64_with_whitespace),
	};
	return cmocka_run_group_tests_name("cli_kubeconfig", tests, NULL, NULL);
}
