/* Every controller capstand runs while it leads, in start order. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

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

static const struct ctrl_ops *find(const char *name, size_t len)
{
	for (size_t i = 0; ctrl_all[i] != NULL; i++) {
		if (strlen(ctrl_all[i]->name) == len && strncmp(ctrl_all[i]->name, name, len) == 0)
			return ctrl_all[i];
	}
	return NULL;
}

int ctrl_select(const char *spec, const struct ctrl_ops **ret, size_t size, char *err,
		size_t err_size)
{
	size_t n_all = 0, i, n = 0;
	bool on[64] = {false};
	const char *p = spec != NULL ? spec : "*";

	while (ctrl_all[n_all] != NULL)
		n_all++;
	if (n_all > sizeof(on) / sizeof(on[0]) || size < n_all + 1) {
		snprintf(err, err_size, "too many controllers");
		return -EINVAL;
	}
	while (*p != '\0') {
		size_t len = strcspn(p, ",");
		bool neg = len > 0 && p[0] == '-';
		const char *name = neg ? p + 1 : p;
		size_t nlen = neg ? len - 1 : len;
		if (nlen == 1 && name[0] == '*' && !neg) {
			for (i = 0; i < n_all; i++)
				on[i] = true;
		} else {
			const struct ctrl_ops *o = find(name, nlen);
			if (o == NULL) {
				snprintf(err, err_size, "unknown controller '%.*s'", (int)nlen, name);
				return -EINVAL;
			}
			for (i = 0; i < n_all; i++)
				if (ctrl_all[i] == o)
					on[i] = !neg;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	for (i = 0, n = 0; i < n_all; i++)
		if (on[i])
			ret[n++] = ctrl_all[i];
	ret[n] = NULL;
	return (int)n;
}
