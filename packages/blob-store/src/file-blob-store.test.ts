import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { blobStoreConfigFromEnv } from './config.js';
import { createFileBlobStore } from './file-blob-store.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-blob-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the file blob store', () => {
  it('puts, gets and deletes a blob as a private file, leaving no temporary file behind', async () => {
    const store = createFileBlobStore(dir);
    await store.put('recordings/t/c/r.pra', new Uint8Array([1, 2, 3]));
    expect(Buffer.from((await store.get('recordings/t/c/r.pra')) ?? [])).toEqual(Buffer.from([1, 2, 3]));
    expect((await stat(join(dir, 'recordings/t/c/r.pra'))).mode & 0o777).toBe(0o600);
    expect(await readdir(join(dir, 'recordings/t/c'))).toEqual(['r.pra']);
    await store.delete('recordings/t/c/r.pra');
    expect(await store.get('recordings/t/c/r.pra')).toBeUndefined();
    await store.delete('recordings/t/c/r.pra');
  });

  it('writes a blob in pieces to a temporary file renamed into place at complete, and reads it back in pieces', async () => {
    const store = createFileBlobStore(dir);
    const writer = store.writer('recordings/t/c/w.pra');
    await writer.write(new Uint8Array([1, 2]));
    await writer.write(new Uint8Array([3]));
    // Nothing is visible under the key before complete().
    expect(await store.get('recordings/t/c/w.pra')).toBeUndefined();
    expect(await writer.complete()).toBe(3);
    expect((await stat(join(dir, 'recordings/t/c/w.pra'))).mode & 0o777).toBe(0o600);
    expect(await readdir(join(dir, 'recordings/t/c'))).toEqual(['w.pra']);
    const pieces: Buffer[] = [];
    for await (const piece of (await store.read('recordings/t/c/w.pra')) ?? []) pieces.push(Buffer.from(piece));
    expect(Buffer.concat(pieces)).toEqual(Buffer.from([1, 2, 3]));
    expect(await store.read('recordings/t/c/none.pra')).toBeUndefined();
  });

  it('stops a read when its signal aborts, and refuses to start one already aborted', async () => {
    const store = createFileBlobStore(dir);
    await store.put('recordings/t/c/big.pra', new Uint8Array(1024 * 1024));
    const caller = new AbortController();
    const pieces = (await store.read('recordings/t/c/big.pra', { signal: caller.signal })) ?? [];
    let read = 0;
    await expect(
      (async () => {
        for await (const piece of pieces) {
          read += piece.length;
          caller.abort();
        }
      })(),
    ).rejects.toMatchObject({ name: 'AbortError' });
    expect(read).toBeLessThan(1024 * 1024);
    await expect(store.read('recordings/t/c/big.pra', { signal: caller.signal })).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('leaves nothing behind when a writer is aborted', async () => {
    const store = createFileBlobStore(dir);
    const writer = store.writer('recordings/t/c/a.pra');
    await writer.write(new Uint8Array([1, 2]));
    await writer.abort();
    expect(await readdir(join(dir, 'recordings/t/c'))).toEqual([]);
    await expect(writer.write(new Uint8Array([3]))).rejects.toThrow(/aborted/);
  });

  it('refuses keys that are absolute, empty or climb out of its directory', async () => {
    const store = createFileBlobStore(dir);
    for (const key of ['/etc/passwd', '', '../x', 'a/../../x', 'a//b', 'a/./b'])
      await expect(store.put(key, new Uint8Array([1])), key).rejects.toThrow(/blob key/);
  });
});

describe('blobStoreConfigFromEnv', () => {
  it('is none without a directory, a file store under the dev directory, and names the bad variable', () => {
    expect(blobStoreConfigFromEnv({})).toEqual({ kind: 'none' });
    expect(blobStoreConfigFromEnv({ PARLEY_DEV_DIR: '/dev-dir' })).toEqual({ kind: 'file', dir: '/dev-dir/blobs' });
    expect(() => blobStoreConfigFromEnv({ PARLEY_BLOB_STORE: 'file' })).toThrow(/PARLEY_BLOB_DIR/);
    expect(() => blobStoreConfigFromEnv({ PARLEY_BLOB_STORE: 'disk' })).toThrow(/PARLEY_BLOB_STORE/);
    expect(() => blobStoreConfigFromEnv({ PARLEY_BLOB_STORE: 's3' })).toThrow(/PARLEY_S3_BUCKET/);
    expect(() => blobStoreConfigFromEnv({ PARLEY_BLOB_STORE: 's3', PARLEY_S3_BUCKET: 'Bad_Bucket' })).toThrow(/PARLEY_S3_BUCKET/);
    expect(() => blobStoreConfigFromEnv({ PARLEY_BLOB_STORE: 's3', PARLEY_S3_BUCKET: 'b-1', PARLEY_S3_ACCESS_KEY_ID: 'AKIA' })).toThrow(
      /PARLEY_S3_SECRET_ACCESS_KEY/,
    );
    expect(() => blobStoreConfigFromEnv({ PARLEY_BLOB_STORE: 's3', PARLEY_S3_BUCKET: 'b-1', PARLEY_S3_PREFIX: 'no-slash' })).toThrow(
      /PARLEY_S3_PREFIX/,
    );
    expect(blobStoreConfigFromEnv({ PARLEY_BLOB_STORE: 's3', PARLEY_S3_BUCKET: 'b-1', PARLEY_S3_ENDPOINT: 'http://minio:9000' })).toEqual({
      kind: 's3',
      bucket: 'b-1',
      region: 'us-east-1',
      endpoint: 'http://minio:9000',
      forcePathStyle: true,
      prefix: '',
      credentials: undefined,
      partBytes: 5 * 1024 * 1024,
      connectTimeoutMs: 3_000,
      requestTimeoutMs: 30_000,
    });
    expect(() => blobStoreConfigFromEnv({ PARLEY_BLOB_STORE: 's3', PARLEY_S3_BUCKET: 'b-1', PARLEY_S3_PART_BYTES: '1024' })).toThrow(
      /PARLEY_S3_PART_BYTES/,
    );
    expect(() =>
      blobStoreConfigFromEnv({ PARLEY_BLOB_STORE: 's3', PARLEY_S3_BUCKET: 'b-1', PARLEY_S3_REQUEST_TIMEOUT_MS: 'soon' }),
    ).toThrow(/PARLEY_S3_REQUEST_TIMEOUT_MS/);
  });
});
