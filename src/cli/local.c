/* capstan local up|down: a cluster of capstand processes on loopback in one
 * directory, for development and tests (what kind or k3d are for
 * Kubernetes).
 *
 * Happy path of "up" on an empty DIR: write DIR/local.yaml (ports), start
 * m1 with --init, wait for its /readyz, then start m2..mN with --join one
 * at a time, each waiting until it is a voter, then wait until a leader is
 * known, every master is a voter and ready, and copy m1's admin kubeconfig
 * to DIR/kubeconfig.
 *
 * On a DIR that already holds a cluster, masters with state are restarted
 * from their data (never re-initialised) if their process is gone; the
 * ports come from local.yaml. Masters that never finished joining join
 * again (capstand ignores --join once it has state). Running processes
 * (pid file naming a capstand with that data dir) are left alone.
 *
 * Failures: a started capstand that exits, or a step that times out, ends
 * the command with one line naming the log file to read; processes
 * already started keep running ("capstan local down" stops them).
 *
 * --hollow-nodes N also runs one capstan-hollow (fake nodes for tests,
 * src/hollow.c) in DIR/hollow/ against every master's HTTPS URL with the
 * admin certificate, and waits until its N nodes are registered; "down"
 * stops it first. DIR/hollow/ is also its --control-dir: a file
 * DIR/hollow/stop-NODE stops that node's heartbeats. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <jansson.h>

#include "src/cli/cli.h"
#include "src/cli/kubeconfig.h"
#include "src/cli/yaml.h"
#include "src/lib/args.h"

#define LOCAL_MAX 15
#define DEFAULT_MASTERS 3
#define DEFAULT_TIMEOUT_MS 60000
#define POLL_MS 100
#define PROBE_TIMEOUT_MS 2000
#define STOP_WAIT_MS 10000
#define KILL_WAIT_MS 5000

enum {
	OPT_MASTERS = CLI_OPT_FIRST_LOCAL,
	OPT_DIR,
	OPT_BASE_PORT,
	OPT_CAPSTAND,
	OPT_PURGE,
	OPT_WAIT,
	OPT_HOLLOW_NODES,
	OPT_NODES,
};

struct master {
	unsigned index; /* 1-based: m<index> */
	uint64_t id;    /* raft id once known, else 0 */
	uint16_t https, plain, raft;
	char dir[PATH_MAX];
	pid_t child; /* started by this command, else 0 */
	pid_t pid;   /* running process, else 0 */
};

struct layout {
	char dir[PATH_MAX]; /* absolute */
	unsigned n;
	struct master m[LOCAL_MAX];
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstan local up --dir DIR [--masters N] [--base-port P] [--capstand FILE] [--timeout DUR]\n"
		"                       [--hollow-nodes N] [--nodes M]\n"
		"       capstan local down --dir DIR [--purge]\n"
		"Run a cluster of capstand masters on 127.0.0.1, all in DIR.\n"
		"\n"
		"  up     create the cluster (m1 with --init, the others joining), or\n"
		"         restart the masters of an existing DIR that are not running;\n"
		"         waits until every master is a ready voter and writes\n"
		"         DIR/kubeconfig\n"
		"  down   stop every node agent of DIR and remove its containers\n"
		"         ('capstan-node cleanup'), then every capstand (SIGTERM,\n"
		"         SIGKILL after 10 s)\n"
		"\n"
		"  --dir DIR          the cluster's directory (required)\n"
		"  --masters N        number of masters, 1 to %d (default %d, or as many\n"
		"                     as DIR already has; more adds masters)\n"
		"  --base-port P      use ports P, P+1, ... (3 per master: HTTPS, plain,\n"
		"                     raft); default: free ports picked at random.\n"
		"                     Ignored when DIR/local.yaml exists\n"
		"  --capstand FILE    the capstand to run (default: next to capstan,\n"
		"                     ../sbin/capstand, or PATH)\n"
		"  --timeout DUR      how long each step may take (default 60s)\n"
		"  --hollow-nodes N   up: also run N hollow (fake) nodes for tests, named\n"
		"                     hollow-0..; logs in DIR/hollow/ (default 0: none)\n"
		"  --nodes M          up: also run M real node agents (capstan-node, needs\n"
		"                     root and runc), Nodes n1..nM, each in DIR/nodes/n<N>/\n"
		"                     with its own state, run dir, port, bridge and pod\n"
		"                     subnet, joined with a bootstrap token, with the test\n"
		"                     image localhost/busybox:latest imported when the\n"
		"                     build tree's image script is found (default 0)\n"
		"  --purge            down: also delete what capstan created in DIR\n"
		"  -h, --help         show this help\n"
		"\n"
		"See capstan(1).\n",
		LOCAL_MAX, DEFAULT_MASTERS);
}

/* ------------------------------------------------------------ helpers */

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* "a/b" into @buf; @buf may not overlap @a or @b. */
static int path_join(char *buf, size_t len, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la + 1 + lb + 1 > len) {
		if (len > 0)
			buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	memcpy(buf, a, la);
	buf[la] = '/';
	memcpy(buf + la + 1, b, lb + 1);
	return 0;
}

static bool exists(const char *dir, const char *name)
{
	char p[PATH_MAX];
	struct stat st;
	return path_join(p, sizeof p, dir, name) == 0 && stat(p, &st) == 0;
}

/* Writes @data to @path atomically (temporary file + rename). */
static int write_file(const char *path, const char *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t off = 0;
	int fd, rv = 0;

	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rv = -errno;
			break;
		}
		off += (size_t)n;
	}
	if (rv == 0 && fsync(fd) != 0)
		rv = -errno;
	if (close(fd) != 0 && rv == 0)
		rv = -errno;
	if (rv == 0 && rename(tmp, path) != 0)
		rv = -errno;
	if (rv != 0)
		unlink(tmp);
	return rv;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof buf)
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
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

/* The last non-empty line of @path, for error messages. */
static void last_line(const char *path, char *buf, size_t len)
{
	char *text, *end, *start;
	size_t n;

	buf[0] = '\0';
	if (cli_read_file(path, 64u << 20, &text, &n) != 0)
		return;
	end = text + n;
	while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
		end--;
	*end = '\0';
	start = strrchr(text, '\n');
	start = start != NULL ? start + 1 : text;
	snprintf(buf, len, "%.300s", start);
	free(text);
}

static void log_path(const struct master *m, char *buf, size_t len)
{
	path_join(buf, len, m->dir, "capstand.log");
}

