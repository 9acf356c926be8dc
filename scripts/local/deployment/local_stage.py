"""scripts/test.sh's `deploy` stage: the post-deploy check against the running local pipeline.

1. `cargo lambda watch` (producer, consumer) and one esm-emulator per contract topic, each serving
   the Lambda API's mapping reads on its own loopback port, like a deployed consumer-stack.
2. scripts/check-deployment.sh pointed at them must pass (exit 0).
3. The sensor mapping is replaced by one reading a topic that does not exist: the same check must
   fail (exit 1), name that mapping's "PROBLEM: Topic not found" and show the window sink missing.

Usage: local_stage.py --esm BINARY --port-base PORT --env-file .local/test/stack.env --logdir DIR --rundir DIR
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
sys.path.insert(0, str(REPO_ROOT / "scripts" / "local" / "faults"))
import harness  # noqa: E402  (the fault tests' process helpers: cargo lambda watch, child processes)

from deployment import plan, sources  # noqa: E402

MISSING_TOPIC_SUFFIX = "-does-not-exist"


def log(message: str) -> None:
    print(f"[deploy] {message}", file=sys.stderr, flush=True)


class Stage:
    def __init__(self, args):
        self.args = args
        self.env = {**os.environ, **sources.read_env_file(args.env_file)}
        self.dirs = harness.Dirs(args.logdir, args.rundir)
        self.watch: harness.LambdaWatch | None = None
        self.mappings: list[harness.Process] = []

    def start_functions(self) -> None:
        self.watch = harness.LambdaWatch("deploy-check", self.args.port_base, self.env, self.dirs).start()

    def mapping_port(self, index: int) -> int:
        return self.args.port_base + 1 + index

    def start_mappings(self, topic_override: dict[str, str]) -> tuple[list[str], list[pathlib.Path]]:
        defaults = plan.CONTRACT["defaults"]
        apis, status_files = [], []
        for index, (key, contract_topic) in enumerate(sorted(plan.CONTRACT["topics"].items())):
            topic = topic_override.get(key, contract_topic["name"])
            status = self.dirs.run / f"deploy-check-esm-{key}.json"
            status.unlink(missing_ok=True)
            port = self.mapping_port(index)
            command = [self.args.esm, "--topic", topic, "--consumer-group", contract_topic["consumerGroup"],
                       "--bootstrap-servers", self.env["KAFKA_BOOTSTRAP_SERVERS"], "--starting-position", "TRIM_HORIZON",
                       "--batch-size", str(defaults["esmBatchSize"]), "--batching-window-secs", str(defaults["esmBatchingWindowSeconds"]),
                       # With an on-failure destination and unlimited retries AWS applies at most 10 (kafka-retry-configurations.html).
                       "--maximum-retry-attempts", "10", "--retry-initial-backoff-ms", "200", "--retry-max-backoff-ms", "2000",
                       "--function-name", "consumer", "--invoke-endpoint", f"http://127.0.0.1:{self.watch.port}",
                       "--on-failure-queue-url", self.env["ON_FAILURE_QUEUE_URL"], "--status-file", str(status),
                       "--mapping-api-address", f"127.0.0.1:{port}", "--retry-connect-secs", "2"]
            process = harness.Process(f"esm-{key}", command, {**self.env, "RUST_LOG": "info,rdkafka=warn"},
                                      self.dirs.log / f"deploy-check-esm-{key}.log").start()
            self.mappings.append(process)
            apis.append(f"http://127.0.0.1:{port}")
            status_files.append(status)
        for api, process in zip(apis, self.mappings):
            self.wait_for_api(api, process)
        return apis, status_files

    @staticmethod
    def wait_for_api(api: str, process: harness.Process) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise harness.ScenarioFailed(f"{process.name} exited: {process.tail()}")
            try:
                with urllib.request.urlopen(f"{api}/2015-03-31/event-source-mappings/", timeout=2) as response:
                    json.loads(response.read())
                    return
            except (OSError, urllib.error.URLError, ValueError):
                time.sleep(0.3)
        raise harness.ScenarioFailed(f"{process.name}'s mapping API did not answer on {api}: {process.tail()}")

    def stop_mappings(self) -> None:
        for process in self.mappings:
            process.stop()
        self.mappings = []

    def check(self, apis: list[str], status_files: list[pathlib.Path], timeout: float) -> tuple[int, str]:
        command = [str(REPO_ROOT / "scripts" / "check-deployment.sh"), "--local-env", str(self.args.env_file),
                   "--lambda-endpoint", f"http://127.0.0.1:{self.watch.port}", "--function-log", str(self.watch.log_path),
                   "--timeout", str(timeout)]
        for api in apis:
            command += ["--mapping-api", api]
        for status in status_files:
            command += ["--mapping-status", str(status)]
        result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO_ROOT)
        sys.stderr.write(result.stderr)
        print(result.stdout, flush=True)
        return result.returncode, result.stdout

    def run(self) -> int:
        failures = []
        self.start_functions()
        apis, status_files = self.start_mappings({})
        log("healthy pipeline: the check must pass")
        code, _ = self.check(apis, status_files, timeout=180)
        if code != 0:
            failures.append(f"the check of the healthy local pipeline exited {code}, expected 0")
        self.stop_mappings()

        missing = plan.topic("sensorReadings") + MISSING_TOPIC_SUFFIX
        log(f"broken pipeline: the sensor mapping reads {missing}; the check must fail and say why")
        apis, status_files = self.start_mappings({"sensorReadings": missing})
        code, screen = self.check(apis, status_files, timeout=30)
        expected = ["PROBLEM: Topic not found.", f"no event source mapping reads {plan.topic('sensorReadings')}",
                    "FAIL DynamoDB"]
        if code != 1:
            failures.append(f"the check of the broken pipeline exited {code}, expected 1")
        failures += [f"the broken pipeline's screen lacks {text!r}" for text in expected if text not in screen]
        for failure in failures:
            log(f"FAIL {failure}")
        if not failures:
            log("PASS the check passes on the healthy pipeline and names the broken mapping's problem")
        return 1 if failures else 0

    def close(self) -> None:
        self.stop_mappings()
        if self.watch:
            self.watch.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--esm", required=True)
    parser.add_argument("--port-base", type=int, required=True)
    parser.add_argument("--env-file", type=pathlib.Path, required=True)
    parser.add_argument("--logdir", type=pathlib.Path, required=True)
    parser.add_argument("--rundir", type=pathlib.Path, required=True)
    stage = Stage(parser.parse_args())
    try:
        return stage.run()
    except harness.ScenarioFailed as error:
        log(f"FAIL {error}")
        return 1
    finally:
        stage.close()


if __name__ == "__main__":
    sys.exit(main())
