/**
 * IAM policy evaluation for the IAM check: the matching rules of the IAM user guide ("Policy
 * evaluation logic", "IAM JSON policy elements"): an explicit Deny wins, else some Allow must match;
 * actions match case-insensitively with `*` and `?`; resource ARNs match segment by segment with
 * `*` and `?` (the resource part may span `/` and `:`); conditions must all hold, a key missing from
 * the request makes a positive operator false (unless `...IfExists`) and a negated one true.
 */

type Json = Record<string, unknown>;

export interface PolicyStatement {
  readonly Sid?: string;
  readonly Effect: 'Allow' | 'Deny';
  readonly Action?: string | string[];
  readonly NotAction?: string | string[];
  readonly Resource?: string | string[];
  readonly NotResource?: string | string[];
  readonly Principal?: unknown;
  readonly Condition?: Record<string, Record<string, unknown>>;
}

/** One authorisation IAM makes: an action on a resource, with the request context keys we know. */
export interface AuthorizationRequest {
  readonly action: string;
  readonly resource: string;
  /** Condition keys of the request context (aws:PrincipalArn, kms:ViaService, ...). */
  readonly context: Readonly<Record<string, string | readonly string[]>>;
}

export type Decision = 'allow' | 'explicit-deny' | 'implicit-deny';

function list(value: unknown): string[] {
  if (value === undefined) {
    return [];
  }
  return (Array.isArray(value) ? value : [value]).map(String);
}

/** IAM's wildcard match: `*` any run of characters, `?` any one; case-sensitive unless told. */
export function globMatch(pattern: string, value: string, ignoreCase = false): boolean {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`, ignoreCase ? 'is' : 's').test(value);
}

export function actionMatches(pattern: string, action: string): boolean {
  return globMatch(pattern, action, true);
}

/** ARN patterns match per segment (partition, service, region, account), then the resource part. */
export function resourceMatches(pattern: string, arn: string): boolean {
  if (pattern === '*') {
    return true;
  }
  const p = pattern.split(':');
  const a = arn.split(':');
  if (p.length < 6 || a.length < 6) {
    return globMatch(pattern, arn);
  }
  for (let i = 0; i < 5; i++) {
    if (!globMatch(p[i], a[i])) {
      return false;
    }
  }
  return globMatch(p.slice(5).join(':'), a.slice(5).join(':'));
}

const POSITIVE: Record<string, (pattern: string, value: string) => boolean> = {
  StringEquals: (p, v) => p === v,
  StringEqualsIgnoreCase: (p, v) => p.toLowerCase() === v.toLowerCase(),
  StringLike: (p, v) => globMatch(p, v),
  ArnEquals: (p, v) => p === v,
  ArnLike: (p, v) => resourceMatches(p, v),
  Bool: (p, v) => p.toLowerCase() === v.toLowerCase(),
  NumericEquals: (p, v) => Number(p) === Number(v),
};
const NEGATED: Record<string, string> = {
  StringNotEquals: 'StringEquals', StringNotEqualsIgnoreCase: 'StringEqualsIgnoreCase', StringNotLike: 'StringLike',
  ArnNotEquals: 'ArnEquals', ArnNotLike: 'ArnLike', NumericNotEquals: 'NumericEquals',
};

/** Whether every condition of a statement holds for the request. Unknown operators never hold. */
export function conditionsHold(condition: PolicyStatement['Condition'], context: AuthorizationRequest['context']): boolean {
  for (const [rawOperator, keys] of Object.entries(condition ?? {})) {
    const ifExists = rawOperator.endsWith('IfExists');
    const setPrefix = /^(ForAnyValue|ForAllValues):/.exec(rawOperator)?.[1];
    const operator = rawOperator.replace(/IfExists$/, '').replace(/^(ForAnyValue|ForAllValues):/, '');
    for (const [key, expected] of Object.entries(keys)) {
      const patterns = list(expected);
      const present = Object.keys(context).find((k) => k.toLowerCase() === key.toLowerCase());
      const values = present === undefined ? undefined : list(context[present]);
      if (operator === 'Null') {
        if ((values === undefined) !== (patterns[0] === 'true')) {
          return false;
        }
        continue;
      }
      const negated = NEGATED[operator];
      const test = POSITIVE[negated ?? operator];
      if (!test) {
        return false;
      }
      if (values === undefined) {
        if (ifExists || negated) {
          continue;
        }
        return false;
      }
      const one = (v: string) => patterns.some((p) => test(p, v));
      const holds = setPrefix === 'ForAllValues' ? values.every(one) : values.some(one);
      if (negated ? holds : !holds) {
        return false;
      }
    }
  }
  return true;
}

/** Whether one statement applies to the request (action, resource, conditions; principals are the caller's job). */
export function statementApplies(statement: PolicyStatement, request: AuthorizationRequest): boolean {
  const actionOk = statement.NotAction !== undefined
    ? !list(statement.NotAction).some((p) => actionMatches(p, request.action))
    : list(statement.Action).some((p) => actionMatches(p, request.action));
  if (!actionOk) {
    return false;
  }
  const resourceOk = statement.NotResource !== undefined
    ? !list(statement.NotResource).some((p) => resourceMatches(p, request.resource))
    : list(statement.Resource).some((p) => resourceMatches(p, request.resource));
  return resourceOk && conditionsHold(statement.Condition, request.context);
}

/** Identity-policy decision: explicit deny, allow, or nothing allows it. */
export function decide(statements: readonly PolicyStatement[], request: AuthorizationRequest): Decision {
  if (statements.some((s) => s.Effect === 'Deny' && statementApplies(s, request))) {
    return 'explicit-deny';
  }
  return statements.some((s) => s.Effect === 'Allow' && statementApplies(s, request)) ? 'allow' : 'implicit-deny';
}

/**
 * Whether a resource-based policy's Principal names the caller: `*`, the caller's ARN, its
 * account id or `arn:<partition>:iam::<account>:root`, or (for services) the service principal.
 */
export function principalMatches(principal: unknown, callerArn: string, callerAccount: string): boolean {
  if (principal === '*') {
    return true;
  }
  const aws = list((principal as Json | undefined)?.AWS);
  return aws.some((p) => p === '*' || p === callerArn || p === callerAccount || /^arn:[^:]+:iam::(\d{12}):root$/.exec(p)?.[1] === callerAccount);
}

/** Literal actions an Allow statement grants (for the unused-permission report). */
export function grantedActions(statements: readonly PolicyStatement[]): string[] {
  return [...new Set(statements.filter((s) => s.Effect === 'Allow').flatMap((s) => list(s.Action)))];
}

/**
 * Whether a key policy lets CloudWatch Logs (the service principal logs.<region>.amazonaws.com) use
 * the key for one log group; without it CreateLogGroup with that key fails and nothing is logged
 * (CloudWatch Logs user guide, "Encrypt log data in CloudWatch Logs using AWS KMS": kms:Encrypt*,
 * kms:Decrypt*, kms:GenerateDataKey*, with kms:EncryptionContext:aws:logs:arn naming the group).
 */
export function cloudWatchLogsMayUseKey(keyPolicy: readonly PolicyStatement[], region: string, logGroupArn: string, action: string): boolean {
  const service = `logs.${region}.amazonaws.com`;
  return keyPolicy.some((s) => s.Effect === 'Allow'
    && list((s.Principal as Json | undefined)?.Service).some((p) => p === service || p === `${service}.cn`)
    && statementApplies({ ...s, Resource: '*' }, { action, resource: '*', context: { 'kms:EncryptionContext:aws:logs:arn': logGroupArn } }));
}
