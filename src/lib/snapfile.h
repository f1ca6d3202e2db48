/* The capstan backup file ("capstan snapshot save"): a fixed header, then
 * the store's own snapshot encoding (raft/store.h store_snapshot()) as the
 * payload. Plain C and OpenSSL (SHA-256); no store, no libraft.
 *
 * WARNING: this is an on-disk format. Layout of format version 1, all
 * integers big-endian:
 *    0  magic "CAPSTANB"             8 bytes
 *    8  format version (1)           u32
 *   12  header length (128)          u32
 *   16  store revision               u64
 *   24  key count                    u64
 *   32  created, ms since the epoch  u64
 *   40  payload length               u64
 *   48  cluster id, NUL-padded       16 bytes ("" when none)
 *   64  SHA-256 of the payload       32 bytes
 *   96  SHA-256 of bytes 0..95       32 bytes
 *  128  payload
 * A reader refuses any other version, a short or long file, and any
 * checksum mismatch, so a single flipped byte anywhere is caught.
 */
#ifndef CAPSTAN_SNAPFILE_H
#define CAPSTAN_SNAPFILE_H

#include <stddef.h>
#include <stdint.h>

#define SNAPFILE_MAGIC "CAPSTANB"
#define SNAPFILE_VERSION 1u
#define SNAPFILE_HEADER_LEN 128u
#define SNAPFILE_CLUSTER_ID_MAX 16u

struct snapfile_header {
	uint32_t version;
	uint64_t revision;
	uint64_t key_count;
	uint64_t created_ms;
	uint64_t payload_len;
	char cluster_id[SNAPFILE_CLUSTER_ID_MAX + 1]; /* NUL-terminated */
	unsigned char payload_sha256[32];
};

/* Writes the header of @payload (borrowed) into @out. @cluster_id may be
 * NULL; longer ids are cut to SNAPFILE_CLUSTER_ID_MAX bytes.
 * Errors: -EIO (OpenSSL failed). */
int snapfile_header_encode(uint64_t revision, uint64_t key_count, uint64_t created_ms,
			   const char *cluster_id, const void *payload, size_t payload_len,
			   unsigned char out[SNAPFILE_HEADER_LEN]);

/* Checks a whole file image: magic, version, header checksum, length and
 * payload checksum. On success fills *ret_header and points *ret_payload
 * into @buf. Errors: -EBADMSG with a one-line reason in @errmsg (not a
 * capstan snapshot, unsupported version, truncated, checksum mismatch),
 * -EIO (OpenSSL failed). */
int snapfile_parse(const void *buf, size_t len, struct snapfile_header *ret_header,
		   const void **ret_payload, char *errmsg, size_t errmsg_len);

/* Reads @path whole into a malloc'ed buffer and parses it as above.
 * Errors: those of snapfile_parse(), negative errno of open/read (message
 * in @errmsg), -ENOMEM. */
int snapfile_load(const char *path, void **ret_buf, size_t *ret_len,
		  struct snapfile_header *ret_header, const void **ret_payload,
		  char *errmsg, size_t errmsg_len);

#endif
