/**
 * One handshake's deadline for the app's secret and payload functions: `timeout` ms from the
 * first call, or until the client disconnects. A function that returns a value goes on at once;
 * only one that returns a promise (or reads `signal`) arms the timer, the AbortSignal and the
 * disconnect listener, which measured 10 to 30 µs per handshake.
 */
import type { ServerResponse } from 'node:http';
import { TokenSecError } from '../../protocol/errors.js';
import { isPromiseLike } from './steps.js';

export class HandshakeDeadline {
  readonly #res: ServerResponse;
  readonly #timeout: number;
  #startedAt: number | undefined;
  #controller: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #onClose = () => {
    // 'close' before the answer was written: the client went away.
    if (!this.#res.writableFinished) this.#controller?.abort(disconnected());
  };

  constructor(res: ServerResponse, timeout: number) {
    this.#res = res;
    this.#timeout = timeout;
  }

  /** Aborts when the timeout passes or the client disconnects. Made on first use. */
  get signal(): AbortSignal {
    return this.#arm().signal;
  }

  #arm(): AbortController {
    if (this.#controller) return this.#controller;
    const controller = (this.#controller = new AbortController());
    const left = this.#timeout - (performance.now() - (this.#startedAt ?? performance.now()));
    this.#timer = setTimeout(
      () => {
        controller.abort(
          new TokenSecError(
            'ERR_TOKENSEC_TIMEOUT',
            `TokenSec secret and payload functions did not settle within ${this.#timeout} ms.`,
            503,
          ),
        );
      },
      Math.max(0, left),
    );
    if (this.#res.destroyed && !this.#res.writableFinished) controller.abort(disconnected());
    else this.#res.once('close', this.#onClose);
    return controller;
  }

  /**
   * Calls an app function. A value (or a synchronous throw) comes back at once; a promise settles
   * with its result or with the abort reason, whichever comes first.
   */
  call<T>(work: () => T | PromiseLike<T>): T | Promise<T> {
    this.#startedAt ??= performance.now();
    if (this.#controller?.signal.aborted) throw this.#controller.signal.reason;
    const result = work();
    if (!isPromiseLike(result)) return result;
    const { signal } = this.#arm();
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      Promise.resolve(result)
        .then(resolve, reject)
        .finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  dispose(): void {
    if (!this.#controller) return;
    clearTimeout(this.#timer);
    this.#res.off('close', this.#onClose);
  }
}

const disconnected = () =>
  new TokenSecError('ERR_TOKENSEC_ABORTED', 'The client disconnected before the TokenSec handshake was answered.', 499);
