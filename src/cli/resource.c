/* Discovery, type resolution, paths, manifests and printing shared by the
 * resource commands. */
#include "src/cli/resource.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "src/cli/kubeconfig.h"
#include "src/cli/yaml.h"
#include "src/lib/args.h"
#include "src/lib/codec.h"

#define MANIFEST_MAX (64u << 20)

static char *dup_or_empty(const char *s)
{
	return strdup(s != NULL ? s : "");
}

static int add_types(struct res_discovery *d, const char *group, const char *version,
		     json_t *list)
{
	json_t *r;
	size_t i;

	json_array_foreach(json_object_get(list, "resources"), i, r)
	{
		const char *name = json_string_value(json_object_get(r, "name"));
		const char *kind = json_string_value(json_object_get(r, "kind"));
		const char *singular = json_string_value(json_object_get(r, "singularName"));
		json_t *sn = json_object_get(r, "shortNames");
		struct res_type *t, *nt;
		char lower[256];

		if (name == NULL || kind == NULL || strchr(name, '/') != NULL)
			continue;
		nt = realloc(d->types, (d->n + 1) * sizeof *nt);
		if (nt == NULL)
			return -ENOMEM;
		d->types = nt;
		t = &d->types[d->n];
		memset(t, 0, sizeof *t);
		if (singular == NULL || singular[0] == '\0') {
			/* Old servers leave it empty: kubectl lower-cases the kind. */
			size_t k;
			for (k = 0; kind[k] && k + 1 < sizeof lower; k++)
				lower[k] = (char)(kind[k] >= 'A' && kind[k] <= 'Z' ? kind[k] + 32 : kind[k]);
			lower[k] = '\0';
			singular = lower;
		}
		t->group = dup_or_empty(group);
		t->version = dup_or_empty(version);
		t->plural = dup_or_empty(name);
		t->singular = dup_or_empty(singular);
		t->kind = dup_or_empty(kind);
		t->short_names = json_is_array(sn) ? json_incref(sn) : json_array();
		t->namespaced = json_is_true(json_object_get(r, "namespaced"));
		d->n++;
		if (t->group == NULL || t->version == NULL || t->plural == NULL ||
		    t->singular == NULL || t->kind == NULL || t->short_names == NULL)
			return -ENOMEM;
	}
	return 0;
}

int res_discover(struct cli_http_client *c, struct res_discovery *ret)
{
	json_t *doc = NULL, *list = NULL, *g;
	size_t i;
	int code;
	char path[512];

	memset(ret, 0, sizeof *ret);
	code = res_call(c, "GET", "/api/v1", NULL, RES_JSON, NULL, false, &list);
	if (code != CLI_EXIT_OK)
		return code;
	if (add_types(ret, "", "v1", list) != 0)
		goto nomem;
	json_decref(list);
	list = NULL;
	code = res_call(c, "GET", "/apis", NULL, RES_JSON, NULL, false, &doc);
	if (code != CLI_EXIT_OK)
		return code;
	json_array_foreach(json_object_get(doc, "groups"), i, g)
	{
		const char *name = json_string_value(json_object_get(g, "name"));
		const char *gv = res_str(g, "preferredVersion.groupVersion");
		const char *slash;

		if (name == NULL || gv == NULL || (slash = strchr(gv, '/')) == NULL)
			continue;
		snprintf(path, sizeof path, "/apis/%s", gv);
		code = res_call(c, "GET", path, NULL, RES_JSON, NULL, true, &list);
		if (code == CLI_EXIT_NOT_FOUND)
			continue;
		if (code != CLI_EXIT_OK)
			goto out;
		if (add_types(ret, name, slash + 1, list) != 0)
			goto nomem;
		json_decref(list);
		list = NULL;
	}
	code = CLI_EXIT_OK;
	goto out;
nomem:
	code = cli_fail(CLI_EXIT_FAILURE, "out of memory");
out:
	json_decref(list);
	json_decref(doc);
	return code;
}

