#include "src/lib/pki.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <yaml.h>

#include "src/lib/buf.h"

/* Certificates start five minutes in the past so that a peer whose clock
 * lags a little still accepts them at once. */
#define BACKDATE_SECONDS (5 * 60)

void pki_pair_clear(struct pki_pair *p)
{
	if (p == NULL)
		return;
	X509_free(p->cert);
	EVP_PKEY_free(p->key);
	p->cert = NULL;
	p->key = NULL;
}

int pki_random(void *buf, size_t len)
{
	if (len > INT_MAX)
		return -EINVAL;
	if (RAND_bytes(buf, (int)len) != 1) {
		ERR_clear_error();
		return -EIO;
	}
	return 0;
}

static int new_key(EVP_PKEY **ret_key)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	if (key == NULL) {
		ERR_clear_error();
		return -EIO;
	}
	*ret_key = key;
	return 0;
}

/* A random positive 159-bit serial (RFC 5280 allows up to 20 octets). */
static int set_serial(X509 *x)
{
	ASN1_INTEGER *serial = NULL;
	BIGNUM *bn = BN_new();
	int rv = -EIO;

	if (bn == NULL)
		return -ENOMEM;
	if (BN_rand(bn, 159, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1)
		goto out;
	serial = BN_to_ASN1_INTEGER(bn, NULL);
	if (serial == NULL || X509_set_serialNumber(x, serial) != 1)
		goto out;
	rv = 0;
out:
	ASN1_INTEGER_free(serial);
	BN_free(bn);
	ERR_clear_error();
	return rv;
}

static int add_name_entry(X509_NAME *name, const char *field, const char *value)
{
	if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
				       (const unsigned char *)value, -1, -1, 0) != 1)
		return -EINVAL;
	return 0;
}

/* Adds an extension written in OpenSSL's config syntax; @value is always
 * one of our constants, never user input. */
static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok;

	if (ext == NULL)
		return -EIO;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -EIO;
}

static bool is_dns_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 253)
		return false;
	for (const char *p = s; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		      *p == '*' || *p == '_'))
			return false;
	}
	return s[0] != '.' && s[0] != '-';
}

bool pki_valid_san(const char *name)
{
	ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);

	if (ip != NULL) {
		ASN1_OCTET_STRING_free(ip);
		return true;
	}
	ERR_clear_error();
	return is_dns_name(name);
}

/* Builds subjectAltName from names that are each an IP or a DNS name. The
 * names are user input, so they go into GENERAL_NAMEs directly rather than
 * through OpenSSL's config syntax (where a comma would split them). */
static int add_sans(X509 *x, const char *const *sans, size_t n)
{
	GENERAL_NAMES *gens;
	int rv = 0;

	if (n == 0)
		return 0;
	gens = GENERAL_NAMES_new();
	if (gens == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n && rv == 0; i++) {
		ASN1_OCTET_STRING *ip = a2i_IPADDRESS(sans[i]);
		GENERAL_NAME *gen = GENERAL_NAME_new();

		if (gen == NULL) {
			ASN1_OCTET_STRING_free(ip);
			rv = -ENOMEM;
			break;
		}
		if (ip != NULL) {
			GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
		} else {
			ASN1_IA5STRING *dns;

			ERR_clear_error();
			if (!is_dns_name(sans[i])) {
				GENERAL_NAME_free(gen);
				rv = -EINVAL;
				break;
			}
			dns = ASN1_IA5STRING_new();
			if (dns == NULL ||
			    ASN1_STRING_set(dns, sans[i], (int)strlen(sans[i])) != 1) {
				ASN1_IA5STRING_free(dns);
				GENERAL_NAME_free(gen);
				rv = -ENOMEM;
				break;
			}
			GENERAL_NAME_set0_value(gen, GEN_DNS, dns);
		}
		if (sk_GENERAL_NAME_push(gens, gen) <= 0) {
			GENERAL_NAME_free(gen);
			rv = -ENOMEM;
		}
	}
	if (rv == 0 && X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
					 X509V3_ADD_DEFAULT) != 1)
		rv = -EIO;
	GENERAL_NAMES_free(gens);
	return rv;
}

