/* The Node object, its status and its Lease (kubelet's node status manager
 * and lease controller), and the list of masters.
 *
 * Start: POST the Node (409 AlreadyExists: GET it and PUT our labels
 * back), then PUT nodes/<name>/status with the conditions, every
 * status interval. The Lease kube-node-lease/<name> is created or renewed
 * (PUT with its resourceVersion; 409 -> GET and try again) every renew
 * interval. Every write carries a resourceVersion (compare-and-swap).
 * Failures only log and wait for the next tick: the pods keep running
 * whether or not a master answers.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>

#include "runtime/kclient.h"
#include "src/node/agent.h"
#include "src/node/creds.h"

#define MASTERS_INTERVAL_MS 30000

static json_t *labels_of(struct node_agent *a)
{
	const struct node_config *cfg = a->cfg;
	json_t *l = json_pack("{s:s, s:s, s:s}", "kubernetes.io/hostname", a->node_name,
			      "kubernetes.io/os", "linux", "kubernetes.io/arch", node__arch());
	size_t i;

	for (i = 0; l != NULL && i < cfg->node_labels.n; i++) {
		char *copy = strdup(cfg->node_labels.v[i]), *save = NULL, *kv;
		for (kv = copy ? strtok_r(copy, ",", &save) : NULL; kv != NULL;
		     kv = strtok_r(NULL, ",", &save)) {
			char *eq = strchr(kv, '=');
			if (eq == NULL)
				continue;
			*eq = '\0';
			json_object_set_new(l, kv, json_string(eq + 1));
		}
		free(copy);
	}
	return l;
}

static json_t *taints_of(struct node_agent *a)
{
	const struct node_config *cfg = a->cfg;
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr != NULL && i < cfg->register_taints.n; i++) {
		char *copy = strdup(cfg->register_taints.v[i]), *colon, *eq;
		json_t *t;
		if (copy == NULL)
			continue;
		colon = strrchr(copy, ':');
		if (colon == NULL) {
			free(copy);
			continue;
		}
		*colon = '\0';
		eq = strchr(copy, '=');
		if (eq != NULL)
			*eq = '\0';
		t = json_pack("{s:s, s:s}", "key", copy, "effect", colon + 1);
		if (t != NULL && eq != NULL)
			json_object_set_new(t, "value", json_string(eq + 1));
		json_array_append_new(arr, t);
		free(copy);
	}
	return arr;
}

static json_t *resources_of(struct node_agent *a)
{
	char cpu[32], mem[32], pods[32];

	snprintf(cpu, sizeof(cpu), "%u", node__cpus());
	snprintf(mem, sizeof(mem), "%lluKi", (unsigned long long)(node__memory_bytes() / 1024));
	snprintf(pods, sizeof(pods), "%llu", (unsigned long long)a->cfg->max_pods);
	return json_pack("{s:s, s:s, s:s}", "cpu", cpu, "memory", mem, "pods", pods);
}

static uint64_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	unsigned long long kb = 0;

	if (f == NULL)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return (uint64_t)kb * 1024;
}

/* One condition, keeping lastTransitionTime while the status holds. */
static json_t *condition(struct node_agent *a, const char *type, bool on, const char *reason,
			 const char *msg, const char *now)
{
	const char *status = on ? "True" : "False", *since = now;
	size_t i;
	json_t *c;

	json_array_foreach (a->conditions, i, c) {
		if (strcmp(json_string_value(json_object_get(c, "type")), type) == 0 &&
		    strcmp(json_string_value(json_object_get(c, "status")), status) == 0) {
			since = json_string_value(json_object_get(c, "lastTransitionTime"));
			break;
		}
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", type, "status", status,
			 "reason", reason, "message", msg, "lastHeartbeatTime", now,
			 "lastTransitionTime", since);
}

