/* Dumps the discovery, OpenAPI v3 and OpenAPI v2 documents into DIR for
 * tests/compat/openapi-v2-server.py (a manual check, not in the suite).
 *
 * Build against a configured build directory B and run:
 *   cc -std=c11 -fsanitize=address,undefined -I. -IB -include B/config.h \
 *      tests/compat/openapi-v2-dump.c -o /tmp/openapi-v2-dump \
 *      B/src/libcapstan.a $(pkg-config --libs jansson)
 *   /tmp/openapi-v2-dump DIR
 * (drop -fsanitize when B was configured without --enable-sanitize).
 * File names are the request paths with '/' turned into '_'. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "src/api/discovery.h"
#include "src/api/openapi.h"
#include "src/api/openapi_v2.h"
static void put(const char *dir, const char *name, const json_t *doc) {
	char path[512]; snprintf(path, sizeof path, "%s/%s", dir, name);
	for (char *p = path + strlen(dir) + 1; *p; p++) if (*p == '/') *p = '_';
	size_t n; char *t = api_openapi_dump(doc, &n);
	FILE *f = fopen(path, "wb"); fwrite(t, 1, n, f); fclose(f); free(t);
}
int main(int argc, char **argv) {
	if (argc != 2) { fprintf(stderr, "usage: %s DIR\n", argv[0]); return 2; }
	const char *dir = argv[1];
	json_t *d = api_discovery_api_versions("127.0.0.1:1"); put(dir, "api", d); json_decref(d);
	d = api_discovery_group_list(); put(dir, "apis", d); json_decref(d);
	struct api_group_version gvs[16]; size_t n = api_discovery_group_versions(gvs, 16);
	for (size_t i = 0; i < n; i++) {
		char name[256], oname[300];
		if (!gvs[i].group[0]) snprintf(name, sizeof name, "api/%s", gvs[i].version);
		else snprintf(name, sizeof name, "apis/%s/%s", gvs[i].group, gvs[i].version);
		d = api_discovery_resource_list(gvs[i].group, gvs[i].version); put(dir, name, d); json_decref(d);
		snprintf(oname, sizeof oname, "openapi/v3/%s", name);
		d = api_openapi_v3_document(gvs[i].group, gvs[i].version); put(dir, oname, d); json_decref(d);
	}
	d = api_openapi_v3_paths(); put(dir, "openapi/v3", d); json_decref(d);
	d = api_openapi_v2_json(); put(dir, "openapi/v2", d); json_decref(d);
	void *buf; size_t len;
	if (api_openapi_v2_protobuf(&buf, &len)) return 1;
	char path[512]; snprintf(path, sizeof path, "%s/openapi_v2.pb", dir);
	FILE *f = fopen(path, "wb"); fwrite(buf, 1, len, f); fclose(f); free(buf);
	/* A variant without fieldValidation, so kubectl validates on its side. */
	d = api_openapi_v2_json();
	const char *pk; json_t *item;
	json_object_foreach(json_object_get(d, "paths"), pk, item) {
		const char *m; json_t *op;
		json_object_foreach(item, m, op) {
			json_t *ps = json_object_get(op, "parameters");
			for (size_t i = 0; json_is_array(ps) && i < json_array_size(ps); i++) {
				const char *nm = json_string_value(json_object_get(json_array_get(ps, i), "name"));
				if (nm && !strcmp(nm, "fieldValidation")) { json_array_remove(ps, i); i--; }
			}
		}
	}
	if (api_openapi_v2_encode(d, &buf, &len)) return 1;
	snprintf(path, sizeof path, "%s/openapi_v2_nofv.pb", dir);
	f = fopen(path, "wb"); fwrite(buf, 1, len, f); fclose(f); free(buf); json_decref(d);
	return 0;
}
