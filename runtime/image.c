/* The image store: import of OCI layouts and docker archives, layers
 * unpacked once by diff id, names, and container root filesystems.
 *
 * An image is its config blob (images/blobs/sha256/<id>) plus the unpacked
 * layers its rootfs.diff_ids name; images/repositories.json maps names to
 * ids. A layer is unpacked into <hex>.tmp and renamed into place, so a
 * crash mid-unpack leaves only a .tmp that the next import replaces.
 * Layer digests are not re-verified at unpack (the blob's own digest is
 * what an OCI layout names it by); manifest and config digests are.
 */
#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "runtime/internal.h"

void rt__sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	static const char hex[] = "0123456789abcdef";

	SHA256(data, len, md);
	for (size_t i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
}

__attribute__((format(printf, 2, 3))) static void set_msg(char **ret_msg, const char *fmt, ...)
{
	va_list ap;

	if (ret_msg == NULL || *ret_msg != NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(ret_msg, fmt, ap) < 0)
		*ret_msg = NULL;
	va_end(ap);
}

/* ------------------------------------------------------------ references */

static bool is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return false;
	return true;
}

int rt_image_normalize(const char *ref, char **ret)
{
	const char *slash, *at, *name_end, *colon, *first;
	size_t first_len;
	bool has_domain = false;
	char *out;

	if (ref == NULL || *ref == '\0' || strlen(ref) > 255)
		return -EINVAL;
	for (const char *p = ref; *p; p++)
		if (!(isalnum((unsigned char)*p) || strchr("._-/:@", *p)))
			return -EINVAL;
	at = strchr(ref, '@');
	name_end = at != NULL ? at : ref + strlen(ref);
	if (at != NULL && (strncmp(at + 1, "sha256:", 7) != 0 || strlen(at + 8) != 64 ||
			   !is_hex(at + 8, 64)))
		return -EINVAL;
	slash = memchr(ref, '/', (size_t)(name_end - ref));
	if (slash != NULL) {
		first = ref;
		first_len = (size_t)(slash - ref);
		has_domain = memchr(first, '.', first_len) != NULL ||
			     memchr(first, ':', first_len) != NULL ||
			     (first_len == 9 && strncmp(first, "localhost", 9) == 0);
	}
	/* The tag is after the last colon that follows the last slash. */
	colon = NULL;
	for (const char *p = name_end; p > ref; p--)
		if (p[-1] == '/')
			break;
		else if (p[-1] == ':') {
			colon = p - 1;
			break;
		}
	{
		const char *repo = has_domain ? slash + 1 : ref;
		const char *repo_end = colon != NULL ? colon : name_end;

		if (repo >= repo_end)
			return -EINVAL;
		for (const char *p = repo; p < repo_end; p++)
			if (isupper((unsigned char)*p) || *p == ':' || *p == '@')
				return -EINVAL;
		if (colon != NULL && (colon + 1 == name_end || name_end - colon - 1 > 128))
			return -EINVAL;
		out = rt__printf("%s%s%.*s%s%s", has_domain ? "" : "docker.io/",
				 (!has_domain && slash == NULL) ? "library/" : "",
				 (int)(name_end - ref), ref,
				 (colon == NULL && at == NULL) ? ":latest" : "", at != NULL ? at : "");
	}
	if (out == NULL)
		return -ENOMEM;
	*ret = out;
	return 0;
}

/* ---------------------------------------------------------------- unpack */

static const char *str_or(const char *s)
{
	return s != NULL ? s : "archive error";
}

/* Relative, clean form of an archive path; NULL when it escapes. */
static char *clean_path(const char *name)
{
	char *out = malloc(strlen(name) + 1), *o = out;
	const char *p = name;

	if (out == NULL)
		return NULL;
	while (*p) {
		const char *end;
		size_t n;

		while (*p == '/')
			p++;
		end = strchr(p, '/');
		n = end != NULL ? (size_t)(end - p) : strlen(p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			free(out);
			return NULL;
		}
		if (n > 0 && !(n == 1 && p[0] == '.')) {
			if (o != out)
				*o++ = '/';
			memcpy(o, p, n);
			o += n;
		}
		p += n;
	}
	*o = '\0';
	return out;
}

static int copy_data(struct archive *a, struct archive *w)
{
	const void *buf;
	size_t size;
	la_int64_t off;
	int r;

	while ((r = archive_read_data_block(a, &buf, &size, &off)) == ARCHIVE_OK)
		if (archive_write_data_block(w, buf, size, off) < ARCHIVE_WARN)
			return -EIO;
	return r == ARCHIVE_EOF ? 0 : -EIO;
}

