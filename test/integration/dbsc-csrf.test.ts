/**
 * README's mount order with each CSRF middleware the project tests (csrf-sync, csrf-csrf, csurf):
 * session, then dbsc.middleware, then the CSRF middleware. The browser's registration and refresh
 * POSTs carry no CSRF token and are answered; the handshake still needs its CSRF token and, on a
 * bound session, the live bound cookie. Mounted after the CSRF middleware instead, the CSRF
 * middleware refuses the registration: that is why the order matters.
 */
import cookieParser from 'cookie-parser';
import csurf from 'csurf';
import { doubleCsrf } from 'csrf-csrf';
import { csrfSync } from 'csrf-sync';
import express, { type Express, type RequestHandler } from 'express';
import session from 'express-session';
import { afterAll, describe, expect, it } from 'vitest';
import { handshake } from '../../client/index.js';
import tokenSec from '../../src/index.js';
import { challengeOf, Client, dbscProof, ecTestKey, registrationProof, registrationRequest } from '../support/dbsc.js';
import { TOKEN, listen } from '../support/helpers.js';

const REGISTRATION = '/tokensec/dbsc/registration';
const REFRESH = '/tokensec/dbsc/refresh';

const servers: Awaited<ReturnType<typeof listen>>[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

/** `csrf`: what the CSRF library needs, then its middleware. `dbscFirst`: README's order. */
function app(csrf: RequestHandler[], dbscFirst: boolean): Express {
  const dbsc = tokenSec.dbsc({ secret: 'csrf-libraries DBSC secret, 32 bytes+' });
  const a = express();
  a.use(cookieParser());
  a.use(session({ secret: 'dbsc csrf test session secret', resave: false, saveUninitialized: true }));
  if (dbscFirst) a.use(dbsc.middleware);
  a.use(...csrf);
  if (!dbscFirst) a.use(dbsc.middleware);
  a.use(tokenSec.initialize({ cookie: true }));
  a.get('/', (_req, res) => res.send('page'));
  a.post('/login', (req, res, next) => {
    (req.session as unknown as { userId: string }).userId = 'alice';
    dbsc.requestRegistration(req, res).then(() => res.json({}), next);
  });
  a.post('/token', tokenSec.handshake({ payload: TOKEN, terminate: true }));
  a.use(tokenSec.errorHandler());
  return a;
}

const libraries: [string, () => RequestHandler[]][] = [
  ['csrf-sync', () => [csrfSync().csrfSynchronisedProtection]],
  [
    'csrf-csrf',
    () => [
      doubleCsrf({
        getSecret: () => 'csrf-csrf test secret, 32 bytes or more',
        getSessionIdentifier: (req) => req.sessionID,
        cookieName: 'x-csrf',
        cookieOptions: { secure: false },
      }).doubleCsrfProtection,
    ],
  ],
  ['csurf', () => [csurf({ cookie: true })]],
];

const csrfTokenOf = (client: Client) => decodeURIComponent(client.cookies.get('tokensec') ?? '');

describe.each(libraries)('%s', (_name, csrf) => {
  it('README order: registration and refresh need no CSRF token; the handshake needs its token and the live bound cookie', async () => {
    const server = await listen(app(csrf(), true));
    servers.push(server);
    const client = new Client(server.origin);
    await client.send('GET', '/');
    const login = await client.send('POST', '/login', { 'x-csrf-token': csrfTokenOf(client) });
    expect(login.status).toBe(200);
    const { challenge } = registrationRequest(login.headers.get('secure-session-registration'));
    const key = ecTestKey();
    const registered = await client.send('POST', REGISTRATION, { 'secure-session-response': registrationProof(key, { jti: challenge }) });
    expect(registered.status).toBe(200);
    const { id, challenge: next } = challengeOf(registered);
    const refreshed = await client.send('POST', REFRESH, {
      'sec-secure-session-id': id,
      'secure-session-response': dbscProof(key, { jti: next }),
    });
    expect(refreshed.status).toBe(200);

    await client.send('GET', '/');
    const uri = `${server.origin}/token`;
    expect(await handshake({ uri, csrfToken: csrfTokenOf(client), headers: { cookie: client.cookie } })).toBe(TOKEN);
    const withoutCsrf = await client.send('POST', '/token', { 'x-tokensec-handshake': 'v3.x' });
    expect([withoutCsrf.status, (await withoutCsrf.json()).code]).toEqual([403, 'EBADCSRFTOKEN']);
    client.cookies.delete('__Host-tokensec-dbsc');
    const unbound = await handshake({ uri, csrfToken: csrfTokenOf(client), headers: { cookie: client.cookie } }).catch((e: unknown) => e);
    expect(unbound).toMatchObject({ status: 401 });
  });

  it('mounted after the CSRF middleware, the token-less registration is refused by it (403 EBADCSRFTOKEN)', async () => {
    const server = await listen(app(csrf(), false));
    servers.push(server);
    const client = new Client(server.origin);
    await client.send('GET', '/');
    const login = await client.send('POST', '/login', { 'x-csrf-token': csrfTokenOf(client) });
    const { challenge } = registrationRequest(login.headers.get('secure-session-registration'));
    const refused = await client.send('POST', REGISTRATION, {
      'secure-session-response': registrationProof(ecTestKey(), { jti: challenge }),
    });
    expect([refused.status, (await refused.json()).code]).toEqual([403, 'EBADCSRFTOKEN']);
  });
});
