/* capstan logs: a container's log through the API server (pods/NAME/log),
 * which fetches it from the node agent; -f follows it. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/cli/cli.h"
#include "src/cli/resource.h"
#include "src/lib/args.h"

enum {
	OPT_TAIL = CLI_OPT_FIRST_LOCAL,
	OPT_SINCE,
	OPT_TIMESTAMPS,
	OPT_PREVIOUS,
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstan logs [pod/]NAME [OPTION]...\n"
		"Print the log of a container of a pod.\n"
		"\n"
		"  -c, --container NAME      the container (needed when the pod has several)\n"
		"  -f, --follow              keep printing new lines until interrupted\n"
		"      --tail N              only the last N lines\n"
		"      --since DUR           only lines newer than DUR (e.g. 5m)\n"
		"      --timestamps          prefix each line with its RFC 3339 time\n"
		"  -p, --previous            the log of the previous, terminated instance\n"
		"  -n, --namespace NS        namespace (default: the kubeconfig context's,\n"
		"                            else \"default\")\n"
		"  -h, --help                show this help\n"
		"\n"
		"See capstan(1).\n");
}

static int print_line(const char *line, size_t len, void *data)
{
	(void)data;
	fwrite(line, 1, len, stdout);
	fputc('\n', stdout);
	/* Followed logs are read as they come. */
	fflush(stdout);
	return 0;
}

int cli_cmd_logs(struct cli_global *g, int argc, char **argv)
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"container", required_argument, NULL, 'c'},
		{"follow", no_argument, NULL, 'f'},
		{"namespace", required_argument, NULL, 'n'},
		{"previous", no_argument, NULL, 'p'},
		{"tail", required_argument, NULL, OPT_TAIL},
		{"since", required_argument, NULL, OPT_SINCE},
		{"timestamps", no_argument, NULL, OPT_TIMESTAMPS},
		CLI_GLOBAL_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	const char *container = NULL, *ns = NULL, *name;
	bool follow = false, timestamps = false, previous = false;
	uint64_t tail = 0, since_ms = 0;
	bool has_tail = false;
	char path[4096], q[512], esc_ns[512], esc_name[512], buf[1024];
	struct cli_http_client *client = NULL;
	struct cli_http_response err = {0};
	int c, code, rv;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":hc:fn:p", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		case 'c':
			container = optarg;
			break;
		case 'f':
			follow = true;
			break;
		case 'n':
			ns = optarg;
			break;
		case 'p':
			previous = true;
			break;
		case OPT_TAIL:
			if (args_parse_uint(optarg, INT64_MAX, &tail) != 0)
				return cli_usage_error("logs", "invalid --tail '%s'", optarg);
			has_tail = true;
			break;
		case OPT_SINCE:
			if (res_parse_duration(optarg, &since_ms) != 0 || since_ms < 1000)
				return cli_usage_error("logs", "invalid --since '%s'", optarg);
			break;
		case OPT_TIMESTAMPS:
			timestamps = true;
			break;
		default:
			code = cli_global_option(g, "logs", c, argv);
			if (code != CLI_EXIT_OK)
				return code;
		}
	}
	if (argc - optind != 1)
		return cli_usage_error("logs", "expected exactly one pod");
	name = argv[optind];
	if (strncmp(name, "pod/", 4) == 0)
		name += 4;
	else if (strncmp(name, "pods/", 5) == 0)
		name += 5;
	if (name[0] == '\0' || strchr(name, '/') != NULL)
		return cli_usage_error("logs", "invalid pod name '%s'", argv[optind]);
	if (ns == NULL)
		ns = res_default_namespace(g);
	esc_ns[0] = esc_name[0] = '\0'; /* cli_http_escape_path appends */
	if (cli_http_escape_path(ns, esc_ns, sizeof(esc_ns)) != 0 ||
	    cli_http_escape_path(name, esc_name, sizeof(esc_name)) != 0)
		return cli_usage_error("logs", "name too long");
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s/log", esc_ns, esc_name);
	rv = 0;
	if (container != NULL)
		rv |= res_query(path, sizeof(path), "container", container);
	if (follow)
		rv |= res_query(path, sizeof(path), "follow", "true");
	if (previous)
		rv |= res_query(path, sizeof(path), "previous", "true");
	if (timestamps)
		rv |= res_query(path, sizeof(path), "timestamps", "true");
	if (has_tail) {
		snprintf(q, sizeof(q), "%llu", (unsigned long long)tail);
		rv |= res_query(path, sizeof(path), "tailLines", q);
	}
	if (since_ms > 0) {
		snprintf(q, sizeof(q), "%llu", (unsigned long long)(since_ms / 1000));
		rv |= res_query(path, sizeof(path), "sinceSeconds", q);
	}
	if (rv != 0)
		return cli_usage_error("logs", "arguments too long");
	code = cli_connect(g, &client);
	if (code != CLI_EXIT_OK)
		return code;
	/* A followed log may be quiet for long: no idle limit then. */
	rv = cli_http_stream(client, path, follow ? UINT64_MAX / 2 : 60000, print_line, NULL, &err);
	if (rv != 0) {
		code = cli_fail_request(client, rv);
	} else if (err.status != 0) {
		cli_http_error_message(&err, buf, sizeof(buf));
		code = cli_fail(cli_exit_for_status(err.status), "%s", buf);
	} else {
		code = CLI_EXIT_OK;
	}
	cli_http_response_free(&err);
	cli_http_client_free(client);
	return code;
}