static json_t *conditions_of(struct node_agent *a)
{
	char now[40];
	struct statvfs vfs;
	bool mem_pressure = mem_available() < 100ull * 1024 * 1024;
	bool disk_pressure = statvfs(a->cfg->state_dir, &vfs) == 0 &&
			     vfs.f_blocks > 0 && vfs.f_bavail * 10 < vfs.f_blocks;
	json_t *arr;

	node__now_rfc3339(now, sizeof(now), false);
	arr = json_array();
	json_array_append_new(
		arr, condition(a, "MemoryPressure", mem_pressure,
			       mem_pressure ? "KubeletHasInsufficientMemory"
					    : "KubeletHasSufficientMemory",
			       mem_pressure ? "capstan-node has insufficient memory available"
					    : "capstan-node has sufficient memory available",
			       now));
	json_array_append_new(
		arr, condition(a, "DiskPressure", disk_pressure,
			       disk_pressure ? "KubeletHasDiskPressure" : "KubeletHasNoDiskPressure",
			       disk_pressure ? "capstan-node has disk pressure"
					     : "capstan-node has no disk pressure",
			       now));
	json_array_append_new(arr, condition(a, "PIDPressure", false, "KubeletHasSufficientPID",
					     "capstan-node has sufficient PID available", now));
	json_array_append_new(arr, condition(a, "Ready", true, "KubeletReady",
					     "capstan-node is posting ready status", now));
	json_decref(a->conditions);
	a->conditions = json_incref(arr);
	return arr;
}

