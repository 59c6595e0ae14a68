/**
 * Subresource Integrity in Chromium: a page loads the bundle with the hash tokenSec.integrity()
 * gives, and the browser runs it; one byte changed on the way, and the browser refuses to run it.
 */
import express from 'express';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import tokenSec, { type ClientBundle } from '../../src/index.js';
import { launchChromium } from '../support/chromium.js';
import { listen } from '../support/helpers.js';

let browser: Browser;
let origin: string;
let close: () => Promise<void>;

beforeAll(async () => {
  browser = await launchChromium();
  const app = express();
  app.get('/favicon.ico', (_req, res) => res.status(204).end());
  for (const bundle of ['handshake', 'session', 'sealed'] as ClientBundle[]) {
    app.get(`/${bundle}.js`, tokenSec.client({ bundle }));
    app.get(`/${bundle}-page`, (_req, res) =>
      res
        .type('html')
        .send(`<!doctype html><script src="/${bundle}.js" integrity="${tokenSec.integrity({ bundle })}" crossorigin="anonymous"></script>`),
    );
  }
  // The same bundle with one byte changed, as a compromised CDN or proxy might serve it.
  app.get('/tampered.js', (req, res, next) => {
    const send = res.end.bind(res);
    res.end = ((chunk?: unknown) => {
      if (Buffer.isBuffer(chunk)) {
        const at = chunk.indexOf('TokenSecError');
        chunk[at] = (chunk[at] ?? 0) ^ 0x20;
      }
      return send(chunk as Buffer);
    }) as typeof res.end;
    tokenSec.client()(req, res, next);
  });
  app.get('/tampered-page', (_req, res) =>
    res
      .type('html')
      .send(`<!doctype html><script src="/tampered.js" integrity="${tokenSec.integrity()}" crossorigin="anonymous"></script>`),
  );
  const server = await listen(app);
  origin = server.origin;
  close = server.close;
});
afterAll(async () => {
  await close?.();
  await browser?.close();
});

describe('Subresource Integrity', () => {
  it.each(['handshake', 'session', 'sealed'])('the %s bundle runs under the hash tokenSec.integrity() gives', async (bundle) => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    try {
      await page.goto(`${origin}/${bundle}-page`);
      expect(await page.evaluate(() => typeof (window as any).TokenSec?.handshake)).toBe('function');
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });

  it('one byte changed: the browser refuses to run it', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    try {
      await page.goto(`${origin}/tampered-page`);
      expect(await page.evaluate(() => typeof (window as any).TokenSec)).toBe('undefined');
      expect(errors.join('\n')).toMatch(/integrity/i);
    } finally {
      await page.close();
    }
  });
});
