import { recordKekCall } from '@parley/platform';
import type { KekProvider } from './kek-provider.js';

/**
 * meteredKek wraps a KEK provider so that every call is counted by operation and result
 * (parley.kek.calls): a KEK that fails or answers slowly stops every secret read, and the
 * first sign of it should be a metric, not a customer.
 */
export function meteredKek(inner: KekProvider): KekProvider {
  const metered =
    <A extends unknown[], R>(operation: string, fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        const result = await fn(...args);
        recordKekCall(operation, inner.kind, true);
        return result;
      } catch (err) {
        recordKekCall(operation, inner.kind, false);
        throw err;
      }
    };
  const rewrapDataKeys = inner.rewrapDataKeys;
  return {
    kind: inner.kind,
    generateDataKey: metered('generate_data_key', () => inner.generateDataKey()),
    unwrapDataKey: metered('unwrap_data_key', (wrapped: string) => inner.unwrapDataKey(wrapped)),
    rewrapDataKey: metered('rewrap_data_key', (wrapped: string) => inner.rewrapDataKey(wrapped)),
    ...(rewrapDataKeys !== undefined
      ? { rewrapDataKeys: metered('rewrap_data_keys', (wrapped: readonly string[]) => rewrapDataKeys.call(inner, wrapped)) }
      : {}),
    rotateKek: metered('rotate_kek', () => inner.rotateKek()),
    readKekVersions: metered('read_kek_versions', () => inner.readKekVersions()),
    raiseMinDecryptionVersion: metered('raise_min_decryption_version', (version: number) => inner.raiseMinDecryptionVersion(version)),
    close: () => inner.close(),
  };
}
