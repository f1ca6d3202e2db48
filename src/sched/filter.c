/* The scheduler's parsing of pods and nodes, its filters and the
 * FitError message, after kube-scheduler's plugins (NodeUnschedulable,
 * TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit). */
#include "src/sched/sched.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/ctrl/quantity.h"

/* ------------------------------------------------------------ parsing */

static char *dup_or_empty(const char *s)
{
	return strdup(s != NULL ? s : "");
}

static const char *str_at(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static enum sched_effect parse_effect(const char *s)
{
	if (s == NULL || *s == '\0')
		return SCHED_EFFECT_ANY;
	if (strcmp(s, "NoSchedule") == 0)
		return SCHED_NO_SCHEDULE;
	if (strcmp(s, "PreferNoSchedule") == 0)
		return SCHED_PREFER_NO_SCHEDULE;
	if (strcmp(s, "NoExecute") == 0)
		return SCHED_NO_EXECUTE;
	return SCHED_EFFECT_OTHER;
}

/* Requests of one container: @set tells which were given (a request
 * given as 0 stays 0 for scoring, an absent one takes the default). */
static void container_requests(const json_t *c, struct sched_res *ret, struct sched_res *ret_nz)
{
	const json_t *req = json_object_get(json_object_get(c, "resources"), "requests");
	const json_t *cpu = json_object_get(req, "cpu");
	const json_t *mem = json_object_get(req, "memory");
	int64_t v;

	ret->cpu = cpu != NULL && ctrl_quantity_milli(cpu, &v) == 0 && v > 0 ? v : 0;
	ret->mem = mem != NULL && ctrl_quantity_value(mem, &v) == 0 && v > 0 ? v : 0;
	ret->pods = 0;
	ret_nz->cpu = cpu != NULL ? ret->cpu : SCHED_DEFAULT_CPU;
	ret_nz->mem = mem != NULL ? ret->mem : SCHED_DEFAULT_MEM;
	ret_nz->pods = 0;
}

static void res_add(struct sched_res *a, const struct sched_res *b)
{
	a->cpu += b->cpu;
	a->mem += b->mem;
	a->pods += b->pods;
}

static void res_max(struct sched_res *a, const struct sched_res *b)
{
	if (b->cpu > a->cpu)
		a->cpu = b->cpu;
	if (b->mem > a->mem)
		a->mem = b->mem;
}

/* Kubernetes' effective pod request: the sum over containers (and
 * restartable init containers, the sidecars), at least what each init
 * container needs together with the sidecars started before it, plus the
 * pod overhead. */
static void pod_requests(const json_t *spec, struct sched_pod_spec *p)
{
	struct sched_res sum = {0}, sum_nz = {0}, side = {0}, side_nz = {0};
	struct sched_res init = {0}, init_nz = {0}, r, r_nz;
	const json_t *c;
	size_t i;

	json_array_foreach(json_object_get(spec, "containers"), i, c)
	{
		container_requests(c, &r, &r_nz);
		res_add(&sum, &r);
		res_add(&sum_nz, &r_nz);
	}
	json_array_foreach(json_object_get(spec, "initContainers"), i, c)
	{
		container_requests(c, &r, &r_nz);
		const char *policy = str_at(c, "restartPolicy");
		if (policy != NULL && strcmp(policy, "Always") == 0) {
			res_add(&side, &r);
			res_add(&side_nz, &r_nz);
			continue;
		}
		res_add(&r, &side);
		res_add(&r_nz, &side_nz);
		res_max(&init, &r);
		res_max(&init_nz, &r_nz);
	}
	res_add(&sum, &side);
	res_add(&sum_nz, &side_nz);
	res_max(&sum, &init);
	res_max(&sum_nz, &init_nz);

	const json_t *overhead = json_object_get(spec, "overhead");
	int64_t v;
	if (ctrl_quantity_milli(json_object_get(overhead, "cpu"), &v) == 0 && v > 0) {
		sum.cpu += v;
		sum_nz.cpu += v;
	}
	if (ctrl_quantity_value(json_object_get(overhead, "memory"), &v) == 0 && v > 0) {
		sum.mem += v;
		sum_nz.mem += v;
	}
	sum.pods = sum_nz.pods = 1;
	p->req = sum;
	p->req_nz = sum_nz;
}

static int pod_ports(const json_t *spec, struct sched_pod_spec *p)
{
	const json_t *c, *port;
	size_t i, j, n = 0;

	json_array_foreach(json_object_get(spec, "containers"), i, c)
	{
		json_array_foreach(json_object_get(c, "ports"), j, port)
		{
			if (json_integer_value(json_object_get(port, "hostPort")) > 0)
				n++;
		}
	}
	if (n == 0)
		return 0;
	p->ports = calloc(n, sizeof(*p->ports));
	if (p->ports == NULL)
		return -ENOMEM;
	json_array_foreach(json_object_get(spec, "containers"), i, c)
	{
		json_array_foreach(json_object_get(c, "ports"), j, port)
		{
			json_int_t hp = json_integer_value(json_object_get(port, "hostPort"));
			if (hp <= 0 || hp > 65535)
				continue;
			struct sched_port *sp = &p->ports[p->n_ports++];
			const char *proto = str_at(port, "protocol");
			const char *ip = str_at(port, "hostIP");
			sp->port = (int32_t)hp;
			sp->proto = proto == NULL || strcmp(proto, "UDP") != 0
					    ? (proto != NULL && strcmp(proto, "SCTP") == 0 ? SCHED_SCTP
											   : SCHED_TCP)
					    : SCHED_UDP;
			if (ip != NULL && strcmp(ip, "0.0.0.0") != 0 && strcmp(ip, "::") != 0)
				snprintf(sp->ip, sizeof(sp->ip), "%s", ip);
		}
	}
	return 0;
}

static enum sched_op parse_op(const char *s)
{
	static const char *const names[] = {"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"};
	for (size_t i = 0; s != NULL && i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0)
			return (enum sched_op)i;
	}
	return SCHED_OP_INVALID;
}

