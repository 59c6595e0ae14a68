/**
 * A worker thread of `handshake({ workers })`: runs `agree` (a fresh server key pair and ECDH) for
 * each job of a batch and answers the batch in one message. Keys come from CSPRNG bytes imported
 * as JWK, as on the main thread (see crypto.ts: no generateKeyPairSync).
 */
import { parentPort } from 'node:worker_threads';
import { TokenSecError } from '../protocol/errors.js';
import { agree, type AgreeInput, type AgreeResult } from './agreement.js';

parentPort?.on('message', (jobs: [number, AgreeInput][]) => {
  const results = jobs.map(([id, input]): AgreeResult => {
    try {
      return [id, agree(input), undefined];
    } catch (error) {
      // A refused key: its code and message (never the key). Anything else: no answer, and the
      // main thread redoes the job inline, so the error it raises is the real one.
      return [id, undefined, error instanceof TokenSecError ? { code: error.code, message: error.message } : undefined];
    }
  });
  parentPort?.postMessage(results);
});
// Loaded and listening: the pool replaces a worker that dies after this, not one that never starts.
parentPort?.postMessage('ready');
