import { CONTRACTS } from '../lib/generated/contracts';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  cidrRange,
  cidrsOverlap,
  ConfigError,
  FALLBACK_REGION,
  mergeConfig,
  parseConfig,
  rawConfigFromContext,
} from '../lib/config';
import { checkContracts, ContractError, pipelineContracts, PipelineContracts } from '../lib/contracts';
import { KAFKA_PROVISIONED_MODE, MSK_KAFKA_VERSIONS } from '../lib/aws-facts';
import { cdkJsonContext, CONSUMER_ACCOUNT, HANDSHAKE_ARN, PRODUCER_ACCOUNT, PRODUCER_ZONE_IDS, REGION } from './helpers';

const contracts = pipelineContracts();

function problemsOf(raw: unknown, cli = {}, c: PipelineContracts = contracts): string[] {
  try {
    parseConfig(raw, c, cli);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return [...(e as ConfigError).problems];
  }
  throw new Error('expected a ConfigError');
}

describe('defaults', () => {
  test('cdk.json config parses and takes ESM, window and topic defaults from the contract', () => {
    const config = parseConfig(cdkJsonContext().pipeline, contracts, {});
    expect(config.windowSeconds).toBe(contracts.defaults.windowSeconds);
    expect(config.esmBatchSize).toBe(contracts.defaults.esmBatchSize);
    expect(config.esmBatchingWindowSeconds).toBe(contracts.defaults.esmBatchingWindowSeconds);
    expect(config.topics.map((t) => t.name)).toEqual([
      contracts.topics.sensorReadings.name,
      contracts.topics.storeEvents.name,
      contracts.topics.explicitEvents.name,
    ]);
    expect(config.topics[0].partitions).toBe(contracts.topics.sensorReadings.partitions);
    expect(config.topics[0].replicationFactor).toBe(contracts.topics.sensorReadings.replicationFactor);
    expect(config.lambdaArchitecture).toBe('x86_64');
    expect(config.topicDeletion).toBe('retain');
    expect(config.msk.clusterName).toBe(contracts.project);
  });

  test('one account by default: the consumer inherits the producer account and region', () => {
    const config = parseConfig({ producer: { account: PRODUCER_ACCOUNT, region: 'us-west-2' } }, contracts, {});
    expect(config.consumer.account).toBe(PRODUCER_ACCOUNT);
    expect(config.consumer.region).toBe('us-west-2');
    expect(config.crossAccount).toBe(false);
    expect(config.producer.availabilityZones).toEqual(['us-west-2a', 'us-west-2b', 'us-west-2c']);
    expect(config.consumer.availabilityZones).toEqual(['us-west-2a', 'us-west-2b']);
  });

  test('account and region fall back to the CLI environment, then to a fixed region for offline synth', () => {
    const fromCli = parseConfig({}, contracts, { account: PRODUCER_ACCOUNT, region: 'ap-southeast-2' });
    expect(fromCli.producer).toMatchObject({ account: PRODUCER_ACCOUNT, region: 'ap-southeast-2' });
    const offline = parseConfig({}, contracts, {});
    expect(offline.producer.account).toBeUndefined();
    expect(offline.producer.region).toBe(FALLBACK_REGION);
  });

  test('each topic carries its own contract config to topic-admin', () => {
    const config = parseConfig({}, contracts, {});
    for (const topic of config.topics) {
      const key = topic.key as keyof typeof contracts.topics;
      expect(topic.config).toEqual(contracts.topics[key].config);
    }
  });

  test('overrides for sizes, schedule and architecture are applied', () => {
    const config = parseConfig({
      msk: { brokerCount: 6, instanceType: 'kafka.t3.small', kafkaVersion: '3.8.x' },
      topics: { sensorReadings: { partitions: 12 } },
      windowSeconds: 300,
      esmBatchSize: 100,
      esmBatchingWindowSeconds: 5,
      producerSchedule: { expression: 'cron(0/10 * * * ? *)', enabled: false, requests: [{ action: 'simulate_sensors' }] },
      lambdaArchitecture: 'arm64',
    }, contracts, {});
    expect(config.msk).toMatchObject({ brokerCount: 6, instanceType: 'kafka.t3.small', kafkaVersion: '3.8.x' });
    expect(config.topics.find((t) => t.key === 'sensorReadings')?.partitions).toBe(12);
    expect(config.windowSeconds).toBe(300);
    expect(config.producerSchedule).toEqual({
      expression: 'cron(0/10 * * * ? *)', enabled: false, requests: [{ action: 'simulate_sensors' }],
    });
    expect(config.lambdaArchitecture).toBe('arm64');
  });
});

