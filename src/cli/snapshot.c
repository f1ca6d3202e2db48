/* capstan snapshot save|inspect|restore: online backups of the whole store.
 *
 * save: GET /capstan/v1/snapshot (a linearizable point on the master),
 * check the file's checksums, then write FILE.tmp, fsync, rename to FILE
 * and fsync the directory, so FILE is either the old file or a whole new
 * backup. inspect: check the file and show its header and what it holds
 * per key prefix. restore: check the file, then run capstand in the
 * foreground as "capstand --init --restore FILE --data-dir DIR [FLAG...]":
 * a new one-member cluster whose store starts from the backup (see
 * capstand(8) --restore).
 *
 * Linked into the capstan program itself (not src/libcapstan.a): it decodes
 * the store encoding with raft/store.c, which links before src/.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "raft/store.h"
#include "src/cli/cli.h"
#include "src/lib/snapfile.h"

#define SAVE_TIMEOUT_MS 300000 /* whole download, unless --request-timeout */

enum {
	OPT_DATA_DIR = CLI_OPT_FIRST_LOCAL,
	OPT_CAPSTAND,
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstan snapshot save FILE\n"
		"       capstan snapshot inspect FILE [-o text|json]\n"
		"       capstan snapshot restore FILE --data-dir DIR [--capstand PATH]\n"
		"                                [-- CAPSTAND-FLAG...]\n"
		"Back up the replicated store of a running cluster, and create a new\n"
		"cluster from a backup.\n"
		"\n"
		"  save      download a consistent snapshot (every write acknowledged\n"
		"            before the command started is in it) into FILE, atomically;\n"
		"            needs a user of group system:masters\n"
		"  inspect   check FILE and show its header and key counts per prefix\n"
		"  restore   check FILE, then run capstand in the foreground to create a\n"
		"            new one-member cluster in DIR from it (capstand --init\n"
		"            --restore FILE --data-dir DIR, plus the flags after '--',\n"
		"            e.g. --listen and --raft-address)\n"
		"\n"
		"  -o, --output FORMAT   inspect: text (default) or json\n"
		"      --data-dir DIR    restore: data directory of the new master\n"
		"      --capstand PATH   restore: the capstand program (default: next to\n"
		"                        capstan, else from PATH)\n"
		"  -h, --help            show this help\n"
		"\n"
		"A corrupt or truncated FILE fails inspect and restore with exit 1.\n"
		"See capstan(1).\n");
}

/* ------------------------------------------------------------ save */

static int write_atomic(const char *path, const void *a, size_t alen, const void *b,
			size_t blen)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	const void *parts[2] = {a, b};
	size_t lens[2] = {alen, blen};
	char *slash;
	int fd, dfd;

	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
		return cli_fail(CLI_EXIT_FAILURE, "%s: file name too long", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return cli_fail(CLI_EXIT_FAILURE, "cannot create %s: %s", tmp, strerror(errno));
	for (int i = 0; i < 2; i++) {
		const char *p = parts[i];
		size_t left = lens[i];
		while (left > 0) {
			ssize_t n = write(fd, p, left);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				int e = errno;
				close(fd);
				unlink(tmp);
				return cli_fail(CLI_EXIT_FAILURE, "cannot write %s: %s", tmp,
						strerror(e));
			}
			p += n;
			left -= (size_t)n;
		}
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		int e = errno;
		unlink(tmp);
		return cli_fail(CLI_EXIT_FAILURE, "cannot write %s: %s", tmp, strerror(e));
	}
	if (rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return cli_fail(CLI_EXIT_FAILURE, "cannot rename %s to %s: %s", tmp, path,
				strerror(e));
	}
	snprintf(dir, sizeof dir, "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd); /* the rename itself; best effort */
		close(dfd);
	}
	return CLI_EXIT_OK;
}

