// The app under load: the same ~900-byte token served as plain JSON and by a TokenSec handshake,
// inline and with worker threads.
// Run as a child process by bench/index.mjs: `node bench/server.mjs <port>`; prints "ready".
import { readFileSync } from 'node:fs';
import express from 'express';
import tokenSec from '../dist/index.js';

export const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.' + 'eyJzdWIiOiJiZW5jaCJ9'.repeat(43) + '.c2ln';
export const SECRET = 'bench-secret-0123456789';

const app = express();
app.get('/', (_req, res) => res.type('html').send('<!doctype html><title>bench</title><script src="/tokensec.js"></script>'));
app.get('/tokensec.js', tokenSec.client());
app.get('/plain', (_req, res) => res.json({ token: TOKEN }));
// autocannon repeats one request, and a DPoP proof is single-use: the throughput figures measure
// the handshake without a proof; section 7 of bench/index.mjs measures the proof check on its own.
const options = { payload: TOKEN, secret: SECRET, terminate: true, dpop: { required: false, sessionKey: false } };
app.post('/token', tokenSec.handshake(options));
// The same with the crypto on worker threads (WORKERS, default 1: the second core here). A string
// payload is agreed and sealed in one worker job; a payload function's is encrypted on the main
// thread once the function returns, as most apps mint the token per request.
const workers = Number(process.env.WORKERS ?? 1);
const withWorkers = tokenSec.handshake({ ...options, workers });
app.post('/token-workers', withWorkers);
const withWorkersFn = tokenSec.handshake({ ...options, payload: () => TOKEN, workers });
app.post('/token-workers-fn', withWorkersFn);
app.use((err, _req, res, _next) => res.status(err.status ?? 500).json({ code: err.code }));

const port = Number(process.argv[2] ?? 0);
const server = app.listen(port, '127.0.0.1', () => {
  process.send?.({ port: server.address().port });
});
/**
 * The main thread's own CPU µs: Linux's per-thread scheduler statistics (nanoseconds), else its
 * per-thread stat counters (10 ms ticks); undefined elsewhere.
 */
function mainThreadCpu() {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]) / 1000;
  } catch {
    try {
      const fields = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1].split(' ');
      return (Number(fields[11]) + Number(fields[12])) * 10_000; // utime + stime, at 100 ticks per second
    } catch {
      return undefined;
    }
  }
}

// The bench asks for this process's CPU time (all threads, workers included) around each run.
process.on('message', (message) => {
  if (message === 'cpu') process.send?.({ cpu: process.cpuUsage(), main: mainThreadCpu() });
  if (message === 'stop') Promise.all([withWorkers.close(), withWorkersFn.close()]).then(() => server.close(() => process.exit(0)));
});
