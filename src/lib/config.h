/* Table-driven settings: one table gives each option's flag, config-file
 * key, type, default and help, so that --help, the YAML file and the man
 * page stay in step.
 *
 * A program describes its settings as an array of struct config_option
 * whose values live in a struct of its own (found through offsetof). Then
 * config_parse() applies, in this order: the defaults, the YAML file (the
 * --config flag or the spec's default file), the command-line flags. Every
 * flag is also a key of the file, except --config, --help and --version,
 * which config_parse() adds itself.
 *
 * The module never prints except through config_print_help(); errors come
 * back as one line in the caller's buffer.
 */
#ifndef CAPSTAN_CONFIG_H
#define CAPSTAN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum config_type {
	CONFIG_STRING,    /* char * (owned by the value struct; NULL = unset) */
	CONFIG_STRINGS,   /* struct config_strings; repeatable flag, YAML list */
	CONFIG_BOOL,      /* bool; a flag without argument, or --flag=false */
	CONFIG_UINT,      /* uint64_t no greater than option.max */
	CONFIG_DURATION,  /* uint64_t milliseconds ("100ms", "5m", "2h") */
	CONFIG_SIZE,      /* uint64_t bytes ("64Mi", "1G") */
	CONFIG_LOG_LEVEL, /* enum log_level */
};

/* A list of strings; owned by the value struct. */
struct config_strings {
	char **v;
	size_t n;
};

struct config_option {
	const char *name;      /* flag without "--" and config key */
	enum config_type type;
	const char *def;       /* default in the syntax of the flag; NULL:
				  unset (strings), empty (lists), 0/false */
	const char *arg;       /* argument name in --help, e.g. "DIR" */
	const char *help;      /* one sentence; the default is appended */
	size_t offset;         /* offsetof the value in the program's struct */
	uint64_t max;          /* CONFIG_UINT/DURATION/SIZE: upper bound;
				  0 = UINT64_MAX */
};

struct config_spec {
	const char *prog;         /* "capstand" */
	const char *summary;      /* lines after the usage line in --help */
	const char *default_file; /* read if it exists when --config is absent;
				     NULL: none */
	const struct config_option *options;
	size_t n_options;
	const char *footer;       /* printed at the end of --help; may be NULL */
};

/* What config_parse() asks the caller to do. */
enum config_action {
	CONFIG_RUN = 0,
	CONFIG_HELP,    /* print config_print_help() to stdout, exit 0 */
	CONFIG_VERSION, /* print the version, exit 0 */
};

/* Sets every option of @values to its default. Returns 0, -ENOMEM, or
 * -EINVAL when a default in the table does not parse (a programming error;
 * @errmsg says which). */
int config_set_defaults(const struct config_spec *spec, void *values,
			char *errmsg, size_t errmsg_len);

/* Reads a YAML file: a mapping of key -> scalar, or -> sequence of scalars
 * for lists. A list in the file replaces the value it had. An empty file is
 * fine. A plain "~"/"null"/empty value unsets a string or empties a list.
 * Errors (@errmsg = "FILE:LINE: key 'K': what", one line): -ENOENT / other
 * negative errno when the file cannot be read, -EINVAL for a syntax error,
 * an unknown or duplicate key, a wrong type or a bad value, -ENOMEM. */
int config_load_file(const struct config_spec *spec, void *values,
		     const char *path, char *errmsg, size_t errmsg_len);

/* The whole sequence: defaults, file, flags (getopt_long; flags win; a
 * list flag given at least once replaces the file's list). @argv is not
 * modified beyond what getopt_long does. No positional arguments are
 * accepted. On success writes the action and, when @ret_config_path is not
 * NULL, the file read (static or argv storage; NULL when none).
 * Errors: -EINVAL (usage or file error, @errmsg one line without the
 * program name), -ENOENT (the --config file is missing), -ENOMEM.
 * On error the values may be partly set: call config_free(). */
int config_parse(const struct config_spec *spec, void *values, int argc,
		 char *argv[], enum config_action *ret_action,
		 const char **ret_config_path, char *errmsg, size_t errmsg_len);

/* Parses one value given as text into option @name (used by the two
 * sources above; exposed for tests and programs that set values).
 * Errors: -ENOENT (no such option), -EINVAL (@errmsg says why), -ENOMEM. */
int config_set(const struct config_spec *spec, void *values, const char *name,
	       const char *text, char *errmsg, size_t errmsg_len);

/* Prints the usage line, summary, every option with its argument, help and
 * default, then the built-in options and the footer. */
void config_print_help(const struct config_spec *spec, FILE *f);

/* Frees the strings and lists of @values (not @values itself) and leaves
 * them unset. */
void config_free(const struct config_spec *spec, void *values);

#endif
