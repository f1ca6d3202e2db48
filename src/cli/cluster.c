/* capstan cluster members|status|remove: Raft membership of the masters
 * (/capstan/v1/cluster). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "src/cli/cli.h"
#include "src/lib/args.h"

#define READYZ_TIMEOUT_MS 3000

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstan cluster members [-o table|json]\n"
		"       capstan cluster status\n"
		"       capstan cluster remove ID\n");
	cli_cluster_init_usage(f);
	fprintf(f,
		"\n"
		"Show and change the Raft membership of the masters.\n"
		"\n"
		"  init      set this machine up as the first master (see above)\n"
		"  join      set this machine up as another master (see above)\n"
		"  members   list the members (id, raft address, API URL, role, leader)\n"
		"            and the answering master's term, commit and applied index\n"
		"  status    ask every member's /readyz; exit 0 only when a leader is\n"
		"            known and a quorum of the voters is ready\n"
		"  remove    remove member ID from the cluster (it stops itself)\n"
		"\n"
		"  -o, --output FORMAT   members: table (default) or json\n"
		"  -h, --help            show this help\n"
		"\n"
		"See capstan(1).\n");
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

static const char *str_field(json_t *obj, const char *name)
{
	const char *s = json_string_value(json_object_get(obj, name));
	return s != NULL ? s : "";
}

/* GET /capstan/v1/cluster into *ret_root; prints errors. */
static int get_cluster(struct cli_http_client *c, json_t **ret_root)
{
	struct cli_http_response resp = {0};
	json_t *root;
	int rv, code;

	rv = cli_http_request(c, "GET", "/capstan/v1/cluster", NULL, 0, 0, &resp);
	if (rv != 0)
		return cli_fail_request(c, rv);
	if (resp.status != 200) {
		code = cli_fail_response(&resp);
		cli_http_response_free(&resp);
		return code;
	}
	root = json_loadb(resp.body, resp.len, 0, NULL);
	cli_http_response_free(&resp);
	if (root == NULL || !json_is_object(root) ||
	    !json_is_array(json_object_get(root, "members"))) {
		json_decref(root);
		return cli_fail(CLI_EXIT_FAILURE, "the server's answer is not a cluster status");
	}
	*ret_root = root;
	return CLI_EXIT_OK;
}

