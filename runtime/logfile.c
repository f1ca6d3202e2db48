/* Container log files in the CRI format: writer with size-based rotation
 * (used by capstan-shim), and readers for `kubectl logs` (tail, since,
 * timestamps, follow across rotations).
 *
 * WARNING: this format is on disk and read by other tools (it is the
 * kubelet's): "<RFC3339Nano> <stdout|stderr> <F|P> <text>\n". Times are
 * written with all nine fraction digits so that files sort as text.
 *
 * This file links into capstan-shim too: no jansson, no rt__ helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime.h"

#define MAX_LINE 16384
#define MAX_ROTATED 1000

/* ------------------------------------------------------------------ times */

size_t rt_log_time(int64_t ns, char *buf, size_t size)
{
	time_t sec = (time_t)(ns / 1000000000);
	long frac = (long)(ns % 1000000000);
	struct tm tm;
	size_t n;
	int m;

	if (frac < 0) {
		frac += 1000000000;
		sec--;
	}
	gmtime_r(&sec, &tm);
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0)
		return 0;
	m = snprintf(buf + n, size - n, ".%09ldZ", frac);
	if (m < 0 || (size_t)m >= size - n)
		return 0;
	return n + (size_t)m;
}

static int digits(const char *s, size_t n, int *ret)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return 0;
}

int rt_log_parse_time(const char *s, size_t len, int64_t *ret_ns)
{
	struct tm tm = {0};
	int y, mo, d, h, mi, sec, oh = 0, om = 0;
	int64_t frac = 0, scale = 100000000, off = 0;
	size_t i = 19;
	time_t t;

	if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
	    s[13] != ':' || s[16] != ':')
		return -EINVAL;
	if (digits(s, 4, &y) || digits(s + 5, 2, &mo) || digits(s + 8, 2, &d) ||
	    digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) || digits(s + 17, 2, &sec))
		return -EINVAL;
	if (s[i] == '.') {
		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
			frac += (s[i] - '0') * scale;
			scale /= 10;
		}
	}
	if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i + 6 <= len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
		if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om))
			return -EINVAL;
		off = (int64_t)(oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
		i += 6;
	} else {
		return -EINVAL;
	}
	if (i != len || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	*ret_ns = ((int64_t)t - off) * 1000000000 + frac;
	return 0;
}

int rt_log_parse_line(const char *line, size_t len, struct rt_log_entry *ret)
{
	const char *sp = memchr(line, ' ', len), *p, *end = line + len;
	struct rt_log_entry e = {0};

	if (sp == NULL || rt_log_parse_time(line, (size_t)(sp - line), &e.time) != 0)
		return -EINVAL;
	p = sp + 1;
	if ((size_t)(end - p) >= 7 && memcmp(p, "stdout ", 7) == 0)
		e.stream = 1;
	else if ((size_t)(end - p) >= 7 && memcmp(p, "stderr ", 7) == 0)
		e.stream = 2;
	else
		return -EINVAL;
	p += 7;
	if (end - p < 1 || (*p != 'F' && *p != 'P'))
		return -EINVAL;
	e.partial = *p == 'P';
	p++;
	if (p < end) {
		if (*p != ' ')
			return -EINVAL;
		p++;
	}
	e.text = p;
	e.len = (size_t)(end - p);
	*ret = e;
	return 0;
}

/* ----------------------------------------------------------------- writer */

struct rt_logw {
	int fd;
	char *path;
	uint64_t max_size;
	uint64_t size;
	unsigned max_files;
	char *pend[3];
	size_t plen[3];
};

static int open_log(struct rt_logw *w, bool truncate)
{
	struct stat st;

	w->fd = open(w->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0),
		     0640);
	if (w->fd < 0)
		return -errno;
	w->size = fstat(w->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	return 0;
}

