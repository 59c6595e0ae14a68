/**
 * Node's Buffer does base64url natively, about 30x faster than wire.ts's portable atob/btoa
 * codec on the server's hot path. Used only where Buffer exists and really speaks base64url (not a
 * browser polyfill). The browser build replaces this module with `undefined` (rollup.config.ts).
 */
interface NodeBufferLike {
  from(bytes: Uint8Array | string, encoding?: string): Uint8Array & { toString(encoding: string): string };
}

const NodeBuffer = (globalThis as { Buffer?: NodeBufferLike }).Buffer;

export const nativeBase64url =
  NodeBuffer && NodeBuffer.from(Uint8Array.of(251, 255)).toString('base64url') === '-_8'
    ? {
        encode: (bytes: Uint8Array): string => NodeBuffer.from(bytes).toString('base64url'),
        decode: (text: string): Uint8Array<ArrayBuffer> => new Uint8Array(NodeBuffer.from(text, 'base64url')),
      }
    : undefined;
