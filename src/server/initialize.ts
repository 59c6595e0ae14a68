import type { ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { CSRF_COOKIE } from '../protocol/wire.js';
import { checkOptions, describe, optionError, type Middleware } from './options.js';
import type { RequestLike } from './express-request.js';
import { followSessionStore } from './session/state.js';
import { warnOnce } from './warn-once.js';

/**
 * Settings of the script-readable cookie that carries the CSRF token to the browser client.
 *
 * @example
 * ```ts
 * app.use(tokenSec.initialize({ cookie: { name: 'csrf', sameSite: 'lax', secure: true } }));
 * ```
 */
export interface CookieOptions {
  /** Cookie name. Default `tokensec` (the name the browser client reads). */
  name?: string;
  /** Default `/`. */
  path?: string;
  /** Default: none, a host-only cookie (the safest: it reaches only this host). */
  domain?: string;
  /** Default `strict`. `none` requires `secure: true`. */
  sameSite?: 'strict' | 'lax' | 'none';
  /** Default: true when the request arrived over HTTPS (`req.secure` behind Express's trust proxy). */
  secure?: boolean;
  /** Must stay false: the browser client reads this cookie. */
  httpOnly?: false;
}

/**
 * Options of `tokenSec.initialize()`.
 *
 * @example
 * ```ts
 * app.use(csrfProtection, tokenSec.initialize({ cookie: true }));
 * ```
 */
export interface InitializeOptions {
  /** Put the CSRF token in a cookie for the browser client: `true` for the defaults, or an object merged over them. */
  cookie?: boolean | CookieOptions;
}

export const DEFAULT_COOKIE = CSRF_COOKIE;
const COOKIE_OPTIONS = ['name', 'path', 'domain', 'sameSite', 'secure', 'httpOnly'] as const;
// RFC 6265 cookie-name (a token) and the characters allowed in Path and Domain attribute values.
const COOKIE_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const ATTRIBUTE_VALUE = /^[\x21-\x3a\x3c-\x7e]+$/;

function cookieSettings(cookie: unknown) {
  const given = cookie === true ? {} : checkOptions('initialize', cookie, COOKIE_OPTIONS);
  const { name = DEFAULT_COOKIE, path = '/', domain, sameSite = 'strict', secure, httpOnly } = given;
  const fail = (message: string) => optionError('initialize', `cookie option ${message}`);
  if (typeof name !== 'string' || !COOKIE_NAME.test(name)) throw fail('"name" must be a cookie name such as "tokensec".');
  if (typeof path !== 'string' || !path.startsWith('/') || !ATTRIBUTE_VALUE.test(path))
    throw fail('"path" must be a URL path such as "/".');
  if (domain !== undefined && (typeof domain !== 'string' || !ATTRIBUTE_VALUE.test(domain))) throw fail('"domain" must be a host name.');
  if (sameSite !== 'strict' && sameSite !== 'lax' && sameSite !== 'none') throw fail('"sameSite" must be "strict", "lax" or "none".');
  if (secure !== undefined && typeof secure !== 'boolean') throw fail(`"secure" must be true or false, got ${describe(secure)}.`);
  if (sameSite === 'none' && secure !== true) throw fail('"sameSite: none" needs "secure: true" (browsers drop such cookies otherwise).');
  if (httpOnly !== undefined && httpOnly !== false) {
    throw fail(
      '"httpOnly" must be false: the browser client reads this cookie. To keep it HttpOnly, drop "cookie" and pass csrfToken to TokenSec.handshake() yourself.',
    );
  }
  const sameSiteValue = { strict: 'Strict', lax: 'Lax', none: 'None' }[sameSite];
  const fixed = `; Path=${path}${domain ? `; Domain=${domain}` : ''}; SameSite=${sameSiteValue}`;
  return { name, fixed, secure: secure as boolean | undefined };
}

/**
 * The name of the CSRF cookie initialize() set on a response, so that client() can keep it off
 * the cacheable script whatever the mount order.
 */
export const csrfCookieNames = new WeakMap<ServerResponse, string>();

function appendSetCookie(res: ServerResponse, cookie: string): void {
  const current = res.getHeader('set-cookie');
  const list = current === undefined ? [] : Array.isArray(current) ? current : [String(current)];
  res.setHeader('Set-Cookie', [...list, cookie]);
}

/** process.emitWarning's code when initialize() runs with `cookie` but no CSRF middleware ran before it. */
export const NO_CSRF_MIDDLEWARE_WARNING = 'TOKENSEC_NO_CSRF_MIDDLEWARE';
/** process.emitWarning's code when the CSRF middleware cannot make a token because no session middleware ran before it. */
export const NO_SESSION_WARNING = 'TOKENSEC_NO_SESSION';
/** process.emitWarning's code when the CSRF middleware's `req.csrfToken()` threw for another reason. */
export const CSRF_TOKEN_FAILED_WARNING = 'TOKENSEC_CSRF_TOKEN_FAILED';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);
/** What a browser's page load accepts (a navigation, an iframe); never a favicon, script, style or fetch() by default. */
const PAGE_ACCEPT = /(?:^|,)\s*text\/html\s*(?:;|,|$)/i;
const PAGE_TYPE = /^\s*(?:text\/html|application\/xhtml\+xml)\s*(?:;|$)/i;

