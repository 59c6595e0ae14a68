/**
 * DBSC across two server processes sharing one real redis-server: sessions in connect-redis, used
 * challenges through an AtomicStore over `SET key value NX EX ttl GET`. A login on one process
 * registers on the other, each refreshes with the other's challenge, and a challenge is accepted
 * once across both, even when the same proof reaches both at the same moment.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { challengeOf, Client, dbscProof, ecTestKey, registrationProof, registrationRequest } from '../support/dbsc.js';
import { startRedis, type RedisServer } from '../support/redis.js';

const REGISTRATION = '/tokensec/dbsc/registration';
const REFRESH = '/tokensec/dbsc/refresh';

describe('DBSC on two processes with connect-redis', () => {
  let redis: RedisServer;
  const children: ChildProcess[] = [];
  let origins: [string, string];

  async function appProcess(): Promise<string> {
    const child = spawn(process.execPath, [new URL('./fixtures/dbsc-server.mjs', import.meta.url).pathname], {
      env: { ...process.env, REDIS_URL: redis.url, DBSC_SECRET: 'two-process DBSC secret, 32 bytes or more' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    return `http://127.0.0.1:${line.toString().trim()}`;
  }

  beforeAll(async () => {
    redis = await startRedis();
    origins = [await appProcess(), await appProcess()];
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(children.map((child) => (child.exitCode === null ? once(child, 'exit') : undefined)));
    await redis?.stop();
  });

  /** One browser whose requests alternate between the processes (a load balancer). */
  const on = (client: Client, origin: string) => Object.assign(Object.create(client) as Client, { origin });

  it('login, registration and refreshes on alternate processes; a challenge is used once across both', async () => {
    const [a, b] = origins;
    const browser = new Client(a);
    const login = await browser.send('POST', '/login');
    const { challenge } = registrationRequest(login.headers.get('secure-session-registration'));
    const key = ecTestKey();
    const proof = registrationProof(key, { jti: challenge });
    const registered = await on(browser, b).send('POST', REGISTRATION, { 'secure-session-response': proof });
    expect(registered.status).toBe(200);
    const { id, challenge: next } = challengeOf(registered);
    // The registration replayed on the first process: this session already has a key.
    expect((await on(browser, a).send('POST', REGISTRATION, { 'secure-session-response': proof })).status).toBe(409);
    expect((await on(browser, a).send('GET', '/account')).status).toBe(200);

    const refresh = dbscProof(key, { jti: next });
    const first = await on(browser, a).send('POST', REFRESH, { 'sec-secure-session-id': id, 'secure-session-response': refresh });
    expect(first.status).toBe(200);
    const again = await on(browser, b).send('POST', REFRESH, { 'sec-secure-session-id': id, 'secure-session-response': refresh });
    expect([again.status, again.headers.get('tokensec-error')]).toEqual([403, 'ERR_TOKENSEC_DBSC_STALE_CHALLENGE']);

    // The same fresh proof sent to both processes at once, several times: exactly one is accepted each time.
    let jti = challengeOf(first).challenge;
    for (let round = 0; round < 5; round++) {
      const racing = dbscProof(key, { jti });
      const answers = await Promise.all(
        origins.map((origin) =>
          fetch(origin + REFRESH, {
            method: 'POST',
            headers: { cookie: browser.cookie, 'sec-secure-session-id': id, 'secure-session-response': racing },
          }),
        ),
      );
      expect(answers.map((r) => r.status).sort()).toEqual([200, 403]);
      jti = challengeOf(defined200(answers)).challenge;
    }
  });
});

function defined200(answers: Response[]): Response {
  const ok = answers.find((r) => r.status === 200);
  if (!ok) throw new Error('no 200');
  return ok;
}
