/**
 * What each resource type returns at deploy time (Ref and Fn::GetAtt, in the formats of the
 * CloudFormation resource reference), and the create-time rejections of the service APIs that the
 * pipeline's templates can run into. A type or attribute that is not modelled fails loudly, so a
 * new resource is added here instead of passing unchecked.
 */
import { spawnSync } from 'node:child_process';
import {
  addressInCidr, hashText, mskBrokerHost, PartitionFacts, UPPER_ALNUM, ALNUM, uuid, zonesOf,
} from './aws-world';
import { DeployError, StackEnvironment } from './deploy-error';

type Json = Record<string, unknown>;

export interface CreatedResource {
  readonly ref: unknown;
  readonly attributes: Readonly<Record<string, unknown>>;
}

export interface SecretState {
  readonly arn: string;
  readonly name: string;
  readonly account: string;
  readonly region: string;
  secretString: string;
  readonly kmsKeyArn?: string;
  /** Statements of the secret's resource policy (AWS::SecretsManager::ResourcePolicy). */
  policy: Json[];
}

export interface BrokerState {
  readonly brokerId: number;
  readonly host: string;
  readonly ip: string;
  readonly subnetId: string;
}

export interface ClusterState {
  readonly arn: string;
  readonly name: string;
  readonly account: string;
  readonly region: string;
  readonly brokers: readonly BrokerState[];
  readonly scram: boolean;
  readonly iam: boolean;
  readonly tls: boolean;
  readonly kafkaVersion: string;
}

export interface EndpointServiceState {
  readonly id: string;
  readonly name: string;
  readonly account: string;
  readonly region: string;
  readonly loadBalancerArns: readonly string[];
  readonly zoneIds: readonly string[];
  allowedPrincipals: string[];
}

export interface InterfaceEndpointState {
  readonly id: string;
  readonly serviceName: string;
  readonly account: string;
  /** `hostedZoneId:dnsName`, regional entry first. */
  readonly dnsEntries: readonly string[];
  readonly securityGroupIds: readonly string[];
}

export interface ListenerState {
  readonly loadBalancerArn: string;
  readonly port: number;
  readonly targetGroupArns: readonly string[];
}

/** Shared state of every deployment in one world (both accounts). */
export class WorldState {
  readonly exports = new Map<string, unknown>();
  readonly importedExports = new Set<string>();
  readonly secrets: SecretState[] = [];
  readonly keyPolicies = new Map<string, Json[]>();
  readonly subnets = new Map<string, { cidr: string; zoneName: string; zoneId: string; account: string }>();
  readonly clusters: ClusterState[] = [];
  readonly loadBalancers = new Map<string, { subnets: string[]; account: string }>();
  readonly targetGroups = new Map<string, { port: number; targets: { ip: string; port: number }[] }>();
  readonly listeners: ListenerState[] = [];
  readonly endpointServices: EndpointServiceState[] = [];
  readonly endpoints = new Map<string, InterfaceEndpointState>();
  readonly zones = new Map<string, { name: string; account: string }>();
  readonly records: { zoneId: string; name: string; type: string; aliasDnsName?: string; aliasZoneId?: string }[] = [];
  /** Lambda functions by ARN: inline code (Code.ZipFile), runtime and environment. */
  readonly functions = new Map<string, { code?: string; runtime?: string; environment: Record<string, string> }>();
  /** Order in which kafka:ListNodes lists brokers; AWS documents none. */
  listNodesOrder: 'ascending' | 'descending' = 'ascending';

  findSecret(id: string, env: StackEnvironment): SecretState | undefined {
    if (id.startsWith('arn:')) {
      return this.secrets.find((s) => s.arn === id);
    }
    return this.secrets.find((s) => s.name === id && s.account === env.account && s.region === env.region);
  }

  /**
   * Another account reads a secret only when the secret's resource policy and its key's policy
   * both allow that account (Secrets Manager user guide, "Access AWS Secrets Manager secrets from a
   * different account"); a secret under the AWS managed key cannot be shared at all.
   */
  assertSecretReadable(secret: SecretState, account: string, path: string): void {
    if (secret.account === account) {
      return;
    }
    if (!allows(secret.policy, account, 'secretsmanager:GetSecretValue')) {
      throw new DeployError(`${path}: AccessDenied: the resource policy of ${secret.arn} does not let account ${account} call GetSecretValue`);
    }
    const keyPolicy = secret.kmsKeyArn ? this.keyPolicies.get(secret.kmsKeyArn) : undefined;
    if (!keyPolicy) {
      throw new DeployError(`${path}: ${secret.arn} is encrypted with the AWS managed key, which other accounts cannot use`);
    }
    if (!allows(keyPolicy, account, 'kms:Decrypt')) {
      throw new DeployError(`${path}: AccessDenied: the key policy of ${secret.kmsKeyArn} does not let account ${account} decrypt`);
    }
  }
}

/** True when some Allow statement names the account (root, id or a principal in it) and the action. */
function allows(statements: Json[], account: string, action: string): boolean {
  return statements.some((s) => s.Effect === 'Allow'
    && JSON.stringify(s.Principal ?? '').includes(account)
    && asList(s.Action).some((a) => a === action || a === '*' || a === `${action.split(':')[0]}:*`));
}

export interface CreateContext {
  readonly logicalId: string;
  readonly type: string;
  readonly properties: Json;
  readonly env: StackEnvironment;
  readonly partition: PartitionFacts;
  readonly where: string;
}