int rt_logw_open(const char *path, uint64_t max_size, unsigned max_files, struct rt_logw **ret)
{
	struct rt_logw *w = calloc(1, sizeof(*w));
	int rv;

	if (w == NULL)
		return -ENOMEM;
	w->path = strdup(path);
	if (w->path == NULL) {
		free(w);
		return -ENOMEM;
	}
	w->max_size = max_size;
	w->max_files = max_files == 0 ? 1 : max_files;
	rv = open_log(w, false);
	if (rv != 0) {
		free(w->path);
		free(w);
		return rv;
	}
	*ret = w;
	return 0;
}

static int rotate(struct rt_logw *w)
{
	size_t n = strlen(w->path) + 16;
	char *from = malloc(n), *to = malloc(n);
	int rv = 0;

	if (from == NULL || to == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	close(w->fd);
	w->fd = -1;
	/* path.<max-1> falls off; path.k -> path.k+1; path -> path.1. */
	for (unsigned k = w->max_files - 1; k >= 1; k--) {
		if (k == 1)
			snprintf(from, n, "%s", w->path);
		else
			snprintf(from, n, "%s.%u", w->path, k - 1);
		snprintf(to, n, "%s.%u", w->path, k);
		if (rename(from, to) != 0 && errno != ENOENT) {
			rv = -errno;
			break;
		}
	}
	{
		int r = open_log(w, true);

		if (rv == 0)
			rv = r;
	}
out:
	free(from);
	free(to);
	return rv;
}

static int write_all(struct rt_logw *w, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(w->fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
		w->size += (uint64_t)n;
	}
	return 0;
}

/* One entry: @a then @b (either may be empty) as one line. */
static int entry(struct rt_logw *w, int stream, bool partial, const char *a, size_t alen,
		 const char *b, size_t blen, int64_t now_ns)
{
	char head[64];
	size_t hl = rt_log_time(now_ns, head, sizeof(head));
	size_t total;
	char *buf;
	int rv;

	hl += (size_t)snprintf(head + hl, sizeof(head) - hl, " %s %c ",
			       stream == 2 ? "stderr" : "stdout", partial ? 'P' : 'F');
	total = hl + alen + blen + 1;
	if (w->fd < 0 || (w->max_size > 0 && w->size > 0 && w->size + total > w->max_size &&
			  w->max_files >= 1)) {
		rv = w->max_size > 0 ? rotate(w) : open_log(w, false);
		if (rv != 0)
			return rv;
	}
	buf = malloc(total);
	if (buf == NULL)
		return -ENOMEM;
	memcpy(buf, head, hl);
	if (alen > 0)
		memcpy(buf + hl, a, alen);
	if (blen > 0)
		memcpy(buf + hl + alen, b, blen);
	buf[total - 1] = '\n';
	rv = write_all(w, buf, total);
	free(buf);
	return rv;
}

int rt_logw_write(struct rt_logw *w, int stream, const char *data, size_t len, int64_t now_ns)
{
	int s = stream == 2 ? 2 : 1, rv;

	if (w->pend[s] == NULL) {
		w->pend[s] = malloc(MAX_LINE);
		if (w->pend[s] == NULL)
			return -ENOMEM;
	}
	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t seg = nl != NULL ? (size_t)(nl - data) : len;

		/* Buffer the line, cutting it into P entries of MAX_LINE. */
		while (seg > 0) {
			size_t room = MAX_LINE - w->plen[s], take = seg < room ? seg : room;

			memcpy(w->pend[s] + w->plen[s], data, take);
			w->plen[s] += take;
			data += take;
			seg -= take;
			len -= take;
			if (w->plen[s] == MAX_LINE && (seg > 0 || nl == NULL)) {
				rv = entry(w, s, true, w->pend[s], w->plen[s], NULL, 0, now_ns);
				if (rv != 0)
					return rv;
				w->plen[s] = 0;
			}
		}
		if (nl != NULL) {
			rv = entry(w, s, false, w->pend[s], w->plen[s], NULL, 0, now_ns);
			if (rv != 0)
				return rv;
			w->plen[s] = 0;
			data++;
			len--;
		}
	}
	return 0;
}