static int do_save(struct cli_global *g, const char *path)
{
	struct cli_http_client *client = NULL;
	struct cli_http_response resp = {0};
	struct snapfile_header h;
	const void *payload;
	char err[256];
	int code, rv;

	code = cli_connect(g, &client);
	if (code != CLI_EXIT_OK)
		return code;
	rv = cli_http_request_typed(client, "GET", "/capstan/v1/snapshot", NULL,
				    "application/octet-stream", NULL, 0,
				    g->timeout_ms != 0 ? 0 : SAVE_TIMEOUT_MS, &resp);
	if (rv != 0) {
		code = cli_fail_request(client, rv);
		goto out;
	}
	if (resp.status != 200) {
		code = cli_fail_response(&resp);
		goto out;
	}
	/* Never keep a download that does not check out. */
	rv = snapfile_parse(resp.body, resp.len, &h, &payload, err, sizeof err);
	if (rv != 0) {
		code = cli_fail(CLI_EXIT_FAILURE, "the server sent a bad snapshot: %s", err);
		goto out;
	}
	code = write_atomic(path, resp.body, resp.len, NULL, 0);
	if (code == CLI_EXIT_OK)
		printf("saved a snapshot at revision %" PRIu64 " (%" PRIu64 " keys, %zu bytes) "
		       "to %s\n",
		       h.revision, h.key_count, resp.len, path);
out:
	cli_http_response_free(&resp);
	cli_http_client_free(client);
	return code;
}

/* ------------------------------------------------------------ inspect */

struct prefix_count {
	char *prefix;
	uint64_t keys;
	uint64_t bytes;
};

struct inspect_ctx {
	struct prefix_count *v;
	size_t n, cap;
	int err;
};

/* The key's first two segments: "/registry/pods" for
 * "/registry/pods/default/web", "/capstan/members" for "/capstan/members/1". */
static size_t prefix_len_of(const char *key, size_t len)
{
	size_t slashes = 0;

	for (size_t i = 0; i < len; i++) {
		if (key[i] == '/' && ++slashes == 3)
			return i;
	}
	return len;
}

static int count_cb(const struct store_kv *kv, void *data)
{
	struct inspect_ctx *c = data;
	size_t plen = prefix_len_of(kv->key, kv->key_len);
	struct prefix_count *pc;

	/* Keys come in order, so equal prefixes are adjacent. */
	if (c->n == 0 || strlen(c->v[c->n - 1].prefix) != plen ||
	    memcmp(c->v[c->n - 1].prefix, kv->key, plen) != 0) {
		if (c->n == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 16;
			struct prefix_count *v = realloc(c->v, cap * sizeof(*v));
			if (v == NULL)
				return -ENOMEM;
			c->v = v;
			c->cap = cap;
		}
		pc = &c->v[c->n];
		pc->prefix = strndup(kv->key, plen);
		if (pc->prefix == NULL)
			return -ENOMEM;
		pc->keys = 0;
		pc->bytes = 0;
		c->n++;
	}
	pc = &c->v[c->n - 1];
	pc->keys++;
	pc->bytes += kv->key_len + kv->val_len;
	return 0;
}

static void format_time(uint64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "%" PRIu64 " ms", ms);
}