type Model = (ctx: CreateContext, world: WorldState, h: Helpers) => CreatedResource;

class Helpers {
  constructor(private readonly ctx: CreateContext) {}

  private seed(what: string): string {
    return `${this.ctx.env.account}/${this.ctx.env.region}/${this.ctx.env.stackName}/${this.ctx.logicalId}/${what}`;
  }

  hex(length: number, what = 'id'): string {
    return hashText(this.seed(what), length);
  }

  alnum(length: number, what = 'id'): string {
    return hashText(this.seed(what), length, ALNUM);
  }

  /** CloudFormation's generated physical name: stack name, logical id, random suffix, within `max`. */
  name(max: number, lower = false): string {
    const suffix = hashText(this.seed('name'), 12, UPPER_ALNUM);
    const stack = this.ctx.env.stackName.slice(0, Math.max(1, Math.floor((max - 14) / 2)));
    const id = this.ctx.logicalId.slice(0, Math.max(1, max - stack.length - 14));
    const out = `${stack}-${id}-${suffix}`;
    return lower ? out.toLowerCase() : out;
  }

  arn(service: string, resource: string, region = this.ctx.env.region, account = this.ctx.env.account): string {
    return `arn:${this.ctx.partition.partition}:${service}:${region}:${account}:${resource}`;
  }

  prop(key: string): unknown {
    return this.ctx.properties[key];
  }

  str(key: string): string | undefined {
    const v = this.ctx.properties[key];
    if (v === undefined) {
      return undefined;
    }
    if (typeof v !== 'string') {
      throw new DeployError(`${this.ctx.where}.${key}: expected a string, got ${JSON.stringify(v)}`);
    }
    return v;
  }
}

const simple = (prefix: string, length = 17): Model => (_c, _w, h) => ({ ref: `${prefix}${h.hex(length)}`, attributes: { Id: `${prefix}${h.hex(length)}` } });

/** DNS name as Route 53 accepts it: labels of letters, digits and hyphens, no hyphen at either end. */
export function isValidDnsName(name: string): boolean {
  const bare = name.endsWith('.') ? name.slice(0, -1) : name;
  return bare.length > 0 && bare.length <= 253
    && bare.split('.').every((label) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(label));
}

function withoutDot(name: string): string {
  return (name.endsWith('.') ? name.slice(0, -1) : name).toLowerCase();
}

