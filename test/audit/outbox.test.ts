import { randomBytes, randomUUID } from 'node:crypto';
import {
  auditChanges,
  auditDetails,
  createAuditOutbox,
  fromPrincipal,
  recordAuditEvent,
  REDACTED,
  RELAY_SETTING,
  serviceActor,
} from '@parley/audit-outbox';
import { createDb, enableTenantIsolation, withTenant } from '@parley/db';
import { InvalidArgumentError, PermissionDeniedError } from '@parley/platform';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createThrowawayDatabase, type ThrowawayDatabase } from '../src/pg.js';

// The outbox in a schema of its own, in a throwaway database: tables owned by the admin, and a
// login role that is neither owner nor superuser, exactly like a service role, so RLS applies.

const SCHEMA = 'svc';
const ROLE = `audit_outbox_test_${randomBytes(4).toString('hex')}`;
const PASSWORD = randomBytes(12).toString('hex');

let database: ThrowawayDatabase;
let admin: Kysely<unknown>;
let service: Kysely<unknown>;

beforeAll(async () => {
  database = await createThrowawayDatabase();
  admin = createDb(database.url, { max: 2 });
  await sql`create role ${sql.id(ROLE)} login nosuperuser nobypassrls password ${sql.lit(PASSWORD)}`.execute(admin);
  await sql`create schema ${sql.id(SCHEMA)}`.execute(admin);
  await sql`grant usage on schema ${sql.id(SCHEMA)} to ${sql.id(ROLE)}`.execute(admin);
  // As in production: DML through default privileges, before the tables exist.
  await sql`alter default privileges in schema ${sql.id(SCHEMA)} grant select, insert, update, delete on tables to ${sql.id(ROLE)}`.execute(
    admin,
  );
  await sql`create table svc.widgets (tenant_id uuid not null, id uuid not null, name text not null, primary key (tenant_id, id))`.execute(
    admin,
  );
  await enableTenantIsolation(admin, SCHEMA, 'widgets');
  await createAuditOutbox(admin, SCHEMA);
  const url = new URL(database.url);
  url.username = ROLE;
  url.password = PASSWORD;
  service = createDb(url.toString(), { max: 4, searchPath: SCHEMA });
});

afterAll(async () => {
  await service.destroy();
  await admin.destroy();
  await database.drop();
  const client = new pg.Client({ connectionString: new URL('/postgres', database.url).toString() });
  await client.connect();
  await client.query(`drop role if exists ${pg.escapeIdentifier(ROLE)}`);
  await client.end();
});

const principal = (tenantId: string) => ({
  tenantId,
  kind: 'member' as const,
  id: 'mem_1',
  scopes: ['agents:write'],
  source: '203.0.113.9',
  userAgent: 'parley-cli/1.0',
});

/** recordRevoke records an identity api_key.revoke event for the tenant in its own transaction; returns the event id. */
function recordRevoke(tenantId: string): Promise<string> {
  return withTenant(service, tenantId, (trx) =>
    recordAuditEvent(trx, {
      tenantId,
      actor: serviceActor('identity'),
      action: 'api_key.revoke',
      target: { type: 'api_key', id: 'k' },
      details: auditDetails({}, []),
    }),
  );
}

async function outboxIds(tenantId: string): Promise<string[]> {
  return withTenant(service, tenantId, async (trx) => {
    const { rows } = await sql<{ id: string }>`select id from audit_outbox order by created_at`.execute(trx);
    return rows.map((r) => r.id);
  });
}

