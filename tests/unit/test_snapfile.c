/* Unit tests of src/lib/snapfile: the backup file header, its checksums,
 * and the refusal of every corruption. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "src/lib/snapfile.h"

static const char payload[] = "not really msgpack, but any bytes will do";

/* A whole file image in a malloc'ed buffer. */
static unsigned char *image(size_t *ret_len)
{
	size_t plen = sizeof payload - 1;
	unsigned char *buf = malloc(SNAPFILE_HEADER_LEN + plen);

	assert_non_null(buf);
	assert_int_equal(snapfile_header_encode(42, 7, 1700000000123ull, "c1", payload, plen, buf),
			 0);
	memcpy(buf + SNAPFILE_HEADER_LEN, payload, plen);
	*ret_len = SNAPFILE_HEADER_LEN + plen;
	return buf;
}

static void round_trip(void **state)
{
	struct snapfile_header h;
	const void *p;
	char err[256];
	size_t len;
	unsigned char *buf = image(&len);

	(void)state;
	assert_memory_equal(buf, "CAPSTANB", 8);
	assert_int_equal(snapfile_parse(buf, len, &h, &p, err, sizeof err), 0);
	assert_int_equal(h.version, SNAPFILE_VERSION);
	assert_int_equal(h.revision, 42);
	assert_int_equal(h.key_count, 7);
	assert_int_equal(h.created_ms, 1700000000123ull);
	assert_int_equal(h.payload_len, sizeof payload - 1);
	assert_string_equal(h.cluster_id, "c1");
	assert_ptr_equal(p, buf + SNAPFILE_HEADER_LEN);
	free(buf);
}

/* Every single flipped byte, header or payload, is refused. */
static void every_flipped_byte_refused(void **state)
{
	struct snapfile_header h;
	const void *p;
	char err[256];
	size_t len;
	unsigned char *buf = image(&len);

	(void)state;
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= 0x01;
		err[0] = '\0';
		assert_int_equal(snapfile_parse(buf, len, &h, &p, err, sizeof err), -EBADMSG);
		assert_true(strlen(err) > 0);
		assert_null(strchr(err, '\n'));
		buf[i] ^= 0x01;
	}
	free(buf);
}

static void truncated_and_extended_refused(void **state)
{
	struct snapfile_header h;
	const void *p;
	char err[256];
	size_t len;
	unsigned char *buf = image(&len), *longer;

	(void)state;
	for (size_t n = 0; n < len; n++)
		assert_int_equal(snapfile_parse(buf, n, &h, &p, err, sizeof err), -EBADMSG);
	longer = calloc(1, len + 1);
	assert_non_null(longer);
	memcpy(longer, buf, len);
	assert_int_equal(snapfile_parse(longer, len + 1, &h, &p, err, sizeof err), -EBADMSG);
	assert_non_null(strstr(err, "payload bytes"));
	free(longer);
	free(buf);
}

static void foreign_file_refused(void **state)
{
	static const char text[] = "apiVersion: v1\nkind: Config\n";
	struct snapfile_header h;
	const void *p;
	char err[256];

	(void)state;
	assert_int_equal(snapfile_parse(text, sizeof text - 1, &h, &p, err, sizeof err),
			 -EBADMSG);
	assert_non_null(strstr(err, "not a capstan snapshot"));
}

static void load_from_disk(void **state)
{
	char path[] = "/tmp/test_snapfile.XXXXXX";
	struct snapfile_header h;
	const void *p;
	void *loaded = NULL;
	size_t len, loaded_len = 0;
	char err[256];
	unsigned char *buf = image(&len);
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
	assert_int_equal(snapfile_load(path, &loaded, &loaded_len, &h, &p, err, sizeof err), 0);
	assert_int_equal(loaded_len, len);
	assert_int_equal(h.revision, 42);
	free(loaded);
	unlink(path);
	assert_int_equal(snapfile_load(path, &loaded, &loaded_len, &h, &p, err, sizeof err),
			 -ENOENT);
	assert_non_null(strstr(err, path));
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(every_flipped_byte_refused),
		cmocka_unit_test(truncated_and_extended_refused),
		cmocka_unit_test(foreign_file_refused),
		cmocka_unit_test(load_from_disk),
	};

	return cmocka_run_group_tests_name("snapfile", tests, NULL, NULL);
}
