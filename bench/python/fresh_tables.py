"""Tables of the consumer's own for one benchmark figure, so it never meets another run's data.

The explicit-events table holds the partition ledgers: a figure that consumes a fresh broker's
topics (offsets from 0 again) into the stack's shared tables is rightly refused by the consumer as a
re-created topic. `create PREFIX` makes a copy of every contract table named PREFIX-<table> and
prints the consumer's variables that point at them (VAR=name lines, for an env file); `delete
PREFIX` removes them. Uses the local stack's AWS endpoint (AWS_ENDPOINT_URL).
"""

import argparse
import os
import sys

import boto3

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO_ROOT, "scripts", "local"))
import contract as contracts  # noqa: E402 - the harness's one contract reader

# Which consumer variable names each contract table (contracts/pipeline.json `envVars`).
TABLE_VARIABLES = {"windowAggregates": "aggregatesTable", "explicitEvents": "explicitEventsTable"}


def names(contract: contracts.Contract, prefix: str) -> dict[str, str]:
    """Table key -> the fresh table's name."""
    return {key: f"{prefix}-{table.name}" for key, table in contract.tables.items()}


def client():
    return boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL"],
                        region_name=os.environ.get("AWS_REGION", "us-east-1"))


def create(prefix: str) -> list[str]:
    contract = contracts.load()
    dynamodb = client()
    lines = []
    for key, name in names(contract, prefix).items():
        dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **contract.tables[key].key_schema())
        lines.append(f"{contract.env_vars[TABLE_VARIABLES[key]]}={name}")
    return lines


def delete(prefix: str) -> None:
    dynamodb = client()
    for name in names(contracts.load(), prefix).values():
        try:
            dynamodb.delete_table(TableName=name)
        except dynamodb.exceptions.ResourceNotFoundException:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["create", "delete"])
    parser.add_argument("prefix")
    args = parser.parse_args()
    if args.action == "create":
        print("\n".join(create(args.prefix)))
    else:
        delete(args.prefix)


if __name__ == "__main__":
    main()
