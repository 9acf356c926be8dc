#!/usr/bin/env python3
"""The baseline side of scripts/bench.sh: the seed S1 consumer's algorithm and a confluent-kafka
producer, timed on the same event files and against the same local servers as ours.

The seed consumer (../shared/seeds/001_c5089331688572dd.txt, Lambda `index.py`) is reimplemented
here step for step, with two adaptations the bench needs:
  * it is fed every partition of the event (the seed reads one `topic-0` key only);
  * it reads the reading's event time from `event_time`, our schema's name for the seed's
    `timestamp` field.
Per invocation it base64-decodes and json-parses every value into one small object per record,
sorts the objects by device id and groups them, then per device computes the rounded mean
temperature and the smallest and largest event time, and writes one item per device with a
DynamoDB `put_item` through a boto3 Table resource. It only reads JSON values: the Glue Avro
batches have no seed baseline.

Subcommands print one JSON line per measurement on stdout (bench/python/report.py reads them).
"""

import argparse
import gc
import json
import os
import resource
import struct
import sys
import time
import uuid

from seed_consumer import seed_handler


class StubTable:
    """Sinks stubbed: put_item only keeps the item."""

    def __init__(self):
        self.items = []

    def put_item(self, Item):  # noqa: N803 (boto3's keyword)
        self.items.append(Item)


# --------------------------------------------------------------------------------------------
# Helpers


def emit(line):
    print(json.dumps(line), flush=True)


def log(message):
    print(message, file=sys.stderr, flush=True)


