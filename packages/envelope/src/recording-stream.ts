// Recording format 2: a recording's audio sealed chunk by chunk as the call goes on, so neither the
// orchestrator nor tenant-data holds a whole call in memory. Every chunk is its own AES-256-GCM
// message (node:crypto, through aes-gcm.ts); only the framing around them is ours:
//
//   blob   = version (1 byte, 2) || chunk*                    (format 1 blobs start with byte 1)
//   chunk  = length (u32 big-endian: bytes of sealed) || nonce (12 random bytes) || sealed
//   sealed = AES-256-GCM(dataKey, nonce, plaintext, AAD) = ciphertext || tag (16 bytes)
//   AAD    = encodeAssociatedData("parley.recording.v2", [tenant, conversation, recording, index, final])
//
// The chunk's index (0, 1, 2, …) and whether it is the last are in its AAD, so a reordered,
// dropped, repeated or cut-off chunk fails to authenticate or leaves the stream without a final
// chunk; a blob must end exactly after its final chunk.
import { FailedPreconditionError, InvalidArgumentError } from '@parley/platform';
import { aesGcmDecrypt, aesGcmEncrypt, DATA_KEY_BYTES, NONCE_BYTES, TAG_BYTES } from './aes-gcm.js';
import { encodeAssociatedData, requireIdentifier } from './associated-data.js';
import { CiphertextMismatchError } from './errors.js';
import { openRecording, type RecordingScope } from './recording-envelope.js';

/** RECORDING_FORMAT_V2 is the first byte of a recording sealed chunk by chunk. */
export const RECORDING_FORMAT_V2 = 2;
const RECORDING_V2_AAD_LABEL = 'parley.recording.v2';
const LENGTH_BYTES = 4;
/** MAX_RECORDING_CHUNK_BYTES bounds one chunk's plaintext (a reader never allocates more for one chunk). */
export const MAX_RECORDING_CHUNK_BYTES = 4 * 1024 * 1024;

function chunkAssociatedData(scope: RecordingScope, index: number, final: boolean): Buffer {
  return encodeAssociatedData(RECORDING_V2_AAD_LABEL, [
    requireIdentifier(scope.tenantId, 'tenantId'),
    requireIdentifier(scope.conversationId, 'conversationId'),
    requireIdentifier(scope.recordingId, 'recordingId'),
    String(index),
    final ? 'final' : 'more',
  ]);
}

function keyBuffer(dataKey: Uint8Array): Buffer {
  if (dataKey.length !== DATA_KEY_BYTES)
    throw new InvalidArgumentError(`a recording's data key is ${DATA_KEY_BYTES} bytes, got ${dataKey.length}`, { field: 'data_key' });
  return Buffer.from(dataKey.buffer, dataKey.byteOffset, dataKey.byteLength);
}

/**
 * RecordingSealer seals one recording chunk by chunk (format 2): header() first, then seal() for
 * each chunk in order, the last with final = true. It keeps a copy of the data key until wipe().
 */
export class RecordingSealer {
  readonly #key: Buffer;
  readonly #scope: RecordingScope;
  #index = 0;
  #finished = false;

  constructor(dataKey: Uint8Array, scope: RecordingScope) {
    this.#key = Buffer.from(keyBuffer(dataKey));
    this.#scope = scope;
    chunkAssociatedData(scope, 0, false);
  }

  /** header is the blob's first byte (its format). */
  header(): Buffer {
    return Buffer.of(RECORDING_FORMAT_V2);
  }

