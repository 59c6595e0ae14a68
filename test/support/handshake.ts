/**
 * One harness per kind for the handshake's tests: the server side (an Express app mounting
 * `tokenSec.handshake()` the way the test needs it) and the client side (a request header made by
 * the browser client's own code on Web Crypto, as a page would send it).
 */
import express, { type Express, type RequestHandler } from 'express';
import session from 'express-session';
import { createKeys, requestHeader, type ClientKeys } from '../../client/crypto.js';
import tokenSec, { type ServerHandshakeOptions, type TokenSecError } from '../../src/index.js';
import { TOKEN } from './helpers.js';

export interface HandshakeAppSetup {
  /** The handshake's path, or several paths each with a handshake of its own (default '/token'). */
  path?: string | string[];
  /** How the handshake is mounted: `app.post` (default), `app.put`, `app.head`, `app.all`, or `app.use` (every method reaches it). */
  mount?: 'post' | 'put' | 'head' | 'all' | 'use';
  /** express-session in front of everything (what DPoP session binding uses by default). */
  session?: boolean;
  /** Express's `env` setting ('development' logs errors and puts stacks in bodies). */
  env?: string;
  /** Routes or middlewares of the app, added after express-session and before the handshake. */
  before?: (app: Express) => void;
  /** The handler after the handshake on its route, reached with `terminate: false` or without a handshake header. */
  after?: RequestHandler;
  /** Routes added after the handshake, before the error handler. */
  routes?: (app: Express) => void;
  /**
   * How errors are answered:
   * - 'code' (default): the error's status and JSON `{ code }`;
   * - 'code+headers': the same, with the error's `headers` (WWW-Authenticate, DPoP-Nonce, TokenSec-Error...);
   * - 'errorHandler': `tokenSec.errorHandler()`;
   * - 'express': Express's default final handler.
   */
  errors?: 'code' | 'code+headers' | 'errorHandler' | 'express';
  /** Called with every error before it is answered. */
  onError?: (err: TokenSecError) => void;
}

/**
 * An Express app around `tokenSec.handshake(options)`; the options are passed as they are. Every
 * error that reaches the app's error handling is recorded in `errors`, in order.
 */
export function handshakeApp(
  options: ServerHandshakeOptions<express.Request>,
  setup: HandshakeAppSetup = {},
): { app: Express; errors: TokenSecError[] } {
  const app = express();
  const errors: TokenSecError[] = [];
  if (setup.env) app.set('env', setup.env);
  if (setup.session) app.use(session({ secret: 'session secret for tests', resave: false, saveUninitialized: false }));
  setup.before?.(app);
  for (const path of Array.isArray(setup.path) ? setup.path : [setup.path ?? '/token']) {
    const handlers: RequestHandler[] = [tokenSec.handshake<express.Request>(options)];
    if (setup.after) handlers.push(setup.after);
    if (setup.mount === 'use') app.use(path, ...handlers);
    else app[setup.mount ?? 'post'](path, ...handlers);
  }
  setup.routes?.(app);
  app.use((err: TokenSecError, _req: express.Request, _res: express.Response, next: express.NextFunction) => {
    errors.push(err);
    setup.onError?.(err);
    next(err);
  });
  const render = setup.errors ?? 'code';
  if (render === 'errorHandler') app.use(tokenSec.errorHandler());
  else if (render !== 'express') {
    app.use((err: TokenSecError, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      if (render === 'code+headers') res.set(err.headers ?? {});
      res.status(err.status ?? 500).json({ code: err.code });
    });
  }
  return { app, errors };
}

/** What a handshake header is made for: the request's method and path, and the DPoP key's thumbprint when bound. */
export interface HandshakeHeaderTarget {
  method?: string;
  path?: string;
  algorithm?: 'x25519' | 'p256';
  jkt?: Uint8Array;
}

/**
 * A handshake request header made by the browser client's code (client/crypto.ts) on Web Crypto:
 * fresh ephemeral keys, bound to `secret`, the method (default POST) and the path (default
 * /token). Returns the keys and target too, to open the answer with.
 */
export async function handshakeHeader(
  secret: string,
  { method = 'POST', path = '/token', algorithm, jkt }: HandshakeHeaderTarget = {},
): Promise<{ keys: ClientKeys; target: { header: string; method: string; path: string; jkt?: Uint8Array }; value: string }> {
  const keys = await createKeys(crypto.subtle, algorithm);
  const target = { header: 'x-tokensec-handshake', method, path, ...(jkt ? { jkt } : {}) };
  return { keys, target, value: await requestHeader(crypto.subtle, keys, secret, target) };
}

/** The secret of plainHandshakeApp. */
export const PLAIN_SECRET = 'hardening-secret-0123456789';

/** A handshake header made with PLAIN_SECRET's kind of secret, over X25519. */
export const x25519Header = (secret: string, method = 'POST', path = '/token') =>
  handshakeHeader(secret, { method, path, algorithm: 'x25519' });

/**
 * The handshake the middleware's own checks run against: the payload TOKEN, PLAIN_SECRET, DPoP
 * off, mounted on every path, and next() answered `{ next: true }` (or by `after`).
 */
export function plainHandshakeApp(options: Partial<Parameters<typeof tokenSec.handshake>[0]> = {}, after?: RequestHandler) {
  const { app, errors: seen } = handshakeApp(
    { payload: TOKEN, secret: PLAIN_SECRET, dpop: { required: false }, ...options },
    { mount: 'all', after: after ?? ((_req, res) => res.json({ next: true })) },
  );
  return { app, seen };
}
