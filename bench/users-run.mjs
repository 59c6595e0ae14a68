// The first table of `npm run bench`: TokenSec measured the way apps run it (bench/app-server.mjs),
// each route beside its plain and floor neighbours in the same process and run, paired, in
// alternating order, with a fresh valid proof per request made on another thread
// (bench/requests-worker.mjs), every response checked, and the server's CPU per request counted
// alone. Then the Redis replay store's cost per request, at one and at two server processes.
import { execFile, fork, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { newRestartMarker, restartMarkerKeys } from '../dist/server/restart-guard.js';

const MAX_AGE = 60; // bench/app-server.mjs's proof window, seconds
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const pct = (a, p) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))];
const fmt = (n, d = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : '—');
const signed = (n) => (n >= 0 ? '+' : '−') + fmt(Math.abs(n));
const spread = (a) => `${signed(Math.min(...a))} … ${signed(Math.max(...a))}`;
/** A Markdown table (docs/PERFORMANCE.md takes it as it is). */
const table = (rows) => {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => '  | ' + r.map((c, i) => String(c).padEnd(widths[i])).join(' | ') + ' |';
  console.log(line(rows[0]));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const r of rows.slice(1)) console.log(line(r));
};

/** The request maker: a worker thread. */
function requestMaker() {
  const worker = new Worker(new URL('./requests-worker.mjs', import.meta.url));
  let next = 0;
  const waiting = new Map();
  worker.on('message', (m) => (waiting.get(m.id)(m), waiting.delete(m.id)));
  return {
    make: (message) => new Promise((resolve) => (waiting.set(++next, resolve), worker.postMessage({ ...message, id: next }))),
    stop: () => worker.terminate(),
  };
}

async function startApp(env = {}) {
  const child = fork(new URL('./app-server.mjs', import.meta.url), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...env },
  });
  const { port } = await new Promise((resolve) => child.once('message', resolve));
  const ask = (message) => new Promise((resolve) => (child.once('message', resolve), child.send(message)));
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    cpu: async () => {
      const { cpu, main } = await ask('cpu');
      return { all: cpu.user + cpu.system, main };
    },
    stop: () => new Promise((resolve) => (child.once('exit', resolve), child.send('stop'))),
    profileStart: () => ask('profile-start'),
    profileStop: async () => (await ask('profile-stop')).profile,
    /** A logged-in user: the session cookie and the CSRF token. */
    async login(path = '/login') {
      const response = await fetch(`${origin}${path}`, { method: 'POST' });
      const cookie = response.headers
        .getSetCookie()
        .map((c) => c.split(';', 1)[0])
        .join('; ');
      return { cookie, csrfToken: (await response.json()).csrfToken };
    },
    mint: async (jkt) => (await (await fetch(`${origin}/mint?jkt=${jkt}`)).json()).token,
  };
}

const RUN_SECONDS = 120; // a run's time bound: a slower run stops and fails the bench

/** Sends the requests over `connections` keep-alive connections, checks every response. */
async function send(origin, requests, check, connections = 8) {
  const deadline = Date.now() + RUN_SECONDS * 1000;
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const { hostname, port } = new URL(origin);
  const latencies = [];
  const values = new Array(requests.length);
  let index = 0;
  let failure;
  const one = (request) =>
    new Promise((resolve, reject) => {
      const start = process.hrtime.bigint();
      const i = index++;
      const req = http.request({ hostname, port, agent, method: request.method, path: request.path, headers: request.headers }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
          const body = Buffer.concat(chunks).toString();
          values[i] = check(res, body);
          if (res.statusCode !== 200 || !values[i]) failure ??= `${request.path}: ${res.statusCode} ${body.slice(0, 120)}`;
          resolve();
        });
      });
      req.on('error', reject);
      req.end();
    });
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (index < requests.length && Date.now() < deadline) await one(requests[index]);
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  agent.destroy();
  if (index < requests.length) throw new Error(`bench: ${origin}${requests[0].path} took over ${RUN_SECONDS} s; stopped`);
  if (failure) throw new Error(`bench: a response failed its check: ${failure}`);
  return { rps: requests.length / seconds, p50: median(latencies), p99: pct(latencies, 0.99), values };
}

