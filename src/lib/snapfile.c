/* The capstan backup file format (see snapfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "src/lib/snapfile.h"

#define OFF_VERSION 8
#define OFF_HEADER_LEN 12
#define OFF_REVISION 16
#define OFF_KEYS 24
#define OFF_CREATED 32
#define OFF_PAYLOAD_LEN 40
#define OFF_CLUSTER_ID 48
#define OFF_PAYLOAD_SHA 64
#define OFF_HEADER_SHA 96

static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static uint32_t get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static int sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int n = 0;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return -EIO;
	return 0;
}

int snapfile_header_encode(uint64_t revision, uint64_t key_count, uint64_t created_ms,
			   const char *cluster_id, const void *payload, size_t payload_len,
			   unsigned char out[SNAPFILE_HEADER_LEN])
{
	size_t id_len = cluster_id != NULL ? strlen(cluster_id) : 0;
	int rv;

	memset(out, 0, SNAPFILE_HEADER_LEN);
	memcpy(out, SNAPFILE_MAGIC, 8);
	put_u32(out + OFF_VERSION, SNAPFILE_VERSION);
	put_u32(out + OFF_HEADER_LEN, SNAPFILE_HEADER_LEN);
	put_u64(out + OFF_REVISION, revision);
	put_u64(out + OFF_KEYS, key_count);
	put_u64(out + OFF_CREATED, created_ms);
	put_u64(out + OFF_PAYLOAD_LEN, (uint64_t)payload_len);
	if (id_len > SNAPFILE_CLUSTER_ID_MAX)
		id_len = SNAPFILE_CLUSTER_ID_MAX;
	if (id_len > 0)
		memcpy(out + OFF_CLUSTER_ID, cluster_id, id_len);
	rv = sha256(payload, payload_len, out + OFF_PAYLOAD_SHA);
	if (rv == 0)
		rv = sha256(out, OFF_HEADER_SHA, out + OFF_HEADER_SHA);
	return rv;
}

int snapfile_parse(const void *buf, size_t len, struct snapfile_header *ret_header,
		   const void **ret_payload, char *errmsg, size_t errmsg_len)
{
	const unsigned char *p = buf;
	struct snapfile_header h;
	unsigned char sum[32];
	uint32_t header_len;
	int rv;

	if (len < 8 || memcmp(p, SNAPFILE_MAGIC, 8) != 0) {
		snprintf(errmsg, errmsg_len, "not a capstan snapshot (no CAPSTANB magic)");
		return -EBADMSG;
	}
	if (len < SNAPFILE_HEADER_LEN) {
		snprintf(errmsg, errmsg_len, "truncated snapshot: %zu bytes, the header alone is %u",
			 len, SNAPFILE_HEADER_LEN);
		return -EBADMSG;
	}
	rv = sha256(p, OFF_HEADER_SHA, sum);
	if (rv != 0) {
		snprintf(errmsg, errmsg_len, "cannot compute SHA-256");
		return rv;
	}
	if (memcmp(sum, p + OFF_HEADER_SHA, 32) != 0) {
		snprintf(errmsg, errmsg_len, "corrupt snapshot: header checksum mismatch");
		return -EBADMSG;
	}
	memset(&h, 0, sizeof h);
	h.version = get_u32(p + OFF_VERSION);
	header_len = get_u32(p + OFF_HEADER_LEN);
	if (h.version != SNAPFILE_VERSION || header_len != SNAPFILE_HEADER_LEN) {
		snprintf(errmsg, errmsg_len,
			 "unsupported snapshot format version %u (this build reads %u)",
			 (unsigned)h.version, SNAPFILE_VERSION);
		return -EBADMSG;
	}
	h.revision = get_u64(p + OFF_REVISION);
	h.key_count = get_u64(p + OFF_KEYS);
	h.created_ms = get_u64(p + OFF_CREATED);
	h.payload_len = get_u64(p + OFF_PAYLOAD_LEN);
	memcpy(h.cluster_id, p + OFF_CLUSTER_ID, SNAPFILE_CLUSTER_ID_MAX);
	memcpy(h.payload_sha256, p + OFF_PAYLOAD_SHA, 32);
	if (h.payload_len != len - SNAPFILE_HEADER_LEN) {
		snprintf(errmsg, errmsg_len,
			 "%s snapshot: the header announces %llu payload bytes, the file has %zu",
			 h.payload_len > len - SNAPFILE_HEADER_LEN ? "truncated" : "corrupt",
			 (unsigned long long)h.payload_len, len - SNAPFILE_HEADER_LEN);
		return -EBADMSG;
	}
	rv = sha256(p + SNAPFILE_HEADER_LEN, len - SNAPFILE_HEADER_LEN, sum);
	if (rv != 0) {
		snprintf(errmsg, errmsg_len, "cannot compute SHA-256");
		return rv;
	}
	if (memcmp(sum, h.payload_sha256, 32) != 0) {
		snprintf(errmsg, errmsg_len, "corrupt snapshot: payload checksum mismatch");
		return -EBADMSG;
	}
	*ret_header = h;
	*ret_payload = p + SNAPFILE_HEADER_LEN;
	return 0;
}

int snapfile_load(const char *path, void **ret_buf, size_t *ret_len,
		  struct snapfile_header *ret_header, const void **ret_payload,
		  char *errmsg, size_t errmsg_len)
{
	struct stat st;
	unsigned char *buf = NULL;
	size_t off = 0;
	int fd, rv;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rv = -errno;
		snprintf(errmsg, errmsg_len, "cannot open %s: %s", path, strerror(errno));
		return rv;
	}
	if (fstat(fd, &st) != 0) {
		rv = -errno;
		snprintf(errmsg, errmsg_len, "cannot stat %s: %s", path, strerror(errno));
		goto err_after_open;
	}
	if (!S_ISREG(st.st_mode)) {
		rv = -EINVAL;
		snprintf(errmsg, errmsg_len, "%s is not a regular file", path);
		goto err_after_open;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rv = -ENOMEM;
		snprintf(errmsg, errmsg_len, "out of memory reading %s", path);
		goto err_after_open;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rv = -errno;
			snprintf(errmsg, errmsg_len, "cannot read %s: %s", path, strerror(errno));
			goto err_after_alloc;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	rv = snapfile_parse(buf, off, ret_header, ret_payload, errmsg, errmsg_len);
	if (rv != 0)
		goto err_after_alloc;
	close(fd);
	*ret_buf = buf;
	*ret_len = off;
	return 0;

err_after_alloc:
	free(buf);
err_after_open:
	close(fd);
	return rv;
}
