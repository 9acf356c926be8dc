/**
 * IAM both ways: every AWS call the Rust functions made in a local run (recorded by
 * scripts/local/faults/throttle_proxy.py --record) is judged against the synthesized, deploy-time
 * evaluated policies of the role the function runs as on AWS, including the role it assumes, and
 * with the KMS calls the encrypted services make on the caller's behalf. Granted actions that no
 * call used are reported.
 */
import { DeployedApp } from './deploy-app';
import {
  AuthorizationRequest, cloudWatchLogsMayUseKey, decide, grantedActions, PolicyStatement, principalMatches, statementApplies,
} from './iam-policy';
import { EvaluatedResource, EvaluatedStack } from './template-evaluator';

type Json = Record<string, unknown>;

/**
 * The deployment recorded calls are judged against: two accounts, so the consumer's registry role
 * is a real cross-account assumption. The cluster name has no hyphens so that the deploy-time
 * blocker deploy-time-values.test.ts reports (the cluster domain) does not stop this check before it
 * reaches the policies; no policy depends on that name.
 */
export const IAM_CHECK_VARIANT = { region: 'eu-west-1', crossAccount: true, config: { msk: { clusterName: 'democluster1' } } };

/**
 * Local name of each function -> its construct in the app. The name is both the process name under
 * `cargo lambda watch` (e2e) and the `acting_as` label of the recording proxy's endpoint a test
 * uses when it calls AWS as that function (integration tests).
 */
export const FUNCTIONS: Readonly<Record<string, string>> = { consumer: 'Consumer', producer: 'Producer' };

/**
 * `acting_as` labels besides the functions' names: `esm:<function>` is the Lambda service acting
 * for that function's Kafka event source mappings (with the function's execution role); `test` is
 * a test's own set-up and assertions, recorded but never judged as a function.
 */
export const ESM_LABEL_PREFIX = 'esm:';
export const TEST_LABEL = 'test';

/**
 * The local name of a mapping's on-failure destination (scripts/local/provision.py writes it into
 * stack.env; on AWS it is the mapping's DestinationConfig, no function variable).
 */
export const ON_FAILURE_QUEUE_ENV = 'ON_FAILURE_QUEUE_URL';

/** One line of the recording. */
export interface RecordedCall {
  readonly service: string;
  readonly operation: string;
  readonly region?: string | null;
  readonly access_key?: string | null;
  readonly resource: Json;
  readonly caller?: { readonly process?: string; readonly pid?: number };
  readonly status?: number;
  readonly assumed_access_key?: string | null;
  /** The identity the caller declared by the endpoint it used (see {@link FUNCTIONS}, {@link ESM_LABEL_PREFIX}). */
  readonly acting_as?: string;
}

/**
 * The configuration a test ran a function (or a mapping) with, by the same variable names as on
 * AWS: local resource names in it translate to the deployed ones. Tests append one line per
 * configuration to PIPELINE_RECORD_ENVIRONMENTS.
 */
export interface DeclaredEnvironment {
  readonly acting_as: string;
  readonly environment: Readonly<Record<string, string>>;
}

/**
 * Known AWS exceptions to "an action is authorised on the resource it names", each encoded once.
 */
export const AWS_EXCEPTIONS = {
  glueSchemaVersionById: {
    rule: 'glue:GetSchemaVersion by SchemaVersionId is authorised only against Resource "*"',
    source: 'AWS Glue developer guide, IAM examples for the schema registry deserializers ("Resource": "*"); '
      + 'maintainer answer on awslabs/aws-glue-schema-registry#68',
  },
  glueSchemaActionsOnRegistryAndSchema: {
    rule: 'schema actions (GetSchemaByDefinition, RegisterSchemaVersion, CreateSchema, GetSchema, GetSchemaVersion by SchemaId) '
      + 'are authorised against both the registry ARN and the schema ARN',
    source: 'AWS Glue developer guide, "Schema registry" IAM permissions (resources: registry and schema ARNs)',
  },
  s3MultipartAsPutObject: {
    rule: 'CreateMultipartUpload, UploadPart and CompleteMultipartUpload are authorised as s3:PutObject; HeadObject as s3:GetObject; '
      + 'ListObjectsV2 as s3:ListBucket on the bucket',
    source: 'Amazon S3 user guide, "Actions, resources, and condition keys for Amazon S3" (required permissions per API)',
  },
  s3MissingKeyNeedsList: {
    rule: 'a GetObject or HeadObject of a missing key answers 404 only with s3:ListBucket on the bucket, else 403 AccessDenied',
    source: 'Amazon S3 API reference, GetObject and HeadObject, "Permissions"',
  },
  dynamodbBatchPerTable: {
    rule: 'BatchGetItem and BatchWriteItem are authorised per table named in RequestItems; TransactWriteItems per item action',
    source: 'Amazon DynamoDB developer guide, "Using IAM policy conditions for fine-grained access control" / API permissions reference',
  },
} as const;

