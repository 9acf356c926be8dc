import { CfnOutput, Duration, Stack, StackProps, Tags } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { KAFKA_PROVISIONED_MODE } from '../aws-facts';
import { EsmModeConfig, PipelineConfig } from '../config';
import { PipelineContracts } from '../contracts';
import { BrokerEndpoints } from '../constructs/broker-endpoints';
import { ConsumerData } from '../constructs/consumer-data';
import { ConsumerMonitoring } from '../constructs/consumer-monitoring';
import { HANDSHAKE_KEYS, HANDSHAKE_REVISION_TAG, HandshakeSource } from '../constructs/handshake';
import { MSK_SCRAM_PORT } from '../constructs/msk-ports';
import { DatabaseSchema } from '../constructs/database-schema';
import { POSTGRES_PORT, PipelineDatabase } from '../constructs/pipeline-database';
import { PrivateVpc } from '../constructs/private-vpc';
import { ConsumerFunction, topicVariables } from '../constructs/functions';
import { acknowledge, checkovSkip, KMS_DATA_ACTIONS, keyUseStatement, pipelineKey } from '../constructs/security';
import { consumerRoleNamePrefix } from './producer-stack';

export interface ConsumerStackProps extends StackProps {
  readonly config: PipelineConfig;
  readonly contracts: PipelineContracts;
  /** The producer's handshake secret: typed in one account, its ARN from config across accounts. */
  readonly handshake: HandshakeSource;
  /**
   * Role in the producer account that may read the schema registry. In one account this is the
   * producer stack's role ARN (a cross-stack reference); across accounts app.ts derives it from
   * the producer account and the contract's project name.
   */
  readonly registryReaderRoleArn: string;
}

/**
 * Everything in the consumer account: an isolated VPC with endpoints, the PrivateLink side of
 * the broker handshake, the sinks (DynamoDB, S3, PostgreSQL), the Rust consumer function with one
 * self-managed Kafka event source mapping per contract topic, and alarms with a dashboard.
 */
export class ConsumerStack extends Stack {
  readonly consumer: ConsumerFunction;
  readonly eventSourceMappings: Readonly<Record<string, lambda.CfnEventSourceMapping>>;
  readonly data: ConsumerData;
  readonly database: PipelineDatabase;
  readonly databaseSchema: DatabaseSchema;
  readonly scramCredentials: secretsmanager.Secret;
  private readonly zones: readonly string[];

