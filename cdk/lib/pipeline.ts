import { Annotations, App, Aspects, Aws, Tags, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { parseConfig, PipelineConfig, rawConfigFromContext } from './config';
import { pipelineContracts, PipelineContracts } from './contracts';
import { FrameworkFunctionCheckovSkips } from './constructs/security';
import { ConsumerStack } from './stacks/consumer-stack';
import { EndpointServiceStack } from './stacks/endpoint-service-stack';
import { MskStack } from './stacks/msk-stack';
import { ProducerStack, registryReaderRoleName } from './stacks/producer-stack';
import { ProducerVpcStack } from './stacks/producer-vpc-stack';

/** Stack ids (= CloudFormation stack names). `producer-stack` and `consumer-stack` are the entry points. */
export const STACK_IDS = {
  producerVpc: 'producer-vpc',
  msk: 'producer-msk',
  endpointService: 'producer-endpoint-service',
  producer: 'producer-stack',
  consumer: 'consumer-stack',
} as const;

export interface PipelineOptions {
  /** Account of the CLI credentials (CDK_DEFAULT_ACCOUNT), used when the config names none. */
  readonly cliAccount?: string;
  readonly cliRegion?: string;
  /** Pre-parsed config (tests); otherwise read from the app's context. */
  readonly config?: PipelineConfig;
  /** Register cdk-nag AwsSolutions. @default true */
  readonly nag?: boolean;
  /** The contract the stacks are built from. @default pipelineContracts() (the generated CONTRACTS) */
  readonly contracts?: PipelineContracts;
}

export interface Pipeline {
  readonly config: PipelineConfig;
  readonly contracts: PipelineContracts;
  readonly producerVpc: ProducerVpcStack;
  readonly msk: MskStack;
  readonly endpointService: EndpointServiceStack;
  readonly producer: ProducerStack;
  /** Undefined across accounts until `consumer.handshakeSecretArn` is configured. */
  readonly consumer?: ConsumerStack;
}

/**
 * Builds the whole app: the producer side (producer-vpc -> producer-msk ->
 * producer-endpoint-service -> producer-stack) and the consumer side (consumer-stack).
 * `cdk deploy producer-stack` deploys the producer side because producer-stack depends on the
 * other three; `cdk deploy consumer-stack` deploys the consumer side (in one account it first
 * deploys the producer side it references).
 */
export function buildPipeline(app: App, options: PipelineOptions = {}): Pipeline {
  const contracts = options.contracts ?? pipelineContracts();
  const config = options.config ?? parseConfig(rawConfigFromContext(app.node), contracts, {
    account: options.cliAccount,
    region: options.cliRegion,
  });

  const producerEnv = { account: config.producer.account, region: config.producer.region };
  const consumerEnv = { account: config.consumer.account, region: config.consumer.region };

  const producerVpc = new ProducerVpcStack(app, STACK_IDS.producerVpc, {
    env: producerEnv,
    description: 'Pipeline producer side: network (isolated subnets, flow logs, Glue endpoint)',
    config,
  });
  const msk = new MskStack(app, STACK_IDS.msk, {
    env: producerEnv,
    description: 'Pipeline producer side: MSK cluster (TLS, SCRAM + IAM, CMK) and its topics',
    config,
    contracts,
    vpc: producerVpc.vpc,
    subnets: producerVpc.subnets,
    logKey: producerVpc.logKey,
  });
  const endpointService = new EndpointServiceStack(app, STACK_IDS.endpointService, {
    env: producerEnv,
    description: 'Pipeline producer side: one PrivateLink endpoint service per broker and the handshake secret',
    config,
    contracts,
    vpc: producerVpc.vpc,
    subnets: producerVpc.subnets,
    msk,
  });
  const producer = new ProducerStack(app, STACK_IDS.producer, {
    env: producerEnv,
    description: 'Pipeline producer side: schema registry, registry reader role, producer function and schedule',
    config,
    contracts,
    vpc: producerVpc.vpc,
    subnets: producerVpc.subnets,
    endpointSecurityGroup: producerVpc.endpointSecurityGroup,
    logKey: producerVpc.logKey,
    msk,
  });
  // `cdk deploy producer-stack` must bring up the whole producer side.
  producer.addStackDependency(endpointService, 'producer-stack is the producer side entry point');

  let consumer: ConsumerStack | undefined;
  if (!config.crossAccount) {
    consumer = new ConsumerStack(app, STACK_IDS.consumer, {
      env: consumerEnv,
      description: 'Pipeline consumer side: VPC, broker endpoints, sinks, consumer function, event source mappings, alarms',
      config,
      contracts,
      handshake: { secret: endpointService.handshakeSecret },
      registryReaderRoleArn: producer.registryReaderRole.roleArn,
    });
    // Topics (and the whole producer side) exist before any event source mapping is created.
    consumer.addStackDependency(producer, 'the event source mappings need the topics and the handshake');
  } else if (config.consumer.handshakeSecretArn) {
    consumer = new ConsumerStack(app, STACK_IDS.consumer, {
      env: consumerEnv,
      description: 'Pipeline consumer side: VPC, broker endpoints, sinks, consumer function, event source mappings, alarms',
      config,
      contracts,
      handshake: { secretCompleteArn: config.consumer.handshakeSecretArn },
      registryReaderRoleArn: `arn:${Aws.PARTITION}:iam::${config.producer.account}:role/${registryReaderRoleName(contracts)}`,
    });
  } else {
    Annotations.of(app).addWarningV2(
      'pipeline:consumer-needs-handshake',
      'consumer-stack is not synthesized: producer and consumer are different accounts and '
      + 'pipeline.consumer.handshakeSecretArn is not set. Deploy producer-stack first, then set it to the '
      + 'HandshakeSecretArn output of producer-endpoint-service.',
    );
  }

  Tags.of(app).add('project', contracts.project);
  Aspects.of(app).add(new FrameworkFunctionCheckovSkips());
  if (options.nag ?? true) {
    // Acknowledgements (with their reasons) are also written into each resource's template
    // Metadata, so the templates carry the audit trail the scanners and reviewers read.
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true }));
  }
  return { config, contracts, producerVpc, msk, endpointService, producer, consumer };
}