/** KMS calls a service makes with the caller's permissions when the resource uses a customer managed key. */
export const KMS_IMPLIED: Readonly<Record<string, { readonly actions: (operation: string) => string[]; readonly source: string }>> = {
  sqs: {
    actions: (op) => (op.startsWith('Send') ? ['kms:GenerateDataKey', 'kms:Decrypt'] : op.startsWith('Receive') ? ['kms:Decrypt'] : []),
    source: 'Amazon SQS developer guide, "Key management": producers need kms:GenerateDataKey and kms:Decrypt, consumers kms:Decrypt',
  },
  s3: {
    actions: (op) => (['PutObject', 'CreateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload'].includes(op)
      ? ['kms:GenerateDataKey', 'kms:Decrypt'] : ['GetObject', 'HeadObject'].includes(op) ? ['kms:Decrypt'] : []),
    source: 'Amazon S3 user guide, "Using server-side encryption with AWS KMS keys (SSE-KMS)": uploads need kms:GenerateDataKey '
      + '(multipart also kms:Decrypt), downloads kms:Decrypt',
  },
  dynamodb: {
    actions: (op) => (op.startsWith('Describe') ? [] : ['kms:Decrypt', 'kms:DescribeKey']),
    source: 'Amazon DynamoDB developer guide, "How Amazon DynamoDB uses AWS KMS": principals using a table under a customer managed key '
      + 'need kms:Decrypt and kms:DescribeKey on it',
  },
  secretsmanager: {
    actions: (op) => (op === 'GetSecretValue' ? ['kms:Decrypt'] : []),
    source: 'AWS Secrets Manager user guide, "Secret encryption and decryption": GetSecretValue needs kms:Decrypt on the secret\'s key',
  },
};

/** A principal of the deployed app: a role, its identity statements and its trust policy. */
export interface RoleView {
  readonly arn: string;
  readonly name: string;
  readonly account: string;
  readonly statements: PolicyStatement[];
  readonly trust: PolicyStatement[];
  /** AWS managed policies: their statements are not in the templates, so a judged role must have none. */
  readonly managedPolicyArns: readonly string[];
}

export interface FunctionView {
  readonly name: string;
  readonly resource: EvaluatedResource;
  readonly stack: EvaluatedStack;
  readonly role: RoleView;
  readonly environment: Readonly<Record<string, string>>;
  readonly logGroupArn?: string;
  /** Customer managed key of the log group, which CloudWatch Logs itself uses. */
  readonly logKeyArn?: string;
}

export interface Judgement {
  readonly function: string;
  readonly role: string;
  readonly call: string;
  readonly action: string;
  readonly resource: string;
  readonly allowed: boolean;
  readonly why: string;
  /** Recorded: a call some local run made. Modelled: a call AWS makes that no local run can (see {@link MODELLED}). */
  readonly source: 'recorded' | 'modelled';
}

export interface IamReport {
  readonly judgements: readonly Judgement[];
  readonly denied: readonly Judgement[];
  /** role ARN -> granted actions no call used. */
  readonly unused: Readonly<Record<string, readonly string[]>>;
  /** Problems that make the check itself invalid (empty recording, unknown resources). */
  readonly problems: readonly string[];
}

function asList<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) {
    return [];
  }
  return Array.isArray(value) ? value : [value];
}

function resourcesOf(app: DeployedApp, type: string): { stack: EvaluatedStack; r: EvaluatedResource }[] {
  return app.stacks.flatMap((stack) => [...stack.resources.values()].filter((r) => r.type === type).map((r) => ({ stack, r })));
}

/** Every role with its inline policies, the AWS::IAM::Policy resources attached to it and its trust policy. */
export function rolesOf(app: DeployedApp): RoleView[] {
  const policies = resourcesOf(app, 'AWS::IAM::Policy');
  return resourcesOf(app, 'AWS::IAM::Role').map(({ stack, r }) => {
    const name = String(r.created.ref);
    const statements: PolicyStatement[] = [];
    for (const p of asList(r.properties.Policies as Json[] | undefined)) {
      statements.push(...asList((p.PolicyDocument as Json).Statement as PolicyStatement[]));
    }
    for (const { stack: ps, r: p } of policies) {
      if (ps.env.account === stack.env.account && asList(p.properties.Roles as string[]).includes(name)) {
        statements.push(...asList((p.properties.PolicyDocument as Json).Statement as PolicyStatement[]));
      }
    }
    const trust = asList(((r.properties.AssumeRolePolicyDocument ?? {}) as Json).Statement as PolicyStatement[]);
    return {
      arn: String(r.created.attributes.Arn), name, account: stack.env.account, statements, trust,
      managedPolicyArns: asList(r.properties.ManagedPolicyArns as string[]),
    };
  });
}

