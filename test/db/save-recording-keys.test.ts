// saveRecordingKeys on the wire, on the run's Postgres as the tenant-data role: a page of
// rewrapped keys is one UPDATE whatever its size (the KEK rewrap's first run after an upgrade
// stamps every existing row, and a statement per key made that a round trip per recording),
// compare-and-set per row inside it. (The same store behind the API: test/tenant-data/recording-blobs.test.ts.)
import { randomUUID } from 'node:crypto';
import { createDbOnPool, withTenant } from '@parley/db';
import {
  addRecording,
  createAgent,
  createWorkspace,
  listRecordingKeys,
  saveRecordingKeys,
  startConversation,
  type TenantDataDb,
} from '@parley/tenant-data';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceDb, statementRecordingPool } from '../src/pg.js';

const tenant = randomUUID();
let tenantData: Kysely<TenantDataDb>;

/** sealedAt is a recording key in the form secrets seals it (conversation:v2:<base64url JSON>) at KEK version `v`, stand-in ciphertext. */
const sealedAt = (v: number, tag: string) =>
  `conversation:v2:${Buffer.from(JSON.stringify({ c: tag, n: 'bm9uY2U', w: `local:v${v}:${tag}`, v })).toString('base64url')}`;

beforeAll(() => {
  tenantData = serviceDb<TenantDataDb>('tenant-data', { max: 1 });
});

afterAll(async () => {
  await tenantData?.destroy();
});

/** recordingsSealedAtV1 adds `n` recordings of one conversation, each with its own key sealed at KEK version 1. */
async function recordingsSealedAtV1(n: number): Promise<string[]> {
  return withTenant(tenantData, tenant, async (trx) => {
    await createWorkspace(trx, { name: 'rewrap' });
    const agent = await createAgent(trx, { name: 'rewrap', prompt: 'Be kind.' });
    const conversation = await startConversation(trx, { agentId: agent.id });
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const rec = await addRecording(trx, {
        conversationId: conversation.id,
        blobKey: `recordings/${tenant}/${conversation.id}/${i}.pra`,
        durationMs: 1000,
        dataClass: 'audio_redacted',
        wrappedKey: sealedAt(1, `k${i}`),
      });
      ids.push(rec.id);
    }
    return ids;
  });
}

describe('saveRecordingKeys', () => {
  it('writes a page of keys in one UPDATE, compare-and-set per row', async () => {
    const ids = await recordingsSealedAtV1(6);
    const { pool, sent } = statementRecordingPool('tenant-data');
    const db = createDbOnPool<TenantDataDb>(pool);
    try {
      const updated = await withTenant(db, tenant, (trx) =>
        saveRecordingKeys(
          trx,
          ids.map((id, i) => ({
            recordingId: id,
            // The second was changed since it was read: left alone.
            previousWrappedKey: sealedAt(1, i === 1 ? 'stale' : `k${i}`),
            wrappedKey: sealedAt(2, `k${i}`),
            kekVersion: 2,
          })),
        ),
      );
      expect(updated).toBe(5);
      // BEGIN with the tenant, the one UPDATE, COMMIT: not a statement per key.
      expect(sent).toHaveLength(3);
      expect(sent.filter((text) => /^\s*update\b/i.test(text))).toHaveLength(1);
      expect(sent.at(-1)).toBe('commit');
    } finally {
      await db.destroy();
    }
    const below = await withTenant(tenantData, tenant, (trx) => listRecordingKeys(trx, 2, undefined));
    expect(below).toEqual([{ recordingId: ids[1], wrappedKey: sealedAt(1, 'k1') }]);
  });
});
