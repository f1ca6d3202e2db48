/* The Raft state machine over the store (see fsm.h for the formats). */
#include "raft/fsm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int write_header(uint8_t header[FSM_SNAPSHOT_HEADER_LEN],
			const void *payload, size_t payload_len)
{
	memcpy(header, snapshot_magic, sizeof snapshot_magic);
	put_le32(header + 8, FSM_SNAPSHOT_FORMAT);
	put_le32(header + 12, 0);
	put_le64(header + 16, (uint64_t)payload_len);
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

/* Two buffers (header, store encoding) so that the encoding is not copied;
 * libraft's uv io writes them back to back and hands restore() one buffer. */
static int fsm_snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[],
			unsigned *n_bufs)
{
	struct fsm *f = rf->data;
	struct raft_buffer *b;
	void *payload;
	size_t payload_len;
	int rv;

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

/* Version 2 contract: the fsm frees what fsm_snapshot() allocated. */
static int fsm_snapshot_finalize(struct raft_fsm *rf, struct raft_buffer *bufs[],
				 unsigned *n_bufs)
{
	(void)rf;
	if (*bufs != NULL) {
		for (unsigned i = 0; i < *n_bufs; i++)
			free((*bufs)[i].base);
		free(*bufs);
	}
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
	f->raft_fsm.version = 2;
	f->raft_fsm.data = f;
	f->raft_fsm.apply = fsm_apply;
	f->raft_fsm.snapshot = fsm_snapshot;
	f->raft_fsm.restore = fsm_restore;
	f->raft_fsm.snapshot_finalize = fsm_snapshot_finalize;
}

void fsm_close(struct fsm *f)
{
	if (f == NULL)
		return;
	f->hook = NULL;
	f->store = NULL;
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
