/* capstan: the command-line interface to a capstan cluster. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "src/cli/cli.h"
#include "src/lib/log.h"
#include "src/lib/version.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstan [OPTION]... COMMAND [ARG]...\n"
		"Manage a capstan cluster and its resources.\n"
		"\n"
		"Options (also accepted after the command):\n"
		"      --kubeconfig FILE      kubeconfig to use (default: first file of\n"
		"                             $KUBECONFIG, else ~/.kube/config)\n"
		"      --context NAME         kubeconfig context (default: current-context)\n"
		"      --server URL           API server URL, overriding the kubeconfig's\n"
		"      --token TOKEN          bearer token, overriding the kubeconfig's\n"
		"      --insecure-skip-tls-verify  do not verify the server's certificate\n"
		"      --request-timeout DUR  limit for each request (default 30s)\n"
		"  -h, --help                 show this help and exit\n"
		"  -V, --version              show the version and exit\n"
		"\n"
		"Commands:\n"
		"  local up|down              run a cluster of capstand processes on loopback\n"
		"  cluster init|join|members|status|remove  set up masters; Raft membership\n"
		"  store get|put|delete|list|watch  the replicated store's diagnostic view\n"
		"  get TYPE[/NAME] [NAME...]  show resources (table, wide, json, yaml, name)\n"
		"  apply -f FILE|DIR|-        create or update objects from manifests\n"
		"  delete TYPE NAME... | -f FILE  delete objects\n"
		"  describe TYPE NAME         show an object and its events\n"
		"  logs [pod/]NAME [-c C] [-f]  print (and follow) a container's log\n"
		"  wait TYPE/NAME --for=...   wait for a condition or a deletion\n"
		"  rollout status deployment/NAME  follow a Deployment's rollout\n"
		"  token create|list|revoke   bootstrap tokens for joining masters and nodes\n"
		"  snapshot save|inspect|restore  back up the store; new cluster from a backup\n"
		"  kubeconfig [--data-dir DIR]  print a local master's admin kubeconfig\n"
		"  version                    show the version\n"
		"\n"
		"'capstan COMMAND --help' describes a command.\n"
		"Exit status: 0 ok, 1 failure, 2 bad usage, 3 server unreachable,\n"
		"4 not found, 5 conflict, 6 invalid request.\n"
		"\n"
		"See capstan(1).\n");
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		CLI_GLOBAL_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	static const struct {
		const char *name;
		int (*fn)(struct cli_global *g, int argc, char **argv);
	} commands[] = {
		{"local", cli_cmd_local},
		{"cluster", cli_cmd_cluster},
		{"store", cli_cmd_store},
		{"get", cli_cmd_get},
		{"apply", cli_cmd_apply},
		{"delete", cli_cmd_delete},
		{"describe", cli_cmd_describe},
		{"logs", cli_cmd_logs},
		{"wait", cli_cmd_wait},
		{"rollout", cli_cmd_rollout},
		{"token", cli_cmd_token},
		{"snapshot", cli_cmd_snapshot},
		{"kubeconfig", cli_cmd_kubeconfig},
	};
	struct cli_global g = {0};
	const char *cmd;
	int c, code;

	log_init("capstan", LOG_LEVEL_WARN);
	/* Options after the command belong to the command ('+'); getopt
	 * prints nothing (':'), errors are ours and one line long. */
	while ((c = getopt_long(argc, argv, "+:hV", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		case 'V':
			version_print("capstan");
			return CLI_EXIT_OK;
		default:
			code = cli_global_option(&g, "", c, argv);
			if (code != CLI_EXIT_OK)
				return code;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	cmd = argv[optind];
	if (strcmp(cmd, "version") == 0) {
		version_print("capstan");
		return CLI_EXIT_OK;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(cmd, commands[i].name) != 0)
			continue;
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return cli_fail(CLI_EXIT_FAILURE, "cannot initialise libcurl");
		code = commands[i].fn(&g, argc - optind, argv + optind);
		curl_global_cleanup();
		return code;
	}
	return cli_fail(CLI_EXIT_USAGE, "unknown command '%s'; try 'capstan --help'", cmd);
}
