/**
 * The three browser engines the browser tests run in, behind one small interface:
 * - Chromium: Debian's /usr/bin/chromium through playwright-core 1.65 (CDP);
 * - Firefox: Debian's Firefox ESR through playwright-core 1.64 over WebDriver BiDi (1.65 sends a
 *   BiDi command ESR 153 lacks: `emulation.setMediaFeaturesOverride`);
 * - WebKit: Debian's WebKitGTK (MiniBrowser) through its WebKitWebDriver and selenium-webdriver,
 *   on an Xvfb display started here (MiniBrowser has no headless mode, and without a display its
 *   new-session request hangs instead of failing).
 * Nothing is downloaded. Every driver start has a time limit, and a missing browser fails the test
 * with what to install (never a skip). `TOKENSEC_ENGINES=Firefox,WebKit` runs a subset.
 *
 * The interface is the part of Playwright's Page the tests use, so a Playwright page passes
 * through unchanged. In WebKit (classic WebDriver: one command at a time per session):
 * - a context is a WebDriver session of its own (its own MiniBrowser, so its own IndexedDB,
 *   cookies and channels); its pages are tabs, and their commands run one after another;
 * - `pageerror` and `console` (errors) are seen from the moment a page has loaded, not during load;
 * - `addInitScript` runs its script after each load, not before the page's own scripts;
 * - requests cannot be observed (`on('request')` throws): tests read headers on the server.
 * A context made with `ignoreHTTPSErrors` accepts any certificate (Playwright's option; WebKit: the
 * session's `acceptInsecureCerts`): how a test reaches a loopback HTTPS server with a self-signed one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { Browser as PlaywrightBrowser } from 'playwright-core';
import { firefox } from 'playwright-core-164';
import { Builder, By, type WebDriver } from 'selenium-webdriver';
import { launchChromium } from './chromium.js';
import { freePort } from './net.js';

export type Engine = 'Chromium' | 'Firefox' | 'WebKit';
const ALL: Engine[] = ['Chromium', 'Firefox', 'WebKit'];

/** The engines to run in: all three, or those named in TOKENSEC_ENGINES (comma-separated). */
export const engines: Engine[] = (() => {
  const wanted = process.env.TOKENSEC_ENGINES?.split(',').map((s) => s.trim().toLowerCase());
  if (!wanted) return ALL;
  const chosen = ALL.filter((e) => wanted.includes(e.toLowerCase()));
  if (chosen.length !== wanted.length) throw new Error(`TOKENSEC_ENGINES names ${wanted.join(',')}; known: ${ALL.join(', ')}`);
  return chosen;
})();

export const FIREFOX_PATH = process.env.FIREFOX_PATH ?? '/usr/bin/firefox-esr';
export const WEBKIT_DRIVER_PATH = process.env.WEBKIT_DRIVER_PATH ?? '/usr/bin/WebKitWebDriver';
export const XVFB_PATH = process.env.XVFB_PATH ?? '/usr/bin/Xvfb';
/** How long a browser (or a WebKit session) may take to start before the test fails. */
export const START_TIMEOUT = 60_000;

export interface ConsoleMessage {
  type(): string;
  text(): string;
}
export interface Cookie {
  name: string;
  value: string;
}

export interface EnginePage {
  goto(url: string): Promise<unknown>;
  reload(): Promise<unknown>;
  evaluate<R, A = undefined>(fn: (arg: A) => R | Promise<R>, arg?: A): Promise<R>;
  waitForFunction<A>(fn: (arg: A) => unknown, arg?: A, options?: { timeout?: number }): Promise<unknown>;
  on(event: 'pageerror', listener: (error: Error) => void): unknown;
  on(event: 'console', listener: (message: ConsoleMessage) => void): unknown;
  /** Runs `fn(arg)` in each page the page loads (`arg` travels as JSON). */
  addInitScript<A>(fn: (arg: A) => void, arg?: A): Promise<void>;
  fill(selector: string, value: string): Promise<void>;
  click(selector: string): Promise<void>;
  /** Waits until an element matches and is visible (a trailing `:visible` is allowed). */
  waitForSelector(selector: string, options?: { timeout?: number }): Promise<unknown>;
  getAttribute(selector: string, name: string): Promise<string | null>;
  textContent(selector: string): Promise<string | null>;
  isVisible(selector: string): Promise<boolean>;
  screenshot(options: { path: string; fullPage?: boolean }): Promise<unknown>;
  context(): EngineContext;
  close(): Promise<void>;
}

export interface EngineContext {
  newPage(): Promise<EnginePage>;
  cookies(): Promise<Cookie[]>;
  close(): Promise<void>;
}

