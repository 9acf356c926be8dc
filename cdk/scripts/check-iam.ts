/**
 * IAM both ways over recorded local runs (scripts/test.sh stage `iam`):
 *
 *   ts-node cdk/scripts/check-iam.ts --env <lambda.env> [--environments <environments.jsonl>] <recording.jsonl>...
 *
 * Deploys the app (two accounts, so the consumer's registry role is a real cross-account
 * assumption) into the simulated AWS of cdk/test/support, judges every call the producer, the
 * consumer and the consumer's event source mappings made (e2e and integration-test recordings)
 * against the policies of the role each runs as, prints what is modelled instead of recorded and
 * the granted actions no call used, and exits 1 on any denial, on an empty recording or on a caller
 * with no recorded call.
 */
import * as fs from 'node:fs';
import { pipelineContracts } from '../lib/contracts';
import { deployTemplates, synthesizeVariant } from '../test/support/deploy-app';
import {
  checkIam, DeclaredEnvironment, formatReport, FUNCTIONS, IAM_CHECK_VARIANT, RecordedCall, TEST_LABEL,
} from '../test/support/iam-check';

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

function readJsonLines<T>(path: string): T[] {
  return fs.readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as T);
}

const usage = 'usage: check-iam.ts --env <lambda.env> [--environments <environments.jsonl>] <recording.jsonl>...';
const args = process.argv.slice(2);
let envPath: string | undefined;
let environmentsPath: string | undefined;
const recordings: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--env') {
    envPath = args[++i];
  } else if (args[i] === '--environments') {
    environmentsPath = args[++i];
  } else {
    recordings.push(args[i]);
  }
}
if (!envPath || recordings.length === 0) {
  console.error(usage);
  process.exit(2);
}
for (const path of [...recordings, ...(environmentsPath ? [environmentsPath] : [])]) {
  if (!fs.existsSync(path)) {
    console.error(`no recording at ${path}: run the rust and e2e stages first (scripts/test.sh records the calls of both)`);
    process.exit(1);
  }
}
const calls = recordings.flatMap((path) => readJsonLines<RecordedCall>(path));
const environments = environmentsPath ? readJsonLines<DeclaredEnvironment>(environmentsPath) : [];
const app = deployTemplates(synthesizeVariant(IAM_CHECK_VARIANT));
const report = checkIam({
  app,
  calls,
  functions: FUNCTIONS,
  localEnv: readEnvFile(envPath),
  environments,
  registryRoleEnv: pipelineContracts().envVars.registryRoleArn,
});
console.log(formatReport(report));
// Calls recorded but judged as no function: the tests' own set-up and assertions, adapter tests, local tools.
const notJudged = new Map<string, number>();
for (const call of calls) {
  const label = call.acting_as ?? (call.caller?.process && call.caller.process in FUNCTIONS ? undefined : `process ${call.caller?.process ?? 'unknown'}`);
  if (label === TEST_LABEL || (label !== undefined && call.acting_as === undefined)) {
    notJudged.set(label, (notJudged.get(label) ?? 0) + 1);
  }
}
for (const [label, count] of notJudged) {
  console.log(`NOT JUDGED ${count} calls acting as ${label} (set-up, assertions or tools, not a function)`);
}
const checked = report.judgements.length;
const modelled = report.judgements.filter((j) => j.source === 'modelled').length;
console.log(`iam: ${calls.length} recorded calls in ${recordings.join(', ')}; ${checked} authorisations judged (${modelled} modelled), `
  + `${report.denied.length} denied, ${report.problems.length} problems`);
process.exit(report.denied.length > 0 || report.problems.length > 0 ? 1 : 0);
