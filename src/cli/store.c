/* capstan store get|put|delete|list|watch: the diagnostic store view
 * (/capstan/v1/store/<key>) of a master. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "src/cli/cli.h"
#include "src/cli/yaml.h"
#include "src/lib/args.h"

#define VALUE_MAX (64u << 20)
#define WATCH_IDLE_MS 30000

enum {
	OPT_CREATE = CLI_OPT_FIRST_LOCAL,
	OPT_MOD_REVISION,
	OPT_LIMIT,
	OPT_FROM_REVISION,
	OPT_LOCAL,
	OPT_MAX_EVENTS,
};

struct store_opts {
	const char *output;
	const char *file;
	bool create;
	bool local;
	bool has_mod_revision;
	bool has_from_revision;
	uint64_t mod_revision;
	uint64_t limit;
	uint64_t from_revision;
	uint64_t max_events;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstan store get KEY [-o value|json] [--local]\n"
		"       capstan store put KEY [VALUE | -f FILE|-] [--create] [--mod-revision N] [-o json]\n"
		"       capstan store delete KEY [--mod-revision N] [-o json]\n"
		"       capstan store list PREFIX [--limit N] [-o table|keys|json] [--local]\n"
		"       capstan store watch PREFIX [--from-revision N] [--max-events N] [-o text|json]\n"
		"Read and write a master's replicated store directly (a diagnostic view;\n"
		"keys start with '/'). Needs a user of group system:masters.\n"
		"\n"
		"  -o, --output FORMAT     output format (see above)\n"
		"  -f, --file FILE         put: read the value from FILE ('-' = stdin)\n"
		"      --create            put: fail with exit 5 if the key exists\n"
		"      --mod-revision N    put/delete: only if the key's modRevision is N\n"
		"                          (0 with put = only if absent); else exit 5\n"
		"      --limit N           list: page size; every page is fetched\n"
		"      --local             get/list: answer from the master's memory\n"
		"                          (not linearizable)\n"
		"      --from-revision N   watch: replay events after revision N first\n"
		"                          (default, or 0: start now)\n"
		"      --max-events N      watch: exit 0 after N PUT/DELETE events\n"
		"  -h, --help              show this help\n"
		"\n"
		"See capstan(1).\n");
}

/* "/capstan/v1/store" + the escaped key. */
static int store_path(const char *key, char *buf, size_t len)
{
	snprintf(buf, len, "/capstan/v1/store");
	return cli_http_escape_path(key, buf, len);
}

static void print_escaped(FILE *f, const unsigned char *p, size_t n, size_t max)
{
	for (size_t i = 0; i < n; i++) {
		if (max > 0 && i >= max) {
			fputs("...", f);
			return;
		}
		if (p[i] == '\\')
			fputs("\\\\", f);
		else if (p[i] == '\n')
			fputs("\\n", f);
		else if (p[i] == '\t')
			fputs("\\t", f);
		else if (p[i] < 0x20 || p[i] >= 0x7f)
			fprintf(f, "\\x%02x", p[i]);
		else
			fputc(p[i], f);
	}
}

/* Decodes the base64 "value" of @obj; *ret NULL when absent. */
static int item_value(json_t *obj, char **ret, size_t *ret_len)
{
	const char *v = json_string_value(json_object_get(obj, "value"));

	*ret = NULL;
	*ret_len = 0;
	if (v == NULL)
		return 0;
	return cli_base64_decode(v, strlen(v), ret, ret_len);
}

static json_int_t int_field(json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_string(v))
		return (json_int_t)strtoll(json_string_value(v), NULL, 10);
	return 0;
}

