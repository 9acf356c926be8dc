import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  AZ_ID_PATTERN, azIdPrefixOf, CFN_MAX_DYNAMIC_REFERENCES, KAFKA_PROVISIONED_MODE, kafkaVersionProblem, MSK_STORAGE_AUTO_SCALING,
  recommendedKafkaVersion,
  REGIONS_WITHOUT_DEFAULT_ZONE_LETTERS,
} from './aws-facts';
import { consumerDynamicReferenceCount, maxBrokersWithinDynamicReferenceLimit } from './constructs/handshake';
import { PipelineContracts, TopicContract, allTopics } from './contracts';

/**
 * Deployment configuration, read once by `cdk/bin/app.ts` and validated here. Stacks receive the
 * typed result and never read context or environment variables themselves.
 *
 * Sources, later ones win key by key:
 *  1. built-in defaults (sizes below, names and ESM defaults from contracts/pipeline.json);
 *  2. the `pipeline` object in cdk.json context (or `-c pipeline='{"...": ...}'` as JSON text);
 *  3. a JSON file named by context `pipelineConfigFile` (`-c pipelineConfigFile=deploy/prod.json`).
 * Account and region fall back to the CLI's CDK_DEFAULT_ACCOUNT / CDK_DEFAULT_REGION.
 */

export type LambdaArchitectureName = 'x86_64' | 'arm64';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace';
export type TopicDeletionPolicy = 'retain' | 'delete';

export interface SideConfig {
  /** 12-digit account id; undefined = the account of the credentials used at deploy time. */
  readonly account?: string;
  readonly region: string;
  /**
   * The zones of this side's subnets: AZ IDs (`use1-az1`) when `zoneKind` is `id`, else AZ names
   * (`us-east-1a`), which mean different physical zones in different accounts.
   */
  readonly availabilityZones: readonly string[];
  readonly zoneKind: ZoneKind;
}

/** `id`: AZ IDs (`availabilityZoneIds`), the same physical zone in every account; `name`: AZ names. */
export type ZoneKind = 'id' | 'name';

export interface ConsumerSideConfig extends SideConfig {
  /**
   * Complete ARN of the producer's handshake secret. Required only when producer and consumer are
   * different accounts (the value is the `HandshakeSecretArn` output of `producer-endpoint-service`).
   */
  readonly handshakeSecretArn?: string;
}

export interface ResolvedTopic extends TopicContract {
  /** Key in contracts/pipeline.json `topics` (sensorReadings, ...). */
  readonly key: string;
}

export interface MskConfig {
  readonly clusterName: string;
  readonly brokerCount: number;
  readonly instanceType: string;
  readonly kafkaVersion: string;
  /** Storage per broker at creation; auto scaling grows it up to maxVolumeSizeGiB. */
  readonly volumeSizeGiB: number;
  readonly maxVolumeSizeGiB: number;
}

export interface RdsConfig {
  readonly instanceType: string;
  readonly multiAz: boolean;
  /** Full PostgreSQL version (major.minor); minor upgrades then apply automatically. */
  readonly engineVersion: string;
}

export interface ProducerScheduleConfig {
  /** EventBridge schedule expression: rate(...) or cron(...). */
  readonly expression: string;
  readonly enabled: boolean;
  /** One EventBridge target per request; each is the producer's typed request as JSON. */
  readonly requests: readonly Record<string, unknown>[];
}

/**
 * How Lambda polls the topics: `on-demand` (Lambda sizes the pollers; failed batches are retried as AWS
 * decides) or `provisioned` (dedicated pollers, billed per poller-hour, with the error-handling controls).
 */
export type EsmMode = 'on-demand' | 'provisioned';

/** Provisioned-mode settings of every mapping; ranges and defaults in `KAFKA_PROVISIONED_MODE`. */
export interface ProvisionedEsmSettings {
  readonly minimumPollers: number;
  readonly maximumPollers: number;
  /** -1 = infinite (with the on-failure queue, AWS then applies at most 10). */
  readonly maximumRetryAttempts: number;
  /** -1 = infinite; else records older than this are sent to the on-failure queue unprocessed. */
  readonly maximumRecordAgeSeconds: number;
  readonly bisectBatchOnFunctionError: boolean;
  /** The consumer answers with the partial-batch response (FunctionResponseTypes ReportBatchItemFailures). */
  readonly reportBatchItemFailures: boolean;
}

