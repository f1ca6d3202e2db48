/* Label and field selectors of list, watch and deletecollection requests,
 * parsed once per request (src/api/selector.h) and freed with it. */
#include <errno.h>
#include <string.h>

#include "http/kapi.h"
#include "src/api/selector.h"

struct kapi_selector {
	struct api_selector *labels;  /* NULL: none */
	struct api_fieldsel *fields;  /* NULL: none */
};

static void selector_dispose(void *p)
{
	struct kapi_selector *s = p;

	api_selector_free(s->labels);
	api_fieldsel_free(s->fields);
}

bool kapi__selector(struct http_request *hr, const struct api_kind *k,
		    struct kapi_selector **ret)
{
	h2o_req_t *req = hr->req;
	struct kapi_selector *s;
	h2o_iovec_t lv = {0}, fv = {0};
	bool has_l, has_f;
	char err[256] = "";
	int rv;

	*ret = NULL;
	has_l = http__query(hr, "labelSelector", &lv) && lv.len > 0;
	has_f = http__query(hr, "fieldSelector", &fv) && fv.len > 0;
	if (!has_l && !has_f)
		return true;
	s = h2o_mem_alloc_shared(&req->pool, sizeof(*s), selector_dispose);
	memset(s, 0, sizeof(*s));
	if (has_l && (rv = api_selector_parse(lv.base, &s->labels, err, sizeof(err))) != 0) {
		if (rv == -ENOMEM)
			http_send_status(req, 500, NULL, "out of memory");
		else
			http_send_status(req, 400, NULL, "unable to parse requirement: %s", err);
		return false;
	}
	if (has_f && (rv = api_fieldsel_parse(k, fv.base, &s->fields, err, sizeof(err))) != 0) {
		if (rv == -ENOMEM)
			http_send_status(req, 500, NULL, "out of memory");
		else
			http_send_status(req, 400, NULL, "%s", err);
		return false;
	}
	*ret = s;
	return true;
}

bool kapi__selector_match(const struct kapi_selector *sel, const void *mp, size_t len)
{
	if (sel == NULL)
		return true;
	return api_selector_match_msgpack(sel->labels, mp, len) &&
	       api_fieldsel_match_msgpack(sel->fields, mp, len);
}
