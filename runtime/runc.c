/* The runtime context, child processes on the loop (rt_spawn), and runc:
 * argv builders, output parsers, the container lifecycle through
 * capstan-shim, exit files and exec.
 *
 * rt_spawn's happy path: uv_spawn with three pipes; write stdin and close
 * it; read stdout/stderr to EOF; the exit callback records the status;
 * when the process has exited and both pipes reached EOF (or 2 s after the
 * exit, for a child that left a descendant holding a pipe), every handle
 * is closed and the callback runs from the last close callback. A timeout
 * sends SIGKILL and reports timed_out.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/internal.h"

#ifndef CAPSTAN_PKGLIBEXECDIR
#define CAPSTAN_PKGLIBEXECDIR "/usr/libexec/capstan"
#endif

#define OUTPUT_CAP (1u << 20)

/* ------------------------------------------------------------------ setup */

static char *dup_or(const char *v, const char *def)
{
	return strdup(v != NULL && *v != '\0' ? v : def);
}

static char *find_shim(const char *configured)
{
	char self[PATH_MAX], *dir, *p;
	const char *env = getenv("CAPSTAN_SHIM");
	ssize_t n;
	static const char *const rel[] = {"runtime/capstan-shim", "../runtime/capstan-shim",
					  "../../runtime/capstan-shim", "capstan-shim"};

	if (configured != NULL)
		return strdup(configured);
	if (env != NULL && *env != '\0')
		return strdup(env);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		dir = dirname(self);
		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			p = rt__printf("%s/%s", dir, rel[i]);
			if (p != NULL && access(p, X_OK) == 0)
				return p;
			free(p);
		}
	}
	return strdup(CAPSTAN_PKGLIBEXECDIR "/capstan-shim");
}

/* Mounts a tiny overlay to learn whether this kernel and fs allow it. */
static bool probe_overlay(const char *state_dir)
{
	char *base = rt__printf("%s/tmp/overlay-probe", state_dir);
	char *l = rt__printf("%s/l", base), *u = rt__printf("%s/u", base),
	     *w = rt__printf("%s/w", base), *m = rt__printf("%s/m", base), *opts = NULL;
	bool ok = false;

	if (base == NULL || l == NULL || u == NULL || w == NULL || m == NULL)
		goto out;
	rt__rm_rf(base);
	if (rt__mkdir_p(l, 0755) != 0 || rt__mkdir_p(u, 0755) != 0 || rt__mkdir_p(w, 0755) != 0 ||
	    rt__mkdir_p(m, 0755) != 0)
		goto out;
	opts = rt__printf("lowerdir=%s,upperdir=%s,workdir=%s", l, u, w);
	if (opts != NULL && mount("overlay", m, "overlay", 0, opts) == 0) {
		ok = true;
		umount2(m, MNT_DETACH);
	}
	rt__rm_rf(base);
out:
	free(opts);
	free(m);
	free(w);
	free(u);
	free(l);
	free(base);
	return ok;
}

int rt__sandbox_init(struct rt *rt);

