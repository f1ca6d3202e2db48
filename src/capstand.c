/* capstand: one master replica of a capstan cluster.
 *
 * Start-up, in order:
 *   1. settings: defaults, YAML file, flags (src/lib/config); usage -> 2;
 *   2. DATA (0700), DATA/raft, DATA/pki, and an exclusive lock on
 *      DATA/lock so that two daemons never share a directory;
 *   3. first start (no DATA/id yet):
 *      --init: CA, serving/master/admin certificates, tokens, kubeconfig,
 *              replica_bootstrap, DATA/joined;
 *      --join: the CA and tokens from the seed master (GET
 *              /capstan/v1/cluster/ca with the join token, the seed
 *              verified with --join-ca), own certificates, DATA/join-url;
 *      DATA/id is written last, so a crash before it leaves a directory
 *      that the next --init/--join simply redoes;
 *      later starts: reissue the serving certificate when a configured
 *      name is missing from it or it expires within 30 days;
 *   4. the replica and the API server on one uv loop;
 *   5. a replica that joined but has no DATA/joined yet POSTs itself to
 *      /capstan/v1/cluster/members of the seed (from a pool thread, with
 *      retries) until it is a member, then creates DATA/joined.
 * Shutdown (signal, removal, Raft I/O failure, start failure): the API
 * server closes, then the replica, then the loop; the exit status says why.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/x509v3.h>
#include <uv.h>

#include "http/server.h"
#include "raft/replica.h"
#include "src/lib/config.h"
#include "src/lib/daemon.h"
#include "src/ctrl/driver.h"
#include "src/lib/log.h"
#include "src/lib/pki.h"
#include "src/lib/tokens.h"
#include "src/lib/version.h"
#include "src/restore.h"

#define EXIT_USAGE DAEMON_EXIT_USAGE

/* Certificates are renewed at start when fewer days than this remain. */
#define RENEW_DAYS 30
/* A joining replica retries the membership request this long. */
#define JOIN_WINDOW_MS 60000
/* After this long, a graceful shutdown is given up. */
#define SHUTDOWN_TIMEOUT_MS 30000

#define CLUSTER_NAME "capstan"
#define GROUP_MASTERS "system:masters"
#define GROUP_JOIN "system:capstan:join"
#define USER_JOIN "capstan-join"
#define USER_ADMIN "admin"

/* ------------------------------------------------------------ settings */

struct settings {
	char *data_dir;
	char *raft_address;
	char *listen;
	char *advertise_url;
	char *plain_listen;
	struct config_strings san;
	bool init;
	char *join;
	char *token;
	char *join_ca;
	char *restore;
	uint64_t election_timeout_ms;
	uint64_t heartbeat_timeout_ms;
	uint64_t snapshot_threshold;
	uint64_t snapshot_trailing;
	uint64_t history_events;
	uint64_t history_age_ms;
	uint64_t node_grace_ms;
	uint64_t pod_eviction_ms;
	char *controllers;
	enum log_level log_level;
};

#define OPT(name, type, def, arg, member, max, help) \
	{name, type, def, arg, help, offsetof(struct settings, member), max}

/* The single source of capstand's flags and config keys; man/capstand.8,
 * man/capstan.conf.5 and packaging/capstand.yaml follow this table. */
static const struct config_option options[] = {
	OPT("data-dir", CONFIG_STRING, "/var/lib/capstan", "DIR", data_dir, 0,
	    "keep the replica's state (Raft log, snapshots, PKI, tokens) in DIR"),
	OPT("raft-address", CONFIG_STRING, "127.0.0.1:6444", "HOST:PORT", raft_address, 0,
	    "IPv4 address and port of the Raft transport; other masters connect to it"),
	OPT("listen", CONFIG_STRING, "0.0.0.0:6443", "HOST:PORT", listen, 0,
	    "serve the API over HTTPS (HTTP/2 and HTTP/1.1) on HOST:PORT; '' for none"),
	OPT("advertise-url", CONFIG_STRING, NULL, "URL", advertise_url, 0,
	    "URL at which other masters and clients reach this API server (default: "
	    "https://HOST:PORT of --listen, with 127.0.0.1 for 0.0.0.0)"),
	OPT("plain-listen", CONFIG_STRING, NULL, "HOST:PORT", plain_listen, 0,
	    "also serve h2c and HTTP/1.1 without TLS on a loopback HOST:PORT (default: off)"),
	OPT("san", CONFIG_STRINGS, NULL, "NAME", san, 0,
	    "extra DNS name or IP address for the serving certificate"),
	OPT("init", CONFIG_BOOL, NULL, NULL, init, 0,
	    "bootstrap a new one-member cluster if the data directory is empty"),
	OPT("join", CONFIG_STRING, NULL, "URL", join, 0,
	    "join the cluster through the master at URL if the data directory is empty"),
	OPT("token", CONFIG_STRING, NULL, "TOKEN", token, 0,
	    "join token (DATA/join.token of a master) for --join"),
	OPT("join-ca", CONFIG_STRING, NULL, "FILE", join_ca, 0,
	    "CA certificate (DATA/pki/ca.crt of a master) that verifies the --join master"),
	OPT("restore", CONFIG_STRING, NULL, "FILE", restore, 0,
	    "with --init: fill the new cluster's store from FILE, a backup written by "
	    "'capstan snapshot save' (once: DATA/restored marks it done)"),
	OPT("election-timeout", CONFIG_DURATION, "400ms", "DUR", election_timeout_ms, 3600000,
	    "Raft election timeout"),
	OPT("heartbeat-timeout", CONFIG_DURATION, "50ms", "DUR", heartbeat_timeout_ms, 3600000,
	    "Raft heartbeat interval of the leader"),
	OPT("snapshot-threshold", CONFIG_UINT, "16384", "N", snapshot_threshold, UINT32_MAX,
	    "take a snapshot every N log entries at least"),
	OPT("snapshot-trailing", CONFIG_UINT, "4096", "N", snapshot_trailing, UINT32_MAX,
	    "log entries kept behind a snapshot for followers that lag"),
	OPT("history-events", CONFIG_UINT, "100000", "N", history_events, 0,
	    "keep at least N events of watch history"),
	OPT("history-age", CONFIG_DURATION, "5m", "DUR", history_age_ms, 0,
	    "keep watch history events younger than DUR"),
	OPT("controllers", CONFIG_STRING, "*", "LIST", controllers, 0,
	    "controllers the leader runs: comma-separated names, '*' for all, '-NAME' to "
	    "leave one out (e.g. '*,-deployment'); names: scheduler, deployment, replicaset, "
	    "daemonset, statefulset, nodelifecycle, endpoints, endpointslice, serviceaccount, "
	    "namespace, garbagecollector, pvbinder"),
	OPT("node-monitor-grace-period", CONFIG_DURATION, "40s", "DUR", node_grace_ms, 0,
	    "mark a node NotReady (Unknown) when its Lease was not renewed for DUR"),
	OPT("pod-eviction-timeout", CONFIG_DURATION, "5m", "DUR", pod_eviction_ms, 0,
	    "evict the pods of an unreachable or not-ready node after DUR (pods without "
	    "their own toleration of the taint)"),
	OPT("log-level", CONFIG_LOG_LEVEL, "info", "LEVEL", log_level, 0,
	    "log up to LEVEL: error, warn, info or debug"),
};

