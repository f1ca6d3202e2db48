/* capstan token create|list|revoke: bootstrap tokens, stored the Kubernetes
 * way as Secrets "bootstrap-token-<id>" of type
 * "bootstrap.kubernetes.io/token" in namespace kube-system. The API server
 * authenticates "<id>.<secret>" against them (http/auth.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "src/api/registry.h"
#include "src/cli/cli.h"
#include "src/cli/kubeconfig.h"
#include "src/lib/args.h"

#define ID_LEN 6
#define SECRET_LEN 16
#define NAME_PREFIX "bootstrap-token-"
#define SECRET_TYPE "bootstrap.kubernetes.io/token"
#define SECRETS_PATH "/api/v1/namespaces/kube-system/secrets"
#define DEFAULT_TTL_MS (24ull * 3600 * 1000)
#define CREATE_ATTEMPTS 5

/* WARNING: these groups are what the API server grants (http/auth.c
 * accepts system:bootstrappers:* and system:capstan:join only). */
#define GROUPS_JOIN "system:bootstrappers:capstan:master,system:capstan:join"
#define GROUPS_NODE "system:bootstrappers:capstan:node"

enum {
	OPT_TTL = CLI_OPT_FIRST_LOCAL,
	OPT_USAGE,
	OPT_DESCRIPTION,
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstan token create [--ttl DUR] [--usage join|node] [--description TEXT]\n"
		"       capstan token list [-o table|json]\n"
		"       capstan token revoke ID\n"
		"Manage bootstrap tokens (Secrets bootstrap-token-ID in kube-system).\n"
		"A token is ID.SECRET (6 and 16 characters of [a-z0-9]) and is used as\n"
		"a bearer token.\n"
		"\n"
		"  create    create a token and print it\n"
		"  list      list the tokens (never their secrets)\n"
		"  revoke    delete token ID (or ID.SECRET); exit 4 if it does not exist\n"
		"\n"
		"      --ttl DUR           create: lifetime (default 24h; 0 = never expires)\n"
		"      --usage join|node   create: join = join a master (capstand --join\n"
		"                          URL --token TOKEN), groups\n"
		"                          system:bootstrappers:capstan:master and\n"
		"                          system:capstan:join; node (default) = a worker,\n"
		"                          group system:bootstrappers:capstan:node\n"
		"      --description TEXT  create: a note shown by list\n"
		"  -o, --output FORMAT     list: table (default) or json\n"
		"  -h, --help              show this help\n"
		"\n"
		"See capstan(1).\n");
}

/* ------------------------------------------------------------ helpers */

/* @n random characters of [a-z0-9] into @buf. Errors: -EIO. */
static int random_chars(char *buf, size_t n)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char r[64];
	size_t i = 0, j = sizeof(r);

	while (i < n) {
		if (j == sizeof(r)) {
			if (RAND_bytes(r, sizeof(r)) != 1)
				return -EIO;
			j = 0;
		}
		/* 252 = 7 * 36: rejecting the rest keeps the draw uniform. */
		if (r[j] < 252)
			buf[i++] = alphabet[r[j] % 36];
		j++;
	}
	OPENSSL_cleanse(r, sizeof(r));
	return 0;
}

/* Sets data[@key] to base64(@value). Returns 0 or -ENOMEM. */
static int set_b64(json_t *data, const char *key, const char *value)
{
	size_t len = strlen(value);
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	int rv;

	if (out == NULL)
		return -ENOMEM;
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)value, (int)len);
	rv = json_object_set_new(data, key, json_string(out)) == 0 ? 0 : -ENOMEM;
	OPENSSL_cleanse(out, strlen(out));
	free(out);
	return rv;
}

/* The decoded data[@key] of a Secret, malloc'ed, or NULL if absent or not
 * base64. */
