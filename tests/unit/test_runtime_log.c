/* Unit tests of runtime/logfile.c: CRI log line format, times, the writer
 * (partial lines, long lines, rotation) and the readers (tail, since,
 * timestamps, streams, byte limit, follow across a rotation). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/internal.h"

/* ------------------------------------------------------------ Fixture */

struct fx {
	char dir[64];
	char path[128];
};

static int set_up(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/test-runtime-log-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/0.log", f->dir);
	*state = f;
	return 0;
}

static int tear_down(void **state)
{
	struct fx *f = *state;

	rt__rm_rf(f->dir);
	free(f);
	return 0;
}

/* ------------------------------------------------------------ Helpers */

#define T0 1700000000000000000LL /* 2023-11-14T22:13:20Z */

struct out {
	char text[65536];
	size_t len;
	int lines;
};

static int collect(void *data, const char *line, size_t len)
{
	struct out *o = data;

	assert_true(o->len + len < sizeof(o->text));
	memcpy(o->text + o->len, line, len);
	o->len += len;
	o->text[o->len] = '\0';
	o->lines++;
	return 0;
}

static char *slurp(const char *path)
{
	char *s = NULL;

	assert_int_equal(rt__read_file(path, &s, NULL), 0);
	return s;
}

static void read_log(const char *path, const struct rt_log_opts *o, struct out *out)
{
	memset(out, 0, sizeof(*out));
	assert_int_equal(rt_log_read(path, o, collect, out, NULL), 0);
}

/* -------------------------------------------------------------- Tests */

static void times(void **state)
{
	char buf[64];
	int64_t ns;

	(void)state;
	assert_int_equal(rt_log_time(T0 + 5, buf, sizeof(buf)), 30);
	assert_string_equal(buf, "2023-11-14T22:13:20.000000005Z");
	assert_int_equal(rt_log_parse_time(buf, strlen(buf), &ns), 0);
	assert_true(ns == T0 + 5);
	assert_int_equal(rt_log_parse_time("2023-11-14T22:13:20Z", 20, &ns), 0);
	assert_true(ns == T0);
	assert_int_equal(rt_log_parse_time("2023-11-14T23:13:20.5+01:00", 27, &ns), 0);
	assert_true(ns == T0 + 500000000);
	assert_int_equal(rt_log_parse_time("2023-11-14 22:13:20Z", 20, &ns), -EINVAL);
	assert_int_equal(rt_log_parse_time("2023-11-14T22:13:20", 19, &ns), -EINVAL);
	assert_int_equal(rt_log_parse_time("2023-13-14T22:13:20Z", 20, &ns), -EINVAL);
}

static void parse_lines(void **state)
{
	const char *l = "2023-11-14T22:13:20.000000000Z stderr P some text";
	const char *empty = "2023-11-14T22:13:20Z stdout F";
	struct rt_log_entry e;

	(void)state;
	assert_int_equal(rt_log_parse_line(l, strlen(l), &e), 0);
	assert_int_equal(e.stream, 2);
	assert_true(e.partial);
	assert_true(e.time == T0);
	assert_int_equal(e.len, 9);
	assert_memory_equal(e.text, "some text", 9);
	assert_int_equal(rt_log_parse_line(empty, strlen(empty), &e), 0);
	assert_int_equal(e.len, 0);
	assert_false(e.partial);
	assert_int_equal(rt_log_parse_line("garbage", 7, &e), -EINVAL);
	assert_int_equal(rt_log_parse_line("2023-11-14T22:13:20Z stdin F x", 30, &e), -EINVAL);
	assert_int_equal(rt_log_parse_line("2023-11-14T22:13:20Z stdout X x", 31, &e), -EINVAL);
}

static void writer_lines_and_partials(void **state)
{
	struct fx *f = *state;
	struct rt_logw *w;
	char *text;

	assert_int_equal(rt_logw_open(f->path, 0, 1, &w), 0);
	assert_int_equal(rt_logw_write(w, 1, "hello\nwor", 9, T0), 0);
	assert_int_equal(rt_logw_write(w, 2, "oops\n", 5, T0 + 1), 0);
	assert_int_equal(rt_logw_write(w, 1, "ld\n\n", 4, T0 + 2), 0);
	assert_int_equal(rt_logw_write(w, 1, "tail", 4, T0 + 3), 0);
	assert_int_equal(rt_logw_flush(w, T0 + 3), 0);
	rt_logw_close(w);
	text = slurp(f->path);
	assert_string_equal(text, "2023-11-14T22:13:20.000000000Z stdout F hello\n"
				  "2023-11-14T22:13:20.000000001Z stderr F oops\n"
				  "2023-11-14T22:13:20.000000002Z stdout F world\n"
				  "2023-11-14T22:13:20.000000002Z stdout F \n"
				  "2023-11-14T22:13:20.000000003Z stdout P tail\n");
	free(text);
}

static void long_lines_split_and_joined(void **state)
{
	struct fx *f = *state;
	struct rt_log_opts o = {.tail = -1};
	struct rt_logw *w;
	struct out *out = malloc(sizeof(*out));
	char *big = malloc(40000), *text;
	int p = 0;

	memset(big, 'x', 40000);
	big[39999] = '\n';
	assert_int_equal(rt_logw_open(f->path, 0, 1, &w), 0);
	assert_int_equal(rt_logw_write(w, 1, big, 40000, T0), 0);
	rt_logw_close(w);
	text = slurp(f->path);
	for (char *s = text; (s = strstr(s, " stdout P ")) != NULL; s++)
		p++;
	assert_int_equal(p, 2); /* 16 KiB + 16 KiB, then the F rest */
	free(text);
	read_log(f->path, &o, out);
	assert_int_equal(out->lines, 1);
	assert_int_equal(out->len, 40000);
	free(out);
	free(big);
}

