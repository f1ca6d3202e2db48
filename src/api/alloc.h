/* Service address allocation: ClusterIPs from the service CIDR and
 * NodePorts from the node port range, each kept as a bitmap, and the
 * fill-in of a Service's allocated fields on create and update.
 *
 * Everything here is pure: no clock, no I/O, no hidden state.  The leader
 * builds the used sets by scanning the stored Services (the store is the
 * only source of truth; nothing of the allocators is persisted), runs the
 * allocation with a random source of its own, and the result enters the
 * Raft log inside the object (DESIGN.md "Data flow of a write", step 3).
 * The same inputs and the same random bits give the same result. */
#ifndef CAPSTAN_API_ALLOC_H
#define CAPSTAN_API_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "src/api/validate.h"

#define API_ALLOC_DEFAULT_CIDR "10.96.0.0/12"
#define API_ALLOC_DEFAULT_NODE_PORTS "30000-32767"

/* Room for any address text (INET6_ADDRSTRLEN). */
#define API_ALLOC_IP_LEN 46

/* ---------------------------------------------------------------- Random */

/* A source of random bits: next(data) returns 64 of them.  The leader may
 * use a real random source; tests seed api_alloc_splitmix64. */
struct api_alloc_rand {
	uint64_t (*next)(void *data);
	void *data;
};

/* SplitMix64 step over the uint64_t state at @data (borrowed). */
uint64_t api_alloc_splitmix64(void *data);

/* ---------------------------------------------------------------- Ranges */

/* The service CIDR.  Offsets 0 .. size-1 stand for the addresses
 * net+1 .. net+size: the network address is never handed out, nor is the
 * IPv4 broadcast address. */
struct api_ip_range {
	int family;	 /* AF_INET or AF_INET6 */
	unsigned prefix; /* mask length */
	uint8_t net[16]; /* network address, network order (IPv4: first 4 bytes) */
	uint32_t size;	 /* allocatable addresses */
	char text[64];	 /* canonical CIDR, "10.96.0.0/12" */
};

/* Parses @s ("10.96.0.0/12", "fd00:10:96::/108").  Host bits are
 * cleared, as Go's net.ParseCIDR does.  As kube-apiserver, the range may
 * hold at most 2^20 addresses (IPv4 mask >= 12, IPv6 mask >= 108); it
 * must hold at least 2 allocatable ones.  On error *@ret_detail (may be
 * NULL) gets a static explanation.
 * Errors: -EINVAL bad syntax, -ERANGE too large or too small. */
int api_ip_range_parse(const char *s, struct api_ip_range *ret, const char **ret_detail);

/* The first allocatable address (10.96.0.1 for 10.96.0.0/12), which
 * Kubernetes reserves for the `kubernetes` Service of namespace default.
 * Writes at most API_ALLOC_IP_LEN bytes to @buf. */
void api_ip_range_first(const struct api_ip_range *r, char buf[API_ALLOC_IP_LEN]);

/* "IPv4" or "IPv6". */
const char *api_ip_range_family_name(const struct api_ip_range *r);

/* The node port range, [base, base+size). */
struct api_port_range {
	uint32_t base;
	uint32_t size;
	char text[24]; /* "30000-32767"; room for two unsigned */
};

/* Parses "30000-32767", "30000+2767" (base+offset, as Kubernetes' port
 * range flag) or a single port.  Errors: -EINVAL, with *@ret_detail. */
int api_port_range_parse(const char *s, struct api_port_range *ret, const char **ret_detail);

/* ---------------------------------------------------------------- Allocators */

/* A bitmap of used offsets.  Embedded; internal fields. */
struct api_alloc_bitmap {
	uint64_t *words;
	uint32_t size;	 /* bits */
	uint32_t offset; /* start of the dynamic block (Kubernetes' split) */
	uint32_t used;
};

/* ClusterIP allocator over one range. */
struct api_ip_alloc {
	struct api_ip_range range;
	struct api_alloc_bitmap bits;
};

/* Starts with every address free.  @r is copied.  Errors: -ENOMEM. */
int api_ip_alloc_init(struct api_ip_alloc *a, const struct api_ip_range *r);
/* Frees the bitmap; accepts a zeroed or closed allocator. */
void api_ip_alloc_close(struct api_ip_alloc *a);

/* Claims @ip (a stored Service's address, or one a user asks for).
 * Errors: -EINVAL not an address of the range's family, -ERANGE outside
 * the allocatable addresses (network, broadcast, other networks), -EEXIST
 * already used. */
int api_ip_alloc_mark(struct api_ip_alloc *a, const char *ip);

/* Frees @ip.  Errors as api_ip_alloc_mark, -ENOENT if it was free. */
int api_ip_alloc_release(struct api_ip_alloc *a, const char *ip);

