"""Pulling images from an OCI registry (runtime/registry.c) through
tests/runtime/rtctl's `pull`, against Debian's docker-registry on loopback.

The test image (tests/image/build-busybox-image.sh) is pushed with a small
pusher written here (urllib, the distribution API's monolithic upload) as
an OCI manifest, a Docker v2 schema 2 manifest, and an OCI index with an
amd64 and an arm64 entry. Then:
- plain HTTP, anonymous: pull by tag, by digest, through the Docker
  manifest and through the index (same image id each time); the image is
  listed under its name and a container runs from it (both layers, the
  whiteout honoured); a missing repository or tag is "not found"; a domain
  with no configured registry is "not found" without contacting anything;
  a closed port is "unreachable".
- TLS with a generated certificate and htpasswd basic auth: the right CA
  and password pull; a wrong password or none is "unauthorized"; the
  system CAs do not trust the certificate ("unreachable").
- the token flow (WWW-Authenticate: Bearer): a token service written here
  in front of the registry, anonymous then with basic credentials; a wrong
  password is "unauthorized"; a second pull downloads no layer again.

Only 127.0.0.1 is used. Skipped without root, docker-registry or
busybox-static (runc is needed for the container part only)."""

import base64
import hashlib
import http.server
import json
import os
import shutil
import socketserver
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings

import capstantest
from capstantest import test, main, program, free_port, Skip

SRCDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE_SCRIPT = os.path.join(SRCDIR, "tests", "image", "build-busybox-image.sh")
REGISTRY = "/usr/bin/docker-registry"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# No proxy may see these requests (urllib and libcurl both honour it).
for _v in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
           "ALL_PROXY"):
    os.environ.pop(_v, None)


def requirements():
    if os.geteuid() != 0:
        raise Skip("needs root (layers hold whiteouts)")
    if not os.access(REGISTRY, os.X_OK):
        raise Skip("docker-registry is not installed")
    capstantest.require_containers()
    if not os.path.exists("/bin/busybox"):
        raise Skip("busybox-static is not installed")


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def no_proxy_opener(ctx_ssl=None):
    handlers = [urllib.request.ProxyHandler({})]
    if ctx_ssl is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ctx_ssl))
    return urllib.request.build_opener(*handlers)


