// A page bundled by esbuild or Vite: the client, the session and the sealed session.
import { getDpopKey, handshake, TokenSecError } from 'tokensec/client';
import { session, type SessionState, type TokenSecSession } from 'tokensec/session';
import { session as sealedSession, type TokenSecSession as SealedSession } from 'tokensec/sealed';

export async function page(): Promise<string> {
  const token: string = await handshake({ uri: '/token', credentials: 'include', signal: AbortSignal.timeout(5000) });
  const key = await getDpopKey();
  const cryptoKey: CryptoKey = key.privateKey; // Web Crypto's own type where the DOM lib is loaded
  const s: TokenSecSession = session({ uri: '/token', leeway: 30 });
  // Typed events: each detail as the session sends it, no cast.
  s.addEventListener('token', (e) => void (e.detail.token.length + e.detail.expiresAt));
  s.addEventListener('error', (e) => void e.detail.code.startsWith('ERR_TOKENSEC_'));
  s.addEventListener('state', (e) => {
    const state: SessionState = e.detail.state;
    return void (state === 'refused' && e.detail.code);
  });
  const me: Response = await s.fetch(new URL('/api/me', location.href), { method: 'GET' });
  // getToken is always there in the in-page bundle; detailed gives the expiry with the token.
  const fresh: string = await s.getToken({ cacheMode: 'off' });
  const { expiresAt }: { token: string; expiresAt: number } = await s.getToken({ detailed: true });
  const state: SessionState = s.state;
  const sealed: SealedSession = sealedSession({ uri: '/token' });
  sealed.addEventListener('token', (e) => void e.detail.expiresAt);
  // @ts-expect-error: a sealed session keeps its token in the worker, so its token event has none
  sealed.addEventListener('token', (e) => void e.detail.token);
  // @ts-expect-error: and it has no getToken
  void sealed.getToken;
  sealed.clear();
  // @ts-expect-error: not a fetch credentials mode
  await handshake({ credentials: 'always' });
  try {
    return `${token}${cryptoKey.type}${me.status}${fresh}${expiresAt}${state}${sealed.expiresAt}${await s.getToken()}`;
  } catch (error) {
    return error instanceof TokenSecError ? error.code : 'unknown';
  }
}
