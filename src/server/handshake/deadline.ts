/**
 * One handshake's deadline for the app's secret and payload functions: `timeout` ms from the
 * first call, or until the client disconnects. A function that returns a value goes on at once;
 * only one that returns a promise (or reads `signal`) arms the timer and the disconnect listener,
 * which measured 10 to 30 µs per handshake; the AbortSignal is made only for one that reads it.
 */
import type { ServerResponse } from 'node:http';
import { TokenSecError } from '../../protocol/errors.js';
import { isPromiseLike } from './steps.js';

export class HandshakeDeadline {
  readonly #res: ServerResponse;
  readonly #timeout: number;
  #startedAt: number | undefined;
  /** Made only when an app function reads `signal`: AbortController and its listeners cost ~5 µs. */
  #controller: AbortController | undefined;
  #timer: NodeJS.Timeout | undefined;
  #armed = false;
  /** Why the deadline ended (time-out or disconnect), once it has. */
  #failure: TokenSecError | undefined;
  /** The reject of the call now waiting, if any. */
  #waiting: ((reason: unknown) => void) | undefined;
  readonly #onClose = () => {
    // 'close' before the answer was written: the client went away.
    if (!this.#res.writableFinished) this.#fail(disconnected());
  };

  constructor(res: ServerResponse, timeout: number) {
    this.#res = res;
    this.#timeout = timeout;
  }

  /** Aborts when the timeout passes or the client disconnects. Made on first use. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#failure) this.#controller.abort(this.#failure);
    }
    this.#arm();
    return this.#controller.signal;
  }

  /** The timer and the disconnect listener, once per handshake, when something waits (or reads `signal`). */
  #arm(): void {
    if (this.#armed) return;
    this.#armed = true;
    const left = this.#timeout - (performance.now() - (this.#startedAt ?? performance.now()));
    this.#timer = setTimeout(
      () =>
        this.#fail(
          new TokenSecError(
            'ERR_TOKENSEC_TIMEOUT',
            `TokenSec secret and payload functions did not settle within ${this.#timeout} ms.`,
            503,
          ),
        ),
      Math.max(0, left),
    );
    if (this.#res.destroyed && !this.#res.writableFinished) this.#fail(disconnected());
    else this.#res.once('close', this.#onClose);
  }

  #fail(reason: TokenSecError): void {
    if (this.#failure) return;
    this.#failure = reason;
    this.#controller?.abort(reason);
    this.#waiting?.(reason);
  }

  /**
   * Calls an app function. A value (or a synchronous throw) comes back at once, with nothing
   * armed; a promise settles with its result or with the time-out or disconnect, whichever comes
   * first.
   */
  call<T>(work: () => T | PromiseLike<T>): T | Promise<T> {
    this.#startedAt ??= performance.now();
    if (this.#failure) throw this.#failure;
    const result = work();
    if (!isPromiseLike(result)) return result;
    this.#arm();
    return new Promise<T>((resolve, reject) => {
      // Handlers first, even when the deadline has already ended: the app's promise may still
      // reject (a fetch aborted by `signal`), and unhandled, that rejection would end the process.
      result.then(
        (value) => {
          this.#waiting = undefined;
          resolve(value);
        },
        (error: unknown) => {
          this.#waiting = undefined;
          reject(error);
        },
      );
      if (this.#failure) reject(this.#failure);
      else this.#waiting = reject;
    });
  }

  dispose(): void {
    if (!this.#armed) return;
    clearTimeout(this.#timer);
    this.#res.off('close', this.#onClose);
  }
}

const disconnected = () =>
  new TokenSecError('ERR_TOKENSEC_ABORTED', 'The client disconnected before the TokenSec handshake was answered.', 499);