static char *get_b64(json_t *secret, const char *key)
{
	const char *v = json_string_value(json_object_get(json_object_get(secret, "data"), key));
	char *out;
	size_t len;

	if (v == NULL || cli_base64_decode(v, strlen(v), &out, &len) != 0)
		return NULL;
	return out;
}

static bool valid_id(const char *s, size_t len)
{
	if (len != ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

/* "2006-01-02T15:04:05Z". */
static void format_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Human TTL like kubeadm's: "23h", "59m", "12s", "expired". */
static void format_ttl(int64_t secs, char *buf, size_t len)
{
	if (secs <= 0)
		snprintf(buf, len, "expired");
	else if (secs >= 2 * 86400)
		snprintf(buf, len, "%" PRId64 "d", secs / 86400);
	else if (secs >= 3600)
		snprintf(buf, len, "%" PRId64 "h", secs / 3600);
	else if (secs >= 60)
		snprintf(buf, len, "%" PRId64 "m", secs / 60);
	else
		snprintf(buf, len, "%" PRId64 "s", secs);
}

/* ------------------------------------------------------------ create */

struct create_opts {
	uint64_t ttl_ms;
	const char *usage; /* "join" or "node" */
	const char *description;
};

/* The Secret of a new token as JSON text (malloc'ed). */
static char *secret_body(const char *id, const char *secret, const struct create_opts *o)
{
	char name[sizeof(NAME_PREFIX) + ID_LEN], exp[64], desc[64];
	json_t *obj, *data;
	char *text = NULL;
	bool join = strcmp(o->usage, "join") == 0;
	int rv = 0;

	snprintf(name, sizeof name, NAME_PREFIX "%s", id);
	data = json_object();
	obj = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:o}", "apiVersion", "v1", "kind",
			"Secret", "metadata", "name", name, "namespace", "kube-system", "labels",
			"capstan.io/token-usage", o->usage, "type", SECRET_TYPE, "data", data);
	if (obj == NULL)
		return NULL;
	snprintf(desc, sizeof desc, "capstan bootstrap token to join a %s",
		 join ? "master" : "node");
	rv |= set_b64(data, "token-id", id);
	rv |= set_b64(data, "token-secret", secret);
	rv |= set_b64(data, "usage-bootstrap-authentication", "true");
	rv |= set_b64(data, "auth-extra-groups", join ? GROUPS_JOIN : GROUPS_NODE);
	rv |= set_b64(data, "description", o->description != NULL ? o->description : desc);
	if (o->ttl_ms > 0) {
		format_time(time(NULL) + (time_t)((o->ttl_ms + 999) / 1000), exp, sizeof exp);
		rv |= set_b64(data, "expiration", exp);
	}
	if (rv == 0)
		text = json_dumps(obj, JSON_COMPACT);
	json_decref(obj);
	return text;
}

static int do_create(struct cli_http_client *c, const struct create_opts *o)
{
	char id[ID_LEN + 1] = {0}, secret[SECRET_LEN + 1] = {0};
	int code = CLI_EXIT_FAILURE;

	for (int attempt = 0; attempt < CREATE_ATTEMPTS; attempt++) {
		struct cli_http_response resp = {0};
		char *body;
		int rv;

		if (random_chars(id, ID_LEN) != 0 || random_chars(secret, SECRET_LEN) != 0)
			return cli_fail(CLI_EXIT_FAILURE, "no randomness for the token");
		body = secret_body(id, secret, o);
		if (body == NULL)
			return cli_fail(CLI_EXIT_FAILURE, "out of memory");
		rv = cli_http_request_typed(c, "POST", SECRETS_PATH, "application/json",
					    "application/json", body, strlen(body), 0, &resp);
		OPENSSL_cleanse(body, strlen(body));
		free(body);
		if (rv != 0) {
			code = cli_fail_request(c, rv);
			break;
		}
		/* An id already taken: draw another one. */
		if (resp.status == 409 && attempt + 1 < CREATE_ATTEMPTS) {
			cli_http_response_free(&resp);
			continue;
		}
		if (resp.status < 200 || resp.status > 299) {
			code = cli_fail_response(&resp);
			cli_http_response_free(&resp);
			break;
		}
		cli_http_response_free(&resp);
		printf("%s.%s\n", id, secret);
		code = CLI_EXIT_OK;
		break;
	}
	OPENSSL_cleanse(secret, sizeof secret);
	return code;
}

