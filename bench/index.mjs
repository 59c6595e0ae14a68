// npm run bench: every figure of docs/PERFORMANCE.md, side by side, in one run. Loads only
// 127.0.0.1, bounded in requests and time. Needs the build (npm run build), redis-server and redis-cli
// (REDIS_SERVER_PATH, REDIS_CLI_PATH or /usr/bin/…) and, for the browser figures, Chromium
// (CHROMIUM_PATH or /usr/bin/chromium). The first table (bench/users-run.mjs) is TokenSec as apps
// run it; the numbered sections after it are the breakdown.
import { fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import autocannon from 'autocannon';
import { chromium } from 'playwright-core';
import { EmbeddedJWK, jwtVerify } from 'jose';
import { handshake as clientHandshake, createDpopProof, rotateDpopKey } from '../dist/browser/tokensec.mjs';
import { memoryStore } from '../dist/server/memory-store.js';
import { storeBench } from './store.mjs';
import { checkDpopProof, recordProof } from '../dist/server/dpop/verify.js';
import { deriveResponseKey, encryptPayload, generateServerKeyPair, hmacSha256, verifyBinding } from '../dist/server/crypto/primitives.js';
import { bindingInput, utf8 } from '../dist/protocol/context.js';
import { formatRequest, parseRequest } from '../dist/protocol/wire.js';
import { nodeBase64url } from '../dist/server/base64url.js';
import { redisRun, usersRun } from './users-run.mjs';

const SECRET = 'bench-secret-0123456789';
const TARGET = { header: 'x-tokensec-handshake', method: 'POST', path: '/token' };
const quick = process.argv.includes('--quick'); // shorter runs, for trying changes
const SECONDS = quick ? 2 : 5;
const PAIRS = quick ? 1 : 3;

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const pct = (a, p) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))];
const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const table = (rows) => {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  for (const r of rows) console.log('  ' + r.map((c, i) => String(c).padEnd(widths[i])).join('  '));
};

/** A request header made with node:crypto (fast), exactly as the browser client would make it. */
function clientHeader(algorithm, path = TARGET.path) {
  // A client key pair is just a key pair: make it with the server's own (fast, sync) code.
  const { publicKey } = generateServerKeyPair(algorithm);
  return formatRequest(algorithm, publicKey, hmacSha256(utf8(SECRET), bindingInput(algorithm, publicKey, { ...TARGET, path })));
}

