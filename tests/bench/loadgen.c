/* loadgen: an HTTP/2 write load generator for capstan and etcd benchmarks. */

/*
 * One thread drives a libcurl multi handle. Every transfer is multiplexed
 * over HTTP/2 (h2c with prior knowledge for http:// URLs, ALPN h2 for
 * https://), so a handful of connections carry CONCURRENCY requests in
 * flight. Each finished request is immediately replaced by a new one
 * (closed loop), or requests start at a fixed rate (--rate, open loop,
 * still capped by CONCURRENCY). Requests started during the warm-up are
 * not measured; a measured request is one started after it. The summary
 * is one JSON object on stdout; --trace adds one line per completion
 * ("ev START END OK URL-INDEX STATUS", CLOCK_MONOTONIC seconds) so that a
 * script can line events up with, say, the moment a leader was killed.
 *
 * libcurl 7.88 (Debian 12) breaks a reused h2c connection when the
 * request asks for prior knowledge again (curl issue #10634, fixed in
 * 7.89): only the first request of a connection may ask for it. So each
 * http:// URL is primed by one request with prior knowledge on a fresh
 * connection, and only once its answer came back do the others follow,
 * asking for plain HTTP/2 (which reuses that connection). An error that
 * loses the connection unprimes the URL.
 *
 * Targets:
 *   capstan  PUT URL/capstan/v1/store/PREFIX/N, body = SIZE bytes;
 *            success = 2xx.
 *   etcd     gRPC etcdserverpb.KV/Put over h2c; success = HTTP 200 and
 *            grpc-status 0 (in the trailers, or in the headers of a
 *            trailers-only answer).
 *   post     POST URL PATH with a JSON body read from --body FILE, where
 *            every "@N@" becomes the request's number (so that, say,
 *            metadata.name is new each time); success = 2xx.
 *   get      GET URL PATH (with --accept); success = 2xx; the summary
 *            adds the bytes received.
 *   watch    CONCURRENCY long GETs of URL PATH (a ?watch=true URL), all
 *            opened at once and held for --duration. Prints "ready N"
 *            once all of them answered 200 (capstan sends the headers
 *            with the first event), and for each ADDED event
 *            "w WATCHER SECONDS NAME" (CLOCK_MONOTONIC, metadata.name).
 *            Over https they are HTTP/2 streams; over http, HTTP/1.1.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

enum target { TARGET_CAPSTAN, TARGET_ETCD, TARGET_POST, TARGET_GET, TARGET_WATCH };

#define MAX_URLS 16
#define SNIPPET 200
#define MAX_REPORTED_ERRORS 10

struct opts {
	enum target target;
	const char *urls[MAX_URLS];
	unsigned n_urls;
	unsigned concurrency;
	double duration;
	uint64_t requests;
	double warmup;
	size_t size;
	const char *prefix;
	uint64_t keys;
	uint64_t start;
	const char *cacert;
	const char *cert;
	const char *key;
	const char *token;
	double rate;
	double timeout;
	bool trace;
	bool verbose;
	const char *path;
	const char *accept;
	char *body_tmpl; /* --body file contents */
	size_t body_tmpl_len;
};

struct slot {
	CURL *easy;
	bool busy;
	bool measured;
	double t_start;
	unsigned url_i;
	bool primer;
	long grpc_status; /* -1 until seen */
	char grpc_message[SNIPPET];
	char snippet[SNIPPET];
	size_t snippet_len;
	char url[512];
	unsigned char body[64 + 65536];
	size_t body_len;
	char errbuf[CURL_ERROR_SIZE];
	uint64_t rx_bytes;
	/* watch: the start of the current event line */
	char line[2048];
	size_t line_len;
	bool answered;
	unsigned index;
};

struct url_state {
	bool tls;
	bool primed;
	bool priming;
};

