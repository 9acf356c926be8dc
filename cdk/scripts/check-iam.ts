/**
 * IAM both ways over a recorded local run (scripts/test.sh stage `iam`):
 *
 *   ts-node cdk/scripts/check-iam.ts <recording.jsonl> <lambda.env>
 *
 * Deploys the app (two accounts, so the consumer's registry role is a real cross-account
 * assumption) into the simulated AWS of cdk/test/support, judges every call the producer and
 * consumer made against the policies of the role each runs as, prints the granted actions no call
 * used, and exits 1 on any denial, on an empty recording or on a function with no recorded call.
 */
import * as fs from 'node:fs';
import { loadContracts } from '../lib/contracts';
import { deployTemplates, synthesizeVariant } from '../test/support/deploy-app';
import { checkIam, formatReport, FUNCTIONS, IAM_CHECK_VARIANT, RecordedCall } from '../test/support/iam-check';

function readEnvFile(path: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of fs.readFileSync(path, 'utf8').split('\n')) {
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) {
      env[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
    }
  }
  return env;
}

const [recordingPath, envPath] = process.argv.slice(2);
if (!recordingPath || !envPath) {
  console.error('usage: check-iam.ts <recording.jsonl> <lambda.env>');
  process.exit(2);
}
if (!fs.existsSync(recordingPath)) {
  console.error(`no recording at ${recordingPath}: run the e2e stage first (scripts/pipeline.sh --verify records the calls)`);
  process.exit(1);
}
const calls = fs.readFileSync(recordingPath, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as RecordedCall);
const app = deployTemplates(synthesizeVariant(IAM_CHECK_VARIANT));
const report = checkIam({
  app,
  calls,
  functions: FUNCTIONS,
  localEnv: readEnvFile(envPath),
  registryRoleEnv: loadContracts().envVars.registryRoleArn,
});
console.log(formatReport(report));
const checked = report.judgements.length;
console.log(`iam: ${calls.length} recorded calls, ${checked} authorisations judged, ${report.denied.length} denied, ${report.problems.length} problems`);
process.exit(report.denied.length > 0 || report.problems.length > 0 ? 1 : 0);
