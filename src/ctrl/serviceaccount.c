/* The ServiceAccount controllers of kube-controller-manager in one:
 * - serviceaccount: a "default" ServiceAccount in every active namespace,
 *   made again when deleted;
 * - root-ca-cert-publisher: a ConfigMap "kube-root-ca.crt" with the
 *   cluster CA (data ca.crt) in every active namespace, which pods mount
 *   beside their token (projected service-account volumes);
 * - tokens: every Secret of type kubernetes.io/service-account-token
 *   annotated kubernetes.io/service-account.name gets data.token (a
 *   legacy, non-expiring JWT naming the account and the Secret),
 *   data.ca.crt and data.namespace, and the account's uid in the
 *   kubernetes.io/service-account.uid annotation. A token Secret whose
 *   account is gone (or was made again with another uid) is deleted, as
 *   Kubernetes does; an account still missing gets a grace period first,
 *   so that a manifest may create the Secret before its account.
 *
 * The signing key and the CA come from the replicated store
 * (SATOKEN_STORE_KEY, SATOKEN_CA_STORE_KEY, written by the API server when
 * it leads: http/serviceaccount.c); until they are there, the syncs that
 * need them retry. A token is signed again only when the one in the
 * Secret no longer verifies (the key changed) or names something else.
 *
 * Queue keys: "ns:<namespace>", "secret:<ns>/<name>", "sa:<ns>/<name>"
 * (look again at the token Secrets of one account), "ca" (waiting for the
 * CA to appear). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "src/ctrl/ctrl.h"
#include "src/ctrl/podtemplate.h"
#include "src/lib/codec.h"
#include "src/lib/log.h"
#include "src/lib/satoken.h"

#define DEFAULT_SA "default"
#define ROOT_CA_CM "kube-root-ca.crt"
#define ROOT_CA_DESCRIPTION \
	"The cluster CA bundle, to verify the API server at kubernetes.default.svc."
/* How long a token Secret may wait for its ServiceAccount. */
#define ORPHAN_GRACE_MS 10000
#define WAIT_KEY_MS 1000
#define WAIT_CA_MS 2000
#define RETRY_MS 5000
#define KEY_MAX 600

struct priv {
	const struct api_kind *ns_kind, *sa_kind, *secret_kind, *cm_kind;
	struct satoken_key *key; /* parsed signing key, from key_rev */
	uint64_t key_rev;
	bool waiting_ca;
};

static int start(struct ctrl *c)
{
	struct priv *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return -ENOMEM;
	p->ns_kind = api_kind_by_resource("", "v1", "namespaces");
	p->sa_kind = api_kind_by_resource("", "v1", "serviceaccounts");
	p->secret_kind = api_kind_by_resource("", "v1", "secrets");
	p->cm_kind = api_kind_by_resource("", "v1", "configmaps");
	ctrl_set_priv(c, p);
	return 0;
}

static void stop(struct ctrl *c)
{
	struct priv *p = ctrl_priv(c);

	if (p == NULL)
		return;
	satoken_key_free(p->key);
	free(p);
	ctrl_set_priv(c, NULL);
}

/* Queues "<kind>:<a>" or, with @b, "<kind>:<a>/<b>". */
static void enqueue_key(struct ctrl *c, const char *kind, const char *a, const char *b)
{
	char key[KEY_MAX];
	int n = snprintf(key, sizeof(key), "%s:%s%s%s", kind, a, b != NULL ? "/" : "",
			 b != NULL ? b : "");

	if (n > 0 && (size_t)n < sizeof(key))
		ctrl_enqueue(c, key);
}

static bool mp_str_is(const void *val, size_t len, const char *path, const char *want)
{
	const char *s;
	size_t n;

	return codec_msgpack_get_str(val, len, path, &s, &n) == 0 && n == strlen(want) &&
	       memcmp(s, want, n) == 0;
}

static void on_event(struct ctrl *c, const struct ctrl_event *ev)
{
	struct priv *p = ctrl_priv(c);

	if (ev->kind == p->ns_kind) {
		if (ev->type != CTRL_DELETED)
			enqueue_key(c, "ns", ev->name, NULL);
	} else if (ev->kind == p->sa_kind) {
		if (ev->type == CTRL_DELETED && strcmp(ev->name, DEFAULT_SA) == 0)
			enqueue_key(c, "ns", ev->ns, NULL);
		enqueue_key(c, "sa", ev->ns, ev->name);
	} else if (ev->kind == p->secret_kind) {
		if (ev->type != CTRL_DELETED &&
		    mp_str_is(ev->val, ev->val_len, "type", SATOKEN_SECRET_TYPE))
			enqueue_key(c, "secret", ev->ns, ev->name);
	} else if (ev->kind == p->cm_kind) {
		if (strcmp(ev->name, ROOT_CA_CM) == 0)
			enqueue_key(c, "ns", ev->ns, NULL);
	}
}

