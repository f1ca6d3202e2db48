#include "src/lib/config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "src/lib/args.h"
#include "src/lib/log.h"

/* getopt_long values of the built-in options; table options use
 * OPT_TABLE + index. */
enum {
	OPT_CONFIG = 0x100,
	OPT_TABLE = 0x200,
};

static void set_msg(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_msg(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static void *field(const struct config_option *o, void *values)
{
	return (char *)values + o->offset;
}

static const struct config_option *find_option(const struct config_spec *spec,
					       const char *name)
{
	for (size_t i = 0; i < spec->n_options; i++) {
		if (strcmp(spec->options[i].name, name) == 0)
			return &spec->options[i];
	}
	return NULL;
}

static void strings_clear(struct config_strings *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int strings_append(struct config_strings *l, const char *s)
{
	char **v;
	char *copy;

	copy = strdup(s);
	if (copy == NULL)
		return -ENOMEM;
	v = realloc(l->v, (l->n + 1) * sizeof *v);
	if (v == NULL) {
		free(copy);
		return -ENOMEM;
	}
	v[l->n++] = copy;
	l->v = v;
	return 0;
}

static uint64_t option_max(const struct config_option *o)
{
	return o->max == 0 ? UINT64_MAX : o->max;
}

/* Parses @text into the option's value. For lists it appends. */
static int set_value(const struct config_option *o, void *values,
		     const char *text, char *errmsg, size_t errmsg_len)
{
	void *p = field(o, values);
	uint64_t n;
	bool b;
	enum log_level level;
	char *copy;
	int rv;

	switch (o->type) {
	case CONFIG_STRING:
		copy = strdup(text);
		if (copy == NULL)
			return -ENOMEM;
		free(*(char **)p);
		*(char **)p = copy;
		return 0;
	case CONFIG_STRINGS:
		return strings_append(p, text);
	case CONFIG_BOOL:
		if (args_parse_bool(text, &b) != 0) {
			set_msg(errmsg, errmsg_len,
				"invalid boolean '%s' (use true or false)", text);
			return -EINVAL;
		}
		*(bool *)p = b;
		return 0;
	case CONFIG_UINT:
		rv = args_parse_uint(text, option_max(o), &n);
		if (rv == -ERANGE) {
			set_msg(errmsg, errmsg_len, "'%s' is too large (at most %" PRIu64 ")",
				text, option_max(o));
			return -EINVAL;
		}
		if (rv != 0) {
			set_msg(errmsg, errmsg_len,
				"invalid number '%s' (use a non-negative integer)", text);
			return -EINVAL;
		}
		*(uint64_t *)p = n;
		return 0;
	case CONFIG_DURATION:
		rv = args_parse_duration_ms(text, &n);
		if (rv == 0 && n > option_max(o))
			rv = -ERANGE;
		if (rv == -ERANGE) {
			set_msg(errmsg, errmsg_len, "'%s' is too long (at most %" PRIu64 "ms)",
				text, option_max(o));
			return -EINVAL;
		}
		if (rv != 0) {
			set_msg(errmsg, errmsg_len,
				"invalid duration '%s' (use a number with ms, s, m or h, e.g. 500ms)",
				text);
			return -EINVAL;
		}
		*(uint64_t *)p = n;
		return 0;
	case CONFIG_SIZE:
		rv = args_parse_size(text, &n);
		if (rv == 0 && n > option_max(o))
			rv = -ERANGE;
		if (rv == -ERANGE) {
			set_msg(errmsg, errmsg_len, "'%s' is too large (at most %" PRIu64 " bytes)",
				text, option_max(o));
			return -EINVAL;
		}
		if (rv != 0) {
			set_msg(errmsg, errmsg_len,
				"invalid size '%s' (use a number with B, K, M, G, Ki, Mi or Gi)",
				text);
			return -EINVAL;
		}
		*(uint64_t *)p = n;
		return 0;
	case CONFIG_LOG_LEVEL:
		if (log_level_parse(text, &level) != 0) {
			set_msg(errmsg, errmsg_len,
				"invalid log level '%s' (use error, warn, info or debug)", text);
			return -EINVAL;
		}
		*(enum log_level *)p = level;
		return 0;
	}
	set_msg(errmsg, errmsg_len, "option has an unknown type");
	return -EINVAL;
}

/* Resets an option to "nothing": unset string, empty list, 0, false. */
static void clear_value(const struct config_option *o, void *values)
{
	void *p = field(o, values);

	switch (o->type) {
	case CONFIG_STRING:
		free(*(char **)p);
		*(char **)p = NULL;
		break;
	case CONFIG_STRINGS:
		strings_clear(p);
		break;
	case CONFIG_BOOL:
		*(bool *)p = false;
		break;
	case CONFIG_UINT:
	case CONFIG_DURATION:
	case CONFIG_SIZE:
		*(uint64_t *)p = 0;
		break;
	case CONFIG_LOG_LEVEL:
		*(enum log_level *)p = LOG_LEVEL_INFO;
		break;
	}
}

int config_set(const struct config_spec *spec, void *values, const char *name,
	       const char *text, char *errmsg, size_t errmsg_len)
{
	const struct config_option *o = find_option(spec, name);

	if (o == NULL) {
		set_msg(errmsg, errmsg_len, "unknown option '%s'", name);
		return -ENOENT;
	}
	return set_value(o, values, text, errmsg, errmsg_len);
}

int config_set_defaults(const struct config_spec *spec, void *values,
			char *errmsg, size_t errmsg_len)
{
	char why[256];
	int rv;

	for (size_t i = 0; i < spec->n_options; i++) {
		const struct config_option *o = &spec->options[i];

		clear_value(o, values);
		if (o->def == NULL)
			continue;
		rv = set_value(o, values, o->def, why, sizeof why);
		if (rv != 0) {
			set_msg(errmsg, errmsg_len, "default of '%s': %s", o->name,
				rv == -ENOMEM ? "out of memory" : why);
			return rv;
		}
	}
	return 0;
}

void config_free(const struct config_spec *spec, void *values)
{
	for (size_t i = 0; i < spec->n_options; i++) {
		const struct config_option *o = &spec->options[i];

		if (o->type == CONFIG_STRING || o->type == CONFIG_STRINGS)
			clear_value(o, values);
	}
}

/* ------------------------------------------------------------ YAML file */

static const char *type_name(enum config_type t)
{
	switch (t) {
	case CONFIG_STRING:
		return "a string";
	case CONFIG_STRINGS:
		return "a list of strings";
	case CONFIG_BOOL:
		return "a boolean";
	case CONFIG_UINT:
		return "a number";
	case CONFIG_DURATION:
		return "a duration";
	case CONFIG_SIZE:
		return "a size";
	case CONFIG_LOG_LEVEL:
		return "a log level";
	}
	return "a value";
}

static bool is_null_scalar(const yaml_node_t *n)
{
	const char *v = (const char *)n->data.scalar.value;

	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	       strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static unsigned long line_of(const yaml_node_t *n)
{
	return (unsigned long)n->start_mark.line + 1;
}

/* Applies one key's value node. */
static int load_value(const struct config_option *o, void *values,
		      yaml_document_t *doc, yaml_node_t *v, const char *path,
		      char *errmsg, size_t errmsg_len)
{
	char why[256];
	int rv;

	if (v->type == YAML_SCALAR_NODE && is_null_scalar(v)) {
		if (o->type == CONFIG_STRING || o->type == CONFIG_STRINGS) {
			clear_value(o, values);
			return 0;
		}
		set_msg(errmsg, errmsg_len, "%s:%lu: key '%s': missing value (expected %s)",
			path, line_of(v), o->name, type_name(o->type));
		return -EINVAL;
	}
	if (v->type == YAML_SCALAR_NODE) {
		if (o->type == CONFIG_STRINGS)
			clear_value(o, values);
		rv = set_value(o, values, (const char *)v->data.scalar.value, why, sizeof why);
		if (rv == -EINVAL)
			set_msg(errmsg, errmsg_len, "%s:%lu: key '%s': %s", path,
				line_of(v), o->name, why);
		return rv;
	}
	if (v->type == YAML_SEQUENCE_NODE && o->type == CONFIG_STRINGS) {
		clear_value(o, values);
		for (yaml_node_item_t *it = v->data.sequence.items.start;
		     it < v->data.sequence.items.top; it++) {
			yaml_node_t *item = yaml_document_get_node(doc, *it);

			if (item == NULL || item->type != YAML_SCALAR_NODE) {
				set_msg(errmsg, errmsg_len,
					"%s:%lu: key '%s': list items must be strings",
					path, item ? line_of(item) : line_of(v), o->name);
				return -EINVAL;
			}
			rv = set_value(o, values, (const char *)item->data.scalar.value,
				       why, sizeof why);
			if (rv != 0)
				return rv;
		}
		return 0;
	}
	set_msg(errmsg, errmsg_len, "%s:%lu: key '%s': expected %s, got a %s", path,
		line_of(v), o->name, type_name(o->type),
		v->type == YAML_SEQUENCE_NODE ? "list" : "mapping");
	return -EINVAL;
}

static int load_document(const struct config_spec *spec, void *values,
			 yaml_document_t *doc, const char *path, char *errmsg,
			 size_t errmsg_len)
{
	yaml_node_t *root = yaml_document_get_root_node(doc);
	bool *seen;
	int rv = 0;

	if (root == NULL)
		return 0; /* an empty file */
	if (root->type == YAML_SCALAR_NODE && is_null_scalar(root))
		return 0;
	if (root->type != YAML_MAPPING_NODE) {
		set_msg(errmsg, errmsg_len, "%s:%lu: expected a mapping of keys to values",
			path, line_of(root));
		return -EINVAL;
	}
	seen = calloc(spec->n_options + 1, sizeof *seen);
	if (seen == NULL)
		return -ENOMEM;
	for (yaml_node_pair_t *pair = root->data.mapping.pairs.start;
	     pair < root->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(doc, pair->value);
		const struct config_option *o;
		const char *name;

		if (k == NULL || v == NULL || k->type != YAML_SCALAR_NODE) {
			set_msg(errmsg, errmsg_len, "%s:%lu: keys must be strings", path,
				k ? line_of(k) : line_of(root));
			rv = -EINVAL;
			break;
		}
		name = (const char *)k->data.scalar.value;
		o = find_option(spec, name);
		if (o == NULL) {
			set_msg(errmsg, errmsg_len, "%s:%lu: unknown key '%s'", path,
				line_of(k), name);
			rv = -EINVAL;
			break;
		}
		if (seen[o - spec->options]) {
			set_msg(errmsg, errmsg_len, "%s:%lu: duplicate key '%s'", path,
				line_of(k), name);
			rv = -EINVAL;
			break;
		}
		seen[o - spec->options] = true;
		rv = load_value(o, values, doc, v, path, errmsg, errmsg_len);
		if (rv != 0)
			break;
	}
	free(seen);
	return rv;
}

int config_load_file(const struct config_spec *spec, void *values,
		     const char *path, char *errmsg, size_t errmsg_len)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	FILE *f;
	int rv;

	f = fopen(path, "re");
	if (f == NULL) {
		rv = -errno;
		set_msg(errmsg, errmsg_len, "cannot read config file %s: %s", path,
			strerror(-rv));
		return rv;
	}
	if (!yaml_parser_initialize(&parser)) {
		fclose(f);
		return -ENOMEM;
	}
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		if (parser.error == YAML_MEMORY_ERROR) {
			rv = -ENOMEM;
		} else if (parser.error == YAML_READER_ERROR && ferror(f)) {
			rv = -EIO;
			set_msg(errmsg, errmsg_len, "cannot read config file %s", path);
		} else {
			rv = -EINVAL;
			set_msg(errmsg, errmsg_len, "%s:%lu: YAML syntax error: %s%s%s", path,
				(unsigned long)parser.problem_mark.line + 1,
				parser.problem ? parser.problem : "invalid document",
				parser.context ? " " : "",
				parser.context ? parser.context : "");
		}
		goto err_after_parser;
	}
	rv = load_document(spec, values, &doc, path, errmsg, errmsg_len);
	if (rv == -ENOMEM)
		set_msg(errmsg, errmsg_len, "out of memory");
	yaml_document_delete(&doc);
	/* A second document ("---") is not a config file of ours. */
	if (rv == 0) {
		if (!yaml_parser_load(&parser, &doc)) {
			rv = -EINVAL;
			set_msg(errmsg, errmsg_len, "%s:%lu: YAML syntax error: %s", path,
				(unsigned long)parser.problem_mark.line + 1,
				parser.problem ? parser.problem : "invalid document");
		} else {
			if (yaml_document_get_root_node(&doc) != NULL) {
				rv = -EINVAL;
				set_msg(errmsg, errmsg_len,
					"%s:%lu: expected one YAML document, found more",
					path, (unsigned long)doc.start_mark.line + 1);
			}
			yaml_document_delete(&doc);
		}
	}
err_after_parser:
	yaml_parser_delete(&parser);
	fclose(f);
	return rv;
}

/* ------------------------------------------------------------ flags */

static struct option *build_longopts(const struct config_spec *spec)
{
	struct option *opts;
	size_t i;

	opts = calloc(spec->n_options + 4, sizeof *opts);
	if (opts == NULL)
		return NULL;
	for (i = 0; i < spec->n_options; i++) {
		opts[i].name = spec->options[i].name;
		opts[i].has_arg = spec->options[i].type == CONFIG_BOOL ? optional_argument
								      : required_argument;
		opts[i].val = OPT_TABLE + (int)i;
	}
	opts[i++] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
	opts[i++] = (struct option){"help", no_argument, NULL, 'h'};
	opts[i++] = (struct option){"version", no_argument, NULL, 'V'};
	return opts;
}

/* Describes getopt_long's complaint about argv[optind - 1]. */
static void bad_flag(int c, int argc, char *argv[], char *errmsg, size_t errmsg_len)
{
	const char *arg = optind - 1 < argc && optind >= 1 ? argv[optind - 1] : "?";

	if (c == ':')
		set_msg(errmsg, errmsg_len, "option '%s' needs an argument", arg);
	else if (optopt != 0 && optopt < 0x100 && arg[0] == '-' && arg[1] != '-')
		set_msg(errmsg, errmsg_len, "unknown option '-%c'", optopt);
	else if (optopt >= OPT_TABLE || optopt == 'h' || optopt == 'V')
		set_msg(errmsg, errmsg_len, "option '%s' takes no argument", arg);
	else
		set_msg(errmsg, errmsg_len, "unknown option '%s'", arg);
}

int config_parse(const struct config_spec *spec, void *values, int argc,
		 char *argv[], enum config_action *ret_action,
		 const char **ret_config_path, char *errmsg, size_t errmsg_len)
{
	enum config_action action = CONFIG_RUN;
	const char *path = NULL;
	bool explicit_path = false;
	struct option *longopts;
	bool *list_from_flag = NULL;
	char why[256];
	int c, rv;

	longopts = build_longopts(spec);
	if (longopts == NULL)
		return -ENOMEM;
	rv = config_set_defaults(spec, values, errmsg, errmsg_len);
	if (rv != 0)
		goto out;

	/* First pass: find --config, --help, --version and reject bad flags
	 * before reading any file. */
	opterr = 0;
	optind = 0; /* glibc: reinitialise fully */
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		if (c == 'h') {
			action = CONFIG_HELP;
		} else if (c == 'V') {
			if (action == CONFIG_RUN)
				action = CONFIG_VERSION;
		} else if (c == OPT_CONFIG) {
			path = optarg;
			explicit_path = true;
		} else if (c == '?' || c == ':') {
			bad_flag(c, argc, argv, errmsg, errmsg_len);
			rv = -EINVAL;
			goto out;
		}
	}
	if (action == CONFIG_RUN && optind < argc) {
		set_msg(errmsg, errmsg_len, "unexpected argument '%s'", argv[optind]);
		rv = -EINVAL;
		goto out;
	}
	if (action != CONFIG_RUN)
		goto done;

	if (explicit_path && path[0] == '\0') {
		path = NULL; /* --config '' reads no file */
	} else if (!explicit_path && spec->default_file != NULL) {
		FILE *f = fopen(spec->default_file, "re");

		if (f != NULL) {
			fclose(f);
			path = spec->default_file;
		} else if (errno != ENOENT) {
			path = spec->default_file; /* report why it is unreadable */
		}
	}
	if (path != NULL) {
		rv = config_load_file(spec, values, path, errmsg, errmsg_len);
		if (rv == -ENOMEM)
			goto out;
		if (rv == -ENOENT) {
			set_msg(errmsg, errmsg_len, "config file %s does not exist", path);
			goto out;
		}
		if (rv != 0) {
			rv = -EINVAL;
			goto out;
		}
	}

	/* Second pass: the flags win over the file. */
	list_from_flag = calloc(spec->n_options + 1, sizeof *list_from_flag);
	if (list_from_flag == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	optind = 0;
	while ((c = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		const struct config_option *o;
		size_t i;

		if (c < OPT_TABLE)
			continue;
		i = (size_t)(c - OPT_TABLE);
		o = &spec->options[i];
		if (o->type == CONFIG_STRINGS && !list_from_flag[i]) {
			clear_value(o, values);
			list_from_flag[i] = true;
		}
		rv = set_value(o, values, o->type == CONFIG_BOOL && optarg == NULL ? "true" : optarg,
			       why, sizeof why);
		if (rv == -ENOMEM)
			goto out;
		if (rv != 0) {
			set_msg(errmsg, errmsg_len, "--%s: %s", o->name, why);
			goto out;
		}
	}
done:
	*ret_action = action;
	if (ret_config_path != NULL)
		*ret_config_path = path;
	rv = 0;
out:
	if (rv == -ENOMEM)
		set_msg(errmsg, errmsg_len, "out of memory");
	optind = 0;
	free(list_from_flag);
	free(longopts);
	return rv;
}

/* ------------------------------------------------------------ help */

/* Prints @text from column @col, wrapped before column 80, continuing
 * lines at @indent. */
static void print_wrapped(FILE *f, const char *text, size_t col, size_t indent)
{
	const char *p = text;

	while (*p != '\0') {
		const char *word = p;
		size_t len;

		while (*p != '\0' && *p != ' ')
			p++;
		len = (size_t)(p - word);
		if (col > indent && col + 1 + len > 79) {
			fprintf(f, "\n%*s", (int)indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', f);
			col++;
		}
		fwrite(word, 1, len, f);
		col += len;
		while (*p == ' ')
			p++;
	}
	fputc('\n', f);
}

static void print_option(FILE *f, const char *shortname, const char *name,
			 const char *arg, const char *help)
{
	char head[96];
	int n;

	n = snprintf(head, sizeof head, "  %s%s%s%s%s", shortname ? shortname : "    ",
		     "--", name, arg ? " " : "", arg ? arg : "");
	if (n < 0)
		return;
	if (n < 29) {
		fprintf(f, "%-30s", head);
		print_wrapped(f, help, 30, 30);
	} else {
		fprintf(f, "%s\n%30s", head, "");
		print_wrapped(f, help, 30, 30);
	}
}

void config_print_help(const struct config_spec *spec, FILE *f)
{
	char help[1024];

	fprintf(f, "Usage: %s [OPTION]...\n", spec->prog);
	if (spec->summary != NULL)
		fprintf(f, "%s", spec->summary);
	fprintf(f, "\nEach option below is also a key of the YAML config file");
	if (spec->default_file != NULL)
		fprintf(f, "\n%s (see --config)", spec->default_file);
	fprintf(f, "; flags win over the file.\n\n");
	for (size_t i = 0; i < spec->n_options; i++) {
		const struct config_option *o = &spec->options[i];
		const char *suffix = "";

		if (o->type == CONFIG_STRINGS)
			suffix = " (repeatable)";
		if (o->def != NULL && o->def[0] != '\0')
			snprintf(help, sizeof help, "%s%s (default: %s)", o->help, suffix, o->def);
		else
			snprintf(help, sizeof help, "%s%s", o->help, suffix);
		print_option(f, NULL, o->name, o->type == CONFIG_BOOL ? NULL : o->arg, help);
	}
	fputc('\n', f);
	if (spec->default_file != NULL)
		snprintf(help, sizeof help,
			 "read settings from FILE (default: %s if it exists; '' for none)",
			 spec->default_file);
	else
		snprintf(help, sizeof help, "read settings from FILE");
	print_option(f, NULL, "config", "FILE", help);
	print_option(f, "-h, ", "help", NULL, "show this help and exit");
	print_option(f, "-V, ", "version", NULL, "show the version and exit");
	if (spec->footer != NULL)
		fprintf(f, "\n%s", spec->footer);
}
