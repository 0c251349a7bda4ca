"""`mcwarm watch` against real memcached clusters with real get traffic.

A traffic thread sends classic `get` requests (pipelined, a bounded rate, a bounded time)
to chosen nodes; watch must see the hit ratios and rates that traffic makes, and end
with the documented status when its thresholds are crossed.
"""
import json
import socket
import subprocess
import threading
import time

from mcwtest import MCWARM, ServerTestCase

EXIT_ROLLBACK = 4
EXIT_UNAVAILABLE = 69
TRAFFIC_MAX_S = 60  # a traffic thread never outlives this


class Traffic:
    """Sends `get` for keys to servers, about rate requests per second each, until stopped."""

    def __init__(self, servers, keys, rate=400):
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(s.port, keys, rate), daemon=True)
                        for s in servers]
        for t in self.threads:
            t.start()

    def run(self, port, keys, rate):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        batch = 20
        end = time.time() + TRAFFIC_MAX_S
        i = 0
        try:
            while not self.stopped.is_set() and time.time() < end:
                req = b"".join(b"get %s\r\n" % keys[(i + j) % len(keys)] for j in range(batch))
                i += batch
                sock.sendall(req)
                ends = 0
                buf = b""
                while ends < batch:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                    ends = buf.count(b"END\r\n")
                time.sleep(batch / rate)
        except OSError:
            pass  # the server was stopped on purpose
        finally:
            sock.close()

    def stop(self):
        self.stopped.set()
        for t in self.threads:
            t.join(timeout=15)


def watch(*args, timeout=90):
    p = subprocess.run([MCWARM, "watch", "--json"] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=timeout)
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    return p, lines


def addrs(servers):
    return ",".join(s.addr for s in servers)


class WatchTest(ServerTestCase):
    def clusters(self, keys, warm_new):
        old = [self.server(memory_mb=64) for _ in range(2)]
        new = [self.server(memory_mb=64) for _ in range(2)]
        for s in old + (new if warm_new else []):
            c = s.client()
            c.set_many([(k, b"v" * 50, 0, 0) for k in keys])
        return old, new

    def test_cold_new_cluster_after_cutover_signals_roll_back(self):
        keys = [b"key-%d" % i for i in range(500)]
        old, new = self.clusters(keys, warm_new=False)
        t = Traffic(new, keys)  # the clients moved to an empty cluster: every get misses
        try:
            t0 = time.time()
            p, lines = watch("--old", addrs(old), "--new", addrs(new), "--interval", 1,
                             "--window", 2, "--min-hit-ratio", 0.9, "--for", 2,
                             "--duration", 40)
        finally:
            t.stop()
        self.assertEqual(p.returncode, EXIT_ROLLBACK, p.stderr)
        self.assertLess(time.time() - t0, 30)
        self.assertIn("roll back", p.stderr)
        end = lines[-1]
        self.assertEqual(end["kind"], "end")
        self.assertEqual(end["outcome"], "roll back")
        self.assertTrue(end["cut_over"])
        new_lines = [l for l in lines if l["kind"] == "cluster" and l["name"] == "new"
                     and "hit_ratio" in l]
        self.assertTrue(new_lines, "the new cluster's hit ratio was reported")
        self.assertEqual(new_lines[-1]["hit_ratio"], 0.0)
        self.assertGreater(new_lines[-1]["gets_per_s"], 100)
        nodes = {l["name"] for l in lines if l["kind"] == "node"}
        self.assertEqual(nodes, {s.addr for s in old + new})

    def test_warm_new_cluster_passes_and_reports_hits(self):
        keys = [b"key-%d" % i for i in range(500)]
        old, new = self.clusters(keys, warm_new=True)
        t = Traffic(new, keys)
        try:
            p, lines = watch("--old", addrs(old), "--new", addrs(new), "--interval", 1,
                             "--window", 2, "--min-hit-ratio", 0.9, "--for", 2,
                             "--duration", 5)
        finally:
            t.stop()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(lines[-1]["outcome"], "duration")
        ratios = [l["hit_ratio"] for l in lines
                  if l["kind"] == "cluster" and l["name"] == "new" and "hit_ratio" in l]
        self.assertTrue(ratios)
        self.assertEqual(ratios[-1], 1.0)
        items = [l["items"] for l in lines if l["kind"] == "cluster" and l["name"] == "new"]
        self.assertEqual(items[-1], 2 * len(keys))

    def test_old_cluster_without_traffic_is_drained(self):
        keys = [b"key-%d" % i for i in range(100)]
        old, new = self.clusters(keys, warm_new=True)
        t = Traffic(new, keys, rate=200)
        try:
            p, lines = watch("--old", addrs(old), "--new", addrs(new), "--interval", 1,
                             "--window", 2, "--drained", 1, "--for", 2, "--duration", 40)
        finally:
            t.stop()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(lines[-1]["outcome"], "drained")
        self.assertIn("can be removed", p.stderr)

    def test_old_cluster_with_traffic_is_not_drained(self):
        keys = [b"key-%d" % i for i in range(100)]
        old, new = self.clusters(keys, warm_new=True)
        t = Traffic(old, keys, rate=200)
        try:
            p, lines = watch("--old", addrs(old), "--new", addrs(new), "--interval", 1,
                             "--window", 2, "--drained", 1, "--for", 2, "--duration", 5)
        finally:
            t.stop()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(lines[-1]["outcome"], "duration")
        self.assertFalse(lines[-1]["cut_over"], "old served more: no cut-over")

    def test_a_node_down_is_reported_and_the_watch_goes_on(self):
        keys = [b"key-%d" % i for i in range(100)]
        old, new = self.clusters(keys, warm_new=True)
        proc = subprocess.Popen([MCWARM, "watch", "--json", "--old", addrs(old), "--new",
                                 addrs(new), "--interval", "1", "--duration", "5"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        new[1].stop()
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, err)
        lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
        down = [l for l in lines if l["kind"] == "node" and l["name"] == new[1].addr]
        self.assertEqual(down[0]["down"], 0)
        self.assertEqual(down[-1]["down"], 1)
        cluster = [l for l in lines if l["kind"] == "cluster" and l["name"] == "new"]
        self.assertEqual(cluster[-1]["down"], 1)
        self.assertEqual(cluster[-1]["items"], len(keys), "the live node's items only")

    def test_unreachable_cluster_and_usage_errors(self):
        s = self.server(memory_mb=64)
        dead = "127.0.0.1:1"
        p, _ = watch("--old", dead, "--new", s.addr, "--interval", 1, "--duration", 2)
        self.assertEqual(p.returncode, EXIT_UNAVAILABLE)
        self.assertIn("no node of the old cluster", p.stderr)
        for args in ([], ["--new", "nonsense"], ["--old", s.addr, "--min-hit-ratio", "0.5"],
                     ["--new", s.addr, "--drained", "5"], ["--new", s.addr, "--min-hit-ratio", "2"]):
            p, _ = watch(*args)
            self.assertEqual(p.returncode, 64, args)