const MODELS: Record<string, Model> = {
  'AWS::KMS::Key': (c, w, h) => {
    const id = uuid(`${c.env.account}/${c.env.stackName}/${c.logicalId}`);
    const arn = h.arn('kms', `key/${id}`);
    w.keyPolicies.set(arn, asList((h.prop('KeyPolicy') as Json | undefined)?.Statement) as Json[]);
    return { ref: id, attributes: { Arn: arn, KeyId: id } };
  },
  'AWS::KMS::Alias': (_c, _w, h) => ({ ref: h.str('AliasName'), attributes: {} }),
  'AWS::SecretsManager::Secret': (c, w, h) => {
    const name = h.str('Name') ?? `${c.logicalId.slice(0, 40)}-${h.alnum(12, 'secret-name')}`;
    if (!/^[A-Za-z0-9/_+=.@-]{1,512}$/.test(name)) {
      throw new DeployError(`${c.where}: secret name ${JSON.stringify(name)} has characters Secrets Manager rejects`);
    }
    const arn = h.arn('secretsmanager', `secret:${name}-${h.alnum(6, 'secret-suffix')}`);
    let secretString = h.str('SecretString');
    const generate = h.prop('GenerateSecretString') as Json | undefined;
    if (secretString === undefined && generate) {
      const password = h.alnum(Number(generate.PasswordLength ?? 32), 'password');
      if (typeof generate.GenerateStringKey === 'string') {
        const template = JSON.parse(String(generate.SecretStringTemplate ?? '{}')) as Json;
        secretString = JSON.stringify({ ...template, [generate.GenerateStringKey]: password });
      } else {
        secretString = password;
      }
    }
    if (secretString === undefined) {
      throw new DeployError(`${c.where}: a secret needs SecretString or GenerateSecretString`);
    }
    w.secrets.push({
      arn, name, account: c.env.account, region: c.env.region, secretString, policy: [],
      kmsKeyArn: h.str('KmsKeyId'),
    });
    return { ref: arn, attributes: { Id: arn } };
  },
  'AWS::SecretsManager::ResourcePolicy': (c, w, h) => {
    const secret = w.secrets.find((s) => s.arn === h.str('SecretId'));
    if (!secret) {
      throw new DeployError(`${c.where}: ResourcePolicy for unknown secret ${h.str('SecretId')}`);
    }
    const policy = h.prop('ResourcePolicy');
    const doc = (typeof policy === 'string' ? JSON.parse(policy) : policy) as Json;
    secret.policy.push(...(asList(doc.Statement) as Json[]));
    return { ref: secret.arn, attributes: { Id: secret.arn } };
  },
  'AWS::SecretsManager::SecretTargetAttachment': (c, w, h) => {
    const id = h.str('SecretId');
    if (!w.secrets.some((s) => s.arn === id)) {
      throw new DeployError(`${c.where}: SecretId ${id} is not a secret`);
    }
    return { ref: id, attributes: { Id: id } };
  },
  'AWS::EC2::VPC': (_c, _w, h) => ({
    ref: `vpc-${h.hex(17)}`,
    attributes: {
      VpcId: `vpc-${h.hex(17)}`, DefaultSecurityGroup: `sg-${h.hex(17, 'default-sg')}`, CidrBlock: h.str('CidrBlock'),
      DefaultNetworkAcl: `acl-${h.hex(17, 'acl')}`, CidrBlockAssociations: [`vpc-cidr-assoc-${h.hex(17, 'assoc')}`],
    },
  }),
  'AWS::EC2::Subnet': (c, w, h) => {
    const zones = zonesOf(c.env.account, c.env.region);
    const byName = h.str('AvailabilityZone');
    const byId = h.str('AvailabilityZoneId');
    const zone = zones.find((z) => (byName !== undefined ? z.name === byName : z.id === byId));
    if (!zone) {
      throw new DeployError(
        `${c.where}: Value (${byName ?? byId}) for parameter availabilityZone is invalid: ${c.env.region} has `
        + zones.map((z) => `${z.name} (${z.id})`).join(', '),
      );
    }
    const id = `subnet-${h.hex(17)}`;
    const cidr = h.str('CidrBlock') ?? '';
    w.subnets.set(id, { cidr, zoneName: zone.name, zoneId: zone.id, account: c.env.account });
    return { ref: id, attributes: { SubnetId: id, AvailabilityZone: zone.name, AvailabilityZoneId: zone.id, CidrBlock: cidr, VpcId: h.str('VpcId') } };
  },
  'AWS::EC2::RouteTable': simple('rtb-'),
  'AWS::EC2::SubnetRouteTableAssociation': simple('rtbassoc-'),
  'AWS::EC2::FlowLog': simple('fl-'),
  'AWS::EC2::SecurityGroup': (_c, _w, h) => ({
    ref: `sg-${h.hex(17)}`, attributes: { GroupId: `sg-${h.hex(17)}`, VpcId: h.str('VpcId') },
  }),
  'AWS::EC2::SecurityGroupIngress': simple('sgr-'),
  'AWS::EC2::SecurityGroupEgress': simple('sgr-'),
  'AWS::EC2::VPCEndpointService': (c, w, h) => {
    const id = `vpce-svc-${h.hex(17)}`;
    const loadBalancerArns = asList(h.prop('NetworkLoadBalancerArns')).map(String);
    const zoneIds = new Set<string>();
    for (const arn of loadBalancerArns) {
      const lb = w.loadBalancers.get(arn);
      if (!lb) {
        throw new DeployError(`${c.where}: ${arn} is not a Network Load Balancer of this world`);
      }
      lb.subnets.forEach((s) => zoneIds.add(w.subnets.get(s)?.zoneId ?? '?'));
    }
    w.endpointServices.push({
      id, name: `${c.partition.endpointServicePrefix}.${c.env.region}.${id}`, account: c.env.account,
      region: c.env.region, loadBalancerArns, zoneIds: [...zoneIds], allowedPrincipals: [],
    });
    return { ref: id, attributes: { ServiceId: id } };
  },
  'AWS::EC2::VPCEndpointServicePermissions': (c, w, h) => {
    const service = w.endpointServices.find((s) => s.id === h.str('ServiceId'));
    if (!service) {
      throw new DeployError(`${c.where}: ServiceId ${h.str('ServiceId')} is not an endpoint service`);
    }
    service.allowedPrincipals.push(...asList(h.prop('AllowedPrincipals')).map(String));
    return { ref: h.hex(17), attributes: {} };
  },
  'AWS::EC2::VPCEndpoint': (c, w, h) => {
    const id = `vpce-${h.hex(17)}`;
    const serviceName = h.str('ServiceName') ?? '';
    const type = h.str('VpcEndpointType') ?? 'Gateway';
    const subnetIds = asList(h.prop('SubnetIds')).map(String);
    const custom = w.endpointServices.find((s) => s.name === serviceName);
    const awsService = new RegExp(`^(cn\\.)?com\\.amazonaws\\.${c.env.region}\\.[a-z0-9.-]+$`).exec(serviceName);
    if (custom) {
      const principal = `arn:${c.partition.partition}:iam::${c.env.account}:root`;
      if (custom.account !== c.env.account && !custom.allowedPrincipals.includes(principal) && !custom.allowedPrincipals.includes('*')) {
        throw new DeployError(`${c.where}: InvalidServiceName: ${serviceName} does not allow ${principal}`);
      }
      for (const subnet of subnetIds) {
        const zone = w.subnets.get(subnet);
        if (zone && !custom.zoneIds.includes(zone.zoneId)) {
          throw new DeployError(
            `${c.where}: the endpoint service ${serviceName} is not offered in ${zone.zoneName} (${zone.zoneId}) `
            + `of account ${c.env.account}; it is offered in ${custom.zoneIds.join(', ')}`,
          );
        }
      }
    } else if (!awsService || (c.partition.partition === 'aws' && serviceName.startsWith('cn.'))) {
      throw new DeployError(`${c.where}: InvalidServiceName: ${JSON.stringify(serviceName)} is no service in ${c.env.region}`);
    }
    const regionDomain = `${c.env.region}.vpce.${c.partition.dnsSuffix}`;
    const serviceLabel = custom ? custom.id : serviceName.split(`${c.env.region}.`)[1];
    const zoneId = `Z${hashText(`vpce-zone/${c.env.region}`, 13, UPPER_ALNUM)}`;
    const dnsEntries = type === 'Interface'
      ? [`${zoneId}:${id}-${h.alnum(8, 'dns').toLowerCase()}.${serviceLabel}.${regionDomain}`,
        ...subnetIds.map((s) => `${zoneId}:${id}-${h.alnum(8, 'dns').toLowerCase()}-${w.subnets.get(s)?.zoneName ?? 'az'}.${serviceLabel}.${regionDomain}`)]
      : [];
    w.endpoints.set(id, { id, serviceName, account: c.env.account, dnsEntries, securityGroupIds: asList(h.prop('SecurityGroupIds')).map(String) });
    return {
      ref: id,
      attributes: {
        Id: id, DnsEntries: dnsEntries, CreationTimestamp: '2026-01-01T00:00:00Z',
        NetworkInterfaceIds: type === 'Interface' ? subnetIds.map((s) => `eni-${hashText(`${id}/${s}`, 17)}`) : [],
      },
    };
  },
  'AWS::ElasticLoadBalancingV2::LoadBalancer': (c, w, h) => {
    const name = h.str('Name') ?? `${c.logicalId.slice(0, 17)}-${h.alnum(13, 'lb').toLowerCase()}`.slice(0, 32);
    const arn = h.arn('elasticloadbalancing', `loadbalancer/net/${name}/${h.hex(16)}`);
    const subnets = asList(h.prop('Subnets')).map(String);
    w.loadBalancers.set(arn, { subnets, account: c.env.account });
    const dnsName = `${name}-${h.hex(16, 'dns')}.elb.${c.env.region}.${c.partition.dnsSuffix}`;
    return {
      ref: arn,
      attributes: {
        LoadBalancerArn: arn, DNSName: dnsName, LoadBalancerName: name,
        LoadBalancerFullName: `net/${name}/${h.hex(16)}`, CanonicalHostedZoneID: 'Z26RNL4JYFTOTI',
        SecurityGroups: asList(h.prop('SecurityGroups')),
      },
    };
  },
  'AWS::ElasticLoadBalancingV2::TargetGroup': (c, w, h) => {
    const name = `${c.logicalId.slice(0, 18)}-${h.alnum(13, 'tg').toLowerCase()}`.slice(0, 32);
    const arn = h.arn('elasticloadbalancing', `targetgroup/${name}/${h.hex(16)}`);
    const port = Number(h.prop('Port'));
    const targets = (asList(h.prop('Targets')) as Json[]).map((t) => ({ ip: String(t.Id), port: Number(t.Port ?? port) }));
    w.targetGroups.set(arn, { port, targets });
    return {
      ref: arn,
      attributes: { TargetGroupArn: arn, TargetGroupName: name, TargetGroupFullName: `targetgroup/${name}/${h.hex(16)}`, LoadBalancerArns: [] },
    };
  },
  'AWS::ElasticLoadBalancingV2::Listener': (_c, w, h) => {
    const lbArn = h.str('LoadBalancerArn') ?? '';
    const arn = lbArn.replace(':loadbalancer/', ':listener/') + `/${h.hex(16)}`;
    const targetGroupArns = (asList(h.prop('DefaultActions')) as Json[]).map((a) => String(a.TargetGroupArn));
    w.listeners.push({ loadBalancerArn: lbArn, port: Number(h.prop('Port')), targetGroupArns });
    return { ref: arn, attributes: { ListenerArn: arn } };
  },
  'AWS::MSK::Configuration': (c, _w, h) => ({
    ref: h.arn('kafka', `configuration/${h.str('Name')}/${uuid(`${c.logicalId}/cfg`)}-2`),
    attributes: {
      Arn: h.arn('kafka', `configuration/${h.str('Name')}/${uuid(`${c.logicalId}/cfg`)}-2`),
      'LatestRevision.Revision': 1, 'LatestRevision.CreationTime': '2026-01-01T00:00:00Z', 'LatestRevision.Description': '',
    },
  }),
  'AWS::MSK::Cluster': (c, w, h) => {
    const name = h.str('ClusterName') ?? '';
    if (!/^[0-9A-Za-z][0-9A-Za-z-]{0,63}$/.test(name)) {
      throw new DeployError(`${c.where}: cluster name ${JSON.stringify(name)} is not one MSK accepts`);
    }
    const arn = h.arn('kafka', `cluster/${name}/${uuid(`${c.env.account}/${name}`)}-2`);
    const group = (h.prop('BrokerNodeGroupInfo') ?? {}) as Json;
    const subnets = asList(group.ClientSubnets).map(String);
    const count = Number(h.prop('NumberOfBrokerNodes'));
    if (subnets.length === 0 || count % subnets.length !== 0) {
      throw new DeployError(`${c.where}: NumberOfBrokerNodes ${count} must be a multiple of the ${subnets.length} client subnets`);
    }
    const brokers = [...Array(count).keys()].map((i) => {
      const subnetId = subnets[i % subnets.length];
      const subnet = w.subnets.get(subnetId);
      if (!subnet) {
        throw new DeployError(`${c.where}: client subnet ${subnetId} does not exist`);
      }
      return { brokerId: i + 1, host: mskBrokerHost(name, arn, i + 1, c.env.region), ip: addressInCidr(subnet.cidr, 20 + i), subnetId };
    });
    const auth = (h.prop('ClientAuthentication') ?? {}) as Json;
    const sasl = (auth.Sasl ?? {}) as Json;
    const inTransit = (((h.prop('EncryptionInfo') ?? {}) as Json).EncryptionInTransit ?? {}) as Json;
    w.clusters.push({
      arn, name, account: c.env.account, region: c.env.region, brokers,
      scram: (sasl.Scram as Json | undefined)?.Enabled === true,
      iam: (sasl.Iam as Json | undefined)?.Enabled === true,
      tls: inTransit.ClientBroker !== 'PLAINTEXT',
      kafkaVersion: h.str('KafkaVersion') ?? '',
    });
    return { ref: arn, attributes: { Arn: arn } };
  },
  'AWS::MSK::BatchScramSecret': (c, w, h) => {
    // MSK associates only secrets named AmazonMSK_… and encrypted with a customer managed key (msk-password.html).
    for (const arn of asList(h.prop('SecretArnList')).map(String)) {
      const secret = w.secrets.find((s) => s.arn === arn);
      if (!secret) {
        throw new DeployError(`${c.where}: ${arn} is not a secret`);
      }
      if (!secret.name.startsWith('AmazonMSK_') || !secret.kmsKeyArn) {
        throw new DeployError(`${c.where}: MSK rejects ${secret.name}: SCRAM secrets need the AmazonMSK_ prefix and a customer managed key`);
      }
    }
    return { ref: h.str('ClusterArn'), attributes: {} };
  },
  'Custom::AWS': customAws,
  'AWS::IAM::Role': (_c, _w, h) => {
    const name = h.str('RoleName') ?? h.name(64);
    const path = h.str('Path') ?? '/';
    return {
      ref: name,
      attributes: { Arn: h.arn('iam', `role${path}${name}`, '', ), RoleId: `AROA${h.alnum(17).toUpperCase()}` },
    };
  },
  'AWS::IAM::Policy': (_c, _w, h) => ({ ref: h.name(128), attributes: { Id: h.name(128) } }),
  'AWS::IAM::ManagedPolicy': (_c, _w, h) => ({
    ref: h.arn('iam', `policy/${h.str('ManagedPolicyName') ?? h.name(128)}`, ''), attributes: {},
  }),
  'AWS::Logs::LogGroup': (_c, _w, h) => {
    const name = h.str('LogGroupName') ?? h.name(512);
    // The Arn attribute ends in ":*" (AWS::Logs::LogGroup return values).
    return { ref: name, attributes: { Arn: h.arn('logs', `log-group:${name}:*`) } };
  },
  'AWS::Lambda::Function': (_c, w, h) => {
    const name = h.str('FunctionName') ?? h.name(64);
    const arn = h.arn('lambda', `function:${name}`);
    w.functions.set(arn, {
      code: ((h.prop('Code') ?? {}) as Json).ZipFile as string | undefined,
      runtime: h.str('Runtime'),
      environment: (((h.prop('Environment') ?? {}) as Json).Variables ?? {}) as Record<string, string>,
    });
    return { ref: name, attributes: { Arn: arn, 'SnapStartResponse.ApplyOn': 'None' } };
  },
  'AWS::Lambda::Permission': (_c, _w, h) => ({ ref: h.name(64), attributes: {} }),
  'AWS::Lambda::EventSourceMapping': (c, _w, h) => {
    const source = h.prop('SelfManagedEventSource') as Json | undefined;
    const servers = asList(((source?.Endpoints ?? {}) as Json).KafkaBootstrapServers).map(String);
    // CreateEventSourceMapping: each bootstrap server is host:port (API_SelfManagedEventSource pattern).
    for (const server of servers) {
      if (!/^(([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])\.)*([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]):[0-9]{1,5}$/.test(server)) {
        throw new DeployError(`${c.where}: Lambda rejects bootstrap server ${JSON.stringify(server)} (host:port expected)`);
      }
    }
    const id = uuid(`${c.env.stackName}/${c.logicalId}`);
    return { ref: id, attributes: { Id: id, EventSourceMappingArn: h.arn('lambda', `event-source-mapping:${id}`) } };
  },
  'AWS::SQS::Queue': (c, _w, h) => {
    const fifo = h.prop('FifoQueue') === true || h.prop('FifoQueue') === 'true';
    const name = h.str('QueueName') ?? `${h.name(fifo ? 75 : 80)}${fifo ? '.fifo' : ''}`;
    if (fifo !== name.endsWith('.fifo')) {
      throw new DeployError(`${c.where}: a FIFO queue name must end in .fifo and only a FIFO queue's may (${name})`);
    }
    const url = `https://sqs.${c.env.region}.${c.partition.dnsSuffix}/${c.env.account}/${name}`;
    return { ref: url, attributes: { Arn: h.arn('sqs', name), QueueName: name, QueueUrl: url } };
  },
  'AWS::SQS::QueuePolicy': (_c, _w, h) => ({ ref: h.hex(12), attributes: { Id: h.hex(12) } }),
  'AWS::SNS::Topic': (_c, _w, h) => {
    const name = h.str('TopicName') ?? h.name(256);
    return { ref: h.arn('sns', name), attributes: { TopicArn: h.arn('sns', name), TopicName: name } };
  },
  'AWS::SNS::TopicPolicy': (_c, _w, h) => ({ ref: h.hex(12), attributes: { Id: h.hex(12) } }),
  'AWS::SNS::Subscription': (_c, _w, h) => ({ ref: h.arn('sns', `${h.hex(8)}:${uuid(h.hex(9))}`), attributes: {} }),
  'AWS::DynamoDB::Table': (_c, _w, h) => {
    const name = h.str('TableName') ?? h.name(255);
    return {
      ref: name,
      attributes: { Arn: h.arn('dynamodb', `table/${name}`), StreamArn: h.arn('dynamodb', `table/${name}/stream/2026-01-01T00:00:00.000`) },
    };
  },
  'AWS::S3::Bucket': (c, _w, h) => {
    const name = h.str('BucketName') ?? h.name(63, true);
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name)) {
      throw new DeployError(`${c.where}: bucket name ${name} is not one S3 accepts`);
    }
    return {
      ref: name,
      attributes: {
        Arn: `arn:${c.partition.partition}:s3:::${name}`, DomainName: `${name}.s3.${c.partition.dnsSuffix}`,
        RegionalDomainName: `${name}.s3.${c.env.region}.${c.partition.dnsSuffix}`,
      },
    };
  },
  'AWS::S3::BucketPolicy': (_c, _w, h) => ({ ref: h.hex(12), attributes: {} }),
  'AWS::Route53::HostedZone': (c, w, h) => {
    const name = h.str('Name') ?? '';
    if (!isValidDnsName(name)) {
      throw new DeployError(`${c.where}: InvalidDomainName: ${JSON.stringify(name)} is not a valid DNS name`);
    }
    const id = `Z${hashText(`${c.env.account}/${c.logicalId}/zone`, 20, UPPER_ALNUM)}`;
    w.zones.set(id, { name: withoutDot(name), account: c.env.account });
    return { ref: id, attributes: { Id: id, NameServers: [] } };
  },
  'AWS::Route53::RecordSet': (c, w, h) => {
    const zoneId = h.str('HostedZoneId') ?? '';
    const zone = w.zones.get(zoneId);
    if (!zone) {
      throw new DeployError(`${c.where}: NoSuchHostedZone ${zoneId}`);
    }
    const name = withoutDot(h.str('Name') ?? '');
    if (!isValidDnsName(name) || !(name === zone.name || name.endsWith(`.${zone.name}`))) {
      throw new DeployError(`${c.where}: InvalidChangeBatch: RRSet with DNS name ${name} is not permitted in zone ${zone.name}`);
    }
    const alias = h.prop('AliasTarget') as Json | undefined;
    w.records.push({
      zoneId, name, type: String(h.prop('Type')),
      aliasDnsName: alias ? withoutDot(String(alias.DNSName)) : undefined,
      aliasZoneId: alias ? String(alias.HostedZoneId) : undefined,
    });
    return { ref: name, attributes: {} };
  },
  'AWS::RDS::DBInstance': (c, _w, h) => {
    const id = (h.str('DBInstanceIdentifier') ?? h.name(63, true)).toLowerCase();
    return {
      ref: id,
      attributes: {
        'Endpoint.Address': `${id}.${h.alnum(12, 'rds').toLowerCase()}.${c.env.region}.rds.${c.partition.dnsSuffix}`,
        'Endpoint.Port': '5432', DBInstanceArn: h.arn('rds', `db:${id}`), DbiResourceId: `db-${h.alnum(26).toUpperCase()}`,
      },
    };
  },
  'AWS::RDS::DBProxy': (c, _w, h) => {
    const name = h.str('DBProxyName') ?? h.name(60, true);
    return {
      ref: name,
      attributes: {
        Endpoint: `${name}.proxy-${h.alnum(12, 'proxy').toLowerCase()}.${c.env.region}.rds.${c.partition.dnsSuffix}`,
        DBProxyArn: h.arn('rds', `db-proxy:prx-${h.hex(17)}`), VpcId: '',
      },
    };
  },
  'AWS::RDS::DBProxyTargetGroup': (_c, _w, h) => ({ ref: h.name(60, true), attributes: { TargetGroupArn: h.arn('rds', `target-group:prx-tg-${h.hex(17)}`) } }),
  'AWS::RDS::DBParameterGroup': (_c, _w, h) => ({ ref: h.name(255, true), attributes: {} }),
  'AWS::RDS::DBSubnetGroup': (_c, _w, h) => ({ ref: h.name(255, true), attributes: {} }),
  'AWS::Glue::Registry': (_c, _w, h) => ({ ref: h.arn('glue', `registry/${h.str('Name')}`), attributes: { Arn: h.arn('glue', `registry/${h.str('Name')}`) } }),
  'AWS::Glue::Schema': (c, _w, h) => {
    const registry = String(((h.prop('Registry') ?? {}) as Json).Arn ?? ((h.prop('Registry') ?? {}) as Json).Name ?? '');
    const registryName = registry.includes(':registry/') ? registry.split(':registry/')[1] : registry || 'default-registry';
    const arn = h.arn('glue', `schema/${registryName}/${h.str('Name')}`);
    return { ref: arn, attributes: { Arn: arn, InitialSchemaVersionId: uuid(`${c.logicalId}/v1`) } };
  },
  'AWS::Glue::SchemaVersion': (c, _w, _h) => ({ ref: uuid(`${c.logicalId}/version`), attributes: { VersionId: uuid(`${c.logicalId}/version`) } }),
  'AWS::Events::Rule': (_c, _w, h) => {
    const name = h.str('Name') ?? h.name(64);
    return { ref: name, attributes: { Arn: h.arn('events', `rule/${name}`) } };
  },
  'AWS::CloudWatch::Alarm': (_c, _w, h) => {
    const name = h.str('AlarmName') ?? h.name(255);
    return { ref: name, attributes: { Arn: h.arn('cloudwatch', `alarm:${name}`) } };
  },
  'AWS::CloudWatch::Dashboard': (_c, _w, h) => ({ ref: h.str('DashboardName') ?? h.name(255), attributes: {} }),
  'AWS::CDK::Metadata': (_c, _w, h) => ({ ref: h.hex(12), attributes: {} }),
  'AWS::ApplicationAutoScaling::ScalableTarget': (_c, _w, h) => {
    const id = `${h.str('ResourceId')}|${h.str('ScalableDimension')}|${h.str('ServiceNamespace')}`;
    return { ref: id, attributes: { Id: id } };
  },
  'AWS::ApplicationAutoScaling::ScalingPolicy': (c, _w, h) => {
    const arn = h.arn('autoscaling', `scalingPolicy:${uuid(`${c.logicalId}/policy`)}:resource/${h.str('ServiceNamespace') ?? 'kafka'}/policyName/${h.str('PolicyName') ?? c.logicalId}`);
    return { ref: arn, attributes: { Arn: arn } };
  },
  'AWS::SSM::Parameter': (_c, _w, h) => {
    const name = h.str('Name') ?? `CFN-${h.name(200)}`;
    return { ref: name, attributes: { Type: h.str('Type') ?? 'String', Value: h.str('Value') ?? '' } };
  },
  'AWS::Lambda::Version': (_c, _w, h) => ({
    ref: `${h.str('FunctionName')}:1`, attributes: { Version: '1', FunctionArn: `${h.str('FunctionName')}:1` },
  }),
  'AWS::Lambda::Alias': (_c, _w, h) => ({ ref: `${h.str('FunctionName')}:${h.str('Name')}`, attributes: { AliasArn: `${h.str('FunctionName')}:${h.str('Name')}` } }),
  'AWS::Logs::ResourcePolicy': (_c, _w, h) => ({ ref: h.str('PolicyName') ?? h.name(255), attributes: {} }),
  'AWS::Logs::SubscriptionFilter': (_c, _w, h) => ({ ref: h.name(512), attributes: {} }),
  'AWS::SecretsManager::RotationSchedule': (_c, _w, h) => ({ ref: h.str('SecretId'), attributes: {} }),
  'AWS::EC2::VPCEndpointConnectionNotification': simple('vpce-nfn-'),
};

