/**
 * The threat table is a claim per row: each row names the test that plays that attacker, and the
 * same table stands in README.md, SECURITY.md and docs/PROTOCOL.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  BINDING_LENGTH,
  DEFAULT_HEADER_LIMIT,
  IV_LENGTH,
  MAX_PAYLOAD_BYTES,
  MAX_REQUEST_HEADER_LENGTH,
  PUBLIC_KEY_LENGTH,
  TAG_LENGTH,
  VERSION,
  formatRequest,
} from '../../../src/protocol/wire.js';
import { memoryReplayStore } from '../../../src/server/dpop/replay-store.js';
import { checkDpopProof } from '../../../src/server/dpop/verify.js';
import { secretProblem } from '../../../src/server/handshake/secret.js';
import { defined, protocolVectors } from '../../support/helpers.js';
import { joseProof, proofKey } from '../../support/proofs.js';

const root = new URL('../../../', import.meta.url);
const read = (file: string) => readFileSync(new URL(file, root), 'utf8');

/** The table's rows, each as its trimmed cells (so that column padding does not matter). */
function threatTable(markdown: string): string[] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((line) => /^\|\s*attacker\s*\|\s*what they get today\s*\|\s*test\s*\|$/.test(line.trim()));
  expect(start, 'the threat table').toBeGreaterThan(-1);
  const rest = lines.slice(start + 2);
  const end = rest.findIndex((line) => !line.trim().startsWith('|'));
  return rest.slice(0, end === -1 ? undefined : end).map((line) =>
    line
      .split('|')
      .map((cell) => cell.trim())
      .join(' | '),
  );
}

