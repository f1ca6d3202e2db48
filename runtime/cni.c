/* Pod sandboxes: network, UTS and IPC namespaces kept alive by bind mounts
 * (no pause process), and CNI plugins run per the CNI spec (SPEC.md:
 * CNI_COMMAND/CNI_CONTAINERID/CNI_NETNS/CNI_IFNAME/CNI_PATH in the
 * environment, the network config on stdin, the result on stdout).
 *
 * Unlike `ip netns`, the namespace directories are not made bind mounts of
 * themselves: nothing would unmount them when a state dir goes away, and
 * containers do not keep copies of these nsfs mounts (runc pivots and
 * detaches the old root), so the shared propagation of / is harmless.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/internal.h"

#define NSFS_MAGIC_ 0x6e736673

int rt__sandbox_init(struct rt *rt);

static const char *const ns_dirs[] = {"netns", "utsns", "ipcns"};

int rt__sandbox_init(struct rt *rt)
{
	for (size_t i = 0; i < 3; i++) {
		char *d = rt__printf("%s/%s", rt->run_dir, ns_dirs[i]);
		int rv;

		if (d == NULL)
			return -ENOMEM;
		rv = rt__mkdir_p(d, 0755);
		free(d);
		if (rv != 0)
			return rv;
	}
	if (strcmp(rt->cni_conf, "") != 0) {
		char *def = rt__printf("%s/cni/capstan.conflist", rt->state_dir);
		json_t *conf = NULL;
		int rv = 0;

		if (def == NULL)
			return -ENOMEM;
		if (strcmp(def, rt->cni_conf) == 0) {
			rv = rt_cni_default_conflist(rt->bridge, rt->pod_subnet, &conf);
			if (rv == 0) {
				char *data = rt__printf("%s/cni/networks", rt->state_dir);
				json_t *ipam = json_object_get(
				    json_array_get(json_object_get(conf, "plugins"), 0), "ipam");

				if (data == NULL ||
				    json_object_set_new(ipam, "dataDir", json_string(data)) != 0)
					rv = -ENOMEM;
				free(data);
			}
			if (rv == 0)
				rv = rt__write_json_atomic(def, conf);
			json_decref(conf);
		}
		free(def);
		if (rv != 0)
			return rv;
	}
	return 0;
}

static bool is_nsfs(const char *path)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 && sf.f_type == NSFS_MAGIC_;
}

void rt_sandbox_clear(struct rt_sandbox *sb)
{
	free(sb->net_path);
	free(sb->uts_path);
	free(sb->ipc_path);
	free(sb->ip);
	memset(sb, 0, sizeof(*sb));
}

static bool valid_uid(const char *uid)
{
	if (uid == NULL || *uid == '\0' || strlen(uid) > 64)
		return false;
	for (const char *p = uid; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= 'A' && *p <= 'Z') || *p == '-' || *p == '_' || *p == '.'))
			return false;
	return strcmp(uid, ".") != 0 && strcmp(uid, "..") != 0;
}

/* The child of rt_sandbox_ns_create: only system calls (we forked a
 * threaded process). Exit status = errno of the failing step. */
static void ns_child(int flags, const char *hostname, const char *net, const char *uts,
		     const char *ipc)
{
	if (unshare(flags) != 0)
		_exit(errno);
	if (uts != NULL && sethostname(hostname, strlen(hostname)) != 0)
		_exit(errno);
	if (net != NULL) {
		int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		struct ifreq ifr;

		memset(&ifr, 0, sizeof(ifr));
		memcpy(ifr.ifr_name, "lo", 3);
		if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
			_exit(errno);
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
			_exit(errno);
		close(s);
		if (mount("/proc/self/ns/net", net, NULL, MS_BIND, NULL) != 0)
			_exit(errno);
	}
	if (uts != NULL && mount("/proc/self/ns/uts", uts, NULL, MS_BIND, NULL) != 0)
		_exit(errno);
	if (ipc != NULL && mount("/proc/self/ns/ipc", ipc, NULL, MS_BIND, NULL) != 0)
		_exit(errno);
	_exit(0);
}

static int touch(const char *path)
{
	int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0444);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

