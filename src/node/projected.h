/* Projected volumes of the node agent: service-account tokens bound to
 * their pod (TokenRequest bodies, answers, refresh timing, retry
 * back-off), the files of a projected (or downwardAPI) volume, and the
 * atomic writer that swaps a volume's contents at once.
 *
 * The atomic writer follows the kubelet's layout, which programs reading
 * mounted tokens rely on:
 *
 *   DIR/..2026_11_26_21_41_46.Ab12Cd/   the files of one version
 *   DIR/..data -> ..2026_11_26_21_41_46.Ab12Cd
 *   DIR/token  -> ..data/token          one link per top-level name
 *
 * A new version is written in full into a new directory, then a
 * "..data_tmp" link to it is renamed over "..data" (rename(2) is atomic),
 * so a reader sees the old files or the new ones, never a mix or a
 * partial file; the old directory and names no longer present go after.
 *
 * Token timing (as the kubelet's token manager): a token is requested
 * again once 80% of its lifetime has passed, or 24 hours after it was
 * issued, whichever comes first; a failed request is retried with a
 * doubling back-off while the pod keeps the token it has.
 *
 * Everything here is pure or BLOCKING file work (thread pool); no libuv,
 * no API client: src/node/pods.c drives the requests.
 */
#ifndef CAPSTAN_NODE_PROJECTED_H
#define CAPSTAN_NODE_PROJECTED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "src/node/podspec.h"

#define PROJECTED_DEFAULT_EXPIRY_S 3600
#define PROJECTED_MAX_REFRESH_MS (24ull * 3600 * 1000)
#define PROJECTED_RETRY_BASE_MS 1000
#define PROJECTED_RETRY_MAX_MS 60000
/* Member of the job's private pod copy holding the tokens
 * ({"<volume>": {"<source index>": "<jwt>"}}), like "#configmaps". */
#define PROJECTED_TOKENS_MEMBER "#tokens"
/* Test hook: when set (milliseconds), every token is refreshed this
 * long after it was received instead of at 80% of its lifetime. */
#define PROJECTED_REFRESH_ENV "CAPSTAN_NODE_TOKEN_REFRESH_MS"

/* One serviceAccountToken source of one projected volume. Strings owned. */
struct projected_token {
	char *volume;         /* the volume's name */
	size_t source;        /* index in its projected.sources */
	char *audience;       /* NULL: the API server's own audiences */
	int64_t expiration_s; /* asked lifetime (default 3600) */
	char *token;          /* current token, NULL until the first answer */
	uint64_t refresh_ms;  /* (loop time) next request due */
	uint64_t backoff_ms;  /* current retry delay, 0 when not failing */
	unsigned failures;    /* consecutive failed requests */
	bool in_flight;
};

struct projected_tokens {
	struct projected_token *v;
	size_t n;
	char *service_account; /* spec.serviceAccountName, else "default" */
	uint64_t refresh_override_ms; /* PROJECTED_REFRESH_ENV, 0 if unset */
};

/* Collects the serviceAccountToken sources of @pod's projected volumes
 * (@pod borrowed). @t is overwritten. Errors: -ENOMEM (@t left empty). */
int projected_tokens_init(struct projected_tokens *t, const json_t *pod);
/* Frees (and wipes) what @t holds; @t may be zeroed or half-built. */
void projected_tokens_clear(struct projected_tokens *t);

/* Does every source hold a token? (True when there is none.) */
bool projected_tokens_ready(const struct projected_tokens *t);

/* {"<volume>": {"<index>": "<token>"}} of the tokens held (new
 * reference; NULL on OOM). */
json_t *projected_tokens_json(const struct projected_tokens *t);

/* The TokenRequest path of @t's account in namespace @ns, into @buf.
 * Errors: -ENAMETOOLONG. */
int projected_token_path(const struct projected_tokens *t, const char *ns, char *buf,
			 size_t len);

/* The TokenRequest body for @tk bound to the pod @pod_name/@pod_uid (new
 * reference; NULL on OOM). */
json_t *projected_token_request(const struct projected_token *tk, const char *pod_name,
				const char *pod_uid);

/* Milliseconds from receiving a token until it must be requested again:
 * 80% of @lifetime_s (capped at 24 h) counted from its issue, of which
 * @lifetime_s - @remaining_s has already passed; at least 1000. */
uint64_t projected_refresh_delay_ms(int64_t lifetime_s, int64_t remaining_s);

/* Records a TokenRequest answer @resp (the body, borrowed) received at
 * loop time @now_ms and wall time @now_wall_s: the new token, and when
 * to refresh it (@override_ms > 0 replaces the computed delay).
 * Errors: -EINVAL (no status.token; @tk unchanged), -ENOMEM. */
int projected_token_set(struct projected_token *tk, const json_t *resp, int64_t now_wall_s,
			uint64_t now_ms, uint64_t override_ms);

/* Records a failed request at loop time @now_ms: the back-off doubles
 * from PROJECTED_RETRY_BASE_MS to PROJECTED_RETRY_MAX_MS and the next
 * attempt is due after it. The token held (if any) stays. */
void projected_token_failed(struct projected_token *tk, uint64_t now_ms);

/* Earliest refresh_ms of the sources not in flight (UINT64_MAX: none). */
uint64_t projected_tokens_next(const struct projected_tokens *t);

/* A core/v1 Event about pod @pod (borrowed) from the node agent of
 * @node: type Warning, @reason (e.g. "FailedMount"), @message, at wall
 * time @now_wall_s (new reference; NULL on OOM). */
json_t *projected_event(const json_t *pod, const char *node, const char *reason,
			const char *message, int64_t now_wall_s);

/* One file of a volume's payload. @path is relative ("a" or "dir/a"),
 * @data is owned by the payload. */
struct projected_file {
	char *path;
	char *data;
	size_t len;
	mode_t mode;
};

struct projected_payload {
	struct projected_file *v;
	size_t n;
};

void projected_payload_clear(struct projected_payload *p);

/* The files of volume @vol (a projected or a downwardAPI volume) of the
 * pod in @x: configMap, secret, downwardAPI (metadata.name, namespace,
 * uid, labels, annotations, and single labels/annotations) and
 * serviceAccountToken sources; tokens come from the PROJECTED_TOKENS_MEMBER
 * of @x->pod. Errors: -ENOENT (a non-optional object, key or token is
 * missing: @why says which), -EINVAL (a bad path: @why), -ENOMEM. */
int projected_payload_build(const struct podspec_ctx *x, const json_t *vol,
			    struct projected_payload *ret, char *why, size_t why_len);

/* BLOCKING. Writes @p into @dir atomically (see above); @dir must exist.
 * An unchanged payload writes nothing (*@ret_changed false; may be NULL).
 * Errors: -EINVAL (a path with "..", absolute, or starting with ".."),
 * negative errno of the file operations (the previous version stays). */
int projected_write_atomic(const char *dir, const struct projected_payload *p,
			   bool *ret_changed);

/* BLOCKING. Builds and writes volume @vol into @dir.
 * Errors: as projected_payload_build and projected_write_atomic. */
int projected_volume_write(const struct podspec_ctx *x, const json_t *vol, const char *dir,
			   char *why, size_t why_len);

/* BLOCKING. Rewrites every projected volume of @x's pod that has a
 * serviceAccountToken source (after a refresh), into
 * @x->pod_dir/volumes/<name>. Errors: as projected_volume_write. */
int projected_token_volumes_write(const struct podspec_ctx *x, char *why, size_t why_len);

#endif