const json = (body) => {
  try {
    return JSON.parse(body);
  } catch {
    return {};
  }
};
// Each returns what the response carries (falsy: the check failed); handshake answers are then
// opened by the request maker, which holds the client keys.
const checks = {
  api: (_res, body) => json(body).sub === 'bench',
  tokenPlain: (_res, body) => String(json(body).token).split('.').length === 3,
  tokenFloor: (_res, body) => json(body).handshake,
  handshake: (res) => res.headers['x-tokensec-handshake'],
};

/**
 * The server's current DPoP nonce (TokenSec answers every DPoP request with one, a refusal too),
 * as a page's client would hold it from its last answer; undefined when the server gives none.
 * One process's middlewares share one nonce key, so the API's nonce is the handshake's too.
 */
async function currentNonce(origin) {
  const response = await fetch(`${origin}/api`);
  await response.arrayBuffer();
  return response.headers.get('dpop-nonce') ?? undefined;
}

/**
 * One measured run: a fresh batch of requests from the worker, then the server's CPU around
 * sending them. `servers`: the processes the requests are split between (one batch each).
 */
async function run(servers, maker, spec, count, check, extraCpu) {
  const nonces = await Promise.all(servers.map((s) => currentNonce(s.origin)));
  const batches = await Promise.all(
    servers.map((s, i) => maker.make({ ...spec(s, i), count: Math.ceil(count / servers.length), origin: s.origin, nonce: nonces[i] })),
  );
  const before = await Promise.all(servers.map((s) => s.cpu()));
  const extraBefore = extraCpu?.();
  const results = await Promise.all(servers.map((s, i) => send(s.origin, batches[i].requests, check, Math.ceil(8 / servers.length))));
  const extraAfter = extraCpu?.();
  const after = await Promise.all(servers.map((s) => s.cpu()));
  const oldest = Date.now() - Math.min(...batches.map((b) => b.madeAt));
  for (const [i, batch] of batches.entries()) {
    if (!batch.batch || spec(servers[i], i).kind !== 'handshake') continue;
    const { failed } = await maker.make({ kind: 'open', batch: batch.batch, values: results[i].values });
    if (failed) throw new Error(`bench: ${failed} handshake answers did not open to a token bound to the proof's key`);
  }
  if (oldest > (MAX_AGE * 1000) / 2) throw new Error(`bench: proofs used ${oldest} ms after they were made, over half the window`);
  const total = batches.reduce((n, b) => n + b.requests.length, 0);
  const sum = (f) => servers.reduce((n, _s, i) => n + f(i), 0);
  return {
    cpu: sum((i) => after[i].all - before[i].all) / total,
    main: sum((i) => after[i].main - before[i].main) / total,
    extra: extraCpu ? (extraAfter - extraBefore) / total : undefined,
    rps: results.reduce((n, r) => n + r.rps, 0),
    p50: median(results.map((r) => r.p50)),
    p99: Math.max(...results.map((r) => r.p99)),
    oldest,
  };
}

