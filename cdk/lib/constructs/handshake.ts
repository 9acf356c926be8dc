import { Aws, Fn } from 'aws-cdk-lib';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { CFN_MAX_DYNAMIC_REFERENCES, MSK_BROKER_HOST } from '../aws-facts';

/**
 * JSON keys of the handshake secret the producer side publishes and the consumer side reads
 * (through CloudFormation dynamic references, so the values never appear in a template).
 * Brokers are numbered by their MSK broker id (1..N), never by their position in a kafka:ListNodes
 * response, whose order AWS does not document.
 */
export const HANDSHAKE_KEYS = {
  clusterDomain: 'cluster_domain',
  brokerCount: 'broker_count',
  bootstrapServers: 'bootstrap_servers',
  scramUsername: 'scram_username',
  scramPassword: 'scram_password',
  brokerHost: (brokerId: number) => `broker_${brokerId}_host`,
  brokerPort: (brokerId: number) => `broker_${brokerId}_port`,
  brokerEndpoint: (brokerId: number) => `broker_${brokerId}_endpoint`,
  brokerService: (brokerId: number) => `broker_${brokerId}_service`,
} as const;

/**
 * The CloudFormation expression of clusterDomainOfBrokerHost (aws-facts): the host's labels
 * 1..5, split on ".", joined with the partition's DNS suffix (amazonaws.com or amazonaws.com.cn).
 * Taking the suffix from the partition keeps the label indexes the same in aws and aws-cn.
 */
export function clusterDomainExpression(brokerHost: string): string {
  const labels = Fn.split('.', brokerHost);
  return Fn.join('.', [...MSK_BROKER_HOST.clusterDomainLabels.map((i) => Fn.select(i, labels)), Aws.URL_SUFFIX]);
}

/** Where the consumer stack gets the handshake from. */
export type HandshakeSource =
  /** Same account: the secret construct itself (a typed cross-stack reference). */
  | { readonly secret: secretsmanager.ISecret }
  /** Other account: the complete ARN from config (`consumer.handshakeSecretArn`). */
  | { readonly secretCompleteArn: string };

/** Tag carrying config handshakeRevision on consumer resources that hold handshake values (see BrokerEndpoints). */
export const HANDSHAKE_REVISION_TAG = 'pipeline-handshake-revision';

/**
 * Brokers each event source mapping lists as bootstrap servers. A Kafka client needs one reachable
 * bootstrap broker and learns every other broker from the cluster metadata (each one resolves
 * through the private zone), so three (one per zone by default) keep the mappings available
 * without one dynamic reference per broker and mapping.
 */
export const ESM_BOOTSTRAP_BROKERS = 3;

/**
 * Dynamic references in consumer-stack: the SCRAM username and password copy, the zone name and
 * the database's generated master password (4), per broker its endpoint service name and record
 * name (2), and per mapping its bootstrap servers. consumer-stack.test.ts checks this against the
 * synthesized template.
 */
export function consumerDynamicReferenceCount(brokerCount: number, mappingCount: number): number {
  return 4 + 2 * brokerCount + mappingCount * Math.min(brokerCount, ESM_BOOTSTRAP_BROKERS);
}

/** The largest broker count whose consumer-stack stays within CloudFormation's dynamic reference limit. */
export function maxBrokersWithinDynamicReferenceLimit(mappingCount: number): number {
  let brokers = 1;
  while (consumerDynamicReferenceCount(brokers + 1, mappingCount) <= CFN_MAX_DYNAMIC_REFERENCES) {
    brokers++;
  }
  return brokers;
}
