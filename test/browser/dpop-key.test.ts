/**
 * The browser's DPoP key in each engine (Chromium, Firefox, WebKit): made once per origin and kept in IndexedDB, usable by the
 * page's script but never exportable; rotated and deleted on demand; the handshake's proof and an
 * API call's proof verify with jose (code nobody here wrote), and the server hands the payload
 * function the same thumbprint the page computed.
 */
import { EmbeddedJWK, calculateJwkThumbprint, jwtVerify } from 'jose';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engines, launch, type EngineBrowser, type EngineContext, type EnginePage as Page } from '../support/engines.js';
import tokenSec from '../../src/index.js';
import { csrfApp, defined, listen } from '../support/helpers.js';

let browser: EngineBrowser;
let origin: string;
let close: () => Promise<void>;
/** The DPoP header of every handshake the server received, in order. */
const proofs: string[] = [];

beforeAll(async () => {
  const { app } = csrfApp(
    {
      // The payload is the thumbprint the server verified, so the page can compare it with its own.
      payload: (req, _res, { jkt }) => {
        proofs.push(String(req.headers.dpop));
        return `jkt:${jkt}`;
      },
      dpop: { algorithms: ['ES256', 'EdDSA'] },
    },
    '<!doctype html><title>dpop</title><script src="/tokensec.js"></script>',
    // A second handshake route that accepts ES256 proofs only (the default).
    (a) => a.post('/token-es256', tokenSec.handshake({ payload: 'es256 only', terminate: true })),
  );
  const server = await listen(app);
  origin = server.origin;
  close = server.close;
});
afterAll(async () => {
  await close?.();
});

/** Each describe.each block starts its engine's browser for its tests. */
function useEngine(engine: (typeof engines)[number]) {
  beforeAll(async () => {
    browser = await launch(engine);
  });
  afterAll(() => browser?.close());
}

interface KeyView {
  thumbprint: string;
  algorithm: string;
  extractable: boolean;
  usages: string[];
}

const keyView = (page: Page, options = '{}') =>
  page.evaluate(async (opts) => {
    const key = await (window as any).TokenSec.getDpopKey(JSON.parse(opts));
    return {
      thumbprint: key.thumbprint,
      algorithm: key.algorithm,
      extractable: key.privateKey.extractable,
      usages: key.privateKey.usages,
    } as KeyView;
  }, options);

