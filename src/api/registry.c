/* The kind registry: lookups, Table rendering and the helpers kinds share. */
#include "src/api/registry.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "src/api/kinds/kinds.h"

/* Registry order is discovery order: core first, then the groups. */
static const struct api_kind *const kinds[] = {
	&api__kind_namespace,
	&api__kind_pod,
	&api__kind_service,
	&api__kind_endpoints,
	&api__kind_configmap,
	&api__kind_secret,
	&api__kind_persistentvolume,
	&api__kind_persistentvolumeclaim,
	&api__kind_node,
	&api__kind_serviceaccount,
	&api__kind_event,
	&api__kind_deployment,
	&api__kind_replicaset,
	&api__kind_daemonset,
	&api__kind_statefulset,
	&api__kind_ingress,
	&api__kind_networkpolicy,
	&api__kind_lease,
	&api__kind_endpointslice,
};

#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

const char *const api__categories_all[] = { "all", NULL };

size_t api_kind_count(void)
{
	return N_KINDS;
}

const struct api_kind *api_kind_at(size_t i)
{
	return i < N_KINDS ? kinds[i] : NULL;
}

const struct api_kind *api_kind_by_resource(const char *group, const char *version,
					    const char *plural)
{
	for (size_t i = 0; i < N_KINDS; i++) {
		const struct api_kind *k = kinds[i];
		if (strcmp(k->plural, plural) == 0 && strcmp(k->group, group) == 0 &&
		    strcmp(k->version, version) == 0) {
			return k;
		}
	}
	return NULL;
}

const struct api_kind *api_kind_by_gvk(const char *group, const char *version, const char *kind)
{
	for (size_t i = 0; i < N_KINDS; i++) {
		const struct api_kind *k = kinds[i];
		if (strcmp(k->kind, kind) == 0 && strcmp(k->group, group) == 0 &&
		    strcmp(k->version, version) == 0) {
			return k;
		}
	}
	return NULL;
}

const struct api_kind *api_kind_by_kind(const char *kind)
{
	for (size_t i = 0; i < N_KINDS; i++) {
		if (strcmp(kinds[i]->kind, kind) == 0) {
			return kinds[i];
		}
	}
	return NULL;
}

const struct api_kind *api_kind_by_name(const char *name)
{
	for (size_t i = 0; i < N_KINDS; i++) {
		const struct api_kind *k = kinds[i];
		if (strcasecmp(k->plural, name) == 0 || strcasecmp(k->singular, name) == 0 ||
		    strcasecmp(k->kind, name) == 0) {
			return k;
		}
	}
	for (size_t i = 0; i < N_KINDS; i++) {
		const struct api_kind *k = kinds[i];
		for (const char *const *s = k->short_names; s && *s; s++) {
			if (strcasecmp(*s, name) == 0) {
				return k;
			}
		}
	}
	return NULL;
}

const struct api_subresource *api_kind_subresource(const struct api_kind *k, const char *name)
{
	for (const struct api_subresource *s = k->subresources; s && s->name; s++) {
		if (strcmp(s->name, name) == 0) {
			return s;
		}
	}
	return NULL;
}

const char *api_kind_api_version(const struct api_kind *k)
{
	/* One static string per kind: the registry is small and fixed. */
	static char buf[N_KINDS][64];
	for (size_t i = 0; i < N_KINDS; i++) {
		if (kinds[i] != k) {
			continue;
		}
		if (k->group[0] == '\0') {
			return k->version;
		}
		if (buf[i][0] == '\0') {
			snprintf(buf[i], sizeof(buf[i]), "%s/%s", k->group, k->version);
		}
		return buf[i];
	}
	return k->version;
}

bool api_kind_field_selectable(const struct api_kind *k, const char *path)
{
	if (strcmp(path, "metadata.name") == 0 ||
	    (k->namespaced && strcmp(path, "metadata.namespace") == 0)) {
		return true;
	}
	for (const char *const *s = k->selectable_fields; s && *s; s++) {
		if (strcmp(*s, path) == 0) {
			return true;
		}
	}
	return false;
}

json_t *api_json_path(const json_t *obj, const char *path)
{
	json_t *cur = (json_t *)obj;
	const char *p = path;
	while (cur && *p) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		if (!json_is_object(cur)) {
			return NULL;
		}
		cur = json_object_getn(cur, p, len);
		p += len;
		if (*p == '.') {
			p++;
		}
	}
	return cur;
}