static int parse_req(const json_t *j, bool field, struct sched_req *r)
{
	const json_t *values = json_object_get(j, "values");
	const json_t *v;
	size_t i;

	r->field = field;
	r->op = parse_op(str_at(j, "operator"));
	r->key = dup_or_empty(str_at(j, "key"));
	if (r->key == NULL)
		return -ENOMEM;
	/* matchFields: only metadata.name with In/NotIn, as Kubernetes. */
	if (field && (strcmp(r->key, "metadata.name") != 0 ||
		      (r->op != SCHED_OP_IN && r->op != SCHED_OP_NOT_IN)))
		r->op = SCHED_OP_INVALID;
	if (json_array_size(values) > 0) {
		r->values = calloc(json_array_size(values), sizeof(*r->values));
		if (r->values == NULL)
			return -ENOMEM;
		json_array_foreach(values, i, v)
		{
			r->values[r->n_values] = dup_or_empty(json_string_value(v));
			if (r->values[r->n_values] == NULL)
				return -ENOMEM;
			r->n_values++;
		}
	}
	if (r->op == SCHED_OP_GT || r->op == SCHED_OP_LT) {
		char *end;
		if (r->n_values == 1 && r->values[0][0] != '\0') {
			errno = 0;
			long long n = strtoll(r->values[0], &end, 10);
			r->number_ok = errno == 0 && *end == '\0';
			r->number = n;
		}
	}
	return 0;
}

static int parse_affinity(const json_t *spec, struct sched_pod_spec *p)
{
	const json_t *req = json_object_get(
		json_object_get(json_object_get(spec, "affinity"), "nodeAffinity"),
		"requiredDuringSchedulingIgnoredDuringExecution");
	const json_t *terms = json_object_get(req, "nodeSelectorTerms");
	const json_t *t, *e;
	size_t i, j;
	int rv;

	if (!json_is_object(req))
		return 0;
	p->has_affinity = true;
	if (json_array_size(terms) == 0)
		return 0;
	p->terms = calloc(json_array_size(terms), sizeof(*p->terms));
	if (p->terms == NULL)
		return -ENOMEM;
	json_array_foreach(terms, i, t)
	{
		const json_t *exprs = json_object_get(t, "matchExpressions");
		const json_t *fields = json_object_get(t, "matchFields");
		struct sched_term *term = &p->terms[p->n_terms++];
		size_t n = json_array_size(exprs) + json_array_size(fields);
		if (n == 0)
			continue;
		term->reqs = calloc(n, sizeof(*term->reqs));
		if (term->reqs == NULL)
			return -ENOMEM;
		json_array_foreach(exprs, j, e)
		{
			rv = parse_req(e, false, &term->reqs[term->n++]);
			if (rv != 0)
				return rv;
		}
		json_array_foreach(fields, j, e)
		{
			rv = parse_req(e, true, &term->reqs[term->n++]);
			if (rv != 0)
				return rv;
		}
	}
	return 0;
}

