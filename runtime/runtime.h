/* The container runtime below capstan-node's pod logic: image store,
 * container root filesystems, OCI bundles, runc driven through a shim, pod
 * sandboxes (namespaces + CNI), exec and container log files.
 *
 * Threads and blocking. Functions marked BLOCKING touch the disk (or fork a
 * short-lived helper) and belong on the uv thread pool (uv_queue_work); they
 * are thread-safe with respect to each other (the image store has its own
 * lock). Functions marked ASYNC run on the loop given to rt_new, never
 * block, and call their callback exactly once, never from inside the call,
 * when they return 0 (if they return an error the callback never runs).
 * Everything else is pure (no I/O).
 *
 * Errors are negative errno values. Where a message helps (runc, CNI, image
 * import), callbacks and *_msg out-parameters give one line of text.
 *
 * Layout on disk (state_dir, default /var/lib/capstan/node):
 *   exits/<id>                         empty marker: <id> has an exit file
 *   images/layers/sha256/<diffid>/      unpacked layer (whiteouts applied at
 *                                       unpack time as overlayfs whiteouts)
 *   images/blobs/sha256/<digest>        image configs (JSON)
 *   images/repositories.json           name -> image id
 *   containers/<id>/config.json        the OCI bundle (bundle dir = this dir)
 *   containers/<id>/rootfs upper work  overlay mount point and its dirs
 *   containers/<id>/shim.pid pid       shim's and container init's pids
 *   containers/<id>/exit               written once by the shim (JSON, see
 *                                      struct rt_exit) when the container ends
 *   containers/<id>/runc.log           runc's own log
 * run_dir (default /run/capstan):
 *   netns/<pod-uid> utsns/<pod-uid> ipcns/<pod-uid>   bind-mounted namespaces
 *   runc/                              runc --root
 *
 * Container ids: capstan-<pod-uid>-<container-name>-<restart-count>
 * (rt_container_id). The pod sandbox is not a process: its network, UTS and
 * IPC namespaces are created by a short-lived helper and kept alive by bind
 * mounts (as `ip netns add` does), so no pause process exists and the
 * sandbox survives capstan-node restarts. Containers join them by path.
 *
 * Exit codes: runc keeps none, so every container is started by
 * capstan-shim (runtime/shim.c, a small conmon-like program): it runs
 * `runc create` and `runc start`, becomes the child subreaper of the
 * container's init, copies the container's stdout/stderr into the log file
 * (CRI format, rotated), and on exit writes containers/<id>/exit. The shim
 * is detached (own session), so capstan-node may restart at any time. The
 * agent learns of exits through rt_exit_watch (inotify on exits/) and
 * reads them with rt_exit_read.
 *
 * Images come from rt_image_import or from a registry (rt_image_pull,
 * runtime/registry.c); rt_image_get's -ENOENT means "not present here".
 */
#ifndef CAPSTAN_RUNTIME_H
#define CAPSTAN_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

/* ------------------------------------------------------------------ setup */

struct rt_config {
	const char *state_dir;     /* default /var/lib/capstan/node */
	const char *run_dir;       /* default /run/capstan */
	const char *runc;          /* runc binary; default "runc" (PATH) */
	const char *shim;          /* capstan-shim; default $CAPSTAN_SHIM, else
				    * runtime/capstan-shim next to the running
				    * program (build tree), else
				    * PKGLIBEXECDIR/capstan-shim */
	const char *cni_bin_dir;   /* default /usr/lib/cni */
	const char *cni_conf;      /* a .conflist file; NULL: state_dir/cni/
				    * capstan.conflist, written by rt_new from
				    * the two fields below */
	const char *pod_subnet;    /* default 10.88.0.0/16 */
	const char *bridge;        /* default capstan0 */
	const char *cgroup_parent; /* default "/capstan" (cgroupfs path) */
	uint64_t log_max_size;     /* bytes per log file; default 10 MiB */
	unsigned log_max_files;    /* files kept per container; default 5 */
};

struct rt;

