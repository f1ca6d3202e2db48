/* Unit tests of src/lib/buf: growth, NUL termination, the hard cap,
 * steal, and that a failed allocation leaves the buffer as it was. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <unistd.h>

/* Fault injection: buf.c is compiled in here with its reallocations
 * routed through fault_realloc(). */
static int fail_after = -1; /* reallocations left before one fails; -1 never */
static int n_reallocs;

static void *fault_realloc(void *p, size_t n)
{
	if (fail_after == 0)
		return NULL;
	if (fail_after > 0)
		fail_after--;
	n_reallocs++;
	return realloc(p, n);
}

#define BUF_REALLOC(p, n) fault_realloc(p, n)
#include "src/lib/buf.c"

/* ------------------------------------------------------------ Fixture */

static int set_up(void **state)
{
	(void)state;
	fail_after = -1;
	n_reallocs = 0;
	return 0;
}

/* ------------------------------------------------------------ Tests */

static void empty(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_null(b.data);
	buf_free(&b); /* empty is fine */
	buf_free(&b);
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_non_null(b.data); /* even n == 0 leaves a terminated string */
	assert_string_equal(b.data, "");
	assert_int_equal(b.len, 0);
	buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
}

static void append_grows_and_terminates(void **state)
{
	struct buf b;
	char chunk[100];
	size_t i;

	(void)state;
	buf_init(&b);
	memset(chunk, 'x', sizeof(chunk));
	for (i = 0; i < 100; i++) {
		assert_int_equal(buf_append(&b, chunk, sizeof(chunk)), 0);
		assert_int_equal(b.len, (i + 1) * sizeof(chunk));
		assert_true(b.cap > b.len);
		assert_int_equal(b.data[b.len], '\0');
	}
	assert_int_equal(strspn(b.data, "x"), 10000);
	/* Doubling: 256 bytes up to 16384 is seven reallocations. */
	assert_int_equal(n_reallocs, 7);
	assert_int_equal(b.cap, 16384);
	assert_int_equal(buf_append_str(&b, "end"), 0);
	assert_string_equal(b.data + 10000, "end");
	buf_free(&b);
}

static void reserve(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(buf_reserve(&b, 1000), 0);
	assert_true(b.cap >= 1001);
	assert_int_equal(b.len, 0);
	n_reallocs = 0;
	assert_int_equal(buf_reserve(&b, 1000), 0); /* already there */
	assert_int_equal(buf_append(&b, "abc", 3), 0);
	assert_int_equal(n_reallocs, 0);
	assert_int_equal(buf_reserve(&b, SIZE_MAX - 2), -ENOMEM);
	assert_int_equal(buf_reserve(&b, SIZE_MAX / 2), -ENOMEM);
	assert_int_equal(n_reallocs, 0);
	assert_string_equal(b.data, "abc");
	buf_free(&b);
}

static void hard_cap(void **state)
{
	struct buf b = BUF_INIT;
	char big[600];

	(void)state;
	memset(big, 'y', sizeof(big));
	/* 600 + NUL fits in 1000; the capacity never passes the cap. */
	assert_int_equal(buf_append_max(&b, big, 600, 1000), 0);
	assert_int_equal(b.cap, 1000);
	assert_int_equal(buf_append_max(&b, big, 399, 1000), 0);
	assert_int_equal(b.len, 999);
	/* One more byte would leave no room for the NUL. */
	assert_int_equal(buf_append_max(&b, "z", 1, 1000), -EFBIG);
	assert_int_equal(buf_reserve_max(&b, 1, 1000), -EFBIG);
	assert_int_equal(buf_reserve_max(&b, SIZE_MAX - 1, 1000), -EFBIG);
	assert_int_equal(b.len, 999);
	assert_int_equal(b.data[999], '\0');
	assert_int_equal(buf_append_max(&b, "", 0, 1000), 0);
	buf_free(&b);
}

static void steal(void **state)
{
	struct buf b = BUF_INIT;
	size_t n = 99;
	char *s;

	(void)state;
	s = buf_steal(&b, &n);
	assert_string_equal(s, "");
	assert_int_equal(n, 0);
	free(s);
	assert_int_equal(buf_append(&b, "ab", 2), 0);
	assert_int_equal(buf_append(&b, "cd", 2), 0);
	s = buf_steal(&b, NULL);
	assert_string_equal(s, "abcd");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	free(s);
}

