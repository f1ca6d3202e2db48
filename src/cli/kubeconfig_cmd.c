/* capstan kubeconfig: prints the admin kubeconfig of a local master's data
 * directory, optionally pointing it at another server URL. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "src/cli/cli.h"
#include "src/cli/kubeconfig.h"
#include "src/lib/pki.h"

#define DEFAULT_DATA_DIR "/var/lib/capstan"

enum {
	OPT_DATA_DIR = CLI_OPT_FIRST_LOCAL,
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: capstan kubeconfig [--data-dir DIR] [--server URL] [-o FILE]\n"
		"Print the admin kubeconfig of the master whose data directory is DIR\n"
		"(DIR/admin.kubeconfig; it holds the admin's private key).\n"
		"\n"
		"      --data-dir DIR   the master's data directory (default " DEFAULT_DATA_DIR ")\n"
		"      --server URL     write URL as the cluster's server instead of the\n"
		"                       master's advertise URL\n"
		"  -o, --output FILE    write to FILE (mode 0600) instead of stdout\n"
		"  -h, --help           show this help\n");
}

static bool valid_url(const char *url)
{
	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0)
		return false;
	for (const char *p = url; *p != '\0'; p++)
		if ((unsigned char)*p < 0x21 || *p == '"' || *p == '\\' || *p == 0x7f)
			return false;
	return true;
}

/* Replaces the value of the single "server:" line of @text (as capstand
 * writes it) with @url, double-quoted. Returns a malloc'ed copy in
 * *ret_text, or -ENOENT (no single server line), -ENOMEM. */
static int rewrite_server(const char *text, size_t len, const char *url, char **ret_text,
			  size_t *ret_len)
{
	const char *line = text, *end = text + len, *hit = NULL, *hit_end = NULL;
	size_t n_hits = 0, indent, out_len;
	char *out;

	while (line < end) {
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		const char *p = line;

		if (eol == NULL)
			eol = end;
		while (p < eol && *p == ' ')
			p++;
		if ((size_t)(eol - p) >= 7 && memcmp(p, "server:", 7) == 0) {
			hit = line;
			hit_end = eol;
			n_hits++;
		}
		line = eol < end ? eol + 1 : end;
	}
	if (n_hits != 1)
		return -ENOENT;
	indent = 0;
	while (hit[indent] == ' ')
		indent++;
	out_len = (size_t)(hit - text) + indent + strlen("server: \"\"") + strlen(url) +
		  (size_t)(end - hit_end);
	out = malloc(out_len + 1);
	if (out == NULL)
		return -ENOMEM;
	snprintf(out, out_len + 1, "%.*sserver: \"%s\"%.*s", (int)((size_t)(hit - text) + indent),
		 text, url, (int)(end - hit_end), hit_end);
	*ret_text = out;
	*ret_len = out_len;
	return 0;
}

int cli_cmd_kubeconfig(struct cli_global *g, int argc, char **argv)
{
	static const struct option options[] = {
		{"help", no_argument, NULL, 'h'},
		{"output", required_argument, NULL, 'o'},
		{"data-dir", required_argument, NULL, OPT_DATA_DIR},
		CLI_GLOBAL_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	const char *data_dir = DEFAULT_DATA_DIR, *output = NULL;
	struct cli_kubeconfig kc = {0};
	char *path = NULL, *text = NULL, *rewritten = NULL, errmsg[256];
	size_t len = 0, path_len;
	int c, rv, code = CLI_EXIT_FAILURE;

	optind = 0;
	while ((c = getopt_long(argc, argv, ":ho:", options, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return CLI_EXIT_OK;
		case 'o':
			output = optarg;
			break;
		case OPT_DATA_DIR:
			data_dir = optarg;
			break;
		default:
			code = cli_global_option(g, "kubeconfig", c, argv);
			if (code != CLI_EXIT_OK)
				return code;
		}
	}
	if (optind < argc)
		return cli_usage_error("kubeconfig", "unexpected argument '%s'", argv[optind]);
	if (data_dir[0] == '\0')
		return cli_usage_error("kubeconfig", "--data-dir is empty");
	if (g->server != NULL && !valid_url(g->server))
		return cli_usage_error("kubeconfig", "invalid --server '%s' (want http(s)://HOST:PORT)",
				       g->server);

	path_len = strlen(data_dir) + sizeof("/admin.kubeconfig");
	path = malloc(path_len);
	if (path == NULL) {
		code = cli_fail(CLI_EXIT_FAILURE, "out of memory");
		goto out;
	}
	snprintf(path, path_len, "%s/admin.kubeconfig", data_dir);
	rv = pki_read_file(path, &text, &len);
	if (rv != 0) {
		code = cli_fail(CLI_EXIT_FAILURE, "cannot read %s: %s", path, strerror(-rv));
		goto out;
	}
	/* Refuse to print something kubectl could not use. */
	rv = cli_kubeconfig_parse(text, len, data_dir, NULL, &kc, errmsg, sizeof errmsg);
	if (rv != 0) {
		code = cli_fail(CLI_EXIT_FAILURE, "%s: %s", path, errmsg);
		goto out;
	}
	if (g->server != NULL) {
		rv = rewrite_server(text, len, g->server, &rewritten, &len);
		if (rv != 0) {
			code = cli_fail(CLI_EXIT_FAILURE, "%s: %s", path,
					rv == -ENOMEM ? "out of memory"
						      : "expected exactly one server: line");
			goto out;
		}
		OPENSSL_cleanse(text, strlen(text));
		free(text);
		text = rewritten;
	}
	if (output != NULL && strcmp(output, "-") != 0) {
		rv = pki_write_file(output, text, len, 0600);
		if (rv != 0) {
			code = cli_fail(CLI_EXIT_FAILURE, "cannot write %s: %s", output, strerror(-rv));
			goto out;
		}
	} else if (fwrite(text, 1, len, stdout) != len || fflush(stdout) != 0) {
		code = cli_fail(CLI_EXIT_FAILURE, "cannot write the kubeconfig: %s", strerror(errno));
		goto out;
	}
	code = CLI_EXIT_OK;
out:
	cli_kubeconfig_close(&kc);
	if (text != NULL) {
		OPENSSL_cleanse(text, len);
		free(text);
	}
	free(path);
	return code;
}
