/* loadgen: an HTTP/2 load generator for capstan and etcd benchmarks. */

/*
 * One thread, one epoll set, non-blocking sockets. libnghttp2 does the
 * HTTP/2 framing (h2c with prior knowledge for http:// URLs) and OpenSSL
 * the TLS of https:// URLs (ALPN h2, the server verified against
 * --cacert, client certificate from --cert/--key). Requests are
 * multiplexed: a URL gets one connection per 100 requests in flight (or
 * fewer, if the server allows fewer streams), so a handful of connections
 * carry CONCURRENCY requests. Each finished request is replaced by a new
 * one at the next turn of the loop (closed loop), or requests start at a
 * fixed rate (--rate, open loop, still capped by CONCURRENCY). The loop
 * submits every new request first and then writes each connection's
 * frames with one write, so that a turn costs a few system calls however
 * many requests it carries. Requests started during the warm-up are not
 * measured; a measured request is one started after it. The summary is
 * one JSON object on stdout; --trace adds one line per completion
 * ("ev START END OK URL-INDEX STATUS", CLOCK_MONOTONIC seconds) so that a
 * script can line events up with, say, the moment a leader was killed.
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
 *            Over https they are HTTP/2 streams (100 per connection);
 *            over http, one HTTP/1.1 connection each.
 *
 * A request that times out resets its stream and leaves the connection
 * up; a connection that fails fails every request on it, and the next
 * request opens a new one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum target { TARGET_CAPSTAN, TARGET_ETCD, TARGET_POST, TARGET_GET, TARGET_WATCH };

#define MAX_URLS 16
#define SNIPPET 200
#define MAX_REPORTED_ERRORS 10
#define MAX_STREAMS_PER_CONN 100 /* libcurl's default cap, kept */
#define BODY_CAP (512 + 65536) /* a value, plus key and framing */
#define OUT_BATCH 65536 /* bytes gathered from nghttp2 per write */
#define STREAM_WINDOW (1 << 24)
#define CONN_WINDOW (1 << 30)

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

struct conn;

struct url {
	const char *text;
	bool tls;
	char host[256]; /* without brackets: SNI and the certificate check */
	char authority[300];
	char origin[320]; /* scheme://authority, for messages */
	const char *base; /* path prefix given in the URL (may be "") */
	char path[512];   /* a request's path, or its part before the key number */
	size_t path_len;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	struct conn *conns; /* this URL's live connections */
};

struct slot {
	struct slot *next, *prev; /* in flight, oldest first; idle: free stack */
	struct conn *conn;
	int32_t stream_id;
	bool busy;
	bool measured;
	bool answered; /* watch: got a 200 */
	unsigned url_i;
	unsigned index;
	double t_start;
	int status;
	long grpc_status; /* -1 until seen */
	char grpc_message[SNIPPET];
	char snippet[SNIPPET];
	size_t snippet_len;
	char path[512];
	size_t path_len;
	char clen[24];
	size_t clen_len;
	unsigned char *body;
	size_t body_len;
	size_t body_off;
	uint64_t rx_bytes;
	/* watch: the start of the current event line */
	char line[2048];
	size_t line_len;
};

enum conn_state { CONN_CONNECTING, CONN_HANDSHAKE, CONN_OPEN, CONN_DEAD };

enum h1_state { H1_HEAD, H1_CHUNK_SIZE, H1_CHUNK_EXT, H1_CHUNK_DATA, H1_CHUNK_CRLF,
		H1_BODY_LEN, H1_BODY_EOF, H1_DONE };

struct conn {
	struct conn *next, *prev;         /* every live connection */
	struct conn *url_next, *url_prev; /* the URL's */
	struct url *url;
	int fd;
	SSL *ssl;
	nghttp2_session *h2; /* NULL: HTTP/1.1 (a watch over http) */
	enum conn_state state;
	int pending_err;    /* connect() failed at once */
	unsigned streams;   /* requests on it not completed yet */
	bool draining;      /* GOAWAY received: no new streams */
	bool want_out;      /* waits for EPOLLOUT (handshake, SSL_read) */
	uint32_t ev_mask;   /* registered epoll events */
	unsigned char *out; /* bytes not written yet */
	size_t out_off, out_len, out_cap;
	/* HTTP/1.1 */
	struct slot *h1_slot;
	enum h1_state h1;
	char h1_head[8192];
	size_t h1_head_len;
	uint64_t h1_left;
};

struct stats {
	double *lat; /* seconds, one per measured success */
	size_t n_lat;
	size_t cap_lat;
	uint64_t errors;
	uint64_t reported;
	long connects;
};

static struct {
	struct opts o;
	struct url urls[MAX_URLS];
	int epfd;
	SSL_CTX *ssl_ctx;
	nghttp2_session_callbacks *cbs;
	nghttp2_option *h2opt;
	struct conn *conns;
	struct conn *dead; /* closed, freed at the end of the turn */
	struct slot *slots;
	struct slot *head, *tail; /* requests in flight, oldest first */
	struct slot *idle;        /* free stack */
	unsigned inflight;
	struct stats st;
	uint64_t rx_total;
	double last_done; /* the last measured completion */
	/* Headers that are the same for every request. */
	const char *method;
	const char *content_type;
	char auth[1100];
	bool printed;
	/* watch */
	unsigned answered; /* busy watchers that got a 200 */
	unsigned ended;
} g;

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
		"  -v, --verbose         connection events on stderr\n"
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

