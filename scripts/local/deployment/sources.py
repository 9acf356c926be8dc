"""Where the check reads a deployment: AWS with the user's profiles, or the local stack.

Both targets go through the same boto3 calls for what both have (Lambda Invoke, the event source
mapping reads, DynamoDB, S3, SQS). They differ where the local stack has no such service:

| Read                   | AWS                                        | Local stand-in                              |
|------------------------|--------------------------------------------|---------------------------------------------|
| stack outputs          | CloudFormation DescribeStacks              | the local stack's env file                  |
| Invoke                 | Lambda                                     | `cargo lambda watch`                        |
| mappings               | Lambda ListEventSourceMappings             | each esm-emulator's mapping API             |
| OffsetLag, Errors      | CloudWatch AWS/Lambda                      | each esm-emulator's status file             |
| last error log line    | CloudWatch Logs (the function's log group) | the `cargo lambda watch` log file           |
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import pathlib
import time

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from . import diagnosis, plan

CONTRACT = plan.CONTRACT
ENV = CONTRACT["envVars"]
# Messages of the consumer that mean something failed (tracing's JSON `"level":"ERROR"`, plain
# text, and Lambda's own timeout line).
ERROR_MARKERS = ('"level":"ERROR"', " ERROR ", "Task timed out")


class SetupError(Exception):
    """The deployment cannot be checked at all (a stack or output is missing, a call is refused)."""


@dataclasses.dataclass(frozen=True)
class Target:
    producer_function: str
    consumer_function: str
    windows_table: str
    explicit_table: str
    bucket: str
    archive_prefix: str
    poison_queue_url: str
    window_seconds: int
    description: str


def queue_depth(sqs, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed",
    ])["Attributes"]
    return sum(int(v) for v in attributes.values())


def queue_url_from_arn(sqs, arn: str) -> str:
    """`arn:<partition>:sqs:<region>:<account>:<name>` -> the queue's URL (GetQueueUrl)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        raise SetupError(f"the on-failure destination {arn} is not an SQS queue ARN")
    return sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]


class SinkReader:
    """DynamoDB, S3 and SQS reads of one deployment (AWS or moto)."""

    def __init__(self, dynamodb, s3, sqs, target: Target):
        self.dynamodb, self.s3, self.sqs, self.target = dynamodb, s3, sqs, target

    def window_counts(self, keys: list[plan.WindowKey]) -> dict[plan.WindowKey, int]:
        table = CONTRACT["tables"]["windowAggregates"]
        out: dict[plan.WindowKey, int] = {}
        for device in sorted({k.device for k in keys}):
            starts = [k.window_start_ms for k in keys if k.device == device]
            page = self.dynamodb.query(
                TableName=self.target.windows_table, ConsistentRead=True,
                KeyConditionExpression="#d = :d AND #w BETWEEN :lo AND :hi",
                ExpressionAttributeNames={"#d": table["partitionKey"], "#w": table["sortKey"]},
                ExpressionAttributeValues={":d": {"S": device}, ":lo": {"N": str(min(starts))}, ":hi": {"N": str(max(starts))}})
            for item in page["Items"]:
                key = plan.WindowKey(device, int(item[table["sortKey"]]["N"]))
                out[key] = int(item.get("count", {"N": "0"})["N"])
        return out

    def explicit_items(self, spans: tuple[plan.OffsetSpan, ...]) -> int:
        table = CONTRACT["tables"]["explicitEvents"]
        found = 0
        for span in spans:
            for offset in range(span.first, span.last + 1):
                item = self.dynamodb.get_item(TableName=self.target.explicit_table, ConsistentRead=True, Key={
                    table["partitionKey"]: {"S": f"{span.topic}-{span.partition}"},
                    table["sortKey"]: {"N": str(offset)}}).get("Item")
                found += item is not None
        return found

    def archived(self, expect: plan.Expectations) -> int:
        """Rows of the store-event archive at this run's coordinates
        (keys: <prefix>event_type=<type>/date=<yyyy-mm-dd>/<topic>-<partition>-<block>.ndjson.gz)."""
        coordinates = set()
        wanted = {f"{s.topic}-{s.partition}-" for s in expect.store_spans}
        for event_type in expect.store_event_types:
            for date in expect.store_dates:
                prefix = f"{self.target.archive_prefix}event_type={event_type}/date={date}/"
                for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.target.bucket, Prefix=prefix):
                    for obj in page.get("Contents", []):
                        name = obj["Key"].rsplit("/", 1)[-1]
                        if not any(name.startswith(w) for w in wanted):
                            continue
                        body = gzip.decompress(self.s3.get_object(Bucket=self.target.bucket, Key=obj["Key"])["Body"].read())
                        for line in body.splitlines():
                            if not line.strip():
                                continue
                            row = json.loads(line)
                            c = (row["topic"], int(row["partition"]), int(row["offset"]))
                            if any(s.contains(*c) for s in expect.store_spans):
                                coordinates.add(c)
        return len(coordinates)

    def queue_depth(self, url: str) -> int:
        return queue_depth(self.sqs, url)


