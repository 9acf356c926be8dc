"""The teardown's order and waits: Lambda and CloudFormation answer with recorded AWS-shaped
responses (botocore Stubber, which also fails on any call out of order); EC2 network interfaces
live in moto, and a fake clock releases them 20 and 40 minutes after the mappings are gone, as
AWS does (aws/aws-cdk#4119)."""

import datetime as dt
import pathlib
import re
import unittest

import boto3
from botocore.stub import Stubber
from moto import mock_aws

from deployment import teardown
from deployment.tests import support

FUNCTION = "consumer-stack-ConsumerFunction9C5E7B8A-Xq3rT0aZ1bCd"
REPO_ROOT = pathlib.Path(__file__).resolve().parents[4]
CREDENTIALS = {"region_name": "us-east-1", "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class FakeClock:
    """Time moves only when the teardown sleeps; `on_sleep` runs after each step."""

    def __init__(self):
        self.t = 0.0
        self.on_sleep = lambda t: None

    def sleep(self, seconds: float) -> None:
        self.t += seconds
        self.on_sleep(self.t)

    def now(self) -> float:
        return self.t


class Teardown(unittest.TestCase):
    def setUp(self):
        self.aws = mock_aws()
        self.aws.start()
        self.addCleanup(self.aws.stop)
        self.ec2 = boto3.client("ec2", **CREDENTIALS)
        vpc = self.ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
        self.subnet = self.ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.0.0/24", AvailabilityZoneId="use1-az1")["Subnet"]["SubnetId"]
        self.group = self.ec2.create_security_group(GroupName="ConsumerSecurityGroup", Description="consumer", VpcId=vpc)["GroupId"]
        self.vpc = vpc
        # Two Lambda interfaces in the consumer's group, and one of something else that is not ours to wait for.
        self.enis = [self.ec2.create_network_interface(SubnetId=self.subnet, Groups=[self.group],
                                                       Description=f"AWS Lambda VPC ENI-{FUNCTION}-{n}")["NetworkInterface"]["NetworkInterfaceId"]
                     for n in ("a1b2c3d4", "e5f6a7b8")]
        self.ec2.create_network_interface(SubnetId=self.subnet, Groups=[self.group], Description="VPC Endpoint Interface vpce-0123456789abcdef0")
        self.mappings = support.healthy_mappings()
        for m in self.mappings:
            m["SourceAccessConfigurations"] = [c for c in m["SourceAccessConfigurations"] if c["Type"] != "VPC_SECURITY_GROUP"]
            m["SourceAccessConfigurations"].append({"Type": "VPC_SECURITY_GROUP", "URI": f"security_group:{self.group}"})
        self.lam = boto3.client("lambda", **CREDENTIALS)
        self.cfn = boto3.client("cloudformation", **CREDENTIALS)
        self.lambda_stub, self.cfn_stub = Stubber(self.lam), Stubber(self.cfn)
        self.clock = FakeClock()
        self.commands: list[list[str]] = []
        self.lines: list[str] = []

    def lambda_enis(self) -> list[str]:
        found = self.ec2.describe_network_interfaces(Filters=[{"Name": "group-id", "Values": [self.group]}])["NetworkInterfaces"]
        return [e["NetworkInterfaceId"] for e in found if teardown.is_lambda_interface(e)]

    def release_after(self, minutes: tuple[float, float]):
        """Deletes the i-th Lambda interface once `minutes[i]` have passed since the last mapping was deleted."""
        released_at: dict[str, float] = {}

        def on_sleep(t: float) -> None:
            if self.lambda_stub._queue:  # mappings not all deleted yet
                return
            start = released_at.setdefault("start", t)
            for eni, after in zip(self.enis, minutes):
                if t - start >= after * 60 and eni not in released_at:
                    self.ec2.delete_network_interface(NetworkInterfaceId=eni)
                    released_at[eni] = t
        self.clock.on_sleep = on_sleep

    def stub_stack(self, exists: bool = True):
        if not exists:
            for eni in self.enis:  # a destroyed consumer stack left no interface behind
                self.ec2.delete_network_interface(NetworkInterfaceId=eni)
        if exists:
            self.cfn_stub.add_response("describe_stacks", {"Stacks": [{
                "StackName": "consumer-stack", "CreationTime": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                "StackStatus": "CREATE_COMPLETE",
                "Outputs": [{"OutputKey": "ConsumerFunctionName", "OutputValue": FUNCTION}]}]}, {"StackName": "consumer-stack"})
        else:
            self.cfn_stub.add_client_error("describe_stacks", "ValidationError", "Stack with id consumer-stack does not exist",
                                           400, expected_params={"StackName": "consumer-stack"})

    def stub_reads(self):
        self.lambda_stub.add_response("list_event_source_mappings", {"EventSourceMappings": self.mappings}, {"FunctionName": FUNCTION})
        self.lambda_stub.add_response("get_function_configuration", {
            "FunctionName": FUNCTION, "VpcConfig": {"SubnetIds": [self.subnet], "SecurityGroupIds": [self.group], "VpcId": self.vpc}},
            {"FunctionName": FUNCTION})

    def stub_removal(self):
        for index, m in enumerate(self.mappings):
            uuid = {"UUID": m["UUID"]}
            if index == 0:  # one is still being updated: it must settle before it is disabled
                self.lambda_stub.add_response("get_event_source_mapping", {**uuid, "State": "Updating"}, uuid)
            self.lambda_stub.add_response("get_event_source_mapping", {**uuid, "State": "Enabled"}, uuid)
            self.lambda_stub.add_response("update_event_source_mapping", {**uuid, "State": "Disabling"}, {**uuid, "Enabled": False})
            self.lambda_stub.add_response("get_event_source_mapping", {**uuid, "State": "Disabling"}, uuid)
            self.lambda_stub.add_response("get_event_source_mapping", {**uuid, "State": "Disabled"}, uuid)
            self.lambda_stub.add_response("get_event_source_mapping", {**uuid, "State": "Disabled"}, uuid)
            self.lambda_stub.add_response("delete_event_source_mapping", {**uuid, "State": "Deleting"}, uuid)
            self.lambda_stub.add_client_error("get_event_source_mapping", "ResourceNotFoundException",
                                              "The resource you requested does not exist.", 404, expected_params=uuid)
        self.lambda_stub.add_response("update_function_configuration", {"FunctionName": FUNCTION, "LastUpdateStatus": "InProgress"},
                                      {"FunctionName": FUNCTION, "VpcConfig": {"SubnetIds": [], "SecurityGroupIds": []}})
        self.lambda_stub.add_response("get_function_configuration", {"FunctionName": FUNCTION, "LastUpdateStatus": "Successful"},
                                      {"FunctionName": FUNCTION})

    def run_teardown(self, options: teardown.Options, exit_codes: dict[str, int] | None = None) -> int:
        def run(command: list[str]) -> int:
            # cdk destroy only ever runs once every mapping is gone and no Lambda interface is left.
            self.lambda_stub.assert_no_pending_responses()
            self.assertEqual(self.lambda_enis(), [], f"{command} ran while Lambda interfaces were left")
            self.commands.append(command)
            return (exit_codes or {}).get(command[3], 0)
        consumer = teardown.Account("consumer", self.lam, self.ec2, self.cfn)
        producer = teardown.Account("producer", None, None, None)
        with self.lambda_stub, self.cfn_stub:
            return teardown.Teardown(consumer, producer, options, run, self.lines.append,
                                     teardown.Clock(sleep=self.clock.sleep, now=self.clock.now)).run()

    def test_two_accounts_in_order_after_the_interfaces_are_released(self):
        self.stub_stack()
        self.stub_reads()
        self.stub_removal()
        self.release_after((20, 40))
        options = teardown.Options(config_file="/repo/deploy/prod.json", poll_seconds=60, eni_timeout=3600)
        self.assertEqual(self.run_teardown(options), 0)
        config = ["-c", "pipelineConfigFile=/repo/deploy/prod.json"]
        self.assertEqual(self.commands, [
            ["npx", "cdk", "destroy", "consumer-stack", "--force", "--exclusively", "--profile", "consumer", *config],
            *[["npx", "cdk", "destroy", stack, "--force", "--exclusively", "--profile", "producer", *config]
              for stack in ("producer-stack", "producer-endpoint-service", "producer-msk", "producer-vpc")],
        ])
        progress = [line for line in self.lines if "waiting for Lambda network interfaces" in line]
        self.assertTrue(any("2 left" in line for line in progress) and any("1 left" in line for line in progress), progress)
        self.assertGreaterEqual(self.clock.t, 40 * 60)
        self.assertIn("kept on purpose when retainData is true (docs/deploy.md, Teardown):", self.lines)
        self.assertTrue(any("DynamoDB tables sensor-window-aggregates" in line for line in self.lines))

    def test_interfaces_that_stay_stop_the_teardown_before_cdk_destroy(self):
        self.stub_stack()
        self.stub_reads()
        self.stub_removal()
        self.release_after((1e9, 1e9))
        with self.assertRaisesRegex(teardown.TeardownError, "gave up waiting for Lambda network interfaces to be released after 30 min: 2 left"):
            self.run_teardown(teardown.Options(poll_seconds=60, eni_timeout=1800))
        self.assertEqual(self.commands, [])

    def test_a_dry_run_reads_and_prints_the_plan_only(self):
        self.stub_stack()
        self.stub_reads()
        self.assertEqual(self.run_teardown(teardown.Options(dry_run=True)), 0)
        self.assertEqual(self.commands, [])
        plan = [line for line in self.lines if line.startswith("[dry run]")]
        self.assertEqual(len(plan), 3 * 2 + 2 + 5, plan)
        self.assertIn("[dry run] 1. disable mapping 6d9bce8e-836b-442c-8070-74e77903c815 (sensor-readings, now Enabled)", plan)
        self.assertTrue(any(f"wait until no Lambda network interface is in {self.group} (now 2;" in line for line in plan), plan)
        self.assertEqual(plan[-1], "[dry run] 9. npx cdk destroy producer-vpc --force --exclusively --profile producer   (producer account)")
        self.assertEqual(len(self.lambda_enis()), 2, "nothing was changed")

    def test_a_consumer_stack_that_is_gone_skips_to_the_producer(self):
        self.stub_stack(exists=False)
        self.assertEqual(self.run_teardown(teardown.Options()), 0)
        self.assertIn("consumer-stack does not exist in the consumer account: nothing to release there", self.lines)
        self.assertEqual([c[3] for c in self.commands], ["consumer-stack", "producer-stack", "producer-endpoint-service",
                                                        "producer-msk", "producer-vpc"])

    def test_a_failing_destroy_stops_the_rest(self):
        self.stub_stack(exists=False)
        with self.assertRaisesRegex(teardown.TeardownError, "producer-msk .* exited with 1"):
            self.run_teardown(teardown.Options(), exit_codes={"producer-msk": 1})
        self.assertEqual([c[3] for c in self.commands], ["consumer-stack", "producer-stack", "producer-endpoint-service", "producer-msk"])


class StackNames(unittest.TestCase):
    def test_the_stack_names_are_the_cdk_apps(self):
        source = (REPO_ROOT / "cdk" / "lib" / "pipeline.ts").read_text()
        ids = dict(re.findall(r"^\s+(\w+): '([a-z-]+)',$", source.split("export const STACK_IDS", 1)[1].split("} as const", 1)[0], re.M))
        self.assertEqual(teardown.CONSUMER_STACK, ids["consumer"])
        self.assertEqual(teardown.PRODUCER_STACKS, (ids["producer"], ids["endpointService"], ids["msk"], ids["producerVpc"]))


if __name__ == "__main__":
    unittest.main()
