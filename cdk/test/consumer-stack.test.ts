import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { parseConfig } from '../lib/config';
import { checkContracts, pipelineContracts } from '../lib/contracts';
import { buildPipeline } from '../lib/pipeline';
import { CFN_MAX_DYNAMIC_REFERENCES } from '../lib/aws-facts';
import { SCHEMA_SOURCE, schemaHash } from '../lib/constructs/database-schema';
import {
  consumerDynamicReferenceCount, ESM_BOOTSTRAP_BROKERS, HANDSHAKE_KEYS, maxBrokersWithinDynamicReferenceLimit,
} from '../lib/constructs/handshake';
import {
  asArray, cdkJsonContext, CROSS_ACCOUNT, HANDSHAKE_ARN, iamStatements, logicalIdOf, PRODUCER_ACCOUNT, resourcesOf, synthOnce, synthPipeline, text,
} from './helpers';

describe('consumer-stack (cross-account)', () => {
  const { pipeline } = synthOnce(CROSS_ACCOUNT);
  const consumer = pipeline.consumer;
  if (!consumer) {
    throw new Error('consumer-stack must exist when handshakeSecretArn is configured');
  }
  const template = Template.fromStack(consumer);
  const { contracts, config } = pipeline;
  const env = contracts.envVars;
  const handshakeRef = (key: string) => `{{resolve:secretsmanager:${HANDSHAKE_ARN}:SecretString:${key}::}}`;

  test('the handshake ARN is the only producer input: every broker value is a dynamic reference to it', () => {
    const json = text(template.toJSON());
    expect(json).not.toContain('producer-endpoint-service');
    const endpoints = resourcesOf(template, 'AWS::EC2::VPCEndpoint').filter(([, p]) => p.VpcEndpointType === 'Interface' && text(p.ServiceName).includes('resolve'));
    expect(endpoints).toHaveLength(config.msk.brokerCount);
    for (let n = 1; n <= config.msk.brokerCount; n++) {
      template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
        ServiceName: handshakeRef(HANDSHAKE_KEYS.brokerService(n)),
        VpcEndpointType: 'Interface',
        PrivateDnsEnabled: false,
      });
    }
  });

  test('a private hosted zone for the cluster domain (not kafka.<region>.amazonaws.com) maps each broker to its endpoint', () => {
    template.hasResourceProperties('AWS::Route53::HostedZone', {
      Name: `${handshakeRef(HANDSHAKE_KEYS.clusterDomain)}.`,
      VPCs: [Match.objectLike({ VPCRegion: config.consumer.region })],
    });
    const [[, zone]] = resourcesOf(template, 'AWS::Route53::HostedZone');
    expect(text(zone.Name)).not.toContain(`kafka.${config.consumer.region}.amazonaws.com`);
    const records = resourcesOf(template, 'AWS::Route53::RecordSet');
    expect(records).toHaveLength(config.msk.brokerCount);
    for (let n = 1; n <= config.msk.brokerCount; n++) {
      template.hasResourceProperties('AWS::Route53::RecordSet', {
        Name: `${handshakeRef(HANDSHAKE_KEYS.brokerHost(n))}.`,
        Type: 'A',
        AliasTarget: Match.objectLike({ DNSName: Match.anyValue(), HostedZoneId: Match.anyValue() }),
      });
    }
  });

  test('endpoints or gateways for DynamoDB, S3, SQS, Secrets Manager, STS (and Lambda, Glue); no internet path', () => {
    const services = resourcesOf(template, 'AWS::EC2::VPCEndpoint').map(([, p]) => text(p.ServiceName));
    for (const service of ['dynamodb', 's3', 'sqs', 'secretsmanager', 'sts', 'lambda', 'glue']) {
      expect(services.some((s) => s.includes(`.${service}"`) || s.includes(`.${service}`))).toBe(true);
    }
    template.resourceCountIs('AWS::EC2::InternetGateway', 0);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
  });

  test('one ESM per contract topic: SCRAM-512, VPC, TRIM_HORIZON, batching from config, contract consumer group', () => {
    const mappings = resourcesOf(template, 'AWS::Lambda::EventSourceMapping');
    expect(mappings.map(([, m]) => m.Topics)).toEqual(config.topics.map((t) => [t.name]));
    const fn = logicalIdOf(template, 'AWS::Lambda::Function', 'ConsumerFunction');
    const scram = logicalIdOf(template, 'AWS::SecretsManager::Secret', 'ScramCredentials');
    const onFailure = logicalIdOf(template, 'AWS::SQS::Queue', 'DataOnFailureQueue');
    for (const topic of config.topics) {
      template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
        FunctionName: { 'Fn::GetAtt': [fn, 'Arn'] },
        Topics: [topic.name],
        StartingPosition: 'TRIM_HORIZON',
        BatchSize: contracts.defaults.esmBatchSize,
        MaximumBatchingWindowInSeconds: contracts.defaults.esmBatchingWindowSeconds,
        SelfManagedKafkaEventSourceConfig: { ConsumerGroupId: topic.consumerGroup },
        SelfManagedEventSource: {
          Endpoints: {
            KafkaBootstrapServers: [1, 2, 3].map((n) => handshakeRef(HANDSHAKE_KEYS.brokerEndpoint(n))),
          },
        },
        SourceAccessConfigurations: Match.arrayWith([
          { Type: 'SASL_SCRAM_512_AUTH', URI: { Ref: scram } },
          Match.objectLike({ Type: 'VPC_SUBNET' }),
          Match.objectLike({ Type: 'VPC_SECURITY_GROUP' }),
        ]),
        DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [onFailure, 'Arn'] } } },
      });
    }
  });

  test('the SCRAM user reaches this account as a CMK-encrypted copy resolved from the handshake', () => {
    const operationsKey = logicalIdOf(template, 'AWS::KMS::Key', 'OperationsKey');
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      KmsKeyId: { 'Fn::GetAtt': [operationsKey, 'Arn'] },
      SecretString: `{"username":"${handshakeRef(HANDSHAKE_KEYS.scramUsername)}","password":"${handshakeRef(HANDSHAKE_KEYS.scramPassword)}"}`,
    });
  });

  test('contract names and config are wired into the consumer environment', () => {
    const tables = contracts.tables;
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'provided.al2023',
      Handler: 'bootstrap',
      Architectures: ['x86_64'],
      LoggingConfig: Match.objectLike({ LogFormat: 'JSON', ApplicationLogLevel: 'INFO' }),
      Environment: {
        Variables: {
          [env.windowSeconds]: String(contracts.defaults.windowSeconds),
          [env.aggregatesTable]: { Ref: logicalIdOf(template, 'AWS::DynamoDB::Table', 'DataWindowAggregates') },
          [env.explicitEventsTable]: { Ref: logicalIdOf(template, 'AWS::DynamoDB::Table', 'DataGenericEvents') },
          [env.storeEventsBucket]: { Ref: logicalIdOf(template, 'AWS::S3::Bucket', 'DataStoreEvents') },
          [env.poisonQueueUrl]: { Ref: logicalIdOf(template, 'AWS::SQS::Queue', 'DataPoisonQueue') },
          ...Object.fromEntries(Object.values(contracts.topics).map((t) => [t.envVar, t.name])),
          [env.registryName]: contracts.schemaRegistry.name,
          [env.registryRoleArn]: Match.anyValue(),
          [env.pgHost]: Match.anyValue(),
          [env.pgPort]: '5432',
          [env.pgDatabase]: contracts.postgres.database,
          [env.pgSecretArn]: Match.anyValue(),
          [env.pgTls]: 'require',
        },
      },
    });
    template.hasResourceProperties('AWS::DynamoDB::Table', { TableName: tables.windowAggregates.name });
    const [[, fn]] = resourcesOf(template, 'AWS::Lambda::Function').filter(([id]) => id.startsWith('ConsumerFunction'));
    const vars = (fn.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(text(vars[env.registryRoleArn])).toContain(`:iam::${PRODUCER_ACCOUNT}:role/${contracts.project}-registry-reader`);
    expect(text(vars[env.pgHost])).toContain('Proxy');
  });

  test('DynamoDB tables: contract keys and types, PITR, customer managed key', () => {
    const dataKey = logicalIdOf(template, 'AWS::KMS::Key', 'DataKey');
    for (const table of [contracts.tables.windowAggregates, contracts.tables.explicitEvents]) {
      template.hasResourceProperties('AWS::DynamoDB::Table', {
        TableName: table.name,
        KeySchema: [
          { AttributeName: table.partitionKey, KeyType: 'HASH' },
          { AttributeName: table.sortKey, KeyType: 'RANGE' },
        ],
        AttributeDefinitions: Match.arrayWith([
          { AttributeName: table.partitionKey, AttributeType: table.partitionKeyType },
          { AttributeName: table.sortKey, AttributeType: table.sortKeyType },
        ]),
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: { 'Fn::GetAtt': [dataKey, 'Arn'] } },
        DeletionProtectionEnabled: true,
      });
    }
    const resources = template.toJSON().Resources as Record<string, { Type: string; DeletionPolicy?: string }>;
    for (const r of Object.values(resources).filter((x) => x.Type === 'AWS::DynamoDB::Table')) {
      expect(r.DeletionPolicy).toBe('Retain');
    }
  });

  test('a fourth topic of an existing payload kind gets its topic, mapping and variable with no code change', () => {
    const base = pipelineContracts();
    const extra = { ...base.topics.sensorReadings, name: 'sensor-readings-eu', envVar: 'SENSOR_EU_TOPIC', consumerGroup: 'pipeline-sensor-readings-eu' };
    const fourTopics = checkContracts({ ...base, topics: { ...base.topics, sensorReadingsEu: extra } });
    const context = cdkJsonContext();
    const app = new App({ context: { ...context, 'aws:cdk:bundling-stacks': [] } });
    const config = parseConfig(context.pipeline as Record<string, unknown>, fourTopics, {});
    const built = buildPipeline(app, { config, contracts: fourTopics, nag: false });
    const consumer = Template.fromStack(built.consumer!);
    consumer.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      Topics: ['sensor-readings-eu'],
      SelfManagedKafkaEventSourceConfig: { ConsumerGroupId: 'pipeline-sensor-readings-eu' },
    });
    expect(resourcesOf(consumer, 'AWS::Lambda::EventSourceMapping')).toHaveLength(4);
    consumer.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ SENSOR_EU_TOPIC: 'sensor-readings-eu', [base.topics.sensorReadings.envVar]: 'sensor-readings' }) },
    });
    Template.fromStack(built.msk).hasResourceProperties('Custom::KafkaTopics', {
      Topics: Match.arrayWith([Match.objectLike({ Name: 'sensor-readings-eu', Partitions: extra.partitions })]),
    });
  });

  test('the explicit-events table keeps the logical id it was first deployed with (a new one replaces the table)', () => {
    const explicit = resourcesOf(template, 'AWS::DynamoDB::Table')
      .find(([, props]) => props.TableName === contracts.tables.explicitEvents.name);
    // The id CDK gave the construct path Data/GenericEvents on main before the rename.
    expect(explicit?.[0]).toBe('DataGenericEvents35351C91');
  });

  test('store-events bucket: KMS, versioned, public access blocked, SSL only, lifecycle, access logs', () => {
    const bucket = logicalIdOf(template, 'AWS::S3::Bucket', 'DataStoreEvents');
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: { ServerSideEncryptionConfiguration: [Match.objectLike({ ServerSideEncryptionByDefault: Match.objectLike({ SSEAlgorithm: 'aws:kms' }) })] },
      VersioningConfiguration: { Status: 'Enabled' },
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      LoggingConfiguration: Match.objectLike({ DestinationBucketName: Match.anyValue() }),
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ Prefix: contracts.bucket.storeEventsPrefix, Status: 'Enabled' }),
          Match.objectLike({ Prefix: contracts.bucket.oversizePoisonPrefix, ExpirationInDays: 90 }),
        ]),
      },
    });
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: bucket },
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({
          Effect: 'Deny',
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        })]),
      },
    });
  });

  test('queues: encrypted on-failure destination and FIFO poison queue without content-based dedupe, both kept 14 days', () => {
    const dataKey = logicalIdOf(template, 'AWS::KMS::Key', 'DataKey');
    // 1,209,600 s (14 days) is SQS's maximum MessageRetentionPeriod (SQS API reference,
    // SetQueueAttributes); docs/guarantees.md promises it for the poison queue.
    const fourteenDays = 14 * 24 * 60 * 60;
    template.hasResourceProperties('AWS::SQS::Queue', {
      QueueName: contracts.queues.poison,
      FifoQueue: true,
      ContentBasedDeduplication: false,
      KmsMasterKeyId: { 'Fn::GetAtt': [dataKey, 'Arn'] },
      MessageRetentionPeriod: fourteenDays,
    });
    template.hasResourceProperties('AWS::SQS::Queue', {
      QueueName: contracts.queues.onFailure,
      KmsMasterKeyId: { 'Fn::GetAtt': [dataKey, 'Arn'] },
      MessageRetentionPeriod: fourteenDays,
    });
  });

  test('PostgreSQL: private, encrypted, TLS, generated secret, contract database name, proxy with TLS', () => {
    const databaseKey = logicalIdOf(template, 'AWS::KMS::Key', 'DatabaseKey');
    template.hasResourceProperties('AWS::RDS::DBInstance', {
      Engine: 'postgres',
      DBName: contracts.postgres.database,
      PubliclyAccessible: false,
      StorageEncrypted: true,
      KmsKeyId: { 'Fn::GetAtt': [databaseKey, 'Arn'] },
      // cdk destroy can remove it; a final snapshot keeps the data (retainData).
      DeletionProtection: false,
      EnableIAMDatabaseAuthentication: true,
    });
    const db = (template.toJSON().Resources as Record<string, { Type: string; DeletionPolicy?: string; Properties: Record<string, unknown> }>)[
      logicalIdOf(template, 'AWS::RDS::DBInstance', 'DatabaseInstance')];
    expect(db.DeletionPolicy).toBe('Snapshot');
    expect(text(db.Properties.MasterUserPassword)).toContain('{{resolve:secretsmanager:');
    template.hasResourceProperties('AWS::RDS::DBParameterGroup', { Parameters: Match.objectLike({ 'rds.force_ssl': '1' }) });
    template.hasResourceProperties('AWS::RDS::DBProxy', { RequireTLS: true, EngineFamily: 'POSTGRESQL' });
  });

  test('alarms on OffsetLag, errors, throttles and both failure queues, plus a dashboard', () => {
    const alarms = resourcesOf(template, 'AWS::CloudWatch::Alarm');
    const metrics = alarms.map(([, a]) => a.MetricName);
    expect(metrics.sort()).toEqual(['ApproximateNumberOfMessagesVisible', 'ApproximateNumberOfMessagesVisible', 'Errors', 'OffsetLag', 'Throttles']);
    for (const [, alarm] of alarms) {
      expect(asArray(alarm.AlarmActions)).toHaveLength(1);
    }
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'OffsetLag', Namespace: 'AWS/Lambda' });
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
  });

  test('the consumer role is scoped: tables, bucket prefixes, queues, secrets, the registry reader role', () => {
    const statements = iamStatements(template)
      .filter(({ resource }) => resource.startsWith('ConsumerRole'))
      .map(({ statement }) => statement);
    const bySid = (sid: string) => statements.find((s) => s.Sid === sid);
    expect(asArray(bySid('WriteTheSinkTables')?.Resource).map(text).sort()).toEqual([
      text({ 'Fn::GetAtt': [logicalIdOf(template, 'AWS::DynamoDB::Table', 'DataGenericEvents'), 'Arn'] }),
      text({ 'Fn::GetAtt': [logicalIdOf(template, 'AWS::DynamoDB::Table', 'DataWindowAggregates'), 'Arn'] }),
    ].sort());
    const objects = asArray(bySid('WriteTheStoreEventObjects')?.Resource).map(text);
    expect(objects.some((r) => r.includes(`/${contracts.bucket.storeEventsPrefix}*`))).toBe(true);
    expect(objects.some((r) => r.includes(`/${contracts.bucket.oversizePoisonPrefix}*`))).toBe(true);
    // ListBucket on the bucket itself, with no s3:prefix condition: S3 evaluates it without a prefix
    // when it decides between 404 and 403 for a missing object, which the replay check relies on.
    const list = bySid('TellMissingObjectsApart');
    expect(list?.Action).toBe('s3:ListBucket');
    expect(list?.Resource).toEqual({ 'Fn::GetAtt': [logicalIdOf(template, 'AWS::S3::Bucket', 'DataStoreEvents'), 'Arn'] });
    expect(list?.Condition).toBeUndefined();
    expect(text(bySid('AssumeTheProducerRegistryReader')?.Resource)).toContain(`${PRODUCER_ACCOUNT}:role/${contracts.project}-registry-reader`);
    template.hasResourceProperties('AWS::IAM::Role', { RoleName: `${contracts.project}-consumer-${config.consumer.region}` });
  });

  test('security groups: brokers only from the consumer on 9096, PostgreSQL only from consumer/proxy', () => {
    const consumerSg = logicalIdOf(template, 'AWS::EC2::SecurityGroup', 'ConsumerSecurityGroup');
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      SourceSecurityGroupId: { 'Fn::GetAtt': [consumerSg, 'GroupId'] },
      FromPort: 9096,
      ToPort: 9096,
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      SourceSecurityGroupId: { 'Fn::GetAtt': [consumerSg, 'GroupId'] },
      FromPort: 5432,
      ToPort: 5432,
    });
    for (const [, ingress] of resourcesOf(template, 'AWS::EC2::SecurityGroupIngress')) {
      expect(ingress.CidrIp).not.toBe('0.0.0.0/0');
    }
  });
});