static int whiteout(const char *dest, const char *rel, char **ret_msg)
{
	char *slash = strrchr(rel, '/');
	const char *base = slash != NULL ? slash + 1 : rel;
	char *parent = rt__printf("%s/%.*s", dest, slash != NULL ? (int)(slash - rel) : 0, rel);
	char *target = NULL;
	int rv;

	if (parent == NULL)
		return -ENOMEM;
	rv = rt__mkdir_p(parent, 0755);
	if (rv != 0)
		goto out;
	if (strcmp(base, ".wh..wh..opq") == 0) {
		if (setxattr(parent, "trusted.overlay.opaque", "y", 1, 0) != 0) {
			rv = -errno;
			set_msg(ret_msg, "cannot mark %s opaque", parent);
		}
		goto out;
	}
	target = rt__printf("%s/%s", parent, base + 4);
	if (target == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	rv = rt__rm_rf(target);
	if (rv == 0 && mknod(target, S_IFCHR | 0, makedev(0, 0)) != 0) {
		rv = -errno;
		set_msg(ret_msg, "cannot create whiteout %s", target);
	}
out:
	free(target);
	free(parent);
	return rv;
}

int rt__unpack(const char *path, const char *dest, bool whiteouts, uint64_t *ret_size,
	       char **ret_msg)
{
	struct archive *a, *w;
	struct archive_entry *e;
	char real[PATH_MAX];
	uint64_t size = 0;
	int r, rv = 0;

	if (realpath(dest, real) == NULL)
		return -errno;
	a = archive_read_new();
	w = archive_write_disk_new();
	if (a == NULL || w == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);
	/* No uname lookup: ids in a layer are the container's, not ours. */
	archive_write_disk_set_options(
	    w, ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER |
		   ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
		   ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_UNLINK);
	if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
		set_msg(ret_msg, "%s", str_or(archive_error_string(a)));
		rv = archive_errno(a) == ENOENT ? -ENOENT : -EINVAL;
		goto out;
	}
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
		char *rel = clean_path(archive_entry_pathname(e));
		const char *base;
		char *full = NULL, *link = NULL;

		if (rel == NULL) {
			set_msg(ret_msg, "entry %s escapes the layer", archive_entry_pathname(e));
			rv = -EINVAL;
			goto out;
		}
		if (*rel == '\0') {
			free(rel);
			continue;
		}
		base = strrchr(rel, '/') != NULL ? strrchr(rel, '/') + 1 : rel;
		if (whiteouts && strncmp(base, ".wh.", 4) == 0) {
			rv = whiteout(real, rel, ret_msg);
			free(rel);
			if (rv != 0)
				goto out;
			continue;
		}
		full = rt__printf("%s/%s", real, rel);
		free(rel);
		if (full == NULL) {
			rv = -ENOMEM;
			goto out;
		}
		archive_entry_set_pathname(e, full);
		if (archive_entry_hardlink(e) != NULL) {
			char *hl = clean_path(archive_entry_hardlink(e));

			link = hl != NULL ? rt__printf("%s/%s", real, hl) : NULL;
			free(hl);
			if (link == NULL) {
				free(full);
				set_msg(ret_msg, "bad hard link in %s", path);
				rv = -EINVAL;
				goto out;
			}
			archive_entry_set_hardlink(e, link);
		}
		free(full);
		free(link);
		if (archive_entry_size(e) > 0)
			size += (uint64_t)archive_entry_size(e);
		if (archive_write_header(w, e) < ARCHIVE_WARN) {
			set_msg(ret_msg, "%s", str_or(archive_error_string(w)));
			rv = -EIO;
			goto out;
		}
		if (archive_entry_size(e) > 0 && copy_data(a, w) != 0) {
			set_msg(ret_msg, "%s", archive_error_string(a) != NULL ? archive_error_string(a)
									 : str_or(archive_error_string(w)));
			rv = -EIO;
			goto out;
		}
		if (archive_write_finish_entry(w) < ARCHIVE_WARN) {
			set_msg(ret_msg, "%s", str_or(archive_error_string(w)));
			rv = -EIO;
			goto out;
		}
	}
	if (r != ARCHIVE_EOF) {
		set_msg(ret_msg, "%s", str_or(archive_error_string(a)));
		rv = -EINVAL;
		goto out;
	}
	if (archive_write_close(w) != ARCHIVE_OK) {
		set_msg(ret_msg, "%s", str_or(archive_error_string(w)));
		rv = -EIO;
		goto out;
	}
	if (ret_size != NULL)
		*ret_size = size;
out:
	if (w != NULL)
		archive_write_free(w);
	if (a != NULL)
		archive_read_free(a);
	return rv;
}

/* ------------------------------------------------------------ copy merge */

static bool is_whiteout(const struct stat *st)
{
	return S_ISCHR(st->st_mode) && st->st_rdev == makedev(0, 0);
}

static int copy_file(const char *src, const char *dst, const struct stat *st)
{
	int in, out, rv = 0;
	char buf[65536];
	ssize_t n;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, st->st_mode & 07777);
	if (out < 0) {
		rv = -errno;
		close(in);
		return rv;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rv = -EIO;
			break;
		}
	if (n < 0)
		rv = -errno;
	close(in);
	close(out);
	return rv;
}

