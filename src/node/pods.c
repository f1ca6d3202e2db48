/* The pods bound to this node (kubelet's pod workers), one state machine
 * per pod driven by sync():
 *
 *   sandbox (namespaces, thread pool) -> network (CNI ADD; the IP is kept
 *   in STATE/pods/<uid>/ip so a restarted agent does not add it twice) ->
 *   objects (ConfigMaps, Secrets, PVC -> PV paths, by GET; the tokens of
 *   projected volumes by TokenRequest, bound to the pod) -> volumes
 *   (thread pool) -> init containers one at a time, each to success ->
 *   containers; a container that exits is restarted per restartPolicy
 *   after a back-off (none the first time, then base, doubling to max:
 *   CrashLoopBackOff while waiting).
 *   Deletion (deletionTimestamp, or the pod gone from the API): preStop
 *   hooks (all at once, within the grace period), then SIGTERM to every
 *   container, SIGKILL when the grace period ends, then runc
 *   delete, CNI DEL, namespaces and directories removed, and DELETE with
 *   gracePeriodSeconds=0 and a uid precondition.
 *
 * One runtime operation per pod at a time (p->busy); events arriving
 * meanwhile set p->dirty and sync runs again when it completes. Status is
 * written after every sync that changed it, with PUT pods/<n>/status and
 * the resourceVersion last seen (409: GET, then again).
 *
 * Start-up: list the pods of this node, then `runc list` to adopt the
 * containers found (highest restart number per container; exited ones read
 * from their exit file), kill those of unknown pods, then watch from the
 * list's resourceVersion.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/kclient.h"
#include "runtime/runtime.h"
#include "src/lib/pki.h"
#include "src/node/creds.h"
#include "src/node/podspec.h"
#include "src/node/pods.h"
#include "src/node/probe.h"
#include "src/node/projected.h"
#include "src/node/registries.h"

#define RETRY_MS 2000
#define MIN_RESET_RUN_MS 600000 /* a run this long resets the back-off */
#define PULL_ERR_SHOW_MS 1000    /* ErrImagePull, then ImagePullBackOff */

enum ctr_state { CTR_WAITING, CTR_RUNNING, CTR_TERMINATED };

struct ctr {
	char name[64];
	bool init;
	unsigned restart_count;
	char id[200]; /* current runc id, "" if none */
	enum ctr_state state;
	bool ever_ran;
	int64_t started_ns, finished_ns;
	int exit_code, signal;
	char reason[64], message[256];
	json_t *last_state; /* {"terminated": {...}} or NULL */
	char waiting_reason[64], waiting_msg[256];
	uint64_t backoff_ms, due_ms; /* next start not before due_ms */
	bool killed; /* SIGTERM sent by us */
	/* Probes: 0 startup, 1 liveness, 2 readiness. */
	struct {
		uint64_t next_ms;
		unsigned ok_n, fail_n;
		bool running;
	} probes[3];
	bool started_ok, ready_ok;
	/* Image pulls: their own back-off (ImagePullBackOff); the time of the
	 * last failure shows ErrImagePull for a moment before it. */
	uint64_t pull_backoff_ms, pull_failed_ms;
	bool pull_failed;
};

struct pod {
	LIST_ENTRY(pod) link;
	struct node_pods *np;
	char uid[40], ns[64], name[254];
	json_t *obj;
	bool gone, deleting, busy, dirty, freed, timer_closed;
	unsigned ops; /* callbacks still to come that name this pod */
	bool sandbox_ok, net_ok, objects_ok, volumes_ok, host_network;
	char ip[64];
	char *pod_dir, *log_dir;
	json_t *configmaps, *secrets, *pv_paths;
	unsigned fetching;
	bool fetch_failed;
	struct ctr *ctrs;
	size_t n_ctrs, n_init;
	uv_timer_t timer;
	uint64_t start_ms;
	char start_time[40];
	uint64_t kill_at;
	bool term_sent, kill_sent;
	int cleanup_step;
	size_t cleanup_idx;
	bool status_busy, status_again;
	json_t *last_status;
	bool failed_phase; /* restartPolicy Never + failed init */
	int pull_cancel; /* set (atomically) to stop this pod's image pulls */
	bool prestop_started;
	unsigned prestop_pending; /* preStop hooks still running */
	/* Service-account tokens of projected volumes: requested with the
	 * objects, then refreshed (tokens_tick) and written again. */
	struct projected_tokens tokens;
	bool tok_writing, tok_again;
};

struct node_pods {
	struct node_agent *a;
	struct rt *rt;
	LIST_HEAD(, pod) pods;
	struct kclient_watch *watch;
	char list_path[512];
	bool started, stopping;
	unsigned pending; /* work items, requests */
	void (*stop_cb)(void *);
	void *stop_data;
	uv_timer_t relist_timer;
};

static void sync_pod(struct pod *p);
static void maybe_write_status(struct pod *p);
static void probes_reset(struct pod *p, struct ctr *c);

static uint64_t now_ms(struct node_pods *np)
{
	return uv_now(np->a->loop);
}

