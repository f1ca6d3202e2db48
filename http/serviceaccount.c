/* Service accounts in the API server: key and CA bootstrap, token
 * authentication, TokenRequest and SelfSubjectReview (serviceaccount.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>

#include <openssl/crypto.h>

#include "http/kapi.h"
#include "http/serviceaccount.h"
#include "src/lib/log.h"
#include "src/lib/satoken.h"

#define CA_MAX (256 * 1024)

/* ------------------------------------------------------------ leadership */

/* The replica has no way to unsubscribe and outlives the server: the
 * subscription's data is a static slot the server clears at close (as
 * kapi.c does). */
#define SA_SLOTS 64
static struct sa_slot {
	struct http_server *server;
	struct replica *replica;
	uv_loop_t *loop;
	char *ca;       /* PEM of DATA/pki/ca.crt, or NULL */
	size_t ca_len;
	bool generating; /* a key generation is running */
} slots[SA_SLOTS];
static size_t n_slots;

struct sa_write {
	struct replica_apply apply;
};

static void write_cb(struct replica_apply *a, int status, const struct store_result *res)
{
	(void)res;
	if (status == 0 && res != NULL && res->status != 0 && res->status != STORE_EEXIST)
		log_warn("http: cannot store the service-account key or CA (%d)", res->status);
	free(a->data);
}

/* Proposes a PUT of @key (create-only when @create). */
static void put(struct replica *r, const char *key, const void *val, size_t len, bool create)
{
	struct sa_write *w = calloc(1, sizeof(*w));
	struct store_cmd cmd = {0};
	struct timespec ts;

	if (w == NULL)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	w->apply.data = w;
	cmd.type = STORE_CMD_PUT;
	cmd.cond = create ? STORE_COND_ABSENT : STORE_COND_NONE;
	cmd.time_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	cmd.key = key;
	cmd.key_len = strlen(key);
	cmd.val = val;
	cmd.val_len = len;
	if (replica_apply(r, &w->apply, &cmd, write_cb) != 0)
		free(w);
}

struct keygen {
	uv_work_t work;
	struct sa_slot *slot;
	char *pem;
	size_t len;
	int rv;
};

static void keygen_work(uv_work_t *w)
{
	struct keygen *g = w->data;

	g->rv = satoken_key_generate(&g->pem, &g->len);
}

/* The key generation finished (or was cancelled at loop close). */
static void keygen_done_cb(uv_work_t *w, int status)
{
	struct keygen *g = w->data;
	struct sa_slot *slot = g->slot;

	slot->generating = false;
	if (status == 0 && g->rv == 0 && slot->server != NULL &&
	    http__server_running(slot->server) && replica_is_ready_leader(slot->replica))
		put(slot->replica, SATOKEN_STORE_KEY, g->pem, g->len, true);
	else if (g->rv != 0)
		log_warn("http: cannot generate the service-account key");
	if (g->pem != NULL) {
		OPENSSL_cleanse(g->pem, g->len);
		free(g->pem);
	}
	free(g);
}

static void lead(struct sa_slot *slot)
{
	struct store *st = replica_store(slot->replica);
	struct store_kv kv;

	if (slot->ca != NULL &&
	    (store_get(st, SATOKEN_CA_STORE_KEY, strlen(SATOKEN_CA_STORE_KEY), &kv) != 0 ||
	     kv.val_len != slot->ca_len || memcmp(kv.val, slot->ca, slot->ca_len) != 0))
		put(slot->replica, SATOKEN_CA_STORE_KEY, slot->ca, slot->ca_len, false);
	if (store_get(st, SATOKEN_STORE_KEY, strlen(SATOKEN_STORE_KEY), &kv) == 0 ||
	    slot->generating)
		return;
	{
		struct keygen *g = calloc(1, sizeof(*g));
		if (g == NULL)
			return;
		g->slot = slot;
		g->work.data = g;
		if (uv_queue_work(slot->loop, &g->work, keygen_work, keygen_done_cb) != 0) {
			free(g);
			return;
		}
		slot->generating = true;
	}
}

