/* The capstan CLI's shared pieces: exit codes, global options, error
 * reporting and the command entry points the dispatcher calls. */
#ifndef CAPSTAN_CLI_H
#define CAPSTAN_CLI_H

#include <getopt.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>

#include "src/cli/http.h"

/* Exit codes; documented in capstan(1). */
enum cli_exit {
	CLI_EXIT_OK = 0,
	CLI_EXIT_FAILURE = 1,
	CLI_EXIT_USAGE = 2,
	CLI_EXIT_CONNECT = 3,   /* the server could not be reached */
	CLI_EXIT_NOT_FOUND = 4, /* 404 */
	CLI_EXIT_CONFLICT = 5,  /* 409 */
	CLI_EXIT_INVALID = 6,   /* 400, 422 */
};

/* Options accepted before or after any command. Strings are borrowed from
 * argv. */
struct cli_global {
	const char *kubeconfig; /* --kubeconfig */
	const char *server;     /* --server */
	const char *token;      /* --token */
	const char *context;    /* --context */
	uint64_t timeout_ms;    /* --request-timeout; 0 = default */
	bool insecure;          /* --insecure-skip-tls-verify */
};

/* getopt_long codes of the global options; commands list CLI_GLOBAL_OPTIONS
 * in their option tables and pass unknown codes to cli_global_option(). */
enum {
	CLI_OPT_KUBECONFIG = 0x1000,
	CLI_OPT_SERVER,
	CLI_OPT_TOKEN,
	CLI_OPT_CONTEXT,
	CLI_OPT_TIMEOUT,
	CLI_OPT_INSECURE,
	CLI_OPT_FIRST_LOCAL, /* commands number their own long-only options from here */
};

#define CLI_GLOBAL_OPTIONS                                                        \
	{"kubeconfig", required_argument, NULL, CLI_OPT_KUBECONFIG},              \
	{"server", required_argument, NULL, CLI_OPT_SERVER},                      \
	{"token", required_argument, NULL, CLI_OPT_TOKEN},                        \
	{"context", required_argument, NULL, CLI_OPT_CONTEXT},                    \
	{"request-timeout", required_argument, NULL, CLI_OPT_TIMEOUT},            \
	{"insecure-skip-tls-verify", no_argument, NULL, CLI_OPT_INSECURE}

/* Handles one code from getopt_long (optstrings start with ':' so that
 * getopt prints nothing): a global option, or '?' / ':' for an unknown
 * option or a missing argument, reported as one line naming @command's
 * help. Reads optarg, optind and optopt. Returns CLI_EXIT_OK or
 * CLI_EXIT_USAGE. */
int cli_global_option(struct cli_global *g, const char *command, int code, char **argv);

/* Prints "capstan: <message>" as one line on stderr (newlines in the
 * message become spaces) and returns @code. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints a usage error naming the command's help and returns
 * CLI_EXIT_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Builds a client from the global options and the kubeconfig they select:
 * --kubeconfig, else the first file of $KUBECONFIG, else ~/.kube/config
 * (which may be missing when --server is given). On failure prints the
 * error and returns its exit code; *ret_client is set only on success. */
int cli_connect(const struct cli_global *g, struct cli_http_client **ret_client);

/* Maps a failed call of the HTTP client (negative errno) to an exit code
 * and prints the client's message. */
int cli_fail_request(struct cli_http_client *c, int rv);

/* Maps a non-2xx response to an exit code and prints its Status message. */
int cli_fail_response(const struct cli_http_response *resp);

/* Exit code for an HTTP status (0 for 2xx). */
int cli_exit_for_status(long status);

/* Commands. argv[0] is the command's name ("local", "cluster", "store");
 * each returns an exit code. */
int cli_cmd_local(struct cli_global *g, int argc, char **argv);
int cli_cmd_cluster(struct cli_global *g, int argc, char **argv);
/* capstan cluster init|join (src/cli/cluster_init.c); @argv as for
 * cli_cmd_cluster. */
int cli_cmd_cluster_init(struct cli_global *g, int argc, char **argv, bool join);
void cli_cluster_init_usage(FILE *f);
int cli_cmd_store(struct cli_global *g, int argc, char **argv);
/* Resource commands (get.c, apply.c, delete.c, describe.c, wait.c,
 * rollout.c); helpers in resource.h. */
int cli_cmd_get(struct cli_global *g, int argc, char **argv);
int cli_cmd_apply(struct cli_global *g, int argc, char **argv);
int cli_cmd_delete(struct cli_global *g, int argc, char **argv);
int cli_cmd_describe(struct cli_global *g, int argc, char **argv);
int cli_cmd_wait(struct cli_global *g, int argc, char **argv);
/* capstan logs (src/cli/logs.c). */
int cli_cmd_logs(struct cli_global *g, int argc, char **argv);
int cli_cmd_rollout(struct cli_global *g, int argc, char **argv);
/* capstan token create|list|revoke: bootstrap tokens (src/cli/token.c). */
int cli_cmd_token(struct cli_global *g, int argc, char **argv);
/* capstan snapshot save|inspect|restore: backups (src/cli/snapshot.c, linked
 * into the capstan program itself). */
int cli_cmd_snapshot(struct cli_global *g, int argc, char **argv);
/* capstan kubeconfig: a local master's admin kubeconfig
 * (src/cli/kubeconfig_cmd.c). */
int cli_cmd_kubeconfig(struct cli_global *g, int argc, char **argv);

#endif
