import unittest

from deployment import plan
from deployment.tests import support


class Requests(unittest.TestCase):
    def test_the_requests_are_fixed_but_for_their_event_times(self):
        first, second = plan.requests(support.NOW_MS, 60, "a"), plan.requests(support.NOW_MS + 60_000, 60, "a")
        self.assertEqual([r["action"] for r in first], ["simulate_sensors", "simulate_store_events", "publish_events"])
        self.assertEqual(second[0]["start_time_ms"] - first[0]["start_time_ms"], 60_000)
        for a, b in zip(first, second):
            self.assertEqual({k: v for k, v in a.items() if not k.startswith("start_time")},
                             {k: v for k, v in b.items() if not k.startswith("start_time")})

    def test_sensor_readings_start_on_a_window_an_hour_back(self):
        sensors = plan.requests(support.NOW_MS + 12_345, 60, "a")[0]
        self.assertEqual(sensors["start_time_ms"] % 60_000, 0)
        self.assertEqual(sensors["start_time_ms"], support.NOW_MS - 3_600_000)
        self.assertEqual(plan.requests(support.NOW_MS, 60, "a")[1]["start_time_micros"], sensors["start_time_ms"] * 1000)

    def test_windows_follow_the_consumers_tumbling_windows(self):
        request = {"devices": 2, "readings_per_device": 4, "start_time_ms": 1_767_225_598_000, "interval_ms": 1000}
        windows = plan.sensor_windows(request, 60)
        # 58 s and 59 s fall in the window at ...540000, 60 s and 61 s in the next one.
        self.assertEqual(windows, {
            plan.WindowKey("sensor-000", 1_767_225_540_000): 2, plan.WindowKey("sensor-000", 1_767_225_600_000): 2,
            plan.WindowKey("sensor-001", 1_767_225_540_000): 2, plan.WindowKey("sensor-001", 1_767_225_600_000): 2})


class Expectations(unittest.TestCase):
    def test_expectations_come_from_the_producers_summaries(self):
        expect = support.expectations()
        self.assertEqual(sum(expect.windows.values()), 12)
        self.assertEqual(len(expect.windows), 3)
        self.assertEqual(expect.store_well_formed, 36)
        self.assertEqual(expect.poison, 4)
        self.assertEqual(expect.store_event_types, ("inventory_event", "sales_event"))
        self.assertEqual(expect.store_dates, ("2026-01-01",))
        self.assertEqual(expect.explicit_spans, (plan.OffsetSpan("explicit-events", 1, 3, 4, 2),))
        self.assertEqual(expect.explicit_events, 2)
        self.assertTrue(expect.store_spans[1].contains("store-events", 3, 59))
        self.assertFalse(expect.store_spans[1].contains("store-events", 3, 60))

    def test_store_events_near_midnight_read_both_dates(self):
        # 1 s windows: the events start at 2025-12-31T23:59:40Z and run 40 s.
        reqs = plan.requests(1_767_225_580_000 + 3_600_000, 1, "a")
        expect = plan.expectations(reqs, support.responses(), 1)
        self.assertEqual(expect.store_dates, ("2025-12-31", "2026-01-01"))

    def test_a_short_or_foreign_answer_is_refused(self):
        responses = support.responses()
        responses[0]["produced"]["sensor_reading"] = 11
        with self.assertRaisesRegex(plan.ResponseError, "11 sensor readings"):
            plan.expectations(support.requests(), responses, 60)
        responses = support.responses()
        responses[1] = {"errorType": "PublishFailed", "errorMessage": "3 of 40 records not published"}
        with self.assertRaisesRegex(plan.ResponseError, "not a summary"):
            plan.expectations(support.requests(), responses, 60)


if __name__ == "__main__":
    unittest.main()
