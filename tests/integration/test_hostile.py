"""A server that answers with malformed meta replies: mcwarm ends the connection with a
clear error (exit 76, or 69 when the server goes silent), never an overread or a hang,
and keeps what it finished.

The hostile server is a proxy in front of a real memcached: every byte passes through
unchanged (so the probe and the key listing are real) until a connection that sends `mg`
requests has received 64 KiB of replies; then the proxy damages the reply stream once,
in the way the test asks, or stops forwarding it.
"""
import os
import re
import socket
import threading
import time
import unittest

from mcwtest import ServerTestCase, chunk_files, run_mcwarm

PASS_BYTES = 64 * 1024


class HostileProxy:
    def __init__(self, upstream_port, mode):
        self.upstream_port = upstream_port
        self.mode = mode
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.damaged = threading.Event()
        self.socks = []
        threading.Thread(target=self.accept, daemon=True).start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.socks += [client, server]
            state = {"mg": False, "passed": 0}
            threading.Thread(target=self.up, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self.down, args=(server, client, state),
                             daemon=True).start()

    def up(self, src, dst, state):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if b"mg " in data:
                    state["mg"] = True
                dst.sendall(data)
        except OSError:
            pass

    def damage(self, data):
        if self.mode == "huge_length":
            return re.sub(rb"VA \d+", b"VA 99999999999", data, count=1)
        if self.mode == "missing_crlf":
            return data.replace(b"\r\nVA ", b"  VA ", 1)
        if self.mode == "garbage":
            return data.replace(b"VA ", b"\x00\xff<html>garbage</html>\r\nVA ", 1)
        raise AssertionError(self.mode)

    def down(self, src, dst, state):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if state["mg"] and not self.damaged.is_set():
                    state["passed"] += len(data)
                    if state["passed"] > PASS_BYTES and b"VA " in data:
                        self.damaged.set()
                        if self.mode == "silent":
                            return  # keeps the connection open and says nothing more
                        data = self.damage(data)
                dst.sendall(data)
        except OSError:
            pass

    def close(self):
        self.listener.close()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass


class HostileServerTest(ServerTestCase):
    def dump_through(self, mode, code, message, extra=()):
        mc = self.server(memory_mb=256)
        c = mc.client()
        c.set_many([(b"hostile:%06d" % i, b"v" * (i % 700), 0, i) for i in range(60000)])
        c.close()
        proxy = HostileProxy(mc.port, mode)
        try:
            out = self.tmp.sub("d-" + mode)
            t0 = time.monotonic()
            p = run_mcwarm("dump", "--source", proxy.addr, "--out", out, "--threads", "2",
                           *extra, timeout=120, check=code)
            self.assertTrue(proxy.damaged.is_set(), "the proxy never damaged anything")
            self.assertIn(message, p.stderr)
            self.assertLess(time.monotonic() - t0, 60)
            self.assertFalse(os.path.exists(os.path.join(out, "DONE")))
            self.assertEqual([f for f in os.listdir(out) if f.endswith(".tmp")], [])
            for f in chunk_files(out):  # what got a final name is whole
                run_mcwarm("inspect", f, check=0)
            return p
        finally:
            proxy.close()

    def test_huge_value_length(self):
        self.dump_through("huge_length", 76, "malformed reply from the source")

    def test_missing_line_end(self):
        self.dump_through("missing_crlf", 76, "from the source")

    def test_interleaved_garbage(self):
        self.dump_through("garbage", 76, "from the source")

    def test_server_goes_silent(self):
        self.dump_through("silent", 69, "no reply from the source for 2 s",
                          extra=("--io-timeout", "2"))


if __name__ == "__main__":
    unittest.main()