static const struct config_spec spec = {
	.prog = "capstand",
	.summary = "Run one master replica of a capstan cluster: the replicated store,\n"
		   "the Kubernetes API and, on the Raft leader, the control loops.\n",
	.default_file = "/etc/capstan/capstand.yaml",
	.options = options,
	.n_options = sizeof options / sizeof options[0],
	.footer = "A first start needs --init (new cluster) or --join URL --token TOKEN\n"
		  "--join-ca FILE; later starts resume from the data directory.\n"
		  "\nSee capstand(8) and capstan.conf(5).\n",
};

/* ------------------------------------------------------------ daemon */

struct join_work;
struct fetch_work;

enum start_mode { START_RESTART, START_INIT, START_JOIN };

struct daemon {
	struct settings *cfg;
	uv_loop_t loop;
	struct daemon_signals signals;
	uv_timer_t watchdog;
	bool handles_closing;
	int lock_fd;

	char *raft_dir;
	char *pki_dir;
	char *token_file;
	char *advertise_url;
	uint64_t id;

	struct replica *replica;
	struct http_server *http;
	struct ctrl_driver *ctrl;
	struct join_work *join;
	struct fetch_work *fetch;
	struct restore *restore; /* --restore still to do */

	bool closing;
	int exit_code;
};

/* The membership request of a joining replica, run on a pool thread. */
struct join_work {
	uv_work_t req;
	struct daemon *d;
	char *url;
	char *body;
	char *ca_file;
	char *cert_file;
	char *key_file;
	char *joined_path;
	atomic_bool cancel;
	int status;
	char errmsg[512];
};

static char *path_join(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

static bool str_empty(const char *s)
{
	return s == NULL || s[0] == '\0';
}

/* Splits "host:port" or "[v6]:port". Errors: -EINVAL. */
static int split_host_port(const char *s, char *host, size_t host_len, unsigned *port)
{
	const char *colon, *h = s;
	size_t hl;
	uint64_t p = 0;
	char *end;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= host_len || colon[1] == '\0')
		return -EINVAL;
	errno = 0;
	p = strtoull(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || p == 0 || p > 65535 || colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (unsigned)p;
	return 0;
}

static bool is_wildcard_host(const char *h)
{
	return strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0;
}

static bool is_loopback_host(const char *h)
{
	return strncmp(h, "127.", 4) == 0 || strcmp(h, "::1") == 0 || strcmp(h, "localhost") == 0;
}

/* The host of a URL "scheme://host[:port][/...]" into @host. */
static int url_host(const char *url, char *host, size_t host_len)
{
	const char *p = strstr(url, "://");
	size_t n;

	if (p == NULL)
		return -EINVAL;
	p += 3;
	if (*p == '[') {
		p++;
		n = strcspn(p, "]");
		if (p[n] != ']')
			return -EINVAL;
	} else {
		n = strcspn(p, ":/?#");
	}
	if (n == 0 || n >= host_len)
		return -EINVAL;
	memcpy(host, p, n);
	host[n] = '\0';
	return 0;
}

/* ------------------------------------------------------------ validation */

/* Checks the settings and derives the advertise URL. Returns 0 or exits
 * with a usage error through the return value EXIT_USAGE. */
static int check_settings(struct daemon *d)
{
	struct settings *c = d->cfg;
	char host[256];
	unsigned port;

	if (str_empty(c->data_dir)) {
		log_error("--data-dir must not be empty");
		return EXIT_USAGE;
	}
	{
		const struct ctrl_ops *ops[64];
		char err[256];
		if (ctrl_select(c->controllers, ops, sizeof ops / sizeof ops[0], err,
				sizeof err) < 0) {
			log_error("--controllers: %s", err);
			return EXIT_USAGE;
		}
	}
	if (str_empty(c->raft_address) ||
	    split_host_port(c->raft_address, host, sizeof host, &port) != 0) {
		log_error("--raft-address '%s' is not HOST:PORT",
			  c->raft_address ? c->raft_address : "");
		return EXIT_USAGE;
	}
	if (!str_empty(c->listen) && split_host_port(c->listen, host, sizeof host, &port) != 0) {
		log_error("--listen '%s' is not HOST:PORT", c->listen);
		return EXIT_USAGE;
	}
	if (!str_empty(c->plain_listen)) {
		if (split_host_port(c->plain_listen, host, sizeof host, &port) != 0) {
			log_error("--plain-listen '%s' is not HOST:PORT", c->plain_listen);
			return EXIT_USAGE;
		}
		if (!is_loopback_host(host)) {
			log_error("--plain-listen '%s' must be a loopback address: it has no TLS",
				  c->plain_listen);
			return EXIT_USAGE;
		}
	}
	if (str_empty(c->listen) && str_empty(c->plain_listen)) {
		log_error("--listen and --plain-listen are both off: nothing would serve the API");
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < c->san.n; i++) {
		if (!pki_valid_san(c->san.v[i])) {
			log_error("--san '%s' is neither an IP address nor a DNS name", c->san.v[i]);
			return EXIT_USAGE;
		}
	}
	if (c->init && !str_empty(c->join)) {
		log_error("--init and --join exclude each other");
		return EXIT_USAGE;
	}
	if (!str_empty(c->join)) {
		if (strncmp(c->join, "https://", 8) != 0 ||
		    url_host(c->join, host, sizeof host) != 0) {
			log_error("--join '%s' is not an https:// URL", c->join);
			return EXIT_USAGE;
		}
		if (str_empty(c->token)) {
			log_error("--join needs --token (DATA/join.token of a master)");
			return EXIT_USAGE;
		}
		if (strpbrk(c->token, "\r\n") != NULL) {
			log_error("--token must be one line");
			return EXIT_USAGE;
		}
		if (str_empty(c->join_ca)) {
			log_error("--join needs --join-ca (DATA/pki/ca.crt of a master) to verify it");
			return EXIT_USAGE;
		}
		if (access(c->join_ca, R_OK) != 0) {
			log_error("cannot read --join-ca %s: %s", c->join_ca, strerror(errno));
			return EXIT_USAGE;
		}
	}
	if (c->election_timeout_ms == 0 || c->heartbeat_timeout_ms == 0 ||
	    c->heartbeat_timeout_ms >= c->election_timeout_ms) {
		log_error("--heartbeat-timeout (%" PRIu64 "ms) must be above 0 and below "
			  "--election-timeout (%" PRIu64 "ms)",
			  c->heartbeat_timeout_ms, c->election_timeout_ms);
		return EXIT_USAGE;
	}
	if (c->snapshot_threshold == 0) {
		log_error("--snapshot-threshold must be above 0");
		return EXIT_USAGE;
	}

	if (!str_empty(c->advertise_url)) {
		if ((strncmp(c->advertise_url, "https://", 8) != 0 &&
		     strncmp(c->advertise_url, "http://", 7) != 0) ||
		    url_host(c->advertise_url, host, sizeof host) != 0) {
			log_error("--advertise-url '%s' is not an https:// or http:// URL",
				  c->advertise_url);
			return EXIT_USAGE;
		}
		d->advertise_url = strdup(c->advertise_url);
	} else {
		const char *addr = !str_empty(c->listen) ? c->listen : c->plain_listen;
		const char *scheme = !str_empty(c->listen) ? "https" : "http";
		int n;

		split_host_port(addr, host, sizeof host, &port);
		if (is_wildcard_host(host))
			strcpy(host, "127.0.0.1");
		if (strchr(host, ':') != NULL)
			n = asprintf(&d->advertise_url, "%s://[%s]:%u", scheme, host, port);
		else
			n = asprintf(&d->advertise_url, "%s://%s:%u", scheme, host, port);
		if (n < 0)
			d->advertise_url = NULL;
	}
	if (d->advertise_url == NULL) {
		log_error("out of memory");
		return EXIT_FAILURE;
	}
	/* Trailing slashes would double in the paths built from it. */
	for (size_t n = strlen(d->advertise_url); n > 0 && d->advertise_url[n - 1] == '/'; n--)
		d->advertise_url[n - 1] = '\0';
	return 0;
}

/* ------------------------------------------------------------ files */

static int mkdir_p(const char *path, mode_t mode)
{
	char *copy = strdup(path);
	struct stat st;
	int rv = 0;

	if (copy == NULL)
		return -ENOMEM;
	for (char *p = copy + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(copy, 0755) != 0 && errno != EEXIST) {
			rv = -errno;
			goto out;
		}
		*p = '/';
	}
	if (mkdir(copy, mode) != 0 && errno != EEXIST) {
		rv = -errno;
		goto out;
	}
	if (stat(copy, &st) != 0)
		rv = -errno;
	else if (!S_ISDIR(st.st_mode))
		rv = -ENOTDIR;
out:
	free(copy);
	return rv;
}