/* ------------------------------------------------------------ list */

/* The token's fields as a JSON object (never the secret). */
static json_t *token_info(json_t *secret, time_t now)
{
	const char *name = json_string_value(json_object_get(json_object_get(secret, "metadata"), "name"));
	json_t *data = json_object_get(secret, "data");
	json_t *info, *usages, *groups;
	char *exp, *desc, *grp;
	const char *key;
	json_t *v;

	info = json_object();
	usages = json_array();
	groups = json_array();
	json_object_set_new(info, "id", json_string(name + strlen(NAME_PREFIX)));
	exp = get_b64(secret, "expiration");
	if (exp != NULL) {
		int64_t t;
		bool ok = api_parse_time(exp, &t) == 0;
		json_object_set_new(info, "expiration", json_string(exp));
		json_object_set_new(info, "ttlSeconds",
				    !ok ? json_null() : json_integer(t > now ? t - now : 0));
		free(exp);
	} else {
		json_object_set_new(info, "expiration", json_null());
		json_object_set_new(info, "ttlSeconds", json_null());
	}
	/* Usages are the data keys usage-bootstrap-<usage> set to "true". */
	json_object_foreach(data, key, v) {
		char *val;
		if (strncmp(key, "usage-bootstrap-", 16) != 0)
			continue;
		val = get_b64(secret, key);
		if (val != NULL && strcmp(val, "true") == 0)
			json_array_append_new(usages, json_string(key + 16));
		free(val);
	}
	grp = get_b64(secret, "auth-extra-groups");
	json_array_append_new(groups, json_string("system:bootstrappers"));
	if (grp != NULL) {
		char *save = NULL;
		for (char *g = strtok_r(grp, ",", &save); g != NULL; g = strtok_r(NULL, ",", &save)) {
			while (*g == ' ')
				g++;
			size_t n = strlen(g);
			while (n > 0 && g[n - 1] == ' ')
				g[--n] = '\0';
			if (n > 0)
				json_array_append_new(groups, json_string(g));
		}
		free(grp);
	}
	desc = get_b64(secret, "description");
	json_object_set_new(info, "usages", usages);
	json_object_set_new(info, "groups", groups);
	json_object_set_new(info, "description", json_string(desc != NULL ? desc : ""));
	free(desc);
	return info;
}

static void print_joined(json_t *arr, char *buf, size_t len)
{
	size_t i, off = 0;
	json_t *v;

	buf[0] = '\0';
	json_array_foreach(arr, i, v) {
		int n = snprintf(buf + off, len - off, "%s%s", i > 0 ? "," : "",
				 json_string_value(v));
		if (n < 0 || (size_t)n >= len - off)
			break;
		off += (size_t)n;
	}
	if (off == 0)
		snprintf(buf, len, "<none>");
}

#define COLUMNS 6

/* The table's cells of one token (malloc'ed strings into @cell). */
static void table_row(json_t *item, char *cell[COLUMNS])
{
	char ttl[32], usages[128], groups[1024];
	json_t *t = json_object_get(item, "ttlSeconds");
	const char *exp = json_string_value(json_object_get(item, "expiration"));

	if (json_is_integer(t))
		format_ttl((int64_t)json_integer_value(t), ttl, sizeof ttl);
	else
		snprintf(ttl, sizeof ttl, "%s", exp != NULL ? "<invalid>" : "<forever>");
	print_joined(json_object_get(item, "usages"), usages, sizeof usages);
	print_joined(json_object_get(item, "groups"), groups, sizeof groups);
	cell[0] = strdup(json_string_value(json_object_get(item, "id")));
	cell[1] = strdup(ttl);
	cell[2] = strdup(exp != NULL ? exp : "<never>");
	cell[3] = strdup(usages);
	cell[4] = strdup(groups);
	cell[5] = strdup(json_string_value(json_object_get(item, "description")));
}

