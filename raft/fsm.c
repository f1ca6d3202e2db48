/* The Raft state machine over the store (see fsm.h for the formats). */
#include "raft/fsm.h"
#include "src/lib/thread.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

static const char snapshot_magic[8] = {'C', 'P', 'S', 'T', 'N', 'S', 'N', 'P'};

static void put_le32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

#define DIGEST_OFF 24
#define DIGEST_LEN 32

static int digest(const void *buf, size_t len, uint8_t out[DIGEST_LEN])
{
	unsigned n = 0;

	if (EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) != 1 ||
	    n != DIGEST_LEN)
		return -ENOMEM; /* OpenSSL fails only on allocation */
	return 0;
}

/* The header without its digest. */
static void header_fields(uint8_t header[FSM_SNAPSHOT_HEADER_LEN],
			  size_t payload_len)
{
	memcpy(header, snapshot_magic, sizeof snapshot_magic);
	put_le32(header + 8, FSM_SNAPSHOT_FORMAT);
	put_le32(header + 12, 0);
	put_le64(header + 16, (uint64_t)payload_len);
}

static int write_header(uint8_t header[FSM_SNAPSHOT_HEADER_LEN],
			const void *payload, size_t payload_len)
{
	header_fields(header, payload_len);
	return digest(payload, payload_len, header + DIGEST_OFF);
}

int fsm_restore_buffer(struct fsm *f, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t format;
	uint64_t payload_len;
	uint8_t sum[DIGEST_LEN];
	int rv;

	if (len < FSM_SNAPSHOT_HEADER_LEN) {
		snprintf(f->errmsg, sizeof f->errmsg,
			 "snapshot truncated: %zu bytes, header needs %d", len,
			 FSM_SNAPSHOT_HEADER_LEN);
		return -EBADMSG;
	}
	if (memcmp(p, snapshot_magic, sizeof snapshot_magic) != 0) {
		snprintf(f->errmsg, sizeof f->errmsg,
			 "snapshot has a bad magic number");
		return -EBADMSG;
	}
	format = get_le32(p + 8);
	if (format != FSM_SNAPSHOT_FORMAT) {
		snprintf(f->errmsg, sizeof f->errmsg,
			 "snapshot format %u unknown (this build reads %d)",
			 format, FSM_SNAPSHOT_FORMAT);
		return -EBADMSG;
	}
	payload_len = get_le64(p + 16);
	if (payload_len != len - FSM_SNAPSHOT_HEADER_LEN) {
		snprintf(f->errmsg, sizeof f->errmsg,
			 "snapshot length mismatch: header says %llu bytes, "
			 "%zu present",
			 (unsigned long long)payload_len,
			 len - FSM_SNAPSHOT_HEADER_LEN);
		return -EBADMSG;
	}
	rv = digest(p + FSM_SNAPSHOT_HEADER_LEN, (size_t)payload_len, sum);
	if (rv != 0) {
		snprintf(f->errmsg, sizeof f->errmsg, "snapshot digest: %s",
			 strerror(-rv));
		return rv;
	}
	if (memcmp(sum, p + DIGEST_OFF, DIGEST_LEN) != 0) {
		snprintf(f->errmsg, sizeof f->errmsg,
			 "snapshot digest mismatch: the data is damaged");
		return -EBADMSG;
	}
	rv = store_restore(f->store, p + FSM_SNAPSHOT_HEADER_LEN,
			   (size_t)payload_len);
	if (rv != 0) {
		snprintf(f->errmsg, sizeof f->errmsg,
			 "snapshot content rejected by the store: %s",
			 strerror(-rv));
		return rv;
	}
	f->errmsg[0] = '\0';
	return 0;
}

