import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { GLUE_SCHEMA_VERSION_BY_ID } from '../lib/aws-facts';
import { AWS_ANY_RESOURCE_ONLY, ENI_ACTIONS_ON_ANY_RESOURCE, policyStatements, wildcardFindings } from './policy-statements';

/** The least-privilege check used by compliance.test.ts must fail on each kind of violation. */
describe('wildcardFindings', () => {
  const stack = new Stack(new App(), 'Canary', { env: { account: '111111111111', region: 'eu-west-1' } });
  const bucket = new s3.Bucket(stack, 'Bucket', { enforceSSL: true });
  const role = new iam.Role(stack, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:Get*'], resources: [bucket.arnForObjects('*')] }));
  role.addToPolicy(new iam.PolicyStatement({ actions: ['*'], resources: [bucket.bucketArn] }));
  role.addToPolicy(new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: ['*'] }));
  role.addToPolicy(new iam.PolicyStatement({ notActions: ['iam:PassRole'], resources: [bucket.bucketArn] }));
  role.addToPolicy(new iam.PolicyStatement({ actions: Object.keys(ENI_ACTIONS_ON_ANY_RESOURCE), resources: ['*'] }));
  // GetSchemaVersion by id is only authorised on "*": exempt alone, flagged next to another action.
  role.addToPolicy(new iam.PolicyStatement({ sid: 'Alone', actions: [GLUE_SCHEMA_VERSION_BY_ID.action], resources: ['*'] }));
  role.addToPolicy(new iam.PolicyStatement({ sid: 'Mixed', actions: [GLUE_SCHEMA_VERSION_BY_ID.action, 'glue:GetSchema'], resources: ['*'] }));
  const queue = new sqs.Queue(stack, 'Queue', { enforceSSL: true });
  queue.addToResourcePolicy(new iam.PolicyStatement({ actions: ['sqs:*'], principals: [new iam.AccountPrincipal('222222222222')], resources: [queue.queueArn] }));
  const key = new kms.Key(stack, 'Key');
  key.addToResourcePolicy(new iam.PolicyStatement({ actions: ['kms:GenerateDataKey*'], principals: [new iam.ServicePrincipal('logs.amazonaws.com')], resources: ['*'] }));
  key.addToResourcePolicy(new iam.PolicyStatement({ actions: ['kms:*'], principals: [new iam.AccountRootPrincipal(), new iam.AccountPrincipal('222222222222')], resources: ['*'] }));
  new lambda.CfnPermission(stack, 'Permission', { action: 'lambda:*', functionName: 'f', principal: 'sns.amazonaws.com' });
  const template = Template.fromStack(stack).toJSON();
  const findings = wildcardFindings(template, 'Canary', stack.account);

  test('finds every policy document, identity and resource policies alike', () => {
    const types = new Set(policyStatements(template).map((s) => s.type));
    expect([...types].sort()).toEqual(['AWS::IAM::Policy', 'AWS::IAM::Role', 'AWS::KMS::Key', 'AWS::S3::BucketPolicy', 'AWS::SQS::QueuePolicy']);
  });

  test.each([
    ['a prefix wildcard in an identity policy', /wildcard action s3:Get\*/],
    ['a bare "*" action', /wildcard action \*$/],
    ['a non-ENI action on Resource "*"', /s3:ListBucket on Resource "\*"/],
    ['NotAction in an Allow', /Allow with NotAction/],
    ['a service wildcard in a queue policy', /QueuePolicy.*wildcard action sqs:\*/],
    ['a wildcard granted to another principal in a key policy', /KMS::Key.*wildcard action kms:GenerateDataKey\*/],
    ['a wildcard for another account in a key policy', /KMS::Key.*wildcard action kms:\*/],
    ['a wildcard Lambda permission', /Lambda::Permission\): action "lambda:\*"/],
    ['another action next to GetSchemaVersion on "*"', /glue:GetSchema on Resource "\*"$/],
    ['GetSchemaVersion on "*" sharing its statement', /glue:GetSchemaVersion on Resource "\*" must be alone in its statement/],
  ])('flags %s', (_name, pattern) => {
    expect(findings.some((f) => pattern.test(f))).toBe(true);
  });

  test('exempts Deny statements, the own-account key delegation and the ENI actions, and nothing else', () => {
    expect(findings.filter((f) => /s3:\*|ec2:/.test(f))).toEqual([]);
    expect(findings.filter((f) => /kms:\*/.test(f))).toHaveLength(1);
    expect(findings).toHaveLength(10);
  });

  test('the one AWS any-resource exception is GetSchemaVersion by id, with its source', () => {
    expect(AWS_ANY_RESOURCE_ONLY).toEqual({ 'glue:GetSchemaVersion': expect.stringMatching(/awslabs\/aws-glue-schema-registry#68/) });
  });
});
