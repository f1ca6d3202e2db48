/* Unit tests of src/node/podspec: environment (image, envFrom, env,
 * fieldRef, ConfigMap and Secret keys), command line, volume files,
 * mounts and resources, as the node agent hands them to the runtime. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "src/lib/pki.h"
#include "src/node/agent.h"
#include "src/node/creds.h"
#include "src/node/podspec.h"

/* ------------------------------------------------------------ fixture */

struct fx {
	json_t *pod, *cms, *secrets, *pvs;
	char dir[64];
	struct podspec_ctx x;
};

static const char *POD =
	"{\"metadata\":{\"name\":\"web\",\"namespace\":\"prod\",\"uid\":\"u-1\","
	"\"labels\":{\"app\":\"a1\"}},"
	"\"spec\":{\"nodeName\":\"n1\",\"volumes\":["
	"{\"name\":\"cfg\",\"configMap\":{\"name\":\"cm\"}},"
	"{\"name\":\"sec\",\"secret\":{\"secretName\":\"s\",\"items\":[{\"key\":\"pw\","
	"\"path\":\"sub/password\"}]}},"
	"{\"name\":\"scratch\",\"emptyDir\":{}},"
	"{\"name\":\"data\",\"persistentVolumeClaim\":{\"claimName\":\"claim\"}},"
	"{\"name\":\"host\",\"hostPath\":{\"path\":\"/srv\"}}],"
	"\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}";

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->pod = json_loads(POD, 0, NULL);
	f->cms = json_pack("{s:{s:{s:s, s:s}}}", "cm", "data", "greeting", "hello", "mode",
			   "fast");
	/* "c2VjcmV0" is base64 of "secret". */
	f->secrets = json_pack("{s:{s:{s:s}}}", "s", "data", "pw", "c2VjcmV0");
	f->pvs = json_pack("{s:s}", "claim", "/mnt/pv1");
	snprintf(f->dir, sizeof(f->dir), "/tmp/test-podspec-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->x.pod = f->pod;
	f->x.configmaps = f->cms;
	f->x.secrets = f->secrets;
	f->x.pv_paths = f->pvs;
	f->x.pod_dir = f->dir;
	f->x.pod_name = "web";
	f->x.pod_ip = "10.88.0.7";
	f->x.host_ip = "192.0.2.1";
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	node__rm_rf(f->dir);
	json_decref(f->pod);
	json_decref(f->cms);
	json_decref(f->secrets);
	json_decref(f->pvs);
	free(f);
	return 0;
}

/* ------------------------------------------------------------ helpers */

static const char *env_get(char **env, const char *k)
{
	size_t i, n = strlen(k);

	for (i = 0; env[i] != NULL; i++)
		if (strncmp(env[i], k, n) == 0 && env[i][n] == '=')
			return env[i] + n + 1;
	return NULL;
}

static char *slurp(const char *dir, const char *name)
{
	char path[256], *data;
	size_t len;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (pki_read_file(path, &data, &len) != 0)
		return NULL;
	return data;
}

/* ------------------------------------------------------------ env */

static void env_sources_in_order(void **state)
{
	struct fx *f = *state;
	json_t *ctr = json_loads(
		"{\"name\":\"c\",\"envFrom\":[{\"configMapRef\":{\"name\":\"cm\"},\"prefix\":\"CM_\"}],"
		"\"env\":[{\"name\":\"A\",\"value\":\"1\"},"
		"{\"name\":\"PATH\",\"value\":\"/opt/bin\"},"
		"{\"name\":\"POD\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"metadata.name\"}}},"
		"{\"name\":\"NS\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"metadata.namespace\"}}},"
		"{\"name\":\"IP\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":\"status.podIP\"}}},"
		"{\"name\":\"APP\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":"
		"\"metadata.labels['app']\"}}},"
		"{\"name\":\"G\",\"valueFrom\":{\"configMapKeyRef\":{\"name\":\"cm\",\"key\":"
		"\"greeting\"}}},"
		"{\"name\":\"PW\",\"valueFrom\":{\"secretKeyRef\":{\"name\":\"s\",\"key\":\"pw\"}}}]}",
		0, NULL);
	char *image_env[] = {"PATH=/bin", "LANG=C", "A=0", NULL};
	char **env = NULL, why[256] = "";

	assert_int_equal(podspec_env(&f->x, ctr, image_env, &env, why, sizeof(why)), 0);
	assert_string_equal(env_get(env, "A"), "1"); /* env overrides the image */
	assert_string_equal(env_get(env, "LANG"), "C");
	assert_string_equal(env_get(env, "PATH"), "/opt/bin");
	assert_string_equal(env_get(env, "CM_greeting"), "hello");
	assert_string_equal(env_get(env, "CM_mode"), "fast");
	assert_string_equal(env_get(env, "POD"), "web");
	assert_string_equal(env_get(env, "NS"), "prod");
	assert_string_equal(env_get(env, "IP"), "10.88.0.7");
	assert_string_equal(env_get(env, "APP"), "a1");
	assert_string_equal(env_get(env, "G"), "hello");
	assert_string_equal(env_get(env, "PW"), "secret");
	assert_string_equal(env_get(env, "HOSTNAME"), "web");
	node_strv_free(env);
	json_decref(ctr);
}