export async function usersRun({ quick, results }) {
  const PAIRS = quick ? 2 : 5;
  const COUNT = quick ? 200 : 1000;
  const maker = requestMaker();
  const app = await startApp();
  const users = { ES256: await app.login(), EdDSA: await app.login() };
  const { jkt, jktEdDSA } = await maker.make({ kind: 'jkt' });
  const tokens = { ES256: await app.mint(jkt), EdDSA: await app.mint(jktEdDSA) };

  const api = (path, alg) => () => ({ kind: 'api', alg, path, token: tokens[alg] });
  const hs = (path, alg) => () => ({ kind: 'handshake', alg, path, ...users[alg] });
  const routes = {
    'API  plain (Bearer, jwtVerify)': [api('/api-plain', 'ES256'), checks.api],
    'API  floor, ES256 proof': [api('/api-floor', 'ES256'), checks.api],
    'API  tokenSec.dpop(), ES256 proof': [api('/api', 'ES256'), checks.api],
    'API  floor, Ed25519 proof': [api('/api-floor', 'EdDSA'), checks.api],
    'API  tokenSec.dpop(), Ed25519 proof': [api('/api', 'EdDSA'), checks.api],
    'API  tokenSec.dpop() nonce: false, ES256 proof': [api('/api-no-nonce', 'ES256'), checks.api],
    'API  peer oauth4webapi, ES256 proof': [api('/api-oauth4webapi', 'ES256'), checks.api],
    'API  peer jose check, ES256 proof': [api('/api-jose', 'ES256'), checks.api],
    'API  peer oauth4webapi, Ed25519 proof': [api('/api-oauth4webapi', 'EdDSA'), checks.api],
    'API  peer jose check, Ed25519 proof': [api('/api-jose', 'EdDSA'), checks.api],
    'token plain (session, CSRF, jose)': [hs('/token-plain', 'ES256'), checks.tokenPlain],
    'token floor, ES256 proof': [hs('/token-floor', 'ES256'), checks.tokenFloor],
    'token handshake inline, ES256 proof': [hs('/token', 'ES256'), checks.handshake],
    'token handshake workers: 1, ES256 proof': [hs('/token-workers', 'ES256'), checks.handshake],
    'token floor, Ed25519 proof': [hs('/token-floor', 'EdDSA'), checks.tokenFloor],
    'token handshake inline, Ed25519 proof': [hs('/token', 'EdDSA'), checks.handshake],
    'token handshake workers: 1, Ed25519 proof': [hs('/token-workers', 'EdDSA'), checks.handshake],
  };
  const names = Object.keys(routes);
  // Warm-up (JIT, key caches; the first handshake of each session binds it to its key).
  for (const name of names) await run([app], maker, routes[name][0], quick ? 50 : 200, routes[name][1]);

  const all = Object.fromEntries(names.map((n) => [n, []]));
  for (let pair = 0; pair < PAIRS; pair++) {
    for (const name of pair % 2 ? [...names].reverse() : names)
      all[name].push(await run([app], maker, routes[name][0], COUNT, routes[name][1]));
  }
  const profileRows = await profiles(app, maker, routes, quick ? 200 : COUNT);
  await app.stop();

  const per = (name, key) => all[name].map((r) => r[key]);
  const diff = (a, b, key = 'cpu', keyB = key) => per(a, key).map((v, i) => v - all[b][i][keyB]);
  const rows = [['route', 'CPU µs/req', 'main thread µs/req', 'req/s', 'p50 ms', 'p99 ms']];
  for (const name of names) {
    rows.push([
      name,
      fmt(median(per(name, 'cpu'))),
      fmt(median(per(name, 'main'))),
      fmt(median(per(name, 'rps'))),
      fmt(median(per(name, 'p50')), 2),
      fmt(median(per(name, 'p99')), 2),
    ]);
  }
  console.log(
    `  medians of ${PAIRS} pairs, ${COUNT} requests per route per pair, 8 connections; proofs at most ${fmt(Math.max(...names.flatMap((n) => per(n, 'oldest'))) / 1000, 1)} s old when used`,
  );
  table(rows);

  const overhead = {
    'API call, ES256: tokenSec.dpop() − floor': diff('API  tokenSec.dpop(), ES256 proof', 'API  floor, ES256 proof'),
    'API call, Ed25519: tokenSec.dpop() − floor': diff('API  tokenSec.dpop(), Ed25519 proof', 'API  floor, Ed25519 proof'),
    'token endpoint inline, ES256: handshake − floor': diff('token handshake inline, ES256 proof', 'token floor, ES256 proof'),
    'token endpoint inline, Ed25519: handshake − floor': diff('token handshake inline, Ed25519 proof', 'token floor, Ed25519 proof'),
    'workers: 1, ES256: main thread − plain main thread': diff(
      'token handshake workers: 1, ES256 proof',
      'token plain (session, CSRF, jose)',
      'main',
    ),
    'workers: 1, Ed25519: main thread − plain main thread': diff(
      'token handshake workers: 1, Ed25519 proof',
      'token plain (session, CSRF, jose)',
      'main',
    ),
    'workers: 1, ES256: all threads − floor': diff('token handshake workers: 1, ES256 proof', 'token floor, ES256 proof'),
    'API call, ES256: server nonces (the 4.0 default) − nonce: false': diff(
      'API  tokenSec.dpop(), ES256 proof',
      'API  tokenSec.dpop() nonce: false, ES256 proof',
    ),
    'API call, ES256: oauth4webapi − tokenSec.dpop()': diff('API  peer oauth4webapi, ES256 proof', 'API  tokenSec.dpop(), ES256 proof'),
    'API call, ES256: jose check − tokenSec.dpop()': diff('API  peer jose check, ES256 proof', 'API  tokenSec.dpop(), ES256 proof'),
    'API call, Ed25519: oauth4webapi − tokenSec.dpop()': diff(
      'API  peer oauth4webapi, Ed25519 proof',
      'API  tokenSec.dpop(), Ed25519 proof',
    ),
    'API call, Ed25519: jose check − tokenSec.dpop()': diff('API  peer jose check, Ed25519 proof', 'API  tokenSec.dpop(), Ed25519 proof'),
    'floor − plain, API call, ES256 (the crypto DPoP needs)': diff('API  floor, ES256 proof', 'API  plain (Bearer, jwtVerify)'),
    'floor − plain, token endpoint, ES256 (the crypto it needs)': diff('token floor, ES256 proof', 'token plain (session, CSRF, jose)'),
  };
  const targets = {
    'API call, ES256: tokenSec.dpop() − floor': 30,
    'API call, ES256: server nonces (the 4.0 default) − nonce: false': 10,
    'token endpoint inline, ES256: handshake − floor': 60,
    'token endpoint inline, Ed25519: handshake − floor': 60,
    'workers: 1, ES256: main thread − plain main thread': 100,
    'workers: 1, Ed25519: main thread − plain main thread': 100,
  };
  console.log("\n  TokenSec's own CPU per request (same pair's routes subtracted), µs:");
  const orows = [['difference', 'median', `spread over ${PAIRS} pairs`, 'target']];
  for (const [name, values] of Object.entries(overhead)) {
    const t = targets[name];
    orows.push([name, signed(median(values)), spread(values), t === undefined ? '' : `≤ +${t} ${median(values) <= t ? 'met' : 'missed'}`]);
  }
  table(orows);
  // The lead over the peers: a peer minus TokenSec above zero in every pair.
  const lead = Object.entries(overhead).filter(([name]) => / − tokenSec\.dpop\(\)$/.test(name));
  const held = lead.every(([, values]) => values.every((v) => v > 0));
  console.log(
    `  lead over the peers: tokenSec.dpop() ${held ? 'cheaper than each peer in every pair' : 'NOT cheaper than each peer in every pair'}`,
  );
  console.log('  (main thread: Linux per-thread scheduler time; req/s share the 2 cores with the load generator and the proof maker)');
  profileRows.print();
  results.usersRun = {
    profile: profileRows.out,
    profileByFunction: profileRows.functions,
    pairs: PAIRS,
    requests: COUNT,
    routes: Object.fromEntries(
      names.map((n) => [
        n,
        {
          cpu: median(per(n, 'cpu')),
          main: median(per(n, 'main')),
          rps: median(per(n, 'rps')),
          p50: median(per(n, 'p50')),
          p99: median(per(n, 'p99')),
        },
      ]),
    ),
    overhead: Object.fromEntries(
      Object.entries(overhead).map(([k, v]) => [k, { median: median(v), min: Math.min(...v), max: Math.max(...v) }]),
    ),
  };
  await maker.stop();
}

