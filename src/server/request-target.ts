/**
 * The request target, read once per request: the path a handshake is bound to, and the URL a DPoP
 * proof's `htu` is compared with.
 *
 * The bound path is the path of the target in origin-form (RFC 9112 §3.2.1), as sent, without
 * query or fragment. An absolute-form target (`POST http://host/token`, as sent to a forward proxy)
 * binds its path, `/token`, which is what the browser bound, and its scheme and authority are the
 * origin of the URL `htu` must name (RFC 9112 §3.3).
 *
 * The URL `htu` must name is `canonicalHtu(origin + path)`. Where origin and path are already in
 * normal form, that is the concatenation itself, so no URL is parsed (3.0 parsed two per request:
 * the expected URL and the proof's; a proof from the browser client names exactly the normal URL,
 * so its `htu` then needs no parse either).
 */
import { canonicalHtu } from '../protocol/htu.js';
import { TokenSecError } from '../protocol/errors.js';

/** What the request target is read from: Express's originalUrl survives mounting (req.url is relative to the mount point). */
export interface TargetSource {
  originalUrl?: string | undefined;
  url?: string | undefined;
}

export interface RequestTargetParts {
  /** The bound path: origin-form, as sent, without query or fragment; `/` when empty. */
  path: string;
  /** The scheme and authority of an absolute-form target (`http://host`), else undefined. */
  absoluteOrigin: string | undefined;
}

const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;

export function readRequestTarget(req: TargetSource): RequestTargetParts {
  let target = req.originalUrl ?? req.url ?? '/';
  // Origin-form (`/...`), nearly every request, cannot be absolute-form: no regex for it.
  const authority = target.charCodeAt(0) === 0x2f ? null : ABSOLUTE_FORM.exec(target);
  if (authority) target = target.slice(authority[0].length);
  const end = target.search(/[?#]/);
  const path = end === -1 ? target : target.slice(0, end);
  return { path: path === '' ? '/' : path, absoluteOrigin: authority?.[0] };
}

/**
 * A path canonicalHtu leaves as it is: it starts with `/`, holds only RFC 3986 pchar characters
 * without percent-encoding (no `%`, no `\`, nothing non-ASCII), and has no `.` or `..` segment.
 */
const NORMAL_PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/;
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;
/** An origin whose text ends where a path begins: scheme, `://`, and host characters only. */
const PLAIN_ORIGIN = /^https?:\/\/[A-Za-z0-9.\-:[\]]+$/i;

/**
 * Origins in normal form (canonicalHtu's scheme and host), by their text as the request gave it.
 * Host comes from the client: the map is emptied when full, so a stranger sending many Host
 * values costs one parse per request, as every request did before.
 */
const origins = new Map<string, string | undefined>();
const ORIGIN_CACHE_SIZE = 64;

function normalOrigin(origin: string): string | undefined {
  if (origins.has(origin)) return origins.get(origin);
  const normal = PLAIN_ORIGIN.test(origin) ? canonicalHtu(`${origin}/`)?.slice(0, -1) : undefined;
  if (origins.size >= ORIGIN_CACHE_SIZE) origins.clear();
  origins.set(origin, normal);
  return normal;
}

/**
 * `canonicalHtu(origin + path)`, without a URL parse when both parts are in normal form (a plain
 * origin seen before, a path of plain characters): the bytes are the same either way, which
 * test/unit/server/request-target.test.ts checks over every path form the slow path handles.
 */
export function targetUrl(origin: string, path: string): string | undefined {
  if (NORMAL_PATH.test(path) && !DOT_SEGMENT.test(path)) {
    const normal = normalOrigin(origin);
    if (normal !== undefined) return normal + path;
  }
  return canonicalHtu(origin + path);
}

/**
 * Which of the configured origins (each in normal form, as `new URL().origin` gives it) a proof's
 * `htu` names, or undefined: a prefix test where `htu` starts with one followed by `/` (or is
 * one), else the origin of `htu` read strictly (canonicalHtu).
 */
export function namedOrigin(htu: unknown, configured: readonly string[]): string | undefined {
  if (typeof htu !== 'string') return undefined;
  for (const origin of configured) {
    if (htu.startsWith(origin) && (htu.length === origin.length || htu.charCodeAt(origin.length) === 0x2f)) return origin;
  }
  const normal = canonicalHtu(htu);
  if (normal === undefined) return undefined;
  const origin = normal.slice(0, normal.indexOf('/', normal.indexOf('//') + 2));
  return configured.includes(origin) ? origin : undefined;
}

/**
 * The refusal of a request whose Host (or, behind a trusted proxy, X-Forwarded-Host) is not
 * `host[:port]` (RFC 9110 §7.2): `Host: app.example#` would move the path into a fragment that
 * `htu` normalisation drops, so no URL is built from it.
 */
export const badHost = (): TokenSecError =>
  new TokenSecError(
    'ERR_TOKENSEC_BAD_HOST',
    'The request\'s Host header is not host[:port] (RFC 9110 §7.2), so this server cannot name its URL. Set the "origin" option to stop using Host.',
    400,
  );
