#include "src/cli/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "src/lib/buf.h"
#include "src/lib/version.h"

#define DEFAULT_TIMEOUT_MS 30000
#define CONNECT_TIMEOUT_MS 10000
#define BODY_MAX (256u << 20)

struct blob {
	char *data;
	size_t len;
};

struct cli_http_client {
	CURL *curl;
	char *server;
	struct blob ca, cert, key;
	char *token;
	bool insecure;
	uint64_t timeout_ms;
	char errbuf[CURL_ERROR_SIZE];
	char errmsg[512];
};

static int blob_copy(struct blob *b, const char *data, size_t len)
{
	if (data == NULL)
		return 0;
	b->data = malloc(len + 1);
	if (b->data == NULL)
		return -ENOMEM;
	memcpy(b->data, data, len);
	b->data[len] = '\0';
	b->len = len;
	return 0;
}

int cli_http_client_new(const char *server, const struct cli_kubeconfig *kc,
			uint64_t timeout_ms, struct cli_http_client **ret_client)
{
	struct cli_http_client *c;
	size_t n;

	if (server == NULL || server[0] == '\0')
		return -EINVAL;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return -ENOMEM;
	c->server = strdup(server);
	if (c->server == NULL)
		goto err;
	n = strlen(c->server);
	while (n > 0 && c->server[n - 1] == '/')
		c->server[--n] = '\0';
	if (kc != NULL) {
		if (blob_copy(&c->ca, kc->ca, kc->ca_len) != 0 ||
		    blob_copy(&c->cert, kc->cert, kc->cert_len) != 0 ||
		    blob_copy(&c->key, kc->key, kc->key_len) != 0)
			goto err;
		if (kc->token != NULL && (c->token = strdup(kc->token)) == NULL)
			goto err;
		c->insecure = kc->insecure;
	}
	c->curl = curl_easy_init();
	if (c->curl == NULL)
		goto err;
	c->timeout_ms = timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS;
	*ret_client = c;
	return 0;
err:
	cli_http_client_free(c);
	return -ENOMEM;
}

void cli_http_client_free(struct cli_http_client *c)
{
	if (c == NULL)
		return;
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	free(c->server);
	free(c->ca.data);
	free(c->cert.data);
	if (c->key.data != NULL)
		memset(c->key.data, 0, c->key.len);
	free(c->key.data);
	free(c->token);
	free(c);
}

void cli_http_client_set_insecure(struct cli_http_client *c, bool insecure)
{
	c->insecure = insecure;
}

int cli_http_client_set_token(struct cli_http_client *c, const char *token)
{
	char *t = NULL;

	if (token != NULL && (t = strdup(token)) == NULL)
		return -ENOMEM;
	free(c->token);
	c->token = t;
	return 0;
}

const char *cli_http_client_server(const struct cli_http_client *c)
{
	return c->server;
}

const char *cli_http_client_errmsg(const struct cli_http_client *c)
{
	return c->errmsg;
}

void cli_http_response_free(struct cli_http_response *r)
{
	free(r->body);
	r->body = NULL;
	r->len = 0;
}

/* Sink of a whole body, or of the error body of a stream. */
struct sink {
	struct buf body; /* at most BODY_MAX bytes, the NUL included */
	/* Streaming only: */
	CURL *curl;
	cli_http_line_cb cb;
	void *data;
	int cb_rv;
	bool is_error; /* the answer is not 2xx: keep it whole */
	bool checked;
};

static size_t body_write_cb(char *p, size_t size, size_t nmemb, void *data)
{
	struct sink *s = data;
	size_t n = size * nmemb;

	return buf_append_max(&s->body, p, n, BODY_MAX) == 0 ? n : 0;
}

/* The stream's lines are handed over as soon as they are complete. */
static size_t stream_write_cb(char *p, size_t size, size_t nmemb, void *data)
{
	struct sink *s = data;
	size_t n = size * nmemb, start = 0;

	if (!s->checked) {
		long status = 0;
		curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
		s->is_error = status < 200 || status > 299;
		s->checked = true;
	}
	if (buf_append_max(&s->body, p, n, BODY_MAX) != 0)
		return 0;
	if (s->is_error)
		return n;
	for (size_t i = 0; i < s->body.len; i++) {
		if (s->body.data[i] != '\n')
			continue;
		s->body.data[i] = '\0';
		if (i > start) {
			size_t l = i - start;
			if (s->body.data[i - 1] == '\r')
				s->body.data[--l + start] = '\0';
			if (l > 0) {
				int rv = s->cb(s->body.data + start, l, s->data);
				if (rv != 0) {
					s->cb_rv = rv;
					return 0;
				}
			}
		}
		start = i + 1;
	}
	memmove(s->body.data, s->body.data + start, s->body.len - start);
	s->body.len -= start;
	if (s->body.data != NULL)
		s->body.data[s->body.len] = '\0';
	return n;
}

