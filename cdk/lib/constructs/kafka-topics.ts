import { CustomResource, Duration } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { LambdaArchitectureName, LogLevel, ResolvedTopic, TopicDeletionPolicy } from '../config';
import { MSK_IAM_PORT } from './msk-ports';
import { TopicAdminFunction } from './functions';
import { rustCustomResourceProvider } from './rust-provider';

/** The consumer account's SASL/SCRAM user and the consumer groups its event source mappings use. */
export interface ConsumerAccess {
  readonly userName: string;
  readonly groups: readonly string[];
}

export interface KafkaTopicsProps {
  readonly topics: readonly ResolvedTopic[];
  /** IAM bootstrap string (host:9098,...), discovered at deploy time. */
  readonly bootstrapServers: string;
  readonly clusterArn: string;
  /** ARN of each topic, for the scoped kafka-cluster permissions. */
  readonly topicArn: (topicName: string) => string;
  readonly deletion: TopicDeletionPolicy;
  /** Read-only Kafka ACLs granted to the consumer's SCRAM user (topics, groups, cluster configs). */
  readonly consumerAccess: ConsumerAccess;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly brokerSecurityGroup: ec2.ISecurityGroup;
  readonly key: kms.IKey;
  readonly architecture: LambdaArchitectureName;
  readonly logLevel: LogLevel;
}

/**
 * Creates the contract's topics through a CloudFormation custom resource backed by the Rust
 * `topic-admin` function (Kafka protocol, MSK IAM auth): partitions, replication factor and
 * per-topic config, plus read-only ACLs for the consumer account's SCRAM user. Create and Update
 * are idempotent: an existing topic with the wanted partition count is left alone and only drifted
 * configs are set. Delete keeps topics and ACLs unless `deletion` is `delete` (see docs/deploy.md). Anything that consumes the topics depends on
 * `resource`, so an event source mapping never starts before its topic exists.
 */
export class KafkaTopics extends Construct {
  readonly resource: CustomResource;
  readonly handler: TopicAdminFunction;

  constructor(scope: Construct, id: string, props: KafkaTopicsProps) {
    super(scope, id);

    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'topic-admin function: IAM-authenticated Kafka to the brokers only',
      allowAllOutbound: false,
    });
    securityGroup.addEgressRule(props.brokerSecurityGroup, ec2.Port.tcp(MSK_IAM_PORT), 'Kafka (IAM) to the brokers');
    props.brokerSecurityGroup.addIngressRule(securityGroup, ec2.Port.tcp(MSK_IAM_PORT), 'Kafka (IAM) from topic-admin');

    this.handler = new TopicAdminFunction(this, 'Handler', {
      description: 'CloudFormation custom resource: creates the pipeline Kafka topics idempotently',
      architecture: props.architecture,
      logLevel: props.logLevel,
      settings: {},
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      securityGroups: [securityGroup],
      encryptionKey: props.key,
      timeout: Duration.minutes(5),
    });
    const topicArns = props.topics.map((t) => props.topicArn(t.name));
    this.handler.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'ConnectAndManageConsumerAcls',
      // AlterCluster is what MSK IAM checks for CreateAcls/DeleteAcls.
      actions: ['kafka-cluster:Connect', 'kafka-cluster:DescribeCluster', 'kafka-cluster:AlterCluster'],
      resources: [props.clusterArn],
    }));
    this.handler.role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'ManageThePipelineTopics',
      actions: [
        'kafka-cluster:CreateTopic',
        'kafka-cluster:DescribeTopic',
        'kafka-cluster:DescribeTopicDynamicConfiguration',
        'kafka-cluster:AlterTopicDynamicConfiguration',
        ...(props.deletion === 'delete' ? ['kafka-cluster:DeleteTopic'] : []),
      ],
      resources: topicArns,
    }));

    const provider = rustCustomResourceProvider(this, { handler: this.handler, key: props.key });

    this.resource = new CustomResource(this, 'Resource', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::KafkaTopics',
      properties: {
        BootstrapServers: props.bootstrapServers,
        Auth: 'iam',
        DeletionPolicy: props.deletion,
        Topics: props.topics.map((t) => ({
          Name: t.name,
          Partitions: t.partitions,
          ReplicationFactor: t.replicationFactor,
          Config: t.config,
        })),
        ConsumerAccess: {
          UserName: props.consumerAccess.userName,
          Groups: props.consumerAccess.groups,
        },
      },
    });
  }
}