int rt_logw_flush(struct rt_logw *w, int64_t now_ns)
{
	for (int s = 1; s <= 2; s++)
		if (w->plen[s] > 0) {
			int rv = entry(w, s, true, w->pend[s], w->plen[s], NULL, 0, now_ns);

			if (rv != 0)
				return rv;
			w->plen[s] = 0;
		}
	return 0;
}

void rt_logw_close(struct rt_logw *w)
{
	struct timespec ts;

	if (w == NULL)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	rt_logw_flush(w, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
	if (w->fd >= 0)
		close(w->fd);
	free(w->pend[1]);
	free(w->pend[2]);
	free(w->path);
	free(w);
}

/* ---------------------------------------------------------------- readers */

/* Turns entries into output lines: joins P entries, filters, tails. */
struct proc {
	const struct rt_log_opts *opts;
	rt_log_line_cb cb;
	void *data;
	char *pend[3];
	size_t plen[3], pcap[3];
	int64_t emitted;
	bool stop;
	char **ring; /* tail: the last opts->tail lines */
	size_t *ring_len;
	size_t ring_n, ring_head;
};

static int out_line(struct proc *p, char *line, size_t len)
{
	if (p->opts->tail >= 0) {
		size_t cap = (size_t)p->opts->tail;

		if (cap == 0) {
			free(line);
			return 0;
		}
		if (p->ring_n == cap) {
			free(p->ring[p->ring_head]);
			p->ring[p->ring_head] = line;
			p->ring_len[p->ring_head] = len;
			p->ring_head = (p->ring_head + 1) % cap;
		} else {
			p->ring[(p->ring_head + p->ring_n) % cap] = line;
			p->ring_len[(p->ring_head + p->ring_n) % cap] = len;
			p->ring_n++;
		}
		return 0;
	}
	if (p->opts->limit_bytes > 0 && p->emitted >= p->opts->limit_bytes) {
		p->stop = true;
		free(line);
		return 0;
	}
	if (p->opts->limit_bytes > 0 && p->emitted + (int64_t)len > p->opts->limit_bytes)
		len = (size_t)(p->opts->limit_bytes - p->emitted);
	p->emitted += (int64_t)len;
	if (p->cb(p->data, line, len) != 0)
		p->stop = true;
	free(line);
	return 0;
}

static int proc_line(struct proc *p, const char *line, size_t len)
{
	struct rt_log_entry e;
	size_t tl, total;
	char *out;
	int s;

	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (rt_log_parse_line(line, len, &e) != 0)
		return 0; /* a torn or foreign line is skipped */
	s = e.stream;
	if (p->opts->streams != 0 && !(p->opts->streams & s))
		return 0;
	if (e.partial) {
		if (p->plen[s] + e.len > p->pcap[s]) {
			size_t nc = (p->plen[s] + e.len) * 2;
			char *nb = realloc(p->pend[s], nc);

			if (nb == NULL)
				return -ENOMEM;
			p->pend[s] = nb;
			p->pcap[s] = nc;
		}
		memcpy(p->pend[s] + p->plen[s], e.text, e.len);
		p->plen[s] += e.len;
		return 0;
	}
	if (p->opts->since > 0 && e.time < p->opts->since) {
		p->plen[s] = 0;
		return 0;
	}
	tl = p->opts->timestamps ? (size_t)((const char *)memchr(line, ' ', len) - line) + 1 : 0;
	total = tl + p->plen[s] + e.len + 1;
	out = malloc(total + 1);
	if (out == NULL)
		return -ENOMEM;
	memcpy(out, line, tl);
	if (p->plen[s] > 0)
		memcpy(out + tl, p->pend[s], p->plen[s]);
	memcpy(out + tl + p->plen[s], e.text, e.len);
	out[total - 1] = '\n';
	out[total] = '\0';
	p->plen[s] = 0;
	return out_line(p, out, total);
}

static void proc_free(struct proc *p)
{
	for (size_t i = 0; i < p->ring_n; i++)
		free(p->ring[(p->ring_head + i) % (size_t)p->opts->tail]);
	free(p->ring);
	free(p->ring_len);
	free(p->pend[1]);
	free(p->pend[2]);
}

static int proc_file(struct proc *p, const char *path, uint64_t *ret_end)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rv = 0;

	if (f == NULL)
		return -errno;
	while (!p->stop && (n = getline(&line, &cap, f)) > 0) {
		/* A last line without its newline is still being written. */
		if (line[n - 1] != '\n') {
			if (fseeko(f, -(off_t)n, SEEK_CUR) != 0)
				rv = -errno;
			break;
		}
		rv = proc_line(p, line, (size_t)n);
		if (rv != 0)
			break;
	}
	if (ret_end != NULL)
		*ret_end = (uint64_t)ftello(f);
	free(line);
	fclose(f);
	return rv;
}

