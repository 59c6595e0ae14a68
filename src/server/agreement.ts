/**
 * The key agreement of a handshake (a fresh server key pair and ECDH with the client's key), the
 * costly ~85% of its crypto: run inline, or on worker threads with `handshake({ workers })`.
 * Both paths run the same function (`agree`), so their bytes are the same; the test vectors pass
 * through each.
 */
import { Worker } from 'node:worker_threads';
import { TokenSecError, type TokenSecErrorCode } from '../protocol/errors.js';
import type { Algorithm } from '../protocol/wire.js';
import { generateServerKeyPair, importServerKeyPair } from './crypto.js';

export interface AgreeInput {
  algorithm: Algorithm;
  publicKey: Uint8Array;
  /** The same key as canonical base64url (the header's), which X25519 imports as it is. */
  publicKeyBase64url?: string | undefined;
  /** A fixed server private key: for the test vectors only. */
  serverPrivateKey?: Uint8Array | undefined;
}

export interface Agreement {
  serverPublicKey: Uint8Array;
  sharedSecret: Uint8Array;
}

/** Throws ERR_TOKENSEC_INVALID_PUBLIC_KEY (400) for a key off the curve or of small order. */
export function agree({ algorithm, publicKey, publicKeyBase64url, serverPrivateKey }: AgreeInput): Agreement {
  const pair = serverPrivateKey ? importServerKeyPair(algorithm, serverPrivateKey) : generateServerKeyPair(algorithm);
  return { serverPublicKey: pair.publicKey, sharedSecret: pair.deriveSharedSecret(publicKey, publicKeyBase64url) };
}

/** Worker to main thread: per job, the agreement or the code of the error it threw. */
export type AgreeResult = [id: number, agreement: Agreement | undefined, error: { code: TokenSecErrorCode; message: string } | undefined];

export interface AgreePool {
  agree(input: AgreeInput): Promise<Agreement>;
  /** Lets jobs in flight finish, then stops the threads. Later handshakes agree inline. */
  close(): Promise<void>;
}

interface PoolWorker {
  worker: Worker;
  /** Jobs sent to this worker and not answered yet. */
  inFlight: Map<number, Job>;
  /** It loaded its script: worth replacing if it dies (one that cannot start would fail again). */
  ready: boolean;
}

interface Job {
  input: AgreeInput;
  resolve(agreement: Agreement): void;
  reject(error: unknown): void;
}

/**
 * A worker inherits the process's Node options, except `--input-type` (meant for `node -e`'s
 * script, it would stop the worker from loading its own); a V8 option such as --expose-gc cannot
 * be passed explicitly, so then the worker gets none.
 */
function startWorker(): Worker {
  const script = new URL('./agree-worker.js', import.meta.url);
  if (!process.execArgv.some((arg) => arg.startsWith('--input-type'))) return new Worker(script);
  try {
    return new Worker(script, { execArgv: process.execArgv.filter((arg) => !arg.startsWith('--input-type')) });
  } catch {
    return new Worker(script, { execArgv: [] });
  }
}

/**
 * `size` worker threads running src/server/agree-worker.ts. Jobs queued in one event-loop turn go
 * to one worker as one message (fewer wake-ups under load); batches take turns among workers,
 * the least busy first. Threads are unref'd while idle, so they never keep a process alive. A
 * worker that dies has its jobs redone inline, and is replaced.
 */
export function createAgreePool(size: number): AgreePool {
  const workers: PoolWorker[] = [];
  let queue: [number, Job][] = [];
  let nextId = 0;
  let flushing = false;
  let closed = false;

  const settle = (job: Job, run: () => Agreement) => {
    try {
      job.resolve(run());
    } catch (error) {
      job.reject(error);
    }
  };

  const spawn = (): PoolWorker => {
    const entry: PoolWorker = {
      worker: startWorker(),
      inFlight: new Map(),
      ready: false,
    };
    entry.worker.on('message', (results: AgreeResult[] | 'ready') => {
      if (results === 'ready') return void (entry.ready = true);
      for (const [id, agreement, error] of results) {
        const job = entry.inFlight.get(id);
        if (!job) continue;
        entry.inFlight.delete(id);
        if (agreement) job.resolve(agreement);
        else if (error) job.reject(new TokenSecError(error.code as TokenSecErrorCode, error.message, 400));
        else settle(job, () => agree(job.input));
      }
      if (entry.inFlight.size === 0) entry.worker.unref();
    });
    // A crash or a termination with jobs in flight: redo them inline, and replace the worker. One
    // that never started is not replaced: handshakes then agree inline, and Node says why.
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
      for (const job of entry.inFlight.values()) settle(job, () => agree(job.input));
      entry.inFlight.clear();
    };
    entry.worker.on('error', lost);
    entry.worker.on('exit', () => lost());
    // After the listeners: adding a 'message' listener refs the worker again.
    entry.worker.unref();
    return entry;
  };
  for (let i = 0; i < size; i++) workers.push(spawn());

  const flush = () => {
    flushing = false;
    const batch = queue;
    queue = [];
    const entry = workers.reduce<PoolWorker | undefined>((a, b) => (a && a.inFlight.size <= b.inFlight.size ? a : b), undefined);
    // Every worker failed to start since these were queued: do them here.
    if (!entry) return batch.forEach(([, job]) => settle(job, () => agree(job.input)));
    for (const [id, job] of batch) entry.inFlight.set(id, job);
    entry.worker.ref();
    entry.worker.postMessage(batch.map(([id, job]) => [id, job.input]));
  };

  return {
    agree(input) {
      if (closed || workers.length === 0) return Promise.resolve().then(() => agree(input));
      return new Promise<Agreement>((resolve, reject) => {
        queue.push([nextId++, { input, resolve, reject }]);
        if (!flushing) {
          flushing = true;
          setImmediate(flush);
        }
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      // Jobs queued this turn still go out; then wait for every answer before stopping.
      if (flushing) flush();
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