/* Splits scheme://authority[/base] and resolves the host once. */
static int parse_url(const char *text, struct url *u)
{
	const char *auth, *end, *host, *host_end, *port = NULL;
	struct addrinfo hints, *res = NULL;
	char portbuf[16];
	size_t alen, hlen;
	int rv;

	memset(u, 0, sizeof(*u));
	u->text = text;
	if (strncmp(text, "https://", 8) == 0) {
		u->tls = true;
		auth = text + 8;
	} else if (strncmp(text, "http://", 7) == 0) {
		auth = text + 7;
	} else {
		fprintf(stderr, "loadgen: %s: only http:// and https:// URLs\n", text);
		return -EINVAL;
	}
	end = auth + strcspn(auth, "/?#");
	alen = (size_t)(end - auth);
	if (alen == 0 || alen >= sizeof(u->authority))
		goto bad;
	memcpy(u->authority, auth, alen);
	u->authority[alen] = '\0';
	u->base = end;
	snprintf(u->origin, sizeof(u->origin), "%s://%.*s", u->tls ? "https" : "http",
		 (int)alen, auth);
	if (auth[0] == '[') {
		host = auth + 1;
		host_end = memchr(host, ']', alen);
		if (!host_end)
			goto bad;
		if (host_end + 1 < end && host_end[1] == ':')
			port = host_end + 2;
	} else {
		host = auth;
		host_end = memchr(auth, ':', alen);
		if (host_end)
			port = host_end + 1;
		else
			host_end = end;
	}
	hlen = (size_t)(host_end - host);
	if (hlen == 0 || hlen >= sizeof(u->host))
		goto bad;
	memcpy(u->host, host, hlen);
	u->host[hlen] = '\0';
	if (port) {
		size_t plen = (size_t)(end - port);
		if (plen == 0 || plen >= sizeof(portbuf))
			goto bad;
		memcpy(portbuf, port, plen);
		portbuf[plen] = '\0';
	} else {
		snprintf(portbuf, sizeof(portbuf), "%s", u->tls ? "443" : "80");
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	rv = getaddrinfo(u->host, portbuf, &hints, &res);
	if (rv != 0) {
		fprintf(stderr, "loadgen: %s: %s\n", text, gai_strerror(rv));
		return -EINVAL;
	}
	memcpy(&u->addr, res->ai_addr, res->ai_addrlen);
	u->addr_len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
bad:
	fprintf(stderr, "loadgen: %s: bad URL\n", text);
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

/* ------------------------------------------------------------ answers */

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
	g.printed = true;
}

/* Body bytes of an answer. */
static void slot_data(struct slot *s, const uint8_t *p, size_t n)
{
	s->rx_bytes += n;
	if (g.o.target == TARGET_WATCH) {
		double t = now();
		size_t i;

		for (i = 0; i < n; i++) {
			if (p[i] == '\n') {
				s->line[s->line_len] = '\0';
				watch_line(s, t);
				s->line_len = 0;
			} else if (s->line_len < sizeof(s->line) - 1) {
				s->line[s->line_len++] = (char)p[i];
			}
		}
		return;
	}
	if (s->snippet_len < sizeof(s->snippet) - 1) {
		size_t room = sizeof(s->snippet) - 1 - s->snippet_len;
		size_t take = n < room ? n : room;

		memcpy(s->snippet + s->snippet_len, p, take);
		s->snippet_len += take;
		s->snippet[s->snippet_len] = '\0';
	}
}

static void slot_status(struct slot *s, int status)
{
	if (status < 200 && s->status != 0)
		return; /* an informational answer after the final one */
	s->status = status;
	if (g.o.target == TARGET_WATCH && status == 200 && !s->answered) {
		s->answered = true;
		g.answered++;
	}
}

static void report_error(struct slot *s, const char *err)
{
	const struct url *u = &g.urls[s->url_i];

	if (g.st.reported++ >= MAX_REPORTED_ERRORS)
		return;
	if (err)
		fprintf(stderr, "loadgen: %s%s: %s\n", u->origin, s->path, err);
	else if (g.o.target == TARGET_ETCD)
		fprintf(stderr, "loadgen: %s%s: HTTP %d grpc-status %ld %s\n", u->origin,
			s->path, s->status, s->grpc_status, s->grpc_message);
	else
		fprintf(stderr, "loadgen: %s%s: HTTP %d %s\n", u->origin, s->path, s->status,
			s->snippet);
}

/*
 * The end of a request (or of a watch): err is NULL when the stream
 * ended normally, else why it failed. Detaches the slot from its stream.
 */
static void slot_done(struct slot *s, const char *err)
{
	struct conn *c = s->conn;
	double done = now();
	bool ok;

	if (c) {
		c->streams--;
		if (c->h2 && s->stream_id > 0)
			nghttp2_session_set_stream_user_data(c->h2, s->stream_id, NULL);
		if (c->h1_slot == s)
			c->h1_slot = NULL;
	}
	s->conn = NULL;
	s->stream_id = 0;
	s->busy = false;
	if (g.o.target == TARGET_WATCH) {
		if (s->answered)
			g.answered--;
		if (g.ended++ < MAX_REPORTED_ERRORS)
			fprintf(stderr, "loadgen: watch %u ended: %s HTTP %d %s\n", s->index,
				err ? err : "stream closed", s->status,
				s->line_len ? s->line : "");
		return;
	}
	if (s->prev)
		s->prev->next = s->next;
	else
		g.head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		g.tail = s->prev;
	if (err)
		ok = false;
	else if (g.o.target == TARGET_ETCD)
		ok = s->status == 200 && s->grpc_status == 0;
	else
		ok = s->status >= 200 && s->status < 300;
	if (ok && s->measured)
		g.rx_total += s->rx_bytes;
	if (g.o.trace) {
		printf("ev %.6f %.6f %d %u %d\n", s->t_start, done, ok ? 1 : 0, s->url_i,
		       s->status);
		g.printed = true;
	}
	if (s->measured) {
		if (ok)
			record(&g.st, done - s->t_start);
		else
			g.st.errors++;
		if (done > g.last_done)
			g.last_done = done;
	}
	if (!ok)
		report_error(s, err);
	s->prev = NULL;
	s->next = g.idle;
	g.idle = s;
	g.inflight--;
}

/* ------------------------------------------------------------ nghttp2 */

/* The slot of a stream, if the stream is still its current request (a
 * timed-out request's slot may carry another request by now). */
static struct slot *stream_slot(nghttp2_session *h2, struct conn *c, int32_t stream_id)
{
	struct slot *s = nghttp2_session_get_stream_user_data(h2, stream_id);

	if (!s || s->conn != c || s->stream_id != stream_id)
		return NULL;
	return s;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user)
{
	struct slot *s;

	(void)flags;
	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	s = stream_slot(h2, user, frame->hd.stream_id);
	if (!s)
		return 0;
	if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
		int st = 0;
		size_t i;

		for (i = 0; i < valuelen && value[i] >= '0' && value[i] <= '9'; i++)
			st = st * 10 + (value[i] - '0');
		slot_status(s, st);
	} else if (g.o.target == TARGET_ETCD && namelen == 11 &&
		   memcmp(name, "grpc-status", 11) == 0) {
		long v = 0;
		size_t i;

		for (i = 0; i < valuelen && value[i] >= '0' && value[i] <= '9'; i++)
			v = v * 10 + (value[i] - '0');
		s->grpc_status = v;
	} else if (g.o.target == TARGET_ETCD && namelen == 12 &&
		   memcmp(name, "grpc-message", 12) == 0) {
		size_t len = valuelen < sizeof(s->grpc_message) - 1 ?
				     valuelen : sizeof(s->grpc_message) - 1;
		memcpy(s->grpc_message, value, len);
		s->grpc_message[len] = '\0';
	}
	return 0;
}

