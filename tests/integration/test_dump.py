"""`mcwarm dump` against real memcached 1.6 servers started here.

The tricky dataset has keys of every legal byte (%, +, /, UTF-8, binary keys stored with
the meta b flag), empty values, values of exactly the largest size the server accepts,
TTLs never/short/over 30 days, and flags 0 and 2^32-1. The dump, decoded by
`mcwarm inspect`, must hold every item exactly once with byte-equal key and value, equal
flags and an expiry within 1 s of the truth.
"""
import os
import random
import signal
import subprocess
import sys
import time
import unittest

from mcwtest import (ServerTestCase, chunk_files, free_port, inspect_records, last_json,
                     run_mcwarm, stop_process)

HERE = os.path.dirname(os.path.abspath(__file__))
EXPIRY_SLACK_S = 1.05  # memcached's clock ticks once a second; 50 ms for our own timing


def largest_value(client, key, flags):
    """The largest value the server stores under this key and flags (binary search with
    ms; non-zero flags take room in the item)."""
    lo, hi = 0, 4 << 20
    while lo < hi:
        mid = (lo + hi + 1) // 2
        status = client.set(key, b"z" * mid, flags=flags)
        if status.startswith(b"HD"):
            lo = mid
        else:
            hi = mid - 1
    return lo


def tricky_items(client):
    """The dataset of the issue; returns {key: (value, flags, truth_expiry_s or 0)}."""
    items = {}
    rnd = random.Random(42)

    def put(key, value, ttl=0, flags=0):
        t0 = time.time()
        status = client.set(key, value, ttl, flags)
        assert status.startswith(b"HD"), (key, status)
        if ttl == 0:
            truth = 0
        elif ttl > 30 * 86400:
            # An absolute time is read on the server's clock, which memcached builds from a
            # start-time snapshot and a once-a-second tick: it can sit a second or more off
            # ours. The truth is when that server will drop the item: ask it.
            t1 = time.time()
            truth = t1 + client.get(key)[2]
        else:
            truth = t0 + ttl
        items[key] = (value, flags, truth)

    printable = bytes(range(0x21, 0x7f))
    put(printable, b"every printable byte")  # 94 bytes, every legal text byte
    for c in printable:
        put(b"k" + bytes([c]) * 3, bytes([c]) * 5, flags=c)
    for k in [b"a%b", b"%25", b"a+b", b"/x/y/", b"100%", b"%%%", b"+", b"a=b&c/d+e"]:
        put(k, k * 2)
    put("ключ-日本語-é".encode(), "значение".encode(), flags=7)
    put(b"\xff\xfe\x80high-bytes", b"v")
    # binary keys (need the b flag): every byte 0x00..0x20 and 0x7f in some key
    everything = bytes(range(256))
    for i in range(0, 256, 64):
        put(everything[i:i + 64], b"binary %d" % i, flags=i)
    put(b"with space", b"s")
    put(b"line\r\nbreak", b"crlf")
    put(b"\x00", b"nul key")
    put(b"k" * 250, b"longest text key")
    put(b" " + b"b" * 185, b"longest binary key")  # 186 raw bytes = 248 base64 chars
    # values
    put(b"empty", b"")
    put(b"empty-flags", b"", flags=2**32 - 1)
    put(b"flags-zero", b"f0", flags=0)
    put(b"flags-max", b"fmax", flags=2**32 - 1)
    big_key = b"biggest-value"
    size = largest_value(client, big_key, 99)
    assert size > 1000000, size
    put(big_key, bytes(rnd.getrandbits(8) for _ in range(size)), flags=99)
    put(b"just-below-biggest", b"q" * (size - 1000))
    # TTLs
    put(b"ttl-never", b"n", ttl=0)
    put(b"ttl-short", b"s", ttl=120)
    put(b"ttl-one-day", b"d", ttl=86400, flags=1)
    put(b"ttl-over-30-days", b"a", ttl=int(time.time()) + 40 * 86400, flags=2)
    # bulk, so that several key chunks and chunk files are made
    bulk = []
    for i in range(30000):
        k = b"bulk:%06d:%s" % (i, b"x" * rnd.randrange(0, 40))
        v = bytes([rnd.randrange(256)]) * rnd.randrange(0, 3000)
        fl = rnd.getrandbits(32)
        bulk.append((k, v, 0, fl))
        items[k] = (v, fl, 0)
    client.set_many(bulk)
    return items


