/**
 * README's Server block, run in this process for the model-based tests: the block exactly as README
 * shows it (found by test/support/readme.ts), saved under test-results/ with README's pages in
 * `public/`, and imported, so that vitest's fake `Date` is the server's clock. The changes, each
 * applied to README's text and refused with a clear error when that text is gone:
 *
 * - `tokensec` is this repository's src/ (not dist/), so fixes on src/ need no build;
 * - the server's `Date` header follows its clock (Node writes it from the real one), which is what a
 *   server whose clock jumped sends, and what the client learns proofs' `iat` from;
 * - `express.static('public')` names the saved `public/`;
 * - with Redis: sessions in connect-redis and the session bindings in a Redis AtomicStore given to the
 *   handshake and to `unbind()`, as README's "Session binding" says for several processes.
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import https from 'node:https';
import { RedisStore } from 'connect-redis';
import type { Express } from 'express';
import session from 'express-session';
import { createClient } from 'redis';
import ts from 'typescript';
import tokenSec from '../../src/index.js';
import { selfSignedCertificate } from '../support/dbsc.js';
import { readmeBlocks, ROOT, where } from '../support/readme.js';
import { startRedis, type RedisServer } from '../support/redis.js';

export interface ModelServer {
  origin: string;
  kind: 'memory' | 'redis';
  /**
   * Holds the session store's next `set` (the next session save of any request) until `release` is
   * called; `held` resolves once a save is waiting. A deterministic order for two requests on one
   * session: one that loaded the session before another saved it saves after it.
   */
  holdNextSave(): { held: Promise<void>; release(): void };
  /** Stops holding saves (a hold no request reached). */
  cancelHold(): void;
  /**
   * Bindings whose session no longer exists (Redis only; README's memory store keeps neither list
   * readable): a binding must live exactly as long as its session.
   */
  orphanBindings(): Promise<string[]>;
  /** The key bound to the session with this id, read from Redis (undefined with the memory store, which keeps it unreadable). */
  bindingOf(sessionId: string): Promise<string | null | undefined>;
  stop(): Promise<void>;
}

let loaded = 0;

function replaceOnce(source: string, from: string, to: string, why: string): string {
  const at = source.indexOf(from);
  if (at === -1)
    throw new Error(`README's Server block no longer contains \`${from}\` (${why}): update test/model/readme-app.ts to match it.`);
  return source.slice(0, at) + to + source.slice(at + from.length);
}

/**
 * Starts README's Server block (`name=server`) on a free port, or its DBSC app (`name=dbsc`) over
 * HTTPS, with express-session's memory store or with connect-redis on a real redis-server.
 */
