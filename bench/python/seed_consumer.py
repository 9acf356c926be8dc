"""The seed S1 consumer's algorithm (../shared/seeds/001_c5089331688572dd.txt, Lambda `index.py`),
reimplemented step for step for the benchmarks; see seed_baseline.py for the two adaptations.

This module imports what the seed's module imports, and nothing else, so that seed_lambda.py's
cold init is the seed's.
"""

import base64
import json
import os  # noqa: F401 (the seed imports it for its configuration)
from decimal import Decimal
from itertools import groupby
from operator import attrgetter

import boto3  # noqa: F401 (the seed's module-level client; seed_lambda.py creates it)


class Reading:
    # A plain class, as in the seed (no __slots__), so object creation costs what it cost there.
    def __init__(self, device_id, event_time, temperature):
        self.device_id = device_id
        self.event_time = event_time
        self.temperature = temperature


def seed_handler(event, table):
    """One invocation of the seed's algorithm, fed every partition."""
    readings = []
    for partition_records in event["records"].values():
        for record in partition_records:
            value = json.loads(base64.b64decode(record["value"]))
            readings.append(Reading(value["device_id"], value["event_time"], value["temperature"]))

    by_device = attrgetter("device_id")
    grouped = {device: list(items) for device, items in groupby(sorted(readings, key=by_device), by_device)}

    for device, items in grouped.items():
        mean = round(sum(r.temperature for r in items) / len(items))
        first = min(r.event_time for r in items)
        last = max(r.event_time for r in items)
        table.put_item(
            Item={
                "device_id": device,
                "window_start": first,
                "window_stop": last,
                "avg_temp": Decimal(mean),
            }
        )
    return len(grouped)