class Registry:
    """docker-registry on 127.0.0.1:port with its own storage and config."""

    def __init__(self, ctx, name, tls=False, users=None):
        self.ctx = ctx
        self.port = free_port()
        self.dir = ctx.path(name)
        os.makedirs(os.path.join(self.dir, "data"))
        self.scheme = "https" if tls else "http"
        self.url = "%s://127.0.0.1:%d" % (self.scheme, self.port)
        self.ca = None
        self.auth = None
        cfg = ["version: 0.1", "log:", "  level: info", "  accesslog:", "    disabled: true",
               "storage:", "  filesystem:", "    rootdirectory: " + self.dir + "/data",
               "http:", "  addr: 127.0.0.1:%d" % self.port, "  secret: capstan-test"]
        if tls:
            self.ca = os.path.join(self.dir, "cert.pem")
            key = os.path.join(self.dir, "key.pem")
            ctx.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                     "-keyout", key, "-out", self.ca, "-subj", "/CN=127.0.0.1",
                     "-addext", "subjectAltName=IP:127.0.0.1"], timeout=60)
            cfg += ["  tls:", "    certificate: " + self.ca, "    key: " + key]
        if users:
            path = os.path.join(self.dir, "htpasswd")
            with open(path, "w") as f:
                for user, password in users.items():
                    f.write("%s:%s\n" % (user, bcrypt(password)))
            cfg += ["auth:", "  htpasswd:", "    realm: capstan-test", "    path: " + path]
            user, password = next(iter(users.items()))
            self.auth = "Basic " + base64.b64encode(
                ("%s:%s" % (user, password)).encode()).decode()
        self.config = os.path.join(self.dir, "config.yml")
        with open(self.config, "w") as f:
            f.write("\n".join(cfg) + "\n")
        sslctx = ssl.create_default_context(cafile=self.ca) if tls else None
        self.opener = no_proxy_opener(sslctx)
        self.proc = ctx.spawn(name, [REGISTRY, "serve", self.config])
        ctx.wait_for("%s answers" % name, self.ready, timeout=20)

    def ready(self):
        assert self.proc.alive(), self.proc.log()
        try:
            self.request("GET", "/v2/", auth=False)
            return True
        except urllib.error.HTTPError as e:
            return e.code == 401
        except OSError:
            return False

    def request(self, method, path, data=None, headers=None, auth=True):
        url = path if path.startswith("http") else self.url + path
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        if auth and self.auth:
            req.add_header("Authorization", self.auth)
        with self.opener.open(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()

    def push_blob(self, repo, data):
        digest = sha(data)
        try:
            self.request("HEAD", "/v2/%s/blobs/%s" % (repo, digest))
            return digest
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
        status, headers, _ = self.request("POST", "/v2/%s/blobs/uploads/" % repo, data=b"")
        assert status == 202, status
        loc = urllib.parse.urljoin(self.url, headers["Location"])
        loc += ("&" if "?" in loc else "?") + "digest=" + urllib.parse.quote(digest)
        status, _, _ = self.request("PUT", loc, data=data,
                                    headers={"Content-Type": "application/octet-stream"})
        assert status == 201, status
        return digest

    def push_manifest(self, repo, tag, media_type, body):
        status, headers, _ = self.request("PUT", "/v2/%s/manifests/%s" % (repo, tag), data=body,
                                          headers={"Content-Type": media_type})
        assert status == 201, status
        assert headers.get("Docker-Content-Digest") == sha(body), headers
        return sha(body)


def bcrypt(password):
    """A bcrypt hash (what docker-registry's htpasswd wants) via libcrypt."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    except ImportError:  # Python 3.13 dropped crypt: try apache2-utils
        h = None
        if shutil.which("htpasswd"):
            out = subprocess.run(["htpasswd", "-nbB", "-C", "4", "u", password],
                                 capture_output=True, text=True).stdout
            h = out.strip().partition(":")[2]
    if not h or not h.startswith("$2"):
        raise Skip("no bcrypt hashing here (python3 crypt or htpasswd)")
    return h


class Image:
    """The test image's OCI layout, read back for pushing."""

    def __init__(self, ctx):
        self.dir = ctx.path("image")
        ctx.run(["sh", IMAGE_SCRIPT, self.dir], timeout=60)
        oci = os.path.join(self.dir, "oci")
        with open(os.path.join(oci, "index.json")) as f:
            desc = json.load(f)["manifests"][0]
        self.manifest_bytes = self.blob(desc["digest"])
        self.manifest = json.loads(self.manifest_bytes)
        self.config_bytes = self.blob(self.manifest["config"]["digest"])
        self.id = sha(self.config_bytes)
        self.layers = [self.blob(l["digest"]) for l in self.manifest["layers"]]

    def blob(self, digest):
        with open(os.path.join(self.dir, "oci", "blobs", "sha256", digest[7:]), "rb") as f:
            return f.read()

    def push(self, reg, repo):
        """Pushes :latest (OCI), :docker (Docker v2s2), :multi (an OCI index
        whose amd64 entry is :latest). Returns the :latest digest."""
        for l in self.layers:
            reg.push_blob(repo, l)
        reg.push_blob(repo, self.config_bytes)
        latest = reg.push_manifest(repo, "latest", OCI_MANIFEST, self.manifest_bytes)
        d = json.loads(self.manifest_bytes)
        d["mediaType"] = DOCKER_MANIFEST
        d["config"]["mediaType"] = DOCKER_CONFIG
        for l in d["layers"]:
            l["mediaType"] = DOCKER_LAYER
        reg.push_manifest(repo, "docker", DOCKER_MANIFEST, json.dumps(d).encode())
        # An arm64 variant (its own config) so the index must be chosen from.
        cfg = json.loads(self.config_bytes)
        cfg["architecture"] = "arm64"
        arm_cfg = json.dumps(cfg).encode()
        reg.push_blob(repo, arm_cfg)
        arm = json.loads(self.manifest_bytes)
        arm["config"]["digest"] = sha(arm_cfg)
        arm["config"]["size"] = len(arm_cfg)
        arm_bytes = json.dumps(arm).encode()
        arm_digest = reg.push_manifest(repo, sha(arm_bytes), OCI_MANIFEST, arm_bytes)
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": arm_digest, "size": len(arm_bytes),
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": OCI_MANIFEST, "digest": latest, "size": len(self.manifest_bytes),
             "platform": {"os": "linux", "architecture": "amd64"}}]}
        reg.push_manifest(repo, "multi", OCI_INDEX, json.dumps(index).encode())
        return latest


