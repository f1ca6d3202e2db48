/* Bootstrap of a node's credentials (see creds.h).
 *
 * Happy path: STATE/pki/node.crt exists, matches node.key, names this
 * node and has not expired -> nothing to do. Otherwise: a fresh P-256 key,
 * a CSR for CN=system:node:<name>, POST /capstan/v1/nodes/certificate to
 * each master in turn with the bootstrap token; the first 200 gives the
 * certificate and the CA, written atomically (key first, certificate
 * last, so a crash in between only repeats the request).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "src/lib/pki.h"
#include "src/node/creds.h"

#define NODE_USER_PREFIX "system:node:"
#define BODY_MAX (1u << 20)

void node_strv_free(char **v)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

size_t node_strv_len(char *const *v)
{
	size_t n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

int node_strv_add(char ***v, const char *s)
{
	size_t n = node_strv_len(*v), i;
	char **nv, *copy;

	for (i = 0; i < n; i++)
		if (strcmp((*v)[i], s) == 0)
			return 0;
	copy = strdup(s);
	if (copy == NULL)
		return -ENOMEM;
	nv = realloc(*v, (n + 2) * sizeof(*nv));
	if (nv == NULL) {
		free(copy);
		return -ENOMEM;
	}
	nv[n] = copy;
	nv[n + 1] = NULL;
	*v = nv;
	return 0;
}

static char *join_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);

	if (p != NULL)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

void node_creds_clear(struct node_creds *c)
{
	free(c->pki_dir);
	free(c->cert_file);
	free(c->key_file);
	free(c->ca_file);
	memset(c, 0, sizeof(*c));
}

/* True when the pair in @dir is usable for @node_name. */
static bool have_valid(const char *dir, const char *node_name)
{
	struct pki_pair p = {NULL, NULL};
	char cn[300], want[300];
	int64_t left = 0;
	bool ok = false;
	char *ca = join_path(dir, "ca.crt");

	if (ca == NULL || access(ca, R_OK) != 0)
		goto out;
	if (pki_pair_load(dir, "node", true, &p) != 0)
		goto out;
	if (pki_cert_seconds_left(p.cert, &left) != 0 || left < 3600)
		goto out;
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(p.cert), NID_commonName, cn,
				      sizeof(cn)) < 0)
		goto out;
	snprintf(want, sizeof(want), "%s%s", NODE_USER_PREFIX, node_name);
	ok = strcmp(cn, want) == 0;
out:
	free(ca);
	pki_pair_clear(&p);
	return ok;
}