interface SessionOf {
  session?: unknown;
  sessionID?: unknown;
}

/** The Content-Type a response is about to be sent with: set on it, or given to writeHead as an object. */
function contentType(res: ServerResponse, headers: unknown): string {
  if (typeof headers === 'object' && headers !== null && !Array.isArray(headers)) {
    for (const [name, value] of Object.entries(headers)) if (name.toLowerCase() === 'content-type') return String(value);
  }
  return String(res.getHeader('content-type') ?? '');
}

/**
 * Hands the CSRF token to the browser client: with `cookie` set, puts the token of the request's
 * session (`req.csrfToken()`, from the CSRF middleware mounted before it) in a script-readable
 * cookie, once the route has run and before the answer's headers go out, so that it is the token
 * of the session as the route left it: after a login or logout that regenerates the session, the
 * answer carries the new session's token and the page's next handshake works with no other request.
 *
 * It asks for a token only where the page needs one: a page (an HTML answer, or a request that
 * accepts HTML or says it is a navigation, as a browser's page load does), an
 * answer to a POST (or other unsafe method) that the CSRF middleware let through, and an answer
 * whose route replaced the session. Assets, favicons and API reads pass untouched: it never
 * creates a session for them, so one racing a login cannot replace the logged-in session cookie.
 *
 * Mount it after the session middleware and the CSRF middleware. It warns once per process
 * (process warnings `TOKENSEC_NO_CSRF_MIDDLEWARE`, `TOKENSEC_NO_SESSION`) when it finds neither.
 * It also makes express-session's store delete TokenSec's state of a session it destroys
 * (the DPoP binding): see session/state.ts.
 *
 * @example
 * ```ts
 * import { csrfSync } from 'csrf-sync';
 * import tokenSec from 'tokensec';
 *
 * const { csrfSynchronisedProtection } = csrfSync();
 * app.use(session({ secret: process.env.SESSION_SECRET, resave: false, saveUninitialized: false }));
 * app.use(csrfSynchronisedProtection);
 * app.use(tokenSec.initialize({ cookie: true })); // the page's TokenSec.handshake() reads it
 * ```
 */
export function initialize<Req extends RequestLike = RequestLike, Res extends ServerResponse = ServerResponse>(
  options: InitializeOptions = {},
): Middleware<Req, Res> {
  const { cookie } = checkOptions('initialize', options, ['cookie']);
  if (cookie !== undefined && typeof cookie !== 'boolean' && (typeof cookie !== 'object' || cookie === null)) {
    throw optionError('initialize', `option "cookie" must be true, false or an object of cookie settings, got ${describe(cookie)}.`);
  }
  const settings = cookie ? cookieSettings(cookie) : undefined;

  return function tokenSecInitialize(req, res, next) {
    followSessionStore(req);
    if (settings) {
      csrfCookieNames.set(res, settings.name);
      afterRoute(res, (headers) =>
        handOut(req, res, settings, headers, { session: (req as SessionOf).session, id: (req as SessionOf).sessionID }),
      );
    }
    next();
  };
}

