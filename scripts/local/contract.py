#!/usr/bin/env python3
"""The local harness's one typed reader of contracts/pipeline.json (the Rust reader is
functions/contracts, the CDK's cdk/lib/contracts.ts).

Every script imports `load()` instead of parsing the file itself; shell scripts call the command
line below instead of inline `python -c`:

    contract.py value postgres.database     one value by dotted path
    contract.py topics                      one line per topic: name consumer-group env-var payload
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CONTRACT_PATH = REPO_ROOT / "contracts" / "pipeline.json"

# The payload kinds the consumer has a sink for (Rust `pipeline_contracts::Payload`).
PAYLOAD_KINDS = ("SensorReading", "StoreEvent", "Explicit")
# Table keys the contract defines (Rust `pipeline_contracts::Tables`).
TABLE_KEYS = ("windowAggregates", "explicitEvents")


class ContractError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class Topic:
    key: str
    name: str
    payload: str
    env_var: str
    partitions: int
    replication_factor: int
    consumer_group: str
    config: dict[str, str]

    def name_from(self, environ: dict[str, str] | None = None) -> str:
        """The name the functions use: the topic's variable when set, else the contract name."""
        environ = os.environ if environ is None else environ
        return environ.get(self.env_var) or self.name


@dataclasses.dataclass(frozen=True)
class Table:
    key: str
    name: str
    partition_key: str
    partition_key_type: str
    sort_key: str
    sort_key_type: str

    def key_schema(self) -> dict:
        """CreateTable's AttributeDefinitions and KeySchema."""
        return {
            "AttributeDefinitions": [
                {"AttributeName": self.partition_key, "AttributeType": self.partition_key_type},
                {"AttributeName": self.sort_key, "AttributeType": self.sort_key_type},
            ],
            "KeySchema": [
                {"AttributeName": self.partition_key, "KeyType": "HASH"},
                {"AttributeName": self.sort_key, "KeyType": "RANGE"},
            ],
        }


@dataclasses.dataclass(frozen=True)
class Contract:
    raw: dict
    topics: tuple[Topic, ...]
    tables: dict[str, Table]
    path: pathlib.Path

    @property
    def env_vars(self) -> dict[str, str]:
        return self.raw["envVars"]

    def topic(self, key: str) -> Topic:
        for topic in self.topics:
            if topic.key == key:
                return topic
        raise ContractError(f"no topic {key!r} in {self.path}")

    def carrying(self, payload: str) -> list[Topic]:
        return [t for t in self.topics if t.payload == payload]

    def topic_environment(self) -> dict[str, str]:
        """Each topic's variable set to its contract name (what the CDK sets on AWS)."""
        return {t.env_var: t.name for t in self.topics}

    def value(self, dotted: str):
        value = self.raw
        for part in dotted.split("."):
            value = value[part]
        return value


def _topic(key: str, raw: dict) -> Topic:
    if raw.get("payload") not in PAYLOAD_KINDS:
        raise ContractError(f"topics.{key}.payload must be one of {', '.join(PAYLOAD_KINDS)}")
    for field in ("name", "envVar", "consumerGroup"):
        if not isinstance(raw.get(field), str) or not raw[field]:
            raise ContractError(f"topics.{key}.{field} must be a non-empty string")
    return Topic(
        key=key,
        name=raw["name"],
        payload=raw["payload"],
        env_var=raw["envVar"],
        partitions=int(raw["partitions"]),
        replication_factor=int(raw["replicationFactor"]),
        consumer_group=raw["consumerGroup"],
        config=dict(raw.get("config", {})),
    )


def parse(raw: dict, path: pathlib.Path = CONTRACT_PATH) -> Contract:
    topics = tuple(_topic(key, t) for key, t in raw["topics"].items())
    if not topics:
        raise ContractError("topics must name at least one topic")
    for field in ("name", "env_var", "consumer_group"):
        values = [getattr(t, field) for t in topics]
        if len(set(values)) != len(values):
            raise ContractError(f"topic {field} values must be unique: {values}")
    if sorted(raw["tables"]) != sorted(TABLE_KEYS):
        raise ContractError(f"tables must be exactly {', '.join(TABLE_KEYS)}")
    tables = {
        key: Table(key, t["name"], t["partitionKey"], t["partitionKeyType"], t["sortKey"], t["sortKeyType"])
        for key, t in raw["tables"].items()
    }
    return Contract(raw=raw, topics=topics, tables=tables, path=path)


_cached: Contract | None = None


def load(path: pathlib.Path | str | None = None) -> Contract:
    """The contract (the repository's by default, read once per process)."""
    global _cached
    if path is None:
        if _cached is None:
            _cached = parse(json.loads(CONTRACT_PATH.read_text()))
        return _cached
    path = pathlib.Path(path)
    return parse(json.loads(path.read_text()), path)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "value":
        print(load().value(argv[1]))
        return 0
    if argv == ["topics"]:
        for t in load().topics:
            print(t.name, t.consumer_group, t.env_var, t.payload)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
