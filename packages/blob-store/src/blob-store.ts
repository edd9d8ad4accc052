import { InvalidArgumentError } from '@parley/platform';

/**
 * BlobStore keeps opaque objects by key: what Parley puts there is already encrypted (a
 * recording's audio under its conversation's or subject's key), so a store needs no crypto of its
 * own and never sees plaintext. Deleting a missing key is not an error (purges are retried).
 */
export interface BlobStore {
  /** kind names the backend (logs, the data map). */
  readonly kind: 'file' | 's3';
  /** put stores bytes under key, replacing what was there. */
  put(key: string, bytes: Uint8Array): Promise<void>;
  /** get reads a key's bytes; undefined when there is no such object. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** delete removes a key; a missing key is fine. */
  delete(key: string): Promise<void>;
  /**
   * writer starts writing an object piece by piece (a call's recording as it goes on): nothing is
   * visible under key until complete(), and abort() leaves nothing behind.
   */
  writer(key: string): BlobWriter;
  /**
   * read streams a key's bytes in pieces, without holding the object in memory; undefined when
   * there is no such object. Once `signal` aborts, the read stops (the file is closed, the request
   * is cut) and the pieces' iteration throws.
   */
  read(key: string, options?: BlobReadOptions): Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array> | undefined>;
}

/** BlobReadOptions are a streamed read's options. */
export interface BlobReadOptions {
  /** signal stops the read: the caller has gone. */
  readonly signal?: AbortSignal | undefined;
}

/**
 * BlobWriter writes one object in pieces, in order. write() resolves once the piece is written
 * out or held in the writer's buffer (bufferedBytes: what it holds in memory now, for a
 * memory budget); call it again only after the last write resolved.
 */
export interface BlobWriter {
  /** write appends bytes to the object. */
  write(bytes: Uint8Array): Promise<void>;
  /** bufferedBytes is how much the writer holds in memory, not yet written out. */
  readonly bufferedBytes: number;
  /** complete makes the object visible under its key and answers its size in bytes. */
  complete(): Promise<number>;
  /** abort drops what was written; the key is left as it was. A failed write or complete calls it itself. */
  abort(): Promise<void>;
}

const KEY_PATTERN = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/;

/**
 * requireBlobKey checks that a key is relative, made of safe segments and never climbs out of
 * its root (`..`), so the file store can use it as a path and S3 as an object key unchanged.
 */
export function requireBlobKey(key: string): string {
  if (key.length === 0 || key.length > 512 || !KEY_PATTERN.test(key) || key.split('/').some((s) => s === '.' || s === '..'))
    throw new InvalidArgumentError('blob key must be 1-512 characters of letters, digits, "_", "." and "-" in "/"-separated segments', {
      field: 'blob_key',
    });
  return key;
}