/**
 * Runs `last` once, after the route, before the headers are written: from `res.end` (this
 * wrapper is outside express-session's, which saves the session there, so a token made now is
 * saved with the session), or from `res.writeHead` when the route sends its headers earlier.
 */
function afterRoute(res: ServerResponse, last: (headers: unknown) => void): void {
  let ran = false;
  const run = (headers: unknown) => {
    if (ran) return;
    ran = true;
    if (!res.headersSent) last(headers);
  };
  const { end, writeHead } = res;
  res.end = function (this: ServerResponse, ...args: unknown[]) {
    run(undefined);
    return (end as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as ServerResponse['end'];
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    run(typeof args[1] === 'object' ? args[1] : args[2]);
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as ServerResponse['writeHead'];
}

function handOut(
  req: RequestLike,
  res: ServerResponse,
  settings: ReturnType<typeof cookieSettings>,
  headers: unknown,
  before: { session: unknown; id: unknown },
): void {
  const { session, sessionID } = req as SessionOf;
  const replaced = sessionID !== before.id || session !== before.session;
  const wanted =
    replaced ||
    !SAFE_METHODS.has(req.method ?? 'GET') ||
    req.headers['sec-fetch-mode'] === 'navigate' ||
    PAGE_ACCEPT.test(req.headers.accept ?? '') ||
    PAGE_TYPE.test(contentType(res, headers));
  if (!wanted) return;
  // The route destroyed the session: there is no token to hand out (a logout should regenerate instead).
  if (before.session !== undefined && (session === undefined || session === null)) return;
  if (typeof req.csrfToken !== 'function') {
    warnOnce(
      NO_CSRF_MIDDLEWARE_WARNING,
      "tokenSec.initialize({ cookie }) found no req.csrfToken: no CSRF middleware ran before it, so it sets no CSRF cookie and the page's " +
        'TokenSec.handshake() fails with ERR_TOKENSEC_NO_SECRET. Mount csrf-sync, csrf-csrf or csurf (after the session middleware) before tokenSec.initialize().',
    );
    return;
  }
  let token: string;
  try {
    token = req.csrfToken();
  } catch (error) {
    if (session === undefined) {
      warnOnce(
        NO_SESSION_WARNING,
        'tokenSec.initialize({ cookie }) found no session (req.session): the CSRF middleware could not make a token, so no CSRF cookie is set and ' +
          "the page's TokenSec.handshake() fails with ERR_TOKENSEC_NO_SECRET. Mount express-session before the CSRF middleware and tokenSec.initialize().",
      );
    } else {
      const what =
        error instanceof Error
          ? `${error.name}${(error as { code?: unknown }).code ? ` ${String((error as { code?: unknown }).code)}` : ''}`
          : 'a throw';
      warnOnce(
        CSRF_TOKEN_FAILED_WARNING,
        `tokenSec.initialize({ cookie }): req.csrfToken() failed (${what}), so no CSRF cookie is set. Check the CSRF middleware's setup.`,
      );
    }
    return;
  }
  const value = encodeURIComponent(token);
  // The browser already holds this very cookie (a session cookie, no expiry to refresh): the
  // 256-character header would change nothing. A missing or changed one, or one beside another
  // value of the same name, is set. The Cookie header carries no attributes: changed cookie
  // options reach a browser with its next token.
  if (holdsCookie(req.headers.cookie, settings.name, value)) return;
  const secure = settings.secure ?? req.secure ?? (req.socket as TLSSocket | undefined)?.encrypted === true;
  appendSetCookie(res, `${settings.name}=${value}${settings.fixed}${secure ? '; Secure' : ''}`);
}

/**
 * Whether the request's Cookie header carries `name` with exactly `value`, and no other value under
 * that name (one of another path or domain would leave the client reading either).
 */
export function holdsCookie(header: string | undefined, name: string, value: string): boolean {
  if (header === undefined || !header.includes(value)) return false;
  let found = false;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq === -1 || pair.slice(0, eq).trim() !== name) continue;
    if (pair.slice(eq + 1).trim() !== value) return false;
    found = true;
  }
  return found;
}
