/**
 * Model-based tests of the session lifecycle (issue 29 point 5; the model and its invariants are in
 * ./lifecycle.ts) against README's Server block, with express-session's memory store and with
 * connect-redis on a real redis-server. Runs and seeds: ./settings.ts.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, it, vi } from 'vitest';
import { fakeClock, type FakeClock } from '../support/clock.js';
import { commandArbitraries, runModel } from './lifecycle.js';
import { Network } from './network.js';
import { startModelServer, type ModelServer } from './readme-app.js';
import { modelRunSettings } from './settings.js';

describe.each(['memory', 'redis'] as const)("README's Server app, sessions in %s", (kind) => {
  let server: ModelServer;
  let net: Network;
  let clock: FakeClock;
  beforeAll(async () => {
    clock = fakeClock(Date.UTC(2026, 0, 5, 9));
    server = await startModelServer(kind);
    net = new Network();
    net.install();
  }, 60_000);
  afterAll(async () => {
    net?.uninstall();
    await server?.stop();
    vi.useRealTimers();
  });

  const settings = modelRunSettings(`Server, ${kind}`, { memory: 30, redis: 20 }[kind]);
  it(
    'a user with two tabs and an attacker: every step answered as README and SECURITY.md say',
    async () => {
      settings.announce();
      await fc.assert(
        fc.asyncProperty(fc.commands(commandArbitraries, { maxCommands: 25, size: 'medium' }), async (commands) => {
          settings.ran();
          await runModel(server, net, clock, commands);
        }),
        settings.parameters,
      );
      settings.report();
    },
    settings.timeout,
  );
});
