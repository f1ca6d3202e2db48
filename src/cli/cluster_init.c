/* capstan cluster init|join: set up a master on this machine. Writes
 * capstand's config file (init: true, or join/token/join-ca), then starts
 * capstand (systemd, a background process, or not at all) and waits until
 * the master is initialised or has joined. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "src/cli/cli.h"
#include "src/lib/args.h"

#define DEFAULT_CONFIG "/etc/capstan/capstand.yaml"
#define DEFAULT_DATA "/var/lib/capstan"

enum start_mode { START_AUTO, START_SYSTEMD, START_BACKGROUND, START_NONE };

struct init_opts {
	bool join;
	const char *url; /* join: the master to join through */
	const char *token;
	const char *ca_file;
	const char *config;
	const char *data_dir;
	const char *listen;
	const char *raft_address;
	const char *advertise_url;
	const char *plain_listen;
	const char *sans[16];
	unsigned n_sans;
	const char *capstand;
	enum start_mode start;
	uint64_t wait_ms;
	bool force;
};

void cli_cluster_init_usage(FILE *f)
{
	fprintf(f,
		"       capstan cluster init [OPTION]...\n"
		"       capstan cluster join URL --token TOKEN --ca-file FILE [OPTION]...\n"
		"\n"
		"init sets this machine up as the first master of a new cluster; join\n"
		"as another master of the cluster whose master answers at URL (the join\n"
		"token is DATA/join.token of a master, FILE a copy of its DATA/pki/ca.crt).\n"
		"Both write capstand's config file, start capstand and wait until the\n"
		"master is ready.\n"
		"\n"
		"      --config FILE          capstand's config file to write (default\n"
		"                             " DEFAULT_CONFIG ")\n"
		"      --data-dir DIR         capstand's data directory (default " DEFAULT_DATA ")\n"
		"      --listen HOST:PORT     HTTPS API listener (capstand's default 0.0.0.0:6443)\n"
		"      --raft-address HOST:PORT  Raft transport address (default 127.0.0.1:6444;\n"
		"                             give this machine's address for a real cluster)\n"
		"      --advertise-url URL    URL at which the others reach this master\n"
		"      --plain-listen HOST:PORT  also serve h2c/HTTP/1.1 on loopback\n"
		"      --san NAME             extra name or address in the serving certificate\n"
		"                             (repeatable)\n"
		"      --ca-file FILE         (join) the cluster CA certificate\n"
		"      --start MODE           auto (systemd when it runs, else none), systemd,\n"
		"                             background (a detached capstand; pid in\n"
		"                             DATA/capstand.pid, log in DATA/capstand.log) or\n"
		"                             none (print how to start it); default auto\n"
		"      --capstand FILE        the capstand program (default: next to capstan,\n"
		"                             ../sbin, PATH)\n"
		"      --wait DUR             wait this long for the master (default 60s)\n"
		"      --force                overwrite a config file that has settings\n");
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool file_exists(const char *dir, const char *name)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

/* True when @path has a line that is not blank or a comment. */
static bool has_settings(const char *path)
{
	char line[1024];
	FILE *f = fopen(path, "re");
	bool found = false;

	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		char *p = line + strspn(line, " \t");
		if (*p != '#' && *p != '\n' && *p != '\0')
			found = true;
	}
	fclose(f);
	return found;
}

/* YAML double-quoted scalar: every value we write is a path, URL or name,
 * but quote anyway so that nothing is misread. */
static void yaml_str(FILE *f, const char *key, const char *v)
{
	fprintf(f, "%s: \"", key);
	for (; *v != '\0'; v++) {
		if (*v == '"' || *v == '\\')
			fputc('\\', f);
		fputc(*v, f);
	}
	fputs("\"\n", f);
}

