/* --registry settings of capstan-node and the image pull policy decision
 * (kubelet's imagePullPolicy rules, with the local image store as the
 * source of images no registry serves). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime.h"
#include "src/lib/pki.h"
#include "src/node/agent.h"
#include "src/node/registries.h"

void node_registry_clear(struct node_registry *r)
{
	if (r == NULL)
		return;
	free(r->host);
	free(r->url);
	free(r->ca_file);
	free(r->username);
	if (r->password != NULL) {
		memset(r->password, 0, strlen(r->password));
		free(r->password);
	}
	memset(r, 0, sizeof(*r));
}

static int set_str(char **dst, const char *v, size_t len)
{
	free(*dst);
	*dst = strndup(v, len);
	return *dst != NULL ? 0 : -ENOMEM;
}

/* The first line of @path (a password file), without its newline. */
static int read_secret(const char *path, char **ret)
{
	char *text = NULL;
	size_t len = 0;
	int rv = pki_read_file(path, &text, &len);

	if (rv != 0)
		return rv;
	*ret = strndup(text, strcspn(text, "\r\n"));
	memset(text, 0, len);
	free(text);
	return *ret != NULL ? 0 : -ENOMEM;
}

int node_registry_parse(const char *spec, struct node_registry *ret, char *err, size_t err_len)
{
	const char *eq = strchr(spec, '='), *p, *end;
	struct node_registry r;
	char file[4096];
	int rv;

	memset(&r, 0, sizeof(r));
	if (eq == NULL || eq == spec) {
		snprintf(err, err_len, "registry '%s': expected HOST=URL[,key=value...]", spec);
		return -EINVAL;
	}
	rv = set_str(&r.host, spec, (size_t)(eq - spec));
	if (rv != 0)
		goto fail;
	if (strpbrk(r.host, "/ ,") != NULL) {
		snprintf(err, err_len, "registry '%s': HOST is a name[:port] as in image names",
			 spec);
		rv = -EINVAL;
		goto fail;
	}
	p = eq + 1;
	end = p + strcspn(p, ",");
	if (end > p) {
		rv = set_str(&r.url, p, (size_t)(end - p));
		if (rv != 0)
			goto fail;
		if (strncmp(r.url, "http://", 7) != 0 && strncmp(r.url, "https://", 8) != 0) {
			snprintf(err, err_len, "registry '%s': the URL must start with http:// or "
					       "https://", spec);
			rv = -EINVAL;
			goto fail;
		}
	}
	for (p = *end == ',' ? end + 1 : end; *p != '\0'; p = *end == ',' ? end + 1 : end) {
		const char *kv_eq;
		size_t klen;

		end = p + strcspn(p, ",");
		kv_eq = memchr(p, '=', (size_t)(end - p));
		if (kv_eq == NULL) {
			snprintf(err, err_len, "registry '%s': '%.*s' is not key=value", spec,
				 (int)(end - p), p);
			rv = -EINVAL;
			goto fail;
		}
		klen = (size_t)(kv_eq - p);
		if (klen == 7 && strncmp(p, "ca-file", klen) == 0) {
			rv = set_str(&r.ca_file, kv_eq + 1, (size_t)(end - kv_eq - 1));
		} else if (klen == 8 && strncmp(p, "username", klen) == 0) {
			rv = set_str(&r.username, kv_eq + 1, (size_t)(end - kv_eq - 1));
		} else if (klen == 8 && strncmp(p, "password", klen) == 0) {
			rv = set_str(&r.password, kv_eq + 1, (size_t)(end - kv_eq - 1));
		} else if (klen == 13 && strncmp(p, "password-file", klen) == 0) {
			snprintf(file, sizeof(file), "%.*s", (int)(end - kv_eq - 1), kv_eq + 1);
			free(r.password);
			r.password = NULL;
			rv = read_secret(file, &r.password);
			if (rv != 0) {
				snprintf(err, err_len, "registry %s: cannot read %s: %s", r.host, file,
					 strerror(-rv));
				goto fail;
			}
		} else {
			snprintf(err, err_len,
				 "registry '%s': unknown key '%.*s' (ca-file, username, password, "
				 "password-file)",
				 spec, (int)klen, p);
			rv = -EINVAL;
			goto fail;
		}
		if (rv != 0)
			goto fail;
	}
	if ((r.password != NULL) != (r.username != NULL)) {
		snprintf(err, err_len, "registry %s: username and password go together", r.host);
		rv = -EINVAL;
		goto fail;
	}
	*ret = r;
	return 0;
fail:
	if (rv == -ENOMEM)
		snprintf(err, err_len, "out of memory");
	node_registry_clear(&r);
	return rv;
}

const char *node_pull_policy(const char *image, const char *policy)
{
	const char *slash, *colon;

	if (policy != NULL && (strcmp(policy, "Always") == 0 || strcmp(policy, "Never") == 0 ||
			       strcmp(policy, "IfNotPresent") == 0))
		return policy;
	/* The API server's default: Always for :latest or no tag. */
	if (image == NULL || strchr(image, '@') != NULL)
		return "IfNotPresent";
	slash = strrchr(image, '/');
	colon = strrchr(slash != NULL ? slash : image, ':');
	if (colon == NULL || strcmp(colon, ":latest") == 0)
		return "Always";
	return "IfNotPresent";
}

bool node_registry_serves(const struct rt_registry *regs, size_t n, const char *image)
{
	struct rt_image_ref ref;
	bool found = false;
	size_t i;

	if (image == NULL || rt_image_ref_parse(image, &ref) != 0)
		return false;
	for (i = 0; i < n && !found; i++)
		found = strcmp(regs[i].host, ref.domain) == 0;
	rt_image_ref_clear(&ref);
	return found;
}

enum node_pull node_pull_decide(const char *policy, bool present, bool registry)
{
	if (strcmp(policy, "Never") == 0)
		return present ? NODE_PULL_NO : NODE_PULL_NEVER_MISSING;
	if (!present)
		return NODE_PULL_YES;
	/* Always with no registry for the image's domain: the local image is
	 * the only copy there is (imported images, e.g. localhost/...). */
	if (strcmp(policy, "Always") == 0 && registry)
		return NODE_PULL_YES;
	return NODE_PULL_NO;
}
