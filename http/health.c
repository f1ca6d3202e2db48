/* /healthz, /livez, /readyz and /version: open to anonymous clients. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"
#include "src/lib/gitrev.h"

#if defined(__x86_64__)
#define PLATFORM "linux/amd64"
#elif defined(__aarch64__)
#define PLATFORM "linux/arm64"
#elif defined(__i386__)
#define PLATFORM "linux/386"
#else
#define PLATFORM "linux/unknown"
#endif

static void send_text(h2o_req_t *req, int code, const char *text)
{
	http_send_raw(req, code, "text/plain; charset=utf-8", text, strlen(text));
}

void http__health(struct http_request *hr, const char *which)
{
	struct replica_status *st;
	bool ready;

	if (strcmp(which, "readyz") != 0) {
		send_text(hr->req, 200, "ok");
		return;
	}
	st = malloc(sizeof(*st));
	if (st == NULL) {
		http_send_status(hr->req, 500, NULL, "out of memory");
		return;
	}
	replica_get_status(hr->server->replica, st);
	/* Ready: a leader is known and this replica has applied what it knows
	 * to be committed (a follower learns the commit index with the next
	 * heartbeat). */
	ready = !replica_failed(hr->server->replica) && st->leader_id != 0 &&
		st->applied_index >= st->commit_index && strcmp(st->state, "unavailable") != 0;
	free(st);
	if (ready)
		send_text(hr->req, 200, "ok");
	else
		http_send_status(hr->req, 503, NULL, "not ready: no leader known or not caught up");
}

void http__version(struct http_request *hr)
{
	const char *rev = CAPSTAN_GIT_REV;
	json_t *o;

	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "major", "1", "minor", "32",
		      "gitVersion", "v1.32.0-capstan." PACKAGE_VERSION, "gitCommit",
		      rev[0] != '\0' ? rev : "unknown", "gitTreeState",
		      strstr(rev, "dirty") != NULL ? "dirty" : "clean", "buildDate",
		      "1970-01-01T00:00:00Z", "goVersion", "none", "compiler", "gcc", "platform",
		      PLATFORM);
	http_send_json(hr->req, 200, o);
}
