#!/usr/bin/env python3
"""Generate capstan's schema tables (src/api/types_gen.c and types_gen.h).

Usage: tools/gen-api-types.py SWAGGER.JSON OUTDIR

Reads the Kubernetes OpenAPI v2 document and writes compact C tables for
every definition reachable from the kinds capstan serves: field names, value
kinds, required flags, strategic-merge-patch facts and list/map types.
Only facts are taken; description texts are never written.  The output is
committed so that the build does not need the swagger file.
"""
import json
import os
import sys

# Definitions the registry serves (kinds and the subresource/option kinds
# the handlers encode).  Everything they reference is pulled in.
ROOTS = [
    "io.k8s.api.core.v1.Namespace",
    "io.k8s.api.core.v1.Pod",
    "io.k8s.api.core.v1.Binding",
    "io.k8s.api.core.v1.Service",
    "io.k8s.api.core.v1.Endpoints",
    "io.k8s.api.core.v1.ConfigMap",
    "io.k8s.api.core.v1.Secret",
    "io.k8s.api.core.v1.PersistentVolume",
    "io.k8s.api.core.v1.PersistentVolumeClaim",
    "io.k8s.api.core.v1.Node",
    "io.k8s.api.core.v1.ServiceAccount",
    "io.k8s.api.core.v1.Event",
    "io.k8s.api.apps.v1.Deployment",
    "io.k8s.api.apps.v1.ReplicaSet",
    "io.k8s.api.apps.v1.DaemonSet",
    "io.k8s.api.apps.v1.StatefulSet",
    "io.k8s.api.autoscaling.v1.Scale",
    "io.k8s.api.networking.v1.Ingress",
    "io.k8s.api.networking.v1.NetworkPolicy",
    "io.k8s.api.coordination.v1.Lease",
    "io.k8s.api.discovery.v1.EndpointSlice",
    "io.k8s.api.policy.v1.Eviction",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
    "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
]

# Definitions that are scalars on the wire: they become value kinds.
SPECIAL = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": "API_V_INT_OR_STRING",
    "io.k8s.apimachinery.pkg.api.resource.Quantity": "API_V_QUANTITY",
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": "API_V_TIME",
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": "API_V_MICROTIME",
    "io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1": "API_V_ANY",
    "io.k8s.apimachinery.pkg.runtime.RawExtension": "API_V_ANY",
}

PREFIXES = ["io.k8s.api.", "io.k8s.apimachinery.pkg.apis.", "io.k8s.apimachinery.pkg."]


def short_name(full):
    for p in PREFIXES:
        if full.startswith(p):
            return full[len(p):]
    return full


def ident(full):
    return "API_TYPE_" + short_name(full).replace(".", "_").replace("-", "_")


