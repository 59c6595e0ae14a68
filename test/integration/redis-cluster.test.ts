/**
 * TokenSec on a three-master Redis Cluster behind nginx, set up as docs/REDIS-CLUSTER.md shows it:
 * three app processes (sessions in express-session on connect-redis over a node-redis cluster
 * client; TokenSec's bindings and replay ids in redisStore() over the same client at A and B, over
 * an ioredis Cluster at C), one nonce key, nginx taking them in turn. The whole flow runs through
 * nginx and a replayed proof sent to two processes at once is accepted once. Then one master is
 * stopped mid-run: requests whose keys live in its slots answer 503 with a code within the store
 * time limit, the others keep working, and once it is back nothing is accepted twice. Last, one
 * master restarts empty: the restart guard's markers of its own shards are gone with its keys, so
 * replays of proofs whose ids it held are refused (503 ERR_TOKENSEC_STORE_RESTARTED), never accepted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKeys, openResponse, requestHeader } from '../../client/crypto.js';
import { createDpopProof, rotateDpopKey, type DpopKey } from '../../client/dpop.js';
import { replayKey } from '../../src/server/dpop/replay-store.js';
import { storedKey } from '../../src/server/redis-store.js';
import { defined } from '../support/helpers.js';
import { startNginx, type NginxProxy } from '../support/nginx.js';
import { markClusterInUse, startRedisCluster, until, type ClusterNode, type RedisCluster } from '../support/redis-cluster.js';

const NAME = 'app.tokensec.test';
const ORIGIN = `https://${NAME}`; // every process's `origin`: what the browser signs, whichever process answers
const env = { NONCE_KEY: randomBytes(32).toString('base64url'), ORIGIN, TOKEN_KEY: randomBytes(32).toString('base64url') };
const PROCESSES = ['A', 'B', 'C'] as const;
type Target = 'nginx' | (typeof PROCESSES)[number];

let cluster: RedisCluster;
let nginx: NginxProxy;
const children: ChildProcess[] = [];
const ports: Partial<Record<Target, number>> = {};

async function appProcess(name: (typeof PROCESSES)[number], storeClient: 'node-redis' | 'ioredis'): Promise<void> {
  const child = spawn(process.execPath, [new URL('./fixtures/cluster-server.mjs', import.meta.url).pathname], {
    env: {
      ...process.env,
      ...env,
      PROCESS_NAME: name,
      STORE_CLIENT: storeClient,
      REDIS_NODES: cluster.nodes.map((node) => node.url).join(','),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const [line] = (await once(defined(child.stdout, 'stdout'), 'data')) as [Buffer];
  ports[name] = Number(line.toString().trim());
}

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  await markClusterInUse(cluster); // a cluster in use, not a new one (the last test restarts a master empty)
  await Promise.all([appProcess('A', 'node-redis'), appProcess('B', 'node-redis'), appProcess('C', 'ioredis')]);
  nginx = await startNginx({ serverName: NAME, upstreamPorts: PROCESSES.map((name) => defined(ports[name], name)) });
  ports.nginx = nginx.port;
}, 60_000);
afterAll(async () => {
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(children.map((child) => (child.exitCode === null ? once(child, 'exit') : undefined)));
  await nginx?.stop();
  await cluster?.stop();
});

interface Answer {
  status: number;
  code: string | undefined;
  /** The app process that answered. */
  process: string | undefined;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown> | undefined;
  ms: number;
}

