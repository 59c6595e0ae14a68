/**
 * `tokenSec.handshake()`: answers a handshake request with the payload encrypted to the key the
 * browser sent. Each request runs one straight pipeline of named steps:
 *
 *   parseHeader → resolveSecret → verifyBinding → agree → resolvePayload → sealPayload → respond
 *
 * (verifyBinding and sealPayload are the node:crypto steps of crypto.ts.)
 *
 * Requests without the handshake header pass straight through. Every failure is a TokenSecError
 * with `status` and a stable `code`, passed to `next(err)`.
 */
import type { ServerResponse } from 'node:http';
import type { RequestTarget } from '../protocol/context.js';
import { TokenSecError } from '../protocol/errors.js';
import { CSRF_HEADER, parseRequest, type HandshakeRequest } from '../protocol/wire.js';
import { nodeBase64url } from './base64url.js';
import { generateServerKeyPair, sealPayload, verifyBinding, type ServerKeyPair } from './crypto.js';
import {
  resolveHandshakeOptions,
  type HandshakeRequestLike,
  type PayloadSource,
  type ResolvedHandshakeOptions,
  type SecretSource,
  type ServerHandshakeOptions,
} from './handshake-options.js';
import { describe, type Middleware } from './options.js';

export type { HandshakeRequestLike, ServerHandshakeOptions } from './handshake-options.js';

// ---- the steps, in the order the pipeline runs them ----

/** Step 1: the handshake header's value parsed, or undefined when the request is not a handshake. */
function parseHeader(req: HandshakeRequestLike, header: string): HandshakeRequest | undefined {
  const value = req.headers[header];
  if (value === undefined) return undefined;
  // Node joins repeated custom headers with ", ", which parseRequest refuses; an array only
  // appears for a handful of well-known names, but keep the type honest.
  return parseRequest(Array.isArray(value) ? value.join(', ') : value, nodeBase64url);
}

/** Step 2: the secret the client must have bound its key with. */
async function resolveSecret<Req extends HandshakeRequestLike>(req: Req, source: SecretSource<Req>): Promise<string> {
  let value: unknown;
  if (source.kind === 'value') {
    value = source.value;
  } else if (source.kind === 'csrf') {
    if (typeof req.csrfToken !== 'function') {
      throw new TokenSecError(
        'ERR_TOKENSEC_NO_CSRF_MIDDLEWARE',
        'tokenSec.handshake() uses the CSRF token as its secret, but no CSRF middleware ran before it (req.csrfToken is missing). ' +
          'Mount csurf, csrf-sync or csrf-csrf before it, or pass a "secret" option.',
        500,
      );
    }
    value = req.headers[CSRF_HEADER];
  } else {
    try {
      value = await source.fn(req);
    } catch (cause) {
      throw new TokenSecError('ERR_TOKENSEC_SECRET_FAILED', 'TokenSec secret function threw or rejected.', 500, { cause });
    }
    if (value !== undefined && value !== null && typeof value !== 'string') {
      throw new TokenSecError('ERR_TOKENSEC_SECRET_FAILED', `TokenSec secret function must return a string, got ${describe(value)}.`, 500);
    }
  }
  if (typeof value !== 'string' || value === '') {
    throw new TokenSecError(
      'ERR_TOKENSEC_NO_SECRET',
      source.kind === 'csrf' ? `TokenSec handshake without a CSRF token in the ${CSRF_HEADER} header.` : 'TokenSec handshake without a secret for this request.',
      403,
    );
  }
  return value;
}

/** Step 4: a fresh server key pair and the ECDH shared secret, before any payload is produced. */
function agree(request: HandshakeRequest): { serverKeyPair: ServerKeyPair; sharedSecret: Uint8Array } {
  const serverKeyPair = generateServerKeyPair(request.algorithm);
  return { serverKeyPair, sharedSecret: serverKeyPair.deriveSharedSecret(request.publicKey) };
}

