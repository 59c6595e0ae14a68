/**
 * The network as the model's browser and attacker see it: `fetch` wrapped so that each request
 * names its agent (header `x-model-agent`), carries that agent's cookies as they are when it is sent
 * (as a browser does), and stores the answer's Set-Cookie in the agent's jar when it arrives. Every
 * exchange is logged (what an attacker with a HAR file or a header log holds) and checked: no 5xx but
 * the documented 503s, and no request waits past its timeout.
 */
export const AGENT_HEADER = 'x-model-agent';
/** A request sent with these cookies instead of the jar's: one the browser sent before an earlier answer arrived. */
export const COOKIE_OVERRIDE = 'x-model-cookie';
/** The longest any request may wait: the client's handshake timeout is shorter, the server's store timeout (1 s) far shorter. */
export const REQUEST_TIMEOUT = 8_000;
/** The 503s README documents: a store that failed, did not answer in time, or is full. */
const DOCUMENTED_503 = new Set(['ERR_TOKENSEC_STORE_UNAVAILABLE', 'ERR_TOKENSEC_STORE_FULL']);

export class Jar {
  readonly cookies = new Map<string, string>();
  get header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  get(name: string): string | undefined {
    return this.cookies.get(name);
  }
  /** The CSRF token `initialize` put in the `tokensec` cookie, decoded as the client reads it. */
  get csrfToken(): string | undefined {
    const value = this.cookies.get('tokensec');
    return value === undefined ? undefined : decodeURIComponent(value);
  }
  store(setCookies: string[]): void {
    for (const line of setCookies) {
      const [pair = ''] = line.split(';');
      const at = pair.indexOf('=');
      const name = pair.slice(0, at).trim();
      if (/;\s*max-age=0/i.test(line) || /;\s*expires=thu, 01 jan 1970/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, pair.slice(at + 1).trim());
    }
  }
  copy(): Jar {
    const jar = new Jar();
    for (const [k, v] of this.cookies) jar.cookies.set(k, v);
    return jar;
  }
}

export interface Exchange {
  agent: string;
  method: string;
  url: string;
  request: Record<string, string>;
  status: number;
  code?: string;
  setCookie: string[];
}

export class Network {
  readonly agents = new Map<string, Jar>();
  readonly log: Exchange[] = [];
  /** What broke an invariant of the network itself: a 5xx, a request past its timeout. */
  readonly violations: string[] = [];
  private readonly realFetch = globalThis.fetch;

  install(): void {
    globalThis.fetch = (input, init) => this.fetch(input, init);
  }
  uninstall(): void {
    globalThis.fetch = this.realFetch;
  }

  private async fetch(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    const agent = headers.get(AGENT_HEADER);
    const jar = agent === null ? undefined : this.agents.get(agent);
    if (agent === null || !jar) return this.realFetch(input, init);
    headers.delete(AGENT_HEADER);
    const override = headers.get(COOKIE_OVERRIDE);
    headers.delete(COOKIE_OVERRIDE);
    const cookie = override ?? jar.header;
    if (cookie) headers.set('cookie', cookie);
    const url = String(input instanceof Request ? input.url : input);
    const method = (init.method ?? 'GET').toUpperCase();
    const timeout = AbortSignal.timeout(REQUEST_TIMEOUT);
    const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    let response: Response;
    try {
      response = await this.realFetch(input, { ...init, headers, signal });
    } catch (error) {
      if (timeout.aborted) this.violations.push(`${agent}: ${method} ${url} waited past ${REQUEST_TIMEOUT} ms`);
      throw error;
    }
    const setCookie = response.headers.getSetCookie();
    jar.store(setCookie);
    let code = response.headers.get('tokensec-error') ?? undefined;
    if (!response.ok && code === undefined) {
      code = await response
        .clone()
        .json()
        .then(
          (body: { code?: string }) => body?.code,
          () => undefined,
        );
    }
    if (response.status >= 500 && !(response.status === 503 && code !== undefined && DOCUMENTED_503.has(code)))
      this.violations.push(`${agent}: ${method} ${url} answered ${response.status} ${code ?? ''}`);
    this.log.push({ agent, method, url, request: Object.fromEntries(headers), status: response.status, code, setCookie });
    return response;
  }
}
