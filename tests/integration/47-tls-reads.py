#!/usr/bin/env python3
"""HTTP/2 requests whose TLS record fills the server's read buffer exactly.

libuv reports "nothing more to read" as a read of 0 bytes after a read
that filled the buffer, and libh2o 2.2.5's TLS read callback takes any
read that is not positive for an error: an HTTP/2 connection was closed
without an answer whenever the client's records added up to 8,192 bytes
(a burst of five 1,634-byte pod POSTs did, now and then). The server
filters those reads out (http/server.c). HTTP/1.1 is not affected: h2o
stops reading once it has a whole request.

The test speaks just enough HTTP/2 (stdlib only): GETs of /healthz with a
padding header, sent as one TLS 1.3 record of an exact size once the
connection is idle."""

import socket
import ssl
import struct
import time

from capstantest import test, main
from cluster import Cluster

# TLS 1.3 record: 5-byte header, the content, 1 byte of inner content
# type and a 16-byte AEAD tag (AES-GCM and ChaCha20-Poly1305 alike).
RECORD_OVERHEAD = 22
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, WINDOW = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(ftype, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def hpack_str(s):
    assert len(s) < 127
    return bytes([len(s)]) + s


def get_healthz(stream, pad):
    # :method GET (static 2), :scheme https (7), :path and :authority as
    # literals with an indexed name (4, 1), x-pad as a literal with a
    # literal name; no Huffman coding, no dynamic table.
    block = b"\x82\x87" + b"\x04" + hpack_str(b"/healthz") + \
        b"\x01" + hpack_str(b"127.0.0.1")
    if pad >= 0:
        value = b"p" * pad
        block += b"\x00" + hpack_str(b"x-pad")
        block += (bytes([127, len(value) - 127]) if len(value) >= 127
                  else bytes([len(value)])) + value
    return frame(HEADERS, END_STREAM | END_HEADERS, stream, block)


def burst(first_stream, wire_len):
    """GETs on streams first_stream, +2, ... whose frames make exactly
    @wire_len - RECORD_OVERHEAD bytes, and the number of streams."""
    plain = wire_len - RECORD_OVERHEAD
    out, stream = b"", first_stream
    while True:
        left = plain - len(out)
        bare = len(get_healthz(stream, -1))
        if left <= bare + 3 + 127 + 126:  # the last one, padded to fit
            for pad in range(0, 254):
                f = get_healthz(stream, pad)
                if len(f) == left:
                    return out + f, (stream - first_stream) // 2 + 1
            raise AssertionError("cannot pad %d bytes" % left)
        out += get_healthz(stream, 200)
        stream += 2


class H2:
    def __init__(self, port, ctx):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        assert self.s.version() == "TLSv1.3", self.s.version()
        assert self.s.selected_alpn_protocol() == "h2"
        self.buf = b""
        self.s.sendall(PREFACE + frame(SETTINGS, 0, 0, b""))

    def read_frame(self):
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        n = int.from_bytes(self.buf[:3], "big")
        f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7fffffff,
             self.buf[9:9 + n])
        self.buf = self.buf[9 + n:]
        return f

    def answers(self, streams):
        """Reads until every stream in @streams has ended; False if the
        server closed the connection first."""
        left = set(streams)
        while left:
            f = self.read_frame()
            if f is None:
                return False
            ftype, flags, stream, payload = f
            if ftype == SETTINGS and not flags & ACK:
                self.s.sendall(frame(SETTINGS, ACK, 0, b""))
            elif ftype == PING and not flags & ACK:
                self.s.sendall(frame(PING, ACK, 0, payload))
            elif ftype == GOAWAY:
                return False
            elif ftype in (HEADERS, DATA) and flags & END_STREAM:
                left.discard(stream)
            elif ftype == RST:
                raise AssertionError("stream %d reset" % stream)
        return True


@test(timeout=120)
def records_filling_the_read_buffer(ctx):
    c = Cluster(ctx).start(1)
    m = c.masters[0]
    tls = m.https_context()
    tls.minimum_version = ssl.TLSVersion.TLSv1_3
    tls.set_alpn_protocols(["h2"])
    for wire_len in (8192, 16384, 8191, 8193):
        for attempt in range(3):
            h = H2(m.https_port, tls)
            try:
                stream = 1
                h.s.sendall(get_healthz(stream, 0))
                assert h.answers([stream]), "no answer to a plain GET"
                stream += 2
                for rnd in range(4):
                    data, n = burst(stream, wire_len)
                    assert len(data) + RECORD_OVERHEAD == wire_len
                    time.sleep(0.02)  # the server has read everything before
                    h.s.sendall(data)  # one SSL_write: one record
                    ok = h.answers(range(stream, stream + 2 * n, 2))
                    assert ok, ("%d-byte record (%d GETs), attempt %d round %d: "
                                "connection closed without an answer" % (
                                    wire_len, n, attempt, rnd))
                    stream += 2 * n
            finally:
                h.s.close()


if __name__ == "__main__":
    main()
