#!/usr/bin/env python3
"""benchmarks/suite.py's arithmetic: nearest-rank percentiles (as the C++ tools compute them),
per-cell summaries from per-request samples, and the weaker-device comparison (the best split or
dynamic against local and against the better offload, per link rate)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
import suite  # noqa: E402


def cell(bundle, rate, strategy, p50, n=10):
    return {"bundle": bundle, "rate_mbit": rate, "strategy": strategy, "requests": n,
            "latency_ms": {"total": {"p50": p50, "p90": p50 * 1.2}}}


class Percentiles(unittest.TestCase):
    def test_nearest_rank(self):
        v = list(range(1, 11))
        self.assertEqual(suite.pct(v, 0.5), 5)
        self.assertEqual(suite.pct(v, 0.9), 9)
        self.assertEqual(suite.pct(v, 0.99), 10)
        self.assertEqual(suite.pct([7.0], 0.5), 7.0)
        self.assertIsNone(suite.pct([], 0.5))
        p = suite.pcts([3.0, 1.0, 2.0])
        self.assertEqual((p["p50"], p["max"], p["n"]), (2.0, 3.0, 3))


class Cells(unittest.TestCase):
    def test_rows_become_stage_percentiles_bytes_accuracy_and_throughput(self):
        rows = []
        for i in range(4):
            rows.append({"head_ms": 1.0 + i, "encode_ms": 0.1, "network_ms": 2.0, "queue_ms": 0.0, "tail_ms": 3.0,
                         "total_ms": 10.0, "request_bytes": 100 + i, "response_bytes": 40, "predicted": i % 2,
                         "label": 0, "energy_j": None})
        out = suite.summarize_cells({("fm", 5, "bf2"): {"rows": rows, "failures": 1, "discarded": [],
                                                         "choices": {}}},
                                    {"fm": {"labels": "labels.idx"}})
        c = out[0]
        self.assertEqual((c["requests"], c["failures"]), (4, 1))
        self.assertEqual(c["latency_ms"]["head"]["p50"], 2.0)
        self.assertAlmostEqual(c["wire_bytes"], 101.5)
        self.assertAlmostEqual(c["accuracy"], 50.0)
        self.assertAlmostEqual(c["throughput_rps"], 100.0)  # 4 requests in 40 ms of requests
        self.assertIsNone(c["energy_j_per_inference"])


class DynamicAgainstBestFixed(unittest.TestCase):
    @staticmethod
    def rows(totals):
        return [{"head_ms": t, "encode_ms": 0.0, "network_ms": 0.0, "queue_ms": 0.0, "tail_ms": 0.0, "total_ms": t,
                 "request_bytes": 0, "response_bytes": 0, "energy_j": None} for t in totals]

    def test_ratio_to_the_best_fixed_p50_with_a_bootstrap_interval(self):
        cells = {("fm", 10, "local"): {"rows": self.rows([3.0] * 50), "failures": 0, "discarded": [], "choices": {}},
                 ("fm", 10, "pruned30"): {"rows": self.rows([1.0, 3.0] * 25), "failures": 0, "discarded": [],
                                          "choices": {}},
                 ("fm", 10, "dynamic"): {"rows": self.rows([1.2] * 30 + [3.2] * 20), "failures": 0, "discarded": [],
                                         "choices": {"pruned30": 50}}}
        out = {c["strategy"]: c for c in suite.summarize_cells(cells, {"fm": {"labels": None}})}
        v = out["dynamic"]["vs_best_fixed"]
        self.assertEqual(v["strategy"], "pruned30")  # p50 1.0 (nearest rank), local's 3.0
        self.assertAlmostEqual(v["ratio_p50"], 1.2)
        lo, hi = v["ci95"]
        # Half of pruned30's samples are slow: its resampled p50 is 1.0 or 3.0, so the interval is wide.
        self.assertLess(lo, 0.5)
        self.assertGreater(hi, 1.1)
        self.assertNotIn("vs_best_fixed", out["pruned30"])
        # Seeded: the same interval every time.
        again = {c["strategy"]: c for c in suite.summarize_cells(cells, {"fm": {"labels": None}})}
        self.assertEqual(again["dynamic"]["vs_best_fixed"]["ci95"], [lo, hi])
        # Identical samples: the interval is the point.
        one = suite.ratio_interval([2.0] * 9, [1.0] * 9, "x")
        self.assertEqual((one["ratio_p50"], one["ci95"]), (2.0, [2.0, 2.0]))


class WeakDevice(unittest.TestCase):
    def test_best_split_or_dynamic_against_local_and_the_better_offload(self):
        res = {"config": {"rates": [1, 50]}, "single_stream": [
            cell("resnet50", 1, "local", 400.0), cell("resnet50", 1, "offload", 1300.0),
            cell("resnet50", 1, "offload-png", 800.0), cell("resnet50", 1, "bottlefit", 100.0),
            cell("resnet50", 1, "dynamic", 110.0), cell("resnet50", 1, "peer", 50.0),
            cell("resnet50", 50, "local", 400.0), cell("resnet50", 50, "offload", 60.0),
            cell("resnet50", 50, "offload-png", 90.0), cell("resnet50", 50, "bottlefit", 80.0),
            cell("resnet50", 50, "dynamic", 65.0)]}
        rows = suite.weak_device_bar(res)
        self.assertEqual([r["rate_mbit"] for r in rows], [1, 50])
        a, b = rows
        self.assertEqual((a["best"], a["offload"]), ("bottlefit", "offload-png"))  # the peer is not a candidate
        self.assertAlmostEqual(a["vs_local_pct"], 75.0)
        self.assertAlmostEqual(a["vs_offload_pct"], 87.5)
        self.assertTrue(a["beats_both"])
        self.assertEqual((b["best"], b["offload"]), ("dynamic", "offload"))
        self.assertFalse(b["beats_both"])


if __name__ == "__main__":
    unittest.main()