static int write_text(const char *dir, const char *name, const char *text, mode_t mode)
{
	char *path = path_join(dir, name);
	int rv;

	if (path == NULL)
		return -ENOMEM;
	rv = pki_write_file(path, text, strlen(text), mode);
	if (rv != 0)
		log_error("cannot write %s: %s", path, strerror(-rv));
	free(path);
	return rv;
}

static bool file_exists(const char *dir, const char *name)
{
	char *path = path_join(dir, name);
	bool ok;

	if (path == NULL)
		return false;
	ok = access(path, F_OK) == 0;
	free(path);
	return ok;
}

/* Reads DATA/id. Returns 1 with the id, 0 when absent, or -errno. */
static int read_id(struct daemon *d, uint64_t *ret_id)
{
	char *path = path_join(d->cfg->data_dir, "id");
	char *text = NULL, *end;
	unsigned long long id;
	int rv;

	if (path == NULL)
		return -ENOMEM;
	rv = pki_read_file(path, &text, NULL);
	if (rv == -ENOENT) {
		rv = 0;
		goto out;
	}
	if (rv != 0) {
		log_error("cannot read %s: %s", path, strerror(-rv));
		goto out;
	}
	errno = 0;
	id = strtoull(text, &end, 10);
	while (*end == '\n' || *end == ' ')
		end++;
	if (errno != 0 || id == 0 || *end != '\0' || text[0] < '0' || text[0] > '9') {
		log_error("%s is corrupt: expected a decimal raft id", path);
		rv = -EBADMSG;
		goto out;
	}
	*ret_id = id;
	rv = 1;
out:
	free(text);
	free(path);
	return rv;
}

static int write_id(struct daemon *d)
{
	char text[32];

	snprintf(text, sizeof text, "%" PRIu64 "\n", d->id);
	return write_text(d->cfg->data_dir, "id", text, 0644);
}

/* Creates DATA and its subdirectories and locks DATA/lock. */
static int prepare_data_dir(struct daemon *d)
{
	char *lock_path;
	int rv;

	rv = mkdir_p(d->cfg->data_dir, 0700);
	if (rv != 0) {
		log_error("cannot create the data directory %s: %s", d->cfg->data_dir,
			  strerror(-rv));
		return rv;
	}
	lock_path = path_join(d->cfg->data_dir, "lock");
	if (lock_path == NULL)
		return -ENOMEM;
	d->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (d->lock_fd < 0) {
		rv = -errno;
		log_error("cannot open %s: %s", lock_path, strerror(-rv));
		free(lock_path);
		return rv;
	}
	/* A previous instance killed a moment ago may still be exiting: its
	 * lock goes only after its memory, so give it a few seconds. */
	for (int tries = 0; flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0; tries++) {
		rv = -errno;
		if (rv == -EWOULDBLOCK && tries < 50) {
			struct timespec ts = {0, 100 * 1000 * 1000};
			nanosleep(&ts, NULL);
			continue;
		}
		if (rv == -EWOULDBLOCK)
			log_error("the data directory %s is in use by another capstand",
				  d->cfg->data_dir);
		else
			log_error("cannot lock %s: %s", lock_path, strerror(-rv));
		free(lock_path);
		return rv;
	}
	free(lock_path);
	if ((rv = mkdir_p(d->raft_dir, 0700)) != 0 || (rv = mkdir_p(d->pki_dir, 0700)) != 0) {
		log_error("cannot create %s or %s: %s", d->raft_dir, d->pki_dir, strerror(-rv));
		return rv;
	}
	return 0;
}

/* ------------------------------------------------------------ PKI */

/* The names the serving certificate must cover. Strings in @ret are
 * borrowed from @d or static, except *ret_owned (free it). */
static size_t serving_names(struct daemon *d, const char **ret, size_t max, char **ret_owned)
{
	static char hostname[256];
	char host[256];
	unsigned port;
	size_t n = 0;
	char *owned;

	*ret_owned = NULL;
#define ADD(name)                                                        \
	do {                                                             \
		bool dup_ = false;                                       \
		for (size_t j_ = 0; j_ < n; j_++)                        \
			dup_ = dup_ || strcmp(ret[j_], (name)) == 0;     \
		if (!dup_ && n < max)                                    \
			ret[n++] = (name);                               \
	} while (0)
	ADD("localhost");
	ADD("127.0.0.1");
	ADD("::1");
	if (gethostname(hostname, sizeof hostname - 1) == 0 && pki_valid_san(hostname))
		ADD(hostname);
	/* One buffer for the advertise host and the listen host. */
	owned = calloc(2, 256);
	if (owned != NULL) {
		if (url_host(d->advertise_url, owned, 256) == 0 && pki_valid_san(owned))
			ADD(owned);
		if (!str_empty(d->cfg->listen) &&
		    split_host_port(d->cfg->listen, host, sizeof host, &port) == 0 &&
		    !is_wildcard_host(host) && pki_valid_san(host)) {
			strcpy(owned + 256, host);
			ADD(owned + 256);
		}
		*ret_owned = owned;
	}
	for (size_t i = 0; i < d->cfg->san.n; i++)
		ADD(d->cfg->san.v[i]);
#undef ADD
	return n;
}

static int issue_and_write(struct daemon *d, const struct pki_pair *ca,
			   const struct pki_request *req, const char *name,
			   struct pki_pair *ret_pair)
{
	struct pki_pair p = {NULL, NULL};
	int rv;

	rv = pki_issue(ca, req, &p);
	if (rv != 0) {
		log_error("cannot issue the %s certificate: %s", name, strerror(-rv));
		return rv;
	}
	rv = pki_pair_write(&p, d->pki_dir, name);
	if (rv != 0) {
		log_error("cannot write %s/%s.crt and .key: %s", d->pki_dir, name, strerror(-rv));
		pki_pair_clear(&p);
		return rv;
	}
	if (ret_pair != NULL)
		*ret_pair = p;
	else
		pki_pair_clear(&p);
	return 0;
}

static int issue_server(struct daemon *d, const struct pki_pair *ca)
{
	const char *names[64];
	char *owned;
	size_t n = serving_names(d, names, 64, &owned);
	char cn[64];
	struct pki_request req = {
		.cn = cn, .sans = names, .n_sans = n, .usage = PKI_USAGE_SERVER,
	};
	int rv;

	snprintf(cn, sizeof cn, "capstan-master-%" PRIu64, d->id);
	rv = issue_and_write(d, ca, &req, PKI_SERVER, NULL);
	free(owned);
	return rv;
}

