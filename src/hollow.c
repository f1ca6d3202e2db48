/* capstan-hollow: N fake Nodes for tests and benchmarks (kubemark's idea).
 *
 * Through one kclient (runtime/kclient.h) it registers the Nodes (create,
 * then a status patch: capacity, Ready, addresses), renews one Lease per
 * node in kube-node-lease, and runs one watch on every pod of the cluster.
 * A pod bound to one of its nodes is reported Running and Ready at once
 * (a PUT of pods/NAME/status carrying the status it saw with the kubelet's
 * fields set, and the resourceVersion it saw as a precondition, so a stale
 * report is refused and redone from the next event); a pod being deleted gracefully is finished with a DELETE of
 * gracePeriodSeconds=0 and the pod's uid as precondition. Nothing is
 * batched: every write is its own request, thousands in flight on the
 * HTTP/2 connections.
 *
 * Stopping heartbeats (for node-lifecycle tests): SIGUSR1 stops every
 * node's, SIGUSR2 resumes them; with --control-dir DIR, a file
 * DIR/stop-NODE (or DIR/stop-all) stops that node's while it exists. A
 * stopped node acts as a dead kubelet: no Lease renewals, no status, its
 * pods are left as they are; on resume it posts Ready again and catches up.
 *
 * Labels on demand (for the scheduler benchmark): a file DIR/labels of
 * KEY=VALUE lines puts those labels on every node (one merge patch per
 * node, all in flight at once); the control dir is read every second, and
 * at once on SIGHUP.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/tree.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

#include "runtime/kclient.h"
#include "src/cli/kubeconfig.h"
#include "src/lib/args.h"
#include "src/lib/log.h"
#include "src/lib/version.h"

#define MAX_URLS 16
#define MAX_LABELS 16
#define TICK_MS 1000
#define RETRY_MS 1000
#define LEASE_NS "kube-node-lease"

enum {
	OPT_SERVER = 256,
	OPT_KUBECONFIG,
	OPT_TOKEN,
	OPT_CA,
	OPT_CERT,
	OPT_KEY,
	OPT_NODES,
	OPT_PREFIX,
	OPT_FIRST,
	OPT_CPU,
	OPT_MEMORY,
	OPT_PODS,
	OPT_LEASE_INTERVAL,
	OPT_LEASE_DURATION,
	OPT_STATUS_INTERVAL,
	OPT_CONTROL_DIR,
	OPT_MAX_REQUESTS,
	OPT_LABEL,
	OPT_LOG_LEVEL,
};

struct hnode {
	struct hollow *h;
	unsigned idx; /* global index: first-index + i */
	char name[64];
	bool registered, registering;
	bool lease_inflight, status_inflight, label_inflight;
	unsigned label_gen; /* h->label_gen this node's labels are at */
	bool stopped;    /* by the control dir */
	bool was_stopped; /* heartbeats were off at the last tick */
	uint64_t next_renew, next_status;
	uint8_t ip_used[32]; /* 256 pod addresses 10.A.B.x */
};

struct hpod {
	RB_ENTRY(hpod) link;
	struct hollow *h;
	char *key;  /* "ns/name" */
	char *ns;   /* into key's copy */
	char *name;
	char uid[64];
	char rv[32];      /* of the latest event */
	char sent_rv[32]; /* the status write's precondition */
	struct hnode *node;
	json_t *status;     /* of the latest event (own reference), or NULL */
	json_t *containers; /* [{name,image}] of spec.containers */
	json_t *init_containers;
	int ip_slot; /* -1: none */
	bool running;     /* the latest event shows our report */
	bool terminating; /* deletionTimestamp set */
	bool inflight;
	bool gone;        /* deleted while a request was in flight */
	bool delete_done;
	bool conflict; /* the last status write lost a race with sent_rv */
	bool retry;    /* in the retry list */
	uint64_t retry_at;
	LIST_ENTRY(hpod) retry_link;
};

RB_HEAD(pod_tree, hpod);

static int pod_cmp(const struct hpod *a, const struct hpod *b)
{
	return strcmp(a->key, b->key);
}

RB_GENERATE_INTERNAL(pod_tree, hpod, link, pod_cmp, static __attribute__((unused)))

struct hollow {
	uv_loop_t *loop;
	struct kclient *client;
	struct kclient_watch *watch;
	uv_timer_t tick;
	uv_signal_t sigterm, sigint, sigusr1, sigusr2, sighup;
	struct hnode *nodes;
	unsigned n_nodes;
	unsigned first;
	char prefix[48];
	const char *cpu, *memory, *pods;
	const char *labels[MAX_LABELS];
	unsigned n_labels;
	uint64_t lease_interval_ms, lease_duration_s, status_interval_ms;
	const char *control_dir;
	json_t *file_labels; /* DIR/labels as an object, NULL when none */
	unsigned label_gen;  /* bumped when DIR/labels changes */
	unsigned n_labelled; /* nodes at label_gen */
	bool all_stopped; /* SIGUSR1 */
	bool stopping;
	unsigned n_registered;
	struct pod_tree pods_tree;
	LIST_HEAD(, hpod) retries;
	/* counters */
	uint64_t n_status, n_deletes, n_leases, n_errors, n_conflicts;
};

/* ------------------------------------------------------------ time */

static void rfc3339(char *buf, size_t len, bool micro)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	if (micro)
		snprintf(buf + n, len - n, ".%06uZ", (unsigned)(ts.tv_nsec / 1000) % 1000000u);
	else
		snprintf(buf + n, len - n, "Z");
}

/* Counts a failed request; logs the first ones and then one in 1000
 * (a leader change fails thousands at once). */
