import { FailedPreconditionError } from '@parley/platform';

/**
 * CiphertextMismatchError: a ciphertext did not authenticate for the row it was read for. It was
 * copied from another tenant, secret, version or subject, or its bytes were changed. Nothing of
 * the plaintext is returned. It is a FailedPreconditionError (the stored data, not the request,
 * is wrong) with the place it was read for, so the service can log and alert on it.
 */
export class CiphertextMismatchError extends FailedPreconditionError {
  /** boundTo names what the ciphertext was expected to belong to (ids only, no secret data). */
  readonly boundTo: string;

  constructor(boundTo: string) {
    super(
      `ciphertext does not decrypt for ${boundTo}: it belongs to another row or tenant, or was altered; ` +
        'restore the row from its own source instead of copying ciphertexts between rows',
    );
    this.boundTo = boundTo;
  }
}
