"""The .deb: built by CPack from this build, installed with dpkg, run, removed.

Needs root (dpkg installs into the machine) and a Release build (the package is built
from the build under test: tests/CMakeLists.txt registers this test only there).
"""
import os
import shutil
import subprocess
import tempfile
import unittest

from mcwtest import MCWARM, ServerTestCase

BUILD = os.environ.get("MCW_BUILD", "")


def sh(*argv, check=True, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=check, **kw)


@unittest.skipUnless(os.geteuid() == 0, "dpkg -i needs root")
@unittest.skipUnless(shutil.which("dpkg") and shutil.which("cpack"), "no dpkg or cpack")
class PackageTest(ServerTestCase):
    def setUp(self):
        super().setUp()
        if sh("dpkg", "-s", "mcwarm", check=False).returncode == 0:
            self.skipTest("a package named mcwarm is installed already: not touching it")
        out = tempfile.mkdtemp(prefix="mcw-deb-")
        self.addCleanup(shutil.rmtree, out, True)
        sh("cpack", "-G", "DEB", "-B", out, "--config",
           os.path.join(BUILD, "CPackConfig.cmake"), timeout=300)
        debs = [f for f in os.listdir(out) if f.endswith(".deb")]
        self.assertEqual(len(debs), 1, debs)
        self.deb = os.path.join(out, debs[0])

    def test_contents_install_run_and_remove(self):
        listing = sh("dpkg-deb", "-c", self.deb).stdout
        commands = [l.split()[0] for l in sh(MCWARM, "--help").stdout.split("commands:")[1]
                    .split("\n\n")[0].strip().splitlines()]
        self.assertIn("watch", commands)
        for path in ["./usr/bin/mcwarm", "./usr/bin/mcwarm-ctl",
                     "./usr/share/man/man1/mcwarm.1.gz", "./usr/share/man/man1/mcwarm-ctl.1.gz",
                     "./usr/share/doc/mcwarm/operations.md", "./usr/share/doc/mcwarm/format.md"] + [
                "./usr/share/man/man1/mcwarm-%s.1.gz" % c for c in commands]:
            self.assertIn(path, listing)
        deps = sh("dpkg-deb", "-f", self.deb, "Depends").stdout
        for lib in ("liburing", "libisal", "libnuma", "e2fsprogs"):
            self.assertIn(lib, deps)

        sh("dpkg", "-i", self.deb, timeout=300)
        self.addCleanup(sh, "dpkg", "-r", "mcwarm", check=False)
        version = sh(MCWARM, "--version").stdout.strip()
        self.assertEqual(sh("/usr/bin/mcwarm", "--version").stdout.strip(), version)
        self.assertEqual(sh("/usr/bin/mcwarm-ctl", "--version").stdout.strip(),
                         version.replace("mcwarm", "mcwarm-ctl"))
        if shutil.which("man"):
            page = sh("man", "-P", "cat", "mcwarm-dump", env=dict(os.environ, MANWIDTH="100"))
            self.assertIn("--syncfs-interval", page.stdout)
            self.assertIn("EXIT STATUS", page.stdout)
        # the installed binaries do the job: mcwarm-ctl finds mcwarm beside it
        src, dst = self.server(), self.server()
        src.client().set_many([(b"pkg-%d" % i, b"v%d" % i, 0, i) for i in range(2000)])
        work = self.tmp.sub("work")
        p = sh("/usr/bin/mcwarm-ctl", "warm", "--source", src.addr, "--dest", dst.addr,
               "--backend", "dir", "--work", work, "--min-ratio", "1", check=False, timeout=300,
               env={k: v for k, v in os.environ.items() if k != "MCWARM"})
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        self.assertEqual(dst.client().get(b"pkg-1999"), (b"v1999", 1999, -1))

        sh("dpkg", "-r", "mcwarm", timeout=300)
        self.assertFalse(os.path.exists("/usr/bin/mcwarm"))
        self.assertFalse(os.path.exists("/usr/share/man/man1/mcwarm.1.gz"))
