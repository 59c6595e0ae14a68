/**
 * A worker thread of `handshake({ workers })`: runs each job of a batch (jobs.ts) and
 * answers the batch in one message. Keys come from CSPRNG bytes imported as JWK, as on the main
 * thread (see primitives.ts: no generateKeyPairSync).
 */
import { parentPort } from 'node:worker_threads';
import { TokenSecError } from '../../protocol/errors.js';
import { packResponseKey, runCryptoJob, type CryptoJob, type CryptoJobAnswer } from './jobs.js';

parentPort?.on('message', (jobs: [number, CryptoJob][]) => {
  const moved: ArrayBuffer[] = [];
  const answers = jobs.map(([id, job]): CryptoJobAnswer => {
    try {
      const result = runCryptoJob(job);
      if (typeof result === 'string' || typeof result === 'boolean') return [id, result, undefined];
      const packed = packResponseKey(result);
      moved.push(packed.buffer as ArrayBuffer);
      return [id, packed, undefined];
    } catch (error) {
      // A refused key: its code, message and status (never the key). Anything else: no answer,
      // and the main thread redoes the job inline, so the error it raises is the real one.
      return [
        id,
        undefined,
        error instanceof TokenSecError ? { code: error.code, message: error.message, status: error.status ?? 500 } : undefined,
      ];
    }
  });
  // The packed keys are moved, not copied: none stays on this thread.
  parentPort?.postMessage(answers, moved);
});
// Loaded and listening: the pool replaces a worker that dies after this, not one that never starts.
parentPort?.postMessage('ready');
