import { Match, Template } from 'aws-cdk-lib/assertions';
import { readSchemaFile } from '../lib/contracts';
import { asArray, CONSUMER_ACCOUNT, CROSS_ACCOUNT, iamStatements, resourcesOf, synthOnce, text } from './helpers';

describe('producer-stack', () => {
  const { pipeline } = synthOnce(CROSS_ACCOUNT);
  const template = Template.fromStack(pipeline.producer);
  const { contracts, config } = pipeline;
  const env = contracts.envVars;

  test('registry and every committed schema version, in order, with the contract compatibility', () => {
    template.hasResourceProperties('AWS::Glue::Registry', { Name: contracts.schemaRegistry.name });
    for (const [name, schema] of Object.entries(contracts.schemas)) {
      template.hasResourceProperties('AWS::Glue::Schema', {
        Name: name,
        DataFormat: 'AVRO',
        Compatibility: schema.compatibility,
        SchemaDefinition: readSchemaFile(schema.versions[0]),
      });
      for (const later of schema.versions.slice(1)) {
        template.hasResourceProperties('AWS::Glue::SchemaVersion', { SchemaDefinition: readSchemaFile(later) });
      }
    }
    const versions = resourcesOf(template, 'AWS::Glue::SchemaVersion');
    const expected = Object.values(contracts.schemas).reduce((n, s) => n + s.versions.length - 1, 0);
    expect(versions).toHaveLength(expected);
    // Each later version waits for the previous one (Glue checks compatibility against it).
    const resources = template.toJSON().Resources as Record<string, { DependsOn?: string[] }>;
    for (const [id] of versions) {
      expect(resources[id].DependsOn?.length).toBeGreaterThan(0);
    }
  });

  test('the registry reader role trusts only consumer-account roles named like the consumer function', () => {
    template.hasResourceProperties('AWS::IAM::Role', {
      RoleName: `${contracts.project}-registry-reader`,
      MaxSessionDuration: 3600,
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({
          Action: 'sts:AssumeRole',
          Principal: { AWS: Match.anyValue() },
          Condition: {
            ArnLike: { 'aws:PrincipalArn': Match.anyValue() },
          },
        })],
      },
    });
    const [[, role]] = resourcesOf(template, 'AWS::IAM::Role').filter(([, r]) => r.RoleName === `${contracts.project}-registry-reader`);
    const trust = text(role.AssumeRolePolicyDocument);
    expect(trust).toContain(`:iam::${CONSUMER_ACCOUNT}:root`);
    expect(trust).toContain(`:iam::${CONSUMER_ACCOUNT}:role/${contracts.project}-consumer-*`);
  });

  test('GetSchemaVersion (looked up by id) is granted on "*" in a statement of its own, for the reader and the producer', () => {
    const statementsOf = (prefix: string) => iamStatements(template).filter(({ resource }) => resource.startsWith(prefix)).map((s) => s.statement);
    const reader = statementsOf('RegistryReaderRole');
    expect(reader).toEqual([{ Sid: 'GetSchemaVersionsById', Effect: 'Allow', Action: 'glue:GetSchemaVersion', Resource: '*' }]);
    const producer = statementsOf('ProducerRole');
    expect(producer).toContainEqual({ Sid: 'GetSchemaVersionsById', Effect: 'Allow', Action: 'glue:GetSchemaVersion', Resource: '*' });
    // Everything else the producer does in Glue stays scoped to the pipeline registry.
    const registry = producer.find((s) => s.Sid === 'UseThePipelineRegistry');
    expect(asArray(registry?.Action as string[])).not.toContain('glue:GetSchemaVersion');
    const resources = asArray(registry?.Resource).map(text);
    expect(resources).toHaveLength(2);
    expect(resources[0]).toContain('Registry');
    expect(resources[1]).toContain(`:schema/${contracts.schemaRegistry.name}/*`);
    for (const s of producer.filter((x) => x.Resource === '*')) {
      expect(['GetSchemaVersionsById', 'LambdaVpcNetworkInterfaces']).toContain(s.Sid);
    }
  });

  test('the cdk-nag acknowledgement of that wildcard carries its reason and source', () => {
    const resources = template.toJSON().Resources as Record<string, { Metadata?: { cdk_nag?: { rules_to_suppress?: { id: string; reason: string }[] } } }>;
    for (const policy of ['RegistryReaderRoleDefaultPolicy', 'ProducerRoleDefaultPolicy']) {
      const metadata = Object.entries(resources).find(([id]) => id.startsWith(policy))?.[1].Metadata;
      const rule = metadata?.cdk_nag?.rules_to_suppress?.find((r) => r.id === 'AwsSolutions-IAM5[Resource::*]');
      expect(rule?.reason).toMatch(/SchemaVersionId .*Resource "\*".*awslabs\/aws-glue-schema-registry#68/);
    }
  });

  test('producer function: Rust, in the VPC, contract names wired into its environment', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'provided.al2023',
      Handler: 'bootstrap',
      LoggingConfig: Match.objectLike({ LogFormat: 'JSON' }),
      VpcConfig: Match.anyValue(),
      Environment: {
        Variables: Match.objectLike({
          [env.kafkaBootstrapServers]: Match.anyValue(),
          [env.kafkaAuth]: 'iam',
          [env.kafkaTls]: 'true',
          ...Object.fromEntries(Object.values(contracts.topics).map((t) => [t.envVar, t.name])),
          [env.registryName]: contracts.schemaRegistry.name,
        }),
      },
    });
    const [[, fn]] = resourcesOf(template, 'AWS::Lambda::Function');
    expect(text(fn.Environment)).toContain('BootstrapBrokerStringSaslIam');
  });

  test('kafka-cluster permissions are scoped to the cluster and the contract topics', () => {
    const statements = iamStatements(template).map(({ statement }) => statement);
    const connect = statements.find((s) => asArray(s.Action as string[]).includes('kafka-cluster:Connect'));
    expect(asArray(connect?.Resource)).toHaveLength(1);
    expect(text(connect?.Resource)).toContain('producer-msk');
    const write = statements.find((s) => asArray(s.Action as string[]).includes('kafka-cluster:WriteData'));
    expect(asArray(write?.Action as string[]).sort()).toEqual(['kafka-cluster:DescribeTopic', 'kafka-cluster:WriteData']);
    const topics = asArray(write?.Resource).map(text);
    expect(topics).toHaveLength(config.topics.length);
    for (const t of config.topics) {
      expect(topics.filter((r) => r.endsWith(`/${t.name}"]]}`))).toHaveLength(1);
    }
    expect(statements.some((s) => text(s.Action).includes('kafka-cluster:*'))).toBe(false);
  });

  test('the schedule invokes the producer with each configured request and has an encrypted DLQ', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: config.producerSchedule.expression,
      State: 'ENABLED',
    });
    const [[, rule]] = resourcesOf(template, 'AWS::Events::Rule');
    const targets = rule.Targets as Record<string, unknown>[];
    expect(targets.map((t) => JSON.parse(String(t.Input)))).toEqual(config.producerSchedule.requests);
    for (const target of targets) {
      expect(target.DeadLetterConfig).toBeDefined();
      expect(target.RetryPolicy).toMatchObject({ MaximumRetryAttempts: 2 });
    }
    template.hasResourceProperties('AWS::SQS::Queue', { KmsMasterKeyId: Match.anyValue() });
  });

  test('the producer security group only reaches the brokers (IAM port) and the VPC endpoints', () => {
    const [[, sg]] = resourcesOf(template, 'AWS::EC2::SecurityGroup');
    expect(sg.SecurityGroupIngress).toBeUndefined();
    const egress = resourcesOf(template, 'AWS::EC2::SecurityGroupEgress').map(([, p]) => [p.FromPort, p.ToPort]);
    expect(egress.sort()).toEqual([[443, 443], [9098, 9098]]);
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', { FromPort: 9098, ToPort: 9098 });
  });

  test('producer-stack is the producer-side entry point: it depends on the other producer stacks', () => {
    const ids = (s: { dependencies: { stackName: string }[] }) => s.dependencies.map((d) => d.stackName);
    expect(ids(pipeline.producer)).toEqual(expect.arrayContaining(['producer-vpc', 'producer-msk', 'producer-endpoint-service']));
  });
});
