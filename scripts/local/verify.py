#!/usr/bin/env python3
"""Checks a finished local pipeline run against a ground truth computed independently of the Rust
code, by reading the topics themselves:

1. Every record in every contract topic is accounted for exactly once: in its sink (sensor readings
   in the window aggregates, store events in PostgreSQL and in the S3 archive, explicit events in
   the explicit-events table), or in a failure queue (the poison queue or an on-failure batch).
2. The window aggregates equal those computed here from the topic's records (Glue-framed Avro is
   decoded with the writer schema fetched from the registry; JSON is parsed), minus the poison.

Exit 0 when both hold, 1 with a list of differences otherwise. Endpoints come from the environment
(source .local/stack.env); names from contracts/pipeline.json unless the environment overrides them
with the same variables the functions read (topics, tables, bucket, queues, database). The fault
tests (scripts/faults.sh) call `check()` with queue contents they drained themselves.
"""

from __future__ import annotations

import collections
import datetime
import gzip
import io
import json
import math
import os
import pathlib
import struct
import subprocess
import sys
import time
import uuid
import zlib

import boto3
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "scripts" / "local"))
import contract as contracts  # noqa: E402 - the harness's one contract reader

TYPED = contracts.load()
CONTRACT = TYPED.raw
NAMES = TYPED.env_vars
TOPICS = CONTRACT["topics"]


def topic_name(key: str) -> str:
    """The topic's name as the functions see it: its variable when set (as in their configuration)."""
    return TYPED.topic(key).name_from()


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"[verify] ERROR: {name} is not set; source .local/stack.env")
    return value


# ── Kafka ────────────────────────────────────────────────────────────────────
def read_topic(topic: str) -> list[tuple[int, int, bytes | None]]:
    """All records of a topic as (partition, offset, value), read from the beginning to the end."""
    consumer = Consumer({"bootstrap.servers": env(NAMES["kafkaBootstrapServers"]), "group.id": "verify-unused",
                         "enable.auto.commit": False, "log_level": 0})
    metadata = consumer.list_topics(topic, timeout=10).topics[topic]
    ends = {}
    for partition in metadata.partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        if high > low:
            ends[partition] = high
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
    records, done = [], {p: False for p in ends}
    while not all(done.values()):
        message = consumer.poll(5)
        if message is None:
            raise SystemExit(f"[verify] ERROR: timed out reading {topic}")
        if message.error():
            raise SystemExit(f"[verify] ERROR: reading {topic}: {message.error()}")
        records.append((message.partition(), message.offset(), message.value()))
        if message.offset() + 1 >= ends[message.partition()]:
            done[message.partition()] = True
    consumer.close()
    return records


# ── Avro (the subset the contract schemas and inferred schemas use) ──────────
class AvroReader:
    def __init__(self, data: bytes):
        self.buf = io.BytesIO(data)

    def long(self) -> int:
        shift = result = 0
        while True:
            byte = self.buf.read(1)
            if not byte:
                raise ValueError("truncated varint")
            b = byte[0]
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return (result >> 1) ^ -(result & 1)

    def raw(self, n: int) -> bytes:
        data = self.buf.read(n)
        if len(data) != n:
            raise ValueError("truncated data")
        return data

    def read(self, schema, named: dict):
        if isinstance(schema, str):
            if schema in named:
                return self.read(named[schema], named)
            kind = schema
        elif isinstance(schema, list):
            return self.read(schema[self.long()], named)
        else:
            kind = schema["type"]
            if isinstance(kind, (dict, list)):
                return self.read(kind, named)
            if kind == "record":
                named[schema["name"]] = schema
                if "namespace" in schema:
                    named[f"{schema['namespace']}.{schema['name']}"] = schema
                return {f["name"]: self.read(f["type"], named) for f in schema["fields"]}
            if kind == "enum":
                named[schema["name"]] = schema
                return schema["symbols"][self.long()]
            if kind == "array":
                out = []
                while (count := self.long()) != 0:
                    if count < 0:
                        count = -count
                        self.long()
                    out.extend(self.read(schema["items"], named) for _ in range(count))
                return out
            if kind == "map":
                out = {}
                while (count := self.long()) != 0:
                    if count < 0:
                        count = -count
                        self.long()
                    for _ in range(count):
                        key = self.raw(self.long()).decode()
                        out[key] = self.read(schema["values"], named)
                return out
            if kind == "fixed":
                return self.raw(schema["size"])
        if kind == "null":
            return None
        if kind == "boolean":
            return self.raw(1) != b"\x00"
        if kind in ("int", "long"):
            return self.long()
        if kind == "float":
            return struct.unpack("<f", self.raw(4))[0]
        if kind == "double":
            return struct.unpack("<d", self.raw(8))[0]
        if kind == "bytes":
            return self.raw(self.long())
        if kind == "string":
            return self.raw(self.long()).decode("utf-8")
        raise ValueError(f"unsupported Avro type {kind!r}")


