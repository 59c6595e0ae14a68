/**
 * TokenSec server: Express (node:http) middleware that hands an access token to the browser
 * client through an ECDH-encrypted handshake header. See README.md and docs/PROTOCOL.md.
 *
 * Layout: src/protocol/ is the wire format both sides share, src/server/ the middlewares,
 * client/ the browser (docs/ARCHITECTURE.md).
 */
import { dpop } from './server/dpop/middleware.js';
import { memoryReplayStore, redisReplayStore } from './server/dpop/replay-store.js';
import { memoryStore } from './server/memory-store.js';
import { redisStore } from './server/redis-store.js';
import { boundedSessionStore } from './server/session-store.js';
import { handshake } from './server/handshake/middleware.js';
import { unbind } from './server/dpop/session-binding.js';
import { initialize } from './server/initialize.js';
import { client, integrity } from './server/serve-client.js';
import { errorHandler } from './server/error-handler.js';
import { dbsc } from './server/dbsc/index.js';

export {
  boundedSessionStore,
  client,
  dbsc,
  dpop,
  errorHandler,
  handshake,
  initialize,
  integrity,
  memoryReplayStore,
  memoryStore,
  redisReplayStore,
  redisStore,
  unbind,
};
export { dpopChannel, handshakeChannel } from './server/events.js';
export type { DpopEvent, HandshakeEvent } from './server/events.js';
export type { AtomicStore } from './server/store.js';
export type { RequestLike } from './server/express-request.js';
export type { MemoryStoreOptions } from './server/memory-store.js';
export type {
  IoRedisLikeClient,
  NodeRedisClusterLikeClient,
  NodeRedisLikeClient,
  NodeRedisSentinelLikeClient,
  RedisStoreOptions,
} from './server/redis-store.js';
export type { ErrorHandlerOptions, ErrorLogger, ErrorMiddleware } from './server/error-handler.js';
export type { Middleware, MaybePromise } from './server/options.js';
export type { WithExpressRequest } from './server/express-request.js';
export type { BoundedSessionStoreOptions } from './server/session-store.js';
export { TokenSecError, type TokenSecErrorCode } from './protocol/errors.js';
export { DEFAULT_HEADER, CSRF_HEADER, VERSION } from './protocol/wire.js';
export type { ClientBundle, IntegrityOptions, ServeClientOptions } from './server/serve-client.js';
export type {
  DefaultHandshakeRequest,
  HandshakeContext,
  HandshakeMiddleware,
  ServerHandshakeOptions,
  HandshakeRequestLike,
} from './server/handshake/middleware.js';
export type { CookieOptions, InitializeOptions } from './server/initialize.js';
export type { DefaultDpopRequest, DpopOptions, DpopRequestInfo, DpopRequestLike, TokenClaims } from './server/dpop/middleware.js';
export type { NonceOptions } from './server/dpop/nonce.js';
export type { HandshakeDpopOptions } from './server/dpop/handshake-proof.js';
export type { SessionKeyStore, UnbindOptions } from './server/dpop/session-binding.js';
export type { DpopAlgorithm } from './protocol/dpop.js';
export type {
  Dbsc,
  DbscAlgorithm,
  DbscBinding,
  DbscJwk,
  DbscOptions,
  DbscSessionStore,
  RegistrationRequestOptions,
} from './server/dbsc/index.js';
export type { MemoryReplayStoreOptions, RedisLikeClient, RedisReplayStoreOptions, ReplayStore } from './server/dpop/replay-store.js';

/**
 * Every middleware and store factory under one name, for `import tokenSec from 'tokensec'`. Each
 * member is the named export of the same name.
 */
const tokenSec = {
  /** {@inheritDoc initialize} */
  initialize,
  /** {@inheritDoc handshake} */
  handshake,
  /** {@inheritDoc client} */
  client,
  /** {@inheritDoc dpop} */
  dpop,
  /** {@inheritDoc dbsc} */
  dbsc,
  /** {@inheritDoc errorHandler} */
  errorHandler,
  /** {@inheritDoc integrity} */
  integrity,
  /** {@inheritDoc memoryStore} */
  memoryStore,
  /** {@inheritDoc redisStore} */
  redisStore,
  /** {@inheritDoc boundedSessionStore} */
  boundedSessionStore,
  /** {@inheritDoc memoryReplayStore} */
  memoryReplayStore,
  /** {@inheritDoc redisReplayStore} */
  redisReplayStore,
  /** {@inheritDoc unbind} */
  unbind,
};
export default tokenSec;