# ── AWS ─────────────────────────────────────────────────────────────────────
class CloudWatchTelemetry:
    """OffsetLag and Errors from CloudWatch AWS/Lambda, the last error line from CloudWatch Logs."""

    def __init__(self, cloudwatch, logs, function: str, log_group: str):
        self.cloudwatch, self.logs, self.function, self.log_group = cloudwatch, logs, function, log_group

    def read(self, mappings: list[diagnosis.Mapping], since: float, now: dt.datetime | None = None) -> diagnosis.Telemetry:
        start = dt.datetime.fromtimestamp(since - 60, dt.timezone.utc)
        end = now or dt.datetime.now(dt.timezone.utc)
        function = [{"Name": "FunctionName", "Value": self.function}]
        lags: dict[str, float | None] = {m.uuid: None for m in mappings}
        source = "CloudWatch AWS/Lambda OffsetLag (Maximum, last 5 minutes)"
        try:
            for metric in self.cloudwatch.list_metrics(Namespace="AWS/Lambda", MetricName="OffsetLag", Dimensions=function)["Metrics"]:
                points = self.cloudwatch.get_metric_statistics(
                    Namespace="AWS/Lambda", MetricName="OffsetLag", Dimensions=metric["Dimensions"],
                    StartTime=end - dt.timedelta(minutes=5), EndTime=end, Period=60, Statistics=["Maximum"])["Datapoints"]
                latest = max(points, key=lambda p: p["Timestamp"])["Maximum"] if points else None
                values = {d["Value"] for d in metric["Dimensions"]}
                per_mapping = [m.uuid for m in mappings if m.uuid in values]
                # Without a per-mapping dimension the function-wide value stands for every mapping.
                for uuid in per_mapping or [m.uuid for m in mappings if lags[m.uuid] is None]:
                    lags[uuid] = latest
            errors_points = self.cloudwatch.get_metric_statistics(
                Namespace="AWS/Lambda", MetricName="Errors", Dimensions=function, StartTime=start, EndTime=end,
                Period=60, Statistics=["Sum"])["Datapoints"]
            errors: int | None = int(sum(p["Sum"] for p in errors_points))
        except (ClientError, BotoCoreError) as error:
            source, errors = f"CloudWatch unavailable: {error}", None
        last_error = None
        try:
            pages = self.logs.get_paginator("filter_log_events").paginate(
                logGroupName=self.log_group, startTime=int(start.timestamp() * 1000), filterPattern='?ERROR ?"Task timed out"')
            for page in pages:
                for event in page.get("events", []):
                    last_error = event["message"].strip()[:400]
            log_source = f"CloudWatch Logs {self.log_group}"
        except (ClientError, BotoCoreError) as error:
            log_source = f"CloudWatch Logs {self.log_group} unavailable: {error}"
        return diagnosis.Telemetry(lags, source, errors, "CloudWatch AWS/Lambda Errors (Sum since the check began)",
                                   last_error, log_source)


