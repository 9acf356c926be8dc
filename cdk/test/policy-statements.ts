/**
 * Least-privilege checks over every policy document in a synthesized template: identity policies
 * (inline, managed, role policies and trust policies) and resource policies (KMS key, S3 bucket,
 * SQS queue, SNS topic, Secrets Manager, anything else with a `Statement` list), plus Lambda
 * permissions. Used by compliance.test.ts over every stack, and proven to catch violations by
 * policy-statements.test.ts.
 */

import { GLUE_SCHEMA_VERSION_BY_ID } from '../lib/aws-facts';

type Json = Record<string, unknown>;

/**
 * The only actions an identity policy may allow on Resource "*": the networking a Lambda function
 * in a VPC needs (what AWSLambdaVPCAccessExecutionRole grants), each with why it cannot be scoped.
 */
export const ENI_ACTIONS_ON_ANY_RESOURCE: Readonly<Record<string, string>> = {
  'ec2:CreateNetworkInterface': 'Lambda creates the function\'s ENIs itself; their ids (and ARNs) do not exist when the policy is written.',
  'ec2:DeleteNetworkInterface': 'Lambda deletes the ENIs it created, whose ids are unknown at deploy time.',
  'ec2:AssignPrivateIpAddresses': 'Applies to the Lambda-managed ENIs, whose ids are unknown at deploy time.',
  'ec2:UnassignPrivateIpAddresses': 'Applies to the Lambda-managed ENIs, whose ids are unknown at deploy time.',
  'ec2:DescribeNetworkInterfaces': 'EC2 Describe actions do not support resource-level permissions; IAM only accepts "*".',
  'ec2:DescribeSubnets': 'EC2 Describe actions do not support resource-level permissions; IAM only accepts "*".',
  'ec2:DescribeSecurityGroups': 'EC2 Describe actions do not support resource-level permissions; IAM only accepts "*".',
  'ec2:DescribeVpcs': 'EC2 Describe actions do not support resource-level permissions; IAM only accepts "*".',
};

/**
 * Actions AWS authorises only on Resource "*" for the way the pipeline calls them, each encoded
 * once with its source (cdk/lib/aws-facts.ts). Each must sit in a statement of its own.
 */
export const AWS_ANY_RESOURCE_ONLY: Readonly<Record<string, string>> = {
  [GLUE_SCHEMA_VERSION_BY_ID.action]: GLUE_SCHEMA_VERSION_BY_ID.reason,
};

/** Why the remaining exemptions below are safe. */
export const EXEMPTIONS = {
  deny: 'A Deny only takes access away; the enforce-TLS statements deny every action (s3:*, sqs:*) over plain HTTP.',
  keyAdminForOwnAccount:
    'A key policy statement whose principal is the key\'s own account root grants nothing by itself: it lets IAM policies '
    + 'of that account grant access to the key (the CDK default key policy). Those IAM policies are checked here too.',
} as const;

const IDENTITY_POLICY_TYPES = new Set(['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy', 'AWS::IAM::Role', 'AWS::IAM::User', 'AWS::IAM::Group']);

export interface PolicyStatement {
  readonly resource: string;
  readonly type: string;
  /** Where in the resource's properties the policy document sits, e.g. `.KeyPolicy`. */
  readonly path: string;
  readonly statement: Json;
}

/** Every statement of every policy document in the template's resources. */
export function policyStatements(template: Json): PolicyStatement[] {
  const out: PolicyStatement[] = [];
  const resources = (template.Resources ?? {}) as Record<string, { Type: string; Properties?: Json }>;
  const walk = (resource: string, type: string, value: unknown, path: string) => {
    if (typeof value === 'string' && value.includes('"Statement"')) {
      // Some resource policies (e.g. CloudWatch Logs) are JSON text.
      try {
        walk(resource, type, JSON.parse(value), path);
      } catch {
        // Not a policy document.
      }
      return;
    }
    if (Array.isArray(value)) {
      value.forEach((v) => walk(resource, type, v, `${path}[]`));
      return;
    }
    if (value && typeof value === 'object') {
      const object = value as Json;
      if (Array.isArray(object.Statement)) {
        for (const statement of object.Statement as Json[]) {
          out.push({ resource, type, path, statement });
        }
        return;
      }
      for (const [key, v] of Object.entries(object)) {
        walk(resource, type, v, `${path}.${key}`);
      }
    }
  };
  for (const [id, r] of Object.entries(resources)) {
    walk(id, r.Type, r.Properties ?? {}, '');
  }
  return out;
}

