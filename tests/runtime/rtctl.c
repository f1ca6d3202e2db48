/* rtctl: drives runtime/ from the command line for the integration tests
 * (tests/integration/70-runtime.py). Not installed.
 *
 * rtctl --state DIR --run DIR [--subnet CIDR] [--bridge NAME] COMMAND ARGS
 *   image-import PATH [NAME]      image-list     image-get REF    image-rm REF
 *   run ID IMAGE LOG [--pod UID] [--hostname H] [--ro] [--user U:G] -- ARGS...
 *   wait ID SECONDS               state ID       list
 *   kill ID SIGNAL                delete ID      exec ID -- ARGS...
 *   sandbox-create UID HOSTNAME   sandbox-rm UID sandbox-list
 *   logs PATH [--tail N] [--timestamps] [--since TIME]
 *   pull REF [--registry HOST URL [--ca FILE] [--user U] [--password P]]...
 *     (exit 4 not found, 5 unauthorized, 6 unreachable, 1 other errors)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/runtime.h"

static uv_loop_t loop;
static struct rt *rt;
static int result_err;
static bool done;

static void die(const char *what, int err, const char *msg)
{
	fprintf(stderr, "rtctl: %s: %s%s%s\n", what, strerror(-err), msg != NULL ? ": " : "",
		msg != NULL ? msg : "");
	exit(1);
}

static void run_until_done(void)
{
	while (!done && uv_run(&loop, UV_RUN_ONCE) != 0)
		;
	done = false;
}

static void done_cb(void *data, int err, const char *msg)
{
	(void)data;
	result_err = err;
	if (err != 0)
		fprintf(stderr, "rtctl: %s\n", msg != NULL ? msg : strerror(-err));
	done = true;
}

static void result_cb(void *data, int err, const struct rt_result *res)
{
	(void)data;
	result_err = err;
	if (err == 0) {
		fwrite(res->out, 1, res->out_len, stdout);
		fwrite(res->err, 1, res->err_len, stderr);
		result_err = res->term_signal != 0 ? 128 + res->term_signal : (int)res->exit_status;
	}
	done = true;
}

static void state_cb(void *data, int err, const struct rt_state *st)
{
	static const char *const names[] = {"unknown", "creating", "created",
					    "running", "paused",   "stopped"};

	(void)data;
	result_err = err;
	if (err == 0)
		printf("%s %s %d\n", st->id, names[st->status], st->pid);
	done = true;
}

static void list_cb(void *data, int err, const struct rt_state *sts, size_t n)
{
	(void)data;
	result_err = err;
	for (size_t i = 0; err == 0 && i < n; i++)
		printf("%s %d\n", sts[i].id, sts[i].pid);
	done = true;
}

static void cni_cb(void *data, int err, const char *ip, const char *msg)
{
	(void)data;
	result_err = err;
	if (err != 0)
		fprintf(stderr, "rtctl: cni: %s\n", msg != NULL ? msg : strerror(-err));
	else if (ip != NULL)
		printf("ip %s\n", ip);
	done = true;
}

static const char *exit_id;
static void exit_cb(void *data, const char *id)
{
	(void)data;
	if (strcmp(id, exit_id) == 0)
		done = true;
}

static void timeout_cb(uv_timer_t *t)
{
	(void)t;
	done = true;
}

static int line_cb(void *data, const char *line, size_t len)
{
	(void)data;
	fwrite(line, 1, len, stdout);
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	const char *id = argv[0], *image = argv[1], *log = argv[2], *pod = NULL,
		   *hostname = NULL, *user = NULL;
	char net[512], uts[512], ipc[512], hosts[512], hname[512];
	const char *etc = NULL;
	struct rt_spec spec = {0};
	struct rt_image *img;
	char *rootfs;
	int i, rv;

	for (i = 3; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--pod") == 0)
			pod = argv[++i];
		else if (strcmp(argv[i], "--hostname") == 0)
			hostname = argv[++i];
		else if (strcmp(argv[i], "--user") == 0)
			user = argv[++i];
		else if (strcmp(argv[i], "--ro") == 0)
			spec.readonly_rootfs = true;
		else if (strcmp(argv[i], "--etc") == 0)
			etc = argv[++i];
	}
	if (i >= argc)
		die("run", -EINVAL, "missing -- ARGS");
	rv = rt_image_get(rt, image, &img);
	if (rv != 0)
		die("image", rv, image);
	rv = rt_rootfs_create(rt, img, id, &rootfs);
	if (rv != 0)
		die("rootfs", rv, NULL);
	rv = rt_image_user(rootfs, user != NULL ? user : img->user, &spec.uid, &spec.gid);
	if (rv != 0)
		die("user", rv, NULL);
	spec.args = (const char *const *)&argv[i + 1];
	spec.env = (const char *const *)img->env;
	spec.cwd = img->working_dir;
	spec.hostname = hostname;
	spec.cgroups_path = NULL;
	spec.cpu_request_milli = 100;
	spec.memory_limit = 64 << 20;
	if (pod != NULL) {
		snprintf(net, sizeof(net), "%s/netns/%s", rt_run_dir(rt), pod);
		snprintf(uts, sizeof(uts), "%s/utsns/%s", rt_run_dir(rt), pod);
		snprintf(ipc, sizeof(ipc), "%s/ipcns/%s", rt_run_dir(rt), pod);
		spec.net = (struct rt_ns){RT_NS_PATH, net};
		spec.uts = (struct rt_ns){RT_NS_PATH, uts};
		spec.ipc = (struct rt_ns){RT_NS_PATH, ipc};
	}
	if (etc != NULL) {
		snprintf(hosts, sizeof(hosts), "%s/hosts", etc);
		snprintf(hname, sizeof(hname), "%s/hostname", etc);
		spec.hosts_file = hosts;
		spec.hostname_file = hname;
	}
	rv = rt_bundle_write(rt, id, &spec);
	if (rv != 0)
		die("bundle", rv, NULL);
	rv = rt_container_start(rt, id, log, done_cb, NULL);
	if (rv != 0)
		die("start", rv, NULL);
	run_until_done();
	free(rootfs);
	rt_image_free(img);
	if (result_err == 0)
		printf("started %s\n", id);
	return result_err == 0 ? 0 : 1;
}

static int cmd_pull(int argc, char **argv)
{
	struct rt_registry regs[8] = {{0}};
	struct rt_pull_opts o = {.registries = regs};
	char *id = NULL, *msg = NULL;
	int rv;

	for (int k = 1; k + 1 < argc; k++) {
		if (strcmp(argv[k], "--registry") == 0 && k + 2 < argc && o.n_registries < 8) {
			regs[o.n_registries].host = argv[++k];
			regs[o.n_registries++].url = argv[++k];
		} else if (o.n_registries > 0 && strcmp(argv[k], "--ca") == 0) {
			regs[o.n_registries - 1].ca_file = argv[++k];
		} else if (o.n_registries > 0 && strcmp(argv[k], "--user") == 0) {
			regs[o.n_registries - 1].username = argv[++k];
		} else if (o.n_registries > 0 && strcmp(argv[k], "--password") == 0) {
			regs[o.n_registries - 1].password = argv[++k];
		}
	}
	rv = rt_image_pull(rt, &o, argv[0], &id, &msg);
	if (rv != 0) {
		fprintf(stderr, "rtctl: pull: %s: %s\n", strerror(-rv), msg);
		free(msg);
		return rv == -ENOENT ? 4 : rv == -EACCES ? 5 : rv == -EHOSTUNREACH ? 6 : 1;
	}
	printf("%s\n", id);
	free(id);
	return 0;
}

static int cmd_wait(const char *id, double seconds)
{
	struct rt_exit e;
	uv_timer_t t;
	int rv;

	exit_id = id;
	rv = rt_exit_watch(rt, exit_cb, NULL);
	if (rv != 0)
		die("watch", rv, NULL);
	uv_timer_init(&loop, &t);
	if (rt_exit_read(rt, id, &e) != 0) {
		uv_timer_start(&t, timeout_cb, (uint64_t)(seconds * 1000), 0);
		run_until_done();
	}
	uv_close((uv_handle_t *)&t, NULL);
	rt_exit_watch(rt, NULL, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	rv = rt_exit_read(rt, id, &e);
	if (rv != 0) {
		printf("running shim=%d\n", rt_shim_alive(rt, id));
		return 3;
	}
	printf("exit %d signal %d oom %d error %s\n", e.exit_code, e.signal, e.oom_killed,
	       e.error);
	return 0;
}

int main(int argc, char **argv)
{
	struct rt_config cfg = {0};
	const char *cmd;
	int rv, i = 1;

	for (; i + 1 < argc && argv[i][0] == '-' && argv[i][1] == '-'; i += 2) {
		if (strcmp(argv[i], "--state") == 0)
			cfg.state_dir = argv[i + 1];
		else if (strcmp(argv[i], "--run") == 0)
			cfg.run_dir = argv[i + 1];
		else if (strcmp(argv[i], "--subnet") == 0)
			cfg.pod_subnet = argv[i + 1];
		else if (strcmp(argv[i], "--bridge") == 0)
			cfg.bridge = argv[i + 1];
		else if (strcmp(argv[i], "--log-max-size") == 0)
			cfg.log_max_size = strtoull(argv[i + 1], NULL, 10);
		else
			break;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: rtctl --state DIR --run DIR COMMAND ...\n");
		return 2;
	}
	cmd = argv[i++];
	argc -= i;
	argv += i;
	uv_loop_init(&loop);
	rv = rt_new(&loop, &cfg, &rt);
	if (rv != 0)
		die("init", rv, NULL);
	if (strcmp(cmd, "image-import") == 0 && argc >= 1) {
		char *id = NULL, *msg = NULL;

		rv = rt_image_import(rt, argv[0], argc > 1 ? argv[1] : NULL, &id, &msg);
		if (rv != 0)
			die("import", rv, msg);
		printf("%s\n", id);
		free(id);
	} else if (strcmp(cmd, "image-list") == 0) {
		struct rt_image **imgs;
		size_t n;

		rv = rt_image_list(rt, &imgs, &n);
		if (rv != 0)
			die("list", rv, NULL);
		for (size_t k = 0; k < n; k++) {
			printf("%s", imgs[k]->id);
			for (char **p = imgs[k]->names; *p; p++)
				printf(" %s", *p);
			printf("\n");
			rt_image_free(imgs[k]);
		}
		free(imgs);
	} else if (strcmp(cmd, "image-get") == 0 && argc >= 1) {
		struct rt_image *img;

		rv = rt_image_get(rt, argv[0], &img);
		if (rv == -ENOENT) {
			printf("not found\n");
			rv = 4;
			goto out;
		}
		if (rv != 0)
			die("get", rv, NULL);
		printf("%s cmd=%s layers=%zu size=%llu\n", img->id,
		       img->cmd != NULL ? img->cmd[0] : "", (size_t)0, (unsigned long long)img->size);
		rt_image_free(img);
	} else if (strcmp(cmd, "image-rm") == 0 && argc >= 1) {
		rv = rt_image_remove(rt, argv[0]);
		if (rv != 0)
			die("rm", rv, NULL);
	} else if (strcmp(cmd, "pull") == 0 && argc >= 1) {
		rv = cmd_pull(argc, argv);
	} else if (strcmp(cmd, "run") == 0 && argc >= 4) {
		rv = cmd_run(argc, argv);
	} else if (strcmp(cmd, "wait") == 0 && argc >= 2) {
		rv = cmd_wait(argv[0], atof(argv[1]));
	} else if (strcmp(cmd, "state") == 0 && argc >= 1) {
		rv = rt_container_state(rt, argv[0], state_cb, NULL);
		if (rv == 0)
			run_until_done();
		rv = rv != 0 ? rv : result_err;
		if (rv == -ENOENT) {
			printf("not found\n");
			rv = 4;
		}
	} else if (strcmp(cmd, "list") == 0) {
		rv = rt_container_list(rt, list_cb, NULL);
		if (rv == 0)
			run_until_done();
		rv = rv != 0 ? 1 : (result_err != 0);
	} else if (strcmp(cmd, "kill") == 0 && argc >= 2) {
		rv = rt_container_kill(rt, argv[0], atoi(argv[1]), false, done_cb, NULL);
		if (rv == 0)
			run_until_done();
		rv = rv != 0 || result_err != 0;
	} else if (strcmp(cmd, "delete") == 0 && argc >= 1) {
		rv = rt_container_delete(rt, argv[0], true, done_cb, NULL);
		if (rv == 0)
			run_until_done();
		if (rv == 0 && result_err == 0)
			rv = rt_container_dir_remove(rt, argv[0]);
		rv = rv != 0 || result_err != 0;
	} else if (strcmp(cmd, "exec") == 0 && argc >= 3) {
		struct rt_exec_opts o = {.args = (const char *const *)&argv[2]};

		rv = rt_exec(rt, argv[0], &o, 10000, result_cb, NULL);
		if (rv != 0)
			die("exec", rv, NULL);
		run_until_done();
		rv = result_err;
	} else if (strcmp(cmd, "sandbox-create") == 0 && argc >= 2) {
		struct rt_sandbox_opts o = {.pod_uid = argv[0], .hostname = argv[1]};
		struct rt_sandbox sb;

		rv = rt_sandbox_ns_create(rt, &o, &sb);
		if (rv != 0)
			die("sandbox", rv, NULL);
		printf("netns %s\n", sb.net_path);
		rv = rt_cni_add(rt, argv[0], sb.net_path, cni_cb, NULL);
		if (rv != 0)
			die("cni", rv, NULL);
		run_until_done();
		rv = result_err != 0;
		rt_sandbox_clear(&sb);
	} else if (strcmp(cmd, "sandbox-rm") == 0 && argc >= 1) {
		char path[512];

		snprintf(path, sizeof(path), "%s/netns/%s", rt_run_dir(rt), argv[0]);
		rv = rt_cni_del(rt, argv[0], access(path, F_OK) == 0 ? path : NULL, cni_cb, NULL);
		if (rv != 0)
			die("cni", rv, NULL);
		run_until_done();
		rv = rt_sandbox_ns_remove(rt, argv[0]);
		if (rv != 0)
			die("sandbox-rm", rv, NULL);
		rv = result_err != 0;
	} else if (strcmp(cmd, "sandbox-list") == 0) {
		char **uids;

		rv = rt_sandbox_list(rt, &uids);
		if (rv != 0)
			die("sandbox-list", rv, NULL);
		for (char **p = uids; *p; p++)
			printf("%s\n", *p);
		rt_strv_free(uids);
	} else if (strcmp(cmd, "logs") == 0 && argc >= 1) {
		struct rt_log_opts o = {.tail = -1};

		for (int k = 1; k < argc; k++) {
			if (strcmp(argv[k], "--tail") == 0 && k + 1 < argc)
				o.tail = atoll(argv[++k]);
			else if (strcmp(argv[k], "--timestamps") == 0)
				o.timestamps = true;
			else if (strcmp(argv[k], "--since") == 0 && k + 1 < argc &&
				 rt_log_parse_time(argv[k + 1], strlen(argv[k + 1]), &o.since) == 0)
				k++;
		}
		rv = rt_log_read(argv[0], &o, line_cb, NULL, NULL);
		if (rv != 0)
			die("logs", rv, NULL);
	} else {
		fprintf(stderr, "rtctl: bad command %s\n", cmd);
		rv = 2;
	}
out:
	fflush(stdout);
	uv_run(&loop, UV_RUN_NOWAIT);
	rt_free(rt);
	uv_loop_close(&loop);
	return rv < 0 ? 1 : rv;
}
