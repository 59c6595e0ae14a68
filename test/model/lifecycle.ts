/**
 * The session lifecycle of README's Server app as a model (issue 29 point 5): what a user's two tabs
 * and an attacker may do, what the app must answer, and the invariants that hold after every step.
 * fast-check's `fc.commands` picks the steps and `fc.asyncModelRun` runs them over real HTTP against
 * the app (test/model/readme-app.ts), the browser being the TokenSec client itself (client/) in Node.
 *
 * The model states the correct behaviour, as README and SECURITY.md describe it:
 * - a logged-in user's next handshake and API call succeed with no step README does not show (no
 *   extra request after login or logout), unless README names the step: after the page's key was
 *   replaced while the session is bound, 403 KEY_MISMATCH until the user logs in again;
 * - a session the server reported bound (a handshake answered 200) stays bound to that key: a
 *   handshake with another key, the attacker's, is refused;
 * - the attacker (a recorded cookie jar and CSRF token, recorded handshakes and API calls, its own
 *   key) gets a 2xx only where SECURITY.md's threat table grants one: a handshake with a recorded
 *   cookie of a logged-in session that has no key bound yet (trust on first use, README's DBSC
 *   section and the active-intermediary row), and then API calls with the token bound to its key;
 * - no 5xx but the documented 503s, no request past its timeout (test/model/network.ts); with Redis,
 *   no binding outlives its session.
 *
 * Concurrency: real I/O is not ordered by a scheduler, so two requests at once come from commands
 * that send them together and whose expected outcome is the same in every order (requests of
 * different tabs that commute in the model, a login or logout with asset requests). One order is
 * also forced deterministically: an asset request sent with the cookies from before the login,
 * answered after it (the browser sent it before the login's answer arrived).
 */
import fc from 'fast-check';
import { calculateJwkThumbprint } from 'jose';
import { expect } from 'vitest';
import { createKeys, openResponse, requestHeader, subtleCrypto } from '../../client/crypto.js';
import { createDpopProof, handshake, rotateDpopKey } from '../../client/index.js';
import { joinResponse } from '../../src/protocol/wire.js';
import { joseProof, proofKey, sha256, type ProofKey } from '../support/proofs.js';
import type { FakeClock } from '../support/clock.js';
import { AGENT_HEADER, COOKIE_OVERRIDE, Jar, type Exchange, type Network } from './network.js';
import type { ModelServer } from './readme-app.js';
import { tally } from './settings.js';

/** The token README's `payload` signs lives 5 minutes. */
const TOKEN_LIFETIME = 300;
const HANDSHAKE_TIMEOUT = 6_000;

type Binding = { who: 'user'; key: number } | { who: 'attacker' };
interface SessionModel {
  loggedIn: boolean;
  bound?: Binding;
}
interface TokenModel {
  key: number;
  exp: number;
}

/** What the app's state should be. */
export interface Model {
  now: number;
  /** The session the browser's cookie names (a number per session the server made). */
  session: number;
  nextSession: number;
  sessions: Map<number, SessionModel>;
  /** The page's DPoP key (each rotation makes a new one). */
  key: number;
  tabs: [{ token?: TokenModel }, { token?: TokenModel }];
  /** The session of the cookie jar the attacker recorded. */
  recorded?: number;
  /** The attacker holds a recorded handshake / API call of the user. */
  recordedHandshake: boolean;
  recordedApiCall: boolean;
  attackerToken?: TokenModel;
}

/** The real system: the app, the network, the browser's two tabs, the attacker. */
export interface Real {
  server: ModelServer;
  net: Network;
  clock: FakeClock;
  user: string;
  attacker: string;
  tabs: [{ token?: string }, { token?: string }];
  attackerKey: ProofKey;
  recorded?: { cookie: string; csrfToken?: string };
  attackerToken?: string;
  /** The thumbprint of each key the page has had, by the model's key number. */
  keys: string[];
  /** Bindings without a session left by earlier runs (a failed run's), not this run's to answer for. */
  orphansBefore: Set<string>;
}

