import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { CloudFormationStackArtifact } from 'aws-cdk-lib/cx-api';
import { ConfigError, mergeConfig, parseConfig } from '../../lib/config';
import { REGION_ZONES } from './aws-world';
import { pipelineContracts } from '../../lib/contracts';
import { buildPipeline } from '../../lib/pipeline';
import { cdkJsonContext } from '../helpers';
import { DeployError, DeployWorld, EvaluatedStack } from './template-evaluator';

type Json = Record<string, unknown>;

/** Account ids as the IAM user guide writes example accounts. */
export const PRODUCER_ACCOUNT = '111122223333';
export const CONSUMER_ACCOUNT = '444455556666';

export interface DeployVariant {
  readonly region: string;
  /** Producer and consumer in different accounts (the handshake ARN is copied between two synths). */
  readonly crossAccount: boolean;
  /** Merged over cdk.json's `pipeline` config, after the accounts and region. */
  readonly config?: Json;
}

export interface DeployedApp {
  readonly world: DeployWorld;
  readonly stacks: readonly EvaluatedStack[];
}

/** Synthesizes the app as `cdk synth` does (bundling skipped) and returns its templates in deploy order. */
export function synthesize(raw: Json): { name: string; template: Json; account?: string; region?: string }[] {
  const context = cdkJsonContext();
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdk-deploy-checks-'));
  // Path metadata (as the CDK CLI writes it) tells the IAM check which function is which.
  const app = new App({ outdir, context: { ...context, 'aws:cdk:bundling-stacks': [], 'aws:cdk:enable-path-metadata': true } });
  const config = parseConfig(mergeConfig(context.pipeline as Json, raw), pipelineContracts(), {});
  buildPipeline(app, { config, nag: false });
  const assembly = app.synth();
  const stacks = assembly.stacks;
  const ordered: CloudFormationStackArtifact[] = [];
  const visit = (s: CloudFormationStackArtifact) => {
    if (ordered.includes(s)) {
      return;
    }
    for (const d of s.dependencies) {
      const dep = stacks.find((x) => x.id === d.id);
      if (dep) {
        visit(dep);
      }
    }
    ordered.push(s);
  };
  stacks.forEach(visit);
  const known = (v: string) => (v.startsWith('unknown-') ? undefined : v);
  const out = ordered.map((s) => ({
    name: s.stackName, template: s.template as Json, account: known(s.environment.account), region: known(s.environment.region),
  }));
  fs.rmSync(outdir, { recursive: true, force: true });
  return out;
}

/**
 * Synthesizes; when the config validation asks for zones by AZ ID (as it must across accounts,
 * where zone names differ), answers the way its message tells a user to: the region's first zone
 * IDs for the producer, the consumer's defaulting to them.
 */
function synthesizeAsConfigAsks(raw: Json, region: string): ReturnType<typeof synthesize> {
  try {
    return synthesize(raw);
  } catch (error) {
    const asksForIds = error instanceof ConfigError && error.problems.some((p) => /availabilityZoneIds/.test(p) && !/unknown key/.test(p));
    if (!asksForIds) {
      throw error;
    }
    const ids = REGION_ZONES[region]?.ids.slice(0, 3);
    return synthesize(mergeConfig(raw, { producer: { availabilityZoneIds: ids } }));
  }
}

export interface StackTemplate {
  readonly name: string;
  readonly template: Json;
  readonly account: string;
  readonly region: string;
}

/**
 * The templates a user deploys, in order, the way docs/deploy.md describes: in one account every
 * stack of one synth; across accounts the producer side first, then its `HandshakeSecretArn`
 * output (read from a deployment of the producer side) copied into `consumer.handshakeSecretArn`
 * and the app synthesized again for the consumer stack.
 */
export function synthesizeVariant(variant: DeployVariant): StackTemplate[] {
  const consumerAccount = variant.crossAccount ? CONSUMER_ACCOUNT : PRODUCER_ACCOUNT;
  const base: Json = mergeConfig({
    producer: { account: PRODUCER_ACCOUNT, region: variant.region },
    consumer: { account: consumerAccount, region: variant.region },
  }, variant.config ?? {});
  const located = (templates: ReturnType<typeof synthesize>): StackTemplate[] => templates.map((t) => ({
    name: t.name, template: t.template, account: t.account ?? PRODUCER_ACCOUNT, region: t.region ?? variant.region,
  }));
  const first = located(synthesizeAsConfigAsks(base, variant.region));
  if (!variant.crossAccount) {
    return first;
  }
  let handshakeArn: string;
  try {
    handshakeArn = handshakeOutput(deployTemplates(first).stacks);
  } catch (error) {
    if (error instanceof DeployError) {
      return first; // the producer side does not deploy; deploying these templates reports why
    }
    throw error;
  }
  const second = located(synthesizeAsConfigAsks(mergeConfig(base, { consumer: { handshakeSecretArn: handshakeArn } }), variant.region));
  return [...first, ...second.filter((t) => !first.some((f) => f.name === t.name))];
}

/** Deploys templates in order into a fresh world; throws the first DeployError, as a rollback would stop. */
export function deployTemplates(templates: readonly StackTemplate[]): DeployedApp {
  const world = new DeployWorld();
  const stacks = templates.map((t) => world.deploy(t.template, { stackName: t.name, account: t.account, region: t.region }));
  return { world, stacks };
}

/** The producer side's output that docs/deploy.md tells the user to copy: HandshakeSecretArn. */
function handshakeOutput(stacks: readonly EvaluatedStack[]): string {
  const found = stacks.flatMap((s) => Object.entries(s.outputs)
    .filter(([name, value]) => /handshake/i.test(name) && typeof value === 'string' && value.includes(':secretsmanager:'))
    .map(([, value]) => String(value)));
  if (found.length !== 1) {
    throw new Error(`expected one HandshakeSecretArn output on the producer side, found ${found.length}`);
  }
  return found[0];
}
