// Regression: X25519 server key pairs made in a tight loop under heavy GC pressure. On Node 20,
// keys from generateKeyPairSync exported as JWK deadlocked here within a few thousand rounds
// (GC finalizing the key-generation job while the export held the key's mutex). Prints the
// number of rounds and exits; the test gives it a deadline.
import { generateServerKeyPair } from '../../../dist/server/crypto/primitives.js';

const rounds = Number(process.argv[2] ?? 100_000);
let junk = [];
for (let i = 0; i < rounds; i++) {
  const pair = generateServerKeyPair('x25519');
  if (pair.publicKey.length !== 32) throw new Error('bad key');
  junk.push(new Array(64).fill(i)); // keep the young generation busy: frequent scavenges
  if (junk.length > 500) junk = [];
}
console.log(rounds);
