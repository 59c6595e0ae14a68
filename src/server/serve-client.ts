import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { csrfCookieNames, DEFAULT_COOKIE } from './initialize.js';
import { checkBoolean, checkInteger, checkOptions, describe, optionError, type Middleware } from './options.js';

/**
 * Options of `tokenSec.client()`, which serves the browser bundle.
 *
 * @example
 * ```ts
 * app.get('/tokensec.js', tokenSec.client({ minified: true, maxAge: 86400 }));
 * app.get('/tokensec-session.js', tokenSec.client({ bundle: 'session' }));
 * ```
 */
export interface ServeClientOptions {
  /**
   * Which browser bundle: `'handshake'` (tokensec.js: `handshake()` and DPoP), `'session'`
   * (tokensec-session.js: also `session()`, the token kept in the page) or `'sealed'`
   * (tokensec-sealed.js: `session()` in a Worker started from the same URL). Default `'handshake'`.
   */
  bundle?: ClientBundle;
  /** Serve the minified bundle. Default true. */
  minified?: boolean;
  /**
   * Accepted for source compatibility with TokenSec 0.x, where it chose a bundle with CryptoJS
   * inside. The current client uses the browser's Web Crypto and has no such variant: ignored.
   */
  crypto?: boolean;
  /** Seconds browsers and caches may reuse the bundle before revalidating (ETag). Default 3600. */
  maxAge?: number;
}

/**
 * The browser bundles `client()` serves.
 *
 * @example
 * ```ts
 * const bundle: ClientBundle = 'session';
 * ```
 */
export type ClientBundle = 'handshake' | 'session' | 'sealed';
const FILES: Record<ClientBundle, string> = { handshake: 'tokensec', session: 'tokensec-session', sealed: 'tokensec-sealed' };

// The same relative path works from src/server/ (tests) and from dist/server/ (the package).
const BUNDLE_DIR = new URL('../../dist/browser/', import.meta.url);

const loaded = new Map<string, Buffer>();

/** The bundle's file, read once, served byte for byte (so its SRI hash is the file's). */
function loadBundle(fn: string, bundle: ClientBundle, minified: boolean): Buffer {
  const file = new URL(`${FILES[bundle]}${minified ? '.min' : ''}.js`, BUNDLE_DIR);
  let body = loaded.get(file.href);
  if (!body) {
    try {
      body = readFileSync(file);
    } catch {
      throw new Error(`tokenSec.${fn}(): the browser bundle ${file.pathname} is missing; run "npm run build".`);
    }
    loaded.set(file.href, body);
  }
  return body;
}

function checkBundle(fn: string, value: unknown): ClientBundle {
  const bundle = value ?? 'handshake';
  if (typeof bundle !== 'string' || !Object.hasOwn(FILES, bundle)) {
    throw optionError(
      fn,
      `option "bundle" must be 'handshake', 'session' or 'sealed', got ${typeof bundle === 'string' ? `'${bundle}'` : describe(bundle)}.`,
    );
  }
  return bundle as ClientBundle;
}

/**
 * Options of `tokenSec.integrity()`: which bundle, as `client()` takes them.
 *
 * @example
 * ```ts
 * const sri = tokenSec.integrity({ bundle: 'session' });
 * ```
 */
export interface IntegrityOptions {
  /** Default `'handshake'`. */
  bundle?: ClientBundle;
  /** Default true. */
  minified?: boolean;
}

/**
 * The Subresource Integrity value (sha384) of the bundle `client()` serves with the same options,
 * for `<script src integrity crossorigin>`: the browser then runs the script only if its bytes are
 * exactly these.
 *
 * @example
 * ```ts
 * const sri = tokenSec.integrity();
 * res.send(`<script src="/tokensec.js" integrity="${sri}" crossorigin="anonymous"></script>`);
 * ```
 */