def stack_outputs(cloudformation, stack: str) -> dict[str, str]:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as error:
        raise SetupError(f"CloudFormation stack {stack}: {error.response['Error'].get('Message', error)} "
                         "(deployed? right profile and region?)") from error
    return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}


def required(outputs: dict[str, str], key: str, stack: str) -> str:
    if key not in outputs:
        raise SetupError(f"stack {stack} has no output {key}; outputs: {', '.join(sorted(outputs)) or 'none'}")
    return outputs[key]


class AwsDeployment:
    """A deployment in one or two AWS accounts, each read with its own session."""

    def __init__(self, producer: boto3.Session, consumer: boto3.Session, producer_stack: str, consumer_stack: str):
        self.producer, self.consumer = producer, consumer
        self.lambda_producer = producer.client("lambda")
        self.lambda_consumer = consumer.client("lambda")
        producer_outputs = stack_outputs(producer.client("cloudformation"), producer_stack)
        consumer_outputs = stack_outputs(consumer.client("cloudformation"), consumer_stack)
        consumer_function = required(consumer_outputs, "ConsumerFunctionName", consumer_stack)
        configuration = self.lambda_consumer.get_function_configuration(FunctionName=consumer_function)
        variables = (configuration.get("Environment") or {}).get("Variables") or {}
        self.log_group = (configuration.get("LoggingConfig") or {}).get("LogGroup") or f"/aws/lambda/{consumer_function}"
        sqs = consumer.client("sqs")
        # Table and queue names are fixed by the contract (cdk/lib/constructs/consumer-data.ts).
        self.target = Target(
            producer_function=required(producer_outputs, "ProducerFunctionName", producer_stack),
            consumer_function=consumer_function,
            windows_table=CONTRACT["tables"]["windowAggregates"]["name"],
            explicit_table=CONTRACT["tables"]["explicitEvents"]["name"],
            bucket=required(consumer_outputs, "StoreEventsBucketName", consumer_stack),
            archive_prefix=CONTRACT["bucket"]["storeEventsPrefix"],
            poison_queue_url=sqs.get_queue_url(QueueName=CONTRACT["queues"]["poison"])["QueueUrl"],
            window_seconds=int(variables.get(ENV["windowSeconds"], CONTRACT["defaults"]["windowSeconds"])),
            description=f"AWS {consumer.region_name}: {producer_stack} (profile {producer.profile_name}) -> "
                        f"{consumer_stack} (profile {consumer.profile_name})",
        )
        self.sinks = SinkReader(consumer.client("dynamodb"), consumer.client("s3"), sqs, self.target)
        self.cloudwatch = CloudWatchTelemetry(consumer.client("cloudwatch"), consumer.client("logs"),
                                              consumer_function, self.log_group)
        self.sqs = sqs

    def invoke_producer(self, request: dict) -> dict:
        return invoke(self.lambda_producer, self.target.producer_function, request)

    def mappings(self) -> list[dict]:
        return list_mappings(self.lambda_consumer, self.target.consumer_function)

    def telemetry(self, mappings: list[diagnosis.Mapping], since: float) -> diagnosis.Telemetry:
        return self.cloudwatch.read(mappings, since)


def invoke(client, function: str, request: dict) -> dict:
    try:
        response = client.invoke(FunctionName=function, Payload=json.dumps(request).encode())
    except (ClientError, BotoCoreError) as error:
        raise SetupError(f"invoking {function}: {error}") from error
    payload = response["Payload"].read().decode(errors="replace")
    if response.get("FunctionError"):
        raise SetupError(f"{function} failed on {request['action']}: {payload[:800]}")
    try:
        return json.loads(payload)
    except ValueError as error:
        raise SetupError(f"{function} answered {request['action']} with something that is not JSON: {payload[:400]}") from error


def list_mappings(client, function: str) -> list[dict]:
    out, marker = [], None
    while True:
        page = client.list_event_source_mappings(FunctionName=function, **({"Marker": marker} if marker else {}))
        out += page.get("EventSourceMappings", [])
        marker = page.get("NextMarker")
        if not marker:
            return out