int rt_sandbox_ns_create(struct rt *rt, const struct rt_sandbox_opts *opts, struct rt_sandbox *ret)
{
	struct rt_sandbox sb = {0};
	const char *hostname = opts->hostname != NULL ? opts->hostname : opts->pod_uid;
	const char *net = NULL, *uts = NULL, *ipc = NULL;
	int flags = 0, rv = 0, st;
	pid_t pid;

	if (!valid_uid(opts->pod_uid) || strlen(hostname) > 64)
		return -EINVAL;
	if (!opts->host_network) {
		sb.net_path = rt__printf("%s/netns/%s", rt->run_dir, opts->pod_uid);
		sb.uts_path = rt__printf("%s/utsns/%s", rt->run_dir, opts->pod_uid);
		if (sb.net_path == NULL || sb.uts_path == NULL)
			goto nomem;
	}
	if (!opts->host_ipc) {
		sb.ipc_path = rt__printf("%s/ipcns/%s", rt->run_dir, opts->pod_uid);
		if (sb.ipc_path == NULL)
			goto nomem;
	}
	/* Idempotent: only namespaces not mounted yet are made. */
	if (sb.net_path != NULL && !is_nsfs(sb.net_path)) {
		net = sb.net_path;
		flags |= CLONE_NEWNET;
	}
	if (sb.uts_path != NULL && !is_nsfs(sb.uts_path)) {
		uts = sb.uts_path;
		flags |= CLONE_NEWUTS;
	}
	if (sb.ipc_path != NULL && !is_nsfs(sb.ipc_path)) {
		ipc = sb.ipc_path;
		flags |= CLONE_NEWIPC;
	}
	if ((net != NULL && (rv = touch(net)) != 0) || (uts != NULL && (rv = touch(uts)) != 0) ||
	    (ipc != NULL && (rv = touch(ipc)) != 0))
		goto err;
	if (flags != 0) {
		pid = fork();
		if (pid < 0) {
			rv = -errno;
			goto err;
		}
		if (pid == 0)
			ns_child(flags, hostname, net, uts, ipc);
		while (waitpid(pid, &st, 0) < 0)
			if (errno != EINTR) {
				rv = -errno;
				goto err;
			}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			rv = WIFEXITED(st) ? -WEXITSTATUS(st) : -EIO;
			goto err;
		}
	}
	*ret = sb;
	return 0;
nomem:
	rv = -ENOMEM;
err:
	if (net != NULL)
		unlink(net);
	if (uts != NULL)
		unlink(uts);
	if (ipc != NULL)
		unlink(ipc);
	rt_sandbox_clear(&sb);
	return rv;
}

int rt_sandbox_ns_remove(struct rt *rt, const char *pod_uid)
{
	int rv = 0;

	if (!valid_uid(pod_uid))
		return -EINVAL;
	for (size_t i = 0; i < 3; i++) {
		char *p = rt__printf("%s/%s/%s", rt->run_dir, ns_dirs[i], pod_uid);

		if (p == NULL)
			return -ENOMEM;
		if (is_nsfs(p) && umount2(p, MNT_DETACH) != 0 && rv == 0)
			rv = -errno;
		if (unlink(p) != 0 && errno != ENOENT && rv == 0)
			rv = -errno;
		free(p);
	}
	return rv;
}

int rt_sandbox_list(struct rt *rt, char ***ret)
{
	char **out = calloc(1, sizeof(char *));

	if (out == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < 3; i++) {
		char *d = rt__printf("%s/%s", rt->run_dir, ns_dirs[i]);
		DIR *dir = d != NULL ? opendir(d) : NULL;
		struct dirent *de;

		free(d);
		while (dir != NULL && (de = readdir(dir)) != NULL) {
			bool seen = false;

			if (de->d_name[0] == '.')
				continue;
			for (size_t k = 0; out[k] != NULL; k++)
				seen = seen || strcmp(out[k], de->d_name) == 0;
			if (!seen && rt__strv_push(&out, de->d_name) != 0) {
				closedir(dir);
				rt_strv_free(out);
				return -ENOMEM;
			}
		}
		if (dir != NULL)
			closedir(dir);
	}
	*ret = out;
	return 0;
}

/* ------------------------------------------------------------------- CNI */

