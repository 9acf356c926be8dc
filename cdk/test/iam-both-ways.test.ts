/**
 * IAM both ways: the policy matcher itself (so a matcher bug cannot pass the check vacuously), and
 * the checker over the calls the functions make, judged against the deployed app's policies.
 * scripts/test.sh stage `iam` runs the same checker over the calls recorded in the e2e run.
 */
import { deployTemplates, DeployedApp, synthesizeVariant } from './support/deploy-app';
import { checkIam, FUNCTIONS, IAM_CHECK_VARIANT, RecordedCall } from './support/iam-check';
import { actionMatches, AuthorizationRequest, decide, PolicyStatement, resourceMatches } from './support/iam-policy';
import { loadContracts } from '../lib/contracts';

describe('IAM matcher', () => {
  const table = 'arn:aws:dynamodb:eu-west-1:444455556666:table/sensor-window-aggregates';
  const request = (action: string, resource: string, context: AuthorizationRequest['context'] = {}) => ({ action, resource, context });
  const allow = (Action: string | string[], Resource: string | string[], Condition?: PolicyStatement['Condition']): PolicyStatement => ({
    Effect: 'Allow', Action, Resource, Condition,
  });

  test('allows a listed action on a listed resource, case-insensitively for the action', () => {
    expect(decide([allow('dynamodb:PutItem', table)], request('dynamodb:putitem', table))).toBe('allow');
  });

  test('denies by resource and by action', () => {
    expect(decide([allow('dynamodb:PutItem', table)], request('dynamodb:PutItem', `${table}-other`))).toBe('implicit-deny');
    expect(decide([allow('dynamodb:PutItem', table)], request('dynamodb:DeleteItem', table))).toBe('implicit-deny');
    expect(decide([allow('s3:PutObject', 'arn:aws:s3:::bucket/store-events/*')], request('s3:PutObject', 'arn:aws:s3:::bucket/other/x'))).toBe('implicit-deny');
  });

  test('wildcards: * and ? in actions, per-segment ARN matching, * spans / in the resource part', () => {
    expect(actionMatches('kms:ReEncrypt*', 'kms:ReEncryptFrom')).toBe(true);
    expect(actionMatches('s3:Get?bject', 's3:GetObject')).toBe(true);
    expect(actionMatches('s3:Get*', 's3:PutObject')).toBe(false);
    expect(resourceMatches('arn:aws:glue:eu-west-1:111122223333:schema/reg/*', 'arn:aws:glue:eu-west-1:111122223333:schema/reg/a/b')).toBe(true);
    expect(resourceMatches('arn:aws:glue:eu-west-1:111122223333:schema/reg/*', 'arn:aws:glue:eu-west-1:111122223333:registry/reg')).toBe(false);
    expect(resourceMatches('arn:aws:logs:*:111122223333:log-group:g:*', 'arn:aws:logs:eu-west-1:111122223333:log-group:g:log-stream:s')).toBe(true);
    expect(resourceMatches('arn:aws:logs:eu-west-1:111122223333:log-group:g:*', 'arn:aws-cn:logs:eu-west-1:111122223333:log-group:g:x')).toBe(false);
    // "*" as the whole resource matches anything; a specific ARN never matches "*" requests.
    expect(decide([allow('glue:GetSchemaVersion', '*')], request('glue:GetSchemaVersion', '*'))).toBe('allow');
    expect(decide([allow('glue:GetSchemaVersion', 'arn:aws:glue:eu-west-1:111122223333:registry/reg')], request('glue:GetSchemaVersion', '*'))).toBe('implicit-deny');
  });

  test('conditions: must hold, missing keys fail positive operators, IfExists and negations pass them', () => {
    const viaSqs = allow('kms:Decrypt', '*', { StringEquals: { 'kms:ViaService': 'sqs.eu-west-1.amazonaws.com' } });
    expect(decide([viaSqs], request('kms:Decrypt', 'k', { 'kms:ViaService': 'sqs.eu-west-1.amazonaws.com' }))).toBe('allow');
    expect(decide([viaSqs], request('kms:Decrypt', 'k', { 'kms:ViaService': 's3.eu-west-1.amazonaws.com' }))).toBe('implicit-deny');
    expect(decide([viaSqs], request('kms:Decrypt', 'k'))).toBe('implicit-deny');
    const trust = allow('sts:AssumeRole', '*', { ArnLike: { 'aws:PrincipalArn': 'arn:aws:iam::444455556666:role/msk-lambda-pipeline-consumer-*' } });
    expect(decide([trust], request('sts:AssumeRole', '*', { 'aws:PrincipalArn': 'arn:aws:iam::444455556666:role/msk-lambda-pipeline-consumer-eu-west-1' }))).toBe('allow');
    expect(decide([trust], request('sts:AssumeRole', '*', { 'aws:PrincipalArn': 'arn:aws:iam::444455556666:role/other' }))).toBe('implicit-deny');
    expect(decide([allow('s3:GetObject', '*', { StringEqualsIfExists: { 's3:prefix': 'a/' } })], request('s3:GetObject', 'x'))).toBe('allow');
    expect(decide([allow('s3:GetObject', '*', { StringNotEquals: { 'aws:SourceVpc': 'vpc-1' } })], request('s3:GetObject', 'x'))).toBe('allow');
    expect(decide([allow('s3:GetObject', '*', { UnknownOperator: { k: 'v' } })], request('s3:GetObject', 'x', { k: 'v' }))).toBe('implicit-deny');
  });

  test('an explicit deny wins over any allow; NotAction and NotResource', () => {
    const statements: PolicyStatement[] = [
      allow('s3:*', '*'),
      { Effect: 'Deny', Action: 's3:*', Resource: '*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } },
    ];
    expect(decide(statements, request('s3:PutObject', 'arn:aws:s3:::b/k', { 'aws:SecureTransport': 'true' }))).toBe('allow');
    expect(decide(statements, request('s3:PutObject', 'arn:aws:s3:::b/k', { 'aws:SecureTransport': 'false' }))).toBe('explicit-deny');
    expect(decide([{ Effect: 'Allow', NotAction: 'iam:*', Resource: '*' }], request('iam:CreateUser', '*'))).toBe('implicit-deny');
    expect(decide([{ Effect: 'Allow', Action: '*', NotResource: 'arn:aws:s3:::b' }], request('s3:ListBucket', 'arn:aws:s3:::b'))).toBe('implicit-deny');
  });
});

describe('IAM checker over the deployed app', () => {
  let app: DeployedApp;
  beforeAll(() => {
    app = deployTemplates(synthesizeVariant(IAM_CHECK_VARIANT));
  });
  const contracts = loadContracts();
  const env = contracts.envVars;
  // The local stack's names, as scripts/local/provision.py writes them into stack.env.
  const localEnv = {
    [env.aggregatesTable]: contracts.tables.windowAggregates.name,
    [env.explicitEventsTable]: contracts.tables.explicitEvents.name,
    [env.storeEventsBucket]: contracts.bucket.localName,
    [env.poisonQueueUrl]: `http://127.0.0.1:35000/123456789012/${contracts.queues.poison}`,
    [env.registryName]: contracts.schemaRegistry.name,
  };
  const call = (process: string, service: string, operation: string, resource: Record<string, unknown>): RecordedCall => ({
    service, operation, resource, caller: { process }, access_key: 'test', region: 'us-east-1', status: 200,
  });
  const check = (calls: RecordedCall[]) => checkIam({ app, calls, functions: FUNCTIONS, localEnv, registryRoleEnv: env.registryRoleArn });
  // What each function does for its ordinary work (the e2e recording holds the same operations).
  const consumerWork = [
    call('consumer', 'dynamodb', 'BatchGetItem', { Tables: [contracts.tables.windowAggregates.name] }),
    call('consumer', 'dynamodb', 'PutItem', { TableName: contracts.tables.windowAggregates.name }),
    call('consumer', 'dynamodb', 'BatchWriteItem', { Tables: [contracts.tables.explicitEvents.name] }),
    call('consumer', 's3', 'GetObject', { Bucket: contracts.bucket.localName, Key: `${contracts.bucket.storeEventsPrefix}event_type=sale/x.ndjson.gz` }),
    call('consumer', 's3', 'PutObject', { Bucket: contracts.bucket.localName, Key: `${contracts.bucket.storeEventsPrefix}event_type=sale/x.ndjson.gz` }),
    call('consumer', 'sqs', 'SendMessage', { QueueUrl: localEnv[env.poisonQueueUrl] }),
  ];
  const producerWork = [
    call('producer', 'glue', 'GetSchemaByDefinition', { SchemaId: { RegistryName: contracts.schemaRegistry.name, SchemaName: 'SensorReading' } }),
    call('producer', 'glue', 'RegisterSchemaVersion', { SchemaId: { RegistryName: contracts.schemaRegistry.name, SchemaName: 'SensorReading' } }),
  ];
  const denials = (calls: RecordedCall[]) => check(calls).denied
    .map((d) => `${d.function} as ${d.role.split('/').pop()}: ${d.action} on ${d.resource}: ${d.why}`);

  test('the sinks, the poison queue and their customer managed key are granted to the consumer', () => {
    const report = check([...consumerWork, ...producerWork]);
    expect(report.problems).toEqual([]);
    expect(denials([...consumerWork, ...producerWork]).filter((d) => d.startsWith('consumer ') && !d.includes('service logs.'))).toEqual([]);
    expect(report.judgements.filter((j) => j.action === 'kms:GenerateDataKey').length).toBeGreaterThan(0);
    expect(report.judgements.some((j) => j.action === 'logs:PutLogEvents')).toBe(true);
    // A read of a missing object answered 404 needs s3:ListBucket (else S3 answers 403).
    const missing = { ...consumerWork[3], status: 404 };
    expect(check([missing, ...producerWork]).judgements.filter((j) => j.action === 's3:ListBucket').map((j) => j.allowed)).toEqual([true]);
  });

  test('reading a writer schema by version id works for the consumer (through the registry role) and the producer', () => {
    const byId = { SchemaVersionId: '4b5f0e9a-1c2d-4e3f-8a9b-0c1d2e3f4a5b' };
    expect(denials([
      ...consumerWork, call('consumer', 'glue', 'GetSchemaVersion', byId),
      ...producerWork, call('producer', 'glue', 'GetSchemaVersion', byId),
    ])).toEqual([]);
  });

  test('CloudWatch Logs may use each function\'s log group key', () => {
    expect(denials([...consumerWork, ...producerWork]).filter((d) => d.includes('service logs.'))).toEqual([]);
  });

  test('a call outside the grants is denied, an empty recording and a silent function are problems', () => {
    expect(denials([...consumerWork, ...producerWork, call('consumer', 's3', 'PutObject', { Bucket: contracts.bucket.localName, Key: 'elsewhere/x' })]).join('\n'))
      .toMatch(/consumer as [^:]+: s3:PutObject on arn:aws:s3:::[a-z0-9-]+\/elsewhere\/x: no statement of the role allows it/);
    expect(check([]).problems.join('\n')).toMatch(/the recording is empty/);
    expect(check(consumerWork).problems.join('\n')).toMatch(/no call of producer was recorded/);
  });

  test('granted actions no call used are reported', () => {
    const report = check([...consumerWork, ...producerWork]);
    const consumerRole = Object.keys(report.unused).find((r) => r.includes('consumer'));
    expect(consumerRole).toBeDefined();
    expect(report.unused[consumerRole as string]).toContain('dynamodb:Query');
    expect(report.unused[consumerRole as string]).not.toContain('dynamodb:PutItem');
  });
});
