/* Validation of API objects against the registry and the schema tables.
 *
 * Paths and messages follow Kubernetes' field errors so that a 422 Status
 * built from them reads like the real API server's: the field path uses
 * dots for fields, [i] for list items and [key] for map entries. */
#include "src/api/validate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/api/kinds/kinds.h"

/* ---------------------------------------------------------------- errors */

void api_errors_init(struct api_errors *e)
{
	memset(e, 0, sizeof(*e));
}

void api_errors_close(struct api_errors *e)
{
	if (!e) {
		return;
	}
	for (size_t i = 0; i < e->n; i++) {
		free(e->causes[i].field);
		free(e->causes[i].message);
	}
	for (size_t i = 0; i < e->n_unknown; i++) {
		free(e->unknown[i]);
	}
	free(e->causes);
	free(e->unknown);
	memset(e, 0, sizeof(*e));
}

const char *api_cause_reason_name(enum api_cause_reason reason)
{
	switch (reason) {
	case API_CAUSE_REQUIRED:
		return "FieldValueRequired";
	case API_CAUSE_INVALID:
		return "FieldValueInvalid";
	case API_CAUSE_NOT_SUPPORTED:
		return "FieldValueNotSupported";
	case API_CAUSE_TYPE_INVALID:
		return "FieldValueTypeInvalid";
	case API_CAUSE_DUPLICATE:
		return "FieldValueDuplicate";
	case API_CAUSE_FORBIDDEN:
		return "FieldValueForbidden";
	case API_CAUSE_TOO_LONG:
		return "FieldValueTooLong";
	case API_CAUSE_TOO_MANY:
		return "FieldValueTooMany";
	}
	return "FieldValueInvalid";
}

/* Go's %#v of the value, as Kubernetes prints it: strings quoted, numbers
 * bare, anything else as compact JSON. */
static char *value_text(const json_t *v)
{
	if (!v) {
		return strdup("null");
	}
	return json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
}

int api_errors_add(struct api_errors *e, enum api_cause_reason reason, const char *field,
		   const json_t *value, const char *detail)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 8;
		struct api_cause *nc = realloc(e->causes, cap * sizeof(*nc));
		if (!nc) {
			return -ENOMEM;
		}
		e->causes = nc;
		e->cap = cap;
	}
	char *vt = NULL;
	char *msg = NULL;
	int n = -1;
	const char *d = detail ? detail : "";
	const char *sep = detail && *detail ? ": " : "";
	switch (reason) {
	case API_CAUSE_REQUIRED:
		n = asprintf(&msg, "Required value%s%s", sep, d);
		break;
	case API_CAUSE_FORBIDDEN:
		n = asprintf(&msg, "Forbidden%s%s", sep, d);
		break;
	case API_CAUSE_TOO_LONG:
		n = asprintf(&msg, "Too long%s%s", sep, d);
		break;
	case API_CAUSE_TOO_MANY:
		n = asprintf(&msg, "Too many%s%s", sep, d);
		break;
	case API_CAUSE_INVALID:
	case API_CAUSE_TYPE_INVALID:
	case API_CAUSE_NOT_SUPPORTED:
	case API_CAUSE_DUPLICATE:
		vt = value_text(value);
		if (!vt) {
			return -ENOMEM;
		}
		if (reason == API_CAUSE_NOT_SUPPORTED) {
			n = asprintf(&msg, "Unsupported value: %s%s%s", vt,
				     *sep ? ": supported values: " : "", d);
		} else if (reason == API_CAUSE_DUPLICATE) {
			n = asprintf(&msg, "Duplicate value: %s", vt);
		} else {
			n = asprintf(&msg, "Invalid value: %s%s%s", vt, sep, d);
		}
		free(vt);
		break;
	}
	char *f = strdup(field);
	if (n < 0 || !f) {
		free(f);
		if (n >= 0) {
			free(msg);
		}
		return -ENOMEM;
	}
	e->causes[e->n++] = (struct api_cause){ reason, f, msg };
	return 0;
}

