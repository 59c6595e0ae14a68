import type { ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { CSRF_COOKIE } from '../protocol/wire.js';
import { checkOptions, describe, optionError, type Middleware } from './options.js';
import type { RequestLike } from './express-request.js';

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

/**
 * Hands the CSRF token to the browser client: when a CSRF middleware has put `req.csrfToken`
 * on the request and `cookie` is set, sets a script-readable cookie holding `req.csrfToken()`.
 * Otherwise it only calls `next()`.
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
    if (settings && typeof req.csrfToken === 'function') {
      const value = encodeURIComponent(req.csrfToken());
      // The browser already holds this very cookie (a session cookie, no expiry to refresh): the
      // 256-character header would change nothing. A missing or changed one, or one beside another
      // value of the same name, is set. The Cookie header carries no attributes: changed cookie
      // options reach a browser with its next token.
      if (!holdsCookie(req.headers.cookie, settings.name, value)) {
        const secure = settings.secure ?? req.secure ?? (req.socket as TLSSocket).encrypted === true;
        csrfCookieNames.set(res, settings.name);
        appendSetCookie(res, `${settings.name}=${value}${settings.fixed}${secure ? '; Secure' : ''}`);
      }
    }
    next();
  };
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
