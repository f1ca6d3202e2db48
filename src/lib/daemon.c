/* Start-up and signal boilerplate shared by the daemons. */
#include "src/lib/daemon.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "src/lib/log.h"
#include "src/lib/version.h"

bool daemon_parse_args(const struct config_spec *spec, void *values, int argc, char *argv[],
		       const char **ret_config_path, int *ret_exit)
{
	enum config_action action;
	char err[1024];

	signal(SIGPIPE, SIG_IGN);
	log_init(spec->prog, LOG_LEVEL_INFO);
	if (config_parse(spec, values, argc, argv, &action, ret_config_path, err, sizeof err) != 0) {
		fprintf(stderr, "%s: %s\n", spec->prog, err);
		*ret_exit = DAEMON_EXIT_USAGE;
		goto out_free;
	}
	if (action == CONFIG_HELP) {
		config_print_help(spec, stdout);
		*ret_exit = EXIT_SUCCESS;
		goto out_free;
	}
	if (action == CONFIG_VERSION) {
		version_print(spec->prog);
		*ret_exit = EXIT_SUCCESS;
		goto out_free;
	}
	return true;
out_free:
	config_free(spec, values);
	return false;
}

void daemon_signals_start(struct daemon_signals *s, uv_loop_t *loop, uv_signal_cb cb, void *data)
{
	uv_signal_init(loop, &s->term);
	uv_signal_init(loop, &s->intr);
	s->term.data = data;
	s->intr.data = data;
	uv_signal_start(&s->term, cb, SIGTERM);
	uv_signal_start(&s->intr, cb, SIGINT);
}

void daemon_signals_close(struct daemon_signals *s, uv_close_cb close_cb)
{
	uv_close((uv_handle_t *)&s->term, close_cb);
	uv_close((uv_handle_t *)&s->intr, close_cb);
}