static int issue_master(struct daemon *d, const struct pki_pair *ca)
{
	const char *orgs[] = {GROUP_MASTERS};
	char cn[64];
	/* Both usages: masters may also serve each other with it (a TLS Raft
	 * transport). */
	struct pki_request req = {
		.cn = cn, .orgs = orgs, .n_orgs = 1,
		.usage = PKI_USAGE_CLIENT | PKI_USAGE_SERVER,
	};

	snprintf(cn, sizeof cn, "capstan-master-%" PRIu64, d->id);
	return issue_and_write(d, ca, &req, PKI_MASTER, NULL);
}

/* Issues the admin certificate and writes DATA/admin.kubeconfig. */
static int issue_admin(struct daemon *d, const struct pki_pair *ca)
{
	const char *orgs[] = {GROUP_MASTERS};
	struct pki_request req = {
		.cn = USER_ADMIN, .orgs = orgs, .n_orgs = 1, .usage = PKI_USAGE_CLIENT,
	};
	struct pki_pair admin = {NULL, NULL};
	char *ca_pem = NULL, *cert_pem = NULL, *key_pem = NULL, *path = NULL;
	size_t key_len = 0;
	int rv;

	rv = issue_and_write(d, ca, &req, PKI_ADMIN, &admin);
	if (rv != 0)
		return rv;
	if ((rv = pki_cert_pem(ca->cert, &ca_pem, NULL)) != 0 ||
	    (rv = pki_cert_pem(admin.cert, &cert_pem, NULL)) != 0 ||
	    (rv = pki_key_pem(admin.key, &key_pem, &key_len)) != 0)
		goto out;
	path = path_join(d->cfg->data_dir, "admin.kubeconfig");
	if (path == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	{
		struct pki_kubeconfig kc = {
			.cluster = CLUSTER_NAME,
			.server = d->advertise_url,
			.user = USER_ADMIN,
			.ca_pem = ca_pem,
			.cert_pem = cert_pem,
			.key_pem = key_pem,
		};
		rv = pki_kubeconfig_write(path, &kc);
	}
out:
	if (rv != 0)
		log_error("cannot write the admin kubeconfig: %s", strerror(-rv));
	if (key_pem != NULL) {
		memset(key_pem, 0, key_len);
		free(key_pem);
	}
	free(cert_pem);
	free(ca_pem);
	free(path);
	pki_pair_clear(&admin);
	return rv;
}

/* A new cluster: CA, certificates, tokens, kubeconfig. */
static int init_pki(struct daemon *d)
{
	const char *masters[] = {GROUP_MASTERS};
	const char *join[] = {GROUP_JOIN};
	char admin_token[TOKENS_LEN + 2], join_token[TOKENS_LEN + 2]; /* + "\n" */
	struct pki_pair ca = {NULL, NULL};
	int rv;

	rv = pki_ca_create("capstan-ca", &ca);
	if (rv != 0) {
		log_error("cannot create the cluster CA: %s", strerror(-rv));
		return rv;
	}
	rv = pki_pair_write(&ca, d->pki_dir, PKI_CA);
	if (rv != 0) {
		log_error("cannot write the cluster CA to %s: %s", d->pki_dir, strerror(-rv));
		goto out;
	}
	if ((rv = issue_server(d, &ca)) != 0 || (rv = issue_master(d, &ca)) != 0 ||
	    (rv = issue_admin(d, &ca)) != 0)
		goto out;
	if ((rv = tokens_generate(admin_token, sizeof admin_token)) != 0 ||
	    (rv = tokens_generate(join_token, sizeof join_token)) != 0) {
		log_error("cannot generate tokens: %s", strerror(-rv));
		goto out;
	}
	{
		struct tokens_entry entries[] = {
			{admin_token, USER_ADMIN, USER_ADMIN, masters, 1},
			{join_token, USER_JOIN, USER_JOIN, join, 1},
		};
		rv = tokens_write(d->token_file, entries, 2);
		if (rv != 0) {
			log_error("cannot write %s: %s", d->token_file, strerror(-rv));
			goto out;
		}
	}
	strcat(admin_token, "\n");
	strcat(join_token, "\n");
	if ((rv = write_text(d->cfg->data_dir, "admin.token", admin_token, 0600)) != 0 ||
	    (rv = write_text(d->cfg->data_dir, "join.token", join_token, 0600)) != 0)
		goto out;
out:
	memset(admin_token, 0, sizeof admin_token);
	memset(join_token, 0, sizeof join_token);
	pki_pair_clear(&ca);
	return rv;
}

/* Later starts: reissues the serving certificate when a name is missing or
 * it is about to expire, and the master certificate when about to expire. */
static int refresh_pki(struct daemon *d)
{
	struct pki_pair server = {NULL, NULL}, master = {NULL, NULL}, ca = {NULL, NULL};
	const char *names[64], *missing = NULL;
	bool renew_server = false, renew_master = false;
	int64_t left = 0;
	char *owned;
	size_t n;
	int rv;

	rv = pki_pair_load(d->pki_dir, PKI_SERVER, true, &server);
	if (rv != 0) {
		log_error("cannot load %s/server.crt and server.key: %s", d->pki_dir,
			  strerror(-rv));
		return rv;
	}
	rv = pki_pair_load(d->pki_dir, PKI_MASTER, true, &master);
	if (rv != 0) {
		log_error("cannot load %s/master.crt and master.key: %s", d->pki_dir,
			  strerror(-rv));
		goto out;
	}
	n = serving_names(d, names, 64, &owned);
	for (size_t i = 0; i < n && missing == NULL; i++) {
		if (!pki_cert_covers(server.cert, names[i]))
			missing = names[i];
	}
	if (missing != NULL) {
		log_info("the serving certificate does not cover '%s': reissuing it", missing);
		renew_server = true;
	}
	free(owned);
	if (pki_cert_seconds_left(server.cert, &left) == 0 && left < RENEW_DAYS * 86400) {
		log_info("the serving certificate expires in %" PRId64 " days: reissuing it",
			 left / 86400);
		renew_server = true;
	}
	if (pki_cert_seconds_left(master.cert, &left) == 0 && left < RENEW_DAYS * 86400) {
		log_info("the master certificate expires in %" PRId64 " days: reissuing it",
			 left / 86400);
		renew_master = true;
	}
	if (!renew_server && !renew_master)
		goto out;
	rv = pki_pair_load(d->pki_dir, PKI_CA, true, &ca);
	if (rv != 0) {
		log_warn("cannot load the CA key from %s (%s): keeping the old certificates",
			 d->pki_dir, strerror(-rv));
		rv = 0;
		goto out;
	}
	if (renew_server && (rv = issue_server(d, &ca)) != 0)
		goto out;
	if (renew_master && (rv = issue_master(d, &ca)) != 0)
		goto out;
out:
	pki_pair_clear(&ca);
	pki_pair_clear(&master);
	pki_pair_clear(&server);
	return rv;
}

/* ------------------------------------------------------------ HTTP client */

/* Blocking requests with libcurl, for the join: before the loop runs (the
 * CA) and on a pool thread (the membership request). */

struct call {
	const char *method; /* "GET" or "POST" */
	const char *url;
	const char *bearer;    /* may be NULL */
	const char *ca_file;
	const char *cert_file; /* may be NULL */
	const char *key_file;
	const char *body;      /* POST body, JSON */
	atomic_bool *cancel;   /* may be NULL */
	long timeout_ms;
};

struct reply {
	long code;
	char *body;
	size_t len;
	bool too_big;
};

static size_t reply_write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct reply *r = arg;
	size_t n = size * nmemb;
	char *grown;

	if (r->len + n > (4u << 20)) {
		r->too_big = true;
		return 0;
	}
	grown = realloc(r->body, r->len + n + 1);
	if (grown == NULL)
		return 0;
	memcpy(grown + r->len, data, n);
	r->len += n;
	grown[r->len] = '\0';
	r->body = grown;
	return n;
}