int rt_new(uv_loop_t *loop, const struct rt_config *config, struct rt **ret)
{
	struct rt_config def = {0};
	struct rt *rt;
	int rv;
	const char *sub[] = {"images/blobs/sha256", "images/layers/sha256", "images/tmp",
			     "containers", "exits", "cni", "tmp"};

	if (config == NULL)
		config = &def;
	rt = calloc(1, sizeof(*rt));
	if (rt == NULL)
		return -ENOMEM;
	rt->loop = loop;
	rt->state_dir = dup_or(config->state_dir, "/var/lib/capstan/node");
	rt->run_dir = dup_or(config->run_dir, "/run/capstan");
	rt->runc = dup_or(config->runc, "runc");
	rt->shim = find_shim(config->shim);
	rt->cni_bin_dir = dup_or(config->cni_bin_dir, "/usr/lib/cni");
	rt->pod_subnet = dup_or(config->pod_subnet, "10.88.0.0/16");
	rt->bridge = dup_or(config->bridge, "capstan0");
	rt->cgroup_parent = dup_or(config->cgroup_parent, "/capstan");
	rt->log_max_size = config->log_max_size != 0 ? config->log_max_size : 10u << 20;
	rt->log_max_files = config->log_max_files != 0 ? config->log_max_files : 5;
	if (rt->state_dir == NULL || rt->run_dir == NULL || rt->runc == NULL || rt->shim == NULL ||
	    rt->cni_bin_dir == NULL || rt->pod_subnet == NULL || rt->bridge == NULL ||
	    rt->cgroup_parent == NULL) {
		rv = -ENOMEM;
		goto err;
	}
	rt->runc_root = rt__printf("%s/runc", rt->run_dir);
	rt->cni_conf = config->cni_conf != NULL
			   ? strdup(config->cni_conf)
			   : rt__printf("%s/cni/capstan.conflist", rt->state_dir);
	if (rt->runc_root == NULL || rt->cni_conf == NULL) {
		rv = -ENOMEM;
		goto err;
	}
	if (uv_mutex_init(&rt->image_lock) != 0) {
		rv = -ENOMEM;
		goto err;
	}
	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		char *p = rt__printf("%s/%s", rt->state_dir, sub[i]);

		rv = p != NULL ? rt__mkdir_p(p, 0700) : -ENOMEM;
		free(p);
		if (rv != 0)
			goto err_lock;
	}
	if ((rv = rt__mkdir_p(rt->runc_root, 0700)) != 0)
		goto err_lock;
	rt->overlay = probe_overlay(rt->state_dir);
	if ((rv = rt__sandbox_init(rt)) != 0)
		goto err_lock;
	*ret = rt;
	return 0;
err_lock:
	uv_mutex_destroy(&rt->image_lock);
err:
	rt->exit_watch = NULL;
	free(rt->state_dir);
	free(rt->run_dir);
	free(rt->runc);
	free(rt->runc_root);
	free(rt->shim);
	free(rt->cni_bin_dir);
	free(rt->cni_conf);
	free(rt->pod_subnet);
	free(rt->bridge);
	free(rt->cgroup_parent);
	free(rt);
	return rv;
}

void rt_free(struct rt *rt)
{
	if (rt == NULL)
		return;
	uv_mutex_destroy(&rt->image_lock);
	free(rt->state_dir);
	free(rt->run_dir);
	free(rt->runc);
	free(rt->runc_root);
	free(rt->shim);
	free(rt->cni_bin_dir);
	free(rt->cni_conf);
	free(rt->pod_subnet);
	free(rt->bridge);
	free(rt->cgroup_parent);
	free(rt);
}

unsigned rt_pending(const struct rt *rt)
{
	return rt->pending + (rt->exit_watch != NULL ? 1u : 0u);
}

const char *rt_state_dir(const struct rt *rt)
{
	return rt->state_dir;
}

const char *rt_run_dir(const struct rt *rt)
{
	return rt->run_dir;
}

bool rt_overlay_supported(const struct rt *rt)
{
	return rt->overlay;
}

/* ------------------------------------------------------------------ spawn */

struct spawn {
	struct rt *rt;
	uv_process_t proc;
	uv_pipe_t in, out, err;
	uv_timer_t timer;
	uv_write_t wreq;
	char *in_buf;
	size_t in_len;
	char *obuf, *ebuf;
	size_t olen, elen, ocap, ecap;
	int handles;    /* open handles */
	int streams;    /* stdout/stderr not at EOF */
	bool exited;
	bool finishing;
	bool failed;    /* uv_spawn failed: no callback */
	bool timed_out;
	int64_t status;
	int term_signal;
	rt_result_cb cb;
	void *data;
};

static void spawn_free(struct spawn *s)
{
	free(s->in_buf);
	free(s->obuf);
	free(s->ebuf);
	free(s);
}

