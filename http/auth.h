/* Authentication (static bearer tokens, client certificates of the cluster
 * CA) and the built-in authorizer of API requests.
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

#include <openssl/x509.h>

#define HTTP_GROUP_MASTERS "system:masters"
#define HTTP_GROUP_JOIN "system:capstan:join"

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

/* What the authorizer decides on. */
struct http_authz_attrs {
	const struct http_user *user; /* NULL: anonymous */
	const char *verb;  /* "get", "list", "watch", "create", "update", "delete" */
	const char *path;  /* request path without the query (NUL-terminated) */
	/* The endpoint's built-in policy: NULL lets anyone in (even anonymous);
	 * otherwise a member of any of these groups (NULL-terminated). */
	const char *const *groups;
};

/* Built-in policy: 0 if allowed, -EACCES otherwise. @data unused. */
int http_authorize_builtin(const struct http_authz_attrs *attrs, void *data);

#endif