static int64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void time_str(int64_t ns, char *buf, size_t len)
{
	time_t s = (time_t)(ns / 1000000000);
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *str(const json_t *o, const char *path)
{
	/* "a.b.c" */
	char buf[128], *save = NULL, *k;
	const json_t *v = o;

	snprintf(buf, sizeof(buf), "%s", path);
	for (k = strtok_r(buf, ".", &save); k != NULL && v != NULL; k = strtok_r(NULL, ".", &save))
		v = json_object_get(v, k);
	return json_string_value(v);
}

static void maybe_finish_stop(struct node_pods *np);
static void pod_destroy(struct pod *p);

/* Every callback naming a pod holds it: a pod removed meanwhile is freed
 * once the last of them has come back. */
static void pod_hold(struct pod *p)
{
	p->ops++;
	p->np->pending++;
}

/* Returns true when the pod is gone: the callback must not touch it. */
static bool pod_drop(struct pod *p)
{
	struct node_pods *np = p->np;

	p->ops--;
	np->pending--;
	if (!p->freed)
		return false;
	if (p->ops == 0 && p->timer_closed)
		pod_destroy(p);
	maybe_finish_stop(np);
	return true;
}

/* ------------------------------------------------------------ work */

struct job {
	uv_work_t req;
	struct pod *p;
	void (*fn)(struct job *);
	void (*done)(struct job *);
	int err;
	char why[256];
	/* inputs/outputs */
	json_t *pod;
	struct ctr *c;
	char id[200];
	char *log_path;
	struct rt_sandbox sb;
	struct rt_exit ex;
	bool image_missing, config_error;
	const char *image_reason; /* ErrImagePull, ErrImageNeverPull, ... */
	char ip[64];
};

static void job_work_cb(uv_work_t *w)
{
	struct job *j = w->data;

	j->fn(j);
}

static void job_after_cb(uv_work_t *w, int status)
{
	struct job *j = w->data;
	struct node_pods *np = j->p->np;

	if (status != 0 && j->err == 0)
		j->err = status;
	if (!pod_drop(j->p))
		j->done(j);
	json_decref(j->pod);
	free(j->log_path);
	rt_sandbox_clear(&j->sb);
	free(j);
	maybe_finish_stop(np);
}

static int job_run(struct pod *p, void (*fn)(struct job *), void (*done)(struct job *),
		   struct job *j)
{
	int rv;

	j->req.data = j;
	j->p = p;
	j->fn = fn;
	j->done = done;
	rv = uv_queue_work(p->np->a->loop, &j->req, job_work_cb, job_after_cb);
	if (rv == 0)
		pod_hold(p);
	return rv;
}

static struct job *job_new(void)
{
	return calloc(1, sizeof(struct job));
}

/* ------------------------------------------------------------ pods */

static struct pod *pod_find(struct node_pods *np, const char *uid)
{
	struct pod *p;

	LIST_FOREACH(p, &np->pods, link)
		if (strcmp(p->uid, uid) == 0)
			return p;
	return NULL;
}

static char *pathf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *pathf(const char *fmt, ...)
{
	char buf[PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return strdup(buf);
}

static void pod_destroy(struct pod *p)
{
	size_t i;

	for (i = 0; i < p->n_ctrs; i++)
		json_decref(p->ctrs[i].last_state);
	free(p->ctrs);
	json_decref(p->obj);
	json_decref(p->configmaps);
	json_decref(p->secrets);
	json_decref(p->pv_paths);
	json_decref(p->last_status);
	projected_tokens_clear(&p->tokens);
	free(p->pod_dir);
	free(p->log_dir);
	free(p);
}

static void pod_timer_closed_cb(uv_handle_t *h)
{
	struct pod *p = h->data;

	p->timer_closed = true;
	if (p->ops == 0)
		pod_destroy(p);
}

static void pod_free(struct pod *p)
{
	LIST_REMOVE(p, link);
	p->freed = true;
	uv_timer_stop(&p->timer);
	uv_close((uv_handle_t *)&p->timer, pod_timer_closed_cb);
}

static void pod_timer_cb(uv_timer_t *t)
{
	sync_pod(t->data);
}

/* Wakes the pod at loop time @at (the earliest asked wins). */
static void wake_at(struct pod *p, uint64_t at)
{
	uint64_t now = now_ms(p->np), due = uv_timer_get_due_in(&p->timer);

	if (at <= now)
		at = now + 1;
	if (uv_is_active((uv_handle_t *)&p->timer) && now + due <= at)
		return;
	uv_timer_start(&p->timer, pod_timer_cb, at - now, 0);
}

static void set_deleting(struct pod *p)
{
	const json_t *meta = json_object_get(p->obj, "metadata");
	json_int_t grace;

	if (p->deleting)
		return;
	p->deleting = true;
	__atomic_store_n(&p->pull_cancel, 1, __ATOMIC_RELAXED);
	if (p->gone) {
		grace = 0; /* nothing left to wait for in the API */
	} else if (json_is_integer(json_object_get(meta, "deletionGracePeriodSeconds"))) {
		grace = json_integer_value(json_object_get(meta, "deletionGracePeriodSeconds"));
	} else if (json_is_integer(json_object_get(json_object_get(p->obj, "spec"),
						   "terminationGracePeriodSeconds"))) {
		grace = json_integer_value(json_object_get(json_object_get(p->obj, "spec"),
							   "terminationGracePeriodSeconds"));
	} else {
		grace = 30;
	}
	if (grace < 0)
		grace = 0;
	p->kill_at = now_ms(p->np) + (uint64_t)grace * 1000;
}

static struct pod *pod_new(struct node_pods *np, const json_t *obj)
{
	struct pod *p = calloc(1, sizeof(*p));
	const json_t *spec = json_object_get(obj, "spec"), *c;
	size_t i, n_init = json_array_size(json_object_get(spec, "initContainers"));
	size_t n = n_init + json_array_size(json_object_get(spec, "containers"));
	const char *uid = str(obj, "metadata.uid"), *ns = str(obj, "metadata.namespace"),
		   *name = str(obj, "metadata.name");

	if (p == NULL || uid == NULL || ns == NULL || name == NULL || strlen(uid) >= 40) {
		free(p);
		return NULL;
	}
	p->np = np;
	snprintf(p->uid, sizeof(p->uid), "%s", uid);
	snprintf(p->ns, sizeof(p->ns), "%s", ns);
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->obj = json_deep_copy(obj);
	p->ctrs = calloc(n + 1, sizeof(*p->ctrs));
	p->pod_dir = pathf("%s/pods/%s", np->a->cfg->state_dir, uid);
	p->log_dir = pathf("%s/logs/%s_%s_%s", np->a->cfg->state_dir, ns, name, uid);
	p->configmaps = json_object();
	p->secrets = json_object();
	p->pv_paths = json_object();
	if (p->obj == NULL || p->ctrs == NULL || p->pod_dir == NULL || p->log_dir == NULL ||
	    projected_tokens_init(&p->tokens, obj) != 0) {
		json_decref(p->obj);
		free(p->ctrs);
		free(p->pod_dir);
		free(p->log_dir);
		json_decref(p->configmaps);
		json_decref(p->secrets);
		json_decref(p->pv_paths);
		free(p);
		return NULL;
	}
	p->n_ctrs = n;
	p->n_init = n_init;
	json_array_foreach (json_object_get(spec, "initContainers"), i, c) {
		snprintf(p->ctrs[i].name, sizeof(p->ctrs[i].name), "%s",
			 podspec_or(str(c, "name"), "?"));
		p->ctrs[i].init = true;
	}
	json_array_foreach (json_object_get(spec, "containers"), i, c)
		snprintf(p->ctrs[n_init + i].name, sizeof(p->ctrs[0].name), "%s",
			 podspec_or(str(c, "name"), "?"));
	for (i = 0; i < n; i++)
		snprintf(p->ctrs[i].waiting_reason, sizeof(p->ctrs[i].waiting_reason), "%s",
			 i < n_init || n_init == 0 ? "ContainerCreating" : "PodInitializing");
	p->host_network = json_is_true(json_object_get(spec, "hostNetwork"));
	p->start_ms = now_ms(np);
	node__now_rfc3339(p->start_time, sizeof(p->start_time), false);
	{
		const char *st = str(obj, "status.startTime");
		if (st != NULL)
			snprintf(p->start_time, sizeof(p->start_time), "%s", st);
	}
	uv_timer_init(np->a->loop, &p->timer);
	p->timer.data = p;
	LIST_INSERT_HEAD(&np->pods, p, link);
	return p;
}

static const json_t *ctr_spec(const struct pod *p, const struct ctr *c)
{
	const json_t *spec = json_object_get(p->obj, "spec");
	size_t idx = (size_t)(c - p->ctrs);

	if (c->init)
		return json_array_get(json_object_get(spec, "initContainers"), idx);
	return json_array_get(json_object_get(spec, "containers"), idx - p->n_init);
}

static struct ctr *ctr_find(struct pod *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->n_ctrs; i++)
		if (strcmp(p->ctrs[i].name, name) == 0)
			return &p->ctrs[i];
	return NULL;
}

static const char *restart_policy(const struct pod *p)
{
	return podspec_or(str(p->obj, "spec.restartPolicy"), "Always");
}

/* ------------------------------------------------------------ status */

static json_t *ctr_status(struct pod *p, struct ctr *c)
{
	const json_t *spec = ctr_spec(p, c);
	char t1[40], t2[40], cid[220];
	json_t *st, *state;

	snprintf(cid, sizeof(cid), "runc://%s", c->id);
	switch (c->state) {
	case CTR_RUNNING:
		time_str(c->started_ns, t1, sizeof(t1));
		state = json_pack("{s:{s:s}}", "running", "startedAt", t1);
		break;
	case CTR_TERMINATED:
		if (c->waiting_reason[0] == '\0') {
			time_str(c->started_ns, t1, sizeof(t1));
			time_str(c->finished_ns, t2, sizeof(t2));
			state = json_pack("{s:{s:i, s:s, s:s, s:s, s:s}}", "terminated", "exitCode",
					  c->exit_code, "reason", c->reason, "startedAt", t1,
					  "finishedAt", t2, "containerID", cid);
			if (c->signal != 0)
				json_object_set_new(json_object_get(state, "terminated"), "signal",
						    json_integer(c->signal));
			if (c->message[0] != '\0')
				json_object_set_new(json_object_get(state, "terminated"),
						    "message", json_string(c->message));
			break;
		}
		/* fallthrough: waiting to restart */
		__attribute__((fallthrough));
	default:
		state = json_pack("{s:{s:s}}", "waiting", "reason",
				  c->waiting_reason[0] ? c->waiting_reason : "ContainerCreating");
		if (c->waiting_msg[0] != '\0')
			json_object_set_new(json_object_get(state, "waiting"), "message",
					    json_string(c->waiting_msg));
		break;
	}
	st = json_pack("{s:s, s:o, s:b, s:i, s:s, s:s, s:b}", "name", c->name, "state", state,
		       "ready", c->state == CTR_RUNNING && c->started_ok && c->ready_ok,
		       "restartCount", (int)c->restart_count, "image",
		       podspec_or(str(spec, "image"), ""), "imageID", "", "started",
		       c->state == CTR_RUNNING && c->started_ok);
	if (c->id[0] != '\0')
		json_object_set_new(st, "containerID", json_string(cid));
	json_object_set_new(st, "lastState",
			    c->last_state != NULL ? json_deep_copy(c->last_state) : json_object());
	return st;
}

static json_t *cond(const char *type, bool ok, const char *reason, json_t *old)
{
	const json_t *c;
	size_t i;
	char now[40];
	const char *since = NULL;

	json_array_foreach (json_object_get(old, "conditions"), i, c)
		if (strcmp(podspec_or(str(c, "type"), ""), type) == 0 &&
		    strcmp(podspec_or(str(c, "status"), ""), ok ? "True" : "False") == 0)
			since = str(c, "lastTransitionTime");
	if (since == NULL) {
		node__now_rfc3339(now, sizeof(now), false);
		since = now;
	}
	if (reason != NULL && !ok)
		return json_pack("{s:s, s:s, s:s, s:n, s:s}", "type", type, "status", "False",
				 "reason", reason, "lastProbeTime", "lastTransitionTime", since);
	return json_pack("{s:s, s:s, s:n, s:s}", "type", type, "status", ok ? "True" : "False",
			 "lastProbeTime", "lastTransitionTime", since);
}

static json_t *pod_status(struct pod *p)
{
	json_t *st, *init = json_array(), *ctrs = json_array();
	const char *policy = restart_policy(p);
	bool initialized = true, all_ready = p->n_ctrs > p->n_init, any_running = false;
	bool all_done = p->n_ctrs > p->n_init, any_failed = false;
	const char *phase;
	size_t i;

	for (i = 0; i < p->n_ctrs; i++) {
		struct ctr *c = &p->ctrs[i];
		json_array_append_new(c->init ? init : ctrs, ctr_status(p, c));
		if (c->init) {
			if (!(c->state == CTR_TERMINATED && c->exit_code == 0 &&
			      c->waiting_reason[0] == '\0'))
				initialized = false;
			continue;
		}
		if (!(c->state == CTR_RUNNING && c->started_ok && c->ready_ok))
			all_ready = false;
		if (c->state == CTR_RUNNING)
			any_running = true;
		if (!(c->state == CTR_TERMINATED && c->waiting_reason[0] == '\0'))
			all_done = false;
		if (c->state == CTR_TERMINATED && c->exit_code != 0)
			any_failed = true;
	}
	if (p->failed_phase)
		phase = "Failed";
	else if (all_done && strcmp(policy, "Always") != 0)
		phase = any_failed ? "Failed" : "Succeeded";
	else if (initialized && (any_running || all_done))
		phase = "Running";
	else
		phase = "Pending";
	if (!initialized)
		all_ready = false;
	st = json_pack("{s:s, s:s, s:[{s:s}], s:s}", "phase", phase, "hostIP", p->np->a->node_ip,
		       "hostIPs", "ip", p->np->a->node_ip, "startTime", p->start_time);
	json_object_set_new(
		st, "conditions",
		json_pack("[o, o, o, o]",
			  cond("PodScheduled", true, NULL, p->last_status),
			  cond("Initialized", initialized, "ContainersNotInitialized",
			       p->last_status),
			  cond("ContainersReady", all_ready, "ContainersNotReady", p->last_status),
			  cond("Ready", all_ready, "ContainersNotReady", p->last_status)));
	if (p->ip[0] != '\0') {
		json_object_set_new(st, "podIP", json_string(p->ip));
		json_object_set_new(st, "podIPs", json_pack("[{s:s}]", "ip", p->ip));
	}
	if (p->n_init > 0)
		json_object_set_new(st, "initContainerStatuses", init);
	else
		json_decref(init);
	json_object_set_new(st, "containerStatuses", ctrs);
	return st;
}

/* Equal ignoring lastTransitionTime-only noise is not needed: times are
 * kept from the last status, so an unchanged pod gives an equal object. */
static void status_put_cb(void *data, int err, const struct kclient_response *res);

static void status_get_cb(void *data, int err, const struct kclient_response *res)
{
	struct pod *p = data;

	if (pod_drop(p))
		return;
	p->status_busy = false;
	if (err == 0 && res->status == 200 && res->body != NULL &&
	    strcmp(podspec_or(str(res->body, "metadata.uid"), ""), p->uid) == 0) {
		json_decref(p->obj);
		p->obj = json_deep_copy(res->body);
		if (json_object_get(json_object_get(p->obj, "metadata"), "deletionTimestamp"))
			set_deleting(p);
	} else if (err == 0 && res->status == 404) {
		p->gone = true;
		set_deleting(p);
	}
	if (!p->freed && !p->np->stopping) {
		p->status_again = true;
		sync_pod(p);
	}
	maybe_finish_stop(p->np);
}

static void status_put_cb(void *data, int err, const struct kclient_response *res)
{
	struct pod *p = data;
	char path[640];

	if (pod_drop(p))
		return;
	p->status_busy = false;
	if (err == 0 && res->status == 200 && res->body != NULL) {
		json_decref(p->obj);
		p->obj = json_deep_copy(res->body);
	} else if (err == 0 && (res->status == 409 || res->status == 404) && !p->freed &&
		   !p->np->stopping) {
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", p->ns, p->name);
		if (kclient_request(p->np->a->kc, "GET", path, NULL, NULL, status_get_cb, p) == 0) {
			pod_hold(p);
			p->status_busy = true;
		}
	} else if (err != -ECANCELED) {
		json_decref(p->last_status);
		p->last_status = NULL; /* try again */
		if (!p->freed)
			wake_at(p, now_ms(p->np) + RETRY_MS);
	}
	if (p->status_again && !p->status_busy && !p->freed) {
		p->status_again = false;
		maybe_write_status(p);
	}
	maybe_finish_stop(p->np);
}

static void maybe_write_status(struct pod *p)
{
	json_t *st, *body;
	char path[640];

	if (p->gone || p->freed || p->np->stopping)
		return;
	if (p->status_busy) {
		p->status_again = true;
		return;
	}
	st = pod_status(p);
	if (st == NULL || (p->last_status != NULL && json_equal(st, p->last_status) &&
			   json_equal(st, json_object_get(p->obj, "status")))) {
		json_decref(st);
		return;
	}
	body = json_deep_copy(p->obj);
	json_object_set(body, "status", st);
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s/status", p->ns, p->name);
	if (kclient_request(p->np->a->kc, "PUT", path, body, NULL, status_put_cb, p) == 0) {
		pod_hold(p);
		p->status_busy = true;
		json_decref(p->last_status);
		p->last_status = json_incref(st);
	}
	json_decref(body);
	json_decref(st);
}

/* ------------------------------------------------------------ sandbox */

static void sandbox_fn(struct job *j)
{
	struct rt *rt = j->p->np->rt;
	struct rt_sandbox_opts o = {
		.pod_uid = j->p->uid,
		.hostname = j->p->name,
		.host_network = j->p->host_network,
		.host_ipc = json_is_true(json_object_get(json_object_get(j->pod, "spec"), "hostIPC")),
	};
	char *path, *text = NULL;
	size_t len;

	j->err = podspec_mkdir_p(j->p->pod_dir);
	if (j->err == 0)
		j->err = podspec_mkdir_p(j->p->log_dir);
	if (j->err != 0) {
		snprintf(j->why, sizeof(j->why), "cannot create %s", j->p->pod_dir);
		return;
	}
	j->err = rt_sandbox_ns_create(rt, &o, &j->sb);
	if (j->err != 0) {
		snprintf(j->why, sizeof(j->why), "cannot create the pod's namespaces: %s",
			 strerror(-j->err));
		return;
	}
	/* A previous run of the agent may have wired the network already. */
	path = pathf("%s/ip", j->p->pod_dir);
	if (path != NULL && pki_read_file(path, &text, &len) == 0) {
		snprintf(j->ip, sizeof(j->ip), "%.*s", (int)strcspn(text, "\n"), text);
		free(text);
	}
	free(path);
	/* /etc/hosts and /etc/hostname of the pod. */
	path = pathf("%s/etc-hosts", j->p->pod_dir);
	if (path != NULL) {
		char hosts[512];
		int n = snprintf(hosts, sizeof(hosts),
				 "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
				 "%s\t%s\n",
				 j->ip[0] ? j->ip : "127.0.1.1", j->p->name);
		pki_write_file(path, hosts, (size_t)n, 0644);
		free(path);
	}
	path = pathf("%s/etc-hostname", j->p->pod_dir);
	if (path != NULL) {
		char h[300];
		int n = snprintf(h, sizeof(h), "%s\n", j->p->name);
		pki_write_file(path, h, (size_t)n, 0644);
		free(path);
	}
}

static void sandbox_done(struct job *j)
{
	struct pod *p = j->p;

	p->busy = false;
	if (j->err != 0) {
		log_warn("pod %s/%s: %s", p->ns, p->name, j->why);
		wake_at(p, now_ms(p->np) + RETRY_MS);
	} else {
		p->sandbox_ok = true;
		if (j->ip[0] != '\0' || p->host_network) {
			snprintf(p->ip, sizeof(p->ip), "%s", p->host_network ? p->np->a->node_ip : j->ip);
			p->net_ok = true;
		}
	}
	sync_pod(p);
}

struct cni_op {
	struct pod *p;
	bool del;
};

static void ip_save_fn(struct job *j)
{
	char *path = pathf("%s/ip", j->p->pod_dir);

	if (path != NULL) {
		j->err = pki_write_file(path, j->ip, strlen(j->ip), 0644);
		free(path);
	}
}

static void ip_save_done(struct job *j)
{
	j->p->busy = false;
	sync_pod(j->p);
}

static void cni_add_cb(void *data, int err, const char *ip, const char *msg)
{
	struct pod *p = data;
	struct job *j;

	if (pod_drop(p))
		return;
	p->busy = false;
	if (err == -ECANCELED)
		return;
	if (err != 0 || ip == NULL) {
		log_warn("pod %s/%s: CNI ADD failed: %s", p->ns, p->name,
			 msg != NULL ? msg : strerror(-err));
		wake_at(p, now_ms(p->np) + RETRY_MS);
		return;
	}
	snprintf(p->ip, sizeof(p->ip), "%s", ip);
	p->net_ok = true;
	j = job_new();
	if (j != NULL) {
		snprintf(j->ip, sizeof(j->ip), "%s", ip);
		if (job_run(p, ip_save_fn, ip_save_done, j) == 0) {
			p->busy = true;
			return;
		}
		free(j);
	}
	sync_pod(p);
}

/* ------------------------------------------------------------ objects */

static void object_cb(void *data, int err, const struct kclient_response *res);

struct fetch {
	struct pod *p;
	int kind; /* 0 configmap, 1 secret, 2 pvc, 3 pv */
	char name[254];
	char claim[254];
};

static int fetch_start(struct pod *p, int kind, const char *name, const char *claim)
{
	struct fetch *f = calloc(1, sizeof(*f));
	char path[700];
	int rv;

	if (f == NULL)
		return -ENOMEM;
	f->p = p;
	f->kind = kind;
	snprintf(f->name, sizeof(f->name), "%s", name);
	snprintf(f->claim, sizeof(f->claim), "%s", claim != NULL ? claim : "");
	if (kind == 3)
		snprintf(path, sizeof(path), "/api/v1/persistentvolumes/%s", name);
	else
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/%s/%s", p->ns,
			 kind == 0 ? "configmaps" : kind == 1 ? "secrets" : "persistentvolumeclaims",
			 name);
	rv = kclient_request(p->np->a->kc, "GET", path, NULL, NULL, object_cb, f);
	if (rv != 0) {
		free(f);
		return rv;
	}
	pod_hold(p);
	p->fetching++;
	return 0;
}

