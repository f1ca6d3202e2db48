/* The Service -> pods index of the endpoint controllers (svcpods.h).
 *
 * Two trees: services by "<ns>/<name>" (so the services of a namespace are
 * one contiguous range) each with the set of pod names it selects, and
 * pod summaries by "<ns>/<name>" for every pod some Service selects. A
 * pod event costs one selector match per Service of its namespace; a
 * Service event whose selector changed rescans the pods of its namespace
 * in the store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/queue.h>
#include <sys/tree.h>

#include "src/api/selector.h"
#include "src/ctrl/podtemplate.h"
#include "src/ctrl/svcpods.h"
#include "src/lib/log.h"

struct member {
	RB_ENTRY(member) link;
	char name[];
};

static int member_cmp(const struct member *a, const struct member *b)
{
	return strcmp(a->name, b->name);
}

RB_HEAD(member_tree, member);
RB_GENERATE_INTERNAL(member_tree, member, link, member_cmp, static __attribute__((unused)))

struct svc {
	RB_ENTRY(svc) link;
	struct api_selector *sel;
	char *sel_text; /* canonical form, to notice selector changes */
	struct member_tree members;
	size_t ns_len; /* key[0..ns_len) is the namespace */
	char key[];
};

static int svc_cmp(const struct svc *a, const struct svc *b)
{
	return strcmp(a->key, b->key);
}

RB_HEAD(svc_tree, svc);
RB_GENERATE_INTERNAL(svc_tree, svc, link, svc_cmp, static __attribute__((unused)))

struct pod {
	RB_ENTRY(pod) link;
	struct ctrl_svcpod s;
	char key[];
};

static int pod_cmp(const struct pod *a, const struct pod *b)
{
	return strcmp(a->key, b->key);
}

RB_HEAD(pod_tree, pod);
RB_GENERATE_INTERNAL(pod_tree, pod, link, pod_cmp, static __attribute__((unused)))

struct ctrl_svcpods {
	struct svc_tree svcs;
	struct pod_tree pods;
	const struct api_kind *pod_kind;
};

/* Lookup keys are built on the stack: keys are bounded by the store key
 * size (ns <= 63, name <= 253). */
#define KEY_MAX 320

bool ctrl__svcpods_key(const char *ns, const char *name, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/%s", ns, name);

	return n > 0 && (size_t)n < size;
}

int ctrl__svcpods_new(struct ctrl_svcpods **ret)
{
	struct ctrl_svcpods *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return -ENOMEM;
	RB_INIT(&x->svcs);
	RB_INIT(&x->pods);
	x->pod_kind = api_kind_by_resource("", "v1", "pods");
	*ret = x;
	return 0;
}

static void members_clear(struct member_tree *t)
{
	struct member *m, *next;

	RB_FOREACH_SAFE(m, member_tree, t, next)
	{
		RB_REMOVE(member_tree, t, m);
		free(m);
	}
}

static void podsum_clear(struct ctrl_svcpod *s)
{
	free(s->name);
	free(s->uid);
	free(s->ip);
	free(s->node);
	free(s->hostname);
	free(s->subdomain);
	json_decref(s->ports);
	memset(s, 0, sizeof(*s));
}

void ctrl__svcpods_free(struct ctrl_svcpods *x)
{
	struct svc *s, *sn;
	struct pod *p, *pn;

	if (x == NULL)
		return;
	RB_FOREACH_SAFE(s, svc_tree, &x->svcs, sn)
	{
		RB_REMOVE(svc_tree, &x->svcs, s);
		members_clear(&s->members);
		api_selector_free(s->sel);
		free(s->sel_text);
		free(s);
	}
	RB_FOREACH_SAFE(p, pod_tree, &x->pods, pn)
	{
		RB_REMOVE(pod_tree, &x->pods, p);
		podsum_clear(&p->s);
		free(p);
	}
	free(x);
}

/* ------------------------------------------------------------ trees */

static struct svc *svc_find(struct ctrl_svcpods *x, const char *key)
{
	union {
		struct svc s;
		char buf[sizeof(struct svc) + KEY_MAX];
	} k;

	if (strlen(key) >= KEY_MAX)
		return NULL;
	strcpy(k.s.key, key);
	return RB_FIND(svc_tree, &x->svcs, &k.s);
}