describe('recordAuditEvent', () => {
  it('commits the event together with the change', async () => {
    const tenant = randomUUID();
    const widget = randomUUID();
    const eventId = await withTenant(service, tenant, async (trx) => {
      await sql`insert into widgets (tenant_id, id, name) values (${tenant}, ${widget}, 'w')`.execute(trx);
      return recordAuditEvent(trx, {
        ...fromPrincipal(principal(tenant)),
        action: 'agent.create',
        target: { type: 'agent', id: widget },
        details: auditDetails({ name: 'w', prompt: 'hello' }, ['name']),
      });
    });
    expect(await outboxIds(tenant)).toEqual([eventId]);
    const row = await withTenant(
      service,
      tenant,
      async (trx) => (await sql<{ event: Record<string, unknown> }>`select event from audit_outbox`.execute(trx)).rows[0],
    );
    expect(row?.event).toMatchObject({
      id: eventId,
      tenantId: tenant,
      actorKind: 'member',
      actorId: 'mem_1',
      action: 'agent.create',
      targetType: 'agent',
      targetId: widget,
      outcome: 'success',
      description: { name: 'w', prompt: REDACTED },
      sourceAddress: '203.0.113.9',
      userAgent: 'parley-cli/1.0',
    });
    // UUIDv7: version nibble 7, and ids sort by time.
    expect(eventId[14]).toBe('7');
  });

  it('leaves no event when the change rolls back', async () => {
    const tenant = randomUUID();
    const widget = randomUUID();
    await expect(
      withTenant(service, tenant, async (trx) => {
        await recordAuditEvent(trx, {
          tenantId: tenant,
          actor: serviceActor('tenant-data'),
          action: 'agent.delete',
          target: { type: 'agent', id: widget },
          details: auditDetails({}, []),
        });
        await sql`insert into widgets (tenant_id, id, name) values (${tenant}, ${widget}, 'w')`.execute(trx);
        // The change fails after the event was written: a duplicate key.
        await sql`insert into widgets (tenant_id, id, name) values (${tenant}, ${widget}, 'again')`.execute(trx);
      }),
    ).rejects.toThrow();
    expect(await outboxIds(tenant)).toEqual([]);
    const widgets = await withTenant(service, tenant, async (trx) => (await sql`select 1 from widgets`.execute(trx)).rows.length);
    expect(widgets).toBe(0);
  });

  it('refuses an event for another tenant than the transaction', async () => {
    const tenant = randomUUID();
    await expect(
      withTenant(service, tenant, (trx) =>
        recordAuditEvent(trx, {
          tenantId: randomUUID(),
          actor: serviceActor('identity'),
          action: 'api_key.revoke',
          target: { type: 'api_key', id: 'k1' },
          details: auditDetails({}, []),
        }),
      ),
    ).rejects.toThrow();
  });

  it('refuses unregistered actions, wrong target types and secret-named description keys', async () => {
    const tenant = randomUUID();
    const base = { tenantId: tenant, actor: serviceActor('identity'), details: auditDetails({}, []) };
    await expect(
      withTenant(service, tenant, (trx) =>
        recordAuditEvent(trx, { ...base, action: 'agent.explode' as 'agent.create', target: { type: 'agent', id: 'a' } }),
      ),
    ).rejects.toThrow(InvalidArgumentError);
    await expect(
      withTenant(service, tenant, (trx) => recordAuditEvent(trx, { ...base, action: 'agent.create', target: { type: 'secret', id: 'a' } })),
    ).rejects.toThrow(/targets a agent/);
    expect(() => auditDetails({ value: 'sk-live-123' }, ['value'])).toThrow(/names secret material/);
    expect(() => auditDetails({ signing_secret: 'x' }, ['signing_secret'])).toThrow(InvalidArgumentError);
    expect(() => fromPrincipal({ ...principal(tenant), kind: 'session' })).toThrow(InvalidArgumentError);
  });

  it('never shows secret material in a description, even nested', () => {
    const details = auditDetails(
      { name: 'openai', settings: { model: 'gpt', apiKey: 'sk-1', nested: { password: 'p' } }, value: 'sk-live' },
      ['name', 'settings'],
    );
    expect(details).toEqual({
      name: 'openai',
      settings: { model: 'gpt', apiKey: REDACTED, nested: { password: REDACTED } },
      value: REDACTED,
    });
    expect(JSON.stringify(details)).not.toMatch(/sk-|"p"/);
    const changes = auditChanges(
      { name: 'a', prompt: 'x', secret_refs: { llm: 's1' } },
      { name: 'b', prompt: 'y', secret_refs: { llm: 's2' } },
      ['name'],
    );
    expect(changes).toEqual({
      name: { from: 'a', to: 'b' },
      prompt: { from: REDACTED, to: REDACTED },
      secret_refs: { from: REDACTED, to: REDACTED },
    });
  });
});

