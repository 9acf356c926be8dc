import { Match, Template } from 'aws-cdk-lib/assertions';
import { HANDSHAKE_KEYS } from '../lib/constructs/handshake';
import { CONSUMER_ACCOUNT, CROSS_ACCOUNT, logicalIdOf, resourcesOf, synthOnce, text } from './helpers';

describe('producer-endpoint-service (cross-account)', () => {
  const { pipeline } = synthOnce(CROSS_ACCOUNT);
  const template = Template.fromStack(pipeline.endpointService);
  const brokers = pipeline.config.msk.brokerCount;
  const consumerRoot = `arn:aws:iam::${CONSUMER_ACCOUNT}:root`;

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
      expect(text(group.Targets)).toContain('ClientVpcIpAddress');
    }
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
        })],
      },
    });
    const [[, keyProps]] = resourcesOf(template, 'AWS::KMS::Key').filter(([id]) => id === key);
    const statements = (keyProps.KeyPolicy as { Statement: Record<string, unknown>[] }).Statement;
    const consumerStatement = statements.find((s) => text(s.Principal).includes(CONSUMER_ACCOUNT));
    expect(consumerStatement).toMatchObject({
      Action: ['kms:Decrypt', 'kms:DescribeKey'],
      Condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.eu-west-1.amazonaws.com' } },
    });
    // Besides statements for the key's own account, the consumer account is the only principal.
    const others = new Set(statements.filter((s) => s !== consumerStatement).map((s) => text(s.Principal)));
    expect([...others]).toEqual(['{"AWS":"arn:aws:iam::111111111111:root"}']);
  });

  test('the handshake carries every broker host, port, endpoint and service name and the SCRAM user', () => {
    const [[, secret]] = resourcesOf(template, 'AWS::SecretsManager::Secret');
    const value = text(secret.SecretString);
    for (let i = 0; i < brokers; i++) {
      for (const key of [HANDSHAKE_KEYS.brokerHost(i), HANDSHAKE_KEYS.brokerPort(i), HANDSHAKE_KEYS.brokerEndpoint(i), HANDSHAKE_KEYS.brokerService(i)]) {
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
