/**
 * AWS limits and behaviours the CDK app relies on, each written once with the AWS documentation
 * it comes from. Config validation, the stacks and the tests import them from here.
 */

/**
 * MSK broker host names: `b-<broker id>.<cluster label>.<cluster id>.c<n>.kafka.<region>.<DNS suffix>`,
 * where the cluster label is the cluster name without its hyphens (cluster `techx-tf4-orders` →
 * `b-1.techxtf4orders.5n1354.c2.kafka.us-east-1.amazonaws.com`) and the suffix is the partition's
 * (`amazonaws.com`, or `amazonaws.com.cn` in China). Source: `aws kafka get-bootstrap-brokers`
 * output in the MSK developer guide ("Getting the bootstrap brokers").
 */
export const MSK_BROKER_HOST = {
  /** Labels 1..5 (cluster label, cluster id, `c<n>`, `kafka`, region) form the cluster's domain with the suffix. */
  clusterDomainLabels: [1, 2, 3, 4, 5] as const,
  /** Broker ids MSK assigns: 1..N for an N-broker provisioned cluster. */
  firstBrokerId: 1,
} as const;

/**
 * The cluster's DNS domain (the consumer's private hosted zone) from one broker host: the host
 * without its `b-<id>.` label. Derived from the host's own labels, never from the cluster name.
 * Throws when the host is not an MSK broker host of the given partition suffix.
 */
export function clusterDomainOfBrokerHost(host: string, urlSuffix: string): string {
  const suffix = `.${urlSuffix}`;
  if (!host.endsWith(suffix)) {
    throw new Error(`${host} does not end with the partition DNS suffix ${urlSuffix}`);
  }
  const labels = host.slice(0, -suffix.length).split('.');
  const shape = labels.length === 6 && /^b-\d+$/.test(labels[0]) && /^c\d+$/.test(labels[3]) && labels[4] === 'kafka'
    && labels.every((l) => /^[a-z0-9-]+$/.test(l));
  if (!shape) {
    throw new Error(`${host} is not an MSK broker host (b-<id>.<cluster>.<id>.c<n>.kafka.<region>.${urlSuffix})`);
  }
  return [...MSK_BROKER_HOST.clusterDomainLabels.map((i) => labels[i]), urlSuffix].join('.');
}

/** One Kafka version MSK offers for new provisioned clusters. */
export interface MskKafkaVersion {
  readonly version: string;
  /** ISO date after which MSK may upgrade clusters without notice and refuses new ones; undefined = none published. */
  readonly endOfSupport?: string;
  readonly recommended?: boolean;
}

/**
 * Kafka versions of MSK provisioned clusters, from the MSK developer guide "Supported Apache Kafka
 * versions" (supported-kafka-versions.html; policy in version-support.html). KRaft variants are
 * the `.kraft` version strings MSK's API takes (also listed by `aws kafka list-kafka-versions`).
 * Versions whose end of support passed before the list was read are left out.
 * Update: docs/deploy.md, "Kafka version".
 */
export const MSK_KAFKA_VERSIONS = {
  readOn: '2026-12-01',
  versions: [
    { version: '3.6.0', endOfSupport: '2026-06-01' },
    { version: '3.7.x' },
    { version: '3.7.x.kraft' },
    { version: '3.8.x', recommended: true },
    { version: '3.8.x.kraft' },
    { version: '3.9.x' },
    { version: '3.9.x.kraft' },
    { version: '4.0.x.kraft' },
    { version: '4.1.x.kraft' },
  ] as readonly MskKafkaVersion[],
} as const;

/** The version MSK marks as recommended: the default for new clusters. */
export function recommendedKafkaVersion(): string {
  const recommended = MSK_KAFKA_VERSIONS.versions.find((v) => v.recommended);
  if (!recommended) {
    throw new Error('MSK_KAFKA_VERSIONS marks no recommended version');
  }
  return recommended.version;
}

/**
 * Why `version` cannot be used for a new cluster on `today` (ISO date), or undefined when it can.
 */
