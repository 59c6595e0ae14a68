/**
 * The rules a handshake secret (the HMAC key the client binds its request with) must meet, whether
 * it comes from the "secret" option, a function, or the request's CSRF token.
 */
import { LONE_SURROGATE } from '../../protocol/context.js';

/** Secrets are HMAC keys: at least 16 bytes, and no U+0000 (RFC 2104 pads keys with zero bytes). */
export const MIN_SECRET_BYTES = 16;
export const MAX_SECRET_BYTES = 1024;

/** Why a secret is unusable as a TokenSec HMAC key, or undefined when it is fine. */
export function secretProblem(secret: string): string | undefined {
  const bytes = Buffer.byteLength(secret);
  if (bytes < MIN_SECRET_BYTES) return `is ${bytes} bytes; it must be at least ${MIN_SECRET_BYTES}`;
  if (bytes > MAX_SECRET_BYTES) return `is ${bytes} bytes; it must be at most ${MAX_SECRET_BYTES}`;
  if (secret.includes('\0')) return 'contains U+0000, which would make it equal to a shorter secret as an HMAC key';
  if (LONE_SURROGATE.test(secret)) return 'contains an unpaired surrogate, which has no UTF-8 encoding';
  return undefined;
}