describe('the outbox under row-level security', () => {
  it('shows a tenant only its own rows, and nothing without a tenant', async () => {
    const a = randomUUID();
    const b = randomUUID();
    const idA = await recordRevoke(a);
    await recordRevoke(b);
    expect(await outboxIds(a)).toEqual([idA]);
    const { rows } = await sql`select id from audit_outbox`.execute(service);
    expect(rows).toEqual([]);
  });

  it('lets relay mode read and delete across tenants but never insert', async () => {
    const a = randomUUID();
    await recordRevoke(a);
    await service.transaction().execute(async (trx) => {
      await sql`select set_config(${RELAY_SETTING}, 'on', true)`.execute(trx);
      const { rows } = await sql<{ tenant_id: string }>`select tenant_id from audit_outbox where tenant_id = ${a}`.execute(trx);
      expect(rows).toHaveLength(1);
    });
    await expect(
      service.transaction().execute(async (trx) => {
        await sql`select set_config(${RELAY_SETTING}, 'on', true)`.execute(trx);
        await sql`insert into audit_outbox (tenant_id, id, event) values (${a}, ${randomUUID()}, '{}')`.execute(trx);
      }),
    ).rejects.toThrow(/row-level security/);
    await service.transaction().execute(async (trx) => {
      await sql`select set_config(${RELAY_SETTING}, 'on', true)`.execute(trx);
      await sql`delete from audit_outbox where tenant_id = ${a}`.execute(trx);
    });
    expect(await outboxIds(a)).toEqual([]);
    // Relay mode with a tenant set is just that tenant: the switch only works with no tenant.
    const other = randomUUID();
    await withTenant(service, other, async (trx) => {
      await sql`select set_config(${RELAY_SETTING}, 'on', true)`.execute(trx);
      const { rows } = await sql`select 1 from audit_outbox where tenant_id = ${a}`.execute(trx);
      expect(rows).toHaveLength(0);
    });
  });

  it("lets relay mode update only the delivery bookkeeping, never a row's tenant, id or event", async () => {
    const a = randomUUID();
    const id = await recordRevoke(a);
    const asRelay = (query: ReturnType<typeof sql>) =>
      service.transaction().execute(async (trx) => {
        await sql`select set_config(${RELAY_SETTING}, 'on', true)`.execute(trx);
        return (await query.execute(trx)).numAffectedRows;
      });
    expect(
      await asRelay(sql`update audit_outbox set attempts = attempts + 1, last_error = 'x', next_attempt_at = now() where id = ${id}`),
    ).toBe(1n);
    for (const change of [
      sql`update audit_outbox set tenant_id = ${randomUUID()}::uuid where id = ${id}`,
      sql`update audit_outbox set event = jsonb_set(event, '{action}', '"agent.delete"') where id = ${id}`,
      sql`update audit_outbox set id = ${randomUUID()}::uuid where id = ${id}`,
    ]) {
      await expect(asRelay(change)).rejects.toThrow(/permission denied/);
    }
    // Not with a tenant set either.
    await expect(
      withTenant(service, a, (trx) => sql`update audit_outbox set event = '{"action": "agent.delete"}' where id = ${id}`.execute(trx)),
    ).rejects.toBeInstanceOf(PermissionDeniedError);
    const row = await withTenant(
      service,
      a,
      async (trx) =>
        (
          await sql<{
            tenant_id: string;
            event: { action: string };
            attempts: number;
          }>`select tenant_id, event, attempts from audit_outbox where id = ${id}`.execute(trx)
        ).rows[0],
    );
    expect(row).toMatchObject({ tenant_id: a, event: { action: 'api_key.revoke' }, attempts: 1 });
  });
});