static int mkdir_parents(const char *path, mode_t mode)
{
	char buf[PATH_MAX], *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int write_config(const struct init_opts *o, const char *ca_abs)
{
	char tmp[PATH_MAX], dir[PATH_MAX], *slash;
	FILE *f;
	int fd;

	snprintf(dir, sizeof(dir), "%s", o->config);
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir_parents(dir, 0755) != 0)
			return cli_fail(CLI_EXIT_FAILURE, "cannot create %s: %s", dir,
					strerror(errno));
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", o->config);
	/* The join token is a secret: the file is not world-readable. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (f == NULL)
		return cli_fail(CLI_EXIT_FAILURE, "cannot write %s: %s", tmp, strerror(errno));
	fprintf(f, "# Written by 'capstan cluster %s'; see capstan.conf(5).\n",
		o->join ? "join" : "init");
	yaml_str(f, "data-dir", o->data_dir);
	if (o->listen != NULL)
		yaml_str(f, "listen", o->listen);
	if (o->raft_address != NULL)
		yaml_str(f, "raft-address", o->raft_address);
	if (o->advertise_url != NULL)
		yaml_str(f, "advertise-url", o->advertise_url);
	if (o->plain_listen != NULL)
		yaml_str(f, "plain-listen", o->plain_listen);
	if (o->n_sans > 0) {
		fputs("san:\n", f);
		for (unsigned i = 0; i < o->n_sans; i++) {
			fputs("  - ", f);
			yaml_str(f, "", o->sans[i]);
		}
	}
	if (o->join) {
		fputs("# Used on the first start only (while the data directory is empty).\n", f);
		yaml_str(f, "join", o->url);
		yaml_str(f, "token", o->token);
		yaml_str(f, "join-ca", ca_abs);
	} else {
		fputs("# Used on the first start only (while the data directory is empty).\n", f);
		fputs("init: true\n", f);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fclose(f);
		unlink(tmp);
		return cli_fail(CLI_EXIT_FAILURE, "cannot write %s: %s", tmp, strerror(errno));
	}
	fclose(f);
	if (rename(tmp, o->config) != 0) {
		unlink(tmp);
		return cli_fail(CLI_EXIT_FAILURE, "cannot write %s: %s", o->config, strerror(errno));
	}
	return CLI_EXIT_OK;
}

static bool systemd_running(void)
{
	return access("/run/systemd/system", F_OK) == 0;
}

static int run_wait(char *const argv[])
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* A detached capstand: own session, stdio to DATA/capstand.log. */
static int start_background(const struct init_opts *o, const char *capstand, pid_t *ret_pid)
{
	char log[PATH_MAX], pidf[PATH_MAX], buf[32];
	pid_t pid;
	int fd, n;

	snprintf(log, sizeof(log), "%s/capstand.log", o->data_dir);
	snprintf(pidf, sizeof(pidf), "%s/capstand.pid", o->data_dir);
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return cli_fail(CLI_EXIT_FAILURE, "cannot open %s: %s", log, strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(fd);
		return cli_fail(CLI_EXIT_FAILURE, "cannot fork: %s", strerror(errno));
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		setsid();
		if (nul >= 0)
			dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(capstand, capstand, "--config", o->config, (char *)NULL);
		_exit(127);
	}
	close(fd);
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)pid);
	fd = open(pidf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, buf, (size_t)n) != n) {
		if (fd >= 0)
			close(fd);
		return cli_fail(CLI_EXIT_FAILURE, "cannot write %s: %s", pidf, strerror(errno));
	}
	close(fd);
	*ret_pid = pid;
	return CLI_EXIT_OK;
}

static void last_log_line(const char *data_dir, char *out, size_t size)
{
	char path[PATH_MAX], line[512];
	FILE *f;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/capstand.log", data_dir);
	f = fopen(path, "re");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] != '\0')
			snprintf(out, size, "%s", line);
	}
	fclose(f);
}

/* The URL of this master's API, as capstand derives it. */
static void own_url(const struct init_opts *o, char *buf, size_t size)
{
	const char *colon;

	if (o->advertise_url != NULL) {
		snprintf(buf, size, "%s", o->advertise_url);
		return;
	}
	if (o->listen == NULL || (colon = strrchr(o->listen, ':')) == NULL) {
		snprintf(buf, size, "https://127.0.0.1:6443");
		return;
	}
	if (colon == o->listen || strncmp(o->listen, "0.0.0.0:", 8) == 0)
		snprintf(buf, size, "https://127.0.0.1%s", colon);
	else
		snprintf(buf, size, "https://%s", o->listen);
}

/* GET /readyz of this master (anonymous; its certificate checked against
 * DATA/pki/ca.crt). */
static bool readyz(const struct init_opts *o)
{
	struct cli_kubeconfig kc = {0};
	struct cli_http_client *c = NULL;
	struct cli_http_response r = {0};
	char url[512], path[PATH_MAX], pem[16384];
	size_t n;
	FILE *f;
	bool ok = false;

	snprintf(path, sizeof(path), "%s/pki/ca.crt", o->data_dir);
	f = fopen(path, "re");
	if (f == NULL)
		return false;
	n = fread(pem, 1, sizeof(pem) - 1, f);
	fclose(f);
	pem[n] = '\0';
	kc.ca = pem;
	kc.ca_len = n;
	own_url(o, url, sizeof(url));
	if (cli_http_client_new(url, &kc, 2000, &c) == 0 &&
	    cli_http_request(c, "GET", "/readyz", NULL, 0, 0, &r) == 0 && r.status == 200)
		ok = true;
	cli_http_response_free(&r);
	cli_http_client_free(c);
	return ok;
}

/* Waits for DATA/joined (both) and DATA/admin.kubeconfig (init), then
 * for the master's /readyz. */