struct stats {
	double *lat; /* seconds, one per measured success */
	size_t n_lat;
	size_t cap_lat;
	uint64_t errors;
	uint64_t reported;
	long connects;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: loadgen --target capstan|etcd|post|get|watch --url URL [--url URL]... [OPTION]...\n"
		"Sends requests over HTTP/2 and prints a JSON summary.\n"
		"\n"
		"  -t, --target T        capstan (PUT on the store), etcd (gRPC KV/Put),\n"
		"                        post (POST PATH, --body), get (GET PATH) or\n"
		"                        watch (CONCURRENCY watches of PATH for --duration)\n"
		"      --path P          request path for post, get and watch\n"
		"      --body FILE       JSON body for post; \"@N@\" becomes the request number\n"
		"      --accept A        Accept header for get and watch\n"
		"  -u, --url URL         server base URL; repeat to spread requests round-robin\n"
		"  -c, --concurrency N   requests in flight (default 1)\n"
		"  -d, --duration SEC    measure for SEC seconds after the warm-up\n"
		"  -n, --requests N      measure N requests (instead of a duration)\n"
		"  -w, --warmup SEC      unmeasured warm-up (default 0)\n"
		"  -s, --size BYTES      value size (default 256)\n"
		"  -p, --prefix P        key prefix (default bench)\n"
		"  -k, --keys N          reuse N distinct keys (default: every key new)\n"
		"      --start N         first key number (default 0)\n"
		"      --cacert F --cert F --key F   TLS trust and client certificate\n"
		"      --token T         send Authorization: Bearer T\n"
		"  -r, --rate R          start R requests per second (open loop)\n"
		"      --timeout SEC     per-request timeout (default 10)\n"
		"      --trace           print one 'ev' line per completed request\n"
		"  -v, --verbose         libcurl verbose output\n"
		"  -h, --help\n");
}