export interface ContextOptions {
  viewport?: { width: number; height: number };
  /** Accept any TLS certificate (a test's loopback HTTPS server with a self-signed one). */
  ignoreHTTPSErrors?: boolean;
}

export interface EngineBrowser {
  engine: Engine;
  newContext(options?: ContextOptions): Promise<EngineContext>;
  /** A page in a context of its own; closing the page closes that context. */
  newPage(): Promise<EnginePage>;
  close(): Promise<void>;
}

/** Starts the engine's browser (a test fails, never skips, if it cannot). */
export async function launch(engine: Engine): Promise<EngineBrowser> {
  if (engine === 'Chromium') return playwrightBrowser(engine, await launchChromium());
  if (engine === 'Firefox') return playwrightBrowser(engine, await launchFirefox());
  return new WebKitBrowser();
}

async function launchFirefox(): Promise<PlaywrightBrowser> {
  try {
    const browser = await firefox.launch({ channel: 'moz-firefox', executablePath: FIREFOX_PATH, headless: true, timeout: START_TIMEOUT });
    return browser as unknown as PlaywrightBrowser;
  } catch (cause) {
    throw new Error(
      `Could not start Firefox at ${FIREFOX_PATH}. Install it (Debian: apt-get install -y firefox-esr) or set FIREFOX_PATH.`,
      {
        cause,
      },
    );
  }
}

/** Chromium and Firefox: Playwright's own objects already have this interface (its evaluate takes the same functions). */
function playwrightBrowser(engine: Engine, browser: PlaywrightBrowser): EngineBrowser {
  return {
    engine,
    newContext: async (options) => (await browser.newContext(options)) as unknown as EngineContext,
    newPage: async () => (await browser.newPage()) as unknown as EnginePage,
    close: () => browser.close(),
  };
}

// ---------------------------------------------------------------------------------------------
// WebKit

/** Rejects with `message` when `promise` has not settled within `ms`. */
function within<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await within(exited, 5000, 'no exit').catch(() => child.kill('SIGKILL'));
}

/** One Xvfb per test process, started on a free display (-displayfd) when the first WebKit browser starts and stopped with the last. */
let xvfb: { process: ChildProcess; display: string; users: number } | undefined;
let xvfbStarting: Promise<string> | undefined;

async function acquireDisplay(): Promise<string> {
  if (xvfb) {
    xvfb.users++;
    return xvfb.display;
  }
  xvfbStarting ??= (async () => {
    const child = track(
      spawn(XVFB_PATH, ['-displayfd', '3', '-nolisten', 'tcp', '-screen', '0', '1280x1024x24'], {
        stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      }),
    );
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr += d));
    const display = await within(
      new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdio[3]?.on('data', (d) => {
          out += d;
          if (out.includes('\n')) resolve(`:${out.trim()}`);
        });
        child.once('error', reject);
        child.once('exit', (code) => reject(new Error(`Xvfb exited (${code}): ${stderr.trim()}`)));
      }),
      START_TIMEOUT,
      'Xvfb did not report a display',
    ).catch((cause) => {
      child.kill('SIGKILL');
      throw new Error(`Could not start Xvfb at ${XVFB_PATH} (Debian: apt-get install -y xvfb).`, { cause });
    });
    xvfb = { process: child, display, users: 0 };
    return display;
  })().finally(() => (xvfbStarting = undefined));
  await xvfbStarting;
  return acquireDisplay();
}

async function releaseDisplay(): Promise<void> {
  if (!xvfb || --xvfb.users > 0) return;
  const { process: child } = xvfb;
  xvfb = undefined;
  await stop(child);
}

/** What a WebKit page records in itself after each load, for `pageerror` and `console`. */
const PAGE_HOOKS = `(() => {
  if (window.__engineLog) return;
  const log = (window.__engineLog = []);
  addEventListener('error', (e) => log.push({ kind: 'pageerror', text: String(e.error || e.message) }));
  addEventListener('unhandledrejection', (e) => log.push({ kind: 'pageerror', text: String(e.reason) }));
  const error = console.error.bind(console);
  console.error = (...args) => { log.push({ kind: 'console', text: args.map(String).join(' ') }); error(...args); };
})()`;

class WebKitBrowser implements EngineBrowser {
  engine: Engine = 'WebKit';
  private contexts = new Set<WebKitContext>();

  async newContext(options: ContextOptions = {}): Promise<EngineContext> {
    const context = await WebKitContext.start(options);
    this.contexts.add(context);
    context.onClose = () => this.contexts.delete(context);
    return context;
  }

  async newPage(): Promise<EnginePage> {
    const context = (await this.newContext()) as WebKitContext;
    const page = (await context.newPage()) as WebKitPage;
    page.ownsContext = true;
    return page;
  }

