/* Container probes (see probe.h). exec goes through `runc exec`
 * (rt_exec); httpGet and tcpSocket connect from the node to the pod's IP
 * on the thread pool (libcurl for HTTP, a plain connect for TCP), as the
 * kubelet probes from the host. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "runtime/runtime.h"
#include "src/node/probe.h"

static unsigned int_or(const json_t *o, const char *k, unsigned def)
{
	const json_t *v = json_object_get(o, k);

	return json_is_integer(v) && json_integer_value(v) >= 0 ? (unsigned)json_integer_value(v)
								 : def;
}

void node_probe_timing(const json_t *probe, struct node_probe_timing *t)
{
	t->initial_delay_ms = int_or(probe, "initialDelaySeconds", 0) * 1000;
	t->period_ms = int_or(probe, "periodSeconds", 10) * 1000;
	t->timeout_ms = int_or(probe, "timeoutSeconds", 1) * 1000;
	t->success_threshold = int_or(probe, "successThreshold", 1);
	t->failure_threshold = int_or(probe, "failureThreshold", 3);
	if (t->period_ms == 0)
		t->period_ms = 1000;
	if (t->timeout_ms == 0)
		t->timeout_ms = 1000;
	if (t->success_threshold == 0)
		t->success_threshold = 1;
	if (t->failure_threshold == 0)
		t->failure_threshold = 1;
}

/* A port: a number, or the name of one of the container's ports. */
static int port_of(const json_t *v, const json_t *ctr)
{
	const json_t *p;
	size_t i;

	if (json_is_integer(v))
		return (int)json_integer_value(v);
	if (!json_is_string(v))
		return -1;
	json_array_foreach (json_object_get(ctr, "ports"), i, p)
		if (json_is_string(json_object_get(p, "name")) &&
		    strcmp(json_string_value(json_object_get(p, "name")), json_string_value(v)) == 0)
			return (int)json_integer_value(json_object_get(p, "containerPort"));
	return atoi(json_string_value(v));
}

struct net_probe {
	uv_work_t work;
	bool http;
	char url[1024];
	char host[256];
	int port;
	unsigned timeout_ms;
	struct curl_slist *headers;
	bool ok;
	char msg[256];
	node_probe_cb cb;
	void *data;
};

static size_t discard_cb(char *p, size_t size, size_t n, void *data)
{
	(void)p;
	(void)data;
	return size * n;
}

static void net_work_cb(uv_work_t *w)
{
	struct net_probe *np = w->data;

	if (np->http) {
		CURL *h = curl_easy_init();
		long status = 0;
		CURLcode cc;
		if (h == NULL) {
			snprintf(np->msg, sizeof(np->msg), "out of memory");
			return;
		}
		curl_easy_setopt(h, CURLOPT_URL, np->url);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)np->timeout_ms);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L); /* as the kubelet */
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
		curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(h, CURLOPT_USERAGENT, "kube-probe/1.32");
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_cb);
		if (np->headers != NULL)
			curl_easy_setopt(h, CURLOPT_HTTPHEADER, np->headers);
		cc = curl_easy_perform(h);
		if (cc == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(h);
		/* Kubernetes: 200 <= status < 400 is a success. */
		np->ok = cc == CURLE_OK && status >= 200 && status < 400;
		if (cc != CURLE_OK)
			snprintf(np->msg, sizeof(np->msg), "Get \"%.160s\": %s", np->url,
				 curl_easy_strerror(cc));
		else if (!np->ok)
			snprintf(np->msg, sizeof(np->msg), "HTTP probe failed with statuscode: %ld",
				 status);
		return;
	}
	{
		struct sockaddr_in sa;
		struct pollfd pfd;
		int fd, err = 0;
		socklen_t len = sizeof(err);

		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_port = htons((uint16_t)np->port);
		if (inet_pton(AF_INET, np->host, &sa.sin_addr) != 1) {
			snprintf(np->msg, sizeof(np->msg), "bad address %.64s", np->host);
			return;
		}
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
			err = errno;
		} else {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, (int)np->timeout_ms) != 1)
				err = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
				err = errno;
		}
		close(fd);
		np->ok = err == 0;
		if (err != 0)
			snprintf(np->msg, sizeof(np->msg), "dial tcp %.64s:%d: %s", np->host, np->port,
				 strerror(err));
	}
}

