/**
 * A user agent for the demo app from Node: a cookie jar (the latest Set-Cookie for a name wins),
 * the CSRF token from the `tokensec` cookie, and the demo's login.
 */
// @ts-expect-error: the demo is plain JavaScript, importing tokensec by package name
import { DEMO_USER } from '../../examples/demo/server.mjs';
import { defined } from './helpers.js';

export function demoAgent(origin: string) {
  const jar = new Map<string, string>();
  const keep = (res: Response) => {
    for (const c of res.headers.getSetCookie()) {
      const pair = c.split(';', 1).join('');
      jar.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1));
    }
    return res;
  };
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const csrf = () => decodeURIComponent(defined(jar.get('tokensec'), 'the tokensec cookie'));
  return {
    cookie,
    csrf,
    /** Loads the page and logs in as the demo user: the login's answer carries the new session's CSRF token. */
    async login(): Promise<void> {
      keep(await fetch(`${origin}/`));
      const login = keep(
        await fetch(`${origin}/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-csrf-token': csrf(), cookie: cookie() },
          body: JSON.stringify(DEMO_USER),
        }),
      );
      if (login.status !== 200) throw new Error(`demo login failed: ${login.status}`);
    },
  };
}