static int do_members(struct cli_http_client *c, const char *output)
{
	json_t *root, *members, *m;
	json_int_t leader;
	size_t i, wa = 12, wu = 7;
	int code;

	code = get_cluster(c, &root);
	if (code != CLI_EXIT_OK)
		return code;
	if (strcmp(output, "json") == 0) {
		json_dumpf(root, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(root);
		return CLI_EXIT_OK;
	}
	members = json_object_get(root, "members");
	leader = int_field(root, "leaderID");
	json_array_foreach(members, i, m) {
		size_t la = strlen(str_field(m, "raftAddress"));
		size_t lu = strlen(str_field(m, "apiURL"));
		wa = la > wa ? la : wa;
		wu = lu > wu ? lu : wu;
	}
	printf("%-20s  %-*s  %-*s  %-7s  %s\n", "ID", (int)wa, "RAFT ADDRESS", (int)wu,
	       "API URL", "ROLE", "LEADER");
	json_array_foreach(members, i, m) {
		json_int_t id = int_field(m, "id");
		printf("%-20lld  %-*s  %-*s  %-7s  %s\n", (long long)id, (int)wa,
		       str_field(m, "raftAddress"), (int)wu, str_field(m, "apiURL"),
		       str_field(m, "role"), leader != 0 && id == leader ? "*" : "");
	}
	printf("answered by %lld (%s): term %lld, commit %lld, applied %lld\n",
	       (long long)int_field(root, "id"), str_field(root, "state"),
	       (long long)int_field(root, "term"), (long long)int_field(root, "commitIndex"),
	       (long long)int_field(root, "appliedIndex"));
	json_decref(root);
	return CLI_EXIT_OK;
}

static int do_status(struct cli_http_client *c)
{
	json_t *root, *members, *m;
	json_int_t leader;
	size_t i, voters = 0, ready = 0, quorum, wu = 7;
	int code;

	code = get_cluster(c, &root);
	if (code != CLI_EXIT_OK)
		return code;
	members = json_object_get(root, "members");
	leader = int_field(root, "leaderID");
	json_array_foreach(members, i, m) {
		size_t lu = strlen(str_field(m, "apiURL"));
		wu = lu > wu ? lu : wu;
	}
	printf("%-20s  %-*s  %-7s  %s\n", "ID", (int)wu, "API URL", "ROLE", "READY");
	json_array_foreach(members, i, m) {
		struct cli_http_response resp = {0};
		const char *url = str_field(m, "apiURL");
		const char *role = str_field(m, "role");
		char path[4096], msg[256];
		bool ok = false;
		int rv;

		if (url[0] == '\0') {
			snprintf(msg, sizeof msg, "no API URL known");
		} else {
			snprintf(path, sizeof path, "%s/readyz", url);
			rv = cli_http_request(c, "GET", path, NULL, 0, READYZ_TIMEOUT_MS, &resp);
			if (rv != 0) {
				snprintf(msg, sizeof msg, "%s", cli_http_client_errmsg(c));
			} else if (resp.status == 200) {
				ok = true;
				snprintf(msg, sizeof msg, "ok");
			} else {
				char m2[200];
				cli_http_error_message(&resp, m2, sizeof m2);
				snprintf(msg, sizeof msg, "%ld: %s", resp.status, m2);
			}
			cli_http_response_free(&resp);
		}
		if (strcmp(role, "voter") == 0) {
			voters++;
			ready += ok ? 1 : 0;
		}
		printf("%-20lld  %-*s  %-7s  %s%s\n", (long long)int_field(m, "id"), (int)wu, url,
		       role, msg, leader != 0 && int_field(m, "id") == leader ? " (leader)" : "");
	}
	quorum = voters / 2 + 1;
	printf("leader: %s, ready voters: %zu of %zu (quorum %zu)\n",
	       leader != 0 ? "known" : "unknown", ready, voters, quorum);
	json_decref(root);
	if (leader == 0)
		return cli_fail(CLI_EXIT_FAILURE, "no leader is known");
	if (voters == 0 || ready < quorum)
		return cli_fail(CLI_EXIT_FAILURE, "no quorum: %zu of %zu voters are ready", ready,
				voters);
	return CLI_EXIT_OK;
}

static int do_remove(struct cli_http_client *c, uint64_t id)
{
	struct cli_http_response resp = {0};
	char path[128];
	int rv, code = CLI_EXIT_OK;

	snprintf(path, sizeof path, "/capstan/v1/cluster/members/%" PRIu64, id);
	rv = cli_http_request(c, "DELETE", path, NULL, 0, 0, &resp);
	if (rv != 0)
		return cli_fail_request(c, rv);
	if (resp.status < 200 || resp.status > 299)
		code = cli_fail_response(&resp);
	else
		printf("member %" PRIu64 " removed\n", id);
	cli_http_response_free(&resp);
	return code;
}

/* The first positional argument (skipping the values of the options that
 * take one), or NULL. */
static const char *cli_cluster_verb(int argc, char **argv)
{
	static const char *const with_value[] = {
		"--kubeconfig", "--server", "--token", "--context", "--request-timeout", "-o",
		"--output", "--config", "--data-dir", "--listen", "--raft-address",
		"--advertise-url", "--plain-listen", "--san", "--ca-file", "--start",
		"--capstand", "--wait", NULL};
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return i + 1 < argc ? argv[i + 1] : NULL;
		if (argv[i][0] != '-')
			return argv[i];
		for (const char *const *w = with_value; *w != NULL; w++) {
			if (strcmp(argv[i], *w) == 0) {
				i++;
				break;
			}
		}
	}
	return NULL;
}

int cli_cmd_cluster(struct cli_global *g, int argc, char **argv)
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"output", required_argument, NULL, 'o'},
		CLI_GLOBAL_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	struct cli_http_client *client = NULL;
	const char *verb, *output = "table";
	uint64_t id = 0;
	int c, code;

	/* init and join have options of their own. */
	verb = cli_cluster_verb(argc, argv);
	if (verb != NULL && (strcmp(verb, "init") == 0 || strcmp(verb, "join") == 0))
		return cli_cmd_cluster_init(g, argc, argv, strcmp(verb, "join") == 0);
	optind = 0;
	while ((c = getopt_long(argc, argv, ":ho:", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		case 'o':
			output = optarg;
			break;
		default:
			code = cli_global_option(g, "cluster", c, argv);
			if (code != CLI_EXIT_OK)
				return code;
		}
	}
	if (optind >= argc)
		return cli_usage_error("cluster", "missing verb (init, join, members, status, remove)");
	verb = argv[optind];
	if (strcmp(verb, "members") == 0 || strcmp(verb, "status") == 0) {
		if (argc - optind != 1)
			return cli_usage_error("cluster", "%s takes no arguments", verb);
		if (strcmp(output, "table") != 0 &&
		    (strcmp(output, "json") != 0 || strcmp(verb, "members") != 0))
			return cli_usage_error("cluster", "output format '%s' does not apply to %s",
					       output, verb);
	} else if (strcmp(verb, "remove") == 0) {
		if (argc - optind != 2)
			return cli_usage_error("cluster", "remove takes exactly one ID");
		if (args_parse_uint(argv[optind + 1], INT64_MAX, &id) != 0 || id == 0)
			return cli_usage_error("cluster", "invalid member ID '%s'", argv[optind + 1]);
	} else {
		return cli_usage_error("cluster", "unknown verb '%s'", verb);
	}
	code = cli_connect(g, &client);
	if (code != CLI_EXIT_OK)
		return code;
	if (strcmp(verb, "members") == 0)
		code = do_members(client, output);
	else if (strcmp(verb, "status") == 0)
		code = do_status(client);
	else
		code = do_remove(client, id);
	cli_http_client_free(client);
	return code;
}
