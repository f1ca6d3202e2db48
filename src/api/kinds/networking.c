/* networking.k8s.io/v1 kinds: Ingress, NetworkPolicy. */
#include <stdio.h>
#include <string.h>

#include "src/api/kinds/kinds.h"

static json_t *ing_hosts(const json_t *obj, int64_t now)
{
	(void)now;
	char buf[512] = "";
	size_t len = 0;
	size_t i, n = 0;
	json_t *r;
	json_array_foreach(api_json_path(obj, "spec.rules"), i, r)
	{
		const char *h = json_string_value(json_object_get(r, "host"));
		if (h && *h) {
			if (n < 4 && len < sizeof(buf)) {
				len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "", h);
			}
			n++;
		}
	}
	if (n == 0) {
		return json_string("*");
	}
	if (n > 4 && len < sizeof(buf)) {
		snprintf(buf + len, sizeof(buf) - len, " + %zu more...", n - 4);
	}
	return json_string(buf);
}

static json_t *ing_address(const json_t *obj, int64_t now)
{
	(void)now;
	char buf[512] = "";
	size_t len = 0;
	size_t i;
	json_t *v;
	json_array_foreach(api_json_path(obj, "status.loadBalancer.ingress"), i, v)
	{
		const char *ip = json_string_value(json_object_get(v, "ip"));
		if (!ip) {
			ip = json_string_value(json_object_get(v, "hostname"));
		}
		if (ip && len < sizeof(buf)) {
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "", ip);
		}
	}
	return json_string(buf);
}

static json_t *ing_ports(const json_t *obj, int64_t now)
{
	(void)now;
	return json_string(json_array_size(api_json_path(obj, "spec.tls")) ? "80, 443" : "80");
}

static const char *const ing_short[] = { "ing", NULL };
static const struct api_subresource ing_sub[] = {
	{ "status", "networking.k8s.io", "v1", NULL, API_TYPE_networking_v1_Ingress, API_VERBS_GET_UPDATE },
	{ NULL, NULL, NULL, NULL, 0, 0 },
};
static const struct api_column ing_columns[] = {
	API__COL_NAME,
	{ "Class", "string", "", 0, "The ingress class.", "spec.ingressClassName", NULL },
	{ "Hosts", "string", "", 0, "Hosts the ingress serves.", NULL, ing_hosts },
	{ "Address", "string", "", 0, "Addresses of the load balancer.", NULL, ing_address },
	{ "Ports", "string", "", 0, "Ports of the load balancer.", NULL, ing_ports },
	API__COL_AGE,
	API__COL_END,
};

const struct api_kind api__kind_ingress = {
	.group = "networking.k8s.io", .version = "v1", .kind = "Ingress", .plural = "ingresses",
	.singular = "ingress", .short_names = ing_short, .namespaced = true, .verbs = API_VERBS_ALL,
	.subresources = ing_sub, .type = API_TYPE_networking_v1_Ingress,
	.status_type = API_TYPE_networking_v1_IngressStatus, .name_rule = API_NAME_DNS_SUBDOMAIN,
	.columns = ing_columns,
};

static json_t *np_pod_selector(const json_t *obj, int64_t now)
{
	(void)now;
	json_t *cell = api__cell_selector(obj, "spec.podSelector");
	/* An empty selector selects every pod of the namespace. */
	if (cell && strcmp(json_string_value(cell), "<none>") == 0) {
		json_decref(cell);
		return json_string("<none>");
	}
	return cell;
}

static const char *const np_short[] = { "netpol", NULL };
static const struct api_column np_columns[] = {
	API__COL_NAME,
	{ "Pod-Selector", "string", "", 0, "The pods the policy applies to.", NULL, np_pod_selector },
	API__COL_AGE,
	API__COL_END,
};

const struct api_kind api__kind_networkpolicy = {
	.group = "networking.k8s.io", .version = "v1", .kind = "NetworkPolicy",
	.plural = "networkpolicies", .singular = "networkpolicy", .short_names = np_short,
	.namespaced = true, .verbs = API_VERBS_ALL, .type = API_TYPE_networking_v1_NetworkPolicy,
	.status_type = -1, .name_rule = API_NAME_DNS_SUBDOMAIN, .columns = np_columns,
};
