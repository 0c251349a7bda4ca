"""objstore/ (the S3 client) against a real S3 API server: s3rver (npm, pinned by
scripts/setup.sh), started by s3rver.py (shared with bench/run) on a free loopback port
with a temporary directory, driven through mcw-s3-probe (tests/tools/s3_probe.c), behind
s3proxy.py, which checks every request's SigV4 signature and x-amz-checksum-crc32c and
injects faults.

What s3rver 3.7.1 does and does not do, and how these tests make up for it:
  - does: PUT/GET/HEAD/DELETE, ranged GETs (206, 416 past the end), ListObjectsV2 with
    max-keys and continuation tokens (its token cipher, DES, needs Node's
    --openssl-legacy-provider on OpenSSL 3), CreateMultipartUpload, UploadPart,
    CompleteMultipartUpload, NoSuchBucket/NoSuchKey, InvalidAccessKeyId for unknown key ids.
  - does not: verify SigV4 signatures (any secret passes), check x-amz-checksum-* headers,
    enforce the 5 MiB minimum part size, answer "Range: bytes=0-0" with one byte (it sends
    the whole object), give multipart ETags their "-N" suffix, or
    implement ListMultipartUploads (501 NotImplemented) and AbortMultipartUpload (405).
    The proxy checks signatures (wrong secret -> 403 SignatureDoesNotMatch) and CRC-32Cs
    (-> 400 BadDigest); abort and the listing of unfinished uploads are checked against
    s3rver for their clear "unsupported" error and against a small fake server in this
    file for the request shape, the continuation markers and the answers' parsing.
"""
import base64
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import unittest

from chunkcraft import crc32c
from mcwtest import free_port
from s3proxy import S3Proxy
from s3rver import BUCKET, KEY_ID, S3RVER, SECRET, S3rver, aws_env

BUILD = os.environ.get("MCW_BUILD", "")
PROBE = os.path.join(BUILD, "tests", "mcw-s3-probe")


class Probe:
    """Runs mcw-s3-probe with a clean AWS environment of the test's choosing."""

    def __init__(self, home, endpoint):
        self.home = home
        self.env = aws_env(home, endpoint)
        self.env.update(MCW_S3_BACKOFF_MS="5", MCW_S3_RETRIES="4")

    def run(self, *args, env=None, expect=0, timeout=120):
        e = dict(self.env)
        for k, v in (env or {}).items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        p = subprocess.run([PROBE] + [str(a) for a in args], env=e, capture_output=True,
                           timeout=timeout)
        out, err = p.stdout.decode(), p.stderr.decode()
        if expect is not None and p.returncode != expect:
            raise AssertionError("probe %s: exit %d, wanted %d\nstdout: %s\nstderr: %s" % (
                args, p.returncode, expect, out, err))
        return out, err, p.returncode


def retries_of(err):
    line = [ln for ln in err.splitlines() if ln.startswith("stats ")][-1]
    return int(line.split("retries=")[1])


