/* Unit tests of src/lib/pki and src/lib/tokens: CA, serving and client
 * certificates, PEM files, kubeconfig, tokens. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/x509v3.h>
#include <yaml.h>

#include "src/lib/pki.h"
#include "src/lib/tokens.h"

/* Fixture: a CA in a temporary directory. */
struct fixture {
	char dir[64];
	struct pki_pair ca;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_pki.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(pki_ca_create("capstan-ca", &f->ca), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	pki_pair_clear(&f->ca);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Helpers. */

/* Verifies @cert against @ca alone with X509_verify_cert for @purpose. */
static int verify(X509 *ca, X509 *cert, int purpose)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok;

	assert_int_equal(X509_STORE_add_cert(store, ca), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, store, cert, NULL), 1);
	X509_STORE_CTX_set_purpose(ctx, purpose);
	ok = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return ok;
}

static char *subject_field(X509 *cert, int nid, int nth)
{
	X509_NAME *name = X509_get_subject_name(cert);
	int idx = -1;

	for (int i = 0; i <= nth; i++) {
		idx = X509_NAME_get_index_by_NID(name, nid, idx);
		if (idx < 0)
			return NULL;
	}
	return strdup((const char *)ASN1_STRING_get0_data(
		X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx))));
}

static mode_t file_mode(const char *dir, const char *file)
{
	char path[160];
	struct stat st;

	snprintf(path, sizeof path, "%s/%s", dir, file);
	assert_int_equal(stat(path, &st), 0);
	return st.st_mode & 07777;
}

/* Tests. */

static void ca_is_a_ca(void **state)
{
	struct fixture *f = *state;
	X509 *ca = f->ca.cert;
	int64_t left = 0;

	assert_int_equal(X509_get_version(ca), X509_VERSION_3);
	assert_true(X509_check_ca(ca) >= 1);
	assert_true(X509_get_extension_flags(ca) & EXFLAG_CA);
	assert_true(X509_get_key_usage(ca) & KU_KEY_CERT_SIGN);
	assert_non_null(X509_get0_subject_key_id(ca));
	assert_int_equal(EVP_PKEY_get_base_id(f->ca.key), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_bits(f->ca.key), 256);
	assert_int_equal(verify(ca, ca, X509_PURPOSE_ANY), 1);
	assert_int_equal(pki_cert_seconds_left(ca, &left), 0);
	assert_true(left > (int64_t)3649 * 86400 && left <= (int64_t)3650 * 86400);
	assert_int_equal(pki_ca_create("", &(struct pki_pair){0}), -EINVAL);
}

static void server_cert(void **state)
{
	struct fixture *f = *state;
	const char *sans[] = {"localhost", "127.0.0.1", "::1", "m1.example.com", "10.1.2.3"};
	struct pki_pair s = {0}, other_ca = {0};
	int64_t left = 0;
	char *cn;

	assert_int_equal(pki_issue_server(&f->ca, "capstan-master-1", sans, 5, &s), 0);
	assert_int_equal(verify(f->ca.cert, s.cert, X509_PURPOSE_SSL_SERVER), 1);
	assert_true(pki_cert_verify(f->ca.cert, s.cert, PKI_USAGE_SERVER));
	/* serverAuth only: not usable as a client certificate. */
	assert_int_equal(verify(f->ca.cert, s.cert, X509_PURPOSE_SSL_CLIENT), 0);
	assert_false(X509_get_extension_flags(s.cert) & EXFLAG_CA);
	assert_true(X509_get_extended_key_usage(s.cert) & XKU_SSL_SERVER);
	assert_false(X509_get_extended_key_usage(s.cert) & XKU_SSL_CLIENT);
	assert_true(X509_get_key_usage(s.cert) & KU_DIGITAL_SIGNATURE);
	assert_non_null(X509_get0_subject_key_id(s.cert));
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(s.cert),
					       X509_get0_subject_key_id(f->ca.cert)), 0);
	for (size_t i = 0; i < 5; i++)
		assert_true(pki_cert_covers(s.cert, sans[i]));
	assert_false(pki_cert_covers(s.cert, "10.1.2.4"));
	assert_false(pki_cert_covers(s.cert, "other.example.com"));
	assert_false(pki_cert_covers(s.cert, "capstan-master-1")); /* CN is not a SAN */
	cn = subject_field(s.cert, NID_commonName, 0);
	assert_string_equal(cn, "capstan-master-1");
	free(cn);
	assert_int_equal(pki_cert_seconds_left(s.cert, &left), 0);
	assert_true(left > 364 * 86400 && left <= 365 * 86400);

	/* Another CA does not vouch for it. */
	assert_int_equal(pki_ca_create("other", &other_ca), 0);
	assert_int_equal(verify(other_ca.cert, s.cert, X509_PURPOSE_SSL_SERVER), 0);
	assert_false(pki_cert_verify(other_ca.cert, s.cert, PKI_USAGE_SERVER));
	pki_pair_clear(&other_ca);
	pki_pair_clear(&s);
}