export function integrity(options: IntegrityOptions = {}): string {
  const o = checkOptions('integrity', options, ['bundle', 'minified']);
  const body = loadBundle('integrity', checkBundle('integrity', o.bundle), checkBoolean('integrity', 'minified', o.minified, true));
  return `sha384-${createHash('sha384').update(body).digest('base64')}`;
}

function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t === etag || t === `W/${etag}`;
  });
}

/**
 * Keeps per-visitor cookies off a script that shared caches may store. The CSRF cookie (the one
 * initialize() set, and any cookie named `tokensec`) is dropped from the response; any other
 * Set-Cookie that remains (a session's, which express-session adds as the headers are written)
 * turns `Cache-Control` to `private`. Every later change to Set-Cookie on this response goes
 * through the same check, so the mount order does not matter.
 */
function guardCookies(res: ServerResponse, publicCache: string, privateCache: string): void {
  const setHeader = res.setHeader;
  const appendHeader = res.appendHeader;
  const dropped = new Set([DEFAULT_COOKIE, csrfCookieNames.get(res)]);
  const cookieName = (cookie: string) => cookie.slice(0, cookie.indexOf('=')).trim();
  const filter = (value: number | string | readonly string[]) =>
    (Array.isArray(value) ? value : [String(value)]).filter((cookie: string) => !dropped.has(cookieName(cookie)));
  res.setHeader = function (name: string, value: number | string | readonly string[]) {
    if (name.toLowerCase() !== 'set-cookie') return setHeader.call(this, name, value);
    const kept = filter(value);
    setHeader.call(this, 'Cache-Control', kept.length ? privateCache : publicCache);
    if (kept.length) return setHeader.call(this, name, kept);
    this.removeHeader(name);
    return this;
  };
  res.appendHeader = function (name: string, value: string | readonly string[]) {
    if (name.toLowerCase() !== 'set-cookie') return appendHeader.call(this, name, value);
    const current = this.getHeader(name);
    const list = current === undefined ? [] : Array.isArray(current) ? current : [String(current)];
    return this.setHeader(name, [...list, ...(Array.isArray(value) ? value : [String(value)])]);
  };
  const current = res.getHeader('set-cookie');
  if (current !== undefined) res.setHeader('Set-Cookie', current);
}

/**
 * Serves a browser bundle (a classic script: `window.TokenSec`, or AMD/CommonJS) to GET and
 * HEAD requests at whatever path it is mounted on. Mount the sealed bundle at the URL the page
 * loads it from: its worker starts from that same URL.
 *
 * @example
 * ```ts
 * app.get('/tokensec.js', tokenSec.client());
 * // in the page: <script src="/tokensec.js"></script>
 * ```
 */
export function client<Req extends IncomingMessage = IncomingMessage, Res extends ServerResponse = ServerResponse>(
  options: ServeClientOptions = {},
): Middleware<Req, Res> {
  const o = checkOptions('client', options, ['bundle', 'minified', 'crypto', 'maxAge']);
  const bundle = checkBundle('client', o.bundle);
  const minified = checkBoolean('client', 'minified', o.minified, true);
  checkBoolean('client', 'crypto', o.crypto, false);
  const maxAge = checkInteger('client', 'maxAge', o.maxAge, 3600, 0, 31_536_000, 'seconds');
  const body = loadBundle('client', bundle, minified);
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  const cacheControl = `public, max-age=${maxAge}`;
  const privateCacheControl = `private, max-age=${maxAge}`;

  return function tokenSecClient(req, res, next) {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      next();
      return;
    }
    res.setHeader('ETag', etag);
    res.setHeader('Cache-Control', cacheControl);
    guardCookies(res, cacheControl, privateCacheControl);
    if (matchesEtag(req.headers['if-none-match'], etag)) {
      res.statusCode = 304;
      res.end();
      return;
    }
    res.statusCode = 200;
    res.setHeader('Content-Type', 'text/javascript; charset=utf-8');
    res.setHeader('Content-Length', body.length);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}