int fsm_encode_snapshot(struct fsm *f, void **ret_buf, size_t *ret_len)
{
	void *payload;
	size_t payload_len;
	uint8_t *out;
	int rv;

	rv = store_snapshot(f->store, &payload, &payload_len);
	if (rv != 0)
		return rv;
	out = malloc(FSM_SNAPSHOT_HEADER_LEN + payload_len);
	if (out == NULL) {
		free(payload);
		return -ENOMEM;
	}
	rv = write_header(out, payload, payload_len);
	if (rv != 0) {
		free(out);
		free(payload);
		return rv;
	}
	memcpy(out + FSM_SNAPSHOT_HEADER_LEN, payload, payload_len);
	free(payload);
	*ret_buf = out;
	*ret_len = FSM_SNAPSHOT_HEADER_LEN + payload_len;
	return 0;
}

static int fsm_apply(struct raft_fsm *rf, const struct raft_buffer *buf,
		     void **result)
{
	struct fsm *f = rf->data;
	struct store_cmd cmd;
	int rv;

	memset(&f->result, 0, sizeof f->result);
	f->applied_entries++;
	f->applied_bytes += buf->len;
	rv = store_cmd_decode(buf->base, buf->len, &cmd);
	if (rv != 0) {
		/* Deterministic on every replica: a no-op that reports why. */
		f->result.status = -EBADMSG;
		f->result.rev = store_revision(f->store);
		if (f->hook != NULL)
			f->hook(f->hook_data, NULL, &f->result);
		*result = &f->result;
		return 0;
	}
	rv = store_apply(f->store, &cmd, &f->result);
	if (rv == -ENOMEM) {
		/* libraft leaves last_applied alone and retries the entry at
		 * the next commit: the store is unchanged, so that is safe. */
		return RAFT_NOMEM;
	}
	if (rv != 0) {
		f->result.status = rv;
		f->result.rev = store_revision(f->store);
	}
	if (f->hook != NULL)
		f->hook(f->hook_data, &cmd, &f->result);
	*result = &f->result;
	return 0;
}

/* ------------------------------------------------------------ forked */

/* The child's output in its memfd: an 8-byte marker, zero until the child
 * has written everything after it, the SHA-256 of the encoding, then the
 * store encoding. The marker proves completeness even if someone else
 * reaped the child. */
#define CHILD_MARKER_LEN 8
#define CHILD_PAYLOAD_OFF (CHILD_MARKER_LEN + DIGEST_LEN)
#define CHILD_CHUNK (256u * 1024u)
static const char child_done[CHILD_MARKER_LEN] = {'C', 'P', 'S', 'T',
						  'D', 'O', 'N', 'E'};
#define CHILD_WAIT_MS (10u * 60u * 1000u)

static int write_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* What the child streams its encoding through: a digest and pwrite. */
struct child_out {
	int fd;
	off_t off;
	EVP_MD_CTX *md;
};

static int child_write(void *data, const void *buf, size_t len)
{
	struct child_out *o = data;

	if (EVP_DigestUpdate(o->md, buf, len) != 1 ||
	    write_all(o->fd, buf, len, o->off) != 0)
		return -EIO;
	o->off += (off_t)len;
	return 0;
}

/* Runs in the child: encodes the copy-on-write image of the store into
 * @fd in chunks (nothing the size of the store is allocated or copied),
 * digests it on the way, and exits. Only async-signal-safe calls, malloc
 * (which glibc keeps usable in a child of a threaded process) and the
 * digest with the algorithm fetched before the fork happen here. The
 * digest is done here rather than in the daemon's thread pool because
 * this process runs at the lowest priority: the daemons' loops win. */
static void child_main(struct fsm *f, int fd, pid_t parent)
	__attribute__((noreturn));