void res_discovery_close(struct res_discovery *d)
{
	for (size_t i = 0; i < d->n; i++) {
		struct res_type *t = &d->types[i];
		free(t->group);
		free(t->version);
		free(t->plural);
		free(t->singular);
		free(t->kind);
		json_decref(t->short_names);
	}
	free(d->types);
	d->types = NULL;
	d->n = 0;
}

static bool name_matches(const struct res_type *t, const char *name, size_t len)
{
	json_t *s;
	size_t i;

	if ((strlen(t->plural) == len && strncasecmp(t->plural, name, len) == 0) ||
	    (strlen(t->singular) == len && strncasecmp(t->singular, name, len) == 0) ||
	    (strlen(t->kind) == len && strncasecmp(t->kind, name, len) == 0))
		return true;
	json_array_foreach(t->short_names, i, s)
	{
		const char *v = json_string_value(s);
		if (v != NULL && strlen(v) == len && strncasecmp(v, name, len) == 0)
			return true;
	}
	return false;
}

const struct res_type *res_resolve(const struct res_discovery *d, const char *name)
{
	const char *dot = strchr(name, '.');
	size_t len = dot != NULL ? (size_t)(dot - name) : strlen(name);

	/* Core types first, as kubectl prefers them ("events" is both
	 * v1 and events.k8s.io). */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < d->n; i++) {
			const struct res_type *t = &d->types[i];
			if ((t->group[0] == '\0') != (pass == 0))
				continue;
			if (dot != NULL && strcasecmp(t->group, dot + 1) != 0)
				continue;
			if (name_matches(t, name, len))
				return t;
		}
	}
	return NULL;
}

const struct res_type *res_for_object(const struct res_discovery *d, const json_t *obj)
{
	const char *av = res_str(obj, "apiVersion"), *kind = res_str(obj, "kind");
	const char *slash;
	size_t glen;

	if (av == NULL || kind == NULL)
		return NULL;
	slash = strchr(av, '/');
	glen = slash != NULL ? (size_t)(slash - av) : 0;
	for (size_t i = 0; i < d->n; i++) {
		const struct res_type *t = &d->types[i];
		if (strcmp(t->kind, kind) != 0)
			continue;
		if (strlen(t->group) != glen || strncmp(t->group, av, glen) != 0)
			continue;
		if (strcmp(t->version, slash != NULL ? slash + 1 : av) != 0)
			continue;
		return t;
	}
	return NULL;
}

int res_path(const struct res_type *t, const char *ns, const char *name,
	     const char *subresource, char *buf, size_t len)
{
	int n;

	if (t->group[0] == '\0')
		n = snprintf(buf, len, "/api/%s", t->version);
	else
		n = snprintf(buf, len, "/apis/%s/%s", t->group, t->version);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	if (t->namespaced && ns != NULL) {
		strncat(buf, "/namespaces/", len - strlen(buf) - 1);
		if (cli_http_escape_path(ns, buf, len) != 0)
			return -ENAMETOOLONG;
	}
	strncat(buf, "/", len - strlen(buf) - 1);
	strncat(buf, t->plural, len - strlen(buf) - 1);
	if (name != NULL) {
		strncat(buf, "/", len - strlen(buf) - 1);
		if (cli_http_escape_path(name, buf, len) != 0)
			return -ENAMETOOLONG;
	}
	if (subresource != NULL) {
		strncat(buf, "/", len - strlen(buf) - 1);
		strncat(buf, subresource, len - strlen(buf) - 1);
	}
	return strlen(buf) + 1 >= len ? -ENAMETOOLONG : 0;
}

int res_query(char *buf, size_t len, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(buf);
	int w = snprintf(buf + n, len - n, "%s%s=", strchr(buf, '?') ? "&" : "?", key);

	if (w < 0 || (size_t)w >= len - n)
		return -ENAMETOOLONG;
	n += (size_t)w;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		bool keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
			    *p == '~';
		if (n + 4 >= len)
			return -ENAMETOOLONG;
		if (keep) {
			buf[n++] = (char)*p;
		} else {
			buf[n++] = '%';
			buf[n++] = hex[*p >> 4];
			buf[n++] = hex[*p & 15];
		}
	}
	buf[n] = '\0';
	return 0;
}