export function kafkaVersionProblem(version: string, today: string): string | undefined {
  const supported = MSK_KAFKA_VERSIONS.versions.filter((v) => v.endOfSupport === undefined || v.endOfSupport > today);
  const known = MSK_KAFKA_VERSIONS.versions.find((v) => v.version === version);
  const advice = `set msk.kafkaVersion to ${recommendedKafkaVersion()} (recommended) or one of ${supported.map((v) => v.version).join(', ')}`
    + ` (list read ${MSK_KAFKA_VERSIONS.readOn} from the MSK "Supported Apache Kafka versions" page)`;
  if (!known) {
    return `msk.kafkaVersion ${JSON.stringify(version)} is not a version MSK supports: ${advice}`;
  }
  if (known.endOfSupport !== undefined && known.endOfSupport <= today) {
    return `msk.kafkaVersion ${version} reached MSK end of support on ${known.endOfSupport}: ${advice}`;
  }
  return undefined;
}

/**
 * `glue:GetSchemaVersion` by `SchemaVersionId` (how a deserializer resolves the UUID in a record's
 * header) is authorised only with `Resource: "*"`: the request names no registry or schema.
 * Sources: AWS Glue developer guide, schema registry IAM examples for deserializers;
 * awslabs/aws-glue-schema-registry issue #68.
 */
export const GLUE_SCHEMA_VERSION_BY_ID = {
  action: 'glue:GetSchemaVersion',
  reason: 'glue:GetSchemaVersion by SchemaVersionId names no registry or schema, so IAM authorises it only on Resource "*" '
    + '(AWS Glue developer guide, schema registry IAM example for deserializers; awslabs/aws-glue-schema-registry#68)',
} as const;

/**
 * CloudFormation resolves at most 60 dynamic references (`{{resolve:...}}`) per template, and
 * re-resolves one only when the resource holding it is updated.
 * Source: CloudFormation user guide, "Get values stored in other services using dynamic references".
 */
export const CFN_MAX_DYNAMIC_REFERENCES = 60;

/**
 * NLB TCP idle timeout: 350 s by default, settable from 60 to 6000 s with the listener attribute
 * `tcp.idle_timeout.seconds` (Elastic Load Balancing user guide for NLBs, "Idle timeout for TCP
 * flows"). Kafka brokers close idle connections after `connections.max.idle.ms` = 540000 ms by
 * default (Apache Kafka broker configs), so a shorter NLB timeout drops connections silently first.
 */
export const NLB_TCP_IDLE_TIMEOUT = { attribute: 'tcp.idle_timeout.seconds', minSeconds: 60, maxSeconds: 6000, defaultSeconds: 350 } as const;
export const KAFKA_CONNECTIONS_MAX_IDLE_SECONDS = 540;

/**
 * AZ names (`us-east-1a`) map to different physical zones in different accounts; AZ IDs
 * (`use1-az1`) name the same zone everywhere. Source: EC2 user guide, "AZ IDs for your AWS resources".
 * The ID is the region's short code (`use1`, `euw1`, `cnn1`), `-az`, and a number.
 */
export const AZ_ID_PATTERN = /^([a-z]{2,}\d)-az\d+$/;

/**
 * Regions where the zone letters a, b and c do not all exist for every account, so default zone
 * names cannot be derived from the region: cn-north-1 (Beijing) has zones a, b and d; in
 * ap-northeast-1 (Tokyo) and us-west-1 (N. California) the letters an account sees depend on the
 * account (Tokyo accounts see a, c and d, or a, b and c; N. California accounts see two of a, b
 * and c). Source: EC2 user guide, "Regions and Zones" / "AZ IDs for your AWS resources", which list
 * each region's AZ IDs and note that names map to IDs per account.
 */
export const REGIONS_WITHOUT_DEFAULT_ZONE_LETTERS: Readonly<Record<string, string>> = {
  'cn-north-1': 'its zones are cn-north-1a, cn-north-1b and cn-north-1d (AZ IDs cnn1-az1, cnn1-az2, cnn1-az4)',
  'ap-northeast-1': 'the zone letters differ between accounts (AZ IDs apne1-az1, apne1-az2, apne1-az4)',
  'us-west-1': 'accounts see two zones whose letters differ between accounts (AZ IDs usw1-az1, usw1-az3)',
};

