/* capstan describe: a readable summary of one object and its Events. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "src/cli/cli.h"
#include "src/cli/resource.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstan describe TYPE NAME [OPTION]...\n"
		"       capstan describe TYPE/NAME [OPTION]...\n"
		"Show an object's metadata, labels, annotations, spec and status fields,\n"
		"and the Events about it.\n"
		"\n"
		"  -n, --namespace NS        namespace (default: the kubeconfig context's,\n"
		"                            else \"default\")\n"
		"  -h, --help                show this help\n"
		"\n"
		"See capstan(1).\n");
}

static const char *or_empty(const char *s)
{
	return s != NULL ? s : "";
}

static void scalar(const json_t *v, char *buf, size_t len)
{
	if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, len, "%g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, len, "%s", json_is_true(v) ? "true" : "false");
	else
		snprintf(buf, len, "<none>");
}

/* Field names are capitalised like kubectl's headings; keys of string
 * maps (labels, data, ...) are user data and stay as they are. */
static bool is_string_map(const char *field)
{
	static const char *const maps[] = {"labels", "annotations", "matchLabels", "data",
					   "stringData", "binaryData", "nodeSelector",
					   "selector", NULL};
	for (size_t i = 0; maps[i] != NULL; i++)
		if (strcmp(field, maps[i]) == 0)
			return true;
	return false;
}

static void cap_key(const char *k, bool raw, char *buf, size_t len)
{
	snprintf(buf, len, "%s", k);
	if (!raw && buf[0] >= 'a' && buf[0] <= 'z')
		buf[0] = (char)(buf[0] - 32);
}

/* Nested maps and lists as indented "Key: value" lines. */
static void flatten(const json_t *v, int indent, bool raw)
{
	char buf[4096], key[256];
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, x)
		{
			cap_key(k, raw, key, sizeof key);
			if (json_is_object(x) || json_is_array(x)) {
				if (json_is_object(x) ? json_object_size(x) == 0 : json_array_size(x) == 0) {
					strncat(key, ":", sizeof key - strlen(key) - 1);
					printf("%*s%-*s <none>\n", indent, "",
					       20 - indent > 0 ? 20 - indent : 0, key);
					continue;
				}
				printf("%*s%s:\n", indent, "", key);
				flatten(x, indent + 2, is_string_map(k));
			} else {
				scalar(x, buf, sizeof buf);
				strncat(key, ":", sizeof key - strlen(key) - 1);
				printf("%*s%-*s %s\n", indent, "", 20 - indent > 0 ? 20 - indent : 0,
				       key, buf);
			}
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x)
		{
			if (json_is_object(x) || json_is_array(x)) {
				printf("%*s-\n", indent, "");
				flatten(x, indent + 2, false);
			} else {
				scalar(x, buf, sizeof buf);
				printf("%*s- %s\n", indent, "", buf);
			}
		}
	}
}

static void map_lines(const char *title, const json_t *m)
{
	const char *k;
	json_t *v;
	bool first = true;

	if (!json_is_object(m) || json_object_size(m) == 0) {
		printf("%-14s<none>\n", title);
		return;
	}
	json_object_foreach((json_t *)m, k, v)
	{
		const char *s = json_string_value(v);
		printf("%-14s%s=%s\n", first ? title : "", k, s != NULL ? s : "");
		first = false;
	}
}

static time_t parse_time(const char *s)
{
	struct tm tm = {0};

	if (s == NULL || strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) == NULL)
		return 0;
	return timegm(&tm);
}

static void age(time_t t, char *buf, size_t len)
{
	long d = t != 0 ? (long)(time(NULL) - t) : -1;

	if (d < 0)
		snprintf(buf, len, "<unknown>");
	else if (d < 120)
		snprintf(buf, len, "%lds", d);
	else if (d < 7200)
		snprintf(buf, len, "%ldm", d / 60);
	else if (d < 172800)
		snprintf(buf, len, "%ldh", d / 3600);
	else
		snprintf(buf, len, "%ldd", d / 86400);
}

