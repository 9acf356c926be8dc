/**
 * Synthesizes the app the way `cdk synth` does (cdk.json context) but with asset bundling
 * skipped, for the template scanners. Usage:
 *
 *   ts-node cdk/scripts/synth-unbundled.ts <outdir> [pipeline-override.json]
 *
 * The optional override is merged over the cdk.json `pipeline` config (e.g. two accounts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { mergeConfig, parseConfig } from '../lib/config';
import { pipelineContracts, REPO_ROOT } from '../lib/contracts';
import { buildPipeline } from '../lib/pipeline';

const [outdir, overrideFile] = process.argv.slice(2);
if (!outdir) {
  console.error('usage: synth-unbundled.ts <outdir> [pipeline-override.json]');
  process.exit(2);
}
const context = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8')).context as Record<string, unknown>;
const override = overrideFile ? JSON.parse(fs.readFileSync(overrideFile, 'utf8')) : {};
const raw = mergeConfig(context.pipeline as Record<string, unknown>, override);
const app = new App({ outdir, context: { ...context, 'aws:cdk:bundling-stacks': [] } });
buildPipeline(app, { config: parseConfig(raw, pipelineContracts(), {}) });
app.synth();
console.log(`synthesized ${fs.readdirSync(outdir).filter((f) => f.endsWith('.template.json')).length} templates into ${outdir}`);