static int add_unknown(struct api_errors *e, const char *path)
{
	if (e->n_unknown == e->cap_unknown) {
		size_t cap = e->cap_unknown ? e->cap_unknown * 2 : 4;
		char **nu = realloc(e->unknown, cap * sizeof(*nu));
		if (!nu) {
			return -ENOMEM;
		}
		e->unknown = nu;
		e->cap_unknown = cap;
	}
	char *p = strdup(path);
	if (!p) {
		return -ENOMEM;
	}
	e->unknown[e->n_unknown++] = p;
	return 0;
}

json_t *api_errors_causes_json(const struct api_errors *e)
{
	json_t *arr = json_array();
	if (!arr) {
		return NULL;
	}
	for (size_t i = 0; i < e->n; i++) {
		json_t *c = json_pack("{s:s, s:s, s:s}", "reason",
				      api_cause_reason_name(e->causes[i].reason), "message",
				      e->causes[i].message, "field", e->causes[i].field);
		if (!c || json_array_append_new(arr, c) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

char *api_errors_message(const struct api_errors *e, const char *kind, const char *name)
{
	size_t size = strlen(kind) + strlen(name) + 32;
	for (size_t i = 0; i < e->n; i++) {
		size += strlen(e->causes[i].field) + strlen(e->causes[i].message) + 4;
	}
	char *buf = malloc(size);
	if (!buf) {
		return NULL;
	}
	size_t len = (size_t)snprintf(buf, size, "%s \"%s\" is invalid: %s", kind, name,
				      e->n > 1 ? "[" : "");
	for (size_t i = 0; i < e->n; i++) {
		len += (size_t)snprintf(buf + len, size - len, "%s%s: %s", i ? ", " : "",
					e->causes[i].field, e->causes[i].message);
	}
	if (e->n > 1) {
		snprintf(buf + len, size - len, "]");
	}
	return buf;
}

/* ---------------------------------------------------------------- syntax */

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? over s[0..len). */
static bool label_syntax(const char *s, size_t len)
{
	if (len == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1])) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		if (!is_lower_alnum(s[i]) && s[i] != '-') {
			return false;
		}
	}
	return true;
}

const char *api_check_dns1123_label(const char *s)
{
	if (strlen(s) > 63) {
		return "must be no more than 63 characters";
	}
	if (!label_syntax(s, strlen(s))) {
		return "a lowercase RFC 1123 label must consist of lower case alphanumeric "
		       "characters or '-', and must start and end with an alphanumeric character "
		       "(e.g. 'my-name',  or '123-abc', regex used for validation is "
		       "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
	}
	return NULL;
}

const char *api_check_dns1123_subdomain(const char *s)
{
	size_t len = strlen(s);
	if (len > 253) {
		return "must be no more than 253 characters";
	}
	const char *p = s;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);
		if (!label_syntax(p, l)) {
			return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
			       "characters, '-' or '.', and must start and end with an alphanumeric "
			       "character (e.g. 'example.com', regex used for validation is "
			       "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
		}
		if (!dot) {
			return NULL;
		}
		p = dot + 1;
	}
}

const char *api_check_dns1035_label(const char *s)
{
	if (strlen(s) > 63) {
		return "must be no more than 63 characters";
	}
	if (!label_syntax(s, strlen(s)) || !(s[0] >= 'a' && s[0] <= 'z')) {
		return "a DNS-1035 label must consist of lower case alphanumeric characters or "
		       "'-', start with an alphabetic character, and end with an alphanumeric "
		       "character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
		       "'[a-z]([-a-z0-9]*[a-z0-9])?')";
	}
	return NULL;
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] over s[0..len). */
static bool name_part_syntax(const char *s, size_t len)
{
	if (len == 0 || !is_alnum(s[0]) || !is_alnum(s[len - 1])) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.') {
			return false;
		}
	}
	return true;
}

