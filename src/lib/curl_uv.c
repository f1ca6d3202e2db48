/* libcurl multi on the uv loop: curl tells us which sockets to watch
 * (socket callback -> one uv_poll per socket) and when to call it back
 * (timer callback -> one uv_timer); both feed curl_multi_socket_action().
 * Finished transfers are collected with curl_multi_info_read() once curl
 * has returned, so the owner's callbacks never run inside curl's.
 *
 * Closing: the multi handle goes at once, the uv handles one loop turn
 * later; each close callback counts down n_handles and the last one calls
 * the owner back.
 */
#include "src/lib/curl_uv.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

struct curl_uv_poll {
	uv_poll_t poll;
	curl_socket_t fd;
	struct curl_uv *cu;
	LIST_ENTRY(curl_uv_poll) link;
};

static void handle_closed(struct curl_uv *cu)
{
	cu->n_handles--;
	if (cu->n_handles == 0 && cu->close_cb != NULL)
		cu->close_cb(cu);
}

static void poll_close_cb(uv_handle_t *h)
{
	struct curl_uv_poll *p = h->data;
	struct curl_uv *cu = p->cu;

	free(p);
	handle_closed(cu);
}

static void timer_close_cb(uv_handle_t *h)
{
	handle_closed(h->data);
}

static void poll_destroy(struct curl_uv_poll *p)
{
	LIST_REMOVE(p, link);
	uv_poll_stop(&p->poll);
	uv_close((uv_handle_t *)&p->poll, poll_close_cb);
}

/* After curl ran: the owner's look at buffered data, then every finished
 * transfer, unless the owner closes meanwhile. */
static void after_action(struct curl_uv *cu)
{
	CURLMsg *msg;
	int left;

	if (cu->running)
		return;
	cu->running = true;
	if (cu->io_cb != NULL && !cu->closing)
		cu->io_cb(cu);
	while (!cu->closing && (msg = curl_multi_info_read(cu->multi, &left)) != NULL) {
		CURL *easy = msg->easy_handle;
		CURLcode result = msg->data.result;

		if (msg->msg != CURLMSG_DONE)
			continue;
		/* @msg does not survive the removal. */
		curl_multi_remove_handle(cu->multi, easy);
		cu->done_cb(cu, easy, result);
	}
	cu->running = false;
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
	struct curl_uv_poll *p = h->data;
	struct curl_uv *cu = p->cu;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(cu->multi, p->fd, flags, &running);
	after_action(cu);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
	struct curl_uv *cu = userp;
	struct curl_uv_poll *p = socketp;
	int events = 0;

	(void)easy;
	if (action == CURL_POLL_REMOVE) {
		if (p != NULL) {
			poll_destroy(p);
			curl_multi_assign(cu->multi, fd, NULL);
		}
		return 0;
	}
	if (p == NULL) {
		p = calloc(1, sizeof(*p));
		if (p == NULL)
			return -1;
		if (uv_poll_init_socket(cu->loop, &p->poll, fd) != 0) {
			free(p);
			return -1;
		}
		p->fd = fd;
		p->cu = cu;
		p->poll.data = p;
		cu->n_handles++;
		LIST_INSERT_HEAD(&cu->polls, p, link);
		curl_multi_assign(cu->multi, fd, p);
	}
	if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
		events |= UV_READABLE;
	if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
		events |= UV_WRITABLE;
	uv_poll_start(&p->poll, events, poll_cb);
	return 0;
}

static void timer_cb(uv_timer_t *t)
{
	struct curl_uv *cu = t->data;
	int running;

	curl_multi_socket_action(cu->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	after_action(cu);
}

static int timer_set_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct curl_uv *cu = userp;

	(void)multi;
	if (timeout_ms < 0)
		uv_timer_stop(&cu->timer);
	else /* 0 too: curl must not be called back from inside itself */
		uv_timer_start(&cu->timer, timer_cb, (uint64_t)timeout_ms, 0);
	return 0;
}

int curl_uv_global_init(void)
{
	static bool done;

	if (!done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return -EIO;
		done = true;
	}
	return 0;
}

int curl_uv_init(struct curl_uv *cu, uv_loop_t *loop, curl_uv_done_cb done_cb,
		 curl_uv_io_cb io_cb, void *data)
{
	*cu = (struct curl_uv){.data = data, .loop = loop, .done_cb = done_cb, .io_cb = io_cb};
	LIST_INIT(&cu->polls);
	cu->multi = curl_multi_init();
	if (cu->multi == NULL)
		return -ENOMEM;
	curl_multi_setopt(cu->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(cu->multi, CURLMOPT_SOCKETDATA, cu);
	curl_multi_setopt(cu->multi, CURLMOPT_TIMERFUNCTION, timer_set_cb);
	curl_multi_setopt(cu->multi, CURLMOPT_TIMERDATA, cu);
	curl_multi_setopt(cu->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	uv_timer_init(loop, &cu->timer);
	cu->timer.data = cu;
	cu->n_handles = 1;
	return 0;
}

void curl_uv_close(struct curl_uv *cu, curl_uv_close_cb cb)
{
	struct curl_uv_poll *p;

	if (cu->closing)
		return;
	cu->closing = true;
	cu->close_cb = cb;
	curl_multi_cleanup(cu->multi);
	cu->multi = NULL;
	while ((p = LIST_FIRST(&cu->polls)) != NULL)
		poll_destroy(p);
	uv_timer_stop(&cu->timer);
	uv_close((uv_handle_t *)&cu->timer, timer_close_cb);
}

size_t curl_uv_collect(char *ptr, size_t size, size_t nmemb, void *body)
{
	struct curl_uv_body *b = body;
	size_t n = size * nmemb;
	int rv;

	rv = buf_append_max(&b->buf, ptr, n, b->max);
	if (rv == -EFBIG)
		b->too_big = true;
	return rv == 0 ? n : 0;
}

int curl_uv_prereq(void *once, char *conn_primary_ip, char *conn_local_ip,
		   int conn_primary_port, int conn_local_port)
{
	struct curl_uv_once *o = once;

	(void)conn_primary_ip;
	(void)conn_local_ip;
	(void)conn_primary_port;
	(void)conn_local_port;
	if (o->sent && !o->repeatable)
		return CURL_PREREQFUNC_ABORT;
	o->sent = true;
	return CURL_PREREQFUNC_OK;
}
