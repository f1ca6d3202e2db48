/* capstan get: tables from the server's Table answers (as kubectl prints
 * them), or objects and Lists as JSON, YAML or kind/name. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "src/cli/cli.h"
#include "src/cli/resource.h"

enum {
	OPT_FIELD_SELECTOR = CLI_OPT_FIRST_LOCAL,
};

struct get_opts {
	const char *ns;
	const char *selector;
	const char *field_selector;
	const char *output; /* NULL = table */
	bool all_ns;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstan get TYPE[/NAME] [NAME...] [OPTION]...\n"
		"       capstan get TYPE/NAME [TYPE/NAME...] [OPTION]...\n"
		"Show resources as a table (columns from the server), or as JSON, YAML or\n"
		"names. TYPE is a plural, singular, short name or kind served by the\n"
		"server (e.g. pods, pod, po, Pod, deployments.apps).\n"
		"\n"
		"  -n, --namespace NS        namespace (default: the kubeconfig context's,\n"
		"                            else \"default\")\n"
		"  -A, --all-namespaces      list across all namespaces\n"
		"  -l, --selector SEL        label selector (e.g. app=web,tier!=db)\n"
		"      --field-selector SEL  field selector (e.g. spec.nodeName=n1)\n"
		"  -o, --output FORMAT       wide, json, yaml or name\n"
		"  -h, --help                show this help\n"
		"\n"
		"See capstan(1).\n");
}

static const char *cell_text(json_t *cell, char *buf, size_t len)
{
	if (json_is_string(cell))
		return json_string_value(cell);
	if (json_is_integer(cell)) {
		snprintf(buf, len, "%lld", (long long)json_integer_value(cell));
		return buf;
	}
	if (json_is_real(cell)) {
		snprintf(buf, len, "%g", json_real_value(cell));
		return buf;
	}
	if (json_is_boolean(cell))
		return json_is_true(cell) ? "true" : "false";
	if (json_is_null(cell) || cell == NULL)
		return "<none>";
	/* Objects and arrays, as kubectl's printer shows them. */
	{
		char *s = json_dumps(cell, JSON_COMPACT);
		snprintf(buf, len, "%s", s != NULL ? s : "");
		free(s);
	}
	return buf;
}

/* The printed table: header and rows of strings (owned). */
struct table {
	json_t *rows; /* array of arrays of strings; rows[0] is the header */
	json_t *cols; /* the column definitions of the first answer */
};

static int table_add(struct table *tb, json_t *answer, const struct get_opts *o)
{
	json_t *cols = json_object_get(answer, "columnDefinitions"), *row, *col;
	bool wide = o->output != NULL && strcmp(o->output, "wide") == 0;
	size_t i, j;
	char buf[512];

	if (!json_is_array(cols))
		return cli_fail(CLI_EXIT_FAILURE, "the server did not answer with a Table");
	if (tb->rows == NULL) {
		json_t *hdr = json_array();
		tb->rows = json_array();
		tb->cols = json_incref(cols);
		if (o->all_ns)
			json_array_append_new(hdr, json_string("NAMESPACE"));
		json_array_foreach(cols, j, col)
		{
			const char *n = res_str(col, "name");
			char up[128];
			size_t k;
			if (!wide && json_integer_value(json_object_get(col, "priority")) > 0)
				continue;
			for (k = 0; n != NULL && n[k] && k + 1 < sizeof up; k++)
				up[k] = (char)(n[k] >= 'a' && n[k] <= 'z' ? n[k] - 32 : n[k]);
			up[k] = '\0';
			json_array_append_new(hdr, json_string(up));
		}
		json_array_append_new(tb->rows, hdr);
	}
	json_array_foreach(json_object_get(answer, "rows"), i, row)
	{
		json_t *cells = json_object_get(row, "cells"), *out = json_array();
		if (o->all_ns) {
			const char *ns = res_str(row, "object.metadata.namespace");
			json_array_append_new(out, json_string(ns != NULL ? ns : ""));
		}
		json_array_foreach(tb->cols, j, col)
		{
			if (!wide && json_integer_value(json_object_get(col, "priority")) > 0)
				continue;
			json_array_append_new(out, json_string(cell_text(json_array_get(cells, j),
									 buf, sizeof buf)));
		}
		json_array_append_new(tb->rows, out);
	}
	return CLI_EXIT_OK;
}