function asList(value: unknown): unknown[] {
  if (value === undefined) {
    return [];
  }
  return Array.isArray(value) ? value : [value];
}

/** IAM wildcards are `*` and `?`, anywhere in the action (`*`, `s3:*`, `s3:Get*`, `kms:ReEncrypt?`). */
function isWildcard(action: string): boolean {
  return /[*?]/.test(action);
}

/**
 * The key's own account root, as CDK writes it: `arn:<partition>:iam::<account>:root`, with the
 * account either the stack's (`account`) or `Ref AWS::AccountId` for an environment-agnostic stack.
 */
function isOwnAccountRoot(principal: unknown, account: string | undefined): boolean {
  const aws = asList((principal as Json | undefined)?.AWS);
  if (aws.length !== 1) {
    return false;
  }
  const text = JSON.stringify(aws[0]);
  const ownAccount = text.includes('{"Ref":"AWS::AccountId"}') || (account !== undefined && /^\d{12}$/.test(account) && text.includes(`::${account}:root`));
  return ownAccount && /:root"(\]\]\})?$/.test(text);
}

/**
 * Every violation of: no Allow statement has a wildcard action (Deny statements and the key
 * policies' own-account delegation excepted, see EXEMPTIONS); no Allow uses NotAction,
 * NotResource or NotPrincipal; an identity policy allows Resource "*" only for the ENI actions and,
 * each alone in its statement, the AWS_ANY_RESOURCE_ONLY actions;
 * actions are literal strings; Lambda permissions name one action.
 */
export function wildcardFindings(template: Json, stackName = 'stack', account?: string): string[] {
  const findings: string[] = [];
  for (const { resource, type, path, statement } of policyStatements(template)) {
    const where = `${stackName}/${resource} (${type}${path})`;
    if (statement.Effect === 'Deny') {
      continue;
    }
    for (const negated of ['NotAction', 'NotResource', 'NotPrincipal']) {
      if (statement[negated] !== undefined) {
        findings.push(`${where}: Allow with ${negated}`);
      }
    }
    const actions = asList(statement.Action);
    const exemptKeyAdmin = type === 'AWS::KMS::Key' && isOwnAccountRoot(statement.Principal, account);
    for (const action of actions) {
      if (typeof action !== 'string') {
        findings.push(`${where}: action ${JSON.stringify(action)} is not a literal string`);
      } else if (isWildcard(action) && !exemptKeyAdmin) {
        findings.push(`${where}: wildcard action ${action}`);
      }
    }
    if (IDENTITY_POLICY_TYPES.has(type) && asList(statement.Resource).includes('*')) {
      for (const action of actions) {
        if (typeof action !== 'string' || action in ENI_ACTIONS_ON_ANY_RESOURCE) {
          continue;
        }
        if (!(action in AWS_ANY_RESOURCE_ONLY)) {
          findings.push(`${where}: ${action} on Resource "*"`);
        } else if (actions.length > 1) {
          findings.push(`${where}: ${action} on Resource "*" must be alone in its statement`);
        }
      }
    }
  }
  const resources = (template.Resources ?? {}) as Record<string, { Type: string; Properties?: Json }>;
  for (const [id, r] of Object.entries(resources)) {
    if (r.Type === 'AWS::Lambda::Permission') {
      const action = r.Properties?.Action;
      if (typeof action !== 'string' || isWildcard(action)) {
        findings.push(`${stackName}/${id} (AWS::Lambda::Permission): action ${JSON.stringify(action)}`);
      }
    }
  }
  return findings;
}
