"""Building blocks of the fault tests: per-scenario sink namespaces, `cargo lambda watch`, the ESM
emulator processes, the throttling proxy, snapshots of every sink, and the stack's own controls.

A namespace is one complete set of sinks (DynamoDB tables, S3 bucket, poison and on-failure
queues, PostgreSQL database) plus one consumer group per topic, all named after the contract with
a run- and scenario-specific suffix. Every scenario consumes the same topics into its own
namespace, so their stored states can be compared byte for byte.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import boto3
from botocore.exceptions import ClientError
from confluent_kafka import Consumer, TopicPartition

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO_ROOT / "scripts" / "local"))
import verify  # noqa: E402  (scripts/local is not a package)

CONTRACT = verify.CONTRACT
NAMES = CONTRACT["envVars"]
TOPICS = CONTRACT["topics"]
INJECTED_CRASH_EXIT_CODE = 86  # functions/esm-emulator/src/faults.rs


class ScenarioFailed(Exception):
    pass


def log(message: str) -> None:
    print(f"[faults] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def environment(overrides: dict[str, str]):
    """Temporarily applies `overrides` to os.environ (verify.check reads its settings there)."""
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def aws_clients(endpoint: str) -> dict:
    session = boto3.Session(region_name=os.environ.get("AWS_REGION", "us-east-1"))
    return {name: session.client(name, endpoint_url=endpoint) for name in ("dynamodb", "s3", "sqs", "glue")}


def psql(database: str, sql: str, *, csv: bool = False) -> str:
    """As the local admin (owner of the databases); the consumer runs as its own role."""
    command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", os.environ[NAMES["pgHost"]], "-p", os.environ[NAMES["pgPort"]],
               "-U", os.environ["PIPELINE_PG_ADMIN_USER"], "-d", database]
    command += ["-tA"] if not csv else []
    result = subprocess.run(command + ["-c", sql], env={**os.environ, "PGPASSWORD": os.environ["PIPELINE_PG_ADMIN_PASSWORD"]},
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ScenarioFailed(f"psql on {database}: {result.stderr.strip()}")
    return result.stdout


# ── Sink namespaces ─────────────────────────────────────────────────────────
class Namespace:
    def __init__(self, run: str, name: str, topics: dict[str, str]):
        suffix = f"{run}-{name}"
        self.name = name
        self.topics = topics  # contract topic key -> topic name of this run
        self.tables = {key: f"{table['name']}-{suffix}" for key, table in CONTRACT["tables"].items()}
        self.bucket = f"{CONTRACT['bucket']['localName']}-{suffix}"
        poison = CONTRACT["queues"]["poison"]
        self.poison_queue = f"{poison.removesuffix('.fifo')}-{suffix}.fifo"
        self.on_failure_queue = f"{CONTRACT['queues']['onFailure']}-{suffix}"
        self.database = f"{CONTRACT['postgres']['database']}_{run}_{name}".replace("-", "_")
        self.groups = {key: f"{topic['consumerGroup']}-{suffix}" for key, topic in TOPICS.items()}
        self.queue_urls: dict[str, str] = {}
        self.aws = aws_clients(os.environ["AWS_ENDPOINT_URL"])

    def create(self) -> None:
        dynamodb, s3, sqs = self.aws["dynamodb"], self.aws["s3"], self.aws["sqs"]
        for key, table in verify.TYPED.tables.items():
            dynamodb.create_table(TableName=self.tables[key], BillingMode="PAY_PER_REQUEST", **table.key_schema())
        s3.create_bucket(Bucket=self.bucket)
        # The same attributes as scripts/local/provision.py gives the contract's queues.
        self.queue_urls["poison"] = sqs.create_queue(QueueName=self.poison_queue, Attributes={
            "MessageRetentionPeriod": "1209600", "FifoQueue": "true", "ContentBasedDeduplication": "false"})["QueueUrl"]
        self.queue_urls["onFailure"] = sqs.create_queue(QueueName=self.on_failure_queue,
                                                        Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
        psql("postgres", f'CREATE DATABASE "{self.database}"')
        # What db-admin does at deploy time: migrations and the consumer role's grants.
        stack("provision-database", self.database)

    def delete(self) -> None:
        dynamodb, s3, sqs = self.aws["dynamodb"], self.aws["s3"], self.aws["sqs"]
        with contextlib.suppress(ClientError):
            for table in self.tables.values():
                dynamodb.delete_table(TableName=table)
        with contextlib.suppress(ClientError):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
                for obj in page.get("Contents", []):
                    s3.delete_object(Bucket=self.bucket, Key=obj["Key"])
            s3.delete_bucket(Bucket=self.bucket)
        with contextlib.suppress(ClientError):
            for url in self.queue_urls.values():
                sqs.delete_queue(QueueUrl=url)
        with contextlib.suppress(ScenarioFailed):
            psql("postgres", f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    def env(self, aws_endpoint: str | None = None) -> dict[str, str]:
        """What the consumer (and verify.py) read, pointed at this namespace."""
        values = {
            NAMES["aggregatesTable"]: self.tables["windowAggregates"],
            NAMES["explicitEventsTable"]: self.tables["explicitEvents"],
            NAMES["storeEventsBucket"]: self.bucket,
            NAMES["poisonQueueUrl"]: self.queue_urls["poison"],
            "ON_FAILURE_QUEUE_URL": self.queue_urls["onFailure"],
            NAMES["pgDatabase"]: self.database,
            **{TOPICS[key]["envVar"]: name for key, name in self.topics.items()},
        }
        if aws_endpoint:
            values["AWS_ENDPOINT_URL"] = aws_endpoint
        return values

    # ── reading back ──
    def snapshot(self) -> dict:
        """Every sink's content, canonical: DynamoDB items, S3 keys and bytes (hashed), PostgreSQL
        rows and both queues. Reading the queues empties them (see verify.take_queue)."""
        dynamodb, s3, sqs = self.aws["dynamodb"], self.aws["s3"], self.aws["sqs"]
        state: dict = {}
        for key, table in self.tables.items():
            items = [json.dumps(item, sort_keys=True) for item in verify.scan(dynamodb, table)]
            state[f"dynamodb:{key}"] = sorted(items)
        objects = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                objects[obj["Key"]] = hashlib.sha256(body).hexdigest()
        state["s3"] = objects
        for table in (CONTRACT["postgres"]["salesTable"], CONTRACT["postgres"]["inventoryTable"]):
            rows = psql(self.database, f'COPY (SELECT * FROM "{table}" ORDER BY "topic", "partition", "offset") TO STDOUT WITH CSV',
                        csv=True)
            state[f"postgres:{table}"] = rows.splitlines()
        poison = verify.take_queue(sqs, self.queue_urls["poison"])
        state["poison_bodies"] = poison
        # An offloaded message names this namespace's bucket; the rest must match across namespaces.
        state["poison"] = sorted(json.dumps(b, sort_keys=True).replace(f'"bucket": "{self.bucket}"', '"bucket": "<bucket>"')
                                 for b in poison)
        state["onFailure"] = sorted(json.dumps(b, sort_keys=True) for b in verify.take_queue(sqs, self.queue_urls["onFailure"]))
        return state

    def committed(self, key: str, partitions: int) -> dict[int, int]:
        """The group's committed offsets per partition (read from the broker, not the ESM)."""
        consumer = Consumer({"bootstrap.servers": os.environ[NAMES["kafkaBootstrapServers"]], "group.id": self.groups[key],
                             "enable.auto.commit": False, "log_level": 0})
        try:
            offsets = consumer.committed([TopicPartition(self.topics[key], p) for p in range(partitions)], timeout=15)
        finally:
            consumer.close()
        return {tp.partition: tp.offset for tp in offsets}


