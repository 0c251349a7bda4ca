"""Warming across hosts: `deploy/ansible/warm-replica.yml` run by a real ansible-playbook
over real SSH into hosts made of network namespaces (nshosts.py: each with its own
address, sshd, memcached and mount namespace; the loop images in a directory every host
sees). Every destination is checked item by item against its source, a resize key by key
against the real libmemcached's ring, and every run must leave no mount, loop device,
volume image or mcwarm process behind on any host.

Without root, network namespaces, loop devices, sshd or ansible-playbook these tests are
skipped, saying why; the replica file's planning (PlanTest) needs none of them.
"""
import glob
import json
import os
import random
import signal
import subprocess
import sys
import time
import unittest

import nshosts
import test_s3  # its s3rver, not its tests
from mcwtest import MCWARM, Client, TempDir

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PLAYBOOK = os.path.join(ROOT, "deploy", "ansible", "warm-replica.yml")
CTL = os.environ.get("MCWARM_CTL", "")
BUILD = os.environ.get("MCW_BUILD", "")
LMC_OWNER = os.path.join(BUILD, "tests", "mcw-lmc-owner")
SOURCES = ("s1", "s2", "s3")
REPLICAS = ("d1", "d2", "d3")
HOSTS = SOURCES + REPLICAS + ("n4",)
PLAYBOOK_TIMEOUT_S = 600

sys.path.insert(0, os.path.join(ROOT, "deploy", "ansible", "filter_plugins"))
import mcwarm_fleet  # noqa: E402  (the playbook's own planning, tested without Ansible)
sys.path.insert(0, os.path.join(ROOT, "deploy", "ansible", "roles", "mcwarm_warm", "files"))
import halves  # noqa: E402  (what runs the halves on each host)


def host_client(host):
    c = Client.__new__(Client)
    c.sock, c.buf = host.connect(), b""
    return c


def get_many(c, keys, batch=500):
    """(value, flags, ttl) or None for each key, pipelined: mg requests in batches."""
    out = []
    for start in range(0, len(keys), batch):
        part = keys[start:start + batch]
        c.sock.sendall(b"".join(b"mg %s v f t u\r\n" % k for k in part))
        for _ in part:
            line = c._line()
            if line.startswith(b"EN"):
                out.append(None)
                continue
            head = line.split()
            if head[0] != b"VA":
                raise RuntimeError("unexpected reply %r" % line)
            value = c._exact(int(head[1]) + 2)[:-2]
            fl = dict((t[:1], t[1:]) for t in head[2:])
            out.append((value, int(fl[b"f"]), int(fl[b"t"])))
    return out


