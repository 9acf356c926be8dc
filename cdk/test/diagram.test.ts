import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseConfig } from '../lib/config';
import { pipelineContracts, REPO_ROOT } from '../lib/contracts';
import { architectureDot } from '../lib/diagram';
import { cdkJsonContext } from './helpers';

describe('architecture diagram', () => {
  test('docs/architecture.dot matches the current config and contract (run `npm run diagram`)', () => {
    const contracts = pipelineContracts();
    const expected = architectureDot(parseConfig(cdkJsonContext().pipeline, contracts, {}), contracts);
    const committed = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'architecture.dot'), 'utf8');
    expect(committed).toBe(expected);
    expect(fs.statSync(path.join(REPO_ROOT, 'docs', 'architecture.png')).size).toBeGreaterThan(10000);
  });

  test('docs/architecture.svg was rendered from the current .dot (every label line is in it)', () => {
    const dot = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'architecture.dot'), 'utf8');
    const svg = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'architecture.svg'), 'utf8')
      .replace(/&#(\d+);/g, (_, code) => String.fromCharCode(Number(code)))
      .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&amp;/g, '&');
    const lines = [...dot.matchAll(/label="((?:[^"\\]|\\.)*)"/g)]
      .flatMap((m) => m[1].split('\\n'))
      .map((line) => line.replace(/\\"/g, '"'));
    expect(lines.length).toBeGreaterThan(30);
    const missing = lines.filter((line) => !svg.includes(line));
    expect(missing).toEqual([]);
  });

  test('the diagram names every contract topic, table and queue', () => {
    const contracts = pipelineContracts();
    const dot = architectureDot(parseConfig({}, contracts, {}), contracts);
    for (const name of [
      contracts.topics.sensorReadings.name, contracts.topics.storeEvents.name, contracts.topics.explicitEvents.name,
      contracts.tables.windowAggregates.name, contracts.tables.explicitEvents.name,
      contracts.queues.poison, contracts.queues.onFailure, contracts.schemaRegistry.name,
    ]) {
      expect(dot).toContain(name);
    }
  });
});
