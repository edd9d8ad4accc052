import { UnauthenticatedError } from '@parley/platform';

/**
 * WebhookVerificationError: an inbound webhook failed verification. The message says why (missing
 * header, timestamp outside the tolerance, no matching signature, replayed id); it is
 * UNAUTHENTICATED because the sender could not prove who it is. Answer it with a 4xx and do not
 * process the event.
 */
export class WebhookVerificationError extends UnauthenticatedError {}