/** The deployed function whose construct path names `constructName` (e.g. Consumer, Producer). */
export function functionOf(app: DeployedApp, name: string, constructName: string): FunctionView {
  const roles = rolesOf(app);
  const matches = resourcesOf(app, 'AWS::Lambda::Function').filter(({ stack, r }) => {
    const path = String(((stack.template.Resources as Record<string, Json>)[r.logicalId].Metadata as Json | undefined)?.['aws:cdk:path'] ?? '');
    return path.split('/').includes(constructName);
  });
  if (matches.length !== 1) {
    throw new Error(`expected one Lambda function under a construct named ${constructName}, found ${matches.length}`);
  }
  const { stack, r } = matches[0];
  const role = roles.find((x) => x.arn === r.properties.Role);
  if (!role) {
    throw new Error(`function ${name}: its role ${String(r.properties.Role)} is not a role of the app`);
  }
  const environment = ((r.properties.Environment as Json | undefined)?.Variables ?? {}) as Record<string, string>;
  const logGroup = String(((r.properties.LoggingConfig as Json | undefined)?.LogGroup) ?? '');
  const group = resourcesOf(app, 'AWS::Logs::LogGroup').find((x) => x.r.created.ref === logGroup)?.r;
  return {
    name, resource: r, stack, role, environment,
    logGroupArn: group?.created.attributes.Arn as string | undefined,
    logKeyArn: group?.properties.KmsKeyId as string | undefined,
  };
}

/** Resolves what a local call names to the deployed app's resources. */
class ResourceMap {
  /**
   * @param deployedEnv the deployed caller's variables (a function's environment; for a mapping, its on-failure destination)
   * @param localEnvs the configurations the local caller ran with, by the same variable names
   */
  constructor(private readonly app: DeployedApp, private readonly deployedEnv: Readonly<Record<string, string>>,
    private readonly localEnvs: readonly Readonly<Record<string, string>>[]) {}

  /** A local value (bucket name, queue URL, ...) as the deployed caller sees it, through the shared env var names. */
  translate(local: string): string {
    for (const env of this.localEnvs) {
      for (const [name, value] of Object.entries(env)) {
        if (value === local && this.deployedEnv[name] !== undefined) {
          return this.deployedEnv[name];
        }
      }
    }
    return local;
  }

  private find(type: string, test: (r: EvaluatedResource) => boolean, what: string): EvaluatedResource {
    const found = resourcesOf(this.app, type).find(({ r }) => test(r));
    if (!found) {
      throw new Error(`${what} is not a resource of the deployed app`);
    }
    return found.r;
  }

  table(name: string): EvaluatedResource {
    const world = this.translate(name);
    return this.find('AWS::DynamoDB::Table', (r) => r.created.ref === world, `table ${name}`);
  }

  bucket(name: string): EvaluatedResource {
    const world = this.translate(name);
    return this.find('AWS::S3::Bucket', (r) => r.created.ref === world, `bucket ${name}`);
  }

  queue(url: string): EvaluatedResource {
    const world = this.translate(url);
    const name = world.split('/').pop();
    return this.find('AWS::SQS::Queue', (r) => r.created.ref === world || r.created.attributes.QueueName === name, `queue ${url}`);
  }

  secret(id: string): EvaluatedResource {
    const world = this.translate(id);
    return this.find('AWS::SecretsManager::Secret', (r) => r.created.ref === world, `secret ${id}`);
  }

  registry(name: string): EvaluatedResource {
    return this.find('AWS::Glue::Registry', (r) => r.properties.Name === this.translate(name), `registry ${name}`);
  }

  role(arn: string): RoleView {
    const name = arn.split('/').pop();
    const role = rolesOf(this.app).find((r) => r.arn === this.translate(arn) || r.name === name);
    if (!role) {
      throw new Error(`role ${arn} is not a role of the deployed app`);
    }
    return role;
  }
}