static void count_error(struct hollow *h, const char *who, const char *what, int err,
			const struct kclient_response *res)
{
	h->n_errors++;
	if (h->n_errors <= 20 || h->n_errors % 1000 == 0)
		log_warn("%s: %s failed: %.200s (%" PRIu64 " errors so far)", who, what,
			 err != 0 ? strerror(-err) : res->raw, h->n_errors);
}

/* ------------------------------------------------------------ nodes */

static struct hnode *node_by_name(struct hollow *h, const char *name)
{
	size_t pl = strlen(h->prefix);
	char *end;
	unsigned long idx;

	if (name == NULL || strncmp(name, h->prefix, pl) != 0 || name[pl] != '-')
		return NULL;
	name += pl + 1;
	if (*name < '0' || *name > '9')
		return NULL;
	idx = strtoul(name, &end, 10);
	if (*end != '\0' || idx < h->first || idx - h->first >= h->n_nodes)
		return NULL;
	return &h->nodes[idx - h->first];
}

static bool heartbeats_on(const struct hnode *n)
{
	return !n->h->all_stopped && !n->stopped;
}

static json_t *node_conditions(bool ready)
{
	char now[40];
	json_t *c = json_array();

	rfc3339(now, sizeof now, false);
	json_array_append_new(c, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type", "MemoryPressure",
					   "status", "False", "reason",
					   "KubeletHasSufficientMemory", "message",
					   "hollow node has sufficient memory", "lastHeartbeatTime", now,
					   "lastTransitionTime", now));
	json_array_append_new(c, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type", "DiskPressure",
					   "status", "False", "reason", "KubeletHasNoDiskPressure",
					   "message", "hollow node has no disk pressure",
					   "lastHeartbeatTime", now, "lastTransitionTime", now));
	json_array_append_new(c, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type", "PIDPressure",
					   "status", "False", "reason", "KubeletHasSufficientPID",
					   "message", "hollow node has sufficient PID available",
					   "lastHeartbeatTime", now, "lastTransitionTime", now));
	json_array_append_new(c, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type", "Ready", "status",
					   ready ? "True" : "False", "reason", "KubeletReady",
					   "message", "hollow node is posting ready status",
					   "lastHeartbeatTime", now, "lastTransitionTime", now));
	return c;
}

static json_t *node_status(struct hollow *h, struct hnode *n)
{
	json_t *res = json_pack("{s:s,s:s,s:s,s:s}", "cpu", h->cpu, "memory", h->memory, "pods",
				h->pods, "ephemeral-storage", "100Gi");

	return json_pack(
		"{s:{s:O,s:o,s:o,s:[{s:s,s:s},{s:s,s:s}],s:{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s},"
		"s:{s:{s:i}}}}",
		"status", "capacity", res, "allocatable", res, "conditions", node_conditions(true),
		"addresses", "type", "InternalIP", "address", "127.0.0.1", "type", "Hostname",
		"address", n->name, "nodeInfo", "machineID", n->name, "systemUUID", n->name,
		"bootID", n->name, "kernelVersion", "hollow", "osImage", "capstan hollow node",
		"containerRuntimeVersion", "hollow://0.1.0", "kubeletVersion", "v1.32.0-hollow",
		"kubeProxyVersion", "v1.32.0-hollow", "operatingSystem", "linux", "architecture",
		"amd64", "daemonEndpoints", "kubeletEndpoint", "Port", 10250);
}

static void node_status_patch(struct hnode *n);

static void status_done_cb(void *data, int err, const struct kclient_response *res)
{
	struct hnode *n = data;
	struct hollow *h = n->h;

	n->status_inflight = false;
	if (err == -ECANCELED)
		return;
	if (err != 0 || res->status >= 300) {
		count_error(h, n->name, "status update", err, res);
		n->registering = false; /* an unregistered node starts over */
		n->next_status = uv_now(h->loop) + RETRY_MS;
		return;
	}
	if (!n->registered) {
		n->registered = true;
		n->registering = false;
		h->n_registered++;
		if (h->n_registered == h->n_nodes)
			log_info("all %u nodes registered and Ready", h->n_nodes);
	}
}

static void node_status_patch(struct hnode *n)
{
	struct hollow *h = n->h;
	char path[160];
	json_t *body;
	int rv;

	if (n->status_inflight)
		return;
	body = node_status(h, n);
	snprintf(path, sizeof path, "/api/v1/nodes/%s/status", n->name);
	rv = kclient_request(h->client, "PATCH", path, body, "application/merge-patch+json",
			     status_done_cb, n);
	json_decref(body);
	if (rv == 0) {
		n->status_inflight = true;
		n->next_status = uv_now(h->loop) + h->status_interval_ms;
	} else {
		n->next_status = uv_now(h->loop) + RETRY_MS;
	}
}

static void create_done_cb(void *data, int err, const struct kclient_response *res)
{
	struct hnode *n = data;
	struct hollow *h = n->h;

	if (err == -ECANCELED)
		return;
	if (err != 0 || (res->status >= 300 && res->status != 409)) {
		count_error(h, n->name, "registration", err, res);
		n->registering = false; /* the tick tries again */
		n->next_status = uv_now(h->loop) + RETRY_MS;
		return;
	}
	/* Created, or there from an earlier run: the status makes it Ready. */
	n->status_inflight = false;
	node_status_patch(n);
}

static void node_register(struct hnode *n)
{
	struct hollow *h = n->h;
	json_t *labels, *body;
	int rv;

	labels = json_pack("{s:s,s:s,s:s,s:s}", "kubernetes.io/hostname", n->name,
			   "kubernetes.io/os", "linux", "kubernetes.io/arch", "amd64",
			   "capstan.io/hollow", "true");
	for (unsigned i = 0; i < h->n_labels; i++) {
		const char *eq = strchr(h->labels[i], '=');
		char key[256];
		snprintf(key, sizeof key, "%.*s", (int)(eq - h->labels[i]), h->labels[i]);
		json_object_set_new(labels, key, json_string(eq + 1));
	}
	if (h->file_labels != NULL)
		json_object_update(labels, h->file_labels);
	body = json_pack("{s:s,s:s,s:{s:s,s:o},s:{}}", "apiVersion", "v1", "kind", "Node",
			 "metadata", "name", n->name, "labels", labels, "spec");
	rv = kclient_request(h->client, "POST", "/api/v1/nodes", body, NULL, create_done_cb, n);
	json_decref(body);
	if (rv == 0)
		n->registering = true;
}