/* BLOCKING. Creates the directories, checks whether overlayfs mounts work,
 * writes the default CNI conflist if cni_conf is NULL. @config is copied.
 * Errors: -ENOMEM, -EACCES/-EROFS (directories), -ENOENT (no shim found:
 * a warning only: rt_new succeeds and rt_container_start fails later). */
int rt_new(uv_loop_t *loop, const struct rt_config *config, struct rt **ret);
/* Frees. Precondition: no ASYNC operation pending (rt_pending() == 0) and
 * rt_exit_watch stopped (or its handle closed by running the loop once
 * after rt_exit_watch(rt, NULL, NULL)). Accepts NULL. */
void rt_free(struct rt *rt);
/* ASYNC operations in flight. */
unsigned rt_pending(const struct rt *rt);
/* Borrowed paths of the effective configuration. */
const char *rt_state_dir(const struct rt *rt);
const char *rt_run_dir(const struct rt *rt);
/* true when container root filesystems are overlay mounts (else copies). */
bool rt_overlay_supported(const struct rt *rt);

/* NULL-terminated string vectors used throughout; accepts NULL. */
void rt_strv_free(char **v);

/* ------------------------------------------------------------------ images */

struct rt_image {
	char *id;          /* "sha256:<hex of the config blob>" */
	char **names;      /* NULL-terminated full references, may be empty */
	char **entrypoint; /* NULL-terminated, NULL if unset */
	char **cmd;        /* NULL-terminated, NULL if unset */
	char **env;        /* NULL-terminated "K=V", NULL if unset */
	char *working_dir; /* NULL if unset */
	char *user;        /* NULL if unset; "uid", "uid:gid", "name[:group]" */
	char **layers;     /* NULL-terminated absolute unpacked layer dirs,
			    * bottom first */
	uint64_t size;     /* sum of the layers' uncompressed sizes */
	int64_t created;   /* seconds since the epoch, 0 if unknown */
};
void rt_image_free(struct rt_image *img); /* accepts NULL */

/* Pure. Normalises a reference as Docker does: "busybox" ->
 * "docker.io/library/busybox:latest", "foo/bar" -> "docker.io/foo/bar:latest",
 * "localhost/busybox" -> "localhost/busybox:latest", "x@sha256:..." kept.
 * Errors: -EINVAL (empty, upper case in the repository, bad characters),
 * -ENOMEM. */
int rt_image_normalize(const char *ref, char **ret);

/* BLOCKING. Imports @path: an OCI image layout directory, an OCI image
 * layout tar, or a docker-archive tar (`docker save`), compressed layers
 * (gzip, zstd, xz) included. Layers already present (by diff id) are not
 * unpacked again. Names come from the archive (OCI annotation
 * org.opencontainers.image.ref.name, docker RepoTags); @name (may be NULL)
 * is added (normalised) and, for a layout without names, is required.
 * A name already used moves to the new image. Only the first image of a
 * multi-image archive is imported. @ret_id (may be NULL) gets the id.
 * Errors: -ENOENT (no such path), -EINVAL (not an image, bad digest,
 * unsupported media type; *ret_msg says why), -EIO, -ENOMEM.
 * @ret_msg (may be NULL) gets a message on error; free it. */
int rt_image_import(struct rt *rt, const char *path, const char *name, char **ret_id,
		    char **ret_msg);

/* BLOCKING. Resolves @ref (any form rt_image_normalize takes, or an id or
 * unique id prefix of 12+ hex digits) to an image with its config.
 * Errors: -ENOENT (not found: ErrImagePull), -EINVAL (bad reference:
 * InvalidImageName), -EIO, -ENOMEM. */
int rt_image_get(struct rt *rt, const char *ref, struct rt_image **ret);

/* BLOCKING. Every image; free each with rt_image_free and the array with
 * free(). Errors: -EIO, -ENOMEM. */
int rt_image_list(struct rt *rt, struct rt_image ***ret, size_t *ret_n);

/* BLOCKING. Removes the name @ref; when an image has no name left (or
 * @ref is an id) the image and the layers no other image uses are deleted.
 * Layers used by existing containers stay mounted (overlay keeps them open)
 * but the agent should not remove images of running containers.
 * Errors: -ENOENT, -EINVAL, -EIO. */