static int wait_ready(const struct init_opts *o, pid_t pid)
{
	uint64_t end = now_ms() + o->wait_ms;
	char line[512];
	int status;

	for (;;) {
		if (file_exists(o->data_dir, "joined") &&
		    (o->join || file_exists(o->data_dir, "admin.kubeconfig")) && readyz(o))
			return CLI_EXIT_OK;
		if (pid > 0 && waitpid(pid, &status, WNOHANG) == pid) {
			last_log_line(o->data_dir, line, sizeof(line));
			return cli_fail(CLI_EXIT_FAILURE, "capstand exited: %s",
					line[0] != '\0' ? line : "see its log");
		}
		if (now_ms() > end)
			return cli_fail(CLI_EXIT_FAILURE,
					"the master was not ready within %llu ms; see %s/capstand.log "
					"or journalctl -u capstand",
					(unsigned long long)o->wait_ms, o->data_dir);
		usleep(100 * 1000);
	}
}

static int find_capstand(const char *given, char *buf, size_t len)
{
	char self[PATH_MAX], *slash;
	ssize_t n;

	if (given != NULL) {
		if (access(given, X_OK) != 0)
			return cli_fail(CLI_EXIT_FAILURE, "cannot run %s: %s", given, strerror(errno));
		snprintf(buf, len, "%s", given);
		return CLI_EXIT_OK;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash != NULL) {
			*slash = '\0';
			/* The build tree, then an installed layout. */
			if ((size_t)snprintf(buf, len, "%s/capstand", self) < len &&
			    access(buf, X_OK) == 0)
				return CLI_EXIT_OK;
			if ((size_t)snprintf(buf, len, "%s/../sbin/capstand", self) < len &&
			    access(buf, X_OK) == 0)
				return CLI_EXIT_OK;
		}
	}
	snprintf(buf, len, "/usr/sbin/capstand");
	if (access(buf, X_OK) == 0)
		return CLI_EXIT_OK;
	return cli_fail(CLI_EXIT_FAILURE,
			"capstand not found next to capstan, in ../sbin or /usr/sbin; use --capstand FILE");
}

static int init_join(struct init_opts *o)
{
	char ca_abs[PATH_MAX], capstand[PATH_MAX], cmd[PATH_MAX * 2], url[512];
	pid_t pid = 0;
	int code;
	enum start_mode mode = o->start;

	if (o->join) {
		if (strncmp(o->url, "https://", 8) != 0)
			return cli_usage_error("cluster", "join URL must start with https://");
		if (o->token == NULL || o->token[0] == '\0')
			return cli_usage_error("cluster", "join needs --token TOKEN (DATA/join.token "
							  "of a master)");
		if (o->ca_file == NULL)
			return cli_usage_error("cluster", "join needs --ca-file FILE (a copy of "
							  "DATA/pki/ca.crt of a master)");
		if (realpath(o->ca_file, ca_abs) == NULL)
			return cli_fail(CLI_EXIT_FAILURE, "cannot read %s: %s", o->ca_file,
					strerror(errno));
	}
	if (file_exists(o->data_dir, "id"))
		return cli_fail(CLI_EXIT_CONFLICT,
				"%s already holds a member of a cluster; start capstand to resume "
				"it, or remove the directory first",
				o->data_dir);
	if (!o->force && has_settings(o->config))
		return cli_fail(CLI_EXIT_CONFLICT,
				"%s already has settings: edit it, or pass --force to replace it",
				o->config);
	if (mode == START_AUTO)
		mode = systemd_running() ? START_SYSTEMD : START_NONE;
	if (mode == START_BACKGROUND) {
		code = find_capstand(o->capstand, capstand, sizeof(capstand));
		if (code != CLI_EXIT_OK)
			return code;
	}
	if (mkdir_parents(o->data_dir, 0700) != 0)
		return cli_fail(CLI_EXIT_FAILURE, "cannot create %s: %s", o->data_dir,
				strerror(errno));
	code = write_config(o, ca_abs);
	if (code != CLI_EXIT_OK)
		return code;
	printf("wrote %s\n", o->config);
	switch (mode) {
	case START_SYSTEMD: {
		char *const argv[] = {"systemctl", "enable", "--now", "capstand.service", NULL};
		if (run_wait(argv) != 0)
			return cli_fail(CLI_EXIT_FAILURE, "systemctl enable --now capstand failed");
		break;
	}
	case START_BACKGROUND:
		code = start_background(o, capstand, &pid);
		if (code != CLI_EXIT_OK)
			return code;
		printf("started capstand (pid %ld, log %s/capstand.log)\n", (long)pid, o->data_dir);
		break;
	default:
		snprintf(cmd, sizeof(cmd), "capstand --config %s", o->config);
		printf("start the master with: systemctl enable --now capstand\n"
		       "                   or: %s\n",
		       cmd);
		return CLI_EXIT_OK;
	}
	code = wait_ready(o, pid);
	if (code != CLI_EXIT_OK)
		return code;
	own_url(o, url, sizeof(url));
	if (o->join) {
		printf("joined the cluster through %s\n", o->url);
		return CLI_EXIT_OK;
	}
	printf("cluster initialised\n"
	       "  admin kubeconfig: %s/admin.kubeconfig (also: capstan kubeconfig)\n"
	       "  add a master:     copy %s/pki/ca.crt to it, then run there\n"
	       "                    capstan cluster join %s --token $(cat %s/join.token) "
	       "--ca-file ca.crt\n"
	       "  add a node:       capstan token create (on a master)\n",
	       o->data_dir, o->data_dir, url, o->data_dir);
	return CLI_EXIT_OK;
}

