#!/usr/bin/env python3
"""Manual compatibility check of the OpenAPI v2 document with an old kubectl.

Not part of the test suite.  Serves, on 127.0.0.1 over plain HTTP, the
documents dumped by tests/compat/openapi-v2-dump (built from
tests/compat/openapi-v2-dump.c, see its header): /version with the chosen
Kubernetes minor (the /usr/bin/kubectl dispatcher then runs the bundled
kubectl of that minor), legacy discovery, /openapi/v3, and /openapi/v2 as
the gnostic protobuf (or JSON for Accept: application/json).  POSTs are
echoed back as 201 so that `create --dry-run=server` gets an answer;
everything else is a 404 Status.  Every request is logged to stderr.

    openapi-v2-server.py DOCS_DIR PORT [MINOR [client-validation]]
        MINOR defaults to 27; client-validation serves openapi_v2_nofv.pb
        (no fieldValidation parameters) and no /openapi/v3, so that kubectl
        validates manifests itself against the v2 definitions
    /usr/bin/kubectl --server http://127.0.0.1:PORT explain pod.spec.containers
    /usr/bin/kubectl --server http://127.0.0.1:PORT create -f deploy.yaml --dry-run=server

End it with kill PID (it prints its PID first).
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PB_ACCEPT = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
PB_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def main():
    docs, port = sys.argv[1], int(sys.argv[2])
    minor = sys.argv[3] if len(sys.argv) > 3 else "27"
    client_side = len(sys.argv) > 4 and sys.argv[4] == "client-validation"
    pb_name = "openapi_v2_nofv.pb" if client_side else "openapi_v2.pb"

    def read(name):
        with open(os.path.join(docs, name), "rb") as f:
            return f.read()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, code, ctype, body, extra=None):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def status(self, code, reason, message):
            body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "message": message, "reason": reason, "code": code}).encode()
            self.answer(code, "application/json", body)

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            accept = self.headers.get("Accept", "")
            sys.stderr.write("GET %s Accept=%s\n" % (self.path, accept))
            if path == "/version":
                body = json.dumps({"major": "1", "minor": minor,
                                   "gitVersion": "v1.%s.0-capstan" % minor}).encode()
                return self.answer(200, "application/json", body)
            if path == "/openapi/v2":
                if PB_ACCEPT in accept or PB_TYPE in accept:
                    return self.answer(200, PB_TYPE, read(pb_name), {"Vary": "Accept"})
                return self.answer(200, "application/json", read("openapi_v2"), {"Vary": "Accept"})
            if client_side and path.startswith("/openapi/v3"):
                return self.status(404, "NotFound", "no OpenAPI v3 in this mode")
            name = path.strip("/").replace("/", "_")
            if name and os.path.isfile(os.path.join(docs, name)) and "." not in name.split("_")[0]:
                return self.answer(200, "application/json", read(name))
            self.status(404, "NotFound", "not found: %s" % path)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            sys.stderr.write("POST %s Content-Type=%s\n%s\n" % (
                self.path, self.headers.get("Content-Type"), body[:300].decode(errors="replace")))
            self.answer(201, self.headers.get("Content-Type", "application/json"), body)

        def log_message(self, fmt, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(os.getpid(), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
