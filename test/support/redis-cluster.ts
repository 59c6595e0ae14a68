/**
 * A real Redis Cluster of three masters (Debian's redis-server and redis-cli) on free loopback
 * ports, started by the test that needs it and stopped after it; never mocked, never skipped:
 * without the binaries the test fails saying what to install. No persistence except what a test
 * asks for (`stop('save')` writes the master's data to disk first, so it comes back with it).
 * `cluster-require-full-coverage no`: while one master is down, the others keep serving their
 * slots (a cluster without replicas cannot fail over). Also a Redis Sentinel for one master.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { newRestartMarker, restartMarkerKeys } from '../../src/server/restart-guard.js';
import { freePort } from './net.js';
import { REDIS_SERVER } from './redis.js';

export const REDIS_CLI = process.env.REDIS_CLI_PATH ?? '/usr/bin/redis-cli';

export interface ClusterNode {
  port: number;
  url: string;
  /** Whether its redis-server is running. */
  readonly running: boolean;
  /** Stops it: `save` writes its data to disk first (SHUTDOWN SAVE), `nosave` loses it (SHUTDOWN NOSAVE). */
  stop(data: 'save' | 'nosave'): Promise<void>;
  /** Starts it again on its port, with its cluster config (same node id and slots) and whatever data it saved. */
  start(): Promise<void>;
}

export interface RedisCluster {
  nodes: ClusterNode[];
  /** One command to a running node, through redis-cli; its reply as text. */
  command(node: ClusterNode, ...args: string[]): Promise<string>;
  /** The master that serves `key`'s slot (as the cluster assigned them when it was created). */
  nodeOf(key: string): ClusterNode;
  /** Waits (bounded) until every running node says `cluster_state:ok` and sees `down` as failed or, when running, as up. */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

const run = promisify(execFile);

async function answers(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end('PING\r\n'));
    socket.once('data', (data) => resolve(data.toString().startsWith('+PONG')));
    socket.once('error', () => resolve(false));
  });
}

