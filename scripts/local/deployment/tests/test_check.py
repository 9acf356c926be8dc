"""The check's loop against an in-memory deployment: it waits while data arrives, passes when all
of it did, and fails with the mappings' reasons when some never does."""

import io
import unittest
from unittest import mock

from deployment import check, diagnosis, sources
from deployment.tests import support


class FakeSinks:
    def __init__(self, deployment):
        self.d = deployment

    def window_counts(self, keys):
        arrived = self.d.polls >= self.d.arrives_after and "sensor-readings" not in self.d.broken
        return {k: 5 + (self.d.expect_windows.get(k, 0) if arrived else 0) for k in keys}

    def archived(self, expect):
        return expect.store_well_formed if self.d.polls >= self.d.arrives_after else 0

    def explicit_items(self, spans):
        return sum(s.count for s in spans) if self.d.polls >= self.d.arrives_after else 0

    def queue_depth(self, url):
        base = 10
        if url == self.d.target.poison_queue_url and self.d.polls >= self.d.arrives_after and self.d.invoked:
            return base + 4
        return base


class FakeQueues:
    def get_queue_url(self, QueueName, QueueOwnerAWSAccountId):
        return {"QueueUrl": f"https://sqs.us-east-1.amazonaws.com/{QueueOwnerAWSAccountId}/{QueueName}"}


class FakeDeployment:
    def __init__(self, arrives_after: int, broken: tuple[str, ...] = ()):
        self.target = sources.Target("producer-stack-ProducerFunction-1", "consumer-stack-ConsumerFunction-1",
                                     "sensor-window-aggregates", "explicit-events", "consumer-stack-storeeventsbucket-1a2b",
                                     "store-events/", "https://sqs.us-east-1.amazonaws.com/222222222222/pipeline-poison.fifo",
                                     60, "fake deployment")
        self.sinks, self.sqs = FakeSinks(self), FakeQueues()
        self.arrives_after, self.broken = arrives_after, broken
        self.polls, self.invoked, self.expect_windows = 0, False, {}
        self.responses = {r["action"]: r for r in support.responses()}

    def invoke_producer(self, request):
        self.invoked = True
        if request["action"] == "simulate_sensors":
            from deployment import plan
            self.expect_windows = plan.sensor_windows(request, 60)
        return self.responses[request["action"]]

    def mappings(self):
        raw = support.healthy_mappings()
        for m in raw:
            if m["Topics"][0] in self.broken:
                m["LastProcessingResult"] = "PROBLEM: Topic not found. Please make sure the topic exists."
        return raw

    def telemetry(self, mappings, since):
        self.polls += 1
        return support.telemetry(mappings, lag_source="fake", errors_source="fake", log_source="fake")


class Check(unittest.TestCase):
    def setUp(self):
        patcher = mock.patch.object(sources, "wait_seconds", lambda interval, deadline: None)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_it_waits_for_the_data_and_passes(self):
        out = io.StringIO()
        deployment = FakeDeployment(arrives_after=3)
        self.assertEqual(check.run(deployment, timeout=60, out=out), 0)
        self.assertEqual(deployment.polls, 4, "three polls without the data, then the one that saw it")
        screen = out.getvalue()
        self.assertIn("simulate_store_events -> store-events: 13 inventory_event, 23 sales_event, 4 malformed", screen)
        self.assertIn("SQS pipeline-esm-on-failure: +0 batches given up", screen)
        self.assertIn("PASS", screen)

    def test_a_broken_mapping_fails_with_its_reason(self):
        out = io.StringIO()
        with mock.patch("time.monotonic", side_effect=[0.0] + [1000.0] * 10):
            code = check.run(FakeDeployment(arrives_after=1, broken=("sensor-readings",)), timeout=60, out=out)
        self.assertEqual(code, 1)
        screen = out.getvalue()
        self.assertIn("FAIL DynamoDB sensor-window-aggregates: 0/12 readings in 0/3 windows", screen)
        self.assertIn("mapping 6d9bce8e-836b-442c-8070-74e77903c815: PROBLEM: Topic not found.", screen)
        self.assertTrue(screen.rstrip().endswith("FAIL: see above"))

    def test_setup_errors_exit_2(self):
        def missing():
            raise sources.SetupError("CloudFormation stack consumer-stack: Stack with id consumer-stack does not exist")
        with mock.patch("sys.stderr", new_callable=io.StringIO) as err:
            self.assertEqual(check.main_check(missing, 1), 2)
        self.assertIn("does not exist", err.getvalue())


if __name__ == "__main__":
    unittest.main()
