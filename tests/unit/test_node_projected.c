/* Unit tests of src/node/projected: token bookkeeping (TokenRequest body,
 * answers, refresh at 80% of the lifetime or 24 h, retry back-off),
 * projected/downwardAPI volume payloads, and the atomic writer's
 * ..data link swap. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "src/node/agent.h"
#include "src/node/projected.h"

/* ------------------------------------------------------------ fixture */

static const char *POD =
	"{\"metadata\":{\"name\":\"web\",\"namespace\":\"prod\",\"uid\":\"u-1\","
	"\"labels\":{\"b\":\"2\",\"a\":\"x\\\"y\"},\"annotations\":{\"note\":\"hi\"}},"
	"\"spec\":{\"volumes\":["
	"{\"name\":\"sa\",\"projected\":{\"defaultMode\":420,\"sources\":["
	"{\"serviceAccountToken\":{\"path\":\"token\",\"expirationSeconds\":7200}},"
	"{\"configMap\":{\"name\":\"kube-root-ca.crt\",\"items\":[{\"key\":\"ca.crt\","
	"\"path\":\"ca.crt\"}]}},"
	"{\"downwardAPI\":{\"items\":[{\"path\":\"namespace\",\"fieldRef\":{\"fieldPath\":"
	"\"metadata.namespace\"}},{\"path\":\"meta/labels\",\"fieldRef\":{\"fieldPath\":"
	"\"metadata.labels\"}},{\"path\":\"meta/note\",\"fieldRef\":{\"fieldPath\":"
	"\"metadata.annotations['note']\"}},{\"path\":\"name\",\"mode\":384,"
	"\"fieldRef\":{\"fieldPath\":\"metadata.name\"}}]}},"
	"{\"secret\":{\"name\":\"s\"}},"
	"{\"configMap\":{\"name\":\"absent\",\"optional\":true}}]}},"
	"{\"name\":\"vault\",\"projected\":{\"sources\":["
	"{\"serviceAccountToken\":{\"path\":\"vault-token\",\"audience\":\"vault\"}}]}},"
	"{\"name\":\"plain\",\"configMap\":{\"name\":\"kube-root-ca.crt\"}}],"
	"\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}";

