/**
 * The URL a DPoP proof's `htu` names, read as docs/PROTOCOL.md ("Comparing URLs") says: an RFC 3986
 * absolute http(s) URI, strictly (no WHATWG URL leniency: no backslash for slash, no trimmed or
 * dropped white space, no numeric IPv4 forms, no raw non-ASCII in the path), normalised by
 * §6.2.2 (case, percent-encoding, dot segments) and §6.2.3 (default port, empty path), IPv6 in
 * RFC 5952 text. Also the check of a request's Host (RFC 9110 §7.2: `uri-host [":" port]`).
 * Server-side: the browser client makes `htu` from a URL its own parser serialised.
 */

const SCHEME = /^(https?):\/\//i;
/** RFC 3986 pchar and "/" (path), plus "?" (query and fragment), pct-encoded checked apart. */
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$/;
const QUERY_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*$/;
/** A `%` not followed by two hex digits. */
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/;
/** A reg-name's characters once lower-cased (RFC 3986 unreserved and sub-delims; no pct-encoded). */
const REG_NAME = /^[a-z0-9\-._~!$&'()*+,;=]+$/;
const DEC_OCTET = /^(?:0|[1-9][0-9]?|1[0-9]{2}|2[0-4][0-9]|25[0-5])$/;
/** A label WHATWG's host parser reads as a number (decimal, or 0x hex): a name may not end in one. */
const NUMERIC_LABEL = /^(?:[0-9]+|0x[0-9a-f]*)$/;
const PORT = /^[1-9][0-9]{0,4}$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;
const DEFAULT_PORT: Record<string, string> = { http: '80', https: '443' };

/** An RFC 3986 IPv6address (no zone, no IPvFuture) in RFC 5952 text, or undefined. */
function ipv6(text: string): string | undefined {
  let body = text;
  let ls32: number[] = [];
  // An IPv4 address in the last 32 bits (RFC 3986 ls32), written as two groups.
  const embedded = /^(.*:)((?:[0-9]+\.){3}[0-9]+)$/.exec(text);
  if (embedded) {
    const octets = (embedded[2] ?? '').split('.');
    if (!octets.every((octet) => DEC_OCTET.test(octet))) return undefined;
    const [a = 0, b = 0, c = 0, d = 0] = octets.map(Number);
    ls32 = [(a << 8) | b, (c << 8) | d];
    body = embedded[1] ?? '';
    if (!body.endsWith('::')) body = body.slice(0, -1);
  }
  const halves = body.split('::');
  if (halves.length > 2) return undefined;
  const parse = (part: string): number[] | undefined => {
    if (part === '') return [];
    const list = part.split(':');
    return list.every((group) => HEX_GROUP.test(group)) ? list.map((group) => parseInt(group, 16)) : undefined;
  };
  const head = parse(halves[0] ?? '');
  const tail = halves.length === 2 ? parse(halves[1] ?? '') : [];
  if (!head || !tail || (halves.length === 1 && halves[0] === '')) return undefined;
  const given = head.length + tail.length + ls32.length;
  if (halves.length === 2 ? given > 7 : given !== 8) return undefined;
  const groups = [...head, ...new Array<number>(8 - given).fill(0), ...tail, ...ls32];
  // RFC 5952 §4.2: the longest run of two or more zero groups (the first of equal runs) becomes "::".
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLength).join(':')}`;
}

/**
 * The host in normal form, or undefined: `[IPv6]` (RFC 5952), an IPv4address of four dec-octets,
 * or a reg-name of non-empty labels, lower-case, not ending in a numeric label. A name with
 * non-ASCII characters becomes A-labels by UTS #46 as browsers apply it (WHATWG domain to ASCII).
 */
function normalHost(text: string): string | undefined {
  if (text.startsWith('[')) {
    if (!text.endsWith(']')) return undefined;
    const address = ipv6(text.slice(1, -1));
    return address === undefined ? undefined : `[${address}]`;
  }
  let host = text.toLowerCase();
  if (/[\u0080-\uffff]/.test(host)) {
    // Only the mapping: the text was checked to hold no character that ends a host.
    if (/[\s/\\?#@:%[\]<>^|]/.test(host)) return undefined;
    try {
      host = new URL(`http://${host}/`).hostname;
    } catch {
      return undefined;
    }
  }
  if (!REG_NAME.test(host)) return undefined;
  const labels = host.split('.');
  if (labels.some((label) => label === '')) return undefined;
  if (NUMERIC_LABEL.test(labels[labels.length - 1] ?? '')) {
    return labels.length === 4 && labels.every((label) => DEC_OCTET.test(label)) && host === text ? host : undefined;
  }
  return host;
}

