import { Match, Template } from 'aws-cdk-lib/assertions';
import { MSK_STORAGE_AUTO_SCALING } from '../lib/aws-facts';
import { asArray, iamStatements, logicalIdOf, resourcesOf, synthOnce, text } from './helpers';

describe('producer-msk', () => {
  const { pipeline } = synthOnce();
  const template = Template.fromStack(pipeline.msk);
  const { config, contracts } = pipeline;

  test('cluster: TLS only in transit, CMK at rest, SCRAM + IAM, no unauthenticated access, broker logs', () => {
    const clusterKey = logicalIdOf(template, 'AWS::KMS::Key', 'ClusterKey');
    template.hasResourceProperties('AWS::MSK::Cluster', {
      ClusterName: config.msk.clusterName,
      KafkaVersion: config.msk.kafkaVersion,
      NumberOfBrokerNodes: config.msk.brokerCount,
      BrokerNodeGroupInfo: Match.objectLike({
        InstanceType: config.msk.instanceType,
        ConnectivityInfo: { PublicAccess: { Type: 'DISABLED' } },
        StorageInfo: { EBSStorageInfo: { VolumeSize: config.msk.volumeSizeGiB } },
      }),
      EncryptionInfo: {
        EncryptionInTransit: { ClientBroker: 'TLS', InCluster: true },
        EncryptionAtRest: { DataVolumeKMSKeyId: { 'Fn::GetAtt': [clusterKey, 'Arn'] } },
      },
      ClientAuthentication: {
        Sasl: { Iam: { Enabled: true }, Scram: { Enabled: true } },
        Unauthenticated: { Enabled: false },
      },
      LoggingInfo: { BrokerLogs: { CloudWatchLogs: { Enabled: true, LogGroup: Match.anyValue() } } },
    });
    expect(config.msk.kafkaVersion).toBe('3.8.x');
    const [[, cluster]] = resourcesOf(template, 'AWS::MSK::Cluster');
    const info = cluster.BrokerNodeGroupInfo as { ClientSubnets: unknown[] };
    expect(info.ClientSubnets).toHaveLength(config.producer.availabilityZones.length);
  });

  test('broker storage scales out on KafkaBrokerStorageUtilization up to the configured maximum, never in', () => {
    const cluster = logicalIdOf(template, 'AWS::MSK::Cluster', 'Cluster');
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      ServiceNamespace: 'kafka',
      ScalableDimension: 'kafka:broker-storage:VolumeSize',
      ResourceId: { 'Fn::GetAtt': [cluster, 'Arn'] },
      MinCapacity: config.msk.volumeSizeGiB,
      MaxCapacity: config.msk.maxVolumeSizeGiB,
      RoleARN: Match.absent(),
    });
    const [[, policy]] = resourcesOf(template, 'AWS::ApplicationAutoScaling::ScalingPolicy');
    expect(policy).toMatchObject({
      PolicyType: 'TargetTrackingScaling',
      TargetTrackingScalingPolicyConfiguration: {
        PredefinedMetricSpecification: { PredefinedMetricType: 'KafkaBrokerStorageUtilization' },
        DisableScaleIn: true,
      },
    });
    const target = (policy.TargetTrackingScalingPolicyConfiguration as { TargetValue: number }).TargetValue;
    expect(target).toBeGreaterThanOrEqual(MSK_STORAGE_AUTO_SCALING.minTargetPercent);
    expect(target).toBeLessThanOrEqual(MSK_STORAGE_AUTO_SCALING.maxTargetPercent);
    expect(config.msk.maxVolumeSizeGiB).toBe(1000);
  });

  test('broker configuration: no auto-created topics, and SCRAM users get only what ACLs grant', () => {
    const [[, configuration]] = resourcesOf(template, 'AWS::MSK::Configuration');
    const properties = String(configuration.ServerProperties).split('\n');
    expect(properties).toContain('auto.create.topics.enable=false');
    expect(properties).toContain('allow.everyone.if.no.acl.found=false');
    expect(properties).toContain('unclean.leader.election.enable=false');
  });

  test('the SCRAM user secret is AmazonMSK_-named, encrypted with its own CMK and associated', () => {
    const scramKey = logicalIdOf(template, 'AWS::KMS::Key', 'ScramKey');
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      Name: Match.stringLikeRegexp('^AmazonMSK_'),
      KmsKeyId: { 'Fn::GetAtt': [scramKey, 'Arn'] },
      GenerateSecretString: Match.objectLike({ GenerateStringKey: 'password' }),
    });
    template.resourceCountIs('AWS::MSK::BatchScramSecret', 1);
  });

  test('broker endpoints are discovered at deploy time with scoped kafka: calls', () => {
    const calls = resourcesOf(template, 'Custom::AWS').map(([, p]) => text(p.Create));
    expect(calls.some((c) => c.includes('GetBootstrapBrokers') && c.includes('BootstrapBrokerStringSaslIam'))).toBe(true);
    // ListNodes goes through the handler that keys brokers by BrokerId (broker-discovery.test.ts).
    const cluster = logicalIdOf(template, 'AWS::MSK::Cluster', 'Cluster');
    template.hasResourceProperties('Custom::MskBrokers', {
      ClusterArn: { 'Fn::GetAtt': [cluster, 'Arn'] },
      BrokerCount: config.msk.brokerCount,
      Revision: config.handshakeRevision,
    });
    const handler = resourcesOf(template, 'AWS::Lambda::Function').find(([id]) => id.startsWith('BrokersListNodesHandler'));
    expect(text(handler?.[1].Code)).toContain('function brokersById');
    expect(calls.some((c) => c.includes('ListNodes'))).toBe(false);
    const kafkaStatements = iamStatements(template).filter(({ statement }) => text(statement.Action).includes('kafka:'));
    expect(kafkaStatements.length).toBeGreaterThan(0);
    for (const { statement } of kafkaStatements) {
      expect(asArray(statement.Resource)).toEqual([{ 'Fn::GetAtt': [logicalIdOf(template, 'AWS::MSK::Cluster', 'Cluster'), 'Arn'] }]);
    }
  });

  test('the Rust topic-admin custom resource creates the contract topics with their config, retained on delete', () => {
    template.hasResourceProperties('Custom::KafkaTopics', { Auth: 'iam', DeletionPolicy: 'retain' });
    const [[, topics]] = resourcesOf(template, 'Custom::KafkaTopics');
    const expected = (['sensorReadings', 'storeEvents', 'explicitEvents'] as const).map((key) => ({
      Name: contracts.topics[key].name,
      Partitions: contracts.topics[key].partitions,
      ReplicationFactor: contracts.topics[key].replicationFactor,
      Config: contracts.topics[key].config,
    }));
    expect(topics.Topics).toEqual(expected);
  });

  test('the consumer SCRAM user gets read-only ACLs on the contract topics and consumer groups', () => {
    const [[, topics]] = resourcesOf(template, 'Custom::KafkaTopics');
    const [[, secret]] = resourcesOf(template, 'AWS::SecretsManager::Secret')
      .filter(([, p]) => String(p.Name ?? '').startsWith('AmazonMSK_'));
    const generated = secret.GenerateSecretString as { SecretStringTemplate: string };
    const userName = JSON.parse(generated.SecretStringTemplate).username;
    expect(topics.ConsumerAccess).toEqual({
      UserName: userName,
      Groups: config.topics.map((t) => t.consumerGroup),
    });
  });

  test('topic-admin is a Rust function in the VPC whose log level and format are Lambda\'s logging config only', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'provided.al2023',
      Handler: 'bootstrap',
      Architectures: ['x86_64'],
      LoggingConfig: { LogFormat: 'JSON', ApplicationLogLevel: 'INFO', SystemLogLevel: 'WARN', LogGroup: Match.anyValue() },
      KmsKeyArn: Match.anyValue(),
      VpcConfig: Match.objectLike({ SubnetIds: Match.anyValue(), SecurityGroupIds: Match.anyValue() }),
    });
    // One mechanism: no function is also configured through a variable of its own (RUST_LOG).
    for (const [id, fn] of resourcesOf(template, 'AWS::Lambda::Function')) {
      expect([id, text(fn.Environment ?? {})]).toEqual([id, expect.not.stringContaining('RUST_LOG')]);
    }
    const rust = resourcesOf(template, 'AWS::Lambda::Function').filter(([, fn]) => fn.Runtime === 'provided.al2023');
    expect(rust.length).toBeGreaterThan(0);
    for (const [id, fn] of rust) {
      expect([id, fn.LoggingConfig]).toEqual([id, expect.objectContaining({ ApplicationLogLevel: config.logLevel.toUpperCase() })]);
    }
  });

  test('topic-admin may only connect, manage ACLs, and create/describe/configure the contract topics', () => {
    const statements = iamStatements(template).map(({ statement }) => statement);
    const topicStatement = statements.find((s) => asArray(s.Action as string[]).includes('kafka-cluster:CreateTopic'));
    expect(topicStatement).toBeDefined();
    expect(asArray(topicStatement?.Action as string[]).sort()).toEqual([
      'kafka-cluster:AlterTopicDynamicConfiguration',
      'kafka-cluster:CreateTopic',
      'kafka-cluster:DescribeTopic',
      'kafka-cluster:DescribeTopicDynamicConfiguration',
    ]);
    const clusterStatement = statements.find((s) => asArray(s.Action as string[]).includes('kafka-cluster:AlterCluster'));
    expect(asArray(clusterStatement?.Resource)).toEqual([{ 'Fn::GetAtt': [logicalIdOf(template, 'AWS::MSK::Cluster', 'Cluster'), 'Arn'] }]);
    const resources = text(topicStatement?.Resource);
    for (const topic of config.topics) {
      expect(resources).toContain(`/${topic.name}`);
    }
    expect(asArray(topicStatement?.Resource)).toHaveLength(config.topics.length);
    expect(statements.some((s) => text(s.Action).includes('kafka-cluster:DeleteTopic'))).toBe(false);
  });

  test('brokers accept only the topic-admin function on the IAM port; no open ingress', () => {
    const brokerSg = logicalIdOf(template, 'AWS::EC2::SecurityGroup', 'BrokerSecurityGroup');
    const ingress = resourcesOf(template, 'AWS::EC2::SecurityGroupIngress')
      .filter(([, p]) => text(p.GroupId).includes(brokerSg));
    expect(ingress).toHaveLength(1);
    expect(ingress[0][1]).toMatchObject({ FromPort: 9098, ToPort: 9098, IpProtocol: 'tcp' });
    expect(text(template.toJSON())).not.toContain('0.0.0.0/0');
  });
});

describe('producer-msk with topic deletion enabled', () => {
  const { pipeline } = synthOnce({ topicDeletion: 'delete' });
  const template = Template.fromStack(pipeline.msk);

  test('the custom resource deletes topics and topic-admin gets DeleteTopic on them only', () => {
    template.hasResourceProperties('Custom::KafkaTopics', { DeletionPolicy: 'delete' });
    const statement = iamStatements(template)
      .map(({ statement: s }) => s)
      .find((s) => asArray(s.Action as string[]).includes('kafka-cluster:DeleteTopic'));
    expect(asArray(statement?.Resource)).toHaveLength(pipeline.config.topics.length);
  });
});