static int on_data(nghttp2_session *h2, uint8_t flags, int32_t stream_id, const uint8_t *data,
		   size_t len, void *user)
{
	struct slot *s = stream_slot(h2, user, stream_id);

	(void)flags;
	if (s)
		slot_data(s, data, len);
	return 0;
}

static int on_frame(nghttp2_session *h2, const nghttp2_frame *frame, void *user)
{
	struct conn *c = user;

	(void)h2;
	if (frame->hd.type == NGHTTP2_GOAWAY) {
		c->draining = true;
		if (g.o.verbose)
			fprintf(stderr, "loadgen: %s: GOAWAY %s\n", c->url->origin,
				nghttp2_http2_strerror(frame->goaway.error_code));
	}
	return 0;
}

static int on_close(nghttp2_session *h2, int32_t stream_id, uint32_t error_code, void *user)
{
	struct slot *s = stream_slot(h2, user, stream_id);
	char err[128];

	if (!s)
		return 0;
	if (error_code != NGHTTP2_NO_ERROR) {
		snprintf(err, sizeof(err), "stream reset: %s",
			 nghttp2_http2_strerror(error_code));
		slot_done(s, err);
	} else {
		slot_done(s, NULL);
	}
	return 0;
}

/* The request body, from the slot's buffer. */
static ssize_t body_read(nghttp2_session *h2, int32_t stream_id, uint8_t *buf, size_t length,
			 uint32_t *data_flags, nghttp2_data_source *source, void *user)
{
	struct slot *s = source->ptr;
	size_t n;

	(void)h2;
	if (s->conn != user || s->stream_id != stream_id)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* timed out: reset */
	n = s->body_len - s->body_off;
	if (n > length)
		n = length;
	memcpy(buf, s->body + s->body_off, n);
	s->body_off += n;
	if (s->body_off == s->body_len)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* ------------------------------------------------------------ connections */

static void conn_set_mask(struct conn *c)
{
	uint32_t mask = EPOLLIN;
	struct epoll_event ev;

	if (c->state == CONN_DEAD)
		return;
	if (c->state == CONN_CONNECTING || c->want_out || c->out_off < c->out_len)
		mask |= EPOLLOUT;
	if (mask == c->ev_mask)
		return;
	ev.events = mask;
	ev.data.ptr = c;
	epoll_ctl(g.epfd, EPOLL_CTL_MOD, c->fd, &ev);
	c->ev_mask = mask;
}

/* Closes the connection and fails every request on it. */
static void conn_fail(struct conn *c, const char *why)
{
	unsigned i;

	if (c->state == CONN_DEAD)
		return;
	if (g.o.verbose)
		fprintf(stderr, "loadgen: %s: connection closed: %s\n", c->url->origin, why);
	c->state = CONN_DEAD;
	for (i = 0; i < g.o.concurrency && c->streams > 0; i++)
		if (g.slots[i].busy && g.slots[i].conn == c)
			slot_done(&g.slots[i], why);
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		g.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	if (c->url_prev)
		c->url_prev->url_next = c->url_next;
	else
		c->url->conns = c->url_next;
	if (c->url_next)
		c->url_next->url_prev = c->url_prev;
	c->next = g.dead;
	g.dead = c;
}

static void free_dead(void)
{
	while (g.dead) {
		struct conn *c = g.dead;

		g.dead = c->next;
		if (c->h2)
			nghttp2_session_del(c->h2);
		free(c->out);
		free(c);
	}
}

static void ssl_why(struct conn *c, const char *what, int r, char *buf, size_t len)
{
	int e = SSL_get_error(c->ssl, r);
	unsigned long code = ERR_get_error();
	long vr = SSL_get_verify_result(c->ssl);

	if (vr != X509_V_OK)
		snprintf(buf, len, "%s: certificate verify failed: %s", what,
			 X509_verify_cert_error_string(vr));
	else if (code)
		snprintf(buf, len, "%s: %s", what, ERR_reason_error_string(code));
	else if (e == SSL_ERROR_SYSCALL && errno)
		snprintf(buf, len, "%s: %s", what, strerror(errno));
	else
		snprintf(buf, len, "%s: connection closed (SSL error %d)", what, e);
	ERR_clear_error();
}

static struct conn *conn_new(struct url *u, bool h2)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev;
	int one = 1;

	if (!c)
		return NULL;
	c->url = u;
	c->fd = socket(u->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		goto fail;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&u->addr, u->addr_len) != 0 &&
	    errno != EINPROGRESS)
		c->pending_err = errno;
	c->state = CONN_CONNECTING;
	if (h2) {
		nghttp2_settings_entry iv[] = {
			{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
			{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS_PER_CONN},
			{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
		};

		if (nghttp2_session_client_new2(&c->h2, g.cbs, c, g.h2opt) != 0)
			goto fail;
		nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
		nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
	}
	if (u->tls) {
		struct in6_addr a6;
		struct in_addr a4;
		X509_VERIFY_PARAM *param;

		c->ssl = SSL_new(g.ssl_ctx);
		if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
			goto fail;
		SSL_set_connect_state(c->ssl);
		SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
					     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		param = SSL_get0_param(c->ssl);
		if (inet_pton(AF_INET, u->host, &a4) == 1 || inet_pton(AF_INET6, u->host, &a6) == 1) {
			if (X509_VERIFY_PARAM_set1_ip_asc(param, u->host) != 1)
				goto fail;
		} else {
			SSL_set_tlsext_host_name(c->ssl, u->host);
			if (SSL_set1_host(c->ssl, u->host) != 1)
				goto fail;
		}
	}
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.ptr = c;
	if (epoll_ctl(g.epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
		goto fail;
	c->ev_mask = ev.events;
	c->next = g.conns;
	if (g.conns)
		g.conns->prev = c;
	g.conns = c;
	c->url_next = u->conns;
	if (u->conns)
		u->conns->url_prev = c;
	u->conns = c;
	return c;
fail:
	fprintf(stderr, "loadgen: %s: cannot set up a connection\n", u->origin);
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->h2)
		nghttp2_session_del(c->h2);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return NULL;
}

static int out_reserve(struct conn *c, size_t more)
{
	size_t cap = c->out_cap ? c->out_cap : OUT_BATCH;
	unsigned char *p;

	if (c->out_len + more <= c->out_cap)
		return 0;
	while (cap < c->out_len + more)
		cap *= 2;
	p = realloc(c->out, cap);
	if (!p)
		return -ENOMEM;
	c->out = p;
	c->out_cap = cap;
	return 0;
}

static int out_append(struct conn *c, const void *p, size_t n)
{
	if (out_reserve(c, n) != 0)
		return -ENOMEM;
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	return 0;
}

/* Writes what is pending, gathering nghttp2's frames first. */
static void conn_flush(struct conn *c)
{
	char why[160];

	c->want_out = false;
	for (;;) {
		ssize_t n;

		if (c->out_off == c->out_len) {
			c->out_off = c->out_len = 0;
			while (c->h2 && c->out_len < OUT_BATCH) {
				const uint8_t *data;
				ssize_t m = nghttp2_session_mem_send(c->h2, &data);

				if (m < 0) {
					snprintf(why, sizeof(why), "HTTP/2: %s",
						 nghttp2_strerror((int)m));
					conn_fail(c, why);
					return;
				}
				if (m == 0)
					break;
				if (out_append(c, data, (size_t)m) != 0) {
					conn_fail(c, "out of memory");
					return;
				}
			}
			if (c->out_len == 0)
				break;
		}
		if (c->ssl) {
			int r;

			ERR_clear_error();
			r = SSL_write(c->ssl, c->out + c->out_off, (int)(c->out_len - c->out_off));
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_WRITE) {
					c->want_out = true;
					break;
				}
				if (e == SSL_ERROR_WANT_READ)
					break;
				ssl_why(c, "TLS write", r, why, sizeof(why));
				conn_fail(c, why);
				return;
			}
			n = r;
		} else {
			n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN)
					break;
				if (errno == EINTR)
					continue;
				snprintf(why, sizeof(why), "send: %s", strerror(errno));
				conn_fail(c, why);
				return;
			}
		}
		c->out_off += (size_t)n;
	}
	if (c->h2 && !nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) &&
	    c->out_off == c->out_len) {
		conn_fail(c, "HTTP/2 session ended");
		return;
	}
	if (c->draining && c->streams == 0 && c->out_off == c->out_len) {
		conn_fail(c, "server sent GOAWAY");
		return;
	}
	conn_set_mask(c);
}

