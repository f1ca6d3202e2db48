/* The API server of a master: h2o on the daemon's loop, HTTPS (TLS 1.2/1.3,
 * ALPN h2 and http/1.1) and an optional plain listener (h2c and HTTP/1.1)
 * meant for loopback. The only code besides http/ internals that sees h2o.
 */
#ifndef CAPSTAN_HTTP_SERVER_H
#define CAPSTAN_HTTP_SERVER_H

#include <uv.h>

#include "raft/replica.h"

struct http_server;

struct http_server_config {
	const char *listen;       /* "0.0.0.0:6443": HTTPS; NULL/"" = none */
	const char *plain_listen; /* "127.0.0.1:8080": h2c + HTTP/1.1; NULL/"" = none */
	const char *pki_dir;      /* ca.crt ca.key server.crt server.key
				     master.crt master.key (see src/lib/pki.h) */
	const char *token_file;   /* static bearer tokens, CSV
				     "token,user,uid,\"group1,group2\"";
				     NULL = none */
	unsigned max_streams;     /* per HTTP/2 connection; default 256 */
};

/* Creates and starts the listeners. @replica borrowed; must outlive the
 * server. Errors: -EADDRINUSE and other uv errors of bind/listen, -EINVAL
 * (bad address), -EIO (unreadable certificates, message logged). */
int http_server_new(uv_loop_t *loop, const struct http_server_config *config,
		    struct replica *replica, struct http_server **ret_server);

/* Stops accepting, ends watch streams and open connections, and calls @cb
 * once every handle is closed. */
void http_server_close(struct http_server *s, void (*cb)(void *data), void *data);

#endif
