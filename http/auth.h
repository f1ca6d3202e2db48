/* Authentication (static bearer tokens, bootstrap tokens, service-account
 * tokens, client certificates of the cluster CA) and the built-in
 * authorizer of API requests.
 *
 * Authentication yields a user {name, groups}; the authorizer then decides
 * from struct http_authz_attrs, which carries what a later RBAC authorizer
 * needs (user, verb, path), so it can replace the built-in one without
 * touching the handlers.
 */
#ifndef CAPSTAN_HTTP_AUTH_H
#define CAPSTAN_HTTP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#define HTTP_GROUP_MASTERS "system:masters"
#define HTTP_GROUP_JOIN "system:capstan:join"
#define HTTP_GROUP_BOOTSTRAPPERS "system:bootstrappers"

struct http_user {
	char *name;
	char *uid; /* "" for certificate users */
	char **groups;
	size_t n_groups;
};

/* Frees a user made by http_user_from_cert(). NULL ok. */
void http_user_free(struct http_user *u);

/* True when @u (NULL = anonymous) is in @group. */
bool http_user_in_group(const struct http_user *u, const char *group);

/* The user of a verified client certificate: CN is the name, every O a
 * group. Errors: -EINVAL (no CN, or a name that is not UTF-8), -ENOMEM. */
int http_user_from_cert(X509 *cert, struct http_user **ret_user);

/* Static tokens in Kubernetes' CSV format, one per line:
 *   token,user,uid[,"group1,group2"]
 * Fields may be quoted ("" inside quotes is a quote). Blank lines and lines
 * starting with '#' are skipped. Token, user and uid must be non-empty. */
struct http_tokens;

/* Parses @text (@len bytes, borrowed). Errors: -EINVAL with the 1-based
 * line number in *ret_bad_line (may be NULL), -ENOMEM. */
int http_tokens_parse(const char *text, size_t len, struct http_tokens **ret_tokens,
		      unsigned *ret_bad_line);

/* Reads and parses a file. Errors: negative errno of open/read, and those
 * of http_tokens_parse(). */
int http_tokens_load(const char *path, struct http_tokens **ret_tokens, unsigned *ret_bad_line);

void http_tokens_free(struct http_tokens *t);

size_t http_tokens_count(const struct http_tokens *t);

/* The user of @token (compared in constant time per entry), or NULL.
 * Borrowed from @t. */
const struct http_user *http_tokens_lookup(const struct http_tokens *t, const char *token,
					   size_t len);

/* Bootstrap tokens, the Kubernetes way: "<token-id>.<token-secret>"
 * ([a-z0-9]{6} "." [a-z0-9]{16}) is checked against the Secret
 * "bootstrap-token-<token-id>" of namespace kube-system, of type
 * "bootstrap.kubernetes.io/token", whose data (base64 in the stored form)
 * holds token-id, token-secret, usage-bootstrap-authentication ("true"),
 * and optionally expiration (RFC 3339) and auth-extra-groups (comma
 * separated). */
#define HTTP_BOOTSTRAP_ID_LEN 6
#define HTTP_BOOTSTRAP_SECRET_LEN 16
#define HTTP_BOOTSTRAP_NAME_PREFIX "bootstrap-token-"
#define HTTP_BOOTSTRAP_SECRET_TYPE "bootstrap.kubernetes.io/token"
#define HTTP_BOOTSTRAP_USER_PREFIX "system:bootstrap:"
/* Store key prefix of the Secrets; the name follows. */
#define HTTP_BOOTSTRAP_KEY_PREFIX "/registry/secrets/kube-system/" HTTP_BOOTSTRAP_NAME_PREFIX

/* True when @token (@len bytes, borrowed) has the form of a bootstrap
 * token; then its token-id and a NUL are copied to @ret_id. */
bool http_bootstrap_token_parse(const char *token, size_t len,
				char ret_id[HTTP_BOOTSTRAP_ID_LEN + 1]);

/* Checks bootstrap token @token (@len bytes, borrowed) against @secret, the
 * stored msgpack form of its Secret (borrowed), at @now (Unix seconds).
 * The token-secret is compared in constant time. On success the new user
 * "system:bootstrap:<token-id>" (uid "") with the groups
 * "system:bootstrappers" and the Secret's auth-extra-groups; free it with
 * http_user_free(). An extra group must be "system:bootstrappers:..." (as
 * Kubernetes requires) or "system:capstan:join" (a master join token); any
 * other one, system:masters included, refuses the token.
 * Errors: -EACCES (malformed token or Secret, wrong type, id or secret,
 * expired or undecodable expiration, usage-bootstrap-authentication not
 * "true", being deleted, a refused extra group), -ENOMEM. */
int http_bootstrap_token_check(const void *secret, size_t secret_len, const char *token,
			       size_t len, int64_t now, struct http_user **ret_user);

/* Service-account tokens (src/lib/satoken.h checks them): the user of a
 * token whose claims and objects were checked is
 * "system:serviceaccount:<ns>:<name>" with the account's uid and the
 * groups system:serviceaccounts, system:serviceaccounts:<ns> and
 * system:authenticated, as Kubernetes. Free it with http_user_free().
 * Errors: -ENOMEM. */
struct satoken_info;
int http_sa_user_new(const struct satoken_info *info, struct http_user **ret_user);

/* What the authorizer decides on. */
struct http_authz_attrs {
	const struct http_user *user; /* NULL: anonymous */
	const char *verb;  /* "get", "list", "watch", "create", "update", "delete" */
	const char *path;  /* request path without the query (NUL-terminated) */
	/* The endpoint's built-in policy: NULL lets anyone in (even anonymous);
	 * otherwise a member of any of these groups (NULL-terminated). */
	const char *const *groups;
};

/* Built-in policy: 0 if allowed, -EACCES otherwise. @data unused.
 * Until RBAC, users of bootstrap tokens (group system:bootstrappers) reach
 * only the endpoints whose policy names one of their groups and those open
 * to anonymous users (/healthz, /livez, /readyz, /version), not the
 * Kubernetes API, where any other authenticated user may do anything. */
int http_authorize_builtin(const struct http_authz_attrs *attrs, void *data);

#endif