/** The key a resource is encrypted with, when it is a customer managed key of the app. */
function keyOf(r: EvaluatedResource): string | undefined {
  const p = r.properties;
  const candidates = [
    (p.SSESpecification as Json | undefined)?.KMSMasterKeyId,
    p.KmsMasterKeyId,
    p.KmsKeyId,
    ...asList(((p.BucketEncryption as Json | undefined)?.ServerSideEncryptionConfiguration) as Json[] | undefined)
      .map((c) => (c.ServerSideEncryptionByDefault as Json | undefined)?.KMSMasterKeyID),
  ];
  const key = candidates.find((c) => typeof c === 'string' && c.includes(':kms:'));
  return key as string | undefined;
}

interface Needed {
  readonly action: string;
  readonly resource: string;
  readonly key?: EvaluatedResource;
  readonly exception?: keyof typeof AWS_EXCEPTIONS;
}

/** What IAM authorises for one recorded call: actions on resources (the service's authorisation model). */
function authorisations(call: RecordedCall, map: ResourceMap): Needed[] {
  const op = call.operation;
  const res = call.resource;
  const arnOf = (r: EvaluatedResource) => String(r.created.attributes.Arn);
  switch (call.service) {
    case 'dynamodb': {
      if (op === 'TransactWriteItems') {
        const verb: Record<string, string> = { Put: 'PutItem', Update: 'UpdateItem', ConditionCheck: 'ConditionCheckItem', Delete: 'DeleteItem' };
        return asList(res.Items as [string, string][]).map(([kind, table]) => {
          const t = map.table(table);
          return { action: `dynamodb:${verb[kind] ?? kind}`, resource: arnOf(t), key: t, exception: 'dynamodbBatchPerTable' };
        });
      }
      const tables = res.Tables ? asList(res.Tables as string[]) : [String(res.TableName)];
      return tables.map((name) => {
        const t = map.table(name);
        return { action: `dynamodb:${op}`, resource: arnOf(t), key: t, exception: res.Tables ? 'dynamodbBatchPerTable' : undefined };
      });
    }
    case 's3': {
      const bucket = map.bucket(String(res.Bucket));
      const name = String(bucket.created.ref);
      const objectArn = `${arnOf(bucket)}/${String(res.Key ?? '')}`;
      const actions: Record<string, [string, string]> = {
        PutObject: ['s3:PutObject', objectArn], CreateMultipartUpload: ['s3:PutObject', objectArn], UploadPart: ['s3:PutObject', objectArn],
        CompleteMultipartUpload: ['s3:PutObject', objectArn], GetObject: ['s3:GetObject', objectArn], HeadObject: ['s3:GetObject', objectArn],
        AbortMultipartUpload: ['s3:AbortMultipartUpload', objectArn], DeleteObject: ['s3:DeleteObject', objectArn],
        ListObjectsV2: ['s3:ListBucket', arnOf(bucket)], ListObjects: ['s3:ListBucket', arnOf(bucket)],
      };
      const [action, resource] = actions[op] ?? [`s3:${op}`, `arn:aws:s3:::${name}`];
      const out: Needed[] = [{ action, resource, key: bucket, exception: ['CreateMultipartUpload', 'UploadPart', 'CompleteMultipartUpload', 'HeadObject', 'ListObjectsV2'].includes(op) ? 's3MultipartAsPutObject' : undefined }];
      if (call.status === 404 && (op === 'GetObject' || op === 'HeadObject')) {
        out.push({ action: 's3:ListBucket', resource: arnOf(bucket), exception: 's3MissingKeyNeedsList' });
      }
      return out;
    }
    case 'sqs': {
      const queue = map.queue(String(res.QueueUrl ?? res.QueueName));
      const action = op === 'SendMessageBatch' ? 'sqs:SendMessage' : `sqs:${op}`;
      return [{ action, resource: arnOf(queue), key: queue }];
    }
    case 'secretsmanager': {
      const secret = map.secret(String(res.SecretId));
      return [{ action: `secretsmanager:${op}`, resource: String(secret.created.ref), key: secret }];
    }
    case 'glue': {
      if (op === 'GetSchemaVersion' && res.SchemaVersionId !== undefined && res.SchemaId === undefined) {
        return [{ action: 'glue:GetSchemaVersion', resource: '*', exception: 'glueSchemaVersionById' }];
      }
      const schemaId = (res.SchemaId ?? {}) as Json;
      const registryName = String(schemaId.RegistryName ?? (res.RegistryId as Json | undefined)?.RegistryName ?? res.RegistryName ?? '');
      const registry = map.registry(registryName);
      const registryArn = arnOf(registry);
      const schemaName = schemaId.SchemaName ?? res.SchemaName;
      const out: Needed[] = [{ action: `glue:${op}`, resource: registryArn, exception: 'glueSchemaActionsOnRegistryAndSchema' }];
      if (schemaName !== undefined) {
        out.push({ action: `glue:${op}`, resource: `${registryArn.replace(':registry/', ':schema/')}/${String(schemaName)}`, exception: 'glueSchemaActionsOnRegistryAndSchema' });
      }
      return out;
    }
    case 'sts':
      if (op === 'AssumeRole') {
        return [{ action: 'sts:AssumeRole', resource: map.role(String(res.RoleArn)).arn }];
      }
      return op === 'GetCallerIdentity' ? [] : [{ action: `sts:${op}`, resource: '*' }];
    default:
      return [{ action: `${call.service}:${op}`, resource: '*' }];
  }
}