/** The last exchange that matches (the log is in order of arrival). */
const lastOf = (log: Exchange[], match: (e: Exchange) => boolean) => [...log].reverse().find(match);
const seconds = (ms: number) => Math.floor(ms / 1000);
const jar = (r: Real) => r.net.agents.get(r.user)!;
const current = (m: Model) => m.sessions.get(m.session);

/** One request's plan: sent by `run`, then checked against the model and applied to it by `settle`. */
interface Plan<T> {
  run(r: Real): Promise<T>;
  settle(m: Model, outcome: T): void;
}

/** A step of the model; simple steps can also run two at once (`Together`). */
abstract class Step<T = unknown> implements fc.AsyncCommand<Model, Real> {
  abstract plan(m: Model): Plan<T>;
  check(_m: Readonly<Model>): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const plan = this.plan(m);
    const outcome = await plan.run(r);
    tally(this.kind(), outcome);
    plan.settle(m, outcome);
    await invariants(r, m);
  }
  /** The step's name in the tally of outcomes. */
  kind(): string {
    return this.constructor.name;
  }
  abstract toString(): string;
}

/** express-session's session id in the browser's cookie (`s:<id>.<signature>`). */
const sessionIdOf = (r: Real) => /^s:([^.]+)\./.exec(decodeURIComponent(jar(r).get('connect.sid') ?? ''))?.[1];

/**
 * After every step: the network's own invariants; with Redis, no binding without its session, and
 * the browser's session, when the model says its key is bound, has that binding in the store.
 */
export async function invariants(r: Real, m: Model): Promise<void> {
  expect(r.net.violations, 'no 5xx but the documented 503s, nothing past its timeout').toEqual([]);
  const bound = current(m)?.bound;
  const id = sessionIdOf(r);
  if (bound?.who === 'user' && id !== undefined) {
    const stored = await r.server.bindingOf(id);
    if (stored !== undefined) expect(stored, 'a session the server reported bound keeps its binding in the store').toBe(r.keys[bound.key]);
  }
  const orphans = (await r.server.orphanBindings()).filter((key) => !r.orphansBefore.has(key));
  expect(orphans, 'a binding lives exactly as long as its session (issue 29 point 2)').toEqual([]);
}

// ---- the browser's requests ----

const navigation = { accept: 'text/html,application/xhtml+xml', 'sec-fetch-dest': 'document', 'sec-fetch-mode': 'navigate' };
const ASSETS = {
  script: { path: '/tokensec.js', headers: { accept: '*/*', 'sec-fetch-dest': 'script', 'sec-fetch-mode': 'no-cors' } },
  favicon: { path: '/favicon.ico', headers: { accept: 'image/*', 'sec-fetch-dest': 'image', 'sec-fetch-mode': 'no-cors' } },
} as const;
export type Asset = keyof typeof ASSETS;

async function status(response: Response): Promise<number> {
  await response.arrayBuffer();
  return response.status;
}

const get = (r: Real, path: string, headers: Record<string, string>) =>
  fetch(r.server.origin + path, { headers: { ...headers, [AGENT_HEADER]: r.user } }).then(status);

const post = (r: Real, path: string) =>
  fetch(r.server.origin + path, {
    method: 'POST',
    headers: { 'x-csrf-token': jar(r).csrfToken ?? '', [AGENT_HEADER]: r.user },
  });

/** The browser client's handshake, with the CSRF token from the cookie jar as the page reads it. */
async function clientHandshake(r: Real): Promise<{ token?: string; status?: number; code?: string }> {
  try {
    const token = await handshake({
      uri: `${r.server.origin}/token`,
      csrfToken: jar(r).csrfToken,
      headers: { [AGENT_HEADER]: r.user },
      timeout: HANDSHAKE_TIMEOUT,
    });
    return { token };
  } catch (error) {
    const { status, code } = error as { status?: number; code?: string };
    if (code === 'ERR_TOKENSEC_TIMEOUT') r.net.violations.push('a handshake waited past its timeout');
    return { status, code };
  }
}

