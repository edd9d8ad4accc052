import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { uncachedDataKeys } from './data-key-source.js';
import { kekVersionOf } from './kek-provider.js';
import { LocalKeyringKekProvider } from './local-keyring.js';
import { silentLogger } from './log.js';
import { rewrapAllDataKeys, type RewrapProgress, type WrappedKeyRecord } from './rewrap.js';
import { openSecret, sealSecret, type SealedSecret } from './secret-envelope.js';

let dir: string;
let kek: LocalKeyringKekProvider;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-rewrap-'));
  kek = await LocalKeyringKekProvider.open({ path: join(dir, 'keyring.json'), logger: silentLogger });
});

afterEach(async () => {
  await kek.close();
  await rm(dir, { recursive: true, force: true });
});

/** A table of sealed secrets standing in for the secrets service's rows; save() is compare-and-set. */
async function seedRows(count: number): Promise<Map<string, SealedSecret>> {
  const rows = new Map<string, SealedSecret>();
  for (let i = 0; i < count; i++)
    rows.set(`s${i}`, await sealSecret(kek, { tenantId: 't', secretId: `s${i}`, version: 1 }, Buffer.from(`value-${i}`)));
  return rows;
}

function* recordsOf(rows: Map<string, SealedSecret>): Generator<WrappedKeyRecord> {
  for (const [id, row] of rows) yield { id, wrappedKey: row.wrappedDataKey };
}

describe('rewrapAllDataKeys', () => {
  it('rewraps every key to the newest KEK version in batches, after which the minimum can be raised', async () => {
    const rows = await seedRows(25);
    await kek.rotateKek();
    const progress: RewrapProgress[] = [];
    const result = await rewrapAllDataKeys(kek, {
      records: recordsOf(rows),
      batchSize: 10,
      onProgress: (p) => progress.push(p),
      save: async (batch) => {
        for (const r of batch) {
          const row = rows.get(r.id)!;
          if (row.wrappedDataKey === r.previousWrappedKey)
            rows.set(r.id, { ...row, wrappedDataKey: r.wrappedKey, kekVersion: r.kekVersion });
        }
      },
    });
    expect(result).toEqual({ targetVersion: 2, examined: 25, rewrapped: 25, alreadyCurrent: 0, batches: 3 });
    expect(progress.map((p) => p.rewrapped)).toEqual([10, 20, 25]);
    await kek.raiseMinDecryptionVersion(2);
    for (const [id, row] of rows) {
      expect(row.kekVersion).toBe(2);
      expect((await openSecret(uncachedDataKeys(kek), { tenantId: 't', secretId: id, version: 1 }, row)).toString()).toBe(
        `value-${id.slice(1)}`,
      );
    }
  });

  it('finishes an interrupted run when run again, without redoing finished rows', async () => {
    const rows = await seedRows(12);
    await kek.rotateKek();
    const save = async (batch: readonly { id: string; wrappedKey: string; kekVersion: number }[]): Promise<void> => {
      for (const r of batch) rows.set(r.id, { ...rows.get(r.id)!, wrappedDataKey: r.wrappedKey, kekVersion: r.kekVersion });
    };

    // First run: the process "crashes" while saving the second batch.
    let saves = 0;
    await expect(
      rewrapAllDataKeys(kek, {
        records: recordsOf(rows),
        batchSize: 4,
        save: async (batch) => {
          if (++saves === 2) throw new Error('connection lost');
          await save(batch);
        },
      }),
    ).rejects.toThrow('connection lost');
    expect([...rows.values()].filter((r) => kekVersionOf(r.wrappedDataKey) === 2)).toHaveLength(4);

    // Second run: stopped by an abort signal after one more record; the partial batch is kept.
    const controller = new AbortController();
    let examined = 0;
    async function* abortingRecords(): AsyncGenerator<WrappedKeyRecord> {
      for (const record of recordsOf(rows)) {
        if (kekVersionOf(record.wrappedKey) < 2 && ++examined === 2) controller.abort();
        yield record;
      }
    }
    await expect(rewrapAllDataKeys(kek, { records: abortingRecords(), batchSize: 4, save, signal: controller.signal })).rejects.toThrow();
    expect([...rows.values()].filter((r) => kekVersionOf(r.wrappedDataKey) === 2)).toHaveLength(5);

    // Third run completes the rest and skips what is done.
    const result = await rewrapAllDataKeys(kek, { records: recordsOf(rows), batchSize: 4, save });
    expect(result).toMatchObject({ examined: 12, alreadyCurrent: 5, rewrapped: 7 });
    expect([...rows.values()].every((r) => kekVersionOf(r.wrappedDataKey) === 2)).toBe(true);
    await kek.raiseMinDecryptionVersion(2);
    for (const [id, row] of rows) await openSecret(uncachedDataKeys(kek), { tenantId: 't', secretId: id, version: 1 }, row);
  });
});
