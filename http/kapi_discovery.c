/* Discovery: /api, /apis (legacy forms, or the aggregated v2 document when
 * the Accept header names it), /api/v1, /apis/G and /apis/G/V, from
 * src/api/discovery.h. The aggregated answer carries exactly the
 * Content-Type client-go looks for; otherwise it falls back to the legacy
 * documents. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/kapi.h"
#include "src/api/discovery.h"
#include "src/api/openapi.h"
#include "src/api/openapi_v2.h"

/* Whether the media range [p, end) has the parameter "name=value"
 * exactly: "v=v2" must not match the "v=v2beta1" that kubectl 1.27 sends. */
static bool has_param(const char *p, const char *end, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);

	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *stop = semi != NULL ? semi : end;

		while (p < stop && (*p == ' ' || *p == '\t'))
			p++;
		if ((size_t)(stop - p) >= nl + 1 + vl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
			const char *v = p + nl + 1, *ve = stop;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			if ((size_t)(ve - v) == vl && memcmp(v, value, vl) == 0)
				return true;
		}
		p = stop + 1;
	}
	return false;
}

/* Whether one of the Accept header's media ranges asks for the aggregated
 * discovery document in exactly the version served (apidiscovery v2);
 * older clients (v2beta1) get the legacy documents. */
static bool wants_aggregated(h2o_req_t *req)
{
	ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
	const char *p, *end;

	if (i < 0)
		return false;
	p = req->headers.entries[i].value.base;
	end = p + req->headers.entries[i].value.len;
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma != NULL ? comma : end;

		if (has_param(p, stop, "as", "APIGroupDiscoveryList") &&
		    has_param(p, stop, "g", "apidiscovery.k8s.io") && has_param(p, stop, "v", "v2"))
			return true;
		p = stop + 1;
	}
	return false;
}

static void send_doc(h2o_req_t *req, json_t *doc, const char *content_type)
{
	char *s;

	if (doc == NULL) {
		http_send_status(req, 500, NULL, "out of memory");
		return;
	}
	s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (s == NULL) {
		http_send_status(req, 500, NULL, "out of memory");
		return;
	}
	http_send_raw(req, 200, content_type, s, strlen(s));
	free(s);
}

/* The APIGroup of @group from the group list, or NULL. */
static json_t *api_group(const char *group)
{
	json_t *list = api_discovery_group_list(), *g, *found = NULL;
	size_t i;

	json_array_foreach(json_object_get(list, "groups"), i, g)
	{
		const char *name = json_string_value(json_object_get(g, "name"));
		if (name != NULL && strcmp(name, group) == 0) {
			found = json_deep_copy(g);
			break;
		}
	}
	json_decref(list);
	if (found != NULL) {
		json_object_set_new(found, "kind", json_string("APIGroup"));
		json_object_set_new(found, "apiVersion", json_string("v1"));
	}
	return found;
}

void kapi__discovery(struct http_request *hr, bool legacy, const char *group,
		     const char *version)
{
	h2o_req_t *req = hr->req;
	const char *url = hr->server->self_url != NULL ? hr->server->self_url : "";
	const char *addr = strstr(url, "://");
	json_t *doc;

	if (!http__method_is(req, "GET") && !http__method_is(req, "HEAD")) {
		http_send_status(req, 405, NULL, "discovery is read-only");
		return;
	}
	if (group == NULL) {
		if (wants_aggregated(req)) {
			send_doc(req, api_discovery_aggregated(legacy),
				 API_DISCOVERY_AGGREGATED_CONTENT_TYPE);
			return;
		}
		if (legacy)
			send_doc(req, api_discovery_api_versions(addr != NULL ? addr + 3 : url),
				 "application/json");
		else
			send_doc(req, api_discovery_group_list(), "application/json");
		return;
	}
	if (version == NULL) {
		doc = api_group(group);
		if (doc == NULL) {
			http_send_status(req, 404, NULL,
					 "the server could not find the requested resource");
			return;
		}
		send_doc(req, doc, "application/json");
		return;
	}
	if (!api_discovery_served(group, version)) {
		http_send_status(req, 404, NULL, "the server could not find the requested resource");
		return;
	}
	send_doc(req, api_discovery_resource_list(group, version), "application/json");
}

