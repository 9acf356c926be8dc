/**
 * IAM both ways: the policy matcher itself (so a matcher bug cannot pass the check vacuously), and
 * the checker over the calls the functions make, judged against the deployed app's policies.
 * scripts/test.sh stage `iam` runs the same checker over the calls recorded in the e2e run.
 */
import { deployTemplates, DeployedApp, synthesizeVariant } from './support/deploy-app';
import {
  checkIam, DeclaredEnvironment, ESM_LABEL_PREFIX, FUNCTIONS, functionOf, IAM_CHECK_VARIANT, ON_FAILURE_QUEUE_ENV, RecordedCall, rolesOf, TEST_LABEL,
} from './support/iam-check';
import { actionMatches, AuthorizationRequest, decide, PolicyStatement, resourceMatches } from './support/iam-policy';
import { pipelineContracts } from '../lib/contracts';

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

/** Removes `action` from every identity policy of the deployed app: a deliberately narrowed policy. */
function withoutAction(app: DeployedApp, action: string): DeployedApp {
  for (const stack of app.stacks) {
    for (const r of stack.resources.values()) {
      const documents = r.type === 'AWS::IAM::Policy' ? [r.properties.PolicyDocument]
        : r.type === 'AWS::IAM::Role' ? ((r.properties.Policies ?? []) as { PolicyDocument: unknown }[]).map((p) => p.PolicyDocument) : [];
      for (const document of documents as { Statement: PolicyStatement[] }[]) {
        document.Statement = document.Statement.flatMap((st) => {
          const actions = (Array.isArray(st.Action) ? st.Action : st.Action === undefined ? [] : [st.Action]).filter((a) => a.toLowerCase() !== action.toLowerCase());
          return st.Action !== undefined && actions.length === 0 ? [] : [{ ...st, ...(st.Action !== undefined ? { Action: actions } : {}) }];
        });
      }
    }
  }
  return app;
}