static void server_cert_bad_san(void **state)
{
	struct fixture *f = *state;
	const char *bad[] = {"ok.example", "a,b"};
	const char *bad2[] = {"has space"};
	struct pki_pair s = {0};

	assert_int_equal(pki_issue_server(&f->ca, "x", bad, 2, &s), -EINVAL);
	assert_int_equal(pki_issue_server(&f->ca, "x", bad2, 1, &s), -EINVAL);
	assert_null(s.cert);
	struct pki_request req = {.cn = "x", .usage = 0};
	assert_int_equal(pki_issue(&f->ca, &req, &s), -EINVAL);
}

static void client_cert(void **state)
{
	struct fixture *f = *state;
	const char *orgs[] = {"system:masters", "team-a"};
	struct pki_pair c = {0}, c2 = {0};
	char *v;

	assert_int_equal(pki_issue_client(&f->ca, "admin", orgs, 2, &c), 0);
	assert_int_equal(verify(f->ca.cert, c.cert, X509_PURPOSE_SSL_CLIENT), 1);
	assert_int_equal(verify(f->ca.cert, c.cert, X509_PURPOSE_SSL_SERVER), 0);
	assert_true(X509_get_extended_key_usage(c.cert) & XKU_SSL_CLIENT);
	v = subject_field(c.cert, NID_commonName, 0);
	assert_string_equal(v, "admin");
	free(v);
	v = subject_field(c.cert, NID_organizationName, 0);
	assert_string_equal(v, "system:masters");
	free(v);
	v = subject_field(c.cert, NID_organizationName, 1);
	assert_string_equal(v, "team-a");
	free(v);
	assert_null(subject_field(c.cert, NID_organizationName, 2));

	/* Serials are random. */
	assert_int_equal(pki_issue_client(&f->ca, "admin", orgs, 2, &c2), 0);
	assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(c.cert),
					      X509_get0_serialNumber(c2.cert)), 0);

	/* Both usages for the masters' own certificate. */
	struct pki_request req = {.cn = "capstan-master-7", .orgs = orgs, .n_orgs = 1,
				  .usage = PKI_USAGE_CLIENT | PKI_USAGE_SERVER};
	pki_pair_clear(&c2);
	assert_int_equal(pki_issue(&f->ca, &req, &c2), 0);
	assert_int_equal(verify(f->ca.cert, c2.cert, X509_PURPOSE_SSL_CLIENT), 1);
	assert_int_equal(verify(f->ca.cert, c2.cert, X509_PURPOSE_SSL_SERVER), 1);
	pki_pair_clear(&c2);
	pki_pair_clear(&c);
}

