// The relay against a real outbox and the real audit handlers: a rejected event is set aside
// without holding back the rest, and failed rows do not retry in lockstep.
import { randomUUID } from 'node:crypto';
import { Code, ConnectError, createClient, createRouterTransport, type Client } from '@connectrpc/connect';
import { type AuditDb } from '@parley/audit';
import { auditEventJson, RELAY_SETTING, startAuditRelay, type AuditRelay } from '@parley/audit-outbox';
import { withTenant } from '@parley/db';
import { AuditService, type AuditEvent } from '@parley/proto/parley/audit/v1/audit_pb.js';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceDb } from '../src/pg.js';
import { createOutboxDatabase, event, inProcessAudit, openTestSigner, type OutboxDatabase } from './fixture.js';

let outbox: OutboxDatabase;
let auditDb: Kysely<AuditDb>;
let audit: Client<typeof AuditService>;
let relay: AuditRelay | undefined;

beforeAll(async () => {
  outbox = await createOutboxDatabase();
  auditDb = serviceDb<AuditDb>('audit', { max: 4 });
  audit = inProcessAudit(auditDb, await openTestSigner(), { everyEvents: 1000, everyMs: 3_600_000 });
});

afterAll(async () => {
  await relay?.stop();
  await auditDb.destroy();
  await outbox.drop();
});

/** enqueue writes an event to the outbox as recordAuditEvent would, minus its validation (so a bad one can get in, as from an older or newer build). */
async function enqueue(e: AuditEvent): Promise<void> {
  await withTenant(outbox.db, e.tenantId, (trx) =>
    sql`insert into audit_outbox (tenant_id, id, event) values (${e.tenantId}::uuid, ${e.id}::uuid, ${JSON.stringify(auditEventJson(e))}::jsonb)`.execute(
      trx,
    ),
  );
}

interface Row {
  id: string;
  attempts: number;
  last_error: string | null;
  next_attempt_at: Date;
}

async function rows(tenantId: string): Promise<Row[]> {
  return outbox.db.transaction().execute(async (trx) => {
    await sql`select set_config(${RELAY_SETTING}, 'on', true)`.execute(trx);
    const result = await sql<Row>`select id, attempts, last_error, next_attempt_at from audit_outbox where tenant_id = ${tenantId}`.execute(
      trx,
    );
    return result.rows;
  });
}

async function stored(tenantId: string): Promise<string[]> {
  const { events } = await audit.listEvents({ tenantId, pageSize: 100 });
  return events.map((e) => e.event?.id ?? '');
}

async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function recordingLogger() {
  const errors: Record<string, unknown>[] = [];
  return { errors, logger: { info() {}, warn() {}, debug() {}, error: (fields: Record<string, unknown>) => errors.push(fields) } };
}

describe('the audit relay', () => {
  it('delivers the good events of a batch and sets aside the one the audit service rejects, and keeps running', async () => {
    const tenant = randomUUID();
    const good = Array.from({ length: 5 }, () => event(tenant));
    const bad = event(tenant, { action: 'agent.explode' });
    for (const e of [good[0], good[1], bad, good[2], good[3], good[4]]) await enqueue(e as AuditEvent);
    const { errors, logger } = recordingLogger();
    relay = startAuditRelay({ db: outbox.db, client: audit, logger, pollIntervalMs: 50, minBackoffMs: 50, maxBackoffMs: 200 });

    await until(async () => (await rows(tenant)).length === 1, 'the good events to be delivered');
    expect(new Set(await stored(tenant))).toEqual(new Set(good.map((e) => e.id)));
    const [left] = await rows(tenant);
    expect(left?.id).toBe(bad.id);
    expect(left?.attempts).toBe(1);
    expect(left?.last_error).toMatch(
      new RegExp(`^event ${bad.id} rejected by the audit service \\(InvalidArgument\\): .*"agent\\.explode" is not registered`),
    );
    // Set aside for a long while, not retried with the others.
    expect(left?.next_attempt_at.getTime()).toBeGreaterThan(Date.now() + 10 * 60_000);
    expect(errors).toEqual([
      expect.objectContaining({ eventId: bad.id, tenantId: tenant, action: 'agent.explode', code: 'InvalidArgument' }),
    ]);

    // The relay is still delivering.
    const later = event(tenant);
    await enqueue(later);
    relay.wake();
    await until(async () => (await stored(tenant)).includes(later.id), 'a later event to be delivered');
    expect((await rows(tenant)).map((r) => r.id)).toEqual([bad.id]);
    await relay.stop();
    relay = undefined;
  });

  it('backs every row off on its own (with jitter) when the call fails for a reason that is not the events', async () => {
    const tenant = randomUUID();
    for (let i = 0; i < 20; i++) await enqueue(event(tenant));
    // The audit service refusing this caller (a caller-policy or certificate mistake): retried, never set aside.
    let calls = 0;
    const refusing = createClient(
      AuditService,
      createRouterTransport(({ service }) =>
        service(AuditService, {
          appendEvents() {
            calls += 1;
            throw new ConnectError('caller tenant-data may not call AppendEvents', Code.PermissionDenied);
          },
        }),
      ),
    );
    const { errors, logger } = recordingLogger();
    relay = startAuditRelay({ db: outbox.db, client: refusing, logger, pollIntervalMs: 50, minBackoffMs: 60_000, maxBackoffMs: 600_000 });
    // (Not drain(): the loop is already attempting, and two attempts could split the rows.)
    await until(async () => (await rows(tenant)).every((r) => r.attempts === 1), 'the failed attempt to be recorded');
    await relay.stop();
    relay = undefined;

    const after = await rows(tenant);
    expect(calls).toBe(1);
    expect(errors).toEqual([]);
    expect(after).toHaveLength(20);
    for (const r of after) {
      expect(r).toMatchObject({ attempts: 1, last_error: 'AppendEvents failed: PermissionDenied' });
      // First retry: minBackoffMs with jitter in [0.5, 1].
      expect(r.next_attempt_at.getTime()).toBeGreaterThan(Date.now() + 25_000);
      expect(r.next_attempt_at.getTime()).toBeLessThan(Date.now() + 61_000);
    }
    expect(new Set(after.map((r) => r.next_attempt_at.getTime())).size).toBeGreaterThan(10);
  });
});
