/**
 * The 2015 attack (TokenSec 0.1, see the Upgrading section of README.md): the client sent
 * CryptoJS.AES.encrypt(salt + "0", secret) in x-tokensec-handshake, and the server answered
 * CryptoJS.AES.encrypt(payload, <that request header value>). An eavesdropper who saw the request
 * had the passphrase. The same attack, with crypto-js, on a recorded v2 exchange gets nothing.
 */
import CryptoJS from 'crypto-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handshake } from '../../client/index.js';
import { TOKEN, csrfApp, defined, listen, visit } from '../support/helpers.js';

/** The eavesdropper's move: decrypt the response with a passphrase it saw; whatever comes out, as UTF-8 if it can. */
function attempt(response: string, passphrase: string): string {
  try {
    return CryptoJS.AES.decrypt(response, passphrase).toString(CryptoJS.enc.Utf8);
  } catch {
    return ''; // not UTF-8: nothing readable
  }
}

describe('TokenSec 0.1 (2015)', () => {
  it('an eavesdropper decrypts the token with the request header as the passphrase', () => {
    const secret = 'csrf-token-from-the-page';
    const salt = 'app-salt';
    // A 0.1 exchange, built exactly as the 2015 client and server built it.
    const requestHeader = CryptoJS.AES.encrypt(`${salt}0`, secret).toString();
    const responseHeader = CryptoJS.AES.encrypt(TOKEN, requestHeader).toString();
    expect(requestHeader.startsWith('U2FsdGVkX1')).toBe(true);
    expect(attempt(responseHeader, requestHeader)).toBe(TOKEN);
  });
});

describe('the same attack on a recorded v3 exchange', () => {
  let app: Awaited<ReturnType<typeof listen>>;
  beforeAll(async () => {
    app = await listen(csrfApp().app);
  });
  afterAll(() => app.close());

  it('gets nothing with any value it saw: the request header, the CSRF token, the cookies', async () => {
    const { cookie, csrfToken } = await visit(app.origin);
    const recorded: { request?: string; response?: string } = {};
    const realFetch = globalThis.fetch;
    globalThis.fetch = async (input, init) => {
      const response = await realFetch(input, init);
      recorded.request = (init?.headers as Record<string, string>)['x-tokensec-handshake'];
      recorded.response = response.headers.get('x-tokensec-handshake') ?? undefined;
      return response;
    };
    try {
      expect(await handshake({ uri: `${app.origin}/token`, csrfToken, headers: { cookie } })).toBe(TOKEN);
    } finally {
      globalThis.fetch = realFetch;
    }
    const response = defined(recorded.response, 'recorded response');
    for (const passphrase of [defined(recorded.request, 'recorded request'), csrfToken, cookie, ...cookie.split('; ')]) {
      const out = attempt(response, passphrase);
      expect(out).not.toContain(TOKEN.slice(0, 16));
      expect(out).not.toBe(TOKEN);
    }
  });
});