/* The labels of DIR/labels on a node: a merge patch of metadata.labels. */
static void label_done_cb(void *data, int err, const struct kclient_response *res)
{
	struct hnode *n = data;
	struct hollow *h = n->h;

	n->label_inflight = false;
	if (err == -ECANCELED)
		return;
	if (err != 0 || res->status >= 300) {
		count_error(h, n->name, "label update", err, res);
		n->label_gen = 0; /* the next tick tries again */
		return;
	}
	/* Done for the generation sent, unless it moved on meanwhile. */
	if (n->label_gen != h->label_gen)
		return;
	if (++h->n_labelled == h->n_nodes)
		log_info("all %u nodes labelled", h->n_nodes);
}

static void node_label_patch(struct hnode *n)
{
	struct hollow *h = n->h;
	char path[160];
	json_t *body;

	if (n->label_inflight || n->label_gen == h->label_gen || h->file_labels == NULL)
		return;
	body = json_pack("{s:{s:O}}", "metadata", "labels", h->file_labels);
	snprintf(path, sizeof path, "/api/v1/nodes/%s", n->name);
	if (kclient_request(h->client, "PATCH", path, body, "application/merge-patch+json",
			    label_done_cb, n) == 0) {
		n->label_inflight = true;
		n->label_gen = h->label_gen;
	}
	json_decref(body);
}

/* Reads DIR/labels (KEY=VALUE lines); a change starts a new generation. */
static void read_labels_file(struct hollow *h)
{
	char path[4096], line[512];
	json_t *labels;
	FILE *f;

	snprintf(path, sizeof path, "%s/labels", h->control_dir);
	f = fopen(path, "re");
	if (f == NULL)
		return;
	labels = json_object();
	while (fgets(line, sizeof line, f) != NULL) {
		char *eq = strchr(line, '=');
		line[strcspn(line, "\r\n")] = '\0';
		if (eq == NULL || eq == line)
			continue;
		*eq = '\0';
		json_object_set_new(labels, line, json_string(eq + 1));
	}
	fclose(f);
	if (h->file_labels != NULL && json_equal(h->file_labels, labels)) {
		json_decref(labels);
		return;
	}
	json_decref(h->file_labels);
	h->file_labels = labels;
	h->label_gen++;
	h->n_labelled = 0;
	log_info("labelling every node: %s", path);
}

/* ------------------------------------------------------------ leases */

static void lease_create(struct hnode *n);

static json_t *lease_spec(struct hollow *h, struct hnode *n)
{
	char now[40];

	rfc3339(now, sizeof now, true);
	return json_pack("{s:s,s:I,s:s}", "holderIdentity", n->name, "leaseDurationSeconds",
			 (json_int_t)h->lease_duration_s, "renewTime", now);
}

static void lease_done_cb(void *data, int err, const struct kclient_response *res)
{
	struct hnode *n = data;
	struct hollow *h = n->h;

	n->lease_inflight = false;
	if (err == -ECANCELED)
		return;
	if (err == 0 && res->status == 404) {
		lease_create(n);
		return;
	}
	if (err != 0 || res->status >= 300) {
		/* 409 on create: someone made it; renew at the next tick. */
		if (err != 0 || res->status != 409)
			count_error(h, n->name, "lease renewal", err, res);
		n->next_renew = uv_now(h->loop) + RETRY_MS;
		return;
	}
	h->n_leases++;
}

static void lease_create(struct hnode *n)
{
	struct hollow *h = n->h;
	char path[128];
	json_t *body;

	body = json_pack("{s:s,s:s,s:{s:s,s:s},s:o}", "apiVersion", "coordination.k8s.io/v1",
			 "kind", "Lease", "metadata", "name", n->name, "namespace", LEASE_NS,
			 "spec", lease_spec(h, n));
	snprintf(path, sizeof path, "/apis/coordination.k8s.io/v1/namespaces/%s/leases", LEASE_NS);
	if (kclient_request(h->client, "POST", path, body, NULL, lease_done_cb, n) == 0)
		n->lease_inflight = true;
	json_decref(body);
}

static void lease_renew(struct hnode *n)
{
	struct hollow *h = n->h;
	char path[160];
	json_t *body;

	body = json_pack("{s:o}", "spec", lease_spec(h, n));
	snprintf(path, sizeof path, "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s",
		 LEASE_NS, n->name);
	if (kclient_request(h->client, "PATCH", path, body, "application/merge-patch+json",
			    lease_done_cb, n) == 0)
		n->lease_inflight = true;
	json_decref(body);
	n->next_renew = uv_now(h->loop) + h->lease_interval_ms;
}

/* ------------------------------------------------------------ pods */

static void pod_eval(struct hpod *p);

static void pod_free(struct hpod *p)
{
	if (p->ip_slot >= 0 && p->node != NULL)
		p->node->ip_used[p->ip_slot / 8] &= (uint8_t)~(1u << (p->ip_slot % 8));
	if (p->retry)
		LIST_REMOVE(p, retry_link);
	json_decref(p->status);
	json_decref(p->containers);
	json_decref(p->init_containers);
	free(p->key);
	free(p->ns);
	free(p);
}

static void pod_retry_later(struct hpod *p)
{
	if (p->retry)
		return;
	p->retry = true;
	p->retry_at = uv_now(p->h->loop) + RETRY_MS;
	LIST_INSERT_HEAD(&p->h->retries, p, retry_link);
}

