/**
 * Challenges and bound-cookie values, both authenticated with the `secret` option (HMAC-SHA256),
 * so any process of the app can check them without shared state:
 *
 *   challenge    = nonce "." expires "." HMAC(secret, "tokensec-dbsc-challenge" | purpose | context | nonce | expires)
 *   bound cookie = expires "." HMAC(secret, "tokensec-dbsc-cookie" | session id | expires)
 *
 * (`expires` in Unix seconds, base 10; `|` is a zero byte.) A challenge is good once: its nonce is
 * consumed through the AtomicStore (`addIfAbsent`), shared by every process, so two processes or a
 * proactive refresh racing another never both accept it. Any number may be outstanding.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { callStore, type AtomicStore } from '../store.js';

export type ChallengePurpose = 'registration' | 'refresh';

const mac = (key: Buffer, parts: string[]) => createHmac('sha256', key).update(parts.join('\0')).digest('base64url');

const sameText = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/** A fresh challenge for `purpose` in `context` (the DBSC session id at refresh), good for `ttl` seconds. */
export function newChallenge(key: Buffer, purpose: ChallengePurpose, context: string, nowSeconds: number, ttl: number): string {
  const nonce = randomBytes(16).toString('base64url');
  const expires = String(nowSeconds + ttl);
  return `${nonce}.${expires}.${mac(key, ['tokensec-dbsc-challenge', purpose, context, nonce, expires])}`;
}

/** The challenge's nonce and expiry when this server made it for `purpose` and `context` and it has not expired. */
export function openChallenge(
  key: Buffer,
  challenge: string,
  purpose: ChallengePurpose,
  context: string,
  nowSeconds: number,
): { nonce: string; expires: number } | undefined {
  const [nonce = '', expires = '', tag = '', ...rest] = challenge.split('.');
  if (rest.length > 0 || !/^[A-Za-z0-9_-]{22}$/.test(nonce) || !/^[0-9]{1,12}$/.test(expires)) return undefined;
  if (!sameText(tag, mac(key, ['tokensec-dbsc-challenge', purpose, context, nonce, expires]))) return undefined;
  const at = Number(expires);
  return at > nowSeconds ? { nonce, expires: at } : undefined;
}

/** Records the challenge's nonce as used; true the first time, false after (in any process). */
export async function consumeChallenge(
  store: AtomicStore,
  timeoutMs: number,
  opened: { nonce: string; expires: number },
  nowSeconds: number,
): Promise<boolean> {
  const ttl = Math.max(1, opened.expires - nowSeconds + 1);
  const earlier = await callStore(() => store.addIfAbsent(`tokensec:dbsc:challenge:${opened.nonce}`, '1', ttl), timeoutMs);
  return earlier === undefined;
}

/** The bound cookie's value for the session `id`, live until `expires` (Unix seconds). */
export const boundCookieValue = (key: Buffer, id: string, expires: number): string =>
  `${expires}.${mac(key, ['tokensec-dbsc-cookie', id, String(expires)])}`;

/** True when `value` is a bound cookie this server made for the session `id` and it has not expired. */
export function boundCookieLive(key: Buffer, id: string, value: string | undefined, nowSeconds: number): boolean {
  if (value === undefined) return false;
  const [expires = '', tag = '', ...rest] = value.split('.');
  if (rest.length > 0 || !/^[0-9]{1,12}$/.test(expires)) return false;
  return sameText(tag, mac(key, ['tokensec-dbsc-cookie', id, expires])) && Number(expires) > nowSeconds;
}
