/* From a pod's spec to the runtime's terms: environment, command line,
 * volumes written on disk, mounts, resources. BLOCKING where files are
 * written; meant for the thread pool on private copies of the objects.
 */
#ifndef CAPSTAN_NODE_PODSPEC_H
#define CAPSTAN_NODE_PODSPEC_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "runtime/runtime.h"

/* Everything borrowed. */
struct podspec_ctx {
	const json_t *pod;        /* the Pod */
	const json_t *configmaps; /* name -> ConfigMap of the pod's namespace */
	const json_t *secrets;    /* name -> Secret */
	const json_t *pv_paths;   /* claim name -> host directory */
	const char *pod_dir;      /* STATE/pods/<uid> */
	const char *pod_name;
	const char *pod_ip;       /* "" until known */
	const char *host_ip;
};

static inline const char *podspec_or(const char *a, const char *b)
{
	return a != NULL ? a : b;
}

/* The container's environment: the image's, envFrom, env (literal,
 * fieldRef, configMapKeyRef, secretKeyRef), PATH and HOSTNAME.
 * Errors: -ENOENT (a referenced object or key is missing: @why says which,
 * Kubernetes' CreateContainerConfigError), -ENOMEM. */
int podspec_env(const struct podspec_ctx *x, const json_t *ctr, char *const *image_env,
		char ***ret_env, char *why, size_t why_len);

/* command/args over the image's entrypoint/cmd, as Kubernetes combines
 * them. Errors: -EINVAL (nothing to run), -ENOMEM. */
int podspec_args(const json_t *ctr, char *const *entrypoint, char *const *cmd, char ***ret_args);

/* BLOCKING. Creates STATE/pods/<uid>/volumes/<name> for emptyDir,
 * configMap, secret and projected volumes (writing their files), and
 * DirectoryOrCreate host paths. Errors: -ENOENT (@why), file errors. */
int podspec_volumes(const struct podspec_ctx *x, char *why, size_t why_len);

/* The container's volumeMounts as rt_mounts; the sources live in
 * *@ret_strings (free both: free(mounts), node_strv_free(strings));
 * destinations borrow @ctr. Errors: -ENOENT (@why), -ENOMEM. */
int podspec_mounts(const struct podspec_ctx *x, const json_t *ctr, struct rt_mount **ret_mounts,
		   size_t *ret_n, char ***ret_strings, char *why, size_t why_len);

/* requests.cpu, limits.cpu (milli) and limits.memory (bytes); 0 unset. */
void podspec_resources(const json_t *ctr, int64_t *cpu_request, int64_t *cpu_limit,
		       int64_t *mem_limit);

/* BLOCKING. mkdir -p with mode 0755. */
int podspec_mkdir_p(const char *path);

#endif