  /** seal frames one chunk of plaintext; nothing may follow the final one. */
  seal(plaintext: Uint8Array, final: boolean): Buffer {
    if (this.#finished) throw new Error('the recording was already sealed to its final chunk');
    if (plaintext.length > MAX_RECORDING_CHUNK_BYTES) throw new Error(`a recording chunk holds at most ${MAX_RECORDING_CHUNK_BYTES} bytes`);
    const sealed = aesGcmEncrypt(this.#key, plaintext, chunkAssociatedData(this.#scope, this.#index, final));
    this.#index++;
    this.#finished = final;
    const length = Buffer.alloc(LENGTH_BYTES);
    length.writeUInt32BE(sealed.ciphertext.length);
    return Buffer.concat([length, sealed.nonce, sealed.ciphertext]);
  }

  /** wipe overwrites the sealer's copy of the data key. */
  wipe(): void {
    this.#key.fill(0);
  }
}

/** OpenRecordingOptions bound what opening a recording may hold. */
export interface OpenRecordingOptions {
  /**
   * maxFormat1Bytes is the largest format-1 blob opened: it is one AES-GCM message, held whole
   * (with its plaintext) until it authenticates, so a larger one throws FailedPreconditionError as
   * soon as more than this has been read. Default: no bound.
   */
  readonly maxFormat1Bytes?: number | undefined;
}

/**
 * openRecordingChunks decrypts a recording blob read as a stream of byte pieces, yielding its
 * plaintext chunk by chunk (format 2), or the whole plaintext at once for a format-1 blob
 * (sealed in one piece before chunking existed; at most options.maxFormat1Bytes of it). A
 * changed, reordered, missing or extra chunk, or a blob cut short, throws CiphertextMismatchError;
 * nothing unauthenticated is yielded.
 */
export async function* openRecordingChunks(
  dataKey: Uint8Array,
  scope: RecordingScope,
  blob: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: OpenRecordingOptions = {},
): AsyncGenerator<Buffer, void, undefined> {
  const key = keyBuffer(dataKey);
  const mismatch = (why: string) => new CiphertextMismatchError(`tenant ${scope.tenantId}, recording ${scope.recordingId} (${why})`);
  let pending = Buffer.alloc(0);
  let version: number | undefined;
  const v1: Buffer[] = [];
  let v1Bytes = 0;
  const maxFormat1Bytes = options.maxFormat1Bytes ?? Number.POSITIVE_INFINITY;
  let index = 0;
  let finished = false;
  for await (const piece of blob) {
    pending = pending.length === 0 ? Buffer.from(piece) : Buffer.concat([pending, piece]);
    if (version === undefined) {
      if (pending.length === 0) continue;
      version = pending[0];
      if (version !== 1 && version !== RECORDING_FORMAT_V2) throw mismatch('not in recording format 1 or 2');
      if (version === RECORDING_FORMAT_V2) pending = pending.subarray(1);
    }
    if (version === 1) {
      v1Bytes += pending.length;
      if (v1Bytes > maxFormat1Bytes) {
        for (const held of v1) held.fill(0);
        throw new FailedPreconditionError(
          `recording ${scope.recordingId} is stored in format 1 (sealed whole, before recordings were sealed in chunks), which is opened whole, and is larger than the ${maxFormat1Bytes} bytes a read may hold at once (PARLEY_RECORDING_READ_MAX_BYTES), so it cannot be read`,
        );
      }
      v1.push(pending);
      pending = Buffer.alloc(0);
      continue;
    }
    for (;;) {
      if (pending.length < LENGTH_BYTES) break;
      const sealedLength = pending.readUInt32BE(0);
      if (sealedLength < TAG_BYTES || sealedLength > MAX_RECORDING_CHUNK_BYTES + TAG_BYTES)
        throw mismatch(`chunk ${index} has a bad length`);
      const frameLength = LENGTH_BYTES + NONCE_BYTES + sealedLength;
      if (pending.length < frameLength) break;
      if (finished) throw mismatch('bytes after the final chunk');
      const nonce = pending.subarray(LENGTH_BYTES, LENGTH_BYTES + NONCE_BYTES);
      const ciphertext = pending.subarray(LENGTH_BYTES + NONCE_BYTES, frameLength);
      // Try "more" first (every chunk but the last); a chunk that authenticates only as final ends the stream.
      let plaintext = aesGcmDecrypt(key, { nonce, ciphertext }, chunkAssociatedData(scope, index, false));
      if (plaintext === undefined) {
        plaintext = aesGcmDecrypt(key, { nonce, ciphertext }, chunkAssociatedData(scope, index, true));
        if (plaintext === undefined) throw mismatch(`chunk ${index} does not authenticate`);
        finished = true;
      }
      index++;
      pending = pending.subarray(frameLength);
      yield plaintext;
    }
  }
  if (version === 1) {
    yield openRecording(dataKey, scope, Buffer.concat(v1));
    return;
  }
  if (version === undefined) throw mismatch('empty blob');
  if (pending.length > 0) throw mismatch(finished ? 'bytes after the final chunk' : 'cut short inside a chunk');
  if (!finished) throw mismatch('cut short: no final chunk');
}