int cli_cmd_cluster_init(struct cli_global *g, int argc, char **argv, bool join)
{
	enum {
		O_CONFIG = CLI_OPT_FIRST_LOCAL,
		O_DATA,
		O_LISTEN,
		O_RAFT,
		O_ADVERTISE,
		O_PLAIN,
		O_SAN,
		O_CA,
		O_START,
		O_CAPSTAND,
		O_WAIT,
		O_FORCE,
	};
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"config", required_argument, NULL, O_CONFIG},
		{"data-dir", required_argument, NULL, O_DATA},
		{"listen", required_argument, NULL, O_LISTEN},
		{"raft-address", required_argument, NULL, O_RAFT},
		{"advertise-url", required_argument, NULL, O_ADVERTISE},
		{"plain-listen", required_argument, NULL, O_PLAIN},
		{"san", required_argument, NULL, O_SAN},
		{"ca-file", required_argument, NULL, O_CA},
		{"start", required_argument, NULL, O_START},
		{"capstand", required_argument, NULL, O_CAPSTAND},
		{"wait", required_argument, NULL, O_WAIT},
		{"force", no_argument, NULL, O_FORCE},
		CLI_GLOBAL_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	struct init_opts o = {0};
	int c, code;

	o.join = join;
	o.config = DEFAULT_CONFIG;
	o.data_dir = DEFAULT_DATA;
	o.wait_ms = 60000;
	optind = 0;
	/* argv[0] is "cluster", argv[1] the verb: options may follow either. */
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_cluster_init_usage(stdout);
			return CLI_EXIT_OK;
		case O_CONFIG:
			o.config = optarg;
			break;
		case O_DATA:
			o.data_dir = optarg;
			break;
		case O_LISTEN:
			o.listen = optarg;
			break;
		case O_RAFT:
			o.raft_address = optarg;
			break;
		case O_ADVERTISE:
			o.advertise_url = optarg;
			break;
		case O_PLAIN:
			o.plain_listen = optarg;
			break;
		case O_SAN:
			if (o.n_sans == sizeof(o.sans) / sizeof(o.sans[0]))
				return cli_usage_error("cluster", "too many --san");
			o.sans[o.n_sans++] = optarg;
			break;
		case O_CA:
			o.ca_file = optarg;
			break;
		case O_START:
			if (strcmp(optarg, "auto") == 0)
				o.start = START_AUTO;
			else if (strcmp(optarg, "systemd") == 0)
				o.start = START_SYSTEMD;
			else if (strcmp(optarg, "background") == 0)
				o.start = START_BACKGROUND;
			else if (strcmp(optarg, "none") == 0)
				o.start = START_NONE;
			else
				return cli_usage_error("cluster",
						       "--start must be auto, systemd, background or "
						       "none, not '%s'",
						       optarg);
			break;
		case O_CAPSTAND:
			o.capstand = optarg;
			break;
		case O_WAIT:
			if (args_parse_duration_ms(optarg, &o.wait_ms) != 0)
				return cli_usage_error("cluster", "invalid duration '%s'", optarg);
			break;
		case O_FORCE:
			o.force = true;
			break;
		default:
			code = cli_global_option(g, "cluster", c, argv);
			if (code != CLI_EXIT_OK)
				return code;
		}
	}
	/* Remaining: "cluster" and the verb were consumed by the caller's
	 * scan only if they came first; find the positional arguments. */
	int npos = argc - optind;
	char **pos = argv + optind;
	/* The verb itself is a positional argument here. */
	if (npos > 0 && (strcmp(pos[0], "init") == 0 || strcmp(pos[0], "join") == 0)) {
		pos++;
		npos--;
	}
	if (join) {
		if (npos != 1)
			return cli_usage_error("cluster", "join takes exactly one URL");
		o.url = pos[0];
		o.token = g->token;
	} else if (npos != 0) {
		return cli_usage_error("cluster", "init takes no arguments");
	}
	if (o.advertise_url != NULL && strncmp(o.advertise_url, "https://", 8) != 0)
		return cli_usage_error("cluster", "--advertise-url must start with https://");
	return init_join(&o);
}
