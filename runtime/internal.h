/* Private to runtime/: the runtime context and small file helpers. */
#ifndef CAPSTAN_RUNTIME_INTERNAL_H
#define CAPSTAN_RUNTIME_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "runtime/runtime.h"

struct rt {
	uv_loop_t *loop;
	char *state_dir;
	char *run_dir;
	char *runc;
	char *runc_root;
	char *shim;
	char *cni_bin_dir;
	char *cni_conf;
	char *pod_subnet;
	char *bridge;
	char *cgroup_parent;
	uint64_t log_max_size;
	unsigned log_max_files;
	bool overlay;
	unsigned pending;
	uv_mutex_t image_lock;
	/* rt_exit_watch */
	uv_fs_event_t *exit_watch;
	rt_exit_cb exit_cb;
	void *exit_data;
};

/* Newly allocated "a/b" (printf style); NULL on ENOMEM. */
char *rt__printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int64_t rt__now_ns(void);
size_t rt__strv_len(const char *const *v);
/* Copies @v (may be NULL: gives NULL with 0). */
int rt__strv_dup(const char *const *v, char ***ret);
/* Appends a copy of @s; -ENOMEM. */
int rt__strv_push(char ***v, const char *s);
/* A JSON array of strings to a vector; non-array or NULL gives NULL (0). */
int rt__strv_from_json(const json_t *a, char ***ret);
int rt__mkdir_p(const char *path, mode_t mode);
/* rm -rf that never crosses into another file system (a forgotten mount). */
int rt__rm_rf(const char *path);
/* Whole file, NUL-terminated; -errno. */
int rt__read_file(const char *path, char **ret, size_t *ret_len);
/* Writes @path.tmp, fsyncs, renames over @path. */
int rt__write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
int rt__write_json_atomic(const char *path, const json_t *j);
/* sha256 of a buffer as 64 lower-case hex digits + NUL (image.c). */
void rt__sha256_hex(const void *data, size_t len, char out[65]);
/* "sha256:<64 hex>" -> pointer to the hex part, or NULL if malformed. */
const char *rt__digest_hex(const char *digest);

/* image.c, exposed for tests. Unpacks the tar @path (any compression)
 * into @dest. With @whiteouts, ".wh.NAME" entries become overlayfs
 * whiteouts (a 0/0 character device) and ".wh..wh..opq" marks its
 * directory opaque (xattr trusted.overlay.opaque=y). Entries escaping
 * @dest are refused (-EINVAL). @ret_size (may be NULL) gets the bytes of
 * file data; @ret_msg (may be NULL) a message on error. */
int rt__unpack(const char *path, const char *dest, bool whiteouts, uint64_t *ret_size,
	       char **ret_msg);
/* Merges unpacked layer dirs (bottom first) into @dest as overlayfs would
 * show them (the copy fallback). */
int rt__layers_copy(const char *const *layers, const char *dest);

#endif
