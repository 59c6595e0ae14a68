/**
 * The README docs test's extractor and marking rules (test/support/readme.ts): a block other
 * helpers add without the convention fails with a message naming its line and heading and saying
 * how to mark it.
 */
import { describe, expect, it } from 'vitest';
import { markingProblems, readmeBlocks } from '../../support/readme.js';

const markdown = [
  '# Title',
  '## Setup',
  '```bash',
  'npm i',
  '```',
  '### Deeper',
  '```js prelude=nope',
  'x',
  '```',
  '```text exempt=outptu',
  'hi',
  '```',
  '```js browser foo=1',
  '```',
  '```sh exempt=shell',
  'npm test',
  '```',
  '```ts name=a',
  '```',
  '```js prelude=a',
  '```',
].join('\n');

describe('README blocks', () => {
  const blocks = readmeBlocks(markdown);

  it('reads each fence with its line, heading path, language and attributes', () => {
    expect(blocks.map((b) => [b.line, b.heading, b.lang, b.attrs])).toEqual([
      [3, '# Title › ## Setup', 'bash', {}],
      [7, '# Title › ## Setup › ### Deeper', 'js', { prelude: 'nope' }],
      [10, '# Title › ## Setup › ### Deeper', 'text', { exempt: 'outptu' }],
      [13, '# Title › ## Setup › ### Deeper', 'js', { browser: '', foo: '1' }],
      [15, '# Title › ## Setup › ### Deeper', 'sh', { exempt: 'shell' }],
      [18, '# Title › ## Setup › ### Deeper', 'ts', { name: 'a' }],
      [20, '# Title › ## Setup › ### Deeper', 'js', { prelude: 'a' }],
    ]);
    expect(blocks[0]?.code).toBe('npm i\n');
  });

  it('an unmarked or wrongly marked block fails, named by line and heading, with how to fix it', () => {
    const problems = blocks.flatMap((b) => markingProblems(b, blocks));
    expect(problems).toHaveLength(4);
    expect(problems[0]).toMatch(/^README\.md:3 \(# Title › ## Setup\), ```bash: .*mark it exempt: ```bash exempt=shell/);
    expect(problems[1]).toMatch(/^README\.md:7 .*prelude=nope: README must show exactly one block marked name=nope/);
    expect(problems[2]).toMatch(/^README\.md:10 .*exempt=outptu: say exempt=shell .*, exempt=output .*, exempt=config .* or exempt=run/);
    expect(problems[3]).toMatch(/^README\.md:13 .*unknown attribute "foo"/);
    for (const problem of problems) expect(problem).toContain('docs/ARCHITECTURE.md, "README code blocks"');
  });
});
