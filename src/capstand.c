/* capstand: one master replica of a capstan cluster. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/lib/log.h"
#include "src/lib/version.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstand [OPTION]...\n"
		"Run one master replica of a capstan cluster: the replicated store,\n"
		"the Kubernetes API and, on the Raft leader, the control loops.\n"
		"\n"
		"  -h, --help       show this help and exit\n"
		"  -V, --version    show the version and exit\n"
		"\n"
		"See capstand(8).\n");
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int c;

	log_init("capstand", LOG_LEVEL_INFO);
	while ((c = getopt_long(argc, argv, "hV", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		case 'V':
			version_print("capstand");
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try 'capstand --help'.\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "capstand: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	log_error("the replicated store is not built yet");
	return EXIT_FAILURE;
}