static struct pod *pod_find(struct ctrl_svcpods *x, const char *key)
{
	union {
		struct pod p;
		char buf[sizeof(struct pod) + KEY_MAX];
	} k;

	if (strlen(key) >= KEY_MAX)
		return NULL;
	strcpy(k.p.key, key);
	return RB_FIND(pod_tree, &x->pods, &k.p);
}

static struct member *member_find(struct svc *s, const char *name)
{
	union {
		struct member m;
		char buf[sizeof(struct member) + KEY_MAX];
	} k;

	if (strlen(name) >= KEY_MAX)
		return NULL;
	strcpy(k.m.name, name);
	return RB_FIND(member_tree, &s->members, &k.m);
}

bool ctrl__svcpods_has(struct ctrl_svcpods *x, const char *key)
{
	return svc_find(x, key) != NULL;
}

/* ------------------------------------------------------------ pods */

/* The container ports of a pod: [{name, containerPort, protocol}]. */
static json_t *container_ports(const json_t *pod)
{
	json_t *out = json_array(), *ctrs, *ctr, *ports, *port;
	size_t i, j;

	if (out == NULL)
		return NULL;
	ctrs = api_json_path(pod, "spec.containers");
	json_array_foreach(ctrs, i, ctr)
	{
		ports = json_object_get(ctr, "ports");
		json_array_foreach(ports, j, port)
		{
			const char *name = json_string_value(json_object_get(port, "name"));
			const char *proto = json_string_value(json_object_get(port, "protocol"));
			json_t *cp = json_object_get(port, "containerPort");
			if (name == NULL || !json_is_integer(cp))
				continue; /* only named ports can be looked up */
			json_array_append_new(out, json_pack("{s:s, s:O, s:s}", "name", name,
							     "containerPort", cp, "protocol",
							     proto != NULL ? proto : "TCP"));
		}
	}
	return out;
}

/* Fills @s from the pod tree @obj. Returns 0 or -ENOMEM. */
static int podsum_fill(struct ctrl_svcpod *s, const json_t *obj, const char *name)
{
	const char *phase = ctrl_str(obj, "status.phase");
	uint64_t t, latest;

	podsum_clear(s);
	s->name = strdup(name);
	s->uid = ctrl__strdup0(ctrl_str(obj, "metadata.uid"));
	s->ip = ctrl__strdup0(ctrl_str(obj, "status.podIP"));
	s->node = ctrl__strdup0(ctrl_str(obj, "spec.nodeName"));
	s->hostname = ctrl__strdup0(ctrl_str(obj, "spec.hostname"));
	s->subdomain = ctrl__strdup0(ctrl_str(obj, "spec.subdomain"));
	s->ports = container_ports(obj);
	s->ready = ctrl_pod_ready(obj);
	s->deleting = ctrl_str(obj, "metadata.deletionTimestamp") != NULL;
	s->terminal = phase != NULL && (strcmp(phase, "Succeeded") == 0 ||
					strcmp(phase, "Failed") == 0);
	latest = ctrl__time_at(obj, "metadata.creationTimestamp");
	t = ctrl__condition_time(obj, "Ready", "lastTransitionTime");
	latest = t > latest ? t : latest;
	t = ctrl__time_at(obj, "metadata.deletionTimestamp");
	s->changed_ms = t > latest ? t : latest;
	if (s->name == NULL || s->uid == NULL || s->ip == NULL || s->node == NULL ||
	    s->hostname == NULL || s->subdomain == NULL || s->ports == NULL)
		return -ENOMEM;
	return 0;
}

static bool podsum_equal(const struct ctrl_svcpod *a, const struct ctrl_svcpod *b)
{
	return strcmp(a->uid, b->uid) == 0 && strcmp(a->ip, b->ip) == 0 &&
	       strcmp(a->node, b->node) == 0 && strcmp(a->hostname, b->hostname) == 0 &&
	       strcmp(a->subdomain, b->subdomain) == 0 && a->ready == b->ready &&
	       a->deleting == b->deleting && a->terminal == b->terminal &&
	       json_equal(a->ports, b->ports);
}

/* The summary of pod "<ns>/<name>" with one more reference, created from
 * @obj when absent. NULL on OOM. */