describe('validation errors', () => {
  test('overlapping VPC CIDRs are rejected', () => {
    expect(problemsOf({ producerVpcCidr: '10.0.0.0/16', consumerVpcCidr: '10.0.128.0/20' })).toEqual([
      'producerVpcCidr 10.0.0.0/16 overlaps consumerVpcCidr 10.0.128.0/20',
    ]);
  });

  test('malformed CIDRs, host bits and unusable prefixes are rejected', () => {
    expect(problemsOf({ producerVpcCidr: '10.0.0.0/33' })[0]).toMatch(/producerVpcCidr must be an IPv4 CIDR/);
    expect(problemsOf({ producerVpcCidr: '10.0.0.1/16' })[0]).toMatch(/no host bits set/);
    expect(problemsOf({ consumerVpcCidr: '10.30.0.0/25' })[0]).toMatch(/prefix must be \/16 to \/22/);
  });

  test('account ids and regions are checked', () => {
    expect(problemsOf({ producer: { account: '1234' } })[0]).toMatch(/producer.account must be a 12-digit/);
    expect(problemsOf({ producer: { region: 'Europe' } })).toContainEqual(expect.stringMatching(/producer.region must look like eu-west-1/));
    expect(problemsOf({ producer: { region: 'eu-west-1' }, consumer: { region: 'eu-central-1' } }))
      .toContainEqual(expect.stringMatching(/consumer.region \(eu-central-1\) must equal producer.region/));
  });

  test('broker count must fit the zones and the replication factor', () => {
    expect(problemsOf({ msk: { brokerCount: 4 } })).toContainEqual(
      'msk.brokerCount (4) must be a multiple of the number of producer availability zones (3)',
    );
    const problems = problemsOf({ msk: { brokerCount: 2 }, producer: { availabilityZones: ['eu-west-1a', 'eu-west-1b'] } });
    expect(problems).toContainEqual('topics.sensorReadings.replicationFactor (3) exceeds msk.brokerCount (2)');
  });

  test('instance type, Kafka version and architecture are checked', () => {
    const problems = problemsOf({ msk: { instanceType: 'm5.large', kafkaVersion: 'latest' }, lambdaArchitecture: 'arm' });
    expect(problems).toEqual([
      'msk.instanceType must look like kafka.m7g.large, got "m5.large"',
      expect.stringMatching(/^msk.kafkaVersion "latest" is not a version MSK supports: set msk.kafkaVersion to 3.8.x \(recommended\)/),
      'lambdaArchitecture must be one of x86_64, arm64, got "arm"',
    ]);
  });

  test('topic overrides must name contract topics and stay in range', () => {
    expect(problemsOf({ topics: { orders: { partitions: 2 } } })[0]).toMatch(/topics.orders is not a topic in contracts\/pipeline.json/);
    expect(problemsOf({ topics: { storeEvents: { partitions: 0 } } })[0]).toMatch(/topics.storeEvents.partitions must be an integer from 1/);
    expect(problemsOf({ topics: { storeEvents: { replicationFactor: 1 } } })[0])
      .toMatch(/min.insync.replicas \(2\) exceeds its replication factor \(1\)/);
  });

  test('ESM batch settings, window and schedule are range checked', () => {
    const problems = problemsOf({
      esmBatchSize: 0, esmBatchingWindowSeconds: 301, windowSeconds: 1.5, producerSchedule: 'every 5 minutes',
    });
    expect(problems).toHaveLength(4);
    expect(problems.join('\n')).toMatch(/esmBatchSize must be an integer from 1 to 10000/);
    expect(problems.join('\n')).toMatch(/esmBatchingWindowSeconds must be an integer from 0 to 300/);
    expect(problems.join('\n')).toMatch(/windowSeconds must be an integer/);
    expect(problems.join('\n')).toMatch(/producerSchedule.expression must be rate/);
  });

  test('unknown keys are reported instead of silently ignored', () => {
    expect(problemsOf({ brokerCount: 3 })[0]).toMatch(/unknown key pipeline.brokerCount/);
    expect(problemsOf({ rds: { proxy: false } })).toEqual(['unknown key rds.proxy (known: instanceType, engineVersion, multiAz)']);
    expect(problemsOf({ msk: { brokers: 3 } })[0]).toMatch(/unknown key msk.brokers/);
    expect(problemsOf({ topics: { storeEvents: { partition: 3 } } })[0]).toMatch(/unknown key topics.storeEvents.partition/);
  });

  test('PostgreSQL version must be a full minor version', () => {
    expect(problemsOf({ rds: { engineVersion: '16' } })[0]).toMatch(/rds.engineVersion must be a PostgreSQL major.minor version/);
    expect(parseConfig({ rds: { engineVersion: '17.5' } }, contracts, {}).rds.engineVersion).toBe('17.5');
  });

  test('every problem is reported at once', () => {
    const problems = problemsOf({ producerVpcCidr: '10.0.0.0/16', consumerVpcCidr: '10.0.0.0/16', logLevel: 'loud', retainData: 'yes' });
    expect(problems).toHaveLength(3);
    expect(() => parseConfig({ logLevel: 'loud' }, contracts, {})).toThrow(/Invalid pipeline configuration:\n {2}- logLevel/);
  });

  test('cross-account handshake ARN is validated against the producer account and region', () => {
    const ok = parseConfig({
      producer: { account: PRODUCER_ACCOUNT, region: REGION, availabilityZoneIds: PRODUCER_ZONE_IDS },
      consumer: { account: CONSUMER_ACCOUNT, handshakeSecretArn: HANDSHAKE_ARN },
    }, contracts, {});
    expect(ok.crossAccount).toBe(true);
    expect(ok.consumer.handshakeSecretArn).toBe(HANDSHAKE_ARN);

    expect(problemsOf({
      producer: { account: PRODUCER_ACCOUNT, region: REGION, availabilityZoneIds: PRODUCER_ZONE_IDS },
      consumer: { account: CONSUMER_ACCOUNT, handshakeSecretArn: HANDSHAKE_ARN.replace(PRODUCER_ACCOUNT, '333333333333') },
    })).toEqual([`consumer.handshakeSecretArn is in account 333333333333, not the producer account ${PRODUCER_ACCOUNT}`]);
    expect(problemsOf({
      producer: { account: PRODUCER_ACCOUNT, region: REGION, availabilityZoneIds: PRODUCER_ZONE_IDS },
      consumer: { account: CONSUMER_ACCOUNT, handshakeSecretArn: 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:handshake' },
    })[0]).toMatch(/complete secret ARN/);
    expect(problemsOf({ consumer: { handshakeSecretArn: HANDSHAKE_ARN } })[0]).toMatch(/only used across accounts/);
  });

  test('topics may differ in config, but a malformed config key or value fails at synth, not at deploy', () => {
    const storeEvents = contracts.topics.storeEvents;
    const withStoreConfig = (config: Record<string, string>) => checkContracts({
      ...CONTRACTS, topics: { ...CONTRACTS.topics, storeEvents: { ...storeEvents, config: { ...storeEvents.config, ...config } } },
    });
    const changed = withStoreConfig({ 'retention.ms': '1000' });
    expect(parseConfig({}, changed, {}).topics.find((t) => t.key === 'storeEvents')?.config['retention.ms']).toBe('1000');
    const problems = problemsOf({}, {}, withStoreConfig({ 'retention.ms': '1000', 'Retention MS': '1', 'segment.ms': '' }));
    expect(problems).toEqual([
      'topic store-events: config key "Retention MS" must be lower-case words separated by dots, like retention.ms',
      'topic store-events: config segment.ms has an empty value',
    ]);
  });
});

describe('config sources', () => {
  const context = (values: Record<string, unknown>) => ({ tryGetContext: (k: string) => values[k] });

  test('pipeline context may be an object or JSON text', () => {
    expect(rawConfigFromContext(context({ pipeline: { windowSeconds: 30 } }))).toEqual({ windowSeconds: 30 });
    expect(rawConfigFromContext(context({ pipeline: '{"windowSeconds": 30}' }))).toEqual({ windowSeconds: 30 });
    expect(() => rawConfigFromContext(context({ pipeline: '{nope' }))).toThrow(/context "pipeline" is not valid JSON/);
  });

  test('a config file is merged over the context, key by key', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pipeline-config-'));
    fs.writeFileSync(path.join(dir, 'prod.json'), JSON.stringify({ msk: { brokerCount: 6 }, alarmEmail: 'ops@example.com' }));
    const raw = rawConfigFromContext(
      context({ pipeline: { msk: { brokerCount: 3, instanceType: 'kafka.m7g.large' } }, pipelineConfigFile: 'prod.json' }),
      dir,
    );
    expect(raw).toEqual({ msk: { brokerCount: 6, instanceType: 'kafka.m7g.large' }, alarmEmail: 'ops@example.com' });
    expect(() => rawConfigFromContext(context({ pipelineConfigFile: 'missing.json' }), dir)).toThrow(/cannot read pipelineConfigFile/);
  });

  test('mergeConfig replaces arrays and scalars, merges objects', () => {
    expect(mergeConfig({ a: { b: 1, c: [1, 2] }, d: 1 }, { a: { c: [3] }, d: 2 })).toEqual({ a: { b: 1, c: [3] }, d: 2 });
  });
});

