/**
 * The path a handshake is bound to: the path of the request target in origin-form (RFC 9112
 * §3.2.1), as sent, without query or fragment. An absolute-form target (`POST http://host/token`,
 * as sent to a forward proxy) binds its path, `/token`, which is what the browser bound.
 */
import type { HandshakeRequestLike } from './express-request.js';

const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;

/**
 * The scheme and authority of an absolute-form target (`http://host`), or undefined for an
 * origin-form one. With the path, it is the URL a proof's `htu` is compared with (RFC 9112 §3.3).
 */
export function absoluteFormOrigin(req: Pick<HandshakeRequestLike, 'originalUrl' | 'url'>): string | undefined {
  return ABSOLUTE_FORM.exec(req.originalUrl ?? req.url ?? '/')?.[0];
}

export function requestPath(req: Pick<HandshakeRequestLike, 'originalUrl' | 'url'>): string {
  // Express's originalUrl survives mounting (req.url is relative to the mount point).
  let target = req.originalUrl ?? req.url ?? '/';
  const authority = ABSOLUTE_FORM.exec(target);
  if (authority) target = target.slice(authority[0].length);
  const end = target.search(/[?#]/);
  const path = end === -1 ? target : target.slice(0, end);
  return path === '' ? '/' : path;
}