static void leadership_cb(void *data, bool leading)
{
	struct sa_slot *slot = data;

	if (!leading || slot->server == NULL || !http__server_running(slot->server))
		return;
	lead(slot);
}

/* Reads the CA file (small; once, at server start). */
static char *read_ca(const char *dir, size_t *ret_len)
{
	char path[4096], *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd;

	if (dir == NULL)
		return NULL;
	snprintf(path, sizeof(path), "%s/ca.crt", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	buf = malloc(CA_MAX);
	if (buf == NULL)
		goto fail;
	while (len < CA_MAX && (n = read(fd, buf + len, CA_MAX - len)) != 0) {
		if (n < 0)
			goto fail;
		len += (size_t)n;
	}
	if (len == 0 || len == CA_MAX)
		goto fail;
	close(fd);
	*ret_len = len;
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

int http__sa_start(struct http_server *s)
{
	struct sa_slot *slot;
	int rv;

	if (s->replica == NULL)
		return 0;
	if (n_slots == SA_SLOTS) {
		log_warn("http: too many servers in one process: no service-account key bootstrap");
		return 0;
	}
	slot = &slots[n_slots];
	memset(slot, 0, sizeof(*slot));
	slot->ca = read_ca(s->pki_dir, &slot->ca_len);
	rv = replica_on_leadership(s->replica, leadership_cb, slot);
	if (rv != 0) {
		free(slot->ca);
		slot->ca = NULL;
		return rv;
	}
	n_slots++;
	slot->server = s;
	slot->replica = s->replica;
	slot->loop = s->loop;
	if (replica_is_ready_leader(s->replica))
		lead(slot);
	return 0;
}

void http__sa_close(struct http_server *s)
{
	size_t i;

	for (i = 0; i < n_slots; i++)
		if (slots[i].server == s) {
			slots[i].server = NULL;
			free(slots[i].ca);
			slots[i].ca = NULL;
		}
}

/* ------------------------------------------------------------ authentication */

/* The parsed key of the last PEM seen (one loop thread: no lock). Masters
 * of one cluster share one key; another PEM is parsed again. */
static struct {
	char *pem;
	size_t len;
	struct satoken_key *key;
} key_cache;

static struct satoken_key *current_key(struct store *st)
{
	struct store_kv kv;
	struct satoken_key *k;
	char *copy;

	if (store_get(st, SATOKEN_STORE_KEY, strlen(SATOKEN_STORE_KEY), &kv) != 0)
		return NULL;
	if (key_cache.key != NULL && key_cache.len == kv.val_len &&
	    memcmp(key_cache.pem, kv.val, kv.val_len) == 0)
		return key_cache.key;
	copy = malloc(kv.val_len);
	if (copy == NULL)
		return NULL;
	if (satoken_key_load(kv.val, kv.val_len, &k) != 0) {
		free(copy);
		return NULL;
	}
	memcpy(copy, kv.val, kv.val_len);
	if (key_cache.pem != NULL)
		OPENSSL_cleanse(key_cache.pem, key_cache.len);
	free(key_cache.pem);
	satoken_key_free(key_cache.key);
	key_cache.pem = copy;
	key_cache.len = kv.val_len;
	key_cache.key = k;
	return k;
}

static int store_lookup(void *data, const char *key, const void **ret_val, size_t *ret_len)
{
	struct store_kv kv;

	if (store_get(data, key, strlen(key), &kv) != 0)
		return -ENOENT;
	*ret_val = kv.val;
	*ret_len = kv.val_len;
	return 0;
}

static void user_dispose(void *p)
{
	http_user_free(*(struct http_user **)p);
}

const struct http_user *http__sa_user(struct http_server *s, h2o_req_t *req, const char *token,
				      size_t len)
{
	struct satoken_info info;
	struct satoken_key *k;
	struct http_user *u = NULL, **ref;
	struct store *st;
	json_t *claims = NULL;

	if (s->replica == NULL || !satoken_looks_like_jwt(token, len))
		return NULL;
	st = replica_store(s->replica);
	k = current_key(st);
	if (k == NULL || satoken_verify(k, token, len, &claims) != 0)
		return NULL;
	if (satoken_check(claims, token, len, (int64_t)time(NULL), store_lookup, st, &info) == 0)
		http_sa_user_new(&info, &u);
	json_decref(claims);
	if (u == NULL)
		return NULL;
	ref = h2o_mem_alloc_shared(&req->pool, sizeof(*ref), user_dispose);
	*ref = u;
	return u;
}

/* ------------------------------------------------------------ SelfSubjectReview */

static void self_subject_review(struct http_request *hr, const char *version)
{
	char api_version[64];
	const struct http_user *u = hr->user;
	json_t *groups = json_array(), *info, *obj;
	bool authenticated = false;
	size_t i;

	for (i = 0; i < u->n_groups; i++) {
		json_array_append_new(groups, json_string(u->groups[i]));
		if (strcmp(u->groups[i], SATOKEN_GROUP_AUTHENTICATED) == 0)
			authenticated = true;
	}
	/* Kubernetes adds this group to every authenticated user. */
	if (!authenticated)
		json_array_append_new(groups, json_string(SATOKEN_GROUP_AUTHENTICATED));
	info = json_pack("{s:s, s:o}", "username", u->name, "groups", groups);
	if (info != NULL && u->uid != NULL && u->uid[0] != '\0')
		json_object_set_new(info, "uid", json_string(u->uid));
	snprintf(api_version, sizeof(api_version), "authentication.k8s.io/%s", version);
	obj = json_pack("{s:s, s:s, s:{s:n}, s:{s:o}}", "kind", "SelfSubjectReview", "apiVersion",
			api_version, "metadata", "creationTimestamp", "status", "userInfo", info);
	if (obj == NULL) {
		http_send_status(hr->req, 500, NULL, "out of memory");
		return;
	}
	kapi__send_tree(hr->req, 201, obj);
	json_decref(obj);
}

/* ------------------------------------------------------------ TokenRequest */

static bool random_uuid(char *out, size_t size)
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return false;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, size,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
		 b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
		 b[14], b[15]);
	return true;
}

