/* Small helpers shared by the runtime's files. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/internal.h"

char *rt__printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

int64_t rt__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void rt_strv_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p != NULL; p++)
		free(*p);
	free(v);
}

size_t rt__strv_len(const char *const *v)
{
	size_t n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

int rt__strv_dup(const char *const *v, char ***ret)
{
	size_t n = rt__strv_len(v);
	char **out;

	if (v == NULL) {
		*ret = NULL;
		return 0;
	}
	out = calloc(n + 1, sizeof(*out));
	if (out == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		out[i] = strdup(v[i]);
		if (out[i] == NULL) {
			rt_strv_free(out);
			return -ENOMEM;
		}
	}
	*ret = out;
	return 0;
}

int rt__strv_push(char ***v, const char *s)
{
	size_t n = rt__strv_len((const char *const *)*v);
	char **nv;
	char *copy = strdup(s);

	if (copy == NULL)
		return -ENOMEM;
	nv = realloc(*v, (n + 2) * sizeof(*nv));
	if (nv == NULL) {
		free(copy);
		return -ENOMEM;
	}
	nv[n] = copy;
	nv[n + 1] = NULL;
	*v = nv;
	return 0;
}

int rt__strv_from_json(const json_t *a, char ***ret)
{
	char **out;
	size_t i;
	json_t *e;

	if (!json_is_array(a)) {
		*ret = NULL;
		return 0;
	}
	out = calloc(json_array_size(a) + 1, sizeof(*out));
	if (out == NULL)
		return -ENOMEM;
	json_array_foreach (a, i, e) {
		if (!json_is_string(e)) {
			rt_strv_free(out);
			return -EINVAL;
		}
		out[i] = strdup(json_string_value(e));
		if (out[i] == NULL) {
			rt_strv_free(out);
			return -ENOMEM;
		}
	}
	*ret = out;
	return 0;
}

int rt__mkdir_p(const char *path, mode_t mode)
{
	char *p = strdup(path);
	int rv = 0;

	if (p == NULL)
		return -ENOMEM;
	for (char *s = p + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;

			*s = '\0';
			if (mkdir(p, mode) != 0 && errno != EEXIST) {
				rv = -errno;
				break;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
	free(p);
	return rv;
}

static _Thread_local int rm_err;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	int r;

	(void)st;
	(void)ftw;
	r = (flag == FTW_DP || flag == FTW_D) ? rmdir(path) : unlink(path);
	if (r != 0 && errno != ENOENT) {
		rm_err = errno;
		return 1;
	}
	return 0;
}

int rt__rm_rf(const char *path)
{
	struct stat st;
	int rv;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) != 0 ? -errno : 0;
	/* FTW_MOUNT: a mount point left inside is not descended into; its
	 * rmdir then fails with EBUSY instead of wiping the mounted tree. */
	rm_err = 0;
	rv = nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	if (rv == 1)
		return -rm_err;
	return rv != 0 ? -errno : 0;
}

int rt__read_file(const char *path, char **ret, size_t *ret_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int rv = 0;

	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);

			if (nb == NULL) {
				rv = -ENOMEM;
				goto err;
			}
			buf = nb;
			cap += 65536;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rv = -errno;
			goto err;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	*ret = buf;
	if (ret_len != NULL)
		*ret_len = len;
	return 0;
err:
	free(buf);
	close(fd);
	return rv;
}

int rt__write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char *tmp = rt__printf("%s.tmp", path);
	const char *p = data;
	int fd, rv = 0;

	if (tmp == NULL)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		rv = -errno;
		goto err_tmp;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rv = -errno;
			goto err_fd;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) != 0) {
		rv = -errno;
		goto err_fd;
	}
	close(fd);
	if (rename(tmp, path) != 0) {
		rv = -errno;
		unlink(tmp);
	}
	free(tmp);
	return rv;
err_fd:
	close(fd);
	unlink(tmp);
err_tmp:
	free(tmp);
	return rv;
}

int rt__write_json_atomic(const char *path, const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	int rv;

	if (s == NULL)
		return -ENOMEM;
	rv = rt__write_file_atomic(path, s, strlen(s), 0644);
	free(s);
	return rv;
}

const char *rt__digest_hex(const char *digest)
{
	if (digest == NULL || strncmp(digest, "sha256:", 7) != 0)
		return NULL;
	digest += 7;
	if (strlen(digest) != 64)
		return NULL;
	for (const char *p = digest; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return NULL;
	return digest;
}
