/**
 * The fast paths of issue 23, each checked against the slow path it replaces: the DPoP header
 * cache (as strict as an uncached check, bounded), one read of the request target and htu without
 * URL parses (the same bytes as normalizeHtu), the lazy deadline, initialize() skipping a cookie
 * the browser holds, the secret encoded once, and the proof's signature verified on a worker
 * (the same refusals, in the same order, as inline). No timing here: speed is `npm run bench`.
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import express from 'express';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import request from 'supertest';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { openResponse } from '../../client/crypto.js';
import { normalizeHtu } from '../../src/protocol/dpop.js';
import { parseRequest } from '../../src/protocol/wire.js';
import { deriveWith } from '../../src/server/crypto/jobs.js';
import { importServerKeyPair, verifyBinding } from '../../src/server/crypto/primitives.js';
import { HandshakeDeadline } from '../../src/server/handshake/deadline.js';
import { memoryReplayStore } from '../../src/server/dpop/replay-store.js';
import { checkDpopProof, headerCacheForTests, type DpopVerifyOptions } from '../../src/server/dpop/verify.js';
import { holdsCookie } from '../../src/server/initialize.js';
import { namedOrigin, readRequestTarget, targetUrl } from '../../src/server/request-target.js';
import tokenSec from '../../src/index.js';
import builtTokenSec from '../../dist/index.js';
import { hex, listen, protocolVectors, signedHandshake, TOKEN } from '../support/helpers.js';
import { joseProof, proofKey, signedProof } from '../support/proofs.js';

const URL_ = 'https://api.example/resource';
const options = (extra: Partial<DpopVerifyOptions> = {}): DpopVerifyOptions => ({
  algorithms: ['ES256', 'EdDSA', 'Ed25519'],
  maxAge: 60,
  clockSkew: 5,
  replayStore: memoryReplayStore(),
  ...extra,
});
const refusal = (proof: string, opts = options()) => {
  try {
    checkDpopProof(proof, { method: 'GET', url: URL_ }, opts);
    return 'accepted';
  } catch (error) {
    return `${(error as { code?: string }).code}: ${(error as Error).message}`;
  }
};

describe('DPoP header cache', () => {
  beforeEach(() => headerCacheForTests.clear());

  it('every proof of one key shares one cached header, with the same thumbprint, key and claims as the first', async () => {
    for (const alg of ['ES256', 'EdDSA'] as const) {
      headerCacheForTests.clear();
      const key = await proofKey(alg);
      const proofs = await Promise.all([1, 2, 3].map(() => joseProof(key, { htm: 'GET', htu: URL_ })));
      const results = proofs.map((p) => checkDpopProof(p, { method: 'GET', url: URL_ }, options()));
      expect(headerCacheForTests.size()).toBe(1);
      const jkt = await calculateJwkThumbprint(key.jwk);
      expect(results.map((r) => r.jkt)).toEqual([jkt, jkt, jkt]);
      expect(new Set(results.map((r) => r.claims.jti)).size).toBe(3);
      // A proof from the cached key with a bad signature is still refused.
      const [h, c] = proofs[0]!.split('.');
      const [, , s] = proofs[1]!.split('.');
      expect(refusal(`${h}.${c}.${s}`)).toBe('ERR_TOKENSEC_DPOP_INVALID_PROOF: Invalid DPoP proof: the signature does not verify.');
    }
  });

  it('refused headers are never cached and stay refused: private key member, typ, alg, crit', async () => {
    const key = await proofKey('ES256');
    const privateJwk = await exportJWK(key.privateKey);
    const claims = { jti: 'j', htm: 'GET', htu: URL_, iat: Math.floor(Date.now() / 1000) };
    const cases = [
      [{ typ: 'dpop+jwt', alg: 'ES256', jwk: privateJwk }, /jwk must be exactly the public P-256 key/],
      [{ typ: 'jwt', alg: 'ES256', jwk: key.jwk }, /typ must be "dpop\+jwt"/],
      [{ typ: 'dpop+jwt', alg: 'ES384', jwk: key.jwk }, /alg must be one of/],
      [{ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk, crit: ['x'] }, /crit is not supported/],
    ] as const;
    for (const [header, message] of cases) {
      const proof = await signedProof(key, header, claims);
      for (let i = 0; i < 2; i++) expect(refusal(proof)).toMatch(message);
    }
    expect(headerCacheForTests.size()).toBe(0);
  });

  it('the allowlist is checked on every proof: a header cached for an EdDSA verifier is refused by an ES256-only one', async () => {
    const key = await proofKey('EdDSA');
    const proof = await joseProof(key, { htm: 'GET', htu: URL_ });
    expect(refusal(proof)).toBe('accepted');
    expect(headerCacheForTests.size()).toBe(1);
    expect(refusal(await joseProof(key, { htm: 'GET', htu: URL_ }), options({ algorithms: ['ES256'] }))).toBe(
      'ERR_TOKENSEC_DPOP_INVALID_PROOF: Invalid DPoP proof: alg must be one of ES256.',
    );
  });

  it('bounded: at most 1000 headers; an evicted key verifies again in full; a header over 1024 characters is not kept', async () => {
    const key = await proofKey('EdDSA');
    // Each kid makes other header bytes for the same key: 1,100 distinct accepted headers.
    const first = await joseProof(key, { htm: 'GET', htu: URL_ }, { kid: 'k0' });
    expect(refusal(first)).toBe('accepted');
    for (let i = 1; i < 1100; i++) expect(refusal(await joseProof(key, { htm: 'GET', htu: URL_ }, { kid: `k${i}` }))).toBe('accepted');
    expect(headerCacheForTests.size()).toBe(1000);
    expect(refusal(await joseProof(key, { htm: 'GET', htu: URL_ }, { kid: 'k0' }))).toBe('accepted');
    headerCacheForTests.clear();
    const long = await joseProof(key, { htm: 'GET', htu: URL_ }, { kid: 'x'.repeat(1100) });
    expect(refusal(long)).toBe('accepted');
    expect(headerCacheForTests.size()).toBe(0);
  });

  it('a JWK that is no valid key: refused as a bad signature encoding first, else as the jwk (the 3.0 order), never cached', () => {
    const zero = Buffer.alloc(32).toString('base64url'); // (0, 0) is not on P-256
    const header = Buffer.from(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256', x: zero, y: zero } }));
    const claims = Buffer.from(JSON.stringify({ jti: 'j', htm: 'GET', htu: URL_, iat: 1 })).toString('base64url');
    const base = `${header.toString('base64url')}.${claims}`;
    expect(refusal(`${base}.A`)).toMatch(/the signature does not verify/);
    expect(refusal(`${base}.${Buffer.alloc(64).toString('base64url')}`)).toMatch(/the jwk is not a valid public key/);
    expect(headerCacheForTests.size()).toBe(0);
  });

  it('three parts exactly, the signature not empty (as split did)', () => {
    for (const proof of ['a.b', 'a.b.', 'a.b.c.d', 'abc']) expect(refusal(proof)).toMatch(/not a compact JWS of three parts/);
    expect(refusal('..c')).toMatch(/the header is not a base64url JSON object/);
  });
});

describe('the request target, read once; htu without a URL parse', () => {
  it('the bound path and the absolute-form origin', () => {
    expect(readRequestTarget({ url: '/a/b?x=1#f' })).toEqual({ path: '/a/b', absoluteOrigin: undefined });
    expect(readRequestTarget({ originalUrl: '/api/me', url: '/me' })).toEqual({ path: '/api/me', absoluteOrigin: undefined });
    expect(readRequestTarget({ url: 'http://App.Example:8080/token?x' })).toEqual({
      path: '/token',
      absoluteOrigin: 'http://App.Example:8080',
    });
    expect(readRequestTarget({ url: 'http://host' })).toEqual({ path: '/', absoluteOrigin: 'http://host' });
    expect(readRequestTarget({ url: '' })).toEqual({ path: '/', absoluteOrigin: undefined });
    expect(readRequestTarget({})).toEqual({ path: '/', absoluteOrigin: undefined });
  });

  const origins = [
    'https://app.example',
    'https://APP.Example',
    'https://app.example:443',
    'http://app.example:80',
    'http://127.0.0.1:8080',
    'http://[::1]:3000',
    'https://0x7f.1',
    'https://xn--nxasmq6b.example',
    'https://app.example.',
    'https://h:99999',
    'ftp://app.example',
    'https://user@app.example',
    'https://app.example?q',
    'https://bücher.example',
    'http://',
  ];
  const paths = [
    '/',
    '/token',
    '/a/b/c',
    "/a-._~!$&'()*+,;=:@b",
    '//double',
    '/a/./b',
    '/a/../b',
    '/a/.',
    '/a/..',
    '/.a/..b/...',
    '/%7e%41%2f%2e%2E/x',
    '/a%2e%2e/%2e%2e/b',
    '/a b',
    '/é',
    '/a\\b',
    '/a|b{c}`d^e"f<g>',
    '/%zz%4',
    'noslash',
    '*',
  ];
  const alphabet = ['a', 'Z', '0', '-', '.', '_', '~', '/', '%', '2', 'e', 'E', 'f', '\\', ' ', 'é', ':', '@', "'", '|', '"', '[', ']'];
  const random = Array.from({ length: 2000 }, () => {
    const bytes = randomBytes(1 + (randomBytes(1)[0]! % 12));
    return `/${Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('')}`;
  });

  it('targetUrl(origin, path) is exactly normalizeHtu(origin + path), on the fast path and off it', () => {
    for (const origin of origins) {
      for (const path of [...paths, ...random]) expect(targetUrl(origin, path), `${origin} ${path}`).toBe(normalizeHtu(origin + path));
      // Seen before (the origin cache), still the same.
      for (const path of paths) expect(targetUrl(origin, path)).toBe(normalizeHtu(origin + path));
    }
  });

  it('a normalised URL is its own normalisation, so an htu equal to it needs no parse', () => {
    for (const origin of origins) {
      for (const path of [...paths, ...random]) {
        const normal = normalizeHtu(origin + path);
        if (normal !== undefined) expect(normalizeHtu(normal), normal).toBe(normal);
      }
    }
  });

  it('namedOrigin picks the origin a parse of htu names, if listed', () => {
    const listed = ['https://app.example', 'https://app.example:8443', 'http://[::1]:3000'];
    const parsed = (htu: unknown) => {
      try {
        const origin = typeof htu === 'string' ? new URL(htu).origin : undefined;
        return origin !== undefined && listed.includes(origin) ? origin : undefined;
      } catch {
        return undefined;
      }
    };
    for (const htu of [
      'https://app.example/x',
      'https://app.example',
      'https://app.example:8443/x',
      'https://APP.example/x',
      'https://app.example:443/x',
      'https://app.example.evil/x',
      'https://app.example@evil/x',
      'https://app.example\\x',
      'http://[::1]:3000/t',
      'https://other.example/x',
      'not a url',
      42,
      undefined,
    ]) {
      expect(namedOrigin(htu, listed), String(htu)).toBe(parsed(htu));
    }
  });
});

describe('the deadline arms only what waits', () => {
  const response = () => new ServerResponse(new IncomingMessage(new Socket()));

  it('a value: nothing armed; a promise: the disconnect listener until dispose()', async () => {
    const res = response();
    const deadline = new HandshakeDeadline(res, 1000);
    expect(deadline.call(() => 'now')).toBe('now');
    expect(res.listenerCount('close')).toBe(0);
    const waiting = deadline.call(() => Promise.resolve('later'));
    expect(res.listenerCount('close')).toBe(1);
    await expect(waiting).resolves.toBe('later');
    deadline.dispose();
    expect(res.listenerCount('close')).toBe(0);
  });

  it('a disconnect rejects the call waiting, aborts the signal read later, and refuses further calls', async () => {
    const res = response();
    const deadline = new HandshakeDeadline(res, 60_000);
    const waiting = deadline.call(() => new Promise(() => {}));
    res.emit('close');
    await expect(waiting).rejects.toMatchObject({ code: 'ERR_TOKENSEC_ABORTED', status: 499 });
    expect(deadline.signal.aborted).toBe(true);
    expect(deadline.signal.reason).toMatchObject({ code: 'ERR_TOKENSEC_ABORTED' });
    expect(() => deadline.call(() => 'x')).toThrow(expect.objectContaining({ code: 'ERR_TOKENSEC_ABORTED' }));
    deadline.dispose();
  });

  it('a signal read before the time-out aborts with ERR_TOKENSEC_TIMEOUT', async () => {
    const deadline = new HandshakeDeadline(response(), 5);
    const reason = await new Promise((resolve) => {
      deadline.call(({ signal } = deadline) => signal.addEventListener('abort', () => resolve(signal.reason)));
    });
    expect(reason).toMatchObject({ code: 'ERR_TOKENSEC_TIMEOUT', status: 503 });
    deadline.dispose();
  });
});

describe('initialize() sets its cookie only when the browser does not hold it', () => {
  const app = (token: string) => {
    const a = express();
    a.use((req, _res, next) => {
      (req as unknown as { csrfToken: () => string }).csrfToken = () => token;
      next();
    });
    a.use(tokenSec.initialize({ cookie: true }));
    a.get('/', (_req, res) => res.send('page'));
    return a;
  };
  const TOKEN_A = 'a+b/c=d-0123456789abcdef';
  const held = `tokensec=${encodeURIComponent(TOKEN_A)}`;

  it.each([
    ['no cookie', undefined, true],
    ['the same cookie', held, false],
    ['the same cookie among others', `sid=1; ${held}; x=y`, false],
    ['another value (a new token)', 'tokensec=old', true],
    ['the value not URI-encoded', `tokensec=${TOKEN_A}`, true],
    ['two cookies of that name (another path)', `${held}; tokensec=old`, true],
  ])('%s: set %s', async (_, cookie, set) => {
    const req = request(app(TOKEN_A)).get('/');
    const res = await (cookie === undefined ? req : req.set('cookie', cookie)).expect(200);
    const cookies = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
    expect(cookies).toEqual(set ? [`${held}; Path=/; SameSite=Strict`] : []);
  });

  it('holdsCookie reads names exactly', () => {
    expect(holdsCookie('xtokensec=v', 'tokensec', 'v')).toBe(false);
    expect(holdsCookie(' tokensec = v ', 'tokensec', 'v')).toBe(true);
    expect(holdsCookie('tokensec', 'tokensec', 'v')).toBe(false);
  });
});

describe('the secret encoded once', () => {
  it.each(protocolVectors().map((v) => [v.name, v] as const))(
    '%s: as bytes, the same binding and key as a string; the bytes left to the caller',
    (_, v) => {
      const request = parseRequest(v.requestHeader);
      const target = {
        header: v.header,
        method: v.method,
        path: v.path,
        jkt: v.jkt ? new Uint8Array(Buffer.from(v.jkt, 'base64url')) : undefined,
      };
      const bytes = new TextEncoder().encode(v.secret);
      expect(() => verifyBinding(request, bytes, target)).not.toThrow();
      expect(() => verifyBinding(request, v.secret, target)).not.toThrow();
      const input = { algorithm: v.algorithm, publicKey: request.publicKey, target };
      const agreement = () => {
        const pair = importServerKeyPair(v.algorithm, hex(v.serverPrivateKey));
        return { serverPublicKey: pair.publicKey, sharedSecret: pair.deriveSharedSecret(request.publicKey) };
      };
      expect(Buffer.from(deriveWith(agreement(), { ...input, secret: bytes }).key).toString('hex')).toBe(v.aesKey);
      expect(Buffer.from(deriveWith(agreement(), { ...input, secret: v.secret }).key).toString('hex')).toBe(v.aesKey);
      expect(new TextDecoder().decode(bytes)).toBe(v.secret);
    },
  );
});

describe('with workers, the proof signature is verified on a worker: the same answers as inline', () => {
  const SECRET = 'fast-paths-secret-0123456789';
  const make = (workers?: number) =>
    builtTokenSec.handshake({ payload: (_req, _res, { jkt }) => `${TOKEN}.${jkt}`, secret: SECRET, terminate: true, workers });
  const pooled = make(1);
  const inline = make();
  const servers: Awaited<ReturnType<typeof listen>>[] = [];
  afterAll(async () => {
    await pooled.close();
    await Promise.all(servers.map((s) => s.close()));
  });
  const start = async (middleware: ReturnType<typeof make>) => {
    const app = express();
    app.post('/token', middleware);
    app.use(builtTokenSec.errorHandler());
    const server = await listen(app);
    servers.push(server);
    return server.origin;
  };

  it('a valid proof: 200 and the payload; a forged signature, alone or with a wrong htm: the same 401, message and challenge', async () => {
    const origins = [await start(pooled), await start(inline)];
    const answers: unknown[] = [];
    for (const origin of origins) {
      const url = `${origin}/token`;
      const good = await signedHandshake(url, SECRET);
      const ok = await fetch(url, { method: 'POST', headers: good.headers });
      expect(ok.status).toBe(200);
      expect(await openResponse(crypto.subtle, good.keys, SECRET, good.target, ok.headers.get('x-tokensec-handshake') ?? '')).toBe(
        `${TOKEN}.${good.jkt}`,
      );
      const other = await signedHandshake(url, SECRET, { method: 'PUT' });
      const forge = (made: typeof good, from: typeof good) => {
        const [h, c] = made.proof!.split('.');
        return { ...made.headers, dpop: `${h}.${c}.${from.proof!.split('.')[2]}` };
      };
      const again = await signedHandshake(url, SECRET);
      for (const headers of [forge(again, good), forge(other, good)]) {
        const refused = await fetch(url, { method: 'POST', headers });
        answers.push([
          refused.status,
          refused.headers.get('www-authenticate'),
          refused.headers.get('tokensec-error'),
          await refused.json(),
        ]);
      }
    }
    const expected = [
      401,
      'DPoP error="invalid_dpop_proof", error_description="Invalid DPoP proof: the signature does not verify.", algs="ES256"',
      'ERR_TOKENSEC_DPOP_INVALID_PROOF',
      { code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF', message: 'Invalid DPoP proof: the signature does not verify.' },
    ];
    expect(answers).toEqual([expected, expected, expected, expected]);
  });
});

describe('the CSRF token is read from the query only when the query may name it', () => {
  const TOKEN_CSRF = 'csrf-token-0123456789abcdefghij';
  const app = () => {
    const a = express();
    a.use((req, _res, next) => {
      (req as unknown as { csrfToken: () => string }).csrfToken = () => TOKEN_CSRF;
      next();
    });
    a.post('/token', tokenSec.handshake({ payload: TOKEN, terminate: true }));
    a.use(tokenSec.errorHandler());
    return a;
  };

  it.each([
    ['', 200],
    ['?x=1', 200],
    [`?_csrf=${TOKEN_CSRF}`, 200],
    ['?_csrf=other-token-0123456789abcdef', 403],
    ['?%5Fcsrf=other-token-0123456789abcdef', 403],
    ['?%5fcsrf=other-token-0123456789abcdef', 403],
  ])('header token, query %j: %i', async (query, status) => {
    const server = await listen(app());
    try {
      const url = `${server.origin}/token${query}`;
      const made = await signedHandshake(url, TOKEN_CSRF);
      const response = await fetch(url, { method: 'POST', headers: { ...made.headers, 'x-csrf-token': TOKEN_CSRF } });
      expect(response.status).toBe(status);
      if (status === 403) expect(await response.json()).toMatchObject({ code: 'ERR_TOKENSEC_SECRET_MISMATCH' });
    } finally {
      await server.close();
    }
  });
});

describe('a cached header cannot be changed through a result', () => {
  it('the jwk returned is frozen, so a caller cannot alter what the next proof of that key gets', async () => {
    headerCacheForTests.clear();
    const key = await proofKey('ES256');
    const first = checkDpopProof(await joseProof(key, { htm: 'GET', htu: URL_ }), { method: 'GET', url: URL_ }, options());
    expect(Object.isFrozen(first.jwk)).toBe(true);
    expect(() => Object.assign(first.jwk, { x: 'changed' })).toThrow(TypeError);
    const second = checkDpopProof(await joseProof(key, { htm: 'GET', htu: URL_ }), { method: 'GET', url: URL_ }, options());
    expect(second.jwk).toEqual({ kty: 'EC', crv: 'P-256', x: key.jwk.x, y: key.jwk.y });
  });
});