static void child_main(struct fsm *f, int fd, pid_t parent)
{
	struct child_out o = {fd, CHILD_PAYLOAD_OFF, NULL};
	uint8_t sum[DIGEST_LEN];
	unsigned n = 0;

	/* Die with the daemon rather than outlive a SIGKILL of it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(4);
	/* Drop every inherited descriptor but the output: a socket the
	 * parent closes meanwhile must really close, and its epoll
	 * registration must go with it. */
	if (fd > 3)
		close_range(3, (unsigned)fd - 1, 0);
	close_range((unsigned)fd + 1, ~0u, 0);
	/* Background work: on a busy machine the loops of the daemons (and
	 * their heartbeats) must win the CPU. */
	if (nice(19) == -1) {
		/* Unchanged priority is fine. */
	}
	o.md = EVP_MD_CTX_new();
	if (o.md == NULL || EVP_DigestInit_ex(o.md, f->sha256, NULL) != 1)
		_exit(2);
	if (store_snapshot_stream(f->store, CHILD_CHUNK, child_write, &o) != 0)
		_exit(3);
	if (EVP_DigestFinal_ex(o.md, sum, &n) != 1 || n != DIGEST_LEN ||
	    write_all(fd, sum, DIGEST_LEN, CHILD_MARKER_LEN) != 0 ||
	    write_all(fd, child_done, CHILD_MARKER_LEN, 0) != 0)
		_exit(3);
	_exit(0);
}

/* On the loop: starts a child. Returns 0 or -errno (nothing started). */
static int fork_start(struct fsm *f)
{
	pid_t parent = getpid();
	pid_t pid;
	int fd;

	fd = memfd_create("capstan-snapshot", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	if (pid == 0)
		child_main(f, fd, parent);
	f->child = pid;
	f->memfd = fd;
	return 0;
}

/* Waits for the child (at most CHILD_WAIT_MS, then kills it). Returns 0
 * when it exited 0, -ECHILD when someone else reaped it, else -EIO. */
static int child_wait(struct fsm *f)
{
	struct timespec nap = {0, 200000};
	unsigned waited_us = 0;
	int status;

	for (;;) {
		pid_t w = waitpid(f->child, &status, WNOHANG);
		if (w == f->child)
			break;
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			f->child = 0;
			return errno == ECHILD ? -ECHILD : -EIO;
		}
		if (waited_us / 1000u >= CHILD_WAIT_MS) {
			kill(f->child, SIGKILL);
			while (waitpid(f->child, &status, 0) < 0 && errno == EINTR)
				;
			f->child = 0;
			snprintf(f->async_errmsg, sizeof f->async_errmsg,
				 "snapshot child took over %u s: killed",
				 CHILD_WAIT_MS / 1000u);
			return -EIO;
		}
		nanosleep(&nap, NULL);
		waited_us += (unsigned)(nap.tv_nsec / 1000);
		if (nap.tv_nsec < 5000000)
			nap.tv_nsec *= 2;
	}
	f->child = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(f->async_errmsg, sizeof f->async_errmsg,
			 "snapshot child failed (%s %d)",
			 WIFEXITED(status) ? "exit" : "signal",
			 WIFEXITED(status) ? WEXITSTATUS(status)
					   : WTERMSIG(status));
		return -EIO;
	}
	return 0;
}

/* Unmapping a snapshot frees its pages, the whole store's worth: 2.5-5 ms
 * on the loop per snapshot, measured under load. A short-lived thread
 * does it instead (at once if none can start). */
struct unmap_job {
	void *map;
	size_t len;
};

static void *unmap_main(void *arg)
{
	struct unmap_job *j = arg;

	munmap(j->map, j->len);
	free(j);
	return NULL;
}

static void unmap_later(void *map, size_t len)
{
	struct unmap_job *j = malloc(sizeof *j);

	if (j != NULL) {
		j->map = map;
		j->len = len;
	}
	if (j == NULL || thread_start_detached(unmap_main, j) != 0) {
		free(j);
		munmap(map, len);
	}
}

/* Kills and reaps a child still running and drops its output. */
static void fork_discard(struct fsm *f)
{
	if (f->child > 0) {
		int status;
		kill(f->child, SIGKILL);
		while (waitpid(f->child, &status, 0) < 0 && errno == EINTR)
			;
		f->child = 0;
	}
	if (f->memfd >= 0) {
		close(f->memfd);
		f->memfd = -1;
	}
	if (f->map != NULL) {
		unmap_later(f->map, f->map_len);
		f->map = NULL;
		f->map_len = 0;
	}
}

/* In the thread pool: waits for the child and turns its output into the
 * two snapshot buffers. Returns 0 or a RAFT_* code. */