/* Reads a whole file (up to 64 KiB) into a new NUL-terminated buffer. */
static int read_file(const char *path, char **ret_buf, size_t *ret_len)
{
	FILE *f = fopen(path, "rbe");
	char *buf;
	size_t n;

	if (!f)
		return -errno;
	buf = malloc(65536 + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(buf, 1, 65536, f);
	fclose(f);
	buf[n] = '\0';
	*ret_buf = buf;
	*ret_len = n;
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	enum { O_START = 256, O_CACERT, O_CERT, O_KEY, O_TOKEN, O_TIMEOUT, O_TRACE,
	       O_PATH, O_BODY, O_ACCEPT };
	static const struct option options[] = {
		{"target", required_argument, NULL, 't'},
		{"url", required_argument, NULL, 'u'},
		{"concurrency", required_argument, NULL, 'c'},
		{"duration", required_argument, NULL, 'd'},
		{"requests", required_argument, NULL, 'n'},
		{"warmup", required_argument, NULL, 'w'},
		{"size", required_argument, NULL, 's'},
		{"prefix", required_argument, NULL, 'p'},
		{"keys", required_argument, NULL, 'k'},
		{"start", required_argument, NULL, O_START},
		{"cacert", required_argument, NULL, O_CACERT},
		{"cert", required_argument, NULL, O_CERT},
		{"key", required_argument, NULL, O_KEY},
		{"token", required_argument, NULL, O_TOKEN},
		{"rate", required_argument, NULL, 'r'},
		{"timeout", required_argument, NULL, O_TIMEOUT},
		{"trace", no_argument, NULL, O_TRACE},
		{"path", required_argument, NULL, O_PATH},
		{"body", required_argument, NULL, O_BODY},
		{"accept", required_argument, NULL, O_ACCEPT},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->target = TARGET_CAPSTAN;
	o->concurrency = 1;
	o->size = 256;
	o->prefix = "bench";
	o->timeout = 10;
	while ((c = getopt_long(argc, argv, "t:u:c:d:n:w:s:p:k:r:vh", options, NULL)) != -1) {
		switch (c) {
		case 't':
			if (strcmp(optarg, "capstan") == 0)
				o->target = TARGET_CAPSTAN;
			else if (strcmp(optarg, "etcd") == 0)
				o->target = TARGET_ETCD;
			else if (strcmp(optarg, "post") == 0)
				o->target = TARGET_POST;
			else if (strcmp(optarg, "get") == 0)
				o->target = TARGET_GET;
			else if (strcmp(optarg, "watch") == 0)
				o->target = TARGET_WATCH;
			else
				goto bad;
			break;
		case 'u':
			if (o->n_urls == MAX_URLS)
				goto bad;
			o->urls[o->n_urls++] = optarg;
			break;
		case 'c':
			o->concurrency = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'd':
			o->duration = strtod(optarg, NULL);
			break;
		case 'n':
			o->requests = strtoull(optarg, NULL, 10);
			break;
		case 'w':
			o->warmup = strtod(optarg, NULL);
			break;
		case 's':
			o->size = (size_t)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			o->prefix = optarg;
			break;
		case 'k':
			o->keys = strtoull(optarg, NULL, 10);
			break;
		case O_START:
			o->start = strtoull(optarg, NULL, 10);
			break;
		case O_CACERT:
			o->cacert = optarg;
			break;
		case O_CERT:
			o->cert = optarg;
			break;
		case O_KEY:
			o->key = optarg;
			break;
		case O_TOKEN:
			o->token = optarg;
			break;
		case 'r':
			o->rate = strtod(optarg, NULL);
			break;
		case O_TIMEOUT:
			o->timeout = strtod(optarg, NULL);
			break;
		case O_TRACE:
			o->trace = true;
			break;
		case O_PATH:
			o->path = optarg;
			break;
		case O_BODY:
			if (read_file(optarg, &o->body_tmpl, &o->body_tmpl_len) != 0) {
				fprintf(stderr, "loadgen: cannot read %s\n", optarg);
				goto bad;
			}
			break;
		case O_ACCEPT:
			o->accept = optarg;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			goto bad;
		}
	}
	if (optind != argc || o->n_urls == 0 || o->concurrency == 0 ||
	    (o->duration <= 0 && o->requests == 0) || o->size > 65536 ||
	    o->timeout <= 0)
		goto bad;
	if ((o->target == TARGET_POST || o->target == TARGET_GET ||
	     o->target == TARGET_WATCH) && !o->path)
		goto bad;
	if (o->target == TARGET_POST && !o->body_tmpl)
		goto bad;
	if (o->target == TARGET_WATCH && o->duration <= 0)
		goto bad;
	return 0;
bad:
	usage(stderr);
	return -EINVAL;
}

/* Appends a protobuf base-128 varint. */
static size_t put_varint(unsigned char *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (unsigned char)v;
	return n;
}

/*
 * A gRPC message: 1 byte compressed flag (0), 4 bytes big-endian length,
 * then etcdserverpb.PutRequest { bytes key = 1; bytes value = 2; }, i.e.
 * tag 0x0a, varint length, key, tag 0x12, varint length, value.
 */
static size_t encode_etcd_put(unsigned char *out, const char *key, size_t klen,
			      size_t vlen, unsigned char fill)
{
	unsigned char *p = out + 5;
	size_t len;

	*p++ = 0x0a;
	p += put_varint(p, klen);
	memcpy(p, key, klen);
	p += klen;
	*p++ = 0x12;
	p += put_varint(p, vlen);
	memset(p, fill, vlen);
	p += vlen;
	len = (size_t)(p - (out + 5));
	out[0] = 0;
	out[1] = (unsigned char)(len >> 24);
	out[2] = (unsigned char)(len >> 16);
	out[3] = (unsigned char)(len >> 8);
	out[4] = (unsigned char)len;
	return len + 5;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct slot *s = userdata;
	size_t n = size * nmemb;
	size_t room = sizeof(s->snippet) - 1 - s->snippet_len;
	size_t take = n < room ? n : room;

	memcpy(s->snippet + s->snippet_len, ptr, take);
	s->snippet_len += take;
	s->snippet[s->snippet_len] = '\0';
	s->rx_bytes += n;
	return n;
}

/* An event line of a watch: report ADDED with the object's name. */
static void watch_line(struct slot *s, double t)
{
	const char *name;
	size_t len;

	if (!strstr(s->line, "\"type\":\"ADDED\""))
		return;
	name = strstr(s->line, "\"name\":\"");
	if (!name)
		return;
	name += 8;
	len = strcspn(name, "\"");
	printf("w %u %.6f %.*s\n", s->index, t, (int)len, name);
}

static size_t watch_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct slot *s = userdata;
	size_t n = size * nmemb, i;
	double t = now();

	s->rx_bytes += n;
	for (i = 0; i < n; i++) {
		if (ptr[i] == '\n') {
			s->line[s->line_len] = '\0';
			watch_line(s, t);
			s->line_len = 0;
		} else if (s->line_len < sizeof(s->line) - 1) {
			s->line[s->line_len++] = ptr[i];
		}
	}
	return n;
}

/* Trailers arrive here too (libcurl hands HTTP/2 trailers to it). */
static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct slot *s = userdata;
	size_t n = size * nitems;
	static const char status[] = "grpc-status:";

	if (n >= 12 && strncmp(buf, "HTTP/", 5) == 0) {
		const char *sp = memchr(buf, ' ', n);
		if (sp && strtol(sp + 1, NULL, 10) == 200)
			s->answered = true;
	}
	static const char message[] = "grpc-message:";

	if (n > sizeof(status) - 1 && strncasecmp(buf, status, sizeof(status) - 1) == 0) {
		s->grpc_status = strtol(buf + sizeof(status) - 1, NULL, 10);
	} else if (n > sizeof(message) - 1 &&
		   strncasecmp(buf, message, sizeof(message) - 1) == 0) {
		size_t len = n - (sizeof(message) - 1);
		if (len >= sizeof(s->grpc_message))
			len = sizeof(s->grpc_message) - 1;
		memcpy(s->grpc_message, buf + sizeof(message) - 1, len);
		s->grpc_message[len] = '\0';
		s->grpc_message[strcspn(s->grpc_message, "\r\n")] = '\0';
	}
	return n;
}

