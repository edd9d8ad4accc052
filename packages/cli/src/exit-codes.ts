import { Code } from '@connectrpc/connect';
import { ParleyApiError } from '@parley/client';

/**
 * EXIT are the parley command's exit statuses, stable for scripts (README, "The parley CLI"):
 * one number per thing a script does differently.
 */
export const EXIT = {
  /** ok: the command did what it was asked. */
  ok: 0,
  /** usage: a bad command line, or an input file that cannot be read or parsed. */
  usage: 1,
  /** notFound: the thing named does not exist in this workspace. */
  notFound: 2,
  /** auth: no credentials, a key or token the API refuses, or a missing scope or role. */
  auth: 3,
  /** unavailable: the API could not be reached or did not answer in time, after retries. */
  unavailable: 4,
  /** rejected: the API refused the request as it stands (invalid, already exists, stale version, limit). */
  rejected: 5,
  /** verifyFailed: `audit verify` found a chain or export file that does not verify. */
  verifyFailed: 6,
  /** internal: anything else (the message says what). */
  internal: 9,
} as const;

/** ExitCode is one of EXIT's values. */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** UsageError is a mistake on the command line or in an input file: exit 1 with the message. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** VerificationFailedError is an audit chain or export that does not verify: exit 6. */
export class VerificationFailedError extends Error {
  override readonly name = 'VerificationFailedError';
}

/** MissingCredentialsError: no API key or profile to call the API with: exit 3. */
export class MissingCredentialsError extends Error {
  override readonly name = 'MissingCredentialsError';
}

/** NotSignedInError: operator sign-in did not finish, or its session ended (refresh refused): exit 3. */
export class NotSignedInError extends Error {
  override readonly name = 'NotSignedInError';
}

/** UnavailableError: the edge's sign-in endpoints could not be reached or did not answer: exit 4. */
export class UnavailableError extends Error {
  override readonly name = 'UnavailableError';
}

/** exitCodeOf maps what a command threw to the exit status scripts rely on. */
export function exitCodeOf(err: unknown): ExitCode {
  if (err instanceof UsageError) return EXIT.usage;
  if (err instanceof VerificationFailedError) return EXIT.verifyFailed;
  if (err instanceof MissingCredentialsError || err instanceof NotSignedInError) return EXIT.auth;
  if (err instanceof UnavailableError) return EXIT.unavailable;
  if (err instanceof ParleyApiError) {
    switch (err.code) {
      case Code.NotFound:
        return EXIT.notFound;
      case Code.Unauthenticated:
      case Code.PermissionDenied:
        return EXIT.auth;
      case Code.Unavailable:
      case Code.DeadlineExceeded:
        return EXIT.unavailable;
      case Code.InvalidArgument:
      case Code.FailedPrecondition:
      case Code.AlreadyExists:
      case Code.OutOfRange:
      case Code.ResourceExhausted:
        return EXIT.rejected;
      default:
        return EXIT.internal;
    }
  }
  return EXIT.internal;
}
