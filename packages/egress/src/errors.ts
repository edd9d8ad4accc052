import { InvalidArgumentError, UnavailableError } from '@parley/platform';
import type { EgressRule } from './check.js';

/**
 * EgressRefusedError: the target broke an egress rule. It is INVALID_ARGUMENT because the URL is
 * the caller's to fix; `rule` says which rule refused it. Never retry it.
 */
export class EgressRefusedError extends InvalidArgumentError {
  /** rule is the rule that refused the target. */
  readonly rule: EgressRule;

  constructor(rule: EgressRule, reason: string) {
    super(`egress refused: ${reason}`);
    this.rule = rule;
  }
}

/** EgressFailure names why a request that was allowed did not produce a response. */
export type EgressFailure = 'connect-timeout' | 'total-timeout' | 'response-too-large' | 'connection';

/**
 * EgressRequestError: the target was allowed but the exchange failed (timeout, dropped connection,
 * TLS failure, oversized response). It is UNAVAILABLE: the target may answer later.
 */
export class EgressRequestError extends UnavailableError {
  /** failure says which way the exchange failed. */
  readonly failure: EgressFailure;

  constructor(failure: EgressFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.failure = failure;
  }
}