json_t *api_table_columns(const struct api_kind *k)
{
	json_t *arr = json_array();
	if (!arr) {
		return NULL;
	}
	for (const struct api_column *c = k->columns; c && c->name; c++) {
		json_t *col = json_pack("{s:s, s:s, s:s, s:s, s:i}", "name", c->name, "type", c->type,
					"format", c->format, "description", c->description,
					"priority", c->priority);
		if (!col || json_array_append_new(arr, col) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

json_t *api_table_cells(const struct api_kind *k, const json_t *obj, int64_t now)
{
	json_t *arr = json_array();
	if (!arr) {
		return NULL;
	}
	for (const struct api_column *c = k->columns; c && c->name; c++) {
		json_t *cell = NULL;
		if (c->print) {
			cell = c->print(obj, now);
		} else if (c->path) {
			json_t *v = api_json_path(obj, c->path);
			cell = v ? json_incref(v) : NULL;
		}
		if (!cell) {
			/* Kubernetes prints "<none>" for empty string columns. */
			cell = strcmp(c->type, "string") == 0 ? json_string("<none>") : json_null();
		}
		if (!cell || json_array_append_new(arr, cell) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

void api_human_duration(int64_t seconds, char *buf, size_t size)
{
	if (seconds < -1) {
		snprintf(buf, size, "<invalid>");
		return;
	}
	if (seconds < 0) {
		snprintf(buf, size, "0s");
		return;
	}
	if (seconds < 60 * 2) {
		snprintf(buf, size, "%" PRId64 "s", seconds);
		return;
	}
	int64_t minutes = seconds / 60;
	if (minutes < 10) {
		int64_t s = seconds % 60;
		if (s == 0) {
			snprintf(buf, size, "%" PRId64 "m", minutes);
		} else {
			snprintf(buf, size, "%" PRId64 "m%" PRId64 "s", minutes, s);
		}
		return;
	}
	if (minutes < 60 * 3) {
		snprintf(buf, size, "%" PRId64 "m", minutes);
		return;
	}
	int64_t hours = minutes / 60;
	if (hours < 8) {
		int64_t m = minutes % 60;
		if (m == 0) {
			snprintf(buf, size, "%" PRId64 "h", hours);
		} else {
			snprintf(buf, size, "%" PRId64 "h%" PRId64 "m", hours, m);
		}
		return;
	}
	if (hours < 48) {
		snprintf(buf, size, "%" PRId64 "h", hours);
		return;
	}
	if (hours < 24 * 8) {
		int64_t h = hours % 24;
		if (h == 0) {
			snprintf(buf, size, "%" PRId64 "d", hours / 24);
		} else {
			snprintf(buf, size, "%" PRId64 "d%" PRId64 "h", hours / 24, h);
		}
		return;
	}
	if (hours < 24 * 365 * 2) {
		snprintf(buf, size, "%" PRId64 "d", hours / 24);
		return;
	}
	if (hours < 24 * 365 * 8) {
		int64_t dy = (hours / 24) % 365;
		if (dy == 0) {
			snprintf(buf, size, "%" PRId64 "y", hours / 24 / 365);
		} else {
			snprintf(buf, size, "%" PRId64 "y%" PRId64 "d", hours / 24 / 365, dy);
		}
		return;
	}
	snprintf(buf, size, "%" PRId64 "y", hours / 24 / 365);
}

int api_parse_time(const char *s, int64_t *ret_seconds)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	int n = 0;
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6) {
		return -EINVAL;
	}
	const char *p = s + n;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9') {
			return -EINVAL;
		}
		while (*p >= '0' && *p <= '9') {
			p++;
		}
	}
	int64_t offset = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int oh, om;
		int m = 0;
		if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &m) != 2 || m != 5) {
			return -EINVAL;
		}
		offset = (int64_t)(oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p != '\0' || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
		return -EINVAL;
	}
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	if (t == (time_t)-1) {
		return -EINVAL;
	}
	*ret_seconds = (int64_t)t - offset;
	return 0;
}

json_t *api_cell_age(const json_t *obj, int64_t now)
{
	const char *ts = api__str_at(obj, "metadata.creationTimestamp");
	int64_t t;
	if (!ts || api_parse_time(ts, &t) != 0) {
		return json_string("<unknown>");
	}
	char buf[32];
	api_human_duration(now - t, buf, sizeof(buf));
	return json_string(buf);
}

/* ---------------------------------------------------------------- helpers */

json_t *api__cell_string(const char *s)
{
	return s ? json_string(s) : NULL;
}

json_t *api__cell_int(json_int_t v)
{
	return json_integer(v);
}

size_t api__count_keys(const json_t *obj, const char *path)
{
	json_t *v = api_json_path(obj, path);
	return json_is_object(v) ? json_object_size(v) : 0;
}

