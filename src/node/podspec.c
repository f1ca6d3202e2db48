/* From a pod's spec to what the runtime runs: environment, command line,
 * volumes on disk and mounts (called on the thread pool, on private
 * copies of the objects; see podspec.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "src/ctrl/quantity.h"
#include "src/lib/pki.h"
#include "src/node/creds.h"
#include "src/node/podspec.h"
#include "src/node/projected.h"

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t i, n = strlen(path);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return -errno;
		if (i < n)
			buf[i] = '/';
	}
	return 0;
}

int podspec_mkdir_p(const char *path)
{
	return mkdir_p(path, 0755);
}

/* Decoded value of a Secret's data entry (base64), malloc'd. */
static char *b64_decode(const char *in, size_t *ret_len)
{
	size_t n = strlen(in), pad = 0;
	unsigned char *out = malloc(n / 4 * 3 + 4);
	int len;

	if (out == NULL)
		return NULL;
	len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
	if (len < 0) {
		free(out);
		return NULL;
	}
	while (n > 0 && in[n - 1] == '=') {
		pad++;
		n--;
	}
	*ret_len = (size_t)len - pad;
	out[*ret_len] = '\0';
	return (char *)out;
}

/* The bytes of key @key of ConfigMap/Secret @obj; malloc'd. */
static char *data_value(const json_t *obj, bool secret, const char *key, size_t *ret_len)
{
	const char *v = json_string_value(json_object_get(json_object_get(obj, "data"), key));
	char *copy;

	if (v == NULL) {
		/* ConfigMap binaryData and Secret stringData are base64 / plain. */
		v = json_string_value(json_object_get(json_object_get(obj, "binaryData"), key));
		if (v != NULL)
			return b64_decode(v, ret_len);
		return NULL;
	}
	if (secret)
		return b64_decode(v, ret_len);
	copy = strdup(v);
	if (copy != NULL)
		*ret_len = strlen(v);
	return copy;
}

static const json_t *find_obj(const json_t *map, const char *name)
{
	const json_t *o = json_object_get(map, name);

	return json_is_object(o) ? o : NULL;
}

static int env_set(char ***env, const char *k, const char *v)
{
	size_t n = node_strv_len(*env), i, kl = strlen(k);
	char *kv = malloc(kl + strlen(v) + 2), **nv;

	if (kv == NULL)
		return -ENOMEM;
	sprintf(kv, "%s=%s", k, v);
	for (i = 0; i < n; i++) {
		if (strncmp((*env)[i], k, kl) == 0 && (*env)[i][kl] == '=') {
			free((*env)[i]);
			(*env)[i] = kv;
			return 0;
		}
	}
	nv = realloc(*env, (n + 2) * sizeof(*nv));
	if (nv == NULL) {
		free(kv);
		return -ENOMEM;
	}
	nv[n] = kv;
	nv[n + 1] = NULL;
	*env = nv;
	return 0;
}

static const char *field_ref(const struct podspec_ctx *x, const char *path)
{
	const json_t *meta = json_object_get(x->pod, "metadata");
	const json_t *spec = json_object_get(x->pod, "spec");

	if (strcmp(path, "metadata.name") == 0)
		return json_string_value(json_object_get(meta, "name"));
	if (strcmp(path, "metadata.namespace") == 0)
		return json_string_value(json_object_get(meta, "namespace"));
	if (strcmp(path, "metadata.uid") == 0)
		return json_string_value(json_object_get(meta, "uid"));
	if (strcmp(path, "status.podIP") == 0)
		return x->pod_ip;
	if (strcmp(path, "status.hostIP") == 0)
		return x->host_ip;
	if (strcmp(path, "spec.nodeName") == 0)
		return json_string_value(json_object_get(spec, "nodeName"));
	if (strcmp(path, "spec.serviceAccountName") == 0)
		return json_string_value(json_object_get(spec, "serviceAccountName"));
	if (strncmp(path, "metadata.labels['", 17) == 0 ||
	    strncmp(path, "metadata.annotations['", 22) == 0) {
		bool labels = path[9] == 'l';
		const char *k = path + (labels ? 17 : 22);
		char key[256];
		size_t n = strcspn(k, "'");
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, k, n);
		key[n] = '\0';
		return json_string_value(json_object_get(
			json_object_get(meta, labels ? "labels" : "annotations"), key));
	}
	return NULL;
}