/* Whether @ip is claimed (false for anything outside the range). */
bool api_ip_alloc_used(const struct api_ip_alloc *a, const char *ip);

/* Claims a free address, chosen as Kubernetes does: random in the upper,
 * dynamic block first, then the lower block (kept for static addresses).
 * Writes its text to @ret_ip.  Errors: -ENOSPC the range is full. */
int api_ip_alloc_next(struct api_ip_alloc *a, const struct api_alloc_rand *rnd,
		      char ret_ip[API_ALLOC_IP_LEN]);

/* Addresses free / claimed. */
uint32_t api_ip_alloc_free(const struct api_ip_alloc *a);

/* NodePort allocator over one range. */
struct api_port_alloc {
	struct api_port_range range;
	struct api_alloc_bitmap bits;
};

int api_port_alloc_init(struct api_port_alloc *a, const struct api_port_range *r);
void api_port_alloc_close(struct api_port_alloc *a);
/* Errors: -ERANGE outside the range, -EEXIST used. */
int api_port_alloc_mark(struct api_port_alloc *a, int64_t port);
/* Errors: -ERANGE, -ENOENT free. */
int api_port_alloc_release(struct api_port_alloc *a, int64_t port);
bool api_port_alloc_used(const struct api_port_alloc *a, int64_t port);
/* Errors: -ENOSPC full. */
int api_port_alloc_next(struct api_port_alloc *a, const struct api_alloc_rand *rnd, int *ret_port);
uint32_t api_port_alloc_free(const struct api_port_alloc *a);

/* ---------------------------------------------------------------- Services */

/* Both allocators of the cluster.  Embed; _init/_close. */
struct api_alloc {
	struct api_ip_alloc ip;
	struct api_port_alloc node_ports;
	/* Why the last call returned -ENOSPC, as kube-apiserver's 500 says
	 * it: "failed to allocate a serviceIP: range is full". */
	char errmsg[96];
};

/* Parses both ranges (NULL: the defaults) and starts with all free.
 * Errors: -EINVAL/-ERANGE from the parsers (*@ret_detail says which
 * range and why), -ENOMEM. */
int api_alloc_init(struct api_alloc *a, const char *cidr, const char *node_ports, const char **ret_detail);
void api_alloc_close(struct api_alloc *a);

/* Claims what the stored Service @svc holds: spec.clusterIPs (or
 * spec.clusterIP), spec.ports[].nodePort and spec.healthCheckNodePort.
 * Values outside the ranges (the range changed since) and duplicates are
 * ignored.  @svc is borrowed. */
void api_alloc_mark_service(struct api_alloc *a, const json_t *svc);

/* The reverse: frees what @svc holds (after a delete). */
void api_alloc_release_service(struct api_alloc *a, const json_t *svc);

/* Fills the allocated fields of @svc, a defaulted Service to create, in
 * place: spec.clusterIP and spec.clusterIPs (allocated, or the requested
 * address checked; "None" for a headless Service allocates nothing),
 * spec.ipFamilies and spec.ipFamilyPolicy, spec.ports[].nodePort for
 * types NodePort and LoadBalancer (unless allocateLoadBalancerNodePorts
 * is false), spec.healthCheckNodePort for a LoadBalancer with
 * externalTrafficPolicy Local.  ExternalName Services get no address.
 * What it claims is marked in @a.
 *
 * Returns 0 when done: if e->n grew, the Service is invalid (422, with
 * Kubernetes' texts such as "spec.clusterIPs: Invalid value: [...]: failed
 * to allocate IP 10.0.0.1: the provided IP (10.0.0.1) is not in the valid
 * range. The range of valid IPs is 10.96.0.0/12") and @a is unchanged.
 * -ENOSPC: a range is full (a->errmsg says which; kube-apiserver answers
 * 500 InternalError), @a unchanged.  -ENOMEM.  @svc may be partly
 * filled after an error: discard it. */
int api_alloc_service_create(struct api_alloc *a, const struct api_alloc_rand *rnd, json_t *svc,
			     struct api_errors *e);

/* The same for an update from the stored @old to @svc.  Allocations are
 * kept: a clusterIP or nodePort the new body leaves out is copied from
 * @old (nodePorts matched by port name), a clusterIP may not change once
 * set (spec.clusterIP "field is immutable") except from "" or when the
 * type becomes ExternalName; a type change away from NodePort and
 * LoadBalancer drops and frees the old nodePorts; new ports get new
 * ones.  @a may or may not already hold @old's allocations: they are
 * freed first and claimed again as kept.  Call it before
 * api_validate_update, so that the patched-in clusterIP passes the
 * immutable-field rule.  Returns and errors as api_alloc_service_create
 * (after an error @a is as it was). */
int api_alloc_service_update(struct api_alloc *a, const struct api_alloc_rand *rnd, const json_t *old,
			     json_t *svc, struct api_errors *e);

#endif