describe('consumer-stack: the schema is owned at deploy time, the consumer runs as a least-privilege role', () => {
  const { pipeline } = synthOnce(CROSS_ACCOUNT);
  const template = Template.fromStack(pipeline.consumer!);
  const { contracts } = pipeline;
  const env = contracts.envVars;
  const resources = template.toJSON().Resources as Record<string, { Type: string; DependsOn?: string[]; Properties: Record<string, unknown>; Metadata?: Record<string, unknown> }>;
  const masterSecret = logicalIdOf(template, 'AWS::SecretsManager::SecretTargetAttachment', 'DatabaseInstanceSecretAttachment');
  const consumerSecret = logicalIdOf(template, 'AWS::SecretsManager::Secret', 'DatabaseConsumerSecret');
  const schema = logicalIdOf(template, 'Custom::PipelineDatabaseSchema', 'DatabaseSchema');
  const policyOf = (rolePrefix: string) => iamStatements(template)
    .filter(({ resource }) => resource.startsWith(rolePrefix))
    .map(({ statement }) => statement);

  test('a custom resource applies the migrations through the proxy with the master secret, keyed by the schema source hash', () => {
    const proxy = logicalIdOf(template, 'AWS::RDS::DBProxy', 'DatabaseInstanceProxy');
    expect(resources[schema].Properties).toEqual(expect.objectContaining({
      MasterSecretArn: { Ref: masterSecret },
      AppSecretArn: { Ref: consumerSecret },
      Host: { 'Fn::GetAtt': [proxy, 'Endpoint'] },
      Port: '5432',
      Database: contracts.postgres.database,
      Tls: 'require',
      SchemaHash: schemaHash(),
    }));
    // It runs once the proxy has the instance as its target.
    expect(resources[schema].DependsOn).toEqual(expect.arrayContaining([
      logicalIdOf(template, 'AWS::RDS::DBProxyTargetGroup', 'DatabaseInstanceProxy'),
      logicalIdOf(template, 'AWS::RDS::DBInstance', 'DatabaseInstance'),
    ]));
  });

  test('a changed migration or grant changes the SchemaHash property', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'schema-hash-'));
    const copy = path.join(dir, 'postgres_schema.rs');
    fs.writeFileSync(copy, fs.readFileSync(SCHEMA_SOURCE));
    expect(schemaHash(copy)).toBe(schemaHash());
    fs.appendFileSync(copy, '\n// a new migration\n');
    expect(schemaHash(copy)).not.toBe(schemaHash());
    expect(schemaHash()).toMatch(/^[0-9a-f]{64}$/);
  });

  test('every event source mapping waits for the schema custom resource', () => {
    const mappings = resourcesOf(template, 'AWS::Lambda::EventSourceMapping');
    expect(mappings).toHaveLength(pipeline.config.topics.length);
    for (const [id] of mappings) {
      expect(resources[id].DependsOn).toContain(schema);
    }
  });

  test('the proxy knows both secrets; the consumer secret is generated, CMK-encrypted, for the contract role', () => {
    template.hasResourceProperties('AWS::RDS::DBProxy', {
      Auth: [
        Match.objectLike({ AuthScheme: 'SECRETS', SecretArn: { Ref: masterSecret } }),
        Match.objectLike({ AuthScheme: 'SECRETS', SecretArn: { Ref: consumerSecret } }),
      ],
    });
    const secret = consumerSecret;
    expect(resources[secret].Properties).toEqual(expect.objectContaining({
      KmsKeyId: { 'Fn::GetAtt': [logicalIdOf(template, 'AWS::KMS::Key', 'DatabaseKey'), 'Arn'] },
      GenerateSecretString: expect.objectContaining({
        SecretStringTemplate: JSON.stringify({ username: contracts.postgres.consumerRole }),
        GenerateStringKey: 'password',
      }),
    }));
    const nag = text(resources[secret].Metadata);
    expect(nag).toContain('AwsSolutions-SMG4');
    expect(nag).toContain('rotation function');
  });

  test('the consumer reads only its own secret; the master secret is for db-admin alone', () => {
    const fn = resourcesOf(template, 'AWS::Lambda::Function').find(([id]) => id.startsWith('ConsumerFunction'));
    expect((fn?.[1].Environment as { Variables: Record<string, unknown> }).Variables[env.pgSecretArn]).toEqual({ Ref: consumerSecret });
    const consumerPolicy = policyOf('ConsumerRole');
    const reads = consumerPolicy.find((s) => s.Sid === 'ReadDatabaseAndScramCredentials');
    expect(asArray(reads?.Resource).map(text)).toEqual([
      text({ Ref: consumerSecret }),
      text({ Ref: logicalIdOf(template, 'AWS::SecretsManager::Secret', 'ScramCredentials') }),
    ]);
    expect(text(consumerPolicy)).not.toContain(masterSecret);
    const admin = policyOf('DatabaseSchemaHandlerRole').find((s) => s.Sid === 'ReadMasterAndConsumerDatabaseSecrets');
    expect(admin?.Action).toBe('secretsmanager:GetSecretValue');
    expect(asArray(admin?.Resource).map(text).sort()).toEqual([text({ Ref: masterSecret }), text({ Ref: consumerSecret })].sort());
    // Nothing else in the stack may read the master secret (the proxy's role aside).
    const readers = iamStatements(template)
      .filter(({ statement }) => text(statement.Resource).includes(masterSecret))
      .map(({ resource }) => resource.replace(/[0-9A-F]{8}$/, ''));
    expect([...new Set(readers)].sort()).toEqual(['DatabaseInstanceProxyIAMRoleDefaultPolicy', 'DatabaseSchemaHandlerRoleDefaultPolicy']);
  });

  test('db-admin reaches only the proxy on 5432 and Secrets Manager on 443', () => {
    const sg = logicalIdOf(template, 'AWS::EC2::SecurityGroup', 'DatabaseSchemaSecurityGroup');
    const egress = resourcesOf(template, 'AWS::EC2::SecurityGroupEgress').filter(([, e]) => text(e.GroupId).includes(sg));
    expect(egress.map(([, e]) => e.FromPort).sort()).toEqual([443, 5432]);
    for (const [, e] of egress) {
      expect(e.CidrIp).toBeUndefined();
    }
  });
});

