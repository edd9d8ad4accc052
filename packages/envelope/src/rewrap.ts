import type { KekProvider, RewrappedDataKey } from './kek-provider.js';
import { kekVersionOf } from './kek-provider.js';

/** WrappedKeyRecord is one stored wrapped data key and the id of the row that holds it. */
export interface WrappedKeyRecord {
  /** id identifies the row for save(); opaque to the helper. */
  readonly id: string;
  /** wrappedKey is the stored wrapped data key. */
  readonly wrappedKey: string;
}

/** RewrappedKeyRecord is a record's new wrapped key, to be written back by save(). */
export interface RewrappedKeyRecord extends RewrappedDataKey {
  /** id is the row the new wrapped key belongs to. */
  readonly id: string;
  /** previousWrappedKey lets save() update only if the row still holds what was read (compare-and-set). */
  readonly previousWrappedKey: string;
}

/** RewrapProgress counts what a rewrap run did so far. */
export interface RewrapProgress {
  /** targetVersion is the latest KEK version when the run started; records at or above it are done. */
  readonly targetVersion: number;
  /** examined counts records read. */
  readonly examined: number;
  /** rewrapped counts records rewrapped and saved. */
  readonly rewrapped: number;
  /** alreadyCurrent counts records that were already on targetVersion or newer (skipped, no KEK call). */
  readonly alreadyCurrent: number;
  /** batches counts batches saved. */
  readonly batches: number;
}

/** RewrapOptions feed rewrapAllDataKeys. */
export interface RewrapOptions {
  /**
   * records yields the stored wrapped keys. A database source should yield rows whose
   * kek_version is below the target, in key order, in pages; rows already done are skipped anyway.
   */
  readonly records: AsyncIterable<WrappedKeyRecord> | Iterable<WrappedKeyRecord>;
  /** save persists one batch of rewrapped keys, ideally in one transaction (compare-and-set). */
  readonly save: (batch: readonly RewrappedKeyRecord[]) => Promise<void>;
  /** batchSize is how many records are rewrapped before each save (default 100). */
  readonly batchSize?: number;
  /** signal stops the run between records; a later run resumes where the stored versions say. */
  readonly signal?: AbortSignal;
  /** onProgress is called after each saved batch (log it). */
  readonly onProgress?: (progress: RewrapProgress) => void;
}

async function sequentially<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (const item of items) out.push(await fn(item));
  return out;
}

/**
 * rewrapWrappedKeys rewraps KEK-wrapped data keys to the latest KEK version inside the provider, in
 * one batch call where it has one (Vault's batch_input), and checks that every key came back.
 */
export async function rewrapWrappedKeys(kek: KekProvider, keys: readonly string[]): Promise<{ wrappedKey: string; kekVersion: number }[]> {
  if (keys.length === 0) return [];
  const next =
    kek.rewrapDataKeys !== undefined ? await kek.rewrapDataKeys([...keys]) : await sequentially(keys, (k) => kek.rewrapDataKey(k));
  if (next.length !== keys.length) throw new Error(`the KEK provider rewrapped ${next.length} of ${keys.length} keys`);
  return next;
}

/**
 * rewrapAllDataKeys rewraps every stored data key that is below the latest KEK version, in
 * batches. It is resumable because progress lives in the data itself: a record whose wrapped
 * key already carries the target version is skipped, so an interrupted run (abort, crash, KEK
 * outage) is finished by running it again. Data keys never leave the KEK provider in plaintext.
 * Only after a complete run may the minimum decryption version be raised.
 */
export async function rewrapAllDataKeys(kek: KekProvider, options: RewrapOptions): Promise<RewrapProgress> {
  const batchSize = options.batchSize ?? 100;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  const { latestVersion: targetVersion } = await kek.readKekVersions();
  let examined = 0;
  let rewrapped = 0;
  let alreadyCurrent = 0;
  let batches = 0;
  let batch: RewrappedKeyRecord[] = [];
  const progress = (): RewrapProgress => ({ targetVersion, examined, rewrapped, alreadyCurrent, batches });

  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    await options.save(batch);
    rewrapped += batch.length;
    batches += 1;
    batch = [];
    options.onProgress?.(progress());
  };

  // Records waiting to be rewrapped: one batch call where the provider has one (Vault's batch_input).
  let pending: WrappedKeyRecord[] = [];
  const rewrapPending = async (): Promise<void> => {
    if (pending.length === 0) return;
    const next = await rewrapWrappedKeys(
      kek,
      pending.map((r) => r.wrappedKey),
    );
    pending.forEach((record, i) => {
      const done = next[i] as { wrappedKey: string; kekVersion: number };
      batch.push({ id: record.id, previousWrappedKey: record.wrappedKey, wrappedKey: done.wrappedKey, kekVersion: done.kekVersion });
    });
    pending = [];
    await flush();
  };

  for await (const record of options.records) {
    if (options.signal?.aborted === true) {
      // Keep the work already done: rewrapped keys are valid, saving them shortens the next run.
      await rewrapPending();
      options.signal.throwIfAborted();
    }
    examined += 1;
    if (kekVersionOf(record.wrappedKey) >= targetVersion) {
      alreadyCurrent += 1;
      continue;
    }
    pending.push(record);
    if (pending.length >= batchSize) await rewrapPending();
  }
  await rewrapPending();
  return progress();
}