/** One request, through nginx (TLS, self-signed) or straight to one process; a request that takes 10 s fails the test. */
function request(target: Target, method: string, path: string, headers: Record<string, string>): Promise<Answer> {
  const started = performance.now();
  const port = defined(ports[target], target);
  return new Promise<Answer>((resolve, reject) => {
    const options = { host: '127.0.0.1', port, method, path, headers: { ...headers, host: `${NAME}:${nginx.port}` } };
    const done = (response: http.IncomingMessage) => {
      let text = '';
      response.on('data', (chunk) => (text += chunk));
      response.on('end', () => {
        let body: Record<string, unknown> | undefined;
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          body = undefined; // Express's own error page
        }
        const code = response.headers['tokensec-error'];
        resolve({
          status: response.statusCode ?? 0,
          code: typeof code === 'string' ? code : (body?.code as string | undefined),
          process: response.headers['x-app-process'] as string | undefined,
          headers: response.headers,
          body,
          ms: performance.now() - started,
        });
      });
    };
    const sent =
      target === 'nginx' ? https.request({ ...options, servername: NAME, rejectUnauthorized: false }, done) : http.request(options, done);
    sent.setTimeout(10_000, () => sent.destroy(new Error(`${method} ${path} at ${target}: no answer in 10 s`)));
    sent.on('error', reject);
    sent.end();
  });
}

/** The `jti` of a proof. */
const jtiOf = (proof: string) =>
  (JSON.parse(Buffer.from(defined(proof.split('.')[1], 'claims'), 'base64url').toString()) as { jti: string }).jti;

/** A browser: one cookie jar, one CSRF token, the last DPoP nonce it was given, its own DPoP key and token. */
class Browser {
  cookie = '';
  csrfToken = '';
  nonce: string | undefined;
  key!: DpopKey;
  token = '';

  /** The express-session id in its cookie (connect.sid=s:<id>.<signature>), whose Redis key is sess:<id>. */
  get sessionKey(): string {
    const value = decodeURIComponent(this.cookie.slice(this.cookie.indexOf('=') + 1));
    return `sess:${value.slice(2, value.lastIndexOf('.'))}`;
  }

  async send(target: Target, method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
    const answer = await request(target, method, path, {
      ...headers,
      ...(this.cookie ? { cookie: this.cookie } : {}),
      'x-csrf-token': this.csrfToken,
    });
    const set = answer.headers['set-cookie']?.[0];
    if (set) this.cookie = set.split(';', 1)[0] ?? '';
    const nonce = answer.headers['dpop-nonce'];
    if (typeof nonce === 'string') this.nonce = nonce;
    return answer;
  }

  async login(target: Target): Promise<void> {
    this.csrfToken = String((await this.send(target, 'GET', '/csrf')).body?.csrfToken);
    expect((await this.send(target, 'POST', '/login')).status).toBe(200);
  }

  /**
   * A handshake as the client signs it (key agreement, a proof with tsh, and tsb for a key made for
   * this session); the token of a fresh key's handshake is kept (the proofs made later name it).
   */
  async handshakeRequest(fresh: boolean) {
    const keys = await createKeys(crypto.subtle);
    const target = {
      header: 'x-tokensec-handshake',
      method: 'POST',
      path: '/token',
      jkt: new Uint8Array(Buffer.from(this.key.thumbprint, 'base64url')),
    };
    const value = await requestHeader(crypto.subtle, keys, this.csrfToken, target);
    const tsh = createHash('sha256').update(value).digest('base64url');
    const claims = (fresh ? { tsh, tsb: true } : { tsh }) as unknown as Record<string, string>;
    const proof = await createDpopProof({ method: 'POST', url: `${ORIGIN}/token`, key: this.key, claims, nonce: this.nonce });
    const send = async (at: Target) => {
      const answer = await this.send(at, 'POST', '/token', { 'x-tokensec-handshake': value, dpop: proof });
      if (answer.status === 200 && fresh) {
        this.token = await openResponse(crypto.subtle, keys, this.csrfToken, target, String(answer.headers['x-tokensec-handshake']));
      }
      return answer;
    };
    return { proof, send };
  }

  /** Logs in and binds a fresh key (learning the server's nonce on the way), keeping the token. */
  async start(target: Target): Promise<void> {
    await this.login(target);
    this.key = await rotateDpopKey();
    let answer = await (await this.handshakeRequest(true)).send(target);
    if (answer.code === 'ERR_TOKENSEC_DPOP_NONCE_REQUIRED') answer = await (await this.handshakeRequest(true)).send(target); // with the nonce it gave
    expect(outcome(answer)).toEqual(OK);
  }

