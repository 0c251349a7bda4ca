"""Helpers for mcwarm's integration tests: real memcached processes on free loopback
ports, a small independent meta-protocol client, and runners for the mcwarm binary.

Nothing here is shared with the C code under test: keys, base64 and the protocol are
handled with Python's standard library, so a bug in mcwarm's codecs cannot hide itself.
"""
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse

MCWARM = os.environ.get("MCWARM", "")
MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"


def require_tools(test):
    if not MCWARM or not os.path.exists(MCWARM):
        raise unittest.SkipTest("MCWARM is not set to the mcwarm binary (run through ctest)")
    if not os.path.exists(MEMCACHED):
        raise unittest.SkipTest("memcached is not installed (scripts/setup.sh installs it)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(proc, port, seconds, what, address="127.0.0.1",
                   inside=contextlib.nullcontext):
    """Returns once proc (started with stderr=PIPE) accepts connections on
    address:port (connecting from within the context inside() makes: a network
    namespace's); raises RuntimeError with its stderr if it exits first or seconds pass
    (then it is killed)."""
    deadline = time.time() + seconds
    while True:
        try:
            with inside():
                socket.create_connection((address, port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                raise RuntimeError("%s did not start: %s" % (
                    what, proc.stderr.read().decode(errors="replace")))
            time.sleep(0.05)


class Memcached:
    """A memcached server of our own, on a free loopback port."""

    def __init__(self, memory_mb=256, threads=2, item_max=None, extra=()):
        self.port = free_port()
        self.args = [MEMCACHED, "-p", str(self.port), "-U", "0", "-l", "127.0.0.1",
                     "-m", str(memory_mb), "-t", str(threads)]
        if item_max:
            self.args += ["-I", item_max]
        if os.geteuid() == 0:
            self.args += ["-u", "root"]
        self.args += list(extra)
        self.start()

    def restart(self):
        """Kills the server and starts a new, empty one on the same port."""
        self.stop()
        self.start()

    def start(self):
        self.clients = []
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        wait_listening(self.proc, self.port, 10, "memcached")

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def client(self):
        c = Client(self.port)
        self.clients.append(c)
        return c

    def stop(self):
        for c in self.clients:
            c.close()
        self.clients = []
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stderr.close()


class Client:
    """A blocking meta-protocol client."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    @staticmethod
    def key_token(key):
        """(token, needs_b) as memcached's meta commands want the key."""
        if any(c <= 0x20 or c == 0x7f for c in key):
            return base64.b64encode(key), True
        return key, False

    def ms_request(self, key, value, ttl=0, flags=0, mode=b"S", quiet=True):
        tok, b = self.key_token(key)
        return b"ms %s %d%s T%d F%d M%s%s\r\n%s\r\n" % (
            tok, len(value), b" b" if b else b"", ttl, flags, mode, b" q" if quiet else b"",
            value)

    def set(self, key, value, ttl=0, flags=0, mode=b"S"):
        """One ms, answered: returns the status line (b'HD', b'NS', errors...)."""
        self.sock.sendall(self.ms_request(key, value, ttl, flags, mode, quiet=False))
        return self._line()

    def set_many(self, items):
        """Pipelined quiet sets; items: (key, value, ttl, flags). Raises on any error."""
        batch = []
        for i, (k, v, ttl, fl) in enumerate(items):
            batch.append(self.ms_request(k, v, ttl, fl))
            if len(batch) == 500 or i == len(items) - 1:
                self.sock.sendall(b"".join(batch) + b"mn\r\n")
                batch = []
                while True:
                    line = self._line()
                    if line == b"MN":
                        break
                    raise RuntimeError("set failed: %r" % line)

    def get(self, key):
        """(value, flags, ttl) or None; does not bump the LRU."""
        tok, b = self.key_token(key)
        self.sock.sendall(b"mg %s%s v f t u\r\n" % (tok, b" b" if b else b""))
        line = self._line()
        if line.startswith(b"EN"):
            return None
        m = re.match(rb"VA (\d+)(.*)", line)
        if not m:
            raise RuntimeError("unexpected reply %r" % line)
        value = self._exact(int(m.group(1)) + 2)[:-2]
        fl = dict((t[:1], t[1:]) for t in m.group(2).split())
        return value, int(fl[b"f"]), int(fl[b"t"])

    def command(self, cmd, until=b"END"):
        self.sock.sendall(cmd + b"\r\n")
        lines = []
        while True:
            line = self._line()
            lines.append(line)
            if line == until or line.startswith(b"ERROR") or b"_ERROR" in line:
                return lines

    def stats(self, sub=b""):
        out = {}
        for line in self.command(b"stats" + ((b" " + sub) if sub else b"")):
            parts = line.split(b" ", 2)
            if parts[0] == b"STAT":
                out[parts[1].decode()] = parts[2].decode()
        return out


# The capacity tests' dataset: about 100 MiB of items, of which memcached -m 64 holds about
# 6,000 (the rest is evicted, or refused with -M).
BIG_ITEMS, BIG_VALUE_BYTES = 10000, 10000


def fill_big(client, n=BIG_ITEMS, size=BIG_VALUE_BYTES):
    """n items of size-byte values, keys big000000..., pipelined."""
    value = b"v" * size
    client.set_many([(b"big%06d" % i, value, 0, 0) for i in range(n)])


def run_mcwarm(*args, timeout=600, check=None):
    """Runs mcwarm; returns the CompletedProcess (stdout/stderr as text)."""
    p = subprocess.run([MCWARM] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, errors="replace")
    if check is not None and p.returncode != check:
        raise AssertionError("mcwarm %s exited %d (wanted %d)\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(map(str, args)), p.returncode, check, p.stdout[-4000:], p.stderr[-4000:]))
    return p


def last_json(text):
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError("no JSON summary in output:\n" + text[-2000:])


RECORD_RE = re.compile(
    r"record key=(\S+) flags=(\d+) expires_ms=(-?\d+) value_len=(\d+)( binary_key)?"
    r"(?: value=([0-9a-f]*))?$")


def inspect_records(files, allow_damage=False):
    """Every record of the chunk files, via `mcwarm inspect --records --values`:
    a list of dicts key(bytes), flags, expires_ms, value(bytes), binary. With allow_damage,
    damaged files are fine (exit 65) and their readable records are returned."""
    out = []
    files = list(files)
    for start in range(0, len(files), 200):
        p = run_mcwarm("inspect", "--records", "--values", *files[start:start + 200],
                       check=None if allow_damage else 0)
        if p.returncode not in (0, 65):
            raise AssertionError("inspect failed: %s" % p.stderr[-2000:])
        for line in p.stdout.splitlines():
            if not line.startswith("record "):
                continue
            m = RECORD_RE.match(line)
            if not m:
                raise AssertionError("unparsable record line: %r" % line[:200])
            value = bytes.fromhex(m.group(6) or "")
            if len(value) != int(m.group(4)):
                raise AssertionError("value_len differs from value for %r" % line[:200])
            out.append(dict(key=urllib.parse.unquote_to_bytes(m.group(1)),
                            flags=int(m.group(2)), expires_ms=int(m.group(3)),
                            value=value, binary=bool(m.group(5))))
    return out


def chunk_files(directory):
    return sorted(os.path.join(directory, f) for f in os.listdir(directory)
                  if f.endswith(".mcw"))


class TempDir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="mcw-it-")

    def sub(self, name):
        return os.path.join(self.path, name)

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


class ServerTestCase(unittest.TestCase):
    """A test case that starts memcached servers on demand and stops them afterwards."""

    @classmethod
    def setUpClass(cls):
        require_tools(cls)

    def setUp(self):
        self.tmp = TempDir()
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        self.tmp.cleanup()

    def server(self, **kw):
        s = Memcached(**kw)
        self.servers.append(s)
        return s


def stop_process(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
