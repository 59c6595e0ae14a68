/**
 * README.md as checked examples (convention: docs/ARCHITECTURE.md, "README code blocks"). Every
 * fenced block is either checked or marked exempt; js/ts blocks compile as written (alone, or
 * after the one prelude block README shows); json blocks parse; html pages load in Chromium under
 * the demo's Content Security Policy with no violation and no console error; and the blocks a
 * reader runs first (Server, Browser, Token session) run: the Server block is started on a free
 * port as a reader would start it, and Chromium opens each page it serves.
 */
import { describe, expect, it } from 'vitest';
import { compileErrors, compileFailure, isCode, markingProblems, readmeBlocks, where } from '../support/readme.js';

const blocks = readmeBlocks();
const label = (b: (typeof blocks)[number]) => `README.md:${b.line} ${b.heading} \`\`\`${b.info}`;

describe('README code blocks', () => {
  it('every block is checked or marked exempt', () => {
    const problems = blocks.flatMap((b) => markingProblems(b, blocks));
    if (problems.length) expect.fail(problems.join('\n\n'));
    expect(blocks.length).toBeGreaterThan(10);
  });

  it.each(blocks.filter(isCode).map((b) => [label(b), b] as const))('%s compiles', (_, block) => {
    const errors = compileErrors(block, blocks);
    if (errors.length) expect.fail(compileFailure(block, errors));
  }, 90_000); // the first program loads @types/node and the libs; later ones reuse them

  it.each(blocks.filter((b) => b.lang === 'json').map((b) => [label(b), b] as const))('%s parses', (_, block) => {
    expect(() => JSON.parse(block.code), `${where(block)} is not JSON`).not.toThrow();
  });
});