static struct curl_slist *make_headers(const struct opts *o)
{
	struct curl_slist *h = NULL;
	char auth[1024];

	if (o->target == TARGET_ETCD) {
		h = curl_slist_append(h, "Content-Type: application/grpc");
		h = curl_slist_append(h, "TE: trailers");
	} else {
		if (o->target == TARGET_POST)
			h = curl_slist_append(h, "Content-Type: application/json");
		else if (o->target == TARGET_CAPSTAN)
			h = curl_slist_append(h, "Content-Type: application/octet-stream");
		if (o->token) {
			snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->token);
			h = curl_slist_append(h, auth);
		}
	}
	h = curl_slist_append(h, "Expect:");
	if (o->accept) {
		snprintf(auth, sizeof(auth), "Accept: %s", o->accept);
		h = curl_slist_append(h, auth);
	} else if (o->target == TARGET_POST) {
		h = curl_slist_append(h, "Accept: application/json");
	} else {
		h = curl_slist_append(h, "Accept:");
	}
	return h;
}

static int setup_slot(const struct opts *o, struct slot *s, struct curl_slist *headers)
{
	CURL *e = curl_easy_init();

	if (!e)
		return -ENOMEM;
	s->easy = e;
	curl_easy_setopt(e, CURLOPT_PRIVATE, s);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION,
			 o->target == TARGET_WATCH ? watch_write_cb : write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
			 o->target == TARGET_WATCH ? 0L : (long)(o->timeout * 1000));
	if (o->target == TARGET_GET || o->target == TARGET_WATCH)
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	else
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
				 o->target == TARGET_CAPSTAN ? "PUT" : "POST");
	if (o->cacert)
		curl_easy_setopt(e, CURLOPT_CAINFO, o->cacert);
	if (o->cert)
		curl_easy_setopt(e, CURLOPT_SSLCERT, o->cert);
	if (o->key)
		curl_easy_setopt(e, CURLOPT_SSLKEY, o->key);
	if (o->verbose)
		curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
	return 0;
}

/* The --body template with every "@N@" replaced by n. */
static size_t expand_body(const struct opts *o, uint64_t n, unsigned char *out, size_t cap)
{
	const char *p = o->body_tmpl, *end = o->body_tmpl + o->body_tmpl_len, *m;
	size_t len = 0;
	char num[32];
	int nlen = snprintf(num, sizeof(num), "%" PRIu64, n);

	while (p < end) {
		size_t chunk;

		m = strstr(p, "@N@");
		chunk = m ? (size_t)(m - p) : (size_t)(end - p);
		if (len + chunk + (size_t)nlen >= cap)
			break;
		memcpy(out + len, p, chunk);
		len += chunk;
		if (!m)
			break;
		memcpy(out + len, num, (size_t)nlen);
		len += (size_t)nlen;
		p = m + 3;
	}
	return len;
}

