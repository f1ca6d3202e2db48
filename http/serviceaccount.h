/* Service accounts in the API server (private to http/): the shared
 * signing key and CA in the store, authentication of service-account
 * tokens, TokenRequest (POST .../serviceaccounts/NAME/token) and
 * SelfSubjectReview (POST /apis/authentication.k8s.io/v1/selfsubjectreviews,
 * `kubectl auth whoami`).
 *
 * Key distribution: the signing key must be the same on every master, so
 * it lives in the replicated store (SATOKEN_STORE_KEY). A replica that
 * becomes the ready leader and finds no key generates one in the libuv
 * thread pool (RSA generation takes up to half a second) and writes it
 * create-only: concurrent or repeated attempts keep the first key. The
 * leader also writes this master's cluster CA (DATA/pki/ca.crt) to
 * SATOKEN_CA_STORE_KEY when it is absent or different, for the
 * kube-root-ca.crt ConfigMaps and the token Secrets' ca.crt. Verification
 * reads both from the local store, so every master checks every token.
 */
#ifndef CAPSTAN_HTTP_SERVICEACCOUNT_H
#define CAPSTAN_HTTP_SERVICEACCOUNT_H

#include <stdbool.h>
#include <stddef.h>

#include "http/internal.h"

/* Server start: reads the CA and subscribes to leadership.
 * Errors: -ENOMEM. */
int http__sa_start(struct http_server *s);

/* Server close: forgets the server in the leadership subscription. */
void http__sa_close(struct http_server *s);

/* The user of service-account token @token (@len bytes, borrowed), owned
 * by the request's pool, or NULL when it is not a valid one (not a JWT,
 * bad signature, expired, or naming objects that are gone). */
const struct http_user *http__sa_user(struct http_server *s, h2o_req_t *req, const char *token,
				      size_t len);

/* Handles the request when it is a TokenRequest or a SelfSubjectReview
 * (returns true: answered now or later); false leaves it to the
 * Kubernetes API dispatcher. */
bool http__sa_route(struct http_request *hr);

#endif
