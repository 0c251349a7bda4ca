"""Warm-ups through an object store (issue 15): `mcwarm dump --out s3://BUCKET/PREFIX`
and `mcwarm populate --from s3://BUCKET/PREFIX` against a real S3 API server (s3rver,
started by test_s3's fixture S3Fixture) behind s3proxy.py, which checks every request's
SigV4 signature and every body's x-amz-checksum-crc32c and injects faults.

DumpToS3Test downloads the dump's objects (mcw-s3-probe) into a directory and checks them
item by item with `mcwarm inspect`, as test_dump.py checks a dump directory. s3rver has no
AbortMultipartUpload: a resumed dump ends a killed run's uploads by completing them with
one empty part and deleting the object; that no upload is left is checked in s3rver's own
storage (its per-upload directories).

PopulateFromS3Test makes its dumps with `mcwarm dump --out DIR` and uploads each file under
its name (mcw-s3-probe put, signed and CRC-32C checked by the proxy), MANIFEST and DONE
last, exactly the layout a dump to s3:// writes (docs/format.md).
"""
import json
import os
import random
import signal
import subprocess
import threading
import time
import unittest

from mcwtest import MCWARM, chunk_files, inspect_records, last_json
import test_ctl  # its checks, not its tests
import test_dump  # its checks, not its tests: a module import keeps them out of this run
from test_populate import PopulateTestCase
from test_s3 import BUCKET, Probe, S3Fixture