  apiProof(): Promise<string> {
    return createDpopProof({ method: 'GET', url: `${ORIGIN}/api/me`, key: this.key, accessToken: this.token, nonce: this.nonce });
  }

  api(target: Target, proof: string): Promise<Answer> {
    return this.send(target, 'GET', '/api/me', { authorization: `DPoP ${this.token}`, dpop: proof });
  }
}

/** The master that holds a proof's id. */
const masterOfProof = (browser: Browser, proof: string) =>
  cluster.nodeOf(storedKey('tokensec:', replayKey(browser.key.thumbprint, jtiOf(proof)), true));

/** Fresh API proofs of `browser`: at least `count` whose ids live on each master. */
async function apiProofs(browser: Browser, count: number): Promise<Map<ClusterNode, string[]>> {
  const sorted = new Map<ClusterNode, string[]>(cluster.nodes.map((node) => [node, []]));
  while ([...sorted.values()].some((proofs) => proofs.length < count)) {
    const proof = await browser.apiProof();
    defined(sorted.get(masterOfProof(browser, proof)), 'master').push(proof);
  }
  return sorted;
}

const OK = { status: 200, code: undefined };
const DOWN = { status: 503, code: 'ERR_TOKENSEC_STORE_UNAVAILABLE' };
const REPLAYED = { status: 401, code: 'ERR_TOKENSEC_DPOP_REPLAYED_PROOF' };
const SESSION_DOWN = { status: 503, code: 'ERR_TOKENSEC_SESSION_STORE_UNAVAILABLE' };
const RESTARTED = { status: 503, code: 'ERR_TOKENSEC_STORE_RESTARTED' };
const outcome = ({ status, code }: Answer) => ({ status, code });

