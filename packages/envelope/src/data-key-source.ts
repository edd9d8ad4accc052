import type { KekProvider } from './kek-provider.js';

/**
 * DataKeySource lends a plaintext data key for the length of one synchronous use. The key must
 * not be kept past `use`: a cache may wipe it afterwards, an uncached source wipes it at once.
 * Keeping `use` synchronous is what makes lending safe, since nothing can evict and wipe the key
 * while it runs.
 */
export interface DataKeySource {
  /** withDataKey unwraps (or finds) the data key for wrappedKey and calls use with it. */
  withDataKey<T>(wrappedKey: string, use: (dataKey: Buffer) => T): Promise<T>;
}

/** uncachedDataKeys is a DataKeySource that asks the KEK provider on every use and wipes the key after. */
export function uncachedDataKeys(kek: KekProvider): DataKeySource {
  return {
    async withDataKey<T>(wrappedKey: string, use: (dataKey: Buffer) => T): Promise<T> {
      const dataKey = await kek.unwrapDataKey(wrappedKey);
      try {
        return use(dataKey);
      } finally {
        dataKey.fill(0);
      }
    },
  };
}
