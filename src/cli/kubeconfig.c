#include "src/cli/kubeconfig.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "src/cli/yaml.h"

#define FILE_MAX (4u << 20)

int cli_base64_decode(const char *in, size_t in_len, char **ret_out, size_t *ret_len)
{
	EVP_ENCODE_CTX *ctx;
	unsigned char *out;
	int n = 0, m = 0, rv = 0;

	if (in_len > INT_MAX)
		return -EINVAL;
	ctx = EVP_ENCODE_CTX_new();
	if (ctx == NULL)
		return -ENOMEM;
	out = malloc(in_len / 4 * 3 + 4);
	if (out == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	/* EVP_DecodeUpdate skips whitespace and handles padding, unlike
	 * EVP_DecodeBlock which keeps the zero bytes of the padding. */
	EVP_DecodeInit(ctx);
	if (EVP_DecodeUpdate(ctx, out, &n, (const unsigned char *)in, (int)in_len) < 0 ||
	    EVP_DecodeFinal(ctx, out + n, &m) < 0) {
		free(out);
		rv = -EINVAL;
		goto out;
	}
	out[n + m] = '\0';
	*ret_out = (char *)out;
	*ret_len = (size_t)(n + m);
out:
	EVP_ENCODE_CTX_free(ctx);
	return rv;
}

/* The item of list @list_key whose "name" is @name, then its @inner map. */
static yaml_node_t *find_named(yaml_document_t *doc, yaml_node_t *root,
			       const char *list_key, const char *name, const char *inner)
{
	yaml_node_t *list = cli_yaml_get(doc, root, list_key);
	size_t n = cli_yaml_seq_len(list);

	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = cli_yaml_seq_item(doc, list, i);
		const char *nm = cli_yaml_get_str(doc, item, "name");
		if (nm != NULL && strcmp(nm, name) == 0) {
			yaml_node_t *v = cli_yaml_get(doc, item, inner);
			/* "cluster: {}" parses as a mapping; a missing one
			 * is treated as empty too. */
			return v != NULL ? v : item;
		}
	}
	return NULL;
}

/* Fills *ret_data from the "<field>-data" (base64) or "<field>" (file)
 * key of @map; leaves it NULL when neither is there. */
static int load_pem(yaml_document_t *doc, yaml_node_t *map, const char *field,
		    const char *base_dir, char **ret_data, size_t *ret_len,
		    char *errmsg, size_t errlen)
{
	char key[64], path[PATH_MAX];
	const char *v;
	int rv;

	snprintf(key, sizeof key, "%s-data", field);
	v = cli_yaml_get_str(doc, map, key);
	if (v != NULL && v[0] != '\0') {
		rv = cli_base64_decode(v, strlen(v), ret_data, ret_len);
		if (rv != 0)
			snprintf(errmsg, errlen, "%s is not valid base64", key);
		return rv;
	}
	v = cli_yaml_get_str(doc, map, field);
	if (v == NULL || v[0] == '\0')
		return 0;
	if (v[0] == '/' || base_dir == NULL)
		rv = snprintf(path, sizeof path, "%s", v);
	else
		rv = snprintf(path, sizeof path, "%s/%s", base_dir, v);
	if (rv < 0 || (size_t)rv >= sizeof path)
		return -ENAMETOOLONG;
	rv = cli_read_file(path, FILE_MAX, ret_data, ret_len);
	if (rv != 0)
		snprintf(errmsg, errlen, "cannot read %s %s: %s", field, path,
			 strerror(-rv));
	return rv;
}

static int dup_opt(const char *s, char **ret)
{
	if (s == NULL)
		return 0;
	*ret = strdup(s);
	return *ret == NULL ? -ENOMEM : 0;
}