/* Fills a new certificate: version 3, serial, validity, subject, key. */
static int cert_base(X509 *x, EVP_PKEY *key, const char *cn,
		     const char *const *orgs, size_t n_orgs, unsigned days)
{
	X509_NAME *name;
	int rv;

	if (X509_set_version(x, X509_VERSION_3) != 1)
		return -EIO;
	rv = set_serial(x);
	if (rv != 0)
		return rv;
	if (X509_gmtime_adj(X509_getm_notBefore(x), -BACKDATE_SECONDS) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) == NULL)
		return -EIO;
	name = X509_get_subject_name(x);
	for (size_t i = 0; i < n_orgs; i++) {
		rv = add_name_entry(name, "O", orgs[i]);
		if (rv != 0)
			return rv;
	}
	rv = add_name_entry(name, "CN", cn);
	if (rv != 0)
		return rv;
	if (X509_set_pubkey(x, key) != 1)
		return -EIO;
	return 0;
}

int pki_ca_create(const char *cn, struct pki_pair *ret_ca)
{
	struct pki_pair ca = {NULL, NULL};
	X509V3_CTX ctx;
	int rv;

	if (cn == NULL || cn[0] == '\0')
		return -EINVAL;
	rv = new_key(&ca.key);
	if (rv != 0)
		return rv;
	ca.cert = X509_new();
	if (ca.cert == NULL) {
		rv = -ENOMEM;
		goto err;
	}
	rv = cert_base(ca.cert, ca.key, cn, NULL, 0, PKI_CA_DAYS);
	if (rv != 0)
		goto err;
	if (X509_set_issuer_name(ca.cert, X509_get_subject_name(ca.cert)) != 1) {
		rv = -EIO;
		goto err;
	}
	X509V3_set_ctx(&ctx, ca.cert, ca.cert, NULL, NULL, 0);
	if ((rv = add_ext(ca.cert, &ctx, NID_basic_constraints, "critical,CA:TRUE")) != 0 ||
	    (rv = add_ext(ca.cert, &ctx, NID_key_usage,
			  "critical,digitalSignature,keyCertSign,cRLSign")) != 0 ||
	    (rv = add_ext(ca.cert, &ctx, NID_subject_key_identifier, "hash")) != 0 ||
	    (rv = add_ext(ca.cert, &ctx, NID_authority_key_identifier, "keyid:always")) != 0)
		goto err;
	if (X509_sign(ca.cert, ca.key, EVP_sha256()) <= 0) {
		rv = -EIO;
		goto err;
	}
	*ret_ca = ca;
	return 0;
err:
	ERR_clear_error();
	pki_pair_clear(&ca);
	return rv;
}

int pki_issue(const struct pki_pair *ca, const struct pki_request *req,
	      struct pki_pair *ret_pair)
{
	struct pki_pair p = {NULL, NULL};
	const char *eku;
	X509V3_CTX ctx;
	int rv;

	if (ca == NULL || ca->cert == NULL || ca->key == NULL || req->cn == NULL ||
	    req->cn[0] == '\0' || req->days > 100 * 365)
		return -EINVAL;
	switch (req->usage) {
	case PKI_USAGE_SERVER:
		eku = "serverAuth";
		break;
	case PKI_USAGE_CLIENT:
		eku = "clientAuth";
		break;
	case PKI_USAGE_SERVER | PKI_USAGE_CLIENT:
		eku = "serverAuth,clientAuth";
		break;
	default:
		return -EINVAL;
	}
	rv = new_key(&p.key);
	if (rv != 0)
		return rv;
	p.cert = X509_new();
	if (p.cert == NULL) {
		rv = -ENOMEM;
		goto err;
	}
	rv = cert_base(p.cert, p.key, req->cn, req->orgs, req->n_orgs,
		       req->days != 0 ? req->days : PKI_LEAF_DAYS);
	if (rv != 0)
		goto err;
	if (X509_set_issuer_name(p.cert, X509_get_subject_name(ca->cert)) != 1) {
		rv = -EIO;
		goto err;
	}
	X509V3_set_ctx(&ctx, ca->cert, p.cert, NULL, NULL, 0);
	if ((rv = add_ext(p.cert, &ctx, NID_basic_constraints, "critical,CA:FALSE")) != 0 ||
	    (rv = add_ext(p.cert, &ctx, NID_key_usage, "critical,digitalSignature")) != 0 ||
	    (rv = add_ext(p.cert, &ctx, NID_ext_key_usage, eku)) != 0 ||
	    (rv = add_ext(p.cert, &ctx, NID_subject_key_identifier, "hash")) != 0 ||
	    (rv = add_ext(p.cert, &ctx, NID_authority_key_identifier, "keyid:always")) != 0)
		goto err;
	rv = add_sans(p.cert, req->sans, req->n_sans);
	if (rv != 0)
		goto err;
	if (X509_sign(p.cert, ca->key, EVP_sha256()) <= 0) {
		rv = -EIO;
		goto err;
	}
	*ret_pair = p;
	return 0;
err:
	ERR_clear_error();
	pki_pair_clear(&p);
	return rv;
}

