"""Tears the pipeline down so that `cdk destroy` needs no manual step.

Why the order matters: a Kafka event source mapping in a VPC uses Lambda-managed (Hyperplane)
network interfaces in its subnets and security group, and Lambda reuses the ones the function
already has for the same subnet/security-group pair (Lambda developer guide, "Configuring your
self-managed Apache Kafka cluster and network"). After a mapping is deleted they are released only
20-40 minutes later, and until then they block the security group's and the subnets' deletion
(aws/aws-cdk#4119, hashicorp/terraform-provider-aws#32130). CloudFormation waits for the ENIs of a
deleted function, but not for a mapping's, so `cdk destroy` fails with "has a dependent object".
Lambda releases the interfaces with the function's execution role, so the role must outlive them
(awslabs/aws-support-tools#174): it does here, because the stack is destroyed only afterwards.

1. Disable each mapping of the consumer function and wait until it is `Disabled`.
2. Delete it and wait until GetEventSourceMapping says ResourceNotFoundException.
3. Detach the function from the VPC (empty VpcConfig), so the interfaces it shares with the
   pollers are released too, and wait for the update.
4. Wait (bounded, with progress) until no Lambda network interface is left in the mappings' and
   the function's security groups: DescribeNetworkInterfaces with the `group-id` filter (every
   interface that blocks deleting those groups carries one of them), then, in our code, those with
   `InterfaceType` `lambda` (EC2 API reference) or a description starting "AWS Lambda VPC ENI"
   (what Lambda names them); `interface-type` is not a filter every EC2 emulator serves.
5. `cdk destroy` the consumer stack (consumer account), then the producer stacks one by one from
   the top (producer-stack, producer-endpoint-service, producer-msk, producer-vpc) with
   `--exclusively`, so no other stack of the app is selected, in the producer account.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

from botocore.exceptions import ClientError

# cdk/lib/pipeline.ts STACK_IDS; a test keeps them equal.
CONSUMER_STACK = "consumer-stack"
PRODUCER_STACKS = ("producer-stack", "producer-endpoint-service", "producer-msk", "producer-vpc")
LAMBDA_ENI_DESCRIPTION = "AWS Lambda VPC ENI"

# Kept on purpose (docs/deploy.md, Teardown) when retainData is true, the default.
RETAINED = (
    "DynamoDB tables sensor-window-aggregates and explicit-events (deletion protection on)",
    "the store-events S3 bucket and its access-log bucket (versioned data)",
    "a final snapshot of the PostgreSQL instance",
    "the consumer's data and database KMS keys (needed to read the retained data)",
)


class TeardownError(Exception):
    pass


@dataclasses.dataclass
class Clock:
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], float] = time.monotonic


@dataclasses.dataclass(frozen=True)
class Account:
    """One account's clients and how to run cdk there."""

    profile: str | None
    lambda_client: object
    ec2: object
    cloudformation: object


@dataclasses.dataclass(frozen=True)
class Options:
    config_file: str | None = None
    dry_run: bool = False
    mapping_timeout: float = 600.0
    eni_timeout: float = 3600.0
    poll_seconds: float = 15.0
    consumer_stack: str = CONSUMER_STACK
    producer_stacks: tuple[str, ...] = PRODUCER_STACKS


def cdk_destroy(stacks: list[str], profile: str | None, options: Options) -> list[str]:
    # --exclusively: only the named stack, never the stacks that depend on it.
    command = ["npx", "cdk", "destroy", *stacks, "--force", "--exclusively"]
    if profile:
        command += ["--profile", profile]
    if options.config_file:
        command += ["-c", f"pipelineConfigFile={options.config_file}"]
    return command


def is_lambda_interface(eni: dict) -> bool:
    return eni.get("InterfaceType") == "lambda" or eni.get("Description", "").startswith(LAMBDA_ENI_DESCRIPTION)


def access_values(mapping: dict, kind: str, prefix: str) -> set[str]:
    """`VPC_SUBNET` / `VPC_SECURITY_GROUP` URIs (`subnet:<id>`, `security_group:<id>`) of a mapping."""
    return {c["URI"].removeprefix(prefix) for c in mapping.get("SourceAccessConfigurations", []) if c.get("Type") == kind}