/* "...; see LOG (last line: ...)" appended to a failure. */
static int fail_with_log(const struct master *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int fail_with_log(const struct master *m, const char *fmt, ...)
{
	char what[512], log[PATH_MAX], line[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	log_path(m, log, sizeof log);
	last_line(log, line, sizeof line);
	if (line[0] != '\0')
		return cli_fail(CLI_EXIT_FAILURE, "%s; see %s (last line: %s)", what, log, line);
	return cli_fail(CLI_EXIT_FAILURE, "%s; see %s", what, log);
}

static int read_uint_file(const char *dir, const char *name, uint64_t *ret)
{
	char p[PATH_MAX], *text;
	size_t n;
	int rv;

	if ((rv = path_join(p, sizeof p, dir, name)) != 0)
		return rv;
	if ((rv = cli_read_file(p, 4096, &text, &n)) != 0)
		return rv;
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ' || text[n - 1] == '\r'))
		text[--n] = '\0';
	rv = args_parse_uint(text, UINT64_MAX, ret);
	free(text);
	return rv;
}

/* ------------------------------------------------------------ processes */

/* Whether @pid has ended: no such process, or a zombie. */
static bool pid_gone(pid_t pid)
{
	char p[64], line[1024], *rp, state = 0;
	FILE *f;

	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	f = fopen(p, "re");
	if (f == NULL)
		return true;
	/* "pid (comm) S ...": comm may hold spaces and parentheses. */
	if (fgets(line, sizeof line, f) != NULL && (rp = strrchr(line, ')')) != NULL && rp[1] == ' ')
		state = rp[2];
	fclose(f);
	return state == 0 || state == 'Z' || state == 'X';
}

/* Whether @pid is a live (not zombie) program named @name whose argument
 * after @flag (or in "@flag=") is @value: pid files can be stale and pids
 * get reused. */
static bool is_our_prog(pid_t pid, const char *name, const char *flag, const char *value)
{
	char p[64], exe[PATH_MAX], *cmdline, *base;
	size_t len, fl = strlen(flag);
	ssize_t n;
	bool found = false;

	if (pid <= 0 || pid_gone(pid))
		return false;
	snprintf(p, sizeof p, "/proc/%d/exe", (int)pid);
	n = readlink(p, exe, sizeof exe - 1);
	if (n <= 0)
		return false;
	exe[n] = '\0';
	/* A rebuilt binary shows as "/path/prog (deleted)". */
	if ((size_t)n > 10 && strcmp(exe + n - 10, " (deleted)") == 0)
		exe[n - 10] = '\0';
	base = strrchr(exe, '/');
	base = base != NULL ? base + 1 : exe;
	if (strcmp(base, name) != 0)
		return false;
	snprintf(p, sizeof p, "/proc/%d/cmdline", (int)pid);
	if (cli_read_file(p, 1u << 20, &cmdline, &len) != 0)
		return false;
	for (size_t i = 0; i < len;) {
		const char *arg = cmdline + i;
		size_t al = strlen(arg);
		if (strcmp(arg, flag) == 0 && i + al + 1 < len && strcmp(arg + al + 1, value) == 0)
			found = true;
		if (strncmp(arg, flag, fl) == 0 && arg[fl] == '=' && strcmp(arg + fl + 1, value) == 0)
			found = true;
		i += al + 1;
	}
	free(cmdline);
	return found;
}

/* The pid in @dir/@pid_name if it is a live @name with @flag @value, else 0. */
static pid_t running_pid(const char *dir, const char *pid_name, const char *name, const char *flag,
			 const char *value)
{
	uint64_t pid;

	if (read_uint_file(dir, pid_name, &pid) != 0 || pid == 0 || pid > INT_MAX)
		return 0;
	return is_our_prog((pid_t)pid, name, flag, value) ? (pid_t)pid : 0;
}

/* Runs @argv (@argv[0] the program) detached from this command: its own
 * session, default signals, stdin /dev/null, stdout and stderr to @log
 * (truncated if @truncate, else appended after @banner if not NULL), and
 * writes its pid to @pidfile. *ret_pid is the child once it forked, even
 * if the pid file could not be written. Returns a CLI exit code. */
static int spawn_detached(const char *const *argv, const char *log, bool truncate,
			  const char *banner, const char *pidfile, pid_t *ret_pid)
{
	char pidbuf[32];
	int nullfd = -1, logfd = -1, code, rv;
	pid_t pid;

	*ret_pid = 0;
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	logfd = open(log, O_WRONLY | O_CREAT | (truncate ? O_TRUNC : O_APPEND) | O_CLOEXEC, 0600);
	if (nullfd < 0 || logfd < 0) {
		code = cli_fail(CLI_EXIT_FAILURE, "cannot open %s: %s", logfd < 0 ? log : "/dev/null",
				strerror(errno));
		goto out;
	}
	if (banner != NULL)
		dprintf(logfd, "%s", banner);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		code = cli_fail(CLI_EXIT_FAILURE, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls from here to exec. */
		struct sigaction sa = {.sa_handler = SIG_DFL};
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		sigaction(SIGPIPE, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		setsid();
		if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
			_exit(127);
		/* libcurl's sockets may lack O_CLOEXEC. */
		close_range(3, ~0U, 0);
		execv(argv[0], (char *const *)argv);
		dprintf(2, "capstan local up: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	*ret_pid = pid;
	snprintf(pidbuf, sizeof pidbuf, "%d\n", (int)pid);
	rv = write_file(pidfile, pidbuf, strlen(pidbuf), 0644);
	if (rv != 0) {
		code = cli_fail(CLI_EXIT_FAILURE, "cannot write %s: %s", pidfile, strerror(-rv));
		goto out;
	}
	code = CLI_EXIT_OK;
out:
	if (nullfd >= 0)
		close(nullfd);
	if (logfd >= 0)
		close(logfd);
	return code;
}

/* A detached process to stop: pid 0 if it is not running; its pid file is
 * @dir/@pid_name; @name prefixes the "stopped" line, @who names it in errors. */
struct proc {
	pid_t pid;
	const char *dir, *pid_name, *who;
	char name[24];
};

/* SIGTERMs every running process of @p (a failed signal is an error if
 * @strict), SIGKILLs those left after 10 s, and removes the pid files of
 * those gone. Returns a CLI exit code: failure if @strict and one is still
 * running after SIGKILL. */
static int stop_procs(struct proc *p, unsigned n, bool strict, unsigned *ret_stopping)
{
	char pidfile[PATH_MAX];
	unsigned stopping = 0, left;
	uint64_t deadline;
	bool killed = false;

	for (unsigned i = 0; i < n; i++) {
		if (p[i].pid == 0) {
			path_join(pidfile, sizeof pidfile, p[i].dir, p[i].pid_name);
			unlink(pidfile);
			continue;
		}
		if (kill(p[i].pid, SIGTERM) != 0 && errno != ESRCH && strict)
			return cli_fail(CLI_EXIT_FAILURE, "cannot signal %s (pid %d): %s", p[i].who,
					(int)p[i].pid, strerror(errno));
		stopping++;
	}
	if (ret_stopping != NULL)
		*ret_stopping = stopping;
	deadline = now_ms() + STOP_WAIT_MS;
	for (;;) {
		left = 0;
		for (unsigned i = 0; i < n; i++) {
			if (p[i].pid == 0)
				continue;
			/* Wait for the process itself to end: while it exits,
			 * its exe and cmdline vanish before it does. */
			if (pid_gone(p[i].pid)) {
				printf("%s: stopped (pid %d)%s\n", p[i].name, (int)p[i].pid,
				       killed ? " after SIGKILL" : "");
				p[i].pid = 0;
				path_join(pidfile, sizeof pidfile, p[i].dir, p[i].pid_name);
				unlink(pidfile);
				continue;
			}
			left++;
		}
		if (left == 0)
			break;
		if (now_ms() >= deadline) {
			if (killed)
				break;
			/* SIGTERM did not do it within 10 s. */
			for (unsigned i = 0; i < n; i++) {
				if (p[i].pid != 0)
					kill(p[i].pid, SIGKILL);
			}
			killed = true;
			deadline = now_ms() + KILL_WAIT_MS;
		}
		sleep_ms(50);
	}
	for (unsigned i = 0; i < n && strict; i++) {
		if (p[i].pid != 0)
			return cli_fail(CLI_EXIT_FAILURE, "%s (pid %d) is still running after SIGKILL",
					p[i].who, (int)p[i].pid);
	}
	return CLI_EXIT_OK;
}

/* Sets m->pid to the running capstand of @m, or 0. */
static bool master_running(struct master *m)
{
	m->pid = running_pid(m->dir, "capstand.pid", "capstand", "--data-dir", m->dir);
	return m->pid != 0;
}

/* Whether a process this command started has exited; reaps it. */
static bool child_exited(struct master *m, int *ret_status)
{
	int st;

	if (m->child <= 0)
		return !master_running(m);
	if (waitpid(m->child, &st, WNOHANG) == m->child) {
		*ret_status = st;
		m->child = 0;
		m->pid = 0;
		return true;
	}
	return false;
}

static int check_alive(struct master *m)
{
	int st = 0;

	if (!child_exited(m, &st))
		return 0;
	if (WIFEXITED(st))
		return fail_with_log(m, "capstand m%u exited with status %d", m->index,
				     WEXITSTATUS(st));
	if (WIFSIGNALED(st))
		return fail_with_log(m, "capstand m%u was killed by signal %d", m->index,
				     WTERMSIG(st));
	return fail_with_log(m, "capstand m%u is not running", m->index);
}

enum start_mode { START_RESTART, START_INIT, START_JOIN };

/* Starts capstand for @m detached from this command: its own session,
 * stdin /dev/null, stdout and stderr appended to m<i>/capstand.log. */
static int start_master(const struct layout *l, struct master *m, const char *capstand,
			enum start_mode mode, const char *join_token)
{
	static const char *const mode_names[] = {"restart", "init", "join"};
	char config[PATH_MAX], log[PATH_MAX], pidfile[PATH_MAX], join_ca[PATH_MAX + 16];
	char listen[32], plain[32], raft[32], join_url[64], when[64], banner[128];
	const char *argv[24];
	int argc = 0, rv;
	time_t t = time(NULL);
	pid_t pid;

	path_join(config, sizeof config, l->dir, "capstand.yaml");
	path_join(pidfile, sizeof pidfile, m->dir, "capstand.pid");
	snprintf(join_ca, sizeof join_ca, "%s/pki/ca.crt", l->m[0].dir);
	log_path(m, log, sizeof log);
	snprintf(listen, sizeof listen, "127.0.0.1:%u", m->https);
	snprintf(plain, sizeof plain, "127.0.0.1:%u", m->plain);
	snprintf(raft, sizeof raft, "127.0.0.1:%u", m->raft);
	snprintf(join_url, sizeof join_url, "https://127.0.0.1:%u", l->m[0].https);
	argv[argc++] = capstand;
	argv[argc++] = "--config";
	argv[argc++] = config;
	argv[argc++] = "--data-dir";
	argv[argc++] = m->dir;
	argv[argc++] = "--listen";
	argv[argc++] = listen;
	argv[argc++] = "--plain-listen";
	argv[argc++] = plain;
	argv[argc++] = "--raft-address";
	argv[argc++] = raft;
	if (mode == START_INIT) {
		argv[argc++] = "--init";
	} else if (mode == START_JOIN) {
		argv[argc++] = "--join";
		argv[argc++] = join_url;
		argv[argc++] = "--token";
		argv[argc++] = join_token;
		argv[argc++] = "--join-ca";
		argv[argc++] = join_ca;
	}
	argv[argc] = NULL;

	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S%z", localtime(&t));
	snprintf(banner, sizeof banner, "--- capstan local up: %s m%u at %s\n", mode_names[mode],
		 m->index, when);
	rv = spawn_detached(argv, log, false, banner, pidfile, &pid);
	if (pid > 0) {
		m->child = pid;
		m->pid = pid;
	}
	if (rv != CLI_EXIT_OK)
		return rv;
	printf("m%u: started capstand (%s), pid %d\n", m->index, mode_names[mode], (int)pid);
	fflush(stdout);
	return CLI_EXIT_OK;
}

/* Finds a program: @rel (paths relative to the directory of this capstan,
 * resolved) first, then @name in @dirs. Writes its path to @buf. */
static bool find_prog(const char *name, const char *const *rel, size_t n_rel,
		      const char *const *dirs, size_t n_dirs, char *buf, size_t len)
{
	char self[PATH_MAX], *slash;
	ssize_t n;

	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash != NULL) {
			*slash = '\0';
			for (size_t i = 0; i < n_rel; i++) {
				char real[PATH_MAX];
				if (path_join(buf, len, self, rel[i]) == 0 && access(buf, X_OK) == 0) {
					if (realpath(buf, real) != NULL)
						snprintf(buf, len, "%s", real);
					return true;
				}
			}
		}
	}
	for (size_t i = 0; i < n_dirs; i++) {
		if (path_join(buf, len, dirs[i], name) == 0 && access(buf, X_OK) == 0)
			return true;
	}
	return false;
}

static int find_capstand(const char *given, char *buf, size_t len)
{
	static const char *const fallback[] = {"/usr/sbin", "/usr/local/sbin", "/sbin"};
	char self[PATH_MAX], *slash, *path, *dir, *save = NULL;
	ssize_t n;

	if (given != NULL) {
		if (access(given, X_OK) != 0)
			return cli_fail(CLI_EXIT_FAILURE, "cannot run %s: %s", given, strerror(errno));
		if (realpath(given, buf) == NULL)
			snprintf(buf, len, "%s", given);
		return CLI_EXIT_OK;
	}
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash != NULL) {
			*slash = '\0';
			/* The build tree, then an installed layout. */
			if (path_join(buf, len, self, "capstand") == 0 && access(buf, X_OK) == 0)
				return CLI_EXIT_OK;
			if (path_join(buf, len, self, "../sbin/capstand") == 0 &&
			    access(buf, X_OK) == 0) {
				char real[PATH_MAX];
				if (realpath(buf, real) != NULL)
					snprintf(buf, len, "%s", real);
				return CLI_EXIT_OK;
			}
		}
	}
	path = getenv("PATH") != NULL ? strdup(getenv("PATH")) : NULL;
	for (dir = path != NULL ? strtok_r(path, ":", &save) : NULL; dir != NULL;
	     dir = strtok_r(NULL, ":", &save)) {
		if (dir[0] == '/' && path_join(buf, len, dir, "capstand") == 0 &&
		    access(buf, X_OK) == 0) {
			free(path);
			return CLI_EXIT_OK;
		}
	}
	free(path);
	for (size_t i = 0; i < sizeof fallback / sizeof fallback[0]; i++) {
		if (path_join(buf, len, fallback[i], "capstand") == 0 && access(buf, X_OK) == 0)
			return CLI_EXIT_OK;
	}
	return cli_fail(CLI_EXIT_FAILURE,
			"capstand not found next to capstan, in ../sbin or in PATH; use --capstand FILE");
}

/* ------------------------------------------------------------ layout */

static int parse_hostport(const char *s, uint16_t *ret)
{
	const char *colon = s != NULL ? strrchr(s, ':') : NULL;
	uint64_t port;

	if (colon == NULL || args_parse_uint(colon + 1, 65535, &port) != 0 || port == 0)
		return -EINVAL;
	*ret = (uint16_t)port;
	return 0;
}

static void layout_set_master(struct layout *l, unsigned i)
{
	struct master *m = &l->m[i];
	char name[16];

	m->index = i + 1;
	snprintf(name, sizeof name, "m%u", i + 1);
	path_join(m->dir, sizeof m->dir, l->dir, name);
}

/* Loads DIR/local.yaml; -ENOENT when there is none. Prints other errors. */
static int layout_load(struct layout *l)
{
	char path[PATH_MAX], errmsg[256], *text;
	yaml_document_t doc;
	yaml_node_t *root, *masters;
	size_t len, n;
	int rv;

	path_join(path, sizeof path, l->dir, "local.yaml");
	rv = cli_read_file(path, 1u << 20, &text, &len);
	if (rv != 0) {
		if (rv != -ENOENT)
			cli_fail(CLI_EXIT_FAILURE, "cannot read %s: %s", path, strerror(-rv));
		return rv;
	}
	rv = cli_yaml_parse(text, len, &doc, errmsg, sizeof errmsg);
	free(text);
	if (rv != 0) {
		cli_fail(CLI_EXIT_FAILURE, "%s: %s", path, errmsg);
		return -EINVAL;
	}
	root = yaml_document_get_root_node(&doc);
	masters = cli_yaml_get(&doc, root, "masters");
	n = cli_yaml_seq_len(masters);
	if (n == 0 || n > LOCAL_MAX) {
		rv = -EINVAL;
		cli_fail(CLI_EXIT_FAILURE, "%s: no masters listed (or more than %d)", path,
			 LOCAL_MAX);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *item = cli_yaml_seq_item(&doc, masters, i);
		struct master *m = &l->m[i];
		const char *id = cli_yaml_get_str(&doc, item, "id");
		layout_set_master(l, (unsigned)i);
		if (parse_hostport(cli_yaml_get_str(&doc, item, "listen"), &m->https) != 0 ||
		    parse_hostport(cli_yaml_get_str(&doc, item, "plain-listen"), &m->plain) != 0 ||
		    parse_hostport(cli_yaml_get_str(&doc, item, "raft-address"), &m->raft) != 0 ||
		    (id != NULL && args_parse_uint(id, UINT64_MAX, &m->id) != 0)) {
			rv = -EINVAL;
			cli_fail(CLI_EXIT_FAILURE, "%s: master %zu has bad ports or id", path, i + 1);
			goto out;
		}
	}
	l->n = (unsigned)n;
out:
	yaml_document_delete(&doc);
	return rv;
}

static int layout_save(const struct layout *l)
{
	char path[PATH_MAX], buf[8192];
	size_t off = 0;
	int rv;

	off += (size_t)snprintf(buf + off, sizeof buf - off,
				"# The layout of a capstan local cluster, written by 'capstan local up'.\n"
				"# Later runs reuse these ports; change them only while it is down.\n"
				"masters:\n");
	for (unsigned i = 0; i < l->n; i++) {
		const struct master *m = &l->m[i];
		off += (size_t)snprintf(buf + off, sizeof buf - off, "  - name: m%u\n", m->index);
		if (m->id != 0)
			off += (size_t)snprintf(buf + off, sizeof buf - off, "    id: %" PRIu64 "\n",
						m->id);
		off += (size_t)snprintf(buf + off, sizeof buf - off,
					"    listen: 127.0.0.1:%u\n"
					"    plain-listen: 127.0.0.1:%u\n"
					"    raft-address: 127.0.0.1:%u\n",
					m->https, m->plain, m->raft);
	}
	path_join(path, sizeof path, l->dir, "local.yaml");
	rv = write_file(path, buf, off, 0644);
	if (rv != 0)
		return cli_fail(CLI_EXIT_FAILURE, "cannot write %s: %s", path, strerror(-rv));
	return CLI_EXIT_OK;
}

static bool port_free(uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return ok;
}

static bool port_taken_by_layout(const struct layout *l, unsigned upto, unsigned port)
{
	for (unsigned i = 0; i < upto; i++) {
		if (l->m[i].https == port || l->m[i].plain == port || l->m[i].raft == port)
			return true;
	}
	return false;
}

/* Gives masters [from, l->n) three consecutive free ports each. Random
 * ports are taken below the kernel's ephemeral range, so that outgoing
 * connections do not grab them between a stop and a restart. */
static int layout_assign_ports(struct layout *l, unsigned from, uint64_t base_port)
{
	unsigned count = 3 * (l->n - from);
	unsigned low = 10000, high = 32000, base = 0;
	FILE *f;

	if (count == 0)
		return CLI_EXIT_OK;
	if (base_port != 0) {
		if (base_port + count - 1 > 65535)
			return cli_fail(CLI_EXIT_USAGE, "--base-port %" PRIu64 " leaves no room for %u ports",
					base_port, count);
		for (unsigned p = 0; p < count; p++) {
			unsigned port = (unsigned)base_port + p;
			if (port_taken_by_layout(l, from, port) || !port_free((uint16_t)port))
				return cli_fail(CLI_EXIT_FAILURE,
						"port %u on 127.0.0.1 is in use; choose another --base-port",
						port);
		}
		base = (unsigned)base_port;
	} else {
		unsigned lo = 0, hi = 0;
		f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
		if (f != NULL) {
			if (fscanf(f, "%u %u", &lo, &hi) == 2 && lo > 2000 + 1024 && lo <= 65535)
				high = lo - 1;
			fclose(f);
		}
		if (high <= low + count)
			low = 1024;
		srand((unsigned)(now_ms() ^ (uint64_t)getpid() << 16));
		for (int attempt = 0; attempt < 200 && base == 0; attempt++) {
			unsigned b = low + (unsigned)rand() % (high - low - count);
			bool ok = true;
			/* Masters added to a cluster first try the ports
			 * right after its last one. */
			if (attempt == 0 && from > 0) {
				b = 0;
				for (unsigned i = 0; i < from; i++)
					b = l->m[i].raft > b ? l->m[i].raft : b;
				b++;
				if (b + count - 1 > 65535)
					continue;
			}
			for (unsigned p = 0; p < count && ok; p++)
				ok = !port_taken_by_layout(l, from, b + p) && port_free((uint16_t)(b + p));
			if (ok)
				base = b;
		}
		if (base == 0)
			return cli_fail(CLI_EXIT_FAILURE, "found no %u free ports on 127.0.0.1", count);
	}
	for (unsigned i = from; i < l->n; i++) {
		unsigned b = base + 3 * (i - from);
		l->m[i].https = (uint16_t)b;
		l->m[i].plain = (uint16_t)(b + 1);
		l->m[i].raft = (uint16_t)(b + 2);
	}
	return CLI_EXIT_OK;
}

/* Serialises local commands on one DIR. The fd stays open (and locked)
 * until the command exits. */
static int lock_dir(const char *dir)
{
	char p[PATH_MAX];
	int fd;

	path_join(p, sizeof p, dir, "local.lock");
	fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return cli_fail(CLI_EXIT_FAILURE, "cannot open %s: %s", p, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return cli_fail(CLI_EXIT_FAILURE,
				"another 'capstan local' command is working on %s", dir);
	}
	return CLI_EXIT_OK;
}

/* ------------------------------------------------------------ cluster API */

struct admin {
	struct cli_http_client *client;
};

/* Loads m1's admin kubeconfig once it exists. */
static int admin_open(const struct layout *l, struct admin *a, bool *ret_ready)
{
	struct cli_kubeconfig kc = {0};
	char path[PATH_MAX], errmsg[512];
	int rv;

	*ret_ready = false;
	if (a->client != NULL) {
		*ret_ready = true;
		return CLI_EXIT_OK;
	}
	path_join(path, sizeof path, l->m[0].dir, "admin.kubeconfig");
	if (access(path, R_OK) != 0)
		return CLI_EXIT_OK;
	rv = cli_kubeconfig_load(path, NULL, &kc, errmsg, sizeof errmsg);
	if (rv != 0) {
		/* It may be half written; capstand should rename it into
		 * place, but be lenient and retry. */
		return CLI_EXIT_OK;
	}
	rv = cli_http_client_new(kc.server != NULL ? kc.server : "https://127.0.0.1", &kc,
				 PROBE_TIMEOUT_MS, &a->client);
	cli_kubeconfig_close(&kc);
	if (rv != 0)
		return cli_fail(CLI_EXIT_FAILURE, "out of memory");
	*ret_ready = true;
	return CLI_EXIT_OK;
}

static bool readyz_ok(struct admin *a, const struct master *m)
{
	struct cli_http_response resp = {0};
	char url[64];
	bool ok;

	snprintf(url, sizeof url, "https://127.0.0.1:%u/readyz", m->https);
	if (cli_http_request(a->client, "GET", url, NULL, 0, PROBE_TIMEOUT_MS, &resp) != 0)
		return false;
	ok = resp.status == 200;
	cli_http_response_free(&resp);
	return ok;
}

/* GET /capstan/v1/cluster from the first running master that answers. */
static json_t *cluster_status(struct admin *a, const struct layout *l)
{
	for (unsigned i = 0; i < l->n; i++) {
		struct cli_http_response resp = {0};
		char url[96];
		json_t *root = NULL;

		if (l->m[i].pid == 0)
			continue;
		snprintf(url, sizeof url, "https://127.0.0.1:%u/capstan/v1/cluster", l->m[i].https);
		if (cli_http_request(a->client, "GET", url, NULL, 0, PROBE_TIMEOUT_MS, &resp) != 0)
			continue;
		if (resp.status == 200)
			root = json_loadb(resp.body, resp.len, 0, NULL);
		cli_http_response_free(&resp);
		if (root != NULL && json_is_object(root))
			return root;
		json_decref(root);
	}
	return NULL;
}

static json_int_t json_int(json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_string(v))
		return (json_int_t)strtoll(json_string_value(v), NULL, 10);
	return 0;
}