static void read_id(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");

	buf[0] = '\0';
	if (f != NULL) {
		if (fgets(buf, (int)len, f) == NULL)
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
}

static json_t *status_of(struct node_agent *a)
{
	struct utsname u;
	char version[64], boot[64], machine[64], uuid[64];
	json_t *st;

	uname(&u);
	read_id("/proc/sys/kernel/random/boot_id", boot, sizeof(boot));
	read_id("/etc/machine-id", machine, sizeof(machine));
	read_id("/sys/class/dmi/id/product_uuid", uuid, sizeof(uuid));
	if (machine[0] == '\0')
		snprintf(machine, sizeof(machine), "%s", boot);
	if (uuid[0] == '\0')
		snprintf(uuid, sizeof(uuid), "%s", machine);
	snprintf(version, sizeof(version), "v1.32.0-capstan.%s", PACKAGE_VERSION);
	st = json_pack(
		"{s:o, s:o, s:[{s:s, s:s}, {s:s, s:s}], s:{s:{s:i}}, s:o, "
		"s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s}}",
		"capacity", resources_of(a), "allocatable", resources_of(a), "addresses", "type",
		"InternalIP", "address", a->node_ip, "type", "Hostname", "address", a->hostname,
		"daemonEndpoints", "kubeletEndpoint", "Port", (int)a->listen_port, "conditions",
		conditions_of(a), "nodeInfo", "architecture", node__arch(), "operatingSystem",
		"linux", "kernelVersion", u.release, "osImage", "Linux", "kubeletVersion", version,
		"kubeProxyVersion", version, "containerRuntimeVersion", "runc://1");
	if (st != NULL) {
		json_t *ni = json_object_get(st, "nodeInfo");
		json_object_set_new(ni, "bootID", json_string(boot));
		json_object_set_new(ni, "machineID", json_string(machine));
		json_object_set_new(ni, "systemUUID", json_string(uuid));
	}
	return st;
}

/* One line for the log: the Status message of an answer, or the error. */
static const char *why(int err, const struct kclient_response *res)
{
	const char *m;

	if (err != 0)
		return strerror(-err);
	m = json_string_value(json_object_get(res->body, "message"));
	return m != NULL ? m : "unexpected answer";
}

/* ------------------------------------------------------------ status */

static void put_status(struct node_agent *a, json_t *node);
static void status_tick(struct node_agent *a);

static void status_put_cb(void *data, int err, const struct kclient_response *res)
{
	struct node_agent *a = data;

	a->status_busy = false;
	if (err == -ECANCELED)
		return;
	if (err == 0 && res->status == 409 && a->node_uid != NULL) {
		/* Written meanwhile (a controller): read it again and retry. */
		status_tick(a);
		return;
	}
	if (err != 0 || res->status != 200) {
		log_warn("node status update failed: %s",
			 why(err, res));
		return;
	}
	if (!a->registered)
		log_info("node %s registered, Ready", a->node_name);
	a->registered = true;
}

static void status_get_cb(void *data, int err, const struct kclient_response *res)
{
	struct node_agent *a = data;

	if (err == -ECANCELED) {
		a->status_busy = false;
		return;
	}
	if (err != 0 || res->status != 200 || res->body == NULL) {
		a->status_busy = false;
		log_warn("cannot read node %s: %s", a->node_name,
			 why(err, res));
		return;
	}
	put_status(a, res->body);
}

static void put_status(struct node_agent *a, json_t *node)
{
	json_t *copy = json_deep_copy(node);
	char path[512];
	int rv;

	if (copy == NULL) {
		a->status_busy = false;
		return;
	}
	free(a->node_uid);
	{
		const char *uid = json_string_value(
			json_object_get(json_object_get(copy, "metadata"), "uid"));
		a->node_uid = strdup(uid != NULL ? uid : "");
	}
	json_object_set_new(copy, "status", status_of(a));
	snprintf(path, sizeof(path), "/api/v1/nodes/%s/status", a->node_name);
	rv = kclient_request(a->kc, "PUT", path, copy, NULL, status_put_cb, a);
	json_decref(copy);
	if (rv != 0)
		a->status_busy = false;
}

static void status_tick(struct node_agent *a);

static void labels_put_cb(void *data, int err, const struct kclient_response *res)
{
	struct node_agent *a = data;

	if (err == -ECANCELED) {
		a->status_busy = false;
		return;
	}
	if (err != 0 || (res->status != 200 && res->status != 201)) {
		a->status_busy = false;
		log_warn("cannot update node %s: %s", a->node_name,
			 why(err, res));
		return;
	}
	put_status(a, res->body);
}

static void existing_get_cb(void *data, int err, const struct kclient_response *res)
{
	struct node_agent *a = data;
	json_t *copy, *meta, *labels, *mine, *v;
	const char *k;
	char path[512];

	if (err == -ECANCELED || err != 0 || res->status != 200 || res->body == NULL) {
		a->status_busy = false;
		return;
	}
	copy = json_deep_copy(res->body);
	meta = json_object_get(copy, "metadata");
	labels = json_object_get(meta, "labels");
	if (labels == NULL) {
		labels = json_object();
		json_object_set_new(meta, "labels", labels);
	}
	mine = labels_of(a);
	json_object_foreach (mine, k, v)
		json_object_set(labels, k, v);
	json_decref(mine);
	snprintf(path, sizeof(path), "/api/v1/nodes/%s", a->node_name);
	if (kclient_request(a->kc, "PUT", path, copy, NULL, labels_put_cb, a) != 0)
		a->status_busy = false;
	json_decref(copy);
}

static void create_cb(void *data, int err, const struct kclient_response *res)
{
	struct node_agent *a = data;
	char path[512];

	if (err == -ECANCELED) {
		a->status_busy = false;
		return;
	}
	if (err == 0 && (res->status == 200 || res->status == 201) && res->body != NULL) {
		put_status(a, res->body);
		return;
	}
	if (err == 0 && res->status == 409) {
		snprintf(path, sizeof(path), "/api/v1/nodes/%s", a->node_name);
		if (kclient_request(a->kc, "GET", path, NULL, NULL, existing_get_cb, a) != 0)
			a->status_busy = false;
		return;
	}
	a->status_busy = false;
	log_warn("cannot register node %s: %s", a->node_name,
		 why(err, res));
}

static void status_tick(struct node_agent *a)
{
	char path[512];
	json_t *node;
	int rv;

	if (a->status_busy || a->closing)
		return;
	a->status_busy = true;
	if (!a->registered && a->node_uid == NULL) {
		node = json_pack("{s:s, s:s, s:{s:s, s:o}, s:{s:o}, s:o}", "apiVersion", "v1", "kind",
				 "Node", "metadata", "name", a->node_name, "labels", labels_of(a),
				 "spec", "taints", taints_of(a), "status", status_of(a));
		if (node != NULL && a->cfg->pod_cidr != NULL)
			json_object_set_new(json_object_get(node, "spec"), "podCIDR",
					    json_string(a->cfg->pod_cidr));
		rv = node != NULL ? kclient_request(a->kc, "POST", "/api/v1/nodes", node, NULL,
						    create_cb, a)
				  : -ENOMEM;
		json_decref(node);
	} else {
		snprintf(path, sizeof(path), "/api/v1/nodes/%s", a->node_name);
		rv = kclient_request(a->kc, "GET", path, NULL, NULL, status_get_cb, a);
	}
	if (rv != 0)
		a->status_busy = false;
}

static void status_timer_cb(uv_timer_t *t)
{
	status_tick(t->data);
}

/* ------------------------------------------------------------ lease */

static void lease_renew(struct node_agent *a);

static void lease_write_cb(void *data, int err, const struct kclient_response *res)
{
	struct node_agent *a = data;

	a->lease_busy = false;
	if (err == -ECANCELED)
		return;
	if (err == 0 && (res->status == 200 || res->status == 201) && res->body != NULL) {
		json_decref(a->lease);
		a->lease = json_deep_copy(res->body);
		return;
	}
	/* 409: someone else wrote it (or it exists already): read it again. */
	json_decref(a->lease);
	a->lease = NULL;
	if (err == 0 && res->status == 409) {
		lease_renew(a);
		return;
	}
	log_warn("lease renewal failed: %s",
		 why(err, res));
}

static void lease_get_cb(void *data, int err, const struct kclient_response *res)
{
	struct node_agent *a = data;

	a->lease_busy = false;
	if (err == -ECANCELED)
		return;
	if (err == 0 && res->status == 200 && res->body != NULL) {
		a->lease = json_deep_copy(res->body);
		lease_renew(a);
	} else if (err == 0 && res->status == 404) {
		a->lease = json_null(); /* create */
		lease_renew(a);
	} else {
		log_warn("cannot read the lease: %s",
			 why(err, res));
	}
}

static void lease_renew(struct node_agent *a)
{
	char path[512], now[48];
	json_t *l, *spec;
	int rv;

	if (a->lease_busy || a->closing)
		return;
	a->lease_busy = true;
	if (a->lease == NULL) {
		snprintf(path, sizeof(path),
			 "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/%s",
			 a->node_name);
		if (kclient_request(a->kc, "GET", path, NULL, NULL, lease_get_cb, a) != 0)
			a->lease_busy = false;
		return;
	}
	node__now_rfc3339(now, sizeof(now), true);
	if (json_is_null(a->lease)) {
		l = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{}}", "apiVersion", "coordination.k8s.io/v1",
			      "kind", "Lease", "metadata", "name", a->node_name, "namespace",
			      "kube-node-lease", "spec");
		if (l != NULL && a->node_uid != NULL && a->node_uid[0] != '\0')
			json_object_set_new(json_object_get(l, "metadata"), "ownerReferences",
					    json_pack("[{s:s, s:s, s:s, s:s}]", "apiVersion", "v1",
						      "kind", "Node", "name", a->node_name, "uid",
						      a->node_uid));
	} else {
		l = json_deep_copy(a->lease);
	}
	spec = json_object_get(l, "spec");
	if (spec == NULL) {
		spec = json_object();
		json_object_set_new(l, "spec", spec);
	}
	json_object_set_new(spec, "holderIdentity", json_string(a->node_name));
	json_object_set_new(spec, "leaseDurationSeconds",
			    json_integer((json_int_t)(a->cfg->lease_duration_ms / 1000)));
	json_object_set_new(spec, "renewTime", json_string(now));
	if (json_is_null(a->lease)) {
		rv = kclient_request(a->kc, "POST",
				     "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
				     l, NULL, lease_write_cb, a);
	} else {
		snprintf(path, sizeof(path),
			 "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/%s",
			 a->node_name);
		rv = kclient_request(a->kc, "PUT", path, l, NULL, lease_write_cb, a);
	}
	json_decref(l);
	if (rv != 0)
		a->lease_busy = false;
}

