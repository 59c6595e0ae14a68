import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import tokenSec, {
  boundedSessionStore,
  client,
  dbsc,
  dpop,
  errorHandler,
  handshake,
  initialize,
  integrity,
  memoryReplayStore,
  memoryStore,
  redisReplayStore,
  redisStore,
  unbind,
} from '../../../../src/index.js';

describe('options are checked when the middleware is created', () => {
  const cases: [string, () => unknown, RegExp][] = [
    ['handshake without payload', () => handshake({} as never), /option "payload" is required/],
    ['handshake without options', () => (handshake as () => unknown)(), /option "payload" is required/],
    [
      'a misspelt option',
      () => handshake({ payload: 't', terminat: true } as never),
      /unknown option "terminat"\. Did you mean "terminate"\?/,
    ],
    ['a wrongly cased option', () => handshake({ payload: 't', Header: 'x' } as never), /Did you mean "header"\?/],
    [
      'an unrelated option',
      () => handshake({ payload: 't', cors: true } as never),
      /unknown option "cors"\. Known options: payload, header, terminate, headerLimit, workers, secret, timeout, allowSafeMethods, dpop, onEvent\./,
    ],
    ['payload of the wrong type', () => handshake({ payload: 42 } as never), /"payload" must be a string or a function/],
    [
      'a string payload over 6144 bytes',
      () => handshake({ payload: 'é'.repeat(3073) }),
      /option "payload" is 6146 bytes of UTF-8; the protocol carries at most 6144/,
    ],
    ['a string payload with a lone surrogate', () => handshake({ payload: 'token-\ud800' }), /"payload" has an unpaired surrogate/],
    [
      'terminate not a boolean',
      () => handshake({ payload: 't', terminate: 'yes' } as never),
      /"terminate" must be true or false, got string/,
    ],
    ['an invalid header name', () => handshake({ payload: 't', header: 'x token' }), /"header" must be an HTTP header name/],
    ['the CSRF header as handshake header', () => handshake({ payload: 't', header: 'X-CSRF-Token' }), /cannot be "x-csrf-token"/],
    ['an empty secret', () => handshake({ payload: 't', secret: '' }), /"secret" must be a non-empty string or a function/],
    ['a secret of the wrong type', () => handshake({ payload: 't', secret: 5 } as never), /"secret" must be/],
    ['a zero timeout', () => handshake({ payload: 't', timeout: 0 }), /"timeout" must be a whole number of milliseconds from 1/],
    [
      'a headerLimit too large',
      () => handshake({ payload: 't', headerLimit: 9000 }),
      /"headerLimit" must be a whole number of characters from 256 to 8322, got 9000/,
    ],
    ['options that are not an object', () => handshake('token' as never), /options must be an object, got string/],
    [
      'initialize with a misspelt option',
      () => initialize({ cookies: true } as never),
      /unknown option "cookies"\. Did you mean "cookie"\?/,
    ],
    ['initialize with a bad cookie', () => initialize({ cookie: 'yes' } as never), /"cookie" must be true, false or an object/],
    [
      'an HttpOnly cookie',
      () => initialize({ cookie: { httpOnly: true } } as never),
      /"httpOnly" must be false: the browser client reads this cookie/,
    ],
    ['SameSite=None without Secure', () => initialize({ cookie: { sameSite: 'none' } }), /needs "secure: true"/],
    ['a bad cookie name', () => initialize({ cookie: { name: 'a b' } }), /"name" must be a cookie name/],
    [
      'a misspelt cookie setting',
      () => initialize({ cookie: { samesite: 'lax' } } as never),
      /unknown option "samesite"\. Did you mean "sameSite"\?/,
    ],
    ['client with a misspelt option', () => client({ minify: true } as never), /unknown option "minify"\. Did you mean "minified"\?/],
    ['client maxAge negative', () => client({ maxAge: -1 }), /"maxAge" must be a whole number of seconds/],
  ];
  it.each(cases)('%s → TypeError', (_, make, message) => {
    expect(make).toThrow(TypeError);
    expect(make).toThrow(message);
  });

  it('app.use(tokenSec.handshake) without calling it: the first request fails with a TypeError saying how to fix it', async () => {
    const app = express();
    app.use(tokenSec.handshake as never);
    const errors: Error[] = [];
    app.use((err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      errors.push(err);
      res.status(500).end();
    });
    await request(app).get('/').expect(500);
    expect(errors[0]).toBeInstanceOf(TypeError);
    expect(errors[0]?.message).toMatch(/write app\.use\(tokenSec\.handshake\(\{ \.\.\. \}\)\), not app\.use\(tokenSec\.handshake\)/i);
  });

  it('exports the same functions by name and on the default object', () => {
    expect(tokenSec).toEqual({
      initialize,
      handshake,
      client,
      dpop,
      dbsc,
      errorHandler,
      integrity,
      memoryStore,
      redisStore,
      boundedSessionStore,
      memoryReplayStore,
      redisReplayStore,
      unbind,
    });
  });
});
