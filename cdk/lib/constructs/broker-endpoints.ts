import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as route53Targets from 'aws-cdk-lib/aws-route53-targets';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { HANDSHAKE_KEYS } from './handshake';
import { MSK_SCRAM_PORT } from './msk-ports';
import { checkovSkip } from './security';

export interface BrokerEndpointsProps {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  /** Same value as the producer side's msk.brokerCount (both read one config). */
  readonly brokerCount: number;
  readonly handshake: secretsmanager.ISecret;
}

/**
 * Consumer side of the PrivateLink handshake: one interface endpoint per broker endpoint service
 * and a private hosted zone named after the cluster's own DNS domain
 * (<cluster>.<id>.c<n>.kafka.<region>.amazonaws.com), mapping each broker host name to its
 * endpoint. The zone covers this one cluster only, so other MSK clusters stay resolvable from the
 * VPC (a zone for kafka.<region>.amazonaws.com would hide them all). TLS still verifies: clients
 * connect with the brokers' real names.
 *
 * Every value comes from the handshake secret through CloudFormation dynamic references.
 */
export class BrokerEndpoints extends Construct {
  /** Attached to the endpoints; the consumer adds its ingress rule. */
  readonly securityGroup: ec2.SecurityGroup;
  /** host:port of every broker, as the event source mapping needs them. */
  readonly bootstrapServers: readonly string[];
  readonly zone: route53.PrivateHostedZone;

  constructor(scope: Construct, id: string, props: BrokerEndpointsProps) {
    super(scope, id);
    const field = (key: string) => props.handshake.secretValueFromJson(key).unsafeUnwrap();

    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'Broker interface endpoints: Kafka (SCRAM/TLS) from the consumer function and its event source mappings',
      allowAllOutbound: false,
    });

    this.zone = new route53.PrivateHostedZone(this, 'ClusterZone', {
      zoneName: field(HANDSHAKE_KEYS.clusterDomain),
      vpc: props.vpc,
      comment: 'MSK broker names of the producer cluster, resolved to local PrivateLink endpoints',
    });
    const zoneResource = this.zone.node.defaultChild as route53.CfnHostedZone;
    checkovSkip(zoneResource, 'CKV2_AWS_38', 'DNSSEC signing is not available for private hosted zones');
    checkovSkip(zoneResource, 'CKV2_AWS_39', 'Query logging is not available for private hosted zones (Resolver query logs cover the VPC)');

    const servers: string[] = [];
    for (let i = 0; i < props.brokerCount; i++) {
      const n = i + 1;
      const endpoint = new ec2.InterfaceVpcEndpoint(this, `Broker${n}Endpoint`, {
        vpc: props.vpc,
        service: new ec2.InterfaceVpcEndpointService(field(HANDSHAKE_KEYS.brokerService(i)), MSK_SCRAM_PORT),
        subnets: props.subnets,
        securityGroups: [this.securityGroup],
        privateDnsEnabled: false,
        open: false,
      });
      new route53.ARecord(this, `Broker${n}Record`, {
        zone: this.zone,
        // Trailing dot: the host is already fully qualified inside the cluster's zone.
        recordName: `${field(HANDSHAKE_KEYS.brokerHost(i))}.`,
        target: route53.RecordTarget.fromAlias(new route53Targets.InterfaceVpcEndpointTarget(endpoint)),
      });
      servers.push(field(HANDSHAKE_KEYS.brokerEndpoint(i)));
    }
    this.bootstrapServers = servers;
  }
}