static int xfer_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		   curl_off_t ulnow)
{
	atomic_bool *cancel = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return cancel != NULL && atomic_load(cancel) ? 1 : 0;
}

/* One request. Returns 0 with r->code set, or -ENOTCONN (could not
 * connect: retry), -EPERM (the server's certificate does not verify),
 * -ECANCELED, -ETIMEDOUT / -EIO (other failures), -ENOMEM. */
static int call_once(const struct call *c, struct reply *r, char *errmsg, size_t errmsg_len)
{
	char curl_err[CURL_ERROR_SIZE] = "";
	struct curl_slist *headers = NULL, *h;
	char *auth = NULL;
	CURL *curl;
	CURLcode cc;
	int rv = 0;

	free(r->body);
	memset(r, 0, sizeof *r);
	curl = curl_easy_init();
	if (curl == NULL)
		return -ENOMEM;
	if (c->bearer != NULL) {
		if (asprintf(&auth, "Authorization: Bearer %s", c->bearer) < 0) {
			auth = NULL;
			rv = -ENOMEM;
			goto out;
		}
		h = curl_slist_append(headers, auth);
		if (h == NULL) {
			rv = -ENOMEM;
			goto out;
		}
		headers = h;
	}
	h = curl_slist_append(headers, "Accept: application/json");
	if (h == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	headers = h;
	if (c->body != NULL) {
		h = curl_slist_append(headers, "Content-Type: application/json");
		if (h == NULL) {
			rv = -ENOMEM;
			goto out;
		}
		headers = h;
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, c->body);
	}
	curl_easy_setopt(curl, CURLOPT_URL, c->url);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, c->method);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CAINFO, c->ca_file);
	curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	if (c->cert_file != NULL) {
		curl_easy_setopt(curl, CURLOPT_SSLCERT, c->cert_file);
		curl_easy_setopt(curl, CURLOPT_SSLKEY, c->key_file);
	}
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, reply_write_cb);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, xfer_cb);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, c->cancel);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
	cc = curl_easy_perform(curl);
	switch (cc) {
	case CURLE_OK:
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->code);
		break;
	case CURLE_ABORTED_BY_CALLBACK:
		rv = -ECANCELED;
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
		rv = -ENOTCONN;
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
		rv = -EPERM;
		break;
	case CURLE_OPERATION_TIMEDOUT:
		rv = -ETIMEDOUT;
		break;
	case CURLE_WRITE_ERROR:
		rv = r->too_big ? -EFBIG : -ENOMEM;
		break;
	default:
		rv = -EIO;
		break;
	}
	if (rv != 0)
		snprintf(errmsg, errmsg_len, "%s %s: %s", c->method, c->url,
			 curl_err[0] ? curl_err : curl_easy_strerror(cc));
out:
	curl_slist_free_all(headers);
	if (auth != NULL) {
		memset(auth, 0, strlen(auth));
		free(auth);
	}
	curl_easy_cleanup(curl);
	return rv;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Sleeps @ms in small steps so that a cancel is noticed. */
static bool sleep_unless_cancelled(uint64_t ms, atomic_bool *cancel)
{
	while (ms > 0) {
		uint64_t step = ms < 50 ? ms : 50;
		struct timespec ts = {0, (long)step * 1000000};

		if (cancel != NULL && atomic_load(cancel))
			return false;
		nanosleep(&ts, NULL);
		ms -= step;
	}
	return cancel == NULL || !atomic_load(cancel);
}

/* Retries for @window_ms while the server cannot be reached or answers
 * 502/503/504/429 (no leader yet, a membership change in progress).
 * Returns as call_once(); a final 5xx comes back as 0 with r->code. */
static int call_with_retry(const struct call *c, uint64_t window_ms, struct reply *r,
			   char *errmsg, size_t errmsg_len)
{
	uint64_t deadline = now_ms() + window_ms;
	uint64_t backoff = 100;
	int rv;

	for (;;) {
		rv = call_once(c, r, errmsg, errmsg_len);
		if (rv == -EPERM || rv == -ECANCELED || rv == -ENOMEM || rv == -EFBIG)
			return rv;
		if (rv == 0 && r->code != 502 && r->code != 503 && r->code != 504 &&
		    r->code != 429)
			return 0;
		if (rv == 0)
			snprintf(errmsg, errmsg_len, "%s %s: HTTP %ld%s%.200s", c->method,
				 c->url, r->code, r->body ? ": " : "", r->body ? r->body : "");
		if (now_ms() + backoff > deadline)
			return rv;
		log_debug("%s; retrying in %" PRIu64 "ms", errmsg, backoff);
		if (!sleep_unless_cancelled(backoff, c->cancel))
			return -ECANCELED;
		backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
	}
}

/* Strips trailing slashes into a new string. */
static char *url_base(const char *url)
{
	char *s = strdup(url);

	if (s != NULL) {
		for (size_t n = strlen(s); n > 0 && s[n - 1] == '/'; n--)
			s[n - 1] = '\0';
	}
	return s;
}

/* ------------------------------------------------------------ join */

/* A random id that is positive and below 2^53, so that JSON readers that
 * hold numbers as doubles keep it exact. */
static int random_id(uint64_t *ret_id)
{
	uint64_t id = 0;
	int rv;

	while (id == 0 || id == 1) {
		rv = pki_random(&id, sizeof id);
		if (rv != 0)
			return rv;
		id &= (UINT64_C(1) << 53) - 1;
	}
	*ret_id = id;
	return 0;
}

