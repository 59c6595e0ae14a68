/**
 * README's quick start, as a new user runs it: `npm run quickstart` (compile the TypeScript server,
 * start it), then in Chromium log in, call the DPoP-protected API through TokenSec.session(), log
 * out, log in again and call it again, with no request beyond what the page's buttons send.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../support/chromium.js';
import { freePort } from '../support/net.js';

const root = new URL('../../', import.meta.url).pathname;

/** Runs `npm run quickstart` on a free port and resolves with the URL it prints. */
async function startQuickstart(): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn('npm', ['run', '--silent', 'quickstart'], { cwd: root, env: { ...process.env, PORT: String(port) }, detached: true });
  let output = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk;
      const printed = /open (http:\/\/\S+\/)/.exec(output)?.[1];
      if (printed) resolve(printed);
    });
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk));
    child.once('exit', (code) => reject(new Error(`npm run quickstart exited (${code}) before printing its URL:\n${output}`)));
  });
  return { child, url };
}

describe('quick start in Chromium', () => {
  let browser: Browser;
  let quickstart: { child: ChildProcess; url: string };
  beforeAll(async () => {
    [browser, quickstart] = await Promise.all([launchChromium(), startQuickstart()]);
  }, 300_000); // npm run quickstart compiles the server first
  afterAll(async () => {
    await browser?.close();
    if (quickstart) {
      process.kill(-quickstart.child.pid!, 'SIGTERM'); // npm and the server it started
      await once(quickstart.child, 'exit');
    }
  });

  /** Clicks a button and returns the text the page then shows (the output changes on every click). */
  async function click(page: Page, id: string, expected: RegExp): Promise<string> {
    await page.click(`#${id}`);
    try {
      await page.waitForFunction((re) => new RegExp(re).test(document.getElementById('out')!.textContent!), expected.source);
    } catch (error) {
      throw new Error(`after clicking #${id}, the page shows ${JSON.stringify(await page.textContent('#out'))}, not ${expected}`, {
        cause: error,
      });
    }
    return (await page.textContent('#out'))!;
  }

  it('prints its URL; log in → API call with a DPoP-bound token → log out → refused → log in → API call', async () => {
    expect(quickstart.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const requests: string[] = [];
    page.on('request', (r) => requests.push(`${r.method()} ${new URL(r.url()).pathname}`));
    await page.goto(quickstart.url);

    requests.length = 0;
    await click(page, 'login', /"userId": "demo"/);
    const claims = JSON.parse(await click(page, 'call', /"sub": "demo"/));
    expect(claims.cnf.jkt).toMatch(/^[\w-]{43}$/);
    // After the login's answer, nothing but the session's own requests: the handshake and the API call
    // (a first API call may be answered with a DPoP nonce challenge and retried once).
    expect(requests.filter((r) => r !== 'POST /login')).toEqual(expect.arrayContaining(['POST /token', 'GET /api/me']));
    expect(requests.filter((r) => !['POST /login', 'POST /token', 'GET /api/me'].includes(r))).toEqual([]);

    await click(page, 'logout', /"ok": true/);
    // The session was cleared and the server's session is new: the handshake is refused (401).
    expect(await click(page, 'call', /NOT_LOGGED_IN|HTTP 401/)).not.toMatch(/"sub"/);

    await click(page, 'login', /"userId": "demo"/);
    const again = JSON.parse(await click(page, 'call', /"sub": "demo"/));
    expect(again.cnf.jkt).toMatch(/^[\w-]{43}$/);
    expect(errors).toEqual([]);
    await context.close();
  });
});