/** Where a profile's self time goes: TokenSec's files, each package, Node's internals, GC. */
function category({ url, functionName }) {
  if (!url) return functionName === '(garbage collector)' ? 'garbage collection' : functionName === '(idle)' ? undefined : 'V8 and native';
  const pkg = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (pkg) return pkg[1];
  const dist = url.match(/\/dist\/(.+)$/);
  if (dist) return `tokensec ${dist[1].replace(/\.js$/, '')}`;
  if (url.startsWith('node:')) return 'Node.js (http, streams, crypto bindings)';
  return url.includes('/bench/') ? 'the app (bench/app-server.mjs)' : url;
}

/** A TokenSec function's name in a profile: its file and function (`verify checkProofClaims`). */
function tokenSecFunction({ url, functionName, lineNumber }) {
  const dist = url?.includes('node_modules') ? undefined : url?.match(/\/dist\/(.+)\.js$/);
  return dist ? `${dist[1]} ${functionName || `(anonymous, line ${lineNumber + 1})`}` : undefined;
}

/** One run of each profiled route under the server's CPU profiler: self time per category, µs per request. */
async function profiles(app, maker, routes, count) {
  const out = {};
  const functions = {};
  for (const name of [
    'API  tokenSec.dpop(), ES256 proof',
    'API  floor, ES256 proof',
    'token handshake inline, ES256 proof',
    'token floor, ES256 proof',
  ]) {
    await app.profileStart();
    await run([app], maker, routes[name][0], count, routes[name][1]);
    const { nodes, samples, timeDeltas } = await app.profileStop();
    const byId = new Map(nodes.map((n) => [n.id, category(n.callFrame)]));
    const functionById = new Map(nodes.map((n) => [n.id, tokenSecFunction(n.callFrame)]));
    const self = {};
    const own = {};
    samples.forEach((id, i) => {
      const c = byId.get(id);
      if (c) self[c] = (self[c] ?? 0) + timeDeltas[i] / count;
      const f = functionById.get(id);
      if (f) own[f] = (own[f] ?? 0) + timeDeltas[i] / count;
    });
    out[name] = self;
    functions[name] = own;
  }
  const names = Object.keys(out);
  const categories = [...new Set(names.flatMap((n) => Object.keys(out[n])))].sort(
    (a, b) => (out[names[2]][b] ?? 0) - (out[names[2]][a] ?? 0),
  );
  const rows = [['main thread self time, µs/req', ...names.map((n) => n.replace(/^(API|token)\s+/, '$1: '))]];
  for (const c of categories) if (names.some((n) => (out[n][c] ?? 0) >= 1)) rows.push([c, ...names.map((n) => fmt(out[n][c] ?? 0))]);
  const ours = (n) => Object.entries(out[n]).reduce((a, [c, v]) => a + (c.startsWith('tokensec ') ? v : 0), 0);
  rows.push(['tokensec, all its files', ...names.map((n) => fmt(ours(n)))]);
  rows.push(['total (profiled)', ...names.map((n) => fmt(Object.values(out[n]).reduce((a, b) => a + b, 0)))]);
  // By function: TokenSec's own functions on its routes, largest first (self time, µs per request).
  const tokenSecRoutes = names.filter((n) => !n.includes('floor'));
  const functionNames = [...new Set(tokenSecRoutes.flatMap((n) => Object.keys(functions[n])))]
    .map((f) => [f, tokenSecRoutes.reduce((a, n) => a + (functions[n][f] ?? 0), 0)])
    .sort((a, b) => b[1] - a[1])
    .filter(([, total]) => total >= 0.5)
    .map(([f]) => f);
  const functionRows = [['TokenSec function (self time, µs/req)', ...tokenSecRoutes.map((n) => n.replace(/^(API|token)\s+/, '$1: '))]];
  for (const f of functionNames) functionRows.push([f, ...tokenSecRoutes.map((n) => fmt(functions[n][f] ?? 0, 1))]);
  return {
    out,
    functions,
    print: () => {
      console.log(
        `\n  CPU profile of one run of ${count} requests per route (main thread, sampled every 100 µs; the profiler adds its own cost):`,
      );
      table(rows);
      console.log("\n  The same profile by function, TokenSec's files only (functions at 0.5 µs/req or more over these routes):");
      table(functionRows);
    },
  };
}