static int map_curl_error(struct cli_http_client *c, CURLcode code, const char *url)
{
	const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(code);
	int rv;

	switch (code) {
	case CURLE_COULDNT_CONNECT:
		rv = -ECONNREFUSED;
		break;
	case CURLE_OPERATION_TIMEDOUT:
		rv = -ETIMEDOUT;
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		rv = -EHOSTUNREACH;
		break;
	case CURLE_OUT_OF_MEMORY:
		rv = -ENOMEM;
		break;
	default:
		rv = -EPROTO;
		break;
	}
	snprintf(c->errmsg, sizeof c->errmsg, "cannot reach %.300s: %.180s", url, detail);
	return rv;
}

static int setup(struct cli_http_client *c, const char *method, const char *path,
		 char *url, size_t url_len, struct curl_slist **headers)
{
	struct curl_blob b;
	struct curl_slist *h = NULL, *nh;
	char auth[4096];
	int n;

	if (strncmp(path, "http://", 7) == 0 || strncmp(path, "https://", 8) == 0)
		n = snprintf(url, url_len, "%s", path);
	else
		n = snprintf(url, url_len, "%s%s", c->server, path);
	if (n < 0 || (size_t)n >= url_len) {
		snprintf(c->errmsg, sizeof c->errmsg, "URL too long");
		return -ENAMETOOLONG;
	}
	curl_easy_reset(c->curl);
	c->errbuf[0] = '\0';
	c->errmsg[0] = '\0';
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	/* A trace switch for debugging TLS and HTTP/2 negotiation. */
	if (getenv("CAPSTAN_HTTP_TRACE") != NULL)
		curl_easy_setopt(c->curl, CURLOPT_VERBOSE, 1L);
	{
		char ua[128];
		snprintf(ua, sizeof ua, "capstan/%s", version_string());
		curl_easy_setopt(c->curl, CURLOPT_USERAGENT, ua);
	}
	if (c->ca.data != NULL) {
		b = (struct curl_blob){c->ca.data, c->ca.len, CURL_BLOB_COPY};
		curl_easy_setopt(c->curl, CURLOPT_CAINFO_BLOB, &b);
	}
	if (c->cert.data != NULL && c->key.data != NULL) {
		b = (struct curl_blob){c->cert.data, c->cert.len, CURL_BLOB_COPY};
		curl_easy_setopt(c->curl, CURLOPT_SSLCERT_BLOB, &b);
		curl_easy_setopt(c->curl, CURLOPT_SSLCERTTYPE, "PEM");
		b = (struct curl_blob){c->key.data, c->key.len, CURL_BLOB_COPY};
		curl_easy_setopt(c->curl, CURLOPT_SSLKEY_BLOB, &b);
		curl_easy_setopt(c->curl, CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (c->insecure) {
		curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	/* No 100-continue round trip for PUT bodies over HTTP/1.1. */
	h = curl_slist_append(h, "Expect:");
	if (h == NULL)
		goto err_nomem;
	if (c->token != NULL) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token);
		nh = curl_slist_append(h, auth);
		if (nh == NULL)
			goto err_nomem;
		h = nh;
	}
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	*headers = h;
	return 0;
err_nomem:
	curl_slist_free_all(h);
	snprintf(c->errmsg, sizeof c->errmsg, "out of memory");
	return -ENOMEM;
}

int cli_http_request(struct cli_http_client *c, const char *method, const char *path,
		     const void *body, size_t body_len, uint64_t timeout_ms,
		     struct cli_http_response *ret)
{
	return cli_http_request_typed(c, method, path, NULL, NULL, body, body_len, timeout_ms,
				      ret);
}

int cli_http_request_typed(struct cli_http_client *c, const char *method, const char *path,
			   const char *content_type, const char *accept, const void *body,
			   size_t body_len, uint64_t timeout_ms, struct cli_http_response *ret)
{
	char hdr[256];
	struct curl_slist *headers = NULL, *nh;
	struct sink s = {0};
	char url[8192];
	CURLcode code;
	long status = 0;
	char *text;
	size_t text_len;
	int rv;

	rv = setup(c, method, path, url, sizeof url, &headers);
	if (rv != 0)
		return rv;
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS,
			 (long)(timeout_ms ? timeout_ms : c->timeout_ms));
	if (accept != NULL) {
		snprintf(hdr, sizeof hdr, "Accept: %s", accept);
		nh = curl_slist_append(headers, hdr);
		if (nh == NULL) {
			rv = -ENOMEM;
			goto out;
		}
		headers = nh;
		curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
	}
	if (body != NULL) {
		snprintf(hdr, sizeof hdr, "Content-Type: %s",
			 content_type != NULL ? content_type : "application/octet-stream");
		nh = curl_slist_append(headers, hdr);
		if (nh == NULL) {
			rv = -ENOMEM;
			goto out;
		}
		headers = nh;
		curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body_len ? body : "");
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, body_write_cb);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &s);
	code = curl_easy_perform(c->curl);
	if (code != CURLE_OK) {
		rv = map_curl_error(c, code, url);
		buf_free(&s.body);
		goto out;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	text = buf_steal(&s.body, &text_len);
	if (text == NULL) {
		buf_free(&s.body);
		rv = -ENOMEM;
		goto out;
	}
	ret->status = status;
	ret->body = text;
	ret->len = text_len;
out:
	curl_slist_free_all(headers);
	return rv;
}