static void object_cb(void *data, int err, const struct kclient_response *res)
{
	struct fetch *f = data;
	struct pod *p = f->p;

	if (pod_drop(p)) {
		free(f);
		return;
	}
	p->fetching--;
	if (err == 0 && res->status == 200 && res->body != NULL) {
		switch (f->kind) {
		case 0:
			json_object_set(p->configmaps, f->name, res->body);
			break;
		case 1:
			json_object_set(p->secrets, f->name, res->body);
			break;
		case 2: {
			const char *pv = str(res->body, "spec.volumeName");
			if (pv == NULL || fetch_start(p, 3, pv, f->name) != 0)
				p->fetch_failed = true;
			break;
		}
		default: {
			const char *path = str(res->body, "spec.hostPath.path");
			if (path == NULL)
				path = str(res->body, "spec.local.path");
			if (path != NULL)
				json_object_set_new(p->pv_paths, f->claim, json_string(path));
			else
				p->fetch_failed = true;
			break;
		}
		}
	} else if (!(err == 0 && res->status == 404 && f->kind < 2)) {
		/* A missing ConfigMap/Secret may be optional: podspec decides. */
		p->fetch_failed = true;
	}
	free(f);
	if (p->fetching == 0) {
		p->busy = false;
		if (!p->fetch_failed)
			p->objects_ok = true;
		else
			wake_at(p, now_ms(p->np) + RETRY_MS);
		p->fetch_failed = false;
		sync_pod(p);
	}
}

/* ------------------------------------------------------------ tokens */

static void tokens_write(struct pod *p);

static void event_cb(void *data, int err, const struct kclient_response *res)
{
	(void)data;
	(void)err;
	(void)res;
}

/* A Warning Event about @p (best effort). */
static void warn_event(struct pod *p, const char *reason, const char *msg)
{
	json_t *ev = projected_event(p->obj, p->np->a->node_name, reason, msg,
				     wall_ns() / 1000000000);
	char path[300];

	if (ev == NULL)
		return;
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", p->ns);
	kclient_request(p->np->a->kc, "POST", path, ev, NULL, event_cb, NULL);
	json_decref(ev);
}

struct tok_req {
	struct pod *p;
	size_t i;
	bool initial; /* part of the objects step (p->fetching) */
};

static void token_cb(void *data, int err, const struct kclient_response *res)
{
	struct tok_req *r = data;
	struct pod *p = r->p;
	struct projected_token *tk;
	bool initial = r->initial;
	size_t i = r->i;
	char msg[400];

	free(r);
	if (pod_drop(p))
		return;
	tk = &p->tokens.v[i];
	tk->in_flight = false;
	if (err == 0 && (res->status == 200 || res->status == 201) &&
	    projected_token_set(tk, res->body, wall_ns() / 1000000000, now_ms(p->np),
				p->tokens.refresh_override_ms) == 0) {
		if (!initial)
			tokens_write(p);
	} else if (err != -ECANCELED) {
		const char *why = err != 0 ? strerror(-err)
					   : podspec_or(str(res->body, "message"), "no token");
		snprintf(msg, sizeof(msg),
			 "MountVolume.SetUp failed for volume \"%s\" : failed to fetch token: %s",
			 tk->volume, why);
		projected_token_failed(tk, now_ms(p->np));
		log_warn("pod %s/%s: %s (%s)", p->ns, p->name, msg,
			 tk->token != NULL ? "keeping the current token" : "no token yet");
		/* One event per failing streak, not one per retry. */
		if (tk->failures == 1 && !p->deleting)
			warn_event(p, "FailedMount", msg);
		if (initial)
			p->fetch_failed = true;
	}
	if (initial) {
		p->fetching--;
		if (p->fetching == 0) {
			p->busy = false;
			if (!p->fetch_failed)
				p->objects_ok = true;
			else
				wake_at(p, now_ms(p->np) + RETRY_MS);
			p->fetch_failed = false;
			sync_pod(p);
		}
	} else if (!p->deleting && !p->np->stopping) {
		wake_at(p, tk->refresh_ms);
	}
}

/* POSTs a TokenRequest for token @i of @p, bound to the pod. */
static int token_start(struct pod *p, size_t i, bool initial)
{
	struct projected_token *tk = &p->tokens.v[i];
	struct tok_req *r = calloc(1, sizeof(*r));
	json_t *body = projected_token_request(tk, p->name, p->uid);
	char path[700];
	int rv = -ENOMEM;

	if (r != NULL && body != NULL &&
	    (rv = projected_token_path(&p->tokens, p->ns, path, sizeof(path))) == 0) {
		r->p = p;
		r->i = i;
		r->initial = initial;
		rv = kclient_request(p->np->a->kc, "POST", path, body, NULL, token_cb, r);
	}
	json_decref(body);
	if (rv != 0) {
		free(r);
		return rv;
	}
	tk->in_flight = true;
	pod_hold(p);
	if (initial)
		p->fetching++;
	return 0;
}

/* Refreshes the tokens that are due (the pod keeps running on the old
 * ones while a refresh fails) and wakes the pod for the next. */
static void tokens_tick(struct pod *p)
{
	uint64_t now = now_ms(p->np), next;
	size_t i;

	if (!p->volumes_ok || p->deleting || p->freed || p->np->stopping)
		return;
	for (i = 0; i < p->tokens.n; i++) {
		struct projected_token *tk = &p->tokens.v[i];
		if (tk->in_flight || tk->refresh_ms > now)
			continue;
		if (token_start(p, i, false) != 0)
			projected_token_failed(tk, now);
	}
	next = projected_tokens_next(&p->tokens);
	if (next != UINT64_MAX)
		wake_at(p, next);
}

static void want(json_t *set, const char *name)
{
	if (name != NULL)
		json_object_set_new(set, name, json_true());
}