/* Whether @m is a voter in @status; fills m->id from it. */
static bool is_voter(json_t *status, struct master *m)
{
	json_t *members = json_object_get(status, "members"), *it;
	char addr[32];
	size_t i;

	snprintf(addr, sizeof addr, "127.0.0.1:%u", m->raft);
	json_array_foreach(members, i, it) {
		const char *ra = json_string_value(json_object_get(it, "raftAddress"));
		const char *role = json_string_value(json_object_get(it, "role"));
		if (ra == NULL || strcmp(ra, addr) != 0)
			continue;
		if (json_int(it, "id") > 0)
			m->id = (uint64_t)json_int(it, "id");
		return role != NULL && strcmp(role, "voter") == 0;
	}
	return false;
}

/* ------------------------------------------------------------ up */

struct up_opts {
	uint64_t masters;
	bool masters_given;
	uint64_t base_port;
	uint64_t timeout_ms;
	const char *capstand;
	uint64_t hollow_nodes;
	uint64_t nodes;
};

/* ------------------------------------------------------------ hollow nodes */

#define HOLLOW_MAX 100000

static pid_t hollow_running(const char *hdir)
{
	return running_pid(hdir, "hollow.pid", "capstan-hollow", "--control-dir", hdir);
}

/* capstan-hollow next to capstan (the build tree), in ../libexec/capstan
 * or ../lib/capstan (installed), or in the usual libexec directories. */
