import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { parseConfig } from '../lib/config';
import { pipelineContracts, REPO_ROOT } from '../lib/contracts';
import { buildPipeline, Pipeline } from '../lib/pipeline';

/** cdk.json context, so tests see the same defaults as `cdk synth`. */
export function cdkJsonContext(): Record<string, unknown> {
  const cdkJson = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8'));
  return cdkJson.context ?? {};
}

export const PRODUCER_ACCOUNT = '111111111111';
export const CONSUMER_ACCOUNT = '222222222222';
export const REGION = 'eu-west-1';
export const HANDSHAKE_ARN = `arn:aws:secretsmanager:${REGION}:${PRODUCER_ACCOUNT}:secret:HandshakeSecret-AbCdEf`;
/** Real AZ IDs of eu-west-1 (zone names differ per account; IDs do not). */
export const PRODUCER_ZONE_IDS = ['euw1-az1', 'euw1-az2', 'euw1-az3'];

export interface Synthesized {
  readonly app: App;
  readonly pipeline: Pipeline;
  readonly outdir: string;
}

/**
 * Builds the app the way cdk synth does (cdk.json context, bundling skipped) with a config
 * override, and synthesizes it once so cdk-nag's validation report is written.
 */
export function synthPipeline(override: Record<string, unknown> = {}, nag = true): Synthesized {
  const context = cdkJsonContext();
  const base = context.pipeline as Record<string, unknown>;
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdk-test-'));
  const app = new App({
    outdir,
    context: { ...context, 'aws:cdk:bundling-stacks': [] },
  });
  const config = parseConfig({ ...base, ...override }, pipelineContracts(), {});
  const pipeline = buildPipeline(app, { config, nag });
  return { app, pipeline, outdir };
}

/** Cross-account variant with both accounts and the handshake ARN configured. */
export function synthCrossAccount(nag = true): Synthesized {
  return synthPipeline(CROSS_ACCOUNT, nag);
}

export function templateOf(stack: import('aws-cdk-lib').Stack): Template {
  return Template.fromStack(stack);
}

const cache = new Map<string, Synthesized>();

/** One synthesized app per distinct override and test worker (synth with cdk-nag takes seconds). */
export function synthOnce(override: Record<string, unknown> = {}): Synthesized {
  const key = JSON.stringify(override);
  let s = cache.get(key);
  if (!s) {
    s = synthPipeline(override, true);
    s.app.synth();
    cache.set(key, s);
  }
  return s;
}

export const CROSS_ACCOUNT = {
  producer: { account: PRODUCER_ACCOUNT, region: REGION, availabilityZoneIds: PRODUCER_ZONE_IDS },
  consumer: { account: CONSUMER_ACCOUNT, region: REGION, handshakeSecretArn: HANDSHAKE_ARN },
};

type Json = Record<string, unknown>;

/** Every IAM policy statement in a template (inline role policies, policies, managed policies). */
export function iamStatements(template: Template): { resource: string; statement: Json }[] {
  const out: { resource: string; statement: Json }[] = [];
  const resources = template.toJSON().Resources as Record<string, { Type: string; Properties?: Json }>;
  for (const [id, r] of Object.entries(resources)) {
    const docs: unknown[] = [];
    if (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') {
      docs.push(r.Properties?.PolicyDocument);
    }
    if (r.Type === 'AWS::IAM::Role') {
      for (const p of (r.Properties?.Policies as Json[] | undefined) ?? []) {
        docs.push(p.PolicyDocument);
      }
    }
    for (const doc of docs) {
      for (const statement of ((doc as Json)?.Statement as Json[] | undefined) ?? []) {
        out.push({ resource: id, statement });
      }
    }
  }
  return out;
}

export function asArray<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) {
    return [];
  }
  return Array.isArray(value) ? value : [value];
}

/** Resources of one type, as [logicalId, properties]. */
export function resourcesOf(template: Template, type: string): [string, Json][] {
  const resources = template.toJSON().Resources as Record<string, { Type: string; Properties?: Json }>;
  return Object.entries(resources)
    .filter(([, r]) => r.Type === type)
    .map(([id, r]) => [id, r.Properties ?? {}]);
}

/** The logical id of the one resource of `type` whose id starts with `prefix`. */
export function logicalIdOf(template: Template, type: string, prefix: string): string {
  const ids = resourcesOf(template, type).map(([id]) => id).filter((id) => id.startsWith(prefix));
  if (ids.length !== 1) {
    throw new Error(`expected one ${type} starting with ${prefix}, found ${ids.join(', ') || 'none'}`);
  }
  return ids[0];
}

/** JSON text of a value, for "mentions" checks on intrinsic-heavy properties. */
export function text(value: unknown): string {
  return JSON.stringify(value);
}
