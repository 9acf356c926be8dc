"""Cost of one million sensor readings on AWS, as a model, from one bench run's measurements.

Inputs, all from the run (scripts/bench.sh figure 6, `pipeline-bench share`):
  * the invocation's duration at a memory size's CPU share (a cgroup quota, best of N), billed as
    Lambda GB-seconds at that memory size;
  * what one invocation sent to AWS, metered on the wire in AWS's billing units: DynamoDB write and
    read request units, S3 PUT-class and GET-class requests, SQS requests (64 KB chunks);
  * the batch's number of readings: one million readings take 1e6 / readings-per-batch invocations.

Prices are AWS's published list prices for US East (N. Virginia), read on PRICES_READ from the
pages named beside each; no free tier, no savings plans. Not modelled: the MSK cluster and the
event source mapping (no per-request charge in its default, on-demand poller mode), PostgreSQL
(RDS, billed per instance hour; sensor readings write none), storage, CloudWatch logs, data
transfer, and the Glue Schema Registry (no charge of its own).
"""

PRICES_READ = "2026-12-02"
REGION = "us-east-1"

# https://aws.amazon.com/lambda/pricing/ (x86_64, first 6 billion GB-seconds a month; the CDK
# app deploys x86_64 by default, cdk/lib/config.ts `lambdaArchitecture`).
LAMBDA_GB_SECOND_USD = 0.0000166667
LAMBDA_REQUEST_USD = 0.20 / 1e6
# https://aws.amazon.com/dynamodb/pricing/on-demand/ (tables are PAY_PER_REQUEST).
DYNAMODB_WRITE_UNIT_USD = 0.625 / 1e6
DYNAMODB_READ_UNIT_USD = 0.125 / 1e6
# https://aws.amazon.com/s3/pricing/ (S3 Standard).
S3_PUT_CLASS_USD = 0.005 / 1000
S3_GET_CLASS_USD = 0.0004 / 1000
# https://aws.amazon.com/sqs/pricing/ (the poison queue is FIFO).
SQS_FIFO_REQUEST_USD = 0.50 / 1e6

READINGS = 1_000_000
# Lambda bills memory in GB of 1,024 MB (the pricing page's GB-second).
MB_PER_GB = 1024


def cost_per_million(duration_ms: float, memory_mb: int, readings_per_batch: int, usage: dict) -> dict:
    """USD per million readings, per line item, for batches of `readings_per_batch` readings that
    each take `duration_ms` at `memory_mb` and send `usage` (pipeline-bench's `share_usage`)."""
    if readings_per_batch <= 0 or duration_ms < 0 or memory_mb <= 0:
        raise ValueError(f"no cost for {readings_per_batch} readings, {duration_ms} ms, {memory_mb} MB")
    invocations = READINGS / readings_per_batch
    items = {
        # Lambda bills duration in 1 ms steps, rounded up.
        "lambda_compute": invocations * _ceil_ms(duration_ms) / 1000 * memory_mb / MB_PER_GB * LAMBDA_GB_SECOND_USD,
        "lambda_requests": invocations * LAMBDA_REQUEST_USD,
        "dynamodb": invocations * (usage.get("dynamodb_write_units", 0) * DYNAMODB_WRITE_UNIT_USD
                                   + usage.get("dynamodb_read_units", 0) * DYNAMODB_READ_UNIT_USD),
        "s3": invocations * (usage.get("s3_put_class", 0) * S3_PUT_CLASS_USD
                             + usage.get("s3_get_class", 0) * S3_GET_CLASS_USD),
        "sqs": invocations * usage.get("sqs_billed_requests", 0) * SQS_FIFO_REQUEST_USD,
    }
    items["total"] = sum(items.values())
    items["invocations"] = invocations
    return items


def _ceil_ms(ms: float) -> int:
    whole = int(ms)
    return whole if whole == ms else whole + 1
