/* capstan delete: delete named objects or those of manifests. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "src/cli/cli.h"
#include "src/cli/resource.h"

enum {
	OPT_WAIT = CLI_OPT_FIRST_LOCAL,
	OPT_TIMEOUT,
	OPT_IGNORE_NOT_FOUND,
};

struct delete_opts {
	const char *ns;
	bool wait;
	bool ignore_not_found;
	uint64_t timeout_ms;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstan delete TYPE NAME... [OPTION]...\n"
		"       capstan delete TYPE/NAME... [OPTION]...\n"
		"       capstan delete -f FILE|DIR|- [OPTION]...\n"
		"Delete objects by type and name, or those a manifest describes.\n"
		"\n"
		"  -f, --filename FILE       manifest file, directory, or '-' for stdin\n"
		"  -n, --namespace NS        namespace (default: the kubeconfig context's,\n"
		"                            else \"default\")\n"
		"      --wait                wait until each object is gone (finalizers)\n"
		"      --timeout DUR         limit of --wait (default 60s)\n"
		"      --ignore-not-found    an absent object is not an error\n"
		"  -h, --help                show this help\n"
		"\n"
		"See capstan(1).\n");
}

static int gone_cb(const json_t *obj, void *data)
{
	(void)data;
	return obj == NULL ? CLI_EXIT_OK : -1;
}

static int delete_one(struct cli_http_client *c, const struct res_type *t, const char *ns,
		      const char *name, const struct delete_opts *o)
{
	char path[4096];
	int code;

	if (res_path(t, ns, name, NULL, path, sizeof path) != 0)
		return cli_fail(CLI_EXIT_USAGE, "name too long");
	code = res_call(c, "DELETE", path, NULL, RES_JSON, NULL, o->ignore_not_found, NULL);
	if (code == CLI_EXIT_NOT_FOUND && o->ignore_not_found)
		return CLI_EXIT_OK;
	if (code != CLI_EXIT_OK)
		return code;
	if (t->group[0] == '\0')
		printf("%s \"%s\" deleted\n", t->singular, name);
	else
		printf("%s.%s \"%s\" deleted\n", t->singular, t->group, name);
	fflush(stdout);
	if (o->wait)
		code = res_watch_object(c, t, ns, name, res_now_ms() + o->timeout_ms, gone_cb,
					NULL);
	return code;
}

int cli_cmd_delete(struct cli_global *g, int argc, char **argv)
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"filename", required_argument, NULL, 'f'},
		{"namespace", required_argument, NULL, 'n'},
		{"wait", no_argument, NULL, OPT_WAIT},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"ignore-not-found", no_argument, NULL, OPT_IGNORE_NOT_FOUND},
		CLI_GLOBAL_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	struct delete_opts o = {.timeout_ms = 60000};
	const char *file = NULL;
	struct cli_http_client *client = NULL;
	struct res_discovery d = {0};
	const struct res_type *t;
	json_t *objs = NULL, *obj;
	size_t i;
	int c, code, worst = CLI_EXIT_OK;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":hf:n:", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		case 'f':
			file = optarg;
			break;
		case 'n':
			o.ns = optarg;
			break;
		case OPT_WAIT:
			o.wait = true;
			break;
		case OPT_IGNORE_NOT_FOUND:
			o.ignore_not_found = true;
			break;
		case OPT_TIMEOUT:
			if (res_parse_duration(optarg, &o.timeout_ms) != 0)
				return cli_usage_error("delete", "invalid --timeout '%s'", optarg);
			break;
		default:
			code = cli_global_option(g, "delete", c, argv);
			if (code != CLI_EXIT_OK)
				return code;
		}
	}
	if (file == NULL && optind >= argc)
		return cli_usage_error("delete", "missing TYPE NAME or -f FILE");
	if (file != NULL && optind < argc)
		return cli_usage_error("delete", "give either -f FILE or TYPE NAME, not both");
	if (file == NULL && strchr(argv[optind], '/') == NULL && optind + 1 >= argc)
		return cli_usage_error("delete", "missing NAME");
	if (o.ns == NULL)
		o.ns = res_default_namespace(g);
	if (file != NULL) {
		code = res_load_manifests(file, &objs);
		if (code != CLI_EXIT_OK)
			return code;
	}
	code = cli_connect(g, &client);
	if (code != CLI_EXIT_OK)
		goto out;
	code = res_discover(client, &d);
	if (code != CLI_EXIT_OK)
		goto out;
	if (objs != NULL) {
		json_array_foreach(objs, i, obj)
		{
			const char *ns = res_str(obj, "metadata.namespace");
			const char *name = res_str(obj, "metadata.name");
			t = res_for_object(&d, obj);
			if (t == NULL) {
				code = cli_fail(CLI_EXIT_INVALID,
						"no matches for kind \"%s\" in version \"%s\"",
						res_str(obj, "kind"), res_str(obj, "apiVersion"));
			} else if (name == NULL) {
				code = cli_fail(CLI_EXIT_INVALID, "a %s in %s has no metadata.name",
						t->kind, file);
			} else {
				code = delete_one(client, t, ns != NULL ? ns : o.ns, name, &o);
			}
			if (code != CLI_EXIT_OK && worst == CLI_EXIT_OK)
				worst = code;
		}
	} else if (strchr(argv[optind], '/') != NULL) {
		for (int k = optind; k < argc; k++) {
			char type[256];
			const char *slash = strchr(argv[k], '/');
			if (slash == NULL) {
				code = cli_usage_error("delete", "mix of TYPE/NAME and NAME arguments");
				goto out;
			}
			snprintf(type, sizeof type, "%.*s", (int)(slash - argv[k]), argv[k]);
			t = res_resolve(&d, type);
			if (t == NULL)
				code = cli_fail(CLI_EXIT_INVALID,
						"the server doesn't have a resource type \"%s\"", type);
			else
				code = delete_one(client, t, o.ns, slash + 1, &o);
			if (code != CLI_EXIT_OK && worst == CLI_EXIT_OK)
				worst = code;
		}
	} else {
		t = res_resolve(&d, argv[optind]);
		if (t == NULL) {
			code = cli_fail(CLI_EXIT_INVALID,
					"the server doesn't have a resource type \"%s\"", argv[optind]);
			goto out;
		}
		for (int k = optind + 1; k < argc; k++) {
			code = delete_one(client, t, o.ns, argv[k], &o);
			if (code != CLI_EXIT_OK && worst == CLI_EXIT_OK)
				worst = code;
		}
	}
	code = worst;
out:
	json_decref(objs);
	res_discovery_close(&d);
	cli_http_client_free(client);
	return code;
}
