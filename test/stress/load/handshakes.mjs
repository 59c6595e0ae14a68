// Load: N handshakes at concurrency C against a server listening on 127.0.0.1, in its own
// process (started with --expose-gc so memory can be measured after collection). Uses the built
// package: dist/index.js (server) and dist/browser/tokensec.mjs (client, on Node's Web Crypto).
// Prints one JSON line. Bounded in count and time: N handshakes or 120 s, whichever comes first
// (a quiet 2-core machine does 10,000 in about 40 s; one CI-like run under a load average of 13
// did 8,027 in the 120 s), so it reports how many it started.
import express from 'express';
import tokenSec from '../../../dist/index.js';
import { handshake } from '../../../dist/browser/tokensec.mjs';

const total = Number(process.argv[2] ?? 10_000);
const concurrency = Number(process.argv[3] ?? 100);
const deadline = Date.now() + 120_000;
const PAYLOAD = 'eyJhbGciOiJIUzI1NiJ9.' + 'x'.repeat(850) + '.sig';

let unhandled = 0;
process.on('unhandledRejection', () => unhandled++);

const app = express();
app.post('/token', tokenSec.handshake({ payload: async () => PAYLOAD, secret: 'load-secret-0123456789', terminate: true }));
app.use((err, _req, res, _next) => res.status(err.status ?? 500).json({ code: err.code }));
const server = app.listen(0, '127.0.0.1');
await new Promise((resolve) => server.once('listening', resolve));
const uri = `http://127.0.0.1:${server.address().port}/token`;

async function run(count) {
  let ok = 0;
  let failed = 0;
  let next = 0;
  const codes = {};
  const worker = async () => {
    while (next < count && Date.now() < deadline) {
      next++;
      try {
        if ((await handshake({ uri, secret: 'load-secret-0123456789' })) === PAYLOAD) ok++;
        else failed++;
      } catch (error) {
        failed++;
        codes[error.code] = (codes[error.code] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { started: next, ok, failed, codes };
}

const settle = async () => {
  for (let i = 0; i < 3; i++) {
    global.gc();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return process.memoryUsage();
};

await run(500); // warm-up: JIT, connection pool, module caches
const before = await settle();
const started = Date.now();
const result = await run(total);
const ms = Date.now() - started;
const after = await settle();
server.close();
console.log(
  JSON.stringify({
    total,
    concurrency,
    ...result,
    unhandled,
    ms,
    heapBefore: before.heapUsed,
    heapAfter: after.heapUsed,
    rssBefore: before.rss,
    rssAfter: after.rss,
  }),
);
process.exit(0);