export type EsmModeConfig =
  | { readonly mode: 'on-demand' }
  | ({ readonly mode: 'provisioned' } & ProvisionedEsmSettings);

export interface PipelineConfig {
  readonly producer: SideConfig;
  readonly consumer: ConsumerSideConfig;
  /** True when both accounts are known and differ. */
  readonly crossAccount: boolean;
  readonly producerVpcCidr: string;
  readonly consumerVpcCidr: string;
  readonly msk: MskConfig;
  readonly topics: readonly ResolvedTopic[];
  readonly topicDeletion: TopicDeletionPolicy;
  readonly windowSeconds: number;
  readonly esmBatchSize: number;
  readonly esmBatchingWindowSeconds: number;
  /** Poller mode and, in provisioned mode, the error-handling controls of every mapping. */
  readonly esm: EsmModeConfig;
  readonly producerSchedule: ProducerScheduleConfig;
  readonly lambdaArchitecture: LambdaArchitectureName;
  readonly logLevel: LogLevel;
  /** Keep data (tables, bucket, database snapshot, keys) when a stack is destroyed. */
  readonly retainData: boolean;
  /** Whether the producer must accept each consumer endpoint connection by hand. */
  readonly endpointAcceptanceRequired: boolean;
  readonly rds: RdsConfig;
  /** Optional e-mail address subscribed to the alarm topic. */
  readonly alarmEmail?: string;
  /**
   * Bump to make CloudFormation re-read the handshake and the SCRAM password (dynamic references
   * are only resolved when their resource changes), e.g. after rotating the SCRAM secret.
   */
  readonly handshakeRevision: number;
}

export class ConfigError extends Error {
  constructor(public readonly problems: readonly string[]) {
    super(`Invalid pipeline configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Where defaults for account and region come from when the config leaves them out. */
export interface CliEnvironment {
  readonly account?: string;
  readonly region?: string;
  /** ISO date the Kafka version's end of support is compared with. @default today (UTC) */
  readonly today?: string;
}

/** Region used when neither the config nor the CLI names one, so an offline synth still works. */
export const FALLBACK_REGION = 'eu-west-1';

const KNOWN_TOP_LEVEL_KEYS = new Set([
  'producer', 'consumer', 'producerVpcCidr', 'consumerVpcCidr', 'msk', 'topics', 'topicDeletion',
  'windowSeconds', 'esmBatchSize', 'esmBatchingWindowSeconds', 'esmMode', 'esmProvisioned', 'producerSchedule', 'lambdaArchitecture',
  'logLevel', 'retainData', 'endpointAcceptanceRequired', 'rds', 'alarmEmail', 'handshakeRevision',
]);

type Raw = Record<string, unknown>;

function isObject(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deep merge of plain objects; arrays and scalars from `override` replace `base`. */
export function mergeConfig(base: Raw, override: Raw): Raw {
  const out: Raw = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const current = out[key];
    out[key] = isObject(current) && isObject(value) ? mergeConfig(current, value) : value;
  }
  return out;
}

/** Parses an IPv4 CIDR into [first, last] addresses as unsigned 32-bit numbers. */
export function cidrRange(cidr: string): [number, number] | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  if (!match) {
    return undefined;
  }
  const octets = match.slice(1, 5).map(Number);
  const prefix = Number(match[5]);
  if (octets.some((o) => o > 255) || prefix > 32) {
    return undefined;
  }
  const address = ((octets[0] << 24) >>> 0) + (octets[1] << 16) + (octets[2] << 8) + octets[3];
  const size = 2 ** (32 - prefix);
  const first = Math.floor(address / size) * size;
  if (first !== address) {
    return undefined; // host bits set: almost always a typo
  }
  return [first, first + size - 1];
}

export function cidrsOverlap(a: string, b: string): boolean {
  const ra = cidrRange(a);
  const rb = cidrRange(b);
  if (!ra || !rb) {
    return false;
  }
  return ra[0] <= rb[1] && rb[0] <= ra[1];
}

class Reader {
  readonly problems: string[] = [];

  string(value: unknown, where: string, fallback?: string): string {
    if (value === undefined) {
      if (fallback === undefined) {
        this.problems.push(`${where} is required`);
        return '';
      }
      return fallback;
    }
    if (typeof value !== 'string' || value.length === 0) {
      this.problems.push(`${where} must be a non-empty string, got ${JSON.stringify(value)}`);
      return fallback ?? '';
    }
    return value;
  }

  optionalString(value: unknown, where: string): string | undefined {
    if (value === undefined || value === null || value === '') {
      return undefined;
    }
    return this.string(value, where);
  }

  int(value: unknown, where: string, fallback: number, min: number, max: number): number {
    if (value === undefined) {
      return fallback;
    }
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.problems.push(`${where} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
      return fallback;
    }
    return value;
  }

