import { Aws, CfnOutput, Duration, SecretValue, Stack, StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as elbv2Targets from 'aws-cdk-lib/aws-elasticloadbalancingv2-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { PipelineConfig } from '../config';
import { PipelineContracts } from '../contracts';
import { clusterDomainExpression, HANDSHAKE_KEYS } from '../constructs/handshake';
import { MSK_SCRAM_PORT } from '../constructs/msk-ports';
import { acknowledge, checkovSkip, pipelineKey } from '../constructs/security';
import { MskStack } from './msk-stack';

export interface EndpointServiceStackProps extends StackProps {
  readonly config: PipelineConfig;
  readonly contracts: PipelineContracts;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly msk: MskStack;
}

/**
 * Exposes each MSK broker to the consumer account over PrivateLink and publishes the handshake.
 *
 * Per broker: an internal NLB (TCP passthrough on the SCRAM/TLS port, IP target = the broker's
 * ENI) and a VPC endpoint service whose only allowed principal is the consumer account.
 *
 * The handshake is one Secrets Manager secret, encrypted with a CMK whose key policy and the
 * secret's resource policy grant only the consumer account. It carries everything the consumer
 * stack needs: broker host names and ports, endpoint service names, the cluster's DNS domain and
 * a copy of the SCRAM credentials. The consumer stack takes its ARN as its one input.
 */
export class EndpointServiceStack extends Stack {
  readonly handshakeSecret: secretsmanager.ISecret;
  readonly endpointServices: readonly ec2.VpcEndpointService[];

  constructor(scope: Construct, id: string, props: EndpointServiceStackProps) {
    super(scope, id, props);
    const { config, msk } = props;
    const consumerAccount = config.consumer.account ?? Aws.ACCOUNT_ID;

    const nlbSecurityGroup = new ec2.SecurityGroup(this, 'NlbSecurityGroup', {
      vpc: props.vpc,
      description: 'PrivateLink NLBs: no inbound rules (PrivateLink traffic is governed by the endpoint services), egress to brokers on the SCRAM port',
      allowAllOutbound: false,
    });
    nlbSecurityGroup.addEgressRule(msk.brokerSecurityGroup, ec2.Port.tcp(MSK_SCRAM_PORT), 'Kafka (SCRAM/TLS) to the brokers');
    new ec2.CfnSecurityGroupIngress(this, 'BrokerIngressFromNlbs', {
      groupId: msk.brokerSecurityGroup.securityGroupId,
      sourceSecurityGroupId: nlbSecurityGroup.securityGroupId,
      ipProtocol: 'tcp',
      fromPort: MSK_SCRAM_PORT,
      toPort: MSK_SCRAM_PORT,
      description: 'Kafka (SCRAM/TLS) from the PrivateLink NLBs',
    });

    const consumerPrincipal = new iam.ArnPrincipal(`arn:${Aws.PARTITION}:iam::${consumerAccount}:root`);
    const services: ec2.VpcEndpointService[] = [];
    // NLB n and endpoint service n serve broker id n (BrokerDiscovery keys brokers by id).
    for (const broker of msk.brokers) {
      const n = broker.id;
      const nlb = new elbv2.NetworkLoadBalancer(this, `Broker${n}Nlb`, {
        vpc: props.vpc,
        vpcSubnets: props.subnets,
        internetFacing: false,
        crossZoneEnabled: true,
        securityGroups: [nlbSecurityGroup],
        enforceSecurityGroupInboundRulesOnPrivateLinkTraffic: false,
      });
      nlb.addListener('Kafka', {
        port: MSK_SCRAM_PORT,
        protocol: elbv2.Protocol.TCP,
        // Longer than the brokers' idle limit, so the broker (not the NLB, silently) closes idle connections.
        tcpIdleTimeout: Duration.seconds(BROKER_NLB_IDLE_TIMEOUT_SECONDS),
        defaultTargetGroups: [
          new elbv2.NetworkTargetGroup(this, `Broker${n}Target`, {
            vpc: props.vpc,
            port: MSK_SCRAM_PORT,
            protocol: elbv2.Protocol.TCP,
            targetType: elbv2.TargetType.IP,
            targets: [new elbv2Targets.IpTarget(broker.ip, MSK_SCRAM_PORT)],
            deregistrationDelay: Duration.seconds(30),
            healthCheck: { protocol: elbv2.Protocol.TCP, interval: Duration.seconds(10) },
          }),
        ],
      });
      acknowledge(
        nlb,
        'AwsSolutions-ELB2',
        'TCP passthrough NLB: access logs only exist for TLS listeners; connections are recorded by VPC flow logs',
      );
      checkovSkip(
        nlb.node.defaultChild as elbv2.CfnLoadBalancer,
        'CKV_AWS_91',
        'TCP passthrough NLB: access logs only exist for TLS listeners; VPC flow logs record its traffic',
      );
      checkovSkip(
        nlb.node.defaultChild as elbv2.CfnLoadBalancer,
        'CKV_AWS_150',
        'Deletion protection would block cdk destroy; the NLB holds no state and is recreated by a deploy',
      );

      const service = new ec2.VpcEndpointService(this, `Broker${n}Service`, {
        vpcEndpointServiceLoadBalancers: [nlb],
        acceptanceRequired: config.endpointAcceptanceRequired,
        allowedPrincipals: [consumerPrincipal],
      });
      if (!config.endpointAcceptanceRequired) {
        checkovSkip(
          service.node.children.find((c) => c instanceof ec2.CfnVPCEndpointService) as ec2.CfnVPCEndpointService,
          'CKV_AWS_123',
          'Only the consumer account is an allowed principal; manual acceptance is a config switch (endpointAcceptanceRequired)',
        );
      }
      services.push(service);
    }
    this.endpointServices = services;

    // Only the consumer account's CloudFormation execution role (CDK bootstrap, any qualifier) reads
    // the handshake: CloudFormation resolves the dynamic references with the stack's service role.
    const consumerDeployRole = consumerDeployRoleArnPattern(this.partition, consumerAccount, this.region);
    // The handshake key: readable by the consumer account through Secrets Manager only.
    const handshakeKey = pipelineKey(this, 'HandshakeKey', {
      description: 'Encrypts the PrivateLink handshake secret shared with the consumer account',
      retain: false,
    });
    handshakeKey.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'ConsumerAccountDecryptsHandshakeViaSecretsManager',
      principals: [new iam.AccountPrincipal(consumerAccount)],
      actions: ['kms:Decrypt', 'kms:DescribeKey'],
      resources: ['*'],
      conditions: {
        StringEquals: { 'kms:ViaService': `secretsmanager.${this.region}.${Aws.URL_SUFFIX}` },
        ArnLike: { 'aws:PrincipalArn': consumerDeployRole },
      },
    }));

    // The consumer's private zone: broker 1's host without its b-1 label (aws-facts MSK_BROKER_HOST).
    const clusterDomain = clusterDomainExpression(msk.brokers[0].host);

    const values: Record<string, string> = {
      [HANDSHAKE_KEYS.clusterDomain]: clusterDomain,
      [HANDSHAKE_KEYS.brokerCount]: String(msk.brokers.length),
      [HANDSHAKE_KEYS.bootstrapServers]: msk.bootstrapScram,
    };
    msk.brokers.forEach((broker, i) => {
      values[HANDSHAKE_KEYS.brokerHost(broker.id)] = broker.host;
      values[HANDSHAKE_KEYS.brokerPort(broker.id)] = String(MSK_SCRAM_PORT);
      values[HANDSHAKE_KEYS.brokerEndpoint(broker.id)] = `${broker.host}:${MSK_SCRAM_PORT}`;
      values[HANDSHAKE_KEYS.brokerService(broker.id)] = services[i].vpcEndpointServiceName;
    });
    const secretObjectValue: Record<string, SecretValue> = {};
    for (const [k, v] of Object.entries(values)) {
      // Not secret: deploy-time facts (GetAtt/Ref) and constants, kept in the secret for its access control.
      secretObjectValue[k] = SecretValue.unsafePlainText(v);
    }
    // The SCRAM credentials travel inside the handshake, resolved by CloudFormation in this account.
    secretObjectValue[HANDSHAKE_KEYS.scramUsername] = msk.scramSecret.secretValueFromJson('username');
    secretObjectValue[HANDSHAKE_KEYS.scramPassword] = msk.scramSecret.secretValueFromJson('password');

    const handshake = new secretsmanager.Secret(this, 'Handshake', {
      // The revision changes the resource, so CloudFormation re-reads the SCRAM secret (config handshakeRevision).
      description: `PrivateLink handshake for the consumer account: broker endpoints, endpoint services, SCRAM user (revision ${config.handshakeRevision})`,
      encryptionKey: handshakeKey,
      secretObjectValue,
    });
    handshake.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'ConsumerAccountReadsHandshake',
      principals: [new iam.AccountPrincipal(consumerAccount)],
      actions: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
      resources: ['*'],
      conditions: { ArnLike: { 'aws:PrincipalArn': consumerDeployRole } },
    }));
    // The handshake is the consumer's go signal: it only exists once every topic exists.
    handshake.node.addDependency(msk.topics);
    acknowledge(
      handshake,
      'AwsSolutions-SMG4',
      'The handshake holds deploy-time facts copied from MSK; it changes by re-deploying this stack, not by rotation',
    );
    checkovSkip(
      handshake.node.defaultChild as secretsmanager.CfnSecret,
      'CKV2_AWS_57',
      'Deploy-time facts copied from MSK; it is refreshed by re-deploying, not rotated',
    );
    this.handshakeSecret = handshake;

    new CfnOutput(this, 'HandshakeSecretArn', {
      value: handshake.secretArn,
      description: 'Set pipeline.consumer.handshakeSecretArn to this value to deploy consumer-stack in the consumer account',
    });
    services.forEach((s, i) => new CfnOutput(this, `Broker${msk.brokers[i].id}ServiceName`, { value: s.vpcEndpointServiceName }));
  }
}

/**
 * NLB TCP idle timeout of the broker listeners: above Kafka's connections.max.idle.ms, within the
 * NLB's range (aws-facts NLB_TCP_IDLE_TIMEOUT; endpoint-service-stack.test.ts checks both).
 */
export const BROKER_NLB_IDLE_TIMEOUT_SECONDS = 600;

/**
 * The role CloudFormation deploys consumer-stack with: the CDK bootstrap's execution role
 * `cdk-<qualifier>-cfn-exec-role-<account>-<region>` (any qualifier).
 */
export function consumerDeployRoleArnPattern(partition: string, consumerAccount: string, region: string): string {
  return `arn:${partition}:iam::${consumerAccount}:role/cdk-*-cfn-exec-role-${consumerAccount}-${region}`;
}