/* ------------------------------------------------------------ store keys */

/* The CA PEM from the store (a new string), or NULL. */
static char *root_ca(struct ctrl *c)
{
	struct store_kv kv;
	char *s;

	if (store_get(ctrl_store(c), SATOKEN_CA_STORE_KEY, strlen(SATOKEN_CA_STORE_KEY), &kv) !=
	    0)
		return NULL;
	s = strndup(kv.val, kv.val_len);
	return s;
}

/* The signing key, parsed again only when its stored revision changed;
 * NULL while absent or malformed. Borrowed from the private state. */
static struct satoken_key *signing_key(struct ctrl *c, struct priv *p)
{
	struct store_kv kv;
	struct satoken_key *k;

	if (store_get(ctrl_store(c), SATOKEN_STORE_KEY, strlen(SATOKEN_STORE_KEY), &kv) != 0)
		return NULL;
	if (p->key != NULL && kv.mod_rev == p->key_rev)
		return p->key;
	if (satoken_key_load(kv.val, kv.val_len, &k) != 0) {
		ctrl_log(c, LOG_LEVEL_ERROR, "the stored service-account key is not valid");
		return NULL;
	}
	satoken_key_free(p->key);
	p->key = k;
	p->key_rev = kv.mod_rev;
	return k;
}

static void retry(struct ctrl *c, const char *key, int rv, const char *what)
{
	ctrl__retry(c, key, rv, RETRY_MS, "cannot %s for", what);
}

/* ------------------------------------------------------------ namespaces */

static int enqueue_ns_cb(const struct store_kv *kv, void *data)
{
	struct ctrl *c = data;
	const char *name;
	size_t n;

	if (codec_msgpack_get_str(kv->val, kv->val_len, "metadata.name", &name, &n) == 0 &&
	    n < 256) {
		char buf[300];
		snprintf(buf, sizeof(buf), "ns:%.*s", (int)n, name);
		ctrl_enqueue(c, buf);
	}
	return 0;
}

/* The CA appeared (or not yet): every namespace gets its ConfigMap. */
static void sync_ca(struct ctrl *c, struct priv *p)
{
	char *ca = root_ca(c);

	if (ca == NULL) {
		ctrl_enqueue_after(c, "ca", WAIT_CA_MS);
		return;
	}
	free(ca);
	p->waiting_ca = false;
	ctrl_list(c, p->ns_kind, NULL, enqueue_ns_cb, c);
}

static void sync_root_ca(struct ctrl *c, struct priv *p, const char *ns, const char *key)
{
	json_t *cm, *obj = NULL;
	char *ca = root_ca(c);
	const char *cur;
	int rv;

	if (ca == NULL) {
		if (!p->waiting_ca) {
			p->waiting_ca = true;
			ctrl_enqueue_after(c, "ca", WAIT_CA_MS);
		}
		return;
	}
	cm = ctrl_get(c, p->cm_kind, ns, ROOT_CA_CM, NULL);
	if (cm == NULL) {
		obj = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:s}}", "apiVersion", "v1",
				"kind", "ConfigMap", "metadata", "name", ROOT_CA_CM, "namespace", ns,
				"annotations", "kubernetes.io/description", ROOT_CA_DESCRIPTION,
				"data", "ca.crt", ca);
		if (obj != NULL) {
			rv = ctrl_create(c, p->cm_kind, obj, key);
			retry(c, key, rv, "create the root CA ConfigMap");
		}
		goto out;
	}
	cur = json_string_value(json_object_get(json_object_get(cm, "data"), "ca.crt"));
	if (cur != NULL && strcmp(cur, ca) == 0 && json_object_size(json_object_get(cm, "data")) == 1)
		goto out;
	obj = json_deep_copy(cm);
	if (obj != NULL) {
		json_object_set_new(obj, "data", json_pack("{s:s}", "ca.crt", ca));
		json_object_del(obj, "binaryData");
		rv = ctrl_update(c, p->cm_kind, obj, key);
		retry(c, key, rv, "update the root CA ConfigMap");
	}
out:
	json_decref(obj);
	json_decref(cm);
	free(ca);
}