async function freshPage(): Promise<{ context: EngineContext; page: Page }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${origin}/`);
  return { context, page };
}

describe.each(engines)('the DPoP key in %s', (engine) => {
  useEngine(engine);
  it('is made once, survives a reload, and neither TokenSec nor IndexedDB gives out the private key', async () => {
    const { context, page } = await freshPage();
    try {
      const first = await keyView(page);
      expect(first).toMatchObject({ algorithm: 'ES256', extractable: false, usages: ['sign'] });
      const exportAttempts = await page.evaluate(async () => {
        const key = await (window as any).TokenSec.getDpopKey();
        const outcomes: string[] = [];
        for (const format of ['jwk', 'pkcs8'] as const) {
          try {
            await crypto.subtle.exportKey(format, key.privateKey);
            outcomes.push('exported');
          } catch (error) {
            outcomes.push((error as DOMException).name);
          }
        }
        return outcomes;
      });
      expect(exportAttempts).toEqual(['InvalidAccessError', 'InvalidAccessError']);

      await page.reload();
      expect((await keyView(page)).thumbprint).toBe(first.thumbprint);

      // What any script of the origin finds in IndexedDB: a CryptoKey, not key bytes.
      const stored = await page.evaluate(
        () =>
          new Promise<{ type: string; extractable: boolean; exported: string }>((resolve, reject) => {
            const open = indexedDB.open('tokensec');
            open.onerror = () => reject(open.error);
            open.onsuccess = () => {
              const get = open.result.transaction('keys').objectStore('keys').get('dpop');
              get.onsuccess = async () => {
                const privateKey: CryptoKey = get.result.pair.privateKey;
                const exported = await crypto.subtle.exportKey('jwk', privateKey).then(
                  () => 'exported',
                  (error: DOMException) => error.name,
                );
                resolve({ type: Object.prototype.toString.call(privateKey), extractable: privateKey.extractable, exported });
              };
            };
          }),
      );
      expect(stored).toEqual({ type: '[object CryptoKey]', extractable: false, exported: 'InvalidAccessError' });
    } finally {
      await context.close();
    }
  });

  it('ten concurrent callers in each of two tabs share one key', async () => {
    const context = await browser.newContext();
    try {
      const tabs = await Promise.all([context.newPage(), context.newPage()]);
      await Promise.all(tabs.map((tab) => tab.goto(`${origin}/`)));
      // Started in both tabs before either is awaited (WebDriver runs one command at a time).
      for (const tab of tabs)
        await tab.evaluate(() => {
          (window as any).pending = Promise.all(
            Array.from({ length: 10 }, () => (window as any).TokenSec.getDpopKey().then((k: any) => k.thumbprint as string)),
          );
        });
      const thumbprints = await Promise.all(tabs.map((tab) => tab.evaluate(() => (window as any).pending as Promise<string[]>)));
      expect(new Set(thumbprints.flat()).size).toBe(1);
    } finally {
      await context.close();
    }
  });

  it('a tab whose first key write loses the race to another tab adopts that tab’s key', async () => {
    const context = await browser.newContext();
    try {
      const [first, late] = await Promise.all([context.newPage(), context.newPage()]);
      await Promise.all([first, late].map((tab) => tab.goto(`${origin}/`)));
      // Hold the late tab inside generateKey, after it found no stored key, until the first tab
      // has stored one: its add() then meets the first tab's record (a ConstraintError).
      await late.evaluate(() => {
        const w = window as any;
        const generateKey = crypto.subtle.generateKey.bind(crypto.subtle);
        w.gate = new Promise((open) => (w.openGate = open));
        w.entered = new Promise((entered) => {
          (crypto.subtle as any).generateKey = async (...args: Parameters<typeof generateKey>) => {
            entered(true);
            await w.gate;
            return generateKey(...args);
          };
        });
        w.lateKey = w.TokenSec.getDpopKey().then(
          (k: any) => k.thumbprint as string,
          (e: any) => `${e.code}: ${e.message}`,
        );
      });
      await late.evaluate(() => (window as any).entered);
      const winner = (await keyView(first)).thumbprint;
      const adopted = await late.evaluate(() => {
        const w = window as any;
        w.openGate();
        return w.lateKey as Promise<string>;
      });
      expect(adopted).toBe(winner);
    } finally {
      await context.close();
    }
  });

  it('rotateDpopKey replaces it for good; deleteDpopKey removes it, and the next key is new', async () => {
    const { context, page } = await freshPage();
    try {
      const original = (await keyView(page)).thumbprint;
      const rotated = await page.evaluate(() => (window as any).TokenSec.rotateDpopKey().then((k: any) => k.thumbprint as string));
      expect(rotated).not.toBe(original);
      await page.reload();
      expect((await keyView(page)).thumbprint).toBe(rotated);

      await page.evaluate(() => (window as any).TokenSec.deleteDpopKey());
      const storedAfterDelete = await page.evaluate(
        () =>
          new Promise((resolve) => {
            const open = indexedDB.open('tokensec');
            open.onsuccess = () => {
              const get = open.result.transaction('keys').objectStore('keys').get('dpop');
              get.onsuccess = () => resolve(get.result ?? null);
            };
          }),
      );
      expect(storedAfterDelete).toBeNull();
      await page.reload();
      const next = (await keyView(page)).thumbprint;
      expect([original, rotated]).not.toContain(next);
    } finally {
      await context.close();
    }
  });
});

describe.each(engines)('proofs made in %s', (engine) => {
  useEngine(engine);
  it('the handshake proof verifies with jose, commits to the handshake, and the server binds the same thumbprint', async () => {
    const { context, page } = await freshPage();
    try {
      const before = proofs.length;
      const result = await page.evaluate(async () => {
        const key = await (window as any).TokenSec.getDpopKey();
        const payload: string = await (window as any).TokenSec.handshake({ uri: '/token' });
        return { thumbprint: key.thumbprint as string, payload };
      });
      expect(result.payload).toBe(`jkt:${result.thumbprint}`);
      const proof = defined(proofs[before], 'the handshake proof');
      const { payload: claims, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256'] });
      expect(await calculateJwkThumbprint(defined(protectedHeader.jwk, 'jwk'))).toBe(result.thumbprint);
      expect(claims).toMatchObject({ htm: 'POST', htu: `${origin}/token` });
      expect(claims.tsh).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(claims.jti).toMatch(/^[A-Za-z0-9_-]{22}$/);
    } finally {
      await context.close();
    }
  });

  it('createDpopProof for an API call: jose verifies it and its ath is the SHA-256 of the token', async () => {
    const { context, page } = await freshPage();
    try {
      const { proof, thumbprint } = await page.evaluate(async () => {
        const key = await (window as any).TokenSec.getDpopKey();
        const proof = await (window as any).TokenSec.createDpopProof({ method: 'delete', url: '/api/orders/7?x=1#f', accessToken: 'tok' });
        return { proof: proof as string, thumbprint: key.thumbprint as string };
      });
      const { payload: claims, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ['ES256'] });
      expect(await calculateJwkThumbprint(defined(protectedHeader.jwk, 'jwk'))).toBe(thumbprint);
      expect(claims).toMatchObject({
        htm: 'DELETE',
        htu: `${origin}/api/orders/7`,
        ath: createHash('sha256').update('tok').digest('base64url'),
      });
    } finally {
      await context.close();
    }
  });

  it('Ed25519 where the browser has it: the handshake binds an EdDSA key, jose verifies its proof, an ES256-only server refuses it', async () => {
    const { context, page } = await freshPage();
    try {
      const key = await keyView(page, JSON.stringify({ algorithm: 'EdDSA' }));
      expect(key).toMatchObject({ algorithm: 'EdDSA', extractable: false });
      const before = proofs.length;
      const payload = await page.evaluate(() => (window as any).TokenSec.handshake({ uri: '/token' }));
      expect(payload).toBe(`jkt:${key.thumbprint}`);
      const { protectedHeader } = await jwtVerify(defined(proofs[before], 'proof'), EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms: ['EdDSA'],
      });
      expect(protectedHeader).toMatchObject({ alg: 'EdDSA', jwk: { kty: 'OKP', crv: 'Ed25519' } });

      const refused = await page.evaluate(() =>
        (window as any).TokenSec.handshake({ uri: '/token-es256' }).then(
          () => 'accepted',
          (error: any) => ({ code: error.code, status: error.status }),
        ),
      );
      expect(refused).toEqual({ code: 'ERR_TOKENSEC_DPOP_INVALID_PROOF', status: 401 });
    } finally {
      await context.close();
    }
  });
});
