"""The readers: CloudWatch and CloudWatch Logs with recorded responses (botocore Stubber), the sinks
against moto's DynamoDB, S3 and SQS, and the local stand-ins for CloudWatch."""

import datetime as dt
import gzip
import json
import pathlib
import tempfile
import unittest

import boto3
from botocore.stub import ANY, Stubber
from moto import mock_aws

import contract as contracts  # the harness's one contract reader (scripts/local is the top level)
from deployment import diagnosis, plan, sources
from deployment.tests import support

CREDENTIALS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
FUNCTION = "consumer-stack-ConsumerFunction9C5E7B8A-Xq3rT0aZ1bCd"
NOW = dt.datetime(2026, 1, 1, 1, 5, tzinfo=dt.timezone.utc)


def mappings():
    return [diagnosis.Mapping.from_aws(m) for m in support.healthy_mappings()]


class CloudWatch(unittest.TestCase):
    def test_offset_lag_per_mapping_where_published_else_the_functions(self):
        cloudwatch, logs = boto3.client("cloudwatch", **CREDENTIALS), boto3.client("logs", **CREDENTIALS)
        cw, lg = Stubber(cloudwatch), Stubber(logs)
        function = {"Name": "FunctionName", "Value": FUNCTION}
        sensor = mappings()[0].uuid
        per_mapping = [function, {"Name": "EventSourceMappingUUID", "Value": sensor}]
        cw.add_response("list_metrics", {"Metrics": [
            {"Namespace": "AWS/Lambda", "MetricName": "OffsetLag", "Dimensions": [function]},
            {"Namespace": "AWS/Lambda", "MetricName": "OffsetLag", "Dimensions": per_mapping}]},
            {"Namespace": "AWS/Lambda", "MetricName": "OffsetLag", "Dimensions": [function]})
        point = lambda minute, value: {"Timestamp": NOW.replace(minute=minute), "Maximum": value}  # noqa: E731
        cw.add_response("get_metric_statistics", {"Datapoints": [point(3, 40.0), point(4, 12.0)]},
                        {"Namespace": "AWS/Lambda", "MetricName": "OffsetLag", "Dimensions": [function], "StartTime": ANY,
                         "EndTime": ANY, "Period": 60, "Statistics": ["Maximum"]})
        cw.add_response("get_metric_statistics", {"Datapoints": [point(4, 7.0)]},
                        {"Namespace": "AWS/Lambda", "MetricName": "OffsetLag", "Dimensions": per_mapping, "StartTime": ANY,
                         "EndTime": ANY, "Period": 60, "Statistics": ["Maximum"]})
        cw.add_response("get_metric_statistics", {"Datapoints": [{"Timestamp": NOW, "Sum": 2.0}, {"Timestamp": NOW, "Sum": 1.0}]},
                        {"Namespace": "AWS/Lambda", "MetricName": "Errors", "Dimensions": [function], "StartTime": ANY,
                         "EndTime": ANY, "Period": 60, "Statistics": ["Sum"]})
        lg.add_response("filter_log_events", {"events": [
            {"message": '{"level":"ERROR","fields":{"message":"first"}}'},
            {"message": '{"level":"ERROR","fields":{"message":"sink write failed","error":"ProvisionedThroughputExceeded"}}\n'}]},
            {"logGroupName": f"/aws/lambda/{FUNCTION}", "startTime": ANY, "filterPattern": '?ERROR ?"Task timed out"'})
        with cw, lg:
            telemetry = sources.CloudWatchTelemetry(cloudwatch, logs, FUNCTION, f"/aws/lambda/{FUNCTION}").read(
                mappings(), NOW.timestamp() - 120, now=NOW)
        self.assertEqual(telemetry.offset_lag[sensor], 7.0)
        self.assertEqual({v for k, v in telemetry.offset_lag.items() if k != sensor}, {12.0})
        self.assertEqual(telemetry.function_errors, 3)
        self.assertIn("ProvisionedThroughputExceeded", telemetry.last_error)
        self.assertEqual(telemetry.log_source, f"CloudWatch Logs /aws/lambda/{FUNCTION}")

    def test_a_refused_read_is_reported_not_fatal(self):
        cloudwatch, logs = boto3.client("cloudwatch", **CREDENTIALS), boto3.client("logs", **CREDENTIALS)
        cw, lg = Stubber(cloudwatch), Stubber(logs)
        cw.add_client_error("list_metrics", "AccessDenied", "not authorized to perform cloudwatch:ListMetrics", 403)
        lg.add_client_error("filter_log_events", "ResourceNotFoundException", "The specified log group does not exist.", 400)
        with cw, lg:
            telemetry = sources.CloudWatchTelemetry(cloudwatch, logs, FUNCTION, "/aws/lambda/x").read(
                mappings(), NOW.timestamp() - 120, now=NOW)
        self.assertIsNone(telemetry.function_errors)
        self.assertIn("cloudwatch:ListMetrics", telemetry.lag_source)
        self.assertIn("does not exist", telemetry.log_source)


