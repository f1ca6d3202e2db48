/* Service address allocation.  The ranges are bitmaps of offsets; the
 * Service helpers record every claim and release of one call in a small
 * journal, so that a call that fails (an invalid request, a full range)
 * leaves the allocators exactly as it found them. */
#include "src/api/alloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* kube-apiserver refuses a service CIDR of more than 2^20 addresses. */
#define MAX_HOST_BITS 20

/* ---------------------------------------------------------------- Random */

uint64_t api_alloc_splitmix64(void *data)
{
	uint64_t *state = data;
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* ---------------------------------------------------------------- Bitmap */

/* Kubernetes splits each range into a lower block for addresses users
 * ask for and an upper block that random allocation tries first, so that
 * a static address is rarely taken already.  The block sizes follow its
 * allocators: size/16 clamped to [16, 256] for IPs, size/32 clamped to
 * [16, 128] for ports, none below 16. */
static uint32_t split_offset(uint32_t size, uint32_t step, uint32_t max)
{
	if (size < 16) {
		return 0;
	}
	uint32_t off = size / step;
	if (off < 16) {
		off = 16;
	}
	if (off > max) {
		off = max;
	}
	return off;
}

static int bm_init(struct api_alloc_bitmap *b, uint32_t size, uint32_t offset)
{
	size_t n = ((size_t)size + 63) / 64;
	b->words = calloc(n ? n : 1, sizeof(*b->words));
	if (!b->words) {
		return -ENOMEM;
	}
	b->size = size;
	b->offset = offset;
	b->used = 0;
	return 0;
}

static void bm_close(struct api_alloc_bitmap *b)
{
	free(b->words);
	b->words = NULL;
	b->size = b->used = 0;
}

static bool bm_test(const struct api_alloc_bitmap *b, uint32_t i)
{
	return (b->words[i / 64] >> (i % 64)) & 1;
}

static int bm_set(struct api_alloc_bitmap *b, uint32_t i)
{
	if (bm_test(b, i)) {
		return -EEXIST;
	}
	b->words[i / 64] |= 1ULL << (i % 64);
	b->used++;
	return 0;
}

static int bm_clear(struct api_alloc_bitmap *b, uint32_t i)
{
	if (!bm_test(b, i)) {
		return -ENOENT;
	}
	b->words[i / 64] &= ~(1ULL << (i % 64));
	b->used--;
	return 0;
}

/* The first free bit in [from, to), a word at a time. */
static int bm_first_free(const struct api_alloc_bitmap *b, uint32_t from, uint32_t to, uint32_t *ret)
{
	uint32_t i = from;
	while (i < to) {
		uint32_t w = i / 64;
		uint64_t free_bits = ~b->words[w] & (~0ULL << (i % 64));
		if (free_bits) {
			uint32_t found = w * 64 + (uint32_t)__builtin_ctzll(free_bits);
			if (found >= to) {
				break;
			}
			*ret = found;
			return 0;
		}
		i = (w + 1) * 64;
	}
	return -ENOSPC;
}

/* A free bit in [lo, hi), scanning from a random start and wrapping. */
static int bm_scan(const struct api_alloc_bitmap *b, uint32_t lo, uint32_t hi, uint64_t r, uint32_t *ret)
{
	if (lo >= hi) {
		return -ENOSPC;
	}
	uint32_t start = lo + (uint32_t)(r % (hi - lo));
	if (bm_first_free(b, start, hi, ret) == 0) {
		return 0;
	}
	return bm_first_free(b, lo, start, ret);
}

static int bm_next(struct api_alloc_bitmap *b, const struct api_alloc_rand *rnd, uint32_t *ret)
{
	uint32_t i;
	if (b->used >= b->size) {
		return -ENOSPC;
	}
	if (bm_scan(b, b->offset, b->size, rnd->next(rnd->data), &i) != 0 &&
	    bm_scan(b, 0, b->offset, rnd->next(rnd->data), &i) != 0) {
		return -ENOSPC; /* unreachable while used < size */
	}
	bm_set(b, i);
	*ret = i;
	return 0;
}

/* ---------------------------------------------------------------- IP ranges */

static size_t family_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

static bool parse_uint(const char *s, unsigned max, unsigned *ret)
{
	unsigned v = 0;
	if (!*s || strlen(s) > 5) {
		return false;
	}
	for (; *s; s++) {
		if (*s < '0' || *s > '9') {
			return false;
		}
		v = v * 10 + (unsigned)(*s - '0');
	}
	if (v > max) {
		return false;
	}
	*ret = v;
	return true;
}

int api_ip_range_parse(const char *s, struct api_ip_range *ret, const char **ret_detail)
{
	const char *detail_unused;
	const char **detail = ret_detail ? ret_detail : &detail_unused;
	struct api_ip_range r;
	char addr[API_ALLOC_IP_LEN];
	memset(&r, 0, sizeof(r));

	const char *slash = s ? strchr(s, '/') : NULL;
	if (!slash || (size_t)(slash - s) >= sizeof(addr)) {
		*detail = "must be a CIDR such as 10.96.0.0/12";
		return -EINVAL;
	}
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = '\0';
	if (inet_pton(AF_INET, addr, r.net) == 1) {
		r.family = AF_INET;
	} else if (inet_pton(AF_INET6, addr, r.net) == 1) {
		r.family = AF_INET6;
	} else {
		*detail = "must be a CIDR such as 10.96.0.0/12: bad address";
		return -EINVAL;
	}
	unsigned bits_total = (unsigned)family_len(r.family) * 8;
	if (!parse_uint(slash + 1, bits_total, &r.prefix)) {
		*detail = "must be a CIDR such as 10.96.0.0/12: bad prefix length";
		return -EINVAL;
	}
	unsigned host_bits = bits_total - r.prefix;
	if (host_bits > MAX_HOST_BITS) {
		*detail = r.family == AF_INET ? "range too large: for IPv4 the mask must be >= 12"
					      : "range too large: for IPv6 the mask must be >= 108";
		return -ERANGE;
	}
	/* The network address and, for IPv4, the broadcast address are not
	 * allocatable. */
	uint32_t span = 1U << host_bits;
	uint32_t reserved = r.family == AF_INET ? 2 : 1;
	if (span < reserved + 2) {
		*detail = "range too small: it must hold at least 2 allocatable addresses";
		return -ERANGE;
	}
	r.size = span - reserved;
	/* Clear the host bits, as net.ParseCIDR does. */
	for (unsigned i = 0; i < bits_total; i++) {
		if (i >= r.prefix) {
			r.net[i / 8] &= (uint8_t) ~(0x80U >> (i % 8));
		}
	}
	if (!inet_ntop(r.family, r.net, addr, sizeof(addr))) {
		*detail = "bad address";
		return -EINVAL;
	}
	snprintf(r.text, sizeof(r.text), "%s/%u", addr, r.prefix);
	*ret = r;
	return 0;
}

/* The address at @off, as text. */
static void offset_text(const struct api_ip_range *r, uint32_t off, char buf[API_ALLOC_IP_LEN])
{
	uint8_t a[16];
	size_t len = family_len(r->family);
	memcpy(a, r->net, sizeof(a));
	/* At most 20 host bits, all zero in the network address: adding to
	 * the last four bytes cannot carry into the prefix. */
	uint32_t host = off + 1;
	for (size_t i = 0; i < 4; i++) {
		a[len - 1 - i] |= (uint8_t)(host >> (8 * i));
	}
	if (!inet_ntop(r->family, a, buf, API_ALLOC_IP_LEN)) {
		buf[0] = '\0';
	}
}

void api_ip_range_first(const struct api_ip_range *r, char buf[API_ALLOC_IP_LEN])
{
	offset_text(r, 0, buf);
}

const char *api_ip_range_family_name(const struct api_ip_range *r)
{
	return r->family == AF_INET ? "IPv4" : "IPv6";
}

/* The offset of @ip in @r.  An address of the other family is out of
 * range, not malformed. */
static int ip_offset(const struct api_ip_range *r, const char *ip, uint32_t *ret)
{
	uint8_t a[16];
	if (!ip) {
		return -EINVAL;
	}
	if (inet_pton(r->family, ip, a) != 1) {
		int other = r->family == AF_INET ? AF_INET6 : AF_INET;
		return inet_pton(other, ip, a) == 1 ? -ERANGE : -EINVAL;
	}
	size_t len = family_len(r->family);
	unsigned full = r->prefix / 8;
	unsigned rem = r->prefix % 8;
	if (memcmp(a, r->net, full) != 0) {
		return -ERANGE;
	}
	if (rem && ((a[full] ^ r->net[full]) & (uint8_t)(0xffU << (8 - rem)))) {
		return -ERANGE;
	}
	uint32_t host = 0;
	for (size_t i = len - 4; i < len; i++) {
		host = host << 8 | a[i];
	}
	host &= (1U << ((unsigned)len * 8 - r->prefix)) - 1;
	if (host == 0 || host > r->size) {
		return -ERANGE;
	}
	*ret = host - 1;
	return 0;
}

/* ---------------------------------------------------------------- IP allocator */

int api_ip_alloc_init(struct api_ip_alloc *a, const struct api_ip_range *r)
{
	a->range = *r;
	return bm_init(&a->bits, r->size, split_offset(r->size, 16, 256));
}

void api_ip_alloc_close(struct api_ip_alloc *a)
{
	bm_close(&a->bits);
}

int api_ip_alloc_mark(struct api_ip_alloc *a, const char *ip)
{
	uint32_t off;
	int rv = ip_offset(&a->range, ip, &off);
	return rv != 0 ? rv : bm_set(&a->bits, off);
}

int api_ip_alloc_release(struct api_ip_alloc *a, const char *ip)
{
	uint32_t off;
	int rv = ip_offset(&a->range, ip, &off);
	return rv != 0 ? rv : bm_clear(&a->bits, off);
}

bool api_ip_alloc_used(const struct api_ip_alloc *a, const char *ip)
{
	uint32_t off;
	return ip_offset(&a->range, ip, &off) == 0 && bm_test(&a->bits, off);
}

int api_ip_alloc_next(struct api_ip_alloc *a, const struct api_alloc_rand *rnd, char ret_ip[API_ALLOC_IP_LEN])
{
	uint32_t off;
	int rv = bm_next(&a->bits, rnd, &off);
	if (rv == 0) {
		offset_text(&a->range, off, ret_ip);
	}
	return rv;
}

uint32_t api_ip_alloc_free(const struct api_ip_alloc *a)
{
	return a->bits.size - a->bits.used;
}

/* ---------------------------------------------------------------- Port ranges */

int api_port_range_parse(const char *s, struct api_port_range *ret, const char **ret_detail)
{
	const char *detail_unused;
	const char **detail = ret_detail ? ret_detail : &detail_unused;
	char lo_text[8], hi_text[8];
	unsigned lo, hi;
	const char *sep = s ? strpbrk(s, "-+") : NULL;
	size_t lo_len = sep ? (size_t)(sep - s) : (s ? strlen(s) : 0);

	*detail = "must be a port range such as 30000-32767";
	if (!s || lo_len >= sizeof(lo_text) || (sep && strlen(sep + 1) >= sizeof(hi_text))) {
		return -EINVAL;
	}
	memcpy(lo_text, s, lo_len);
	lo_text[lo_len] = '\0';
	if (!parse_uint(lo_text, 65535, &lo) || lo == 0) {
		return -EINVAL;
	}
	hi = lo;
	if (sep) {
		strcpy(hi_text, sep + 1);
		unsigned v;
		if (!parse_uint(hi_text, 65535, &v)) {
			return -EINVAL;
		}
		hi = *sep == '+' ? lo + v : v;
		if (hi > 65535 || hi < lo) {
			*detail = "must be a port range such as 30000-32767: bad upper bound";
			return -EINVAL;
		}
	}
	ret->base = lo;
	ret->size = hi - lo + 1;
	snprintf(ret->text, sizeof(ret->text), "%u-%u", lo, hi);
	return 0;
}

/* ---------------------------------------------------------------- Port allocator */

static int port_offset(const struct api_port_range *r, int64_t port, uint32_t *ret)
{
	if (port < (int64_t)r->base || port >= (int64_t)r->base + (int64_t)r->size) {
		return -ERANGE;
	}
	*ret = (uint32_t)(port - (int64_t)r->base);
	return 0;
}

int api_port_alloc_init(struct api_port_alloc *a, const struct api_port_range *r)
{
	a->range = *r;
	return bm_init(&a->bits, r->size, split_offset(r->size, 32, 128));
}

void api_port_alloc_close(struct api_port_alloc *a)
{
	bm_close(&a->bits);
}

int api_port_alloc_mark(struct api_port_alloc *a, int64_t port)
{
	uint32_t off;
	int rv = port_offset(&a->range, port, &off);
	return rv != 0 ? rv : bm_set(&a->bits, off);
}

int api_port_alloc_release(struct api_port_alloc *a, int64_t port)
{
	uint32_t off;
	int rv = port_offset(&a->range, port, &off);
	return rv != 0 ? rv : bm_clear(&a->bits, off);
}

bool api_port_alloc_used(const struct api_port_alloc *a, int64_t port)
{
	uint32_t off;
	return port_offset(&a->range, port, &off) == 0 && bm_test(&a->bits, off);
}

int api_port_alloc_next(struct api_port_alloc *a, const struct api_alloc_rand *rnd, int *ret_port)
{
	uint32_t off;
	int rv = bm_next(&a->bits, rnd, &off);
	if (rv == 0) {
		*ret_port = (int)(a->range.base + off);
	}
	return rv;
}

uint32_t api_port_alloc_free(const struct api_port_alloc *a)
{
	return a->bits.size - a->bits.used;
}

/* ---------------------------------------------------------------- Both */

int api_alloc_init(struct api_alloc *a, const char *cidr, const char *node_ports, const char **ret_detail)
{
	struct api_ip_range ipr;
	struct api_port_range pr;
	int rv;
	memset(a, 0, sizeof(*a));
	if ((rv = api_ip_range_parse(cidr ? cidr : API_ALLOC_DEFAULT_CIDR, &ipr, ret_detail)) != 0) {
		return rv;
	}
	if ((rv = api_port_range_parse(node_ports ? node_ports : API_ALLOC_DEFAULT_NODE_PORTS, &pr,
				       ret_detail)) != 0) {
		return rv;
	}
	if ((rv = api_ip_alloc_init(&a->ip, &ipr)) != 0) {
		goto err;
	}
	if ((rv = api_port_alloc_init(&a->node_ports, &pr)) != 0) {
		goto err_after_ip;
	}
	return 0;

err_after_ip:
	api_ip_alloc_close(&a->ip);
err:
	if (ret_detail) {
		*ret_detail = "out of memory";
	}
	return rv;
}

void api_alloc_close(struct api_alloc *a)
{
	api_ip_alloc_close(&a->ip);
	api_port_alloc_close(&a->node_ports);
}

/* ---------------------------------------------------------------- JSON helpers */

static const char *str_of(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static bool str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static int64_t int_of(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_integer(v) ? json_integer_value(v) : 0;
}

static int set_new(json_t *obj, const char *key, json_t *value)
{
	return value && json_object_set_new(obj, key, value) == 0 ? 0 : -ENOMEM;
}

static const char *svc_type(const json_t *spec)
{
	const char *t = str_of(spec, "type");
	return t ? t : "ClusterIP";
}

static bool type_has_node_ports(const char *type)
{
	return str_eq(type, "NodePort") || str_eq(type, "LoadBalancer");
}

/* Whether node ports are allocated for ports that ask for none. */
static bool allocates_node_ports(const json_t *spec)
{
	const char *type = svc_type(spec);
	if (str_eq(type, "NodePort")) {
		return true;
	}
	return str_eq(type, "LoadBalancer") &&
	       !json_is_false(json_object_get(spec, "allocateLoadBalancerNodePorts"));
}

static bool needs_health_check_port(const json_t *spec)
{
	return str_eq(svc_type(spec), "LoadBalancer") &&
	       str_eq(str_of(spec, "externalTrafficPolicy"), "Local");
}

/* The clusterIP of @spec, falling back on clusterIPs[0]; NULL if none. */
static const char *cluster_ip_of(const json_t *spec)
{
	const char *ip = str_of(spec, "clusterIP");
	if (ip && *ip) {
		return ip;
	}
	ip = json_string_value(json_array_get(json_object_get(spec, "clusterIPs"), 0));
	return ip && *ip ? ip : NULL;
}

/* ---------------------------------------------------------------- Journal */

struct op {
	bool ip;	/* else a node port */
	bool mark;	/* else a release */
	uint32_t value; /* IP offset or port number */
};

/* One helper call: its journal and where its causes go. */
struct call {
	struct api_alloc *a;
	const struct api_alloc_rand *rnd;
	struct api_errors *e;
	struct op *ops;
	size_t n_ops;
	size_t cap_ops;
	int oom;
};

static void journal(struct call *c, bool ip, bool mark, uint32_t value)
{
	if (c->n_ops == c->cap_ops) {
		size_t cap = c->cap_ops ? c->cap_ops * 2 : 8;
		struct op *ops = realloc(c->ops, cap * sizeof(*ops));
		if (!ops) {
			/* Undo the step that cannot be journalled, then fail. */
			struct api_alloc_bitmap *b = ip ? &c->a->ip.bits : &c->a->node_ports.bits;
			uint32_t off = ip ? value : value - c->a->node_ports.range.base;
			if (mark) {
				bm_clear(b, off);
			} else {
				bm_set(b, off);
			}
			c->oom = -ENOMEM;
			return;
		}
		c->ops = ops;
		c->cap_ops = cap;
	}
	c->ops[c->n_ops++] = (struct op){ ip, mark, value };
}

static void rollback(struct call *c)
{
	while (c->n_ops > 0) {
		struct op *o = &c->ops[--c->n_ops];
		struct api_alloc_bitmap *b = o->ip ? &c->a->ip.bits : &c->a->node_ports.bits;
		uint32_t off = o->ip ? o->value : o->value - c->a->node_ports.range.base;
		if (o->mark) {
			bm_clear(b, off);
		} else {
			bm_set(b, off);
		}
	}
}

static int ip_mark(struct call *c, const char *ip)
{
	uint32_t off;
	int rv = ip_offset(&c->a->ip.range, ip, &off);
	if (rv == 0 && (rv = bm_set(&c->a->ip.bits, off)) == 0) {
		journal(c, true, true, off);
	}
	return rv;
}

static void ip_release(struct call *c, const char *ip)
{
	uint32_t off;
	if (ip_offset(&c->a->ip.range, ip, &off) == 0 && bm_clear(&c->a->ip.bits, off) == 0) {
		journal(c, true, false, off);
	}
}

static int ip_next(struct call *c, char buf[API_ALLOC_IP_LEN])
{
	uint32_t off;
	int rv = bm_next(&c->a->ip.bits, c->rnd, &off);
	if (rv == 0) {
		offset_text(&c->a->ip.range, off, buf);
		journal(c, true, true, off);
	}
	return rv;
}

static int port_mark(struct call *c, int64_t port)
{
	int rv = api_port_alloc_mark(&c->a->node_ports, port);
	if (rv == 0) {
		journal(c, false, true, (uint32_t)port);
	}
	return rv;
}

static void port_release(struct call *c, int64_t port)
{
	if (port > 0 && api_port_alloc_release(&c->a->node_ports, port) == 0) {
		journal(c, false, false, (uint32_t)port);
	}
}

static int port_next(struct call *c, int *ret)
{
	int rv = api_port_alloc_next(&c->a->node_ports, c->rnd, ret);
	if (rv == 0) {
		journal(c, false, true, (uint32_t)*ret);
	}
	return rv;
}

/* ---------------------------------------------------------------- Causes */

static int cause(struct call *c, enum api_cause_reason reason, const char *field, const json_t *value,
		 const char *detail)
{
	return api_errors_add(c->e, reason, field, value, detail);
}

static int cause_str(struct call *c, enum api_cause_reason reason, const char *field, const char *value,
		     const char *detail)
{
	json_t *v = json_string(value);
	if (!v) {
		return -ENOMEM;
	}
	int rv = cause(c, reason, field, v, detail);
	json_decref(v);
	return rv;
}

static int cause_int(struct call *c, const char *field, int64_t value, const char *detail)
{
	json_t *v = json_integer(value);
	if (!v) {
		return -ENOMEM;
	}
	int rv = cause(c, API_CAUSE_INVALID, field, v, detail);
	json_decref(v);
	return rv;
}

/* Kubernetes reports a refused clusterIP on spec.clusterIPs with the
 * whole list as the value. */
static int cause_ip(struct call *c, const char *ip, int err)
{
	char detail[256];
	if (err == -ERANGE) {
		snprintf(detail, sizeof(detail),
			 "failed to allocate IP %s: the provided IP (%s) is not in the valid range. "
			 "The range of valid IPs is %s",
			 ip, ip, c->a->ip.range.text);
	} else {
		snprintf(detail, sizeof(detail), "failed to allocate IP %s: provided IP is already allocated",
			 ip);
	}
	json_t *v = json_pack("[s]", ip);
	if (!v) {
		return -ENOMEM;
	}
	int rv = cause(c, API_CAUSE_INVALID, "spec.clusterIPs", v, detail);
	json_decref(v);
	return rv;
}

static int cause_port(struct call *c, const char *field, int64_t port, int err)
{
	char detail[160];
	if (err == -ERANGE) {
		snprintf(detail, sizeof(detail),
			 "provided port is not in the valid range. The range of valid ports is %s",
			 c->a->node_ports.range.text);
	} else {
		snprintf(detail, sizeof(detail), "provided port is already allocated");
	}
	return cause_int(c, field, port, detail);
}

static int full(struct call *c, const char *what)
{
	snprintf(c->a->errmsg, sizeof(c->a->errmsg), "failed to allocate a %s: range is full", what);
	return -ENOSPC;
}

/* ---------------------------------------------------------------- Cluster IPs */

static bool family_valid(const char *f)
{
	return str_eq(f, "IPv4") || str_eq(f, "IPv6");
}

/* Checks spec.ipFamilyPolicy and spec.ipFamilies and fills them in.
 * A headless Service without a selector is the one exception to single
 * stack: as in Kubernetes it defaults to RequireDualStack with both
 * families, since it only ever publishes endpoints. */
static int fill_families(struct call *c, json_t *spec, bool headless)
{
	const char *own = api_ip_range_family_name(&c->a->ip.range);
	const char *other = str_eq(own, "IPv4") ? "IPv6" : "IPv4";
	json_t *policy_v = json_object_get(spec, "ipFamilyPolicy");
	const char *policy = json_string_value(policy_v);
	json_t *fams = json_object_get(spec, "ipFamilies");
	size_t errs = c->e->n;
	size_t i;
	json_t *f;
	int rv;

	if (policy_v && !json_is_null(policy_v) && !str_eq(policy, "SingleStack") &&
	    !str_eq(policy, "PreferDualStack") && !str_eq(policy, "RequireDualStack")) {
		if ((rv = cause(c, API_CAUSE_NOT_SUPPORTED, "spec.ipFamilyPolicy", policy_v,
				"\"PreferDualStack\", \"RequireDualStack\", \"SingleStack\"")) != 0) {
			return rv;
		}
	}
	json_array_foreach(fams, i, f)
	{
		char field[40];
		snprintf(field, sizeof(field), "spec.ipFamilies[%zu]", i);
		if (!family_valid(json_string_value(f))) {
			if ((rv = cause(c, API_CAUSE_NOT_SUPPORTED, field, f, "\"IPv4\", \"IPv6\"")) != 0) {
				return rv;
			}
		} else if (i == 1 && json_equal(f, json_array_get(fams, 0))) {
			if ((rv = cause(c, API_CAUSE_DUPLICATE, field, f, NULL)) != 0) {
				return rv;
			}
		}
	}
	if (json_array_size(fams) > 2) {
		if ((rv = cause(c, API_CAUSE_INVALID, "spec.ipFamilies", fams,
				"may specify no more than two IP families")) != 0) {
			return rv;
		}
	}
	if (c->e->n > errs) {
		return 0;
	}

	if (headless && json_object_size(json_object_get(spec, "selector")) == 0) {
		if (!policy) {
			policy = "RequireDualStack";
		}
		json_t *nf = json_array_size(fams) > 0 ? json_deep_copy(fams) : json_pack("[s]", own);
		if (!nf) {
			return -ENOMEM;
		}
		if (json_array_size(nf) < 2 && !str_eq(policy, "SingleStack") &&
		    json_array_append_new(
			    nf, json_string(str_eq(json_string_value(json_array_get(nf, 0)), own) ? other
												  : own)) !=
			    0) {
			json_decref(nf);
			return -ENOMEM;
		}
		if ((rv = set_new(spec, "ipFamilies", nf)) != 0) {
			return rv;
		}
		return set_new(spec, "ipFamilyPolicy", json_string(policy));
	}

	if (str_eq(policy, "RequireDualStack")) {
		return cause(c, API_CAUSE_INVALID, "spec.ipFamilyPolicy", policy_v,
			     "this cluster is not configured for dual-stack services");
	}
	json_array_foreach(fams, i, f)
	{
		if (!str_eq(json_string_value(f), own)) {
			char detail[64];
			snprintf(detail, sizeof(detail), "ipfamily %s is not configured on cluster",
				 json_string_value(f));
			return cause(c, API_CAUSE_INVALID, "spec.ipFamilies", fams, detail);
		}
	}
	if ((rv = set_new(spec, "ipFamilies", json_pack("[s]", own))) != 0) {
		return rv;
	}
	return set_new(spec, "ipFamilyPolicy", json_string(policy ? policy : "SingleStack"));
}

/* Allocates or checks the cluster IP of @spec.  @kept is an address the
 * Service held before this update: it is claimed again without checks,
 * so that a range change does not make an untouched Service invalid. */
static int fill_cluster_ip(struct call *c, json_t *spec, const char *kept)
{
	const char *type = svc_type(spec);
	json_t *ips = json_object_get(spec, "clusterIPs");
	const char *ip = str_of(spec, "clusterIP");
	size_t errs = c->e->n;
	char buf[API_ALLOC_IP_LEN];
	int rv;

	if (str_eq(type, "ExternalName")) {
		if (ip && *ip) {
			return cause(c, API_CAUSE_FORBIDDEN, "spec.clusterIP", NULL,
				     "may not be set for ExternalName services");
		}
		if (json_array_size(ips) > 0) {
			return cause(c, API_CAUSE_FORBIDDEN, "spec.clusterIPs", NULL,
				     "may not be set for ExternalName services");
		}
		json_object_del(spec, "clusterIP");
		json_object_del(spec, "clusterIPs");
		json_object_del(spec, "ipFamilies");
		json_object_del(spec, "ipFamilyPolicy");
		return 0;
	}

	/* clusterIP and clusterIPs[0] say the same thing; either may be
	 * left out. */
	const char *first = json_string_value(json_array_get(ips, 0));
	if (json_array_size(ips) > 0 && !first) {
		return cause(c, API_CAUSE_INVALID, "spec.clusterIPs[0]", json_array_get(ips, 0),
			     "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
	}
	if (ip && *ip && first && *first && strcmp(ip, first) != 0) {
		return cause(c, API_CAUSE_INVALID, "spec.clusterIPs", ips,
			     "first value must match `clusterIP`");
	}
	if (!(ip && *ip)) {
		ip = first && *first ? first : NULL;
	}
	bool headless = str_eq(ip, "None");
	if (json_array_size(ips) > 1) {
		return cause(c, API_CAUSE_INVALID, "spec.clusterIPs", ips,
			     headless ? "must not have more than one value when the first is 'None'"
				      : "this cluster is not configured for dual-stack services");
	}
	if (headless && type_has_node_ports(type)) {
		char detail[80];
		snprintf(detail, sizeof(detail), "may not be set to 'None' for %s services", type);
		return cause_str(c, API_CAUSE_INVALID, "spec.clusterIPs[0]", "None", detail);
	}
	if (!str_eq(type, "ClusterIP") && !type_has_node_ports(type)) {
		return cause_str(c, API_CAUSE_NOT_SUPPORTED, "spec.type", type,
				 "\"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"");
	}
	if ((rv = fill_families(c, spec, headless)) != 0 || c->e->n > errs) {
		return rv;
	}

	if (headless) {
		if ((rv = set_new(spec, "clusterIP", json_string("None"))) != 0) {
			return rv;
		}
		return set_new(spec, "clusterIPs", json_pack("[s]", "None"));
	}
	if (ip && kept && strcmp(ip, kept) == 0) {
		(void)ip_mark(c, ip);
	} else if (ip) {
		rv = ip_mark(c, ip);
		if (rv == -EINVAL) {
			return cause_str(c, API_CAUSE_INVALID, "spec.clusterIPs[0]", ip,
					 "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)");
		}
		if (rv != 0) {
			return cause_ip(c, ip, rv);
		}
	} else {
		if (ip_next(c, buf) != 0) {
			return full(c, "serviceIP");
		}
		ip = buf;
	}
	/* @ip may point into spec.clusterIPs: build the new value first. */
	json_t *list = json_pack("[s]", ip);
	if ((rv = set_new(spec, "clusterIPs", list)) != 0) {
		return rv;
	}
	return set_new(spec, "clusterIP", json_string(json_string_value(json_array_get(list, 0))));
}

/* ---------------------------------------------------------------- Node ports */

/* Whether @port is one of @kept's @n entries. */
static bool in_list(const int64_t *kept, size_t n, int64_t port)
{
	for (size_t i = 0; i < n; i++) {
		if (kept[i] == port) {
			return true;
		}
	}
	return false;
}

static const char *protocol_of(const json_t *p)
{
	const char *proto = str_of(p, "protocol");
	return proto ? proto : "TCP";
}

/* Claims a nodePort the user asked for (or that the Service kept). */
static int request_port(struct call *c, const char *field, int64_t port, const int64_t *kept, size_t n_kept)
{
	int rv = port_mark(c, port);
	if (rv == 0 || in_list(kept, n_kept, port)) {
		return 0; /* a kept port is not checked again */
	}
	return cause_port(c, field, port, rv);
}

/* spec.ports[].nodePort and spec.healthCheckNodePort.  @kept lists the
 * node ports the Service held before this update. */
static int fill_node_ports(struct call *c, json_t *spec, const int64_t *kept, size_t n_kept)
{
	const char *type = svc_type(spec);
	json_t *ports = json_object_get(spec, "ports");
	size_t n = json_array_size(ports);
	size_t errs = c->e->n;
	char field[48];
	int rv;

	if (!type_has_node_ports(type)) {
		for (size_t i = 0; i < n; i++) {
			if (int_of(json_array_get(ports, i), "nodePort") != 0) {
				char detail[64];
				snprintf(detail, sizeof(detail), "may not be used when `type` is '%s'", type);
				snprintf(field, sizeof(field), "spec.ports[%zu].nodePort", i);
				if ((rv = cause(c, API_CAUSE_FORBIDDEN, field, NULL, detail)) != 0) {
					return rv;
				}
			}
		}
	} else {
		/* Requested ports first, so that allocation cannot take one a
		 * later port asks for.  The same nodePort may serve one port
		 * number over two protocols; it is claimed once. */
		for (size_t i = 0; i < n; i++) {
			json_t *p = json_array_get(ports, i);
			int64_t np = int_of(p, "nodePort");
			bool seen = false, dup = false;
			if (np == 0) {
				continue;
			}
			for (size_t j = 0; j < i; j++) {
				json_t *q = json_array_get(ports, j);
				if (int_of(q, "nodePort") == np) {
					seen = true;
					dup = dup || str_eq(protocol_of(p), protocol_of(q));
				}
			}
			snprintf(field, sizeof(field), "spec.ports[%zu].nodePort", i);
			if (dup) {
				json_t *v = json_object_get(p, "nodePort");
				if ((rv = cause(c, API_CAUSE_DUPLICATE, field, v, NULL)) != 0) {
					return rv;
				}
			} else if (!seen && (rv = request_port(c, field, np, kept, n_kept)) != 0) {
				return rv;
			}
		}
		if (c->e->n > errs) {
			return 0;
		}
		for (size_t i = 0; i < n && allocates_node_ports(spec); i++) {
			json_t *p = json_array_get(ports, i);
			int64_t port = int_of(p, "port");
			int64_t np = 0;
			if (int_of(p, "nodePort") != 0) {
				continue;
			}
			for (size_t j = 0; j < n && np == 0; j++) {
				json_t *q = json_array_get(ports, j);
				if (j != i && int_of(q, "port") == port) {
					np = int_of(q, "nodePort");
				}
			}
			if (np == 0) {
				int got;
				if (port_next(c, &got) != 0) {
					return full(c, "nodePort");
				}
				np = got;
			}
			if ((rv = set_new(p, "nodePort", json_integer(np))) != 0) {
				return rv;
			}
		}
	}

	int64_t hc = int_of(spec, "healthCheckNodePort");
	if (!needs_health_check_port(spec)) {
		if (hc != 0) {
			return cause_int(c, "spec.healthCheckNodePort", hc,
					 "may only be set when `type` is 'LoadBalancer' and "
					 "`externalTrafficPolicy` is 'Local'");
		}
		return 0;
	}
	if (hc != 0) {
		return request_port(c, "spec.healthCheckNodePort", hc, kept, n_kept);
	}
	int got;
	if (port_next(c, &got) != 0) {
		return full(c, "nodePort");
	}
	return set_new(spec, "healthCheckNodePort", json_integer(got));
}

/* ---------------------------------------------------------------- Services */

static void release_service(struct call *c, const json_t *svc)
{
	const json_t *spec = json_object_get(svc, "spec");
	const char *ip = cluster_ip_of(spec);
	size_t i;
	json_t *p;
	if (ip && !str_eq(svc_type(spec), "ExternalName")) {
		ip_release(c, ip);
	}
	json_array_foreach(json_object_get(spec, "ports"), i, p)
	{
		port_release(c, int_of(p, "nodePort"));
	}
	port_release(c, int_of(spec, "healthCheckNodePort"));
}

void api_alloc_mark_service(struct api_alloc *a, const json_t *svc)
{
	const json_t *spec = json_object_get(svc, "spec");
	const char *ip = cluster_ip_of(spec);
	size_t i;
	json_t *p;
	if (ip && !str_eq(svc_type(spec), "ExternalName")) {
		(void)api_ip_alloc_mark(&a->ip, ip);
	}
	json_array_foreach(json_object_get(spec, "ports"), i, p)
	{
		int64_t np = int_of(p, "nodePort");
		if (np != 0) {
			(void)api_port_alloc_mark(&a->node_ports, np);
		}
	}
	if (int_of(spec, "healthCheckNodePort") != 0) {
		(void)api_port_alloc_mark(&a->node_ports, int_of(spec, "healthCheckNodePort"));
	}
}

void api_alloc_release_service(struct api_alloc *a, const json_t *svc)
{
	struct call c = { .a = a };
	release_service(&c, svc);
	free(c.ops);
}

/* Ends a call: keeps its claims on success, undoes them otherwise. */
static int finish(struct call *c, size_t errs, int rv)
{
	if (rv == 0 && c->oom) {
		rv = c->oom;
	}
	if (rv != 0 || c->e->n > errs) {
		rollback(c);
	}
	free(c->ops);
	return rv;
}

int api_alloc_service_create(struct api_alloc *a, const struct api_alloc_rand *rnd, json_t *svc,
			     struct api_errors *e)
{
	struct call c = { .a = a, .rnd = rnd, .e = e };
	size_t errs = e->n;
	json_t *spec = json_object_get(svc, "spec");
	int rv;

	if (!json_is_object(spec)) {
		spec = json_object();
		if ((rv = set_new(svc, "spec", spec)) != 0) {
			return rv;
		}
	}
	a->errmsg[0] = '\0';
	rv = fill_cluster_ip(&c, spec, NULL);
	if (rv == 0 && e->n == errs) {
		rv = fill_node_ports(&c, spec, NULL, 0);
	}
	return finish(&c, errs, rv);
}

/* Copies what @spec leaves out from @old_spec, per Kubernetes' update
 * rules: allocated values are sticky, and values that only made sense
 * for the old type go when the type changes (if the body still carries
 * them unchanged). */
static int patch_from_old(struct call *c, const json_t *old_spec, json_t *spec)
{
	const char *old_type = svc_type(old_spec);
	const char *type = svc_type(spec);
	const char *old_ip = str_eq(old_type, "ExternalName") ? NULL : cluster_ip_of(old_spec);
	const char *ip = str_of(spec, "clusterIP");
	json_t *ips = json_object_get(spec, "clusterIPs");
	int rv;

	if (old_ip && str_eq(type, "ExternalName")) {
		if (!ip || !*ip || strcmp(ip, old_ip) == 0) {
			json_object_del(spec, "clusterIP");
			json_object_del(spec, "clusterIPs");
		}
	} else if (old_ip) {
		if (!ip || !*ip) {
			if ((rv = set_new(spec, "clusterIP", json_string(old_ip))) != 0) {
				return rv;
			}
			ip = old_ip;
		}
		if (json_array_size(ips) == 0 &&
		    (rv = set_new(spec, "clusterIPs", json_pack("[s]", old_ip))) != 0) {
			return rv;
		}
		if (strcmp(ip, old_ip) != 0) {
			return cause_str(c, API_CAUSE_INVALID, "spec.clusterIP", ip, "field is immutable");
		}
		static const char *const keys[] = { "ipFamilies", "ipFamilyPolicy" };
		for (size_t i = 0; i < 2; i++) {
			json_t *v = json_object_get(old_spec, keys[i]);
			if (v && !json_object_get(spec, keys[i]) &&
			    (rv = set_new(spec, keys[i], json_deep_copy(v))) != 0) {
				return rv;
			}
		}
	}

	json_t *old_ports = json_object_get(old_spec, "ports");
	json_t *ports = json_object_get(spec, "ports");
	size_t i, j;
	json_t *p, *q;
	if (type_has_node_ports(old_type) && !type_has_node_ports(type)) {
		json_array_foreach(ports, i, p)
		{
			int64_t np = int_of(p, "nodePort");
			json_array_foreach(old_ports, j, q)
			{
				if (np != 0 && int_of(q, "nodePort") == np) {
					json_object_del(p, "nodePort");
					break;
				}
			}
		}
	} else if (type_has_node_ports(old_type)) {
		/* A port that leaves its nodePort out keeps the one of the old
		 * port of the same name, unless another port asks for it. */
		json_array_foreach(ports, i, p)
		{
			if (int_of(p, "nodePort") != 0) {
				continue;
			}
			const char *name = str_of(p, "name");
			int64_t np = 0;
			json_array_foreach(old_ports, j, q)
			{
				const char *old_name = str_of(q, "name");
				if (str_eq(name ? name : "", old_name ? old_name : "")) {
					np = int_of(q, "nodePort");
					break;
				}
			}
			json_array_foreach(ports, j, q)
			{
				if (np != 0 && int_of(q, "nodePort") == np) {
					np = 0;
				}
			}
			if (np != 0 && (rv = set_new(p, "nodePort", json_integer(np))) != 0) {
				return rv;
			}
		}
	}
	int64_t old_hc = int_of(old_spec, "healthCheckNodePort");
	if (old_hc != 0) {
		if (!needs_health_check_port(spec) && int_of(spec, "healthCheckNodePort") == old_hc) {
			json_object_del(spec, "healthCheckNodePort");
		} else if (needs_health_check_port(spec) && int_of(spec, "healthCheckNodePort") == 0 &&
			   (rv = set_new(spec, "healthCheckNodePort", json_integer(old_hc))) != 0) {
			return rv;
		}
	}
	return 0;
}

int api_alloc_service_update(struct api_alloc *a, const struct api_alloc_rand *rnd, const json_t *old,
			     json_t *svc, struct api_errors *e)
{
	struct call c = { .a = a, .rnd = rnd, .e = e };
	size_t errs = e->n;
	const json_t *old_spec = json_object_get(old, "spec");
	json_t *spec = json_object_get(svc, "spec");
	int64_t *kept = NULL;
	size_t n_kept = 0;
	char *kept_ip = NULL;
	int rv;

	if (!json_is_object(spec)) {
		spec = json_object();
		if ((rv = set_new(svc, "spec", spec)) != 0) {
			return rv;
		}
	}
	a->errmsg[0] = '\0';

	/* The old Service's claims, remembered before it is patched. */
	json_t *old_ports = json_object_get(old_spec, "ports");
	kept = calloc(json_array_size(old_ports) + 1, sizeof(*kept));
	if (!kept) {
		return -ENOMEM;
	}
	size_t i;
	json_t *p;
	json_array_foreach(old_ports, i, p)
	{
		if (int_of(p, "nodePort") != 0) {
			kept[n_kept++] = int_of(p, "nodePort");
		}
	}
	if (int_of(old_spec, "healthCheckNodePort") != 0) {
		kept[n_kept++] = int_of(old_spec, "healthCheckNodePort");
	}
	const char *old_ip = cluster_ip_of(old_spec);
	if (old_ip && !str_eq(svc_type(old_spec), "ExternalName") && !(kept_ip = strdup(old_ip))) {
		free(kept);
		return -ENOMEM;
	}

	release_service(&c, old);
	rv = patch_from_old(&c, old_spec, spec);
	if (rv == 0 && e->n == errs) {
		rv = fill_cluster_ip(&c, spec, kept_ip);
	}
	if (rv == 0 && e->n == errs) {
		rv = fill_node_ports(&c, spec, kept, n_kept);
	}
	free(kept);
	free(kept_ip);
	return finish(&c, errs, rv);
}
