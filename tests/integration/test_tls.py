"""TLS (memcached -Z) and ASCII authentication (memcached -Y) against real memcached.

The certificates are made here with the openssl command line: a CA, a server certificate
for localhost and 127.0.0.1, a client certificate, and a second CA that signed nothing we
use (the "wrong CA"). Items are checked one by one with this suite's own client, wrapped
in Python's ssl module (no code shared with mcwarm's OpenSSL use).

memcached 1.6.18 holds the answers to a pipelined burst when the burst's last TLS record
ends inside a value (the rest sits decrypted in its OpenSSL buffer and nothing wakes the
connection): TlsClient.set_many sends records that end at item ends, as a well-behaved
client must.
"""
import os
import socket
import ssl
import subprocess
import time
import unittest

from mcwtest import (MCWARM, Client, Memcached, ServerTestCase, chunk_files,
                     inspect_records, last_json, run_mcwarm, stop_process)
from test_dump import tricky_items
from test_populate import PopulateTestCase

TLS_RECORD = 16384


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


def make_pki(d):
    """CA, server and client certificates (PEM) under d; a second CA that signed nothing."""
    p = lambda n: os.path.join(d, n)
    with open(p("server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", p(ca + ".key"), "-out", p(ca + ".pem"), "-subj", "/CN=mcwarm " + ca)
    for who in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", p(who + ".key"),
                "-out", p(who + ".csr"), "-subj", "/CN=" + ("localhost" if who == "server"
                                                            else "mcwarm client"))
        ext = ["-extfile", p("server.ext")] if who == "server" else []
        openssl("x509", "-req", "-in", p(who + ".csr"), "-CA", p("ca.pem"), "-CAkey",
                p("ca.key"), "-CAcreateserial", "-days", "2", "-out", p(who + ".pem"), *ext)
    return p


class TlsClient(Client):
    """The suite's meta-protocol client over TLS (and optionally authenticated)."""

    def __init__(self, port, ca, auth=None, cert=None):
        ctx = ssl.create_default_context(cafile=ca)
        if cert:
            ctx.load_cert_chain(*cert)
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.buf = b""
        if auth:
            self.authenticate(auth)

    def authenticate(self, auth):
        self.sock.sendall(b"set a 0 0 %d\r\n%s\r\n" % (len(auth), auth))
        line = self._line()
        if line != b"STORED":
            raise RuntimeError("authentication refused: %r" % line)

    def set_many(self, items):
        """Pipelined quiet sets in TLS records that end at item ends (see the top)."""
        for start in range(0, len(items), 500):
            reqs = [self.ms_request(k, v, ttl, fl) for k, v, ttl, fl in
                    items[start:start + 500]] + [b"mn\r\n"]
            record = b""
            for r in reqs:
                if record and len(record) + len(r) > TLS_RECORD:
                    self.sock.sendall(record)
                    record = b""
                record += r
            self.sock.sendall(record)
            line = self._line()
            if line != b"MN":
                raise RuntimeError("set failed: %r" % line)


class PlainAuthClient(Client):
    def __init__(self, port, auth):
        super().__init__(port)
        TlsClient.authenticate(self, auth)