int pki_issue_server(const struct pki_pair *ca, const char *cn,
		     const char *const *sans, size_t n_sans,
		     struct pki_pair *ret_pair)
{
	struct pki_request req = {
		.cn = cn,
		.sans = sans,
		.n_sans = n_sans,
		.usage = PKI_USAGE_SERVER,
	};

	return pki_issue(ca, &req, ret_pair);
}

int pki_issue_client(const struct pki_pair *ca, const char *cn,
		     const char *const *orgs, size_t n_orgs,
		     struct pki_pair *ret_pair)
{
	struct pki_request req = {
		.cn = cn,
		.orgs = orgs,
		.n_orgs = n_orgs,
		.usage = PKI_USAGE_CLIENT,
	};

	return pki_issue(ca, &req, ret_pair);
}

/* ------------------------------------------------------------ PEM */

static int bio_to_string(BIO *bio, char **ret_text, size_t *ret_len)
{
	char *data, *copy;
	long len = BIO_get_mem_data(bio, &data);

	if (len < 0)
		return -EIO;
	copy = malloc((size_t)len + 1);
	if (copy == NULL)
		return -ENOMEM;
	memcpy(copy, data, (size_t)len);
	copy[len] = '\0';
	*ret_text = copy;
	if (ret_len != NULL)
		*ret_len = (size_t)len;
	return 0;
}

int pki_cert_pem(X509 *cert, char **ret_pem, size_t *ret_len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int rv;

	if (bio == NULL)
		return -ENOMEM;
	if (PEM_write_bio_X509(bio, cert) != 1) {
		ERR_clear_error();
		rv = -EIO;
	} else {
		rv = bio_to_string(bio, ret_pem, ret_len);
	}
	BIO_free(bio);
	return rv;
}

int pki_key_pem(EVP_PKEY *key, char **ret_pem, size_t *ret_len)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int rv;

	if (bio == NULL)
		return -ENOMEM;
	if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
		ERR_clear_error();
		rv = -EIO;
	} else {
		rv = bio_to_string(bio, ret_pem, ret_len);
	}
	BIO_free(bio);
	return rv;
}

int pki_pair_from_pem(const char *cert_pem, size_t cert_len,
		      const char *key_pem, size_t key_len,
		      struct pki_pair *ret_pair)
{
	struct pki_pair p = {NULL, NULL};
	BIO *bio;

	if (cert_pem == NULL || cert_len > INT_MAX || key_len > INT_MAX)
		return -EINVAL;
	bio = BIO_new_mem_buf(cert_pem, (int)cert_len);
	if (bio == NULL)
		return -ENOMEM;
	p.cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (p.cert == NULL)
		goto err;
	if (key_pem != NULL) {
		bio = BIO_new_mem_buf(key_pem, (int)key_len);
		if (bio == NULL) {
			pki_pair_clear(&p);
			return -ENOMEM;
		}
		/* A NULL callback would prompt on the terminal for an
		 * encrypted key; an empty passphrase fails instead. */
		p.key = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
		BIO_free(bio);
		if (p.key == NULL || X509_check_private_key(p.cert, p.key) != 1)
			goto err;
	}
	ERR_clear_error();
	*ret_pair = p;
	return 0;
err:
	ERR_clear_error();
	pki_pair_clear(&p);
	return -EINVAL;
}

