"""A fault-injecting, signature-checking HTTP proxy between mcwarm's S3 client and a real
S3 API server (s3rver), for tests/integration/test_s3.py.

What it adds to the server, which checks neither (s3rver 3.7.1 accepts any SigV4
signature of a known key id and ignores x-amz-checksum-* headers):
  - SigV4: with `secret` set, every request's Authorization header is checked by an
    implementation of the signing algorithm written here from AWS's documentation (stdlib
    hmac/hashlib); a mismatch answers 403 SignatureDoesNotMatch as S3 does.
  - x-amz-checksum-crc32c: the body's CRC-32C is computed (chunkcraft.crc32c) and compared;
    a mismatch answers 400 BadDigest.
  - faults, consumed one per matching request from `faults` (a list of dicts):
      {"status": 503, "code": "SlowDown"}    an S3 error answer instead of forwarding
      {"drop": "response"}                   forward, then send the headers and half the
                                              body and close the connection
      {"drop": "request"}                    read half the request body, then close
      {"delay": SECONDS}                     wait before forwarding (a stalled server)
    with optional "method": "PUT" (only requests of that method take the fault).
Every request is recorded in `log` (method, path, query, headers, body size, arrival time
on time.monotonic()) for assertions.
"""
import base64
import hashlib
import hmac
import http.client
import http.server
import socket
import threading
import time
import urllib.parse

from chunkcraft import crc32c


def _uri_encode(s, safe):
    return urllib.parse.quote(s, safe=safe)


def canonical_query(raw):
    pairs = []
    for part in raw.split("&") if raw else []:
        name, _, value = part.partition("=")
        pairs.append((_uri_encode(urllib.parse.unquote(name), "-_.~"),
                      _uri_encode(urllib.parse.unquote(value), "-_.~")))
    return "&".join("%s=%s" % p for p in sorted(pairs))


def sigv4_check(method, raw_path, raw_query, headers, body, secret):
    """None when the request is signed right with secret, else why not."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 Authorization header"
    fields = dict(f.strip().split("=", 1) for f in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    key_id, date, region, service, term = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    payload = headers.get("x-amz-content-sha256")
    if payload is None:
        return "no x-amz-content-sha256 header (S3 requires it)"
    if payload != "UNSIGNED-PAYLOAD" and payload != hashlib.sha256(body).hexdigest():
        return "x-amz-content-sha256 is not the body's hash"
    for need in ("host", "x-amz-date", "x-amz-content-sha256"):
        if need not in signed:
            return "%s is not signed" % need
    canon_headers = "".join("%s:%s\n" % (h, " ".join(headers.get(h, "").split()))
                            for h in signed)
    canon = "\n".join([method, _uri_encode(urllib.parse.unquote(raw_path), "/-_.~"),
                       canonical_query(raw_query), canon_headers, ";".join(signed), payload])
    scope = "/".join([date, region, service, term])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", headers["x-amz-date"], scope,
                         hashlib.sha256(canon.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in (date, region, service, term):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    want = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(want, fields["Signature"]) else "signature differs"


def s3_error(code, message):
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code>"
            "<Message>%s</Message><RequestId>proxy</RequestId></Error>" % (code, message)).encode()


class S3Proxy:
    def __init__(self, upstream_port, secret=None):
        self.upstream_port = upstream_port
        self.secret = secret
        self.faults = []
        self.log = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_any(self):
                proxy.handle(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_any

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # clients that time out or drop mid-answer are what faults are for

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def take_fault(self, method):
        with self.lock:
            for i, f in enumerate(self.faults):
                if f.get("method", method) == method:
                    return self.faults.pop(i)
        return None

    def answer(self, h, status, body, close=False):
        h.send_response(status)
        h.send_header("Content-Type", "application/xml")
        h.send_header("Content-Length", str(len(body)))
        if close:
            h.send_header("Connection", "close")
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def handle(self, h):
        path, _, query = h.path.partition("?")
        headers = {k.lower(): v for k, v in h.headers.items()}
        length = int(headers.get("content-length", "0"))
        fault = self.take_fault(h.command)
        if fault and fault.get("drop") == "request":
            h.rfile.read(length // 2)
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        body = h.rfile.read(length) if length else b""
        with self.lock:
            self.log.append({"method": h.command, "path": path, "query": query,
                             "headers": headers, "body_bytes": len(body),
                             "time": time.monotonic()})
        if fault and "delay" in fault:
            time.sleep(fault["delay"])
        if fault and "status" in fault:
            return self.answer(h, fault["status"], s3_error(fault["code"], "injected"))
        if self.secret is not None:
            why = sigv4_check(h.command, path, query, headers, body, self.secret)
            if why:
                return self.answer(h, 403, s3_error("SignatureDoesNotMatch", why))
        want = headers.get("x-amz-checksum-crc32c")
        if want is not None:
            got = base64.b64encode(crc32c(body).to_bytes(4, "big")).decode()
            if got != want:
                return self.answer(h, 400, s3_error(
                    "BadDigest", "The CRC32C you specified did not match the calculated "
                    "checksum (%s, sent %s)" % (got, want)))
        self.forward(h, path, query, headers, body, fault)

    def forward(self, h, path, query, headers, body, fault):
        up = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        fwd = {k: v for k, v in headers.items() if k not in ("connection", "expect")}
        up.request(h.command, path + ("?" + query if query else ""), body=body, headers=fwd)
        r = up.getresponse()
        data = r.read()
        up.close()
        h.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length",
                                 "keep-alive"):
                h.send_header(k, v)
        if h.command == "HEAD":
            h.send_header("Content-Length", r.getheader("Content-Length", "0"))
        else:
            h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command == "HEAD":
            return
        if fault and fault.get("drop") == "response":
            h.wfile.write(data[:len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        h.wfile.write(data)
