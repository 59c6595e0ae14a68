/**
 * A worker thread of `handshake({ workers })`: serves the jobs of jobs.ts (serve-jobs.ts). Keys
 * come from CSPRNG bytes imported as JWK, as on the main thread (see primitives.ts: no
 * generateKeyPairSync).
 */
import { runCryptoJob } from './jobs.js';
import { serveCryptoJobs } from './serve-jobs.js';

serveCryptoJobs(runCryptoJob);