const REGION_WORD_CODES: Readonly<Record<string, string>> = {
  east: 'e', west: 'w', north: 'n', south: 's', central: 'c',
  northeast: 'ne', northwest: 'nw', southeast: 'se', southwest: 'sw', gov: 'g',
};

/** The short code AZ IDs of `region` start with (us-east-1 → use1, cn-north-1 → cnn1), if known. */
export function azIdPrefixOf(region: string): string | undefined {
  const parts = region.split('-');
  const words = parts.slice(1, -1).map((w) => REGION_WORD_CODES[w]);
  if (words.some((w) => w === undefined)) {
    return undefined;
  }
  return `${parts[0]}${words.join('')}${parts[parts.length - 1]}`;
}

/**
 * MSK broker storage auto scaling through Application Auto Scaling: scalable dimension
 * `kafka:broker-storage:VolumeSize` of the cluster ARN, a target-tracking policy on the predefined
 * metric `KafkaBrokerStorageUtilization` (target 10–80 %, 50–60 % recommended), scale-in disabled
 * (storage only grows), at most 16 TiB per broker, using the service-linked role
 * AWSServiceRoleForApplicationAutoScaling_KafkaCluster. Sources: MSK developer guide "Auto-scaling
 * policy details for Amazon MSK"; Application Auto Scaling user guide "Amazon MSK and Application
 * Auto Scaling".
 */
export const MSK_STORAGE_AUTO_SCALING = {
  serviceNamespace: 'kafka',
  scalableDimension: 'kafka:broker-storage:VolumeSize',
  predefinedMetric: 'KafkaBrokerStorageUtilization',
  minTargetPercent: 10,
  maxTargetPercent: 80,
  maxVolumeGiB: 16384,
} as const;

/**
 * Kafka event source mappings (Amazon MSK and self-managed Kafka) in provisioned mode, read 2026-12-02:
 *  - Lambda developer guide "Apache Kafka event poller scaling modes" (kafka-scaling-modes.html): on-demand is
 *    the default; provisioned mode gives the mapping dedicated pollers between a minimum and a maximum, each
 *    handling up to 5 MB/s or 5 concurrent invocations, billed per Event Poller Unit.
 *  - Lambda API reference "ProvisionedPollerConfig": MinimumPollers 1-200 (Kafka default 1), MaximumPollers
 *    1-2000 (default 200).
 *  - Lambda developer guide "Configuring error handling controls for Kafka event sources"
 *    (kafka-retry-configurations.html): MaximumRetryAttempts (-1 = infinite, the default, or 0-10000; with an
 *    on-failure destination and infinite retries Lambda applies at most 10), MaximumRecordAgeInSeconds (-1 =
 *    infinite, the default, or 60-604800), BisectBatchOnFunctionError (default false) and
 *    FunctionResponseTypes ["ReportBatchItemFailures"] are set in provisioned mode only; the console offers
 *    them under "Event poller configuration" once provisioned mode is chosen.
 *  - CloudFormation "AWS::Lambda::EventSourceMapping": a MaximumRecordAgeInSeconds from 0 to 59 is refused.
 */
export const KAFKA_PROVISIONED_MODE = {
  minimumPollers: { min: 1, max: 200, default: 1 },
  maximumPollers: { min: 1, max: 2000, default: 200 },
  /** -1 = infinite. */
  maximumRetryAttempts: { infinite: -1, min: 0, max: 10_000, default: -1 },
  /** Retries Lambda applies when retries are infinite and an on-failure destination is set. */
  retriesWithOnFailureDestination: 10,
  /** -1 = infinite. */
  maximumRecordAgeSeconds: { infinite: -1, min: 60, max: 604_800, default: -1 },
  /** The one FunctionResponseTypes value, turning on partial-batch responses. */
  reportBatchItemFailures: 'ReportBatchItemFailures',
} as const;