static int make_csr(const char *node_name, EVP_PKEY **ret_key, char **ret_pem)
{
	EVP_PKEY *key = NULL;
	X509_REQ *req = NULL;
	BIO *bio = NULL;
	char cn[300], *data, *pem;
	long len;
	int rv = -EIO;

	key = EVP_EC_gen("P-256");
	if (key == NULL)
		goto out;
	req = X509_REQ_new();
	if (req == NULL)
		goto out;
	snprintf(cn, sizeof(cn), "%s%s", NODE_USER_PREFIX, node_name);
	if (X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "O", MBSTRING_UTF8,
				       (const unsigned char *)"system:nodes", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
				       (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1 || X509_REQ_sign(req, key, EVP_sha256()) <= 0)
		goto out;
	bio = BIO_new(BIO_s_mem());
	if (bio == NULL || PEM_write_bio_X509_REQ(bio, req) != 1)
		goto out;
	len = BIO_get_mem_data(bio, &data);
	pem = malloc((size_t)len + 1);
	if (pem == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	memcpy(pem, data, (size_t)len);
	pem[len] = '\0';
	*ret_pem = pem;
	*ret_key = key;
	key = NULL;
	rv = 0;
out:
	ERR_clear_error();
	BIO_free(bio);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return rv;
}

struct body {
	char *data;
	size_t len;
};

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct body *b = userdata;
	size_t n = size * nmemb;
	char *nd;

	if (b->len + n > BODY_MAX)
		return 0;
	nd = realloc(b->data, b->len + n + 1);
	if (nd == NULL)
		return 0;
	memcpy(nd + b->len, ptr, n);
	b->data = nd;
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

/* One HTTPS request; *ret_status 0 when the master could not be reached. */
static int https_call(const char *url, const char *method, const char *body, const char *token,
		      const char *ca_file, const char *cert_file, const char *key_file,
		      long *ret_status, json_t **ret_json, char *errmsg, size_t errmsg_len)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	struct body b = {NULL, 0};
	char auth[512];
	CURLcode cc;
	long status = 0;

	if (h == NULL)
		return -ENOMEM;
	hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		hdrs = curl_slist_append(hdrs, auth);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 15000L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	if (ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
	if (cert_file != NULL) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, cert_file);
		curl_easy_setopt(h, CURLOPT_SSLKEY, key_file);
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	cc = curl_easy_perform(h);
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	else
		snprintf(errmsg, errmsg_len, "%s: %s", url, curl_easy_strerror(cc));
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	*ret_status = status;
	*ret_json = b.data != NULL ? json_loads(b.data, 0, NULL) : NULL;
	if (status != 0 && status != 200) {
		json_t *m = *ret_json != NULL ? json_object_get(*ret_json, "message") : NULL;
		snprintf(errmsg, errmsg_len, "%s: HTTP %ld%s%s", url, status, m ? ": " : "",
			 m ? json_string_value(m) : "");
	}
	free(b.data);
	return 0;
}

static int request_cert(const char *pki_dir, const char *node_name, const char *const *servers,
			const char *token, const char *ca_file, const char *const *addresses,
			char *errmsg, size_t errmsg_len)
{
	EVP_PKEY *key = NULL;
	char *csr = NULL, *body = NULL, *key_pem = NULL, *path = NULL;
	json_t *req = NULL, *addrs, *res = NULL;
	size_t i, key_len;
	bool refused = false;
	int rv;

	rv = make_csr(node_name, &key, &csr);
	if (rv != 0) {
		snprintf(errmsg, errmsg_len, "cannot make a key and CSR");
		return rv;
	}
	addrs = json_array();
	for (i = 0; addresses != NULL && addresses[i] != NULL; i++)
		json_array_append_new(addrs, json_string(addresses[i]));
	req = json_pack("{s:s, s:s, s:o}", "nodeName", node_name, "csr", csr, "addresses",
			addrs);
	body = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
	if (body == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	rv = -ECONNREFUSED;
	for (i = 0; servers[i] != NULL; i++) {
		char url[1024];
		long status = 0;
		const char *crt, *ca;
		snprintf(url, sizeof(url), "%s/capstan/v1/nodes/certificate", servers[i]);
		json_decref(res);
		res = NULL;
		https_call(url, "POST", body, token, ca_file, NULL, NULL, &status, &res, errmsg,
			   errmsg_len);
		if (status == 401 || status == 403)
			refused = true;
		if (status != 200)
			continue;
		crt = json_string_value(json_object_get(res, "certificate"));
		ca = json_string_value(json_object_get(res, "caCert"));
		if (crt == NULL || ca == NULL) {
			snprintf(errmsg, errmsg_len, "%s: the answer has no certificate", url);
			rv = -EIO;
			continue;
		}
		if ((rv = pki_key_pem(key, &key_pem, &key_len)) != 0)
			goto out;
		path = join_path(pki_dir, "node.key");
		if (path == NULL) {
			rv = -ENOMEM;
			goto out;
		}
		if ((rv = pki_write_file(path, key_pem, key_len, 0600)) != 0)
			goto write_err;
		free(path);
		path = join_path(pki_dir, "ca.crt");
		if (path == NULL) {
			rv = -ENOMEM;
			goto out;
		}
		if ((rv = pki_write_file(path, ca, strlen(ca), 0644)) != 0)
			goto write_err;
		free(path);
		path = join_path(pki_dir, "node.crt");
		if (path == NULL) {
			rv = -ENOMEM;
			goto out;
		}
		if ((rv = pki_write_file(path, crt, strlen(crt), 0644)) != 0)
			goto write_err;
		rv = 0;
		goto out;
	}
	if (refused)
		rv = -EACCES;
	goto out;
write_err:
	snprintf(errmsg, errmsg_len, "cannot write %s: %s", path, strerror(-rv));
out:
	if (key_pem != NULL) {
		OPENSSL_cleanse(key_pem, strlen(key_pem));
		free(key_pem);
	}
	free(path);
	json_decref(res);
	json_decref(req);
	free(body);
	free(csr);
	EVP_PKEY_free(key);
	return rv;
}

int node_creds_ensure(struct node_creds *c, const char *state_dir, const char *node_name,
		      const char *const *servers, const char *token, const char *ca_file,
		      const char *const *addresses, char *errmsg, size_t errmsg_len)
{
	int rv;

	memset(c, 0, sizeof(*c));
	c->pki_dir = join_path(state_dir, "pki");
	if (c->pki_dir == NULL)
		return -ENOMEM;
	c->cert_file = join_path(c->pki_dir, "node.crt");
	c->key_file = join_path(c->pki_dir, "node.key");
	c->ca_file = join_path(c->pki_dir, "ca.crt");
	if (c->cert_file == NULL || c->key_file == NULL || c->ca_file == NULL) {
		node_creds_clear(c);
		return -ENOMEM;
	}
	if (mkdir(c->pki_dir, 0700) != 0 && errno != EEXIST) {
		rv = -errno;
		snprintf(errmsg, errmsg_len, "cannot create %s: %s", c->pki_dir, strerror(errno));
		node_creds_clear(c);
		return rv;
	}
	if (have_valid(c->pki_dir, node_name))
		return 0;
	if (token == NULL || token[0] == '\0') {
		snprintf(errmsg, errmsg_len,
			 "no valid certificate in %s and no --token to get one", c->pki_dir);
		node_creds_clear(c);
		return -EINVAL;
	}
	if (ca_file == NULL && access(c->ca_file, R_OK) == 0)
		ca_file = c->ca_file;
	if (ca_file == NULL) {
		snprintf(errmsg, errmsg_len, "--ca-file is needed to verify the masters");
		node_creds_clear(c);
		return -EINVAL;
	}
	if (servers == NULL || servers[0] == NULL) {
		snprintf(errmsg, errmsg_len, "no --server to ask for a certificate");
		node_creds_clear(c);
		return -EINVAL;
	}
	rv = request_cert(c->pki_dir, node_name, servers, token, ca_file, addresses, errmsg,
			  errmsg_len);
	if (rv != 0)
		node_creds_clear(c);
	return rv;
}

int node_masters_load(const char *state_dir, char ***ret_urls)
{
	char *path = join_path(state_dir, "masters"), *text = NULL, *line, *save = NULL;
	char **v = NULL;
	size_t len;
	int rv;

	if (path == NULL)
		return -ENOMEM;
	v = calloc(1, sizeof(*v));
	if (v == NULL) {
		free(path);
		return -ENOMEM;
	}
	rv = pki_read_file(path, &text, &len);
	free(path);
	if (rv == -ENOENT) {
		*ret_urls = v;
		return 0;
	}
	if (rv != 0) {
		free(v);
		return rv;
	}
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if ((rv = node_strv_add(&v, line)) != 0) {
			free(text);
			node_strv_free(v);
			return rv;
		}
	}
	free(text);
	*ret_urls = v;
	return 0;
}

int node_masters_save(const char *state_dir, const char *const *urls)
{
	char *path = join_path(state_dir, "masters"), *text;
	size_t i, n = 1, off = 0;
	int rv;

	if (path == NULL)
		return -ENOMEM;
	for (i = 0; urls[i] != NULL; i++)
		n += strlen(urls[i]) + 1;
	text = malloc(n);
	if (text == NULL) {
		free(path);
		return -ENOMEM;
	}
	for (i = 0; urls[i] != NULL; i++)
		off += (size_t)snprintf(text + off, n - off, "%s\n", urls[i]);
	rv = pki_write_file(path, text, off, 0644);
	free(text);
	free(path);
	return rv;
}
