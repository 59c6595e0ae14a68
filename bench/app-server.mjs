// The app as users run it, for the first table of `npm run bench`: express-session, a CSRF
// middleware (csrf-sync), a token endpoint minting an ES256 JWT with jose bound to the browser's
// DPoP key, and API routes checking that JWT with jose's jwtVerify. Each TokenSec route has two
// neighbours in the same process:
//   plain  what the app has without TokenSec (no DPoP, no handshake);
//   floor  the plain route plus exactly the cryptography TokenSec must do, by hand with node:crypto
//          (API call: one signature verify with a cached key and the `ath` hash; handshake: the
//          proof's verify, a fresh X25519 key, the agreement, HKDF and AES-GCM).
// TokenSec's own cost is its route minus the floor route. Run as a child process by bench/index.mjs
// (`node bench/app-server.mjs`); REDIS_URL adds /api-redis (the same API call, replay ids in Redis),
// REDIS_CLUSTER_NODES /api-cluster (the same on a Redis Cluster through node-redis's createCluster).
import {
  createCipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  randomFillSync,
  verify,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import express from 'express';
import session from 'express-session';
import { csrfSync } from 'csrf-sync';
import { SignJWT, jwtVerify, generateKeyPair } from 'jose';
import tokenSec from '../dist/index.js';

export const MAX_AGE = 60; // the proof acceptance window of TokenSec 3.1 (seconds)
const ALGORITHMS = ['ES256', 'EdDSA'];

// The app's token-signing key (Web Crypto keys through jose: no KeyObject is exported as JWK).
const signing = await generateKeyPair('ES256');
const mint = (sub, jkt) =>
  new SignJWT(jkt ? { sub, cnf: { jkt } } : { sub }).setProtectedHeader({ alg: 'ES256' }).setExpirationTime('5m').sign(signing.privateKey);
const verifyToken = async (token) => (await jwtVerify(token, signing.publicKey, { algorithms: ['ES256'] })).payload;

const app = express();
const sessionOptions = { secret: 'bench-session-secret-0123456789', resave: false, saveUninitialized: false };
const sessions = session(sessionOptions);
const { csrfSynchronisedProtection, generateToken } = csrfSync();
const fail = (res, status, code) => res.status(status).json({ code });

// A user logs in: a session, and the CSRF token the page would get.
const login = (req, res) => {
  req.session.user = 'bench';
  // The page's initialize() (mounted app-wide in the README) hands the token over in its cookie,
  // which every later request carries back, as a browser's would.
  req.csrfToken = () => generateToken(req);
  initialize(req, res, () => res.json({ csrfToken: generateToken(req) }));
};
app.post('/login', sessions, login);
// The bench mints the API calls' access tokens (bound to the proof key) through the app's key.
app.get('/mint', async (req, res) => res.json({ token: await mint('bench', req.query.jkt) }));

// ---------------------------------------------------------------------------------------------
// Token endpoint.
const tokenRoute = [sessions, csrfSynchronisedProtection];
app.post('/token-plain', tokenRoute, async (req, res) => res.json({ token: await mint(req.session.user) }));

/** Random bytes taken from one buffer, refilled 4 KiB at a time (one CSPRNG call costs ~5 µs whatever its size). */
const pool = { buffer: Buffer.alloc(4096), offset: 4096 };
function random(length) {
  if (pool.offset + length > pool.buffer.length) (randomFillSync(pool.buffer), (pool.offset = 0));
  return Buffer.from(pool.buffer.subarray(pool.offset, (pool.offset += length)));
}

/** Proof public keys, by the proof header's base64url (identical for every proof of one key). */
const proofKeys = new Map();
function proofKey(encodedHeader) {
  let entry = proofKeys.get(encodedHeader);
  if (!entry) {
    const { alg, jwk } = JSON.parse(Buffer.from(encodedHeader, 'base64url').toString());
    if (!ALGORITHMS.includes(alg)) throw new Error('alg');
    const members = jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    const jkt = createHash('sha256').update(JSON.stringify(members)).digest('base64url');
    entry = { key, jkt, options: alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key, hash: alg === 'ES256' ? 'sha256' : null };
    proofKeys.set(encodedHeader, entry);
  }
  return entry;
}
/** One signature verify with a cached key; returns the key's entry and the claims. */
function verifyProof(proof) {
  const [header, payload, signature] = String(proof).split('.');
  const entry = proofKey(header);
  const ok = verify(entry.hash, Buffer.from(`${header}.${payload}`), entry.options, Buffer.from(signature, 'base64url'));
  if (!ok) throw new Error('signature');
  return { entry, claims: JSON.parse(Buffer.from(payload, 'base64url').toString()) };
}

app.post('/token-floor', tokenRoute, async (req, res) => {
  let entry, shared, serverPublic, clientPublic;
  try {
    ({ entry } = verifyProof(req.headers.dpop));
    clientPublic = req.headers['x-tokensec-handshake'].split('.')[2];
    // A fresh X25519 key from 32 CSPRNG bytes, and the agreement with the client's key.
    const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: random(32).toString('base64url'), x: '' }, format: 'jwk' });
    serverPublic = Buffer.from(privateKey.export({ format: 'jwk' }).x, 'base64url');
    shared = diffieHellman({
      privateKey,
      publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: clientPublic }, format: 'jwk' }),
    });
  } catch {
    return fail(res, 400, 'floor');
  }
  const token = await mint(req.session.user, entry.jkt);
  const info = Buffer.concat([Buffer.from(clientPublic, 'base64url'), serverPublic]);
  const key = Buffer.from(hkdfSync('sha256', shared, req.headers['x-csrf-token'], info, 32));
  const iv = random(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(info);
  const sealed = Buffer.concat([cipher.update(token, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  res.json({ handshake: `v3.${serverPublic.toString('base64url')}.${iv.toString('base64url')}.${sealed.toString('base64url')}` });
});

const handshakeOptions = {
  payload: (req, _res, { jkt }) => mint(req.session.user, jkt),
  terminate: true,
  dpop: { algorithms: ALGORITHMS, maxAge: MAX_AGE },
};
const initialize = tokenSec.initialize({ cookie: true }); // mounted app-wide in the README
app.post('/token', tokenRoute, initialize, tokenSec.handshake(handshakeOptions));
const withWorkers = tokenSec.handshake({ ...handshakeOptions, workers: Number(process.env.WORKERS ?? 1) });
app.post('/token-workers', tokenRoute, initialize, withWorkers);

// ---------------------------------------------------------------------------------------------
// API call.
app.get('/api-plain', async (req, res) => {
  const authorization = req.headers.authorization ?? '';
  if (!authorization.startsWith('Bearer ')) return fail(res, 401, 'bearer');
  try {
    res.json({ sub: (await verifyToken(authorization.slice(7))).sub });
  } catch {
    fail(res, 401, 'token');
  }
});
app.get('/api-floor', async (req, res) => {
  const authorization = req.headers.authorization ?? '';
  if (!authorization.startsWith('DPoP ')) return fail(res, 401, 'dpop');
  const token = authorization.slice(5);
  try {
    const { claims } = verifyProof(req.headers.dpop);
    if (claims.ath !== createHash('sha256').update(token).digest('base64url')) throw new Error('ath');
    res.json({ sub: (await verifyToken(token)).sub });
  } catch {
    fail(res, 401, 'floor');
  }
});
const dpopOptions = { verifyToken, algorithms: ALGORITHMS, maxAge: MAX_AGE };
const respond = (req, res) => res.json({ sub: req.tokenSec.claims.sub });
app.get('/api', tokenSec.dpop(dpopOptions), respond);
let redis;
if (process.env.REDIS_URL) {
  const { createClient } = await import('redis');
  redis = await createClient({ url: process.env.REDIS_URL }).connect();
  const replayStore = tokenSec.redisReplayStore({ client: redis });
  app.get('/api-redis', tokenSec.dpop({ ...dpopOptions, replayStore }), respond);
  // The token endpoint with both of its stores in Redis: sessions (connect-redis) and replay ids.
  const { RedisStore } = await import('connect-redis');
  const redisSessions = session({ ...sessionOptions, store: new RedisStore({ client: redis }) });
  app.post('/login-redis', redisSessions, login);
  const redisHandshake = tokenSec.handshake({ ...handshakeOptions, dpop: { ...handshakeOptions.dpop, replayStore } });
  app.post('/token-redis', redisSessions, csrfSynchronisedProtection, initialize, redisHandshake);
}
let cluster;
if (process.env.REDIS_CLUSTER_NODES) {
  // The same two routes on a Redis Cluster: sessions and replay ids on one node-redis cluster client.
  const { createCluster } = await import('redis');
  cluster = createCluster({ rootNodes: process.env.REDIS_CLUSTER_NODES.split(',').map((url) => ({ url })) });
  await cluster.connect();
  const replayStore = tokenSec.redisStore({ client: cluster });
  app.get('/api-cluster', tokenSec.dpop({ ...dpopOptions, replayStore }), respond);
  const { RedisStore } = await import('connect-redis');
  const clusterSessions = session({ ...sessionOptions, store: new RedisStore({ client: cluster }) });
  app.post('/login-cluster', clusterSessions, login);
  const clusterHandshake = tokenSec.handshake({ ...handshakeOptions, dpop: { ...handshakeOptions.dpop, replayStore } });
  app.post('/token-cluster', clusterSessions, csrfSynchronisedProtection, initialize, clusterHandshake);
}
app.use((err, _req, res, _next) => res.status(err.status ?? 500).json({ code: err.code ?? 'error' }));

const server = app.listen(0, '127.0.0.1', () => process.send?.({ port: server.address().port }));
server.keepAliveTimeout = 60_000;

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
// A CPU profile of the main thread around one run, for the bench's breakdown (sampling every 100 µs).
const { Session } = await import('node:inspector');
const inspector = new Session();
const post = (method, params) => new Promise((resolve, reject) => inspector.post(method, params, (e, r) => (e ? reject(e) : resolve(r))));
process.on('message', async (message) => {
  if (message === 'profile-start') {
    inspector.connect();
    await post('Profiler.enable');
    await post('Profiler.setSamplingInterval', { interval: 100 });
    await post('Profiler.start');
    process.send?.({ started: true });
  }
  if (message === 'profile-stop') {
    const { profile } = await post('Profiler.stop');
    inspector.disconnect();
    process.send?.({ profile });
  }
  if (message === 'cpu') process.send?.({ cpu: process.cpuUsage(), main: mainThreadCpu() });
  if (message === 'stop') withWorkers.close().then(() => process.exit(0));
});
