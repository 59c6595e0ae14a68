/**
 * Model-based tests of the DBSC part of the session lifecycle (issue 29 points 3 and 5; the model is
 * in ./dbsc-lifecycle.ts) against README's DBSC app over HTTPS, with express-session's memory store
 * and with connect-redis on a real redis-server. Runs and seeds as in ./lifecycle.test.ts.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, it, vi } from 'vitest';
import { fakeClock, type FakeClock } from '../support/clock.js';
import { dbscCommands, runDbscModel } from './dbsc-lifecycle.js';
import { Network } from './network.js';
import { startModelServer, type ModelServer } from './readme-app.js';
import { modelRunSettings } from './settings.js';

// The app's certificate is a throwaway self-signed one (this file's process only).
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

describe.each(['memory', 'redis'] as const)("README's DBSC app, sessions in %s", (kind) => {
  let server: ModelServer;
  let net: Network;
  let clock: FakeClock;
  beforeAll(async () => {
    clock = fakeClock(Date.UTC(2026, 0, 5, 9));
    server = await startModelServer(kind, 'dbsc');
    net = new Network();
    net.install();
  }, 60_000);
  afterAll(async () => {
    net?.uninstall();
    await server?.stop();
    vi.useRealTimers();
  });

  const settings = modelRunSettings(`DBSC, ${kind}`, { memory: 15, redis: 10 }[kind]);
  it(
    'a browser with DBSC and a thief of its cookie jar: every step answered as README and SECURITY.md say',
    async () => {
      settings.announce();
      await fc.assert(
        fc.asyncProperty(fc.commands(dbscCommands, { maxCommands: 20, size: 'medium' }), async (commands) => {
          settings.ran();
          await runDbscModel(server, net, clock, commands);
        }),
        settings.parameters,
      );
      settings.report();
    },
    settings.timeout,
  );
});