/**
 * Other custom resources: when the handler behind the service token (directly, or through the CDK
 * provider framework's USER_ON_EVENT_FUNCTION_ARN) is inline Node.js code, it runs here against an
 * AWS SDK that answers from this world, and its Data become the attributes, as CloudFormation would
 * take them. Any other handler (e.g. the Rust topic-admin) answers only Ref.
 */
function customResource(c: CreateContext, w: WorldState, h: Helpers): CreatedResource {
  const token = String(h.prop('ServiceToken') ?? '');
  let handler = w.functions.get(token);
  const userHandler = handler?.environment.USER_ON_EVENT_FUNCTION_ARN;
  if (userHandler) {
    handler = w.functions.get(userHandler);
  }
  if (!handler?.code || !String(handler.runtime ?? '').startsWith('nodejs')) {
    return { ref: `${h.hex(12)}`, attributes: {} };
  }
  const properties: Json = {};
  for (const [k, v] of Object.entries(c.properties)) {
    if (k !== 'ServiceToken') {
      // CloudFormation hands custom resources their properties as strings.
      properties[k] = typeof v === 'number' || typeof v === 'boolean' ? String(v) : v;
    }
  }
  const response = runInlineHandler(handler.code, {
    RequestType: 'Create', ResourceType: c.type, LogicalResourceId: c.logicalId, ResourceProperties: properties,
    StackId: `arn:${c.partition.partition}:cloudformation:${c.env.region}:${c.env.account}:stack/${c.env.stackName}/x`,
  }, w, c.where);
  const data = (response.Data ?? {}) as Record<string, unknown>;
  const size = Buffer.byteLength(JSON.stringify(data));
  if (size > 4096) {
    throw new DeployError(`${c.where}: the custom resource response is ${size} bytes; CloudFormation accepts at most 4096`);
  }
  return { ref: String(response.PhysicalResourceId ?? h.hex(12)), attributes: data };
}

