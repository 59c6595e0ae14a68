/**
 * Attacker tools for test/attacks/. The TokenSec v3 arithmetic here is written again from
 * docs/PROTOCOL.md on plain node:crypto, not imported from src/ or client/: an attack that works
 * with an independent implementation shows the protocol's weakness, not our code's.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  randomBytes,
  type KeyObject,
  createECDH,
  createHash,
  sign,
} from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const b64u = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
const unb64u = (text: string) => Buffer.from(text, 'base64url');
const hmac = (key: Uint8Array, data: Uint8Array) => createHmac('sha256', key).update(data).digest();

/** lp(x): 2-byte big-endian length, then the bytes. */
function lp(...fields: (string | Uint8Array)[]): Buffer {
  return Buffer.concat(
    fields.map((field) => {
      const bytes = typeof field === 'string' ? Buffer.from(field, 'utf8') : Buffer.from(field);
      const length = Buffer.alloc(2);
      length.writeUInt16BE(bytes.length);
      return Buffer.concat([length, bytes]);
    }),
  );
}

export interface Target {
  header: string;
  method: string;
  path: string;
  /** The raw DPoP key thumbprint bound into the exchange; empty when the handshake had no proof. */
  jkt?: Uint8Array | undefined;
}

/** An X25519 key pair from 32 CSPRNG bytes (no generateKeyPairSync: see src/server/crypto/primitives.ts). */
export function x25519KeyPair(): { privateKey: KeyObject; publicKey: Buffer } {
  const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64u(randomBytes(32)), x: '' }, format: 'jwk' });
  const x = createPublicKey(privateKey).export({ format: 'jwk' }).x ?? '';
  return { privateKey, publicKey: unb64u(x) };
}

export function x25519(privateKey: KeyObject, peer: Uint8Array): Buffer {
  return diffieHellman({ privateKey, publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(peer) }, format: 'jwk' }) });
}

export function bindingMac(secret: string, clientKey: Uint8Array, target: Target): Buffer {
  return hmac(
    Buffer.from(secret, 'utf8'),
    lp('TokenSec v3 binding', 'x25519', clientKey, target.jkt ?? new Uint8Array(0), target.header, target.method, target.path),
  );
}

function keyAndContext(shared: Uint8Array, secret: string, clientKey: Uint8Array, serverKey: Uint8Array, target: Target) {
  const context = lp(
    'TokenSec v3 key',
    'x25519',
    clientKey,
    serverKey,
    target.jkt ?? new Uint8Array(0),
    target.header,
    target.method,
    target.path,
  );
  const prk = hmac(Buffer.from(secret, 'utf8'), shared);
  return { key: hmac(prk, Buffer.concat([context, Buffer.of(1)])), context };
}

/** Opens a response header with the client's private key; throws if it is not genuine. */
export function openHandshake(value: string, clientPrivateKey: KeyObject, clientKey: Uint8Array, secret: string, target: Target): string {
  const serverKey = unb64u(value.split('.')[1] ?? '');
  return openWithSharedSecret(value, x25519(clientPrivateKey, serverKey), clientKey, secret, target);
}

/** Opens a response header given the ECDH shared secret (from either side's private key). */
export function openWithSharedSecret(value: string, shared: Uint8Array, clientKey: Uint8Array, secret: string, target: Target): string {
  const [, serverKey = '', iv = '', sealed = ''] = value.split('.');
  const { key, context } = keyAndContext(shared, secret, clientKey, unb64u(serverKey), target);
  const bytes = unb64u(sealed);
  const decipher = createDecipheriv('aes-256-gcm', key, unb64u(iv));
  decipher.setAAD(context);
  decipher.setAuthTag(bytes.subarray(-16));
  return Buffer.concat([decipher.update(bytes.subarray(0, -16)), decipher.final()]).toString('utf8');
}

