/* Image registries of capstan-node (--registry) and the imagePullPolicy
 * decision. Pure except node_registry_parse (reads a password file).
 * struct node_registry and its parser are declared in agent.h. */
#ifndef CAPSTAN_NODE_REGISTRIES_H
#define CAPSTAN_NODE_REGISTRIES_H

#include <stdbool.h>
#include <stddef.h>

struct rt_registry;

/* The effective policy of a container: @policy when it is one of Always,
 * IfNotPresent, Never, else the API's default for @image (Always for a
 * ":latest" or missing tag, IfNotPresent otherwise). Static strings. */
const char *node_pull_policy(const char *image, const char *policy);

/* Whether one of @regs serves @image's domain. */
bool node_registry_serves(const struct rt_registry *regs, size_t n, const char *image);

enum node_pull {
	NODE_PULL_NO,            /* use the local image */
	NODE_PULL_YES,           /* pull (then use the local image) */
	NODE_PULL_NEVER_MISSING, /* Never and absent: ErrImageNeverPull */
};
/* Kubelet's rules: Never uses only a present image; IfNotPresent pulls a
 * missing one; Always pulls every time, except (capstan) when no registry
 * serves the image's domain and the image is present: imported images
 * stay usable with the API's default policy for ":latest". */
enum node_pull node_pull_decide(const char *policy, bool present, bool registry);

#endif