static void lease_timer_cb(uv_timer_t *t)
{
	lease_renew(t->data);
}

/* ------------------------------------------------------------ masters */

static void masters_cb(void *data, int err, const struct kclient_response *res)
{
	struct node_agent *a = data;
	char **urls = NULL;
	json_t *v;
	size_t i;
	bool changed;

	a->masters_busy = false;
	if (err != 0 || res->status != 200 || res->body == NULL)
		return;
	for (i = 0; i < a->cfg->server.n; i++)
		node_strv_add(&urls, a->cfg->server.v[i]);
	json_array_foreach (json_object_get(res->body, "urls"), i, v)
		if (json_is_string(v))
			node_strv_add(&urls, json_string_value(v));
	if (urls == NULL)
		return;
	changed = node_strv_len(urls) != node_strv_len(a->masters);
	for (i = 0; !changed && urls[i] != NULL; i++)
		changed = strcmp(urls[i], a->masters[i]) != 0;
	if (!changed) {
		if (!a->masters_saved &&
		    node_masters_save(a->cfg->state_dir, (const char *const *)urls) == 0)
			a->masters_saved = true;
		node_strv_free(urls);
		return;
	}
	if (kclient_set_urls(a->kc, (const char *const *)urls) != 0) {
		node_strv_free(urls);
		return;
	}
	a->masters_saved = node_masters_save(a->cfg->state_dir, (const char *const *)urls) == 0;
	log_info("masters: %zu API URLs known", node_strv_len(urls));
	node_strv_free(a->masters);
	a->masters = urls;
}

