#!/usr/bin/env python3
"""Generate capstan's protobuf field tables (src/api/proto_gen.c and .h).

Usage: tools/gen-proto-fields.py ROOT OUTDIR [SWAGGER.JSON]

ROOT holds the Kubernetes sources laid out by Go import path, as a
development-time checkout (nothing of it is committed):
  ROOT/k8s.io/api/{core,apps,networking}/v1/generated.proto and types.go
  ROOT/k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto and types.go
  ROOT/k8s.io/apimachinery/pkg/runtime/generated.proto
  ROOT/k8s.io/apimachinery/pkg/util/intstr/generated.proto
  ROOT/k8s.io/apimachinery/pkg/api/resource/generated.proto

From the .proto files it takes message names, field numbers and types;
from the struct tags of types.go the JSON name of each field, whether it is
inlined (json:",inline") and whether the Go field is a pointer (then a zero
value on the wire is meaningful and kept).  Only these facts are written.
With SWAGGER.JSON it also checks every JSON name against the OpenAPI
definitions and reports the ones it does not know.
"""
import json
import os
import re
import sys

ROOTS = [
    ("", "v1", "Namespace", "k8s.io.api.core.v1.Namespace"),
    ("", "v1", "ConfigMap", "k8s.io.api.core.v1.ConfigMap"),
    ("", "v1", "Secret", "k8s.io.api.core.v1.Secret"),
    ("", "v1", "Service", "k8s.io.api.core.v1.Service"),
    ("", "v1", "ServiceAccount", "k8s.io.api.core.v1.ServiceAccount"),
    ("networking.k8s.io", "v1", "Ingress", "k8s.io.api.networking.v1.Ingress"),
    ("apps", "v1", "Deployment", "k8s.io.api.apps.v1.Deployment"),
]

PROTO_FILES = [
    "k8s.io/api/core/v1",
    "k8s.io/api/apps/v1",
    "k8s.io/api/networking/v1",
    "k8s.io/apimachinery/pkg/apis/meta/v1",
    "k8s.io/apimachinery/pkg/runtime",
    "k8s.io/apimachinery/pkg/util/intstr",
    "k8s.io/apimachinery/pkg/api/resource",
]

# Messages whose JSON form is not an object: they become value kinds.
SPECIAL = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "API_PK_TIME",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "API_PK_MICROTIME",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "API_PK_RAWJSON",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "API_PK_RAWJSON",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "API_PK_INTORSTRING",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "API_PK_QUANTITY",
}

# Messages with a JSON form of their own that the decoder does not know yet:
# reaching one from a root is an error to fix in src/api/protobuf.c.
UNSUPPORTED = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration",
}

SCALARS = {
    "string": "API_PK_STRING",
    "bytes": "API_PK_BYTES",
    "int32": "API_PK_INT32",
    "int64": "API_PK_INT64",
    "bool": "API_PK_BOOL",
    "double": "API_PK_DOUBLE",
}

SWAGGER_PREFIX = {
    "k8s.io.api.": "io.k8s.api.",
    "k8s.io.apimachinery.pkg.apis.": "io.k8s.apimachinery.pkg.apis.",
}


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def parse_proto(path):
    """Return (package, {message: [(label, type, name, number)]})."""
    text = strip_comments(open(path, encoding="utf-8").read())
    pkg = re.search(r"^\s*package\s+([\w.]+)\s*;", text, re.M).group(1)
    msgs = {}
    for m in re.finditer(r"\bmessage\s+(\w+)\s*\{([^{}]*)\}", text):
        fields = []
        for line in m.group(2).split(";"):
            line = line.strip()
            if not line:
                continue
            fm = re.match(r"map<\s*(\w+)\s*,\s*([\w.]+)\s*>\s+(\w+)\s*=\s*(\d+)$", line)
            if fm:
                if fm.group(1) != "string":
                    sys.exit("%s: map key %s unsupported" % (path, fm.group(1)))
                fields.append(("map", fm.group(2), fm.group(3), int(fm.group(4))))
                continue
            fm = re.match(r"(optional|repeated|required)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)$", line)
            if not fm:
                sys.exit("%s: cannot parse field %r in %s" % (path, line, m.group(1)))
            fields.append((fm.group(1), fm.group(2), fm.group(3), int(fm.group(4))))
        msgs[pkg + "." + m.group(1)] = fields
    return pkg, msgs


