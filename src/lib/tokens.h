/* Static bearer tokens: generation and the tokens file that the API
 * server reads (Kubernetes' --token-auth-file format).
 *
 * WARNING: the file format is shared with http/auth.c. One token per line:
 *   token,user,uid,"group1,group2"
 * Tokens, users and uids never contain a comma, a quote or a line break;
 * groups never contain a comma, a quote or a line break either.
 *
 * Functions return 0 or a negative errno; nothing here logs.
 */
#ifndef CAPSTAN_TOKENS_H
#define CAPSTAN_TOKENS_H

#include <stddef.h>

/* Hex characters in a generated token (24 random bytes). */
#define TOKENS_LEN 48

/* Writes a new random token of TOKENS_LEN hex characters and a NUL into
 * @buf (at least TOKENS_LEN + 1 bytes). Errors: -EINVAL (buffer too
 * small), -EIO (no randomness). */
int tokens_generate(char *buf, size_t size);

struct tokens_entry {
	const char *token;
	const char *user;
	const char *uid;
	const char *const *groups;
	size_t n_groups;
};

/* The file's text for @n entries (malloc'd, NUL-terminated).
 * Errors: -EINVAL (a field holds a comma, quote or line break, or is
 * empty), -ENOMEM. */
int tokens_format(const struct tokens_entry *entries, size_t n, char **ret_text);

/* Writes the file atomically with mode 0600. */
int tokens_write(const char *path, const struct tokens_entry *entries, size_t n);

/* Finds the first line of the file text @csv whose user is @user and
 * returns its token (malloc'd). Errors: -ENOENT, -ENOMEM. */
int tokens_find_user(const char *csv, const char *user, char **ret_token);

#endif
