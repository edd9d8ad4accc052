// Audit's long reads (ExportEvents, VerifyLog) when their caller gives up while the database
// makes them wait: the statement is canceled on the server, the transaction rolled back and the
// replica's long-read slot freed at once, not when the lock goes (up to the 10-minute lifted
// timeout). The database is this file's own: the lock that holds the reads would hold every other
// file's audit work too.
import { randomBytes, randomUUID } from 'node:crypto';
import { Code, ConnectError } from '@connectrpc/connect';
import type { AuditDb, SealedKeyCheckpointSigner } from '@parley/audit';
import { createServiceDb } from '@parley/db';
import type { Kysely } from 'kysely';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminPool, createMigratedDatabase, serviceUrl, type ThrowawayDatabase } from '../src/pg.js';
import { event, inProcessAudit, openTestSigner } from './fixture.js';

// The pool's name in pg_stat_activity, so the checks see this file's audit connections only.
const APPLICATION = `parley-audit-cancel-${randomBytes(3).toString('hex')}`;
let database: ThrowawayDatabase;
let db: Kysely<AuditDb>;
let admin: pg.Pool;
let signer: SealedKeyCheckpointSigner;

beforeAll(async () => {
  database = await createMigratedDatabase();
  db = createServiceDb<AuditDb>(serviceUrl('audit', database.url), 'audit', { max: 4, applicationName: APPLICATION });
  admin = adminPool(2, database.url);
  signer = await openTestSigner();
});

afterAll(async () => {
  await db.destroy();
  await admin.end();
  await database.drop();
});

/** auditStatements lists what this file's audit connections are doing that is not plain idle (a running statement, or an open transaction). */
async function auditStatements(): Promise<{ state: string; query: string }[]> {
  const { rows } = await admin.query<{ state: string; query: string }>(
    `select state, query from pg_stat_activity where application_name = $1 and state <> 'idle'`,
    [APPLICATION],
  );
  return rows;
}

describe('a long read whose caller gives up while it waits on a lock', () => {
  it('ends its statement on the server and frees its slot at once (ExportEvents, then VerifyLog)', async () => {
    // One long-read slot: a read still holding it would refuse the next with RESOURCE_EXHAUSTED.
    const audit = inProcessAudit(db, signer, { everyEvents: 5, everyMs: 3_600_000 }, [], { longReadsMax: 1 });
    const tenant = randomUUID();
    await audit.appendEvents({ events: [event(tenant), event(tenant)] });
    const holder = await admin.connect();
    try {
      // A migration (or an operator) holding the table the reads look at first: they wait on it.
      await holder.query('begin');
      await holder.query('lock table parley_audit.purge_anchors in access exclusive mode');
      const waitingOnTheLock = async () => (await auditStatements()).some((s) => s.state === 'active' && s.query.includes('purge_anchors'));

      const exportCaller = new AbortController();
      const exported = (async () => {
        for await (const _ of audit.exportEvents({ tenantId: tenant }, { signal: exportCaller.signal, timeoutMs: 600_000 })) {
          // Nothing arrives while the lock is held.
        }
      })().then(
        () => undefined,
        (err: unknown) => ConnectError.from(err),
      );
      await expect.poll(waitingOnTheLock, { timeout: 30_000, interval: 50 }).toBe(true);
      exportCaller.abort();
      expect((await exported)?.code).toBe(Code.Canceled);
      // The lock is still held, yet nothing of the export is left on the server: no statement, no open transaction.
      await expect.poll(auditStatements, { timeout: 15_000, interval: 50 }).toEqual([]);

      // Its slot is free again: a verification is not refused, and waits on the same lock.
      const verifyCaller = new AbortController();
      const verified = audit.verifyLog({ tenantId: tenant }, { signal: verifyCaller.signal, timeoutMs: 600_000 }).then(
        () => undefined,
        (err: unknown) => ConnectError.from(err),
      );
      await expect.poll(waitingOnTheLock, { timeout: 30_000, interval: 50 }).toBe(true);
      verifyCaller.abort();
      expect((await verified)?.code).toBe(Code.Canceled);
      await expect.poll(auditStatements, { timeout: 15_000, interval: 50 }).toEqual([]);

      // Once the lock goes, the replica's one slot serves a whole export, sealed.
      await holder.query('rollback');
      const lines: string[] = [];
      for await (const line of audit.exportEvents({ tenantId: tenant })) lines.push(line.ndjson);
      expect(lines.some((l) => l.includes('"type":"seal"'))).toBe(true);
    } finally {
      await holder.query('rollback');
      holder.release();
    }
  });
});