/**
 * Runs an inline Node.js handler to completion in a child Node.js process (the deploy is
 * synchronous), with `@aws-sdk/client-kafka` answering from this world's clusters.
 */
function runInlineHandler(code: string, event: Json, w: WorldState, where: string): Json {
  const answers: Record<string, Json> = {};
  for (const cluster of w.clusters) {
    answers[cluster.arn] = { ListNodes: listNodesResponse(cluster, w.listNodesOrder), GetBootstrapBrokers: bootstrapBrokersResponse(cluster) };
  }
  const runner = `
    const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
    class Command { constructor(input) { this.input = input; } }
    const kafka = {
      ListNodesCommand: class extends Command { get name() { return 'ListNodes'; } },
      GetBootstrapBrokersCommand: class extends Command { get name() { return 'GetBootstrapBrokers'; } },
      KafkaClient: class { async send(c) {
        const cluster = input.answers[c.input.ClusterArn];
        if (!cluster) { throw new Error('NotFoundException: no cluster ' + c.input.ClusterArn); }
        if (!(c.name in cluster)) { throw new Error('kafka:' + c.name + ' is not modelled'); }
        return cluster[c.name];
      } },
    };
    const sandboxRequire = (name) => {
      if (name === '@aws-sdk/client-kafka') { return kafka; }
      throw new Error('the inline handler requires ' + name + ', which the deploy world does not provide');
    };
    const module = { exports: {} };
    new Function('require', 'module', 'exports', input.code)(sandboxRequire, module, module.exports);
    Promise.resolve().then(() => module.exports.handler(input.event)).then(
      (value) => process.stdout.write(JSON.stringify({ value })),
      (error) => process.stdout.write(JSON.stringify({ error: String(error && error.message || error) })));
  `;
  const run = spawnSync(process.execPath, ['-e', runner], { input: JSON.stringify({ code, event, answers }), encoding: 'utf8', timeout: 30_000 });
  let result: { value?: Json; error?: string };
  try {
    result = JSON.parse(run.stdout) as { value?: Json; error?: string };
  } catch {
    throw new DeployError(`${where}: the inline custom resource handler did not answer: ${run.stderr.slice(0, 500)}`);
  }
  if (result.error !== undefined) {
    throw new DeployError(`${where}: the custom resource handler failed: ${result.error}`);
  }
  return result.value ?? {};
}

