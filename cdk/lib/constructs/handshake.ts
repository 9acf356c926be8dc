import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';

/**
 * JSON keys of the handshake secret the producer side publishes and the consumer side reads
 * (through CloudFormation dynamic references, so the values never appear in a template).
 * Brokers are numbered from 1 in the order kafka:ListNodes returned them.
 */
export const HANDSHAKE_KEYS = {
  clusterDomain: 'cluster_domain',
  brokerCount: 'broker_count',
  bootstrapServers: 'bootstrap_servers',
  scramUsername: 'scram_username',
  scramPassword: 'scram_password',
  brokerHost: (i: number) => `broker_${i + 1}_host`,
  brokerPort: (i: number) => `broker_${i + 1}_port`,
  brokerEndpoint: (i: number) => `broker_${i + 1}_endpoint`,
  brokerService: (i: number) => `broker_${i + 1}_service`,
} as const;

/** Where the consumer stack gets the handshake from. */
export type HandshakeSource =
  /** Same account: the secret construct itself (a typed cross-stack reference). */
  | { readonly secret: secretsmanager.ISecret }
  /** Other account: the complete ARN from config (`consumer.handshakeSecretArn`). */
  | { readonly secretCompleteArn: string };