def items_for(prefix, n, size):
    """(key, value, ttl, flags): values of several sizes, half never expire."""
    rnd = random.Random(prefix)
    return [(b"%s:%07d" % (prefix, i), (b"%07d" % i) * (1 + rnd.randrange(size) // 7),
             3600 * (i % 2), rnd.randrange(1 << 32)) for i in range(n)]


class PlanTest(unittest.TestCase):
    """The replica file to volumes and pairs (no hosts needed)."""

    def replica(self, **kw):
        r = dict(name="c7", backend="loop", volume_dir="/vol", work_dir="/w",
                 sources=[dict(host="a%d" % i, memcached="10.0.0.%d:11211" % i)
                          for i in range(1, 4)],
                 destinations=[dict(host="b%d" % i, memcached="10.0.1.%d:11211" % i)
                               for i in range(1, 4)])
        r.update(kw)
        return r

    def test_replica_pairs_source_i_with_destination_i(self):
        plan = mcwarm_fleet.mcwarm_plan(self.replica(
            destinations=[dict(host="b1", memcached="10.0.1.1:11211", populator="p1"),
                          dict(host="b2", memcached="10.0.1.2:11211"),
                          dict(host="b3", memcached="10.0.1.3:11211")]))
        self.assertEqual([p["id"] for p in plan["pairs"]],
                         ["10.0.0.%d:11211>10.0.1.%d:11211" % (i, i) for i in range(1, 4)])
        p = plan["pairs"][0]
        self.assertEqual(p["populator"], "p1")
        self.assertEqual(plan["pairs"][1]["populator"], "b2")
        self.assertEqual(p["volume"], "/vol/c7-10.0.0.1_11211.img")
        self.assertEqual(plan["volumes"][0]["readers"], [p["id"]])
        rw = plan["volumes"][0]["rw_argv"]
        self.assertEqual(rw[:3], ["warm", "--side", "rw"])
        self.assertIn("/w/c7/rw-10.0.0.1_11211", rw)
        self.assertNotIn("--ring", rw)
        self.assertIn("/w/c7/ro-10.0.0.1_11211-to-10.0.1.1_11211", p["ro_argv"])
        self.assertEqual(sorted(plan["hosts"]), ["a1", "a2", "a3", "b2", "b3", "p1"])

    def test_replace_reads_every_source_into_the_new_node(self):
        ring = "10.0.1.1:11211,10.0.1.9:11211,10.0.1.3:11211"
        plan = mcwarm_fleet.mcwarm_plan(self.replica(
            shape="replace", ring="evcache", ring_nodes=ring,
            destinations=[dict(host="new", memcached="10.0.1.9:11211")]))
        self.assertEqual(len(plan["pairs"]), 3)
        self.assertEqual({p["populator"] for p in plan["pairs"]}, {"new"})
        for v in plan["volumes"]:
            argv = v["rw_argv"]
            self.assertEqual(argv[argv.index("--nodes") + 1], ring)
            self.assertEqual(argv[argv.index("--keep") + 1], "10.0.1.9:11211")

    def test_resize_gives_each_new_owner_its_group_of_every_volume(self):
        dests = [dict(host="a%d" % i, memcached="10.0.0.%d:11211" % i) for i in range(1, 5)]
        plan = mcwarm_fleet.mcwarm_plan(self.replica(shape="resize", ring="libmemcached",
                                                     destinations=dests))
        self.assertEqual(len(plan["pairs"]), 9)  # not a node's own group of its own dump
        self.assertFalse([p for p in plan["pairs"] if p["source"] == p["dest"]])
        on_a4 = [p for p in plan["pairs"] if p["populator"] == "a4"]
        self.assertEqual(len({p["work"] for p in on_a4}), 3)  # one work dir per volume
        for p in on_a4:
            self.assertEqual(p["ro_argv"][p["ro_argv"].index("--group") + 1], "10.0.0.4_11211")
        argv = plan["volumes"][0]["rw_argv"]
        self.assertEqual(argv[argv.index("--ring-to") + 1],
                         ",".join("10.0.0.%d:11211" % i for i in range(1, 5)))
        self.assertEqual(argv[argv.index("--ring-from") + 1],
                         ",".join("10.0.0.%d:11211" % i for i in range(1, 4)))

    def test_each_side_gets_its_tls_and_auth_options(self):
        plan = mcwarm_fleet.mcwarm_plan(self.replica(
            source_security=dict(tls=True, ca="/etc/mcwarm/ca.pem", server_name="cache-a"),
            dest_security=dict(tls=True, ca="/etc/mcwarm/ca-b.pem", cert="/etc/mcwarm/c.pem",
                               key="/etc/mcwarm/c.key", auth_file="/etc/mcwarm/b.auth")))
        src = ["--tls", "--tls-ca", "/etc/mcwarm/ca.pem", "--tls-server-name", "cache-a"]
        dst = ["--dest-tls", "--dest-tls-ca", "/etc/mcwarm/ca-b.pem", "--dest-tls-cert",
               "/etc/mcwarm/c.pem", "--dest-tls-key", "/etc/mcwarm/c.key",
               "--dest-auth-file", "/etc/mcwarm/b.auth"]
        rw, ro = plan["volumes"][0]["rw_argv"], plan["pairs"][0]["ro_argv"]
        joined = lambda argv: " ".join(argv)
        self.assertIn(joined(src), joined(rw))
        self.assertNotIn("--dest-", joined(rw))  # the dumper never talks to a destination
        self.assertIn(joined(src + dst), joined(ro))
        # authentication alone (memcached -Y without -Z)
        plan = mcwarm_fleet.mcwarm_plan(self.replica(
            dest_security=dict(auth_file="/etc/mcwarm/b.auth")))
        self.assertIn("--dest-auth-file /etc/mcwarm/b.auth", joined(plan["pairs"][0]["ro_argv"]))
        self.assertNotIn("--dest-tls", joined(plan["pairs"][0]["ro_argv"]))

    def test_backend_s3_gives_each_pair_its_prefix_and_no_volume(self):
        plan = mcwarm_fleet.mcwarm_plan(self.replica(
            backend="s3", volume_dir=None, s3=dict(url="s3://warm-bucket/fleet/"), keep=True))
        v, p = plan["volumes"][0], plan["pairs"][0]
        words = ["--backend", "s3", "--volume", "s3://warm-bucket/fleet/c7"]
        joined = lambda argv: " ".join(argv)
        self.assertIn(joined(words), joined(v["rw_argv"]))
        self.assertIn(joined(words), joined(p["ro_argv"]))
        # mcwarm-ctl adds the source's host_port: the pair's prefix, the same on both hosts
        self.assertEqual(v["volume"], "s3://warm-bucket/fleet/c7/10.0.0.1_11211")
        self.assertEqual(p["volume"], v["volume"])
        self.assertEqual(len({x["volume"] for x in plan["volumes"]}), 3)
        self.assertEqual(v["release_argv"], ["release", "--work", "/w/c7/rw-10.0.0.1_11211",
                                             "--keep"])
        plan = mcwarm_fleet.mcwarm_plan(self.replica())
        self.assertEqual(plan["volumes"][0]["release_argv"],
                         ["release", "--work", "/w/c7/rw-10.0.0.1_11211"])

    def test_bad_replica_files_are_refused_with_the_reason(self):
        cases = [
            (dict(shape="mirror"), "shape: one of replica, replace, resize"),
            (dict(name="a b"), "name:"),
            (dict(destinations=[dict(host="b1", memcached="10.0.1.1:11211")]),
             "3 sources but 1 destinations"),
            (dict(shape="resize"), "ring (the clients' ring kind"),
            (dict(shape="replace", ring="evcache", ring_nodes=["x:1"],
                  destinations=[dict(host="n", memcached="10.0.1.9:11211")]),
             "10.0.1.9:11211 is not in ring_nodes"),
            (dict(volume_dir=None), "volume_dir"),
            (dict(sources=[dict(host="a1", memcached="10.0.0.1")]), "is not HOST:PORT"),
            (dict(sources=[dict(memcached="10.0.0.1:1")]), "needs host"),
            (dict(dest_security=dict(tls=True, password="s3cret")),
             "a password goes in the file auth_file names"),
            (dict(source_security=dict(tls=True, ca="ca.pem")),
             "source_security.ca: an absolute path"),
            (dict(dest_security=dict(ca="/etc/ca.pem")), "need tls: true"),
            (dict(backend="s3"), "s3: {url: s3://BUCKET/PREFIX} is missing"),
            (dict(backend="s3", s3=dict(url="http://x/y")), "is not s3://BUCKET/PREFIX"),
            (dict(backend="s3", s3=dict(url="s3://b/p", secret_access_key="x")),
             "a secret never goes in the replica file"),
        ]
        for change, msg in cases:
            with self.subTest(change=change):
                with self.assertRaises(mcwarm_fleet.ReplicaError) as e:
                    mcwarm_fleet.mcwarm_plan(self.replica(**change))
                self.assertIn(msg, str(e.exception))

    def test_report_rows_name_the_failing_half(self):
        plan = mcwarm_fleet.mcwarm_plan(self.replica())
        ok = dict(rc=0, running=False, report=dict(ok=True, items_sent=10, verify_ratio=1.0),
                  stderr=[])
        results = {}
        for v, p in zip(plan["volumes"], plan["pairs"]):
            results[v["id"]] = dict(rw=ok, ro={p["id"]: ok}, release=dict(rc=0))
        bad = plan["volumes"][1]["id"]
        results[bad]["rw"] = dict(rc=69, running=False, report=None,
                                  stderr=["mcwarm-ctl: cannot reach X"])
        results[plan["volumes"][2]["id"]]["release"] = dict(rc=75, stderr="reader attached")
        rows = mcwarm_fleet.mcwarm_rows(plan, [results])
        self.assertEqual([r["ok"] for r in rows], [True, False, False])
        self.assertEqual(rows[0]["items"], 10)
        self.assertEqual(rows[1]["error"], "source half (exit 69): mcwarm-ctl: cannot reach X")
        self.assertEqual(rows[2]["error"], "release (exit 75): reader attached")
        table = mcwarm_fleet.mcwarm_table(rows)
        self.assertIn("cannot reach X", table[-3])  # failures last
        self.assertEqual(table[-1], "1 of 3 pairs warmed: the run is NOT whole")
        rows = mcwarm_fleet.mcwarm_rows(plan, [])
        self.assertIn("no result", rows[0]["error"])

    def test_halves_are_found_again_and_report_their_end(self):
        tmp = TempDir()
        try:
            work = tmp.sub("w")
            argv = [sys.executable, "-c", "import sys, time; time.sleep(float(sys.argv[1])); "
                    "print('{\"ok\": true}'); sys.exit(3)", "0.5", "--work", work]
            self.assertEqual(halves.start([dict(work=work, argv=argv)])[work]["state"],
                             "started")
            self.assertEqual(halves.start([dict(work=work, argv=argv)])[work]["state"],
                             "running", "a running half was started twice")
            got = halves.wait(30, [work])
            self.assertTrue(got["done"])
            self.assertEqual(got["halves"][work]["rc"], 3)
            self.assertEqual(got["halves"][work]["report"], {"ok": True})
            argv[3] = "60"
            halves.start([dict(work=work, argv=argv)])
            self.assertFalse(halves.wait(0.2, [work])["done"])
            self.assertTrue(halves.stop([dict(work=work)])[work]["stopped"])
            self.assertEqual(halves.wait(0, [work])["halves"][work]["rc"], 143)
        finally:
            tmp.cleanup()


class FleetTestCase(unittest.TestCase):
    """Seven hosts (s1..s3 sources, d1..d3 replicas, n4 a new node) and a control host,
    built once for the class."""

    @classmethod
    def setUpClass(cls):
        if not CTL or not os.path.exists(CTL) or not MCWARM:
            raise unittest.SkipTest("MCWARM_CTL and MCWARM are not set (run through ctest)")
        reason = nshosts.skip_reason()
        if reason:
            raise unittest.SkipTest(reason)
        # a CI timeout's SIGTERM ends the run through KeyboardInterrupt: the hosts are
        # stopped at exit (nshosts registers that), and a SIGKILLed run's by the next run
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        cls.tmp = TempDir()
        os.chmod(cls.tmp.path, 0o755)
        try:
            cls.fleet = nshosts.Fleet(cls.tmp.path, HOSTS)
        except BaseException:
            cls.tmp.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.fleet.close()
        cls.tmp.cleanup()

    def setUp(self):
        self.hosts = self.fleet.hosts
        for h in self.hosts.values():
            h.start_memcached(memory_mb=128)
        self.run_n = 0

    def tearDown(self):
        self.fleet.kill_strays()
        # whatever a failed test left mounted or attached goes with its host's processes
        nshosts.detach_loops_under(self.tmp.path)

    # ---- running the playbook

    def replica_file(self, name, **kw):
        r = dict(name=name, backend="loop", volume_dir=self.tmp.sub("volumes"),
                 work_dir=self.tmp.sub("work"), size="512M", memory="32M", threads=1,
                 min_ratio=1, ro_options=["--cycle-ms", "50"])
        r.update(kw)
        os.makedirs(r["volume_dir"], exist_ok=True)
        path = self.tmp.sub("replica-%s.yml" % name)
        with open(path, "w") as f:
            json.dump(r, f, indent=1)  # JSON is YAML
        return path

    def playbook_argv(self, replica, report, **extra):
        inv = self.fleet.inventory(self.tmp.sub("inventory"))
        argv = ["ansible-playbook", "-i", inv, PLAYBOOK, "-e", "mcwarm_replica_file=" + replica,
                "-e", "mcwarm_ctl=" + CTL, "-e", "mcwarm_bin=" + MCWARM,
                "-e", "mcwarm_report_file=" + report, "-e", "mcwarm_timeout_s=400"]
        for k, v in extra.items():  # a mapping as JSON: Ansible reads k=v as a string
            argv += ["-e", json.dumps({k: v}) if isinstance(v, dict) else "%s=%s" % (k, v)]
        return self.fleet.ctl_argv(argv)

    def playbook(self, replica, during=None, **extra):
        """Runs the playbook: (exit code, report or None, output). during(proc), when
        given, is called while it runs (to kill something)."""
        self.run_n += 1
        name = "%s-%d" % (self._testMethodName, self.run_n)
        report = self.tmp.sub("report-%s.json" % name)
        t0 = time.monotonic()
        with open(self.tmp.sub("playbook-%s.log" % name), "w+") as log:
            proc = subprocess.Popen(self.playbook_argv(replica, report, **extra), stdout=log,
                                    stderr=subprocess.STDOUT, env=self.fleet.ansible_env(),
                                    cwd=self.tmp.path, start_new_session=True)
            try:
                if during is not None:
                    during(proc)
                proc.wait(timeout=PLAYBOOK_TIMEOUT_S)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.seek(0)
            out = log.read()
        print("%s: playbook run %d exited %d in %.1f s" % (
            self._testMethodName, self.run_n, proc.returncode, time.monotonic() - t0),
            file=sys.stderr)
        if not os.path.exists(report):
            return proc.returncode, None, out
        with open(report) as f:
            return proc.returncode, json.load(f), out

    def assert_whole(self, code, report, out):
        self.assertIsNotNone(report, "no report written (exit %d):\n%s" % (code, out[-6000:]))
        bad = [r for r in report["pairs"] if not r["ok"]]
        self.assertEqual(bad, [], out[-6000:])
        self.assertTrue(report["whole"])
        self.assertEqual(code, 0, out[-6000:])
        for r in report["pairs"]:
            self.assertEqual(r["verify_ratio"], 1.0, r)
        self.assertIn("pairs warmed", out)

    # ---- data

    def fill(self, host, items):
        c = host_client(self.hosts[host])
        c.set_many(items)
        c.close()

    def assert_same_items(self, dst, items, src):
        """Every item at dst as it is at src now (value, flags, TTL within 2 s), and
        nothing else at dst."""
        c, s = host_client(self.hosts[dst]), host_client(self.hosts[src])
        for start in range(0, len(items), 500):  # both sides of a key read within a moment
            part = items[start:start + 500]
            keys = [i[0] for i in part]
            for (key, value, ttl, flags), want, got in zip(part, get_many(s, keys),
                                                           get_many(c, keys)):
                self.assertEqual(want[:2], (value, flags), "item %r changed at %s" % (key, src))
                self.assertIsNotNone(got, "%r missing at %s" % (key, dst))
                self.assertEqual(got[:2], want[:2], "item %r at %s" % (key, dst))
                if ttl == 0:
                    self.assertEqual(got[2], -1, "item %r at %s never expires" % (key, dst))
                else:  # each server counts whole seconds, and a read takes a moment
                    self.assertLessEqual(abs(got[2] - want[2]), 2,
                                         "TTL of %r at %s" % (key, dst))
        self.assertEqual(int(c.stats()["curr_items"]), len(items), "items at %s" % dst)
        c.close()
        s.close()

    def stat(self, host, name):
        c = host_client(self.hosts[host])
        try:
            return int(c.stats()[name])
        finally:
            c.close()

    # ---- leftovers

    def mcwarm_processes(self):
        found = []
        for name, h in self.hosts.items():
            for pid in h.pids():
                try:
                    with open("/proc/%d/cmdline" % pid, "rb") as f:
                        argv0 = f.read().split(b"\0")[0]
                except OSError:
                    continue
                if argv0.endswith(b"/mcwarm") or argv0.endswith(b"/mcwarm-ctl"):
                    found.append((name, pid))
        return found

    def assert_nothing_left(self):
        real = os.path.realpath(self.tmp.path) + "/"
        for name, h in self.hosts.items():
            self.assertEqual([m for m in h.mounts() if m.startswith(real)], [],
                             "mounts left on %s" % name)
        self.assertEqual(nshosts.loops_under(self.tmp.path), [], "loop devices left behind")
        self.assertEqual(glob.glob(self.tmp.sub("volumes/*")), [], "volumes left behind")
        self.assertEqual(self.mcwarm_processes(), [], "mcwarm processes left running")

    # ---- processes on a host

    def wait_for_process(self, host, words, timeout_s=120, proc=None):
        """The pid of a process on host whose command line has every one of words."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for pid in self.hosts[host].pids():
                try:
                    with open("/proc/%d/cmdline" % pid, "rb") as f:
                        argv = f.read().decode(errors="replace").split("\0")
                except OSError:
                    continue
                if all(any(w == a or a.endswith("/" + w) for a in argv) for w in words):
                    return pid
            if proc is not None and proc.poll() is not None:
                self.fail("the playbook ended before %s ran on %s" % (" ".join(words), host))
            time.sleep(0.01)
        self.fail("no %s on %s within %d s" % (" ".join(words), host, timeout_s))


class ReplicaTest(FleetTestCase):
    def replica_plan(self, name, **kw):
        return self.replica_file(
            name, shape="replica",
            sources=[dict(host=s, memcached=self.hosts[s].mc_addr) for s in SOURCES],
            destinations=[dict(host=d, memcached=self.hosts[d].mc_addr) for d in REPLICAS],
            **kw)

    def fill_sources(self, n=3000, size=600, big=None):
        data = {}
        for s in SOURCES:
            data[s] = items_for(s.encode(), big if s == "s2" and big else n, size)
            self.fill(s, data[s])
        return data

    def test_replica_warm_three_to_three(self):
        data = self.fill_sources()
        replica = self.replica_plan("r33")
        metrics = self.tmp.sub("metrics")
        os.makedirs(metrics)
        code, report, out = self.playbook(replica, mcwarm_metrics_dir=metrics)
        self.assert_whole(code, report, out)
        # every half wrote its Prometheus text: 3 source halves, 3 populator halves, done
        proms = sorted(os.listdir(metrics))
        self.assertEqual(len([p for p in proms if p.startswith("mcwarm-rw-")]), 3, proms)
        self.assertEqual(len([p for p in proms if p.startswith("mcwarm-ro-")]), 3, proms)
        for p in proms:
            with open(os.path.join(metrics, p)) as f:
                self.assertIn('mcwarm_phase{command="warm",phase="done"} 1\n', f.read(), p)
        self.assertEqual(len(report["pairs"]), 3)
        for s, d in zip(SOURCES, REPLICAS):
            row = next(r for r in report["pairs"] if r["dest"] == self.hosts[d].mc_addr)
            self.assertEqual(row["items"], len(data[s]))
        self.assertIn("3 of 3 pairs warmed", out)
        self.assert_replicas_equal(data)
        # run again on the finished warm-up: converges, applies nothing twice
        sets_before = {d: self.stat(d, "total_items") for d in REPLICAS}
        code, report, out = self.playbook(replica)
        self.assert_whole(code, report, out)
        for d in REPLICAS:
            self.assertEqual(self.stat(d, "total_items"), sets_before[d],
                             "%s was written again" % d)
        self.assert_nothing_left()

    def test_source_memcached_down_fails_that_pair_only(self):
        data = self.fill_sources(n=2000)
        self.hosts["s2"].stop_memcached()
        # in batches of two source hosts: the failing pair's batch does not stop the next
        code, report, out = self.playbook(self.replica_plan("down"), mcwarm_max_parallel=2)
        self.assertNotEqual(code, 0, "the run was not whole but the play says it was")
        self.assertFalse(report["whole"])
        rows = {r["source"]: r for r in report["pairs"]}
        bad = rows.pop(self.hosts["s2"].mc_addr)
        self.assertFalse(bad["ok"])
        self.assertIn("source half (exit 69)", bad["error"])  # 69: server unreachable
        self.assertIn("dump", bad["error"])
        # the dumper's own reason, with the address it could not reach
        self.assertIn("cannot connect to %s" % self.hosts["s2"].mc_addr, bad["error"])
        self.assertTrue(all(r["ok"] for r in rows.values()), rows)
        self.assertIn("2 of 3 pairs warmed: the run is NOT whole", out)
        self.assertEqual(out.count("PLAY [warm, volume by volume, source hosts in batches]"), 2)
        self.assertIn("did not warm: %s>" % self.hosts["s2"].mc_addr, out)
        self.assert_same_items("d1", data["s1"], "s1")
        self.assert_same_items("d3", data["s3"], "s3")
        self.assert_nothing_left()

    def test_dumper_killed_on_one_host_is_revived(self):
        data = self.fill_sources(n=2000, big=150000, size=300)

        def kill_dumper(proc):
            dumper = self.wait_for_process("s2", ["mcwarm", "dump"], proc=proc)
            time.sleep(0.3)
            os.kill(dumper, signal.SIGKILL)
        code, report, out = self.playbook(self.replica_plan("kdump"), during=kill_dumper)
        self.assert_whole(code, report, out)
        with open(self.tmp.sub("work/kdump/rw-%s.err" % self.hosts["s2"].mc_addr.replace(
                ":", "_"))) as f:
            log = f.read()
        self.assertRegex(log, "reviving it|continuing it from its checkpoint|starting attempt",
                         "the source half never noticed its dumper died")
        self.assert_replicas_equal(data)

    def test_populator_half_killed_then_run_again_converges(self):
        data = self.fill_sources(n=2000, big=100000, size=300)
        replica = self.replica_plan("kpop")

        def kill_populator_half(proc):
            half = self.wait_for_process("d2", ["mcwarm-ctl", "warm", "ro"], proc=proc)
            populate = self.wait_for_process("d2", ["mcwarm", "populate"], proc=proc)
            os.kill(half, signal.SIGKILL)
            os.kill(populate, signal.SIGKILL)
        code, report, out = self.playbook(replica, during=kill_populator_half)
        self.assertIsNotNone(report, out[-6000:])
        killed = next(r for r in report["pairs"] if r["dest"] == self.hosts["d2"].mc_addr)
        self.assertFalse(killed["ok"], "a killed populator half reported success")
        self.assertIn("populator half", killed["error"])
        self.assertNotEqual(code, 0)
        code, report, out = self.playbook(replica)
        self.assert_whole(code, report, out)
        self.assert_replicas_equal(data)

    def test_playbook_interrupted_then_run_again_converges(self):
        data = self.fill_sources(n=2000, big=100000, size=300)
        replica = self.replica_plan("intr")

        def control_host_goes_away(proc):
            self.wait_for_process("d2", ["mcwarm", "populate"], proc=proc)
            os.killpg(proc.pid, signal.SIGKILL)
        code, report, out = self.playbook(replica, during=control_host_goes_away)
        self.assertEqual(code, -signal.SIGKILL)
        self.assertIsNone(report)
        # the halves it started go on on their hosts; the next run takes them over
        self.assertNotEqual(self.mcwarm_processes(), [])
        code, report, out = self.playbook(replica)
        self.assert_whole(code, report, out)
        self.assert_replicas_equal(data)

    def test_replica_through_s3_three_to_three(self):
        """backend s3: no volume, s3rver on the control host's address (reachable from
        every host), credentials and endpoint passed to the halves in mcwarm_environment;
        every pair's prefix is gone after release."""
        if not test_s3.S3RVER or not os.path.exists(test_s3.PROBE):
            self.skipTest("s3rver or mcw-s3-probe is missing (scripts/setup.sh, ctest)")
        s3 = test_s3.S3rver(nshosts.CTL_ADDR, self.fleet.ctl, self.fleet.ctl_netns)
        self.addCleanup(s3.stop)
        env = dict(AWS_ENDPOINT_URL_S3=s3.url, AWS_ACCESS_KEY_ID=test_s3.KEY_ID,
                   AWS_SECRET_ACCESS_KEY=test_s3.SECRET, AWS_EC2_METADATA_DISABLED="true")
        data = self.fill_sources()
        # memory: a dump to s3:// holds two 5 MiB upload parts per worker besides staging
        replica = self.replica_plan("r33s3", backend="s3", memory="64M",
                                    s3=dict(url="s3://%s/fleet" % test_s3.BUCKET))
        code, report, out = self.playbook(replica, mcwarm_environment=env)
        self.assert_whole(code, report, out)
        self.assertIn("3 of 3 pairs warmed", out)
        self.assertEqual({r["volume"] for r in report["pairs"]},
                         {"s3://%s/fleet/r33s3/%s" % (test_s3.BUCKET,
                                                      self.hosts[s].mc_addr.replace(":", "_"))
                          for s in SOURCES})
        self.assert_replicas_equal(data)
        listing = subprocess.run(
            self.fleet.ctl_argv([test_s3.PROBE, "list", test_s3.BUCKET, "fleet/"]),
            env=dict(os.environ, HOME=self.tmp.path, **env), capture_output=True, text=True,
            timeout=60)
        self.assertEqual(listing.returncode, 0, listing.stderr)
        self.assertEqual([ln for ln in listing.stdout.splitlines() if ln.startswith("key ")],
                         [], "the pairs' prefixes were not deleted")
        self.assert_nothing_left()

    def assert_replicas_equal(self, data):
        for s, d in zip(SOURCES, REPLICAS):
            self.assert_same_items(d, data[s], s)
        self.assert_nothing_left()


