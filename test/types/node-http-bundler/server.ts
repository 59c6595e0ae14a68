// Plain node:http, no Express types and no DOM lib: the server types and the client's compile.
import { createServer } from 'node:http';
import tokenSec, { type DefaultHandshakeRequest, type HandshakeRequestLike } from 'tokensec';
import type { ClientHandshakeOptions, DpopKey } from 'tokensec/client';
import type { SessionOptions } from 'tokensec/session';

const handshake = tokenSec.handshake({
  payload: (req: HandshakeRequestLike) => (req.headers['x-user'] === 'a' ? 'token' : ''),
  secret: (req) => String(req.headers['x-secret']),
  terminate: true,
});
const plain = (req: DefaultHandshakeRequest) => req.url;
createServer((req, res) => {
  handshake(req, res, (err) => {
    res.statusCode = err ? 500 : 404;
    res.end(plain(req));
  });
});

tokenSec.handshake({
  // @ts-expect-error: no express-session here, so no req.session
  payload: (req) => req.session,
});

export const options: ClientHandshakeOptions = { uri: '/token', credentials: 'same-origin' };
export const session: SessionOptions = { uri: '/token', origins: ['https://api.example'] };
export const key = (k: DpopKey): string => k.thumbprint;
