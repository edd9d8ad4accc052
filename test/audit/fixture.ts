// Shared set-up for the audit tests: a checkpoint signer sealed under a throwaway local keyring,
// the audit handlers over the real database (as the audit role), and event builders.
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { createClient, createRouterTransport, type Client } from '@connectrpc/connect';
import { createAuditService, SealedKeyCheckpointSigner, type AuditDb, type CheckpointPolicy, type CheckpointWitness } from '@parley/audit';
import { silentLogger, LocalKeyringKekProvider } from '@parley/envelope';
import { createErrorInterceptor, createLogger, principalHeaders, type Principal } from '@parley/platform';
import { AuditEventSchema, AuditService, type AuditEvent } from '@parley/proto/parley/audit/v1/audit_pb.js';
import type { Kysely } from 'kysely';
import { v7 as uuidv7 } from 'uuid';

/** openTestSigner creates a keyring and a sealed signing key in a fresh temporary folder. */
export async function openTestSigner(dir?: string): Promise<SealedKeyCheckpointSigner> {
  const folder = dir ?? (await mkdtemp(join(tmpdir(), 'parley-audit-')));
  const kek = await LocalKeyringKekProvider.open({ path: join(folder, 'keyring.json'), logger: silentLogger });
  return SealedKeyCheckpointSigner.open({ path: join(folder, 'signing-key.json'), kek });
}

/** inProcessAudit serves the real handlers over an in-memory Connect transport (no mTLS: the handlers are under test, not the kernel). */
export function inProcessAudit(
  db: Kysely<AuditDb>,
  signer: SealedKeyCheckpointSigner,
  policy: CheckpointPolicy,
  witnesses: readonly CheckpointWitness[] = [],
  options: { longReadsMax?: number } = {},
): Client<typeof AuditService> {
  const impl = createAuditService({ db, signer, policy, witnesses, logger: { info() {}, warn() {}, error() {} }, ...options });
  // The kernel's error interceptor, as in a real server: domain errors become their gRPC codes.
  const errors = createErrorInterceptor(createLogger({ service: 'audit', level: 'silent' } as Parameters<typeof createLogger>[0]));
  return createClient(
    AuditService,
    createRouterTransport(({ service }) => service(AuditService, impl), { router: { interceptors: [errors] } }),
  );
}

/** event builds a valid wire event for a tenant. */
export function event(tenantId: string, overrides: Partial<AuditEvent> = {}): AuditEvent {
  return create(AuditEventSchema, {
    id: uuidv7(),
    tenantId,
    actorKind: 'member',
    actorId: 'mem_ops',
    action: 'agent.update',
    targetType: 'agent',
    targetId: randomUUID(),
    outcome: 'success',
    description: { name: { from: 'a', to: 'b' } },
    sourceAddress: '198.51.100.7',
    userAgent: 'parley-cli/1.0',
    traceId: '',
    occurredAt: timestampFromDate(new Date()),
    ...overrides,
  });
}

/** reader is a principal with audit:read, as the edge forwards it. */
export function reader(tenantId: string, scopes: string[] = ['audit:read']): { headers: Record<string, string> } {
  const p: Principal = { tenantId, kind: 'member', id: 'mem_auditor', scopes, source: '198.51.100.8', userAgent: 'vitest' };
  return { headers: principalHeaders(p) };
}

/** OutboxDatabase is a throwaway database with one "service" schema holding a table and the audit outbox, and a non-owner login role for it (RLS applies, as for a real service role). */
export interface OutboxDatabase {
  /** db connects as that role with the schema on the search path. */
  db: Kysely<unknown>;
  drop(): Promise<void>;
}

/** createOutboxDatabase sets up an OutboxDatabase (schema `svc`, tables `widgets` and `audit_outbox`). */
export async function createOutboxDatabase(): Promise<OutboxDatabase> {
  const { randomBytes } = await import('node:crypto');
  const { createAuditOutbox } = await import('@parley/audit-outbox');
  const { createDb, enableTenantIsolation } = await import('@parley/db');
  const { sql } = await import('kysely');
  const { default: pg } = await import('pg');
  const { createThrowawayDatabase } = await import('../src/pg.js');
  const role = `audit_outbox_test_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  const database = await createThrowawayDatabase();
  const admin = createDb(database.url, { max: 1 });
  await sql`create role ${sql.id(role)} login nosuperuser nobypassrls password ${sql.lit(password)}`.execute(admin);
  await sql`create schema svc`.execute(admin);
  await sql`grant usage on schema svc to ${sql.id(role)}`.execute(admin);
  // As in production: DML through default privileges, given before the tables exist, so that
  // createAuditOutbox can narrow UPDATE on its table to the relay's columns.
  await sql`alter default privileges in schema svc grant select, insert, update, delete on tables to ${sql.id(role)}`.execute(admin);
  await sql`create table svc.widgets (tenant_id uuid not null, id uuid not null, name text not null, primary key (tenant_id, id))`.execute(
    admin,
  );
  await enableTenantIsolation(admin, 'svc', 'widgets');
  await createAuditOutbox(admin, 'svc');
  await admin.destroy();
  const url = new URL(database.url);
  url.username = role;
  url.password = password;
  const db = createDb<unknown>(url.toString(), { max: 4, searchPath: 'svc' });
  return {
    db,
    async drop() {
      await db.destroy();
      await database.drop();
      const client = new pg.Client({ connectionString: new URL('/postgres', database.url).toString() });
      await client.connect();
      await client.query(`drop role if exists ${pg.escapeIdentifier(role)}`);
      await client.end();
    },
  };
}