static void print_table(json_t *items)
{
	static const char *const head[COLUMNS] = {"TOKEN-ID", "TTL",    "EXPIRES",
						  "USAGES",   "GROUPS", "DESCRIPTION"};
	size_t n = json_array_size(items), w[COLUMNS], i, k;
	char *(*rows)[COLUMNS] = calloc(n + 1, sizeof(*rows));

	if (rows == NULL) {
		cli_fail(CLI_EXIT_FAILURE, "out of memory");
		return;
	}
	for (k = 0; k < COLUMNS; k++)
		w[k] = strlen(head[k]);
	for (i = 0; i < n; i++) {
		table_row(json_array_get(items, i), rows[i]);
		for (k = 0; k < COLUMNS; k++) {
			size_t l = rows[i][k] != NULL ? strlen(rows[i][k]) : 0;
			w[k] = l > w[k] ? l : w[k];
		}
	}
	for (k = 0; k + 1 < COLUMNS; k++)
		printf("%-*s  ", (int)w[k], head[k]);
	printf("%s\n", head[k]);
	for (i = 0; i < n; i++)
		for (k = 0; k < COLUMNS; k++) {
			const char *v = rows[i][k] != NULL ? rows[i][k] : "";
			if (k + 1 < COLUMNS)
				printf("%-*s  ", (int)w[k], v);
			else
				printf("%s\n", v);
			free(rows[i][k]);
		}
	free(rows);
}

