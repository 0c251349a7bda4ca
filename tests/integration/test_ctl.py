"""`mcwarm-ctl`: volumes on real loop devices, whole warm-ups between real memcached
servers, controllers killed at every phase, and the ec2 backend against a fake `aws`.

Loop devices and mounts need root and /dev/loop-control: without them these tests are
skipped, saying why.
"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

from mcwtest import (MCWARM, ServerTestCase, chunk_files, fill_big, inspect_records,
                     last_json, run_mcwarm)

CTL = os.environ.get("MCWARM_CTL", "")
HERE = os.path.dirname(os.path.abspath(__file__))


def loop_skip_reason():
    if not CTL or not os.path.exists(CTL):
        return "MCWARM_CTL is not set to the mcwarm-ctl binary (run through ctest)"
    if os.geteuid() != 0:
        return "loop devices and mounts need root"
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control (the loop module is not loaded)"
    if not shutil.which("mkfs.ext4"):
        return "mkfs.ext4 is not installed (e2fsprogs)"
    return None


def loops_on(image):
    """Loop devices whose backing file is image."""
    real = os.path.realpath(image)
    found = []
    for bf in glob.glob("/sys/block/loop*/loop/backing_file"):
        with open(bf) as f:
            if f.read().strip() == real:
                found.append(bf.split("/")[3])
    return found


def mounts_under(path):
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(real + "/")]


def mcwarm_processes(work):
    """mcwarm processes still working in the work directory."""
    found = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(d + "/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"/mcwarm") and any(work.encode() in a for a in argv):
            found.append(int(d[6:]))
    return found


def journal_done_times(state_dir):
    """(unix ms) of every file the populator finished, from its journal."""
    times = []
    with open(os.path.join(state_dir, "journal")) as f:
        for line in f:
            if line.startswith("done "):
                fields = dict(w.split("=", 1) for w in line.split()[1:])
                times.append(int(fields["t"]))
    return times


class CtlTestCase(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        reason = loop_skip_reason()
        if reason:
            raise unittest.SkipTest(reason)

    def setUp(self):
        super().setUp()
        self.leftovers = []

    def tearDown(self):
        for work in self.leftovers:  # never leave a mount or a loop device behind
            for m in sorted(mounts_under(work), reverse=True):
                subprocess.run(["umount", "-l", m])
            for img in glob.glob(os.path.join(work, "*.img")):
                for dev in loops_on(img):
                    subprocess.run(["losetup", "-d", "/dev/" + dev])
        super().tearDown()

    def ctl(self, *args, check=0, env=None, timeout=600):
        p = subprocess.run([CTL] + [str(a) for a in args], capture_output=True, text=True,
                           timeout=timeout, env=env, errors="replace")
        if check is not None and p.returncode != check:
            raise AssertionError("mcwarm-ctl %s exited %d (wanted %d)\nstdout:\n%s\n"
                                 "stderr:\n%s" % (" ".join(map(str, args)), p.returncode, check,
                                                  p.stdout[-4000:], p.stderr[-4000:]))
        return p

    def work(self, name="work"):
        w = self.tmp.sub(name)
        self.leftovers.append(w)
        return w

    def fill(self, server, n, size=1000, prefix=b"k"):
        # (key, value, ttl, flags): half never expire, half in an hour
        items = [(prefix + b"%07d" % i, (b"%07d" % i) * (size // 7), 3600 * (i % 2), i % 1000)
                 for i in range(n)]
        server.client().set_many(items)
        return items

    def assert_sample_equal(self, dst, items, step=97):
        c = dst.client()
        for key, value, _, flags in items[::step]:
            got = c.get(key)
            self.assertIsNotNone(got, "%r missing in the destination" % key)
            self.assertEqual((got[0], got[1]), (value, flags), "item %r" % key)

    def assert_clean(self, work):
        self.assertEqual(mounts_under(work), [], "mounts left behind")
        for img in glob.glob(os.path.join(work, "*.img")):
            self.assertEqual(loops_on(img), [], "loop devices left behind")
        self.assertEqual(mcwarm_processes(work), [], "mcwarm processes left behind")


class CliTest(ServerTestCase):
    """What needs no root: usage errors, plan files, and a whole warm-up on the dir
    backend."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not CTL or not os.path.exists(CTL):
            raise unittest.SkipTest("MCWARM_CTL is not set to the mcwarm-ctl binary")

    def ctl(self, *args, check=0):
        p = subprocess.run([CTL] + [str(a) for a in args], capture_output=True, text=True,
                           timeout=600)
        self.assertEqual(p.returncode, check, p.stderr)
        return p

    def test_usage_errors_are_clear(self):
        self.assertIn("usage: mcwarm-ctl COMMAND", self.ctl(check=64).stderr)
        helptext = self.ctl("--help").stdout
        for cmd in ("warm", "create", "attach", "mkfs", "mount", "cycle", "umount", "detach",
                    "destroy", "status"):
            self.assertIn("\n  %s " % cmd, helptext)
        self.assertIn("unknown command 'wram'", self.ctl("wram", check=64).stderr)
        work = self.tmp.sub("w")
        self.assertIn("warm needs --source and --dest",
                      self.ctl("warm", "--work", work, check=64).stderr)
        self.assertIn("unknown option '--sauce'",
                      self.ctl("warm", "--sauce", "x", "--work", work, check=64).stderr)
        self.assertIn("--backend: use loop, dir, ec2 or s3",
                      self.ctl("create", "--backend", "nfs", "--work", work, check=64).stderr)
        self.assertIn("--size", self.ctl("create", "--size", "12Q", "--work", work,
                                         check=64).stderr)
        self.assertIn("no warm-up recorded", self.ctl("status", "--work", work,
                                                      check=64).stderr)
        plan = self.tmp.sub("bad.plan")
        with open(plan, "w") as f:
            f.write("# a comment\nbackend = dir\nflavour = vanilla\n")
        self.assertIn("bad.plan:3: unknown option 'flavour'",
                      self.ctl("status", "--plan", plan, check=64).stderr)

    def test_warm_on_a_directory_from_a_plan_file(self):
        src, dst = self.server(), self.server()
        items = [(b"p%06d" % i, b"x" * (i % 3000), 0, i) for i in range(30000)]
        src.client().set_many(items)
        work = self.tmp.sub("w")
        plan = self.tmp.sub("warm.plan")
        with open(plan, "w") as f:
            f.write("source = %s\ndest = %s   # the new node\nbackend = dir\nwork = %s\n"
                    "memory = 32M\nmin-ratio = 1\n" % (src.addr, dst.addr, work))
        p = self.ctl("warm", "--plan", plan, "--json")
        report = last_json(p.stdout)
        self.assertTrue(report["ok"])
        self.assertEqual(report["backend"], "dir")
        self.assertEqual(report["items_sent"], 30000)
        self.assertEqual(report["verify_ratio"], 1.0)
        c = dst.client()
        for key, value, _, flags in items[::101]:
            self.assertEqual(c.get(key)[:2], (value, flags))
        # the directory is the operator's: kept, with the dump in it
        self.assertTrue(os.path.exists(os.path.join(work, "volume", "dump-1", "DONE")))
        p = self.ctl("status", "--plan", plan)
        self.assertIn("phase done", p.stdout)
        self.assertIn("volume: dir", p.stdout)
        # options on the command line win over the plan file
        p = self.ctl("warm", "--plan", plan, "--dest", "127.0.0.1:1", check=64)
        self.assertIn("another plan", p.stderr)
        # status needs only the work directory
        p = self.ctl("status", "--work", work, "--json")
        self.assertEqual(json.loads(p.stdout)["items_sent"], 30000)


