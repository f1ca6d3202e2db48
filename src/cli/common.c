/* Global options, error reporting and client set-up shared by commands. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <getopt.h>
#include <sys/stat.h>

#include "src/cli/cli.h"
#include "src/cli/kubeconfig.h"
#include "src/lib/args.h"

static void vfail(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static void vfail(const char *fmt, va_list ap)
{
	char buf[1024];

	vsnprintf(buf, sizeof buf, fmt, ap);
	for (char *p = buf; *p; p++) {
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	}
	fprintf(stderr, "capstan: %s\n", buf);
}

int cli_fail(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfail(fmt, ap);
	va_end(ap);
	return code;
}

int cli_usage_error(const char *command, const char *fmt, ...)
{
	char buf[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (command[0] == '\0')
		return cli_fail(CLI_EXIT_USAGE, "%s; try 'capstan --help'", buf);
	return cli_fail(CLI_EXIT_USAGE, "%s; try 'capstan %s --help'", buf, command);
}

int cli_global_option(struct cli_global *g, const char *command, int code, char **argv)
{
	const char *arg = optarg;
	const char *bad = optind > 0 ? argv[optind - 1] : "";
	char shortopt[3] = {'-', (char)optopt, '\0'};

	/* For a bad short option inside a group ("-xo") argv names the group;
	 * optopt names the letter. */
	if (optopt > 0 && optopt < 128 && (code == '?' || code == ':'))
		bad = shortopt;
	switch (code) {
	case CLI_OPT_KUBECONFIG:
		g->kubeconfig = arg;
		return CLI_EXIT_OK;
	case CLI_OPT_SERVER:
		g->server = arg;
		return CLI_EXIT_OK;
	case CLI_OPT_TOKEN:
		g->token = arg;
		return CLI_EXIT_OK;
	case CLI_OPT_CONTEXT:
		g->context = arg;
		return CLI_EXIT_OK;
	case CLI_OPT_INSECURE:
		g->insecure = true;
		return CLI_EXIT_OK;
	case CLI_OPT_TIMEOUT:
		if (args_parse_duration_ms(arg, &g->timeout_ms) != 0)
			return cli_usage_error(command, "invalid --request-timeout '%s'", arg);
		return CLI_EXIT_OK;
	case ':':
		return cli_usage_error(command, "option '%s' needs a value", bad);
	default:
		return cli_usage_error(command, "unknown option '%s'", bad);
	}
}

int cli_exit_for_status(long status)
{
	if (status >= 200 && status <= 299)
		return CLI_EXIT_OK;
	switch (status) {
	case 404:
		return CLI_EXIT_NOT_FOUND;
	case 409:
		return CLI_EXIT_CONFLICT;
	case 400:
	case 422:
		return CLI_EXIT_INVALID;
	default:
		return CLI_EXIT_FAILURE;
	}
}

int cli_fail_request(struct cli_http_client *c, int rv)
{
	const char *msg = cli_http_client_errmsg(c);

	if (rv == -ENOMEM)
		return cli_fail(CLI_EXIT_FAILURE, "out of memory");
	if (msg == NULL || msg[0] == '\0')
		msg = strerror(-rv);
	return cli_fail(CLI_EXIT_CONNECT, "%s", msg);
}

int cli_fail_response(const struct cli_http_response *resp)
{
	char msg[512];

	cli_http_error_message(resp, msg, sizeof msg);
	return cli_fail(cli_exit_for_status(resp->status), "%s", msg);
}

int cli_connect(const struct cli_global *g, struct cli_http_client **ret_client)
{
	struct cli_kubeconfig kc = {0};
	char path[PATH_MAX], errmsg[512];
	const char *server;
	bool have_kc = false;
	int rv, code = CLI_EXIT_FAILURE;

	if (g->kubeconfig != NULL) {
		snprintf(path, sizeof path, "%s", g->kubeconfig);
	} else if (cli_kubeconfig_default_path(path, sizeof path) != 0) {
		path[0] = '\0';
	}
	if (path[0] != '\0') {
		struct stat st;
		/* The implicit default may be missing when --server says
		 * where to go; an explicit file must exist. */
		if (g->kubeconfig != NULL || stat(path, &st) == 0 || g->server == NULL) {
			rv = cli_kubeconfig_load(path, g->context, &kc, errmsg, sizeof errmsg);
			if (rv != 0) {
				if (rv == -ENOENT && g->kubeconfig == NULL && g->server == NULL &&
				    stat(path, &st) != 0)
					return cli_fail(CLI_EXIT_FAILURE,
							"no kubeconfig (%s) and no --server; use --kubeconfig FILE or --server URL",
							path);
				return cli_fail(CLI_EXIT_FAILURE, "%s", errmsg);
			}
			have_kc = true;
		}
	}
	server = g->server != NULL ? g->server : kc.server;
	if (server == NULL || server[0] == '\0') {
		code = cli_fail(CLI_EXIT_FAILURE, "the kubeconfig names no server; use --server URL");
		goto out;
	}
	rv = cli_http_client_new(server, have_kc ? &kc : NULL, g->timeout_ms, ret_client);
	if (rv != 0) {
		code = cli_fail(CLI_EXIT_FAILURE, "cannot create the HTTP client: %s", strerror(-rv));
		goto out;
	}
	if (g->insecure)
		cli_http_client_set_insecure(*ret_client, true);
	if (g->token != NULL && cli_http_client_set_token(*ret_client, g->token) != 0) {
		cli_http_client_free(*ret_client);
		*ret_client = NULL;
		code = cli_fail(CLI_EXIT_FAILURE, "out of memory");
		goto out;
	}
	code = CLI_EXIT_OK;
out:
	cli_kubeconfig_close(&kc);
	return code;
}
