/**
 * What the DBSC operations share: reading and writing the login's binding through the store
 * (under the store timeout), the bound cookie, and the session instructions the browser keeps.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isValidHost } from '../../protocol/htu.js';
import { badHost } from '../request-target.js';
import { callStore } from '../store.js';
import { appendSetCookie, CHALLENGE_HEADER, challengeHeader, readCookie } from './headers.js';
import { boundCookieLive, boundCookieValue, newChallenge } from './challenges.js';
import type { MaybePromise } from '../options.js';
import type { DbscBinding, ResolvedDbsc } from './options.js';
import type { DbscState } from './session-record.js';

export { isRegistered, type RegisteredBinding } from './session-record.js';

export const loadBinding = <Req>(options: ResolvedDbsc<Req>, req: Req): Promise<DbscBinding | undefined> =>
  callStore(() => options.store.get(req), options.storeTimeout);

/** Each write of the binding, under the store timeout. */
export const storeBinding = <Req>(options: ResolvedDbsc<Req>, write: (state: DbscState<Req>) => MaybePromise<void>): Promise<void> =>
  callStore(() => write(options.store), options.storeTimeout);

/** True when the request carries a live bound cookie of the registered session `id`. */
export const hasLiveCookie = <Req>(options: ResolvedDbsc<Req>, req: IncomingMessage, id: string): boolean =>
  boundCookieLive(options.key, id, readCookie(req, options.cookieName), options.nowSeconds());

/**
 * Without the `origin` option, DBSC builds its URLs from Host: a Host that is not `host[:port]`
 * (`app.example#`) is refused, 400 ERR_TOKENSEC_BAD_HOST, before any registration or refresh reads on.
 */
export function checkDbscHost<Req>(options: ResolvedDbsc<Req>, req: IncomingMessage): void {
  if (options.origins === undefined && !isValidHost(req.headers.host ?? '')) throw badHost();
}

/** The absolute URL of `path` on this request's origin: the configured one it names, or the Host's (https). */
export function urlsFor<Req>(options: ResolvedDbsc<Req>, req: IncomingMessage, path: string): string[] {
  checkDbscHost(options, req);
  return (options.origins ?? [`https://${req.headers.host ?? ''}`]).map((origin) => origin + path);
}

/**
 * The successful answer of registration and refresh: the next bound cookie, a challenge for the
 * next refresh, and the session instructions (JSON) whose cookie attributes equal the Set-Cookie's.
 */
export function answerSession<Req>(options: ResolvedDbsc<Req>, res: ServerResponse, id: string): void {
  const now = options.nowSeconds();
  // The browser keeps the cookie Max-Age seconds from when it gets it, which is after now: the
  // server takes it until the end of this second (rounded up) plus Max-Age, so that it does not
  // refuse a cookie the browser still sends when the answer reaches the browser within this second.
  const expires = Math.ceil(options.nowMs() / 1000) + options.cookieMaxAge;
  const value = boundCookieValue(options.key, id, expires);
  appendSetCookie(res, `${options.cookieName}=${value}; Max-Age=${options.cookieMaxAge}; ${options.cookieAttributes}`);
  res.setHeader(CHALLENGE_HEADER, challengeHeader(newChallenge(options.key, 'refresh', id, now, options.challengeTtl), id));
  const body = JSON.stringify({
    session_identifier: id,
    refresh_url: options.refreshPath,
    scope: { include_site: false },
    credentials: [{ type: 'cookie', name: options.cookieName, attributes: options.cookieAttributes }],
  });
  res.statusCode = 200;
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}
