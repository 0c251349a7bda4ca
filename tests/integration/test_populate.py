"""`mcwarm populate` and `mcwarm verify` against real memcached servers started here.

Every outcome is checked twice: by `mcwarm verify`, and item by item with this suite's
own meta-protocol client (which shares no code with mcwarm).
"""
import json
import os
import shutil
import signal
import subprocess
import time
import unittest

from mcwtest import (BIG_ITEMS, MCWARM, ServerTestCase, chunk_files, fill_big,
                     inspect_records, last_json, run_mcwarm, stop_process)
from test_dump import tricky_items

TTL_SLACK_S = 2  # each server counts whole seconds


class PopulateTestCase(ServerTestCase):
    def dump(self, src, *args):
        out = self.tmp.sub("dump%d" % len(os.listdir(self.tmp.path)))
        run_mcwarm("dump", "--source", src.addr, "--out", out, "-q", *args, check=0)
        return out

    def populate(self, dst, from_dir, state, *args, check=0):
        p = run_mcwarm("populate", "--dest", dst.addr, "--from", from_dir, "--state", state,
                       "--json", "-q", *args, check=check)
        return last_json(p.stdout), p.stderr

    def verify(self, src, dst, *args, check=0):
        p = run_mcwarm("verify", "--source", src.addr, "--dest", dst.addr, "--json", "-q",
                       *args, check=check)
        return last_json(p.stdout)

    def assert_holds(self, client, items):
        """Our own client: every item in the server, equal value, flags and TTL."""
        now = time.time()
        for key, (value, flags, truth) in items.items():
            got = client.get(key)
            self.assertIsNotNone(got, "key %r missing in the destination" % key)
            self.assertEqual(got[0], value, "value of %r" % key)
            self.assertEqual(got[1], flags, "flags of %r" % key)
            if truth == 0:
                self.assertEqual(got[2], -1, "%r should never expire" % key)
            else:
                self.assertLessEqual(abs(now + got[2] - truth), TTL_SLACK_S + 1,
                                     "TTL of %r" % key)


class RoundTripTest(PopulateTestCase):
    def test_tricky_dataset_round_trip_verifies_100_percent(self):
        src, dst = self.server(), self.server()
        items = tricky_items(src.client())
        out = self.dump(src)
        summary, _ = self.populate(dst, out, self.tmp.sub("state"))
        self.assertTrue(summary["ok"])
        self.assertEqual(summary["items_sent"], len(items))
        self.assertEqual(summary["already_present"], 0)
        self.assertEqual(summary["manifest_files"], summary["manifest_files_applied"])
        v = self.verify(src, dst, "--min-ratio", "1")
        self.assertEqual(v["equal"], len(items))
        self.assertEqual(v["checked"], len(items))
        self.assertEqual(v["warm_ratio"], 1)
        self.assert_holds(dst.client(), items)
        # a second pass applies nothing again
        again, _ = self.populate(dst, out, self.tmp.sub("state"))
        self.assertEqual(again["items_sent"], 0)

    def test_add_mode_keeps_live_values_and_set_mode_overwrites(self):
        src, dst = self.server(), self.server()
        sc, dc = src.client(), dst.client()
        for i in range(2000):
            sc.set(b"k%d" % i, b"dumped-%d" % i, flags=1)
        for i in range(0, 2000, 10):  # live traffic wrote these first
            dc.set(b"k%d" % i, b"live-%d" % i, flags=2)
        out = self.dump(src)
        summary, _ = self.populate(dst, out, self.tmp.sub("state-add"))
        self.assertEqual(summary["already_present"], 200)
        for i in range(2000):
            want = (b"live-%d" % i, 2) if i % 10 == 0 else (b"dumped-%d" % i, 1)
            self.assertEqual(dc.get(b"k%d" % i)[:2], want)
        v = self.verify(src, dst, "--min-ratio", "0", "--mismatches", "100")
        self.assertEqual(v["value_differs"], 200)
        self.assertEqual(v["equal"], 1800)
        self.assertEqual(len(v["mismatches"]), 100)
        self.verify(src, dst, "--min-ratio", "1", check=2)  # below the ratio: exit 2
        summary, _ = self.populate(dst, out, self.tmp.sub("state-set"), "--mode", "set")
        self.assertEqual(summary["already_present"], 0)
        self.assertEqual(self.verify(src, dst, "--min-ratio", "1")["equal"], 2000)

    def test_verify_reports_each_kind_of_difference(self):
        src, dst = self.server(), self.server()
        sc, dc = src.client(), dst.client()
        for i in range(100):
            sc.set(b"v%d" % i, b"x%d" % i, ttl=3600 if i % 2 else 0, flags=i)
            dc.set(b"v%d" % i, b"x%d" % i, ttl=3600 if i % 2 else 0, flags=i)
        dc.command(b"md v1", until=b"HD")  # missing
        dc.set(b"v2", b"other", flags=2)  # value
        dc.set(b"v4", b"x4", flags=99)  # flags
        dc.set(b"v5", b"x5", ttl=60, flags=5)  # TTL
        v = self.verify(src, dst, "--min-ratio", "0.9")
        self.assertEqual((v["missing"], v["value_differs"], v["flags_differ"],
                          v["ttl_differs"], v["equal"]), (1, 1, 1, 1, 96))
        self.assertEqual(v["checked"], 100)
        # sampling checks about N keys, the same ones each time
        s1 = self.verify(src, dst, "--sample", "20", "--min-ratio", "0")
        s2 = self.verify(src, dst, "--sample", "20", "--min-ratio", "0")
        self.assertEqual(s1["checked"], s2["checked"])
        self.assertLess(s1["checked"], 60)
        self.assertGreater(s1["checked"], 3)