export function createResource(world: WorldState, ctx: CreateContext): CreatedResource {
  const model = MODELS[ctx.type] ?? (ctx.type.startsWith('Custom::') ? customResource : undefined);
  if (!model) {
    throw new DeployError(`${ctx.where}: no deploy-time model for ${ctx.type} (add one to cdk/test/support/resource-models.ts)`);
  }
  return model(ctx, world, new Helpers(ctx));
}

/**
 * AwsCustomResource (Custom::AWS): the SDK call's answer in the API's documented response shape,
 * flattened into `a.b.0.c` keys and cut to `outputPaths`, as the aws-cdk-lib handler does. A
 * custom resource's response is limited to 4096 bytes (CloudFormation custom resource reference).
 */
function customAws(c: CreateContext, w: WorldState, h: Helpers): CreatedResource {
  const call = JSON.parse(String(h.prop('Create') ?? h.prop('Update') ?? '{}')) as Json;
  const service = String(call.service ?? '').replace(/^@aws-sdk\/client-/, '').toLowerCase();
  const action = String(call.action ?? '').replace(/Command$/, '').toLowerCase();
  const parameters = (call.parameters ?? {}) as Json;
  let response: Json;
  if (service === 'kafka' && (action === 'listnodes' || action === 'getbootstrapbrokers')) {
    const cluster = w.clusters.find((k) => k.arn === parameters.ClusterArn);
    if (!cluster) {
      throw new DeployError(`${c.where}: kafka:${call.action}: NotFoundException: no cluster ${String(parameters.ClusterArn)}`);
    }
    response = action === 'listnodes' ? listNodesResponse(cluster, w.listNodesOrder) : bootstrapBrokersResponse(cluster);
  } else {
    throw new DeployError(`${c.where}: Custom::AWS call ${String(call.service)}.${String(call.action)} is not modelled`);
  }
  const flat = flatten(response);
  const paths = call.outputPaths ? asList(call.outputPaths).map(String) : call.outputPath ? [String(call.outputPath)] : undefined;
  const data: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(flat)) {
    if (!paths || paths.some((p) => key.startsWith(p))) {
      data[key] = value;
    }
  }
  const size = Buffer.byteLength(JSON.stringify(data));
  if (size > 4096) {
    throw new DeployError(`${c.where}: the custom resource response is ${size} bytes; CloudFormation accepts at most 4096`);
  }
  const physical = (call.physicalResourceId ?? {}) as Json;
  return { ref: String(physical.id ?? h.hex(12)), attributes: data };
}

