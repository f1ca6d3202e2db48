/* Every controller capstand runs while it leads, in start order. */
#include <stddef.h>

#include "src/ctrl/ctrl.h"

const struct ctrl_ops *const ctrl_all[] = {
	/* controllers */
	NULL,
};