class Rt:
    def __init__(self, ctx):
        self.ctx = ctx
        self.state = ctx.path("state")
        self.run_dir = ctx.path("run")

    def __call__(self, *args, check=True):
        argv = [program("tests/runtime/rtctl"), "--state", self.state, "--run", self.run_dir]
        return self.ctx.run(argv + list(args), check=check, timeout=120)

    def pull(self, ref, *registry, check=True):
        return self("pull", ref, *registry, check=check)


def layer_dirs(rt):
    d = os.path.join(rt.state, "images", "layers", "sha256")
    return sorted(n for n in os.listdir(d) if len(n) == 64) if os.path.isdir(d) else []


@test(timeout=180)
def plain_anonymous(ctx):
    requirements()
    reg = Registry(ctx, "registry")
    img = Image(ctx)
    digest = img.push(reg, "busybox")
    rt = Rt(ctx)
    host = "localhost:%d" % reg.port
    conf = ["--registry", host, reg.url]

    got = rt.pull(host + "/busybox:latest", *conf).stdout.strip()
    assert got == img.id, (got, img.id)
    listing = rt("image-list").stdout
    assert (host + "/busybox:latest") in listing and img.id in listing, listing
    assert len(layer_dirs(rt)) == 2, layer_dirs(rt)
    # No temporary layout is left behind.
    assert os.listdir(os.path.join(rt.state, "images", "tmp")) == []

    # By digest, through the Docker manifest, through the index.
    assert rt.pull("%s/busybox@%s" % (host, digest), *conf).stdout.strip() == img.id
    assert rt.pull(host + "/busybox:docker", *conf).stdout.strip() == img.id
    assert rt.pull(host + "/busybox:multi", *conf).stdout.strip() == img.id
    listing = rt("image-list").stdout
    for name in ("busybox:docker", "busybox:multi", "busybox@" + digest):
        assert (host + "/" + name) in listing, listing
    assert len(listing.strip().splitlines()) == 1, listing
    got = rt("image-get", "%s/busybox@%s" % (host, digest)).stdout
    assert got.startswith(img.id) and "cmd=sh" in got, got

    # The pulled image runs (needs runc).
    if shutil.which("runc") is not None:
        log = ctx.path("c1.log")
        try:
            rt("run", "pulled1", host + "/busybox:multi", log, "--",
               "sh", "-c", "cat /etc/layer2; cat /etc/removed")
            out = ctx.wait_for("exit file", lambda: (lambda r: r.returncode == 0 and r.stdout)(
                rt("wait", "pulled1", "5", check=False)), timeout=20)
            assert out.startswith("exit 1 signal 0"), out  # cat of the whiteout fails
            text = open(log).read()
            assert "stdout F from layer 2" in text, text
            assert "can't open '/etc/removed'" in text, text
        finally:
            rt("delete", "pulled1", check=False)
    else:
        ctx.note("runc missing: the pulled image was not run")

    # Not found: a repository, a tag, a digest.
    r = rt.pull(host + "/nope:latest", *conf, check=False)
    assert r.returncode == 4 and "not found" in r.stderr, r
    assert "failed to pull image" in r.stderr, r.stderr
    ctx.note(r.stderr.strip())
    r = rt.pull(host + "/busybox:nope", *conf, check=False)
    assert r.returncode == 4 and "not found" in r.stderr, r
    r = rt.pull("%s/busybox@sha256:%s" % (host, "0" * 64), *conf, check=False)
    assert r.returncode == 4, r
    # A domain without a configured registry is never contacted.
    r = rt.pull("busybox", *conf, check=False)
    assert r.returncode == 4 and "no registry is configured for docker.io" in r.stderr, r
    # Unreachable: nothing listens there.
    closed = free_port()
    r = rt.pull("localhost:%d/busybox" % closed, "--registry", "localhost:%d" % closed,
                "http://127.0.0.1:%d" % closed, check=False)
    assert r.returncode == 6 and "cannot reach registry" in r.stderr, r
    ctx.note(r.stderr.strip())
    # A bad reference.
    r = rt.pull("localhost:5000/Bad", *conf, check=False)
    assert r.returncode == 1 and "invalid reference" in r.stderr, r
    assert reg.proc.alive()