int rt_image_remove(struct rt *rt, const char *ref);

/* BLOCKING. Resolves an image's User ("1000", "1000:1000", "nobody",
 * "nobody:nogroup", NULL = root) to ids through @rootfs's /etc/passwd and
 * /etc/group. Errors: -ENOENT (unknown user or group name), -EINVAL. */
int rt_image_user(const char *rootfs, const char *user, uint32_t *ret_uid, uint32_t *ret_gid);

/* ---------------------------------------------------------------- rootfs */

/* BLOCKING. Makes containers/<@id>/rootfs from @img's layers: an overlayfs
 * mount (lowerdirs = layers, upper/work in the container dir) when
 * supported, else a copy of the layers. Idempotent (an existing mount is
 * kept). @ret_path (may be NULL) gets the rootfs path (free it).
 * Errors: -EIO, -ENOMEM, -EINVAL (image without layers is fine: empty). */
int rt_rootfs_create(struct rt *rt, const struct rt_image *img, const char *id, char **ret_path);

/* BLOCKING. Unmounts and deletes containers/<@id>/ entirely (bundle,
 * rootfs, exit file) and exits/<@id>. The runc container must have been
 * deleted first (rt_container_delete).
 * Missing is fine. Errors: -EBUSY (still mounted after a lazy unmount
 * attempt), -EIO. */
int rt_container_dir_remove(struct rt *rt, const char *id);

/* Pure. The bundle directory containers/<@id> (free it), NULL on ENOMEM. */
char *rt_bundle_dir(const struct rt *rt, const char *id);

/* ------------------------------------------------------------- container id */

/* Pure. "capstan-<pod_uid>-<name>-<restart>" into @buf; -ENAMETOOLONG if it
 * does not fit, -EINVAL if a part has characters runc refuses. */
int rt_container_id(char *buf, size_t size, const char *pod_uid, const char *name,
		    unsigned restart);
/* Pure. Splits an id made by rt_container_id; the pod uid is 36 characters
 * (a UUID). @pod_uid needs 37 bytes, @name 64. Errors: -EINVAL. */
int rt_container_id_parse(const char *id, char pod_uid[37], char name[64], unsigned *ret_restart);

/* ---------------------------------------------------------------- bundle */

enum rt_ns_mode {
	RT_NS_PRIVATE = 0, /* a new namespace for this container */
	RT_NS_HOST,        /* the host's: the type is left out of config.json */
	RT_NS_PATH,        /* join the namespace file at .path */
};
struct rt_ns {
	enum rt_ns_mode mode;
	const char *path; /* RT_NS_PATH only */
};

struct rt_mount {
	const char *source;      /* host path (bind) or fs name */
	const char *destination; /* absolute path in the container */
	const char *type;        /* NULL: "bind" */
	bool readonly;
	const char *const *options; /* extra options, NULL-terminated, or NULL */
};

/* What the agent decides for one container; every pointer is borrowed. */
struct rt_spec {
	const char *const *args;  /* NULL-terminated, required */
	const char *const *env;   /* NULL-terminated "K=V", or NULL */
	const char *cwd;          /* NULL: "/" */
	uint32_t uid, gid;
	const uint32_t *additional_gids;
	size_t n_additional_gids;
	bool privileged;             /* every capability, devices untouched */
	const char *const *cap_add;  /* "NET_ADMIN" or "CAP_NET_ADMIN"; "ALL" */
	const char *const *cap_drop; /* same; "ALL" drops every default one */
	bool allow_privilege_escalation; /* false: noNewPrivileges */
	bool readonly_rootfs;
	const char *hostname;     /* set only with a private UTS namespace */
	struct rt_ns net, uts, ipc; /* pid, mount (and cgroup) are private */
	const struct rt_mount *mounts; /* after the defaults, may shadow them */
	size_t n_mounts;
	/* Host files bind-mounted (read-only), or NULL to keep the image's. */
	const char *hosts_file;    /* -> /etc/hosts */
	const char *resolv_file;   /* -> /etc/resolv.conf */
	const char *hostname_file; /* -> /etc/hostname */
	const char *cgroups_path;  /* e.g. "/capstan/<pod-uid>/<name>"; NULL:
				    * runc's default */
	int64_t cpu_request_milli; /* 0: unset; -> cpu.shares (2 minimum) */
	int64_t cpu_limit_milli;   /* 0: unset; -> quota/period 100000 */
	int64_t memory_limit;      /* bytes; 0: unset */
	int64_t pids_limit;        /* 0: unset */
	int oom_score_adj;
	const char *const *annotations; /* "k=v" NULL-terminated, or NULL */
};