describe('CIDR helpers', () => {
  test('ranges and overlap', () => {
    expect(cidrRange('10.0.0.0/24')).toEqual([167772160, 167772415]);
    expect(cidrRange('300.0.0.0/8')).toBeUndefined();
    expect(cidrsOverlap('10.10.0.0/16', '10.20.0.0/16')).toBe(false);
    expect(cidrsOverlap('10.0.0.0/8', '10.20.0.0/16')).toBe(true);
    expect(cidrsOverlap('192.168.0.0/22', '192.168.3.0/24')).toBe(true);
  });
});

describe('Kafka version', () => {
  const onDate = (version: string | undefined, today: string) => problemsOf({ msk: { kafkaVersion: version } }, { today });

  test('the default is MSK\'s recommended version, also in cdk.json', () => {
    expect(parseConfig({}, contracts, {}).msk.kafkaVersion).toBe('3.8.x');
    expect(parseConfig(cdkJsonContext().pipeline, contracts, {}).msk.kafkaVersion).toBe('3.8.x');
    expect(MSK_KAFKA_VERSIONS.versions.filter((v) => v.recommended).map((v) => v.version)).toEqual(['3.8.x']);
  });

  test('3.6.0 is refused once its end of support (2026-06-01) has passed, with what to set instead', () => {
    expect(parseConfig({ msk: { kafkaVersion: '3.6.0' } }, contracts, { today: '2026-05-31' }).msk.kafkaVersion).toBe('3.6.0');
    expect(onDate('3.6.0', '2026-06-01')).toEqual([
      expect.stringMatching(/^msk.kafkaVersion 3.6.0 reached MSK end of support on 2026-06-01: set msk.kafkaVersion to 3.8.x \(recommended\) or one of 3.7.x, /),
    ]);
    expect(onDate('3.6.0', '2026-12-01')[0]).not.toMatch(/one of 3.6.0/);
  });

  test('versions MSK no longer lists, and made-up ones, are refused', () => {
    expect(onDate('3.5.1', '2026-12-01')[0]).toMatch(/msk.kafkaVersion "3.5.1" is not a version MSK supports/);
    expect(onDate('3.8.1', '2026-12-01')[0]).toMatch(/is not a version MSK supports/);
    for (const version of ['3.7.x', '3.8.x.kraft', '3.9.x', '4.0.x.kraft', '4.1.x.kraft']) {
      expect(parseConfig({ msk: { kafkaVersion: version } }, contracts, { today: '2026-12-01' }).msk.kafkaVersion).toBe(version);
    }
  });
});