static void sync_namespace(struct ctrl *c, struct priv *p, const char *ns, const char *key)
{
	json_t *nso = ctrl_get(c, p->ns_kind, NULL, ns, NULL), *sa, *obj;
	const char *phase;
	int rv;

	if (nso == NULL)
		return;
	phase = ctrl_str(nso, "status.phase");
	if (ctrl_str(nso, "metadata.deletionTimestamp") != NULL ||
	    (phase != NULL && strcmp(phase, "Terminating") == 0)) {
		json_decref(nso);
		return;
	}
	json_decref(nso);
	sa = ctrl_get(c, p->sa_kind, ns, DEFAULT_SA, NULL);
	if (sa == NULL) {
		obj = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind",
				"ServiceAccount", "metadata", "name", DEFAULT_SA, "namespace", ns);
		if (obj != NULL) {
			rv = ctrl_create(c, p->sa_kind, obj, key);
			retry(c, key, rv, "create the default ServiceAccount");
			json_decref(obj);
		}
	}
	json_decref(sa);
	sync_root_ca(c, p, ns, key);
}

/* ------------------------------------------------------------ token Secrets */

struct sa_scan {
	struct ctrl *c;
	const char *ns, *name;
};

static int sa_scan_cb(const struct store_kv *kv, void *data)
{
	struct sa_scan *s = data;
	const void *ann, *v;
	const char *name;
	size_t alen, vlen, n;

	if (!mp_str_is(kv->val, kv->val_len, "type", SATOKEN_SECRET_TYPE) ||
	    codec_msgpack_get(kv->val, kv->val_len, "metadata.annotations", &ann, &alen) != 0 ||
	    codec_msgpack_map_get(ann, alen, SATOKEN_ANN_SA_NAME, strlen(SATOKEN_ANN_SA_NAME), &v,
				  &vlen) != 0 ||
	    !mp_str_is(v, vlen, "", s->name) ||
	    codec_msgpack_get_str(kv->val, kv->val_len, "metadata.name", &name, &n) != 0 ||
	    n >= 256)
		return 0;
	{
		char key[KEY_MAX];
		snprintf(key, sizeof(key), "secret:%s/%.*s", s->ns, (int)n, name);
		ctrl_enqueue(s->c, key);
	}
	return 0;
}

/* data.<field> of a Secret tree, decoded from base64 (a new string), or
 * NULL. */
static char *secret_field(const json_t *secret, const char *field)
{
	const char *b64 = json_string_value(json_object_get(json_object_get(secret, "data"), field));
	char *out;
	size_t len;

	if (b64 == NULL || satoken_unbase64(b64, strlen(b64), &out, &len) != 0)
		return NULL;
	if (strlen(out) != len) {
		free(out);
		return NULL;
	}
	return out;
}

/* Whether @token verifies with @k and names exactly this account and
 * Secret. */
static bool token_current(const struct satoken_key *k, const char *token, const char *ns,
			  const char *sa, const char *uid, const char *secret)
{
	json_t *claims = NULL;
	struct satoken_info in;
	bool ok;

	if (token == NULL || satoken_verify(k, token, strlen(token), &claims) != 0)
		return false;
	ok = satoken_claims_parse(claims, 0, &in) == 0 && in.legacy && strcmp(in.ns, ns) == 0 &&
	     strcmp(in.sa_name, sa) == 0 && strcmp(in.sa_uid, uid) == 0 &&
	     strcmp(in.secret_name, secret) == 0;
	json_decref(claims);
	return ok;
}

static bool set_data(json_t *obj, const char *field, const char *value)
{
	json_t *data = json_object_get(obj, "data");
	char *b64 = satoken_base64(value, strlen(value));
	const char *cur;
	bool changed;

	if (b64 == NULL)
		return false;
	if (!json_is_object(data)) {
		data = json_object();
		json_object_set_new(obj, "data", data);
	}
	cur = json_string_value(json_object_get(data, field));
	changed = cur == NULL || strcmp(cur, b64) != 0;
	if (changed)
		json_object_set_new(data, field, json_string(b64));
	free(b64);
	return changed;
}

