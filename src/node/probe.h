/* One attempt of a container probe (Kubernetes' exec, httpGet, tcpSocket
 * handlers) on the agent's loop. */
#ifndef CAPSTAN_NODE_PROBE_H
#define CAPSTAN_NODE_PROBE_H

#include <stdbool.h>

#include <jansson.h>
#include <uv.h>

struct rt;

/* @ok: the probe succeeded; @msg: why not (borrowed, may be NULL). */
typedef void (*node_probe_cb)(void *data, bool ok, const char *msg);

/* Runs @probe (a Probe object, borrowed) once against container @id (exec)
 * or @host (httpGet/tcpSocket: the pod IP), named ports resolved from
 * @ctr (the container's spec). @cb runs once, never inside this call,
 * when this returns 0. Errors: -EINVAL (no handler), -ENOMEM, uv errors. */
int node_probe_run(uv_loop_t *loop, struct rt *rt, const json_t *probe, const json_t *ctr,
		   const char *id, const char *host, node_probe_cb cb, void *data);

/* Probe settings with Kubernetes' defaults, in ms / counts. */
struct node_probe_timing {
	unsigned initial_delay_ms, period_ms, timeout_ms, success_threshold, failure_threshold;
};
void node_probe_timing(const json_t *probe, struct node_probe_timing *ret);

#endif