@test(timeout=180)
def tls_basic_auth(ctx):
    requirements()
    reg = Registry(ctx, "registry-tls", tls=True, users={"alice": "s3cret"})
    img = Image(ctx)
    img.push(reg, "team/busybox")
    rt = Rt(ctx)
    host = "127.0.0.1:%d" % reg.port
    ref = host + "/team/busybox:latest"

    r = rt.pull(ref, "--registry", host, reg.url, "--ca", reg.ca, "--user", "alice",
                "--password", "wrong", check=False)
    assert r.returncode == 5 and "unauthorized" in r.stderr, r
    ctx.note(r.stderr.strip())
    r = rt.pull(ref, "--registry", host, reg.url, "--ca", reg.ca, check=False)
    assert r.returncode == 5 and "unauthorized" in r.stderr, r
    ctx.note(r.stderr.strip())
    # The system's CAs do not know the generated certificate.
    r = rt.pull(ref, "--registry", host, reg.url, "--user", "alice", "--password", "s3cret",
                check=False)
    assert r.returncode == 6, r
    ctx.note(r.stderr.strip())
    # Plain HTTP to a TLS port fails too, as unreachable/garbled, not as success.
    r = rt.pull(ref, "--registry", host, "http://" + host, "--user", "alice",
                "--password", "s3cret", check=False)
    assert r.returncode != 0, r
    assert rt("image-list").stdout.strip() == ""

    got = rt.pull(ref, "--registry", host, reg.url, "--ca", reg.ca, "--user", "alice",
                  "--password", "s3cret").stdout.strip()
    assert got == img.id, (got, img.id)
    assert ref in rt("image-list").stdout
    got = rt.pull(host + "/team/busybox:multi", "--registry", host, reg.url, "--ca", reg.ca,
                  "--user", "alice", "--password", "s3cret").stdout.strip()
    assert got == img.id
    r = rt.pull(host + "/team/missing:latest", "--registry", host, reg.url, "--ca", reg.ca,
                "--user", "alice", "--password", "s3cret", check=False)
    assert r.returncode == 4 and "not found" in r.stderr, r


