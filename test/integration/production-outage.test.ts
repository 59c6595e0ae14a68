/**
 * The production setup of docs/PRODUCTION.md (test/integration/fixtures/production-server.mjs):
 * three app processes behind a real nginx (TLS, round robin), sharing one real redis-server for
 * sessions (connect-redis through tokenSec.boundedSessionStore), replay ids, bindings and one
 * nonce key. Redis is stopped, restarted (empty) and paused (`CLIENT PAUSE 10000 ALL`) mid-run: every
 * request during an outage is answered 503 with a TokenSec code well within a bound (5 s, for a
 * configured 1 s), none hangs and none is a bare 500; once Redis is back, requests succeed again
 * by themselves. 3.1.0 had no bounded session store: express-session's store errors went to
 * Express's default handler (a bare 500), and a paused Redis held requests for the whole pause.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import net from 'node:net';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDpopProof, getDpopKey } from '../../client/dpop.js';
import { PUBLIC_MESSAGES } from '../../src/server/error-handler.js';
import { defined, signedHandshake } from '../support/helpers.js';
import { freePort } from '../support/net.js';
import { startNginx, type NginxProxy } from '../support/nginx.js';
import { markStoreInUse, startRedis, type RedisServer } from '../support/redis.js';

const NAME = 'app.tokensec.test';
const PROCESSES = 3;
/** Generous against the configured 1 s (storeTimeout, the session store's timeout): never tight timing. */
const BOUND_MS = 5000;
const env = {
  SESSION_SECRET: randomBytes(32).toString('base64url'),
  DPOP_NONCE_KEY: randomBytes(32).toString('base64url'),
  TOKEN_KEY: randomBytes(32).toString('base64url'),
};
let redis: RedisServer;
let nginx: NginxProxy;
const children: ChildProcess[] = [];

beforeAll(async () => {
  redis = await startRedis();
  await markStoreInUse(redis, 'myapp:tokensec:');
  const ports = await Promise.all(Array.from({ length: PROCESSES }, () => freePort()));
  // Round robin over the three processes; a 503 is an answer, passed on as it is.
  nginx = await startNginx({
    serverName: NAME,
    upstreamPort: ports[0]!,
    http: `upstream tokensec_apps { ${ports.map((port) => `server 127.0.0.1:${port};`).join(' ')} }`,
    extra: `location ~ ^/ {
      proxy_pass http://tokensec_apps;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }`,
  });
  await Promise.all(
    ports.map(async (port) => {
      const child = spawn(process.execPath, [new URL('./fixtures/production-server.mjs', import.meta.url).pathname], {
        env: { ...process.env, ...env, NODE_ENV: 'production', REDIS_URL: redis.url, ORIGIN: nginx.origin, PORT: String(port) },
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      children.push(child);
      await once(defined(child.stdout, 'stdout'), 'data');
    }),
  );
}, 60_000);
afterAll(async () => {
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(children.map((child) => (child.exitCode === null ? once(child, 'exit') : undefined)));
  await nginx?.stop();
  await redis?.stop();
});

interface Answer {
  status: number;
  code: string | undefined;
  ms: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request through nginx, as a browser addresses it (self-signed certificate); gives up after 15 s rather than hang the test. */
function request(method: string, path: string, headers: Record<string, string>): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const sent = https.request(
      { host: '127.0.0.1', port: nginx.port, servername: NAME, rejectUnauthorized: false, method, path, headers: { ...headers, host: `${NAME}:${nginx.port}` }, timeout: 15_000 }, // prettier-ignore
      (response) => {
        let body = '';
        response.on('data', (chunk) => (body += chunk));
        response.on('end', () => {
          const code = response.headers['tokensec-error'];
          resolve({ status: response.statusCode ?? 0, code: typeof code === 'string' ? code : undefined, ms: performance.now() - started, headers: response.headers, body }); // prettier-ignore
        });
      },
    );
    sent.on('timeout', () => sent.destroy(new Error(`${method} ${path} hung for 15 s`)));
    sent.on('error', reject);
    sent.end();
  });
}

/** A browser: a cookie jar, a CSRF token, the last DPoP nonce it was given. */
class Browser {
  cookie = '';
  csrfToken = '';
  nonce: string | undefined;

  async send(method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
    const answer = await request(method, path, {
      ...headers,
      ...(this.cookie ? { cookie: this.cookie } : {}),
      ...(this.csrfToken ? { 'x-csrf-token': this.csrfToken } : {}),
    });
    const set = answer.headers['set-cookie']?.[0];
    if (set) this.cookie = set.split(';', 1)[0] ?? '';
    const nonce = answer.headers['dpop-nonce'];
    if (typeof nonce === 'string') this.nonce = nonce;
    return answer;
  }

  csrf = async () => {
    const answer = await this.send('GET', '/csrf');
    if (answer.status === 200) this.csrfToken = (JSON.parse(answer.body) as { csrfToken: string }).csrfToken;
    return answer;
  };

  login = () => this.send('POST', '/login');

  /** A handshake with the current nonce, retried once when the server asks for one (as the client does). */
  handshake = async () => {
    const go = async () =>
      this.send('POST', '/token', (await signedHandshake(`${nginx.origin}/token`, this.csrfToken, { nonce: this.nonce })).headers);
    const first = await go();
    return first.code === 'ERR_TOKENSEC_DPOP_NONCE_REQUIRED' ? go() : first;
  };