/* Fetches the CA and the tokens from the seed and writes them. */
static int join_fetch(struct daemon *d, atomic_bool *cancel)
{
	struct settings *c = d->cfg;
	struct pki_pair ca = {NULL, NULL};
	struct reply r = {0};
	char errmsg[512] = "";
	char *base = url_base(c->join), *url = NULL, *token = NULL, *line = NULL;
	const char *ca_cert, *ca_key, *tokens;
	json_t *doc = NULL;
	json_error_t jerr;
	int rv;

	if (base == NULL || asprintf(&url, "%s/capstan/v1/cluster/ca", base) < 0) {
		url = NULL;
		rv = -ENOMEM;
		goto out;
	}
	{
		struct call call = {
			.method = "GET",
			.url = url,
			.bearer = c->token,
			.ca_file = c->join_ca,
			.cancel = cancel,
			.timeout_ms = 30000,
		};

		log_info("joining through %s: fetching the cluster CA", base);
		rv = call_with_retry(&call, JOIN_WINDOW_MS, &r, errmsg, sizeof errmsg);
	}
	if (rv == -ECANCELED)
		goto out;
	if (rv == -EPERM) {
		log_error("cannot join through %s: its certificate does not verify against "
			  "--join-ca %s (%s)", base, c->join_ca, errmsg);
		goto out;
	}
	if (rv != 0) {
		log_error("cannot join through %s: %s", base, errmsg);
		goto out;
	}
	if (r.code == 401 || r.code == 403) {
		log_error("cannot join through %s: the join token was refused (HTTP %ld)", base,
			  r.code);
		rv = -EACCES;
		goto out;
	}
	if (r.code != 200) {
		log_error("cannot join through %s: GET %s answered HTTP %ld", base, url, r.code);
		rv = -EPROTO;
		goto out;
	}
	doc = json_loadb(r.body ? r.body : "", r.len, 0, &jerr);
	if (doc == NULL || json_unpack(doc, "{s:s, s:s, s:s}", "caCert", &ca_cert, "caKey",
				       &ca_key, "tokens", &tokens) != 0) {
		log_error("cannot join through %s: GET %s did not answer "
			  "{\"caCert\",\"caKey\",\"tokens\"}", base, url);
		rv = -EPROTO;
		goto out;
	}
	rv = pki_pair_from_pem(ca_cert, strlen(ca_cert), ca_key, strlen(ca_key), &ca);
	if (rv != 0 || X509_check_ca(ca.cert) < 1) {
		log_error("cannot join through %s: the CA it sent is unusable", base);
		rv = -EPROTO;
		goto out;
	}
	rv = pki_pair_write(&ca, d->pki_dir, PKI_CA);
	if (rv != 0) {
		log_error("cannot write the cluster CA to %s: %s", d->pki_dir, strerror(-rv));
		goto out;
	}
	rv = pki_write_file(d->token_file, tokens, strlen(tokens), 0600);
	if (rv != 0) {
		log_error("cannot write %s: %s", d->token_file, strerror(-rv));
		goto out;
	}
	/* The well-known tokens, for tools on this master's plain listener. */
	if (tokens_find_user(tokens, USER_ADMIN, &token) == 0) {
		rv = asprintf(&line, "%s\n", token) < 0 ? -ENOMEM : 0;
		if (rv == 0)
			rv = write_text(c->data_dir, "admin.token", line, 0600);
		free(line);
		free(token);
		line = token = NULL;
		if (rv != 0)
			goto out;
	}
	if (tokens_find_user(tokens, USER_JOIN, &token) == 0) {
		rv = asprintf(&line, "%s\n", token) < 0 ? -ENOMEM : 0;
		if (rv == 0)
			rv = write_text(c->data_dir, "join.token", line, 0600);
		free(line);
		free(token);
		line = token = NULL;
		if (rv != 0)
			goto out;
	}
	if ((rv = issue_server(d, &ca)) != 0 || (rv = issue_master(d, &ca)) != 0 ||
	    (rv = issue_admin(d, &ca)) != 0)
		goto out;
	rv = asprintf(&line, "%s\n", base) < 0 ? -ENOMEM : 0;
	if (rv == 0)
		rv = write_text(c->data_dir, "join-url", line, 0644);
	free(line);
out:
	if (rv == -ENOMEM)
		log_error("out of memory");
	json_decref(doc);
	pki_pair_clear(&ca);
	free(r.body);
	free(url);
	free(base);
	return rv;
}

static void join_free(struct join_work *j)
{
	if (j == NULL)
		return;
	free(j->url);
	free(j->body);
	free(j->ca_file);
	free(j->cert_file);
	free(j->key_file);
	free(j->joined_path);
	free(j);
}

/* Pool thread: POST the membership request until it is answered. */
static void join_work_cb(uv_work_t *req)
{
	struct join_work *j = req->data;
	struct reply r = {0};
	struct call call = {
		.method = "POST",
		.url = j->url,
		.ca_file = j->ca_file,
		.cert_file = j->cert_file,
		.key_file = j->key_file,
		.body = j->body,
		.cancel = &j->cancel,
		/* Adding a member waits for it to catch up: be patient. */
		.timeout_ms = 120000,
	};
	int rv;

	rv = call_with_retry(&call, JOIN_WINDOW_MS, &r, j->errmsg, sizeof j->errmsg);
	if (rv == 0 && r.code != 200) {
		snprintf(j->errmsg, sizeof j->errmsg, "POST %s answered HTTP %ld%s%.300s", j->url,
			 r.code, r.body ? ": " : "", r.body ? r.body : "");
		rv = -EPROTO;
	}
	if (rv == 0) {
		rv = pki_write_file(j->joined_path, "", 0, 0644);
		if (rv != 0)
			snprintf(j->errmsg, sizeof j->errmsg, "cannot create %s: %s",
				 j->joined_path, strerror(-rv));
	}
	free(r.body);
	j->status = rv;
}

static void begin_shutdown(struct daemon *d, int code);
static void maybe_close_handles(struct daemon *d);

static void join_after_work_cb(uv_work_t *req, int status)
{
	struct join_work *j = req->data;
	struct daemon *d = j->d;

	d->join = NULL;
	if (status == UV_ECANCELED || j->status == -ECANCELED || d->closing) {
		join_free(j);
		maybe_close_handles(d);
		return;
	}
	if (j->status == 0) {
		log_info("joined the cluster as member %" PRIu64, d->id);
	} else {
		log_error("cannot become a member of the cluster: %s", j->errmsg);
		begin_shutdown(d, EXIT_FAILURE);
	}
	join_free(j);
}

/* Starts the membership request towards @base (the seed's URL). */
static int join_request_start(struct daemon *d, const char *base)
{
	struct join_work *j = calloc(1, sizeof *j);
	json_t *body;
	int rv;

	if (j == NULL)
		return -ENOMEM;
	j->d = d;
	j->req.data = j;
	atomic_init(&j->cancel, false);
	body = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)d->id, "raftAddress",
			 d->cfg->raft_address, "apiURL", d->advertise_url);
	if (body != NULL) {
		j->body = json_dumps(body, JSON_COMPACT);
		json_decref(body);
	}
	if (asprintf(&j->url, "%s/capstan/v1/cluster/members", base) < 0)
		j->url = NULL;
	j->ca_file = path_join(d->pki_dir, "ca.crt");
	j->cert_file = path_join(d->pki_dir, "master.crt");
	j->key_file = path_join(d->pki_dir, "master.key");
	j->joined_path = path_join(d->cfg->data_dir, "joined");
	if (j->body == NULL || j->url == NULL || j->ca_file == NULL || j->cert_file == NULL ||
	    j->key_file == NULL || j->joined_path == NULL) {
		join_free(j);
		return -ENOMEM;
	}
	rv = uv_queue_work(&d->loop, &j->req, join_work_cb, join_after_work_cb);
	if (rv != 0) {
		join_free(j);
		return rv;
	}
	d->join = j;
	log_info("asking %s to add this replica (id %" PRIu64 ", raft %s) to the cluster", base,
		 d->id, d->cfg->raft_address);
	return 0;
}

/* The seed to ask for membership: DATA/join-url, else --join. */
static char *join_base(struct daemon *d)
{
	char *path = path_join(d->cfg->data_dir, "join-url");
	char *text = NULL;

	if (path != NULL && pki_read_file(path, &text, NULL) == 0) {
		text[strcspn(text, "\r\n")] = '\0';
		if (text[0] == '\0') {
			free(text);
			text = NULL;
		}
	}
	free(path);
	if (text == NULL && !str_empty(d->cfg->join))
		text = url_base(d->cfg->join);
	return text;
}

static int start_serving(struct daemon *d, enum start_mode mode);

/* The CA fetch of a first --join, run on a pool thread. */
struct fetch_work {
	uv_work_t req;
	struct daemon *d;
	atomic_bool cancel;
	int status;
};

static void fetch_work_cb(uv_work_t *req)
{
	struct fetch_work *f = req->data;

	f->status = join_fetch(f->d, &f->cancel);
}