class PreflightTest(ServerTestCase):
    """warm checks both servers before it creates anything (the dir backend: no root)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not CTL or not os.path.exists(CTL):
            raise unittest.SkipTest("MCWARM_CTL is not set to the mcwarm-ctl binary")

    def warm(self, src_addr, dst_addr, work, *args, check):
        p = subprocess.run([CTL, "warm", "--source", src_addr, "--dest", dst_addr, "--work",
                            work, "--backend", "dir", "--json"] + list(args),
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, check, p.stderr)
        return p

    def assert_refused(self, p, code, *texts):
        report = last_json(p.stdout)
        self.assertEqual((report["ok"], report["exit_code"], report["phase"]),
                         (False, code, "preflight"))
        for text in texts:
            self.assertIn(text, report["error"])
        self.assertIn("refused before creating anything", p.stderr)

    def test_doomed_warm_ups_create_nothing(self):
        src, small = self.server(), self.server(memory_mb=64)
        fill_big(src.client())
        work = self.tmp.sub("w")
        p = self.warm(src.addr, small.addr, work, check=3)
        self.assert_refused(p, 3, "is too small", "memory limit is 64.0 MiB", "--allow-shrink")
        self.assertEqual(os.listdir(work), [])  # no volume, no state, no logs
        p = self.warm(src.addr, "localhost:%d" % src.port, work, check=64)
        self.assert_refused(p, 64, "are the same memcached")
        dead = self.server()
        dead_addr = dead.addr
        dead.stop()
        p = self.warm(src.addr, dead_addr, work, check=69)
        self.assert_refused(p, 69, dead_addr)
        nodump = self.server(extra=["-X"])
        p = self.warm(nodump.addr, small.addr, work, check=69)
        self.assert_refused(p, 69, "refuses key dumps")
        self.assertEqual(os.listdir(work), [])
        self.assertEqual(small.client().stats()["curr_items"], "0")

    def test_accepted_shrink_finishes_and_reports_evictions(self):
        src, dst = self.server(), self.server(memory_mb=64)
        fill_big(src.client())
        work = self.tmp.sub("w")
        p = self.warm(src.addr, dst.addr, work, "--allow-shrink", "--min-ratio", "0.3",
                      check=3)
        report = last_json(p.stdout)
        self.assertEqual(report["phase"], "done")
        self.assertGreater(report["evictions"], 0)
        self.assertEqual(report["evictions"], int(dst.client().stats()["evictions"]))
        self.assertIn("the destination evicted items (exit 3)", p.stderr)


class LoopWarmTest(CtlTestCase):
    def test_warm_overlaps_dump_and_populate_and_verifies_100_percent(self):
        src, dst = self.server(memory_mb=1024), self.server(memory_mb=1024)
        items = self.fill(src, 250000)
        work = self.work()
        p = self.ctl("warm", "--source", src.addr, "--dest", dst.addr, "--work", work,
                     "--min-ratio", "1", "--cycle-ms", "20", "--threads", "1", "--json")
        report = last_json(p.stdout)
        self.assertTrue(report["ok"], p.stderr)
        self.assertEqual(report["phase"], "done")
        self.assertEqual(report["backend"], "loop")
        self.assertEqual(report["verify_ratio"], 1.0)
        self.assertEqual(report["items_sent"], len(items))
        self.assertEqual(report["already_present"], 0)
        self.assertIn("warm complete", p.stderr)
        self.assert_sample_equal(dst, items)
        # overlap, from the populator's own journal: files were applied while the dump ran
        # (its JSON summary is written as it exits)
        n = report["dump_attempt"]
        dump_end_ms = os.stat(os.path.join(work, "dump-%d.json" % n)).st_mtime * 1000
        done = journal_done_times(os.path.join(work, "pop-%d" % n))
        during = [t for t in done if t < dump_end_ms]
        self.assertGreater(len(during), 0, "no file was applied before the dump ended")
        self.assertGreater(report["overlap_seconds"], 0)
        # torn down: the image it created is gone, nothing mounted or attached
        self.assertFalse(os.path.exists(os.path.join(work, "volume.img")))
        self.assert_clean(work)
        # status reads the finished warm-up
        st = json.loads(self.ctl("status", "--source", src.addr, "--dest", dst.addr,
                                 "--work", work, "--json").stdout)
        self.assertEqual(st["phase"], "done")
        self.assertEqual(st["items_sent"], len(items))

    def test_failure_tears_down_and_says_so(self):
        # a destination that passes the checks before the warm-up (a shrink is accepted)
        # but refuses items once full (-M): populate fails mid-run
        src, dst = self.server(), self.server(memory_mb=64, extra=["-M"])
        fill_big(src.client())
        work = self.work()
        p = self.ctl("warm", "--source", src.addr, "--dest", dst.addr, "--work", work,
                     "--allow-shrink", "--json", check=3)
        report = last_json(p.stdout)
        self.assertFalse(report["ok"])
        self.assertEqual(report["phase"], "failed")
        self.assertIn("the destination is too small", p.stderr)
        self.assertIn("cleaned up", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(work, "volume.img")))
        self.assert_clean(work)
        st = json.loads(self.ctl("status", "--source", src.addr, "--dest", dst.addr,
                                 "--work", work, "--json").stdout)
        self.assertEqual(st["phase"], "failed")
        self.assertIn("populate exit 3", st["error"])


class ReaderTest(CtlTestCase):
    def test_reader_never_applies_a_file_it_saw_half_written(self):
        src, dst = self.server(), self.server()
        self.fill(src, 30000, size=700)
        full = self.tmp.sub("full")
        run_mcwarm("dump", "--source", src.addr, "--out", full, "--chunk-size", "4M", "-q",
                   check=0)
        files = chunk_files(full)
        self.assertGreaterEqual(len(files), 3)
        per_file = [len(inspect_records([f])) for f in files]
        work = self.work()
        plan = ["--work", work, "--size", "512M"]
        for step in (["create"], ["attach"], ["mkfs"], ["mount"]):
            self.ctl(*(step + plan))
        live = os.path.join(work, "rw", "d")
        os.makedirs(live)
        state = self.tmp.sub("state")
        whole = 0  # records in files written completely so far
        for f, records in zip(files, per_file):
            with open(f, "rb") as fh:
                data = fh.read()
            target = os.path.join(live, os.path.basename(f))
            quarter = len(data) // 4
            for piece in range(4):  # slowly, under its final name, remounting in between
                with open(target, "ab") as out:
                    out.write(data[piece * quarter: len(data) if piece == 3 else
                                   (piece + 1) * quarter])
                self.ctl("cycle", *plan)
                pop = run_mcwarm("populate", "--dest", dst.addr, "--from",
                                 os.path.join(work, "ro", "d"), "--state", state, "--once",
                                 "--json", "-q", check=1)
                summary = last_json(pop.stdout)
                held = int(dst.client().stats()["curr_items"])
                if piece < 3:
                    self.assertEqual(held, whole, "applied part of a half-written file")
                    self.assertGreaterEqual(summary["files_not_whole"], 1)
                else:
                    whole += records
                    self.assertEqual(held, whole, "a whole file was not applied")
        for name in ("MANIFEST", "DONE"):
            shutil.copy(os.path.join(full, name), os.path.join(live, name))
        self.ctl("cycle", *plan)
        pop = run_mcwarm("populate", "--dest", dst.addr, "--from", os.path.join(work, "ro", "d"),
                         "--state", state, "--once", "--json", "-q", check=0)
        self.assertEqual(last_json(pop.stdout)["already_present"], 0)
        verify = last_json(run_mcwarm("verify", "--source", src.addr, "--dest", dst.addr,
                                      "--min-ratio", "1", "--json", "-q", check=0).stdout)
        self.assertEqual(verify["equal"], 30000)
        self.ctl("destroy", *plan)
        self.assertFalse(os.path.exists(os.path.join(work, "volume.img")))
        self.assert_clean(work)

    def test_dumper_syncfs_makes_files_visible_to_a_plain_remount(self):
        # two hosts: nobody syncs the writer's filesystem but the dumper itself
        src, dst = self.server(), self.server()
        self.fill(src, 20000, size=500)
        work = self.work()
        plan = ["--work", work, "--size", "512M"]
        for step in ("create", "attach", "mkfs", "mount"):
            self.ctl(step, *plan)
        run_mcwarm("dump", "--source", src.addr, "--out", os.path.join(work, "rw", "d"),
                   "--syncfs-interval", "1", "-q", check=0)
        self.ctl("umount", "--side", "ro", *plan)  # a remount, without cycle's syncfs
        self.ctl("mount", "--side", "ro", *plan)
        self.assertTrue(os.path.exists(os.path.join(work, "ro", "d", "DONE")))
        pop = run_mcwarm("populate", "--dest", dst.addr, "--from", os.path.join(work, "ro", "d"),
                         "--state", self.tmp.sub("state"), "--json", "-q", check=0)
        self.assertEqual(last_json(pop.stdout)["items_sent"], 20000)
        self.ctl("destroy", *plan)
        self.assert_clean(work)

    def test_steps_are_idempotent(self):
        work = self.work()
        plan = ["--work", work, "--size", "512M"]
        for step in ("create", "attach", "mkfs", "mount", "cycle"):
            self.ctl(step, *plan)
            self.ctl(step, *plan)  # again: nothing changes, no error
        img = os.path.join(work, "volume.img")
        self.assertEqual(len(loops_on(img)), 2)
        self.assertEqual(sorted(mounts_under(work)),
                         [os.path.join(os.path.realpath(work), s) for s in ("ro", "rw")])
        with open(os.path.join(work, "rw", "probe"), "w") as f:
            f.write("x")
        self.ctl("cycle", *plan)
        self.assertTrue(os.path.exists(os.path.join(work, "ro", "probe")),
                        "the reader does not see a synced file after a cycle")
        st = self.ctl("status", *plan).stdout
        self.assertIn("read-write /dev/loop", st)
        self.assertIn("(mounted)", st)
        for step in ("umount", "umount", "detach", "detach", "destroy", "destroy"):
            self.ctl(step, *plan)
        self.assertFalse(os.path.exists(img))
        self.assert_clean(work)

    def test_read_only_side_cannot_write_and_mkfs_needs_attach(self):
        work = self.work()
        plan = ["--work", work, "--size", "512M"]
        self.ctl("create", *plan)
        p = self.ctl("mkfs", *plan, check=64)
        self.assertIn("attach --side rw first", p.stderr)
        self.ctl("attach", *plan)
        self.ctl("mkfs", *plan)
        self.ctl("mount", *plan)
        with self.assertRaises(OSError):
            open(os.path.join(work, "ro", "x"), "w")
        p = self.ctl("warm", *plan, "--source", "127.0.0.1:1", "--dest", "127.0.0.1:2",
                     check=64)
        self.assertIn("another plan", p.stderr)
        self.ctl("destroy", *plan)
        self.assert_clean(work)


class MountErrorTest(CtlTestCase):
    """Each mount-related failure says what happened and what to do."""

    def plan(self, work):
        return ["--work", work, "--size", "512M"]

    def test_not_root(self):
        if not shutil.which("runuser"):
            self.skipTest("runuser is not installed (util-linux)")
        work = self.work()
        os.makedirs(work)
        os.chmod(self.tmp.path, 0o755)
        os.chmod(work, 0o777)
        self.ctl("create", *self.plan(work))
        p = subprocess.run(["runuser", "-u", "nobody", "--", CTL, "attach"] + self.plan(work),
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 69, p.stderr)
        self.assertIn("loop devices need root", p.stderr)

    def test_busy(self):
        work = self.work()
        for step in ("create", "attach", "mkfs", "mount"):
            self.ctl(step, *self.plan(work))
        with open(os.path.join(work, "rw", "f"), "w") as f:
            f.write("x")
        self.ctl("cycle", *self.plan(work))
        with open(os.path.join(work, "ro", "f")):  # held open: the reader's mount is busy
            p = self.ctl("umount", "--side", "ro", *self.plan(work), check=74)
        self.assertIn("a process still uses it", p.stderr)
        self.assertIn("fuser -m", p.stderr)
        self.ctl("destroy", *self.plan(work))
        self.assert_clean(work)

    def test_device_vanished(self):
        work = self.work()
        for step in ("create", "attach", "mkfs"):
            self.ctl(step, *self.plan(work))
        with open(os.path.join(work, "ctl.state")) as f:
            ro = [l.split("=", 1)[1] for l in f.read().splitlines()
                  if l.startswith("ro_device=")][0]
        subprocess.run(["losetup", "-d", ro], check=True)  # behind the controller's back
        time.sleep(0.2)
        p = self.ctl("mount", "--side", "ro", *self.plan(work), check=74)
        self.assertIn("the device vanished", p.stderr)
        self.assertIn(ro, p.stderr)
        # attach notices it is gone and attaches again; then everything works
        self.ctl("attach", *self.plan(work))
        self.ctl("mount", *self.plan(work))
        self.ctl("destroy", *self.plan(work))
        self.assert_clean(work)


class CrashTest(CtlTestCase):
    """The controller killed (SIGKILL) at each point of a warm-up, then run again."""

    POINTS = ("volume", "dumping", "pass", "populated", "verified", "teardown")

    def test_killed_at_each_phase_then_run_again_completes(self):
        src = self.server(memory_mb=512)
        items = self.fill(src, 60000)
        for point in self.POINTS:
            with self.subTest(point=point):
                dst = self.server(memory_mb=512)
                work = self.work("work-" + point)
                plan = ["--source", src.addr, "--dest", dst.addr, "--work", work,
                        "--min-ratio", "1", "--cycle-ms", "50", "--json"]
                env = dict(os.environ, MCW_CTL_CRASH_AT=point)
                p = self.ctl("warm", *plan, env=env, check=None)
                self.assertEqual(p.returncode, -9, "not killed at %s:\n%s" % (point, p.stderr))
                again = self.ctl("warm", *plan)
                report = last_json(again.stdout)
                self.assertTrue(report["ok"], again.stderr)
                self.assertIn("continuing the warm-up", again.stderr)
                self.assertEqual(report["verify_ratio"], 1.0)
                self.assertEqual(report["phase"], "done")
                self.assert_sample_equal(dst, items)
                self.assertFalse(os.path.exists(os.path.join(work, "volume.img")))
                self.assert_clean(work)

    def start_warm(self, nitems):
        """Two servers, the source filled, and mcwarm-ctl warm started in the background."""
        src, dst = self.server(memory_mb=1024), self.server(memory_mb=1024)
        items = self.fill(src, nitems)
        work = self.work()
        plan = ["--source", src.addr, "--dest", dst.addr, "--work", work, "--min-ratio", "1",
                "--threads", "1", "--json"]
        proc = subprocess.Popen([CTL, "warm"] + plan, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        return dst, items, work, plan, proc

    def test_killed_from_outside_mid_dump_then_run_again_completes(self):
        dst, items, work, plan, proc = self.start_warm(200000)
        deadline = time.time() + 60
        state = os.path.join(work, "ctl.state")
        while time.time() < deadline:
            if os.path.exists(state):
                with open(state) as f:
                    if "phase=dumping" in f.read():
                        break
            time.sleep(0.005)
        proc.kill()
        proc.communicate()
        again = self.ctl("warm", *plan)
        report = last_json(again.stdout)
        self.assertTrue(report["ok"], again.stderr)
        self.assertEqual(report["verify_ratio"], 1.0)
        self.assert_sample_equal(dst, items)
        self.assert_clean(work)

    def test_dumper_killed_too_then_run_again_continues_the_same_dump(self):
        dst, items, work, plan, proc = self.start_warm(300000)
        deadline = time.time() + 60
        dumper = None
        while time.time() < deadline and dumper is None:
            p = subprocess.run(["pgrep", "-f", "mcwarm dump .*--out %s" % work],
                               capture_output=True, text=True)
            dumper = int(p.stdout.split()[0]) if p.stdout.strip() else None
            time.sleep(0.005)
        self.assertIsNotNone(dumper, "the dumper never started")
        time.sleep(0.4)  # some key chunks finish
        proc.kill()
        os.kill(dumper, signal.SIGKILL)
        proc.communicate()
        again = self.ctl("warm", *plan)
        report = last_json(again.stdout)
        self.assertTrue(report["ok"], again.stderr)
        self.assertEqual(report["dump_attempt"], 1, "a new attempt instead of continuing")
        self.assertIn("continuing it from its checkpoint", again.stderr)
        self.assertEqual(report["verify_ratio"], 1.0)
        self.assert_sample_equal(dst, items)
        self.assert_clean(work)

class SidesTest(CtlTestCase):
    """`warm --side rw` and `warm --side ro`: one host's half each, two work directories
    standing in for the source host and the populator host, one loop image between them
    (each side its own loop device on it, as each host has its own EBS attachment)."""

    def setUp(self):
        super().setUp()
        self.shared = self.work("shared")  # where the "volume" lives
        self.image = os.path.join(self.shared, "volume.img")

    def rw_plan(self, src, work, *extra):
        return ["--side", "rw", "--source", src.addr, "--work", work, "--backend", "loop",
                "--volume", self.image, "--size", "512M", "--threads", "1", "--json"] + \
            list(extra)

    def ro_plan(self, src, dst, work, *extra):
        return ["--side", "ro", "--source", src.addr, "--dest", dst.addr, "--work", work,
                "--backend", "loop", "--volume", self.image, "--threads", "1",
                "--cycle-ms", "50", "--min-ratio", "1", "--wait-volume", "60", "--json"] + \
            list(extra)

    def start(self, plan, env=None):
        return subprocess.Popen([CTL, "warm"] + plan, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)

    def finish(self, proc, want=0):
        out, err = proc.communicate(timeout=600)
        self.assertEqual(proc.returncode, want, err[-4000:])
        return last_json(out), err

    def assert_all_equal(self, dst, items):
        c = dst.client()
        for key, value, _, flags in items:
            got = c.get(key)
            self.assertIsNotNone(got, "%r missing in the destination" % key)
            self.assertEqual((got[0], got[1]), (value, flags), "item %r" % key)

    def wait_phase(self, work, phase, timeout=60):
        state = os.path.join(work, "ctl.state")
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(state):
                with open(state) as f:
                    if "phase=%s\n" % phase in f.read():
                        return
            time.sleep(0.005)
        self.fail("%s never reached phase %s" % (work, phase))

    def status(self, work):
        return json.loads(self.ctl("status", "--work", work, "--json").stdout)

    def release_and_check(self, rw_work, *ro_works):
        self.ctl("release", "--work", rw_work)
        self.ctl("release", "--work", rw_work)  # a second release: nothing to do
        self.assertFalse(os.path.exists(self.image), "the volume was not deleted")
        for w in (rw_work,) + ro_works:
            self.assert_clean(w)
        self.assertEqual(mounts_under(self.shared), [])

    def test_halves_started_concurrently_complete_and_verify_item_by_item(self):
        src, dst = self.server(memory_mb=512), self.server(memory_mb=512)
        items = self.fill(src, 40000)
        rw_work, ro_work = self.work("source-host"), self.work("populator-host")
        ro = self.start(self.ro_plan(src, dst, ro_work))  # first: it waits for the volume
        time.sleep(1)
        self.assertIsNone(ro.poll(), "the ro half did not wait for the volume")
        rw = self.start(self.rw_plan(src, rw_work))
        rw_report, rw_err = self.finish(rw)
        ro_report, ro_err = self.finish(ro)
        self.assertEqual((rw_report["side"], rw_report["phase"]), ("rw", "dumped"))
        self.assertEqual((ro_report["side"], ro_report["phase"]), ("ro", "done"), ro_err)
        self.assertIn("waiting for the source host", ro_err)
        self.assertEqual(ro_report["verify_ratio"], 1.0)
        self.assertEqual(ro_report["items_sent"], len(items))
        self.assertEqual(rw_report["dump_items"], len(items))
        self.assertEqual(ro_report["bytes_sent"], rw_report["dump_bytes"])
        self.assert_all_equal(dst, items)
        self.assertEqual(mounts_under(ro_work), [])  # the reader took its attachment down
        self.assertEqual(len(loops_on(self.image)), 1)  # only the writer's is left
        st = self.status(rw_work)
        self.assertEqual((st["side"], st["phase"], st["dump_exit"]), ("rw", "dumped", 0))
        st = self.status(ro_work)
        self.assertEqual((st["side"], st["phase"]), ("ro", "done"))
        self.assertEqual(st["items_sent"], len(items))
        # both halves again: finished already, 0 at once, nothing applied twice
        again = self.ctl("warm", *self.rw_plan(src, rw_work))
        self.assertIn("finished already", again.stderr)
        again = self.ctl("warm", *self.ro_plan(src, dst, ro_work))
        self.assertEqual(last_json(again.stdout)["items_sent"], len(items))
        self.release_and_check(rw_work, ro_work)

    def test_release_refused_while_a_reader_is_attached(self):
        src, dst = self.server(), self.server()
        items = self.fill(src, 5000)
        rw_work, ro_work = self.work("source-host"), self.work("populator-host")
        self.finish(self.start(self.rw_plan(src, rw_work)))
        # the reader's controller dies with its attachment mounted
        env = dict(os.environ, MCW_CTL_CRASH_AT="populated")
        p = self.ctl("warm", *self.ro_plan(src, dst, ro_work), env=env, check=None)
        self.assertEqual(p.returncode, -9)
        reader = loops_on(self.image)
        self.assertEqual(len(reader), 2)
        p = self.ctl("release", "--work", rw_work, "--json", check=75)
        self.assertIn("still attached", p.stderr)
        self.assertTrue(any("/dev/" + d in p.stderr for d in reader), p.stderr)
        self.assertTrue(os.path.exists(self.image))
        report, _ = self.finish(self.start(self.ro_plan(src, dst, ro_work)))
        self.assertEqual(report["verify_ratio"], 1.0)
        self.assert_all_equal(dst, items)
        self.release_and_check(rw_work, ro_work)

    def test_rw_half_killed_mid_dump_then_run_again_continues(self):
        src, dst = self.server(memory_mb=1024), self.server(memory_mb=1024)
        items = self.fill(src, 200000)
        rw_work, ro_work = self.work("source-host"), self.work("populator-host")
        ro = self.start(self.ro_plan(src, dst, ro_work))
        rw = self.start(self.rw_plan(src, rw_work))
        self.wait_phase(rw_work, "dumping")
        checkpoint = os.path.join(rw_work, "rw", "dump-1", ".mcwarm", "checkpoint")
        deadline = time.time() + 60
        while not os.path.exists(checkpoint) and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(0.4)  # some key chunks finish
        rw.kill()
        rw.communicate()
        dumper = subprocess.run(["pgrep", "-f", "mcwarm dump .*--out %s" % rw_work],
                                capture_output=True, text=True).stdout.split()
        for pid in dumper:  # the dumper dies too: the next run continues its checkpoint
            os.kill(int(pid), signal.SIGKILL)
        report, err = self.finish(self.start(self.rw_plan(src, rw_work)))
        self.assertIn("continuing the warm-up", err)
        self.assertTrue(dumper, "the dumper was not running")
        self.assertIn("continuing it from its checkpoint", err)
        self.assertEqual(report["dump_attempt"], 1, "a new attempt instead of continuing")
        ro_report, ro_err = self.finish(ro)
        self.assertEqual(ro_report["verify_ratio"], 1.0, ro_err)
        self.assert_sample_equal(dst, items, step=7)
        self.release_and_check(rw_work, ro_work)

    def test_ro_half_killed_mid_pass_then_run_again_continues(self):
        src, dst = self.server(memory_mb=512), self.server(memory_mb=512)
        items = self.fill(src, 40000)
        rw_work, ro_work = self.work("source-host"), self.work("populator-host")
        rw = self.start(self.rw_plan(src, rw_work))
        env = dict(os.environ, MCW_CTL_CRASH_AT="pass")
        p = self.ctl("warm", *self.ro_plan(src, dst, ro_work), env=env, check=None)
        self.assertEqual(p.returncode, -9)
        report, err = self.finish(self.start(self.ro_plan(src, dst, ro_work)))
        self.assertIn("continuing the warm-up", err)
        self.assertEqual(report["verify_ratio"], 1.0)
        self.assertLessEqual(report["items_sent"], len(items))  # nothing applied twice
        self.assert_all_equal(dst, items)
        self.finish(rw)
        self.assertEqual(len(loops_on(self.image)), 1)
        self.release_and_check(rw_work, ro_work)

    def test_each_half_killed_at_each_point_then_run_again_continues(self):
        src, dst = self.server(memory_mb=512), self.server(memory_mb=512)
        items = self.fill(src, 20000)
        rw_work, ro_work = self.work("source-host"), self.work("populator-host")
        halves = (("rw", self.rw_plan(src, rw_work), ("volume", "dumping", "dumped")),
                  ("ro", self.ro_plan(src, dst, ro_work),
                   ("volume", "dumping", "pass", "populated", "verified", "teardown")))
        for side, plan, points in halves:
            for point in points:  # each run continues what the killed one left
                with self.subTest(side=side, point=point):
                    env = dict(os.environ, MCW_CTL_CRASH_AT=point)
                    p = self.ctl("warm", *plan, env=env, check=None)
                    self.assertEqual(p.returncode, -9, "not killed at %s:\n%s" % (point,
                                                                                 p.stderr))
            report, _ = self.finish(self.start(plan))
            self.assertEqual(report["phase"], "dumped" if side == "rw" else "done")
        self.assertEqual(report["verify_ratio"], 1.0)
        self.assertEqual(report["dump_attempt"], 1)
        self.assert_all_equal(dst, items)
        self.release_and_check(rw_work, ro_work)

    def test_resize_one_dump_read_by_two_groups(self):
        from test_filters import make_keys, owners, value_of
        src = self.server(memory_mb=512)
        new = [self.server(memory_mb=512), self.server(memory_mb=512)]
        keys = make_keys(20000, seed=5)
        src.client().set_many([(k, value_of(k), 0, 0) for k in keys])
        ring_to = [s.addr for s in new]
        ring = ["--ring", "libmemcached", "--ring-from", src.addr, "--ring-to",
                ",".join(ring_to)]
        rw_work = self.work("source-host")
        ro_works = [self.work("populator-%d" % i) for i in range(2)]
        readers = [self.start(self.ro_plan(src, s, w, "--group", s.addr.replace(":", "_"),
                                           *ring))
                   for s, w in zip(new, ro_works)]
        self.finish(self.start(self.rw_plan(src, rw_work, *ring)))
        for r in readers:
            report, err = self.finish(r)
            self.assertEqual(report["verify_ratio"], 1.0, err)
        after = owners("libmemcached", ring_to, keys)
        for j, s in enumerate(new):  # every key at its new owner, and only there
            c = s.client()
            for k, o in zip(keys, after):
                got = c.get(k)
                if o == j:
                    self.assertIsNotNone(got, "%r missing at %s" % (k, s.addr))
                    self.assertEqual(got[0], value_of(k))
                else:
                    self.assertIsNone(got, "%r copied to %s, not its owner" % (k, s.addr))
        self.release_and_check(rw_work, *ro_works)

    def test_verify_below_the_ratio_is_exit_2_and_detaches(self):
        src, dst = self.server(), self.server()
        self.fill(src, 2000, prefix=b"a")
        self.fill(src, 2000, prefix=b"b")
        rw_work, ro_work = self.work("source-host"), self.work("populator-host")
        # the source host dumps only a-keys; this reader verifies every key
        self.ctl("warm", *self.rw_plan(src, rw_work, "--key-include", "a"))
        p = self.ctl("warm", *self.ro_plan(src, dst, ro_work), check=2)
        report = last_json(p.stdout)
        self.assertEqual((report["phase"], report["verify_exit"]), ("failed", 2))
        self.assertLess(report["verify_ratio"], 0.6)
        self.assertIn("verify: warm ratio", p.stderr)
        self.assertEqual(mounts_under(ro_work), [])
        self.assertIn("verify", self.status(ro_work)["error"])
        # the same filter on the reader: verified on the dumped keys only
        self.ctl("warm", *self.ro_plan(src, dst, self.work("reader-2"), "--key-include", "a"))
        self.release_and_check(rw_work, ro_work)

    def test_halves_on_the_dir_backend(self):
        src, dst = self.server(), self.server()
        items = self.fill(src, 3000)
        rw_work, ro_work = self.work("source-host"), self.work("populator-host")
        vol = os.path.join(self.shared, "dir-volume")
        common = ["--backend", "dir", "--volume", vol, "--json"]
        ro = self.start(self.ro_plan(src, dst, ro_work, *common))  # later options win
        rw = self.ctl("warm", "--side", "rw", "--source", src.addr, "--work", rw_work, *common)
        self.assertEqual(last_json(rw.stdout)["phase"], "dumped")
        self.assertTrue(os.path.exists(os.path.join(vol, "dump-1", "DONE")))
        report, _ = self.finish(ro)
        self.assertEqual(report["verify_ratio"], 1.0)
        self.assert_all_equal(dst, items)
        self.ctl("release", "--work", rw_work)
        self.assertTrue(os.path.isdir(vol), "the directory is the operator's: kept")

    def test_usage(self):
        src = self.server()
        w = self.work()
        p = self.ctl("warm", "--side", "ro", "--source", src.addr, "--work", w, "--volume",
                     self.image, check=64)
        self.assertIn("needs --source and --dest", p.stderr)
        p = self.ctl("warm", "--side", "rw", "--source", src.addr, "--work", w, check=64)
        self.assertIn("needs --volume PATH", p.stderr)
        p = self.ctl("warm", *self.rw_plan(src, w, "--group", "x_1"), check=64)
        self.assertIn("--group is for --side ro", p.stderr)
        p = self.ctl("release", "--work", self.work("empty"))
        self.assertIn("nothing to do", p.stderr)


class Ec2Test(CtlTestCase):
    """The ec2 backend through a fake `aws` that keeps real loop devices behind each
    attachment, so the whole warm-up runs on one machine."""

    def setUp(self):
        super().setUp()
        self.fake = self.tmp.sub("aws")
        os.makedirs(os.path.join(self.fake, "bin"))
        with open(os.path.join(self.fake, "bin", "aws"), "w") as f:
            f.write("#!/bin/sh\nexec %s %s \"$@\"\n" % (sys.executable,
                                                      os.path.join(HERE, "fake_aws.py")))
        os.chmod(os.path.join(self.fake, "bin", "aws"), 0o755)
        self.env = dict(os.environ, FAKE_AWS_DIR=self.fake,
                        PATH=os.path.join(self.fake, "bin") + ":" + os.environ["PATH"],
                        MCW_EBS_BYID_DIR=os.path.join(self.fake, "byid", "%i"))

    def tearDown(self):
        state = os.path.join(self.fake, "state.json")
        if os.path.exists(state):  # devices the fake attached
            with open(state) as f:
                volumes = json.load(f)["volumes"]
            for v in volumes.values():
                for a in v["attachments"].values():
                    if a.get("device"):
                        subprocess.run(["losetup", "-d", a["device"]])
        super().tearDown()

    def calls(self):
        with open(os.path.join(self.fake, "calls.log")) as f:
            return [json.loads(line) for line in f]

    def ops(self):
        """The operations in order, each with its instance if it names one; repeated
        polls collapsed."""
        out = []
        for argv in self.calls():
            a = argv[argv.index("ec2") + 1:]
            op = a[0]
            if "--instance-id" in a:
                op += " " + a[a.index("--instance-id") + 1]
            if not out or out[-1] != op or not op.startswith("describe"):
                out.append(op)
        return out

    def plan(self, src, dst, work):
        return ["--backend", "ec2", "--source", src.addr, "--dest", dst.addr, "--work", work,
                "--region", "us-east-1", "--zone", "us-east-1a", "--instance-rw", "i-src",
                "--instance-ro", "i-pop", "--size", "1G", "--min-ratio", "1",
                "--attach-timeout", "5", "--json"]

    def fake_volumes(self):
        with open(os.path.join(self.fake, "state.json")) as f:
            return json.load(f)["volumes"]

    def test_warm_call_sequence(self):
        src, dst = self.server(), self.server()
        items = self.fill(src, 20000)
        work = self.work()
        p = self.ctl("warm", *self.plan(src, dst, work), env=self.env)
        report = last_json(p.stdout)
        self.assertTrue(report["ok"], p.stderr)
        self.assertEqual(report["backend"], "ec2")
        self.assertEqual(report["verify_ratio"], 1.0)
        self.assert_sample_equal(dst, items)
        ops = [o for o in self.ops() if not o.startswith("describe")]
        self.assertEqual(ops, ["create-volume", "attach-volume i-src", "attach-volume i-pop",
                               "detach-volume i-pop", "detach-volume i-src", "delete-volume"])
        create = next(c for c in self.calls() if "create-volume" in c)
        for arg in ("--multi-attach-enabled", "io2", "us-east-1a", "--tag-specifications"):
            self.assertIn(arg, create)
        self.assertEqual(create[create.index("--size") + 1], "1")
        self.assertEqual(create[:2], ["--region", "us-east-1"])
        # it waited for the volume to become available before attaching
        all_ops = self.ops()
        self.assertLess(all_ops.index("create-volume"), all_ops.index("attach-volume i-src"))
        self.assertEqual(self.fake_volumes(), {})
        self.assert_clean(work)

    def test_throttling_is_retried(self):
        src, dst = self.server(), self.server()
        self.fill(src, 5000)
        work = self.work()
        env = dict(self.env, FAKE_AWS_THROTTLE="3")
        p = self.ctl("warm", *self.plan(src, dst, work), env=env)
        self.assertTrue(last_json(p.stdout)["ok"], p.stderr)
        first = self.calls()[:4]  # three throttled attempts, then the same call succeeds
        self.assertEqual(first[0], first[3])
        self.assertEqual(self.fake_volumes(), {})

    def test_volume_stuck_attaching_fails_and_cleans_up(self):
        src, dst = self.server(), self.server()
        self.fill(src, 5000)
        work = self.work()
        env = dict(self.env, FAKE_AWS_STUCK="i-pop")
        p = self.ctl("warm", *self.plan(src, dst, work), env=env, check=69)
        self.assertIn("stuck attaching", p.stderr)
        self.assertIn("cleaned up", p.stderr)
        ops = [o for o in self.ops() if not o.startswith("describe")]
        self.assertEqual(ops, ["create-volume", "attach-volume i-src", "attach-volume i-pop",
                               "detach-volume i-pop", "detach-volume i-src", "delete-volume"])
        self.assertEqual(self.fake_volumes(), {})
        self.assert_clean(work)

    def seed_volume(self, tag, **fields):
        """A volume made outside mcwarm-ctl, in the fake's state."""
        path = os.path.join(self.fake, "state.json")
        st = {"volumes": {}, "next": 100, "throttled": 0}
        if os.path.exists(path):
            with open(path) as f:
                st = json.load(f)
        vid = "vol-%017x" % (0xdef000 + len(st["volumes"]))
        st["volumes"][vid] = dict({"state": "available", "polls": 0, "tag": tag,
                                   "image": os.path.join(self.fake, vid + ".img"),
                                   "attachments": {}, "type": "io2", "multi_attach": True,
                                   "zone": "us-east-1a"}, **fields)
        with open(path, "w") as f:
            json.dump(st, f)
        return vid

    def side_plan(self, side, src, work, *extra, dst=None):
        plan = ["--side", side, "--backend", "ec2", "--source", src.addr, "--work", work,
                "--region", "us-east-1", "--attach-timeout", "5", "--json"]
        if dst is not None:
            plan += ["--dest", dst.addr, "--min-ratio", "1", "--cycle-ms", "50",
                     "--wait-volume", "60", "--idle-timeout", "30"]
        return plan + list(extra)

    def assert_nothing_created(self):
        ops = [o.split()[0] for o in self.ops()]
        for op in ("create-volume", "attach-volume"):
            self.assertNotIn(op, ops)

    def test_plans_ec2_cannot_carry_out_are_refused_before_anything_is_created(self):
        src, dst = self.server(), self.server()
        cases = [
            # the populator in another availability zone than the source and volume
            ("zone", lambda w: self.plan(src, dst, w), {"FAKE_AWS_ZONES": "i-pop=us-east-1b"},
             None, "the populator instance i-pop is in us-east-1b but the volume is in "
             "us-east-1a"),
            # an existing volume that is not io2 multi-attach
            ("gp3", lambda w: self.side_plan("rw", src, w, "--volume", "gp3-vol",
                                             "--instance-rw", "i-src", "--size", "1G"), {},
             dict(tag="gp3-vol", type="gp3", multi_attach=False),
             "is gp3 without multi-attach, not io2 with multi-attach"),
            # an existing volume in another zone than the instance
            ("az", lambda w: self.side_plan("ro", src, w, "--volume", "far-vol",
                                            "--instance-ro", "i-pop", dst=dst), {},
             dict(tag="far-vol", zone="us-east-1c"), "is in us-east-1c, but the plan"),
            # a volume already attached to 16 instances
            ("full", lambda w: self.side_plan("ro", src, w, "--volume", "full-vol",
                                              "--instance-ro", "i-pop", dst=dst), {},
             dict(tag="full-vol", state="in-use",
                  attachments={"i-%02d" % i: {"state": "attached", "device": None}
                               for i in range(16)}),
             "already attached to 16 instances, the io2 multi-attach limit (16)"),
        ]
        for name, plan, env, seed, message in cases:
            with self.subTest(case=name):
                if os.path.exists(os.path.join(self.fake, "calls.log")):
                    os.remove(os.path.join(self.fake, "calls.log"))
                if seed is not None:
                    self.seed_volume(**seed)
                p = self.ctl("warm", *plan(self.work("work-" + name)),
                             env=dict(self.env, **env), check=64)
                self.assertIn("nothing was created", p.stderr)
                self.assertIn(message, p.stderr)
                self.assert_nothing_created()

    def test_halves_on_ec2_a_populator_reads_two_volumes(self):
        srcs = [self.server(), self.server()]
        dsts = [self.server(), self.server()]
        items = [self.fill(s, 5000, prefix=b"s%d-" % i) for i, s in enumerate(srcs)]
        rw_works = [self.work("source-%d" % i) for i in range(2)]
        ro_works = [self.work("populator-%d" % i) for i in range(2)]
        readers = [subprocess.Popen(
            [CTL, "warm"] + self.side_plan("ro", s, w, "--instance-ro", "i-pop", dst=d),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
            for s, d, w in zip(srcs, dsts, ro_works)]
        for i, (s, w) in enumerate(zip(srcs, rw_works)):
            p = self.ctl("warm", *self.side_plan("rw", s, w, "--instance-rw", "i-src%d" % i,
                                                 "--size", "1G"), env=self.env)
            self.assertEqual(last_json(p.stdout)["phase"], "dumped")
        for r, d, its in zip(readers, dsts, items):
            out, err = r.communicate(timeout=120)
            if os.environ.get("DEBUG_SIDES"):
                sys.stderr.write(err)
            if r.returncode != 0:
                for w in ro_works:
                    os.system("cat %s/ctl.state %s/*.log >&2; ls -la %s/ro %s/ro/* >&2"
                              % (w, w, w, w))
            self.assertEqual(r.returncode, 0, err[-3000:])
            self.assertEqual(last_json(out)["verify_ratio"], 1.0)
            self.assert_sample_equal(d, its, step=13)
        vols = self.fake_volumes()
        self.assertEqual(len(vols), 2)
        for v in vols.values():  # each volume: only its writer is left attached
            self.assertEqual([k for k in v["attachments"] if not k.startswith("i-src")], [])
        for w in rw_works:
            self.ctl("release", "--work", w, env=self.env)
            self.ctl("release", "--work", w, env=self.env)
        self.assertEqual(self.fake_volumes(), {})
        for w in rw_works + ro_works:
            self.assert_clean(w)

    def test_one_populator_instance_reads_two_groups_of_one_volume(self):
        src = self.server()
        new = [self.server(), self.server()]
        self.fill(src, 4000)
        ring = ["--ring", "libmemcached", "--ring-from", src.addr, "--ring-to",
                ",".join(s.addr for s in new)]
        rw_work = self.work("source")
        ro_works = [self.work("populator-%d" % i) for i in range(2)]
        readers = [subprocess.Popen(
            [CTL, "warm"] + self.side_plan("ro", src, w, "--instance-ro", "i-pop",
                                           "--group", d.addr.replace(":", "_"), *ring,
                                           dst=d),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
            for d, w in zip(new, ro_works)]
        self.ctl("warm", *self.side_plan("rw", src, rw_work, "--instance-rw", "i-src",
                                         "--size", "1G", *ring), env=self.env)
        errs = ""
        for r in readers:  # one attachment on i-pop: the readers take turns on it
            out, err = r.communicate(timeout=120)
            errs += err
            self.assertEqual(r.returncode, 0, err[-3000:])
            self.assertEqual(last_json(out)["verify_ratio"], 1.0)
        total = sum(int(s.client().stats()["curr_items"]) for s in new)
        self.assertEqual(total, 4000, "every key at exactly one new owner")
        self.ctl("release", "--work", rw_work, env=self.env)
        self.assertEqual(self.fake_volumes(), {})
        for w in [rw_work] + ro_works:
            self.assert_clean(w)

    def test_no_aws_cli_is_a_clear_error(self):
        src, dst = self.server(), self.server()
        work = self.work()
        env = dict(self.env, PATH="/nonexistent")
        p = self.ctl("create", *self.plan(src, dst, work), env=env, check=69)
        self.assertIn("aws command line is not installed", p.stderr)


if __name__ == "__main__":
    unittest.main()