static int pod_alloc_ip(struct hnode *n)
{
	for (int i = 2; i < 255; i++) {
		if (!(n->ip_used[i / 8] & (1u << (i % 8)))) {
			n->ip_used[i / 8] |= (uint8_t)(1u << (i % 8));
			return i;
		}
	}
	return -1;
}

static json_t *container_statuses(json_t *containers, bool init, const char *now,
				  const char *uid)
{
	json_t *out = json_array(), *c;
	size_t i;

	json_array_foreach(containers, i, c) {
		const char *name = json_string_value(json_object_get(c, "name"));
		const char *image = json_string_value(json_object_get(c, "image"));
		char id[160];
		json_t *state;

		snprintf(id, sizeof id, "hollow://%s-%s", uid, name != NULL ? name : "");
		if (init)
			state = json_pack("{s:{s:i,s:s,s:s,s:s}}", "terminated", "exitCode", 0,
					  "reason", "Completed", "startedAt", now, "finishedAt", now);
		else
			state = json_pack("{s:{s:s}}", "running", "startedAt", now);
		json_array_append_new(out, json_pack("{s:s,s:s,s:s,s:s,s:b,s:b,s:i,s:o}", "name",
						     name != NULL ? name : "", "image",
						     image != NULL ? image : "", "imageID",
						     image != NULL ? image : "", "containerID", id,
						     "ready", !init, "started", !init,
						     "restartCount", 0, "state", state));
	}
	return out;
}

static void pod_status_done_cb(void *data, int err, const struct kclient_response *res)
{
	struct hpod *p = data;
	struct hollow *h = p->h;

	p->inflight = false;
	if (p->gone) {
		pod_free(p);
		return;
	}
	if (err == -ECANCELED)
		return;
	if (err == 0 && res->status < 300) {
		h->n_status++;
		p->conflict = false;
		p->running = true; /* until an event says otherwise */
		return;
	}
	if (err == 0 && res->status == 409) {
		/* Changed since: the next event (maybe here already) says how. */
		h->n_conflicts++;
		p->conflict = true;
		pod_eval(p);
		return;
	}
	if (err == 0 && res->status == 404)
		return;
	count_error(h, p->key, "pod status update", err, res);
	pod_retry_later(p);
}

static void pod_delete_done_cb(void *data, int err, const struct kclient_response *res)
{
	struct hpod *p = data;
	struct hollow *h = p->h;

	p->inflight = false;
	if (p->gone) {
		pod_free(p);
		return;
	}
	if (err == -ECANCELED)
		return;
	if (err == 0 && (res->status < 300 || res->status == 404 || res->status == 409)) {
		/* Deleted, gone already, or a new pod of that name. */
		h->n_deletes++;
		p->delete_done = true;
		return;
	}
	count_error(h, p->key, "pod deletion", err, res);
	pod_retry_later(p);
}

/* The conditions of the report: the kubelet's five, then those of other
 * types the pod has (readiness gates and the like), kept as they are. */
static json_t *report_conditions(const json_t *old, const char *now)
{
	static const char *const ours[] = {"PodReadyToStartContainers", "Initialized", "Ready",
					   "ContainersReady", "PodScheduled"};
	json_t *out = json_array(), *c;
	size_t i, j;

	for (i = 0; i < sizeof(ours) / sizeof(*ours); i++)
		json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "type", ours[i], "status",
						     "True", "lastTransitionTime", now));
	json_array_foreach(json_object_get(old, "conditions"), i, c) {
		const char *type = json_string_value(json_object_get(c, "type"));
		bool mine = false;

		for (j = 0; type != NULL && j < sizeof(ours) / sizeof(*ours); j++)
			mine = mine || strcmp(type, ours[j]) == 0;
		if (!mine)
			json_array_append(out, c);
	}
	return out;
}

static void pod_report(struct hpod *p)
{
	struct hollow *h = p->h;
	char now[40], ip[32], path[600];
	json_t *body, *status;
	int rv;

	if (p->ip_slot < 0)
		p->ip_slot = pod_alloc_ip(p->node);
	snprintf(ip, sizeof ip, "10.%u.%u.%d", (p->node->idx >> 8) & 255u, p->node->idx & 255u,
		 p->ip_slot >= 0 ? p->ip_slot : 255);
	rfc3339(now, sizeof now, false);
	/* A PUT of the status subresource replaces the status: start from
	 * the one seen (what others wrote, such as qosClass, stays) and set
	 * what a kubelet owns. Cheaper for the master than a merge patch: it
	 * neither merges nor decodes the stored pod twice. */
	status = json_is_object(p->status) ? json_copy(p->status) : json_object();
	if (status == NULL) {
		pod_retry_later(p);
		return;
	}
	json_object_set_new(status, "conditions", report_conditions(p->status, now));
	json_object_set_new(status, "phase", json_string("Running"));
	json_object_set_new(status, "hostIP", json_string("127.0.0.1"));
	json_object_set_new(status, "hostIPs", json_pack("[{s:s}]", "ip", "127.0.0.1"));
	json_object_set_new(status, "podIP", json_string(ip));
	json_object_set_new(status, "podIPs", json_pack("[{s:s}]", "ip", ip));
	json_object_set_new(status, "startTime", json_string(now));
	json_object_set_new(status, "containerStatuses",
			    container_statuses(p->containers, false, now, p->uid));
	json_object_set_new(status, "initContainerStatuses",
			    container_statuses(p->init_containers, true, now, p->uid));
	/* The resourceVersion is a precondition: a report based on an old
	 * state of the pod is refused (409) and redone from the newer one. */
	body = json_pack("{s:s,s:s,s:{s:s,s:s,s:s},s:o}", "apiVersion", "v1", "kind", "Pod",
			 "metadata", "name", p->name, "namespace", p->ns, "resourceVersion", p->rv,
			 "status", status);
	snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s/status", p->ns, p->name);
	rv = body != NULL ? kclient_request(h->client, "PUT", path, body, NULL, pod_status_done_cb, p)
			  : -ENOMEM;
	json_decref(body);
	if (rv != 0) {
		pod_retry_later(p);
		return;
	}
	p->inflight = true;
	snprintf(p->sent_rv, sizeof p->sent_rv, "%s", p->rv);
}

