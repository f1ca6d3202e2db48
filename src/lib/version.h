/* The version string every program prints. */
#ifndef CAPSTAN_VERSION_H
#define CAPSTAN_VERSION_H

/* "0.1.0" or "0.1.0 (git abc1234)" when built from a git checkout. */
const char *version_string(void);

/* Prints "<prog> <version>" and the versions of the main libraries. */
void version_print(const char *prog);

#endif