/** An API call as README's page makes it: `Authorization: DPoP <token>` and a proof of the page's key (one retry with a server nonce). */
async function clientApiCall(r: Real, token: string): Promise<number> {
  const url = `${r.server.origin}/api/me`;
  let nonce: string | undefined;
  for (let attempt = 0; ; attempt++) {
    const proof = await createDpopProof({ method: 'GET', url, accessToken: token, nonce });
    const response = await fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: proof, [AGENT_HEADER]: r.user } });
    nonce = response.headers.get('dpop-nonce') ?? undefined;
    if (response.status === 401 && nonce && attempt === 0) {
      await response.arrayBuffer();
      continue;
    }
    return status(response);
  }
}

const describeFailure = (what: string, got: { status?: number; code?: string }) => `${what}: got ${got.status ?? '-'} ${got.code ?? ''}`;

// ---- the user's steps ----

export class PageLoad extends Step<number> {
  constructor(readonly tab: 0 | 1) {
    super();
  }
  plan(): Plan<number> {
    return {
      run: (r) => get(r, '/', navigation),
      settle: (m, got) => {
        expect(got, `tab ${this.tab} loads the page`).toBe(200);
        m.tabs[this.tab].token = undefined; // a page keeps its token in memory only
      },
    };
  }
  toString() {
    return `PageLoad(${this.tab})`;
  }
}

export class AssetRequest extends Step<number> {
  constructor(
    readonly tab: 0 | 1,
    readonly asset: Asset,
  ) {
    super();
  }
  plan(): Plan<number> {
    return {
      run: (r) => get(r, ASSETS[this.asset].path, ASSETS[this.asset].headers),
      settle: (_m, got) => expect(got, `tab ${this.tab} loads ${ASSETS[this.asset].path}`).toBe(200),
    };
  }
  toString() {
    return `AssetRequest(${this.tab}, '${this.asset}')`;
  }
}

const logIn = (r: Real) => post(r, '/login');
function loggedIn(m: Model): void {
  m.sessions.delete(m.session); // regenerate: the old session is gone, and its binding with it
  m.session = m.nextSession++;
  m.sessions.set(m.session, { loggedIn: true });
}

/** README's login: `req.session.regenerate`, then `req.session.userId`. Also a login while logged in (a new session). */
export class Login extends Step<Response> {
  constructor(readonly tab: 0 | 1) {
    super();
  }
  plan(): Plan<Response> {
    return {
      run: logIn,
      settle: (m, response) => {
        expect(response.status, `tab ${this.tab} logs in with the CSRF token of its cookie`).toBe(200);
        loggedIn(m);
      },
    };
  }
  toString() {
    return `Login(${this.tab})`;
  }
}

/** README's logout: `tokenSec.unbind(req)`, then `delete req.session.userId`. */
export class Logout extends Step<Response> {
  constructor(readonly tab: 0 | 1) {
    super();
  }
  plan(): Plan<Response> {
    return {
      run: (r) => post(r, '/logout'),
      settle: (m, response) => {
        expect(response.status, `tab ${this.tab} logs out with the CSRF token of its cookie`).toBe(200);
        const session = current(m)!;
        session.loggedIn = false;
        session.bound = undefined;
      },
    };
  }
  toString() {
    return `Logout(${this.tab})`;
  }
}

/** What a handshake of the browser must get now. */
function expectedHandshake(m: Model): { ok: true } | { ok: false; status: number; why: string } {
  const session = current(m);
  if (!session?.loggedIn) return { ok: false, status: 401, why: 'not logged in (README: NOT_LOGGED_IN)' };
  const { bound } = session;
  if (!bound || (bound.who === 'user' && bound.key === m.key)) return { ok: true };
  return {
    ok: false,
    status: 403,
    why:
      bound.who === 'user' ? 'the page replaced its key on a bound session (README: log in again)' : "the attacker's key was bound first",
  };
}