static void sync_secret(struct ctrl *c, struct priv *p, const char *ns, const char *name,
			const char *key)
{
	json_t *sec = ctrl_get(c, p->secret_kind, ns, name, NULL), *sa = NULL, *obj = NULL,
	       *claims = NULL;
	const char *type, *sa_name, *sa_uid, *ann_uid;
	char *token = NULL, *fresh = NULL, *ca = NULL;
	struct satoken_key *k;
	bool changed = false;
	int rv;

	if (sec == NULL)
		return;
	type = ctrl_str(sec, "type");
	sa_name = ctrl__annotation(sec, SATOKEN_ANN_SA_NAME);
	if (type == NULL || strcmp(type, SATOKEN_SECRET_TYPE) != 0 || sa_name == NULL ||
	    ctrl_str(sec, "metadata.deletionTimestamp") != NULL)
		goto out;
	sa = ctrl_get(c, p->sa_kind, ns, sa_name, NULL);
	sa_uid = sa != NULL ? ctrl_str(sa, "metadata.uid") : NULL;
	ann_uid = ctrl__annotation(sec, SATOKEN_ANN_SA_UID);
	if (sa == NULL || sa_uid == NULL || ctrl_str(sa, "metadata.deletionTimestamp") != NULL ||
	    (ann_uid != NULL && strcmp(ann_uid, sa_uid) != 0)) {
		uint64_t born = ctrl__time_at(sec, "metadata.creationTimestamp");
		uint64_t now = ctrl_now_ms(c);
		/* A Secret for an account that does not exist yet may come
		 * first in a manifest: wait a little before deleting. */
		if (sa == NULL && ann_uid == NULL && born + ORPHAN_GRACE_MS > now) {
			ctrl_enqueue_after(c, key, born + ORPHAN_GRACE_MS - now);
			goto out;
		}
		rv = ctrl_delete(c, p->secret_kind, ns, name, 0, ctrl_str(sec, "metadata.uid"),
				 NULL, -1, key);
		retry(c, key, rv, "delete the token Secret");
		goto out;
	}
	k = signing_key(c, p);
	if (k == NULL) {
		ctrl_enqueue_after(c, key, WAIT_KEY_MS);
		goto out;
	}
	obj = json_deep_copy(sec);
	if (obj == NULL)
		goto oom;
	token = secret_field(sec, "token");
	if (!token_current(k, token, ns, sa_name, sa_uid, name)) {
		claims = satoken_legacy_claims(ns, sa_name, sa_uid, name);
		if (claims == NULL || satoken_sign(k, claims, &fresh) != 0)
			goto oom;
		changed |= set_data(obj, "token", fresh);
	}
	changed |= set_data(obj, "namespace", ns);
	ca = root_ca(c);
	if (ca != NULL)
		changed |= set_data(obj, "ca.crt", ca);
	changed |= ctrl__set_annotation(obj, SATOKEN_ANN_SA_UID, sa_uid);
	if (changed) {
		rv = ctrl_update(c, p->secret_kind, obj, key);
		retry(c, key, rv, "fill the token Secret");
	}
	if (ca == NULL)
		ctrl_enqueue_after(c, key, WAIT_CA_MS); /* ca.crt to come */
	goto out;
oom:
	ctrl_log(c, LOG_LEVEL_ERROR, "out of memory syncing %s", key);
	ctrl_enqueue_after(c, key, RETRY_MS);
out:
	if (fresh != NULL)
		OPENSSL_cleanse(fresh, strlen(fresh));
	free(fresh);
	free(token);
	free(ca);
	json_decref(claims);
	json_decref(obj);
	json_decref(sa);
	json_decref(sec);
}

/* ------------------------------------------------------------ sync */

static void sync(struct ctrl *c, const char *key)
{
	struct priv *p = ctrl_priv(c);
	char ns[256], name[256];
	const char *rest, *slash;

	if (strcmp(key, "ca") == 0) {
		sync_ca(c, p);
		return;
	}
	if (strncmp(key, "ns:", 3) == 0) {
		if (strlen(key + 3) < sizeof(ns))
			sync_namespace(c, p, key + 3, key);
		return;
	}
	rest = strchr(key, ':');
	if (rest == NULL)
		return;
	rest++;
	slash = strchr(rest, '/');
	if (slash == NULL || (size_t)(slash - rest) >= sizeof(ns) ||
	    strlen(slash + 1) >= sizeof(name))
		return;
	memcpy(ns, rest, (size_t)(slash - rest));
	ns[slash - rest] = '\0';
	strcpy(name, slash + 1);
	if (strncmp(key, "secret:", 7) == 0) {
		sync_secret(c, p, ns, name, key);
	} else if (strncmp(key, "sa:", 3) == 0) {
		struct sa_scan s = {c, ns, name};
		ctrl_list(c, p->secret_kind, ns, sa_scan_cb, &s);
	}
}

const struct ctrl_ops ctrl_serviceaccount_ops = {
	.name = "serviceaccount",
	.start = start,
	.stop = stop,
	.on_event = on_event,
	.sync = sync,
};