  bool(value: unknown, where: string, fallback: boolean): boolean {
    if (value === undefined) {
      return fallback;
    }
    if (typeof value !== 'boolean') {
      this.problems.push(`${where} must be true or false, got ${JSON.stringify(value)}`);
      return fallback;
    }
    return value;
  }

  oneOf<T extends string>(value: unknown, where: string, allowed: readonly T[], fallback: T): T {
    if (value === undefined) {
      return fallback;
    }
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.problems.push(`${where} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
      return fallback;
    }
    return value as T;
  }

  /** Reports keys of `obj` outside `known` (typos would otherwise be silently ignored). */
  knownKeys(obj: Raw, where: string, known: readonly string[]): void {
    for (const key of Object.keys(obj)) {
      if (!known.includes(key)) {
        this.problems.push(`unknown key ${where}.${key} (known: ${known.join(', ')})`);
      }
    }
  }

  object(value: unknown, where: string): Raw {
    if (value === undefined) {
      return {};
    }
    if (!isObject(value)) {
      this.problems.push(`${where} must be an object, got ${JSON.stringify(value)}`);
      return {};
    }
    return value;
  }
}

const ACCOUNT_RE = /^\d{12}$/;
const REGION_RE = /^[a-z]{2}(-[a-z]+)+-\d$/;

function readSide(r: Reader, raw: Raw, where: string, fallback: CliEnvironment, defaultAzCount: number): SideConfig {
  const account = r.optionalString(raw.account, `${where}.account`) ?? fallback.account;
  if (account !== undefined && !ACCOUNT_RE.test(account)) {
    r.problems.push(`${where}.account must be a 12-digit AWS account id, got ${JSON.stringify(account)}`);
  }
  const region = r.string(raw.region, `${where}.region`, fallback.region ?? FALLBACK_REGION);
  if (!REGION_RE.test(region)) {
    r.problems.push(`${where}.region must look like eu-west-1, got ${JSON.stringify(region)}`);
  }
  const list = (value: unknown, key: string): string[] | undefined => {
    if (value === undefined) {
      return undefined;
    }
    if (!Array.isArray(value) || value.some((az) => typeof az !== 'string')) {
      r.problems.push(`${where}.${key} must be a list of strings`);
      return [];
    }
    return value as string[];
  };
  const names = list(raw.availabilityZones, 'availabilityZones');
  const ids = list(raw.availabilityZoneIds, 'availabilityZoneIds');
  if (names !== undefined && ids !== undefined) {
    r.problems.push(`${where}: set availabilityZoneIds or availabilityZones, not both`);
  }
  const zoneKind: ZoneKind = ids !== undefined ? 'id' : 'name';
  const noDefaultLetters = REGIONS_WITHOUT_DEFAULT_ZONE_LETTERS[region];
  if (ids === undefined && names === undefined && noDefaultLetters !== undefined) {
    r.problems.push(
      `${where}: region ${region} has no default zones (${noDefaultLetters}): set ${where}.availabilityZoneIds to AZ IDs `
      + 'listed by aws ec2 describe-availability-zones --query "AvailabilityZones[].[ZoneName,ZoneId]"',
    );
  }
  const availabilityZones = ids ?? names
    ?? ['a', 'b', 'c'].slice(0, defaultAzCount).map((suffix) => `${region}${suffix}`);
  const key = zoneKind === 'id' ? 'availabilityZoneIds' : 'availabilityZones';
  if (availabilityZones.length < 2) {
    r.problems.push(`${where}.${key} needs at least 2 zones, got ${availabilityZones.length}`);
  }
  if (new Set(availabilityZones).size !== availabilityZones.length) {
    r.problems.push(`${where}.${key} has duplicates`);
  }
  const prefix = azIdPrefixOf(region);
  for (const az of availabilityZones) {
    if (zoneKind === 'name' && !new RegExp(`^${region}[a-z]$`).test(az)) {
      r.problems.push(`${where}.availabilityZones: ${az} is not a zone name of region ${region} (like ${region}a)`);
    }
    if (zoneKind === 'id') {
      const m = AZ_ID_PATTERN.exec(az);
      if (!m) {
        r.problems.push(`${where}.availabilityZoneIds: ${az} is not an AZ ID (like use1-az1)`);
      } else if (prefix !== undefined && m[1] !== prefix) {
        r.problems.push(`${where}.availabilityZoneIds: ${az} is not in region ${region} (its zone IDs start with ${prefix}-az)`);
      }
    }
  }
  return { account, region, availabilityZones, zoneKind };
}

function readCidr(r: Reader, value: unknown, where: string, fallback: string): string {
  const cidr = r.string(value, where, fallback);
  const range = cidrRange(cidr);
  if (!range) {
    r.problems.push(`${where} must be an IPv4 CIDR with no host bits set (e.g. 10.10.0.0/16), got ${JSON.stringify(cidr)}`);
    return cidr;
  }
  const prefix = Number(cidr.split('/')[1]);
  if (prefix < 16 || prefix > 22) {
    r.problems.push(`${where} prefix must be /16 to /22 (room for one /24 subnet per zone), got /${prefix}`);
  }
  return cidr;
}

function readTopics(r: Reader, raw: Raw, contracts: PipelineContracts, brokerCount: number): ResolvedTopic[] {
  const overrides = r.object(raw, 'topics');
  const byKey = contracts.topics as unknown as Record<string, TopicContract>;
  for (const key of Object.keys(overrides)) {
    if (!(key in byKey)) {
      r.problems.push(`topics.${key} is not a topic in contracts/pipeline.json (known: ${Object.keys(byKey).join(', ')})`);
    }
  }
  return Object.entries(byKey).map(([key, topic]) => {
    const o = r.object(overrides[key], `topics.${key}`);
    r.knownKeys(o, `topics.${key}`, ['partitions', 'replicationFactor']);
    const partitions = r.int(o.partitions, `topics.${key}.partitions`, topic.partitions, 1, 1000);
    const replicationFactor = r.int(o.replicationFactor, `topics.${key}.replicationFactor`, topic.replicationFactor, 1, 7);
    if (replicationFactor > brokerCount) {
      r.problems.push(`topics.${key}.replicationFactor (${replicationFactor}) exceeds msk.brokerCount (${brokerCount})`);
    }
    // The same rules topic-admin applies, so a typo fails at synth rather than mid-deployment.
    for (const [configKey, value] of Object.entries(topic.config)) {
      if (!/^[a-z0-9]+(\.[a-z0-9]+)*$/.test(configKey)) {
        r.problems.push(`topic ${topic.name}: config key ${JSON.stringify(configKey)} must be lower-case words separated by dots, like retention.ms`);
      } else if (typeof value !== 'string' || value === '') {
        r.problems.push(`topic ${topic.name}: config ${configKey} has an empty value`);
      }
    }
    const minIsr = topic.config['min.insync.replicas'];
    if (minIsr !== undefined && Number(minIsr) > replicationFactor) {
      r.problems.push(`topic ${topic.name}: min.insync.replicas (${minIsr}) exceeds its replication factor (${replicationFactor})`);
    }
    return { ...topic, key, partitions, replicationFactor };
  });
}

const PROVISIONED_KEYS = [
  'minimumPollers', 'maximumPollers', 'maximumRetryAttempts', 'maximumRecordAgeSeconds', 'bisectBatchOnFunctionError',
  'reportBatchItemFailures',
] as const;

/** An integer in [min, max] or exactly -1 (AWS's "infinite"). */
function intOrInfinite(r: Reader, value: unknown, where: string, limits: { min: number; max: number; default: number }): number {
  if (value === -1) {
    return -1;
  }
  if (value === undefined) {
    return limits.default;
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < limits.min || value > limits.max) {
    r.problems.push(`${where} must be -1 (infinite) or an integer from ${limits.min} to ${limits.max}, got ${JSON.stringify(value)}`);
    return limits.default;
  }
  return value;
}

/**
 * `esmMode` and `esmProvisioned`. Lambda takes the Kafka error-handling controls and poller limits only in
 * provisioned mode (aws-facts.ts KAFKA_PROVISIONED_MODE), so they are refused in on-demand mode rather than
 * left for CloudFormation to reject mid-deployment.
 */
function readEsmMode(r: Reader, modeRaw: unknown, settingsRaw: unknown): EsmModeConfig {
  const mode = r.oneOf(modeRaw, 'esmMode', ['on-demand', 'provisioned'] as const, 'on-demand');
  const raw = r.object(settingsRaw, 'esmProvisioned');
  r.knownKeys(raw, 'esmProvisioned', PROVISIONED_KEYS);
  if (mode === 'on-demand') {
    const given = PROVISIONED_KEYS.filter((key) => raw[key] !== undefined);
    if (given.length > 0) {
      r.problems.push(
        `esmProvisioned.${given.join(', esmProvisioned.')} only apply in provisioned mode (Lambda refuses them for an `
        + 'on-demand Kafka mapping): set esmMode to "provisioned", or remove esmProvisioned',
      );
    }
    return { mode };
  }
  const f = KAFKA_PROVISIONED_MODE;
  const minimumPollers = r.int(raw.minimumPollers, 'esmProvisioned.minimumPollers', f.minimumPollers.default, f.minimumPollers.min, f.minimumPollers.max);
  const maximumPollers = r.int(raw.maximumPollers, 'esmProvisioned.maximumPollers', f.maximumPollers.default, f.maximumPollers.min, f.maximumPollers.max);
  if (minimumPollers > maximumPollers) {
    r.problems.push(
      `esmProvisioned.minimumPollers (${minimumPollers}) exceeds esmProvisioned.maximumPollers (${maximumPollers}): `
      + 'set maximumPollers to at least minimumPollers',
    );
  }
  return {
    mode,
    minimumPollers,
    maximumPollers,
    maximumRetryAttempts: intOrInfinite(r, raw.maximumRetryAttempts, 'esmProvisioned.maximumRetryAttempts', f.maximumRetryAttempts),
    maximumRecordAgeSeconds: intOrInfinite(r, raw.maximumRecordAgeSeconds, 'esmProvisioned.maximumRecordAgeSeconds', f.maximumRecordAgeSeconds),
    bisectBatchOnFunctionError: r.bool(raw.bisectBatchOnFunctionError, 'esmProvisioned.bisectBatchOnFunctionError', false),
    // The consumer answers with the partial-batch response, so provisioned mode turns it on unless told not to.
    reportBatchItemFailures: r.bool(raw.reportBatchItemFailures, 'esmProvisioned.reportBatchItemFailures', true),
  };
}

const DEFAULT_SCHEDULE_REQUESTS: readonly Record<string, unknown>[] = [
  { action: 'simulate_sensors', devices: 20, readings_per_device: 15 },
  { action: 'simulate_store_events', count: 50, malformed_share: 0.05 },
];

/**
 * Validates a raw configuration object. Collects every problem and throws one ConfigError listing
 * them all, so a user fixes the file in one go.
 */
export function parseConfig(rawInput: unknown, contracts: PipelineContracts, cli: CliEnvironment = {}): PipelineConfig {
  const r = new Reader();
  const raw = r.object(rawInput, 'pipeline');
  for (const key of Object.keys(raw)) {
    if (!KNOWN_TOP_LEVEL_KEYS.has(key)) {
      r.problems.push(`unknown key pipeline.${key} (known: ${[...KNOWN_TOP_LEVEL_KEYS].join(', ')})`);
    }
  }

  const mskRaw = r.object(raw.msk, 'msk');
  r.knownKeys(mskRaw, 'msk', ['clusterName', 'brokerCount', 'instanceType', 'kafkaVersion', 'volumeSizeGiB', 'maxVolumeSizeGiB']);
  const producerRaw = r.object(raw.producer, 'producer');
  r.knownKeys(producerRaw, 'producer', ['account', 'region', 'availabilityZones', 'availabilityZoneIds']);
  const producer = readSide(r, producerRaw, 'producer', cli, 3);
  const consumerRaw = r.object(raw.consumer, 'consumer');
  r.knownKeys(consumerRaw, 'consumer', ['account', 'region', 'availabilityZones', 'availabilityZoneIds', 'handshakeSecretArn']);
  // Zones given by ID on the producer side default the consumer to the first two of them: an AZ ID
  // is the same physical zone in every account, so the endpoint services are offered there.
  const consumerZonesGiven = consumerRaw.availabilityZones !== undefined || consumerRaw.availabilityZoneIds !== undefined;
  const consumerDefaults = !consumerZonesGiven && producer.zoneKind === 'id'
    ? { availabilityZoneIds: producer.availabilityZones.slice(0, 2) }
    : {};
  // The consumer defaults to the producer's account and region (one account, like seed S1).
  const consumerSide = readSide(r, { ...consumerDefaults, ...consumerRaw }, 'consumer', { account: producer.account, region: producer.region }, 2);
  if (consumerSide.region !== producer.region) {
    r.problems.push(
      `consumer.region (${consumerSide.region}) must equal producer.region (${producer.region}): `
      + 'VPC endpoint services are regional',
    );
  }
  const crossAccount = producer.account !== undefined && consumerSide.account !== undefined
    && producer.account !== consumerSide.account;
  if (crossAccount && (producer.zoneKind !== 'id' || consumerSide.zoneKind !== 'id')) {
    r.problems.push(
      'producer and consumer are different accounts: set producer.availabilityZoneIds (and optionally '
      + 'consumer.availabilityZoneIds, default: the first two producer zones) to AZ IDs such as '
      + `${azIdPrefixOf(producer.region) ?? 'use1'}-az1, not availabilityZones: zone names map to different physical zones in `
      + 'each account, and the consumer endpoints must sit in zones where the broker endpoint services are offered '
      + '(list them with aws ec2 describe-availability-zones --query "AvailabilityZones[].[ZoneName,ZoneId]")',
    );
  } else if (producer.zoneKind !== consumerSide.zoneKind) {
    r.problems.push('producer and consumer zones must both be AZ IDs (availabilityZoneIds) or both AZ names (availabilityZones)');
  } else {
    const outside = consumerSide.availabilityZones.filter((az) => !producer.availabilityZones.includes(az));
    if (outside.length > 0) {
      r.problems.push(
        `consumer zones ${outside.join(', ')} are not producer zones (${producer.availabilityZones.join(', ')}): the broker `
        + 'endpoint services are only offered in the producer NLBs\' zones',
      );
    }
  }
  const handshakeSecretArn = r.optionalString(consumerRaw.handshakeSecretArn, 'consumer.handshakeSecretArn');
  if (handshakeSecretArn !== undefined) {
    const m = /^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):(\d{12}):secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/.exec(handshakeSecretArn);
    if (!m) {
      r.problems.push('consumer.handshakeSecretArn must be the complete secret ARN (ending in the 6-character suffix)');
    } else {
      if (producer.account !== undefined && m[2] !== producer.account) {
        r.problems.push(`consumer.handshakeSecretArn is in account ${m[2]}, not the producer account ${producer.account}`);
      }
      if (m[1] !== producer.region) {
        r.problems.push(`consumer.handshakeSecretArn is in region ${m[1]}, not the producer region ${producer.region}`);
      }
    }
    if (!crossAccount) {
      r.problems.push('consumer.handshakeSecretArn is only used across accounts; in one account the stacks pass the secret directly');
    }
  }
  const consumer: ConsumerSideConfig = { ...consumerSide, handshakeSecretArn };

  const producerVpcCidr = readCidr(r, raw.producerVpcCidr, 'producerVpcCidr', '10.10.0.0/16');
  const consumerVpcCidr = readCidr(r, raw.consumerVpcCidr, 'consumerVpcCidr', '10.20.0.0/16');
  if (cidrsOverlap(producerVpcCidr, consumerVpcCidr)) {
    r.problems.push(`producerVpcCidr ${producerVpcCidr} overlaps consumerVpcCidr ${consumerVpcCidr}`);
  }

  const clusterName = r.string(mskRaw.clusterName, 'msk.clusterName', contracts.project);
  // The name becomes part of the AmazonMSK_ secret name, topic ARNs and (without its hyphens)
  // the broker host names, so it is kept to one lowercase DNS label.
  if (!/^[a-z][a-z0-9-]{0,61}[a-z0-9]$/.test(clusterName)) {
    r.problems.push(`msk.clusterName must be a lowercase DNS label (a-z, 0-9, -); got ${JSON.stringify(clusterName)}`);
  }
  const maxBrokers = maxBrokersWithinDynamicReferenceLimit(Object.keys(contracts.topics).length);
  const brokerCount = r.int(mskRaw.brokerCount, 'msk.brokerCount', 3, 2, 30);
  if (brokerCount > maxBrokers) {
    r.problems.push(
      `msk.brokerCount (${brokerCount}) exceeds ${maxBrokers}: consumer-stack would hold `
      + `${consumerDynamicReferenceCount(brokerCount, Object.keys(contracts.topics).length)} dynamic references to the handshake, `
      + `and CloudFormation resolves at most ${CFN_MAX_DYNAMIC_REFERENCES} per template`,
    );
  }
  if (producer.availabilityZones.length > 0 && brokerCount % producer.availabilityZones.length !== 0) {
    r.problems.push(
      `msk.brokerCount (${brokerCount}) must be a multiple of the number of producer availability zones `
      + `(${producer.availabilityZones.length})`,
    );
  }
  const instanceType = r.string(mskRaw.instanceType, 'msk.instanceType', 'kafka.m7g.large');
  if (!/^kafka\.[a-z0-9]+\.[a-z0-9]+$/.test(instanceType)) {
    r.problems.push(`msk.instanceType must look like kafka.m7g.large, got ${JSON.stringify(instanceType)}`);
  }
  const kafkaVersion = r.string(mskRaw.kafkaVersion, 'msk.kafkaVersion', recommendedKafkaVersion());
  const versionProblem = kafkaVersionProblem(kafkaVersion, cli.today ?? new Date().toISOString().slice(0, 10));
  if (versionProblem) {
    r.problems.push(versionProblem);
  }
  const maxGiB = MSK_STORAGE_AUTO_SCALING.maxVolumeGiB;
  const volumeSizeGiB = r.int(mskRaw.volumeSizeGiB, 'msk.volumeSizeGiB', 100, 1, maxGiB);
  const maxVolumeSizeGiB = r.int(mskRaw.maxVolumeSizeGiB, 'msk.maxVolumeSizeGiB', Math.min(maxGiB, volumeSizeGiB * 10), 1, maxGiB);
  if (maxVolumeSizeGiB < volumeSizeGiB) {
    r.problems.push(`msk.maxVolumeSizeGiB (${maxVolumeSizeGiB}) must be at least msk.volumeSizeGiB (${volumeSizeGiB}): storage auto scaling only grows`);
  }

  const topics = readTopics(r, raw.topics as Raw, contracts, brokerCount);

  const scheduleRaw = typeof raw.producerSchedule === 'string'
    ? { expression: raw.producerSchedule }
    : r.object(raw.producerSchedule, 'producerSchedule');
  const expression = r.string(scheduleRaw.expression, 'producerSchedule.expression', 'rate(5 minutes)');
  if (!/^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^)]+\))$/.test(expression)) {
    r.problems.push(`producerSchedule.expression must be rate(N minutes|hours|days) or cron(...), got ${JSON.stringify(expression)}`);
  }
  let requests = DEFAULT_SCHEDULE_REQUESTS;
  if (scheduleRaw.requests !== undefined) {
    if (!Array.isArray(scheduleRaw.requests) || scheduleRaw.requests.length === 0
      || scheduleRaw.requests.some((q) => !isObject(q) || typeof q.action !== 'string')) {
      r.problems.push('producerSchedule.requests must be a non-empty list of objects with an "action"');
    } else {
      requests = scheduleRaw.requests as Record<string, unknown>[];
    }
  }
  if (requests.length > 5) {
    r.problems.push('producerSchedule.requests allows at most 5 requests (EventBridge targets per rule)');
  }

  const rdsRaw = r.object(raw.rds, 'rds');
  r.knownKeys(rdsRaw, 'rds', ['instanceType', 'engineVersion', 'multiAz']);
  const rdsInstanceType = r.string(rdsRaw.instanceType, 'rds.instanceType', 't4g.micro');
  if (!/^[a-z0-9]+\.[a-z0-9]+$/.test(rdsInstanceType)) {
    r.problems.push(`rds.instanceType must look like t4g.micro (no db. prefix), got ${JSON.stringify(rdsInstanceType)}`);
  }

  const rdsEngineVersion = r.string(rdsRaw.engineVersion, 'rds.engineVersion', '16.13');
  if (!/^(1[6-9])\.\d+$/.test(rdsEngineVersion)) {
    r.problems.push(`rds.engineVersion must be a PostgreSQL major.minor version from 16 on (e.g. 16.13), got ${JSON.stringify(rdsEngineVersion)}`);
  }

  const alarmEmail = r.optionalString(raw.alarmEmail, 'alarmEmail');
  if (alarmEmail !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(alarmEmail)) {
    r.problems.push(`alarmEmail must be an e-mail address, got ${JSON.stringify(alarmEmail)}`);
  }

  const config: PipelineConfig = {
    producer,
    consumer,
    crossAccount,
    producerVpcCidr,
    consumerVpcCidr,
    msk: { clusterName, brokerCount, instanceType, kafkaVersion, volumeSizeGiB, maxVolumeSizeGiB },
    topics,
    topicDeletion: r.oneOf(raw.topicDeletion, 'topicDeletion', ['retain', 'delete'] as const, 'retain'),
    windowSeconds: r.int(raw.windowSeconds, 'windowSeconds', contracts.defaults.windowSeconds, 1, 86400),
    esmBatchSize: r.int(raw.esmBatchSize, 'esmBatchSize', contracts.defaults.esmBatchSize, 1, 10000),
    esmBatchingWindowSeconds: r.int(
      raw.esmBatchingWindowSeconds, 'esmBatchingWindowSeconds', contracts.defaults.esmBatchingWindowSeconds, 0, 300,
    ),
    esm: readEsmMode(r, raw.esmMode, raw.esmProvisioned),
    producerSchedule: {
      expression,
      enabled: r.bool(scheduleRaw.enabled, 'producerSchedule.enabled', true),
      requests,
    },
    lambdaArchitecture: r.oneOf(raw.lambdaArchitecture, 'lambdaArchitecture', ['x86_64', 'arm64'] as const, 'x86_64'),
    logLevel: r.oneOf(raw.logLevel, 'logLevel', ['error', 'warn', 'info', 'debug', 'trace'] as const, 'info'),
    retainData: r.bool(raw.retainData, 'retainData', true),
    endpointAcceptanceRequired: r.bool(raw.endpointAcceptanceRequired, 'endpointAcceptanceRequired', false),
    rds: {
      instanceType: rdsInstanceType,
      multiAz: r.bool(rdsRaw.multiAz, 'rds.multiAz', false),
      engineVersion: rdsEngineVersion,
    },
    alarmEmail,
    handshakeRevision: r.int(raw.handshakeRevision, 'handshakeRevision', 1, 1, 1_000_000),
  };
  if (r.problems.length > 0) {
    throw new ConfigError(r.problems);
  }
  return config;
}

/** Minimal view of the CDK app's context, so this module stays testable without an App. */
export interface ContextSource {
  tryGetContext(key: string): unknown;
}

/** Reads `pipeline` (object or JSON text) and the optional `pipelineConfigFile` from context. */
export function rawConfigFromContext(context: ContextSource, baseDir: string = process.cwd()): Raw {
  const problems: string[] = [];
  let raw: Raw = {};
  const inline = context.tryGetContext('pipeline');
  if (typeof inline === 'string') {
    try {
      const parsed = JSON.parse(inline);
      if (isObject(parsed)) {
        raw = parsed;
      } else {
        problems.push('context "pipeline" must be a JSON object');
      }
    } catch (e) {
      problems.push(`context "pipeline" is not valid JSON: ${(e as Error).message}`);
    }
  } else if (isObject(inline)) {
    raw = inline;
  } else if (inline !== undefined) {
    problems.push('context "pipeline" must be an object');
  }
  const file = context.tryGetContext('pipelineConfigFile');
  if (file !== undefined) {
    if (typeof file !== 'string' || file.length === 0) {
      problems.push('context "pipelineConfigFile" must be a path');
    } else {
      const full = path.resolve(baseDir, file);
      try {
        const parsed = JSON.parse(fs.readFileSync(full, 'utf8'));
        if (!isObject(parsed)) {
          problems.push(`${full} must hold a JSON object`);
        } else {
          raw = mergeConfig(raw, parsed);
        }
      } catch (e) {
        problems.push(`cannot read pipelineConfigFile ${full}: ${(e as Error).message}`);
      }
    }
  }
  if (problems.length > 0) {
    throw new ConfigError(problems);
  }
  return raw;
}

/** Used by tests and the app to keep the contract's topic order. */
export function contractTopicNames(contracts: PipelineContracts): string[] {
  return allTopics(contracts).map((t) => t.name);
}
