/* discovery.k8s.io/v1 EndpointSlice. */
#include <stdio.h>

#include "src/api/kinds/kinds.h"

static json_t *eps_ports(const json_t *obj, int64_t now)
{
	(void)now;
	char buf[256] = "";
	size_t len = 0;
	size_t i;
	json_t *p;
	json_array_foreach(api_json_path(obj, "ports"), i, p)
	{
		json_t *port = json_object_get(p, "port");
		if (json_is_integer(port) && len < sizeof(buf)) {
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%lld", len ? "," : "",
						(long long)json_integer_value(port));
		}
	}
	return json_string(len ? buf : "<unset>");
}

static json_t *eps_endpoints(const json_t *obj, int64_t now)
{
	(void)now;
	char buf[256] = "";
	size_t len = 0;
	size_t n = 0;
	size_t i, j;
	json_t *e, *a;
	json_array_foreach(api_json_path(obj, "endpoints"), i, e)
	{
		json_array_foreach(json_object_get(e, "addresses"), j, a)
		{
			if (n < 3 && len < sizeof(buf)) {
				len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "",
							json_string_value(a) ? json_string_value(a) : "");
			}
			n++;
		}
	}
	if (n == 0) {
		return json_string("<unset>");
	}
	if (n > 3 && len < sizeof(buf)) {
		snprintf(buf + len, sizeof(buf) - len, " + %zu more...", n - 3);
	}
	return json_string(buf);
}

static const struct api_column eps_columns[] = {
	API__COL_NAME,
	{ "AddressType", "string", "", 0, "IPv4, IPv6 or FQDN.", "addressType", NULL },
	{ "Ports", "string", "", 0, "The ports of the slice.", NULL, eps_ports },
	{ "Endpoints", "string", "", 0, "The endpoint addresses.", NULL, eps_endpoints },
	API__COL_AGE,
	API__COL_END,
};

static const struct api_immutable eps_immutable[] = {
	{ "addressType", 0 },
	{ NULL, 0 },
};

const struct api_kind api__kind_endpointslice = {
	.group = "discovery.k8s.io", .version = "v1", .kind = "EndpointSlice",
	.plural = "endpointslices", .singular = "endpointslice", .namespaced = true,
	.verbs = API_VERBS_ALL, .type = API_TYPE_discovery_v1_EndpointSlice, .status_type = -1,
	.name_rule = API_NAME_DNS_SUBDOMAIN, .immutable = eps_immutable, .columns = eps_columns,
};
