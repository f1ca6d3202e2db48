#include "src/lib/tokens.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "src/lib/pki.h"

int tokens_generate(char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[TOKENS_LEN / 2];
	int rv;

	if (size < TOKENS_LEN + 1)
		return -EINVAL;
	rv = pki_random(raw, sizeof raw);
	if (rv != 0)
		return rv;
	for (size_t i = 0; i < sizeof raw; i++) {
		buf[2 * i] = hex[raw[i] >> 4];
		buf[2 * i + 1] = hex[raw[i] & 0xf];
	}
	buf[TOKENS_LEN] = '\0';
	OPENSSL_cleanse(raw, sizeof raw);
	return 0;
}

static bool field_ok(const char *s)
{
	return s != NULL && s[0] != '\0' && strpbrk(s, ",\"\r\n") == NULL;
}

int tokens_format(const struct tokens_entry *entries, size_t n, char **ret_text)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	for (size_t i = 0; i < n; i++) {
		const struct tokens_entry *e = &entries[i];

		if (!field_ok(e->token) || !field_ok(e->user) || !field_ok(e->uid))
			return -EINVAL;
		for (size_t g = 0; g < e->n_groups; g++) {
			if (!field_ok(e->groups[g]))
				return -EINVAL;
		}
	}
	f = open_memstream(&text, &len);
	if (f == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct tokens_entry *e = &entries[i];

		fprintf(f, "%s,%s,%s", e->token, e->user, e->uid);
		if (e->n_groups > 0) {
			fputs(",\"", f);
			for (size_t g = 0; g < e->n_groups; g++)
				fprintf(f, "%s%s", g ? "," : "", e->groups[g]);
			fputc('"', f);
		}
		fputc('\n', f);
	}
	if (fclose(f) != 0 || text == NULL) {
		free(text);
		return -ENOMEM;
	}
	*ret_text = text;
	return 0;
}

int tokens_write(const char *path, const struct tokens_entry *entries, size_t n)
{
	char *text;
	int rv;

	rv = tokens_format(entries, n, &text);
	if (rv != 0)
		return rv;
	rv = pki_write_file(path, text, strlen(text), 0600);
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	return rv;
}

int tokens_find_user(const char *csv, const char *user, char **ret_token)
{
	size_t user_len = strlen(user);
	const char *line = csv;

	while (line != NULL && *line != '\0') {
		const char *end = strchr(line, '\n');
		const char *c1 = memchr(line, ',', end ? (size_t)(end - line) : strlen(line));

		if (c1 != NULL && c1 > line && strncmp(c1 + 1, user, user_len) == 0) {
			char after = c1[1 + user_len];

			if (after == ',' || after == '\n' || after == '\r' || after == '\0') {
				char *token = strndup(line, (size_t)(c1 - line));

				if (token == NULL)
					return -ENOMEM;
				*ret_token = token;
				return 0;
			}
		}
		line = end ? end + 1 : NULL;
	}
	return -ENOENT;
}