static int merge(const char *src, const char *dst)
{
	DIR *d = opendir(src);
	struct dirent *de;
	int rv = 0;

	if (d == NULL)
		return -errno;
	while (rv == 0 && (de = readdir(d)) != NULL) {
		char *s, *t;
		struct stat st, dt;
		char opq[2];

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		s = rt__printf("%s/%s", src, de->d_name);
		t = rt__printf("%s/%s", dst, de->d_name);
		if (s == NULL || t == NULL) {
			rv = -ENOMEM;
			goto next;
		}
		if (lstat(s, &st) != 0) {
			rv = -errno;
			goto next;
		}
		if (is_whiteout(&st)) {
			rv = rt__rm_rf(t);
			goto next;
		}
		if (S_ISDIR(st.st_mode)) {
			bool opaque = getxattr(s, "trusted.overlay.opaque", opq, 1) == 1 &&
				      opq[0] == 'y';

			if (lstat(t, &dt) != 0 || !S_ISDIR(dt.st_mode) || opaque) {
				rv = rt__rm_rf(t);
				if (rv == 0 && mkdir(t, st.st_mode & 07777) != 0)
					rv = -errno;
			}
			if (rv == 0)
				rv = merge(s, t);
			if (rv == 0 && (lchown(t, st.st_uid, st.st_gid) != 0 ||
					chmod(t, st.st_mode & 07777) != 0))
				rv = -errno;
			goto next;
		}
		rv = rt__rm_rf(t);
		if (rv != 0)
			goto next;
		if (S_ISREG(st.st_mode)) {
			rv = copy_file(s, t, &st);
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t n = readlink(s, target, sizeof(target) - 1);

			if (n < 0) {
				rv = -errno;
				goto next;
			}
			target[n] = '\0';
			if (symlink(target, t) != 0)
				rv = -errno;
		} else if (mknod(t, st.st_mode, st.st_rdev) != 0) {
			rv = -errno;
		}
		if (rv == 0 && lchown(t, st.st_uid, st.st_gid) != 0)
			rv = -errno;
		if (rv == 0 && !S_ISLNK(st.st_mode) && chmod(t, st.st_mode & 07777) != 0)
			rv = -errno;
	next:
		free(s);
		free(t);
	}
	closedir(d);
	return rv;
}

int rt__layers_copy(const char *const *layers, const char *dest)
{
	int rv = rt__mkdir_p(dest, 0755);

	for (size_t i = 0; rv == 0 && layers != NULL && layers[i] != NULL; i++)
		rv = merge(layers[i], dest);
	return rv;
}

/* ----------------------------------------------------------- store files */

static char *images_path(struct rt *rt, const char *rest)
{
	return rt__printf("%s/images/%s", rt->state_dir, rest);
}

static json_t *load_repos(struct rt *rt)
{
	char *p = images_path(rt, "repositories.json");
	json_t *j = p != NULL ? json_load_file(p, 0, NULL) : NULL;

	free(p);
	if (!json_is_object(j)) {
		json_decref(j);
		j = json_object();
	}
	return j;
}

static int save_repos(struct rt *rt, json_t *repos)
{
	char *p = images_path(rt, "repositories.json");
	int rv;

	if (p == NULL)
		return -ENOMEM;
	rv = rt__write_json_atomic(p, repos);
	free(p);
	return rv;
}

static char *blob_path(struct rt *rt, const char *hex)
{
	return rt__printf("%s/images/blobs/sha256/%s", rt->state_dir, hex);
}

static char *layer_path(struct rt *rt, const char *hex)
{
	return rt__printf("%s/images/layers/sha256/%s", rt->state_dir, hex);
}

static void image_free_fields(struct rt_image *img)
{
	free(img->id);
	rt_strv_free(img->names);
	rt_strv_free(img->entrypoint);
	rt_strv_free(img->cmd);
	rt_strv_free(img->env);
	free(img->working_dir);
	free(img->user);
	rt_strv_free(img->layers);
}

void rt_image_free(struct rt_image *img)
{
	if (img == NULL)
		return;
	image_free_fields(img);
	free(img);
}

static char *dup_str(const json_t *j)
{
	return json_is_string(j) && json_string_length(j) > 0 ? strdup(json_string_value(j)) : NULL;
}

static int64_t parse_created(const json_t *j)
{
	int64_t ns;

	if (!json_is_string(j) ||
	    rt_log_parse_time(json_string_value(j), json_string_length(j), &ns) != 0)
		return 0;
	return ns / 1000000000;
}

/* Builds an image from its config blob; the caller holds the lock. */
static int image_load(struct rt *rt, const char *hex, json_t *repos, struct rt_image **ret)
{
	char *p = blob_path(rt, hex);
	json_t *cfg = NULL, *c, *diffs, *v;
	struct rt_image *img = NULL;
	const char *key;
	size_t i;
	int rv;

	if (p == NULL)
		return -ENOMEM;
	cfg = json_load_file(p, 0, NULL);
	rv = cfg == NULL ? (access(p, F_OK) == 0 ? -EINVAL : -ENOENT) : 0;
	free(p);
	if (rv != 0)
		return rv;
	img = calloc(1, sizeof(*img));
	if (img == NULL) {
		rv = -ENOMEM;
		goto err;
	}
	img->id = rt__printf("sha256:%s", hex);
	img->names = calloc(1, sizeof(char *));
	img->layers = calloc(1, sizeof(char *));
	if (img->id == NULL || img->names == NULL || img->layers == NULL) {
		rv = -ENOMEM;
		goto err;
	}
	json_object_foreach (repos, key, v)
		if (json_is_string(v) && strcmp(json_string_value(v), img->id) == 0 &&
		    (rv = rt__strv_push(&img->names, key)) != 0)
			goto err;
	c = json_object_get(cfg, "config");
	if ((rv = rt__strv_from_json(json_object_get(c, "Entrypoint"), &img->entrypoint)) != 0 ||
	    (rv = rt__strv_from_json(json_object_get(c, "Cmd"), &img->cmd)) != 0 ||
	    (rv = rt__strv_from_json(json_object_get(c, "Env"), &img->env)) != 0)
		goto err;
	img->working_dir = dup_str(json_object_get(c, "WorkingDir"));
	img->user = dup_str(json_object_get(c, "User"));
	img->created = parse_created(json_object_get(cfg, "created"));
	diffs = json_object_get(json_object_get(cfg, "rootfs"), "diff_ids");
	json_array_foreach (diffs, i, v) {
		const char *dh = rt__digest_hex(json_string_value(v));
		char *lp, *sp, *meta;
		json_t *mj;

		if (dh == NULL) {
			rv = -EINVAL;
			goto err;
		}
		lp = layer_path(rt, dh);
		sp = rt__printf("%s.json", lp != NULL ? lp : "");
		if (lp == NULL || sp == NULL || rt__strv_push(&img->layers, lp) != 0) {
			free(lp);
			free(sp);
			rv = -ENOMEM;
			goto err;
		}
		meta = sp;
		mj = json_load_file(meta, 0, NULL);
		img->size += (uint64_t)json_integer_value(json_object_get(mj, "size"));
		json_decref(mj);
		free(sp);
		free(lp);
	}
	json_decref(cfg);
	*ret = img;
	return 0;
err:
	rt_image_free(img);
	json_decref(cfg);
	return rv;
}