static int fork_finish(struct fsm *f, struct raft_buffer *bufs[],
		       unsigned *n_bufs)
{
	struct raft_buffer *b;
	struct stat st;
	uint8_t *map;
	size_t len;
	int rv;

	rv = child_wait(f);
	if (rv != 0 && rv != -ECHILD)
		goto err;
	if (fstat(f->memfd, &st) != 0 || st.st_size < CHILD_MARKER_LEN) {
		snprintf(f->async_errmsg, sizeof f->async_errmsg,
			 "snapshot child wrote nothing");
		goto err;
	}
	len = (size_t)st.st_size;
	map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, f->memfd, 0);
	if (map == MAP_FAILED) {
		snprintf(f->async_errmsg, sizeof f->async_errmsg,
			 "mapping the snapshot: %s", strerror(errno));
		goto err;
	}
	close(f->memfd);
	f->memfd = -1;
	f->map = map;
	f->map_len = len;
	if (memcmp(map, child_done, CHILD_MARKER_LEN) != 0) {
		snprintf(f->async_errmsg, sizeof f->async_errmsg,
			 "snapshot child did not finish");
		goto err;
	}
	b = calloc(2, sizeof *b);
	if (b == NULL)
		goto err_nomem;
	b[0].base = malloc(FSM_SNAPSHOT_HEADER_LEN);
	if (b[0].base == NULL) {
		free(b);
		goto err_nomem;
	}
	b[0].len = FSM_SNAPSHOT_HEADER_LEN;
	b[1].base = map + CHILD_PAYLOAD_OFF;
	b[1].len = len - CHILD_PAYLOAD_OFF;
	header_fields(b[0].base, b[1].len);
	memcpy((uint8_t *)b[0].base + DIGEST_OFF, map + CHILD_MARKER_LEN,
	       DIGEST_LEN);
	*bufs = b;
	*n_bufs = 2;
	return 0;

err_nomem:
	snprintf(f->async_errmsg, sizeof f->async_errmsg,
		 "snapshot: out of memory");
	return RAFT_NOMEM;
err:
	return RAFT_IOERR;
}

/* ------------------------------------------------------------ raft_fsm */

/* Two buffers (header, store encoding) so that the encoding is not copied;
 * libraft's uv io writes them back to back and hands restore() one buffer.
 * With fork snapshots this only starts the child and leaves both buffers
 * to fsm_snapshot_async(). */
static int fsm_snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[],
			unsigned *n_bufs)
{
	struct fsm *f = rf->data;
	struct raft_buffer *b;
	void *payload;
	size_t payload_len;
	int rv;

	fork_discard(f); /* leftovers of an abandoned attempt */
	f->async_errmsg[0] = '\0';
	if (f->fork_snapshots && f->sha256 != NULL &&
	    f->fork_failures < FSM_FORK_FAILURES_MAX) {
		rv = fork_start(f);
		if (rv == 0) {
			*bufs = NULL;
			*n_bufs = 0;
			return 0;
		}
		snprintf(f->errmsg, sizeof f->errmsg, "snapshot fork: %s",
			 strerror(-rv));
		f->fork_failures++;
		return rv == -ENOMEM ? RAFT_NOMEM : RAFT_IOERR;
	}

	b = calloc(2, sizeof *b);
	if (b == NULL)
		return RAFT_NOMEM;
	b[0].base = malloc(FSM_SNAPSHOT_HEADER_LEN);
	if (b[0].base == NULL)
		goto err_nomem;
	rv = store_snapshot(f->store, &payload, &payload_len);
	if (rv != 0) {
		snprintf(f->errmsg, sizeof f->errmsg, "store snapshot: %s",
			 strerror(-rv));
		free(b[0].base);
		free(b);
		return rv == -ENOMEM ? RAFT_NOMEM : RAFT_IOERR;
	}
	if (write_header(b[0].base, payload, payload_len) != 0) {
		free(payload);
		free(b[0].base);
		goto err_nomem;
	}
	b[0].len = FSM_SNAPSHOT_HEADER_LEN;
	b[1].base = payload;
	b[1].len = payload_len;
	*bufs = b;
	*n_bufs = 2;
	return 0;

err_nomem:
	free(b);
	return RAFT_NOMEM;
}