// ---------------------------------------------------------------------------------------------
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A real redis-server on a free loopback port (Debian's package), as test/support/redis.ts starts it; `clusterArgs` (starting with --port) for a cluster node. */
async function startRedis(clusterArgs) {
  const path = process.env.REDIS_SERVER_PATH ?? '/usr/bin/redis-server';
  if (!existsSync(path)) throw new Error(`redis-server not found at ${path}: apt-get install -y redis-server, or set REDIS_SERVER_PATH`);
  const port = clusterArgs ? Number(clusterArgs[1]) : await freePort();
  const args = [...(clusterArgs ?? ['--port', String(port)]), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const child = spawn(path, args, { stdio: 'ignore' });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ready = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.end('PING\r\n'));
      socket.once('data', (d) => resolve(d.toString().startsWith('+PONG')));
      socket.once('error', () => resolve(false));
    });
    if (ready) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('bench: redis-server did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    /** redis-server's main thread's CPU µs (it runs commands on that one thread): schedstat's nanoseconds. */
    cpu: () => Number(readFileSync(`/proc/${child.pid}/schedstat`, 'utf8').split(' ')[0]) / 1000,
    stop: () => new Promise((resolve) => (child.once('exit', resolve), child.kill('SIGTERM'))),
  };
}

/**
 * A three-master Redis Cluster on free loopback ports (as test/support/redis-cluster.ts starts it):
 * three redis-servers in cluster mode joined by `redis-cli --cluster create`.
 */