struct fx {
	json_t *pod, *cms, *secrets;
	char dir[64];
	struct podspec_ctx x;
	struct projected_tokens t;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->pod = json_loads(POD, 0, NULL);
	assert_non_null(f->pod);
	f->cms = json_pack("{s:{s:{s:s, s:s}}}", "kube-root-ca.crt", "data", "ca.crt",
			   "-----BEGIN CERTIFICATE-----\n", "other", "unused");
	/* "c2VjcmV0" is base64 of "secret". */
	f->secrets = json_pack("{s:{s:{s:s}}}", "s", "data", "pw", "c2VjcmV0");
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-projected-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->x.pod = f->pod;
	f->x.configmaps = f->cms;
	f->x.secrets = f->secrets;
	f->x.pod_dir = f->dir;
	f->x.pod_name = "web";
	f->x.pod_ip = "";
	f->x.host_ip = "192.0.2.1";
	unsetenv(PROJECTED_REFRESH_ENV);
	assert_int_equal(projected_tokens_init(&f->t, f->pod), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	node__rm_rf(f->dir);
	projected_tokens_clear(&f->t);
	json_decref(f->pod);
	json_decref(f->cms);
	json_decref(f->secrets);
	free(f);
	return 0;
}

/* ------------------------------------------------------------ helpers */

static char *slurp(const char *dir, const char *name)
{
	char path[PATH_MAX], *buf = calloc(1, 65536);
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(buf);
		return NULL;
	}
	n = read(fd, buf, 65535);
	close(fd);
	if (n < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void assert_file(const char *dir, const char *name, const char *want)
{
	char *got = slurp(dir, name);

	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static char *link_of(const char *dir, const char *name)
{
	char path[PATH_MAX];
	static char buf[PATH_MAX];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	n = readlink(path, buf, sizeof(buf) - 1);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

/* Entries of @dir whose name starts with "..". */
static int hidden_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, "..", 2) == 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void payload_of(struct projected_payload *p, const char *const *kv)
{
	size_t i;

	memset(p, 0, sizeof(*p));
	for (i = 0; kv[i] != NULL; i += 2)
		;
	p->n = i / 2;
	p->v = calloc(p->n, sizeof(*p->v));
	for (i = 0; i < p->n; i++) {
		p->v[i].path = strdup(kv[2 * i]);
		p->v[i].data = strdup(kv[2 * i + 1]);
		p->v[i].len = strlen(kv[2 * i + 1]);
		p->v[i].mode = 0644;
	}
}

static void give_tokens(struct fx *f, const char *tok)
{
	json_t *resp = json_pack("{s:{s:i}, s:{s:s, s:s}}", "spec", "expirationSeconds", 7200,
				 "status", "token", tok, "expirationTimestamp",
				 "2030-01-01T00:00:00Z");
	size_t i;

	for (i = 0; i < f->t.n; i++)
		assert_int_equal(projected_token_set(&f->t.v[i], resp, 1893456000 - 7200, 0, 0),
				 0);
	json_decref(resp);
	json_object_set_new(f->pod, PROJECTED_TOKENS_MEMBER, projected_tokens_json(&f->t));
}

/* ------------------------------------------------------------ tokens */

static void test_tokens_from_pod(void **state)
{
	struct fx *f = *state;
	json_t *body;
	char path[256];

	assert_int_equal(f->t.n, 2);
	assert_string_equal(f->t.service_account, "default");
	assert_string_equal(f->t.v[0].volume, "sa");
	assert_int_equal(f->t.v[0].source, 0);
	assert_int_equal(f->t.v[0].expiration_s, 7200);
	assert_null(f->t.v[0].audience);
	assert_string_equal(f->t.v[1].volume, "vault");
	assert_int_equal(f->t.v[1].expiration_s, PROJECTED_DEFAULT_EXPIRY_S);
	assert_string_equal(f->t.v[1].audience, "vault");
	assert_false(projected_tokens_ready(&f->t));
	/* Nothing held yet: both are due at once. */
	assert_int_equal(projected_tokens_next(&f->t), 0);

	assert_int_equal(projected_token_path(&f->t, "prod", path, sizeof(path)), 0);
	assert_string_equal(path, "/api/v1/namespaces/prod/serviceaccounts/default/token");
	body = projected_token_request(&f->t.v[1], "web", "u-1");
	assert_string_equal(json_string_value(json_object_get(body, "kind")), "TokenRequest");
	{
		json_t *spec = json_object_get(body, "spec");
		json_t *ref = json_object_get(spec, "boundObjectRef");
		assert_int_equal(json_integer_value(json_object_get(spec, "expirationSeconds")),
				 3600);
		assert_string_equal(json_string_value(json_array_get(
					    json_object_get(spec, "audiences"), 0)),
				    "vault");
		assert_string_equal(json_string_value(json_object_get(ref, "kind")), "Pod");
		assert_string_equal(json_string_value(json_object_get(ref, "name")), "web");
		assert_string_equal(json_string_value(json_object_get(ref, "uid")), "u-1");
	}
	json_decref(body);
	body = projected_token_request(&f->t.v[0], "web", "u-1");
	assert_null(json_object_get(json_object_get(body, "spec"), "audiences"));
	json_decref(body);
}

static void test_service_account_name(void **state)
{
	struct projected_tokens t;
	json_t *pod = json_pack("{s:{s:s, s:[]}}", "spec", "serviceAccountName", "builder",
				"volumes");

	(void)state;
	assert_int_equal(projected_tokens_init(&t, pod), 0);
	assert_int_equal(t.n, 0);
	assert_string_equal(t.service_account, "builder");
	assert_true(projected_tokens_ready(&t));
	assert_int_equal(projected_tokens_next(&t), UINT64_MAX);
	projected_tokens_clear(&t);
	projected_tokens_clear(&t); /* twice is fine */
	json_decref(pod);
}

static void test_refresh_delay(void **state)
{
	(void)state;
	/* A fresh token: at 80% of its lifetime. */
	assert_int_equal(projected_refresh_delay_ms(3600, 3600), 2880000);
	assert_int_equal(projected_refresh_delay_ms(600, 600), 480000);
	/* Half of it already gone on arrival: 80% counted from the issue. */
	assert_int_equal(projected_refresh_delay_ms(3600, 1800), 1080000);
	/* Past 80% already: soon, but not in a tight loop. */
	assert_int_equal(projected_refresh_delay_ms(3600, 100), 1000);
	assert_int_equal(projected_refresh_delay_ms(3600, -5), 1000);
	/* Never later than 24 h after the issue. */
	assert_int_equal(projected_refresh_delay_ms(2 * 86400, 2 * 86400), 86400000);
	assert_int_equal(projected_refresh_delay_ms(2 * 86400, 2 * 86400 - 3600),
			 86400000 - 3600000);
	/* A clock ahead of the server's: counted from now. */
	assert_int_equal(projected_refresh_delay_ms(3600, 4000), 2880000);
	assert_int_equal(projected_refresh_delay_ms(0, 0), 1000);
}

static void test_token_set_and_failures(void **state)
{
	struct fx *f = *state;
	struct projected_token *tk = &f->t.v[0];
	json_t *resp = json_pack("{s:{s:i}, s:{s:s, s:s}}", "spec", "expirationSeconds", 3600,
				 "status", "token", "jwt-1", "expirationTimestamp",
				 "2026-01-01T01:00:00Z");
	json_t *bad = json_pack("{s:{}}", "status");
	int64_t issued = 1767225600; /* 2026-01-01T00:00:00Z */

	/* Received 10 s after its issue: refresh at 2880 s after the issue;
	 * the server's lifetime (3600) wins over the 7200 asked. */
	assert_int_equal(projected_token_set(tk, resp, issued + 10, 5000, 0), 0);
	assert_string_equal(tk->token, "jwt-1");
	assert_int_equal(tk->refresh_ms, 5000 + 2870000);
	assert_true(projected_token_set(&f->t.v[1], resp, issued, 0, 0) == 0);
	assert_true(projected_tokens_ready(&f->t));
	assert_int_equal(projected_tokens_next(&f->t), 2875000); /* the earliest */

	/* Failures keep the token and back off: 1 s, 2 s, 4 s ... 60 s. */
	projected_token_failed(tk, 100000);
	assert_string_equal(tk->token, "jwt-1");
	assert_int_equal(tk->refresh_ms, 101000);
	assert_int_equal(tk->failures, 1);
	projected_token_failed(tk, 101000);
	assert_int_equal(tk->refresh_ms, 103000);
	projected_token_failed(tk, 103000);
	assert_int_equal(tk->refresh_ms, 107000);
	for (int i = 0; i < 10; i++)
		projected_token_failed(tk, 200000);
	assert_int_equal(tk->backoff_ms, PROJECTED_RETRY_MAX_MS);
	assert_int_equal(tk->refresh_ms, 200000 + PROJECTED_RETRY_MAX_MS);
	assert_int_equal(tk->failures, 13);
	/* In flight: not counted as due. */
	tk->in_flight = true;
	assert_int_equal(projected_tokens_next(&f->t), 2880000);
	tk->in_flight = false;

	/* An answer without a token changes nothing. */
	assert_int_equal(projected_token_set(tk, bad, issued, 0, 0), -EINVAL);
	assert_string_equal(tk->token, "jwt-1");
	/* A success resets the back-off; the test hook fixes the delay. */
	assert_int_equal(projected_token_set(tk, resp, issued, 300000, 2500), 0);
	assert_int_equal(tk->backoff_ms, 0);
	assert_int_equal(tk->failures, 0);
	assert_int_equal(tk->refresh_ms, 302500);
	/* No timestamp: the whole lifetime is left. */
	json_object_del(json_object_get(resp, "status"), "expirationTimestamp");
	assert_int_equal(projected_token_set(tk, resp, issued, 0, 0), 0);
	assert_int_equal(tk->refresh_ms, 2880000);
	json_decref(resp);
	json_decref(bad);
}

static void test_refresh_env(void **state)
{
	struct fx *f = *state;
	struct projected_tokens t;

	setenv(PROJECTED_REFRESH_ENV, "1500", 1);
	assert_int_equal(projected_tokens_init(&t, f->pod), 0);
	unsetenv(PROJECTED_REFRESH_ENV);
	assert_int_equal(t.refresh_override_ms, 1500);
	projected_tokens_clear(&t);
}

static void test_tokens_json(void **state)
{
	struct fx *f = *state;
	json_t *j;

	j = projected_tokens_json(&f->t);
	assert_int_equal(json_object_size(j), 0); /* none held yet */
	json_decref(j);
	give_tokens(f, "jwt-A");
	j = json_object_get(f->pod, PROJECTED_TOKENS_MEMBER);
	assert_string_equal(json_string_value(json_object_get(json_object_get(j, "sa"), "0")),
			    "jwt-A");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(j, "vault"), "0")), "jwt-A");
}

