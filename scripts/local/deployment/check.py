"""The post-deploy check: invoke the producer with a fixed request, wait (bounded) for each sink,
print one screen, exit 0 only when everything arrived and nothing unexpected was set aside."""

from __future__ import annotations

import sys
import time
import uuid

from botocore.exceptions import BotoCoreError, ClientError

from . import diagnosis, plan, sources

POLL_SECONDS = 5.0


def published_lines(reqs: list[dict], responses: list[dict]) -> list[str]:
    lines = []
    for request, response in zip(reqs, responses, strict=True):
        produced = ", ".join(f"{n} {kind}" for kind, n in sorted(response.get("produced", {}).items())) or "nothing"
        malformed = f", {response['malformed']} malformed" if response.get("malformed") else ""
        where = "; ".join(f"p{p} {r['first']}..{r['last']}" for p, r in
                          sorted(response.get("partitions", {}).get(response.get("topic"), {}).items(), key=lambda i: int(i[0])))
        lines.append(f"{request['action']} -> {response.get('topic')}: {produced}{malformed} ({response.get('format')}; {where})")
    return lines


def observe(deployment, expect: plan.Expectations, before: dict, on_failure_url: str | None) -> diagnosis.Sinks:
    reader = deployment.sinks
    return diagnosis.Sinks(
        windows_before=before["windows"],
        windows_after=reader.window_counts(list(expect.windows)),
        archived=reader.archived(expect),
        explicit=reader.explicit_items(expect.explicit_spans),
        poison_added=reader.queue_depth(deployment.target.poison_queue_url) - before["poison"],
        on_failure_added=(reader.queue_depth(on_failure_url) - before["on_failure"]) if on_failure_url else 0,
    )


def on_failure_queue(deployment, mappings: list[diagnosis.Mapping]) -> str | None:
    destinations = sorted({m.destination for m in mappings if m.destination})
    if not destinations:
        return None
    return sources.queue_url_from_arn(deployment.sqs, destinations[0])


def run(deployment, timeout: float, out=sys.stdout) -> int:
    target = deployment.target
    started = time.time()
    mappings = [diagnosis.Mapping.from_aws(m) for m in deployment.mappings()]
    on_failure_url = on_failure_queue(deployment, mappings)
    reqs = plan.requests(int(started * 1000), target.window_seconds, f"check-{uuid.uuid4().hex[:8]}")
    windows = plan.sensor_windows(reqs[0], target.window_seconds)
    before = {
        "windows": deployment.sinks.window_counts(list(windows)),
        "poison": deployment.sinks.queue_depth(target.poison_queue_url),
        "on_failure": deployment.sinks.queue_depth(on_failure_url) if on_failure_url else 0,
    }
    responses = [deployment.invoke_producer(r) for r in reqs]
    expect = plan.expectations(reqs, responses, target.window_seconds)
    names = {"windows": target.windows_table, "explicit": target.explicit_table,
             "archive": f"s3://{target.bucket}/{target.archive_prefix}",
             "poison": target.poison_queue_url.rsplit("/", 1)[-1],
             "on_failure": on_failure_url.rsplit("/", 1)[-1] if on_failure_url else "on-failure queue (none configured)"}
    deadline = time.monotonic() + timeout
    while True:
        mappings = [diagnosis.Mapping.from_aws(m) for m in deployment.mappings()]
        seen = observe(deployment, expect, before, on_failure_url)
        telemetry = deployment.telemetry(mappings, started)
        result = diagnosis.verdict(expect, seen, mappings, telemetry, names)
        if result.ok or time.monotonic() >= deadline:
            break
        reached = sum(s.reached and not s.excess for s in result.sinks)
        print(f"[check] {time.time() - started:4.0f}s: {reached}/{len(result.sinks)} sinks as expected", file=sys.stderr, flush=True)
        sources.wait_seconds(POLL_SECONDS, deadline)
    print(diagnosis.render(f"post-deploy check of {target.description}", published_lines(reqs, responses), result,
                           mappings, telemetry, time.time() - started), file=out, flush=True)
    return 0 if result.ok else 1


def main_check(deployment_factory, timeout: float) -> int:
    try:
        return run(deployment_factory(), timeout)
    except (sources.SetupError, plan.ResponseError) as error:
        print(f"[check] ERROR: {error}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as error:
        print(f"[check] ERROR: an AWS call failed: {error}", file=sys.stderr)
        return 2