class TokenProxy:
    """A registry front that wants Bearer tokens, and their token service,
    on one port: /token gives a token (checking basic credentials when
    `users` is set); /v2/... without the token answers 401 with a Bearer
    challenge, with it is forwarded to the real registry."""

    def __init__(self, backend, users=None):
        self.backend = backend
        self.users = users
        self.tokens = set()
        self.token_requests = []
        self.blob_gets = []
        self.corrupt = None  # "blob" or "manifest": change a byte on the way
        self.port = free_port()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send(self, code, body=b"", headers=()):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self):
                u = urllib.parse.urlparse(self.path)
                if u.path == "/token":
                    return self.token(urllib.parse.parse_qs(u.query))
                auth = self.headers.get("Authorization", "")
                if not (auth.startswith("Bearer ") and auth[7:] in proxy.tokens):
                    repo = u.path.split("/")[2] if u.path.count("/") > 2 else ""
                    ch = ('Bearer realm="http://127.0.0.1:%d/token",service="capstan-test",'
                          'scope="repository:%s:pull"' % (proxy.port, repo))
                    body = json.dumps({"errors": [{"code": "UNAUTHORIZED",
                                                   "message": "authentication required"}]})
                    return self.send(401, body.encode(), [("WWW-Authenticate", ch),
                                                          ("Content-Type", "application/json")])
                if "/blobs/" in u.path:
                    proxy.blob_gets.append(u.path)
                req = urllib.request.Request(proxy.backend.url + self.path, headers={
                    "Accept": self.headers.get("Accept", "*/*")})
                try:
                    with proxy.backend.opener.open(req, timeout=30) as r:
                        code, hdrs, body = r.status, r.headers, r.read()
                except urllib.error.HTTPError as e:
                    code, hdrs, body = e.code, e.headers, e.read()
                keep = [(k, hdrs[k]) for k in ("Content-Type", "Docker-Content-Digest")
                        if hdrs.get(k)]
                kind = "blob" if "/blobs/" in u.path else "manifest"
                if code == 200 and proxy.corrupt == kind and body:
                    body = body[:-1] + (b" " if body[-1:] != b" " else b"\n")
                self.send(code, body, keep)

            do_HEAD = do_GET

            def token(self, q):
                proxy.token_requests.append((q, self.headers.get("Authorization")))
                if proxy.users is not None:
                    auth = self.headers.get("Authorization", "")
                    ok = False
                    if auth.startswith("Basic "):
                        user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                        ok = proxy.users.get(user) == pw
                    if not ok:
                        return self.send(401, b'{"details":"bad credentials"}',
                                         [("Content-Type", "application/json")])
                tok = "tok-%d" % len(proxy.tokens)
                proxy.tokens.add(tok)
                self.send(200, json.dumps({"token": tok, "expires_in": 300}).encode(),
                          [("Content-Type", "application/json")])

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@test(timeout=180)
def token_auth(ctx):
    requirements()
    reg = Registry(ctx, "registry-behind")
    img = Image(ctx)
    img.push(reg, "busybox")
    rt = Rt(ctx)

    anon = TokenProxy(reg)
    try:
        host = "localhost:%d" % anon.port
        conf = ["--registry", host, "http://127.0.0.1:%d" % anon.port]
        # Bytes changed on the wire are caught by the digest checks.
        for kind in ("blob", "manifest"):
            anon.corrupt = kind
            r = rt.pull(host + "/busybox:latest", *conf, check=False)
            assert r.returncode == 1 and "does not match" in r.stderr, (kind, r)
            ctx.note(r.stderr.strip())
            assert rt("image-list").stdout.strip() == ""
            assert os.listdir(os.path.join(rt.state, "images", "tmp")) == []
        anon.corrupt = None
        anon.token_requests.clear()
        anon.blob_gets.clear()
        got = rt.pull(host + "/busybox:multi", *conf).stdout.strip()
        assert got == img.id, got
        q, auth = anon.token_requests[0]
        assert q["service"] == ["capstan-test"], q
        assert q["scope"] == ["repository:busybox:pull"], q
        assert auth is None, auth  # anonymous: no credentials sent
        assert len(anon.blob_gets) == 3, anon.blob_gets  # config + 2 layers
        # Pulling again fetches the config only: the layers are here.
        anon.blob_gets.clear()
        assert rt.pull(host + "/busybox:latest", *conf).stdout.strip() == img.id
        assert len(anon.blob_gets) == 1, anon.blob_gets
        r = rt.pull(host + "/busybox:gone", *conf, check=False)
        assert r.returncode == 4, r
    finally:
        anon.close()

    rt2 = Rt(ctx)
    rt2.state = ctx.path("state2")
    basic = TokenProxy(reg, users={"bob": "hunter2"})
    try:
        host = "localhost:%d" % basic.port
        url = "http://127.0.0.1:%d" % basic.port
        r = rt2.pull(host + "/busybox:latest", "--registry", host, url, "--user", "bob",
                     "--password", "nope", check=False)
        assert r.returncode == 5 and "unauthorized" in r.stderr, r
        ctx.note(r.stderr.strip())
        r = rt2.pull(host + "/busybox:latest", "--registry", host, url, check=False)
        assert r.returncode == 5, r
        got = rt2.pull(host + "/busybox:latest", "--registry", host, url, "--user", "bob",
                       "--password", "hunter2").stdout.strip()
        assert got == img.id, got
        _, auth = basic.token_requests[-1]
        assert auth == "Basic " + base64.b64encode(b"bob:hunter2").decode(), auth
    finally:
        basic.close()


if __name__ == "__main__":
    main()
