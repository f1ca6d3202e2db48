/* /capstan/v1/nodes/: what a node agent needs from the masters before it
 * has credentials of its own, and to keep them.
 *
 *   POST /capstan/v1/nodes/certificate
 *        {"nodeName": N, "csr": PEM, "addresses": ["127.0.0.1", "host"]}
 *        -> 200 {"certificate": PEM, "caCert": PEM}
 *   The certificate, signed by the cluster CA, carries CN=system:node:N and
 *   O=system:nodes (the user and group Kubernetes gives node agents), the
 *   CSR's public key, both client and server usage (the agent serves its
 *   logs endpoint with it) and the addresses as subjectAltNames. Allowed
 *   for bootstrap-token users (as Kubernetes auto-approves their node CSRs)
 *   and system:masters; a node may renew its own certificate only.
 *
 *   GET  /capstan/v1/nodes/apiservers -> {"urls": [API URL of each master]}
 *   for nodes, bootstrap-token users and masters, so that node agents keep
 *   their list of masters current without the cluster's status endpoint.
 *
 * The CA key is read and used in the thread pool: the loop never waits for
 * the disk or the signature.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "http/internal.h"
#include "src/lib/pki.h"

#define GROUP_NODES "system:nodes"
#define NODE_USER_PREFIX "system:node:"
#define MAX_ADDRESSES 16
#define CSR_MAX 16384

struct cert_op {
	struct http_op op; /* first */
	uv_work_t work;
	char *pki_dir;
	char *csr;
	char *node_name;
	char *sans[MAX_ADDRESSES];
	size_t n_sans;
	char *cert_pem; /* results */
	char *ca_pem;
	int err;
	const char *why; /* static text for a 400 */
};

/* RFC 1123 subdomain, as Kubernetes wants node names. */
static bool valid_node_name(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 253)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && c != '-' && c != '.')
			return false;
		if (!alnum && (i == 0 || i == n - 1))
			return false;
	}
	return true;
}

static int add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok;

	if (ext == NULL)
		return -EIO;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -EIO;
}

static int set_serial(X509 *cert)
{
	unsigned char raw[16];
	BIGNUM *bn;
	int rv;

	rv = pki_random(raw, sizeof(raw));
	if (rv != 0)
		return rv;
	raw[0] &= 0x7f; /* positive */
	bn = BN_bin2bn(raw, sizeof(raw), NULL);
	if (bn == NULL)
		return -ENOMEM;
	rv = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL ? 0 : -EIO;
	BN_free(bn);
	return rv;
}

