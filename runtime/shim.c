/* capstan-shim: runs one container under runc and outlives capstan-node.
 *
 * capstan-shim --runc RUNC --root ROOT --bundle DIR --id ID --log FILE
 *              [--log-max-size N] [--log-max-files N] --exit-notify FILE
 *
 * Happy path: the launcher (the process capstan-node spawned) forks the
 * shim and waits on a pipe. The shim leaves the session, points its own
 * stdio at /dev/null (so capstan-node's pipes close), becomes a child
 * subreaper, runs `runc create` with the container's stdout/stderr on two
 * pipes it keeps, then `runc start`; it tells the launcher "started" and
 * the launcher exits 0. runc create's exit reparents the container's init
 * to the shim, which copies the pipes into the CRI log file until the init
 * exits, then writes DIR/exit (JSON, see struct rt_exit in runtime.h) and
 * creates the --exit-notify file.
 * Failures: runc create/start failing is reported by the launcher (exit 1,
 * runc's message on stderr) and recorded in DIR/exit with exit code 128.
 * If the shim itself dies the container keeps running and its exit code is
 * lost (no exit file); output then blocks once the pipe buffer fills.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime.h"

static const char *o_runc = "runc", *o_root, *o_bundle, *o_id, *o_log, *o_notify;
static unsigned long long o_max_size = 10u << 20;
static unsigned o_max_files = 5;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char *path_in_bundle(const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", o_bundle, name) < 0)
		exit(1);
	return p;
}

static void write_atomic(const char *path, const char *text)
{
	char *tmp;
	int fd;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		size_t len = strlen(text);

		if (write(fd, text, len) == (ssize_t)len && fsync(fd) == 0 && close(fd) == 0)
			rename(tmp, path);
		else
			unlink(tmp);
	}
	free(tmp);
}

/* The JSON string body of @s (quotes not included), escaped. */
static void json_escape(const char *s, char *out, size_t size)
{
	size_t o = 0;

	for (; *s && o + 7 < size; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)snprintf(out + o, size - o, "\\u%04x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

static void write_exit(int code, int sig, int64_t started, bool oom, const char *error)
{
	char esc[1024], text[1400];
	char *p = path_in_bundle("exit");

	json_escape(error != NULL ? error : "", esc, sizeof(esc));
	snprintf(text, sizeof(text),
		 "{\"exitCode\":%d,\"signal\":%d,\"startedAt\":%lld,\"finishedAt\":%lld,"
		 "\"oomKilled\":%s,\"error\":\"%s\"}\n",
		 code, sig, (long long)started, (long long)now_ns(), oom ? "true" : "false", esc);
	write_atomic(p, text);
	free(p);
	write_atomic(o_notify, "");
}

/* Forks and execs runc with @args (after --root/--log), stdio as given. */
static pid_t run_runc(const char *const *args, int in, int out, int err)
{
	const char *argv[16];
	char *runc_log = path_in_bundle("runc.log");
	size_t n = 0;
	pid_t pid;

	argv[n++] = o_runc;
	argv[n++] = "--root";
	argv[n++] = o_root;
	argv[n++] = "--log";
	argv[n++] = runc_log;
	for (size_t i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		sigset_t all;

		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
			_exit(127);
		execvp(o_runc, (char *const *)argv);
		dprintf(2, "cannot run %s: %s\n", o_runc, strerror(errno));
		_exit(127);
	}
	free(runc_log);
	return pid;
}

/* Reads what is left in @fd (non-blocking) into @buf, trimmed to a line. */
static void slurp(int fd, char *buf, size_t size)
{
	size_t len = strlen(buf);
	ssize_t n;

	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (len + 1 < size && (n = read(fd, buf + len, size - len - 1)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' '))
		buf[--len] = '\0';
}

/* runc's logrus line "time=... level=error msg=\"...\"" -> the message. */
static void runc_message(char *buf)
{
	char *m = strstr(buf, "msg=\"");
	char *e;

	if (m == NULL)
		return;
	m += 5;
	for (e = m; *e && !(*e == '"' && e[-1] != '\\'); e++)
		;
	memmove(buf, m, (size_t)(e - m));
	buf[e - m] = '\0';
}

static int wait_status(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return st;
}

static bool oom_killed(void)
{
	char *cfgp = path_in_bundle("config.json"), buf[65536], path[600], *p, *e;
	FILE *f;
	size_t n;
	bool oom = false;

	f = fopen(cfgp, "re");
	free(cfgp);
	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strstr(buf, "\"cgroupsPath\":\"");
	if (p == NULL)
		return false;
	p += 15;
	e = strchr(p, '"');
	if (e == NULL || e - p > 500)
		return false;
	*e = '\0';
	snprintf(path, sizeof(path), "/sys/fs/cgroup/memory/%s/memory.oom_control", p);
	f = fopen(path, "re");
	if (f == NULL)
		return false;
	while (fgets(buf, sizeof(buf), f) != NULL)
		if (strncmp(buf, "oom_kill ", 9) == 0 && atol(buf + 9) > 0)
			oom = true;
	fclose(f);
	return oom;
}

static int read_pid(const char *path, pid_t *ret)
{
	char buf[32];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EINVAL;
	buf[n] = '\0';
	*ret = (pid_t)atoi(buf);
	return *ret > 0 ? 0 : -EINVAL;
}

static void report(int fd, const char *status, const char *msg)
{
	char buf[1100];
	int n = snprintf(buf, sizeof(buf), "%s%s", status, msg != NULL ? msg : "");

	if (n > 0 && write(fd, buf, (size_t)n) < 0)
		return;
}

static int shim(int sync_fd)
{
	int devnull, out[2], err[2], sp[2], sfd;
	char msg[1024] = "";
	char *pidfile;
	struct rt_logw *log = NULL;
	sigset_t mask;
	pid_t create, start, cpid = 0;
	int st, rv, code = 0, sig = 0;
	bool exited = false, open_out = true, open_err = true;
	int64_t started, deadline = 0;

	setsid();
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0) {
		report(sync_fd, "1", "cannot open /dev/null");
		return 1;
	}
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	{
		/* A retried start under the same id must not see the old end. */
		char *p = path_in_bundle("exit");

		unlink(p);
		unlink(o_notify);
		free(p);
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	{
		char *p = path_in_bundle("shim.pid"), num[32];

		snprintf(num, sizeof(num), "%d\n", (int)getpid());
		write_atomic(p, num);
		free(p);
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	rv = rt_logw_open(o_log, o_max_size, o_max_files, &log);
	if (sfd < 0 || rv != 0) {
		snprintf(msg, sizeof(msg), "cannot open log %s: %s", o_log, strerror(-rv));
		goto fail;
	}
	if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || pipe2(sp, O_CLOEXEC) != 0) {
		snprintf(msg, sizeof(msg), "pipe: %s", strerror(errno));
		goto fail;
	}
	pidfile = path_in_bundle("pid");
	{
		const char *a[] = {"create", "--bundle", o_bundle, "--pid-file", pidfile, o_id, NULL};

		create = run_runc(a, devnull, out[1], err[1]);
	}
	close(out[1]);
	close(err[1]);
	st = create > 0 ? wait_status(create) : -1;
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		slurp(err[0], msg, sizeof(msg));
		slurp(out[0], msg, sizeof(msg));
		runc_message(msg);
		if (msg[0] == '\0')
			snprintf(msg, sizeof(msg), "runc create failed");
		free(pidfile);
		goto fail;
	}
	if (read_pid(pidfile, &cpid) != 0) {
		snprintf(msg, sizeof(msg), "runc create left no pid file");
		free(pidfile);
		goto fail;
	}
	free(pidfile);
	{
		const char *a[] = {"start", o_id, NULL};

		start = run_runc(a, devnull, sp[1], sp[1]);
	}
	close(sp[1]);
	st = start > 0 ? wait_status(start) : -1;
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		slurp(sp[0], msg, sizeof(msg));
		runc_message(msg);
		if (msg[0] == '\0')
			snprintf(msg, sizeof(msg), "runc start failed");
		goto fail;
	}
	close(sp[0]);
	started = now_ns();
	report(sync_fd, "0", NULL);
	close(sync_fd);

	for (;;) {
		struct pollfd pf[3] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {sfd, POLLIN, 0}};
		int timeout = -1;
		char buf[65536];

		if (exited) {
			int64_t left = (deadline - now_ns()) / 1000000;

			if ((!open_out && !open_err) || left <= 0)
				break;
			timeout = (int)left;
		}
		if (!open_out)
			pf[0].fd = -1;
		if (!open_err)
			pf[1].fd = -1;
		if (poll(pf, 3, timeout) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (pf[i].fd < 0 || pf[i].revents == 0)
				continue;
			n = read(pf[i].fd, buf, sizeof(buf));
			if (n > 0) {
				rt_logw_write(log, i + 1, buf, (size_t)n, now_ns());
			} else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
				if (i == 0)
					open_out = false;
				else
					open_err = false;
			}
		}
		if (pf[2].revents != 0) {
			struct signalfd_siginfo si;
			pid_t p;

			while (read(sfd, &si, sizeof(si)) > 0)
				;
			while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
				if (p != cpid)
					continue; /* an orphan we adopted as subreaper */
				exited = true;
				if (WIFSIGNALED(st)) {
					sig = WTERMSIG(st);
					code = 128 + sig;
				} else {
					code = WEXITSTATUS(st);
				}
				/* The pid namespace dies with init: EOF follows soon. */
				deadline = now_ns() + 2000000000LL;
			}
		}
	}
	rt_logw_close(log);
	write_exit(code, sig, started, sig == SIGKILL && oom_killed(), NULL);
	return 0;
