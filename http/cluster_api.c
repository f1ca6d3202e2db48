/* /capstan/v1/cluster: status, readindex, the join material (ca) and
 * membership changes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "http/internal.h"

static const char *role_name(int role)
{
	switch (role) {
	case 1:
		return "voter";
	case 2:
		return "standby";
	default:
		return "spare";
	}
}

void http__cluster_status(struct http_request *hr)
{
	struct replica_status *st = malloc(sizeof(*st));
	json_t *o, *members;
	unsigned i;

	if (st == NULL) {
		http_send_status(hr->req, 500, NULL, "out of memory");
		return;
	}
	replica_get_status(hr->server->replica, st);
	members = json_array();
	for (i = 0; members != NULL && i < st->n_members && i < 16; i++)
		json_array_append_new(
			members, json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)st->members[i].id,
					   "raftAddress", st->members[i].raft_address, "apiURL",
					   st->members[i].api_url, "role",
					   role_name(st->members[i].role)));
	o = json_pack("{s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:I, s:o}", "id",
		      (json_int_t)st->id, "raftAddress", st->raft_address, "apiURL", st->api_url,
		      "state", st->state != NULL ? st->state : "unavailable", "term",
		      (json_int_t)st->term, "commitIndex", (json_int_t)st->commit_index,
		      "appliedIndex", (json_int_t)st->applied_index, "lastIndex",
		      (json_int_t)st->last_index, "leaderID", (json_int_t)st->leader_id,
		      "leaderURL", st->leader_api_url, "revision", (json_int_t)st->store_revision,
		      "members", members);
	free(st);
	http_send_json(hr->req, 200, o);
}

/* ------------------------------------------------------------ readindex */

struct ri_op {
	struct http_op op; /* first */
	struct replica_barrier barrier;
};

static void ri_cb(struct replica_barrier *b, int status, uint64_t index)
{
	struct ri_op *r = b->data;
	h2o_req_t *req = http__op_detach(&r->op);

	if (req != NULL) {
		if (status == 0)
			http_send_json(req, 200, json_pack("{s:I}", "index", (json_int_t)index));
		else if (status == REPLICA_ENOTLEADER)
			http__send_not_handled(req, "this master is not the leader");
		else
			http_send_status(req, status == REPLICA_EUNKNOWN ? 504 : 503, NULL,
					 "the barrier failed");
	}
	http__op_free(&r->op);
}

/* A leader elected but not yet caught up answers too: the barrier is an
 * entry of its own term, so once it is applied, everything committed
 * before it is too. The follower asking waits for a leader itself (its
 * reads retry), so a master that is not the leader refuses at once. */
void http__cluster_readindex(struct http_request *hr)
{
	struct http_server *s = hr->server;
	struct ri_op *r;
	int rv;

	if (http__role(s) != HTTP_ROLE_LEADER) {
		http__send_not_handled(hr->req, "this master is not the leader");
		return;
	}
	r = http__op_new(hr, sizeof(*r));
	if (r == NULL)
		return;
	r->barrier.data = r;
	rv = replica_barrier(s->replica, &r->barrier, ri_cb);
	if (rv != 0) {
		http__op_detach(&r->op);
		http__op_free(&r->op);
		if (rv == REPLICA_ENOTLEADER) {
			http__leader_invalidate(s);
			http__send_not_handled(hr->req, "this master is not the leader");
		} else {
			http_send_status(hr->req, 503, NULL, "the barrier failed: %s",
					 strerror(-rv));
		}
	}
}

/* ------------------------------------------------------------ ca */

/* The files are read in the thread pool: the loop never waits for disk. */
struct ca_op {
	struct http_op op; /* first */
	uv_work_t work;
	char *paths[3];
	char *data[3];
	size_t len[3];
	int err;
};

