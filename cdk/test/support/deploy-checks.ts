/**
 * Checks over a deployed world for values that deploy but would not work, or that AWS would
 * reject later: hosted zones and broker records, the DNS -> endpoint -> NLB -> broker route of every
 * bootstrap server, endpoint service names, ARNs, security-group ports and reachability, secret
 * names, and CloudFormation's per-template limits. Each returns findings; none means it holds.
 */
import { cloudWatchLogsMayUseKey, PolicyStatement } from './iam-policy';
import { isValidDnsName } from './resource-models';
import { EvaluatedStack, DeployWorld } from './template-evaluator';

type Json = Record<string, unknown>;

/** CloudFormation quotas ("CloudFormation quotas" page and the dynamic references page). */
export const CLOUDFORMATION_LIMITS = {
  dynamicReferencesPerTemplate: 60,
  resourcesPerTemplate: 500,
  outputsPerTemplate: 200,
  templateBytes: 1_000_000,
} as const;

/** Kafka listener ports of MSK (TLS, SASL/SCRAM, IAM), from the MSK port reference. */
export const MSK_PORTS: Readonly<Record<string, number>> = { tls: 9094, scram: 9096, iam: 9098 };

/** Services whose ARNs carry no region (IAM, S3 buckets and objects, Route 53, STS roles). */
const GLOBAL_ARN_SERVICES = new Set(['iam', 's3', 'route53', 'sts', 'cloudfront']);

function allStrings(node: unknown, visit: (s: string, path: string) => void, path = ''): void {
  if (typeof node === 'string') {
    visit(node, path);
  } else if (Array.isArray(node)) {
    node.forEach((v, i) => allStrings(v, visit, `${path}[${i}]`));
  } else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node as Json)) {
      allStrings(v, visit, `${path}.${k}`);
      // Policy documents and secret values are often JSON text.
      if (typeof v === 'string' && /^\s*[{[]/.test(v)) {
        try {
          allStrings(JSON.parse(v), visit, `${path}.${k}(json)`);
        } catch {
          // not JSON
        }
      }
    }
  }
}

function resourcesOfType(stack: EvaluatedStack, type: string) {
  return [...stack.resources.values()].filter((r) => r.type === type);
}

export function templateLimitFindings(stacks: readonly EvaluatedStack[]): string[] {
  const out: string[] = [];
  for (const s of stacks) {
    const name = s.env.stackName;
    if (s.dynamicReferenceCount > CLOUDFORMATION_LIMITS.dynamicReferencesPerTemplate) {
      out.push(`${name}: ${s.dynamicReferenceCount} dynamic references; CloudFormation allows ${CLOUDFORMATION_LIMITS.dynamicReferencesPerTemplate} per template`);
    }
    const resources = Object.keys((s.template.Resources ?? {}) as Json).length;
    if (resources > CLOUDFORMATION_LIMITS.resourcesPerTemplate) {
      out.push(`${name}: ${resources} resources; CloudFormation allows ${CLOUDFORMATION_LIMITS.resourcesPerTemplate}`);
    }
    const outputs = Object.keys((s.template.Outputs ?? {}) as Json).length;
    if (outputs > CLOUDFORMATION_LIMITS.outputsPerTemplate) {
      out.push(`${name}: ${outputs} outputs; CloudFormation allows ${CLOUDFORMATION_LIMITS.outputsPerTemplate}`);
    }
    const bytes = Buffer.byteLength(JSON.stringify(s.template));
    if (bytes > CLOUDFORMATION_LIMITS.templateBytes) {
      out.push(`${name}: template is ${bytes} bytes; CloudFormation accepts at most ${CLOUDFORMATION_LIMITS.templateBytes}`);
    }
  }
  return out;
}

/**
 * Every ARN in every evaluated property, output and secret value: the stack's partition, a
 * service, the region (empty for global services) and an account of this world (or `aws` for AWS
 * managed policies, empty for S3).
 */
