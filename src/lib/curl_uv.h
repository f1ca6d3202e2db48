/* curl_uv: a libcurl multi handle driven by a libuv loop. */
#ifndef CAPSTAN_LIB_CURL_UV_H
#define CAPSTAN_LIB_CURL_UV_H

#include <stdbool.h>
#include <sys/queue.h>

#include <curl/curl.h>
#include <uv.h>

#include "src/lib/buf.h"

/* curl names the sockets to watch (one uv_poll each) and when to be
 * called back (one uv_timer); both feed curl_multi_socket_action(). After
 * every action the owner's io_cb runs, then each finished transfer is
 * taken off the multi handle and given to done_cb. None of the owner's
 * callbacks runs inside a curl callback, so they may add and remove easy
 * handles or close the curl_uv.
 *
 * The owner embeds the struct (its handles live in it) and keeps it until
 * the close callback has run. */
struct curl_uv;

/* A transfer ended: @easy has left the multi handle and is the owner's
 * again; @result is its CURLcode (CURLINFO_* can still be read). */
typedef void (*curl_uv_done_cb)(struct curl_uv *cu, CURL *easy, CURLcode result);

/* curl has run (data may have reached write callbacks); runs before the
 * finished transfers are handed over. */
typedef void (*curl_uv_io_cb)(struct curl_uv *cu);

typedef void (*curl_uv_close_cb)(struct curl_uv *cu);

struct curl_uv_poll;

struct curl_uv {
	CURLM *multi; /* add easy handles here; NULL once closed */
	void *data;   /* the owner's */
	/* Private. */
	uv_loop_t *loop;
	uv_timer_t timer;
	LIST_HEAD(, curl_uv_poll) polls;
	unsigned n_handles; /* uv handles not closed yet */
	bool closing;
	bool running; /* after_action() runs: no recursion */
	curl_uv_done_cb done_cb;
	curl_uv_io_cb io_cb;
	curl_uv_close_cb close_cb;
};

/* curl_global_init() once per process. Errors: -EIO. */
int curl_uv_global_init(void);

/* Creates the multi handle (HTTP/2 multiplexing on) on @loop. @done_cb
 * runs once per finished transfer; @io_cb may be NULL. The owner may set
 * further multi options on cu->multi. Call curl_uv_global_init() first.
 * Errors: -ENOMEM (nothing to close then). */
int curl_uv_init(struct curl_uv *cu, uv_loop_t *loop, curl_uv_done_cb done_cb,
		 curl_uv_io_cb io_cb, void *data);

/* Cleans up the multi handle (remove and free the easy handles first:
 * their transfers are not reported) and closes the handles; @cb (may be
 * NULL) runs from the loop once all are closed, never from within this
 * call. No done_cb or io_cb runs after this, even if called from one of
 * them. */
void curl_uv_close(struct curl_uv *cu, curl_uv_close_cb cb);

/* Per-request pieces both clients share. curl_uv_collect() as
 * CURLOPT_WRITEFUNCTION with a curl_uv_body as CURLOPT_WRITEDATA: the body
 * in @buf (NUL-terminated), the transfer failing past @max bytes with
 * @too_big set. curl_uv_prereq() as CURLOPT_PREREQFUNCTION with a
 * curl_uv_once as CURLOPT_PREREQDATA: runs right before curl issues the
 * request on a connection, also when curl sends it again by itself (a
 * reused connection that died before any answer, a refused HTTP/2
 * stream); such a request may have reached the server the first time, so
 * the second send is refused unless @repeatable. Reset both (len, too_big,
 * sent) before each transfer. */
struct curl_uv_body {
	struct buf buf;
	size_t max;
	bool too_big;
};

struct curl_uv_once {
	bool sent; /* it may have been written */
	bool repeatable;
};

size_t curl_uv_collect(char *ptr, size_t size, size_t nmemb, void *body);
int curl_uv_prereq(void *once, char *conn_primary_ip, char *conn_local_ip,
		   int conn_primary_port, int conn_local_port);

#endif
