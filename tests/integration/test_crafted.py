"""Crafted chunk files through the real `mcwarm populate` and `mcwarm inspect`.

Every file here has valid checksums (header, blocks, footer, name, MANIFEST, DONE) and a
hostile structure (chunkcraft.hostile_corpus): populate must never abort or hang, must
report damage with the file and block (exit 65), and must apply every good record, and
only those: the destination is checked key by key with this suite's own client.
"""
import os
import subprocess

from chunkcraft import hostile_corpus, write_case
from mcwtest import ServerTestCase, last_json, run_mcwarm

EXIT_DATA = 65


class CraftedFileTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.corpus = hostile_corpus()

    def populate(self, dst, from_dir, state, *args):
        p = run_mcwarm("populate", "--dest", dst.addr, "--from", from_dir, "--state", state,
                       "--once", "--json", "-q", *args, timeout=120)
        self.assertNotIn(p.returncode, (70, 134, -6, -11),
                         "populate crashed on %s:\n%s" % (from_dir, p.stderr[-3000:]))
        return p

    def check_case(self, case, memory):
        name, _, _, expect, damaged = case[:5]
        with self.subTest(case=name, memory=memory):
            dst = self.server(memory_mb=64)  # a new one: curr_items counts only this case
            d = self.tmp.sub("%s-%s" % (name, memory))
            os.makedirs(d)
            chunk = write_case(d, case)
            state = d + ".state"
            for attempt in (1, 2):  # a second pass over the same journal: same outcome
                p = self.populate(dst, d, state, "--memory", memory)
                want = EXIT_DATA if damaged else 0
                self.assertEqual(p.returncode, want, "%s pass %d:\n%s" % (
                    name, attempt, p.stderr[-3000:]))
                summary = last_json(p.stdout)
                self.assertEqual(summary["ok"], not damaged, name)
                if damaged:
                    self.assertIn(chunk, p.stderr, "the report names the file")
            c = dst.client()
            for key, value in expect.items():
                got = c.get(key)
                self.assertIsNotNone(got, "%s: good record %r was not applied" % (name, key))
                self.assertEqual(got[0], value, "%s: value of %r" % (name, key))
            items = int(c.stats()["curr_items"])
            self.assertEqual(items, len(expect),
                             "%s: the destination holds records that are not good" % name)
            q = run_mcwarm("inspect", os.path.join(d, chunk), timeout=120)
            self.assertEqual(q.returncode, EXIT_DATA if damaged else 0,
                             "inspect %s:\n%s" % (name, q.stderr[-2000:]))
            dst.stop()

    def test_every_crafted_file_is_reported_and_its_good_records_applied(self):
        for case in self.corpus:
            self.check_case(case, "64M")

    def test_small_read_windows_do_not_change_the_outcome(self):
        # the smallest budget (one thread) makes the read windows small: chains meet window ends
        for case in self.corpus:
            self.check_case(case, "14M")

    def test_too_large_values_in_small_blocks_are_counted(self):
        dst = self.server(memory_mb=64)
        case = next(c for c in self.corpus if c[0] == "span-larger-than-destination")
        d = self.tmp.sub("large")
        os.makedirs(d)
        write_case(d, case)
        p = self.populate(dst, d, d + ".state")
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        self.assertEqual(last_json(p.stdout)["too_large"], 1)
