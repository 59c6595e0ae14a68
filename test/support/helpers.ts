import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import cookieParser from 'cookie-parser';
import csurf from 'csurf';
import express, { type ErrorRequestHandler, type Express } from 'express';
import tokenSec, { type ServerHandshakeOptions } from '../../src/index.js';
import { deriveResponseKey, encryptPayload, type KeyInput } from '../../src/server/crypto/primitives.js';

export interface Vector {
  name: string;
  algorithm: 'x25519' | 'p256';
  clientPrivateKey: string;
  clientPublicKey: string;
  serverPrivateKey: string;
  serverPublicKey: string;
  secret: string;
  header: string;
  method: string;
  path: string;
  iv: string;
  payload: string;
  bindingInput: string;
  binding: string;
  sharedSecret: string;
  keyContext: string;
  aesKey: string;
  requestHeader: string;
  responseHeader: string;
  /** Body form (docs/PROTOCOL.md, "Response"): the ciphertext sent as the response body. */
  responseBody?: string;
  /** Present when the handshake carries a DPoP proof. */
  dpop?: { htu: string; jti: string; iat: number };
  dpopJwk?: { kty: 'EC'; crv: 'P-256'; x: string; y: string };
  jkt?: string;
  tsh?: string;
  dpopProof?: string;
}

/** The vectors exactly as docs/PROTOCOL.md publishes them. */
export function protocolVectors(): Vector[] {
  const doc = readFileSync(new URL('../../docs/PROTOCOL.md', import.meta.url), 'utf8');
  const block = defined(doc.split('<!-- vectors: the test suite parses the JSON block below -->')[1], 'the vectors block of PROTOCOL.md');
  const start = block.indexOf('```json') + 7;
  return JSON.parse(block.slice(start, block.indexOf('\n```', start)));
}

/** The value, or a thrown Error naming what is missing: for test data that must be there. */
export function defined<T>(value: T | null | undefined, what: string): T {
  if (value === undefined || value === null) throw new Error(`test data missing: ${what}`);
  return value;
}

export const hex = (text: string) => new Uint8Array(Buffer.from(text, 'hex'));

/**
 * X25519 points of order 1, 2, 4 and 8 and their non-canonical twins: each makes the shared
 * secret all zeros, which would make the key a function of public values only.
 */
export const SMALL_ORDER_POINTS = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
];

export const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.' + 'eyJzdWIiOiJ1c2VyLTQyIiwiZXhwIjoxOTAwMDAwMDAwfQ'.repeat(16) + '.c2ln';

export interface ErrorRecord {
  status?: number;
  code?: string;
  message: string;
}

/**
 * An app wired the way the README tells users to: cookie-parser, csurf (cookie mode),
 * initialize on the page, handshake on POST /token, the client bundle at /tokensec.js.
 * Errors are rendered as JSON { code, message } with their status, and recorded.
 */
export function csrfApp(
  handshakeOptions: Partial<ServerHandshakeOptions> = {},
  page = '<!doctype html><title>t</title>',
  moreRoutes?: (app: Express) => void,
): { app: Express; errors: ErrorRecord[] } {
  const app = express();
  const errors: ErrorRecord[] = [];
  app.use(cookieParser());
  app.use(csurf({ cookie: { sameSite: 'strict' } }));
  app.use(tokenSec.initialize({ cookie: true }));
  app.get('/', (_req, res) => {
    res.type('html').send(page);
  });
  app.get('/tokensec.js', tokenSec.client());
  app.post('/token', tokenSec.handshake({ payload: TOKEN, terminate: true, ...handshakeOptions }));
  moreRoutes?.(app);
  const onError: ErrorRequestHandler = (err, _req, res, _next) => {
    errors.push({ status: err.status, code: err.code, message: String(err.message) });
    res.status(err.status ?? 500).json({ code: err.code, message: err.expose ? err.message : 'error' });
  };
  app.use(onError);
  return { app, errors };
}

/**
 * A complete handshake request as the browser client makes it, DPoP proof included (unless
 * `dpop: false`) with the current default nonce (unless `nonce` is given), for tests that send it
 * by hand: the handshake header, the proof, and what the response is bound to.
 */
export async function signedHandshake(
  url: string,
  secret: string,
  options: { method?: string; algorithm?: 'x25519' | 'p256'; dpop?: boolean; tsb?: boolean; nonce?: string } = {},
) {
  const { handshakeHeader } = await import('./handshake.js');
  const { createDpopProof, getDpopKey, madeHere } = await import('../../client/dpop.js');
  const method = options.method ?? 'POST';
  const key = options.dpop === false ? undefined : await getDpopKey();
  const jkt = key && new Uint8Array(Buffer.from(key.thumbprint, 'base64url'));
  const { keys, target, value } = await handshakeHeader(secret, { method, path: new URL(url).pathname, algorithm: options.algorithm, jkt });
  const headers: Record<string, string> = { 'x-tokensec-handshake': value };
  if (!key) return { keys, target, value, proof: undefined, jkt: undefined, headers };
  const tsh = createHash('sha256').update(value).digest('base64url');
  // `tsb` as the client sends it: for a key made in this run (in Node the client's key lives in memory).
  const tsb = options.tsb ?? madeHere.has(key.thumbprint);
  const claims = (tsb ? { tsh, tsb } : { tsh }) as Record<string, string>; // the client types extra claims as strings
  // The current default nonce, as a client that has had an answer carries it, unless the test names one.
  const { currentNonce } = await import('./proofs.js');
  const nonce = 'nonce' in options ? options.nonce : currentNonce();
  const proof = await createDpopProof({ method, url, key, claims, nonce });
  headers.dpop = proof;
  return { keys, target, value, proof, jkt: key.thumbprint, headers };
}

export async function listen(app: Express): Promise<{ origin: string; close: () => Promise<void> }> {
  const server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Loads the page like a browser would and returns the cookies it set: the csurf secret and the tokensec cookie. */
export async function visit(origin: string): Promise<{ cookie: string; csrfToken: string }> {
  const response = await fetch(`${origin}/`);
  const cookies = response.headers.getSetCookie().map((c) => c.split(';', 1).join(''));
  const tokensec = cookies.find((c) => c.startsWith('tokensec='));
  if (!tokensec) throw new Error('no tokensec cookie');
  return { cookie: cookies.join('; '), csrfToken: decodeURIComponent(tokensec.slice('tokensec='.length)) };
}

/**
 * The server's seal, as the handshake makes it: deriveResponseKey, then encryptPayload (which wipes
 * the key). `iv`: fixed only by the vectors.
 */
export const sealPayload = (input: KeyInput & { payload: string; iv?: Uint8Array }): string =>
  encryptPayload(deriveResponseKey(input), input.payload, input.iv);