static int print_events(struct cli_http_client *c, const struct res_discovery *d,
			const json_t *obj, const struct res_type *t)
{
	const struct res_type *ev = res_resolve(d, "events");
	const char *ns = res_str(obj, "metadata.namespace");
	char path[4096], sel[1024];
	json_t *list = NULL, *e;
	size_t i;
	int code;

	if (ev == NULL || strcmp(ev->group, "") != 0) {
		printf("Events:       <unknown>\n");
		return CLI_EXIT_OK;
	}
	snprintf(sel, sizeof sel, "involvedObject.kind=%s,involvedObject.name=%s", t->kind,
		 res_str(obj, "metadata.name"));
	if (ns != NULL) {
		size_t n = strlen(sel);
		snprintf(sel + n, sizeof sel - n, ",involvedObject.namespace=%s", ns);
	}
	if (res_str(obj, "metadata.uid") != NULL) {
		size_t n = strlen(sel);
		snprintf(sel + n, sizeof sel - n, ",involvedObject.uid=%s",
			 res_str(obj, "metadata.uid"));
	}
	if (res_path(ev, ns, NULL, NULL, path, sizeof path) != 0 ||
	    res_query(path, sizeof path, "fieldSelector", sel) != 0)
		return cli_fail(CLI_EXIT_USAGE, "name too long");
	code = res_call(c, "GET", path, NULL, RES_JSON, NULL, false, &list);
	if (code != CLI_EXIT_OK)
		return code;
	if (json_array_size(json_object_get(list, "items")) == 0) {
		printf("Events:       <none>\n");
		json_decref(list);
		return CLI_EXIT_OK;
	}
	printf("Events:\n  %-8s %-20s %-8s %-20s %s\n", "Type", "Reason", "Age", "From",
	       "Message");
	printf("  %-8s %-20s %-8s %-20s %s\n", "----", "------", "----", "----", "-------");
	json_array_foreach(json_object_get(list, "items"), i, e)
	{
		char a[32];
		const char *when = res_str(e, "lastTimestamp");
		const char *from = res_str(e, "source.component");
		if (when == NULL)
			when = res_str(e, "eventTime");
		if (when == NULL)
			when = res_str(e, "metadata.creationTimestamp");
		if (from == NULL)
			from = res_str(e, "reportingComponent");
		age(parse_time(when), a, sizeof a);
		printf("  %-8s %-20s %-8s %-20s %s\n", or_empty(res_str(e, "type")),
		       or_empty(res_str(e, "reason")), a, or_empty(from),
		       or_empty(res_str(e, "message")));
	}
	json_decref(list);
	return CLI_EXIT_OK;
}

static void describe(const json_t *obj)
{
	json_t *meta = json_object_get(obj, "metadata"), *rest;
	const char *k;
	json_t *v;
	char a[32];

	printf("%-14s%s\n", "Name:", res_str(obj, "metadata.name"));
	if (res_str(obj, "metadata.namespace") != NULL)
		printf("%-14s%s\n", "Namespace:", res_str(obj, "metadata.namespace"));
	printf("%-14s%s\n", "Kind:", res_str(obj, "kind") ? res_str(obj, "kind") : "");
	printf("%-14s%s\n", "API Version:", res_str(obj, "apiVersion") ? res_str(obj, "apiVersion") : "");
	map_lines("Labels:", json_object_get(meta, "labels"));
	map_lines("Annotations:", json_object_get(meta, "annotations"));
	if (res_str(obj, "metadata.creationTimestamp") != NULL) {
		age(parse_time(res_str(obj, "metadata.creationTimestamp")), a, sizeof a);
		printf("%-14s%s (%s ago)\n", "Created:", res_str(obj, "metadata.creationTimestamp"), a);
	}
	if (res_str(obj, "metadata.uid") != NULL)
		printf("%-14s%s\n", "UID:", res_str(obj, "metadata.uid"));
	if (res_str(obj, "metadata.resourceVersion") != NULL)
		printf("%-14s%s\n", "Resource Ver:", res_str(obj, "metadata.resourceVersion"));
	/* Everything else (spec, status, data, ...) flattened. */
	rest = json_object();
	json_object_foreach((json_t *)obj, k, v)
	{
		if (strcmp(k, "metadata") != 0 && strcmp(k, "kind") != 0 &&
		    strcmp(k, "apiVersion") != 0)
			json_object_set(rest, k, v);
	}
	flatten(rest, 0, false);
	json_decref(rest);
}

int cli_cmd_describe(struct cli_global *g, int argc, char **argv)
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"namespace", required_argument, NULL, 'n'},
		CLI_GLOBAL_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	const char *ns = NULL, *name, *slash;
	struct cli_http_client *client = NULL;
	struct res_discovery d = {0};
	const struct res_type *t;
	char type[256], path[4096];
	json_t *obj = NULL;
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
		default:
			code = cli_global_option(g, "describe", c, argv);
			if (code != CLI_EXIT_OK)
				return code;
		}
	}
	if (optind >= argc)
		return cli_usage_error("describe", "missing TYPE NAME");
	slash = strchr(argv[optind], '/');
	if (slash != NULL && optind + 1 == argc) {
		snprintf(type, sizeof type, "%.*s", (int)(slash - argv[optind]), argv[optind]);
		name = slash + 1;
	} else if (slash == NULL && optind + 2 == argc) {
		snprintf(type, sizeof type, "%s", argv[optind]);
		name = argv[optind + 1];
	} else {
		return cli_usage_error("describe", "expected TYPE NAME or TYPE/NAME");
	}
	if (ns == NULL)
		ns = res_default_namespace(g);
	code = res_open_type(g, type, &client, &d, &t);
	if (code != CLI_EXIT_OK)
		goto out;
	if (res_path(t, ns, name, NULL, path, sizeof path) != 0) {
		code = cli_fail(CLI_EXIT_USAGE, "name too long");
		goto out;
	}
	code = res_call(client, "GET", path, NULL, RES_JSON, NULL, false, &obj);
	if (code != CLI_EXIT_OK)
		goto out;
	if (obj == NULL) {
		code = cli_fail(CLI_EXIT_FAILURE, "the server's answer is not JSON");
		goto out;
	}
	describe(obj);
	code = print_events(client, &d, obj, t);
out:
	json_decref(obj);
	res_discovery_close(&d);
	cli_http_client_free(client);
	return code;
}