fail:
	rt_logw_close(log);
	write_exit(128, 0, 0, false, msg);
	report(sync_fd, "1", msg);
	return 1;
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
	    {"runc", required_argument, NULL, 'r'},
	    {"root", required_argument, NULL, 'R'},
	    {"bundle", required_argument, NULL, 'b'},
	    {"id", required_argument, NULL, 'i'},
	    {"log", required_argument, NULL, 'l'},
	    {"log-max-size", required_argument, NULL, 's'},
	    {"log-max-files", required_argument, NULL, 'f'},
	    {"exit-notify", required_argument, NULL, 'n'},
	    {NULL, 0, NULL, 0},
	};
	int c, sync[2];
	char buf[1100];
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (c) {
		case 'r':
			o_runc = optarg;
			break;
		case 'R':
			o_root = optarg;
			break;
		case 'b':
			o_bundle = optarg;
			break;
		case 'i':
			o_id = optarg;
			break;
		case 'l':
			o_log = optarg;
			break;
		case 's':
			o_max_size = strtoull(optarg, NULL, 10);
			break;
		case 'f':
			o_max_files = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			o_notify = optarg;
			break;
		default:
			return 2;
		}
	}
	if (o_root == NULL || o_bundle == NULL || o_id == NULL || o_log == NULL ||
	    o_notify == NULL) {
		fprintf(stderr, "capstan-shim: --root, --bundle, --id, --log and --exit-notify "
				"are required\n");
		return 2;
	}
	if (pipe2(sync, O_CLOEXEC) != 0) {
		perror("capstan-shim: pipe");
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		perror("capstan-shim: fork");
		return 1;
	}
	if (pid == 0) {
		close(sync[0]);
		_exit(shim(sync[1]));
	}
	close(sync[1]);
	while (len + 1 < sizeof(buf) && (n = read(sync[0], buf + len, sizeof(buf) - 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (len > 0 && buf[0] == '0')
		return 0;
	fprintf(stderr, "%s\n", len > 1 ? buf + 1 : "capstan-shim: the shim died");
	return 1;
}
