/**
 * The messages of a session, as arrays to keep the bundle small: [kind, id, data], id a call's
 * number (0 where there is no call). Page to worker: init, hidden, clear, fetch and abort; worker
 * to page: fetch (the response or error) and event. Between tabs: clear only, never a token.
 */
import type { SessionSettings } from './options.js';
import type { ErrorDetail, SessionState } from './types.js';

/** What a session's events carry (a sealed session's never carry the token). */
export type Detail = Partial<ErrorDetail> & { token?: string; expiresAt?: number; state?: SessionState };

/** A request's parts, which cross to the worker (a Request cannot); the page's CSRF token comes with each. */
export interface FetchCall extends Omit<RequestInit, 'headers' | 'body' | 'signal' | 'window'> {
  url: string;
  headers: [string, string][];
  body: ArrayBuffer;
  csrfToken: string | undefined;
}

/** What the worker tells the page about a response: fetch's own values, which a Response built in the page cannot hold. */
export type ResponseMeta = Pick<Response, 'url' | 'redirected' | 'type' | 'status' | 'ok' | 'statusText'>;

/** The worker's answer to a fetch: the response's parts, or an error's code and status (a TokenSecError's) and name and message. */
export type Reply = Partial<ErrorDetail> & {
  meta?: ResponseMeta;
  headers?: [string, string][];
  body?: ArrayBuffer;
  name?: string;
  message?: string;
};

/** An event of the worker's session, for the page to dispatch. */
export type EventMessage = Detail & { type: string };

export type PageToWorker =
  | [kind: 'init', id: 0, data: SessionSettings]
  | [kind: 'hidden', id: 0, data: boolean]
  | [kind: 'clear']
  | [kind: 'fetch', id: number, data: FetchCall]
  | [kind: 'abort', id: number];

export type WorkerToPage = [kind: 'event', id: 0, data: EventMessage] | [kind: 'fetch', id: number, data: Reply];

/** Between the tabs of one endpoint (BroadcastChannel): logout. */
export type TabMessage = [kind: 'clear'];
