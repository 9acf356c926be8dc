#!/usr/bin/env python3
"""The fault tests of the local pipeline (run by scripts/faults.sh; docs/guarantees.md lists what
each one proves). Everything runs against the real components: tansu, moto, PostgreSQL, the
producer and consumer Lambdas under `cargo lambda watch`, and the esm-emulator.

1. input      Fresh topics for this run, filled once through the real producer Lambda (fixed seeds,
              Avro and JSON) with the poison corpus (corpus.py) produced raw in between.
2. Scenarios  Each consumes those same topics into its own namespace of sinks (harness.Namespace):
   clean        plain ESMs: the reference state
   redelivery   every batch invoked twice, the ESM killed after the function wrote its sinks and
                before the commit (then restarted), random parts of committed batches replayed
   outages      the broker restarts, moto is down (paused) for 10 s, PostgreSQL restarts, all
                while the mappings are consuming
   throttling   the consumer's AWS calls go through throttle_proxy.py, which answers a share of
                DynamoDB, S3 and SQS calls with AWS's throttling errors
   skip         the AWS endpoint refuses connections until every mapping has given up on a batch
                after its 10 retries (as AWS does with an on-failure destination) and moved on; then
                `esm-redrive` re-reads the skipped offset ranges from the broker and invokes the
                consumer with them. A range the broker does not return makes it fail loudly.
   Each is checked against the ground truth (verify.check: every record exactly once in a sink or
   a failure queue; aggregates recomputed from the topics), against the clean state (byte for
   byte: DynamoDB items, S3 objects, PostgreSQL rows, poison messages), and for committed offsets
   at every partition's end with nothing left in the on-failure queue (and, but for skip, nothing
   ever given up to it).
3. poison corpus  each corpus record is in the clean run's poison queue with its coordinates and
                  the expected reason (at most 1,024 bytes, never quoting the value); the partition
                  got past it.
4. producer input invalid requests get a clear error and publish nothing (high watermarks and
                  registry versions unchanged).

One line per scenario on stdout (`PASS|FAIL name (seconds): detail`); exit 1 if any failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import traceback
import uuid

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import corpus as corpus_module  # noqa: E402
import harness  # noqa: E402
from harness import CONTRACT, NAMES, TOPICS, ScenarioFailed, log  # noqa: E402

EXPLICIT_SCHEMA = "com.example.FaultsOrder"
PORTS = 20
START_MS = 1767225600000
# limits::MAX_POISON_REASON_BYTES
MAX_POISON_REASON_BYTES = 1024


def input_requests(topics: dict[str, str]) -> list[list[dict]]:
    """Producer requests in rounds; the corpus is produced between the first and second rounds."""
    explicit = lambda start: [  # noqa: E731
        {"order_id": f"o-{start + i}", "amount": 10.5 + i, "currency": "EUR", "lines": [{"sku": 100000 + i, "qty": 1 + i % 3}]}
        for i in range(3)]
    return [
        [
            {"action": "simulate_sensors", "devices": 6, "readings_per_device": 40, "seed": 42, "start_time_ms": START_MS,
             "interval_ms": 5000},
            {"action": "simulate_store_events", "count": 80, "malformed_share": 0.05, "seed": 42,
             "start_time_micros": START_MS * 1000, "compression": "zlib"},
            {"action": "publish_events", "schema_name": EXPLICIT_SCHEMA, "key_field": "order_id", "events": explicit(1000)},
        ],
        [
            {"action": "simulate_sensors", "devices": 6, "readings_per_device": 40, "seed": 43,
             "start_time_ms": START_MS + 40 * 5000, "interval_ms": 5000, "format": "json"},
            {"action": "simulate_store_events", "count": 80, "malformed_share": 0.05, "seed": 43,
             "start_time_micros": (START_MS + 3_600_000) * 1000, "format": "json"},
            {"action": "publish_events", "schema_name": EXPLICIT_SCHEMA, "key_field": "order_id", "events": explicit(2000)},
        ],
    ]


class Run:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.run_id = "f" + uuid.uuid4().hex[:6]
        self.dirs = harness.Dirs(pathlib.Path(args.logdir) / f"faults-{self.run_id}",
                                 pathlib.Path(args.rundir) / f"faults-{self.run_id}")
        self.topics = {key: f"{topic['name']}-{self.run_id}" for key, topic in TOPICS.items()}
        self.port_cursor = 0
        self.namespaces: list[harness.Namespace] = []
        self.corpus: list[tuple[corpus_module.PoisonRecord, str, int, int]] = []  # record, topic, partition, offset
        self.total_records = 0
        self.marks: dict[tuple[str, int], int] = {}
        self.clean_state: dict | None = None
        self.results: list[tuple[str, bool, float, str]] = []
        self.input_watch: harness.LambdaWatch | None = None

    # ── helpers ──
    def next_port(self) -> int:
        """The next of our 20 ports that can be bound now: each lies in Linux's ephemeral range, so
        an outgoing connection may hold one for a while."""
        for _ in range(PORTS):
            port = self.args.port_base + self.port_cursor % PORTS
            self.port_cursor += 1
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    continue
        raise ScenarioFailed(f"none of the ports {self.args.port_base}..{self.args.port_base + PORTS - 1} is free")

    def start_watch(self, name: str, env: dict[str, str]) -> harness.LambdaWatch:
        for _ in range(3):
            try:
                return harness.LambdaWatch(name, self.next_port(), env, self.dirs).start()
            except harness.PortInUse as error:
                log(f"   {error}; trying another port")
        raise ScenarioFailed("cargo lambda watch found no free port")

    def lambda_env(self, namespace: harness.Namespace | None = None, aws_endpoint: str | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update({TOPICS[key]["envVar"]: name for key, name in self.topics.items()})
        if namespace:
            env.update(namespace.env(aws_endpoint))
        return env

    def namespace(self, name: str) -> harness.Namespace:
        namespace = harness.Namespace(self.run_id, name, self.topics)
        namespace.create()
        self.namespaces.append(namespace)
        return namespace

    def corrupt_args(self, key: str) -> list[str]:
        spots = [f"{p}:{o}" for record, _, p, o in self.corpus if record.topic_key == key and record.corrupt_in_event]
        return ["--fault-corrupt-value", ",".join(spots)] if spots else []

    def scenario(self, name: str, body) -> None:
        started = time.monotonic()
        log(f"── {name}")
        try:
            detail = body() or ""
            self.results.append((name, True, time.monotonic() - started, detail))
        except ScenarioFailed as error:
            self.results.append((name, False, time.monotonic() - started, str(error)))
        except Exception as error:  # noqa: BLE001 - report any crash of the harness as a failed scenario
            traceback.print_exc()
            self.results.append((name, False, time.monotonic() - started, f"{type(error).__name__}: {error}"))
        ok, seconds, detail = self.results[-1][1:]
        print(f"{'PASS' if ok else 'FAIL'} {name} ({seconds:.0f}s){': ' + detail if detail else ''}", flush=True)

    # ── 1. input ──
    def produce_input(self) -> str:
        admin = AdminClient({"bootstrap.servers": os.environ[NAMES["kafkaBootstrapServers"]], "log_level": 0})
        wanted = {topic: int(TOPICS[key]["partitions"]) for key, topic in self.topics.items()}
        new_topics = [NewTopic(topic, num_partitions=n, replication_factor=1) for topic, n in wanted.items()]
        for future in admin.create_topics(new_topics, request_timeout=30).values():
            future.result()
        deadline = time.monotonic() + 30
        while True:
            listed = admin.list_topics(timeout=10).topics
            if all(t in listed and len(listed[t].partitions) >= n for t, n in wanted.items()):
                break
            if time.monotonic() > deadline:
                raise ScenarioFailed("run topics not visible after creation")
            time.sleep(0.3)

        self.input_watch = self.start_watch("input", self.lambda_env())
        rounds = input_requests(self.topics)
        self.produce_round(rounds[0])
        self.produce_corpus()
        self.produce_round(rounds[1])
        marks = self.marks = harness.high_watermarks(self.topics)
        self.total_records = sum(marks.values())
        # Every corpus record must have good records after it in its partition, or the test would
        # not show that the partition gets past it.
        for record, topic, partition, offset in self.corpus:
            if marks[(topic, partition)] <= offset + 1:
                raise ScenarioFailed(f"no record after the corpus record {record.description} in {topic}-{partition}")
        return f"{self.total_records} records in {len(self.topics)} topics ({len(self.corpus)} corpus records)"

    def produce_round(self, requests: list[dict]) -> None:
        for request in requests:
            status, body = self.input_watch.invoke("producer", request)
            if status != 200:
                raise ScenarioFailed(f"producer refused {request['action']}: HTTP {status} {body[:500]}")

    def produce_corpus(self) -> None:
        glue = harness.aws_clients(os.environ["AWS_ENDPOINT_URL"])["glue"]
        version = glue.get_schema_version(
            SchemaId={"RegistryName": os.environ[NAMES["registryName"]], "SchemaName": "SensorReading"},
            SchemaVersionNumber={"VersionNumber": 1})["SchemaVersionId"]
        registry = {"RegistryName": os.environ[NAMES["registryName"]]}

        def register(name: str, data_format: str, definition: str) -> uuid.UUID:
            created = glue.create_schema(RegistryId=registry, SchemaName=f"{name}-{self.run_id}", DataFormat=data_format,
                                         Compatibility="NONE", SchemaDefinition=definition)
            return uuid.UUID(created["SchemaVersionId"])

        records = corpus_module.corpus(corpus_module.SchemaVersions(
            sensor=uuid.UUID(version),
            sensor_micros=register("FaultsSensorMicros", "AVRO", corpus_module.SENSOR_MICROS_SCHEMA),
            json_schema=register("FaultsJsonSchema", "JSON", corpus_module.JSON_SCHEMA_DEFINITION)))
        producer = Producer({"bootstrap.servers": os.environ[NAMES["kafkaBootstrapServers"]], "linger.ms": 0,
                             "message.max.bytes": 2_000_000, "log_level": 0})
        delivered: list = []

        def on_delivery(error, message, record):
            if error:
                raise ScenarioFailed(f"corpus record {record.description}: {error}")
            delivered.append((record, message.topic(), message.partition(), message.offset()))

        for record in records:
            producer.produce(self.topics[record.topic_key], value=record.value, key=record.key, partition=record.partition,
                             on_delivery=lambda e, m, r=record: on_delivery(e, m, r))
            producer.flush(15)  # one at a time: offsets in corpus order
        if producer.flush(15) != 0 or len(delivered) != len(records):
            raise ScenarioFailed("corpus not fully delivered")
        self.corpus = delivered

    # ── 2. consumption scenarios ──
    def consume(self, name: str, *, batch_size: int = 40, fault_args: list[str] | None = None,
                crash_after_batches: int | None = None, crash_lives: int = 0, aws_endpoint: str | None = None,
                watcher=None, timeout: float = 240, retry_max_backoff_ms: int = 5000,
                after_mappings=None, consumer_env: dict[str, str] | None = None,
                ) -> tuple[harness.Namespace, list[harness.Mapping], dict]:
        """Consumes the run's topics into a new namespace. `watcher(namespace)` may return a
        callable the loop calls while the mappings run (outage injection); `after_mappings(namespace,
        watch, mappings)` runs once they have caught up, while the consumer is still served
        (redrive). A scenario that passes `after_mappings` expects skipped batches."""
        namespace = self.namespace(name)
        watch = self.start_watch(name, {**self.lambda_env(namespace, aws_endpoint), **(consumer_env or {})})
        try:
            mappings = [harness.Mapping(self.args.esm, namespace, key, watch, self.dirs, batch_size=batch_size,
                                        fault_args=[*(fault_args or []), *self.corrupt_args(key)],
                                        crash_after_batches=crash_after_batches, crash_lives=crash_lives,
                                        retry_max_backoff_ms=retry_max_backoff_ms)
                        for key in self.topics]
            harness.run_mappings(mappings, timeout, watcher(namespace) if watcher else None)
            if after_mappings:
                after_mappings(namespace, watch, mappings)
        finally:
            watch.stop()
        state = self.check_namespace(namespace, mappings, expect_skipped=after_mappings is not None)
        return namespace, mappings, state

    def check_namespace(self, namespace: harness.Namespace, mappings: list[harness.Mapping], *,
                        expect_skipped: bool = False) -> dict:
        problems = []
        for mapping in mappings:
            key = mapping.key
            committed = namespace.committed(key, int(TOPICS[key]["partitions"]))
            marks = harness.high_watermarks({key: self.topics[key]})
            for (topic, partition), high in marks.items():
                if committed.get(partition) != high:
                    problems.append(f"{topic}-{partition}: committed {committed.get(partition)}, end {high}")
            counters = mapping.status().get("counters", {})
            if (counters.get("batchesDiscarded") and not expect_skipped) or counters.get("recordsTooLarge"):
                problems.append(f"{key}: the mapping gave up on batches: {counters}")
        state = namespace.snapshot()
        if state["onFailure"]:
            problems.append(f"{len(state['onFailure'])} batch(es) in the on-failure queue")
        with harness.environment(namespace.env()):
            summary, differences = harness.verify.check(poison_bodies=state["poison_bodies"], failed_bodies=[])
        problems += [f"ground truth: {d}" for d in differences[:10]]
        if problems:
            raise ScenarioFailed("; ".join(problems[:8]))
        state["summary"] = summary
        return state

    def same_as_clean(self, state: dict) -> None:
        if self.clean_state is None:
            raise ScenarioFailed("no clean reference state (the clean scenario failed)")
        compared = lambda st: {k: v for k, v in st.items() if k not in ("summary", "poison_bodies")}  # noqa: E731
        problems = harness.compare(compared(self.clean_state), compared(state))
        if problems:
            raise ScenarioFailed("stored state differs from the clean run: " + "; ".join(problems))

    def scenario_clean(self) -> str:
        _, _, state = self.consume("clean")
        self.clean_state = state
        counts = state["summary"]
        return (f"ground truth holds: {len(state['dynamodb:windowAggregates'])} windows, "
                f"{len(state['postgres:sales']) + len(state['postgres:inventory'])} rows, {len(state['s3'])} objects, "
                f"{len(state['poison'])} poison; {json.dumps(counts, separators=(',', ':'))}")

    def scenario_poison_corpus(self) -> str:
        if self.clean_state is None:
            raise ScenarioFailed("no clean run to inspect")
        by_coordinates = {}
        for body in self.clean_state["poison_bodies"]:
            by_coordinates[(body["topic"], body["partition"], body["offset"])] = body
        problems = []
        for record, topic, partition, offset in self.corpus:
            body = by_coordinates.get((topic, partition, offset))
            if body is None:
                problems.append(f"{record.description} ({topic}-{partition}@{offset}) is not in the poison queue")
            elif body["reason_kind"] != record.reason_kind or not body.get("reason"):
                problems.append(f"{record.description}: reason {body['reason_kind']!r} ({body.get('reason')}), "
                                f"expected {record.reason_kind!r}")
            elif record.value is not None and len(record.value) > 200 * 1024 and not body.get("offloaded"):
                problems.append(f"{record.description}: the oversized message was not offloaded to S3")
            elif len(body["reason"].encode()) > MAX_POISON_REASON_BYTES or "x" * 64 in body["reason"]:
                problems.append(f"{record.description}: the reason is {len(body['reason'].encode())} bytes or quotes "
                                f"the value: {body['reason'][:200]}")
        if problems:
            raise ScenarioFailed("; ".join(problems))
        return f"{len(self.corpus)} corpus records set aside with coordinates and reason, every partition reached its end"

    def scenario_redelivery(self) -> str:
        _, mappings, state = self.consume(
            "redelivery", batch_size=25, crash_after_batches=3, crash_lives=3,
            fault_args=["--fault-deliver-twice", "--fault-replay-probability", "0.5", "--fault-seed", "11"])
        self.same_as_clean(state)
        crashes = sum(m.crashes for m in mappings)
        counters = [m.status().get("counters", {}) for m in mappings]
        duplicates = sum(c.get("injectedDuplicates", 0) for c in counters)
        replays = sum(c.get("injectedReplays", 0) for c in counters)
        if crashes < 3 or duplicates == 0 or replays == 0:
            raise ScenarioFailed(f"faults were not all injected: {crashes} crashes, {duplicates} duplicates, {replays} replays")
        return (f"{crashes} crashes between sink write and commit, {duplicates} double deliveries (last lives), "
                f"{replays} partial replays: state identical to the clean run")

    def scenario_outages(self) -> str:
        totals = {key: sum(n for (t, _), n in self.marks.items() if t == topic) for key, topic in self.topics.items()}
        store = "storeEvents"
        # Each outage starts once the mappings have committed a little more since the previous one
        # ended, and only while records are still waiting, so each one hits a running pipeline.
        # The consumer reaches moto through a pass-through proxy, so the AWS endpoint can also be
        # made to refuse connections for a while without losing moto's in-memory state.
        endpoint = {"proxy": None}
        endpoint["proxy"], port, _ = self.start_proxy("endpoint-proxy", ["--rate", "0", "--services", "none"])

        def refuse_connections() -> None:
            endpoint["proxy"].stop()
            time.sleep(10)
            endpoint["proxy"] = self.start_proxy("endpoint-proxy", ["--rate", "0", "--services", "none"], port)[0]

        plan = [
            ("broker restart", None,
             lambda: (harness.stack("stop", "kafka"), time.sleep(2), harness.stack("start", "kafka"))),
            # Early, while store events (the only PostgreSQL traffic, and few) are still waiting.
            ("PostgreSQL restart", store,
             lambda: (harness.stack("stop", "postgres"), time.sleep(3), harness.stack("start", "postgres"))),
            ("moto hanging 10 s (paused)", None,
             lambda: (harness.stack("pause", "moto"), time.sleep(10), harness.stack("resume", "moto"))),
            ("AWS endpoint refusing connections 10 s", None, refuse_connections),
        ]
        injected: list[str] = []
        probes: list[harness.CommitProbe] = []

        def watcher(namespace: harness.Namespace):
            probe = harness.CommitProbe(namespace)
            probes.append(probe)
            baseline = {"committed": 0}

            def watch() -> None:
                if not plan:
                    return
                name, only, action = plan[0]
                keys = [only] if only else list(self.topics)
                committed = sum(probe.committed(k) for k in keys)
                total = sum(totals[k] for k in keys)
                if committed < baseline["committed"] + max(1, total // 20):
                    return
                if committed >= total:
                    raise ScenarioFailed(f"consumption ended before the {name} could be injected")
                plan.pop(0)
                log(f"   injecting: {name} at {committed}/{total} committed")
                action()
                injected.append(f"{name} at {100 * committed // total}%")
                baseline["committed"] = sum(probe.committed(k) for k in ([plan[0][1]] if plan and plan[0][1] else self.topics))

            return watch

        try:
            _, mappings, state = self.consume("outages", batch_size=10, watcher=watcher,
                                              aws_endpoint=f"http://127.0.0.1:{port}")
        finally:
            endpoint["proxy"].stop()
            # Whatever happened, leave the stack running for the next scenarios.
            with_suppress(lambda: harness.stack("resume", "moto"))
            for component in ("kafka", "postgres"):
                with_suppress(lambda c=component: harness.stack("start", c))
            for probe in probes:
                probe.close()
        if plan:
            raise ScenarioFailed(f"consumption ended before every outage was injected ({[p[0] for p in plan]} left)")
        self.same_as_clean(state)
        return (f"{'; '.join(injected)}: recovered by itself ({function_errors(mappings)} failed invocations retried "
                "by the ESM), state identical to the clean run")

    def start_proxy(self, name: str, options: list[str], port: int | None = None) -> tuple[harness.Process, int, pathlib.Path]:
        """throttle_proxy.py in front of moto; returns once it accepts connections."""
        port = port or self.next_port()
        stats_path = self.dirs.run / f"{name}-stats.json"
        stats_path.unlink(missing_ok=True)
        proxy = harness.Process(name, [sys.executable, str(pathlib.Path(__file__).with_name("throttle_proxy.py")),
                                       "--port", str(port), "--upstream", os.environ["AWS_ENDPOINT_URL"],
                                       "--stats", str(stats_path), *options],
                                dict(os.environ), self.dirs.log / f"{name}.log").start()
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as probe:
                if stats_path.exists() and probe.connect_ex(("127.0.0.1", port)) == 0:
                    return proxy, port, stats_path
            if time.monotonic() > deadline or proxy.poll() is not None:
                proxy.stop()
                raise ScenarioFailed(f"{name} did not start: {proxy.tail()}")
            time.sleep(0.1)

    def scenario_throttling(self) -> str:
        proxy, port, stats_path = self.start_proxy("throttle-proxy", ["--rate", "0.25", "--seed", "5",
                                                                      "--burst", "dynamodb:10:40"])
        try:
            _, mappings, state = self.consume("throttling", aws_endpoint=f"http://127.0.0.1:{port}")
        finally:
            proxy.stop()
        stats = json.loads(stats_path.read_text())
        throttled = {service: stats.get(service, {}).get("throttled", 0) for service in ("dynamodb", "s3", "sqs")}
        if not all(throttled.values()):
            raise ScenarioFailed(f"not every sink was throttled: {throttled}")
        retried = function_errors(mappings)
        if not retried:
            raise ScenarioFailed("the throttling burst did not make any invocation fail: the ESM retry path was not exercised")
        self.same_as_clean(state)
        return (f"throttled calls {throttled}, {retried} invocation(s) failed and were retried by the ESM: "
                "state identical to the clean run")

    def scenario_provisioned(self) -> str:
        """Provisioned mode with ReportBatchItemFailures, as `esmMode: provisioned` deploys it: the
        consumer answers a batch whose sinks fail part-way with the partial-batch response, the
        mapping commits what was stored and delivers the rest again, and the sinks end exactly as
        in the clean run. A burst of S3 throttling longer than the SDK's and the consumer's retries
        fails the archive after the ledger check passed and PostgreSQL stored its rows, so the
        store events' batches are partly stored when the consumer answers."""
        proxy, port, stats_path = self.start_proxy("provisioned-proxy", ["--rate", "0", "--services", "s3",
                                                                         "--burst", "s3:3:120"])
        try:
            _, mappings, state = self.consume(
                "provisioned", batch_size=40, aws_endpoint=f"http://127.0.0.1:{port}",
                fault_args=["--provisioned-mode", "--report-batch-item-failures"],
                consumer_env={NAMES["reportBatchItemFailures"]: "true"})
        finally:
            proxy.stop()
        counters = [m.status().get("counters", {}) for m in mappings]
        partial = sum(c.get("partialBatchResponses", 0) for c in counters)
        throttled = json.loads(stats_path.read_text()).get("s3", {}).get("throttled", 0)
        if not partial:
            raise ScenarioFailed(f"no partial-batch response was answered ({throttled} S3 calls throttled): "
                                 "the partial path was not exercised")
        self.same_as_clean(state)
        return (f"{throttled} S3 calls throttled, {partial} partial-batch responses and "
                f"{function_errors(mappings)} failed invocations: state identical to the clean run")

    def scenario_skip_redrive(self) -> str:
        """An outage longer than ten retries: every mapping skips a batch to its on-failure queue
        and moves on; the redrive then restores exactly the clean run's sinks."""
        proxy_options = ["--rate", "0", "--services", "none"]
        endpoint = {"proxy": None, "port": self.next_port(), "restored": False}
        skipped_at: dict[str, int] = {}

        def watcher(namespace: harness.Namespace):
            status_files = {key: self.dirs.run / f"esm-{namespace.name}-{key}.json" for key in self.topics}

            def watch() -> None:
                if endpoint["restored"]:
                    return
                for key, path in status_files.items():
                    with contextlib.suppress(OSError, ValueError):
                        discarded = json.loads(path.read_text()).get("counters", {}).get("batchesDiscarded", 0)
                        if discarded:
                            skipped_at.setdefault(key, discarded)
                if len(skipped_at) == len(self.topics):
                    log("   every mapping skipped a batch: the AWS endpoint answers again")
                    endpoint["proxy"] = self.start_proxy("skip-proxy", proxy_options, endpoint["port"])[0]
                    endpoint["restored"] = True

            return watch

        report: dict = {}

        def redrive(namespace: harness.Namespace, watch: harness.LambdaWatch, mappings: list[harness.Mapping]) -> None:
            if not endpoint["restored"]:
                raise ScenarioFailed(f"not every mapping skipped a batch (only {sorted(skipped_at)})")
            discarded = {m.key: m.status().get("counters", {}).get("batchesDiscarded", 0) for m in mappings}
            skipped = self.on_failure_depth(namespace.queue_urls["onFailure"])
            if skipped < len(self.topics) or skipped != sum(discarded.values()):
                raise ScenarioFailed(f"{skipped} message(s) in the on-failure queue for skipped batches {discarded}")
            code, outcome = self.run_redrive(namespace.queue_urls["onFailure"], watch)
            if code != 0 or outcome.get("redriven") != skipped or outcome.get("failed"):
                raise ScenarioFailed(f"esm-redrive exited {code}: {outcome}")
            report.update(skipped=discarded, records=outcome.get("records"))
            report["missing"] = self.redrive_missing_range(watch)

        # Nothing answers on the consumer's AWS endpoint until the watcher starts the proxy there; a
        # 100 ms retry backoff makes the ten retries short.
        try:
            _, _, state = self.consume("skip", batch_size=10, watcher=watcher, timeout=600, retry_max_backoff_ms=100,
                                       aws_endpoint=f"http://127.0.0.1:{endpoint['port']}", after_mappings=redrive)
        finally:
            if endpoint["proxy"]:
                endpoint["proxy"].stop()
        # consume() checked the ground truth and an empty on-failure queue; now byte for byte.
        self.same_as_clean(state)
        return (f"batches skipped after 10 retries {report['skipped']}, {report['records']} records redriven: "
                f"state identical to the clean run; a range the broker does not return: {report['missing']}")

    def on_failure_depth(self, queue_url: str) -> int:
        sqs = harness.aws_clients(os.environ["AWS_ENDPOINT_URL"])["sqs"]
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages",
                                                                                  "ApproximateNumberOfMessagesNotVisible"])
        return sum(int(v) for v in attributes["Attributes"].values())

    def run_redrive(self, queue_url: str, watch: harness.LambdaWatch) -> tuple[int, dict]:
        """`esm-redrive` (built next to the esm-emulator) against the consumer under `watch`."""
        command = [str(pathlib.Path(self.args.esm).with_name("esm-redrive")), "--queue-url", queue_url,
                   "--bootstrap-servers", os.environ[NAMES["kafkaBootstrapServers"]], "--function-name", "consumer",
                   "--invoke-endpoint", f"http://127.0.0.1:{watch.port}", "--batch-size", "10",
                   "--read-idle-timeout-secs", "5", "--visibility-timeout-secs", "60"]
        with open(self.dirs.log / "esm-redrive.log", "ab") as log_file:
            result = subprocess.run(command, stdout=subprocess.PIPE, stderr=log_file, timeout=300, check=False,
                                    env={**os.environ, "RUST_LOG": "info,rdkafka=warn"})
        try:
            outcome = json.loads(result.stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            outcome = {"stdout": result.stdout.decode(errors="replace")[-500:]}
        return result.returncode, outcome

    def redrive_missing_range(self, watch: harness.LambdaWatch) -> str:
        """A skipped batch the broker no longer returns (retention, a re-created topic, or tansu
        answering a fresh reader of an old topic with nothing): esm-redrive must say so and exit 1,
        leaving the message on its queue."""
        sqs = harness.aws_clients(os.environ["AWS_ENDPOINT_URL"])["sqs"]
        queue_url = sqs.create_queue(QueueName=f"faults-missing-{self.run_id}")["QueueUrl"]
        topic = self.topics["sensorReadings"]
        end = self.marks[(topic, 0)]
        message = {
            "requestContext": {"requestId": str(uuid.uuid4()), "condition": "RetryAttemptsExhausted",
                               "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:consumer",
                               "approximateInvokeCount": 11},
            "responseContext": None, "version": "1.0", "timestamp": "2026-12-01T00:00:00.000Z",
            "KafkaBatchInfo": {"batchSize": 3, "bootstrapServers": os.environ[NAMES["kafkaBootstrapServers"]],
                               "payloadSize": 100,
                               "recordsInfo": {f"{topic}-0": {"firstRecordOffset": str(end + 1000),
                                                              "lastRecordOffset": str(end + 1002),
                                                              "firstRecordTimestamp": "2026-01-01T00:00:00.000Z",
                                                              "lastRecordTimestamp": "2026-01-01T00:00:00.000Z"}}},
        }
        try:
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(message))
            code, outcome = self.run_redrive(queue_url, watch)
            errors = [f.get("error", "") for f in outcome.get("failed", [])]
            if code != 1 or len(errors) != 1 or "returned 0 record(s)" not in errors[0]:
                raise ScenarioFailed(f"a range the broker does not return: esm-redrive exited {code}: {outcome}")
            if self.on_failure_depth(queue_url) != 1:
                raise ScenarioFailed("the unredriven message left its queue")
            return errors[0][:120]
        finally:
            sqs.delete_queue(QueueUrl=queue_url)

    # ── 4. producer input ──
    def scenario_producer_input(self) -> str:
        glue = harness.aws_clients(os.environ["AWS_ENDPOINT_URL"])["glue"]
        schema_id = {"RegistryName": os.environ[NAMES["registryName"]], "SchemaName": EXPLICIT_SCHEMA}
        versions_before = glue.get_schema(SchemaId=schema_id)["LatestSchemaVersion"]
        marks_before = harness.high_watermarks(self.topics)
        order = {"order_id": "o-9", "amount": 1.5, "currency": "EUR", "lines": []}
        cases = [
            ("event over 128 KiB", {"action": "publish_events", "schema_name": EXPLICIT_SCHEMA,
                                    "events": [{**order, "currency": "E" * (129 * 1024)}]}, ["131072"]),
            ("request over 4 MiB", {"action": "publish_events", "schema_name": EXPLICIT_SCHEMA,
                                    "events": [{**order, "order_id": f"o-{i}", "currency": "E" * (100 * 1024)} for i in range(45)]},
             ["4"]),
            ("too many simulated records", {"action": "simulate_sensors", "devices": 2000, "readings_per_device": 100, "seed": 1},
             ["100000", "100 000"]),
            ("wrong type (devices is a string)", {"action": "simulate_sensors", "devices": "six", "readings_per_device": 1,
                                                   "seed": 1}, ["field `devices`: invalid type"]),
            ("wrong type (events is not a list)", {"action": "publish_events", "schema_name": EXPLICIT_SCHEMA,
                                                    "events": {"order_id": "o-1"}}, ["field `events`: invalid type"]),
            ("unknown action", {"action": "drop_topics"}, ["unknown variant"]),
            ("incompatible schema change (amount becomes a string)",
             {"action": "publish_events", "schema_name": EXPLICIT_SCHEMA, "events": [{**order, "amount": "12.00"}]},
             ["ncompatible"]),
        ]
        problems, seen = [], []
        for description, request, expected in cases:
            status, body = self.input_watch.invoke("producer", request)
            text = body[:3000]
            log(f"   {description}: HTTP {status} {text[:300]}")
            is_error = status != 200 or '"errorType"' in text
            if not is_error:
                problems.append(f"{description}: accepted (HTTP {status}) {text[:300]}")
            elif not any(word in text for word in expected):
                problems.append(f"{description}: error does not say {expected}: {text[:400]}")
            else:
                seen.append(description)
        marks_after = harness.high_watermarks(self.topics)
        changed = {f"{t}-{p}": (marks_before[(t, p)], marks_after[(t, p)]) for t, p in marks_before
                   if marks_before[(t, p)] != marks_after[(t, p)]}
        if changed:
            problems.append(f"records were published: {changed}")
        versions_after = glue.get_schema(SchemaId=schema_id)["LatestSchemaVersion"]
        if versions_after != versions_before:
            problems.append(f"schema versions changed: {versions_before} -> {versions_after}")
        if problems:
            raise ScenarioFailed("; ".join(problems))
        return f"{len(seen)} invalid requests refused with a clear error, nothing published, registry unchanged"

    # ── driver ──
    def main(self) -> int:
        started = time.monotonic()
        wanted = set(self.args.only.split(",")) if self.args.only else None
        try:
            self.scenario("input", self.produce_input)
            if not self.results[-1][1]:
                return self.finish(started)
            plan = [("clean run (ground truth)", self.scenario_clean),
                    ("poison corpus", self.scenario_poison_corpus),
                    ("producer input", self.scenario_producer_input),
                    ("redelivery", self.scenario_redelivery),
                    ("outages", self.scenario_outages),
                    ("throttling", self.scenario_throttling),
                    ("provisioned partial batch", self.scenario_provisioned),
                    ("skip and redrive", self.scenario_skip_redrive)]
            for name, body in plan:
                if wanted is None or name.split()[0] in wanted:
                    self.scenario(name, body)
        finally:
            if self.input_watch:
                self.input_watch.stop()
            if not self.args.keep:
                for namespace in self.namespaces:
                    namespace.delete()
        return self.finish(started)

    def finish(self, started: float) -> int:
        failed = [r for r in self.results if not r[1]]
        print(f"fault tests: {len(self.results) - len(failed)} passed, {len(failed)} failed in "
              f"{time.monotonic() - started:.0f}s (run {self.run_id}, logs {self.dirs.log})", flush=True)
        return 1 if failed else 0


def function_errors(mappings: list[harness.Mapping]) -> int:
    return sum(m.status().get("counters", {}).get("functionErrors", 0) for m in mappings)


def with_suppress(action) -> None:
    try:
        action()
    except ScenarioFailed as error:
        log(f"   (cleanup) {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--esm", required=True, help="the esm-emulator binary")
    parser.add_argument("--port-base", type=int, required=True, help="first of 20 free loopback ports")
    parser.add_argument("--logdir", required=True, help="logs go to faults-<run> under it")
    parser.add_argument("--rundir", required=True, help="env and status files go to faults-<run> under it")
    parser.add_argument("--only", help="comma-separated scenario names (first word), e.g. clean,redelivery")
    parser.add_argument("--keep", action="store_true", help="keep the namespaces' sinks for inspection")
    # A timeout's SIGTERM unwinds like an error, so every started process is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(Run(parser.parse_args()).main())


if __name__ == "__main__":
    main()