static int find_hollow(char *buf, size_t len)
{
	static const char *const rel[] = {"capstan-hollow", "../libexec/capstan/capstan-hollow",
					  "../lib/capstan/capstan-hollow"};
	static const char *const abs_dirs[] = {"/usr/libexec/capstan", "/usr/local/libexec/capstan",
					       "/usr/lib/capstan"};

	if (find_prog("capstan-hollow", rel, sizeof rel / sizeof rel[0], abs_dirs,
		      sizeof abs_dirs / sizeof abs_dirs[0], buf, len))
		return CLI_EXIT_OK;
	return cli_fail(CLI_EXIT_FAILURE,
			"capstan-hollow not found next to capstan or in a libexec directory");
}

/* Starts capstan-hollow detached, as start_master() starts capstand, and
 * waits for its "all N nodes registered" log line. */
static int start_hollow(const struct layout *l, const struct up_opts *o)
{
	char hdir[PATH_MAX], prog[PATH_MAX], log[PATH_MAX], pidfile[PATH_MAX], ca[PATH_MAX + 16],
		cert[PATH_MAX + 16], key[PATH_MAX + 16], nodes[32], want[96];
	char urls[LOCAL_MAX][48];
	const char *argv[16 + 2 * LOCAL_MAX];
	int argc = 0, rv, code, st;
	uint64_t deadline;
	pid_t pid;

	path_join(hdir, sizeof hdir, l->dir, "hollow");
	rv = mkdir_p(hdir, 0755);
	if (rv != 0)
		return cli_fail(CLI_EXIT_FAILURE, "cannot create %s: %s", hdir, strerror(-rv));
	pid = hollow_running(hdir);
	if (pid != 0) {
		printf("hollow nodes: already running, pid %d\n", (int)pid);
		return CLI_EXIT_OK;
	}
	if ((code = find_hollow(prog, sizeof prog)) != CLI_EXIT_OK)
		return code;
	path_join(log, sizeof log, hdir, "hollow.log");
	path_join(pidfile, sizeof pidfile, hdir, "hollow.pid");
	snprintf(ca, sizeof ca, "%s/pki/ca.crt", l->m[0].dir);
	snprintf(cert, sizeof cert, "%s/pki/admin.crt", l->m[0].dir);
	snprintf(key, sizeof key, "%s/pki/admin.key", l->m[0].dir);
	snprintf(nodes, sizeof nodes, "%" PRIu64, o->hollow_nodes);
	argv[argc++] = prog;
	for (unsigned i = 0; i < l->n; i++) {
		snprintf(urls[i], sizeof urls[i], "https://127.0.0.1:%u", l->m[i].https);
		argv[argc++] = "--server";
		argv[argc++] = urls[i];
	}
	argv[argc++] = "--ca";
	argv[argc++] = ca;
	argv[argc++] = "--cert";
	argv[argc++] = cert;
	argv[argc++] = "--key";
	argv[argc++] = key;
	argv[argc++] = "--nodes";
	argv[argc++] = nodes;
	argv[argc++] = "--control-dir";
	argv[argc++] = hdir;
	argv[argc] = NULL;

	/* A new log each time: the wait below looks for a line in it. */
	code = spawn_detached(argv, log, true, NULL, pidfile, &pid);
	if (code != CLI_EXIT_OK)
		return code;
	printf("hollow nodes: started capstan-hollow with %s nodes, pid %d\n", nodes, (int)pid);
	fflush(stdout);
	snprintf(want, sizeof want, "all %s nodes registered", nodes);
	deadline = now_ms() + o->timeout_ms;
	for (;;) {
		char *text;
		size_t n;
		bool done = false;

		if (waitpid(pid, &st, WNOHANG) == pid) {
			char line[320];
			last_line(log, line, sizeof line);
			return cli_fail(CLI_EXIT_FAILURE, "capstan-hollow exited; see %s (last line: %s)",
					log, line);
		}
		if (cli_read_file(log, 64u << 20, &text, &n) == 0) {
			done = strstr(text, want) != NULL;
			free(text);
		}
		if (done)
			break;
		if (now_ms() >= deadline) {
			return cli_fail(CLI_EXIT_FAILURE,
					"timed out after %" PRIu64 "s waiting for the hollow nodes; see %s",
					o->timeout_ms / 1000, log);
		}
		sleep_ms(POLL_MS);
	}
	printf("hollow nodes: %s registered (hollow-0..hollow-%" PRIu64 "), log %s\n", nodes,
	       o->hollow_nodes - 1, log);
	return CLI_EXIT_OK;
}

/* Stops the capstan-hollow of @dir (SIGTERM, SIGKILL after 10 s). */
static int stop_hollow(const char *dir)
{
	char hdir[PATH_MAX];
	struct proc p = {.dir = hdir, .pid_name = "hollow.pid", .who = "capstan-hollow",
			 .name = "hollow nodes"};

	path_join(hdir, sizeof hdir, dir, "hollow");
	p.pid = hollow_running(hdir);
	return stop_procs(&p, 1, true, NULL);
}

/* ------------------------------------------------------------ real nodes */

#define NODES_MAX 50
#define TEST_IMAGE "localhost/busybox:latest"

/* A node of the local cluster: DIR/nodes/n<index>/. */
struct lnode {
	unsigned index;
	char dir[PATH_MAX], config[PATH_MAX + 32], name[16];
	pid_t pid;
};

