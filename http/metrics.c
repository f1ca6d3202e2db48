/* Prometheus metrics: request series in fixed process-wide tables (the loop
 * thread is the only writer and reader), gauges read at scrape time. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http/internal.h"
#include "http/metrics.h"
#include "raft/store.h"
#include "src/api/registry.h"

#define MAX_SERIES 512

/* Kubernetes' apiserver_request_duration_seconds buckets (a subset). */
static const double bucket_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
				   0.5,   1,    2.5,   5,    10};
static const char *const bucket_str[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
					 "0.5",   "1",    "2.5",   "5",    "10"};
#define N_BUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))

/* verb and resource point to string literals or registry tables. */
struct counter {
	const char *verb, *resource;
	int code;
	uint64_t n;
};

struct histogram {
	const char *verb, *resource;
	uint64_t buckets[N_BUCKETS]; /* not cumulative; +Inf is count */
	uint64_t count;
	double sum;
};

static struct counter counters[MAX_SERIES];
static size_t n_counters;
static struct histogram histograms[MAX_SERIES];
static size_t n_histograms;
static uint64_t watch_streams;

/* Lives in the request's pool; copies what it needs since the request
 * context may be released before it. */
struct record {
	h2o_req_t *req;
	uint64_t start_ns;
	const char *verb;
	const char *resource;
	bool watch;
};

static void count(const char *verb, const char *resource, int code, double seconds,
		  bool observe)
{
	size_t i, b;

	for (i = 0; i < n_counters; i++)
		if (counters[i].code == code && strcmp(counters[i].verb, verb) == 0 &&
		    strcmp(counters[i].resource, resource) == 0)
			break;
	if (i == n_counters && n_counters < MAX_SERIES) {
		counters[i].verb = verb;
		counters[i].resource = resource;
		counters[i].code = code;
		n_counters++;
	}
	if (i < n_counters)
		counters[i].n++;
	if (!observe)
		return;
	for (i = 0; i < n_histograms; i++)
		if (strcmp(histograms[i].verb, verb) == 0 &&
		    strcmp(histograms[i].resource, resource) == 0)
			break;
	if (i == n_histograms) {
		if (n_histograms == MAX_SERIES)
			return;
		histograms[i].verb = verb;
		histograms[i].resource = resource;
		n_histograms++;
	}
	for (b = 0; b < N_BUCKETS; b++)
		if (seconds <= bucket_le[b]) {
			histograms[i].buckets[b]++;
			break;
		}
	histograms[i].count++;
	histograms[i].sum += seconds;
}

static void record_dispose(void *p)
{
	struct record *r = p;
	double seconds;

	if (r->watch)
		watch_streams--;
	if (r->req->res.status <= 0)
		return;
	seconds = (double)(uv_hrtime() - r->start_ns) / 1e9;
	/* Like Kubernetes, long-running watches are counted but not timed. */
	count(r->verb, r->resource, r->req->res.status, seconds, !r->watch);
}

/* Splits the segment at @*pos of @path (advances past it and its '/'). */
static bool next_segment(h2o_iovec_t path, size_t *pos, char *buf, size_t size)
{
	size_t start = *pos, end = start;

	if (start >= path.len)
		return false;
	while (end < path.len && path.base[end] != '/')
		end++;
	*pos = end < path.len ? end + 1 : end;
	if (end - start >= size)
		buf[0] = '\0';
	else {
		memcpy(buf, path.base + start, end - start);
		buf[end - start] = '\0';
	}
	return true;
}

static bool query_true(struct http_request *hr, const char *name)
{
	h2o_iovec_t v;

	return http__query(hr, name, &v) &&
	       (h2o_memis(v.base, v.len, H2O_STRLIT("true")) || h2o_memis(v.base, v.len, H2O_STRLIT("1")));
}

/* The resource of a Kubernetes API path (registry plural or "other"), and
 * whether the path names a collection. */
