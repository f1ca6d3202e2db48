/* Unit tests of defaulting: Kubernetes' defaults per kind and nested type. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "src/api/defaults.h"
#include "src/api/validate.h"

/* ---------------------------------------------------------------- Helpers */

static json_t *defaulted(const char *resource, const char *text)
{
	json_error_t err;
	json_t *j = json_loads(text, 0, &err);
	assert_non_null(j);
	assert_int_equal(api_default(api_kind_by_name(resource), j), 0);
	return j;
}

/* ---------------------------------------------------------------- Assertions */

static const char *str_or_absent(const json_t *obj, const char *path)
{
	const char *s = json_string_value(api_json_path(obj, path));
	return s ? s : "(absent)";
}

#define ASSERT_STR(obj, path, want) assert_string_equal(str_or_absent(obj, path), want)
#define ASSERT_INT(obj, path, want)                                  \
	do {                                                         \
		json_t *v_ = api_json_path(obj, path);               \
		assert_true(json_is_integer(v_));                    \
		assert_int_equal(json_integer_value(v_), want);      \
	} while (0)
#define ASSERT_ABSENT(obj, path) assert_null(api_json_path(obj, path))

/* ---------------------------------------------------------------- Tests */

static void pull_policy(void **state)
{
	(void)state;
	assert_string_equal(api_default_pull_policy("nginx"), "Always");
	assert_string_equal(api_default_pull_policy("nginx:latest"), "Always");
	assert_string_equal(api_default_pull_policy("nginx:1.25"), "IfNotPresent");
	assert_string_equal(api_default_pull_policy("registry:5000/nginx"), "Always");
	assert_string_equal(api_default_pull_policy("registry:5000/nginx:1"), "IfNotPresent");
	assert_string_equal(api_default_pull_policy("nginx@sha256:abcd"), "IfNotPresent");
	assert_string_equal(api_default_pull_policy("nginx:latest@sha256:abcd"), "Always");
	assert_string_equal(api_default_pull_policy("nginx:latestx"), "IfNotPresent");
}

static void pod(void **state)
{
	(void)state;
	json_t *p = defaulted("pods",
		"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\",\"namespace\":\"d\"},"
		"\"spec\":{\"containers\":[{\"name\":\"a\",\"image\":\"nginx\",\"ports\":[{\"containerPort\":80}],"
		"\"resources\":{\"limits\":{\"cpu\":\"1\",\"memory\":\"1Gi\"},\"requests\":{\"cpu\":\"100m\"}},"
		"\"readinessProbe\":{\"httpGet\":{\"port\":80},\"periodSeconds\":5}},"
		"{\"name\":\"b\",\"image\":\"busybox:1.36\",\"imagePullPolicy\":\"Never\"}],"
		"\"volumes\":[{\"name\":\"v1\"},{\"name\":\"v2\",\"configMap\":{\"name\":\"cm\"}},"
		"{\"name\":\"v3\",\"secret\":{\"secretName\":\"s\",\"defaultMode\":256}},{\"name\":\"v4\",\"hostPath\":{\"path\":\"/x\"}}],"
		"\"restartPolicy\":\"Never\"}}");
	ASSERT_STR(p, "spec.restartPolicy", "Never");
	ASSERT_STR(p, "spec.dnsPolicy", "ClusterFirst");
	ASSERT_STR(p, "spec.schedulerName", "default-scheduler");
	ASSERT_INT(p, "spec.terminationGracePeriodSeconds", 30);
	assert_true(json_is_object(api_json_path(p, "spec.securityContext")));
	assert_true(json_is_true(api_json_path(p, "spec.enableServiceLinks")));
	json_t *a = json_array_get(api_json_path(p, "spec.containers"), 0);
	json_t *b = json_array_get(api_json_path(p, "spec.containers"), 1);
	ASSERT_STR(a, "imagePullPolicy", "Always");
	ASSERT_STR(b, "imagePullPolicy", "Never");
	ASSERT_STR(a, "terminationMessagePath", "/dev/termination-log");
	ASSERT_STR(b, "terminationMessagePolicy", "File");
	ASSERT_STR(json_array_get(json_object_get(a, "ports"), 0), "protocol", "TCP");
	ASSERT_ABSENT(json_array_get(json_object_get(a, "ports"), 0), "hostPort");
	/* Requests default to limits where unset. */
	ASSERT_STR(a, "resources.requests.cpu", "100m");
	ASSERT_STR(a, "resources.requests.memory", "1Gi");
	/* Probe and HTTP GET defaults. */
	ASSERT_INT(a, "readinessProbe.periodSeconds", 5);
	ASSERT_INT(a, "readinessProbe.timeoutSeconds", 1);
	ASSERT_INT(a, "readinessProbe.successThreshold", 1);
	ASSERT_INT(a, "readinessProbe.failureThreshold", 3);
	ASSERT_STR(a, "readinessProbe.httpGet.path", "/");
	ASSERT_STR(a, "readinessProbe.httpGet.scheme", "HTTP");
	/* Volumes. */
	json_t *vols = api_json_path(p, "spec.volumes");
	assert_true(json_is_object(json_object_get(json_array_get(vols, 0), "emptyDir")));
	ASSERT_INT(json_array_get(vols, 1), "configMap.defaultMode", 420);
	ASSERT_INT(json_array_get(vols, 2), "secret.defaultMode", 256);
	ASSERT_STR(json_array_get(vols, 3), "hostPath.type", "");
	ASSERT_ABSENT(json_array_get(vols, 1), "emptyDir");

	/* The result still validates. */
	struct api_errors e;
	api_errors_init(&e);
	assert_int_equal(api_validate(api_kind_by_name("pods"), p, API_VALIDATE_UNKNOWN, &e), 0);
	assert_int_equal(e.n + e.n_unknown, 0);
	api_errors_close(&e);
	json_decref(p);
}

