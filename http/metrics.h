/* Prometheus metrics of the API server: request counts and latencies by
 * verb and resource, Raft and store gauges, watch streams, process stats. */
#ifndef CAPSTAN_HTTP_METRICS_H
#define CAPSTAN_HTTP_METRICS_H

struct http_request;

/* Starts measuring @hr (borrowed): called once per request, before it is
 * authenticated. A record in the request's pool counts the request into
 * apiserver_request_total and apiserver_request_duration_seconds when the
 * pool is disposed (the response is complete or the client left), with the
 * status then set (requests that never got one are not counted). Open
 * ?watch requests are the capstan_watch_streams gauge. The series live in
 * process-wide tables of fixed size (a series past the limit is dropped);
 * resources not in the kind registry read as "other". */
void http__metrics_begin(struct http_request *hr);

/* GET /metrics: the text exposition format, version 0.0.4. */
void http__metrics(struct http_request *hr);

#endif