static void fetch_objects(struct pod *p)
{
	const json_t *spec = json_object_get(p->obj, "spec"), *v, *c, *e;
	json_t *cms = json_object(), *secs = json_object(), *pvcs = json_object(), *x;
	const char *k;
	size_t i, j;
	int kind;

	json_array_foreach (json_object_get(spec, "volumes"), i, v) {
		want(cms, str(v, "configMap.name"));
		want(secs, str(v, "secret.secretName"));
		want(pvcs, str(v, "persistentVolumeClaim.claimName"));
		json_array_foreach (json_object_get(json_object_get(v, "projected"), "sources"), j,
				    e) {
			want(cms, str(e, "configMap.name"));
			want(secs, str(e, "secret.name"));
		}
	}
	for (kind = 0; kind < 2; kind++) {
		json_array_foreach (json_object_get(spec, kind ? "containers" : "initContainers"),
				    i, c) {
			json_array_foreach (json_object_get(c, "envFrom"), j, e) {
				want(cms, str(e, "configMapRef.name"));
				want(secs, str(e, "secretRef.name"));
			}
			json_array_foreach (json_object_get(c, "env"), j, e) {
				want(cms, str(e, "valueFrom.configMapKeyRef.name"));
				want(secs, str(e, "valueFrom.secretKeyRef.name"));
			}
		}
	}
	p->busy = true;
	p->fetching++; /* held while starting the requests */
	json_object_foreach (cms, k, x)
		if (fetch_start(p, 0, k, NULL) != 0)
			p->fetch_failed = true;
	json_object_foreach (secs, k, x)
		if (fetch_start(p, 1, k, NULL) != 0)
			p->fetch_failed = true;
	json_object_foreach (pvcs, k, x)
		if (fetch_start(p, 2, k, NULL) != 0)
			p->fetch_failed = true;
	for (i = 0; i < p->tokens.n; i++)
		if (p->tokens.v[i].token == NULL && !p->tokens.v[i].in_flight &&
		    token_start(p, i, true) != 0)
			p->fetch_failed = true;
	json_decref(cms);
	json_decref(secs);
	json_decref(pvcs);
	p->fetching--;
	if (p->fetching == 0) {
		p->busy = false;
		if (!p->fetch_failed)
			p->objects_ok = true;
		else
			wake_at(p, now_ms(p->np) + RETRY_MS);
		p->fetch_failed = false;
	}
}

static void podspec_ctx_of(struct job *j, struct podspec_ctx *x)
{
	struct pod *p = j->p;

	memset(x, 0, sizeof(*x));
	x->pod = j->pod;
	x->configmaps = json_object_get(j->pod, "#configmaps");
	x->secrets = json_object_get(j->pod, "#secrets");
	x->pv_paths = json_object_get(j->pod, "#pvpaths");
	x->pod_dir = p->pod_dir;
	x->pod_name = p->name;
	x->pod_ip = j->ip;
	x->host_ip = p->np->a->node_ip;
}

/* The job's private copy of the pod with the fetched objects. */
static json_t *job_pod(struct pod *p)
{
	json_t *o = json_deep_copy(p->obj);

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "#configmaps", json_deep_copy(p->configmaps));
	json_object_set_new(o, "#secrets", json_deep_copy(p->secrets));
	json_object_set_new(o, "#pvpaths", json_deep_copy(p->pv_paths));
	json_object_set_new(o, PROJECTED_TOKENS_MEMBER, projected_tokens_json(&p->tokens));
	return o;
}

static void tokens_write_fn(struct job *j)
{
	struct podspec_ctx x;

	podspec_ctx_of(j, &x);
	j->err = projected_token_volumes_write(&x, j->why, sizeof(j->why));
}

static void tokens_write_done(struct job *j)
{
	struct pod *p = j->p;

	p->tok_writing = false;
	if (j->err != 0)
		log_warn("pod %s/%s: writing refreshed tokens: %s", p->ns, p->name, j->why);
	if (p->tok_again) {
		p->tok_again = false;
		tokens_write(p);
	}
	sync_pod(p); /* a deletion may wait for this write */
}

/* Writes the projected volumes holding tokens again, one write at a
 * time (the atomic writer swaps their ..data link). */
static void tokens_write(struct pod *p)
{
	struct job *j;

	if (p->deleting || p->freed || p->np->stopping)
		return;
	if (p->tok_writing) {
		p->tok_again = true;
		return;
	}
	j = job_new();
	if (j == NULL)
		return;
	j->pod = job_pod(p);
	if (j->pod != NULL && job_run(p, tokens_write_fn, tokens_write_done, j) == 0) {
		p->tok_writing = true;
		return;
	}
	json_decref(j->pod);
	free(j);
}

static void volumes_fn(struct job *j)
{
	struct podspec_ctx x;

	podspec_ctx_of(j, &x);
	j->err = podspec_volumes(&x, j->why, sizeof(j->why));
}

static void volumes_done(struct job *j)
{
	struct pod *p = j->p;

	p->busy = false;
	if (j->err != 0) {
		log_warn("pod %s/%s: volumes: %s", p->ns, p->name, j->why);
		p->objects_ok = false; /* fetch again: the object may come */
		wake_at(p, now_ms(p->np) + RETRY_MS);
	} else {
		p->volumes_ok = true;
	}
	sync_pod(p);
}

/* ------------------------------------------------------------ containers */

/* Thread pool: finds @image in the store, pulling it as the pull policy
 * says (cancelled when the pod goes away). On failure sets j->err,
 * j->image_reason and j->why. */
static int image_ensure(struct job *j, const char *image, const char *policy_field,
			struct rt_image **ret)
{
	struct pod *p = j->p;
	struct node_agent *a = p->np->a;
	struct rt *rt = p->np->rt;
	const char *policy = node_pull_policy(image, policy_field);
	struct rt_image *img = NULL;
	char *msg = NULL;
	int rv;

	j->image_missing = true;
	rv = rt_image_get(rt, image, &img);
	if (rv == -EINVAL) {
		j->image_reason = "InvalidImageName";
		snprintf(j->why, sizeof(j->why), "Failed to apply default image tag \"%s\": "
			 "couldn't parse image name", image);
		goto fail;
	}
	if (rv != 0 && rv != -ENOENT) {
		j->image_reason = "ErrImagePull";
		snprintf(j->why, sizeof(j->why), "image \"%s\" cannot be read: %s", image,
			 strerror(-rv));
		goto fail;
	}
	switch (node_pull_decide(policy, rv == 0,
				 node_registry_serves(a->registries, a->n_registries, image))) {
	case NODE_PULL_NO:
		break;
	case NODE_PULL_NEVER_MISSING:
		j->image_reason = "ErrImageNeverPull";
		snprintf(j->why, sizeof(j->why),
			 "Container image \"%s\" is not present with pull policy of Never", image);
		goto fail;
	case NODE_PULL_YES: {
		struct rt_pull_opts po = {
			.registries = a->registries,
			.n_registries = a->n_registries,
			.cancel = &p->pull_cancel,
		};
		rt_image_free(img);
		img = NULL;
		rv = rt_image_pull(rt, &po, image, NULL, &msg);
		if (rv != 0) {
			j->image_reason = rv == -EINVAL ? "InvalidImageName" : "ErrImagePull";
			if (msg != NULL)
				snprintf(j->why, sizeof(j->why), "%s", msg);
			else
				snprintf(j->why, sizeof(j->why), "failed to pull image \"%s\": %s",
					 image, strerror(-rv));
			free(msg);
			goto fail;
		}
		rv = rt_image_get(rt, image, &img);
		if (rv != 0) {
			j->image_reason = "ErrImagePull";
			snprintf(j->why, sizeof(j->why), "image \"%s\" pulled but not found: %s",
				 image, strerror(-rv));
			goto fail;
		}
		break;
	}
	}
	j->image_missing = false;
	*ret = img;
	return 0;
fail:
	j->err = rv != 0 ? rv : -ENOENT;
	rt_image_free(img);
	return j->err;
}

/* Thread pool: image, rootfs, bundle for container j->c of pod j->p. */
static void prepare_fn(struct job *j)
{
	struct pod *p = j->p;
	struct rt *rt = p->np->rt;
	const json_t *spec = NULL, *pspec = json_object_get(j->pod, "spec"), *c;
	const json_t *sc, *psc = json_object_get(pspec, "securityContext");
	struct rt_image *img = NULL;
	struct podspec_ctx x;
	struct rt_spec s;
	char **args = NULL, **env = NULL, **mstrs = NULL, *rootfs = NULL, *etc[3] = {0};
	struct rt_mount *mounts = NULL;
	size_t n_mounts = 0, i;
	const char *image, *cap_add[64] = {0}, *cap_drop[64] = {0};
	uint32_t uid = 0, gid = 0;
	char cgroups[300];
	int rv;

	/* Logs: the kubelet keeps the current run's and the previous one's. */
	if (j->c->restart_count >= 2) {
		char *old = pathf("%s/%s/%u.log", p->log_dir, j->c->name, j->c->restart_count - 2);
		for (i = 0; old != NULL && i < 10; i++) {
			char rotated[PATH_MAX];
			if (i == 0)
				snprintf(rotated, sizeof(rotated), "%s", old);
			else
				snprintf(rotated, sizeof(rotated), "%s.%zu", old, i);
			unlink(rotated);
		}
		free(old);
	}
	/* Find the container's spec in the private copy. */
	json_array_foreach (json_object_get(pspec, j->c->init ? "initContainers" : "containers"), i,
			    c)
		if (strcmp(podspec_or(str(c, "name"), ""), j->c->name) == 0)
			spec = c;
	image = str(spec, "image");
	if (spec == NULL || image == NULL) {
		j->err = -EINVAL;
		snprintf(j->why, sizeof(j->why), "no image");
		j->config_error = true;
		return;
	}
	rv = image_ensure(j, image, str(spec, "imagePullPolicy"), &img);
	if (rv != 0)
		return;
	podspec_ctx_of(j, &x);
	rv = podspec_env(&x, spec, img->env, &env, j->why, sizeof(j->why));
	if (rv == 0) {
		rv = podspec_args(spec, img->entrypoint, img->cmd, &args);
		if (rv != 0)
			snprintf(j->why, sizeof(j->why), "no command specified");
	}
	if (rv == 0)
		rv = podspec_mounts(&x, spec, &mounts, &n_mounts, &mstrs, j->why, sizeof(j->why));
	if (rv != 0) {
		j->err = rv;
		j->config_error = true;
		goto out;
	}
	rv = rt_rootfs_create(rt, img, j->id, &rootfs);
	if (rv != 0) {
		j->err = rv;
		snprintf(j->why, sizeof(j->why), "cannot create the root filesystem: %s",
			 strerror(-rv));
		goto out;
	}
	sc = json_object_get(spec, "securityContext");
	if (json_is_integer(json_object_get(sc, "runAsUser")) ||
	    json_is_integer(json_object_get(psc, "runAsUser"))) {
		const json_t *u = json_object_get(sc, "runAsUser");
		const json_t *g = json_object_get(sc, "runAsGroup");
		if (u == NULL)
			u = json_object_get(psc, "runAsUser");
		if (g == NULL)
			g = json_object_get(psc, "runAsGroup");
		uid = (uint32_t)json_integer_value(u);
		gid = g != NULL ? (uint32_t)json_integer_value(g) : uid;
	} else if (img->user != NULL && img->user[0] != '\0') {
		rv = rt_image_user(rootfs, img->user, &uid, &gid);
		if (rv != 0) {
			j->err = rv;
			j->config_error = true;
			snprintf(j->why, sizeof(j->why), "unknown user %s", img->user);
			goto out;
		}
	}
	json_array_foreach (json_object_get(json_object_get(sc, "capabilities"), "add"), i, c)
		if (i < 63)
			cap_add[i] = json_string_value(c);
	json_array_foreach (json_object_get(json_object_get(sc, "capabilities"), "drop"), i, c)
		if (i < 63)
			cap_drop[i] = json_string_value(c);
	etc[0] = pathf("%s/etc-hosts", p->pod_dir);
	etc[1] = pathf("%s/etc-hostname", p->pod_dir);
	etc[2] = strdup("/etc/resolv.conf");
	memset(&s, 0, sizeof(s));
	s.args = (const char *const *)args;
	s.env = (const char *const *)env;
	s.cwd = podspec_or(str(spec, "workingDir"), img->working_dir);
	s.uid = uid;
	s.gid = gid;
	s.privileged = json_is_true(json_object_get(sc, "privileged"));
	s.cap_add = cap_add;
	s.cap_drop = cap_drop;
	s.allow_privilege_escalation =
		!json_is_false(json_object_get(sc, "allowPrivilegeEscalation"));
	s.readonly_rootfs = json_is_true(json_object_get(sc, "readOnlyRootFilesystem"));
	s.hostname = p->name;
	s.net = j->sb.net_path ? (struct rt_ns){RT_NS_PATH, j->sb.net_path}
			       : (struct rt_ns){RT_NS_HOST, NULL};
	s.uts = j->sb.uts_path ? (struct rt_ns){RT_NS_PATH, j->sb.uts_path}
			       : (struct rt_ns){RT_NS_HOST, NULL};
	s.ipc = j->sb.ipc_path ? (struct rt_ns){RT_NS_PATH, j->sb.ipc_path}
			       : (struct rt_ns){RT_NS_HOST, NULL};
	s.mounts = mounts;
	s.n_mounts = n_mounts;
	s.hosts_file = p->host_network ? NULL : etc[0];
	s.hostname_file = etc[1];
	s.resolv_file = access("/etc/resolv.conf", R_OK) == 0 ? etc[2] : NULL;
	snprintf(cgroups, sizeof(cgroups), "/capstan/%s/%s", p->uid, j->c->name);
	s.cgroups_path = cgroups;
	podspec_resources(spec, &s.cpu_request_milli, &s.cpu_limit_milli, &s.memory_limit);
	rv = rt_bundle_write(rt, j->id, &s);
	if (rv != 0) {
		j->err = rv;
		j->config_error = rv == -EINVAL;
		snprintf(j->why, sizeof(j->why), "cannot write the OCI bundle: %s", strerror(-rv));
	}
out:
	for (i = 0; i < 3; i++)
		free(etc[i]);
	free(rootfs);
	free(mounts);
	node_strv_free(mstrs);
	node_strv_free(args);
	node_strv_free(env);
	rt_image_free(img);
}