def parse_go(path):
    """Return {(struct, field number): (json name, inline, pointer)}."""
    out = {}
    struct = None
    for line in open(path, encoding="utf-8"):
        sm = re.match(r"^type\s+(\w+)\s+struct\s*\{", line)
        if sm:
            struct = sm.group(1)
            continue
        if line.startswith("}"):
            struct = None
            continue
        if struct is None or "protobuf:\"" not in line:
            continue
        fm = re.match(r"^\s*(?:(\w+)\s+)?(\*?)([\w.\[\]*]+)\s+`(.*)`", line)
        if not fm:
            continue
        tags = fm.group(4)
        pm = re.search(r'protobuf:"\w+,(\d+)', tags)
        jm = re.search(r'json:"([^"]*)"', tags)
        if not pm or not jm:
            continue
        parts = jm.group(1).split(",")
        # An embedded struct with an empty JSON name has its fields promoted.
        inline = parts[0] == "" and fm.group(1) is None
        out[(struct, int(pm.group(1)))] = (parts[0], inline, fm.group(2) == "*")
    return out


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    root, outdir = sys.argv[1], sys.argv[2]
    swagger = None
    if len(sys.argv) == 4:
        swagger = json.load(open(sys.argv[3], encoding="utf-8"))["definitions"]

    msgs = {}
    gofacts = {}  # message full name -> {(proto name): facts}
    for d in PROTO_FILES:
        pkg, m = parse_proto(os.path.join(root, d, "generated.proto"))
        msgs.update(m)
        tpath = os.path.join(root, d, "types.go")
        if os.path.exists(tpath):
            for (struct, num), facts in parse_go(tpath).items():
                gofacts.setdefault(pkg + "." + struct, {})[num] = facts

    def resolve(pkg, t):
        if t.startswith("."):
            return t[1:]
        if pkg + "." + t in msgs:
            return pkg + "." + t
        sys.exit("unresolved type %s in %s" % (t, pkg))

    # Walk every message reachable from the roots.
    order = []
    seen = set()
    todo = [r[3] for r in ROOTS]
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.add(name)
        order.append(name)
        pkg = name.rsplit(".", 1)[0]
        for label, t, fname, num in msgs[name]:
            if t in SCALARS:
                continue
            full = resolve(pkg, t)
            if full in SPECIAL:
                continue
            if full in UNSUPPORTED:
                sys.exit("%s.%s: %s has no decoder yet" % (name, fname, full))
            todo.append(full)
    order.sort()
    index = {n: i for i, n in enumerate(order)}

    warnings = []
    rows = []  # per message: list of C initialisers
    first = []
    for name in order:
        pkg, short = name.rsplit(".", 1)
        facts = gofacts.get(name, {})
        sw = None
        if swagger is not None:
            for p, q in SWAGGER_PREFIX.items():
                if name.startswith(p):
                    sw = swagger.get(q + name[len(p):])
        first.append(len(rows))
        for label, t, fname, num in sorted(msgs[name], key=lambda f: f[3]):
            if num not in facts:
                sys.exit("%s.%s: no Go struct tag found" % (name, fname))
            jname, inline, pointer = facts[num]
            flags = []
            if label == "repeated":
                flags.append("API_PF_REPEATED")
            elif label == "map":
                flags.append("API_PF_MAP")
            if pointer and label == "optional":
                flags.append("API_PF_POINTER")
            if inline:
                flags.append("API_PF_INLINE")
                jname = ""
            if t in SCALARS:
                kind, ref = SCALARS[t], 0
            else:
                full = resolve(pkg, t)
                if full in SPECIAL:
                    kind, ref = SPECIAL[full], 0
                else:
                    kind, ref = "API_PK_MESSAGE", index[full]
            if inline and kind != "API_PK_MESSAGE":
                sys.exit("%s.%s: inline non-message" % (name, fname))
            if sw is not None and not inline and jname not in sw.get("properties", {}):
                warnings.append("%s.%s (json %s) not in swagger" % (name, fname, jname))
            if jname != fname and not inline:
                warnings.append("%s.%s: JSON name %s differs" % (name, fname, jname))
            rows.append('\t{%d, %s, %s, %d, "%s"},' % (
                num, kind, " | ".join(flags) if flags else "0", ref, jname))

    def cname(n):
        return n.replace("k8s.io.api.", "").replace(
            "k8s.io.apimachinery.pkg.apis.", "").replace(".", "_")

    os.makedirs(outdir, exist_ok=True)
    head = ("/* Generated by tools/gen-proto-fields.py from the Kubernetes generated.proto\n"
            " * files and the struct tags of types.go; do not edit.\n"
            " * Regenerate: tools/gen-proto-fields.py ROOT src/api [swagger.json] */\n")
    with open(os.path.join(outdir, "proto_gen.h"), "w", encoding="utf-8") as f:
        f.write(head)
        f.write("#ifndef CAPSTAN_API_PROTO_GEN_H\n#define CAPSTAN_API_PROTO_GEN_H\n\n")
        f.write("#define API_PROTO_GEN_N_MSGS %d\n" % len(order))
        f.write("#define API_PROTO_GEN_N_FIELDS %d\n" % len(rows))
        f.write("#define API_PROTO_GEN_N_ROOTS %d\n\n" % len(ROOTS))
        for n in order:
            f.write("#define API_PROTO_%s %d\n" % (cname(n), index[n]))
        f.write("\n#endif\n")
    with open(os.path.join(outdir, "proto_gen.c"), "w", encoding="utf-8") as f:
        f.write(head)
        f.write('#include "src/api/proto_gen.h"\n#include "src/api/protobuf.h"\n\n')
        f.write("/* number, kind, flags, message index, JSON name; sorted by number. */\n")
        f.write("const struct api_proto_field api_proto_gen_fields[API_PROTO_GEN_N_FIELDS] = {\n")
        f.write("\n".join(rows))
        f.write("\n};\n\n")
        f.write("const struct api_proto_msg api_proto_gen_msgs[API_PROTO_GEN_N_MSGS] = {\n")
        for i, n in enumerate(order):
            end = first[i + 1] if i + 1 < len(order) else len(rows)
            f.write('\t{"%s", %d, %d},\n' % (cname(n), first[i], end - first[i]))
        f.write("};\n\n")
        f.write("const struct api_proto_root api_proto_gen_roots[API_PROTO_GEN_N_ROOTS] = {\n")
        for g, v, k, n in ROOTS:
            f.write('\t{"%s", "%s", "%s", API_PROTO_%s},\n' % (g, v, k, cname(n)))
        f.write("};\n")
    for w in warnings:
        print("note: " + w, file=sys.stderr)
    print("%d messages, %d fields" % (len(order), len(rows)), file=sys.stderr)


if __name__ == "__main__":
    main()