def compare(expected: dict, actual: dict) -> list[str]:
    """Differences between two snapshots, the first few per sink."""
    problems = []
    for part in sorted(set(expected) | set(actual)):
        want, got = expected.get(part), actual.get(part)
        if want == got:
            continue
        if isinstance(want, dict) and isinstance(got, dict):
            keys = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
            problems.append(f"{part}: {len(keys)} object(s) differ, e.g. {keys[:3]}")
        elif isinstance(want, list) and isinstance(got, list):
            missing = [x for x in want if x not in got][:2]
            extra = [x for x in got if x not in want][:2]
            problems.append(f"{part}: {len(want)} expected, {len(got)} stored; missing {missing}, unexpected {extra}"[:1500])
        else:
            problems.append(f"{part}: differs")
    return problems


# ── Processes ───────────────────────────────────────────────────────────────
class Dirs:
    """Where a run keeps logs (scanned by the security checks) and state (env files, status)."""

    def __init__(self, log: pathlib.Path, run: pathlib.Path):
        self.log, self.run = log, run
        log.mkdir(parents=True, exist_ok=True)
        run.mkdir(parents=True, exist_ok=True)


class Process:
    """A child in its own session, so stopping it stops its children too."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: pathlib.Path):
        self.name, self.command, self.env, self.log_path = name, command, env, log_path
        self.popen: subprocess.Popen | None = None

    def start(self) -> "Process":
        with open(self.log_path, "ab") as out:
            self.popen = subprocess.Popen(self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, cwd=REPO_ROOT, start_new_session=True)
        return self

    def poll(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def stop(self) -> None:
        if not self.popen or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class CommitProbe:
    """Committed records per topic of a namespace, read from the broker as the mappings go."""

    def __init__(self, namespace: Namespace):
        self.namespace = namespace
        self.consumers = {key: Consumer({"bootstrap.servers": os.environ[NAMES["kafkaBootstrapServers"]],
                                         "group.id": group, "enable.auto.commit": False, "log_level": 0})
                          for key, group in namespace.groups.items()}
        self.last: dict[str, int] = {key: 0 for key in self.consumers}

    def committed(self, key: str) -> int:
        topic, partitions = self.namespace.topics[key], int(TOPICS[key]["partitions"])
        try:
            offsets = self.consumers[key].committed([TopicPartition(topic, p) for p in range(partitions)], timeout=5)
            self.last[key] = sum(max(tp.offset, 0) for tp in offsets)
        except Exception:  # noqa: BLE001 - the broker may be restarting: keep the last value
            pass
        return self.last[key]

    def close(self) -> None:
        for consumer in self.consumers.values():
            consumer.close()


class PortInUse(ScenarioFailed):
    pass


def cargo_lambda() -> str:
    """The checkouts' shared cargo-lambda, as scripts/lib/prologue.sh exports it."""
    path = os.environ.get("CARGO_LAMBDA")
    if not path:
        raise ScenarioFailed("CARGO_LAMBDA is not set: run through scripts/faults.sh or scripts/check-deployment.sh")
    return path