static void net_after_cb(uv_work_t *w, int status)
{
	struct net_probe *np = w->data;

	np->cb(np->data, status == 0 && np->ok, np->msg[0] ? np->msg : NULL);
	curl_slist_free_all(np->headers);
	free(np);
}

struct exec_probe {
	node_probe_cb cb;
	void *data;
};

static void exec_cb(void *data, int err, const struct rt_result *res)
{
	struct exec_probe *ep = data;
	char msg[256] = "";
	bool ok = err == 0 && res->term_signal == 0 && !res->timed_out && res->exit_status == 0;

	if (err != 0)
		snprintf(msg, sizeof(msg), "exec failed: %s", strerror(-err));
	else if (res->timed_out)
		snprintf(msg, sizeof(msg), "command timed out");
	else if (!ok)
		snprintf(msg, sizeof(msg), "command exited with %lld: %.200s",
			 (long long)res->exit_status, res->err != NULL ? res->err : "");
	ep->cb(ep->data, ok, msg[0] ? msg : NULL);
	free(ep);
}

int node_probe_run(uv_loop_t *loop, struct rt *rt, const json_t *probe, const json_t *ctr,
		   const char *id, const char *host, node_probe_cb cb, void *data)
{
	struct node_probe_timing t;
	const json_t *h;
	struct net_probe *np;
	int rv;

	node_probe_timing(probe, &t);
	if ((h = json_object_get(probe, "exec")) != NULL) {
		const json_t *cmd = json_object_get(h, "command"), *s;
		const char *args[64];
		struct rt_exec_opts o;
		struct exec_probe *ep;
		size_t i;
		memset(&o, 0, sizeof(o));
		json_array_foreach (cmd, i, s) {
			if (i >= 63 || !json_is_string(s))
				return -EINVAL;
			args[i] = json_string_value(s);
		}
		if (json_array_size(cmd) == 0)
			return -EINVAL;
		args[json_array_size(cmd)] = NULL;
		o.args = args;
		ep = calloc(1, sizeof(*ep));
		if (ep == NULL)
			return -ENOMEM;
		ep->cb = cb;
		ep->data = data;
		rv = rt_exec(rt, id, &o, t.timeout_ms, exec_cb, ep);
		if (rv != 0)
			free(ep);
		return rv;
	}
	np = calloc(1, sizeof(*np));
	if (np == NULL)
		return -ENOMEM;
	np->work.data = np;
	np->cb = cb;
	np->data = data;
	np->timeout_ms = t.timeout_ms;
	if ((h = json_object_get(probe, "httpGet")) != NULL) {
		const char *scheme = json_string_value(json_object_get(h, "scheme"));
		const char *path = json_string_value(json_object_get(h, "path"));
		const char *hh = json_string_value(json_object_get(h, "host"));
		const json_t *hd;
		size_t i;
		int port = port_of(json_object_get(h, "port"), ctr);
		np->http = true;
		snprintf(np->url, sizeof(np->url), "%s://%s:%d%s%s",
			 scheme != NULL && strcmp(scheme, "HTTPS") == 0 ? "https" : "http",
			 hh != NULL ? hh : host, port, path != NULL && path[0] == '/' ? "" : "/",
			 path != NULL ? path : "");
		json_array_foreach (json_object_get(h, "httpHeaders"), i, hd) {
			char line[512];
			snprintf(line, sizeof(line), "%s: %s",
				 json_string_value(json_object_get(hd, "name")) != NULL ? json_string_value(json_object_get(hd, "name")) : "X",
				 json_string_value(json_object_get(hd, "value")) != NULL ? json_string_value(json_object_get(hd, "value")) : "");
			np->headers = curl_slist_append(np->headers, line);
		}
	} else if ((h = json_object_get(probe, "tcpSocket")) != NULL) {
		const char *hh = json_string_value(json_object_get(h, "host"));
		snprintf(np->host, sizeof(np->host), "%s", hh != NULL ? hh : host);
		np->port = port_of(json_object_get(h, "port"), ctr);
	} else {
		free(np);
		return -EINVAL;
	}
	rv = uv_queue_work(loop, &np->work, net_work_cb, net_after_cb);
	if (rv != 0) {
		curl_slist_free_all(np->headers);
		free(np);
	}
	return rv;
}
