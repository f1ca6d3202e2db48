/* capstan-node: the node agent of a capstan cluster (kubelet's job).
 *
 * Start-up: settings (defaults, YAML file, flags); the state directory;
 * credentials (src/node/creds.c: a node certificate from a bootstrap token
 * on the first start, reused later); the API client over every known
 * master; the container runtime; then, on one uv loop, the Node and its
 * Lease (src/node/nodestatus.c), the pods (src/node/pods.c) and the
 * logs endpoint (src/node/logsrv.c).
 * SIGTERM/SIGINT: stop watching and serving; containers keep running (a
 * restarted agent adopts them). Exit 0 then; 1 on fatal errors; 2 usage.
 *
 * `capstan-node image import|list|remove` manages the local image store.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "runtime/kclient.h"
#include "runtime/runtime.h"
#include "src/lib/config.h"
#include "src/lib/daemon.h"
#include "src/lib/log.h"
#include "src/node/agent.h"
#include "src/node/creds.h"
#include "src/node/logsrv.h"
#include "src/node/pods.h"
#include "src/node/registries.h"

#define EXIT_USAGE DAEMON_EXIT_USAGE

#define OPT(name, type, def, arg, member, max, help) \
	{name, type, def, arg, help, offsetof(struct node_config, member), max}

/* The single source of capstan-node's flags and config keys; the man page
 * and packaging/capstan-node.yaml follow this table. */
static const struct config_option options[] = {
	OPT("server", CONFIG_STRINGS, NULL, "URL", server, 0,
	    "API URL of a master; the others are learned from the cluster"),
	OPT("token", CONFIG_STRING, NULL, "TOKEN", token, 0,
	    "bootstrap token ('capstan token create') to get the node's certificate on the "
	    "first start"),
	OPT("ca-file", CONFIG_STRING, NULL, "FILE", ca_file, 0,
	    "cluster CA certificate that verifies the masters (first start)"),
	OPT("state-dir", CONFIG_STRING, "/var/lib/capstan-node", "DIR", state_dir, 0,
	    "keep the node's certificate, images, containers, volumes and logs in DIR"),
	OPT("node-name", CONFIG_STRING, NULL, "NAME", node_name, 0,
	    "name of the Node (default: the host name)"),
	OPT("node-ip", CONFIG_STRING, NULL, "IP", node_ip, 0,
	    "InternalIP of the Node (default: the first non-loopback IPv4 address)"),
	OPT("node-labels", CONFIG_STRINGS, NULL, "K=V[,K=V]", node_labels, 0,
	    "labels of the Node besides the kubernetes.io ones"),
	OPT("register-taints", CONFIG_STRINGS, NULL, "K[=V]:EFFECT", register_taints, 0,
	    "taints the Node is registered with"),
	OPT("pod-cidr", CONFIG_STRING, "10.88.0.0/16", "CIDR", pod_cidr, 0,
	    "subnet of this node's pod IPs (host-local IPAM of the default CNI network)"),
	OPT("cni-bin-dir", CONFIG_STRING, "/usr/lib/cni", "DIR", cni_bin_dir, 0,
	    "directory of the CNI plugins"),
	OPT("cni-conf", CONFIG_STRING, NULL, "FILE", cni_conf_dir, 0,
	    "CNI .conflist to use instead of the default bridge network"),
	OPT("cni-bridge", CONFIG_STRING, "capstan0", "NAME", cni_bridge, 0,
	    "bridge of the default CNI network"),
	OPT("runc", CONFIG_STRING, "runc", "PATH", runc, 0, "the OCI runtime program"),
	OPT("run-dir", CONFIG_STRING, "/run/capstan", "DIR", runc_root, 0,
	    "runtime state: namespaces of the pods, runc's --root (one per agent)"),
	OPT("max-pods", CONFIG_UINT, "110", "N", max_pods, 100000,
	    "pods this node accepts (its pods capacity)"),
	OPT("listen", CONFIG_STRING, "0.0.0.0:10250", "HOST:PORT", listen, 0,
	    "serve container logs over HTTPS to the masters on HOST:PORT"),
	OPT("lease-duration", CONFIG_DURATION, "40s", "DUR", lease_duration_ms, 3600000,
	    "leaseDurationSeconds of the Node's Lease"),
	OPT("lease-renew-interval", CONFIG_DURATION, "10s", "DUR", lease_renew_ms, 3600000,
	    "how often the Lease is renewed"),
	OPT("status-interval", CONFIG_DURATION, "10s", "DUR", status_interval_ms, 3600000,
	    "how often the Node's status (conditions) is written"),
	OPT("backoff-base", CONFIG_DURATION, "10s", "DUR", backoff_base_ms, 3600000,
	    "first CrashLoopBackOff delay; it doubles after each crash"),
	OPT("backoff-max", CONFIG_DURATION, "5m", "DUR", backoff_max_ms, 86400000,
	    "longest CrashLoopBackOff delay"),
	OPT("registry", CONFIG_STRINGS, NULL, "HOST=URL[,KEY=VALUE]", registries, 0,
	    "pull images named HOST/... from the registry at URL (http:// or https://; empty: "
	    "https://HOST); keys ca-file=FILE, username=USER, password-file=FILE, "
	    "password=PASS (repeatable)"),
	OPT("log-level", CONFIG_LOG_LEVEL, "info", "LEVEL", log_level, 0,
	    "log up to LEVEL: error, warn, info or debug"),
};

