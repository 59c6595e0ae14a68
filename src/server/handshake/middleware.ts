/**
 * `tokenSec.handshake()`: answers a handshake request with the payload encrypted to the key the
 * browser sent. Each request runs one straight pipeline of named steps, `handshakeSteps` below,
 * in the order docs/PROTOCOL.md specifies (docs/ARCHITECTURE.md draws it with each step's module).
 *
 * verifyBinding and encryptPayload are node:crypto steps of ../crypto/primitives.ts, deriveKey
 * (key pair, ECDH, HKDF) a job of ../crypto/jobs.ts. With `workers`, deriveKey runs on a worker
 * thread, and so does encryptPayload when the payload is a string option (sealValue); so does the
 * proof's signature check (pooledHandshakeProof), between its header check and its claims check,
 * as inline. Requests without the handshake header pass straight through. Every failure is a
 * TokenSecError with `status` and a stable `code`, passed to `next(err)`.
 */
import { emitHandshakeEvent, handshakeChannel, outcomeOf, requestIdOf, type HandshakeEvent } from '../events.js';
import { isPromiseLike, runSteps } from './steps.js';
import type { ServerResponse } from 'node:http';
import type { RequestTarget } from '../../protocol/context.js';
import { TokenSecError } from '../../protocol/errors.js';
import { CSRF_HEADER, parseRequest, splitResponse, type HandshakeRequest } from '../../protocol/wire.js';
import { nodeBase64url } from '../base64url.js';
import { deriveKey, sealValue, type DeriveKeyInput } from '../crypto/jobs.js';
import type { CryptoPool } from '../crypto/pool.js';
import { encryptPayload, verifyBinding, type ResponseKey } from '../crypto/primitives.js';
import { HandshakeDeadline } from './deadline.js';
import {
  badProofSignature,
  checkSessionKey,
  handshakeProof,
  handshakeProofClaims,
  recordHandshakeProof,
  splitHandshakeProof,
} from '../dpop/handshake-proof.js';
import type { VerifiedProof } from '../dpop/verify.js';
import { utf8 } from '../../protocol/context.js';
import { dbscHandshakeCheck } from '../dbsc/handshake-hook.js';
import { withErrorHeader } from '../error-handler.js';
import {
  type HandshakeContext,
  resolveHandshakeOptions,
  type DefaultHandshakeRequest,
  type HandshakeRequestLike,
  type PayloadSource,
  type ResolvedHandshakeOptions,
  type SecretSource,
  type ServerHandshakeOptions,
} from './options.js';
import { describe, type Middleware } from '../options.js';
import { noStore } from './no-store.js';
import { secretProblem } from './secret.js';
import { readRequestTarget, type RequestTargetParts } from '../request-target.js';

export type { DefaultHandshakeRequest, HandshakeContext, HandshakeRequestLike, ServerHandshakeOptions } from './options.js';

/** RFC 9110 §9.2.1: CSRF middlewares let these through unchecked. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);
/** Each bound field is written with a 2-byte length (docs/PROTOCOL.md, `lp`). */
const MAX_FIELD_BYTES = 0xffff;

// ---- the steps, in the order the pipeline runs them ----

/** handshakes on safe methods are refused unless the app allowed them. */
function checkMethod(method: string, allowSafeMethods: boolean): void {
  if (!allowSafeMethods && SAFE_METHODS.has(method)) {
    const error = new TokenSecError(
      'ERR_TOKENSEC_METHOD_NOT_ALLOWED',
      `TokenSec handshake sent with ${method}: CSRF middlewares do not check ${method} requests, so handshakes are answered on POST (or another unsafe method) only.`,
      405,
    );
    error.headers = { Allow: 'POST' };
    throw error;
  }
}

/** the handshake header's value parsed. A header sent twice reaches us joined by ", " and is malformed. */
function parseHeader(value: string | string[]): HandshakeRequest {
  return parseRequest(Array.isArray(value) ? value.join(', ') : value, nodeBase64url);
}

/** what the binding, key and ciphertext are bound to. */
function requestTarget(parts: RequestTargetParts, header: string, method: string): RequestTarget {
  const path = parts.path;
  if (Buffer.byteLength(path) > MAX_FIELD_BYTES) {
    throw new TokenSecError('ERR_TOKENSEC_PATH_TOO_LONG', `TokenSec handshake path is longer than ${MAX_FIELD_BYTES} bytes.`, 414);
  }
  return { header, method, path };
}