/** An authority `host[:port]` (no userinfo) in normal form for `scheme`, or undefined. */
export function normalAuthority(text: string, scheme: 'http' | 'https'): string | undefined {
  const colon = text.lastIndexOf(':');
  const bracket = text.lastIndexOf(']');
  const hasPort = colon > bracket;
  const host = normalHost(hasPort ? text.slice(0, colon) : text);
  if (host === undefined) return undefined;
  if (!hasPort) return host;
  const port = text.slice(colon + 1);
  // An empty port is the default (RFC 3986 §6.2.3); a leading zero is no port RFC 9110 servers agree on.
  if (port === '' || port === DEFAULT_PORT[scheme]) return host;
  if (!PORT.test(port) || Number(port) > 65_535) return undefined;
  return `${host}:${port}`;
}

/**
 * Whether a request's Host header (or X-Forwarded-Host) is `uri-host [":" port]` as RFC 9110 §7.2
 * and docs/PROTOCOL.md ("Host") allow it, so that an origin may be built from it.
 */
export const isValidHost = (host: string): boolean => host !== '' && normalAuthority(host, 'https') !== undefined;

/** RFC 3986 §5.2.4 remove_dot_segments, on a path that starts with "/". */
function removeDotSegments(path: string): string {
  const output: string[] = [];
  const segments = path.split('/').slice(1);
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === '.' || segment === '..') {
      if (segment === '..') output.pop();
      // A final dot segment leaves a trailing "/".
      if (last) output.push('');
      return;
    }
    output.push(segment);
  });
  return `/${output.join('/')}`;
}

/** Percent-encoding normalised (RFC 3986 §6.2.2.2): unreserved characters decoded, the rest upper-case hex. */
const normalPercent = (text: string): string =>
  text.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => {
    const char = String.fromCharCode(parseInt(hex, 16));
    return /[A-Za-z0-9\-._~]/.test(char) ? char : `%${hex.toUpperCase()}`;
  });

/**
 * `htu` as RFC 9449 §4.3 compares it: the absolute http(s) URI without query and fragment,
 * normalised (RFC 3986 §6.2.2, §6.2.3; IPv6 by RFC 5952). Undefined for anything that is not
 * such a URI by RFC 3986's grammar: a userinfo (even empty), a port with a leading zero, a
 * backslash, white space anywhere, a raw non-ASCII character outside the host, a numeric host
 * that is not four dec-octets, an empty label (a trailing dot).
 *
 * @example
 * ```ts
 * canonicalHtu('HTTPS://App.Example:443/a/./b/%7e?q'); // 'https://app.example/a/b/~'
 * canonicalHtu('http://2130706433:8080/'); // undefined
 * ```
 */
export function canonicalHtu(uri: string): string | undefined {
  const scheme = SCHEME.exec(uri);
  if (!scheme) return undefined;
  const name = (scheme[1] ?? '').toLowerCase() as 'http' | 'https';
  const rest = uri.slice(scheme[0].length);
  const authorityEnd = rest.search(/[/?#]/);
  const authority = authorityEnd === -1 ? rest : rest.slice(0, authorityEnd);
  const afterAuthority = authorityEnd === -1 ? '' : rest.slice(authorityEnd);
  const queryStart = afterAuthority.search(/[?#]/);
  const path = queryStart === -1 ? afterAuthority : afterAuthority.slice(0, queryStart);
  const suffix = queryStart === -1 ? '' : afterAuthority.slice(queryStart);
  if (authority.includes('@') || !PATH_CHARS.test(path) || BAD_PERCENT.test(path)) return undefined;
  // Query and fragment are dropped, but must be URI text too ("#" may start the fragment once).
  const hash = suffix.indexOf('#');
  const query = hash === -1 ? suffix : suffix.slice(0, hash);
  const fragment = hash === -1 ? '' : suffix.slice(hash + 1);
  if (!QUERY_CHARS.test(query) || !QUERY_CHARS.test(fragment) || BAD_PERCENT.test(suffix)) return undefined;
  const host = normalAuthority(authority, name);
  if (host === undefined) return undefined;
  return `${name}://${host}${removeDotSegments(normalPercent(path) || '/')}`;
}