/* ----------------------------------------------------------------- import */

struct import {
	const char *dir;   /* the layout (or extracted archive) */
	json_t *config;    /* parsed config blob */
	char *config_text; /* its bytes, as stored */
	size_t config_len;
	char **layers;     /* layer tar paths, bottom first */
	char **names;      /* normalised names from the archive */
	char *msg;
};

static int read_json(const char *path, json_t **ret, char **ret_text, size_t *ret_len,
		     char **msg)
{
	char *text;
	size_t len;
	json_t *j;
	int rv = rt__read_file(path, &text, &len);

	if (rv != 0) {
		set_msg(msg, "cannot read %s", path);
		return rv;
	}
	j = json_loadb(text, len, 0, NULL);
	if (j == NULL) {
		set_msg(msg, "%s is not JSON", path);
		free(text);
		return -EINVAL;
	}
	*ret = j;
	if (ret_text != NULL) {
		*ret_text = text;
		*ret_len = len;
	} else {
		free(text);
	}
	return 0;
}

/* Reads blobs/sha256/<hex> of an OCI layout, checking its digest. */
static int read_blob(struct import *im, const char *digest, json_t **ret, char **ret_text,
		     size_t *ret_len)
{
	const char *hex = rt__digest_hex(digest);
	char got[65], *p, *text;
	size_t len;
	int rv;

	if (hex == NULL) {
		set_msg(&im->msg, "bad digest %s", digest);
		return -EINVAL;
	}
	p = rt__printf("%s/blobs/sha256/%s", im->dir, hex);
	if (p == NULL)
		return -ENOMEM;
	rv = read_json(p, ret, &text, &len, &im->msg);
	free(p);
	if (rv != 0)
		return rv;
	rt__sha256_hex(text, len, got);
	if (strcmp(got, hex) != 0) {
		set_msg(&im->msg, "digest mismatch for %s", digest);
		json_decref(*ret);
		*ret = NULL;
		free(text);
		return -EINVAL;
	}
	if (ret_text != NULL) {
		*ret_text = text;
		*ret_len = len;
	} else {
		free(text);
	}
	return 0;
}

static int add_name(struct import *im, const char *name)
{
	char *n;
	int rv = rt_image_normalize(name, &n);

	if (rv != 0) {
		set_msg(&im->msg, "bad image name %s", name);
		return rv;
	}
	rv = rt__strv_push(&im->names, n);
	free(n);
	return rv;
}

static const char *host_arch(void)
{
#if defined(__x86_64__)
	return "amd64";
#elif defined(__aarch64__)
	return "arm64";
#else
	return "";
#endif
}

