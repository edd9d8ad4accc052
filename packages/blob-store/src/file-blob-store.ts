import { mkdir, open, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { requireBlobKey, type BlobStore, type BlobWriter } from './blob-store.js';

/** READ_PIECE_BYTES is the size of the pieces a file is read in. */
const READ_PIECE_BYTES = 64 * 1024;

/**
 * createFileBlobStore keeps blobs as files under `root` (the embedded default, one machine): a
 * write goes to a temporary file renamed into place, so a reader never sees half an object, and
 * files are private to the service user (0600).
 */
export function createFileBlobStore(root: string): BlobStore {
  const base = resolve(root);
  const pathOf = (key: string) => join(base, ...requireBlobKey(key).split('/'));
  return {
    kind: 'file',
    async put(key, bytes) {
      const path = pathOf(key);
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const temporary = `${path}.${randomUUID()}.part`;
      await writeFile(temporary, bytes, { mode: 0o600 });
      await rename(temporary, path);
    },
    async get(key) {
      try {
        return await readFile(pathOf(key));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
    async delete(key) {
      await rm(pathOf(key), { force: true });
    },
    writer(key) {
      return fileWriter(pathOf(key));
    },
    async read(key, options = {}) {
      options.signal?.throwIfAborted();
      let handle: FileHandle;
      try {
        handle = await open(pathOf(key), 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
      // The stream closes its file when it ends, fails or the signal aborts.
      return handle.createReadStream({
        highWaterMark: READ_PIECE_BYTES,
        ...(options.signal !== undefined ? { signal: options.signal } : {}),
      });
    },
  };
}

/** fileWriter appends to a temporary file next to `path` and renames it into place at complete(). */
function fileWriter(path: string): BlobWriter {
  const temporary = `${path}.${randomUUID()}.part`;
  let handle: Promise<FileHandle> | undefined;
  let size = 0;
  let inFlight = 0;
  const opened = () => (handle ??= mkdir(dirname(path), { recursive: true, mode: 0o700 }).then(() => open(temporary, 'w', 0o600)));
  const abort = async () => {
    const h = handle;
    handle = Promise.reject(new Error('the blob writer was aborted'));
    handle.catch(() => undefined);
    await h?.then((f) => f.close()).catch(() => undefined);
    await rm(temporary, { force: true });
  };
  return {
    get bufferedBytes() {
      return inFlight;
    },
    async write(bytes) {
      inFlight += bytes.length;
      try {
        const file = await opened();
        await file.write(bytes);
        size += bytes.length;
      } catch (err) {
        await abort();
        throw err;
      } finally {
        inFlight -= bytes.length;
      }
    },
    async complete() {
      try {
        const file = await opened();
        await file.sync();
        await file.close();
        await rename(temporary, path);
        return size;
      } catch (err) {
        await abort();
        throw err;
      }
    },
    abort,
  };
}
