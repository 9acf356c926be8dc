"""Unit tests of the cost model and of figure 6's report (python -m unittest discover -s bench/python)."""

import unittest

import cost_model
import report


class CostModelTest(unittest.TestCase):
    def test_a_batch_is_billed_per_invocation_gb_second_and_request_unit(self):
        usage = {"dynamodb_write_units": 200, "dynamodb_read_units": 200, "s3_put_class": 1, "s3_get_class": 2,
                 "sqs_billed_requests": 3}
        cost = cost_model.cost_per_million(duration_ms=999.2, memory_mb=512, readings_per_batch=10_000, usage=usage)
        self.assertEqual(cost["invocations"], 100)
        # 100 invocations of 1,000 ms (rounded up to the ms) at half a GB.
        self.assertAlmostEqual(cost["lambda_compute"], 100 * 1.0 * 0.5 * 0.0000166667)
        self.assertAlmostEqual(cost["lambda_requests"], 100 * 0.20 / 1e6)
        self.assertAlmostEqual(cost["dynamodb"], 100 * (200 * 0.625 + 200 * 0.125) / 1e6)
        self.assertAlmostEqual(cost["s3"], 100 * (0.005 + 2 * 0.0004) / 1000)
        self.assertAlmostEqual(cost["sqs"], 100 * 3 * 0.50 / 1e6)
        self.assertAlmostEqual(cost["total"], sum(cost[k] for k in
                                                  ("lambda_compute", "lambda_requests", "dynamodb", "s3", "sqs")))

    def test_bigger_batches_cost_fewer_invocations(self):
        small = cost_model.cost_per_million(100, 128, 1_000, {})
        large = cost_model.cost_per_million(100, 128, 10_000, {})
        self.assertAlmostEqual(small["total"], 10 * large["total"])

    def test_no_readings_is_an_error(self):
        with self.assertRaises(ValueError):
            cost_model.cost_per_million(100, 128, 0, {})


def share_line(impl, memory_mb, ms, batch="sensors-10k", fmt="json", records=10_000):
    return {"figure": "share", "impl": impl, "batch": batch, "format": fmt, "records": records, "bytes": 4_000_000,
            "memory_mb": memory_mb, "quota_us": 0, "period_us": 100_000, "invoke": {"best_ms": ms, "median_ms": ms,
                                                                                      "runs": 1},
            "cpu": {"best_ms": ms / 2, "median_ms": ms / 2, "runs": 1}, "throttled_periods": 1}


def usage_line(impl, writes, reads, batch="sensors-10k", fmt="json", records=10_000):
    return {"figure": "share_usage", "impl": impl, "batch": batch, "format": fmt, "records": records,
            "usage": {"calls": {}, "dynamodb_write_units": writes, "dynamodb_read_units": reads, "s3_put_class": 0,
                      "s3_get_class": 0, "sqs_billed_requests": 0}}


class ShareReportTest(unittest.TestCase):
    def test_each_memory_size_gets_its_row_with_the_ratio_to_the_seed(self):
        results = [share_line("ours", 128, 1000.0), share_line("seed_python", 128, 4000.0),
                   share_line("ours", 1769, 100.0), share_line("seed_python", 1769, 300.0)]
        table, _ = report.build(results)
        rows = [r for r in table.rows if r[0].startswith("6 ")]
        self.assertEqual(len(rows), 2)
        self.assertIn("128 MB", rows[0][1])
        self.assertEqual(rows[0][4], "4.0x faster")
        self.assertEqual(rows[1][4], "3.0x faster")

    def test_a_skipped_figure_says_why_and_has_no_rows(self):
        results = [{"figure": "share", "skipped": "cgroup v1 cpu controller not writable"}]
        table, notes = report.build(results)
        self.assertFalse([r for r in table.rows if r[0].startswith("6 ")])
        self.assertTrue(any("not writable" in n for n in notes))

    def test_the_cost_table_is_computed_from_the_runs_measurements(self):
        results = [share_line("ours", 512, 500.0), share_line("seed_python", 512, 2000.0),
                   usage_line("ours", 200, 200), usage_line("seed_python", 100, 0)]
        rows = report.cost_rows(results)
        ours = next(r for r in rows if r["impl"] == "ours")
        seed = next(r for r in rows if r["impl"] == "seed_python")
        self.assertAlmostEqual(ours["cost"]["total"],
                               cost_model.cost_per_million(500.0, 512, 10_000, usage_line("ours", 200, 200)["usage"])["total"])
        self.assertGreater(seed["cost"]["lambda_compute"], ours["cost"]["lambda_compute"])


if __name__ == "__main__":
    unittest.main()
