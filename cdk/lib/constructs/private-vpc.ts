import { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ZoneKind } from '../config';

export interface PrivateVpcProps {
  readonly cidr: string;
  /** One isolated subnet per zone: AZ IDs (`use1-az1`) or AZ names, as `zoneKind` says. */
  readonly availabilityZones: readonly string[];
  /** `id`: each subnet is placed by AvailabilityZoneId, the same physical zone in every account. @default 'name' */
  readonly zoneKind?: ZoneKind;
  /** Encrypts the flow-log group. */
  readonly logKey: kms.IKey;
  /** Interface endpoints to AWS services (reached without NAT or internet gateway). */
  readonly interfaceEndpoints: readonly { id: string; service: ec2.InterfaceVpcEndpointAwsService }[];
  /** Add S3 and DynamoDB gateway endpoints. @default false */
  readonly gatewayEndpoints?: boolean;
}

/**
 * A VPC with only isolated private subnets (one /24 per zone): no internet gateway, no NAT.
 * AWS services are reached through VPC endpoints, every flow is logged to an encrypted log group,
 * and the default security group is stripped of its rules.
 */
export class PrivateVpc extends Construct {
  readonly vpc: ec2.Vpc;
  readonly subnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
  /** Attached to the interface endpoints; allows HTTPS from inside the VPC. */
  readonly endpointSecurityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: PrivateVpcProps) {
    super(scope, id);

    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(props.cidr),
      availabilityZones: [...props.availabilityZones],
      natGateways: 0,
      subnetConfiguration: [{ name: 'private', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 }],
      restrictDefaultSecurityGroup: true,
      enableDnsHostnames: true,
      enableDnsSupport: true,
    });
    if (props.zoneKind === 'id') {
      // CDK's Vpc only knows zone names; the zone strings it was given are IDs, so each subnet
      // takes its zone as AvailabilityZoneId instead (AWS::EC2::Subnet accepts either).
      for (const subnet of this.vpc.isolatedSubnets) {
        const cfnSubnet = subnet.node.defaultChild as ec2.CfnSubnet;
        cfnSubnet.availabilityZoneId = subnet.availabilityZone;
        cfnSubnet.availabilityZone = undefined;
      }
    }

    const flowLogGroup = new logs.LogGroup(this, 'FlowLogs', {
      encryptionKey: props.logKey,
      retention: logs.RetentionDays.ONE_YEAR,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const flowLogRole = new iam.Role(this, 'FlowLogRole', {
      assumedBy: new iam.ServicePrincipal('vpc-flow-logs.amazonaws.com'),
      description: 'Lets VPC Flow Logs write to its log group',
    });
    flowLogRole.addToPrincipalPolicy(new iam.PolicyStatement({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
      resources: [flowLogGroup.logGroupArn],
    }));
    this.vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogGroup, flowLogRole),
      trafficType: ec2.FlowLogTrafficType.ALL,
    });

    this.endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
      vpc: this.vpc,
      description: 'Interface endpoints: HTTPS from inside the VPC only',
      allowAllOutbound: false,
    });
    this.endpointSecurityGroup.addIngressRule(ec2.Peer.ipv4(props.cidr), ec2.Port.tcp(443), 'HTTPS from the VPC');

    for (const endpoint of props.interfaceEndpoints) {
      this.vpc.addInterfaceEndpoint(endpoint.id, {
        service: endpoint.service,
        subnets: this.subnets,
        securityGroups: [this.endpointSecurityGroup],
        privateDnsEnabled: true,
        open: false,
      });
    }
    if (props.gatewayEndpoints) {
      this.vpc.addGatewayEndpoint('S3', { service: ec2.GatewayVpcEndpointAwsService.S3, subnets: [this.subnets] });
      this.vpc.addGatewayEndpoint('DynamoDb', { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets: [this.subnets] });
    }
  }
}
