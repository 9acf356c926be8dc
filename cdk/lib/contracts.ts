import * as fs from 'node:fs';
import * as path from 'node:path';
import { CONTRACTS, Contracts, EnvVars, KeyType, Payload, SchemaContract, Table, Topic } from './generated/contracts';

/**
 * The contract (`contracts/pipeline.json`, the single source of truth for every name the Rust
 * functions, the local stack and this CDK app share) as the app reads it: only through the
 * generated bindings (`cdk/lib/generated/contracts.ts`, from `functions/contracts`), never by
 * parsing the file. Nothing in `cdk/` spells a topic, table, queue or env var name itself.
 */

/** Repository root (cdk/lib -> ../..). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const CONTRACTS_DIR = path.join(REPO_ROOT, 'contracts');

/** What a topic carries; the consumer has one sink per kind (Rust `pipeline_contracts::Payload`). */
export type PayloadKind = Payload;
export type DynamoKeyType = KeyType;
export type TableContract = Readonly<Table>;
export type { SchemaContract };

export interface TopicContract extends Readonly<Omit<Topic, 'config'>> {
  readonly config: Readonly<Record<string, string>>;
}

/** The generated contract with every keyed entry present (the generated maps mark entries optional). */
export interface PipelineContracts extends Readonly<Omit<Contracts, 'topics' | 'schemas'>> {
  /** Keyed by the topic's contract key (construct ids, config overrides), in file order. */
  readonly topics: Readonly<Record<string, TopicContract>>;
  readonly schemas: Readonly<Record<string, SchemaContract>>;
}

/** Keys of `envVars` (each function's variable names). */
export type EnvVarKey = keyof EnvVars;

export class ContractError extends Error {
  constructor(message: string) {
    super(`contracts/pipeline.json: ${message}`);
    this.name = 'ContractError';
  }
}

function requireString(value: string | undefined, where: string): string {
  if (value === undefined || value.length === 0) {
    throw new ContractError(`${where} must be a non-empty string`);
  }
  return value;
}

function requirePositiveInt(value: number, where: string): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new ContractError(`${where} must be a positive integer`);
  }
}

/** The entries of a generated map, each present. */
function entries<T>(map: { [key in string]?: T }, where: string): [string, T][] {
  return Object.entries(map).map(([key, value]) => {
    if (value === undefined) {
      throw new ContractError(`${where}.${key} has no value`);
    }
    return [key, value];
  });
}

/**
 * Checks what tsc cannot: tsc already holds the generated constant to the Rust types (every field
 * present with its type, payload kinds, key types, compatibility modes). Left for here are values
 * inside those types (non-empty names, positive integer counts, a non-negative batching window, a
 * FIFO poison queue name, at least one topic and one version per schema) and checks across fields
 * (no two topics share a name, an env var or a consumer group: two mappings would then feed one
 * variable or one group).
 */
export function checkContracts(c: Contracts): PipelineContracts {
  requireString(c.project, 'project');
  const topics = entries(c.topics, 'topics');
  if (topics.length === 0) {
    throw new ContractError('topics must have at least one topic');
  }
  const checkedTopics: Record<string, TopicContract> = {};
  for (const [key, t] of topics) {
    requireString(t.name, `topics.${key}.name`);
    requireString(t.envVar, `topics.${key}.envVar`);
    requireString(t.consumerGroup, `topics.${key}.consumerGroup`);
    requirePositiveInt(t.partitions, `topics.${key}.partitions`);
    requirePositiveInt(t.replicationFactor, `topics.${key}.replicationFactor`);
    checkedTopics[key] = { ...t, config: Object.fromEntries(entries(t.config, `topics.${key}.config`)) };
  }
  for (const field of ['name', 'envVar', 'consumerGroup'] as const) {
    const seen = new Map<string, string>();
    for (const [key, t] of topics) {
      const other = seen.get(t[field]);
      if (other !== undefined) {
        throw new ContractError(`topics.${other} and topics.${key} share the ${field} ${t[field]}`);
      }
      seen.set(t[field], key);
    }
  }
  requireString(c.schemaRegistry.name, 'schemaRegistry.name');
  const schemas = entries(c.schemas, 'schemas');
  for (const [name, s] of schemas) {
    if (s.versions.length === 0) {
      throw new ContractError(`schemas.${name}.versions must list at least one file`);
    }
    s.versions.forEach((v, i) => requireString(v, `schemas.${name}.versions[${i}]`));
  }
  for (const [key, t] of Object.entries(c.tables)) {
    requireString(t.name, `tables.${key}.name`);
    requireString(t.partitionKey, `tables.${key}.partitionKey`);
    requireString(t.sortKey, `tables.${key}.sortKey`);
  }
  requireString(c.bucket.storeEventsPrefix, 'bucket.storeEventsPrefix');
  requireString(c.bucket.oversizePoisonPrefix, 'bucket.oversizePoisonPrefix');
  requireString(c.queues.poison, 'queues.poison');
  requireString(c.queues.onFailure, 'queues.onFailure');
  if (!c.queues.poison.endsWith('.fifo')) {
    throw new ContractError('queues.poison must end with .fifo (it is a FIFO queue)');
  }
  requireString(c.postgres.database, 'postgres.database');
  requireString(c.postgres.consumerRole, 'postgres.consumerRole');
  requirePositiveInt(c.defaults.windowSeconds, 'defaults.windowSeconds');
  requirePositiveInt(c.defaults.esmBatchSize, 'defaults.esmBatchSize');
  if (!Number.isFinite(c.defaults.esmBatchingWindowSeconds) || c.defaults.esmBatchingWindowSeconds < 0) {
    throw new ContractError('defaults.esmBatchingWindowSeconds must be a number >= 0');
  }
  for (const [key, name] of Object.entries(c.envVars)) {
    requireString(name, `envVars.${key}`);
  }
  return { ...c, topics: checkedTopics, schemas: Object.fromEntries(schemas) };
}

let checked: PipelineContracts | undefined;

/** The repository's contract (the generated `CONTRACTS`), checked once per process. */
export function pipelineContracts(): PipelineContracts {
  checked ??= checkContracts(CONTRACTS);
  return checked;
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