static void pod_delete(struct hpod *p)
{
	struct hollow *h = p->h;
	char path[600];
	json_t *body;
	int rv;

	body = json_pack("{s:s,s:s,s:i,s:{s:s}}", "apiVersion", "v1", "kind", "DeleteOptions",
			 "gracePeriodSeconds", 0, "preconditions", "uid", p->uid);
	snprintf(path, sizeof path, "/api/v1/namespaces/%s/pods/%s?gracePeriodSeconds=0", p->ns,
		 p->name);
	rv = kclient_request(h->client, "DELETE", path, body, NULL, pod_delete_done_cb, p);
	json_decref(body);
	if (rv != 0) {
		pod_retry_later(p);
		return;
	}
	p->inflight = true;
}

/* Does what the latest event of @p calls for, unless a request is out. */
static void pod_eval(struct hpod *p)
{
	if (p->inflight || p->gone || p->node == NULL || !heartbeats_on(p->node))
		return;
	if (p->terminating) {
		if (!p->delete_done)
			pod_delete(p);
		return;
	}
	if (p->running)
		return;
	if (p->conflict && strcmp(p->rv, p->sent_rv) == 0)
		return; /* wait for the event that beat us */
	pod_report(p);
}

static bool pod_shows_running(json_t *obj)
{
	json_t *st = json_object_get(obj, "status"), *c;
	const char *phase = json_string_value(json_object_get(st, "phase"));
	size_t i;

	if (phase == NULL || strcmp(phase, "Running") != 0 ||
	    json_string_value(json_object_get(st, "podIP")) == NULL)
		return false;
	json_array_foreach(json_object_get(st, "conditions"), i, c) {
		const char *type = json_string_value(json_object_get(c, "type"));
		const char *s = json_string_value(json_object_get(c, "status"));
		if (type != NULL && strcmp(type, "Ready") == 0)
			return s != NULL && strcmp(s, "True") == 0;
	}
	return false;
}

static json_t *containers_of(json_t *spec, const char *field)
{
	json_t *out = json_array(), *c;
	size_t i;

	json_array_foreach(json_object_get(spec, field), i, c) {
		json_array_append_new(out, json_pack("{s:O?,s:O?}", "name",
						     json_object_get(c, "name"), "image",
						     json_object_get(c, "image")));
	}
	return out;
}

static void pod_event(struct hollow *h, const char *type, json_t *obj)
{
	json_t *meta = json_object_get(obj, "metadata"), *spec = json_object_get(obj, "spec");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *name = json_string_value(json_object_get(meta, "name"));
	const char *uid = json_string_value(json_object_get(meta, "uid"));
	const char *rv = json_string_value(json_object_get(meta, "resourceVersion"));
	struct hnode *n = node_by_name(h, json_string_value(json_object_get(spec, "nodeName")));
	struct hpod key, *p;
	char buf[512];

	if (ns == NULL || name == NULL || uid == NULL)
		return;
	snprintf(buf, sizeof buf, "%s/%s", ns, name);
	key.key = buf;
	p = RB_FIND(pod_tree, &h->pods_tree, &key);
	if (strcmp(type, "DELETED") == 0) {
		if (p == NULL || strcmp(p->uid, uid) != 0)
			return;
		RB_REMOVE(pod_tree, &h->pods_tree, p);
		if (p->inflight)
			p->gone = true;
		else
			pod_free(p);
		return;
	}
	if (n == NULL)
		return; /* not bound, or bound to someone else */
	if (p != NULL && strcmp(p->uid, uid) != 0) {
		/* A new pod of the same name: forget the old one. */
		RB_REMOVE(pod_tree, &h->pods_tree, p);
		if (p->inflight)
			p->gone = true;
		else
			pod_free(p);
		p = NULL;
	}
	if (p == NULL) {
		char *slash;

		p = calloc(1, sizeof(*p));
		if (p == NULL || (p->key = strdup(buf)) == NULL ||
		    (p->ns = strdup(buf)) == NULL) {
			if (p != NULL)
				free(p->key);
			free(p);
			log_error("out of memory");
			return;
		}
		/* ns and name point into one more copy of the key. */
		slash = strchr(p->ns, '/');
		*slash = '\0';
		p->name = slash + 1;
		p->h = h;
		p->node = n;
		p->ip_slot = -1;
		snprintf(p->uid, sizeof p->uid, "%s", uid);
		p->containers = containers_of(spec, "containers");
		p->init_containers = containers_of(spec, "initContainers");
		RB_INSERT(pod_tree, &h->pods_tree, p);
	}
	snprintf(p->rv, sizeof p->rv, "%s", rv != NULL ? rv : "");
	json_decref(p->status);
	p->status = json_incref(json_object_get(obj, "status"));
	p->running = pod_shows_running(obj);
	p->terminating = json_object_get(meta, "deletionTimestamp") != NULL &&
			 !json_is_null(json_object_get(meta, "deletionTimestamp"));
	pod_eval(p);
}

static void watch_event_cb(void *data, const char *type, json_t *obj)
{
	struct hollow *h = data;

	if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0 ||
	    strcmp(type, "DELETED") == 0) {
		pod_event(h, type, obj);
	} else if (strcmp(type, "ERROR") == 0) {
		char *s = json_dumps(obj, JSON_COMPACT);
		log_warn("pod watch: %s", s != NULL ? s : "error");
		free(s);
	}
}