  async close(): Promise<void> {
    await Promise.all([...this.contexts].map((c) => c.close()));
  }
}

class WebKitContext implements EngineContext {
  onClose?: () => void;
  private queue: Promise<unknown> = Promise.resolve();
  private current: string | undefined;
  private pages: WebKitPage[] = [];
  private closed = false;

  private constructor(
    readonly driver: WebDriver,
    private readonly server: ChildProcess,
    private firstWindow: string | undefined,
  ) {}

  static async start({ viewport, ignoreHTTPSErrors = false }: ContextOptions): Promise<WebKitContext> {
    const display = await acquireDisplay();
    let server: ChildProcess | undefined;
    try {
      const port = await freePort();
      server = track(spawn(WEBKIT_DRIVER_PATH, [`--port=${port}`], { env: { ...process.env, DISPLAY: display }, stdio: 'ignore' }));
      const started = server;
      const spawned = new Promise<void>((resolve, reject) => {
        started.once('spawn', resolve);
        started.once('error', reject);
      });
      await within(spawned, START_TIMEOUT, 'WebKitWebDriver did not start');
      // The new-session request hangs (it does not fail) when MiniBrowser cannot open its window.
      const driver = await within(
        (async () => {
          for (let attempt = 0; ; attempt++) {
            try {
              return await new Builder()
                .usingServer(`http://127.0.0.1:${port}`)
                .withCapabilities({ browserName: 'MiniBrowser', acceptInsecureCerts: ignoreHTTPSErrors })
                .build();
            } catch (error) {
              // The driver may not listen yet: retry a refused connection for a moment.
              if (attempt > 50 || !/ECONNREFUSED/.test(String(error))) throw error;
              await new Promise((resolve) => setTimeout(resolve, 100));
            }
          }
        })(),
        START_TIMEOUT,
        `WebKit's new-session request got no answer within ${START_TIMEOUT / 1000} s (display ${display})`,
      );
      await driver.manage().setTimeouts({ script: 60_000, pageLoad: 30_000 });
      if (viewport) await driver.manage().window().setRect(viewport);
      return new WebKitContext(driver, started, await driver.getWindowHandle());
    } catch (cause) {
      if (server) await stop(server);
      await releaseDisplay();
      throw new Error(`Could not start WebKit through ${WEBKIT_DRIVER_PATH} (Debian: apt-get install -y webkit2gtk-driver xvfb).`, {
        cause,
      });
    }
  }