def s3rver_uploads(root):
    """Unfinished multipart uploads s3rver holds (one directory each under its
    '<bucket>/._S3rver_uploads' resource)."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        if os.path.basename(dirpath).endswith("_uploads"):
            found += dirnames
    return found


def journal_files(state):
    """(job, part) of every file the journal marks done."""
    done = set()
    with open(os.path.join(state, "journal")) as f:
        for line in f:
            if line.startswith("done "):
                fields = dict(t.split("=", 1) for t in line.split()[1:])
                done.add((int(fields["job"]), int(fields["part"])))
    return done


def backlog_state(state):
    with open(os.path.join(state, "backlog")) as f:
        return dict(line.strip().split("=", 1) for line in f if "=" in line)


class S3WarmCase(S3Fixture, PopulateTestCase):
    """A memcached test case with an S3 server and the signing, fault-injecting proxy
    (test_s3's S3Fixture: one per class, reset before each test); each test gets its own
    prefix."""

    def setUp(self):
        super().setUp()
        self.home = self.tmp.sub("home")
        os.makedirs(self.home)
        self.probe = Probe(self.home, self.proxy.url)
        self.prefix = "warm-%s-%d" % (self.id().split(".")[-1][:40], random.randrange(1 << 30))

    def url(self, prefix=None):
        return "s3://%s/%s" % (BUCKET, prefix or self.prefix)

    def upload(self, directory, pause_s=0.0, names=None):
        """Each chunk file under its name, then MANIFEST, then DONE (a dump's order)."""
        chunks = [os.path.basename(f) for f in chunk_files(directory)]
        for name in (names or chunks + ["MANIFEST", "DONE"]):
            self.probe.run("put", BUCKET, "%s/%s" % (self.prefix, name),
                           os.path.join(directory, name))
            if pause_s:
                time.sleep(pause_s)
        return chunks

    def env(self, **extra):
        e = dict(self.probe.env)
        e.update(extra)
        return e

    def mcwarm(self, *args, env=None, check=0, background=False):
        e = self.env(**(env or {}))
        argv = [MCWARM] + [str(a) for a in args]
        if background:
            return subprocess.Popen(argv, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, errors="replace")
        p = subprocess.run(argv, env=e, capture_output=True, text=True, errors="replace",
                           timeout=600)
        if check is not None and p.returncode != check:
            raise AssertionError("mcwarm %s exited %d (wanted %d)\nstdout:\n%s\nstderr:\n%s" % (
                " ".join(argv[1:]), p.returncode, check, p.stdout[-3000:], p.stderr[-4000:]))
        return p

    def listing(self):
        out, _, _ = self.probe.run("list", BUCKET, self.prefix + "/")
        keys = {}
        for line in out.splitlines():
            if line.startswith("key "):
                _, key, size, _ = line.split(" ", 3)
                keys[key[len(self.prefix) + 1:]] = int(size)
        return keys

    def download(self):
        """Every object under the prefix into a new directory; returns its path."""
        d = self.tmp.sub("copy-%d" % len(os.listdir(self.tmp.path)))
        os.makedirs(d)
        for name, size in self.listing().items():
            self.assertNotIn("/", name, "only chunks, MANIFEST and DONE are left: %r" % name)
            path = os.path.join(d, name)
            if size == 0:
                open(path, "wb").close()
                continue
            self.probe.run("get", BUCKET, self.prefix + "/" + name, 0, size, path)
        return d

    def populate_s3(self, dst, state, *args, check=0, env=None, prefix=None):
        p = self.mcwarm("populate", "--dest", dst.addr, "--from", self.url(prefix), "--state",
                        state, "--json", "-q", *args, check=check, env=env)
        return last_json(p.stdout), p.stderr

    def dump_keys(self, src, letter, n, value, flags=0, chunk_size="2M"):
        """n items letter000000... in src, dumped: (keys, dump directory, chunk names)."""
        keys = [b"%s%06d" % (letter, i) for i in range(n)]
        src.client().set_many([(k, value, 0, flags) for k in keys])
        out = self.dump(src, "--chunk-size", chunk_size)
        return keys, out, [os.path.basename(f) for f in chunk_files(out)]

    def present(self, client, keys):
        return {k for k in keys if client.get(k) is not None}


class DumpToS3Test(S3WarmCase):
    def dump_args(self, mc, state, *extra):
        return ["dump", "--source", mc.addr, "--out", self.url(), "--state", state, "-q",
                "--json"] + list(extra)

    def test_round_trip_checked_item_by_item(self):
        mc = self.server()
        c = mc.client()
        items = test_dump.tricky_items(c)
        c.close()
        state = self.tmp.sub("state")
        # 8M chunks: files of two parts and a short last one, several files per worker
        p = self.mcwarm(*self.dump_args(mc, state, "--chunk-size", "8M", "--threads", "2"),
                        check=0)
        summary = last_json(p.stdout)
        self.assertEqual(summary["items"], len(items))
        self.assertEqual(summary["out"], self.url())
        self.assertGreater(summary["upload"]["parts"], summary["files"])
        names = self.listing()
        self.assertIn("MANIFEST", names)
        self.assertIn("DONE", names)
        chunks = [n for n in names if n.endswith(".mcw")]
        self.assertEqual(len(chunks), summary["files"])
        self.assertEqual(set(names), set(chunks) | {"MANIFEST", "DONE"},
                         "temporary objects are left")
        # every part went up with a CRC-32C the proxy checked, signed with the secret
        parts = [r for r in self.proxy.log if "partNumber=" in r["query"]]
        self.assertEqual(len(parts), summary["upload"]["parts"])
        for r in parts:
            self.assertIn("x-amz-checksum-crc32c", {k.lower() for k in r["headers"]})
        copy = self.download()
        test_dump.DumpTest.assert_dump_matches(self, copy, items)
        with open(os.path.join(copy, "MANIFEST")) as f:
            manifest = f.read()
        for n in chunks:
            self.assertIn("chunk %s " % n, manifest)
        # populate reads the downloaded copy as any dump directory
        dest = self.server()
        self.mcwarm("populate", "--dest", dest.addr, "--from", copy, "--state",
                    self.tmp.sub("pstate"), "--once", "-q", check=0)
        dc = dest.client()
        for key in list(items)[:200] + [b"biggest-value", b"flags-max"]:
            value, flags, _ = items[key]
            got = dc.get(key)
            self.assertIsNotNone(got, key)
            self.assertEqual((got[0], got[1]), (value, flags), key)
        dc.close()
        # the same command again: complete already, nothing uploaded
        self.proxy.log.clear()
        p = self.mcwarm(*self.dump_args(mc, state), check=0)
        self.assertTrue(last_json(p.stdout)["already_complete"])
        self.assertEqual([], [r for r in self.proxy.log if r["method"] in ("PUT", "POST")])

    def loaded(self, n=4000, size=3000):
        mc = self.server(memory_mb=256)
        c = mc.client()
        items = {}
        batch = []
        for i in range(n):
            key = b"s3:%06d" % i
            value = (b"%06d" % i) * (size // 6)
            batch.append((key, value, 0, i))
            items[key] = (value, i, 0)
        c.set_many(batch)
        c.close()
        return mc, items

    def test_killed_mid_upload_then_resumed_exact_and_no_upload_left(self):
        mc, items = self.loaded(n=8000)  # about 24 MB
        state = self.tmp.sub("state")
        args = self.dump_args(mc, state, "--chunk-size", "8M", "--threads", "2",
                              "--max-bytes", "6M")
        proc = subprocess.Popen([os.environ["MCWARM"]] + args, env=self.env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline and not any(
                "partNumber=" in r["query"] for r in list(self.proxy.log)):
            time.sleep(0.05)
        # Hold every later request (then refuse it: it never reaches the store), and kill: an upload the
        # store created had a second to reach the journal. (A kill between the store's
        # answer and the journal line leaves an upload only a ListMultipartUploads finds,
        # and s3rver has none: docs/format.md.)
        self.proxy.faults = [{"delay": 3, "status": 503, "code": "SlowDown"}] * 64
        time.sleep(1.0)
        killed = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
        self.proxy.faults = []
        self.assertTrue(killed, "the dump ended before the kill: nothing was tested")
        names = self.listing()
        self.assertNotIn("DONE", names)
        self.assertTrue(s3rver_uploads(self.s3.dir), "no upload was in flight at the kill")
        p = self.mcwarm(*args, check=0)
        summary = last_json(p.stdout)
        self.assertTrue(summary["resumed"])
        self.assertEqual(summary["items"], len(items))
        self.assertEqual([], s3rver_uploads(self.s3.dir), "an unfinished upload is left")
        self.assertFalse(os.path.exists(os.path.join(state, ".mcwarm")), "state left behind")
        test_dump.DumpTest.assert_dump_matches(self, self.download(), items)

    def test_wrong_secret_is_exit_77(self):
        mc, _ = self.loaded(n=100)
        p = self.mcwarm(*self.dump_args(mc, self.tmp.sub("state")), check=77,
                        env=self.env(AWS_SECRET_ACCESS_KEY="wrong"))
        self.assertIn("SignatureDoesNotMatch", p.stderr)
        self.assertEqual({}, self.listing())

    def test_missing_bucket_is_exit_69(self):
        mc, _ = self.loaded(n=100)
        p = self.mcwarm("dump", "--source", mc.addr, "--out", "s3://no-such-bucket/x",
                        "--state", self.tmp.sub("state"), "-q", check=69)
        self.assertIn("no-such-bucket", p.stderr)

    def test_options_and_memory_refusals(self):
        mc, _ = self.loaded(n=10)
        p = self.mcwarm("dump", "--source", mc.addr, "--out", self.url(), check=64)
        self.assertIn("--state", p.stderr)
        p = self.mcwarm("dump", "--source", mc.addr, "--out", self.url(), "--state",
                        self.tmp.sub("s"), "--writer", "writev", check=64)
        self.assertIn("writev", p.stderr)
        p = self.mcwarm("dump", "--source", mc.addr, "--out", self.url(), "--state",
                        self.tmp.sub("s2"), "--memory", "16M", "--threads", "2", check=64)
        self.assertIn("upload parts", p.stderr)
        # a prefix that holds something and no checkpoint to continue is refused
        self.probe.run("put", BUCKET, self.prefix + "/other", __file__)
        p = self.mcwarm(*self.dump_args(mc, self.tmp.sub("s3")), check=64)
        self.assertIn("not empty", p.stderr)

    def test_injected_errors_are_retried(self):
        mc, items = self.loaded(n=3000)
        self.proxy.faults = [{"status": 503, "code": "SlowDown", "method": "PUT"},
                             {"status": 500, "code": "InternalError", "method": "PUT"},
                             {"drop": "request", "method": "PUT"}]
        p = self.mcwarm(*self.dump_args(mc, self.tmp.sub("state"), "--threads", "1"), check=0)
        summary = last_json(p.stdout)
        self.assertEqual([], self.proxy.faults, "every fault was met")
        # the two error answers are retries of ours; the dropped request may be resent by
        # libcurl itself on a reused connection (test_s3.py says when), unseen by our count
        self.assertGreaterEqual(summary["upload"]["retries"], 2)
        test_dump.DumpTest.assert_dump_matches(self, self.download(), items)

    def test_store_failing_past_the_retries_is_tempfail_and_resumable(self):
        mc, items = self.loaded(n=3000)
        state = self.tmp.sub("state")
        # the first try and the OBJS_RETRIES_DEFAULT (6) retries of one part all fail
        self.proxy.faults = [{"status": 503, "code": "SlowDown", "method": "PUT"}] * 7
        p = self.mcwarm(*self.dump_args(mc, state, "--threads", "1"), check=75)
        self.assertEqual([], self.proxy.faults)
        self.assertIn("SlowDown", p.stderr)
        self.assertEqual([], s3rver_uploads(self.s3.dir),
                         "the failed run left its open upload to bill")
        # the state belongs to this URL: neither a directory dump nor another prefix takes it
        p = self.mcwarm("dump", "--source", mc.addr, "--out", state, "-q", check=64)
        self.assertIn("object store", p.stderr)
        p = self.mcwarm("dump", "--source", mc.addr, "--out", self.url() + "-other", "--state",
                        state, "-q", check=64)
        self.assertIn("another s3:// URL", p.stderr)
        p = self.mcwarm(*self.dump_args(mc, state, "--threads", "1"), check=0)
        self.assertEqual(last_json(p.stdout)["items"], len(items))
        self.assertEqual([], s3rver_uploads(self.s3.dir))
        test_dump.DumpTest.assert_dump_matches(self, self.download(), items)

    def test_max_bytes_paces_the_upload(self):
        mc, items = self.loaded(n=5000)  # 15 MB: three parts on the one worker
        rate = 2 << 20
        p = self.mcwarm(*self.dump_args(mc, self.tmp.sub("state"), "--threads", "1",
                                        "--max-bytes", "2M"), check=0)
        summary = last_json(p.stdout)
        self.assertEqual(summary["items"], len(items))
        self.assertGreaterEqual(summary["upload"]["parts"], 3)
        self.assertGreaterEqual(summary["upload"]["bytes"], summary["value_bytes"])
        self.assertGreaterEqual(summary["upload"]["rate_wait_seconds"], 0)
        # Lower bounds only (a busy machine is slower, never faster): after the first part
        # (a bucket's first batch goes at once) each part waits for its bytes at the rate,
        # and the run takes about the bytes over the rate.
        parts = [r for r in self.proxy.log if "partNumber=" in r["query"]]
        paced = sum(r["body_bytes"] for r in parts[1:-1])
        self.assertGreaterEqual(parts[-1]["time"] - parts[0]["time"], 0.8 * paced / rate)
        self.assertGreater(summary["wall_seconds"], 0.8 * summary["value_bytes"] / rate)


class PopulateFromS3Test(S3WarmCase):
    def test_round_trip_item_by_item_with_ranged_gets_only(self):
        src, dst = self.server(), self.server()
        items = test_dump.tricky_items(src.client())
        out = self.dump(src)
        chunks = self.upload(out)
        state = self.tmp.sub("state")
        prom = self.tmp.sub("populate.prom")
        summary, _ = self.populate_s3(dst, state, "--metrics-file", prom)
        self.assertTrue(summary["ok"], summary)
        self.assertEqual("s3", summary["source_kind"])
        with open(prom) as f:
            self.assertIn('\nmcwarm_backlog_chunks{command="populate"} 0\n', f.read())
        self.assertEqual(len(items), summary["items_sent"])
        self.assertEqual(len(chunks), summary["manifest_files_applied"])
        self.assertEqual(0, summary["backlog_chunks"])
        self.assert_holds(dst.client(), items)
        self.assertEqual(len(chunks), len(journal_files(state)))
        # every read of a chunk object is a ranged GET into the read buffers
        gets = [r for r in self.proxy.log if r["method"] == "GET" and ".mcw" in r["path"]]
        self.assertGreater(len(gets), 0)
        for r in gets:
            self.assertTrue(r["headers"].get("range", "").startswith("bytes="), r)
        st = backlog_state(state)
        self.assertEqual(("0", str(len(chunks)), "1", "1"), (
            st["backlog_chunks"], st["chunks_listed"], st["dump_done"], st["complete"]))
        # the journal makes a second run apply nothing again
        again, _ = self.populate_s3(dst, state)
        self.assertTrue(again["ok"])
        self.assertEqual(0, again["items_sent"])

    def test_follow_while_objects_are_uploaded_completes_exactly(self):
        src, dst = self.server(), self.server()
        keys, out, chunks = self.dump_keys(src, b"f", 30000, b"v" * 500, flags=7)
        self.assertGreaterEqual(len(chunks), 4)
        state = self.tmp.sub("state")
        pop = self.mcwarm("populate", "--dest", dst.addr, "--from", self.url(), "--state",
                          state, "--follow", "--json", "-q", "--idle-timeout", "60",
                          background=True)
        # the first objects while populate already polls, the rest with pauses
        uploader = threading.Thread(target=self.upload, args=(out, 0.4))
        uploader.start()
        try:
            stdout, stderr = pop.communicate(timeout=300)
        finally:
            uploader.join()
        self.assertEqual(0, pop.returncode, stderr[-3000:])
        summary = last_json(stdout)
        self.assertTrue(summary["complete"])
        self.assertEqual(len(keys), summary["items_sent"])
        self.assertEqual(0, summary["already_present"])  # no file applied twice
        self.assertEqual(len(chunks), len(journal_files(state)))
        dc = dst.client()
        self.assertEqual(len(keys), len(self.present(dc, keys)))
        self.assertEqual((b"v" * 500, 7), dc.get(keys[123])[:2])

    def test_two_shards_share_one_dump_without_applying_a_file_twice(self):
        src, dst = self.server(), self.server()
        keys, out, chunks = self.dump_keys(src, b"s", 30000, b"w" * 400, flags=3)
        self.upload(out)
        self.assertGreaterEqual(len(chunks), 4)
        states = [self.tmp.sub("state%d" % i) for i in range(2)]
        # the second names the prefix with its trailing '/': the same objects
        procs = [self.mcwarm("populate", "--dest", dst.addr, "--from", self.url() + "/" * i,
                             "--state", states[i], "--shard", "%d/2" % i, "--follow", "--json",
                             "-q", background=True) for i in range(2)]
        results = [p.communicate(timeout=300) for p in procs]
        for p, (stdout, stderr) in zip(procs, results):
            self.assertEqual(0, p.returncode, stderr[-3000:])
        summaries = [last_json(r[0]) for r in results]
        done = [journal_files(s) for s in states]
        self.assertEqual(set(), done[0] & done[1], "a file applied by both populators")
        self.assertEqual(len(chunks), len(done[0] | done[1]))
        for i in range(2):  # each has exactly its files: j = job + part, j mod 2 == i
            self.assertTrue(all((j + p) % 2 == i for j, p in done[i]), done[i])
            self.assertEqual(len(done[i]), summaries[i]["manifest_files"])
            self.assertEqual((i, 2), (summaries[i]["shard_index"], summaries[i]["shard_count"]))
        self.assertEqual(len(keys), sum(s["items_sent"] for s in summaries))
        self.assertEqual(0, sum(s["already_present"] for s in summaries))
        self.assertEqual(len(keys), len(self.present(dst.client(), keys)))

    def test_shard_on_a_volume(self):
        src, dst = self.server(), self.server()
        keys, out, names = self.dump_keys(src, b"v", 20000, b"x" * 400)
        self.assertGreaterEqual(len(names), 3)
        mine = [n for n in names if (int(n[6:12]) + int(n[13:16])) % 3 == 1]
        self.assertGreater(len(mine), 0)
        s1, _ = self.populate(dst, out, self.tmp.sub("st1"), "--shard", "1/3")
        self.assertTrue(s1["complete"])
        self.assertEqual(len(mine), s1["manifest_files"])
        self.assertEqual({(int(n[6:12]), int(n[13:16])) for n in mine},
                         journal_files(self.tmp.sub("st1")))
        want = {r["key"] for r in inspect_records(os.path.join(out, n) for n in mine)}
        self.assertEqual(want, self.present(dst.client(), keys))
        for i in (0, 2):
            self.populate(dst, out, self.tmp.sub("st%d" % i), "--shard", "%d/3" % i)
        self.assertEqual(len(keys), len(self.present(dst.client(), keys)))
        p = self.mcwarm("populate", "--dest", dst.addr, "--from", out, "--state",
                        self.tmp.sub("x"), "--shard", "3/3", check=64)
        self.assertIn("--shard", p.stderr)

    def test_corrupted_and_short_objects_report_blocks_and_apply_every_other(self):
        src, dst = self.server(memory_mb=512), self.server(memory_mb=512)
        keys = [b"d%06d" % i for i in range(30000)]
        src.client().set_many([(k, (b"%06d" % i) * 200, 0, i) for i, k in enumerate(keys)])
        out = self.dump(src, "--chunk-size", "4M")
        names = [os.path.basename(f) for f in chunk_files(out)]
        block = 262144
        with open(os.path.join(out, names[1]), "r+b") as f:
            f.seek(4096 + 2 * block + 777)
            b = f.read(1)
            f.seek(4096 + 2 * block + 777)
            f.write(bytes([b[0] ^ 0x01]))
        # a short object: cut in block 3 (an upload that lost its end)
        os.truncate(os.path.join(out, names[2]), 4096 + 3 * block + 100)
        self.upload(out)
        summary, err = self.populate_s3(dst, self.tmp.sub("state"), check=65)
        self.assertIn("%s/%s: block 2 at offset %d: checksum mismatch" % (
            self.url(), names[1], 4096 + 2 * block), err)
        self.assertIn("%s/%s: no valid footer" % (self.url(), names[2]), err)
        self.assertEqual(1, summary["blocks_bad"])  # the flipped byte
        self.assertEqual(1, summary["blocks_missing"])  # the short object's cut block
        self.assertEqual(2, summary["files_partial"])
        self.assertEqual(2, summary["backlog_chunks"])  # listed, not (fully) applied
        readable = {r["key"] for r in inspect_records(chunk_files(out), allow_damage=True)}
        present = self.present(dst.client(), keys)
        self.assertEqual(readable, present)
        self.assertLess(len(present), len(keys))

    def test_wrong_secret_exits_77(self):
        dst = self.server()
        src = self.server()
        src.client().set(b"k", b"v")
        self.upload(self.dump(src))
        summary, err = self.populate_s3(dst, self.tmp.sub("state"), check=77,
                                        env={"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
        self.assertIn("HTTP 403", err)
        self.assertIn("AWS_SECRET_ACCESS_KEY", err)
        self.assertFalse(summary["ok"])
        self.assertIsNone(dst.client().get(b"k"))

    def test_missing_bucket_exits_69(self):
        dst = self.server()
        p = self.mcwarm("populate", "--dest", dst.addr, "--from", "s3://no-such-bucket-here/x",
                        "--state", self.tmp.sub("state"), "-q", check=69)
        self.assertIn("no-such-bucket-here", p.stderr)

    def test_injected_503s_are_retried_and_complete(self):
        src, dst = self.server(), self.server()
        keys, out, _ = self.dump_keys(src, b"r", 5000, b"z" * 300, chunk_size="64M")
        self.upload(out)
        self.proxy.faults = [{"status": 503, "code": "SlowDown", "method": "GET"}] * 4 + [
            {"status": 500, "code": "InternalError", "method": "GET"}]
        summary, _ = self.populate_s3(dst, self.tmp.sub("state"))
        self.assertTrue(summary["ok"])
        self.assertEqual([], self.proxy.faults)  # every fault was met, and retried
        self.assertEqual(len(keys), summary["items_sent"])
        self.assertEqual(len(keys), len(self.present(dst.client(), keys)))


if __name__ == "__main__":
    unittest.main()


CTL = os.environ.get("MCWARM_CTL", "")


class CtlS3Test(S3WarmCase):
    """`mcwarm-ctl warm --backend s3 --volume s3://BUCKET/PREFIX`: the whole warm-up and
    each host's half through the store, no volume; the dump of a pair goes under
    PREFIX/<source host_port>/dump-<n>/, teardown (or release) deletes PREFIX/<source>/."""

    @classmethod
    def setUpClass(cls):
        if not CTL or not os.path.exists(CTL):
            raise unittest.SkipTest("MCWARM_CTL is not set to the mcwarm-ctl binary (run "
                                    "through ctest)")
        super().setUpClass()

    def ctl(self, *args, check=0, env=None):
        p = subprocess.run([CTL] + [str(a) for a in args], env=self.env(**(env or {})),
                           capture_output=True, text=True, errors="replace", timeout=600)
        if check is not None and p.returncode != check:
            raise AssertionError("mcwarm-ctl %s exited %d (wanted %d)\nstdout:\n%s\n"
                                 "stderr:\n%s" % (" ".join(map(str, args)), p.returncode,
                                                  check, p.stdout[-3000:], p.stderr[-4000:]))
        return p

    def start(self, *args, env=None):
        return subprocess.Popen([CTL] + [str(a) for a in args], env=self.env(**(env or {})),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                errors="replace")

    def finish(self, proc, want=0):
        out, err = proc.communicate(timeout=600)
        self.assertEqual(proc.returncode, want, err[-4000:])
        return last_json(out), err

    def fill(self, mc, n, size=2000):
        items = [(b"ctl:%06d" % i, (b"%06d" % i) * (size // 6 + i % 7), 0, i % 997)
                 for i in range(n)]
        c = mc.client()
        c.set_many(items)
        c.close()
        return items

    assert_all_equal = test_ctl.SidesTest.assert_all_equal

    def pair(self, src):
        """The pair's prefix under self.prefix, as mcwarm-ctl derives it."""
        return "%s/%s" % (self.prefix, src.addr.replace(":", "_"))

    def under(self, prefix):
        out, _, _ = self.probe.run("list", BUCKET, prefix + "/")
        return [line.split(" ")[1][len(prefix) + 1:] for line in out.splitlines()
                if line.startswith("key ")]

    def plan(self, src, dst, work, *extra):
        return ["--source", src.addr, "--dest", dst.addr, "--work", work, "--backend", "s3",
                "--volume", self.url(), "--threads", "2", "--min-ratio", "1"] + list(extra)

    def warm(self, src, dst, work, *extra, check=0, env=None):
        p = self.ctl("warm", *self.plan(src, dst, work, "--json", *extra), check=check,
                     env=env)
        return last_json(p.stdout), p.stderr

    def test_warm_verifies_item_by_item_and_deletes_the_prefix(self):
        src, dst = self.server(memory_mb=256), self.server(memory_mb=256)
        items = self.fill(src, 20000)
        work = self.tmp.sub("work")
        report, err = self.warm(src, dst, work)
        self.assertTrue(report["ok"], err)
        self.assertEqual(report["backend"], "s3")
        self.assertEqual(report["volume"], "s3://%s/%s/" % (BUCKET, self.pair(src)))
        self.assertEqual(report["verify_ratio"], 1.0)
        self.assertEqual(report["items_sent"], len(items))
        self.assert_all_equal(dst, items)
        self.assertEqual([], self.under(self.prefix), "the prefix was not deleted")
        # the dump went through the store: its parts, then the listing, ranged GETs
        self.assertTrue(any("partNumber=" in r["query"] for r in self.proxy.log))
        self.assertTrue(any(r["method"] == "DELETE" for r in self.proxy.log))
        status = json.loads(self.ctl("status", "--work", work, "--json").stdout)
        self.assertEqual((status["backend"], status["phase"]), ("s3", "done"))
        self.assertTrue(status["backlog_known"])
        self.assertEqual(status["backlog_chunks"], 0)
        self.assertGreater(status["chunks_listed"], 0)

    def test_keep_keeps_the_dump_in_the_store(self):
        src, dst = self.server(), self.server()
        items = self.fill(src, 3000)
        report, err = self.warm(src, dst, self.tmp.sub("work"), "--keep")
        self.assertTrue(report["ok"], err)
        self.assert_all_equal(dst, items)
        names = self.under(self.pair(src))
        self.assertIn("dump-1/DONE", names)
        self.assertIn("dump-1/MANIFEST", names)
        self.assertTrue(any(n.startswith("dump-1/chunk-") for n in names), names)

    def test_killed_controller_run_again_converges(self):
        src, dst = self.server(memory_mb=256), self.server(memory_mb=256)
        items = self.fill(src, 20000)
        work = self.tmp.sub("work")
        for point in ("dumping", "pass", "populated"):
            p = self.ctl("warm", *self.plan(src, dst, work), check=None,
                         env={"MCW_CTL_CRASH_AT": point})
            self.assertEqual(p.returncode, -signal.SIGKILL, p.stderr[-2000:])
        report, err = self.warm(src, dst, work)
        self.assertTrue(report["ok"], err)
        self.assertIn("continuing the warm-up", err)
        self.assertEqual(report["dump_attempt"], 1, "the dump was continued, not redone")
        self.assertEqual(report["verify_ratio"], 1.0)
        self.assert_all_equal(dst, items)
        self.assertEqual([], self.under(self.prefix))

    def test_halves_rw_and_ro_then_release(self):
        src, dst = self.server(memory_mb=256), self.server(memory_mb=256)
        items = self.fill(src, 15000)
        rw, ro = self.tmp.sub("rw"), self.tmp.sub("ro")
        common = ["--backend", "s3", "--volume", self.url(), "--threads", "2", "--json"]
        # the reader first: it waits for the writer's objects
        reader = self.start("warm", "--side", "ro", "--source", src.addr, "--dest", dst.addr,
                            "--work", ro, "--min-ratio", "1", "--idle-timeout", "120",
                            *common)
        writer = self.start("warm", "--side", "rw", "--source", src.addr, "--work", rw,
                            *common)
        wreport, _ = self.finish(writer)
        self.assertTrue(wreport["ok"])
        self.assertIn("dump-1/DONE", self.under(self.pair(src)))
        rreport, err = self.finish(reader)
        self.assertEqual(rreport["verify_ratio"], 1.0, err)
        self.assert_all_equal(dst, items)
        status = json.loads(self.ctl("status", "--work", ro, "--json").stdout)
        self.assertEqual((status["side"], status["phase"]), ("ro", "done"))
        self.assertEqual(status["backlog_chunks"], 0)
        self.assertEqual(status["chunks_listed"],
                         len([n for n in self.under(self.pair(src)) if n.endswith(".mcw")]))
        wstatus = json.loads(self.ctl("status", "--work", rw, "--json").stdout)
        self.assertEqual((wstatus["side"], wstatus["phase"]), ("rw", "dumped"))
        self.assertEqual(wstatus["chunk_files_written"], status["chunks_listed"])
        marks = [n for n in self.under(self.pair(src)) if n.startswith(".mcwarm/readers/")]
        self.assertEqual([".mcwarm/readers/done-" + dst.addr.replace(":", "_")], marks)
        # a reader still reading holds the release back (exit 75, naming it)
        self.probe.run("put", BUCKET, self.pair(src) + "/.mcwarm/readers/reading-other_1",
                       __file__)
        p = self.ctl("release", "--work", rw, check=75)
        self.assertIn("other_1", p.stderr)
        self.assertIn("dump-1/DONE", self.under(self.pair(src)))
        self.probe.run("delete", BUCKET, self.pair(src) + "/.mcwarm/readers/reading-other_1")
        self.ctl("release", "--work", rw)
        self.assertEqual([], self.under(self.prefix))
        self.ctl("release", "--work", rw)  # again: nothing to do
        # run again, each finished half returns at once
        again, _ = self.finish(self.start("warm", "--side", "ro", "--source", src.addr,
                                          "--dest", dst.addr, "--work", ro, "--min-ratio",
                                          "1", *common))
        self.assertTrue(again["ok"])

    def test_each_half_killed_then_run_again_continues(self):
        src, dst = self.server(memory_mb=256), self.server(memory_mb=256)
        items = self.fill(src, 15000)
        rw, ro = self.tmp.sub("rw"), self.tmp.sub("ro")
        common = ["--backend", "s3", "--volume", self.url(), "--threads", "2", "--json"]
        rw_argv = ["warm", "--side", "rw", "--source", src.addr, "--work", rw] + common
        ro_argv = ["warm", "--side", "ro", "--source", src.addr, "--dest", dst.addr, "--work",
                   ro, "--min-ratio", "1", "--idle-timeout", "120"] + common
        # each controller killed as a crash would (its children go on)
        p = self.ctl(*rw_argv, check=None, env={"MCW_CTL_CRASH_AT": "dumping"})
        self.assertEqual(p.returncode, -signal.SIGKILL, p.stderr[-2000:])
        p = self.ctl(*ro_argv, check=None, env={"MCW_CTL_CRASH_AT": "pass"})
        self.assertEqual(p.returncode, -signal.SIGKILL, p.stderr[-2000:])
        reader, writer = self.start(*ro_argv), self.start(*rw_argv)
        wreport, werr = self.finish(writer)
        self.assertIn("continuing the warm-up", werr)
        self.assertEqual(wreport["dump_attempt"], 1, "the dump was continued, not redone")
        rreport, rerr = self.finish(reader)
        self.assertIn("continuing the warm-up", rerr)
        self.assertEqual(rreport["verify_ratio"], 1.0)
        self.assert_all_equal(dst, items)
        self.ctl("release", "--work", rw)
        self.assertEqual([], self.under(self.prefix))

    def test_backlog_in_status_while_the_reader_waits(self):
        """A reader whose dump is half uploaded: status --json shows what populate listed
        and has not applied (STATE/backlog), for an autoscaler; the metrics file too."""
        src, dst = self.server(), self.server(memory_mb=256)
        keys, out, chunks = self.dump_keys(src, b"b", 6000, b"v" * 3000, chunk_size="2M")
        self.assertGreater(len(chunks), 2)
        saved = self.prefix
        self.prefix = self.pair(src) + "/dump-1"  # where the reader looks
        self.upload(out, names=chunks)  # chunks only: no MANIFEST, no DONE yet
        self.prefix = saved
        ro = self.tmp.sub("ro")
        metrics = self.tmp.sub("warm.prom")
        reader = self.start("warm", "--side", "ro", "--source", src.addr, "--dest", dst.addr,
                            "--work", ro, "--backend", "s3", "--volume", self.url(),
                            "--threads", "1", "--idle-timeout", "120", "--metrics-file",
                            metrics, "--json")
        try:
            deadline = time.time() + 60
            status = {}
            while time.time() < deadline:
                p = self.ctl("status", "--work", ro, "--json", check=None)  # 64: no state yet
                status = json.loads(p.stdout) if p.returncode == 0 else {}
                if status.get("backlog_known") and status["chunks_listed"] == len(chunks) \
                        and status["backlog_chunks"] == 0:
                    break
                time.sleep(0.2)
            self.assertEqual(status.get("chunks_listed"), len(chunks), status)
            self.assertEqual(status["backlog_chunks"], 0, status)
            self.assertEqual(status["phase"], "dumping")
        except BaseException:
            reader.kill()
            reader.communicate()
            raise
        finally:
            self.prefix = self.pair(src) + "/dump-1"
            self.upload(out, names=["MANIFEST", "DONE"])
            self.prefix = saved
        report, err = self.finish(reader)
        self.assertEqual(report["verify_ratio"], 1.0, err)
        self.assertEqual(report["files_applied"], len(chunks))
        self.assertEqual(self.present(dst.client(), keys), set(keys))
        with open(metrics) as f:
            self.assertIn("mcwarm_warm_backlog_files", f.read())

    def test_wrong_secret_is_exit_77_before_anything_is_created(self):
        src, dst = self.server(), self.server()
        self.fill(src, 100)
        work = self.tmp.sub("work")
        report, err = self.warm(src, dst, work, check=77,
                                env={"AWS_SECRET_ACCESS_KEY": "wrong"})
        self.assertFalse(report["ok"])
        self.assertEqual(report["phase"], "preflight")
        self.assertIn("SignatureDoesNotMatch", err)
        self.assertFalse(os.path.exists(os.path.join(work, "ctl.state")))
        self.assertEqual([], self.under(self.prefix))
        self.assertEqual([], [r for r in self.proxy.log if r["method"] in ("PUT", "POST")])
        # a bucket that does not exist: 69, also before anything
        p = self.ctl("warm", "--source", src.addr, "--dest", dst.addr, "--work", work,
                     "--backend", "s3", "--volume", "s3://no-such-bucket/x", check=69)
        self.assertIn("no-such-bucket", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(work, "ctl.state")))
        # no URL, or a volume step: usage errors
        p = self.ctl("warm", "--source", src.addr, "--dest", dst.addr, "--work", work,
                     "--backend", "s3", check=64)
        self.assertIn("s3://BUCKET/PREFIX", p.stderr)
        p = self.ctl("create", "--work", work, "--backend", "s3", "--volume", self.url(),
                     check=64)
        self.assertIn("no volume steps", p.stderr)
