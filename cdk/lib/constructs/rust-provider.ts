import { CfnElement, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { PipelineFunction } from './rust-function';
import { acknowledge, acknowledgeProviderFramework } from './security';

export interface RustProviderProps {
  /** The Rust function that answers the CloudFormation events. */
  readonly handler: PipelineFunction;
  /** Encrypts the provider's log group and its function's environment. */
  readonly key: kms.IKey;
}

/**
 * The one wiring of "a Rust custom-resource provider" (topic-admin, db-admin): the provider
 * framework's log group (`ProviderLogs`), the provider (`Provider`) with the Rust function as its
 * event handler, and the cdk-nag acknowledgements the framework needs. It adds its constructs to
 * `scope` under those ids rather than under a construct of its own, so the resources keep the
 * logical ids they were deployed with (a new path would replace the provider functions).
 */
export function rustCustomResourceProvider(scope: Construct, props: RustProviderProps): cr.Provider {
  const providerLogs = new logs.LogGroup(scope, 'ProviderLogs', {
    encryptionKey: props.key,
    retention: logs.RetentionDays.ONE_YEAR,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const provider = new cr.Provider(scope, 'Provider', {
    onEventHandler: props.handler.function,
    logGroup: providerLogs,
    providerFunctionEnvEncryption: props.key,
  });
  acknowledgeProviderFramework(provider);
  const handlerLogicalId = Stack.of(scope).getLogicalId(props.handler.function.node.defaultChild as CfnElement);
  acknowledge(
    provider,
    `AwsSolutions-IAM5[Resource::<${handlerLogicalId}.Arn>:*]`,
    `The provider framework may invoke any version of the ${props.handler.binaryName} function; the grant is scoped to that one function`,
  );
  return provider;
}