class Sinks(unittest.TestCase):
    def setUp(self):
        self.aws = mock_aws()
        self.aws.start()
        self.addCleanup(self.aws.stop)
        self.dynamodb = boto3.client("dynamodb", **CREDENTIALS)
        for table in contracts.load().tables.values():
            self.dynamodb.create_table(TableName=table.name, BillingMode="PAY_PER_REQUEST", **table.key_schema())
        self.s3 = boto3.client("s3", **CREDENTIALS)
        self.s3.create_bucket(Bucket="consumer-stack-storeeventsbucket-1a2b3c4d5e6f")
        self.sqs = boto3.client("sqs", **CREDENTIALS)
        self.poison = self.sqs.create_queue(QueueName="pipeline-poison.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
        self.target = sources.Target("p", FUNCTION, "sensor-window-aggregates", "explicit-events",
                                     "consumer-stack-storeeventsbucket-1a2b3c4d5e6f", "store-events/", self.poison, 60, "moto")
        self.reader = sources.SinkReader(self.dynamodb, self.s3, self.sqs, self.target)
        self.expect = support.expectations()

    def test_windows_are_read_per_device_within_the_runs_windows(self):
        keys = list(self.expect.windows)
        first = keys[0]
        self.dynamodb.put_item(TableName="sensor-window-aggregates", Item={
            "device_id": {"S": first.device}, "window_start": {"N": str(first.window_start_ms)}, "count": {"N": "4"}})
        self.dynamodb.put_item(TableName="sensor-window-aggregates", Item={  # an older window of the same device
            "device_id": {"S": first.device}, "window_start": {"N": str(first.window_start_ms - 60_000)}, "count": {"N": "9"}})
        self.assertEqual(self.reader.window_counts(keys), {first: 4})

    def test_explicit_events_are_found_by_coordinates(self):
        self.dynamodb.put_item(TableName="explicit-events", Item={"source": {"S": "explicit-events-1"}, "offset": {"N": "3"}})
        self.dynamodb.put_item(TableName="explicit-events", Item={"source": {"S": "explicit-events-0"}, "offset": {"N": "4"}})
        self.assertEqual(self.reader.explicit_items(self.expect.explicit_spans), 1)

    def test_the_archive_counts_this_runs_coordinates_once(self):
        def put(key, rows):
            body = gzip.compress("".join(json.dumps(r) + "\n" for r in rows).encode())
            self.s3.put_object(Bucket=self.target.bucket, Key=key, Body=body)
        rows = [{"topic": "store-events", "partition": 1, "offset": o} for o in range(95, 121)]  # 100..119 are ours
        put("store-events/event_type=sales_event/date=2026-01-01/store-events-1-0.ndjson.gz", rows)
        put("store-events/event_type=inventory_event/date=2026-01-01/store-events-3-0.ndjson.gz",
            [{"topic": "store-events", "partition": 3, "offset": 59}, {"topic": "store-events", "partition": 3, "offset": 60}])
        put("store-events/event_type=sales_event/date=2025-12-30/store-events-1-0.ndjson.gz", rows)  # another day
        self.assertEqual(self.reader.archived(self.expect), 20 + 1)

    def test_queue_depth_counts_visible_and_in_flight_messages(self):
        for n in range(3):
            self.sqs.send_message(QueueUrl=self.poison, MessageBody="{}", MessageGroupId="store-events-1",
                                  MessageDeduplicationId=f"store-events-1-{n}")
        self.sqs.receive_message(QueueUrl=self.poison, MaxNumberOfMessages=1)
        self.assertEqual(self.reader.queue_depth(self.poison), 3)
        arn = self.sqs.get_queue_attributes(QueueUrl=self.poison, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.assertEqual(sources.queue_url_from_arn(self.sqs, arn), self.poison)
        with self.assertRaises(sources.SetupError):
            sources.queue_url_from_arn(self.sqs, "arn:aws:sns:us-east-1:222222222222:alarms")


class LocalStandIns(unittest.TestCase):
    def test_status_files_and_the_function_log_since_the_check_began(self):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = pathlib.Path(tmp)
            env = tmp / "stack.env"
            env.write_text("export AWS_ENDPOINT_URL='http://127.0.0.1:43500'\nexport AWS_REGION='us-east-1'\n"
                           "export POISON_QUEUE_URL='http://127.0.0.1:43500/123456789012/pipeline-poison.fifo'\n")
            log = tmp / "lambda-watch.log"
            log.write_text('{"level":"ERROR","fields":{"message":"from an earlier run"}}\n')
            status = tmp / "esm-sensor.json"
            status.write_text(json.dumps({"topic": "sensor-readings", "totalLag": 25, "counters": {"functionErrors": 2}}))
            local = sources.LocalDeployment(env, "http://127.0.0.1:43150", [], [status, tmp / "missing.json"], log)
            with open(log, "a") as out:
                out.write('INFO consumer: batch stored\n{"level":"ERROR","fields":{"message":"PostgreSQL: connection refused"}}\n')
            telemetry = local.telemetry(mappings(), 0)
        self.assertEqual(telemetry.offset_lag[mappings()[0].uuid], 25.0)
        self.assertIsNone(telemetry.offset_lag[mappings()[1].uuid])
        self.assertEqual(telemetry.function_errors, 2)
        self.assertIn("PostgreSQL: connection refused", telemetry.last_error)
        self.assertIn("stand-in for CloudWatch", telemetry.lag_source)
        self.assertEqual(local.target.poison_queue_url, "http://127.0.0.1:43500/123456789012/pipeline-poison.fifo")


if __name__ == "__main__":
    unittest.main()