static struct pod *pod_ref(struct ctrl_svcpods *x, const char *key, const char *name,
			   const json_t *obj)
{
	struct pod *p = pod_find(x, key);
	size_t len = strlen(key);

	if (p == NULL) {
		p = calloc(1, sizeof(*p) + len + 1);
		if (p == NULL)
			return NULL;
		memcpy(p->key, key, len + 1);
		if (podsum_fill(&p->s, obj, name) != 0) {
			podsum_clear(&p->s);
			free(p);
			return NULL;
		}
		RB_INSERT(pod_tree, &x->pods, p);
	}
	p->s.refs++;
	return p;
}

static void pod_unref(struct ctrl_svcpods *x, const char *key)
{
	struct pod *p = pod_find(x, key);

	if (p == NULL || --p->s.refs > 0)
		return;
	RB_REMOVE(pod_tree, &x->pods, p);
	podsum_clear(&p->s);
	free(p);
}

static int member_add(struct svc *s, const char *name)
{
	size_t len = strlen(name);
	struct member *m = malloc(sizeof(*m) + len + 1);

	if (m == NULL)
		return -ENOMEM;
	memcpy(m->name, name, len + 1);
	RB_INSERT(member_tree, &s->members, m);
	return 0;
}

/* ------------------------------------------------------------ services */

bool ctrl__svcpods_selects(const json_t *svc)
{
	const json_t *sel = api_json_path(svc, "spec.selector");
	const char *type = ctrl_str(svc, "spec.type");

	return json_is_object(sel) && json_object_size(sel) > 0 &&
	       (type == NULL || strcmp(type, "ExternalName") != 0);
}

static void svc_drop(struct ctrl_svcpods *x, struct svc *s)
{
	struct member *m, *next;
	char key[KEY_MAX];

	RB_FOREACH_SAFE(m, member_tree, &s->members, next)
	{
		snprintf(key, sizeof(key), "%.*s/%s", (int)s->ns_len, s->key, m->name);
		pod_unref(x, key);
		RB_REMOVE(member_tree, &s->members, m);
		free(m);
	}
	RB_REMOVE(svc_tree, &x->svcs, s);
	api_selector_free(s->sel);
	free(s->sel_text);
	free(s);
}

struct rescan {
	struct ctrl_svcpods *x;
	struct svc *s;
	int rv;
};

static int rescan_cb(const struct store_kv *kv, void *data)
{
	struct rescan *r = data;
	char ns[256], name[256], key[KEY_MAX];
	json_t *obj;
	struct pod *p;

	if (!api_selector_match_msgpack(r->s->sel, kv->val, kv->val_len))
		return 0;
	/* store keys are not NUL-terminated: copy first */
	if (kv->key_len >= sizeof(key))
		return 0;
	memcpy(key, kv->key, kv->key_len);
	key[kv->key_len] = '\0';
	if (ctrl__split_key(key, ns, name, sizeof(name)) != 0 ||
	    !ctrl__svcpods_key(ns, name, key, sizeof(key)))
		return 0;
	obj = ctrl_decode(kv->val, kv->val_len, kv->mod_rev);
	if (obj == NULL) {
		r->rv = -ENOMEM;
		return 1;
	}
	p = pod_ref(r->x, key, name, obj);
	json_decref(obj);
	if (p == NULL || member_add(r->s, name) != 0) {
		if (p != NULL)
			pod_unref(r->x, key);
		r->rv = -ENOMEM;
		return 1;
	}
	return 0;
}

