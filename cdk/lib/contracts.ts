import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Typed view of `contracts/pipeline.json`, the single source of truth for every name the Rust
 * functions, the local stack and this CDK app share. The app reads the file once; nothing in
 * `cdk/` spells a topic, table, queue or env var name itself.
 */

/** Repository root (cdk/lib -> ../..). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const CONTRACTS_DIR = path.join(REPO_ROOT, 'contracts');

/** What a topic carries; the consumer has one sink per kind (Rust `pipeline_contracts::Payload`). */
export type PayloadKind = 'SensorReading' | 'StoreEvent' | 'Explicit';
const PAYLOAD_KINDS: readonly PayloadKind[] = ['SensorReading', 'StoreEvent', 'Explicit'];

export interface TopicContract {
  readonly name: string;
  readonly payload: PayloadKind;
  /** The variable the functions read this topic's name from. */
  readonly envVar: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  readonly consumerGroup: string;
  readonly config: Readonly<Record<string, string>>;
}

export type DynamoKeyType = 'S' | 'N' | 'B';

export interface TableContract {
  readonly name: string;
  readonly partitionKey: string;
  readonly partitionKeyType: DynamoKeyType;
  readonly sortKey: string;
  readonly sortKeyType: DynamoKeyType;
}

export interface SchemaContract {
  readonly compatibility: string;
  /** Paths relative to `contracts/`, oldest first. */
  readonly versions: readonly string[];
}

export interface PipelineContracts {
  readonly project: string;
  /** Keyed by the topic's contract key (construct ids, config overrides), in file order. */
  readonly topics: Readonly<Record<string, TopicContract>>;
  readonly schemaRegistry: { readonly name: string };
  readonly schemas: Readonly<Record<string, SchemaContract>>;
  readonly tables: {
    readonly windowAggregates: TableContract;
    readonly explicitEvents: TableContract;
  };
  readonly bucket: {
    readonly localName: string;
    readonly storeEventsPrefix: string;
    readonly oversizePoisonPrefix: string;
  };
  readonly queues: { readonly poison: string; readonly onFailure: string };
  readonly postgres: { readonly database: string; readonly salesTable: string; readonly inventoryTable: string; readonly consumerRole: string };
  readonly defaults: {
    readonly windowSeconds: number;
    readonly esmBatchSize: number;
    readonly esmBatchingWindowSeconds: number;
  };
  readonly envVars: Readonly<Record<EnvVarKey, string>>;
}

/** Keys of `envVars` this app wires; the contract may define more. */
export type EnvVarKey =
  | 'windowSeconds'
  | 'aggregatesTable'
  | 'explicitEventsTable'
  | 'storeEventsBucket'
  | 'poisonQueueUrl'
  | 'registryName'
  | 'registryRoleArn'
  | 'pgHost'
  | 'pgPort'
  | 'pgDatabase'
  | 'pgUser'
  | 'pgSecretArn'
  | 'pgTls'
  | 'kafkaBootstrapServers'
  | 'kafkaAuth'
  | 'kafkaTls'
  | 'defaultFormat'
  | 'reportBatchItemFailures';

const REQUIRED_ENV_VARS: readonly EnvVarKey[] = [
  'windowSeconds', 'aggregatesTable', 'explicitEventsTable', 'storeEventsBucket', 'poisonQueueUrl',
  'registryName', 'registryRoleArn', 'pgHost', 'pgPort',
  'pgDatabase', 'pgUser', 'pgSecretArn', 'pgTls', 'kafkaBootstrapServers', 'kafkaAuth', 'kafkaTls',
  'defaultFormat', 'reportBatchItemFailures',
];

export class ContractError extends Error {
  constructor(message: string) {
    super(`contracts/pipeline.json: ${message}`);
    this.name = 'ContractError';
  }
}

function requireString(value: unknown, where: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ContractError(`${where} must be a non-empty string`);
  }
  return value;
}

function requirePositiveInt(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new ContractError(`${where} must be a positive integer`);
  }
  return value;
}

function requireKeyType(value: unknown, where: string): DynamoKeyType {
  if (value !== 'S' && value !== 'N' && value !== 'B') {
    throw new ContractError(`${where} must be one of S, N, B`);
  }
  return value;
}

