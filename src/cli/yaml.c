#include "src/cli/yaml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_yaml_parse(const char *text, size_t len, yaml_document_t *ret_doc,
		   char *errmsg, size_t errlen)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	int rv = 0;

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(errmsg, errlen, "YAML error at line %zu: %s",
			 parser.problem_mark.line + 1,
			 parser.problem ? parser.problem : "unknown");
		rv = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : -EINVAL;
		goto err_after_parser;
	}
	if (yaml_document_get_root_node(&doc) == NULL) {
		snprintf(errmsg, errlen, "empty YAML document");
		yaml_document_delete(&doc);
		rv = -EINVAL;
		goto err_after_parser;
	}
	*ret_doc = doc;
err_after_parser:
	yaml_parser_delete(&parser);
	return rv;
}

yaml_node_t *cli_yaml_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
	yaml_node_pair_t *p;

	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		const char *k = cli_yaml_scalar(yaml_document_get_node(doc, p->key));
		if (k != NULL && strcmp(k, key) == 0)
			return yaml_document_get_node(doc, p->value);
	}
	return NULL;
}

const char *cli_yaml_scalar(yaml_node_t *node)
{
	if (node == NULL || node->type != YAML_SCALAR_NODE)
		return NULL;
	return (const char *)node->data.scalar.value;
}

const char *cli_yaml_get_str(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
	return cli_yaml_scalar(cli_yaml_get(doc, map, key));
}

size_t cli_yaml_seq_len(yaml_node_t *seq)
{
	if (seq == NULL || seq->type != YAML_SEQUENCE_NODE)
		return 0;
	return (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
}

yaml_node_t *cli_yaml_seq_item(yaml_document_t *doc, yaml_node_t *seq, size_t i)
{
	if (i >= cli_yaml_seq_len(seq))
		return NULL;
	return yaml_document_get_node(doc, seq->data.sequence.items.start[i]);
}

int cli_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, rv;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;
		if (cap - len < 4096 + 1) {
			char *nb;
			cap = cap ? cap * 2 : 8192;
			nb = realloc(buf, cap);
			if (nb == NULL) {
				rv = -ENOMEM;
				goto err;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rv = -errno;
			goto err;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			rv = -EFBIG;
			goto err;
		}
	}
	close(fd);
	if (buf == NULL) {
		buf = malloc(1);
		if (buf == NULL)
			return -ENOMEM;
	}
	buf[len] = '\0';
	*ret_buf = buf;
	if (ret_len != NULL)
		*ret_len = len;
	return 0;
err:
	free(buf);
	close(fd);
	return rv;
}
