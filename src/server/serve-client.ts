import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkBoolean, checkInteger, checkOptions, type Middleware } from './options.js';

/**
 * Options of `tokenSec.client()`, which serves the browser bundle.
 *
 * @example
 * ```ts
 * app.get('/tokensec.js', tokenSec.client({ minified: true, maxAge: 86400 }));
 * ```
 */
export interface ServeClientOptions {
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

// The same relative path works from src/server/ (tests) and from dist/server/ (the package).
const BUNDLE_DIR = new URL('../../dist/browser/', import.meta.url);

function loadBundle(minified: boolean): Buffer {
  const file = new URL(minified ? 'tokensec.min.js' : 'tokensec.js', BUNDLE_DIR);
  let code: string;
  try {
    code = readFileSync(file, 'utf8');
  } catch {
    throw new Error(`tokenSec.client(): the browser bundle ${file.pathname} is missing; run "npm run build".`);
  }
  // The source map sits next to the file in dist/, not next to the URL this is served at.
  return Buffer.from(code.replace(/\n\/\/# sourceMappingURL=\S+\s*$/, '\n'));
}

function matchesEtag(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  return ifNoneMatch.split(',').some((tag) => {
    const t = tag.trim();
    return t === '*' || t === etag || t === `W/${etag}`;
  });
}

/**
 * Serves the browser client (the UMD bundle: `window.TokenSec`, or AMD/CommonJS) to GET and
 * HEAD requests at whatever path it is mounted on.
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
  const o = checkOptions('client', options, ['minified', 'crypto', 'maxAge']);
  const minified = checkBoolean('client', 'minified', o.minified, true);
  checkBoolean('client', 'crypto', o.crypto, false);
  const maxAge = checkInteger('client', 'maxAge', o.maxAge, 3600, 0, 31_536_000, 'seconds');
  const body = loadBundle(minified);
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  const cacheControl = `public, max-age=${maxAge}`;

  return function tokenSecClient(req, res, next) {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      next();
      return;
    }
    res.setHeader('ETag', etag);
    res.setHeader('Cache-Control', cacheControl);
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