const char *api_check_qualified_name(const char *s)
{
	const char *slash = strchr(s, '/');
	const char *name = s;
	if (slash) {
		if (strchr(slash + 1, '/')) {
			return "a qualified name must consist of alphanumeric characters, '-', '_' or "
			       "'.', and must start and end with an alphanumeric character, with an "
			       "optional DNS subdomain prefix and '/'";
		}
		size_t plen = (size_t)(slash - s);
		char prefix[256];
		if (plen == 0) {
			return "prefix part must be non-empty";
		}
		if (plen > 253) {
			return "prefix part must be no more than 253 characters";
		}
		memcpy(prefix, s, plen);
		prefix[plen] = '\0';
		if (api_check_dns1123_subdomain(prefix)) {
			return "prefix part a lowercase RFC 1123 subdomain must consist of lower case "
			       "alphanumeric characters, '-' or '.', and must start and end with an "
			       "alphanumeric character";
		}
		name = slash + 1;
	}
	size_t nlen = strlen(name);
	if (nlen == 0) {
		return "name part must be non-empty";
	}
	if (nlen > 63) {
		return "name part must be no more than 63 characters";
	}
	if (!name_part_syntax(name, nlen)) {
		return "name part must consist of alphanumeric characters, '-', '_' or '.', and "
		       "must start and end with an alphanumeric character (e.g. 'MyName',  or "
		       "'my.name',  or '123-abc', regex used for validation is "
		       "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
	}
	return NULL;
}

const char *api_check_label_value(const char *s)
{
	size_t len = strlen(s);
	if (len == 0) {
		return NULL;
	}
	if (len > 63) {
		return "must be no more than 63 characters";
	}
	if (!name_part_syntax(s, len)) {
		return "a valid label must be an empty string or consist of alphanumeric "
		       "characters, '-', '_' or '.', and must start and end with an alphanumeric "
		       "character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
		       "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
	}
	return NULL;
}

/* A resource.Quantity: sign, digits with an optional fraction, then an
 * optional binary/decimal suffix or exponent. */
static bool quantity_syntax(const char *s)
{
	const char *p = s;
	if (*p == '+' || *p == '-') {
		p++;
	}
	size_t digits = 0;
	while (*p >= '0' && *p <= '9') {
		p++;
		digits++;
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			p++;
			digits++;
		}
	}
	if (digits == 0) {
		return false;
	}
	if (*p == '\0') {
		return true;
	}
	static const char *const suffixes[] = { "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u",
						"m", "k", "M", "G", "T", "P", "E", NULL };
	for (const char *const *sf = suffixes; *sf; sf++) {
		if (strcmp(p, *sf) == 0) {
			return true;
		}
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-') {
			p++;
		}
		if (!(*p >= '0' && *p <= '9')) {
			return false;
		}
		while (*p >= '0' && *p <= '9') {
			p++;
		}
		return *p == '\0';
	}
	return false;
}

static bool base64_syntax(const char *s)
{
	size_t len = strlen(s);
	if (len % 4 != 0) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '=') {
			if (i < len - 2 || (i == len - 2 && s[len - 1] != '=')) {
				return false;
			}
			continue;
		}
		if (!is_alnum(c) && c != '+' && c != '/') {
			return false;
		}
	}
	return true;
}

/* ---------------------------------------------------------------- schema */

struct path {
	char buf[1024];
	size_t len;
};

static void path_put(struct path *p, const char *s, size_t n)
{
	if (n > sizeof(p->buf) - 1 - p->len) {
		n = sizeof(p->buf) - 1 - p->len;
	}
	memcpy(p->buf + p->len, s, n);
	p->len += n;
}

/* Appends ".name", "[i]" or "[key]"; returns the old length to restore.
 * Runs for every field of every object validated, hence no snprintf. */