static void start_request(const struct opts *o, struct slot *s, CURLM *multi,
			  uint64_t seq, unsigned url_i, struct url_state *u, bool measured)
{
	long version;
	uint64_t n = o->start + (o->keys ? seq % o->keys : seq);
	const char *base = o->urls[url_i];
	char key[256];
	int klen;

	s->busy = true;
	s->measured = measured;
	s->url_i = url_i;
	s->grpc_status = -1;
	s->grpc_message[0] = '\0';
	s->snippet_len = 0;
	s->snippet[0] = '\0';
	s->errbuf[0] = '\0';
	if (o->target == TARGET_ETCD) {
		klen = snprintf(key, sizeof(key), "%s/%" PRIu64, o->prefix, n);
		snprintf(s->url, sizeof(s->url), "%s/etcdserverpb.KV/Put", base);
		s->body_len = encode_etcd_put(s->body, key, (size_t)klen, o->size,
					      (unsigned char)('a' + n % 26));
	} else if (o->target == TARGET_POST) {
		snprintf(s->url, sizeof(s->url), "%s%s", base, o->path);
		s->body_len = expand_body(o, n, s->body, sizeof(s->body));
	} else if (o->target == TARGET_GET) {
		snprintf(s->url, sizeof(s->url), "%s%s", base, o->path);
		s->body_len = 0;
	} else {
		snprintf(s->url, sizeof(s->url), "%s/capstan/v1/store/%s/%" PRIu64,
			 base, o->prefix, n);
		memset(s->body, (int)('a' + n % 26), o->size);
		s->body_len = o->size;
	}
	curl_easy_setopt(s->easy, CURLOPT_URL, s->url);
	s->primer = !u->tls && !u->primed;
	if (u->tls)
		version = (long)CURL_HTTP_VERSION_2TLS;
	else if (s->primer)
		version = (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
	else
		version = (long)CURL_HTTP_VERSION_2_0;
	if (s->primer)
		u->priming = true;
	curl_easy_setopt(s->easy, CURLOPT_HTTP_VERSION, version);
	curl_easy_setopt(s->easy, CURLOPT_FRESH_CONNECT, s->primer ? 1L : 0L);
	if (o->target != TARGET_GET) {
		curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, (long)s->body_len);
		curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
	}
	s->t_start = now();
	curl_multi_add_handle(multi, s->easy);
}

static uint64_t rx_total;

static void record(struct stats *st, double lat)
{
	if (st->n_lat == st->cap_lat) {
		size_t cap = st->cap_lat ? st->cap_lat * 2 : 65536;
		double *p = realloc(st->lat, cap * sizeof(*p));
		if (!p) {
			fprintf(stderr, "loadgen: out of memory\n");
			exit(1);
		}
		st->lat = p;
		st->cap_lat = cap;
	}
	st->lat[st->n_lat++] = lat;
}

/* Returns true if the finished transfer was a success. */
static bool finish(const struct opts *o, struct slot *s, CURLcode rc, long *ret_status)
{
	long status = 0;

	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
	*ret_status = status;
	if (rc != CURLE_OK)
		return false;
	if (o->target == TARGET_ETCD)
		return status == 200 && s->grpc_status == 0;
	return status >= 200 && status < 300;
}

