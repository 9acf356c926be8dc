import { createHash } from 'node:crypto';

/**
 * What AWS itself knows at deploy time and no synthesized template contains: partitions, the zones
 * of a region as one account sees them, MSK broker host names, and the shapes of generated ids.
 * Every value follows the format AWS documents, so an expression that only works with CDK's or
 * moto's invented values fails here the way it would fail in a real deployment.
 */

export interface PartitionFacts {
  readonly partition: 'aws' | 'aws-cn';
  /** DNS suffix of service endpoints and MSK broker hosts (AWS::URLSuffix). */
  readonly dnsSuffix: string;
  /**
   * Prefix of PrivateLink endpoint service names. AWS: `com.amazonaws.vpce.<region>.vpce-svc-<17 hex>`
   * ("Share your services through AWS PrivateLink"); in the China regions endpoint services are
   * named `cn.com.amazonaws.vpce.<region>.vpce-svc-…` (e.g. the Ningxia service
   * `cn.com.amazonaws.vpce.cn-northwest-1.vpce-svc-070f9283a2c0d1f0c` published by a service
   * provider; aws/aws-cdk#11140 describes the `cn.` prefix of China service names).
   */
  readonly endpointServicePrefix: string;
}

export const PARTITIONS: Readonly<Record<'aws' | 'aws-cn', PartitionFacts>> = {
  aws: { partition: 'aws', dnsSuffix: 'amazonaws.com', endpointServicePrefix: 'com.amazonaws.vpce' },
  // "Endpoints and ARNs for Amazon Web Services in China": amazonaws.com.cn, partition aws-cn.
  'aws-cn': { partition: 'aws-cn', dnsSuffix: 'amazonaws.com.cn', endpointServicePrefix: 'cn.com.amazonaws.vpce' },
};

/**
 * Zones of the regions the checks deploy to, by AZ ID. AZ names are mapped to AZ IDs per account
 * (EC2 user guide, "AZ IDs"), so the same name is a different physical zone in another account.
 * cn-north-1 (Beijing) has no "c" zone: its zones are cn-north-1a, cn-north-1b and cn-north-1d.
 */
export const REGION_ZONES: Readonly<Record<string, { readonly names: readonly string[]; readonly ids: readonly string[] }>> = {
  'us-east-1': {
    names: ['us-east-1a', 'us-east-1b', 'us-east-1c', 'us-east-1d', 'us-east-1e', 'us-east-1f'],
    ids: ['use1-az1', 'use1-az2', 'use1-az3', 'use1-az4', 'use1-az5', 'use1-az6'],
  },
  'eu-west-1': {
    names: ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'],
    ids: ['euw1-az1', 'euw1-az2', 'euw1-az3'],
  },
  'cn-north-1': {
    names: ['cn-north-1a', 'cn-north-1b', 'cn-north-1d'],
    ids: ['cnn1-az1', 'cnn1-az2', 'cnn1-az4'],
  },
};

export function partitionOf(region: string): PartitionFacts {
  return region.startsWith('cn-') ? PARTITIONS['aws-cn'] : PARTITIONS.aws;
}

/** Deterministic pseudo-random text: the same seed always gives the same id. */
export function hashText(seed: string, length: number, alphabet = '0123456789abcdef'): string {
  let out = '';
  let counter = 0;
  while (out.length < length) {
    const digest = createHash('sha256').update(`${seed}#${counter++}`).digest();
    for (const byte of digest) {
      if (out.length < length) {
        out += alphabet[byte % alphabet.length];
      }
    }
  }
  return out;
}

export const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
export const UPPER_ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

export function uuid(seed: string): string {
  const h = hashText(seed, 32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * The zone name -> AZ ID map one account sees in a region: the IDs are rotated by an offset
 * derived from the account, as AWS assigns names independently per account.
 */
export function zonesOf(account: string, region: string): { name: string; id: string }[] {
  const zones = REGION_ZONES[region];
  if (!zones) {
    throw new Error(`the deploy world has no zone table for region ${region} (add it to REGION_ZONES)`);
  }
  const offset = parseInt(hashText(`names/${account}`, 4), 16) % zones.ids.length;
  return zones.names.map((name, i) => ({ name, id: zones.ids[(i + offset) % zones.ids.length] }));
}

/**
 * An MSK broker's DNS name as MSK creates it: `b-<n>.<cluster name without hyphens>.<id>.c<n>.kafka.
 * <region>.<dns suffix>` (e.g. `b-1.democluster1.w7j4hk.c2.kafka.us-east-1.amazonaws.com` for the
 * tutorial's demo-cluster-1, `b-2.techxtf4orders.5n1354.c2.kafka.cn-north-1.amazonaws.com.cn`).
 */
export function mskBrokerHost(clusterName: string, clusterSeed: string, brokerId: number, region: string): string {
  const label = clusterName.replace(/-/g, '').toLowerCase();
  const id = hashText(`msk-id/${clusterSeed}`, 6, 'abcdefghijklmnopqrstuvwxyz0123456789');
  return `b-${brokerId}.${label}.${id}.c2.kafka.${region}.${partitionOf(region).dnsSuffix}`;
}

/** IPv4 address number `index` (from 4, as AWS reserves the first four) inside a CIDR block. */
export function addressInCidr(cidr: string, index: number): string {
  const [base, prefix] = cidr.split('/');
  const octets = base.split('.').map(Number);
  const size = 2 ** (32 - Number(prefix));
  const start = ((octets[0] << 24) >>> 0) + (octets[1] << 16) + (octets[2] << 8) + octets[3];
  const address = start + 4 + (index % (size - 5));
  return [24, 16, 8, 0].map((shift) => (address >>> shift) & 255).join('.');
}