/** kafka:ListNodes, as in the MSK API reference (NodeInfoList of BROKER nodes). */
export function listNodesResponse(cluster: ClusterState, order: 'ascending' | 'descending'): Json {
  const brokers = order === 'ascending' ? cluster.brokers : [...cluster.brokers].reverse();
  return {
    NodeInfoList: brokers.map((b) => ({
      AddedToClusterTime: '2026-01-01T00:00:00.000Z',
      BrokerNodeInfo: {
        AttachedENIId: `eni-${hashText(`${cluster.arn}/${b.brokerId}`, 17)}`,
        BrokerId: b.brokerId,
        ClientSubnet: b.subnetId,
        ClientVpcIpAddress: b.ip,
        CurrentBrokerSoftwareInfo: { KafkaVersion: cluster.kafkaVersion },
        Endpoints: [b.host],
      },
      InstanceType: 'kafka.m7g.large',
      NodeARN: cluster.arn.replace(':cluster/', ':broker/') + `/${b.brokerId}`,
      NodeType: 'BROKER',
    })),
  };
}

/** kafka:GetBootstrapBrokers: one string per enabled listener (TLS 9094, SCRAM 9096, IAM 9098). */
export function bootstrapBrokersResponse(cluster: ClusterState): Json {
  const list = (port: number) => cluster.brokers.map((b) => `${b.host}:${port}`).join(',');
  const out: Json = {};
  if (cluster.tls) {
    out.BootstrapBrokerStringTls = list(9094);
  }
  if (cluster.scram) {
    out.BootstrapBrokerStringSaslScram = list(9096);
  }
  if (cluster.iam) {
    out.BootstrapBrokerStringSaslIam = list(9098);
  }
  return out;
}

function flatten(value: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value as Json)) {
      flatten(v, prefix ? `${prefix}.${k}` : k, out);
    }
  } else {
    out[prefix] = value;
  }
  return out;
}

function asList(value: unknown): unknown[] {
  if (value === undefined) {
    return [];
  }
  return Array.isArray(value) ? value : [value];
}