static void watch_relist_cb(void *data)
{
	struct hollow *h = data;

	/* Without a resourceVersion the server sends every pod as ADDED. */
	log_info("pod watch expired: starting over from the current pods");
	kclient_watch_resume(h->watch, NULL);
}

/* The pods a resumed node left alone while stopped. */
static void node_catch_up(struct hollow *h, struct hnode *n)
{
	struct hpod *p;

	RB_FOREACH(p, pod_tree, &h->pods_tree) {
		if (n == NULL || p->node == n)
			pod_eval(p);
	}
}

/* ------------------------------------------------------------ the tick */

static void read_control_dir(struct hollow *h)
{
	struct dirent *de;
	bool all = false;
	DIR *d;

	read_labels_file(h);
	for (unsigned i = 0; i < h->n_nodes; i++)
		h->nodes[i].stopped = false;
	d = opendir(h->control_dir);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		struct hnode *n;
		if (strncmp(de->d_name, "stop-", 5) != 0)
			continue;
		if (strcmp(de->d_name + 5, "all") == 0) {
			all = true;
			continue;
		}
		n = node_by_name(h, de->d_name + 5);
		if (n != NULL)
			n->stopped = true;
	}
	closedir(d);
	if (all) {
		for (unsigned i = 0; i < h->n_nodes; i++)
			h->nodes[i].stopped = true;
	}
}

static void tick_cb(uv_timer_t *t)
{
	struct hollow *h = t->data;
	uint64_t now = uv_now(h->loop);
	struct hpod *p, *next;
	bool catch_up_all = false;

	if (h->control_dir != NULL)
		read_control_dir(h);
	for (unsigned i = 0; i < h->n_nodes; i++) {
		struct hnode *n = &h->nodes[i];
		bool on = heartbeats_on(n), resumed;

		if (!on) {
			if (!n->was_stopped)
				log_info("%s: heartbeats stopped", n->name);
			n->was_stopped = true;
			continue;
		}
		resumed = n->was_stopped;
		n->was_stopped = false;
		if (resumed)
			log_info("%s: heartbeats resumed", n->name);
		if (!n->registered) {
			if (!n->registering && !n->status_inflight && now >= n->next_status)
				node_register(n);
			continue;
		}
		if (resumed) {
			/* Back from the dead: Ready again, and the backlog. */
			n->next_renew = now;
			n->next_status = now;
			if (h->n_nodes > 64)
				catch_up_all = true;
			else
				node_catch_up(h, n);
		}
		if (!n->lease_inflight && now >= n->next_renew)
			lease_renew(n);
		if (!n->status_inflight && now >= n->next_status)
			node_status_patch(n);
		node_label_patch(n);
	}
	if (catch_up_all)
		node_catch_up(h, NULL);
	for (p = LIST_FIRST(&h->retries); p != NULL; p = next) {
		next = LIST_NEXT(p, retry_link);
		if (p->retry_at > now)
			continue;
		LIST_REMOVE(p, retry_link);
		p->retry = false;
		p->conflict = false;
		pod_eval(p);
	}
}

/* ------------------------------------------------------------ signals */

static void client_closed_cb(void *data)
{
	struct hollow *h = data;

	h->client = NULL;
}

static void shutdown_hollow(struct hollow *h)
{
	struct hpod *p, *next;

	if (h->stopping)
		return;
	h->stopping = true;
	log_info("stopping: %" PRIu64 " pod statuses, %" PRIu64 " deletions, %" PRIu64
		 " lease renewals, %" PRIu64 " errors",
		 h->n_status, h->n_deletes, h->n_leases, h->n_errors);
	kclient_watch_stop(h->watch);
	h->watch = NULL;
	kclient_close(h->client, client_closed_cb, h);
	/* The requests' callbacks ran (cancelled): every pod can go. */
	RB_FOREACH_SAFE(p, pod_tree, &h->pods_tree, next) {
		RB_REMOVE(pod_tree, &h->pods_tree, p);
		pod_free(p);
	}
	uv_timer_stop(&h->tick);
	uv_close((uv_handle_t *)&h->tick, NULL);
	uv_close((uv_handle_t *)&h->sigterm, NULL);
	uv_close((uv_handle_t *)&h->sigint, NULL);
	uv_close((uv_handle_t *)&h->sigusr1, NULL);
	uv_close((uv_handle_t *)&h->sigusr2, NULL);
	uv_close((uv_handle_t *)&h->sighup, NULL);
}

static void signal_cb(uv_signal_t *s, int signum)
{
	struct hollow *h = s->data;

	if (signum == SIGHUP) {
		/* Now rather than at the next tick (the labels of DIR/labels). */
		if (h->control_dir != NULL)
			tick_cb(&h->tick);
		return;
	}
	if (signum == SIGUSR1 || signum == SIGUSR2) {
		h->all_stopped = signum == SIGUSR1;
		log_info("SIGUSR%d: heartbeats of every node %s", signum == SIGUSR1 ? 1 : 2,
			 h->all_stopped ? "stopped" : "resumed");
		return;
	}
	shutdown_hollow(h);
}

