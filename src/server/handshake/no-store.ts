/**
 * `Cache-Control: no-store` on a response that carries a token (RFC 6749 §5.1), kept even when a
 * later handler (with `terminate: false`) sets its own caching headers: the value is set again
 * when the headers are written.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

const patched = new WeakSet<ServerResponse>();

/** `keep`: a later handler writes the response, so guard writeHead too. */
export function noStore(res: ServerResponse, keep = true): void {
  res.setHeader('Cache-Control', 'no-store');
  if (!keep || patched.has(res)) return;
  patched.add(res);
  const writeHead = res.writeHead;
  res.writeHead = function writeHeadNoStore(this: ServerResponse, ...args: unknown[]) {
    for (const arg of args) dropCacheControl(arg);
    this.setHeader('Cache-Control', 'no-store');
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as typeof res.writeHead;
}

/** Removes Cache-Control from headers passed to writeHead (an object, or a flat [name, value, ...] array). */
function dropCacheControl(headers: unknown): void {
  if (Array.isArray(headers) && headers.every(Array.isArray)) {
    // [[name, value], ...]
    for (let i = headers.length - 1; i >= 0; i--) {
      if (String((headers[i] as unknown[])[0]).toLowerCase() === 'cache-control') headers.splice(i, 1);
    }
  } else if (Array.isArray(headers)) {
    // [name, value, name, value, ...]
    for (let i = headers.length - 2; i >= 0; i -= 2) {
      if (String(headers[i]).toLowerCase() === 'cache-control') headers.splice(i, 2);
    }
  } else if (typeof headers === 'object' && headers !== null) {
    const record = headers as OutgoingHttpHeaders;
    for (const name of Object.keys(record)) if (name.toLowerCase() === 'cache-control') delete record[name];
  }
}