/** Key policy statements of a key of the app, by key ARN. */
function keyPolicy(app: DeployedApp, keyArn: string): PolicyStatement[] | undefined {
  const key = resourcesOf(app, 'AWS::KMS::Key').find(({ r }) => r.created.attributes.Arn === keyArn);
  return key ? asList(((key.r.properties.KeyPolicy ?? {}) as Json).Statement as PolicyStatement[]) : undefined;
}

export interface CheckInput {
  readonly app: DeployedApp;
  readonly calls: readonly RecordedCall[];
  /** Local process name -> construct name of its function in the app (e.g. consumer -> Consumer). */
  readonly functions: Readonly<Record<string, string>>;
  /** The local environment the functions ran with (stack.env), for translating local names. */
  readonly localEnv: Readonly<Record<string, string>>;
  /** The configurations integration tests ran functions and mappings with (by `acting_as`). */
  readonly environments?: readonly DeclaredEnvironment[];
  /** Env var naming the role a function assumes for Glue (contract envVars.registryRoleArn). */
  readonly registryRoleEnv: string;
}

/** Who a recorded call stands for: a function, the event source mappings of a function, or no one judged. */
type Caller = { readonly kind: 'function' | 'esm'; readonly fn: FunctionView } | { readonly kind: 'skip'; readonly reason?: string };

/** The mappings of a function, with their on-failure destination (a queue ARN) when they have one. */
function mappingsOf(app: DeployedApp, fn: FunctionView): { r: EvaluatedResource; onFailure?: string }[] {
  const arn = String(fn.resource.created.attributes.Arn);
  return resourcesOf(app, 'AWS::Lambda::EventSourceMapping')
    .filter(({ r }) => r.properties.FunctionName === arn || r.properties.FunctionName === fn.resource.created.ref)
    .map(({ r }) => ({
      r,
      onFailure: (((r.properties.DestinationConfig as Json | undefined)?.OnFailure as Json | undefined)?.Destination) as string | undefined,
    }));
}

/**
 * What a mapping "sees" as variables, for translating the emulator's local names: its on-failure
 * destination as the queue URL (every mapping of the function must share one, else it is ambiguous).
 */
function esmEnvironment(app: DeployedApp, fn: FunctionView): Record<string, string> {
  const destinations = [...new Set(mappingsOf(app, fn).map((m) => m.onFailure).filter((d): d is string => d !== undefined))];
  if (destinations.length > 1) {
    throw new Error(`the mappings of ${fn.name} have different on-failure destinations (${destinations.join(', ')}): a local queue cannot stand for one`);
  }
  const queue = resourcesOf(app, 'AWS::SQS::Queue').find(({ r }) => r.created.attributes.Arn === destinations[0])?.r;
  return queue ? { [ON_FAILURE_QUEUE_ENV]: String(queue.created.ref) } : {};
}