static int print_json_body(const struct cli_http_response *resp)
{
	json_t *root = json_loadb(resp->body, resp->len, 0, NULL);

	if (root == NULL)
		return cli_fail(CLI_EXIT_FAILURE, "the server's answer is not JSON");
	json_dumpf(root, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(root);
	return CLI_EXIT_OK;
}

static json_t *parse_body(const struct cli_http_response *resp)
{
	json_t *root = json_loadb(resp->body, resp->len, 0, NULL);

	if (root != NULL && !json_is_object(root)) {
		json_decref(root);
		root = NULL;
	}
	return root;
}

static int do_get(struct cli_http_client *c, const char *key, const struct store_opts *o)
{
	struct cli_http_response resp = {0};
	char path[8192];
	char *value;
	size_t len;
	json_t *root;
	int rv, code;

	if (store_path(key, path, sizeof path) != 0)
		return cli_fail(CLI_EXIT_USAGE, "key too long");
	if (o->local)
		strncat(path, "?consistency=local", sizeof path - strlen(path) - 1);
	rv = cli_http_request(c, "GET", path, NULL, 0, 0, &resp);
	if (rv != 0)
		return cli_fail_request(c, rv);
	if (resp.status != 200) {
		code = cli_fail_response(&resp);
		goto out;
	}
	if (o->output != NULL && strcmp(o->output, "json") == 0) {
		code = print_json_body(&resp);
		goto out;
	}
	root = parse_body(&resp);
	if (root == NULL || item_value(root, &value, &len) != 0) {
		json_decref(root);
		code = cli_fail(CLI_EXIT_FAILURE, "the server's answer is not a store item");
		goto out;
	}
	if (len > 0)
		fwrite(value, 1, len, stdout);
	free(value);
	json_decref(root);
	code = CLI_EXIT_OK;
out:
	cli_http_response_free(&resp);
	return code;
}

/* The answer to a PUT or DELETE (@ok: its status is a success): a failure
 * Status, the JSON body with -o json, or "KEY LABEL N" with N the body's
 * @field. Frees @resp; returns the exit code. */
static int print_write(struct cli_http_response *resp, bool ok, const struct store_opts *o,
		       const char *key, const char *label, const char *field)
{
	json_t *root;
	int code;

	if (!ok) {
		code = cli_fail_response(resp);
	} else if (o->output != NULL && strcmp(o->output, "json") == 0) {
		code = print_json_body(resp);
	} else {
		root = parse_body(resp);
		printf("%s %s %lld\n", key, label,
		       root != NULL ? (long long)int_field(root, field) : 0LL);
		json_decref(root);
		code = CLI_EXIT_OK;
	}
	cli_http_response_free(resp);
	return code;
}

static int do_put(struct cli_http_client *c, const char *key, const char *value_arg,
		  const struct store_opts *o)
{
	struct cli_http_response resp = {0};
	char path[8192], q[64];
	char *value = NULL;
	size_t len = 0;
	const char *sep = "?";
	int rv;

	if (store_path(key, path, sizeof path) != 0)
		return cli_fail(CLI_EXIT_USAGE, "key too long");
	if (o->file != NULL) {
		const char *f = strcmp(o->file, "-") == 0 ? "/dev/stdin" : o->file;
		rv = cli_read_file(f, VALUE_MAX, &value, &len);
		if (rv != 0)
			return cli_fail(CLI_EXIT_FAILURE, "cannot read %s: %s", o->file,
					strerror(-rv));
	} else {
		value = strdup(value_arg);
		if (value == NULL)
			return cli_fail(CLI_EXIT_FAILURE, "out of memory");
		len = strlen(value);
	}
	if (o->create) {
		strncat(path, "?create=true", sizeof path - strlen(path) - 1);
		sep = "&";
	}
	if (o->has_mod_revision) {
		snprintf(q, sizeof q, "%smodRevision=%" PRIu64, sep, o->mod_revision);
		strncat(path, q, sizeof path - strlen(path) - 1);
	}
	rv = cli_http_request(c, "PUT", path, value, len, 0, &resp);
	free(value);
	if (rv != 0)
		return cli_fail_request(c, rv);
	return print_write(&resp, resp.status == 200 || resp.status == 201, o, key, "modRevision",
			   "modRevision");
}

static int do_delete(struct cli_http_client *c, const char *key, const struct store_opts *o)
{
	struct cli_http_response resp = {0};
	char path[8192], q[64];
	int rv;

	if (store_path(key, path, sizeof path) != 0)
		return cli_fail(CLI_EXIT_USAGE, "key too long");
	if (o->has_mod_revision) {
		snprintf(q, sizeof q, "?modRevision=%" PRIu64, o->mod_revision);
		strncat(path, q, sizeof path - strlen(path) - 1);
	}
	rv = cli_http_request(c, "DELETE", path, NULL, 0, 0, &resp);
	if (rv != 0)
		return cli_fail_request(c, rv);
	return print_write(&resp, resp.status == 200, o, key, "deleted at revision", "revision");
}

static int do_list(struct cli_http_client *c, const char *prefix, const struct store_opts *o)
{
	struct cli_http_response resp = {0};
	char base[8192], path[16384];
	json_t *all = json_array(), *out_obj = NULL;
	json_int_t revision = 0;
	char *cont = NULL;
	const char *fmt = o->output != NULL ? o->output : "table";
	int rv, code = CLI_EXIT_FAILURE;
	size_t i, width = 3;
	json_t *item;

	if (all == NULL)
		return cli_fail(CLI_EXIT_FAILURE, "out of memory");
	if (store_path(prefix, base, sizeof base) != 0) {
		code = cli_fail(CLI_EXIT_USAGE, "key too long");
		goto out;
	}
	/* Every page; the continue token carries the first page's revision. */
	for (;;) {
		json_t *root, *items;
		const char *next;
		int n = snprintf(path, sizeof path, "%s?list=true", base);
		if (o->limit > 0)
			n += snprintf(path + n, sizeof path - (size_t)n, "&limit=%" PRIu64, o->limit);
		if (o->local)
			n += snprintf(path + n, sizeof path - (size_t)n, "&consistency=local");
		if (cont != NULL) {
			snprintf(path + n, sizeof path - (size_t)n, "&continue=");
			if (cli_http_escape_path(cont, path, sizeof path) != 0) {
				code = cli_fail(CLI_EXIT_FAILURE, "continue token too long");
				goto out;
			}
		}
		rv = cli_http_request(c, "GET", path, NULL, 0, 0, &resp);
		if (rv != 0) {
			code = cli_fail_request(c, rv);
			goto out;
		}
		if (resp.status != 200) {
			code = cli_fail_response(&resp);
			goto out;
		}
		root = parse_body(&resp);
		cli_http_response_free(&resp);
		if (root == NULL || !json_is_array(items = json_object_get(root, "items"))) {
			json_decref(root);
			code = cli_fail(CLI_EXIT_FAILURE, "the server's answer is not a store list");
			goto out;
		}
		if (revision == 0)
			revision = int_field(root, "revision");
		json_array_extend(all, items);
		next = json_string_value(json_object_get(root, "continue"));
		free(cont);
		cont = next != NULL && next[0] != '\0' ? strdup(next) : NULL;
		json_decref(root);
		if (cont == NULL)
			break;
	}
	if (strcmp(fmt, "json") == 0) {
		out_obj = json_pack("{s:I,s:O}", "revision", revision, "items", all);
		if (out_obj == NULL) {
			code = cli_fail(CLI_EXIT_FAILURE, "out of memory");
			goto out;
		}
		json_dumpf(out_obj, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		code = CLI_EXIT_OK;
		goto out;
	}
	if (strcmp(fmt, "keys") == 0) {
		json_array_foreach(all, i, item) {
			const char *k = json_string_value(json_object_get(item, "key"));
			printf("%s\n", k != NULL ? k : "");
		}
		code = CLI_EXIT_OK;
		goto out;
	}
	json_array_foreach(all, i, item) {
		const char *k = json_string_value(json_object_get(item, "key"));
		if (k != NULL && strlen(k) > width)
			width = strlen(k);
	}
	printf("%-*s  %-10s  %s\n", (int)width, "KEY", "MODREV", "VALUE");
	json_array_foreach(all, i, item) {
		const char *k = json_string_value(json_object_get(item, "key"));
		char *v;
		size_t vlen;
		printf("%-*s  %-10lld  ", (int)width, k != NULL ? k : "",
		       (long long)int_field(item, "modRevision"));
		if (item_value(item, &v, &vlen) == 0 && v != NULL) {
			print_escaped(stdout, (const unsigned char *)v, vlen, 60);
			free(v);
		}
		fputc('\n', stdout);
	}
	code = CLI_EXIT_OK;
out:
	cli_http_response_free(&resp);
	free(cont);
	json_decref(out_obj);
	json_decref(all);
	return code;
}

struct watch_state {
	bool json;
	uint64_t max_events;
	uint64_t events;
	int error_code; /* exit code of an ERROR event */
};

/* Stops the stream with 1 for "done", 2 for "error event". */
static int watch_line_cb(const char *line, size_t len, void *data)
{
	struct watch_state *w = data;
	json_t *ev = json_loadb(line, len, 0, NULL);
	const char *type = ev != NULL ? json_string_value(json_object_get(ev, "type")) : NULL;
	int rv = 0;

	if (type == NULL) {
		/* Not an event: show it rather than drop it. */
		printf("%s\n", line);
		goto out;
	}
	if (strcmp(type, "ERROR") == 0) {
		const char *msg = json_string_value(json_object_get(ev, "message"));
		w->error_code = cli_fail(cli_exit_for_status((long)int_field(ev, "code")),
					 "watch: %s", msg != NULL ? msg : line);
		rv = 2;
		goto out;
	}
	if (w->json) {
		printf("%s\n", line);
	} else if (strcmp(type, "PUT") == 0 || strcmp(type, "DELETE") == 0) {
		const char *k = json_string_value(json_object_get(ev, "key"));
		char *v = NULL;
		size_t vlen = 0;
		printf("%s %lld %s", type, (long long)int_field(ev, "revision"), k ? k : "");
		if (strcmp(type, "PUT") == 0 && item_value(ev, &v, &vlen) == 0 && v != NULL) {
			fputc(' ', stdout);
			print_escaped(stdout, (const unsigned char *)v, vlen, 0);
		}
		free(v);
		fputc('\n', stdout);
	}
	if (strcmp(type, "PUT") == 0 || strcmp(type, "DELETE") == 0) {
		w->events++;
		if (w->max_events > 0 && w->events >= w->max_events)
			rv = 1;
	}
out:
	fflush(stdout);
	json_decref(ev);
	return rv;
}

static int do_watch(struct cli_http_client *c, const char *prefix, const struct store_opts *o)
{
	struct cli_http_response err = {0};
	struct watch_state w = {0};
	char path[8192], q[64];
	int rv, code;

	if (store_path(prefix, path, sizeof path) != 0)
		return cli_fail(CLI_EXIT_USAGE, "key too long");
	if (o->has_from_revision)
		snprintf(q, sizeof q, "?watch=true&fromRevision=%" PRIu64, o->from_revision);
	else
		snprintf(q, sizeof q, "?watch=true");
	strncat(path, q, sizeof path - strlen(path) - 1);
	w.json = o->output != NULL && strcmp(o->output, "json") == 0;
	w.max_events = o->max_events;
	rv = cli_http_stream(c, path, WATCH_IDLE_MS, watch_line_cb, &w, &err);
	if (rv == 1)
		return CLI_EXIT_OK;
	if (rv == 2)
		return w.error_code;
	if (rv < 0)
		return cli_fail_request(c, rv);
	if (err.body != NULL) {
		code = cli_fail_response(&err);
		cli_http_response_free(&err);
		return code;
	}
	return cli_fail(CLI_EXIT_CONNECT, "the server ended the watch");
}

int cli_cmd_store(struct cli_global *g, int argc, char **argv)
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"output", required_argument, NULL, 'o'},
		{"file", required_argument, NULL, 'f'},
		{"create", no_argument, NULL, OPT_CREATE},
		{"mod-revision", required_argument, NULL, OPT_MOD_REVISION},
		{"limit", required_argument, NULL, OPT_LIMIT},
		{"from-revision", required_argument, NULL, OPT_FROM_REVISION},
		{"max-events", required_argument, NULL, OPT_MAX_EVENTS},
		{"local", no_argument, NULL, OPT_LOCAL},
		CLI_GLOBAL_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	static const char *const formats[][4] = {
		{"get", "value", "json", NULL},    {"put", "json", NULL, NULL},
		{"delete", "json", NULL, NULL},    {"list", "table", "keys", "json"},
		{"watch", "text", "json", NULL},
	};
	struct store_opts o = {0};
	struct cli_http_client *client = NULL;
	const char *verb, *key, *value = NULL;
	int c, code;
	size_t nargs;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":ho:f:", options, NULL)) != -1) {
		uint64_t *target = NULL;
		switch (c) {
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		case 'o':
			o.output = optarg;
			break;
		case 'f':
			o.file = optarg;
			break;
		case OPT_CREATE:
			o.create = true;
			break;
		case OPT_LOCAL:
			o.local = true;
			break;
		case OPT_MOD_REVISION:
			target = &o.mod_revision;
			o.has_mod_revision = true;
			break;
		case OPT_LIMIT:
			target = &o.limit;
			break;
		case OPT_FROM_REVISION:
			target = &o.from_revision;
			o.has_from_revision = true;
			break;
		case OPT_MAX_EVENTS:
			target = &o.max_events;
			break;
		default:
			code = cli_global_option(g, "store", c, argv);
			if (code != CLI_EXIT_OK)
				return code;
		}
		if (target != NULL && args_parse_uint(optarg, INT64_MAX, target) != 0)
			return cli_usage_error("store", "invalid number '%s'", optarg);
	}
	/* argv[0] is "store"; getopt moved the operands to the end. */
	if (optind >= argc)
		return cli_usage_error("store", "missing verb (get, put, delete, list, watch)");
	verb = argv[optind++];
	nargs = (size_t)(argc - optind);
	if (strcmp(verb, "put") == 0) {
		if (nargs < 1 || nargs > 2)
			return cli_usage_error("store", "put takes KEY and VALUE (or -f FILE)");
		if ((nargs == 2) == (o.file != NULL))
			return cli_usage_error("store", "put takes a VALUE argument or -f FILE, not both or neither");
		if (nargs == 2)
			value = argv[optind + 1];
	} else if (strcmp(verb, "get") == 0 || strcmp(verb, "delete") == 0 ||
		   strcmp(verb, "list") == 0 || strcmp(verb, "watch") == 0) {
		if (nargs != 1)
			return cli_usage_error("store", "%s takes exactly one %s", verb,
					       verb[0] == 'l' || verb[0] == 'w' ? "PREFIX" : "KEY");
	} else {
		return cli_usage_error("store", "unknown verb '%s'", verb);
	}
	key = argv[optind];
	if (key[0] != '/')
		return cli_usage_error("store", "keys start with '/': '%s'", key);
	if (o.output != NULL) {
		bool ok = false;
		for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
			if (strcmp(formats[i][0], verb) != 0)
				continue;
			for (size_t j = 1; j < 4 && formats[i][j] != NULL; j++)
				ok = ok || strcmp(formats[i][j], o.output) == 0;
		}
		if (!ok)
			return cli_usage_error("store", "output format '%s' does not apply to %s",
					       o.output, verb);
	}
	code = cli_connect(g, &client);
	if (code != CLI_EXIT_OK)
		return code;
	if (strcmp(verb, "get") == 0)
		code = do_get(client, key, &o);
	else if (strcmp(verb, "put") == 0)
		code = do_put(client, key, value, &o);
	else if (strcmp(verb, "delete") == 0)
		code = do_delete(client, key, &o);
	else if (strcmp(verb, "list") == 0)
		code = do_list(client, key, &o);
	else
		code = do_watch(client, key, &o);
	cli_http_client_free(client);
	return code;
}
