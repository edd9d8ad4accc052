// The S3 blob store (@parley/blob-store over @aws-sdk/client-s3) against the S3 stand-in, and the
// stand-in's own refusals: a wrong key pair is refused by the signature check.
import { createS3BlobStore } from '@parley/blob-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3Standin, type S3Standin } from '../src/s3-standin.js';

let s3: S3Standin;

const storeFor = (secretAccessKey: string, prefix = '', extra: { requestTimeoutMs?: number } = {}) =>
  createS3BlobStore({
    ...extra,
    bucket: s3.bucket,
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    prefix,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey },
  });

beforeAll(async () => {
  s3 = await startS3Standin();
});
afterAll(async () => {
  await s3?.stop();
});

describe('the S3 blob store', () => {
  it('puts, gets and deletes an object with signed requests', async () => {
    const store = storeFor(s3.secretAccessKey, 'parley/');
    const bytes = new Uint8Array([0, 1, 2, 250, 251, 252]);
    await store.put('recordings/t/c/r.prec', bytes);
    expect(s3.objects.get('parley/recordings/t/c/r.prec')).toEqual(Buffer.from(bytes));
    expect(Buffer.from((await store.get('recordings/t/c/r.prec')) ?? [])).toEqual(Buffer.from(bytes));
    await store.delete('recordings/t/c/r.prec');
    expect(s3.objects.has('parley/recordings/t/c/r.prec')).toBe(false);
    expect(await store.get('recordings/t/c/r.prec')).toBeUndefined();
    // Deleting what is gone is not an error (a purge may be retried).
    await store.delete('recordings/t/c/r.prec');
    expect(s3.requests.map((r) => `${r.operation} ${r.status}`)).toEqual([
      'PutObject 200',
      'GetObject 200',
      'DeleteObject 204',
      'GetObject 404',
      'DeleteObject 204',
    ]);
    store.close();
  });

  it('is refused by the stand-in when the secret key is wrong (the signature is checked)', async () => {
    const store = storeFor('not-the-secret-access-key-00000000000000');
    await expect(store.put('recordings/x.prec', new Uint8Array([1]))).rejects.toThrow(/signature/i);
    expect(s3.objects.has('recordings/x.prec')).toBe(false);
    store.close();
  });

  it('writes a large object as a multipart upload of 5 MiB parts and reads it back in pieces', async () => {
    const store = storeFor(s3.secretAccessKey, 'parley/');
    const before = s3.requests.length;
    const piece = Buffer.alloc(1024 * 1024);
    const writer = store.writer('recordings/t/c/big.pra');
    for (let i = 0; i < 12; i++) {
      piece.fill(i);
      await writer.write(piece);
      // At most one part is ever held in memory.
      expect(writer.bufferedBytes).toBeLessThan(5 * 1024 * 1024);
    }
    expect(s3.objects.has('parley/recordings/t/c/big.pra')).toBe(false);
    expect(await writer.complete()).toBe(12 * 1024 * 1024);
    expect(s3.requests.slice(before).map((r) => `${r.operation} ${r.status}`)).toEqual([
      'CreateMultipartUpload 200',
      'UploadPart 200',
      'UploadPart 200',
      'UploadPart 200',
      'CompleteMultipartUpload 200',
    ]);
    expect(s3.uploads.size).toBe(0);
    const stored = s3.objects.get('parley/recordings/t/c/big.pra');
    expect(stored?.length).toBe(12 * 1024 * 1024);
    expect(stored?.[11 * 1024 * 1024]).toBe(11);
    let read = 0;
    let pieces = 0;
    for await (const p of (await store.read('recordings/t/c/big.pra')) ?? []) {
      read += p.length;
      pieces++;
    }
    expect(read).toBe(12 * 1024 * 1024);
    expect(pieces).toBeGreaterThan(1);
    expect(await store.read('recordings/t/c/none.pra')).toBeUndefined();
    store.close();
  });

  it('writes a small object with one PutObject, and an aborted upload leaves no parts behind', async () => {
    const store = storeFor(s3.secretAccessKey);
    const before = s3.requests.length;
    const small = store.writer('recordings/t/c/small.pra');
    await small.write(new Uint8Array([7, 8]));
    expect(await small.complete()).toBe(2);
    expect(s3.objects.get('recordings/t/c/small.pra')).toEqual(Buffer.from([7, 8]));
    const big = store.writer('recordings/t/c/aborted.pra');
    await big.write(Buffer.alloc(6 * 1024 * 1024));
    expect(s3.uploads.size).toBe(1);
    await big.abort();
    expect(s3.uploads.size).toBe(0);
    expect(s3.objects.has('recordings/t/c/aborted.pra')).toBe(false);
    expect(s3.requests.slice(before).map((r) => r.operation)).toEqual([
      'PutObject',
      'CreateMultipartUpload',
      'UploadPart',
      'AbortMultipartUpload',
    ]);
    store.close();
  });

  it('gives up on a service that does not answer within the request timeout', async () => {
    const store = storeFor(s3.secretAccessKey, '', { requestTimeoutMs: 1_000 });
    s3.stallMs = 12_000;
    try {
      const started = Date.now();
      await expect(store.put('recordings/t/c/slow.pra', new Uint8Array([1]))).rejects.toThrow();
      // Three attempts of one second each, not the stand-in's 12 s answer or forever (the bound is
      // slack for a loaded machine; the stall is what it must stay under).
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      s3.stallMs = 0;
      store.close();
    }
  });

  it('refuses a key that climbs out of its prefix', async () => {
    const store = storeFor(s3.secretAccessKey);
    await expect(store.put('../etc/passwd', new Uint8Array([1]))).rejects.toThrow(/blob key/);
    store.close();
  });
});
