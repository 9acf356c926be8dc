import { Aws, CfnOutput, Duration, Stack, StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { GLUE_SCHEMA_VERSION_BY_ID } from '../aws-facts';
import { PipelineConfig } from '../config';
import { PipelineContracts, readSchemaFile } from '../contracts';
import { MSK_IAM_PORT } from '../constructs/msk-ports';
import { ProducerFunction, topicVariables } from '../constructs/functions';
import { acknowledge, nagEnv, pipelineKey } from '../constructs/security';
import { MskStack } from './msk-stack';

export interface ProducerStackProps extends StackProps {
  readonly config: PipelineConfig;
  readonly contracts: PipelineContracts;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly endpointSecurityGroup: ec2.ISecurityGroup;
  readonly logKey: kms.IKey;
  readonly msk: MskStack;
}

/** Name of the role the consumer account assumes to read schemas; both sides derive it from the contract. */
export function registryReaderRoleName(contracts: PipelineContracts): string {
  return `${contracts.project}-registry-reader`;
}

/** Prefix of the consumer function's role name, which the registry reader role trusts. */
export function consumerRoleNamePrefix(contracts: PipelineContracts): string {
  return `${contracts.project}-consumer-`;
}

/**
 * The producer application: Glue Schema Registry with the contract's schemas, the role the
 * consumer account assumes to read them, and the Rust producer Lambda on an EventBridge schedule.
 *
 * `cdk deploy producer-stack` deploys the whole producer side: this stack depends on
 * producer-vpc, producer-msk and producer-endpoint-service.
 */
export class ProducerStack extends Stack {
  readonly registry: glue.CfnRegistry;
  readonly registryReaderRole: iam.Role;
  readonly producer: ProducerFunction;

  constructor(scope: Construct, id: string, props: ProducerStackProps) {
    super(scope, id, props);
    const { config, contracts, msk } = props;

    // --- Glue Schema Registry ------------------------------------------------------------
    this.registry = new glue.CfnRegistry(this, 'Registry', {
      name: contracts.schemaRegistry.name,
      description: 'Avro schemas of the pipeline topics (contracts/schemas)',
    });
    for (const [schemaName, schema] of Object.entries(contracts.schemas)) {
      const [first, ...later] = schema.versions;
      const cfnSchema = new glue.CfnSchema(this, `Schema${schemaName}`, {
        name: schemaName,
        registry: { arn: this.registry.attrArn },
        dataFormat: 'AVRO',
        compatibility: schema.compatibility,
        schemaDefinition: readSchemaFile(first),
        description: `${schemaName}, versions from contracts/${first}`,
      });
      // Register every committed version in order; Glue checks each against the mode above.
      let previous: glue.CfnSchema | glue.CfnSchemaVersion = cfnSchema;
      later.forEach((file, i) => {
        const version: glue.CfnSchemaVersion = new glue.CfnSchemaVersion(this, `Schema${schemaName}V${i + 2}`, {
          schema: { schemaArn: cfnSchema.attrArn },
          schemaDefinition: readSchemaFile(file),
        });
        version.addResourceDependency(previous);
        previous = version;
      });
    }
    const registryArn = this.registry.attrArn;
    const schemasInRegistry = `arn:${Aws.PARTITION}:glue:${this.region}:${this.account}:schema/${contracts.schemaRegistry.name}/*`;
    const { account: nagAccount, region: nagRegion } = nagEnv(this);
    const schemasFinding = `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:glue:${nagRegion}:${nagAccount}:schema/${contracts.schemaRegistry.name}/*]`;

    // --- Cross-account schema reader ---------------------------------------------------
    const consumerAccount = config.consumer.account ?? Aws.ACCOUNT_ID;
    this.registryReaderRole = new iam.Role(this, 'RegistryReaderRole', {
      roleName: registryReaderRoleName(contracts),
      description: 'Assumed by the consumer function (consumer account) to read schema versions of this registry',
      maxSessionDuration: Duration.hours(1),
      assumedBy: new iam.AccountPrincipal(consumerAccount).withConditions({
        ArnLike: {
          'aws:PrincipalArn': `arn:${Aws.PARTITION}:iam::${consumerAccount}:role/${consumerRoleNamePrefix(contracts)}*`,
        },
      }),
    });
    // The consumer resolves each record's schema version id: that lookup is only authorised on "*".
    this.registryReaderRole.addToPrincipalPolicy(schemaVersionByIdStatement());
    acknowledge(this.registryReaderRole, 'AwsSolutions-IAM5[Resource::*]', GLUE_SCHEMA_VERSION_BY_ID.reason);

    // --- Producer function ---------------------------------------------------------------
    const functionKey = pipelineKey(this, 'FunctionKey', {
      description: 'Producer function environment, its log group and its EventBridge dead-letter queue',
      retain: false,
      // The function's log group is encrypted with this key: CloudWatch Logs must be allowed to use it.
      allowCloudWatchLogs: true,
    });
    const securityGroup = new ec2.SecurityGroup(this, 'ProducerSecurityGroup', {
      vpc: props.vpc,
      description: 'Producer function: Kafka (IAM) to the brokers and HTTPS to the VPC endpoints',
      allowAllOutbound: false,
    });
    securityGroup.addEgressRule(msk.brokerSecurityGroup, ec2.Port.tcp(MSK_IAM_PORT), 'Kafka (IAM) to the brokers');
    securityGroup.addEgressRule(props.endpointSecurityGroup, ec2.Port.tcp(443), 'AWS APIs through the VPC endpoints');
    new ec2.CfnSecurityGroupIngress(this, 'BrokerIngressFromProducer', {
      groupId: msk.brokerSecurityGroup.securityGroupId,
      sourceSecurityGroupId: securityGroup.securityGroupId,
      ipProtocol: 'tcp',
      fromPort: MSK_IAM_PORT,
      toPort: MSK_IAM_PORT,
      description: 'Kafka (IAM) from the producer function',
    });

    this.producer = new ProducerFunction(this, 'Producer', {
      description: 'Publishes simulated sensor readings, store events and explicit events to MSK',
      architecture: config.lambdaArchitecture,
      logLevel: config.logLevel,
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      securityGroups: [securityGroup],
      encryptionKey: functionKey,
      timeout: Duration.minutes(2),
      anyResourceReasons: [GLUE_SCHEMA_VERSION_BY_ID.reason],
      settings: {
        kafkaBootstrapServers: msk.bootstrapIam,
        kafkaAuth: 'iam',
        kafkaTls: true,
        topics: topicVariables(config.topics),
        registryName: contracts.schemaRegistry.name,
        defaultFormat: 'avro',
      },
    });
    const role = this.producer.role;
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'ConnectToTheCluster',
      actions: ['kafka-cluster:Connect', 'kafka-cluster:DescribeCluster', 'kafka-cluster:WriteDataIdempotently'],
      resources: [msk.cluster.attrArn],
    }));
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'WriteThePipelineTopics',
      actions: ['kafka-cluster:DescribeTopic', 'kafka-cluster:WriteData'],
      resources: config.topics.map((t) => msk.topicArn(t.name)),
    }));
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'UseThePipelineRegistry',
      actions: [
        'glue:GetRegistry',
        'glue:GetSchema',
        'glue:CreateSchema',
        'glue:GetSchemaByDefinition',
        'glue:RegisterSchemaVersion',
      ],
      resources: [registryArn, schemasInRegistry],
    }));
    // Waiting until a registered version is AVAILABLE looks it up by its id (acknowledged through
    // anyResourceReasons above).
    role.addToPrincipalPolicy(schemaVersionByIdStatement());
    acknowledge(
      role,
      schemasFinding,
      'The producer registers schemas inferred from explicit events at run time; the wildcard stays inside the pipeline registry',
    );
    // The producer publishes only once the topics exist.
    this.producer.function.node.addDependency(msk.topics);

    // --- Schedule ------------------------------------------------------------------------
    const scheduleDlq = new sqs.Queue(this, 'ScheduleDeadLetters', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: functionKey,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledge(
      scheduleDlq,
      'AwsSolutions-SQS3',
      'This queue is itself the dead-letter queue of the EventBridge schedule targets',
    );
    functionKey.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'EventBridgeWritesToTheEncryptedDeadLetterQueue',
      principals: [new iam.ServicePrincipal('events.amazonaws.com')],
      actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
      resources: ['*'],
      conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
    }));
    const rule = new events.Rule(this, 'Schedule', {
      description: 'Runs the producer simulations',
      schedule: events.Schedule.expression(config.producerSchedule.expression),
      enabled: config.producerSchedule.enabled,
    });
    for (const request of config.producerSchedule.requests) {
      rule.addTarget(new targets.LambdaFunction(this.producer.function, {
        event: events.RuleTargetInput.fromObject(request),
        deadLetterQueue: scheduleDlq,
        retryAttempts: 2,
        maxEventAge: Duration.hours(1),
      }));
    }

    new CfnOutput(this, 'ProducerFunctionName', { value: this.producer.function.functionName });
    new CfnOutput(this, 'RegistryReaderRoleArn', { value: this.registryReaderRole.roleArn });
  }
}

/** glue:GetSchemaVersion on "*" in a statement of its own, so nothing else rides on the wildcard. */
function schemaVersionByIdStatement(): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid: 'GetSchemaVersionsById',
    actions: [GLUE_SCHEMA_VERSION_BY_ID.action],
    resources: ['*'],
  });
}