/* The default capability set (Docker's/containerd's), NULL-terminated
 * "CAP_..." names (static). */
extern const char *const rt_default_caps[];

/* Pure. The OCI runtime config (config.json) for @spec with root.path
 * @rootfs (absolute or relative to the bundle). Default mounts: /proc,
 * /dev (tmpfs), /dev/pts, /dev/shm, /dev/mqueue, /sys (ro),
 * /sys/fs/cgroup (ro), then @spec's. Masked and read-only paths as runc's
 * `spec` does. Errors: -EINVAL (no args, bad capability name), -ENOMEM. */
int rt_bundle_json(const struct rt_spec *spec, const char *rootfs, json_t **ret);

/* BLOCKING. Writes containers/<@id>/config.json (atomically) with
 * root.path "rootfs". Errors: as rt_bundle_json, -EIO. */
int rt_bundle_write(struct rt *rt, const char *id, const struct rt_spec *spec);

/* ----------------------------------------------------------------- spawn */

/* Result of one child process run to completion. */
struct rt_result {
	int64_t exit_status; /* valid when term_signal == 0 */
	int term_signal;     /* killed by this signal (timeout: SIGKILL) */
	bool timed_out;
	char *out;           /* stdout, NUL-terminated (borrowed for the cb) */
	size_t out_len;
	char *err;           /* stderr, NUL-terminated (borrowed for the cb) */
	size_t err_len;
};
/* @err: 0 (the process ran, see @res), or the spawn error (-ENOENT for a
 * missing program), or -ECANCELED (rt_free). @res is NULL when err != 0. */
typedef void (*rt_result_cb)(void *data, int err, const struct rt_result *res);

/* ASYNC. Runs @argv (argv[0] searched in PATH) with @env (NULL: inherit),
 * feeds @in (copied; may be NULL) to its stdin then closes it, captures
 * stdout and stderr (each capped at 1 MiB), kills it with SIGKILL after
 * @timeout_ms (0: none). Errors: -ENOMEM, spawn errors. */
int rt_spawn(struct rt *rt, const char *const *argv, const char *const *env, const void *in,
	     size_t in_len, unsigned timeout_ms, rt_result_cb cb, void *data);

/* ------------------------------------------------------------------ runc */

/* Pure argv builders (free with rt_strv_free; NULL on ENOMEM), for callers
 * that uv_spawn runc themselves; the ASYNC helpers below use them. All
 * carry `--root <run_dir>/runc`. */
char **rt_runc_argv_state(const struct rt *rt, const char *id);
char **rt_runc_argv_list(const struct rt *rt);
char **rt_runc_argv_kill(const struct rt *rt, const char *id, int signal, bool all);
char **rt_runc_argv_delete(const struct rt *rt, const char *id, bool force);

enum rt_status {
	RT_STATUS_UNKNOWN = 0,
	RT_STATUS_CREATING, /* runc "creating" */
	RT_STATUS_CREATED,  /* runc "created": init waits for start */
	RT_STATUS_RUNNING,
	RT_STATUS_PAUSED,
	RT_STATUS_STOPPED,
};
struct rt_state {
	char *id;
	enum rt_status status;
	int pid;           /* container init's host pid, 0 if none */
	char *bundle;
	int64_t created;   /* ns since the epoch, 0 if unknown */
};
void rt_state_clear(struct rt_state *s); /* frees the strings */
/* Pure parsers of `runc state` / `runc list --format json` output.
 * Errors: -EINVAL (not the expected JSON), -ENOMEM. The list is an array
 * of @ret_n states; free each with rt_state_clear and the array. */