static const struct config_spec spec = {
	.prog = "capstan-node",
	.summary = "Run the capstan node agent on a worker: registers the Node, runs the\n"
		   "pods bound to it as runc containers, serves their logs.\n",
	.default_file = "/etc/capstan/capstan-node.yaml",
	.options = options,
	.n_options = sizeof options / sizeof options[0],
	.footer = "Also: capstan-node image import FILE [NAME] | image list | image remove REF\n"
		  "(with --state-dir DIR before 'image' when not the default), and\n"
		  "capstan-node cleanup: stop and remove every container, pod sandbox and\n"
		  "mount the agent left (it must not be running; same --state-dir, --run-dir).\n"
		  "\nSee capstan-node(8).\n",
};

/* ------------------------------------------------------------ runtime */

static int make_rt(const struct node_config *cfg, uv_loop_t *loop, struct rt **ret)
{
	char state[PATH_MAX];
	struct rt_config rc = {0};

	snprintf(state, sizeof(state), "%s/runtime", cfg->state_dir);
	rc.state_dir = state;
	rc.run_dir = cfg->runc_root;
	rc.runc = cfg->runc;
	rc.cni_bin_dir = cfg->cni_bin_dir;
	rc.cni_conf = cfg->cni_conf_dir;
	rc.pod_subnet = cfg->pod_cidr;
	rc.bridge = cfg->cni_bridge;
	return rt_new(loop, &rc, ret);
}

/* ------------------------------------------------------------ image */

static int image_cmd(struct node_config *cfg, int argc, char **argv)
{
	uv_loop_t loop;
	struct rt *rt = NULL;
	int rv, code = EXIT_FAILURE;

	if (argc < 1) {
		fprintf(stderr, "capstan-node: image import|list|remove\n");
		return EXIT_USAGE;
	}
	mkdir(cfg->state_dir, 0700);
	uv_loop_init(&loop);
	rv = make_rt(cfg, &loop, &rt);
	if (rv != 0 && rv != -ENOENT) {
		fprintf(stderr, "capstan-node: cannot open the runtime: %s\n", strerror(-rv));
		goto out;
	}
	if (strcmp(argv[0], "import") == 0 && (argc == 2 || argc == 3)) {
		char *id = NULL, *msg = NULL;
		rv = rt_image_import(rt, argv[1], argc == 3 ? argv[2] : NULL, &id, &msg);
		if (rv != 0) {
			fprintf(stderr, "capstan-node: import %s: %s\n", argv[1],
				msg != NULL ? msg : strerror(-rv));
		} else {
			printf("%s\n", id);
			code = EXIT_SUCCESS;
		}
		free(id);
		free(msg);
	} else if (strcmp(argv[0], "list") == 0 && argc == 1) {
		struct rt_image **imgs = NULL;
		size_t n = 0, i, k;
		rv = rt_image_list(rt, &imgs, &n);
		if (rv == 0) {
			printf("%-50s %-20s %s\n", "NAME", "ID", "SIZE");
			for (i = 0; i < n; i++) {
				for (k = 0; imgs[i]->names != NULL && imgs[i]->names[k] != NULL; k++)
					printf("%-50s %-20.19s %llu\n", imgs[i]->names[k],
					       imgs[i]->id + 7, (unsigned long long)imgs[i]->size);
				if (imgs[i]->names == NULL || imgs[i]->names[0] == NULL)
					printf("%-50s %-20.19s %llu\n", "<none>", imgs[i]->id + 7,
					       (unsigned long long)imgs[i]->size);
				rt_image_free(imgs[i]);
			}
			free(imgs);
			code = EXIT_SUCCESS;
		} else {
			fprintf(stderr, "capstan-node: %s\n", strerror(-rv));
		}
	} else if (strcmp(argv[0], "remove") == 0 && argc == 2) {
		rv = rt_image_remove(rt, argv[1]);
		if (rv != 0)
			fprintf(stderr, "capstan-node: remove %s: %s\n", argv[1], strerror(-rv));
		else
			code = EXIT_SUCCESS;
	} else {
		fprintf(stderr, "capstan-node: image import FILE [NAME] | list | remove REF\n");
		code = EXIT_USAGE;
	}
out:
	rt_free(rt);
	uv_run(&loop, UV_RUN_NOWAIT);
	uv_loop_close(&loop);
	return code;
}

