#!/usr/bin/env python3
"""Creates every resource named in contracts/pipeline.json on the local stack, idempotently,
and writes the env file that tools and tests source.

Kafka topics (tansu), DynamoDB tables, the S3 bucket, SQS queues, the Glue registry and the
committed schema versions (moto). Names come only from the contract; a rerun changes nothing.

PostgreSQL is provisioned before this runs (scripts/local-stack.sh, db-admin-local); --pg-user is
the consumer's role, --pg-admin-user the owner of the databases.

Usage: provision.py --dry-run [--contract PATH]   print what would be created, touch nothing
       provision.py --topics-only --kafka HOST:PORT
       provision.py --kafka HOST:PORT --aws-endpoint URL --region R --pg-host H --pg-port P
                    --pg-user U --pg-password PW --pg-admin-user A --pg-admin-password APW
                    --env-file PATH
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import sys
import time

import boto3
from botocore.exceptions import ClientError
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import contract as contracts  # noqa: E402 - the harness's one contract reader, next to this file
from contract import Contract  # noqa: E402

# Broker-side settings that only make sense with several replicas; a single local broker rejects
# or ignores them, so they stay on AWS only.
REPLICA_ONLY_TOPIC_CONFIG = {"min.insync.replicas"}
# The local pipeline replays fixed-seed records stamped with fixed (past) event times; a time-based
# retention would let tansu delete them while a run still needs them, so local topics keep everything.
LOCAL_TOPIC_CONFIG_OVERRIDES = {"retention.ms": "-1"}


def log(message: str) -> None:
    print(f"[provision] {message}", file=sys.stderr, flush=True)


def fail(component: str, message: str) -> None:
    print(f"[provision] ERROR ({component}): {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def local_topic_config(topic: contracts.Topic) -> dict[str, str]:
    config = {k: v for k, v in topic.config.items() if k not in REPLICA_ONLY_TOPIC_CONFIG}
    config.update(LOCAL_TOPIC_CONFIG_OVERRIDES)
    return config


def plan(contract: Contract) -> list[str]:
    """What provisioning creates, one line per resource (--dry-run prints it)."""
    lines = [f"topic {t.name} partitions={t.partitions} config={local_topic_config(t)}" for t in contract.topics]
    lines += [f"table {t.name} hash={t.partition_key}:{t.partition_key_type} range={t.sort_key}:{t.sort_key_type}"
              for t in contract.tables.values()]
    lines.append(f"bucket {contract.raw['bucket']['localName']}")
    lines += [f"queue {name}" for name in contract.raw["queues"].values()]
    lines.append(f"registry {contract.raw['schemaRegistry']['name']} schemas={','.join(contract.raw['schemas'])}")
    lines += [f"env {name}={value}" for name, value in contract.topic_environment().items()]
    return lines


def provision_topics(contract: Contract, bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})
    try:
        existing = admin.list_topics(timeout=15).topics
    except Exception as error:  # noqa: BLE001 - any client error means the broker is unusable
        fail("kafka", f"cannot list topics on {bootstrap}: {error}; is tansu up? scripts/local-stack.sh status")
    wanted = []
    grow = []
    for topic in contract.topics:
        name, partitions = topic.name, topic.partitions
        config = local_topic_config(topic)
        if name not in existing:
            wanted.append(NewTopic(name, num_partitions=partitions, replication_factor=1, config=config))
        else:
            have = len(existing[name].partitions)
            if have < partitions:
                grow.append(NewPartitions(name, partitions))
            elif have > partitions:
                log(f"topic {name} has {have} partitions, contract says {partitions}; Kafka cannot shrink, leaving it")
            else:
                log(f"topic {name} exists ({have} partitions)")
    for new, future in (admin.create_topics(wanted, request_timeout=30).items() if wanted else []):
        try:
            future.result()
            log(f"topic {new} created")
        except Exception as error:  # noqa: BLE001
            if "TOPIC_ALREADY_EXISTS" in str(error):
                log(f"topic {new} exists")
            else:
                fail("kafka", f"create topic {new}: {error}")
    for name, future in (admin.create_partitions(grow, request_timeout=30).items() if grow else []):
        try:
            future.result()
            log(f"topic {name} grown to contract partitions")
        except Exception as error:  # noqa: BLE001
            fail("kafka", f"grow topic {name}: {error}")
    # Creation is asynchronous on some brokers: wait until metadata shows every partition.
    deadline = time.monotonic() + 30
    while True:
        topics = admin.list_topics(timeout=10).topics
        missing = [
            t.name for t in contract.topics if t.name not in topics or len(topics[t.name].partitions) < t.partitions
        ]
        if not missing:
            return
        if time.monotonic() > deadline:
            fail("kafka", f"topics not visible after creation: {missing}")
        time.sleep(0.5)


def provision_tables(contract: Contract, session: boto3.Session, endpoint: str) -> None:
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    existing = set(dynamodb.list_tables()["TableNames"])
    for table in contract.tables.values():
        name = table.name
        if name in existing:
            log(f"table {name} exists")
            continue
        dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **table.key_schema())
        log(f"table {name} created")


def provision_bucket(contract: Contract, session: boto3.Session, endpoint: str, region: str) -> None:
    s3 = session.client("s3", endpoint_url=endpoint)
    name = contract.raw["bucket"]["localName"]
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if name in existing:
        log(f"bucket {name} exists")
        return
    if region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    log(f"bucket {name} created")


def provision_queues(contract: Contract, session: boto3.Session, endpoint: str) -> dict[str, str]:
    sqs = session.client("sqs", endpoint_url=endpoint)
    urls = {}
    for role, name in contract.raw["queues"].items():
        attributes = {"MessageRetentionPeriod": "1209600"}
        if name.endswith(".fifo"):
            # Deduplication by explicit MessageDeduplicationId (record coordinates), not content.
            attributes.update({"FifoQueue": "true", "ContentBasedDeduplication": "false"})
        # CreateQueue returns the existing URL when the attributes match, so it is idempotent.
        urls[role] = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        log(f"queue {name} ready ({urls[role]})")
    return urls


def provision_registry(contract: Contract, session: boto3.Session, endpoint: str) -> None:
    glue = session.client("glue", endpoint_url=endpoint)
    registry = contract.raw["schemaRegistry"]["name"]
    try:
        glue.create_registry(RegistryName=registry)
        log(f"registry {registry} created")
    except ClientError as error:
        if error.response["Error"]["Code"] != "AlreadyExistsException":
            raise
        log(f"registry {registry} exists")
    for schema_name, schema in contract.raw["schemas"].items():
        texts = [(contract.path.parent / path).read_text() for path in schema["versions"]]
        schema_id = {"RegistryName": registry, "SchemaName": schema_name}
        try:
            glue.create_schema(
                RegistryId={"RegistryName": registry},
                SchemaName=schema_name,
                DataFormat="AVRO",
                Compatibility=schema["compatibility"],
                SchemaDefinition=texts[0],
            )
            log(f"schema {schema_name} created with version 1")
        except ClientError as error:
            if error.response["Error"]["Code"] != "AlreadyExistsException":
                raise
        # Registering an already-registered definition returns its existing version, so replaying
        # every committed version in order is idempotent and keeps version numbers stable.
        for number, text in enumerate(texts, start=1):
            result = glue.register_schema_version(SchemaId=schema_id, SchemaDefinition=text)
            if result["VersionNumber"] != number:
                log(
                    f"WARNING schema {schema_name}: committed version {number} is registry version "
                    f"{result['VersionNumber']} (registry has extra versions; reset with scripts/local-stack.sh reset)"
                )
        log(f"schema {schema_name}: {len(texts)} committed version(s) registered ({schema['compatibility']})")


# moto accepts any secret key; a distinctive one lets scripts/security-checks.sh prove that no log
# ever carries it ("test" would match ordinary words).
LOCAL_AWS_SECRET_ACCESS_KEY = os.environ.get("PIPELINE_AWS_SECRET_ACCESS_KEY", "local-stack-secret-access-key")


def registry_role_arn(session: boto3.Session, endpoint: str) -> str:
    """The role the local consumer assumes to read the registry, as on AWS (sts:AssumeRole, then Glue with the
    returned credentials). moto's AssumeRole needs no IAM role to exist and answers with credentials of the
    role's account, so the ARN names moto's own account, where the registry is."""
    account = session.client("sts", endpoint_url=endpoint).get_caller_identity()["Account"]
    return f"arn:aws:iam::{account}:role/pipeline-registry-reader"


def write_env_file(contract: Contract, args: argparse.Namespace, queue_urls: dict[str, str], registry_role: str) -> None:
    names = contract.env_vars
    tables = contract.tables
    raw = contract.raw
    values = [
        (names["kafkaBootstrapServers"], args.kafka),
        ("AWS_ENDPOINT_URL", args.aws_endpoint),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", LOCAL_AWS_SECRET_ACCESS_KEY),
        ("AWS_REGION", args.region),
        ("AWS_DEFAULT_REGION", args.region),
        (names["pgHost"], args.pg_host),
        (names["pgPort"], str(args.pg_port)),
        (names["pgUser"], args.pg_user),
        (names["pgPassword"], args.pg_password),
        # The owner of the databases, for local tools and tests (the consumer never gets it).
        ("PIPELINE_PG_ADMIN_USER", args.pg_admin_user),
        ("PIPELINE_PG_ADMIN_PASSWORD", args.pg_admin_password),
        (names["pgDatabase"], raw["postgres"]["database"]),
        *contract.topic_environment().items(),
        (names["aggregatesTable"], tables["windowAggregates"].name),
        (names["explicitEventsTable"], tables["explicitEvents"].name),
        (names["storeEventsBucket"], raw["bucket"]["localName"]),
        (names["registryName"], raw["schemaRegistry"]["name"]),
        (names["windowSeconds"], str(raw["defaults"]["windowSeconds"])),
        (names["poisonQueueUrl"], queue_urls["poison"]),
        # The ESM's on-failure destination has no function env var on AWS; local tools use this name.
        ("ON_FAILURE_QUEUE_URL", queue_urls["onFailure"]),
        # The consumer's REGISTRY_ROLE_ARN locally (scripts/pipeline.sh gives it to the consumer only, as on AWS).
        ("PIPELINE_LOCAL_REGISTRY_ROLE_ARN", registry_role),
    ]
    lines = ["# Written by scripts/local-stack.sh up; source it: . .local/stack.env"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in values]
    path = pathlib.Path(args.env_file)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    log(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="print what would be created and stop")
    parser.add_argument("--contract", help="a contract file other than contracts/pipeline.json")
    parser.add_argument("--topics-only", action="store_true", help="only the Kafka topics (needs --kafka)")
    live = "--dry-run" not in sys.argv and "--topics-only" not in sys.argv
    parser.add_argument("--kafka", required="--dry-run" not in sys.argv)
    parser.add_argument("--aws-endpoint", required=live)
    parser.add_argument("--region", required=live)
    parser.add_argument("--pg-host", required=live)
    parser.add_argument("--pg-port", required=live, type=int)
    parser.add_argument("--pg-user", required=live)
    parser.add_argument("--pg-password", required=live)
    parser.add_argument("--pg-admin-user", required=live)
    parser.add_argument("--pg-admin-password", required=live)
    parser.add_argument("--env-file", required=live)
    args = parser.parse_args()

    contract = contracts.load(args.contract)
    if args.dry_run:
        print("\n".join(plan(contract)))
        return
    if args.topics_only:
        provision_topics(contract, args.kafka)
        return
    session = boto3.Session(
        aws_access_key_id="test", aws_secret_access_key=LOCAL_AWS_SECRET_ACCESS_KEY, region_name=args.region
    )
    started = time.monotonic()
    provision_topics(contract, args.kafka)
    try:
        provision_tables(contract, session, args.aws_endpoint)
        provision_bucket(contract, session, args.aws_endpoint, args.region)
        queue_urls = provision_queues(contract, session, args.aws_endpoint)
        provision_registry(contract, session, args.aws_endpoint)
        registry_role = registry_role_arn(session, args.aws_endpoint)
    except ClientError as error:
        fail("moto", f"{error}; check .local/logs/moto.log")
    write_env_file(contract, args, queue_urls, registry_role)
    log(f"provisioned in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
