/**
 * One handshake's deadline: an AbortSignal that fires when the handshake's `timeout` passes or
 * the client disconnects, handed to the app's secret and payload functions, and used to stop
 * waiting for them.
 */
import type { ServerResponse } from 'node:http';
import { TokenSecError } from '../protocol/errors.js';

export class HandshakeDeadline {
  readonly signal: AbortSignal;
  readonly #controller = new AbortController();
  readonly #timer: NodeJS.Timeout;
  readonly #res: ServerResponse;
  readonly #onClose = () => {
    // 'close' before the answer was written: the client went away.
    if (!this.#res.writableFinished) {
      this.#controller.abort(
        new TokenSecError('ERR_TOKENSEC_ABORTED', 'The client disconnected before the TokenSec handshake was answered.', 499),
      );
    }
  };

  constructor(res: ServerResponse, timeout: number) {
    this.signal = this.#controller.signal;
    this.#res = res;
    this.#timer = setTimeout(() => {
      this.#controller.abort(
        new TokenSecError('ERR_TOKENSEC_TIMEOUT', `TokenSec secret and payload functions did not settle within ${timeout} ms.`, 503),
      );
    }, timeout);
    res.once('close', this.#onClose);
  }

  /** Runs an app function, settling with its result or with the abort reason, whichever comes first. */
  run<T>(work: () => T | Promise<T>): Promise<T> {
    const { signal } = this;
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      // In a then callback, so that a synchronous throw becomes a rejection too.
      Promise.resolve()
        .then(work)
        .then(resolve, reject)
        .finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  dispose(): void {
    clearTimeout(this.#timer);
    this.#res.off('close', this.#onClose);
  }
}
