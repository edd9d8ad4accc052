import { randomBytes } from 'node:crypto';
import { FailedPreconditionError } from '@parley/platform';
import { describe, expect, it } from 'vitest';
import { CiphertextMismatchError } from './errors.js';
import { sealRecording } from './recording-envelope.js';
import { openRecordingChunks, RecordingSealer } from './recording-stream.js';

const scope = { tenantId: 't1', conversationId: 'c1', recordingId: 'r1' };

/** frames seals chunks with one sealer: header, then each chunk (the last final). */
function sealAll(key: Buffer, chunks: readonly Buffer[]): { header: Buffer; frames: Buffer[] } {
  const sealer = new RecordingSealer(key, scope);
  const frames = chunks.map((c, i) => sealer.seal(c, i === chunks.length - 1));
  sealer.wipe();
  return { header: sealer.header(), frames };
}

async function* pieces(blob: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < blob.length; at += size) yield blob.subarray(at, at + size);
}

async function openAll(key: Uint8Array, blob: Buffer, pieceSize = 7): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const chunk of openRecordingChunks(key, scope, pieces(blob, pieceSize))) out.push(chunk);
  return Buffer.concat(out);
}

describe('recording format 2 (chunked)', () => {
  it('seals chunk by chunk and opens from pieces of any size, without the audio in the blob', async () => {
    const key = randomBytes(32);
    const chunks = [randomBytes(1000), randomBytes(3), randomBytes(4096), Buffer.alloc(0)];
    const { header, frames } = sealAll(key, chunks);
    const blob = Buffer.concat([header, ...frames]);
    expect(blob[0]).toBe(2);
    expect(blob.includes(chunks[2]!.subarray(0, 64))).toBe(false);
    for (const size of [1, 7, 4096, blob.length]) expect(await openAll(key, blob, size)).toEqual(Buffer.concat(chunks));
  });

  it('detects reordered, dropped, repeated and trailing chunks, a cut-off blob and another scope or key', async () => {
    const key = randomBytes(32);
    const { header, frames } = sealAll(key, [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')]);
    const [f0, f1, f2] = frames as [Buffer, Buffer, Buffer];
    const bad = {
      reordered: [header, f1, f0, f2],
      dropped: [header, f0, f2],
      repeated: [header, f0, f0, f1, f2],
      'no final chunk': [header, f0, f1],
      'after final': [header, f0, f1, f2, f2],
      'cut inside a chunk': [header, f0, f1, f2.subarray(0, f2.length - 1)],
      'only the header': [header],
    };
    for (const [why, parts] of Object.entries(bad))
      await expect(openAll(key, Buffer.concat(parts)), why).rejects.toBeInstanceOf(CiphertextMismatchError);
    const blob = Buffer.concat([header, f0, f1, f2]);
    await expect(openAll(randomBytes(32), blob)).rejects.toBeInstanceOf(CiphertextMismatchError);
    const other = openRecordingChunks(key, { ...scope, recordingId: 'r2' }, pieces(blob, 64));
    await expect(other.next()).rejects.toBeInstanceOf(CiphertextMismatchError);
    await expect(openAll(key, Buffer.from([9, 0, 0]))).rejects.toThrow(/format 1 or 2/);
  });

  it('still opens a format-1 recording sealed in one piece', async () => {
    const key = randomBytes(32);
    const audio = randomBytes(5000);
    expect(await openAll(key, sealRecording(key, scope, audio), 100)).toEqual(audio);
  });

  it('refuses a format-1 blob larger than maxFormat1Bytes as soon as that much is read, and opens one within it', async () => {
    const key = randomBytes(32);
    const small = randomBytes(1_000);
    const v1 = sealRecording(key, scope, small);
    const within: Buffer[] = [];
    for await (const c of openRecordingChunks(key, scope, pieces(v1, 100), { maxFormat1Bytes: 2_000 })) within.push(c);
    expect(Buffer.concat(within)).toEqual(small);
    const big = sealRecording(key, scope, randomBytes(100_000));
    let read = 0;
    const counted = async function* () {
      for await (const p of pieces(big, 1_000)) {
        read += p.length;
        yield p;
      }
    };
    await expect(
      (async () => {
        for await (const c of openRecordingChunks(key, scope, counted(), { maxFormat1Bytes: 10_000 })) void c;
      })(),
    ).rejects.toThrow(FailedPreconditionError);
    expect(read).toBeLessThanOrEqual(11_000);
    await expect(
      (async () => {
        for await (const c of openRecordingChunks(key, scope, [big], { maxFormat1Bytes: 10_000 })) void c;
      })(),
    ).rejects.toThrow(/recording r1 is stored in format 1 .*larger than the 10000 bytes a read may hold at once/);
  });
});
