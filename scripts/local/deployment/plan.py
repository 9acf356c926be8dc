"""What the check publishes and what it then expects in each sink. Pure: no I/O.

The requests use fixed seeds; only the event times depend on when the check runs. They lie one
hour back, in windows that no scheduled producer run writes at that moment, so the before/after
difference of each window item is exactly what this check published (a scheduled run writes
"now"), and the store events' archive dates are known in advance.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import contract as contracts  # noqa: E402 - the harness's one contract reader

CONTRACT = contracts.load().raw

SENSOR_DEVICES = 3
READINGS_PER_DEVICE = 4
READING_INTERVAL_MS = 1_000
STORE_EVENTS = 40
MALFORMED_SHARE = 0.1
SEED = 20_260_101
LOOKBACK_MS = 3_600_000
EXPLICIT_SCHEMA = "com.example.Order"


def topic(key: str) -> str:
    return CONTRACT["topics"][key]["name"]


def device_id(index: int) -> str:
    """simulate_sensors names its devices `sensor-000`, `sensor-001`, ... (functions/producer/README.md)."""
    return f"sensor-{index:03d}"


def requests(now_ms: int, window_seconds: int, run_id: str) -> list[dict]:
    """The producer requests of one check run (functions/producer/README.md has the format)."""
    window_ms = window_seconds * 1000
    start_ms = (now_ms - LOOKBACK_MS) // window_ms * window_ms
    return [
        {"action": "simulate_sensors", "devices": SENSOR_DEVICES, "readings_per_device": READINGS_PER_DEVICE,
         "seed": SEED, "start_time_ms": start_ms, "interval_ms": READING_INTERVAL_MS},
        {"action": "simulate_store_events", "count": STORE_EVENTS, "malformed_share": MALFORMED_SHARE,
         "seed": SEED, "start_time_micros": start_ms * 1000},
        # Same fields as scripts/local/pipeline-requests.json, so the registered schema version is reused.
        {"action": "publish_events", "schema_name": EXPLICIT_SCHEMA, "key_field": "order_id",
         "events": [{"order_id": f"{run_id}-{n}", "amount": 10.5 * n, "currency": "EUR",
                     "lines": [{"sku": 100_000 + n, "qty": n}]} for n in (1, 2)]},
    ]


@dataclasses.dataclass(frozen=True)
class WindowKey:
    device: str
    window_start_ms: int


@dataclasses.dataclass(frozen=True)
class OffsetSpan:
    topic: str
    partition: int
    first: int
    last: int
    count: int

    def contains(self, topic: str, partition: int, offset: int) -> bool:
        return topic == self.topic and partition == self.partition and self.first <= offset <= self.last


@dataclasses.dataclass(frozen=True)
class Expectations:
    """What one run's producer responses promise each sink."""

    windows: dict[WindowKey, int]              # readings per (device, window)
    store_spans: tuple[OffsetSpan, ...]        # where the store events went
    store_well_formed: int                     # archived to S3 (and PostgreSQL)
    store_malformed: int                       # set aside in the poison queue
    store_dates: tuple[str, ...]               # archive `date=` partitions to read
    store_event_types: tuple[str, ...]         # archive `event_type=` partitions to read
    explicit_spans: tuple[OffsetSpan, ...]     # explicit-events items by coordinates
    explicit_events: int

    @property
    def poison(self) -> int:
        return self.store_malformed


def sensor_windows(request: dict, window_seconds: int) -> dict[WindowKey, int]:
    """The consumer's tumbling event-time windows (functions/domain/src/window.rs): start = t - t mod W."""
    window_ms = window_seconds * 1000
    out: dict[WindowKey, int] = {}
    for device in range(request["devices"]):
        for step in range(request["readings_per_device"]):
            event_time = request["start_time_ms"] + step * request["interval_ms"]
            key = WindowKey(device_id(device), event_time // window_ms * window_ms)
            out[key] = out.get(key, 0) + 1
    return out


def spans(response: dict, topic_name: str) -> tuple[OffsetSpan, ...]:
    partitions = response.get("partitions", {}).get(topic_name, {})
    return tuple(OffsetSpan(topic_name, int(p), int(r["first"]), int(r["last"]), int(r["count"]))
                 for p, r in sorted(partitions.items(), key=lambda item: int(item[0])))


class ResponseError(ValueError):
    """A producer response that does not say what was published."""


def expectations(reqs: list[dict], responses: list[dict], window_seconds: int) -> Expectations:
    by_action = {}
    for request, response in zip(reqs, responses, strict=True):
        if not isinstance(response, dict) or "produced" not in response or "partitions" not in response:
            raise ResponseError(f"the producer's answer to {request['action']} is not a summary: {json.dumps(response)[:400]}")
        by_action[request["action"]] = (request, response)
    sensors_request, sensors = by_action["simulate_sensors"]
    windows = sensor_windows(sensors_request, window_seconds)
    published_readings = int(sensors["produced"].get("sensor_reading", 0))
    if published_readings != sum(windows.values()):
        raise ResponseError(f"the producer published {published_readings} sensor readings, the request asked for {sum(windows.values())}")
    store_request, store = by_action["simulate_store_events"]
    start = dt.datetime.fromtimestamp(store_request["start_time_micros"] / 1e6, dt.timezone.utc)
    # Store events are one second apart (functions/domain/src/simulate.rs).
    end = start + dt.timedelta(seconds=store_request["count"] + 1)
    dates = tuple(sorted({start.date().isoformat(), end.date().isoformat()}))
    explicit_request, explicit = by_action["publish_events"]
    return Expectations(
        windows=windows,
        store_spans=spans(store, store["topic"]),
        store_well_formed=sum(int(n) for n in store["produced"].values()),
        store_malformed=int(store.get("malformed", 0)),
        store_dates=dates,
        store_event_types=tuple(sorted(store["produced"])),
        explicit_spans=spans(explicit, explicit["topic"]),
        explicit_events=int(explicit["produced"].get(explicit_request["schema_name"], 0)),
    )