def timing(samples):
    samples = sorted(samples)
    return {"best_ms": samples[0] * 1000, "median_ms": samples[len(samples) // 2] * 1000, "runs": len(samples)}


def manifest_entries(events_dir):
    with open(os.path.join(events_dir, "manifest.json")) as f:
        return json.load(f)["events"]


# --------------------------------------------------------------------------------------------
# Figure 1: CPU path, sinks stubbed


def cpu(args):
    for entry in manifest_entries(args.events):
        if entry["format"] != "json":
            continue
        with open(os.path.join(args.events, entry["file"]), "rb") as f:
            raw = f.read()
        samples = []
        for _ in range(args.runs):
            table = StubTable()
            started = time.perf_counter()
            # The Python runtime parses the payload before calling the handler.
            devices = seed_handler(json.loads(raw), table)
            samples.append(time.perf_counter() - started)
            assert devices == entry["devices"], (devices, entry["devices"])
        t = timing(samples)
        log(f"[cpu] {entry['batch'] + '/' + entry['format']:<22} seed (Python) {t['best_ms']:>8.2f} ms")
        emit({"figure": "cpu", "batch": entry["batch"], "format": entry["format"], "impl": "seed_python",
              "records": entry["records"], "bytes": entry["bytes"], "timing": t})


# --------------------------------------------------------------------------------------------
# Figure 2: end to end into DynamoDB (moto)


def dynamo(args):
    import boto3

    dynamodb = boto3.resource("dynamodb")
    client = dynamodb.meta.client
    requests = {"count": 0, "by_operation": {}}

    def count(**kwargs):
        # before-send fires once per HTTP request, retries included.
        operation = kwargs.get("event_name", "").split(".")[-1]
        requests["count"] += 1
        requests["by_operation"][operation] = requests["by_operation"].get(operation, 0) + 1

    client.meta.events.register("before-send.dynamodb.*", count)
    for entry in manifest_entries(args.events):
        if entry["format"] != "json" or (args.batch and entry["batch"] != args.batch):
            continue
        with open(os.path.join(args.events, entry["file"]), "rb") as f:
            raw = f.read()
        samples = []
        per_batch = None
        for run in range(args.runs):
            name = f"bench-seed-{os.getpid()}-{run}-{uuid.uuid4().hex[:6]}"
            # The seed's table shape, with key types that fit the data (device ids are strings here).
            table = dynamodb.create_table(
                TableName=name,
                KeySchema=[{"AttributeName": "device_id", "KeyType": "HASH"},
                           {"AttributeName": "window_start", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "device_id", "AttributeType": "S"},
                                      {"AttributeName": "window_start", "AttributeType": "N"}],
                BillingMode="PAY_PER_REQUEST",
            )
            table.wait_until_exists()
            requests["count"] = 0
            requests["by_operation"] = {}
            started = time.perf_counter()
            seed_handler(json.loads(raw), table)
            samples.append(time.perf_counter() - started)
            per_batch = dict(requests["by_operation"], total=requests["count"])
            stored = table.scan(Select="COUNT")["Count"]
            assert stored == entry["devices"], (stored, entry["devices"])
            table.delete()
        t = timing(samples)
        log(f"[dynamo] {entry['batch'] + '/json':<22} seed (Python, boto3) {t['best_ms']:>8.2f} ms, "
            f"{per_batch['total']} requests per batch {per_batch}")
        emit({"figure": "dynamo", "batch": entry["batch"], "format": "json", "impl": "seed_python",
              "records": entry["records"], "timing": t, "requests": per_batch, "items_per_batch": entry["devices"]})


# --------------------------------------------------------------------------------------------
# Figure 3: producer records/s (confluent-kafka, librdkafka)


def read_records(path):
    """Records dumped by `pipeline-bench produce --dump`: length-prefixed key, value, header."""
    records = []
    with open(path, "rb") as f:
        data = f.read()
    at = 0
    while at < len(data):
        (timestamp,) = struct.unpack_from(">q", data, at)
        at += 8
        fields = []
        for _ in range(3):
            (length,) = struct.unpack_from(">I", data, at)
            at += 4
            fields.append(data[at:at + length])
            at += length
        key, value, event_id = fields
        records.append((key, value, event_id, timestamp))
    return records


def produce(args):
    from confluent_kafka import Producer

    for path in args.records:
        records = read_records(path)
        label = os.path.basename(path).split(".")[0]
        broker = args.broker_label
        samples = []
        cpu_times = []
        for _ in range(args.runs):
            producer = Producer({
                "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
                "acks": "all",
                # The Java client's partitioner, as ours: a device stays on its partition.
                "partitioner": "murmur2_random",
                "queue.buffering.max.messages": max(100_000, len(records) * 2),
                "log_level": 3,
            })
            # Metadata first, as ours caches partition clients before it sends.
            producer.list_topics(args.topic, timeout=10)
            failures = []

            def delivered(error, _message):
                if error is not None:
                    failures.append(error)

            gc.disable()
            cpu_before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.perf_counter()
            for key, value, event_id, timestamp in records:
                while True:
                    try:
                        producer.produce(args.topic, value=value, key=key, headers=[("event-id", event_id)],
                                         timestamp=timestamp, on_delivery=delivered)
                        break
                    except BufferError:
                        producer.poll(0.01)
                producer.poll(0)
            remaining = producer.flush(120)
            elapsed = time.perf_counter() - started
            cpu_after = resource.getrusage(resource.RUSAGE_SELF)
            gc.enable()
            if remaining or failures:
                raise SystemExit(f"confluent-kafka: {remaining} undelivered, {len(failures)} failed: {failures[:3]}")
            samples.append(elapsed)
            # librdkafka's threads belong to this process: their CPU time is included.
            cpu_times.append(cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime)
        t = timing(samples)
        rate = len(records) / (t["best_ms"] / 1000)
        log(f"[produce] {broker + '/' + label:<22} Python confluent-kafka {len(records)} records, best {t['best_ms']:.0f} ms "
            f"= {rate:,.0f} records/s, client CPU {timing(cpu_times)['best_ms']:.0f} ms")
        emit({"figure": "produce", "case": label, "broker": broker, "impl": "python_confluent_kafka", "records": len(records),
              "timing": t, "records_per_s": rate, "cpu": timing(cpu_times)})


def table(args):
    """Creates or deletes the table seed_lambda.py writes (figure 4)."""
    import boto3

    client = boto3.client("dynamodb")
    if args.create:
        client.create_table(
            TableName=args.create,
            KeySchema=[{"AttributeName": "device_id", "KeyType": "HASH"},
                       {"AttributeName": "window_start", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "device_id", "AttributeType": "S"},
                                  {"AttributeName": "window_start", "AttributeType": "N"}],
            BillingMode="PAY_PER_REQUEST",
        )
    if args.delete:
        client.delete_table(TableName=args.delete)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("cpu", help="figure 1: parse + decode + aggregate, table stubbed")
    p.add_argument("--events", required=True)
    p.add_argument("--runs", type=int, default=10)
    p.set_defaults(run=cpu)
    p = sub.add_parser("dynamo", help="figure 2: into DynamoDB (AWS_ENDPOINT_URL, e.g. moto)")
    p.add_argument("--events", required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--batch", help="only this batch (e.g. sensors-10k)")
    p.set_defaults(run=dynamo)
    p = sub.add_parser("produce", help="figure 3: confluent-kafka producer records/s")
    p.add_argument("--records", nargs="+", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--broker-label", default="sqlite")
    p.set_defaults(run=produce)
    p = sub.add_parser("table", help="create or delete a table of the seed's shape")
    p.add_argument("--create")
    p.add_argument("--delete")
    p.set_defaults(run=table)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
