/* Unit tests of runtime/image.c: layer unpacking (whiteouts, opaque dirs,
 * paths escaping the layer), the copy fallback's merge, OCI layout and
 * docker-archive import, names, lookup, removal, users, root filesystems.
 * Whiteouts need root (mknod, trusted.* xattrs): those tests skip
 * otherwise. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "runtime/internal.h"

/* ------------------------------------------------------------ Fixture */

struct fx {
	char dir[64];
	uv_loop_t loop;
	struct rt *rt;
};

static int set_up(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct rt_config cfg = {0};
	char state_dir[128], run_dir[128];

	strcpy(f->dir, "/tmp/test-runtime-image-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(state_dir, sizeof(state_dir), "%s/state", f->dir);
	snprintf(run_dir, sizeof(run_dir), "%s/run", f->dir);
	cfg.state_dir = state_dir;
	cfg.run_dir = run_dir;
	cfg.shim = "/nonexistent";
	uv_loop_init(&f->loop);
	assert_int_equal(rt_new(&f->loop, &cfg, &f->rt), 0);
	*state = f;
	return 0;
}

static int tear_down(void **state)
{
	struct fx *f = *state;

	rt_free(f->rt);
	uv_loop_close(&f->loop);
	assert_int_equal(rt__rm_rf(f->dir), 0);
	free(f);
	return 0;
}

/* ------------------------------------------------------------ Helpers */

#define SKIP_UNLESS_ROOT()                                                                     \
	do {                                                                                   \
		if (geteuid() != 0)                                                            \
			skip();                                                                \
	} while (0)

/* One tar entry: 'f' file with @data, 'd' directory, 'l' symlink to @data. */
struct ent {
	const char *name;
	char type;
	const char *data;
};

static void write_tar(const char *path, const struct ent *e, bool gzip)
{
	struct archive *a = archive_write_new();
	struct archive_entry *ae;

	archive_write_set_format_pax_restricted(a);
	if (gzip)
		archive_write_add_filter_gzip(a);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (; e->name != NULL; e++) {
		size_t len = e->type == 'f' && e->data != NULL ? strlen(e->data) : 0;

		ae = archive_entry_new();
		archive_entry_set_pathname(ae, e->name);
		archive_entry_set_uid(ae, 0);
		archive_entry_set_gid(ae, 0);
		if (e->type == 'd') {
			archive_entry_set_filetype(ae, AE_IFDIR);
			archive_entry_set_perm(ae, 0755);
		} else if (e->type == 'l') {
			archive_entry_set_filetype(ae, AE_IFLNK);
			archive_entry_set_symlink(ae, e->data);
		} else {
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_perm(ae, 0644);
			archive_entry_set_size(ae, (la_int64_t)len);
		}
		assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
		if (len > 0)
			assert_int_equal(archive_write_data(a, e->data, len), (la_ssize_t)len);
		archive_entry_free(ae);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

static char *path_of(const struct fx *f, const char *rel)
{
	return rt__printf("%s/%s", f->dir, rel);
}

static void write_text(const char *path, const char *text)
{
	assert_int_equal(rt__write_file_atomic(path, text, strlen(text), 0644), 0);
}

static void sha_file(const char *path, char hex[65], size_t *ret_size)
{
	char *data;
	size_t len;

	assert_int_equal(rt__read_file(path, &data, &len), 0);
	rt__sha256_hex(data, len, hex);
	if (ret_size != NULL)
		*ret_size = len;
	free(data);
}

static bool exists(const char *dir, const char *rel)
{
	char *p = rt__printf("%s/%s", dir, rel);
	struct stat st;
	bool ok = lstat(p, &st) == 0;

	free(p);
	return ok;
}

static char *file_text(const char *dir, const char *rel)
{
	char *p = rt__printf("%s/%s", dir, rel), *s = NULL;

	if (rt__read_file(p, &s, NULL) != 0)
		s = NULL;
	free(p);
	return s;
}

static const struct ent LAYER1[] = {
    {"bin/", 'd', NULL},	  {"bin/hello", 'f', "hello\n"},  {"etc/", 'd', NULL},
    {"etc/passwd", 'f', "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"},
    {"etc/group", 'f', "root:x:0:\nstaff:x:50:\n"},
    {"etc/gone", 'f', "deleted by layer 2\n"}, {"opq/", 'd', NULL},
    {"opq/old", 'f', "old\n"},	  {"bin/link", 'l', "hello"},	  {NULL, 0, NULL},
};
static const struct ent LAYER2[] = {
    {"etc/.wh.gone", 'f', NULL}, {"opq/.wh..wh..opq", 'f', NULL},
    {"opq/new", 'f', "new\n"},	 {"etc/added", 'f', "added\n"},
    {NULL, 0, NULL},
};

/* Builds an OCI layout at DIR/oci with LAYER1+LAYER2 named @name (or a
 * bare tag when @name is NULL); returns the config's hex digest. */
static void build_oci(const struct fx *f, const char *name, char config_hex[65])
{
	char *oci = path_of(f, "oci"), *blobs = path_of(f, "oci/blobs/sha256");
	char *l1 = path_of(f, "l1.tar"), *l2 = path_of(f, "l2.tar.gz"), *raw2 = path_of(f, "l2.tar");
	char d1[65], d2[65], b2[65], m[65], *p, *text;
	size_t s1, s2, sc, sm;

	assert_int_equal(rt__mkdir_p(blobs, 0755), 0);
	write_tar(l1, LAYER1, false);
	write_tar(l2, LAYER2, true);
	write_tar(raw2, LAYER2, false);
	sha_file(l1, d1, &s1);
	sha_file(raw2, d2, NULL);
	sha_file(l2, b2, &s2);
	p = rt__printf("%s/%s", blobs, d1);
	assert_int_equal(rename(l1, p), 0);
	free(p);
	p = rt__printf("%s/%s", blobs, b2);
	assert_int_equal(rename(l2, p), 0);
	free(p);
	text = rt__printf("{\"architecture\":\"amd64\",\"os\":\"linux\","
			  "\"created\":\"2023-11-14T22:13:20Z\",\"config\":{"
			  "\"Entrypoint\":[\"/bin/hello\"],\"Cmd\":[\"a\",\"b\"],"
			  "\"Env\":[\"PATH=/bin\",\"X=1\"],\"WorkingDir\":\"/srv\","
			  "\"User\":\"app\"},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":"
			  "[\"sha256:%s\",\"sha256:%s\"]}}",
			  d1, d2);
	rt__sha256_hex(text, strlen(text), config_hex);
	sc = strlen(text);
	p = rt__printf("%s/%s", blobs, config_hex);
	write_text(p, text);
	free(p);
	free(text);
	text = rt__printf("{\"schemaVersion\":2,\"mediaType\":"
			  "\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":"
			  "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:%s\","
			  "\"size\":%zu},\"layers\":[{\"mediaType\":"
			  "\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:%s\","
			  "\"size\":%zu},{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
			  "\"digest\":\"sha256:%s\",\"size\":%zu}]}",
			  config_hex, sc, d1, s1, b2, s2);
	rt__sha256_hex(text, strlen(text), m);
	sm = strlen(text);
	p = rt__printf("%s/%s", blobs, m);
	write_text(p, text);
	free(p);
	free(text);
	p = rt__printf("%s/oci-layout", oci);
	write_text(p, "{\"imageLayoutVersion\":\"1.0.0\"}");
	free(p);
	text = rt__printf("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
			  "\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:%s\","
			  "\"size\":%zu,\"annotations\":{\"org.opencontainers.image.ref.name\":"
			  "\"%s\"}}]}",
			  m, sm, name != NULL ? name : "latest");
	p = rt__printf("%s/index.json", oci);
	write_text(p, text);
	free(p);
	free(text);
	free(raw2);
	free(l2);
	free(l1);
	free(blobs);
	free(oci);
}

/* -------------------------------------------------------------- Tests */

static void unpack_whiteouts(void **state)
{
	struct fx *f = *state;
	char *tar = path_of(f, "layer.tar"), *dest = path_of(f, "dest"), *p;
	char v[4] = {0};
	struct stat st;

	SKIP_UNLESS_ROOT();
	write_tar(tar, LAYER2, false);
	assert_int_equal(rt__mkdir_p(dest, 0755), 0);
	assert_int_equal(rt__unpack(tar, dest, true, NULL, NULL), 0);
	p = rt__printf("%s/etc/gone", dest);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_true(st.st_rdev == makedev(0, 0));
	free(p);
	assert_false(exists(dest, "etc/.wh.gone"));
	assert_false(exists(dest, "opq/.wh..wh..opq"));
	p = rt__printf("%s/opq", dest);
	assert_int_equal(getxattr(p, "trusted.overlay.opaque", v, sizeof(v)), 1);
	assert_int_equal(v[0], 'y');
	free(p);
	assert_true(exists(dest, "opq/new"));
	free(dest);
	free(tar);
}

static void unpack_without_whiteouts_keeps_names(void **state)
{
	struct fx *f = *state;
	char *tar = path_of(f, "layer.tar"), *dest = path_of(f, "dest");
	uint64_t size = 0;

	write_tar(tar, LAYER2, false);
	assert_int_equal(rt__mkdir_p(dest, 0755), 0);
	assert_int_equal(rt__unpack(tar, dest, false, &size, NULL), 0);
	assert_true(exists(dest, "etc/.wh.gone"));
	assert_int_equal(size, 10);
	free(dest);
	free(tar);
}

static void unpack_refuses_escapes(void **state)
{
	struct fx *f = *state;
	static const struct ent evil[] = {{"ok", 'f', "x"}, {"a/../../evil", 'f', "x"}, {NULL, 0, NULL}};
	static const struct ent evil_link[] = {
	    {"link", 'l', "/"}, {"link/etc-evil", 'f', "x"}, {NULL, 0, NULL}};
	char *tar = path_of(f, "evil.tar"), *dest = path_of(f, "in/dest"), *msg = NULL;

	write_tar(tar, evil, false);
	assert_int_equal(rt__mkdir_p(dest, 0755), 0);
	assert_int_equal(rt__unpack(tar, dest, true, NULL, &msg), -EINVAL);
	assert_non_null(strstr(msg, "escapes"));
	free(msg);
	assert_false(exists(f->dir, "evil"));
	assert_false(exists(f->dir, "in/evil"));
	/* Through a symlink in the layer: SECURE_SYMLINKS with UNLINK
	 * replaces the symlink by a directory, inside the layer. */
	msg = NULL;
	write_tar(tar, evil_link, false);
	if (rt__unpack(tar, dest, true, NULL, &msg) == 0)
		assert_true(exists(dest, "link/etc-evil"));
	free(msg);
	assert_false(exists("/", "etc-evil"));
	assert_int_equal(rt__unpack("/nonexistent.tar", dest, true, NULL, NULL), -ENOENT);
	free(dest);
	free(tar);
}

static void copy_merges_like_overlay(void **state)
{
	struct fx *f = *state;
	char *t1 = path_of(f, "1.tar"), *t2 = path_of(f, "2.tar"), *d1 = path_of(f, "d1"),
	     *d2 = path_of(f, "d2"), *root = path_of(f, "root"), *s;
	const char *layers[] = {d1, d2, NULL};

	SKIP_UNLESS_ROOT();
	write_tar(t1, LAYER1, false);
	write_tar(t2, LAYER2, false);
	assert_int_equal(rt__mkdir_p(d1, 0755), 0);
	assert_int_equal(rt__mkdir_p(d2, 0755), 0);
	assert_int_equal(rt__unpack(t1, d1, true, NULL, NULL), 0);
	assert_int_equal(rt__unpack(t2, d2, true, NULL, NULL), 0);
	assert_int_equal(rt__layers_copy(layers, root), 0);
	assert_false(exists(root, "etc/gone"));
	assert_false(exists(root, "opq/old"));
	s = file_text(root, "opq/new");
	assert_string_equal(s, "new\n");
	free(s);
	s = file_text(root, "bin/link"); /* follows the copied symlink */
	assert_string_equal(s, "hello\n");
	free(s);
	assert_true(exists(root, "etc/added"));
	assert_true(exists(root, "etc/passwd"));
	free(root);
	free(d2);
	free(d1);
	free(t2);
	free(t1);
}

static void import_oci_layout(void **state)
{
	struct fx *f = *state;
	char hex[65], *oci = path_of(f, "oci"), *id = NULL, *msg = NULL, *want;
	struct rt_image *img, **list;
	size_t n;

	SKIP_UNLESS_ROOT();
	build_oci(f, "localhost/test:1", hex);
	assert_int_equal(rt_image_import(f->rt, oci, NULL, &id, &msg), 0);
	want = rt__printf("sha256:%s", hex);
	assert_string_equal(id, want);
	assert_int_equal(rt_image_get(f->rt, "localhost/test:1", &img), 0);
	assert_string_equal(img->id, want);
	assert_string_equal(img->names[0], "localhost/test:1");
	assert_null(img->names[1]);
	assert_string_equal(img->entrypoint[0], "/bin/hello");
	assert_string_equal(img->cmd[1], "b");
	assert_string_equal(img->env[1], "X=1");
	assert_string_equal(img->working_dir, "/srv");
	assert_string_equal(img->user, "app");
	assert_true(img->created == 1700000000);
	assert_non_null(img->layers[1]);
	assert_null(img->layers[2]);
	assert_true(exists(img->layers[0], "bin/hello"));
	assert_true(exists(img->layers[1], "etc/added"));
	assert_true(img->size > 0);
	rt_image_free(img);
	/* By id, by a 12-digit prefix. */
	assert_int_equal(rt_image_get(f->rt, want, &img), 0);
	rt_image_free(img);
	hex[12] = '\0';
	assert_int_equal(rt_image_get(f->rt, hex, &img), 0);
	rt_image_free(img);
	assert_int_equal(rt_image_get(f->rt, "localhost/test:2", &img), -ENOENT);
	assert_int_equal(rt_image_get(f->rt, "busybox", &img), -ENOENT);
	assert_int_equal(rt_image_get(f->rt, "Bad Ref", &img), -EINVAL);
	/* Importing again under a second name: same id, both names. */
	assert_int_equal(rt_image_import(f->rt, oci, "busybox", NULL, NULL), 0);
	assert_int_equal(rt_image_list(f->rt, &list, &n), 0);
	assert_int_equal(n, 1);
	assert_non_null(list[0]->names[1]);
	rt_image_free(list[0]);
	free(list);
	assert_int_equal(rt_image_get(f->rt, "docker.io/library/busybox:latest", &img), 0);
	rt_image_free(img);
	free(want);
	free(id);
	free(oci);
}

static void remove_names_then_image(void **state)
{
	struct fx *f = *state;
	char hex[65], *oci = path_of(f, "oci"), *layers;
	struct rt_image *img, **list;
	size_t n;

	SKIP_UNLESS_ROOT();
	build_oci(f, "localhost/test:1", hex);
	assert_int_equal(rt_image_import(f->rt, oci, "localhost/other:2", NULL, NULL), 0);
	assert_int_equal(rt_image_get(f->rt, "localhost/test:1", &img), 0);
	layers = strdup(img->layers[0]);
	rt_image_free(img);
	assert_int_equal(rt_image_remove(f->rt, "localhost/test:1"), 0);
	assert_int_equal(rt_image_get(f->rt, "localhost/test:1", &img), -ENOENT);
	assert_int_equal(rt_image_get(f->rt, "localhost/other:2", &img), 0);
	rt_image_free(img);
	assert_int_equal(access(layers, F_OK), 0);
	assert_int_equal(rt_image_remove(f->rt, "localhost/other:2"), 0);
	assert_int_equal(rt_image_list(f->rt, &list, &n), 0);
	assert_int_equal(n, 0);
	free(list);
	assert_int_not_equal(access(layers, F_OK), 0);
	assert_int_equal(rt_image_remove(f->rt, "localhost/other:2"), -ENOENT);
	free(layers);
	free(oci);
}

static void import_refuses_bad_layouts(void **state)
{
	struct fx *f = *state;
	char hex[65], *oci = path_of(f, "oci"), *cfg, *msg = NULL;

	SKIP_UNLESS_ROOT();
	/* A bare tag names nothing: a name must be given. */
	build_oci(f, NULL, hex);
	assert_int_equal(rt_image_import(f->rt, oci, NULL, NULL, &msg), -EINVAL);
	assert_non_null(strstr(msg, "name"));
	free(msg);
	msg = NULL;
	assert_int_equal(rt_image_import(f->rt, oci, "localhost/named", NULL, &msg), 0);
	/* A config blob whose bytes do not match its digest. */
	cfg = rt__printf("%s/blobs/sha256/%s", oci, hex);
	write_text(cfg, "{\"tampered\":true}");
	assert_int_equal(rt_image_import(f->rt, oci, "localhost/x", NULL, &msg), -EINVAL);
	assert_non_null(strstr(msg, "digest"));
	free(msg);
	msg = NULL;
	assert_int_equal(rt_image_import(f->rt, f->dir, "localhost/x", NULL, &msg), -EINVAL);
	free(msg);
	msg = NULL;
	assert_int_equal(rt_image_import(f->rt, "/nonexistent", "localhost/x", NULL, &msg),
			 -ENOENT);
	free(msg);
	free(cfg);
	free(oci);
}

static void import_docker_archive(void **state)
{
	struct fx *f = *state;
	char *l1 = path_of(f, "l1.tar"), *l2 = path_of(f, "l2.tar"), *archive = path_of(f, "d.tar");
	char d1[65], d2[65], chex[65], *cfg, *manifest, *id = NULL, *msg = NULL;
	struct rt_image *img;

	SKIP_UNLESS_ROOT();
	write_tar(l1, LAYER1, false);
	write_tar(l2, LAYER2, false);
	sha_file(l1, d1, NULL);
	sha_file(l2, d2, NULL);
	cfg = rt__printf("{\"config\":{\"Cmd\":[\"sh\"]},\"rootfs\":{\"type\":\"layers\","
			 "\"diff_ids\":[\"sha256:%s\",\"sha256:%s\"]}}",
			 d1, d2);
	rt__sha256_hex(cfg, strlen(cfg), chex);
	manifest = rt__printf("[{\"Config\":\"%s.json\",\"RepoTags\":[\"example/app:v2\"],"
			      "\"Layers\":[\"a/layer.tar\",\"b/layer.tar\"]}]",
			      chex);
	{
		char *name = rt__printf("%s.json", chex);

		/* The archive from a directory, as `docker save` lays it out. */
		{
			char *dir = path_of(f, "dock"), *p;
			struct archive *a = archive_write_new(), *disk = archive_read_disk_new();
			struct archive_entry *e;
			const char *files[] = {"manifest.json", name, "a/layer.tar", "b/layer.tar"};

			assert_int_equal(rt__mkdir_p(dir, 0755), 0);
			p = rt__printf("%s/a", dir);
			rt__mkdir_p(p, 0755);
			free(p);
			p = rt__printf("%s/b", dir);
			rt__mkdir_p(p, 0755);
			free(p);
			p = rt__printf("%s/manifest.json", dir);
			write_text(p, manifest);
			free(p);
			p = rt__printf("%s/%s", dir, name);
			write_text(p, cfg);
			free(p);
			p = rt__printf("%s/a/layer.tar", dir);
			assert_int_equal(rename(l1, p), 0);
			free(p);
			p = rt__printf("%s/b/layer.tar", dir);
			assert_int_equal(rename(l2, p), 0);
			free(p);
			archive_write_set_format_pax_restricted(a);
			assert_int_equal(archive_write_open_filename(a, archive), ARCHIVE_OK);
			for (size_t i = 0; i < 4; i++) {
				char buf[8192];
				FILE *in;
				size_t k;

				p = rt__printf("%s/%s", dir, files[i]);
				e = archive_entry_new();
				archive_entry_copy_sourcepath(e, p);
				assert_int_equal(archive_read_disk_entry_from_file(disk, e, -1, NULL),
						 ARCHIVE_OK);
				archive_entry_set_pathname(e, files[i]);
				assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
				in = fopen(p, "rb");
				while ((k = fread(buf, 1, sizeof(buf), in)) > 0)
					archive_write_data(a, buf, k);
				fclose(in);
				archive_entry_free(e);
				free(p);
			}
			archive_write_close(a);
			archive_write_free(a);
			archive_read_free(disk);
			free(dir);
		}
		free(name);
	}
	assert_int_equal(rt_image_import(f->rt, archive, NULL, &id, &msg), 0);
	assert_int_equal(rt_image_get(f->rt, "docker.io/example/app:v2", &img), 0);
	assert_string_equal(img->id, id);
	assert_string_equal(img->cmd[0], "sh");
	assert_true(exists(img->layers[1], "etc/added"));
	rt_image_free(img);
	free(id);
	free(manifest);
	free(cfg);
	free(archive);
	free(l2);
	free(l1);
}

static void users(void **state)
{
	struct fx *f = *state;
	char *root = path_of(f, "rootfs"), *etc = path_of(f, "rootfs/etc"), *p;
	uint32_t uid, gid;

	assert_int_equal(rt__mkdir_p(etc, 0755), 0);
	p = rt__printf("%s/passwd", etc);
	write_text(p, "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n");
	free(p);
	p = rt__printf("%s/group", etc);
	write_text(p, "root:x:0:\nstaff:x:50:\n");
	free(p);
	assert_int_equal(rt_image_user(root, NULL, &uid, &gid), 0);
	assert_int_equal(uid, 0);
	assert_int_equal(rt_image_user(root, "app", &uid, &gid), 0);
	assert_int_equal(uid, 1000);
	assert_int_equal(gid, 1001);
	assert_int_equal(rt_image_user(root, "1000", &uid, &gid), 0);
	assert_int_equal(gid, 1001);
	assert_int_equal(rt_image_user(root, "4242", &uid, &gid), 0);
	assert_int_equal(uid, 4242);
	assert_int_equal(gid, 0);
	assert_int_equal(rt_image_user(root, "app:staff", &uid, &gid), 0);
	assert_int_equal(gid, 50);
	assert_int_equal(rt_image_user(root, "7:8", &uid, &gid), 0);
	assert_int_equal(uid, 7);
	assert_int_equal(gid, 8);
	assert_int_equal(rt_image_user(root, "nobody", &uid, &gid), -ENOENT);
	assert_int_equal(rt_image_user(root, "app:nogroup", &uid, &gid), -ENOENT);
	assert_int_equal(rt_image_user(root, ":5", &uid, &gid), -EINVAL);
	free(etc);
	free(root);
}

static void rootfs_create_and_remove(void **state)
{
	struct fx *f = *state;
	char hex[65], *oci = path_of(f, "oci"), *rootfs = NULL, *s, *dir;
	struct rt_image *img;

	SKIP_UNLESS_ROOT();
	build_oci(f, "localhost/test:1", hex);
	assert_int_equal(rt_image_import(f->rt, oci, NULL, NULL, NULL), 0);
	assert_int_equal(rt_image_get(f->rt, "localhost/test:1", &img), 0);
	assert_int_equal(rt_rootfs_create(f->rt, img, "c1", &rootfs), 0);
	/* Idempotent: a second call keeps the mount (or copy). */
	assert_int_equal(rt_rootfs_create(f->rt, img, "c1", NULL), 0);
	assert_false(exists(rootfs, "etc/gone"));
	assert_false(exists(rootfs, "opq/old"));
	s = file_text(rootfs, "etc/added");
	assert_string_equal(s, "added\n");
	free(s);
	/* Writes land in the container, not in the shared layer. */
	write_text(s = rt__printf("%s/bin/hello", rootfs), "changed\n");
	free(s);
	s = file_text(img->layers[0], "bin/hello");
	assert_string_equal(s, "hello\n");
	free(s);
	dir = rt_bundle_dir(f->rt, "c1");
	assert_int_equal(rt_container_dir_remove(f->rt, "c1"), 0);
	assert_int_not_equal(access(dir, F_OK), 0);
	assert_int_equal(rt_container_dir_remove(f->rt, "c1"), 0);
	assert_int_equal(rt_container_dir_remove(f->rt, "../x"), -EINVAL);
	free(dir);
	rt_image_free(img);
	free(rootfs);
	free(oci);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(unpack_whiteouts, set_up, tear_down),
	    cmocka_unit_test_setup_teardown(unpack_without_whiteouts_keeps_names, set_up, tear_down),
	    cmocka_unit_test_setup_teardown(unpack_refuses_escapes, set_up, tear_down),
	    cmocka_unit_test_setup_teardown(copy_merges_like_overlay, set_up, tear_down),
	    cmocka_unit_test_setup_teardown(import_oci_layout, set_up, tear_down),
	    cmocka_unit_test_setup_teardown(remove_names_then_image, set_up, tear_down),
	    cmocka_unit_test_setup_teardown(import_refuses_bad_layouts, set_up, tear_down),
	    cmocka_unit_test_setup_teardown(import_docker_archive, set_up, tear_down),
	    cmocka_unit_test_setup_teardown(users, set_up, tear_down),
	    cmocka_unit_test_setup_teardown(rootfs_create_and_remove, set_up, tear_down),
	};

	return cmocka_run_group_tests_name("runtime_image", tests, NULL, NULL);
}