/* Version 3: runs in the thread pool after fsm_snapshot() returned 0 on
 * the loop; libraft applies entries meanwhile, which the child's image
 * does not see. Nothing to do when the loop already encoded. */
static int fsm_snapshot_async(struct raft_fsm *rf, struct raft_buffer *bufs[],
			      unsigned *n_bufs)
{
	struct fsm *f = rf->data;

	if (f->memfd < 0)
		return 0;
	return fork_finish(f, bufs, n_bufs);
}

/* Version 2 contract: the fsm frees what it allocated, on the loop, after
 * libraft stored the snapshot or gave up on it. */
static int fsm_snapshot_finalize(struct raft_fsm *rf, struct raft_buffer *bufs[],
				 unsigned *n_bufs)
{
	struct fsm *f = rf->data;
	bool had_fork = f->memfd >= 0 || f->map != NULL || f->child > 0;

	if (*bufs != NULL) {
		for (unsigned i = 0; i < *n_bufs; i++) {
			uint8_t *base = (*bufs)[i].base;
			if (f->map != NULL &&
			    base == (uint8_t *)f->map + CHILD_PAYLOAD_OFF)
				continue; /* unmapped below */
			free(base);
		}
		free(*bufs);
	}
	if (had_fork) {
		if (*bufs != NULL) {
			f->fork_failures = 0;
		} else {
			f->fork_failures++;
			snprintf(f->errmsg, sizeof f->errmsg, "%s",
				 f->async_errmsg[0] != '\0'
					 ? f->async_errmsg
					 : "snapshot abandoned");
		}
	}
	fork_discard(f);
	*bufs = NULL;
	*n_bufs = 0;
	return 0;
}

/* On success the buffer is ours (raft_free); on failure libraft frees it,
 * and at start-up raft_start() fails with our code. */
static int fsm_restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
	struct fsm *f = rf->data;
	int rv;

	rv = fsm_restore_buffer(f, buf->base, buf->len);
	if (rv == -ENOMEM)
		return RAFT_NOMEM;
	if (rv != 0)
		return RAFT_CORRUPT;
	raft_free(buf->base);
	return 0;
}

void fsm_init(struct fsm *f, struct store *store)
{
	memset(f, 0, sizeof *f);
	f->store = store;
	f->memfd = -1;
	f->fork_snapshots = true;
	/* Fetched once, before any fork: the child must not look algorithms
	 * up (locks another thread may have held at the fork). NULL (no
	 * memory) leaves snapshots on the loop. */
	f->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	f->raft_fsm.version = 3;
	f->raft_fsm.data = f;
	f->raft_fsm.apply = fsm_apply;
	f->raft_fsm.snapshot = fsm_snapshot;
	f->raft_fsm.restore = fsm_restore;
	f->raft_fsm.snapshot_finalize = fsm_snapshot_finalize;
	f->raft_fsm.snapshot_async = fsm_snapshot_async;
}

void fsm_close(struct fsm *f)
{
	if (f == NULL)
		return;
	fork_discard(f);
	EVP_MD_free(f->sha256);
	f->sha256 = NULL;
	f->hook = NULL;
	f->store = NULL;
}

void fsm_set_fork_snapshots(struct fsm *f, bool on)
{
	f->fork_snapshots = on;
	f->fork_failures = 0;
	/* Without it libraft takes the synchronous path and accepts an io
	 * that lacks async_work (raft_fixture's io says version 0). */
	f->raft_fsm.snapshot_async = on ? fsm_snapshot_async : NULL;
}

void fsm_set_hook(struct fsm *f, fsm_apply_hook hook, void *data)
{
	f->hook = hook;
	f->hook_data = data;
}

const char *fsm_errmsg(const struct fsm *f)
{
	return f->errmsg;
}
