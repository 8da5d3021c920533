#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Unit tests of ci/verdict.py. Run from anywhere: python3 ci/test_verdict.py
Prints KTAP, ends with "N passed, N failed, N skipped", exits 1 on failure."""
import contextlib
import io
import gzip
import os
import re
import subprocess
import sys
import tempfile
import traceback
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True   # no __pycache__ next to the sources
import verdict  # noqa: E402
from verdict import (FAIL, PASS, SKIP, XFAIL, XPASS, BadInput, load_config,  # noqa: E402
                     VersionRange, cases_from_ktap, judge, parse_expectations,
                     parse_kernel_version)

SCRIPT = os.path.join(HERE, "verdict.py")

# ---- real output captured on the development machine (6.18.44-fc-v657) ------

# The first two programs of `./run_vmtests.sh > /tmp/sample.ktap` (lines
# 1-119 of 675): the plan says 3, so this excerpt is a run cut off at the
# top level after two complete programs.
SAMPLE_HEAD = '''\
# swap: /dev/zram1 (1G) for this run
TAP version 13
1..3
# selftests: folio_util: folio_util_test
# TAP version 13
# 1..15
# # Starting 15 tests from 1 test cases.
# #  RUN           global.pm_decode_present ...
# #            OK  global.pm_decode_present
# ok 1 global.pm_decode_present
# #  RUN           global.pm_decode_swap ...
# #            OK  global.pm_decode_swap
# ok 2 global.pm_decode_swap
# #  RUN           global.pagemap_self ...
# #            OK  global.pagemap_self
# ok 3 global.pagemap_self
# #  RUN           global.settings_parse ...
# #            OK  global.settings_parse
# ok 4 global.settings_parse
# #  RUN           global.settings_save_restore ...
# #            OK  global.settings_save_restore
# ok 5 global.settings_save_restore
# #  RUN           global.pattern_classes ...
# #            OK  global.pattern_classes
# ok 6 global.pattern_classes
# #  RUN           global.verify_messages ...
# #            OK  global.verify_messages
# ok 7 global.verify_messages
# #  RUN           global.verify_written_pages ...
# #            OK  global.verify_written_pages
# ok 8 global.verify_written_pages
# #  RUN           global.smaps_lines ...
# #            OK  global.smaps_lines
# ok 9 global.smaps_lines
# #  RUN           global.smaps_self ...
# #            OK  global.smaps_self
# ok 10 global.smaps_self
# #  RUN           global.kmsg_lines ...
# #            OK  global.kmsg_lines
# ok 11 global.kmsg_lines
# #  RUN           global.kmsg_records ...
# #            OK  global.kmsg_records
# ok 12 global.kmsg_records
# #  RUN           global.kmsg_live ...
# #            OK  global.kmsg_live
# ok 13 global.kmsg_live
# #  RUN           global.lru_reclaim_anon ...
# # folio_util_test.c:404:lru_reclaim_anon:driver /sys/fs/cgroup/memory/process_api/41a218f670ecd5dcb0ec20a0b502c32d/folio_util.30868/memory.force_empty, all swapped after round 1
# #            OK  global.lru_reclaim_anon
# ok 14 global.lru_reclaim_anon
# #  RUN           global.counters ...
# #            OK  global.counters
# ok 15 global.counters
# # PASSED: 15 / 15 tests passed.
# # Totals: pass:15 fail:0 xfail:0 xpass:0 skip:0 error:0
ok 1 folio_util:folio_util_test
# selftests: folio_builder: folio_builder
# TAP version 13
# 1..18
# # Starting 18 tests from 9 test cases.
# #  RUN           folio.8kB.aligned ...
# #      SKIP      kernel offers no 8 kB folios
# #            OK  folio.8kB.aligned
# ok 1 folio.8kB.aligned # SKIP kernel offers no 8 kB folios
# #  RUN           folio.8kB.pmd_crossing ...
# #      SKIP      kernel offers no 8 kB folios
# #            OK  folio.8kB.pmd_crossing
# ok 2 folio.8kB.pmd_crossing # SKIP kernel offers no 8 kB folios
# #  RUN           folio.16kB.aligned ...
# #            OK  folio.16kB.aligned
# ok 3 folio.16kB.aligned
# #  RUN           folio.16kB.pmd_crossing ...
# #            OK  folio.16kB.pmd_crossing
# ok 4 folio.16kB.pmd_crossing
# #  RUN           folio.32kB.aligned ...
# #            OK  folio.32kB.aligned
# ok 5 folio.32kB.aligned
# #  RUN           folio.32kB.pmd_crossing ...
# #            OK  folio.32kB.pmd_crossing
# ok 6 folio.32kB.pmd_crossing
# #  RUN           folio.64kB.aligned ...
# #            OK  folio.64kB.aligned
# ok 7 folio.64kB.aligned
# #  RUN           folio.64kB.pmd_crossing ...
# #            OK  folio.64kB.pmd_crossing
# ok 8 folio.64kB.pmd_crossing
# #  RUN           folio.128kB.aligned ...
# #            OK  folio.128kB.aligned
# ok 9 folio.128kB.aligned
# #  RUN           folio.128kB.pmd_crossing ...
# #            OK  folio.128kB.pmd_crossing
# ok 10 folio.128kB.pmd_crossing
# #  RUN           folio.256kB.aligned ...
# #            OK  folio.256kB.aligned
# ok 11 folio.256kB.aligned
# #  RUN           folio.256kB.pmd_crossing ...
# #            OK  folio.256kB.pmd_crossing
# ok 12 folio.256kB.pmd_crossing
# #  RUN           folio.512kB.aligned ...
# #            OK  folio.512kB.aligned
# ok 13 folio.512kB.aligned
# #  RUN           folio.512kB.pmd_crossing ...
# #            OK  folio.512kB.pmd_crossing
# ok 14 folio.512kB.pmd_crossing
# #  RUN           folio.1024kB.aligned ...
# #            OK  folio.1024kB.aligned
# ok 15 folio.1024kB.aligned
# #  RUN           folio.1024kB.pmd_crossing ...
# #            OK  folio.1024kB.pmd_crossing
# ok 16 folio.1024kB.pmd_crossing
# #  RUN           folio.2048kB.aligned ...
# #            OK  folio.2048kB.aligned
# ok 17 folio.2048kB.aligned
# #  RUN           folio.2048kB.pmd_crossing ...
# #            OK  folio.2048kB.pmd_crossing
# ok 18 folio.2048kB.pmd_crossing
# # PASSED: 18 / 18 tests passed.
# # Totals: pass:16 fail:0 xfail:0 xpass:0 skip:2 error:0
ok 2 folio_builder:folio_builder
'''

# `make -C tools/testing/selftests/mm run_tests TEST_PROGS=ksft_folio_builder.sh`:
# the kselftest runner's level around run_vmtests.sh's, three levels.
KSFT_BUILDER = '''\
TAP version 13
1..1
# timeout set to 300
# selftests: mm: ksft_folio_builder.sh
# # swap: /dev/zram1 (1G) for this run
# TAP version 13
# 1..1
# # selftests: folio_builder: folio_builder
# # TAP version 13
# # 1..18
# # # Starting 18 tests from 9 test cases.
# # #  RUN           folio.8kB.aligned ...
# # #      SKIP      kernel offers no 8 kB folios
# # #            OK  folio.8kB.aligned
# # ok 1 folio.8kB.aligned # SKIP kernel offers no 8 kB folios
# # #  RUN           folio.8kB.pmd_crossing ...
# # #      SKIP      kernel offers no 8 kB folios
# # #            OK  folio.8kB.pmd_crossing
# # ok 2 folio.8kB.pmd_crossing # SKIP kernel offers no 8 kB folios
# # #  RUN           folio.16kB.aligned ...
# # #            OK  folio.16kB.aligned
# # ok 3 folio.16kB.aligned
# # #  RUN           folio.16kB.pmd_crossing ...
# # #            OK  folio.16kB.pmd_crossing
# # ok 4 folio.16kB.pmd_crossing
# # #  RUN           folio.32kB.aligned ...
# # #            OK  folio.32kB.aligned
# # ok 5 folio.32kB.aligned
# # #  RUN           folio.32kB.pmd_crossing ...
# # #            OK  folio.32kB.pmd_crossing
# # ok 6 folio.32kB.pmd_crossing
# # #  RUN           folio.64kB.aligned ...
# # #            OK  folio.64kB.aligned
# # ok 7 folio.64kB.aligned
# # #  RUN           folio.64kB.pmd_crossing ...
# # #            OK  folio.64kB.pmd_crossing
# # ok 8 folio.64kB.pmd_crossing
# # #  RUN           folio.128kB.aligned ...
# # #            OK  folio.128kB.aligned
# # ok 9 folio.128kB.aligned
# # #  RUN           folio.128kB.pmd_crossing ...
# # #            OK  folio.128kB.pmd_crossing
# # ok 10 folio.128kB.pmd_crossing
# # #  RUN           folio.256kB.aligned ...
# # #            OK  folio.256kB.aligned
# # ok 11 folio.256kB.aligned
# # #  RUN           folio.256kB.pmd_crossing ...
# # #            OK  folio.256kB.pmd_crossing
# # ok 12 folio.256kB.pmd_crossing
# # #  RUN           folio.512kB.aligned ...
# # #            OK  folio.512kB.aligned
# # ok 13 folio.512kB.aligned
# # #  RUN           folio.512kB.pmd_crossing ...
# # #            OK  folio.512kB.pmd_crossing
# # ok 14 folio.512kB.pmd_crossing
# # #  RUN           folio.1024kB.aligned ...
# # #            OK  folio.1024kB.aligned
# # ok 15 folio.1024kB.aligned
# # #  RUN           folio.1024kB.pmd_crossing ...
# # #            OK  folio.1024kB.pmd_crossing
# # ok 16 folio.1024kB.pmd_crossing
# # #  RUN           folio.2048kB.aligned ...
# # #            OK  folio.2048kB.aligned
# # ok 17 folio.2048kB.aligned
# # #  RUN           folio.2048kB.pmd_crossing ...
# # #            OK  folio.2048kB.pmd_crossing
# # ok 18 folio.2048kB.pmd_crossing
# # # PASSED: 18 / 18 tests passed.
# # # Totals: pass:16 fail:0 xfail:0 xpass:0 skip:2 error:0
# ok 1 folio_builder:folio_builder
# 16 passed, 0 failed, 2 skipped
ok 1 selftests: mm: ksft_folio_builder.sh
'''

# `./lazyfree -r lazyfree_pmd:redirty_no_split -r lazyfree:16kB:abandoned_soft_dirty
#  -r lazyfree:8kB:droppable -r lazyfree:64kB:clean_aligned`: one program
# alone, one level, with the failure this host's kernel shows.
FLAT_LAZYFREE = '''\
TAP version 13
1..4
# Starting 4 tests from 4 test cases.
#  RUN           lazyfree.8kB.droppable ...
#      SKIP      kernel offers no 8 kB folios
#            OK  lazyfree.8kB.droppable
ok 1 lazyfree.8kB.droppable # SKIP kernel offers no 8 kB folios
#  RUN           lazyfree.16kB.abandoned_soft_dirty ...
#      SKIP      pagemap shows no soft-dirty bit: kernel without CONFIG_MEM_SOFT_DIRTY
#            OK  lazyfree.16kB.abandoned_soft_dirty
ok 2 lazyfree.16kB.abandoned_soft_dirty # SKIP pagemap shows no soft-dirty bit: kernel without CONFIG_MEM_SOFT_DIRTY
#  RUN           lazyfree.64kB.clean_aligned ...
#            OK  lazyfree.64kB.clean_aligned
ok 3 lazyfree.64kB.clean_aligned
#  RUN           lazyfree_pmd.redirty_no_split ...
# lazyfree.c:838:redirty_no_split:Expected 0 (0) == counters_delta(&c, "vm:thp_split_pmd") (1)
# lazyfree.c:839:redirty_no_split:reclaim split the PMD of a redirtied lazyfree THP
# lazyfree.c:840:redirty_no_split:Expected (long)(pmdsize / 1024) (2048) == s.anon_huge (0)
# lazyfree.c:841:redirty_no_split:AnonHugePages after reclaim
# redirty_no_split: Test failed
#          FAIL  lazyfree_pmd.redirty_no_split
not ok 4 lazyfree_pmd.redirty_no_split
# FAILED: 3 / 4 tests passed.
# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:2 error:0
'''


def ids(cases):
    return [c.id for c in cases]


def by_id(cases):
    return {c.id: c for c in cases}


def exp(text):
    return parse_expectations(text, "exp")


def run_main(args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = verdict.main(args)
    return rc, out.getvalue(), err.getvalue()


def indent(text, prefix):
    return "".join(prefix + l if l.strip() else prefix.rstrip() + "\n"
                   for l in text.splitlines(True))


HARNESS_OK = '''\
TAP version 13
1..3
# Starting 3 tests from 1 test cases.
#  RUN           t.a ...
#            OK  t.a
ok 1 t.a
#  RUN           t.b ...
#      SKIP      no widget
#            OK  t.b
ok 2 t.b # SKIP no widget
#  RUN           t.c ...
# prog.c:10:c:Expected 1 (1) == x (2)
# prog.c:11:c:first
# prog.c:12:c:Expected 0 (0) == y (-11)
# prog.c:13:c:second
# c: Test failed
#          FAIL  t.c
not ok 3 t.c
# FAILED: 2 / 3 tests passed.
# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0
'''


def runner(programs, plan=None, prefix=""):
    """run_vmtests.sh-style output: (category, program, harness text, line)."""
    out = ["TAP version 13", "1..%d" % (plan if plan is not None else len(programs))]
    for n, (cat, prog, body, line) in enumerate(programs, 1):
        out.append("# selftests: %s: %s" % (cat, prog))
        out += ["# " + l if l else "#" for l in body.splitlines()]
        if line is not None:
            out.append(line % {"n": n, "id": "%s:%s" % (cat, prog)})
    return indent("\n".join(out) + "\n", prefix) if prefix else "\n".join(out) + "\n"


# ---- parsing ------------------------------------------------------------------------

class TestNesting(unittest.TestCase):
    def test_two_levels_hash(self):
        cases = cases_from_ktap(runner([("cat", "prog", HARNESS_OK, "not ok %(n)d %(id)s")]))
        self.assertEqual(ids(cases), ["cat:t.a", "cat:t.b", "cat:t.c"])
        self.assertEqual([c.status for c in cases], [PASS, SKIP, FAIL])

    def test_three_levels_hash_category_from_run_vmtests(self):
        inner = runner([("folio_builder", "folio_builder", HARNESS_OK, "not ok %(n)d %(id)s")])
        text = ("TAP version 13\n1..1\n# timeout set to 300\n"
                "# selftests: mm: ksft_folio_builder.sh\n" + indent(inner, "# ")
                + "not ok 1 selftests: mm: ksft_folio_builder.sh # exit=1\n")
        cases = cases_from_ktap(text)
        self.assertEqual(ids(cases), ["folio_builder:t.a", "folio_builder:t.b", "folio_builder:t.c"])

    def test_indented_two_levels(self):
        text = ("KTAP version 1\n1..1\n" + indent(HARNESS_OK.replace("TAP version 13", "KTAP version 1"), "    ")
                + "not ok 1 cat:prog\n")
        self.assertEqual([(c.id, c.status) for c in cases_from_ktap(text)],
                         [("cat:t.a", PASS), ("cat:t.b", SKIP), ("cat:t.c", FAIL)])

    def test_indented_three_levels_and_subtest_names(self):
        text = '''\
KTAP version 1
1..1
    KTAP version 1
    # Subtest: outer
    1..2
        KTAP version 1
        # Subtest: inner
        1..2
        ok 1 x
        not ok 2 y
    not ok 1 lazyfree:lazyfree
    ok 2 z # SKIP nothing to do
not ok 1 outer
'''
        cases = cases_from_ktap(text)
        self.assertEqual([(c.id, c.status) for c in cases],
                         [("lazyfree:x", PASS), ("lazyfree:y", FAIL), ("outer:z", SKIP)])

    def test_two_space_indentation(self):
        text = "KTAP version 1\n1..1\n" + indent("KTAP version 1\n1..2\nok 1 a\nok 2 b # XFAIL bug 1\n", "  ") + "ok 1 s:p\n"
        self.assertEqual([(c.id, c.status) for c in cases_from_ktap(text)], [("s:a", PASS), ("s:b", XFAIL)])

    def test_headerless_nested_plan(self):
        text = "TAP version 13\n1..1\n# 1..1\n# ok 1 only\nok 1 c:p\n"
        self.assertEqual(ids(cases_from_ktap(text)), ["c:only"])

    def test_noise_lines_ignored(self):
        text = ("make: Entering directory '/x'\n" + runner([("c", "p", HARNESS_OK, "not ok %(n)d %(id)s")])
                + "make: Leaving directory '/x'\n")
        text = text.replace("# ok 1 t.a\n", "# ok 1 t.a\n[   12.345678] zram: Added device: zram1\n")
        self.assertEqual(ids(cases_from_ktap(text)), ["c:t.a", "c:t.b", "c:t.c"])

    def test_flat_program_output(self):
        cases = cases_from_ktap(HARNESS_OK)
        self.assertEqual(ids(cases), ["t.a", "t.b", "t.c"])


class TestResults(unittest.TestCase):
    def test_skip_reason_from_directive(self):
        c = by_id(cases_from_ktap(HARNESS_OK))["t.b"]
        self.assertEqual((c.status, c.message), (SKIP, "no widget"))

    def test_skip_reason_from_harness_line(self):
        text = HARNESS_OK.replace("ok 2 t.b # SKIP no widget", "ok 2 t.b # SKIP")
        self.assertEqual(by_id(cases_from_ktap(text))["t.b"].message, "no widget")

    def test_failure_message_is_last_diagnostics(self):
        c = by_id(cases_from_ktap(HARNESS_OK))["t.c"]
        self.assertEqual(c.message, "prog.c:10:c:Expected 1 (1) == x (2) | prog.c:11:c:first | "
                         "prog.c:12:c:Expected 0 (0) == y (-11) | prog.c:13:c:second")

    def test_diagnostics_do_not_leak_between_tests(self):
        text = HARNESS_OK.replace("#  RUN           t.c ...\n", "#  RUN           t.c ...\n# c's own\n")
        text = text.replace("#  RUN           t.b ...", "# belongs to a\n#  RUN           t.b ...")
        self.assertNotIn("belongs to a", by_id(cases_from_ktap(text))["t.c"].message)

    def test_xfail_xpass_todo(self):
        text = ("TAP version 13\n1..4\nok 1 a # XFAIL known\nok 2 b # XPASS fixed\n"
                "not ok 3 c # TODO later\nok 4 d # TODO later\n")
        self.assertEqual([(c.id, c.status) for c in cases_from_ktap(text)],
                         [("a", XFAIL), ("b", XPASS), ("c", XFAIL), ("d", XPASS)])
        self.assertEqual(cases_from_ktap(text)[0].message, "known")

    def test_other_directive_is_not_a_skip(self):
        text = "TAP version 13\n1..1\nnot ok 1 p # exit=1\n"
        c = cases_from_ktap(text)[0]
        self.assertEqual((c.status, c.message), (FAIL, "exit=1"))

    def test_plan_skip_whole_program(self):
        text = "TAP version 13\n1..1\n# selftests: c: p\n# TAP version 13\n# 1..0 # SKIP needs root\nok 1 c:p # SKIP\n"
        c = cases_from_ktap(text)
        self.assertEqual([(x.id, x.status, x.message) for x in c], [("c:p", SKIP, "needs root")])


class TestCrashes(unittest.TestCase):
    def crashed_body(self):
        return "\n".join(HARNESS_OK.splitlines()[:6] + ["#  RUN           t.b ..."])

    def test_short_plan_crash(self):
        body = self.crashed_body() + "\nprog exited with status 139"
        text = runner([("cat", "prog", body, "not ok %(n)d %(id)s")])
        cases = cases_from_ktap(text)
        self.assertEqual([(c.id, c.status) for c in cases], [("cat:t.a", PASS), ("cat:prog", FAIL)])
        self.assertTrue(cases[1].synthetic)
        self.assertTrue(cases[1].message.startswith("crashed: 1 of 3 results, no Totals"), cases[1].message)
        self.assertIn("t.b started, no result", cases[1].message)
        self.assertIn("prog exited with status 139", cases[1].message)

    def test_no_plan_crash(self):
        text = runner([("cat", "prog", "TAP version 13\nSegmentation fault", "not ok %(n)d %(id)s")])
        cases = cases_from_ktap(text)
        self.assertEqual(ids(cases), ["cat:prog"])
        self.assertIn("crashed: no plan, no results", cases[0].message)

    def test_results_without_plan(self):
        text = runner([("cat", "prog", "TAP version 13\nok 1 a", "not ok %(n)d %(id)s")])
        self.assertIn("1 results, no plan", by_id(cases_from_ktap(text))["cat:prog"].message)

    def test_cut_off_at_end_of_file(self):
        text = runner([("c", "one", HARNESS_OK, "not ok %(n)d %(id)s"),
                       ("c", "two", self.crashed_body(), None)])
        cases = cases_from_ktap(text)
        self.assertEqual(ids(cases), ["c:t.a", "c:t.b", "c:t.c", "c:t.a", "c:two"])
        self.assertTrue(cases[-1].message.startswith("cut off: 1 of 3 results"), cases[-1].message)
        self.assertIn("end of the file", cases[-1].message)

    def test_announced_program_without_output(self):
        text = "TAP version 13\n1..2\n# selftests: c: one\n# one is not built: run make first\nnot ok 1 c:one\n# selftests: c: two\n"
        cases = cases_from_ktap(text)
        self.assertEqual([(c.id, c.status) for c in cases], [("c:one", FAIL), ("c:two", FAIL)])
        self.assertEqual(cases[0].message, "one is not built: run make first")
        self.assertIn("cut off: no output", cases[1].message)

    def test_not_ok_without_failing_case(self):
        body = HARNESS_OK.replace("not ok 3 t.c", "ok 3 t.c") + "prog exited with status 1"
        cases = cases_from_ktap(runner([("c", "prog", body, "not ok %(n)d %(id)s")]))
        self.assertEqual([(c.id, c.status) for c in cases],
                         [("c:t.a", PASS), ("c:t.b", SKIP), ("c:t.c", PASS), ("c:prog", FAIL)])
        self.assertIn("not ok with no failing case", cases[-1].message)
        self.assertIn("exited with status 1", cases[-1].message)

    def test_not_ok_with_failing_case_adds_nothing(self):
        cases = cases_from_ktap(runner([("c", "prog", HARNESS_OK, "not ok %(n)d %(id)s")]))
        self.assertFalse(any(c.synthetic for c in cases))

    def test_top_level_cut_off(self):
        text = runner([("c", "one", HARNESS_OK, "not ok %(n)d %(id)s")], plan=3)
        c = by_id(cases_from_ktap(text))["top:run"]
        self.assertEqual(c.status, FAIL)
        self.assertTrue(c.message.startswith("cut off: 1 of 3 results"), c.message)

    def test_kselftest_timeout_cuts_inner_run(self):
        inner = runner([("lazyfree", "lazyfree", self.crashed_body(), None)])
        text = ("TAP version 13\n1..1\n# selftests: mm: ksft_lazyfree.sh\n" + indent(inner, "# ")
                + "not ok 1 selftests: mm: ksft_lazyfree.sh # TIMEOUT 300 seconds\n")
        cases = cases_from_ktap(text)
        self.assertEqual(ids(cases), ["lazyfree:t.a", "lazyfree:lazyfree"])
        self.assertIn("cut off: 1 of 3 results", cases[1].message)
        self.assertIn("TIMEOUT 300 seconds", cases[1].message)

    def test_kselftest_level_failure_named_after_its_script(self):
        body = HARNESS_OK.replace("not ok 3 t.c", "ok 3 t.c")
        inner = runner([("lazyfree", "lazyfree", body, "ok %(n)d %(id)s")])
        text = ("TAP version 13\n1..2\n# selftests: mm: ksft_lazyfree.sh\n" + indent(inner, "# ")
                + "not ok 1 selftests: mm: ksft_lazyfree.sh # exit=1\n"
                + "# selftests: mm: ksft_folio_util.sh\n# Warning: file ksft_folio_util.sh is missing!\n"
                + "not ok 2 selftests: mm: ksft_folio_util.sh\n")
        cases = cases_from_ktap(text)
        self.assertEqual(ids(cases)[3:], ["lazyfree:ksft_lazyfree.sh", "folio_util:ksft_folio_util.sh"])
        self.assertIn("not ok with no failing case under it (exit=1)", cases[3].message)
        self.assertEqual(cases[4].message, "Warning: file ksft_folio_util.sh is missing!")

    def test_not_built_under_kselftest_runner(self):
        inner = ("TAP version 13\n1..1\n# selftests: lazyfree: lazyfree\n"
                 "# lazyfree is not built: run make first\nnot ok 1 lazyfree:lazyfree\n")
        text = ("TAP version 13\n1..1\n# selftests: mm: ksft_lazyfree.sh\n" + indent(inner, "# ")
                + "not ok 1 selftests: mm: ksft_lazyfree.sh # exit=1\n")
        cases = cases_from_ktap(text)
        self.assertEqual([(c.id, c.status, c.message) for c in cases],
                         [("lazyfree:lazyfree", FAIL, "lazyfree is not built: run make first")])

    def test_empty_file_fails(self):
        for text in ("", "TAP version 13\n", "just some text\n"):
            cases = cases_from_ktap(text)
            self.assertEqual([(c.id, c.status) for c in cases], [("top:run", FAIL)], text)
            self.assertIn("no KTAP results", cases[0].message)


# ---- versions, ranges, globs, expectations ------------------------------------------

class TestVersions(unittest.TestCase):
    def test_kernel_versions(self):
        for text, want in (("6.12.57+deb13-amd64", (6, 12, 57)), ("7.2.13-amd64", (7, 2, 13)),
                           ("6.18.44-fc-v657", (6, 18, 44)), ("6.8", (6, 8, 0)),
                           ("6.8-rc3", (6, 8, 0)), ("6.1.0-37-cloud-amd64", (6, 1, 0))):
            self.assertEqual(parse_kernel_version(text), want, text)
        for bad in ("", "foo", "6", "v6.8"):
            with self.assertRaises(ValueError):
                parse_kernel_version(bad)

    def check(self, rng, yes, no):
        r = VersionRange(rng)
        for v in yes:
            self.assertTrue(r.matches(parse_kernel_version(v)), "%s should match %s" % (rng, v))
        for v in no:
            self.assertFalse(r.matches(parse_kernel_version(v)), "%s should not match %s" % (rng, v))

    def test_star(self):
        self.check("*", ["5.10.1", "6.18.44-fc-v657", "7.2.13-amd64"], [])

    def test_less(self):
        self.check("<6.19", ["6.18.44-fc-v657", "6.1"], ["6.19", "6.19.0", "6.19.3", "7.2.13-amd64"])

    def test_less_equal_on_two_components(self):
        self.check("<=6.12", ["6.12", "6.12.57+deb13-amd64", "6.1.100"], ["6.13", "6.13.1"])

    def test_greater_equal(self):
        self.check(">=6.8", ["6.8", "6.8.0", "6.12.57", "7.2.13-amd64"], ["6.7.12", "6.1.0"])

    def test_greater_is_strict_on_given_components(self):
        self.check(">6.1", ["6.2", "6.12.57", "7.0"], ["6.1", "6.1.99", "6.0"])

    def test_span_inclusive(self):
        self.check("6.1..6.12", ["6.1", "6.1.0", "6.8.5", "6.12", "6.12.57+deb13-amd64"],
                   ["6.0.9", "6.13", "7.2.13"])

    def test_conjunction(self):
        self.check(">=6.8,<6.19", ["6.8", "6.18.44-fc-v657"], ["6.7.9", "6.19.0", "7.2.13-amd64"])

    def test_three_component_bounds(self):
        self.check("<6.12.58", ["6.12.57+deb13-amd64", "6.11.9"], ["6.12.58", "6.13"])
        self.check("<=6.12.57", ["6.12.57+deb13-amd64"], ["6.12.58"])
        self.check("6.12.10..6.12.57", ["6.12.10", "6.12.57"], ["6.12.9", "6.12.58", "6.12"])
        self.check(">6.12", ["6.13"], ["6.12.57"])

    def test_equality(self):
        self.check("6.12", ["6.12.1", "6.12.57+deb13-amd64"], ["6.13", "6.1.12"])
        self.check("=6.18.44", ["6.18.44-fc-v657"], ["6.18.45"])

    def test_bad_ranges(self):
        for bad in ("", "<6", "6.x", "abc", "6.12..6.1", ">=6.8,", "<<6.1", "6.1...6.2", "<6.1-rc1"):
            with self.assertRaises(ValueError, msg=bad):
                VersionRange(bad)


class TestExpectations(unittest.TestCase):
    def test_glob_matching(self):
        e = exp("folio_builder:folio.*kB.aligned * SKIP r\n")[0]
        k = parse_kernel_version("6.12")
        self.assertTrue(e.matches("folio_builder:folio.64kB.aligned", k))
        self.assertTrue(e.matches("folio_builder:folio.2048kB.aligned", k))
        self.assertFalse(e.matches("folio_builder:folio.64kB.pmd_crossing", k))
        self.assertFalse(e.matches("Folio_builder:folio.64kB.aligned", k))
        e = exp("lazyfree:lazyfree.* * SKIP r\n")[0]
        self.assertFalse(e.matches("lazyfree:lazyfree_pmd.redirty_no_split", k))
        e = exp("lazyfree:lazyfree.[0-9]*kB.droppable * SKIP r\n")[0]
        self.assertTrue(e.matches("lazyfree:lazyfree.16kB.droppable", k))

    def test_first_match_wins_and_version_filters(self):
        es = exp("a:* <6.8 FAIL old\na:x * SKIP always\n")
        self.assertEqual(verdict.find_expectation(es, "a:x", (6, 1, 0)).reason, "old")
        self.assertEqual(verdict.find_expectation(es, "a:x", (6, 12, 0)).reason, "always")
        self.assertIsNone(verdict.find_expectation(es, "b:x", (6, 1, 0)))

    def test_format(self):
        es = exp("# comment\n\n   # indented comment\nc:t  >=6.8,<6.19  fail  a reason # with hash\n")
        self.assertEqual(len(es), 1)
        self.assertEqual((es[0].glob, es[0].range.text, es[0].kind, es[0].reason, es[0].where),
                         ("c:t", ">=6.8,<6.19", "FAIL", "a reason # with hash", "exp:4"))

    def test_missing_reason_rejected(self):
        with self.assertRaises(BadInput) as cm:
            exp("# c\nc:a * SKIP why\nc:b <6.8 SKIP\n")
        self.assertIn("exp:3", str(cm.exception))
        self.assertIn("reason", str(cm.exception))

    def test_bad_entries_rejected_with_line(self):
        for text, word in (("c:a * BROKEN r", "FAIL or SKIP"), ("c:a 6.x SKIP r", "6.x"),
                           ("c:a", "want"), ("c:a *", "want")):
            with self.assertRaises(BadInput, msg=text) as cm:
                exp("\n" + text + "\n")
            self.assertIn("exp:2", str(cm.exception))
            self.assertIn(word, str(cm.exception))

    def test_shipped_expectations_parse(self):
        es = verdict.load_expectations(os.path.join(HERE, "expectations"))
        self.assertTrue(es)
        k = parse_kernel_version("6.18.44-fc-v657")
        self.assertEqual(verdict.find_expectation(es, "folio_builder:folio.8kB.aligned", k).kind, SKIP)
        self.assertIsNone(verdict.find_expectation(es, "folio_builder:folio.16kB.aligned", k))
        old = parse_kernel_version("6.1.0-37-amd64")
        for prog, case in (("folio_builder", "folio.%s.aligned"), ("lazyfree", "lazyfree.%s.clean_aligned")):
            for size in ("8kB", "16kB", "32kB", "64kB", "128kB", "256kB", "512kB", "1024kB"):
                self.assertEqual(verdict.find_expectation(es, prog + ":" + case % size, old).kind, SKIP, size)
            # before 6.8 the suite still offers the PMD size: no SKIP for it
            e = verdict.find_expectation(es, prog + ":" + case % "2048kB", old)
            self.assertTrue(e is None or e.kind != SKIP)
        self.assertIsNone(verdict.find_expectation(es, "folio_builder:folio.16kB.aligned",
                                                   parse_kernel_version("6.8")))
        # lazyfree reclaim batched from 6.15: clean_aligned a known failure before
        self.assertEqual(verdict.find_expectation(es, "lazyfree:lazyfree.2048kB.clean_aligned", old).kind, FAIL)
        self.assertEqual(verdict.find_expectation(es, "lazyfree:lazyfree.64kB.clean_aligned",
                                                  parse_kernel_version("6.12.117+deb13-amd64")).kind, FAIL)
        self.assertIsNone(verdict.find_expectation(es, "lazyfree:lazyfree.64kB.clean_aligned",
                                                   parse_kernel_version("6.15")))
        self.assertEqual(verdict.find_expectation(es, "lazyfree:lazyfree_pmd.redirty_no_split", k).kind, FAIL)
        self.assertIsNone(verdict.find_expectation(es, "lazyfree:lazyfree_pmd.redirty_no_split",
                                                   parse_kernel_version("7.2.13")))
        # a config condition: only where the config is known to lack the option
        sd = "lazyfree:lazyfree.64kB.abandoned_soft_dirty"
        self.assertEqual(verdict.find_expectation(es, sd, k, {"CONFIG_SWAP"}).kind, SKIP)
        self.assertIsNone(verdict.find_expectation(es, sd, k, {"CONFIG_MEM_SOFT_DIRTY"}))
        self.assertIsNone(verdict.find_expectation(es, sd, k, None))
        self.assertEqual(verdict.find_expectation(es, "lazyfree:lazyfree.64kB.droppable",
                                                  parse_kernel_version("6.10.14")).kind, SKIP)
        self.assertIsNone(verdict.find_expectation(es, "lazyfree:lazyfree.64kB.droppable",
                                                   parse_kernel_version("6.11")))


# ---- verdicts ----------------------------------------------------------------------

ALL_CLASSES = '''\
TAP version 13
1..1
# selftests: c: p
# TAP version 13
# 1..10
# ok 1 pass
# ok 2 pass_expected_fail
# ok 3 pass_expected_skip
# # c.c:1:x:Expected 0 (0) == ret (-11)
# not ok 4 fail_expected
# # c.c:2:x:boom
# not ok 5 fail_unexpected
# ok 6 skip_expected # SKIP no widget
# ok 7 skip_unexpected # SKIP no gadget
# ok 8 xfail # XFAIL harness knows
# ok 9 xpass # XPASS harness surprised
# ok 10 skip_expected_fail # SKIP no gizmo
# # Totals: pass:3 fail:2 xfail:1 xpass:1 skip:3 error:0
not ok 1 c:p
'''
ALL_EXP = '''\
c:pass_expected_fail   <6.19      FAIL  bug 1
c:pass_expected_skip   *          SKIP  feature 2
c:fail_expected        >=6.8      FAIL  bug 3
c:skip_expected        6.1..6.12  SKIP  feature 4
c:skip_expected_fail   *          FAIL  bug 5
'''


class TestVerdict(unittest.TestCase):
    def setUp(self):
        self.cases = judge(cases_from_ktap(ALL_CLASSES), exp(ALL_EXP), parse_kernel_version("6.12.57+deb13-amd64"))
        self.c = by_id(self.cases)

    def test_each_class(self):
        want = {"c:pass": "pass", "c:pass_expected_fail": "unexpected pass",
                "c:pass_expected_skip": "unexpected pass", "c:fail_expected": "known failure",
                "c:fail_unexpected": "failure", "c:skip_expected": "expected skip",
                "c:skip_unexpected": "unexpected skip", "c:xfail": "known failure",
                "c:xpass": "unexpected pass", "c:skip_expected_fail": "unexpected skip"}
        self.assertEqual({k: v.outcome for k, v in self.c.items()}, want)

    def test_lines(self):
        self.assertEqual(self.c["c:pass_expected_fail"].line,
                         "unexpected pass: c:pass_expected_fail (expected FAIL on <6.19: bug 1)")
        self.assertEqual(self.c["c:pass_expected_skip"].line,
                         "unexpected pass: c:pass_expected_skip (expected SKIP on every kernel: feature 2)")
        self.assertIn("bug 3", self.c["c:fail_expected"].line)
        self.assertIn("Expected 0 (0) == ret (-11)", self.c["c:fail_expected"].line)
        self.assertEqual(self.c["c:skip_unexpected"].line, "FAIL c:skip_unexpected: unexpected SKIP: no gadget")
        self.assertIn("unexpected SKIP: no gizmo", self.c["c:skip_expected_fail"].line)
        self.assertEqual(self.c["c:fail_unexpected"].line, "FAIL c:fail_unexpected: c.c:2:x:boom")
        self.assertIsNone(self.c["c:pass"].line)
        self.assertIsNone(self.c["c:skip_expected"].line)

    def test_counts_and_report(self):
        lines = verdict.report(self.cases, "6.12.57+deb13-amd64", "exp", "vm 6.12")
        self.assertEqual(lines[-1], "verdict: 4 passed, 3 failed, 3 skipped")
        self.assertEqual(lines[-2], "known failures: 2, expected skips: 1, unexpected passes: 3 "
                                    "(vm 6.12: kernel 6.12.57+deb13-amd64, expectations exp)")
        self.assertEqual(len(lines), 2 + 8)
        self.assertTrue(all(l.startswith("FAIL ") for l in lines[-5:-2]))

    def test_expectation_outside_range_does_not_apply(self):
        cases = judge(cases_from_ktap(ALL_CLASSES), exp(ALL_EXP), parse_kernel_version("6.19.1"))
        c = by_id(cases)
        self.assertEqual(c["c:pass_expected_fail"].outcome, "pass")
        self.assertEqual(c["c:skip_expected"].outcome, "unexpected skip")
        self.assertEqual(c["c:fail_expected"].outcome, "known failure")

    def test_config_conditions(self):
        """!CONFIG_X holds only on a known config without X; CONFIG_X only with
        it; an unknown config (None) matches neither: strict by default."""
        text = runner([("c", "p", "TAP version 13\n1..1\nok 1 sd # SKIP no soft-dirty",
                        "ok %(n)d %(id)s")])
        e = exp("c:sd *,!CONFIG_MEM_SOFT_DIRTY SKIP built without soft-dirty\n")
        without = {"CONFIG_SWAP"}
        with_sd = {"CONFIG_SWAP", "CONFIG_MEM_SOFT_DIRTY"}
        self.assertEqual(by_id(judge(cases_from_ktap(text), e, (6, 18, 44), without))["c:sd"].outcome,
                         "expected skip")
        self.assertEqual(by_id(judge(cases_from_ktap(text), e, (6, 18, 44), with_sd))["c:sd"].outcome,
                         "unexpected skip")
        self.assertEqual(by_id(judge(cases_from_ktap(text), e, (6, 18, 44), None))["c:sd"].outcome,
                         "unexpected skip")
        r = VersionRange(">=6.8,CONFIG_MEMORY_FAILURE")
        self.assertTrue(r.matches((7, 2, 0), {"CONFIG_MEMORY_FAILURE"}))
        self.assertFalse(r.matches((6, 1, 0), {"CONFIG_MEMORY_FAILURE"}))
        self.assertFalse(r.matches((7, 2, 0), set()))

    def test_config_file(self):
        with tempfile.TemporaryDirectory() as d:
            plain = os.path.join(d, "config")
            with open(plain, "w") as f:
                f.write("CONFIG_SWAP=y\nCONFIG_ZRAM=m\n# CONFIG_MEM_SOFT_DIRTY is not set\nCONFIG_X=\"s\"\n")
            packed = os.path.join(d, "config.gz")
            with open(plain, "rb") as src, gzip.open(packed, "wb") as dst:
                dst.write(src.read())
            for path in (plain, packed):
                self.assertEqual(load_config(path), {"CONFIG_SWAP", "CONFIG_ZRAM"})

    def test_synthetic_crash_can_be_expected(self):
        text = runner([("c", "p", "TAP version 13\n1..3\nok 1 a", "not ok %(n)d %(id)s")])
        cases = judge(cases_from_ktap(text), exp("c:p <6.8 FAIL crashes on old kernels\n"), (6, 1, 0))
        self.assertEqual(by_id(cases)["c:p"].outcome, "known failure")


# ---- command line and JUnit ----------------------------------------------------------

class TestCommandLine(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_exit_codes_and_last_line(self):
        ktap, ex = self.write("k", ALL_CLASSES), self.write("e", ALL_EXP)
        rc, out, err = run_main(["--ktap", ktap, "--kernel", "6.12.57+deb13-amd64", "--expectations", ex])
        self.assertEqual((rc, err), (1, ""))
        self.assertEqual(out.splitlines()[-1], "verdict: 4 passed, 3 failed, 3 skipped")
        ok = self.write("ok", "TAP version 13\n1..1\nok 1 c:pass_expected_fail\n")
        rc, out, _ = run_main(["--ktap", ok, "--kernel", "6.12", "--expectations", ex])
        self.assertEqual(rc, 0)
        self.assertEqual(out.splitlines(), [
            "unexpected pass: c:pass_expected_fail (expected FAIL on <6.19: bug 1)",
            "known failures: 0, expected skips: 0, unexpected passes: 1 (kernel 6.12, expectations %s)" % ex,
            "verdict: 1 passed, 0 failed, 0 skipped"])

    def test_bad_input_exits_2_with_one_line(self):
        ktap, ex = self.write("k", ALL_CLASSES), self.write("e", ALL_EXP)
        noreason = self.write("bad", "# x\nc:a * SKIP\n")
        for args, word in ((["--ktap", ktap, "--expectations", noreason], noreason + ":2:"),
                           (["--ktap", os.path.join(self.tmp.name, "none")], "cannot read KTAP"),
                           (["--ktap", ktap, "--kernel", "banana", "--expectations", ex], "not a kernel version"),
                           (["--ktap", ktap, "--kernel", "6.12\n7.2", "--expectations", ex], "one kernel version"),
                           (["--ktap", ktap, "--expectations", os.path.join(self.tmp.name, "none")], "cannot read expectations"),
                           (["--kernel", "6.12"], "--ktap"), (["--ktap", ktap, "--bogus"], "--bogus")):
            rc, out, err = run_main(args)
            self.assertEqual(rc, 2, args)
            self.assertEqual(out, "", args)
            self.assertEqual(len(err.splitlines()), 1, err)
            self.assertIn(word, err)

    def test_junit(self):
        ktap, ex = self.write("k", ALL_CLASSES), self.write("e", ALL_EXP)
        xml = os.path.join(self.tmp.name, "out.xml")
        rc, _, _ = run_main(["--ktap", ktap, "--kernel", "6.12.57+deb13-amd64", "--expectations", ex,
                             "--junit", xml, "--name", "vm 6.12"])
        self.assertEqual(rc, 1)
        root = ET.parse(xml).getroot()
        self.assertEqual(root.tag, "testsuites")
        self.assertEqual((root.get("name"), root.get("tests"), root.get("failures"), root.get("skipped")),
                         ("vm 6.12", "10", "3", "3"))
        suites = root.findall("testsuite")
        self.assertEqual([s.get("name") for s in suites], ["c"])
        s = suites[0]
        self.assertEqual((s.get("tests"), s.get("failures"), s.get("skipped")), ("10", "3", "3"))
        props = {p.get("name"): p.get("value") for p in s.find("properties")}
        self.assertEqual(props["kernel"], "6.12.57+deb13-amd64")
        tcs = {t.get("name"): t for t in s.findall("testcase")}
        self.assertEqual(len(tcs), 10)
        self.assertTrue(all(t.get("classname") == "c" for t in tcs.values()))
        self.assertIn("no gadget", tcs["skip_unexpected"].find("failure").get("message"))
        self.assertIn("feature 4", tcs["skip_expected"].find("skipped").get("message"))
        self.assertIn("bug 3", tcs["fail_expected"].find("skipped").get("message"))
        self.assertIsNone(tcs["pass"].find("failure"))
        self.assertEqual(len(root.findall(".//failure")), 3)
        self.assertEqual(len(root.findall(".//skipped")), 3)

    def test_cases_for_lava(self):
        ktap, ex = self.write("k", ALL_CLASSES), self.write("e", ALL_EXP)
        txt = os.path.join(self.tmp.name, "cases.txt")
        rc, _, _ = run_main(["--ktap", ktap, "--kernel", "6.12.57", "--expectations", ex,
                             "--cases", txt])
        self.assertEqual(rc, 1)
        with open(txt) as fh:
            got = {line.split()[0]: line.split()[1:] for line in fh}
        self.assertEqual(len(got), 10)
        self.assertEqual(got["c.pass"], ["pass", "pass"])
        self.assertEqual(got["c.fail_expected"], ["fail", "known-failure"])
        self.assertEqual(got["c.skip_unexpected"], ["skip", "unexpected-skip"])
        self.assertEqual(got["c.xfail"][0], "pass")
        self.assertEqual(got["c.xpass"][0], "fail")

    def test_cases_ids_are_lava_ids(self):
        text = "TAP version 13\n1..1\n# selftests: c: p\n# TAP version 13\n# 1..1\n" \
               "# ok 1 a b/c:d\nok 1 selftests: c: p\n"
        ktap, txt = self.write("k", text), os.path.join(self.tmp.name, "cases.txt")
        run_main(["--ktap", ktap, "--kernel", "6.12", "--cases", txt])
        with open(txt) as fh:
            ids = [line.split()[0] for line in fh]
        self.assertTrue(ids and all(re.match(r"^[-_a-zA-Z0-9.]+$", i) for i in ids), ids)

    def test_junit_survives_control_characters(self):
        ktap = self.write("k", "TAP version 13\n1..1\n# \x1b[31mred\x07\nnot ok 1 c:x\n")
        xml = os.path.join(self.tmp.name, "out.xml")
        rc, _, _ = run_main(["--ktap", ktap, "--kernel", "6.12", "--expectations", self.write("e", ""),
                             "--junit", xml])
        self.assertEqual(rc, 1)
        self.assertEqual(len(ET.parse(xml).getroot().findall(".//failure")), 1)

    def test_script_from_another_directory_uses_its_expectations(self):
        ktap = self.write("k", KSFT_BUILDER)
        p = subprocess.run([SCRIPT, "--ktap", ktap, "--kernel", "6.12.57+deb13-amd64"], cwd="/",
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.splitlines()[-1], "verdict: 16 passed, 0 failed, 2 skipped")
        self.assertIn(os.path.join(HERE, "expectations"), p.stdout)


# ---- real output ------------------------------------------------------------------

class TestRealSamples(unittest.TestCase):
    def setUp(self):
        self.es = verdict.load_expectations(os.path.join(HERE, "expectations"))

    def test_sample_head(self):
        cases = cases_from_ktap(SAMPLE_HEAD)
        self.assertEqual(len(cases), 15 + 18 + 1)
        self.assertEqual(cases[0].id, "folio_util:global.pm_decode_present")
        self.assertEqual(cases[15].id, "folio_builder:folio.8kB.aligned")
        self.assertEqual((cases[15].status, cases[15].message), (SKIP, "kernel offers no 8 kB folios"))
        self.assertEqual(cases[-1].id, "top:run")
        self.assertTrue(cases[-1].message.startswith("cut off: 2 of 3 results"), cases[-1].message)
        judged = judge(cases, self.es, parse_kernel_version("6.18.44-fc-v657"))
        n = verdict.counts(judged)
        self.assertEqual((n["passed"], n["failed"], n["skipped"]), (31, 1, 2))

    def test_kselftest_runner_level(self):
        cases = cases_from_ktap(KSFT_BUILDER)
        self.assertEqual(len(cases), 18)
        self.assertTrue(all(c.id.startswith("folio_builder:folio.") for c in cases), ids(cases))
        judged = judge(cases, self.es, parse_kernel_version("7.2.13-amd64"))
        self.assertEqual(verdict.report(judged, "7.2.13-amd64", "e")[-1], "verdict: 16 passed, 0 failed, 2 skipped")
        # the same run judged as a 6.1 one: every size below 2048kB but 8kB
        # should have skipped
        judged = judge(cases_from_ktap(KSFT_BUILDER), self.es, parse_kernel_version("6.1.0-37-amd64"))
        self.assertEqual(verdict.report(judged, "6.1", "e")[-1], "verdict: 16 passed, 0 failed, 2 skipped")
        self.assertEqual([c.name for c in judged if c.outcome == "unexpected pass"],
                         ["folio.%dkB.%s" % (kb, v) for kb in (16, 32, 64, 128, 256, 512, 1024)
                          for v in ("aligned", "pmd_crossing")])

    def test_real_failure_message(self):
        c = by_id(cases_from_ktap(FLAT_LAZYFREE))
        self.assertEqual(len(c), 4)
        f = c["lazyfree_pmd.redirty_no_split"]
        self.assertEqual(f.status, FAIL)
        self.assertTrue(f.message.endswith("lazyfree.c:841:redirty_no_split:AnonHugePages after reclaim"), f.message)
        self.assertIn("reclaim split the PMD of a redirtied lazyfree THP", f.message)
        self.assertNotIn("Test failed", f.message)
        self.assertEqual(c["lazyfree.16kB.abandoned_soft_dirty"].message,
                         "pagemap shows no soft-dirty bit: kernel without CONFIG_MEM_SOFT_DIRTY")


# ---- a KTAP runner for the above ----------------------------------------------------

class KtapResult(unittest.TestResult):
    """One KTAP line per test, failures as '# ' lines; subtests folded in."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self.n = 0
        self.tally = {"passed": 0, "failed": 0, "skipped": 0}
        self.current = None

    def startTest(self, test):
        super().startTest(test)
        self.current = {"status": "ok", "detail": [], "directive": ""}

    def _fail(self, err, test):
        self.current["status"] = "not ok"
        self.current["detail"] += "".join(traceback.format_exception(*err)).splitlines()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail(err, test)

    def addError(self, test, err):
        super().addError(test, err)
        self._fail(err, test)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._fail(err, test)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.current["directive"] = " # SKIP " + reason

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.current["directive"] = " # XFAIL"

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.current["status"] = "not ok"
        self.current["directive"] = " # XPASS"

    def stopTest(self, test):
        super().stopTest(test)
        self.n += 1
        cur = self.current
        name = "%s.%s" % (type(test).__name__, test._testMethodName)
        for line in cur["detail"]:
            self.stream.write("# %s\n" % line)
        self.stream.write("%s %d %s%s\n" % (cur["status"], self.n, name, cur["directive"]))
        if cur["status"] != "ok":
            self.tally["failed"] += 1
        elif cur["directive"].startswith(" # SKIP"):
            self.tally["skipped"] += 1
        else:
            self.tally["passed"] += 1
        self.stream.flush()


def main():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    out = sys.stdout
    out.write("TAP version 13\n1..%d\n" % suite.countTestCases())
    result = KtapResult(out)
    suite.run(result)
    t = result.tally
    out.write("%d passed, %d failed, %d skipped\n" % (t["passed"], t["failed"], t["skipped"]))
    return 1 if t["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
