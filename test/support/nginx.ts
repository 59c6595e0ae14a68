/**
 * A real nginx (Debian's package) terminating TLS on a free loopback port in front of an app, with
 * a throwaway self-signed certificate made by openssl. Started by the test that needs it, stopped
 * after it; never mocked, never skipped: without the binaries the test fails saying what to
 * install. Only what a TLS-terminating proxy needs is configured, so its buffers are nginx's
 * defaults (proxy_buffer_size 4k on x86-64, large_client_header_buffers 4 8k) unless `extra` says
 * otherwise.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net.js';

export const NGINX = process.env.NGINX_PATH ?? '/usr/sbin/nginx';

export interface NginxProxy {
  /** `https://<name>:<port>` */
  origin: string;
  port: number;
  /** base64 SHA-256 of the certificate's SubjectPublicKeyInfo, for Chromium's --ignore-certificate-errors-spki-list. */
  spki: string;
  /** nginx's error log so far (it names the buffer when an upstream header is too big). */
  errorLog(): string;
  stop(): Promise<void>;
}

export interface NginxOptions {
  /** The name the certificate is for, and the page's host. */
  serverName: string;
  /** The app's port on 127.0.0.1. */
  upstreamPort?: number;
  /** Several app processes on 127.0.0.1, taken in turn (nginx's round robin), instead of `upstreamPort`. */
  upstreamPorts?: number[];
  /** Extra directives for the server block, e.g. `proxy_buffer_size 16k;`. */
  extra?: string;
  /** Extra directives for the http block, e.g. `proxy_cache_path …;` (`$dir` is nginx's own temporary directory). */
  http?: string;
  /** What nginx sends upstream as Host. Default `$http_host` (as the browser sent it); `$host` drops the port. */
  hostHeader?: string;
}

function need(path: string, what: string): void {
  if (!existsSync(path)) throw new Error(`${what} not found at ${path}. Install it (Debian/Ubuntu: apt-get install -y ${what}).`);
}

export async function startNginx({
  serverName,
  upstreamPort,
  upstreamPorts = upstreamPort === undefined ? [] : [upstreamPort],
  extra = '',
  http = '',
  hostHeader = '$http_host',
}: NginxOptions): Promise<NginxProxy> {
  need(NGINX, 'nginx');
  if (upstreamPorts.length === 0) throw new Error('startNginx: give upstreamPort or upstreamPorts.');
  const dir = mkdtempSync(join(tmpdir(), 'tokensec-nginx-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  try {
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
        '-keyout', key, '-out', cert, '-subj', `/CN=${serverName}`, '-addext', `subjectAltName=DNS:${serverName}`,
      ], // prettier-ignore
      { stdio: 'pipe' },
    );
  } catch (cause) {
    throw new Error('openssl could not make a certificate. Install it (Debian/Ubuntu: apt-get install -y openssl).', { cause });
  }
  const spkiDer = new X509Certificate(readFileSync(cert)).publicKey.export({ type: 'spki', format: 'der' });
  const spki = createHash('sha256').update(spkiDer).digest('base64');
  const port = await freePort();
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((name) => `${name}_temp_path ${join(dir, name)};`).join('\n  ');
  writeFileSync(
    join(dir, 'nginx.conf'),
    `${process.getuid?.() === 0 ? 'user root;' : ''}
daemon off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 128; }
http {
  access_log off;
  ${temp}
  ${http.replaceAll('$dir', dir)}
  ${upstreamPorts.length > 1 ? `upstream app { ${upstreamPorts.map((upstream) => `server 127.0.0.1:${upstream};`).join(' ')} }` : ''}
  server {
    listen 127.0.0.1:${port} ssl;
    server_name ${serverName};
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    ${extra}
    location / {
      proxy_pass http://${upstreamPorts.length > 1 ? 'app' : `127.0.0.1:${upstreamPorts[0]}`};
      proxy_http_version 1.1;
      proxy_set_header Host ${hostHeader};
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`,
  );
  const child: ChildProcess = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  const errorLog = () => {
    try {
      return readFileSync(join(dir, 'error.log'), 'utf8');
    } catch {
      return '';
    }
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${output}${errorLog()}`);
    const ready = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ready) break;
    if (Date.now() > deadline) throw new Error(`nginx did not listen on port ${port}: ${output}${errorLog()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    origin: `https://${serverName}:${port}`,
    port,
    spki,
    errorLog,
    stop: () =>
      new Promise<void>((resolve) => {
        const done = () => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        };
        if (child.exitCode !== null) return done();
        child.once('exit', done);
        child.kill('SIGQUIT'); // graceful: finish open requests, then exit
      }),
  };
}