int rt_runc_parse_state(const char *json, size_t len, struct rt_state *ret);
int rt_runc_parse_list(const char *json, size_t len, struct rt_state **ret, size_t *ret_n);

/* Container lifecycle, ASYNC. @msg is one line (runc's error, or NULL). */
typedef void (*rt_done_cb)(void *data, int err, const char *msg);

/* ASYNC. Starts container @id from its bundle (rt_rootfs_create +
 * rt_bundle_write done) through capstan-shim: runc create, runc start.
 * The container's stdout/stderr go to @log_path in CRI format (rotated per
 * the config; the directory must exist), stdin is /dev/null. The callback
 * runs once the container process runs (err 0) or failed to start
 * (-EIO: @msg has runc's error, e.g. the executable was not found;
 * the exit file then holds exit code 128 and the message). */
int rt_container_start(struct rt *rt, const char *id, const char *log_path, rt_done_cb cb,
		       void *data);

/* ASYNC. `runc kill [--all] id SIG`. -ENOENT-like failures (the container
 * is gone) give err -ENOENT. */
int rt_container_kill(struct rt *rt, const char *id, int signal, bool all, rt_done_cb cb,
		      void *data);
/* ASYNC. `runc delete [--force] id`; a missing container is success. Does
 * not touch the bundle dir (rt_container_dir_remove does). */
int rt_container_delete(struct rt *rt, const char *id, bool force, rt_done_cb cb, void *data);

typedef void (*rt_state_cb)(void *data, int err, const struct rt_state *state);
/* ASYNC. `runc state id`: err -ENOENT when runc does not know it. */
int rt_container_state(struct rt *rt, const char *id, rt_state_cb cb, void *data);

typedef void (*rt_list_cb)(void *data, int err, const struct rt_state *states, size_t n);
/* ASYNC. `runc list`: every container under our runc root (adoption after
 * a restart: ids parse with rt_container_id_parse). */
int rt_container_list(struct rt *rt, rt_list_cb cb, void *data);

/* How a container ended, from containers/<id>/exit (written by the shim).
 * WARNING: the file is JSON read across capstan-node versions:
 * {"exitCode":N,"signal":S,"startedAt":NS,"finishedAt":NS,"error":"..."} */
struct rt_exit {
	int exit_code;       /* 128+signal when killed by a signal */
	int signal;          /* 0 unless killed */
	int64_t started_at;  /* ns since the epoch, 0 if it never started */
	int64_t finished_at; /* ns since the epoch */
	bool oom_killed;     /* the memory cgroup recorded an OOM kill */
	char error[256];     /* why it could not start, or "" */
};
/* BLOCKING (one small file). Errors: -ENOENT (not exited yet, or never
 * started by a shim), -EINVAL (corrupt). */
int rt_exit_read(struct rt *rt, const char *id, struct rt_exit *ret);
/* BLOCKING (kill(2) on the pid in shim.pid). true while the shim of @id
 * lives: a container without a live shim and without an exit file died
 * with its exit code lost (the agent reports reason "Unknown"). */
bool rt_shim_alive(struct rt *rt, const char *id);

/* ASYNC (persistent). Calls @cb(data, id) on the loop whenever a shim
 * records an exit (inotify on state_dir/exits/, where the shim creates an
 * empty exits/<id> after writing containers/<id>/exit); a failed start
 * notifies too. @cb may see an id more than once: read rt_exit_read and
 * act idempotently. At most one watcher per rt; @cb NULL stops it. Exits
 * that happened while nobody watched are found with rt_exit_read after
 * rt_container_list. Errors: -EEXIST, uv errors. */
typedef void (*rt_exit_cb)(void *data, const char *id);
int rt_exit_watch(struct rt *rt, rt_exit_cb cb, void *data);

/* ------------------------------------------------------------------ exec */

