import { enableTenantIsolation } from '@parley/db';
import { sql, type Kysely } from 'kysely';

// Operator sign-in (OpenID Connect at the edge). A person's verified e-mail selects their
// membership; the ID token's issuer and subject are bound to the member at the first sign-in, so a
// later account at the provider that reuses the address is refused. Sessions are rows, so a
// sign-out, a removed member (cascade) or a suspended workspace ends them at every replica at once.
const S = 'parley_identity';

/**
 * OPERATOR_LOOKUP_SETTING puts a transaction in sign-in look-up mode: with no tenant set AND this
 * setting on, identity may read the members of every workspace (select only), to find which
 * workspaces a signing-in person belongs to. Everything else runs inside withTenant.
 */
export const OPERATOR_LOOKUP_SETTING = 'parley.operator_lookup';

/** up adds the OIDC binding to members, the look-up policy and the operator sessions. */
export async function up(db: Kysely<unknown>): Promise<void> {
  const tenant = sql.raw(`tenant_id uuid not null default nullif(current_setting('app.tenant_id', true), '')::uuid`);
  const members = sql.table(`${S}.members`);
  await sql`alter table ${members}
    add column oidc_issuer text constraint members_oidc_issuer_check check (char_length(oidc_issuer) <= 2048),
    add column oidc_subject text constraint members_oidc_subject_check check (char_length(oidc_subject) <= 255)`.execute(db);
  const lookup = sql`coalesce(current_setting('app.tenant_id', true), '') = '' and current_setting(${sql.lit(OPERATOR_LOOKUP_SETTING)}, true) = 'on'`;
  await sql`create policy members_operator_lookup on ${members} for select using (${lookup})`.execute(db);
  await sql`create index members_email_idx on ${members} (email)`.execute(db);
  // Tokens, refresh tokens and CLI codes are stored only as HMAC-SHA256 under the API key pepper.
  await sql`create table ${sql.table(`${S}.operator_sessions`)} (
    ${tenant},
    id uuid not null default gen_random_uuid(),
    member_id uuid not null,
    kind text not null constraint operator_sessions_kind_check check (kind in ('console', 'cli')),
    token_hash bytea constraint operator_sessions_token_hash_check check (octet_length(token_hash) = 32),
    refresh_hash bytea constraint operator_sessions_refresh_hash_check check (octet_length(refresh_hash) = 32),
    code_hash bytea constraint operator_sessions_code_hash_check check (octet_length(code_hash) = 32),
    code_challenge text constraint operator_sessions_code_challenge_check check (code_challenge ~ '^[A-Za-z0-9_-]{43}$'),
    code_expires_at timestamptz,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    refresh_expires_at timestamptz,
    revoked_at timestamptz,
    primary key (tenant_id, id),
    constraint operator_sessions_token_key unique (tenant_id, token_hash),
    constraint operator_sessions_refresh_key unique (tenant_id, refresh_hash),
    constraint operator_sessions_code_key unique (tenant_id, code_hash),
    constraint operator_sessions_member_fkey foreign key (tenant_id, member_id)
      references ${members} (tenant_id, id) on delete cascade
  )`.execute(db);
  await sql`create index operator_sessions_member_idx on ${sql.table(`${S}.operator_sessions`)} (tenant_id, member_id)`.execute(db);
  await enableTenantIsolation(db, S, 'operator_sessions');
}

/** down removes operator sign-in. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table ${sql.table(`${S}.operator_sessions`)}`.execute(db);
  await sql`drop policy members_operator_lookup on ${sql.table(`${S}.members`)}`.execute(db);
  await sql`drop index ${sql.table(`${S}.members_email_idx`)}`.execute(db);
  await sql`alter table ${sql.table(`${S}.members`)} drop column oidc_issuer, drop column oidc_subject`.execute(db);
}