int rt_cni_default_conflist(const char *bridge, const char *subnet, json_t **ret)
{
	unsigned a, b, c, d, len;
	char extra;
	json_t *j;

	if (bridge == NULL || strlen(bridge) == 0 || strlen(bridge) >= IFNAMSIZ ||
	    sscanf(subnet, "%u.%u.%u.%u/%u%c", &a, &b, &c, &d, &len, &extra) != 5 || a > 255 ||
	    b > 255 || c > 255 || d > 255 || len < 8 || len > 30)
		return -EINVAL;
	/* isGateway gives the bridge an address (the node reaches its pods);
	 * no isDefaultGateway and no routes: pods get no default route, and
	 * without ipMasq nothing is NATed out. */
	j = json_pack("{sssss[{sssssbsbsbsbs{sss[[{ss}]]}}]}", "cniVersion", "1.0.0", "name",
		      "capstan", "plugins", "type", "bridge", "bridge", bridge, "isGateway", 1,
		      "isDefaultGateway", 0, "ipMasq", 0, "hairpinMode", 1, "ipam", "type",
		      "host-local", "ranges", "subnet", subnet);
	if (j == NULL)
		return -ENOMEM;
	*ret = j;
	return 0;
}

struct cni_op {
	struct rt *rt;
	json_t *conf;    /* the conflist */
	json_t *prev;    /* prevResult (ADD) */
	bool add;
	int idx;         /* plugin being run */
	int err;         /* first DEL error */
	char *msg;
	char **env;
	rt_cni_cb cb;
	void *data;
};

static void cni_op_free(struct cni_op *op)
{
	json_decref(op->conf);
	json_decref(op->prev);
	free(op->msg);
	rt_strv_free(op->env);
	free(op);
}

static int cni_step(struct cni_op *op);

static char *first_ipv4(const json_t *result)
{
	json_t *v;
	size_t i;

	json_array_foreach (json_object_get(result, "ips"), i, v) {
		const char *addr = json_string_value(json_object_get(v, "address"));
		const char *slash;

		if (addr == NULL || strchr(addr, ':') != NULL)
			continue;
		slash = strchr(addr, '/');
		return strndup(addr, slash != NULL ? (size_t)(slash - addr) : strlen(addr));
	}
	return NULL;
}

static void cni_finish(struct cni_op *op, int err, const char *msg)
{
	char *ip = NULL;

	op->rt->pending--;
	if (err == 0 && op->add) {
		ip = first_ipv4(op->prev);
		if (ip == NULL) {
			err = -EINVAL;
			msg = "the CNI result has no IPv4 address";
		}
	}
	op->cb(op->data, err, ip, msg);
	free(ip);
	cni_op_free(op);
}

static void plugin_cb(void *data, int err, const struct rt_result *res)
{
	struct cni_op *op = data;
	json_t *out = NULL;
	const char *emsg = NULL;
	char buf[512];

	if (err == 0 && (res->exit_status != 0 || res->term_signal != 0)) {
		json_t *ej = json_loads(res->out, 0, NULL);
		const char *m = json_string_value(json_object_get(ej, "msg"));
		const char *d = json_string_value(json_object_get(ej, "details"));

		snprintf(buf, sizeof(buf), "%s%s%s",
			 m != NULL ? m : (res->err_len > 0 ? res->err : "plugin failed"),
			 d != NULL ? ": " : "", d != NULL ? d : "");
		json_decref(ej);
		emsg = buf;
		err = res->timed_out ? -ETIMEDOUT : -EIO;
	} else if (err != 0) {
		snprintf(buf, sizeof(buf), "cannot run CNI plugin: %s", uv_strerror(err));
		emsg = buf;
	}
	if (err == 0 && op->add) {
		out = json_loads(res->out, 0, NULL);
		if (!json_is_object(out)) {
			json_decref(out);
			err = -EINVAL;
			emsg = "the CNI plugin printed no JSON result";
		} else {
			json_decref(op->prev);
			op->prev = out;
		}
	}
	if (err != 0 && op->add) {
		cni_finish(op, err, emsg);
		return;
	}
	if (err != 0 && op->err == 0) {
		op->err = err;
		op->msg = strdup(emsg);
	}
	op->idx += op->add ? 1 : -1;
	err = cni_step(op);
	if (err != 0)
		cni_finish(op, err, op->msg != NULL ? op->msg : "cannot run a CNI plugin");
}

