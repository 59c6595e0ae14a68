// The app as users run it, for the first table of `npm run bench`: express-session, a CSRF
// middleware (csrf-sync), a token endpoint minting an ES256 JWT with jose bound to the browser's
// DPoP key, and API routes checking that JWT with jose's jwtVerify. Each TokenSec route has two
// neighbours in the same process:
//   plain  what the app has without TokenSec (no DPoP, no handshake);
//   floor  the plain route plus exactly the cryptography TokenSec must do, by hand with node:crypto,
//          and the checks RFC 9449 §4.3 and §11.1 require of any verifier (typ, alg, the key,
//          htm, htu, iat inside the window, a well-formed jti, the jti in a replay set, ath)
//          (API call: one signature verify with a cached key and the `ath` hash; handshake: the
//          proof's verify, a fresh X25519 key, the agreement, HKDF and AES-GCM).
// TokenSec's own cost is its route minus the floor route. The API call also has two peers, the
// DPoP checks a user would write without TokenSec: oauth4webapi's validateJwtAccessToken with
// requireDPoP (RFC 9068 tokens, the JWKS from this app's /jwks), and a check with jose's jwtVerify
// of the proof with its embedded key; neither keeps a replay set, so each is given the floor's. Run as a child process by bench/index.mjs
// (`node bench/app-server.mjs`); REDIS_URL adds /api-redis (the same API call, replay ids in Redis),
// REDIS_CLUSTER_NODES /api-cluster (the same on a Redis Cluster through node-redis's createCluster).
import {
  createCipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomUUID,
  hkdfSync,
  randomFillSync,
  verify,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import express from 'express';
import session from 'express-session';
import { csrfSync } from 'csrf-sync';
import { EmbeddedJWK, SignJWT, calculateJwkThumbprint, exportJWK, jwtVerify, generateKeyPair } from 'jose';
import * as oauth from 'oauth4webapi';
import tokenSec from '../dist/index.js';

export const MAX_AGE = 60; // TokenSec's default proof acceptance window (seconds)
const CLOCK_SKEW = 5; // and its default clock skew
const ALGORITHMS = ['ES256', 'EdDSA'];

// The app's token-signing key (Web Crypto keys through jose: no KeyObject is exported as JWK).
// RFC 9068 access tokens (typ at+jwt, iss, aud, client_id, jti), which oauth4webapi requires; every
// API route verifies the same tokens with the same checks.
const signing = await generateKeyPair('ES256');
const ISSUER = 'https://issuer.bench.example';
const AUDIENCE = 'https://api.bench.example';
const mint = (sub, jkt) =>
  new SignJWT({ sub, client_id: 'bench-client', ...(jkt ? { cnf: { jkt } } : {}) })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(signing.privateKey);
const tokenChecks = { algorithms: ['ES256'], issuer: ISSUER, audience: AUDIENCE, typ: 'at+jwt' };
const verifyToken = async (token) => (await jwtVerify(token, signing.publicKey, tokenChecks)).payload;
const jwks = { keys: [{ ...(await exportJWK(signing.publicKey)), alg: 'ES256', use: 'sig', kid: 'bench' }] };

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
app.get('/jwks', (_req, res) => res.json(jwks));

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
    const { typ, alg, jwk } = JSON.parse(Buffer.from(encodedHeader, 'base64url').toString());
    if (typ !== 'dpop+jwt' || !ALGORITHMS.includes(alg) || typeof jwk !== 'object' || 'd' in jwk) throw new Error('header');
    const members = jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    const jkt = createHash('sha256').update(JSON.stringify(members)).digest('base64url');
    entry = { key, jkt, options: alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key, hash: alg === 'ES256' ? 'sha256' : null };
    proofKeys.set(encodedHeader, entry);
  }
  return entry;
}
/**
 * Replay ids as RFC 9449 §11.1 asks of any verifier: each id kept for the acceptance window, in
 * two Sets rotated once per window (an id is refused while it is in either).
 */
function replaySet(seconds = MAX_AGE + CLOCK_SKEW) {
  let current = new Set();
  let previous = new Set();
  let rotateAt = Date.now() + seconds * 1000;
  return (id) => {
    const now = Date.now();
    if (now >= rotateAt) {
      previous = now - rotateAt >= seconds * 1000 ? new Set() : current;
      current = new Set();
      rotateAt = now + seconds * 1000;
    }
    if (current.has(id) || previous.has(id)) return false;
    current.add(id);
    return true;
  };
}
const JTI = /^[\x21-\x7e]{1,256}$/;
/** The claims RFC 9449 §4.3 asks a verifier to check, the replay set last; throws on any failure. */
function checkClaims(claims, method, url, firstUse, jkt) {
  const now = Date.now() / 1000;
  if (claims.htm !== method || claims.htu !== url) throw new Error('htm/htu');
  if (!Number.isInteger(claims.iat) || claims.iat > now + CLOCK_SKEW || claims.iat < now - MAX_AGE - CLOCK_SKEW) throw new Error('iat');
  if (typeof claims.jti !== 'string' || !JTI.test(claims.jti)) throw new Error('jti');
  if (!firstUse(`${jkt}:${claims.jti}`)) throw new Error('replayed');
}
/** The URL a proof for this request must name (this app is reached at 127.0.0.1). */
const requestUrl = (req) => `http://${req.headers.host}${req.originalUrl.split('?')[0]}`;
/** One signature verify with a cached key; returns the key's entry and the claims. */
function verifyProof(proof) {
  const [header, payload, signature] = String(proof).split('.');
  const entry = proofKey(header);
  const ok = verify(entry.hash, Buffer.from(`${header}.${payload}`), entry.options, Buffer.from(signature, 'base64url'));
  if (!ok) throw new Error('signature');
  return { entry, claims: JSON.parse(Buffer.from(payload, 'base64url').toString()) };
}

