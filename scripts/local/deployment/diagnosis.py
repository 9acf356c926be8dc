"""The verdict of a check run and, when data is missing, why. Pure: it reads observations made by
the sources and AWS-shaped mapping descriptions, and returns lines to print.

Event source mapping vocabulary (Lambda API reference, EventSourceMappingConfiguration):
`State` is one of Creating, Enabling, Enabled, Disabling, Disabled, Updating, Deleting;
`StateTransitionReason` says who changed it (e.g. USER_INITIATED); `LastProcessingResult` is
"No records processed", "OK", or a "PROBLEM: ..." text such as "PROBLEM: Connection error. ...",
"PROBLEM: Function call failed", "Topic not found" or the authentication errors of the Lambda
developer guide's "Troubleshooting Kafka event source mapping errors" page. Texts are matched by
their documented key phrase, case-insensitively, because AWS appends detail after it.
"""

from __future__ import annotations

import dataclasses

from . import plan

MAPPING_STATES = ("Creating", "Enabling", "Enabled", "Disabling", "Disabled", "Updating", "Deleting")

# Key phrase of a LastProcessingResult -> what to look at. First match wins.
PROCESSING_HINTS = (
    ("topic not found", "the topic does not exist on the cluster: topic-admin creates the contract topics "
                        "before the handshake secret exists (docs/deploy.md, Topics); compare the mapping's Topics"),
    ("sasl authentication failed", "the brokers refuse the SCRAM credentials: after a password change bump "
                                   "handshakeRevision and redeploy both stacks (docs/deploy.md, SCRAM)"),
    ("cluster failed to authorize lambda", "the SCRAM user lacks an ACL: Read/Describe on the topic and the "
                                           "group, DescribeConfigs on the cluster (topic-admin grants them)"),
    ("server failed to authenticate lambda", "TLS client authentication failed between the pollers and the brokers"),
    ("lambda failed to authenticate server", "the pollers do not trust the brokers' certificates or names: "
                                             "the private hosted zone must name the real broker hosts"),
    ("connection error", "the pollers cannot reach the brokers or the AWS APIs: endpoint connections accepted, "
                         "security groups open on 9096, Lambda/STS/Secrets Manager endpoints in the consumer VPC"),
    ("function call failed", "the consumer function fails on these batches: see Errors and the last error below"),
)

STATE_HINTS = {
    "Creating": "the mapping is still being created; pollers start a few minutes after a deploy",
    "Enabling": "the mapping is being enabled; pollers start a few minutes after a deploy",
    "Updating": "the mapping is being updated",
    "Disabling": "the mapping is being disabled: StateTransitionReason says by whom",
    "Disabled": "the mapping is disabled: StateTransitionReason says by whom; enable it with "
                "aws lambda update-event-source-mapping --uuid <UUID> --enabled",
    "Deleting": "the mapping is being deleted",
}


