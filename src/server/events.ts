/**
 * One event per handshake, for logs and metrics: to the `onEvent` option and to the
 * node:diagnostics_channel channel `tokensec:handshake`. An event carries what happened, never
 * what was protected: no payload, secret, header value, proof or key.
 */
import { channel } from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import { TokenSecError, type TokenSecErrorCode } from '../protocol/errors.js';
import type { Algorithm } from '../protocol/wire.js';

/**
 * What a handshake came to.
 *
 * @example
 * ```ts
 * tokenSec.handshake({ payload, onEvent: (e) => logger.info({ ...e }, `tokensec handshake ${e.outcome}`) });
 * ```
 */
export interface HandshakeEvent {
  /** `answered`: the sealed payload was sent (or, for an empty payload, nothing was due); `refused`: a 4xx; `failed`: a 5xx. */
  outcome: 'answered' | 'refused' | 'failed';
  /** The HTTP status the handshake ends in (200 when answered). */
  status: number;
  /** The TokenSecError code, when refused or failed (undefined for an error that is not TokenSec's). */
  code?: TokenSecErrorCode;
  /** The key agreement the browser asked for, once its header was read. */
  algorithm?: Algorithm;
  /** The verified DPoP key's thumbprint (a hash of a public key), when the proof was checked. */
  jkt?: string;
  /** Milliseconds from the header's arrival to the outcome. */
  durationMs: number;
  /** `req.id` (set by pino-http, express-request-id and the like) or the `x-request-id` header. */
  requestId?: string;
}

/** The diagnostics channel every handshake event is published on, whether or not `onEvent` is set. */
export const handshakeChannel = channel('tokensec:handshake');

/** A request id fit for a log line: a string or number of at most 128 printable ASCII characters. */
export function requestIdOf(req: IncomingMessage & { id?: unknown }): string | undefined {
  const id = req.id ?? req.headers['x-request-id'];
  const text = typeof id === 'number' ? String(id) : id;
  return typeof text === 'string' && /^[\x21-\x7e]{1,128}$/.test(text) ? text : undefined;
}

/** The event for an error the handshake ended in. */
export function outcomeOf(error: unknown): Pick<HandshakeEvent, 'outcome' | 'status' | 'code'> {
  const status = error instanceof TokenSecError && error.status ? error.status : 500;
  return {
    outcome: status < 500 ? 'refused' : 'failed',
    status,
    code: error instanceof TokenSecError ? error.code : undefined,
  };
}

/** Sends the event to the listener and the channel. A listener that throws cannot break the response. */
export function emitHandshakeEvent(listener: ((event: HandshakeEvent) => void) | undefined, event: HandshakeEvent): void {
  if (handshakeChannel.hasSubscribers) handshakeChannel.publish(event);
  if (!listener) return;
  try {
    listener(event);
  } catch {
    // An observer's bug is not the request's failure.
  }
}

/**
 * What one request through `tokenSec.dpop()` came to.
 *
 * @example
 * ```ts
 * import tokenSec from 'tokensec';
 * const verifyToken = async () => ({ cnf: { jkt: 'a thumbprint' } });
 * tokenSec.dpop({ verifyToken, onEvent: (e) => console.log(`tokensec dpop ${e.outcome} ${e.status} ${e.code ?? ''}`) });
 * ```
 */
export interface DpopEvent {
  /** `accepted`: the route was called; `refused`: a 4xx (bad proof, token, replay, nonce, rate limit); `failed`: a 5xx (a store down or full). */
  outcome: 'accepted' | 'refused' | 'failed';
  /** The HTTP status the request ends in at TokenSec (200 when accepted: the route answers). */
  status: number;
  /** The TokenSecError code, when refused or failed. */
  code?: TokenSecErrorCode;
  /** The proof's algorithm (`ES256`, `EdDSA`), once its header was read. */
  algorithm?: string;
  /** The verified proof key's thumbprint (a hash of a public key), once its signature was checked. */
  jkt?: string;
  /** Milliseconds from the request's arrival at `dpop()` to the outcome. */
  durationMs: number;
  /** `req.id` or the `x-request-id` header, as for handshake events. */
  requestId?: string;
}

/** The diagnostics channel every `dpop()` event is published on, whether or not `onEvent` is set. */
export const dpopChannel = channel('tokensec:dpop');

/** Sends a `dpop()` event to the listener and the channel. A listener that throws cannot break the request. */
export function emitDpopEvent(listener: ((event: DpopEvent) => void) | undefined, event: DpopEvent): void {
  if (dpopChannel.hasSubscribers) dpopChannel.publish(event);
  if (!listener) return;
  try {
    listener(event);
  } catch {
    // An observer's bug is not the request's failure.
  }
}
