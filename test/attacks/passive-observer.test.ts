/**
 * A passive observer records every byte of a handshake over a real socket: the page load with
 * its cookies and CSRF token, the request, the response. With all of it, and the protocol's own
 * derivations, it cannot get the payload; the real client can.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac } from 'node:crypto';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { handshake } from '../../client/index.js';
import { hkdfSha256 } from '../../src/server/crypto/primitives.js';
import { keyContext, utf8 } from '../../src/protocol/context.js';
import { decodeBase64url } from '../../src/protocol/base64url.js';
import { type Algorithm } from '../../src/protocol/wire.js';
import { TOKEN, csrfApp, defined, listen } from '../support/helpers.js';

/** A TCP proxy on 127.0.0.1 that forwards to `target` and records both directions. */
async function recordingProxy(target: string) {
  const { port } = new URL(target);
  const recorded: Buffer[] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), '127.0.0.1');
    client.on('data', (chunk) => {
      recorded.push(chunk);
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      recorded.push(chunk);
      client.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    recording: () => Buffer.concat(recorded).toString('latin1'),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let app: Awaited<ReturnType<typeof listen>>;
let proxy: Awaited<ReturnType<typeof recordingProxy>>;
beforeAll(async () => {
  app = await listen(csrfApp().app);
  proxy = await recordingProxy(app.origin);
});
afterAll(async () => {
  await proxy.close();
  await app.close();
});

it.each(['x25519', 'p256'] as const)(
  '%s: the recording of a whole exchange does not yield the payload',
  async (algorithm: Algorithm) => {
    // The victim: loads the page (cookies, CSRF token), then runs the real client, all through the proxy.
    const page = await fetch(`${proxy.origin}/`, { headers: { connection: 'close' } });
    const cookies = page.headers.getSetCookie().map((c) => c.split(';', 1).join(''));
    const csrfToken = decodeURIComponent(cookies.find((c) => c.startsWith('tokensec='))!.slice(9));
    await page.text();
    const payload = await handshake({
      uri: `${proxy.origin}/token`,
      csrfToken,
      headers: { cookie: cookies.join('; '), connection: 'close' },
      algorithm,
    });
    expect(payload).toBe(TOKEN);

    // The observer: everything that crossed the wire.
    const wire = proxy.recording();
    expect(wire).toContain(csrfToken);
    expect(wire).toContain('x-tokensec-handshake');
    for (const form of [TOKEN, Buffer.from(TOKEN).toString('base64'), Buffer.from(TOKEN).toString('base64url'), TOKEN.slice(0, 24)]) {
      expect(wire).not.toContain(form);
    }
    const requestValue = /x-tokensec-handshake: (v3\.[^\r]+)/i.exec(wire.slice(0, wire.lastIndexOf('HTTP/1.1 200')))![1];
    const responseValue = /x-tokensec-handshake: (v3\.[^\r]+)/i.exec(wire.slice(wire.lastIndexOf('HTTP/1.1 200')))![1];
    const [, , clientKey = ''] = defined(requestValue, 'request header').split('.');
    const [, serverKey = '', iv = '', sealed = ''] = defined(responseValue, 'response header').split('.');
    const A = decodeBase64url(clientKey)!;
    const B = decodeBase64url(serverKey)!;
    const ciphertext = decodeBase64url(sealed)!;
    const context = keyContext(algorithm, A, B, { header: 'x-tokensec-handshake', method: 'POST', path: '/token' });

    // Every value the observer saw: header values, cookie values, each dot-separated part and each
    // base64/base64url run, as text and decoded.
    const seen = new Set<string>();
    for (const line of wire.split('\r\n')) {
      const value = line.includes(': ') ? line.slice(line.indexOf(': ') + 2) : line;
      for (const piece of [value, ...value.split(/[;,= ]+/), ...value.split('.')]) if (piece.length >= 8) seen.add(piece);
    }
    for (const run of wire.match(/[A-Za-z0-9_+/-]{16,}/g) ?? []) seen.add(run);
    const candidates: Uint8Array[] = [];
    for (const value of seen) {
      candidates.push(utf8(value), utf8(decodeURIComponent(value.replace(/%(?![0-9a-f]{2})/gi, ''))));
      const decoded = decodeBase64url(value) ?? Buffer.from(value, 'base64');
      if (decoded.length) candidates.push(new Uint8Array(decoded));
    }
    expect(candidates.length).toBeGreaterThan(50);

    const opens = (key: Uint8Array, sealedBytes: Uint8Array = ciphertext) => {
      if (key.length !== 32) return false;
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, decodeBase64url(iv)!);
        decipher.setAAD(context);
        decipher.setAuthTag(sealedBytes.subarray(-16));
        decipher.update(sealedBytes.subarray(0, -16));
        decipher.final();
        return true;
      } catch {
        return false;
      }
    };
    let attempts = 0;
    for (const ikm of candidates) {
      // as the key itself, hashed, or as a passphrase in the 2015 style (request header as secret)
      for (const key of [ikm, createHash('sha256').update(ikm).digest(), createHmac('sha256', ikm).update(context).digest()]) {
        attempts++;
        expect(opens(key)).toBe(false);
      }
      // with the protocol's own KDF, every recorded value as IKM against every recorded value as secret
      for (const salt of candidates) {
        attempts++;
        expect(opens(hkdfSha256(ikm, salt, context, 32))).toBe(false);
      }
    }
    expect(attempts).toBeGreaterThan(candidates.length ** 2);
    // Sanity: the same check does notice a key that works (one made on purpose for this probe).
    const knownKey = new Uint8Array(32).fill(7);
    const cipher = createCipheriv('aes-256-gcm', knownKey, decodeBase64url(iv)!);
    cipher.setAAD(context);
    const probe = Buffer.concat([cipher.update('x'), cipher.final(), cipher.getAuthTag()]);
    expect(opens(knownKey, probe)).toBe(true);
  },
  60_000,
);
