/* Every controller capstand runs while it leads, in start order. */
#include <stddef.h>

#include "src/ctrl/ctrl.h"

const struct ctrl_ops *const ctrl_all[] = {
	/* controllers */
	&ctrl_daemonset_ops,
	&ctrl_statefulset_ops,
	&ctrl_pvbinder_ops,
	NULL,
};
