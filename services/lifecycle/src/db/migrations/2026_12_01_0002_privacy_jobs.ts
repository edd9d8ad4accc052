import { enableTenantIsolation } from '@parley/db';
import { sql, type Kysely } from 'kysely';
import { SCHEDULER_SETTING } from './2026_12_01_0001_init.js';

// DSAR jobs. No identifier a person was looked up by is stored: the subject is resolved when the
// job is requested and only its id is kept. An export's bundle is kept sealed (AES-256-GCM under a
// key derived from PARLEY_EXPORT_KEY and the job id) until its one download, then dropped. The
// job worker finds unfinished jobs of every workspace in the scheduler's read-only mode and claims
// each through the workspace's own transaction.
const S = 'parley_lifecycle';

/** up creates privacy_jobs under row-level security. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const jobs = sql.table(`${S}.privacy_jobs`);
  await sql`create table ${jobs} (
    tenant_id uuid not null default nullif(current_setting('app.tenant_id', true), '')::uuid,
    id uuid not null,
    kind text not null constraint privacy_jobs_kind_check check (kind in ('export', 'forget')),
    state text not null default 'pending' constraint privacy_jobs_state_check check (state in ('pending', 'running', 'done')),
    subject_id uuid,
    requested_by text not null constraint privacy_jobs_requested_by_check check (char_length(requested_by) between 1 and 300),
    created_at timestamptz not null default now(),
    lease_expires_at timestamptz,
    finished_at timestamptz,
    steps jsonb not null default '{}' constraint privacy_jobs_steps_check check (jsonb_typeof(steps) = 'object'),
    sha256 text constraint privacy_jobs_sha256_check check (sha256 ~ '^[0-9a-f]{64}$'),
    key_id text,
    signature bytea,
    statement text,
    bundle_ciphertext bytea,
    bundle_nonce bytea constraint privacy_jobs_bundle_nonce_check check (octet_length(bundle_nonce) = 12),
    downloaded_at timestamptz,
    primary key (tenant_id, id)
  )`.execute(db);
  // Two forget requests for one person while the first is unfinished are one job.
  await sql`create unique index privacy_jobs_one_forget on ${jobs} (tenant_id, subject_id) where kind = 'forget' and state <> 'done'`.execute(
    db,
  );
  await sql`create index privacy_jobs_unfinished_idx on ${jobs} (state) where state <> 'done'`.execute(db);
  await enableTenantIsolation(db, S, 'privacy_jobs');
  const mode = sql`coalesce(current_setting('app.tenant_id', true), '') = '' and current_setting(${sql.lit(SCHEDULER_SETTING)}, true) = 'on'`;
  await sql`create policy privacy_jobs_scheduler on ${jobs} for select using (${mode})`.execute(db);
}

/** down drops privacy_jobs. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table ${sql.table(`${S}.privacy_jobs`)}`.execute(db);
}
