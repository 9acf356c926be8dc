import * as fs from 'node:fs';
import * as path from 'node:path';
import { App, RemovalPolicy } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { parseConfig } from '../lib/config';
import { pipelineContracts } from '../lib/contracts';
import { buildPipeline } from '../lib/pipeline';
import { cdkJsonContext, CROSS_ACCOUNT, Synthesized, synthOnce, text } from './helpers';
import { wildcardFindings } from './policy-statements';

interface ReportViolation { ruleName: string; severity: string; violatingConstructs?: { constructPath: string }[] }
interface Report { pluginReports: { pluginName: string; violations: ReportViolation[] }[] }

function stacksOf(s: Synthesized) {
  const p = s.pipeline;
  return [p.producerVpc, p.msk, p.endpointService, p.producer, ...(p.consumer ? [p.consumer] : [])];
}

const variants: [string, Record<string, unknown>][] = [
  ['one account (defaults)', {}],
  ['two accounts', CROSS_ACCOUNT],
  ['retainData=false, multi-AZ, arm64, topic deletion, manual acceptance', {
    retainData: false, rds: { multiAz: true }, lambdaArchitecture: 'arm64', topicDeletion: 'delete', endpointAcceptanceRequired: true,
  }],
];

describe.each(variants)('compliance: %s', (_name, override) => {
  const synthesized = synthOnce(override);
  const templates = stacksOf(synthesized).map((stack) => ({ stack: stack.stackName, account: stack.account, template: Template.fromStack(stack) }));

  test('cdk-nag AwsSolutions and CloudFormation validation report zero unacknowledged findings', () => {
    const report = JSON.parse(fs.readFileSync(path.join(synthesized.outdir, 'validation-report.json'), 'utf8')) as Report;
    const open = report.pluginReports.flatMap((r) => r.violations.map((v) => `${r.pluginName} ${v.severity} ${v.ruleName} ${
      (v.violatingConstructs ?? []).map((c) => c.constructPath).join(',')}`));
    expect(open).toEqual([]);
    // The legacy policy-validation report (context @aws-cdk/core:validationReportJson) agrees.
    const legacy = JSON.parse(fs.readFileSync(path.join(synthesized.outdir, 'policy-validation-report.json'), 'utf8')) as Report;
    expect(legacy.pluginReports.flatMap((r) => r.violations)).toEqual([]);
  });

  test('every acknowledged finding carries a reason in the template metadata', () => {
    let acknowledged = 0;
    for (const { template } of templates) {
      const resources = template.toJSON().Resources as Record<string, { Metadata?: Record<string, unknown> }>;
      for (const resource of Object.values(resources)) {
        const rules = ((resource.Metadata?.cdk_nag as { rules_to_suppress?: { id: string; reason: string }[] })?.rules_to_suppress) ?? [];
        for (const rule of rules.filter((r) => r.id.startsWith('AwsSolutions'))) {
          expect(rule.reason.length).toBeGreaterThanOrEqual(20);
          acknowledged++;
        }
        const skips = ((resource.Metadata?.checkov as { skip?: { id: string; comment: string }[] })?.skip) ?? [];
        for (const skip of skips) {
          expect(skip.comment.length).toBeGreaterThanOrEqual(20);
        }
      }
    }
    expect(acknowledged).toBeGreaterThan(0);
  });

  test('no policy allows a wildcard action; "*" resources only for Lambda VPC networking (see policy-statements.ts)', () => {
    const findings = templates.flatMap(({ stack, account, template }) => wildcardFindings(template.toJSON(), stack, account));
    expect(findings).toEqual([]);
  });

  test('no security group admits the internet', () => {
    for (const { template } of templates) {
      const resources = template.toJSON().Resources as Record<string, { Type: string; Properties?: Record<string, unknown> }>;
      for (const [id, r] of Object.entries(resources)) {
        if (r.Type === 'AWS::EC2::SecurityGroupIngress') {
          expect(`${id} ${r.Properties?.CidrIp}`).not.toMatch(/0\.0\.0\.0\/0/);
          expect(r.Properties?.CidrIpv6).toBeUndefined();
        }
        if (r.Type === 'AWS::EC2::SecurityGroup') {
          expect(`${id} ${text(r.Properties?.SecurityGroupIngress)}`).not.toMatch(/0\.0\.0\.0\/0|::\/0/);
        }
      }
    }
  });

  test('every KMS key rotates and every log group is encrypted with a retention', () => {
    for (const { template } of templates) {
      const resources = template.toJSON().Resources as Record<string, { Type: string; Properties?: Record<string, unknown> }>;
      for (const [id, r] of Object.entries(resources)) {
        if (r.Type === 'AWS::KMS::Key') {
          expect(`${id} ${r.Properties?.EnableKeyRotation}`).toBe(`${id} true`);
        }
        if (r.Type === 'AWS::Logs::LogGroup') {
          expect(r.Properties?.KmsKeyId).toBeDefined();
          expect(r.Properties?.RetentionInDays).toBeDefined();
        }
      }
    }
  });
});

describe('cdk-nag is wired into the app', () => {
  test('a non-compliant resource added to a pipeline stack fails synthesis with an AwsSolutions finding', () => {
    const context = cdkJsonContext();
    const app = new App({ context: { ...context, 'aws:cdk:bundling-stacks': [] } });
    const config = parseConfig(context.pipeline, pipelineContracts(), {});
    const pipeline = buildPipeline(app, { config });
    new s3.Bucket(pipeline.producerVpc, 'CanaryBucketWithoutSslOrLogs', { removalPolicy: RemovalPolicy.DESTROY });
    expect(() => app.synth()).toThrow(/AwsSolutions-S1|AwsSolutions-S10/);
  });
});
