"""Warming through an object store (issue 15): `mcwarm dump --out s3://BUCKET/PREFIX`
against a real S3 API server (s3rver, as test_s3.py starts it) behind s3proxy.py, which
checks every request's SigV4 signature and every body's x-amz-checksum-crc32c and injects
faults. The dump's objects are downloaded (mcw-s3-probe) into a directory and checked item
by item with `mcwarm inspect`, as test_dump.py checks a dump directory.

s3rver has no AbortMultipartUpload: a resumed dump ends a killed run's uploads by
completing them with one empty part and deleting the object; that no upload is left is
checked in s3rver's own storage (its per-upload directories).
"""
import os
import signal
import subprocess
import time
import unittest

from mcwtest import ServerTestCase, last_json
import test_dump  # its checks, not its tests: a module import keeps them out of this run
from test_s3 import BUCKET, SECRET, Probe, s3_fixture_start


def s3rver_uploads(root):
    """Unfinished multipart uploads s3rver holds (one directory each under its
    '<bucket>/._S3rver_uploads' resource)."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        if os.path.basename(dirpath).endswith("_uploads"):
            found += dirnames
    return found


class S3WarmCase(ServerTestCase):
    """Starts one s3rver and proxy for the class; each test gets its own prefix."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.s3, cls.proxy = s3_fixture_start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.s3.stop()

    def setUp(self):
        super().setUp()
        self.proxy.faults = []
        self.proxy.secret = SECRET
        self.proxy.log.clear()
        self.probe = Probe(self.tmp.path, self.proxy.url)
        self.prefix = "%s-%d" % (self.id().split(".")[-1][:40], int(time.time() * 1000))

    def env(self, **extra):
        e = dict(self.probe.env)
        e.update(extra)
        return e

    def mcwarm(self, *args, check=None, env=None, timeout=600):
        p = subprocess.run([os.environ["MCWARM"]] + [str(a) for a in args], capture_output=True,
                           text=True, timeout=timeout, errors="replace",
                           env=env or self.env())
        if check is not None and p.returncode != check:
            raise AssertionError("mcwarm %s exited %d (wanted %d)\nstdout:\n%s\nstderr:\n%s" % (
                " ".join(map(str, args)), p.returncode, check, p.stdout[-4000:],
                p.stderr[-4000:]))
        return p

    def url(self):
        return "s3://%s/%s" % (BUCKET, self.prefix)

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
        time.sleep(0.5)
        killed = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
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

if __name__ == "__main__":
    unittest.main()