class DamageTest(PopulateTestCase):
    def test_damaged_files_report_apply_good_blocks_and_repair_completes(self):
        src, dst = self.server(memory_mb=512), self.server(memory_mb=512)
        sc = src.client()
        sc.set_many([(b"d%06d" % i, (b"%06d" % i) * 300, 0, i) for i in range(40000)])
        good = self.dump(src, "--chunk-size", "4M")
        names = sorted(os.path.basename(f) for f in chunk_files(good))
        self.assertGreaterEqual(len(names), 6)
        bad = self.tmp.sub("damaged")
        shutil.copytree(good, bad)
        block = 262144
        # truncated at block boundaries: right after the header, mid-file, before the footer
        for name, blocks in ((names[0], 0), (names[1], 7), (names[2], None)):
            path = os.path.join(bad, name)
            size = os.path.getsize(path) - 4096 if blocks is None else 4096 + blocks * block
            os.truncate(path, size)
        # a flipped bit inside block 5
        with open(os.path.join(bad, names[3]), "r+b") as f:
            f.seek(4096 + 5 * block + 1000)
            b = f.read(1)
            f.seek(4096 + 5 * block + 1000)
            f.write(bytes([b[0] ^ 0x20]))
        # a name whose checksum does not match the content
        wrong = names[4][:-12] + "00000000.mcw"
        os.rename(os.path.join(bad, names[4]), os.path.join(bad, wrong))

        state = self.tmp.sub("state")
        summary, err = self.populate(dst, bad, state, check=1)  # not complete
        self.assertIn("%s: no valid footer" % names[0], err)
        self.assertIn("%s: block 5 at offset %d: checksum mismatch" % (names[3],
                                                                        4096 + 5 * block), err)
        self.assertIn("%s: the name's checksum does not match" % wrong, err)
        self.assertEqual(summary["blocks_bad"], 1)
        self.assertGreater(summary["files_partial"], 0)
        # every record that is readable in a damaged copy was applied, and nothing else
        readable = {r["key"] for r in inspect_records(chunk_files(bad), allow_damage=True)}
        dc = dst.client()
        present = {b"d%06d" % i for i in range(40000) if dc.get(b"d%06d" % i) is not None}
        self.assertEqual(present, readable)
        self.assertLess(len(present), 40000)

        # repair: the good files come back; the next pass completes them
        os.remove(os.path.join(bad, wrong))
        for name in names[:5]:
            shutil.copy(os.path.join(good, name), os.path.join(bad, name))
        summary, _ = self.populate(dst, bad, state)
        self.assertTrue(summary["ok"])
        self.assertEqual(summary["manifest_files_applied"], len(names))
        # only what was missing was sent again (nothing applied twice, add mode or not)
        self.assertEqual(summary["already_present"], 0)
        self.assertEqual(self.verify(src, dst, "--min-ratio", "1")["equal"], 40000)