static void spawn_close_cb(uv_handle_t *h)
{
	struct spawn *s = h->data;
	struct rt_result res;

	if (--s->handles > 0)
		return;
	s->rt->pending--;
	if (!s->failed) {
		res.exit_status = s->status;
		res.term_signal = s->term_signal;
		res.timed_out = s->timed_out;
		res.out = s->obuf != NULL ? s->obuf : (char *)"";
		res.out_len = s->olen;
		res.err = s->ebuf != NULL ? s->ebuf : (char *)"";
		res.err_len = s->elen;
		s->cb(s->data, 0, &res);
	}
	spawn_free(s);
}

static void close_if(uv_handle_t *h)
{
	if (h->data != NULL && !uv_is_closing(h))
		uv_close(h, spawn_close_cb);
}

static void spawn_finish(struct spawn *s)
{
	if (s->finishing)
		return;
	s->finishing = true;
	close_if((uv_handle_t *)&s->proc);
	close_if((uv_handle_t *)&s->in);
	close_if((uv_handle_t *)&s->out);
	close_if((uv_handle_t *)&s->err);
	close_if((uv_handle_t *)&s->timer);
}

static void maybe_finish(struct spawn *s)
{
	if (s->exited && s->streams == 0)
		spawn_finish(s);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct spawn *s = h->data;
	bool is_out = h == (uv_handle_t *)&s->out;
	char **b = is_out ? &s->obuf : &s->ebuf;
	size_t *len = is_out ? &s->olen : &s->elen, *cap = is_out ? &s->ocap : &s->ecap;

	(void)hint;
	if (*cap - *len < 4096 && *cap < OUTPUT_CAP + 65536) {
		char *nb = realloc(*b, *cap + 65536);

		if (nb != NULL) {
			*b = nb;
			*cap += 65536;
		}
	}
	if (*b == NULL || *cap - *len <= 1) {
		buf->base = NULL;
		buf->len = 0;
		return;
	}
	buf->base = *b + *len;
	buf->len = *cap - *len - 1;
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct spawn *s = st->data;
	bool is_out = st == (uv_stream_t *)&s->out;
	size_t *len = is_out ? &s->olen : &s->elen;
	char *b = is_out ? s->obuf : s->ebuf;

	(void)buf;
	if (n > 0) {
		/* Past the cap, output is read and dropped. */
		if (*len + (size_t)n <= OUTPUT_CAP)
			*len += (size_t)n;
		b[*len] = '\0';
		return;
	}
	if (n == 0)
		return;
	uv_read_stop(st);
	s->streams--;
	maybe_finish(s);
}

static void grace_cb(uv_timer_t *t)
{
	spawn_finish(t->data);
}

static void exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct spawn *s = p->data;

	s->exited = true;
	s->status = status;
	s->term_signal = sig;
	if (s->streams > 0 && !s->finishing) {
		/* A descendant may hold the pipes: give it 2 s. */
		uv_timer_stop(&s->timer);
		uv_timer_start(&s->timer, grace_cb, 2000, 0);
	}
	maybe_finish(s);
}

static void timeout_cb(uv_timer_t *t)
{
	struct spawn *s = t->data;

	if (s->exited) {
		spawn_finish(s);
		return;
	}
	s->timed_out = true;
	uv_process_kill(&s->proc, SIGKILL);
}

static void write_cb(uv_write_t *req, int status)
{
	struct spawn *s = req->data;

	(void)status;
	close_if((uv_handle_t *)&s->in);
}

