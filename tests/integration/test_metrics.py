"""--metrics-file: the Prometheus text format, read back with a Prometheus text parser
(the prometheus_client package's, Debian's python3-prometheus-client, run by the
system's python3) while commands run against real memcached servers and at their end.
"""
import json
import os
import re
import subprocess
import time
import unittest

from mcwtest import MCWARM, ServerTestCase, last_json, run_mcwarm

CTL = os.environ.get("MCWARM_CTL", "")

SYSTEM_PYTHON = "/usr/bin/python3"
PARSE = r"""
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in fam.samples:
        out.append([fam.name, fam.type, s.name, s.labels, s.value])
print(json.dumps(out))
"""
NAME_RE = re.compile(r"^mcwarm_[a-z0-9_]+$")


def parse(path):
    """[(family, type, sample name, labels, value)], by the Prometheus text parser."""
    p = subprocess.run([SYSTEM_PYTHON, "-c", PARSE, path], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError("the Prometheus parser refused %s:\n%s\n%s" % (
            path, p.stderr[-2000:], open(path).read()[:3000]))
    return [tuple(x) for x in json.loads(p.stdout)]


def value(samples, name, **labels):
    got = [v for _, _, n, l, v in samples if n == name and all(
        l.get(k) == w for k, w in labels.items())]
    if len(got) != 1:
        raise AssertionError("%s%r: %d samples" % (name, labels, len(got)))
    return got[0]


class MetricsTest(ServerTestCase):
    def check_names(self, samples, command):
        for fam, typ, name, labels, _ in samples:
            self.assertRegex(name, NAME_RE)
            self.assertEqual(labels["command"], command)
            if typ == "counter":  # the parser strips _total from counter families
                self.assertTrue(name.endswith("_total"), name)
            self.assertFalse(name.endswith("_total") and typ != "counter", name)

    def test_dump_populate_verify_stream_write_metrics_at_the_end(self):
        src, dst, dst2 = self.server(), self.server(), self.server()
        src.client().set_many([(b"m%05d" % i, b"x" * 100, 0, i) for i in range(5000)])
        out = self.tmp.sub("dump")
        m = {k: self.tmp.sub(k + ".prom") for k in ("dump", "populate", "verify", "stream")}
        d = last_json(run_mcwarm("dump", "--source", src.addr, "--out", out, "-q", "--json",
                                 "--metrics-file", m["dump"], check=0).stdout)
        p = last_json(run_mcwarm("populate", "--dest", dst.addr, "--from", out, "--state",
                                 self.tmp.sub("st"), "-q", "--json", "--metrics-file",
                                 m["populate"], check=0).stdout)
        run_mcwarm("verify", "--source", src.addr, "--dest", dst.addr, "-q", "--metrics-file",
                   m["verify"], check=0)
        run_mcwarm("stream", "--source", src.addr, "--dest", dst2.addr, "-q",
                   "--metrics-file", m["stream"], check=0)
        for command, path in m.items():
            self.assertFalse(os.path.exists(path + ".tmp"), "written by rename")
            s = parse(path)
            self.check_names(s, command)
            self.assertEqual(value(s, "mcwarm_phase", phase="done"), 1, command)
            self.assertEqual(value(s, "mcwarm_phase", phase="running"), 0, command)
            self.assertEqual(value(s, "mcwarm_phase", phase="failed"), 0, command)
            self.assertGreater(value(s, "mcwarm_start_time_seconds"), time.time() - 600)
        ds, ps = parse(m["dump"]), parse(m["populate"])
        self.assertEqual(value(ds, "mcwarm_items_total"), d["items"])
        self.assertEqual(value(ds, "mcwarm_items_total"), 5000)
        self.assertEqual(value(ds, "mcwarm_value_bytes_total"), 5000 * 100)
        self.assertEqual(value(ds, "mcwarm_lag_keys"), 0)
        self.assertEqual(value(ps, "mcwarm_items_total"), p["items_sent"])
        self.assertEqual(p["items_sent"], 5000)
        self.assertEqual(value(ps, "mcwarm_files_applied_total"), p["files_done"])
        self.assertEqual(value(ps, "mcwarm_destination_evictions_total", kind="evicted"), 0)
        self.assertEqual(value(ps, "mcwarm_items_not_stored_total", reason="expired"), 0)
        vs = parse(m["verify"])
        self.assertEqual(value(vs, "mcwarm_verify_keys_total", outcome="equal"), 5000)
        self.assertEqual(value(vs, "mcwarm_verify_keys_total", outcome="missing"), 0)
        self.assertEqual(value(parse(m["stream"]), "mcwarm_items_total"), 5000)

    def test_a_running_dump_rewrites_its_metrics(self):
        src = self.server()
        src.client().set_many([(b"r%05d" % i, b"y" * 50, 0, 0) for i in range(12000)])
        path = self.tmp.sub("run.prom")
        proc = subprocess.Popen([MCWARM, "dump", "--source", src.addr, "--out",
                                 self.tmp.sub("d"), "-q", "--max-ops", "1000",
                                 "--metrics-file", path],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen = []
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline:
            if os.path.exists(path):
                s = parse(path)
                if value(s, "mcwarm_phase", phase="running") == 1:
                    seen.append(value(s, "mcwarm_items_total"))
            time.sleep(0.5)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, err)
        self.assertGreaterEqual(len(set(seen)), 2, "rewritten while running: %r" % seen)
        self.assertEqual(seen, sorted(seen), "a counter never goes down")
        self.assertLess(seen[0], 12000)
        s = parse(path)
        self.assertEqual(value(s, "mcwarm_phase", phase="done"), 1)
        self.assertEqual(value(s, "mcwarm_items_total"), 12000)

    def test_a_failed_run_says_so_and_an_unwritable_path_does_not_fail_the_run(self):
        path = self.tmp.sub("fail.prom")
        p = run_mcwarm("dump", "--source", "127.0.0.1:1", "--out", self.tmp.sub("x"), "-q",
                       "--metrics-file", path)
        self.assertEqual(p.returncode, 69)
        self.assertEqual(value(parse(path), "mcwarm_phase", phase="failed"), 1)
        src = self.server()
        src.client().set_many([(b"u%d" % i, b"z", 0, 0) for i in range(100)])
        p = run_mcwarm("dump", "--source", src.addr, "--out", self.tmp.sub("y"), "-q",
                       "--metrics-file", "/nonexistent-dir/m.prom")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr.count("--metrics-file /nonexistent-dir/m.prom"), 1,
                         "reported once: " + p.stderr)