# ── Local stack ─────────────────────────────────────────────────────────────
def read_env_file(path: pathlib.Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export "):]
        if "=" in line and not line.startswith("#"):
            name, value = line.split("=", 1)
            values[name] = value.strip().strip("'\"")
    return values


class LocalDeployment:
    """The local pipeline: moto for DynamoDB/S3/SQS, `cargo lambda watch` for Invoke, each
    esm-emulator's mapping API for the mappings, and their status files and the function log as the
    stand-ins for CloudWatch."""

    def __init__(self, env_file: pathlib.Path, lambda_endpoint: str, mapping_apis: list[str],
                 status_files: list[pathlib.Path], function_log: pathlib.Path | None):
        env = read_env_file(env_file)
        session = boto3.Session(aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", "test"),
                                aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", "test"),
                                region_name=env.get("AWS_REGION", "us-east-1"))
        aws = env.get("AWS_ENDPOINT_URL")
        if not aws:
            raise SetupError(f"{env_file} names no AWS_ENDPOINT_URL: is the local stack up (scripts/local-stack.sh up)?")
        self.target = Target(
            producer_function="producer", consumer_function="consumer",
            windows_table=env.get(ENV["aggregatesTable"], CONTRACT["tables"]["windowAggregates"]["name"]),
            explicit_table=env.get(ENV["explicitEventsTable"], CONTRACT["tables"]["explicitEvents"]["name"]),
            bucket=env.get(ENV["storeEventsBucket"], CONTRACT["bucket"]["localName"]),
            archive_prefix=CONTRACT["bucket"]["storeEventsPrefix"],
            poison_queue_url=env[ENV["poisonQueueUrl"]],
            window_seconds=int(env.get(ENV["windowSeconds"], CONTRACT["defaults"]["windowSeconds"])),
            description=f"local stack ({aws}, functions at {lambda_endpoint}, {len(mapping_apis)} emulated mapping(s))",
        )
        self.sqs = session.client("sqs", endpoint_url=aws)
        self.sinks = SinkReader(session.client("dynamodb", endpoint_url=aws), session.client("s3", endpoint_url=aws),
                                self.sqs, self.target)
        self.lambda_functions = session.client("lambda", endpoint_url=lambda_endpoint)
        self.mapping_clients = [session.client("lambda", endpoint_url=url) for url in mapping_apis]
        self.status_files, self.function_log = status_files, function_log
        self.log_offset = function_log.stat().st_size if function_log and function_log.exists() else 0

    def invoke_producer(self, request: dict) -> dict:
        return invoke(self.lambda_functions, self.target.producer_function, request)

    def mappings(self) -> list[dict]:
        out = []
        for client in self.mapping_clients:
            try:
                out += list_mappings(client, self.target.consumer_function)
            except (ClientError, BotoCoreError):
                continue  # an emulator that is gone is a mapping that does not exist
        return out

    def telemetry(self, mappings: list[diagnosis.Mapping], since: float) -> diagnosis.Telemetry:
        del since  # the emulators and the log were started for this run; their counts are this run's
        by_topic = {t: m.uuid for m in mappings for t in m.topics}
        lags: dict[str, float | None] = {m.uuid: None for m in mappings}
        errors = 0
        for path in self.status_files:
            try:
                status = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            uuid = by_topic.get(status.get("topic"))
            if uuid:
                lags[uuid] = float(status.get("totalLag", 0))
            errors += int(status.get("counters", {}).get("functionErrors", 0))
        last_error = None
        if self.function_log and self.function_log.exists():
            with open(self.function_log, "rb") as log:
                log.seek(self.log_offset)
                for raw in log.read().decode(errors="replace").splitlines():
                    if any(marker in raw for marker in ERROR_MARKERS):
                        last_error = raw.strip()[:400]
        stand_in = "esm-emulator status files (local stand-in for CloudWatch AWS/Lambda {})"
        return diagnosis.Telemetry(lags, stand_in.format("OffsetLag"), errors, stand_in.format("Errors"), last_error,
                                   f"{self.function_log} (local stand-in for CloudWatch Logs)")


def wait_seconds(interval: float, deadline: float) -> None:
    time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
