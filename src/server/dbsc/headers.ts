/**
 * The DBSC headers (W3C WebAppSec "Device Bound Session Credentials" draft), as Chromium 156
 * sends and reads them: docs/DBSC.md gives each one byte for byte. Values we read may come bare or
 * as a Structured Field string (RFC 8941 `"…"`); values we write are Structured Fields.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { TokenSecError } from '../../protocol/errors.js';

export const REGISTRATION_HEADER = 'Secure-Session-Registration';
export const CHALLENGE_HEADER = 'Secure-Session-Challenge';
/** Request headers, lower-case as node:http gives them. */
export const RESPONSE_HEADER = 'secure-session-response';
export const SESSION_ID_HEADER = 'sec-secure-session-id';

/** Longest value read from a DBSC request header: an RS256 proof with a 4096-bit key fits. */
const MAX_VALUE_LENGTH = 8192;
/** What our own values (challenges, session ids) and JWS compact serializations are made of. */
const TOKEN_CHARS = /^[A-Za-z0-9_.~-]+$/;

/** An RFC 8941 sf-string of printable ASCII, quoted and escaped. */
export function sfString(value: string): string {
  if (!/^[\x20-\x7e]*$/.test(value)) throw new TypeError('a Structured Field string holds printable ASCII only');
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * A DBSC request header's one value, bare (what Chromium 156 sends) or quoted (the draft's
 * sf-string); undefined when absent, empty or malformed. A header sent twice is malformed.
 */
export function readTokenHeader(req: IncomingMessage, name: string): string | undefined {
  const raw = req.headers[name];
  if (typeof raw !== 'string' || raw.length > MAX_VALUE_LENGTH) return undefined;
  let value = raw.trim();
  if (value.startsWith('"')) {
    if (value.length < 2 || !value.endsWith('"')) return undefined;
    value = value.slice(1, -1);
  }
  return TOKEN_CHARS.test(value) ? value : undefined;
}

/** `Secure-Session-Registration: (ES256 RS256);path="…";challenge="…"[;authorization="…"]` */
export function registrationHeader(algorithms: readonly string[], path: string, challenge: string, authorization?: string): string {
  const auth = authorization === undefined ? '' : `;authorization=${sfString(authorization)}`;
  return `(${algorithms.join(' ')});path=${sfString(path)};challenge=${sfString(challenge)}${auth}`;
}

/** `Secure-Session-Challenge: "<challenge>";id="<session id>"` */
export const challengeHeader = (challenge: string, id: string): string => `${sfString(challenge)};id=${sfString(id)}`;

/** The value of the cookie `name` in the request's Cookie header, or undefined. */
export function readCookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (typeof header !== 'string') return undefined;
  for (const pair of header.split(';')) {
    const at = pair.indexOf('=');
    if (at !== -1 && pair.slice(0, at).trim() === name) return pair.slice(at + 1).trim();
  }
  return undefined;
}

/** Adds a Set-Cookie line, keeping those already set (the session middleware's). */
export function appendSetCookie(res: ServerResponse, line: string): void {
  const current = res.getHeader('set-cookie');
  const lines = current === undefined ? [] : Array.isArray(current) ? current : [String(current)];
  res.setHeader('Set-Cookie', [...lines, line]);
}

/** An error answered with `TokenSec-Error: <code>` (and any other headers given). */
export function dbscError(
  code: Extract<
    TokenSecError['code'],
    | 'ERR_TOKENSEC_DBSC_REQUIRED'
    | 'ERR_TOKENSEC_DBSC_INVALID_PROOF'
    | 'ERR_TOKENSEC_DBSC_STALE_CHALLENGE'
    | 'ERR_TOKENSEC_DBSC_UNKNOWN_SESSION'
    | 'ERR_TOKENSEC_DBSC_ALREADY_REGISTERED'
    | 'ERR_TOKENSEC_METHOD_NOT_ALLOWED'
  >,
  message: string,
  status: number,
  headers: Record<string, string> = {},
): TokenSecError {
  const error = new TokenSecError(code, message, status);
  error.headers = { 'TokenSec-Error': code, ...headers };
  return error;
}