static size_t path_push(struct path *p, const char *fmt, const char *s, size_t i)
{
	size_t old = p->len;
	if (fmt[0] == '.') {
		if (p->len) {
			path_put(p, ".", 1);
		}
		path_put(p, s, strlen(s));
	} else if (s) {
		path_put(p, "[", 1);
		path_put(p, s, strlen(s));
		path_put(p, "]", 1);
	} else {
		char d[24];
		size_t k = sizeof(d);
		d[--k] = ']';
		do {
			d[--k] = (char)('0' + i % 10);
			i /= 10;
		} while (i != 0);
		d[--k] = '[';
		path_put(p, d + k, sizeof(d) - k);
	}
	p->buf[p->len] = '\0';
	return old;
}

static void path_pop(struct path *p, size_t old)
{
	p->len = old;
	p->buf[old] = '\0';
}

static int check_type(int type, const json_t *v, struct path *p, unsigned flags, struct api_errors *e);

static int two_digits(const char *s)
{
	if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9') {
		return -1;
	}
	return (s[0] - '0') * 10 + (s[1] - '0');
}

/* "YYYY-MM-DDTHH:MM:SSZ" in range, the form this server writes (every
 * creationTimestamp): accepted by api_parse_time() too, without its
 * sscanf. Anything else goes to api_parse_time(). */