class Registry:
    def __init__(self, glue):
        self.glue = glue
        self.cache: dict[str, dict] = {}

    def schema(self, version_id: str) -> dict:
        if version_id not in self.cache:
            definition = self.glue.get_schema_version(SchemaVersionId=version_id)["SchemaDefinition"]
            self.cache[version_id] = json.loads(definition)
        return self.cache[version_id]


def decode_value(value: bytes | None, registry: Registry):
    """The record's payload as a Python value, or raise ValueError."""
    if not value:
        raise ValueError("empty value")
    if value[0] == 0x03:
        if len(value) < 18:
            raise ValueError("truncated Glue header")
        compression, version = value[1], str(uuid.UUID(bytes=value[2:18]))
        body = value[18:]
        if compression == 0x05:
            body = zlib.decompress(body)
        elif compression != 0x00:
            raise ValueError(f"unknown compression {compression}")
        try:
            schema = registry.schema(version)
        except Exception as error:  # noqa: BLE001 - unknown version ids are poison
            raise ValueError(f"unknown schema version {version}: {error}") from error
        reader = AvroReader(body)
        decoded = reader.read(schema, {})
        if reader.buf.read(1):
            raise ValueError("trailing bytes after the Avro body")
        return decoded
    return json.loads(value)


# The consumer's event-time bound (pipeline_domain::consume::EventTimeBounds): 2000-01-01T00:00:00Z
# to one day after the invocation (here: now, which is later than any invocation).
EARLIEST_EVENT_TIME_MS = 946_684_800_000
MAX_AHEAD_MS = 24 * 3600 * 1000


