// A page bundled by esbuild or Vite: the client, the session and the sealed session.
import { getDpopKey, handshake, TokenSecError } from 'tokensec/client';
import { session } from 'tokensec/session';
import { session as sealedSession } from 'tokensec/sealed';

export async function page(): Promise<string> {
  const token: string = await handshake({ uri: '/token', credentials: 'include', signal: AbortSignal.timeout(5000) });
  const key = await getDpopKey();
  const cryptoKey: CryptoKey = key.privateKey; // Web Crypto's own type where the DOM lib is loaded
  const s = session({ uri: '/token', leeway: 30 });
  s.addEventListener('token', (e) => void (e as CustomEvent<{ expiresAt: number }>).detail.expiresAt);
  const me: Response = await s.fetch(new URL('/api/me', location.href), { method: 'GET' });
  sealedSession({ uri: '/token' }).clear();
  // @ts-expect-error: not a fetch credentials mode
  await handshake({ credentials: 'always' });
  try {
    return `${token}${cryptoKey.type}${me.status}${await s.getToken?.()}`;
  } catch (error) {
    return error instanceof TokenSecError ? error.code : 'unknown';
  }
}
