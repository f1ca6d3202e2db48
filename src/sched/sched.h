/* The scheduler's internals: what it keeps of pods and nodes, and its
 * filters and scores as pure functions (tests/unit/test_sched.c).
 *
 * Semantics follow kube-scheduler's default profile, simplified: filters
 * NodeUnschedulable, TaintToleration (plus an implied not-ready or
 * unreachable taint on a node whose Ready condition is not True),
 * NodeAffinity (nodeSelector and required node affinity), NodePorts,
 * NodeResourcesFit; scores LeastAllocated (on "non-zero" requests, as
 * kube-scheduler does so that pods without requests still spread) and
 * the spreading of pods with the same controller owner.
 *
 * Ownership: parse functions fill caller-provided structs whose strings
 * and arrays they allocate; the matching _clear() frees them (and accepts
 * a zeroed struct). Errors: -ENOMEM, -EINVAL where said.
 */
#ifndef CAPSTAN_SCHED_H
#define CAPSTAN_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Resources: CPU in milli-units, memory in bytes, a pod count. */
struct sched_res {
	int64_t cpu;
	int64_t mem;
	int64_t pods;
};

/* What scoring assumes for a container without a request (kube-scheduler's
 * DefaultMilliCPURequest and DefaultMemoryRequest). */
#define SCHED_DEFAULT_CPU 100
#define SCHED_DEFAULT_MEM (200LL * 1024 * 1024)

enum sched_effect {
	SCHED_EFFECT_ANY = 0, /* tolerations only: an empty effect */
	SCHED_NO_SCHEDULE,
	SCHED_PREFER_NO_SCHEDULE,
	SCHED_NO_EXECUTE,
	SCHED_EFFECT_OTHER,
};

struct sched_taint {
	char *key;
	char *value; /* "" when absent */
	enum sched_effect effect;
};

struct sched_toleration {
	char *key; /* "" with exists: every key */
	char *value;
	bool exists; /* operator Exists (else Equal) */
	bool bad;    /* unknown operator: tolerates nothing */
	enum sched_effect effect;
};

enum sched_op {
	SCHED_OP_IN = 0,
	SCHED_OP_NOT_IN,
	SCHED_OP_EXISTS,
	SCHED_OP_DOES_NOT_EXIST,
	SCHED_OP_GT,
	SCHED_OP_LT,
	SCHED_OP_INVALID, /* matches nothing */
};

/* One NodeSelectorRequirement: on a label, or (field) on metadata.name. */
struct sched_req {
	char *key;
	enum sched_op op;
	bool field;
	char **values;
	size_t n_values;
	int64_t number; /* GT/LT */
	bool number_ok;
};

/* A NodeSelectorTerm: its requirements are ANDed; an empty term matches
 * nothing. */
struct sched_term {
	struct sched_req *reqs;
	size_t n;
};

enum sched_proto { SCHED_TCP = 0, SCHED_UDP, SCHED_SCTP };

/* A host port in use or wanted. ip "" is the wildcard 0.0.0.0. */
struct sched_port {
	int32_t port;
	enum sched_proto proto;
	char ip[46];
};

/* What the scheduler keeps of a pod. The constraints are parsed only for
 * pods still to schedule. */
struct sched_pod_spec {
	struct sched_res req;    /* requests; pods = 1 */
	struct sched_res req_nz; /* the same with the scoring defaults */
	struct sched_port *ports;
	size_t n_ports;
	char *owner_uid; /* controller owner's uid, or NULL */
	/* Constraints. */
	char **selector; /* nodeSelector: key, value, key, value... */
	size_t n_selector; /* pairs */
	bool has_affinity; /* required node affinity present */
	struct sched_term *terms; /* ORed */
	size_t n_terms;
	struct sched_toleration *tols;
	size_t n_tols;
};

enum sched_ready { SCHED_READY_UNKNOWN = 0, SCHED_READY_TRUE, SCHED_READY_FALSE };

/* What the scheduler keeps of a Node object. */
struct sched_node_spec {
	char *name;
	json_t *labels; /* an object (own reference), never NULL once parsed */
	struct sched_taint *taints;
	size_t n_taints;
	bool unschedulable;
	enum sched_ready ready;
	struct sched_res alloc; /* status.allocatable, else capacity */
	bool plain; /* derived: Ready, schedulable, no NoSchedule/NoExecute
		       taint; the first two filters pass without a look */
};

/* A node with its accounting: what the pods bound (or assumed) to it
 * request. */
struct sched_node {
	struct sched_node_spec spec;
	bool exists; /* a Node object is stored (else only pods name it) */
	uint32_t idx; /* stable slot, for per-owner counts */
	struct sched_res used;
	struct sched_res used_nz;
	struct sched_port *ports; /* host ports in use, one per pod port */
	size_t n_ports, cap_ports;
};

/* ------------------------------------------------------------ parsing */

/* Parses @pod (borrowed tree). @constraints: also nodeSelector, affinity
 * and tolerations. Malformed quantities count as zero (validation refused
 * them already). Errors: -ENOMEM. */
int sched__pod_parse(const json_t *pod, bool constraints, struct sched_pod_spec *ret);
void sched__pod_clear(struct sched_pod_spec *p);
/* Frees only the constraints (a bound pod no longer needs them). */
void sched__pod_clear_constraints(struct sched_pod_spec *p);

/* Whether two pods are held to the same filters: requests, host ports,
 * nodeSelector (in order), required node affinity, tolerations. Owners
 * and scoring defaults are not compared. */
bool sched__same_constraints(const struct sched_pod_spec *a, const struct sched_pod_spec *b);