static bool time_canonical(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
	for (size_t i = 0; i < sizeof(shape) - 1; i++) {
		if (shape[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != shape[i]) {
			return false;
		}
	}
	int mon = two_digits(s + 5), day = two_digits(s + 8);
	return s[sizeof(shape) - 1] == '\0' && mon >= 1 && mon <= 12 && day >= 1 && day <= 31 &&
	       two_digits(s + 11) <= 23 && two_digits(s + 14) <= 59 && two_digits(s + 17) <= 60;
}

static int type_error(struct api_errors *e, struct path *p, const json_t *v, enum api_vkind kind)
{
	char detail[64];
	snprintf(detail, sizeof(detail), "must be of type %s", api_vkind_name(kind));
	return api_errors_add(e, API_CAUSE_TYPE_INVALID, p->buf, v, detail);
}

static int check_value(enum api_vkind kind, uint16_t ref, const json_t *v, struct path *p,
		       unsigned flags, struct api_errors *e)
{
	if (json_is_null(v)) {
		return 0; /* null is the zero value of an optional field */
	}
	switch (kind) {
	case API_V_STRING:
		return json_is_string(v) ? 0 : type_error(e, p, v, kind);
	case API_V_INT32:
		if (!json_is_integer(v)) {
			return type_error(e, p, v, kind);
		}
		if (json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX) {
			return api_errors_add(e, API_CAUSE_INVALID, p->buf, v,
					      "must be a 32-bit integer");
		}
		return 0;
	case API_V_INT64:
		return json_is_integer(v) ? 0 : type_error(e, p, v, kind);
	case API_V_NUMBER:
		return json_is_number(v) ? 0 : type_error(e, p, v, kind);
	case API_V_BOOL:
		return json_is_boolean(v) ? 0 : type_error(e, p, v, kind);
	case API_V_INT_OR_STRING:
		return json_is_integer(v) || json_is_string(v) ? 0 : type_error(e, p, v, kind);
	case API_V_QUANTITY:
		if (json_is_number(v)) {
			return 0;
		}
		if (!json_is_string(v)) {
			return type_error(e, p, v, kind);
		}
		if (!quantity_syntax(json_string_value(v))) {
			return api_errors_add(e, API_CAUSE_INVALID, p->buf, v,
					      "quantities must match the regular expression "
					      "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'");
		}
		return 0;
	case API_V_TIME:
	case API_V_MICROTIME: {
		int64_t t;
		if (!json_is_string(v)) {
			return type_error(e, p, v, kind);
		}
		if (!time_canonical(json_string_value(v)) &&
		    api_parse_time(json_string_value(v), &t) != 0) {
			return api_errors_add(e, API_CAUSE_INVALID, p->buf, v,
					      "must be an RFC 3339 date-time");
		}
		return 0;
	}
	case API_V_BYTES:
		if (!json_is_string(v)) {
			return type_error(e, p, v, kind);
		}
		if (!base64_syntax(json_string_value(v))) {
			return api_errors_add(e, API_CAUSE_INVALID, p->buf, v,
					      "must be base64-encoded");
		}
		return 0;
	case API_V_ANY:
		return 0;
	case API_V_OBJECT:
		if (!json_is_object(v)) {
			return type_error(e, p, v, kind);
		}
		return check_type(ref, v, p, flags, e);
	case API_V_ARRAY: {
		if (!json_is_array(v)) {
			return type_error(e, p, v, kind);
		}
		const struct api_elem *el = api_elem_get(ref);
		size_t i;
		json_t *item;
		json_array_foreach(v, i, item)
		{
			size_t old = path_push(p, "[", NULL, i);
			int rv = check_value(el->kind, el->ref, item, p, flags, e);
			path_pop(p, old);
			if (rv != 0) {
				return rv;
			}
		}
		return 0;
	}
	case API_V_MAP: {
		if (!json_is_object(v)) {
			return type_error(e, p, v, kind);
		}
		const struct api_elem *el = api_elem_get(ref);
		const char *key;
		json_t *item;
		json_object_foreach((json_t *)v, key, item)
		{
			size_t old = path_push(p, "[", key, 0);
			int rv = check_value(el->kind, el->ref, item, p, flags, e);
			path_pop(p, old);
			if (rv != 0) {
				return rv;
			}
		}
		return 0;
	}
	case API_V_NONE:
		break;
	}
	return 0;
}

static int check_type(int type, const json_t *v, struct path *p, unsigned flags, struct api_errors *e)
{
	const struct api_type *t = api_type_get(type);
	int rv = 0;
	if (!t) {
		return 0;
	}
	/* Required fields first, in schema order, then the present ones. */
	for (uint16_t i = 0; i < t->n_fields && rv == 0; i++) {
		const struct api_field *f = &api_gen_fields[t->first_field + i];
		if (f->flags & API_F_REQUIRED) {
			json_t *fv = json_object_get(v, api_field_name(f));
			if (!fv || json_is_null(fv)) {
				size_t old = path_push(p, ".", api_field_name(f), 0);
				rv = api_errors_add(e, API_CAUSE_REQUIRED, p->buf, NULL, NULL);
				path_pop(p, old);
			}
		}
	}
	const char *key;
	json_t *fv;
	json_object_foreach((json_t *)v, key, fv)
	{
		if (rv != 0) {
			break;
		}
		const struct api_field *f = api_type_field(t, key);
		size_t old = path_push(p, ".", key, 0);
		if (f) {
			rv = check_value((enum api_vkind)f->kind, f->ref, fv, p, flags, e);
		} else if (flags & API_VALIDATE_UNKNOWN) {
			rv = add_unknown(e, p->buf);
		}
		path_pop(p, old);
	}
	return rv;
}

int api_validate_type(int type, const json_t *value, const char *path, unsigned flags,
		      struct api_errors *e)
{
	struct path p;
	p.len = (size_t)snprintf(p.buf, sizeof(p.buf), "%s", path);
	if (p.len >= sizeof(p.buf)) {
		p.len = sizeof(p.buf) - 1;
	}
	return check_value(API_V_OBJECT, (uint16_t)type, value, &p, flags, e);
}

/* ---------------------------------------------------------------- metadata */

#define ANNOTATIONS_MAX (256 * 1024)

static const char *check_name(enum api_name_rule rule, const char *name, bool prefix)
{
	char buf[300];
	/* A generateName prefix may end in '-': the random suffix follows. */
	if (prefix) {
		size_t len = strlen(name);
		if (len > 0 && len < sizeof(buf) && name[len - 1] == '-') {
			memcpy(buf, name, len + 1);
			buf[len - 1] = 'a';
			name = buf;
		}
	}
	switch (rule) {
	case API_NAME_DNS_LABEL:
		return api_check_dns1123_label(name);
	case API_NAME_DNS1035_LABEL:
		return api_check_dns1035_label(name);
	case API_NAME_DNS_SUBDOMAIN:
		break;
	}
	return api_check_dns1123_subdomain(name);
}

static int check_metadata(const struct api_kind *k, const json_t *meta, unsigned flags,
			  struct api_errors *e)
{
	int rv = 0;
	json_t *name = json_object_get(meta, "name");
	json_t *gen = json_object_get(meta, "generateName");
	const char *detail;
	if (json_is_string(name) && json_string_length(name) > 0) {
		detail = check_name(k->name_rule, json_string_value(name), false);
		if (detail) {
			rv = api_errors_add(e, API_CAUSE_INVALID, "metadata.name", name, detail);
		}
	} else if (json_is_string(gen) && json_string_length(gen) > 0) {
		detail = check_name(k->name_rule, json_string_value(gen), true);
		if (detail) {
			rv = api_errors_add(e, API_CAUSE_INVALID, "metadata.generateName", gen, detail);
		}
	} else if (!(flags & API_VALIDATE_NO_NAME)) {
		rv = api_errors_add(e, API_CAUSE_REQUIRED, "metadata.name", NULL,
				    "name or generateName is required");
	}
	if (rv != 0) {
		return rv;
	}

	json_t *ns = json_object_get(meta, "namespace");
	const char *nss = json_string_value(ns);
	if (k->namespaced) {
		if (!nss || !*nss) {
			rv = api_errors_add(e, API_CAUSE_REQUIRED, "metadata.namespace", NULL, NULL);
		} else if ((detail = api_check_dns1123_label(nss))) {
			rv = api_errors_add(e, API_CAUSE_INVALID, "metadata.namespace", ns, detail);
		}
	} else if (nss && *nss) {
		rv = api_errors_add(e, API_CAUSE_FORBIDDEN, "metadata.namespace", NULL,
				    "not allowed on this type");
	}
	if (rv != 0) {
		return rv;
	}

	const char *key;
	json_t *v;
	json_object_foreach(json_object_get(meta, "labels"), key, v)
	{
		if ((detail = api_check_qualified_name(key))) {
			json_t *kv = json_string(key);
			rv = kv ? api_errors_add(e, API_CAUSE_INVALID, "metadata.labels", kv, detail) : -ENOMEM;
			json_decref(kv);
		} else if (json_is_string(v) && (detail = api_check_label_value(json_string_value(v)))) {
			rv = api_errors_add(e, API_CAUSE_INVALID, "metadata.labels", v, detail);
		}
		if (rv != 0) {
			return rv;
		}
	}

	size_t total = 0;
	json_object_foreach(json_object_get(meta, "annotations"), key, v)
	{
		char lower[320];
		size_t kl = strlen(key);
		total += kl + (json_is_string(v) ? json_string_length(v) : 0);
		/* Kubernetes checks annotation keys in lower case. */
		if (kl < sizeof(lower)) {
			for (size_t i = 0; i <= kl; i++) {
				char c = key[i];
				lower[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
			}
			detail = api_check_qualified_name(lower);
		} else {
			detail = "name part must be no more than 63 characters";
		}
		if (detail) {
			json_t *kv = json_string(key);
			rv = kv ? api_errors_add(e, API_CAUSE_INVALID, "metadata.annotations", kv, detail) : -ENOMEM;
			json_decref(kv);
			if (rv != 0) {
				return rv;
			}
		}
	}
	if (total > ANNOTATIONS_MAX) {
		char msg[64];
		snprintf(msg, sizeof(msg), "must have at most %d bytes", ANNOTATIONS_MAX);
		rv = api_errors_add(e, API_CAUSE_TOO_LONG, "metadata.annotations", NULL, msg);
		if (rv != 0) {
			return rv;
		}
	}

	size_t i;
	json_array_foreach(json_object_get(meta, "finalizers"), i, v)
	{
		if (json_is_string(v) && (detail = api_check_qualified_name(json_string_value(v)))) {
			char field[64];
			snprintf(field, sizeof(field), "metadata.finalizers[%zu]", i);
			rv = api_errors_add(e, API_CAUSE_INVALID, field, v, detail);
			if (rv != 0) {
				return rv;
			}
		}
	}
	return 0;
}

int api_validate(const struct api_kind *k, const json_t *obj, unsigned flags, struct api_errors *e)
{
	int rv;
	if (!json_is_object(obj)) {
		return api_errors_add(e, API_CAUSE_TYPE_INVALID, "", obj, "must be of type object");
	}
	const char *want_av = api_kind_api_version(k);
	json_t *av = json_object_get(obj, "apiVersion");
	json_t *kind = json_object_get(obj, "kind");
	if (!json_is_string(av) || json_string_length(av) == 0) {
		rv = api_errors_add(e, API_CAUSE_REQUIRED, "apiVersion", NULL, NULL);
	} else if (strcmp(json_string_value(av), want_av) != 0) {
		rv = api_errors_add(e, API_CAUSE_INVALID, "apiVersion", av, want_av);
	} else {
		rv = 0;
	}
	if (rv != 0) {
		return rv;
	}
	if (!json_is_string(kind) || json_string_length(kind) == 0) {
		rv = api_errors_add(e, API_CAUSE_REQUIRED, "kind", NULL, NULL);
	} else if (strcmp(json_string_value(kind), k->kind) != 0) {
		rv = api_errors_add(e, API_CAUSE_INVALID, "kind", kind, k->kind);
	}
	if (rv != 0) {
		return rv;
	}
	json_t *meta = json_object_get(obj, "metadata");
	if (!json_is_object(meta)) {
		rv = meta ? api_errors_add(e, API_CAUSE_TYPE_INVALID, "metadata", meta,
					   "must be of type object")
			  : api_errors_add(e, API_CAUSE_REQUIRED, "metadata.name", NULL,
					   "name or generateName is required");
		if (rv != 0) {
			return rv;
		}
	} else if ((rv = check_metadata(k, meta, flags, e)) != 0) {
		return rv;
	}
	return api_validate_type(k->type, obj, "", flags, e);
}

static int immutable_rule(const json_t *old_obj, const json_t *new_obj,
			  const struct api_immutable *im, struct api_errors *e)
{
	if (im->flags & API_IMM_ONCE_SET) {
		json_t *a = api_json_path(old_obj, im->path);
		if (!a || json_is_null(a) || (json_is_string(a) && json_string_length(a) == 0)) {
			return 0;
		}
	}
	return api__immutable(old_obj, new_obj, im->path, e);
}

int api_validate_update(const struct api_kind *k, const json_t *old_obj, const json_t *new_obj,
			unsigned flags, struct api_errors *e)
{
	int rv = api_validate(k, new_obj, flags, e);
	if (rv != 0) {
		return rv;
	}
	/* uid and creationTimestamp may be left out of an update body (the
	 * handler keeps the stored ones); a different value is an error. */
	static const char *const meta_immutable[] = {
		"metadata.name", "metadata.namespace", "metadata.uid", "metadata.creationTimestamp", NULL,
	};
	for (const char *const *m = meta_immutable; *m; m++) {
		struct api_immutable im = { *m, API_IMM_ONCE_SET };
		if (m - meta_immutable >= 2 && !api_json_path(new_obj, *m)) {
			continue;
		}
		if ((rv = immutable_rule(old_obj, new_obj, &im, e)) != 0) {
			return rv;
		}
	}
	for (const struct api_immutable *im = k->immutable; im && im->path; im++) {
		if ((rv = immutable_rule(old_obj, new_obj, im, e)) != 0) {
			return rv;
		}
	}
	if (k->validate_update) {
		rv = k->validate_update(old_obj, new_obj, e);
	}
	return rv;
}