int rt_spawn(struct rt *rt, const char *const *argv, const char *const *env, const void *in,
	     size_t in_len, unsigned timeout_ms, rt_result_cb cb, void *data)
{
	struct spawn *s = calloc(1, sizeof(*s));
	uv_process_options_t opts = {0};
	uv_stdio_container_t stdio[3];
	int rv;

	if (s == NULL)
		return -ENOMEM;
	s->rt = rt;
	s->cb = cb;
	s->data = data;
	if (in_len > 0) {
		s->in_buf = malloc(in_len);
		if (s->in_buf == NULL) {
			free(s);
			return -ENOMEM;
		}
		memcpy(s->in_buf, in, in_len);
		s->in_len = in_len;
	}
	uv_pipe_init(rt->loop, &s->in, 0);
	uv_pipe_init(rt->loop, &s->out, 0);
	uv_pipe_init(rt->loop, &s->err, 0);
	uv_timer_init(rt->loop, &s->timer);
	s->in.data = s->out.data = s->err.data = s->timer.data = s;
	s->handles = 4;
	stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
	stdio[0].data.stream = (uv_stream_t *)&s->in;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&s->out;
	stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[2].data.stream = (uv_stream_t *)&s->err;
	opts.file = argv[0];
	opts.args = (char **)argv;
	opts.env = (char **)env;
	opts.stdio = stdio;
	opts.stdio_count = 3;
	opts.exit_cb = exit_cb;
	s->proc.data = s;
	rt->pending++;
	rv = uv_spawn(rt->loop, &s->proc, &opts);
	if (rv != 0) {
		/* The process handle still needs closing after a failed spawn. */
		s->handles++;
		s->failed = true;
		s->finishing = true;
		uv_close((uv_handle_t *)&s->proc, spawn_close_cb);
		uv_close((uv_handle_t *)&s->in, spawn_close_cb);
		uv_close((uv_handle_t *)&s->out, spawn_close_cb);
		uv_close((uv_handle_t *)&s->err, spawn_close_cb);
		uv_close((uv_handle_t *)&s->timer, spawn_close_cb);
		return rv;
	}
	s->handles++;
	s->streams = 2;
	uv_read_start((uv_stream_t *)&s->out, alloc_cb, read_cb);
	uv_read_start((uv_stream_t *)&s->err, alloc_cb, read_cb);
	if (s->in_len > 0) {
		uv_buf_t b = uv_buf_init(s->in_buf, (unsigned)s->in_len);

		s->wreq.data = s;
		if (uv_write(&s->wreq, (uv_stream_t *)&s->in, &b, 1, write_cb) != 0)
			close_if((uv_handle_t *)&s->in);
	} else {
		close_if((uv_handle_t *)&s->in);
	}
	if (timeout_ms > 0)
		uv_timer_start(&s->timer, timeout_cb, timeout_ms, 0);
	return 0;
}

/* ------------------------------------------------------------- container id */

