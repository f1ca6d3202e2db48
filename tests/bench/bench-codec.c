/* Benchmark of src/lib/codec: msgpack -> JSON of a list of 1000 pods (the
 * shape of a list answer) against jansson dumping the same tree, and JSON
 * -> msgpack against jansson loading it. Prints figures; asserts nothing.
 * Build without --enable-debug and --enable-sanitize for real numbers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "src/lib/codec.h"

#define N_PODS 1000
#define MIN_SECONDS 1.0

static const char pod_fmt[] =
	"{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web-%d\","
	"\"namespace\":\"ns-%d\",\"uid\":\"6f1c2a3e-8b4d-4e2a-9c1f-%012d\","
	"\"resourceVersion\":\"%d\",\"creationTimestamp\":\"2024-05-01T12:00:00Z\","
	"\"labels\":{\"app\":\"web\",\"app.kubernetes.io/name\":\"web\","
	"\"pod-template-hash\":\"5d8f7c9b6\"},\"annotations\":{"
	"\"kubectl.kubernetes.io/last-applied-configuration\":"
	"\"{\\\"apiVersion\\\":\\\"v1\\\",\\\"kind\\\":\\\"Pod\\\",\\\"metadata\\\":{}}\\n\"},"
	"\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\","
	"\"name\":\"web-5d8f7c9b6\",\"uid\":\"11111111-2222-3333-4444-555555555555\","
	"\"controller\":true,\"blockOwnerDeletion\":true}]},"
	"\"spec\":{\"containers\":[{\"name\":\"nginx\",\"image\":\"nginx:1.25\","
	"\"ports\":[{\"containerPort\":80,\"protocol\":\"TCP\"}],"
	"\"resources\":{\"limits\":{\"cpu\":\"500m\",\"memory\":\"128Mi\"},"
	"\"requests\":{\"cpu\":\"250m\",\"memory\":\"64Mi\"}},"
	"\"env\":[{\"name\":\"GREETING\",\"value\":\"h\xc3\xa9llo \\\"world\\\"\"}],"
	"\"terminationMessagePath\":\"/dev/termination-log\",\"imagePullPolicy\":\"IfNotPresent\"}],"
	"\"restartPolicy\":\"Always\",\"terminationGracePeriodSeconds\":30,"
	"\"dnsPolicy\":\"ClusterFirst\",\"nodeName\":\"node-%d\",\"securityContext\":{},"
	"\"schedulerName\":\"default-scheduler\",\"tolerations\":[{\"key\":"
	"\"node.kubernetes.io/not-ready\",\"operator\":\"Exists\",\"effect\":\"NoExecute\","
	"\"tolerationSeconds\":300}],\"priority\":0,\"enableServiceLinks\":true},"
	"\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\","
	"\"lastProbeTime\":null,\"lastTransitionTime\":\"2024-05-01T12:00:05Z\"}],"
	"\"hostIP\":\"10.0.%d.1\",\"podIP\":\"10.244.%d.%d\",\"startTime\":\"2024-05-01T12:00:00Z\","
	"\"containerStatuses\":[{\"name\":\"nginx\",\"ready\":true,\"restartCount\":%d,"
	"\"image\":\"nginx:1.25\",\"imageID\":\"sha256:abc\",\"started\":true}],"
	"\"qosClass\":\"Burstable\"}}";

static const char list_head[] =
	"{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"1000\"},"
	"\"items\":[";

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *what, size_t bytes, unsigned rounds, double secs)
{
	printf("%-46s %8.1f MB/s  %8.3f ms/round\n", what,
	       (double)bytes * rounds / secs / 1e6, secs * 1e3 / rounds);
}

int main(void)
{
	struct buf list_json = {0}, mp = {0}, out = {0};
	size_t *item_off, *item_len;
	struct codec_err err;
	json_t *tree;
	char pod[4096];
	unsigned rounds;
	double t0, dt;
	int i, n;

	/* The list as a kube-apiserver would write it. */
	item_off = calloc(N_PODS, sizeof(*item_off));
	item_len = calloc(N_PODS, sizeof(*item_len));
	buf_append(&list_json, list_head, sizeof(list_head) - 1);
	for (i = 0; i < N_PODS; i++) {
		struct buf one = {0};

		n = snprintf(pod, sizeof(pod), pod_fmt, i, i % 10, i, 1000 + i, i % 50, i % 50,
			     i % 200, i % 250, i % 3);
		if (i > 0)
			buf_append(&list_json, ",", 1);
		buf_append(&list_json, pod, (size_t)n);
		/* Stored values, one msgpack blob per pod. */
		if (codec_json_to_msgpack(pod, (size_t)n, 0, &one, &err) != 0) {
			fprintf(stderr, "bench-codec: %s\n", err.msg);
			return 1;
		}
		item_off[i] = mp.len;
		item_len[i] = one.len;
		buf_append(&mp, one.data, one.len);
		buf_free(&one);
	}
	buf_append(&list_json, "]}", 2);
	printf("list of %d pods: %zu bytes of JSON, %zu bytes of msgpack\n", N_PODS,
	       list_json.len, mp.len);

	/* msgpack -> JSON of the list, item by item as a list handler does. */
	rounds = 0;
	t0 = now_s();
	do {
		out.len = 0;
		buf_append(&out, list_head, sizeof(list_head) - 1);
		for (i = 0; i < N_PODS; i++) {
			if (i > 0)
				buf_append(&out, ",", 1);
			if (codec_msgpack_to_json(mp.data + item_off[i], item_len[i], 0, &out, &err) != 0) {
				fprintf(stderr, "bench-codec: %s\n", err.msg);
				return 1;
			}
		}
		buf_append(&out, "]}", 2);
		rounds++;
	} while ((dt = now_s() - t0) < MIN_SECONDS);
	if (out.len != list_json.len || memcmp(out.data, list_json.data, out.len) != 0) {
		fprintf(stderr, "bench-codec: output differs from the input list\n");
		return 1;
	}
	report("codec msgpack -> JSON (streaming)", out.len, rounds, dt);

	/* jansson: dump the same list from its tree (tree already built). */
	tree = json_loadb(list_json.data, list_json.len, 0, NULL);
	rounds = 0;
	t0 = now_s();
	do {
		char *s = json_dumps(tree, JSON_COMPACT);
		free(s);
		rounds++;
	} while ((dt = now_s() - t0) < MIN_SECONDS);
	report("jansson json_dumps(tree) (tree prebuilt)", list_json.len, rounds, dt);

	/* msgpack -> tree -> jansson dump: what a tree-based handler pays. */
	rounds = 0;
	t0 = now_s();
	do {
		json_t *items = json_array();
		char *s;

		for (i = 0; i < N_PODS; i++) {
			json_t *t;
			codec_msgpack_to_tree(mp.data + item_off[i], item_len[i], &t, &err);
			json_array_append_new(items, t);
		}
		s = json_dumps(items, JSON_COMPACT);
		free(s);
		json_decref(items);
		rounds++;
	} while ((dt = now_s() - t0) < MIN_SECONDS);
	report("codec msgpack -> tree + jansson dump", list_json.len, rounds, dt);

	/* JSON text -> msgpack, against jansson's parser. */
	rounds = 0;
	t0 = now_s();
	do {
		out.len = 0;
		codec_json_to_msgpack(list_json.data, list_json.len, 0, &out, &err);
		rounds++;
	} while ((dt = now_s() - t0) < MIN_SECONDS);
	report("codec JSON -> msgpack (streaming)", list_json.len, rounds, dt);
	rounds = 0;
	t0 = now_s();
	do {
		json_t *t = json_loadb(list_json.data, list_json.len, 0, NULL);
		json_decref(t);
		rounds++;
	} while ((dt = now_s() - t0) < MIN_SECONDS);
	report("jansson json_loadb (tree only)", list_json.len, rounds, dt);

	/* YAML out, for ?output=yaml-style answers. */
	rounds = 0;
	t0 = now_s();
	do {
		out.len = 0;
		codec_tree_to_yaml(tree, &out, &err);
		rounds++;
	} while ((dt = now_s() - t0) < MIN_SECONDS);
	report("codec tree -> YAML (libyaml emitter)", list_json.len, rounds, dt);

	json_decref(tree);
	buf_free(&list_json);
	buf_free(&mp);
	buf_free(&out);
	free(item_off);
	free(item_len);
	return 0;
}