static void table_print(const struct table *tb)
{
	size_t widths[64] = {0}, i, j, ncols;
	json_t *row, *cell;

	ncols = json_array_size(json_array_get(tb->rows, 0));
	if (ncols > 64)
		ncols = 64;
	json_array_foreach(tb->rows, i, row)
		json_array_foreach(row, j, cell)
		{
			size_t l = strlen(json_string_value(cell));
			if (j < ncols && l > widths[j])
				widths[j] = l;
		}
	json_array_foreach(tb->rows, i, row)
	{
		for (j = 0; j < ncols; j++) {
			const char *s = json_string_value(json_array_get(row, j));
			if (s == NULL)
				s = "";
			if (j + 1 == ncols)
				printf("%s\n", s);
			else
				printf("%-*s   ", (int)widths[j], s);
		}
	}
}

/* Adds kind and apiVersion to list items, which the server leaves out. */
static void add_type_meta(json_t *items, const struct res_type *t)
{
	char av[256];
	json_t *it;
	size_t i;

	if (t->group[0] == '\0')
		snprintf(av, sizeof av, "%s", t->version);
	else
		snprintf(av, sizeof av, "%s/%s", t->group, t->version);
	json_array_foreach(items, i, it)
	{
		if (json_object_get(it, "kind") == NULL)
			json_object_set_new(it, "kind", json_string(t->kind));
		if (json_object_get(it, "apiVersion") == NULL)
			json_object_set_new(it, "apiVersion", json_string(av));
	}
}

static void print_name(const struct res_type *t, const json_t *obj)
{
	const char *name = res_str(obj, "metadata.name");

	if (t->group[0] == '\0')
		printf("%s/%s\n", t->singular, name != NULL ? name : "");
	else
		printf("%s.%s/%s\n", t->singular, t->group, name != NULL ? name : "");
}

/* One request: a named object (@name) or the collection. Tables go to
 * @tb; objects to @items. */
static int get_one(struct cli_http_client *c, const struct res_type *t, const char *name,
		   const struct get_opts *o, struct table *tb, json_t *items)
{
	bool table = o->output == NULL || strcmp(o->output, "wide") == 0;
	const char *ns = o->all_ns && name == NULL ? NULL : o->ns;
	char path[4096];
	json_t *ans = NULL;
	int code;

	if (res_path(t, ns, name, NULL, path, sizeof path) != 0)
		return cli_fail(CLI_EXIT_USAGE, "name too long");
	if (name == NULL && o->selector != NULL &&
	    res_query(path, sizeof path, "labelSelector", o->selector) != 0)
		return cli_fail(CLI_EXIT_USAGE, "selector too long");
	if (name == NULL && o->field_selector != NULL &&
	    res_query(path, sizeof path, "fieldSelector", o->field_selector) != 0)
		return cli_fail(CLI_EXIT_USAGE, "selector too long");
	code = res_call(c, "GET", path, NULL, table ? RES_ACCEPT_TABLE : RES_JSON, NULL, false,
			&ans);
	if (code != CLI_EXIT_OK)
		return code;
	if (ans == NULL)
		return cli_fail(CLI_EXIT_FAILURE, "the server's answer is not JSON");
	if (table) {
		code = table_add(tb, ans, o);
	} else if (name != NULL) {
		json_array_append(items, ans);
	} else {
		json_t *list = json_object_get(ans, "items");
		add_type_meta(list, t);
		json_array_extend(items, list);
	}
	json_decref(ans);
	return code;
}

