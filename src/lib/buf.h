/* buf: a growable, NUL-terminated byte buffer (grows by doubling). */
#ifndef CAPSTAN_LIB_BUF_H
#define CAPSTAN_LIB_BUF_H

#include <stddef.h>

/* Owns @data (malloc'ed, or NULL while nothing was ever reserved). After a
 * successful buf_append*() data[len] is '\0'; room for that byte is always
 * part of what buf_reserve() makes. Zero-initialised (BUF_INIT, buf_init)
 * is empty. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};

#define BUF_INIT {NULL, 0, 0}

void buf_init(struct buf *b);

/* Frees the data and leaves @b empty. Accepts an empty buffer. */
void buf_free(struct buf *b);

/* Makes room for @extra more bytes plus a terminating NUL. On error @b is
 * unchanged. Errors: -ENOMEM (also when the size would overflow). */
int buf_reserve(struct buf *b, size_t extra);

/* buf_reserve() that never lets the buffer hold more than @max bytes in
 * all (the NUL included). Errors: -EFBIG (len + extra + 1 > max), -ENOMEM. */
int buf_reserve_max(struct buf *b, size_t extra, size_t max);

/* Appends @n bytes of @p (copied) and NUL-terminates, also for n == 0.
 * On error @b is unchanged. Errors: -ENOMEM. */
int buf_append(struct buf *b, const void *p, size_t n);

/* buf_append() bounded as buf_reserve_max(). Errors: -EFBIG, -ENOMEM. */
int buf_append_max(struct buf *b, const void *p, size_t n, size_t max);

/* Appends the string @s (without its NUL). Errors: -ENOMEM. */
int buf_append_str(struct buf *b, const char *s);

/* Hands the data to the caller (malloc'ed, NUL-terminated, length in
 * *ret_len when not NULL) and leaves @b empty. NULL on OOM (@b unchanged). */
char *buf_steal(struct buf *b, size_t *ret_len);

/* Appends the rest of @fd (borrowed; read(2) retried on EINTR) and
 * NUL-terminates. @b never grows past max + 2 bytes (max < SIZE_MAX / 2).
 * Errors: -EFBIG (b->len would pass @max), -ENOMEM, read(2)'s errno
 * negated. On error @b holds what was read, for the caller to free. */
int buf_read_fd(struct buf *b, int fd, size_t max);

/* buf_read_fd() of the file at @path (borrowed), opened O_CLOEXEC.
 * Errors: as buf_read_fd(), and open(2)'s errno negated. */
int buf_read_file(struct buf *b, const char *path, size_t max);

#endif