export class Handshake extends Step<{ token?: string; status?: number; code?: string }> {
  constructor(readonly tab: 0 | 1) {
    super();
  }
  plan(m: Model): Plan<{ token?: string; status?: number; code?: string }> {
    const expected = expectedHandshake(m);
    return {
      run: async (r) => {
        const got = await clientHandshake(r);
        if (got.token !== undefined) r.tabs[this.tab].token = got.token;
        return got;
      },
      settle: (m, got) => {
        if (expected.ok) {
          expect(got.token, describeFailure(`tab ${this.tab}: a logged-in user's handshake succeeds`, got)).toBeDefined();
          current(m)!.bound = { who: 'user', key: m.key };
          m.recordedHandshake = true; // in the attacker's HAR file from now on
          m.tabs[this.tab].token = { key: m.key, exp: seconds(m.now) + TOKEN_LIFETIME };
        } else {
          expect(got.status, describeFailure(`tab ${this.tab}: handshake refused, ${expected.why}`, got)).toBe(expected.status);
        }
      },
    };
  }
  toString() {
    return `Handshake(${this.tab})`;
  }
}

export class ApiCall extends Step<number | undefined> {
  constructor(readonly tab: 0 | 1) {
    super();
  }
  override check(m: Readonly<Model>) {
    return m.tabs[this.tab].token !== undefined;
  }
  plan(m: Model): Plan<number | undefined> {
    const token = m.tabs[this.tab].token!;
    const valid = token.key === m.key && seconds(m.now) < token.exp;
    return {
      run: async (r) => {
        const real = r.tabs[this.tab].token;
        return real === undefined ? undefined : clientApiCall(r, real);
      },
      settle: (m, got) => {
        expect(got, `tab ${this.tab}: API call with its token (${valid ? 'valid' : 'expired or of a replaced key'})`).toBe(
          valid ? 200 : 401,
        );
        if (valid) m.recordedApiCall = true; // in the attacker's header log from now on
      },
    };
  }
  toString() {
    return `ApiCall(${this.tab})`;
  }
}

/** The page's DPoP key replaced (`TokenSec.rotateDpopKey()`), as another tab or a script may do. */
export class RotateKey extends Step<void> {
  plan(): Plan<void> {
    return {
      run: async (r) => {
        r.keys.push((await rotateDpopKey()).thumbprint);
      },
      settle: (m) => {
        m.key++;
      },
    };
  }
  toString() {
    return 'RotateKey()';
  }
}

/** Time passes on the server and in the browser (vitest's fake Date is both clocks; the server's Date header follows it). */
export class ClockJump extends Step<void> {
  constructor(readonly ms: number) {
    super();
  }
  plan(): Plan<void> {
    return {
      run: async (r) => r.clock.advance(this.ms),
      settle: (m) => {
        m.now += this.ms;
      },
    };
  }
  toString() {
    return `ClockJump(${this.ms})`;
  }
}

// ---- concurrency ----

/** Steps of different tabs that commute in the model, sent at once: whatever order the server takes them in, each gets what the model says. */
export class Together extends Step<[unknown, unknown]> {
  constructor(
    readonly a: Step,
    readonly b: Step,
  ) {
    super();
  }
  override check(m: Readonly<Model>) {
    return this.a.check(m) && this.b.check(m);
  }
  plan(m: Model): Plan<[unknown, unknown]> {
    const a = this.a.plan(m);
    const b = this.b.plan(m);
    return {
      run: (r) => Promise.all([a.run(r), b.run(r)]),
      settle: (m, [x, y]) => {
        a.settle(m, x);
        b.settle(m, y);
      },
    };
  }
  override kind() {
    return `Together(${this.a.kind()}, ${this.b.kind()})`;
  }
  toString() {
    return `Together(${this.a}, ${this.b})`;
  }
}

const sessionCookieOf = (response: Response) =>
  response.headers
    .getSetCookie()
    .map((line) => line.split(';', 1)[0] ?? '')
    .find((pair) => pair.startsWith('connect.sid='));

/**
 * A login (or logout) with the page's asset requests at once, all sent with the cookies from before
 * it; `staleAfter`: one more asset request sent with those cookies and answered after the login (the
 * order that made an asset's new anonymous session replace the logged-in one, issue 29 point 4).
 */