static void pod_host_network(void **state)
{
	(void)state;
	json_t *p = defaulted("pods", "{\"spec\":{\"hostNetwork\":true,\"containers\":[{\"name\":\"a\",\"image\":\"x:1\","
				      "\"ports\":[{\"containerPort\":8080}]}]}}");
	json_t *port = json_array_get(json_object_get(json_array_get(api_json_path(p, "spec.containers"), 0), "ports"), 0);
	ASSERT_INT(port, "hostPort", 8080);
	json_decref(p);
}

static void service(void **state)
{
	(void)state;
	json_t *s = defaulted("svc", "{\"spec\":{\"ports\":[{\"port\":80},{\"port\":53,\"protocol\":\"UDP\",\"targetPort\":\"dns\"},"
				     "{\"port\":90,\"targetPort\":0}]}}");
	ASSERT_STR(s, "spec.type", "ClusterIP");
	ASSERT_STR(s, "spec.sessionAffinity", "None");
	ASSERT_STR(s, "spec.internalTrafficPolicy", "Cluster");
	ASSERT_ABSENT(s, "spec.externalTrafficPolicy");
	json_t *ports = api_json_path(s, "spec.ports");
	ASSERT_STR(json_array_get(ports, 0), "protocol", "TCP");
	ASSERT_INT(json_array_get(ports, 0), "targetPort", 80);
	ASSERT_STR(json_array_get(ports, 1), "protocol", "UDP");
	ASSERT_STR(json_array_get(ports, 1), "targetPort", "dns");
	ASSERT_INT(json_array_get(ports, 2), "targetPort", 90);
	json_decref(s);

	s = defaulted("svc", "{\"spec\":{\"type\":\"LoadBalancer\",\"sessionAffinity\":\"ClientIP\"},"
			     "\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"1.2.3.4\"}]}}}");
	ASSERT_STR(s, "spec.externalTrafficPolicy", "Cluster");
	assert_true(json_is_true(api_json_path(s, "spec.allocateLoadBalancerNodePorts")));
	ASSERT_INT(s, "spec.sessionAffinityConfig.clientIP.timeoutSeconds", 10800);
	ASSERT_STR(json_array_get(api_json_path(s, "status.loadBalancer.ingress"), 0), "ipMode", "VIP");
	json_decref(s);

	s = defaulted("svc", "{\"spec\":{\"type\":\"ExternalName\",\"externalName\":\"a.example.com\","
			     "\"sessionAffinityConfig\":{\"clientIP\":{\"timeoutSeconds\":5}}}}");
	ASSERT_ABSENT(s, "spec.internalTrafficPolicy");
	ASSERT_ABSENT(s, "spec.sessionAffinityConfig");
	json_decref(s);
}

