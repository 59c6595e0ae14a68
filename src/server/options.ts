/**
 * Option checks run when a middleware is created, so a mistake stops the app at startup with a
 * message that says how to fix it, instead of failing on the first request.
 */
/** A value, or a promise of one: what the app's callbacks and stores may return. */
export type MaybePromise<T> = T | Promise<T>;

/** A connect-style middleware: what every TokenSec factory returns, for Express, Connect and node:http alike. */
export type Middleware<Req, Res> = (req: Req, res: Res, next: (err?: unknown) => void) => void;

export function optionError(fn: string, message: string): TypeError {
  return new TypeError(`tokenSec.${fn}(): ${message}`);
}

/** Levenshtein distance, for "did you mean" on misspelt option names. */
function distance(a: string, b: string): number {
  const charsA = [...a];
  const charsB = [...b];
  // row[j] is the distance between the characters of a seen so far and the first j of b.
  let row = Array.from({ length: charsB.length + 1 }, (_, j) => j);
  for (const [i, charA] of charsA.entries()) {
    const next = [i + 1];
    for (const [j, charB] of charsB.entries()) {
      const deletion = (row[j + 1] ?? Infinity) + 1;
      const insertion = (next[j] ?? Infinity) + 1;
      const substitution = (row[j] ?? Infinity) + (charA === charB ? 0 : 1);
      next.push(Math.min(deletion, insertion, substitution));
    }
    row = next;
  }
  return row[charsB.length] ?? Infinity;
}

function isRequestLike(value: object): boolean {
  return 'headers' in value && 'method' in value && ('socket' in value || 'url' in value);
}

/**
 * Returns `options` as a record after checking it is an object with only `known` keys.
 * Also catches `app.use(tokenSec.handshake)`: Express then calls the factory with a request.
 * `prefix` names a nested options object in messages (`dpop.`).
 */
export function checkOptions(fn: string, options: unknown, known: readonly string[], prefix = ''): Record<string, unknown> {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw optionError(
      fn,
      `${prefix ? `option "${prefix.slice(0, -1)}"` : 'options'} must be an object, got ${options === null ? 'null' : Array.isArray(options) ? 'an array' : typeof options}.`,
    );
  }
  if (isRequestLike(options)) {
    throw new TypeError(
      `tokenSec.${fn} was used as a middleware without being called. Write app.use(tokenSec.${fn}({ ... })), not app.use(tokenSec.${fn}).`,
    );
  }
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const closest = known
      .map((name) => ({ name, d: name.toLowerCase() === key.toLowerCase() ? 0 : distance(key, name) }))
      .sort((x, y) => x.d - y.d)[0];
    const hint = closest && closest.d <= Math.max(2, Math.floor(key.length / 2)) ? ` Did you mean "${prefix}${closest.name}"?` : '';
    throw optionError(fn, `unknown option "${prefix}${key}".${hint} Known options: ${known.map((name) => prefix + name).join(', ')}.`);
  }
  return options as Record<string, unknown>;
}

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

export function checkBoolean(fn: string, name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw optionError(fn, `option "${name}" must be true or false, got ${describe(value)}.`);
  return value;
}

export function checkInteger(fn: string, name: string, value: unknown, fallback: number, min: number, max: number, unit: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw optionError(
      fn,
      `option "${name}" must be a whole number of ${unit} from ${min} to ${max}, got ${typeof value === 'number' ? value : describe(value)}.`,
    );
  }
  return value;
}

/** A `now` option (a clock for tests): a function returning milliseconds, or undefined; else the option's TypeError. */
export function assertClock(fn: string, name: string, value: unknown): asserts value is (() => number) | undefined {
  if (value !== undefined && typeof value !== 'function')
    throw optionError(fn, `option "${name}" must be a function returning milliseconds.`);
}