static void backoff_after_failure(struct pod *p, struct ctr *c)
{
	const struct node_config *cfg = p->np->a->cfg;

	if (c->backoff_ms == 0)
		c->backoff_ms = cfg->backoff_base_ms;
	else if (c->backoff_ms * 2 <= cfg->backoff_max_ms)
		c->backoff_ms *= 2;
	else
		c->backoff_ms = cfg->backoff_max_ms;
	c->due_ms = now_ms(p->np) + c->backoff_ms;
}

static void start_cb(void *data, int err, const char *msg)
{
	struct job *j = data;
	struct pod *p = j->p;
	struct ctr *c = j->c;

	if (pod_drop(p) || err == -ECANCELED) {
		free(j->log_path);
		free(j);
		return;
	}
	p->busy = false;
	if (err == 0 && c->state == CTR_TERMINATED) {
		/* Its exit came first (a short-lived container). */
		c->ever_ran = true;
	} else if (err == 0) {
		c->state = CTR_RUNNING;
		c->ever_ran = true;
		c->pull_failed = false;
		c->pull_backoff_ms = 0;
		c->started_ns = wall_ns();
		probes_reset(p, c);
		c->waiting_reason[0] = c->waiting_msg[0] = '\0';
		log_info("pod %s/%s: container %s started (%s)", p->ns, p->name, c->name, c->id);
	} else {
		/* The shim wrote an exit file (code 128): the exit watch will
		 * report it, but do not wait for it. */
		c->state = CTR_WAITING;
		snprintf(c->waiting_reason, sizeof(c->waiting_reason), "RunContainerError");
		snprintf(c->waiting_msg, sizeof(c->waiting_msg), "%s",
			 msg != NULL ? msg : strerror(-err));
		log_warn("pod %s/%s: container %s did not start: %s", p->ns, p->name, c->name,
			 c->waiting_msg);
		c->restart_count++;
		backoff_after_failure(p, c);
		wake_at(p, c->due_ms);
	}
	free(j->log_path);
	free(j);
	sync_pod(p);
}

static void prepare_done(struct job *j)
{
	struct pod *p = j->p;
	struct ctr *c = j->c;
	struct job *sj;
	int rv;

	if (j->err != 0 || p->deleting || p->np->stopping) {
		p->busy = false;
		if (j->err != 0) {
			c->state = CTR_WAITING;
			if (j->image_missing) {
				const struct node_config *cfg = p->np->a->cfg;
				snprintf(c->waiting_reason, sizeof(c->waiting_reason), "%s",
					 j->image_reason != NULL ? j->image_reason : "ErrImagePull");
				snprintf(c->waiting_msg, sizeof(c->waiting_msg), "%s", j->why);
				c->id[0] = '\0';
				if (c->pull_backoff_ms == 0)
					c->pull_backoff_ms = cfg->backoff_base_ms;
				else
					c->pull_backoff_ms = c->pull_backoff_ms * 2 <= cfg->backoff_max_ms
								     ? c->pull_backoff_ms * 2
								     : cfg->backoff_max_ms;
				c->pull_failed = true;
				c->pull_failed_ms = now_ms(p->np);
				c->due_ms = c->pull_failed_ms + c->pull_backoff_ms;
				wake_at(p, c->pull_failed_ms + PULL_ERR_SHOW_MS);
				if (!p->deleting)
					log_warn("pod %s/%s: container %s: %s: %s", p->ns, p->name,
						 c->name, c->waiting_reason, j->why);
				sync_pod(p);
				return;
			} else {
				snprintf(c->waiting_reason, sizeof(c->waiting_reason), "%s",
					 j->config_error ? "CreateContainerConfigError"
							 : "CreateContainerError");
			}
			snprintf(c->waiting_msg, sizeof(c->waiting_msg), "%s", j->why);
			c->id[0] = '\0';
			backoff_after_failure(p, c);
			wake_at(p, c->due_ms);
			log_warn("pod %s/%s: container %s: %s: %s", p->ns, p->name, c->name,
				 c->waiting_reason, j->why);
		}
		sync_pod(p);
		return;
	}
	/* The job frees itself after done(): hand a copy to the start. */
	sj = job_new();
	if (sj == NULL) {
		p->busy = false;
		wake_at(p, now_ms(p->np) + RETRY_MS);
		return;
	}
	sj->p = p;
	sj->c = c;
	sj->log_path = j->log_path;
	j->log_path = NULL;
	snprintf(c->id, sizeof(c->id), "%s", j->id);
	rv = rt_container_start(p->np->rt, j->id, sj->log_path, start_cb, sj);
	if (rv != 0) {
		free(sj->log_path);
		free(sj);
		p->busy = false;
		c->state = CTR_WAITING;
		snprintf(c->waiting_reason, sizeof(c->waiting_reason), "RunContainerError");
		snprintf(c->waiting_msg, sizeof(c->waiting_msg), "%s", strerror(-rv));
		backoff_after_failure(p, c);
		wake_at(p, c->due_ms);
		return;
	}
	pod_hold(p);
}

/* Removes the previous run's runc container and directory (keeping its
 * log file), then prepares and starts the next run. */
static void old_removed_fn(struct job *j)
{
	rt_container_dir_remove(j->p->np->rt, j->id);
}

static void start_container(struct pod *p, struct ctr *c);

static void old_removed_done(struct job *j)
{
	struct pod *p = j->p;

	j->c->id[0] = '\0';
	p->busy = false;
	if (!p->deleting && !p->np->stopping)
		start_container(p, j->c);
}

static void old_deleted_cb(void *data, int err, const char *msg)
{
	struct job *j = data;
	struct pod *p = j->p;

	(void)msg;
	if (pod_drop(p)) {
		free(j);
		return;
	}
	if (err == -ECANCELED || job_run(p, old_removed_fn, old_removed_done, j) != 0) {
		p->busy = false;
		free(j);
	}
}

static void start_container(struct pod *p, struct ctr *c)
{
	struct job *j = job_new();
	int rv;

	if (j == NULL)
		return;
	p->busy = true;
	j->p = p;
	j->c = c;
	if (c->id[0] != '\0') {
		snprintf(j->id, sizeof(j->id), "%s", c->id);
		if (rt_container_delete(p->np->rt, c->id, true, old_deleted_cb, j) == 0) {
			pod_hold(p);
			return;
		}
		c->id[0] = '\0';
	}
	rv = rt_container_id(j->id, sizeof(j->id), p->uid, c->name, c->restart_count);
	j->pod = job_pod(p);
	j->log_path = pathf("%s/%s/%u.log", p->log_dir, c->name, c->restart_count);
	snprintf(j->ip, sizeof(j->ip), "%s", p->ip);
	if (rv == 0 && (j->pod == NULL || j->log_path == NULL))
		rv = -ENOMEM;
	if (rv == 0) {
		char *dir = pathf("%s/%s", p->log_dir, c->name);
		mkdir(dir, 0755); /* small and rare; keeps the job simple */
		free(dir);
		j->sb.net_path = p->host_network ? NULL : pathf("%s/netns/%s", rt_run_dir(p->np->rt), p->uid);
		j->sb.uts_path = p->host_network ? NULL : pathf("%s/utsns/%s", rt_run_dir(p->np->rt), p->uid);
		j->sb.ipc_path =
			json_is_true(json_object_get(json_object_get(p->obj, "spec"), "hostIPC"))
				? NULL
				: pathf("%s/ipcns/%s", rt_run_dir(p->np->rt), p->uid);
		rv = job_run(p, prepare_fn, prepare_done, j);
	}
	if (rv != 0) {
		p->busy = false;
		json_decref(j->pod);
		free(j->log_path);
		rt_sandbox_clear(&j->sb);
		free(j);
		c->state = CTR_WAITING;
		snprintf(c->waiting_reason, sizeof(c->waiting_reason), "CreateContainerError");
		snprintf(c->waiting_msg, sizeof(c->waiting_msg), "%s", strerror(-rv));
		backoff_after_failure(p, c);
		wake_at(p, c->due_ms);
		return;
	}
	c->state = CTR_WAITING;
	if (c->waiting_reason[0] == '\0' || strcmp(c->waiting_reason, "CrashLoopBackOff") == 0)
		snprintf(c->waiting_reason, sizeof(c->waiting_reason), "ContainerCreating");
}

/* May @c (terminated or waiting) start now? Sets CrashLoopBackOff while it
 * waits. */
static bool may_start(struct pod *p, struct ctr *c)
{
	const char *policy = restart_policy(p);
	uint64_t now = now_ms(p->np);

	if (c->state == CTR_RUNNING)
		return false;
	if (c->state == CTR_TERMINATED && c->waiting_reason[0] == '\0') {
		/* Exited: restart? Init containers restart unless Never. */
		bool restart = strcmp(policy, "Always") == 0 ||
			       (strcmp(policy, "OnFailure") == 0 && c->exit_code != 0) ||
			       (c->init && strcmp(policy, "Never") != 0 && c->exit_code != 0);
		if (c->init && c->exit_code == 0)
			restart = false;
		if (!restart)
			return false;
		c->restart_count++;
		snprintf(c->waiting_reason, sizeof(c->waiting_reason), "CrashLoopBackOff");
		snprintf(c->waiting_msg, sizeof(c->waiting_msg), "back-off %" PRIu64
			 "ms restarting failed container=%s pod=%.60s_%.40s(%.36s)",
			 c->backoff_ms, c->name, p->name, p->ns, p->uid);
	}
	if (c->pull_failed && strcmp(c->waiting_reason, "ErrImagePull") == 0 && now < c->due_ms) {
		if (now >= c->pull_failed_ms + PULL_ERR_SHOW_MS) {
			const char *image = str(ctr_spec(p, c), "image");
			snprintf(c->waiting_reason, sizeof(c->waiting_reason), "ImagePullBackOff");
			snprintf(c->waiting_msg, sizeof(c->waiting_msg),
				 "Back-off pulling image \"%.200s\"", image != NULL ? image : "");
		} else {
			wake_at(p, c->pull_failed_ms + PULL_ERR_SHOW_MS);
		}
	}
	if (now < c->due_ms) {
		wake_at(p, c->due_ms);
		return false;
	}
	return true;
}

