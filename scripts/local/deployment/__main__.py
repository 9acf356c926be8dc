"""`python -m deployment check|teardown` with scripts/local on the path; scripts/check-deployment.sh
and scripts/teardown.sh are the entry points (`--help` on each subcommand lists the options)."""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys

import boto3

from . import check, sources, teardown

REPO_ROOT = pathlib.Path(__file__).resolve().parents[3]


def add_account_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--producer-profile", default=os.environ.get("PIPELINE_PRODUCER_PROFILE"),
                        help="AWS profile of the producer account (default: PIPELINE_PRODUCER_PROFILE, else the default credentials)")
    parser.add_argument("--consumer-profile", default=os.environ.get("PIPELINE_CONSUMER_PROFILE"),
                        help="AWS profile of the consumer account (default: PIPELINE_CONSUMER_PROFILE, else the producer's)")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
                        help="region of both stacks (default: AWS_REGION, else the profile's)")


def sessions(args) -> tuple[boto3.Session, boto3.Session]:
    producer = boto3.Session(profile_name=args.producer_profile, region_name=args.region)
    consumer = boto3.Session(profile_name=args.consumer_profile or args.producer_profile, region_name=args.region)
    if not consumer.region_name or not producer.region_name:
        raise SystemExit("[deployment] ERROR: no region: pass --region or set AWS_REGION (both stacks share it)")
    return producer, consumer


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="deployment", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="invoke the producer, wait for every sink, say why not (exit 0 = all arrived)")
    add_account_options(c)
    c.add_argument("--producer-stack", default=teardown.PRODUCER_STACKS[0])
    c.add_argument("--consumer-stack", default=teardown.CONSUMER_STACK)
    c.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the sinks (default 300)")
    local = c.add_argument_group("local stack instead of AWS (scripts/test.sh's deploy stage)")
    local.add_argument("--local-env", type=pathlib.Path, help="the local stack's env file (.local/stack.env)")
    local.add_argument("--lambda-endpoint", help="the functions' Invoke endpoint (cargo lambda watch)")
    local.add_argument("--mapping-api", action="append", default=[], help="an esm-emulator's mapping API URL (repeat)")
    local.add_argument("--mapping-status", action="append", default=[], type=pathlib.Path,
                       help="an esm-emulator's status file (repeat): OffsetLag and Errors")
    local.add_argument("--function-log", type=pathlib.Path, help="the cargo lambda watch log: the last error line")

    t = sub.add_parser("teardown", help="release the mappings and their network interfaces, then cdk destroy both sides")
    add_account_options(t)
    t.add_argument("--config-file", help="the config file the stacks were deployed with (-c pipelineConfigFile=...)")
    t.add_argument("--dry-run", action="store_true", help="print the plan with the current resources; change nothing")
    t.add_argument("--yes", action="store_true", help="do not ask before destroying")
    t.add_argument("--eni-timeout", type=float, default=3600.0, help="seconds to wait for the network interfaces (default 3600)")
    return top


def run_check(args) -> int:
    if args.local_env:
        if not args.lambda_endpoint:
            raise SystemExit("[check] ERROR: --local-env needs --lambda-endpoint")
        def factory():
            return sources.LocalDeployment(args.local_env, args.lambda_endpoint, args.mapping_api,
                                           args.mapping_status, args.function_log)
    else:
        def factory():
            producer, consumer = sessions(args)
            return sources.AwsDeployment(producer, consumer, args.producer_stack, args.consumer_stack)
    return check.main_check(factory, args.timeout)


def run_teardown(args) -> int:
    producer, consumer = sessions(args)

    def account(session: boto3.Session, profile: str | None) -> teardown.Account:
        return teardown.Account(profile, session.client("lambda"), session.client("ec2"), session.client("cloudformation"))

    # cdk runs from the repository root; a relative path means one from where the user stands.
    config_file = str(pathlib.Path(args.config_file).resolve()) if args.config_file else None
    options = teardown.Options(config_file=config_file, dry_run=args.dry_run, eni_timeout=args.eni_timeout)
    if not args.dry_run and not args.yes:
        if not sys.stdin.isatty():
            raise SystemExit("[teardown] ERROR: pass --yes to destroy without a prompt (or --dry-run to see the plan)")
        answer = input(f"Destroy the pipeline in {consumer.region_name} (consumer profile {args.consumer_profile or args.producer_profile or 'default'}, "
                       f"producer profile {args.producer_profile or 'default'})? Type 'destroy': ")
        if answer.strip() != "destroy":
            print("[teardown] nothing changed")
            return 1

    def run(command: list[str]) -> int:
        return subprocess.run(command, cwd=REPO_ROOT, check=False).returncode

    worker = teardown.Teardown(account(consumer, args.consumer_profile or args.producer_profile),
                               account(producer, args.producer_profile), options, run,
                               lambda line: print(line, flush=True))
    try:
        return worker.run()
    except teardown.TeardownError as error:
        print(f"[teardown] ERROR: {error}", file=sys.stderr)
        return 1


def main() -> int:
    args = parser().parse_args()
    return run_check(args) if args.command == "check" else run_teardown(args)


if __name__ == "__main__":
    sys.exit(main())