static void apps(void **state)
{
	(void)state;
	const char *tmpl = "\"template\":{\"spec\":{\"containers\":[{\"name\":\"a\",\"image\":\"x:1\"}]}}";
	char buf[512];
	snprintf(buf, sizeof(buf), "{\"spec\":{%s}}", tmpl);

	json_t *d = defaulted("deploy", buf);
	ASSERT_INT(d, "spec.replicas", 1);
	ASSERT_STR(d, "spec.strategy.type", "RollingUpdate");
	ASSERT_STR(d, "spec.strategy.rollingUpdate.maxUnavailable", "25%");
	ASSERT_STR(d, "spec.strategy.rollingUpdate.maxSurge", "25%");
	ASSERT_INT(d, "spec.revisionHistoryLimit", 10);
	ASSERT_INT(d, "spec.progressDeadlineSeconds", 600);
	/* Templates get PodSpec and Container defaults, not Pod ones. */
	ASSERT_STR(d, "spec.template.spec.restartPolicy", "Always");
	ASSERT_STR(json_array_get(api_json_path(d, "spec.template.spec.containers"), 0), "imagePullPolicy", "IfNotPresent");
	ASSERT_ABSENT(d, "spec.template.spec.enableServiceLinks");
	json_decref(d);

	d = defaulted("deploy", "{\"spec\":{\"replicas\":0,\"strategy\":{\"type\":\"Recreate\"}}}");
	ASSERT_INT(d, "spec.replicas", 0);
	ASSERT_ABSENT(d, "spec.strategy.rollingUpdate");
	json_decref(d);

	json_t *rs = defaulted("rs", buf);
	ASSERT_INT(rs, "spec.replicas", 1);
	json_decref(rs);

	json_t *ds = defaulted("ds", buf);
	ASSERT_STR(ds, "spec.updateStrategy.type", "RollingUpdate");
	ASSERT_INT(ds, "spec.updateStrategy.rollingUpdate.maxUnavailable", 1);
	ASSERT_INT(ds, "spec.updateStrategy.rollingUpdate.maxSurge", 0);
	ASSERT_INT(ds, "spec.revisionHistoryLimit", 10);
	json_decref(ds);

	snprintf(buf, sizeof(buf), "{\"spec\":{%s,\"volumeClaimTemplates\":[{\"metadata\":{\"name\":\"data\"},"
				   "\"spec\":{\"accessModes\":[\"ReadWriteOnce\"]}}]}}", tmpl);
	json_t *sts = defaulted("sts", buf);
	ASSERT_INT(sts, "spec.replicas", 1);
	ASSERT_STR(sts, "spec.podManagementPolicy", "OrderedReady");
	ASSERT_STR(sts, "spec.updateStrategy.type", "RollingUpdate");
	ASSERT_INT(sts, "spec.updateStrategy.rollingUpdate.partition", 0);
	ASSERT_INT(sts, "spec.revisionHistoryLimit", 10);
	ASSERT_STR(sts, "spec.persistentVolumeClaimRetentionPolicy.whenDeleted", "Retain");
	ASSERT_STR(sts, "spec.persistentVolumeClaimRetentionPolicy.whenScaled", "Retain");
	json_t *vct = json_array_get(api_json_path(sts, "spec.volumeClaimTemplates"), 0);
	ASSERT_STR(vct, "spec.volumeMode", "Filesystem");
	ASSERT_STR(vct, "status.phase", "Pending");
	json_decref(sts);

	sts = defaulted("sts", "{\"spec\":{\"updateStrategy\":{\"type\":\"OnDelete\"}}}");
	ASSERT_ABSENT(sts, "spec.updateStrategy.rollingUpdate");
	json_decref(sts);
}

