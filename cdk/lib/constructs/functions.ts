import { Construct } from 'constructs';
import { ResolvedTopic } from '../config';
import {
  CONSUMER_FUNCTION, consumerEnvironment, ConsumerSettings,
  DB_ADMIN_FUNCTION, dbAdminEnvironment, DbAdminSettings,
  PRODUCER_FUNCTION, producerEnvironment, ProducerSettings,
  TOPIC_ADMIN_FUNCTION, topicAdminEnvironment, TopicAdminSettings, TopicVariable,
} from '../generated/functions';
import { PipelineFunction, PipelineFunctionProps } from './rust-function';

/**
 * One construct per Rust function, each taking the settings interface generated from that
 * function's Rust spec (cdk/lib/generated/functions.ts): the environment and the memory size come
 * from the binding (logging from Lambda's logging config, see rust-function.ts), so a new required setting or a renamed one in Rust
 * breaks tsc until the stack supplies it.
 */
export type RustFunctionProps = Omit<PipelineFunctionProps, 'binaryName' | 'environment' | 'logLevelEnvVar' | 'memorySize'>;

export interface ConsumerFunctionProps extends RustFunctionProps {
  readonly settings: ConsumerSettings;
}

export class ConsumerFunction extends PipelineFunction {
  constructor(scope: Construct, id: string, props: ConsumerFunctionProps) {
    super(scope, id, {
      ...props,
      binaryName: CONSUMER_FUNCTION.binaryName,
      memorySize: CONSUMER_FUNCTION.memorySizeMb,
      environment: consumerEnvironment(props.settings),
    });
  }
}

export interface ProducerFunctionProps extends RustFunctionProps {
  readonly settings: ProducerSettings;
}

export class ProducerFunction extends PipelineFunction {
  constructor(scope: Construct, id: string, props: ProducerFunctionProps) {
    super(scope, id, {
      ...props,
      binaryName: PRODUCER_FUNCTION.binaryName,
      memorySize: PRODUCER_FUNCTION.memorySizeMb,
      environment: producerEnvironment(props.settings),
    });
  }
}

export interface TopicAdminFunctionProps extends RustFunctionProps {
  readonly settings: TopicAdminSettings;
}

export class TopicAdminFunction extends PipelineFunction {
  constructor(scope: Construct, id: string, props: TopicAdminFunctionProps) {
    super(scope, id, {
      ...props,
      binaryName: TOPIC_ADMIN_FUNCTION.binaryName,
      memorySize: TOPIC_ADMIN_FUNCTION.memorySizeMb,
      environment: topicAdminEnvironment(props.settings),
    });
  }
}

export interface DbAdminFunctionProps extends RustFunctionProps {
  readonly settings: DbAdminSettings;
}

export class DbAdminFunction extends PipelineFunction {
  constructor(scope: Construct, id: string, props: DbAdminFunctionProps) {
    super(scope, id, {
      ...props,
      binaryName: DB_ADMIN_FUNCTION.binaryName,
      memorySize: DB_ADMIN_FUNCTION.memorySizeMb,
      environment: dbAdminEnvironment(props.settings),
    });
  }
}

/** Every resolved topic with its variable, as the functions' `topics` setting. */
export function topicVariables(topics: readonly ResolvedTopic[]): TopicVariable[] {
  return topics.map((t) => ({ envVar: t.envVar, name: t.name }));
}
