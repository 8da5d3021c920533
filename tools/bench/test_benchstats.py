#!/usr/bin/env python3
"""Unit tests of tools/bench/benchstats.py and folio-bench's compare logic
against known values (textbook t tables, Wikipedia's Welch example, numpy's
percentile definition). Prints KTAP; exits 1 on any failure.

    python3 tools/bench/test_benchstats.py
"""

import importlib.machinery
import importlib.util
import math
import os
import sys
import unittest

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import benchstats as bs  # noqa: E402


def load_cli():
    path = os.path.join(here, "..", "folio-bench")
    loader = importlib.machinery.SourceFileLoader("folio_bench_cli", path)
    spec = importlib.util.spec_from_loader("folio_bench_cli", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


class Basic(unittest.TestCase):
    xs = [2, 4, 4, 4, 5, 5, 7, 9]

    def test_mean(self):
        self.assertEqual(bs.mean(self.xs), 5)

    def test_stdev_sample(self):
        # sum of squares 32, n - 1 = 7
        self.assertAlmostEqual(bs.stdev(self.xs), math.sqrt(32 / 7), places=12)
        self.assertAlmostEqual(bs.stdev(self.xs), 2.138089935299395, places=12)

    def test_stdev_single(self):
        self.assertEqual(bs.stdev([3.0]), 0.0)

    def test_percentiles_numpy_linear(self):
        self.assertEqual(bs.median([1, 2, 3, 4]), 2.5)
        self.assertAlmostEqual(bs.percentile([1, 2, 3, 4], 95), 3.85)
        self.assertEqual(bs.median([5, 1, 3]), 3)
        self.assertAlmostEqual(bs.percentile(list(range(1, 11)), 95), 9.55)
        self.assertEqual(bs.percentile([7], 95), 7)
        self.assertEqual(bs.percentile([3, 1, 2], 0), 1)
        self.assertEqual(bs.percentile([3, 1, 2], 100), 3)

    def test_bad_input(self):
        self.assertRaises(ValueError, bs.mean, [])
        self.assertRaises(ValueError, bs.percentile, [1], 101)
        self.assertRaises(ValueError, bs.welch, [1], [1, 2])


class StudentT(unittest.TestCase):
    # two-sided 95% critical values t(0.975, df), and one 90% value
    table = [(1, 12.706204736), (2, 4.302652730), (5, 2.570581836),
             (10, 2.228138852), (30, 2.042272456), (100, 1.983971519)]

    def test_quantiles(self):
        for df, t in self.table:
            self.assertAlmostEqual(bs.t_ppf(0.975, df), t, places=7, msg=df)
        self.assertAlmostEqual(bs.t_ppf(0.95, 10), 1.812461123, places=7)
        self.assertAlmostEqual(bs.t_ppf(0.025, 10), -2.228138852, places=7)

    def test_cdf(self):
        self.assertAlmostEqual(bs.t_cdf(0, 7), 0.5, places=12)
        # df = 1 is the Cauchy distribution: 1/2 + atan(t)/pi
        for t in (-3.0, -0.5, 0.7, 2.0, 40.0):
            self.assertAlmostEqual(bs.t_cdf(t, 1), 0.5 + math.atan(t) / math.pi,
                                   places=12)
        # df = 2 has a closed form: 1/2 + t / (2 sqrt(2 + t^2))
        for t in (-1.5, 0.3, 4.0):
            self.assertAlmostEqual(bs.t_cdf(t, 2),
                                   0.5 + t / (2 * math.sqrt(2 + t * t)), places=12)

    def test_confidence_interval(self):
        xs = [10.0, 12.0, 14.0]       # mean 12, sd 2, t(0.975, 2) = 4.3027
        lo, hi = bs.confidence_interval(xs)
        half = 4.302652730 * 2 / math.sqrt(3)
        self.assertAlmostEqual(lo, 12 - half, places=6)
        self.assertAlmostEqual(hi, 12 + half, places=6)
        self.assertEqual(bs.confidence_interval([5.0]), (5.0, 5.0))


class Welch(unittest.TestCase):
    # Wikipedia, "Welch's t-test", example 1: t = -2.46, df = 24.99, p = 0.021
    a1 = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1,
          19.6, 19.0, 21.7, 21.4]
    a2 = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9,
          22.1, 22.9, 20.5, 24.4]

    def test_wikipedia_example(self):
        t, df, p = bs.welch(self.a2, self.a1)     # mean(a1) - mean(a2)
        self.assertAlmostEqual(t, -2.46, places=2)
        self.assertAlmostEqual(df, 24.99, places=2)
        self.assertAlmostEqual(p, 0.021, places=3)

    def test_symmetry_and_identical(self):
        t1, df1, p1 = bs.welch(self.a1, self.a2)
        t2, df2, p2 = bs.welch(self.a2, self.a1)
        self.assertAlmostEqual(t1, -t2)
        self.assertAlmostEqual(p1, p2)
        self.assertAlmostEqual(bs.welch([1, 2, 3], [1, 2, 3])[2], 1.0)
        self.assertEqual(bs.welch([2, 2], [3, 3])[2], 0.0)

    def test_holm(self):
        # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") = 0.03 0.06 0.06 0.02
        adj = bs.holm([0.01, 0.04, 0.03, 0.005])
        for got, want in zip(adj, [0.03, 0.06, 0.06, 0.02]):
            self.assertAlmostEqual(got, want, places=12)
        self.assertEqual(bs.holm([0.5]), [0.5])
        self.assertEqual(bs.holm([0.9, 0.8]), [1.0, 1.0])
        self.assertEqual(bs.holm([0.01, 0.2]), [0.02, 0.2])

    def test_summary(self):
        s = bs.summary([1.0, 2.0, 3.0, 4.0])
        self.assertEqual((s["n"], s["min"], s["max"], s["median"]), (4, 1, 4, 2.5))
        self.assertAlmostEqual(s["stdev_pct"], 100 * bs.stdev([1, 2, 3, 4]) / 2.5)