/** Judges every recorded call; see {@link IamReport}. */
export function checkIam(input: CheckInput): IamReport {
  const { app } = input;
  const problems: string[] = [];
  const judgements: Judgement[] = [];
  const used = new Map<string, Set<string>>();
  if (input.calls.length === 0) {
    problems.push('the recording is empty: no AWS call was recorded, so nothing was checked');
  }
  const assumedByKey = new Map<string, string>();
  for (const c of input.calls) {
    if (c.service === 'sts' && c.operation === 'AssumeRole' && c.assumed_access_key) {
      assumedByKey.set(c.assumed_access_key, String(c.resource.RoleArn));
    }
  }
  const judge = (fn: FunctionView, role: RoleView, callText: string, need: Needed, context: Record<string, string>, source: Judgement['source'] = 'recorded') => {
    if (role.managedPolicyArns.length > 0) {
      problems.push(`${role.arn} has managed policies this check cannot read: ${role.managedPolicyArns.join(', ')}`);
    }
    const request: AuthorizationRequest = { action: need.action, resource: need.resource, context: { 'aws:PrincipalArn': role.arn, ...context } };
    const decision = decide(role.statements, request);
    let allowed = decision === 'allow';
    let why = decision === 'allow' ? 'allowed by the role policy' : decision === 'explicit-deny' ? 'explicitly denied' : 'no statement of the role allows it';
    if (need.exception) {
      why += ` [${AWS_EXCEPTIONS[need.exception].rule}]`;
    }
    if (allowed && need.action.startsWith('kms:')) {
      const policy = keyPolicy(app, need.resource);
      const keyAllows = policy !== undefined && policy.some((s) => s.Effect === 'Allow'
        && principalMatches(s.Principal, role.arn, role.account) && statementApplies({ ...s, Resource: '*' }, { ...request, resource: '*' }));
      if (!keyAllows) {
        allowed = false;
        why = 'the key policy does not let this account\'s IAM policies (or the role) use the key';
      }
    }
    if (allowed && need.action === 'sts:AssumeRole') {
      const target = rolesOf(app).find((r) => r.arn === need.resource);
      const trusted = target?.trust.some((s) => s.Effect === 'Allow' && principalMatches(s.Principal, role.arn, role.account)
        && statementApplies({ ...s, Resource: '*' }, { ...request, resource: '*' }));
      if (!trusted) {
        allowed = false;
        why = `the trust policy of ${need.resource} does not trust ${role.arn}`;
      }
    }
    judgements.push({ function: fn.name, role: role.arn, call: callText, action: need.action, resource: need.resource, allowed, why, source });
    const set = used.get(role.arn) ?? new Set<string>();
    set.add(need.action.toLowerCase());
    used.set(role.arn, set);
  };

  const functions = new Map<string, FunctionView>();
  for (const [process, construct] of Object.entries(input.functions)) {
    try {
      functions.set(process, functionOf(app, process, construct));
    } catch (error) {
      problems.push(String((error as Error).message));
    }
  }
  const declared = (label: string) => (input.environments ?? []).filter((e) => e.acting_as === label).map((e) => e.environment);
  const callerOf = (call: RecordedCall): Caller => {
    if (call.acting_as === undefined) {
      // e2e: the functions run as their own processes under cargo lambda watch; other processes are local tools.
      const fn = functions.get(call.caller?.process ?? '');
      return fn ? { kind: 'function', fn } : { kind: 'skip' };
    }
    if (call.acting_as === TEST_LABEL) {
      return { kind: 'skip' };
    }
    const esm = call.acting_as.startsWith(ESM_LABEL_PREFIX);
    const fn = functions.get(esm ? call.acting_as.slice(ESM_LABEL_PREFIX.length) : call.acting_as);
    return fn ? { kind: esm ? 'esm' : 'function', fn } : { kind: 'skip', reason: `calls acting as an unknown identity "${call.acting_as}"` };
  };
  const seen = new Map<string, number>();
  for (const call of input.calls) {
    const caller = callerOf(call);
    if (caller.kind === 'skip') {
      if (caller.reason && !problems.includes(caller.reason)) {
        problems.push(caller.reason);
      }
      continue;
    }
    const { fn } = caller;
    const who = caller.kind === 'esm' ? `the event source mappings of ${fn.name}` : fn.name;
    seen.set(who, (seen.get(who) ?? 0) + 1);
    const callText = `${call.service}:${call.operation} ${JSON.stringify(call.resource)}`;
    try {
      const localEnvs = [input.localEnv, ...declared(call.acting_as ?? fn.name)];
      const map = new ResourceMap(app, caller.kind === 'esm' ? esmEnvironment(app, fn) : fn.environment, localEnvs);
      let role = fn.role;
      const assumed = call.access_key ? assumedByKey.get(call.access_key) : undefined;
      const registryRole = caller.kind === 'function' ? fn.environment[input.registryRoleEnv] : undefined;
      if (assumed) {
        role = map.role(assumed);
      } else if (call.service === 'glue' && registryRole) {
        // On AWS this function's Glue client reads through the role its environment names (glue_client), after
        // an sts:AssumeRole with its own role; a Glue call signed with the function's own key did not do that.
        throw new Error(`signed with the function's own credentials, not with credentials of the role ${input.registryRoleEnv} names `
          + '(the run did not assume it, or its AssumeRole answer was not recorded)');
      }
      for (const need of authorisations(call, map)) {
        judge(fn, role, callText, need, {});
        const key = need.key ? keyOf(need.key) : undefined;
        const implied = KMS_IMPLIED[call.service];
        if (key && implied) {
          const region = key.split(':')[3];
          for (const action of implied.actions(call.operation)) {
            judge(fn, role, `${callText} (implied: ${implied.source})`, { action, resource: key }, { 'kms:ViaService': `${call.service}.${region}.amazonaws.com` });
          }
        }
      }
    } catch (error) {
      problems.push(`${who}: ${callText}: ${(error as Error).message}`);
    }
  }
  // Every invocation writes the function's logs as its role (Lambda "Lambda execution role"): logs:CreateLogStream, logs:PutLogEvents.
  for (const fn of functions.values()) {
    if ((seen.get(fn.name) ?? 0) === 0) {
      problems.push(`no call of ${fn.name} was recorded: it did not run, or its calls were not attributed to it`);
      continue;
    }
    if (mappingsOf(app, fn).some((m) => m.onFailure !== undefined) && (seen.get(`the event source mappings of ${fn.name}`) ?? 0) === 0) {
      problems.push(`no call of the event source mappings of ${fn.name} was recorded (their on-failure destination is unverified): `
        + `run the esm-emulator tests with the recording endpoint acting as ${ESM_LABEL_PREFIX}${fn.name}`);
    }
    if (fn.logGroupArn) {
      const stream = fn.logGroupArn.replace(/:\*$/, ':log-stream:2026/01/01/[$LATEST]0123456789abcdef');
      for (const action of ['logs:CreateLogStream', 'logs:PutLogEvents']) {
        judge(fn, fn.role, `${action} (modelled: ${MODELLED.logs})`, { action, resource: stream }, {}, 'modelled');
      }
      if (fn.logKeyArn) {
        judgements.push(...logsServiceUsesKey(app, fn));
      }
    }
    for (const need of lambdaServiceCalls(app, fn)) {
      judge(fn, fn.role, need.why, need, need.context ?? {}, 'modelled');
    }
  }
  const unused: Record<string, string[]> = {};
  for (const role of new Set(judgements.map((j) => j.role))) {
    const view = rolesOf(app).find((r) => r.arn === role);
    const usedActions = used.get(role) ?? new Set();
    unused[role] = grantedActions(view?.statements ?? []).filter((a) => !usedActions.has(a.toLowerCase()));
  }
  return { judgements, denied: judgements.filter((j) => !j.allowed), unused, problems };
}

