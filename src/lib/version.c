#include "src/lib/version.h"

#include <stdio.h>

#include <curl/curl.h>
#include <jansson.h>
#include <msgpack.h>
#include <openssl/crypto.h>
#include <uv.h>
#include <yaml.h>

#include "src/lib/gitrev.h"

const char *version_string(void)
{
	static char buf[128];

	if (buf[0] == '\0') {
		if (CAPSTAN_GIT_REV[0] != '\0')
			snprintf(buf, sizeof buf, "%s (git %s)", PACKAGE_VERSION,
				 CAPSTAN_GIT_REV);
		else
			snprintf(buf, sizeof buf, "%s", PACKAGE_VERSION);
	}
	return buf;
}

void version_print(const char *prog)
{
	printf("%s %s\n", prog, version_string());
	printf("libraft %s, libh2o %s, libuv %s, msgpack-c %s, libyaml %s, jansson %s, %s, %s\n",
	       CAPSTAN_RAFT_VERSION, CAPSTAN_H2O_VERSION, uv_version_string(), msgpack_version(), yaml_get_version_string(),
	       jansson_version_str(), curl_version(), OpenSSL_version(OPENSSL_VERSION));
}
