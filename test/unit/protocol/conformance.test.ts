/**
 * The reference follows docs/PROTOCOL.md on the points where an implementation could go either way: the
 * challenge on two DPoP header lines, the URL `htu` is compared with for an absolute-form target,
 * empty headers, a header sent twice, an empty payload, the order of the handshake's and of an API
 * call's checks (which code wins), the Authorization syntax (case-insensitive scheme, token68),
 * EdDSA and Ed25519 as one algorithm, and the client's refusals (an unpaired surrogate in the
 * secret, a P-256 `B` not starting with 04).
 */
import { connect } from 'node:net';
import express from 'express';
import { SignJWT, jwtVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { createKeys, openResponse, requestHeader } from '../../../client/crypto.js';
import { getDpopKey } from '../../../client/dpop.js';
import { handshake as clientHandshake } from '../../../client/index.js';
import tokenSec, { type DpopOptions, type ServerHandshakeOptions } from '../../../src/index.js';
import { formatResponse } from '../../../src/protocol/wire.js';
import { handshakeApp as buildHandshakeApp } from '../../support/handshake.js';
import { TOKEN, defined, listen, signedHandshake } from '../../support/helpers.js';
import { currentNonce, joseProof, proofKey, sha256, signedProof } from '../../support/proofs.js';

const SECRET = 'protocol-3.1-secret-0123';
const servers: Awaited<ReturnType<typeof listen>>[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

interface Seen {
  errors: { code?: string; status?: number }[];
}

/** Renders errors as the spec's refusals: status, JSON code, err.headers. */
function render(a: express.Express, seen: Seen): void {
  a.use(
    (
      err: { status?: number; code?: string; headers?: Record<string, string> },
      _req: express.Request,
      res: express.Response,
      _next: express.NextFunction,
    ) => {
      seen.errors.push({ code: err.code, status: err.status });
      res
        .set(err.headers ?? {})
        .status(err.status ?? 500)
        .json({ code: err.code });
    },
  );
}

/** A handshake route (no session to bind unless `dpop.sessionKey` says so). */
async function handshakeApp(options: Partial<ServerHandshakeOptions<express.Request>> = {}) {
  const seen: Seen = { errors: [] };
  const { app: a } = buildHandshakeApp(
    { secret: SECRET, terminate: true, payload: TOKEN, ...options },
    { errors: 'code+headers', onError: (err) => seen.errors.push({ code: err.code, status: err.status }) },
  );
  const server = await listen(a);
  servers.push(server);
  return { origin: server.origin, url: `${server.origin}/token`, seen };
}

/** One raw HTTP/1.1 exchange: what fetch cannot send (two lines of one field, an absolute-form target). */
function raw(origin: string, head: string): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const { port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => socket.write(`${head}Connection: close\r\n\r\n`));
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => (data += chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      const [top = '', body = ''] = data.split('\r\n\r\n');
      const [statusLine = '', ...lines] = top.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const at = line.indexOf(':');
        headers[line.slice(0, at).toLowerCase()] = line.slice(at + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body });
    });
  });
}

const post = (url: string, headers: Record<string, string>) => fetch(url, { method: 'POST', headers });
const codeOf = async (response: Response) => ({ status: response.status, code: ((await response.json()) as { code?: string }).code });

