/* capstan apply: client-side apply with kubectl's last-applied annotation.
 *
 * For each object of the manifests: GET it; if absent, POST it with
 * kubectl.kubernetes.io/last-applied-configuration set to the applied
 * object as compact JSON; if present, PATCH it with the three-way
 * strategic merge patch kubectl sends (api_patch_strategic_diff):
 * - original = the live object's last-applied annotation,
 * - modified = the new configuration (with its new annotation),
 * - current  = the live object.
 * Fields others set (defaults, status, items others added to keyed lists)
 * stay; fields and keyed items removed from the configuration since the
 * last apply are deleted. Kinds this CLI has no schema for get a JSON
 * merge patch from the same diff. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "src/api/patch.h"
#include "src/api/registry.h"
#include "src/cli/cli.h"
#include "src/cli/resource.h"

#define LAST_APPLIED "kubectl.kubernetes.io/last-applied-configuration"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstan apply -f FILE|DIR|- [OPTION]...\n"
		"Create or update the objects of YAML or JSON manifests (several\n"
		"documents per file; every *.yaml, *.yml and *.json of a directory),\n"
		"keeping kubectl's last-applied-configuration annotation, and print\n"
		"'kind/name created|configured|unchanged' for each.\n"
		"\n"
		"  -f, --filename FILE       manifest file, directory, or '-' for stdin\n"
		"                            (repeatable)\n"
		"  -n, --namespace NS        namespace of objects that name none (default:\n"
		"                            the kubeconfig context's, else \"default\")\n"
		"  -h, --help                show this help\n"
		"\n"
		"See capstan(1).\n");
}

static void kind_name(const struct res_type *t, const char *name, char *buf, size_t len)
{
	if (t->group[0] == '\0')
		snprintf(buf, len, "%s/%s", t->singular, name);
	else
		snprintf(buf, len, "%s.%s/%s", t->singular, t->group, name);
}

static int apply_one(struct cli_http_client *c, const struct res_discovery *d, json_t *obj,
		     const char *default_ns, bool ns_given)
{
	const struct res_type *t = res_for_object(d, obj);
	const char *name = res_str(obj, "metadata.name");
	const char *ns = res_str(obj, "metadata.namespace");
	json_t *mod = NULL, *live = NULL, *orig = NULL, *patch = NULL, *meta, *ann;
	char path[4096], what[512], *last = NULL;
	const char *last_live;
	const struct api_kind *k;
	int code;

	if (t == NULL)
		return cli_fail(CLI_EXIT_INVALID, "no matches for kind \"%s\" in version \"%s\"",
				res_str(obj, "kind"), res_str(obj, "apiVersion"));
	if (name == NULL || name[0] == '\0')
		return cli_fail(CLI_EXIT_INVALID, "a %s in the manifests has no metadata.name",
				t->kind);
	if (t->namespaced && ns != NULL && ns_given && strcmp(ns, default_ns) != 0)
		return cli_fail(CLI_EXIT_INVALID,
				"the namespace from the provided object \"%s\" does not match the "
				"namespace \"%s\"; you must pass '--namespace=%s' to perform this "
				"operation",
				ns, default_ns, ns);
	if (ns == NULL)
		ns = default_ns;
	kind_name(t, name, what, sizeof what);
	/* The annotation holds the configuration without itself. */
	mod = json_deep_copy(obj);
	meta = json_object_get(mod, "metadata");
	ann = json_object_get(meta, "annotations");
	if (json_is_object(ann))
		json_object_del(ann, LAST_APPLIED);
	last = json_dumps(mod, JSON_COMPACT);
	if (last == NULL) {
		code = cli_fail(CLI_EXIT_FAILURE, "out of memory");
		goto out;
	}
	if (!json_is_object(ann)) {
		ann = json_object();
		json_object_set_new(meta, "annotations", ann);
	}
	json_object_set_new(ann, LAST_APPLIED, json_string(last));
	if (res_path(t, ns, name, NULL, path, sizeof path) != 0) {
		code = cli_fail(CLI_EXIT_INVALID, "name too long");
		goto out;
	}
	code = res_call(c, "GET", path, NULL, RES_JSON, NULL, true, &live);
	if (code == CLI_EXIT_NOT_FOUND) {
		if (res_path(t, ns, NULL, NULL, path, sizeof path) != 0) {
			code = cli_fail(CLI_EXIT_INVALID, "name too long");
			goto out;
		}
		code = res_call(c, "POST", path, RES_JSON, RES_JSON, mod, false, NULL);
		if (code == CLI_EXIT_OK)
			printf("%s created\n", what);
		goto out;
	}
	if (code != CLI_EXIT_OK)
		goto out;
	/* The annotation key holds dots: read it directly. */
	last_live = json_string_value(json_object_get(
		json_object_get(json_object_get(live, "metadata"), "annotations"), LAST_APPLIED));
	if (last_live != NULL)
		orig = json_loads(last_live, 0, NULL);
	k = api_kind_by_gvk(t->group, t->version, t->kind);
	if (api_patch_strategic_diff(k != NULL ? k->type : -1, orig, mod, live, &patch) != 0) {
		code = cli_fail(CLI_EXIT_FAILURE, "cannot compute the patch of %s", what);
		goto out;
	}
	if (json_object_size(patch) == 0) {
		printf("%s unchanged\n", what);
		code = CLI_EXIT_OK;
		goto out;
	}
	code = res_call(c, "PATCH", path, k != NULL ? RES_STRATEGIC_PATCH : RES_MERGE_PATCH,
			RES_JSON, patch, false, NULL);
	if (code == CLI_EXIT_OK)
		printf("%s configured\n", what);