class Compare(unittest.TestCase):
    """folio-bench compare's decision: slower beyond the threshold and significant."""

    def setUp(self):
        self.cli = load_cli()

    def test_verdicts(self):
        base = [100, 102, 98, 101, 99, 100, 103, 97]
        same = [101, 99, 100, 102, 98, 100, 97, 103]
        slow = [x * 1.5 for x in base]
        fast = [x * 0.5 for x in base]
        p = lambda a, b: bs.welch(a, b)[2]  # noqa: E731
        self.assertEqual(self.cli.judge(base, same, p(base, same), 5, 0.05), "same")
        self.assertEqual(self.cli.judge(base, slow, p(base, slow), 5, 0.05), "SLOWER")
        self.assertEqual(self.cli.judge(base, fast, p(base, fast), 5, 0.05), "faster")
        # 3% slower, significant, under a 5% threshold: not a regression
        up = [x * 1.03 for x in base]
        self.assertLess(p(base, up), 0.05)
        self.assertEqual(self.cli.judge(base, up, p(base, up), 5, 0.05),
                         "slower, within threshold")
        # 50% slower but, after adjustment for many tests, not significant
        self.assertEqual(self.cli.judge(base, slow, 0.2, 5, 0.05), "same")


if __name__ == "__main__":
    loader = unittest.TestLoader()
    tests = [t for case in (Basic, StudentT, Welch, Compare)
             for t in loader.loadTestsFromTestCase(case)]
    print("TAP version 13")
    print("1..%d" % len(tests))
    failed = 0
    for i, test in enumerate(tests, 1):
        result = unittest.TestResult()
        test.run(result)
        name = "benchstats." + test.id().split(".", 1)[1]
        problems = result.failures + result.errors
        if problems:
            failed += 1
            for line in problems[0][1].rstrip().splitlines():
                print("# " + line)
            print("not ok %d %s" % (i, name))
        else:
            print("ok %d %s" % (i, name))
    sys.exit(1 if failed else 0)