interface ServiceCall extends Needed {
  readonly why: string;
  readonly context?: Record<string, string>;
}

/**
 * What AWS does with a function's execution role that no local run can do, and why; each is judged
 * as a model of the call (source "modelled"), everything else is judged from recorded calls.
 * Lambda developer guide, "Configuring Lambda execution role permissions" (with-kafka-permissions:
 * logs, the SASL secret and its key, the VPC actions, the on-failure destination) and "Giving Lambda
 * functions access to resources in an Amazon VPC".
 */
export const MODELLED = {
  logs: 'Lambda writes the function\'s logs with its execution role; locally cargo lambda watch captures stdout',
  eni: 'Lambda manages the function\'s and the mappings\' VPC network interfaces; there is no VPC locally',
  secret: 'the mapping reads its SASL/SCRAM secret to authenticate to the brokers; the local broker (tansu) runs without SASL, '
    + 'so the emulator connects with no credentials and reads no secret',
  kafkaCluster: 'MSK IAM authentication happens inside the broker protocol; the local Kafka broker has none',
} as const;

/**
 * Calls Lambda makes with the function's execution role that no local run can record (see
 * {@link MODELLED}). The on-failure destination is not here: the esm-emulator's SendMessage is
 * recorded, acting as the mappings of the function.
 */