out:
	free(last);
	json_decref(patch);
	json_decref(orig);
	json_decref(live);
	json_decref(mod);
	return code;
}

int cli_cmd_apply(struct cli_global *g, int argc, char **argv)
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"filename", required_argument, NULL, 'f'},
		{"namespace", required_argument, NULL, 'n'},
		CLI_GLOBAL_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	const char *files[64];
	size_t nfiles = 0;
	const char *ns = NULL;
	struct cli_http_client *client = NULL;
	struct res_discovery d = {0};
	json_t *objs = NULL, *all = NULL, *o;
	size_t i;
	int c, code, worst = CLI_EXIT_OK;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":hf:n:", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		case 'f':
			if (nfiles == sizeof files / sizeof files[0])
				return cli_usage_error("apply", "too many -f options");
			files[nfiles++] = optarg;
			break;
		case 'n':
			ns = optarg;
			break;
		default:
			code = cli_global_option(g, "apply", c, argv);
			if (code != CLI_EXIT_OK)
				return code;
		}
	}
	if (nfiles == 0)
		return cli_usage_error("apply", "missing -f FILE");
	if (optind < argc)
		return cli_usage_error("apply", "unexpected argument '%s'", argv[optind]);
	all = json_array();
	for (i = 0; i < nfiles; i++) {
		code = res_load_manifests(files[i], &objs);
		if (code != CLI_EXIT_OK)
			goto out;
		json_array_extend(all, objs);
		json_decref(objs);
	}
	if (json_array_size(all) == 0) {
		code = cli_fail(CLI_EXIT_INVALID, "no objects passed to apply");
		goto out;
	}
	code = cli_connect(g, &client);
	if (code != CLI_EXIT_OK)
		goto out;
	code = res_discover(client, &d);
	if (code != CLI_EXIT_OK)
		goto out;
	/* Like kubectl: go on after a failed object, exit with the error. */
	json_array_foreach(all, i, o)
	{
		code = apply_one(client, &d, o, ns != NULL ? ns : res_default_namespace(g),
				 ns != NULL);
		if (code == CLI_EXIT_CONNECT) {
			worst = code;
			break;
		}
		if (code != CLI_EXIT_OK && worst == CLI_EXIT_OK)
			worst = code;
	}
	code = worst;
out:
	json_decref(all);
	res_discovery_close(&d);
	cli_http_client_free(client);
	return code;
}
