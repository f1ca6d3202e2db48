/* The node agent (capstan-node): settings, and the agent object shared by
 * the files of src/node/ (node status and lease, pods, logs endpoint).
 *
 * Everything runs on one uv loop; runc and other slow work go through the
 * runtime layer (runtime/runtime.h), the API through runtime/kclient.h.
 */
#ifndef CAPSTAN_NODE_AGENT_H
#define CAPSTAN_NODE_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "src/lib/config.h"
#include "src/lib/log.h"

/* Settings: each a flag and a key of /etc/capstan/capstan-node.yaml. */
struct node_config {
	struct config_strings server; /* master URLs */
	char *token;
	char *ca_file;
	char *state_dir;
	char *node_name;
	char *node_ip;
	struct config_strings node_labels;     /* "k=v" (or "k=v,k2=v2") */
	struct config_strings register_taints; /* "key[=value]:Effect" */
	char *pod_cidr;
	char *cni_bin_dir;
	char *cni_conf_dir;
	char *cni_bridge;
	char *runc;
	char *runc_root;
	char *image_dir;
	uint64_t max_pods;
	char *listen;
	uint64_t lease_duration_ms;
	uint64_t lease_renew_ms;
	uint64_t status_interval_ms;
	uint64_t backoff_base_ms;
	uint64_t backoff_max_ms;
	uint64_t sync_interval_ms;
	struct config_strings registries; /* "HOST=URL[,key=value...]" */
	enum log_level log_level;
};

struct kclient;
struct node_pods;
struct node_logsrv;
struct rt_registry;

/* One --registry setting, parsed (strings owned, password read from its
 * file if one was given). */
struct node_registry {
	char *host, *url, *ca_file, *username, *password;
};

/* Parses @spec "HOST=URL[,ca-file=FILE][,username=USER]
 * [,password-file=FILE][,password=PASS]" (URL may be empty: https://HOST).
 * Errors: -EINVAL (@err says why), -ENOMEM, errors reading the file. */
int node_registry_parse(const char *spec, struct node_registry *ret, char *err, size_t err_len);
void node_registry_clear(struct node_registry *r);

struct node_agent {
	uv_loop_t *loop;
	const struct node_config *cfg;
	struct kclient *kc;
	const char *node_name; /* borrowed from cfg (or the host name) */
	char node_ip[64];
	char hostname[256];
	unsigned listen_port;
	char *cert_file, *key_file, *ca_file; /* borrowed */
	char **masters;                          /* current URL list */
	/* Registries to pull from (--registry), read-only after start: the
	 * pull jobs read them on the thread pool. */
	const struct rt_registry *registries;
	size_t n_registries;

	/* node status and lease (nodestatus.c) */
	uv_timer_t status_timer;
	uv_timer_t lease_timer;
	uv_timer_t masters_timer;
	bool registered;
	bool status_busy, lease_busy, masters_busy, masters_saved;
	char *node_uid;
	json_t *lease;        /* last Lease seen (with resourceVersion) */
	json_t *conditions;   /* our last conditions (for lastTransitionTime) */

	struct node_pods *pods;
	struct node_logsrv *logsrv;
	bool closing;
};

/* Node status (nodestatus.c): registers the Node, then updates its status
 * every status interval, renews the Lease, refreshes the master list. */
int node__status_start(struct node_agent *a);
void node__status_stop(struct node_agent *a);

/* RFC 3339 time "2006-01-02T15:04:05Z" of now; @micro adds microseconds
 * (MicroTime, for Leases). @buf at least 40 bytes. */
void node__now_rfc3339(char *buf, size_t len, bool micro);

/* The machine (sysinfo.c). */
unsigned node__cpus(void);
uint64_t node__memory_bytes(void);
const char *node__arch(void); /* GOARCH spelling: amd64, arm64 */
/* First non-loopback IPv4 address, else 127.0.0.1. */
void node__default_ip(char *buf, size_t len);
/* BLOCKING. rm -rf without following symlinks; missing is fine. */
int node__rm_rf(const char *path);

#endif
