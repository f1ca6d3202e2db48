/* Service-account tokens: JWTs (RFC 7519) signed RS256 with the cluster's
 * service-account key, with the claims Kubernetes' service-account tokens
 * carry, and their check against the objects they name.
 *
 * Why RS256 with one RSA-2048 key: verification (the hot path: every
 * request that carries a token) costs about 17 us, the fastest of the
 * public-key choices (ES256 verifies in ~60 us); only the public half is
 * needed to verify, so the key could be published (JWKS) or handed to
 * other verifiers later; and it is Kubernetes' own default (kubeadm's
 * sa.key), so tokens look like the ones client tools know. Signing
 * (~0.3 ms) happens only when a token is issued.
 *
 * The key is shared by every master through the replicated store: the PEM
 * of the private key at SATOKEN_STORE_KEY, written create-only by the first
 * leader (http/serviceaccount.c), read from the local store by the
 * controllers (to sign) and the API server (to verify).
 *
 * Two token forms, as Kubernetes issues them:
 * - legacy (Secrets of type kubernetes.io/service-account-token): iss
 *   "kubernetes/serviceaccount", sub, and the flat claims
 *   kubernetes.io/serviceaccount/{namespace, secret.name,
 *   service-account.name, service-account.uid}; no expiry;
 * - bound (TokenRequest): iss and aud SATOKEN_ISSUER, iat, nbf, exp, jti,
 *   sub, and "kubernetes.io": {namespace, serviceaccount: {name, uid},
 *   optionally pod or secret: {name, uid}}.
 *
 * Functions return 0 or a negative errno; nothing here logs.
 */
#ifndef CAPSTAN_SATOKEN_H
#define CAPSTAN_SATOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Store keys (outside /registry/: not reachable through the Kubernetes
 * API, only by system:masters through the store endpoints). The values are
 * PEM text. */
#define SATOKEN_STORE_KEY "/capstan/serviceaccount/signing-key"
#define SATOKEN_CA_STORE_KEY "/capstan/serviceaccount/ca.crt"

#define SATOKEN_LEGACY_ISSUER "kubernetes/serviceaccount"
#define SATOKEN_ISSUER "https://kubernetes.default.svc.cluster.local"
#define SATOKEN_SECRET_TYPE "kubernetes.io/service-account-token"
#define SATOKEN_ANN_SA_NAME "kubernetes.io/service-account.name"
#define SATOKEN_ANN_SA_UID "kubernetes.io/service-account.uid"
#define SATOKEN_USER_PREFIX "system:serviceaccount:"
#define SATOKEN_GROUP_ALL "system:serviceaccounts"
#define SATOKEN_GROUP_NS_PREFIX "system:serviceaccounts:"
#define SATOKEN_GROUP_AUTHENTICATED "system:authenticated"

/* Bound token lifetimes (seconds), as Kubernetes: the default asked for by
 * kubectl create token is one hour; less than ten minutes is refused; at
 * most a day here (kube-apiserver's --service-account-max-token-expiration
 * is unset by default; a bound on it keeps a stolen token short-lived). */
#define SATOKEN_DEFAULT_EXPIRY 3600
#define SATOKEN_MIN_EXPIRY 600
#define SATOKEN_MAX_EXPIRY 86400

/* Longest token accepted for verification. */
#define SATOKEN_MAX_LEN 16384

struct satoken_key;

/* A new RSA-2048 private key as PKCS#8 PEM (malloc'd, NUL-terminated;
 * *@ret_len excludes the NUL). Takes 50-500 ms: not for the loop thread.
 * Errors: -ENOMEM, -EIO (OpenSSL failure). */
int satoken_key_generate(char **ret_pem, size_t *ret_len);

/* Parses a PEM private key (@pem, @len bytes, borrowed; need not be
 * NUL-terminated). Errors: -EINVAL (not an RSA private key), -ENOMEM. */
int satoken_key_load(const void *pem, size_t len, struct satoken_key **ret_key);

void satoken_key_free(struct satoken_key *k);