const tokenFloorReplay = replaySet();
app.post('/token-floor', tokenRoute, async (req, res) => {
  let entry, shared, serverPublic, clientPublic;
  try {
    let claims;
    ({ entry, claims } = verifyProof(req.headers.dpop));
    checkClaims(claims, 'POST', requestUrl(req), tokenFloorReplay, entry.jkt);
    if (claims.tsh !== createHash('sha256').update(req.headers['x-tokensec-handshake']).digest('base64url')) throw new Error('tsh');
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
const apiFloorReplay = replaySet();
app.get('/api-floor', async (req, res) => {
  const authorization = req.headers.authorization ?? '';
  if (!authorization.startsWith('DPoP ')) return fail(res, 401, 'dpop');
  const token = authorization.slice(5);
  try {
    const { entry, claims } = verifyProof(req.headers.dpop);
    if (claims.ath !== createHash('sha256').update(token).digest('base64url')) throw new Error('ath');
    const verified = await verifyToken(token);
    if (verified.cnf?.jkt !== entry.jkt) throw new Error('cnf');
    checkClaims(claims, 'GET', requestUrl(req), apiFloorReplay, entry.jkt);
    res.json({ sub: verified.sub });
  } catch {
    fail(res, 401, 'floor');
  }
});

// Peer: oauth4webapi's resource-server validation (RFC 6750, 9068, 9449), DPoP required. It takes a
// Fetch Request and the issuer's metadata; the JWKS comes from /jwks once and is kept in its cache.
const issuerMetadata = { issuer: ISSUER, jwks_uri: '' };
const oauthJwksCache = {};
const oauthReplay = replaySet();
app.get('/api-oauth4webapi', async (req, res) => {
  issuerMetadata.jwks_uri ||= `http://${req.headers.host}/jwks`;
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string') headers.set(name, value);
  try {
    const claims = await oauth.validateJwtAccessToken(issuerMetadata, new Request(requestUrl(req), { headers }), AUDIENCE, {
      requireDPoP: true,
      signingAlgorithms: ['ES256', 'EdDSA', 'Ed25519'],
      [oauth.jwksCache]: oauthJwksCache,
      [oauth.allowInsecureRequests]: true,
    });
    // It checks the proof but keeps no replay set (its docs leave jti to the caller).
    const { jti } = JSON.parse(Buffer.from(String(req.headers.dpop).split('.')[1], 'base64url').toString());
    if (typeof jti !== 'string' || !JTI.test(jti) || !oauthReplay(`${claims.cnf.jkt}:${jti}`)) throw new Error('replayed');
    res.json({ sub: claims.sub });
  } catch {
    fail(res, 401, 'oauth4webapi');
  }
});

// Peer: a DPoP check written with jose the way its documentation suggests: jwtVerify of the proof
// with the key it embeds, then the claims RFC 9449 asks for, then the access token.
const joseReplay = replaySet();
app.get('/api-jose', async (req, res) => {
  const authorization = req.headers.authorization ?? '';
  if (!authorization.startsWith('DPoP ')) return fail(res, 401, 'dpop');
  const token = authorization.slice(5);
  try {
    const { payload: claims, protectedHeader } = await jwtVerify(String(req.headers.dpop), EmbeddedJWK, {
      typ: 'dpop+jwt',
      algorithms: ALGORITHMS,
      maxTokenAge: MAX_AGE,
      clockTolerance: CLOCK_SKEW,
    });
    const jkt = await calculateJwkThumbprint(protectedHeader.jwk);
    if (claims.ath !== createHash('sha256').update(token).digest('base64url')) throw new Error('ath');
    const verified = await verifyToken(token);
    if (verified.cnf?.jkt !== jkt) throw new Error('cnf');
    checkClaims(claims, 'GET', requestUrl(req), joseReplay, jkt);
    res.json({ sub: verified.sub });
  } catch {
    fail(res, 401, 'jose');
  }
});
const dpopOptions = { verifyToken, algorithms: ALGORITHMS, maxAge: MAX_AGE };
const respond = (req, res) => res.json({ sub: req.tokenSec.claims.sub });
app.get('/api', tokenSec.dpop(dpopOptions), respond);
// The same with server nonces off (4.0 turns them on by default): what the default costs per call.
app.get('/api-no-nonce', tokenSec.dpop({ ...dpopOptions, nonce: false }), respond);
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
