import { RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { acknowledge } from './security';

export interface BrokerDiscoveryProps {
  readonly clusterArn: string;
  readonly brokerCount: number;
  /** Encrypts the handler's log group. */
  readonly logKey: kms.IKey;
}

/** One broker as MSK reports it at deploy time. */
export interface DiscoveredBroker {
  /** Broker DNS name, e.g. b-1.<cluster>.<id>.c2.kafka.<region>.amazonaws.com */
  readonly host: string;
  /** The broker's ENI address in the client subnets (the NLB target). */
  readonly ip: string;
}

/**
 * CloudFormation does not expose MSK broker endpoints, so they are read at deploy time with
 * kafka:ListNodes (host and client-subnet IP per broker, in one consistent response) and
 * kafka:GetBootstrapBrokers (the IAM and SCRAM bootstrap strings). Only the paths used are
 * returned, which keeps the response under CloudFormation's 4 KB limit.
 */
export class BrokerDiscovery extends Construct {
  readonly brokers: readonly DiscoveredBroker[];
  /** host:9098,... for in-account IAM clients. */
  readonly bootstrapIam: string;
  /** host:9096,... for SASL/SCRAM clients. */
  readonly bootstrapScram: string;

  constructor(scope: Construct, id: string, props: BrokerDiscoveryProps) {
    super(scope, id);

    const logGroup = new logs.LogGroup(this, 'Logs', {
      encryptionKey: props.logKey,
      retention: logs.RetentionDays.ONE_YEAR,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const policy = cr.AwsCustomResourcePolicy.fromStatements([
      new iam.PolicyStatement({
        actions: ['kafka:ListNodes', 'kafka:GetBootstrapBrokers'],
        resources: [props.clusterArn],
      }),
    ]);

    const indexes = [...Array(props.brokerCount).keys()];
    const hostPath = (i: number) => `NodeInfoList.${i}.BrokerNodeInfo.Endpoints.0`;
    const ipPath = (i: number) => `NodeInfoList.${i}.BrokerNodeInfo.ClientVpcIpAddress`;
    const listCall: cr.AwsSdkCall = {
      service: 'Kafka',
      action: 'ListNodes',
      parameters: { ClusterArn: props.clusterArn, MaxResults: 100 },
      physicalResourceId: cr.PhysicalResourceId.of('broker-nodes'),
      outputPaths: indexes.flatMap((i) => [hostPath(i), ipPath(i)]),
    };
    const nodes = new cr.AwsCustomResource(this, 'ListNodes', {
      onCreate: listCall,
      onUpdate: listCall,
      policy,
      installLatestAwsSdk: false,
      logGroup,
    });
    this.brokers = indexes.map((i) => ({
      host: nodes.getResponseField(hostPath(i)),
      ip: nodes.getResponseField(ipPath(i)),
    }));

    const bootstrapCall: cr.AwsSdkCall = {
      service: 'Kafka',
      action: 'GetBootstrapBrokers',
      parameters: { ClusterArn: props.clusterArn },
      physicalResourceId: cr.PhysicalResourceId.of('bootstrap-brokers'),
      outputPaths: ['BootstrapBrokerStringSaslIam', 'BootstrapBrokerStringSaslScram'],
    };
    const bootstrap = new cr.AwsCustomResource(this, 'GetBootstrapBrokers', {
      onCreate: bootstrapCall,
      onUpdate: bootstrapCall,
      policy,
      installLatestAwsSdk: false,
      logGroup,
    });
    this.bootstrapIam = bootstrap.getResponseField('BootstrapBrokerStringSaslIam');
    this.bootstrapScram = bootstrap.getResponseField('BootstrapBrokerStringSaslScram');
  }
}

/** Acknowledgements for the singleton handler CDK creates for every AwsCustomResource in a stack. */
export function acknowledgeAwsCustomResourceSingleton(scope: Construct): void {
  acknowledge(
    scope,
    'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    'CDK-generated AwsCustomResource handler; its role is created by the framework with the basic execution policy',
  );
  acknowledge(
    scope,
    'AwsSolutions-L1',
    'CDK-generated AwsCustomResource handler; aws-cdk-lib pins its Node.js runtime',
  );
}
