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
  /** longReadDeadlineMs bounds a public long read (a whole audit chain, a streamed recording: PARLEY_EDGE_LONG_READ_DEADLINE_MS); default DEFAULT_LONG_READ_DEADLINE_MS. */
  readonly longReadDeadlineMs?: number;
}

/**
 * DEFAULT_LONG_READ_DEADLINE_MS is how long a public long read (audit's ExportEvents and
 * VerifyLog, which read a tenant's whole chain) may run: 10 minutes, the bound to which audit lifts
 * its database timeouts for an export's transaction (LIFTED_TIMEOUT_MS in @parley/db), so neither
 * cuts the other short.
 */
export const DEFAULT_LONG_READ_DEADLINE_MS = 600_000;

/**
 * forward is the call options for an internal call made for a public request: the principal in
 * headers (never the API key) and the caller's cancellation.
 */
export function forward(ctx: HandlerContext): CallOptions {
  return { headers: principalHeaders(publicPrincipal(ctx)), signal: ctx.signal };
}

/**
 * longReadDeadlineMs is the deadline of the internal call behind a public long read: the public
 * caller's own deadline when it sent one, at most `capMs`; `capMs` when it sent none. Never 0,
 * which would mean no deadline at all, when the caller's has already passed.
 */
export function longReadDeadlineMs(callerMs: number | undefined, capMs: number): number {
  return Math.max(1, Math.min(callerMs ?? capMs, capMs));
}

/**
 * forwardLongRead is forward for an internal call that reads a lot for a public caller
 * (ExportEvents and StreamRecording, streamed at the reader's pace; VerifyLog, which hashes every
 * event: a million take seconds of CPU alone, see bench/README.md): not the internal default
 * deadline (10 s), which would cut a long read, but longReadDeadlineMs's, so a bound remains (a
 * stream holds a read slot of the service behind it while it lasts) and the caller may ask for less.
 */
export function forwardLongRead(ctx: HandlerContext, capMs: number = DEFAULT_LONG_READ_DEADLINE_MS): CallOptions {
  return { ...forward(ctx), timeoutMs: longReadDeadlineMs(ctx.timeoutMs(), capMs) };
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