static void fetch_after_work_cb(uv_work_t *req, int status)
{
	struct fetch_work *f = req->data;
	struct daemon *d = f->d;
	int code;

	d->fetch = NULL;
	if (status == UV_ECANCELED || f->status == -ECANCELED || d->closing) {
		free(f);
		maybe_close_handles(d);
		return;
	}
	code = f->status == 0 ? start_serving(d, START_JOIN) : EXIT_FAILURE;
	free(f);
	if (code != 0)
		begin_shutdown(d, code);
}

static int fetch_start(struct daemon *d)
{
	struct fetch_work *f = calloc(1, sizeof *f);
	int rv;

	if (f == NULL) {
		log_error("out of memory");
		return -ENOMEM;
	}
	f->d = d;
	f->req.data = f;
	atomic_init(&f->cancel, false);
	rv = uv_queue_work(&d->loop, &f->req, fetch_work_cb, fetch_after_work_cb);
	if (rv != 0) {
		log_error("cannot queue the join: %s", uv_strerror(rv));
		free(f);
		return rv;
	}
	d->fetch = f;
	return 0;
}

/* ------------------------------------------------------------ lifecycle */

static void handle_closed_cb(uv_handle_t *h)
{
	(void)h;
}

static void maybe_close_handles(struct daemon *d)
{
	if (!d->closing || d->handles_closing || d->http != NULL || d->replica != NULL ||
	    d->join != NULL || d->fetch != NULL)
		return;
	d->handles_closing = true;
	daemon_signals_close(&d->signals, handle_closed_cb);
	uv_close((uv_handle_t *)&d->watchdog, handle_closed_cb);
}

static void replica_closed_cb(void *data)
{
	struct daemon *d = data;

	d->replica = NULL;
	maybe_close_handles(d);
}

static void http_closed_cb(void *data)
{
	struct daemon *d = data;

	d->http = NULL;
	if (d->replica != NULL)
		replica_close(d->replica, replica_closed_cb, d);
	else
		maybe_close_handles(d);
}

static void watchdog_cb(uv_timer_t *t)
{
	(void)t;
	log_error("the graceful shutdown took longer than %ds: exiting now",
		  SHUTDOWN_TIMEOUT_MS / 1000);
	_exit(EXIT_FAILURE);
}

/* Closes the API server, then the replica, then the loop's own handles;
 * uv_run() then returns and main exits with @code (the first reason
 * wins, except that a failure overrides a clean stop). */
static void begin_shutdown(struct daemon *d, int code)
{
	if (d->closing) {
		if (code != 0 && d->exit_code == 0)
			d->exit_code = code;
		return;
	}
	d->closing = true;
	d->exit_code = code;
	/* The loops stop first: nothing new is proposed while closing. */
	ctrl_driver_close(d->ctrl);
	d->ctrl = NULL;
	if (d->join != NULL) {
		atomic_store(&d->join->cancel, true);
		uv_cancel((uv_req_t *)&d->join->req);
	}
	if (d->fetch != NULL) {
		atomic_store(&d->fetch->cancel, true);
		uv_cancel((uv_req_t *)&d->fetch->req);
	}
	uv_timer_start(&d->watchdog, watchdog_cb, SHUTDOWN_TIMEOUT_MS, 0);
	if (d->http != NULL)
		http_server_close(d->http, http_closed_cb, d);
	else
		http_closed_cb(d);
}

static void signal_cb(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;

	if (d->closing) {
		log_warn("received %s again: exiting now", strsignal(signum));
		_exit(EXIT_FAILURE);
	}
	log_info("received %s: shutting down", strsignal(signum));
	begin_shutdown(d, EXIT_SUCCESS);
}

static void replica_failed_cb(void *data)
{
	struct daemon *d = data;

	log_error("the replica failed (%s): exiting so that it restarts from disk",
		  d->replica ? replica_errmsg(d->replica) : "unknown error");
	begin_shutdown(d, EXIT_FAILURE);
}

static void replica_removed_cb(void *data)
{
	struct daemon *d = data;

	log_info("removed from the cluster: shutting down");
	begin_shutdown(d, EXIT_SUCCESS);
}

static void leadership_cb(void *data, bool leading)
{
	struct daemon *d = data;

	if (leading)
		log_info("this replica (id %" PRIu64 ") now leads the cluster", d->id);
	else
		log_info("this replica (id %" PRIu64 ") stopped leading", d->id);
	if (d->ctrl != NULL && !d->closing)
		ctrl_driver_leading(d->ctrl, leading);
}

/* --restore: the backup is checked before anything is created, so a
 * corrupt file leaves no cluster behind. Returns 0 or the exit status. */
static int restore_load(struct daemon *d)
{
	struct settings *c = d->cfg;
	char err[512];
	int rv;

	if (!c->init || !str_empty(c->join)) {
		log_error("--restore FILE needs --init (it creates a new cluster)");
		return EXIT_USAGE;
	}
	rv = restore_new(c->restore, &d->restore, err, sizeof err);
	if (rv != 0) {
		d->restore = NULL;
		log_error("cannot restore from %s: %s", c->restore, err);
		return EXIT_FAILURE;
	}
	return 0;
}

static void restore_done_cb(void *data, int status)
{
	struct daemon *d = data;
	char *path;

	if (status != 0) {
		begin_shutdown(d, EXIT_FAILURE);
		return;
	}
	path = path_join(d->cfg->data_dir, "restoring");
	if (path != NULL)
		unlink(path);
	free(path);
}

/* Everything up to a running replica and API server. Returns 0 or the exit
 * status; on failure whatever was started is left for begin_shutdown(). */
static int start(struct daemon *d)
{
	struct settings *c = d->cfg;
	enum start_mode mode;
	int rv;

	if (!str_empty(c->restore) && !file_exists(c->data_dir, "restored")) {
		rv = restore_load(d);
		if (rv != 0)
			return rv;
	}
	rv = prepare_data_dir(d);
	if (rv != 0)
		return EXIT_FAILURE;
	rv = read_id(d, &d->id);
	if (rv < 0)
		return EXIT_FAILURE;
	if (rv == 1) {
		mode = START_RESTART;
		if (c->init || !str_empty(c->join))
			log_info("%s already holds member %" PRIu64 ": restarting it, --%s ignored",
				 c->data_dir, d->id, c->init ? "init" : "join");
	} else if (c->init) {
		mode = START_INIT;
	} else if (!str_empty(c->join)) {
		mode = START_JOIN;
	} else {
		log_error("%s holds no cluster member: start with --init to create a cluster, "
			  "or with --join URL --token TOKEN --join-ca FILE to join one",
			  c->data_dir);
		return EXIT_USAGE;
	}
	/* A restore resumes after a restart only if this cluster was created
	 * by it (DATA/restoring); never into an existing cluster. */
	if (d->restore != NULL && mode == START_RESTART &&
	    !file_exists(c->data_dir, "restoring")) {
		log_info("%s already holds member %" PRIu64 ": --restore ignored", c->data_dir, d->id);
		restore_free(d->restore);
		d->restore = NULL;
	}
	if (d->restore != NULL && mode == START_INIT &&
	    write_text(c->data_dir, "restoring", c->restore, 0600) != 0)
		return EXIT_FAILURE;

	if (mode == START_INIT) {
		d->id = 1;
		log_info("creating a new cluster in %s", c->data_dir);
		if (init_pki(d) != 0)
			return EXIT_FAILURE;
	} else if (mode == START_JOIN) {
		if (random_id(&d->id) != 0) {
			log_error("cannot draw a random id");
			return EXIT_FAILURE;
		}
		/* The seed may take a while to answer: from a pool thread, so
		 * that a signal still stops us gracefully. start_serving()
		 * follows from its completion. */
		if (fetch_start(d) != 0)
			return EXIT_FAILURE;
		return 0;
	} else {
		if (refresh_pki(d) != 0)
			return EXIT_FAILURE;
	}
	return start_serving(d, mode);
}