/* ------------------------------------------------------------ files */

static int fsync_dir_of(const char *path)
{
	char *dir = strdup(path);
	char *slash;
	int fd, rv = 0;

	if (dir == NULL)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rv = -errno;
	} else {
		if (fsync(fd) != 0)
			rv = -errno;
		close(fd);
	}
	free(dir);
	return rv;
}

int pki_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	const char *p = data;
	char *tmp;
	size_t done = 0;
	int fd, rv = 0;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		rv = -errno;
		goto out;
	}
	/* A leftover temporary file keeps its old mode: set ours. */
	if (fchmod(fd, mode) != 0) {
		rv = -errno;
		goto err_after_open;
	}
	while (done < len) {
		ssize_t n = write(fd, p + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rv = -errno;
			goto err_after_open;
		}
		done += (size_t)n;
	}
	if (fsync(fd) != 0) {
		rv = -errno;
		goto err_after_open;
	}
	if (close(fd) != 0) {
		rv = -errno;
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) != 0) {
		rv = -errno;
		unlink(tmp);
		goto out;
	}
	rv = fsync_dir_of(path);
	goto out;
err_after_open:
	close(fd);
	unlink(tmp);
out:
	free(tmp);
	return rv;
}

int pki_read_file(const char *path, char **ret_data, size_t *ret_len)
{
	/* Below 16 MiB with the NUL and a byte to see the end (as before). */
	struct buf b = BUF_INIT;
	int rv;

	rv = buf_read_file(&b, path, (16u << 20) - 2);
	if (rv != 0) {
		buf_free(&b);
		return rv;
	}
	if (ret_len != NULL)
		*ret_len = b.len;
	*ret_data = b.data;
	return 0;
}

static char *join_path(const char *dir, const char *name, const char *ext)
{
	char *path;

	if (asprintf(&path, "%s/%s%s", dir, name, ext) < 0)
		return NULL;
	return path;
}

int pki_pair_write(const struct pki_pair *p, const char *dir, const char *name)
{
	char *pem = NULL, *path = NULL;
	size_t len;
	int rv;

	if (p->cert == NULL)
		return -EINVAL;
	/* The key first: a certificate on disk always has its key. */
	if (p->key != NULL) {
		rv = pki_key_pem(p->key, &pem, &len);
		if (rv != 0)
			return rv;
		path = join_path(dir, name, ".key");
		if (path == NULL) {
			rv = -ENOMEM;
			goto out;
		}
		rv = pki_write_file(path, pem, len, 0600);
		OPENSSL_cleanse(pem, len);
		free(pem);
		free(path);
		pem = path = NULL;
		if (rv != 0)
			return rv;
	}
	rv = pki_cert_pem(p->cert, &pem, &len);
	if (rv != 0)
		return rv;
	path = join_path(dir, name, ".crt");
	if (path == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	rv = pki_write_file(path, pem, len, 0644);
out:
	free(path);
	free(pem);
	return rv;
}

int pki_pair_load(const char *dir, const char *name, bool with_key,
		  struct pki_pair *ret_pair)
{
	char *cert_path = NULL, *key_path = NULL, *cert = NULL, *key = NULL;
	size_t cert_len, key_len = 0;
	int rv;

	cert_path = join_path(dir, name, ".crt");
	key_path = join_path(dir, name, ".key");
	if (cert_path == NULL || key_path == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	rv = pki_read_file(cert_path, &cert, &cert_len);
	if (rv != 0)
		goto out;
	if (with_key) {
		rv = pki_read_file(key_path, &key, &key_len);
		if (rv != 0)
			goto out;
	}
	rv = pki_pair_from_pem(cert, cert_len, key, key_len, ret_pair);
out:
	if (key != NULL) {
		OPENSSL_cleanse(key, key_len);
		free(key);
	}
	free(cert);
	free(cert_path);
	free(key_path);
	return rv;
}

/* ------------------------------------------------------------ checks */

bool pki_cert_covers(X509 *cert, const char *name)
{
	ASN1_OCTET_STRING *ip = a2i_IPADDRESS(name);
	bool ok;

	if (ip != NULL) {
		ASN1_OCTET_STRING_free(ip);
		ok = X509_check_ip_asc(cert, name, 0) == 1;
	} else {
		ok = X509_check_host(cert, name, 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
				     NULL) == 1;
	}
	ERR_clear_error();
	return ok;
}

int pki_cert_seconds_left(X509 *cert, int64_t *ret_seconds)
{
	ASN1_TIME *now = ASN1_TIME_set(NULL, time(NULL));
	int days, secs;
	int rv = 0;

	if (now == NULL)
		return -ENOMEM;
	if (ASN1_TIME_diff(&days, &secs, now, X509_get0_notAfter(cert)) != 1)
		rv = -EINVAL;
	else
		*ret_seconds = (int64_t)days * 86400 + secs;
	ASN1_TIME_free(now);
	ERR_clear_error();
	return rv;
}

bool pki_cert_verify(X509 *ca, X509 *cert, unsigned usage)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	bool ok = false;

	if (store == NULL || ctx == NULL || X509_STORE_add_cert(store, ca) != 1 ||
	    X509_STORE_CTX_init(ctx, store, cert, NULL) != 1)
		goto out;
	X509_STORE_CTX_set_purpose(ctx, usage == PKI_USAGE_SERVER ? X509_PURPOSE_SSL_SERVER
								  : X509_PURPOSE_SSL_CLIENT);
	ok = X509_verify_cert(ctx) == 1;
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return ok;
}

/* ------------------------------------------------------------ kubeconfig */

/* The emitter's output; oom tells a failed write from other emitter
 * errors. */
struct yaml_out {
	struct buf text;
	bool oom;
};

static int yaml_out_cb(void *data, unsigned char *bytes, size_t size)
{
	struct yaml_out *o = data;

	if (buf_append(&o->text, bytes, size) != 0) {
		o->oom = true;
		return 0;
	}
	return 1;
}

static char *base64(const char *text)
{
	size_t len = strlen(text);
	char *out;

	if (len > INT_MAX / 2)
		return NULL;
	out = malloc(4 * ((len + 2) / 3) + 1);
	if (out == NULL)
		return NULL;
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)text, (int)len);
	return out;
}

