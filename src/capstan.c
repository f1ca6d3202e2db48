/* capstan: the command-line interface to a capstan cluster. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/lib/log.h"
#include "src/lib/version.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstan [OPTION]... COMMAND [ARG]...\n"
		"Manage a capstan cluster and its resources.\n"
		"\n"
		"Options:\n"
		"  -h, --help       show this help and exit\n"
		"  -V, --version    show the version and exit\n"
		"\n"
		"Commands:\n"
		"  version          show the version\n"
		"\n"
		"See capstan(1).\n");
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int c;

	log_init("capstan", LOG_LEVEL_WARN);
	/* Options after the command belong to the command. */
	while ((c = getopt_long(argc, argv, "+hV", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		case 'V':
			version_print("capstan");
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try 'capstan --help'.\n");
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[optind], "version") == 0) {
		version_print("capstan");
		return EXIT_SUCCESS;
	}
	fprintf(stderr, "capstan: unknown command '%s'; try 'capstan --help'\n", argv[optind]);
	return 2;
}