/* ------------------------------------------------------------ exits */

static void exit_fn(struct job *j)
{
	j->err = rt_exit_read(j->p->np->rt, j->id, &j->ex);
	if (j->err == -ENOENT && !rt_shim_alive(j->p->np->rt, j->id)) {
		/* Died with its exit code lost. */
		memset(&j->ex, 0, sizeof(j->ex));
		j->ex.exit_code = 137;
		snprintf(j->ex.error, sizeof(j->ex.error), "exit code unknown");
		j->err = 0;
	}
}

static void exit_done(struct job *j)
{
	struct pod *p = j->p;
	struct ctr *c = j->c;
	char t1[40], t2[40];
	uint64_t ran_ms;

	if (j->err != 0 || strcmp(c->id, j->id) != 0 || c->state == CTR_TERMINATED) {
		if (!p->freed)
			sync_pod(p);
		return;
	}
	c->state = CTR_TERMINATED;
	c->exit_code = j->ex.exit_code;
	c->signal = j->ex.signal;
	if (j->ex.started_at != 0)
		c->started_ns = j->ex.started_at;
	c->finished_ns = j->ex.finished_at != 0 ? j->ex.finished_at : wall_ns();
	snprintf(c->reason, sizeof(c->reason), "%s",
		 j->ex.oom_killed	  ? "OOMKilled"
		 : j->ex.exit_code == 0 ? "Completed"
					: "Error");
	snprintf(c->message, sizeof(c->message), "%s", j->ex.error);
	c->waiting_reason[0] = c->waiting_msg[0] = '\0';
	log_info("pod %s/%s: container %s exited with %d", p->ns, p->name, c->name, c->exit_code);
	time_str(c->started_ns, t1, sizeof(t1));
	time_str(c->finished_ns, t2, sizeof(t2));
	json_decref(c->last_state);
	c->last_state = json_pack("{s:{s:i, s:s, s:s, s:s, s:s}}", "terminated", "exitCode",
				  c->exit_code, "reason", c->reason, "startedAt", t1, "finishedAt",
				  t2, "containerID", "");
	if (c->last_state != NULL) {
		char cid[220];
		snprintf(cid, sizeof(cid), "runc://%s", c->id);
		json_object_set_new(json_object_get(c->last_state, "terminated"), "containerID",
				    json_string(cid));
	}
	/* Back-off: a long healthy run forgets earlier crashes; otherwise the
	 * first restart is at once and the next ones wait base, 2*base... */
	ran_ms = (uint64_t)((c->finished_ns - c->started_ns) / 1000000);
	if (ran_ms >= MIN_RESET_RUN_MS)
		c->backoff_ms = 0;
	if (c->restart_count == 0 && c->backoff_ms == 0)
		c->due_ms = now_ms(p->np);
	else
		backoff_after_failure(p, c);
	sync_pod(p);
}

static void exit_event(struct node_pods *np, const char *id)
{
	char uid[37], name[64];
	unsigned restart;
	struct pod *p;
	struct ctr *c;
	struct job *j;

	if (rt_container_id_parse(id, uid, name, &restart) != 0)
		return;
	p = pod_find(np, uid);
	c = p != NULL ? ctr_find(p, name) : NULL;
	if (c == NULL || strcmp(c->id, id) != 0)
		return;
	j = job_new();
	if (j == NULL)
		return;
	j->c = c;
	snprintf(j->id, sizeof(j->id), "%s", id);
	if (job_run(p, exit_fn, exit_done, j) != 0)
		free(j);
}

static void exit_cb(void *data, const char *id)
{
	exit_event(data, id);
}

/* ------------------------------------------------------------ deletion */

static void kill_cb(void *data, int err, const char *msg)
{
	struct pod *p = data;

	(void)err;
	(void)msg;
	pod_drop(p);
}

static void signal_all(struct pod *p, int sig)
{
	size_t i;

	for (i = 0; i < p->n_ctrs; i++) {
		struct ctr *c = &p->ctrs[i];
		if (c->state != CTR_RUNNING || c->id[0] == '\0')
			continue;
		if (rt_container_kill(p->np->rt, c->id, sig, true, kill_cb, p) == 0)
			pod_hold(p);
	}
}

static void cleanup_step(struct pod *p);

static void cleanup_delete_cb(void *data, int err, const char *msg)
{
	struct pod *p = data;

	(void)err;
	(void)msg;
	if (pod_drop(p))
		return;
	p->busy = false;
	p->cleanup_idx++;
	cleanup_step(p);
}

static void cleanup_cni_cb(void *data, int err, const char *ip, const char *msg)
{
	struct pod *p = data;

	(void)ip;
	if (err != 0 && err != -ECANCELED)
		log_warn("pod %s/%s: CNI DEL: %s", p->ns, p->name,
			 msg != NULL ? msg : strerror(-err));
	if (pod_drop(p))
		return;
	p->busy = false;
	p->cleanup_step++;
	cleanup_step(p);
}

static void cleanup_fs_fn(struct job *j)
{
	struct pod *p = j->p;
	size_t i;
	char id[200];
	unsigned r;

	for (i = 0; i < p->n_ctrs; i++)
		for (r = 0; r <= p->ctrs[i].restart_count; r++)
			if (rt_container_id(id, sizeof(id), p->uid, p->ctrs[i].name, r) == 0)
				rt_container_dir_remove(p->np->rt, id);
	rt_sandbox_ns_remove(p->np->rt, p->uid);
	/* The pod directory (volumes, hosts files) and its logs. */
	node__rm_rf(p->pod_dir);
	if (!p->gone || p->obj != NULL)
		node__rm_rf(p->log_dir);
}

static void cleanup_fs_done(struct job *j)
{
	struct pod *p = j->p;

	p->busy = false;
	p->cleanup_step++;
	if (!p->np->stopping)
		cleanup_step(p);
}

static void api_delete_cb(void *data, int err, const struct kclient_response *res)
{
	struct pod *p = data;

	if (pod_drop(p))
		return;
	p->busy = false;
	if (err == -ECANCELED)
		return;
	if (err == 0 && (res->status == 200 || res->status == 404 || res->status == 409)) {
		log_info("pod %s/%s: deleted", p->ns, p->name);
		pod_free(p);
	} else {
		wake_at(p, now_ms(p->np) + RETRY_MS);
	}
}

/* Steps: 0 runc delete each container, 1 CNI DEL, 2 files, 3 API. */
static void cleanup_step(struct pod *p)
{
	struct job *j;
	char path[640];
	json_t *body;

	if (p->busy || p->freed)
		return;
	if (p->cleanup_step == 0) {
		while (p->cleanup_idx < p->n_ctrs && p->ctrs[p->cleanup_idx].id[0] == '\0')
			p->cleanup_idx++;
		if (p->cleanup_idx < p->n_ctrs) {
			if (rt_container_delete(p->np->rt, p->ctrs[p->cleanup_idx].id, true,
						cleanup_delete_cb, p) == 0) {
				pod_hold(p);
				p->busy = true;
			} else {
				p->cleanup_idx++;
				cleanup_step(p);
			}
			return;
		}
		p->cleanup_step = 1;
	}
	if (p->cleanup_step == 1) {
		char *netns = pathf("%s/netns/%s", rt_run_dir(p->np->rt), p->uid);
		if (!p->host_network &&
		    rt_cni_del(p->np->rt, p->uid, netns, cleanup_cni_cb, p) == 0) {
			pod_hold(p);
			p->busy = true;
			free(netns);
			return;
		}
		free(netns);
		p->cleanup_step = 2;
	}
	if (p->cleanup_step == 2) {
		if (p->tok_writing)
			return; /* its done callback syncs again */
		j = job_new();
		if (j != NULL && job_run(p, cleanup_fs_fn, cleanup_fs_done, j) == 0) {
			p->busy = true;
			return;
		}
		free(j);
		p->cleanup_step = 3;
	}
	if (p->gone) {
		log_info("pod %s/%s: cleaned up", p->ns, p->name);
		pod_free(p);
		return;
	}
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", p->ns, p->name);
	body = json_pack("{s:s, s:s, s:i, s:{s:s}}", "kind", "DeleteOptions", "apiVersion", "v1",
			 "gracePeriodSeconds", 0, "preconditions", "uid", p->uid);
	if (kclient_request(p->np->a->kc, "DELETE", path, body, NULL, api_delete_cb, p) == 0) {
		pod_hold(p);
		p->busy = true;
	} else {
		wake_at(p, now_ms(p->np) + RETRY_MS);
	}
	json_decref(body);
}

static void prestop_cb(void *data, bool ok, const char *msg)
{
	struct pod *p = data;

	if (pod_drop(p))
		return;
	if (!ok)
		log_warn("pod %s/%s: preStop hook failed: %s", p->ns, p->name,
			 msg != NULL ? msg : "failure");
	p->prestop_pending--;
	sync_pod(p);
}

/* Runs the preStop hooks (exec, httpGet, tcpSocket handlers) of the
 * running containers, all at once, each allowed until the grace period
 * ends; returns how many started. */
static unsigned prestop_start(struct pod *p)
{
	uint64_t now = now_ms(p->np);
	unsigned n = 0;
	size_t i;

	for (i = p->n_init; i < p->n_ctrs; i++) {
		struct ctr *c = &p->ctrs[i];
		const json_t *h = json_object_get(json_object_get(ctr_spec(p, c), "lifecycle"),
						  "preStop");
		json_t *probe;
		if (c->state != CTR_RUNNING || c->id[0] == '\0' || !json_is_object(h))
			continue;
		probe = json_deep_copy(h);
		if (probe == NULL)
			continue;
		json_object_set_new(probe, "timeoutSeconds",
				    json_integer(p->kill_at > now ? (json_int_t)((p->kill_at - now +
										   999) / 1000)
								  : 1));
		if (node_probe_run(p->np->a->loop, p->np->rt, probe, ctr_spec(p, c), c->id,
				   p->ip[0] ? p->ip : "127.0.0.1", prestop_cb, p) == 0) {
			pod_hold(p);
			n++;
			log_info("pod %s/%s: running the preStop hook of %s", p->ns, p->name, c->name);
		}
		json_decref(probe);
	}
	return n;
}

