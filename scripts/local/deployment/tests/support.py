"""Recorded AWS responses (tests/recorded/) and builders shared by the tests."""

from __future__ import annotations

import copy
import json
import pathlib

from deployment import diagnosis, plan

RECORDED = pathlib.Path(__file__).resolve().parent / "recorded"
NOW_MS = 1_767_229_200_000  # 2026-01-01T01:00:00Z
WINDOW_SECONDS = 60


def recorded(name: str):
    return copy.deepcopy(json.loads((RECORDED / name).read_text()))


def healthy_mappings() -> list[dict]:
    return recorded("list-event-source-mappings.healthy.json")["EventSourceMappings"]


def requests() -> list[dict]:
    return plan.requests(NOW_MS, WINDOW_SECONDS, "check-test")


def responses() -> list[dict]:
    return recorded("producer-responses.json")


def expectations() -> plan.Expectations:
    return plan.expectations(requests(), responses(), WINDOW_SECONDS)


NAMES = {"windows": "sensor-window-aggregates", "explicit": "explicit-events",
         "archive": "s3://consumer-stack-storeeventsbucket-1a2b3c4d5e6f/store-events/",
         "poison": "pipeline-poison.fifo", "on_failure": "pipeline-esm-on-failure"}


def arrived(expect: plan.Expectations, **changes) -> diagnosis.Sinks:
    """Sinks holding exactly what the run published (on top of older data), with `changes` applied."""
    before = {key: 7 for key in expect.windows}
    after = {key: before[key] + n for key, n in expect.windows.items()}
    values = dict(windows_before=before, windows_after=after, archived=expect.store_well_formed,
                  explicit=expect.explicit_events, poison_added=expect.poison, on_failure_added=0)
    values.update(changes)
    return diagnosis.Sinks(**values)


def telemetry(mappings, **changes) -> diagnosis.Telemetry:
    values = dict(offset_lag={m.uuid: 0.0 for m in mappings}, lag_source="CloudWatch AWS/Lambda OffsetLag",
                  function_errors=0, errors_source="CloudWatch AWS/Lambda Errors", last_error=None,
                  log_source="CloudWatch Logs /aws/lambda/consumer")
    values.update(changes)
    return diagnosis.Telemetry(**values)