export class WithAssets extends Step<{ main: Response; assets: number[] }> {
  constructor(
    readonly what: 'login' | 'logout',
    readonly assets: Asset[],
    readonly staleAfter: boolean,
  ) {
    super();
  }
  plan(): Plan<{ main: Response; assets: number[] }> {
    return {
      run: async (r) => {
        const before = jar(r).header;
        const [main, ...assets] = await Promise.all([
          this.what === 'login' ? logIn(r) : post(r, '/logout'),
          ...this.assets.map((a) => get(r, ASSETS[a].path, ASSETS[a].headers)),
        ]);
        if (this.staleAfter) assets.push(await get(r, ASSETS.favicon.path, { ...ASSETS.favicon.headers, [COOKIE_OVERRIDE]: before }));
        await main.arrayBuffer();
        const sessionCookie = sessionCookieOf(main);
        if (sessionCookie)
          expect(`connect.sid=${jar(r).get('connect.sid')}`, 'asset requests racing the login never replace its session cookie').toBe(
            sessionCookie,
          );
        return { main, assets };
      },
      settle: (m, { main, assets }) => {
        expect(main.status, `${this.what} with asset requests at once`).toBe(200);
        expect(assets, 'the assets load').toEqual(assets.map(() => 200));
        if (this.what === 'login') loggedIn(m);
        else {
          const session = current(m)!;
          session.loggedIn = false;
          session.bound = undefined;
        }
      },
    };
  }
  toString() {
    return `WithAssets('${this.what}', ${JSON.stringify(this.assets)}, ${this.staleAfter})`;
  }
}

// ---- the attacker ----

/** The attacker records the browser's cookie jar now (an infostealer, a HAR file, a header log). */
export class RecordCookies extends Step<void> {
  plan(m: Model): Plan<void> {
    const session = m.session;
    return {
      run: async (r) => {
        r.recorded = { cookie: jar(r).header, csrfToken: jar(r).csrfToken };
      },
      settle: (m) => {
        m.recorded = session;
      },
    };
  }
  toString() {
    return 'RecordCookies()';
  }
}

/** A fresh handshake with the recorded cookies and CSRF token and the attacker's own key, claimed fresh (`tsb`), as anyone can. */
export class AttackerHandshake extends Step<{ status: number; token?: string }> {
  override check(m: Readonly<Model>) {
    return m.recorded !== undefined;
  }
  plan(m: Model): Plan<{ status: number; token?: string }> {
    const session = m.sessions.get(m.recorded!);
    // Trust on first use (SECURITY.md, active intermediary; README, DBSC: "if the session has no DPoP key bound yet, bind its own").
    const granted = !!session?.loggedIn && (!session.bound || session.bound.who === 'attacker');
    return {
      run: async (r) => {
        const { cookie, csrfToken = '' } = r.recorded!;
        const url = `${r.server.origin}/token`;
        const jkt = new Uint8Array(Buffer.from(await calculateJwkThumbprint(r.attackerKey.jwk), 'base64url'));
        const subtle = subtleCrypto();
        const keys = await createKeys(subtle);
        const target = { header: 'x-tokensec-handshake', method: 'POST', path: '/token', jkt };
        const value = await requestHeader(subtle, keys, csrfToken, target);
        const proof = await joseProof(r.attackerKey, { htm: 'POST', htu: url, tsh: await sha256(value), tsb: true });
        const response = await fetch(url, {
          method: 'POST',
          headers: {
            'x-tokensec-handshake': value,
            'x-csrf-token': csrfToken,
            dpop: proof,
            [AGENT_HEADER]: r.attacker,
            [COOKIE_OVERRIDE]: cookie,
          },
        });
        const body = await response.text();
        const sealed = response.headers.get('x-tokensec-handshake');
        if (response.ok && sealed) r.attackerToken = await openResponse(subtle, keys, csrfToken, target, joinResponse(sealed, body));
        return { status: response.status, token: r.attackerToken };
      },
      settle: (m, got) => {
        if (granted) {
          expect(
            got.status,
            'the recorded cookie of a logged-in session with no key bound yet binds the first key (trust on first use)',
          ).toBe(200);
          m.sessions.get(m.recorded!)!.bound = { who: 'attacker' };
          m.attackerToken = { key: -1, exp: seconds(m.now) + TOKEN_LIFETIME };
        } else {
          const why = !session
            ? 'its session is gone'
            : !session.loggedIn
              ? 'its session is logged out'
              : 'its session was reported bound to the browser\'s key: it must stay bound ("never silently unbound")';
          expect(got.status, `the attacker's handshake with a recorded cookie gets no 2xx: ${why}`).toBeGreaterThanOrEqual(300);
        }
      },
    };
  }
  toString() {
    return 'AttackerHandshake()';
  }
}