static int parse_constraints(const json_t *spec, struct sched_pod_spec *p)
{
	const json_t *sel = json_object_get(spec, "nodeSelector");
	const json_t *tols = json_object_get(spec, "tolerations");
	const json_t *v;
	const char *k;
	size_t i;

	if (json_object_size(sel) > 0) {
		p->selector = calloc(2 * json_object_size(sel), sizeof(*p->selector));
		if (p->selector == NULL)
			return -ENOMEM;
		json_object_foreach((json_t *)sel, k, v)
		{
			char *key = strdup(k);
			char *val = dup_or_empty(json_string_value(v));
			p->selector[2 * p->n_selector] = key;
			p->selector[2 * p->n_selector + 1] = val;
			p->n_selector++;
			if (key == NULL || val == NULL)
				return -ENOMEM;
		}
	}
	if (json_array_size(tols) > 0) {
		p->tols = calloc(json_array_size(tols), sizeof(*p->tols));
		if (p->tols == NULL)
			return -ENOMEM;
		json_array_foreach(tols, i, v)
		{
			struct sched_toleration *t = &p->tols[p->n_tols++];
			const char *op = str_at(v, "operator");
			t->key = dup_or_empty(str_at(v, "key"));
			t->value = dup_or_empty(str_at(v, "value"));
			if (t->key == NULL || t->value == NULL)
				return -ENOMEM;
			t->exists = op != NULL && strcmp(op, "Exists") == 0;
			t->bad = op != NULL && !t->exists && strcmp(op, "Equal") != 0 && *op != '\0';
			t->effect = parse_effect(str_at(v, "effect"));
		}
	}
	return parse_affinity(spec, p);
}

int sched__pod_parse(const json_t *pod, bool constraints, struct sched_pod_spec *ret)
{
	const json_t *spec = json_object_get(pod, "spec");
	const json_t *ref, *refs = json_object_get(json_object_get(pod, "metadata"), "ownerReferences");
	struct sched_pod_spec p;
	size_t i;
	int rv;

	memset(&p, 0, sizeof(p));
	pod_requests(spec, &p);
	rv = pod_ports(spec, &p);
	if (rv != 0)
		goto err;
	json_array_foreach(refs, i, ref)
	{
		if (json_is_true(json_object_get(ref, "controller")) && str_at(ref, "uid") != NULL) {
			p.owner_uid = strdup(str_at(ref, "uid"));
			if (p.owner_uid == NULL) {
				rv = -ENOMEM;
				goto err;
			}
			break;
		}
	}
	if (constraints) {
		rv = parse_constraints(spec, &p);
		if (rv != 0)
			goto err;
	}
	*ret = p;
	return 0;
err:
	sched__pod_clear(&p);
	return rv;
}

static void req_clear(struct sched_req *r)
{
	free(r->key);
	for (size_t i = 0; i < r->n_values; i++)
		free(r->values[i]);
	free(r->values);
}

void sched__pod_clear_constraints(struct sched_pod_spec *p)
{
	size_t i, j;

	for (i = 0; i < 2 * p->n_selector; i++)
		free(p->selector[i]);
	free(p->selector);
	for (i = 0; i < p->n_terms; i++) {
		for (j = 0; j < p->terms[i].n; j++)
			req_clear(&p->terms[i].reqs[j]);
		free(p->terms[i].reqs);
	}
	free(p->terms);
	for (i = 0; i < p->n_tols; i++) {
		free(p->tols[i].key);
		free(p->tols[i].value);
	}
	free(p->tols);
	p->selector = NULL;
	p->n_selector = 0;
	p->has_affinity = false;
	p->terms = NULL;
	p->n_terms = 0;
	p->tols = NULL;
	p->n_tols = 0;
}