int podspec_env(const struct podspec_ctx *x, const json_t *ctr, char *const *image_env,
		char ***ret_env, char *why, size_t why_len)
{
	char **env = NULL;
	const json_t *e, *from;
	size_t i, j;
	int rv = 0;

	for (i = 0; image_env != NULL && image_env[i] != NULL && rv == 0; i++) {
		char *eq = strchr(image_env[i], '='), *k;
		if (eq == NULL)
			continue;
		k = strndup(image_env[i], (size_t)(eq - image_env[i]));
		rv = k != NULL ? env_set(&env, k, eq + 1) : -ENOMEM;
		free(k);
	}
	json_array_foreach (json_object_get(ctr, "envFrom"), i, from) {
		const json_t *ref = json_object_get(from, "configMapRef");
		bool secret = ref == NULL;
		const char *prefix = json_string_value(json_object_get(from, "prefix"));
		const json_t *obj, *data;
		const char *k;
		json_t *v;
		if (secret)
			ref = json_object_get(from, "secretRef");
		if (ref == NULL || rv != 0)
			continue;
		obj = find_obj(secret ? x->secrets : x->configmaps,
			       podspec_or(json_string_value(json_object_get(ref, "name")), ""));
		if (obj == NULL) {
			if (json_is_true(json_object_get(ref, "optional")))
				continue;
			snprintf(why, why_len, "%s \"%s\" not found", secret ? "secret" : "configmap",
				 json_string_value(json_object_get(ref, "name")));
			rv = -ENOENT;
			break;
		}
		data = json_object_get(obj, "data");
		json_object_foreach ((json_t *)data, k, v) {
			char name[512];
			size_t len;
			char *val = data_value(obj, secret, k, &len);
			(void)v;
			if (val == NULL)
				continue;
			snprintf(name, sizeof(name), "%s%s", podspec_or(prefix, ""), k);
			rv = env_set(&env, name, val);
			free(val);
			if (rv != 0)
				break;
		}
	}
	json_array_foreach (json_object_get(ctr, "env"), j, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		const json_t *vf = json_object_get(e, "valueFrom");
		if (name == NULL || rv != 0)
			continue;
		if (vf == NULL) {
			rv = env_set(&env, name,
				     podspec_or(json_string_value(json_object_get(e, "value")), ""));
			continue;
		}
		if (json_object_get(vf, "fieldRef") != NULL) {
			const char *p = json_string_value(
				json_object_get(json_object_get(vf, "fieldRef"), "fieldPath"));
			const char *val = p != NULL ? field_ref(x, p) : NULL;
			rv = env_set(&env, name, podspec_or(val, ""));
			continue;
		}
		{
			const json_t *ref = json_object_get(vf, "configMapKeyRef");
			bool secret = ref == NULL;
			const json_t *obj;
			const char *key;
			char *val;
			size_t len;
			if (secret)
				ref = json_object_get(vf, "secretKeyRef");
			if (ref == NULL)
				continue;
			key = json_string_value(json_object_get(ref, "key"));
			obj = find_obj(secret ? x->secrets : x->configmaps,
				       podspec_or(json_string_value(json_object_get(ref, "name")), ""));
			val = obj != NULL && key != NULL ? data_value(obj, secret, key, &len) : NULL;
			if (val == NULL) {
				if (json_is_true(json_object_get(ref, "optional")))
					continue;
				snprintf(why, why_len, "couldn't find key %s in %s %s",
					 podspec_or(key, "?"), secret ? "Secret" : "ConfigMap",
					 json_string_value(json_object_get(ref, "name")));
				rv = -ENOENT;
				break;
			}
			rv = env_set(&env, name, val);
			free(val);
		}
	}
	if (rv == 0 && x->pod_name != NULL) {
		bool has_path = false;
		for (i = 0; env != NULL && env[i] != NULL; i++)
			has_path |= strncmp(env[i], "PATH=", 5) == 0;
		if (!has_path)
			rv = env_set(&env, "PATH",
				     "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
		if (rv == 0)
			rv = env_set(&env, "HOSTNAME", x->pod_name);
	}
	if (rv != 0) {
		node_strv_free(env);
		return rv;
	}
	if (env == NULL)
		env = calloc(1, sizeof(*env));
	*ret_env = env;
	return env != NULL ? 0 : -ENOMEM;
}

static int strv_from_json(const json_t *arr, char ***v)
{
	const json_t *s;
	size_t i;
	int rv;

	json_array_foreach ((json_t *)arr, i, s) {
		/* node_strv_add drops duplicates: arguments may repeat. */
		size_t n = node_strv_len(*v);
		char **nv = realloc(*v, (n + 2) * sizeof(*nv));
		if (nv == NULL)
			return -ENOMEM;
		*v = nv;
		nv[n] = strdup(podspec_or(json_string_value(s), ""));
		nv[n + 1] = NULL;
		if (nv[n] == NULL)
			return -ENOMEM;
	}
	rv = 0;
	return rv;
}

static int strv_append(char ***v, char *const *src)
{
	size_t i;

	for (i = 0; src != NULL && src[i] != NULL; i++) {
		size_t n = node_strv_len(*v);
		char **nv = realloc(*v, (n + 2) * sizeof(*nv));
		if (nv == NULL)
			return -ENOMEM;
		*v = nv;
		nv[n] = strdup(src[i]);
		nv[n + 1] = NULL;
		if (nv[n] == NULL)
			return -ENOMEM;
	}
	return 0;
}

int podspec_args(const json_t *ctr, char *const *entrypoint, char *const *cmd, char ***ret_args)
{
	const json_t *command = json_object_get(ctr, "command");
	const json_t *args = json_object_get(ctr, "args");
	char **v = NULL;
	int rv;

	if (json_array_size(command) > 0) {
		rv = strv_from_json(command, &v);
		if (rv == 0)
			rv = strv_from_json(args, &v);
	} else {
		rv = strv_append(&v, entrypoint);
		if (rv == 0)
			rv = json_array_size(args) > 0 ? strv_from_json(args, &v)
						      : strv_append(&v, cmd);
	}
	if (rv == 0 && node_strv_len(v) == 0)
		rv = -EINVAL;
	if (rv != 0) {
		node_strv_free(v);
		return rv;
	}
	*ret_args = v;
	return 0;
}

static int write_file(const char *dir, const char *name, const char *data, size_t len,
		      mode_t mode)
{
	char path[PATH_MAX], *slash;
	int rv;

	if (strstr(name, "..") != NULL || name[0] == '/')
		return -EINVAL;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return -ENAMETOOLONG;
	slash = strrchr(path, '/');
	*slash = '\0';
	rv = mkdir_p(path, 0755);
	*slash = '/';
	if (rv != 0)
		return rv;
	return pki_write_file(path, data, len, mode);
}

/* Writes a ConfigMap/Secret volume (@src the volume's configMap/secret
 * member) into @dir. */
static int write_keys(const struct podspec_ctx *x, const json_t *src, bool secret,
		      const char *dir, char *why, size_t why_len)
{
	const char *name = json_string_value(json_object_get(src, secret ? "secretName" : "name"));
	const json_t *obj = find_obj(secret ? x->secrets : x->configmaps, podspec_or(name, ""));
	const json_t *items = json_object_get(src, "items"), *it;
	json_int_t mode = json_integer_value(json_object_get(src, "defaultMode"));
	const char *k;
	json_t *v;
	size_t i, len;
	int rv = 0;

	if (mode <= 0)
		mode = 0644;
	if (obj == NULL) {
		if (json_is_true(json_object_get(src, "optional")))
			return 0;
		snprintf(why, why_len, "%s \"%s\" not found", secret ? "secret" : "configmap",
			 podspec_or(name, ""));
		return -ENOENT;
	}
	if (json_array_size(items) > 0) {
		json_array_foreach ((json_t *)items, i, it) {
			const char *key = json_string_value(json_object_get(it, "key"));
			const char *path = json_string_value(json_object_get(it, "path"));
			json_int_t m = json_integer_value(json_object_get(it, "mode"));
			char *val = key != NULL ? data_value(obj, secret, key, &len) : NULL;
			if (val == NULL || path == NULL) {
				free(val);
				continue;
			}
			rv = write_file(dir, path, val, len, (mode_t)(m > 0 ? m : mode));
			free(val);
			if (rv != 0)
				return rv;
		}
		return 0;
	}
	json_object_foreach ((json_t *)json_object_get(obj, "data"), k, v) {
		char *val = data_value(obj, secret, k, &len);
		(void)v;
		if (val == NULL)
			continue;
		rv = write_file(dir, k, val, len, (mode_t)mode);
		free(val);
		if (rv != 0)
			return rv;
	}
	json_object_foreach ((json_t *)json_object_get(obj, "binaryData"), k, v) {
		char *val = data_value(obj, secret, k, &len);
		(void)v;
		if (val == NULL)
			continue;
		rv = write_file(dir, k, val, len, (mode_t)mode);
		free(val);
		if (rv != 0)
			return rv;
	}
	return 0;
}

int podspec_volumes(const struct podspec_ctx *x, char *why, size_t why_len)
{
	const json_t *vol;
	size_t i;
	char dir[PATH_MAX];
	int rv;

	json_array_foreach (json_object_get(json_object_get(x->pod, "spec"), "volumes"), i, vol) {
		const char *name = json_string_value(json_object_get(vol, "name"));
		const json_t *hp = json_object_get(vol, "hostPath");
		if (name == NULL)
			continue;
		if (hp != NULL) {
			const char *type = json_string_value(json_object_get(hp, "type"));
			const char *path = json_string_value(json_object_get(hp, "path"));
			if (path != NULL && type != NULL && strcmp(type, "DirectoryOrCreate") == 0 &&
			    (rv = mkdir_p(path, 0755)) != 0) {
				snprintf(why, why_len, "cannot create hostPath %s", path);
				return rv;
			}
			continue;
		}
		snprintf(dir, sizeof(dir), "%s/volumes/%s", x->pod_dir, name);
		if ((rv = mkdir_p(dir, 0777)) != 0) {
			snprintf(why, why_len, "cannot create %s", dir);
			return rv;
		}
		chmod(dir, 0777);
		if (json_object_get(vol, "configMap") != NULL)
			rv = write_keys(x, json_object_get(vol, "configMap"), false, dir, why,
					why_len);
		else if (json_object_get(vol, "secret") != NULL)
			rv = write_keys(x, json_object_get(vol, "secret"), true, dir, why, why_len);
		else if (json_object_get(vol, "projected") != NULL ||
			 json_object_get(vol, "downwardAPI") != NULL)
			rv = projected_volume_write(x, vol, dir, why, why_len);
		else
			rv = 0;
		if (rv != 0)
			return rv;
	}
	return 0;
}

/* The host directory behind volume @name. */
static int volume_source(const struct podspec_ctx *x, const char *name, char *buf, size_t len)
{
	const json_t *vol;
	size_t i;

	json_array_foreach (json_object_get(json_object_get(x->pod, "spec"), "volumes"), i, vol) {
		const json_t *hp;
		const char *pvc;
		if (strcmp(podspec_or(json_string_value(json_object_get(vol, "name")), ""), name) != 0)
			continue;
		hp = json_object_get(vol, "hostPath");
		if (hp != NULL) {
			snprintf(buf, len, "%s", podspec_or(json_string_value(json_object_get(hp, "path")), "/"));
			return 0;
		}
		pvc = json_string_value(
			json_object_get(json_object_get(vol, "persistentVolumeClaim"), "claimName"));
		if (pvc != NULL) {
			const char *p = json_string_value(json_object_get(x->pv_paths, pvc));
			if (p == NULL)
				return -ENOENT;
			snprintf(buf, len, "%s", p);
			return 0;
		}
		snprintf(buf, len, "%s/volumes/%s", x->pod_dir, name);
		return 0;
	}
	return -ENOENT;
}

int podspec_mounts(const struct podspec_ctx *x, const json_t *ctr, struct rt_mount **ret_mounts,
		   size_t *ret_n, char ***ret_strings, char *why, size_t why_len)
{
	const json_t *vm;
	struct rt_mount *m;
	char **strs = NULL;
	size_t i, n = 0, total = json_array_size(json_object_get(ctr, "volumeMounts"));
	int rv = 0;

	m = calloc(total + 1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	json_array_foreach (json_object_get(ctr, "volumeMounts"), i, vm) {
		const char *name = json_string_value(json_object_get(vm, "name"));
		const char *dst = json_string_value(json_object_get(vm, "mountPath"));
		const char *sub = json_string_value(json_object_get(vm, "subPath"));
		char src[PATH_MAX];
		size_t k;
		if (name == NULL || dst == NULL)
			continue;
		rv = volume_source(x, name, src, sizeof(src));
		if (rv != 0) {
			snprintf(why, why_len, "volume \"%s\" is not available", name);
			break;
		}
		if (sub != NULL && sub[0] != '\0') {
			size_t l = strlen(src);
			if (strstr(sub, "..") != NULL) {
				rv = -EINVAL;
				snprintf(why, why_len, "subPath %s is not allowed", sub);
				break;
			}
			snprintf(src + l, sizeof(src) - l, "/%s", sub);
			if (access(src, F_OK) != 0)
				mkdir_p(src, 0755);
		}
		k = node_strv_len(strs);
		if ((rv = node_strv_add(&strs, src)) != 0 || node_strv_len(strs) == k) {
			/* The same source twice: node_strv_add keeps one copy. */
			size_t j;
			for (j = 0; strs != NULL && strs[j] != NULL; j++)
				if (strcmp(strs[j], src) == 0)
					k = j;
		}
		if (rv != 0)
			break;
		m[n].source = strs[k];
		m[n].destination = dst;
		m[n].readonly = json_is_true(json_object_get(vm, "readOnly"));
		n++;
	}
	if (rv != 0) {
		free(m);
		node_strv_free(strs);
		return rv;
	}
	*ret_mounts = m;
	*ret_n = n;
	*ret_strings = strs;
	return 0;
}

void podspec_resources(const json_t *ctr, int64_t *cpu_request, int64_t *cpu_limit,
		       int64_t *mem_limit)
{
	const json_t *res = json_object_get(ctr, "resources");
	const json_t *lim = json_object_get(res, "limits"), *req = json_object_get(res, "requests");
	int64_t v;

	*cpu_request = *cpu_limit = *mem_limit = 0;
	if (ctrl_quantity_json(json_object_get(req, "cpu"), -3, &v) == 0)
		*cpu_request = v;
	if (ctrl_quantity_json(json_object_get(lim, "cpu"), -3, &v) == 0)
		*cpu_limit = v;
	if (ctrl_quantity_json(json_object_get(lim, "memory"), 0, &v) == 0)
		*mem_limit = v;
}