static const char *meta_uid(const json_t *obj)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), "uid"));
}

/* The stored object @plural/@ns/@name as a tree (new reference), or NULL. */
static json_t *stored(struct store *st, const char *plural, const char *ns, const char *name)
{
	char key[600];
	struct store_kv kv;
	int n = snprintf(key, sizeof(key), "/registry/%s/%s/%s", plural, ns, name);

	if (n < 0 || (size_t)n >= sizeof(key) || store_get(st, key, (size_t)n, &kv) != 0)
		return NULL;
	return kapi__tree(kv.val, kv.val_len, kv.mod_rev);
}

/* A tiny protobuf reader for the one body kubectl sends here in
 * protobuf (src/api/protobuf.c only knows stored kinds). Field numbers
 * from k8s.io/api authentication/v1 generated.proto: TokenRequest{spec=2},
 * TokenRequestSpec{audiences=1, boundObjectRef=3, expirationSeconds=4},
 * BoundObjectReference{kind=1, apiVersion=2, name=3, uID=4}; the envelope
 * is "k8s\0" + runtime.Unknown{typeMeta=1, raw=2}. */
struct pb {
	const unsigned char *p, *end;
};

static bool pb_varint(struct pb *b, uint64_t *ret)
{
	uint64_t v = 0;
	unsigned shift = 0;

	while (b->p < b->end && shift < 64) {
		unsigned char c = *b->p++;
		v |= (uint64_t)(c & 0x7f) << shift;
		if ((c & 0x80) == 0) {
			*ret = v;
			return true;
		}
		shift += 7;
	}
	return false;
}

/* The next field: number, wire type, and for wire type 2 its bytes (for
 * 0 its value in *ret_v). Skips 1 and 5. False at the end or on error
 * (*ret_bad). */
