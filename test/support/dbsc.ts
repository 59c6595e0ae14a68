/**
 * DBSC test keys and proofs signed with node:crypto, for the verifier's and the endpoints' tests:
 * the RSA key of RFC 7515 Appendix A.2 (fixed), and P-256 keys made from CSPRNG bytes (no
 * generateKeyPairSync exported as JWK: it can deadlock Node 20).
 */
import { createECDH, createPrivateKey, randomBytes, sign, X509Certificate, createHash, type KeyObject } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { defined } from './helpers.js';

/** RFC 7515 Appendix A.2.1's RSA key (2048 bits). */
export const RFC7515_RSA_JWK = {
  kty: 'RSA',
  n: 'ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ',
  e: 'AQAB',
  d: 'Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ',
  p: '4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc',
  q: 'uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc',
  dp: 'BwKfV3Akq5_MFZDFZCnW-wzl-CCo83WoZvnLQwCTeDv8uzluRSnm71I3QCLdhrqE2e9YkxvuxdBfpT_PI7Yz-FOKnu1R6HsJeDCjn12Sk3vmAktV2zb34MCdy7cpdTh_YVr7tss2u6vneTwrA86rZtu5Mbr1C1XsmvkxHQAdYo0',
  dq: 'h_96-mK1R_7glhsum81dZxjTnYynPbZpHziZjeeHcXYsXaaMwkOlODsWa7I9xXDoRwbKgB719rrmI2oKr6N3Do9U0ajaHF-NKJnwgjMd2w9cjz3_-kyNlxAr2v4IKhGNpmM5iIgOS1VZnOZ68m6_pbLBSp3nssTdlqvd0tIiTHU',
  qi: 'IYd7DHOhrWvxkwPQsRM2tOgrjbcrfvtQJipd-DlcxyVuuM9sQLdgjVk2oy26F0EmpScGLq2MowX7fhd_QJQ3ydy5cY7YIBi87w93IKLEdfnbJtoOPLUW0ITrJReOgo1cq9SbsxYawBgfp_gh6A5603k2-ZQwVK0JKSHuLFkuQ3U',
} as const;

export interface DbscTestKey {
  alg: 'ES256' | 'RS256';
  privateKey: KeyObject;
  /** The public JWK, as a browser puts it in the registration header. */
  jwk: Record<string, string>;
}

export function rsaTestKey(): DbscTestKey {
  const { kty, n, e } = RFC7515_RSA_JWK;
  return { alg: 'RS256', privateKey: createPrivateKey({ key: { ...RFC7515_RSA_JWK }, format: 'jwk' }), jwk: { kty, n, e } };
}

/** A fresh P-256 key from 32 CSPRNG bytes. */
export function ecTestKey(): DbscTestKey {
  for (;;) {
    const ecdh = createECDH('prime256v1');
    try {
      ecdh.setPrivateKey(randomBytes(32));
    } catch {
      continue; // out of range: try other bytes
    }
    const point = ecdh.getPublicKey();
    const jwk = { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33).toString('base64url') };
    const d = ecdh.getPrivateKey().toString('base64url');
    return { alg: 'ES256', privateKey: createPrivateKey({ key: { ...jwk, d }, format: 'jwk' }), jwk };
  }
}

const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A compact JWS over any header and claims, signed by `key` (header defaults: typ dbsc+jwt, the key's alg). */
export function dbscProof(key: DbscTestKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const input = `${part({ alg: key.alg, typ: 'dbsc+jwt', ...header })}.${part(claims)}`;
  const signature =
    key.alg === 'ES256'
      ? sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
      : sign('sha256', Buffer.from(input), key.privateKey);
  return `${input}.${signature.toString('base64url')}`;
}

/** A registration proof: the key in the header, as Chromium sends it. */
export const registrationProof = (key: DbscTestKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}) =>
  dbscProof(key, claims, { jwk: key.jwk, ...header });

/** A throwaway self-signed certificate for `name` (openssl), with the SPKI hash Chromium pins. */
export function selfSignedCertificate(name = 'localhost'): { key: string; cert: string; spki: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tokensec-dbsc-'));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  try {
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
        '-keyout', key, '-out', cert, '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`,
      ], // prettier-ignore
      { stdio: 'pipe' },
    );
  } catch (cause) {
    throw new Error('openssl could not make a certificate. Install it (Debian/Ubuntu: apt-get install -y openssl).', { cause });
  }
  const pem = readFileSync(cert, 'utf8');
  const spkiDer = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return { key: readFileSync(key, 'utf8'), cert: pem, spki: createHash('sha256').update(spkiDer).digest('base64') };
}

/** Chromium 156's flags for DBSC with software keys (../shared/dbsc.md), pinning `spki`. */
/**
 * Chromium's own account of its DBSC sessions (CDP, with the `DeviceBoundSessionsDevTools` feature of
 * dbscChromiumFlags): key creation, registration and refresh results, for the message of a test that
 * waited in vain.
 */
export async function watchDbscEvents(context: BrowserContext, page: Page): Promise<unknown[]> {
  const events: unknown[] = [];
  // Not in playwright-core's protocol types (a feature-gated domain method): sent untyped.
  const cdp = (await context.newCDPSession(page)) as unknown as {
    send(method: string, params?: object): Promise<unknown>;
    on(event: string, listener: (event: unknown) => void): void;
  };
  cdp.on('Network.deviceBoundSessionEventOccurred', (event) => events.push(event));
  await cdp.send('Network.enable');
  await cdp.send('Network.enableDeviceBoundSessions', { enable: true });
  return events;
}

export const dbscChromiumFlags = (spki: string) => [
  '--enable-features=DeviceBoundSessions:RequireOriginTrialTokens/false/RefreshQuota/false,EnableBoundSessionCredentialsSoftwareKeysForManualTesting,DeviceBoundSessionsDevTools',
  `--ignore-certificate-errors-spki-list=${spki}`,
];

/** A cookie jar for one client. */
export class Client {
  cookies = new Map<string, string>();
  constructor(readonly origin: string) {}
  get cookie() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  async send(method: string, path: string, headers: Record<string, string> = {}) {
    const response = await fetch(this.origin + path, { method, headers: { cookie: this.cookie, ...headers } });
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const at = pair.indexOf('=');
      if (/max-age=0/i.test(line)) this.cookies.delete(pair.slice(0, at));
      else this.cookies.set(pair.slice(0, at), pair.slice(at + 1));
    }
    return response;
  }
}

/** Parses `Secure-Session-Registration: (ES256 RS256);path="…";challenge="…"[;authorization="…"]`. */
export function registrationRequest(header: string | null) {
  const match = defined(
    /^\(([A-Z0-9 ]+)\);path="([^"]+)";challenge="([^"]+)"(?:;authorization="([^"]*)")?$/.exec(header ?? ''),
    `registration header ${header}`,
  );
  return { algorithms: match[1], path: match[2], challenge: defined(match[3], 'challenge'), authorization: match[4] };
}

export function challengeOf(response: Response) {
  const match = defined(
    /^"([^"]+)";id="([^"]+)"$/.exec(response.headers.get('secure-session-challenge') ?? ''),
    'Secure-Session-Challenge',
  );
  return { challenge: defined(match[1], 'challenge'), id: defined(match[2], 'id') };
}
