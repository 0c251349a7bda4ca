"""Warm-ups through an object store (issue 15): `mcwarm populate --from s3://BUCKET/PREFIX`
against a real S3 API server (s3rver, started by test_s3's fixture) behind s3proxy.py,
which checks every request's SigV4 signature and injects faults.

PopulateFromS3Test makes its dumps with `mcwarm dump --out DIR` and uploads each file under
its name (mcw-s3-probe put, signed and CRC-32C checked by the proxy), MANIFEST and DONE
last, exactly the layout a dump to s3:// writes (docs/format.md).
"""
import os
import random
import subprocess
import threading
import time
import unittest

from mcwtest import MCWARM, chunk_files, inspect_records, last_json
from test_dump import tricky_items
from test_populate import PopulateTestCase
from test_s3 import BUCKET, Probe, S3Fixture


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
    """A memcached test case with an S3 server and the signing, fault-injecting proxy."""

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

    def mcwarm(self, *args, env=None, check=0, background=False):
        e = dict(self.probe.env)
        e.update(env or {})
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


class PopulateFromS3Test(S3WarmCase):
    def test_round_trip_item_by_item_with_ranged_gets_only(self):
        src, dst = self.server(), self.server()
        items = tricky_items(src.client())
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