const char *res_default_namespace(const struct cli_global *g)
{
	static char ns[256] = "";
	struct cli_kubeconfig kc = {0};
	char path[PATH_MAX], err[256];

	if (ns[0] != '\0')
		return ns;
	snprintf(ns, sizeof ns, "default");
	if (g->kubeconfig != NULL)
		snprintf(path, sizeof path, "%s", g->kubeconfig);
	else if (cli_kubeconfig_default_path(path, sizeof path) != 0)
		return ns;
	if (cli_kubeconfig_load(path, g->context, &kc, err, sizeof err) == 0 &&
	    kc.namespace != NULL && kc.namespace[0] != '\0')
		snprintf(ns, sizeof ns, "%s", kc.namespace);
	cli_kubeconfig_close(&kc);
	return ns;
}

int res_call(struct cli_http_client *c, const char *method, const char *path,
	     const char *content_type, const char *accept, const json_t *body,
	     bool quiet_404, json_t **ret_obj)
{
	struct cli_http_response resp = {0};
	char *text = NULL;
	int rv, code;

	if (ret_obj != NULL)
		*ret_obj = NULL;
	if (body != NULL) {
		text = json_dumps(body, JSON_COMPACT);
		if (text == NULL)
			return cli_fail(CLI_EXIT_FAILURE, "out of memory");
	}
	rv = cli_http_request_typed(c, method, path,
				    content_type != NULL ? content_type : RES_JSON, accept, text,
				    text != NULL ? strlen(text) : 0, 0, &resp);
	free(text);
	if (rv != 0)
		return cli_fail_request(c, rv);
	if (resp.status < 200 || resp.status > 299) {
		if (quiet_404 && resp.status == 404)
			code = CLI_EXIT_NOT_FOUND;
		else
			code = cli_fail_response(&resp);
		cli_http_response_free(&resp);
		return code;
	}
	if (ret_obj != NULL)
		*ret_obj = json_loadb(resp.body, resp.len, 0, NULL);
	cli_http_response_free(&resp);
	return CLI_EXIT_OK;
}

static int add_docs(json_t *out, json_t *docs, const char *src)
{
	json_t *d, *it;
	size_t i, j;

	json_array_foreach(docs, i, d)
	{
		if (json_is_null(d))
			continue; /* an empty document between "---" */
		if (!json_is_object(d))
			return cli_fail(CLI_EXIT_INVALID, "%s: document %zu is not an object", src,
					i + 1);
		if (res_str(d, "kind") != NULL && strcmp(res_str(d, "kind"), "List") == 0 &&
		    json_is_array(json_object_get(d, "items"))) {
			json_array_foreach(json_object_get(d, "items"), j, it)
				json_array_append(out, it);
			continue;
		}
		if (res_str(d, "kind") == NULL || res_str(d, "apiVersion") == NULL)
			return cli_fail(CLI_EXIT_INVALID,
					"%s: document %zu has no apiVersion or kind", src, i + 1);
		json_array_append(out, d);
	}
	return CLI_EXIT_OK;
}

