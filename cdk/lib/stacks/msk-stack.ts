import { Aws, CustomResource, Fn, RemovalPolicy, Stack, StackProps } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as msk from 'aws-cdk-lib/aws-msk';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { MSK_STORAGE_AUTO_SCALING } from '../aws-facts';
import { PipelineConfig } from '../config';
import { PipelineContracts } from '../contracts';
import { acknowledgeAwsCustomResourceSingleton, BrokerDiscovery, DiscoveredBroker } from '../constructs/broker-discovery';
import { KafkaTopics } from '../constructs/kafka-topics';
import { acknowledge, checkovSkip, pipelineKey } from '../constructs/security';

export interface MskStackProps extends StackProps {
  readonly config: PipelineConfig;
  readonly contracts: PipelineContracts;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly logKey: kms.IKey;
}

/**
 * The MSK provisioned cluster and its topics.
 *
 * - TLS only between clients and brokers and inside the cluster; storage encrypted with a CMK.
 * - SASL/SCRAM (port 9096) for the cross-account consumer, IAM (port 9098) for in-account
 *   producers; unauthenticated access off.
 * - Broker logs to an encrypted CloudWatch log group.
 * - Broker endpoints discovered at deploy time (BrokerDiscovery) and topics created by the Rust
 *   topic-admin custom resource (KafkaTopics).
 */
export class MskStack extends Stack {
  readonly cluster: msk.CfnCluster;
  readonly clusterName: string;
  readonly brokerSecurityGroup: ec2.ISecurityGroup;
  /** The SCRAM user the consumer account's event source mapping signs in as (AmazonMSK_ secret). */
  readonly scramSecret: secretsmanager.ISecret;
  readonly brokers: readonly DiscoveredBroker[];
  readonly bootstrapIam: string;
  readonly bootstrapScram: string;
  /** Exists once every contract topic exists. */
  readonly topics: CustomResource;