/* HTTP/1.1 (a watch over http://): the request, then a streamed answer. */
static int h1_request(struct conn *c)
{
	struct slot *s = c->h1_slot;
	char req[4096];
	size_t len = 0;
	int n;

	if (!s)
		return 0;
	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n", s->path,
		     c->url->authority);
	if (n > 0 && g.auth[0] && (size_t)n < sizeof(req))
		n += snprintf(req + n, sizeof(req) - (size_t)n, "Authorization: %s\r\n", g.auth);
	if (n > 0 && g.o.accept && (size_t)n < sizeof(req))
		n += snprintf(req + n, sizeof(req) - (size_t)n, "Accept: %s\r\n", g.o.accept);
	if (n > 0 && (size_t)n < sizeof(req))
		n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
	if (n < 0 || (size_t)n >= sizeof(req))
		return -EINVAL;
	len = (size_t)n;
	return out_append(c, req, len);
}

static void h1_head_done(struct conn *c)
{
	struct slot *s = c->h1_slot;
	char *p = c->h1_head, *line;
	bool chunked = false, has_len = false;
	uint64_t len = 0;
	const char *sp = strchr(p, ' ');

	if (s && sp)
		slot_status(s, (int)strtol(sp + 1, NULL, 10));
	for (line = strstr(p, "\r\n"); line; line = strstr(line, "\r\n")) {
		line += 2;
		if (strncasecmp(line, "transfer-encoding:", 18) == 0) {
			char *eol = strstr(line, "\r\n");
			char *v = line + 18;
			size_t vl = eol ? (size_t)(eol - v) : strlen(v);
			size_t i;

			for (i = 0; i + 7 <= vl; i++)
				if (strncasecmp(v + i, "chunked", 7) == 0)
					chunked = true;
		} else if (strncasecmp(line, "content-length:", 15) == 0) {
			has_len = true;
			len = strtoull(line + 15, NULL, 10);
		}
	}
	if (chunked) {
		c->h1 = H1_CHUNK_SIZE;
		c->h1_left = 0;
	} else if (has_len) {
		c->h1 = len ? H1_BODY_LEN : H1_DONE;
		c->h1_left = len;
	} else {
		c->h1 = H1_BODY_EOF;
	}
}