int rt_log_read(const char *path, const struct rt_log_opts *opts, rt_log_line_cb cb, void *data,
		uint64_t *ret_offset)
{
	struct proc p = {.opts = opts, .cb = cb, .data = data};
	size_t n = strlen(path) + 16;
	char *name = malloc(n);
	unsigned rotated = 0;
	int rv = 0;

	if (name == NULL)
		return -ENOMEM;
	if (access(path, F_OK) != 0) {
		free(name);
		return -ENOENT;
	}
	if (opts->tail > 0) {
		p.ring = calloc((size_t)opts->tail, sizeof(*p.ring));
		p.ring_len = calloc((size_t)opts->tail, sizeof(*p.ring_len));
		if (p.ring == NULL || p.ring_len == NULL) {
			rv = -ENOMEM;
			goto out;
		}
	}
	while (rotated < MAX_ROTATED) {
		snprintf(name, n, "%s.%u", path, rotated + 1);
		if (access(name, F_OK) != 0)
			break;
		rotated++;
	}
	for (unsigned k = rotated; k >= 1 && rv == 0 && !p.stop; k--) {
		snprintf(name, n, "%s.%u", path, k);
		rv = proc_file(&p, name, NULL);
		if (rv == -ENOENT) /* rotated away meanwhile */
			rv = 0;
	}
	if (rv == 0 && !p.stop)
		rv = proc_file(&p, path, ret_offset);
	if (rv == 0 && opts->tail > 0) {
		struct rt_log_opts o = *opts;
		struct proc q = {.opts = &o, .cb = cb, .data = data};

		o.tail = -1;
		for (size_t i = 0; i < p.ring_n && !q.stop; i++) {
			size_t k = (p.ring_head + i) % (size_t)opts->tail;

			out_line(&q, p.ring[k], p.ring_len[k]);
			p.ring[k] = NULL;
		}
	}
out:
	proc_free(&p);
	free(name);
	return rv;
}

/* ----------------------------------------------------------------- follow */

struct rt_log_follow {
	uv_timer_t timer;
	uv_fs_event_t event;
	bool event_on;
	char *path;
	uint64_t offset;
	dev_t dev;
	ino_t ino;
	struct rt_log_opts opts;
	struct proc proc;
	char *buf; /* an incomplete line carried to the next read */
	size_t blen, bcap;
	int closing;
};

