import { Aws, CfnResource, IAspect, RemovalPolicy, Stack, Token, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct, IConstruct } from 'constructs';

/**
 * Acknowledges one cdk-nag finding on a construct (and its children). The reason is mandatory
 * and lands in the policy-validation report next to the finding.
 */
export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  if (reason.trim().length < 20) {
    throw new Error(`acknowledgement of ${id} needs a real reason, got "${reason}"`);
  }
  Validations.of(scope).acknowledge({ id, reason });
}

/**
 * Records a checkov skip in the resource's CloudFormation metadata, the place checkov reads
 * inline skips from. Every skip carries its reason, visible in the template.
 */
export function checkovSkip(resource: CfnResource, id: string, comment: string): void {
  const current = (resource.getMetadata('checkov') as { skip?: { id: string; comment: string }[] } | undefined) ?? {};
  const skip = [...(current.skip ?? []).filter((s) => s.id !== id), { id, comment }];
  resource.addMetadata('checkov', { ...current, skip });
}

/** Marks functions this app owns, so the framework-function aspect below leaves them alone. */
export const OWNED_FUNCTION_MARKER = 'pipeline:owned';

/**
 * Lambda functions that CDK generates for custom resources (AwsCustomResource, the Provider
 * framework, restrictDefaultSecurityGroup, log retention) cannot be given a VPC, reserved
 * concurrency, a DLQ or a CMK for their environment through the L2 API. This aspect records why
 * checkov's Lambda hardening checks do not apply to them.
 */
export class FrameworkFunctionCheckovSkips implements IAspect {
  visit(node: IConstruct): void {
    if (!(node instanceof CfnResource)) {
      return;
    }
    if (node.cfnResourceType !== 'AWS::Lambda::Function' || node.getMetadata(OWNED_FUNCTION_MARKER)) {
      return;
    }
    const why = 'CDK-generated custom-resource handler: runs only during deployments, called synchronously by CloudFormation';
    checkovSkip(node, 'CKV_AWS_115', `${why}; reserved concurrency would only take capacity from the account pool`);
    checkovSkip(node, 'CKV_AWS_116', `${why}; CloudFormation receives its failures, a DLQ would never be used`);
    checkovSkip(node, 'CKV_AWS_117', `${why}; it calls public AWS APIs and never touches VPC resources`);
    checkovSkip(node, 'CKV_AWS_173', `${why}; its environment holds no secrets`);
  }
}

export interface PipelineKeyProps {
  readonly description: string;
  /** Keep the key after the stack is deleted (it protects retained data). */
  readonly retain: boolean;
  /** Let CloudWatch Logs in this account and region use the key for log groups. */
  readonly allowCloudWatchLogs?: boolean;
}

/** A customer managed key with rotation, and the service grants the pipeline needs written out. */
export function pipelineKey(scope: Construct, id: string, props: PipelineKeyProps): kms.Key {
  const key = new kms.Key(scope, id, {
    description: props.description,
    enableKeyRotation: true,
    removalPolicy: props.retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    pendingWindow: undefined,
  });
  if (props.allowCloudWatchLogs) {
    const stack = Stack.of(scope);
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'CloudWatchLogsUseForLogGroupsOfThisAccount',
      principals: [new iam.ServicePrincipal(`logs.${stack.region}.amazonaws.com`)],
      actions: ['kms:Encrypt', 'kms:Decrypt', 'kms:ReEncryptFrom', 'kms:ReEncryptTo', 'kms:GenerateDataKey', 'kms:DescribeKey'],
      resources: ['*'],
      conditions: {
        ArnLike: {
          'kms:EncryptionContext:aws:logs:arn': `arn:${Aws.PARTITION}:logs:${stack.region}:${stack.account}:log-group:*`,
        },
      },
    }));
  }
  return key;
}

/** Actions a Lambda function needs to use a KMS key for data it writes and reads. */
export const KMS_DATA_ACTIONS = ['kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey'];

/** Scoped statement for using one or more keys. Never `kms:*` or `GenerateDataKey*`. */
export function keyUseStatement(keys: kms.IKey[], actions: string[] = KMS_DATA_ACTIONS): iam.PolicyStatement {
  return new iam.PolicyStatement({ actions, resources: keys.map((k) => k.keyArn) });
}

/** True for functions built by this app (used by tests and aspects). */
export function markOwned(fn: lambda.Function): void {
  (fn.node.defaultChild as CfnResource).addMetadata(OWNED_FUNCTION_MARKER, true);
}

/** How cdk-nag renders the stack's account and region inside finding ids. */
export function nagEnv(scope: IConstruct): { account: string; region: string } {
  const stack = Stack.of(scope);
  return {
    account: Token.isUnresolved(stack.account) ? '<AWS::AccountId>' : stack.account,
    region: Token.isUnresolved(stack.region) ? '<AWS::Region>' : stack.region,
  };
}

/** Acknowledgements for the function the CDK custom-resource provider framework creates. */
export function acknowledgeProviderFramework(provider: Construct): void {
  acknowledge(
    provider,
    'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
    'CDK custom-resource provider framework function; the framework creates its role with the basic execution policy',
  );
  acknowledge(
    provider,
    'AwsSolutions-L1',
    'CDK custom-resource provider framework function; aws-cdk-lib pins its Node.js runtime',
  );
}