/* Returns 1 once the answer is complete, 0 for more, -EPROTO on garbage. */
static int h1_feed(struct conn *c, const unsigned char *p, size_t n)
{
	while (n > 0 && c->h1 != H1_DONE) {
		size_t take;
		unsigned char ch;

		switch (c->h1) {
		case H1_HEAD:
			if (c->h1_head_len == sizeof(c->h1_head) - 1)
				return -EPROTO;
			c->h1_head[c->h1_head_len++] = (char)*p++;
			n--;
			c->h1_head[c->h1_head_len] = '\0';
			if (c->h1_head_len >= 4 &&
			    memcmp(c->h1_head + c->h1_head_len - 4, "\r\n\r\n", 4) == 0)
				h1_head_done(c);
			break;
		case H1_CHUNK_SIZE:
		case H1_CHUNK_EXT:
			ch = *p++;
			n--;
			if (ch == '\n') {
				c->h1 = c->h1_left ? H1_CHUNK_DATA : H1_DONE;
			} else if (c->h1 == H1_CHUNK_SIZE) {
				int v = ch >= '0' && ch <= '9' ? ch - '0' :
					ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 :
					ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
				if (v >= 0)
					c->h1_left = c->h1_left * 16 + (uint64_t)v;
				else
					c->h1 = H1_CHUNK_EXT;
			}
			break;
		case H1_CHUNK_DATA:
		case H1_BODY_LEN:
			take = n < c->h1_left ? n : (size_t)c->h1_left;
			if (c->h1_slot)
				slot_data(c->h1_slot, p, take);
			p += take;
			n -= take;
			c->h1_left -= take;
			if (c->h1_left == 0)
				c->h1 = c->h1 == H1_BODY_LEN ? H1_DONE : H1_CHUNK_CRLF;
			break;
		case H1_CHUNK_CRLF:
			ch = *p++;
			n--;
			if (ch == '\n')
				c->h1 = H1_CHUNK_SIZE;
			break;
		case H1_BODY_EOF:
			if (c->h1_slot)
				slot_data(c->h1_slot, p, n);
			n = 0;
			break;
		case H1_DONE:
			break;
		}
	}
	return c->h1 == H1_DONE ? 1 : 0;
}

static void conn_read(struct conn *c)
{
	static unsigned char buf[262144];
	char why[160];

	c->want_out = false;
	for (;;) {
		ssize_t n;

		if (c->ssl) {
			int r;

			ERR_clear_error();
			r = SSL_read(c->ssl, buf, (int)sizeof(buf));
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_READ)
					return;
				if (e == SSL_ERROR_WANT_WRITE) {
					c->want_out = true;
					return;
				}
				if (e == SSL_ERROR_ZERO_RETURN)
					snprintf(why, sizeof(why), "connection closed by the server");
				else
					ssl_why(c, "TLS read", r, why, sizeof(why));
				conn_fail(c, why);
				return;
			}
			n = r;
		} else {
			n = recv(c->fd, buf, sizeof(buf), 0);
			if (n == 0) {
				conn_fail(c, "connection closed by the server");
				return;
			}
			if (n < 0) {
				if (errno == EAGAIN)
					return;
				if (errno == EINTR)
					continue;
				snprintf(why, sizeof(why), "recv: %s", strerror(errno));
				conn_fail(c, why);
				return;
			}
		}
		if (c->h2) {
			ssize_t rv = nghttp2_session_mem_recv(c->h2, buf, (size_t)n);

			if (rv < 0) {
				snprintf(why, sizeof(why), "HTTP/2: %s", nghttp2_strerror((int)rv));
				conn_fail(c, why);
				return;
			}
		} else {
			int rv = h1_feed(c, buf, (size_t)n);

			if (rv < 0) {
				conn_fail(c, "bad HTTP/1.1 answer");
				return;
			}
			if (rv == 1) {
				if (c->h1_slot)
					slot_done(c->h1_slot, NULL);
				conn_fail(c, "answer complete");
				return;
			}
		}
		if (!c->ssl && (size_t)n < sizeof(buf))
			return; /* drained: epoll says when there is more */
	}
}

static void conn_handshake(struct conn *c)
{
	const unsigned char *alpn = NULL;
	unsigned alpn_len = 0;
	char why[200];
	int r;

	ERR_clear_error();
	r = SSL_connect(c->ssl);
	if (r != 1) {
		int e = SSL_get_error(c->ssl, r);

		if (e == SSL_ERROR_WANT_READ) {
			c->want_out = false;
			return;
		}
		if (e == SSL_ERROR_WANT_WRITE) {
			c->want_out = true;
			return;
		}
		ssl_why(c, "TLS handshake", r, why, sizeof(why));
		conn_fail(c, why);
		return;
	}
	SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
	if (c->h2 && (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0)) {
		conn_fail(c, "the server did not choose h2 (ALPN)");
		return;
	}
	c->want_out = false;
	c->state = CONN_OPEN;
}

static void conn_event(struct conn *c, uint32_t events)
{
	if (c->state == CONN_DEAD)
		return;
	if (c->state == CONN_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
			err = errno;
		if (err) {
			char why[160];

			snprintf(why, sizeof(why), "connect: %s", strerror(err));
			conn_fail(c, why);
			return;
		}
		g.st.connects++;
		if (g.o.verbose)
			fprintf(stderr, "loadgen: %s: connected\n", c->url->origin);
		c->state = c->ssl ? CONN_HANDSHAKE : CONN_OPEN;
		if (!c->h2 && h1_request(c) != 0) {
			conn_fail(c, "request too long");
			return;
		}
		if (c->state == CONN_OPEN) {
			conn_set_mask(c);
			return; /* written by the flush pass */
		}
	}
	if (c->state == CONN_HANDSHAKE) {
		conn_handshake(c);
		if (c->state != CONN_OPEN) {
			conn_set_mask(c);
			return;
		}
		/* Fall through: the server's first frames may already sit in
		 * OpenSSL's buffer, where epoll cannot see them. */
		events |= EPOLLIN;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP) || c->want_out)
		conn_read(c);
}

