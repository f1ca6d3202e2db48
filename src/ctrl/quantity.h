/* Resource quantities (Kubernetes' resource.Quantity): "100m", "1.5",
 * "128Mi", "1Gi", "2k", "1e3" parsed into integers at a chosen scale.
 *
 * Syntax: [+-] digits [. digits] then one suffix: a binary SI one (Ki Mi
 * Gi Ti Pi Ei), a decimal SI one (n u m "" k M G T P E) or a decimal
 * exponent (e or E and a signed integer). Like Quantity.Value() and
 * MilliValue(), results are rounded up (away from zero) to the scale and
 * saturate at +-INT64_MAX. Pure functions; nothing allocates.
 */
#ifndef CAPSTAN_CTRL_QUANTITY_H
#define CAPSTAN_CTRL_QUANTITY_H

#include <stdint.h>

#include <jansson.h>

/* Parses @s (NUL-terminated, borrowed) into units of 10^@scale: scale 0
 * gives plain units (bytes, pods), scale -3 milli-units (CPU).
 * Errors: -EINVAL (not a quantity). */
int ctrl_quantity_parse(const char *s, int scale, int64_t *ret_value);

/* A quantity as it appears in a decoded object: a string, or a JSON
 * integer or real (what msgpack decoding gives for `cpu: 2`).
 * Errors: -EINVAL (NULL, another type, or bad syntax). */
int ctrl_quantity_json(const json_t *v, int scale, int64_t *ret_value);

/* Shorthands: milli-units (CPU) and units (memory bytes, pod counts). */
static inline int ctrl_quantity_milli(const json_t *v, int64_t *ret_value)
{
	return ctrl_quantity_json(v, -3, ret_value);
}
static inline int ctrl_quantity_value(const json_t *v, int64_t *ret_value)
{
	return ctrl_quantity_json(v, 0, ret_value);
}

#endif
