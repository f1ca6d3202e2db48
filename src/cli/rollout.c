/* capstan rollout status: follow a Deployment's rollout through a watch,
 * with kubectl's progress messages: one live line on a terminal, plain
 * lines otherwise. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "src/cli/cli.h"
#include "src/cli/resource.h"

enum {
	OPT_TIMEOUT = CLI_OPT_FIRST_LOCAL,
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstan rollout status deployment/NAME [OPTION]...\n"
		"Wait until a Deployment's rollout finishes: the controller observed the\n"
		"latest generation and every replica is updated and available.\n"
		"\n"
		"      --timeout DUR         give up after DUR (exit 1; default: never)\n"
		"  -n, --namespace NS        namespace (default: the kubeconfig context's,\n"
		"                            else \"default\")\n"
		"  -h, --help                show this help\n"
		"\n"
		"See capstan(1).\n");
}

struct rollout_state {
	const char *name;
	bool tty;
	char last[512];
};

static json_int_t int_at(const json_t *obj, const char *a, const char *b, json_int_t dflt)
{
	json_t *v = json_object_get(json_object_get(obj, a), b);

	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static void show(struct rollout_state *r, const char *msg, bool final)
{
	if (strcmp(msg, r->last) == 0 && !final)
		return;
	if (r->tty) {
		/* One live line: return, clear, rewrite. */
		printf("\r\033[K%s", msg);
		if (final)
			putchar('\n');
	} else {
		printf("%s\n", msg);
	}
	fflush(stdout);
	snprintf(r->last, sizeof r->last, "%s", msg);
}

static int status_cb(const json_t *obj, void *data)
{
	struct rollout_state *r = data;
	json_int_t gen, observed, replicas, updated, current, available;
	json_t *c;
	size_t i;
	char msg[512];

	if (obj == NULL) {
		if (r->tty && r->last[0] != '\0')
			putchar('\n');
		return cli_fail(CLI_EXIT_NOT_FOUND, "deployments.apps \"%s\" not found", r->name);
	}
	gen = int_at(obj, "metadata", "generation", 0);
	observed = int_at(obj, "status", "observedGeneration", 0);
	if (gen > observed) {
		show(r, "Waiting for deployment spec update to be observed...", false);
		return -1;
	}
	json_array_foreach(json_object_get(json_object_get(obj, "status"), "conditions"), i, c)
	{
		const char *type = res_str(c, "type"), *reason = res_str(c, "reason");
		if (type != NULL && strcmp(type, "Progressing") == 0 && reason != NULL &&
		    strcmp(reason, "ProgressDeadlineExceeded") == 0) {
			if (r->tty && r->last[0] != '\0')
				putchar('\n');
			return cli_fail(CLI_EXIT_FAILURE,
					"deployment \"%s\" exceeded its progress deadline", r->name);
		}
	}
	replicas = int_at(obj, "spec", "replicas", 1);
	updated = int_at(obj, "status", "updatedReplicas", 0);
	current = int_at(obj, "status", "replicas", 0);
	available = int_at(obj, "status", "availableReplicas", 0);
	if (updated < replicas) {
		snprintf(msg, sizeof msg,
			 "Waiting for deployment \"%s\" rollout to finish: %lld out of %lld new "
			 "replicas have been updated...",
			 r->name, (long long)updated, (long long)replicas);
	} else if (current > updated) {
		snprintf(msg, sizeof msg,
			 "Waiting for deployment \"%s\" rollout to finish: %lld old replicas are "
			 "pending termination...",
			 r->name, (long long)(current - updated));
	} else if (available < updated) {
		snprintf(msg, sizeof msg,
			 "Waiting for deployment \"%s\" rollout to finish: %lld of %lld updated "
			 "replicas are available...",
			 r->name, (long long)available, (long long)updated);
	} else {
		snprintf(msg, sizeof msg, "deployment \"%s\" successfully rolled out", r->name);
		show(r, msg, true);
		return CLI_EXIT_OK;
	}
	show(r, msg, false);
	return -1;
}

int cli_cmd_rollout(struct cli_global *g, int argc, char **argv)
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"namespace", required_argument, NULL, 'n'},
		CLI_GLOBAL_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	struct rollout_state r = {0};
	const char *ns = NULL, *slash;
	struct cli_http_client *client = NULL;
	struct res_discovery d = {0};
	const struct res_type *t;
	uint64_t timeout_ms = 0;
	char type[256];
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
		case OPT_TIMEOUT:
			if (res_parse_duration(optarg, &timeout_ms) != 0)
				return cli_usage_error("rollout", "invalid --timeout '%s'", optarg);
			break;
		default:
			code = cli_global_option(g, "rollout", c, argv);
			if (code != CLI_EXIT_OK)
				return code;
		}
	}
	if (optind >= argc)
		return cli_usage_error("rollout", "missing verb (status)");
	if (strcmp(argv[optind], "status") != 0)
		return cli_usage_error("rollout", "unknown verb '%s'", argv[optind]);
	optind++;
	if (optind + 1 != argc || (slash = strchr(argv[optind], '/')) == NULL)
		return cli_usage_error("rollout", "expected one deployment/NAME");
	snprintf(type, sizeof type, "%.*s", (int)(slash - argv[optind]), argv[optind]);
	r.name = slash + 1;
	r.tty = isatty(STDOUT_FILENO) == 1;
	if (ns == NULL)
		ns = res_default_namespace(g);
	code = res_open_type(g, type, &client, &d, &t);
	if (code != CLI_EXIT_OK)
		goto out;
	if (strcmp(t->kind, "Deployment") != 0) {
		code = cli_fail(CLI_EXIT_INVALID, "rollout status supports deployments only, not %s",
				t->plural);
		goto out;
	}
	code = res_watch_object(client, t, ns, r.name,
				timeout_ms != 0 ? res_now_ms() + timeout_ms : 0, status_cb, &r);
	if (code != CLI_EXIT_OK && r.tty && r.last[0] != '\0' &&
	    strstr(r.last, "successfully") == NULL)
		putchar('\n');
out:
	res_discovery_close(&d);
	cli_http_client_free(client);
	return code;
}