describe('threat table', () => {
  const docs = ['README.md', 'SECURITY.md', 'docs/PROTOCOL.md'];

  it.each(docs)('%s: every row names a test file that exists', (doc) => {
    const rows = threatTable(read(doc));
    expect(rows.length).toBeGreaterThanOrEqual(6);
    for (const row of rows) {
      const tests = [...row.matchAll(/`(test\/[^`]+\.test\.ts)`/g)].map((m) => m[1] ?? '');
      expect(tests.length, row).toBeGreaterThan(0);
      for (const file of tests) expect(existsSync(new URL(file, root)), file).toBe(true);
    }
  });

  it('is the same table in all three documents', () => {
    const [first, ...others] = docs.map((doc) => threatTable(read(doc)).join('\n'));
    for (const other of others) expect(other).toBe(first);
  });
});

/**
 * docs/PROTOCOL.md's prose, without code blocks (the vectors, the grammar) and without the threat
 * table: the text whose counts a reader takes on trust.
 */
function protocolProse(): string {
  return read('docs/PROTOCOL.md')
    .split(/^```[^\n]*\n[\s\S]*?^```$/m)
    .join('\n')
    .split(/^\| attacker .*\n(?:\|.*\n)*/m)
    .join('\n')
    .split('\n')
    .join(' ')
    .replace(/\s+/g, ' ');
}

const b64Length = (bytes: number) => Math.ceil((bytes * 4) / 3);

describe('every byte and character count in docs/PROTOCOL.md is computed here, from the grammar, the code or the vectors', () => {
  const prose = protocolProse();
  const vectors = protocolVectors();
  const p256Key = new Uint8Array(PUBLIC_KEY_LENGTH.p256).fill(7, 1);
  p256Key[0] = 4;
  const requestP256 = formatRequest('p256', p256Key, new Uint8Array(BINDING_LENGTH));
  const requestX25519 = formatRequest('x25519', new Uint8Array(PUBLIC_KEY_LENGTH.x25519), new Uint8Array(BINDING_LENGTH));
  // The longest response: a P-256 key and the largest payload (header and body forms joined).
  const responseFixed = (algorithm: 'p256' | 'x25519') =>
    `${VERSION}.`.length + b64Length(PUBLIC_KEY_LENGTH[algorithm]) + 1 + b64Length(IV_LENGTH) + 1;
  const longestResponse = responseFixed('p256') + b64Length(MAX_PAYLOAD_BYTES + TAG_LENGTH);
  const headerFormPayload = (algorithm: 'p256' | 'x25519') =>
    Math.floor(((DEFAULT_HEADER_LIMIT - responseFixed(algorithm)) * 3) / 4) - TAG_LENGTH;
  const longContext = defined(
    vectors.find((v) => v.keyContext.length / 2 > 1024),
    'the vector with a long C',
  );

  /** Each count as the prose states it, in its sentence, and the value it must be. */
  const claims: [RegExp, number][] = [
    [/The whole value is at most (\d+) characters/, requestP256.length],
    [/\(P-256: 3 \+ 5 \+ 87 \+ 1 \+ 43\)/, -1],
    [/Servers refuse values over (\d+) characters unparsed/, MAX_REQUEST_HEADER_LENGTH],
    [/Longer than (\d+) characters → 431/, MAX_REQUEST_HEADER_LENGTH],
    [/Two P-256 values joined are (\d+) characters/, requestP256.length * 2 + 2],
    [/over the (\d+)-character limit/, MAX_REQUEST_HEADER_LENGTH],
    [/Two X25519 values joined are (\d+) characters/, requestX25519.length * 2 + 2],
    [/and have (\d+) fields/, `${requestX25519}, ${requestX25519}`.split('.').length],
    [/`lp\(x\)`: a (\d+)-byte big-endian length/, 2],
    [/Each of the three is written with a (\d+)-byte length/, 2],
    [/a field longer than (\d+) bytes is an error/i, 2 ** 16 - 1],
    [/a field over (\d+) bytes cannot be bound/, 2 ** 16 - 1],
    [/path is longer than (\d+) bytes → 414/, 2 ** 16 - 1],
    [/vector 4 has a ([\d,]+)-byte `C`/, longContext.keyContext.length / 2],
    [/payload may be at most (\d+) bytes/, MAX_PAYLOAD_BYTES],
    [/response value at most (\d+) characters/, longestResponse],
    [/longer than (\d+) characters \(refused before decoding\)/, longestResponse],
    [/default (\d+) characters: up to/, DEFAULT_HEADER_LIMIT],
    [/up to (\d+) bytes of payload with P-256/, headerFormPayload('p256')],
    [/, (\d+) with X25519\)/, headerFormPayload('x25519')],
    [/16 random bytes, base64url, (\d+) characters/, b64Length(16)],
    [/uses (\d+) random bytes/, 16],
    [/public key = (\d+) raw bytes/, PUBLIC_KEY_LENGTH.x25519],
    [/public key = the (\d+)-byte uncompressed/, PUBLIC_KEY_LENGTH.p256],
    [/then Y, (\d+) bytes each/, (PUBLIC_KEY_LENGTH.p256 - 1) / 2],
    [/shared secret = the (\d+)-byte X coordinate/, 32],
    [/AES-256-GCM, (\d+)-byte IV/, IV_LENGTH],
    [/(\d+)-byte tag appended/, TAG_LENGTH],
    [/`iv` not (\d+) bytes/, IV_LENGTH],
    [/`ct` shorter than (\d+) bytes/, TAG_LENGTH],
    [/`m` not (\d+) bytes/, BINDING_LENGTH],
    [/`m = HMAC-SHA256\(key = utf8\(secret\), binding_input\)`, (\d+) bytes/, BINDING_LENGTH],
    [/\(32 or 65 bytes, per `alg`\)/, -1],
  ];

  it.each(claims.map(([pattern, value]) => [pattern.source, pattern, value] as const))('%s', (_, pattern, value) => {
    const match = pattern.exec(prose);
    expect(match, `PROTOCOL.md no longer says ${pattern.source}`).not.toBeNull();
    if (value !== -1) expect(match?.[1]?.replace(/,/g, '')).toBe(String(value));
  });

  it('the checks stated as sums add up: 3 + 5 + 87 + 1 + 43, and 32 or 65 bytes per alg', () => {
    expect(3 + 5 + b64Length(PUBLIC_KEY_LENGTH.p256) + 1 + b64Length(BINDING_LENGTH)).toBe(requestP256.length);
    expect(`${VERSION}.`.length + 'p256.'.length).toBe(3 + 5);
    expect([PUBLIC_KEY_LENGTH.x25519, PUBLIC_KEY_LENGTH.p256]).toEqual([32, 65]);
  });

  it('the limits the prose states are the reference verifier’s: 8192 characters a proof, 1 to 256 bytes of UTF-8 a jti, 64 bytes a signature', async () => {
    expect(/more than (\d+) characters, or not three/.exec(prose)?.[1]).toBe('8192');
    expect(/\*\*1 to (\d+) bytes\*\* of UTF-8/.exec(prose)?.[1]).toBe('256');
    expect(/exactly \*\*(\d+) bytes\*\*/.exec(prose)?.[1]).toBe('64');
    const options = { algorithms: ['ES256' as const], maxAge: 60, clockSkew: 5, replayStore: memoryReplayStore() };
    const at = (proof: string) => {
      try {
        checkDpopProof(proof, { method: 'GET', url: 'https://app.example/' }, options);
        return 'accepted';
      } catch (error) {
        return (error as Error).message;
      }
    };
    expect(at('a'.repeat(8193))).toMatch(/longer than 8192 characters/);
    expect(at('a'.repeat(8192))).not.toMatch(/longer than/);
    const key = await proofKey();
    const withJti = async (jti: string) => at(await joseProof(key, { htm: 'GET', htu: 'https://app.example/', jti }));
    expect(await withJti('j'.repeat(256))).toBe('accepted');
    expect(await withJti('j'.repeat(257))).toMatch(/jti must be a well-formed string of 1 to 256 bytes of UTF-8/);
    // A lone surrogate (JSON "\ud800") has no UTF-8 form: refused, paired it is accepted.
    expect(await withJti('a\ud800')).toMatch(/jti must be a well-formed string/);
    expect(await withJti('\udc00a')).toMatch(/jti must be a well-formed string/);
    expect(await withJti('a\ud83d\ude00')).toBe('accepted');
    // 86 characters, 258 bytes: the unit is bytes.
    expect(await withJti('€'.repeat(86))).toMatch(/jti/);
    expect(await withJti('€'.repeat(85))).toBe('accepted');
    const good = await joseProof(key, { htm: 'GET', htu: 'https://app.example/' });
    const [head, body, signature = ''] = good.split('.');
    const bytes = Buffer.from(signature, 'base64url');
    expect(bytes).toHaveLength(64);
    expect(at(`${head}.${body}.${Buffer.concat([bytes, Buffer.from([0])]).toString('base64url')}`)).toMatch(/signature/);
    expect(at(`${head}.${body}.${bytes.subarray(0, 63).toString('base64url')}`)).toMatch(/signature/);
  });

  it('the secret rules: 16 to 1024 bytes', () => {
    expect(/\*\*(\d+) to (\d+) bytes\*\* of UTF-8/.exec(prose)?.slice(1)).toEqual(['16', '1024']);
    expect(secretProblem('s'.repeat(15))).toBeDefined();
    expect(secretProblem('s'.repeat(16))).toBeUndefined();
    expect(secretProblem('s'.repeat(1024))).toBeUndefined();
    expect(secretProblem('s'.repeat(1025))).toBeDefined();
  });

  it('every number of bytes or characters in the prose is one of the counts above', () => {
    const covered = new Set<number>([
      ...claims.map(([pattern]) => Number(pattern.exec(prose)?.[1]?.replace(/,/g, ''))),
      8192,
      256,
      64,
      16,
      1024,
      32,
      65,
      12,
      // Named in the prose as facts of other software: Node's HKDF info limit, nginx's buffer, proxies' header line.
      ...[1024, 4, 8],
    ]);
    const stated = [...prose.matchAll(/\b(\d[\d,]*)(?:-| )(?:bytes?|characters?|byte|character)\b/g)].map((m) =>
      Number(m[1]?.replace(/,/g, '')),
    );
    expect(stated.length).toBeGreaterThan(20);
    expect(stated.filter((n) => !covered.has(n))).toEqual([]);
  });
});