def owners(kind, nodes, keys):
    """Index into nodes of each key's owner, as the real libmemcached computes it."""
    if not os.path.exists(LMC_OWNER):
        raise unittest.SkipTest("mcw-lmc-owner is not built (MCW_BUILD not set)")
    p = subprocess.run([LMC_OWNER, kind] + nodes, input="\n".join(k.decode() for k in keys) +
                       "\n", capture_output=True, text=True, check=True)
    return [int(x) for x in p.stdout.split()]


class ResizeTest(FleetTestCase):
    def test_resize_three_to_four_across_hosts(self):
        kind = "libmemcached"
        old = list(SOURCES)
        new = old + ["n4"]
        ring_from = [self.hosts[h].mc_addr for h in old]
        ring_to = [self.hosts[h].mc_addr for h in new]
        keys = [b"user:%d:%x" % (i, i * 2654435761 % (1 << 32)) for i in range(12000)]
        before, after = owners(kind, ring_from, keys), owners(kind, ring_to, keys)
        value = {k: (k * 7)[:200] for k in keys}
        for i, h in enumerate(old):  # the old cluster, placed by the old ring
            self.fill(h, [(k, value[k], 0, i) for k, o in zip(keys, before) if o == i])
        moved = [k for k, a, b in zip(keys, before, after) if ring_from[a] != ring_to[b]]
        self.assertGreater(len(moved), 1500)
        replica = self.replica_file(
            "rs34", shape="resize", ring=kind,
            sources=[dict(host=h, memcached=self.hosts[h].mc_addr) for h in old],
            destinations=[dict(host=h, memcached=self.hosts[h].mc_addr) for h in new])
        code, report, out = self.playbook(replica)
        self.assert_whole(code, report, out)
        self.assertEqual(len(report["pairs"]), 9)
        self.assertEqual(sum(r["items"] for r in report["pairs"]), len(moved))
        for j, h in enumerate(new):  # key by key: each at its new owner, nothing else
            want = {k for k, b in zip(keys, after) if b == j}
            if h in old:  # an old node keeps its own keys, and only those
                want |= {k for k, a in zip(keys, before) if a == old.index(h)}
            c = host_client(self.hosts[h])
            held = {k for k, got in zip(keys, get_many(c, keys)) if got is not None}
            self.assertEqual(held, want, "keys at %s" % h)
            self.assertEqual(int(c.stats()["curr_items"]), len(want))
            for k in sorted(want)[::50]:
                self.assertEqual(c.get(k)[0], value[k])
            c.close()
        self.assert_nothing_left()


if __name__ == "__main__":
    unittest.main()