async function startRedisCluster() {
  const cli = process.env.REDIS_CLI_PATH ?? '/usr/bin/redis-cli';
  if (!existsSync(cli)) throw new Error(`redis-cli not found at ${cli}: apt-get install -y redis-tools, or set REDIS_CLI_PATH`);
  const dir = mkdtempSync(join(tmpdir(), 'tokensec-bench-cluster-'));
  const nodes = [];
  for (let i = 0; i < 3; i++) {
    const [port, bus] = [await freePort(), await freePort()];
    nodes.push(
      await startRedis([
        '--port', String(port), '--cluster-enabled', 'yes', '--cluster-port', String(bus),
        '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir,
      ]), // prettier-ignore
    );
  }
  const run = (args) => new Promise((resolve, reject) => execFile(cli, args, (error, stdout) => (error ? reject(error) : resolve(stdout))));
  await run(['--cluster', 'create', ...nodes.map((n) => n.url.slice('redis://'.length)), '--cluster-replicas', '0', '--cluster-yes']);
  const deadline = Date.now() + 30_000;
  for (const node of nodes) {
    while (!(await run(['-p', node.url.split(':').at(-1), 'CLUSTER', 'INFO'])).includes('cluster_state:ok')) {
      if (Date.now() > deadline) throw new Error('bench: the Redis Cluster did not reach cluster_state:ok');
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    nodes: nodes.map((n) => n.url).join(','),
    /** The three redis-servers' main threads' CPU µs together. */
    cpu: () => nodes.reduce((n, node) => n + node.cpu(), 0),
    stop: async () => {
      await Promise.all(nodes.map((node) => node.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Marks a fresh Redis (or every shard of a fresh cluster: `redis-cli -c` follows each key to its
 * master) as a store in use, as test/support does: else the restart guard takes the first use of
 * each marker for a Redis that lost its data and refuses proofs made before it for clockSkew seconds.
 */
async function markInUse(url, sharded) {
  const cli = process.env.REDIS_CLI_PATH ?? '/usr/bin/redis-cli';
  const marker = newRestartMarker(Date.now() - 3_600_000);
  for (const key of restartMarkerKeys('tokensec:', sharded)) {
    const args = ['-c', '-p', url.split(':').at(-1), 'SET', key, marker];
    const reply = await new Promise((resolve, reject) => execFile(cli, args, (error, stdout) => (error ? reject(error) : resolve(stdout))));
    if (reply.trim() !== 'OK') throw new Error(`bench: redis-server did not take the marker ${key}: ${reply}`);
  }
}

export async function redisRun({ quick, results }) {
  const PAIRS = quick ? 2 : 5;
  const COUNT = quick ? 200 : 800;
  const redis = await startRedis();
  const cluster = await startRedisCluster();
  await markInUse(redis.url, false);
  await markInUse(cluster.nodes.split(',')[0], true);
  const maker = requestMaker();
  const env = { REDIS_URL: redis.url, REDIS_CLUSTER_NODES: cluster.nodes };
  const apps = [await startApp(env), await startApp(env)];
  const { jkt } = await maker.make({ kind: 'jkt' });
  // One signing key per process: each process verifies the tokens it minted. Memory sessions
  // live in one process (a login on each); a Redis session serves both processes (one login).
  const tokens = [await apps[0].mint(jkt), await apps[1].mint(jkt)];
  const users = [await apps[0].login(), await apps[1].login()];
  const redisUser = await apps[0].login('/login-redis');
  const clusterUser = await apps[0].login('/login-cluster');
  const shared = { '/token-redis': redisUser, '/token-cluster': clusterUser };
  const api = (path) => (_s, i) => ({ kind: 'api', alg: 'ES256', path, token: tokens[i] });
  const hs = (path) => (_s, i) => ({ kind: 'handshake', alg: 'ES256', path, ...(path === '/token' ? users[i] : shared[path]) });
  const variants = {};
  for (const [label, servers] of [
    ['1 process', [apps[0]]],
    ['2 processes', apps],
  ]) {
    variants[`${label}, API call, memory replay store`] = [servers, api('/api'), checks.api];
    variants[`${label}, API call, Redis replay store`] = [servers, api('/api-redis'), checks.api];
    variants[`${label}, handshake, memory sessions and replay store`] = [servers, hs('/token'), checks.handshake];
    variants[`${label}, handshake, Redis sessions and replay store`] = [servers, hs('/token-redis'), checks.handshake];
    variants[`${label}, API call, Redis Cluster replay store`] = [servers, api('/api-cluster'), checks.api];
    variants[`${label}, handshake, Redis Cluster sessions and replay store`] = [servers, hs('/token-cluster'), checks.handshake];
  }
  const names = Object.keys(variants);
  const measure = (name, count) =>
    run(variants[name][0], maker, variants[name][1], count, variants[name][2], name.includes('Cluster') ? cluster.cpu : redis.cpu);
  for (const name of names) await measure(name, quick ? 50 : 200);
  const all = Object.fromEntries(names.map((n) => [n, []]));
  for (let pair = 0; pair < PAIRS; pair++) {
    for (const name of pair % 2 ? [...names].reverse() : names) all[name].push(await measure(name, COUNT));
  }
  await Promise.all(apps.map((a) => a.stop()));
  await maker.stop();
  await redis.stop();
  await cluster.stop();
  const m = (name, key) => median(all[name].map((r) => r[key]));
  const rows = [
    ['variant (ES256 proofs, inline)', 'app CPU µs/req', 'redis-server CPU µs/req (cluster: 3 masters)', 'req/s', 'p50 ms', 'p99 ms'],
  ];
  for (const name of names)
    rows.push([name, fmt(m(name, 'cpu')), fmt(m(name, 'extra')), fmt(m(name, 'rps')), fmt(m(name, 'p50'), 2), fmt(m(name, 'p99'), 2)]);
  console.log(`  medians of ${PAIRS} pairs, ${COUNT} requests per variant per pair (split between the processes), 8 connections in all`);
  table(rows);
  const added = (redisName, memoryName, key) => all[redisName].map((r, i) => r[key] - all[memoryName][i][key]);
  const orows = [['Redis adds, per request', 'app CPU µs', `spread over ${PAIRS} pairs`, 'redis-server CPU µs', 'p50 ms']];
  const addedRows = {};
  for (const label of ['1 process', '2 processes']) {
    for (const [what, r, mem] of [
      ['API call (replay store)', 'API call, Redis replay store', 'API call, memory replay store'],
      ['handshake (sessions, replay store)', 'handshake, Redis sessions and replay store', 'handshake, memory sessions and replay store'],
      ['API call (Redis Cluster replay store)', 'API call, Redis Cluster replay store', 'API call, memory replay store'],
      [
        'handshake (Redis Cluster sessions, replay store)',
        'handshake, Redis Cluster sessions and replay store',
        'handshake, memory sessions and replay store',
      ],
    ]) {
      const cpu = added(`${label}, ${r}`, `${label}, ${mem}`, 'cpu');
      const p50 = added(`${label}, ${r}`, `${label}, ${mem}`, 'p50');
      addedRows[`${label}, ${what}`] = {
        cpu: median(cpu),
        min: Math.min(...cpu),
        max: Math.max(...cpu),
        redisCpu: m(`${label}, ${r}`, 'extra'),
        p50: median(p50),
      };
      orows.push([
        `${label}, ${what}`,
        signed(median(cpu)),
        spread(cpu),
        fmt(m(`${label}, ${r}`, 'extra')),
        `${median(p50) >= 0 ? '+' : '−'}${fmt(Math.abs(median(p50)), 2)}`,
      ]);
    }
  }
  table(orows);
  console.log('  2 cores: scaling past two processes cannot be measured here.');
  results.redis = {
    pairs: PAIRS,
    requests: COUNT,
    variants: Object.fromEntries(
      names.map((n) => [n, { cpu: m(n, 'cpu'), redisCpu: m(n, 'extra'), rps: m(n, 'rps'), p50: m(n, 'p50'), p99: m(n, 'p99') }]),
    ),
    added: addedRows,
  };
}
