/* Shared between manager.c and helpers.c; not for controllers. */
#ifndef CAPSTAN_CTRL_INTERNAL_H
#define CAPSTAN_CTRL_INTERNAL_H

#include "src/ctrl/ctrl.h"

/* Proposes @cmd for @c, tracking @requeue (may be NULL) as in flight.
 * Errors: -ESHUTDOWN, -ENOMEM, the env's apply error. */
int ctrl__propose(struct ctrl *c, const struct store_cmd *cmd, const char *requeue);
const char *ctrl__name(const struct ctrl *c);
const struct api_kind *ctrl__kind_of_plural(const struct ctrl *c, const char *plural);

#endif
