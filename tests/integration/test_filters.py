"""Key filters, instance warming and resizing with consistent-hash rings, `mcwarm stream`,
and rate limits, against real memcached servers started here.

Which node owns a key is asked of the real libmemcached (tests/tools/lmc_owner.c), never
of mcwarm's own ring code: the tests check mcwarm against the library clients use.
"""
import json
import os
import random
import shutil
import subprocess
import threading
import time
import unittest

from mcwtest import BIG_ITEMS, MCWARM, ServerTestCase, fill_big, last_json, run_mcwarm

BUILD = os.environ.get("MCW_BUILD", "")
LMC_OWNER = os.path.join(BUILD, "tests", "mcw-lmc-owner")


def owners(kind, nodes, keys):
    """Index into nodes of each key's owner, as libmemcached computes it."""
    if not os.path.exists(LMC_OWNER):
        raise unittest.SkipTest("mcw-lmc-owner is not built (MCW_BUILD not set)")
    p = subprocess.run([LMC_OWNER, kind] + nodes, input="\n".join(k.decode() for k in keys) +
                       "\n", capture_output=True, text=True, check=True)
    out = [int(x) for x in p.stdout.split()]
    assert len(out) == len(keys)
    return out


def make_keys(n, seed=7):
    rnd = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789:_-."
    return [("%s:%d:%s" % (rnd.choice(["user", "movie", "sess", "img"]), i,
                            "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 30)))))
            .encode() for i in range(n)]


def value_of(key):
    return (key * (1 + len(key) % 5))[:300]


def stored_keys(server, candidates):
    c = server.client()
    return {k for k in candidates if c.get(k) is not None}


class FilterTestCase(ServerTestCase):
    def dump(self, src, out, *args, check=0):
        p = run_mcwarm("dump", "--source", src.addr, "--out", out, "--json", "-q", *args,
                       check=check)
        return last_json(p.stdout) if check == 0 else p

    def populate(self, dst, from_dir):
        p = run_mcwarm("populate", "--dest", dst.addr, "--from", from_dir, "--state",
                       self.tmp.sub("state-%d" % random.randrange(1 << 30)), "--json", "-q",
                       check=0)
        return last_json(p.stdout)


class InstanceWarmTest(FilterTestCase):
    def test_replacement_gets_exactly_its_keys_from_the_other_replica(self):
        # zone A's ring: a1..a3 plus the replacement R (a new, empty server); zone B, the
        # other replica, holds every key on its three servers (spread any way at all)
        replica_b = [self.server() for _ in range(3)]
        r = self.server()
        ring_a = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211", r.addr]
        keys = make_keys(30000)
        for i, b in enumerate(replica_b):
            b.client().set_many([(k, value_of(k), 0, len(k)) for k in keys[i::3]])
        for kind in ("libmemcached", "libmemcached-md5", "libmemcached-oaat",
                     "libmemcached-spy"):
            with self.subTest(kind=kind):
                r.restart()
                kept = 0
                for b in replica_b:  # one dump per node of the other replica
                    out = self.tmp.sub("iw-%s-%d" % (kind, b.port))
                    d = self.dump(b, out, "--ring", kind, "--nodes", ",".join(ring_a),
                                  "--keep", r.addr)
                    kept += d["items"]
                    self.assertEqual(d["items"] + d["keys_filtered_ring"], d["keys_listed"])
                    self.populate(r, out)
                want = {k for k, o in zip(keys, owners(kind, ring_a, keys)) if o == 3}
                self.assertGreater(len(want), 4000)  # about a quarter
                self.assertEqual(kept, len(want))
                got = stored_keys(r, keys)
                self.assertEqual(got, want, "%s: the replacement holds other keys than the "
                                 "ring gives it" % kind)
                self.assertEqual(int(r.client().stats()["curr_items"]), len(want))

    def test_verify_checks_only_the_ring_share(self):
        src, dst = self.server(), self.server()
        keys = make_keys(5000)
        src.client().set_many([(k, value_of(k), 0, 0) for k in keys])
        ring = ["10.0.0.1:11211", "10.0.0.2:11211", dst.addr]
        run_mcwarm("stream", "--source", src.addr, "--dest", dst.addr, "--ring",
                   "libmemcached", "--nodes", ",".join(ring), "--keep", dst.addr, "-q", check=0)
        want = sum(1 for o in owners("libmemcached", ring, keys) if o == 2)
        v = last_json(run_mcwarm("verify", "--source", src.addr, "--dest", dst.addr, "--ring",
                                 "libmemcached", "--nodes", ",".join(ring), "--keep", dst.addr,
                                 "--min-ratio", "1", "--json", "-q", check=0).stdout)
        self.assertEqual(v["equal"], want)
        self.assertEqual(v["keys_filtered_ring"], 5000 - want)
        # the whole source is not there, and verify says so without the filter
        run_mcwarm("verify", "--source", src.addr, "--dest", dst.addr, "--min-ratio", "1",
                   "-q", check=2)


class ResizeTest(FilterTestCase):
    def test_three_to_four_moves_exactly_the_moved_keys(self):
        old = [self.server() for _ in range(3)]
        new = self.server()
        ring_from = [s.addr for s in old]
        ring_to = ring_from + [new.addr]
        self.resize(old, [new], ring_from, ring_to, "libmemcached")

    def test_nodes_removed_and_added_groups_per_new_owner(self):
        old = [self.server() for _ in range(3)]
        added = [self.server(), self.server()]
        ring_from = [s.addr for s in old]
        ring_to = [old[0].addr, old[2].addr, added[0].addr, added[1].addr]  # old[1] goes
        self.resize(old, added, ring_from, ring_to, "libmemcached-md5")

    def resize(self, old, added, ring_from, ring_to, kind):
        keys = make_keys(24000, seed=11)
        before = owners(kind, ring_from, keys)
        after = owners(kind, ring_to, keys)
        by_addr = {s.addr: s for s in old + added}
        for i, s in enumerate(old):  # the old cluster, placed by the old ring
            s.client().set_many([(k, value_of(k), 0, 0) for k, o in zip(keys, before)
                                 if o == i])
        moved = {k for k, a, b in zip(keys, before, after) if ring_from[a] != ring_to[b]}
        self.assertGreater(len(moved), 3000)
        dumps = []  # every old node is dumped before anything is written anywhere
        for s in old:
            out = self.tmp.sub("resize-%d" % s.port)
            d = self.dump(s, out, "--ring", kind, "--ring-from", ",".join(ring_from),
                          "--ring-to", ",".join(ring_to))
            self.assertEqual(sorted(d["groups"]), sorted(ring_to))
            dumps.append(d)
        dumped = sum(d["items"] for d in dumps)
        for d in dumps:
            for node, g in d["groups"].items():  # each new owner's share, to that node
                self.assertTrue(os.path.exists(os.path.join(g["dir"], "DONE")))
                if g["items"]:
                    self.populate(by_addr[node], g["dir"])
        self.assertEqual(dumped, len(moved), "a key that stays put was dumped, or a "
                         "moved one was not")
        # every key is now at its new owner; nothing that stayed was copied anywhere
        for j, addr in enumerate(ring_to):
            s = by_addr[addr]
            want = {k for k, b in zip(keys, after) if b == j}
            if s in old:  # an old node keeps its own keys as well
                i = old.index(s)
                want |= {k for k, a in zip(keys, before) if a == i}
            self.assertEqual(stored_keys(s, keys), want, "keys at %s" % addr)


class PrefixAndStreamTest(FilterTestCase):
    def test_prefix_filters(self):
        src = self.server()
        keys = make_keys(8000)
        src.client().set_many([(k, value_of(k), 0, 0) for k in keys])
        d = self.dump(src, self.tmp.sub("p"), "--key-include", "user:", "--key-include",
                      "movie:", "--key-exclude", "movie:1")
        want = [k for k in keys if (k.startswith(b"user:") or k.startswith(b"movie:"))
                and not k.startswith(b"movie:1")]
        self.assertEqual(d["items"], len(want))
        self.assertEqual(d["keys_filtered_prefix"], len(keys) - len(want))

    def test_stream_round_trip_add_mode_and_ttls(self):
        src, dst = self.server(), self.server()
        sc = src.client()
        items = [(b"s%06d" % i, os.urandom(i % 2000), 3600 * (i % 3), i * 7919 % 2**32)
                 for i in range(20000)]
        items.append((b"bin\x01key two", b"binary", 0, 5))
        sc.set_many(items)
        sc.set(b"big", b"x" * 900000)
        dst.client().set(b"s000007", b"live value")  # live traffic wrote it first
        p = run_mcwarm("stream", "--source", src.addr, "--dest", dst.addr, "--json", "-q",
                       check=0)
        s = last_json(p.stdout)
        self.assertTrue(s["ok"])
        self.assertEqual(s["items_sent"], len(items) + 1)
        self.assertEqual(s["already_present"], 1)
        dc = dst.client()
        self.assertEqual(dc.get(b"s000007")[0], b"live value")  # add mode kept it
        for key, value, ttl, flags in items[::53] + items[-1:]:
            if key == b"s000007":
                continue
            got = dc.get(key)
            self.assertEqual((got[0], got[1]), (value, flags))
            if ttl == 0:
                self.assertEqual(got[2], -1)
            else:
                self.assertLessEqual(abs(got[2] - ttl), 3)
        self.assertEqual(len(dc.get(b"big")[0]), 900000)
        v = last_json(run_mcwarm("verify", "--source", src.addr, "--dest", dst.addr,
                                 "--json", "-q", check=0).stdout)
        self.assertEqual(v["value_differs"], 1)  # only the live write
        self.assertEqual(v["equal"], len(items))
        # set mode overwrites
        run_mcwarm("stream", "--source", src.addr, "--dest", dst.addr, "--mode", "set", "-q",
                   check=0)
        self.assertNotEqual(dst.client().get(b"s000007")[0], b"live value")

    def test_stream_to_a_dead_destination_is_a_clear_error(self):
        src = self.server()
        src.client().set(b"k", b"v")
        dead = self.server()
        addr = dead.addr
        dead.stop()
        p = run_mcwarm("stream", "--source", src.addr, "--dest", addr, check=69)
        self.assertIn(addr, p.stderr)


class StreamCapacityTest(FilterTestCase):
    """The destination's memory, item size limit and identity, before and while streaming."""

    def stream(self, src, dst_addr, *args, check):
        p = run_mcwarm("stream", "--source", src.addr, "--dest", dst_addr, "--json", "-q",
                       "--work", self.tmp.path, *args, check=check)
        return p

    def test_too_small_is_refused_then_accepted_with_evictions_reported(self):
        src, dst = self.server(), self.server(memory_mb=64)
        fill_big(src.client())
        p = self.stream(src, dst.addr, check=3)
        for text in ("is too small for what the source holds", "%d items" % BIG_ITEMS,
                     "memory limit is 64.0 MiB", "--allow-shrink"):
            self.assertIn(text, p.stderr)
        self.assertEqual(dst.client().stats()["curr_items"], "0")  # nothing sent
        # key filters select an unknown share: not refused before, judged by evictions
        s = last_json(self.stream(src, dst.addr, "--key-include", "big000", check=0).stdout)
        self.assertEqual((s["items_sent"], s["evictions"]), (1000, 0))
        # a shrinking resize: all sent, the evictions reported, exit 3
        s = last_json(self.stream(src, dst.addr, "--allow-shrink", check=3).stdout)
        self.assertEqual(s["items_sent"], BIG_ITEMS)  # the 1,000 above answer NS
        self.assertGreater(s["evictions"], 0)
        self.assertEqual(s["evictions"], int(dst.client().stats()["evictions"]))
        self.assertIn("evicted", s["error"])

    def test_destination_without_evictions_stops_at_out_of_memory(self):
        src, dst = self.server(), self.server(memory_mb=64, extra=["-M"])
        fill_big(src.client())
        p = self.stream(src, dst.addr, "--allow-shrink", "--threads", "1", check=3)
        s = last_json(p.stdout)
        self.assertIn("does not evict (started with -M)", s["error"])
        self.assertGreaterEqual(s["out_of_memory"], 1)
        held = int(dst.client().stats()["curr_items"])
        self.assertLess(s["server_errors"], (BIG_ITEMS - held) // 2)  # stopped early
        self.assertLess(s["keys_fetched"], BIG_ITEMS)

    def test_same_server_and_smaller_item_size_are_refused(self):
        src = self.server(item_max="2m")
        src.client().set_many([(b"k%04d" % i, b"v", 0, 0) for i in range(100)])
        src.client().set(b"large", b"L" * 1500000)
        p = self.stream(src, "localhost:%d" % src.port, check=64)
        self.assertIn("are the same memcached", p.stderr)
        dst = self.server()  # -I 1m
        p = self.stream(src, dst.addr, check=69)
        self.assertIn("item_size_max", p.stderr)
        self.assertIn("--allow-smaller-items", p.stderr)
        self.assertEqual(dst.client().stats()["curr_items"], "0")
        s = last_json(self.stream(src, dst.addr, "--allow-smaller-items", check=0).stdout)
        self.assertEqual((s["items_sent"], s["too_large"]), (100, 1))


class RateLimitTest(FilterTestCase):
    def gets_per_second(self, server, seconds, start_after):
        """cmd_get rate measured on the server over `seconds`, after `start_after`."""
        c = server.client()
        time.sleep(start_after)
        a, t0 = int(c.stats()["cmd_get"]), time.monotonic()
        time.sleep(seconds)
        b, t1 = int(c.stats()["cmd_get"]), time.monotonic()
        return (b - a) / (t1 - t0)

    def test_dump_rate_within_5_percent_over_10_seconds(self):
        src = self.server(memory_mb=512)
        keys = [b"r%07d" % i for i in range(150000)]
        src.client().set_many([(k, b"v" * 50, 0, 0) for k in keys])
        out = self.tmp.sub("rl")
        proc = subprocess.Popen([MCWARM, "dump", "--source", src.addr, "--out", out,
                                 "--max-ops", "10000", "-q"], stderr=subprocess.PIPE)
        try:
            rate = self.gets_per_second(src, 10, 1.5)
        finally:
            proc.wait(timeout=60)
        self.assertEqual(proc.returncode, 0)
        self.assertLess(abs(rate - 10000) / 10000, 0.05, "measured %.0f gets/s" % rate)

    def test_limits_file_changes_the_rate_while_running(self):
        src = self.server(memory_mb=512)
        src.client().set_many([(b"f%07d" % i, b"v" * 50, 0, 0) for i in range(120000)])
        limits = self.tmp.sub("limits")
        with open(limits, "w") as f:
            f.write("max-ops = 4000\n")
        proc = subprocess.Popen([MCWARM, "dump", "--source", src.addr, "--out",
                                 self.tmp.sub("lf"), "--max-ops", "50000", "--limits-file",
                                 limits], stderr=subprocess.PIPE, text=True)
        try:
            slow = self.gets_per_second(src, 3, 1.0)
            with open(limits + ".new", "w") as f:
                f.write("# peak is over\nmax-ops = 16000\n")
            os.rename(limits + ".new", limits)
            fast = self.gets_per_second(src, 3, 1.5)
        finally:
            _, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 0, err)
        self.assertLess(abs(slow - 4000) / 4000, 0.1, "before: %.0f gets/s" % slow)
        self.assertLess(abs(fast - 16000) / 16000, 0.1, "after: %.0f gets/s" % fast)
        self.assertIn("limits from %s: 4000 ops/s" % limits, err)
        self.assertIn("16000 ops/s", err)

    def test_populate_and_stream_limits(self):
        src, dst = self.server(memory_mb=512), self.server(memory_mb=512)
        src.client().set_many([(b"p%07d" % i, b"v" * 100, 0, 0) for i in range(40000)])
        t0 = time.monotonic()
        run_mcwarm("stream", "--source", src.addr, "--dest", dst.addr, "--max-ops", "10000",
                   "-q", check=0)
        took = time.monotonic() - t0
        self.assertGreater(took, 3.6)  # 40,000 sets at 10,000/s (and as many gets)
        self.assertLess(took, 6.0)
        out = self.tmp.sub("pd")
        self.dump(src, out)
        dst.restart()
        t0 = time.monotonic()
        self.populate_limited(dst, out, "--max-bytes", "1M")  # 4 MB of values
        took = time.monotonic() - t0
        self.assertGreater(took, 3.4)
        self.assertLess(took, 6.0)

    def populate_limited(self, dst, from_dir, *args):
        run_mcwarm("populate", "--dest", dst.addr, "--from", from_dir, "--state",
                   self.tmp.sub("pls"), "-q", *args, check=0)

    def test_bad_limits(self):
        src = self.server()
        p = run_mcwarm("dump", "--source", src.addr, "--out", self.tmp.sub("x"),
                       "--max-ops", "0", check=64)
        self.assertIn("--max-ops", p.stderr)
        limits = self.tmp.sub("bad-limits")
        with open(limits, "w") as f:
            f.write("max-opps = 5\n")
        src.client().set(b"k", b"v")
        p = run_mcwarm("dump", "--source", src.addr, "--out", self.tmp.sub("y"),
                       "--limits-file", limits, check=0)
        self.assertIn("bad-limits:1: expected 'max-ops = N' or 'max-bytes = SIZE'", p.stderr)


class FilterUsageTest(FilterTestCase):
    def test_usage_errors(self):
        src = self.server()
        cases = [
            (["--keep", "10.0.0.1"], "need --ring KIND"),
            (["--ring", "ketama"], "--ring: 'ketama' is not one of"),
            (["--ring", "evcache", "--nodes", "10.0.0.1"], "--keep NODE"),
            (["--ring", "evcache", "--nodes", "10.0.0.1,10.0.0.2", "--keep", "10.0.0.3"],
             "--keep 10.0.0.3: not one of --nodes"),
            (["--ring", "evcache", "--ring-from", "10.0.0.1"], "both --ring-from and --ring-to"),
            (["--ring", "libmemcached", "--ring-points", "100", "--nodes", "a", "--keep", "a"],
             "fixed number of points"),
            (["--ring", "evcache", "--ring-points", "162", "--nodes", "a", "--keep", "a"],
             "not a multiple of 4"),
            (["--key-include", ""], "empty prefix"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                p = run_mcwarm("dump", "--source", src.addr, "--out", self.tmp.sub("u"), *args,
                               check=64)
                self.assertIn(msg, p.stderr)
                self.assertFalse(os.path.exists(self.tmp.sub("u")), "wrote before refusing")


if __name__ == "__main__":
    unittest.main()