class NotWholeTest(PopulateTestCase):
    def test_file_without_footer_is_not_applied_before_done(self):
        src, dst = self.server(), self.server()
        src.client().set_many([(b"w%06d" % i, b"v" * 700, 0, 0) for i in range(20000)])
        full = self.dump(src, "--chunk-size", "4M")
        names = [os.path.basename(f) for f in chunk_files(full)]
        live = self.tmp.sub("live")
        os.makedirs(live)
        # the first file, its final name but only half of it there (a torn read-only view)
        with open(os.path.join(full, names[0]), "rb") as f:
            data = f.read()
        with open(os.path.join(live, names[0]), "wb") as f:
            f.write(data[:len(data) // 2])
        state = self.tmp.sub("state")
        summary, err = self.populate(dst, live, state, check=1)
        self.assertEqual(summary["items_sent"], 0, "applied a file that is not whole")
        self.assertEqual(summary["files_not_whole"], 1)
        self.assertEqual(dst.client().stats()["curr_items"], "0")
        # whole now, and the rest of the dump: everything is applied, once
        for name in names + ["MANIFEST", "DONE"]:
            shutil.copy(os.path.join(full, name), os.path.join(live, name))
        summary, _ = self.populate(dst, live, state)
        self.assertTrue(summary["ok"])
        self.assertEqual(summary["files_not_whole"], 0)
        self.assertEqual(summary["already_present"], 0)
        self.assertEqual(self.verify(src, dst, "--min-ratio", "1")["equal"], 20000)


class FollowTest(PopulateTestCase):
    def test_follow_applies_files_as_they_appear_and_stops_at_the_manifest(self):
        src, dst = self.server(), self.server()
        src.client().set_many([(b"f%06d" % i, b"v" * 500, 0, 0) for i in range(60000)])
        full = self.dump(src, "--chunk-size", "2M")
        live = self.tmp.sub("live")
        os.makedirs(live)
        pop = subprocess.Popen([MCWARM, "populate", "--dest", dst.addr, "--from", live,
                                "--state", self.tmp.sub("state"), "--follow", "--json", "-q"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for f in chunk_files(full):
                # as the dumper does: a temporary name, then the final one
                tmp = os.path.join(live, "chunk-incoming.tmp")
                shutil.copy(f, tmp)
                os.rename(tmp, os.path.join(live, os.path.basename(f)))
                time.sleep(0.15)
            # it applies the files while they arrive, before any DONE (a bounded wait:
            # a loaded machine or a sanitizer build is slower)
            deadline = time.time() + 60
            watcher = dst.client()
            while watcher.stats()["curr_items"] != "60000" and time.time() < deadline:
                self.assertIsNone(pop.poll(), "populate --follow stopped before DONE")
                time.sleep(0.2)
            self.assertIsNone(pop.poll(), "populate --follow stopped before DONE")
            self.assertEqual(watcher.stats()["curr_items"], "60000")
            shutil.copy(os.path.join(full, "MANIFEST"), os.path.join(live, "MANIFEST"))
            shutil.copy(os.path.join(full, "DONE"), os.path.join(live, "DONE"))
            out, err = pop.communicate(timeout=60)
        finally:
            stop_process(pop)
        self.assertEqual(pop.returncode, 0, err)
        self.assertTrue(last_json(out)["ok"])
        self.assertEqual(self.verify(src, dst, "--min-ratio", "1")["equal"], 60000)


class FaultTest(PopulateTestCase):
    def test_destination_restarted_mid_run_completes(self):
        src, dst = self.server(memory_mb=1024), self.server(memory_mb=1024)
        src.client().set_many([(b"r%06d" % i, b"%d" % i * 800, 0, i) for i in range(120000)])
        out = self.dump(src, "--chunk-size", "8M")
        state = self.tmp.sub("state")
        pop = subprocess.Popen([MCWARM, "populate", "--dest", dst.addr, "--from", out,
                                "--state", state, "--json", "-q", "--threads", "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            journal = os.path.join(state, "journal")
            deadline = time.time() + 60
            while time.time() < deadline:
                if os.path.exists(journal) and "\ndone " in open(journal).read():
                    break
                time.sleep(0.01)
            dst.restart()  # an empty server on the same port
            out_text, err = pop.communicate(timeout=120)
        finally:
            stop_process(pop)
        self.assertEqual(pop.returncode, 0, err)
        summary = last_json(out_text)
        self.assertGreaterEqual(summary["reconnects"], 1)
        self.assertIn("new memcached process", err)
        self.assertEqual(self.verify(src, dst, "--min-ratio", "1")["equal"], 120000)

    def test_killed_at_random_points_then_run_again_completes(self):
        import random
        import test_dump
        src, items = test_dump.DumpResumeTest.loaded_server(self, n=test_dump.DumpResumeTest.ITEMS)
        dump = self.tmp.sub("dump")
        run_mcwarm("dump", "--source", src.addr, "--out", dump, "--chunk-size", "1M", "-q",
                   check=0)
        dst = self.server(memory_mb=max(512, len(items) // 1000))  # no evictions
        state = self.tmp.sub("state")
        args = [MCWARM, "populate", "--dest", dst.addr, "--from", dump, "--state", state,
                "--max-ops", "40000", "--threads", "2"]
        rnd = random.Random(int(os.environ.get("MCW_KILL_SEED", "1")))
        kills = 0
        for _ in range(int(os.environ.get("MCW_KILL_POINTS", "6"))):
            p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rnd.uniform(0.1, 1.0))
            kills += p.poll() is None
            p.send_signal(signal.SIGKILL)
            p.wait()
        self.assertGreater(kills, 2, "populate ended before the kills: nothing was tested")
        summary, _ = self.populate(dst, dump, state)
        self.assertTrue(summary["ok"])
        self.assertEqual(self.verify(src, dst, "--min-ratio", "1")["warm_ratio"], 1.0)

    def test_too_large_values_are_skipped_and_live_keys_kept(self):
        src = self.server(item_max="2m")
        dst = self.server()  # -I 1m
        sc, dc = src.client(), dst.client()
        sc.set(b"big", b"B" * 1500000)
        sc.set(b"small", b"s")
        dc.set(b"big", b"live-value")
        out = self.dump(src)
        # a destination that stores smaller items than the source is refused, with the fix
        summary, err = self.populate(dst, out, self.tmp.sub("state"), check=69)
        self.assertIn("item_size_max", err)
        self.assertIn("-I 2m", err)
        self.assertIn("--allow-smaller-items", summary["error"])
        self.assertEqual(summary["items_sent"], 0)
        self.assertIsNone(dc.get(b"small"))
        summary, _ = self.populate(dst, out, self.tmp.sub("state"), "--allow-smaller-items")
        self.assertEqual(summary["too_large"], 1)
        self.assertEqual(dc.get(b"big")[0], b"live-value")  # not deleted by a failed ms
        self.assertEqual(dc.get(b"small")[0], b"s")
        self.assertEqual(summary["server_errors"], 0)

    def test_exact_item_size_limit(self):
        # values right at the destination's limit are sent, one byte more is skipped
        src = self.server(item_max="2m")
        dst = self.server()
        sc = src.client()
        limit = 1048576 - 48 - 8 - 2  # item header, CAS, \r\n
        for k, fl in ((b"a", 0), (b"kkkkkkkkkk", 7)):
            fits = limit - (len(k) + 1) - (4 if fl else 0)
            sc.set(k + b"-fits", b"f" * (fits - 5), flags=fl)  # key grows by 5: "-fits"
            sc.set(k + b"-over", b"o" * (fits - 5 + 1), flags=fl)
        out = self.dump(src)
        summary, _ = self.populate(dst, out, self.tmp.sub("state"), "--allow-smaller-items")
        self.assertEqual(summary["too_large"], 2)
        self.assertEqual(summary["server_errors"], 0)
        dc = dst.client()
        self.assertIsNotNone(dc.get(b"a-fits"))
        self.assertIsNotNone(dc.get(b"kkkkkkkkkk-fits"))
        self.assertIsNone(dc.get(b"a-over"))

    def test_expired_in_transit_is_skipped(self):
        src, dst = self.server(), self.server()
        sc = src.client()
        for i in range(50):
            sc.set(b"short%d" % i, b"s", ttl=3)
            sc.set(b"long%d" % i, b"l", ttl=3600)
        out = self.dump(src)
        time.sleep(4)
        summary, _ = self.populate(dst, out, self.tmp.sub("state"))
        self.assertEqual(summary["expired"], 50)
        self.assertEqual(summary["items_sent"], 50)
        dc = dst.client()
        self.assertIsNone(dc.get(b"short0"))
        got = dc.get(b"long0")
        self.assertLessEqual(abs(got[2] - sc.get(b"long0")[2]), TTL_SLACK_S)

    def test_refusals(self):
        dst = self.server()
        empty = self.tmp.sub("empty")
        os.makedirs(empty)
        summary, err = self.populate(dst, empty, self.tmp.sub("s"), check=1)
        self.assertIn("no chunk file yet", err)
        run_mcwarm("populate", "--dest", dst.addr, "--from", empty, check=64)
        p = run_mcwarm("populate", "--help", check=0)
        self.assertIn("--follow", p.stdout)
        # a journal of another dump is refused
        src = self.server()
        src.client().set(b"a", b"1")
        d1, d2 = self.dump(src), self.dump(src)
        self.populate(dst, d1, self.tmp.sub("s1"))
        _, err = self.populate(dst, d2, self.tmp.sub("s1"), check=64)
        self.assertIn("belongs to dump", err)


class CapacityTest(PopulateTestCase):
    """The destination's memory, limits and identity, checked before and while sending."""

    def big_dump(self):
        src = self.server()
        fill_big(src.client())
        return src, self.dump(src)

    def test_too_small_destination_is_refused_then_accepted_with_evictions_reported(self):
        src, out = self.big_dump()
        dst = self.server(memory_mb=64)
        summary, err = self.populate(dst, out, self.tmp.sub("s1"), check=3)
        # refused before sending, with the numbers and the fix
        self.assertFalse(summary["ok"])
        self.assertEqual(summary["items_sent"], 0)
        self.assertEqual(dst.client().stats()["curr_items"], "0")
        for text in ("is too small", "%d items" % BIG_ITEMS, "memory limit is 64.0 MiB",
                     "-m 64", "--allow-shrink"):
            self.assertIn(text, summary["error"])
        self.assertIn("is too small", err)
        # accepted as a shrinking resize: everything is sent, the evictions are reported
        summary, err = self.populate(dst, out, self.tmp.sub("s2"), "--allow-shrink", check=3)
        self.assertEqual(summary["items_sent"], BIG_ITEMS)
        self.assertTrue(summary["complete"])
        stats = dst.client().stats()
        self.assertGreater(summary["evictions"], 0)
        self.assertEqual(summary["evictions"], int(stats["evictions"]))
        self.assertEqual(summary["evicted_unfetched"], int(stats["evicted_unfetched"]))
        self.assertIn("evicted %d items" % summary["evictions"], summary["error"])
        self.assertIn("is evicting items", err)
        # a destination large enough takes it all, no eviction, exit 0
        big = self.server(memory_mb=160)
        summary, _ = self.populate(big, out, self.tmp.sub("s3"))
        self.assertEqual(summary["evictions"], 0)
        self.assertEqual(big.client().stats()["curr_items"], str(BIG_ITEMS))

    def test_destination_without_evictions_stops_at_out_of_memory(self):
        src, out = self.big_dump()
        dst = self.server(memory_mb=64, extra=["-M"])
        summary, err = self.populate(dst, out, self.tmp.sub("s"), "--allow-shrink",
                                     "--threads", "1", check=3)
        self.assertIn("does not evict (started with -M)", summary["error"])
        self.assertIn("without -M", err)
        self.assertGreaterEqual(summary["out_of_memory"], 1)
        # stopped early: without the stop, each of the ~4,000 items that do not fit would
        # be sent and refused; one worker has at most 4 batches of 512 in flight
        held = int(dst.client().stats()["curr_items"])
        self.assertLess(summary["server_errors"], (BIG_ITEMS - held) // 2)
        self.assertLess(summary["items_sent"], BIG_ITEMS)

    def test_the_dumps_own_source_is_refused(self):
        src = self.server()
        src.client().set_many([(b"s%04d" % i, b"v", 0, 0) for i in range(100)])
        out = self.dump(src)
        # another name of the same server: only its pid and start time give it away
        p = run_mcwarm("populate", "--dest", "localhost:%d" % src.port, "--from", out,
                       "--state", self.tmp.sub("s"), "--json", "-q", check=64)
        self.assertIn("is the memcached this dump was taken from", last_json(p.stdout)["error"])
        self.assertEqual(last_json(p.stdout)["items_sent"], 0)
        # the same address with a new process (restarted, refilled from its dump) is fine
        src.restart()
        summary, _ = self.populate(src, out, self.tmp.sub("s2"))
        self.assertEqual(summary["items_sent"], 100)

    def test_follow_checks_the_manifest_when_it_appears(self):
        src = self.server()
        fill_big(src.client(), n=3000)  # 30 MB
        full = self.dump(src, "--chunk-size", "8M")
        dst = self.server(memory_mb=16)
        live = self.tmp.sub("live")
        os.makedirs(live)
        for f in chunk_files(full)[:1]:  # a dump still running: no MANIFEST yet
            shutil.copy(f, os.path.join(live, os.path.basename(f)))
        pop = subprocess.Popen([MCWARM, "populate", "--dest", dst.addr, "--from", live,
                                "--state", self.tmp.sub("state"), "--follow", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1.5)
            self.assertIsNone(pop.poll(), "populate --follow stopped before the MANIFEST")
            for name in [os.path.basename(f) for f in chunk_files(full)[1:]] + ["MANIFEST",
                                                                                 "DONE"]:
                shutil.copy(os.path.join(full, name), os.path.join(live, name))
            out_text, err = pop.communicate(timeout=60)
        finally:
            stop_process(pop)
        self.assertIn("no MANIFEST yet", err)
        self.assertEqual(pop.returncode, 3, err)
        self.assertIn("too small for the dump's MANIFEST", last_json(out_text)["error"])


if __name__ == "__main__":
    unittest.main()