/* Writes every connection's pending frames; fails early connect errors. */
static void flush_all(void)
{
	struct conn *c, *next;

	for (c = g.conns; c; c = next) {
		next = c->next;
		if (c->pending_err) {
			char why[160];

			snprintf(why, sizeof(why), "connect: %s", strerror(c->pending_err));
			conn_fail(c, why);
		} else if (c->state == CONN_OPEN && !c->want_out) {
			conn_flush(c);
		} else {
			conn_set_mask(c);
		}
	}
}

static void handle_events(int timeout_ms)
{
	struct epoll_event evs[64];
	int n, i;

	n = epoll_wait(g.epfd, evs, 64, timeout_ms);
	for (i = 0; i < n; i++)
		conn_event(evs[i].data.ptr, evs[i].events);
}

/* ------------------------------------------------------------ requests */

static unsigned conn_cap(struct conn *c)
{
	uint32_t remote = nghttp2_session_get_remote_settings(
		c->h2, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);

	return remote < MAX_STREAMS_PER_CONN ? (remote ? remote : 1) : MAX_STREAMS_PER_CONN;
}

/* A connection to URL u with room for one more stream. */
static struct conn *conn_for(struct url *u)
{
	struct conn *c;

	for (c = u->conns; c; c = c->url_next)
		if (c->h2 && !c->draining && !c->pending_err && c->streams < conn_cap(c))
			return c;
	return conn_new(u, true);
}

static nghttp2_nv nv(const char *name, const char *value, size_t vlen, uint8_t flags)
{
	nghttp2_nv v;

	v.name = (uint8_t *)name;
	v.value = (uint8_t *)value;
	v.namelen = strlen(name);
	v.valuelen = vlen;
	v.flags = flags;
	return v;
}

#define NV_STATIC(n, v) nv(n, v, strlen(v), NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE)

/* Submits the slot's request on a connection to its URL. */
static int submit(struct slot *s)
{
	struct url *u = &g.urls[s->url_i];
	struct conn *c;
	nghttp2_nv h[10];
	nghttp2_data_provider dp;
	size_t n = 0;
	bool body = g.o.target != TARGET_GET && g.o.target != TARGET_WATCH;
	int32_t id;

	if (!u->tls && g.o.target == TARGET_WATCH) {
		c = conn_new(u, false);
		if (!c)
			return -EIO;
		c->h1_slot = s;
		c->streams = 1;
		s->conn = c;
		return 0;
	}
	c = conn_for(u);
	if (!c)
		return -EIO;
	h[n++] = NV_STATIC(":method", g.method);
	h[n++] = NV_STATIC(":scheme", u->tls ? "https" : "http");
	h[n++] = NV_STATIC(":authority", u->authority);
	/* Every capstan key is new: keep them out of the HPACK table. */
	h[n++] = nv(":path", s->path, s->path_len,
		    g.o.target == TARGET_CAPSTAN ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE);
	if (g.content_type)
		h[n++] = NV_STATIC("content-type", g.content_type);
	if (body)
		h[n++] = nv("content-length", s->clen, s->clen_len, NGHTTP2_NV_FLAG_NONE);
	if (g.o.target == TARGET_ETCD)
		h[n++] = NV_STATIC("te", "trailers");
	if (g.auth[0])
		h[n++] = NV_STATIC("authorization", g.auth);
	if (g.o.accept)
		h[n++] = NV_STATIC("accept", g.o.accept);
	else if (g.o.target == TARGET_POST)
		h[n++] = NV_STATIC("accept", "application/json");
	dp.source.ptr = s;
	dp.read_callback = body_read;
	s->conn = c;
	s->stream_id = -1;
	id = nghttp2_submit_request(c->h2, NULL, h, n, body ? &dp : NULL, s);
	if (id < 0) {
		s->conn = NULL;
		return -EIO;
	}
	s->stream_id = id;
	c->streams++;
	return 0;
}

/* Writes v in decimal at p (room for 20 digits); returns the length. */
static size_t put_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

/* The request of slot s with sequence number seq: path and body. */
static void prepare(struct slot *s, uint64_t seq)
{
	const struct opts *o = &g.o;
	const struct url *u = &g.urls[s->url_i];
	uint64_t n = o->start + (o->keys ? seq % o->keys : seq);

	s->status = 0;
	s->grpc_status = -1;
	s->grpc_message[0] = '\0';
	s->snippet_len = 0;
	s->snippet[0] = '\0';
	s->rx_bytes = 0;
	s->body_off = 0;
	memcpy(s->path, u->path, u->path_len + 1);
	s->path_len = u->path_len;
	if (o->target == TARGET_ETCD) {
		char key[300];
		size_t klen = strlen(o->prefix);

		memcpy(key, o->prefix, klen);
		key[klen++] = '/';
		klen += put_u64(key + klen, n);
		s->body_len = encode_etcd_put(s->body, key, klen, o->size,
					      (unsigned char)('a' + n % 26));
	} else if (o->target == TARGET_POST) {
		s->body_len = expand_body(o, n, s->body, BODY_CAP);
	} else if (o->target == TARGET_GET || o->target == TARGET_WATCH) {
		s->body_len = 0;
	} else {
		s->path_len += put_u64(s->path + s->path_len, n);
		s->path[s->path_len] = '\0';
		memset(s->body, (int)('a' + n % 26), o->size);
		s->body_len = o->size;
	}
	s->clen_len = put_u64(s->clen, s->body_len);
}

/* Fails requests older than --timeout: the stream is reset, the
 * connection kept (unless it never opened). */