/** Seals `payload` to `clientKey` as a server would: a response header value. */
export function sealHandshake(payload: string, clientKey: Uint8Array, secret: string, target: Target): string {
  const server = x25519KeyPair();
  const { key, context } = keyAndContext(x25519(server.privateKey, clientKey), secret, clientKey, server.publicKey, target);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(context);
  const sealed = Buffer.concat([cipher.update(payload, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return ['v3', b64u(server.publicKey), b64u(iv), b64u(sealed)].join('.');
}

export interface RewritingProxy {
  origin: string;
  /** Tokens read from the server's real answers. */
  stolen: string[];
  /** Status codes the server answered the rewritten handshakes with. */
  statuses: number[];
  /** The thumbprint of the intermediary's own DPoP key (mode 'own-proof'). */
  jkt: string;
  close(): Promise<void>;
}

/** An ES256 key of the attacker's own, from CSPRNG bytes, and its RFC 7638 thumbprint. */
function es256Key() {
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const point = ecdh.getPublicKey();
  const jwk = { kty: 'EC', crv: 'P-256', x: b64u(point.subarray(1, 33)), y: b64u(point.subarray(33)) };
  const privateKey = createPrivateKey({ key: { ...jwk, d: b64u(ecdh.getPrivateKey()) }, format: 'jwk' });
  return { jwk, privateKey, jkt: thumbprint(jwk) };
}

/** RFC 7638 for an EC key: SHA-256 of the required members in lexicographic order. */
const thumbprint = (jwk: Record<string, unknown>) =>
  createHash('sha256').update(`{"crv":"${jwk.crv}","kty":"${jwk.kty}","x":"${jwk.x}","y":"${jwk.y}"}`).digest('base64url');

function signProof(key: ReturnType<typeof es256Key>, claims: Record<string, unknown>): string {
  const input = `${b64u(Buffer.from(JSON.stringify({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk })))}.${b64u(Buffer.from(JSON.stringify(claims)))}`;
  return `${input}.${b64u(sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' }))}`;
}

/**
 * An active intermediary where TLS ends: an HTTP proxy on 127.0.0.1 in front of `upstream`. For
 * a handshake it swaps the browser's X25519 key for its own, recomputes the binding with the CSRF
 * token it sees in the same request (the default secret), reads the real token from the server's
 * answer, and answers the browser with `inject` sealed to the browser's own key. Everything else
 * passes through unchanged.
 *
 * Mode 'swap-key' forwards the browser's DPoP proof as it is; mode 'own-proof' replaces it with a
 * proof of the intermediary's own key, committing to the swapped handshake header (and claiming it
 * fresh, `tsb: true`, as anyone can). Mode 'forge-answer' changes nothing in the request and seals
 * `inject` to the browser's key in place of the server's answer: everything it needs (the browser's
 * ephemeral key, the CSRF token, the proof's key) is in the request.
 */
export async function rewritingProxy(
  upstream: string,
  inject: string,
  mode: 'swap-key' | 'own-proof' | 'forge-answer' = 'swap-key',
): Promise<RewritingProxy> {
  const stolen: string[] = [];
  const statuses: number[] = [];
  const header = 'x-tokensec-handshake';
  const attackerKey = es256Key();
  const server = http.createServer((req, res) => {
    const headers = { ...req.headers };
    const original = req.headers[header];
    const secret = req.headers['x-csrf-token'];
    const browserProof = req.headers.dpop;
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const method = req.method ?? 'POST';
    let own: ReturnType<typeof x25519KeyPair> | undefined;
    let browserKey: Buffer | undefined;
    let browserTarget: Target | undefined;
    let ownTarget: Target | undefined;
    if (typeof original === 'string' && typeof secret === 'string' && original.startsWith('v3.x25519.')) {
      browserKey = unb64u(original.split('.')[2] ?? '');
      // The browser's key thumbprint, from the jwk in its proof (public, on the wire).
      const browserJwk = typeof browserProof === 'string' ? JSON.parse(unb64u(browserProof.split('.')[0] ?? '').toString()).jwk : undefined;
      browserTarget = { header, method, path, jkt: browserJwk ? unb64u(thumbprint(browserJwk)) : undefined };
      ownTarget = mode === 'own-proof' ? { ...browserTarget, jkt: unb64u(attackerKey.jkt) } : browserTarget;
    }
    if (mode === 'forge-answer' && browserKey && browserTarget && typeof secret === 'string') {
      const forged = sealHandshake(inject, browserKey, secret, browserTarget);
      const forward = http.request(`${upstream}${req.url}`, { method, headers }, (answer) => {
        statuses.push(answer.statusCode ?? 0);
        answer.resume();
        const { 'transfer-encoding': _chunked, ...kept } = answer.headers;
        res.writeHead(200, { ...kept, [header]: forged, 'content-length': '0' }).end();
      });
      forward.on('error', () => res.writeHead(502).end());
      req.pipe(forward);
      return;
    }
    if (mode !== 'forge-answer' && ownTarget && typeof secret === 'string') {
      own = x25519KeyPair();
      const swapped = ['v3', 'x25519', b64u(own.publicKey), b64u(bindingMac(secret, own.publicKey, ownTarget))].join('.');
      headers[header] = swapped;
      if (mode === 'own-proof') {
        const tsh = createHash('sha256').update(swapped).digest('base64url');
        headers.dpop = signProof(attackerKey, {
          jti: b64u(randomBytes(12)),
          htm: method,
          htu: `http://${req.headers.host}${path}`,
          iat: Math.floor(Date.now() / 1000),
          tsh,
          // Its own key, so it claims it was made for binding: `tsb` stops a planted key, not this.
          tsb: true,
          // The server's nonce, copied from the browser's proof (on the wire, as is every answer's DPoP-Nonce).
          nonce: typeof browserProof === 'string' ? JSON.parse(unb64u(browserProof.split('.')[1] ?? '').toString()).nonce : undefined,
        });
      }
    }
    const forward = http.request(`${upstream}${req.url}`, { method, headers }, (answer) => {
      const out = { ...answer.headers };
      const sealed = answer.headers[header];
      if (own) statuses.push(answer.statusCode ?? 0);
      if (own && browserKey && browserTarget && ownTarget && typeof sealed === 'string' && typeof secret === 'string') {
        stolen.push(openHandshake(sealed, own.privateKey, own.publicKey, secret, ownTarget));
        out[header] = sealHandshake(inject, browserKey, secret, browserTarget);
      }
      res.writeHead(answer.statusCode ?? 502, out);
      answer.pipe(res);
    });
    forward.on('error', () => res.writeHead(502).end());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stolen,
    statuses,
    jkt: attackerKey.jkt,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The part of a HAR entry (HTTP Archive 1.2) an attacker needs: request and response headers. */
export interface HarEntry {
  request: { method: string; url: string; headers: { name: string; value: string }[] };
  response: { status: number; headers: { name: string; value: string }[] };
}

export const harHeader = (headers: HarEntry['request']['headers'], name: string) =>
  headers.find((h) => h.name.toLowerCase() === name)?.value;
