/**
 * EnvelopeLogger is the part of a logger this package uses; a pino Logger (the platform's) fits.
 * Nothing secret is ever passed to it: no keys, tokens or plaintext.
 */
export interface EnvelopeLogger {
  /** info logs routine events (login, renewal, rotation). */
  info(fields: object, message: string): void;
  /** warn logs problems that the package recovers from, and the dev-only keyring notice. */
  warn(fields: object, message: string): void;
}

/** silentLogger drops everything; for tests that do not look at logs. */
export const silentLogger: EnvelopeLogger = { info() {}, warn() {} };