int cli_cmd_get(struct cli_global *g, int argc, char **argv)
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"namespace", required_argument, NULL, 'n'},
		{"all-namespaces", no_argument, NULL, 'A'},
		{"selector", required_argument, NULL, 'l'},
		{"field-selector", required_argument, NULL, OPT_FIELD_SELECTOR},
		{"output", required_argument, NULL, 'o'},
		CLI_GLOBAL_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	struct get_opts o = {0};
	struct cli_http_client *client = NULL;
	struct res_discovery d = {0};
	struct table tb = {0};
	json_t *items = NULL;
	const struct res_type *t = NULL;
	size_t nrows = 0;
	int c, code;
	bool slash_form;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":hn:Al:o:", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		case 'n':
			o.ns = optarg;
			break;
		case 'A':
			o.all_ns = true;
			break;
		case 'l':
			o.selector = optarg;
			break;
		case OPT_FIELD_SELECTOR:
			o.field_selector = optarg;
			break;
		case 'o':
			o.output = optarg;
			break;
		default:
			code = cli_global_option(g, "get", c, argv);
			if (code != CLI_EXIT_OK)
				return code;
		}
	}
	/* argv[0] is "get"; getopt moved the operands to the end. */
	if (optind >= argc)
		return cli_usage_error("get", "missing TYPE");
	if (o.output != NULL && strcmp(o.output, "wide") != 0 && strcmp(o.output, "json") != 0 &&
	    strcmp(o.output, "yaml") != 0 && strcmp(o.output, "name") != 0)
		return cli_usage_error("get", "unknown output format '%s'", o.output);
	slash_form = strchr(argv[optind], '/') != NULL;
	for (int i = optind + 1; i < argc; i++) {
		if ((strchr(argv[i], '/') != NULL) != slash_form)
			return cli_usage_error("get", "mix of TYPE/NAME and NAME arguments");
	}
	if (o.ns == NULL)
		o.ns = res_default_namespace(g);
	code = cli_connect(g, &client);
	if (code != CLI_EXIT_OK)
		return code;
	code = res_discover(client, &d);
	if (code != CLI_EXIT_OK)
		goto out;
	items = json_array();
	if (slash_form) {
		for (int i = optind; i < argc && code == CLI_EXIT_OK; i++) {
			char type[256];
			const char *slash = strchr(argv[i], '/');
			snprintf(type, sizeof type, "%.*s", (int)(slash - argv[i]), argv[i]);
			t = res_resolve(&d, type);
			if (t == NULL) {
				code = cli_fail(CLI_EXIT_INVALID,
						"the server doesn't have a resource type \"%s\"", type);
				break;
			}
			code = get_one(client, t, slash + 1, &o, &tb, items);
		}
	} else {
		t = res_resolve(&d, argv[optind]);
		if (t == NULL) {
			code = cli_fail(CLI_EXIT_INVALID,
					"the server doesn't have a resource type \"%s\"", argv[optind]);
			goto out;
		}
		if (optind + 1 == argc)
			code = get_one(client, t, NULL, &o, &tb, items);
		for (int i = optind + 1; i < argc && code == CLI_EXIT_OK; i++)
			code = get_one(client, t, argv[i], &o, &tb, items);
	}
	if (code != CLI_EXIT_OK)
		goto out;
	if (o.output == NULL || strcmp(o.output, "wide") == 0) {
		nrows = json_array_size(tb.rows);
		if (nrows <= 1) {
			if (t != NULL && t->namespaced && !o.all_ns)
				fprintf(stderr, "No resources found in %s namespace.\n", o.ns);
			else
				fprintf(stderr, "No resources found\n");
		} else {
			table_print(&tb);
		}
	} else if (strcmp(o.output, "name") == 0) {
		json_t *it;
		size_t i;
		json_array_foreach(items, i, it)
		{
			const struct res_type *it_t = res_for_object(&d, it);
			print_name(it_t != NULL ? it_t : t, it);
		}
	} else if (json_array_size(items) == 1 && (slash_form || optind + 1 < argc)) {
		res_print(json_array_get(items, 0), o.output);
	} else {
		json_t *list = json_pack("{s:s, s:O, s:s, s:{s:s}}", "apiVersion", "v1", "items",
					 items, "kind", "List", "metadata", "resourceVersion", "");
		res_print(list, o.output);
		json_decref(list);
	}
out:
	json_decref(items);
	json_decref(tb.rows);
	json_decref(tb.cols);
	res_discovery_close(&d);
	cli_http_client_free(client);
	return code;
}