static void files(void **state)
{
	struct fixture *f = *state;
	const char *orgs[] = {"system:masters"};
	struct pki_pair c = {0}, loaded = {0}, ca = {0}, wrong = {0};
	char path[160];

	assert_int_equal(pki_pair_write(&f->ca, f->dir, PKI_CA), 0);
	assert_int_equal(pki_issue_client(&f->ca, "admin", orgs, 1, &c), 0);
	assert_int_equal(pki_pair_write(&c, f->dir, PKI_ADMIN), 0);
	assert_int_equal(file_mode(f->dir, "ca.key"), 0600);
	assert_int_equal(file_mode(f->dir, "ca.crt"), 0644);
	assert_int_equal(file_mode(f->dir, "admin.key"), 0600);
	assert_int_equal(file_mode(f->dir, "admin.crt"), 0644);
	snprintf(path, sizeof path, "%s/admin.key.tmp", f->dir);
	assert_int_not_equal(access(path, F_OK), 0); /* renamed away */

	assert_int_equal(pki_pair_load(f->dir, PKI_ADMIN, true, &loaded), 0);
	assert_int_equal(X509_cmp(loaded.cert, c.cert), 0);
	assert_int_equal(EVP_PKEY_eq(loaded.key, c.key), 1);
	assert_int_equal(pki_pair_load(f->dir, PKI_CA, false, &ca), 0);
	assert_null(ca.key);
	assert_int_equal(verify(ca.cert, loaded.cert, X509_PURPOSE_SSL_CLIENT), 1);
	assert_int_equal(pki_pair_load(f->dir, "absent", true, &wrong), -ENOENT);

	/* A key that does not match its certificate is refused. */
	{
		char *cert_pem, *key_pem;
		size_t cl, kl;

		assert_int_equal(pki_cert_pem(c.cert, &cert_pem, &cl), 0);
		assert_int_equal(pki_key_pem(f->ca.key, &key_pem, &kl), 0);
		assert_int_equal(pki_pair_from_pem(cert_pem, cl, key_pem, kl, &wrong), -EINVAL);
		assert_int_equal(pki_pair_from_pem("junk", 4, NULL, 0, &wrong), -EINVAL);
		free(cert_pem);
		free(key_pem);
	}
	/* Rewriting keeps the modes even over a loose leftover temp file. */
	snprintf(path, sizeof path, "%s/admin.key.tmp", f->dir);
	assert_int_equal(pki_write_file(path, "x", 1, 0666), 0);
	chmod(path, 0666);
	assert_int_equal(pki_pair_write(&c, f->dir, PKI_ADMIN), 0);
	assert_int_equal(file_mode(f->dir, "admin.key"), 0600);

	pki_pair_clear(&ca);
	pki_pair_clear(&loaded);
	pki_pair_clear(&c);
}

/* Looks up a scalar by a path of mapping keys and sequence index 0. */
static const char *yget(yaml_document_t *doc, yaml_node_t *n, const char *const *path)
{
	for (; *path != NULL; path++) {
		if (n == NULL)
			return NULL;
		if (n->type == YAML_SEQUENCE_NODE) {
			n = yaml_document_get_node(doc, *n->data.sequence.items.start);
			path--;
			continue;
		}
		if (n->type != YAML_MAPPING_NODE)
			return NULL;
		yaml_node_t *next = NULL;
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
		     p < n->data.mapping.pairs.top; p++) {
			yaml_node_t *k = yaml_document_get_node(doc, p->key);
			if (strcmp((char *)k->data.scalar.value, *path) == 0)
				next = yaml_document_get_node(doc, p->value);
		}
		n = next;
	}
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static char *unbase64(const char *s)
{
	size_t len = strlen(s);
	unsigned char *out = calloc(1, len + 1);
	int n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);

	assert_true(n >= 0);
	return (char *)out;
}

static void kubeconfig(void **state)
{
	struct fixture *f = *state;
	const char *orgs[] = {"system:masters"};
	struct pki_pair c = {0}, back = {0};
	char *ca_pem, *cert_pem, *key_pem, *text, *dec;
	char path[160];
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	FILE *fp;

	assert_int_equal(pki_issue_client(&f->ca, "admin", orgs, 1, &c), 0);
	assert_int_equal(pki_cert_pem(f->ca.cert, &ca_pem, NULL), 0);
	assert_int_equal(pki_cert_pem(c.cert, &cert_pem, NULL), 0);
	assert_int_equal(pki_key_pem(c.key, &key_pem, NULL), 0);
	struct pki_kubeconfig kc = {
		.cluster = "capstan",
		.server = "https://127.0.0.1:6443",
		.user = "admin",
		.ca_pem = ca_pem,
		.cert_pem = cert_pem,
		.key_pem = key_pem,
	};
	snprintf(path, sizeof path, "%s/admin.kubeconfig", f->dir);
	assert_int_equal(pki_kubeconfig_write(path, &kc), 0);
	assert_int_equal(file_mode(f->dir, "admin.kubeconfig"), 0600);

	fp = fopen(path, "r");
	assert_non_null(fp);
	assert_true(yaml_parser_initialize(&parser));
	yaml_parser_set_input_file(&parser, fp);
	assert_true(yaml_parser_load(&parser, &doc));
	root = yaml_document_get_root_node(&doc);
	assert_non_null(root);
	assert_string_equal(yget(&doc, root, (const char *[]){"apiVersion", NULL}), "v1");
	assert_string_equal(yget(&doc, root, (const char *[]){"kind", NULL}), "Config");
	assert_string_equal(yget(&doc, root, (const char *[]){"current-context", NULL}), "capstan");
	assert_string_equal(yget(&doc, root, (const char *[]){"clusters", "name", NULL}), "capstan");
	assert_string_equal(yget(&doc, root, (const char *[]){"clusters", "cluster", "server", NULL}),
			    "https://127.0.0.1:6443");
	assert_string_equal(yget(&doc, root, (const char *[]){"contexts", "name", NULL}), "capstan");
	assert_string_equal(yget(&doc, root, (const char *[]){"contexts", "context", "cluster", NULL}),
			    "capstan");
	assert_string_equal(yget(&doc, root, (const char *[]){"contexts", "context", "user", NULL}),
			    "admin");
	assert_string_equal(yget(&doc, root, (const char *[]){"users", "name", NULL}), "admin");
	dec = unbase64(yget(&doc, root, (const char *[]){"clusters", "cluster",
							 "certificate-authority-data", NULL}));
	assert_string_equal(dec, ca_pem);
	free(dec);
	dec = unbase64(yget(&doc, root, (const char *[]){"users", "user",
							 "client-certificate-data", NULL}));
	assert_string_equal(dec, cert_pem);
	free(dec);
	text = unbase64(yget(&doc, root, (const char *[]){"users", "user", "client-key-data", NULL}));
	assert_string_equal(text, key_pem);
	assert_int_equal(pki_pair_from_pem(cert_pem, strlen(cert_pem), text, strlen(text), &back), 0);
	free(text);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(fp);
	pki_pair_clear(&back);
	pki_pair_clear(&c);
	free(ca_pem);
	free(cert_pem);
	free(key_pem);
}