struct rt_exec_opts {
	const char *const *args; /* required */
	const char *const *env;  /* "K=V" added to the container's, or NULL */
	const char *cwd;         /* NULL: the container's */
	bool set_user;           /* false: the container's user */
	uint32_t uid, gid;
	bool tty;                /* not supported yet: -ENOTSUP */
};
/* Pure. `runc exec [--user u:g] [--cwd c] [--env K=V]... id args...`
 * (free with rt_strv_free; NULL on ENOMEM or tty). For kubectl exec:
 * uv_spawn it with your own pipes (stdin stays open while the user types). */
char **rt_runc_argv_exec(const struct rt *rt, const char *id, const struct rt_exec_opts *opts);
/* ASYNC. Exec probes: runs @opts in @id, captures output, kills runc exec
 * after @timeout_ms (res->timed_out; the exec'd process itself may linger
 * in the container until it ends or the container stops). res->
 * exit_status is the command's exit code (runc exec passes it through;
 * 255 + stderr "exec failed" for a missing command). */
int rt_exec(struct rt *rt, const char *id, const struct rt_exec_opts *opts, unsigned timeout_ms,
	    rt_result_cb cb, void *data);

/* ------------------------------------------------------------- sandboxes */

struct rt_sandbox_opts {
	const char *pod_uid;  /* required: names the namespace files */
	const char *hostname; /* pod name (UTS namespace); NULL: uid */
	bool host_network;    /* no net namespace, no UTS namespace, no CNI */
	bool host_ipc;        /* no IPC namespace */
};
/* Paths of a sandbox's namespaces (NULL where the host's is used). */
struct rt_sandbox {
	char *net_path; /* run_dir/netns/<uid> */
	char *uts_path; /* run_dir/utsns/<uid> */
	char *ipc_path; /* run_dir/ipcns/<uid> */
	char *ip;       /* pod IP from CNI ("10.88.0.5"), NULL for host network */
};
void rt_sandbox_clear(struct rt_sandbox *sb);

/* BLOCKING (forks a helper that unshares and bind-mounts; milliseconds).
 * Creates the namespaces @opts asks for, sets the hostname, brings up lo.
 * Idempotent: existing namespace files are kept. Does not run CNI.
 * Errors: -EPERM (not root), -EINVAL, -ENOMEM, -EIO. */
int rt_sandbox_ns_create(struct rt *rt, const struct rt_sandbox_opts *opts, struct rt_sandbox *ret);
/* BLOCKING. Unmounts and deletes the namespace files of @pod_uid (missing
 * ones are fine). Run CNI DEL first. */
int rt_sandbox_ns_remove(struct rt *rt, const char *pod_uid);
/* BLOCKING. Pod uids that have namespace files (cleanup after a restart);
 * free with rt_strv_free. */
int rt_sandbox_list(struct rt *rt, char ***ret);

/* @ip: the pod's IPv4 address (borrowed), NULL on error or DEL. */
typedef void (*rt_cni_cb)(void *data, int err, const char *ip, const char *msg);
/* ASYNC. CNI ADD of the conflist's plugins in order (CNI_CONTAINERID
 * capstan-<uid>, CNI_IFNAME eth0, CNI_NETNS @netns_path), then the IP of
 * the final result. Errors: -EIO (a plugin failed: @msg), -EINVAL (bad
 * conflist or result), -ETIMEDOUT (30 s). */
int rt_cni_add(struct rt *rt, const char *pod_uid, const char *netns_path, rt_cni_cb cb,
	       void *data);
/* ASYNC. CNI DEL in reverse order; releases the IP even when the netns is
 * gone (@netns_path may be NULL). */
int rt_cni_del(struct rt *rt, const char *pod_uid, const char *netns_path, rt_cni_cb cb,
	       void *data);

/* Pure. The default conflist (bridge @bridge with isGateway, no default
 * route, no IP masquerade, host-local IPAM over @subnet; rt_new adds the
 * IPAM dataDir state_dir/cni/networks). lo is brought up by
 * rt_sandbox_ns_create, not by a plugin. Errors: -EINVAL (bad subnet or
 * bridge name), -ENOMEM. */
