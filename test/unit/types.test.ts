/**
 * Type tests. `tsc --noEmit` (in npm test) checks every line here, including the
 * @ts-expect-error ones; the functions are never called, so nothing of it runs.
 */
import type { Request, Response } from 'express';
import express from 'express';
import { expectTypeOf, it } from 'vitest';
import * as TokenSecClient from '../../client/index.js';
import tokenSec, { TokenSecError, type ServerHandshakeOptions, type TokenSecErrorCode } from '../../src/index.js';

export function serverTypes() {
  const app = express();
  app.use(tokenSec.initialize({ cookie: { sameSite: 'lax' } }));
  app.get('/tokensec.js', tokenSec.client({ minified: false }));
  app.post(
    '/token',
    tokenSec.handshake<Request, Response>({ payload: async (req, res) => `${req.ip}${res.statusCode}`, secret: (req) => req.get('x-s') }),
  );
  expectTypeOf<ServerHandshakeOptions['terminate']>().toEqualTypeOf<boolean | undefined>();
  // @ts-expect-error: httpOnly cookies cannot be read by the client
  tokenSec.initialize({ cookie: { httpOnly: true } });
  // @ts-expect-error: payload is required
  tokenSec.handshake({});
  // @ts-expect-error: terminate is a boolean
  tokenSec.handshake({ payload: 't', terminate: 'yes' });
}

export function clientTypes() {
  expectTypeOf(TokenSecClient.handshake({ uri: '/token' })).toEqualTypeOf<Promise<string>>();
  expectTypeOf(TokenSecClient.handshake({}, () => {})).toBeVoid();
  expectTypeOf<TokenSecError['code']>().toEqualTypeOf<TokenSecErrorCode>();
  // @ts-expect-error: only the two supported algorithms
  void TokenSecClient.handshake({ algorithm: 'x448' });
}

it('type tests compile (checked by tsc in npm test)', () => {
  expectTypeOf(serverTypes).toBeFunction();
  expectTypeOf(clientTypes).toBeFunction();
});