async function startServer() {
  const child = fork(new URL('./server.mjs', import.meta.url), ['0'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { port } = await new Promise((resolve) => child.once('message', resolve));
  const ask = (message) => new Promise((resolve) => (child.once('message', resolve), child.send(message)));
  return {
    child,
    origin: `http://127.0.0.1:${port}`,
    /** CPU µs the server process (every thread) and its main thread alone have spent. */
    cpu: async () => {
      const { cpu, main } = await ask('cpu');
      return { all: cpu.user + cpu.system, main };
    },
    stop: () => new Promise((resolve) => (child.once('exit', resolve), child.send('stop'))),
  };
}

/** One autocannon run, with the server's CPU time per request. */
async function measured(server, opts) {
  const before = await server.cpu();
  const r = await load(opts);
  const after = await server.cpu();
  if (r.non2xx || r.errors) throw new Error(`${opts.url}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    cpu: (after.all - before.all) / r.requests.total,
    main: after.main === undefined ? NaN : (after.main - before.main) / r.requests.total,
  };
}

const load = (opts) =>
  new Promise((resolve, reject) =>
    autocannon({ connections: 50, pipelining: 1, duration: SECONDS, ...opts }, (e, r) => (e ? reject(e) : resolve(r))),
  );

const results = { machine: {}, throughput: {}, crypto: {}, size: {}, browser: {}, memory: {}, stateless: {}, dpop: {}, store: {} };

// ---------------------------------------------------------------------------------------------
console.log('\nA. What users run: token endpoint and API call, each beside its plain route and its floor route (server CPU per request)');
console.log('   (express-session + csrf-sync + jose ES256 JWT bound to cnf.jkt; a fresh proof per request; server nonces off)');
await usersRun({ quick, results });

console.log(
  '\nB. Redis stores (replay ids; sessions with connect-redis), on one Redis and on a three-master Redis Cluster: what they add per request, at one and at two server processes',
);
await redisRun({ quick, results });

// ---------------------------------------------------------------------------------------------
console.log('\n1. Server throughput: plain JSON vs TokenSec handshake (X25519) inline and with workers, same app, alternating');
console.log('   (workers: a string payload; workers-fn: a payload function, its encryption on the main thread)');
{
  const server = await startServer();
  const post = (path) => ({
    url: `${server.origin}${path}`,
    method: 'POST',
    headers: { 'x-tokensec-handshake': clientHeader('x25519', path) },
  });
  const routes = {
    plain: { url: `${server.origin}/plain` },
    inline: post('/token'),
    workers: post('/token-workers'),
    'workers-fn': post('/token-workers-fn'),
  };
  for (const route of Object.values(routes)) await load({ ...route, duration: 1 }); // warm-up
  const rows = [['pair', 'route', 'req/s', 'ratio', 'CPU µs/req', 'main thread µs/req', 'p50 ms', 'p99 ms']];
  const all = { plain: [], inline: [], workers: [], 'workers-fn': [] };
  const ratios = { inline: [], workers: [], 'workers-fn': [] };
  for (let pair = 1; pair <= PAIRS; pair++) {
    const got = {};
    for (const name of Object.keys(routes)) {
      got[name] = await measured(server, routes[name]);
      all[name].push(got[name]);
    }
    for (const name of Object.keys(routes)) {
      const ratio = got[name].rps / got.plain.rps;
      if (name !== 'plain') ratios[name].push(ratio);
      rows.push([pair, name, fmt(got[name].rps), fmt(ratio, 2), fmt(got[name].cpu), fmt(got[name].main), got[name].p50, got[name].p99]);
    }
  }
  table(rows);
  const summary = (name) => ({
    rps: median(all[name].map((r) => r.rps)),
    cpu: median(all[name].map((r) => r.cpu)),
    main: median(all[name].map((r) => r.main)),
    p50: median(all[name].map((r) => r.p50)),
    p99: median(all[name].map((r) => r.p99)),
  });
  results.throughput = {
    plain: summary('plain'),
    inline: { ...summary('inline'), ratio: median(ratios.inline) },
    workers: { ...summary('workers'), ratio: median(ratios.workers) },
    'workers-fn': { ...summary('workers-fn'), ratio: median(ratios['workers-fn']) },
  };
  console.log(
    `  ratio to plain (median over ${PAIRS} pairs): inline ${fmt(median(ratios.inline), 2)}, workers ${fmt(median(ratios.workers), 2)}, ` +
      `workers-fn ${fmt(median(ratios['workers-fn']), 2)}   target >= 0.75`,
  );
  await server.stop();
}

// ---------------------------------------------------------------------------------------------
console.log('\n2. Server crypto per handshake (parse, verify binding, key pair, ECDH, HKDF, AES-GCM), µs');
{
  const payload = 'x'.repeat(900);
  const rows = [['variant', 'median', 'p99', 'parse', 'binding', 'key pair', 'ECDH', 'HKDF+GCM', 'n']];
  const variants = [
    ['x25519', 'x25519', false],
    ['p256', 'p256', false],
    // Not shipped: what reusing one server key pair (e.g. rotated each minute) would save.
    ['x25519, reused server key (not shipped)', 'x25519', true],
  ];
  for (const [name, algorithm, reuse] of variants) {
    const headers = Array.from({ length: 2000 }, () => clientHeader(algorithm));
    const reused = generateServerKeyPair(algorithm);
    const steps = { total: [], parse: [], binding: [], keys: [], ecdh: [], seal: [] };
    for (let round = 0; round < 3; round++) {
      for (const value of headers) {
        const t0 = process.hrtime.bigint();
        const request = parseRequest(value, nodeBase64url);
        const t1 = process.hrtime.bigint();
        verifyBinding(request, SECRET, TARGET);
        const t2 = process.hrtime.bigint();
        const keys = reuse ? reused : generateServerKeyPair(algorithm);
        const t3 = process.hrtime.bigint();
        const shared = keys.deriveSharedSecret(request.publicKey, request.publicKeyBase64url);
        const t4 = process.hrtime.bigint();
        encryptPayload(
          deriveResponseKey({ request, serverPublicKey: keys.publicKey, sharedSecret: shared, secret: SECRET, target: TARGET }),
          payload,
        );
        const t5 = process.hrtime.bigint();
        if (round === 0) continue; // warm-up
        const us = (a, b) => Number(b - a) / 1000;
        steps.total.push(us(t0, t5));
        steps.parse.push(us(t0, t1));
        steps.binding.push(us(t1, t2));
        steps.keys.push(us(t2, t3));
        steps.ecdh.push(us(t3, t4));
        steps.seal.push(us(t4, t5));
      }
    }
    results.crypto[name] = Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, median(v)]));
    results.crypto[name].p99 = pct(steps.total, 0.99);
    rows.push([
      name,
      ...[steps.total].map((v) => fmt(median(v), 1)),
      fmt(pct(steps.total, 0.99), 1),
      ...[steps.parse, steps.binding, steps.keys, steps.ecdh, steps.seal].map((v) => fmt(median(v), 1)),
      steps.total.length,
    ]);
  }
  table(rows);
  console.log('  (step columns are medians of each step)');
  console.log('  target: X25519 median <= 100 µs');
}

// ---------------------------------------------------------------------------------------------
console.log('\n3. Client size, bytes');
{
  const rows = [['build', 'raw', 'gzip']];
  for (const file of ['tokensec.js', 'tokensec.min.js', 'tokensec.mjs', 'tokensec.min.mjs']) {
    const code = readFileSync(new URL(`../dist/browser/${file}`, import.meta.url));
    results.size[file] = { raw: code.length, gzip: gzipSync(code).length };
    rows.push([file, fmt(code.length), fmt(gzipSync(code).length)]);
  }
  table(rows);
  console.log('  target: UMD (tokensec.min.js) <= 3840 gzip (handshake + DPoP), enforced in npm test');
}

// ---------------------------------------------------------------------------------------------
console.log('\n4. Browser: 100 handshakes in Chromium on loopback, ms');
{
  const server = await startServer();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = await browser.newPage();
  await page.goto(`${server.origin}/`);
  const rows = [['algorithm', 'total p50', 'total p95', 'network p50', 'crypto p50']];
  // Warm both paths up first (JIT in the server and the page, connection reuse).
  await page.evaluate(async (secret) => {
    for (let i = 0; i < 30; i++) for (const algorithm of ['x25519', 'p256']) await TokenSec.handshake({ uri: '/token', secret, algorithm });
  }, SECRET);
  for (const algorithm of ['x25519', 'p256']) {
    const samples = await page.evaluate(
      async ({ secret, algorithm }) => {
        // Time the fetch itself (until response headers, all the client waits for).
        let network = 0;
        const realFetch = window.fetch;
        window.fetch = async (...args) => {
          const start = performance.now();
          try {
            return await realFetch(...args);
          } finally {
            network = performance.now() - start;
          }
        };
        const out = [];
        for (let i = 0; i < 110; i++) {
          const start = performance.now();
          await TokenSec.handshake({ uri: '/token', secret, algorithm });
          const total = performance.now() - start;
          if (i >= 10) out.push({ total, network });
        }
        window.fetch = realFetch;
        return out;
      },
      { secret: SECRET, algorithm },
    );
    const total = samples.map((s) => s.total);
    const network = samples.map((s) => s.network);
    const crypto = samples.map((s) => s.total - s.network);
    results.browser[algorithm] = { median: median(total), p95: pct(total, 0.95), network: median(network), crypto: median(crypto) };
    rows.push([algorithm, fmt(median(total), 2), fmt(pct(total, 0.95), 2), fmt(median(network), 2), fmt(median(crypto), 2)]);
  }
  table(rows);
  console.log("  target: median <= 10 ms on loopback. Network = the fetch (includes the server's work); crypto = the rest.");
  await browser.close();
  await server.stop();
}

// ---------------------------------------------------------------------------------------------
console.log('\n5. Memory: server RSS around 100,000 handshakes (in this process, through the middleware)');
{
  const { handshake } = await import('../dist/index.js');
  const middleware = handshake({ payload: 'x'.repeat(900), secret: SECRET, dpop: { required: false, sessionKey: false } });
  const headers = Array.from({ length: 1000 }, () => clientHeader('x25519'));
  const run = (value) =>
    new Promise((resolve, reject) => {
      const out = {};
      const req = { headers: { 'x-tokensec-handshake': value }, method: 'POST', url: '/token' };
      const res = { setHeader: (k, v) => (out[k] = v), getHeader: (k) => out[k], end() {} };
      middleware(req, res, (err) => (err ? reject(err) : resolve(out)));
    });
  const count = quick ? 20_000 : 100_000;
  for (let i = 0; i < 2000; i++) await run(headers[i % headers.length]);
  global.gc?.();
  const before = process.memoryUsage().rss;
  for (let i = 0; i < count; i++) await run(headers[i % headers.length]);
  global.gc?.();
  await new Promise((r) => setTimeout(r, 100));
  const after = process.memoryUsage().rss;
  results.memory = { handshakes: count, before, after, growth: after - before };
  table([
    ['handshakes', 'RSS before', 'RSS after', 'growth'],
    [fmt(count), `${fmt(before / 1e6, 1)} MB`, `${fmt(after / 1e6, 1)} MB`, `${fmt((after - before) / 1e6, 1)} MB`],
  ]);
  console.log(`  target: growth <= 20 MB${global.gc ? '' : '  (run with node --expose-gc for a settled figure)'}`);
}

// ---------------------------------------------------------------------------------------------
console.log('\n6. Stateless: two server processes answer one client interchangeably');
{
  const a = await startServer();
  const b = await startServer();
  // One client, alternating between the two processes: every handshake decrypts.
  let ok = 0;
  for (let i = 0; i < 20; i++) {
    const origin = i % 2 ? b.origin : a.origin;
    if ((await clientHandshake({ uri: `${origin}/token`, secret: SECRET })).length > 800) ok++;
  }
  const header = (path) => ({ method: 'POST', headers: { 'x-tokensec-handshake': clientHeader('x25519', path) } });
  const rows = [['route', '1 process req/s', '2 processes req/s', 'scale', 'p99 ms (2 processes)']];
  results.stateless = { alternating: `${ok}/20` };
  for (const [name, path] of [
    ['inline', '/token'],
    ['workers', '/token-workers'],
  ]) {
    const one = await load({ url: `${a.origin}${path}`, ...header(path) });
    const [ra, rb] = await Promise.all([
      load({ url: `${a.origin}${path}`, ...header(path), connections: 25 }),
      load({ url: `${b.origin}${path}`, ...header(path), connections: 25 }),
    ]);
    const two = ra.requests.average + rb.requests.average;
    results.stateless[name] = { oneProcess: one.requests.average, twoProcesses: two, p99: Math.max(ra.latency.p99, rb.latency.p99) };
    rows.push([name, fmt(one.requests.average), fmt(two), fmt(two / one.requests.average, 2), Math.max(ra.latency.p99, rb.latency.p99)]);
  }
  console.log(`  alternating handshakes: ${ok}/20 decrypted`);
  table(rows);
  console.log('  (2 cores shared with the load generator: the scale is bounded by the machine, not by shared state.)');
  await a.stop();
  await b.stop();
}

// ---------------------------------------------------------------------------------------------
console.log('\n7. DPoP proof check per API call (ES256, proof with ath), µs (one thread, nothing else running)');
{
  const url = 'https://api.example/orders';
  const accessToken = 'x'.repeat(900);
  const options = () => ({ algorithms: ['ES256'], maxAge: 60, clockSkew: 5, replayStore: memoryStore() });
  const count = quick ? 1000 : 3000;
  // One page key making many proofs (the steady state: the key is cached after its first proof)...
  await rotateDpopKey();
  const sameKey = [];
  for (let i = 0; i < count; i++) sameKey.push(await createDpopProof({ method: 'GET', url, accessToken }));
  // ...and one proof from each of many keys (every check imports a new key).
  const newKeys = [];
  for (let i = 0; i < count / 2; i++) {
    await rotateDpopKey();
    newKeys.push(await createDpopProof({ method: 'GET', url, accessToken }));
  }
  const expected = { method: 'GET', url, accessToken };
  async function time(proofs, check) {
    for (const proof of proofs.slice(0, 200)) await check(proof); // warm-up (and key cache for the same key)
    const samples = [];
    for (const proof of proofs.slice(200)) {
      const t0 = process.hrtime.bigint();
      await check(proof);
      samples.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    return { median: median(samples), p99: pct(samples, 0.99), n: samples.length };
  }
  const ours = options();
  const oursNew = options();
  const variants = {
    'tokenSec verifier, cached key': await time(sameKey, (p) => recordProof(checkDpopProof(p, expected, ours), ours)),
    'tokenSec verifier, new key each time': await time(newKeys, (p) => recordProof(checkDpopProof(p, expected, oursNew), oursNew)),
    'jose jwtVerify(EmbeddedJWK), signature and typ only': await time(sameKey, (p) =>
      jwtVerify(p, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256'] }),
    ),
  };
  const rows = [['check', 'median', 'p99', 'n']];
  for (const [name, r] of Object.entries(variants)) rows.push([name, fmt(r.median, 1), fmt(r.p99, 1), r.n]);
  results.dpop = variants;
  table(rows);
  console.log(
    '  target: <= 150 µs per API call with a cached key. Ours also checks htm, htu, iat, ath and the replay store; jose only the JWS.',
  );
}

// ---------------------------------------------------------------------------------------------
console.log('\n8. Replay store: memoryStore() at its defaults, measured on addIfAbsent() alone (a store figure, not requests)');
{
  const { sustained, atMax } = await storeBench({ quick });
  results.store = { sustained, atMax };
  table([
    ['run', 'ids added', 'refused', 'adds/s (store alone)', 'ids held', 'heap MiB'],
    [
      `10,000 new ids/s for ${sustained.adds / 650_000} window(s) of 65 s`,
      fmt(sustained.adds),
      sustained.refused,
      fmt(sustained.addsPerSecond),
      fmt(sustained.heldIds),
      fmt(sustained.heapMiB, 1),
    ],
    ['full at max, 750,000 distinct owners (worst case)', fmt(atMax.heldIds), '-', '-', fmt(atMax.heldIds), fmt(atMax.heapMiB, 1)],
  ]);
  console.log(
    `  target: >= 10,000 adds/s sustained for three windows with none refused; heap <= 128 MiB at the defaults${global.gc ? '' : '  (run with node --expose-gc for a settled figure)'}`,
  );
}

results.machine = { node: process.version, cpus: (await import('node:os')).cpus().length, date: new Date().toISOString().slice(0, 10) };
console.log(`\nNode ${process.version}, ${results.machine.cpus} cores, ${results.machine.date}`);
console.log(JSON.stringify(results));
process.exit(0);