/** Parses and checks the parts of the contract the CDK app depends on. */
export function parseContracts(raw: unknown): PipelineContracts {
  if (typeof raw !== 'object' || raw === null) {
    throw new ContractError('top level must be an object');
  }
  // The shape is checked field by field below; the cast only names the fields we read.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const c = raw as any;
  requireString(c.project, 'project');
  if (typeof c.topics !== 'object' || c.topics === null || Object.keys(c.topics).length === 0) {
    throw new ContractError('topics must be an object with at least one topic');
  }
  for (const key of Object.keys(c.topics)) {
    const t = c.topics[key];
    requireString(t?.name, `topics.${key}.name`);
    requireString(t?.envVar, `topics.${key}.envVar`);
    if (!PAYLOAD_KINDS.includes(t?.payload)) {
      throw new ContractError(`topics.${key}.payload must be one of ${PAYLOAD_KINDS.join(', ')}`);
    }
    requireString(t?.consumerGroup, `topics.${key}.consumerGroup`);
    requirePositiveInt(t?.partitions, `topics.${key}.partitions`);
    requirePositiveInt(t?.replicationFactor, `topics.${key}.replicationFactor`);
    if (typeof t?.config !== 'object' || t.config === null) {
      throw new ContractError(`topics.${key}.config must be an object`);
    }
  }
  requireString(c.schemaRegistry?.name, 'schemaRegistry.name');
  for (const [name, schema] of Object.entries(c.schemas ?? {})) {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const s = schema as any;
    requireString(s?.compatibility, `schemas.${name}.compatibility`);
    if (!Array.isArray(s?.versions) || s.versions.length === 0) {
      throw new ContractError(`schemas.${name}.versions must list at least one file`);
    }
  }
  for (const key of ['windowAggregates', 'explicitEvents']) {
    const t = c.tables?.[key];
    requireString(t?.name, `tables.${key}.name`);
    requireString(t?.partitionKey, `tables.${key}.partitionKey`);
    requireString(t?.sortKey, `tables.${key}.sortKey`);
    requireKeyType(t?.partitionKeyType, `tables.${key}.partitionKeyType`);
    requireKeyType(t?.sortKeyType, `tables.${key}.sortKeyType`);
  }
  requireString(c.bucket?.storeEventsPrefix, 'bucket.storeEventsPrefix');
  requireString(c.bucket?.oversizePoisonPrefix, 'bucket.oversizePoisonPrefix');
  requireString(c.queues?.poison, 'queues.poison');
  requireString(c.queues?.onFailure, 'queues.onFailure');
  if (!String(c.queues.poison).endsWith('.fifo')) {
    throw new ContractError('queues.poison must end with .fifo (it is a FIFO queue)');
  }
  requireString(c.postgres?.database, 'postgres.database');
  requireString(c.postgres?.consumerRole, 'postgres.consumerRole');
  requirePositiveInt(c.defaults?.windowSeconds, 'defaults.windowSeconds');
  requirePositiveInt(c.defaults?.esmBatchSize, 'defaults.esmBatchSize');
  if (typeof c.defaults?.esmBatchingWindowSeconds !== 'number' || c.defaults.esmBatchingWindowSeconds < 0) {
    throw new ContractError('defaults.esmBatchingWindowSeconds must be a number >= 0');
  }
  for (const key of REQUIRED_ENV_VARS) {
    requireString(c.envVars?.[key], `envVars.${key}`);
  }
  return c as PipelineContracts;
}

let cached: PipelineContracts | undefined;

/** Loads `contracts/pipeline.json` once per process. */
export function loadContracts(file: string = path.join(CONTRACTS_DIR, 'pipeline.json')): PipelineContracts {
  if (cached && file === path.join(CONTRACTS_DIR, 'pipeline.json')) {
    return cached;
  }
  const parsed = parseContracts(JSON.parse(fs.readFileSync(file, 'utf8')));
  if (file === path.join(CONTRACTS_DIR, 'pipeline.json')) {
    cached = parsed;
  }
  return parsed;
}

/** Every contract topic, in file order. */
export function allTopics(c: PipelineContracts): TopicContract[] {
  return Object.values(c.topics);
}

/** Reads one committed Avro schema version (path relative to `contracts/`). */
export function readSchemaFile(relativePath: string): string {
  const text = fs.readFileSync(path.join(CONTRACTS_DIR, relativePath), 'utf8');
  // Glue stores the definition as given; compact JSON keeps the template small.
  return JSON.stringify(JSON.parse(text));
}
