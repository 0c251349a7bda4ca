"""The S3 API server of the tests (test_s3, test_s3_warm) and of `bench/run s3`: s3rver
(npm, pinned by scripts/setup.sh) on a free loopback port with a directory of its own, and
the AWS environment a client of it runs with. One place for both, so the benchmark
measures the server the tests check (what s3rver 3.7.1 does and lacks: test_s3's
docstring).
"""
import contextlib
import os
import shutil
import subprocess
import tempfile

from mcwtest import free_port, wait_listening

S3RVER = shutil.which("s3rver")
BUCKET = "mcw-test"
KEY_ID = "S3RVER"  # the key id s3rver knows; it checks no signature (s3proxy.py does)
SECRET = "S3RVER"
START_TIMEOUT_S = 20


class S3rver:
    """s3rver serving BUCKET from a new directory under parent (default: the system's
    temporary directory), removed by stop(), on address; with netns (a network
    namespace's name, and inside: a context manager that makes sockets in it, as
    nshosts.in_netns), run in that namespace, for the fleet tests' hosts to reach."""

    def __init__(self, address="127.0.0.1", netns=None, inside=contextlib.nullcontext,
                 parent=None):
        self.dir = tempfile.mkdtemp(prefix="mcw-s3rver-", dir=parent)
        self.port = free_port()
        self.address = address
        # its continuation tokens use DES, which OpenSSL 3 keeps in the legacy provider
        env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
        argv = [S3RVER, "-d", self.dir, "-a", address, "-p", str(self.port), "-s",
                "--configure-bucket", BUCKET]
        self.proc = subprocess.Popen((["ip", "netns", "exec", netns] if netns else []) + argv,
                                     env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        try:
            wait_listening(self.proc, self.port, START_TIMEOUT_S, "s3rver", address, inside)
        except RuntimeError:
            self.stop()
            raise

    @property
    def url(self):
        return "http://%s:%d" % (self.address, self.port)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def aws_env(home, endpoint):
    """This process's environment without its AWS_* settings, with s3rver's credentials,
    endpoint (s3rver's url or a proxy's in front of it), HOME=home (no ~/.aws of the
    user's) and no instance-role lookup."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=home, AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL_S3=endpoint,
               AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET)
    return env