static void lnode_init(const struct layout *l, unsigned index, struct lnode *n)
{
	char sub[32];

	memset(n, 0, sizeof *n);
	n->index = index;
	snprintf(n->name, sizeof n->name, "n%u", index);
	snprintf(sub, sizeof sub, "nodes/n%u", index);
	path_join(n->dir, sizeof n->dir, l->dir, sub);
	snprintf(n->config, sizeof n->config, "%s/capstan-node.yaml", n->dir);
}

static pid_t lnode_running(struct lnode *n)
{
	n->pid = running_pid(n->dir, "capstan-node.pid", "capstan-node", "--config", n->config);
	return n->pid;
}

/* capstan-node next to capstan (the build tree), in ../sbin, or in PATH's
 * usual sbin directories. */
static int find_node_prog(char *buf, size_t len)
{
	static const char *const rel[] = {"capstan-node", "../sbin/capstan-node"};
	static const char *const abs_dirs[] = {"/usr/sbin", "/usr/local/sbin"};

	if (find_prog("capstan-node", rel, sizeof rel / sizeof rel[0], abs_dirs,
		      sizeof abs_dirs / sizeof abs_dirs[0], buf, len))
		return CLI_EXIT_OK;
	return cli_fail(CLI_EXIT_FAILURE, "capstan-node not found next to capstan or in /usr/sbin");
}

/* Runs @argv to completion (stdin /dev/null, stderr to @log or
 * inherited); its stdout goes to @out (NUL-terminated, may be NULL: to
 * @log too). Returns the exit status, or -1 if it could not run. */