describe('zones by AZ ID', () => {
  const twoAccounts = (producer: Record<string, unknown>, consumer: Record<string, unknown> = {}) => ({
    producer: { account: PRODUCER_ACCOUNT, region: 'us-east-1', ...producer },
    consumer: { account: CONSUMER_ACCOUNT, ...consumer },
  });

  test('across accounts zone names are refused with what to set', () => {
    expect(problemsOf(twoAccounts({}))).toEqual([
      expect.stringMatching(/^producer and consumer are different accounts: set producer.availabilityZoneIds .* such as use1-az1, not availabilityZones/),
    ]);
    expect(problemsOf(twoAccounts({ availabilityZones: ['us-east-1a', 'us-east-1b', 'us-east-1c'] }))[0])
      .toMatch(/set producer.availabilityZoneIds/);
  });

  test('a region with more than three zones: IDs on both sides, the consumer defaults to the first two producer zones', () => {
    const config = parseConfig(twoAccounts({ availabilityZoneIds: ['use1-az1', 'use1-az2', 'use1-az4'] }), contracts, {});
    expect(config.producer).toMatchObject({ availabilityZones: ['use1-az1', 'use1-az2', 'use1-az4'], zoneKind: 'id' });
    expect(config.consumer).toMatchObject({ availabilityZones: ['use1-az1', 'use1-az2'], zoneKind: 'id' });
    const chosen = parseConfig(twoAccounts(
      { availabilityZoneIds: ['use1-az1', 'use1-az2', 'use1-az4'] },
      { availabilityZoneIds: ['use1-az4', 'use1-az2'] },
    ), contracts, {});
    expect(chosen.consumer.availabilityZones).toEqual(['use1-az4', 'use1-az2']);
  });

  test('consumer zones outside the producer zones, mixed kinds and foreign IDs are refused', () => {
    expect(problemsOf(twoAccounts(
      { availabilityZoneIds: ['use1-az1', 'use1-az2', 'use1-az4'] },
      { availabilityZoneIds: ['use1-az1', 'use1-az6'] },
    ))).toEqual([expect.stringMatching(/^consumer zones use1-az6 are not producer zones \(use1-az1, use1-az2, use1-az4\)/)]);
    expect(problemsOf({ producer: { availabilityZoneIds: ['euw1-az1', 'euw1-az2', 'euw1-az3'] }, consumer: { availabilityZones: ['eu-west-1a', 'eu-west-1b'] } }))
      .toEqual(['producer and consumer zones must both be AZ IDs (availabilityZoneIds) or both AZ names (availabilityZones)']);
    expect(problemsOf(twoAccounts({ availabilityZoneIds: ['euw1-az1', 'use1-az2', 'use1-az4'] })))
      .toContainEqual('producer.availabilityZoneIds: euw1-az1 is not in region us-east-1 (its zone IDs start with use1-az)');
    expect(problemsOf(twoAccounts({ availabilityZoneIds: ['use1-az1', 'use1-az2'], availabilityZones: ['us-east-1a', 'us-east-1b'] }), {})[0])
      .toMatch(/producer: set availabilityZoneIds or availabilityZones, not both/);
  });

  test('a region without zones a, b and c for every account asks for zones instead of guessing letters', () => {
    const oneAccount = (region: string, side: Record<string, unknown> = {}) => ({
      producer: { account: PRODUCER_ACCOUNT, region, ...side },
      consumer: { account: PRODUCER_ACCOUNT, region },
    });
    expect(problemsOf(oneAccount('cn-north-1'))).toEqual([
      expect.stringMatching(/^producer: region cn-north-1 has no default zones \(its zones are cn-north-1a, cn-north-1b and cn-north-1d.*set producer.availabilityZoneIds/),
      expect.stringMatching(/^consumer: region cn-north-1 has no default zones/),
    ]);
    expect(problemsOf(oneAccount('ap-northeast-1'))[0]).toMatch(/set producer.availabilityZoneIds/);
    // Zones given by ID answer it on both sides (the consumer defaults to the producer's first two).
    expect(parseConfig(oneAccount('cn-north-1', { availabilityZoneIds: ['cnn1-az1', 'cnn1-az2', 'cnn1-az4'] }), contracts, {}).consumer)
      .toMatchObject({ availabilityZones: ['cnn1-az1', 'cnn1-az2'], zoneKind: 'id' });
    // Regions whose accounts all have a, b and c keep the defaults.
    expect(parseConfig(oneAccount('eu-west-1'), contracts, {}).producer.availabilityZones)
      .toEqual(['eu-west-1a', 'eu-west-1b', 'eu-west-1c']);
  });

  test('China regions: cnn1 IDs in cn-north-1', () => {
    const config = parseConfig({
      producer: { account: PRODUCER_ACCOUNT, region: 'cn-north-1', availabilityZoneIds: ['cnn1-az1', 'cnn1-az2'] },
      consumer: { account: CONSUMER_ACCOUNT },
      msk: { brokerCount: 2 },
      topics: { sensorReadings: { replicationFactor: 2 }, storeEvents: { replicationFactor: 2 }, explicitEvents: { replicationFactor: 2 } },
    }, contracts, {});
    expect(config.consumer.availabilityZones).toEqual(['cnn1-az1', 'cnn1-az2']);
  });

  test('the broker count is a multiple of the producer zone IDs', () => {
    expect(problemsOf({ producer: { availabilityZoneIds: ['euw1-az1', 'euw1-az2', 'euw1-az3'] }, msk: { brokerCount: 4 } }))
      .toContainEqual('msk.brokerCount (4) must be a multiple of the number of producer availability zones (3)');
  });
});

describe('broker count and the dynamic reference limit', () => {
  test('more brokers than consumer-stack can reference are refused with the limit named', () => {
    expect(parseConfig({ msk: { brokerCount: 21 } }, contracts, {}).msk.brokerCount).toBe(21);
    expect(problemsOf({ msk: { brokerCount: 24 } })).toEqual([
      'msk.brokerCount (24) exceeds 23: consumer-stack would hold 61 dynamic references to the handshake, '
      + 'and CloudFormation resolves at most 60 per template',
    ]);
  });
});

describe('broker storage auto scaling', () => {
  test('the maximum defaults to ten times the initial size, capped at 16 TiB, and cannot be below it', () => {
    expect(parseConfig({ msk: { volumeSizeGiB: 100 } }, contracts, {}).msk.maxVolumeSizeGiB).toBe(1000);
    expect(parseConfig({ msk: { volumeSizeGiB: 4000 } }, contracts, {}).msk.maxVolumeSizeGiB).toBe(16384);
    expect(problemsOf({ msk: { volumeSizeGiB: 500, maxVolumeSizeGiB: 400 } })).toEqual([
      'msk.maxVolumeSizeGiB (400) must be at least msk.volumeSizeGiB (500): storage auto scaling only grows',
    ]);
    expect(problemsOf({ msk: { maxVolumeSizeGiB: 20000 } })[0]).toMatch(/msk.maxVolumeSizeGiB must be an integer from 1 to 16384/);
  });
});

describe('event source mapping mode', () => {
  const limits = KAFKA_PROVISIONED_MODE;

  test('on-demand by default, with no provisioned settings', () => {
    expect(parseConfig({}, contracts, {}).esm).toEqual({ mode: 'on-demand' });
  });

  test('provisioned mode takes AWS\'s defaults, with partial-batch responses on', () => {
    expect(parseConfig({ esmMode: 'provisioned' }, contracts, {}).esm).toEqual({
      mode: 'provisioned',
      minimumPollers: 1,
      maximumPollers: 200,
      maximumRetryAttempts: -1,
      maximumRecordAgeSeconds: -1,
      bisectBatchOnFunctionError: false,
      reportBatchItemFailures: true,
    });
  });

  test('every setting is accepted at its documented bounds and -1 means infinite', () => {
    for (const [minimumPollers, maximumPollers, maximumRetryAttempts, maximumRecordAgeSeconds] of [
      [limits.minimumPollers.min, limits.maximumPollers.min, limits.maximumRetryAttempts.min, limits.maximumRecordAgeSeconds.min],
      [limits.minimumPollers.max, limits.maximumPollers.max, limits.maximumRetryAttempts.max, limits.maximumRecordAgeSeconds.max],
      [1, 2, -1, -1],
    ]) {
      const esm = parseConfig({
        esmMode: 'provisioned',
        esmProvisioned: { minimumPollers, maximumPollers, maximumRetryAttempts, maximumRecordAgeSeconds, bisectBatchOnFunctionError: true },
      }, contracts, {}).esm;
      expect(esm).toMatchObject({ minimumPollers, maximumPollers, maximumRetryAttempts, maximumRecordAgeSeconds, bisectBatchOnFunctionError: true });
    }
  });

  test('values across the documented bounds are refused with the range', () => {
    const problems = (settings: Record<string, unknown>) => problemsOf({ esmMode: 'provisioned', esmProvisioned: settings });
    expect(problems({ minimumPollers: 0 })).toEqual(['esmProvisioned.minimumPollers must be an integer from 1 to 200, got 0']);
    expect(problems({ minimumPollers: 201, maximumPollers: 300 })[0]).toMatch(/minimumPollers must be an integer from 1 to 200, got 201/);
    expect(problems({ maximumPollers: 2001 })).toEqual(['esmProvisioned.maximumPollers must be an integer from 1 to 2000, got 2001']);
    expect(problems({ maximumRetryAttempts: 10001 })).toEqual([
      'esmProvisioned.maximumRetryAttempts must be -1 (infinite) or an integer from 0 to 10000, got 10001',
    ]);
    expect(problems({ maximumRetryAttempts: -2 })[0]).toMatch(/maximumRetryAttempts must be -1 \(infinite\)/);
    // CloudFormation refuses 0-59 although they lie inside the field's absolute range.
    expect(problems({ maximumRecordAgeSeconds: 59 })).toEqual([
      'esmProvisioned.maximumRecordAgeSeconds must be -1 (infinite) or an integer from 60 to 604800, got 59',
    ]);
    expect(problems({ maximumRecordAgeSeconds: 604801 })[0]).toMatch(/from 60 to 604800, got 604801/);
    expect(problems({ bisectBatchOnFunctionError: 'yes' })[0]).toMatch(/bisectBatchOnFunctionError must be true or false/);
    expect(problems({ parallelizationFactor: 2 })[0]).toMatch(/unknown key esmProvisioned.parallelizationFactor/);
  });

  test('more minimum than maximum pollers is refused with what to set', () => {
    expect(problemsOf({ esmMode: 'provisioned', esmProvisioned: { minimumPollers: 5, maximumPollers: 4 } })).toEqual([
      'esmProvisioned.minimumPollers (5) exceeds esmProvisioned.maximumPollers (4): set maximumPollers to at least minimumPollers',
    ]);
  });

  test('error-handling controls in on-demand mode are refused, as AWS refuses them, naming the mode to set', () => {
    expect(problemsOf({ esmProvisioned: { maximumRetryAttempts: 3, reportBatchItemFailures: true } })).toEqual([
      'esmProvisioned.maximumRetryAttempts, esmProvisioned.reportBatchItemFailures only apply in provisioned mode (Lambda '
      + 'refuses them for an on-demand Kafka mapping): set esmMode to "provisioned", or remove esmProvisioned',
    ]);
    expect(problemsOf({ esmMode: 'on-demand', esmProvisioned: { minimumPollers: 1 } })[0]).toMatch(/set esmMode to "provisioned"/);
    expect(problemsOf({ esmMode: 'provisioned-mode' })[0]).toMatch(/esmMode must be one of on-demand, provisioned/);
  });
});

describe('generated bindings (cdk/lib/generated, from functions/bindings)', () => {
  test('the generated contract constant is contracts/pipeline.json, and the app loads exactly it', () => {
    const file = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'contracts', 'pipeline.json'), 'utf8'));
    expect(JSON.parse(JSON.stringify(CONTRACTS))).toEqual(file);
    expect(JSON.parse(JSON.stringify(pipelineContracts()))).toEqual(file);
  });
});