static void tokens(void **state)
{
	struct fixture *f = *state;
	char a[TOKENS_LEN + 1], b[TOKENS_LEN + 1], path[160];
	const char *masters[] = {"system:masters"};
	const char *join[] = {"system:capstan:join", "x"};
	char *text, *found, *file;

	assert_int_equal(tokens_generate(a, sizeof a), 0);
	assert_int_equal(tokens_generate(b, sizeof b), 0);
	assert_int_equal(strlen(a), TOKENS_LEN);
	assert_int_equal(strspn(a, "0123456789abcdef"), TOKENS_LEN);
	assert_string_not_equal(a, b);
	assert_int_equal(tokens_generate(a, TOKENS_LEN), -EINVAL);

	struct tokens_entry e[] = {
		{"tok1", "admin", "admin", masters, 1},
		{"tok2", "capstan-join", "capstan-join", join, 2},
		{"tok3", "nogroups", "u3", NULL, 0},
	};
	assert_int_equal(tokens_format(e, 3, &text), 0);
	assert_string_equal(text, "tok1,admin,admin,\"system:masters\"\n"
				  "tok2,capstan-join,capstan-join,\"system:capstan:join,x\"\n"
				  "tok3,nogroups,u3\n");
	assert_int_equal(tokens_find_user(text, "capstan-join", &found), 0);
	assert_string_equal(found, "tok2");
	free(found);
	assert_int_equal(tokens_find_user(text, "admi", &found), -ENOENT);
	assert_int_equal(tokens_find_user(text, "nogroups", &found), 0);
	assert_string_equal(found, "tok3");
	free(found);
	free(text);

	struct tokens_entry bad = {"to,k", "u", "u", NULL, 0};
	assert_int_equal(tokens_format(&bad, 1, &text), -EINVAL);
	const char *badg[] = {"a\"b"};
	struct tokens_entry bad2 = {"t", "u", "u", badg, 1};
	assert_int_equal(tokens_format(&bad2, 1, &text), -EINVAL);

	snprintf(path, sizeof path, "%s/tokens.csv", f->dir);
	assert_int_equal(tokens_write(path, e, 1), 0);
	assert_int_equal(file_mode(f->dir, "tokens.csv"), 0600);
	assert_int_equal(pki_read_file(path, &file, NULL), 0);
	assert_string_equal(file, "tok1,admin,admin,\"system:masters\"\n");
	free(file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(ca_is_a_ca, setup, teardown),
		cmocka_unit_test_setup_teardown(server_cert, setup, teardown),
		cmocka_unit_test_setup_teardown(server_cert_bad_san, setup, teardown),
		cmocka_unit_test_setup_teardown(client_cert, setup, teardown),
		cmocka_unit_test_setup_teardown(files, setup, teardown),
		cmocka_unit_test_setup_teardown(kubeconfig, setup, teardown),
		cmocka_unit_test_setup_teardown(tokens, setup, teardown),
	};

	return cmocka_run_group_tests_name("pki", tests, NULL, NULL);
}