class S3Fixture:
    """A test class's s3rver (cls.s3) behind the checking, fault-injecting proxy
    (cls.proxy), reset before each test; mixed in before unittest.TestCase (test_s3_warm
    uses it too)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not BUILD or not os.path.exists(PROBE):
            raise unittest.SkipTest("MCW_BUILD does not hold tests/mcw-s3-probe (run through ctest)")
        if not S3RVER:
            raise unittest.SkipTest("s3rver is not installed (scripts/setup.sh installs it)")
        cls.s3 = S3rver()
        cls.proxy = S3Proxy(cls.s3.port, secret=SECRET)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.close()
        cls.s3.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.proxy.faults = []
        self.proxy.secret = SECRET
        self.proxy.log.clear()


class S3Test(S3Fixture, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="mcw-s3-")
        self.probe = Probe(self.tmp, self.proxy.url)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def data_file(self, name, size, seed):
        data = bytes((i * 131 + seed * 7 + (i >> 9)) & 255 for i in range(size))
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        return path, data

    def get(self, key, offset, length):
        out_path = os.path.join(self.tmp, "got")
        out, _, _ = self.probe.run("get", BUCKET, key, offset, length, out_path)
        with open(out_path, "rb") as f:
            got = f.read()
        self.assertEqual("got %d" % len(got), out.strip())
        return got

    def mpu(self, key, data_path, part_bytes, *extra, expect=0, env=None):
        return self.probe.run("mpu", BUCKET, key, data_path, part_bytes, *extra, expect=expect,
                              env=env)

    def test_url_parse(self):
        out, _, _ = self.probe.run("url", "s3://my-bucket.x/warm/2026/")
        self.assertEqual("bucket my-bucket.x prefix warm/2026/", out.strip())
        out, _, _ = self.probe.run("url", "s3://abc")
        self.assertEqual("bucket abc prefix", out.strip())
        for bad in ("http://x/y", "s3://", "s3://ab/x", "s3://Upper/x", "s3://-ab/x"):
            _, err, _ = self.probe.run("url", bad, expect=78)
            self.assertIn("class=config", err)

    def test_multipart_round_trip_with_crc_per_part(self):
        part = 1 << 20
        path, data = self.data_file("obj", 3 * part + 12345, 1)
        out, err, _ = self.mpu("rt/obj", path, part)
        parts = [ln.split() for ln in out.splitlines() if ln.startswith("part ")]
        self.assertEqual(4, len(parts))
        puts = [r for r in self.proxy.log if r["method"] == "PUT"]
        self.assertEqual(4, len(puts))
        for i, (p, put) in enumerate(zip(parts, puts)):
            chunk = data[i * part:(i + 1) * part]
            self.assertEqual(["part", str(i + 1), str(len(chunk)), "%08x" % crc32c(chunk)],
                             p[:4])
            self.assertEqual(base64.b64encode(crc32c(chunk).to_bytes(4, "big")).decode(),
                             put["headers"]["x-amz-checksum-crc32c"])
            self.assertEqual("UNSIGNED-PAYLOAD", put["headers"]["x-amz-content-sha256"])
            self.assertIn("partNumber=%d&uploadId=" % (i + 1), put["query"])
        create = [r for r in self.proxy.log if r["method"] == "POST"][0]
        self.assertEqual("uploads=", create["query"])
        self.assertEqual("CRC32C", create["headers"]["x-amz-checksum-algorithm"])
        self.assertEqual(data, self.get("rt/obj", 0, len(data) + 10))
        out, _, _ = self.probe.run("head", BUCKET, "rt/obj")
        self.assertTrue(out.startswith("size %d etag \"" % len(data)), out)
        self.assertEqual(0, retries_of(err))

    def test_put_small_object_and_odd_keys(self):
        path, data = self.data_file("m", 777, 2)
        for key in ("odd/MANIFEST", "odd/sp ace+plus&amp=eq%pct/ü"):
            self.probe.run("put", BUCKET, key, path)
            self.assertEqual(data, self.get(key, 0, 4096))
        out, _, _ = self.probe.run("list", BUCKET, "odd/")
        self.assertEqual(["odd/MANIFEST", "odd/sp ace+plus&amp=eq%pct/ü"],
                         [ln.split(" ")[1] if "sp ace" not in ln else
                          ln[4:ln.index(" 777 ")] for ln in out.splitlines()])

    def test_ranged_gets_at_odd_offsets(self):
        part = 1 << 20
        path, data = self.data_file("r", 2 * part + 999, 3)
        self.mpu("range/r", path, part)
        for off, n in ((0, 2), (1, 4095), (part - 3, 7), (4097, part + 13),
                       (2 * part + 990, 100), (len(data) - 1, 1)):
            self.assertEqual(data[off:off + n], self.get("range/r", off, n), (off, n))
        out_path = os.path.join(self.tmp, "past")
        out, _, _ = self.probe.run("get", BUCKET, "range/r", len(data) + 5, 10, out_path)
        self.assertEqual("got 0", out.strip())
        ranges = [r["headers"].get("range") for r in self.proxy.log if r["method"] == "GET"]
        self.assertIn("bytes=%d-%d" % (part - 3, part + 3), ranges)
        # s3rver answers "bytes=0-0" with the whole object (it reads the end 0 as none):
        # the client never writes past the caller's buffer and says so.
        _, err, _ = self.probe.run("get", BUCKET, "range/r", 0, 1, out_path, expect=70)
        self.assertIn("class=too-large", err)
        self.assertIn("larger than the 1-byte buffer", err)

    def test_listing_with_continuation(self):
        path, _ = self.data_file("s", 10, 4)
        keys = ["list/k%03d" % i for i in range(23)]
        for k in keys:
            self.probe.run("put", BUCKET, k, path)
        self.probe.run("put", BUCKET, "other/k", path)
        self.proxy.log.clear()
        out, _, _ = self.probe.run("list", BUCKET, "list/", 5)
        got = [ln.split()[1:3] for ln in out.splitlines()]
        self.assertEqual([[k, "10"] for k in keys], got)
        lists = [r for r in self.proxy.log if r["method"] == "GET"]
        self.assertEqual(5, len(lists))  # 23 keys, 5 a page
        self.assertTrue(all("max-keys=5" in r["query"] for r in lists))
        self.assertTrue(all("continuation-token=" in r["query"] for r in lists[1:]))

    def test_delete_and_delete_prefix(self):
        path, _ = self.data_file("d", 100, 5)
        for i in range(7):
            self.probe.run("put", BUCKET, "del/x%d" % i, path)
        self.probe.run("put", BUCKET, "keep/x", path)
        self.probe.run("delete", BUCKET, "del/x0")
        _, err, _ = self.probe.run("head", BUCKET, "del/x0", expect=66)
        self.assertIn("class=no-key", err)
        out, _, _ = self.probe.run("delete-prefix", BUCKET, "del/")
        self.assertEqual("deleted 6", out.strip())
        out, _, _ = self.probe.run("list", BUCKET, "del/")
        self.assertEqual("", out)
        out, _, _ = self.probe.run("list", BUCKET, "keep/")
        self.assertEqual(1, len(out.splitlines()))

    def test_abort_and_list_uploads_unsupported_by_s3rver(self):
        """s3rver has neither: the client says so clearly, as class unsupported (69)."""
        path, _ = self.data_file("a", 5000, 6)
        out, _, _ = self.mpu("ab/obj", path, 2000, 1)  # one part, not completed
        upload_id = [ln.split()[1] for ln in out.splitlines() if ln.startswith("upload ")][0]
        _, err, _ = self.probe.run("abort", BUCKET, "ab/obj", upload_id, expect=69)
        self.assertIn("class=unsupported", err)
        self.assertIn("MethodNotAllowed", err)
        _, err, _ = self.probe.run("uploads", BUCKET, "ab/", expect=69)
        self.assertIn("NotImplemented", err)

    def test_abort_and_list_uploads_against_fake(self):
        fake = FakeUploads()
        try:
            probe = Probe(self.tmp, fake.url)
            out, _, _ = probe.run("uploads", BUCKET, "dump/")
            self.assertEqual(["upload dump/a.chunk id-1", "upload dump/b & c id-2",
                              "upload dump/c id-3"], out.splitlines())
            self.assertEqual(["prefix=dump%2F&uploads=",
                              "key-marker=dump%2Fb%20%26%20c&prefix=dump%2F&"
                              "upload-id-marker=id-2&uploads="], fake.queries)
            probe.run("abort", BUCKET, "dump/a.chunk", "id-1")
            self.assertEqual(("/%s/dump/a.chunk" % BUCKET, "uploadId=id-1"), fake.aborted[0])
            probe.run("abort", BUCKET, "dump/a.chunk", "gone", expect=66)
        finally:
            fake.close()

    def test_wrong_secret_is_a_credentials_error(self):
        _, err, _ = self.probe.run("list", BUCKET, "", env={"AWS_SECRET_ACCESS_KEY": "bad"},
                                   expect=77)
        self.assertIn("class=credentials", err)
        self.assertIn("code=SignatureDoesNotMatch", err)
        self.assertIn("attempts=1:", err)
        self.assertIn("AWS_SECRET_ACCESS_KEY", err)

    def test_unknown_key_id_is_a_credentials_error(self):
        self.proxy.secret = None  # s3rver itself refuses the key id
        _, err, _ = self.probe.run("list", BUCKET, "", env={"AWS_ACCESS_KEY_ID": "NOBODY"},
                                   expect=77)
        self.assertIn("code=InvalidAccessKeyId", err)

    def test_missing_bucket_and_key(self):
        _, err, _ = self.probe.run("list", "no-such-bucket", "", expect=69)
        self.assertIn("class=no-bucket", err)
        self.assertIn("NoSuchBucket", err)
        self.assertIn("s3://no-such-bucket/", err)
        out_path = os.path.join(self.tmp, "x")
        _, err, _ = self.probe.run("get", BUCKET, "no/such/key", 0, 10, out_path, expect=66)
        self.assertIn("NoSuchKey", err)
        self.assertIn("s3://%s/no/such/key" % BUCKET, err)

    def test_bad_part_checksum_is_a_data_error(self):
        path, _ = self.data_file("c", 3000, 7)
        _, err, _ = self.mpu("crc/obj", path, 1000, 3, 2, expect=65)
        self.assertIn("class=checksum", err)
        self.assertIn("code=BadDigest", err)
        self.assertIn("attempts=1:", err)

    def test_injected_faults_are_retried(self):
        part = 1 << 20
        path, data = self.data_file("f", part + 500, 8)
        self.mpu("fault/obj", path, part)
        cases = [
            ({"status": 503, "code": "SlowDown"}, "GET"),
            ({"status": 500, "code": "InternalError"}, "GET"),
            ({"drop": "response", "method": "GET"}, "GET"),
            ({"delay": 3, "method": "GET"}, "GET"),
            ({"status": 503, "code": "SlowDown", "method": "PUT"}, "PUT"),
            ({"drop": "request", "method": "PUT"}, "PUT1"),
        ]
        for fault, op in cases:
            with self.subTest(fault=fault):
                self.proxy.faults = [fault]
                env = {"MCW_S3_STALL_MS": "1000"} if "delay" in fault else {}
                out_path = os.path.join(self.tmp, "g")
                if op == "GET":
                    _, err, _ = self.probe.run("get", BUCKET, "fault/obj", 10, part, out_path,
                                               env=env)
                    with open(out_path, "rb") as f:
                        self.assertEqual(data[10:10 + part], f.read())
                elif op == "PUT":
                    _, err, _ = self.mpu("fault/up", path, part)
                    self.assertEqual(data, self.get("fault/up", 0, len(data)))
                else:  # first request of the process: libcurl's own silent retry of a
                    # reused connection cannot hide the drop from the client's retries
                    _, err, _ = self.probe.run("put", BUCKET, "fault/put", path)
                    self.assertEqual(data, self.get("fault/put", 0, len(data)))
                self.assertEqual([], self.proxy.faults)  # the fault was met
                self.assertGreaterEqual(retries_of(err), 1)

    def test_exhausted_retries_are_tempfail(self):
        self.proxy.faults = [{"status": 503, "code": "SlowDown"}] * 3
        out_path = os.path.join(self.tmp, "x")
        _, err, _ = self.probe.run("get", BUCKET, "whatever", 0, 10, out_path,
                                   env={"MCW_S3_RETRIES": "2"}, expect=75)
        self.assertIn("class=tempfail", err)
        self.assertIn("code=SlowDown", err)
        self.assertIn("attempts=3:", err)
        self.assertEqual([], self.proxy.faults)

    def test_credentials_from_environment_with_session_token(self):
        out, _, _ = self.probe.run("config", env={"AWS_SESSION_TOKEN": "tok-env"})
        self.assertIn("source environment", out)
        self.proxy.log.clear()
        self.probe.run("list", BUCKET, "", env={"AWS_SESSION_TOKEN": "tok-env"})
        self.assertEqual("tok-env", self.proxy.log[0]["headers"]["x-amz-security-token"])
        self.assertIn("x-amz-security-token",
                      self.proxy.log[0]["headers"]["authorization"])  # signed too

    def test_credentials_from_shared_file_and_profile(self):
        creds = os.path.join(self.tmp, "creds")
        with open(creds, "w") as f:
            f.write("[default]\naws_access_key_id = S3RVER\naws_secret_access_key = nope\n\n"
                    "[warm]\n# the profile the test picks\naws_access_key_id=S3RVER\n"
                    "aws_secret_access_key = file-secret\naws_session_token = tok-file\n")
        self.proxy.secret = "file-secret"
        env = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None,
               "AWS_SHARED_CREDENTIALS_FILE": creds, "AWS_PROFILE": "warm"}
        out, _, _ = self.probe.run("config", env=env)
        self.assertIn("source %s [warm]" % creds, out)
        self.probe.run("list", BUCKET, "", env=env)
        _, err, _ = self.probe.run("list", BUCKET, "", env=dict(env, AWS_PROFILE=None),
                                   expect=77)  # [default] has the wrong secret
        _, err, _ = self.probe.run("config", env=dict(env, AWS_PROFILE="absent"), expect=78)
        self.assertIn("profile [absent]", err)
        self.assertIn("no such profile", err)
        # ~/.aws/credentials when no file is named
        os.makedirs(os.path.join(self.tmp, ".aws"))
        shutil.copy(creds, os.path.join(self.tmp, ".aws", "credentials"))
        out, _, _ = self.probe.run("config", env=dict(env, AWS_SHARED_CREDENTIALS_FILE=None))
        self.assertIn("source %s/.aws/credentials [warm]" % self.tmp, out)

    def test_credentials_from_instance_role_imdsv2(self):
        imds = FakeImds()
        try:
            self.proxy.secret = "role-secret"
            env = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None,
                   "AWS_EC2_METADATA_DISABLED": None,
                   "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url}
            out, _, _ = self.probe.run("config", env=env)
            self.assertIn("source instance role mcw-role (IMDSv2 %s)" % imds.url, out)
            self.assertIn("region eu-west-3", out)
            self.assertIn("token role-token", out)
            self.assertEqual("PUT", imds.calls[0][0])
            self.assertTrue(all(c[2] == "imds-token" for c in imds.calls[1:]), imds.calls)
            self.proxy.log.clear()
            self.probe.run("list", BUCKET, "", env=env)
            self.assertEqual("role-token", self.proxy.log[0]["headers"]["x-amz-security-token"])
            self.assertIn("/eu-west-3/s3/", self.proxy.log[0]["headers"]["authorization"])
        finally:
            imds.close()

    def test_no_credentials_names_every_source(self):
        env = {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}
        _, err, _ = self.probe.run("config", env=env, expect=78)
        self.assertIn("AWS_ACCESS_KEY_ID not set", err)
        self.assertIn("%s/.aws/credentials: no such file" % self.tmp, err)
        self.assertIn("AWS_EC2_METADATA_DISABLED=true", err)
        _, err, _ = self.probe.run("config", env={"AWS_SECRET_ACCESS_KEY": None}, expect=78)
        self.assertIn("only AWS_ACCESS_KEY_ID is set", err)
        imds_port = free_port()  # nothing listens: the role source fails fast
        _, err, _ = self.probe.run("config", env=dict(
            env, AWS_EC2_METADATA_DISABLED=None,
            AWS_EC2_METADATA_SERVICE_ENDPOINT="http://127.0.0.1:%d" % imds_port), expect=78)
        self.assertIn("instance role (IMDSv2)", err)

    def test_aws_itself_is_virtual_hosted_and_needs_a_region(self):
        env = {"AWS_ENDPOINT_URL_S3": None, "AWS_REGION": "eu-north-1"}
        out, _, _ = self.probe.run("config", env=env)
        self.assertIn("path_style 0", out)
        self.assertIn("region eu-north-1", out)
        _, err, _ = self.probe.run("config", env={"AWS_ENDPOINT_URL_S3": None}, expect=78)
        self.assertIn("AWS_REGION", err)
        out, _, _ = self.probe.run("config", env={"AWS_ENDPOINT_URL_S3": None,
                                                  "AWS_ENDPOINT_URL": "http://h:1/"})
        self.assertIn("endpoint http://h:1\npath_style 1", out)


class _Server:
    """A small HTTP server on a free loopback port, in a thread."""

    def __init__(self, handler):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.owner = self
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FakeImds(_Server):
    """IMDSv2: a token from PUT /latest/api/token, required by every GET."""

    def __init__(self):
        self.calls = []
        owner = self

        class H(_Handler):
            def do_PUT(self):
                owner.calls.append(("PUT", self.path,
                                    self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")))
                ok = self.path == "/latest/api/token" and owner.calls[-1][2]
                self.reply(200 if ok else 400, b"imds-token" if ok else b"")

            def do_GET(self):
                tok = self.headers.get("X-aws-ec2-metadata-token")
                owner.calls.append(("GET", self.path, tok))
                if tok != "imds-token":
                    return self.reply(401)
                base = "/latest/meta-data/iam/security-credentials/"
                answers = {
                    base: b"mcw-role\n",
                    base + "mcw-role": json.dumps({
                        "Code": "Success", "AccessKeyId": KEY_ID,
                        "SecretAccessKey": "role-secret", "Token": "role-token",
                        "Expiration": "2099-01-01T00:00:00Z"}).encode(),
                    "/latest/meta-data/placement/region": b"eu-west-3",
                }
                body = answers.get(self.path)
                self.reply(200 if body else 404, body or b"")

        super().__init__(H)


class FakeUploads(_Server):
    """ListMultipartUploads in two pages and AbortMultipartUpload, as AWS documents them:
    only for what s3rver lacks."""

    PAGES = [
        b"<ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>true</IsTruncated>"
        b"<NextKeyMarker>dump/b &amp; c</NextKeyMarker><NextUploadIdMarker>id-2"
        b"</NextUploadIdMarker><Upload><Key>dump/a.chunk</Key><UploadId>id-1</UploadId>"
        b"</Upload><Upload><Key>dump/b &amp; c</Key><UploadId>id-2</UploadId></Upload>"
        b"</ListMultipartUploadsResult>",
        b"<ListMultipartUploadsResult><IsTruncated>false</IsTruncated><Upload><Key>dump/c"
        b"</Key><UploadId>id-3</UploadId></Upload></ListMultipartUploadsResult>",
    ]

    def __init__(self):
        self.queries, self.aborted = [], []
        owner = self

        class H(_Handler):
            def do_GET(self):
                owner.queries.append(self.path.partition("?")[2])
                self.reply(200, FakeUploads.PAGES[min(len(owner.queries), 2) - 1])

            def do_DELETE(self):
                path, _, query = self.path.partition("?")
                if query != "uploadId=id-1":
                    return self.reply(404, b"<Error><Code>NoSuchUpload</Code><Message>The "
                                      b"specified upload does not exist</Message></Error>")
                owner.aborted.append((path, query))
                self.reply(204)

        super().__init__(H)


if __name__ == "__main__":
    unittest.main()
