/* capstan wait: wait (through a watch) for a condition of an object or for
 * its deletion. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "src/cli/cli.h"
#include "src/cli/resource.h"

enum {
	OPT_FOR = CLI_OPT_FIRST_LOCAL,
	OPT_TIMEOUT,
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstan wait TYPE/NAME --for=condition=COND[=VALUE] [OPTION]...\n"
		"       capstan wait TYPE/NAME --for=delete [OPTION]...\n"
		"Wait until a status condition of an object has a value (default True)\n"
		"or until the object is deleted. Exit 0 when met, 1 on timeout.\n"
		"\n"
		"      --for WHAT            condition=COND[=VALUE] or delete\n"
		"      --timeout DUR         how long to wait (default 30s)\n"
		"  -n, --namespace NS        namespace (default: the kubeconfig context's,\n"
		"                            else \"default\")\n"
		"  -h, --help                show this help\n"
		"\n"
		"See capstan(1).\n");
}

struct wait_state {
	bool for_delete;
	char cond[256];
	const char *value;
	const char *what;
};

static int check_cb(const json_t *obj, void *data)
{
	struct wait_state *w = data;
	json_t *c;
	size_t i;

	if (obj == NULL) {
		if (w->for_delete) {
			printf("%s condition met\n", w->what);
			return CLI_EXIT_OK;
		}
		return cli_fail(CLI_EXIT_NOT_FOUND, "%s not found", w->what);
	}
	if (w->for_delete)
		return -1;
	json_array_foreach(json_object_get(json_object_get(obj, "status"), "conditions"), i, c)
	{
		const char *type = res_str(c, "type"), *status = res_str(c, "status");
		if (type != NULL && strcasecmp(type, w->cond) == 0 && status != NULL &&
		    strcasecmp(status, w->value) == 0) {
			printf("%s condition met\n", w->what);
			return CLI_EXIT_OK;
		}
	}
	return -1;
}

int cli_cmd_wait(struct cli_global *g, int argc, char **argv)
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"for", required_argument, NULL, OPT_FOR},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"namespace", required_argument, NULL, 'n'},
		CLI_GLOBAL_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	struct wait_state w = {0};
	const char *for_arg = NULL, *ns = NULL, *slash;
	struct cli_http_client *client = NULL;
	struct res_discovery d = {0};
	const struct res_type *t;
	uint64_t timeout_ms = 30000;
	char type[256], what[600];
	int c, code;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":hn:", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		case 'n':
			ns = optarg;
			break;
		case OPT_FOR:
			for_arg = optarg;
			break;
		case OPT_TIMEOUT:
			if (res_parse_duration(optarg, &timeout_ms) != 0)
				return cli_usage_error("wait", "invalid --timeout '%s'", optarg);
			break;
		default:
			code = cli_global_option(g, "wait", c, argv);
			if (code != CLI_EXIT_OK)
				return code;
		}
	}
	if (optind + 1 != argc || (slash = strchr(argv[optind], '/')) == NULL)
		return cli_usage_error("wait", "expected one TYPE/NAME");
	if (for_arg == NULL)
		return cli_usage_error("wait", "missing --for");
	if (strcasecmp(for_arg, "delete") == 0) {
		w.for_delete = true;
	} else if (strncasecmp(for_arg, "condition=", 10) == 0 && for_arg[10] != '\0') {
		const char *eq = strchr(for_arg + 10, '=');
		size_t n = eq != NULL ? (size_t)(eq - for_arg - 10) : strlen(for_arg + 10);
		if (n == 0 || n >= sizeof w.cond)
			return cli_usage_error("wait", "invalid --for '%s'", for_arg);
		memcpy(w.cond, for_arg + 10, n);
		w.cond[n] = '\0';
		w.value = eq != NULL ? eq + 1 : "True";
	} else {
		return cli_usage_error("wait", "invalid --for '%s' (condition=COND[=VALUE] or delete)",
				       for_arg);
	}
	snprintf(type, sizeof type, "%.*s", (int)(slash - argv[optind]), argv[optind]);
	if (ns == NULL)
		ns = res_default_namespace(g);
	code = res_open_type(g, type, &client, &d, &t);
	if (code != CLI_EXIT_OK)
		goto out;
	if (t->group[0] == '\0')
		snprintf(what, sizeof what, "%s/%s", t->singular, slash + 1);
	else
		snprintf(what, sizeof what, "%s.%s/%s", t->singular, t->group, slash + 1);
	w.what = what;
	code = res_watch_object(client, t, ns, slash + 1, res_now_ms() + timeout_ms, check_cb, &w);
out:
	res_discovery_close(&d);
	cli_http_client_free(client);
	return code;
}
