/* Start-up and signal boilerplate shared by the daemons (capstand, capstan-node). */
#ifndef CAPSTAN_DAEMON_H
#define CAPSTAN_DAEMON_H

#include <stdbool.h>
#include <uv.h>

#include "src/lib/config.h"

/* Exit status of a daemon given a bad command line or settings. */
#define DAEMON_EXIT_USAGE 2

/* Ignores SIGPIPE, logs as @spec->prog at info level, and parses @argv
 * into @values (config_parse(); @values zeroed by the caller). Returns true when the daemon should run, with
 * *ret_config_path the file read (NULL when none); the caller then calls
 * log_init() with its log level and owns @values (config_free()). Returns
 * false when it should exit with *ret_exit: a usage error (printed to
 * stderr, DAEMON_EXIT_USAGE), or --help / --version printed to stdout
 * (EXIT_SUCCESS); @values are freed then. */
bool daemon_parse_args(const struct config_spec *spec, void *values, int argc, char *argv[],
		       const char **ret_config_path, int *ret_exit);

/* The SIGTERM and SIGINT watchers of a daemon's loop. */
struct daemon_signals {
	uv_signal_t term, intr;
};

/* Starts both watchers on @loop: @cb runs with the handle's data = @data. */
void daemon_signals_start(struct daemon_signals *s, uv_loop_t *loop, uv_signal_cb cb, void *data);

/* Closes both watchers; @close_cb (may be NULL) runs once for each. */
void daemon_signals_close(struct daemon_signals *s, uv_close_cb close_cb);

#endif
