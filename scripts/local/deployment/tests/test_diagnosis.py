import unittest

from deployment import diagnosis
from deployment.tests import support

SENSOR_UUID = "6d9bce8e-836b-442c-8070-74e77903c815"


def mappings(raw=None) -> list[diagnosis.Mapping]:
    return [diagnosis.Mapping.from_aws(m) for m in (raw if raw is not None else support.healthy_mappings())]


def judge(seen, maps=None, **telemetry):
    maps = mappings() if maps is None else maps
    return diagnosis.verdict(support.expectations(), seen, maps, support.telemetry(maps, **telemetry), support.NAMES)


class Verdict(unittest.TestCase):
    def test_everything_arrived(self):
        result = judge(support.arrived(support.expectations()))
        self.assertTrue(result.ok, result.problems)
        self.assertEqual(result.problems, ())
        screen = diagnosis.render("post-deploy check", ["simulate_sensors -> sensor-readings: 12"], result,
                                  mappings(), support.telemetry(mappings()), 12)
        self.assertIn("ok   DynamoDB sensor-window-aggregates: 12/12 readings in 3/3 windows", screen)
        self.assertIn("ok   S3 s3://consumer-stack-storeeventsbucket-1a2b3c4d5e6f/store-events/: 36/36 store events", screen)
        self.assertIn("ok   SQS pipeline-poison.fifo: +4 (expected +4", screen)
        self.assertIn(f"{SENSOR_UUID}  sensor-readings  Enabled   USER_INITIATED  last: OK", screen)
        self.assertTrue(screen.rstrip().endswith("PASS: every sink got this run's data and nothing unexpected was set aside"))
        self.assertLessEqual(len(screen.splitlines()), 30, "one screen")

    def test_older_data_in_the_same_windows_is_not_counted(self):
        expect = support.expectations()
        # Before the run a window already held 7 readings; now 8: only one of this run's arrived.
        key = next(iter(expect.windows))
        seen = support.arrived(expect, windows_after={**support.arrived(expect).windows_after, key: 8})
        result = judge(seen)
        self.assertFalse(result.ok)
        self.assertFalse(result.sinks[0].reached)
        self.assertIn("2/3 windows", result.sinks[0].line)

    def test_a_missing_topic_is_named_with_its_mapping(self):
        raw = support.healthy_mappings()
        raw[0]["LastProcessingResult"] = "PROBLEM: Topic not found. Please make sure the topic exists."
        expect = support.expectations()
        seen = support.arrived(expect, windows_after=dict(support.arrived(expect).windows_before))
        result = judge(seen, mappings(raw), last_error=None)
        self.assertFalse(result.ok)
        self.assertIn(f"sensor-readings (windows not reached): mapping {SENSOR_UUID}: PROBLEM: Topic not found.", result.problems[0])
        self.assertIn("topic-admin creates the contract topics", result.problems[0])

    def test_authentication_failures_in_aws_cn_point_at_the_scram_copy(self):
        raw = support.healthy_mappings()
        raw[0] = support.recorded("get-event-source-mapping.cn-sasl-failed.json")
        expect = support.expectations()
        result = judge(support.arrived(expect, windows_after={}), mappings(raw))
        problem = next(p for p in result.problems if "SASL" in p)
        self.assertIn("mapping 3c8e1f5a-2b4d-4f6e-9a7c-8d0e1f2a3b4c: PROBLEM: SASL authentication failed", problem)
        self.assertIn("handshakeRevision", problem)

    def test_a_connection_error_is_reported_even_when_data_arrived_through_it_before(self):
        raw = support.healthy_mappings()
        raw[2]["LastProcessingResult"] = ("PROBLEM: Connection error. Your VPC must be able to connect to Lambda and STS, "
                                          "as well as Secrets Manager if authentication is required.")
        result = judge(support.arrived(support.expectations()), mappings(raw))
        self.assertFalse(result.ok)
        self.assertIn("Lambda/STS/Secrets Manager endpoints", result.problems[0])

    def test_disabled_and_creating_mappings(self):
        for state, reason, hint in (("Disabled", "USER_INITIATED", "update-event-source-mapping"),
                                    ("Creating", "USER_INITIATED", "pollers start a few minutes")):
            raw = support.healthy_mappings()
            raw[1]["State"], raw[1]["StateTransitionReason"] = state, reason
            result = judge(support.arrived(support.expectations(), archived=0), mappings(raw))
            self.assertFalse(result.ok)
            self.assertIn(f"State {state} (USER_INITIATED)", result.problems[0])
            self.assertIn(hint, result.problems[0])

    def test_a_topic_without_a_mapping(self):
        result = judge(support.arrived(support.expectations(), explicit=0), mappings(support.healthy_mappings()[:2]))
        self.assertFalse(result.ok)
        self.assertIn("no event source mapping reads explicit-events", result.problems)

    def test_a_lagging_mapping_reports_its_lag_errors_and_last_log_line(self):
        maps = mappings()
        seen = support.arrived(support.expectations(), archived=20)
        result = diagnosis.verdict(support.expectations(), seen, maps, support.telemetry(
            maps, offset_lag={m.uuid: 16.0 for m in maps}, function_errors=3,
            last_error='{"level":"ERROR","fields":{"message":"batch failed","error":"PostgreSQL: connection refused"}}'),
            support.NAMES)
        self.assertFalse(result.ok)
        self.assertIn("OffsetLag 16", result.problems[0])
        self.assertIn("the consumer function failed 3 time(s)", result.problems[1])
        self.assertIn("PostgreSQL: connection refused", result.problems[2])

    def test_unexpected_poison_and_given_up_batches_fail(self):
        expect = support.expectations()
        result = judge(support.arrived(expect, poison_added=expect.poison + 2))
        self.assertFalse(result.ok)
        self.assertIn("2 unexpected poison record(s)", result.problems[0])
        result = judge(support.arrived(expect, on_failure_added=1))
        self.assertFalse(result.ok)
        self.assertIn("1 batch(es) went to the on-failure queue", result.problems[0])

    def test_more_readings_than_published_fail(self):
        expect = support.expectations()
        after = {k: v + 1 for k, v in support.arrived(expect).windows_after.items()}
        result = judge(support.arrived(expect, windows_after=after))
        self.assertFalse(result.ok)
        self.assertIn("more than this run published", result.problems[0])

    def test_every_documented_state_has_a_meaning(self):
        for state in diagnosis.MAPPING_STATES:
            self.assertTrue(state == "Enabled" or state in diagnosis.STATE_HINTS, state)


if __name__ == "__main__":
    unittest.main()