  constructor(scope: Construct, id: string, props: ConsumerStackProps) {
    super(scope, id, props);
    const { config, contracts } = props;
    this.zones = config.consumer.availabilityZones;
    if (config.consumer.zoneKind === 'name') {
      acknowledge(this, 'CloudFormation-Validate::W3010',
        'Zone names come from the validated config (consumer.availabilityZones or the one-account default); '
        + 'set availabilityZoneIds to place subnets by AZ ID instead');
    }
    const retain = config.retainData;

    const handshake = 'secret' in props.handshake
      ? props.handshake.secret
      : secretsmanager.Secret.fromSecretCompleteArn(this, 'Handshake', props.handshake.secretCompleteArn);

    // --- Keys ------------------------------------------------------------------------------
    const dataKey = pipelineKey(this, 'DataKey', {
      description: 'Consumer data: DynamoDB tables, store-events bucket, failure queues, alarm topic',
      retain,
    });
    const databaseKey = pipelineKey(this, 'DatabaseKey', {
      description: 'Consumer PostgreSQL storage, Performance Insights and its credentials',
      retain,
    });
    const operationsKey = pipelineKey(this, 'OperationsKey', {
      description: 'Consumer log groups, function environment and the copied SCRAM credentials',
      retain: false,
      allowCloudWatchLogs: true,
    });

    // --- Network ---------------------------------------------------------------------------
    const network = new PrivateVpc(this, 'Network', {
      cidr: config.consumerVpcCidr,
      availabilityZones: config.consumer.availabilityZones,
      zoneKind: config.consumer.zoneKind,
      logKey: operationsKey,
      gatewayEndpoints: true,
      // Lambda, STS and Secrets Manager are needed by the Kafka event source mapping's pollers
      // inside the VPC; SQS and Glue by the function (poison queue, schema registry).
      interfaceEndpoints: [
        { id: 'Sqs', service: ec2.InterfaceVpcEndpointAwsService.SQS },
        { id: 'SecretsManager', service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER },
        { id: 'Sts', service: ec2.InterfaceVpcEndpointAwsService.STS },
        { id: 'Lambda', service: ec2.InterfaceVpcEndpointAwsService.LAMBDA },
        { id: 'Glue', service: ec2.InterfaceVpcEndpointAwsService.GLUE },
      ],
    });
    const vpc = network.vpc;
    const brokers = new BrokerEndpoints(this, 'Brokers', {
      vpc,
      subnets: network.subnets,
      brokerCount: config.msk.brokerCount,
      handshake,
      revision: config.handshakeRevision,
    });

    // --- Data ------------------------------------------------------------------------------
    this.data = new ConsumerData(this, 'Data', { contracts, key: dataKey, retainData: retain });
    this.database = new PipelineDatabase(this, 'Database', {
      vpc,
      subnets: network.subnets,
      databaseName: contracts.postgres.database,
      consumerRoleName: contracts.postgres.consumerRole,
      config: config.rds,
      key: databaseKey,
      endpointSecurityGroup: network.endpointSecurityGroup,
      retainData: retain,
    });

    // Migrations and the consumer's role, applied with the master secret before any mapping exists.
    this.databaseSchema = new DatabaseSchema(this, 'DatabaseSchema', {
      database: this.database,
      databaseName: contracts.postgres.database,
      vpc,
      subnets: network.subnets,
      endpointSecurityGroup: network.endpointSecurityGroup,
      key: operationsKey,
      secretsKey: databaseKey,
      architecture: config.lambdaArchitecture,
      logLevel: config.logLevel,
    });

    // The SCRAM user for the event source mappings, copied from the handshake by CloudFormation
    // (dynamic references) into a secret of this account, encrypted with this account's key.
    this.scramCredentials = new secretsmanager.Secret(this, 'ScramCredentials', {
      // The revision changes the resource, so CloudFormation re-reads the handshake (config handshakeRevision).
      description: `SASL/SCRAM user of the MSK cluster in the producer account, copied from the handshake (revision ${config.handshakeRevision})`,
      encryptionKey: operationsKey,
      secretObjectValue: {
        username: handshake.secretValueFromJson(HANDSHAKE_KEYS.scramUsername),
        password: handshake.secretValueFromJson(HANDSHAKE_KEYS.scramPassword),
      },
    });
    acknowledge(this.scramCredentials, 'AwsSolutions-SMG4', 'A copy of the producer-owned SCRAM secret; it is refreshed by re-deploying this stack after the producer rotates it');
    checkovSkip(this.scramCredentials.node.defaultChild as secretsmanager.CfnSecret, 'CKV2_AWS_57',
      'Copy of the producer-owned SCRAM secret, refreshed by a re-deploy after the producer rotates it');

    // --- Function ----------------------------------------------------------------------------
    const securityGroup = new ec2.SecurityGroup(this, 'ConsumerSecurityGroup', {
      vpc,
      description: 'Consumer function and its Kafka pollers: brokers, PostgreSQL, AWS APIs',
      allowAllOutbound: false,
    });
    securityGroup.addEgressRule(brokers.securityGroup, ec2.Port.tcp(MSK_SCRAM_PORT), 'Kafka (SCRAM/TLS) through the broker endpoints');
    brokers.securityGroup.addIngressRule(securityGroup, ec2.Port.tcp(MSK_SCRAM_PORT), 'Kafka from the consumer and its pollers');
    securityGroup.addEgressRule(this.database.clientFacingSecurityGroup, ec2.Port.tcp(POSTGRES_PORT), 'PostgreSQL');
    this.database.clientFacingSecurityGroup.addIngressRule(securityGroup, ec2.Port.tcp(POSTGRES_PORT), 'PostgreSQL from the consumer');
    // The VPC has no internet route: HTTPS can only reach the interface endpoints and the S3 and
    // DynamoDB gateway endpoints (whose prefix-list ids are not known at synth time).
    securityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'AWS APIs through VPC endpoints (no internet route exists)');

