/* Small read helpers over libyaml's document tree (kubeconfig, local.yaml). */
#ifndef CAPSTAN_CLI_YAML_H
#define CAPSTAN_CLI_YAML_H

#include <stddef.h>
#include <yaml.h>

/* Parses the first document of @text (borrowed). On error writes a message
 * to @errmsg. The caller deletes *ret_doc with yaml_document_delete().
 * Errors: -EINVAL (syntax error or empty input), -ENOMEM. */
int cli_yaml_parse(const char *text, size_t len, yaml_document_t *ret_doc,
		   char *errmsg, size_t errlen);

/* The value node of @key in mapping @map, or NULL (absent, or @map is not a
 * mapping). */
yaml_node_t *cli_yaml_get(yaml_document_t *doc, yaml_node_t *map, const char *key);

/* The scalar text of @node (NUL-terminated by libyaml), or NULL when @node
 * is NULL or not a scalar. */
const char *cli_yaml_scalar(yaml_node_t *node);

/* Shorthand: cli_yaml_scalar(cli_yaml_get(doc, map, key)). */
const char *cli_yaml_get_str(yaml_document_t *doc, yaml_node_t *map, const char *key);

/* Number of items of sequence @seq (0 when not a sequence) and the i-th. */
size_t cli_yaml_seq_len(yaml_node_t *seq);
yaml_node_t *cli_yaml_seq_item(yaml_document_t *doc, yaml_node_t *seq, size_t i);

/* Reads a whole file into a NUL-terminated heap buffer (caller frees).
 * Errors: negative errno of open/read, -EFBIG over @max bytes. */
int cli_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len);

#endif