static void terminate(struct pod *p)
{
	bool running = false;
	size_t i;

	for (i = 0; i < p->n_ctrs; i++)
		if (p->ctrs[i].state == CTR_RUNNING)
			running = true;
	if (running) {
		uint64_t now = now_ms(p->np);
		if (!p->prestop_started && now < p->kill_at) {
			p->prestop_started = true;
			p->prestop_pending = prestop_start(p);
		}
		if (p->prestop_pending > 0 && now < p->kill_at && !p->term_sent) {
			/* SIGTERM once the hooks are done (or the grace ends). */
			wake_at(p, p->kill_at);
			maybe_write_status(p);
			return;
		}
		if (!p->term_sent) {
			p->term_sent = true;
			log_info("pod %s/%s: stopping (grace %" PRIu64 " ms)", p->ns, p->name,
				 p->kill_at > now ? p->kill_at - now : 0);
			signal_all(p, p->kill_at > now ? SIGTERM : SIGKILL);
		}
		if (now >= p->kill_at && !p->kill_sent) {
			p->kill_sent = true;
			signal_all(p, SIGKILL);
		}
		if (!p->kill_sent)
			wake_at(p, p->kill_at);
		else
			wake_at(p, now + 1000); /* exits come by the watch; poll too */
		maybe_write_status(p);
		return;
	}
	cleanup_step(p);
}

/* ------------------------------------------------------------ probes */

static const char *const probe_keys[3] = {"startupProbe", "livenessProbe", "readinessProbe"};
static const char *const probe_names[3] = {"Startup", "Liveness", "Readiness"};

static const json_t *probe_of(struct pod *p, struct ctr *c, int k)
{
	const json_t *pr = json_object_get(ctr_spec(p, c), probe_keys[k]);

	return json_is_object(pr) ? pr : NULL;
}

/* A new run of @c: probes start over after their initial delays. */
static void probes_reset(struct pod *p, struct ctr *c)
{
	struct node_probe_timing t;
	int k;

	for (k = 0; k < 3; k++) {
		const json_t *pr = probe_of(p, c, k);
		node_probe_timing(pr, &t);
		c->probes[k].next_ms = now_ms(p->np) + t.initial_delay_ms;
		c->probes[k].ok_n = c->probes[k].fail_n = 0;
	}
	c->started_ok = c->init || probe_of(p, c, 0) == NULL;
	c->ready_ok = c->init || probe_of(p, c, 2) == NULL;
}

struct probe_req {
	struct pod *p;
	struct ctr *c;
	int k;
	char id[200];
};

static void probe_done_cb(void *data, bool ok, const char *msg)
{
	struct probe_req *r = data;
	struct pod *p = r->p;
	struct ctr *c = r->c;
	struct node_probe_timing t;
	int k = r->k;

	if (pod_drop(p)) {
		free(r);
		return;
	}
	c->probes[k].running = false;
	if (strcmp(c->id, r->id) != 0 || c->state != CTR_RUNNING || p->deleting) {
		free(r);
		return;
	}
	free(r);
	node_probe_timing(probe_of(p, c, k), &t);
	c->probes[k].next_ms = now_ms(p->np) + t.period_ms;
	if (ok) {
		c->probes[k].ok_n++;
		c->probes[k].fail_n = 0;
	} else {
		c->probes[k].fail_n++;
		c->probes[k].ok_n = 0;
		log_info("pod %s/%s: %s probe of %s failed: %s", p->ns, p->name, probe_names[k],
			 c->name, msg != NULL ? msg : "failure");
	}
	if (k == 2) {
		if (c->probes[k].ok_n >= t.success_threshold)
			c->ready_ok = true;
		else if (c->probes[k].fail_n >= t.failure_threshold)
			c->ready_ok = false;
	} else if (k == 0 && c->probes[k].ok_n >= t.success_threshold) {
		c->started_ok = true;
		c->probes[1].next_ms = c->probes[2].next_ms = now_ms(p->np);
	} else if (c->probes[k].fail_n >= t.failure_threshold) {
		/* Liveness (or startup) failed: the kubelet kills the container
		 * and the restart policy decides what follows. */
		log_info("pod %s/%s: container %s failed its %s probe, will be restarted", p->ns,
			 p->name, c->name, probe_names[k]);
		c->probes[k].next_ms = UINT64_MAX;
		if (rt_container_kill(p->np->rt, c->id, SIGKILL, true, kill_cb, p) == 0)
			pod_hold(p);
	}
	sync_pod(p);
}

static void probes_tick(struct pod *p)
{
	uint64_t now = now_ms(p->np), next = UINT64_MAX;
	size_t i;
	int k;

	for (i = p->n_init; i < p->n_ctrs; i++) {
		struct ctr *c = &p->ctrs[i];
		if (c->state != CTR_RUNNING || c->id[0] == '\0')
			continue;
		for (k = 0; k < 3; k++) {
			const json_t *pr = probe_of(p, c, k);
			struct probe_req *r;
			if (pr == NULL || c->probes[k].running || (k == 0 && c->started_ok) ||
			    (k > 0 && !c->started_ok))
				continue;
			if (c->probes[k].next_ms > now) {
				if (c->probes[k].next_ms < next)
					next = c->probes[k].next_ms;
				continue;
			}
			r = calloc(1, sizeof(*r));
			if (r == NULL)
				continue;
			r->p = p;
			r->c = c;
			r->k = k;
			snprintf(r->id, sizeof(r->id), "%s", c->id);
			if (node_probe_run(p->np->a->loop, p->np->rt, pr, ctr_spec(p, c), c->id,
					   p->ip[0] ? p->ip : "127.0.0.1", probe_done_cb, r) == 0) {
				c->probes[k].running = true;
				pod_hold(p);
			} else {
				free(r);
				c->probes[k].next_ms = now + 1000;
			}
		}
	}
	if (next != UINT64_MAX)
		wake_at(p, next);
}

/* ------------------------------------------------------------ sync */

static void sync_pod(struct pod *p)
{
	struct node_pods *np = p->np;
	struct job *j;
	size_t i;

	if (p->freed || np->stopping)
		return;
	if (p->busy) {
		p->dirty = true;
		return;
	}
	p->dirty = false;
	if (p->deleting) {
		terminate(p);
		return;
	}
	if (!p->sandbox_ok) {
		j = job_new();
		if (j == NULL)
			return;
		j->pod = json_deep_copy(p->obj);
		if (job_run(p, sandbox_fn, sandbox_done, j) == 0)
			p->busy = true;
		else {
			json_decref(j->pod);
			free(j);
		}
		goto status;
	}
	if (!p->net_ok) {
		char *netns = pathf("%s/netns/%s", rt_run_dir(np->rt), p->uid);
		if (netns != NULL && rt_cni_add(np->rt, p->uid, netns, cni_add_cb, p) == 0) {
			pod_hold(p);
			p->busy = true;
		} else {
			wake_at(p, now_ms(np) + RETRY_MS);
		}
		free(netns);
		goto status;
	}
	if (!p->objects_ok) {
		fetch_objects(p);
		if (!p->objects_ok)
			goto status;
	}
	if (!p->volumes_ok) {
		j = job_new();
		if (j == NULL)
			return;
		j->pod = job_pod(p);
		if (j->pod != NULL && job_run(p, volumes_fn, volumes_done, j) == 0)
			p->busy = true;
		else {
			json_decref(j->pod);
			free(j);
		}
		goto status;
	}
	/* Init containers, in order, each to success. */
	for (i = 0; i < p->n_init; i++) {
		struct ctr *c = &p->ctrs[i];
		if (c->state == CTR_TERMINATED && c->exit_code == 0 && c->waiting_reason[0] == '\0')
			continue;
		if (c->state == CTR_RUNNING)
			goto status;
		if (c->state == CTR_TERMINATED && c->waiting_reason[0] == '\0' &&
		    strcmp(restart_policy(p), "Never") == 0) {
			p->failed_phase = true;
			goto status;
		}
		if (may_start(p, c))
			start_container(p, c);
		goto status;
	}
	for (i = p->n_init; i < p->n_ctrs && !p->busy; i++) {
		struct ctr *c = &p->ctrs[i];
		if (c->state == CTR_RUNNING)
			continue;
		if (may_start(p, c))
			start_container(p, c);
	}
status:
	probes_tick(p);
	tokens_tick(p);
	maybe_write_status(p);
}

/* ------------------------------------------------------------ API events */

static void pod_event(struct node_pods *np, const char *type, json_t *obj)
{
	const char *uid = str(obj, "metadata.uid");
	struct pod *p;

	if (uid == NULL)
		return;
	p = pod_find(np, uid);
	if (strcmp(type, "DELETED") == 0) {
		if (p != NULL) {
			p->gone = true;
			set_deleting(p);
			sync_pod(p);
		}
		return;
	}
	if (p == NULL) {
		const char *phase = str(obj, "status.phase");
		/* A finished pod from before a restart: nothing to run. */
		if (phase != NULL && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0) &&
		    json_object_get(json_object_get(obj, "metadata"), "deletionTimestamp") == NULL)
			return;
		p = pod_new(np, obj);
		if (p == NULL)
			return;
		log_info("pod %s/%s: new (uid %s)", p->ns, p->name, p->uid);
	} else {
		json_decref(p->obj);
		p->obj = json_deep_copy(obj);
	}
	if (json_object_get(json_object_get(obj, "metadata"), "deletionTimestamp") != NULL)
		set_deleting(p);
	if (np->started)
		sync_pod(p);
}

static void watch_event_cb(void *data, const char *type, json_t *obj)
{
	struct node_pods *np = data;

	if (strcmp(type, "ADDED") == 0 || strcmp(type, "MODIFIED") == 0 ||
	    strcmp(type, "DELETED") == 0)
		pod_event(np, type, obj);
}

static void list_cb(void *data, int err, const struct kclient_response *res);
static void relist_timer_cb(uv_timer_t *t);

static void relist(struct node_pods *np)
{
	if (kclient_request(np->a->kc, "GET", np->list_path, NULL, NULL, list_cb, np) == 0)
		np->pending++;
	else
		uv_timer_start(&np->relist_timer, relist_timer_cb, RETRY_MS, 0);
}

static void relist_cb(void *data)
{
	relist(data);
}

static void adopt(struct node_pods *np);

static void relist_timer_cb(uv_timer_t *t)
{
	relist(t->data);
}

static void list_cb(void *data, int err, const struct kclient_response *res)
{
	struct node_pods *np = data;
	const json_t *item;
	struct pod *p, *next;
	json_t *seen;
	const char *rv;
	size_t i;

	np->pending--;
	if (err == -ECANCELED || np->stopping) {
		maybe_finish_stop(np);
		return;
	}
	if (err != 0 || res->status != 200 || res->body == NULL) {
		log_warn("cannot list this node's pods: %s",
			 err ? strerror(-err) : podspec_or(res->raw, "?"));
		uv_timer_start(&np->relist_timer, relist_timer_cb, RETRY_MS, 0);
		return;
	}
	seen = json_object();
	json_array_foreach (json_object_get(res->body, "items"), i, item) {
		const char *uid = str(item, "metadata.uid");
		if (uid != NULL)
			json_object_set_new(seen, uid, json_true());
		pod_event(np, "ADDED", (json_t *)item);
	}
	/* Pods missing from the list were deleted while we did not watch. */
	for (p = LIST_FIRST(&np->pods); p != NULL; p = next) {
		next = LIST_NEXT(p, link);
		if (json_object_get(seen, p->uid) == NULL) {
			p->gone = true;
			set_deleting(p);
			if (np->started)
				sync_pod(p);
		}
	}
	json_decref(seen);
	rv = str(res->body, "metadata.resourceVersion");
	if (np->watch != NULL) {
		kclient_watch_resume(np->watch, rv);
		return;
	}
	if (kclient_watch(np->a->kc, np->list_path, rv, watch_event_cb, relist_cb, np,
			  &np->watch) != 0)
		log_error("cannot watch this node's pods");
	if (!np->started)
		adopt(np);
}

/* ------------------------------------------------------------ adoption */

struct adopt_job {
	struct job j; /* first */
	struct rt_state *states;
	size_t n;
	char **kill;   /* ids of containers to remove */
	char **orphan_sandboxes;
};

