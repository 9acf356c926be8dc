/**
 * Writes docs/architecture.dot from the cdk.json config and the contract (see cdk/lib/diagram.ts).
 * cdk/scripts/diagram.sh then renders it with Graphviz.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseConfig } from '../lib/config';
import { pipelineContracts, REPO_ROOT } from '../lib/contracts';
import { architectureDot } from '../lib/diagram';

const context = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'cdk.json'), 'utf8')).context;
const contracts = pipelineContracts();
const file = path.join(REPO_ROOT, 'docs', 'architecture.dot');
fs.writeFileSync(file, architectureDot(parseConfig(context.pipeline, contracts, {}), contracts));
console.log(`wrote ${path.relative(REPO_ROOT, file)}`);
