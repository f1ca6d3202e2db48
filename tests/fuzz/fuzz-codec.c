/* libFuzzer harness for the decoders of src/lib/codec. Not built by make;
 * build and run it by hand with clang:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I. -include config.h \
 *       -I/path/to/builddir tests/fuzz/fuzz-codec.c src/lib/codec.c \
 *       -lyaml -ljansson -lmsgpackc -lcrypto -lm -o fuzz-codec
 *   ./fuzz-codec -max_total_time=300
 *
 * The first input byte picks the decoder; the rest is its input. Besides
 * "no crash, no leak", it checks that whatever a decoder accepts, the
 * matching encoder turns back into something the decoder accepts again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/lib/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf out = {0}, again = {0};
	struct codec_err err;
	const void *v;
	const char *s;
	json_t *t;
	size_t n;
	uint8_t mode;

	if (size == 0)
		return 0;
	mode = data[0] % 4;
	data++;
	size--;
	switch (mode) {
	case 0: /* msgpack -> JSON -> msgpack -> JSON: a fixed point */
		if (codec_msgpack_to_json(data, size, 0, &out, &err) == 0) {
			struct buf j2 = {0};

			if (codec_json_to_msgpack(out.data, out.len, 0, &again, &err) == 0) {
				must(codec_msgpack_to_json(again.data, again.len, 0, &j2, &err) == 0);
				buf_free(&j2);
			}
		}
		codec_msgpack_value_len(data, size, &n);
		codec_msgpack_get_str(data, size, "metadata.name", &s, &n);
		codec_msgpack_get(data, size, "spec.containers.0", &v, &n);
		break;
	case 1: /* msgpack -> tree -> msgpack/YAML */
		if (codec_msgpack_to_tree(data, size, &t, &err) == 0) {
			must(codec_tree_to_msgpack(t, &again, &err) == 0);
			must(codec_tree_to_yaml(t, &out, &err) == 0);
			json_decref(t);
		}
		break;
	case 2: /* JSON text -> msgpack -> JSON */
		if (codec_json_to_msgpack((const char *)data, size, 0, &out, &err) == 0)
			must(codec_msgpack_to_json(out.data, out.len, CODEC_PRETTY, &again, &err) == 0);
		break;
	case 3: /* YAML -> trees -> YAML -> trees */
		if (codec_yaml_to_tree((const char *)data, size, 0, &t, &err) == 0) {
			size_t i;

			for (i = 0; i < json_array_size(t); i++) {
				json_t *back;

				out.len = 0;
				must(codec_tree_to_yaml(json_array_get(t, i), &out, &err) == 0);
				must(codec_yaml_to_tree(out.data, out.len, 0, &back, &err) == 0);
				must(json_equal(json_array_get(back, 0), json_array_get(t, i)));
				json_decref(back);
			}
			json_decref(t);
		}
		break;
	}
	buf_free(&out);
	buf_free(&again);
	return 0;
}
