import type { DescService } from '@bufbuild/protobuf';
import type { CallOptions, Client, HandlerContext } from '@connectrpc/connect';
import { principalHeaders, type ServiceName } from '@parley/platform';
import { publicPrincipal } from './module.js';

/** PublicDeps is what every public module gets: typed mTLS clients for the internal services. */
export interface PublicDeps {
  /** client returns the (shared) mTLS client of an internal service; PARLEY_<PEER>_URL must be set. */
  client<S extends DescService>(peer: ServiceName, service: S): Client<S>;
  /** forgetApiKeys drops this edge's cached checks of revoked keys (so they are refused here at once). */
  forgetApiKeys?(apiKeyIds: readonly string[]): void;
}

/**
 * forward is the call options for an internal call made for a public request: the principal in
 * headers (never the API key) and the caller's cancellation.
 */
export function forward(ctx: HandlerContext): CallOptions {
  return { headers: principalHeaders(publicPrincipal(ctx)), signal: ctx.signal };
}

/**
 * forwardStream is forward for an internal stream that lasts as long as the public caller reads
 * (a recording read by a slow client): no default deadline, only the caller's cancellation, so a
 * client hang-up still ends it but a long read is not cut off at the internal default.
 */
export function forwardStream(ctx: HandlerContext): CallOptions {
  return { ...forward(ctx), timeoutMs: 0 };
}

/**
 * relabel turns an internal message into the init shape of the public message with the same
 * fields (the types differ only in their $typeName).
 */
export function relabel<T extends { $typeName: string }>(message: T | undefined): Omit<T, '$typeName'> | undefined {
  if (message === undefined) return undefined;
  const { $typeName: _typeName, ...fields } = message;
  return fields;
}
