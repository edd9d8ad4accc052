import { InvalidArgumentError } from '@parley/platform';

/**
 * encodeAssociatedData builds the additional authenticated data (AAD) for AES-GCM in a canonical,
 * unambiguous form: a domain label, then each field as a 4-byte big-endian length followed by
 * its UTF-8 bytes. Length prefixes make ("ab","c") and ("a","bc") differ; the label keeps a
 * secret's ciphertext from being accepted as a subject record and the reverse.
 */
export function encodeAssociatedData(label: string, fields: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  for (const value of [label, ...fields]) {
    const bytes = Buffer.from(value, 'utf8');
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    parts.push(length, bytes);
  }
  return Buffer.concat(parts);
}

/** requireIdentifier rejects an empty or oversized identifier before it goes into AAD. */
export function requireIdentifier(value: string, field: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 512) {
    throw new InvalidArgumentError(`${field} must be a non-empty string of at most 512 characters`, { field });
  }
  return value;
}

/** requireVersion rejects anything but a positive safe integer as a version number. */
export function requireVersion(value: number, field: string): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new InvalidArgumentError(`${field} must be a positive whole number, got ${String(value)}`, { field });
  }
  return value;
}