void sched__pod_clear(struct sched_pod_spec *p)
{
	sched__pod_clear_constraints(p);
	free(p->ports);
	free(p->owner_uid);
	memset(p, 0, sizeof(*p));
}

int sched__node_parse(const json_t *node, struct sched_node_spec *ret)
{
	const json_t *spec = json_object_get(node, "spec");
	const json_t *status = json_object_get(node, "status");
	const json_t *labels = json_object_get(json_object_get(node, "metadata"), "labels");
	const json_t *res = json_object_get(status, "allocatable");
	const json_t *taints = json_object_get(spec, "taints");
	const json_t *v;
	struct sched_node_spec n;
	size_t i;
	int64_t q;

	memset(&n, 0, sizeof(n));
	n.name = dup_or_empty(json_string_value(
		json_object_get(json_object_get(node, "metadata"), "name")));
	n.labels = json_is_object(labels) ? json_incref((json_t *)labels) : json_object();
	if (n.name == NULL || n.labels == NULL)
		goto oom;
	if (json_array_size(taints) > 0) {
		n.taints = calloc(json_array_size(taints), sizeof(*n.taints));
		if (n.taints == NULL)
			goto oom;
		json_array_foreach(taints, i, v)
		{
			struct sched_taint *t = &n.taints[n.n_taints++];
			t->key = dup_or_empty(str_at(v, "key"));
			t->value = dup_or_empty(str_at(v, "value"));
			t->effect = parse_effect(str_at(v, "effect"));
			if (t->key == NULL || t->value == NULL)
				goto oom;
		}
	}
	n.unschedulable = json_is_true(json_object_get(spec, "unschedulable"));
	n.ready = SCHED_READY_UNKNOWN;
	json_array_foreach(json_object_get(status, "conditions"), i, v)
	{
		const char *type = str_at(v, "type");
		const char *st = str_at(v, "status");
		if (type == NULL || strcmp(type, "Ready") != 0 || st == NULL)
			continue;
		n.ready = strcmp(st, "True") == 0    ? SCHED_READY_TRUE
			  : strcmp(st, "False") == 0 ? SCHED_READY_FALSE
						     : SCHED_READY_UNKNOWN;
	}
	if (!json_is_object(res))
		res = json_object_get(status, "capacity");
	if (ctrl_quantity_milli(json_object_get(res, "cpu"), &q) == 0 && q > 0)
		n.alloc.cpu = q;
	if (ctrl_quantity_value(json_object_get(res, "memory"), &q) == 0 && q > 0)
		n.alloc.mem = q;
	if (ctrl_quantity_value(json_object_get(res, "pods"), &q) == 0 && q > 0)
		n.alloc.pods = q;
	n.plain = !n.unschedulable && n.ready == SCHED_READY_TRUE;
	for (i = 0; i < n.n_taints; i++) {
		if (n.taints[i].effect != SCHED_PREFER_NO_SCHEDULE)
			n.plain = false;
	}
	*ret = n;
	return 0;
oom:
	sched__node_clear(&n);
	return -ENOMEM;
}

void sched__node_clear(struct sched_node_spec *n)
{
	free(n->name);
	json_decref(n->labels);
	for (size_t i = 0; i < n->n_taints; i++) {
		free(n->taints[i].key);
		free(n->taints[i].value);
	}
	free(n->taints);
	memset(n, 0, sizeof(*n));
}

bool sched__node_equal(const struct sched_node_spec *a, const struct sched_node_spec *b)
{
	if (a->unschedulable != b->unschedulable || a->ready != b->ready ||
	    a->alloc.cpu != b->alloc.cpu || a->alloc.mem != b->alloc.mem ||
	    a->alloc.pods != b->alloc.pods || a->n_taints != b->n_taints ||
	    strcmp(a->name, b->name) != 0 || !json_equal(a->labels, b->labels))
		return false;
	for (size_t i = 0; i < a->n_taints; i++) {
		if (a->taints[i].effect != b->taints[i].effect ||
		    strcmp(a->taints[i].key, b->taints[i].key) != 0 ||
		    strcmp(a->taints[i].value, b->taints[i].value) != 0)
			return false;
	}
	return true;
}

