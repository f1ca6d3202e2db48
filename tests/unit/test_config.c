/* Unit tests of src/lib/config: defaults, YAML file, flags, errors, help. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "src/lib/config.h"
#include "src/lib/log.h"

/* Fixture: a settings struct covering every option type. */
struct settings {
	char *data_dir;
	char *listen;
	struct config_strings san;
	bool init;
	uint64_t threshold;
	uint64_t timeout_ms;
	uint64_t segment;
	enum log_level level;
};

#define OPT(name, type, def, arg, help, member, max) \
	{name, type, def, arg, help, offsetof(struct settings, member), max}

static const struct config_option options[] = {
	OPT("data-dir", CONFIG_STRING, "/var/lib/test", "DIR", "where state lives", data_dir, 0),
	OPT("listen", CONFIG_STRING, NULL, "H:P", "listen address", listen, 0),
	OPT("san", CONFIG_STRINGS, NULL, "NAME", "extra name", san, 0),
	OPT("init", CONFIG_BOOL, NULL, NULL, "bootstrap", init, 0),
	OPT("snapshot-threshold", CONFIG_UINT, "16384", "N", "entries per snapshot", threshold, 1000000),
	OPT("election-timeout", CONFIG_DURATION, "1s", "DUR", "election timeout", timeout_ms, 3600000),
	OPT("segment-size", CONFIG_SIZE, "8Mi", "SIZE", "segment size", segment, 0),
	OPT("log-level", CONFIG_LOG_LEVEL, "info", "LEVEL", "verbosity", level, 0),
};

static const struct config_spec spec = {
	.prog = "testd",
	.summary = "A test daemon.\n",
	.default_file = "/nonexistent/capstan-test/testd.yaml",
	.options = options,
	.n_options = sizeof options / sizeof options[0],
	.footer = "See testd(8).\n",
};