static void oom_leaves_buffer_unchanged(void **state)
{
	struct buf b = BUF_INIT;
	char chunk[300];
	size_t n = 7;

	(void)state;
	memset(chunk, 'q', sizeof(chunk));
	fail_after = 0;
	assert_int_equal(buf_append(&b, "a", 1), -ENOMEM);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_null(buf_steal(&b, &n));
	assert_int_equal(n, 7); /* not written on failure */
	assert_int_equal(buf_append_max(&b, "a", 1, 10), -ENOMEM);

	fail_after = 1;
	assert_int_equal(buf_append_str(&b, "hello"), 0);
	assert_int_equal(buf_append(&b, chunk, sizeof(chunk)), -ENOMEM);
	assert_int_equal(b.len, 5);
	assert_int_equal(b.cap, 256);
	assert_string_equal(b.data, "hello");
	assert_int_equal(buf_reserve(&b, 1000), -ENOMEM);
	assert_string_equal(b.data, "hello");

	fail_after = -1;
	assert_int_equal(buf_append(&b, chunk, sizeof(chunk)), 0);
	assert_int_equal(b.len, 305);
	assert_int_equal(b.data[305], '\0');
	buf_free(&b);
}

/* A pipe's read end holding @n bytes of 'r' then EOF. */
static int pipe_with(size_t n)
{
	char data[8192];
	int fds[2];

	assert_true(n <= sizeof(data));
	memset(data, 'r', n);
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], data, n), (ssize_t)n);
	close(fds[1]);
	return fds[0];
}

static void read_fd_limits(void **state)
{
	struct buf b = BUF_INIT;
	int fd;

	(void)state;
	/* Exactly @max bytes pass, NUL-terminated, the buffer held to max + 2. */
	fd = pipe_with(5000);
	assert_int_equal(buf_read_fd(&b, fd, 5000), 0);
	close(fd);
	assert_int_equal(b.len, 5000);
	assert_int_equal(b.data[5000], '\0');
	assert_true(b.cap <= 5002);
	buf_free(&b);

	fd = pipe_with(5001);
	assert_int_equal(buf_read_fd(&b, fd, 5000), -EFBIG);
	close(fd);
	assert_true(b.cap <= 5002);
	buf_free(&b);

	/* Empty input: an empty string, not NULL. */
	fd = pipe_with(0);
	assert_int_equal(buf_read_fd(&b, fd, 10), 0);
	close(fd);
	assert_non_null(b.data);
	assert_string_equal(b.data, "");
	buf_free(&b);

	/* Appends after what is there; the limit counts it. */
	assert_int_equal(buf_append_str(&b, "abc"), 0);
	fd = pipe_with(8);
	assert_int_equal(buf_read_fd(&b, fd, 10), -EFBIG);
	close(fd);
	buf_free(&b);
	assert_int_equal(buf_append_str(&b, "abc"), 0);
	fd = pipe_with(7);
	assert_int_equal(buf_read_fd(&b, fd, 10), 0);
	close(fd);
	assert_string_equal(b.data, "abcrrrrrrr");
	buf_free(&b);

	assert_int_equal(buf_read_file(&b, "/nonexistent/buf-test", 10), -ENOENT);
	assert_int_equal(buf_read_fd(&b, -1, 10), -EBADF);
	buf_free(&b);
}

static void read_fd_oom(void **state)
{
	struct buf b = BUF_INIT;
	int fd;

	(void)state;
	fd = pipe_with(100);
	fail_after = 0;
	assert_int_equal(buf_read_fd(&b, fd, 1000), -ENOMEM);
	close(fd);
	assert_null(b.data);
	fail_after = -1;
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(empty, set_up),
		cmocka_unit_test_setup(append_grows_and_terminates, set_up),
		cmocka_unit_test_setup(reserve, set_up),
		cmocka_unit_test_setup(hard_cap, set_up),
		cmocka_unit_test_setup(steal, set_up),
		cmocka_unit_test_setup(oom_leaves_buffer_unchanged, set_up),
		cmocka_unit_test_setup(read_fd_limits, set_up),
		cmocka_unit_test_setup(read_fd_oom, set_up),
	};

	return cmocka_run_group_tests_name("buf", tests, NULL, NULL);
}