int cli_http_stream(struct cli_http_client *c, const char *path, uint64_t idle_ms,
		    cli_http_line_cb cb, void *data, struct cli_http_response *ret_error)
{
	struct curl_slist *headers = NULL;
	struct sink s = {0};
	char url[8192];
	CURLcode code;
	long status = 0;
	int rv;

	rv = setup(c, "GET", path, url, sizeof url, &headers);
	if (rv != 0)
		return rv;
	curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	/* No overall timeout: a watch lasts until interrupted. The server's
	 * bookmarks keep a healthy stream above the low-speed limit. */
	if (idle_ms > 0) {
		curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME,
				 (long)((idle_ms + 999) / 1000));
	}
	s.curl = c->curl;
	s.cb = cb;
	s.data = data;
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, stream_write_cb);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &s);
	code = curl_easy_perform(c->curl);
	if (s.cb_rv != 0) {
		rv = s.cb_rv;
		goto out;
	}
	if (code != CURLE_OK) {
		rv = map_curl_error(c, code, url);
		goto out;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || status > 299) {
		ret_error->status = status;
		ret_error->len = s.body.len;
		ret_error->body = buf_steal(&s.body, NULL);
		rv = ret_error->body != NULL ? 0 : -ENOMEM;
		goto out;
	}
	/* A last line without its newline. */
	if (s.body.len > 0)
		rv = cb(s.body.data, s.body.len, data);
out:
	buf_free(&s.body);
	curl_slist_free_all(headers);
	return rv;
}

void cli_http_error_message(const struct cli_http_response *r, char *buf, size_t len)
{
	json_t *root = NULL;
	const char *msg = NULL;

	if (r->body != NULL && r->len > 0)
		root = json_loadb(r->body, r->len, 0, NULL);
	if (root != NULL && json_is_object(root))
		msg = json_string_value(json_object_get(root, "message"));
	if (msg != NULL && msg[0] != '\0') {
		snprintf(buf, len, "%s", msg);
	} else if (r->body != NULL && r->len > 0 && root == NULL) {
		size_t n = strcspn(r->body, "\r\n");
		snprintf(buf, len, "%.*s", (int)(n < 400 ? n : 400), r->body);
	} else {
		snprintf(buf, len, "the server answered %ld", r->status);
	}
	json_decref(root);
	/* One line, always. */
	for (char *p = buf; *p; p++) {
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	}
}

int cli_http_escape_path(const char *s, char *buf, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(buf);

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		bool keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
			    ch == '_' || ch == '~' || ch == '/';
		if (n + (keep ? 1 : 3) >= len)
			return -ENAMETOOLONG;
		if (keep) {
			buf[n++] = (char)ch;
		} else {
			buf[n++] = '%';
			buf[n++] = hex[ch >> 4];
			buf[n++] = hex[ch & 15];
		}
	}
	buf[n] = '\0';
	return 0;
}