  constructor(scope: Construct, id: string, props: MskStackProps) {
    super(scope, id, props);
    const { config, contracts } = props;
    this.clusterName = config.msk.clusterName;

    const dataKey = pipelineKey(this, 'ClusterKey', {
      description: 'MSK broker storage encryption at rest',
      retain: false,
    });
    // MSK rejects SCRAM secrets encrypted with the AWS managed key, so the secret has its own CMK.
    const scramKey = pipelineKey(this, 'ScramKey', {
      description: 'MSK SASL/SCRAM user secrets',
      retain: false,
    });

    const brokerLogs = new logs.LogGroup(this, 'BrokerLogs', {
      encryptionKey: props.logKey,
      retention: logs.RetentionDays.ONE_YEAR,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const brokerSecurityGroup = new ec2.SecurityGroup(this, 'BrokerSecurityGroup', {
      vpc: props.vpc,
      description: 'MSK brokers: ingress only from the pipeline functions and the PrivateLink NLBs',
      allowAllOutbound: false,
    });
    this.brokerSecurityGroup = brokerSecurityGroup;

    const replicationDefault = Math.max(...config.topics.map((t) => t.replicationFactor));
    const serverProperties = [
      // Topics come only from the topic-admin custom resource, never from a typo in a client.
      'auto.create.topics.enable=false',
      `default.replication.factor=${replicationDefault}`,
      'num.partitions=1',
      'unclean.leader.election.enable=false',
      // SCRAM users (the consumer account) get only what topic-admin's ACLs grant. IAM-authenticated
      // clients are governed by their IAM policies, not by ACLs.
      'allow.everyone.if.no.acl.found=false',
    ].join('\n');
    const configuration = new msk.CfnConfiguration(this, 'Configuration', {
      name: `${config.msk.clusterName}-config`,
      description: 'Pipeline broker defaults',
      kafkaVersionsList: [config.msk.kafkaVersion],
      serverProperties,
    });

    this.cluster = new msk.CfnCluster(this, 'Cluster', {
      clusterName: config.msk.clusterName,
      kafkaVersion: config.msk.kafkaVersion,
      numberOfBrokerNodes: config.msk.brokerCount,
      brokerNodeGroupInfo: {
        clientSubnets: props.vpc.selectSubnets(props.subnets).subnetIds,
        instanceType: config.msk.instanceType,
        securityGroups: [brokerSecurityGroup.securityGroupId],
        storageInfo: { ebsStorageInfo: { volumeSize: config.msk.volumeSizeGiB } },
        connectivityInfo: { publicAccess: { type: 'DISABLED' } },
      },
      encryptionInfo: {
        encryptionAtRest: { dataVolumeKmsKeyId: dataKey.keyArn },
        encryptionInTransit: { clientBroker: 'TLS', inCluster: true },
      },
      clientAuthentication: {
        sasl: { iam: { enabled: true }, scram: { enabled: true } },
        unauthenticated: { enabled: false },
      },
      configurationInfo: { arn: configuration.attrArn, revision: configuration.attrLatestRevisionRevision },
      loggingInfo: {
        brokerLogs: { cloudWatchLogs: { enabled: true, logGroup: brokerLogs.logGroupName } },
      },
      enhancedMonitoring: 'PER_BROKER',
    });
    this.cluster.applyRemovalPolicy(RemovalPolicy.DESTROY);
    acknowledge(
      this.cluster,
      'AwsSolutions-MSK6',
      'Broker logs go to CloudWatch Logs (loggingInfo.brokerLogs); S3 and Firehose delivery would duplicate them',
    );

    // Broker storage grows before it fills up (MSK cannot shrink it, so scale-in stays off). No
    // role: Application Auto Scaling uses its service-linked role for MSK.
    const storageScaling = new appscaling.CfnScalableTarget(this, 'BrokerStorageScaling', {
      serviceNamespace: MSK_STORAGE_AUTO_SCALING.serviceNamespace,
      scalableDimension: MSK_STORAGE_AUTO_SCALING.scalableDimension,
      resourceId: this.cluster.attrArn,
      minCapacity: config.msk.volumeSizeGiB,
      maxCapacity: config.msk.maxVolumeSizeGiB,
    });
    new appscaling.CfnScalingPolicy(this, 'BrokerStoragePolicy', {
      policyName: `${config.msk.clusterName}-broker-storage`,
      policyType: 'TargetTrackingScaling',
      scalingTargetId: storageScaling.ref,
      targetTrackingScalingPolicyConfiguration: {
        predefinedMetricSpecification: { predefinedMetricType: MSK_STORAGE_AUTO_SCALING.predefinedMetric },
        targetValue: BROKER_STORAGE_TARGET_PERCENT,
        disableScaleIn: true,
      },
    });

    const scramUserName = `${contracts.project}-consumer`;
    const scramSecret = new secretsmanager.Secret(this, 'ScramSecret', {
      // MSK only associates secrets whose name starts with AmazonMSK_.
      secretName: `AmazonMSK_${config.msk.clusterName}_consumer`,
      description: 'SASL/SCRAM user of the consumer account event source mapping',
      encryptionKey: scramKey,
      generateSecretString: {
        secretStringTemplate: JSON.stringify({ username: scramUserName }),
        generateStringKey: 'password',
        excludePunctuation: true,
        passwordLength: 40,
      },
    });
    this.scramSecret = scramSecret;
    acknowledge(
      scramSecret,
      'AwsSolutions-SMG4',
      'Rotating the SCRAM password needs a re-deploy of consumer-stack to copy it (docs/deploy.md); not automated',
    );
    checkovSkip(
      scramSecret.node.defaultChild as secretsmanager.CfnSecret,
      'CKV2_AWS_57',
      'SCRAM password rotation is a documented manual step: the consumer account copy is refreshed by a re-deploy',
    );
    const scramAssociation = new msk.CfnBatchScramSecret(this, 'ScramAssociation', {
      clusterArn: this.cluster.attrArn,
      secretArnList: [scramSecret.secretArn],
    });

    const discovery = new BrokerDiscovery(this, 'Brokers', {
      clusterArn: this.cluster.attrArn,
      brokerCount: config.msk.brokerCount,
      logKey: props.logKey,
      revision: config.handshakeRevision,
    });
    discovery.node.addDependency(scramAssociation);
    this.brokers = discovery.brokers;
    this.bootstrapIam = discovery.bootstrapIam;
    this.bootstrapScram = discovery.bootstrapScram;
    acknowledgeAwsCustomResourceSingleton(this);

    const topics = new KafkaTopics(this, 'Topics', {
      topics: config.topics,
      bootstrapServers: this.bootstrapIam,
      clusterArn: this.cluster.attrArn,
      topicArn: (name) => this.topicArn(name),
      deletion: config.topicDeletion,
      consumerAccess: { userName: scramUserName, groups: config.topics.map((t) => t.consumerGroup) },
      vpc: props.vpc,
      subnets: props.subnets,
      brokerSecurityGroup,
      key: props.logKey,
      architecture: config.lambdaArchitecture,
      logLevel: config.logLevel,
    });
    this.topics = topics.resource;
  }

  /** The cluster's UUID, the last segment of its ARN. */
  get clusterUuid(): string {
    return Fn.select(2, Fn.split('/', this.cluster.attrArn));
  }

  /** arn:...:topic/<cluster name>/<cluster uuid>/<topic>, the resource of kafka-cluster:*Topic and *Data actions. */
  topicArn(topicName: string): string {
    return `arn:${Aws.PARTITION}:kafka:${this.region}:${this.account}:topic/${this.clusterName}/${this.clusterUuid}/${topicName}`;
  }

  /** arn:...:group/<cluster name>/<cluster uuid>/<group>. */
  groupArn(groupName: string): string {
    return `arn:${Aws.PARTITION}:kafka:${this.region}:${this.account}:group/${this.clusterName}/${this.clusterUuid}/${groupName}`;
  }
}

/** Storage utilization the auto scaling policy keeps brokers under (MSK recommends 50–60 %). */
export const BROKER_STORAGE_TARGET_PERCENT = 60;
