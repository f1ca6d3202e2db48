/* buf: a growable, NUL-terminated byte buffer. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/lib/buf.h"

/* The unit test counts and fails reallocations through this. */
#ifndef BUF_REALLOC
#define BUF_REALLOC(p, n) realloc(p, n)
#endif

#define BUF_MIN_CAP 256

void buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

int buf_reserve_max(struct buf *b, size_t extra, size_t max)
{
	size_t need, cap;
	char *data;

	if (extra >= SIZE_MAX / 2 - b->len)
		return max < SIZE_MAX ? -EFBIG : -ENOMEM;
	need = b->len + extra + 1;
	if (need > max)
		return -EFBIG;
	if (need <= b->cap)
		return 0;
	cap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
	while (cap < need)
		cap *= 2;
	if (cap > max)
		cap = max;
	data = BUF_REALLOC(b->data, cap);
	if (data == NULL)
		return -ENOMEM;
	b->data = data;
	b->cap = cap;
	return 0;
}

int buf_reserve(struct buf *b, size_t extra)
{
	return buf_reserve_max(b, extra, SIZE_MAX);
}

int buf_append_max(struct buf *b, const void *p, size_t n, size_t max)
{
	int rv = buf_reserve_max(b, n, max);

	if (rv != 0)
		return rv;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	return buf_append_max(b, p, n, SIZE_MAX);
}

int buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

char *buf_steal(struct buf *b, size_t *ret_len)
{
	char *data;

	if (buf_reserve(b, 0) != 0)
		return NULL;
	b->data[b->len] = '\0';
	data = b->data;
	if (ret_len != NULL)
		*ret_len = b->len;
	buf_init(b);
	return data;
}

/* Pieces of 4096 bytes at least, as long as the limit allows. */
#define BUF_READ_CHUNK 4096

int buf_read_fd(struct buf *b, int fd, size_t max)
{
	assert(max < SIZE_MAX / 2);
	if (b->len > max)
		return -EFBIG;
	for (;;) {
		/* One byte past @max is enough to tell a too large input. */
		size_t room = max + 1 - b->len;
		size_t want = room < BUF_READ_CHUNK ? room : BUF_READ_CHUNK;
		ssize_t n;
		int rv;

		if (b->cap - b->len < want + 1) {
			rv = buf_reserve_max(b, want, max + 2);
			if (rv != 0)
				return rv;
		}
		want = b->cap - b->len - 1;
		if (want > room)
			want = room;
		n = read(fd, b->data + b->len, want);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		b->len += (size_t)n;
		if (b->len > max)
			return -EFBIG;
	}
	b->data[b->len] = '\0';
	return 0;
}

int buf_read_file(struct buf *b, const char *path, size_t max)
{
	int fd, rv;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rv = buf_read_fd(b, fd, max);
	close(fd);
	return rv;
}