class CtlMetricsTest(ServerTestCase):
    """mcwarm-ctl warm --metrics-file (the dir backend: no root needed)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not CTL or not os.path.exists(CTL):
            raise unittest.SkipTest("MCWARM_CTL is not set to the mcwarm-ctl binary")

    def ctl(self, *args):
        return subprocess.run([CTL] + list(args), capture_output=True, text=True, timeout=600)

    def check_names(self, samples):
        for fam, typ, name, labels, _ in samples:
            self.assertRegex(name, NAME_RE)
            self.assertEqual(labels["command"], "warm")
            self.assertEqual(typ == "counter", name.endswith("_total"), name)

    def test_a_warm_up_ends_with_its_figures(self):
        src, dst = self.server(), self.server()
        src.client().set_many([(b"w%05d" % i, b"v" * 80, 0, 0) for i in range(8000)])
        work, path = self.tmp.sub("work"), self.tmp.sub("warm.prom")
        p = self.ctl("warm", "--source", src.addr, "--dest", dst.addr, "--work", work,
                     "--backend", "dir", "--volume", self.tmp.sub("vol"), "--json",
                     "--metrics-file", path)
        self.assertEqual(p.returncode, 0, p.stderr)
        report = last_json(p.stdout)
        s = parse(path)
        self.check_names(s)
        self.assertEqual(value(s, "mcwarm_phase", phase="done"), 1)
        self.assertEqual(value(s, "mcwarm_warm_step", step="done"), 1)
        self.assertEqual(value(s, "mcwarm_warm_step", step="dumping"), 0)
        self.assertEqual(value(s, "mcwarm_warm_dump_items_total"), 8000)
        self.assertEqual(value(s, "mcwarm_warm_items_sent_total"), report["items_sent"])
        self.assertEqual(report["items_sent"], 8000)
        self.assertEqual(value(s, "mcwarm_warm_value_bytes_sent_total"), 8000 * 80)
        self.assertEqual(value(s, "mcwarm_warm_chunk_files_applied_total"),
                         report["files_applied"])
        self.assertEqual(value(s, "mcwarm_warm_backlog_files"), 0)
        self.assertEqual(value(s, "mcwarm_warm_verify_ratio"), report["verify_ratio"])
        self.assertEqual(value(s, "mcwarm_warm_destination_evictions_total"), 0)
        # the children wrote their own files, which the controller read
        self.assertTrue(os.path.exists(os.path.join(work, "populate-1.prom")))
        self.assertTrue(os.path.exists(os.path.join(work, "dump-1.prom")))

    def test_a_waiting_reader_writes_while_it_waits_then_says_it_failed(self):
        src, dst = self.server(), self.server()
        path = self.tmp.sub("ro.prom")
        proc = subprocess.Popen(
            [CTL, "warm", "--side", "ro", "--source", src.addr, "--dest", dst.addr,
             "--work", self.tmp.sub("ro"), "--backend", "dir", "--volume",
             self.tmp.sub("nothing-yet"), "--wait-volume", "3", "--metrics-file", path],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        running = False
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline:
            if os.path.exists(path):
                running |= value(parse(path), "mcwarm_phase", phase="running") == 1
            time.sleep(0.2)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 75, err)
        self.assertTrue(running, "written while waiting for the volume")
        s = parse(path)
        self.assertEqual(value(s, "mcwarm_phase", phase="failed"), 1)
        self.assertEqual(value(s, "mcwarm_warm_step", step="failed"), 1)
        self.assertEqual(value(s, "mcwarm_warm_backlog_files", side="ro"), 0)

    def test_only_warm_takes_it(self):
        p = self.ctl("status", "--work", self.tmp.sub("w"), "--metrics-file", "x.prom")
        self.assertEqual(p.returncode, 64)
        self.assertIn("--metrics-file is an option of warm only", p.stderr)
