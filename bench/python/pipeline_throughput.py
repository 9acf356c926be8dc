#!/usr/bin/env python3
"""Figure 5: the local pipeline's sustained throughput, produce to stored, with lag over time.

Needs the local stack (env from stack.env) and `cargo lambda watch` serving the producer and the
consumer on --lambda-port (scripts/bench.sh starts both). This script starts one esm-emulator
for the sensor topic in a fresh consumer group (LATEST, so only this run's records count; it
reads every partition, one batch at a time), waits until it polls, then invokes the producer
function `--requests` times in a row (each a `simulate_sensors` request of --devices x
--readings-per-device, consecutive event times) while sampling the mapping's status file. A
record counts as stored when the mapping has delivered its batch, i.e. the consumer returned
success after writing its sinks.

Prints one JSON line: records, produce time, time until every record was stored, the sustained
rate (records / (last stored - first produce call)), and lag samples.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log(message):
    print(f"[pipeline] {message}", file=sys.stderr, flush=True)


sys.path.insert(0, os.path.join(REPO_ROOT, "scripts", "local"))
import contract as contracts  # noqa: E402 - the harness's one contract reader


def contract():
    return contracts.load().raw


def invoke(port, function, payload, timeout=600):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/2015-03-31/functions/{function}/invocations",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    document = json.loads(body)
    if isinstance(document, dict) and "errorType" in document:
        raise RuntimeError(f"{function} failed: {body[:500]!r}")
    return document


def read_status(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lambda-port", type=int, required=True)
    parser.add_argument("--emulator", required=True, help="esm-emulator binary")
    parser.add_argument("--work-dir", required=True, help="status files and logs go here")
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--readings-per-device", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--interval-ms", type=int, default=1000, help="event-time step of one device")
    parser.add_argument("--format", default="avro", choices=["avro", "json"])
    parser.add_argument("--batch-size", type=int, default=10000)
    parser.add_argument("--batching-window-secs", type=float, default=None,
                        help="default: the contract's esmBatchingWindowSeconds")
    parser.add_argument("--sample-secs", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
                        help="the broker the producer function writes to (default: KAFKA_BOOTSTRAP_SERVERS)")
    parser.add_argument("--broker-label", default="sqlite")
    args = parser.parse_args()

    c = contract()
    topic = c["topics"]["sensorReadings"]["name"]
    window = args.batching_window_secs
    if window is None:
        window = c["defaults"]["esmBatchingWindowSeconds"]
    group = f"bench-throughput-{int(time.time())}"
    os.makedirs(args.work_dir, exist_ok=True)
    total = args.devices * args.readings_per_device * args.requests

    mappings = []
    for index in range(1):
        status = os.path.join(args.work_dir, f"esm-{index}.json")
        if os.path.exists(status):
            os.remove(status)
        logfile = open(os.path.join(args.work_dir, f"esm-{index}.log"), "w")
        process = subprocess.Popen(
            [args.emulator, "--topic", topic, "--consumer-group", group,
             "--bootstrap-servers", args.bootstrap, "--starting-position", "LATEST",
             "--batch-size", str(args.batch_size), "--batching-window-secs", str(window),
             "--maximum-retry-attempts", "3", "--retry-initial-backoff-ms", "500", "--retry-max-backoff-ms", "5000",
             "--function-name", "consumer", "--invoke-endpoint", f"http://127.0.0.1:{args.lambda_port}",
             "--status-file", status],
            stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        mappings.append((process, status))

    def stop_mappings():
        for process, _ in mappings:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process, _ in mappings:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    try:
        # LATEST resolves when a mapping first gets its partitions: wait for every mapping to poll.
        deadline = time.time() + 120
        while True:
            states = [read_status(status) for _, status in mappings]
            assigned = sum(len(s["partitions"]) for s in states if s)
            if all(s and s["state"] in ("polling", "idle") for s in states) and assigned >= 1:
                break
            for process, _ in mappings:
                if process.poll() is not None:
                    raise SystemExit(f"an esm-emulator exited ({process.returncode}); see {args.work_dir}")
            if time.time() > deadline:
                raise SystemExit(f"the mappings did not start polling; see {args.work_dir}")
            time.sleep(0.2)
        # Give the group a moment to settle its assignment before producing.
        time.sleep(2)

        produced = {"records": 0, "done_at": None, "error": None}

        def producer():
            try:
                for index in range(args.requests):
                    start = 1_767_225_600_000 + index * args.readings_per_device * args.interval_ms
                    summary = invoke(args.lambda_port, "producer", {
                        "action": "simulate_sensors", "devices": args.devices,
                        "readings_per_device": args.readings_per_device, "seed": 7 + index,
                        "start_time_ms": start, "interval_ms": args.interval_ms, "format": args.format,
                    })
                    produced["records"] += sum(summary["produced"].values())
                produced["done_at"] = time.time()
            except Exception as error:  # reported below; the sampler stops on it
                produced["error"] = error

        samples = []
        started = time.time()
        thread = threading.Thread(target=producer, daemon=True)
        thread.start()
        stored_at = None
        while True:
            time.sleep(args.sample_secs)
            now = time.time() - started
            states = [read_status(status) for _, status in mappings]
            delivered = sum(s["counters"]["recordsDelivered"] for s in states if s)
            lag = sum(s["totalLag"] for s in states if s)
            failures = sum(s["counters"]["functionErrors"] for s in states if s)
            samples.append({"t_s": round(now, 2), "produced": produced["records"], "stored": delivered,
                            "lag": lag, "function_errors": failures})
            log(f"t={now:6.1f}s produced {produced['records']:>8} stored {delivered:>8} lag {lag:>8}")
            if produced["error"] is not None:
                raise SystemExit(f"producer failed: {produced['error']}")
            if delivered >= total:
                stored_at = time.time()
                break
            if now > args.timeout:
                raise SystemExit(f"only {delivered} of {total} records stored after {args.timeout}s")
        thread.join()
        result = {
            "figure": "pipeline", "impl": "ours", "broker": args.broker_label, "records": total,
            "format": args.format,
            "devices": args.devices, "interval_ms": args.interval_ms, "batch_size": args.batch_size,
            "mappings": len(mappings),
            "produce_s": round(produced["done_at"] - started, 3),
            "stored_s": round(stored_at - started, 3),
            "produce_records_per_s": total / (produced["done_at"] - started),
            "records_per_s": total / (stored_at - started),
            "samples": samples,
        }
        log(f"{total} records: produced in {result['produce_s']:.1f}s, stored in {result['stored_s']:.1f}s "
            f"= {result['records_per_s']:,.0f} records/s sustained")
        print(json.dumps(result), flush=True)
    finally:
        stop_mappings()


if __name__ == "__main__":
    main()
