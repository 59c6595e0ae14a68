/**
 * tokenSec.dbsc(): the dbsc+jwt verifier, then the registration and refresh endpoints, the bound
 * cookie and the handshake's hook, driven over HTTP against express + express-session, with the
 * headers as Chromium 156 sends them (docs/DBSC.md). Proofs are signed with node:crypto: ES256 keys
 * from CSPRNG bytes and the fixed RSA key of RFC 7515 Appendix A.2.
 */
import { sign } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Express } from 'express';
import session from 'express-session';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { fakeClock } from '../../../support/clock.js';
import { createDpopProof, handshake } from '../../../../client/index.js';
import tokenSec, { type DbscBinding, type DbscOptions, type TokenSecError } from '../../../../src/index.js';
import { memoryStore } from '../../../../src/server/memory-store.js';
import { verifyDbscProof } from '../../../../src/server/dbsc/verify.js';
import {
  challengeOf,
  Client,
  dbscProof,
  ecTestKey,
  registrationProof,
  registrationRequest,
  rsaTestKey,
  RFC7515_RSA_JWK,
  type DbscTestKey,
} from '../../../support/dbsc.js';
import { defined, listen } from '../../../support/helpers.js';

const SECRET = 'unit test DBSC secret, 32 bytes or more';
const REGISTRATION = '/tokensec/dbsc/registration';
const REFRESH = '/tokensec/dbsc/refresh';
const BOTH = ['ES256', 'RS256'] as const;

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return { code: (error as { code?: string }).code, status: (error as { status?: number }).status, message: (error as Error).message };
  }
  return undefined;
};

afterEach(() => {
  vi.useRealTimers();
});