def seed_timestamp_ms(value) -> int:
    """Seed S1's `timestamp`: ISO-8601, UTC when it has no offset, floored to the millisecond."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ValueError("event_time")
    parsed = datetime.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    delta = parsed - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def sensor_reading(payload) -> tuple[str, int, float]:
    if not isinstance(payload, dict):
        raise ValueError("not an object")
    device, temperature = payload.get("device_id"), payload.get("temperature")
    # The seed S1 mapping (functions/consumer/README.md, "Seed payloads").
    if isinstance(device, int) and not isinstance(device, bool):
        device = str(device)
    event_time = payload.get("event_time") if "event_time" in payload else seed_timestamp_ms(payload.get("timestamp"))
    if not isinstance(device, str) or not device:
        raise ValueError("device_id")
    if isinstance(event_time, bool) or not isinstance(event_time, int):
        raise ValueError("event_time")
    now_ms = int(time.time() * 1000)
    if not EARLIEST_EVENT_TIME_MS <= event_time <= now_ms + MAX_AHEAD_MS:
        raise ValueError("event_time")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature):
        raise ValueError("temperature")
    return device, event_time, float(temperature)


# ── Sinks ────────────────────────────────────────────────────────────────────
def drain_queue(sqs, url: str) -> list[dict]:
    """Every message in the queue (made invisible while reading, then visible again)."""
    seen, bodies, handles = set(), [], []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                       WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            break
        for message in messages:
            handles.append(message["ReceiptHandle"])
            if message["MessageId"] not in seen:
                seen.add(message["MessageId"])
                bodies.append(json.loads(message["Body"]))
    # A FIFO queue holds back a group's next messages while ten of them are in flight, so a read
    # that deletes nothing may see only part of the queue: say so rather than report them missing.
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                          "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    held = sum(int(v) for v in attributes.values())
    if held > len(seen):
        raise SystemExit(f"[verify] ERROR: {url} holds {held} messages but only {len(seen)} could be read without "
                         "deleting them (more than ten in one FIFO group); read it with take_queue instead")
    # Nothing is deleted; make everything visible again for the next reader.
    for start in range(0, len(handles), 10):
        entries = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(handles[start:start + 10])]
        sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
    return bodies


def take_queue(sqs, url: str) -> list[dict]:
    """Every message in the queue, deleted as it is read. A FIFO queue hands out a group's next
    messages only once the ones in flight are deleted, so this is the only way to see all of a
    group holding more than ten; use it on queues nobody reads afterwards."""
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
                                       WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return bodies
        bodies += [json.loads(m["Body"]) for m in messages]
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        sqs.delete_message_batch(QueueUrl=url, Entries=entries)


def scan(dynamodb, table: str) -> list[dict]:
    items, start = [], None
    while True:
        page = dynamodb.scan(TableName=table, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def pg_coordinates(table: str) -> list[tuple[str, int, int]]:
    result = subprocess.run(
        ["psql", "-X", "-tA", "-F", ",", "-h", env(NAMES["pgHost"]), "-p", env(NAMES["pgPort"]), "-U", env("PIPELINE_PG_ADMIN_USER"),
         "-d", env(NAMES["pgDatabase"]), "-c", f'SELECT "topic", "partition", "offset" FROM "{table}"'],
        env={**os.environ, "PGPASSWORD": env("PIPELINE_PG_ADMIN_PASSWORD")}, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        if "does not exist" in result.stderr:
            return []
        raise SystemExit(f"[verify] ERROR: PostgreSQL: {result.stderr.strip()}")
    rows = []
    for line in result.stdout.splitlines():
        topic, partition, offset = line.rsplit(",", 2)
        rows.append((topic, int(partition), int(offset)))
    return rows


def archive_coordinates(s3) -> list[tuple[str, int, int]]:
    bucket = os.environ.get(NAMES["storeEventsBucket"], CONTRACT["bucket"]["localName"])
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=CONTRACT["bucket"]["storeEventsPrefix"]):
        for obj in page.get("Contents", []):
            body = gzip.decompress(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            for line in body.splitlines():
                if line.strip():
                    row = json.loads(line)
                    out.append((row["topic"], int(row["partition"]), int(row["offset"])))
    return out


def check(poison_bodies: list[dict] | None = None, failed_bodies: list[dict] | None = None) -> tuple[dict, list[str]]:
    """The per-topic summary and the list of differences from the ground truth. Queue contents are
    read here (without deleting) unless the caller passes what it drained itself."""
    session = boto3.Session(region_name=os.environ.get("AWS_REGION", "us-east-1"))
    endpoint = env("AWS_ENDPOINT_URL")
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    sqs = session.client("sqs", endpoint_url=endpoint)
    s3 = session.client("s3", endpoint_url=endpoint)
    registry = Registry(session.client("glue", endpoint_url=endpoint))
    problems: list[str] = []

    poison = collections.Counter()
    if poison_bodies is None:
        poison_bodies = drain_queue(sqs, env(NAMES["poisonQueueUrl"]))
    for body in poison_bodies:
        poison[(body["topic"], int(body["partition"]), int(body["offset"]))] += 1
    failed = collections.Counter()
    if failed_bodies is None:
        failed_bodies = drain_queue(sqs, os.environ["ON_FAILURE_QUEUE_URL"]) if os.environ.get("ON_FAILURE_QUEUE_URL") else []
    if failed_bodies:
        for body in failed_bodies:
            for span in body.get("emulatorDetail", {}).get("partitions", []):
                for offset in range(span["firstOffset"], span["lastOffset"] + 1):
                    failed[(span["topic"], span["partition"], offset)] += 1
    for where, counter in (("poison queue", poison), ("on-failure queue", failed)):
        for coordinates, n in counter.items():
            if n > 1:
                problems.append(f"{coordinates} is in the {where} {n} times")

    summary = {}
    for key, contract_topic in TOPICS.items():
        topic, payload = topic_name(key), contract_topic["payload"]
        records = read_topic(topic)
        coordinates = {(topic, p, o) for p, o, _ in records}
        in_poison = {c for c in coordinates if c in poison}
        in_failed = {c for c in coordinates if c in failed}
        for c in in_poison & in_failed:
            problems.append(f"{c} is both in the poison queue and in an on-failure batch")
        handled = {c for c in coordinates if c not in in_poison and c not in in_failed}

        if payload == "SensorReading":
            window_ms = int(os.environ.get(NAMES["windowSeconds"], CONTRACT["defaults"]["windowSeconds"])) * 1000
            truth: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
            for partition, offset, value in records:
                if (topic, partition, offset) not in handled:
                    continue
                try:
                    device, event_time, temperature = sensor_reading(decode_value(value, registry))
                except (ValueError, json.JSONDecodeError, UnicodeDecodeError) as error:
                    problems.append(f"{topic}-{partition}@{offset} is neither aggregated validly nor poison: {error}")
                    continue
                truth[(device, event_time // window_ms * window_ms)].append(temperature)
            keys = CONTRACT["tables"]["windowAggregates"]
            stored = {}
            for item in scan(dynamodb, os.environ.get(NAMES["aggregatesTable"], CONTRACT["tables"]["windowAggregates"]["name"])):
                key = (item[keys["partitionKey"]]["S"], int(item[keys["sortKey"]]["N"]))
                stored[key] = {name: float(item[name]["N"]) for name in ("count", "sum", "min", "max") if name in item}
            for key in sorted(set(truth) | set(stored)):
                values, row = truth.get(key), stored.get(key)
                if values is None or row is None:
                    problems.append(f"window {key}: {'missing in DynamoDB' if row is None else 'not in the ground truth'}")
                    continue
                expected = {"count": len(values), "sum": sum(values), "min": min(values), "max": max(values)}
                for name, want in expected.items():
                    if abs(row.get(name, float("nan")) - want) > 0.001 * max(1, len(values)):
                        problems.append(f"window {key}: {name} is {row.get(name)} in DynamoDB, ground truth {want}")
            aggregated = sum(int(r.get("count", 0)) for r in stored.values())
            summary[topic] = {"records": len(records), "aggregated": aggregated, "poison": len(in_poison), "onFailure": len(in_failed)}
            if aggregated != len(handled):
                problems.append(f"{topic}: {aggregated} readings aggregated but {len(handled)} records are neither poison nor failed")
        elif payload == "StoreEvent":
            pg = CONTRACT["postgres"]
            rows = collections.Counter(pg_coordinates(pg["salesTable"]) + pg_coordinates(pg["inventoryTable"]))
            archived = collections.Counter(archive_coordinates(s3))
            for c in sorted(coordinates):
                sinks = rows[c]
                if c in handled and sinks != 1:
                    problems.append(f"{c}: in PostgreSQL {sinks} times (expected once)")
                if c not in handled and sinks:
                    problems.append(f"{c}: in PostgreSQL and also in a failure queue")
                if archived[c] != (1 if c in handled else 0):
                    problems.append(f"{c}: in the S3 archive {archived[c]} times")
            summary[topic] = {"records": len(records), "postgres": sum(rows[c] for c in coordinates),
                              "archived": sum(archived[c] for c in coordinates), "poison": len(in_poison), "onFailure": len(in_failed)}
        else:
            keys = CONTRACT["tables"]["explicitEvents"]
            items = collections.Counter()
            for item in scan(dynamodb, os.environ.get(NAMES["explicitEventsTable"], keys["name"])):
                source = item[keys["partitionKey"]]["S"]
                t, _, p = source.rpartition("-")
                items[(t, int(p), int(item[keys["sortKey"]]["N"]))] += 1
            for c in sorted(coordinates):
                if items[c] != (1 if c in handled else 0):
                    problems.append(f"{c}: in the explicit-events table {items[c]} times")
            summary[topic] = {"records": len(records), "stored": sum(items[c] for c in coordinates), "poison": len(in_poison), "onFailure": len(in_failed)}
    return summary, problems


def main() -> None:
    summary, problems = check()
    print(json.dumps(summary, indent=2))
    if problems:
        print(f"[verify] FAILED: {len(problems)} difference(s)", file=sys.stderr)
        for problem in problems[:50]:
            print(f"  - {problem}", file=sys.stderr)
        sys.exit(1)
    print("[verify] every record is accounted for exactly once, and the aggregates equal the ground truth", file=sys.stderr)


if __name__ == "__main__":
    main()
