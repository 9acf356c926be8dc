/**
 * Deploy-time values: the synthesized templates deployed into a world that answers like AWS
 * (broker hosts, endpoint service names, AZ IDs, ARNs in both partitions, ListNodes and
 * GetBootstrapBrokers in their documented shapes), with every intrinsic function and dynamic
 * reference evaluated. A test fails on any expression that cannot resolve, on a create-time
 * rejection, and on any value that deploys but cannot work (tools in ./support).
 */
import { mskBrokerHost, zonesOf } from './support/aws-world';
import {
  CONSUMER_ACCOUNT, DeployedApp, deployTemplates, DeployVariant, PRODUCER_ACCOUNT, StackTemplate, synthesizeVariant,
} from './support/deploy-app';
import {
  allFindings, arnFindings, bootstrapFindings, brokerRouteFindings, endpointServiceNameFindings, securityGroupFindings,
  templateLimitFindings,
} from './support/deploy-checks';
import { DeployError, DeployWorld } from './support/template-evaluator';

type Json = Record<string, unknown>;

const ENV = { stackName: 'unit', account: PRODUCER_ACCOUNT, region: 'us-east-1' };
const CN_ENV = { stackName: 'unit', account: PRODUCER_ACCOUNT, region: 'cn-north-1' };

function deployOne(template: Json, env = ENV, world = new DeployWorld()) {
  return world.deploy(template, env);
}

function output(template: Json, env = ENV): unknown {
  return deployOne({ ...template, Outputs: { Out: { Value: template.Value } } }, env).outputs.Out;
}

