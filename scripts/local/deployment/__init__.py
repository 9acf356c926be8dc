"""Checks a deployed pipeline end to end and tears it down (scripts/check-deployment.sh,
scripts/teardown.sh; docs/deploy.md, "After a deploy: check it, and tear it down").

Written in Python because boto3 reads every service the check needs (CloudFormation, Lambda,
DynamoDB, S3, SQS, CloudWatch, CloudWatch Logs, EC2) with the user's own profiles, and it is
already in the project's venv; nothing here runs inside the pipeline.

Pure logic (what to publish, what to expect, the verdict and its diagnosis, the teardown plan) is
in `plan`, `diagnosis` and `teardown`; the AWS and local adapters in `sources`; the command in
`__main__`.
"""