/* Signs @csr_pem for node @name with @ca. */
static int sign(const struct pki_pair *ca, struct cert_op *c, X509 **ret_cert)
{
	BIO *bio = NULL;
	X509_REQ *csr = NULL;
	EVP_PKEY *pub = NULL;
	X509 *cert = NULL;
	X509_NAME *subj;
	X509V3_CTX ctx;
	char cn[300];
	char *san = NULL;
	size_t i, san_len = 0;
	int rv = -EINVAL;

	bio = BIO_new_mem_buf(c->csr, (int)strlen(c->csr));
	if (bio == NULL)
		return -ENOMEM;
	csr = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
	if (csr == NULL) {
		c->why = "the CSR is not a PEM certificate request";
		goto out;
	}
	pub = X509_REQ_get_pubkey(csr);
	if (pub == NULL || X509_REQ_verify(csr, pub) != 1) {
		c->why = "the CSR's signature does not verify";
		goto out;
	}
	rv = -EIO;
	cert = X509_new();
	if (cert == NULL || X509_set_version(cert, 2) != 1)
		goto out;
	if ((rv = set_serial(cert)) != 0)
		goto out;
	rv = -EIO;
	if (X509_gmtime_adj(X509_getm_notBefore(cert), -300) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(cert), (long)PKI_LEAF_DAYS * 86400) == NULL)
		goto out;
	snprintf(cn, sizeof(cn), "%s%s", NODE_USER_PREFIX, c->node_name);
	subj = X509_get_subject_name(cert);
	if (X509_NAME_add_entry_by_txt(subj, "O", MBSTRING_UTF8,
				       (const unsigned char *)GROUP_NODES, -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
				       -1, 0) != 1 ||
	    X509_set_issuer_name(cert, X509_get_subject_name(ca->cert)) != 1 ||
	    X509_set_pubkey(cert, pub) != 1)
		goto out;
	X509V3_set_ctx(&ctx, ca->cert, cert, NULL, NULL, 0);
	if ((rv = add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:FALSE")) != 0 ||
	    (rv = add_ext(cert, &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment")) !=
		    0 ||
	    (rv = add_ext(cert, &ctx, NID_ext_key_usage, "serverAuth,clientAuth")) != 0 ||
	    (rv = add_ext(cert, &ctx, NID_subject_key_identifier, "hash")) != 0 ||
	    (rv = add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always")) != 0)
		goto out;
	if (c->n_sans > 0) {
		for (i = 0; i < c->n_sans; i++)
			san_len += strlen(c->sans[i]) + 5;
		san = malloc(san_len + 1);
		if (san == NULL) {
			rv = -ENOMEM;
			goto out;
		}
		san[0] = '\0';
		for (i = 0; i < c->n_sans; i++) {
			unsigned char ip[16];
			bool is_ip = inet_pton(AF_INET, c->sans[i], ip) == 1 ||
				     inet_pton(AF_INET6, c->sans[i], ip) == 1;
			if (i > 0)
				strcat(san, ",");
			strcat(san, is_ip ? "IP:" : "DNS:");
			strcat(san, c->sans[i]);
		}
		if ((rv = add_ext(cert, &ctx, NID_subject_alt_name, san)) != 0)
			goto out;
	}
	rv = -EIO;
	if (X509_sign(cert, ca->key, EVP_sha256()) <= 0)
		goto out;
	*ret_cert = cert;
	cert = NULL;
	rv = 0;
out:
	ERR_clear_error();
	free(san);
	X509_free(cert);
	EVP_PKEY_free(pub);
	X509_REQ_free(csr);
	BIO_free(bio);
	return rv;
}

static void cert_work_cb(uv_work_t *work)
{
	struct cert_op *c = work->data;
	struct pki_pair ca = {NULL, NULL};
	X509 *cert = NULL;
	size_t len;

	c->err = pki_pair_load(c->pki_dir, PKI_CA, true, &ca);
	if (c->err != 0)
		return;
	c->err = sign(&ca, c, &cert);
	if (c->err == 0)
		c->err = pki_cert_pem(cert, &c->cert_pem, &len);
	if (c->err == 0)
		c->err = pki_cert_pem(ca.cert, &c->ca_pem, &len);
	X509_free(cert);
	pki_pair_clear(&ca);
}

static void cert_op_free(struct cert_op *c)
{
	size_t i;

	free(c->pki_dir);
	free(c->csr);
	free(c->node_name);
	for (i = 0; i < c->n_sans; i++)
		free(c->sans[i]);
	free(c->cert_pem);
	free(c->ca_pem);
	http__op_free(&c->op);
}

static void cert_after_cb(uv_work_t *work, int status)
{
	struct cert_op *c = work->data;
	struct http_server *s = c->op.server;
	h2o_req_t *req = http__op_detach(&c->op);

	if (req != NULL) {
		if (status == 0 && c->err == 0)
			http_send_json(req, 200,
				       json_pack("{s:s, s:s}", "certificate", c->cert_pem, "caCert",
						 c->ca_pem));
		else if (c->why != NULL)
			http_send_status(req, 400, "BadRequest", "%s", c->why);
		else
			http_send_status(req, 500, NULL, "cannot sign the node certificate: %s",
					 strerror(c->err ? -c->err : EIO));
	}
	s->n_handles--;
	http__maybe_finish_close(s);
	cert_op_free(c);
}

static void node_certificate(struct http_request *hr)
{
	struct http_server *s = hr->server;
	const struct http_user *u = hr->user;
	json_t *body, *addrs, *v;
	json_error_t jerr;
	const char *name, *csr;
	struct cert_op *c;
	size_t i;
	int rv;

	body = json_loadb(hr->req->entity.base, hr->req->entity.len, 0, &jerr);
	if (body == NULL || !json_is_object(body)) {
		json_decref(body);
		http_send_status(hr->req, 400, "BadRequest", "the body is not a JSON object");
		return;
	}
	name = json_string_value(json_object_get(body, "nodeName"));
	csr = json_string_value(json_object_get(body, "csr"));
	addrs = json_object_get(body, "addresses");
	if (name == NULL || !valid_node_name(name) || csr == NULL || strlen(csr) > CSR_MAX ||
	    (addrs != NULL && (!json_is_array(addrs) || json_array_size(addrs) > MAX_ADDRESSES))) {
		json_decref(body);
		http_send_status(hr->req, 400, "BadRequest",
				 "want nodeName (a DNS subdomain), csr (PEM) and at most %d "
				 "addresses",
				 MAX_ADDRESSES);
		return;
	}
	/* Bootstrappers and masters may name any node; a node renews only
	 * its own certificate. */
	if (!http_user_in_group(u, HTTP_GROUP_BOOTSTRAPPERS) &&
	    !http_user_in_group(u, HTTP_GROUP_MASTERS) &&
	    !(http_user_in_group(u, GROUP_NODES) &&
	      strncmp(u->name, NODE_USER_PREFIX, strlen(NODE_USER_PREFIX)) == 0 &&
	      strcmp(u->name + strlen(NODE_USER_PREFIX), name) == 0)) {
		http_send_status(hr->req, 403, NULL, "user \"%s\" cannot get a certificate for node %s",
				 u != NULL ? u->name : "system:anonymous", name);
		json_decref(body);
		return;
	}
	json_array_foreach (addrs, i, v) {
		const char *a = json_string_value(v);
		if (a == NULL || !pki_valid_san(a)) {
			json_decref(body);
			http_send_status(hr->req, 400, "BadRequest",
					 "addresses[%zu] is not an IP address or a DNS name", i);
			return;
		}
	}
	c = http__op_new(hr, sizeof(*c));
	if (c == NULL) {
		json_decref(body);
		return;
	}
	c->work.data = c;
	c->pki_dir = strdup(s->pki_dir);
	c->csr = strdup(csr);
	c->node_name = strdup(name);
	rv = c->pki_dir == NULL || c->csr == NULL || c->node_name == NULL ? -ENOMEM : 0;
	json_array_foreach (addrs, i, v) {
		if (rv != 0)
			break;
		c->sans[c->n_sans] = strdup(json_string_value(v));
		if (c->sans[c->n_sans] == NULL)
			rv = -ENOMEM;
		else
			c->n_sans++;
	}
	json_decref(body);
	if (rv == 0)
		rv = uv_queue_work(s->loop, &c->work, cert_work_cb, cert_after_cb);
	if (rv == 0) {
		s->n_handles++; /* the close waits for the thread pool */
		return;
	}
	cert_op_free(c);
	http_send_status(hr->req, 500, NULL, "cannot sign the node certificate: %s", strerror(-rv));
}

static void node_apiservers(struct http_request *hr)
{
	struct replica_status *st = malloc(sizeof(*st));
	json_t *urls;
	unsigned i;

	if (st == NULL) {
		http_send_status(hr->req, 500, NULL, "out of memory");
		return;
	}
	replica_get_status(hr->server->replica, st);
	urls = json_array();
	for (i = 0; urls != NULL && i < st->n_members && i < 16; i++)
		if (st->members[i].api_url[0] != '\0')
			json_array_append_new(urls, json_string(st->members[i].api_url));
	if (urls != NULL && json_array_size(urls) == 0 && st->api_url[0] != '\0')
		json_array_append_new(urls, json_string(st->api_url));
	free(st);
	http_send_json(hr->req, 200, json_pack("{s:o}", "urls", urls));
}

void http__nodes(struct http_request *hr, const char *rest, size_t len)
{
	if (len == strlen("/certificate") && memcmp(rest, "/certificate", len) == 0) {
		if (http__method_is(hr->req, "POST"))
			node_certificate(hr);
		else
			http_send_status(hr->req, 405, NULL, "only POST is allowed here");
		return;
	}
	if (len == strlen("/apiservers") && memcmp(rest, "/apiservers", len) == 0) {
		if (http__method_is(hr->req, "GET"))
			node_apiservers(hr);
		else
			http_send_status(hr->req, 405, NULL, "only GET is allowed here");
		return;
	}
	http_send_status(hr->req, 404, NULL, "the server could not find the requested resource");
}