function lambdaServiceCalls(app: DeployedApp, fn: FunctionView): ServiceCall[] {
  const out: ServiceCall[] = [];
  const inVpc = fn.resource.properties.VpcConfig !== undefined;
  const eniActions = ['ec2:CreateNetworkInterface', 'ec2:DescribeNetworkInterfaces', 'ec2:DeleteNetworkInterface'];
  const pollerActions = ['ec2:DescribeVpcs', 'ec2:DescribeSubnets', 'ec2:DescribeSecurityGroups'];
  if (inVpc) {
    for (const action of eniActions) {
      out.push({ action, resource: '*', why: `${action} (modelled: ${MODELLED.eni})` });
    }
  }
  for (const { r } of mappingsOf(app, fn)) {
    const access = asList(r.properties.SourceAccessConfigurations as Json[] | undefined);
    for (const a of access) {
      if (/_AUTH$/.test(String(a.Type))) {
        const secret = resourcesOf(app, 'AWS::SecretsManager::Secret').find(({ r: x }) => x.created.ref === a.URI)?.r;
        out.push({ action: 'secretsmanager:GetSecretValue', resource: String(a.URI), why: `the event source mapping ${r.logicalId} reads its ${String(a.Type)} secret (modelled: ${MODELLED.secret})` });
        const key = secret ? keyOf(secret) : undefined;
        if (key) {
          out.push({ action: 'kms:Decrypt', resource: key, why: `the event source mapping ${r.logicalId} decrypts its secret (modelled: ${MODELLED.secret})`, context: { 'kms:ViaService': `secretsmanager.${key.split(':')[3]}.amazonaws.com` } });
        }
      }
    }
    if (access.some((a) => a.Type === 'VPC_SUBNET')) {
      for (const action of [...eniActions, ...pollerActions]) {
        out.push({ action, resource: '*', why: `${action} (modelled for the event source mapping ${r.logicalId}: ${MODELLED.eni})` });
      }
    }
  }
  return out;
}

/** CloudWatch Logs itself uses the log group's key when the function logs (see {@link cloudWatchLogsMayUseKey}). */
function logsServiceUsesKey(app: DeployedApp, fn: FunctionView): Judgement[] {
  const keyArn = String(fn.logKeyArn);
  const region = keyArn.split(':')[3];
  const groupArn = String(fn.logGroupArn).replace(/:\*$/, '');
  const policy = keyPolicy(app, keyArn) ?? [];
  return ['kms:GenerateDataKey', 'kms:Decrypt'].map((action) => {
    const allowed = cloudWatchLogsMayUseKey(policy, region, groupArn, action);
    return {
      function: fn.name, role: `service logs.${region}.amazonaws.com`, call: `log delivery to ${groupArn}`, action, resource: keyArn, allowed, source: 'modelled' as const,
      why: allowed ? 'allowed by the key policy' : `the key policy does not let CloudWatch Logs use the key for ${groupArn}`,
    };
  });
}

/** Services whose authorisation a local run cannot record, and why. */
export const NOT_RECORDABLE: Readonly<Record<string, string>> = {
  'kafka-cluster': MODELLED.kafkaCluster,
};

/** The report as text: denials and problems first, then unused grants, then a count per role. */
export function formatReport(report: IamReport): string {
  const lines: string[] = [];
  for (const p of report.problems) {
    lines.push(`PROBLEM ${p}`);
  }
  const deniedKeys = new Set<string>();
  for (const d of report.denied) {
    const key = `${d.role} ${d.action} ${d.resource}`;
    if (!deniedKeys.has(key)) {
      deniedKeys.add(key);
      lines.push(`DENIED  ${d.function} as ${d.role}: ${d.action} on ${d.resource} (${d.why}) <- ${d.call}`);
    }
  }
  for (const [role, actions] of Object.entries(report.unused)) {
    const unobservable = actions.filter((a) => a.split(':')[0] in NOT_RECORDABLE);
    const unused = actions.filter((a) => !unobservable.includes(a));
    if (unused.length > 0) {
      lines.push(`UNUSED  ${role}: ${unused.join(', ')}`);
    }
    if (unobservable.length > 0) {
      const why = [...new Set(unobservable.map((a) => NOT_RECORDABLE[a.split(':')[0]]))].join('; ');
      lines.push(`UNSEEN  ${role}: ${unobservable.join(', ')} (${why})`);
    }
  }
  // What is modelled rather than recorded, said once per role and action, with the reason.
  const modelledKeys = new Set<string>();
  for (const j of report.judgements.filter((x) => x.source === 'modelled')) {
    const key = `${j.role} ${j.action}`;
    if (!modelledKeys.has(key)) {
      modelledKeys.add(key);
      lines.push(`MODELLED ${j.role}: ${j.action} on ${j.resource} (${j.allowed ? 'allowed' : 'DENIED'}): ${j.call}`);
    }
  }
  const byRole = new Map<string, { ok: number; denied: number; modelled: number }>();
  for (const j of report.judgements) {
    const c = byRole.get(j.role) ?? { ok: 0, denied: 0, modelled: 0 };
    if (j.allowed) {
      c.ok++;
    } else {
      c.denied++;
    }
    if (j.source === 'modelled') {
      c.modelled++;
    }
    byRole.set(j.role, c);
  }
  for (const [role, c] of byRole) {
    lines.push(`ROLE    ${role}: ${c.ok} allowed, ${c.denied} denied authorisations (${c.modelled} of them modelled, the rest recorded)`);
  }
  return lines.join('\n');
}