describe('IAM checker over the deployed app', () => {
  let app: DeployedApp;
  let templates: ReturnType<typeof synthesizeVariant>;
  beforeAll(() => {
    templates = synthesizeVariant(IAM_CHECK_VARIANT);
    app = deployTemplates(templates);
  });
  /** A fresh deployment of the same templates (narrowing one must not change the others). */
  const redeploy = () => deployTemplates(JSON.parse(JSON.stringify(templates)) as typeof templates);
  const contracts = pipelineContracts();
  const env = contracts.envVars;
  // The local stack's names, as scripts/local/provision.py writes them into stack.env.
  const localEnv = {
    [env.aggregatesTable]: contracts.tables.windowAggregates.name,
    [env.explicitEventsTable]: contracts.tables.explicitEvents.name,
    [env.storeEventsBucket]: contracts.bucket.localName,
    [env.poisonQueueUrl]: `http://127.0.0.1:35000/123456789012/${contracts.queues.poison}`,
    [env.registryName]: contracts.schemaRegistry.name,
    // The role the local consumer is configured to assume (moto's account), as scripts/local/provision.py writes it.
    [env.registryRoleArn]: 'arn:aws:iam::123456789012:role/pipeline-registry-reader',
    [ON_FAILURE_QUEUE_ENV]: `http://127.0.0.1:35000/123456789012/${contracts.queues.onFailure}`,
  };
  const call = (process: string, service: string, operation: string, resource: Record<string, unknown>): RecordedCall => ({
    service, operation, resource, caller: { process }, access_key: 'test', region: 'us-east-1', status: 200,
  });
  const check = (calls: RecordedCall[], environments: DeclaredEnvironment[] = [], on: DeployedApp = app) => checkIam({
    app: on, calls, functions: FUNCTIONS, localEnv, environments, registryRoleEnv: env.registryRoleArn,
  });
  // The consumer really assumes its registry role (moto's STS answers with a key), then reads Glue with that key.
  const assumedKey = 'ASIAQEXAMPLEASSUMED1';
  const assume: RecordedCall = { ...call('consumer', 'sts', 'AssumeRole', { RoleArn: localEnv[env.registryRoleArn], RoleSessionName: 'pipeline-schema-registry' }), assumed_access_key: assumedKey };
  const byId = { SchemaVersionId: '4b5f0e9a-1c2d-4e3f-8a9b-0c1d2e3f4a5b' };
  const consumerGlue: RecordedCall = { ...call('consumer', 'glue', 'GetSchemaVersion', byId), access_key: assumedKey };
  // The mappings (the esm-emulator, acting as the consumer's mappings) send a batch they gave up on to the on-failure queue.
  const esmWork: RecordedCall[] = [{ ...call('esm-emulator', 'sqs', 'SendMessage', { QueueUrl: localEnv[ON_FAILURE_QUEUE_ENV] }), acting_as: `${ESM_LABEL_PREFIX}consumer` }];
  // What each function does for its ordinary work (the e2e recording holds the same operations).
  const consumerWork: RecordedCall[] = [
    assume, consumerGlue,
    call('consumer', 'dynamodb', 'BatchGetItem', { Tables: [contracts.tables.windowAggregates.name] }),
    call('consumer', 'dynamodb', 'PutItem', { TableName: contracts.tables.windowAggregates.name }),
    call('consumer', 'dynamodb', 'BatchWriteItem', { Tables: [contracts.tables.explicitEvents.name] }),
    call('consumer', 's3', 'GetObject', { Bucket: contracts.bucket.localName, Key: `${contracts.bucket.storeEventsPrefix}event_type=sale/x.ndjson.gz` }),
    call('consumer', 's3', 'PutObject', { Bucket: contracts.bucket.localName, Key: `${contracts.bucket.storeEventsPrefix}event_type=sale/x.ndjson.gz` }),
    call('consumer', 'sqs', 'SendMessage', { QueueUrl: localEnv[env.poisonQueueUrl] }),
  ];
  const producerWork: RecordedCall[] = [
    call('producer', 'glue', 'GetSchemaByDefinition', { SchemaId: { RegistryName: contracts.schemaRegistry.name, SchemaName: 'SensorReading' } }),
    call('producer', 'glue', 'RegisterSchemaVersion', { SchemaId: { RegistryName: contracts.schemaRegistry.name, SchemaName: 'SensorReading' } }),
  ];
  const denials = (calls: RecordedCall[], on: DeployedApp = app) => check(calls, [], on).denied
    .map((d) => `${d.function} as ${d.role.split('/').pop()}: ${d.action} on ${d.resource}: ${d.why}`);

  test('the sinks, the poison queue and their customer managed key are granted to the consumer', () => {
    const report = check([...consumerWork, ...producerWork, ...esmWork]);
    expect(report.problems).toEqual([]);
    expect(denials([...consumerWork, ...producerWork, ...esmWork]).filter((d) => d.startsWith('consumer ') && !d.includes('service logs.'))).toEqual([]);
    expect(report.judgements.filter((j) => j.action === 'kms:GenerateDataKey').length).toBeGreaterThan(0);
    expect(report.judgements.some((j) => j.action === 'logs:PutLogEvents')).toBe(true);
    // A read of a missing object answered 404 needs s3:ListBucket (else S3 answers 403).
    const missing = { ...consumerWork.find((c) => c.operation === 'GetObject') as RecordedCall, status: 404 };
    expect(check([missing, ...producerWork, ...esmWork]).judgements.filter((j) => j.action === 's3:ListBucket').map((j) => j.allowed)).toEqual([true]);
  });

  test('reading a writer schema by version id works for the consumer (through the registry role) and the producer', () => {
    expect(denials([...consumerWork, ...producerWork, call('producer', 'glue', 'GetSchemaVersion', byId), ...esmWork])).toEqual([]);
  });

  test('CloudWatch Logs may use each function\'s log group key', () => {
    expect(denials([...consumerWork, ...producerWork, ...esmWork]).filter((d) => d.includes('service logs.'))).toEqual([]);
  });

  test('a call outside the grants is denied, an empty recording and a silent function are problems', () => {
    expect(denials([...consumerWork, ...producerWork, ...esmWork, call('consumer', 's3', 'PutObject', { Bucket: contracts.bucket.localName, Key: 'elsewhere/x' })]).join('\n'))
      .toMatch(/consumer as [^:]+: s3:PutObject on arn:aws:s3:::[a-z0-9-]+\/elsewhere\/x: no statement of the role allows it/);
    expect(check([]).problems.join('\n')).toMatch(/the recording is empty/);
    expect(check([...consumerWork, ...esmWork]).problems.join('\n')).toMatch(/no call of producer was recorded/);
    expect(check([...consumerWork, ...producerWork]).problems.join('\n')).toMatch(/no call of the event source mappings of consumer was recorded/);
  });

  test('granted actions no call used are reported', () => {
    const report = check([...consumerWork, ...producerWork, ...esmWork]);
    const consumerRole = Object.keys(report.unused).find((r) => r.includes('consumer'));
    expect(consumerRole).toBeDefined();
    expect(report.unused[consumerRole as string]).toContain('dynamodb:Query');
    expect(report.unused[consumerRole as string]).not.toContain('dynamodb:PutItem');
  });

  describe('integration-test recordings: who a call stands for is the endpoint it used', () => {
    // A test run's own resources, named after the contract's (functions/consumer/tests/local_servers.rs).
    const run = 'ci0123456789ab';
    const declared: DeclaredEnvironment[] = [{
      acting_as: 'consumer',
      environment: {
        [env.aggregatesTable]: `${run}-${contracts.tables.windowAggregates.name}`,
        [env.poisonQueueUrl]: `http://127.0.0.1:35000/123456789012/${run}-${contracts.queues.poison}`,
        [env.registryRoleArn]: localEnv[env.registryRoleArn],
      },
    }];
    const asConsumer = (c: RecordedCall): RecordedCall => ({ ...c, caller: { process: 'local_servers-3f2a' }, acting_as: 'consumer' });
    const testWork = [
      asConsumer(call('', 'dynamodb', 'BatchGetItem', { Tables: [`${run}-${contracts.tables.windowAggregates.name}`] })),
      asConsumer(call('', 'sqs', 'SendMessage', { QueueUrl: declared[0].environment[env.poisonQueueUrl] })),
      asConsumer(assume), asConsumer(consumerGlue),
    ];
    const all = [...testWork, ...producerWork, ...esmWork];

    test('a test\'s calls as the consumer are judged as the consumer, with its run\'s names translated by the declared configuration', () => {
      const report = check(all, declared);
      expect(report.problems).toEqual([]);
      const batchGet = report.judgements.find((j) => j.action === 'dynamodb:BatchGetItem');
      expect(batchGet).toMatchObject({ function: 'consumer', allowed: true, source: 'recorded' });
      expect(batchGet?.resource).toMatch(new RegExp(`:table/${contracts.tables.windowAggregates.name}$`));
      // Without the declaration the run's table is no resource of the app: a problem, not a silent pass.
      expect(check(all).problems.join('\n')).toMatch(/table ci0123456789ab-sensor-window-aggregates is not a resource of the deployed app/);
    });

    test('a call no statement allows fails the check (deliberately narrowed policy)', () => {
      expect(denials(all, app)).toEqual([]);
      const narrowed = redeploy();
      withoutAction(narrowed, 'dynamodb:BatchGetItem');
      const report = check(all, declared, narrowed);
      expect(report.denied.map((d) => `${d.function} ${d.action} ${d.source}`)).toEqual(['consumer dynamodb:BatchGetItem recorded']);
    });

    test('set-up and assertions (acting as test) are recorded but never judged as a function', () => {
      const setup: RecordedCall = { ...call('', 'dynamodb', 'DeleteTable', { TableName: `${run}-${contracts.tables.windowAggregates.name}` }), acting_as: TEST_LABEL };
      const report = check([...all, setup], declared);
      expect(report.problems).toEqual([]);
      expect(report.judgements.some((j) => j.action === 'dynamodb:DeleteTable')).toBe(false);
      // The same call acting as the consumer is judged, and denied: the consumer may not delete tables.
      expect(check([...all, { ...setup, acting_as: 'consumer' }], declared).denied.map((d) => d.action)).toEqual(['dynamodb:DeleteTable']);
      expect(check([...all, { ...setup, acting_as: 'someone' }], declared).problems.join('\n')).toMatch(/unknown identity "someone"/);
    });
  });

  describe('the event source mappings\' calls are recorded, as the consumer\'s execution role', () => {
    test('the emulator\'s SendMessage to the on-failure queue is judged against the consumer role and the queue\'s key', () => {
      const report = check([...consumerWork, ...producerWork, ...esmWork]);
      expect(report.problems).toEqual([]);
      const sends = report.judgements.filter((j) => j.call.includes('SendMessage') && j.call.includes(contracts.queues.onFailure));
      expect(sends.map((j) => `${j.action} ${j.source} ${j.allowed}`)).toEqual(['sqs:SendMessage recorded true', 'kms:GenerateDataKey recorded true', 'kms:Decrypt recorded true']);
      expect(sends[0].resource).toMatch(new RegExp(`:sqs:eu-west-1:\\d{12}:${contracts.queues.onFailure}$`));
      expect(sends[0].role).toMatch(/consumer/i);
      // Nothing about the on-failure destination is modelled any more; the modelled rest says why.
      expect(report.judgements.filter((j) => j.source === 'modelled' && j.action.startsWith('sqs:'))).toEqual([]);
      expect(report.judgements.filter((j) => j.source === 'modelled').map((j) => j.action)).toEqual(expect.arrayContaining(['ec2:CreateNetworkInterface', 'secretsmanager:GetSecretValue']));
    });

    test('without sqs:SendMessage the mapping\'s recorded SendMessage is denied (deliberately narrowed policy)', () => {
      const narrowed = withoutAction(redeploy(), 'sqs:SendMessage');
      const denied = check([...consumerWork, ...producerWork, ...esmWork], [], narrowed).denied.filter((d) => d.call.includes(contracts.queues.onFailure));
      expect(denied.map((d) => `${d.action} ${d.source}`)).toEqual(['sqs:SendMessage recorded']);
    });
  });

  describe('the consumer really assumes the registry role: AssumeRole as the consumer, Glue as the assumed role', () => {
    // The role the deployed consumer's REGISTRY_ROLE_ARN names.
    const registryRole = () => rolesOf(app).find((r) => r.arn === functionOf(app, 'consumer', 'Consumer').environment[env.registryRoleArn]);

    test('sts:AssumeRole is judged against the consumer role and the registry role\'s trust, the Glue read against the registry role', () => {
      const report = check([...consumerWork, ...producerWork, ...esmWork]);
      expect(report.problems).toEqual([]);
      const assumeJudgement = report.judgements.find((j) => j.action === 'sts:AssumeRole');
      expect(assumeJudgement).toMatchObject({ function: 'consumer', allowed: true, source: 'recorded' });
      expect(assumeJudgement?.role).toMatch(/consumer/i);
      const glue = report.judgements.find((j) => j.function === 'consumer' && j.action === 'glue:GetSchemaVersion');
      expect(glue).toMatchObject({ allowed: true, source: 'recorded', resource: '*', role: assumeJudgement?.resource });
      expect(glue?.role).toBe(registryRole()?.arn);
    });

    test('a Glue read signed with the consumer\'s own key (no real AssumeRole) is a problem', () => {
      const own = consumerWork.map((c) => (c === consumerGlue ? { ...c, access_key: 'test' } : c)).filter((c) => c !== assume);
      expect(check([...own, ...producerWork, ...esmWork]).problems.join('\n')).toMatch(/signed with the function's own credentials/);
    });

    test('a narrowed trust policy or reader policy denies them', () => {
      const untrusted = redeploy();
      const target = rolesOf(untrusted).find((r) => r.arn === registryRole()?.arn);
      expect(target).toBeDefined();
      for (const stack of untrusted.stacks) {
        for (const r of stack.resources.values()) {
          if (r.type === 'AWS::IAM::Role' && r.created.attributes.Arn === target?.arn) {
            (r.properties.AssumeRolePolicyDocument as { Statement: PolicyStatement[] }).Statement = [
              { Effect: 'Allow', Action: 'sts:AssumeRole', Principal: { AWS: 'arn:aws:iam::111122223333:role/someone-else' } } as PolicyStatement,
            ];
          }
        }
      }
      expect(denials([...consumerWork, ...producerWork, ...esmWork], untrusted).join('\n')).toMatch(/sts:AssumeRole .*the trust policy of .* does not trust/);
      const noRead = withoutAction(redeploy(), 'glue:GetSchemaVersion');
      expect(denials([...consumerWork, ...producerWork, ...esmWork], noRead).filter((d) => d.startsWith('consumer ') && d.includes('glue:GetSchemaVersion'))).toHaveLength(1);
    });
  });
});

