import { Match, Template } from 'aws-cdk-lib/assertions';
import { CROSS_ACCOUNT, PRODUCER_ZONE_IDS, resourcesOf, synthOnce } from './helpers';

describe('producer-vpc', () => {
  const { pipeline } = synthOnce();
  const template = Template.fromStack(pipeline.producerVpc);
  const config = pipeline.config;

  test('isolated subnets in every configured zone, no internet or NAT gateway', () => {
    template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: config.producerVpcCidr });
    const subnets = resourcesOf(template, 'AWS::EC2::Subnet');
    expect(subnets.map(([, p]) => p.AvailabilityZone).sort()).toEqual([...config.producer.availabilityZones].sort());
    for (const [, props] of subnets) {
      expect(props.MapPublicIpOnLaunch).toBe(false);
    }
    template.resourceCountIs('AWS::EC2::InternetGateway', 0);
    template.resourceCountIs('AWS::EC2::NatGateway', 0);
  });

  test('all traffic is flow-logged to a KMS-encrypted log group', () => {
    template.hasResourceProperties('AWS::EC2::FlowLog', { TrafficType: 'ALL', LogDestinationType: 'cloud-watch-logs' });
    template.hasResourceProperties('AWS::Logs::LogGroup', { KmsKeyId: Match.anyValue(), RetentionInDays: 365 });
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
  });

  test('Glue is reached through an interface endpoint that only admits HTTPS from the VPC', () => {
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Interface',
      ServiceName: Match.stringLikeRegexp('glue'),
      PrivateDnsEnabled: true,
    });
    template.hasResourceProperties('AWS::EC2::SecurityGroup', {
      SecurityGroupIngress: [{ CidrIp: config.producerVpcCidr, FromPort: 443, ToPort: 443, IpProtocol: 'tcp' }],
    });
  });

  test('the default security group is stripped of its rules', () => {
    template.resourceCountIs('Custom::VpcRestrictDefaultSG', 1);
  });
});

describe('producer-vpc with zones by AZ ID (two accounts)', () => {
  const { pipeline } = synthOnce(CROSS_ACCOUNT);

  test.each([
    ['producer-vpc', () => pipeline.producerVpc, PRODUCER_ZONE_IDS],
    ['consumer-stack', () => pipeline.consumer!, PRODUCER_ZONE_IDS.slice(0, 2)],
  ])('%s places each subnet by AvailabilityZoneId, never by a per-account zone name', (_name, stack, ids) => {
    const subnets = resourcesOf(Template.fromStack(stack()), 'AWS::EC2::Subnet');
    expect(subnets.map(([, p]) => p.AvailabilityZoneId).sort()).toEqual([...ids].sort());
    for (const [, props] of subnets) {
      expect(props.AvailabilityZone).toBeUndefined();
    }
  });
});