static int do_list(struct cli_http_client *c, const char *output)
{
	struct cli_http_response resp = {0};
	json_t *root, *items, *item, *out;
	time_t now = time(NULL);
	size_t i;
	int rv;

	rv = cli_http_request(c, "GET", SECRETS_PATH, NULL, 0, 0, &resp);
	if (rv != 0)
		return cli_fail_request(c, rv);
	if (resp.status != 200) {
		int code = cli_fail_response(&resp);
		cli_http_response_free(&resp);
		return code;
	}
	root = json_loadb(resp.body, resp.len, 0, NULL);
	cli_http_response_free(&resp);
	items = json_object_get(root, "items");
	if (!json_is_array(items)) {
		json_decref(root);
		return cli_fail(CLI_EXIT_FAILURE, "the server's answer is not a list of Secrets");
	}
	out = json_array();
	json_array_foreach(items, i, item) {
		const char *type = json_string_value(json_object_get(item, "type"));
		const char *name =
			json_string_value(json_object_get(json_object_get(item, "metadata"), "name"));
		if (type == NULL || strcmp(type, SECRET_TYPE) != 0 || name == NULL ||
		    strncmp(name, NAME_PREFIX, strlen(NAME_PREFIX)) != 0 ||
		    !valid_id(name + strlen(NAME_PREFIX), strlen(name + strlen(NAME_PREFIX))))
			continue;
		json_array_append_new(out, token_info(item, now));
	}
	json_decref(root);
	if (strcmp(output, "json") == 0) {
		json_t *doc = json_pack("{s:o}", "items", out);
		json_dumpf(doc, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(doc);
		return CLI_EXIT_OK;
	}
	print_table(out);
	json_decref(out);
	return CLI_EXIT_OK;
}

/* ------------------------------------------------------------ revoke */

static int do_revoke(struct cli_http_client *c, const char *id)
{
	struct cli_http_response resp = {0};
	char path[sizeof(SECRETS_PATH) + sizeof(NAME_PREFIX) + ID_LEN + 1];
	int rv, code = CLI_EXIT_OK;

	snprintf(path, sizeof path, SECRETS_PATH "/" NAME_PREFIX "%.*s", ID_LEN, id);
	rv = cli_http_request(c, "DELETE", path, NULL, 0, 0, &resp);
	if (rv != 0)
		return cli_fail_request(c, rv);
	if (resp.status == 404)
		code = cli_fail(CLI_EXIT_NOT_FOUND, "bootstrap token \"%.*s\" not found", ID_LEN, id);
	else if (resp.status < 200 || resp.status > 299)
		code = cli_fail_response(&resp);
	else
		printf("bootstrap token \"%.*s\" revoked\n", ID_LEN, id);
	cli_http_response_free(&resp);
	return code;
}

/* ------------------------------------------------------------ command */

int cli_cmd_token(struct cli_global *g, int argc, char **argv)
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"output", required_argument, NULL, 'o'},
		{"ttl", required_argument, NULL, OPT_TTL},
		{"usage", required_argument, NULL, OPT_USAGE},
		{"description", required_argument, NULL, OPT_DESCRIPTION},
		CLI_GLOBAL_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	struct create_opts co = {DEFAULT_TTL_MS, "node", NULL};
	struct cli_http_client *client = NULL;
	const char *verb, *output = NULL, *id = NULL;
	bool create_flags = false;
	int c, code;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":ho:", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		case 'o':
			output = optarg;
			break;
		case OPT_TTL:
			if (args_parse_duration_ms(optarg, &co.ttl_ms) != 0)
				return cli_usage_error("token", "invalid --ttl '%s'", optarg);
			create_flags = true;
			break;
		case OPT_USAGE:
			if (strcmp(optarg, "join") != 0 && strcmp(optarg, "node") != 0)
				return cli_usage_error("token", "--usage must be join or node, not '%s'",
						       optarg);
			co.usage = optarg;
			create_flags = true;
			break;
		case OPT_DESCRIPTION:
			if (strlen(optarg) > 1024)
				return cli_usage_error("token", "--description is longer than 1024 bytes");
			co.description = optarg;
			create_flags = true;
			break;
		default:
			code = cli_global_option(g, "token", c, argv);
			if (code != CLI_EXIT_OK)
				return code;
		}
	}
	if (optind >= argc)
		return cli_usage_error("token", "missing verb (create, list, revoke)");
	verb = argv[optind];
	if (strcmp(verb, "create") == 0) {
		if (argc - optind != 1)
			return cli_usage_error("token", "create takes no arguments");
	} else if (strcmp(verb, "list") == 0) {
		if (argc - optind != 1)
			return cli_usage_error("token", "list takes no arguments");
	} else if (strcmp(verb, "revoke") == 0) {
		const char *dot;
		if (argc - optind != 2)
			return cli_usage_error("token", "revoke takes exactly one token ID");
		id = argv[optind + 1];
		/* ID.SECRET is accepted too (as kubeadm token delete does). */
		dot = strchr(id, '.');
		if (!valid_id(id, dot != NULL ? (size_t)(dot - id) : strlen(id)))
			return cli_usage_error("token", "invalid token ID '%s' (6 characters of [a-z0-9])",
					       id);
	} else {
		return cli_usage_error("token", "unknown verb '%s'", verb);
	}
	if (create_flags && strcmp(verb, "create") != 0)
		return cli_usage_error("token", "--ttl, --usage and --description apply to create only");
	if (output != NULL && (strcmp(verb, "list") != 0 ||
			       (strcmp(output, "table") != 0 && strcmp(output, "json") != 0)))
		return cli_usage_error("token", "output format '%s' does not apply to %s", output,
				       verb);
	code = cli_connect(g, &client);
	if (code != CLI_EXIT_OK)
		return code;
	if (strcmp(verb, "create") == 0)
		code = do_create(client, &co);
	else if (strcmp(verb, "list") == 0)
		code = do_list(client, output != NULL ? output : "table");
	else
		code = do_revoke(client, id);
	cli_http_client_free(client);
	return code;
}
