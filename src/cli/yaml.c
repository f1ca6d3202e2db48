#include "src/cli/yaml.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/lib/buf.h"

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
	struct buf b = BUF_INIT;
	int rv;

	rv = buf_read_file(&b, path, max);
	if (rv != 0) {
		buf_free(&b);
		return rv;
	}
	*ret_buf = b.data;
	if (ret_len != NULL)
		*ret_len = b.len;
	return 0;
}