/* ------------------------------------------------------------ OpenAPI */

/* The documents never change within a build: each is built once, on first
 * use, and kept for the life of the process. */
#define OPENAPI_CACHE 32
static struct {
	char gv[128];
	char *text;
	size_t len;
} openapi_cache[OPENAPI_CACHE];

static const char *openapi_text(const char *group, const char *version, size_t *ret_len)
{
	char gv[128];
	json_t *doc;
	size_t i;

	snprintf(gv, sizeof(gv), "%s/%s", group != NULL ? group : "", version != NULL ? version : "");
	for (i = 0; i < OPENAPI_CACHE && openapi_cache[i].text != NULL; i++) {
		if (strcmp(openapi_cache[i].gv, gv) == 0) {
			*ret_len = openapi_cache[i].len;
			return openapi_cache[i].text;
		}
	}
	if (i == OPENAPI_CACHE)
		return NULL;
	doc = version == NULL ? api_openapi_v3_paths() : api_openapi_v3_document(group, version);
	if (doc == NULL)
		return NULL;
	openapi_cache[i].text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (openapi_cache[i].text == NULL)
		return NULL;
	snprintf(openapi_cache[i].gv, sizeof(openapi_cache[i].gv), "%s", gv);
	openapi_cache[i].len = strlen(openapi_cache[i].text);
	*ret_len = openapi_cache[i].len;
	return openapi_cache[i].text;
}

void kapi__openapi(struct http_request *hr, const char *group, const char *version)
{
	h2o_req_t *req = hr->req;
	const char *text;
	size_t len = 0;

	if (!http__method_is(req, "GET") && !http__method_is(req, "HEAD")) {
		http_send_status(req, 405, NULL, "the OpenAPI documents are read-only");
		return;
	}
	if (version != NULL && !api_discovery_served(group, version)) {
		http_send_status(req, 404, NULL, "the server could not find the requested resource");
		return;
	}
	text = openapi_text(group, version, &len);
	if (text == NULL) {
		http_send_status(req, 500, NULL, "cannot build the OpenAPI document");
		return;
	}
	http_send_raw(req, 200, "application/json", text, len);
}

/* The OpenAPI v2 document, built once: kubectl 1.27 and 1.28 validate and
 * explain with it (as gnostic protobuf) and fail without it. */
static struct {
	void *pb;
	size_t pb_len;
	char *json;
	size_t json_len;
} openapi_v2;

static bool accept_has(h2o_req_t *req, const char *type)
{
	ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
	h2o_iovec_t a;

	if (i < 0)
		return false;
	a = req->headers.entries[i].value;
	return h2o_strstr(a.base, a.len, type, strlen(type)) != SIZE_MAX;
}

void kapi__openapi_v2(struct http_request *hr)
{
	h2o_req_t *req = hr->req;

	if (!http__method_is(req, "GET") && !http__method_is(req, "HEAD")) {
		http_send_status(req, 405, NULL, "the OpenAPI documents are read-only");
		return;
	}
	if (accept_has(req, API_OPENAPI_V2_PROTOBUF_ACCEPT) ||
	    accept_has(req, API_OPENAPI_V2_PROTOBUF_TYPE)) {
		if (openapi_v2.pb == NULL &&
		    api_openapi_v2_protobuf(&openapi_v2.pb, &openapi_v2.pb_len) != 0) {
			http_send_status(req, 500, NULL, "cannot build the OpenAPI v2 document");
			return;
		}
		http_send_raw(req, 200, API_OPENAPI_V2_PROTOBUF_TYPE, openapi_v2.pb,
			      openapi_v2.pb_len);
		return;
	}
	if (openapi_v2.json == NULL) {
		json_t *doc = api_openapi_v2_json();

		openapi_v2.json = doc != NULL ? api_openapi_dump(doc, &openapi_v2.json_len) : NULL;
		json_decref(doc);
		if (openapi_v2.json == NULL) {
			http_send_status(req, 500, NULL, "cannot build the OpenAPI v2 document");
			return;
		}
	}
	http_send_raw(req, 200, "application/json", openapi_v2.json, openapi_v2.json_len);
}