static bool pb_next(struct pb *b, unsigned *ret_num, struct pb *ret_sub, uint64_t *ret_v,
		    bool *ret_bad)
{
	uint64_t key, v;

	for (;;) {
		if (b->p == b->end)
			return false;
		if (!pb_varint(b, &key))
			goto bad;
		switch (key & 7) {
		case 0:
			if (!pb_varint(b, &v))
				goto bad;
			*ret_v = v;
			break;
		case 1:
		case 5: {
			size_t n = (key & 7) == 1 ? 8 : 4;
			if ((size_t)(b->end - b->p) < n)
				goto bad;
			b->p += n;
			continue;
		}
		case 2:
			if (!pb_varint(b, &v) || v > (uint64_t)(b->end - b->p))
				goto bad;
			ret_sub->p = b->p;
			ret_sub->end = b->p + v;
			b->p += v;
			break;
		default:
			goto bad;
		}
		*ret_num = (unsigned)(key >> 3);
		return true;
	}
bad:
	*ret_bad = true;
	return false;
}

static json_t *pb_string(const struct pb *s)
{
	return json_stringn((const char *)s->p, (size_t)(s->end - s->p));
}

/* The TokenRequest of a protobuf body as its JSON form (spec only). */
static json_t *token_request_from_protobuf(const void *body, size_t len)
{
	struct pb env = {body, (const unsigned char *)body + len}, f, raw = {NULL, NULL}, spec;
	json_t *obj = json_object(), *js = json_object(), *auds = json_array();
	unsigned num;
	uint64_t v = 0;
	bool bad = false;

	if (obj == NULL || js == NULL || auds == NULL || len < 4 ||
	    memcmp(body, "k8s\0", 4) != 0)
		goto fail;
	env.p += 4;
	while (pb_next(&env, &num, &f, &v, &bad))
		if (num == 2)
			raw = f;
	if (bad || raw.p == NULL)
		goto fail;
	while (pb_next(&raw, &num, &spec, &v, &bad)) {
		struct pb sf, rf;
		if (num != 2)
			continue;
		while (pb_next(&spec, &num, &sf, &v, &bad)) {
			if (num == 1) {
				json_array_append_new(auds, pb_string(&sf));
			} else if (num == 4) {
				json_object_set_new(js, "expirationSeconds", json_integer((json_int_t)v));
			} else if (num == 3) {
				static const char *const names[] = {NULL, "kind", "apiVersion", "name",
								    "uid"};
				json_t *ref = json_object();
				json_object_set_new(js, "boundObjectRef", ref);
				while (pb_next(&sf, &num, &rf, &v, &bad))
					if (num >= 1 && num <= 4)
						json_object_set_new(ref, names[num], pb_string(&rf));
			}
		}
	}
	if (bad)
		goto fail;
	json_object_set_new(js, "audiences", auds);
	json_object_set_new(obj, "spec", js);
	return obj;
fail:
	json_decref(auds);
	json_decref(js);
	json_decref(obj);
	return NULL;
}

