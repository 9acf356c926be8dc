import { CustomResource, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { MSK_BROKER_HOST } from '../aws-facts';
import { acknowledge, acknowledgeProviderFramework, checkovSkip, markOwned } from './security';

export interface BrokerDiscoveryProps {
  readonly clusterArn: string;
  readonly brokerCount: number;
  /** Encrypts the handlers' log groups. */
  readonly logKey: kms.IKey;
  /** config handshakeRevision: bumping it makes the discovery run again. */
  readonly revision: number;
}

/** One broker as MSK reports it at deploy time. */
export interface DiscoveredBroker {
  /** MSK broker id, 1..N; NLB n, endpoint service n and handshake keys broker_n_* belong to broker n. */
  readonly id: number;
  /** Broker DNS name, e.g. b-1.democluster1.w7j4hk.c2.kafka.us-east-1.amazonaws.com */
  readonly host: string;
  /** The broker's ENI address in the client subnets (the NLB target). */
  readonly ip: string;
}

/** The part of a kafka:ListNodes NodeInfo entry the discovery reads (API_ListNodes, BrokerNodeInfo). */
export interface ListedNode {
  readonly BrokerNodeInfo?: {
    readonly BrokerId?: number;
    readonly ClientVpcIpAddress?: string;
    readonly Endpoints?: readonly string[];
  };
}

/**
 * Keys the brokers of a kafka:ListNodes listing by their broker id: `Broker<id>Host` and
 * `Broker<id>Ip` for ids 1..brokerCount. The response order is not documented, so the position of
 * an entry means nothing. Throws (failing the deployment with the reason) unless every id from 1
 * to brokerCount appears exactly once with a `b-<id>.` host and an IPv4 address.
 *
 * Self-contained on purpose: the deployed handler is built from this function's source
 * (discoveryHandlerSource), so the unit tests run the code that runs at deploy time.
 */
export function brokersById(nodes: readonly ListedNode[], brokerCount: number): Record<string, string> {
  const out: Record<string, string> = {};
  const seen = new Set<number>();
  for (const node of nodes) {
    const info = node.BrokerNodeInfo;
    if (!info) {
      continue; // not a broker (e.g. a ZooKeeper or controller node)
    }
    const id = Number(info.BrokerId);
    const host = (info.Endpoints ?? [])[0];
    const ip = info.ClientVpcIpAddress;
    if (!Number.isInteger(id) || id < 1 || id > brokerCount) {
      throw new Error(`kafka:ListNodes lists broker id ${info.BrokerId}, outside 1..${brokerCount} (msk.brokerCount)`);
    }
    if (seen.has(id)) {
      throw new Error(`kafka:ListNodes lists broker id ${id} twice`);
    }
    if (typeof host !== 'string' || !host.startsWith(`b-${id}.`)) {
      throw new Error(`broker ${id} has endpoint ${JSON.stringify(host)}, expected b-${id}.<cluster domain>`);
    }
    if (typeof ip !== 'string' || !/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) {
      throw new Error(`broker ${id} has client VPC address ${JSON.stringify(ip)}, expected an IPv4 address`);
    }
    seen.add(id);
    out[`Broker${id}Host`] = host;
    out[`Broker${id}Ip`] = ip;
  }
  if (seen.size !== brokerCount) {
    throw new Error(`kafka:ListNodes lists ${seen.size} brokers, msk.brokerCount is ${brokerCount}`);
  }
  return out;
}

/**
 * Source of the discovery handler (Node.js, AWS SDK v3 as shipped in the Lambda runtime): pages
 * through kafka:ListNodes and returns brokersById of the whole listing to CloudFormation.
 */
export function discoveryHandlerSource(): string {
  return [
    `const brokersById = ${brokersById.toString()};`,
    'const { KafkaClient, ListNodesCommand } = require("@aws-sdk/client-kafka");',
    'exports.handler = async (event) => {',
    '  const props = event.ResourceProperties;',
    '  if (event.RequestType === "Delete") {',
    '    return { PhysicalResourceId: event.PhysicalResourceId };',
    '  }',
    '  const client = new KafkaClient({});',
    '  const nodes = [];',
    '  let token;',
    '  do {',
    '    const page = await client.send(new ListNodesCommand({ ClusterArn: props.ClusterArn, MaxResults: 100, NextToken: token }));',
    '    nodes.push(...(page.NodeInfoList || []));',
    '    token = page.NextToken;',
    '  } while (token);',
    '  return { PhysicalResourceId: props.ClusterArn, Data: brokersById(nodes, Number(props.BrokerCount)) };',
    '};',
  ].join('\n');
}

/**
 * CloudFormation does not expose MSK broker endpoints, so they are read at deploy time:
 * kafka:ListNodes (host and client-subnet IP per broker) by a small handler that keys each broker
 * by its BrokerId, and kafka:GetBootstrapBrokers (the IAM and SCRAM bootstrap strings).
 *
 * Why a handler rather than AwsCustomResource output paths: output paths address list positions
 * (`NodeInfoList.0...`), and CloudFormation has no expression that finds a list entry by a field,
 * so a reordered response would silently point NLB n at another broker.
 */
export class BrokerDiscovery extends Construct {
  /** Ordered by broker id: brokers[0] is broker 1. */
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
    const role = new iam.Role(this, 'ListNodesRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Broker discovery handler: lists the MSK cluster nodes at deploy time',
    });
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'WriteOwnLogGroup',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn],
    }));
    role.addToPrincipalPolicy(new iam.PolicyStatement({
      sid: 'ListTheClusterNodes',
      actions: ['kafka:ListNodes'],
      resources: [props.clusterArn],
    }));
    const handler = new lambda.Function(this, 'ListNodesHandler', {
      description: 'CloudFormation custom resource: MSK brokers keyed by broker id (kafka:ListNodes)',
      runtime: lambda.Runtime.NODEJS_24_X,
      handler: 'index.handler',
      code: lambda.Code.fromInline(discoveryHandlerSource()),
      role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      timeout: Duration.minutes(1),
      memorySize: 256,
    });
    markOwned(handler);
    handler.node.addDependency(role);
    const cfnHandler = handler.node.defaultChild as lambda.CfnFunction;
    const why = 'Deploy-time custom resource handler called synchronously by CloudFormation';
    checkovSkip(cfnHandler, 'CKV_AWS_115', `${why}; reserved concurrency would only take capacity from the account pool`);
    checkovSkip(cfnHandler, 'CKV_AWS_116', `${why}; CloudFormation receives its failures, a DLQ would never be used`);
    checkovSkip(cfnHandler, 'CKV_AWS_117', `${why}; it calls the public kafka:ListNodes API, which the isolated VPC cannot reach`);
    checkovSkip(cfnHandler, 'CKV_AWS_50', `${why}; its JSON logs are enough, X-Ray is not used`);

    const providerLogs = new logs.LogGroup(this, 'ProviderLogs', {
      encryptionKey: props.logKey,
      retention: logs.RetentionDays.ONE_YEAR,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const provider = new cr.Provider(this, 'Provider', {
      onEventHandler: handler,
      logGroup: providerLogs,
      providerFunctionEnvEncryption: props.logKey,
    });
    acknowledgeProviderFramework(provider);
    acknowledge(
      provider,
      `AwsSolutions-IAM5[Resource::<${Stack.of(this).getLogicalId(cfnHandler)}.Arn>:*]`,
      'The provider framework may invoke any version of the discovery handler; the grant is scoped to that one function',
    );
    // A new logical id, not the former AwsCustomResource's: CloudFormation cannot change a resource's type in place.
    const nodes = new CustomResource(this, 'NodesById', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::MskBrokers',
      properties: { ClusterArn: props.clusterArn, BrokerCount: props.brokerCount, Revision: props.revision },
    });
    const ids = [...Array(props.brokerCount).keys()].map((i) => i + MSK_BROKER_HOST.firstBrokerId);
    this.brokers = ids.map((brokerId) => ({
      id: brokerId,
      host: nodes.getAttString(`Broker${brokerId}Host`),
      ip: nodes.getAttString(`Broker${brokerId}Ip`),
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
      policy: cr.AwsCustomResourcePolicy.fromStatements([new iam.PolicyStatement({
        actions: ['kafka:GetBootstrapBrokers'],
        resources: [props.clusterArn],
      })]),
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
