import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalKeyringKekProvider, openSecret, sealSecret, silentLogger, uncachedDataKeys } from '@parley/envelope';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rewrapRecordingKeys, type MaintenanceDeps } from './maintenance.js';
import type { RecordingKeyDirectory, RewrappedRecordingKey, StoredRecordingKey } from './recording-key-directory.js';
import { decodeSealed, encodeSealed } from './recording-key.service.js';

const TENANT = '00000000-0000-7000-8000-00000000000a';
const ref = (recordingId: string) => ({ tenantId: TENANT, secretId: `recording-key/${recordingId}`, version: 1 });

/** rows is tenant-data's side in memory: recording id -> sealed key and recorded KEK version, with SaveRecordingKeys' compare-and-set. */
function memoryDirectory(rows: Map<string, { wrappedKey: string; kekVersion: number | null }>): RecordingKeyDirectory & { saves: number } {
  const below = (r: { kekVersion: number | null }, v: number) => r.kekVersion === null || r.kekVersion < v;
  const self = {
    saves: 0,
    tenants: (v: number) => {
      const keys = [...rows.values()].filter((r) => below(r, v)).length;
      return Promise.resolve(keys === 0 ? [] : [{ tenantId: TENANT, keys }]);
    },
    page: (_t: string, v: number, after: string | undefined, size: number): Promise<StoredRecordingKey[]> =>
      Promise.resolve(
        [...rows.entries()]
          .filter(([id, r]) => below(r, v) && (after === undefined || id > after))
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .slice(0, size)
          .map(([recordingId, r]) => ({ recordingId, wrappedKey: r.wrappedKey })),
      ),
    save: (_t: string, keys: readonly RewrappedRecordingKey[]) => {
      self.saves++;
      let updated = 0;
      for (const k of keys) {
        const row = rows.get(k.recordingId);
        if (row?.wrappedKey !== k.previousWrappedKey) continue;
        rows.set(k.recordingId, { wrappedKey: k.wrappedKey, kekVersion: k.kekVersion });
        updated++;
      }
      return Promise.resolve(updated);
    },
  };
  return self;
}

describe('rewrapRecordingKeys', () => {
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

  it('rewraps the keys below the latest KEK version in pages, records the version of current ones, and the same data key opens after', async () => {
    const rows = new Map<string, { wrappedKey: string; kekVersion: number | null }>();
    const dataKeys = new Map<string, Buffer>();
    for (let i = 0; i < 5; i++) {
      const id = `00000000-0000-7000-8000-00000000010${i}`;
      const dataKey = Buffer.alloc(32, i + 1);
      dataKeys.set(id, dataKey);
      rows.set(id, { wrappedKey: encodeSealed(await sealSecret(kek, ref(id), dataKey)), kekVersion: null });
    }
    await kek.rotateKek();
    // Sealed after the rotation: already at version 2, its version only recorded.
    const fresh = '00000000-0000-7000-8000-000000000200';
    dataKeys.set(fresh, Buffer.alloc(32, 9));
    const freshKey = encodeSealed(await sealSecret(kek, ref(fresh), dataKeys.get(fresh)!));
    rows.set(fresh, { wrappedKey: freshKey, kekVersion: null });
    const directory = memoryDirectory(rows);
    const deps = { kek, logger: silentLogger, rewrapBatchSize: 2, recordingKeys: directory } as unknown as MaintenanceDeps;

    const report = await rewrapRecordingKeys(deps, 2);
    expect(report).toEqual({ rewrapped: 5, remaining: 0, tenants: [TENANT] });
    expect(directory.saves).toBe(3);
    expect(rows.get(fresh)).toEqual({ wrappedKey: freshKey, kekVersion: 2 });
    await kek.raiseMinDecryptionVersion(2);
    for (const [id, row] of rows) {
      expect(row.kekVersion).toBe(2);
      expect(decodeSealed(row.wrappedKey).wrappedDataKey).toMatch(/^local:v2:/);
      expect(await openSecret(uncachedDataKeys(kek), ref(id), decodeSealed(row.wrappedKey))).toEqual(dataKeys.get(id));
    }
  });

  it('leaves a key it cannot read as it is and counts it as remaining, so the minimum version is not raised over it', async () => {
    const rows = new Map([['00000000-0000-7000-8000-000000000300', { wrappedKey: 'conversation:v2:bm90LWpzb24', kekVersion: null }]]);
    await kek.rotateKek();
    const deps = { kek, logger: silentLogger, rewrapBatchSize: 10, recordingKeys: memoryDirectory(rows) } as unknown as MaintenanceDeps;
    expect(await rewrapRecordingKeys(deps, 2)).toEqual({ rewrapped: 0, remaining: 1, tenants: [TENANT] });
    expect(rows.get('00000000-0000-7000-8000-000000000300')).toEqual({ wrappedKey: 'conversation:v2:bm90LWpzb24', kekVersion: null });
  });
});