/**
 * Why a secret could not be had, kept on the error for logs. The client sees one status and code
 * (403 ERR_TOKENSEC_SECRET_MISMATCH) for all of them, so probing tells it nothing.
 */
export type SecretRefusal = 'no-secret' | 'ambiguous-csrf-token' | 'weak-csrf-token' | 'binding-mismatch';

/** 403 ERR_TOKENSEC_SECRET_MISMATCH, with why (for logs) in `reason`. */
export class SecretRefusedError extends TokenSecError {
  declare reason: SecretRefusal;

  constructor(reason: SecretRefusal) {
    super('ERR_TOKENSEC_SECRET_MISMATCH', 'TokenSec handshake refused: it was not made with the secret this server expects.', 403);
    this.reason = reason;
  }
}

export const secretRefused = (reason: SecretRefusal): TokenSecError => new SecretRefusedError(reason);

/** Places csurf reads a CSRF token from, in its order; csrf-sync and csrf-csrf read x-csrf-token by default. */
const CSRF_TOKEN_HEADERS = ['csrf-token', 'xsrf-token', CSRF_HEADER, 'x-xsrf-token'];

/**
 * The CSRF token this request carried, which the CSRF middleware mounted before us has
 * validated. Every place a CSRF middleware may have read it from must agree: otherwise the one it
 * validated (say `?_csrf`) could differ from the one we would use (say the header).
 */