class Teardown:
    def __init__(self, consumer: Account, producer: Account, options: Options,
                 run: Callable[[list[str]], int], say: Callable[[str], None], clock: Clock | None = None):
        self.consumer, self.producer, self.options = consumer, producer, options
        self.run_command, self.say, self.clock = run, say, clock or Clock()

    # ── reads ──
    def consumer_function(self) -> str | None:
        try:
            stacks = self.consumer.cloudformation.describe_stacks(StackName=self.options.consumer_stack)["Stacks"]
        except ClientError as error:
            if "does not exist" in error.response["Error"].get("Message", ""):
                return None
            raise
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
        return outputs.get("ConsumerFunctionName")

    def mappings(self, function: str) -> list[dict]:
        out, marker = [], None
        while True:
            page = self.consumer.lambda_client.list_event_source_mappings(
                FunctionName=function, **({"Marker": marker} if marker else {}))
            out += page.get("EventSourceMappings", [])
            marker = page.get("NextMarker")
            if not marker:
                return out

    def lambda_interfaces(self, groups: set[str]) -> list[dict]:
        if not groups:
            return []
        found = []
        for page in self.consumer.ec2.get_paginator("describe_network_interfaces").paginate(
                Filters=[{"Name": "group-id", "Values": sorted(groups)}]):
            found += [eni for eni in page["NetworkInterfaces"] if is_lambda_interface(eni)]
        return found

    # ── waits ──
    def wait(self, what: str, done: Callable[[], tuple[bool, str]], timeout: float) -> None:
        started = self.clock.now()
        while True:
            finished, progress = done()
            if finished:
                return
            elapsed = self.clock.now() - started
            if elapsed >= timeout:
                raise TeardownError(f"gave up waiting for {what} after {elapsed / 60:.0f} min: {progress}; "
                                    "run the command again to continue (every step is idempotent)")
            self.say(f"  waiting for {what} ({elapsed / 60:.1f} min): {progress}")
            self.clock.sleep(self.options.poll_seconds)

    def mapping_state(self, uuid: str) -> str | None:
        try:
            return self.consumer.lambda_client.get_event_source_mapping(UUID=uuid)["State"]
        except ClientError as error:
            if error.response["Error"].get("Code") == "ResourceNotFoundException":
                return None
            raise

    # ── the plan ──
    def run(self) -> int:
        o = self.options
        prefix = "[dry run] " if o.dry_run else ""
        function = self.consumer_function()
        groups: set[str] = set()
        if function is None:
            self.say(f"{o.consumer_stack} does not exist in the consumer account: nothing to release there")
        else:
            mappings = self.mappings(function)
            configuration = self.consumer.lambda_client.get_function_configuration(FunctionName=function)
            vpc = configuration.get("VpcConfig") or {}
            groups = set(vpc.get("SecurityGroupIds") or [])
            for m in mappings:
                groups |= access_values(m, "VPC_SECURITY_GROUP", "security_group:")
            self.say(f"consumer function {function}: {len(mappings)} event source mapping(s), "
                     f"security group(s) {', '.join(sorted(groups)) or 'none'}")
            for m in mappings:
                self.say(f"{prefix}1. disable mapping {m['UUID']} ({', '.join(m.get('Topics', []))}, now {m.get('State')})")
                self.say(f"{prefix}2. delete mapping {m['UUID']}")
                if not o.dry_run:
                    self.remove_mapping(m["UUID"])
            if vpc.get("SubnetIds"):
                self.say(f"{prefix}3. detach {function} from {vpc.get('VpcId', 'its VPC')} (its interfaces are released with the pollers')")
                if not o.dry_run:
                    self.consumer.lambda_client.update_function_configuration(
                        FunctionName=function, VpcConfig={"SubnetIds": [], "SecurityGroupIds": []})
                    self.consumer.lambda_client.get_waiter("function_updated").wait(FunctionName=function)
            remaining = self.lambda_interfaces(groups)
            self.say(f"{prefix}4. wait until no Lambda network interface is in {', '.join(sorted(groups)) or '-'} "
                     f"(now {len(remaining)}; up to {o.eni_timeout / 60:.0f} min)")
            if not o.dry_run:
                self.wait("Lambda network interfaces to be released",
                          lambda: self._interfaces_gone(groups), o.eni_timeout)
        steps = [(cdk_destroy([o.consumer_stack], self.consumer.profile, o), "consumer account")]
        steps += [(cdk_destroy([stack], self.producer.profile, o), "producer account") for stack in o.producer_stacks]
        for number, (command, where) in enumerate(steps, start=5):
            self.say(f"{prefix}{number}. {' '.join(command)}   ({where})")
            if not o.dry_run:
                code = self.run_command(command)
                if code != 0:
                    raise TeardownError(f"{' '.join(command)} exited with {code}; fix the cause and run again")
        self.say("kept on purpose when retainData is true (docs/deploy.md, Teardown):")
        for item in RETAINED:
            self.say(f"  - {item}")
        return 0

    def _interfaces_gone(self, groups: set[str]) -> tuple[bool, str]:
        remaining = self.lambda_interfaces(groups)
        described = ", ".join(f"{e['NetworkInterfaceId']} ({e.get('Status', '?')}, {e.get('SubnetId', '?')})" for e in remaining[:5])
        return not remaining, f"{len(remaining)} left: {described}"

    def remove_mapping(self, uuid: str) -> None:
        """Disable, then delete. A mapping that is Creating, Enabling, Updating or Disabling refuses
        changes (ResourceInUseException), so each step waits for a settled state first."""
        lam = self.consumer.lambda_client
        seen: dict[str, str | None] = {}

        def settled() -> tuple[bool, str]:
            seen["state"] = self.mapping_state(uuid)
            return seen["state"] in (None, "Enabled", "Disabled", "Deleting"), f"State {seen['state']}"
        self.wait(f"mapping {uuid} to settle", settled, self.options.mapping_timeout)
        state = seen["state"]
        if state is None:
            return
        if state == "Enabled":
            lam.update_event_source_mapping(UUID=uuid, Enabled=False)
        if state != "Deleting":
            def disabled() -> tuple[bool, str]:
                now = self.mapping_state(uuid)
                return now in (None, "Disabled"), f"State {now}"
            self.wait(f"mapping {uuid} to be Disabled", disabled, self.options.mapping_timeout)
            if self.mapping_state(uuid) is not None:
                lam.delete_event_source_mapping(UUID=uuid)

        def deleted() -> tuple[bool, str]:
            now = self.mapping_state(uuid)
            return now is None, f"State {now}"
        self.wait(f"mapping {uuid} to be deleted", deleted, self.options.mapping_timeout)
