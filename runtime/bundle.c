/* OCI runtime config (config.json) from an rt_spec.
 *
 * The defaults follow what `runc spec` and containerd give a container:
 * private pid and mount namespaces, /proc, a tmpfs /dev, read-only /sys,
 * Docker's default capability set, masked and read-only kernel paths.
 * Field meanings: the OCI runtime spec, config.md and config-linux.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/internal.h"

const char *const rt_default_caps[] = {
    "CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FSETID",    "CAP_FOWNER",
    "CAP_MKNOD",  "CAP_NET_RAW",      "CAP_SETGID",    "CAP_SETUID",
    "CAP_SETFCAP", "CAP_SETPCAP",     "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
    "CAP_KILL",   "CAP_AUDIT_WRITE",  NULL,
};

/* Every capability Linux 5.x knows, in number order. */
static const char *const all_caps[] = {
    "CAP_CHOWN",	    "CAP_DAC_OVERRIDE",	  "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID",	    "CAP_KILL",		  "CAP_SETGID",		 "CAP_SETUID",
    "CAP_SETPCAP",	    "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",	    "CAP_NET_RAW",	  "CAP_IPC_LOCK",	 "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",	    "CAP_SYS_RAWIO",	  "CAP_SYS_CHROOT",	 "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",	    "CAP_SYS_ADMIN",	  "CAP_SYS_BOOT",	 "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",	    "CAP_SYS_TIME",	  "CAP_SYS_TTY_CONFIG",	 "CAP_MKNOD",
    "CAP_LEASE",	    "CAP_AUDIT_WRITE",	  "CAP_AUDIT_CONTROL",	 "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",	    "CAP_MAC_ADMIN",	  "CAP_SYSLOG",		 "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",    "CAP_AUDIT_READ",	  "CAP_PERFMON",	 "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE", NULL,
};

static const char *const masked_paths[] = {
    "/proc/acpi",	 "/proc/asound",      "/proc/kcore",	 "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi",	 "/sys/firmware",     NULL,
};

static const char *const readonly_paths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL,
};

/* "NET_ADMIN" or "cap_net_admin" -> index in all_caps; -1 unknown. */
static int cap_index(const char *name)
{
	char buf[64];
	size_t n = 0;

	if (strncasecmp(name, "CAP_", 4) == 0)
		name += 4;
	n = strlen(name);
	if (n + 5 > sizeof(buf))
		return -1;
	memcpy(buf, "CAP_", 4);
	for (size_t i = 0; i <= n; i++)
		buf[4 + i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 32 : name[i]);
	for (int i = 0; all_caps[i] != NULL; i++)
		if (strcmp(all_caps[i], buf) == 0)
			return i;
	return -1;
}

static bool has_all(const char *const *v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		if (strcasecmp(v[i], "ALL") == 0)
			return true;
	return false;
}

static int caps_json(const struct rt_spec *spec, json_t **ret)
{
	bool set[64] = {false};
	json_t *list, *caps;
	int i;

	if (spec->privileged || has_all(spec->cap_add)) {
		for (i = 0; all_caps[i] != NULL; i++)
			set[i] = true;
	} else {
		for (i = 0; rt_default_caps[i] != NULL; i++)
			set[cap_index(rt_default_caps[i])] = true;
	}
	if (!spec->privileged && has_all(spec->cap_drop) && !has_all(spec->cap_add))
		memset(set, 0, sizeof(set));
	for (size_t k = 0; !spec->privileged && spec->cap_drop != NULL && spec->cap_drop[k]; k++) {
		if (strcasecmp(spec->cap_drop[k], "ALL") == 0)
			continue;
		i = cap_index(spec->cap_drop[k]);
		if (i < 0)
			return -EINVAL;
		set[i] = false;
	}
	/* Kubernetes applies add after drop: drop ALL + add X gives X. */
	for (size_t k = 0; spec->cap_add != NULL && spec->cap_add[k]; k++) {
		if (strcasecmp(spec->cap_add[k], "ALL") == 0)
			continue;
		i = cap_index(spec->cap_add[k]);
		if (i < 0)
			return -EINVAL;
		set[i] = true;
	}
	list = json_array();
	if (list == NULL)
		return -ENOMEM;
	for (i = 0; all_caps[i] != NULL; i++)
		if (set[i] && json_array_append_new(list, json_string(all_caps[i])) != 0) {
			json_decref(list);
			return -ENOMEM;
		}
	caps = json_pack("{sOsOsO}", "bounding", list, "effective", list, "permitted", list);
	json_decref(list);
	if (caps == NULL)
		return -ENOMEM;
	*ret = caps;
	return 0;
}

