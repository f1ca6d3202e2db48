/* Which pods each Service selects, kept from the controller events: the
 * shared index of the Endpoints and EndpointSlice controllers (each keeps
 * its own instance).
 *
 * A Service "with a selector" has a non-empty spec.selector and is not of
 * type ExternalName; only those are members of the index. Every pod that
 * one of them selects has a summary (what an endpoint needs of it), so a
 * sync reads nothing from the store but its Service. Service keys are
 * "<ns>/<name>", the queue keys of both controllers.
 */
#ifndef CAPSTAN_CTRL_SVCPODS_H
#define CAPSTAN_CTRL_SVCPODS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "src/ctrl/ctrl.h"

/* What an endpoint needs of a pod. Strings are never NULL ("" when
 * absent). */
struct ctrl_svcpod {
	char *name, *uid, *ip, *node, *hostname, *subdomain;
	json_t *ports;      /* [{name, containerPort, protocol}] of the containers */
	uint64_t changed_ms; /* latest of creation, Ready transition, deletion */
	bool ready;         /* Ready condition True */
	bool deleting;      /* deletionTimestamp set */
	bool terminal;      /* phase Succeeded or Failed */
	unsigned refs;      /* Services selecting it */
};

struct ctrl_svcpods;

/* Errors: -ENOMEM. */
int ctrl__svcpods_new(struct ctrl_svcpods **ret);
void ctrl__svcpods_free(struct ctrl_svcpods *x);

/* Feeds a Service or Pod event (others are ignored): queues with
 * ctrl_enqueue() the key "<ns>/<name>" of every Service whose endpoints
 * may have changed (the Service itself, and those selecting a changed
 * pod, before or after the change). */
void ctrl__svcpods_event(struct ctrl_svcpods *x, struct ctrl *c, const struct ctrl_event *ev);

/* Whether @key is a Service with a selector in the index. */
bool ctrl__svcpods_has(struct ctrl_svcpods *x, const char *key);

/* Calls @cb for every pod the Service @key selects, in name order;
 * returns their number. */
size_t ctrl__svcpods_each(struct ctrl_svcpods *x, const char *key,
			  void (*cb)(const struct ctrl_svcpod *p, void *data), void *data);

/* The endpoint ports of @pod for @svc (a Service tree): one
 * {name?, port, protocol, appProtocol?} per service port, in the
 * Service's order, targetPort resolved (a number as is, a name against the
 * pod's container ports of that protocol; an unresolved name leaves the
 * port out, as Kubernetes). New reference; NULL on OOM. */
json_t *ctrl__svcpods_ports(const json_t *svc, const struct ctrl_svcpod *pod);

/* Whether @svc (a Service tree) has a selector (see above). */
bool ctrl__svcpods_selects(const json_t *svc);

/* Labels Kubernetes gives the Endpoints and EndpointSlices of @svc: the
 * Service's labels plus service.kubernetes.io/headless for a headless
 * one. New object, NULL on OOM. */
json_t *ctrl__svcpods_labels(const json_t *svc);

/* Sets hostname (when the pod's subdomain is @svc_name), nodeName and
 * targetRef (a Pod in namespace @ns) of endpoint or address @ep from
 * @pod, as both controllers list them. */
void ctrl__svcpods_decorate(json_t *ep, const struct ctrl_svcpod *pod, const char *ns,
			    const char *svc_name);

/* The key "<ns>/<name>" of @ns and @name into @buf; false when too long. */
bool ctrl__svcpods_key(const char *ns, const char *name, char *buf, size_t size);

#endif
