/**
 * The one place tokenSec.handshake() meets DBSC: `dbsc.middleware` marks each request it lets
 * through with the check of its DBSC instance, and the handshake runs it. A request no DBSC
 * middleware saw (no DBSC in the app) is not checked.
 */
import type { IncomingMessage } from 'node:http';

const checks = new WeakMap<IncomingMessage, () => Promise<void>>();

export function markForHandshake(req: IncomingMessage, check: () => Promise<void>): void {
  checks.set(req, check);
}

/** The handshake's hook: undefined (nothing to wait for), or the DBSC check of this request. */
export function dbscHandshakeCheck(req: IncomingMessage): Promise<void> | undefined {
  return checks.get(req)?.();
}