/* Emits @ev, which its initializer filled when @initialised is non-zero
 * (libyaml's initializers fail only on OOM). */
static int emit(yaml_emitter_t *e, yaml_event_t *ev, int initialised)
{
	if (!initialised)
		return -ENOMEM;
	return yaml_emitter_emit(e, ev) ? 0 : -EIO;
}

static int emit_scalar(yaml_emitter_t *e, const char *s)
{
	yaml_event_t ev;

	return emit(e, &ev,
		    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s,
						 (int)strlen(s), 1, 1, YAML_ANY_SCALAR_STYLE));
}

static int emit_map_start(yaml_emitter_t *e)
{
	yaml_event_t ev;

	return emit(e, &ev,
		    yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1,
							YAML_BLOCK_MAPPING_STYLE));
}

static int emit_map_end(yaml_emitter_t *e)
{
	yaml_event_t ev;

	return emit(e, &ev, yaml_mapping_end_event_initialize(&ev));
}

static int emit_seq_start(yaml_emitter_t *e)
{
	yaml_event_t ev;

	return emit(e, &ev,
		    yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
							 YAML_BLOCK_SEQUENCE_STYLE));
}

static int emit_seq_end(yaml_emitter_t *e)
{
	yaml_event_t ev;

	return emit(e, &ev, yaml_sequence_end_event_initialize(&ev));
}

static int emit_kv(yaml_emitter_t *e, const char *k, const char *v)
{
	int rv = emit_scalar(e, k);

	return rv != 0 ? rv : emit_scalar(e, v);
}

/* One entry of a named list: "- name: N\n  <kind>: {pairs}". */
static int emit_named(yaml_emitter_t *e, const char *name, const char *kind,
		      const char *const *pairs, size_t n_pairs)
{
	int rv;

	if ((rv = emit_seq_start(e)) != 0 || (rv = emit_map_start(e)) != 0 ||
	    (rv = emit_kv(e, "name", name)) != 0 || (rv = emit_scalar(e, kind)) != 0 ||
	    (rv = emit_map_start(e)) != 0)
		return rv;
	for (size_t i = 0; i + 1 < n_pairs; i += 2) {
		rv = emit_kv(e, pairs[i], pairs[i + 1]);
		if (rv != 0)
			return rv;
	}
	if ((rv = emit_map_end(e)) != 0 || (rv = emit_map_end(e)) != 0 ||
	    (rv = emit_seq_end(e)) != 0)
		return rv;
	return 0;
}