static void hex(const unsigned char *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* Loads FILE, checks it and decodes the store into *ret_store. */
static int load_checked(const char *path, void **ret_buf, size_t *ret_len,
			struct snapfile_header *ret_h, struct store **ret_store)
{
	const void *payload;
	struct store *st = NULL;
	char err[512];
	int rv;

	rv = snapfile_load(path, ret_buf, ret_len, ret_h, &payload, err, sizeof err);
	if (rv != 0)
		return cli_fail(CLI_EXIT_FAILURE, "%s", err);
	if (store_new(NULL, &st) != 0) {
		free(*ret_buf);
		return cli_fail(CLI_EXIT_FAILURE, "out of memory");
	}
	rv = store_restore(st, payload, (size_t)ret_h->payload_len);
	if (rv != 0 || store_count(st) != ret_h->key_count) {
		store_free(st);
		free(*ret_buf);
		return cli_fail(CLI_EXIT_FAILURE, "%s: corrupt snapshot: the store content does "
				"not decode", path);
	}
	*ret_store = st;
	return CLI_EXIT_OK;
}

static int do_inspect(const char *path, const char *output)
{
	struct inspect_ctx c = {0};
	struct snapfile_header h;
	struct store *st = NULL;
	void *buf = NULL;
	size_t len = 0;
	char created[64], sum[65];
	bool more;
	int code, rv;

	code = load_checked(path, &buf, &len, &h, &st);
	if (code != CLI_EXIT_OK)
		return code;
	rv = store_range(st, "", 0, NULL, 0, 0, count_cb, &c, &more);
	if (rv != 0) {
		code = cli_fail(CLI_EXIT_FAILURE, "out of memory");
		goto out;
	}
	format_time(h.created_ms, created, sizeof created);
	hex(h.payload_sha256, 32, sum);
	if (strcmp(output, "json") == 0) {
		json_t *o = json_object(), *a = json_array();
		char *text;

		for (size_t i = 0; i < c.n; i++)
			json_array_append_new(a, json_pack("{s:s,s:I,s:I}", "prefix",
							   c.v[i].prefix, "keys",
							   (json_int_t)c.v[i].keys, "bytes",
							   (json_int_t)c.v[i].bytes));
		json_object_set_new(o, "file", json_string(path));
		json_object_set_new(o, "formatVersion", json_integer(h.version));
		json_object_set_new(o, "revision", json_integer((json_int_t)h.revision));
		json_object_set_new(o, "keys", json_integer((json_int_t)h.key_count));
		json_object_set_new(o, "created", json_string(created));
		json_object_set_new(o, "createdMs", json_integer((json_int_t)h.created_ms));
		json_object_set_new(o, "clusterID", json_string(h.cluster_id));
		json_object_set_new(o, "size", json_integer((json_int_t)len));
		json_object_set_new(o, "payloadSize", json_integer((json_int_t)h.payload_len));
		json_object_set_new(o, "sha256", json_string(sum));
		json_object_set_new(o, "prefixes", a);
		text = json_dumps(o, JSON_INDENT(2));
		json_decref(o);
		if (text == NULL) {
			code = cli_fail(CLI_EXIT_FAILURE, "out of memory");
			goto out;
		}
		printf("%s\n", text);
		free(text);
		goto out;
	}
	printf("File:        %s\n", path);
	printf("Format:      capstan snapshot, version %u\n", (unsigned)h.version);
	printf("Created:     %s\n", created);
	printf("Revision:    %" PRIu64 "\n", h.revision);
	printf("Keys:        %" PRIu64 "\n", h.key_count);
	printf("Cluster ID:  %s\n", h.cluster_id[0] != '\0' ? h.cluster_id : "(none)");
	printf("Size:        %zu bytes (payload %" PRIu64 ")\n", len, h.payload_len);
	printf("SHA-256:     %s (payload)\n", sum);
	printf("\n%-40s %10s %12s\n", "PREFIX", "KEYS", "BYTES");
	for (size_t i = 0; i < c.n; i++)
		printf("%-40s %10" PRIu64 " %12" PRIu64 "\n", c.v[i].prefix, c.v[i].keys,
		       c.v[i].bytes);
out:
	for (size_t i = 0; i < c.n; i++)
		free(c.v[i].prefix);
	free(c.v);
	store_free(st);
	free(buf);
	return code;
}

/* ------------------------------------------------------------ restore */

static int do_restore(const char *path, const char *data_dir, const char *capstand, int nextra,
		      char **extra)
{
	struct snapfile_header h;
	struct store *st = NULL;
	char file[PATH_MAX], self[PATH_MAX], prog[PATH_MAX], idpath[PATH_MAX];
	char **args;
	void *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int code, i = 0;

	code = load_checked(path, &buf, &len, &h, &st);
	if (code != CLI_EXIT_OK)
		return code;
	store_free(st);
	free(buf);
	if (realpath(path, file) == NULL)
		return cli_fail(CLI_EXIT_FAILURE, "%s: %s", path, strerror(errno));
	snprintf(idpath, sizeof idpath, "%s/id", data_dir);
	if (access(idpath, F_OK) == 0)
		return cli_fail(CLI_EXIT_FAILURE,
				"%s already holds a cluster member: restore into an empty directory",
				data_dir);
	if (capstand == NULL) {
		/* Next to capstan (the build tree, /usr/sbin beside /usr/bin is
		 * found through PATH), else PATH. */
		n = readlink("/proc/self/exe", self, sizeof self - 1);
		capstand = "capstand";
		if (n > 0) {
			char *slash;
			self[n] = '\0';
			slash = strrchr(self, '/');
			if (slash != NULL) {
				*slash = '\0';
				if (strlen(self) + sizeof("/capstand") <= sizeof prog &&
				    (size_t)snprintf(prog, sizeof prog, "%.*s/capstand",
						     (int)(sizeof prog - sizeof("/capstand")),
						     self) < sizeof prog &&
				    access(prog, X_OK) == 0)
					capstand = prog;
			}
		}
	}
	args = calloc((size_t)nextra + 8, sizeof(*args));
	if (args == NULL)
		return cli_fail(CLI_EXIT_FAILURE, "out of memory");
	args[i++] = (char *)capstand;
	args[i++] = (char *)"--init";
	args[i++] = (char *)"--restore";
	args[i++] = file;
	args[i++] = (char *)"--data-dir";
	args[i++] = (char *)data_dir;
	for (int j = 0; j < nextra; j++)
		args[i++] = extra[j];
	args[i] = NULL;
	fprintf(stderr, "capstan: backup at revision %" PRIu64 " with %" PRIu64
		" keys checked; running %s --init --restore %s --data-dir %s%s\n",
		h.revision, h.key_count, capstand, file, data_dir, nextra > 0 ? " ..." : "");
	fflush(stderr);
	execvp(capstand, args);
	code = cli_fail(CLI_EXIT_FAILURE, "cannot run %s: %s", capstand, strerror(errno));
	free(args);
	return code;
}

/* ------------------------------------------------------------ entry */

int cli_cmd_snapshot(struct cli_global *g, int argc, char **argv)
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"output", required_argument, NULL, 'o'},
		{"data-dir", required_argument, NULL, OPT_DATA_DIR},
		{"capstand", required_argument, NULL, OPT_CAPSTAND},
		CLI_GLOBAL_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	const char *output = "text", *data_dir = NULL, *capstand = NULL, *verb;
	int c, code, nextra = 0, dashdash = -1;
	char **extra = NULL;

	/* Everything after "--" belongs to capstand (restore). */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			dashdash = i;
			break;
		}
	}
	if (dashdash >= 0) {
		extra = argv + dashdash + 1;
		nextra = argc - dashdash - 1;
		argc = dashdash;
	}
	optind = 0;
	while ((c = getopt_long(argc, argv, ":ho:", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		case 'o':
			output = optarg;
			break;
		case OPT_DATA_DIR:
			data_dir = optarg;
			break;
		case OPT_CAPSTAND:
			capstand = optarg;
			break;
		default:
			code = cli_global_option(g, "snapshot", c, argv);
			if (code != CLI_EXIT_OK)
				return code;
		}
	}
	if (optind >= argc)
		return cli_usage_error("snapshot", "missing verb (save, inspect, restore)");
	verb = argv[optind++];
	if (strcmp(verb, "save") != 0 && strcmp(verb, "inspect") != 0 &&
	    strcmp(verb, "restore") != 0)
		return cli_usage_error("snapshot", "unknown verb '%s'", verb);
	if (argc - optind != 1)
		return cli_usage_error("snapshot", "%s takes exactly one FILE", verb);
	if (strcmp(output, "text") != 0 && strcmp(output, "json") != 0)
		return cli_usage_error("snapshot", "output format '%s' is not text or json",
				       output);
	if (strcmp(verb, "restore") != 0 && (data_dir != NULL || capstand != NULL || extra))
		return cli_usage_error("snapshot", "--data-dir, --capstand and '--' are for "
				       "restore only");
	if (strcmp(verb, "save") == 0)
		return do_save(g, argv[optind]);
	if (strcmp(verb, "inspect") == 0)
		return do_inspect(argv[optind], output);
	if (data_dir == NULL || data_dir[0] == '\0')
		return cli_usage_error("snapshot", "restore needs --data-dir DIR");
	return do_restore(argv[optind], data_dir, capstand, nextra, extra);
}