static const char *kapi_resource(h2o_iovec_t path, bool *ret_collection, bool *ret_watch)
{
	char group[128], version[32], seg[4][128];
	const struct api_kind *k;
	const char *plural;
	size_t pos = 1, n = 0, name_at;

	*ret_collection = false;
	*ret_watch = false;
	if (!next_segment(path, &pos, seg[0], sizeof(seg[0])))
		return "other";
	if (strcmp(seg[0], "api") == 0) {
		group[0] = '\0';
	} else if (strcmp(seg[0], "apis") == 0) {
		if (!next_segment(path, &pos, group, sizeof(group)))
			return "other";
	} else {
		return "other";
	}
	if (!next_segment(path, &pos, version, sizeof(version)))
		return "other";
	while (n < 4 && next_segment(path, &pos, seg[n], sizeof(seg[n])))
		n++;
	if (n > 0 && strcmp(seg[0], "watch") == 0) { /* the legacy /watch/ paths */
		*ret_watch = true;
		memmove(seg[0], seg[1], sizeof(seg[0]) * 3);
		n--;
	}
	if (n >= 3 && strcmp(seg[0], "namespaces") == 0) {
		plural = seg[2];
		name_at = 3;
	} else if (n >= 1) {
		plural = seg[0];
		name_at = 1;
	} else {
		return "other";
	}
	k = api_kind_by_resource(group, version, plural);
	if (k == NULL)
		return "other";
	*ret_collection = n <= name_at;
	return k->plural;
}

static bool header_is(h2o_req_t *req, const h2o_token_t *token, const char *prefix)
{
	ssize_t i = h2o_find_header(&req->headers, token, -1);
	size_t n = strlen(prefix);

	return i >= 0 && req->headers.entries[i].value.len >= n &&
	       strncasecmp(req->headers.entries[i].value.base, prefix, n) == 0;
}

void http__metrics_begin(struct http_request *hr)
{
	h2o_req_t *req = hr->req;
	struct record *r;
	const char *resource = "other";
	bool collection = false, watch = false, get;
	size_t rest = strlen("/capstan/v1/store");

	get = http__method_is(req, "GET") || http__method_is(req, "HEAD");
	if (hr->path.len >= rest && memcmp(hr->path.base, "/capstan/v1/store", rest) == 0 &&
	    (hr->path.len == rest || hr->path.base[rest] == '/')) {
		resource = "capstan-store";
		collection = query_true(hr, "list");
	} else {
		resource = kapi_resource(hr->path, &collection, &watch);
	}
	if (get && query_true(hr, "watch"))
		watch = true;

	r = h2o_mem_alloc_shared(&req->pool, sizeof(*r), record_dispose);
	r->req = req;
	r->start_ns = uv_hrtime();
	r->resource = resource;
	r->watch = watch && get;
	if (r->watch)
		r->verb = "WATCH";
	else if (get)
		r->verb = collection ? "LIST" : "GET";
	else if (http__method_is(req, "POST"))
		r->verb = "POST";
	else if (http__method_is(req, "PUT"))
		r->verb = "PUT";
	else if (http__method_is(req, "PATCH"))
		r->verb = header_is(req, H2O_TOKEN_CONTENT_TYPE, "application/apply-patch") ? "APPLY"
											 : "PATCH";
	else if (http__method_is(req, "DELETE"))
		r->verb = collection ? "DELETECOLLECTION" : "DELETE";
	else
		r->verb = "OTHER";
	if (r->watch)
		watch_streams++;
}

/* ------------------------------------------------------------ scrape */

struct text {
	char *buf;
	size_t len, cap;
	bool oom;
};

static void __attribute__((format(printf, 2, 3))) put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = true;
			return;
		}
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		size_t cap = t->cap * 2 + (size_t)n;
		char *b = realloc(t->buf, cap);
		if (b == NULL) {
			t->oom = true;
			return;
		}
		t->buf = b;
		t->cap = cap;
	}
}

static void header(struct text *t, const char *name, const char *type, const char *help)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Seconds since the epoch at which this process started: the wall clock
 * when the program was loaded (a constructor runs before main), which
 * agrees with the clock scrapers compare it to even when /proc/stat's
 * btime does not (containers, adjusted clocks). */
static double process_start;