int pki_kubeconfig_format(const struct pki_kubeconfig *kc, char **ret_text,
			  size_t *ret_len)
{
	char *ca = NULL, *cert = NULL, *key = NULL;
	struct yaml_out out = {BUF_INIT, false};
	yaml_emitter_t e;
	yaml_event_t ev;
	int rv = -ENOMEM;

	if (kc->cluster == NULL || kc->server == NULL || kc->user == NULL ||
	    kc->ca_pem == NULL || kc->cert_pem == NULL || kc->key_pem == NULL)
		return -EINVAL;
	ca = base64(kc->ca_pem);
	cert = base64(kc->cert_pem);
	key = base64(kc->key_pem);
	if (ca == NULL || cert == NULL || key == NULL)
		goto out;
	if (!yaml_emitter_initialize(&e))
		goto out;
	yaml_emitter_set_output(&e, yaml_out_cb, &out);
	yaml_emitter_set_unicode(&e, 1);
	yaml_emitter_set_width(&e, -1); /* never fold the base64 lines */
	{
		const char *cluster[] = {"server", kc->server,
					 "certificate-authority-data", ca};
		const char *user[] = {"client-certificate-data", cert,
				      "client-key-data", key};
		const char *context[] = {"cluster", kc->cluster, "user", kc->user};

		if ((rv = emit(&e, &ev,
			       yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING))) != 0 ||
		    (rv = emit(&e, &ev,
			       yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1))) !=
			    0 ||
		    (rv = emit_map_start(&e)) != 0 ||
		    (rv = emit_kv(&e, "apiVersion", "v1")) != 0 ||
		    (rv = emit_kv(&e, "kind", "Config")) != 0 ||
		    (rv = emit_scalar(&e, "clusters")) != 0 ||
		    (rv = emit_named(&e, kc->cluster, "cluster", cluster, 4)) != 0 ||
		    (rv = emit_scalar(&e, "users")) != 0 ||
		    (rv = emit_named(&e, kc->user, "user", user, 4)) != 0 ||
		    (rv = emit_scalar(&e, "contexts")) != 0 ||
		    (rv = emit_named(&e, kc->cluster, "context", context, 4)) != 0 ||
		    (rv = emit_kv(&e, "current-context", kc->cluster)) != 0 ||
		    (rv = emit_map_end(&e)) != 0)
			goto err_after_emitter;
		if ((rv = emit(&e, &ev, yaml_document_end_event_initialize(&ev, 1))) != 0 ||
		    (rv = emit(&e, &ev, yaml_stream_end_event_initialize(&ev))) != 0 ||
		    !yaml_emitter_flush(&e)) {
			rv = rv != 0 ? rv : -EIO;
			goto err_after_emitter;
		}
	}
	yaml_emitter_delete(&e);
	*ret_text = out.text.data;
	if (ret_len != NULL)
		*ret_len = out.text.len;
	out.text.data = NULL;
	rv = 0;
	goto out;
err_after_emitter:
	if (out.oom)
		rv = -ENOMEM;
	yaml_emitter_delete(&e);
out:
	if (out.text.data != NULL) {
		OPENSSL_cleanse(out.text.data, out.text.len);
		free(out.text.data);
	}
	if (key != NULL) {
		OPENSSL_cleanse(key, strlen(key));
		free(key);
	}
	free(cert);
	free(ca);
	return rv;
}

int pki_kubeconfig_write(const char *path, const struct pki_kubeconfig *kc)
{
	char *text;
	size_t len;
	int rv;

	rv = pki_kubeconfig_format(kc, &text, &len);
	if (rv != 0)
		return rv;
	rv = pki_write_file(path, text, len, 0600);
	OPENSSL_cleanse(text, len);
	free(text);
	return rv;
}
