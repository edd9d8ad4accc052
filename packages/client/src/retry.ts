import type { DescMethod } from '@bufbuild/protobuf';
import { MethodOptions_IdempotencyLevel as Idempotency } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';

/** RetryOptions tune retries on UNAVAILABLE; the defaults suit an interactive caller. */
export interface RetryOptions {
  /** maxAttempts counts the first try: 1 turns retries off (default 4). */
  readonly maxAttempts?: number;
  /** initialDelayMs is the backoff before the second attempt (default 200); it doubles on each retry. */
  readonly initialDelayMs?: number;
  /** maxDelayMs caps one backoff (default 5000). */
  readonly maxDelayMs?: number;
  /** random returns a number in [0, 1) for the jitter (tests pass a fixed one). */
  readonly random?: () => number;
  /** onRetry is told before each wait, e.g. to log "retrying in 400 ms". */
  readonly onRetry?: (info: { procedure: string; attempt: number; delayMs: number; error: ConnectError }) => void;
}

// Calls that change nothing (or change it to the same end state whatever the number of times), so
// that repeating one whose answer was lost cannot do anything twice. Everything else is retried only
// when the connection was refused: then the request never reached the API.
const READ_PREFIXES = ['Get', 'List'];
const READ_METHODS = new Set([
  'WhoAmI',
  // A check of the chain: reads only.
  'VerifyLog',
  // A dry run of the guardrail checker: no conversation, no stored state.
  'TestGuardrailPolicy',
]);

/**
 * isRetrySafe says whether repeating a call cannot do anything twice: methods marked
 * `idempotency_level` NO_SIDE_EFFECTS or IDEMPOTENT in the proto, and the reads (Get…, List…,
 * WhoAmI, VerifyLog, TestGuardrailPolicy). Creates, puts, rotations, revocations, deletes and
 * updates are not: a lost answer may hide a change that happened (a second CreateApiKey mints a
 * second key; a second DeleteAgent answers NOT_FOUND for a delete that worked).
 */
export function isRetrySafe(method: DescMethod): boolean {
  if (method.idempotency === Idempotency.NO_SIDE_EFFECTS || method.idempotency === Idempotency.IDEMPOTENT) return true;
  return READ_METHODS.has(method.name) || READ_PREFIXES.some((p) => method.name.startsWith(p));
}

/** neverSent says whether an error shows that the request never reached the server (connection refused, name not resolved). */
export function neverSent(err: ConnectError): boolean {
  for (let e: unknown = err.cause; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN') return true;
  }
  return false;
}

/** backoffDelay is the wait before attempt `attempt + 1`: exponential with full jitter, capped. */
export function backoffDelay(attempt: number, options: RetryOptions = {}): number {
  const initial = options.initialDelayMs ?? 200;
  const cap = options.maxDelayMs ?? 5000;
  const ceiling = Math.min(cap, initial * 2 ** (attempt - 1));
  // Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): many clients that failed
  // together do not come back together.
  return Math.round(ceiling / 2 + (ceiling / 2) * (options.random ?? Math.random)());
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(ConnectError.from(signal.reason, Code.Canceled));
      return;
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(ConnectError.from(signal.reason, Code.Canceled));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * retryInterceptor repeats a unary call that failed UNAVAILABLE, with exponential backoff and
 * jitter, when the call is retry-safe (isRetrySafe) or the request was never sent (neverSent).
 * Streaming calls are not repeated: part of the stream may already have been consumed.
 */
export function retryInterceptor(options: RetryOptions = {}): Interceptor {
  const maxAttempts = Math.max(1, options.maxAttempts ?? 4);
  return (next) => async (req) => {
    if (req.stream || maxAttempts === 1) return next(req);
    const safe = isRetrySafe(req.method);
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (err) {
        const error = ConnectError.from(err);
        if (error.code !== Code.Unavailable || attempt >= maxAttempts || !(safe || neverSent(error))) throw err;
        const delayMs = backoffDelay(attempt, options);
        options.onRetry?.({ procedure: req.url, attempt, delayMs, error });
        await sleep(delayMs, req.signal);
      }
    }
  };
}
