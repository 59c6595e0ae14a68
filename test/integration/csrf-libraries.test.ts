/**
 * The three CSRF middlewares README names, each in front of tokenSec.initialize() and a handshake
 * whose secret is the CSRF token that middleware validated (the default): csrf-sync and csrf-csrf
 * (maintained; README leads with csrf-sync) and csurf (archived; the path from TokenSec 0.x).
 * A page load gets the cookie, the handshake with its token is answered, one without a token or
 * with another session's token is refused by the CSRF middleware.
 */
import cookieParser from 'cookie-parser';
import csurf from 'csurf';
import { doubleCsrf } from 'csrf-csrf';
import { csrfSync } from 'csrf-sync';
import express, { type Express } from 'express';
import session from 'express-session';
import { afterAll, describe, expect, it } from 'vitest';
import { handshake } from '../../client/index.js';
import tokenSec from '../../src/index.js';
import { TOKEN, listen, visit } from '../support/helpers.js';

const servers: Awaited<ReturnType<typeof listen>>[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

/** An app with the CSRF middleware `protect` (and what it needs before it), initialize, a page and the handshake. */
function app(before: (a: Express) => void): Express {
  const a = express();
  before(a);
  a.use(tokenSec.initialize({ cookie: true }));
  a.get('/', (_req, res) => res.send('page'));
  a.post('/token', tokenSec.handshake({ payload: TOKEN, terminate: true }));
  a.use(tokenSec.errorHandler());
  return a;
}

const libraries: [string, () => Express][] = [
  [
    'csrf-sync (synchronizer token in the session)',
    () =>
      app((a) => {
        a.use(session({ secret: 'csrf-sync test session secret', resave: false, saveUninitialized: true }));
        a.use(csrfSync().csrfSynchronisedProtection);
      }),
  ],
  [
    'csrf-csrf (signed double submit cookie)',
    () =>
      app((a) => {
        a.use(cookieParser());
        a.use(session({ secret: 'csrf-csrf test session secret', resave: false, saveUninitialized: true }));
        const { doubleCsrfProtection } = doubleCsrf({
          getSecret: () => 'csrf-csrf test secret, 32 bytes or more',
          getSessionIdentifier: (req) => req.sessionID,
          cookieName: 'x-csrf', // the default __Host- name needs HTTPS
          cookieOptions: { secure: false },
        });
        a.use(doubleCsrfProtection);
      }),
  ],
  [
    'csurf (archived; TokenSec 0.x setups)',
    () =>
      app((a) => {
        a.use(cookieParser());
        a.use(csurf({ cookie: true }));
      }),
  ],
];

describe.each(libraries)('%s', (_name, make) => {
  it('the handshake is answered with the validated CSRF token as secret, and refused without it or with another session’s', async () => {
    const server = await listen(make());
    servers.push(server);
    const uri = `${server.origin}/token`;
    const page = await visit(server.origin);
    expect(await handshake({ uri, csrfToken: page.csrfToken, headers: { cookie: page.cookie } })).toBe(TOKEN);

    // No CSRF token: the CSRF middleware refuses before TokenSec runs.
    const without = await fetch(uri, { method: 'POST', headers: { cookie: page.cookie, 'x-tokensec-handshake': 'v3.x' } });
    expect(without.status).toBe(403);
    expect(await without.json()).toMatchObject({ code: 'EBADCSRFTOKEN' });

    // Another visitor's token with this visitor's cookies.
    const other = await visit(server.origin);
    const crossed = await handshake({ uri, csrfToken: other.csrfToken, headers: { cookie: page.cookie } }).catch((e: unknown) => e);
    expect(crossed).toMatchObject({ code: 'ERR_TOKENSEC_CSRF_REFUSED', status: 403 });
  });
});

/** A cookie jar of one browser: every Set-Cookie kept by name, sent back as one Cookie header. */
class Jar {
  readonly cookies = new Map<string, string>();
  header = () => [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  keep(response: Response): Response {
    for (const set of response.headers.getSetCookie()) {
      const pair = set.split(';', 1)[0] ?? '';
      const eq = pair.indexOf('=');
      this.cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return response;
  }
  /** The CSRF token initialize() handed to the page, as TokenSec.handshake() reads it. */
  token = () => decodeURIComponent(this.cookies.get('tokensec') ?? '');
}

const regenerate = (req: express.Request) =>
  new Promise<void>((resolve, reject) => req.session.regenerate((err) => (err ? reject(err) : resolve())));

/** README's app with `protect` in front: login and logout regenerate the session, the handshake needs a logged-in user. */
function lifecycleApp(before: (a: Express) => void, saveUninitialized: boolean): Express {
  const a = express();
  a.use(cookieParser());
  a.use(session({ secret: 'lifecycle test session secret', resave: false, saveUninitialized }));
  before(a);
  a.use(tokenSec.initialize({ cookie: true }));
  a.get('/', (_req, res) => res.send('<!doctype html><title>page</title>'));
  a.post('/login', async (req, res, next) => {
    try {
      await regenerate(req);
      (req.session as unknown as { user: string }).user = 'alice';
      res.json({ ok: true });
    } catch (error) {
      next(error);
    }
  });
  a.post('/logout', async (req, res, next) => {
    try {
      await regenerate(req);
      res.json({ ok: true });
    } catch (error) {
      next(error);
    }
  });
  a.post(
    '/token',
    tokenSec.handshake({
      terminate: true,
      dpop: { required: false },
      payload: (req) => {
        if (!(req.session as unknown as { user?: string }).user) throw new Error('not logged in');
        return TOKEN;
      },
    }),
  );
  a.use(tokenSec.errorHandler());
  return a;
}

// csrf-csrf signs its token with the session id, so the session must be saved from the first page on (saveUninitialized).
const lifecycleLibraries: [string, (a: Express) => void, boolean][] = [
  ['csrf-sync', (a) => a.use(csrfSync().csrfSynchronisedProtection), false],
  [
    'csrf-csrf',
    (a) =>
      a.use(
        doubleCsrf({
          getSecret: () => 'csrf-csrf test secret, 32 bytes or more',
          getSessionIdentifier: (req) => req.sessionID,
          cookieName: 'x-csrf',
          cookieOptions: { secure: false },
        }).doubleCsrfProtection,
      ),
    true,
  ],
  ['csurf with its secret in a cookie', (a) => a.use(csurf({ cookie: true })), false],
  ['csurf with its secret in the session', (a) => a.use(csurf()), false],
];

describe.each(lifecycleLibraries)('login and logout as README writes them, with %s', (_name, protect, saveUninitialized) => {
  it('page, login (regenerate), handshake at once; logout (regenerate), login, handshake at once: each answered, no other request', async () => {
    const server = await listen(lifecycleApp(protect, saveUninitialized));
    servers.push(server);
    const uri = `${server.origin}/token`;
    const jar = new Jar();
    const send = async (path: string) => {
      const response = jar.keep(
        await fetch(`${server.origin}${path}`, { method: 'POST', headers: { cookie: jar.header(), 'x-csrf-token': jar.token() } }),
      );
      expect(response.status, `POST ${path}`).toBe(200);
    };
    const handshakeNow = () => handshake({ uri, csrfToken: jar.token(), headers: { cookie: jar.header() } });

    jar.keep(await fetch(`${server.origin}/`));
    await send('/login');
    expect(await handshakeNow()).toBe(TOKEN);
    await send('/logout');
    await expect(handshakeNow()).rejects.toMatchObject({ status: 500 }); // logged out: the app's payload refuses
    await send('/login');
    expect(await handshakeNow()).toBe(TOKEN);
  });
});