/** The attacker sends a recorded handshake of the browser again, byte for byte. */
export class ReplayHandshake extends Step<number> {
  override check(m: Readonly<Model>) {
    return m.recordedHandshake;
  }
  plan(): Plan<number> {
    return {
      run: async (r) => {
        const recorded = lastOf(r.net.log, (e) => e.agent === r.user && e.url.endsWith('/token') && e.status === 200)!;
        const { cookie = '', ...headers } = recorded.request;
        return fetch(recorded.url, { method: 'POST', headers: { ...headers, [AGENT_HEADER]: r.attacker, [COOKIE_OVERRIDE]: cookie } }).then(
          status,
        );
      },
      settle: (_m, got) => expect(got, 'a recorded handshake sent again gets no 2xx (its proof was used)').toBeGreaterThanOrEqual(300),
    };
  }
  toString() {
    return 'ReplayHandshake()';
  }
}

/** The attacker uses a copied access token from a recorded API call: with the copied proof, as a Bearer, or with a proof of its own key. */
export class CopiedToken extends Step<number> {
  constructor(readonly how: 'copied-proof' | 'bearer' | 'own-proof') {
    super();
  }
  override check(m: Readonly<Model>) {
    return m.recordedApiCall;
  }
  plan(): Plan<number> {
    return {
      run: async (r) => {
        const recorded = lastOf(r.net.log, (e) => e.agent === r.user && e.url.endsWith('/api/me') && e.status === 200)!;
        const authorization = recorded.request.authorization ?? '';
        const token = authorization.slice('DPoP '.length);
        const headers: Record<string, string> =
          this.how === 'copied-proof'
            ? { authorization, dpop: recorded.request.dpop ?? '' }
            : this.how === 'bearer'
              ? { authorization: `Bearer ${token}` }
              : {
                  authorization,
                  dpop: await joseProof(r.attackerKey, { htm: 'GET', htu: recorded.url, ath: await sha256(token) }),
                };
        return fetch(recorded.url, { headers: { ...headers, [AGENT_HEADER]: r.attacker, [COOKIE_OVERRIDE]: '' } }).then(status);
      },
      settle: (_m, got) =>
        expect(got, `a copied access token (${this.how}) gets no 2xx behind tokenSec.dpop()`).toBeGreaterThanOrEqual(300),
    };
  }
  toString() {
    return `CopiedToken('${this.how}')`;
  }
}

/** The attacker calls the API with the token a granted handshake gave it, and its own key. */
export class AttackerApiCall extends Step<number> {
  override check(m: Readonly<Model>) {
    return m.attackerToken !== undefined;
  }
  plan(m: Model): Plan<number> {
    const valid = seconds(m.now) < m.attackerToken!.exp;
    return {
      run: async (r) => {
        const url = `${r.server.origin}/api/me`;
        const token = r.attackerToken!;
        const proof = await joseProof(r.attackerKey, { htm: 'GET', htu: url, ath: await sha256(token) });
        return fetch(url, { headers: { authorization: `DPoP ${token}`, dpop: proof, [AGENT_HEADER]: r.attacker } }).then(status);
      },
      settle: (_m, got) => expect(got, "the attacker's own token (trust on first use) until it expires").toBe(valid ? 200 : 401),
    };
  }
  toString() {
    return 'AttackerApiCall()';
  }
}

// ---- the model run ----