describe('contract checks tsc cannot make (checkContracts)', () => {
  const sensor = contracts.topics.sensorReadings;
  const withTopic = (key: string, topic: typeof sensor) => ({ ...CONTRACTS, topics: { ...CONTRACTS.topics, [key]: topic } });
  const refusal = (c: typeof CONTRACTS): string => {
    try {
      checkContracts(c);
    } catch (e) {
      expect(e).toBeInstanceOf(ContractError);
      return (e as Error).message;
    }
    throw new Error('expected a ContractError');
  };

  test('the repository contract passes, and a fourth topic of an existing kind with names of its own does too', () => {
    expect(() => checkContracts(CONTRACTS)).not.toThrow();
    const fourth = { ...sensor, name: 'sensor-readings-eu', envVar: 'SENSOR_EU_TOPIC', consumerGroup: 'pipeline-sensor-readings-eu' };
    expect(Object.keys(checkContracts(withTopic('sensorReadingsEu', fourth)).topics)).toEqual([
      'sensorReadings', 'storeEvents', 'explicitEvents', 'sensorReadingsEu',
    ]);
  });

  test('empty names, counts that are not positive integers and a negative batching window are refused', () => {
    expect(refusal({ ...CONTRACTS, project: '' })).toBe('contracts/pipeline.json: project must be a non-empty string');
    expect(refusal(withTopic('sensorReadings', { ...sensor, envVar: '' }))).toMatch(/topics.sensorReadings.envVar must be a non-empty string/);
    expect(refusal(withTopic('sensorReadings', { ...sensor, partitions: 0 }))).toMatch(/topics.sensorReadings.partitions must be a positive integer/);
    expect(refusal(withTopic('sensorReadings', { ...sensor, replicationFactor: 2.5 }))).toMatch(/replicationFactor must be a positive integer/);
    expect(refusal({ ...CONTRACTS, defaults: { ...CONTRACTS.defaults, esmBatchingWindowSeconds: -1 } }))
      .toMatch(/defaults.esmBatchingWindowSeconds must be a number >= 0/);
    expect(refusal({ ...CONTRACTS, envVars: { ...CONTRACTS.envVars, pgTls: '' } })).toMatch(/envVars.pgTls must be a non-empty string/);
    expect(refusal({ ...CONTRACTS, tables: { ...CONTRACTS.tables, explicitEvents: { ...CONTRACTS.tables.explicitEvents, sortKey: '' } } }))
      .toMatch(/tables.explicitEvents.sortKey must be a non-empty string/);
  });

  test('no topics, a schema with no version and a poison queue that is not FIFO are refused', () => {
    expect(refusal({ ...CONTRACTS, topics: {} })).toMatch(/topics must have at least one topic/);
    expect(refusal({ ...CONTRACTS, schemas: { ...CONTRACTS.schemas, StoreEvent: { compatibility: 'BACKWARD', versions: [] } } }))
      .toMatch(/schemas.StoreEvent.versions must list at least one file/);
    expect(refusal({ ...CONTRACTS, queues: { ...CONTRACTS.queues, poison: 'pipeline-poison' } })).toMatch(/queues.poison must end with .fifo/);
  });

  test('two topics may not share a name, an env var or a consumer group', () => {
    const fourth = { ...sensor, name: 'sensor-readings-eu', envVar: 'SENSOR_EU_TOPIC', consumerGroup: 'pipeline-sensor-readings-eu' };
    expect(refusal(withTopic('sensorReadingsEu', { ...fourth, name: sensor.name })))
      .toMatch(/topics.sensorReadings and topics.sensorReadingsEu share the name sensor-readings/);
    expect(refusal(withTopic('sensorReadingsEu', { ...fourth, envVar: sensor.envVar }))).toMatch(/share the envVar SENSOR_TOPIC/);
    expect(refusal(withTopic('sensorReadingsEu', { ...fourth, consumerGroup: sensor.consumerGroup })))
      .toMatch(/share the consumerGroup pipeline-sensor-readings/);
  });
});