static bool str_eq(const char *a, const char *b)
{
	return strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

static bool req_equal(const struct sched_req *a, const struct sched_req *b)
{
	if (a->op != b->op || a->field != b->field || a->n_values != b->n_values ||
	    a->number_ok != b->number_ok || a->number != b->number || !str_eq(a->key, b->key))
		return false;
	for (size_t i = 0; i < a->n_values; i++) {
		if (!str_eq(a->values[i], b->values[i]))
			return false;
	}
	return true;
}

bool sched__same_constraints(const struct sched_pod_spec *a, const struct sched_pod_spec *b)
{
	size_t i, j;

	if (a->req.cpu != b->req.cpu || a->req.mem != b->req.mem || a->req.pods != b->req.pods ||
	    a->n_ports != b->n_ports || a->n_selector != b->n_selector ||
	    a->has_affinity != b->has_affinity || a->n_terms != b->n_terms ||
	    a->n_tols != b->n_tols)
		return false;
	for (i = 0; i < a->n_ports; i++) {
		if (a->ports[i].port != b->ports[i].port || a->ports[i].proto != b->ports[i].proto ||
		    strcmp(a->ports[i].ip, b->ports[i].ip) != 0)
			return false;
	}
	for (i = 0; i < 2 * a->n_selector; i++) {
		if (!str_eq(a->selector[i], b->selector[i]))
			return false;
	}
	for (i = 0; i < a->n_terms; i++) {
		if (a->terms[i].n != b->terms[i].n)
			return false;
		for (j = 0; j < a->terms[i].n; j++) {
			if (!req_equal(&a->terms[i].reqs[j], &b->terms[i].reqs[j]))
				return false;
		}
	}
	for (i = 0; i < a->n_tols; i++) {
		const struct sched_toleration *x = &a->tols[i], *y = &b->tols[i];
		if (x->exists != y->exists || x->bad != y->bad || x->effect != y->effect ||
		    !str_eq(x->key, y->key) || !str_eq(x->value, y->value))
			return false;
	}
	return true;
}

/* ------------------------------------------------------------ filters */

bool sched__tolerates(const struct sched_toleration *t, const struct sched_taint *taint)
{
	if (t->bad)
		return false;
	if (t->effect != SCHED_EFFECT_ANY && t->effect != taint->effect)
		return false;
	if (t->key[0] != '\0' && strcmp(t->key, taint->key) != 0)
		return false;
	return t->exists || strcmp(t->value, taint->value) == 0;
}

bool sched__tolerated(const struct sched_toleration *tols, size_t n, const struct sched_taint *taint)
{
	for (size_t i = 0; i < n; i++) {
		if (sched__tolerates(&tols[i], taint))
			return true;
	}
	return false;
}

static const struct sched_taint taint_unschedulable = {
	(char *)"node.kubernetes.io/unschedulable", (char *)"", SCHED_NO_SCHEDULE};
static const struct sched_taint taint_not_ready = {
	(char *)"node.kubernetes.io/not-ready", (char *)"", SCHED_NO_SCHEDULE};
static const struct sched_taint taint_unreachable = {
	(char *)"node.kubernetes.io/unreachable", (char *)"", SCHED_NO_SCHEDULE};

bool sched__fit_unschedulable(const struct sched_pod_spec *p, const struct sched_node_spec *n)
{
	return !n->unschedulable || sched__tolerated(p->tols, p->n_tols, &taint_unschedulable);
}

const struct sched_taint *sched__fit_taints(const struct sched_pod_spec *p,
					    const struct sched_node_spec *n)
{
	for (size_t i = 0; i < n->n_taints; i++) {
		const struct sched_taint *t = &n->taints[i];
		if (t->effect != SCHED_NO_SCHEDULE && t->effect != SCHED_NO_EXECUTE)
			continue;
		if (!sched__tolerated(p->tols, p->n_tols, t))
			return t;
	}
	/* The node lifecycle controller taints a node that is not Ready; until
	 * it has, the condition itself keeps pods off, tolerably alike. */
	if (n->ready != SCHED_READY_TRUE) {
		const struct sched_taint *t =
			n->ready == SCHED_READY_FALSE ? &taint_not_ready : &taint_unreachable;
		if (!sched__tolerated(p->tols, p->n_tols, t))
			return t;
	}
	return NULL;
}

static bool has_value(const struct sched_req *r, const char *v)
{
	for (size_t i = 0; i < r->n_values; i++) {
		if (strcmp(r->values[i], v) == 0)
			return true;
	}
	return false;
}

bool sched__req_match(const struct sched_req *r, const json_t *labels, const char *name)
{
	const char *v;

	if (r->field) {
		/* Only metadata.name with In/NotIn survive parsing. */
		if (r->op == SCHED_OP_IN)
			return has_value(r, name);
		if (r->op == SCHED_OP_NOT_IN)
			return !has_value(r, name);
		return false;
	}
	v = json_string_value(json_object_get(labels, r->key));
	switch (r->op) {
	case SCHED_OP_IN:
		return v != NULL && has_value(r, v);
	case SCHED_OP_NOT_IN:
		return v == NULL || !has_value(r, v);
	case SCHED_OP_EXISTS:
		return v != NULL;
	case SCHED_OP_DOES_NOT_EXIST:
		return v == NULL;
	case SCHED_OP_GT:
	case SCHED_OP_LT: {
		char *end;
		if (v == NULL || !r->number_ok || *v == '\0')
			return false;
		errno = 0;
		long long n = strtoll(v, &end, 10);
		if (errno != 0 || *end != '\0')
			return false;
		return r->op == SCHED_OP_GT ? n > r->number : n < r->number;
	}
	case SCHED_OP_INVALID:
		break;
	}
	return false;
}

bool sched__term_match(const struct sched_term *t, const json_t *labels, const char *name)
{
	if (t->n == 0)
		return false; /* an empty term matches no objects */
	for (size_t i = 0; i < t->n; i++) {
		if (!sched__req_match(&t->reqs[i], labels, name))
			return false;
	}
	return true;
}

bool sched__fit_affinity(const struct sched_pod_spec *p, const struct sched_node_spec *n)
{
	for (size_t i = 0; i < p->n_selector; i++) {
		const char *v = json_string_value(json_object_get(n->labels, p->selector[2 * i]));
		if (v == NULL || strcmp(v, p->selector[2 * i + 1]) != 0)
			return false;
	}
	if (!p->has_affinity)
		return true;
	for (size_t i = 0; i < p->n_terms; i++) {
		if (sched__term_match(&p->terms[i], n->labels, n->name))
			return true;
	}
	return false;
}

bool sched__ports_conflict(const struct sched_port *a, const struct sched_port *b)
{
	if (a->port != b->port || a->proto != b->proto)
		return false;
	return a->ip[0] == '\0' || b->ip[0] == '\0' || strcmp(a->ip, b->ip) == 0;
}

bool sched__fit_ports(const struct sched_pod_spec *p, const struct sched_node *n)
{
	for (size_t i = 0; i < p->n_ports; i++) {
		for (size_t j = 0; j < n->n_ports; j++) {
			if (sched__ports_conflict(&p->ports[i], &n->ports[j]))
				return false;
		}
	}
	return true;
}

unsigned sched__fit_resources(const struct sched_pod_spec *p, const struct sched_node *n)
{
	const struct sched_res *a = &n->spec.alloc;
	unsigned bits = 0;

	if (n->used.pods + 1 > a->pods)
		bits |= SCHED_FIT_TOO_MANY_PODS;
	if (p->req.cpu > 0 && p->req.cpu > a->cpu - n->used.cpu)
		bits |= SCHED_FIT_CPU;
	if (p->req.mem > 0 && p->req.mem > a->mem - n->used.mem)
		bits |= SCHED_FIT_MEMORY;
	return bits;
}

unsigned sched__filter(const struct sched_pod_spec *p, const struct sched_node *n,
		       const struct sched_taint **ret_taint)
{
	return sched__filter_with(p, n, -1, ret_taint);
}

unsigned sched__filter_with(const struct sched_pod_spec *p, const struct sched_node *n,
			    int affinity, const struct sched_taint **ret_taint)
{
	const struct sched_taint *t;

	/* Cheap tests first: this runs for every node and every pod. */
	if (!n->spec.plain) {
		if (!sched__fit_unschedulable(p, &n->spec))
			return SCHED_FIT_UNSCHEDULABLE;
		t = sched__fit_taints(p, &n->spec);
		if (t != NULL) {
			if (ret_taint != NULL)
				*ret_taint = t;
			return SCHED_FIT_TAINT;
		}
	}
	if ((p->n_selector > 0 || p->has_affinity) &&
	    (affinity >= 0 ? affinity == 0 : !sched__fit_affinity(p, &n->spec)))
		return SCHED_FIT_AFFINITY;
	if (p->n_ports > 0 && !sched__fit_ports(p, n))
		return SCHED_FIT_PORTS;
	return sched__fit_resources(p, n);
}

/* ------------------------------------------------------------ diagnosis */

static const char *const reason_text[] = {
	"node(s) were unschedulable",
	NULL, /* taints: per taint */
	"node(s) didn't match Pod's node affinity/selector",
	"node(s) didn't have free ports for the requested pod ports",
	"Too many pods",
	"Insufficient cpu",
	"Insufficient memory",
};

void sched__diag_init(struct sched_diag *d)
{
	memset(d, 0, sizeof(*d));
}

void sched__diag_clear(struct sched_diag *d)
{
	for (size_t i = 0; i < d->n_taints; i++)
		free(d->taints[i].text);
	free(d->taints);
	memset(d, 0, sizeof(*d));
}

int sched__diag_add(struct sched_diag *d, unsigned bits, const struct sched_taint *taint)
{
	char text[512];
	size_t i;

	for (i = 0; i < sizeof(reason_text) / sizeof(reason_text[0]); i++) {
		if ((bits & (1u << i)) != 0 && reason_text[i] != NULL)
			d->counts[i]++;
	}
	if ((bits & SCHED_FIT_TAINT) == 0 || taint == NULL)
		return 0;
	snprintf(text, sizeof(text), "node(s) had untolerated taint {%s: %s}", taint->key,
		 taint->value);
	for (i = 0; i < d->n_taints; i++) {
		if (strcmp(d->taints[i].text, text) == 0) {
			d->taints[i].count++;
			return 0;
		}
	}
	void *grown = realloc(d->taints, (d->n_taints + 1) * sizeof(*d->taints));
	if (grown == NULL)
		return -ENOMEM;
	d->taints = grown;
	d->taints[d->n_taints].text = strdup(text);
	if (d->taints[d->n_taints].text == NULL)
		return -ENOMEM;
	d->taints[d->n_taints++].count = 1;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool sched__same_reasons(const char *a, const char *b)
{
	while (*a != '\0' && *b != '\0') {
		if (is_digit(*a) && is_digit(*b)) {
			while (is_digit(*a))
				a++;
			while (is_digit(*b))
				b++;
			continue;
		}
		if (*a++ != *b++)
			return false;
	}
	return *a == *b;
}

char *sched__diag_message(const struct sched_diag *d)
{
	size_t n_reasons = sizeof(reason_text) / sizeof(reason_text[0]);
	char **parts = NULL;
	size_t n = 0, len, i;
	char *msg = NULL;
	int w;

	if (d->n_nodes == 0)
		return strdup("no nodes available to schedule pods");
	parts = calloc(n_reasons + d->n_taints, sizeof(*parts));
	if (parts == NULL)
		return NULL;
	for (i = 0; i < n_reasons; i++) {
		if (reason_text[i] != NULL && d->counts[i] > 0 &&
		    asprintf(&parts[n++], "%zu %s", d->counts[i], reason_text[i]) < 0) {
			parts[--n] = NULL;
			goto out;
		}
	}
	for (i = 0; i < d->n_taints; i++) {
		if (asprintf(&parts[n++], "%zu %s", d->taints[i].count, d->taints[i].text) < 0) {
			parts[--n] = NULL;
			goto out;
		}
	}
	qsort(parts, n, sizeof(*parts), cmp_str);
	len = 64;
	for (i = 0; i < n; i++)
		len += strlen(parts[i]) + 2;
	msg = malloc(len);
	if (msg == NULL)
		goto out;
	w = snprintf(msg, len, "0/%zu nodes are available", d->n_nodes);
	size_t off = w > 0 ? (size_t)w : 0;
	for (i = 0; i < n; i++) {
		w = snprintf(msg + off, len - off, "%s%s", i == 0 ? ": " : ", ", parts[i]);
		off += w > 0 ? (size_t)w : 0;
	}
	snprintf(msg + off, len - off, ".");
out:
	for (i = 0; i < n; i++)
		free(parts[i]);
	free(parts);
	return msg;
}