describe('handshake', () => {
  it('two DPoP header lines: 401 ERR_TOKENSEC_DPOP_INVALID_PROOF with its WWW-Authenticate challenge', async () => {
    const { origin, url, seen } = await handshakeApp();
    const { value, proof } = await signedHandshake(url, SECRET);
    const { port } = new URL(origin);
    const response = await raw(
      origin,
      `POST /token HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nx-tokensec-handshake: ${value}\r\nDPoP: ${proof}\r\nDPoP: ${proof}\r\nContent-Length: 0\r\n`,
    );
    expect(response.status).toBe(401);
    expect(response.headers['www-authenticate']).toMatch(
      /^DPoP error="invalid_dpop_proof", error_description=".*more than one DPoP header.*", algs="ES256"$/,
    );
    expect(seen.errors.at(-1)?.code).toBe('ERR_TOKENSEC_DPOP_INVALID_PROOF');
  });

  it('an absolute-form target with a proof: htu is the target URL (RFC 9112 §3.3), even when Host names another authority', async () => {
    const { origin } = await handshakeApp();
    const { port } = new URL(origin);
    for (const authority of [`127.0.0.1:${port}`, 'app.example']) {
      const url = `http://${authority}/token`;
      const { keys, target, value, proof } = await signedHandshake(url, SECRET);
      const response = await raw(
        origin,
        `POST ${url} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nx-tokensec-handshake: ${value}\r\nDPoP: ${proof}\r\nContent-Length: 0\r\n`,
      );
      expect(response.status).toBe(200);
      expect(await openResponse(crypto.subtle, keys, SECRET, target, defined(response.headers['x-tokensec-handshake'], 'answer'))).toBe(
        TOKEN,
      );
    }
    // A proof for the Host's URL does not match an absolute-form target naming another authority.
    const { value, proof } = await signedHandshake(`http://127.0.0.1:${port}/token`, SECRET);
    const refused = await raw(
      origin,
      `POST http://app.example/token HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nx-tokensec-handshake: ${value}\r\nDPoP: ${proof}\r\nContent-Length: 0\r\n`,
    );
    expect(refused.status).toBe(401);
    expect(refused.headers['www-authenticate']).toMatch(/htu/);
  });

  it('a handshake header present but empty: 400 ERR_TOKENSEC_MALFORMED_HEADER', async () => {
    const { origin, seen } = await handshakeApp();
    const response = await raw(origin, `POST /token HTTP/1.1\r\nHost: localhost\r\nx-tokensec-handshake:\r\nContent-Length: 0\r\n`);
    expect(response.status).toBe(400);
    expect(seen.errors.at(-1)?.code).toBe('ERR_TOKENSEC_MALFORMED_HEADER');
  });

  it('a DPoP header present but empty: 401 ERR_TOKENSEC_DPOP_MISSING_PROOF, in migration mode too', async () => {
    for (const required of [true, false]) {
      const { url } = await handshakeApp({ dpop: { required } });
      const { value } = await signedHandshake(url, SECRET, { dpop: false });
      const response = await post(url, { 'x-tokensec-handshake': value, dpop: '' });
      expect(response.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_dpop_proof"/);
      expect(await codeOf(response)).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_MISSING_PROOF' });
    }
  });

  it('the handshake header sent twice: P-256 joined is 280 characters (431), X25519 joined 196 with 7 fields (400)', async () => {
    const { origin, url, seen } = await handshakeApp();
    for (const [algorithm, status, code, length] of [
      ['p256', 431, 'ERR_TOKENSEC_HEADER_TOO_LARGE', 280],
      ['x25519', 400, 'ERR_TOKENSEC_MALFORMED_HEADER', 196],
    ] as const) {
      const { value, proof } = await signedHandshake(url, SECRET, { algorithm });
      expect(`${value}, ${value}`).toHaveLength(length);
      const response = await raw(
        origin,
        `POST /token HTTP/1.1\r\nHost: localhost\r\nx-tokensec-handshake: ${value}\r\nx-tokensec-handshake: ${value}\r\nDPoP: ${proof}\r\nContent-Length: 0\r\n`,
      );
      expect(response.status).toBe(status);
      expect(seen.errors.at(-1)?.code).toBe(code);
    }
  });

  it('an empty payload: 200 without the handshake header, no-store and Vary; the proof is used up', async () => {
    const { url } = await handshakeApp({ payload: () => '' });
    const { headers } = await signedHandshake(url, SECRET);
    const response = await post(url, headers);
    expect(response.status).toBe(200);
    expect(response.headers.get('x-tokensec-handshake')).toBeNull();
    expect(response.headers.get('cache-control')).toMatch(/no-store/);
    expect(response.headers.get('vary')).toMatch(/x-tokensec-handshake/);
    expect(await codeOf(await post(url, headers))).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_REPLAYED_PROOF' });
  });

  it('which code wins: proof (401) before the MAC (403), the MAC before the session key (403), the session key before the replay check', async () => {
    const boundElsewhere = { get: () => 'bound-to-another-key-000000000000000000000', set: () => undefined };
    const { url } = await handshakeApp({ dpop: { sessionKey: boundElsewhere } });
    // A bad proof and a wrong secret: the proof decides.
    const wrongSecret = await signedHandshake(url.replace('/token', '/elsewhere'), 'not-the-secret-0123456789');
    expect(await codeOf(await post(url, wrongSecret.headers))).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF' });
    // A key the session refuses: 403, and its proof id is not recorded, so the same proof gets 403
    // again, never "replayed" (a refused key takes no room in the replay store).
    const used = await signedHandshake(url, SECRET);
    expect(await codeOf(await post(url, used.headers))).toEqual({ status: 403, code: 'ERR_TOKENSEC_DPOP_KEY_MISMATCH' });
    expect(await codeOf(await post(url, used.headers))).toEqual({ status: 403, code: 'ERR_TOKENSEC_DPOP_KEY_MISMATCH' });
    // A used proof under the wrong secret: the MAC comes before the replay check.
    const other = await signedHandshake(url, 'not-the-secret-0123456789');
    expect(await codeOf(await post(url, other.headers))).toEqual({ status: 403, code: 'ERR_TOKENSEC_SECRET_MISMATCH' });
    expect(await codeOf(await post(url, other.headers))).toEqual({ status: 403, code: 'ERR_TOKENSEC_SECRET_MISMATCH' });
  });
});

describe('API calls', () => {
  const signingKey = new TextEncoder().encode('a 32-byte HMAC key for the test!');
  const mint = (jkt: string | undefined) =>
    new SignJWT({ sub: 'alice', ...(jkt ? { cnf: { jkt } } : {}) })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('5m')
      .sign(signingKey);
  const verifyToken = async (token: string) => (await jwtVerify(token, signingKey)).payload;

  async function apiApp(options: Partial<DpopOptions> = {}) {
    const a = express();
    const seen: Seen = { errors: [] };
    a.all('/api/me', tokenSec.dpop({ verifyToken, ...options }), (_req, res) => res.json({ ok: true }));
    render(a, seen);
    const server = await listen(a);
    servers.push(server);
    return { origin: server.origin, url: `${server.origin}/api/me`, seen };
  }

  const call = (url: string, authorization: string | undefined, proof?: string) =>
    fetch(url, { headers: { ...(authorization !== undefined ? { authorization } : {}), ...(proof !== undefined ? { dpop: proof } : {}) } });

  it('the DPoP scheme is case-insensitive and may be followed by several spaces (RFC 9110 §11.1, §11.4)', async () => {
    const { url } = await apiApp();
    const key = await proofKey();
    const token = await mint(String(await import('jose').then((j) => j.calculateJwkThumbprint(key.jwk))));
    for (const scheme of ['DPoP ', 'dpop ', 'DPOP ', 'DPoP   ']) {
      const proof = await joseProof(key, { htm: 'GET', htu: url, ath: await sha256(token) });
      expect((await call(url, `${scheme}${token}`, proof)).status).toBe(200);
    }
  });

  it('no credentials (absent or empty Authorization): a challenge without error; not a token68 or another scheme: invalid_token', async () => {
    const { origin, url, seen } = await apiApp();
    for (const authorization of [undefined, '']) {
      const response = await call(url, authorization);
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('DPoP algs="ES256"');
    }
    for (const authorization of ['Bearer abc', 'DPoP', 'DPoP a b', 'DPoP a,b', 'DPoP a=b', 'DPoPabc']) {
      const response = await call(url, authorization);
      expect(response.headers.get('www-authenticate'), authorization).toMatch(/^DPoP error="invalid_token"/);
      expect(await codeOf(response)).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_INVALID_TOKEN' });
    }
    // A non-ASCII character (sent raw: fetch would refuse it).
    const response = await raw(origin, `GET /api/me HTTP/1.1\r\nHost: localhost\r\nAuthorization: DPoP t\xf6ken\r\n`);
    expect(response.status).toBe(401);
    expect(response.headers['www-authenticate']).toMatch(/^DPoP error="invalid_token"/);
    expect(seen.errors.at(-1)?.code).toBe('ERR_TOKENSEC_DPOP_INVALID_TOKEN');
  });

  it('two Authorization lines: 401 ERR_TOKENSEC_DPOP_INVALID_TOKEN (Node would keep the first)', async () => {
    const { origin, url, seen } = await apiApp();
    const key = await proofKey();
    const token = await mint(String(await import('jose').then((j) => j.calculateJwkThumbprint(key.jwk))));
    const proof = await joseProof(key, { htm: 'GET', htu: url, ath: await sha256(token) });
    const { port } = new URL(origin);
    const twice = await raw(
      origin,
      `GET /api/me HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: DPoP ${token}\r\nAuthorization: DPoP other\r\nDPoP: ${proof}\r\n`,
    );
    expect(twice.status).toBe(401);
    expect(twice.headers['www-authenticate']).toMatch(
      /^DPoP error="invalid_token", error_description="More than one Authorization header\."/,
    );
    expect(seen.errors.at(-1)?.code).toBe('ERR_TOKENSEC_DPOP_INVALID_TOKEN');
    // The same proof with one line: accepted (the refusal recorded nothing).
    expect((await call(url, `DPoP ${token}`, proof)).status).toBe(200);
  });

  it('a lower-case method is another method (RFC 9110 §9.1): Node refuses it with 400 before any middleware runs', async () => {
    const { origin } = await apiApp();
    const { port } = new URL(origin);
    expect((await raw(origin, `get /api/me HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`)).status).toBe(400);
  });

  it('the order: token syntax, proof (ath included), nonce, the token, cnf.jkt, replay', async () => {
    const { url } = await apiApp({ nonce: { key: 'a nonce key of at least 32 bytes.....' } });
    const key = await proofKey();
    const { calculateJwkThumbprint } = await import('jose');
    const jkt = await calculateJwkThumbprint(key.jwk);
    const forged = `${await mint(jkt)}x`;
    const proofFor = async (token: string, extra: Record<string, unknown> = {}) =>
      joseProof(key, { htm: 'GET', htu: url, ath: await sha256(token), ...extra });
    // No proof, with a forged token: the proof decides.
    expect(await codeOf(await call(url, `DPoP ${forged}`))).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_MISSING_PROOF' });
    // ath of another token, with a forged token: the proof decides.
    expect(await codeOf(await call(url, `DPoP ${forged}`, await proofFor('another token')))).toEqual({
      status: 401,
      code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF',
    });
    // No nonce, with a forged token: the nonce decides, and names one to use.
    const noNonce = await call(url, `DPoP ${forged}`, await proofFor(forged));
    expect(noNonce.headers.get('www-authenticate')).toMatch(/^DPoP error="use_dpop_nonce"/);
    const nonce = defined(noNonce.headers.get('dpop-nonce'), 'DPoP-Nonce');
    expect(await codeOf(noNonce)).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_NONCE_REQUIRED' });
    // With the nonce, the forged token is refused.
    const refused = await call(url, `DPoP ${forged}`, await proofFor(forged, { nonce }));
    expect(refused.headers.get('www-authenticate')).toMatch(/^DPoP error="invalid_token"/);
    expect(await codeOf(refused)).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_INVALID_TOKEN' });
    // A valid token bound to another key: cnf.jkt refuses it, every time (its proof never reaches the replay store).
    const boundElsewhere = await mint('bound-to-another-key-000000000000000000000');
    const proof = await proofFor(boundElsewhere, { nonce });
    for (let i = 0; i < 2; i++) {
      expect(await codeOf(await call(url, `DPoP ${boundElsewhere}`, proof))).toEqual({
        status: 401,
        code: 'ERR_TOKENSEC_DPOP_INVALID_TOKEN',
      });
    }
    // The right token: accepted with a fresh nonce, then the same proof is a replay.
    const token = await mint(jkt);
    const good = await proofFor(token, { nonce });
    const ok = await call(url, `DPoP ${token}`, good);
    expect(ok.status).toBe(200);
    expect(ok.headers.get('dpop-nonce')).toBeTruthy();
    expect(await codeOf(await call(url, `DPoP ${token}`, good))).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_REPLAYED_PROOF' });
  });

  it('an absolute-form target with a proof for that URL is accepted', async () => {
    const { origin, url, seen } = await apiApp();
    const key = await proofKey();
    const { calculateJwkThumbprint } = await import('jose');
    const token = await mint(await calculateJwkThumbprint(key.jwk));
    const proof = await joseProof(key, { htm: 'GET', htu: `${url}`, ath: await sha256(token) });
    const response = await raw(origin, `GET ${url}?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: DPoP ${token}\r\nDPoP: ${proof}\r\n`);
    expect(response.status, JSON.stringify({ response, seen })).toBe(200);
  });

  it('EdDSA and Ed25519 are one algorithm: a server listing either accepts both, and names both in algs', async () => {
    const key = await proofKey('EdDSA');
    const { calculateJwkThumbprint } = await import('jose');
    const token = await mint(await calculateJwkThumbprint(key.jwk));
    for (const listed of ['EdDSA', 'Ed25519'] as const) {
      const { url } = await apiApp({ algorithms: ['ES256', listed] });
      const challenge = defined((await call(url, undefined)).headers.get('www-authenticate'), 'challenge');
      expect(/^DPoP algs="(.*)"$/.exec(challenge)?.[1]?.split(' ').sort()).toEqual(['ES256', 'Ed25519', 'EdDSA']);
      for (const alg of ['EdDSA', 'Ed25519']) {
        const claims = {
          jti: crypto.randomUUID(),
          htm: 'GET',
          htu: url,
          iat: Math.floor(Date.now() / 1000),
          ath: await sha256(token),
          nonce: currentNonce(),
        };
        const proof = await signedProof(key, { typ: 'dpop+jwt', alg, jwk: key.jwk }, claims);
        expect((await call(url, `DPoP ${token}`, proof)).status, `${listed} lists, ${alg} sent`).toBe(200);
      }
    }
    // A server that lists neither refuses both.
    const { url } = await apiApp();
    const claims = { jti: crypto.randomUUID(), htm: 'GET', htu: url, iat: Math.floor(Date.now() / 1000), ath: await sha256(token) };
    const proof = await signedProof(key, { typ: 'dpop+jwt', alg: 'Ed25519', jwk: key.jwk }, claims);
    expect(await codeOf(await call(url, `DPoP ${token}`, proof))).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF' });
  });

  it('jwk members other than the key are ignored (kid, use, alg, key_ops, ext); d is refused', async () => {
    const { url } = await apiApp();
    const key = await proofKey();
    const { calculateJwkThumbprint } = await import('jose');
    const token = await mint(await calculateJwkThumbprint(key.jwk));
    const extra = { ...key.jwk, kid: 'k1', use: 'sig', alg: 'ES256', key_ops: ['verify'], ext: true };
    const proof = await joseProof(key, { htm: 'GET', htu: url, ath: await sha256(token) }, { jwk: extra });
    expect((await call(url, `DPoP ${token}`, proof)).status).toBe(200);
    const withD = await joseProof(key, { htm: 'GET', htu: url, ath: await sha256(token) }, { jwk: { ...key.jwk, d: key.jwk.x } });
    expect(await codeOf(await call(url, `DPoP ${token}`, withD))).toEqual({ status: 401, code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF' });
  });
});

describe('client', () => {
  it('refuses a secret with an unpaired surrogate before encoding it (no U+FFFD), and sends nothing', async () => {
    const keys = await createKeys(crypto.subtle, 'x25519');
    const target = { header: 'x-tokensec-handshake', method: 'POST', path: '/token' };
    for (const secret of ['secret-\ud800-0123456789', 'secret-\udc00-0123456789', '\ud83d-secret-0123456789']) {
      await expect(requestHeader(crypto.subtle, keys, secret, target)).rejects.toMatchObject({ code: 'ERR_TOKENSEC_INVALID_OPTIONS' });
    }
    // A paired surrogate is a character like any other.
    await expect(requestHeader(crypto.subtle, keys, 'secret-\ud83d\ude00-0123456789', target)).resolves.toMatch(/^v3\.x25519\./);
    // The whole handshake: refused before any request.
    let requests = 0;
    const a = express();
    a.use((_req, res) => {
      requests++;
      res.status(500).end();
    });
    const server = await listen(a);
    servers.push(server);
    await expect(clientHandshake({ uri: `${server.origin}/token`, secret: 'secret-\ud800-0123456789', dpop: false })).rejects.toMatchObject(
      {
        code: 'ERR_TOKENSEC_INVALID_OPTIONS',
      },
    );
    expect(requests).toBe(0);
  });

  it('refuses a P-256 B that does not start with 04 as a malformed response', async () => {
    const keys = await createKeys(crypto.subtle, 'p256');
    const target = { header: 'x-tokensec-handshake', method: 'POST', path: '/token' };
    const b = new Uint8Array(65).fill(1);
    for (const [first, code] of [
      [5, 'ERR_TOKENSEC_MALFORMED_RESPONSE'],
      [2, 'ERR_TOKENSEC_MALFORMED_RESPONSE'],
      [4, 'ERR_TOKENSEC_DECRYPTION_FAILED'],
    ] as const) {
      b[0] = first;
      const value = formatResponse({ publicKey: b, iv: new Uint8Array(12), ciphertext: new Uint8Array(32) });
      await expect(openResponse(crypto.subtle, keys, SECRET, target, value)).rejects.toMatchObject({ code });
    }
  });

  it('the thumbprint the client binds is its key’s RFC 7638 thumbprint', async () => {
    const { calculateJwkThumbprint } = await import('jose');
    const key = await getDpopKey();
    expect(key.thumbprint).toBe(await calculateJwkThumbprint(key.jwk));
  });
});