function csrfTokenOf(req: HandshakeRequestLike): string {
  if (typeof req.csrfToken !== 'function') {
    throw new TokenSecError(
      'ERR_TOKENSEC_NO_CSRF_MIDDLEWARE',
      'tokenSec.handshake() uses the CSRF token as its secret, but no CSRF middleware ran before it (req.csrfToken is missing). ' +
        'Mount csrf-sync, csrf-csrf or csurf before it, or pass a "secret" option.',
      500,
    );
  }
  const found: unknown[] = [];
  const body = typeof req.body === 'object' && req.body !== null ? (req.body as Record<string, unknown>) : undefined;
  if (body?._csrf !== undefined) found.push(body._csrf);
  // The query is parsed only when it may name _csrf (URLSearchParams measured ~20 µs under load);
  // with a %, it may name it percent-encoded.
  const query = /\?([^#]*)/.exec(req.url ?? '')?.[1];
  if (query !== undefined && (query.includes('_csrf') || query.includes('%'))) found.push(...new URLSearchParams(query).getAll('_csrf'));
  for (const name of CSRF_TOKEN_HEADERS) {
    const value = req.headers[name];
    if (value !== undefined) found.push(value);
  }
  const [token] = found;
  if (token === undefined) throw secretRefused('no-secret');
  if (found.some((value) => value !== token) || typeof token !== 'string') throw secretRefused('ambiguous-csrf-token');
  if (secretProblem(token)) throw secretRefused('weak-csrf-token');
  return token;
}

/** the secret the client must have bound its key with: at once, unless it comes from a function. */
function resolveSecret<Req extends HandshakeRequestLike>(
  req: Req,
  source: SecretSource<Req>,
  deadline: () => HandshakeDeadline,
): string | Promise<string> {
  if (source.kind === 'value') return source.value;
  if (source.kind === 'csrf') return csrfTokenOf(req);
  return secretFromFunction(req, source.fn, deadline);
}

function secretFromFunction<Req extends HandshakeRequestLike>(
  req: Req,
  fn: Extract<SecretSource<Req>, { kind: 'function' }>['fn'],
  deadline: () => HandshakeDeadline,
): string | Promise<string> {
  return callAppFunction(deadline(), (context) => fn(req, context), {}, 'ERR_TOKENSEC_SECRET_FAILED', 'secret', checkSecret);
}

function checkSecret(value: unknown): string {
  if (value === undefined || value === null || value === '') throw secretRefused('no-secret');
  if (typeof value !== 'string') {
    throw new TokenSecError('ERR_TOKENSEC_SECRET_FAILED', `TokenSec secret function must return a string, got ${describe(value)}.`, 500);
  }
  const problem = secretProblem(value);
  if (problem) throw new TokenSecError('ERR_TOKENSEC_SECRET_FAILED', `TokenSec secret function returned a secret that ${problem}.`, 500);
  return value;
}

/**
 * Calls the app's secret or payload function under the handshake's deadline, with a context whose
 * signal (and its timer) is made only if read. A value comes back at once, through `check`; a
 * throw or rejection that is not a TokenSecError becomes `failedCode`, with it as the cause.
 */
function callAppFunction<T>(
  deadline: HandshakeDeadline,
  fn: (context: HandshakeContext) => unknown,
  extra: Pick<HandshakeContext, 'jkt'>,
  failedCode: 'ERR_TOKENSEC_SECRET_FAILED' | 'ERR_TOKENSEC_PAYLOAD_FAILED',
  what: 'secret' | 'payload',
  check: (value: unknown) => T,
): T | Promise<T> {
  const context = Object.defineProperty({ ...extra }, 'signal', { get: () => deadline.signal, enumerable: true }) as HandshakeContext;
  const failed = (cause: unknown) =>
    cause instanceof TokenSecError ? cause : new TokenSecError(failedCode, `TokenSec ${what} function threw or rejected.`, 500, { cause });
  let value: unknown;
  try {
    value = deadline.call(() => fn(context));
  } catch (cause) {
    throw failed(cause);
  }
  if (!isPromiseLike(value)) return check(value);
  return Promise.resolve(value).then(check, (cause: unknown) => {
    throw failed(cause);
  });
}

/** What the key agreement needs from the request, the secret and the target. */
const deriveKeyInput = (request: HandshakeRequest, secret: string | Uint8Array, target: RequestTarget): DeriveKeyInput => ({
  algorithm: request.algorithm,
  publicKey: request.publicKey,
  publicKeyBase64url: request.publicKeyBase64url,
  secret,
  target,
});

/**
 * a fresh server key pair, ECDH and the response key, before any payload is produced: inline, or
 * on a worker. Only the key (single use, wiped once used) comes back, never the shared secret.
 */
function runDeriveKey(
  request: HandshakeRequest,
  secret: string | Uint8Array,
  target: RequestTarget,
  pool: CryptoPool | undefined,
): ResponseKey | Promise<ResponseKey> {
  const input = deriveKeyInput(request, secret, target);
  return pool ? pool.run({ kind: 'derive', input }) : deriveKey(input);
}

/**
 * deriveKey, resolvePayload and encryptPayload at once, for a payload given as a string option:
 * with workers, one job on a worker thread. The order of the steps and the bytes are the same.
 */
function runSealValue(
  request: HandshakeRequest,
  secret: string | Uint8Array,
  target: RequestTarget,
  payload: string,
  pool: CryptoPool | undefined,
): string | Promise<string> {
  const input = { ...deriveKeyInput(request, secret, target), payload };
  return pool ? pool.run({ kind: 'seal', input }) : sealValue(input);
}

/** the token to deliver: at once, unless it comes from a function. */
function resolvePayload<Req, Res>(
  req: Req,
  res: Res,
  source: PayloadSource<Req, Res>,
  deadline: () => HandshakeDeadline,
  jkt: string | undefined,
): string | Promise<string> {
  return source.kind === 'value' ? source.value : payloadFromFunction(req, res, source.fn, deadline, jkt);
}

function payloadFromFunction<Req, Res>(
  req: Req,
  res: Res,
  fn: Extract<PayloadSource<Req, Res>, { kind: 'function' }>['fn'],
  deadline: () => HandshakeDeadline,
  jkt: string | undefined,
): string | Promise<string> {
  return callAppFunction(deadline(), (context) => fn(req, res, context), { jkt }, 'ERR_TOKENSEC_PAYLOAD_FAILED', 'payload', checkPayload);
}

function checkPayload(value: unknown): string {
  if (typeof value !== 'string') {
    throw new TokenSecError('ERR_TOKENSEC_INVALID_PAYLOAD', `TokenSec payload function must return a string, got ${describe(value)}.`, 500);
  }
  return value;
}

/**
 * The answer's headers, and its body when the sealed value is too long for one header (body form,
 * docs/PROTOCOL.md). Whatever is sent, no cache may store it.
 */
function respond(
  res: ServerResponse,
  value: string | undefined,
  method: string,
  { header, headerLimit, terminate }: Pick<ResolvedHandshakeOptions<unknown, unknown>, 'header' | 'headerLimit' | 'terminate'>,
): string | undefined {
  noStore(res, !terminate);
  appendVary(res, header);
  if (value === undefined) return undefined;
  if (value.length <= headerLimit) {
    res.setHeader(header, value);
    return undefined;
  }
  // The body is ours only when we end the response; a HEAD answer has none.
  if (!terminate || method === 'HEAD') {
    throw new TokenSecError(
      'ERR_TOKENSEC_PAYLOAD_TOO_LARGE',
      `TokenSec handshake answer needs a ${value.length}-character header, over headerLimit (${headerLimit}), which is sized for ` +
        "nginx's default proxy_buffer_size (4k): a proxy with smaller buffers answers 502. Set terminate: true to send it in the body, " +
        'or raise proxy_buffer_size (nginx) on every proxy in front and headerLimit with it.',
      500,
    );
  }
  const { header: head, body } = splitResponse(value);
  res.setHeader(header, head);
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Content-Length', body.length);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  return body;
}

// ---- the pipeline ----

/**
 * The pipeline, as steps for runSteps: each `yield` hands over a value, or a promise of one for
 * the steps that wait (an app function, a store); the body for the response comes out.
 */
function* handshakeSteps<Req extends HandshakeRequestLike, Res extends ServerResponse>(
  req: Req,
  res: Res,
  value: string | string[],
  options: ResolvedHandshakeOptions<Req, Res>,
  seen: Pick<HandshakeEvent, 'algorithm' | 'jkt'>,
): Generator<unknown, string | undefined, unknown> {
  const method = (req.method ?? 'GET').toUpperCase();
  checkMethod(method, options.allowSafeMethods);
  const request = parseHeader(value);
  seen.algorithm = request.algorithm;
  // Read once: the bound path, and the origin of the URL the proof's htu names.
  const parts = readRequestTarget(req);
  // No URL is built from a Host that is not host[:port] (400 ERR_TOKENSEC_BAD_HOST).
  options.dpop.url.checkHost?.(req, parts);
  const target = requestTarget(parts, options.header, method);
  const proof = options.pool
    ? ((yield* pooledHandshakeProof(req, String(value), method, options.dpop, parts, options.pool)) as VerifiedProof | undefined)
    : handshakeProof(req, String(value), method, options.dpop, parts);
  seen.jkt = proof?.jkt;
  target.jkt = proof && Buffer.from(proof.jkt, 'base64url');
  // One deadline covers the app's secret and payload functions; made only if one runs.
  let deadline: HandshakeDeadline | undefined;
  const getDeadline = () => (deadline ??= new HandshakeDeadline(res, options.timeout));
  // The secret's UTF-8 bytes, made once for the binding and HKDF, wiped when the handshake ends.
  let secretBytes: Uint8Array | undefined;
  try {
    // DBSC (tokenSec.dbsc()): a device-bound session needs its live bound cookie, before any key is bound.
    yield dbscHandshakeCheck(req);
    const secret = (yield resolveSecret(req, options.secret, getDeadline)) as string;
    secretBytes = utf8(secret);
    try {
      verifyBinding(request, secretBytes, target);
    } catch {
      throw secretRefused('binding-mismatch');
    }
    // The proof id is recorded only for a key the session accepts (a refused key takes no room).
    yield checkSessionKey(req, proof, options.dpop, () => recordHandshakeProof(proof, options.dpop));
    let sealed: string | undefined;
    if (options.payload.kind === 'value' && options.payload.value !== '') {
      sealed = (yield runSealValue(request, options.pool ? secret : secretBytes, target, options.payload.value, options.pool)) as string;
    } else {
      // A worker gets the string (its own copy, encoded and wiped there); inline, the bytes made above.
      const key = (yield runDeriveKey(request, options.pool ? secret : secretBytes, target, options.pool)) as ResponseKey;
      let payload: string;
      try {
        payload = (yield resolvePayload(req, res, options.payload, getDeadline, proof?.jkt)) as string;
      } catch (error) {
        key.key.fill(0);
        throw error;
      }
      // An empty payload means "nothing to deliver": the answer carries no handshake header.
      if (payload === '') key.key.fill(0);
      else sealed = encryptPayload(key, payload);
    }
    const body = respond(res, sealed, method, options);
    return body;
  } finally {
    deadline?.dispose();
    secretBytes?.fill(0);
  }
}

/**
 * handshakeProof with `workers`: the proof's header is checked here (cached per key, verify.ts),
 * its signature on a worker thread, then its claims here. The refusals and their order are
 * handshakeProof's; only the ECDSA/Ed25519 verify (~125-200 µs) leaves the main thread.
 */
function* pooledHandshakeProof<Req extends HandshakeRequestLike>(
  req: Req,
  header: string,
  method: string,
  dpop: ResolvedHandshakeOptions<Req, ServerResponse>['dpop'],
  parts: RequestTargetParts,
  pool: CryptoPool,
): Generator<unknown, VerifiedProof | undefined, unknown> {
  const split = splitHandshakeProof(req, dpop);
  if (!split) return undefined;
  const { alg, jwk, jkt, key } = split.header;
  // A key that did not import is refused here, as handshakeProof refuses it.
  if (key === undefined) return handshakeProof(req, header, method, dpop, parts);
  const input = { alg, jwk, jkt, signingInput: split.signingInput, encodedSignature: split.encodedSignature };
  if (!((yield pool.run({ kind: 'proof', input })) as boolean)) throw badProofSignature(dpop);
  return handshakeProofClaims(req, split, header, method, dpop, parts);
}

/**
 * Answers handshake requests: requests carrying the handshake header get the payload encrypted
 * to the key they sent; other requests pass straight through. Errors go to `next(err)` as
 * TokenSecErrors with `status` and a stable `code`.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import session from 'express-session';
 * import { csrfSync } from 'csrf-sync';
 * import tokenSec from 'tokensec';
 *
 * const { csrfSynchronisedProtection } = csrfSync();
 * app.use(session({ secret: process.env.SESSION_SECRET, resave: false, saveUninitialized: false }));
 * app.post('/token', csrfSynchronisedProtection, tokenSec.handshake({
 *   payload: (req) => mintAccessToken(req.session.userId),
 *   terminate: true,
 * }));
 * ```
 */
export function handshake<Req extends HandshakeRequestLike = DefaultHandshakeRequest, Res extends ServerResponse = ServerResponse>(
  options: ServerHandshakeOptions<Req, Res>,
): HandshakeMiddleware {
  const resolved = resolveHandshakeOptions(options);

  // Any framework's request and response will do; the callbacks see them as the app's types.
  function tokenSecHandshake(incoming: HandshakeRequestLike, outgoing: ServerResponse, next: (err?: unknown) => void): void {
    const req = incoming as Req;
    const res = outgoing as Res;
    const value = req.headers[resolved.header];
    if (value === undefined) {
      next();
      return;
    }
    const started = performance.now();
    // Every answer carries the current nonce, refusals too (whichever error handler sends them): the client keeps the latest.
    const nonce = resolved.dpop.verify.nonce;
    if (nonce) res.setHeader('DPoP-Nonce', nonce.current());
    const seen: Pick<HandshakeEvent, 'algorithm' | 'jkt'> = {};
    const report = (outcome: Pick<HandshakeEvent, 'outcome' | 'status' | 'code'>) => {
      // Built only when someone listens: most apps do not, and it is per request.
      if (!resolved.onEvent && !handshakeChannel.hasSubscribers) return;
      emitHandshakeEvent(resolved.onEvent, {
        ...outcome,
        ...seen,
        durationMs: performance.now() - started,
        requestId: requestIdOf(req),
      });
    };
    runSteps(
      handshakeSteps(req, res, value, resolved, seen),
      (body) => {
        report({ outcome: 'answered', status: 200 });
        if (resolved.terminate) res.end(body);
        else next();
      },
      (error: unknown) => {
        report(outcomeOf(error));
        next(withErrorHeader(error));
      },
    );
  }
  return Object.assign(tokenSecHandshake, { close: () => resolved.pool?.close() ?? Promise.resolve() });
}

/**
 * The handshake middleware, and `close()`: with `workers`, it lets handshakes in flight finish,
 * then stops the worker threads (later handshakes agree inline). Without, it does nothing.
 */
export interface HandshakeMiddleware extends Middleware<HandshakeRequestLike, ServerResponse> {
  /** Lets handshakes in flight finish, then stops the worker threads; resolves when they have stopped. */
  close(): Promise<void>;
}

// ---- helpers ----

function appendVary(res: ServerResponse, field: string): void {
  const current = res.getHeader('vary');
  const value = Array.isArray(current) ? current.join(', ') : current === undefined ? '' : String(current);
  const fields = value.split(',').map((f) => f.trim().toLowerCase());
  if (fields.includes('*') || fields.includes(field)) return;
  res.setHeader('Vary', value ? `${value}, ${field}` : field);
}