int cli_kubeconfig_parse(const char *text, size_t len, const char *base_dir,
			 const char *context, struct cli_kubeconfig *ret,
			 char *errmsg, size_t errlen)
{
	struct cli_kubeconfig kc = {0};
	yaml_document_t doc;
	yaml_node_t *root, *ctx, *cluster, *user;
	const char *cluster_name, *user_name, *v;
	int rv;

	rv = cli_yaml_parse(text, len, &doc, errmsg, errlen);
	if (rv != 0)
		return rv;
	root = yaml_document_get_root_node(&doc);
	if (context == NULL || context[0] == '\0')
		context = cli_yaml_get_str(&doc, root, "current-context");
	if (context == NULL || context[0] == '\0') {
		snprintf(errmsg, errlen, "kubeconfig has no current-context");
		rv = -EINVAL;
		goto out;
	}
	ctx = find_named(&doc, root, "contexts", context, "context");
	if (ctx == NULL) {
		snprintf(errmsg, errlen, "context \"%s\" not found in kubeconfig", context);
		rv = -ENOENT;
		goto out;
	}
	cluster_name = cli_yaml_get_str(&doc, ctx, "cluster");
	user_name = cli_yaml_get_str(&doc, ctx, "user");
	cluster = cluster_name ? find_named(&doc, root, "clusters", cluster_name, "cluster")
			       : NULL;
	if (cluster == NULL) {
		snprintf(errmsg, errlen, "cluster \"%s\" of context \"%s\" not found in kubeconfig",
			 cluster_name ? cluster_name : "", context);
		rv = -ENOENT;
		goto out;
	}
	/* A context without a user is valid: anonymous access. */
	user = NULL;
	if (user_name != NULL && user_name[0] != '\0') {
		user = find_named(&doc, root, "users", user_name, "user");
		if (user == NULL) {
			snprintf(errmsg, errlen, "user \"%s\" of context \"%s\" not found in kubeconfig",
				 user_name, context);
			rv = -ENOENT;
			goto out;
		}
	}
	if ((rv = dup_opt(context, &kc.context)) != 0 ||
	    (rv = dup_opt(cli_yaml_get_str(&doc, cluster, "server"), &kc.server)) != 0 ||
	    (rv = dup_opt(cli_yaml_get_str(&doc, ctx, "namespace"), &kc.namespace)) != 0)
		goto out;
	v = cli_yaml_get_str(&doc, cluster, "insecure-skip-tls-verify");
	kc.insecure = v != NULL && strcmp(v, "true") == 0;
	rv = load_pem(&doc, cluster, "certificate-authority", base_dir, &kc.ca, &kc.ca_len,
		      errmsg, errlen);
	if (rv != 0)
		goto out;
	if (user != NULL) {
		rv = load_pem(&doc, user, "client-certificate", base_dir, &kc.cert,
			      &kc.cert_len, errmsg, errlen);
		if (rv == 0)
			rv = load_pem(&doc, user, "client-key", base_dir, &kc.key, &kc.key_len,
				      errmsg, errlen);
		if (rv != 0)
			goto out;
		v = cli_yaml_get_str(&doc, user, "token");
		if (v != NULL && v[0] != '\0') {
			if ((rv = dup_opt(v, &kc.token)) != 0)
				goto out;
		} else if ((v = cli_yaml_get_str(&doc, user, "tokenFile")) != NULL) {
			size_t n;
			rv = load_pem(&doc, user, "tokenFile", base_dir, &kc.token, &n, errmsg,
				      errlen);
			if (rv != 0)
				goto out;
			while (n > 0 && (kc.token[n - 1] == '\n' || kc.token[n - 1] == '\r' ||
					 kc.token[n - 1] == ' '))
				kc.token[--n] = '\0';
		}
		if ((kc.cert == NULL) != (kc.key == NULL)) {
			snprintf(errmsg, errlen, "user \"%s\" has a client certificate without a key or a key without a certificate",
				 user_name);
			rv = -EINVAL;
			goto out;
		}
	}
	*ret = kc;
	memset(&kc, 0, sizeof kc);
out:
	cli_kubeconfig_close(&kc);
	yaml_document_delete(&doc);
	if (rv == -ENOMEM)
		snprintf(errmsg, errlen, "out of memory");
	return rv;
}

int cli_kubeconfig_load(const char *path, const char *context,
			struct cli_kubeconfig *ret, char *errmsg, size_t errlen)
{
	char dir[PATH_MAX];
	char *text, *slash;
	size_t len;
	int rv;

	rv = cli_read_file(path, FILE_MAX, &text, &len);
	if (rv != 0) {
		snprintf(errmsg, errlen, "cannot read kubeconfig %s: %s", path, strerror(-rv));
		return rv;
	}
	snprintf(dir, sizeof dir, "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	rv = cli_kubeconfig_parse(text, len, dir, context, ret, errmsg, errlen);
	free(text);
	if (rv != 0) {
		/* Say which file; the parser does not know it. */
		char inner[512];
		snprintf(inner, sizeof inner, "%s", errmsg);
		snprintf(errmsg, errlen, "kubeconfig %s: %.400s", path, inner);
	}
	return rv;
}

int cli_kubeconfig_default_path(char *buf, size_t len)
{
	const char *env = getenv("KUBECONFIG");
	const char *home;
	int n;

	if (env != NULL && env[0] != '\0') {
		/* Only the first file of the list; merging is not supported. */
		size_t first = strcspn(env, ":");
		if (first > 0) {
			if (first >= len)
				return -ENAMETOOLONG;
			memcpy(buf, env, first);
			buf[first] = '\0';
			return 0;
		}
	}
	home = getenv("HOME");
	if (home == NULL || home[0] == '\0') {
		struct passwd *pw = getpwuid(getuid());
		home = pw != NULL ? pw->pw_dir : NULL;
	}
	if (home == NULL)
		return -ENOENT;
	n = snprintf(buf, len, "%s/.kube/config", home);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

void cli_kubeconfig_close(struct cli_kubeconfig *kc)
{
	free(kc->context);
	free(kc->server);
	free(kc->ca);
	free(kc->cert);
	if (kc->key != NULL)
		OPENSSL_cleanse(kc->key, kc->key_len);
	free(kc->key);
	free(kc->token);
	free(kc->namespace);
	memset(kc, 0, sizeof *kc);
}