static int read_small(const char *path, char **ret, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fd, rv = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n;
		if (cap - len < 1024) {
			char *nb;
			if (cap >= (1u << 20)) {
				rv = -EFBIG;
				break;
			}
			nb = realloc(buf, cap + 16384);
			if (nb == NULL) {
				rv = -ENOMEM;
				break;
			}
			buf = nb;
			cap += 16384;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rv = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (rv != 0) {
		free(buf);
		return rv;
	}
	if (buf == NULL && (buf = malloc(1)) == NULL)
		return -ENOMEM;
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	return 0;
}

static void ca_work_cb(uv_work_t *work)
{
	struct ca_op *c = work->data;
	int i;

	for (i = 0; i < 3; i++) {
		if (c->paths[i] == NULL) {
			c->data[i] = strdup("");
			continue;
		}
		c->err = read_small(c->paths[i], &c->data[i], &c->len[i]);
		if (c->err != 0)
			return;
	}
}

static void ca_after_cb(uv_work_t *work, int status)
{
	struct ca_op *c = work->data;
	struct http_server *s = c->op.server;
	h2o_req_t *req = http__op_detach(&c->op);
	int i;

	if (req != NULL) {
		json_t *ca = c->data[0] ? json_string(c->data[0]) : NULL;
		json_t *key = c->data[1] ? json_string(c->data[1]) : NULL;
		json_t *tok = c->data[2] ? json_string(c->data[2]) : NULL;
		if (status != 0 || c->err != 0 || ca == NULL || key == NULL || tok == NULL) {
			json_decref(ca);
			json_decref(key);
			json_decref(tok);
			http_send_status(req, 500, NULL, "cannot read the cluster CA: %s",
					 strerror(c->err ? -c->err : EIO));
		} else {
			http_send_json(req, 200,
				       json_pack("{s:o, s:o, s:o}", "caCert", ca, "caKey", key,
						 "tokens", tok));
		}
	}
	for (i = 0; i < 3; i++) {
		if (c->data[i] != NULL) {
			OPENSSL_cleanse(c->data[i], c->len[i]);
			free(c->data[i]);
		}
		free(c->paths[i]);
	}
	s->n_handles--; /* the work request */
	http__maybe_finish_close(s); /* asynchronous: s stays valid */
	http__op_free(&c->op);
}

void http__cluster_ca(struct http_request *hr)
{
	struct http_server *s = hr->server;
	struct ca_op *c;
	size_t n = strlen(s->pki_dir) + 16;
	int rv;

	c = http__op_new(hr, sizeof(*c));
	if (c == NULL)
		return;
	c->work.data = c;
	c->paths[0] = malloc(n);
	c->paths[1] = malloc(n);
	if (s->token_file != NULL)
		c->paths[2] = strdup(s->token_file);
	if (c->paths[0] == NULL || c->paths[1] == NULL ||
	    (s->token_file != NULL && c->paths[2] == NULL)) {
		rv = -ENOMEM;
		goto err;
	}
	snprintf(c->paths[0], n, "%s/ca.crt", s->pki_dir);
	snprintf(c->paths[1], n, "%s/ca.key", s->pki_dir);
	rv = uv_queue_work(s->loop, &c->work, ca_work_cb, ca_after_cb);
	if (rv == 0) {
		s->n_handles++; /* the close waits for the thread pool */
		return;
	}
err:
	free(c->paths[0]);
	free(c->paths[1]);
	free(c->paths[2]);
	http__op_free(&c->op);
	http_send_status(hr->req, 500, NULL, "cannot read the cluster CA: %s", strerror(-rv));
}

/* ------------------------------------------------------------ members */

struct member_op {
	struct http_op op; /* first */
	struct replica_change change;
	bool add;
	uint64_t id;
	char raft_address[64];
	char api_url[256];
};

static void member_cb(struct replica_change *ch, int status)
{
	struct member_op *m = ch->data;
	h2o_req_t *req = http__op_detach(&m->op);

	if (req == NULL) {
		http__op_free(&m->op);
		return;
	}
	if (status == 0 || (m->add && status == -EEXIST)) {
		if (m->add)
			http_send_json(req, 200,
				       json_pack("{s:I, s:s, s:s}", "id", (json_int_t)m->id,
						 "raftAddress", m->raft_address, "apiURL", m->api_url));
		else
			http_send_json(req, 200, json_pack("{s:I}", "id", (json_int_t)m->id));
	} else if (status == REPLICA_ENOTLEADER || status == REPLICA_EUNKNOWN) {
		/* Leadership went away during a change of several steps, some
		 * of which may have committed (retrying is safe). */
		http_send_status(req, 504, "Timeout",
				 "leadership was lost during the change: its outcome is unknown");
	} else if (status == REPLICA_EBUSY) {
		http_send_status(req, 409, "Conflict",
				 "another membership change is running, try again");
	} else if (status == -ENOENT) {
		http_send_status(req, 404, NULL, "member %llu not found",
				 (unsigned long long)m->id);
	} else if (status == REPLICA_ESHUTDOWN) {
		http_send_status(req, 504, "Timeout",
				 "the server is shutting down: the outcome of the change is "
				 "unknown");
	} else {
		http_send_status(req, 500, NULL, "the membership change failed: %s",
				 strerror(-status));
	}
	http__op_free(&m->op);
}

static bool parse_member(struct http_request *hr, struct member_op *m)
{
	json_t *j, *id, *ra, *url;
	json_error_t e;
	bool ok = false;

	j = json_loadb(hr->req->entity.base != NULL ? hr->req->entity.base : "",
		       hr->req->entity.len, JSON_REJECT_DUPLICATES, &e);
	if (j == NULL) {
		http_send_status(hr->req, 400, NULL, "invalid JSON: %s", e.text);
		return false;
	}
	id = json_object_get(j, "id");
	ra = json_object_get(j, "raftAddress");
	url = json_object_get(j, "apiURL");
	if (!json_is_integer(id) || json_integer_value(id) <= 0 || !json_is_string(ra) ||
	    !json_is_string(url) || json_string_length(ra) == 0 ||
	    json_string_length(ra) >= sizeof(m->raft_address) || json_string_length(url) == 0 ||
	    json_string_length(url) >= sizeof(m->api_url)) {
		http_send_status(hr->req, 422, NULL,
				 "a member needs id (> 0), raftAddress and apiURL");
		goto out;
	}
	m->id = (uint64_t)json_integer_value(id);
	strcpy(m->raft_address, json_string_value(ra));
	strcpy(m->api_url, json_string_value(url));
	ok = true;
out:
	json_decref(j);
	return ok;
}

void http__cluster_members(struct http_request *hr, const char *rest, size_t rest_len)
{
	struct http_server *s = hr->server;
	struct member_op *m;
	uint64_t id = 0;
	bool add;
	int rv;

	if (rest_len == 0 || (rest_len == 1 && rest[0] == '/')) {
		if (!http__method_is(hr->req, "POST")) {
			http_send_status(hr->req, 405, NULL, "use POST to add a member");
			return;
		}
		add = true;
	} else {
		if (!http__method_is(hr->req, "DELETE")) {
			http_send_status(hr->req, 405, NULL, "use DELETE to remove a member");
			return;
		}
		if (http_parse_u64(rest + 1, rest_len - 1, &id) != 0 || id == 0) {
			http_send_status(hr->req, 404, NULL, "no such member");
			return;
		}
		add = false;
	}
	if (!http__write_here(hr))
		return;
	m = http__op_new(hr, sizeof(*m));
	if (m == NULL)
		return;
	m->add = add;
	m->id = id;
	if (add && !parse_member(hr, m)) {
		http__op_detach(&m->op);
		http__op_free(&m->op);
		return;
	}
	m->change.data = m;
	if (add)
		rv = replica_add_member(s->replica, &m->change, m->id, m->raft_address, m->api_url,
					member_cb);
	else
		rv = replica_remove_member(s->replica, &m->change, m->id, member_cb);
	if (rv == 0)
		return;
	if (add && rv == -EEXIST) {
		/* Idempotent: the member is already there. */
		http__op_detach(&m->op);
		http_send_json(hr->req, 200,
			       json_pack("{s:I, s:s, s:s}", "id", (json_int_t)m->id, "raftAddress",
					 m->raft_address, "apiURL", m->api_url));
		http__op_free(&m->op);
		return;
	}
	http__op_detach(&m->op);
	http__op_free(&m->op);
	if (rv == REPLICA_ENOTLEADER)
		http__write_not_leader(hr);
	else if (rv == REPLICA_ESHUTDOWN && hr->forwarded)
		http__send_not_handled(hr->req, "the server is shutting down");
	else if (rv == REPLICA_ESHUTDOWN)
		http_send_status(hr->req, 503, NULL, "the server is shutting down");
	else if (rv == REPLICA_EBUSY)
		http_send_status(hr->req, 409, "Conflict",
				 "another membership change is running, try again");
	else if (rv == -ENOENT)
		http_send_status(hr->req, 404, NULL, "member %llu not found",
				 (unsigned long long)id);
	else
		http_send_status(hr->req, 500, NULL, "the membership change failed: %s",
				 strerror(-rv));
}
