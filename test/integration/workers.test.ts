/**
 * `handshake({ workers })`, on the built package (the worker script is dist/server/crypto/worker.js):
 * the vectors' bytes through the worker path and the inline path alike, for both jobs, real handshakes with
 * DPoP through an Express app, refused keys, option checks, and a clean shutdown that leaves no
 * thread behind (counted in /proc/self/task).
 */
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { promisify } from 'node:util';
import express from 'express';
import { afterAll, describe, expect, it } from 'vitest';
import { openResponse } from '../../client/crypto.js';
import tokenSec from '../../dist/index.js';
import type { CryptoJob } from '../../src/server/crypto/jobs.js';
import type { ResponseKey } from '../../src/server/crypto/primitives.js';

// The built modules (dist/ ships bundled declarations for the public API only), typed as their sources.
const built = <T>(path: string): Promise<T> => import(new URL(`../../dist/${path}`, import.meta.url).href) as Promise<T>;
const { createCryptoPool } = await built<typeof import('../../src/server/crypto/pool.js')>('server/crypto/pool.js');
const { deriveResponseKey, encryptPayload, importServerKeyPair } =
  await built<typeof import('../../src/server/crypto/primitives.js')>('server/crypto/primitives.js');
const { formatRequest, joinResponse, parseRequest, splitResponse } =
  await built<typeof import('../../src/protocol/wire.js')>('protocol/wire.js');
const { bindingInput } = await built<typeof import('../../src/protocol/context.js')>('protocol/context.js');
import { hex, listen, protocolVectors, signedHandshake, SMALL_ORDER_POINTS, TOKEN } from '../support/helpers.js';

const threads = () => readdirSync('/proc/self/task').length;
const SECRET = 'workers-secret-0123456789';
const h = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

/** A pool whose worker takes the vectors' fixed server key and IV (test/support/vector-worker.mjs). */
const vectorPool = () => createCryptoPool(1, new URL('../support/vector-worker.mjs', import.meta.url));
/** A job for that worker: a production job's kind and input, plus the vector's key and IV. */
type VectorJob = CryptoJob & { vector: { serverPrivateKey: Uint8Array; iv: Uint8Array } };

describe('the vectors of docs/PROTOCOL.md through both paths', () => {
  const pool = vectorPool();
  afterAll(() => pool.close());

  it.each(protocolVectors().map((v) => [v.name, v] as const))('%s', async (_, v) => {
    const request = parseRequest(v.requestHeader);
    const input = { algorithm: v.algorithm, publicKey: request.publicKey };
    const vector = { serverPrivateKey: hex(v.serverPrivateKey), iv: hex(v.iv) };
    const target = {
      header: v.header,
      method: v.method,
      path: v.path,
      jkt: v.jkt ? new Uint8Array(Buffer.from(v.jkt, 'base64url')) : undefined,
    };
    const response = joinResponse(v.responseHeader, v.responseBody ?? '');
    const pair = importServerKeyPair(v.algorithm, vector.serverPrivateKey);
    const agreement = { serverPublicKey: pair.publicKey, sharedSecret: pair.deriveSharedSecret(request.publicKey) };
    expect(h(agreement.serverPublicKey)).toBe(v.serverPublicKey);
    expect(h(agreement.sharedSecret)).toBe(v.sharedSecret);
    // The key first, the payload later (a payload function's path): here, and on the worker.
    const deriveInput = { ...input, secret: v.secret, target };
    const onWorker = await pool.run({ kind: 'derive', input: deriveInput, vector } as VectorJob);
    const inline = deriveResponseKey({ request: input, ...agreement, secret: v.secret, target });
    for (const key of [inline, onWorker as ResponseKey]) {
      expect(h(key.serverPublicKey)).toBe(v.serverPublicKey);
      expect(h(key.key)).toBe(v.aesKey);
      expect(h(key.context)).toBe(v.keyContext);
      const sealed = encryptPayload(key, v.payload, vector.iv);
      expect(sealed).toBe(response);
      expect(h(key.key)).toBe('00'.repeat(32)); // wiped once used
      if (v.responseBody) expect(splitResponse(sealed)).toEqual({ header: v.responseHeader, body: v.responseBody });
    }
    // All of it as one job (a string payload's path), on the worker.
    const sealInput = { ...deriveInput, payload: v.payload };
    expect(await pool.run({ kind: 'seal', input: sealInput, vector } as VectorJob)).toBe(response);
  });
});

describe('batching', () => {
  it('a job goes at once to an idle worker; under load, jobs go in batches of at most 8, every one answered', async () => {
    const pool = vectorPool();
    const sent: number[] = [];
    // Counts the jobs in each message the pool sends, and sends it on.
    const original = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function (this: Worker, jobs: unknown) {
      sent.push((jobs as unknown[]).length);
      original.call(this, jobs);
    };
    try {
      const [v] = protocolVectors();
      const request = parseRequest(v!.requestHeader);
      const target = { header: v!.header, method: v!.method, path: v!.path, jkt: new Uint8Array(Buffer.from(v!.jkt!, 'base64url')) };
      const input = { algorithm: v!.algorithm, publicKey: request.publicKey, secret: v!.secret, target };
      const vector = { serverPrivateKey: hex(v!.serverPrivateKey), iv: hex(v!.iv) };
      const keys = (await Promise.all(
        Array.from({ length: 20 }, () => pool.run({ kind: 'derive', input, vector } as VectorJob)),
      )) as ResponseKey[];
      expect(keys.map((key) => h(key.key))).toEqual(keys.map(() => v!.aesKey));
      expect(sent[0]).toBe(1);
      expect(Math.max(...sent)).toBe(8);
      expect(sent.reduce((a, b) => a + b, 0)).toBe(20);
    } finally {
      Worker.prototype.postMessage = original;
      await pool.close();
    }
  });
});