/** Polls `check` every 100 ms until it is true, for at most `ms` (then throws `what`). */
export async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}.`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Starts `masters` redis-servers in cluster mode, joins them with `redis-cli --cluster create`, and waits for `cluster_state:ok`. */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  for (const [path, name] of [
    [REDIS_SERVER, 'redis-server'],
    [REDIS_CLI, 'redis-tools'],
  ] as const) {
    if (!existsSync(path)) throw new Error(`${path} not found. Install it (Debian/Ubuntu: apt-get install -y ${name}).`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'tokensec-redis-cluster-'));
  const nodes: (ClusterNode & { kill(): void })[] = [];
  const owners: { from: number; to: number; node: ClusterNode }[] = [];
  for (let i = 0; i < masters; i++) {
    const port = await freePort();
    const busPort = await freePort(); // not port + 10000, which may be taken or out of range
    const args = [
      '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-port', String(busPort),
      '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '2000',
      '--cluster-require-full-coverage', 'no', '--dir', dir, '--dbfilename', `dump-${port}.rdb`,
      '--save', '', '--appendonly', 'no', '--protected-mode', 'yes',
    ]; // prettier-ignore
    let child: ChildProcess | undefined;
    let output = '';
    const start = async () => {
      output = '';
      child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout?.on('data', (chunk) => (output += chunk));
      child.stderr?.on('data', (chunk) => (output += chunk));
      const started = child;
      await until(
        async () => {
          if (started.exitCode !== null) throw new Error(`redis-server exited: ${output}`);
          return answers(port);
        },
        10_000,
        `redis-server on port ${port} (${output})`,
      );
    };
    const node = {
      port,
      url: `redis://127.0.0.1:${port}`,
      get running() {
        return child !== undefined && child.exitCode === null && child.signalCode === null;
      },
      start,
      async stop(data: 'save' | 'nosave') {
        const stopping = child;
        if (!stopping || stopping.exitCode !== null) return;
        const exited = new Promise((resolve) => stopping.once('exit', resolve));
        await run(REDIS_CLI, ['-p', String(port), 'SHUTDOWN', data.toUpperCase()]).catch(() => undefined); // the connection closes as it exits
        await exited;
      },
      kill: () => child?.kill('SIGKILL'),
    };
    await start();
    nodes.push(node);
  }
  const cluster: RedisCluster = {
    nodes,
    async command(node, ...args) {
      const { stdout } = await run(REDIS_CLI, ['-p', String(node.port), ...args]);
      return stdout.trim();
    },
    nodeOf(key) {
      const slot = slotOf(key);
      const node = owners.find(({ from, to }) => slot >= from && slot <= to)?.node;
      if (!node) throw new Error(`no node serves slot ${slot}`);
      return node;
    },
    async settled() {
      await until(
        async () => {
          for (const node of nodes.filter((candidate) => candidate.running)) {
            const info = await cluster.command(node, 'CLUSTER', 'INFO').catch(() => '');
            if (!info.includes('cluster_state:ok')) return false;
            const view = await cluster.command(node, 'CLUSTER', 'NODES').catch(() => '');
            for (const other of nodes) {
              const line = view.split('\n').find((row) => row.includes(`127.0.0.1:${other.port}@`));
              if (!line) return false;
              const failed = (line.split(' ')[2] ?? '').split(',').includes('fail');
              const connected = line.split(' ')[7] === 'connected';
              if (other.running ? failed || !connected : !failed) return false;
            }
          }
          return true;
        },
        30_000,
        'the cluster to agree on which masters are up',
      );
    },
    async stop() {
      await Promise.all(
        nodes.map(async (node) => {
          if (!node.running) return;
          node.kill();
          await until(async () => !node.running, 10_000, `redis-server on ${node.port} to exit`);
        }),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await run(REDIS_CLI, [
    '--cluster', 'create', ...nodes.map((node) => `127.0.0.1:${node.port}`), '--cluster-replicas', '0', '--cluster-yes',
  ]); // prettier-ignore
  await cluster.settled();
  // CLUSTER NODES: id, ip:port@bus, flags, master, ping, pong, epoch, link, then slot ranges ("0-5460").
  for (const line of (await cluster.command(nodes[0]!, 'CLUSTER', 'NODES')).split('\n')) {
    const fields = line.split(' ');
    const node = nodes.find((candidate) => fields[1]?.startsWith(`127.0.0.1:${candidate.port}@`));
    for (const range of fields.slice(8)) {
      const [from = NaN, to = from] = range.split('-').map(Number);
      if (node) owners.push({ from, to, node });
    }
  }
  return cluster;
}

/**
 * The cluster slot of `key` (Redis Cluster specification, "Key distribution model"): CRC16
 * (XMODEM: polynomial 0x1021, initial value 0) of the key, or of its hash tag (the text between
 * the first `{` and the next `}`, when not empty), modulo 16384.
 */
export function slotOf(key: string): number {
  let bytes = Buffer.from(key);
  const open = bytes.indexOf('{');
  if (open !== -1) {
    const close = bytes.indexOf('}', open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/**
 * Marks a fresh Redis Cluster as a store in use for an hour, as a production cluster is: every
 * shard's restart marker (restartMarkerKeys(prefix, true)), each SET on the master of its slot.
 * Without them, redisStore() takes each shard's first use for a master that lost its data and
 * refuses proofs dated before it for clockSkew seconds (src/server/restart-guard.ts), as
 * test/support/redis.ts markStoreInUse explains for one Redis.
 */
export async function markClusterInUse(cluster: RedisCluster, prefix = 'tokensec:'): Promise<void> {
  const marker = newRestartMarker(Date.now() - 3_600_000);
  for (const key of restartMarkerKeys(prefix, true)) {
    const node = cluster.nodeOf(key);
    const reply = await cluster.command(node, 'SET', key, marker);
    if (reply !== 'OK') throw new Error(`redis-server on port ${node.port} did not take the marker ${key}: ${reply}`);
  }
}

/**
 * A Redis Sentinel (redis-server --sentinel) on a free loopback port, following the master on
 * `masterPort` under the name `mymaster`, started by the test that needs it and stopped after it.
 */
export async function startSentinel(masterPort: number): Promise<{ port: number; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'tokensec-redis-sentinel-'));
  const port = await freePort();
  const config = join(dir, 'sentinel.conf'); // Sentinel rewrites its own configuration file
  writeFileSync(config, `port ${port}\nbind 127.0.0.1\ndir ${dir}\nsentinel monitor mymaster 127.0.0.1 ${masterPort} 1\n`);
  const child = spawn(REDIS_SERVER, [config, '--sentinel'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  await until(
    async () => {
      if (child.exitCode !== null) throw new Error(`redis-server --sentinel exited: ${output}`);
      return answers(port);
    },
    10_000,
    `Sentinel on port ${port} (${output})`,
  );
  return {
    port,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
