import { Stack, StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { PipelineConfig } from '../config';
import { PrivateVpc } from '../constructs/private-vpc';
import { acknowledge, pipelineKey } from '../constructs/security';

export interface ProducerVpcStackProps extends StackProps {
  readonly config: PipelineConfig;
}

/**
 * Producer network: isolated subnets in every configured zone (one per MSK broker zone), flow
 * logs, and a Glue interface endpoint for the producer's schema-registry calls. No NAT: MSK
 * is in the VPC and nothing else the producer side calls needs the internet.
 */
export class ProducerVpcStack extends Stack {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly endpointSecurityGroup: ec2.ISecurityGroup;
  /** Encrypts the producer side's log groups. */
  readonly logKey: kms.IKey;

  private readonly zones: readonly string[];

  constructor(scope: Construct, id: string, props: ProducerVpcStackProps) {
    super(scope, id, props);
    const { config } = props;
    this.zones = config.producer.availabilityZones;
    if (config.producer.zoneKind === 'name') {
      acknowledge(this, 'CloudFormation-Validate::W3010',
        'Zone names come from the validated config (producer.availabilityZones or the one-account default); '
        + 'set availabilityZoneIds to place subnets by AZ ID instead');
    }

    this.logKey = pipelineKey(this, 'LogKey', {
      description: 'Producer side: CloudWatch log groups (flow logs, functions, brokers)',
      retain: false,
      allowCloudWatchLogs: true,
    });
    const network = new PrivateVpc(this, 'Network', {
      cidr: config.producerVpcCidr,
      availabilityZones: config.producer.availabilityZones,
      zoneKind: config.producer.zoneKind,
      logKey: this.logKey,
      interfaceEndpoints: [{ id: 'Glue', service: ec2.InterfaceVpcEndpointAwsService.GLUE }],
    });
    this.vpc = network.vpc;
    this.subnets = network.subnets;
    this.endpointSecurityGroup = network.endpointSecurityGroup;
  }

  /** The configured zones: without this override CDK looks the account's zones up at synth. */
  override get availabilityZones(): string[] {
    return [...this.zones];
  }
}
