/* coordination.k8s.io/v1 Lease. */
#include "src/api/kinds/kinds.h"

static const struct api_column lease_columns[] = {
	API__COL_NAME,
	{ "Holder", "string", "", 0, "The holder of the lease.", "spec.holderIdentity", NULL },
	API__COL_AGE,
	API__COL_END,
};

const struct api_kind api__kind_lease = {
	.group = "coordination.k8s.io", .version = "v1", .kind = "Lease", .plural = "leases",
	.singular = "lease", .namespaced = true, .verbs = API_VERBS_ALL,
	.type = API_TYPE_coordination_v1_Lease, .status_type = -1,
	.name_rule = API_NAME_DNS_SUBDOMAIN, .columns = lease_columns,
};
