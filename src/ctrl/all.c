/* Every controller capstand runs while it leads, in start order. */
#include <stddef.h>

#include "src/ctrl/ctrl.h"

const struct ctrl_ops *const ctrl_all[] = {
	/* controllers */
	&ctrl_scheduler_ops,
	&ctrl_nodelifecycle_ops,
	&ctrl_namespace_ops,
	&ctrl_gc_ops,
	&ctrl_daemonset_ops,
	&ctrl_statefulset_ops,
	&ctrl_pvbinder_ops,
	&ctrl_endpoints_ops,
	&ctrl_endpointslice_ops,
	&ctrl_serviceaccount_ops,
	&ctrl_replicaset_ops,
	&ctrl_deployment_ops,
	NULL,
};
