import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from '../lib/contracts';

/** The README's layout table names every tracked top-level folder, crate and script. */
describe('README layout table', () => {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('| Path | What it is |');
  const table = readme.slice(start, readme.indexOf('\n\n', start));
  const tracked = execFileSync('git', ['ls-files'], { cwd: REPO_ROOT, encoding: 'utf8' }).split('\n').filter(Boolean);

  const expected = new Set<string>();
  for (const file of tracked) {
    const parts = file.split('/');
    if (parts.length > 1) expected.add(`${parts[0]}/`);
    if (parts[0] === 'functions' && parts.length > 2) expected.add(`functions/${parts[1]}`);
    if (parts[0] === 'scripts' && parts.length === 2) expected.add(parts[1]);
    if (parts[0] === 'scripts' && parts[1] !== 'local' && parts.length > 2) expected.add(`scripts/${parts[1]}/`);
    if (parts[0] === 'scripts' && parts[1] === 'local' && parts.length >= 3) {
      expected.add(parts.length === 3 ? parts[2] : `scripts/local/${parts[2]}/`);
    }
  }

  test('finds the table', () => {
    expect(start).toBeGreaterThan(0);
  });

  test.each([...expected].sort())('%s is listed', (name) => {
    const bare = name.replace(/\/$/, '');
    const listed = table.includes(`\`${name}`) || table.includes(`\`${bare}\``) || table.includes(`\`${bare}/`)
      || table.includes(`\`${bare}\`,`) || table.includes(`${bare}\``);
    expect(listed).toBe(true);
  });
});