describe('consumer-stack: handshake values refresh when the handshake revision changes', () => {
  const consumerAt = (handshakeRevision: number) => Template.fromStack(synthPipeline({ ...CROSS_ACCOUNT, handshakeRevision }, false).pipeline.consumer!);
  const holders = (template: Template) => Object.entries(template.toJSON().Resources as Record<string, { Type: string; Properties: unknown }>)
    .filter(([, r]) => text(r.Properties).includes(`{{resolve:secretsmanager:${HANDSHAKE_ARN}`));

  test('every resource holding a handshake dynamic reference changes in a mutable property', () => {
    const before = new Map(holders(consumerAt(1)));
    const after = new Map(holders(consumerAt(2)));
    const types = [...before.values()].map((r) => r.Type).sort();
    // The zone, per broker its endpoint and record, one mapping per topic, and the SCRAM copy.
    expect(types).toEqual([
      ...Array(3).fill('AWS::EC2::VPCEndpoint'), ...Array(3).fill('AWS::Lambda::EventSourceMapping'),
      'AWS::Route53::HostedZone', ...Array(3).fill('AWS::Route53::RecordSet'), 'AWS::SecretsManager::Secret',
    ].sort());
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [id, resource] of before) {
      expect(`${id} ${text(after.get(id)?.Properties)}`).not.toBe(`${id} ${text(resource.Properties)}`);
    }
  });
});