static void expire(double t)
{
	char why[64];

	if (!g.head || t - g.head->t_start < g.o.timeout)
		return;
	snprintf(why, sizeof(why), "timed out after %g s", g.o.timeout);
	while (g.head && t - g.head->t_start >= g.o.timeout) {
		struct slot *s = g.head;
		struct conn *c = s->conn;

		if (c && c->state != CONN_OPEN) {
			conn_fail(c, why);
			continue;
		}
		if (c && c->h2 && s->stream_id > 0)
			nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->stream_id,
						  NGHTTP2_CANCEL);
		slot_done(s, why);
	}
}

/* ------------------------------------------------------------ setup */

static int setup_tls(void)
{
	const struct opts *o = &g.o;
	static const unsigned char alpn[] = "\x02h2";

	g.ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (!g.ssl_ctx)
		return -ENOMEM;
	SSL_CTX_set_min_proto_version(g.ssl_ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(g.ssl_ctx, SSL_VERIFY_PEER, NULL);
	if (o->cacert ? SSL_CTX_load_verify_locations(g.ssl_ctx, o->cacert, NULL) != 1 :
			SSL_CTX_set_default_verify_paths(g.ssl_ctx) != 1) {
		fprintf(stderr, "loadgen: cannot load CA certificates %s\n",
			o->cacert ? o->cacert : "(system)");
		return -EINVAL;
	}
	if (o->cert && SSL_CTX_use_certificate_chain_file(g.ssl_ctx, o->cert) != 1) {
		fprintf(stderr, "loadgen: cannot load certificate %s\n", o->cert);
		return -EINVAL;
	}
	if ((o->key || o->cert) &&
	    SSL_CTX_use_PrivateKey_file(g.ssl_ctx, o->key ? o->key : o->cert,
					SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "loadgen: cannot load key %s\n", o->key ? o->key : o->cert);
		return -EINVAL;
	}
	if (SSL_CTX_set_alpn_protos(g.ssl_ctx, alpn, sizeof(alpn) - 1) != 0)
		return -EINVAL;
	return 0;
}

static int setup(void)
{
	const struct opts *o = &g.o;
	bool tls = false;
	unsigned i;
	int len;

	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < o->n_urls; i++) {
		if (parse_url(o->urls[i], &g.urls[i]) != 0)
			return -EINVAL;
		tls = tls || g.urls[i].tls;
		if (o->target == TARGET_ETCD)
			len = snprintf(g.urls[i].path, sizeof(g.urls[i].path),
				       "%s/etcdserverpb.KV/Put", g.urls[i].base);
		else if (o->target == TARGET_CAPSTAN)
			len = snprintf(g.urls[i].path, sizeof(g.urls[i].path),
				       "%s/capstan/v1/store/%s/", g.urls[i].base, o->prefix);
		else
			len = snprintf(g.urls[i].path, sizeof(g.urls[i].path), "%s%s",
				       g.urls[i].base, o->path);
		/* Room for a key number after the capstan path. */
		if (len < 0 || (size_t)len >= sizeof(g.urls[i].path) - 24) {
			fprintf(stderr, "loadgen: %s: path too long\n", o->urls[i]);
			return -EINVAL;
		}
		g.urls[i].path_len = (size_t)len;
	}
	if (strlen(o->prefix) > 256) {
		fprintf(stderr, "loadgen: --prefix too long\n");
		return -EINVAL;
	}
	if (tls && setup_tls() != 0)
		return -EINVAL;
	g.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (g.epfd < 0)
		return -errno;
	if (nghttp2_session_callbacks_new(&g.cbs) != 0 || nghttp2_option_new(&g.h2opt) != 0)
		return -ENOMEM;
	nghttp2_session_callbacks_set_on_header_callback(g.cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(g.cbs, on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(g.cbs, on_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(g.cbs, on_close);
	nghttp2_option_set_peer_max_concurrent_streams(g.h2opt, MAX_STREAMS_PER_CONN);
	/* Checks of the answers' headers cost CPU and find nothing here. */
	nghttp2_option_set_no_http_messaging(g.h2opt, 1);
	nghttp2_option_set_no_closed_streams(g.h2opt, 1);

	switch (o->target) {
	case TARGET_ETCD:
		g.method = "POST";
		g.content_type = "application/grpc";
		break;
	case TARGET_POST:
		g.method = "POST";
		g.content_type = "application/json";
		break;
	case TARGET_CAPSTAN:
		g.method = "PUT";
		g.content_type = "application/octet-stream";
		break;
	default:
		g.method = "GET";
		break;
	}
	if (o->token && o->target != TARGET_ETCD)
		snprintf(g.auth, sizeof(g.auth), "Bearer %s", o->token);

	g.slots = calloc(o->concurrency, sizeof(*g.slots));
	if (!g.slots)
		return -ENOMEM;
	for (i = 0; i < o->concurrency; i++) {
		struct slot *s = &g.slots[o->concurrency - 1 - i];

		if (o->target != TARGET_GET && o->target != TARGET_WATCH) {
			s->body = malloc(BODY_CAP);
			if (!s->body)
				return -ENOMEM;
		}
		s->next = g.idle;
		g.idle = s;
	}
	return 0;
}

static void teardown(void)
{
	struct conn *c;
	unsigned i;

	while ((c = g.conns) != NULL) {
		c->streams = 0; /* nothing to report any more */
		conn_fail(c, "done");
	}
	free_dead();
	if (g.slots)
		for (i = 0; i < g.o.concurrency; i++)
			free(g.slots[i].body);
	free(g.slots);
	if (g.cbs)
		nghttp2_session_callbacks_del(g.cbs);
	if (g.h2opt)
		nghttp2_option_del(g.h2opt);
	if (g.ssl_ctx)
		SSL_CTX_free(g.ssl_ctx);
	if (g.epfd > 0)
		close(g.epfd);
	free(g.st.lat);
	free(g.o.body_tmpl);
}

/* ------------------------------------------------------------ runs */

/*
 * Opens every watch at once and keeps them for the duration, printing
 * "ready N" when all (or, at the end, some) have answered 200.
 */
static int run_watch(void)
{
	const struct opts *o = &g.o;
	double end, ready_by;
	unsigned i, ready = 0;
	bool told = false;

	for (i = 0; i < o->concurrency; i++) {
		struct slot *s = &g.slots[i];

		s->index = i;
		s->url_i = i % o->n_urls;
		s->busy = true;
		prepare(s, 0);
		s->t_start = now();
		if (submit(s) != 0) {
			s->busy = false;
			g.ended++;
		}
	}
	g.idle = NULL;
	/* h2o sends the answer's headers with the first event only, so
	 * "ready" may come late: the duration counts from the start. */
	ready_by = now() + o->duration;
	end = now() + o->duration;
	for (;;) {
		double t = now();
		int wait_ms;

		if (t >= end)
			break;
		flush_all();
		wait_ms = (int)ceil((end - t) * 1000.0);
		handle_events(wait_ms < 50 ? wait_ms : 50);
		free_dead();
		if (!told) {
			ready = g.answered;
			if (ready == o->concurrency || now() >= ready_by) {
				told = true;
				printf("ready %u\n", ready);
				g.printed = true;
			}
		}
		if (g.printed) {
			fflush(stdout);
			g.printed = false;
		}
	}
	printf("{\"watchers\": %u, \"ready\": %u, \"ended\": %u, \"connections\": %ld}\n",
	       o->concurrency, ready, g.ended, g.st.connects);
	fflush(stdout);
	return 0;
}

static int run_requests(void)
{
	const struct opts *o = &g.o;
	double t0, warm_end, end, next_send, cpu0, cpu_window;
	uint64_t seq = 0, issued_measured = 0;
	unsigned url_rr = 0;
	bool measuring_cpu = false;

	t0 = now();
	warm_end = t0 + o->warmup;
	end = o->duration > 0 ? warm_end + o->duration : INFINITY;
	next_send = t0;
	g.last_done = warm_end;
	cpu0 = cpu_seconds();
	for (;;) {
		double t = now();
		bool in_window = t >= warm_end;
		bool stopping = t >= end || (o->requests && issued_measured >= o->requests);
		double timeout_ms;

		if (in_window && !measuring_cpu) {
			measuring_cpu = true;
			cpu0 = cpu_seconds();
		}
		/* Fill idle slots. */
		while (!stopping && g.idle) {
			struct slot *s;

			if (o->rate > 0) {
				if (t < next_send)
					break;
				next_send += 1.0 / o->rate;
				if (next_send < t - 1.0)
					next_send = t; /* fell far behind: do not burst */
			}
			s = g.idle;
			g.idle = s->next;
			s->url_i = url_rr;
			url_rr = (url_rr + 1) % o->n_urls;
			s->busy = true;
			s->measured = in_window;
			s->next = NULL;
			s->prev = g.tail;
			if (g.tail)
				g.tail->next = s;
			else
				g.head = s;
			g.tail = s;
			g.inflight++;
			if (in_window)
				issued_measured++;
			if (o->requests && issued_measured >= o->requests)
				stopping = true;
			prepare(s, seq++);
			s->t_start = now();
			if (submit(s) != 0) {
				slot_done(s, "cannot start the request");
				break;
			}
		}
		flush_all();
		free_dead();
		if (stopping && g.inflight == 0)
			break;

		/* Sleep until a socket wakes us or it is time to send. */
		t = now();
		timeout_ms = 100;
		if (!stopping && g.idle) {
			if (o->rate > 0)
				timeout_ms = fmin(timeout_ms, (next_send - t) * 1000.0);
			else
				timeout_ms = 0; /* a request failed at once: go again */
		}
		if (!stopping && t < warm_end)
			timeout_ms = fmin(timeout_ms, (warm_end - t) * 1000.0);
		if (!stopping && isfinite(end))
			timeout_ms = fmin(timeout_ms, (end - t) * 1000.0);
		if (g.head)
			timeout_ms = fmin(timeout_ms, (g.head->t_start + o->timeout - t) * 1000.0);
		if (timeout_ms < 0)
			timeout_ms = 0;
		handle_events((int)ceil(timeout_ms));
		expire(now());
		free_dead();
		if (g.printed) {
			fflush(stdout);
			g.printed = false;
		}
	}
	cpu_window = cpu_seconds() - cpu0;
	{
		double secs = g.last_done - warm_end;
		uint64_t total = g.st.n_lat + g.st.errors;

		if (secs <= 0)
			secs = 1e-9;
		if (g.st.n_lat)
			qsort(g.st.lat, g.st.n_lat, sizeof(*g.st.lat), cmp_double);
		printf("{\"requests\": %" PRIu64 ", \"errors\": %" PRIu64
		       ", \"seconds\": %.3f, \"rate\": %.1f, \"p50_ms\": %.3f"
		       ", \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f"
		       ", \"concurrency\": %u, \"connections\": %ld"
		       ", \"cpu_s\": %.3f, \"cpu_pct\": %.1f, \"rx_bytes\": %" PRIu64 "}\n",
		       total, g.st.errors, secs, (double)g.st.n_lat / secs,
		       percentile_ms(g.st.lat, g.st.n_lat, 0.50),
		       percentile_ms(g.st.lat, g.st.n_lat, 0.90),
		       percentile_ms(g.st.lat, g.st.n_lat, 0.99),
		       g.st.n_lat ? g.st.lat[g.st.n_lat - 1] * 1000.0 : 0.0, o->concurrency,
		       g.st.connects, cpu_window, 100.0 * cpu_window / secs, g.rx_total);
		fflush(stdout);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int rv = 1;

	g.epfd = -1;
	if (parse_opts(argc, argv, &g.o) != 0)
		return 2;
	if (setup() != 0)
		goto out;
	rv = g.o.target == TARGET_WATCH ? run_watch() : run_requests();
out:
	teardown();
	return rv == 0 ? 0 : 1;
}