/* The key id ("kid" header): base64url of the SHA-256 of the public key's
 * DER, as Kubernetes computes it. Borrowed from @k. */
const char *satoken_key_id(const struct satoken_key *k);

/* Signs @claims (borrowed; a JSON object) into a compact JWS
 * (malloc'd, NUL-terminated). Errors: -EINVAL, -ENOMEM, -EIO. */
int satoken_sign(const struct satoken_key *k, const json_t *claims, char **ret_token);

/* Checks the form, header (alg RS256; kid, if any, ours) and signature of
 * @token (@len bytes, borrowed) and returns its claims (new reference).
 * Times are not checked here. Errors: -EACCES (anything wrong), -ENOMEM. */
int satoken_verify(const struct satoken_key *k, const char *token, size_t len,
		   json_t **ret_claims);

/* True when @token looks like a JWS (three base64url parts, the first
 * starting with "eyJ"): cheap test before any look-up. */
bool satoken_looks_like_jwt(const char *token, size_t len);

/* Claims of a legacy Secret token (new reference, NULL on OOM). */
json_t *satoken_legacy_claims(const char *ns, const char *sa_name, const char *sa_uid,
			      const char *secret_name);

/* What a bound token is bound to (besides its service account). */
struct satoken_binding {
	const char *kind; /* "Pod" or "Secret"; NULL: none */
	const char *name;
	const char *uid;
};

/* Claims of a bound token issued at @now (Unix seconds) for @expiry
 * seconds, for @audiences (NULL-terminated; NULL: SATOKEN_ISSUER), with
 * @jti (a unique id) and an optional binding (may be NULL). New reference,
 * NULL on OOM. */
json_t *satoken_bound_claims(const char *ns, const char *sa_name, const char *sa_uid,
			     int64_t now, int64_t expiry, const char *const *audiences,
			     const char *jti, const struct satoken_binding *binding);

/* The identity a token's claims name. Strings are borrowed from the
 * claims tree. */
struct satoken_info {
	bool legacy;
	const char *ns;
	const char *sa_name;
	const char *sa_uid;
	const char *secret_name; /* legacy, or a bound token's Secret; else NULL */
	const char *pod_name;    /* bound to a pod; else NULL */
	const char *pod_uid;
	const char *secret_uid;  /* bound to a secret; else NULL */
	const char *jti;         /* may be NULL */
	int64_t exp;             /* 0: none (legacy) */
};

/* Reads and checks the claims at Unix time @now: issuer, subject matching
 * the namespace and name, exp (required for bound tokens) and nbf (60 s of
 * clock skew allowed, as Kubernetes), audience SATOKEN_ISSUER for bound
 * tokens. Errors: -EACCES. */
int satoken_claims_parse(const json_t *claims, int64_t now, struct satoken_info *ret_info);

/* Looks up a stored object (msgpack) by store key; returns 0 with the
 * value borrowed until the next store mutation, or -ENOENT. */
typedef int (*satoken_get_fn)(void *data, const char *key, const void **ret_val,
			      size_t *ret_len);

/* Full check of a token whose claims @claims were verified: the claims
 * (satoken_claims_parse at @now), then the objects through @get: the
 * ServiceAccount exists with the claimed uid and is not being deleted; a
 * legacy token's Secret exists, is not being deleted, names the account
 * and holds this very @token in data.token; a bound token's pod or secret
 * exists with the claimed uid and is not being deleted. Errors: -EACCES. */
int satoken_check(const json_t *claims, const char *token, size_t len, int64_t now,
		  satoken_get_fn get, void *data, struct satoken_info *ret_info);

/* base64 (standard alphabet, padded) of @len bytes of @data (malloc'd,
 * NUL-terminated), as Secret data is stored. NULL on OOM. */
char *satoken_base64(const void *data, size_t len);

/* Decodes standard base64 (padding optional) of @len characters into a
 * new buffer with a NUL after the *@ret_len bytes. Errors: -EINVAL,
 * -ENOMEM. */
int satoken_unbase64(const char *s, size_t len, char **ret, size_t *ret_len);

#endif