export function arnFindings(world: DeployWorld, stacks: readonly EvaluatedStack[]): string[] {
  const out: string[] = [];
  const accounts = new Set(stacks.map((s) => s.env.account));
  const check = (arn: string, where: string, partition: string, region: string) => {
    const parts = arn.split(':');
    if (parts.length < 6) {
      out.push(`${where}: ${arn} is not an ARN (arn:partition:service:region:account:resource)`);
      return;
    }
    const [, p, service, r, account] = parts;
    if (p !== partition) {
      out.push(`${where}: ${arn} is in partition ${p}, the stack deploys to ${partition}`);
    }
    if (!/^[a-z0-9-]+$/.test(service)) {
      out.push(`${where}: ${arn} has no service`);
    }
    const wildcard = (v: string) => v === '*' || v.includes('${');
    if (GLOBAL_ARN_SERVICES.has(service)) {
      if (r !== '') {
        out.push(`${where}: ${arn}: ${service} ARNs have no region`);
      }
    } else if (r !== region && !wildcard(r)) {
      out.push(`${where}: ${arn} names region ${JSON.stringify(r)}, the stack deploys to ${region}`);
    }
    const accountOk = (service === 's3' && account === '') || account === 'aws' || wildcard(account) || accounts.has(account);
    if (!accountOk) {
      out.push(`${where}: ${arn} names account ${JSON.stringify(account)}, not one of ${[...accounts].join(', ')}`);
    }
  };
  for (const s of stacks) {
    const visit = (value: string, path: string) => {
      for (const m of value.matchAll(/arn:[A-Za-z0-9-]*:[^"\s,]*/g)) {
        check(m[0], `${s.env.stackName}${path}`, s.partition.partition, s.env.region);
      }
    };
    for (const r of s.resources.values()) {
      allStrings(r.properties, visit, `/${r.logicalId}`);
    }
    allStrings(s.outputs, visit, '/Outputs');
  }
  for (const secret of world.state.secrets) {
    allStrings(secret.secretString, (v, p) => {
      for (const m of v.matchAll(/arn:[A-Za-z0-9-]*:[^"\s,]*/g)) {
        check(m[0], `secret ${secret.name}${p}`, secret.arn.split(':')[1], secret.region);
      }
    });
  }
  return out;
}

/** Every PrivateLink endpoint service name anywhere (secrets, outputs, properties) names a real service. */
export function endpointServiceNameFindings(world: DeployWorld, stacks: readonly EvaluatedStack[]): string[] {
  const out: string[] = [];
  const real = new Set(world.state.endpointServices.map((s) => s.name));
  const visit = (where: string) => (value: string) => {
    for (const m of value.matchAll(/[a-z.]*vpce\.[a-z0-9-]+\.vpce-svc-[0-9a-f]+/g)) {
      if (!real.has(m[0])) {
        out.push(`${where}: ${m[0]} is no endpoint service (services: ${[...real].join(', ') || 'none'})`);
      }
    }
    for (const m of value.matchAll(/vpce-svc-[0-9a-z]+/g)) {
      if (!/^vpce-svc-[0-9a-f]{17}$/.test(m[0])) {
        out.push(`${where}: ${m[0]} is not an endpoint service id (vpce-svc- and 17 hex digits)`);
      }
    }
  };
  for (const s of stacks) {
    for (const r of s.resources.values()) {
      allStrings(r.properties, visit(`${s.env.stackName}/${r.logicalId}`));
    }
    allStrings(s.outputs, visit(`${s.env.stackName}/Outputs`));
  }
  for (const secret of world.state.secrets) {
    allStrings(secret.secretString, visit(`secret ${secret.name}`));
  }
  return out;
}

/** `host:port,host:port` lists, as Kafka clients take them. */
function bootstrapLists(value: string): string[][] | undefined {
  if (!/^[A-Za-z0-9.-]+:\d+(,[A-Za-z0-9.-]+:\d+)*$/.test(value) || !value.includes('.kafka.')) {
    return undefined;
  }
  return value.split(',').map((hp) => hp.split(':'));
}

/**
 * Every Kafka bootstrap list (function environments, event source mappings, custom resources,
 * secret values): real broker hosts of a cluster in this world, on a listener the cluster has.
 */
export function bootstrapFindings(world: DeployWorld, stacks: readonly EvaluatedStack[]): string[] {
  const out: string[] = [];
  const brokers = new Map(world.state.clusters.flatMap((c) => c.brokers.map((b) => [b.host, c] as const)));
  const check = (where: string) => (value: string) => {
    for (const [host, port] of bootstrapLists(value) ?? []) {
      const cluster = brokers.get(host);
      if (!cluster) {
        out.push(`${where}: ${host}:${port} is not a broker of any cluster (brokers: ${[...brokers.keys()].join(', ')})`);
        continue;
      }
      const enabled = Object.entries(MSK_PORTS).filter(([listener]) => (cluster as unknown as Record<string, boolean>)[listener]);
      if (!enabled.some(([, p]) => String(p) === port)) {
        out.push(`${where}: ${host}:${port}: the cluster listens on ${enabled.map(([l, p]) => `${p} (${l})`).join(', ')}`);
      }
    }
  };
  for (const s of stacks) {
    for (const r of s.resources.values()) {
      allStrings(r.properties, check(`${s.env.stackName}/${r.logicalId}`));
      if (r.type === 'AWS::Lambda::EventSourceMapping') {
        const servers = (((r.properties.SelfManagedEventSource as Json | undefined)?.Endpoints as Json | undefined)?.KafkaBootstrapServers ?? []) as string[];
        servers.forEach(check(`${s.env.stackName}/${r.logicalId}.KafkaBootstrapServers`));
      }
    }
  }
  for (const secret of world.state.secrets) {
    allStrings(secret.secretString, check(`secret ${secret.name}`));
  }
  return out;
}

/**
 * The cluster's hosted zone and records, and the route of every bootstrap server a consumer-side
 * event source mapping uses: its host resolves, inside a private zone of the mapping's account
 * that is exactly the brokers' parent domain, to an interface endpoint of an endpoint service
 * whose NLB listens on that port and forwards to that very broker's IP.
 */
export function brokerRouteFindings(world: DeployWorld, stacks: readonly EvaluatedStack[]): string[] {
  const out: string[] = [];
  const state = world.state;
  const brokerByHost = new Map(state.clusters.flatMap((c) => c.brokers.map((b) => [b.host, { cluster: c, broker: b }] as const)));
  const clusterDomains = new Set(state.clusters.flatMap((c) => c.brokers.map((b) => b.host.split('.').slice(1).join('.'))));
  for (const [zoneId, zone] of state.zones) {
    if (/(^|\.)kafka\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$/.test(zone.name)) {
      if (!clusterDomains.has(zone.name)) {
        out.push(`hosted zone ${zoneId} ${zone.name} is not the brokers' parent domain (${[...clusterDomains].join(', ')})`);
      }
    }
    if (!isValidDnsName(zone.name)) {
      out.push(`hosted zone ${zoneId}: ${zone.name} is not a valid DNS name`);
    }
  }
  for (const s of stacks) {
    for (const mapping of resourcesOfType(s, 'AWS::Lambda::EventSourceMapping')) {
      const servers = (((mapping.properties.SelfManagedEventSource as Json | undefined)?.Endpoints as Json | undefined)?.KafkaBootstrapServers ?? []) as string[];
      for (const server of servers) {
        const [host, portText] = server.split(':');
        const where = `${s.env.stackName}/${mapping.logicalId}: ${server}`;
        const target = brokerByHost.get(host);
        if (!target) {
          out.push(`${where}: not a broker host`);
          continue;
        }
        const zoneEntry = [...state.zones.entries()].find(([, z]) => z.account === s.env.account && (host === z.name || host.endsWith(`.${z.name}`)));
        if (!zoneEntry) {
          out.push(`${where}: no private hosted zone of account ${s.env.account} holds ${host}; it resolves to the producer's private IP`);
          continue;
        }
        const [zoneId, zone] = zoneEntry;
        if (zone.name !== host.split('.').slice(1).join('.')) {
          out.push(`${where}: zone ${zone.name} is not the broker's parent domain`);
        }
        const record = state.records.find((r) => r.zoneId === zoneId && r.name === host && r.type === 'A');
        if (!record?.aliasDnsName) {
          out.push(`${where}: zone ${zone.name} has no A alias record for ${host}`);
          continue;
        }
        const endpoint = [...state.endpoints.values()].find((e) => e.dnsEntries.some((d) => d.split(':')[1] === record.aliasDnsName && d.split(':')[0] === record.aliasZoneId));
        if (!endpoint) {
          out.push(`${where}: the record for ${host} aliases ${record.aliasDnsName}, which is no interface endpoint's DNS entry`);
          continue;
        }
        const service = state.endpointServices.find((e) => e.name === endpoint.serviceName);
        if (!service) {
          out.push(`${where}: endpoint ${endpoint.id} connects to ${endpoint.serviceName}, which is no endpoint service`);
          continue;
        }
        const port = Number(portText);
        const listeners = state.listeners.filter((l) => service.loadBalancerArns.includes(l.loadBalancerArn) && l.port === port);
        const targets = listeners.flatMap((l) => l.targetGroupArns.flatMap((tg) => state.targetGroups.get(tg)?.targets ?? []));
        if (targets.length === 0) {
          out.push(`${where}: the NLB behind ${service.name} has no listener on ${port}`);
          continue;
        }
        const wrong = targets.filter((t) => t.ip !== target.broker.ip || t.port !== port);
        if (wrong.length > 0) {
          out.push(`${where}: ${host} is broker ${target.broker.brokerId} (${target.broker.ip}:${port}), but its endpoint's NLB forwards to ${wrong.map((t) => `${t.ip}:${t.port}`).join(', ')}`);
        }
      }
    }
  }
  return out;
}

interface Rule { readonly group: string; readonly direction: 'in' | 'out'; readonly protocol: string; readonly from: number; readonly to: number; readonly peerGroup?: string; readonly cidr?: string }

function securityGroupRules(stacks: readonly EvaluatedStack[], findings: string[]): Rule[] {
  const rules: Rule[] = [];
  const add = (group: string, direction: 'in' | 'out', r: Json, where: string) => {
    const protocol = String(r.IpProtocol);
    const from = Number(r.FromPort ?? -1);
    const to = Number(r.ToPort ?? -1);
    if (protocol === 'tcp' || protocol === 'udp' || protocol === '6' || protocol === '17') {
      if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to > 65535 || from > to) {
        findings.push(`${where}: ports ${r.FromPort}-${r.ToPort} are not a range EC2 accepts`);
      }
    }
    rules.push({
      group, direction, protocol, from, to,
      peerGroup: (r.SourceSecurityGroupId ?? r.DestinationSecurityGroupId) as string | undefined,
      cidr: (r.CidrIp ?? r.CidrIpv6) as string | undefined,
    });
  };
  for (const s of stacks) {
    for (const r of s.resources.values()) {
      const where = `${s.env.stackName}/${r.logicalId}`;
      if (r.type === 'AWS::EC2::SecurityGroup') {
        const id = String(r.created.ref);
        ((r.properties.SecurityGroupIngress ?? []) as Json[]).forEach((x) => add(id, 'in', x, where));
        ((r.properties.SecurityGroupEgress ?? []) as Json[]).forEach((x) => add(id, 'out', x, where));
      } else if (r.type === 'AWS::EC2::SecurityGroupIngress') {
        add(String(r.properties.GroupId), 'in', r.properties, where);
      } else if (r.type === 'AWS::EC2::SecurityGroupEgress') {
        add(String(r.properties.GroupId), 'out', r.properties, where);
      }
    }
  }
  return rules;
}

function covers(rule: Rule, port: number): boolean {
  return rule.protocol === '-1' || ((rule.protocol === 'tcp' || rule.protocol === '6') && rule.from <= port && port <= rule.to);
}

/**
 * Security-group ports are valid ranges, and every event source mapping's security groups may
 * send to its bootstrap ports, which the broker endpoints' security groups admit from them.
 */
export function securityGroupFindings(world: DeployWorld, stacks: readonly EvaluatedStack[]): string[] {
  const out: string[] = [];
  const rules = securityGroupRules(stacks, out);
  for (const s of stacks) {
    for (const mapping of resourcesOfType(s, 'AWS::Lambda::EventSourceMapping')) {
      const access = (mapping.properties.SourceAccessConfigurations ?? []) as Json[];
      const groups = access.filter((a) => a.Type === 'VPC_SECURITY_GROUP').map((a) => String(a.URI).replace(/^security_group:/, ''));
      const servers = (((mapping.properties.SelfManagedEventSource as Json | undefined)?.Endpoints as Json | undefined)?.KafkaBootstrapServers ?? []) as string[];
      for (const server of servers) {
        const port = Number(server.split(':')[1]);
        const where = `${s.env.stackName}/${mapping.logicalId}: ${server}`;
        const egress = rules.filter((r) => groups.includes(r.group) && r.direction === 'out' && covers(r, port));
        if (egress.length === 0) {
          out.push(`${where}: the mapping's security groups ${groups.join(', ')} allow no egress on ${port}`);
          continue;
        }
        const endpointGroups = [...world.state.endpoints.values()]
          .filter((e) => e.account === s.env.account && world.state.endpointServices.some((svc) => svc.name === e.serviceName))
          .flatMap((e) => e.securityGroupIds);
        for (const group of new Set(endpointGroups)) {
          const ingress = rules.filter((r) => r.group === group && r.direction === 'in' && covers(r, port)
            && (r.peerGroup === undefined || groups.includes(r.peerGroup)));
          if (ingress.length === 0) {
            out.push(`${where}: the broker endpoints' security group ${group} admits nothing on ${port} from ${groups.join(', ')}`);
          }
        }
      }
    }
  }
  return out;
}

/**
 * Secret names: Secrets Manager advises against ending a name in a hyphen and six characters,
 * which partial-ARN lookups confuse with the generated suffix ("Create an AWS Secrets Manager secret").
 */
export function secretNameFindings(world: DeployWorld): string[] {
  return world.state.secrets
    .filter((s) => /-[A-Za-z0-9]{6}$/.test(s.name))
    .map((s) => `secret ${s.name} ends in a hyphen and six characters, which Secrets Manager confuses with its ARN suffix`);
}

/** Every log group encrypted with a customer managed key names one that CloudWatch Logs may use for it. */
export function logGroupKeyFindings(world: DeployWorld, stacks: readonly EvaluatedStack[]): string[] {
  const out: string[] = [];
  for (const s of stacks) {
    for (const group of resourcesOfType(s, 'AWS::Logs::LogGroup')) {
      const keyArn = group.properties.KmsKeyId;
      if (typeof keyArn !== 'string') {
        continue;
      }
      const policy = (world.state.keyPolicies.get(keyArn) ?? []) as unknown as PolicyStatement[];
      const groupArn = String(group.created.attributes.Arn).replace(/:\*$/, '');
      const missing = ['kms:Encrypt', 'kms:Decrypt', 'kms:GenerateDataKey'].filter((a) => !cloudWatchLogsMayUseKey(policy, s.env.region, groupArn, a));
      if (missing.length > 0) {
        out.push(`${s.env.stackName}/${group.logicalId}: CreateLogGroup fails: the policy of ${keyArn} does not let logs.${s.env.region}.amazonaws.com ${missing.join(', ')} for ${groupArn}`);
      }
    }
  }
  return out;
}

/** Every check; an empty list means the deployment holds. */
export function allFindings(world: DeployWorld, stacks: readonly EvaluatedStack[]): string[] {
  return [
    ...templateLimitFindings(stacks),
    ...arnFindings(world, stacks),
    ...endpointServiceNameFindings(world, stacks),
    ...bootstrapFindings(world, stacks),
    ...brokerRouteFindings(world, stacks),
    ...securityGroupFindings(world, stacks),
    ...secretNameFindings(world),
    ...logGroupKeyFindings(world, stacks),
  ];
}