/* Reads @path from the offset to its end (bounded per tick). */
static void follow_read(struct rt_log_follow *f, const char *path)
{
	char chunk[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t total = 0;

	if (fd < 0)
		return;
	while (total < (1u << 20) && !f->proc.stop) {
		ssize_t n = pread(fd, chunk, sizeof(chunk), (off_t)f->offset);
		size_t start = 0;

		if (n <= 0)
			break;
		f->offset += (uint64_t)n;
		total += (size_t)n;
		for (size_t i = 0; i < (size_t)n; i++) {
			if (chunk[i] != '\n')
				continue;
			if (f->blen > 0) {
				size_t add = i + 1 - start;

				if (f->blen + add > f->bcap) {
					char *nb = realloc(f->buf, f->blen + add);

					if (nb == NULL)
						break;
					f->buf = nb;
					f->bcap = f->blen + add;
				}
				memcpy(f->buf + f->blen, chunk + start, add);
				proc_line(&f->proc, f->buf, f->blen + add);
				f->blen = 0;
			} else {
				proc_line(&f->proc, chunk + start, i + 1 - start);
			}
			start = i + 1;
		}
		if (start < (size_t)n) {
			size_t add = (size_t)n - start;

			if (f->blen + add > f->bcap) {
				char *nb = realloc(f->buf, f->blen + add);

				if (nb == NULL)
					break;
				f->buf = nb;
				f->bcap = f->blen + add;
			}
			memcpy(f->buf + f->blen, chunk + start, add);
			f->blen += add;
		}
	}
	close(fd);
}

static void follow_tick(struct rt_log_follow *f)
{
	struct stat st;

	if (f->closing)
		return;
	if (stat(f->path, &st) != 0)
		return;
	if (f->ino != 0 && (st.st_ino != f->ino || st.st_dev != f->dev)) {
		/* Rotated: finish the old file (now path.1), then start over. */
		size_t n = strlen(f->path) + 4;
		char *old = malloc(n);
		struct stat ost;

		if (old != NULL) {
			snprintf(old, n, "%s.1", f->path);
			if (stat(old, &ost) == 0 && ost.st_ino == f->ino)
				follow_read(f, old);
			free(old);
		}
		f->offset = 0;
		f->blen = 0;
	} else if ((uint64_t)st.st_size < f->offset) {
		f->offset = 0; /* truncated */
		f->blen = 0;
	}
	f->ino = st.st_ino;
	f->dev = st.st_dev;
	follow_read(f, f->path);
}

static void follow_timer_cb(uv_timer_t *t)
{
	follow_tick(t->data);
}

static void follow_event_cb(uv_fs_event_t *h, const char *filename, int events, int status)
{
	(void)filename;
	(void)events;
	(void)status;
	follow_tick(h->data);
}

static void follow_close_cb(uv_handle_t *h)
{
	struct rt_log_follow *f = h->data;

	if (--f->closing > 0)
		return;
	free(f->proc.pend[1]);
	free(f->proc.pend[2]);
	free(f->buf);
	free(f->path);
	free(f);
}

int rt_log_follow_start(uv_loop_t *loop, const char *path, uint64_t offset,
			const struct rt_log_opts *opts, rt_log_line_cb cb, void *data,
			struct rt_log_follow **ret)
{
	struct rt_log_follow *f = calloc(1, sizeof(*f));
	struct stat st;
	int rv;

	if (f == NULL)
		return -ENOMEM;
	f->path = strdup(path);
	if (f->path == NULL) {
		free(f);
		return -ENOMEM;
	}
	f->offset = offset;
	f->opts = *opts;
	f->opts.tail = -1;
	f->proc.opts = &f->opts;
	f->proc.cb = cb;
	f->proc.data = data;
	if (stat(path, &st) == 0) {
		f->ino = st.st_ino;
		f->dev = st.st_dev;
	}
	uv_timer_init(loop, &f->timer);
	f->timer.data = f;
	rv = uv_timer_start(&f->timer, follow_timer_cb, 250, 250);
	if (rv != 0) {
		f->closing = 1;
		uv_close((uv_handle_t *)&f->timer, follow_close_cb);
		return rv;
	}
	/* inotify wakes us at once; the timer is the fallback. */
	uv_fs_event_init(loop, &f->event);
	f->event.data = f;
	f->event_on = uv_fs_event_start(&f->event, follow_event_cb, path, 0) == 0;
	*ret = f;
	return 0;
}

void rt_log_follow_stop(struct rt_log_follow *f)
{
	if (f == NULL || f->closing)
		return;
	f->closing = 2;
	uv_close((uv_handle_t *)&f->timer, follow_close_cb);
	uv_close((uv_handle_t *)&f->event, follow_close_cb);
}