describe('consumer-stack stays within CloudFormation\'s 60 dynamic references', () => {
  const countIn = (override: Record<string, unknown>) => {
    const json = text(Template.fromStack(synthPipeline(override, false).pipeline.consumer!).toJSON());
    return (json.match(/\{\{resolve:/g) ?? []).length;
  };
  const topics = 3;

  test('the count matches consumerDynamicReferenceCount, which config validation uses', () => {
    expect(countIn({})).toBe(consumerDynamicReferenceCount(3, topics));
  });

  test('at the largest broker count config allows with whole zones, the template holds at most 60', () => {
    const max = maxBrokersWithinDynamicReferenceLimit(topics);
    expect(consumerDynamicReferenceCount(max, topics)).toBeLessThanOrEqual(CFN_MAX_DYNAMIC_REFERENCES);
    expect(consumerDynamicReferenceCount(max + 1, topics)).toBeGreaterThan(CFN_MAX_DYNAMIC_REFERENCES);
    // 23 is prime: 22 brokers over two zones is the most that config accepts.
    const brokers = 22;
    const count = countIn({ msk: { brokerCount: brokers }, producer: { availabilityZones: ['eu-west-1a', 'eu-west-1b'] } });
    expect(count).toBe(consumerDynamicReferenceCount(brokers, topics));
    expect(count).toBeLessThanOrEqual(CFN_MAX_DYNAMIC_REFERENCES);
    expect(ESM_BOOTSTRAP_BROKERS).toBe(3);
  });
});

describe('consumer-stack (one account)', () => {
  const { pipeline } = synthOnce({
    lambdaArchitecture: 'arm64', esmBatchSize: 100, esmBatchingWindowSeconds: 5, windowSeconds: 300, handshakeRevision: 2,
  });
  const template = Template.fromStack(pipeline.consumer!);

  test('bumping handshakeRevision changes both secret copies, so CloudFormation re-reads them', () => {
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      Description: Match.stringLikeRegexp('^SASL/SCRAM user .*\\(revision 2\\)$'),
    });
    Template.fromStack(pipeline.endpointService).hasResourceProperties('AWS::SecretsManager::Secret', {
      Description: Match.stringLikeRegexp('revision 2'),
    });
  });

  test('takes the handshake as a typed cross-stack reference and waits for the producer side', () => {
    expect(text(template.toJSON())).toContain('producer-endpoint-service:ExportsOutputRefHandshake');
    expect(pipeline.consumer?.dependencies.map((d) => d.stackName)).toContain('producer-stack');
  });

  test('config drives the ESM batching, the window size and the architecture', () => {
    for (const [, mapping] of resourcesOf(template, 'AWS::Lambda::EventSourceMapping')) {
      expect(mapping).toMatchObject({ BatchSize: 100, MaximumBatchingWindowInSeconds: 5 });
    }
    template.hasResourceProperties('AWS::Lambda::Function', {
      Architectures: ['arm64'],
      Environment: { Variables: Match.objectLike({ [pipeline.contracts.envVars.windowSeconds]: '300' }) },
    });
  });
});