describe('three app processes behind nginx on a three-master Redis Cluster', () => {
  it('the whole flow through nginx: login, handshake, API calls at every process; a proof sent to two processes at once is accepted once', async () => {
    const browser = new Browser();
    await browser.start('nginx');
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const answer = await browser.api('nginx', await browser.apiProof());
      expect([outcome(answer), answer.body?.sub, answer.body?.jkt]).toEqual([OK, 'alice', browser.key.thumbprint]);
      seen.add(String(answer.process));
    }
    expect([...seen].sort()).toEqual(['A', 'B', 'C']); // nginx took them in turn
    // The same proof at two processes at the same moment (C keeps its ids through ioredis, A and B through node-redis).
    for (const [one, two] of [
      ['A', 'B'],
      ['B', 'C'],
      ['C', 'A'],
      ['A', 'C'],
    ] as const) {
      const proof = await browser.apiProof();
      const answers = (await Promise.all([browser.api(one, proof), browser.api(two, proof)])).map(outcome);
      expect(answers).toContainEqual(OK);
      expect(answers).toContainEqual(REPLAYED);
    }
    // The binding is seen at every process; logout at one, login at another, and a fresh key binds.
    for (const at of PROCESSES) expect((await (await browser.handshakeRequest(false)).send(at)).status).toBe(200);
    expect((await browser.send('B', 'POST', '/logout')).status).toBe(200);
    await browser.start('C');
    expect(outcome(await browser.api('A', await browser.apiProof()))).toEqual(OK);
  });

  it('one master stopped mid-run: its slots answer 503 ERR_TOKENSEC_STORE_UNAVAILABLE in bounded time, the others keep working; back with its data, nothing is accepted twice', async () => {
    const victim = defined(cluster.nodes[2], 'node');
    // Two users whose sessions live on different masters: one on the victim, one elsewhere.
    const users: Browser[] = [];
    let onVictim: Browser | undefined;
    let elsewhere: Browser | undefined;
    while (!onVictim || !elsewhere) {
      expect(users.length).toBeLessThan(40);
      const browser = new Browser();
      await browser.start('nginx');
      users.push(browser);
      if (cluster.nodeOf(browser.sessionKey) === victim) onVictim ??= browser;
      else elsewhere ??= browser;
    }
    const user = elsewhere;
    const accepted = await apiProofs(user, 2);
    for (const proofs of accepted.values()) for (const proof of proofs) expect(outcome(await user.api('nginx', proof))).toEqual(OK);

    const counts = { down: 0, ok: 0, replayRefused: 0, sessionOnVictim: [] as string[], slowest: 0 };
    const acceptedDuring: string[] = [];
    const check = (answer: Answer, expected: { status: number; code: string | undefined }, what: string) => {
      counts.slowest = Math.max(counts.slowest, answer.ms);
      expect([what, outcome(answer)]).toEqual([what, expected]);
      if (expected === DOWN) counts.down++;
      if (expected === OK) counts.ok++;
      if (expected === REPLAYED) counts.replayRefused++;
    };
    await victim.stop('save');
    for (const phase of ['just stopped', 'marked failed by the others']) {
      if (phase !== 'just stopped') await cluster.settled();
      // API calls through nginx (so at every process): fresh proofs, then replays of those accepted before.
      for (const [node, proofs] of await apiProofs(user, 3)) {
        for (const proof of proofs) {
          const answer = await user.api('nginx', proof);
          check(answer, node === victim ? DOWN : OK, `${phase}: API proof on ${node === victim ? 'the stopped' : 'a running'} master`);
          if (answer.status === 200) acceptedDuring.push(proof);
        }
      }
      for (const [node, proofs] of accepted)
        for (const proof of proofs) check(await user.api('nginx', proof), node === victim ? DOWN : REPLAYED, `${phase}: replay`);
      // A handshake of the user whose session is on a running master: 503 when its proof id's master is down, else 200.
      const byMaster = new Map<boolean, Awaited<ReturnType<Browser['handshakeRequest']>>>();
      while (byMaster.size < 2) {
        const made = await user.handshakeRequest(false);
        byMaster.set(masterOfProof(user, made.proof) === victim, made);
      }
      check(
        await defined(byMaster.get(true), 'handshake').send('nginx'),
        DOWN,
        `${phase}: handshake whose proof id is on the stopped master`,
      );
      check(await defined(byMaster.get(false), 'handshake').send('nginx'), OK, `${phase}: handshake on running masters`);
      // The user whose session is on the stopped master: its session cannot be read (boundedSessionStore: 503 with a code).
      for (const at of PROCESSES) {
        const answer = await (await onVictim.handshakeRequest(false)).send(at);
        counts.slowest = Math.max(counts.slowest, answer.ms);
        expect([`${phase}: session on the stopped master at ${at}`, outcome(answer)]).toEqual([
          `${phase}: session on the stopped master at ${at}`,
          SESSION_DOWN,
        ]);
        counts.sessionOnVictim.push(`${answer.status} ${answer.code ?? '(no code)'}`);
      }
    }
    expect(counts.slowest).toBeLessThan(5000); // storeTimeout is 1000 ms; generous for a busy machine

    await victim.start();
    await cluster.settled();
    // Every process finds it again (bounded); until then, only 503s.
    for (const at of PROCESSES) {
      await until(
        async () => {
          const proof = defined((await apiProofs(user, 1)).get(victim)?.[0], 'proof');
          const answer = await user.api(at, proof);
          if (answer.status !== 200) expect(outcome(answer)).toEqual(DOWN);
          return answer.status === 200;
        },
        20_000,
        `process ${at} to reach the restarted master`,
      );
    }
    // Back with its data (SHUTDOWN SAVE): no proof accepted before or during the outage is accepted again, at any process.
    for (const at of PROCESSES) {
      for (const proofs of accepted.values()) for (const proof of proofs) expect(outcome(await user.api(at, proof))).toEqual(REPLAYED);
      for (const proof of acceptedDuring) expect(outcome(await user.api(at, proof))).toEqual(REPLAYED);
    }
    // Its session is back too.
    expect((await (await onVictim.handshakeRequest(false)).send('nginx')).status).toBe(200);
    console.log(`cluster fault counts: ${JSON.stringify(counts)}`);
    // Both phases together: at least 3 fresh API proofs, 2 replays and 1 handshake per master and phase.
    expect(counts.down).toBeGreaterThanOrEqual(12);
    expect(counts.ok).toBeGreaterThanOrEqual(14);
    expect(counts.replayRefused).toBeGreaterThanOrEqual(8);
  }, 90_000);

  it('one master restarted empty (SHUTDOWN NOSAVE): replays of proofs accepted before whose ids lived there get 503 ERR_TOKENSEC_STORE_RESTARTED, never 200; the other masters answer "replayed"; fresh proofs pass again', async () => {
    const victim = defined(cluster.nodes[0], 'node');
    const user = new Browser();
    await user.start('nginx');
    const accepted = await apiProofs(user, 3);
    for (const proofs of accepted.values()) for (const proof of proofs) expect(outcome(await user.api('nginx', proof))).toEqual(OK);

    await victim.stop('nosave');
    await victim.start(); // same node id and slots (its nodes.conf), no data: its keys and its shards' markers are gone
    await cluster.settled();
    const counts = { restarted: 0, replayRefused: 0, freshRefused: 0, downWhileReconnecting: 0 };
    // Every process reaches it again (bounded). A fresh proof on it is refused too while it is dated
    // within clockSkew of its shard's notice: the store cannot tell it from one sent before.
    for (const at of PROCESSES) {
      await until(
        async () => {
          const proof = defined((await apiProofs(user, 1)).get(victim)?.[0], 'proof');
          const answer = outcome(await user.api(at, proof));
          expect([DOWN, RESTARTED, OK]).toContainEqual(answer);
          if (answer.code === DOWN.code) counts.downWhileReconnecting++;
          if (answer.code === RESTARTED.code) counts.freshRefused++;
          return answer.code !== DOWN.code;
        },
        20_000,
        `process ${at} to reach the restarted master`,
      );
    }
    // Each proof accepted before, replayed at A, B and C in turn.
    for (const [node, proofs] of accepted) {
      for (const proof of proofs) {
        const answers: Answer[] = [];
        for (const at of PROCESSES) answers.push(await user.api(at, proof));
        if (node === victim) {
          // Its id is gone: the first process refuses it as from before the restart (and that add
          // wrote the id back), so the next ones find it: "replayed".
          expect(answers.map(outcome)).toEqual([RESTARTED, REPLAYED, REPLAYED]);
          expect(Number(answers[0]?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
          counts.restarted++;
          counts.replayRefused += 2;
        } else {
          expect(answers.map(outcome)).toEqual([REPLAYED, REPLAYED, REPLAYED]);
          counts.replayRefused += 3;
        }
      }
    }
    // Fresh proofs pass again on every master once each of the victim's shards noticed, clockSkew (5 s) later (bounded).
    await until(
      async () => {
        const answers = [];
        for (const proofs of (await apiProofs(user, 2)).values())
          for (const proof of proofs) answers.push(outcome(await user.api('nginx', proof)));
        for (const answer of answers) expect([OK, RESTARTED]).toContainEqual(answer);
        counts.freshRefused += answers.filter((answer) => answer.code === RESTARTED.code).length;
        return answers.every((answer) => answer.status === 200);
      },
      30_000,
      'fresh proofs to pass on every master',
    );
    console.log(`cluster restart counts: ${JSON.stringify(counts)}`);
    const onVictim = defined(accepted.get(victim), 'proofs').length;
    const elsewhere = [...accepted.values()].flat().length - onVictim;
    expect([counts.restarted, counts.replayRefused]).toEqual([onVictim, onVictim * 2 + elsewhere * 3]);
  }, 120_000);
});