int rt_cni_default_conflist(const char *bridge, const char *subnet, json_t **ret);

/* -------------------------------------------------------------- log files */

/* Log line format (CRI): "<RFC3339Nano UTC> <stdout|stderr> <F|P> <text>\n";
 * P marks a partial line (the text continues in the next P/F entry of the
 * same stream; lines longer than 16 KiB are split). Rotation: path is the
 * live file, path.1 ... path.<max-1> the older ones (path.1 the newest). */

struct rt_logw;
/* BLOCKING. Opens @path for appending (O_CLOEXEC); @max_size 0: no
 * rotation. Errors: open errors, -ENOMEM. */
int rt_logw_open(const char *path, uint64_t max_size, unsigned max_files, struct rt_logw **ret);
/* BLOCKING. Appends @len bytes of stream @stream (1 stdout, 2 stderr) read
 * at @now_ns; complete lines are written at once, a trailing partial line
 * is buffered (per stream) until its newline, 16 KiB or rt_logw_flush. */
int rt_logw_write(struct rt_logw *w, int stream, const char *data, size_t len, int64_t now_ns);
/* BLOCKING. Writes buffered partial lines as P entries. */
int rt_logw_flush(struct rt_logw *w, int64_t now_ns);
void rt_logw_close(struct rt_logw *w); /* flushes; accepts NULL */

/* Pure. Formats @ns as RFC3339Nano UTC ("2024-01-02T03:04:05.123456789Z")
 * into @buf (at least 36 bytes); returns the length. */
size_t rt_log_time(int64_t ns, char *buf, size_t size);
/* Pure. Parses an RFC3339 time (any fraction, Z or +hh:mm) to ns.
 * Errors: -EINVAL. */
int rt_log_parse_time(const char *s, size_t len, int64_t *ret_ns);

struct rt_log_entry {
	int64_t time;     /* ns since the epoch */
	int stream;       /* 1 stdout, 2 stderr */
	bool partial;     /* P */
	const char *text; /* borrowed, without the newline */
	size_t len;
};
/* Pure. Parses one line (without its newline). Errors: -EINVAL. */
int rt_log_parse_line(const char *line, size_t len, struct rt_log_entry *ret);

struct rt_log_opts {
	int64_t tail;        /* last N lines; -1: all */
	int64_t since;       /* ns since the epoch; 0: from the start */
	int64_t limit_bytes; /* stop after this much output; 0: no limit */
	bool timestamps;     /* prefix each line with its RFC3339Nano time */
	int streams;         /* bit 1 stdout, bit 2 stderr; 0: both */
};
/* Called with one output line (text + "\n", with the timestamp prefix if
 * asked): what `kubectl logs` prints. Return non-zero to stop. */
typedef int (*rt_log_line_cb)(void *data, const char *line, size_t len);

/* BLOCKING. Reads @path's rotated files then @path, oldest first, joining
 * P entries, applying @opts. @ret_offset (may be NULL) gets the end offset
 * of @path read, for rt_log_follow. Errors: -ENOENT (no log), -EIO. */
int rt_log_read(const char *path, const struct rt_log_opts *opts, rt_log_line_cb cb, void *data,
		uint64_t *ret_offset);

/* ASYNC (persistent). Follows @path from @offset (from rt_log_read),
 * calling @cb for each new line as it is written, across rotations
 * (polling every 250 ms and on inotify events). Stop with
 * rt_log_follow_stop (no callback after it returns; freed later). */
struct rt_log_follow;
int rt_log_follow_start(uv_loop_t *loop, const char *path, uint64_t offset,
			const struct rt_log_opts *opts, rt_log_line_cb cb, void *data,
			struct rt_log_follow **ret);
void rt_log_follow_stop(struct rt_log_follow *f);

/* ------------------------------------------------------------------ pull */