static void core_others(void **state)
{
	(void)state;
	json_t *ns = defaulted("ns", "{\"metadata\":{\"name\":\"team\"}}");
	/* The key holds dots: look it up directly. */
	assert_string_equal(json_string_value(json_object_get(api_json_path(ns, "metadata.labels"),
							      "kubernetes.io/metadata.name")), "team");
	ASSERT_STR(ns, "status.phase", "Active");
	json_decref(ns);

	json_t *s = defaulted("secret", "{\"metadata\":{\"name\":\"s\"}}");
	ASSERT_STR(s, "type", "Opaque");
	json_decref(s);

	json_t *pv = defaulted("pv", "{\"spec\":{\"capacity\":{\"storage\":\"1Gi\"}}}");
	ASSERT_STR(pv, "status.phase", "Pending");
	ASSERT_STR(pv, "spec.persistentVolumeReclaimPolicy", "Retain");
	ASSERT_STR(pv, "spec.volumeMode", "Filesystem");
	json_decref(pv);

	json_t *pvc = defaulted("pvc", "{\"metadata\":{\"name\":\"c\"}}");
	ASSERT_STR(pvc, "status.phase", "Pending");
	ASSERT_STR(pvc, "spec.volumeMode", "Filesystem");
	json_decref(pvc);

	json_t *node = defaulted("no", "{\"status\":{\"capacity\":{\"cpu\":\"4\"}}}");
	ASSERT_STR(node, "status.allocatable.cpu", "4");
	json_decref(node);

	json_t *ep = defaulted("ep", "{\"subsets\":[{\"ports\":[{\"port\":80}]}]}");
	ASSERT_STR(json_array_get(json_object_get(json_array_get(json_object_get(ep, "subsets"), 0), "ports"), 0),
		   "protocol", "TCP");
	json_decref(ep);
}

static void networking_and_discovery(void **state)
{
	(void)state;
	json_t *np = defaulted("netpol", "{\"spec\":{\"podSelector\":{},\"ingress\":[{\"ports\":[{\"port\":80}]}]}}");
	json_t *types = api_json_path(np, "spec.policyTypes");
	assert_int_equal(json_array_size(types), 1);
	assert_string_equal(json_string_value(json_array_get(types, 0)), "Ingress");
	json_t *port = json_array_get(json_object_get(json_array_get(api_json_path(np, "spec.ingress"), 0), "ports"), 0);
	ASSERT_STR(port, "protocol", "TCP");
	json_decref(np);

	np = defaulted("netpol", "{\"spec\":{\"podSelector\":{},\"egress\":[{}]}}");
	types = api_json_path(np, "spec.policyTypes");
	assert_int_equal(json_array_size(types), 2);
	assert_string_equal(json_string_value(json_array_get(types, 1)), "Egress");
	json_decref(np);

	json_t *eps = defaulted("endpointslices", "{\"addressType\":\"IPv4\",\"ports\":[{\"port\":80}]}");
	ASSERT_STR(json_array_get(json_object_get(eps, "ports"), 0), "protocol", "TCP");
	ASSERT_STR(json_array_get(json_object_get(eps, "ports"), 0), "name", "");
	json_decref(eps);

	/* Kinds without defaults are left alone. */
	json_t *lease = defaulted("leases", "{\"spec\":{}}");
	assert_int_equal(json_object_size(json_object_get(lease, "spec")), 0);
	json_decref(lease);

	assert_int_equal(api_default_type(API_TYPE_core_v1_PodSpec, json_null()), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pull_policy),
		cmocka_unit_test(pod),
		cmocka_unit_test(pod_host_network),
		cmocka_unit_test(service),
		cmocka_unit_test(apps),
		cmocka_unit_test(core_others),
		cmocka_unit_test(networking_and_discovery),
	};
	return cmocka_run_group_tests_name("api_defaults", tests, NULL, NULL);
}
