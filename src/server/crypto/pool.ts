/**
 * Worker threads for `handshake({ workers })`: each runs worker.ts, which runs the jobs of
 * jobs.ts (the DPoP proof's signature; key pair, ECDH and HKDF; and the encryption too when the
 * payload is a string option), the crypto that would otherwise hold the main thread.
 */
import { Worker } from 'node:worker_threads';
import { TokenSecError } from '../../protocol/errors.js';
import { runCryptoJob, unpackResponseKey, type CryptoJob, type CryptoJobAnswer, type CryptoJobResult } from './jobs.js';

export interface CryptoPool {
  run<J extends CryptoJob>(job: J): Promise<CryptoJobResult<J>>;
  /** Lets jobs in flight finish, then stops the threads. Later jobs run inline. */
  close(): Promise<void>;
}

/**
 * The most jobs sent as one message. Under load, jobs arrive faster than a worker finishes them;
 * without a cap a whole event-loop turn's worth goes at once and the two threads take turns
 * waiting for each other. Measured here: batches of 4 to 8 served ~20% more than unbounded ones.
 */
const MAX_BATCH = 8;

interface PoolWorker {
  worker: Worker;
  /** Jobs sent to this worker and not answered yet. */
  inFlight: Map<number, Pending>;
  /** It loaded its script: worth replacing if it dies (one that cannot start would fail again). */
  ready: boolean;
}

interface Pending {
  job: CryptoJob;
  resolve(result: ReturnType<typeof runCryptoJob>): void;
  reject(error: unknown): void;
}

/**
 * A worker inherits the process's Node options, except `--input-type` (meant for `node -e`'s
 * script, it would stop the worker from loading its own); a V8 option such as --expose-gc cannot
 * be passed explicitly, so then the worker gets none.
 */
function startWorker(script: URL): Worker {
  if (!process.execArgv.some((arg) => arg.startsWith('--input-type'))) return new Worker(script);
  try {
    return new Worker(script, { execArgv: process.execArgv.filter((arg) => !arg.startsWith('--input-type')) });
  } catch {
    return new Worker(script, { execArgv: [] });
  }
}

/** Runs a job here, on the main thread: after close(), or when no worker could start. */
function runInline(pending: Pending): void {
  try {
    pending.resolve(runCryptoJob(pending.job));
  } catch (error) {
    pending.reject(error);
  }
}

/**
 * `size` worker threads. A job goes out at once when a worker is idle; otherwise jobs queue until
 * the end of the event-loop turn or MAX_BATCH of them, and go to the least busy worker as one
 * message. Threads are unref'd while idle, so they never keep a process alive. A worker that
 * dies has its jobs redone inline, and is replaced. `script`: the worker entry (the protocol
 * vectors' test gives its fixed-key one, test/support/vector-worker.mjs).
 */
export function createCryptoPool(size: number, script = new URL('./worker.js', import.meta.url)): CryptoPool {
  const workers: PoolWorker[] = [];
  let queue: [number, Pending][] = [];
  let nextId = 0;
  let flushScheduled = false;
  let closed = false;

  const spawn = (): PoolWorker => {
    const entry: PoolWorker = { worker: startWorker(script), inFlight: new Map(), ready: false };
    entry.worker.on('message', (answers: CryptoJobAnswer[] | 'ready') => {
      if (answers === 'ready') return void (entry.ready = true);
      for (const [id, result, error] of answers) {
        const pending = entry.inFlight.get(id);
        if (!pending) {
          if (result instanceof Uint8Array) result.fill(0); // a response key nobody waits for any more
          continue;
        }
        entry.inFlight.delete(id);
        if (typeof result === 'string' || typeof result === 'boolean') pending.resolve(result);
        else if (result && pending.job.kind !== 'proof') pending.resolve(unpackResponseKey(result, pending.job.input.algorithm));
        else if (error) pending.reject(new TokenSecError(error.code, error.message, error.status));
        else runInline(pending);
      }
      if (entry.inFlight.size === 0) entry.worker.unref();
      // Jobs that queued while every worker was busy need not wait for the end of the turn.
      if (queue.length > 0) flush();
    });
    // A crash or a termination with jobs in flight: redo them inline, and replace the worker. One
    // that never started is not replaced: its share then runs inline, and Node says why.
    const lost = (error?: unknown) => {
      const index = workers.indexOf(entry);
      if (index !== -1) {
        workers.splice(index, 1, ...(closed || !entry.ready ? [] : [spawn()]));
        if (!entry.ready && !closed) {
          const reason = error instanceof Error ? `: ${error.message}` : '';
          process.emitWarning(
            `A TokenSec handshake worker could not start${reason}. Its share of handshakes runs inline.`,
            'TokenSecWarning',
          );
        }
      }
      for (const pending of entry.inFlight.values()) runInline(pending);
      entry.inFlight.clear();
    };
    entry.worker.on('error', lost);
    entry.worker.on('exit', () => lost());
    // After the listeners: adding a 'message' listener refs the worker again.
    entry.worker.unref();
    return entry;
  };
  for (let i = 0; i < size; i++) workers.push(spawn());

  const leastBusy = () => workers.reduce<PoolWorker | undefined>((a, b) => (a && a.inFlight.size <= b.inFlight.size ? a : b), undefined);

  const flush = () => {
    if (queue.length === 0) return;
    const batch = queue;
    queue = [];
    const entry = leastBusy();
    // Every worker failed to start since these were queued: run them here.
    if (!entry) return batch.forEach(([, pending]) => runInline(pending));
    for (const [id, pending] of batch) entry.inFlight.set(id, pending);
    entry.worker.ref();
    entry.worker.postMessage(batch.map(([id, pending]) => [id, pending.job]));
  };

  const endOfTurn = () => {
    flushScheduled = false;
    flush();
  };

  return {
    run<J extends CryptoJob>(job: J) {
      return new Promise<CryptoJobResult<J>>((resolve, reject) => {
        const pending: Pending = { job, resolve: resolve as Pending['resolve'], reject };
        if (closed || workers.length === 0) return void queueMicrotask(() => runInline(pending));
        queue.push([nextId++, pending]);
        if (queue.length >= MAX_BATCH || (leastBusy()?.inFlight.size ?? 0) === 0) flush();
        else if (!flushScheduled) {
          flushScheduled = true;
          setImmediate(endOfTurn);
        }
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      // Jobs still queued go out; then wait for every answer before stopping.
      flush();
      await Promise.all(
        workers.map(
          (entry) =>
            new Promise<void>((resolve) => {
              const stopWhenIdle = () => {
                if (entry.inFlight.size > 0) return void setTimeout(stopWhenIdle, 1);
                entry.worker.once('exit', () => resolve());
                void entry.worker.terminate();
              };
              stopWhenIdle();
            }),
        ),
      );
      workers.length = 0;
    },
  };
}
