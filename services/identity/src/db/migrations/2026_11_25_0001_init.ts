import { createAuditOutbox, dropAuditOutbox } from '@parley/audit-outbox';
import { enableTenantIsolation } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// Every table is tenant scoped under FORCED row-level security, including the two that hold
// deployment-wide state (session signing keys, failed-attempt counters per source): those live in
// the reserved system partition (tenant_id = the nil UUID, SYSTEM_TENANT in system-tenant.ts),
// which no workspace can have. That keeps one rule for every table (no RLS exceptions for the
// catalog guard) while a query still sees nothing unless it names the partition it works in.
const S = 'parley_identity';
const TABLES = ['members', 'api_keys', 'sessions', 'signing_keys', 'auth_failures'];

/** up creates the identity tables, all under row-level security. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const tenant = sql.raw(`tenant_id uuid not null default nullif(current_setting('app.tenant_id', true), '')::uuid`);
  const stmts = [
    sql`create table ${sql.table(`${S}.members`)} (
      ${tenant},
      id uuid not null default gen_random_uuid(),
      email text not null constraint members_email_check check (char_length(email) between 3 and 320 and email = lower(email) and email like '%_@_%'),
      display_name text not null default '' constraint members_display_name_check check (char_length(display_name) <= 200),
      role text not null constraint members_role_check check (role in ('owner', 'admin', 'developer', 'viewer')),
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      primary key (tenant_id, id),
      constraint members_email_key unique (tenant_id, email)
    )`,
    // The key itself is never stored: only HMAC-SHA256(pepper, key). key_id is the public,
    // random part embedded in the key that selects the row; the tenant is embedded too, so a
    // look-up always runs inside that tenant's RLS partition.
    sql`create table ${sql.table(`${S}.api_keys`)} (
      ${tenant},
      id uuid not null default gen_random_uuid(),
      key_id text not null constraint api_keys_key_id_check check (key_id ~ '^[0-9A-Za-z]{12}$'),
      environment text not null constraint api_keys_environment_check check (environment in ('live', 'test')),
      name text not null constraint api_keys_name_check check (char_length(name) between 1 and 200),
      secret_hash bytea not null constraint api_keys_secret_hash_check check (octet_length(secret_hash) = 32),
      scopes text[] not null constraint api_keys_scopes_check check (cardinality(scopes) between 1 and 32),
      created_by_member_id uuid,
      created_at timestamptz not null default now(),
      last_used_at timestamptz,
      expires_at timestamptz,
      revoked_at timestamptz,
      rotated_to_id uuid,
      primary key (tenant_id, id),
      constraint api_keys_key_id_key unique (tenant_id, key_id),
      constraint api_keys_created_by_fkey foreign key (tenant_id, created_by_member_id)
        references ${sql.table(`${S}.members`)} (tenant_id, id) on delete set null (created_by_member_id)
    )`,
    sql`create index api_keys_member_idx on ${sql.table(`${S}.api_keys`)} (tenant_id, created_by_member_id)`,
    // One row per issued session; consumed_at makes the jti single use at connect, across
    // every replica of every verifier (decided by one UPDATE ... WHERE consumed_at IS NULL).
    sql`create table ${sql.table(`${S}.sessions`)} (
      ${tenant},
      id uuid not null,
      jti text not null constraint sessions_jti_check check (char_length(jti) between 16 and 64),
      agent_id uuid not null,
      subject_ref text constraint sessions_subject_ref_check check (char_length(subject_ref) <= 200),
      origin text constraint sessions_origin_check check (char_length(origin) <= 255),
      created_by_key_id uuid,
      created_at timestamptz not null default now(),
      expires_at timestamptz not null,
      consumed_at timestamptz,
      revoked_at timestamptz,
      primary key (tenant_id, id),
      constraint sessions_jti_key unique (tenant_id, jti)
    )`,
    sql`create index sessions_expires_idx on ${sql.table(`${S}.sessions`)} (tenant_id, expires_at)`,
    // Session signing keys (system partition). The private half is stored only sealed under
    // envelope encryption (a per-key data key wrapped by the KEK provider); the public half is
    // what the JWKS publishes.
    sql`create table ${sql.table(`${S}.signing_keys`)} (
      ${tenant},
      kid text not null constraint signing_keys_kid_check check (kid ~ '^[A-Za-z0-9_-]{8,64}$'),
      public_jwk jsonb not null constraint signing_keys_public_jwk_check check (jsonb_typeof(public_jwk) = 'object' and not (public_jwk ? 'd')),
      private_ciphertext bytea not null,
      private_nonce bytea not null,
      wrapped_data_key text not null,
      kek_version integer not null,
      created_at timestamptz not null default now(),
      activates_at timestamptz not null,
      publish_until timestamptz not null,
      primary key (tenant_id, kid)
    )`,
    // Failed API-key attempts per source (system partition): the count in the current window
    // and, past the threshold, a time before which that source is refused outright.
    sql`create table ${sql.table(`${S}.auth_failures`)} (
      ${tenant},
      source text not null constraint auth_failures_source_check check (char_length(source) between 1 and 128),
      window_started_at timestamptz not null default now(),
      failures integer not null default 0,
      blocked_until timestamptz,
      primary key (tenant_id, source)
    )`,
  ];
  for (const stmt of stmts) await stmt.execute(db);
  for (const table of TABLES) await enableTenantIsolation(db, S, table);
  // Privileged changes record their audit event in this outbox in the same transaction.
  await createAuditOutbox(db, S);
}

/** down drops the identity tables. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await dropAuditOutbox(db, S);
  for (const table of [...TABLES].reverse()) await sql`drop table ${sql.table(`${S}.${table}`)}`.execute(db);
}