class LambdaWatch(Process):
    """`cargo lambda watch` serving the producer and the consumer with one environment."""

    def __init__(self, name: str, port: int, env: dict[str, str], dirs: "Dirs"):
        env_file = dirs.run / f"lambda-{name}.env"
        # The functions' log level and format, as Lambda sets them from the CDK's logging config.
        env = {"AWS_LAMBDA_LOG_LEVEL": "INFO", "AWS_LAMBDA_LOG_FORMAT": "JSON", **env}
        env_file.write_text("".join(f"{k}={v}\n" for k, v in sorted(env.items())
                                    if k in ("AWS_LAMBDA_LOG_LEVEL", "AWS_LAMBDA_LOG_FORMAT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                                             "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL") or k in NAMES.values()
                                    or k == "ON_FAILURE_QUEUE_URL"))
        command = [cargo_lambda(), "lambda", "watch", "--invoke-address", "127.0.0.1",
                   "--invoke-port", str(port), "--ignore-changes", "--env-file", str(env_file)]
        # No RUST_LOG for cargo-lambda itself: at info it logs every function's full environment,
        # secrets included.
        process_env = {k: v for k, v in env.items() if k != "RUST_LOG"}
        super().__init__(f"lambda-{name}", command, process_env, dirs.log / f"lambda-{name}.log")
        self.port = port

    def url(self, function: str) -> str:
        return f"http://127.0.0.1:{self.port}/2015-03-31/functions/{function}/invocations"

    def start(self) -> "LambdaWatch":
        super().start()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.poll() is not None:
                if "Address in use" in self.tail(40):
                    raise PortInUse(f"port {self.port} is in use")
                raise ScenarioFailed(f"cargo lambda watch exited: {self.tail()}")
            try:
                urllib.request.urlopen(urllib.request.Request(self.url("none"), data=b"{}", method="POST"), timeout=5)
                return self
            except urllib.error.HTTPError:
                return self  # it answers (404 for an unknown function): ready
            except OSError:
                time.sleep(0.3)
        raise ScenarioFailed(f"cargo lambda watch did not answer on port {self.port}: {self.tail()}")

    def invoke(self, function: str, payload: dict | list, timeout: float = 300) -> tuple[int, str]:
        request = urllib.request.Request(self.url(function), data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")


class Mapping:
    """One ESM emulator process for one topic, restarted after injected crashes."""

    def __init__(self, esm_binary: str, namespace: Namespace, key: str, watch: LambdaWatch, dirs: "Dirs", *,
                 batch_size: int, fault_args: list[str] | None = None, crash_after_batches: int | None = None,
                 crash_lives: int = 0, retry_max_backoff_ms: int = 5000):
        self.key, self.namespace = key, namespace
        self.status_file = dirs.run / f"esm-{namespace.name}-{key}.json"
        self.base = [esm_binary, "--topic", namespace.topics[key], "--consumer-group", namespace.groups[key],
                     "--bootstrap-servers", os.environ[NAMES["kafkaBootstrapServers"]], "--starting-position", "TRIM_HORIZON",
                     "--batch-size", str(batch_size), "--batching-window-secs", "0.2",
                     # As deployed: no MaximumRetryAttempts and an on-failure queue, so a failing batch gets at
                     # most 10 retries (as on AWS) and is then skipped to the queue. With this backoff the
                     # ten retries span about 31 s (0.2, 0.4, 0.8, 1.6, 3.2, then 5 s each), longer than any
                     # outage a self-healing scenario injects (10 s at most); `retry_max_backoff_ms` lets a
                     # scenario shorten it to make an outage outlast the retries.
                     "--maximum-retry-attempts", "-1", "--retry-initial-backoff-ms", "200",
                     "--retry-max-backoff-ms", str(retry_max_backoff_ms),
                     "--function-name", "consumer", "--invoke-endpoint", f"http://127.0.0.1:{watch.port}",
                     "--on-failure-queue-url", namespace.queue_urls["onFailure"], "--status-file", str(self.status_file),
                     "--exit-when-idle-secs", "1.5", *(fault_args or [])]
        self.crash_after_batches, self.crash_lives = crash_after_batches, crash_lives
        self.crashes = 0
        self.log_path = dirs.log / f"esm-{namespace.name}-{key}.log"
        self.env = {**os.environ, "RUST_LOG": "info,rdkafka=warn"}
        self.process: Process | None = None
        self.done = False

    def start(self) -> None:
        command = list(self.base)
        if self.crash_after_batches and self.crashes < self.crash_lives:
            command += ["--fault-crash-after-batches", str(self.crash_after_batches)]
        self.process = Process(f"esm-{self.key}", command, self.env, self.log_path).start()

    def check(self) -> None:
        """Notices an exit: restarts after an injected crash, marks done on a clean exit."""
        if self.done or not self.process:
            return
        code = self.process.poll()
        if code is None:
            return
        if code == INJECTED_CRASH_EXIT_CODE:
            self.crashes += 1
            self.start()
        elif code == 0:
            self.done = True
        else:
            raise ScenarioFailed(f"ESM for {self.key} exited with {code}: {self.process.tail()}")

    def status(self) -> dict:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}

    def stop(self) -> None:
        if self.process:
            self.process.stop()


def run_mappings(mappings: list[Mapping], timeout: float, on_progress=None) -> None:
    """Runs the mappings until each has caught up and exited; `on_progress()` is called in
    between (outage injection)."""
    for mapping in mappings:
        mapping.start()
    deadline = time.monotonic() + timeout
    try:
        while not all(m.done for m in mappings):
            for mapping in mappings:
                mapping.check()
            if on_progress:
                on_progress()
            if time.monotonic() > deadline:
                lagging = {m.key: m.status().get("totalLag") for m in mappings if not m.done}
                raise ScenarioFailed(f"not caught up after {timeout:.0f}s (lag {lagging})")
            time.sleep(0.2)
    finally:
        for mapping in mappings:
            mapping.stop()


def stack(*args: str) -> None:
    """scripts/local-stack.sh with the current PIPELINE_* environment."""
    result = subprocess.run([str(REPO_ROOT / "scripts" / "local-stack.sh"), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ScenarioFailed(f"local-stack.sh {' '.join(args)}: {result.stderr.strip()[-800:]}")


def high_watermarks(topics: dict[str, str]) -> dict[tuple[str, int], int]:
    """Per partition, the offset after its last record. The corpus writes every partition, so
    ListOffsets answers (tansu refuses it only on partitions nobody wrote yet)."""
    consumer = Consumer({"bootstrap.servers": os.environ[NAMES["kafkaBootstrapServers"]], "group.id": "faults-watermarks",
                         "enable.auto.commit": False, "log_level": 0})
    try:
        return {(topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1]
                for key, topic in topics.items() for p in range(int(TOPICS[key]["partitions"]))}
    finally:
        consumer.close()