    const region = config.consumer.region;
    this.consumer = new ConsumerFunction(this, 'Consumer', {
      description: 'Consumes the pipeline topics: window aggregates, store events, explicit events',
      // The producer account's registry reader role trusts this name prefix.
      roleName: `${consumerRoleNamePrefix(contracts)}${region}`,
      architecture: config.lambdaArchitecture,
      logLevel: config.logLevel,
      vpc,
      vpcSubnets: network.subnets,
      securityGroups: [securityGroup],
      encryptionKey: operationsKey,
      timeout: Duration.minutes(3),
      settings: {
        windowSeconds: config.windowSeconds,
        aggregatesTable: this.data.windowAggregates.tableName,
        explicitEventsTable: this.data.explicitEvents.tableName,
        storeEventsBucket: this.data.bucket.bucketName,
        poisonQueueUrl: this.data.poisonQueue.queueUrl,
        topics: topicVariables(config.topics),
        registryName: contracts.schemaRegistry.name,
        registryRoleArn: props.registryReaderRoleArn,
        pgHost: this.database.endpointHost,
        pgPort: POSTGRES_PORT,
        pgDatabase: contracts.postgres.database,
        // The least-privilege role; the master secret is db-admin's alone.
        pgSecretArn: this.database.consumerSecret.secretArn,
        pgTls: 'require',
        // Only a mapping with ReportBatchItemFailures reads a partial-batch answer; any other
        // would take it for a success and commit the records it names.
        reportBatchItemFailures: config.esm.mode === 'provisioned' && config.esm.reportBatchItemFailures,
      },
    });
    const role = this.consumer.role;
    const tables = [this.data.windowAggregates, this.data.explicitEvents];
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'WriteTheSinkTables',
      actions: [
        'dynamodb:DescribeTable',
        'dynamodb:GetItem',
        'dynamodb:BatchGetItem',
        'dynamodb:Query',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
        'dynamodb:BatchWriteItem',
        'dynamodb:ConditionCheckItem',
      ],
      resources: tables.map((t) => t.tableArn),
    }));
    const bucket = this.data.bucket;
    const prefixes = [contracts.bucket.storeEventsPrefix, contracts.bucket.oversizePoisonPrefix];
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'WriteTheStoreEventObjects',
      actions: ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload'],
      resources: prefixes.map((p) => bucket.arnForObjects(`${p}*`)),
    }));
    // The sink reads an object back to check a replay is byte-identical. Without s3:ListBucket S3
    // reports a missing key as 403 instead of 404, and that check is not made with an s3:prefix in
    // the request context, so the grant cannot carry a prefix condition. It lists keys of this one
    // bucket, which holds nothing but this pipeline's objects.
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'TellMissingObjectsApart',
      actions: ['s3:ListBucket'],
      resources: [bucket.bucketArn],
    }));
    for (const p of prefixes) {
      acknowledge(role, `AwsSolutions-IAM5[Resource::<${this.getLogicalId(bucket.node.defaultChild as s3.CfnBucket)}.Arn>/${p}*]`,
        `Objects are keyed by topic, partition and offsets under ${p}; the grant is limited to that prefix of one bucket`);
    }
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'SendPoisonRecordsAndFailedBatches',
      actions: ['sqs:SendMessage', 'sqs:GetQueueAttributes'],
      resources: [this.data.poisonQueue.queueArn, this.data.onFailureQueue.queueArn],
    }));
    role.addToPrincipalPolicy(keyUseStatement([dataKey], KMS_DATA_ACTIONS));
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'ReadDatabaseAndScramCredentials',
      actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
      resources: [this.database.consumerSecret.secretArn, this.scramCredentials.secretArn],
    }));
    role.addToPrincipalPolicy(keyUseStatement([databaseKey, operationsKey], ['kms:Decrypt', 'kms:DescribeKey']));
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'AssumeTheProducerRegistryReader',
      actions: ['sts:AssumeRole'],
      resources: [props.registryReaderRoleArn],
    }));

    // --- Event source mappings: one per contract topic -------------------------------------
    const subnetIds = vpc.selectSubnets(network.subnets).subnetIds;
    const mappings: Record<string, lambda.CfnEventSourceMapping> = {};
    for (const topic of config.topics) {
      const mapping = new lambda.CfnEventSourceMapping(this, `${capitalize(topic.key)}Mapping`, {
        functionName: this.consumer.function.functionArn,
        topics: [topic.name],
        startingPosition: 'TRIM_HORIZON',
        batchSize: config.esmBatchSize,
        maximumBatchingWindowInSeconds: config.esmBatchingWindowSeconds,
        selfManagedEventSource: { endpoints: { kafkaBootstrapServers: [...brokers.bootstrapServers] } },
        selfManagedKafkaEventSourceConfig: { consumerGroupId: topic.consumerGroup },
        sourceAccessConfigurations: [
          { type: 'SASL_SCRAM_512_AUTH', uri: this.scramCredentials.secretArn },
          ...subnetIds.map((subnetId) => ({ type: 'VPC_SUBNET', uri: `subnet:${subnetId}` })),
          { type: 'VPC_SECURITY_GROUP', uri: `security_group:${securityGroup.securityGroupId}` },
        ],
        destinationConfig: { onFailure: { destination: this.data.onFailureQueue.queueArn } },
        metricsConfig: { metrics: ['EventCount', 'ErrorCount', 'KafkaMetrics'] },
        ...esmModeProperties(config.esm),
      });
      // The bootstrap servers are dynamic references: the revision makes CloudFormation re-read them.
      Tags.of(mapping).add(HANDSHAKE_REVISION_TAG, String(config.handshakeRevision));
      // The pollers use the function role: its permissions and the endpoints must exist first;
      // the first batch needs the schema and the consumer's role.
      mapping.node.addDependency(role, network, brokers, this.databaseSchema.resource);
      mappings[topic.key] = mapping;
    }
    this.eventSourceMappings = mappings;

    // --- Monitoring -------------------------------------------------------------------------
    const monitoring = new ConsumerMonitoring(this, 'Monitoring', {
      function: this.consumer.function,
      onFailureQueue: this.data.onFailureQueue,
      poisonQueue: this.data.poisonQueue,
      key: dataKey,
      alarmEmail: config.alarmEmail,
    });

    new CfnOutput(this, 'ConsumerFunctionName', { value: this.consumer.function.functionName });
    new CfnOutput(this, 'StoreEventsBucketName', { value: bucket.bucketName });
    new CfnOutput(this, 'DashboardName', { value: monitoring.dashboard.dashboardName });
    new CfnOutput(this, 'AlarmTopicArn', { value: monitoring.alarmTopic.topicArn });
  }

  /** The configured zones: without this override CDK looks the account's zones up at synth. */
  override get availabilityZones(): string[] {
    return [...this.zones];
  }
}

/** The poller and error-handling properties of one mapping: none in on-demand mode (AWS's defaults). */
export function esmModeProperties(esm: EsmModeConfig): Partial<lambda.CfnEventSourceMappingProps> {
  if (esm.mode === 'on-demand') {
    return {};
  }
  return {
    provisionedPollerConfig: { minimumPollers: esm.minimumPollers, maximumPollers: esm.maximumPollers },
    maximumRetryAttempts: esm.maximumRetryAttempts,
    maximumRecordAgeInSeconds: esm.maximumRecordAgeSeconds,
    bisectBatchOnFunctionError: esm.bisectBatchOnFunctionError,
    functionResponseTypes: esm.reportBatchItemFailures ? [KAFKA_PROVISIONED_MODE.reportBatchItemFailures] : undefined,
  };
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