static void __attribute__((constructor)) note_start(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
		process_start = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void http__metrics(struct http_request *hr)
{
	struct http_server *s = hr->server;
	struct replica_status *st = NULL;
	struct text t = {0};
	size_t i, b, rss = 0;
	uint64_t cum;

	t.cap = 16384;
	t.buf = malloc(t.cap);
	if (t.buf == NULL)
		goto oom;

	header(&t, "apiserver_request_total", "counter",
	       "Counter of apiserver requests broken out for each verb, resource and HTTP response code.");
	for (i = 0; i < n_counters; i++)
		put(&t, "apiserver_request_total{verb=\"%s\",resource=\"%s\",code=\"%d\"} %llu\n",
		    counters[i].verb, counters[i].resource, counters[i].code,
		    (unsigned long long)counters[i].n);
	header(&t, "apiserver_request_duration_seconds", "histogram",
	       "Response latency distribution in seconds for each verb and resource (watches excluded).");
	for (i = 0; i < n_histograms; i++) {
		const struct histogram *h = &histograms[i];

		for (cum = 0, b = 0; b < N_BUCKETS; b++) {
			cum += h->buckets[b];
			put(&t,
			    "apiserver_request_duration_seconds_bucket{verb=\"%s\",resource=\"%s\",le=\"%s\"} %llu\n",
			    h->verb, h->resource, bucket_str[b], (unsigned long long)cum);
		}
		put(&t,
		    "apiserver_request_duration_seconds_bucket{verb=\"%s\",resource=\"%s\",le=\"+Inf\"} %llu\n"
		    "apiserver_request_duration_seconds_sum{verb=\"%s\",resource=\"%s\"} %.9f\n"
		    "apiserver_request_duration_seconds_count{verb=\"%s\",resource=\"%s\"} %llu\n",
		    h->verb, h->resource, (unsigned long long)h->count, h->verb, h->resource, h->sum,
		    h->verb, h->resource, (unsigned long long)h->count);
	}

	if (s->replica != NULL) {
		st = malloc(sizeof(*st));
		if (st == NULL)
			goto oom;
		replica_get_status(s->replica, st);
		header(&t, "capstan_raft_term", "gauge", "Current Raft term of this replica.");
		put(&t, "capstan_raft_term %llu\n", (unsigned long long)st->term);
		header(&t, "capstan_raft_commit_index", "gauge",
		       "Highest Raft log index known to be committed.");
		put(&t, "capstan_raft_commit_index %llu\n", (unsigned long long)st->commit_index);
		header(&t, "capstan_raft_applied_index", "gauge",
		       "Highest Raft log index applied to the store.");
		put(&t, "capstan_raft_applied_index %llu\n", (unsigned long long)st->applied_index);
		header(&t, "capstan_raft_write_batches_total", "counter",
		       "Batches of writes this replica appended to the Raft log as leader.");
		put(&t, "capstan_raft_write_batches_total %llu\n",
		    (unsigned long long)st->write_batches);
		header(&t, "capstan_raft_batched_writes_total", "counter",
		       "Writes in those batches (divided by the batches: writes per batch).");
		put(&t, "capstan_raft_batched_writes_total %llu\n",
		    (unsigned long long)st->batched_writes);
		header(&t, "capstan_raft_leader", "gauge", "1 if this replica is the Raft leader, else 0.");
		put(&t, "capstan_raft_leader %d\n",
		    st->state != NULL && strcmp(st->state, "leader") == 0 ? 1 : 0);
		header(&t, "capstan_store_revision", "gauge", "Current revision of the MVCC store.");
		put(&t, "capstan_store_revision %llu\n",
		    (unsigned long long)store_revision(replica_store(s->replica)));
		header(&t, "capstan_store_keys", "gauge", "Number of live keys in the store.");
		put(&t, "capstan_store_keys %zu\n", store_count(replica_store(s->replica)));
		free(st);
		st = NULL;
	}
	header(&t, "capstan_watch_streams", "gauge",
	       "Open watch requests (Kubernetes API and store view).");
	put(&t, "capstan_watch_streams %llu\n", (unsigned long long)watch_streams);
	if (uv_resident_set_memory(&rss) != 0)
		rss = 0;
	header(&t, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	put(&t, "process_resident_memory_bytes %zu\n", rss);
	header(&t, "process_start_time_seconds", "gauge",
	       "Start time of the process since unix epoch in seconds.");
	put(&t, "process_start_time_seconds %.3f\n", process_start);
	if (t.oom)
		goto oom;
	http_send_raw(hr->req, 200, "text/plain; version=0.0.4; charset=utf-8", t.buf, t.len);
	free(t.buf);
	return;

oom:
	free(st);
	free(t.buf);
	http_send_status(hr->req, 500, NULL, "out of memory");
}
