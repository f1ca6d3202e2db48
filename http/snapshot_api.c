/* GET /capstan/v1/snapshot: a consistent backup of the whole store.
 *
 * The read is linearizable, through the same machinery as the store view's
 * consistent reads (read.c: a barrier on the leader, the leader's read
 * index on a follower), so the file holds every write acknowledged before
 * the request arrived. Then the store's own snapshot encoding
 * (store_snapshot) is wrapped in the backup file format of
 * src/lib/snapfile.h (magic, version, revision, key count, time,
 * SHA-256 checksums) and sent as application/octet-stream.
 *
 * The encoding runs on the loop: about 40 ms for 100,000 keys, which is
 * accepted for now (backups are rare and only system:masters may ask).
 * The store is single-threaded, so moving it to the pool would need a
 * copy-on-write view of the tree first.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/internal.h"
#include "src/lib/snapfile.h"

struct snap_op {
	struct http_read_wait w; /* first */
};

/* Owns the encoded snapshot until the request's pool is disposed, which
 * happens only after h2o is done sending from it. */
struct snap_buf {
	void *data;
};

static void snap_buf_dispose(void *p)
{
	struct snap_buf *b = p;

	free(b->data);
	b->data = NULL;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void send_snapshot(h2o_req_t *req, struct store *st)
{
	static h2o_generator_t generator = {NULL, NULL};
	struct snap_buf *b;
	unsigned char *header;
	h2o_iovec_t bufs[2];
	void *data = NULL;
	size_t len = 0;
	char *rev;
	int rv;

	rv = store_snapshot(st, &data, &len);
	if (rv != 0) {
		http_send_status(req, 500, NULL, "cannot encode the snapshot: %s", strerror(-rv));
		return;
	}
	b = h2o_mem_alloc_shared(&req->pool, sizeof(*b), snap_buf_dispose);
	b->data = data;
	header = h2o_mem_alloc_pool(&req->pool, SNAPFILE_HEADER_LEN);
	rv = snapfile_header_encode(store_revision(st), (uint64_t)store_count(st), wall_ms(),
				    NULL, data, len, header);
	if (rv != 0) {
		http_send_status(req, 500, NULL, "cannot checksum the snapshot");
		return;
	}
	rev = h2o_mem_alloc_pool(&req->pool, 24);
	snprintf(rev, 24, "%" PRIu64, store_revision(st));
	req->res.status = 200;
	req->res.reason = "OK";
	req->res.content_length = SNAPFILE_HEADER_LEN + len;
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
		       H2O_STRLIT("application/octet-stream"));
	h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-capstan-revision"), 0,
			      NULL, rev, strlen(rev));
	bufs[0] = h2o_iovec_init(header, SNAPFILE_HEADER_LEN);
	bufs[1] = h2o_iovec_init(data, len);
	h2o_start_response(req, &generator);
	h2o_send(req, bufs, 2, H2O_SEND_STATE_FINAL);
}

static void ready_cb(struct http_read_wait *w, int status)
{
	struct snap_op *op = (struct snap_op *)w;
	struct store *st = replica_store(w->op.server->replica);
	struct http_request *hr = w->op.hr;
	h2o_req_t *req = http__op_detach(&w->op);

	if (req == NULL || status == 0) {
		if (req != NULL)
			send_snapshot(req, st);
		http__op_free(&op->w.op);
		return;
	}
	http__op_free(&op->w.op);
	/* Idempotent: wait for a leader and try again. */
	if (status == 503)
		http__wait_leader(hr, 503, "cannot take a consistent snapshot: no leader reachable");
	else
		http__wait_leader(hr, 504, "timed out waiting for a consistent read");
}

void http__snapshot(struct http_request *hr)
{
	struct snap_op *op;

	op = http__op_new(hr, sizeof(*op));
	if (op == NULL)
		return;
	http__read_start(hr->server, &op->w, ready_cb);
}