/* Runs plugin op->idx; after the last, finishes (via the loop). */
static int cni_step(struct cni_op *op)
{
	json_t *plugins = json_object_get(op->conf, "plugins"), *pc, *in;
	const char *type;
	char *path, *text;
	const char *argv[2];
	int rv;

	if (op->idx < 0 || op->idx >= (int)json_array_size(plugins)) {
		cni_finish(op, op->err, op->msg);
		return 0;
	}
	pc = json_array_get(plugins, (size_t)op->idx);
	type = json_string_value(json_object_get(pc, "type"));
	if (type == NULL || strchr(type, '/') != NULL)
		return -EINVAL;
	in = json_deep_copy(pc);
	if (in == NULL)
		return -ENOMEM;
	json_object_set(in, "cniVersion", json_object_get(op->conf, "cniVersion"));
	json_object_set(in, "name", json_object_get(op->conf, "name"));
	if (op->add && op->prev != NULL)
		json_object_set(in, "prevResult", op->prev);
	text = json_dumps(in, JSON_COMPACT);
	json_decref(in);
	path = rt__printf("%s/%s", op->rt->cni_bin_dir, type);
	if (text == NULL || path == NULL) {
		free(text);
		free(path);
		return -ENOMEM;
	}
	argv[0] = path;
	argv[1] = NULL;
	rv = rt_spawn(op->rt, argv, (const char *const *)op->env, text, strlen(text), 30000,
		      plugin_cb, op);
	free(text);
	free(path);
	return rv;
}

static int cni_run(struct rt *rt, bool add, const char *pod_uid, const char *netns_path,
		   rt_cni_cb cb, void *data)
{
	struct cni_op *op;
	json_error_t jerr;
	char *e;
	int rv;

	if (!valid_uid(pod_uid))
		return -EINVAL;
	op = calloc(1, sizeof(*op));
	if (op == NULL)
		return -ENOMEM;
	op->rt = rt;
	op->add = add;
	op->cb = cb;
	op->data = data;
	op->conf = json_load_file(rt->cni_conf, 0, &jerr);
	if (!json_is_array(json_object_get(op->conf, "plugins"))) {
		cni_op_free(op);
		return -EINVAL;
	}
	op->env = calloc(1, sizeof(char *));
	if (op->env == NULL)
		goto nomem;
#define ENV(...)                                                                               \
	do {                                                                                   \
		e = rt__printf(__VA_ARGS__);                                                   \
		if (e == NULL || rt__strv_push(&op->env, e) != 0) {                            \
			free(e);                                                               \
			goto nomem;                                                            \
		}                                                                              \
		free(e);                                                                       \
	} while (0)
	ENV("CNI_COMMAND=%s", add ? "ADD" : "DEL");
	ENV("CNI_CONTAINERID=capstan-%s", pod_uid);
	ENV("CNI_NETNS=%s", netns_path != NULL ? netns_path : "");
	ENV("CNI_IFNAME=eth0");
	ENV("CNI_PATH=%s", rt->cni_bin_dir);
	ENV("PATH=%s", getenv("PATH") != NULL ? getenv("PATH") : "/usr/sbin:/usr/bin:/sbin:/bin");
#undef ENV
	op->idx = add ? 0 : (int)json_array_size(json_object_get(op->conf, "plugins")) - 1;
	if (op->idx < 0) {
		cni_op_free(op);
		return -EINVAL;
	}
	rt->pending++;
	rv = cni_step(op);
	if (rv != 0) {
		rt->pending--;
		cni_op_free(op);
	}
	return rv;
nomem:
	cni_op_free(op);
	return -ENOMEM;
}

int rt_cni_add(struct rt *rt, const char *pod_uid, const char *netns_path, rt_cni_cb cb,
	       void *data)
{
	if (netns_path == NULL)
		return -EINVAL;
	return cni_run(rt, true, pod_uid, netns_path, cb, data);
}

int rt_cni_del(struct rt *rt, const char *pod_uid, const char *netns_path, rt_cni_cb cb,
	       void *data)
{
	return cni_run(rt, false, pod_uid, netns_path, cb, data);
}