static void token_request(struct http_request *hr, const char *ns, const char *name)
{
	h2o_req_t *req = hr->req;
	const struct api_kind *sak = api_kind_by_resource("", "v1", "serviceaccounts");
	struct store *st = replica_store(hr->server->replica);
	struct satoken_binding bind = {0}, *bp = NULL;
	json_t *body = NULL, *sa = NULL, *bound = NULL, *claims = NULL, *resp = NULL;
	json_t *spec, *auds, *ref;
	const char **aud_list = NULL;
	const char *sa_uid;
	char jti[40], now_s[32], exp_s[32];
	char *token = NULL;
	struct satoken_key *k;
	json_int_t expiry = SATOKEN_DEFAULT_EXPIRY;
	int64_t now = (int64_t)time(NULL);
	size_t i;

	if (req->entity.len > 0) {
		json_error_t err;
		if (req->entity.len >= 4 && memcmp(req->entity.base, "k8s\0", 4) == 0)
			body = token_request_from_protobuf(req->entity.base, req->entity.len);
		else
			body = json_loadb(req->entity.base, req->entity.len, 0, &err);
		if (!json_is_object(body)) {
			kapi__send_error(req, 400, "BadRequest", NULL, NULL, NULL,
					 "the TokenRequest body is not a JSON object");
			goto out;
		}
	}
	spec = json_object_get(body, "spec");
	if (json_object_get(spec, "expirationSeconds") != NULL) {
		if (!json_is_integer(json_object_get(spec, "expirationSeconds"))) {
			kapi__send_error(req, 400, "BadRequest", NULL, NULL, NULL,
					 "spec.expirationSeconds must be an integer");
			goto out;
		}
		expiry = json_integer_value(json_object_get(spec, "expirationSeconds"));
	}
	if (expiry < SATOKEN_MIN_EXPIRY) {
		kapi__send_error(req, 422, "Invalid", NULL, name, NULL,
				 "spec.expirationSeconds: may not specify a duration less than 10 "
				 "minutes");
		goto out;
	}
	if (expiry > SATOKEN_MAX_EXPIRY)
		expiry = SATOKEN_MAX_EXPIRY;
	sa = stored(st, "serviceaccounts", ns, name);
	if (sa == NULL) {
		/* A follower may not have applied a just-created account:
		 * the leader answers. */
		if (!hr->forwarded && http__role(hr->server) == HTTP_ROLE_FOLLOWER) {
			http__forward(hr);
			goto out;
		}
		kapi__send_not_found(req, sak, name);
		goto out;
	}
	sa_uid = meta_uid(sa);
	k = current_key(st);
	if (k == NULL || sa_uid == NULL) {
		http_send_status(req, 503, NULL, "the service-account signing key is not ready yet");
		goto out;
	}
	auds = json_object_get(spec, "audiences");
	if (json_array_size(auds) > 0) {
		aud_list = calloc(json_array_size(auds) + 1, sizeof(*aud_list));
		if (aud_list == NULL)
			goto oom;
		for (i = 0; i < json_array_size(auds); i++) {
			aud_list[i] = json_string_value(json_array_get(auds, i));
			if (aud_list[i] == NULL) {
				kapi__send_error(req, 400, "BadRequest", NULL, NULL, NULL,
						 "spec.audiences must be strings");
				goto out;
			}
		}
	}
	ref = json_object_get(spec, "boundObjectRef");
	if (ref != NULL) {
		const char *kind = json_string_value(json_object_get(ref, "kind"));
		const char *bname = json_string_value(json_object_get(ref, "name"));
		const char *buid = json_string_value(json_object_get(ref, "uid"));
		const char *cur;
		if (kind == NULL || bname == NULL ||
		    (strcmp(kind, "Pod") != 0 && strcmp(kind, "Secret") != 0)) {
			kapi__send_error(req, 400, "BadRequest", NULL, NULL, NULL,
					 "spec.boundObjectRef: a Pod or a Secret by name");
			goto out;
		}
		bound = stored(st, strcmp(kind, "Pod") == 0 ? "pods" : "secrets", ns, bname);
		cur = bound != NULL ? meta_uid(bound) : NULL;
		if (cur == NULL || (buid != NULL && buid[0] != '\0' && strcmp(cur, buid) != 0)) {
			kapi__send_error(req, 404, "NotFound", NULL, bname, NULL,
					 "the bound %s \"%s\" was not found (or has another uid)",
					 kind, bname);
			goto out;
		}
		bind.kind = kind;
		bind.name = bname;
		bind.uid = cur;
		bp = &bind;
	}
	if (!random_uuid(jti, sizeof(jti)))
		goto oom;
	claims = satoken_bound_claims(ns, name, sa_uid, now, expiry, aud_list, jti, bp);
	if (claims == NULL || satoken_sign(k, claims, &token) != 0)
		goto oom;
	{
		time_t t = (time_t)now, e = (time_t)(now + expiry);
		struct tm tm;
		strftime(now_s, sizeof(now_s), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
		strftime(exp_s, sizeof(exp_s), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&e, &tm));
	}
	resp = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:{s:O, s:I}, s:{s:s, s:s}}", "kind",
			 "TokenRequest", "apiVersion", "authentication.k8s.io/v1", "metadata",
			 "name", name, "namespace", ns, "creationTimestamp", now_s, "spec",
			 "audiences", json_object_get(claims, "aud"), "expirationSeconds", expiry,
			 "status", "token", token, "expirationTimestamp", exp_s);
	if (resp == NULL)
		goto oom;
	if (ref != NULL)
		json_object_set(json_object_get(resp, "spec"), "boundObjectRef", ref);
	kapi__send_tree(req, 201, resp);
	goto out;
