/* The node agent's credentials: a client (and serving) certificate
 * CN=system:node:<name>, O=system:nodes from the cluster CA, obtained once
 * with a bootstrap token and kept in the state directory, and the list of
 * master URLs learned from the cluster.
 *
 * Files (STATE/pki/): node.key (PEM PKCS#8, 0600), node.crt, ca.crt
 * (0644). STATE/masters: the last known master URLs, one per line.
 *
 * These functions block (disk, HTTPS): call them before the loop runs.
 * They log nothing; errors come back as one line in @errmsg.
 */
#ifndef CAPSTAN_NODE_CREDS_H
#define CAPSTAN_NODE_CREDS_H

#include <stddef.h>

struct node_creds {
	char *pki_dir;   /* STATE/pki */
	char *cert_file; /* STATE/pki/node.crt */
	char *key_file;  /* STATE/pki/node.key */
	char *ca_file;   /* STATE/pki/ca.crt */
};

/* Makes sure STATE/pki holds a valid certificate for @node_name: reuses it
 * when present, unexpired and for this name; otherwise generates a key
 * and a CSR and asks the masters @servers (NULL-terminated, borrowed) in
 * turn, authenticated by bootstrap @token and verifying them with
 * @ca_file (the cluster CA; may be NULL when STATE/pki/ca.crt exists).
 * @addresses (NULL-terminated) become the certificate's subjectAltNames.
 * Errors: -EINVAL (no token or CA when one is needed), -EACCES (the
 * masters refused the token), -ECONNREFUSED (no master answered), -EIO,
 * -ENOMEM, negative errno of file operations. */
int node_creds_ensure(struct node_creds *c, const char *state_dir, const char *node_name,
		      const char *const *servers, const char *token, const char *ca_file,
		      const char *const *addresses, char *errmsg, size_t errmsg_len);

/* Frees the paths. */
void node_creds_clear(struct node_creds *c);

/* Master URLs saved in STATE/masters, NULL-terminated, malloc'd (free with
 * node_strv_free); an empty list when there is no file. */
int node_masters_load(const char *state_dir, char ***ret_urls);
/* Saves them atomically. */
int node_masters_save(const char *state_dir, const char *const *urls);

/* Frees a NULL-terminated malloc'd string vector (NULL ok). */
void node_strv_free(char **v);
/* Appends a copy of @s to *@v unless present. Errors: -ENOMEM. */
int node_strv_add(char ***v, const char *s);
size_t node_strv_len(char *const *v);

#endif