describe('consumer-stack: event source mapping mode', () => {
  const mappingsOf = (override: Record<string, unknown>) =>
    resourcesOf(Template.fromStack(synthOnce({ ...CROSS_ACCOUNT, ...override }).pipeline.consumer!), 'AWS::Lambda::EventSourceMapping');
  // The consumer answers with the partial-batch response only when told the mappings honour it:
  // without ReportBatchItemFailures Lambda would take that answer for a success and commit.
  const consumerAnswersPartially = (override: Record<string, unknown>) => {
    const synthed = synthOnce({ ...CROSS_ACCOUNT, ...override });
    const consumer = Template.fromStack(synthed.pipeline.consumer!).toJSON().Resources as Record<string, { Type: string; Properties: Record<string, unknown> }>;
    const name = synthed.pipeline.contracts.envVars.reportBatchItemFailures;
    const values = Object.values(consumer)
      .filter((r) => r.Type === 'AWS::Lambda::Function')
      .map((r) => (r.Properties.Environment as { Variables?: Record<string, unknown> } | undefined)?.Variables ?? {})
      .filter((vars) => synthed.pipeline.contracts.envVars.poisonQueueUrl in vars)
      .map((vars) => vars[name]);
    expect(values).toHaveLength(1);
    return values[0];
  };

  test('the consumer is told to answer with partial-batch responses exactly when its mappings honour them', () => {
    expect(consumerAnswersPartially({})).toBe('false');
    expect(consumerAnswersPartially({ esmMode: 'provisioned' })).toBe('true');
    expect(consumerAnswersPartially({ esmMode: 'provisioned', esmProvisioned: { reportBatchItemFailures: false } })).toBe('false');
  });

  test('on-demand (the default) sets no poller or error-handling property, leaving AWS\'s defaults', () => {
    const mappings = mappingsOf({});
    expect(mappings).toHaveLength(3);
    for (const [, m] of mappings) {
      for (const key of ['ProvisionedPollerConfig', 'MaximumRetryAttempts', 'MaximumRecordAgeInSeconds', 'BisectBatchOnFunctionError', 'FunctionResponseTypes']) {
        expect(m).not.toHaveProperty(key);
      }
    }
  });

  test('provisioned mode emits pollers, retry limit, record age, bisect and ReportBatchItemFailures on every mapping', () => {
    const mappings = mappingsOf({
      esmMode: 'provisioned',
      esmProvisioned: { minimumPollers: 2, maximumPollers: 8, maximumRetryAttempts: 4, maximumRecordAgeSeconds: 3600, bisectBatchOnFunctionError: true },
    });
    expect(mappings).toHaveLength(3);
    for (const [, m] of mappings) {
      expect(m).toMatchObject({
        ProvisionedPollerConfig: { MinimumPollers: 2, MaximumPollers: 8 },
        MaximumRetryAttempts: 4,
        MaximumRecordAgeInSeconds: 3600,
        BisectBatchOnFunctionError: true,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        DestinationConfig: { OnFailure: { Destination: expect.anything() } },
      });
    }
  });

  test('partial-batch responses can be turned off in provisioned mode', () => {
    for (const [, m] of mappingsOf({ esmMode: 'provisioned', esmProvisioned: { reportBatchItemFailures: false } })) {
      expect(m).toMatchObject({ ProvisionedPollerConfig: { MinimumPollers: 1, MaximumPollers: 200 }, MaximumRetryAttempts: -1 });
      expect(m).not.toHaveProperty('FunctionResponseTypes');
    }
  });
});