  /** Runs `fn` with the session switched to `handle`, one command at a time. */
  run<T>(handle: string, fn: (driver: WebDriver) => Promise<T>): Promise<T> {
    const next = this.queue.then(async () => {
      if (this.closed) throw new Error('the WebKit context is closed');
      if (this.current !== handle) {
        await this.driver.switchTo().window(handle);
        this.current = handle;
      }
      return fn(this.driver);
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  async newPage(): Promise<EnginePage> {
    const opening = this.queue.then(async () => {
      if (this.closed) throw new Error('the WebKit context is closed');
      if (this.firstWindow) {
        const first = this.firstWindow;
        this.firstWindow = undefined;
        return first;
      }
      await this.driver.switchTo().newWindow('tab');
      this.current = await this.driver.getWindowHandle();
      return this.current;
    });
    this.queue = opening.catch(() => undefined);
    const handle = await opening;
    const page = new WebKitPage(this, handle);
    this.pages.push(page);
    return page;
  }

  /** A tab was closed: the session is no longer on it. */
  forget(page: WebKitPage): void {
    this.pages = this.pages.filter((p) => p !== page);
    if (this.current === page.handle) this.current = undefined;
  }

  async cookies(): Promise<Cookie[]> {
    const handle = this.pages[0]?.handle ?? this.current;
    if (!handle) return [];
    const cookies = await this.run(handle, (d) => d.manage().getCookies());
    return cookies.map((c) => ({ name: c.name, value: c.value }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.queue.catch(() => undefined);
    this.closed = true;
    this.onClose?.();
    await within(this.driver.quit(), 10_000, 'quit timed out').catch(() => undefined);
    await stop(this.server);
    await releaseDisplay();
  }
}

class WebKitPage implements EnginePage {
  ownsContext = false;
  private listeners: { pageerror: ((error: Error) => void)[]; console: ((message: ConsoleMessage) => void)[] } = {
    pageerror: [],
    console: [],
  };
  private initScripts: string[] = [];

  constructor(
    private readonly owner: WebKitContext,
    readonly handle: string,
  ) {}

  context(): EngineContext {
    return this.owner;
  }

  on(event: 'pageerror' | 'console', listener: ((error: Error) => void) | ((message: ConsoleMessage) => void)): this {
    if (event !== 'pageerror' && event !== 'console') throw new Error(`WebKit (WebDriver) cannot observe '${event}' events`);
    (this.listeners[event] as unknown[]).push(listener);
    return this;
  }

  async addInitScript<A>(fn: (arg: A) => void, arg?: A): Promise<void> {
    this.initScripts.push(`(${fn.toString()})(${JSON.stringify(arg ?? null)})`);
  }

  private async afterLoad(driver: WebDriver): Promise<void> {
    await driver.executeScript(PAGE_HOOKS);
    for (const script of this.initScripts) await driver.executeScript(script);
  }

  async goto(url: string): Promise<void> {
    await this.owner.run(this.handle, async (d) => {
      await d.get(url);
      await this.afterLoad(d);
    });
  }

  async reload(): Promise<void> {
    await this.owner.run(this.handle, async (d) => {
      await d.navigate().refresh();
      await this.afterLoad(d);
    });
  }

  /** Runs `fn(arg)` in the page and awaits it; values travel as JSON (undefined properties are dropped, as structured clone would keep them absent). */
  async evaluate<R, A = undefined>(fn: (arg: A) => R | Promise<R>, arg?: A): Promise<R> {
    const script = `const done = arguments[arguments.length - 1];
      const log = () => (window.__engineLog || []).splice(0);
      Promise.resolve()
        .then(() => (${fn.toString()})(JSON.parse(arguments[0])))
        .then(
          (value) => done(JSON.stringify({ value: value === undefined ? null : value, undefined: value === undefined, log: log() })),
          (error) => done(JSON.stringify({ error: String((error && error.stack) || error), name: error && error.name, message: String(error && error.message), log: log() })),
        );`;
    const raw = await this.owner.run(this.handle, (d) => d.executeAsyncScript<string>(script, JSON.stringify(arg ?? null)));
    const answer = JSON.parse(raw) as {
      value?: R;
      undefined?: boolean;
      error?: string;
      message?: string;
      log: { kind: string; text: string }[];
    };
    for (const entry of answer.log) {
      if (entry.kind === 'pageerror') for (const l of this.listeners.pageerror) l(new Error(entry.text));
      else for (const l of this.listeners.console) l({ type: () => 'error', text: () => entry.text });
    }
    if (answer.error !== undefined) throw new Error(`page.evaluate in WebKit: ${answer.message}\n${answer.error}`);
    return (answer.undefined ? undefined : answer.value) as R;
  }

  async waitForFunction<A>(fn: (arg: A) => unknown, arg?: A, options: { timeout?: number } = {}): Promise<unknown> {
    const deadline = Date.now() + (options.timeout ?? 30_000);
    for (;;) {
      const value = await this.evaluate(fn, arg as A);
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`waitForFunction timed out after ${options.timeout ?? 30_000} ms: ${fn.toString()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async waitForSelector(selector: string, options: { timeout?: number } = {}): Promise<unknown> {
    return this.waitForFunction(
      (sel: string) => {
        const element = document.querySelector(sel.replace(/:visible$/, ''));
        return !!element && element.getClientRects().length > 0 && getComputedStyle(element).visibility !== 'hidden';
      },
      selector,
      options,
    );
  }

  async fill(selector: string, value: string): Promise<void> {
    await this.owner.run(this.handle, async (d) => {
      const element = await d.findElement(By.css(selector));
      await element.clear();
      await element.sendKeys(value);
    });
  }

  async click(selector: string): Promise<void> {
    await this.owner.run(this.handle, async (d) => (await d.findElement(By.css(selector))).click());
  }

  getAttribute(selector: string, name: string): Promise<string | null> {
    return this.evaluate(([sel, attr]) => document.querySelector(sel)?.getAttribute(attr) ?? null, [selector, name] as const);
  }

  textContent(selector: string): Promise<string | null> {
    return this.evaluate((sel) => document.querySelector(sel)?.textContent ?? null, selector);
  }

  isVisible(selector: string): Promise<boolean> {
    return this.evaluate((sel) => {
      const element = document.querySelector(sel);
      return !!element && element.getClientRects().length > 0 && getComputedStyle(element).visibility !== 'hidden';
    }, selector);
  }

  async screenshot(options: { path: string }): Promise<void> {
    const png = await this.owner.run(this.handle, (d) => d.takeScreenshot());
    writeFileSync(options.path, Buffer.from(png, 'base64'));
  }

  async close(): Promise<void> {
    if (this.ownsContext) return this.owner.close();
    await this.owner.run(this.handle, (d) => d.close());
    this.owner.forget(this);
  }
}