/* ------------------------------------------------------------ cleanup */

/* One ASYNC runtime operation at a time, run to completion. */
struct wait_op {
	bool done;
	int err;
	char **ids;
};

static void wait_done_cb(void *data, int err, const char *msg)
{
	struct wait_op *w = data;

	(void)msg;
	w->err = err;
	w->done = true;
}

static void wait_cni_cb(void *data, int err, const char *ip, const char *msg)
{
	(void)ip;
	wait_done_cb(data, err, msg);
}

static void wait_list_cb(void *data, int err, const struct rt_state *states, size_t n)
{
	struct wait_op *w = data;
	size_t i;

	w->err = err;
	for (i = 0; err == 0 && i < n; i++)
		node_strv_add(&w->ids, states[i].id);
	w->done = true;
}

static void wait_result_cb(void *data, int err, const struct rt_result *res)
{
	(void)res;
	wait_done_cb(data, err, NULL);
}

static void run_until(uv_loop_t *loop, struct wait_op *w, int started)
{
	if (started != 0) {
		w->err = started;
		return;
	}
	while (!w->done)
		uv_run(loop, UV_RUN_ONCE);
}

static int unmount_under(const char *dir);

/* `capstan-node cleanup`: what the agent leaves running on purpose when it
 * stops (its containers outlive it) goes away: every container under the
 * run dir's runc root is killed and deleted with its bundle and rootfs,
 * every pod sandbox gets CNI DEL and loses its namespaces, mounts left
 * under the state and run dirs are detached, the CNI bridge is deleted.
 * For a node taken out of service ('capstan local down' runs it); the
 * agent itself must not be running. */
