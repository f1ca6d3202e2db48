/* The cluster's PKI with OpenSSL 3: an ECDSA P-256 CA, serving and client
 * certificates issued from it, PEM files written atomically, and the
 * admin's kubeconfig.
 *
 * Files of a master (in DATA/pki/, see the PKI_* names below): NAME.crt
 * (PEM certificate, mode 0644) and NAME.key (PEM PKCS#8 private key, mode
 * 0600). Client certificates carry the user in the subject's CN and the
 * groups in its O entries, as Kubernetes reads them.
 *
 * Functions return 0 or a negative errno: -ENOMEM, -EINVAL (bad argument,
 * unparsable PEM, key not matching the certificate), -EIO (OpenSSL failed),
 * or the errno of a file operation (-ENOENT...). Nothing here logs.
 */
#ifndef CAPSTAN_PKI_H
#define CAPSTAN_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* Base names of the PEM pairs in a master's pki directory. */
#define PKI_CA "ca"         /* cluster CA, the same on every master */
#define PKI_SERVER "server" /* serving cert: this master's names and IPs */
#define PKI_MASTER "master" /* client cert CN=capstan-master-<id>, O=system:masters */
#define PKI_ADMIN "admin"   /* client cert CN=admin, O=system:masters */

#define PKI_CA_DAYS 3650
#define PKI_LEAF_DAYS 365

/* A certificate and its private key; either may be NULL. */
struct pki_pair {
	X509 *cert;
	EVP_PKEY *key;
};

/* Frees both members and sets them to NULL. */
void pki_pair_clear(struct pki_pair *p);

/* Creates a self-signed CA (CN=@cn, valid PKI_CA_DAYS days from five
 * minutes ago). */
int pki_ca_create(const char *cn, struct pki_pair *ret_ca);

/* Uses of an issued certificate (extendedKeyUsage). */
#define PKI_USAGE_SERVER 1u /* serverAuth */
#define PKI_USAGE_CLIENT 2u /* clientAuth */

struct pki_request {
	const char *cn;
	const char *const *orgs; /* subject O entries, in order */
	size_t n_orgs;
	const char *const *sans; /* each an IP address (v4 or v6) or a DNS name */
	size_t n_sans;
	unsigned usage;          /* PKI_USAGE_* bits, at least one */
	unsigned days;           /* 0: PKI_LEAF_DAYS */
};

/* Issues a leaf certificate with a new key, signed by @ca (borrowed).
 * Errors: -EINVAL for an empty CN, no usage, or a SAN that is neither an
 * IP address nor a plausible DNS name. */
int pki_issue(const struct pki_pair *ca, const struct pki_request *req,
	      struct pki_pair *ret_pair);

/* True when @name can be a subjectAltName: an IP address or a DNS name
 * (letters, digits, '-', '.', '_', a leading "*." wildcard). */
bool pki_valid_san(const char *name);

/* Shorthands: a serving cert (serverAuth) for @sans; a client cert
 * (clientAuth) for user @cn in groups @orgs. */
int pki_issue_server(const struct pki_pair *ca, const char *cn,
		     const char *const *sans, size_t n_sans,
		     struct pki_pair *ret_pair);
int pki_issue_client(const struct pki_pair *ca, const char *cn,
		     const char *const *orgs, size_t n_orgs,
		     struct pki_pair *ret_pair);

/* Writes DIR/NAME.crt (0644) and, if the key is set, DIR/NAME.key (0600),
 * each atomically (temporary file, fsync, rename, fsync of DIR). */
int pki_pair_write(const struct pki_pair *p, const char *dir, const char *name);

/* Loads DIR/NAME.crt and, if @with_key, DIR/NAME.key, checking that they
 * match. Errors: -ENOENT when a file is missing, -EINVAL if unparsable. */
int pki_pair_load(const char *dir, const char *name, bool with_key,
		  struct pki_pair *ret_pair);

/* Parses PEM text (not NUL-terminated necessarily). @key_pem may be NULL. */
int pki_pair_from_pem(const char *cert_pem, size_t cert_len,
		      const char *key_pem, size_t key_len,
		      struct pki_pair *ret_pair);

/* PEM text of a certificate / private key, NUL-terminated, malloc'd. */
int pki_cert_pem(X509 *cert, char **ret_pem, size_t *ret_len);
int pki_key_pem(EVP_PKEY *key, char **ret_pem, size_t *ret_len);

/* True when @cert's subjectAltName covers @name (an IP or a DNS name). */
bool pki_cert_covers(X509 *cert, const char *name);

/* Seconds until @cert expires (negative once expired). */
int pki_cert_seconds_left(X509 *cert, int64_t *ret_seconds);

/* True when @cert verifies against @ca for the given usage
 * (PKI_USAGE_SERVER or PKI_USAGE_CLIENT). */
bool pki_cert_verify(X509 *ca, X509 *cert, unsigned usage);

/* Writes @len bytes to @path with @mode atomically: PATH.tmp opened with
 * O_CLOEXEC|O_NOFOLLOW, written, fsync'd, renamed over @path, then the
 * directory fsync'd. */
int pki_write_file(const char *path, const void *data, size_t len, mode_t mode);

/* Reads a whole file (at most 16 MiB), NUL-terminated, malloc'd. */
int pki_read_file(const char *path, char **ret_data, size_t *ret_len);

/* Cryptographically random bytes (RAND_bytes). Errors: -EIO. */
int pki_random(void *buf, size_t len);

/* A kubeconfig with one cluster, one user and one context. All strings
 * borrowed; the PEM texts are embedded base64-encoded. */
struct pki_kubeconfig {
	const char *cluster; /* cluster and context name, e.g. "capstan" */
	const char *server;  /* "https://127.0.0.1:6443" */
	const char *user;    /* user entry name, e.g. "admin" */
	const char *ca_pem;
	const char *cert_pem;
	const char *key_pem;
};

/* The kubeconfig as YAML text (malloc'd, NUL-terminated). */
int pki_kubeconfig_format(const struct pki_kubeconfig *kc, char **ret_text,
			  size_t *ret_len);

/* Writes it to @path with mode 0600 (it holds a private key). */
int pki_kubeconfig_write(const char *path, const struct pki_kubeconfig *kc);

#endif