describe('an Express app with handshake({ workers: 2 }) and handshake({ workers: 1 })', () => {
  afterAll(() => {
    delete process.env.TOKENSEC_NONCE_KEY;
  });
  let before: number;
  let middleware: ReturnType<typeof tokenSec.handshake>;
  let fixed: ReturnType<typeof tokenSec.handshake>;
  let server: Awaited<ReturnType<typeof listen>>;

  it('starts three threads', async () => {
    // The app is dist's, the test's proofs src's: one nonce key for both, as for two processes.
    process.env.TOKENSEC_NONCE_KEY = 'a nonce key the app and the test share, 32+ bytes';
    before = threads();
    // A payload function: the key agreement runs on a worker, the seal here.
    middleware = tokenSec.handshake({ payload: (_req, _res, { jkt }) => `${TOKEN}.${jkt}`, secret: SECRET, terminate: true, workers: 2 });
    // A string payload: agreement and seal run as one job on the worker.
    fixed = tokenSec.handshake({ payload: TOKEN, secret: SECRET, terminate: true, workers: 1 });
    const app = express();
    app.post('/token', middleware);
    app.post('/fixed', fixed);
    app.use(tokenSec.errorHandler());
    server = await listen(app);
    await expect.poll(threads).toBe(before + 3);
  });

  it.each([
    ['x25519', '/token'],
    ['p256', '/token'],
    ['x25519', '/fixed'],
    ['p256', '/fixed'],
  ] as const)('%s %s: 40 concurrent handshakes with DPoP each decrypt to their payload', async (algorithm, path) => {
    const url = `${server.origin}${path}`;
    const made = await Promise.all(Array.from({ length: 40 }, () => signedHandshake(url, SECRET, { algorithm })));
    const answers = await Promise.all(made.map(({ headers }) => fetch(url, { method: 'POST', headers })));
    expect(answers.map((r) => r.status)).toEqual(made.map(() => 200));
    const payloads = await Promise.all(
      answers.map((r, i) =>
        openResponse(crypto.subtle, made[i]!.keys, SECRET, made[i]!.target, r.headers.get('x-tokensec-handshake') ?? ''),
      ),
    );
    expect(payloads).toEqual(made.map((m) => (path === '/token' ? `${TOKEN}.${m.jkt}` : TOKEN)));
  });

  it('a small-order X25519 key is refused on the worker: 400 ERR_TOKENSEC_INVALID_PUBLIC_KEY', async () => {
    const point = hex(SMALL_ORDER_POINTS[1]!);
    const binding = createHmac('sha256', SECRET)
      .update(bindingInput('x25519', point, { header: 'x-tokensec-handshake', method: 'POST', path: '/token' }))
      .digest();
    const response = await fetch(`${server.origin}/token`, {
      method: 'POST',
      headers: { 'x-tokensec-handshake': formatRequest('x25519', point, binding) },
    });
    // This app requires DPoP: without a proof the refusal is the proof's. With a proof of our own:
    expect(response.status).toBe(401);
    const proofApp = express();
    const noProof = tokenSec.handshake({ payload: TOKEN, secret: SECRET, terminate: true, workers: 1, dpop: { required: false } });
    proofApp.post('/token', noProof);
    proofApp.use(tokenSec.errorHandler());
    const other = await listen(proofApp);
    try {
      const refused = await fetch(`${other.origin}/token`, {
        method: 'POST',
        headers: { 'x-tokensec-handshake': formatRequest('x25519', point, binding) },
      });
      expect(refused.status).toBe(400);
      expect(await refused.json()).toMatchObject({ code: 'ERR_TOKENSEC_INVALID_PUBLIC_KEY' });
    } finally {
      await noProof.close();
      await other.close();
    }
  });

  it('close() lets the threads go; later handshakes agree inline and still answer', async () => {
    await middleware.close();
    await fixed.close();
    await expect.poll(threads).toBe(before);
    const url = `${server.origin}/token`;
    const { headers, keys, target, jkt } = await signedHandshake(url, SECRET);
    const response = await fetch(url, { method: 'POST', headers });
    expect(response.status).toBe(200);
    expect(await openResponse(crypto.subtle, keys, SECRET, target, response.headers.get('x-tokensec-handshake') ?? '')).toBe(
      `${TOKEN}.${jkt}`,
    );
    await server.close();
  });
});

describe('options and lifecycle', () => {
  it.each([-1, 1.5, 65, '2'])('workers: %j → TypeError at startup, and no thread started', (workers) => {
    const before = threads();
    expect(() => tokenSec.handshake({ payload: 't', workers: workers as number })).toThrow(
      /"workers" must be a whole number of threads from 0 to 64/,
    );
    expect(threads()).toBe(before);
  });

  it('another bad option → TypeError, and the workers asked for are never started', () => {
    const before = threads();
    expect(() => tokenSec.handshake({ payload: 't', workers: 2, timeout: 0 })).toThrow(TypeError);
    expect(threads()).toBe(before);
  });

  it('a process that never calls close() still exits: idle workers do not hold it', async () => {
    const script = `import tokenSec from './dist/index.js'; tokenSec.handshake({ payload: 't', secret: '${SECRET}', workers: 2 }); console.log('started');`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
      cwd: new URL('../..', import.meta.url),
      timeout: 10_000,
    });
    expect(stdout.trim()).toBe('started');
  });
});