static void rotation_keeps_n_files(void **state)
{
	struct fx *f = *state;
	struct rt_log_opts o = {.tail = -1};
	struct rt_logw *w;
	struct out out;
	char name[160], line[32];
	struct stat st;

	assert_int_equal(rt_logw_open(f->path, 200, 3, &w), 0);
	for (int i = 0; i < 40; i++) {
		int n = snprintf(line, sizeof(line), "line %02d\n", i);

		assert_int_equal(rt_logw_write(w, 1, line, (size_t)n, T0 + i), 0);
	}
	rt_logw_close(w);
	/* path, path.1, path.2 and nothing older; none past the size. */
	for (int k = 1; k <= 2; k++) {
		snprintf(name, sizeof(name), "%s.%d", f->path, k);
		assert_int_equal(stat(name, &st), 0);
		assert_true(st.st_size <= 200);
	}
	snprintf(name, sizeof(name), "%s.3", f->path);
	assert_int_not_equal(stat(name, &st), 0);
	/* The reader goes oldest first and ends with the newest line. */
	read_log(f->path, &o, &out);
	assert_true(out.lines > 5 && out.lines < 40);
	assert_non_null(strstr(out.text, "line 39\n"));
	assert_null(strstr(out.text, "line 00\n"));
	assert_true(strstr(out.text, "line 37\n") < strstr(out.text, "line 38\n"));
	/* tail across files */
	o.tail = 3;
	read_log(f->path, &o, &out);
	assert_string_equal(out.text, "line 37\nline 38\nline 39\n");
}

static void reader_options(void **state)
{
	struct fx *f = *state;
	struct rt_log_opts o = {.tail = -1};
	struct rt_logw *w;
	struct out out;

	assert_int_equal(rt_logw_open(f->path, 0, 1, &w), 0);
	assert_int_equal(rt_logw_write(w, 1, "a\n", 2, T0), 0);
	assert_int_equal(rt_logw_write(w, 2, "b\n", 2, T0 + 1000000000), 0);
	assert_int_equal(rt_logw_write(w, 1, "c\n", 2, T0 + 2000000000), 0);
	rt_logw_close(w);
	read_log(f->path, &o, &out);
	assert_string_equal(out.text, "a\nb\nc\n");
	o.since = T0 + 1000000000;
	read_log(f->path, &o, &out);
	assert_string_equal(out.text, "b\nc\n");
	o.since = 0;
	o.streams = 1;
	read_log(f->path, &o, &out);
	assert_string_equal(out.text, "a\nc\n");
	o.streams = 0;
	o.timestamps = true;
	o.tail = 1;
	read_log(f->path, &o, &out);
	assert_string_equal(out.text, "2023-11-14T22:13:22.000000000Z c\n");
	o.timestamps = false;
	o.tail = 0;
	read_log(f->path, &o, &out);
	assert_int_equal(out.len, 0);
	o.tail = -1;
	o.limit_bytes = 3;
	read_log(f->path, &o, &out);
	assert_string_equal(out.text, "a\nb");
	assert_int_equal(rt_log_read("/nonexistent/x.log", &o, collect, &out, NULL), -ENOENT);
}

struct follow_ctx {
	struct out out;
	uv_loop_t *loop;
	int want;
};

static int follow_line(void *data, const char *line, size_t len)
{
	struct follow_ctx *c = data;

	collect(&c->out, line, len);
	if (c->out.lines >= c->want)
		uv_stop(c->loop);
	return 0;
}

static void follow_across_rotation(void **state)
{
	struct fx *f = *state;
	struct rt_log_opts o = {.tail = -1};
	struct rt_log_follow *fl;
	struct rt_logw *w;
	struct follow_ctx c = {0};
	struct out first;
	uv_loop_t loop;
	uint64_t off;
	char line[64];

	uv_loop_init(&loop);
	c.loop = &loop;
	assert_int_equal(rt_logw_open(f->path, 120, 3, &w), 0);
	assert_int_equal(rt_logw_write(w, 1, "old\n", 4, T0), 0);
	memset(&first, 0, sizeof(first));
	assert_int_equal(rt_log_read(f->path, &o, collect, &first, &off), 0);
	assert_string_equal(first.text, "old\n");
	assert_int_equal(rt_log_follow_start(&loop, f->path, off, &o, follow_line, &c, &fl), 0);
	/* Lines of ~47 bytes in 120-byte files: a rotation every two lines;
	 * each line is awaited before the next, as a follower keeping up. */
	for (int i = 0; i < 6; i++) {
		int n = snprintf(line, sizeof(line), "new %d\n", i);

		assert_int_equal(rt_logw_write(w, 1, line, (size_t)n, T0 + i), 0);
		c.want = i + 1;
		uv_run(&loop, UV_RUN_DEFAULT);
	}
	assert_string_equal(c.out.text, "new 0\nnew 1\nnew 2\nnew 3\nnew 4\nnew 5\n");
	rt_log_follow_stop(fl);
	rt_logw_close(w);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(times),
	    cmocka_unit_test(parse_lines),
	    cmocka_unit_test_setup_teardown(writer_lines_and_partials, set_up, tear_down),
	    cmocka_unit_test_setup_teardown(long_lines_split_and_joined, set_up, tear_down),
	    cmocka_unit_test_setup_teardown(rotation_keeps_n_files, set_up, tear_down),
	    cmocka_unit_test_setup_teardown(reader_options, set_up, tear_down),
	    cmocka_unit_test_setup_teardown(follow_across_rotation, set_up, tear_down),
	};

	return cmocka_run_group_tests_name("runtime_log", tests, NULL, NULL);
}
