import { Stack, StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { PipelineConfig } from '../config';
import { PrivateVpc } from '../constructs/private-vpc';
import { pipelineKey } from '../constructs/security';

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

  constructor(scope: Construct, id: string, props: ProducerVpcStackProps) {
    super(scope, id, props);
    const { config } = props;

    this.logKey = pipelineKey(this, 'LogKey', {
      description: 'Producer side: CloudWatch log groups (flow logs, functions, brokers)',
      retain: false,
      allowCloudWatchLogs: true,
    });
    const network = new PrivateVpc(this, 'Network', {
      cidr: config.producerVpcCidr,
      availabilityZones: config.producer.availabilityZones,
      logKey: this.logKey,
      interfaceEndpoints: [{ id: 'Glue', service: ec2.InterfaceVpcEndpointAwsService.GLUE }],
    });
    this.vpc = network.vpc;
    this.subnets = network.subnets;
    this.endpointSecurityGroup = network.endpointSecurityGroup;
  }
}