class TlsTestCase(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if subprocess.run(["which", "openssl"], capture_output=True).returncode != 0:
            raise unittest.SkipTest("the openssl command is not installed")
        import tempfile
        cls.pki_dir = tempfile.mkdtemp(prefix="mcw-pki-")
        cls.pki = staticmethod(make_pki(cls.pki_dir))

    @classmethod
    def tearDownClass(cls):
        import shutil
        shutil.rmtree(cls.pki_dir, ignore_errors=True)

    def auth_file(self, name, text, mode=0o600):
        path = self.tmp.sub(name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def tls_server(self, auth=None, client_certs=False, **kw):
        opts = "ssl_chain_cert=%s,ssl_key=%s" % (self.pki("server.pem"), self.pki("server.key"))
        if client_certs:
            opts += ",ssl_ca_cert=%s,ssl_verify_mode=2" % self.pki("ca.pem")
        extra = ["-Z", "-o", opts]
        if auth:
            extra += ["-Y", auth]
        return self.server(extra=extra, **kw)

    def tls_client(self, srv, auth=None, cert=None):
        c = TlsClient(srv.port, self.pki("ca.pem"), auth, cert)
        srv.clients.append(c)
        return c

    def tls_args(self, prefix=""):
        return ["--%stls" % prefix, "--%stls-ca" % prefix, self.pki("ca.pem")]

    def assert_same(self, client, items):
        for key, (value, flags, _) in items.items():
            got = client.get(key)
            self.assertIsNotNone(got, "key %r missing" % key)
            self.assertEqual((got[0], got[1]), (value, flags), "item %r" % key)


class TlsRoundTripTest(TlsTestCase):
    def test_dump_from_tls_source_populate_verify_item_by_item(self):
        creds = self.auth_file("auth", "mcw:s3cret\n")
        src = self.tls_server(auth=creds)
        dst = self.server()
        items = tricky_items(self.tls_client(src, auth=b"mcw s3cret"))
        out = self.tmp.sub("dump")
        p = run_mcwarm("dump", "--source", src.addr, "--out", out, *self.tls_args(),
                       "--auth-file", creds, "--json", "-q", check=0)
        self.assertIn("in user space", p.stderr)
        self.assertIn("kernel TLS", p.stderr)
        records = inspect_records(chunk_files(out))
        self.assertEqual(sorted(r["key"] for r in records), sorted(items))
        run_mcwarm("populate", "--dest", dst.addr, "--from", out, "--state",
                   self.tmp.sub("state"), "-q", check=0)
        self.assert_same(dst.client(), items)
        # verify with TLS on the source side only, then on the destination side only
        v = last_json(run_mcwarm("verify", "--source", src.addr, "--dest", dst.addr,
                                 *self.tls_args(), "--auth-file", creds, "--json", "-q",
                                 check=0).stdout)
        self.assertEqual(v["equal"], len(items))
        v = last_json(run_mcwarm("verify", "--source", dst.addr, "--dest", src.addr,
                                 *self.tls_args("dest-"), "--dest-auth-file", creds, "--json",
                                 "-q", check=0).stdout)
        self.assertEqual(v["equal"], len(items))

    def test_large_pipelined_batches_and_big_values_over_tls(self):
        """Many keys (full 512-key mg batches, several jobs) and values past a TLS record
        and past the ciphertext receive area: dump and verify over TLS move every byte."""
        src = self.tls_server(memory_mb=512)
        c = self.tls_client(src)
        items = {}
        for i in range(30000):
            size = 300000 if i % 1000 == 0 else (70000 if i % 97 == 0 else 100 + i % 900)
            items[b"big:%05d" % i] = (bytes([65 + i % 26]) * size, i, 0)
        c.set_many([(k, v, 0, f) for k, (v, f, _) in items.items()])
        out = self.tmp.sub("dump")
        s = last_json(run_mcwarm("dump", "--source", src.addr, "--out", out, "-t", "2",
                                 *self.tls_args(), "--json", "-q", check=0).stdout)
        self.assertEqual(s["items"], len(items))
        records = inspect_records(chunk_files(out))
        got = {r["key"]: (r["value"], r["flags"]) for r in records}
        self.assertEqual(len(got), len(items))
        for k, (v, f, _) in items.items():
            self.assertEqual(got[k], (v, f), "item %r" % k)
        dst = self.server(memory_mb=512)
        run_mcwarm("populate", "--dest", dst.addr, "--from", out, "--state",
                   self.tmp.sub("state"), "-q", check=0)
        v = last_json(run_mcwarm("verify", "--source", src.addr, "--dest", dst.addr, "-t", "2",
                                 *self.tls_args(), "--json", "-q", check=0).stdout)
        self.assertEqual(v["equal"], len(items))

    def test_stream_from_tls_source_into_plain_destination(self):
        src = self.tls_server()
        dst = self.server()
        items = tricky_items(self.tls_client(src))
        run_mcwarm("stream", "--source", src.addr, "--dest", dst.addr, *self.tls_args(), "-q",
                   check=0)
        self.assert_same(dst.client(), items)

    def test_client_certificate(self):
        src = self.tls_server(client_certs=True)
        c = self.tls_client(src, cert=(self.pki("client.pem"), self.pki("client.key")))
        c.set_many([(b"k%d" % i, b"v%d" % i, 0, i) for i in range(100)])
        out = self.tmp.sub("dump")
        p = run_mcwarm("dump", "--source", src.addr, "--out", out, *self.tls_args(), "-q",
                       check=77)
        self.assertIn("refused our client certificate", p.stderr)
        self.assertIn("--tls-cert", p.stderr)
        s = last_json(run_mcwarm("dump", "--source", src.addr, "--out", out, *self.tls_args(),
                                 "--tls-cert", self.pki("client.pem"), "--tls-key",
                                 self.pki("client.key"), "--json", "-q", check=0).stdout)
        self.assertEqual(s["items"], 100)


class TlsRefusalTest(TlsTestCase):
    def dump(self, addr, *args, check):
        return run_mcwarm("dump", "--source", addr, "--out", self.tmp.sub("out"), "-q", *args,
                          timeout=60, check=check)

    def test_wrong_ca_is_refused_with_the_fix(self):
        src = self.tls_server()
        t0 = time.time()
        p = self.dump(src.addr, "--tls", "--tls-ca", self.pki("other-ca.pem"), check=77)
        self.assertIn("failed verification", p.stderr)
        self.assertIn("--tls-ca", p.stderr)
        self.assertLess(time.time() - t0, 20)
        # no CA at all: the system store does not know our test CA either
        p = self.dump(src.addr, "--tls", check=77)
        self.assertIn("failed verification", p.stderr)

    def test_wrong_server_name_is_refused(self):
        src = self.tls_server()
        p = self.dump(src.addr, *self.tls_args(), "--tls-server-name", "cache.example.com",
                      check=77)
        self.assertIn("does not name 'cache.example.com'", p.stderr)
        self.assertIn("--tls-server-name", p.stderr)
        # the name the certificate carries is accepted, with an IP address to connect to
        self.dump(src.addr, *self.tls_args(), "--tls-server-name", "localhost", check=0)
        # and a host name is checked as such: localhost is in the certificate
        self.dump("localhost:%d" % src.port, *self.tls_args(), check=0)

    def test_plain_client_to_tls_server_and_tls_client_to_plain_server(self):
        tls_srv, plain = self.tls_server(), self.server()
        t0 = time.time()
        p = self.dump(tls_srv.addr, check=69)
        self.assertIn("add --tls", p.stderr)
        p = self.dump(plain.addr, *self.tls_args(), check=69)
        self.assertIn("does not speak TLS", p.stderr)
        p = run_mcwarm("verify", "--source", plain.addr, "--dest", tls_srv.addr, "-q",
                       timeout=60, check=69)
        self.assertIn("add --tls (--dest-tls", p.stderr)
        self.assertLess(time.time() - t0, 30, "a refusal must not wait for a timeout")

    def test_wrong_password_missing_password_and_file_checks(self):
        creds = self.auth_file("auth", "mcw:s3cret\n")
        src = self.server(extra=["-Y", creds])
        c = PlainAuthClient(src.port, b"mcw s3cret")
        c.set(b"k", b"v")
        c.close()
        bad = self.auth_file("bad", "mcw:wrong\n")
        p = self.dump(src.addr, "--auth-file", bad, check=77)
        self.assertIn("refused the credentials of --auth-file", p.stderr)
        p = self.dump(src.addr, check=77)
        self.assertIn("requires authentication", p.stderr)
        self.assertIn("--auth-file", p.stderr)
        loose = self.auth_file("loose", "mcw s3cret\n", mode=0o644)
        p = self.dump(src.addr, "--auth-file", loose, check=0)
        self.assertIn("can be read by other users", p.stderr)
        junk = self.auth_file("junk", "justonetoken\n")
        p = self.dump(src.addr, "--auth-file", junk, check=64)
        self.assertIn("user:password", p.stderr)
        # populate authenticates to its destination with --auth-file or --dest-auth-file
        dst = self.server(extra=["-Y", creds])
        out = self.tmp.sub("out")
        for opt in ("--auth-file", "--dest-auth-file"):
            run_mcwarm("populate", "--dest", dst.addr, "--from", out, "--state",
                       self.tmp.sub("state" + opt), opt, creds, "-q", check=0)
        c = PlainAuthClient(dst.port, b"mcw s3cret")
        self.assertEqual(c.get(b"k")[0], b"v")
        c.close()

    def test_options_for_a_missing_side_are_usage_errors(self):
        p = run_mcwarm("dump", "--source", "127.0.0.1:1", "--out", self.tmp.sub("o"),
                       "--dest-tls", check=64)
        self.assertIn("no destination", p.stderr)
        p = run_mcwarm("dump", "--source", "127.0.0.1:1", "--out", self.tmp.sub("o"),
                       "--tls-ca", "x.pem", check=64)
        self.assertIn("need --tls", p.stderr)


class RecordRecorder:
    """A TLS-terminating proxy in front of a plain memcached that keeps the plaintext of
    every TLS record its clients send, record by record (OpenSSL's read hands over one
    record at most), and forwards it."""

    def __init__(self, pki, backend_port):
        import threading
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki("server.pem"), pki("server.key"))
        self.backend_port = backend_port
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.records = []  # per connection, its records' plaintext
        self.stopping = False
        self.threads = [threading.Thread(target=self.accept_loop, daemon=True)]
        self.threads[0].start()

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(10)
        self.lsock.close()

    def accept_loop(self):
        import threading
        while not self.stopping:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            t = threading.Thread(target=self.serve, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def serve(self, c):
        import select
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = self.ctx.wrap_bio(inc, out, server_side=True)
        recs = []
        self.records.append(recs)
        b = socket.create_connection(("127.0.0.1", self.backend_port))
        try:
            while True:  # the handshake
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    c.sendall(out.read())
                    data = c.recv(65536)
                    if not data:
                        return
                    inc.write(data)
            while not self.stopping:
                while True:  # every whole record received so far, one by one
                    try:
                        pt = obj.read(1 << 20)
                    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                        break
                    if not pt:
                        break
                    recs.append(pt)
                    b.sendall(pt)
                c.sendall(out.read())
                ready, _, _ = select.select([c, b], [], [], 0.2)
                if c in ready:
                    data = c.recv(1 << 20)
                    if not data:
                        return
                    inc.write(data)
                if b in ready:
                    data = b.recv(1 << 20)
                    if not data:
                        return
                    obj.write(data)
                    c.sendall(out.read())
        except (OSError, ssl.SSLError):
            return
        finally:
            c.close()
            b.close()


def record_ends_inside_values(records):
    """(record ends inside a value of at most one record, record ends inside larger
    values) of one connection's ms stream: memcached 1.6.18 stalls on the first kind."""
    data = b"".join(records)
    item_end, large = set(), []
    pos = 0
    while pos < len(data):
        nl = data.index(b"\r\n", pos)
        words = data[pos:nl].split()
        end = nl + 2 + (int(words[2]) + 2 if words[0] == b"ms" else 0)
        item_end.add(end)
        if end - pos > TLS_RECORD:
            large.append((pos, end))
        pos = end
    bad, inside_large, at = [], 0, 0
    for r in records:
        at += len(r)
        if at in item_end:
            continue
        if any(s < at < e for s, e in large):
            inside_large += 1
        else:
            bad.append(at)
    return bad, inside_large


class TlsDestinationTest(TlsTestCase):
    """populate and stream write through their ms pipe into a TLS (+ -Y) destination."""
    assert_holds = PopulateTestCase.assert_holds
    CREDS = "mcw:s3cret\n"

    def dataset(self, client):
        """The tricky dataset, plus values past one TLS record and past one sealed burst
        (256 KiB): records that end inside a value, bursts that end inside a value. They
        come first: assert_holds reads the TTLs against one clock reading at its start."""
        items = {}
        for i, size in enumerate((TLS_RECORD - 1, TLS_RECORD + 1, 100 * 1024, 300 * 1024,
                                  700 * 1024)):
            k, v, t0 = b"large:%d" % i, os.urandom(size), time.time()
            self.assertEqual(client.set(k, v, 3600 if i % 2 else 0, 1000 + i), b"HD")
            items[k] = (v, 1000 + i, t0 + 3600 if i % 2 else 0)
        items.update(tricky_items(client))
        return items

    def dest_args(self, creds, prefix=""):
        return self.tls_args(prefix) + ["--%sauth-file" % prefix, creds]

    def test_populate_plain_dump_into_tls_and_auth_destination_item_by_item(self):
        creds = self.auth_file("auth", self.CREDS)
        src, dst = self.server(), self.tls_server(auth=creds)
        items = self.dataset(src.client())
        out = self.tmp.sub("dump")
        run_mcwarm("dump", "--source", src.addr, "--out", out, "-q", check=0)
        p = run_mcwarm("populate", "--dest", dst.addr, "--from", out, "--state",
                       self.tmp.sub("state"), *self.dest_args(creds), "--json", "-q", check=0)
        summary = last_json(p.stdout)
        self.assertEqual(summary["items_sent"], len(items))
        self.assertEqual(summary["already_present"], 0)
        self.assert_holds(self.tls_client(dst, auth=b"mcw s3cret"), items)
        v = last_json(run_mcwarm("verify", "--source", src.addr, "--dest", dst.addr,
                                 *self.dest_args(creds, "dest-"), "--json", "-q",
                                 check=0).stdout)
        self.assertEqual(v["equal"], len(items))

    def test_stream_plain_source_into_tls_and_auth_destination_item_by_item(self):
        creds = self.auth_file("auth", self.CREDS)
        src, dst = self.server(), self.tls_server(auth=creds)
        items = self.dataset(src.client())
        p = run_mcwarm("stream", "--source", src.addr, "--dest", dst.addr, "-t", "2",
                       *self.dest_args(creds, "dest-"), "--json", "-q", check=0)
        self.assertEqual(last_json(p.stdout)["items_sent"], len(items))
        self.assert_holds(self.tls_client(dst, auth=b"mcw s3cret"), items)

    def test_populate_reconnects_with_a_new_handshake_after_a_tls_destination_restart(self):
        src, dst = self.server(memory_mb=512), self.tls_server(memory_mb=512)
        n = 60000
        src.client().set_many([(b"r%06d" % i, b"%d" % i * 800, 0, i) for i in range(n)])
        out = self.tmp.sub("dump")
        run_mcwarm("dump", "--source", src.addr, "--out", out, "--chunk-size", "4M", "-q",
                   check=0)
        state = self.tmp.sub("state")
        pop = subprocess.Popen([MCWARM, "populate", "--dest", dst.addr, "--from", out,
                                "--state", state, "--json", "-q", "--threads", "1",
                                "--max-ops", "40000", *self.tls_args()],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            journal = os.path.join(state, "journal")
            deadline = time.time() + 60
            while time.time() < deadline:
                if os.path.exists(journal):
                    with open(journal) as f:
                        if "\ndone " in f.read():
                            break
                time.sleep(0.01)
            self.assertIsNone(pop.poll(), "populate ended before the restart")
            dst.restart()  # an empty TLS server on the same port
            out_text, err = pop.communicate(timeout=120)
        finally:
            stop_process(pop)
        self.assertEqual(pop.returncode, 0, err)
        self.assertGreaterEqual(last_json(out_text)["reconnects"], 1)
        v = last_json(run_mcwarm("verify", "--source", src.addr, "--dest", dst.addr,
                                 *self.tls_args("dest-"), "--min-ratio", "1", "--json", "-q",
                                 check=0).stdout)
        self.assertEqual(v["equal"], n)

    def test_every_tls_record_ends_at_an_item_end_or_inside_a_large_value(self):
        """The ms pipe's records, seen through a TLS-terminating proxy: none ends inside a
        value that fits a record (memcached 1.6.18 would stall on it), across bursts of
        many small items, values of 10-16 KiB that straddle where 16 KiB records would
        fall, and values larger than a record and than a burst."""
        src, dst = self.server(memory_mb=256), self.server(memory_mb=256)
        items = [(b"r%06d" % i, os.urandom(100 + (i * 7919) % 3000), 0, i)
                 for i in range(6000)]
        items += [(b"mid%04d" % i, os.urandom(10000 + i * 7), 0, i) for i in range(300)]
        items += [(b"big%d" % i, os.urandom(size), 0, i)
                  for i, size in enumerate((TLS_RECORD + 1, 100 * 1024, 300 * 1024,
                                            900 * 1024))]
        src.client().set_many(items)
        out = self.tmp.sub("dump")
        run_mcwarm("dump", "--source", src.addr, "--out", out, "-q", check=0)
        proxy = RecordRecorder(self.pki, dst.port)
        try:
            run_mcwarm("populate", "--dest", proxy.addr, "--from", out, "--state",
                       self.tmp.sub("state"), "--threads", "2", *self.tls_args(), "-q",
                       check=0)
        finally:
            proxy.stop()
        self.assertEqual(int(dst.client().stats()["curr_items"]), len(items))
        ms_conns = [r for r in proxy.records if b"".join(r[:50]).find(b"ms ") >= 0]
        self.assertTrue(ms_conns, "no connection carried ms requests")
        inside_large = 0
        for recs in ms_conns:
            bad, n = record_ends_inside_values(recs)
            self.assertEqual(bad, [], "records end inside small values at these offsets")
            inside_large += n
        self.assertGreater(inside_large, 0, "no value larger than a record was sent")

    def test_wrong_ca_and_wrong_password_on_the_destination_are_refused(self):
        creds = self.auth_file("auth", self.CREDS)
        bad = self.auth_file("bad", "mcw:wrong\n")
        src, dst = self.server(), self.tls_server(auth=creds)
        src.client().set(b"k", b"v")
        out = self.tmp.sub("dump")
        run_mcwarm("dump", "--source", src.addr, "--out", out, "-q", check=0)
        runs = {
            "populate": lambda *a: run_mcwarm("populate", "--dest", dst.addr, "--from", out,
                                              "--state", self.tmp.sub("s"), "-q", *a,
                                              timeout=60, check=77),
            "stream": lambda *a: run_mcwarm("stream", "--source", src.addr, "--dest",
                                            dst.addr, "-q", *a, timeout=60, check=77),
        }
        for cmd, prefix in (("populate", ""), ("stream", "dest-")):
            t0 = time.time()
            p = runs[cmd]("--%stls" % prefix, "--%stls-ca" % prefix, self.pki("other-ca.pem"),
                          "--%sauth-file" % prefix, creds)
            self.assertIn("failed verification", p.stderr, cmd)
            self.assertIn("--%stls-ca" % prefix, p.stderr, cmd)
            p = runs[cmd](*self.dest_args(bad, prefix))
            self.assertIn("refused the credentials of --%sauth-file" % prefix, p.stderr, cmd)
            self.assertLess(time.time() - t0, 30, "a refusal must not wait for a timeout")
        c = self.tls_client(dst, auth=b"mcw s3cret")
        self.assertIsNone(c.get(b"k"), "nothing was written through a refused connection")


class CtlTlsTest(__import__("test_ctl").CtlTestCase, TlsTestCase):
    """`mcwarm-ctl warm` hands each side's TLS and authentication options to the dump,
    populate and verify it runs (and to its own checks of both servers)."""

    def plan(self, src, dst, creds):
        return ["--tls", "--tls-ca", self.pki("ca.pem"), "--dest-tls", "--dest-tls-ca",
                self.pki("ca.pem"), "--dest-auth-file", creds, "--threads", "1",
                "--min-ratio", "1", "--json"]

    def assert_no_secret(self, work):
        for root, _, files in os.walk(work):
            for name in files:
                path = os.path.join(root, name)
                if os.path.isfile(path) and not path.endswith(".img"):
                    with open(path, "rb") as f:
                        self.assertNotIn(b"s3cret", f.read(), path)

    def test_warm_tls_source_into_tls_and_auth_destination_verifies_100_percent(self):
        creds = self.auth_file("auth", "mcw:s3cret\n")
        src, dst = self.tls_server(memory_mb=256), self.tls_server(auth=creds, memory_mb=256)
        items = [(b"w%06d" % i, os.urandom(100 + i % 3000), 3600 * (i % 2), i)
                 for i in range(20000)]
        items.append((b"w-large", os.urandom(300 * 1024), 0, 7))
        self.tls_client(src).set_many(items)
        work = self.work()
        p = self.ctl("warm", "--source", src.addr, "--dest", dst.addr, "--work", work,
                     *self.plan(src, dst, creds))
        report = last_json(p.stdout)
        self.assertEqual((report["phase"], report["verify_ratio"]), ("done", 1.0), p.stderr)
        self.assertEqual(report["items_sent"], len(items))
        c = self.tls_client(dst, auth=b"mcw s3cret")
        for key, value, _, flags in items[::41] + items[-1:]:
            self.assertEqual(c.get(key)[:2], (value, flags), key)
        self.assert_clean(work)
        self.assert_no_secret(work)
        # each side's own options: the destination's CA for the source is refused (77)
        # before anything is created
        p = self.ctl("warm", "--source", src.addr, "--dest", dst.addr, "--work",
                     self.work("refused"), "--tls", "--tls-ca", self.pki("other-ca.pem"),
                     "--dest-tls", "--dest-tls-ca", self.pki("ca.pem"), "--dest-auth-file",
                     creds, check=77)
        self.assertIn("failed verification", p.stderr)
        self.assertIn("--tls-ca", p.stderr)
        p = self.ctl("warm", "--source", src.addr, "--dest", dst.addr, "--work",
                     self.work("no-auth"), "--tls", "--tls-ca", self.pki("ca.pem"),
                     "--dest-tls", "--dest-tls-ca", self.pki("ca.pem"), check=77)
        self.assertIn("--dest-auth-file", p.stderr)

    def test_halves_pass_each_side_its_options(self):
        creds = self.auth_file("auth", "mcw:s3cret\n")
        src, dst = self.tls_server(memory_mb=256), self.tls_server(auth=creds, memory_mb=256)
        items = [(b"h%06d" % i, os.urandom(100 + i % 2000), 0, i) for i in range(10000)]
        self.tls_client(src).set_many(items)
        shared = self.work("shared")
        image = os.path.join(shared, "volume.img")
        rw_work, ro_work = self.work("source-host"), self.work("populator-host")
        common = ["--backend", "loop", "--volume", image, "--threads", "1", "--json"]
        ro = subprocess.Popen([__import__("test_ctl").CTL, "warm", "--side", "ro",
                               "--source", src.addr, "--dest", dst.addr, "--work", ro_work,
                               "--cycle-ms", "50", "--min-ratio", "1", "--wait-volume", "60",
                               "--tls", "--tls-ca", self.pki("ca.pem"), "--dest-tls",
                               "--dest-tls-ca", self.pki("ca.pem"), "--dest-auth-file", creds]
                              + common, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
        try:
            rw = self.ctl("warm", "--side", "rw", "--source", src.addr, "--work", rw_work,
                          "--size", "512M", "--tls", "--tls-ca", self.pki("ca.pem"), *common)
            self.assertEqual(last_json(rw.stdout)["dump_items"], len(items))
            out, err = ro.communicate(timeout=600)
        finally:
            stop_process(ro)
        self.assertEqual(ro.returncode, 0, err[-4000:])
        report = last_json(out)
        self.assertEqual((report["phase"], report["verify_ratio"]), ("done", 1.0))
        self.assertEqual(report["items_sent"], len(items))
        c = self.tls_client(dst, auth=b"mcw s3cret")
        for key, value, _, flags in items[::37]:
            self.assertEqual(c.get(key)[:2], (value, flags), key)
        self.ctl("release", "--work", rw_work)
        for w in (rw_work, ro_work):
            self.assert_clean(w)
            self.assert_no_secret(w)


class WatchTlsTest(TlsTestCase):
    """`mcwarm watch`: the old cluster's TLS and authentication as a source's (--tls...,
    --auth-file), the new cluster's as a destination's (--dest-tls..., --dest-auth-file)."""

    def test_watch_tls_old_cluster_and_tls_auth_new_cluster(self):
        from test_watch import addrs, watch
        creds = self.auth_file("auth", "mcw:s3cret\n")
        bad = self.auth_file("bad", "mcw:wrong\n")
        old = [self.tls_server() for _ in range(2)]
        new = [self.tls_server(auth=creds)]
        for i, s in enumerate(old):
            self.tls_client(s).set_many([(b"o%d-%d" % (i, k), b"v", 0, 0) for k in range(300)])
        c = self.tls_client(new[0], auth=b"mcw s3cret")
        c.set_many([(b"n%d" % k, b"v", 0, 0) for k in range(120)])
        for k in range(50):  # hits, then misses, on the new cluster
            self.assertIsNotNone(c.get(b"n%d" % k))
            self.assertIsNone(c.get(b"absent%d" % k))
        sec = self.tls_args() + self.tls_args("dest-") + ["--dest-auth-file", creds]
        p, lines = watch("--old", addrs(old), "--new", addrs(new), "--interval", 1,
                         "--duration", 2, *sec)
        self.assertEqual(p.returncode, 0, p.stderr)
        clusters = {l["name"]: l for l in lines if l["kind"] == "cluster"}
        self.assertEqual(clusters["old"]["items"], 600)
        self.assertEqual(clusters["new"]["items"], 120)
        self.assertEqual({l["name"] for l in lines if l["kind"] == "node"},
                         {s.addr for s in old + new})
        # each cluster's own refusal, at the first sample: exit 77 and the option to fix
        p, _ = watch("--old", addrs(old), "--new", addrs(new), "--duration", 2,
                     *self.tls_args(), *self.tls_args("dest-"), "--dest-auth-file", bad)
        self.assertEqual(p.returncode, 77, p.stderr)
        self.assertIn("--dest-auth-file", p.stderr)
        p, _ = watch("--old", addrs(old), "--new", addrs(new), "--duration", 2, "--tls",
                     "--tls-ca", self.pki("other-ca.pem"), *self.tls_args("dest-"),
                     "--dest-auth-file", creds)
        self.assertEqual(p.returncode, 77, p.stderr)
        self.assertIn("failed verification", p.stderr)
        # plain watch of a TLS cluster: refused at once, saying to add --tls
        p, _ = watch("--old", addrs(old), "--duration", 2)
        self.assertEqual(p.returncode, 69, p.stderr)
        self.assertIn("add --tls", p.stderr)


@unittest.skipUnless(__import__("test_faults").FAULTS,
                     "this build has no io_uring fault injection: configure with "
                     "-DMCW_FAULT_INJECTION=ON (scripts/test.sh's asan configuration has it)")
class TlsFaultTest(TlsTestCase):
    """Network faults under populate's TLS ms pipe: resets and short sends of sealed
    bursts, EAGAIN and short receives of ciphertext; every run ends complete."""

    def test_network_faults_into_a_tls_destination_reconnect_and_resend(self):
        from test_faults import run_faulty
        src = self.server(memory_mb=256)
        items = [(b"f%06d" % i, os.urandom(50 + i % 5000), 0, i) for i in range(20000)]
        items += [(b"f-large-%d" % i, os.urandom(300 * 1024), 0, i) for i in range(4)]
        src.client().set_many(items)
        out = self.tmp.sub("dump")
        run_mcwarm("dump", "--source", src.addr, "--out", out, "-q", check=0)
        for plan in ("send:nth=3:res=-104", "send:nth=5:short", "recv:p=0.2:res=-11",
                     "recv:p=0.3:short"):
            with self.subTest(plan=plan):
                dst = self.tls_server(memory_mb=256)
                p = run_faulty(plan, "populate", "--dest", dst.addr, "--from", out, "--state",
                               self.tmp.sub("state-" + plan.replace(":", "_")),
                               *self.tls_args(), "--json", "-q", check=0)
                summary = last_json(p.stdout)
                self.assertTrue(summary["ok"])
                if plan.startswith("send"):  # the lost connection was made again over TLS
                    self.assertGreaterEqual(summary["reconnects"], 1, p.stderr)
                c = self.tls_client(dst)
                for key, value, _, flags in items[::53] + items[-4:]:
                    self.assertEqual(c.get(key)[:2], (value, flags), key)
                self.assertEqual(int(c.stats()["curr_items"]), len(items))


if __name__ == "__main__":
    unittest.main()
