import { App } from 'aws-cdk-lib';
import { parseConfig } from '../lib/config';
import { pipelineContracts } from '../lib/contracts';
import { buildPipeline, STACK_IDS } from '../lib/pipeline';
import { cdkJsonContext, CONSUMER_ACCOUNT, CROSS_ACCOUNT, PRODUCER_ACCOUNT, PRODUCER_ZONE_IDS, REGION } from './helpers';

function build(override: Record<string, unknown>, cli: { account?: string; region?: string } = {}) {
  const context = cdkJsonContext();
  const app = new App({ context: { ...context, 'aws:cdk:bundling-stacks': [] } });
  const config = parseConfig({ ...(context.pipeline as object), ...override }, pipelineContracts(), cli);
  const pipeline = buildPipeline(app, { config, nag: false });
  // Stack dependencies that come from references are only resolved during synthesis.
  const assembly = app.synth();
  return { app, pipeline, assembly };
}

describe('app layout', () => {
  test('stack names: producer side behind producer-stack, consumer side in consumer-stack', () => {
    const { app, pipeline } = build({});
    const names = app.node.children.map((c) => (c as { stackName?: string }).stackName).filter(Boolean);
    expect(names).toEqual([STACK_IDS.producerVpc, STACK_IDS.msk, STACK_IDS.endpointService, STACK_IDS.producer, STACK_IDS.consumer]);
    expect(pipeline.producer.stackName).toBe('producer-stack');
    expect(pipeline.consumer?.stackName).toBe('consumer-stack');
    // `cdk deploy producer-stack` pulls in every producer-side stack ...
    const producerDeps = pipeline.producer.dependencies.map((s) => s.stackName).sort();
    expect(producerDeps).toEqual(['producer-endpoint-service', 'producer-msk', 'producer-vpc']);
    // ... and in one account `cdk deploy consumer-stack` deploys the producer side first.
    expect(pipeline.consumer?.dependencies.map((s) => s.stackName)).toContain('producer-stack');
  });

  test('stacks land in the configured accounts and region', () => {
    const { pipeline } = build({
      producer: { account: PRODUCER_ACCOUNT, region: REGION, availabilityZoneIds: PRODUCER_ZONE_IDS },
      consumer: { account: CONSUMER_ACCOUNT, handshakeSecretArn: `arn:aws:secretsmanager:${REGION}:${PRODUCER_ACCOUNT}:secret:h-AbCdEf` },
    });
    expect(pipeline.producer.account).toBe(PRODUCER_ACCOUNT);
    expect(pipeline.msk.account).toBe(PRODUCER_ACCOUNT);
    expect(pipeline.consumer?.account).toBe(CONSUMER_ACCOUNT);
    expect(pipeline.consumer?.region).toBe(REGION);
    // Across accounts the consumer does not reference producer stacks (it has the handshake ARN).
    expect(pipeline.consumer?.dependencies).toEqual([]);
  });

  test('across accounts, consumer-stack waits for the handshake ARN and says so', () => {
    const printed = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    const { app, pipeline } = build({
      producer: { account: PRODUCER_ACCOUNT, region: REGION, availabilityZoneIds: PRODUCER_ZONE_IDS },
      consumer: { account: CONSUMER_ACCOUNT },
    });
    expect(pipeline.consumer).toBeUndefined();
    expect(app.node.tryFindChild(STACK_IDS.consumer)).toBeUndefined();
    const warnings = app.node.metadata.filter((m) => m.type === 'aws:cdk:warning').map((m) => String(m.data));
    expect(warnings.some((w) => w.includes('pipeline.consumer.handshakeSecretArn is not set'))).toBe(true);
    // The CLI prints the same warning with the synth report.
    expect(printed.mock.calls.flat().join('\n')).toContain('consumer-stack is not synthesized');
    printed.mockRestore();
  });

  test.each([
    ['one account named in the config', { producer: { account: PRODUCER_ACCOUNT, region: REGION } }],
    ['two accounts', CROSS_ACCOUNT],
  ])('synth looks nothing up with %s (no missing context, so the CLI needs no credentials)', (_name, override) => {
    const { assembly } = build(override);
    expect(assembly.manifest.missing ?? []).toEqual([]);
  });

  test('offline synth without credentials: environment-agnostic account, fallback region', () => {
    const { pipeline } = build({});
    expect(pipeline.config.producer.account).toBeUndefined();
    expect(pipeline.producer.region).toBe('eu-west-1');
  });
});