static void test_event(void **state)
{
	struct fx *f = *state;
	json_t *ev = projected_event(f->pod, "n1", "FailedMount", "no token", 1767225600);
	json_t *io = json_object_get(ev, "involvedObject");

	assert_non_null(ev);
	assert_string_equal(json_string_value(json_object_get(ev, "kind")), "Event");
	assert_string_equal(json_string_value(json_object_get(io, "kind")), "Pod");
	assert_string_equal(json_string_value(json_object_get(io, "uid")), "u-1");
	assert_string_equal(json_string_value(json_object_get(io, "namespace")), "prod");
	assert_string_equal(json_string_value(json_object_get(ev, "type")), "Warning");
	assert_string_equal(json_string_value(json_object_get(ev, "reason")), "FailedMount");
	assert_string_equal(json_string_value(json_object_get(ev, "firstTimestamp")),
			    "2026-01-01T00:00:00Z");
	assert_true(strncmp(json_string_value(json_object_get(json_object_get(ev, "metadata"),
							      "name")),
			    "web.", 4) == 0);
	json_decref(ev);
}

/* ------------------------------------------------------------ payload */

static const struct projected_file *find(const struct projected_payload *p, const char *path)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (strcmp(p->v[i].path, path) == 0)
			return &p->v[i];
	return NULL;
}