struct fixture {
	char dir[64];
	char path[128];
	struct settings s;
	char err[512];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_config.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/c.yaml", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	config_free(&spec, &f->s);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Helpers. */

static void write_file(struct fixture *f, const char *text)
{
	FILE *fp = fopen(f->path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* Runs config_parse on a NULL-terminated list of arguments. */
static int parse(struct fixture *f, enum config_action *action, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	char *a;

	argv[argc++] = "testd";
	va_start(ap, action);
	while ((a = va_arg(ap, char *)) != NULL)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	f->err[0] = '\0';
	return config_parse(&spec, &f->s, argc, argv, action, NULL, f->err, sizeof f->err);
}

/* Tests. */

static void defaults(void **state)
{
	struct fixture *f = *state;
	enum config_action action = CONFIG_HELP;

	assert_int_equal(parse(f, &action, NULL), 0);
	assert_int_equal(action, CONFIG_RUN);
	assert_string_equal(f->s.data_dir, "/var/lib/test");
	assert_null(f->s.listen);
	assert_int_equal(f->s.san.n, 0);
	assert_false(f->s.init);
	assert_int_equal(f->s.threshold, 16384);
	assert_int_equal(f->s.timeout_ms, 1000);
	assert_int_equal(f->s.segment, 8 * 1024 * 1024);
	assert_int_equal(f->s.level, LOG_LEVEL_INFO);
}

static void file_then_flags(void **state)
{
	struct fixture *f = *state;
	enum config_action action;

	write_file(f, "# comment\n"
		      "data-dir: /srv/a\n"
		      "listen: 127.0.0.1:1\n"
		      "san: [a.example, 10.0.0.1]\n"
		      "init: yes\n"
		      "snapshot-threshold: 10\n"
		      "election-timeout: 250ms\n"
		      "segment-size: 1M\n"
		      "log-level: debug\n");
	assert_int_equal(parse(f, &action, "--config", f->path, NULL), 0);
	assert_string_equal(f->s.data_dir, "/srv/a");
	assert_string_equal(f->s.listen, "127.0.0.1:1");
	assert_int_equal(f->s.san.n, 2);
	assert_string_equal(f->s.san.v[0], "a.example");
	assert_string_equal(f->s.san.v[1], "10.0.0.1");
	assert_true(f->s.init);
	assert_int_equal(f->s.threshold, 10);
	assert_int_equal(f->s.timeout_ms, 250);
	assert_int_equal(f->s.segment, 1000000);
	assert_int_equal(f->s.level, LOG_LEVEL_DEBUG);
	config_free(&spec, &f->s);

	/* Flags win, wherever they stand relative to --config; a list flag
	 * replaces the file's list; --init=false overrides the file. */
	assert_int_equal(parse(f, &action, "--data-dir", "/srv/b", "--config", f->path,
			       "--san", "b.example", "--san=c.example", "--init=false",
			       "--election-timeout", "2m", "--log-level=warn", NULL), 0);
	assert_string_equal(f->s.data_dir, "/srv/b");
	assert_string_equal(f->s.listen, "127.0.0.1:1");
	assert_int_equal(f->s.san.n, 2);
	assert_string_equal(f->s.san.v[0], "b.example");
	assert_string_equal(f->s.san.v[1], "c.example");
	assert_false(f->s.init);
	assert_int_equal(f->s.threshold, 10);
	assert_int_equal(f->s.timeout_ms, 120000);
	assert_int_equal(f->s.level, LOG_LEVEL_WARN);
}

static void file_block_list_and_nulls(void **state)
{
	struct fixture *f = *state;
	enum config_action action;

	write_file(f, "data-dir: ~\n"
		      "san:\n"
		      "  - x.example\n"
		      "  - \"::1\"\n"
		      "listen: ''\n");
	assert_int_equal(parse(f, &action, "--config", f->path, NULL), 0);
	assert_null(f->s.data_dir);           /* null unsets the default */
	assert_string_equal(f->s.listen, ""); /* a quoted empty string stays */
	assert_int_equal(f->s.san.n, 2);
	assert_string_equal(f->s.san.v[1], "::1");
}

static void empty_file(void **state)
{
	struct fixture *f = *state;
	enum config_action action;

	write_file(f, "# only a comment\n");
	assert_int_equal(parse(f, &action, "--config", f->path, NULL), 0);
	assert_string_equal(f->s.data_dir, "/var/lib/test");
}

static void error_unknown_key(void **state)
{
	struct fixture *f = *state;
	enum config_action action;
	char want[256];

	write_file(f, "data-dir: /x\n\nelection-timeot: 1s\n");
	assert_int_equal(parse(f, &action, "--config", f->path, NULL), -EINVAL);
	snprintf(want, sizeof want, "%s:3: unknown key 'election-timeot'", f->path);
	assert_string_equal(f->err, want);
}

static void error_bad_duration(void **state)
{
	struct fixture *f = *state;
	enum config_action action;
	char want[256];

	write_file(f, "election-timeout: 10 seconds\n");
	assert_int_equal(parse(f, &action, "--config", f->path, NULL), -EINVAL);
	snprintf(want, sizeof want, "%s:1: key 'election-timeout': invalid duration", f->path);
	assert_memory_equal(f->err, want, strlen(want));
	assert_null(strchr(f->err, '\n'));

	/* The same mistake as a flag. */
	config_free(&spec, &f->s);
	assert_int_equal(parse(f, &action, "--election-timeout", "1d", NULL), -EINVAL);
	assert_non_null(strstr(f->err, "--election-timeout: invalid duration '1d'"));
	/* Beyond the option's maximum. */
	config_free(&spec, &f->s);
	assert_int_equal(parse(f, &action, "--election-timeout", "2h", NULL), -EINVAL);
	assert_non_null(strstr(f->err, "too long"));
}

static void error_wrong_type(void **state)
{
	struct fixture *f = *state;
	enum config_action action;
	char want[256];

	write_file(f, "data-dir:\n  - /a\n  - /b\n");
	assert_int_equal(parse(f, &action, "--config", f->path, NULL), -EINVAL);
	snprintf(want, sizeof want, "%s:2: key 'data-dir': expected a string, got a list", f->path);
	assert_string_equal(f->err, want);

	config_free(&spec, &f->s);
	write_file(f, "init: maybe\n");
	assert_int_equal(parse(f, &action, "--config", f->path, NULL), -EINVAL);
	assert_non_null(strstr(f->err, ":1: key 'init': invalid boolean 'maybe'"));

	config_free(&spec, &f->s);
	write_file(f, "snapshot-threshold: {a: 1}\n");
	assert_int_equal(parse(f, &action, "--config", f->path, NULL), -EINVAL);
	assert_non_null(strstr(f->err, "key 'snapshot-threshold': expected a number, got a mapping"));

	config_free(&spec, &f->s);
	write_file(f, "snapshot-threshold: 1000001\n");
	assert_int_equal(parse(f, &action, "--config", f->path, NULL), -EINVAL);
	assert_non_null(strstr(f->err, "key 'snapshot-threshold': '1000001' is too large"));

	config_free(&spec, &f->s);
	write_file(f, "log-level: loud\n");
	assert_int_equal(parse(f, &action, "--config", f->path, NULL), -EINVAL);
	assert_non_null(strstr(f->err, "key 'log-level': invalid log level 'loud'"));

	config_free(&spec, &f->s);
	write_file(f, "segment-size:\n");
	assert_int_equal(parse(f, &action, "--config", f->path, NULL), -EINVAL);
	assert_non_null(strstr(f->err, "key 'segment-size': missing value"));

	config_free(&spec, &f->s);
	write_file(f, "- a\n- b\n");
	assert_int_equal(parse(f, &action, "--config", f->path, NULL), -EINVAL);
	assert_non_null(strstr(f->err, ":1: expected a mapping"));
}

static void error_duplicate_and_syntax(void **state)
{
	struct fixture *f = *state;
	enum config_action action;

	write_file(f, "listen: a\nlisten: b\n");
	assert_int_equal(parse(f, &action, "--config", f->path, NULL), -EINVAL);
	assert_non_null(strstr(f->err, ":2: duplicate key 'listen'"));

	config_free(&spec, &f->s);
	write_file(f, "listen: [a\n");
	assert_int_equal(parse(f, &action, "--config", f->path, NULL), -EINVAL);
	assert_non_null(strstr(f->err, "YAML syntax error"));
	assert_non_null(strstr(f->err, f->path));

	config_free(&spec, &f->s);
	write_file(f, "listen: a\n---\nlisten: b\n");
	assert_int_equal(parse(f, &action, "--config", f->path, NULL), -EINVAL);
	assert_non_null(strstr(f->err, "one YAML document"));
}

static void error_missing_file(void **state)
{
	struct fixture *f = *state;
	enum config_action action;
	char path[160];
	char want[256];

	/* The default file is absent: fine. */
	assert_int_equal(parse(f, &action, NULL), 0);
	config_free(&spec, &f->s);
	/* A file named explicitly must exist. */
	snprintf(path, sizeof path, "%s/absent.yaml", f->dir);
	assert_int_equal(parse(f, &action, "--config", path, NULL), -ENOENT);
	snprintf(want, sizeof want, "config file %s does not exist", path);
	assert_string_equal(f->err, want);
	/* --config '' reads nothing. */
	config_free(&spec, &f->s);
	assert_int_equal(parse(f, &action, "--config", "", NULL), 0);
}

static void error_flags(void **state)
{
	struct fixture *f = *state;
	enum config_action action;

	assert_int_equal(parse(f, &action, "--no-such-flag", NULL), -EINVAL);
	assert_string_equal(f->err, "unknown option '--no-such-flag'");
	config_free(&spec, &f->s);
	assert_int_equal(parse(f, &action, "--data-dir", NULL), -EINVAL);
	assert_string_equal(f->err, "option '--data-dir' needs an argument");
	config_free(&spec, &f->s);
	assert_int_equal(parse(f, &action, "-x", NULL), -EINVAL);
	assert_string_equal(f->err, "unknown option '-x'");
	config_free(&spec, &f->s);
	assert_int_equal(parse(f, &action, "stray", NULL), -EINVAL);
	assert_string_equal(f->err, "unexpected argument 'stray'");
	config_free(&spec, &f->s);
	assert_int_equal(parse(f, &action, "--snapshot-threshold", "-1", NULL), -EINVAL);
	assert_non_null(strstr(f->err, "--snapshot-threshold: invalid number '-1'"));
	/* A bad flag is reported before a bad file is read. */
	config_free(&spec, &f->s);
	write_file(f, "bogus: 1\n");
	assert_int_equal(parse(f, &action, "--config", f->path, "--bogus", NULL), -EINVAL);
	assert_string_equal(f->err, "unknown option '--bogus'");
}

static void help_and_version(void **state)
{
	struct fixture *f = *state;
	enum config_action action;
	char *text = NULL;
	size_t len = 0;
	FILE *mem;

	/* --help wins and skips the file, even a broken one. */
	write_file(f, "bogus: 1\n");
	assert_int_equal(parse(f, &action, "--config", f->path, "-h", NULL), 0);
	assert_int_equal(action, CONFIG_HELP);
	config_free(&spec, &f->s);
	assert_int_equal(parse(f, &action, "--version", NULL), 0);
	assert_int_equal(action, CONFIG_VERSION);

	mem = open_memstream(&text, &len);
	assert_non_null(mem);
	config_print_help(&spec, mem);
	fclose(mem);
	assert_memory_equal(text, "Usage: testd [OPTION]...\n", 25);
	for (size_t i = 0; i < spec.n_options; i++) {
		char flag[64];

		snprintf(flag, sizeof flag, "--%s", options[i].name);
		assert_non_null(strstr(text, flag));
	}
	assert_non_null(strstr(text, "--data-dir DIR"));
	assert_non_null(strstr(text, "(default: /var/lib/test)"));
	assert_non_null(strstr(text, "(default: 1s)"));
	assert_non_null(strstr(text, "(repeatable)"));
	assert_non_null(strstr(text, "--config FILE"));
	assert_non_null(strstr(text, "-h, --help"));
	assert_non_null(strstr(text, "-V, --version"));
	assert_non_null(strstr(text, "See testd(8)."));
	free(text);
}

static void set_one(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(config_set_defaults(&spec, &f->s, f->err, sizeof f->err), 0);
	assert_int_equal(config_set(&spec, &f->s, "segment-size", "2Ki", f->err, sizeof f->err), 0);
	assert_int_equal(f->s.segment, 2048);
	assert_int_equal(config_set(&spec, &f->s, "nope", "1", f->err, sizeof f->err), -ENOENT);
	assert_int_equal(config_set(&spec, &f->s, "segment-size", "2X", f->err, sizeof f->err), -EINVAL);
	assert_non_null(strstr(f->err, "invalid size '2X'"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(file_then_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(file_block_list_and_nulls, setup, teardown),
		cmocka_unit_test_setup_teardown(empty_file, setup, teardown),
		cmocka_unit_test_setup_teardown(error_unknown_key, setup, teardown),
		cmocka_unit_test_setup_teardown(error_bad_duration, setup, teardown),
		cmocka_unit_test_setup_teardown(error_wrong_type, setup, teardown),
		cmocka_unit_test_setup_teardown(error_duplicate_and_syntax, setup, teardown),
		cmocka_unit_test_setup_teardown(error_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(error_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(help_and_version, setup, teardown),
		cmocka_unit_test_setup_teardown(set_one, setup, teardown),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
