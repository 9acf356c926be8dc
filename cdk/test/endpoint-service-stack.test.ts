import { Match, Template } from 'aws-cdk-lib/assertions';
import { KAFKA_CONNECTIONS_MAX_IDLE_SECONDS, MSK_BROKER_HOST, NLB_TCP_IDLE_TIMEOUT } from '../lib/aws-facts';
import { HANDSHAKE_KEYS } from '../lib/constructs/handshake';
import { CONSUMER_ACCOUNT, CROSS_ACCOUNT, logicalIdOf, resourcesOf, synthOnce, text } from './helpers';

describe('producer-endpoint-service (cross-account)', () => {
  const { pipeline } = synthOnce(CROSS_ACCOUNT);
  const template = Template.fromStack(pipeline.endpointService);
  const brokers = pipeline.config.msk.brokerCount;
  const consumerRoot = `arn:aws:iam::${CONSUMER_ACCOUNT}:root`;
  const deployRole = `arn:aws:iam::${CONSUMER_ACCOUNT}:role/cdk-*-cfn-exec-role-${CONSUMER_ACCOUNT}-eu-west-1`;

  test('one internal NLB per broker, TCP passthrough on the SCRAM/TLS port to the broker IP', () => {
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::LoadBalancer', brokers);
    for (const [, lb] of resourcesOf(template, 'AWS::ElasticLoadBalancingV2::LoadBalancer')) {
      expect(lb).toMatchObject({ Type: 'network', Scheme: 'internal' });
      expect(text(lb.LoadBalancerAttributes)).toContain('load_balancing.cross_zone.enabled');
    }
    const listeners = resourcesOf(template, 'AWS::ElasticLoadBalancingV2::Listener');
    expect(listeners).toHaveLength(brokers);
    for (const [, listener] of listeners) {
      expect(listener).toMatchObject({ Port: 9096, Protocol: 'TCP' });
    }
    const groups = resourcesOf(template, 'AWS::ElasticLoadBalancingV2::TargetGroup');
    expect(groups).toHaveLength(brokers);
    for (const [, group] of groups) {
      expect(group).toMatchObject({ Port: 9096, Protocol: 'TCP', TargetType: 'ip' });
      expect(text(group.Targets)).toMatch(/BrokersNodesById[0-9A-F]{8}Broker\dIp/);
    }
  });

  test('NLB n targets the address of broker id n, as BrokerDiscovery reports it', () => {
    for (let n = 1; n <= brokers; n++) {
      const group = logicalIdOf(template, 'AWS::ElasticLoadBalancingV2::TargetGroup', `Broker${n}Target`);
      const [[, props]] = resourcesOf(template, 'AWS::ElasticLoadBalancingV2::TargetGroup').filter(([id]) => id === group);
      expect(text(props.Targets)).toMatch(new RegExp(`BrokersNodesById[0-9A-F]{8}Broker${n}Ip`));
    }
  });

  test('the NLB TCP idle timeout outlasts Kafka\'s connections.max.idle.ms (NLB default 350 s is shorter)', () => {
    for (const [, listener] of resourcesOf(template, 'AWS::ElasticLoadBalancingV2::Listener')) {
      const attributes = listener.ListenerAttributes as { Key: string; Value: string }[];
      const idle = attributes.find((a) => a.Key === NLB_TCP_IDLE_TIMEOUT.attribute);
      expect(Number(idle?.Value)).toBeGreaterThan(KAFKA_CONNECTIONS_MAX_IDLE_SECONDS);
      expect(Number(idle?.Value)).toBeLessThanOrEqual(NLB_TCP_IDLE_TIMEOUT.maxSeconds);
    }
  });

  test('the cluster domain is broker 1\'s host labels 1..5 and the partition DNS suffix, not a split on the cluster name', () => {
    const [[, secret]] = resourcesOf(template, 'AWS::SecretsManager::Secret');
    const parts = (secret.SecretString as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
    const domain = parts.find((p) => text(p).includes('"Fn::Split":["."') && text(p).includes('AWS::URLSuffix'));
    const labels = MSK_BROKER_HOST.clusterDomainLabels.map((i) => ({
      'Fn::Select': [i, { 'Fn::Split': ['.', { 'Fn::ImportValue': expect.stringContaining('Broker1Host') }] }],
    }));
    expect(domain).toEqual({ 'Fn::Join': ['.', [...labels, { Ref: 'AWS::URLSuffix' }]] });
    expect(text(secret.SecretString)).not.toContain(pipeline.config.msk.clusterName);
  });

  test('one endpoint service per broker; only the consumer account may connect; acceptance is explicit', () => {
    const services = resourcesOf(template, 'AWS::EC2::VPCEndpointService');
    expect(services).toHaveLength(brokers);
    for (const [, service] of services) {
      expect(service.AcceptanceRequired).toBe(false);
    }
    const permissions = resourcesOf(template, 'AWS::EC2::VPCEndpointServicePermissions');
    expect(permissions).toHaveLength(brokers);
    for (const [, permission] of permissions) {
      const principals = permission.AllowedPrincipals as unknown[];
      expect(principals).toHaveLength(1);
      expect(text(principals[0])).toContain(`:iam::${CONSUMER_ACCOUNT}:root`);
    }
  });

  test('the NLBs admit nothing but PrivateLink and only talk to the brokers on 9096', () => {
    const nlbSg = logicalIdOf(template, 'AWS::EC2::SecurityGroup', 'NlbSecurityGroup');
    const [[, sg]] = resourcesOf(template, 'AWS::EC2::SecurityGroup').filter(([id]) => id === nlbSg);
    expect(sg.SecurityGroupIngress).toBeUndefined();
    template.hasResourceProperties('AWS::EC2::SecurityGroupEgress', {
      GroupId: { 'Fn::GetAtt': [nlbSg, 'GroupId'] },
      FromPort: 9096,
      ToPort: 9096,
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      SourceSecurityGroupId: { 'Fn::GetAtt': [nlbSg, 'GroupId'] },
      FromPort: 9096,
      ToPort: 9096,
    });
    for (const [, lb] of resourcesOf(template, 'AWS::ElasticLoadBalancingV2::LoadBalancer')) {
      expect(lb.EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic).toBe('off');
    }
  });

  test('the handshake secret is CMK-encrypted and readable by the consumer account only', () => {
    const key = logicalIdOf(template, 'AWS::KMS::Key', 'HandshakeKey');
    const secret = logicalIdOf(template, 'AWS::SecretsManager::Secret', 'Handshake');
    template.hasResourceProperties('AWS::SecretsManager::Secret', { KmsKeyId: { 'Fn::GetAtt': [key, 'Arn'] } });
    template.hasResourceProperties('AWS::SecretsManager::ResourcePolicy', {
      SecretId: { Ref: secret },
      ResourcePolicy: {
        Statement: [Match.objectLike({
          Effect: 'Allow',
          Principal: { AWS: consumerRoot },
          Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
          // Only the consumer account's CloudFormation execution role, not every principal there.
          Condition: { ArnLike: { 'aws:PrincipalArn': deployRole } },
        })],
      },
    });
    const [[, keyProps]] = resourcesOf(template, 'AWS::KMS::Key').filter(([id]) => id === key);
    const statements = (keyProps.KeyPolicy as { Statement: Record<string, unknown>[] }).Statement;
    const consumerStatement = statements.find((s) => text(s.Principal).includes(CONSUMER_ACCOUNT));
    expect(consumerStatement).toMatchObject({
      Action: ['kms:Decrypt', 'kms:DescribeKey'],
      Condition: {
        // The partition's suffix: secretsmanager.cn-north-1.amazonaws.com.cn in China.
        StringEquals: { 'kms:ViaService': { 'Fn::Join': ['', ['secretsmanager.eu-west-1.', { Ref: 'AWS::URLSuffix' }]] } },
        ArnLike: { 'aws:PrincipalArn': deployRole },
      },
    });
    // Besides statements for the key's own account, the consumer account is the only principal.
    const others = new Set(statements.filter((s) => s !== consumerStatement).map((s) => text(s.Principal)));
    expect([...others]).toEqual(['{"AWS":"arn:aws:iam::111111111111:root"}']);
  });

  test('the handshake carries every broker host, port, endpoint and service name and the SCRAM user', () => {
    const [[, secret]] = resourcesOf(template, 'AWS::SecretsManager::Secret');
    const value = text(secret.SecretString);
    for (let n = 1; n <= brokers; n++) {
      for (const key of [HANDSHAKE_KEYS.brokerHost(n), HANDSHAKE_KEYS.brokerPort(n), HANDSHAKE_KEYS.brokerEndpoint(n), HANDSHAKE_KEYS.brokerService(n)]) {
        expect(value).toContain(`\\"${key}\\":`);
      }
    }
    expect(value).toContain(HANDSHAKE_KEYS.clusterDomain);
    // SCRAM credentials are resolved by CloudFormation, never written into the template.
    expect(value).toMatch(/\{\{resolve:secretsmanager:.*:SecretString:password::\}\}/);
    template.hasOutput('HandshakeSecretArn', { Value: { Ref: logicalIdOf(template, 'AWS::SecretsManager::Secret', 'Handshake') } });
  });

  test('the handshake only exists once the topics exist', () => {
    expect(pipeline.endpointService.dependencies).toContain(pipeline.msk);
    const handshake = pipeline.endpointService.handshakeSecret.node;
    expect(handshake.dependencies.map((d) => d.node.path)).toContain(pipeline.msk.topics.node.path);
  });
});

describe('producer-endpoint-service (one account, acceptance required)', () => {
  const { pipeline } = synthOnce({ endpointAcceptanceRequired: true });
  const template = Template.fromStack(pipeline.endpointService);

  test('allowed principal is this account and manual acceptance can be switched on', () => {
    for (const [, service] of resourcesOf(template, 'AWS::EC2::VPCEndpointService')) {
      expect(service.AcceptanceRequired).toBe(true);
    }
    template.hasResourceProperties('AWS::EC2::VPCEndpointServicePermissions', {
      AllowedPrincipals: [{ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, ':root']] }],
    });
  });
});