static int load_file(const char *path, json_t *out)
{
	struct codec_err err = {0};
	json_t *docs = NULL;
	char *text;
	size_t len;
	int rv, code;

	rv = cli_read_file(strcmp(path, "-") == 0 ? "/dev/stdin" : path, MANIFEST_MAX, &text,
			   &len);
	if (rv != 0)
		return cli_fail(rv == -ENOENT ? CLI_EXIT_NOT_FOUND : CLI_EXIT_FAILURE,
				"cannot read %s: %s", path, strerror(-rv));
	/* JSON is YAML too, so one parser reads both, several documents
	 * included. */
	rv = codec_yaml_to_tree(text, len, 0, &docs, &err);
	free(text);
	if (rv != 0) {
		if (rv == -ENOMEM)
			return cli_fail(CLI_EXIT_FAILURE, "out of memory");
		return cli_fail(CLI_EXIT_INVALID, "%s: line %lu: %s", path, err.line, err.msg);
	}
	code = add_docs(out, docs, path);
	json_decref(docs);
	return code;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool manifest_name(const char *n)
{
	size_t l = strlen(n);

	return (l > 5 && strcmp(n + l - 5, ".yaml") == 0) ||
	       (l > 4 && strcmp(n + l - 4, ".yml") == 0) ||
	       (l > 5 && strcmp(n + l - 5, ".json") == 0);
}

int res_load_manifests(const char *path, json_t **ret_objs)
{
	json_t *out = json_array();
	struct stat st;
	int code = CLI_EXIT_OK;

	if (out == NULL)
		return cli_fail(CLI_EXIT_FAILURE, "out of memory");
	if (strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		DIR *dir = opendir(path);
		struct dirent *e;
		char **names = NULL, **nn, full[PATH_MAX];
		size_t n = 0;

		if (dir == NULL) {
			json_decref(out);
			return cli_fail(CLI_EXIT_FAILURE, "cannot read %s: %s", path,
					strerror(errno));
		}
		while ((e = readdir(dir)) != NULL) {
			if (!manifest_name(e->d_name))
				continue;
			nn = realloc(names, (n + 1) * sizeof *names);
			if (nn == NULL || (nn[n] = strdup(e->d_name)) == NULL) {
				names = nn != NULL ? nn : names;
				code = cli_fail(CLI_EXIT_FAILURE, "out of memory");
				break;
			}
			names = nn;
			n++;
		}
		closedir(dir);
		if (names != NULL)
			qsort(names, n, sizeof *names, cmp_str);
		for (size_t i = 0; i < n; i++) {
			if (code == CLI_EXIT_OK) {
				snprintf(full, sizeof full, "%s/%s", path, names[i]);
				code = load_file(full, out);
			}
			free(names[i]);
		}
		free(names);
	} else {
		code = load_file(path, out);
	}
	if (code != CLI_EXIT_OK) {
		json_decref(out);
		return code;
	}
	*ret_objs = out;
	return CLI_EXIT_OK;
}

void res_print(const json_t *obj, const char *format)
{
	if (strcmp(format, "yaml") == 0) {
		struct codec_buf b = {0};
		if (codec_tree_to_yaml(obj, &b, NULL) == 0)
			fwrite(b.data, 1, b.len, stdout);
		codec_buf_free(&b);
		return;
	}
	json_dumpf(obj, stdout, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
}

const char *res_str(const json_t *obj, const char *path)
{
	char seg[256];
	const char *p = path;

	while (obj != NULL) {
		size_t n = strcspn(p, ".");
		if (n >= sizeof seg)
			return NULL;
		memcpy(seg, p, n);
		seg[n] = '\0';
		obj = json_object_get(obj, seg);
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	return json_string_value(obj);
}

int res_parse_duration(const char *s, uint64_t *ret_ms)
{
	uint64_t v;

	if (args_parse_duration_ms(s, ret_ms) == 0)
		return 0;
	if (args_parse_uint(s, UINT64_MAX / 1000, &v) == 0) {
		*ret_ms = v * 1000;
		return 0;
	}
	return -EINVAL;
}

uint64_t res_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct watch_state {
	res_watch_cb cb;
	void *data;
	uint64_t deadline_ms;
	int code;
	char rv[32];
};

static int watch_line_cb(const char *line, size_t len, void *data)
{
	struct watch_state *w = data;
	json_t *ev = json_loadb(line, len, 0, NULL);
	const char *type = res_str(ev, "type");
	json_t *obj = json_object_get(ev, "object");
	const char *rv = res_str(obj, "metadata.resourceVersion");
	int code = -1;

	if (type == NULL) {
		json_decref(ev);
		return 0;
	}
	if (rv != NULL)
		snprintf(w->rv, sizeof w->rv, "%s", rv);
	if (strcmp(type, "ERROR") == 0) {
		const char *msg = res_str(obj, "message");
		json_t *c = json_object_get(obj, "code");
		/* 410 Gone: start again from a fresh GET. */
		if (json_integer_value(c) == 410) {
			w->rv[0] = '\0';
			json_decref(ev);
			return 2;
		}
		code = cli_exit_for_status((long)json_integer_value(c));
		code = cli_fail(code != CLI_EXIT_OK ? code : CLI_EXIT_FAILURE, "watch failed: %s",
				msg != NULL ? msg : "unknown error");
	} else if (strcmp(type, "DELETED") == 0) {
		code = w->cb(NULL, w->data);
	} else if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0) {
		code = w->cb(obj, w->data);
	}
	json_decref(ev);
	if (code >= 0) {
		w->code = code;
		return 1;
	}
	if (w->deadline_ms != 0 && res_now_ms() >= w->deadline_ms)
		return 3;
	return 0;
}

int res_watch_object(struct cli_http_client *c, const struct res_type *t, const char *ns,
		     const char *name, uint64_t deadline_ms, res_watch_cb cb, void *data)
{
	struct watch_state w = {.cb = cb, .data = data, .deadline_ms = deadline_ms};
	char path[4096], sel[512], tmo[32];
	json_t *obj;
	int code, rv;

	for (;;) {
		uint64_t now = res_now_ms(), left;
		struct cli_http_response err = {0};

		if (w.rv[0] == '\0') {
			if (res_path(t, ns, name, NULL, path, sizeof path) != 0)
				return cli_fail(CLI_EXIT_USAGE, "name too long");
			code = res_call(c, "GET", path, NULL, RES_JSON, NULL, true, &obj);
			if (code != CLI_EXIT_OK && code != CLI_EXIT_NOT_FOUND)
				return code;
			code = cb(code == CLI_EXIT_OK ? obj : NULL, data);
			snprintf(w.rv, sizeof w.rv, "%s",
				 obj != NULL && res_str(obj, "metadata.resourceVersion") != NULL
					 ? res_str(obj, "metadata.resourceVersion")
					 : "0");
			json_decref(obj);
			if (code >= 0)
				return code;
			now = res_now_ms();
		}
		if (deadline_ms != 0 && now >= deadline_ms)
			return cli_fail(CLI_EXIT_FAILURE, "timed out waiting for the condition");
		left = deadline_ms != 0 ? (deadline_ms - now + 999) / 1000 : 300;
		if (left > 300)
			left = 300;
		if (res_path(t, ns, NULL, NULL, path, sizeof path) != 0)
			return cli_fail(CLI_EXIT_USAGE, "name too long");
		snprintf(sel, sizeof sel, "metadata.name=%s", name);
		snprintf(tmo, sizeof tmo, "%llu", (unsigned long long)left);
		if (res_query(path, sizeof path, "watch", "true") != 0 ||
		    res_query(path, sizeof path, "fieldSelector", sel) != 0 ||
		    res_query(path, sizeof path, "resourceVersion", w.rv) != 0 ||
		    res_query(path, sizeof path, "allowWatchBookmarks", "true") != 0 ||
		    res_query(path, sizeof path, "timeoutSeconds", tmo) != 0)
			return cli_fail(CLI_EXIT_USAGE, "name too long");
		rv = cli_http_stream(c, path, 0, watch_line_cb, &w, &err);
		if (rv == 1)
			return w.code;
		if (rv == 2 || rv == 3 || rv == 0) {
			if (err.body != NULL) {
				code = cli_fail_response(&err);
				cli_http_response_free(&err);
				return code;
			}
			continue; /* the loop checks the deadline */
		}
		return cli_fail_request(c, rv);
	}
}

int res_open_type(const struct cli_global *g, const char *type,
		  struct cli_http_client **ret_client, struct res_discovery *d,
		  const struct res_type **ret_t)
{
	int code = cli_connect(g, ret_client);

	if (code != CLI_EXIT_OK)
		return code;
	code = res_discover(*ret_client, d);
	if (code != CLI_EXIT_OK)
		return code;
	*ret_t = res_resolve(d, type);
	if (*ret_t == NULL)
		return cli_fail(CLI_EXIT_INVALID, "the server doesn't have a resource type \"%s\"",
				type);
	return CLI_EXIT_OK;
}