export async function startModelServer(kind: 'memory' | 'redis', name: 'server' | 'dbsc' = 'server'): Promise<ModelServer> {
  const blocks = readmeBlocks();
  const block = blocks.find((b) => b.attrs.name === name);
  if (!block) throw new Error(`README.md has no block marked name=${name}.`);
  const dir = join(ROOT, 'test-results', `model-${process.pid}-${++loaded}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'public'), { recursive: true });
  for (const b of blocks) {
    if (b.attrs.exempt === undefined && b.attrs.file?.startsWith('public/')) writeFileSync(join(dir, b.attrs.file), b.code);
  }
  writeFileSync(join(dir, 'public', 'favicon.ico'), Buffer.alloc(64));

  let source = block.code;
  const src = pathToFileURL(join(ROOT, 'src', 'index.ts')).href;
  source = replaceOnce(source, "from 'tokensec'", `from '${src}'`, 'the import of tokensec');
  source = replaceOnce(
    source,
    'const app = express();\n',
    "const app = express();\napp.use((_req, res, next) => { res.setHeader('Date', new Date().toUTCString()); next(); });\n",
    "where the server's Date header is set from its clock",
  );
  if (name === 'server') {
    source = replaceOnce(source, "express.static('public')", `express.static(${JSON.stringify(join(dir, 'public'))})`, 'the pages');
    source += '\nexport { server };\n';
  }

  let redis: RedisServer | undefined;
  let client: ReturnType<typeof createClient> | undefined;
  const globals = globalThis as { tokenSecModel?: Record<string, unknown> };
  let sessionStore: session.Store;
  if (kind === 'redis') {
    redis = await startRedis();
    client = createClient({ url: redis.url });
    await client.connect();
    sessionStore = new RedisStore({ client });
  } else {
    sessionStore = new session.MemoryStore();
  }
  // The store README's app would make itself (express-session's MemoryStore), made here so that its saves can be held.
  globals.tokenSecModel = { sessionStore, bindingStore: client && tokenSec.redisStore({ client }) };
  source = 'const { sessionStore, bindingStore } = globalThis.tokenSecModel;\n' + source;
  source =
    name === 'server'
      ? replaceOnce(source, 'app.use(session({ ', 'app.use(session({ store: sessionStore, ', 'the session store')
      : replaceOnce(source, 'app.use(\n  session({\n', 'app.use(\n  session({\n    store: sessionStore,\n', 'the session store');
  if (kind === 'redis' && name === 'server') {
    source = replaceOnce(source, 'dpop: { origin: ORIGIN }', 'dpop: { origin: ORIGIN, bindingStore }', "the handshake's binding store");
    // A logout that keeps the session unbinds it (README's logout may regenerate instead).
    source = source.replace('tokenSec.unbind(req)', 'tokenSec.unbind(req, { store: bindingStore })');
  }
  let hold: { resolveHeld: () => void; waiting?: () => void } | undefined;
  const set = sessionStore.set.bind(sessionStore);
  sessionStore.set = (sid, data, callback) => {
    const held = hold;
    if (!held) return set(sid, data, callback);
    hold = undefined;
    held.waiting = () => set(sid, data, callback);
    held.resolveHeld();
  };

  const { privateKey, publicKey } = generateKeyPairSync('ec', {
    namedCurve: 'prime256v1',
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  // The block reads its settings from the environment when it is imported; port 0: the OS picks one.
  Object.assign(process.env, {
    PORT: '0',
    SESSION_SECRET: randomBytes(32).toString('hex'),
    DBSC_SECRET: randomBytes(32).toString('hex'),
    TOKEN_PRIVATE_KEY: privateKey,
    TOKEN_PUBLIC_KEY: publicKey,
  });
  // APP_ORIGIN must name the port before the block reads it: a port chosen here, then listened on by the block.
  const probe = (await import('node:net')).createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  process.env.PORT = String(port);
  const scheme = name === 'dbsc' ? 'https' : 'http';
  process.env.APP_ORIGIN = `${scheme}://127.0.0.1:${port}`;

  const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } });
  const file = join(dir, 'server.mjs');
  writeFileSync(file, js.outputText);
  let server: Server;
  try {
    const module = (await import(/* @vite-ignore */ pathToFileURL(file).href)) as { server?: Server; default?: Express };
    if (module.server) server = module.server;
    else {
      // The DBSC block exports its app, to be served over HTTPS (its session cookie is Secure): here with a throwaway certificate.
      const { key, cert } = selfSignedCertificate('127.0.0.1');
      server = https.createServer({ key, cert }, module.default!).listen(port, '127.0.0.1');
    }
  } catch (error) {
    throw new Error(`${where(block)}: the Server block did not start in the model test: ${String(error)}`, { cause: error });
  }
  if (!server.listening) await new Promise<void>((resolve) => server.once('listening', resolve));

  return {
    origin: `${scheme}://127.0.0.1:${port}`,
    kind,
    holdNextSave() {
      let resolveHeld!: () => void;
      const held = new Promise<void>((resolve) => (resolveHeld = resolve));
      const entry: { resolveHeld: () => void; waiting?: () => void } = { resolveHeld };
      hold = entry;
      return { held, release: () => entry.waiting?.() };
    },
    cancelHold() {
      hold = undefined;
    },
    async orphanBindings() {
      if (!client) return [];
      const sessions = new Set(
        (await client.keys('sess:*')).map((key) => createHash('sha256').update(key.slice('sess:'.length)).digest('base64url')),
      );
      return (await client.keys('tokensec:tokensec:bind:*')).filter((key) => !sessions.has(key.slice('tokensec:tokensec:bind:'.length)));
    },
    async bindingOf(sessionId) {
      if (!client) return undefined;
      return client.get(`tokensec:tokensec:bind:${createHash('sha256').update(sessionId).digest('base64url')}`);
    },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await client?.quit();
      await redis?.stop();
      delete globals.tokenSecModel;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
