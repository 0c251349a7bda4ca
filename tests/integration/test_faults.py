"""I/O faults injected under mcwarm (uring/fault.h: MCW_URING_FAULTS) against real
memcached servers and real files: every fault ends in a correct retry or a clear error,
nothing corrupt is left under a final name, and running the command again completes with
every item exactly once.

Needs a build with -DMCW_FAULT_INJECTION=ON (the asan configuration of scripts/test.sh);
other builds skip these tests and say so.
"""
import os
import subprocess
import unittest

from mcwtest import (ServerTestCase, chunk_files, last_json, run_mcwarm)
import test_dump  # its helpers; `from` would run its tests here too

FAULTS = os.environ.get("MCW_FAULT_INJECTION", "0").lower() in ("1", "on", "true")


def run_faulty(plan, *args, check=None):
    env = dict(os.environ, MCW_URING_FAULTS=plan)
    p = subprocess.run([os.environ["MCWARM"]] + [str(a) for a in args], capture_output=True,
                       text=True, env=env, timeout=600, errors="replace")
    if check is not None and p.returncode != check:
        raise AssertionError("mcwarm %s under %s exited %d (wanted %d)\n%s" % (
            " ".join(map(str, args)), plan, p.returncode, check, p.stderr[-3000:]))
    return p


@unittest.skipUnless(FAULTS, "this build has no io_uring fault injection: configure with "
                     "-DMCW_FAULT_INJECTION=ON (scripts/test.sh's asan configuration has it)")
class DumpFaultTest(ServerTestCase):
    loaded_server = test_dump.DumpResumeTest.loaded_server

    def assert_no_damage(self, out):
        self.assertEqual([f for f in os.listdir(out) if f.endswith(".tmp")], [],
                         "temporary files left behind")
        for f in chunk_files(out):  # every file with a final name is whole and intact
            run_mcwarm("inspect", f, check=0)

    def fault_then_resume(self, plan, code, message):
        mc, items = self.loaded_server(n=60000)
        out = self.tmp.sub("d-" + plan.replace(":", "_"))
        p = run_faulty(plan, "dump", "--source", mc.addr, "--out", out, "--chunk-size", "1M",
                       check=code)
        self.assertIn(message, p.stderr)
        self.assertFalse(os.path.exists(os.path.join(out, "DONE")))
        self.assert_no_damage(out)
        p = run_mcwarm("dump", "--source", mc.addr, "--out", out, "--json", "-q", check=0)
        self.assertTrue(last_json(p.stdout)["resumed"])
        test_dump.DumpTest.assert_dump_matches(self, out, items)

    def test_write_eio(self):
        self.fault_then_resume("write:nth=6:res=-5", 74, "Input/output error")

    def test_write_enospc(self):
        for nth in (1, 6, 12):  # the key chunks' writes and the chunk files' alike
            self.fault_then_resume("write:nth=%d:res=-28" % nth, 74, "the volume is full")

    def test_short_write(self):
        # from the 6th write on: headers and footers (4096 bytes) cannot be shortened
        self.fault_then_resume("write:from=6:short", 74, "short write")

    def test_fsync_eio(self):
        self.fault_then_resume("fsync:nth=2:res=-5", 74, "cannot sync")

    def test_key_chunk_write_eio(self):
        self.fault_then_resume("write:nth=1:res=-5", 74, "cannot write key chunk")

    def test_send_fails(self):
        self.fault_then_resume("send:nth=3:res=-32", 69, "Broken pipe")

    def test_recv_eagain_for_good_is_a_clear_error(self):
        self.fault_then_resume("recv:from=3:res=-11", 69, "Resource temporarily unavailable")

    def test_transient_recv_faults_are_retried(self):
        mc, items = self.loaded_server(n=60000)
        for plan in ("recv:p=0.3:res=-11", "recv:p=0.3:res=-4", "recv:p=0.3:short"):
            out = self.tmp.sub("d-" + plan.replace(":", "_"))
            run_faulty(plan, "dump", "--source", mc.addr, "--out", out, "-q", check=0)
            test_dump.DumpTest.assert_dump_matches(self, out, items)


@unittest.skipUnless(FAULTS, "this build has no io_uring fault injection: configure with "
                     "-DMCW_FAULT_INJECTION=ON (scripts/test.sh's asan configuration has it)")
class PopulateFaultTest(ServerTestCase):
    loaded_server = test_dump.DumpResumeTest.loaded_server

    def setUp(self):
        super().setUp()
        src, self.items = self.loaded_server(n=60000)
        self.dump = self.tmp.sub("dump")
        run_mcwarm("dump", "--source", src.addr, "--out", self.dump, "--chunk-size", "1M",
                   "-q", check=0)

    def assert_dest_complete(self, dst):
        c = dst.client()
        for key, (value, flags, _) in self.items.items():
            got = c.get(key)
            self.assertEqual(got and got[:2], (value, flags), "%r wrong or missing" % key)
        c.close()

    def test_read_faults_end_clearly_and_a_rerun_completes(self):
        for plan, message in (("read:nth=2:res=-5", "Input/output error"),
                              ("read:nth=3:short", "short read")):
            dst = self.server(memory_mb=512)
            state = self.tmp.sub("state-" + plan.replace(":", "_"))
            p = run_faulty(plan, "populate", "--dest", dst.addr, "--from", self.dump,
                           "--state", state, check=74)
            self.assertIn(message, p.stderr)
            run_mcwarm("populate", "--dest", dst.addr, "--from", self.dump, "--state", state,
                       "-q", check=0)
            self.assert_dest_complete(dst)

    def test_network_faults_reconnect_and_resend(self):
        for plan in ("send:nth=3:res=-104", "send:nth=5:short", "recv:p=0.2:res=-11",
                     "recv:p=0.3:short"):
            dst = self.server(memory_mb=512)
            state = self.tmp.sub("state-" + plan.replace(":", "_"))
            p = run_faulty(plan, "populate", "--dest", dst.addr, "--from", self.dump,
                           "--state", state, "--json", "-q", check=0)
            self.assertTrue(last_json(p.stdout)["ok"])
            self.assert_dest_complete(dst)


if __name__ == "__main__":
    unittest.main()
