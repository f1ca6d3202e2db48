/* The node agent's HTTPS endpoint for the masters: container logs
 * (GET /containerLogs/<ns>/<pod>/<container>?follow&tailLines&
 * sinceSeconds&timestamps&previous), clients authenticated by a
 * certificate of the cluster CA. */
#ifndef CAPSTAN_NODE_LOGSRV_H
#define CAPSTAN_NODE_LOGSRV_H

#include "src/node/agent.h"

/* Listens on @listen ("HOST:PORT"). Errors: -EINVAL (bad address), uv
 * errors of bind/listen, -EIO (certificates). */
int node_logsrv_start(struct node_agent *a, const char *listen, struct node_logsrv **ret);
/* Stops; @cb once every handle is closed. Accepts NULL (then @cb at once). */
void node_logsrv_close(struct node_logsrv *s, void (*cb)(void *data), void *data);

#endif