/* ------------------------------------------------------------ main */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstan-hollow [OPTION]...\n"
		"Register N fake (hollow) nodes with a capstan cluster: Leases renewed,\n"
		"pods bound to them reported Running and Ready, graceful deletions\n"
		"finished. For tests and benchmarks of the scheduler and controllers.\n"
		"\n"
		"  --server URL            a master's API URL (repeatable: failover)\n"
		"  --kubeconfig FILE       server and credentials from a kubeconfig\n"
		"  --token TOKEN           bearer token\n"
		"  --ca FILE               CA certificate of the masters (https)\n"
		"  --cert FILE, --key FILE client certificate and key\n"
		"  --nodes N               number of nodes (default 10)\n"
		"  --prefix NAME           node names NAME-<i> (default hollow)\n"
		"  --first-index I         first <i> (default 0)\n"
		"  --cpu Q                 CPU capacity (default 4)\n"
		"  --memory Q              memory capacity (default 16Gi)\n"
		"  --pods N                pod capacity (default 110)\n"
		"  --label KEY=VALUE       extra node label (repeatable)\n"
		"  --lease-interval DUR    renew each Lease every DUR (default 10s)\n"
		"  --lease-duration DUR    leaseDurationSeconds (default 40s)\n"
		"  --status-interval DUR   post each node's status every DUR (default 1m)\n"
		"  --control-dir DIR       a file DIR/stop-NODE (or DIR/stop-all) stops\n"
		"                          that node's heartbeats while it exists; a file\n"
		"                          DIR/labels of KEY=VALUE lines labels every node\n"
		"  --max-requests N        concurrent requests (default 512)\n"
		"  --log-level LEVEL       error, warn, info or debug (default info)\n"
		"  -h, --help              show this help and exit\n"
		"  -V, --version           show the version and exit\n"
		"\n"
		"SIGUSR1 stops the heartbeats of every node, SIGUSR2 resumes them;\n"
		"SIGHUP reads the control dir at once.\n");
}

struct opts {
	const char *urls[MAX_URLS + 1];
	unsigned n_urls;
	const char *kubeconfig, *token, *ca, *cert, *key;
	uint64_t nodes, first, max_requests;
};