  /** An API call with a fresh proof and a token for this key; with or without the session cookie. */
  api = async (withCookie = true) => {
    const key = await getDpopKey();
    const token = await new SignJWT({ sub: 'alice', cnf: { jkt: key.thumbprint } })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(env.TOKEN_KEY));
    const go = async () => {
      const dpop = await createDpopProof({ method: 'GET', url: `${nginx.origin}/api/me`, key, accessToken: token, nonce: this.nonce });
      const headers = { authorization: `DPoP ${token}`, dpop };
      return withCookie ? this.send('GET', '/api/me', headers) : request('GET', '/api/me', headers);
    };
    const first = await go();
    if (typeof first.headers['dpop-nonce'] === 'string') this.nonce = first.headers['dpop-nonce'];
    return first.code === 'ERR_TOKENSEC_DPOP_NONCE_REQUIRED' ? go() : first;
  };
}

/** The whole flow, each step answered 200: a CSRF token, login, a handshake, API calls with and without the cookie. */
async function fullFlow(): Promise<Browser> {
  const browser = new Browser();
  for (const step of [browser.csrf, browser.login, browser.handshake, () => browser.api(true), () => browser.api(false)]) {
    const answer = await step();
    expect([answer.status, answer.code]).toEqual([200, undefined]);
  }
  return browser;
}

/** Every kind of request, sent at once, three times (nginx spreads them over the processes). */
async function everyKind(browser: Browser): Promise<Answer[]> {
  const kinds = [
    () => new Browser().csrf(), // a new visitor: a new session to save
    browser.csrf, // a session to read
    browser.login,
    browser.handshake,
    () => browser.api(true),
    () => browser.api(false), // an API client without a session: TokenSec's replay store only
  ];
  return Promise.all(Array.from({ length: PROCESSES }, () => kinds.map((kind) => kind())).flat());
}

const UNAVAILABLE = ['ERR_TOKENSEC_SESSION_STORE_UNAVAILABLE', 'ERR_TOKENSEC_STORE_UNAVAILABLE'];

/** Each answer a 503 with one of the codes, JSON with that code, within the bound. */
function expectFailedFast(answers: Answer[]): void {
  for (const answer of answers) {
    expect(answer.status, answer.body).toBe(503);
    expect(UNAVAILABLE).toContain(answer.code);
    // The code and its one-line fix (errorHandler's PUBLIC_MESSAGES), never the error's own message.
    expect(JSON.parse(answer.body)).toEqual({ code: answer.code, message: PUBLIC_MESSAGES[answer.code as keyof typeof PUBLIC_MESSAGES] });
    expect(answer.ms).toBeLessThan(BOUND_MS);
  }
}

/** Polls the whole flow until it passes (Redis back), at most `attempts` times; every failed attempt must be a 503 with a code. */
async function recovered(attempts = 100): Promise<Browser> {
  const during = [...UNAVAILABLE, 'ERR_TOKENSEC_STORE_RESTARTED'];
  for (let attempt = 1; ; attempt++) {
    const browser = new Browser();
    const steps = [browser.csrf, browser.login, browser.handshake, () => browser.api(false)];
    let failed: Answer | undefined;
    for (const step of steps) {
      const answer = await step();
      if (answer.status !== 200) {
        failed = answer;
        break;
      }
    }
    if (!failed) return browser;
    expect(failed.status, failed.body).toBe(503);
    expect(during).toContain(failed.code);
    if (attempt >= attempts) throw new Error(`not recovered after ${attempts} attempts: ${failed.code}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Sends one command to redis-server on a connection of its own (the test's, not the apps'). */
function redisCommand(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(redis.port, '127.0.0.1', () =>
      socket.write(`*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`),
    );
    socket.once('data', (data) => {
      socket.end();
      resolve(data.toString());
    });
    socket.once('error', reject);
  });
}

describe('the production setup (3 processes, nginx, one Redis) during Redis outages', () => {
  it('stopped: every request 503 with a code within the bound; restarted (empty): the flow works again by itself', async () => {
    const browser = await fullFlow();
    await redis.stop();
    expectFailedFast(await everyKind(browser));
    expectFailedFast(await everyKind(browser)); // and again, once the clients know the connection is gone

    redis = await startRedis(redis.port);
    // Back empty (no persistence here): old sessions are gone, proofs dated before the store noticed are refused for clockSkew (5 s).
    const after = await recovered();
    expect([(await after.api(true)).status, (await after.handshake()).status]).toEqual([200, 200]);
  }, 120_000);

  it('paused (CLIENT PAUSE ALL): every request 503 with a code within the bound, none waits for the pause to end; then the flow works again', async () => {
    const browser = await fullFlow();
    // A pause cannot be lifted early (CLIENT UNPAUSE waits too, on any connection): 10 s, far more than the requests take.
    expect(await redisCommand('CLIENT', 'PAUSE', '10000', 'ALL')).toBe('+OK\r\n');
    expectFailedFast(await everyKind(browser));
    await recovered();
    // The browser from before the pause carries on: its session survived.
    expect((await browser.api(true)).status).toBe(200);
  }, 120_000);
});