oom:
	http_send_status(req, 500, NULL, "out of memory");
out:
	if (token != NULL) {
		OPENSSL_cleanse(token, strlen(token));
		free(token);
	}
	free(aud_list);
	json_decref(resp);
	json_decref(claims);
	json_decref(bound);
	json_decref(sa);
	json_decref(body);
}

/* ------------------------------------------------------------ routing */

static bool path_eq(const struct http_request *hr, const char *p)
{
	return h2o_memis(hr->path.base, hr->path.len, p, strlen(p));
}

bool http__sa_route(struct http_request *hr)
{
	/* kubectl 1.28+ asks v1 first; 1.27 v1beta1, then v1alpha1. */
	static const char *const versions[] = {"v1", "v1beta1", "v1alpha1", NULL};
	static const char ns_prefix[] = "/api/v1/namespaces/";
	static const char token_mid[] = "/serviceaccounts/";
	static const char token_end[] = "/token";
	const char *p = hr->path.base, *ns, *mid, *name, *end;
	size_t len = hr->path.len;
	char nsb[256], nameb[256];

	for (size_t i = 0; versions[i] != NULL; i++) {
		char review[80];
		snprintf(review, sizeof(review), "/apis/authentication.k8s.io/%s/selfsubjectreviews",
			 versions[i]);
		if (!path_eq(hr, review))
			continue;
		if (hr->user == NULL)
			http_send_status(hr->req, 401, NULL, "authentication required");
		else if (!http__method_is(hr->req, "POST"))
			http_send_status(hr->req, 405, NULL, "selfsubjectreviews only take POST");
		else
			self_subject_review(hr, versions[i]);
		return true;
	}
	/* /api/v1/namespaces/NS/serviceaccounts/NAME/token */
	if (len <= sizeof(ns_prefix) - 1 + sizeof(token_end) - 1 ||
	    memcmp(p, ns_prefix, sizeof(ns_prefix) - 1) != 0 ||
	    memcmp(p + len - (sizeof(token_end) - 1), token_end, sizeof(token_end) - 1) != 0)
		return false;
	ns = p + sizeof(ns_prefix) - 1;
	end = p + len - (sizeof(token_end) - 1);
	mid = memchr(ns, '/', (size_t)(end - ns));
	if (mid == NULL || (size_t)(end - mid) <= sizeof(token_mid) - 1 ||
	    memcmp(mid, token_mid, sizeof(token_mid) - 1) != 0)
		return false;
	name = mid + sizeof(token_mid) - 1;
	if (mid == ns || name == end || memchr(name, '/', (size_t)(end - name)) != NULL ||
	    (size_t)(mid - ns) >= sizeof(nsb) || (size_t)(end - name) >= sizeof(nameb))
		return false;
	if (hr->user == NULL) {
		http_send_status(hr->req, 401, NULL, "authentication required");
		return true;
	}
	if (!http__method_is(hr->req, "POST")) {
		http_send_status(hr->req, 405, NULL, "serviceaccounts/token only takes POST");
		return true;
	}
	if (hr->server->replica == NULL) {
		http_send_status(hr->req, 503, NULL, "no store");
		return true;
	}
	memcpy(nsb, ns, (size_t)(mid - ns));
	nsb[mid - ns] = '\0';
	memcpy(nameb, name, (size_t)(end - name));
	nameb[end - name] = '\0';
	token_request(hr, nsb, nameb);
	return true;
}