static int parse_oci(struct import *im)
{
	char *p = rt__printf("%s/index.json", im->dir);
	json_t *index = NULL, *desc = NULL, *manifest = NULL, *v;
	const char *name;
	size_t i;
	int rv;

	if (p == NULL)
		return -ENOMEM;
	rv = read_json(p, &index, NULL, NULL, &im->msg);
	free(p);
	if (rv != 0)
		return rv;
	/* Follow nested indexes (multi-platform images) to one manifest. */
	for (int depth = 0; depth < 4; depth++) {
		json_t *list = json_object_get(index, "manifests"), *pick = NULL;
		const char *mt;

		json_array_foreach (list, i, v) {
			json_t *plat = json_object_get(v, "platform");

			if (pick == NULL)
				pick = v;
			if (plat != NULL &&
			    json_is_string(json_object_get(plat, "architecture")) &&
			    strcmp(json_string_value(json_object_get(plat, "architecture")),
				   host_arch()) == 0) {
				pick = v;
				break;
			}
		}
		if (pick == NULL) {
			set_msg(&im->msg, "%s", "the index lists no manifest");
			rv = -EINVAL;
			goto out;
		}
		if (desc == NULL) {
			name = json_string_value(json_object_get(
			    json_object_get(pick, "annotations"), "io.containerd.image.name"));
			if (name == NULL)
				name = json_string_value(
				    json_object_get(json_object_get(pick, "annotations"),
						    "org.opencontainers.image.ref.name"));
			/* A bare tag ("latest") names nothing by itself. */
			if (name != NULL && strpbrk(name, "/:") != NULL &&
			    (rv = add_name(im, name)) != 0)
				goto out;
		}
		desc = pick;
		rv = read_blob(im, json_string_value(json_object_get(desc, "digest")), &manifest,
			       NULL, NULL);
		if (rv != 0)
			goto out;
		mt = json_string_value(json_object_get(manifest, "mediaType"));
		if (json_object_get(manifest, "manifests") == NULL ||
		    (mt != NULL && strstr(mt, "manifest.v") != NULL))
			break;
		json_decref(index);
		index = manifest;
		manifest = NULL;
	}
	if (manifest == NULL || json_object_get(manifest, "config") == NULL) {
		set_msg(&im->msg, "%s", "no image manifest found");
		rv = -EINVAL;
		goto out;
	}
	rv = read_blob(im, json_string_value(json_object_get(json_object_get(manifest, "config"),
							      "digest")),
		       &im->config, &im->config_text, &im->config_len);
	if (rv != 0)
		goto out;
	im->layers = calloc(1, sizeof(char *));
	if (im->layers == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	json_array_foreach (json_object_get(manifest, "layers"), i, v) {
		const char *hex = rt__digest_hex(json_string_value(json_object_get(v, "digest")));
		char *lp;

		if (hex == NULL) {
			set_msg(&im->msg, "%s", "bad layer digest");
			rv = -EINVAL;
			goto out;
		}
		lp = rt__printf("%s/blobs/sha256/%s", im->dir, hex);
		if (lp == NULL || rt__strv_push(&im->layers, lp) != 0) {
			free(lp);
			rv = -ENOMEM;
			goto out;
		}
		free(lp);
	}
out:
	json_decref(manifest);
	json_decref(index);
	return rv;
}

static int parse_docker(struct import *im, const char *manifest_path)
{
	json_t *m = NULL, *first, *v;
	const char *cfg;
	char *p;
	size_t i;
	int rv = read_json(manifest_path, &m, NULL, NULL, &im->msg);

	if (rv != 0)
		return rv;
	first = json_array_get(m, 0);
	cfg = json_string_value(json_object_get(first, "Config"));
	if (cfg == NULL || strstr(cfg, "..") != NULL) {
		set_msg(&im->msg, "%s", "manifest.json names no Config");
		rv = -EINVAL;
		goto out;
	}
	p = rt__printf("%s/%s", im->dir, cfg);
	if (p == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	rv = read_json(p, &im->config, &im->config_text, &im->config_len, &im->msg);
	free(p);
	if (rv != 0)
		goto out;
	json_array_foreach (json_object_get(first, "RepoTags"), i, v)
		if (json_is_string(v) && (rv = add_name(im, json_string_value(v))) != 0)
			goto out;
	im->layers = calloc(1, sizeof(char *));
	if (im->layers == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	json_array_foreach (json_object_get(first, "Layers"), i, v) {
		const char *l = json_string_value(v);

		if (l == NULL || strstr(l, "..") != NULL) {
			set_msg(&im->msg, "%s", "bad layer path in manifest.json");
			rv = -EINVAL;
			goto out;
		}
		p = rt__printf("%s/%s", im->dir, l);
		if (p == NULL || rt__strv_push(&im->layers, p) != 0) {
			free(p);
			rv = -ENOMEM;
			goto out;
		}
		free(p);
	}
out:
	json_decref(m);
	return rv;
}

/* Unpacks one layer unless its diff id is already present. */
static int ensure_layer(struct rt *rt, const char *tar, const char *diff_id, char **msg)
{
	const char *hex = rt__digest_hex(diff_id);
	char *dest = NULL, *tmp = NULL, *meta = NULL;
	struct stat st;
	uint64_t size = 0;
	json_t *j;
	int rv;

	if (hex == NULL) {
		set_msg(msg, "bad diff id %s", diff_id);
		return -EINVAL;
	}
	dest = layer_path(rt, hex);
	tmp = rt__printf("%s.tmp", dest != NULL ? dest : "");
	meta = rt__printf("%s.json", dest != NULL ? dest : "");
	if (dest == NULL || tmp == NULL || meta == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	if (stat(dest, &st) == 0 && S_ISDIR(st.st_mode)) {
		rv = 0;
		goto out;
	}
	if ((rv = rt__rm_rf(tmp)) != 0 || (rv = rt__mkdir_p(tmp, 0755)) != 0)
		goto out;
	rv = rt__unpack(tar, tmp, true, &size, msg);
	if (rv != 0)
		goto out;
	j = json_pack("{sI}", "size", (json_int_t)size);
	rv = j != NULL ? rt__write_json_atomic(meta, j) : -ENOMEM;
	json_decref(j);
	if (rv == 0 && rename(tmp, dest) != 0)
		rv = -errno;
out:
	if (rv != 0 && tmp != NULL)
		rt__rm_rf(tmp);
	free(meta);
	free(tmp);
	free(dest);
	return rv;
}

static int import_dir(struct rt *rt, struct import *im, const char *name, char **ret_id)
{
	char *mpath = rt__printf("%s/manifest.json", im->dir), *p = NULL;
	char hex[65];
	json_t *diffs, *repos = NULL;
	size_t i;
	int rv;

	if (mpath == NULL)
		return -ENOMEM;
	if (access(mpath, F_OK) == 0) {
		rv = parse_docker(im, mpath);
	} else {
		p = rt__printf("%s/index.json", im->dir);
		if (p == NULL) {
			rv = -ENOMEM;
			goto out;
		}
		if (access(p, F_OK) != 0) {
			set_msg(&im->msg, "%s is neither an OCI layout nor a docker archive",
				im->dir);
			rv = -EINVAL;
			goto out;
		}
		rv = parse_oci(im);
	}
	if (rv != 0)
		goto out;
	if (name != NULL && (rv = add_name(im, name)) != 0)
		goto out;
	if (im->names == NULL || im->names[0] == NULL) {
		set_msg(&im->msg, "%s", "the image has no name: give one");
		rv = -EINVAL;
		goto out;
	}
	diffs = json_object_get(json_object_get(im->config, "rootfs"), "diff_ids");
	if (json_array_size(diffs) != rt__strv_len((const char *const *)im->layers)) {
		set_msg(&im->msg, "%s", "layer count differs from the config's diff_ids");
		rv = -EINVAL;
		goto out;
	}
	for (i = 0; i < json_array_size(diffs); i++) {
		rv = ensure_layer(rt, im->layers[i], json_string_value(json_array_get(diffs, i)),
				  &im->msg);
		if (rv != 0)
			goto out;
	}
	rt__sha256_hex(im->config_text, im->config_len, hex);
	free(p);
	p = blob_path(rt, hex);
	if (p == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	rv = rt__write_file_atomic(p, im->config_text, im->config_len, 0644);
	if (rv != 0)
		goto out;
	repos = load_repos(rt);
	for (i = 0; im->names[i] != NULL; i++) {
		json_t *idv = json_sprintf("sha256:%s", hex);

		if (idv == NULL || json_object_set_new(repos, im->names[i], idv) != 0) {
			rv = -ENOMEM;
			goto out;
		}
	}
	rv = save_repos(rt, repos);
	if (rv == 0 && ret_id != NULL) {
		*ret_id = rt__printf("sha256:%s", hex);
		if (*ret_id == NULL)
			rv = -ENOMEM;
	}
out:
	json_decref(repos);
	free(p);
	free(mpath);
	return rv;
}

int rt_image_import(struct rt *rt, const char *path, const char *name, char **ret_id,
		    char **ret_msg)
{
	struct import im = {0};
	struct stat st;
	char *tmp = NULL;
	int rv;

	if (stat(path, &st) != 0) {
		set_msg(ret_msg, "%s does not exist", path);
		return -errno;
	}
	uv_mutex_lock(&rt->image_lock);
	if (S_ISDIR(st.st_mode)) {
		im.dir = path;
	} else {
		tmp = images_path(rt, "tmp/import-XXXXXX");
		if (tmp == NULL) {
			rv = -ENOMEM;
			goto out;
		}
		{
			char *parent = images_path(rt, "tmp");

			rv = parent != NULL ? rt__mkdir_p(parent, 0700) : -ENOMEM;
			free(parent);
			if (rv != 0)
				goto out;
		}
		if (mkdtemp(tmp) == NULL) {
			rv = -errno;
			free(tmp);
			tmp = NULL;
			goto out;
		}
		rv = rt__unpack(path, tmp, false, NULL, &im.msg);
		if (rv != 0)
			goto out;
		im.dir = tmp;
	}
	rv = import_dir(rt, &im, name, ret_id);
out:
	uv_mutex_unlock(&rt->image_lock);
	if (tmp != NULL) {
		rt__rm_rf(tmp);
		free(tmp);
	}
	if (ret_msg != NULL && rv != 0) {
		*ret_msg = im.msg;
		im.msg = NULL;
	}
	free(im.msg);
	json_decref(im.config);
	free(im.config_text);
	rt_strv_free(im.layers);
	rt_strv_free(im.names);
	return rv;
}

/* ------------------------------------------------------ get, list, remove */

/* The hex id @ref names (name, id, or id prefix); lock held. */
static int resolve(struct rt *rt, json_t *repos, const char *ref, char ret_hex[65])
{
	const char *h = ref;
	size_t n;
	char *norm, *dir;
	DIR *d;
	struct dirent *de;
	int found = 0;

	if (strncmp(h, "sha256:", 7) == 0)
		h += 7;
	n = strlen(h);
	if (n >= 12 && n <= 64 && is_hex(h, n)) {
		dir = images_path(rt, "blobs/sha256");
		if (dir == NULL)
			return -ENOMEM;
		d = opendir(dir);
		free(dir);
		while (d != NULL && (de = readdir(d)) != NULL)
			if (strlen(de->d_name) == 64 && strncmp(de->d_name, h, n) == 0) {
				memcpy(ret_hex, de->d_name, 65);
				found++;
			}
		if (d != NULL)
			closedir(d);
		if (found == 1)
			return 0;
		if (found > 1)
			return -EINVAL;
		if (h != ref || n == 64)
			return -ENOENT;
	}
	{
		int rv = rt_image_normalize(ref, &norm);
		const char *id, *hx;

		if (rv != 0)
			return rv;
		id = json_string_value(json_object_get(repos, norm));
		free(norm);
		hx = rt__digest_hex(id);
		if (hx == NULL)
			return -ENOENT;
		memcpy(ret_hex, hx, 65);
	}
	return 0;
}

int rt_image_get(struct rt *rt, const char *ref, struct rt_image **ret)
{
	json_t *repos;
	char hex[65];
	int rv;

	uv_mutex_lock(&rt->image_lock);
	repos = load_repos(rt);
	rv = resolve(rt, repos, ref, hex);
	if (rv == 0)
		rv = image_load(rt, hex, repos, ret);
	json_decref(repos);
	uv_mutex_unlock(&rt->image_lock);
	return rv;
}

int rt_image_list(struct rt *rt, struct rt_image ***ret, size_t *ret_n)
{
	char *dir = images_path(rt, "blobs/sha256");
	struct rt_image **out = NULL;
	size_t n = 0;
	json_t *repos;
	DIR *d;
	struct dirent *de;
	int rv = 0;

	if (dir == NULL)
		return -ENOMEM;
	uv_mutex_lock(&rt->image_lock);
	repos = load_repos(rt);
	d = opendir(dir);
	while (d != NULL && (de = readdir(d)) != NULL) {
		struct rt_image *img, **nv;

		if (strlen(de->d_name) != 64)
			continue;
		rv = image_load(rt, de->d_name, repos, &img);
		if (rv == -ENOENT || rv == -EINVAL) {
			rv = 0;
			continue;
		}
		if (rv != 0)
			break;
		nv = realloc(out, (n + 1) * sizeof(*nv));
		if (nv == NULL) {
			rt_image_free(img);
			rv = -ENOMEM;
			break;
		}
		out = nv;
		out[n++] = img;
	}
	if (d != NULL)
		closedir(d);
	json_decref(repos);
	uv_mutex_unlock(&rt->image_lock);
	free(dir);
	if (rv != 0) {
		for (size_t i = 0; i < n; i++)
			rt_image_free(out[i]);
		free(out);
		return rv;
	}
	*ret = out;
	*ret_n = n;
	return 0;
}

/* Deletes layer dirs no stored config names; lock held. */
static void gc_layers(struct rt *rt)
{
	char *bdir = images_path(rt, "blobs/sha256"), *ldir = images_path(rt, "layers/sha256");
	json_t *used = json_object();
	DIR *d;
	struct dirent *de;

	if (bdir == NULL || ldir == NULL || used == NULL)
		goto out;
	d = opendir(bdir);
	while (d != NULL && (de = readdir(d)) != NULL) {
		char *p = rt__printf("%s/%s", bdir, de->d_name);
		json_t *cfg = p != NULL && strlen(de->d_name) == 64 ? json_load_file(p, 0, NULL)
								     : NULL;
		json_t *v;
		size_t i;

		json_array_foreach (json_object_get(json_object_get(cfg, "rootfs"), "diff_ids"), i,
				    v) {
			const char *h = rt__digest_hex(json_string_value(v));

			if (h != NULL)
				json_object_set_new(used, h, json_true());
		}
		json_decref(cfg);
		free(p);
	}
	if (d != NULL)
		closedir(d);
	d = opendir(ldir);
	while (d != NULL && (de = readdir(d)) != NULL) {
		char h[65];
		char *p;

		if (strlen(de->d_name) < 64 || de->d_name[0] == '.')
			continue;
		memcpy(h, de->d_name, 64);
		h[64] = '\0';
		if (json_object_get(used, h) != NULL)
			continue;
		p = rt__printf("%s/%s", ldir, de->d_name);
		if (p != NULL)
			rt__rm_rf(p);
		free(p);
	}
	if (d != NULL)
		closedir(d);
out:
	json_decref(used);
	free(bdir);
	free(ldir);
}

int rt_image_remove(struct rt *rt, const char *ref)
{
	json_t *repos, *v;
	char hex[65], *norm = NULL, *id = NULL;
	const char *key;
	void *tmp;
	bool by_name, left = false;
	int rv;

	uv_mutex_lock(&rt->image_lock);
	repos = load_repos(rt);
	rv = resolve(rt, repos, ref, hex);
	if (rv != 0)
		goto out;
	id = rt__printf("sha256:%s", hex);
	if (id == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	by_name = rt_image_normalize(ref, &norm) == 0 && json_object_get(repos, norm) != NULL;
	if (by_name)
		json_object_del(repos, norm);
	json_object_foreach_safe (repos, tmp, key, v) {
		if (!json_is_string(v) || strcmp(json_string_value(v), id) != 0)
			continue;
		if (by_name)
			left = true;
		else
			json_object_del(repos, key);
	}
	rv = save_repos(rt, repos);
	if (rv == 0 && !left) {
		char *p = blob_path(rt, hex);

		if (p != NULL)
			unlink(p);
		free(p);
		gc_layers(rt);
	}
out:
	free(id);
	free(norm);
	json_decref(repos);
	uv_mutex_unlock(&rt->image_lock);
	return rv;
}

/* ------------------------------------------------------------------ user */

/* Field @idx (0-based) of the line of @file whose field @key_idx equals
 * @key; -ENOENT if none. */
static int lookup(const char *rootfs, const char *file, const char *key, int key_idx, int idx,
		  uint32_t *ret)
{
	char *p = rt__printf("%s/%s", rootfs, file), *text = NULL, *line, *save = NULL;
	int rv;

	if (p == NULL)
		return -ENOMEM;
	rv = rt__read_file(p, &text, NULL);
	free(p);
	if (rv != 0)
		return -ENOENT;
	rv = -ENOENT;
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char *f[8] = {0}, *s = line;
		int n = 0;

		while (n < 8) {
			f[n++] = s;
			s = strchr(s, ':');
			if (s == NULL)
				break;
			*s++ = '\0';
		}
		if (n > key_idx && n > idx && strcmp(f[key_idx], key) == 0) {
			*ret = (uint32_t)strtoul(f[idx], NULL, 10);
			rv = 0;
			break;
		}
	}
	free(text);
	return rv;
}

static bool numeric(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

int rt_image_user(const char *rootfs, const char *user, uint32_t *ret_uid, uint32_t *ret_gid)
{
	char *u, *g;
	uint32_t uid = 0, gid = 0;
	int rv = 0;

	if (user == NULL || *user == '\0') {
		*ret_uid = 0;
		*ret_gid = 0;
		return 0;
	}
	u = strdup(user);
	if (u == NULL)
		return -ENOMEM;
	g = strchr(u, ':');
	if (g != NULL)
		*g++ = '\0';
	if (*u == '\0') {
		rv = -EINVAL;
		goto out;
	}
	if (numeric(u)) {
		uid = (uint32_t)strtoul(u, NULL, 10);
		if (g == NULL) {
			char key[16];

			/* A numeric user's primary group, if passwd knows it. */
			snprintf(key, sizeof(key), "%u", uid);
			if (lookup(rootfs, "etc/passwd", key, 2, 3, &gid) != 0)
				gid = 0;
		}
	} else {
		rv = lookup(rootfs, "etc/passwd", u, 0, 2, &uid);
		if (rv == 0 && g == NULL)
			rv = lookup(rootfs, "etc/passwd", u, 0, 3, &gid);
		if (rv != 0)
			goto out;
	}
	if (g != NULL) {
		if (numeric(g))
			gid = (uint32_t)strtoul(g, NULL, 10);
		else if ((rv = lookup(rootfs, "etc/group", g, 0, 2, &gid)) != 0)
			goto out;
	}
	*ret_uid = uid;
	*ret_gid = gid;
out:
	free(u);
	return rv;
}

/* ---------------------------------------------------------------- rootfs */

char *rt_bundle_dir(const struct rt *rt, const char *id)
{
	return rt__printf("%s/containers/%s", rt->state_dir, id);
}

static bool is_mounted(const char *dir, const char *path)
{
	struct stat a, b;

	return stat(dir, &a) == 0 && stat(path, &b) == 0 && a.st_dev != b.st_dev;
}

int rt_rootfs_create(struct rt *rt, const struct rt_image *img, const char *id, char **ret_path)
{
	char *dir = rt_bundle_dir(rt, id), *rootfs = NULL, *upper = NULL, *work = NULL,
	     *empty = NULL, *opts = NULL, *marker = NULL;
	size_t n = rt__strv_len((const char *const *)img->layers), len;
	int rv;

	if (dir == NULL)
		return -ENOMEM;
	rootfs = rt__printf("%s/rootfs", dir);
	upper = rt__printf("%s/upper", dir);
	work = rt__printf("%s/work", dir);
	empty = rt__printf("%s/empty", dir);
	marker = rt__printf("%s/rootfs.copied", dir);
	if (rootfs == NULL || upper == NULL || work == NULL || empty == NULL || marker == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	if ((rv = rt__mkdir_p(rootfs, 0755)) != 0)
		goto out;
	if (is_mounted(dir, rootfs) || access(marker, F_OK) == 0)
		goto done;
	if (!rt->overlay) {
		rv = rt__layers_copy((const char *const *)img->layers, rootfs);
		if (rv == 0)
			rv = rt__write_file_atomic(marker, "", 0, 0644);
		goto out_done;
	}
	if ((rv = rt__mkdir_p(upper, 0755)) != 0 || (rv = rt__mkdir_p(work, 0755)) != 0)
		goto out;
	/* lowerdir lists the top layer first. */
	len = strlen(upper) + strlen(work) + 64;
	for (size_t i = 0; i < n; i++)
		len += strlen(img->layers[i]) + 1;
	if (n == 0) {
		if ((rv = rt__mkdir_p(empty, 0755)) != 0)
			goto out;
		len += strlen(empty);
	}
	opts = malloc(len);
	if (opts == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	strcpy(opts, "lowerdir=");
	if (n == 0)
		strcat(opts, empty);
	for (size_t i = n; i > 0; i--) {
		strcat(opts, img->layers[i - 1]);
		if (i > 1)
			strcat(opts, ":");
	}
	strcat(opts, ",upperdir=");
	strcat(opts, upper);
	strcat(opts, ",workdir=");
	strcat(opts, work);
	if (mount("overlay", rootfs, "overlay", 0, opts) != 0) {
		rv = -errno;
		goto out;
	}
done:
	rv = 0;
out_done:
	if (rv == 0 && ret_path != NULL) {
		*ret_path = rootfs;
		rootfs = NULL;
	}
out:
	free(opts);
	free(marker);
	free(empty);
	free(work);
	free(upper);
	free(rootfs);
	free(dir);
	return rv;
}

int rt_container_dir_remove(struct rt *rt, const char *id)
{
	char *dir = rt_bundle_dir(rt, id), *rootfs = rt__printf("%s/containers/%s/rootfs",
								 rt->state_dir, id);
	int rv = 0;

	if (dir == NULL || rootfs == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	if (strchr(id, '/') != NULL || strcmp(id, "..") == 0 || strcmp(id, ".") == 0) {
		rv = -EINVAL;
		goto out;
	}
	if (is_mounted(dir, rootfs) && umount2(rootfs, MNT_DETACH) != 0) {
		rv = -errno;
		goto out;
	}
	if (is_mounted(dir, rootfs)) {
		rv = -EBUSY;
		goto out;
	}
	rv = rt__rm_rf(dir);
	if (rv == 0) {
		char *notify = rt__printf("%s/exits/%s", rt->state_dir, id);

		if (notify != NULL)
			unlink(notify);
		free(notify);
	}
out:
	free(rootfs);
	free(dir);
	return rv;
}
