/* The pods of this node: watch, per-pod state machine on the container
 * runtime (runtime/runtime.h), status, adoption after a restart.
 *
 * Files: STATE/pods/<uid>/ (volumes/, etc-hosts, etc-hostname,
 * resolv.conf, ip), STATE/logs/<ns>_<name>_<uid>/<container>/<N>.log (CRI
 * log files, N = restart count).
 */
#ifndef CAPSTAN_NODE_PODS_H
#define CAPSTAN_NODE_PODS_H

#include <stdbool.h>
#include <stddef.h>

#include "src/node/agent.h"

struct rt;
struct rt_result;

/* Starts: lists the pods bound to this node, adopts the runtime's
 * containers, watches. @rt borrowed. Errors: -ENOMEM. */
int node_pods_start(struct node_agent *a, struct rt *rt, struct node_pods **ret);
/* Stops watching and timers (containers keep running); @cb once every
 * handle is closed and nothing is pending. */
void node_pods_stop(struct node_pods *p, void (*cb)(void *data), void *data);

/* Log file of container @container of pod @ns/@name (its current run, or
 * the previous one when @previous), malloc'd; -ENOENT when unknown. */
int node_pods_log_path(struct node_pods *p, const char *ns, const char *name,
		       const char *container, bool previous, char **ret_path);

/* Runs @args (NULL-terminated, borrowed) in the running container
 * @container of pod @ns/@name (`runc exec`, output captured, killed after
 * @timeout_ms); @cb as rt_exec's. Errors: -ENOENT (no such running
 * container), -EINVAL (a container name is needed), rt_exec's. */
int node_pods_exec(struct node_pods *p, const char *ns, const char *name, const char *container,
		   const char *const *args, unsigned timeout_ms,
		   void (*cb)(void *data, int err, const struct rt_result *res), void *data);

#endif