describe('template evaluator', () => {
  const queue = { Q: { Type: 'AWS::SQS::Queue', Properties: { QueueName: 'pipeline-poison.fifo', FifoQueue: true } } };

  test('pseudo parameters, Ref and Fn::GetAtt give real-format values in both partitions', () => {
    expect(output({ Value: { 'Fn::Join': [':', [{ Ref: 'AWS::Partition' }, { Ref: 'AWS::URLSuffix' }, { Ref: 'AWS::AccountId' }]] } }))
      .toBe(`aws:amazonaws.com:${PRODUCER_ACCOUNT}`);
    expect(output({ Value: { Ref: 'AWS::URLSuffix' } }, CN_ENV)).toBe('amazonaws.com.cn');
    expect(output({ Resources: queue, Value: { 'Fn::GetAtt': ['Q', 'Arn'] } }, CN_ENV))
      .toBe(`arn:aws-cn:sqs:cn-north-1:${PRODUCER_ACCOUNT}:pipeline-poison.fifo`);
    expect(output({ Resources: queue, Value: { Ref: 'Q' } }))
      .toBe(`https://sqs.us-east-1.amazonaws.com/${PRODUCER_ACCOUNT}/pipeline-poison.fifo`);
  });

  test('Fn::Select out of range fails with the list it got', () => {
    expect(() => output({ Value: { 'Fn::Select': [1, { 'Fn::Split': ['.msk-lambda-pipeline.', 'b-1.msklambdapipeline.w7j4hk.c2.kafka.us-east-1.amazonaws.com'] }] } }))
      .toThrow(/Fn::Select index 1 is out of range for a list of 1 element\(s\): \["b-1\.msklambdapipeline/);
    expect(output({ Value: { 'Fn::Select': ['1', { 'Fn::Split': [',', 'a,b'] }] } })).toBe('b');
  });

  test('Fn::Sub with pseudo parameters, attributes, local variables and escapes', () => {
    expect(output({
      Resources: queue,
      Value: { 'Fn::Sub': ['${AWS::Region}/${Q.QueueName}/${Local}/${!Literal}', { Local: { Ref: 'AWS::AccountId' } }] },
    })).toBe(`us-east-1/pipeline-poison.fifo/${PRODUCER_ACCOUNT}/\${Literal}`);
  });

  test('conditions, Fn::If and AWS::NoValue', () => {
    const template = {
      Conditions: { IsChina: { 'Fn::Equals': [{ Ref: 'AWS::Partition' }, 'aws-cn'] } },
      Resources: queue,
      Outputs: {
        Suffix: { Value: { 'Fn::If': ['IsChina', 'cn', 'global'] } },
        Both: { Value: { 'Fn::Join': ['-', [{ 'Fn::If': ['IsChina', { Ref: 'AWS::NoValue' }, 'a'] }, 'b']] } },
      },
    };
    expect(deployOne(template, CN_ENV).outputs).toEqual({ Suffix: 'cn', Both: 'b' });
    expect(deployOne(template).outputs).toEqual({ Suffix: 'global', Both: 'a-b' });
  });

  test('Fn::GetAZs answers the zones of the account; a subnet in a zone the region lacks is rejected', () => {
    expect(output({ Value: { 'Fn::Join': [',', { 'Fn::GetAZs': '' }] } }, CN_ENV)).toBe('cn-north-1a,cn-north-1b,cn-north-1d');
    const subnet = (az: string) => ({ Resources: { S: { Type: 'AWS::EC2::Subnet', Properties: { CidrBlock: '10.0.0.0/24', AvailabilityZone: az, VpcId: 'vpc-1' } } } });
    expect(() => deployOne(subnet('cn-north-1c'), CN_ENV)).toThrow(/cn-north-1c.*is invalid/);
    expect(() => deployOne(subnet('cn-north-1d'), CN_ENV)).not.toThrow();
    // The same zone name is a different physical zone in another account.
    expect(zonesOf(PRODUCER_ACCOUNT, 'us-east-1')).not.toEqual(zonesOf(CONSUMER_ACCOUNT, 'us-east-1'));
  });

  test('Fn::ImportValue needs an export of the same account and region', () => {
    const world = new DeployWorld();
    deployOne({ Outputs: { X: { Value: 'v', Export: { Name: 'shared' } } } }, { ...ENV, stackName: 'exporter' }, world);
    expect(deployOne({ Outputs: { Y: { Value: { 'Fn::ImportValue': 'shared' } } } }, ENV, world).outputs.Y).toBe('v');
    expect(() => deployOne({ Outputs: { Y: { Value: { 'Fn::ImportValue': 'shared' } } } }, { ...ENV, account: CONSUMER_ACCOUNT }, world))
      .toThrow(/no export named shared in account 444455556666/);
  });

  test('an unknown attribute, resource or resource type fails', () => {
    expect(() => output({ Resources: queue, Value: { 'Fn::GetAtt': ['Q', 'Endpoint'] } })).toThrow(/has no attribute Endpoint/);
    expect(() => output({ Value: { Ref: 'Missing' } })).toThrow(/neither a resource/);
    expect(() => deployOne({ Resources: { T: { Type: 'AWS::Made::Up', Properties: {} } } })).toThrow(/no deploy-time model for AWS::Made::Up/);
  });

  test('dynamic references resolve from the secret\'s evaluated SecretString, and fail on a missing key', () => {
    const world = new DeployWorld();
    const producer = deployOne({
      Resources: { S: { Type: 'AWS::SecretsManager::Secret', Properties: { SecretString: { 'Fn::Join': ['', ['{"zone":"', { Ref: 'AWS::Region' }, '"}']] } } } },
      Outputs: { Arn: { Value: { Ref: 'S' } } },
    }, ENV, world);
    const arn = String(producer.outputs.Arn);
    expect(arn).toMatch(new RegExp(`^arn:aws:secretsmanager:us-east-1:${PRODUCER_ACCOUNT}:secret:S-[A-Za-z0-9]{12}-[A-Za-z0-9]{6}$`));
    const zone = deployOne({
      Resources: { Z: { Type: 'AWS::Route53::HostedZone', Properties: { Name: `{{resolve:secretsmanager:${arn}:SecretString:zone::}}.example.com` } } },
    }, { ...ENV, stackName: 'zone' }, world);
    expect(world.state.zones.get(String(zone.resources.get('Z')?.created.ref))?.name).toBe('us-east-1.example.com');
    expect(() => deployOne({
      Resources: { Z: { Type: 'AWS::Route53::HostedZone', Properties: { Name: `{{resolve:secretsmanager:${arn}:SecretString:missing::}}` } } },
    }, { ...ENV, stackName: 'zone2' }, world)).toThrow(/has no key missing/);
  });

  test('another account reads a secret only with a resource policy and a customer managed key that allow it', () => {
    const world = new DeployWorld();
    const secretTemplate = (shared: boolean) => ({
      Resources: {
        K: { Type: 'AWS::KMS::Key', Properties: { KeyPolicy: { Statement: shared ? [{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${CONSUMER_ACCOUNT}:root` }, Action: 'kms:Decrypt', Resource: '*' }] : [] } } },
        S: { Type: 'AWS::SecretsManager::Secret', Properties: { SecretString: '{"a":"1"}', KmsKeyId: { 'Fn::GetAtt': ['K', 'Arn'] } } },
        P: {
          Type: 'AWS::SecretsManager::ResourcePolicy',
          Properties: { SecretId: { Ref: 'S' }, ResourcePolicy: { Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${CONSUMER_ACCOUNT}:root` }, Action: 'secretsmanager:GetSecretValue', Resource: '*' }] } },
        },
      },
      Outputs: { Arn: { Value: { Ref: 'S' } } },
    });
    const consumerEnv = { ...ENV, account: CONSUMER_ACCOUNT };
    for (const shared of [true, false]) {
      const arn = String(deployOne(secretTemplate(shared), { ...ENV, stackName: `p${shared}` }, world).outputs.Arn);
      const read = () => deployOne({
        Resources: { Z: { Type: 'AWS::Route53::HostedZone', Properties: { Name: `{{resolve:secretsmanager:${arn}:SecretString:a::}}.example.com` } } },
      }, { ...consumerEnv, stackName: `c${shared}` }, world);
      if (shared) {
        expect(read).not.toThrow();
      } else {
        expect(read).toThrow(/AccessDenied: the key policy/);
      }
    }
  });

  test('the discovery custom resource answers ListNodes and GetBootstrapBrokers in the documented shape', () => {
    const world = new DeployWorld();
    const call = (action: string, paths: string[]) => ({
      'Fn::Join': ['', [`{"service":"Kafka","action":"${action}","parameters":{"ClusterArn":"`, { Ref: 'C' }, `"},"outputPaths":${JSON.stringify(paths)}}`]],
    });
    const stack = deployOne({
      Resources: {
        S1: { Type: 'AWS::EC2::Subnet', Properties: { CidrBlock: '10.10.0.0/24', AvailabilityZone: 'cn-north-1a', VpcId: 'v' } },
        S2: { Type: 'AWS::EC2::Subnet', Properties: { CidrBlock: '10.10.1.0/24', AvailabilityZone: 'cn-north-1b', VpcId: 'v' } },
        C: {
          Type: 'AWS::MSK::Cluster',
          Properties: {
            ClusterName: 'techx-tf4-orders', NumberOfBrokerNodes: 2, KafkaVersion: '3.8.x',
            BrokerNodeGroupInfo: { ClientSubnets: [{ Ref: 'S1' }, { Ref: 'S2' }] },
            ClientAuthentication: { Sasl: { Scram: { Enabled: true }, Iam: { Enabled: true } } },
          },
        },
        Nodes: { Type: 'Custom::AWS', Properties: { Create: call('ListNodes', ['NodeInfoList.1.BrokerNodeInfo']) } },
        Boot: { Type: 'Custom::AWS', Properties: { Create: call('GetBootstrapBrokers', ['BootstrapBrokerStringSaslScram']) } },
      },
      Outputs: {
        Host: { Value: { 'Fn::GetAtt': ['Nodes', 'NodeInfoList.1.BrokerNodeInfo.Endpoints.0'] } },
        Ip: { Value: { 'Fn::GetAtt': ['Nodes', 'NodeInfoList.1.BrokerNodeInfo.ClientVpcIpAddress'] } },
        Scram: { Value: { 'Fn::GetAtt': ['Boot', 'BootstrapBrokerStringSaslScram'] } },
      },
    }, CN_ENV, world);
    const host = String(stack.outputs.Host);
    expect(host).toMatch(/^b-2\.techxtf4orders\.[a-z0-9]{6}\.c2\.kafka\.cn-north-1\.amazonaws\.com\.cn$/);
    expect(stack.outputs.Ip).toMatch(/^10\.10\.1\.\d+$/);
    expect(String(stack.outputs.Scram).split(',')).toEqual([host.replace('b-2.', 'b-1.') + ':9096', `${host}:9096`]);
    // Only outputPaths are in the response; anything else is a missing attribute.
    const node0 = { Resources: stack.template.Resources, Outputs: { X: { Value: { 'Fn::GetAtt': ['Nodes', 'NodeInfoList.0.BrokerNodeInfo.Endpoints.0'] } } } };
    expect(() => deployOne(node0 as Json, { ...CN_ENV, stackName: 'again' })).toThrow(/has no attribute NodeInfoList\.0/);
  });

  test('a custom resource with an inline Node.js handler runs against the world\'s SDK answers', () => {
    const handler = [
      'const { KafkaClient, ListNodesCommand } = require("@aws-sdk/client-kafka");',
      'exports.handler = async (event) => {',
      '  const page = await new KafkaClient({}).send(new ListNodesCommand({ ClusterArn: event.ResourceProperties.ClusterArn }));',
      '  const data = {};',
      '  for (const n of page.NodeInfoList) { data[`Broker${n.BrokerNodeInfo.BrokerId}Host`] = n.BrokerNodeInfo.Endpoints[0]; }',
      '  if (Object.keys(data).length !== Number(event.ResourceProperties.BrokerCount)) { throw new Error("broker count"); }',
      '  return { PhysicalResourceId: event.ResourceProperties.ClusterArn, Data: data };',
      '};',
    ].join('\n');
    const template = (count: number) => ({
      Resources: {
        S1: { Type: 'AWS::EC2::Subnet', Properties: { CidrBlock: '10.10.0.0/24', AvailabilityZone: 'us-east-1a', VpcId: 'v' } },
        C: { Type: 'AWS::MSK::Cluster', Properties: { ClusterName: 'demo-cluster-1', NumberOfBrokerNodes: 2, BrokerNodeGroupInfo: { ClientSubnets: [{ Ref: 'S1' }] } } },
        H: { Type: 'AWS::Lambda::Function', Properties: { Runtime: 'nodejs24.x', Handler: 'index.handler', Code: { ZipFile: handler }, Role: 'r' } },
        Framework: { Type: 'AWS::Lambda::Function', Properties: { Runtime: 'nodejs24.x', Code: { S3Bucket: 'b', S3Key: 'k' }, Role: 'r', Environment: { Variables: { USER_ON_EVENT_FUNCTION_ARN: { 'Fn::GetAtt': ['H', 'Arn'] } } } } },
        Brokers: { Type: 'Custom::MskBrokers', Properties: { ServiceToken: { 'Fn::GetAtt': ['Framework', 'Arn'] }, ClusterArn: { Ref: 'C' }, BrokerCount: count } },
      },
      Outputs: { Host: { Value: { 'Fn::GetAtt': ['Brokers', 'Broker2Host'] } } },
    });
    expect(String(deployOne(template(2)).outputs.Host)).toMatch(/^b-2\.democluster1\.[a-z0-9]{6}\.c2\.kafka\.us-east-1\.amazonaws\.com$/);
    expect(() => deployOne(template(3))).toThrow(/the custom resource handler failed: broker count/);
  });

  test('broker hosts follow MSK\'s format: the cluster label loses its hyphens', () => {
    expect(mskBrokerHost('demo-cluster-1', 'seed', 1, 'us-east-1')).toMatch(/^b-1\.democluster1\.[a-z0-9]{6}\.c2\.kafka\.us-east-1\.amazonaws\.com$/);
    expect(mskBrokerHost('techx-tf4-orders', 'seed', 2, 'cn-north-1')).toMatch(/^b-2\.techxtf4orders\.[a-z0-9]{6}\.c2\.kafka\.cn-north-1\.amazonaws\.com\.cn$/);
  });
});

/** Deploys and checks; a deployment failure is the one finding. */
function deployAndCheck(templates: readonly StackTemplate[]): { app?: DeployedApp; findings: string[] } {
  try {
    const app = deployTemplates(templates);
    return { app, findings: allFindings(app.world, app.stacks) };
  } catch (error) {
    if (error instanceof DeployError) {
      return { findings: [`deployment fails: ${error.message}`] };
    }
    throw error;
  }
}

const cache = new Map<string, StackTemplate[]>();
function templatesOf(variant: DeployVariant): StackTemplate[] {
  const key = JSON.stringify(variant);
  if (!cache.has(key)) {
    cache.set(key, synthesizeVariant(variant));
  }
  return cache.get(key) as StackTemplate[];
}

/**
 * A cluster name without hyphens in a three-zone region, so this variant gets past the cluster
 * domain and zone problems the variants above report: it is their control and the base of the
 * planted-fault tests (which need it to deploy, not to be free of findings).
 */
const BASELINE: DeployVariant = { region: 'eu-west-1', crossAccount: true, config: { msk: { clusterName: 'democluster1' } } };

describe('the app deploys with real deploy-time values', () => {
  const variants: [string, DeployVariant][] = [
    ['one account, aws (us-east-1), default cluster name', { region: 'us-east-1', crossAccount: false }],
    ['two accounts, aws (us-east-1), default cluster name', { region: 'us-east-1', crossAccount: true }],
    ['one account, aws-cn (cn-north-1), default cluster name', { region: 'cn-north-1', crossAccount: false }],
    ['two accounts, aws-cn (cn-north-1), cluster techx-tf4-orders', { region: 'cn-north-1', crossAccount: true, config: { msk: { clusterName: 'techx-tf4-orders' } } }],
    ['two accounts, aws (eu-west-1, three zones), cluster without hyphens', BASELINE],
  ];
  test.each(variants)('%s', (_name, variant) => {
    expect(deployAndCheck(templatesOf(variant)).findings).toEqual([]);
  });

  test('twelve brokers are refused at synth or stay within CloudFormation\'s limits', () => {
    let templates: StackTemplate[];
    try {
      templates = templatesOf({ region: 'us-east-1', crossAccount: false, config: { msk: { clusterName: 'democluster1', brokerCount: 12 } } });
    } catch (error) {
      // Our config validation, or CDK's own CloudFormation validation (at most 10 bootstrap servers).
      expect(String(error)).toMatch(/brokerCount|KafkaBootstrapServers|dynamic reference/);
      return;
    }
    expect(deployAndCheck(templates).findings).toEqual([]);
  });
});

describe('the checks catch planted faults (so a pass is not vacuous)', () => {
  const mutate = (edit: (stackName: string, template: Json) => void): StackTemplate[] => templatesOf(BASELINE).map((t) => {
    const template = JSON.parse(JSON.stringify(t.template)) as Json;
    edit(t.name, template);
    return { ...t, template };
  });
  const resources = (template: Json) => Object.values((template.Resources ?? {}) as Record<string, Json>);

  test('the baseline deploys clean', () => {
    const { app, findings } = deployAndCheck(templatesOf(BASELINE));
    expect(findings).toEqual([]);
    // It really evaluated the cross-account route: three brokers behind PrivateLink.
    expect(app?.world.state.records.filter((r) => r.name.startsWith('b-'))).toHaveLength(3);
    expect(app?.world.state.endpointServices).toHaveLength(3);
  });

  test('a bootstrap server on a port the cluster does not listen on', () => {
    const templates = mutate((_name, t) => {
      for (const secret of resources(t).filter((r) => r.Type === 'AWS::SecretsManager::Secret')) {
        secret.Properties = JSON.parse(JSON.stringify(secret.Properties).replace(/:9096/g, ':9092'));
      }
    });
    const { app } = deployAndCheck(templates);
    expect(app).toBeDefined();
    const deployed = app as DeployedApp;
    expect(bootstrapFindings(deployed.world, deployed.stacks).join('\n')).toMatch(/:9092: the cluster listens on 9094 \(tls\), 9096 \(scram\), 9098 \(iam\)/);
    expect(brokerRouteFindings(deployed.world, deployed.stacks).join('\n')).toMatch(/has no listener on 9092/);
  });

  test('a record that points a broker name at another broker\'s endpoint', () => {
    const templates = mutate((name, t) => {
      if (!name.startsWith('consumer')) {
        return;
      }
      const records = resources(t).filter((r) => r.Type === 'AWS::Route53::RecordSet');
      const [a, b] = records.map((r) => (r.Properties as Json).AliasTarget);
      (records[0].Properties as Json).AliasTarget = b;
      (records[1].Properties as Json).AliasTarget = a;
    });
    const { app } = deployAndCheck(templates);
    expect(app && brokerRouteFindings(app.world, app.stacks).join('\n')).toMatch(/its endpoint's NLB forwards to/);
  });

  test('an ARN in the wrong partition, an invented endpoint service name, a bad port range, too many dynamic references', () => {
    const templates = mutate((name, t) => {
      if (name === 'producer-stack') {
        (t.Outputs as Json).Planted = { Value: 'arn:aws-cn:sqs:us-east-1:111122223333:q com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0' };
      }
      if (name === 'producer-vpc') {
        const sg = resources(t).find((r) => r.Type === 'AWS::EC2::SecurityGroup') as Json;
        (sg.Properties as Json).SecurityGroupEgress = [{ IpProtocol: 'tcp', FromPort: 9098, ToPort: 9096, CidrIp: '10.0.0.0/8' }];
      }
      if (name.startsWith('consumer')) {
        t.Metadata = { ...((t.Metadata ?? {}) as Json), Padding: Array(61).fill('{{resolve:secretsmanager:x}}') };
      }
    });
    const { app } = deployAndCheck(templates);
    expect(app).toBeDefined();
    const deployed = app as DeployedApp;
    expect(arnFindings(deployed.world, deployed.stacks).join('\n')).toMatch(/arn:aws-cn:sqs:us-east-1.* is in partition aws-cn, the stack deploys to aws/);
    expect(endpointServiceNameFindings(deployed.world, deployed.stacks).join('\n')).toMatch(/vpce-svc-0123456789abcdef0 is no endpoint service/);
    expect(securityGroupFindings(deployed.world, deployed.stacks).join('\n')).toMatch(/ports 9098-9096/);
    expect(templateLimitFindings(deployed.stacks).join('\n')).toMatch(/consumer-stack: \d+ dynamic references; CloudFormation allows 60/);
  });

  test('a hosted zone for the whole kafka.<region> domain instead of the cluster\'s', () => {
    const templates = mutate((name, t) => {
      if (name.startsWith('consumer')) {
        const zone = resources(t).find((r) => r.Type === 'AWS::Route53::HostedZone') as Json;
        (zone.Properties as Json).Name = 'kafka.eu-west-1.amazonaws.com.';
      }
    });
    const { app } = deployAndCheck(templates);
    expect(app).toBeDefined();
    const deployed = app as DeployedApp;
    expect(brokerRouteFindings(deployed.world, deployed.stacks).join('\n'))
      .toMatch(/kafka\.eu-west-1\.amazonaws\.com is not the brokers' parent domain \(democluster1\.[a-z0-9]{6}\.c2\.kafka/);
  });

  test('the broker endpoints admitting nothing from the mappings', () => {
    const templates = mutate((name, t) => {
      if (!name.startsWith('consumer')) {
        return;
      }
      for (const [id, r] of Object.entries(t.Resources as Record<string, Json>)) {
        if (r.Type === 'AWS::EC2::SecurityGroupIngress' && JSON.stringify(r.Properties).includes('9096')) {
          delete (t.Resources as Json)[id];
        }
      }
      for (const r of resources(t)) {
        if (Array.isArray(r.DependsOn)) {
          r.DependsOn = r.DependsOn.filter((d) => d in (t.Resources as Json));
        }
      }
    });
    const { app } = deployAndCheck(templates);
    expect(app && securityGroupFindings(app.world, app.stacks).join('\n')).toMatch(/admits nothing on 9096/);
  });
});