static void on_service(struct ctrl_svcpods *x, struct ctrl *c, const struct ctrl_event *ev)
{
	char key[KEY_MAX];
	struct svc *s;
	json_t *obj = NULL, *ls = NULL;
	struct api_selector *sel = NULL;
	char *text = NULL;
	size_t len;

	if (!ctrl__svcpods_key(ev->ns, ev->name, key, sizeof(key)))
		return;
	ctrl_enqueue(c, key);
	s = svc_find(x, key);
	if (ev->type != CTRL_DELETED) {
		obj = ctrl_decode(ev->val, ev->val_len, 0);
		if (obj == NULL)
			return;
	}
	if (obj == NULL || !ctrl__svcpods_selects(obj)) {
		if (s != NULL)
			svc_drop(x, s);
		goto out;
	}
	ls = json_pack("{s:O}", "matchLabels", api_json_path(obj, "spec.selector"));
	if (ls == NULL || api_selector_from_json(ls, &sel, NULL, 0) != 0 ||
	    (text = api_selector_string(sel)) == NULL)
		goto oom;
	if (s != NULL && strcmp(s->sel_text, text) == 0)
		goto out; /* same pods */
	if (s != NULL)
		svc_drop(x, s);
	len = strlen(key);
	s = calloc(1, sizeof(*s) + len + 1);
	if (s == NULL)
		goto oom;
	memcpy(s->key, key, len + 1);
	s->ns_len = strlen(ev->ns);
	s->sel = sel;
	s->sel_text = text;
	sel = NULL;
	text = NULL;
	RB_INIT(&s->members);
	RB_INSERT(svc_tree, &x->svcs, s);
	{
		struct rescan r = {x, s, 0};
		ctrl_list(c, x->pod_kind, ev->ns, rescan_cb, &r);
		if (r.rv != 0) {
			/* A partial member set would publish wrong endpoints. */
			svc_drop(x, s);
			goto oom;
		}
	}
	goto out;
oom:
	ctrl_log(c, LOG_LEVEL_ERROR, "out of memory indexing %s", ev->key);
out:
	api_selector_free(sel);
	free(text);
	json_decref(ls);
	json_decref(obj);
}

/* ------------------------------------------------------------ pod events */

static void on_pod(struct ctrl_svcpods *x, struct ctrl *c, const struct ctrl_event *ev)
{
	char pkey[KEY_MAX], prefix[KEY_MAX];
	union {
		struct svc s;
		char buf[sizeof(struct svc) + KEY_MAX];
	} k;
	struct pod *p;
	struct svc *s;
	struct ctrl_svcpod fresh = {0};
	json_t *obj = NULL;
	bool changed = true;
	size_t plen;

	if (!ctrl__svcpods_key(ev->ns, ev->name, pkey, sizeof(pkey)) ||
	    !ctrl__svcpods_key(ev->ns, "", prefix, sizeof(prefix)))
		return;
	plen = strlen(prefix);
	p = pod_find(x, pkey);
	strcpy(k.s.key, prefix);
	s = RB_NFIND(svc_tree, &x->svcs, &k.s);
	if (p == NULL && (s == NULL || strncmp(s->key, prefix, plen) != 0))
		return; /* no Service in the namespace: the common case, no decode */
	if (ev->type != CTRL_DELETED) {
		obj = ctrl_decode(ev->val, ev->val_len, ev->mod_rev);
		if (obj == NULL)
			return;
		/* Refresh the summary once for every Service that keeps it. */
		if (p != NULL) {
			if (podsum_fill(&fresh, obj, ev->name) != 0) {
				podsum_clear(&fresh);
				ctrl_log(c, LOG_LEVEL_ERROR, "out of memory indexing %s", ev->key);
				goto out;
			}
			changed = !podsum_equal(&fresh, &p->s);
			fresh.refs = p->s.refs;
			podsum_clear(&p->s);
			p->s = fresh;
		}
	}
	while (s != NULL) {
		struct svc *next = RB_NEXT(svc_tree, &x->svcs, s);
		struct member *m;
		bool match;

		if (strncmp(s->key, prefix, plen) != 0)
			break;
		match = obj != NULL && api_selector_match_msgpack(s->sel, ev->val, ev->val_len);
		m = member_find(s, ev->name);
		if (match && m == NULL) {
			if (pod_ref(x, pkey, ev->name, obj) == NULL || member_add(s, ev->name) != 0) {
				ctrl_log(c, LOG_LEVEL_ERROR, "out of memory indexing %s", ev->key);
				break;
			}
			ctrl_enqueue(c, s->key);
		} else if (!match && m != NULL) {
			RB_REMOVE(member_tree, &s->members, m);
			free(m);
			pod_unref(x, pkey);
			ctrl_enqueue(c, s->key);
		} else if (match && changed) {
			ctrl_enqueue(c, s->key);
		}
		s = next;
	}
out:
	json_decref(obj);
}

