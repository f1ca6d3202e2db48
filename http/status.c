/* Kubernetes Status errors and JSON answers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/status.h"

static const struct {
	int code;
	const char *reason;
	const char *phrase;
} codes[] = {
	{200, "", "OK"},
	{201, "", "Created"},
	{400, "BadRequest", "Bad Request"},
	{401, "Unauthorized", "Unauthorized"},
	{403, "Forbidden", "Forbidden"},
	{404, "NotFound", "Not Found"},
	{405, "MethodNotAllowed", "Method Not Allowed"},
	{406, "NotAcceptable", "Not Acceptable"},
	{409, "Conflict", "Conflict"},
	{410, "Expired", "Gone"},
	{413, "RequestEntityTooLarge", "Request Entity Too Large"},
	{415, "UnsupportedMediaType", "Unsupported Media Type"},
	{421, "ServiceUnavailable", "Misdirected Request"},
	{422, "Invalid", "Unprocessable Entity"},
	{429, "TooManyRequests", "Too Many Requests"},
	{500, "InternalError", "Internal Server Error"},
	{502, "InternalError", "Bad Gateway"},
	{503, "ServiceUnavailable", "Service Unavailable"},
	{504, "Timeout", "Gateway Timeout"},
};

const char *http_status_reason(int code)
{
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].code == code)
			return codes[i].reason;
	return "InternalError";
}

const char *http_status_phrase(int code)
{
	size_t i;

	for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].code == code)
			return codes[i].phrase;
	return code < 400 ? "OK" : "Error";
}

char *http_status_json(int code, const char *reason, const char *message, size_t *ret_len)
{
	json_t *o, *msg;
	char *s;

	msg = json_string(message != NULL ? message : "");
	if (msg == NULL) /* not UTF-8 */
		msg = json_string("(message not shown: not UTF-8)");
	o = json_pack("{s:s, s:s, s:{}, s:s, s:o, s:s, s:i}", "kind", "Status", "apiVersion", "v1",
		      "metadata", "status", code < 400 ? "Success" : "Failure", "message", msg,
		      "reason", reason != NULL ? reason : http_status_reason(code), "code", code);
	if (o == NULL)
		return NULL;
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (s != NULL && ret_len != NULL)
		*ret_len = strlen(s);
	return s;
}

void http_send_raw(h2o_req_t *req, int code, const char *content_type, const void *body,
		   size_t len)
{
	req->res.status = code;
	req->res.reason = http_status_phrase(code);
	req->res.content_length = len;
	if (content_type != NULL && content_type[0] != '\0')
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
			       h2o_strdup(&req->pool, content_type, SIZE_MAX).base,
			       strlen(content_type));
	h2o_send_inline(req, body, len); /* copies the body */
}

void http_send_status(h2o_req_t *req, int code, const char *reason, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	char *s;
	size_t len = 0;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s = http_status_json(code, reason, msg, &len);
	if (s == NULL) {
		static const char oom[] = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
					  "\"status\":\"Failure\",\"reason\":\"InternalError\",\"code\":500}";
		http_send_raw(req, 500, "application/json", oom, sizeof(oom) - 1);
		return;
	}
	http_send_raw(req, code, "application/json", s, len);
	free(s);
}

void http_send_json(h2o_req_t *req, int code, json_t *body)
{
	char *s = body != NULL ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

	json_decref(body);
	if (s == NULL) {
		http_send_status(req, 500, NULL, "out of memory encoding the answer");
		return;
	}
	http_send_raw(req, code, "application/json", s, strlen(s));
	free(s);
}
