/* Decoder of Kubernetes protobuf request bodies into the JSON object tree. */
#ifndef CAPSTAN_API_PROTOBUF_H
#define CAPSTAN_API_PROTOBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The media type kubectl sends for protobuf bodies. */
#define API_PROTOBUF_MEDIA_TYPE "application/vnd.kubernetes.protobuf"

/* Value kinds of a protobuf field, as their JSON form needs them. */
enum api_proto_kind {
	API_PK_NONE = 0,
	API_PK_STRING,
	API_PK_BYTES,       /* base64 string */
	API_PK_INT32,       /* varint, JSON number */
	API_PK_INT64,       /* varint, JSON number */
	API_PK_BOOL,        /* varint */
	API_PK_DOUBLE,      /* fixed64 */
	API_PK_MESSAGE,     /* ref = message index; JSON object */
	API_PK_TIME,        /* metav1.Time{seconds,nanos}: RFC 3339, seconds */
	API_PK_MICROTIME,   /* metav1.MicroTime: RFC 3339, microseconds */
	API_PK_RAWJSON,     /* FieldsV1/RawExtension{1: raw JSON bytes} */
	API_PK_INTORSTRING, /* intstr.IntOrString{type, intVal, strVal} */
	API_PK_QUANTITY,    /* resource.Quantity{1: string} */
};

/* Field flags. */
enum {
	API_PF_REPEATED = 1 << 0, /* JSON array */
	API_PF_MAP = 1 << 1,      /* map<string, kind>: JSON object */
	API_PF_POINTER = 1 << 2,  /* Go pointer: a zero value on the wire is kept */
	API_PF_INLINE = 1 << 3,   /* embedded struct: fields go to the parent */
};

struct api_proto_field {
	uint16_t number;
	uint8_t kind;  /* enum api_proto_kind */
	uint8_t flags; /* API_PF_* */
	uint16_t ref;  /* message index of API_PK_MESSAGE */
	const char *json; /* the JSON name; "" when inlined */
};

struct api_proto_msg {
	const char *name;     /* "core_v1_PodSpec" */
	uint16_t first_field; /* index in api_proto_gen_fields, sorted by number */
	uint16_t n_fields;
};

struct api_proto_root {
	const char *group, *version, *kind;
	uint16_t msg;
};

#include "src/api/proto_gen.h"

/* The generated tables (src/api/proto_gen.c). */
extern const struct api_proto_field api_proto_gen_fields[API_PROTO_GEN_N_FIELDS];
extern const struct api_proto_msg api_proto_gen_msgs[API_PROTO_GEN_N_MSGS];
extern const struct api_proto_root api_proto_gen_roots[API_PROTO_GEN_N_ROOTS];

/* Nesting bound of messages inside a body; deeper input is refused. */
#define API_PROTOBUF_MAX_DEPTH 64

/* Decodes a Kubernetes protobuf body: the magic "k8s\0", then a
 * runtime.Unknown whose typeMeta names the kind and whose raw holds the
 * object's message.  The result is the object as its JSON body would be
 * decoded: apiVersion and kind set from typeMeta, JSON field names, and
 * fields holding Go's zero value left out (unless the Go field is a
 * pointer, where presence is meaningful), as omitempty would.
 *
 * Kinds: core/v1 Namespace, ConfigMap, Secret, Service and apps/v1
 * Deployment (what kubectl 1.32 creates with protobuf).
 *
 * @body is borrowed.  On success *ret_obj is a new reference owned by the
 * caller.  @err (may be NULL) receives a message for the client on error.
 *
 * Errors: -EBADMSG truncated or malformed input (bad magic, varint
 * overflow, length beyond the buffer, wrong wire type, invalid UTF-8,
 * nesting deeper than API_PROTOBUF_MAX_DEPTH, missing apiVersion/kind);
 * -ENOTSUP a kind without a protobuf table, or a content encoding/type
 * inside the envelope other than plain protobuf (answer 415); -ENOMEM. */
int api_protobuf_decode(const void *body, size_t len, json_t **ret_obj, char *err, size_t errlen);

/* Whether protobuf bodies of this group ("" for core), version and kind
 * can be decoded. */
bool api_protobuf_supports(const char *group, const char *version, const char *kind);

#endif
