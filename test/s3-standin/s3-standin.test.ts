// The S3 blob store (@parley/blob-store over @aws-sdk/client-s3) against the S3 stand-in, and the
// stand-in's own refusals: a wrong key pair is refused by the signature check.
import { createS3BlobStore } from '@parley/blob-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startS3Standin, type S3Standin } from '../src/s3-standin.js';

let s3: S3Standin;

const storeFor = (secretAccessKey: string, prefix = '') =>
  createS3BlobStore({
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
    expect(s3.requests.map((r) => `${r.method} ${r.status}`)).toEqual(['PUT 200', 'GET 200', 'DELETE 204', 'GET 404', 'DELETE 204']);
    store.close();
  });

  it('is refused by the stand-in when the secret key is wrong (the signature is checked)', async () => {
    const store = storeFor('not-the-secret-access-key-00000000000000');
    await expect(store.put('recordings/x.prec', new Uint8Array([1]))).rejects.toThrow(/signature/i);
    expect(s3.objects.has('recordings/x.prec')).toBe(false);
    store.close();
  });

  it('refuses a key that climbs out of its prefix', async () => {
    const store = storeFor(s3.secretAccessKey);
    await expect(store.put('../etc/passwd', new Uint8Array([1]))).rejects.toThrow(/blob key/);
    store.close();
  });
});