/* The replica, the API server, and the membership request if needed. */
static int start_serving(struct daemon *d, enum start_mode mode)
{
	struct settings *c = d->cfg;
	struct replica_config rc;
	struct http_server_config hc;
	bool joined;
	int rv;

	replica_config_init(&rc);
	rc.id = d->id;
	rc.raft_address = c->raft_address;
	rc.api_url = d->advertise_url;
	rc.data_dir = d->raft_dir;
	rc.election_timeout_ms = (unsigned)c->election_timeout_ms;
	rc.heartbeat_timeout_ms = (unsigned)c->heartbeat_timeout_ms;
	rc.snapshot_threshold = (unsigned)c->snapshot_threshold;
	rc.snapshot_trailing = (unsigned)c->snapshot_trailing;
	rc.store.history_min_events = c->history_events;
	rc.store.history_min_age_ms = c->history_age_ms;
	rv = replica_new(&d->loop, &rc, &d->replica);
	if (rv != 0) {
		d->replica = NULL;
		log_error("cannot create the replica in %s: %s", d->raft_dir, strerror(-rv));
		return EXIT_FAILURE;
	}
	replica_on_failed(d->replica, replica_failed_cb, d);
	replica_on_removed(d->replica, replica_removed_cb, d);
	{
		/* Borrowed by the driver: lives as long as the process. */
		static const struct ctrl_ops *ops[64];
		struct ctrl_config cc;
		char err[256];
		if (ctrl_select(c->controllers, ops, sizeof ops / sizeof ops[0], err,
				sizeof err) < 0) {
			log_error("--controllers: %s", err);
			return EXIT_USAGE;
		}
		ctrl_config_init(&cc);
		cc.node_grace_ms = c->node_grace_ms;
		cc.eviction_toleration_s = c->pod_eviction_ms / 1000;
		if (ctrl_driver_new(&d->loop, d->replica, &cc, ops, &d->ctrl) != 0) {
			log_error("out of memory");
			return EXIT_FAILURE;
		}
	}
	if (replica_on_leadership(d->replica, leadership_cb, d) != 0) {
		log_error("out of memory");
		return EXIT_FAILURE;
	}
	if (mode == START_INIT) {
		rv = replica_bootstrap(d->replica);
		if (rv == -EEXIST) {
			/* An --init that stopped before writing DATA/id. */
			log_warn("%s already holds a bootstrapped log: keeping it", d->raft_dir);
		} else if (rv != 0) {
			log_error("cannot bootstrap the cluster in %s: %s", d->raft_dir,
				  replica_errmsg(d->replica));
			return EXIT_FAILURE;
		}
		if (write_text(c->data_dir, "joined", "", 0644) != 0)
			return EXIT_FAILURE;
	}
	if (mode != START_RESTART && write_id(d) != 0)
		return EXIT_FAILURE;

	rv = replica_start(d->replica);
	if (rv != 0) {
		log_error("cannot start the replica from %s: %s", d->raft_dir,
			  replica_errmsg(d->replica));
		return EXIT_FAILURE;
	}

	memset(&hc, 0, sizeof hc);
	hc.listen = c->listen;
	hc.plain_listen = c->plain_listen;
	hc.pki_dir = d->pki_dir;
	hc.token_file = d->token_file;
	hc.max_streams = 256;
	rv = http_server_new(&d->loop, &hc, d->replica, &d->http);
	if (rv == -EIO) {
		d->http = NULL; /* http/ logged why */
		return EXIT_FAILURE;
	}
	if (rv != 0) {
		d->http = NULL;
		log_error("cannot serve the API on %s%s%s: %s", str_empty(c->listen) ? "" : c->listen,
			  !str_empty(c->listen) && !str_empty(c->plain_listen) ? " and " : "",
			  str_empty(c->plain_listen) ? "" : c->plain_listen, strerror(-rv));
		return EXIT_FAILURE;
	}

	joined = file_exists(c->data_dir, "joined");
	if (!joined) {
		char *base = join_base(d);

		if (base == NULL) {
			log_error("this replica is not a member yet and %s/join-url is missing: "
				  "start it with --join URL", c->data_dir);
			return EXIT_FAILURE;
		}
		rv = join_request_start(d, base);
		free(base);
		if (rv != 0) {
			log_error("cannot start the membership request: %s", strerror(-rv));
			return EXIT_FAILURE;
		}
	}
	if (d->restore != NULL) {
		char *marker = path_join(c->data_dir, "restored");

		rv = marker == NULL ? -ENOMEM
				    : restore_start(d->restore, d->replica, marker, restore_done_cb, d);
		free(marker);
		if (rv != 0) {
			log_error("cannot start the restore: %s", strerror(-rv));
			return EXIT_FAILURE;
		}
	}
	log_info("capstand %s: member %" PRIu64 ", raft %s, API %s%s%s, data %s",
		 version_string(), d->id, c->raft_address, d->advertise_url,
		 str_empty(c->plain_listen) ? "" : ", plain ",
		 str_empty(c->plain_listen) ? "" : c->plain_listen, c->data_dir);
	return 0;
}

static void walk_close_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static int run(struct daemon *d)
{
	int rv, code;

	rv = uv_loop_init(&d->loop);
	if (rv != 0) {
		log_error("cannot start the event loop: %s", uv_strerror(rv));
		return EXIT_FAILURE;
	}
	uv_timer_init(&d->loop, &d->watchdog);
	uv_unref((uv_handle_t *)&d->watchdog);
	daemon_signals_start(&d->signals, &d->loop, signal_cb, d);

	code = start(d);
	if (code != 0)
		begin_shutdown(d, code);
	uv_run(&d->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&d->loop) == UV_EBUSY) {
		uv_walk(&d->loop, walk_close_cb, NULL);
		uv_run(&d->loop, UV_RUN_DEFAULT);
		uv_loop_close(&d->loop);
	}
	return d->exit_code;
}

int main(int argc, char *argv[])
{
	struct settings cfg;
	struct daemon d;
	const char *config_path = NULL;
	int code;

	memset(&cfg, 0, sizeof cfg);
	if (!daemon_parse_args(&spec, &cfg, argc, argv, &config_path, &code))
		return code;
	log_init("capstand", cfg.log_level);
	if (config_path != NULL)
		log_debug("read settings from %s", config_path);

	memset(&d, 0, sizeof d);
	d.cfg = &cfg;
	d.lock_fd = -1;
	code = check_settings(&d);
	if (code != 0)
		goto out;
	d.raft_dir = path_join(cfg.data_dir, "raft");
	d.pki_dir = path_join(cfg.data_dir, "pki");
	d.token_file = path_join(cfg.data_dir, "tokens.csv");
	if (d.raft_dir == NULL || d.pki_dir == NULL || d.token_file == NULL) {
		log_error("out of memory");
		code = EXIT_FAILURE;
		goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("cannot initialise libcurl");
		code = EXIT_FAILURE;
		goto out;
	}
	code = run(&d);
	curl_global_cleanup();
	if (code == EXIT_SUCCESS)
		log_info("stopped");
out:
	if (d.lock_fd >= 0)
		close(d.lock_fd);
	free(d.advertise_url);
	free(d.raft_dir);
	free(d.pki_dir);
	free(d.token_file);
	restore_free(d.restore); /* after the replica closed: it held callbacks */
	config_free(&spec, &cfg);
	return code;
}
