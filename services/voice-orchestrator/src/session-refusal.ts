/** CLOSE_CODES are the WebSocket close codes of the session protocol (README: "Session protocol"). */
export const CLOSE_CODES = {
  normal: 1000,
  goingAway: 1001,
  badFrame: 1003,
  policy: 1008,
  tooBig: 1009,
  internal: 1011,
  tryAgainLater: 1013,
  unauthenticated: 4401,
  forbidden: 4403,
  startTimeout: 4408,
} as const;

/**
 * SessionRefusal ends a connection with a close code and a reason the client may read: it says
 * which rule refused it (token expired, origin not allowed, secrets unavailable), never how a
 * check works inside.
 */
export class SessionRefusal extends Error {
  /** closeCode is the WebSocket close code sent. */
  readonly closeCode: number;

  constructor(closeCode: number, reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.name = 'SessionRefusal';
    this.closeCode = closeCode;
  }
}