/* Parses a Node. Errors: -ENOMEM. */
int sched__node_parse(const json_t *node, struct sched_node_spec *ret);
void sched__node_clear(struct sched_node_spec *n);
/* Whether two parsed nodes differ in anything a filter or score reads. */
bool sched__node_equal(const struct sched_node_spec *a, const struct sched_node_spec *b);

/* ------------------------------------------------------------ filters */

/* Why a node does not fit (a bit set; the first failing filter sets its
 * bits, as kube-scheduler stops at the first failing plugin). */
enum {
	SCHED_FIT_UNSCHEDULABLE = 1 << 0, /* "node(s) were unschedulable" */
	SCHED_FIT_TAINT = 1 << 1,         /* "node(s) had untolerated taint {k: v}" */
	SCHED_FIT_AFFINITY = 1 << 2,      /* "node(s) didn't match Pod's node affinity/selector" */
	SCHED_FIT_PORTS = 1 << 3,         /* "node(s) didn't have free ports ..." */
	SCHED_FIT_TOO_MANY_PODS = 1 << 4, /* "Too many pods" */
	SCHED_FIT_CPU = 1 << 5,           /* "Insufficient cpu" */
	SCHED_FIT_MEMORY = 1 << 6,        /* "Insufficient memory" */
};

/* Kubernetes' ToleratesTaint. */
bool sched__tolerates(const struct sched_toleration *t, const struct sched_taint *taint);
/* Whether any of @tols tolerates @taint. */
bool sched__tolerated(const struct sched_toleration *tols, size_t n, const struct sched_taint *taint);

/* NodeUnschedulable: true when the node may take the pod. */
bool sched__fit_unschedulable(const struct sched_pod_spec *p, const struct sched_node_spec *n);
/* TaintToleration: NULL when every NoSchedule/NoExecute taint (and the
 * implied not-ready/unreachable one) is tolerated, else the first
 * untolerated taint (borrowed from @n or static). */
const struct sched_taint *sched__fit_taints(const struct sched_pod_spec *p,
					    const struct sched_node_spec *n);
/* One requirement / term against a node's labels and name. */
bool sched__req_match(const struct sched_req *r, const json_t *labels, const char *name);
bool sched__term_match(const struct sched_term *t, const json_t *labels, const char *name);
/* NodeAffinity: nodeSelector AND (any required term). */
bool sched__fit_affinity(const struct sched_pod_spec *p, const struct sched_node_spec *n);
/* Whether two host ports conflict (same protocol and port, and the same
 * IP or either the wildcard). */
bool sched__ports_conflict(const struct sched_port *a, const struct sched_port *b);
/* NodePorts: true when no wanted port is in use on @n. */
bool sched__fit_ports(const struct sched_pod_spec *p, const struct sched_node *n);
/* NodeResourcesFit: 0 or SCHED_FIT_TOO_MANY_PODS|CPU|MEMORY bits. */
unsigned sched__fit_resources(const struct sched_pod_spec *p, const struct sched_node *n);
/* Every filter in kube-scheduler's order: 0 when the pod fits, else the
 * bits of the first failing one (*ret_taint set for SCHED_FIT_TAINT). */
unsigned sched__filter(const struct sched_pod_spec *p, const struct sched_node *n,
		       const struct sched_taint **ret_taint);

/* sched__filter() with the NodeAffinity verdict known: @affinity 1
 * (fits), 0 (does not) or -1 (unknown: evaluated here). For callers that
 * remember it per node for pods with the same constraints. */
unsigned sched__filter_with(const struct sched_pod_spec *p, const struct sched_node *n,
			    int affinity, const struct sched_taint **ret_taint);

/* ------------------------------------------------------------ scores */

#define SCHED_MAX_SCORE 100
#define SCHED_WEIGHT_LEAST_ALLOCATED 1
#define SCHED_WEIGHT_SPREAD 2

/* LeastAllocated: the mean over CPU and memory of the free fraction
 * after placing the pod (non-zero requests), 0..100. */
int64_t sched__score_least_allocated(const struct sched_pod_spec *p, const struct sched_node *n);
/* Spreading: @count pods of the same owner on this node, @max the most
 * on any feasible node: 100 * (max - count) / max, 100 when max is 0. */
int64_t sched__score_spread(uint32_t count, uint32_t max);

/* ------------------------------------------------------------ diagnosis */

/* Counts the reasons of the nodes that did not fit, to build
 * kube-scheduler's FitError message. */
struct sched_diag {
	size_t n_nodes;
	size_t counts[7]; /* by bit of SCHED_FIT_* (TAINT unused) */
	struct {
		char *text; /* "node(s) had untolerated taint {k: v}" */
		size_t count;
	} *taints;
	size_t n_taints;
};

void sched__diag_init(struct sched_diag *d);
void sched__diag_clear(struct sched_diag *d);
/* Records one node's failure bits. Errors: -ENOMEM. */
int sched__diag_add(struct sched_diag *d, unsigned bits, const struct sched_taint *taint);
/* "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match
 * Pod's node affinity/selector." (reasons sorted as strings, as
 * kube-scheduler does), or "no nodes available to schedule pods" when
 * there is no node. Returns a malloc'ed string, NULL on OOM. */
char *sched__diag_message(const struct sched_diag *d);
/* Whether two such messages give the same reasons, counts aside
 * ("0/3 ...: 1 Insufficient cpu." and "0/4 ...: 2 Insufficient cpu."). */
bool sched__same_reasons(const char *a, const char *b);

#endif