class DumpTest(ServerTestCase):
    def assert_dump_matches(self, out_dir, items, exactly=True):
        records = inspect_records(chunk_files(out_dir))
        seen = {}
        for r in records:
            self.assertNotIn(r["key"], seen, "key %r listed twice" % r["key"])
            seen[r["key"]] = r
        if exactly:
            self.assertEqual(set(seen), set(items), "the dump holds other keys than the source")
        for key, (value, flags, truth) in items.items():
            self.assertIn(key, seen, "key %r missing from the dump" % key)
            r = seen[key]
            self.assertEqual(r["value"], value, "value of %r differs" % key)
            self.assertEqual(r["flags"], flags, "flags of %r differ" % key)
            if truth == 0:
                self.assertEqual(r["expires_ms"], 0, "%r should never expire" % key)
            else:
                self.assertLessEqual(abs(r["expires_ms"] / 1000.0 - truth), EXPIRY_SLACK_S,
                                     "expiry of %r is off" % key)
        return records

    def test_tricky_dataset_exactly_once(self):
        mc = self.server()
        c = mc.client()
        items = tricky_items(c)
        out = self.tmp.sub("dump")
        p = run_mcwarm("dump", "--source", mc.addr, "--out", out, "--json", check=0)
        summary = last_json(p.stdout)
        self.assertTrue(summary["ok"])
        self.assertEqual(summary["items"], len(items))
        self.assertEqual(summary["misses"], 0)
        self.assertEqual(summary["key_dump"], "metadump hash")
        self.assertGreater(summary["files"], 1)
        self.assertTrue(os.path.exists(os.path.join(out, "DONE")))
        self.assertFalse(os.path.exists(os.path.join(out, ".mcwarm")), "spool left behind")
        records = self.assert_dump_matches(out, items)
        binary = {r["key"] for r in records if r["binary"]}
        self.assertIn(b"\x00", binary)
        self.assertIn(b"with space", binary)
        # the manifest lists every chunk file with its record count
        manifest = open(os.path.join(out, "MANIFEST")).read()
        self.assertIn("records %d\n" % len(items), manifest)
        # what populate sizes the destination with
        self.assertIn("key_bytes %d\n" % sum(len(k) for k in items), manifest)
        self.assertIn("source_item_size_max %s\n" % c.stats(b"settings")["item_size_max"],
                      manifest)
        for f in chunk_files(out):
            self.assertIn(os.path.basename(f), manifest)
        c.close()

    def test_other_writers_and_worker_counts_give_the_same_dump(self):
        mc = self.server()
        c = mc.client()
        items = tricky_items(c)
        for args in (["--writer", "writev"], ["--threads", "1"], ["--threads", "3"],
                     ["--no-direct", "--chunk-size", "1M"], ["--memory", "25M"]):
            out = self.tmp.sub("dump" + "".join(args))
            run_mcwarm("dump", "--source", mc.addr, "--out", out, "-q", *args, check=0)
            self.assert_dump_matches(out, items)
        c.close()

    def test_lru_walk_is_correct_but_may_miss_items(self):
        # --crawl all walks the LRUs, which memcached's maintainer thread reshuffles during
        # the walk: items can be missed (the reason hash is the default). What it lists
        # must still be exactly right and listed once.
        mc = self.server()
        c = mc.client()
        items = tricky_items(c)
        out = self.tmp.sub("dump")
        p = run_mcwarm("dump", "--source", mc.addr, "--out", out, "--crawl", "all", "--json",
                       check=0)
        self.assertEqual(last_json(p.stdout)["key_dump"], "metadump all")
        records = inspect_records(chunk_files(out))
        keys = [r["key"] for r in records]
        self.assertEqual(len(keys), len(set(keys)), "a key listed twice")
        for r in records:
            value, flags, _ = items[r["key"]]
            self.assertEqual(r["value"], value)
            self.assertEqual(r["flags"], flags)
        self.assertGreater(len(keys), 0.95 * len(items))
        c.close()

    def test_complete_under_client_load(self):
        mc = self.server(memory_mb=512)
        c = mc.client()
        keep = {}
        batch = []
        for i in range(200000):
            k = b"keep:%07d" % i
            v = b"%d-" % i * (1 + i % 20)
            keep[k] = (v, i % 1000, 0)
            batch.append((k, v, 0, i % 1000))
        c.set_many(batch)
        hammer = subprocess.Popen([sys.executable, os.path.join(HERE, "hammer.py"),
                                   str(mc.port), "hammer", "3"], stdout=subprocess.PIPE,
                                  text=True)
        try:
            time.sleep(0.5)
            out = self.tmp.sub("dump")
            p = run_mcwarm("dump", "--source", mc.addr, "--out", out, "--json", check=0)
        finally:
            stop_process(hammer)
        ops = int(hammer.stdout.read().strip() or 0)
        self.assertGreater(ops, 1000, "the load generator did not run")
        records = inspect_records(chunk_files(out))
        got = {}
        for r in records:
            self.assertNotIn(r["key"], got, "key %r listed twice" % r["key"])
            got[r["key"]] = r
        for k, (v, fl, _) in keep.items():
            self.assertIn(k, got, "untouched key %r missing under load" % k)
            self.assertEqual(got[k]["value"], v)
            self.assertEqual(got[k]["flags"], fl)
        self.assertTrue(last_json(p.stdout)["ok"])
        c.close()

    def test_min_ttl_filters(self):
        mc = self.server()
        c = mc.client()
        c.set(b"short", b"1", ttl=30)
        c.set(b"long", b"2", ttl=3600)
        c.set(b"never", b"3", ttl=0)
        out = self.tmp.sub("dump")
        p = run_mcwarm("dump", "--source", mc.addr, "--out", out, "--min-ttl", "60", "--json",
                       check=0)
        keys = {r["key"] for r in inspect_records(chunk_files(out))}
        self.assertEqual(keys, {b"long", b"never"})
        self.assertEqual(last_json(p.stdout)["keys_expired"], 1)

    def test_empty_server(self):
        mc = self.server()
        out = self.tmp.sub("dump")
        p = run_mcwarm("dump", "--source", mc.addr, "--out", out, "--json", check=0)
        self.assertEqual(last_json(p.stdout)["items"], 0)
        self.assertEqual(chunk_files(out), [])
        self.assertIn("records 0\n", open(os.path.join(out, "MANIFEST")).read())
        self.assertTrue(os.path.exists(os.path.join(out, "DONE")))


    @staticmethod
    def thread_nice(pid):
        """{thread name: nice value} of a running process, from /proc."""
        out = {}
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                    stat = f.read()
            except FileNotFoundError:
                continue  # the thread ended meanwhile
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            out.setdefault(name, set()).add(int(stat[stat.rindex(")") + 2:].split()[16]))
        return out

    def test_workers_run_at_the_nice_given_the_rest_does_not(self):
        mc = self.server()
        c = mc.client()
        c.set_many([(b"nice:%06d" % i, b"v", 0, 0) for i in range(100000)])
        c.close()
        base = os.nice(0)
        for nice, want in (("7", max(7, base)), (None, max(10, base)), ("0", base)):
            args = ["--max-ops", "20000"] + (["--nice", nice] if nice else [])
            p = subprocess.Popen([os.environ["MCWARM"], "dump", "--source", mc.addr, "--out",
                                  self.tmp.sub("n%s" % nice), "-q"] + args,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + 10
                seen = {}
                while time.monotonic() < deadline and not any(
                        n.startswith("mcw-worker-") for n in seen):
                    time.sleep(0.01)
                    seen = self.thread_nice(p.pid)
                time.sleep(0.2)  # every thread set up (a dump of 100,000 at 20,000/s: 5 s)
                seen = self.thread_nice(p.pid)
                workers = {n: v for n, v in seen.items() if n.startswith("mcw-worker-")}
                self.assertTrue(workers, "no worker thread seen: %r" % seen)
                for name, values in workers.items():
                    self.assertEqual(values, {want}, "%s with --nice %s" % (name, nice))
                # the main thread, and the key reader if it has not finished the listing
                self.assertEqual(seen["mcwarm"], {base}, "the main thread keeps its priority")
                self.assertEqual(seen.get("mcw-keys", {base}), {base})
            finally:
                p.kill()
                p.communicate()
        run_mcwarm("dump", "--source", mc.addr, "--out", self.tmp.sub("n20"), "--nice", "20",
                   check=64)


class DumpRefusalTest(ServerTestCase):
    """Every refusal names the cause and the fix, with the documented exit code."""

    def test_unreachable(self):
        p = run_mcwarm("dump", "--source", "127.0.0.1:%d" % free_port(), "--out",
                       self.tmp.sub("d"), check=69)
        self.assertIn("cannot connect", p.stderr)
        self.assertIn("is memcached running", p.stderr)

    def test_dumps_disabled(self):
        mc = self.server(extra=["-X"])
        p = run_mcwarm("dump", "--source", mc.addr, "--out", self.tmp.sub("d"), check=69)
        self.assertIn("-X", p.stderr)

    def test_crawler_disabled(self):
        mc = self.server(extra=["-o", "no_lru_crawler"])
        p = run_mcwarm("dump", "--source", mc.addr, "--out", self.tmp.sub("d"), check=69)
        self.assertIn("lru_crawler enable", p.stderr)

    def test_output_not_empty(self):
        mc = self.server()
        out = self.tmp.sub("d")
        os.makedirs(out)
        open(os.path.join(out, "old"), "w").close()
        p = run_mcwarm("dump", "--source", mc.addr, "--out", out, check=64)
        self.assertIn("not empty", p.stderr)

    def test_budget_too_small(self):
        mc = self.server()
        p = run_mcwarm("dump", "--source", mc.addr, "--out", self.tmp.sub("d"), "--memory",
                       "8M", check=64)
        self.assertIn("too small", p.stderr)
        self.assertIn("--memory", p.stderr)

    def test_bad_options(self):
        run_mcwarm("dump", "--out", "x", check=64)
        run_mcwarm("dump", "--source", "nohostport", "--out", "x", check=64)
        run_mcwarm("dump", "--source", "h:1", "--out", "x", "--memory", "lots", check=64)
        p = run_mcwarm("dump", "--help", check=0)
        self.assertIn("--source", p.stdout)
        self.assertIn("exit codes", p.stdout)

    def test_busy_crawler_is_retried(self):
        mc = self.server()
        c = mc.client()
        c.set_many([(b"busy:%d" % i, b"v" * 50, 0, 0) for i in range(200000)])
        # another client holds the crawler: it starts a dump and does not read it yet
        other = mc.client()
        other.sock.sendall(b"lru_crawler metadump all\r\n")
        time.sleep(0.3)
        dumper = subprocess.Popen(
            [os.environ["MCWARM"], "dump", "--source", mc.addr, "--out", self.tmp.sub("d"),
             "--json", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        # now the other client drains its dump; the crawler frees up
        other.sock.settimeout(30)
        while not other.buf.endswith(b"END\r\n"):
            other.buf = other.buf[-8:] + other.sock.recv(1 << 20)
        out, err = dumper.communicate(timeout=120)
        self.assertEqual(dumper.returncode, 0, err)
        summary = last_json(out)
        self.assertGreaterEqual(summary["busy_retries"], 1, err)
        self.assertEqual(summary["items"], 200000)
        self.assertIn("crawler busy", err)

    def test_source_killed_mid_dump(self):
        mc = self.server(memory_mb=1024)
        c = mc.client()
        c.set_many([(b"kill:%d" % i, b"v" * 2000, 0, 0) for i in range(300000)])
        out = self.tmp.sub("d")
        dumper = subprocess.Popen([os.environ["MCWARM"], "dump", "--source", mc.addr, "--out",
                                   out], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        while "dumping" not in dumper.stderr.readline():
            pass
        time.sleep(0.2)
        mc.proc.send_signal(signal.SIGKILL)
        _, err = dumper.communicate(timeout=120)
        self.assertEqual(dumper.returncode, 69, err)
        self.assertIn("not complete", err)
        self.assertFalse(os.path.exists(os.path.join(out, "DONE")))
        leftovers = [f for f in os.listdir(out) if f.endswith(".tmp")]
        self.assertEqual(leftovers, [], "temporary files left behind")
        # every file that got a final name is whole and intact
        for f in chunk_files(out):
            run_mcwarm("inspect", f, check=0)


class DumpResumeTest(ServerTestCase):
    """mcwarm dump killed (SIGKILL) at any point and run again with the same arguments
    continues from its checkpoint and ends with every item exactly once."""

    # 7 key chunks (jobs) of 16,384 keys; MCW_KILL_ITEMS for bigger runs by hand
    ITEMS = int(os.environ.get("MCW_KILL_ITEMS", "100000"))

    def loaded_server(self, n=ITEMS, seed=7):
        mc = self.server(memory_mb=max(512, n // 1000))
        c = mc.client()
        rnd = random.Random(seed)
        items = {}
        batch = []
        for i in range(n):
            key = b"resume:%06d:%x" % (i, rnd.getrandbits(24))
            value = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 40))) * 20
            flags = rnd.getrandbits(32)
            batch.append((key, value, 0, flags))
            items[key] = (value, flags, 0)
        c.set_many(batch)
        c.close()
        return mc, items

    def kill_after(self, args, delay):
        """Starts mcwarm dump and SIGKILLs it delay seconds after it starts dumping; returns
        True if it was killed (False: it finished first)."""
        p = subprocess.Popen([os.environ["MCWARM"], "dump"] + args, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        line = p.stderr.readline()
        while line and "dumping" not in line and "continuing" not in line:
            line = p.stderr.readline()
        time.sleep(delay)
        killed = p.poll() is None
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=60)
        return killed

    def checkpoint(self, out):
        with open(os.path.join(out, ".mcwarm", "checkpoint")) as f:
            return f.read().splitlines()

    def jobs_done(self, out):
        """The checkpoint's whole "job" lines (a line still being written is not one)."""
        try:
            with open(os.path.join(out, ".mcwarm", "checkpoint")) as f:
                whole = f.read().split("\n")[:-1]
        except FileNotFoundError:
            return []
        return [ln for ln in whole if ln.startswith("job ")]

    def kill_after_a_job(self, args, out, timeout=60):
        """Starts mcwarm dump and SIGKILLs it once its checkpoint records a finished job
        (the workers run at nice 10: on a busy machine the first job's time varies);
        returns True if it was killed (False: it finished first)."""
        p = subprocess.Popen([os.environ["MCWARM"], "dump"] + args, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while p.poll() is None and time.monotonic() < deadline and not self.jobs_done(out):
            time.sleep(0.02)
        killed = p.poll() is None
        p.send_signal(signal.SIGKILL)
        p.communicate(timeout=60)
        return killed

    def test_killed_at_random_points_then_resumed_holds_every_item_once(self):
        mc, items = self.loaded_server()
        out = self.tmp.sub("d")
        # --max-ops stretches the dump over 2.5 s (a job takes 0.8 s on each of the two
        # workers) so the kills land inside it, some before a job ends, some after
        args = ["--source", mc.addr, "--out", out, "--max-ops", "40000", "--threads", "2"]
        rnd = random.Random(int(os.environ.get("MCW_KILL_SEED", "1")))
        kills = 0
        for _ in range(int(os.environ.get("MCW_KILL_POINTS", "6"))):
            if self.kill_after(args, rnd.uniform(0.0, 1.2)):
                kills += 1
                self.assertFalse(os.path.exists(os.path.join(out, "DONE")))
        self.assertGreater(kills, 2, "the dump ended before the kills: nothing was tested")
        if not self.jobs_done(out):  # every kill came before a job ended: one more, after
            self.assertTrue(self.kill_after_a_job(args, out))
        p = run_mcwarm("dump", "--source", mc.addr, "--out", out, "--json", "-q", check=0)
        summary = last_json(p.stdout)
        self.assertTrue(summary["resumed"])
        self.assertGreater(summary["items_resumed"], 0)
        self.assertEqual(summary["items"], len(items))
        self.assertFalse(os.path.exists(os.path.join(out, ".mcwarm")), "spool left behind")
        self.assertEqual([f for f in os.listdir(out) if f.endswith(".tmp")], [])
        DumpTest.assert_dump_matches(self, out, items)
        # the same command once more: the dump is complete, nothing is done
        p = run_mcwarm("dump", "--source", mc.addr, "--out", out, "--json", "-q", check=0)
        self.assertTrue(last_json(p.stdout)["already_complete"])

    def test_resumed_during_the_listing_relists_and_skips_what_is_done(self):
        mc, items = self.loaded_server()
        out = self.tmp.sub("d")
        args = ["--source", mc.addr, "--out", out, "--max-ops", "40000", "--threads", "2"]
        self.assertTrue(self.kill_after_a_job(args, out))
        lines = self.checkpoint(out)
        jobs = [ln for ln in lines if ln.startswith("job ")]
        self.assertGreater(len(jobs), 0, lines)
        # as if the kill had come before the listing ended: drop its keys-done line (every
        # line carries its own crc, so the rest stays valid)
        with open(os.path.join(out, ".mcwarm", "checkpoint"), "w") as f:
            f.write("".join(ln + "\n" for ln in lines if not ln.startswith("keys-done")))
        p = run_mcwarm("dump", "--source", mc.addr, "--out", out, "--json", check=0)
        summary = last_json(p.stdout)
        self.assertIn("key listing to be done again", p.stderr)
        self.assertEqual(summary["keys_listed"], len(items))
        self.assertEqual(summary["keys_duplicate"], summary["items_resumed"])
        self.assertGreater(summary["items_resumed"], 0)
        DumpTest.assert_dump_matches(self, out, items)

    def test_damaged_checkpoint_starts_over(self):
        mc, items = self.loaded_server()
        out = self.tmp.sub("d")
        args = ["--source", mc.addr, "--out", out, "--max-ops", "40000", "--threads", "2"]
        self.assertTrue(self.kill_after_a_job(args, out))
        path = os.path.join(out, ".mcwarm", "checkpoint")
        lines = self.checkpoint(out)
        self.assertGreater(len(lines), 2)
        lines[1] = lines[1].replace("=", "~", 1)  # a damaged line that is not the last
        with open(path, "w") as f:
            f.write("".join(ln + "\n" for ln in lines))
        p = run_mcwarm("dump", "--source", mc.addr, "--out", out, "--json", check=0)
        self.assertIn("checkpoint is damaged", p.stderr)
        self.assertIn("starting the dump over", p.stderr)
        summary = last_json(p.stdout)
        self.assertFalse(summary["resumed"])
        self.assertEqual(summary["items"], len(items))
        DumpTest.assert_dump_matches(self, out, items)

    def test_other_options_or_source_are_refused(self):
        mc, items = self.loaded_server(n=20000)
        out = self.tmp.sub("d")
        args = ["--source", mc.addr, "--out", out, "--max-ops", "10000"]
        self.assertTrue(self.kill_after(args, 0.3))
        p = run_mcwarm("dump", "--source", mc.addr, "--out", out, "--min-ttl", "100",
                       check=64)
        self.assertIn("cannot be continued", p.stderr)
        self.assertIn("other key filters", p.stderr)
        other = self.server()
        p = run_mcwarm("dump", "--source", other.addr, "--out", out, check=64)
        self.assertIn("another server", p.stderr)
        # the refusals changed nothing: the same command continues it
        run_mcwarm("dump", "--source", mc.addr, "--out", out, "-q", check=0)
        DumpTest.assert_dump_matches(self, out, items)

    def test_source_restarted_since_is_refused(self):
        mc, _ = self.loaded_server(n=20000)
        out = self.tmp.sub("d")
        self.assertTrue(self.kill_after(["--source", mc.addr, "--out", out, "--max-ops",
                                         "10000"], 0.3))
        mc.restart()
        p = run_mcwarm("dump", "--source", mc.addr, "--out", out, check=64)
        self.assertIn("restarted", p.stderr)

    def test_disk_full_then_resumed_after_space_is_freed(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to mount a small tmpfs (disk full)")
        mc, items = self.loaded_server()
        mnt = self.tmp.sub("small")
        os.makedirs(mnt)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", mnt], check=True)
        try:
            out = os.path.join(mnt, "d")
            p = run_mcwarm("dump", "--source", mc.addr, "--out", out, "--chunk-size", "1M",
                           "--json", check=74)
            self.assertIn("No space left on device", p.stderr)
            self.assertFalse(os.path.exists(os.path.join(out, "DONE")))
            self.assertTrue(any(ln.startswith("job ") for ln in self.checkpoint(out)))
            subprocess.run(["mount", "-o", "remount,size=128m", mnt], check=True)
            p = run_mcwarm("dump", "--source", mc.addr, "--out", out, "--chunk-size", "1M",
                           "--json", "-q", check=0)
            summary = last_json(p.stdout)
            self.assertTrue(summary["resumed"])
            self.assertGreater(summary["items_resumed"], 0)
            DumpTest.assert_dump_matches(self, out, items)
        finally:
            subprocess.run(["umount", "-l", mnt], check=False)


if __name__ == "__main__":
    unittest.main()