static void env_missing_key_is_config_error(void **state)
{
	struct fx *f = *state;
	json_t *ctr = json_loads("{\"env\":[{\"name\":\"X\",\"valueFrom\":{\"configMapKeyRef\":"
				 "{\"name\":\"cm\",\"key\":\"nope\"}}}]}",
				 0, NULL);
	json_t *opt = json_loads("{\"env\":[{\"name\":\"X\",\"valueFrom\":{\"secretKeyRef\":"
				 "{\"name\":\"gone\",\"key\":\"k\",\"optional\":true}}}]}",
				 0, NULL);
	char **env = NULL, why[256] = "";

	assert_int_equal(podspec_env(&f->x, ctr, NULL, &env, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "nope"));
	assert_int_equal(podspec_env(&f->x, opt, NULL, &env, why, sizeof(why)), 0);
	assert_null(env_get(env, "X"));
	node_strv_free(env);
	json_decref(ctr);
	json_decref(opt);
}

/* ------------------------------------------------------------ args */

static void command_and_args_over_the_image(void **state)
{
	char *ep[] = {"/entry", NULL}, *cmd[] = {"serve", "--fast", NULL}, **args = NULL;
	json_t *only_args = json_loads("{\"args\":[\"x\",\"x\"]}", 0, NULL);
	json_t *command = json_loads("{\"command\":[\"sh\",\"-c\"],\"args\":[\"echo hi\"]}", 0, NULL);
	json_t *none = json_object();

	(void)state;
	assert_int_equal(podspec_args(none, ep, cmd, &args), 0);
	assert_string_equal(args[0], "/entry");
	assert_string_equal(args[2], "--fast");
	assert_null(args[3]);
	node_strv_free(args);
	/* args replace the image's Cmd, keep its Entrypoint; repeats stay. */
	assert_int_equal(podspec_args(only_args, ep, cmd, &args), 0);
	assert_string_equal(args[0], "/entry");
	assert_string_equal(args[1], "x");
	assert_string_equal(args[2], "x");
	assert_null(args[3]);
	node_strv_free(args);
	/* command replaces both. */
	assert_int_equal(podspec_args(command, ep, cmd, &args), 0);
	assert_string_equal(args[0], "sh");
	assert_string_equal(args[2], "echo hi");
	assert_null(args[3]);
	node_strv_free(args);
	assert_int_equal(podspec_args(none, NULL, NULL, &args), -EINVAL);
	json_decref(only_args);
	json_decref(command);
	json_decref(none);
}

/* ------------------------------------------------------------ volumes */

static void volumes_written_and_mounted(void **state)
{
	struct fx *f = *state;
	char vdir[128], why[256] = "", *t, **strs = NULL;
	json_t *ctr = json_loads("{\"volumeMounts\":["
				 "{\"name\":\"cfg\",\"mountPath\":\"/etc/cfg\",\"readOnly\":true},"
				 "{\"name\":\"data\",\"mountPath\":\"/data\"},"
				 "{\"name\":\"host\",\"mountPath\":\"/srv\"},"
				 "{\"name\":\"scratch\",\"mountPath\":\"/tmp/x\"}]}",
				 0, NULL);
	struct rt_mount *m = NULL;
	size_t n = 0;
	struct stat st;

	assert_int_equal(podspec_volumes(&f->x, why, sizeof(why)), 0);
	snprintf(vdir, sizeof(vdir), "%s/volumes/cfg", f->dir);
	t = slurp(vdir, "greeting");
	assert_string_equal(t, "hello");
	free(t);
	snprintf(vdir, sizeof(vdir), "%s/volumes/sec", f->dir);
	t = slurp(vdir, "sub/password");
	assert_string_equal(t, "secret");
	free(t);
	snprintf(vdir, sizeof(vdir), "%s/volumes/scratch", f->dir);
	assert_int_equal(stat(vdir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));

	assert_int_equal(podspec_mounts(&f->x, ctr, &m, &n, &strs, why, sizeof(why)), 0);
	assert_int_equal(n, 4);
	assert_string_equal(m[0].destination, "/etc/cfg");
	assert_true(m[0].readonly);
	assert_non_null(strstr(m[0].source, "/volumes/cfg"));
	assert_string_equal(m[1].source, "/mnt/pv1");
	assert_string_equal(m[2].source, "/srv");
	assert_false(m[3].readonly);
	free(m);
	node_strv_free(strs);
	json_decref(ctr);
}

static void missing_configmap_volume_fails(void **state)
{
	struct fx *f = *state;
	char why[256] = "";

	json_object_del(f->cms, "cm");
	assert_int_equal(podspec_volumes(&f->x, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "configmap"));
}

static void resources_parsed(void **state)
{
	json_t *ctr = json_loads("{\"resources\":{\"requests\":{\"cpu\":\"250m\"},"
				 "\"limits\":{\"cpu\":\"1.5\",\"memory\":\"64Mi\"}}}",
				 0, NULL);
	int64_t req, lim, mem;

	(void)state;
	podspec_resources(ctr, &req, &lim, &mem);
	assert_int_equal(req, 250);
	assert_int_equal(lim, 1500);
	assert_int_equal(mem, 64 * 1024 * 1024);
	json_decref(ctr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(env_sources_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(env_missing_key_is_config_error, setup, teardown),
		cmocka_unit_test_setup_teardown(command_and_args_over_the_image, setup, teardown),
		cmocka_unit_test_setup_teardown(volumes_written_and_mounted, setup, teardown),
		cmocka_unit_test_setup_teardown(missing_configmap_volume_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(resources_parsed, setup, teardown),
	};

	return cmocka_run_group_tests_name("node_podspec", tests, NULL, NULL);
}