static void masters_timer_cb(uv_timer_t *t)
{
	struct node_agent *a = t->data;

	if (a->masters_busy || a->closing)
		return;
	a->masters_busy = true;
	if (kclient_request(a->kc, "GET", "/capstan/v1/nodes/apiservers", NULL, NULL, masters_cb,
			    a) != 0)
		a->masters_busy = false;
}

/* ------------------------------------------------------------ start/stop */

int node__status_start(struct node_agent *a)
{
	uv_timer_init(a->loop, &a->status_timer);
	uv_timer_init(a->loop, &a->lease_timer);
	uv_timer_init(a->loop, &a->masters_timer);
	a->status_timer.data = a;
	a->lease_timer.data = a;
	a->masters_timer.data = a;
	uv_timer_start(&a->status_timer, status_timer_cb, 0, a->cfg->status_interval_ms);
	uv_timer_start(&a->lease_timer, lease_timer_cb, 200, a->cfg->lease_renew_ms);
	uv_timer_start(&a->masters_timer, masters_timer_cb, 0, MASTERS_INTERVAL_MS);
	return 0;
}

void node__status_stop(struct node_agent *a)
{
	uv_close((uv_handle_t *)&a->status_timer, NULL);
	uv_close((uv_handle_t *)&a->lease_timer, NULL);
	uv_close((uv_handle_t *)&a->masters_timer, NULL);
	json_decref(a->lease);
	a->lease = NULL;
	json_decref(a->conditions);
	a->conditions = NULL;
	free(a->node_uid);
	a->node_uid = NULL;
}