static void adopt_fn(struct job *j)
{
	struct adopt_job *aj = (struct adopt_job *)j;
	struct node_pods *np = j->p->np;
	size_t i;
	char **sbs = NULL;

	/* Exit files of stopped containers are read here; the loop applies
	 * them (the pod list is not touched off the loop). */
	for (i = 0; i < aj->n; i++) {
		struct rt_exit ex;
		if (aj->states[i].status != RT_STATUS_STOPPED)
			continue;
		if (rt_exit_read(np->rt, aj->states[i].id, &ex) == 0)
			aj->states[i].created = -(int64_t)ex.exit_code - 1; /* smuggled */
		else
			aj->states[i].created = -138; /* 137: lost */
	}
	if (rt_sandbox_list(np->rt, &sbs) == 0)
		aj->orphan_sandboxes = sbs;
}

static void orphan_deleted_cb(void *data, int err, const char *msg);

struct orphan {
	struct node_pods *np;
	char id[200];
	int step;
};

static void orphan_fs_fn(struct job *j)
{
	rt_container_dir_remove(j->p->np->rt, j->id);
}

static void orphan_fs_done(struct job *j)
{
	free(j->p); /* the fake pod holder */
}

static void orphan_deleted_cb(void *data, int err, const char *msg)
{
	struct orphan *o = data;
	struct node_pods *np = o->np;

	(void)err;
	(void)msg;
	np->pending--;
	if (o->step == 0) {
		o->step = 1;
		if (rt_container_delete(np->rt, o->id, true, orphan_deleted_cb, o) == 0) {
			np->pending++;
			return;
		}
	}
	{
		/* A pod-less job: a minimal holder gives it np. */
		struct pod *holder = calloc(1, sizeof(*holder));
		struct job *j = job_new();
		if (holder != NULL && j != NULL) {
			holder->np = np;
			snprintf(j->id, sizeof(j->id), "%s", o->id);
			if (job_run(holder, orphan_fs_fn, orphan_fs_done, j) == 0)
				holder = NULL, j = NULL;
		}
		free(holder);
		free(j);
	}
	free(o);
	maybe_finish_stop(np);
}

static void remove_orphan(struct node_pods *np, const char *id)
{
	struct orphan *o = calloc(1, sizeof(*o));

	if (o == NULL)
		return;
	o->np = np;
	snprintf(o->id, sizeof(o->id), "%s", id);
	log_info("removing container %s (its pod is gone)", id);
	if (rt_container_kill(np->rt, id, SIGKILL, true, orphan_deleted_cb, o) == 0)
		np->pending++;
	else
		free(o);
}

static void adopt_done(struct job *j)
{
	struct adopt_job *aj = (struct adopt_job *)j;
	struct node_pods *np = j->p->np;
	struct pod *p;
	size_t i;

	for (i = 0; i < aj->n; i++) {
		struct rt_state *s = &aj->states[i];
		char uid[37], name[64];
		unsigned restart;
		struct ctr *c;
		if (rt_container_id_parse(s->id, uid, name, &restart) != 0)
			continue; /* not ours */
		p = pod_find(np, uid);
		c = p != NULL ? ctr_find(p, name) : NULL;
		if (c == NULL || (p->deleting && p->gone)) {
			remove_orphan(np, s->id);
			continue;
		}
		if (c->id[0] != '\0' && restart < c->restart_count) {
			remove_orphan(np, s->id); /* an older run */
			continue;
		}
		if (c->id[0] != '\0')
			remove_orphan(np, c->id);
		snprintf(c->id, sizeof(c->id), "%s", s->id);
		c->restart_count = restart;
		c->ever_ran = true;
		c->waiting_reason[0] = '\0';
		if (s->status == RT_STATUS_RUNNING || s->status == RT_STATUS_CREATED) {
			c->state = CTR_RUNNING;
			c->started_ns = s->created > 0 ? s->created : wall_ns();
			probes_reset(p, c);
		} else {
			c->state = CTR_TERMINATED;
			c->exit_code = s->created < 0 ? (int)(-s->created - 1) : 137;
			c->started_ns = c->finished_ns = wall_ns();
			snprintf(c->reason, sizeof(c->reason), "%s",
				 c->exit_code == 0 ? "Completed" : "Error");
			c->due_ms = now_ms(np);
		}
		/* Adopted pods have their sandbox and network. */
		p->sandbox_ok = false; /* re-created idempotently, IP from the file */
		log_info("pod %s/%s: adopted container %s", p->ns, p->name, s->id);
	}
	/* Sandboxes of pods we do not know: CNI DEL and namespaces away. */
	for (i = 0; aj->orphan_sandboxes != NULL && aj->orphan_sandboxes[i] != NULL; i++) {
		const char *uid = aj->orphan_sandboxes[i];
		struct pod *holder;
		if (pod_find(np, uid) != NULL)
			continue;
		holder = calloc(1, sizeof(*holder));
		if (holder == NULL)
			continue;
		/* Run the full cleanup of a pod without containers. */
		holder->np = np;
		snprintf(holder->uid, sizeof(holder->uid), "%s", uid);
		snprintf(holder->ns, sizeof(holder->ns), "?");
		snprintf(holder->name, sizeof(holder->name), "%s", uid);
		holder->pod_dir = pathf("%s/pods/%s", np->a->cfg->state_dir, uid);
		holder->log_dir = pathf("%s/logs/unknown", np->a->cfg->state_dir);
		holder->gone = holder->deleting = true;
		holder->ctrs = calloc(1, sizeof(*holder->ctrs));
		uv_timer_init(np->a->loop, &holder->timer);
		holder->timer.data = holder;
		LIST_INSERT_HEAD(&np->pods, holder, link);
		log_info("removing the sandbox of pod %s (gone)", uid);
	}
	for (i = 0; i < aj->n; i++)
		rt_state_clear(&aj->states[i]);
	free(aj->states);
	rt_strv_free(aj->orphan_sandboxes);
	np->started = true;
	LIST_FOREACH(p, &np->pods, link)
		sync_pod(p);
	free(j->p); /* the holder of the job */
}

static void list_containers_cb(void *data, int err, const struct rt_state *states, size_t n)
{
	struct node_pods *np = data;
	struct adopt_job *aj = calloc(1, sizeof(*aj));
	struct pod *holder = calloc(1, sizeof(*holder));
	size_t i;

	np->pending--;
	if (aj == NULL || holder == NULL || np->stopping) {
		free(aj);
		free(holder);
		maybe_finish_stop(np);
		return;
	}
	if (err != 0)
		log_warn("runc list failed (%s): nothing adopted", strerror(-err));
	holder->np = np;
	aj->states = calloc(n + 1, sizeof(*aj->states));
	for (i = 0; err == 0 && aj->states != NULL && i < n; i++) {
		aj->states[aj->n].id = strdup(states[i].id);
		aj->states[aj->n].status = states[i].status;
		aj->states[aj->n].created = states[i].created;
		if (aj->states[aj->n].id != NULL)
			aj->n++;
	}
	if (job_run(holder, adopt_fn, adopt_done, &aj->j) != 0) {
		free(aj->states);
		free(aj);
		free(holder);
		np->started = true;
	}
}

static void adopt(struct node_pods *np)
{
	if (rt_container_list(np->rt, list_containers_cb, np) == 0)
		np->pending++;
	else
		np->started = true;
}

/* ------------------------------------------------------------ API */

int node_pods_start(struct node_agent *a, struct rt *rt, struct node_pods **ret)
{
	struct node_pods *np = calloc(1, sizeof(*np));
	int rv;

	if (np == NULL)
		return -ENOMEM;
	np->a = a;
	np->rt = rt;
	LIST_INIT(&np->pods);
	snprintf(np->list_path, sizeof(np->list_path),
		 "/api/v1/pods?fieldSelector=spec.nodeName%%3D%s", a->node_name);
	uv_timer_init(a->loop, &np->relist_timer);
	np->relist_timer.data = np;
	rv = rt_exit_watch(rt, exit_cb, np);
	if (rv != 0)
		log_warn("cannot watch container exits: %s", strerror(-rv));
	relist(np);
	*ret = np;
	return 0;
}

static void maybe_finish_stop(struct node_pods *np)
{
	void (*cb)(void *);

	if (!np->stopping || np->pending > 0 || np->stop_cb == NULL)
		return;
	cb = np->stop_cb;
	np->stop_cb = NULL;
	cb(np->stop_data);
}

static void relist_timer_closed_cb(uv_handle_t *h)
{
	struct node_pods *np = h->data;

	np->pending--;
	maybe_finish_stop(np);
}

void node_pods_stop(struct node_pods *np, void (*cb)(void *data), void *data)
{
	struct pod *p, *next;

	np->stopping = true;
	np->stop_cb = cb;
	np->stop_data = data;
	LIST_FOREACH(p, &np->pods, link)
		__atomic_store_n(&p->pull_cancel, 1, __ATOMIC_RELAXED);
	if (np->watch != NULL)
		kclient_watch_stop(np->watch);
	np->watch = NULL;
	rt_exit_watch(np->rt, NULL, NULL);
	for (p = LIST_FIRST(&np->pods); p != NULL; p = next) {
		next = LIST_NEXT(p, link);
		pod_free(p);
	}
	np->pending++;
	uv_close((uv_handle_t *)&np->relist_timer, relist_timer_closed_cb);
}

void node_pods_free(struct node_pods *np);
void node_pods_free(struct node_pods *np)
{
	free(np);
}

int node_pods_log_path(struct node_pods *np, const char *ns, const char *name,
		       const char *container, bool previous, char **ret_path)
{
	struct pod *p;
	struct ctr *c = NULL;
	char *path;

	LIST_FOREACH(p, &np->pods, link)
		if (strcmp(p->ns, ns) == 0 && strcmp(p->name, name) == 0)
			break;
	if (p == NULL)
		return -ENOENT;
	if (container == NULL || container[0] == '\0') {
		if (p->n_ctrs - p->n_init != 1)
			return -EINVAL;
		c = &p->ctrs[p->n_init];
	} else {
		c = ctr_find(p, container);
	}
	if (c == NULL)
		return -ENOENT;
	if (previous && c->restart_count == 0)
		return -ENOENT;
	path = pathf("%s/%s/%u.log", p->log_dir, c->name,
		     previous ? c->restart_count - 1 : c->restart_count);
	if (path == NULL)
		return -ENOMEM;
	*ret_path = path;
	return 0;
}

int node_pods_exec(struct node_pods *np, const char *ns, const char *name, const char *container,
		   const char *const *args, unsigned timeout_ms,
		   void (*cb)(void *data, int err, const struct rt_result *res), void *data)
{
	struct rt_exec_opts o;
	struct pod *p;
	struct ctr *c = NULL;

	LIST_FOREACH(p, &np->pods, link)
		if (strcmp(p->ns, ns) == 0 && strcmp(p->name, name) == 0)
			break;
	if (p == NULL || p->deleting)
		return -ENOENT;
	if (container == NULL || container[0] == '\0') {
		if (p->n_ctrs - p->n_init != 1)
			return -EINVAL;
		c = &p->ctrs[p->n_init];
	} else {
		c = ctr_find(p, container);
	}
	if (c == NULL || c->state != CTR_RUNNING || c->id[0] == '\0')
		return -ENOENT;
	memset(&o, 0, sizeof(o));
	o.args = args;
	return rt_exec(np->rt, c->id, &o, timeout_ms, cb, data);
}
