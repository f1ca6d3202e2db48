/* Kubeconfig reading: the server, CA and credentials of one context. */
#ifndef CAPSTAN_CLI_KUBECONFIG_H
#define CAPSTAN_CLI_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* What the CLI needs from a kubeconfig context. Every pointer is owned by
 * the struct (freed by cli_kubeconfig_close) and may be NULL when absent.
 * PEM data is decoded from the *-data fields or read from the files they
 * name (relative paths are relative to the kubeconfig's directory). */
struct cli_kubeconfig {
	char *context;   /* name of the context used */
	char *server;    /* cluster.server */
	char *ca;        /* certificate-authority(-data), PEM */
	size_t ca_len;
	char *cert;      /* user client-certificate(-data), PEM */
	size_t cert_len;
	char *key;       /* user client-key(-data), PEM */
	size_t key_len;
	char *token;     /* user token, or the contents of tokenFile */
	char *namespace; /* context namespace */
	bool insecure;   /* cluster insecure-skip-tls-verify */
};

/* Parses kubeconfig @text (borrowed) and extracts @context, or the
 * current-context when @context is NULL. @base_dir (may be NULL = ".")
 * resolves relative file names. On error writes a one-line message to
 * @errmsg and leaves *ret untouched.
 * Errors: -EINVAL (not YAML, bad base64, no current-context), -ENOENT
 * (context, cluster or user not found; a named file missing), other
 * negative errno reading named files, -ENOMEM. */
int cli_kubeconfig_parse(const char *text, size_t len, const char *base_dir,
			 const char *context, struct cli_kubeconfig *ret,
			 char *errmsg, size_t errlen);

/* Reads and parses the kubeconfig at @path; same errors as
 * cli_kubeconfig_parse, plus the negative errno of reading @path. */
int cli_kubeconfig_load(const char *path, const char *context,
			struct cli_kubeconfig *ret, char *errmsg, size_t errlen);

/* The kubeconfig path to use when none is given: the first entry of
 * $KUBECONFIG, else ~/.kube/config. Writes into @buf; returns 0 or
 * -ENAMETOOLONG, -ENOENT (no HOME). */
int cli_kubeconfig_default_path(char *buf, size_t len);

/* Frees the contents; the struct may be zeroed or partly filled. */
void cli_kubeconfig_close(struct cli_kubeconfig *kc);

/* Decodes base64 @in (whitespace ignored) into a new NUL-terminated buffer.
 * Errors: -EINVAL, -ENOMEM. */
int cli_base64_decode(const char *in, size_t in_len, char **ret_out, size_t *ret_len);

#endif
