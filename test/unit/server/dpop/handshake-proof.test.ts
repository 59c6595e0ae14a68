/**
 * DPoP on the handshake (protocol v3): the proof is required by default, commits to this exact
 * handshake header (`tsh`), is checked against this request, is single-use, and its key's
 * thumbprint is bound into the binding and the sealed answer and handed to the payload function.
 * A session is bound to the key of its first handshake.
 */
import express from 'express';
import session from 'express-session';
import { afterAll, describe, expect, it } from 'vitest';
import { openResponse } from '../../../../client/crypto.js';
import { getDpopKey, rotateDpopKey } from '../../../../client/dpop.js';
import tokenSec, { type ServerHandshakeOptions } from '../../../../src/index.js';
import { handshakeApp } from '../../../support/handshake.js';
import { TOKEN, defined, listen, signedHandshake } from '../../../support/helpers.js';
import { currentNonce, joseProof, proofKey } from '../../../support/proofs.js';

const SECRET = 'dpop-handshake-secret-0123';
const servers: Awaited<ReturnType<typeof listen>>[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

/** An app with express-session and one handshake route; records the jkt each payload call saw and every error. */
async function app(dpop: ServerHandshakeOptions<express.Request>['dpop'] = {}) {
  const seen: { jkt?: string | undefined }[] = [];
  const errors: { code?: string; reason?: string }[] = [];
  const { app: a } = handshakeApp(
    {
      secret: SECRET,
      terminate: true,
      dpop,
      payload: (_req, _res, { jkt }) => {
        seen.push({ jkt });
        return TOKEN;
      },
    },
    {
      session: true,
      errors: 'code+headers',
      onError: (err) => errors.push({ code: err.code, reason: (err as { reason?: string }).reason }),
    },
  );
  const server = await listen(a);
  servers.push(server);
  return { url: `${server.origin}/token`, seen, errors };
}

const post = (url: string, headers: Record<string, string>) => fetch(url, { method: 'POST', headers });
const codeOf = async (response: Response) => ({ status: response.status, code: ((await response.json()) as { code?: string }).code });

describe('required by default', () => {
  it('a handshake without a proof: 401 ERR_TOKENSEC_DPOP_MISSING_PROOF with a DPoP challenge', async () => {
    const { url } = await app();
    const { value } = await signedHandshake(url, SECRET);
    const response = await post(url, { 'x-tokensec-handshake': value });
    expect(response.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_dpop_proof", .*algs="ES256"$/);
    expect(await codeOf(response)).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_MISSING_PROOF' });
  });

  it('with a proof: the payload function gets the thumbprint, and the answer opens only with the thumbprint bound', async () => {
    const { url, seen } = await app();
    const { keys, target, headers, jkt } = await signedHandshake(url, SECRET);
    expect(jkt).toBe((await getDpopKey()).thumbprint);
    const response = await post(url, headers);
    expect(response.status).toBe(200);
    expect(seen).toEqual([{ jkt }]);
    const sealed = defined(response.headers.get('x-tokensec-handshake'), 'answer');
    expect(await openResponse(crypto.subtle, keys, SECRET, target, sealed)).toBe(TOKEN);
    await expect(openResponse(crypto.subtle, keys, SECRET, { ...target, jkt: undefined }, sealed)).rejects.toMatchObject({
      code: 'ERR_TOKENSEC_DECRYPTION_FAILED',
    });
  });
});

describe('refused proofs', () => {
  it('the same request twice: the second is 401 ERR_TOKENSEC_DPOP_REPLAYED_PROOF', async () => {
    const { url } = await app();
    const { headers } = await signedHandshake(url, SECRET);
    expect((await post(url, headers)).status).toBe(200);
    expect(await codeOf(await post(url, headers))).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_REPLAYED_PROOF' });
  });

  it('a proof that commits to another handshake header (a swapped ephemeral key): 401 ERR_TOKENSEC_DPOP_INVALID_PROOF', async () => {
    const { url, seen } = await app();
    const one = await signedHandshake(url, SECRET);
    const other = await signedHandshake(url, SECRET);
    expect(await codeOf(await post(url, { 'x-tokensec-handshake': other.value, dpop: defined(one.proof, 'proof') }))).toEqual({
      status: 401,
      code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF',
    });
    expect(seen).toEqual([]);
  });

  it('a proof made for another URL: 401 ERR_TOKENSEC_DPOP_INVALID_PROOF', async () => {
    const { url } = await app();
    const { headers } = await signedHandshake(url.replace('/token', '/elsewhere'), SECRET);
    expect(await codeOf(await post(url, headers))).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF' });
  });

  it('a binding made without the thumbprint while a proof is sent: 403 ERR_TOKENSEC_SECRET_MISMATCH (binding-mismatch)', async () => {
    const { url, errors } = await app({ required: false });
    const withProof = await signedHandshake(url, SECRET);
    // The same key and header, but the proof dropped: the binding names a thumbprint the server was not shown.
    expect(await codeOf(await post(url, { 'x-tokensec-handshake': withProof.value }))).toEqual({
      status: 403,
      code: 'ERR_TOKENSEC_SECRET_MISMATCH',
    });
    expect(errors.at(-1)).toEqual({ code: 'ERR_TOKENSEC_SECRET_MISMATCH', reason: 'binding-mismatch' });
  });

  it('a valid proof with the wrong secret is refused before its id is stored (no filling the replay store without the secret)', async () => {
    const keys: string[] = [];
    const { url } = await app({ replayStore: { add: (key) => (keys.push(key), true) } });
    const { headers } = await signedHandshake(url, 'not-the-secret-0123456789');
    expect(await codeOf(await post(url, headers))).toEqual({ status: 403, code: 'ERR_TOKENSEC_SECRET_MISMATCH' });
    expect(keys).toEqual([]);
    expect((await post(url, (await signedHandshake(url, SECRET)).headers)).status).toBe(200);
    expect(keys).toHaveLength(1);
  });

  it('an EdDSA proof is refused by default and accepted where the server allows it', async () => {
    const key = await proofKey('EdDSA');
    const send = async (url: string) => {
      const { value } = await signedHandshake(url, SECRET, { dpop: false });
      const tsh = Buffer.from(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(value))).toString('base64url');
      return post(url, { 'x-tokensec-handshake': value, dpop: await joseProof(key, { htm: 'POST', htu: url, tsh }) });
    };
    const strict = await app();
    expect(await codeOf(await send(strict.url))).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF' });
    const open = await app({ algorithms: ['ES256', 'EdDSA'], required: false });
    // Bound without a thumbprint, so it cannot open; what matters is that the server took the proof's key.
    const response = await send(open.url);
    expect(await codeOf(response)).toEqual({ status: 403, code: 'ERR_TOKENSEC_SECRET_MISMATCH' });
  });
});

describe('migration mode (dpop.required: false)', () => {
  it('a handshake without a proof works and the payload function gets no thumbprint; a bad proof is still refused', async () => {
    const { url, seen } = await app({ required: false });
    const plain = await signedHandshake(url, SECRET, { dpop: false });
    expect((await post(url, plain.headers)).status).toBe(200);
    expect(seen).toEqual([{ jkt: undefined }]);
    const other = await signedHandshake(url, SECRET);
    expect(await codeOf(await post(url, { 'x-tokensec-handshake': plain.value, dpop: defined(other.proof, 'proof') }))).toEqual({
      status: 401,
      code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF',
    });
  });
});

describe('a session is bound to the key of its first handshake', () => {
  /** A session cookie: the first handshake's Set-Cookie. */
  async function firstHandshake(url: string) {
    const { headers } = await signedHandshake(url, SECRET);
    const response = await post(url, headers);
    expect(response.status).toBe(200);
    return defined(response.headers.getSetCookie()[0], 'session cookie').split(';', 1)[0] ?? '';
  }

  it('express-session by default: the same key again is fine, another key is 403 ERR_TOKENSEC_DPOP_KEY_MISMATCH', async () => {
    const { url } = await app();
    const cookie = await firstHandshake(url);
    expect((await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie })).status).toBe(200);
    await rotateDpopKey();
    expect(await codeOf(await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie }))).toEqual({
      status: 403,
      code: 'ERR_TOKENSEC_DPOP_KEY_MISMATCH',
    });
    // A new session (no cookie) takes the new key.
    expect((await post(url, (await signedHandshake(url, SECRET)).headers)).status).toBe(200);
  });

  it('a bound session refuses a handshake without a proof, even in migration mode', async () => {
    const { url } = await app({ required: false });
    const cookie = await firstHandshake(url);
    expect(await codeOf(await post(url, { ...(await signedHandshake(url, SECRET, { dpop: false })).headers, cookie }))).toEqual({
      status: 403,
      code: 'ERR_TOKENSEC_DPOP_KEY_MISMATCH',
    });
  });

  it('login may bind the key itself: the thumbprint the page names at login, then only that key gets a token', async () => {
    const a = express();
    a.use(express.json());
    a.use(session({ secret: 'session secret for tests', resave: false, saveUninitialized: false }));
    // No proof is needed here: a later handshake must prove the key, so naming a key one does not hold only locks one out.
    a.post('/login', (req, res) => {
      (req.session as unknown as { tokenSecJkt: string }).tokenSecJkt = String(req.body.jkt);
      res.json({ ok: true });
    });
    a.post('/token', tokenSec.handshake({ secret: SECRET, payload: TOKEN, terminate: true }));
    a.use((err: { status?: number; code?: string }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(err.status ?? 500).json({ code: err.code });
    });
    const server = await listen(a);
    servers.push(server);
    const url = `${server.origin}/token`;
    const login = await fetch(`${server.origin}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jkt: (await getDpopKey()).thumbprint }),
    });
    const cookie = (login.headers.getSetCookie()[0] ?? '').split(';', 1)[0] ?? '';
    // The first handshake of this session comes with another key: refused, although nothing was bound by a handshake yet.
    await rotateDpopKey();
    expect(await codeOf(await post(url, { ...(await signedHandshake(url, SECRET)).headers, cookie }))).toEqual({
      status: 403,
      code: 'ERR_TOKENSEC_DPOP_KEY_MISMATCH',
    });
  });

  it('a store of the app own (get/set), and sessionKey: false for none', async () => {
    const bound = new Map<string, string>();
    const sessionKey = {
      get: (req: express.Request) => bound.get(String(req.headers['x-user'])),
      set: (req: express.Request, jkt: string) => void bound.set(String(req.headers['x-user']), jkt),
    };
    const { url } = await app({ sessionKey });
    expect((await post(url, { ...(await signedHandshake(url, SECRET)).headers, 'x-user': 'alice' })).status).toBe(200);
    expect(bound.get('alice')).toBe((await getDpopKey()).thumbprint);
    await rotateDpopKey();
    expect((await post(url, { ...(await signedHandshake(url, SECRET)).headers, 'x-user': 'alice' })).status).toBe(403);
    expect((await post(url, { ...(await signedHandshake(url, SECRET)).headers, 'x-user': 'bob' })).status).toBe(200);

    const unbound = await app({ sessionKey: false });
    const cookie = await post(unbound.url, (await signedHandshake(unbound.url, SECRET)).headers).then((r) => r.headers.getSetCookie());
    expect(cookie).toEqual([]); // nothing was written to a session
  });
});

describe('key integrity: an unbound session binds only a key made for it (claim tsb)', () => {
  it('unbound + no tsb: 409 ERR_TOKENSEC_DPOP_NEW_KEY_REQUIRED and nothing bound; with tsb it binds; once bound, tsb is not needed', async () => {
    const { url, seen } = await app();
    const planted = await signedHandshake(url, SECRET, { tsb: false });
    const refused = await post(url, planted.headers);
    expect(await codeOf(refused)).toEqual({ status: 409, code: 'ERR_TOKENSEC_DPOP_NEW_KEY_REQUIRED' });
    expect(refused.headers.getSetCookie()).toEqual([]); // no session saved, nothing bound
    expect(seen).toEqual([]);

    const first = await post(url, (await signedHandshake(url, SECRET, { tsb: true })).headers);
    expect(first.status).toBe(200);
    const cookie = defined(first.headers.getSetCookie()[0], 'session cookie').split(';', 1)[0] ?? '';
    expect((await post(url, { ...(await signedHandshake(url, SECRET, { tsb: false })).headers, cookie })).status).toBe(200);
    expect(seen).toEqual([{ jkt: (await getDpopKey()).thumbprint }, { jkt: (await getDpopKey()).thumbprint }]);
  });

  it('tsb must be the JSON true (not "true"); with sessionKey: false, or no express-session, nothing is bound and tsb is not needed', async () => {
    const { url } = await app();
    const { createDpopProof } = await import('../../../../client/dpop.js');
    const { createHash } = await import('node:crypto');
    const base = await signedHandshake(url, SECRET, { tsb: false });
    const tsh = createHash('sha256').update(base.value).digest('base64url');
    const stringTsb = await createDpopProof({ method: 'POST', url, claims: { tsh, tsb: 'true' }, nonce: currentNonce() });
    expect(await codeOf(await post(url, { ...base.headers, dpop: stringTsb }))).toEqual({
      status: 409,
      code: 'ERR_TOKENSEC_DPOP_NEW_KEY_REQUIRED',
    });

    const none = await app({ sessionKey: false });
    expect((await post(none.url, (await signedHandshake(none.url, SECRET, { tsb: false })).headers)).status).toBe(200);
    const { app: plain } = handshakeApp({ secret: SECRET, payload: TOKEN, terminate: true }, { errors: 'express' });
    const server = await listen(plain);
    servers.push(server);
    const plainUrl = `${server.origin}/token`;
    expect((await post(plainUrl, (await signedHandshake(plainUrl, SECRET, { tsb: false })).headers)).status).toBe(200);
  });
});

describe('server nonces on the handshake (dpop.nonce)', () => {
  const key = 'a nonce key shared by every process, 32+ bytes long';

  it('no nonce: 401 use_dpop_nonce with DPoP-Nonce, WWW-Authenticate and TokenSec-Error; the retry with it gets the token', async () => {
    const { url, seen } = await app({ nonce: { key } });
    const first = await post(url, (await signedHandshake(url, SECRET)).headers);
    const nonce = defined(first.headers.get('dpop-nonce'), 'DPoP-Nonce');
    expect(first.headers.get('www-authenticate')).toMatch(/^DPoP error="use_dpop_nonce", /);
    expect(first.headers.get('tokensec-error')).toBe('ERR_TOKENSEC_DPOP_NONCE_REQUIRED');
    expect(await codeOf(first)).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_NONCE_REQUIRED' });
    expect(seen).toEqual([]);
    const retry = await post(url, (await signedHandshake(url, SECRET, { nonce })).headers);
    expect(retry.status).toBe(200);
    expect(retry.headers.get('dpop-nonce')).toBe(nonce);
    expect(await post(url, (await signedHandshake(url, SECRET, { nonce: 'not-a-nonce' })).headers).then(codeOf)).toEqual({
      status: 401,
      code: 'ERR_TOKENSEC_DPOP_NONCE_REQUIRED',
    });
  });

  it("a nonce from another process with the same key (here: another app's handshake) is accepted", async () => {
    const one = await app({ nonce: { key } });
    const two = await app({ nonce: { key } });
    const nonce = defined((await post(one.url, (await signedHandshake(one.url, SECRET)).headers)).headers.get('dpop-nonce'), 'nonce');
    expect((await post(two.url, (await signedHandshake(two.url, SECRET, { nonce })).headers)).status).toBe(200);
  });
});

describe("TokenSec-Error on handshake refusals, through Express's default handler", () => {
  it('a 401 and a 403 carry their code in the header', async () => {
    const { app: a } = handshakeApp({ secret: SECRET, terminate: true, payload: TOKEN }, { errors: 'express' });
    const server = await listen(a);
    servers.push(server);
    const url = `${server.origin}/token`;
    const noProof = await post(url, { 'x-tokensec-handshake': (await signedHandshake(url, SECRET)).value });
    expect([noProof.status, noProof.headers.get('tokensec-error')]).toEqual([401, 'ERR_TOKENSEC_DPOP_MISSING_PROOF']);
    const wrongSecret = await post(url, (await signedHandshake(url, 'not-the-secret-0123456789')).headers);
    expect([wrongSecret.status, wrongSecret.headers.get('tokensec-error')]).toEqual([403, 'ERR_TOKENSEC_SECRET_MISMATCH']);
  });
});

describe('options are checked at startup', () => {
  it.each([
    [{ requird: true }, /unknown option "dpop.requird". Did you mean "dpop.required"\?/],
    [{ sessionKey: {} }, /"dpop.sessionKey" must be false or an object with get\(req\), set\(req, jkt\) and optionally bind\(req, jkt\)/],
    [{ url: 'https://app.example/token' }, /"dpop.url" must be a function/],
    [{ algorithms: ['RS256'] }, /"dpop.algorithms" must be a non-empty array/],
    [{ required: 'yes' }, /dpop.required/],
  ])('%j', (dpop, message) => {
    expect(() => tokenSec.handshake({ payload: TOKEN, dpop: dpop as never })).toThrow(message);
  });
});
