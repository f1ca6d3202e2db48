/* Benchmark of the MVCC store: apply rate, memory, list and snapshot cost.
 * Prints figures; asserts nothing. Build without --enable-debug and
 * --enable-sanitize for meaningful numbers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raft/store.h"

#define N_KEYS 100000
#define N_NS 100
#define VAL_LEN 256
#define LIST_ROUNDS 200

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* VmRSS in KiB, or -1. */
static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long kib = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kib = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kib;
}

static int count_cb(const struct store_kv *kv, void *data)
{
	size_t *n = data;
	(void)kv;
	(*n)++;
	return 0;
}

int main(void)
{
	struct store *s;
	struct store_result res;
	unsigned char val[VAL_LEN];
	char key[64];
	double t0, t1;
	long rss0, rss1;
	size_t listed = 0, i;
	void *snap;
	size_t snap_len;
	int rv;

	for (i = 0; i < VAL_LEN; i++)
		val[i] = (unsigned char)(i * 31u + 7u);
	rss0 = rss_kib();
	if (store_new(NULL, &s) != 0)
		return 1;

	t0 = now_s();
	for (i = 0; i < N_KEYS; i++) {
		struct store_cmd cmd = {.type = STORE_CMD_PUT,
					.time_ms = 1000000 + i,
					.key = key,
					.val = val,
					.val_len = VAL_LEN};
		int n = snprintf(key, sizeof(key), "/registry/pods/ns-%zu/pod-%zu",
				 i % N_NS, i);
		cmd.key_len = (size_t)n;
		/* Vary the value a little so blobs are not all alike. */
		memcpy(val, &i, sizeof(i));
		rv = store_apply(s, &cmd, &res);
		if (rv != 0 || res.status != 0) {
			fprintf(stderr, "apply failed: %d %d\n", rv, res.status);
			return 1;
		}
	}
	t1 = now_s();
	rss1 = rss_kib();
	printf("puts: %d keys x %d B values in %.3f s: %.0f applies/s\n",
	       N_KEYS, VAL_LEN, t1 - t0, N_KEYS / (t1 - t0));
	printf("rss: before %ld KiB, after %ld KiB (%.1f MiB; history %llu "
	       "events)\n",
	       rss0, rss1, (double)rss1 / 1024.0,
	       (unsigned long long)(store_revision(s) - store_compacted(s)));

	t0 = now_s();
	for (i = 0; i < LIST_ROUNDS; i++) {
		bool more;
		rv = store_range(s, "/registry/pods/ns-42/", 21, NULL, 0, 0,
				 count_cb, &listed, &more);
		if (rv != 0)
			return 1;
	}
	t1 = now_s();
	printf("list one namespace (%zu keys): %.1f lists/s, %.0f keys/s\n",
	       listed / LIST_ROUNDS, LIST_ROUNDS / (t1 - t0),
	       (double)listed / (t1 - t0));

	/* The log path: encode on the leader, decode on every replica. */
	t0 = now_s();
	for (i = 0; i < N_KEYS; i++) {
		struct store_cmd cmd = {.type = STORE_CMD_PUT,
					.cond = STORE_COND_MOD_REV,
					.mod_rev = i,
					.time_ms = 1000000 + i,
					.key = key,
					.val = val,
					.val_len = VAL_LEN};
		struct store_cmd dec;
		void *buf;
		size_t len;
		cmd.key_len = (size_t)snprintf(key, sizeof(key),
					       "/registry/pods/ns-%zu/pod-%zu",
					       i % N_NS, i);
		if (store_cmd_encode(&cmd, NULL, &buf, &len) != 0 ||
		    store_cmd_decode(buf, len, &dec) != 0)
			return 1;
		free(buf);
	}
	t1 = now_s();
	printf("command codec: %.0f encode+decode/s\n", N_KEYS / (t1 - t0));

	t0 = now_s();
	rv = store_snapshot(s, &snap, &snap_len);
	t1 = now_s();
	if (rv != 0)
		return 1;
	printf("snapshot encode: %zu bytes (%.1f MiB) in %.3f s\n", snap_len,
	       (double)snap_len / (1024.0 * 1024.0), t1 - t0);

	{
		struct store *r;
		if (store_new(NULL, &r) != 0)
			return 1;
		t0 = now_s();
		rv = store_restore(r, snap, snap_len);
		t1 = now_s();
		if (rv != 0)
			return 1;
		printf("snapshot restore: %zu keys in %.3f s\n", store_count(r),
		       t1 - t0);
		store_free(r);
	}

	free(snap);
	store_free(s);
	return 0;
}