static int cleanup_cmd(struct node_config *cfg)
{
	uv_loop_t loop;
	struct rt *rt = NULL;
	struct wait_op w = {0};
	char **sbs = NULL, path[PATH_MAX];
	size_t i;
	int rv, failed = 0;

	uv_loop_init(&loop);
	rv = make_rt(cfg, &loop, &rt);
	if (rv != 0 && rv != -ENOENT) {
		fprintf(stderr, "capstan-node: cannot open the runtime: %s\n", strerror(-rv));
		uv_loop_close(&loop);
		return EXIT_FAILURE;
	}
	run_until(&loop, &w, rt_container_list(rt, wait_list_cb, &w));
	if (w.err != 0)
		fprintf(stderr, "capstan-node: runc list: %s\n", strerror(-w.err));
	for (i = 0; w.ids != NULL && w.ids[i] != NULL; i++) {
		struct wait_op k = {0}, d = {0};
		run_until(&loop, &k, rt_container_kill(rt, w.ids[i], SIGKILL, true, wait_done_cb, &k));
		run_until(&loop, &d, rt_container_delete(rt, w.ids[i], true, wait_done_cb, &d));
		if (d.err != 0) {
			fprintf(stderr, "capstan-node: runc delete %s: %s\n", w.ids[i],
				strerror(-d.err));
			failed = 1;
		}
		rv = rt_container_dir_remove(rt, w.ids[i]);
		if (rv != 0) {
			fprintf(stderr, "capstan-node: remove %s: %s\n", w.ids[i], strerror(-rv));
			failed = 1;
		}
		printf("removed container %s\n", w.ids[i]);
	}
	node_strv_free(w.ids);
	if (rt_sandbox_list(rt, &sbs) == 0) {
		for (i = 0; sbs[i] != NULL; i++) {
			struct wait_op c = {0};
			snprintf(path, sizeof(path), "%s/netns/%s", rt_run_dir(rt), sbs[i]);
			run_until(&loop, &c, rt_cni_del(rt, sbs[i], path, wait_cni_cb, &c));
			rv = rt_sandbox_ns_remove(rt, sbs[i]);
			if (rv != 0) {
				fprintf(stderr, "capstan-node: sandbox %s: %s\n", sbs[i],
					strerror(-rv));
				failed = 1;
			}
			printf("removed the sandbox of pod %s\n", sbs[i]);
		}
		rt_strv_free(sbs);
	}
	/* Root filesystems of containers that never reached runc, and
	 * anything else still mounted (volumes). */
	snprintf(path, sizeof(path), "%s/runtime/containers", cfg->state_dir);
	{
		DIR *d = opendir(path);
		struct dirent *de;
		char **left = NULL;
		while (d != NULL && (de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				node_strv_add(&left, de->d_name);
		if (d != NULL)
			closedir(d);
		for (i = 0; left != NULL && left[i] != NULL; i++)
			rt_container_dir_remove(rt, left[i]);
		node_strv_free(left);
	}
	if (unmount_under(cfg->state_dir) != 0 || unmount_under(cfg->runc_root) != 0)
		failed = 1;
	if (cfg->cni_conf_dir == NULL && cfg->cni_bridge != NULL) {
		const char *argv[] = {"ip", "link", "del", cfg->cni_bridge, NULL};
		struct wait_op b = {0};
		snprintf(path, sizeof(path), "/sys/class/net/%s", cfg->cni_bridge);
		if (access(path, F_OK) == 0) {
			run_until(&loop, &b, rt_spawn(rt, argv, NULL, NULL, 0, 10000, wait_result_cb, &b));
			printf("deleted bridge %s\n", cfg->cni_bridge);
		}
	}
	rt_free(rt);
	uv_run(&loop, UV_RUN_NOWAIT);
	uv_loop_close(&loop);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Detaches every mount point under @dir, deepest first. */
static int unmount_under(const char *dir)
{
	char real[PATH_MAX], line[PATH_MAX * 2], **mps = NULL;
	size_t n, i, len;
	FILE *f;
	int failed = 0;

	if (dir == NULL || realpath(dir, real) == NULL)
		return 0;
	len = strlen(real);
	f = fopen("/proc/self/mounts", "re");
	if (f == NULL)
		return -errno;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *mp = strchr(line, ' ');
		if (mp == NULL)
			continue;
		mp++;
		mp[strcspn(mp, " ")] = '\0';
		if (strncmp(mp, real, len) == 0 && (mp[len] == '/' || mp[len] == '\0'))
			node_strv_add(&mps, mp);
	}
	fclose(f);
	n = node_strv_len(mps);
	/* Longer paths are deeper: unmount them first. */
	for (i = 0; i < n; i++) {
		size_t j, best = i;
		for (j = i + 1; j < n; j++)
			if (strlen(mps[j]) > strlen(mps[best]))
				best = j;
		char *t = mps[i];
		mps[i] = mps[best];
		mps[best] = t;
		if (umount2(mps[i], MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
			failed = -errno;
	}
	node_strv_free(mps);
	return failed;
}

/* ------------------------------------------------------------ daemon */

struct daemon;
static int load_registries(const struct node_config *cfg, struct daemon *d);
static void free_registries(struct daemon *d);

struct daemon {
	struct node_agent a;
	struct node_creds creds;
	struct rt *rt;
	struct node_registry *regs;
	struct rt_registry *rt_regs;
	struct daemon_signals signals;
	int stops_pending;
};

static void stopped_part_cb(void *data)
{
	struct daemon *d = data;

	d->stops_pending--;
}

static void signal_cb(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;

	if (d->a.closing)
		return;
	log_info("signal %d: stopping (containers keep running)", signum);
	d->a.closing = true;
	daemon_signals_close(&d->signals, NULL);
	node__status_stop(&d->a);
	/* Requests in flight end with -ECANCELED: nothing waits for a master
	 * that does not answer. */
	d->stops_pending = 3;
	node_pods_stop(d->a.pods, stopped_part_cb, d);
	node_logsrv_close(d->a.logsrv, stopped_part_cb, d);
	kclient_close(d->a.kc, stopped_part_cb, d);
}

static int load_registries(const struct node_config *cfg, struct daemon *d)
{
	char err[512];
	size_t i;
	int rv;

	if (cfg->registries.n == 0)
		return 0;
	d->regs = calloc(cfg->registries.n, sizeof(*d->regs));
	d->rt_regs = calloc(cfg->registries.n, sizeof(*d->rt_regs));
	if (d->regs == NULL || d->rt_regs == NULL) {
		free_registries(d);
		return -ENOMEM;
	}
	for (i = 0; i < cfg->registries.n; i++) {
		rv = node_registry_parse(cfg->registries.v[i], &d->regs[i], err, sizeof(err));
		if (rv != 0) {
			log_error("%s", err);
			free_registries(d);
			return rv;
		}
		d->rt_regs[i] = (struct rt_registry){
			.host = d->regs[i].host,
			.url = d->regs[i].url,
			.ca_file = d->regs[i].ca_file,
			.username = d->regs[i].username,
			.password = d->regs[i].password,
		};
		log_info("registry %s at %s%s", d->regs[i].host,
			 d->regs[i].url != NULL ? d->regs[i].url : "https://",
			 d->regs[i].url != NULL ? "" : d->regs[i].host);
	}
	d->a.registries = d->rt_regs;
	d->a.n_registries = cfg->registries.n;
	return 0;
}

static void free_registries(struct daemon *d)
{
	size_t i;

	for (i = 0; d->regs != NULL && i < d->a.cfg->registries.n; i++)
		node_registry_clear(&d->regs[i]);
	free(d->regs);
	free(d->rt_regs);
	d->regs = NULL;
	d->rt_regs = NULL;
	d->a.registries = NULL;
	d->a.n_registries = 0;
}

static unsigned port_of(const char *listen)
{
	const char *colon = strrchr(listen, ':');

	return colon != NULL ? (unsigned)atoi(colon + 1) : 10250;
}

static int run(struct node_config *cfg)
{
	struct daemon d;
	uv_loop_t loop;
	char err[512] = "", name[256];
	char **urls = NULL;
	const char *addrs[4];
	size_t i;
	int rv, code = EXIT_FAILURE;

	memset(&d, 0, sizeof(d));
	if (mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST) {
		log_error("cannot create %s: %s", cfg->state_dir, strerror(errno));
		return EXIT_FAILURE;
	}
	if (gethostname(d.a.hostname, sizeof(d.a.hostname) - 1) != 0)
		snprintf(d.a.hostname, sizeof(d.a.hostname), "localhost");
	for (i = 0; d.a.hostname[i] != '\0'; i++)
		if (d.a.hostname[i] >= 'A' && d.a.hostname[i] <= 'Z')
			d.a.hostname[i] = (char)(d.a.hostname[i] - 'A' + 'a');
	snprintf(name, sizeof(name), "%s", cfg->node_name != NULL ? cfg->node_name : d.a.hostname);
	d.a.node_name = name;
	if (cfg->node_ip != NULL)
		snprintf(d.a.node_ip, sizeof(d.a.node_ip), "%s", cfg->node_ip);
	else
		node__default_ip(d.a.node_ip, sizeof(d.a.node_ip));
	d.a.listen_port = port_of(cfg->listen);
	d.a.cfg = cfg;
	rv = load_registries(cfg, &d);
	if (rv != 0)
		return rv == -EINVAL ? EXIT_USAGE : EXIT_FAILURE;

	/* Masters: the configured ones, then those learned before. */
	for (i = 0; i < cfg->server.n; i++)
		node_strv_add(&urls, cfg->server.v[i]);
	{
		char **saved = NULL;
		if (node_masters_load(cfg->state_dir, &saved) == 0)
			for (i = 0; saved[i] != NULL; i++)
				node_strv_add(&urls, saved[i]);
		node_strv_free(saved);
	}
	if (urls == NULL) {
		log_error("no master known: give --server URL");
		free_registries(&d);
		return EXIT_USAGE;
	}
	addrs[0] = d.a.node_ip;
	addrs[1] = d.a.hostname;
	addrs[2] = strcmp(d.a.node_ip, "127.0.0.1") != 0 ? "127.0.0.1" : NULL;
	addrs[3] = NULL;
	rv = node_creds_ensure(&d.creds, cfg->state_dir, name, (const char *const *)urls,
			       cfg->token, cfg->ca_file, addrs, err, sizeof(err));
	if (rv != 0) {
		log_error("node credentials: %s", err);
		node_strv_free(urls);
		free_registries(&d);
		return EXIT_FAILURE;
	}
	d.a.cert_file = d.creds.cert_file;
	d.a.key_file = d.creds.key_file;
	d.a.ca_file = d.creds.ca_file;
	d.a.masters = urls;

	uv_loop_init(&loop);
	d.a.loop = &loop;
	{
		struct kclient_config kc = {
			.urls = (const char *const *)urls,
			.ca_file = d.creds.ca_file,
			.cert_file = d.creds.cert_file,
			.key_file = d.creds.key_file,
		};
		rv = kclient_new(&loop, &kc, &d.a.kc);
	}
	if (rv != 0) {
		log_error("cannot create the API client: %s", strerror(-rv));
		goto out;
	}
	rv = make_rt(cfg, &loop, &d.rt);
	if (rv == -ENOENT) {
		log_warn("capstan-shim not found: containers cannot start");
	} else if (rv != 0) {
		log_error("cannot open the container runtime: %s", strerror(-rv));
		goto out_kc;
	}
	rv = node_logsrv_start(&d.a, cfg->listen, &d.a.logsrv);
	if (rv != 0) {
		log_error("cannot serve on %s: %s", cfg->listen, strerror(-rv));
		goto out_rt;
	}
	daemon_signals_start(&d.signals, &loop, signal_cb, &d);
	node__status_start(&d.a);
	node_pods_start(&d.a, d.rt, &d.a.pods);
	log_info("node %s (%s) started, API at %s, logs on %s", name, d.a.node_ip,
		 kclient_current_url(d.a.kc), cfg->listen);
	uv_run(&loop, UV_RUN_DEFAULT);
	code = EXIT_SUCCESS;
	free(d.a.pods);
	rt_free(d.rt);
	d.rt = NULL;
	goto out;
out_rt:
	rt_free(d.rt);
	d.rt = NULL;
out_kc:
	kclient_close(d.a.kc, NULL, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
out:
	uv_loop_close(&loop);
	node_strv_free(d.a.masters);
	node_creds_clear(&d.creds);
	free_registries(&d);
	return code;
}

int main(int argc, char *argv[])
{
	struct node_config cfg;
	int code, i, image_at = -1;

	/* Image pulls hold a thread-pool thread for as long as they take:
	 * libuv's default of 4 would let a few slow pulls stall every other
	 * pod's disk work. Read once, at the pool's first use. */
	setenv("UV_THREADPOOL_SIZE", "16", 0);
	/* "image ..." or "cleanup" ends the flags: what follows belongs to it. */
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "image") == 0 || strcmp(argv[i], "cleanup") == 0) {
			image_at = i;
			break;
		}
	memset(&cfg, 0, sizeof cfg);
	if (!daemon_parse_args(&spec, &cfg, image_at > 0 ? image_at : argc, argv, NULL, &code))
		return code;
	log_init("capstan-node", cfg.log_level);
	if (image_at > 0 && strcmp(argv[image_at], "cleanup") == 0) {
		code = argc == image_at + 1 ? cleanup_cmd(&cfg) : EXIT_USAGE;
		if (code == EXIT_USAGE)
			fprintf(stderr, "capstan-node: cleanup takes no arguments\n");
		config_free(&spec, &cfg);
		return code;
	}
	if (image_at > 0) {
		code = image_cmd(&cfg, argc - image_at - 1, argv + image_at + 1);
		config_free(&spec, &cfg);
		return code;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("cannot initialise libcurl");
		config_free(&spec, &cfg);
		return EXIT_FAILURE;
	}
	code = run(&cfg);
	curl_global_cleanup();
	config_free(&spec, &cfg);
	if (code == EXIT_SUCCESS)
		log_info("stopped");
	return code;
}
