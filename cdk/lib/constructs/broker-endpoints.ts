import { Tags } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as route53Targets from 'aws-cdk-lib/aws-route53-targets';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { MSK_BROKER_HOST } from '../aws-facts';
import { ESM_BOOTSTRAP_BROKERS, HANDSHAKE_KEYS, HANDSHAKE_REVISION_TAG } from './handshake';
import { MSK_SCRAM_PORT } from './msk-ports';
import { checkovSkip } from './security';

export interface BrokerEndpointsProps {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  /** Same value as the producer side's msk.brokerCount (both read one config). */
  readonly brokerCount: number;
  readonly handshake: secretsmanager.ISecret;
  /**
   * config handshakeRevision, written into a mutable property of every resource that holds a
   * handshake value: CloudFormation re-resolves a dynamic reference only when its resource changes.
   */
  readonly revision: number;
}

/**
 * Consumer side of the PrivateLink handshake: one interface endpoint per broker endpoint service
 * and a private hosted zone named after the cluster's own DNS domain
 * (<cluster>.<id>.c<n>.kafka.<region>.amazonaws.com), mapping each broker host name to its
 * endpoint. The zone covers this one cluster only, so other MSK clusters stay resolvable from the
 * VPC (a zone for kafka.<region>.amazonaws.com would hide them all). TLS still verifies: clients
 * connect with the brokers' real names.
 *
 * Every value comes from the handshake secret through CloudFormation dynamic references; broker n
 * is MSK broker id n on both sides.
 */
export class BrokerEndpoints extends Construct {
  /** Attached to the endpoints; the consumer adds its ingress rule. */
  readonly securityGroup: ec2.SecurityGroup;
  /** host:port of the first ESM_BOOTSTRAP_BROKERS brokers, the event source mappings' bootstrap servers. */
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
      comment: `MSK broker names of the producer cluster, resolved to local PrivateLink endpoints (handshake revision ${props.revision})`,
    });
    const zoneResource = this.zone.node.defaultChild as route53.CfnHostedZone;
    checkovSkip(zoneResource, 'CKV2_AWS_38', 'DNSSEC signing is not available for private hosted zones');
    checkovSkip(zoneResource, 'CKV2_AWS_39', 'Query logging is not available for private hosted zones (Resolver query logs cover the VPC)');

    const servers: string[] = [];
    for (let n = MSK_BROKER_HOST.firstBrokerId; n < MSK_BROKER_HOST.firstBrokerId + props.brokerCount; n++) {
      const endpoint = new ec2.InterfaceVpcEndpoint(this, `Broker${n}Endpoint`, {
        vpc: props.vpc,
        service: new ec2.InterfaceVpcEndpointService(field(HANDSHAKE_KEYS.brokerService(n)), MSK_SCRAM_PORT),
        subnets: props.subnets,
        securityGroups: [this.securityGroup],
        privateDnsEnabled: false,
        open: false,
      });
      Tags.of(endpoint).add(HANDSHAKE_REVISION_TAG, String(props.revision));
      new route53.ARecord(this, `Broker${n}Record`, {
        zone: this.zone,
        // Trailing dot: the host is already fully qualified inside the cluster's zone.
        recordName: `${field(HANDSHAKE_KEYS.brokerHost(n))}.`,
        target: route53.RecordTarget.fromAlias(new route53Targets.InterfaceVpcEndpointTarget(endpoint)),
        comment: `Broker ${n} to its PrivateLink endpoint (handshake revision ${props.revision})`,
      });
      if (servers.length < ESM_BOOTSTRAP_BROKERS) {
        servers.push(field(HANDSHAKE_KEYS.brokerEndpoint(n)));
      }
    }
    this.bootstrapServers = servers;
  }
}