describe('verifyDbscProof', () => {
  const ec = ecTestKey();
  const rsa = rsaTestKey();

  it('the fixed RSA key is RFC 7515 A.2’s: it signs the RFC’s input to the RFC’s signature', () => {
    const input = 'eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ';
    expect(sign('sha256', Buffer.from(input), rsa.privateKey).toString('base64url')).toMatch(
      /^cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2Vt/,
    );
    expect(rsa.jwk).toEqual({ kty: 'RSA', n: RFC7515_RSA_JWK.n, e: 'AQAB' });
  });

  it.each([
    ['ES256', ec],
    ['RS256', rsa],
  ] as const)('%s: a registration proof verifies with the key in its header; claims come out typed', (_alg, key) => {
    const verified = verifyDbscProof(registrationProof(key, { jti: 'c1', authorization: 'a', aud: 'https://x/r' }), { algorithms: BOTH });
    expect(verified).toMatchObject({ alg: key.alg, jwk: key.jwk, claims: { jti: 'c1', authorization: 'a', aud: 'https://x/r' } });
    expect(verified.jkt).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it.each([
    ['typ JWT', { typ: 'JWT' }],
    ['typ dpop+jwt', { typ: 'dpop+jwt' }],
    ['no typ', { typ: undefined }],
    ['crit', { crit: ['exp'] }],
  ])('refuses %s', (_name, header) => {
    expect(code(() => verifyDbscProof(registrationProof(ec, { jti: 'c' }, header), { algorithms: BOTH }))).toMatchObject({
      code: 'ERR_TOKENSEC_DBSC_INVALID_PROOF',
      status: 400,
    });
  });

  it.each(['none', 'HS256', 'ES384', 'PS256', 'EdDSA'])('refuses alg %s', (alg) => {
    const proof = registrationProof(ec, { jti: 'c' }, { alg });
    expect(code(() => verifyDbscProof(proof, { algorithms: BOTH }))).toMatchObject({ code: 'ERR_TOKENSEC_DBSC_INVALID_PROOF' });
  });

  it('refuses an algorithm the server did not offer', () => {
    expect(code(() => verifyDbscProof(registrationProof(rsa, { jti: 'c' }), { algorithms: ['ES256'] }))?.message).toMatch(
      /alg must be one of ES256/,
    );
  });

  it('refuses a bad signature: claims changed after signing, a signature of another key, a truncated one', () => {
    const proof = registrationProof(ec, { jti: 'c' });
    const [h, , s] = proof.split('.');
    const changed = `${h}.${Buffer.from('{"jti":"other"}').toString('base64url')}.${s}`;
    const other = ecTestKey();
    const foreign = `${h}.${proof.split('.')[1]}.${dbscProof(other, { jti: 'c' }).split('.')[2]}`;
    for (const bad of [changed, foreign, proof.slice(0, -4)]) {
      expect(code(() => verifyDbscProof(bad, { algorithms: BOTH }))?.message).toMatch(/signature does not verify/);
    }
  });

  it('refuses a header key with private members, of the wrong type, or an RSA key under 2048 bits', () => {
    const withD = registrationProof(ec, { jti: 'c' }, { jwk: { ...ec.jwk, d: 'AAAA' } });
    const rsaAsEc = registrationProof(ec, { jti: 'c' }, { jwk: rsa.jwk });
    const small = registrationProof(rsa, { jti: 'c' }, { jwk: { kty: 'RSA', n: Buffer.alloc(128, 1).toString('base64url'), e: 'AQAB' } });
    for (const bad of [withD, rsaAsEc, small])
      expect(code(() => verifyDbscProof(bad, { algorithms: BOTH }))?.message).toMatch(/jwk must be/);
  });

  it('a refresh signed by another key is refused, even with that key in its header', () => {
    const stored = { alg: 'ES256' as const, jwk: ec.jwk as never };
    expect(verifyDbscProof(dbscProof(ec, { jti: 'c' }), { algorithms: BOTH, stored }).claims.jti).toBe('c');
    const thief = ecTestKey();
    for (const proof of [dbscProof(thief, { jti: 'c' }), registrationProof(thief, { jti: 'c' })]) {
      expect(code(() => verifyDbscProof(proof, { algorithms: BOTH, stored }))?.message).toMatch(/does not verify with the key registered/);
    }
    expect(code(() => verifyDbscProof(dbscProof(rsa, { jti: 'c' }), { algorithms: BOTH, stored }))?.message).toMatch(/alg must be ES256/);
  });

  it('refuses malformed input: two parts, non-JSON claims, a jti that is not a string', () => {
    for (const bad of ['a.b', 'a.b.c.d', `${registrationProof(ec, { jti: 'c' })}.x`]) {
      expect(code(() => verifyDbscProof(bad, { algorithms: BOTH }))?.code).toBe('ERR_TOKENSEC_DBSC_INVALID_PROOF');
    }
    expect(code(() => verifyDbscProof(registrationProof(ec, { jti: 7 }), { algorithms: BOTH }))?.message).toMatch(/jti/);
  });
});

// ---- the endpoints over HTTP ----

const servers: { close(): Promise<void> }[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

/** express-session, dbsc.middleware, a login, a protected route, the handshake (static secret: no CSRF library here). */
async function app(options: Partial<DbscOptions> = {}, authorization?: string) {
  const dbsc = tokenSec.dbsc({ secret: SECRET, ...options });
  const a: Express = express();
  a.use(session({ secret: 'unit session secret', resave: false, saveUninitialized: false }));
  a.use(dbsc.middleware);
  a.post('/login', async (req, res, next) => {
    req.session.regenerate(async (error) => {
      if (error) return next(error);
      (req.session as unknown as { userId: string }).userId = 'alice';
      try {
        res.json({ requested: await dbsc.requestRegistration(req, res, authorization === undefined ? {} : { authorization }) });
      } catch (failure) {
        next(failure);
      }
    });
  });
  a.get('/account', dbsc.requireBoundSession, (_req, res) => res.json({ ok: true }));
  a.post('/token', tokenSec.handshake({ payload: 'the token', secret: 'a handshake secret of 16+ bytes', terminate: true }));
  a.use(tokenSec.errorHandler());
  const server = await listen(a);
  servers.push(server);
  return { ...server, dbsc };
}

async function logIn(client: Client) {
  const login = await client.send('POST', '/login');
  expect(login.status).toBe(200);
  return registrationRequest(login.headers.get('secure-session-registration'));
}

/** Logs in and registers `key`; returns the session id and the next challenge. */
async function registered(client: Client, key: DbscTestKey = ecTestKey()) {
  const { challenge } = await logIn(client);
  const response = await client.send('POST', REGISTRATION, { 'secure-session-response': registrationProof(key, { jti: challenge }) });
  expect(response.status).toBe(200);
  return { key, ...challengeOf(response), body: (await response.json()) as Record<string, unknown>, response };
}

describe('registration', () => {
  it.each([
    ['ES256, bare header', ecTestKey(), (p: string) => p],
    ['RS256, quoted header', rsaTestKey(), (p: string) => `"${p}"`],
  ])('%s: session instructions, a bound cookie with the same attributes, a first challenge', async (_name, key, form) => {
    const { origin } = await app();
    const client = new Client(origin);
    const request = await logIn(client);
    expect(request).toMatchObject({ algorithms: 'ES256 RS256', path: REGISTRATION });
    const response = await client.send('POST', REGISTRATION, {
      'secure-session-response': form(registrationProof(key, { jti: request.challenge })),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const body = (await response.json()) as { session_identifier: string };
    expect(body).toEqual({
      session_identifier: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
      refresh_url: REFRESH,
      scope: { include_site: false },
      credentials: [{ type: 'cookie', name: '__Host-tokensec-dbsc', attributes: 'Path=/; Secure; HttpOnly; SameSite=Lax' }],
    });
    const bound = defined(
      response.headers.getSetCookie().find((c) => c.startsWith('__Host-tokensec-dbsc=')),
      'bound cookie',
    );
    expect(bound).toMatch(/^__Host-tokensec-dbsc=\d+\.[A-Za-z0-9_-]{43}; Max-Age=300; Path=\/; Secure; HttpOnly; SameSite=Lax$/);
    expect(challengeOf(response).id).toBe(body.session_identifier);
  });

  it('a registration replayed is refused (409), and so is a second key for the same login', async () => {
    const { origin } = await app();
    const client = new Client(origin);
    const { challenge } = await logIn(client);
    const proof = registrationProof(ecTestKey(), { jti: challenge });
    expect((await client.send('POST', REGISTRATION, { 'secure-session-response': proof })).status).toBe(200);
    const replayed = await client.send('POST', REGISTRATION, { 'secure-session-response': proof });
    expect([replayed.status, replayed.headers.get('tokensec-error')]).toEqual([409, 'ERR_TOKENSEC_DBSC_ALREADY_REGISTERED']);
    const other = await client.send('POST', REGISTRATION, {
      'secure-session-response': registrationProof(ecTestKey(), { jti: challenge }),
    });
    expect(other.status).toBe(409);
  });

  it('an unknown challenge, another login’s challenge, or no login at all: 403 ERR_TOKENSEC_DBSC_STALE_CHALLENGE', async () => {
    const { origin } = await app();
    const victim = new Client(origin);
    await logIn(victim);
    const attacker = new Client(origin);
    const theirs = await logIn(attacker);
    for (const jti of ['made-up', theirs.challenge]) {
      const response = await victim.send('POST', REGISTRATION, { 'secure-session-response': registrationProof(ecTestKey(), { jti }) });
      expect([response.status, (await response.json()).code]).toEqual([403, 'ERR_TOKENSEC_DBSC_STALE_CHALLENGE']);
    }
    const anonymous = await new Client(origin).send('POST', REGISTRATION, {
      'secure-session-response': registrationProof(ecTestKey(), { jti: theirs.challenge }),
    });
    expect(anonymous.status).toBe(403);
  });

  it('an expired challenge is refused', async () => {
    const clock = fakeClock(Date.now());
    const { origin } = await app({ challengeTtl: 30 });
    const client = new Client(origin);
    const { challenge } = await logIn(client);
    clock.advance(31_000);
    const response = await client.send('POST', REGISTRATION, {
      'secure-session-response': registrationProof(ecTestKey(), { jti: challenge }),
    });
    expect(response.status).toBe(403);
  });

  it('the authorization value must be the one the login asked for; aud, when sent, must be this URL', async () => {
    const { origin } = await app({}, 'ac123');
    const client = new Client(origin);
    const { challenge, authorization } = await logIn(client);
    expect(authorization).toBe('ac123');
    const key = ecTestKey();
    const url = `https://${new URL(origin).host}${REGISTRATION}`;
    for (const claims of [{ jti: challenge }, { jti: challenge, authorization: 'other' }]) {
      expect((await client.send('POST', REGISTRATION, { 'secure-session-response': registrationProof(key, claims) })).status).toBe(403);
    }
    const wrongAud = await client.send('POST', REGISTRATION, {
      'secure-session-response': registrationProof(key, { jti: challenge, authorization: 'ac123', aud: 'https://evil.example/r' }),
    });
    expect([wrongAud.status, wrongAud.headers.get('tokensec-error')]).toEqual([400, 'ERR_TOKENSEC_DBSC_INVALID_PROOF']);
    const ok = await client.send('POST', REGISTRATION, {
      'secure-session-response': registrationProof(key, { jti: challenge, authorization: 'ac123', aud: url }),
    });
    expect(ok.status).toBe(200);
  });

  it('no proof, or a proof that does not verify: 400, nothing stored', async () => {
    const { origin } = await app();
    const client = new Client(origin);
    const { challenge } = await logIn(client);
    expect((await client.send('POST', REGISTRATION)).status).toBe(400);
    const bad = registrationProof(ecTestKey(), { jti: challenge }, { typ: 'JWT' });
    expect((await client.send('POST', REGISTRATION, { 'secure-session-response': bad })).status).toBe(400);
    // The challenge was not used up by the refusals.
    expect(
      (await client.send('POST', REGISTRATION, { 'secure-session-response': registrationProof(ecTestKey(), { jti: challenge }) })).status,
    ).toBe(200);
  });

  it('GET on the endpoints: 405 with Allow: POST', async () => {
    const { origin } = await app();
    const response = await fetch(origin + REFRESH);
    expect([response.status, response.headers.get('allow')]).toEqual([405, 'POST']);
  });
});

describe('refresh', () => {
  it('no proof: 403 with a fresh challenge; signed, it gets a new bound cookie and the next challenge; bare or quoted id', async () => {
    const { origin } = await app();
    const client = new Client(origin);
    const { key, id } = await registered(client);
    client.cookies.delete('__Host-tokensec-dbsc');
    const asked = await client.send('POST', REFRESH, { 'sec-secure-session-id': id });
    expect([asked.status, asked.headers.get('tokensec-error')]).toEqual([403, 'ERR_TOKENSEC_DBSC_STALE_CHALLENGE']);
    const first = challengeOf(asked);
    expect(first.id).toBe(id);
    const refreshed = await client.send('POST', REFRESH, {
      'sec-secure-session-id': `"${id}"`,
      'secure-session-response': dbscProof(key, { jti: first.challenge }),
    });
    expect(refreshed.status).toBe(200);
    expect(client.cookies.get('__Host-tokensec-dbsc')).toMatch(/^\d+\./);
    expect(challengeOf(refreshed).challenge).not.toBe(first.challenge);
    expect((await client.send('GET', '/account')).status).toBe(200);
  });

  it('a challenge is good once: reused, it gets 403 and another challenge', async () => {
    const { origin } = await app();
    const client = new Client(origin);
    const { key, id, challenge } = await registered(client);
    const proof = dbscProof(key, { jti: challenge });
    expect((await client.send('POST', REFRESH, { 'sec-secure-session-id': id, 'secure-session-response': proof })).status).toBe(200);
    const reused = await client.send('POST', REFRESH, { 'sec-secure-session-id': id, 'secure-session-response': proof });
    expect([reused.status, reused.headers.get('tokensec-error')]).toEqual([403, 'ERR_TOKENSEC_DBSC_STALE_CHALLENGE']);
    expect(challengeOf(reused).challenge).not.toBe(challenge);
  });

  it('several challenges may be outstanding, and a refresh is accepted at any time (the bound cookie still live)', async () => {
    const { origin } = await app();
    const client = new Client(origin);
    const { key, id, challenge } = await registered(client);
    const more = [];
    for (let i = 0; i < 3; i++) more.push(challengeOf(await client.send('POST', REFRESH, { 'sec-secure-session-id': id })).challenge);
    for (const jti of [...more.reverse(), challenge]) {
      const response = await client.send('POST', REFRESH, {
        'sec-secure-session-id': id,
        'secure-session-response': dbscProof(key, { jti }),
      });
      expect(response.status).toBe(200);
    }
  });

  it('a refresh signed by another key, an unknown challenge or another session’s challenge: 403 and a challenge, no cookie', async () => {
    const { origin } = await app();
    const client = new Client(origin);
    const { id, challenge, key } = await registered(client);
    const other = new Client(origin);
    const theirs = await registered(other);
    const thief = ecTestKey();
    const cases: [string, string][] = [
      [registrationProof(thief, { jti: challenge }), 'ERR_TOKENSEC_DBSC_INVALID_PROOF'],
      [dbscProof(theirs.key, { jti: theirs.challenge }), 'ERR_TOKENSEC_DBSC_INVALID_PROOF'],
      [dbscProof(key, { jti: 'made-up' }), 'ERR_TOKENSEC_DBSC_STALE_CHALLENGE'],
      [dbscProof(key, { jti: theirs.challenge }), 'ERR_TOKENSEC_DBSC_STALE_CHALLENGE'],
    ];
    for (const [proof, expected] of cases) {
      const response = await client.send('POST', REFRESH, { 'sec-secure-session-id': id, 'secure-session-response': proof });
      expect([response.status, response.headers.get('tokensec-error'), response.headers.getSetCookie()]).toEqual([403, expected, []]);
      expect(challengeOf(response).id).toBe(id);
    }
    // Their key, but our challenge cannot be used in their session, nor theirs in ours.
    const crossed = await other.send('POST', REFRESH, {
      'sec-secure-session-id': theirs.id,
      'secure-session-response': dbscProof(theirs.key, { jti: challenge }),
    });
    expect([crossed.status, crossed.headers.get('tokensec-error')]).toEqual([403, 'ERR_TOKENSEC_DBSC_STALE_CHALLENGE']);
  });

  it('a session id this login does not have, or none: 401 ERR_TOKENSEC_DBSC_UNKNOWN_SESSION', async () => {
    const { origin } = await app();
    const client = new Client(origin);
    const { key, challenge } = await registered(client);
    for (const headers of [{ 'sec-secure-session-id': 'not-it' }, {}] as Record<string, string>[]) {
      const response = await client.send('POST', REFRESH, { ...headers, 'secure-session-response': dbscProof(key, { jti: challenge }) });
      expect([response.status, response.headers.get('tokensec-error')]).toEqual([401, 'ERR_TOKENSEC_DBSC_UNKNOWN_SESSION']);
    }
  });
});

describe('the bound cookie: requireBoundSession and the handshake', () => {
  it('a bound session needs a live bound cookie; a session that never registered (a browser without DBSC) passes as before', async () => {
    const clock = fakeClock(Date.now());
    const { origin } = await app({ cookieMaxAge: 60 });
    const plain = new Client(origin);
    await logIn(plain); // registration asked for, never done
    expect((await plain.send('GET', '/account')).status).toBe(200);
    expect(await handshake({ uri: `${origin}/token`, secret: 'a handshake secret of 16+ bytes', headers: { cookie: plain.cookie } })).toBe(
      'the token',
    );

    const client = new Client(origin);
    await registered(client);
    expect((await client.send('GET', '/account')).status).toBe(200);
    const live = client.cookie;
    expect(await handshake({ uri: `${origin}/token`, secret: 'a handshake secret of 16+ bytes', headers: { cookie: live } })).toBe(
      'the token',
    );

    const bound = defined(client.cookies.get('__Host-tokensec-dbsc'), 'bound cookie');
    client.cookies.set('__Host-tokensec-dbsc', `${Number(bound.split('.')[0]) + 3600}.${bound.split('.')[1]}`); // a later expiry, same MAC
    const forged = await client.send('GET', '/account');
    expect([forged.status, forged.headers.get('tokensec-error')]).toEqual([401, 'ERR_TOKENSEC_DBSC_REQUIRED']);
    client.cookies.delete('__Host-tokensec-dbsc');
    expect((await client.send('GET', '/account')).status).toBe(401);

    clock.advance(61_000); // the copied jar's cookie has expired
    const expired = await fetch(`${origin}/account`, { headers: { cookie: live } });
    expect([expired.status, expired.headers.get('tokensec-error')]).toEqual([401, 'ERR_TOKENSEC_DBSC_REQUIRED']);
    const refused = await handshake({ uri: `${origin}/token`, secret: 'a handshake secret of 16+ bytes', headers: { cookie: live } }).catch(
      (e: unknown) => e,
    );
    expect(refused).toMatchObject({ status: 401 });
  });

  it('cookieMaxAge 1: the server takes the bound cookie for as long as the browser keeps it, to the second, and no longer', async () => {
    const clock = fakeClock(1_700_000_000_600); // 0.6 s into a second
    const { origin } = await app({ cookieMaxAge: 1 });
    const client = new Client(origin);
    await registered(client);
    expect(client.cookies.get('__Host-tokensec-dbsc')).toMatch(/^1700000002\./);
    // Max-Age=1: a browser that got it at .600 or later keeps it until 1_700_000_001.600 or later.
    for (const [at, status] of [
      [1_700_000_001_599, 200],
      [1_700_000_001_999, 200], // the end of the second in which the browser drops it
      [1_700_000_002_000, 401],
    ] as const) {
      clock.set(at);
      expect([at, (await client.send('GET', '/account')).status]).toEqual([at, status]);
    }
  });

  it('handshake: false leaves the handshake to the app', async () => {
    const { origin } = await app({ handshake: false });
    const client = new Client(origin);
    await registered(client);
    client.cookies.delete('__Host-tokensec-dbsc');
    expect(await handshake({ uri: `${origin}/token`, secret: 'a handshake secret of 16+ bytes', headers: { cookie: client.cookie } })).toBe(
      'the token',
    );
    expect((await client.send('GET', '/account')).status).toBe(401);
  });
});

describe('where DBSC does not reach, and without Express', () => {
  it('tokenSec.dpop() routes do not ask for the bound cookie: the token is bound to the page’s key already', async () => {
    const dbsc = tokenSec.dbsc({ secret: SECRET });
    const a = express();
    a.use(session({ secret: 'unit session secret', resave: false, saveUninitialized: false }));
    a.use(dbsc.middleware);
    a.post('/login', (req, res, next) => {
      dbsc.requestRegistration(req, res).then(() => res.json({}), next);
    });
    a.post(
      '/token',
      tokenSec.handshake({
        payload: (_req, _res, { jkt }) => Buffer.from(JSON.stringify({ cnf: { jkt } })).toString('base64url'),
        secret: 'a handshake secret of 16+ bytes',
        terminate: true,
      }),
    );
    a.get('/api/me', tokenSec.dpop({ verifyToken: (token) => JSON.parse(Buffer.from(token, 'base64url').toString()) }), (_req, res) =>
      res.json({ ok: true }),
    );
    a.use(tokenSec.errorHandler());
    const server = await listen(a);
    servers.push(server);
    const client = new Client(server.origin);
    await registered(client);
    const token = await handshake({
      uri: `${server.origin}/token`,
      secret: 'a handshake secret of 16+ bytes',
      headers: { cookie: client.cookie },
    });
    client.cookies.delete('__Host-tokensec-dbsc');
    const url = `${server.origin}/api/me`;
    const api = await client.send('GET', '/api/me', {
      authorization: `DPoP ${token}`,
      dpop: await createDpopProof({ method: 'GET', url, accessToken: token }),
    });
    expect(api.status).toBe(200);
  });

  it('node:http with the app’s own session store (no Express, no express-session): register, refresh, require', async () => {
    const bindings = new Map<string, DbscBinding>();
    const sid = (req: IncomingMessage) => /(?:^|; )sid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1] ?? '';
    const dbsc = tokenSec.dbsc({
      secret: SECRET,
      store: { get: (req) => bindings.get(sid(req)), set: (req, b) => void bindings.set(sid(req), b) },
    });
    const fail = (res: ServerResponse) => (error: TokenSecError) => {
      for (const [name, value] of Object.entries(error.headers ?? {})) res.setHeader(name, value);
      res.statusCode = error.status ?? 500;
      res.end();
    };
    const server = createServer((req, res) => {
      dbsc.middleware(req, res, (error) => {
        if (error) return fail(res)(error as TokenSecError);
        if (req.url === '/login') return void dbsc.requestRegistration(req, res).then(() => res.end('ok'), fail(res));
        if (req.url === '/account')
          return dbsc.requireBoundSession(req, res, (e) => (e ? fail(res)(e as TokenSecError) : res.end('account')));
        res.statusCode = 404;
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push({ close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
    const client = new Client(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    client.cookies.set('sid', 'app-session-1');
    const { key, id, challenge } = await registered(client);
    expect(bindings.get('app-session-1')).toMatchObject({ id, alg: 'ES256', jwk: key.jwk });
    expect((await client.send('GET', '/account')).status).toBe(200);
    client.cookies.delete('__Host-tokensec-dbsc');
    expect((await client.send('GET', '/account')).status).toBe(401);
    const refreshed = await client.send('POST', REFRESH, {
      'sec-secure-session-id': id,
      'secure-session-response': dbscProof(key, { jti: challenge }),
    });
    expect(refreshed.status).toBe(200);
    expect((await client.send('GET', '/account')).status).toBe(200);
  });
});

describe('stores', () => {
  it('the default memory challenge store: add once, expire, and 503 ERR_TOKENSEC_STORE_FULL rather than forget', () => {
    const clock = fakeClock(0);
    const store = memoryStore({ max: 2 });
    expect([store.addIfAbsent('a', '1', 10), store.addIfAbsent('a', '2', 10), store.addIfAbsent('b', '1', 20)]).toEqual([
      undefined,
      '1',
      undefined,
    ]);
    expect(code(() => store.addIfAbsent('c', '1', 10))).toMatchObject({ code: 'ERR_TOKENSEC_STORE_FULL', status: 503 });
    clock.set(10_000); // 'a' has expired and makes room for 'c'; 'b' has not, and is still refused
    expect([store.addIfAbsent('c', '1', 10), store.addIfAbsent('b', '2', 10)]).toEqual([undefined, '1']);
    expect(code(() => store.addIfAbsent('a', '3', 10))).toMatchObject({ code: 'ERR_TOKENSEC_STORE_FULL' });
  });

  it('a session store that does not answer: 503 ERR_TOKENSEC_STORE_UNAVAILABLE in bounded time', async () => {
    const { origin } = await app({ store: { get: () => new Promise(() => {}), set: () => {} }, storeTimeout: 50 });
    const response = await fetch(origin + '/account');
    expect([response.status, response.headers.get('tokensec-error') ?? (await response.json()).code]).toEqual([
      503,
      'ERR_TOKENSEC_STORE_UNAVAILABLE',
    ]);
  });

  it('a challenge store that fails: 503, and the challenge is not taken as used', async () => {
    let fail = true;
    const used = new Set<string>();
    const challengeStore = {
      addIfAbsent: (key: string) => {
        if (fail) throw new Error('down');
        if (used.has(key)) return '1';
        used.add(key);
        return undefined;
      },
      delete: () => {},
    };
    const { origin } = await app({ challengeStore });
    const client = new Client(origin);
    const { challenge } = await logIn(client);
    const proof = registrationProof(ecTestKey(), { jti: challenge });
    const down = await client.send('POST', REGISTRATION, { 'secure-session-response': proof });
    expect(down.status).toBe(503);
    fail = false;
    expect((await client.send('POST', REGISTRATION, { 'secure-session-response': proof })).status).toBe(200);
  });
});

describe('options', () => {
  it.each([
    [undefined, /options are required/],
    [{}, /"secret" is required/],
    [{ secret: 'short' }, /at least 32 bytes/],
    [{ secret: SECRET, cookiename: 'x' }, /unknown option "cookiename"\. Did you mean "cookieName"\?/],
    [{ secret: SECRET, cookieName: 'a b' }, /cookieName/],
    [{ secret: SECRET, cookieMaxAge: 0 }, /cookieMaxAge/],
    [{ secret: SECRET, algorithms: ['ES384'] }, /algorithms/],
    [{ secret: SECRET, refreshPath: 'relative' }, /refreshPath/],
    [{ secret: SECRET, registrationPath: '/same', refreshPath: '/same' }, /must differ/],
    [{ secret: SECRET, store: {} }, /get\(req\) and set\(req, binding\)/],
    [{ secret: SECRET, challengeStore: { add: () => true } }, /AtomicStore/],
    [{ secret: SECRET, origin: 'https://app.example/path' }, /origin/],
  ])('%o', (options, message) => {
    expect(() => tokenSec.dbsc(options as never)).toThrow(message);
  });
});
