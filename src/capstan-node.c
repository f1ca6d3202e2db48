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
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "runtime/kclient.h"
#include "runtime/runtime.h"
#include "src/lib/config.h"
#include "src/lib/log.h"
#include "src/lib/version.h"
#include "src/node/agent.h"
#include "src/node/creds.h"
#include "src/node/logsrv.h"
#include "src/node/pods.h"

#define EXIT_USAGE 2

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
		  "(with --state-dir DIR before 'image' when not the default).\n"
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

/* ------------------------------------------------------------ daemon */

struct daemon {
	struct node_agent a;
	struct node_creds creds;
	struct rt *rt;
	uv_signal_t sigterm, sigint;
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
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
	node__status_stop(&d->a);
	/* Requests in flight end with -ECANCELED: nothing waits for a master
	 * that does not answer. */
	d->stops_pending = 3;
	node_pods_stop(d->a.pods, stopped_part_cb, d);
	node_logsrv_close(d->a.logsrv, stopped_part_cb, d);
	kclient_close(d->a.kc, stopped_part_cb, d);
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
	uv_signal_init(&loop, &d.sigterm);
	uv_signal_init(&loop, &d.sigint);
	d.sigterm.data = d.sigint.data = &d;
	uv_signal_start(&d.sigterm, signal_cb, SIGTERM);
	uv_signal_start(&d.sigint, signal_cb, SIGINT);
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
	return code;
}

int main(int argc, char *argv[])
{
	struct node_config cfg;
	enum config_action action;
	const char *config_path = NULL;
	char err[1024];
	int rv, code, i, image_at = -1;

	signal(SIGPIPE, SIG_IGN);
	log_init("capstan-node", LOG_LEVEL_INFO);
	/* "image ..." ends the flags: what follows belongs to it. */
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "image") == 0) {
			image_at = i;
			break;
		}
	memset(&cfg, 0, sizeof cfg);
	rv = config_parse(&spec, &cfg, image_at > 0 ? image_at : argc, argv, &action,
			  &config_path, err, sizeof err);
	if (rv != 0) {
		fprintf(stderr, "capstan-node: %s\n", err);
		config_free(&spec, &cfg);
		return EXIT_USAGE;
	}
	if (action == CONFIG_HELP) {
		config_print_help(&spec, stdout);
		config_free(&spec, &cfg);
		return EXIT_SUCCESS;
	}
	if (action == CONFIG_VERSION) {
		version_print("capstan-node");
		config_free(&spec, &cfg);
		return EXIT_SUCCESS;
	}
	log_init("capstan-node", cfg.log_level);
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