/** Step 5: the token to deliver; a payload function gets `timeout` milliseconds. */
async function resolvePayload<Req, Res>(req: Req, res: Res, source: PayloadSource<Req, Res>, timeout: number): Promise<string> {
  if (source.kind === 'value') return source.value;
  let value: unknown;
  try {
    value = await withTimeout(Promise.resolve(source.fn(req, res)), timeout);
  } catch (cause) {
    if (cause instanceof TokenSecError) throw cause;
    throw new TokenSecError('ERR_TOKENSEC_PAYLOAD_FAILED', 'TokenSec payload function threw or rejected.', 500, { cause });
  }
  if (typeof value !== 'string') {
    throw new TokenSecError('ERR_TOKENSEC_INVALID_PAYLOAD', `TokenSec payload function must return a string, got ${describe(value)}.`, 500);
  }
  return value;
}

/** Step 7: the answer's headers. Whatever is sent, it must never be stored by a cache. */
function respond(res: ServerResponse, header: string, value: string | undefined): void {
  res.setHeader('Cache-Control', 'no-store');
  appendVary(res, header);
  if (value !== undefined) res.setHeader(header, value);
}

// ---- the pipeline ----

async function runHandshake<Req extends HandshakeRequestLike, Res extends ServerResponse>(
  req: Req,
  res: Res,
  request: HandshakeRequest,
  options: ResolvedHandshakeOptions<Req, Res>,
): Promise<void> {
  const target: RequestTarget = { header: options.header, method: req.method ?? 'GET', path: requestPath(req) };
  const secret = await resolveSecret(req, options.secret);
  verifyBinding(request, secret, target);
  const { serverKeyPair, sharedSecret } = agree(request);
  const payload = await resolvePayload(req, res, options.payload, options.timeout);
  // An empty payload means "nothing to deliver": the answer carries no handshake header.
  const value = payload === '' ? undefined : sealPayload({ request, serverPublicKey: serverKeyPair.publicKey, sharedSecret, secret, target, payload });
  respond(res, options.header, value);
}

/**
 * Answers handshake requests: requests carrying the handshake header get the payload encrypted
 * to the key they sent; other requests pass straight through. Errors go to `next(err)` as
 * TokenSecErrors with `status` and a stable `code`.
 *
 * @example
 * ```ts
 * import express from 'express';
 * import { csrfSync } from 'csrf-sync';
 * import tokenSec from 'tokensec';
 *
 * const { csrfSynchronisedProtection } = csrfSync();
 * app.post('/token', csrfSynchronisedProtection, tokenSec.handshake({
 *   payload: (req) => mintAccessToken(req.session.userId),
 *   terminate: true,
 * }));
 * ```
 */
export function handshake<Req extends HandshakeRequestLike = HandshakeRequestLike, Res extends ServerResponse = ServerResponse>(
  options: ServerHandshakeOptions<Req, Res>,
): Middleware<Req, Res> {
  const resolved = resolveHandshakeOptions(options);

  return function tokenSecHandshake(req, res, next) {
    let request: HandshakeRequest | undefined;
    try {
      request = parseHeader(req, resolved.header);
    } catch (error) {
      next(error);
      return;
    }
    if (!request) {
      next();
      return;
    }
    runHandshake(req, res, request, resolved).then(() => {
      if (resolved.terminate) res.end();
      else next();
    }, next);
  };
}

// ---- helpers ----

/** Path as sent on the request line (Express's originalUrl survives mounting), without query. */
function requestPath(req: HandshakeRequestLike): string {
  const url = req.originalUrl ?? req.url ?? '/';
  const end = url.search(/[?#]/);
  return end === -1 ? url : url.slice(0, end);
}

function appendVary(res: ServerResponse, field: string): void {
  const current = res.getHeader('vary');
  const value = Array.isArray(current) ? current.join(', ') : current === undefined ? '' : String(current);
  const fields = value.split(',').map((f) => f.trim().toLowerCase());
  if (fields.includes('*') || fields.includes(field)) return;
  res.setHeader('Vary', value ? `${value}, ${field}` : field);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new TokenSecError('ERR_TOKENSEC_PAYLOAD_TIMEOUT', `TokenSec payload function did not settle within ${ms} ms.`, 503)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