static json_t *strv_json(const char *const *v)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && v != NULL && v[i] != NULL; i++)
		if (json_array_append_new(a, json_string(v[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static int add_mount(json_t *mounts, const char *dest, const char *type, const char *source,
		     const char *const *options)
{
	json_t *m = json_pack("{ssssss}", "destination", dest, "type", type, "source", source);

	if (m == NULL)
		return -ENOMEM;
	if (options != NULL && json_object_set_new(m, "options", strv_json(options)) != 0) {
		json_decref(m);
		return -ENOMEM;
	}
	return json_array_append_new(mounts, m) == 0 ? 0 : -ENOMEM;
}

static int add_bind(json_t *mounts, const char *source, const char *dest, bool readonly,
		    const char *const *extra)
{
	const char *opts[16] = {"rbind", "rprivate"};
	size_t n = 2;

	if (readonly)
		opts[n++] = "ro";
	for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 15; i++)
		opts[n++] = extra[i];
	opts[n] = NULL;
	return add_mount(mounts, dest, "bind", source, opts);
}

static int default_mounts(json_t *mounts, const struct rt_spec *spec)
{
	static const char *const dev[] = {"nosuid", "strictatime", "mode=755", "size=65536k", NULL};
	static const char *const pts[] = {"nosuid", "noexec", "newinstance", "ptmxmode=0666",
					  "mode=0620", "gid=5", NULL};
	static const char *const shm[] = {"nosuid", "noexec", "nodev", "mode=1777",
					  "size=65536k", NULL};
	static const char *const mq[] = {"nosuid", "noexec", "nodev", NULL};
	static const char *const sys_ro[] = {"nosuid", "noexec", "nodev", "ro", NULL};
	static const char *const sys_rw[] = {"nosuid", "noexec", "nodev", NULL};
	static const char *const cg_ro[] = {"nosuid", "noexec", "nodev", "relatime", "ro", NULL};
	static const char *const cg_rw[] = {"nosuid", "noexec", "nodev", "relatime", NULL};
	int rv;

	if ((rv = add_mount(mounts, "/proc", "proc", "proc", NULL)) != 0 ||
	    (rv = add_mount(mounts, "/dev", "tmpfs", "tmpfs", dev)) != 0 ||
	    (rv = add_mount(mounts, "/dev/pts", "devpts", "devpts", pts)) != 0 ||
	    (rv = add_mount(mounts, "/dev/shm", "tmpfs", "shm", shm)) != 0 ||
	    (rv = add_mount(mounts, "/dev/mqueue", "mqueue", "mqueue", mq)) != 0 ||
	    (rv = add_mount(mounts, "/sys", "sysfs", "sysfs",
			    spec->privileged ? sys_rw : sys_ro)) != 0 ||
	    (rv = add_mount(mounts, "/sys/fs/cgroup", "cgroup", "cgroup",
			    spec->privileged ? cg_rw : cg_ro)) != 0)
		return rv;
	return 0;
}

static int add_ns(json_t *list, const char *type, const struct rt_ns *ns)
{
	json_t *o;

	if (ns != NULL && ns->mode == RT_NS_HOST)
		return 0;
	if (ns != NULL && ns->mode == RT_NS_PATH && (ns->path == NULL || ns->path[0] != '/'))
		return -EINVAL;
	o = json_pack("{ss}", "type", type);
	if (o == NULL)
		return -ENOMEM;
	if (ns != NULL && ns->mode == RT_NS_PATH &&
	    json_object_set_new(o, "path", json_string(ns->path)) != 0) {
		json_decref(o);
		return -ENOMEM;
	}
	return json_array_append_new(list, o) == 0 ? 0 : -ENOMEM;
}

static int resources_json(const struct rt_spec *spec, json_t **ret)
{
	json_t *r = json_pack("{s[{sbss}]}", "devices", "allow", spec->privileged, "access", "rwm");
	json_t *cpu = NULL;

	if (r == NULL)
		return -ENOMEM;
	if (spec->memory_limit > 0 &&
	    json_object_set_new(r, "memory", json_pack("{sI}", "limit",
						       (json_int_t)spec->memory_limit)) != 0)
		goto nomem;
	if (spec->cpu_request_milli > 0 || spec->cpu_limit_milli > 0) {
		cpu = json_object();
		if (cpu == NULL || json_object_set_new(r, "cpu", cpu) != 0)
			goto nomem;
	}
	if (spec->cpu_request_milli > 0) {
		/* kubelet's MilliCPUToShares: 1024 shares per CPU, at least 2. */
		int64_t shares = spec->cpu_request_milli * 1024 / 1000;

		if (shares < 2)
			shares = 2;
		if (json_object_set_new(cpu, "shares", json_integer(shares)) != 0)
			goto nomem;
	}
	if (spec->cpu_limit_milli > 0) {
		/* kubelet's MilliCPUToQuota: period 100 ms, quota at least 1 ms. */
		int64_t quota = spec->cpu_limit_milli * 100000 / 1000;

		if (quota < 1000)
			quota = 1000;
		if (json_object_set_new(cpu, "quota", json_integer(quota)) != 0 ||
		    json_object_set_new(cpu, "period", json_integer(100000)) != 0)
			goto nomem;
	}
	if (spec->pids_limit > 0 &&
	    json_object_set_new(r, "pids", json_pack("{sI}", "limit",
						     (json_int_t)spec->pids_limit)) != 0)
		goto nomem;
	*ret = r;
	return 0;
nomem:
	json_decref(r);
	return -ENOMEM;
}

int rt_bundle_json(const struct rt_spec *spec, const char *rootfs, json_t **ret)
{
	json_t *cfg = NULL, *process, *user, *caps = NULL, *mounts, *linux_, *ns, *res = NULL,
	       *gids;
	int rv;

	if (spec->args == NULL || spec->args[0] == NULL || rootfs == NULL)
		return -EINVAL;
	rv = caps_json(spec, &caps);
	if (rv != 0)
		return rv;
	gids = json_array();
	for (size_t i = 0; gids != NULL && i < spec->n_additional_gids; i++)
		if (json_array_append_new(gids, json_integer(spec->additional_gids[i])) != 0)
			goto nomem;
	user = json_pack("{sIsIso}", "uid", (json_int_t)spec->uid, "gid", (json_int_t)spec->gid,
			 "additionalGids", gids);
	gids = NULL;
	/* No rlimits: the container inherits capstan-node's (raising NOFILE
	 * past the host's nr_open fails container start). */
	process = json_pack("{sbsosososssosbsi}", "terminal", 0, "user", user, "args",
			    strv_json(spec->args), "env",
			    spec->env != NULL ? strv_json(spec->env) : json_array(), "cwd",
			    spec->cwd != NULL ? spec->cwd : "/", "capabilities", caps,
			    "noNewPrivileges",
			    !spec->allow_privilege_escalation && !spec->privileged, "oomScoreAdj",
			    spec->oom_score_adj);
	caps = NULL;
	if (process == NULL)
		goto nomem;
	mounts = json_array();
	linux_ = json_object();
	ns = json_array();
	cfg = json_pack("{sssos{sssb}soso}", "ociVersion", "1.0.2", "process", process, "root",
			"path", rootfs, "readonly", spec->readonly_rootfs, "mounts", mounts, "linux",
			linux_);
	if (cfg == NULL || mounts == NULL || linux_ == NULL || ns == NULL) {
		json_decref(ns);
		goto nomem;
	}
	if (json_object_set_new(linux_, "namespaces", ns) != 0)
		goto nomem;
	if ((rv = add_ns(ns, "pid", NULL)) != 0 || (rv = add_ns(ns, "ipc", &spec->ipc)) != 0 ||
	    (rv = add_ns(ns, "uts", &spec->uts)) != 0 || (rv = add_ns(ns, "mount", NULL)) != 0 ||
	    (rv = add_ns(ns, "network", &spec->net)) != 0)
		goto err;
	if (spec->hostname != NULL && spec->uts.mode == RT_NS_PRIVATE &&
	    json_object_set_new(cfg, "hostname", json_string(spec->hostname)) != 0)
		goto nomem;
	if ((rv = default_mounts(mounts, spec)) != 0)
		goto err;
	if ((spec->hosts_file != NULL &&
	     (rv = add_bind(mounts, spec->hosts_file, "/etc/hosts", false, NULL)) != 0) ||
	    (spec->resolv_file != NULL &&
	     (rv = add_bind(mounts, spec->resolv_file, "/etc/resolv.conf", false, NULL)) != 0) ||
	    (spec->hostname_file != NULL &&
	     (rv = add_bind(mounts, spec->hostname_file, "/etc/hostname", false, NULL)) != 0))
		goto err;
	for (size_t i = 0; i < spec->n_mounts; i++) {
		const struct rt_mount *m = &spec->mounts[i];

		if (m->destination == NULL || m->destination[0] != '/' || m->source == NULL) {
			rv = -EINVAL;
			goto err;
		}
		if (m->type == NULL || strcmp(m->type, "bind") == 0)
			rv = add_bind(mounts, m->source, m->destination, m->readonly, m->options);
		else {
			const char *opts[16];
			size_t n = 0;

			if (m->readonly)
				opts[n++] = "ro";
			for (size_t k = 0; m->options != NULL && m->options[k] && n < 15; k++)
				opts[n++] = m->options[k];
			opts[n] = NULL;
			rv = add_mount(mounts, m->destination, m->type, m->source, opts);
		}
		if (rv != 0)
			goto err;
	}
	if ((rv = resources_json(spec, &res)) != 0)
		goto err;
	if (json_object_set_new(linux_, "resources", res) != 0)
		goto nomem;
	if (spec->cgroups_path != NULL &&
	    json_object_set_new(linux_, "cgroupsPath", json_string(spec->cgroups_path)) != 0)
		goto nomem;
	if (!spec->privileged &&
	    (json_object_set_new(linux_, "maskedPaths", strv_json(masked_paths)) != 0 ||
	     json_object_set_new(linux_, "readonlyPaths", strv_json(readonly_paths)) != 0))
		goto nomem;
	if (spec->annotations != NULL) {
		json_t *ann = json_object();

		if (ann == NULL || json_object_set_new(cfg, "annotations", ann) != 0)
			goto nomem;
		for (size_t i = 0; spec->annotations[i] != NULL; i++) {
			const char *eq = strchr(spec->annotations[i], '=');
			char key[256];

			if (eq == NULL || (size_t)(eq - spec->annotations[i]) >= sizeof(key)) {
				rv = -EINVAL;
				goto err;
			}
			memcpy(key, spec->annotations[i], (size_t)(eq - spec->annotations[i]));
			key[eq - spec->annotations[i]] = '\0';
			if (json_object_set_new(ann, key, json_string(eq + 1)) != 0)
				goto nomem;
		}
	}
	*ret = cfg;
	return 0;
nomem:
	rv = -ENOMEM;
err:
	json_decref(gids);
	json_decref(caps);
	json_decref(cfg);
	return rv;
}

int rt_bundle_write(struct rt *rt, const char *id, const struct rt_spec *spec)
{
	char *dir = rt_bundle_dir(rt, id), *path = NULL;
	json_t *cfg = NULL;
	int rv;

	if (dir == NULL)
		return -ENOMEM;
	if ((rv = rt_bundle_json(spec, "rootfs", &cfg)) != 0)
		goto out;
	if ((rv = rt__mkdir_p(dir, 0700)) != 0)
		goto out;
	path = rt__printf("%s/config.json", dir);
	rv = path != NULL ? rt__write_json_atomic(path, cfg) : -ENOMEM;
out:
	json_decref(cfg);
	free(path);
	free(dir);
	return rv;
}
