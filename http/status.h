/* Kubernetes Status objects: the JSON body of every API error, and small
 * helpers that answer an h2o request. */
#ifndef CAPSTAN_HTTP_STATUS_H
#define CAPSTAN_HTTP_STATUS_H

#include <stddef.h>

#include <h2o.h>
#include <jansson.h>

/* The Kubernetes reason of an HTTP status code ("NotFound" for 404...),
 * "InternalError" for codes it does not know. */
const char *http_status_reason(int code);

/* The HTTP reason phrase of @code ("Not Found"). */
const char *http_status_phrase(int code);

/* Encodes {"kind":"Status","apiVersion":"v1","metadata":{},
 * "status":"Failure","message":..,"reason":..,"code":N} into a malloc'ed,
 * NUL-terminated string. @reason NULL: http_status_reason(code). A message
 * that is not UTF-8 is replaced. Returns NULL on OOM. */
char *http_status_json(int code, const char *reason, const char *message, size_t *ret_len);

/* Answers @req with a Status (format as printf). */
void http_send_status(h2o_req_t *req, int code, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Answers @req with @body as application/json; takes the reference. */
void http_send_json(h2o_req_t *req, int code, json_t *body);

/* Answers @req with a copy of @body. */
void http_send_raw(h2o_req_t *req, int code, const char *content_type, const void *body,
		   size_t len);

#endif