static int parse_dur(const char *name, const char *v, uint64_t *ret)
{
	if (args_parse_duration_ms(v, ret) != 0 || *ret == 0) {
		fprintf(stderr, "capstan-hollow: invalid %s '%s'\n", name, v);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{"server", required_argument, NULL, OPT_SERVER},
		{"kubeconfig", required_argument, NULL, OPT_KUBECONFIG},
		{"token", required_argument, NULL, OPT_TOKEN},
		{"ca", required_argument, NULL, OPT_CA},
		{"cert", required_argument, NULL, OPT_CERT},
		{"key", required_argument, NULL, OPT_KEY},
		{"nodes", required_argument, NULL, OPT_NODES},
		{"prefix", required_argument, NULL, OPT_PREFIX},
		{"first-index", required_argument, NULL, OPT_FIRST},
		{"cpu", required_argument, NULL, OPT_CPU},
		{"memory", required_argument, NULL, OPT_MEMORY},
		{"pods", required_argument, NULL, OPT_PODS},
		{"label", required_argument, NULL, OPT_LABEL},
		{"lease-interval", required_argument, NULL, OPT_LEASE_INTERVAL},
		{"lease-duration", required_argument, NULL, OPT_LEASE_DURATION},
		{"status-interval", required_argument, NULL, OPT_STATUS_INTERVAL},
		{"control-dir", required_argument, NULL, OPT_CONTROL_DIR},
		{"max-requests", required_argument, NULL, OPT_MAX_REQUESTS},
		{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
		{NULL, 0, NULL, 0},
	};
	static struct hollow hollow;
	struct hollow *h = &hollow;
	struct opts o = {.nodes = 10, .max_requests = 512};
	struct cli_kubeconfig kc = {0};
	struct kclient_config cfg = {0};
	enum log_level level = LOG_LEVEL_INFO;
	uv_loop_t *loop;
	uint64_t v;
	int c, rv;

	log_init("capstan-hollow", LOG_LEVEL_INFO);
	snprintf(h->prefix, sizeof h->prefix, "hollow");
	h->cpu = "4";
	h->memory = "16Gi";
	h->pods = "110";
	h->lease_interval_ms = 10000;
	h->lease_duration_s = 40;
	h->status_interval_ms = 60000;
	while ((c = getopt_long(argc, argv, "hV", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		case 'V':
			version_print("capstan-hollow");
			return EXIT_SUCCESS;
		case OPT_SERVER:
			if (o.n_urls == MAX_URLS) {
				fprintf(stderr, "capstan-hollow: at most %d --server\n", MAX_URLS);
				return 2;
			}
			o.urls[o.n_urls++] = optarg;
			break;
		case OPT_KUBECONFIG:
			o.kubeconfig = optarg;
			break;
		case OPT_TOKEN:
			o.token = optarg;
			break;
		case OPT_CA:
			o.ca = optarg;
			break;
		case OPT_CERT:
			o.cert = optarg;
			break;
		case OPT_KEY:
			o.key = optarg;
			break;
		case OPT_NODES:
			if (args_parse_uint(optarg, 1000000, &o.nodes) != 0 || o.nodes == 0) {
				fprintf(stderr, "capstan-hollow: invalid --nodes '%s'\n", optarg);
				return 2;
			}
			break;
		case OPT_PREFIX:
			if (strlen(optarg) == 0 || strlen(optarg) > 40) {
				fprintf(stderr, "capstan-hollow: invalid --prefix '%s'\n", optarg);
				return 2;
			}
			snprintf(h->prefix, sizeof h->prefix, "%s", optarg);
			break;
		case OPT_FIRST:
			if (args_parse_uint(optarg, 1000000, &o.first) != 0) {
				fprintf(stderr, "capstan-hollow: invalid --first-index '%s'\n", optarg);
				return 2;
			}
			break;
		case OPT_CPU:
			h->cpu = optarg;
			break;
		case OPT_MEMORY:
			h->memory = optarg;
			break;
		case OPT_PODS:
			if (args_parse_uint(optarg, 1000000, &v) != 0) {
				fprintf(stderr, "capstan-hollow: invalid --pods '%s'\n", optarg);
				return 2;
			}
			h->pods = optarg;
			break;
		case OPT_LABEL:
			if (strchr(optarg, '=') == NULL || optarg[0] == '=' ||
			    h->n_labels == MAX_LABELS) {
				fprintf(stderr, "capstan-hollow: invalid --label '%s'\n", optarg);
				return 2;
			}
			h->labels[h->n_labels++] = optarg;
			break;
		case OPT_LEASE_INTERVAL:
			if (parse_dur("--lease-interval", optarg, &h->lease_interval_ms) != 0)
				return 2;
			break;
		case OPT_LEASE_DURATION:
			if (parse_dur("--lease-duration", optarg, &v) != 0)
				return 2;
			h->lease_duration_s = v < 1000 ? 1 : v / 1000;
			break;
		case OPT_STATUS_INTERVAL:
			if (parse_dur("--status-interval", optarg, &h->status_interval_ms) != 0)
				return 2;
			break;
		case OPT_CONTROL_DIR:
			h->control_dir = optarg;
			break;
		case OPT_MAX_REQUESTS:
			if (args_parse_uint(optarg, 100000, &o.max_requests) != 0 ||
			    o.max_requests == 0) {
				fprintf(stderr, "capstan-hollow: invalid --max-requests '%s'\n", optarg);
				return 2;
			}
			break;
		case OPT_LOG_LEVEL:
			if (log_level_parse(optarg, &level) != 0) {
				fprintf(stderr, "capstan-hollow: invalid --log-level '%s'\n", optarg);
				return 2;
			}
			log_init("capstan-hollow", level);
			break;
		default:
			fprintf(stderr, "Try 'capstan-hollow --help'.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "capstan-hollow: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (o.kubeconfig != NULL) {
		char err[512];
		rv = cli_kubeconfig_load(o.kubeconfig, NULL, &kc, err, sizeof err);
		if (rv != 0) {
			log_error("%s: %s", o.kubeconfig, err);
			return EXIT_FAILURE;
		}
		if (o.n_urls == 0 && kc.server != NULL)
			o.urls[o.n_urls++] = kc.server;
		cfg.ca_pem = kc.ca;
		cfg.cert_pem = kc.cert;
		cfg.key_pem = kc.key;
		cfg.token = kc.token;
	}
	if (o.n_urls == 0) {
		fprintf(stderr, "capstan-hollow: give --server URL or --kubeconfig FILE\n");
		return 2;
	}
	o.urls[o.n_urls] = NULL;
	cfg.urls = o.urls;
	if (o.token != NULL)
		cfg.token = o.token;
	if (o.ca != NULL) {
		cfg.ca_file = o.ca;
		cfg.ca_pem = NULL;
	}
	if (o.cert != NULL) {
		cfg.cert_file = o.cert;
		cfg.key_file = o.key;
		cfg.cert_pem = cfg.key_pem = NULL;
	}
	cfg.max_streams = (unsigned)o.max_requests;
	cfg.timeout_ms = 30000;

	loop = uv_default_loop();
	h->loop = loop;
	h->first = (unsigned)o.first;
	h->n_nodes = (unsigned)o.nodes;
	RB_INIT(&h->pods_tree);
	LIST_INIT(&h->retries);
	h->nodes = calloc(h->n_nodes, sizeof(*h->nodes));
	if (h->nodes == NULL) {
		log_error("out of memory");
		return EXIT_FAILURE;
	}
	rv = kclient_new(loop, &cfg, &h->client);
	if (rv != 0) {
		log_error("cannot start the API client: %s", strerror(-rv));
		cli_kubeconfig_close(&kc);
		free(h->nodes);
		return EXIT_FAILURE;
	}
	for (unsigned i = 0; i < h->n_nodes; i++) {
		struct hnode *n = &h->nodes[i];
		n->h = h;
		n->idx = h->first + i;
		if (snprintf(n->name, sizeof n->name, "%s-%u", h->prefix, n->idx) >=
		    (int)sizeof n->name)
			abort(); /* --prefix is at most 40 characters */
		/* Renewals spread over the interval. */
		n->next_renew = uv_now(loop) + (uint64_t)i * h->lease_interval_ms / h->n_nodes;
		n->next_status = 0;
		node_register(n);
	}
	rv = kclient_watch(h->client, "/api/v1/pods", NULL, watch_event_cb, watch_relist_cb, h,
			   &h->watch);
	if (rv != 0) {
		log_error("cannot watch pods: %s", strerror(-rv));
		return EXIT_FAILURE;
	}
	uv_timer_init(loop, &h->tick);
	h->tick.data = h;
	uv_timer_start(&h->tick, tick_cb, TICK_MS, TICK_MS);
	uv_signal_init(loop, &h->sigterm);
	uv_signal_init(loop, &h->sigint);
	uv_signal_init(loop, &h->sigusr1);
	uv_signal_init(loop, &h->sigusr2);
	uv_signal_init(loop, &h->sighup);
	h->sigterm.data = h->sigint.data = h->sigusr1.data = h->sigusr2.data = h->sighup.data = h;
	uv_signal_start(&h->sigterm, signal_cb, SIGTERM);
	uv_signal_start(&h->sigint, signal_cb, SIGINT);
	uv_signal_start(&h->sigusr1, signal_cb, SIGUSR1);
	uv_signal_start(&h->sigusr2, signal_cb, SIGUSR2);
	uv_signal_start(&h->sighup, signal_cb, SIGHUP);
	signal(SIGPIPE, SIG_IGN);
	log_info("%u hollow nodes %s-%u..%s-%u against %s", h->n_nodes, h->prefix, h->first,
		 h->prefix, h->first + h->n_nodes - 1, o.urls[0]);
	uv_run(loop, UV_RUN_DEFAULT);
	cli_kubeconfig_close(&kc);
	json_decref(h->file_labels);
	free(h->nodes);
	uv_loop_close(loop);
	return EXIT_SUCCESS;
}