static void test_payload(void **state)
{
	struct fx *f = *state;
	const json_t *vol = json_array_get(json_object_get(json_object_get(f->pod, "spec"),
							   "volumes"),
					   0);
	struct projected_payload p;
	const struct projected_file *pf;
	char why[256] = "";

	/* No token yet: the volume cannot be made. */
	assert_int_equal(projected_payload_build(&f->x, vol, &p, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "token"));
	give_tokens(f, "jwt-A");
	assert_int_equal(projected_payload_build(&f->x, vol, &p, why, sizeof(why)), 0);
	assert_int_equal(p.n, 7);
	pf = find(&p, "token");
	assert_non_null(pf);
	assert_memory_equal(pf->data, "jwt-A", 5);
	assert_int_equal(pf->mode, 0644);
	pf = find(&p, "ca.crt");
	assert_string_equal(pf->data, "-----BEGIN CERTIFICATE-----\n");
	assert_null(find(&p, "other")); /* items select keys */
	assert_string_equal(find(&p, "namespace")->data, "prod");
	/* Labels as the kubelet writes them: sorted, quoted, no final \n. */
	assert_string_equal(find(&p, "meta/labels")->data, "a=\"x\\\"y\"\nb=\"2\"");
	assert_string_equal(find(&p, "meta/note")->data, "hi");
	pf = find(&p, "name");
	assert_string_equal(pf->data, "web");
	assert_int_equal(pf->mode, 0600);
	pf = find(&p, "pw");
	assert_int_equal(pf->len, 6);
	assert_memory_equal(pf->data, "secret", 6);
	projected_payload_clear(&p);

	/* A missing non-optional ConfigMap, key, or a bad path. */
	json_object_del(f->cms, "kube-root-ca.crt");
	assert_int_equal(projected_payload_build(&f->x, vol, &p, why, sizeof(why)), -ENOENT);
	assert_string_equal(why, "configmap \"kube-root-ca.crt\" not found");
	json_object_set_new(f->cms, "kube-root-ca.crt", json_pack("{s:{}}", "data"));
	assert_int_equal(projected_payload_build(&f->x, vol, &p, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "ca.crt"));
	{
		json_t *bad = json_pack("{s:s, s:{s:[{s:{s:[{s:s, s:{s:s}}]}}]}}", "name", "b",
					"projected", "sources", "downwardAPI", "items", "path",
					"../escape", "fieldRef", "fieldPath", "metadata.name");
		assert_int_equal(projected_payload_build(&f->x, bad, &p, why, sizeof(why)),
				 -EINVAL);
		json_decref(bad);
		bad = json_pack("{s:s, s:{s:[{s:s, s:{s:s}}]}}", "name", "d", "downwardAPI",
				"items", "path", "podname", "fieldRef", "fieldPath",
				"metadata.name");
		/* A plain downwardAPI volume. */
		assert_int_equal(projected_payload_build(&f->x, bad, &p, why, sizeof(why)), 0);
		assert_int_equal(p.n, 1);
		assert_string_equal(p.v[0].data, "web");
		projected_payload_clear(&p);
		json_decref(bad);
	}
}

