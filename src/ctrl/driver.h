/* Runs the controller manager in capstand: on the daemon's libuv loop,
 * writing through the replica, started and stopped by leadership.
 * The only controller code that sees libuv, the clock and the replica. */
#ifndef CAPSTAN_CTRL_DRIVER_H
#define CAPSTAN_CTRL_DRIVER_H

#include <stdbool.h>

#include <uv.h>

#include "raft/replica.h"
#include "src/ctrl/ctrl.h"

struct ctrl_driver;

/* A driver for the controllers @ops (NULL-terminated, borrowed: it must
 * outlive the driver; NULL = every one of ctrl_all) on @replica's store.
 * @config copied. Errors: -ENOMEM. */
int ctrl_driver_new(uv_loop_t *loop, struct replica *replica, const struct ctrl_config *config,
		    const struct ctrl_ops *const *ops, struct ctrl_driver **ret);
/* Leadership events (from replica_on_leadership's callback): start once
 * this replica is the ready leader, stop the moment it is not. */
void ctrl_driver_leading(struct ctrl_driver *d, bool leading);
/* Stops the controllers and frees the driver (its timer handle closes
 * on the loop). Writes in flight complete into nothing. */
void ctrl_driver_close(struct ctrl_driver *d);
/* The manager (borrowed), for /metrics. */
struct ctrl_manager *ctrl_driver_manager(struct ctrl_driver *d);

#endif