static int run_prog(const char *const *argv, char *out, size_t out_len, const char *log)
{
	int pfd[2] = {-1, -1}, logfd = -1, st;
	size_t got = 0;
	pid_t pid;

	if (out != NULL && pipe2(pfd, O_CLOEXEC) != 0)
		return -1;
	if (log != NULL)
		logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		st = -1;
		goto out;
	}
	if (pid == 0) {
		int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (nullfd < 0 || dup2(nullfd, 0) < 0)
			_exit(127);
		if (out != NULL ? dup2(pfd[1], 1) < 0 : (logfd >= 0 && dup2(logfd, 1) < 0))
			_exit(127);
		if (logfd >= 0 && dup2(logfd, 2) < 0)
			_exit(127);
		close_range(3, ~0U, 0);
		execvp(argv[0], (char *const *)argv);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (out != NULL) {
		close(pfd[1]);
		pfd[1] = -1;
		for (;;) {
			ssize_t n = read(pfd[0], out + got, out_len - 1 - got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			got += (size_t)n;
			if (got == out_len - 1)
				break;
		}
		out[got] = '\0';
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	st = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
out:
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	if (logfd >= 0)
		close(logfd);
	return st;
}

/* The test image script: $CAPSTAN_TEST_IMAGE_SCRIPT, else the source tree
 * of the build tree capstan runs from (abs_top_srcdir of its Makefile).
 * An installed capstan has none. */
static bool find_image_script(char *buf, size_t len)
{
	const char *env = getenv("CAPSTAN_TEST_IMAGE_SCRIPT");
	char self[PATH_MAX], mk[PATH_MAX + 16], *text = NULL, *line, *slash;
	size_t n;
	ssize_t r;
	bool found = false;

	if (env != NULL && env[0] != '\0') {
		snprintf(buf, len, "%s", env);
		return access(buf, R_OK) == 0;
	}
	r = readlink("/proc/self/exe", self, sizeof self - 1);
	if (r <= 0)
		return false;
	self[r] = '\0';
	slash = strrchr(self, '/');
	if (slash == NULL)
		return false;
	*slash = '\0';
	snprintf(mk, sizeof mk, "%s/Makefile", self);
	if (cli_read_file(mk, 16u << 20, &text, &n) != 0)
		return false;
	line = strstr(text, "\nabs_top_srcdir = ");
	if (line != NULL) {
		line += strlen("\nabs_top_srcdir = ");
		line[strcspn(line, "\n")] = '\0';
		snprintf(buf, len, "%s/tests/image/build-busybox-image.sh", line);
		found = access(buf, R_OK) == 0;
	}
	free(text);
	return found;
}

/* Writes DIR/nodes/n<i>/capstan-node.yaml once: the node's settings,
 * kept across restarts. */
static int lnode_config(const struct layout *l, const struct lnode *n, uint16_t port)
{
	char text[8192], state[PATH_MAX + 8], run[PATH_MAX + 8];
	uint32_t h = 2166136261u;
	size_t off = 0;
	int rv;

	if (access(n->config, F_OK) == 0)
		return CLI_EXIT_OK;
	/* Bridge names and pod subnets differ between local clusters. */
	for (const char *p = l->dir; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	snprintf(state, sizeof state, "%s/state", n->dir);
	snprintf(run, sizeof run, "%s/run", n->dir);
	off += (size_t)snprintf(text + off, sizeof text - off,
				"# capstan-node(8) settings of node %s of the local cluster in %s\n"
				"# (written by 'capstan local up'; the bootstrap token is given on\n"
				"# the command line at the first start only)\nserver:\n",
				n->name, l->dir);
	for (unsigned i = 0; i < l->n; i++)
		off += (size_t)snprintf(text + off, sizeof text - off, "  - https://127.0.0.1:%u\n",
					l->m[i].https);
	off += (size_t)snprintf(text + off, sizeof text - off,
				"ca-file: %s/pki/ca.crt\n"
				"state-dir: %s\n"
				"run-dir: %s\n"
				"node-name: %s\n"
				"node-ip: 127.0.0.1\n"
				"listen: 127.0.0.1:%u\n"
				"cni-bridge: cpl%04xn%u\n"
				"pod-cidr: 10.%u.%u.0/24\n"
				"log-level: info\n",
				l->m[0].dir, state, run, n->name, port, (unsigned)(h & 0xffff),
				n->index, 100 + (unsigned)((h >> 16) % 100), n->index);
	if (off >= sizeof text)
		return cli_fail(CLI_EXIT_FAILURE, "%s: settings too long", n->config);
	rv = write_file(n->config, text, off, 0600);
	if (rv != 0)
		return cli_fail(CLI_EXIT_FAILURE, "cannot write %s: %s", n->config, strerror(-rv));
	return CLI_EXIT_OK;
}

/* A port for a node's log endpoint: free now and not a master's. */
static int lnode_port(const struct layout *l, uint16_t *ret)
{
	for (int tries = 0; tries < 200; tries++) {
		uint16_t port;
		unsigned char r[2];
		int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
		if (fd < 0 || read(fd, r, 2) != 2) {
			if (fd >= 0)
				close(fd);
			break;
		}
		close(fd);
		port = (uint16_t)(20000 + ((r[0] << 8) | r[1]) % 30000);
		if (!port_taken_by_layout(l, l->n, port) && port_free(port)) {
			*ret = port;
			return CLI_EXIT_OK;
		}
	}
	return cli_fail(CLI_EXIT_FAILURE, "no free port found for a node");
}

/* Whether the node's image store names the test image. */
static bool lnode_has_image(const struct lnode *n)
{
	char p[PATH_MAX + 64], *text;
	size_t len;
	bool found;

	snprintf(p, sizeof p, "%s/state/runtime/images/repositories.json", n->dir);
	if (cli_read_file(p, 16u << 20, &text, &len) != 0)
		return false;
	found = strstr(text, "\"" TEST_IMAGE "\"") != NULL;
	free(text);
	return found;
}

/* Builds the test image into DIR/nodes/image once and imports it into
 * every node of @nodes that lacks it (before they start). */
static int lnode_images(const struct layout *l, struct lnode *nodes, unsigned n_nodes,
			const char *prog)
{
	char script[PATH_MAX], out[PATH_MAX], oci[PATH_MAX + 8], log[PATH_MAX];
	bool built = false;

	path_join(out, sizeof out, l->dir, "nodes/image");
	path_join(log, sizeof log, l->dir, "nodes/image.log");
	snprintf(oci, sizeof oci, "%s/oci", out);
	for (unsigned i = 0; i < n_nodes; i++) {
		const char *argv[] = {prog, "--config", nodes[i].config, "image", "import", oci,
				      TEST_IMAGE, NULL};
		if (lnode_has_image(&nodes[i]) || nodes[i].pid != 0)
			continue;
		if (!built) {
			const char *sargv[] = {"sh", script, out, TEST_IMAGE, NULL};
			if (!find_image_script(script, sizeof script)) {
				printf("test image: tests/image/build-busybox-image.sh not found (an "
				       "installed capstan has no source tree): nodes start without "
				       TEST_IMAGE "; import one with 'capstan-node --config "
				       "%s/nodes/nN/capstan-node.yaml image import PATH NAME'\n",
				       l->dir);
				return CLI_EXIT_OK;
			}
			if (run_prog(sargv, NULL, 0, log) != 0)
				return cli_fail(CLI_EXIT_FAILURE, "building the test image failed; see %s",
						log);
			built = true;
		}
		if (run_prog(argv, NULL, 0, log) != 0)
			return cli_fail(CLI_EXIT_FAILURE, "importing the test image into %s failed; see %s",
					nodes[i].name, log);
		printf("%s: imported %s\n", nodes[i].name, TEST_IMAGE);
	}
	return CLI_EXIT_OK;
}

/* Whether the Node @name is Ready in the API. */
static bool node_ready(struct admin *a, const struct layout *l, const char *name)
{
	struct cli_http_response resp = {0};
	char url[128];
	json_t *root, *c;
	size_t i;
	bool ok = false;

	for (unsigned m = 0; m < l->n && !ok; m++) {
		snprintf(url, sizeof url, "https://127.0.0.1:%u/api/v1/nodes/%s", l->m[m].https,
			 name);
		if (cli_http_request(a->client, "GET", url, NULL, 0, PROBE_TIMEOUT_MS, &resp) != 0)
			continue;
		root = resp.status == 200 ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
		cli_http_response_free(&resp);
		json_array_foreach (json_object_get(json_object_get(root, "status"), "conditions"), i,
				    c) {
			const char *t = json_string_value(json_object_get(c, "type"));
			const char *s = json_string_value(json_object_get(c, "status"));
			if (t != NULL && s != NULL && strcmp(t, "Ready") == 0 &&
			    strcmp(s, "True") == 0)
				ok = true;
		}
		json_decref(root);
		if (root != NULL)
			break;
	}
	return ok;
}

/* Starts capstan-node for @n detached (as the masters) with a bootstrap
 * token on its first start. */
static int lnode_start(struct lnode *n, const char *prog, const char *kubeconfig)
{
	char log[PATH_MAX + 32], pidfile[PATH_MAX + 32], cert[PATH_MAX + 32], token[256] = "";
	const char *argv[8];
	int argc = 0, code;
	pid_t pid;

	snprintf(cert, sizeof cert, "%s/state/pki/node.crt", n->dir);
	if (access(cert, F_OK) != 0) {
		char self[PATH_MAX];
		ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
		char desc[64];
		const char *targv[] = {self, "--kubeconfig", kubeconfig, "token", "create", "--ttl",
				       "1h", "--description", desc, NULL};
		if (sl <= 0)
			return cli_fail(CLI_EXIT_FAILURE, "cannot find the capstan program");
		self[sl] = '\0';
		snprintf(desc, sizeof desc, "capstan local node %s", n->name);
		if (run_prog(targv, token, sizeof token, NULL) != 0)
			return cli_fail(CLI_EXIT_FAILURE, "cannot create a bootstrap token for %s",
					n->name);
		token[strcspn(token, "\r\n")] = '\0';
	}
	snprintf(log, sizeof log, "%s/capstan-node.log", n->dir);
	snprintf(pidfile, sizeof pidfile, "%s/capstan-node.pid", n->dir);
	argv[argc++] = prog;
	argv[argc++] = "--config";
	argv[argc++] = n->config;
	if (token[0] != '\0') {
		argv[argc++] = "--token";
		argv[argc++] = token;
	}
	argv[argc] = NULL;
	code = spawn_detached(argv, log, false, NULL, pidfile, &pid);
	if (pid > 0)
		n->pid = pid;
	if (code != CLI_EXIT_OK)
		return code;
	printf("%s: started capstan-node, pid %d\n", n->name, (int)pid);
	return CLI_EXIT_OK;
}

/* "local up --nodes M": nodes n1..nM, each a capstan-node of its own. */
static int start_nodes(const struct layout *l, struct admin *a, const struct up_opts *o,
		       const char *kubeconfig)
{
	static struct lnode nodes[NODES_MAX];
	char prog[PATH_MAX];
	unsigned m = (unsigned)o->nodes;
	uint64_t deadline;
	int code, rv;

	if (geteuid() != 0)
		return cli_fail(CLI_EXIT_FAILURE,
				"--nodes needs root (capstan-node runs containers with runc)");
	if ((code = find_node_prog(prog, sizeof prog)) != CLI_EXIT_OK)
		return code;
	for (unsigned i = 0; i < m; i++) {
		struct lnode *n = &nodes[i];
		uint16_t port = 0;
		lnode_init(l, i + 1, n);
		rv = mkdir_p(n->dir, 0700);
		if (rv != 0)
			return cli_fail(CLI_EXIT_FAILURE, "cannot create %s: %s", n->dir, strerror(-rv));
		lnode_running(n);
		if (access(n->config, F_OK) != 0) {
			if ((code = lnode_port(l, &port)) != CLI_EXIT_OK ||
			    (code = lnode_config(l, n, port)) != CLI_EXIT_OK)
				return code;
		}
	}
	if ((code = lnode_images(l, nodes, m, prog)) != CLI_EXIT_OK)
		return code;
	for (unsigned i = 0; i < m; i++) {
		if (nodes[i].pid != 0) {
			printf("%s: already running, pid %d\n", nodes[i].name, (int)nodes[i].pid);
			continue;
		}
		if ((code = lnode_start(&nodes[i], prog, kubeconfig)) != CLI_EXIT_OK)
			return code;
	}
	deadline = now_ms() + o->timeout_ms;
	for (unsigned i = 0; i < m; i++) {
		struct lnode *n = &nodes[i];
		char log[PATH_MAX + 32], line[320];
		snprintf(log, sizeof log, "%s/capstan-node.log", n->dir);
		while (!node_ready(a, l, n->name)) {
			int st;
			if (waitpid(n->pid, &st, WNOHANG) == n->pid || pid_gone(n->pid)) {
				last_line(log, line, sizeof line);
				return cli_fail(CLI_EXIT_FAILURE, "%s: capstan-node exited; see %s (last line: %s)",
						n->name, log, line);
			}
			if (now_ms() >= deadline) {
				last_line(log, line, sizeof line);
				return cli_fail(CLI_EXIT_FAILURE, "timed out after %" PRIu64 "s waiting for Node %s to be Ready; see %s (last line: %s)",
						o->timeout_ms / 1000, n->name, log, line);
			}
			sleep_ms(POLL_MS);
		}
		printf("%s: Ready\n", n->name);
	}
	return CLI_EXIT_OK;
}

/* "local down": SIGTERM every node agent of DIR/nodes/ (SIGKILL after
 * 10 s), then `capstan-node cleanup` removes the containers, sandboxes and
 * mounts they leave behind on purpose. */
static int stop_nodes(const char *dir)
{
	char ndir[PATH_MAX], prog[PATH_MAX];
	struct lnode *nodes;
	struct proc *procs;
	struct dirent *de;
	unsigned n = 0, failed = 0;
	bool have_prog;
	DIR *d;
	struct layout *l = calloc(1, sizeof *l);

	if (l == NULL)
		return cli_fail(CLI_EXIT_FAILURE, "out of memory");
	snprintf(l->dir, sizeof l->dir, "%s", dir);
	path_join(ndir, sizeof ndir, dir, "nodes");
	d = opendir(ndir);
	if (d == NULL) {
		free(l);
		return CLI_EXIT_OK;
	}
	nodes = calloc(NODES_MAX, sizeof *nodes);
	while (nodes != NULL && (de = readdir(d)) != NULL && n < NODES_MAX) {
		uint64_t idx;
		if (de->d_name[0] != 'n' || args_parse_uint(de->d_name + 1, NODES_MAX, &idx) != 0 ||
		    idx == 0)
			continue;
		lnode_init(l, (unsigned)idx, &nodes[n]);
		if (access(nodes[n].config, F_OK) == 0)
			n++;
	}
	closedir(d);
	free(l);
	if (nodes == NULL)
		return cli_fail(CLI_EXIT_FAILURE, "out of memory");
	procs = calloc(NODES_MAX, sizeof *procs);
	if (procs == NULL) {
		free(nodes);
		return cli_fail(CLI_EXIT_FAILURE, "out of memory");
	}
	for (unsigned i = 0; i < n; i++) {
		procs[i] = (struct proc){.pid = lnode_running(&nodes[i]), .dir = nodes[i].dir,
					 .pid_name = "capstan-node.pid", .who = nodes[i].name};
		snprintf(procs[i].name, sizeof procs[i].name, "%s", nodes[i].name);
	}
	/* Best effort: cleanup below runs whatever happens. */
	stop_procs(procs, n, false, NULL);
	free(procs);
	have_prog = n > 0 && find_node_prog(prog, sizeof prog) == CLI_EXIT_OK;
	for (unsigned i = 0; i < n && have_prog; i++) {
		char log[PATH_MAX + 32];
		const char *argv[] = {prog, "--config", nodes[i].config, "cleanup", NULL};
		snprintf(log, sizeof log, "%s/cleanup.log", nodes[i].dir);
		if (run_prog(argv, NULL, 0, log) != 0) {
			fprintf(stderr, "capstan local down: cleanup of %s failed; see %s\n",
				nodes[i].name, log);
			failed++;
		} else {
			printf("%s: containers, sandboxes and mounts removed\n", nodes[i].name);
		}
	}
	free(nodes);
	return failed == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

/* Polls until m1's admin kubeconfig exists and its /readyz says ok. */
static int wait_first_ready(struct layout *l, struct admin *a, uint64_t timeout_ms)
{
	struct master *m1 = &l->m[0];
	uint64_t deadline = now_ms() + timeout_ms;
	int code;

	for (;;) {
		bool have_admin;
		if ((code = check_alive(m1)) != CLI_EXIT_OK)
			return code;
		if ((code = admin_open(l, a, &have_admin)) != CLI_EXIT_OK)
			return code;
		if (have_admin && readyz_ok(a, m1))
			return CLI_EXIT_OK;
		if (now_ms() >= deadline)
			return fail_with_log(m1, "timed out after %" PRIu64 "s waiting for m1's /readyz",
					     timeout_ms / 1000);
		sleep_ms(POLL_MS);
	}
}

static int wait_voter(struct layout *l, struct admin *a, struct master *m, uint64_t timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	int code;

	for (;;) {
		json_t *st;
		bool ok;
		if ((code = check_alive(m)) != CLI_EXIT_OK)
			return code;
		st = cluster_status(a, l);
		ok = st != NULL && is_voter(st, m);
		json_decref(st);
		if (ok)
			return CLI_EXIT_OK;
		if (now_ms() >= deadline)
			return fail_with_log(m, "timed out after %" PRIu64 "s waiting for m%u to become a voter",
					     timeout_ms / 1000, m->index);
		sleep_ms(POLL_MS);
	}
}

/* Waits for a known leader, every master a voter, every /readyz ok. */
static int wait_all(struct layout *l, struct admin *a, uint64_t timeout_ms,
		    json_int_t *ret_leader)
{
	uint64_t deadline = now_ms() + timeout_ms;
	int code;

	for (;;) {
		json_t *st;
		json_int_t leader = 0;
		struct master *lagging = NULL;
		const char *what = "no master answered";

		for (unsigned i = 0; i < l->n; i++) {
			if ((code = check_alive(&l->m[i])) != CLI_EXIT_OK)
				return code;
		}
		st = cluster_status(a, l);
		if (st != NULL) {
			leader = json_int(st, "leaderID");
			what = "no leader is known";
			if (leader != 0) {
				for (unsigned i = 0; i < l->n && lagging == NULL; i++) {
					if (!is_voter(st, &l->m[i])) {
						lagging = &l->m[i];
						what = "is not a voter";
					}
				}
				for (unsigned i = 0; i < l->n && lagging == NULL; i++) {
					if (!readyz_ok(a, &l->m[i])) {
						lagging = &l->m[i];
						what = "is not ready";
					}
				}
				if (lagging == NULL) {
					json_decref(st);
					*ret_leader = leader;
					return CLI_EXIT_OK;
				}
			}
		}
		json_decref(st);
		if (now_ms() >= deadline) {
			if (lagging != NULL)
				return fail_with_log(lagging, "timed out after %" PRIu64 "s: m%u %s",
						     timeout_ms / 1000, lagging->index, what);
			return fail_with_log(&l->m[0], "timed out after %" PRIu64 "s: %s",
					     timeout_ms / 1000, what);
		}
		sleep_ms(POLL_MS);
	}
}

static int copy_kubeconfig(const struct layout *l, char *dst, size_t dst_len)
{
	char src[PATH_MAX], *text;
	size_t len;
	int rv;

	path_join(src, sizeof src, l->m[0].dir, "admin.kubeconfig");
	path_join(dst, dst_len, l->dir, "kubeconfig");
	rv = cli_read_file(src, 1u << 20, &text, &len);
	if (rv != 0)
		return cli_fail(CLI_EXIT_FAILURE, "cannot read %s: %s", src, strerror(-rv));
	rv = write_file(dst, text, len, 0600);
	free(text);
	if (rv != 0)
		return cli_fail(CLI_EXIT_FAILURE, "cannot write %s: %s", dst, strerror(-rv));
	return CLI_EXIT_OK;
}

static int read_join_token(const struct layout *l, char *buf, size_t len)
{
	char path[PATH_MAX], *text;
	size_t n;
	int rv;

	path_join(path, sizeof path, l->m[0].dir, "join.token");
	rv = cli_read_file(path, 4096, &text, &n);
	if (rv != 0)
		return cli_fail(CLI_EXIT_FAILURE, "cannot read %s: %s", path, strerror(-rv));
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		text[--n] = '\0';
	snprintf(buf, len, "%s", text);
	free(text);
	return CLI_EXIT_OK;
}

static void print_summary(const struct layout *l, json_int_t leader, const char *kubeconfig)
{
	printf("\ncapstan local cluster in %s: %u master%s, leader id %lld\n", l->dir, l->n,
	       l->n == 1 ? "" : "s", (long long)leader);
	printf("  %-4s %-20s %-24s %-24s %-16s %s\n", "NAME", "ID", "API URL", "PLAIN URL",
	       "RAFT", "PID");
	for (unsigned i = 0; i < l->n; i++) {
		const struct master *m = &l->m[i];
		char api[40], plain[40], raft[32];
		snprintf(api, sizeof api, "https://127.0.0.1:%u", m->https);
		snprintf(plain, sizeof plain, "http://127.0.0.1:%u", m->plain);
		snprintf(raft, sizeof raft, "127.0.0.1:%u", m->raft);
		printf("  m%-3u %-20" PRIu64 " %-24s %-24s %-16s %d%s\n", m->index, m->id, api,
		       plain, raft, (int)m->pid,
		       leader != 0 && m->id == (uint64_t)leader ? " (leader)" : "");
	}
	printf("\nkubeconfig: %s\n"
	       "  export KUBECONFIG=%s\n"
	       "  kubectl get --raw /version\n"
	       "  capstan cluster members\n"
	       "plain endpoint (loopback, no TLS): http://127.0.0.1:%u\n"
	       "  curl http://127.0.0.1:%u/readyz\n"
	       "  curl -H \"Authorization: Bearer $(cat %s/admin.token)\" http://127.0.0.1:%u/capstan/v1/cluster\n"
	       "logs: %s/m<N>/capstand.log\n"
	       "stop: capstan local down --dir %s\n",
	       kubeconfig, kubeconfig, l->m[0].plain, l->m[0].plain, l->m[0].dir, l->m[0].plain,
	       l->dir, l->dir);
}

static int local_up(const struct up_opts *o, const char *dir_arg)
{
	static struct layout l; /* large; one per process */
	struct admin a = {0};
	char capstand[PATH_MAX], token[512], kubeconfig[PATH_MAX];
	json_int_t leader = 0;
	unsigned old_n = 0;
	int rv, code;

	memset(&l, 0, sizeof l);
	rv = mkdir_p(dir_arg, 0755);
	if (rv != 0)
		return cli_fail(CLI_EXIT_FAILURE, "cannot create %s: %s", dir_arg, strerror(-rv));
	if (realpath(dir_arg, l.dir) == NULL)
		return cli_fail(CLI_EXIT_FAILURE, "%s: %s", dir_arg, strerror(errno));
	if ((code = lock_dir(l.dir)) != CLI_EXIT_OK)
		return code;
	if ((code = find_capstand(o->capstand, capstand, sizeof capstand)) != CLI_EXIT_OK)
		return code;

	rv = layout_load(&l);
	if (rv == 0) {
		old_n = l.n;
		if (o->masters_given && o->masters < l.n)
			return cli_fail(CLI_EXIT_USAGE,
					"%s already has %u masters; --masters cannot shrink it (use 'capstan cluster remove' or 'local down --purge')",
					l.dir, l.n);
		if (o->masters_given)
			l.n = (unsigned)o->masters;
	} else if (rv == -ENOENT) {
		l.n = (unsigned)o->masters;
	} else {
		return CLI_EXIT_FAILURE;
	}
	for (unsigned i = old_n; i < l.n; i++)
		layout_set_master(&l, i);
	if ((code = layout_assign_ports(&l, old_n, old_n == 0 ? o->base_port : 0)) != CLI_EXIT_OK)
		return code;
	for (unsigned i = 0; i < l.n; i++) {
		rv = mkdir_p(l.m[i].dir, 0700);
		if (rv != 0)
			return cli_fail(CLI_EXIT_FAILURE, "cannot create %s: %s", l.m[i].dir,
					strerror(-rv));
	}
	{
		char cfg[PATH_MAX];
		static const char text[] =
			"# capstand(8) settings shared by every master of this local cluster;\n"
			"# per-master flags (data dir, addresses) are given on the command line.\n"
			"log-level: info\n";
		path_join(cfg, sizeof cfg, l.dir, "capstand.yaml");
		if (access(cfg, F_OK) != 0 && (rv = write_file(cfg, text, sizeof text - 1, 0644)) != 0)
			return cli_fail(CLI_EXIT_FAILURE, "cannot write %s: %s", cfg, strerror(-rv));
	}
	/* Saved before anything starts, so that "down" finds the pid files
	 * even if this command fails half way. */
	if ((code = layout_save(&l)) != CLI_EXIT_OK)
		return code;

	/* m1's state decides between a restart and a new cluster; a layout
	 * that knew m1's id with the data gone is refused, not re-inited. */
	if (!exists(l.m[0].dir, "id") && l.m[0].id != 0)
		return cli_fail(CLI_EXIT_FAILURE,
				"%s/id is missing although m1 had id %" PRIu64 "; refusing to create a new cluster there (use 'capstan local down --purge' to start over)",
				l.m[0].dir, l.m[0].id);

	/* Every master with state restarts at once: a quorum may need
	 * several of them before m1 can be ready. */
	for (unsigned i = 0; i < l.n; i++) {
		struct master *m = &l.m[i];
		bool has_state = i == 0 ? exists(m->dir, "id") : exists(m->dir, "joined");
		if (master_running(m)) {
			printf("m%u: already running, pid %d\n", m->index, (int)m->pid);
			continue;
		}
		if (!has_state)
			continue;
		if ((code = start_master(&l, m, capstand, START_RESTART, NULL)) != CLI_EXIT_OK)
			return code;
	}
	if (l.m[0].pid == 0 &&
	    (code = start_master(&l, &l.m[0], capstand, START_INIT, NULL)) != CLI_EXIT_OK)
		return code;
	if ((code = wait_first_ready(&l, &a, o->timeout_ms)) != CLI_EXIT_OK)
		goto out;

	for (unsigned i = 1; i < l.n; i++) {
		struct master *m = &l.m[i];
		if (exists(m->dir, "joined"))
			continue;
		if (m->pid == 0) {
			if ((code = read_join_token(&l, token, sizeof token)) != CLI_EXIT_OK ||
			    (code = start_master(&l, m, capstand, START_JOIN, token)) != CLI_EXIT_OK)
				goto out;
		}
		if ((code = wait_voter(&l, &a, m, o->timeout_ms)) != CLI_EXIT_OK)
			goto out;
		printf("m%u: voter\n", m->index);
		fflush(stdout);
	}
	if ((code = wait_all(&l, &a, o->timeout_ms, &leader)) != CLI_EXIT_OK)
		goto out;
	for (unsigned i = 0; i < l.n; i++) {
		uint64_t id;
		if (read_uint_file(l.m[i].dir, "id", &id) == 0 && id != 0)
			l.m[i].id = id;
	}
	if ((code = layout_save(&l)) != CLI_EXIT_OK)
		goto out;
	if ((code = copy_kubeconfig(&l, kubeconfig, sizeof kubeconfig)) != CLI_EXIT_OK)
		goto out;
	if (o->hollow_nodes > 0 && (code = start_hollow(&l, o)) != CLI_EXIT_OK)
		goto out;
	if (o->nodes > 0 && (code = start_nodes(&l, &a, o, kubeconfig)) != CLI_EXIT_OK)
		goto out;
	print_summary(&l, leader, kubeconfig);
	if (o->nodes > 0)
		printf("nodes: n1..n%" PRIu64 " (capstan-node), in %s/nodes/n<N>/ (settings "
		       "capstan-node.yaml, log capstan-node.log)\n",
		       o->nodes, l.dir);
	code = CLI_EXIT_OK;
out:
	cli_http_client_free(a.client);
	return code;
}

/* ------------------------------------------------------------ down */

static int purge_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP ? rmdir(path) : unlink(path)) {
		if (errno != ENOENT)
			return -errno;
	}
	return 0;
}

/* Deletes what "local up" created in @dir: m<N>/, hollow/, local.yaml, capstand.yaml,
 * kubeconfig, the lock, then @dir itself if that left it empty. */
static int purge(const char *dir)
{
	static const char *const files[] = {"local.yaml", "local.yaml.tmp", "capstand.yaml",
					    "capstand.yaml.tmp", "kubeconfig", "kubeconfig.tmp",
					    "local.lock"};
	char p[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int rv, failed = 0;

	d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d)) != NULL) {
		size_t digits = strspn(de->d_name + 1, "0123456789");
		if (de->d_name[0] != 'm' || digits == 0 || de->d_name[1 + digits] != '\0')
			continue;
		if (path_join(p, sizeof p, dir, de->d_name) != 0)
			continue;
		rv = nftw(p, purge_cb, 16, FTW_DEPTH | FTW_PHYS);
		if (rv != 0)
			failed = rv < 0 ? rv : -EIO;
	}
	closedir(d);
	if (path_join(p, sizeof p, dir, "nodes") == 0) {
		rv = nftw(p, purge_cb, 16, FTW_DEPTH | FTW_PHYS);
		if (rv != 0 && errno != ENOENT)
			failed = rv < 0 ? rv : -EIO;
	}
	if (path_join(p, sizeof p, dir, "hollow") == 0) {
		rv = nftw(p, purge_cb, 16, FTW_DEPTH | FTW_PHYS);
		if (rv != 0 && errno != ENOENT)
			failed = rv < 0 ? rv : -EIO;
	}
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		if (path_join(p, sizeof p, dir, files[i]) == 0 && unlink(p) != 0 && errno != ENOENT)
			failed = -errno;
	}
	rmdir(dir); /* only if nothing else is left there */
	return failed;
}

