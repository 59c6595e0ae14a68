/**
 * A crypto worker's message loop: runs each job of a batch and answers the batch in one message.
 * worker.ts serves the production jobs (jobs.ts) with it; the protocol vectors' test serves
 * fixed-key jobs with the same loop (test/support/vector-worker.mjs).
 */
import { parentPort } from 'node:worker_threads';
import { TokenSecError } from '../../protocol/errors.js';
import { packResponseKey, type CryptoJob, type CryptoJobAnswer } from './jobs.js';
import type { ResponseKey } from './primitives.js';

export function serveCryptoJobs(run: (job: CryptoJob) => ResponseKey | string | boolean): void {
  parentPort?.on('message', (jobs: [number, CryptoJob][]) => {
    const moved: ArrayBuffer[] = [];
    const answers = jobs.map(([id, job]): CryptoJobAnswer => {
      try {
        const result = run(job);
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
}
