/**
 * A real redis-server (Debian's package) on a free loopback port, started by the test that needs
 * it and stopped after it. Never mocked, never skipped: without the binary the test fails saying
 * what to install.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { newRestartMarker, restartMarkerKey } from '../../src/server/restart-guard.js';
import { freePort } from './net.js';

export const REDIS_SERVER = process.env.REDIS_SERVER_PATH ?? '/usr/bin/redis-server';

export interface RedisServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** Starts redis-server on `port` (a free one by default: give a stopped server's port to restart it there). */
export async function startRedis(requestedPort?: number): Promise<RedisServer> {
  if (!existsSync(REDIS_SERVER)) {
    throw new Error(
      `redis-server not found at ${REDIS_SERVER}. Install it (Debian/Ubuntu: apt-get install -y redis-server) or set REDIS_SERVER_PATH.`,
    );
  }
  const port = requestedPort ?? (await freePort());
  const child: ChildProcess = spawn(
    REDIS_SERVER,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`redis-server exited: ${output}`);
    const ready = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.end('PING\r\n');
      });
      socket.once('data', (data) => resolve(data.toString().startsWith('+PONG')));
      socket.once('error', () => resolve(false));
    });
    if (ready) break;
    if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${port}: ${output}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/**
 * Marks a fresh redis-server as a store in use for an hour, as a production Redis is: without the
 * marker, TokenSec's redisStore() takes its first use for a store that lost its data and refuses
 * proofs dated before it for clockSkew seconds (src/server/restart-guard.ts). Tests that are not
 * about that call this once after startRedis(); test/integration/store-restart.test.ts does not.
 */
export async function markStoreInUse(server: RedisServer, prefix = 'tokensec:'): Promise<void> {
  const args = ['SET', restartMarkerKey(prefix), newRestartMarker(Date.now() - 3_600_000)];
  const request = `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`;
  const reply = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(server.port, '127.0.0.1', () => socket.write(request));
    socket.once('data', (data) => {
      socket.end();
      resolve(data.toString());
    });
    socket.once('error', reject);
  });
  if (!reply.startsWith('+OK')) throw new Error(`redis-server did not take the marker: ${reply}`);
}
