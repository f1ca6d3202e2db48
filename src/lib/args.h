/* Parsing of the values that flags and config keys take. */
#ifndef CAPSTAN_ARGS_H
#define CAPSTAN_ARGS_H

#include <stdbool.h>
#include <stdint.h>

/* Parses a duration: a number with a unit "ms", "s", "m" or "h" ("1500ms",
 * "5m"); a bare number is seconds. Writes milliseconds.
 * Errors: -EINVAL on syntax, -ERANGE on overflow. */
int args_parse_duration_ms(const char *s, uint64_t *ret_ms);

/* Parses a size: a number with an optional unit "K", "M", "G" (powers of
 * 1000), "Ki", "Mi", "Gi" (powers of 1024), or "B". Writes bytes.
 * Errors: -EINVAL, -ERANGE. */
int args_parse_size(const char *s, uint64_t *ret_bytes);

/* Parses an unsigned decimal integer no greater than max.
 * Errors: -EINVAL, -ERANGE. */
int args_parse_uint(const char *s, uint64_t max, uint64_t *ret_n);

/* Parses "true"/"false"/"yes"/"no"/"on"/"off"/"1"/"0".
 * Errors: -EINVAL. */
int args_parse_bool(const char *s, bool *ret_b);

#endif