json_int_t api__int_at(const json_t *obj, const char *path, json_int_t dflt)
{
	json_t *v = api_json_path(obj, path);
	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

const char *api__str_at(const json_t *obj, const char *path)
{
	return json_string_value(api_json_path(obj, path));
}

/* Appends @s to a growing comma-separated list; returns 0 or -ENOMEM. */
static int join_append(char **buf, size_t *len, const char *s)
{
	size_t sl = strlen(s);
	char *nb = realloc(*buf, *len + sl + 2);
	if (!nb) {
		return -ENOMEM;
	}
	if (*len > 0) {
		nb[(*len)++] = ',';
	}
	memcpy(nb + *len, s, sl + 1);
	*len += sl;
	*buf = nb;
	return 0;
}

static json_t *join_cell(char *buf)
{
	json_t *cell = buf ? json_string(buf) : NULL;
	free(buf);
	return cell;
}

static json_t *containers_field(const json_t *obj, const char *podspec_path, const char *key)
{
	json_t *cs = json_object_get(api_json_path(obj, podspec_path), "containers");
	char *buf = NULL;
	size_t len = 0;
	size_t i;
	json_t *c;
	json_array_foreach(cs, i, c)
	{
		const char *s = json_string_value(json_object_get(c, key));
		if (s && join_append(&buf, &len, s) != 0) {
			free(buf);
			return NULL;
		}
	}
	return join_cell(buf);
}

json_t *api__cell_containers(const json_t *obj, const char *podspec_path)
{
	return containers_field(obj, podspec_path, "name");
}

json_t *api__cell_images(const json_t *obj, const char *podspec_path)
{
	return containers_field(obj, podspec_path, "image");
}

static int append_map(char **buf, size_t *len, const json_t *map)
{
	const char *key;
	json_t *val;
	json_object_foreach((json_t *)map, key, val)
	{
		const char *v = json_string_value(val);
		size_t n = strlen(key) + (v ? strlen(v) : 0) + 2;
		char *kv = malloc(n);
		if (!kv) {
			return -ENOMEM;
		}
		snprintf(kv, n, "%s=%s", key, v ? v : "");
		int rv = join_append(buf, len, kv);
		free(kv);
		if (rv != 0) {
			return rv;
		}
	}
	return 0;
}

json_t *api__cell_string_map(const json_t *obj, const char *path)
{
	json_t *map = api_json_path(obj, path);
	char *buf = NULL;
	size_t len = 0;
	if (json_is_object(map) && append_map(&buf, &len, map) != 0) {
		free(buf);
		return NULL;
	}
	return buf ? join_cell(buf) : json_string("<none>");
}

json_t *api__cell_selector(const json_t *obj, const char *path)
{
	json_t *sel = api_json_path(obj, path);
	char *buf = NULL;
	size_t len = 0;
	if (!json_is_object(sel)) {
		return json_string("<none>");
	}
	if (append_map(&buf, &len, json_object_get(sel, "matchLabels")) != 0) {
		goto err;
	}
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(sel, "matchExpressions"), i, e)
	{
		const char *key = json_string_value(json_object_get(e, "key"));
		const char *op = json_string_value(json_object_get(e, "operator"));
		char tmp[512];
		if (!key || !op) {
			continue;
		}
		if (strcmp(op, "Exists") == 0) {
			snprintf(tmp, sizeof(tmp), "%s", key);
		} else if (strcmp(op, "DoesNotExist") == 0) {
			snprintf(tmp, sizeof(tmp), "!%s", key);
		} else {
			char vals[400] = "";
			size_t vl = 0;
			size_t j;
			json_t *v;
			json_array_foreach(json_object_get(e, "values"), j, v)
			{
				const char *s = json_string_value(v);
				if (s) {
					vl += (size_t)snprintf(vals + vl, sizeof(vals) - vl, "%s%s",
							       j ? "," : "", s);
					if (vl >= sizeof(vals)) {
						vl = sizeof(vals) - 1;
					}
				}
			}
			snprintf(tmp, sizeof(tmp), "%s %s (%s)", key,
				 strcmp(op, "In") == 0 ? "in" : "notin", vals);
		}
		if (join_append(&buf, &len, tmp) != 0) {
			goto err;
		}
	}
	return buf ? join_cell(buf) : json_string("<none>");
err:
	free(buf);
	return NULL;
}

int api__immutable(const json_t *old_obj, const json_t *new_obj, const char *path,
		   struct api_errors *errs)
{
	json_t *a = api_json_path(old_obj, path);
	json_t *b = api_json_path(new_obj, path);
	/* An explicit null is the same as an absent field. */
	if (json_is_null(a)) {
		a = NULL;
	}
	if (json_is_null(b)) {
		b = NULL;
	}
	if (a == b || (a && b && json_equal(a, b))) {
		return 0;
	}
	return api_errors_add(errs, API_CAUSE_INVALID, path, b ? b : json_null(),
			      "field is immutable");
}