def ref_name(schema):
    return schema["$ref"].split("/")[-1]


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: gen-api-types.py SWAGGER.JSON OUTDIR")
    with open(sys.argv[1], encoding="utf-8") as f:
        defs = json.load(f)["definitions"]

    def refs(s):
        if "$ref" in s:
            yield ref_name(s)
        if "items" in s:
            yield from refs(s["items"])
        if "additionalProperties" in s:
            yield from refs(s["additionalProperties"])

    seen = set()
    stack = list(ROOTS)
    while stack:
        n = stack.pop()
        if n in seen or n in SPECIAL:
            continue
        if "properties" not in defs[n]:
            sys.exit("definition without properties is not special-cased: " + n)
        seen.add(n)
        for s in defs[n]["properties"].values():
            stack.extend(refs(s))
    types = sorted(seen)
    tindex = {n: i for i, n in enumerate(types)}

    strings = [""]
    sindex = {"": 0}

    def sid(s):
        if s not in sindex:
            sindex[s] = len(strings)
            strings.append(s)
        return sindex[s]

    elems = [("API_V_NONE", 0)]
    eindex = {elems[0]: 0}

    def schema(s):
        """Returns (kind, ref) of one property or element schema."""
        if "$ref" in s:
            r = ref_name(s)
            if r in SPECIAL:
                return (SPECIAL[r], 0)
            return ("API_V_OBJECT", tindex[r])
        t, fmt = s.get("type"), s.get("format")
        if t == "array":
            return ("API_V_ARRAY", elem(schema(s["items"])))
        if t == "object" and "additionalProperties" in s:
            return ("API_V_MAP", elem(schema(s["additionalProperties"])))
        if t == "object":
            return ("API_V_ANY", 0)
        if t == "string":
            return ({None: "API_V_STRING", "byte": "API_V_BYTES",
                     "date-time": "API_V_TIME"}[fmt], 0)
        if t == "integer":
            return ({"int32": "API_V_INT32", "int64": "API_V_INT64"}[fmt], 0)
        if t == "number":
            return ("API_V_NUMBER", 0)
        if t == "boolean":
            return ("API_V_BOOL", 0)
        sys.exit("unknown schema: %r" % ({k: v for k, v in s.items() if k != "description"},))

    def elem(e):
        if e not in eindex:
            eindex[e] = len(elems)
            elems.append(e)
        return eindex[e]

    keys = [0]  # offset 0 means "no list-map keys"

    def keylist(ks):
        off = len(keys)
        keys.append(len(ks))
        keys.extend(sid(k) for k in ks)
        return off

    gvks = []
    fields = []
    trows = []
    for n in types:
        d = defs[n]
        req = set(d.get("required", []))
        first = len(fields)
        for p in sorted(d["properties"]):
            s = d["properties"][p]
            kind, ref = schema(s)
            flags = []
            if p in req:
                flags.append("API_F_REQUIRED")
            for st in s.get("x-kubernetes-patch-strategy", "").split(","):
                if st:
                    flags.append({"merge": "API_F_PATCH_MERGE",
                                  "retainKeys": "API_F_PATCH_RETAIN_KEYS",
                                  "replace": "API_F_PATCH_REPLACE"}[st])
            lt = s.get("x-kubernetes-list-type")
            if lt:
                flags.append({"atomic": "API_F_LIST_ATOMIC", "set": "API_F_LIST_SET",
                              "map": "API_F_LIST_MAP"}[lt])
            mt = s.get("x-kubernetes-map-type")
            if mt:
                flags.append({"atomic": "API_F_MAP_ATOMIC", "granular": "API_F_MAP_GRANULAR"}[mt])
            mk = sid(s["x-kubernetes-patch-merge-key"]) if "x-kubernetes-patch-merge-key" in s else 0
            lk = keylist(s["x-kubernetes-list-map-keys"]) if "x-kubernetes-list-map-keys" in s else 0
            fields.append((sid(p), kind, ref, "|".join(flags) or "0", mk, lk))
        if req - set(d["properties"]):
            sys.exit("required field without property in " + n)
        g = 0
        gl = d.get("x-kubernetes-group-version-kind")
        if gl:
            # A definition shared by many groups (DeleteOptions) keeps the core one.
            pick = next((x for x in gl if x["group"] == ""), gl[0])
            gvks.append((sid(pick["group"]), sid(pick["version"]), sid(pick["kind"])))
            g = len(gvks)
        tflags = "API_TF_MAP_ATOMIC" if d.get("x-kubernetes-map-type") == "atomic" else "0"
        trows.append((sid(n), first, len(fields) - first, g, tflags))

    if len(strings) > 0xffff or len(fields) > 0xffff or len(keys) > 0xffff:
        sys.exit("tables outgrew 16-bit indexes")

    me = "tools/gen-api-types.py"
    head = ("/* Generated by %s from the Kubernetes OpenAPI v2 document; do not edit.\n"
            " * Regenerate: %s swagger.json src/api */\n" % (me, me))
    out_h = [head, "#ifndef CAPSTAN_API_TYPES_GEN_H\n#define CAPSTAN_API_TYPES_GEN_H\n\n",
             "#define API_GEN_N_TYPES %d\n" % len(types),
             "#define API_GEN_N_FIELDS %d\n" % len(fields),
             "#define API_GEN_N_STRINGS %d\n" % len(strings),
             "#define API_GEN_N_ELEMS %d\n" % len(elems),
             "#define API_GEN_N_GVKS %d\n\n" % len(gvks)]
    for n in types:
        out_h.append("#define %s %d\n" % (ident(n), tindex[n]))
    out_h.append("\n#endif\n")

    out_c = [head, '#include "src/api/types.h"\n\n',
             "const char *const api_gen_strings[API_GEN_N_STRINGS] = {\n"]
    for s in strings:
        out_c.append("\t%s,\n" % json.dumps(s))
    out_c.append("};\n\nconst struct api_elem api_gen_elems[API_GEN_N_ELEMS] = {\n")
    for k, r in elems:
        out_c.append("\t{%s, %d},\n" % (k, r))
    out_c.append("};\n\nconst uint16_t api_gen_keys[%d] = {\n" % len(keys))
    for i in range(0, len(keys), 12):
        out_c.append("\t" + ", ".join(str(k) for k in keys[i:i + 12]) + ",\n")
    out_c.append("};\n\nconst struct api_gvk api_gen_gvks[API_GEN_N_GVKS + 1] = {\n\t{0, 0, 0},\n")
    for g in gvks:
        out_c.append("\t{%d, %d, %d},\n" % g)
    out_c.append("};\n\n/* name, kind, ref, flags, merge key, list-map keys */\n")
    out_c.append("const struct api_field api_gen_fields[API_GEN_N_FIELDS] = {\n")
    for f in fields:
        out_c.append("\t{%d, %s, %d, %s, %d, %d}, /* %s */\n" % (f + (strings[f[0]],)))
    out_c.append("};\n\n/* name, first field, field count, gvk, flags */\n")
    out_c.append("const struct api_type api_gen_types[API_GEN_N_TYPES] = {\n")
    for i, t in enumerate(trows):
        out_c.append("\t[%s] = {%d, %d, %d, %d, %s},\n" % ((ident(types[i]),) + t))
    out_c.append("};\n")

    outdir = sys.argv[2]
    for name, text in (("types_gen.h", out_h), ("types_gen.c", out_c)):
        path = os.path.join(outdir, name)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write("".join(text))
        os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