const tab = fc.constantFrom<0 | 1>(0, 1);
const asset = fc.constantFrom<Asset>('script', 'favicon');
/** Clock jumps: within a proof's life, past it (maxAge 60 + skew 5), past a token's life, past a day (binding TTL). */
const jump = fc.constantFrom(1_000, 30_000, 66_000, 301_000, 86_401_000);

/** Two simple steps of different tabs, which commute in the model. */
const together = fc
  .tuple(fc.constantFrom('handshake', 'api', 'asset', 'page'), fc.constantFrom('handshake', 'api', 'asset'), asset, fc.boolean())
  .map(([x, y, a, swap]) => {
    const make = (kind: string, t: 0 | 1): Step =>
      kind === 'handshake'
        ? new Handshake(t)
        : kind === 'api'
          ? new ApiCall(t)
          : kind === 'asset'
            ? new AssetRequest(t, a)
            : new PageLoad(t);
    const [first, second] = swap ? ([1, 0] as const) : ([0, 1] as const);
    return new Together(make(x, first), make(y, second));
  });

/** The steps; an entry given more than once comes up more often (a user is logged in most of the time, and calls the API). */
export const commandArbitraries = [
  tab.map((t) => new PageLoad(t)),
  fc.tuple(tab, asset).map(([t, a]) => new AssetRequest(t, a)),
  ...Array.from({ length: 3 }, () => tab.map((t) => new Login(t))),
  tab.map((t) => new Logout(t)),
  ...Array.from({ length: 3 }, () => tab.map((t) => new Handshake(t))),
  ...Array.from({ length: 3 }, () => tab.map((t) => new ApiCall(t))),
  fc.constant(new RotateKey()),
  jump.map((ms) => new ClockJump(ms)),
  together,
  together,
  fc
    .tuple(fc.constantFrom<'login' | 'logout'>('login', 'login', 'logout'), fc.array(asset, { minLength: 1, maxLength: 3 }), fc.boolean())
    .map(([what, assets, stale]) => new WithAssets(what, assets, stale)),
  fc.constant(new RecordCookies()),
  fc.constant(new AttackerHandshake()),
  fc.constant(new ReplayHandshake()),
  fc.constantFrom<'copied-proof' | 'bearer' | 'own-proof'>('copied-proof', 'bearer', 'own-proof').map((how) => new CopiedToken(how)),
  fc.constant(new AttackerApiCall()),
];

let runs = 0;

/** A new browser (cookie jar, DPoP key) and attacker, on the app that runs for the whole file; the browser opens the page first. */
export async function setup(server: ModelServer, net: Network, clock: FakeClock): Promise<{ model: Model; real: Real }> {
  const run = ++runs;
  const real: Real = {
    server,
    net,
    clock,
    user: `user-${run}`,
    attacker: `attacker-${run}`,
    tabs: [{}, {}],
    attackerKey: await proofKey(),
    orphansBefore: new Set(await server.orphanBindings()),
    keys: [],
  };
  net.agents.set(real.user, new Jar());
  net.agents.set(real.attacker, new Jar());
  real.keys.push((await rotateDpopKey()).thumbprint); // this browser's key, made in this run
  const model: Model = {
    now: Date.now(),
    session: 0,
    nextSession: 1,
    sessions: new Map([[0, { loggedIn: false }]]),
    key: 0,
    tabs: [{}, {}],
    recordedHandshake: false,
    recordedApiCall: false,
  };
  expect(await get(real, '/', navigation), 'the browser opens the page').toBe(200);
  return { model, real };
}

/** Runs `commands`, then the probe: a logged-in user's next handshake and API call (the first invariant), as the model says. */
export async function runModel(server: ModelServer, net: Network, clock: FakeClock, commands: Iterable<fc.AsyncCommand<Model, Real>>) {
  const probe = [new Handshake(0), new ApiCall(0), new Handshake(1), new ApiCall(1)];
  let state: { model: Model; real: Real } | undefined;
  await fc.asyncModelRun(async () => (state = await setup(server, net, clock)), commands);
  for (const step of probe) if (state && step.check(state.model)) await step.run(state.model, state.real);
}
