import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('making X25519 key pairs under GC pressure never deadlocks (Node 20 generateKeyPairSync + JWK export did)', async () => {
  const script = new URL('./deadlock/keys.mjs', import.meta.url).pathname;
  // A small young generation makes the GC run constantly; the old code hung well inside this.
  const { stdout } = await promisify(execFile)(process.execPath, ['--max-semi-space-size=1', script, '60000'], { timeout: 60_000 });
  expect(stdout.trim()).toBe('60000');
}, 70_000);
