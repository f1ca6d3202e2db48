/* The controller manager on capstand's loop (see driver.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "src/ctrl/driver.h"
#include "src/lib/log.h"

/* Syncs per loop turn, in slices: at most SYNC_BUDGET syncs and, once
 * SYNC_TURN_NS have gone, no further slice, so that Raft's heartbeats and
 * the API keep their turn whatever one sync costs (a scheduler retrying
 * 10,000 pods, a controller with large objects). */
#define SYNC_BUDGET 1024
#define SYNC_SLICE 32
#define SYNC_TURN_NS (8 * 1000 * 1000)

struct ctrl_driver {
	uv_loop_t *loop;
	struct replica *replica;
	struct ctrl_manager *m;
	uv_timer_t timer; /* the earliest controller timer */
	/* Work queued: run at the next loop iteration, after I/O. (libuv
	 * 1.44 runs a 0 ms timer restarted from its own callback again in
	 * the same pass, without polling: the whole backlog ran in one
	 * turn and Raft's heartbeats waited for it.) */
	uv_idle_t idle;
	bool idle_on;
	int open_handles;
};

struct apply_req {
	struct replica_apply req;
	ctrl_write_cb cb;
	void *arg;
};

static uint64_t env_now(void *data)
{
	struct timespec ts;

	(void)data;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t env_random(void *data)
{
	uint64_t v = 0;

	(void)data;
	if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v)) {
		/* getrandom does not fail for 8 bytes once seeded. */
		v = env_now(NULL) * 0x9e3779b97f4a7c15ULL;
	}
	return v;
}

static void apply_cb(struct replica_apply *req, int status, const struct store_result *res)
{
	struct apply_req *a = req->data;

	a->cb(a->arg, status, res);
	free(a);
}

static int env_apply(void *data, const struct store_cmd *cmd, ctrl_write_cb cb, void *arg)
{
	struct ctrl_driver *d = data;
	struct apply_req *a = malloc(sizeof(*a));
	int rv;

	if (a == NULL)
		return -ENOMEM;
	a->cb = cb;
	a->arg = arg;
	a->req.data = a;
	rv = replica_apply(d->replica, &a->req, cmd, apply_cb);
	if (rv != 0)
		free(a);
	return rv;
}

static void timer_cb(uv_timer_t *t);
static void idle_cb(uv_idle_t *h);

static void arm(struct ctrl_driver *d, bool now)
{
	uint64_t next, wall;

	if (!ctrl_manager_running(d->m)) {
		uv_timer_stop(&d->timer);
		uv_idle_stop(&d->idle);
		d->idle_on = false;
		return;
	}
	if (now) {
		if (!d->idle_on)
			uv_idle_start(&d->idle, idle_cb);
		d->idle_on = true;
		return;
	}
	/* Work is queued: the idle run re-arms the timer when done. */
	if (d->idle_on)
		return;
	next = ctrl_manager_next(d->m);
	if (next == UINT64_MAX) {
		uv_timer_stop(&d->timer);
		return;
	}
	wall = env_now(NULL);
	uv_timer_start(&d->timer, timer_cb, next > wall ? next - wall : 0, 0);
}

/* One loop turn of controller work: slices of syncs until the budget or
 * the turn's time is spent. */
static void run(struct ctrl_driver *d)
{
	uint64_t start = uv_hrtime();
	unsigned done = 0;
	bool more;

	do {
		more = ctrl_manager_run(d->m, SYNC_SLICE);
		done += SYNC_SLICE;
	} while (more && done < SYNC_BUDGET && uv_hrtime() - start < SYNC_TURN_NS);
	if (more) {
		arm(d, true);
		return;
	}
	uv_idle_stop(&d->idle);
	d->idle_on = false;
	arm(d, false);
}

static void idle_cb(uv_idle_t *h)
{
	run(h->data);
}

static void timer_cb(uv_timer_t *t)
{
	run(t->data);
}

/* Called from store watch callbacks and enqueues: never run inline. */
static void env_wakeup(void *data)
{
	arm(data, true);
}

int ctrl_driver_new(uv_loop_t *loop, struct replica *replica, const struct ctrl_config *config,
		    const struct ctrl_ops *const *ops, struct ctrl_driver **ret)
{
	struct ctrl_driver *d = calloc(1, sizeof(*d));
	struct ctrl_env env = {0};
	int rv;

	if (d == NULL)
		return -ENOMEM;
	d->loop = loop;
	d->replica = replica;
	env.data = d;
	env.now_ms = env_now;
	env.random = env_random;
	env.apply = env_apply;
	env.wakeup = env_wakeup;
	rv = ctrl_manager_new(&env, config, replica_store(replica), ops != NULL ? ops : ctrl_all,
			      &d->m);
	if (rv != 0) {
		free(d);
		return rv;
	}
	uv_timer_init(loop, &d->timer);
	d->timer.data = d;
	uv_idle_init(loop, &d->idle);
	d->idle.data = d;
	d->open_handles = 2;
	*ret = d;
	return 0;
}

void ctrl_driver_leading(struct ctrl_driver *d, bool leading)
{
	int rv;

	if (!leading) {
		ctrl_manager_stop(d->m);
		uv_timer_stop(&d->timer);
		uv_idle_stop(&d->idle);
		d->idle_on = false;
		return;
	}
	rv = ctrl_manager_start(d->m);
	if (rv != 0) {
		log_error("cannot start the controllers: %s", strerror(-rv));
		return;
	}
	arm(d, true);
}

static void close_cb(uv_handle_t *h)
{
	struct ctrl_driver *d = h->data;

	if (--d->open_handles == 0)
		free(d);
}

void ctrl_driver_close(struct ctrl_driver *d)
{
	if (d == NULL)
		return;
	ctrl_manager_free(d->m);
	d->m = NULL;
	uv_close((uv_handle_t *)&d->timer, close_cb);
	uv_close((uv_handle_t *)&d->idle, close_cb);
}

struct ctrl_manager *ctrl_driver_manager(struct ctrl_driver *d)
{
	return d->m;
}
