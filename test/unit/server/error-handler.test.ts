/**
 * tokenSec.errorHandler() (src/server/error-handler.ts) answers the stable codes with their status
 * and headers, and keeps 5xx messages private.
 */
import cookieParser from 'cookie-parser';
import csurf from 'csurf';
import express from 'express';
import { afterAll, describe, expect, it } from 'vitest';
import tokenSec from '../../../src/index.js';
import { handshakeApp } from '../../support/handshake.js';
import { TOKEN, listen, signedHandshake } from '../../support/helpers.js';

const SECRET = 'observability-secret-0123456789';
const servers: Awaited<ReturnType<typeof listen>>[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

/** A handshake (mounted for every method, so that a GET reaches it) and a DPoP route, answered by errorHandler(). */
async function app(payload: string | (() => string) = TOKEN) {
  const { app: a } = handshakeApp(
    { secret: SECRET, terminate: true, payload },
    {
      mount: 'use',
      errors: 'errorHandler',
      routes: (app) => app.get('/api/me', tokenSec.dpop({ verifyToken: () => ({ cnf: { jkt: 'x' } }) }), (_req, res) => res.json({})),
    },
  );
  const server = await listen(a);
  servers.push(server);
  return { origin: server.origin, url: `${server.origin}/token` };
}

describe('tokenSec.errorHandler()', () => {
  it('answers a TokenSec error with its status, code, headers and no-store; 5xx messages stay private', async () => {
    const { origin, url } = await app(() => {
      throw new Error('database password is hunter2');
    });
    const get = await fetch(url, { headers: { 'x-tokensec-handshake': 'v3.x' } });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(get.headers.get('cache-control')).toBe('no-store');
    expect(await get.json()).toEqual({ code: 'ERR_TOKENSEC_METHOD_NOT_ALLOWED', message: expect.stringContaining('GET') });

    const api = await fetch(`${origin}/api/me`);
    expect(api.status).toBe(401);
    expect(api.headers.get('www-authenticate')).toMatch(/^DPoP /);
    expect(await api.json()).toMatchObject({ code: 'ERR_TOKENSEC_DPOP_INVALID_TOKEN' });

    const { headers } = await signedHandshake(url, SECRET);
    const failed = await fetch(url, { method: 'POST', headers });
    expect(failed.status).toBe(500);
    const body = await failed.text();
    expect(JSON.parse(body)).toEqual({ code: 'ERR_TOKENSEC_PAYLOAD_FAILED', message: 'Internal error' });
    expect(body).not.toContain('hunter2');
  });

  it("answers the CSRF middleware's EBADCSRFTOKEN with 403, and passes any other error on", async () => {
    const a = express();
    a.use(cookieParser());
    a.use(csurf({ cookie: true }));
    a.post('/form', (_req, res) => res.send('ok'));
    a.use(tokenSec.errorHandler());
    const server = await listen(a);
    servers.push(server);
    const csrf = await fetch(`${server.origin}/form`, { method: 'POST' });
    expect(csrf.status).toBe(403);
    expect(csrf.headers.get('cache-control')).toBe('no-store');
    expect(await csrf.json()).toMatchObject({ code: 'EBADCSRFTOKEN' });
    const other = express();
    other.get('/', () => {
      throw new Error('not ours');
    });
    other.use(tokenSec.errorHandler());
    other.use((_err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => res.status(599).send('next'));
    const otherServer = await listen(other);
    servers.push(otherServer);
    const passed = await fetch(`${otherServer.origin}/`);
    expect(passed.status).toBe(599);
    expect(await passed.text()).toBe('next');
  });

  it('checks its options', () => {
    expect(() => tokenSec.errorHandler({ verbose: true } as never)).toThrow(/tokenSec\.errorHandler\(\): unknown option "verbose"/);
  });
});