/* ------------------------------------------------------------ atomic writer */

static void test_atomic_writer(void **state)
{
	struct fx *f = *state;
	static const char *const v1[] = {"token", "one", "ca.crt", "CA", "sub/deep", "d1",
					 "old", "gone soon", NULL};
	static const char *const v2[] = {"token", "two", "ca.crt", "CA", "sub/deep", "d2",
					 NULL};
	struct projected_payload p1, p2;
	char data_dir[PATH_MAX], first[256], path[PATH_MAX];
	bool changed = false;
	struct stat st;
	int fd;
	char buf[16] = "";

	payload_of(&p1, v1);
	payload_of(&p2, v2);
	/* A file from an older, non-atomic writer gives way to a link. */
	snprintf(path, sizeof(path), "%s/token", f->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	close(fd);

	assert_int_equal(projected_write_atomic(f->dir, &p1, &changed), 0);
	assert_true(changed);
	assert_string_equal(link_of(f->dir, "token"), "..data/token");
	assert_string_equal(link_of(f->dir, "sub"), "..data/sub");
	assert_non_null(link_of(f->dir, "..data"));
	snprintf(first, sizeof(first), "%s", link_of(f->dir, "..data"));
	assert_true(strncmp(first, "..", 2) == 0 && strchr(first, '/') == NULL);
	assert_file(f->dir, "token", "one");
	assert_file(f->dir, "sub/deep", "d1");
	assert_file(f->dir, "old", "gone soon");
	assert_int_equal(hidden_entries(f->dir), 2); /* ..data and one version */
	snprintf(data_dir, sizeof(data_dir), "%s/..data", f->dir);
	assert_int_equal(stat(data_dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0755);

	/* The same payload again writes nothing. */
	assert_int_equal(projected_write_atomic(f->dir, &p1, &changed), 0);
	assert_false(changed);
	assert_string_equal(link_of(f->dir, "..data"), first);

	/* A reader holding the old file keeps reading the old contents. */
	snprintf(path, sizeof(path), "%s/token", f->dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(projected_write_atomic(f->dir, &p2, &changed), 0);
	assert_true(changed);
	assert_int_equal(read(fd, buf, sizeof(buf) - 1), 3);
	assert_string_equal(buf, "one");
	close(fd);
	/* The new version: a new directory, ..data swapped, the old one and
	 * names no longer in the payload removed. */
	assert_string_not_equal(link_of(f->dir, "..data"), first);
	assert_file(f->dir, "token", "two");
	assert_file(f->dir, "sub/deep", "d2");
	assert_null(link_of(f->dir, "old"));
	snprintf(path, sizeof(path), "%s/old", f->dir);
	assert_int_equal(lstat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/%s", f->dir, first);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(hidden_entries(f->dir), 2);

	/* A changed mode alone is a change. */
	p2.v[0].mode = 0600;
	assert_int_equal(projected_write_atomic(f->dir, &p2, &changed), 0);
	assert_true(changed);
	snprintf(path, sizeof(path), "%s/token", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* Paths that would escape or clash with the writer's names. */
	free(p2.v[0].path);
	p2.v[0].path = strdup("..data");
	assert_int_equal(projected_write_atomic(f->dir, &p2, NULL), -EINVAL);
	free(p2.v[0].path);
	p2.v[0].path = strdup("a/../../x");
	assert_int_equal(projected_write_atomic(f->dir, &p2, NULL), -EINVAL);
	free(p2.v[0].path);
	p2.v[0].path = strdup("/etc/passwd");
	assert_int_equal(projected_write_atomic(f->dir, &p2, NULL), -EINVAL);
	assert_file(f->dir, "token", "two"); /* untouched */
	projected_payload_clear(&p1);
	projected_payload_clear(&p2);
}

static void test_modes_ignore_umask(void **state)
{
	struct fx *f = *state;
	static const char *const v[] = {"token", "t", NULL};
	struct projected_payload p;
	char path[PATH_MAX];
	struct stat st;
	mode_t old = umask(077);

	payload_of(&p, v);
	assert_int_equal(projected_write_atomic(f->dir, &p, NULL), 0);
	umask(old);
	snprintf(path, sizeof(path), "%s/token", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	projected_payload_clear(&p);
}

static void test_token_volumes_write(void **state)
{
	struct fx *f = *state;
	char dir[PATH_MAX], why[256] = "";
	char *ca;

	give_tokens(f, "jwt-A");
	/* Only volumes holding tokens are written (not "plain"). */
	assert_int_equal(projected_token_volumes_write(&f->x, why, sizeof(why)), -ENOENT);
	snprintf(dir, sizeof(dir), "%s/volumes/sa", f->dir);
	assert_int_equal(podspec_mkdir_p(dir), 0);
	snprintf(dir, sizeof(dir), "%s/volumes/vault", f->dir);
	assert_int_equal(podspec_mkdir_p(dir), 0);
	assert_int_equal(projected_token_volumes_write(&f->x, why, sizeof(why)), 0);
	snprintf(dir, sizeof(dir), "%s/volumes/sa", f->dir);
	assert_file(dir, "token", "jwt-A");
	assert_file(dir, "namespace", "prod");
	ca = slurp(dir, "ca.crt");
	assert_string_equal(ca, "-----BEGIN CERTIFICATE-----\n");
	free(ca);
	snprintf(dir, sizeof(dir), "%s/volumes/vault", f->dir);
	assert_file(dir, "vault-token", "jwt-A");
	snprintf(dir, sizeof(dir), "%s/volumes/plain", f->dir);
	assert_int_equal(access(dir, F_OK), -1);

	/* A refresh swaps the token in place. */
	give_tokens(f, "jwt-B");
	assert_int_equal(projected_token_volumes_write(&f->x, why, sizeof(why)), 0);
	snprintf(dir, sizeof(dir), "%s/volumes/sa", f->dir);
	assert_file(dir, "token", "jwt-B");
	assert_int_equal(hidden_entries(dir), 2);
}

/* Through podspec_volumes, as the agent makes a pod's volumes. */
static void test_podspec_volumes(void **state)
{
	struct fx *f = *state;
	char dir[PATH_MAX], why[256] = "";

	assert_int_equal(podspec_volumes(&f->x, why, sizeof(why)), -ENOENT);
	give_tokens(f, "jwt-C");
	assert_int_equal(podspec_volumes(&f->x, why, sizeof(why)), 0);
	snprintf(dir, sizeof(dir), "%s/volumes/sa", f->dir);
	assert_file(dir, "token", "jwt-C");
	assert_string_equal(link_of(dir, "token"), "..data/token");
	snprintf(dir, sizeof(dir), "%s/volumes/plain", f->dir);
	assert_file(dir, "ca.crt", "-----BEGIN CERTIFICATE-----\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tokens_from_pod, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_account_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh_delay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_set_and_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refresh_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_event, setup, teardown),
		cmocka_unit_test_setup_teardown(test_payload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atomic_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_modes_ignore_umask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_volumes_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_podspec_volumes, setup, teardown),
	};

	return cmocka_run_group_tests_name("node_projected", tests, NULL, NULL);
}