@dataclasses.dataclass(frozen=True)
class Mapping:
    """The fields of an EventSourceMappingConfiguration the diagnosis reads."""

    uuid: str
    topics: tuple[str, ...]
    state: str
    reason: str
    last_result: str
    destination: str | None

    @classmethod
    def from_aws(cls, config: dict) -> "Mapping":
        return cls(
            uuid=str(config.get("UUID", "?")),
            topics=tuple(config.get("Topics") or ()),
            state=str(config.get("State", "?")),
            reason=str(config.get("StateTransitionReason", "")),
            last_result=str(config.get("LastProcessingResult", "")),
            destination=((config.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"),
        )

    def problem(self) -> str | None:
        """Why this mapping cannot be delivering, or None."""
        if self.state != "Enabled":
            hint = STATE_HINTS.get(self.state, f"unknown state (AWS uses {', '.join(MAPPING_STATES)})")
            return f"State {self.state} ({self.reason or 'no reason given'}): {hint}"
        if self.last_result.upper().startswith("PROBLEM"):
            lowered = self.last_result.lower()
            hint = next((h for phrase, h in PROCESSING_HINTS if phrase in lowered), "see the text above")
            return f"{self.last_result}: {hint}"
        return None


@dataclasses.dataclass(frozen=True)
class Sinks:
    """What the sinks held before the producer was invoked and what they hold now."""

    windows_before: dict[plan.WindowKey, int]
    windows_after: dict[plan.WindowKey, int]
    archived: int          # S3 rows whose coordinates this run published
    explicit: int          # explicit-events items at this run's coordinates
    poison_added: int      # poison queue depth now minus before
    on_failure_added: int  # on-failure queue depth now minus before (batches the mappings gave up on)


@dataclasses.dataclass(frozen=True)
class Telemetry:
    """Metrics and logs, each with the name of the source it came from (CloudWatch or its local stand-in)."""

    offset_lag: dict[str, float | None]  # by mapping UUID
    lag_source: str
    function_errors: int | None
    errors_source: str
    last_error: str | None
    log_source: str


@dataclasses.dataclass(frozen=True)
class SinkResult:
    name: str
    topic: str
    line: str
    reached: bool
    excess: bool = False  # more than published: double counting or foreign data in our windows


@dataclasses.dataclass(frozen=True)
class Verdict:
    ok: bool
    sinks: tuple[SinkResult, ...]
    problems: tuple[str, ...]


def sink_results(expect: plan.Expectations, seen: Sinks, names: dict[str, str]) -> tuple[SinkResult, ...]:
    added = {key: seen.windows_after.get(key, 0) - seen.windows_before.get(key, 0) for key in expect.windows}
    readings = sum(min(added[k], n) for k, n in expect.windows.items())
    windows_full = sum(1 for k, n in expect.windows.items() if added[k] >= n)
    windows = SinkResult(
        "windows", plan.topic("sensorReadings"),
        f"DynamoDB {names['windows']}: {readings}/{sum(expect.windows.values())} readings in "
        f"{windows_full}/{len(expect.windows)} windows",
        reached=windows_full == len(expect.windows),
        excess=any(added[k] > n for k, n in expect.windows.items()))
    explicit = SinkResult(
        "explicit", plan.topic("explicitEvents"),
        f"DynamoDB {names['explicit']}: {seen.explicit}/{expect.explicit_events} explicit events",
        reached=seen.explicit >= expect.explicit_events)
    archive = SinkResult(
        "archive", plan.topic("storeEvents"),
        f"S3 {names['archive']}: {seen.archived}/{expect.store_well_formed} store events",
        reached=seen.archived >= expect.store_well_formed)
    poison = SinkResult(
        "poison", plan.topic("storeEvents"),
        f"SQS {names['poison']}: +{seen.poison_added} (expected +{expect.poison}, the deliberately malformed store events)",
        reached=seen.poison_added >= expect.poison, excess=seen.poison_added > expect.poison)
    on_failure = SinkResult(
        "on_failure", "",
        f"SQS {names['on_failure']}: +{seen.on_failure_added} batches given up (expected +0)",
        reached=True, excess=seen.on_failure_added > 0)
    return windows, explicit, archive, poison, on_failure


def verdict(expect: plan.Expectations, seen: Sinks, mappings: list[Mapping], telemetry: Telemetry,
            names: dict[str, str]) -> Verdict:
    """Passes when every sink got this run's data, nothing unexpected was set aside and no mapping
    reports a problem. The caller polls until it passes or its deadline ends."""
    sinks = sink_results(expect, seen, names)
    problems: list[str] = []
    by_topic = {t: m for m in mappings for t in m.topics}
    for topic in sorted({s.topic for s in sinks if s.topic}):
        if topic not in by_topic:
            problems.append(f"no event source mapping reads {topic}")
    missing = [s for s in sinks if not s.reached]
    for sink in missing:
        mapping = by_topic.get(sink.topic)
        problem = mapping.problem() if mapping else None
        if problem:
            problems.append(f"{sink.topic} ({sink.name} not reached): mapping {mapping.uuid}: {problem}")
        elif mapping:
            lag = telemetry.offset_lag.get(mapping.uuid)
            behind = f"OffsetLag {lag:g}" if lag is not None else f"OffsetLag unknown ({telemetry.lag_source})"
            problems.append(f"{sink.topic} ({sink.name} not reached): mapping {mapping.uuid} is {mapping.state}, "
                            f"last result {mapping.last_result or '-'}, {behind}")
    for sink in sinks:
        if sink.excess and sink.name == "on_failure":
            problems.append(f"{seen.on_failure_added} batch(es) went to the on-failure queue: the function kept failing "
                            "on them; their coordinates are in the queue's messages")
        elif sink.excess and sink.name == "poison":
            problems.append(f"{seen.poison_added - expect.poison} unexpected poison record(s): read the poison queue's "
                            "messages for their topic, partition, offset and reason")
        elif sink.excess:
            problems.append(f"{sink.name}: more than this run published (a replay counted twice, or another "
                            "writer used the same windows)")
    if missing and telemetry.function_errors:
        problems.append(f"the consumer function failed {telemetry.function_errors} time(s) ({telemetry.errors_source})")
    if missing and telemetry.last_error:
        problems.append(f"last consumer error ({telemetry.log_source}): {telemetry.last_error}")
    # A mapping with a problem fails the check even when this run's data arrived through another.
    for mapping in mappings:
        problem = mapping.problem()
        if problem and not any(mapping.uuid in p for p in problems):
            problems.append(f"mapping {mapping.uuid} ({', '.join(mapping.topics)}): {problem}")
    excess = any(s.excess for s in sinks)
    ok = not missing and not excess and not problems
    return Verdict(ok=ok, sinks=sinks, problems=tuple(problems))


def render(title: str, published: list[str], result: Verdict, mappings: list[Mapping], telemetry: Telemetry,
           waited_s: float) -> str:
    """One screen: what was published, each sink, each mapping, and the diagnosis."""
    lines = [title, "", "published:"]
    lines += [f"  {p}" for p in published]
    lines += ["", f"after {waited_s:.0f}s:"]
    lines += [f"  {'ok  ' if s.reached and not s.excess else 'FAIL'} {s.line}" for s in result.sinks]
    lines += ["", "event source mappings:"]
    for m in mappings:
        lag = telemetry.offset_lag.get(m.uuid)
        lines.append(f"  {m.uuid}  {','.join(m.topics):<16} {m.state:<9} {m.reason or '-'}  "
                     f"last: {m.last_result or '-'}  OffsetLag: {'?' if lag is None else f'{lag:g}'}")
    if not mappings:
        lines.append("  (none)")
    errors = "?" if telemetry.function_errors is None else str(telemetry.function_errors)
    lines += ["", f"consumer Errors: {errors} ({telemetry.errors_source}); OffsetLag from {telemetry.lag_source}; "
              f"logs from {telemetry.log_source}"]
    if result.problems:
        lines += ["", "why:"] + [f"  - {p}" for p in result.problems]
    lines += ["", "PASS: every sink got this run's data and nothing unexpected was set aside" if result.ok
              else "FAIL: see above"]
    return "\n".join(lines)