void ctrl__svcpods_event(struct ctrl_svcpods *x, struct ctrl *c, const struct ctrl_event *ev)
{
	if (ev->ns == NULL || ev->kind->group[0] != '\0')
		return;
	if (strcmp(ev->kind->plural, "pods") == 0)
		on_pod(x, c, ev);
	else if (strcmp(ev->kind->plural, "services") == 0)
		on_service(x, c, ev);
}

/* ------------------------------------------------------------ reads */

size_t ctrl__svcpods_each(struct ctrl_svcpods *x, const char *key,
			  void (*cb)(const struct ctrl_svcpod *p, void *data), void *data)
{
	struct svc *s = svc_find(x, key);
	struct member *m;
	char pkey[KEY_MAX];
	size_t n = 0;

	if (s == NULL)
		return 0;
	RB_FOREACH(m, member_tree, &s->members)
	{
		struct pod *p;

		snprintf(pkey, sizeof(pkey), "%.*s/%s", (int)s->ns_len, s->key, m->name);
		p = pod_find(x, pkey);
		if (p == NULL)
			continue;
		cb(&p->s, data);
		n++;
	}
	return n;
}

json_t *ctrl__svcpods_ports(const json_t *svc, const struct ctrl_svcpod *pod)
{
	json_t *out = json_array(), *sp;
	const json_t *ports = api_json_path(svc, "spec.ports");
	size_t i, j;

	if (out == NULL)
		return NULL;
	json_array_foreach(ports, i, sp)
	{
		const char *name = json_string_value(json_object_get(sp, "name"));
		const char *proto = json_string_value(json_object_get(sp, "protocol"));
		const char *app = json_string_value(json_object_get(sp, "appProtocol"));
		json_t *tp = json_object_get(sp, "targetPort"), *ep, *cp;
		json_int_t num = -1;

		if (proto == NULL)
			proto = "TCP";
		if (json_is_integer(tp)) {
			num = json_integer_value(tp);
		} else if (json_is_string(tp)) {
			const char *tn = json_string_value(tp);
			char *end;
			long v = strtol(tn, &end, 10);
			if (*tn != '\0' && *end == '\0') {
				num = v; /* "8080" written as a string */
			} else {
				json_array_foreach(pod->ports, j, cp)
				{
					if (strcmp(json_string_value(json_object_get(cp, "name")), tn) ==
						    0 &&
					    strcmp(json_string_value(json_object_get(cp, "protocol")),
						   proto) == 0) {
						num = json_integer_value(
							json_object_get(cp, "containerPort"));
						break;
					}
				}
			}
		} else {
			num = json_integer_value(json_object_get(sp, "port"));
		}
		if (num <= 0 || num > 65535)
			continue; /* Kubernetes: "failed to find port", skipped */
		ep = json_object();
		if (ep == NULL)
			goto oom;
		if (name != NULL && name[0] != '\0')
			json_object_set_new(ep, "name", json_string(name));
		json_object_set_new(ep, "port", json_integer(num));
		json_object_set_new(ep, "protocol", json_string(proto));
		if (app != NULL)
			json_object_set_new(ep, "appProtocol", json_string(app));
		json_array_append_new(out, ep);
	}
	return out;
oom:
	json_decref(out);
	return NULL;
}

json_t *ctrl__svcpods_labels(const json_t *svc)
{
	json_t *l = json_object(), *src = api_json_path(svc, "metadata.labels");
	const char *cip = ctrl_str(svc, "spec.clusterIP");

	if (l == NULL)
		return NULL;
	if (json_is_object(src))
		json_object_update(l, src);
	if (cip != NULL && strcmp(cip, "None") == 0)
		json_object_set_new(l, "service.kubernetes.io/headless", json_string(""));
	return l;
}

void ctrl__svcpods_decorate(json_t *ep, const struct ctrl_svcpod *pod, const char *ns,
			    const char *svc_name)
{
	if (pod->hostname[0] != '\0' && strcmp(pod->subdomain, svc_name) == 0)
		json_object_set_new(ep, "hostname", json_string(pod->hostname));
	if (pod->node[0] != '\0')
		json_object_set_new(ep, "nodeName", json_string(pod->node));
	json_object_set_new(ep, "targetRef",
			    json_pack("{s:s, s:s, s:s, s:s}", "kind", "Pod", "namespace", ns, "name",
				      pod->name, "uid", pod->uid));
}