static void report_error(const struct opts *o, struct stats *st, struct slot *s,
			 CURLcode rc, long status)
{
	if (st->reported++ >= MAX_REPORTED_ERRORS)
		return;
	if (rc != CURLE_OK)
		fprintf(stderr, "loadgen: %s: curl error %d: %s\n", s->url, (int)rc,
			s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
	else if (o->target == TARGET_ETCD)
		fprintf(stderr, "loadgen: %s: HTTP %ld grpc-status %ld %s\n", s->url,
			status, s->grpc_status, s->grpc_message);
	else
		fprintf(stderr, "loadgen: %s: HTTP %ld %s\n", s->url, status, s->snippet);
}

/* Errors after which the connection is gone (a timeout only resets the
 * stream); the URL must then be primed again. */
static bool connection_lost(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_PARTIAL_FILE:
		return true;
	default:
		return false;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double percentile_ms(const double *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	/* Nearest rank. */
	i = (size_t)ceil(p * (double)n);
	if (i == 0)
		i = 1;
	if (i > n)
		i = n;
	return v[i - 1] * 1000.0;
}

static double cpu_seconds(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/*
 * Opens every watch at once and keeps them for the duration, printing
 * "ready N" when all (or, at the end, some) have answered 200.
 */
static int run_watch(const struct opts *o, CURLM *multi, struct slot *slots)
{
	double end, ready_by;
	unsigned i, ready = 0, ended = 0;
	bool told = false;
	long connects = 0;

	for (i = 0; i < o->concurrency; i++) {
		struct slot *s = &slots[i];
		bool tls = strncmp(o->urls[i % o->n_urls], "https:", 6) == 0;

		s->index = i;
		s->busy = true;
		snprintf(s->url, sizeof(s->url), "%s%s", o->urls[i % o->n_urls], o->path);
		curl_easy_setopt(s->easy, CURLOPT_URL, s->url);
		curl_easy_setopt(s->easy, CURLOPT_HTTP_VERSION,
				 tls ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
		s->t_start = now();
		curl_multi_add_handle(multi, s->easy);
	}
	/* h2o sends the answer's headers with the first event only, so
	 * "ready" may come late: the duration counts from the start. */
	ready_by = now() + o->duration;
	end = now() + o->duration;
	for (;;) {
		CURLMsg *msg;
		int running, left;
		double t = now();

		if (t >= end)
			break;
		curl_multi_perform(multi, &running);
		while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
			struct slot *s;
			long status = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
			if (ended++ < MAX_REPORTED_ERRORS)
				fprintf(stderr, "loadgen: watch %u ended: curl %d HTTP %ld %s %s\n",
					s->index, (int)msg->data.result, status, s->errbuf,
					s->line_len ? s->line : "");
			curl_multi_remove_handle(multi, s->easy);
			s->busy = false;
		}
		if (!told) {
			ready = 0;
			for (i = 0; i < o->concurrency; i++)
				ready += slots[i].answered && slots[i].busy;
			if (ready == o->concurrency || t >= ready_by) {
				told = true;
				printf("ready %u\n", ready);
			}
		}
		fflush(stdout);
		curl_multi_poll(multi, NULL, 0, 50, NULL);
	}
	for (i = 0; i < o->concurrency; i++) {
		long nc = 0;
		curl_easy_getinfo(slots[i].easy, CURLINFO_NUM_CONNECTS, &nc);
		connects += nc;
	}
	printf("{\"watchers\": %u, \"ready\": %u, \"ended\": %u, \"connections\": %ld}\n",
	       o->concurrency, ready, ended, connects);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct stats st = {0};
	struct curl_slist *headers = NULL;
	struct slot *slots = NULL;
	struct url_state urls[MAX_URLS] = {{0}};
	CURLM *multi = NULL;
	double t0, warm_end, end, next_send, last_done, cpu0, cpu_window;
	uint64_t seq = 0, issued_measured = 0;
	unsigned inflight = 0, url_rr = 0, i;
	bool measuring_cpu = false;
	int rv = 1;

	if (parse_opts(argc, argv, &o) != 0)
		return 2;
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		return 1;
	multi = curl_multi_init();
	headers = make_headers(&o);
	slots = calloc(o.concurrency, sizeof(*slots));
	if (!multi || !headers || !slots)
		goto out;
	curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	for (i = 0; i < o.n_urls; i++)
		urls[i].tls = strncmp(o.urls[i], "https:", 6) == 0;
	for (i = 0; i < o.concurrency; i++)
		if (setup_slot(&o, &slots[i], headers) != 0)
			goto out;

	if (o.target == TARGET_WATCH) {
		rv = run_watch(&o, multi, slots);
		goto out;
	}
	t0 = now();
	warm_end = t0 + o.warmup;
	end = o.duration > 0 ? warm_end + o.duration : INFINITY;
	next_send = t0;
	last_done = warm_end;
	cpu0 = cpu_seconds();
	cpu_window = 0;
	for (;;) {
		double t = now();
		bool in_window = t >= warm_end;
		bool stopping = t >= end || (o.requests && issued_measured >= o.requests);
		CURLMsg *msg;
		int running, left;
		long timeout_ms;

		if (in_window && !measuring_cpu) {
			measuring_cpu = true;
			cpu0 = cpu_seconds();
		}
		/* Fill idle slots. */
		for (i = 0; i < o.concurrency && !stopping; i++) {
			unsigned u, tries;

			if (slots[i].busy)
				continue;
			/* Next URL that can take a request now (see priming above). */
			for (tries = 0; tries < o.n_urls; tries++) {
				u = (url_rr + tries) % o.n_urls;
				if (urls[u].tls || urls[u].primed || !urls[u].priming)
					break;
			}
			if (tries == o.n_urls)
				break;
			url_rr = u;
			if (o.rate > 0) {
				if (t < next_send)
					break;
				next_send += 1.0 / o.rate;
				if (next_send < t - 1.0)
					next_send = t; /* fell far behind: do not burst */
			}
			start_request(&o, &slots[i], multi, seq++, url_rr, &urls[url_rr],
				      in_window);
			url_rr = (url_rr + 1) % o.n_urls;
			inflight++;
			if (in_window)
				issued_measured++;
			if (o.requests && issued_measured >= o.requests)
				stopping = true;
		}
		if (stopping && inflight == 0)
			break;

		curl_multi_perform(multi, &running);
		while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
			struct slot *s;
			double done;
			long status, nc = 0;
			bool ok;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			done = now();
			ok = finish(&o, s, msg->data.result, &status);
			if (s->primer) {
				urls[s->url_i].priming = false;
				urls[s->url_i].primed = status > 0;
			} else if (connection_lost(msg->data.result)) {
				urls[s->url_i].primed = false;
			}
			if (ok && s->measured)
				rx_total += s->rx_bytes;
			s->rx_bytes = 0;
			curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &nc);
			st.connects += nc;
			if (o.trace)
				printf("ev %.6f %.6f %d %u %ld\n", s->t_start, done, ok ? 1 : 0,
				       s->url_i, status);
			if (s->measured) {
				if (ok)
					record(&st, done - s->t_start);
				else
					st.errors++;
				if (done > last_done)
					last_done = done;
			}
			if (!ok)
				report_error(&o, &st, s, msg->data.result, status);
			curl_multi_remove_handle(multi, s->easy);
			s->busy = false;
			inflight--;
		}
		if (o.trace)
			fflush(stdout);

		/* Sleep until the socket wakes us or it is time to send. */
		timeout_ms = 100;
		t = now();
		if (o.rate > 0 && !stopping) {
			double d = (next_send - t) * 1000.0;
			if (d < (double)timeout_ms)
				timeout_ms = d > 0 ? (long)d : 0;
		}
		if (!stopping && t < warm_end && (warm_end - t) * 1000.0 < (double)timeout_ms)
			timeout_ms = (long)((warm_end - t) * 1000.0);
		if (!stopping && isfinite(end) && (end - t) * 1000.0 < (double)timeout_ms)
			timeout_ms = (long)((end - t) * 1000.0);
		if (timeout_ms < 0)
			timeout_ms = 0;
		{
			/* Idle slots with nothing to wait for: don't sleep. */
			bool can_send = !stopping && inflight < o.concurrency && o.rate <= 0;
			for (i = 0; can_send && i < o.n_urls; i++)
				if (urls[i].priming)
					can_send = false;
			if (!can_send)
				curl_multi_poll(multi, NULL, 0, (int)timeout_ms, NULL);
		}
	}
	cpu_window = cpu_seconds() - cpu0;

	{
		double secs = last_done - warm_end;
		uint64_t total = st.n_lat + st.errors;

		if (secs <= 0)
			secs = 1e-9;
		qsort(st.lat, st.n_lat, sizeof(*st.lat), cmp_double);
		printf("{\"requests\": %" PRIu64 ", \"errors\": %" PRIu64
		       ", \"seconds\": %.3f, \"rate\": %.1f, \"p50_ms\": %.3f"
		       ", \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f"
		       ", \"concurrency\": %u, \"connections\": %ld"
		       ", \"cpu_s\": %.3f, \"cpu_pct\": %.1f, \"rx_bytes\": %" PRIu64 "}\n",
		       total, st.errors, secs, (double)st.n_lat / secs,
		       percentile_ms(st.lat, st.n_lat, 0.50),
		       percentile_ms(st.lat, st.n_lat, 0.90),
		       percentile_ms(st.lat, st.n_lat, 0.99),
		       st.n_lat ? st.lat[st.n_lat - 1] * 1000.0 : 0.0, o.concurrency,
		       st.connects, cpu_window, 100.0 * cpu_window / secs, rx_total);
		fflush(stdout);
	}
	rv = 0;
out:
	if (slots) {
		for (i = 0; i < o.concurrency; i++) {
			if (!slots[i].easy)
				continue;
			if (slots[i].busy)
				curl_multi_remove_handle(multi, slots[i].easy);
			curl_easy_cleanup(slots[i].easy);
		}
		free(slots);
	}
	if (multi)
		curl_multi_cleanup(multi);
	curl_slist_free_all(headers);
	free(st.lat);
	curl_global_cleanup();
	return rv;
}