static int local_down(const char *dir_arg, bool do_purge)
{
	static struct layout l;
	struct proc procs[LOCAL_MAX];
	struct dirent *de;
	unsigned stopping = 0;
	DIR *d;
	int code, rv;

	memset(&l, 0, sizeof l);
	if (realpath(dir_arg, l.dir) == NULL) {
		if (errno == ENOENT) {
			printf("nothing runs in %s\n", dir_arg);
			return CLI_EXIT_OK;
		}
		return cli_fail(CLI_EXIT_FAILURE, "%s: %s", dir_arg, strerror(errno));
	}
	if ((code = lock_dir(l.dir)) != CLI_EXIT_OK)
		return code;
	/* The nodes first: they talk to the masters. */
	if ((code = stop_nodes(l.dir)) != CLI_EXIT_OK)
		return code;
	if ((code = stop_hollow(l.dir)) != CLI_EXIT_OK)
		return code;
	/* Every m<N>/ with a pid file counts, listed in local.yaml or not. */
	d = opendir(l.dir);
	if (d == NULL)
		return cli_fail(CLI_EXIT_FAILURE, "%s: %s", l.dir, strerror(errno));
	while ((de = readdir(d)) != NULL && l.n < LOCAL_MAX) {
		size_t digits = strspn(de->d_name + 1, "0123456789");
		struct master *m = &l.m[l.n];
		uint64_t idx;
		if (de->d_name[0] != 'm' || digits == 0 || de->d_name[1 + digits] != '\0' ||
		    args_parse_uint(de->d_name + 1, 1000, &idx) != 0)
			continue;
		m->index = (unsigned)idx;
		if (path_join(m->dir, sizeof m->dir, l.dir, de->d_name) != 0)
			continue;
		l.n++;
	}
	closedir(d);
	for (unsigned i = 0; i < l.n; i++) {
		struct master *m = &l.m[i];
		master_running(m);
		procs[i] = (struct proc){.pid = m->pid, .dir = m->dir, .pid_name = "capstand.pid"};
		snprintf(procs[i].name, sizeof procs[i].name, "m%u", m->index);
		procs[i].who = procs[i].name;
	}
	if ((code = stop_procs(procs, l.n, true, &stopping)) != CLI_EXIT_OK)
		return code;
	if (stopping == 0)
		printf("nothing was running in %s\n", l.dir);
	if (do_purge) {
		rv = purge(l.dir);
		if (rv != 0)
			return cli_fail(CLI_EXIT_FAILURE, "cannot delete everything in %s: %s", l.dir,
					strerror(-rv));
		printf("deleted the local cluster's files in %s\n", l.dir);
	}
	return CLI_EXIT_OK;
}

