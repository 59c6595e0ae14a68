/**
 * Threat table, "replayer of a recorded session cookie": with cookie-session the session lives in
 * the cookie, so the cookie recorded before the first handshake (logged in, unbound) plus the CSRF
 * token is a session that is unbound forever. On 3.0 replaying it got a token bound to the
 * replayer's key. Now the default binding refuses a session without a server-side id (500
 * ERR_TOKENSEC_SESSION_NOT_SERVER_SIDE, no token for anyone), and hooks that keep the binding on
 * the server (here by user, through an AtomicStore) refuse the replayer's key (403).
 */
import cookieSession from 'cookie-session';
import { csrfSync } from 'csrf-sync';
import express from 'express';
import { afterAll, describe, expect, it } from 'vitest';
import { rotateDpopKey } from '../../client/dpop.js';
import tokenSec, { type SessionKeyStore } from '../../src/index.js';
import { testMemoryStore } from '../support/atomic-stores.js';
import { TOKEN, listen, signedHandshake } from '../support/helpers.js';

const servers: Awaited<ReturnType<typeof listen>>[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

interface UserSession {
  user?: string;
}

async function app(sessionKey?: SessionKeyStore<express.Request>) {
  const { generateToken, csrfSynchronisedProtection } = csrfSync();
  const a = express();
  a.use(cookieSession({ name: 'session', keys: ['cookie-session key for the attack test'] }));
  a.get('/', (req, res) => res.json({ csrfToken: generateToken(req) }));
  a.post('/login', csrfSynchronisedProtection, (req, res) => {
    (req.session as UserSession).user = 'alice';
    res.json({ ok: true });
  });
  a.post(
    '/token',
    csrfSynchronisedProtection,
    tokenSec.handshake({
      terminate: true,
      dpop: sessionKey ? { sessionKey } : {},
      payload: (req) => {
        if (!(req.session as UserSession | undefined)?.user) throw new Error('not logged in');
        return TOKEN;
      },
    }),
  );
  a.use(tokenSec.errorHandler());
  const server = await listen(a);
  servers.push(server);
  return server.origin;
}

/** All the session cookies a response set, as a Cookie header (cookie-session sets the value and its signature). */
const cookiesOf = (response: Response, previous = '') => {
  const set = response.headers.getSetCookie().map((c) => c.split(';', 1)[0] ?? '');
  return set.length ? set.join('; ') : previous;
};

/** The victim: opens the page, logs in. Returns the recorded cookie (logged in, before any handshake) and the CSRF token. */
async function victimLogsIn(origin: string) {
  const page = await fetch(`${origin}/`);
  const { csrfToken } = (await page.json()) as { csrfToken: string };
  const login = await fetch(`${origin}/login`, { method: 'POST', headers: { cookie: cookiesOf(page), 'x-csrf-token': csrfToken } });
  expect(login.status).toBe(200);
  return { cookie: cookiesOf(login, cookiesOf(page)), csrfToken };
}

const handshakeAt = async (origin: string, cookie: string, csrfToken: string) => {
  const url = `${origin}/token`;
  const response = await fetch(url, {
    method: 'POST',
    headers: { ...(await signedHandshake(url, csrfToken)).headers, cookie, 'x-csrf-token': csrfToken },
  });
  return { status: response.status, code: response.headers.get('tokensec-error'), cookie: cookiesOf(response, cookie) };
};

describe('replaying the pre-handshake cookie-session cookie and the CSRF token', () => {
  it('default binding: every handshake of a cookie session is refused with 500 SESSION_NOT_SERVER_SIDE, the replayer gets no token', async () => {
    const origin = await app();
    const { cookie, csrfToken } = await victimLogsIn(origin);
    expect(await handshakeAt(origin, cookie, csrfToken)).toMatchObject({ status: 500, code: 'ERR_TOKENSEC_SESSION_NOT_SERVER_SIDE' });
    await rotateDpopKey(); // the replayer's own key
    expect(await handshakeAt(origin, cookie, csrfToken)).toMatchObject({ status: 500, code: 'ERR_TOKENSEC_SESSION_NOT_SERVER_SIDE' });
  });

  it('hooks that bind on the server (by user, atomically): the victim binds, the replayer with its own key gets 403', async () => {
    const bindings = testMemoryStore();
    const user = (req: express.Request) => (req.session as UserSession | undefined)?.user ?? '';
    const origin = await app({
      get: () => undefined,
      set: () => undefined,
      bind: (req, jkt) => bindings.addIfAbsent(`bind:${user(req)}`, jkt, 3600),
    });
    const { cookie, csrfToken } = await victimLogsIn(origin);
    expect(await handshakeAt(origin, cookie, csrfToken)).toMatchObject({ status: 200, code: null });
    await rotateDpopKey(); // the replayer's own key, claiming to be fresh
    expect(await handshakeAt(origin, cookie, csrfToken)).toMatchObject({ status: 403, code: 'ERR_TOKENSEC_DPOP_KEY_MISMATCH' });
  });
});
