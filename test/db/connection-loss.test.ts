// A connection Postgres closes in the middle of a transaction (the database shutting down or
// restarting, found by test/faults) must not crash the service: the pool keeps an error listener on
// checked-out clients, the next statement fails as UNAVAILABLE, and the pool carries on.
import { once } from 'node:events';
import { connect } from 'node:net';
import { Code } from '@connectrpc/connect';
import { createDb, isConnectionLost, mapDatabaseError } from '@parley/db';
import { toConnectError, UnavailableError } from '@parley/platform';
import { sql, type Kysely } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { adminPool, adminUrl, refusingDatabaseUrl } from '../src/pg.js';

const db: Kysely<unknown> = createDb(adminUrl(), { max: 2 });

afterAll(async () => {
  await db.destroy();
});

describe('a connection lost between two statements of a transaction', () => {
  it('fails the next statement as UNAVAILABLE instead of crashing the process, and the pool still answers', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    const admin = adminPool(1);
    try {
      const outcome = await db
        .transaction()
        .execute(async (trx) => {
          const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
          // Postgres ends this backend (FATAL 57P01) while the transaction waits between statements.
          await admin.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
          await new Promise((r) => setTimeout(r, 300));
          await sql`select 1`.execute(trx);
          return 'committed';
        })
        .catch((err: unknown) => err);
      expect(uncaught).toEqual([]);
      expect(mapDatabaseError(outcome)).toBeInstanceOf(UnavailableError);
      // Thrown outside withTenant too: the kernel reads it as the database's lost connection.
      expect(isConnectionLost(outcome)).toBe(true);
      expect(toConnectError(outcome).code).toBe(Code.Unavailable);
      const { rows } = await sql<{ one: number }>`select 1 as one`.execute(db);
      expect(rows).toEqual([{ one: 1 }]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await admin.end();
    }
  });
});

describe("node-postgres's lost-connection words from elsewhere", () => {
  it('are not a lost database connection: an error with the same text that no Postgres connection threw stays INTERNAL', async () => {
    // What a real lost connection says, read from one (the words must match exactly to be mapped).
    const client = createDb(adminUrl(), { max: 1 });
    const admin = adminPool(1);
    let said: string;
    try {
      said = await client
        .transaction()
        .execute(async (trx) => {
          const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
          await admin.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
          await expect
            .poll(async () => (await admin.query('select 1 from pg_stat_activity where pid = $1', [rows[0]!.pid])).rowCount)
            .toBe(0);
          await sql`select 1`.execute(trx);
          return '';
        })
        .catch((err: unknown) => (err as Error).message);
    } finally {
      await client.destroy();
      await admin.end();
    }
    expect(said).toMatch(/^(Connection terminated|Client has encountered)/);
    for (const text of [said, 'Connection terminated', 'Connection terminated unexpectedly']) {
      // e.g. an HTTP client or a message broker whose socket closed.
      const elsewhere = new Error(text);
      expect(isConnectionLost(elsewhere), text).toBe(false);
      expect(mapDatabaseError(elsewhere), text).toBe(elsewhere);
      expect(toConnectError(elsewhere), text).toMatchObject({ code: Code.Internal, rawMessage: 'internal error' });
    }
  });
});

describe('socket errors (ECONNREFUSED, ECONNRESET…)', () => {
  it("are the database's only when a Postgres connection threw them: another library's stays INTERNAL and loses no batch", async () => {
    const { url, port } = await refusingDatabaseUrl();
    const unreachable = createDb(url, { max: 1 });
    const fromDatabase = await sql`select 1`.execute(unreachable).catch((err: unknown) => err);
    await unreachable.destroy();
    expect((fromDatabase as { code?: string }).code).toBe('ECONNREFUSED');
    expect(isConnectionLost(fromDatabase)).toBe(true);
    expect(mapDatabaseError(fromDatabase)).toBeInstanceOf(UnavailableError);

    // The same refusal met by a plain socket (a blob store's, a peer's).
    const socket = connect(port, '127.0.0.1');
    const [elsewhere] = (await once(socket, 'error').catch((err: unknown) => [err])) as [Error];
    expect((elsewhere as { code?: string }).code).toBe('ECONNREFUSED');
    expect(isConnectionLost(elsewhere)).toBe(false);
    expect(isConnectionLost(new Error('wrapped', { cause: elsewhere }))).toBe(false);
    expect(mapDatabaseError(elsewhere)).toBe(elsewhere);
  });
});