/* Pulling from OCI registries (the distribution API: Docker Hub, Debian's
 * docker-registry, Harbor, ...). Only configured registries are contacted.
 * Supported: OCI image index/manifest and Docker v2 schema 2 manifest
 * list/manifest (an index picks linux/<this machine's arch>); anonymous,
 * basic auth, and the token flow (401 WWW-Authenticate: Bearer realm=,
 * service=, scope= -> GET realm, with the credentials if set, -> Bearer
 * token on every later request). Blobs are checked against their sha256
 * digests as they stream to disk. Layers whose diff id is already
 * unpacked are not downloaded again. */

/* One registry; every pointer is borrowed (for the call only). */
struct rt_registry {
	const char *host;     /* the reference domain it serves, as written in
			       * image names: "localhost:5000", "10.0.0.1:5000",
			       * "registry.example.com", "docker.io" */
	const char *url;      /* base URL: "http://127.0.0.1:5000" (plain) or
			       * "https://reg.example:5000" (TLS); NULL:
			       * https://<host>, and https://registry-1.docker.io
			       * for docker.io */
	const char *ca_file;  /* PEM CA bundle trusted for this registry and
			       * its token service; NULL: the system's CAs */
	const char *username; /* basic auth (sent to the registry on a Basic
			       * challenge, to the token realm on a Bearer
			       * one); NULL: anonymous */
	const char *password;
};

struct rt_pull_opts {
	const struct rt_registry *registries; /* matched by host, first wins */
	size_t n_registries;
	unsigned connect_timeout_s; /* 0: 10 */
	unsigned stall_timeout_s;   /* abort a transfer idle this long; 0: 60 */
	/* May be NULL. Set *cancel to non-zero from any thread (e.g.
	 * __atomic_store_n(&c, 1, __ATOMIC_RELAXED) on the loop when the pod
	 * goes away): the pull stops soon with -ECANCELED. */
	const int *cancel;
};

/* A parsed, normalised image reference (rt_image_normalize's form). */
struct rt_image_ref {
	char *name;       /* "localhost:5000/busybox:latest" */
	char *domain;     /* "localhost:5000", "docker.io" */
	char *repository; /* "busybox", "library/busybox" */
	char *tag;        /* "latest"; NULL when only a digest is given */
	char *digest;     /* "sha256:<64 hex>" or NULL */
};
/* Pure. Normalises and splits @ref. Errors: -EINVAL, -ENOMEM. */
int rt_image_ref_parse(const char *ref, struct rt_image_ref *ret);
void rt_image_ref_clear(struct rt_image_ref *r); /* frees the strings */

/* BLOCKING (network and disk: run it on the thread pool with
 * uv_queue_work; several pulls may run at once). Pulls @ref (any form
 * rt_image_normalize takes; a digest pins the manifest) from the
 * registry @opts configures for its domain, then imports it as
 * rt_image_import does: on success rt_image_get(rt, ref) finds it and
 * @ret_id (may be NULL) gets its id ("sha256:...", free it). Pulling an
 * image already present refreshes its name (the tag may have moved) and
 * downloads only missing layers.
 * Errors (the agent reports every one as reason ErrImagePull with
 * *ret_msg as message, then ImagePullBackOff; -EINVAL as
 * InvalidImageName):
 *   -EINVAL        bad reference
 *   -ENOENT        not found: no registry configured for the domain, or
 *                  the repository, tag, digest or a blob is unknown
 *   -EACCES        unauthorized: credentials missing or refused (401/403,
 *                  or the token service refused them)
 *   -EHOSTUNREACH  registry unreachable: DNS, connect, TLS (certificate
 *                  not trusted), or a timeout
 *   -EBADMSG       a digest or size mismatch, or a malformed manifest
 *   -ENOTSUP       no manifest for linux/<arch>, schema 1, unknown media
 *                  type
 *   -ECANCELED     *opts->cancel was set
 *   -EIO, -ENOSPC  registry 5xx answers, local disk errors, unpack errors
 *   -ENOMEM
 * @ret_msg (may be NULL) gets one line on error, e.g. 'failed to pull
 * image "localhost:5000/nope:latest": localhost:5000/nope:latest: not
 * found (manifest unknown)'; free it. */
int rt_image_pull(struct rt *rt, const struct rt_pull_opts *opts, const char *ref,
		  char **ret_id, char **ret_msg);

#endif