/* ------------------------------------------------------------ entry */

int cli_cmd_local(struct cli_global *g, int argc, char **argv)
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"masters", required_argument, NULL, OPT_MASTERS},
		{"dir", required_argument, NULL, OPT_DIR},
		{"base-port", required_argument, NULL, OPT_BASE_PORT},
		{"capstand", required_argument, NULL, OPT_CAPSTAND},
		{"timeout", required_argument, NULL, OPT_WAIT},
		{"purge", no_argument, NULL, OPT_PURGE},
		{"hollow-nodes", required_argument, NULL, OPT_HOLLOW_NODES},
		{"nodes", required_argument, NULL, OPT_NODES},
		CLI_GLOBAL_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	struct up_opts o = {.masters = DEFAULT_MASTERS, .timeout_ms = DEFAULT_TIMEOUT_MS};
	const char *dir = NULL, *verb;
	bool do_purge = false, up;
	int c, code;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		case OPT_MASTERS:
			if (args_parse_uint(optarg, LOCAL_MAX, &o.masters) != 0 || o.masters == 0)
				return cli_usage_error("local", "--masters must be a number from 1 to %d, not '%s'",
						       LOCAL_MAX, optarg);
			o.masters_given = true;
			break;
		case OPT_DIR:
			dir = optarg;
			break;
		case OPT_BASE_PORT:
			if (args_parse_uint(optarg, 65535, &o.base_port) != 0 || o.base_port < 1024)
				return cli_usage_error("local", "--base-port must be a port from 1024 to 65535, not '%s'",
						       optarg);
			break;
		case OPT_CAPSTAND:
			o.capstand = optarg;
			break;
		case OPT_WAIT:
			if (args_parse_duration_ms(optarg, &o.timeout_ms) != 0 || o.timeout_ms == 0)
				return cli_usage_error("local", "invalid --timeout '%s'", optarg);
			break;
		case OPT_PURGE:
			do_purge = true;
			break;
		case OPT_HOLLOW_NODES:
			if (args_parse_uint(optarg, HOLLOW_MAX, &o.hollow_nodes) != 0)
				return cli_usage_error("local", "--hollow-nodes must be a number from 0 to %d, not '%s'",
						       HOLLOW_MAX, optarg);
			break;
		case OPT_NODES:
			if (args_parse_uint(optarg, NODES_MAX, &o.nodes) != 0)
				return cli_usage_error("local", "--nodes must be a number from 0 to %d, not '%s'",
						       NODES_MAX, optarg);
			break;
		default:
			code = cli_global_option(g, "local", c, argv);
			if (code != CLI_EXIT_OK)
				return code;
		}
	}
	if (optind >= argc)
		return cli_usage_error("local", "missing verb (up, down)");
	verb = argv[optind];
	if (argc - optind > 1)
		return cli_usage_error("local", "unexpected argument '%s'", argv[optind + 1]);
	if (strcmp(verb, "up") == 0)
		up = true;
	else if (strcmp(verb, "down") == 0)
		up = false;
	else
		return cli_usage_error("local", "unknown verb '%s'", verb);
	if (dir == NULL || dir[0] == '\0')
		return cli_usage_error("local", "--dir DIR is required");
	if (up && do_purge)
		return cli_usage_error("local", "--purge applies to 'local down' only");
	if (!up && (o.masters_given || o.base_port != 0 || o.capstand != NULL || o.hollow_nodes != 0 ||
		    o.nodes != 0))
		return cli_usage_error("local", "--masters, --base-port, --capstand, --hollow-nodes and --nodes apply to 'local up' only");
	return up ? local_up(&o, dir) : local_down(dir, do_purge);
}
