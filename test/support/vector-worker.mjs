// The crypto worker of the protocol vectors' test (test/integration/workers.test.ts): the
// production message loop (serve-jobs.js) and the production derivation (primitives.js
// deriveResponseKey, encryptPayload), with the vector's fixed server key and IV. Production jobs never
// carry a fixed key or IV; this entry takes them from the job's `vector` field.
import { serveCryptoJobs } from '../../dist/server/crypto/serve-jobs.js';
import { deriveResponseKey, encryptPayload, importServerKeyPair } from '../../dist/server/crypto/primitives.js';

serveCryptoJobs((job) => {
  const { input, vector } = job;
  const pair = importServerKeyPair(input.algorithm, vector.serverPrivateKey);
  const sharedSecret = pair.deriveSharedSecret(input.publicKey, input.publicKeyBase64url);
  const key = deriveResponseKey({
    request: input,
    serverPublicKey: pair.publicKey,
    sharedSecret,
    secret: input.secret,
    target: input.target,
  });
  return job.kind === 'seal' ? encryptPayload(key, input.payload, vector.iv) : key;
});