static bool id_chars_ok(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

int rt_container_id(char *buf, size_t size, const char *pod_uid, const char *name,
		    unsigned restart)
{
	int n;

	if (!id_chars_ok(pod_uid) || !id_chars_ok(name) || strlen(pod_uid) != 36 ||
	    strlen(name) > 63)
		return -EINVAL;
	n = snprintf(buf, size, "capstan-%s-%s-%u", pod_uid, name, restart);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return 0;
}

int rt_container_id_parse(const char *id, char pod_uid[37], char name[64], unsigned *ret_restart)
{
	const char *last, *p;
	size_t nlen;
	char *end;
	unsigned long r;

	if (strncmp(id, "capstan-", 8) != 0 || strlen(id) < 8 + 36 + 4)
		return -EINVAL;
	p = id + 8;
	if (p[36] != '-')
		return -EINVAL;
	last = strrchr(p + 37, '-');
	if (last == NULL || last == p + 37 || !isdigit((unsigned char)last[1]))
		return -EINVAL;
	r = strtoul(last + 1, &end, 10);
	if (*end != '\0' || r > UINT32_MAX)
		return -EINVAL;
	nlen = (size_t)(last - (p + 37));
	if (nlen > 63)
		return -EINVAL;
	memcpy(pod_uid, p, 36);
	pod_uid[36] = '\0';
	memcpy(name, p + 37, nlen);
	name[nlen] = '\0';
	*ret_restart = (unsigned)r;
	return 0;
}

/* ------------------------------------------------------------------- runc */

static char **argv_new(const struct rt *rt, const char *const *rest, size_t n)
{
	char **v = calloc(n + 4, sizeof(*v));

	if (v == NULL)
		return NULL;
	v[0] = strdup(rt->runc);
	v[1] = strdup("--root");
	v[2] = strdup(rt->runc_root);
	for (size_t i = 0; i < n; i++)
		v[3 + i] = rest[i] != NULL ? strdup(rest[i]) : NULL;
	for (size_t i = 0; i < n + 3; i++)
		if (v[i] == NULL) {
			for (size_t k = 0; k < n + 3; k++)
				free(v[k]);
			free(v);
			return NULL;
		}
	return v;
}

char **rt_runc_argv_state(const struct rt *rt, const char *id)
{
	const char *r[] = {"state", id};

	return argv_new(rt, r, 2);
}

char **rt_runc_argv_list(const struct rt *rt)
{
	const char *r[] = {"list", "--format", "json"};

	return argv_new(rt, r, 3);
}

char **rt_runc_argv_kill(const struct rt *rt, const char *id, int signal, bool all)
{
	char sig[16];
	const char *r[] = {"kill", all ? "--all" : id, all ? id : sig, sig};

	snprintf(sig, sizeof(sig), "%d", signal);
	return argv_new(rt, r, all ? 4 : 3);
}

char **rt_runc_argv_delete(const struct rt *rt, const char *id, bool force)
{
	const char *r[] = {"delete", force ? "--force" : id, id};

	return argv_new(rt, r, force ? 3 : 2);
}

char **rt_runc_argv_exec(const struct rt *rt, const char *id, const struct rt_exec_opts *opts)
{
	const char **r;
	char user[32];
	size_t n = 0, cap;
	char **v;

	if (opts->tty || opts->args == NULL || opts->args[0] == NULL)
		return NULL;
	cap = 8 + 2 * rt__strv_len(opts->env) + rt__strv_len(opts->args);
	r = calloc(cap, sizeof(*r));
	if (r == NULL)
		return NULL;
	r[n++] = "exec";
	if (opts->set_user) {
		snprintf(user, sizeof(user), "%u:%u", opts->uid, opts->gid);
		r[n++] = "--user";
		r[n++] = user;
	}
	if (opts->cwd != NULL) {
		r[n++] = "--cwd";
		r[n++] = opts->cwd;
	}
	for (size_t i = 0; opts->env != NULL && opts->env[i] != NULL; i++) {
		r[n++] = "--env";
		r[n++] = opts->env[i];
	}
	r[n++] = id;
	for (size_t i = 0; opts->args[i] != NULL; i++)
		r[n++] = opts->args[i];
	v = argv_new(rt, r, n);
	free(r);
	return v;
}

void rt_state_clear(struct rt_state *s)
{
	free(s->id);
	free(s->bundle);
	memset(s, 0, sizeof(*s));
}

static enum rt_status parse_status(const char *s)
{
	static const char *const names[] = {"", "creating", "created", "running", "paused",
					    "stopped"};

	for (int i = 1; s != NULL && i < 6; i++)
		if (strcmp(s, names[i]) == 0)
			return (enum rt_status)i;
	return RT_STATUS_UNKNOWN;
}

static int state_from_json(const json_t *o, struct rt_state *ret)
{
	const char *id = json_string_value(json_object_get(o, "id"));
	const char *bundle = json_string_value(json_object_get(o, "bundle"));
	const char *created = json_string_value(json_object_get(o, "created"));
	struct rt_state s = {0};

	if (id == NULL)
		return -EINVAL;
	s.id = strdup(id);
	s.bundle = bundle != NULL ? strdup(bundle) : NULL;
	if (s.id == NULL || (bundle != NULL && s.bundle == NULL)) {
		rt_state_clear(&s);
		return -ENOMEM;
	}
	s.status = parse_status(json_string_value(json_object_get(o, "status")));
	s.pid = (int)json_integer_value(json_object_get(o, "pid"));
	if (created != NULL && rt_log_parse_time(created, strlen(created), &s.created) != 0)
		s.created = 0;
	*ret = s;
	return 0;
}

int rt_runc_parse_state(const char *json, size_t len, struct rt_state *ret)
{
	json_t *o = json_loadb(json, len, 0, NULL);
	int rv = json_is_object(o) ? state_from_json(o, ret) : -EINVAL;

	json_decref(o);
	return rv;
}

int rt_runc_parse_list(const char *json, size_t len, struct rt_state **ret, size_t *ret_n)
{
	json_t *a = json_loadb(json, len, JSON_DECODE_ANY, NULL), *v;
	struct rt_state *out = NULL;
	size_t i, n = 0;
	int rv = 0;

	if (json_is_null(a)) { /* runc prints null for no containers */
		*ret = NULL;
		*ret_n = 0;
		json_decref(a);
		return 0;
	}
	if (!json_is_array(a)) {
		json_decref(a);
		return -EINVAL;
	}
	out = calloc(json_array_size(a) + 1, sizeof(*out));
	if (out == NULL) {
		json_decref(a);
		return -ENOMEM;
	}
	json_array_foreach (a, i, v) {
		rv = state_from_json(v, &out[n]);
		if (rv != 0)
			break;
		n++;
	}
	json_decref(a);
	if (rv != 0) {
		for (i = 0; i < n; i++)
			rt_state_clear(&out[i]);
		free(out);
		return rv;
	}
	*ret = out;
	*ret_n = n;
	return 0;
}

/* --------------------------------------------------------------- lifecycle */

/* One line of runc's complaint: its stderr, with runc's logrus wrapping
 * (time="..." level=error msg="...") reduced to the message. */
static char *runc_msg(const struct rt_result *res)
{
	const char *s = res->err_len > 0 ? res->err : res->out;
	const char *m = strstr(s, "msg=\"");
	char *out;
	size_t n;

	if (m != NULL) {
		const char *e;

		m += 5;
		for (e = m; *e && !(*e == '"' && e[-1] != '\\'); e++)
			;
		n = (size_t)(e - m);
	} else {
		m = s;
		n = strcspn(s, "\n");
		while (n > 0 && isspace((unsigned char)m[n - 1]))
			n--;
	}
	out = malloc(n + 1);
	if (out != NULL) {
		memcpy(out, m, n);
		out[n] = '\0';
	}
	return out;
}

static bool says_missing(const struct rt_result *res)
{
	return strstr(res->err, "does not exist") != NULL ||
	       strstr(res->err, "not exist") != NULL || strstr(res->err, "not found") != NULL ||
	       strstr(res->err, "container not running") != NULL ||
	       strstr(res->err, "process already finished") != NULL;
}

struct op {
	struct rt *rt;
	int kind;
	rt_done_cb done;
	rt_state_cb state;
	rt_list_cb list;
	void *data;
};
enum { OP_DONE, OP_DONE_MISSING_OK, OP_DONE_MISSING_ENOENT, OP_STATE, OP_LIST };

static void op_cb(void *data, int err, const struct rt_result *res)
{
	struct op *op = data;
	char *msg = NULL;

	if (err == 0 && (res->exit_status != 0 || res->term_signal != 0)) {
		msg = runc_msg(res);
		if (res->timed_out)
			err = -ETIMEDOUT;
		else if (says_missing(res))
			err = op->kind == OP_DONE_MISSING_OK ? 0 : -ENOENT;
		else
			err = -EIO;
	}
	switch (op->kind) {
	case OP_STATE: {
		struct rt_state st = {0};

		if (err == 0)
			err = rt_runc_parse_state(res->out, res->out_len, &st);
		op->state(op->data, err, err == 0 ? &st : NULL);
		rt_state_clear(&st);
		break;
	}
	case OP_LIST: {
		struct rt_state *sts = NULL;
		size_t n = 0;

		if (err == 0)
			err = rt_runc_parse_list(res->out, res->out_len, &sts, &n);
		op->list(op->data, err, sts, n);
		for (size_t i = 0; i < n; i++)
			rt_state_clear(&sts[i]);
		free(sts);
		break;
	}
	default:
		op->done(op->data, err, err != 0 ? msg : NULL);
	}
	free(msg);
	free(op);
}

static int run_op(struct rt *rt, char **argv, struct op *op, unsigned timeout_ms)
{
	int rv;

	if (argv == NULL || op == NULL) {
		rt_strv_free(argv);
		free(op);
		return -ENOMEM;
	}
	op->rt = rt;
	rv = rt_spawn(rt, (const char *const *)argv, NULL, NULL, 0, timeout_ms, op_cb, op);
	rt_strv_free(argv);
	if (rv != 0)
		free(op);
	return rv;
}

static struct op *op_new(int kind, void *data)
{
	struct op *op = calloc(1, sizeof(*op));

	if (op != NULL) {
		op->kind = kind;
		op->data = data;
	}
	return op;
}

int rt_container_start(struct rt *rt, const char *id, const char *log_path, rt_done_cb cb,
		       void *data)
{
	char *dir = rt_bundle_dir(rt, id), *notify = rt__printf("%s/exits/%s", rt->state_dir, id);
	char size[32], files[16];
	struct op *op = op_new(OP_DONE, data);
	char **argv = NULL;

	snprintf(size, sizeof(size), "%llu", (unsigned long long)rt->log_max_size);
	snprintf(files, sizeof(files), "%u", rt->log_max_files);
	if (dir != NULL && notify != NULL) {
		const char *v[] = {rt->shim,	  "--runc",	  rt->runc,	     "--root",
				   rt->runc_root, "--bundle",	  dir,		     "--id",
				   id,		  "--log",	  log_path,	     "--log-max-size",
				   size,	  "--log-max-files", files,	     "--exit-notify",
				   notify,	  NULL};

		if (rt__strv_dup(v, &argv) != 0)
			argv = NULL;
	}
	free(dir);
	free(notify);
	if (op != NULL)
		op->done = cb;
	/* The shim may take long: runc create mounts and sets up cgroups. */
	return run_op(rt, argv, op, 120000);
}

int rt_container_kill(struct rt *rt, const char *id, int signal, bool all, rt_done_cb cb,
		      void *data)
{
	struct op *op = op_new(OP_DONE_MISSING_ENOENT, data);

	if (op != NULL)
		op->done = cb;
	return run_op(rt, rt_runc_argv_kill(rt, id, signal, all), op, 30000);
}

int rt_container_delete(struct rt *rt, const char *id, bool force, rt_done_cb cb, void *data)
{
	struct op *op = op_new(OP_DONE_MISSING_OK, data);

	if (op != NULL)
		op->done = cb;
	return run_op(rt, rt_runc_argv_delete(rt, id, force), op, 60000);
}

int rt_container_state(struct rt *rt, const char *id, rt_state_cb cb, void *data)
{
	struct op *op = op_new(OP_STATE, data);

	if (op != NULL)
		op->state = cb;
	return run_op(rt, rt_runc_argv_state(rt, id), op, 30000);
}

int rt_container_list(struct rt *rt, rt_list_cb cb, void *data)
{
	struct op *op = op_new(OP_LIST, data);

	if (op != NULL)
		op->list = cb;
	return run_op(rt, rt_runc_argv_list(rt), op, 30000);
}

int rt_exec(struct rt *rt, const char *id, const struct rt_exec_opts *opts, unsigned timeout_ms,
	    rt_result_cb cb, void *data)
{
	char **argv;
	int rv;

	if (opts->tty)
		return -ENOTSUP;
	argv = rt_runc_argv_exec(rt, id, opts);
	if (argv == NULL)
		return opts->args == NULL ? -EINVAL : -ENOMEM;
	rv = rt_spawn(rt, (const char *const *)argv, NULL, NULL, 0, timeout_ms, cb, data);
	rt_strv_free(argv);
	return rv;
}

/* ------------------------------------------------------------- exit files */

int rt_exit_read(struct rt *rt, const char *id, struct rt_exit *ret)
{
	char *p = rt__printf("%s/containers/%s/exit", rt->state_dir, id);
	json_t *j;
	json_error_t jerr;
	struct rt_exit e = {0};
	const char *msg;

	if (p == NULL)
		return -ENOMEM;
	j = json_load_file(p, 0, &jerr);
	if (j == NULL) {
		int rv = access(p, F_OK) == 0 ? -EINVAL : -ENOENT;

		free(p);
		return rv;
	}
	free(p);
	if (!json_is_integer(json_object_get(j, "exitCode"))) {
		json_decref(j);
		return -EINVAL;
	}
	e.exit_code = (int)json_integer_value(json_object_get(j, "exitCode"));
	e.signal = (int)json_integer_value(json_object_get(j, "signal"));
	e.started_at = json_integer_value(json_object_get(j, "startedAt"));
	e.finished_at = json_integer_value(json_object_get(j, "finishedAt"));
	e.oom_killed = json_is_true(json_object_get(j, "oomKilled"));
	msg = json_string_value(json_object_get(j, "error"));
	if (msg != NULL)
		snprintf(e.error, sizeof(e.error), "%s", msg);
	json_decref(j);
	*ret = e;
	return 0;
}

bool rt_shim_alive(struct rt *rt, const char *id)
{
	char *p = rt__printf("%s/containers/%s/shim.pid", rt->state_dir, id), *text = NULL;
	char *cmd = NULL;
	size_t len;
	long pid;
	bool alive = false;

	if (p == NULL || rt__read_file(p, &text, NULL) != 0)
		goto out;
	pid = strtol(text, NULL, 10);
	if (pid <= 0 || kill((pid_t)pid, 0) != 0)
		goto out;
	/* Guard against a recycled pid: the shim's command line names @id. */
	free(p);
	p = rt__printf("/proc/%ld/cmdline", pid);
	if (p == NULL || rt__read_file(p, &cmd, &len) != 0)
		goto out;
	for (size_t i = 0; i + 1 < len; i++)
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	alive = strstr(cmd, id) != NULL;
out:
	free(cmd);
	free(text);
	free(p);
	return alive;
}

static void exit_event_cb(uv_fs_event_t *h, const char *filename, int events, int status)
{
	struct rt *rt = h->data;
	char *p;
	size_t n;

	(void)events;
	if (status != 0 || filename == NULL || rt->exit_cb == NULL)
		return;
	n = strlen(filename);
	if (n > 4 && strcmp(filename + n - 4, ".tmp") == 0)
		return;
	p = rt__printf("%s/exits/%s", rt->state_dir, filename);
	if (p != NULL && access(p, F_OK) == 0)
		rt->exit_cb(rt->exit_data, filename);
	free(p);
}

static void exit_watch_close_cb(uv_handle_t *h)
{
	free(h);
}

int rt_exit_watch(struct rt *rt, rt_exit_cb cb, void *data)
{
	char *dir;
	int rv;

	if (cb == NULL) {
		if (rt->exit_watch != NULL) {
			uv_close((uv_handle_t *)rt->exit_watch, exit_watch_close_cb);
			rt->exit_watch = NULL;
		}
		rt->exit_cb = NULL;
		return 0;
	}
	if (rt->exit_watch != NULL)
		return -EEXIST;
	dir = rt__printf("%s/exits", rt->state_dir);
	rt->exit_watch = malloc(sizeof(*rt->exit_watch));
	if (dir == NULL || rt->exit_watch == NULL) {
		free(dir);
		free(rt->exit_watch);
		rt->exit_watch = NULL;
		return -ENOMEM;
	}
	uv_fs_event_init(rt->loop, rt->exit_watch);
	rt->exit_watch->data = rt;
	rv = uv_fs_event_start(rt->exit_watch, exit_event_cb, dir, 0);
	free(dir);
	if (rv != 0) {
		uv_close((uv_handle_t *)rt->exit_watch, exit_watch_close_cb);
		rt->exit_watch = NULL;
		return rv;
	}
	rt->exit_cb = cb;
	rt->exit_data = data;
	return 0;
}
